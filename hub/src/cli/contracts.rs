//! `hub contracts`: export the published contracts, check them against the last release, and
//! release them ([`crate::contracts`]).

use std::path::PathBuf;

use anyhow::bail;

/// Where the repository keeps its published set.
const PUBLISHED: &str = "contracts/published";

#[derive(Debug, clap::Args)]
pub(crate) struct ContractsArgs {
    #[command(subcommand)]
    command: ContractsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ContractsCommand {
    /// Write the JSON Schema of every message body, the AsyncAPI document of the bus and the
    /// OpenAPI documents of the HTTP sides, as the code generates them.
    #[command(after_help = "Examples:\n  hub contracts export --out /tmp/c\n  \
                            hub contracts export   # into contracts/published")]
    Export {
        /// The directory to write into (created if needed).
        #[arg(long, default_value = PUBLISHED)]
        out: PathBuf,
    },
    /// Run the compatibility gate: compare the schemas the code generates with the last
    /// release (`<published>/baseline`) and list every breaking change. Exit 1 when one is
    /// found.
    #[command(after_help = "Example:\n  hub contracts check")]
    Check {
        /// The published set whose baseline to compare with.
        #[arg(long, default_value = PUBLISHED)]
        published: PathBuf,
    },
    /// Release the contracts: when the gate passes, make the current schemas the baseline and
    /// add a changelog entry. A type removed on purpose (its agencies moved to a newer version)
    /// must be named with --retire. Exit 1 on a breaking change, which needs a new version of
    /// the type instead.
    #[command(after_help = "Examples:\n  hub contracts release\n  \
                            hub contracts release --retire authority.decided.v1")]
    Release {
        /// The published set to release.
        #[arg(long, default_value = PUBLISHED)]
        published: PathBuf,
        /// A message type removed on purpose (repeatable).
        #[arg(long)]
        retire: Vec<String>,
    },
}

pub(crate) fn run(args: ContractsArgs) -> anyhow::Result<()> {
    match args.command {
        ContractsCommand::Export { out } => {
            let files = crate::contracts::generated();
            let n = crate::contracts::write(&out, &files)?;
            println!("wrote {n} files under {}", out.display());
            if !crate::contracts::WITH_SIMULATORS {
                eprintln!(
                    "note: this build has no lab, so the simulators' OpenAPI documents were not \
                     written (build with the default features for them)"
                );
            }
            Ok(())
        }
        ContractsCommand::Check { published } => {
            let breaks = crate::contracts::check(&published, &[])?;
            if breaks.is_empty() {
                println!(
                    "no breaking change since the release in {}",
                    published.join(crate::contracts::BASELINE_DIR).display()
                );
                return Ok(());
            }
            for b in &breaks {
                println!("{b}");
            }
            bail!(crate::contracts::Breaking(breaks))
        }
        ContractsCommand::Release { published, retire } => {
            let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
            let notes = crate::contracts::release(&published, &retire, &today)?;
            if notes.is_empty() {
                println!("nothing changed since the last release");
            } else {
                println!(
                    "released: {} added, {} changed, {} retired (see {})",
                    notes.added.len(),
                    notes.changed.len(),
                    notes.retired.len(),
                    published.join(crate::contracts::CHANGELOG_FILE).display()
                );
            }
            Ok(())
        }
    }
}
