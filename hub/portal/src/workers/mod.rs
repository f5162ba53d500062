//! Adapter workers: services that take a contract command off their queue, call an external
//! system through its adapter, and answer the saga that asked. The call carries the command's
//! message id as its idempotency key, so a redelivered command does not act twice.

pub mod backoffice;
pub mod email;
pub mod erip;
pub mod mvd;
pub mod sms;
