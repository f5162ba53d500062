//! The hub's metrics, in Prometheus' text format at `GET /metrics` of the HTTP listener.
//!
//! Every metric is recorded through a method named for what happened (`message_in`,
//! `dead_letter`, `saga_ended`), so each one is defined once here with its labels and help, and
//! the code that records it reads as what it records. The counters and histograms live in one
//! process-wide registry ([`metrics()`]): the consumer runner, the relay, the saga engine and
//! the adapter workers record without being handed anything. What is cheaper to read than to
//! keep (sagas by state, outbox lag, the broker connection) is read at scrape time from the
//! serving hub's own database ([`Snapshot`]). A business registers its own metrics beside these
//! ([`Metrics::register`]); the runtime names none of them.
//!
//! Labels carry names the hub chose (queues, exchanges, message types, saga types and states,
//! systems, error kinds), never ids, phone numbers or anything a person typed. A message type is
//! taken only when well-formed, and at most [`MAX_MESSAGE_TYPES`] distinct ones, so a sender
//! cannot blow up the label space.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use contracts::metadata::ErrorKind;
use contracts::{Failure, FailureKind};
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Metric, Registry};
use sqlx::PgPool;

/// The content type of `GET /metrics`.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Distinct message types kept as label values; later ones are counted as `other`.
pub const MAX_MESSAGE_TYPES: usize = 512;

/// What became of a message a consumer took.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InOutcome {
    /// Handled and acked.
    Ok,
    /// Already handled (its id was in the inbox): acked without effects.
    Duplicate,
    /// Failed transiently; sent to a retry tier.
    Retried,
    /// Failed for good; sent to the dead-letter exchange.
    DeadLettered,
    /// Failed, and parking it failed too: returned to its queue.
    Requeued,
}

impl InOutcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            InOutcome::Ok => "ok",
            InOutcome::Duplicate => "duplicate",
            InOutcome::Retried => "retried",
            InOutcome::DeadLettered => "dead_lettered",
            InOutcome::Requeued => "requeued",
        }
    }
}

impl EncodeLabelValue for InOutcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

/// What argon2 did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Argon2Op {
    /// Hashed a secret.
    Hash,
    /// Checked a secret against a hash.
    Verify,
}

impl Argon2Op {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Argon2Op::Hash => "hash",
            Argon2Op::Verify => "verify",
        }
    }
}

