//! Conformance: every body the [`crate::broker::Publisher`] sends is checked against the JSON
//! Schema its type publishes ([`contracts::schema`]) before it leaves, in the builds that turn
//! the check on.
//!
//! The check is compiled in by the cargo feature `conformance`, which the end-to-end tests and
//! the lab (`hub demo`, the stage, chaos) turn on; the production build
//! (`cargo build -p hub --no-default-features`) leaves it out, and a process in production mode
//! switches it off ([`switch_off`]). Each type's schema is compiled once, on its first message.
//!
//! A body that does not conform is refused: the publish fails with a [`Violation`] that names
//! the type, the JSON path and the schema rule, never the value (bodies carry personal data),
//! and the violation is recorded by exchange, so a test's fixture can fail the test whose
//! namespace it happened in ([`violations_in`]) even when the hub's relay, not the test, sent it.
//! A hostile-path test that sends a malformed body on purpose says so
//! ([`crate::broker::Publisher::publish_deliberately_invalid`]).
//!
//! Types the hub sends only to itself ([`HUB_INTERNAL`]) publish no schema and are exempt; any
//! other type not in [`contracts::schema::PUBLISHED`] is a violation.
//!
//! With `HUB_CAPTURE_EXAMPLES=/path/examples.json` the first conforming body of each type is
//! added to that file (type -> body; entries already there are kept), its secrets replaced by
//! placeholders ([`placeholder_secrets`]): the examples `hub contracts export` puts in the
//! published schemas come from such a run.

use std::sync::atomic::{AtomicBool, Ordering};

/// The message types the hub sends only to itself (timers and the portal's internal steps):
/// no party sends or receives them, so they publish no schema and are not checked. A test keeps
/// the list honest: each is absent from [`contracts::schema::PUBLISHED`], and each is a type the
/// hub really uses.
pub const HUB_INTERNAL: &[&str] = &[
    // hub-portal sessions.rs: a person's request once the session named them.
    "procedure.start.v1",
    "procedure.withdraw_as.v1",
    "procedure.attach_receipt_as.v1",
    "procedure.provide_info_as.v1",
    "complaint.start.v1",
    "complaint.withdraw_as.v1",
    // hub-portal procedures: a checked decision, a deadline's timer, a complaint's look-up.
    "procedure.decision_checked.v1",
    "procedure.deadline_passed.v1",
    "procedure.lookup_application.v1",
    "procedure.application_looked_up.v1",
    "complaint.decision_checked.v1",
];

static SWITCHED_OFF: AtomicBool = AtomicBool::new(false);

/// Switches the check off for this process: production mode does, so that a build with the
/// lab in it still sends without the cost.
pub fn switch_off() {
    SWITCHED_OFF.store(true, Ordering::Relaxed);
}

/// Whether bodies are checked in this process: the feature is compiled in and nothing switched
/// it off.
pub fn is_on() -> bool {
    cfg!(feature = "conformance") && !SWITCHED_OFF.load(Ordering::Relaxed)
}

/// Whether `message_type` is one of [`HUB_INTERNAL`].
pub fn is_hub_internal(message_type: &str) -> bool {
    HUB_INTERNAL.contains(&message_type)
}

/// A body that does not match its type's published schema. It names where and which rule,
/// never the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "non-conforming {message_type}: {problem} (the published schema \
     contracts/published/schemas/{message_type}.json)"
)]
pub struct Violation {
    /// The message type.
    pub message_type: String,
    /// What is wrong: the JSON path of the body and the schema rule it breaks, or that the
    /// body is not JSON, or that the type publishes no schema.
    pub problem: String,
}

/// The family of the runtime's own test types (`test.deposit.v1` of `tests/src/ledger.rs`):
/// stand-ins for a business that exercise the runtime, no party's contract, so not checked.
pub const TEST_FAMILY: &str = "test.";

/// Checks `body` of `message_type` sent to `exchange` when the check [`is_on`]; records a
/// violation under `exchange`. [`HUB_INTERNAL`] types and the [`TEST_FAMILY`] are not checked.
///
/// Errors: the [`Violation`].
pub fn check(exchange: &str, message_type: &str, body: &[u8]) -> Result<(), Violation> {
    if !is_on() || is_hub_internal(message_type) || message_type.starts_with(TEST_FAMILY) {
        return Ok(());
    }
    checked(exchange, message_type, body)
}

