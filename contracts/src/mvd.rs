//! Reconciliation with the MVD population registry: the command the issuance saga sends to the
//! MVD adapter worker, and its answer.

use chrono::NaiveDate;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::issuance::{Applicant, IdentityDocument};
use crate::{Message, MessageType};

/// `mvd.reconcile.v1`: check the stated data and document against the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Reconcile {
    /// The person as stated.
    pub person: Applicant,
    /// The document presented.
    pub document: IdentityDocument,
}

impl Message for Reconcile {
    const TYPE: MessageType = MessageType::new("mvd.reconcile", 1);
}

/// The registry's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ReconcileResult {
    /// The data and the document match.
    Match,
    /// These fields differ from the registry.
    Mismatch {
        /// Request field names (`surname`, `document.number`, ...).
        fields: Vec<String>,
    },
    /// The document is not valid.
    DocumentInvalid {
        /// `expired`, `lost`, or what the registry said.
        status: String,
    },
    /// The registry does not know the person.
    PersonUnknown,
}

/// `mvd.reconciled.v1`: the answer to [`Reconcile`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Reconciled {
    /// The registry's id of the check.
    pub reconciliation_id: String,
    /// The verdict.
    pub result: ReconcileResult,
    /// The date the check was made.
    pub checked_on: NaiveDate,
}

impl Message for Reconciled {
    const TYPE: MessageType = MessageType::new("mvd.reconciled", 1);
}
