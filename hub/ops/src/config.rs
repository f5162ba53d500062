//! The operators' console's configuration: where it listens and who may log in.

use clap::Args;

/// Where the operators' console listens and who may log in. It runs only when at least one
/// operator is configured: no users, no listener.
#[derive(Debug, Clone, Args)]
pub struct ConsoleConfig {
    /// Where the operators' console listens: its own port, not the callbacks' (keep it on a
    /// private interface).
    #[arg(
        long = "console-addr",
        env = "HUB_CONSOLE_ADDR",
        default_value = "127.0.0.1:8091"
    )]
    pub addr: std::net::SocketAddr,

    /// The console's operators, `name:argon2-PHC-hash`, comma separated; make a hash with
    /// `hub console hash-password`. Unset: the console does not run.
    #[arg(
        long = "console-users",
        env = "HUB_CONSOLE_USERS",
        default_value = "",
        hide_env_values = true,
        hide_default_value = true,
        value_parser = ConsoleUsersParser
    )]
    pub users: ConsoleUsers,

    /// The console is reached over TLS: behind a TLS-terminating proxy (it has no TLS of its
    /// own). Its cookies are then `__Host-` prefixed and `Secure`, so a browser never sends them
    /// in plain text. Production mode (`HUB_ENV=production`) refuses to serve the console
    /// without it.
    #[arg(
        long = "console-behind-tls",
        env = "HUB_CONSOLE_BEHIND_TLS",
        default_value_t = false,
        action = clap::ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new(),
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub behind_tls: bool,

    /// Password checks the console makes per second at most, whatever the names (a token
    /// bucket holding one second's worth): a login over it is refused (429, `Retry-After`)
    /// before its password is hashed, so spraying many names burns no more CPU than this. At
    /// least 1: a security limit is not switched off by a zero.
    #[arg(
        long = "console-login-rate",
        env = "HUB_CONSOLE_LOGIN_RATE",
        default_value_t = DEFAULT_LOGIN_RATE,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub login_rate: u32,

    /// How often the console samples throughput, queue depth, dead letters and saga time for
    /// the charts of its monitor page, which keep the last hour (`250ms`, `15s`, `1m`; at
    /// least 100 ms).
    #[arg(
        long = "console-sample-interval",
        env = "HUB_CONSOLE_SAMPLE_INTERVAL",
        default_value = "15s",
        value_parser = parse_sample_interval
    )]
    pub sample_interval: std::time::Duration,
}

/// A sample interval: a duration of at least 100 ms.
fn parse_sample_interval(s: &str) -> Result<std::time::Duration, String> {
    let interval = hub_runtime::config::parse_duration(s.trim())?;
    if interval < std::time::Duration::from_millis(100) {
        return Err(format!("{s:?} is too short: sample at most every 100ms"));
    }
    Ok(interval)
}

/// The default of `HUB_CONSOLE_LOGIN_RATE`: a handful of operators never log in faster, and
/// five argon2 checks a second take a small part of one core.
pub const DEFAULT_LOGIN_RATE: u32 = 5;

/// What production mode (`HUB_ENV=production`) refuses in the console's settings: no operator
/// (`HUB_CONSOLE_USERS` unset: the dead letters and stuck sagas would have no one to see them
/// but the command line), and a console served without TLS (`HUB_CONSOLE_BEHIND_TLS`). Neither
/// is announced in development (`dev_default` false): a console off, or on loopback without
/// TLS, is what one machine wants.
pub fn production_problems(config: &ConsoleConfig) -> Vec<hub_runtime::config::Problem> {
    use hub_runtime::config::Problem;
    let mut problems = Vec::new();
    if config.users.is_empty() {
        problems.push(Problem::new(
            "HUB_CONSOLE_USERS",
            "no operator is configured, so the operators' console does not run",
            "name each operator as name:argon2-hash, comma separated; make a hash with `hub console hash-password`",
            false,
        ));
    }
    if !config.behind_tls {
        problems.push(Problem::new(
            "HUB_CONSOLE_BEHIND_TLS",
            "the console would be served in plain text: operators' passwords and session cookies readable on the network",
            "serve it behind a TLS-terminating proxy (HUB_CONSOLE_ADDR on loopback or a private interface) and set HUB_CONSOLE_BEHIND_TLS=true",
            false,
        ));
    }
    problems
}

/// Parses `HUB_CONSOLE_USERS` with an error that does not repeat the value: a password written
/// there by mistake must not end up in a log.
#[derive(Debug, Clone, Copy)]
struct ConsoleUsersParser;

impl clap::builder::TypedValueParser for ConsoleUsersParser {
    type Value = ConsoleUsers;

    fn parse_ref(
        &self,
        _cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<ConsoleUsers, clap::Error> {
        let invalid = |e: &str| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("HUB_CONSOLE_USERS (--console-users): {e}\n"),
            )
        };
        let text = value.to_str().ok_or_else(|| invalid("not UTF-8"))?;
        ConsoleUsers::parse(text).map_err(|e| invalid(&e))
    }
}

impl Default for ConsoleConfig {
    /// The default address, no operators: off.
    fn default() -> Self {
        Self {
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], 8091)),
            users: ConsoleUsers::default(),
            behind_tls: false,
            login_rate: DEFAULT_LOGIN_RATE,
            sample_interval: crate::console::monitor::DEFAULT_INTERVAL,
        }
    }
}

/// The console's operators: each name with the argon2 hash (PHC string) of its password.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ConsoleUsers(std::collections::BTreeMap<String, String>);