#[cfg(feature = "conformance")]
fn checked(exchange: &str, message_type: &str, body: &[u8]) -> Result<(), Violation> {
    checker::check(message_type, body).inspect_err(|v| checker::record(exchange, v.clone()))
}

#[cfg(not(feature = "conformance"))]
fn checked(_: &str, _: &str, _: &[u8]) -> Result<(), Violation> {
    Ok(())
}

/// [`check`] with the violation as text: the shape the simulators' hooks take
/// (`simulators::authority::check_outgoing_with`).
///
/// Errors: the violation's text.
pub fn check_text(exchange: &str, message_type: &str, body: &[u8]) -> Result<(), String> {
    check(exchange, message_type, body).map_err(|v| v.to_string())
}

/// The violations recorded so far for exchanges of namespace `namespace` (`<namespace>.bus`,
/// ...), taken out of the record.
pub fn violations_in(namespace: &str) -> Vec<Violation> {
    taken(&format!("{namespace}."))
}

#[cfg(feature = "conformance")]
fn taken(prefix: &str) -> Vec<Violation> {
    checker::take(prefix)
}

#[cfg(not(feature = "conformance"))]
fn taken(_: &str) -> Vec<Violation> {
    Vec::new()
}

/// Replaces, at any depth, the value of every field that holds a secret in a body of type
/// `message_type` (those [`contracts::secret_fields`] lists for the type and those
/// [`contracts::is_secret_field`] names) with an obvious placeholder of the same shape: a
/// string of digits by as many zeros, any other string by `example-<field>` padded to the
/// original length, a number by 0. An example may then be published without a real secret in it.
pub fn placeholder_secrets(message_type: &str, body: &mut serde_json::Value) {
    let listed = contracts::secret_fields(message_type).unwrap_or(&[]);
    if let Some(object) = body.as_object_mut() {
        for field in listed {
            if let Some(v) = object.get_mut(*field) {
                replace_scalar(field, v);
            }
        }
    }
    replace_named(body);
}

fn replace_named(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(fields) => {
            for (key, v) in fields.iter_mut() {
                if contracts::is_secret_field(key) && !v.is_object() && !v.is_array() {
                    replace_scalar(key, v);
                } else {
                    replace_named(v);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(replace_named),
        _ => {}
    }
}

fn replace_scalar(field: &str, value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            *s = "0".repeat(s.len());
        }
        serde_json::Value::String(s) => {
            let mut fake = format!("example-{}", field.replace('_', "-"));
            while fake.len() < s.chars().count() {
                fake.push('x');
            }
            *s = fake;
        }
        serde_json::Value::Number(_) => *value = serde_json::Value::from(0),
        _ => {}
    }
}

#[cfg(feature = "conformance")]
mod checker {
    //! The compiled validators, the record of violations and the capture of examples.

    use std::collections::{BTreeMap, HashMap, HashSet};
    use std::path::PathBuf;
    use std::sync::{Arc, LazyLock, Mutex, PoisonError};

    use serde_json::Value;

    use super::Violation;

    type Validators = Mutex<HashMap<String, Option<Arc<jsonschema::Validator>>>>;

    static VALIDATORS: LazyLock<Validators> = LazyLock::new(Mutex::default);
    static RECORDED: LazyLock<Mutex<Vec<(String, Violation)>>> = LazyLock::new(Mutex::default);
    static CAPTURE: LazyLock<Option<PathBuf>> = LazyLock::new(|| {
        std::env::var_os(crate::conformance::CAPTURE_VARIABLE)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
    });
    static CAPTURED: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(Mutex::default);

    /// The compiled validator of `message_type`, `None` when the type publishes no schema.
    fn validator(message_type: &str) -> Option<Arc<jsonschema::Validator>> {
        let mut cache = VALIDATORS.lock().unwrap_or_else(PoisonError::into_inner);
        cache
            .entry(message_type.to_owned())
            .or_insert_with(|| {
                let published = contracts::schema::find(message_type)?;
                let compiled = jsonschema::options()
                    .should_validate_formats(true)
                    .build(&published.schema());
                match compiled {
                    Ok(v) => Some(Arc::new(v)),
                    Err(e) => panic!("the schema of {message_type} does not compile: {e}"),
                }
            })
            .clone()
    }

