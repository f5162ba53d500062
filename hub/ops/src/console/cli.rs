//! `hub console`: what an administrator needs to set the console up. Today one command,
//! `hash-password`, so that nobody writes a clear password into `HUB_CONSOLE_USERS`.

use std::io::{BufRead, IsTerminal};

use clap::{Args, Subcommand};

/// The shortest password `hash-password` accepts.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// `hub console ...`.
#[derive(Debug, Args)]
pub struct ConsoleArgs {
    #[command(subcommand)]
    command: ConsoleCommand,
}

#[derive(Debug, Subcommand)]
enum ConsoleCommand {
    /// Read a password from standard input (one line; not echoed on a terminal) and print its
    /// argon2 hash, for `HUB_CONSOLE_USERS=name:<hash>`.
    #[command(after_help = "Examples:\n  hub console hash-password\n  \
                      printf '%s' \"$PASSWORD\" | hub console hash-password\n  \
                      HUB_CONSOLE_USERS=\"ivanova:$(hub console hash-password)\" hub run")]
    HashPassword,
}

/// Runs `hub console ...`.
pub fn run(args: ConsoleArgs) -> anyhow::Result<()> {
    match args.command {
        ConsoleCommand::HashPassword => {
            let password = read_password()?;
            println!("{}", hash_password(&password)?);
            Ok(())
        }
    }
}

/// The argon2 hash (PHC string) of `password`, refused when shorter than
/// [`MIN_PASSWORD_CHARS`].
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        anyhow::bail!(
            "the password has {chars} characters; an operator's needs at least {MIN_PASSWORD_CHARS}"
        );
    }
    hub_runtime::secrets::hash_secret(&mut rand::rng(), password)
        .map_err(|f| anyhow::anyhow!("{}", f.reason))
}

/// One line of standard input, without its line end. On a terminal the line is not echoed
/// (`stty -echo` around the read).
fn read_password() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let terminal = stdin.is_terminal();
    let stty = |arg: &str| {
        std::process::Command::new("stty")
            .arg(arg)
            .stdin(std::process::Stdio::inherit())
            .status()
            .is_ok_and(|s| s.success())
    };
    let hidden = terminal && stty("-echo");
    if terminal {
        eprint!("Password (at least {MIN_PASSWORD_CHARS} characters): ");
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if hidden {
        stty("echo");
        eprintln!();
    }
    read?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        anyhow::bail!("no password on standard input");
    }
    Ok(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_and_short_ones_are_refused() {
        let hash = hash_password("correct horse battery").expect("hash");
        assert!(hub_runtime::secrets::is_secret_hash(&hash));
        assert!(hub_runtime::secrets::verify_secret(
            "correct horse battery",
            &hash
        ));
        assert!(hash_password("short").is_err());
    }
}
