//! The dead-letter keeper: moves every dead letter from the broker into the `dead_letters`
//! table, where operators list, group, inspect, replay and discard them (`hub dlq`, the
//! console).
//!
//! It consumes the dead-letter queue `ns.Q.dead` of every work queue of the plan, and the bus's
//! `ns.unrouted` queue (messages no queue was bound for, kept with error kind `unrouted`). Each
//! letter is read into one row — what the `x-hub-*` headers say about the failure, every
//! property and header as JSON, the body as it came less its secrets — and acked only once the
//! row is committed. A body of a type that carries a secret was already redacted by the
//! consumer when the consumer dead-lettered it; one the consumer never saw (unrouted, or
//! dead-lettered by the broker itself) has its secret fields replaced here, by the contracts'
//! one list ([`contracts::SECRET_FIELDS`]), and is marked redacted so it is not replayed. A
//! secret that travels sealed stays sealed.
//! A letter is never lost for a database outage: the keeper holds it and tries again.
//!
//! The row is keyed by a fingerprint of the delivery (queue, properties less the broker's
//! redelivery count, body), so a letter redelivered after a crash between commit and ack is not
//! kept twice, while the same message failing again (new failure time) is a new row.
//!
//! Letters the broker dead-lettered itself (a quorum queue's delivery limit, an agency's reject)
//! or that came without the hub's headers are kept too, with what is known: their `x-death`
//! header, or nothing but the queue they were found on.

mod letter;
mod read;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use contracts::Topology;
use futures_util::FutureExt;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub(crate) use crate::broker::json_clean as clean;
use crate::broker::runner::{self, Consumption, Flow, Taken};
use crate::broker::{Broker, properties_to_json};
pub use letter::{COLUMNS, DeadLetter, DeadLetterKind, LetterStatus, UnknownStatus};
pub use read::read_letter;

/// The `queue` of letters taken from the bus's unrouted queue.
pub const UNROUTED: &str = "unrouted";

/// Header a replay adds: how many times an operator has replayed this message.
pub const REPLAYED: &str = "x-hub-replayed";

/// Header a replay adds: the `dead_letters` row the message was replayed from.
pub const DEAD_LETTER_ID: &str = "x-hub-dead-letter-id";

/// Header a quorum queue adds to a redelivered message; left out of the fingerprint, so a
/// letter redelivered to the keeper is recognised.
const DELIVERY_COUNT: &str = "x-delivery-count";

/// Unacked letters per queue the keeper holds at once.
const PREFETCH: u16 = 64;

/// Where the keeper found a letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The dead-letter queue of work queue `short` (short name, without the namespace).
    Dead {
        /// Short name of the work queue.
        short: String,
    },
    /// The bus's alternate exchange's queue: nothing was bound for the message.
    Unrouted,
}

impl Source {
    /// The `queue` column of letters from here.
    pub fn queue(&self) -> &str {
        match self {
            Source::Dead { short } => short,
            Source::Unrouted => UNROUTED,
        }
    }
}

/// The queues the keeper drains in `topology`, full name and source: every work queue's dead
/// letters, then the unrouted queue.
pub fn sources(topology: &Topology) -> Vec<(String, Source)> {
    topology
        .queues()
        .iter()
        .map(|q| {
            (
                topology.dead_queue(&q.name),
                Source::Dead {
                    short: q.name.clone(),
                },
            )
        })
        .chain(std::iter::once((topology.unrouted(), Source::Unrouted)))
        .collect()
}

/// Stores `letter` (as [`read_letter`] read it; its id is not written); returns its new row id,
/// or `None` when this delivery was kept before.
pub async fn keep(pool: &PgPool, letter: &DeadLetter) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO dead_letters (message_id, message_type, queue, original_exchange,
             original_routing_key, error_kind, error, attempts, first_failure_at, last_failure_at,
             correlation_id, properties, body, fingerprint, replayed_before, replayed_from,
             status, received_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
         ON CONFLICT (fingerprint) DO NOTHING
         RETURNING id",
    )
    .bind(letter.message_id)
    .bind(&letter.message_type)
    .bind(&letter.queue)
    .bind(&letter.original_exchange)
    .bind(&letter.original_routing_key)
    .bind(&letter.error_kind)
    .bind(&letter.error)
    .bind(letter.attempts)
    .bind(letter.first_failure_at)
    .bind(letter.last_failure_at)
    .bind(&letter.correlation_id)
    .bind(&letter.properties)
    .bind(&letter.body)
    .bind(&letter.fingerprint)
    .bind(letter.replayed_before)
    .bind(letter.replayed_from)
    .bind(letter.status)
    .bind(letter.received_at)
    .fetch_optional(pool)
    .await
}

