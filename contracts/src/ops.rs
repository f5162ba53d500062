//! Operators' messages: what the hub's operator tools (`hub saga`, the web console) send to a
//! saga. They travel like a saga's own timers, through the hub's requeue exchange straight to
//! the saga's work queue, so no agency can send them: agencies may publish only to the bus.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Message, MessageType, ValidationErrors};

/// The longest reason an operator may give, in characters.
pub const MAX_REASON_CHARS: usize = 1000;

/// `ops.cancel_saga.v1`: an operator ends a stuck saga. The saga runs the compensations it
/// defines for that (a saga that defines none refuses) and ends with the reason visible to the
/// agency that started it. Its `correlation_id` is the saga id, as for every saga message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CancelSaga {
    /// The saga to end (the same as the message's `correlation_id`).
    pub saga_id: Uuid,
    /// Why, in the operator's words.
    pub reason: String,
    /// Who: the console login or the CLI's `--operator`.
    pub operator: String,
}

impl Message for CancelSaga {
    const TYPE: MessageType = MessageType::new("ops.cancel_saga", 1);

    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut e = ValidationErrors::new();
        e.check(
            !self.reason.trim().is_empty(),
            "reason",
            "must not be empty",
        );
        e.check(
            self.reason.chars().count() <= MAX_REASON_CHARS,
            "reason",
            "must be at most 1000 characters",
        );
        e.check(
            !self.operator.trim().is_empty(),
            "operator",
            "must not be empty",
        );
        e.into_result()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode;

    #[test]
    fn a_cancel_needs_a_reason_and_an_operator() {
        let ok = CancelSaga {
            saga_id: Uuid::nil(),
            reason: "MVD outage, the desk asked".into(),
            operator: "ivanov".into(),
        };
        let body = crate::encode(&ok).expect("encodes");
        assert_eq!(
            decode::<CancelSaga>("ops.cancel_saga.v1", &body).ok(),
            Some(ok)
        );
        let blank = CancelSaga {
            saga_id: Uuid::nil(),
            reason: " ".into(),
            operator: String::new(),
        };
        let body = crate::encode(&blank).expect("encodes");
        let err = decode::<CancelSaga>("ops.cancel_saga.v1", &body).expect_err("refused");
        assert!(
            err.to_string().contains("reason: must not be empty"),
            "{err}"
        );
        assert!(err.to_string().contains("operator"), "{err}");
    }
}
