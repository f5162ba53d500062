//! Message types: a name with its major version, and the JSON body that goes with it.

use serde::{Serialize, de::DeserializeOwned};

use crate::validation::ValidationErrors;

/// The `type` property of a message: a dotted name and a major version, `mvd.reconcile_person.v1`.
///
/// The string form is also the routing key on the bus exchange, so a queue binds to the types
/// it serves. Within one major version only additive, optional fields are allowed; a breaking
/// change is a new version, and both are served until agencies move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageType {
    /// Dotted lower-case name, `system.action`.
    pub name: &'static str,
    /// Major version, from 1.
    pub version: u16,
}

impl MessageType {
    /// A message type; `name` is dotted lower case (checked by the contracts' own tests).
    pub const fn new(name: &'static str, version: u16) -> Self {
        Self { name, version }
    }

    /// The wire form, `name.vN`.
    pub fn as_type_string(&self) -> String {
        format!("{}.v{}", self.name, self.version)
    }

    /// True when `s` is this type's wire form.
    pub fn matches(&self, s: &str) -> bool {
        // Compared as text: `v01` or `v+1` is not version 1.
        s.strip_prefix(self.name)
            .and_then(|rest| rest.strip_prefix(".v"))
            .is_some_and(|v| v == self.version.to_string())
    }

    /// Whether a type name is well formed: dotted segments of `[a-z0-9_]`, then `.vN`.
    pub fn is_well_formed(s: &str) -> bool {
        let Some((name, version)) = s.rsplit_once(".v") else {
            return false;
        };
        // Digits without a leading zero: one spelling per version.
        let version_ok = !version.is_empty()
            && version.bytes().all(|b| b.is_ascii_digit())
            && !(version.len() > 1 && version.starts_with('0'));
        let name_ok = !name.is_empty()
            && name.split('.').all(|seg| {
                !seg.is_empty()
                    && seg
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            });
        version_ok && name_ok
    }
}

impl std::fmt::Display for MessageType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.v{}", self.name, self.version)
    }
}

impl From<MessageType> for String {
    fn from(t: MessageType) -> Self {
        t.to_string()
    }
}

/// A message body with a fixed type. Implemented by every contract struct.
pub trait Message: Serialize + DeserializeOwned {
    /// The type this body travels as.
    const TYPE: MessageType;

    /// Checks what serde cannot: formats, ranges, cross-field rules.
    fn validate(&self) -> Result<(), ValidationErrors> {
        Ok(())
    }
}

/// Why a body could not be turned into a message. Every variant means the input is bad, not
/// that the reader failed: such a message is dead-lettered at once, never retried.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The `type` property names another message.
    #[error("expected message type {expected}, got {actual:?}")]
    WrongType {
        /// The type the reader expected.
        expected: String,
        /// The type the message carried (empty when absent).
        actual: String,
    },
    /// The body is not JSON, or not JSON of the expected shape.
    #[error("body is not a valid {message_type} JSON document: {reason}")]
    NotJson {
        /// The type the reader expected.
        message_type: String,
        /// The parser's words, with line and column.
        reason: String,
    },
    /// The body parsed but broke a rule.
    #[error("{message_type} failed validation: {errors}")]
    Invalid {
        /// The type the reader expected.
        message_type: String,
        /// Every problem found.
        errors: ValidationErrors,
    },
}

/// Parses and validates a body of type `M`, checking the `type` property first.
pub fn decode<M: Message>(message_type: &str, body: &[u8]) -> Result<M, DecodeError> {
    if !M::TYPE.matches(message_type) {
        return Err(DecodeError::WrongType {
            expected: M::TYPE.to_string(),
            actual: message_type.to_owned(),
        });
    }
    let message: M = serde_json::from_slice(body).map_err(|e| DecodeError::NotJson {
        message_type: M::TYPE.to_string(),
        reason: e.to_string(),
    })?;
    message.validate().map_err(|errors| DecodeError::Invalid {
        message_type: M::TYPE.to_string(),
        errors,
    })?;
    Ok(message)
}

/// Serialises a message body. Contract structs are plain data, so this cannot fail for them;
/// the error is kept for bodies with maps whose keys are not strings.
pub fn encode<M: Message>(message: &M) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Ping {
        n: i64,
    }

    impl Message for Ping {
        const TYPE: MessageType = MessageType::new("test.ping", 2);
        fn validate(&self) -> Result<(), ValidationErrors> {
            let mut e = ValidationErrors::new();
            e.check(self.n >= 0, "n", "must not be negative");
            e.into_result()
        }
    }

    #[test]
    fn type_string_round_trips_and_checks_version() {
        assert_eq!(Ping::TYPE.to_string(), "test.ping.v2");
        assert!(Ping::TYPE.matches("test.ping.v2"));
        assert!(!Ping::TYPE.matches("test.ping.v1"));
        assert!(!Ping::TYPE.matches("test.pingx.v2"));
        // One spelling per version.
        assert!(!Ping::TYPE.matches("test.ping.v02"));
        assert!(!Ping::TYPE.matches("test.ping.v+2"));
        assert!(!MessageType::is_well_formed("mvd.reconcile_person.v01"));
        assert!(MessageType::is_well_formed("mvd.reconcile_person.v10"));
        assert!(MessageType::is_well_formed("mvd.reconcile_person.v1"));
        assert!(!MessageType::is_well_formed("Mvd.x.v1"));
        assert!(!MessageType::is_well_formed("mvd..x.v1"));
        assert!(!MessageType::is_well_formed("mvd.x.v"));
        assert!(!MessageType::is_well_formed("mvd.x"));
    }

    #[test]
    fn decode_reports_wrong_type_bad_json_and_invalid_body() {
        assert_eq!(
            decode::<Ping>("test.ping.v2", br#"{"n":3,"extra":1}"#).ok(),
            Some(Ping { n: 3 })
        );
        assert!(matches!(
            decode::<Ping>("test.ping.v1", b"{}"),
            Err(DecodeError::WrongType { .. })
        ));
        let not_json = decode::<Ping>("test.ping.v2", b"not json").expect_err("not JSON");
        assert!(
            matches!(not_json, DecodeError::NotJson { .. }),
            "{not_json}"
        );
        let invalid = decode::<Ping>("test.ping.v2", br#"{"n":-1}"#).expect_err("negative");
        assert_eq!(
            invalid.to_string(),
            "test.ping.v2 failed validation: n: must not be negative"
        );
    }
}
