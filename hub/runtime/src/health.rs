//! Liveness and readiness, for `GET /healthz` and `GET /readyz` on the HTTP listener.
//!
//! Alive means the process serves HTTP at all. Ready means it can do its work now: the broker
//! connection is up, the database answers `SELECT 1` within [`DATABASE_TIMEOUT`], and the
//! outbox relay keeps up (the oldest unsent outbox row is younger than
//! `HUB_READY_MAX_OUTBOX_LAG`). The decision is a pure function of what was observed
//! ([`decide`]), so it is tested without breaking a server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use sqlx::PgPool;

use crate::broker::Broker;

/// The longest a readiness probe waits for the database.
pub const DATABASE_TIMEOUT: Duration = Duration::from_secs(2);

/// What readiness checks, and against which bounds.
#[derive(Debug, Clone)]
pub struct Readiness {
    broker: Broker,
    pool: PgPool,
    max_outbox_lag: Duration,
}

/// What a probe saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// Whether a broker connection is up.
    pub broker_connected: bool,
    /// How long `SELECT 1` took, or why it did not answer.
    pub database: Result<Duration, String>,
    /// The age of the oldest unsent outbox row (`None`: every row is sent), or why it could
    /// not be read.
    pub outbox_lag: Result<Option<Duration>, String>,
}

/// One check's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Passed.
    pub ok: bool,
    /// What was seen, for a person.
    pub detail: String,
}

/// The readiness verdict: `GET /readyz`'s body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// `ready` or `not_ready`.
    pub status: &'static str,
    /// Each check by name: `broker`, `database`, `outbox`.
    pub checks: std::collections::BTreeMap<&'static str, Check>,
    /// The names of the failing checks.
    pub failing: Vec<&'static str>,
}

impl Report {
    /// True when every check passed.
    pub fn is_ready(&self) -> bool {
        self.failing.is_empty()
    }
}

impl Readiness {
    /// Checks `broker` and `pool`; the outbox may lag at most `max_outbox_lag`.
    pub fn new(broker: Broker, pool: PgPool, max_outbox_lag: Duration) -> Self {
        Self {
            broker,
            pool,
            max_outbox_lag,
        }
    }

    /// Whether the broker connection is up now.
    pub fn broker_connected(&self) -> bool {
        self.broker.is_connected()
    }

    /// Looks at the broker, the database and the outbox, and decides.
    pub async fn check(&self) -> Report {
        decide(&self.observe().await, self.max_outbox_lag)
    }

    async fn observe(&self) -> Observation {
        let started = Instant::now();
        let database = match tokio::time::timeout(
            DATABASE_TIMEOUT,
            sqlx::query("SELECT 1").execute(&self.pool),
        )
        .await
        {
            Ok(Ok(_)) => Ok(started.elapsed()),
            Ok(Err(e)) => Err(format!("SELECT 1 failed: {e}")),
            Err(_) => Err(format!(
                "SELECT 1 did not answer within {DATABASE_TIMEOUT:?}"
            )),
        };
        let outbox_lag = if database.is_ok() {
            let lag: Result<Result<Option<f64>, sqlx::Error>, _> = tokio::time::timeout(
                DATABASE_TIMEOUT,
                sqlx::query_scalar(
                    "SELECT extract(epoch FROM now() - min(created_at))::float8
                     FROM outbox WHERE sent_at IS NULL",
                )
                .fetch_one(&self.pool),
            )
            .await;
            match lag {
                Ok(Ok(seconds)) => Ok(seconds.map(|s| Duration::from_secs_f64(s.max(0.0)))),
                Ok(Err(e)) => Err(format!("the outbox could not be read: {e}")),
                Err(_) => Err(format!(
                    "the outbox could not be read within {DATABASE_TIMEOUT:?}"
                )),
            }
        } else {
            Err("unknown: the database did not answer".to_owned())
        };
        Observation {
            broker_connected: self.broker.is_connected(),
            database,
            outbox_lag,
        }
    }
}