impl ConsoleUsers {
    /// Reads `name:hash,name:hash`. A PHC hash has commas of its own (`m=19456,t=2,p=1`), so a
    /// new entry starts only where a piece reads `name:$`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut entries: Vec<String> = Vec::new();
        for piece in s.split(',') {
            let starts_entry = piece
                .trim()
                .split_once(':')
                .is_some_and(|(name, hash)| !name.is_empty() && hash.starts_with('$'));
            match entries.last_mut() {
                Some(last) if !starts_entry => {
                    last.push(',');
                    last.push_str(piece.trim());
                }
                _ if piece.trim().is_empty() => {}
                _ => entries.push(piece.trim().to_owned()),
            }
        }
        let mut users = std::collections::BTreeMap::new();
        for entry in entries {
            let (name, hash) = entry.split_once(':').ok_or_else(|| {
                "write each operator as name:hash, e.g. ivanova:$argon2id$v=19$...; make the hash with `hub console hash-password`".to_owned()
            })?;
            let valid_name = !name.is_empty()
                && name.len() <= 64
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c));
            if !valid_name {
                return Err(format!(
                    "{name:?} is not an operator name: use letters, digits, '.', '_', '@', '-'"
                ));
            }
            if !hub_runtime::secrets::is_secret_hash(hash) {
                return Err(format!(
                    "the hash of operator {name} is not an argon2 PHC string: make one with `hub console hash-password`"
                ));
            }
            if users.insert(name.to_owned(), hash.to_owned()).is_some() {
                return Err(format!("operator {name} is named twice"));
            }
        }
        Ok(Self(users))
    }

    /// One operator with this hash (tests and embedders).
    pub fn single(name: &str, hash: &str) -> Self {
        Self(std::collections::BTreeMap::from([(
            name.to_owned(),
            hash.to_owned(),
        )]))
    }

    /// No operator: the console is off.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The hash of `name`'s password.
    pub fn hash_of(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The operators' names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

impl std::fmt::Debug for ConsoleUsers {
    /// Names only: a hash is not for logs either.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        console: ConsoleConfig,
    }

    #[test]
    fn the_sample_interval_is_15s_by_default_and_at_least_100ms() {
        let parse = |args: &[&str]| {
            <Cli as clap::Parser>::try_parse_from(
                std::iter::once("hub").chain(args.iter().copied()),
            )
        };
        let default = parse(&[]).expect("defaults").console;
        assert_eq!(default.sample_interval, std::time::Duration::from_secs(15));
        assert_eq!(
            ConsoleConfig::default().sample_interval,
            default.sample_interval
        );
        let fast = parse(&["--console-sample-interval", "250ms"]).expect("250ms");
        assert_eq!(
            fast.console.sample_interval,
            std::time::Duration::from_millis(250)
        );
        for refused in ["0s", "50ms", "soon"] {
            let Err(e) = parse(&["--console-sample-interval", refused]) else {
                panic!("{refused} was taken");
            };
            assert!(e.to_string().contains(refused), "{e}");
        }
    }

    #[test]
    fn production_refuses_a_console_without_operators_or_tls() {
        let lines = |c: &ConsoleConfig| {
            production_problems(c)
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        };
        let off = ConsoleConfig::default();
        let found = lines(&off);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(found[0].starts_with("HUB_CONSOLE_USERS: "), "{found:#?}");
        assert!(
            found[1].starts_with("HUB_CONSOLE_BEHIND_TLS: "),
            "{found:#?}"
        );
        let hash = hub_runtime::secrets::hash_secret(&mut rand::rng(), "pw").expect("hash");
        let parsed = <Cli as clap::Parser>::try_parse_from([
            "hub",
            "--console-users",
            &format!("ivanova:{hash}"),
            "--console-behind-tls",
        ])
        .expect("parses")
        .console;
        assert!(parsed.behind_tls);
        assert_eq!(lines(&parsed), Vec::<String>::new());
        let explicit =
            <Cli as clap::Parser>::try_parse_from(["hub", "--console-behind-tls", "false"])
                .expect("parses")
                .console;
        assert!(!explicit.behind_tls);
    }

    #[test]
    fn the_login_rate_is_at_least_one() {
        let parse = |args: &[&str]| {
            <Cli as clap::Parser>::try_parse_from(
                std::iter::once("hub").chain(args.iter().copied()),
            )
            .map(|c| c.console.login_rate)
        };
        assert_eq!(parse(&[]).expect("default"), DEFAULT_LOGIN_RATE);
        assert_eq!(parse(&["--console-login-rate", "20"]).expect("parses"), 20);
        for refused in ["0", "-1", "fast"] {
            assert!(
                parse(&["--console-login-rate", refused]).is_err(),
                "{refused}"
            );
        }
    }

    #[test]
    fn console_users_split_between_entries_not_inside_hashes() {
        let mut rng = rand::rng();
        let a = hub_runtime::secrets::hash_secret(&mut rng, "first password").expect("hash");
        let b = hub_runtime::secrets::hash_secret(&mut rng, "second password").expect("hash");
        assert!(a.contains(','), "a PHC string has commas: {a}");
        let users = ConsoleUsers::parse(&format!("ivanova:{a}, petrov:{b}")).expect("users");
        assert_eq!(users.names().collect::<Vec<_>>(), ["ivanova", "petrov"]);
        assert_eq!(users.hash_of("petrov"), Some(b.as_str()));
        assert!(!format!("{users:?}").contains("argon2"), "no hash in Debug");
        assert!(ConsoleUsers::parse("").expect("none").is_empty());
        assert!(
            ConsoleUsers::parse("ivanova:secret").is_err(),
            "a clear password"
        );
        assert!(ConsoleUsers::parse(&format!("iva nova:{a}")).is_err());
        assert!(ConsoleUsers::parse(&format!("ivanova:{a},ivanova:{b}")).is_err());
    }
}
