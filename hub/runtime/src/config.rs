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
    #[arg(long, env = "AMQP_URL", default_value = DEV_AMQP_URL)]
    pub amqp_url: String,

    /// PostgreSQL URL.
    #[arg(long, env = "DATABASE_URL", default_value = DEV_DATABASE_URL)]
    pub database_url: String,

    /// PEM bundle of CA certificates the broker's certificate is verified against (an
    /// `amqps://` URL), added to the OS trust store.
    #[arg(long, env = "HUB_AMQP_CA_FILE")]
    pub amqp_ca_file: Option<std::path::PathBuf>,

    /// PEM client certificate (chain) shown to the broker (`amqps://`), with
    /// `HUB_AMQP_CLIENT_KEY`.
    #[arg(long, env = "HUB_AMQP_CLIENT_CERT")]
    pub amqp_client_cert: Option<std::path::PathBuf>,

    /// PEM private key of `HUB_AMQP_CLIENT_CERT`.
    #[arg(long, env = "HUB_AMQP_CLIENT_KEY")]
    pub amqp_client_key: Option<std::path::PathBuf>,

    /// Prefix of every exchange and queue name, so several hubs or tests share one broker.
    #[arg(long, env = "HUB_NAMESPACE", default_value = "hub", value_parser = parse_namespace)]
    pub namespace: Namespace,

    /// Unacked messages in flight per queue.
    #[arg(long, env = "HUB_PREFETCH", default_value_t = 32)]
    pub prefetch: u16,

    /// Most messages of a saga's queue handled in one database transaction: the deliveries
    /// already received when one arrives are taken together, none is waited for. 1 handles every
    /// message in a transaction of its own.
    #[arg(long, env = "HUB_BATCH", default_value_t = 32)]
    pub batch: usize,

    /// Batches in flight at once per saga queue, each on a channel of its own with
    /// `HUB_PREFETCH` unacked deliveries.
    #[arg(long, env = "HUB_BATCH_LANES", default_value_t = 2)]
    pub batch_lanes: usize,

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

    /// Inbox rows received and outbox rows sent longer ago than this are removed: a copy of a
    /// message arriving within it of the first is still dropped ([`crate::store::retention`]).
    /// At least a day, and twice the whole retry schedule.
    #[arg(long, env = "HUB_RETENTION", default_value = "7d", value_parser = parse_duration)]
    pub retention: Duration,

    /// Rows of a table removed per retention transaction.
    #[arg(long, env = "HUB_RETENTION_BATCH", default_value_t = 1000)]
    pub retention_batch: i64,

    /// How often retention runs.
    #[arg(long, env = "HUB_RETENTION_EVERY", default_value = "5m", value_parser = parse_duration)]
    pub retention_every: Duration,
}

/// The development broker: the local RabbitMQ as `guest`, in plain text.
pub const DEV_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// The development database: the local PostgreSQL, in plain text.
pub const DEV_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/hub";

/// A setting production mode refuses (`HUB_ENV=production`): the variable, why, and how to set
/// it right. In development the ones that are development defaults are announced at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The environment variable (or variables) to set.
    pub variable: String,
    /// Why it is refused.
    pub why: String,
    /// How to set it.
    pub how: String,
    /// It is a development default (a value in the repository, or unset), not a value given.
    pub dev_default: bool,
}

impl Problem {
    /// A problem of `variable`.
    pub fn new(
        variable: impl Into<String>,
        why: impl Into<String>,
        how: impl Into<String>,
        dev_default: bool,
    ) -> Self {
        Self {
            variable: variable.into(),
            why: why.into(),
            how: how.into(),
            dev_default,
        }
    }
}

impl std::fmt::Display for Problem {
    /// One line: `VARIABLE: why; how`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}; {}", self.variable, self.why, self.how)
    }
}

/// What production mode refuses in the broker's and the database's URLs: a broker node not
/// reached over TLS (`amqps://`) or as `guest` (also when no user is given: the client then
/// logs in as `guest`), a database URL without `sslmode=verify-full` or `sslmode=verify-ca`.
pub fn production_problems(config: &HubConfig) -> Vec<Problem> {
    let mut problems = Vec::new();
    let amqp_default = config.amqp_url == DEV_AMQP_URL;
    let nodes = crate::broker::amqp_urls(&config.amqp_url);
    let mut plain = Vec::new();
    let mut guest = Vec::new();
    for node in &nodes {
        match url::Url::parse(node) {
            Ok(u) => {
                if u.scheme() != "amqps" {
                    plain.push(mask_url(node));
                }
                if u.username().is_empty() || u.username() == "guest" {
                    guest.push(mask_url(node));
                }
            }
            Err(_) => plain.push("<unparseable URL>".to_owned()),
        }
    }
    if nodes.is_empty() {
        plain.push("(empty)".to_owned());
    }
    if !plain.is_empty() {
        problems.push(Problem::new(
            "AMQP_URL",
            format!(
                "the broker is reached in plain text ({}): messages, sealed codes and the hub's broker password cross the network readable",
                plain.join(", ")
            ),
            "give each node as amqps://USER:PASSWORD@HOST:5671/VHOST (RabbitMQ's TLS listener)",
            amqp_default,
        ));
    }
    if !guest.is_empty() {
        problems.push(Problem::new(
            "AMQP_URL",
            format!(
                "the broker user is guest ({}), the well-known default account",
                guest.join(", ")
            ),
            "create the hub's own user (rabbitmqctl add_user hub ...) and put it in the URL; delete guest",
            amqp_default,
        ));
    }
    if !database_verifies_tls(&config.database_url) {
        problems.push(Problem::new(
            "DATABASE_URL",
            format!(
                "the database is not reached over verified TLS ({}): rows and the password cross the network readable or to an unchecked server",
                mask_url(&config.database_url)
            ),
            "add ?sslmode=verify-full (or verify-ca) and sslrootcert=/path/to/ca.pem to the URL, e.g. postgres://hub:PASSWORD@db.example.by:5432/hub?sslmode=verify-full",
            config.database_url == DEV_DATABASE_URL,
        ));
    }
    problems
}

