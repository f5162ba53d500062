//! The one consumer runner: bounded prefetch, acks only after the handler's work is committed,
//! and turns every failure into a decision. A bad body, a failing or panicking handler never
//! stops the consumer.
//!
//! Each delivery is read (properties, size), authorised ([`SenderPolicy`]) and handled; what
//! then happens to it is decided by [`super::decision::decide`], a pure function whose module
//! holds the whole table:
//!
//! | handler result                         | what happens                                          |
//! |----------------------------------------|-------------------------------------------------------|
//! | `Ok`                                   | ack                                                   |
//! | transient, attempts left               | to the retry tier for this attempt, TTL with jitter (no sooner than a `retry_after`) |
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
use contracts::metadata;
use contracts::{Failure, FailureKind};
use contracts::{Metadata, Topology, headers};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use lapin::types::AMQPValue;
use rand::Rng;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::decision::{Decision, Outcome, RetryPolicy, decide};
use super::properties::{
    decode_properties, header_str, header_time, header_u32, long_string, time_value, with_headers,
};
use super::runner::{self, Consumption, Flow, Taken};
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

    /// Whether it handles several messages of its queue together ([`Handler::handle_batch`]).
    /// The consumer then takes its queue's ready deliveries as batches (`HUB_BATCH`).
    fn batches(&self) -> bool {
        false
    }

    /// Handles `messages` (deliveries of its queue, in delivery order) together, typically in
    /// one transaction: one outcome per message, in the same order. A message left
    /// [`BatchOutcome::Alone`] is then given to [`Handler::handle`] on its own, after the
    /// batch. `Err` means nothing of the batch is committed, and every message is handled on
    /// its own. The default leaves them all alone.
    fn handle_batch<'a>(
        &'a self,
        messages: &'a [Incoming],
    ) -> BoxFuture<'a, Result<Vec<BatchOutcome>, Failure>> {
        Box::pin(async move { Ok(messages.iter().map(|_| BatchOutcome::Alone).collect()) })
    }

    /// The saga this handler runs, if it runs one: what operators' tools may ask of it.
    fn saga(&self) -> Option<&dyn crate::engine::SagaControl> {
        None
    }
}

/// What became of one message of a batch ([`Handler::handle_batch`]).
#[derive(Debug)]
pub enum BatchOutcome {
    /// Its effects are committed with the batch; `duplicate` when the inbox had seen it.
    Done {
        /// It had been handled before.
        duplicate: bool,
    },
    /// It failed and nothing of it is committed (the others' effects are): it is retried or
    /// dead-lettered like any failed message.
    Failed(Failure),
    /// Not handled in the batch: it is handled on its own afterwards.
    Alone,
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
    /// Unacked messages in flight at once (and so handler calls at once), per lane.
    pub prefetch: u16,
    /// Most messages a batching handler ([`Handler::batches`]) takes in one go; 1 handles
    /// every message on its own.
    pub batch: usize,
    /// Batches in flight at once on the queue of a batching handler, each on a channel of its
    /// own with `prefetch` unacked deliveries.
    pub lanes: usize,
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
            .field("batch", &self.batch)
            .field("lanes", &self.lanes)
            .field("max_attempts", &self.max_attempts)
            .field("handler_timeout", &self.handler_timeout)
            .field("jitter", &self.jitter)
            .field("broker_user", &self.broker_user)
            .finish_non_exhaustive()
    }
}

/// One delivery as the [`SenderPolicy`] is asked about it: who sent it (as the broker checked
/// it), what it claims to be, where it wants answers, and its body.
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    /// The sender's broker user (for the hub's own retry and replay copies, the original
    /// sender); `None` when the message names none.
    pub sender: Option<&'a str>,
    /// The hub's own broker user.
    pub hub_user: &'a str,
    /// The namespace of the hub's topology (queue names start with it).
    pub namespace: &'a str,
    /// The `type` property.
    pub message_type: &'a str,
    /// The `reply_to` property: the queue the sender wants answers in.
    pub reply_to: Option<&'a str>,
    /// The body, not yet decoded.
    pub body: &'a [u8],
}