/// Runs the keeper on every queue of [`sources`] until `shutdown`; a letter being stored when
/// it comes is finished first, the rest stay in their queues for the next start.
pub async fn run_keeper(
    broker: Broker,
    pool: PgPool,
    topology: Arc<Topology>,
    shutdown: CancellationToken,
) {
    let tasks = TaskTracker::new();
    for (queue, source) in sources(&topology) {
        let keeper = Arc::new(Keeper {
            pool: pool.clone(),
            topology: topology.clone(),
            source,
            shutdown: shutdown.clone(),
        });
        let consumption = Consumption {
            queue,
            prefetch: PREFETCH,
            // One letter at a time per queue: during a database outage one letter waits, not
            // the prefetch's worth each logging its own retries.
            flow: Flow::InOrder,
            consumer: "dead-letter keeper".to_owned(),
        };
        let (broker, shutdown) = (broker.clone(), shutdown.clone());
        tasks.spawn(async move {
            runner::consume(&broker, &consumption, &shutdown, |taken| {
                let keeper = keeper.clone();
                async move {
                    for letter in taken {
                        keeper.take(letter).await;
                    }
                }
                .boxed()
            })
            .await;
        });
    }
    tasks.close();
    tasks.wait().await;
    tracing::info!("dead-letter keeper stopped");
}

/// The keeper of one queue.
struct Keeper {
    pool: PgPool,
    topology: Arc<Topology>,
    source: Source,
    shutdown: CancellationToken,
}

impl Keeper {
    /// Reads and stores one letter, then acks it. Unacked (the hub shut down before it was
    /// stored, or the ack was lost), the broker gives it back; its fingerprint makes the copy
    /// harmless.
    async fn take(&self, taken: Taken) {
        let letter = read_letter(
            &self.topology,
            &self.source,
            taken.exchange(),
            taken.routing_key(),
            properties_to_json(taken.properties()),
            taken.body(),
            Utc::now(),
        );
        if self.store(&letter).await && !taken.ack().await {
            tracing::debug!(queue = %self.source.queue(), "keeper ack failed; the letter will come again");
        }
    }

