//! Queue contracts of the e-services integration hub.
//!
//! An agency that talks to the hub over RabbitMQ depends on this crate alone: it names every
//! message type with its major version, describes the metadata that rides in AMQP properties
//! and headers, derives every exchange, queue and routing-key name from one namespace, and
//! validates bodies. It does no I/O, so it can be used from any runtime or none.

/// A `Debug` that prints the type's name only: for bodies that hold a password, a code or
/// personal data, so that no log line can show them.
macro_rules! masked_debug {
    ($t:ty, $name:literal) => {
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!($name, " { .. }"))
            }
        }
    };
}

pub mod account;
pub mod cabinet;
pub mod failure;
pub mod issuance;
pub mod message;
pub mod metadata;
pub mod mvd;
pub mod offer;
pub mod ops;
pub mod person;
pub mod procedure;
pub mod registration;
pub mod registry;
pub mod schema;
pub mod sealed;
pub mod sms;
pub mod topology;
pub mod validation;

pub use failure::{Failure, FailureKind};
pub use message::{DecodeError, Message, MessageType, decode, encode};
pub use metadata::{Metadata, headers};
pub use topology::{Namespace, NamespaceError, QueueSpec, RetryTier, Topology};
pub use validation::{FieldError, ValidationErrors};

/// Message types whose bodies carry a secret in the clear (a code a person read out, a password
/// a person typed, a token from a link), with the top-level fields that hold it.
///
/// This is the one list the hub redacts by: the consumer replaces such a body in a dead letter
/// ([`is_sensitive`]), the dead-letter keeper replaces these fields of a letter the consumer never
/// saw (unrouted, or dead-lettered by the broker itself) with [`redact_secrets`], and the
/// operators' masking hides every field [`is_secret_field`] names. It is kept in sync with the
/// types by `tests/secrets.rs`, which reads this crate's sources and fails when a field whose
/// name suggests a secret (`password`, `code`, `token`, `secret`, ...) is neither listed here for
/// its message type nor named there as not a secret in the clear (a hash, a sealed envelope, a
/// catalogue code).
pub const SECRET_FIELDS: &[(MessageType, &[&str])] = &[
    (issuance::ConfirmPhone::TYPE, &["code"]),
    (account::ConfirmNewPhone::TYPE, &["code"]),
    (cabinet::LogIn::TYPE, &["password"]),
    (
        cabinet::ChangePassword::TYPE,
        &["current_password", "new_password"],
    ),
    (cabinet::CompleteRecovery::TYPE, &["code", "new_password"]),
    (cabinet::BlockSelf::TYPE, &["password"]),
    (cabinet::CompleteUnblock::TYPE, &["code", "new_password"]),
    (registration::RegisterByEmail::TYPE, &["password"]),
    (registration::ActivateEmail::TYPE, &["token"]),
    (registration::LogInByEmail::TYPE, &["password"]),
    // Sessions: the token a login answers, and every request that carries it.
    (cabinet::CabinetReply::TYPE, &["session_token"]),
    (cabinet::LogOut::TYPE, &["session_token"]),
    (procedure::SubmitApplication::TYPE, &["session_token"]),
    (procedure::WithdrawApplication::TYPE, &["session_token"]),
    (procedure::AttachReceipt::TYPE, &["session_token"]),
    (procedure::ProvideInfo::TYPE, &["session_token"]),
    (procedure::SubmitComplaint::TYPE, &["session_token"]),
    (procedure::WithdrawComplaint::TYPE, &["session_token"]),
    (offer::ListProcedures::TYPE, &["session_token"]),
];

/// The message types of [`SECRET_FIELDS`]: the hub never keeps such a body in a dead letter as
/// it came. Derived from that list, so the two cannot drift apart.
pub const SENSITIVE_TYPES: [MessageType; SECRET_FIELDS.len()] = {
    let mut types = [SECRET_FIELDS[0].0; SECRET_FIELDS.len()];
    let mut i = 0;
    while i < SECRET_FIELDS.len() {
        types[i] = SECRET_FIELDS[i].0;
        i += 1;
    }
    types
};

/// Whether a message of type `message_type` (`name.vN`) carries a secret in its body.
pub fn is_sensitive(message_type: &str) -> bool {
    secret_fields(message_type).is_some()
}

/// The fields of [`SECRET_FIELDS`] holding a secret in a body of type `message_type`, or `None`
/// when the type carries none.
pub fn secret_fields(message_type: &str) -> Option<&'static [&'static str]> {
    SECRET_FIELDS
        .iter()
        .find(|(t, _)| t.matches(message_type))
        .map(|(_, fields)| *fields)
}

