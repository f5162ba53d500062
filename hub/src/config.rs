//! Configuration: a typed struct read once at start from flags and the environment, with
//! defaults that work against the local RabbitMQ and PostgreSQL.

use std::time::Duration;

use clap::Args;
use contracts::{Namespace, RetryTier};

/// Where the hub connects and how it runs. Every field has a flag and an environment variable.
#[derive(Debug, Clone, Args)]
pub struct HubConfig {
    /// RabbitMQ URL; for a cluster, its nodes' URLs separated by commas: the hub connects to
    /// the first that answers and, when the connection is lost, tries the others in turn.
    #[arg(
        long,
        env = "AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub amqp_url: String,

    /// PostgreSQL URL.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/hub"
    )]
    pub database_url: String,

    /// Prefix of every exchange and queue name, so several hubs or tests share one broker.
    #[arg(long, env = "HUB_NAMESPACE", default_value = "hub", value_parser = parse_namespace)]
    pub namespace: Namespace,

    /// Unacked messages in flight per queue.
    #[arg(long, env = "HUB_PREFETCH", default_value_t = 32)]
    pub prefetch: u16,

    /// Handling attempts before a transiently failing message is dead-lettered.
    #[arg(long, env = "HUB_MAX_ATTEMPTS", default_value_t = 8)]
    pub max_attempts: u32,

    /// Redeliveries after which the broker itself dead-letters a message (quorum queue
    /// `x-delivery-limit`); bounds poison messages that crash the process.
    #[arg(long, env = "HUB_DELIVERY_LIMIT", default_value_t = 20)]
    pub delivery_limit: u32,

    /// Delays of the retry tiers, shortest first, comma separated (`500ms,5s,30s,2m,10m`).
    #[arg(long, env = "HUB_RETRY_TIERS", default_value = "1s,5s,30s,2m,10m", value_parser = parse_tiers)]
    pub retry_tiers: Tiers,

    /// Random spread of retry delays (0.2 = ±20%).
    #[arg(long, env = "HUB_RETRY_JITTER", default_value_t = 0.2)]
    pub retry_jitter: f64,

    /// A handler running longer than this is a transient failure.
    #[arg(long, env = "HUB_HANDLER_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub handler_timeout: Duration,

    /// PostgreSQL connections in the pool.
    #[arg(long, env = "HUB_DB_POOL", default_value_t = 16)]
    pub db_pool: u32,

    /// Outbox rows the relay publishes per batch.
    #[arg(long, env = "HUB_RELAY_BATCH", default_value_t = 256)]
    pub relay_batch: i64,

    /// How often the relay and the timer poller look for work when no notification came.
    #[arg(long, env = "HUB_POLL_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub poll_interval: Duration,

    /// Longest wait for in-flight work when draining on SIGINT/SIGTERM.
    #[arg(long, env = "HUB_DRAIN_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub drain_timeout: Duration,

    /// `GET /readyz` fails while the oldest unsent outbox row is older than this: the relay is
    /// not keeping up (or not running anywhere).
    #[arg(long, env = "HUB_READY_MAX_OUTBOX_LAG", default_value = "30s", value_parser = parse_duration)]
    pub ready_max_outbox_lag: Duration,
}

/// Where the external systems are and how the business sagas behave. Separate from
/// [`HubConfig`] because the messaging core does not need it.
#[derive(Clone, Args)]
pub struct IntegrationConfig {
    /// Base URL of the MVD population registry.
    #[arg(long, env = "HUB_MVD_URL", default_value = "http://127.0.0.1:8101/")]
    pub mvd_url: url::Url,

    /// Base URL of operator A1's SMS gateway.
    #[arg(long, env = "HUB_SMS_A1_URL", default_value = "http://127.0.0.1:8111/")]
    pub sms_a1_url: url::Url,

