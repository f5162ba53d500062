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
        /// What was wrong, by [`describe_json_error`]: the field, the kind of error, the line
        /// and column, never a value of the body.
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
    // Read through serde_path_to_error so the reason can name the field that was wrong; then,
    // as serde_json::from_slice does, refuse anything after the document.
    let mut reader = serde_json::Deserializer::from_slice(body);
    let message: M = serde_path_to_error::deserialize(&mut reader)
        .map_err(|e| describe_json_error(&e.path().to_string(), e.inner()))
        .and_then(|m| {
            reader
                .end()
                .map(|()| m)
                .map_err(|e| describe_json_error(".", &e))
        })
        .map_err(|reason| DecodeError::NotJson {
            message_type: M::TYPE.to_string(),
            reason,
        })?;
    message.validate().map_err(|errors| DecodeError::Invalid {
        message_type: M::TYPE.to_string(),
        errors,
    })?;
    Ok(message)
}

/// What was wrong with a JSON body, in words that never quote one of its values: the text
/// becomes a log line, a failure reason and a dead letter's `error`, and a value may be a code
/// or a password (serde's own text quotes a wrong-typed value: ``invalid type: integer
/// `123456` ``). `path` is where the error was (`code`, `person.birth_date`, `.` for the root).
///
/// Kept: the field, the kind of error (not JSON, a missing field, a value of the wrong type
/// with the type expected, an unknown variant), the line and column. Serde's own text is kept
/// only for a missing or duplicate field, whose quoted name is the type's, not the body's.
pub fn describe_json_error(path: &str, error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let at = format!("line {} column {}", error.line(), error.column());
    let field = if path.is_empty() || path == "." {
        String::new()
    } else {
        format!("field {path}: ")
    };
    match error.classify() {
        Category::Syntax => format!("not well-formed JSON ({at})"),
        Category::Eof => format!("JSON that ends too early ({at})"),
        Category::Io => format!("a body that could not be read ({at})"),
        Category::Data => {
            let message = error.to_string();
            let what =
                if message.starts_with("missing field") || message.starts_with("duplicate field") {
                    // `missing field `code` at line 1 column 2`: drop serde's position, ours follows.
                    message
                        .split(" at line ")
                        .next()
                        .unwrap_or_default()
                        .to_owned()
                } else if let Some(rest) = message.strip_prefix("invalid type: ") {
                    // `invalid type: integer `123456`, expected a string`: the found kind is the
                    // word before the quoted value; the expectation is the type's.
                    let found = rest
                        .split(['`', '"', ','])
                        .next()
                        .unwrap_or_default()
                        .trim();
                    match expected(rest) {
                        Some(expected) => {
                            format!("a value of the wrong type ({found}, expected {expected})")
                        }
                        None => format!("a value of the wrong type ({found})"),
                    }
                } else if message.starts_with("unknown variant") {
                    match expected(&message) {
                        Some(expected) => format!("an unknown variant (expected {expected})"),
                        None => "an unknown variant".to_owned(),
                    }
                } else if message.starts_with("invalid length") {
                    "a list or text of the wrong length".to_owned()
                } else {
                    // Anything else (`invalid value`, a custom parser's words) may quote the value.
                    "a value that is not valid".to_owned()
                };
            format!("{field}{what} ({at})")
        }
    }
}

/// The `expected ...` part of serde's text, when it names no value of the body: it comes from
/// the type (`a string`, `one of `ok`, `wrong``), up to serde's position.
fn expected(message: &str) -> Option<&str> {
    let (_, expected) = message.split_once(", expected ")?;
    Some(
        expected
            .split(" at line ")
            .next()
            .unwrap_or(expected)
            .trim(),
    )
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

    #[derive(Debug, Serialize, Deserialize)]
    struct Code {
        code: String,
        kind: Kind,
        when: chrono::NaiveDate,
    }

    #[derive(Debug, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        Sms,
    }

    impl Message for Code {
        const TYPE: MessageType = MessageType::new("test.code", 1);
    }

    /// The decode error of `body` as text, asserting it quotes none of `values`.
    fn quoting_none(body: &str, values: &[&str]) -> String {
        let text = decode::<Code>("test.code.v1", body.as_bytes())
            .expect_err("bad body")
            .to_string();
        for value in values {
            assert!(!text.contains(value), "{value:?} quoted in {text:?}");
        }
        text
    }

    #[test]
    fn a_decode_error_names_the_field_and_the_kind_but_never_a_value() {
        let wrong_type = quoting_none(
            r#"{"code": 123456, "kind": "sms", "when": "2026-01-01"}"#,
            &["123456"],
        );
        assert_eq!(
            wrong_type,
            "body is not a valid test.code.v1 JSON document: field code: a value of the wrong \
             type (integer, expected a string) (line 1 column 15)"
        );
        let variant = quoting_none(
            r#"{"code": "1", "kind": "s3cr3t-variant", "when": "2026-01-01"}"#,
            &["s3cr3t"],
        );
        assert!(
            variant.contains("field kind: an unknown variant"),
            "{variant}"
        );
        let custom = quoting_none(
            r#"{"code": "1", "kind": "sms", "when": "98765-99-99"}"#,
            &["98765"],
        );
        assert!(
            custom.contains("field when: a value that is not valid"),
            "{custom}"
        );
        let broken = quoting_none(r#"{"code": "4242"#, &["4242"]);
        assert!(broken.contains("line 1"), "{broken}");
        let nested = quoting_none(r#"{"code": ["777111"]}"#, &["777111"]);
        assert!(nested.contains("field code"), "{nested}");
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
        assert_eq!(
            decode::<Ping>("test.ping.v2", br#"{}"#)
                .expect_err("missing")
                .to_string(),
            "body is not a valid test.ping.v2 JSON document: missing field `n` (line 1 column 2)"
        );
        let invalid = decode::<Ping>("test.ping.v2", br#"{"n":-1}"#).expect_err("negative");
        assert_eq!(
            invalid.to_string(),
            "test.ping.v2 failed validation: n: must not be negative"
        );
    }
}
