//! The one consumer runner: bounded prefetch, acks only after the handler's work is committed,
//! and turns every failure into a decision. A bad body, a failing or panicking handler never
//! stops the consumer.
//!
//! | handler result                         | what happens                                          |
//! |----------------------------------------|-------------------------------------------------------|
//! | `Ok`                                   | ack                                                   |
//! | transient, attempts left               | to the retry tier for this attempt, TTL with jitter   |
//! | transient, no attempts left            | dead-lettered, kind `retries_exhausted`               |
//! | permanent / invalid input / panic      | dead-lettered at once                                 |
//!
//! A retry or dead letter is published (and confirmed) before the original is acked; if that
//! publish fails the original is nacked back to its queue, where `x-delivery-limit` bounds it.

use std::cell::Cell;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use contracts::metadata::ErrorKind;
use contracts::{Failure, FailureKind};
use contracts::{Metadata, Topology, headers};
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use rand::Rng;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::properties::{
    decode_properties, header_str, header_time, header_u32, long_string, time_value, with_headers,
};
use super::{Broker, Publisher};
use crate::metrics::{InOutcome, metrics};
use crate::trace::TraceContext;

/// A message as a handler sees it.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// Properties and headers. Its `traceparent` is this handling's own span (a child of the
    /// one the message arrived with, or a new trace), so whatever the handler sends, and the
    /// external calls it makes, continue the trace.
    pub metadata: Metadata,
    /// The JSON body, unparsed: the handler decodes it into its contract type.
    pub body: Vec<u8>,
    /// The work queue it came from (full name).
    pub queue: String,
    /// The exchange it was first published to (not the retry path it may have taken since).
    pub exchange: String,
    /// The routing key it was first published with.
    pub routing_key: String,
    /// How many times handling it failed before this delivery.
    pub previous_failures: u32,
}

/// Handles the messages of one queue. Object-safe so that sagas of different types can sit in
/// one list.
pub trait Handler: Send + Sync + 'static {
    /// A stable name, used as the inbox's consumer key: renaming it re-handles old messages.
    fn name(&self) -> &str;

    /// Handles one message. `Ok` means its effects are committed.
    fn handle<'a>(&'a self, message: &'a Incoming) -> BoxFuture<'a, Result<(), Failure>>;

    /// The saga this handler runs, if it runs one: what operators' tools may ask of it.
    fn saga(&self) -> Option<&dyn crate::engine::SagaControl> {
        None
    }
}

tokio::task_local! {
    /// Set by a handler that found its message already handled; read by the runner.
    static DUPLICATE: Cell<bool>;
}

/// Tells the consumer runner that the message being handled was already handled before (its id
/// is in the inbox), so it is counted as a duplicate, not as new work. Called by the engines
/// where they skip a message; a no-op outside a consumer. It goes beside [`Handler::handle`]
/// rather than in its result, so no handler has to change for it.
pub fn handled_as_duplicate() {
    let _ = DUPLICATE.try_with(|d| d.set(true));
}

/// How one consumer runs.
#[derive(Clone)]
pub struct ConsumerSettings {
    /// Full name of the work queue.
    pub queue: String,
    /// Unacked messages in flight at once (and so handler calls at once).
    pub prefetch: u16,
    /// Handling attempts before a transiently failing message is dead-lettered.
    pub max_attempts: u32,
    /// A handler running longer than this counts as a transient failure.
    pub handler_timeout: Duration,
    /// Random spread of retry delays, as a fraction of the tier's delay (0.2 = ±20%).
    pub jitter: f64,
    /// The hub's own broker user (the one its publisher connects as).
    pub broker_user: String,
    /// Who may send what: asked about every message before its handler sees it.
    pub senders: Arc<dyn SenderPolicy>,
}