impl EncodeLabelValue for Argon2Op {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct MessageIn {
    queue: String,
    r#type: String,
    outcome: InOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct MessageOut {
    exchange: String,
    r#type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TableLabel {
    table: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct QueueLabel {
    queue: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RetryLabels {
    queue: String,
    tier: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DeadLabels {
    queue: String,
    kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SagaLabel {
    saga_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SagaStateLabels {
    saga_type: String,
    state: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CallLabels {
    system: &'static str,
    operation: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Argon2Label {
    op: Argon2Op,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CallErrorLabels {
    system: &'static str,
    operation: &'static str,
    kind: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The process's counters and histograms.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    messages_in: Family<MessageIn, Counter>,
    handler_duration: HistogramFamily<QueueLabel>,
    batch_messages: HistogramFamily<QueueLabel>,
    retries: Family<RetryLabels, Counter>,
    dead_letters: Family<DeadLabels, Counter>,
    messages_out: Family<MessageOut, Counter>,
    publish_failures: Family<MessageOut, Counter>,
    relay_batch_duration: Histogram,
    saga_duration: HistogramFamily<SagaLabel>,
    external_duration: HistogramFamily<CallLabels>,
    external_errors: Family<CallErrorLabels, Counter>,
    argon2_duration: HistogramFamily<Argon2Label>,
    retention_deleted: Family<TableLabel, Counter>,
    /// What a business registers beside the runtime's own ([`Metrics::register`]).
    business: Mutex<Registry>,
    message_types: Mutex<HashSet<String>>,
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// 1 ms to about 33 s: handlers, relay batches, external calls and argon2.
fn call_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// 2 to 256 messages per batch (a batch of one is handled as a single message).
fn batch_histogram() -> Histogram {
    Histogram::new(exponential_buckets(2.0, 2.0, 8))
}

/// A second to a month: sagas wait for people, payments and authorities.
fn saga_histogram() -> Histogram {
    Histogram::new([
        1.0,
        5.0,
        15.0,
        60.0,
        300.0,
        900.0,
        3600.0,
        14400.0,
        86400.0,
        259_200.0,
        604_800.0,
        2_592_000.0,
    ])
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::default();
        let messages_in = Family::default();
        registry.register(
            "hub_messages_in",
            "Messages the consumers took, by work queue, message type and outcome",
            messages_in.clone(),
        );
        let handler_duration: HistogramFamily<QueueLabel> =
            Family::new_with_constructor(call_histogram);
        registry.register(
            "hub_handler_duration_seconds",
            "Time a handler took with one message, or with one batch of a batching handler, by work queue",
            handler_duration.clone(),
        );
        let batch_messages: HistogramFamily<QueueLabel> =
            Family::new_with_constructor(batch_histogram);
        registry.register(
            "hub_batch_messages",
            "Messages a batching handler (a saga) took in one transaction, by work queue",
            batch_messages.clone(),
        );
        let retries = Family::default();
        registry.register(
            "hub_retries",
            "Messages sent to a retry tier after a transient failure, by work queue and tier",
            retries.clone(),
        );
        let dead_letters = Family::default();
        registry.register(
            "hub_dead_letters",
            "Messages dead-lettered, by work queue and error kind",
            dead_letters.clone(),
        );
        let messages_out = Family::default();
        registry.register(
            "hub_messages_out",
            "Messages the outbox relay published and the broker confirmed, by exchange and type",
            messages_out.clone(),
        );
        let publish_failures = Family::default();
        registry.register(
            "hub_relay_publish_failures",
            "Outbox rows whose publish failed (retried later), by exchange and type",
            publish_failures.clone(),
        );
        let relay_batch_duration = call_histogram();
        registry.register(
            "hub_relay_batch_duration_seconds",
            "Time the outbox relay took to claim, publish and mark one batch",
            relay_batch_duration.clone(),
        );
        let saga_duration: HistogramFamily<SagaLabel> =
            Family::new_with_constructor(saga_histogram);
        registry.register(
            "hub_saga_duration_seconds",
            "Time from a saga's start to its end, by saga type",
            saga_duration.clone(),
        );
        let external_duration: HistogramFamily<CallLabels> =
            Family::new_with_constructor(call_histogram);
        registry.register(
            "hub_external_call_duration_seconds",
            "Time of a call to an external system (quick retries included), by system and operation",
            external_duration.clone(),
        );
        let external_errors = Family::default();
        registry.register(
            "hub_external_call_errors",
            "Failed calls to external systems, by system, operation and failure kind",
            external_errors.clone(),
        );
        let argon2_duration: HistogramFamily<Argon2Label> =
            Family::new_with_constructor(call_histogram);
        registry.register(
            "hub_argon2_seconds",
            "Time spent hashing or verifying a secret with argon2, by operation",
            argon2_duration.clone(),
        );
        let retention_deleted = Family::default();
        registry.register(
            "hub_retention_deleted_rows",
            "Inbox and outbox rows removed past the retention horizon, by table",
            retention_deleted.clone(),
        );
        Self {
            registry,
            retention_deleted,
            messages_in,
            handler_duration,
            batch_messages,
            retries,
            dead_letters,
            messages_out,
            publish_failures,
            relay_batch_duration,
            saga_duration,
            external_duration,
            external_errors,
            argon2_duration,
            business: Mutex::new(Registry::default()),
            message_types: Mutex::new(HashSet::new()),
        }
    }

    /// Retention removed `rows` rows of `table` (`inbox` or `outbox`).
    pub fn retention_deleted(&self, table: &'static str, rows: u64) {
        self.retention_deleted
            .get_or_create(&TableLabel { table })
            .inc_by(rows);
    }

    /// A consumer is done with a message of `message_type` from `queue`.
    pub fn message_in(&self, queue: &str, message_type: &str, outcome: InOutcome) {
        self.messages_in
            .get_or_create(&MessageIn {
                queue: queue.to_owned(),
                r#type: self.type_label(message_type),
                outcome,
            })
            .inc();
    }

    /// A handler of `queue` ran for `took`.
    pub fn handler_ran(&self, queue: &str, took: Duration) {
        self.handler_duration
            .get_or_create(&QueueLabel {
                queue: queue.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    /// A batching handler of `queue` took `messages` messages together in `took`.
    pub fn batch_ran(&self, queue: &str, messages: usize, took: Duration) {
        let label = QueueLabel {
            queue: queue.to_owned(),
        };
        self.handler_ran(queue, took);
        self.batch_messages
            .get_or_create(&label)
            .observe(messages as f64);
    }

    /// A message of `queue` went to retry tier `tier` (0 is the shortest).
    pub fn retry(&self, queue: &str, tier: usize) {
        self.retries
            .get_or_create(&RetryLabels {
                queue: queue.to_owned(),
                tier: tier.to_string(),
            })
            .inc();
    }

    /// A message of `queue` was dead-lettered for `kind`.
    pub fn dead_letter(&self, queue: &str, kind: ErrorKind) {
        self.dead_letters
            .get_or_create(&DeadLabels {
                queue: queue.to_owned(),
                kind: kind.as_str().to_owned(),
            })
            .inc();
    }

    /// The relay published a message of `message_type` to `exchange` (confirmed), or not.
    pub fn relayed(&self, exchange: &str, message_type: &str, published: bool) {
        let labels = MessageOut {
            exchange: exchange_label(exchange),
            r#type: self.type_label(message_type),
        };
        if published {
            self.messages_out.get_or_create(&labels).inc();
        } else {
            self.publish_failures.get_or_create(&labels).inc();
        }
    }

    /// The relay handled one non-empty batch in `took`.
    pub fn relay_batch(&self, took: Duration) {
        self.relay_batch_duration.observe(took.as_secs_f64());
    }

    /// A saga of `saga_type` reached a terminal state `lasted` after it started.
    pub fn saga_ended(&self, saga_type: &str, lasted: Duration) {
        self.saga_duration
            .get_or_create(&SagaLabel {
                saga_type: saga_type.to_owned(),
            })
            .observe(lasted.as_secs_f64());
    }

    /// A call to `system` (`operation`) took `took` and came to `result`.
    pub fn external_call<T>(
        &self,
        system: &'static str,
        operation: &'static str,
        took: Duration,
        result: &Result<T, Failure>,
    ) {
        self.external_duration
            .get_or_create(&CallLabels { system, operation })
            .observe(took.as_secs_f64());
        if let Err(f) = result {
            let kind = match f.kind {
                FailureKind::Transient => "transient",
                FailureKind::Permanent => "permanent",
                FailureKind::InvalidInput => "invalid_input",
            };
            self.external_errors
                .get_or_create(&CallErrorLabels {
                    system,
                    operation,
                    kind,
                })
                .inc();
        }
    }

    /// Argon2 did `op` in `took`.
    pub fn argon2(&self, op: Argon2Op, took: Duration) {
        self.argon2_duration
            .get_or_create(&Argon2Label { op })
            .observe(took.as_secs_f64());
    }

    /// Registers a business's own metric (the portal's per-phone limits, say) beside the
    /// runtime's, so that `GET /metrics` shows it; the business records it through the handle
    /// it keeps. Register each name once per process.
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.business
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .register(name, help, metric);
    }

    /// The process's metrics followed by `scraped` (read at scrape time), in the text format.
    pub fn encode(&self, scraped: &Registry) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode_registry(&mut out, &self.registry);
        let _ = encode_registry(
            &mut out,
            &self.business.lock().unwrap_or_else(PoisonError::into_inner),
        );
        let _ = encode_registry(&mut out, scraped);
        let _ = encode_eof(&mut out);
        out
    }

    /// A message type as a label value: itself when well-formed and among the first
    /// [`MAX_MESSAGE_TYPES`] seen, `invalid` or `other` otherwise.
    fn type_label(&self, message_type: &str) -> String {
        if !contracts::MessageType::is_well_formed(message_type) {
            return "invalid".to_owned();
        }
        let mut seen = self
            .message_types
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if seen.contains(message_type) {
            return message_type.to_owned();
        }
        if seen.len() >= MAX_MESSAGE_TYPES {
            return "other".to_owned();
        }
        seen.insert(message_type.to_owned());
        message_type.to_owned()
    }
}

/// The default exchange has the empty name, which a label would not show.
fn exchange_label(exchange: &str) -> String {
    if exchange.is_empty() {
        "(default)".to_owned()
    } else {
        exchange.to_owned()
    }
}

/// Runs `call` to `system` and records its time and, if it failed, its failure kind; when
/// spans are exported, the call is a span `external_call` ([`crate::trace::external_call`]).
pub async fn external_call<T>(
    system: &'static str,
    operation: &'static str,
    call: impl Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    let started = Instant::now();
    let result = crate::trace::external_call(system, operation, call).await;
    metrics().external_call(system, operation, started.elapsed(), &result);
    result
}

/// Saga instances by type and state name: `(saga_type, state, count)`.
pub type SagaCounts = Vec<(String, String, i64)>;

/// Saga instances not yet in a terminal state, by type: `(saga_type, count)`; every type with
/// an instance is listed, with 0 when all of its instances ended.
pub type OpenSagas = Vec<(String, i64)>;

/// What `/metrics` reads from the database and the broker at scrape time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Saga instances by type and state name.
    pub sagas: SagaCounts,
    /// Saga instances not yet ended, by type.
    pub open_sagas: OpenSagas,
    /// Outbox rows not yet published.
    pub outbox_unsent: Option<i64>,
    /// Age of the oldest unsent outbox row, in seconds (0 when none).
    pub outbox_lag_seconds: Option<f64>,
    /// Whether the hub has a broker connection.
    pub broker_connected: Option<bool>,
}

impl Snapshot {
    /// The gauges of this snapshot, in a registry of their own.
    pub fn registry(&self) -> Registry {
        let mut registry = Registry::default();
        if !self.sagas.is_empty() {
            let sagas = Family::<SagaStateLabels, Gauge>::default();
            for (saga_type, state, count) in &self.sagas {
                sagas
                    .get_or_create(&SagaStateLabels {
                        saga_type: saga_type.clone(),
                        state: state.clone(),
                    })
                    .set(*count);
            }
            registry.register(
                "hub_sagas",
                "Saga instances by saga type and state (terminal ones included)",
                sagas,
            );
        }
        if !self.open_sagas.is_empty() {
            let open = Family::<SagaLabel, Gauge>::default();
            for (saga_type, count) in &self.open_sagas {
                open.get_or_create(&SagaLabel {
                    saga_type: saga_type.clone(),
                })
                .set(*count);
            }
            registry.register(
                "hub_sagas_open",
                "Saga instances not yet in a terminal state, by saga type",
                open,
            );
        }
        if let Some(unsent) = self.outbox_unsent {
            let gauge = Gauge::<i64>::default();
            gauge.set(unsent);
            registry.register("hub_outbox_unsent", "Outbox rows not yet published", gauge);
        }
        if let Some(lag) = self.outbox_lag_seconds {
            let gauge = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
            gauge.set(lag);
            registry.register(
                "hub_outbox_lag_seconds",
                "Age of the oldest unsent outbox row (0 when every row is sent)",
                gauge,
            );
        }
        if let Some(up) = self.broker_connected {
            let gauge = Gauge::<i64>::default();
            gauge.set(i64::from(up));
            registry.register(
                "hub_broker_connected",
                "1 while the hub has a connection to the broker",
                gauge,
            );
        }
        registry
    }
}

/// How long a scrape waits for the database.
const SCRAPE_QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// Counting sagas scans the table: a scrape reuses a count this recent.
const SAGA_COUNT_TTL: Duration = Duration::from_secs(5);

/// The saga counts of the last scrape, reused for [`SAGA_COUNT_TTL`].
#[derive(Debug, Default)]
pub struct SagaCountCache {
    last: tokio::sync::Mutex<Option<(Instant, SagaCounts, OpenSagas)>>,
}

impl SagaCountCache {
    /// Saga counts by type and state: cached, else read (`None` when the database did not
    /// answer in time).
    pub async fn get(&self, pool: &PgPool) -> Option<SagaCounts> {
        self.get_with_open(pool).await.map(|(counts, _)| counts)
    }

    /// Saga counts by type and state, and the instances not yet ended by type, from the same
    /// read: cached, else read (`None` when the database did not answer in time).
    pub async fn get_with_open(&self, pool: &PgPool) -> Option<(SagaCounts, OpenSagas)> {
        let mut last = self.last.lock().await;
        if let Some((at, counts, open)) = last.as_ref()
            && at.elapsed() < SAGA_COUNT_TTL
        {
            return Some((counts.clone(), open.clone()));
        }
        let rows: Vec<(String, String, i64, i64)> = bounded(
            sqlx::query_as(
                "SELECT saga_type, state_name, count(*), count(*) FILTER (WHERE NOT terminal)
                 FROM sagas GROUP BY 1, 2 ORDER BY 1, 2",
            )
            .fetch_all(pool),
        )
        .await?;
        let mut open: OpenSagas = Vec::new();
        for (saga_type, _, _, not_ended) in &rows {
            match open.last_mut() {
                Some((last_type, n)) if last_type == saga_type => *n += not_ended,
                _ => open.push((saga_type.clone(), *not_ended)),
            }
        }
        let counts: SagaCounts = rows
            .into_iter()
            .map(|(saga_type, state, count, _)| (saga_type, state, count))
            .collect();
        *last = Some((Instant::now(), counts.clone(), open.clone()));
        Some((counts, open))
    }
}

/// The outbox's unsent rows and the age of the oldest, in seconds (`None` when the database did
/// not answer in time).
pub async fn outbox_lag(pool: &PgPool) -> Option<(i64, f64)> {
    bounded(
        sqlx::query_as(
            "SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at))::float8, 0)
             FROM outbox WHERE sent_at IS NULL",
        )
        .fetch_one(pool),
    )
    .await
}

async fn bounded<T>(query: impl Future<Output = Result<T, sqlx::Error>>) -> Option<T> {
    match tokio::time::timeout(SCRAPE_QUERY_TIMEOUT, query).await {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "a metrics query failed");
            None
        }
        Err(_) => {
            tracing::debug!("a metrics query did not answer in time");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_events_show_in_the_text_format() {
        let m = metrics();
        m.message_in("t-metrics.q", "test.ping.v1", InOutcome::Ok);
        m.message_in("t-metrics.q", "Not A Type", InOutcome::DeadLettered);
        m.dead_letter("t-metrics.q", ErrorKind::InvalidInput);
        m.retry("t-metrics.q", 1);
        m.handler_ran("t-metrics.q", Duration::from_millis(3));
        m.relayed("", "test.pong.v1", true);
        m.saga_ended("t-metrics-saga", Duration::from_secs(42));
        m.external_call::<()>(
            "test-system",
            "ping",
            Duration::from_millis(5),
            &Err(Failure::transient("down")),
        );
        m.argon2(Argon2Op::Verify, Duration::from_millis(20));
        let business: Family<QueueLabel, Counter> = Family::default();
        m.register(
            "t_metrics_business",
            "A business's own counter",
            business.clone(),
        );
        business
            .get_or_create(&QueueLabel {
                queue: "t-metrics.q".into(),
            })
            .inc();
        let snapshot = Snapshot {
            sagas: vec![("issuance".into(), "awaiting_mvd".into(), 3)],
            open_sagas: vec![("issuance".into(), 3)],
            outbox_unsent: Some(2),
            outbox_lag_seconds: Some(1.5),
            broker_connected: Some(true),
        };
        let text = m.encode(&snapshot.registry());
        for line in [
            r#"hub_messages_in_total{queue="t-metrics.q",type="test.ping.v1",outcome="ok"} 1"#,
            r#"hub_messages_in_total{queue="t-metrics.q",type="invalid",outcome="dead_lettered"} 1"#,
            r#"hub_dead_letters_total{queue="t-metrics.q",kind="invalid_input"} 1"#,
            r#"hub_retries_total{queue="t-metrics.q",tier="1"} 1"#,
            r#"hub_handler_duration_seconds_count{queue="t-metrics.q"} 1"#,
            r#"hub_messages_out_total{exchange="(default)",type="test.pong.v1"} 1"#,
            r#"hub_saga_duration_seconds_sum{saga_type="t-metrics-saga"} 42.0"#,
            r#"hub_external_call_errors_total{system="test-system",operation="ping",kind="transient"} 1"#,
            r#"hub_argon2_seconds_count{op="verify"} "#,
            r#"hub_argon2_seconds_sum{op="verify"} "#,
            r#"hub_argon2_seconds_bucket{le="0.032",op="verify"} "#,
            r#"t_metrics_business_total{queue="t-metrics.q"} 1"#,
            r#"hub_sagas{saga_type="issuance",state="awaiting_mvd"} 3"#,
            r#"hub_sagas_open{saga_type="issuance"} 3"#,
            "hub_outbox_unsent 2",
            "hub_outbox_lag_seconds 1.5",
            "hub_broker_connected 1",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "one EOF, at the end");
        assert_eq!(text.matches("# EOF").count(), 1);
    }

    #[test]
    fn message_types_are_bounded() {
        let m = Metrics::new();
        for i in 0..MAX_MESSAGE_TYPES {
            assert_eq!(m.type_label(&format!("t{i}.v1")), format!("t{i}.v1"));
        }
        assert_eq!(m.type_label("one.too.many.v1"), "other");
        assert_eq!(m.type_label("t0.v1"), "t0.v1", "a known type stays itself");
        assert_eq!(m.type_label("+375291234567"), "invalid");
    }
}