    /// Base URL of operator MTS's SMS gateway.
    #[arg(
        long,
        env = "HUB_SMS_MTS_URL",
        default_value = "http://127.0.0.1:8112/"
    )]
    pub sms_mts_url: url::Url,

    /// Base URL of operator life:)'s SMS gateway.
    #[arg(
        long,
        env = "HUB_SMS_LIFE_URL",
        default_value = "http://127.0.0.1:8113/"
    )]
    pub sms_life_url: url::Url,

    /// Sender id shown on the hub's SMS.
    #[arg(long, env = "HUB_SMS_SENDER", default_value = "E-SERVICES")]
    pub sms_sender: String,

    /// Timeout of one call to an external system.
    #[arg(long, env = "HUB_HTTP_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub http_timeout: Duration,

    /// Base URL of ERIP's invoicing API.
    #[arg(long, env = "HUB_ERIP_URL", default_value = "http://127.0.0.1:8121/")]
    pub erip_url: url::Url,

    /// ERIP's shared secret for the HMAC signature of its notifications.
    #[arg(
        long,
        env = "HUB_ERIP_SECRET",
        default_value = "erip-dev-secret",
        hide_env_values = true
    )]
    pub erip_secret: String,

    /// How long an ERIP invoice may stay unpaid before the application ends.
    #[arg(long, env = "HUB_PAYMENT_TTL", default_value = "72h", value_parser = parse_duration)]
    pub payment_ttl: Duration,

    /// Where the hub listens for callbacks (operators' delivery reports).
    #[arg(long, env = "HUB_HTTP_ADDR", default_value = "127.0.0.1:8090")]
    pub http_addr: std::net::SocketAddr,

    /// The callback base URL the external systems are given (how they reach `HUB_HTTP_ADDR`).
    #[arg(
        long,
        env = "HUB_CALLBACK_URL",
        default_value = "http://127.0.0.1:8090/"
    )]
    pub callback_url: url::Url,

    /// Key that seals codes and passwords on their way to the SMS worker: 32 random bytes in
    /// base64, optionally prefixed by a key id (`k2:...`). Unset: a development key, with a
    /// warning.
    #[arg(long, env = "HUB_SEAL_KEY", hide_env_values = true)]
    pub seal_key: Option<String>,

    /// How long a phone confirmation code is valid.
    #[arg(long, env = "HUB_PHONE_CODE_TTL", default_value = "10m", value_parser = parse_duration)]
    pub phone_code_ttl: Duration,

    /// Codes a desk may try before the application is rejected.
    #[arg(long, env = "HUB_PHONE_CODE_ATTEMPTS", default_value_t = 3)]
    pub phone_code_attempts: u32,

    /// How long a temporary password is valid.
    #[arg(long, env = "HUB_TEMP_PASSWORD_TTL", default_value = "72h", value_parser = parse_duration)]
    pub temp_password_ttl: Duration,

    /// The portal's mail server, `smtp://host:port` (or `smtps://user:password@host`).
    #[arg(
        long,
        env = "HUB_SMTP_URL",
        default_value = "smtp://127.0.0.1:2525",
        hide_env_values = true
    )]
    pub smtp_url: url::Url,

    /// The sender of the portal's e-mails.
    #[arg(
        long,
        env = "HUB_EMAIL_FROM",
        default_value = "E-Services Portal <noreply@portal.example.by>"
    )]
    pub email_from: String,

    /// The portal's public address: activation links point at `<it>activate?token=...`.
    #[arg(long, env = "HUB_PORTAL_URL", default_value = "http://127.0.0.1:8080/")]
    pub portal_url: url::Url,

    /// GosSUOK, the state PKI: CRLs and certificate status.
    #[arg(
        long,
        env = "HUB_GOSSUOK_URL",
        default_value = "http://127.0.0.1:8141/"
    )]
    pub gossuok_url: url::Url,

    /// Files with the trusted root certificates of EDS chains (DER or PEM), comma separated:
    /// the real KUC/RUC roots in production. None: EDS proofs are refused as `untrusted_chain`
    /// (with a warning at start).
    #[arg(long, env = "HUB_EDS_TRUSTED_ROOTS", value_delimiter = ',')]
    pub eds_trusted_root_files: Vec<std::path::PathBuf>,

    /// Trusted roots given in code (the demo and the tests take the simulator's), DER.
    #[arg(skip)]
    pub eds_trusted_roots: Vec<Vec<u8>>,

    /// The settings the catalogue's HTTP authorities name (`base_url_key`, `secret_key`, e.g.
    /// `HUB_AUTHORITY_TAX_MINISTRY_URL`). A key not given here is read from the environment;
    /// unset there too, the URL is the back-office simulator's
    /// (`http://127.0.0.1:8131/<authority>/`) and the secret its development one.
    #[arg(skip)]
    pub authority_settings: std::collections::HashMap<String, String>,

    /// The operators' web console ([`crate::ops::console`]).
    #[command(flatten)]
    pub console: ConsoleConfig,

    /// Per-phone limits against brute force and SMS floods ([`crate::workers::sms::PhoneLimits`]).
    #[command(flatten)]
    pub limits: LimitsConfig,
}