    pub(super) fn check(message_type: &str, body: &[u8]) -> Result<(), Violation> {
        let violation = |problem: String| Violation {
            message_type: message_type.to_owned(),
            problem,
        };
        let Some(validator) = validator(message_type) else {
            return Err(violation(
                "the type publishes no schema (not in contracts::schema::PUBLISHED, nor \
                 hub-internal in hub_runtime::conformance::HUB_INTERNAL)"
                    .to_owned(),
            ));
        };
        let value: Value = serde_json::from_slice(body).map_err(|e| {
            violation(format!(
                "the body is not JSON (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        let problems: Vec<String> = validator
            .iter_errors(&value)
            .take(5)
            .map(|e| describe(&e))
            .collect();
        if !problems.is_empty() {
            return Err(violation(problems.join("; ")));
        }
        capture(message_type, value);
        Ok(())
    }

    /// Where and which rule, never the value: `at /id_number: breaks "pattern"
    /// (schema /properties/id_number/pattern)`; a missing or unexpected property is named (a
    /// field name, not a value).
    fn describe(e: &jsonschema::ValidationError<'_>) -> String {
        let path = e.instance_path().to_string();
        let path = if path.is_empty() { "/" } else { &path };
        let detail = match e.kind() {
            jsonschema::error::ValidationErrorKind::Required { property } => {
                format!(" (missing {property})")
            }
            jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected } => {
                format!(" (unexpected {})", unexpected.join(", "))
            }
            _ => String::new(),
        };
        format!(
            "at {path}: breaks {:?}{detail} (schema {})",
            e.kind().keyword(),
            e.evaluation_path()
        )
    }

    pub(super) fn record(exchange: &str, violation: Violation) {
        tracing::error!(%exchange, %violation, "a message does not conform to its published schema");
        RECORDED
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((exchange.to_owned(), violation));
    }

    pub(super) fn take(prefix: &str) -> Vec<Violation> {
        let mut recorded = RECORDED.lock().unwrap_or_else(PoisonError::into_inner);
        let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut *recorded)
            .into_iter()
            .partition(|(exchange, _)| exchange.starts_with(prefix));
        *recorded = rest;
        mine.into_iter().map(|(_, v)| v).collect()
    }

    /// Adds `body` as the example of `message_type` to the capture file, when one is asked for
    /// and the type has none there yet.
    fn capture(message_type: &str, mut body: Value) {
        let Some(path) = CAPTURE.as_ref() else {
            return;
        };
        if !CAPTURED
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(message_type.to_owned())
        {
            return;
        }
        super::placeholder_secrets(message_type, &mut body);
        let conforms = validator(message_type).is_some_and(|v| v.is_valid(&body));
        if !conforms {
            tracing::warn!(%message_type, "no example captured: the body with placeholders for its secrets does not conform");
            return;
        }
        if let Err(e) = add_example(path, message_type, body) {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the captured example");
        }
    }

    /// Adds the example under an exclusive lock of the file (several processes of one run, a
    /// test and the `hub` it starts, may capture at once), keeping every entry already there.
    fn add_example(path: &PathBuf, message_type: &str, body: Value) -> std::io::Result<()> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        file.lock()?;
        let text = std::fs::read_to_string(path)?;
        let mut examples: BTreeMap<String, Value> = if text.trim().is_empty() {
            BTreeMap::new()
        } else {
            serde_json::from_str(&text).map_err(std::io::Error::other)?
        };
        if examples.contains_key(message_type) {
            return Ok(());
        }
        examples.insert(message_type.to_owned(), body);
        let mut text = serde_json::to_string_pretty(&examples).map_err(std::io::Error::other)?;
        text.push('\n');
        std::fs::write(path, text)?;
        file.unlock()
    }
}

/// The environment variable that asks for the capture of examples: a path to a JSON file.
pub const CAPTURE_VARIABLE: &str = "HUB_CAPTURE_EXAMPLES";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_get_placeholders_of_their_shape() {
        let mut body =
            json!({"desk_id": "d1", "code": "123456", "nested": [{"session_token": "abcdefghij"}]});
        placeholder_secrets("identifier.confirm_phone.v1", &mut body);
        assert_eq!(body["code"], "000000");
        assert_eq!(body["desk_id"], "d1");
        let token = body["nested"][0]["session_token"]
            .as_str()
            .expect("a string");
        assert!(token.starts_with("example-session-token"), "{token}");
    }
}