/// Field names that hold a secret in the clear wherever they occur (every field of
/// [`SECRET_FIELDS`] is one; `tests/secrets.rs` checks it).
pub const SECRET_FIELD_NAMES: &[&str] = &[
    "password",
    "current_password",
    "new_password",
    "code",
    "token",
    "secret",
];

/// Whether a field named `key` holds a secret: one of [`SECRET_FIELD_NAMES`], or a name ending in
/// `_password`, `_token` or `_secret` (`session_token`). `procedure_code` is not (a catalogue
/// code), nor `temporary_password_hash` (a hash a replayed letter must keep).
pub fn is_secret_field(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_FIELD_NAMES.contains(&key.as_str())
        || ["_password", "_token", "_secret"]
            .iter()
            .any(|end| key.ends_with(end))
}

/// What replaces a secret in a kept body.
pub const REDACTED_VALUE: &str = "[redacted]";

/// Replaces the secrets in `body`, a message of type `message_type`: the fields
/// [`secret_fields`] names for the type (whatever their value), and anywhere in the body, at
/// any depth, a scalar under a field [`is_secret_field`] names (a sealed envelope is an object
/// and stays: it is no secret in the clear). Everything else is kept, so an operator still sees
/// what the message was. Returns whether anything was replaced.
pub fn redact_secrets(message_type: &str, body: &mut serde_json::Value) -> bool {
    let mut replaced = false;
    if let (Some(fields), Some(object)) = (secret_fields(message_type), body.as_object_mut()) {
        for field in fields {
            if let Some(value) = object.get_mut(*field) {
                *value = serde_json::Value::from(REDACTED_VALUE);
                replaced = true;
            }
        }
    }
    redact_named(body, &mut replaced);
    replaced
}

fn redact_named(value: &mut serde_json::Value, replaced: &mut bool) {
    use serde_json::Value;
    match value {
        Value::Object(fields) => {
            for (key, v) in fields.iter_mut() {
                let scalar = matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_));
                if scalar && is_secret_field(key) {
                    if v.as_str() != Some(REDACTED_VALUE) {
                        *v = Value::from(REDACTED_VALUE);
                        *replaced = true;
                    }
                } else {
                    redact_named(v, replaced);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| redact_named(v, replaced)),
        _ => {}
    }
}

#[cfg(test)]
mod secret_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_secret_types_fields_are_replaced_and_the_rest_kept() {
        let mut login = json!({"identifier": "3270287A012PB2", "password": "Xy3kLmNpQr"});
        assert!(redact_secrets("cabinet.login.v1", &mut login));
        assert_eq!(
            login,
            json!({"identifier": "3270287A012PB2", "password": REDACTED_VALUE})
        );
        // A code sent as a number, or an object, is replaced all the same for its type.
        let mut confirm = json!({"desk_id": "d", "application_number": "1", "code": 123456});
        assert!(redact_secrets("identifier.confirm_phone.v1", &mut confirm));
        assert!(!confirm.to_string().contains("123456"), "{confirm}");
        let mut odd = json!({"new_password": {"x": "Xy3kLmNpQr"}, "current_password": "a"});
        assert!(redact_secrets("cabinet.change_password.v1", &mut odd));
        assert!(!odd.to_string().contains("Xy3kLmNpQr"), "{odd}");
    }

    #[test]
    fn a_secret_field_is_replaced_in_any_type_at_any_depth_but_a_sealed_one_stays() {
        let mut body = json!({
            "wrapped": [{"auth": {"password": "hunter2", "session_token": "abc"}}],
            "procedure_code": "2.19",
            "token": {"key_id": "k1", "nonce": "n", "ciphertext": "c"},
        });
        assert!(redact_secrets("unknown.thing.v1", &mut body));
        let text = body.to_string();
        assert!(
            !text.contains("hunter2") && !text.contains("\"abc\""),
            "{text}"
        );
        assert_eq!(body["procedure_code"], "2.19");
        assert_eq!(body["token"]["ciphertext"], "c");
        let mut plain = json!({"procedure_code": "2.19", "amount": 2100});
        assert!(!redact_secrets("procedure.submit.v1", &mut plain));
    }

    #[test]
    fn the_sensitive_types_are_the_listed_ones() {
        assert!(is_sensitive("cabinet.login.v1"));
        assert!(is_sensitive("registration.activate.v1"));
        assert!(!is_sensitive("cabinet.recover_password.v1"));
        assert_eq!(SENSITIVE_TYPES.len(), SECRET_FIELDS.len());
        for key in ["password", "new_password", "code", "token", "session_token"] {
            assert!(is_secret_field(key), "{key}");
        }
        for key in [
            "procedure_code",
            "temporary_password_hash",
            "password_replaced",
        ] {
            assert!(!is_secret_field(key), "{key}");
        }
    }
}
