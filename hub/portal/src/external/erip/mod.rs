//! ERIP, the payment system.

pub mod worker;
