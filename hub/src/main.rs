//! `hub`: the integration hub's command line (see `hub --help`).

use std::process::ExitCode;

/// The business sagas register here as they land; until then the hub runs its relay and timers.
fn registrations() -> Vec<hub::app::Registration> {
    Vec::new()
}

fn main() -> ExitCode {
    hub::cli::main(registrations)
}