impl std::fmt::Debug for ConsumerSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerSettings")
            .field("queue", &self.queue)
            .field("prefetch", &self.prefetch)
            .field("max_attempts", &self.max_attempts)
            .field("handler_timeout", &self.handler_timeout)
            .field("jitter", &self.jitter)
            .field("broker_user", &self.broker_user)
            .finish_non_exhaustive()
    }
}

/// The seam through which a business says who may send what. The consumer asks it about every
/// message, after the properties are decoded and before any handler (or saga) sees the body; a
/// refusal is dead-lettered with its reason, which names the sender and why.
pub trait SenderPolicy: Send + Sync + 'static {
    /// `Ok` when broker user `sender` (as the broker checked it; `None` when the message names
    /// none) may send this message of `message_type`. `hub_user` is the hub's own broker user.
    ///
    /// Errors: the refusal, a permanent failure whose reason names who and why.
    fn authorise(
        &self,
        sender: Option<&str>,
        hub_user: &str,
        message_type: &str,
        body: &[u8],
    ) -> Result<(), Failure>;
}

/// The runtime's own policy, for a plan that names none: every message must name its sender in
/// `user_id` (the broker checks it against the connection), so that whatever it causes can be
/// attributed. A business adds its own rules by a policy of its own.
#[derive(Debug, Clone, Copy, Default)]
pub struct NamedSenders;

impl SenderPolicy for NamedSenders {
    fn authorise(
        &self,
        sender: Option<&str>,
        _hub_user: &str,
        message_type: &str,
        _body: &[u8],
    ) -> Result<(), Failure> {
        require_sender(sender, message_type).map(|_| ())
    }
}

/// The sender a message names, or the refusal of a message that names none.
///
/// Errors: a permanent failure saying that every message must name its sender.
pub fn require_sender<'a>(sender: Option<&'a str>, message_type: &str) -> Result<&'a str, Failure> {
    sender.ok_or_else(|| {
        Failure::permanent(format!(
            "a {message_type} message without user_id: every message must name its sender's \
             broker user in user_id (the broker checks it against the connection)"
        ))
    })
}

/// The largest message body a consumer hands to its handler (1 MiB).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

struct Shared {
    publisher: Arc<Publisher>,
    topology: Arc<Topology>,
    settings: ConsumerSettings,
    handler: Arc<dyn Handler>,
}

/// Consumes `settings.queue` until `shutdown`, reconnecting as often as the broker goes away;
/// then stops taking deliveries and waits for those in flight to finish.
pub async fn run_consumer(
    broker: Broker,
    publisher: Arc<Publisher>,
    topology: Arc<Topology>,
    settings: ConsumerSettings,
    handler: Arc<dyn Handler>,
    shutdown: CancellationToken,
) {
    let shared = Arc::new(Shared {
        publisher,
        topology,
        settings,
        handler,
    });
    let queue = shared.settings.queue.clone();
    while !shutdown.is_cancelled() {
        let Some(channel) = broker.channel(&shutdown).await else {
            break;
        };
        let consumer = async {
            channel
                .basic_qos(shared.settings.prefetch, BasicQosOptions::default())
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
                tracing::warn!(%queue, error = %e, "cannot consume; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        tracing::info!(%queue, handler = shared.handler.name(), "consuming");
        let in_flight = TaskTracker::new();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => {
                    let _ = channel.basic_cancel(consumer.tag(), BasicCancelOptions::default()).await;
                    break;
                }
                next = consumer.next() => match next {
                    Some(Ok(delivery)) => {
                        let shared = shared.clone();
                        let (trace, span) = message_span(&shared.settings.queue, &delivery);
                        in_flight.spawn(
                            async move { process(&shared, delivery, trace).await }.instrument(span),
                        );
                    }
                    Some(Err(e)) => {
                        tracing::warn!(%queue, error = %e, "consumer failed; reconnecting");
                        break;
                    }
                    None => break,
                },
            }
        }
        // Finish what was taken before giving the channel up: its acks go on this channel.
        in_flight.close();
        if !in_flight.is_empty() {
            tracing::debug!(%queue, in_flight = in_flight.len(), "finishing in-flight messages");
        }
        in_flight.wait().await;
    }
    tracing::info!(%queue, "consumer stopped");
}

