//! The lab: the whole portal on one machine with a simulator of every external system
//! ([`stage`]), and what runs on it — the [`demo`], the benchmark ([`bench`]) and the chaos run
//! ([`chaos`]). The only crate of the hub that links the simulators; the production binary
//! (`cargo build -p hub --no-default-features`) leaves it out.

pub mod bench;
pub mod chaos;
pub mod demo;
pub mod parties;
pub mod sandbox;
pub mod simulated;
pub mod stage;

/// The OpenAPI 3.1 documents of the simulators' APIs (`simulators::openapi::documents`), by file
/// stem, for `hub contracts export`: the hub links the simulators only through the lab.
pub fn simulator_openapi() -> Vec<(&'static str, serde_json::Value)> {
    simulators::openapi::documents()
}
