//! The dead-letter keeper: moves every dead letter from the broker into the `dead_letters`
//! table, where operators list, group, inspect, replay and discard them (`hub dlq`, the
//! console).
//!
//! It consumes the dead-letter queue `ns.Q.dead` of every work queue of the plan, and the bus's
//! `ns.unrouted` queue (messages no queue was bound for, kept with error kind `unrouted`). Each
//! letter is read into one row — what the `x-hub-*` headers say about the failure, every
//! property and header as JSON, the body as it came (a sensitive one was already redacted by
//! the consumer, a secret inside one is sealed) — and acked only once the row is committed.
//! A letter is never lost for a database outage: the keeper holds it and tries again.
//!
//! The row is keyed by a fingerprint of the delivery (queue, properties less the broker's
//! redelivery count, body), so a letter redelivered after a crash between commit and ack is not
//! kept twice, while the same message failing again (new failure time) is a new row.
//!
//! Letters the broker dead-lettered itself (a quorum queue's delivery limit, an agency's reject)
//! or that came without the hub's headers are kept too, with what is known: their `x-death`
//! header, or nothing but the queue they were found on.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, TimeZone, Utc};
use contracts::{Topology, headers};
use futures_util::StreamExt;
use lapin::BasicProperties;
use lapin::options::{BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString, ShortString};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::broker::Broker;

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

/// Longest wait for an ack to be written.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

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

/// One dead letter as the keeper writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Letter {
    /// Property `message_id`, when it is a UUID.
    pub message_id: Option<Uuid>,
    /// Property `type`.
    pub message_type: Option<String>,
    /// Short name of the work queue it died on, or [`UNROUTED`].
    pub queue: String,
    /// Where it was first published.
    pub original_exchange: String,
    /// With which routing key.
    pub original_routing_key: String,
    /// `invalid_input`, `permanent`, `retries_exhausted`, `handler_panicked` (from the
    /// consumer), `unrouted`, or what the broker said (`delivery_limit`, `rejected`, ...).
    pub error_kind: String,
    /// Why, one line.
    pub error: String,
    /// Failed handling attempts.
    pub attempts: i32,
    /// First failure.
    pub first_failure_at: Option<DateTime<Utc>>,
    /// Last failure.
    pub last_failure_at: Option<DateTime<Utc>>,
    /// Property `correlation_id`: the saga.
    pub correlation_id: Option<String>,
    /// Every property and header ([`properties_to_json`]).
    pub properties: Value,
    /// The body as it came.
    pub body: Vec<u8>,
    /// Identity of this delivery: see the module documentation.
    pub fingerprint: String,
    /// `x-hub-replayed`: replays of this message before it died this time.
    pub replayed_before: i32,
    /// `x-hub-dead-letter-id`: the row it was last replayed from.
    pub replayed_from: Option<i64>,
}