enum Outcome {
    Done { duplicate: bool },
    Failed(Failure, ErrorKind),
}

/// The properties for the hub's own copy of a message (a retry or a dead letter). The broker
/// lets a connection publish only with its own `user_id`; a message another broker user (an
/// agency) published goes out with the hub's, and its sender in [`headers::ORIGINAL_USER_ID`],
/// so the retried message is still judged as that sender's and the dead letter still names it.
fn republished_as_hub(props: &lapin::BasicProperties, hub_user: &str) -> lapin::BasicProperties {
    match props.user_id().as_ref().map(|u| u.as_str()) {
        Some(sender) if sender != hub_user => with_headers(
            &props.clone().with_user_id(hub_user.into()),
            &[(headers::ORIGINAL_USER_ID, long_string(sender))],
        ),
        _ => props.clone(),
    }
}

/// The span of handling one delivery, a child of the trace the message arrived with or the
/// root of a new one: every log line of its handling carries the trace id.
fn message_span(queue: &str, delivery: &Delivery) -> (TraceContext, tracing::Span) {
    let props = &delivery.properties;
    let trace = TraceContext::continue_or_start(header_str(props, headers::TRACEPARENT).as_deref());
    let span = tracing::info_span!(
        "message",
        %queue,
        message_type = props.kind().as_ref().map_or("", |t| t.as_str()),
        message_id = props.message_id().as_ref().map_or("", |m| m.as_str()),
        trace_id = %trace.trace_id(),
        span_id = %trace.span_id(),
    );
    (trace, span)
}

