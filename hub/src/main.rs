//! `hub`: the integration hub's command line (see `hub --help`).

use std::process::ExitCode;

fn main() -> ExitCode {
    hub_runtime::tls::install_default_provider();
    hub::cli::main(hub::plan)
}
