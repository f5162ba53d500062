//! Queue contracts of the e-services integration hub.
//!
//! An agency that talks to the hub over RabbitMQ depends on this crate alone: it names every
//! message type with its major version, describes the metadata that rides in AMQP properties
//! and headers, derives every exchange, queue and routing-key name from one namespace, and
//! validates bodies. It does no I/O, so it can be used from any runtime or none.

pub mod message;
pub mod person;
pub mod metadata;
pub mod topology;
pub mod validation;

pub use message::{DecodeError, Message, MessageType, decode, encode};
pub use metadata::{Metadata, headers};
pub use topology::{Namespace, NamespaceError, QueueSpec, RetryTier, Topology};
pub use validation::{FieldError, ValidationErrors};