/// The verdict on what a probe saw: every check must pass for the hub to be ready.
pub fn decide(seen: &Observation, max_outbox_lag: Duration) -> Report {
    let mut checks = std::collections::BTreeMap::new();
    checks.insert(
        "broker",
        if seen.broker_connected {
            pass("connected")
        } else {
            fail("no connection to the broker; reconnecting".to_owned())
        },
    );
    checks.insert(
        "database",
        match &seen.database {
            Ok(took) => pass(&format!("SELECT 1 answered in {} ms", took.as_millis())),
            Err(e) => fail(e.clone()),
        },
    );
    checks.insert(
        "outbox",
        match &seen.outbox_lag {
            Ok(None) => pass("every row is sent"),
            Ok(Some(lag)) if *lag <= max_outbox_lag => pass(&format!(
                "the oldest unsent row is {:.1} s old (bound {:?})",
                lag.as_secs_f64(),
                max_outbox_lag
            )),
            Ok(Some(lag)) => fail(format!(
                "the oldest unsent row is {:.1} s old, over the bound of {:?} (HUB_READY_MAX_OUTBOX_LAG)",
                lag.as_secs_f64(),
                max_outbox_lag
            )),
            Err(e) => fail(e.clone()),
        },
    );
    let failing: Vec<&'static str> = checks
        .iter()
        .filter(|(_, c)| !c.ok)
        .map(|(name, _)| *name)
        .collect();
    Report {
        status: if failing.is_empty() {
            "ready"
        } else {
            "not_ready"
        },
        checks,
        failing,
    }
}

fn pass(detail: &str) -> Check {
    Check {
        ok: true,
        detail: detail.to_owned(),
    }
}

fn fail(detail: String) -> Check {
    Check { ok: false, detail }
}

/// An external system the hub talks to.
#[derive(Debug, Clone)]
pub struct ExternalSystem {
    /// What operators call it.
    pub name: String,
    /// Where it is.
    pub target: Target,
    /// The TLS an `https://` target is reached with: the rustls config its adapter is built
    /// with (the system's CA bundle, the client certificate shown to it), so that a probe
    /// trusts and shows what the adapter does. `None`: the process's default client (the OS
    /// trust store, no client certificate).
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// How to reach an external system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An HTTP API, probed with a `GET` of this URL (a cheap endpoint of the API: up when it
    /// answers `2xx`).
    Http(url::Url),
    /// A TCP service (the mail server).
    Tcp {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> Observation {
        Observation {
            broker_connected: true,
            database: Ok(Duration::from_millis(2)),
            outbox_lag: Ok(Some(Duration::from_secs(1))),
        }
    }

    const BOUND: Duration = Duration::from_secs(30);

    #[test]
    fn all_checks_passing_is_ready() {
        let r = decide(&healthy(), BOUND);
        assert!(r.is_ready());
        assert_eq!(r.status, "ready");
        assert_eq!(
            r.checks.keys().copied().collect::<Vec<_>>(),
            ["broker", "database", "outbox"]
        );
        let empty = Observation {
            outbox_lag: Ok(None),
            ..healthy()
        };
        assert!(decide(&empty, BOUND).is_ready());
    }

    #[test]
    fn each_failing_check_is_named() {
        let no_broker = Observation {
            broker_connected: false,
            ..healthy()
        };
        assert_eq!(decide(&no_broker, BOUND).failing, ["broker"]);

        let no_database = Observation {
            database: Err("SELECT 1 did not answer within 2s".into()),
            outbox_lag: Err("unknown: the database did not answer".into()),
            ..healthy()
        };
        let r = decide(&no_database, BOUND);
        assert_eq!(r.status, "not_ready");
        assert_eq!(r.failing, ["database", "outbox"]);
        assert!(r.checks["database"].detail.contains("SELECT 1"));

        let lagging = Observation {
            outbox_lag: Ok(Some(Duration::from_secs(31))),
            ..healthy()
        };
        let r = decide(&lagging, BOUND);
        assert_eq!(r.failing, ["outbox"]);
        assert!(
            r.checks["outbox"]
                .detail
                .contains("HUB_READY_MAX_OUTBOX_LAG")
        );
        // At the bound is still ready; a zero bound fails on any pending row.
        let at_bound = Observation {
            outbox_lag: Ok(Some(BOUND)),
            ..healthy()
        };
        assert!(decide(&at_bound, BOUND).is_ready());
        assert_eq!(decide(&healthy(), Duration::ZERO).failing, ["outbox"]);
    }

    #[test]
    fn the_report_serialises_as_the_endpoint_answers() {
        let json = serde_json::to_value(decide(&healthy(), BOUND)).expect("JSON");
        assert_eq!(json["status"], "ready");
        assert_eq!(json["checks"]["database"]["ok"], true);
        assert_eq!(json["failing"], serde_json::json!([]));
    }
}
