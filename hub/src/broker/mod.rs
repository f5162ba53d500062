//! The broker runtime: one supervised connection, the topology, a confirming publisher and a
//! consumer runner. Everything that talks AMQP lives here, so the rest of the hub deals in
//! [`Incoming`] messages and [`Envelope`]s.

mod connection;
mod consumer;
mod properties;
mod publisher;
pub mod topology;

pub use connection::{Broker, ConnectError};
pub use consumer::{ConsumerSettings, Handler, Incoming, run_consumer};
pub use properties::{Envelope, decode_properties, encode_properties, header_str, header_u32};
pub use publisher::{PublishError, Publisher};
pub use topology::{Declaration, declare, describe};