/// The seam through which a business says who may send what. The consumer asks it about every
/// message, after the properties are decoded and before any handler (or saga) sees the body; a
/// refusal is dead-lettered with its reason, which names the sender and why.
pub trait SenderPolicy: Send + Sync + 'static {
    /// `Ok` when the sender may send this message (and ask for answers where it asks).
    ///
    /// Errors: the refusal, a permanent failure whose reason names who and why.
    fn authorise(&self, claim: &Claim<'_>) -> Result<(), Failure>;
}

/// The runtime's own policy, for a plan that names none: every message must name its sender in
/// `user_id` (the broker checks it against the connection), so that whatever it causes can be
/// attributed. A business adds its own rules by a policy of its own.
#[derive(Debug, Clone, Copy, Default)]
pub struct NamedSenders;

impl SenderPolicy for NamedSenders {
    fn authorise(&self, claim: &Claim<'_>) -> Result<(), Failure> {
        require_sender(claim.sender, claim.message_type).map(|_| ())
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
    let batched = handler.batches() && settings.batch > 1;
    let (flow, lanes) = if batched {
        (Flow::Batched(settings.batch), settings.lanes.max(1))
    } else {
        (Flow::Concurrent, 1)
    };
    let consumption = Consumption {
        queue: settings.queue.clone(),
        prefetch: settings.prefetch,
        flow,
        consumer: handler.name().to_owned(),
    };
    let shared = Arc::new(Shared {
        publisher,
        topology,
        settings,
        handler,
    });
    let lane = || {
        runner::consume(&broker, &consumption, &shutdown, |taken| {
            let shared = shared.clone();
            if batched {
                return async move { process_batch(&shared, taken).await }.boxed();
            }
            async move {
                for taken in taken {
                    let (trace, span) = message_span(&shared.settings.queue, taken.properties());
                    process(&shared, taken, trace).instrument(span).await;
                }
            }
            .boxed()
        })
    };
    futures_util::future::join_all((0..lanes).map(|_| lane())).await;
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

/// The broker user a delivery is judged as sent by. A copy the hub itself republished for
/// another sender (a retry, a dead letter's replay) names that sender in
/// [`headers::ORIGINAL_USER_ID`] (see `republished_as_hub`). The header is believed only when
/// `user_id` is the hub's (`hub_user`), which the broker lets no one else publish: on another
/// user's message, or one naming no user, it is anyone's claim and names no one.
fn sender_of(props: &lapin::BasicProperties, hub_user: &str) -> Option<String> {
    let user = props.user_id().as_ref().map(|u| u.to_string());
    match user {
        Some(user) if user == hub_user => {
            header_str(props, headers::ORIGINAL_USER_ID).or(Some(user))
        }
        other => other,
    }
}

/// The span of handling one delivery, a child of the trace the message arrived with or the
/// root of a new one ([`crate::trace::open`]): every log line of its handling carries the trace
/// id, and so does the span when it is exported.
fn message_span(queue: &str, props: &lapin::BasicProperties) -> (TraceContext, tracing::Span) {
    let parent = header_str(props, headers::TRACEPARENT)
        .as_deref()
        .and_then(TraceContext::parse);
    let span = tracing::info_span!(
        "message",
        %queue,
        message_type = props.kind().as_ref().map_or("", |t| t.as_str()),
        message_id = props.message_id().as_ref().map_or("", |m| m.as_str()),
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
    );
    let trace = crate::trace::open(&span, parent);
    (trace, span)
}

/// What the runner reads of a delivery before handling it.
struct Facts {
    message_type: String,
    message_id: String,
    previous_failures: u32,
    /// The exchange and routing key it was first published with (not its retry path).
    exchange: String,
    routing_key: String,
}

impl Facts {
    fn of(taken: &Taken) -> Self {
        let props = taken.properties();
        let text = |v: &Option<lapin::types::ShortString>| {
            v.as_ref().map(ToString::to_string).unwrap_or_default()
        };
        Self {
            message_type: text(props.kind()),
            message_id: text(props.message_id()),
            previous_failures: header_u32(props, headers::ATTEMPTS).unwrap_or(0),
            exchange: header_str(props, headers::ORIGINAL_EXCHANGE)
                .unwrap_or_else(|| taken.exchange().to_owned()),
            routing_key: header_str(props, headers::ORIGINAL_ROUTING_KEY)
                .unwrap_or_else(|| taken.routing_key().to_owned()),
        }
    }
}

/// How one handling went.
enum Handling {
    /// Its work is committed; `duplicate` when the inbox had seen it before.
    Done { duplicate: bool },
    /// It failed: what the decision needs, and the failure itself for the headers and logs.
    Failed(Outcome, Failure),
}

/// Handles one delivery: decides, then carries the decision out. Never fails: whatever goes
/// wrong is a retry, a dead letter or, when even that cannot be published, a requeue.
async fn process(shared: &Shared, taken: Taken, trace: TraceContext) {
    let facts = Facts::of(&taken);
    let handling = handle(shared, &taken, &facts, trace).await;
    let (outcome, failure) = match handling {
        Handling::Done { duplicate } => {
            let outcome = if duplicate {
                InOutcome::Duplicate
            } else {
                InOutcome::Ok
            };
            metrics().message_in(&shared.settings.queue, &facts.message_type, outcome);
            taken.ack().await;
            return;
        }
        Handling::Failed(outcome, failure) => (outcome, failure),
    };
    settle_failed(shared, &taken, &facts, outcome, &failure).await;
}

/// Retries or dead-letters a failed delivery (see [`park`]); false when it went back to its
/// queue instead.
async fn settle_failed(
    shared: &Shared,
    taken: &Taken,
    facts: &Facts,
    outcome: Outcome,
    failure: &Failure,
) -> bool {
    let policy = RetryPolicy {
        max_attempts: shared.settings.max_attempts,
        tiers: shared.topology.retry_tiers(),
        jitter: shared.settings.jitter,
    };
    let jitter_sample = rand::rng().random_range(0.0..=1.0);
    let decision = decide(
        outcome,
        facts.previous_failures,
        failure.retry_after,
        &policy,
        jitter_sample,
    );
    park(shared, taken, facts, decision, failure).await
}

/// One delivery of a batch on its way through [`process_batch`].
struct Member {
    taken: Taken,
    facts: Facts,
    span: tracing::Span,
    /// How its handling went, once known.
    handling: Option<Handling>,
}

/// Handles the deliveries of a batch together ([`Handler::handle_batch`]) and settles them:
/// the failed ones each on its own (retried or dead-lettered), the ones left alone by the
/// batch handled on their own, then every handled one with one multiple-ack after the last of
/// them. Never fails, like [`process`].
async fn process_batch(shared: &Shared, taken: Vec<Taken>) {
    let mut members = Vec::with_capacity(taken.len());
    // The admitted messages, and which member each is.
    let (mut incoming, mut admitted) = (Vec::new(), Vec::new());
    for taken in taken {
        let facts = Facts::of(&taken);
        let (trace, span) = message_span(&shared.settings.queue, taken.properties());
        let handling = match span.in_scope(|| admit(shared, &taken, &facts, trace)) {
            Ok(message) => {
                admitted.push(members.len());
                incoming.push(message);
                None
            }
            Err(refused) => Some(refused),
        };
        members.push(Member {
            taken,
            facts,
            span,
            handling,
        });
    }
    let outcomes = match incoming.len() {
        0 => Vec::new(),
        1 => vec![BatchOutcome::Alone],
        _ => run_batch(shared, &incoming).await,
    };
    for ((index, message), outcome) in admitted.iter().zip(&incoming).zip(outcomes) {
        let member = &mut members[*index];
        member.handling = Some(match outcome {
            BatchOutcome::Done { duplicate } => Handling::Done { duplicate },
            BatchOutcome::Failed(f) => Handling::Failed(Outcome::Failed(f.kind), f),
            BatchOutcome::Alone => {
                run_handler(shared, message)
                    .instrument(member.span.clone())
                    .await
            }
        });
    }
    settle_batch(shared, members).await;
}

/// Runs the handler on a batch within the handler's timeout, a panic caught: one outcome per
/// message, or every one [`BatchOutcome::Alone`] when the batch committed nothing (it failed,
/// timed out or panicked; a transaction dropped unfinished is rolled back).
async fn run_batch(shared: &Shared, messages: &[Incoming]) -> Vec<BatchOutcome> {
    let (queue, timeout) = (&shared.settings.queue, shared.settings.handler_timeout);
    let started = Instant::now();
    let span = tracing::debug_span!("batch", %queue, messages = messages.len());
    let ran = AssertUnwindSafe(tokio::time::timeout(
        timeout,
        shared.handler.handle_batch(messages),
    ))
    .catch_unwind()
    .instrument(span)
    .await;
    metrics().batch_ran(queue, messages.len(), started.elapsed());
    let why = match ran {
        Ok(Ok(Ok(outcomes))) if outcomes.len() == messages.len() => return outcomes,
        Ok(Ok(Ok(outcomes))) => format!(
            "the handler gave {} outcomes for {} messages",
            outcomes.len(),
            messages.len()
        ),
        Ok(Ok(Err(failure))) => failure.reason,
        Ok(Err(_elapsed)) => format!("not done within {timeout:?}"),
        Err(_panic) => "the handler panicked".to_owned(),
    };
    tracing::warn!(%queue, messages = messages.len(), reason = %why, "a batch committed nothing; its messages are handled one by one");
    messages.iter().map(|_| BatchOutcome::Alone).collect()
}

/// Settles a batch whose handling is known: the failed deliveries first, each on its own, then
/// the handled ones with one multiple-ack through the last of them, which is safe because by
/// then every other delivery of the channel before it is settled (one batch at a time per
/// channel). If a failed one could only be returned to its queue, the handled ones are acked
/// one by one instead, so that the multiple-ack cannot take the returned one with it.
async fn settle_batch(shared: &Shared, members: Vec<Member>) {
    let queue = shared.settings.queue.as_str();
    let mut handled = Vec::new();
    let mut all_acked = true;
    for member in members {
        match member.handling {
            Some(Handling::Done { duplicate }) => {
                let outcome = if duplicate {
                    InOutcome::Duplicate
                } else {
                    InOutcome::Ok
                };
                metrics().message_in(queue, &member.facts.message_type, outcome);
                handled.push(member.taken);
            }
            Some(Handling::Failed(outcome, failure)) => {
                let (taken, facts) = (&member.taken, &member.facts);
                all_acked &= settle_failed(shared, taken, facts, outcome, &failure)
                    .instrument(member.span)
                    .await;
            }
            // Every member is admitted or refused, and every admitted one gets an outcome; were
            // one left without, it goes back to its queue rather than be acked unhandled.
            None => {
                tracing::error!(%queue, message_id = %member.facts.message_id, "a batch member was left without an outcome; returning it to its queue");
                member.taken.requeue().await;
                all_acked = false;
            }
        }
    }
    match handled.last() {
        Some(last) if all_acked => {
            last.ack_through().await;
        }
        _ => {
            for taken in &handled {
                taken.ack().await;
            }
        }
    }
}

/// Reads, authorises and handles one delivery.
async fn handle(shared: &Shared, taken: &Taken, facts: &Facts, trace: TraceContext) -> Handling {
    match admit(shared, taken, facts, trace) {
        Ok(incoming) => run_handler(shared, &incoming).await,
        Err(refused) => refused,
    }
}

/// Reads and authorises one delivery: the message its handler is to see, or why it is refused.
fn admit(
    shared: &Shared,
    taken: &Taken,
    facts: &Facts,
    trace: TraceContext,
) -> Result<Incoming, Handling> {
    let props = taken.properties();
    let body = taken.body();
    // Contract messages are a few kilobytes (attachments travel as references): a larger body
    // is refused before anything parses it, and dead-lettered with its reason.
    if body.len() > MAX_BODY_BYTES {
        return Err(Handling::Failed(
            Outcome::Unreadable,
            Failure::invalid_input(format!(
                "body of {} bytes is larger than the {MAX_BODY_BYTES} bytes the hub accepts",
                body.len()
            )),
        ));
    }
    let mut metadata = decode_properties(props)
        .map_err(|reason| Handling::Failed(Outcome::Unreadable, Failure::invalid_input(reason)))?;
    metadata.user_id = sender_of(props, &shared.settings.broker_user);
    // An unattributed message, or one its sender may not send, is refused before any handler
    // (or saga) sees it.
    let claim = Claim {
        sender: metadata.user_id.as_deref(),
        hub_user: &shared.settings.broker_user,
        namespace: shared.topology.namespace().as_str(),
        message_type: &metadata.message_type,
        reply_to: metadata.reply_to.as_deref(),
        body,
    };
    if let Err(refused) = shared.settings.senders.authorise(&claim) {
        tracing::warn!(reason = %refused.reason, "a message refused for its sender");
        return Err(Handling::Failed(Outcome::Refused, refused));
    }
    // Handling it is a span of its own: what it causes carries that span as parent.
    metadata.traceparent = Some(trace.to_string());
    Ok(Incoming {
        metadata,
        body: body.to_vec(),
        queue: shared.settings.queue.clone(),
        exchange: facts.exchange.clone(),
        routing_key: facts.routing_key.clone(),
        previous_failures: facts.previous_failures,
    })
}

/// Runs the handler within its timeout, a panic caught.
async fn run_handler(shared: &Shared, incoming: &Incoming) -> Handling {
    let timeout = shared.settings.handler_timeout;
    let started = Instant::now();
    let handled = AssertUnwindSafe(tokio::time::timeout(
        timeout,
        DUPLICATE.scope(Cell::new(false), async {
            let result = shared.handler.handle(incoming).await;
            (result, DUPLICATE.with(Cell::get))
        }),
    ))
    .catch_unwind()
    .await;
    metrics().handler_ran(&shared.settings.queue, started.elapsed());
    match handled {
        Ok(Ok((Ok(()), duplicate))) => Handling::Done { duplicate },
        Ok(Ok((Err(failure), _))) => Handling::Failed(Outcome::Failed(failure.kind), failure),
        Ok(Err(_elapsed)) => Handling::Failed(
            Outcome::Failed(FailureKind::Transient),
            Failure::transient(format!("handler did not finish within {timeout:?}")),
        ),
        Err(_panic) => Handling::Failed(Outcome::Panicked, Failure::permanent("handler panicked")),
    }
}

/// The headers every failed message carries on: how often and when it failed, where it was
/// first published, where it failed and why.
fn failure_headers<'a>(
    props: &lapin::BasicProperties,
    facts: &'a Facts,
    queue: &'a str,
    attempts: u32,
    reason: &str,
) -> Vec<(&'static str, AMQPValue)> {
    let now = time_value(Utc::now());
    let first = header_time(props, headers::FIRST_FAILURE).map_or_else(|| now.clone(), time_value);
    vec![
        (headers::ATTEMPTS, AMQPValue::LongLongInt(attempts.into())),
        (headers::FIRST_FAILURE, first),
        (headers::LAST_FAILURE, now),
        (headers::ORIGINAL_EXCHANGE, long_string(&facts.exchange)),
        (
            headers::ORIGINAL_ROUTING_KEY,
            long_string(&facts.routing_key),
        ),
        (headers::QUEUE, long_string(queue)),
        (headers::ERROR_TEXT, long_string(reason)),
    ]
}

/// What a dead letter carries of a body: a body with a secret in the clear (a code a person
/// read out) is not kept.
const REDACTED_BODY: &[u8] =
    br#"{"redacted":"this message type carries a secret; its body is not kept in dead letters"}"#;

/// Carries out `decision` for a failed message: publishes it to its retry tier or to the
/// dead-letter exchange (confirmed) and then acks the original; if that publish fails, the
/// original goes back to its queue (and the result is false).
async fn park(
    shared: &Shared,
    taken: &Taken,
    facts: &Facts,
    decision: Decision,
    failure: &Failure,
) -> bool {
    let queue = shared.settings.queue.as_str();
    let (message_id, message_type) = (&facts.message_id, &facts.message_type);
    let props = &republished_as_hub(taken.properties(), &shared.settings.broker_user);
    let published = match decision {
        Decision::Ack => {
            // Only a handled message is acked; `decide` gives nothing else for a failure.
            taken.ack().await;
            return true;
        }
        Decision::Retry {
            attempts,
            tier,
            delay,
        } => {
            let mut set = failure_headers(props, facts, queue, attempts, &failure.reason);
            set.push((headers::ERROR_KIND, long_string(metadata::RETRYING)));
            tracing::info!(
                %queue, %message_id, %message_type, attempts,
                retry_in_ms = delay.as_millis() as u64, reason = %failure.reason,
                "transient failure; retrying later"
            );
            let props =
                with_headers(props, &set).with_expiration(delay.as_millis().to_string().into());
            // The routing key travels with the message: the tier dead-letters it to the requeue
            // exchange, where it names this work queue.
            shared
                .publisher
                .publish_raw(
                    &shared.topology.retry_tier(tier),
                    queue,
                    props,
                    taken.body(),
                )
                .await
        }
        Decision::DeadLetter { attempts, kind } => {
            let mut set = failure_headers(props, facts, queue, attempts, &failure.reason);
            set.push((headers::ERROR_KIND, long_string(kind.as_str())));
            tracing::warn!(
                %queue, %message_id, %message_type, attempts,
                %kind, reason = %failure.reason,
                "message dead-lettered"
            );
            let redacted = contracts::is_sensitive(message_type);
            if redacted {
                set.push((headers::REDACTED, AMQPValue::Boolean(true)));
            }
            let body = if redacted {
                REDACTED_BODY
            } else {
                taken.body()
            };
            let props = with_headers(props, &set);
            shared
                .publisher
                .publish_raw(&shared.topology.dead_exchange(), queue, props, body)
                .await
        }
    };
    match published {
        Ok(()) => {
            match decision {
                Decision::Retry { tier, .. } => {
                    metrics().message_in(queue, message_type, InOutcome::Retried);
                    metrics().retry(queue, tier);
                }
                Decision::DeadLetter { kind, .. } => {
                    metrics().message_in(queue, message_type, InOutcome::DeadLettered);
                    metrics().dead_letter(queue, kind);
                }
                Decision::Ack => {}
            }
            taken.ack().await;
            true
        }
        Err(e) => {
            metrics().message_in(queue, message_type, InOutcome::Requeued);
            tracing::warn!(%queue, %message_id, error = %e, "could not park the failed message; returning it to its queue");
            taken.requeue().await;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{headers, long_string, republished_as_hub, sender_of, with_headers};

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
    fn only_the_hubs_own_user_vouches_for_another_sender() {
        let claiming = |user: Option<&str>, original: &str| {
            let p = lapin::BasicProperties::default();
            let p = match user {
                Some(u) => p.with_user_id(u.into()),
                None => p,
            };
            with_headers(&p, &[(headers::ORIGINAL_USER_ID, long_string(original))])
        };
        // The hub's copy (a retry, a replay) is judged as the sender it names.
        let copy = claiming(Some("hub"), "desk-a");
        assert_eq!(sender_of(&copy, "hub").as_deref(), Some("desk-a"));
        // An agency's own claim to speak for another is not believed ...
        let forged = claiming(Some("desk-a"), "hub");
        assert_eq!(sender_of(&forged, "hub").as_deref(), Some("desk-a"));
        assert_eq!(sender_of(&claiming(None, "hub"), "hub"), None);
        // ... and the hub's copy of it names the agency, not the claim.
        let again = republished_as_hub(&forged, "hub");
        assert_eq!(sender_of(&again, "hub").as_deref(), Some("desk-a"));
        // The hub's own message, no header: the hub's.
        let ours = lapin::BasicProperties::default().with_user_id("hub".into());
        assert_eq!(sender_of(&ours, "hub").as_deref(), Some("hub"));
    }
}
