//! The external systems, one folder each, the way `simulators/src/` has them: a system's
//! worker (a service that takes a contract command off its queue, calls the system through its
//! adapter in the `adapters` crate and answers the saga that asked; the call carries the
//! command's message id as its idempotency key, so a redelivered command does not act twice)
//! sits beside its callback (what the system sends back over HTTP, checked and put on the bus).

pub mod backoffice;
pub mod email;
pub mod erip;
pub mod mvd;
pub mod sms;
