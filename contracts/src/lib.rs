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
pub mod ops;
pub mod person;
pub mod procedure;
pub mod registration;
pub mod registry;
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
/// a person typed). The hub never keeps such a body in a dead letter: it keeps the metadata and
/// the reason, and replaces the body with a note.
pub const SENSITIVE_TYPES: &[MessageType] = &[
    issuance::ConfirmPhone::TYPE,
    account::ConfirmNewPhone::TYPE,
    cabinet::LogIn::TYPE,
    cabinet::ChangePassword::TYPE,
    cabinet::CompleteRecovery::TYPE,
    cabinet::BlockSelf::TYPE,
    registration::RegisterByEmail::TYPE,
    registration::ActivateEmail::TYPE,
    registration::LogInByEmail::TYPE,
];

/// Whether a message of type `message_type` (`name.vN`) carries a secret in its body.
pub fn is_sensitive(message_type: &str) -> bool {
    SENSITIVE_TYPES.iter().any(|t| t.matches(message_type))
}
