//! The mail server.

pub mod worker;
