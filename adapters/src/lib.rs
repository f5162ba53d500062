//! Adapters between the hub's contract commands and the external systems' HTTP APIs.
//!
//! Each external system gets a module here (mvd, sms, erip, gossuok, backoffice) as the issues
//! that need them land. What they share lives in [`failure`]: one classification of every
//! failure into what the runtime should do about it.

pub mod failure;

pub use failure::{Failure, FailureKind};