/// Per-phone limits: SMS to one number, recovery codes to one number, wrong codes typed for one
/// number, each in a rolling window shared by every hub process (kept in PostgreSQL). A limit is
/// at least 1: a security limit is not switched off by a zero.
#[derive(Debug, Clone, Args)]
pub struct LimitsConfig {
    /// SMS of any kind sent to one number in `HUB_SMS_PER_PHONE_WINDOW`; more are not sent (the
    /// requester gets the usual "not sent" answer).
    #[arg(
        long = "sms-per-phone",
        env = "HUB_SMS_PER_PHONE",
        default_value_t = 10,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub sms_per_phone: u32,

    /// The window of `HUB_SMS_PER_PHONE`.
    #[arg(long = "sms-per-phone-window", env = "HUB_SMS_PER_PHONE_WINDOW", default_value = "1h", value_parser = parse_duration)]
    pub sms_window: Duration,

    /// Password recovery codes sent to one number in `HUB_RECOVERY_CODES_WINDOW`, whichever
    /// identifiers they were asked for.
    #[arg(
        long = "recovery-codes-per-phone",
        env = "HUB_RECOVERY_CODES_PER_PHONE",
        default_value_t = 3,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub recovery_codes_per_phone: u32,

    /// The window of `HUB_RECOVERY_CODES_PER_PHONE`.
    #[arg(long = "recovery-codes-window", env = "HUB_RECOVERY_CODES_WINDOW", default_value = "1h", value_parser = parse_duration)]
    pub recovery_codes_window: Duration,

    /// Shortest time between two recovery codes for one identifier.
    #[arg(long = "recovery-interval", env = "HUB_RECOVERY_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    pub recovery_interval: Duration,

    /// Wrong SMS codes (phone confirmation, password recovery) typed for one number in
    /// `HUB_WRONG_CODES_WINDOW`, over every application and account; then no further code is
    /// sent to it or checked until the window moves on.
    #[arg(
        long = "wrong-codes-per-phone",
        env = "HUB_WRONG_CODES_PER_PHONE",
        default_value_t = 10,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub wrong_codes_per_phone: u32,

    /// The window of `HUB_WRONG_CODES_PER_PHONE`.
    #[arg(long = "wrong-codes-window", env = "HUB_WRONG_CODES_WINDOW", default_value = "24h", value_parser = parse_duration)]
    pub wrong_codes_window: Duration,
}

impl Default for LimitsConfig {
    /// The defaults of the flags.
    fn default() -> Self {
        Self {
            sms_per_phone: 10,
            sms_window: Duration::from_secs(3600),
            recovery_codes_per_phone: 3,
            recovery_codes_window: Duration::from_secs(3600),
            recovery_interval: Duration::from_secs(60),
            wrong_codes_per_phone: 10,
            wrong_codes_window: Duration::from_secs(24 * 3600),
        }
    }
}

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
            if !crate::secrets::is_secret_hash(hash) {
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

/// The back-office simulator's development secret: the default of every HTTP authority's
/// `secret_key`, for one machine only.
pub const DEV_BACKOFFICE_SECRET: &str = "backoffice-dev-secret";

impl IntegrationConfig {
    /// Every trusted EDS root, DER: the files read (PEM converted) and the ones given in code.
    pub fn eds_roots(&self) -> anyhow::Result<Vec<Vec<u8>>> {
        let mut roots = self.eds_trusted_roots.clone();
        for path in &self.eds_trusted_root_files {
            let bytes = std::fs::read(path).map_err(|e| {
                anyhow::anyhow!("HUB_EDS_TRUSTED_ROOTS: cannot read {}: {e}", path.display())
            })?;
            roots.push(pem_or_der(&bytes).ok_or_else(|| {
                anyhow::anyhow!(
                    "HUB_EDS_TRUSTED_ROOTS: {} is neither DER nor a PEM certificate",
                    path.display()
                )
            })?);
        }
        Ok(roots)
    }

    /// The value of a setting the catalogue names: given in `authority_settings`, else from the
    /// environment.
    pub fn authority_setting(&self, key: &str) -> Option<String> {
        self.authority_settings
            .get(key)
            .cloned()
            .or_else(|| std::env::var(key).ok())
            .filter(|v| !v.is_empty())
    }

    /// Where an HTTP authority's back-office is, and the secret both sides sign with.
    pub fn backoffice(
        &self,
        authority: &str,
        base_url_key: &str,
        secret_key: &str,
    ) -> anyhow::Result<(url::Url, Vec<u8>)> {
        let url = match self.authority_setting(base_url_key) {
            Some(v) => {
                let mut url = url::Url::parse(&v).map_err(|e| {
                    anyhow::anyhow!("{base_url_key}={v:?} is not a URL ({e}); write e.g. https://backoffice.example.by/api/")
                })?;
                if !url.path().ends_with('/') {
                    let path = format!("{}/", url.path());
                    url.set_path(&path);
                }
                url
            }
            None => format!("http://127.0.0.1:8131/{authority}/").parse()?,
        };
        let secret = self
            .authority_setting(secret_key)
            .unwrap_or_else(|| DEV_BACKOFFICE_SECRET.to_owned());
        Ok((url, secret.into_bytes()))
    }
}

impl std::fmt::Debug for IntegrationConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntegrationConfig")
            .field("mvd_url", &self.mvd_url.as_str())
            .field("http_addr", &self.http_addr)
            .field("seal_key", &self.seal_key.as_ref().map(|_| "***"))
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// The DER inside a PEM certificate, or the bytes themselves when they look like DER.
fn pem_or_der(bytes: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine;
    if bytes.first() == Some(&0x30) {
        return Some(bytes.to_vec());
    }
    let text = std::str::from_utf8(bytes).ok()?;
    let body = text
        .split("-----BEGIN CERTIFICATE-----")
        .nth(1)?
        .split("-----END CERTIFICATE-----")
        .next()?;
    let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .ok()
}

/// Retry tier delays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tiers(pub Vec<RetryTier>);

fn parse_namespace(s: &str) -> Result<Namespace, String> {
    Namespace::new(s).map_err(|e| e.to_string())
}

fn parse_tiers(s: &str) -> Result<Tiers, String> {
    let tiers = s
        .split(',')
        .map(|t| parse_duration(t.trim()).map(|delay| RetryTier { delay }))
        .collect::<Result<Vec<_>, _>>()?;
    if tiers.is_empty() || tiers.windows(2).any(|w| w[0].delay > w[1].delay) {
        return Err("give at least one delay, in ascending order, e.g. 1s,5s,30s".into());
    }
    Ok(Tiers(tiers))
}

/// Parses `250ms`, `5s`, `2m`, `1h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| {
        format!("{s:?} is not a duration: write a number and a unit, e.g. 250ms, 5s, 2m, 1h")
    })?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!("{s:?} has unit {unit:?}: use ms, s, m or h")),
    }
}

