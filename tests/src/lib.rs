//! End-to-end test support: each test gets its own namespace on the real RabbitMQ and its own
//! database on the real PostgreSQL, removed when the test ends (also when it fails).

pub mod browser;
pub mod console;
pub mod eds;
pub mod harness;
pub mod ledger;
pub mod portal;
pub mod private_broker;
pub mod process;
pub mod tls;

pub use harness::{Observer, RunningHub, TestEnv, wait_until};
