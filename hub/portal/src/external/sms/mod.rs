//! The mobile operators' SMS gateways, and the per-phone limits.

pub mod worker;
