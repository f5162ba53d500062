//! The `hub` command line with the tests' ledger saga registered: the end-to-end tests run it
//! as a separate process so they can kill it with SIGKILL and run several at once.

use std::process::ExitCode;

fn main() -> ExitCode {
    hub::cli::main(|_, _| Ok(vec![e2e::ledger::registration()].into()))
}