async fn process(shared: &Shared, delivery: Delivery, trace: TraceContext) {
    let props = &delivery.properties;
    let queue = shared.settings.queue.as_str();
    let message_type = props
        .kind()
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    let previous_failures = header_u32(props, headers::ATTEMPTS).unwrap_or(0);
    let exchange = header_str(props, headers::ORIGINAL_EXCHANGE)
        .unwrap_or_else(|| delivery.exchange.to_string());
    let routing_key = header_str(props, headers::ORIGINAL_ROUTING_KEY)
        .unwrap_or_else(|| delivery.routing_key.to_string());
    let outcome = match decode_properties(props) {
        // Contract messages are a few kilobytes (attachments travel as references): a larger
        // body is refused before anything parses it, and dead-lettered with its reason.
        _ if delivery.data.len() > MAX_BODY_BYTES => Outcome::Failed(
            Failure::invalid_input(format!(
                "body of {} bytes is larger than the {MAX_BODY_BYTES} bytes the hub accepts",
                delivery.data.len()
            )),
            ErrorKind::InvalidInput,
        ),
        Err(reason) => Outcome::Failed(Failure::invalid_input(reason), ErrorKind::InvalidInput),
        Ok(mut metadata) => 'handled: {
            // A copy the hub itself republished for another sender names that sender in a
            // header (see `republished_as_hub`).
            if metadata.user_id.as_deref() == Some(shared.settings.broker_user.as_str())
                && let Some(original) = header_str(props, headers::ORIGINAL_USER_ID)
            {
                metadata.user_id = Some(original);
            }
            // An unattributed message, an agency sending the hub's own types or a desk speaking
            // for another desk is refused before any handler (or saga) sees it.
            if let Err(refused) = shared.settings.senders.authorise(
                metadata.user_id.as_deref(),
                &shared.settings.broker_user,
                &metadata.message_type,
                &delivery.data,
            ) {
                tracing::warn!(reason = %refused.reason, "a message refused for its sender");
                break 'handled Outcome::Failed(refused, ErrorKind::Permanent);
            }
            // Handling it is a span of its own: what it causes carries that span as parent.
            metadata.traceparent = Some(trace.to_string());
            let incoming = Incoming {
                metadata,
                body: delivery.data.clone(),
                queue: shared.settings.queue.clone(),
                exchange: exchange.clone(),
                routing_key: routing_key.clone(),
                previous_failures,
            };
            let started = Instant::now();
            let handled = AssertUnwindSafe(tokio::time::timeout(
                shared.settings.handler_timeout,
                DUPLICATE.scope(Cell::new(false), async {
                    let result = shared.handler.handle(&incoming).await;
                    (result, DUPLICATE.with(Cell::get))
                }),
            ))
            .catch_unwind()
            .await;
            metrics().handler_ran(queue, started.elapsed());
            match handled {
                Ok(Ok((Ok(()), duplicate))) => Outcome::Done { duplicate },
                Ok(Ok((Err(f), _))) => {
                    let kind = match f.kind {
                        FailureKind::Transient => ErrorKind::RetriesExhausted,
                        FailureKind::Permanent => ErrorKind::Permanent,
                        FailureKind::InvalidInput => ErrorKind::InvalidInput,
                    };
                    Outcome::Failed(f, kind)
                }
                Ok(Err(_elapsed)) => Outcome::Failed(
                    Failure::transient(format!(
                        "handler did not finish within {:?}",
                        shared.settings.handler_timeout
                    )),
                    ErrorKind::RetriesExhausted,
                ),
                Err(_panic) => Outcome::Failed(
                    Failure::permanent("handler panicked"),
                    ErrorKind::HandlerPanicked,
                ),
            }
        }
    };
    let failure = match outcome {
        Outcome::Done { duplicate } => {
            let outcome = if duplicate {
                InOutcome::Duplicate
            } else {
                InOutcome::Ok
            };
            metrics().message_in(queue, &message_type, outcome);
            ack(&delivery).await;
            return;
        }
        Outcome::Failed(f, kind) => (f, kind),
    };
    let (failure, dead_kind) = failure;
    let attempts = previous_failures + 1;
    let now = time_value(Utc::now());
    let first = header_time(props, headers::FIRST_FAILURE).map_or_else(|| now.clone(), time_value);
    let mut set: Vec<(&str, AMQPValue)> = vec![
        (headers::ATTEMPTS, AMQPValue::LongLongInt(attempts.into())),
        (headers::FIRST_FAILURE, first),
        (headers::LAST_FAILURE, now),
        (headers::ORIGINAL_EXCHANGE, long_string(&exchange)),
        (headers::ORIGINAL_ROUTING_KEY, long_string(&routing_key)),
        (headers::QUEUE, long_string(&shared.settings.queue)),
        (headers::ERROR_TEXT, long_string(&failure.reason)),
    ];
    let message_id = props
        .message_id()
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    let props = &republished_as_hub(props, &shared.settings.broker_user);
    let retry = failure.is_transient() && attempts < shared.settings.max_attempts;
    let tier = shared.topology.tier_for_attempt(attempts);
    let published = if retry {
        let delay = jittered(
            shared.topology.retry_tiers()[tier].delay,
            shared.settings.jitter,
        );
        set.push((headers::ERROR_KIND, long_string("transient")));
        tracing::info!(
            queue = %shared.settings.queue, %message_id, %message_type, attempts,
            retry_in_ms = delay.as_millis() as u64, reason = %failure.reason,
            "transient failure; retrying later"
        );
        let props = with_headers(props, &set).with_expiration(delay.as_millis().to_string().into());
        let tier_exchange = shared.topology.retry_tier(tier);
        // The routing key travels with the message: the tier dead-letters it to the requeue
        // exchange, where it names this work queue.
        shared
            .publisher
            .publish_raw(
                &tier_exchange,
                &shared.settings.queue,
                props,
                &delivery.data,
            )
            .await
    } else {
        set.push((headers::ERROR_KIND, long_string(dead_kind.as_str())));
        tracing::warn!(
            queue = %shared.settings.queue, %message_id, %message_type, attempts,
            kind = %dead_kind, reason = %failure.reason,
            "message dead-lettered"
        );
        // A body with a secret in the clear (a code a person read out) is not kept.
        let redacted = contracts::is_sensitive(&message_type);
        if redacted {
            set.push((headers::REDACTED, AMQPValue::Boolean(true)));
        }
        let body: &[u8] = if redacted {
            br#"{"redacted":"this message type carries a secret; its body is not kept in dead letters"}"#
        } else {
            &delivery.data
        };
        let props = with_headers(props, &set);
        shared
            .publisher
            .publish_raw(
                &shared.topology.dead_exchange(),
                &shared.settings.queue,
                props,
                body,
            )
            .await
    };
    match published {
        Ok(()) => {
            if retry {
                metrics().message_in(queue, &message_type, InOutcome::Retried);
                metrics().retry(queue, tier);
            } else {
                metrics().message_in(queue, &message_type, InOutcome::DeadLettered);
                metrics().dead_letter(queue, dead_kind);
            }
            ack(&delivery).await
        }
        Err(e) => {
            metrics().message_in(queue, &message_type, InOutcome::Requeued);
            tracing::warn!(queue = %shared.settings.queue, %message_id, error = %e, "could not park the failed message; returning it to its queue");
            let requeue = BasicNackOptions {
                requeue: true,
                ..BasicNackOptions::default()
            };
            let nacked = tokio::time::timeout(ACK_TIMEOUT, delivery.acker.nack(requeue)).await;
            if let Some(e) = match nacked {
                Ok(Ok(_)) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some(format!("not written within {ACK_TIMEOUT:?}")),
            } {
                tracing::debug!(error = %e, "nack failed; the broker redelivers after the channel closes");
            }
        }
    }
}