    /// Stores `letter`, trying again (with a growing pause) until it is stored; false when the
    /// hub shuts down first.
    async fn store(&self, letter: &DeadLetter) -> bool {
        let queue = self.source.queue();
        let mut pause = Duration::from_millis(200);
        loop {
            match keep(&self.pool, letter).await {
                Ok(Some(id)) => {
                    tracing::info!(
                        id, %queue, message_id = ?letter.message_id,
                        message_type = letter.message_type.as_deref().unwrap_or("-"),
                        kind = %letter.error_kind, "dead letter kept"
                    );
                    return true;
                }
                Ok(None) => {
                    tracing::debug!(%queue, message_id = ?letter.message_id, "dead letter was kept before");
                    return true;
                }
                Err(e) => {
                    // A transient error heals by itself; any other is logged loudly, and the
                    // letter is still held rather than dropped.
                    if crate::store::is_transient(&e) {
                        tracing::warn!(%queue, error = %e, "cannot store a dead letter yet; retrying");
                    } else {
                        tracing::error!(%queue, error = %e, "cannot store a dead letter; retrying");
                    }
                    tokio::select! {
                        () = self.shutdown.cancelled() => return false,
                        () = tokio::time::sleep(pause) => {}
                    }
                    pause = (pause * 2).min(Duration::from_secs(30));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::{Namespace, QueueSpec, RetryTier, headers};
    use lapin::BasicProperties;
    use lapin::types::{AMQPValue, FieldTable, LongString};

    fn topology() -> Topology {
        Topology::new(
            Namespace::new("ns").expect("valid"),
            vec![QueueSpec::new("saga.ledger", ["test.#"])],
            vec![RetryTier {
                delay: Duration::from_secs(1),
            }],
        )
        .expect("valid")
    }

    fn ledger() -> Source {
        Source::Dead {
            short: "saga.ledger".into(),
        }
    }

    /// Reads a delivery with these properties as the keeper does.
    fn read_letter(
        topology: &Topology,
        source: &Source,
        exchange: &str,
        routing_key: &str,
        props: &BasicProperties,
        body: &[u8],
    ) -> DeadLetter {
        super::read_letter(
            topology,
            source,
            exchange,
            routing_key,
            properties_to_json(props),
            body,
            Utc::now(),
        )
    }

    fn s(v: &str) -> AMQPValue {
        AMQPValue::LongString(LongString::from(v.as_bytes().to_vec()))
    }

    fn table(entries: &[(&str, AMQPValue)]) -> FieldTable {
        let mut t = FieldTable::default();
        for (k, v) in entries {
            t.insert((*k).into(), v.clone());
        }
        t
    }

    fn hub_letter(extra: &[(&str, AMQPValue)]) -> BasicProperties {
        let mut entries = vec![
            (headers::ERROR_KIND, s("permanent")),
            (headers::ERROR_TEXT, s("no such account")),
            (headers::ATTEMPTS, AMQPValue::LongLongInt(1)),
            (headers::FIRST_FAILURE, s("2026-03-01T10:00:00.000Z")),
            (headers::LAST_FAILURE, s("2026-03-01T10:00:05.000Z")),
            (headers::ORIGINAL_EXCHANGE, s("ns.bus")),
            (headers::ORIGINAL_ROUTING_KEY, s("test.deposit.v1")),
            (headers::QUEUE, s("ns.saga.ledger")),
            ("traceparent", s("00-abc-def-01")),
        ];
        entries.extend(extra.iter().cloned());
        BasicProperties::default()
            .with_message_id("6f1c1a52-3c55-4a43-9c1e-6f0e8a1d1a01".into())
            .with_type("test.deposit.v1".into())
            .with_correlation_id("saga-7".into())
            .with_timestamp(1_772_000_000)
            .with_headers(table(&entries))
    }

    #[test]
    fn a_hub_dead_letter_is_read_from_its_headers() {
        let p = hub_letter(&[]);
        let l = read_letter(
            &topology(),
            &ledger(),
            "ns.dead",
            "ns.saga.ledger",
            &p,
            b"{}",
        );
        assert_eq!(l.queue, "saga.ledger");
        assert_eq!(l.error_kind, "permanent");
        assert_eq!(l.error, "no such account");
        assert_eq!(l.attempts, 1);
        assert_eq!(
            (
                l.original_exchange.as_str(),
                l.original_routing_key.as_str()
            ),
            ("ns.bus", "test.deposit.v1")
        );
        assert_eq!(l.correlation_id.as_deref(), Some("saga-7"));
        assert_eq!(l.message_type.as_deref(), Some("test.deposit.v1"));
        assert!(l.message_id.is_some());
        assert_eq!(
            l.last_failure_at.map(|t| t.to_rfc3339()),
            Some("2026-03-01T10:00:05+00:00".to_owned())
        );
        assert_eq!(l.properties["headers"]["traceparent"], "00-abc-def-01");
        assert_eq!(l.properties["timestamp"], 1_772_000_000);
        assert_eq!(l.replayed_before, 0);
    }

    #[test]
    fn a_redelivery_has_the_same_fingerprint_and_a_new_failure_a_new_one() {
        let t = topology();
        let first = read_letter(
            &t,
            &ledger(),
            "ns.dead",
            "ns.saga.ledger",
            &hub_letter(&[]),
            b"{}",
        );
        let redelivered = hub_letter(&[(DELIVERY_COUNT, AMQPValue::LongLongInt(1))]);
        let again = read_letter(
            &t,
            &ledger(),
            "ns.dead",
            "ns.saga.ledger",
            &redelivered,
            b"{}",
        );
        assert_eq!(first.fingerprint, again.fingerprint);
        let later = hub_letter(&[
            (headers::LAST_FAILURE, s("2026-03-02T10:00:05.000Z")),
            (REPLAYED, AMQPValue::LongLongInt(1)),
            (DEAD_LETTER_ID, AMQPValue::LongLongInt(41)),
        ]);
        let failed_again = read_letter(&t, &ledger(), "ns.dead", "ns.saga.ledger", &later, b"{}");
        assert_ne!(first.fingerprint, failed_again.fingerprint);
        assert_eq!(failed_again.replayed_before, 1);
        assert_eq!(failed_again.replayed_from, Some(41));
    }

    #[test]
    fn a_letter_without_headers_is_kept_with_what_is_known() {
        let p = BasicProperties::default();
        let l = read_letter(
            &topology(),
            &ledger(),
            "ns.bus",
            "test.deposit.v1",
            &p,
            b"\0x",
        );
        assert_eq!(l.message_id, None);
        assert_eq!(l.message_type, None);
        assert_eq!(l.error_kind, "unknown");
        assert!(l.error.contains("x-hub-error-kind missing"), "{}", l.error);
        assert_eq!(l.original_exchange, "ns.bus");
        assert_eq!(l.original_routing_key, "test.deposit.v1");
        assert_eq!(l.body, b"\0x");
    }

    #[test]
    fn the_brokers_own_dead_lettering_is_read_from_x_death() {
        let death = table(&[
            ("queue", s("ns.saga.ledger")),
            ("reason", s("delivery_limit")),
            ("exchange", s("ns.bus")),
            ("count", AMQPValue::LongLongInt(1)),
            ("time", AMQPValue::Timestamp(1_772_000_100)),
            (
                "routing-keys",
                AMQPValue::FieldArray(vec![s("test.deposit.v1")].into()),
            ),
        ]);
        let retry = table(&[("queue", s("ns.retry.1")), ("reason", s("expired"))]);
        let p = BasicProperties::default()
            .with_message_id("not-a-uuid".into())
            .with_headers(table(&[
                (
                    "x-death",
                    AMQPValue::FieldArray(
                        vec![
                            AMQPValue::FieldTable(death),
                            AMQPValue::FieldTable(retry.clone()),
                        ]
                        .into(),
                    ),
                ),
                (DELIVERY_COUNT, AMQPValue::LongLongInt(19)),
            ]));
        let l = read_letter(
            &topology(),
            &ledger(),
            "ns.dead",
            "ns.saga.ledger",
            &p,
            b"{}",
        );
        assert_eq!(l.error_kind, "delivery_limit");
        assert!(l.error.contains("x-delivery-limit"), "{}", l.error);
        assert_eq!(l.attempts, 20);
        assert_eq!(l.original_exchange, "ns.bus");
        assert_eq!(l.original_routing_key, "test.deposit.v1");
        assert_eq!(
            l.last_failure_at.map(|t| t.timestamp()),
            Some(1_772_000_100)
        );
        assert_eq!(l.message_id, None, "not a UUID");
        assert_eq!(l.properties["message_id"], "not-a-uuid");

        // A consumer's dead letter after delayed retries: the retry tier's x-death is not the
        // broker dead-lettering it.
        let retried = hub_letter(&[(
            "x-death",
            AMQPValue::FieldArray(vec![AMQPValue::FieldTable(retry)].into()),
        )]);
        let l = read_letter(
            &topology(),
            &ledger(),
            "ns.dead",
            "ns.saga.ledger",
            &retried,
            b"{}",
        );
        assert_eq!(l.error_kind, "permanent");
    }

    #[test]
    fn an_unrouted_message_says_where_it_was_sent() {
        let p = BasicProperties::default().with_type("nobody.listens.v1".into());
        let l = read_letter(
            &topology(),
            &Source::Unrouted,
            "ns.bus",
            "nobody.listens.v1",
            &p,
            b"{}",
        );
        assert_eq!(l.queue, UNROUTED);
        assert_eq!(l.error_kind, "unrouted");
        assert_eq!(l.original_exchange, "ns.bus");
        assert!(l.error.contains("nobody.listens.v1"), "{}", l.error);
    }

    /// Whether any of `secrets` shows in what the keeper would store of `l`: its body, its
    /// error, its properties.
    fn shows_any(l: &DeadLetter, secrets: &[&str]) -> bool {
        let stored = format!(
            "{} {} {}",
            String::from_utf8_lossy(&l.body),
            l.error,
            l.properties,
        );
        secrets.iter().any(|s| stored.contains(s))
    }

    #[test]
    fn an_unrouted_login_is_kept_without_its_password_and_is_not_replayable() {
        let body = br#"{"identifier":"3270287A012PB2","password":"Xy3kLmNpQr"}"#;
        let p = BasicProperties::default().with_type("cabinet.login.v1".into());
        let l = read_letter(
            &topology(),
            &Source::Unrouted,
            "ns.bus",
            "cabinet.login.v1",
            &p,
            body,
        );
        assert!(!shows_any(&l, &["Xy3kLmNpQr"]), "{l:?}");
        // The rest stays, so an operator sees what the message was.
        assert_eq!(
            l.body_json().map(|b| b["identifier"].clone()),
            Some("3270287A012PB2".into())
        );
        assert!(
            l.is_redacted(),
            "a body without its secret cannot be replayed"
        );

        // Without the type property, the routing key names the type.
        let untyped = read_letter(
            &topology(),
            &Source::Unrouted,
            "ns.bus",
            "cabinet.change_password.v1",
            &BasicProperties::default(),
            br#"{"identifier":"x","current_password":"Old-Pass-1","new_password":"New-Pass-2"}"#,
        );
        assert!(
            !shows_any(&untyped, &["Old-Pass-1", "New-Pass-2"]),
            "{untyped:?}"
        );
    }

    #[test]
    fn a_code_the_broker_dead_lettered_is_kept_without_it() {
        let death = table(&[
            ("queue", s("ns.saga.ledger")),
            ("reason", s("delivery_limit")),
            ("exchange", s("ns.bus")),
        ]);
        let p = BasicProperties::default()
            .with_type("identifier.confirm_phone.v1".into())
            .with_headers(table(&[(
                "x-death",
                AMQPValue::FieldArray(vec![AMQPValue::FieldTable(death)].into()),
            )]));
        for body in [
            &br#"{"desk_id":"d","application_number":"7","code":123456}"#[..],
            br#"{"desk_id":"d","application_number":"7","code":"123456"}"#,
            // Not an object: nothing to find the code in, so nothing of it is kept.
            br#"["123456"]"#,
            b"code=123456",
        ] {
            let l = read_letter(
                &topology(),
                &ledger(),
                "ns.dead",
                "ns.saga.ledger",
                &p,
                body,
            );
            assert_eq!(l.error_kind, "delivery_limit");
            assert!(!shows_any(&l, &["123456"]), "{l:?}");
            assert!(l.is_redacted());
        }
        // The fingerprint is a digest of the redacted body: one of the body with the code
        // would give a six-digit code back to whoever tries the million candidates.
        let [one, other] = [123456, 654321].map(|code| {
            let body = format!(r#"{{"desk_id":"d","application_number":"7","code":"{code}"}}"#);
            read_letter(
                &topology(),
                &ledger(),
                "ns.dead",
                "ns.saga.ledger",
                &p,
                body.as_bytes(),
            )
        });
        assert_eq!(one.fingerprint, other.fingerprint);
    }

    #[test]
    fn a_body_without_a_secret_is_kept_as_it_came() {
        let body =
            br#"{"procedure_code":"2.19","token":{"key_id":"k","nonce":"n","ciphertext":"c"}}"#;
        let p = BasicProperties::default().with_type("email.send.v1".into());
        let l = read_letter(
            &topology(),
            &Source::Unrouted,
            "ns.bus",
            "email.send.v1",
            &p,
            body,
        );
        assert_eq!(l.body, body, "a sealed token is no secret in the clear");
        assert!(!l.is_redacted());
    }

    #[test]
    fn the_keeper_drains_every_dead_letter_queue_and_the_unrouted_one() {
        assert_eq!(
            sources(&topology()),
            [
                ("ns.saga.ledger.dead".to_owned(), ledger()),
                ("ns.unrouted".to_owned(), Source::Unrouted)
            ]
        );
    }
}
