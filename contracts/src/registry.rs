//! The identifier registry inside the hub: which identifiers are assigned, which phone each one
//! uses, and the accounts behind them. Uniqueness is kept by database constraints; the issuance
//! saga asks the registry through these messages so that its own transition stays pure.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{Message, MessageType};

/// `registry.reserve.v1`: hold the identifier and the phone for an application.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Reserve {
    /// The identifier (the identification number).
    #[schemars(pattern(crate::person::id_number_pattern()))]
    pub identifier: String,
    /// The phone, `+375XXXXXXXXX`.
    #[schemars(pattern(crate::person::phone_pattern()))]
    pub phone: String,
    /// The application's business key.
    pub application: String,
}

impl std::fmt::Debug for Reserve {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reserve")
            .field("application", &self.application)
            .finish_non_exhaustive()
    }
}

impl Message for Reserve {
    const TYPE: MessageType = MessageType::new("registry.reserve", 1);
}

/// What a reservation came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReserveOutcome {
    /// Both are held for this application.
    Reserved,
    /// The identifier is assigned (or held) for another application.
    AlreadyAssigned,
    /// The phone is used with another identifier.
    PhoneBound,
}

/// `registry.reserved.v1`: the answer to [`Reserve`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Reserved {
    /// The outcome.
    pub outcome: ReserveOutcome,
}

impl Message for Reserved {
    const TYPE: MessageType = MessageType::new("registry.reserved", 1);
}

/// `registry.release.v1`: undo a reservation (the application failed a later step).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Release {
    /// The identifier.
    #[schemars(pattern(crate::person::id_number_pattern()))]
    pub identifier: String,
    /// The application that held it; a reservation of another application is left alone.
    pub application: String,
}

impl std::fmt::Debug for Release {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Release")
            .field("application", &self.application)
            .finish_non_exhaustive()
    }
}

impl Message for Release {
    const TYPE: MessageType = MessageType::new("registry.release", 1);
}

/// `registry.create_account.v1`: turn the reservation into an assigned identifier with an
/// account whose temporary password has this hash. Sent again (with a new hash) to replace the
/// temporary password when it must be re-sent.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CreateAccount {
    /// The identifier.
    #[schemars(pattern(crate::person::id_number_pattern()))]
    pub identifier: String,
    /// The application that reserved it.
    pub application: String,
    /// Argon2 PHC string of the temporary password (never the password).
    pub temporary_password_hash: String,
    /// The temporary password is refused after this.
    pub temporary_password_expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for CreateAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateAccount")
            .field("application", &self.application)
            .finish_non_exhaustive()
    }
}

impl Message for CreateAccount {
    const TYPE: MessageType = MessageType::new("registry.create_account", 1);
}

/// `registry.account_created.v1`: the identifier is assigned and the account exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AccountCreated {
    /// True when the account already existed and only its temporary password was replaced.
    pub password_replaced: bool,
}

impl Message for AccountCreated {
    const TYPE: MessageType = MessageType::new("registry.account_created", 1);
}

/// `registry.reissue_password.v1`: replace the temporary password of an issued identifier whose
/// holder has not formed a static password yet, and say which phone the new one must go to. The
/// registry decides under the account's lock, so a static password formed meanwhile wins.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReissuePassword {
    /// The identifier.
    #[schemars(pattern(crate::person::id_number_pattern()))]
    pub identifier: String,
    /// The business key of the issuance application the desk asked under.
    pub application: String,
    /// The worker who checked the person against the document again.
    pub worker_id: String,
    /// Argon2 PHC string of the new temporary password (never the password).
    pub temporary_password_hash: String,
    /// The new temporary password is refused after this.
    pub temporary_password_expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for ReissuePassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReissuePassword")
            .field("application", &self.application)
            .finish_non_exhaustive()
    }
}

impl Message for ReissuePassword {
    const TYPE: MessageType = MessageType::new("registry.reissue_password", 1);
}

/// What a reissue came to.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ReissueOutcome {
    /// The new temporary password is set; it goes to `phone`, the one the registry holds now.
    Reissued {
        /// `+375XXXXXXXXX`.
        phone: String,
    },
    /// The holder formed a static password: nothing changed (recovery is the way).
    StaticPasswordSet,
    /// The identifier is blocked: nothing changed.
    Blocked,
    /// No identifier with an account under this number.
    UnknownIdentifier,
}

impl std::fmt::Debug for ReissueOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ReissueOutcome::Reissued { .. } => "Reissued { .. }",
            ReissueOutcome::StaticPasswordSet => "StaticPasswordSet",
            ReissueOutcome::Blocked => "Blocked",
            ReissueOutcome::UnknownIdentifier => "UnknownIdentifier",
        })
    }
}

/// `registry.password_reissued.v1`: the answer to [`ReissuePassword`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PasswordReissued {
    /// The outcome.
    #[serde(flatten)]
    pub outcome: ReissueOutcome,
}

impl Message for PasswordReissued {
    const TYPE: MessageType = MessageType::new("registry.password_reissued", 1);
}
