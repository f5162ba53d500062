//! The business sagas. Each is a pure state machine (see `engine`); this module holds them and
//! nothing else.

pub mod account;
pub(crate) mod identity;
pub mod issuance;