/// Reads a letter found on `source` (delivered from `exchange` with `routing_key`). Pure: the
/// same delivery always reads the same, so its fingerprint is stable.
pub fn read_letter(
    topology: &Topology,
    source: &Source,
    exchange: &str,
    routing_key: &str,
    props: &BasicProperties,
    body: &[u8],
) -> Letter {
    let properties = properties_to_json(props);
    let header = |name: &str| properties["headers"].get(name);
    let text = |name: &str| header(name).and_then(Value::as_str).map(clean);
    let int = |name: &str| header(name).and_then(json_int);
    let time = |name: &str| {
        header(name)
            .and_then(Value::as_str)
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    let work_queue = match source {
        Source::Dead { short } => Some(topology.work_queue(short)),
        Source::Unrouted => None,
    };
    // The broker's own dead-lettering (delivery limit, reject) is the latest `x-death` entry,
    // naming the work queue; entries of the retry tiers are the hub's delayed retries.
    let broker_death = work_queue.as_deref().and_then(|wq| {
        header("x-death")
            .and_then(Value::as_array)
            .and_then(|deaths| deaths.first())
            .filter(|d| d.get("queue").and_then(Value::as_str) == Some(wq))
            .cloned()
    });
    let hub_kind = text(headers::ERROR_KIND).filter(|k| k != "transient");
    let hub_error = text(headers::ERROR_TEXT);
    let mut original_exchange = text(headers::ORIGINAL_EXCHANGE);
    let mut original_routing_key = text(headers::ORIGINAL_ROUTING_KEY);
    let mut attempts = int(headers::ATTEMPTS);
    let mut last_failure_at = time(headers::LAST_FAILURE);
    let (error_kind, error) = match (source, &broker_death) {
        (Source::Unrouted, _) => (
            UNROUTED.to_owned(),
            format!("no queue is bound for routing key {routing_key:?} on exchange {exchange:?}"),
        ),
        (Source::Dead { .. }, Some(death)) => {
            let reason = death
                .get("reason")
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .to_owned();
            if original_exchange.is_none() {
                original_exchange = death
                    .get("exchange")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
            }
            if original_routing_key.is_none() {
                original_routing_key = death
                    .get("routing-keys")
                    .and_then(Value::as_array)
                    .and_then(|keys| keys.first())
                    .and_then(Value::as_str)
                    .map(str::to_owned);
            }
            if let Some(t) = death.get("time").and_then(json_int) {
                last_failure_at = Utc.timestamp_opt(t, 0).single().or(last_failure_at);
            }
            let deliveries = int(DELIVERY_COUNT).map(|n| n + 1);
            attempts = attempts.max(deliveries);
            let queue = work_queue.as_deref().unwrap_or_default();
            let mut error = match reason.as_str() {
                "delivery_limit" => format!(
                    "the broker dead-lettered it from {queue}: delivered too many times without an ack (x-delivery-limit)"
                ),
                "rejected" => {
                    format!("the broker dead-lettered it from {queue}: a consumer rejected it")
                }
                other => format!("the broker dead-lettered it from {queue}: {other}"),
            };
            if let Some(last) = &hub_error {
                error.push_str(&format!("; last failure: {last}"));
            }
            (reason, error)
        }
        (Source::Dead { .. }, None) => match (hub_kind, hub_error) {
            (Some(kind), Some(error)) => (kind, error),
            (Some(kind), None) => (kind, "no reason given (x-hub-error missing)".to_owned()),
            (None, error) => (
                "unknown".to_owned(),
                error.unwrap_or_else(|| {
                    "dead letter without the hub's headers (x-hub-error-kind missing)".to_owned()
                }),
            ),
        },
    };
    let last_failure_at = last_failure_at;
    let first_failure_at = time(headers::FIRST_FAILURE).or(last_failure_at);
    let message_id = props
        .message_id()
        .as_ref()
        .and_then(|id| Uuid::parse_str(id.as_str()).ok());
    Letter {
        message_id,
        message_type: props.kind().as_ref().map(|t| clean(t.as_str())),
        queue: source.queue().to_owned(),
        original_exchange: original_exchange.unwrap_or_else(|| clean(exchange)),
        original_routing_key: original_routing_key.unwrap_or_else(|| clean(routing_key)),
        error_kind,
        error: clean(&error),
        attempts: attempts
            .and_then(|n| i32::try_from(n).ok())
            .unwrap_or_default(),
        first_failure_at,
        last_failure_at,
        correlation_id: props.correlation_id().as_ref().map(|c| clean(c.as_str())),
        fingerprint: fingerprint(source.queue(), &properties, body),
        replayed_before: int(REPLAYED)
            .and_then(|n| i32::try_from(n).ok())
            .unwrap_or_default(),
        replayed_from: header(DEAD_LETTER_ID)
            .and_then(|v| json_int(v).or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))),
        properties,
        body: body.to_vec(),
    }
}

/// Digest of a delivery: its queue, its properties without the broker's redelivery count, its
/// body.
fn fingerprint(queue: &str, properties: &Value, body: &[u8]) -> String {
    let mut stable = properties.clone();
    if let Some(h) = stable.get_mut("headers").and_then(Value::as_object_mut) {
        h.remove(DELIVERY_COUNT);
    }
    let mut hash = Sha256::new();
    hash.update(queue.as_bytes());
    hash.update([0]);
    hash.update(stable.to_string().as_bytes());
    hash.update([0]);
    hash.update(body);
    hex::encode(hash.finalize())
}

/// PostgreSQL text cannot hold NUL characters.
fn clean(s: &str) -> String {
    s.replace('\0', "\u{FFFD}")
}

fn json_int(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_u64().and_then(|n| i64::try_from(n).ok()))
}

