//! The administrative procedures a person may order with their identifier (seeds 000, 001: the
//! cabinet "shows the list of administrative procedures that can be ordered"), as the portal
//! asks for them with a session and the hub answers from its catalogue.
//!
//! The list depends on how the person logged in: a procedure is offered when the session's
//! assurance level is at or above the procedure's (an e-mail login, `basic`, sees fewer than an
//! EDS login, `high`). The form of each procedure comes with it, so the portal can draw it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::cabinet::SessionToken;
use crate::message::{Message, MessageType};
use crate::procedure::AssuranceLevel;

/// `procedure.list.v1`: the portal asks which procedures the person of a session may order.
/// Answered with [`ProceduresListed`], to the request's `reply_to` when it names one (else to
/// the portal's queue), with the request's correlation id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ListProcedures {
    /// The portal's id of this request, echoed in the answer.
    pub request_id: Uuid,
    /// The session of the person who asks (from their login).
    pub session_token: SessionToken,
}

impl Message for ListProcedures {
    const TYPE: MessageType = MessageType::new("procedure.list", 1);
}

/// `procedure.listed.v1`: the answer to [`ListProcedures`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ProceduresListed {
    /// The request's id.
    pub request_id: Uuid,
    /// The list, or why there is none.
    pub outcome: ListOutcome,
}

impl Message for ProceduresListed {
    const TYPE: MessageType = MessageType::new("procedure.listed", 1);
}

/// What [`ProceduresListed`] says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ListOutcome {
    /// The procedures the session's level allows, in the catalogue's order.
    Listed {
        /// The session's assurance level, which chose them.
        level: AssuranceLevel,
        /// The procedures.
        procedures: Vec<OrderableProcedure>,
    },
    /// The session is unknown, expired or ended: the person logs in again.
    SessionInvalid,
}

/// One procedure as the person may order it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderableProcedure {
    /// The code in the list of procedures (`1.3.1`), what `procedure.submit.v1` names.
    pub code: String,
    /// The official name, in Russian.
    pub name_ru: String,
    /// The name in English.
    pub name_en: String,
    /// The deciding authority's id.
    pub authority_id: String,
    /// The deciding authority's name.
    pub authority_name: String,
    /// The weakest login that may apply.
    pub assurance: AssuranceLevel,
    /// The fee in BYN kopecks; 0 for a free procedure.
    pub fee_kopecks: u64,
    /// The statutory term of the decision, in working days.
    pub term_working_days: u32,
    /// The electronic form, in display order.
    pub fields: Vec<FormField>,
}

/// One field of a procedure's electronic form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FormField {
    /// The field's key in the submitted form (lower-case, digits and `_`).
    pub name: String,
    /// What it holds.
    #[serde(flatten)]
    pub kind: FieldKind,
    /// Whether the application is incomplete without it.
    pub required: bool,
}

/// What a form field holds, with the limits that go with each kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FieldKind {
    /// A string of at most `max_length` characters (Unicode scalar values, not bytes).
    Text {
        /// The longest accepted value.
        max_length: u32,
    },
    /// A calendar date written `YYYY-MM-DD`.
    Date,
    /// A whole number, within the bounds given.
    Number {
        /// The smallest accepted value, if bounded.
        min: Option<i64>,
        /// The largest accepted value, if bounded.
        max: Option<i64>,
    },
    /// One of a fixed list of strings.
    Choice {
        /// The accepted values, in display order.
        options: Vec<String>,
    },
    /// `true` or `false`.
    Boolean,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listed_answer_reads_back_with_its_fields_flat() {
        let answer = ProceduresListed {
            request_id: Uuid::nil(),
            outcome: ListOutcome::Listed {
                level: AssuranceLevel::Substantial,
                procedures: vec![OrderableProcedure {
                    code: "5.13".into(),
                    name_ru: "Выдача справки".into(),
                    name_en: "A certificate".into(),
                    authority_id: "minsk-civil-registry".into(),
                    authority_name: "Civil registry".into(),
                    assurance: AssuranceLevel::Basic,
                    fee_kopecks: 2100,
                    term_working_days: 7,
                    fields: vec![FormField {
                        name: "record_kind".into(),
                        kind: FieldKind::Choice {
                            options: vec!["birth".into()],
                        },
                        required: true,
                    }],
                }],
            },
        };
        let json = serde_json::to_value(&answer).expect("json");
        assert_eq!(json["outcome"]["status"], "listed");
        let field = &json["outcome"]["procedures"][0]["fields"][0];
        assert_eq!(field["kind"], "choice");
        assert_eq!(field["options"][0], "birth");
        let back: ProceduresListed = serde_json::from_value(json).expect("reads back");
        assert_eq!(back, answer);
        let invalid = serde_json::to_value(ProceduresListed {
            request_id: Uuid::nil(),
            outcome: ListOutcome::SessionInvalid,
        })
        .expect("json");
        assert_eq!(invalid["outcome"]["status"], "session_invalid");
    }
}
