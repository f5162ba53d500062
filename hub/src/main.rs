//! `hub`: the integration hub's command line (see `hub --help`).

use std::process::ExitCode;

fn main() -> ExitCode {
    hub::cli::main(hub::plan)
}
