//! The hub's messaging runtime: everything a durable, message-driven service needs and nothing
//! of the portal's business.
//!
//! - [`broker`]: one supervised AMQP connection, the topology, a confirming publisher and the
//!   one consumer runner (every failure turned into a retry or a dead letter);
//! - [`store`]: PostgreSQL — inbox, outbox and its relay, timers, the migrations of these;
//! - [`engine`]: the saga engine and the service runner, exactly-once effects per message;
//! - [`keeper`]: dead-letter queues into the `dead_letters` table;
//! - [`app`]: starting, running and draining a process built from a [`app::Plan`];
//! - [`health`], [`metrics`], [`trace`], [`logging`]: what operators see;
//! - [`secrets`]: sealing and hashing of secrets;
//! - [`conformance`]: every body sent checked against its published schema (tests and lab).
//!
//! Business crates plug in through seams: a [`broker::Handler`] per queue, a
//! [`engine::Saga`] per saga type, and a [`broker::SenderPolicy`] that says who may send what.

pub mod app;
pub mod broker;
pub mod config;
pub mod conformance;
pub mod engine;
pub mod health;
pub mod keeper;
pub mod logging;
pub mod metrics;
pub mod otlp;
pub mod secrets;
pub mod store;
pub mod tls;
pub mod trace;