/// The URL asks the client to verify the server's certificate (`sslmode=verify-full` or
/// `verify-ca`).
fn database_verifies_tls(database_url: &str) -> bool {
    url::Url::parse(database_url).is_ok_and(|u| {
        u.query_pairs().any(|(k, v)| {
            k == "sslmode"
                && (v.eq_ignore_ascii_case("verify-full") || v.eq_ignore_ascii_case("verify-ca"))
        })
    })
}

impl HubConfig {
    /// The retention settings, refused when the horizon is shorter than
    /// [`crate::store::retention::minimum_horizon`] (a copy of a message still retried could be
    /// handled twice).
    ///
    /// Errors: the horizon is too short, said with the minimum.
    pub fn retention_settings(&self) -> Result<crate::store::retention::RetentionSettings, String> {
        let tiers: Vec<Duration> = self.retry_tiers.0.iter().map(|t| t.delay).collect();
        let minimum = crate::store::retention::minimum_horizon(
            &tiers,
            self.max_attempts,
            self.handler_timeout,
        );
        if self.retention < minimum {
            return Err(format!(
                "HUB_RETENTION {}s is shorter than {}s (a day, or twice the whole retry schedule): \
                 a copy of a message still being retried could be handled twice; give at least \
                 {}h",
                self.retention.as_secs(),
                minimum.as_secs(),
                minimum.as_secs().div_ceil(3600)
            ));
        }
        Ok(crate::store::retention::RetentionSettings {
            horizon: self.retention,
            batch: self.retention_batch.max(1),
            every: self.retention_every.max(Duration::from_secs(1)),
        })
    }

    /// The broker connection's TLS settings, files read and checked.
    ///
    /// Errors: a file that cannot be read or parsed, named with its variable.
    pub fn broker_tls(&self) -> Result<crate::tls::BrokerTls, crate::tls::TlsFileError> {
        crate::tls::BrokerTls::load(
            self.amqp_ca_file.as_deref(),
            self.amqp_client_cert.as_deref(),
            self.amqp_client_key.as_deref(),
        )
    }
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

/// Parses `250ms`, `5s`, `2m`, `1h`, `7d`.
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
        "d" => Ok(Duration::from_secs(n * 24 * 3600)),
        _ => Err(format!("{s:?} has unit {unit:?}: use ms, s, m, h or d")),
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

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        config: HubConfig,
    }

    fn parsed(args: &[&str]) -> HubConfig {
        <Cli as clap::Parser>::try_parse_from(std::iter::once("hub").chain(args.iter().copied()))
            .expect("parses")
            .config
    }

    #[test]
    fn a_retention_shorter_than_a_day_or_the_retry_schedule_is_refused() {
        let default = parsed(&[])
            .retention_settings()
            .expect("the default passes");
        assert_eq!(default.horizon, Duration::from_secs(7 * 24 * 3600));
        let short = parsed(&["--retention", "12h"])
            .retention_settings()
            .expect_err("half a day");
        assert!(
            short.contains("HUB_RETENTION 43200s is shorter than 86400s"),
            "{short}"
        );
        let slow = parsed(&["--retention", "2d", "--retry-tiers", "1h,2d"])
            .retention_settings()
            .expect_err("shorter than twice the retry schedule");
        assert!(slow.contains("give at least"), "{slow}");
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
    }

    #[test]
    fn production_refuses_a_plain_or_guest_broker_and_an_unverified_database() {
        let dev = parsed(&[
            "--amqp-url",
            DEV_AMQP_URL,
            "--database-url",
            DEV_DATABASE_URL,
        ]);
        let problems = production_problems(&dev);
        let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(problems.len(), 3, "{lines:#?}");
        assert!(problems.iter().all(|p| p.dev_default), "{lines:#?}");
        assert!(lines[0].starts_with("AMQP_URL: ") && lines[0].contains("plain text"));
        assert!(lines[1].starts_with("AMQP_URL: ") && lines[1].contains("guest"));
        assert!(lines[2].starts_with("DATABASE_URL: ") && lines[2].contains("verify-full"));
        assert!(
            !lines.iter().any(|l| l.contains(":guest@")),
            "no password shown"
        );

        // A cluster: one node in plain text, one with no user (guest to the client).
        let mixed = parsed(&[
            "--amqp-url",
            "amqps://hub:pw@mq1:5671/%2f,amqp://hub:pw@mq2:5672/%2f,amqps://mq3/%2f",
            "--database-url",
            "postgres://hub:pw@db/hub?sslmode=require",
        ]);
        let lines: Vec<String> = production_problems(&mixed)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(lines.len(), 3, "{lines:#?}");
        assert!(
            lines[0].contains("mq2") && !lines[0].contains("mq1"),
            "{}",
            lines[0]
        );
        assert!(lines[1].contains("mq3"), "{}", lines[1]);
        assert!(
            lines[2].contains("DATABASE_URL"),
            "sslmode=require does not verify"
        );

        let good = parsed(&[
            "--amqp-url",
            "amqps://hub:pw@mq1:5671/%2f,amqps://hub:pw@mq2:5671/%2f",
            "--database-url",
            "postgres://hub:pw@db/hub?sslmode=verify-ca&sslrootcert=/etc/hub/ca.pem",
        ]);
        assert_eq!(production_problems(&good), Vec::new());
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
