//! The integration hub: broker runtime, store, saga engine, outbox relay and timers.
//!
//! The binary (`hub`) is a thin CLI over [`app::run`]; tests and embedders use the same
//! functions with their own sagas.

pub mod agency;
pub mod app;
pub mod bench;
pub mod broker;
pub mod cabinet;
pub mod chaos;
pub mod cli;
pub mod config;
pub mod demo;
pub mod engine;
pub mod health;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod ops;
pub mod procedures;
pub mod registration;
pub mod registry;
pub mod sagas;
pub mod secrets;
pub mod services;
pub(crate) mod stage;
pub mod store;
pub mod trace;
pub mod workers;

pub use adapters::{Failure, FailureKind};
