//! Simulators of the external systems behind the hub: the MVD population registry, the mobile
//! operators' SMS gateways, ERIP and the GosSUOK PKI. Each speaks its system's own wire format
//! (not the adapters' types), so a mismatch between adapter and simulator shows up in a test.
//!
//! Not built yet: the first simulators arrive with the identifier-issuance saga. Until then the
//! binary says so and exits with EX_UNAVAILABLE, rather than pretending to serve.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("error: no simulator is built yet; they arrive with the identifier-issuance saga");
    ExitCode::from(69)
}
