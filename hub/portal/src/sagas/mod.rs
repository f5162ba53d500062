//! The business sagas. Each is a pure state machine (see `engine`); this module holds them and
//! nothing else.

pub mod account;
pub mod issuance;
pub(crate) mod identity;