/// Stores `letter`; returns its new row id, or `None` when this delivery was kept before.
pub async fn keep(pool: &PgPool, letter: &Letter) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO dead_letters (message_id, message_type, queue, original_exchange,
             original_routing_key, error_kind, error, attempts, first_failure_at, last_failure_at,
             correlation_id, properties, body, fingerprint, replayed_before, replayed_from)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
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
        tasks.spawn(keep_queue(
            broker.clone(),
            pool.clone(),
            topology.clone(),
            queue,
            source,
            shutdown.clone(),
        ));
    }
    tasks.close();
    tasks.wait().await;
    tracing::info!("dead-letter keeper stopped");
}

async fn keep_queue(
    broker: Broker,
    pool: PgPool,
    topology: Arc<Topology>,
    queue: String,
    source: Source,
    shutdown: CancellationToken,
) {
    'connection: while !shutdown.is_cancelled() {
        let Some(channel) = broker.channel(&shutdown).await else {
            break;
        };
        let consumer = async {
            channel
                .basic_qos(PREFETCH, BasicQosOptions::default())
                .await?;
            channel
                .basic_consume(
                    queue.as_str().into(),
                    "".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
        }
        .await;
        let mut consumer = match consumer {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(%queue, error = %e, "keeper cannot consume; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        tracing::debug!(%queue, "keeping dead letters");
        loop {
            tokio::select! {
                () = shutdown.cancelled() => {
                    let _ = channel.basic_cancel(consumer.tag(), BasicCancelOptions::default()).await;
                    break 'connection;
                }
                next = consumer.next() => match next {
                    Some(Ok(delivery)) => {
                        let letter = read_letter(
                            &topology,
                            &source,
                            delivery.exchange.as_str(),
                            delivery.routing_key.as_str(),
                            &delivery.properties,
                            &delivery.data,
                        );
                        if !store(&pool, &letter, &queue, &shutdown).await {
                            // Shutting down before it was stored: the broker gives it back.
                            break 'connection;
                        }
                        // Bounded: on a connection that died unnoticed the ack would wait for
                        // ever. Unacked, the letter is redelivered; its fingerprint makes the
                        // copy harmless.
                        let acked = tokio::time::timeout(
                            ACK_TIMEOUT,
                            delivery.acker.ack(BasicAckOptions::default()),
                        )
                        .await;
                        if !matches!(acked, Ok(Ok(_))) {
                            tracing::debug!(%queue, "keeper ack failed; the letter will come again");
                        }
                    }
                    Some(Err(e)) => {
                        tracing::warn!(%queue, error = %e, "keeper consumer failed; reconnecting");
                        continue 'connection;
                    }
                    None => continue 'connection,
                },
            }
        }
    }
}

/// Stores `letter`, trying again (with a growing pause) until it is stored; false when the hub
/// shuts down first.
async fn store(pool: &PgPool, letter: &Letter, queue: &str, shutdown: &CancellationToken) -> bool {
    let mut pause = Duration::from_millis(200);
    loop {
        match keep(pool, letter).await {
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
                // A transient error heals by itself; any other is logged loudly, and the letter
                // is still held rather than dropped.
                if crate::store::is_transient(&e) {
                    tracing::warn!(%queue, error = %e, "cannot store a dead letter yet; retrying");
                } else {
                    tracing::error!(%queue, error = %e, "cannot store a dead letter; retrying");
                }
                tokio::select! {
                    () = shutdown.cancelled() => return false,
                    () = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Every property and header of a message as JSON: the properties by their AMQP names
/// (`message_id`, `type`, `timestamp`, ...), the headers under `headers`. Strings stay strings,
/// numbers numbers, tables objects; byte arrays become base64 text.
pub fn properties_to_json(p: &BasicProperties) -> Value {
    let mut m = Map::new();
    let mut short = |name: &str, v: &Option<ShortString>| {
        if let Some(v) = v {
            m.insert(name.to_owned(), Value::String(clean(v.as_str())));
        }
    };
    short("message_id", p.message_id());
    short("type", p.kind());
    short("correlation_id", p.correlation_id());
    short("app_id", p.app_id());
    short("user_id", p.user_id());
    short("reply_to", p.reply_to());
    short("content_type", p.content_type());
    short("content_encoding", p.content_encoding());
    short("expiration", p.expiration());
    short("cluster_id", p.cluster_id());
    if let Some(t) = p.timestamp() {
        m.insert("timestamp".into(), Value::from(*t));
    }
    if let Some(d) = p.delivery_mode() {
        m.insert("delivery_mode".into(), Value::from(*d));
    }
    if let Some(d) = p.priority() {
        m.insert("priority".into(), Value::from(*d));
    }
    let headers = p.headers().as_ref().map_or_else(
        || Value::Object(Map::new()),
        |h| table_to_json(h.inner().iter()),
    );
    m.insert("headers".into(), headers);
    Value::Object(m)
}

fn table_to_json<'a>(entries: impl Iterator<Item = (&'a ShortString, &'a AMQPValue)>) -> Value {
    Value::Object(
        entries
            .map(|(k, v)| (clean(k.as_str()), amqp_to_json(v)))
            .collect(),
    )
}

/// One AMQP field value as JSON.
pub fn amqp_to_json(v: &AMQPValue) -> Value {
    match v {
        AMQPValue::Boolean(b) => Value::Bool(*b),
        AMQPValue::ShortShortInt(n) => Value::from(*n),
        AMQPValue::ShortShortUInt(n) => Value::from(*n),
        AMQPValue::ShortInt(n) => Value::from(*n),
        AMQPValue::ShortUInt(n) => Value::from(*n),
        AMQPValue::LongInt(n) => Value::from(*n),
        AMQPValue::LongUInt(n) => Value::from(*n),
        AMQPValue::LongLongInt(n) => Value::from(*n),
        AMQPValue::Float(f) => Value::from(f64::from(*f)),
        AMQPValue::Double(f) => Value::from(*f),
        AMQPValue::DecimalValue(d) => {
            Value::from(f64::from(d.value) / 10f64.powi(i32::from(d.scale)))
        }
        AMQPValue::ShortString(s) => Value::String(clean(s.as_str())),
        AMQPValue::LongString(s) => Value::String(clean(&String::from_utf8_lossy(s.as_bytes()))),
        AMQPValue::FieldArray(a) => Value::Array(a.as_slice().iter().map(amqp_to_json).collect()),
        AMQPValue::Timestamp(t) => Value::from(*t),
        AMQPValue::FieldTable(t) => table_to_json(t.inner().iter()),
        AMQPValue::ByteArray(b) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(b.as_slice()))
        }
        AMQPValue::Void => Value::Null,
    }
}

/// A JSON value as an AMQP field value: the inverse of [`amqp_to_json`] up to integer widths
/// (every integer comes back as a 64-bit one, which every reader of the hub accepts).
pub fn json_to_amqp(v: &Value) -> AMQPValue {
    match v {
        Value::Null => AMQPValue::Void,
        Value::Bool(b) => AMQPValue::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => AMQPValue::LongLongInt(i),
            None => AMQPValue::Double(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => AMQPValue::LongString(LongString::from(s.as_bytes().to_vec())),
        Value::Array(a) => AMQPValue::FieldArray(FieldArray::from(
            a.iter().map(json_to_amqp).collect::<Vec<_>>(),
        )),
        Value::Object(o) => AMQPValue::FieldTable(json_to_table(o)),
    }
}

/// A JSON object as an AMQP field table.
pub fn json_to_table(o: &Map<String, Value>) -> FieldTable {
    let mut table = FieldTable::default();
    for (k, v) in o {
        table.insert(ShortString::from(k.as_str()), json_to_amqp(v));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::{Namespace, QueueSpec, RetryTier};

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

    #[test]
    fn headers_round_trip_through_json() {
        let h = table(&[
            ("s", s("text")),
            ("n", AMQPValue::LongInt(-3)),
            ("b", AMQPValue::Boolean(true)),
            ("a", AMQPValue::FieldArray(vec![s("x")].into())),
            (
                "t",
                AMQPValue::FieldTable(table(&[("k", AMQPValue::LongLongInt(9))])),
            ),
        ]);
        let json = table_to_json(h.inner().iter());
        let back = json_to_table(json.as_object().expect("object"));
        assert_eq!(table_to_json(back.inner().iter()), json);
        assert_eq!(json["n"], -3);
        assert_eq!(json["t"]["k"], 9);
        assert_eq!(sources(&topology()).len(), 2);
    }
}