/// The URL with its password replaced by `***`, for messages and logs.
pub fn mask_url(url: &str) -> String {
    // An `AMQP_URL` may name a cluster's nodes, each with its own password.
    let urls = crate::broker::amqp_urls(url);
    if urls.len() > 1 {
        return urls
            .iter()
            .map(|u| mask_url(u))
            .collect::<Vec<_>>()
            .join(", ");
    }
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "<unparseable URL>".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_tiers_parse_or_say_what_to_write() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("5").expect_err("no unit").contains("unit"));
        assert!(
            parse_duration("fast")
                .expect_err("no number")
                .contains("e.g.")
        );
        assert_eq!(parse_tiers("1s,5s").map(|t| t.0.len()), Ok(2));
        assert!(parse_tiers("5s,1s").is_err());
    }

    #[test]
    fn console_users_split_between_entries_not_inside_hashes() {
        let mut rng = rand::rng();
        let a = crate::secrets::hash_secret(&mut rng, "first password").expect("hash");
        let b = crate::secrets::hash_secret(&mut rng, "second password").expect("hash");
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

    #[test]
    fn the_limits_flags_default_to_the_limits_default() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            limits: LimitsConfig,
        }
        let parsed = <Cli as clap::Parser>::try_parse_from(["hub"]).expect("defaults");
        let d = LimitsConfig::default();
        assert_eq!(
            format!("{:?}", parsed.limits),
            format!("{d:?}"),
            "Default and the flags' defaults agree"
        );
        let set = <Cli as clap::Parser>::try_parse_from([
            "hub",
            "--sms-per-phone",
            "3",
            "--sms-per-phone-window",
            "10m",
        ])
        .expect("set");
        assert_eq!(set.limits.sms_per_phone, 3);
        assert_eq!(set.limits.sms_window, Duration::from_secs(600));
        assert!(
            <Cli as clap::Parser>::try_parse_from(["hub", "--sms-per-phone", "0"]).is_err(),
            "a zero limit is refused, not taken as off"
        );
    }

    #[test]
    fn passwords_are_masked() {
        assert_eq!(
            mask_url("amqp://guest:secret@host:5672/%2f"),
            "amqp://guest:***@host:5672/%2f"
        );
        assert_eq!(
            mask_url("postgres://postgres@127.0.0.1/hub"),
            "postgres://postgres@127.0.0.1/hub"
        );
        assert_eq!(mask_url("not a url"), "<unparseable URL>");
    }
}