/// Longest wait for an ack or nack to be written: on a connection that died unnoticed it would
/// otherwise hold the consumer's drain for ever.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

async fn ack(delivery: &Delivery) {
    match tokio::time::timeout(ACK_TIMEOUT, delivery.acker.ack(BasicAckOptions::default())).await {
        Ok(Ok(_)) => {}
        // The channel died after the work was committed: the broker redelivers, the inbox skips.
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "ack failed; the message will be redelivered and deduplicated");
        }
        Err(_) => {
            tracing::warn!("ack not written within {ACK_TIMEOUT:?}; the broker will redeliver")
        }
    }
}

fn jittered(delay: Duration, jitter: f64) -> Duration {
    let jitter = jitter.clamp(0.0, 0.9);
    if jitter == 0.0 {
        return delay;
    }
    delay.mul_f64(rand::rng().random_range(1.0 - jitter..=1.0 + jitter))
}

#[cfg(test)]
mod tests {
    use super::{headers, jittered, republished_as_hub};
    use std::time::Duration;

    #[test]
    fn the_hubs_copy_of_an_agencys_message_names_the_agency_in_a_header() {
        let theirs = lapin::BasicProperties::default().with_user_id("authority-fszn".into());
        let copy = republished_as_hub(&theirs, "hub");
        assert_eq!(copy.user_id().as_ref().map(|u| u.as_str()), Some("hub"));
        assert_eq!(
            crate::broker::header_str(&copy, headers::ORIGINAL_USER_ID).as_deref(),
            Some("authority-fszn")
        );
        // A retry of that copy, or the hub's own message, stays as it is.
        let again = republished_as_hub(&copy, "hub");
        assert_eq!(again, copy);
        let ours = lapin::BasicProperties::default().with_user_id("hub".into());
        assert_eq!(republished_as_hub(&ours, "hub"), ours);
    }

    #[test]
    fn jitter_stays_within_its_spread() {
        let base = Duration::from_millis(1000);
        for _ in 0..1000 {
            let d = jittered(base, 0.2);
            assert!((800..=1200).contains(&d.as_millis()), "{d:?}");
        }
        assert_eq!(jittered(base, 0.0), base);
    }
}
