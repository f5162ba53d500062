//! The engine's I/O shell around a [`Saga`]: one PostgreSQL transaction per message, or per
//! batch of the queue's ready messages ([`Handler::handle_batch`]).
//!
//! **A batch** is handled in one transaction, its messages one after the other, ordered by saga
//! id (a stable sort: one saga's messages keep their delivery order), so that every batch takes
//! the saga rows' locks in the same order and two batches never deadlock on them. Each message
//! is the same attempt as alone (inbox row and lock in one statement, the transition, the step
//! in one statement, the timers); a message whose transition fails has its inbox row removed
//! again and is retried or dead-lettered on its own, while the others commit. A message that
//! cannot be done in the batch (it needs a new secret that was not made beforehand, or it lost
//! a race to create its saga) is left to be handled alone after the batch, and so are the later
//! messages of its saga, to keep their order. A database error ends the batch uncommitted, and
//! every message is then handled alone.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use contracts::Failure;
use contracts::ops::CancelSaga;
use contracts::{Message, Metadata, Topology, decode};
use futures_util::future::{BoxFuture, join_all};
use sqlx::types::Json;
use sqlx::{PgPool, Postgres, Transaction};
use std::collections::HashSet;
use uuid::Uuid;

use super::command::outgoing;
use super::{CancelPreview, Command, Saga, SagaControl, SagaKey, Step, StepContext, db_failure};
use crate::broker::{BatchOutcome, Envelope, Handler, Incoming};
use crate::secrets::{FreshSecret, SecretKind};
use crate::store::outbox;
use crate::trace::TraceContext;
use tracing::Instrument;

/// Runs one saga type on one queue.
#[derive(Debug)]
pub struct SagaEngine<S> {
    saga: S,
    pool: PgPool,
    topology: Arc<Topology>,
    /// Full name of this saga's work queue: timers come back here.
    queue: String,
    app_id: String,
    inbox_key: String,
}

/// What a message asks of the saga: its own input, or an operator's cancel (which every saga
/// queue takes, from the hub alone).
enum Delivery<I> {
    Input(I),
    Cancel(CancelSaga),
}

/// Why an attempt at a step did not commit.
enum StepError {
    /// Someone else created or changed the row first: run the step again.
    Conflict,
    /// The transition hands out a new secret of this kind and the attempt had none (or one of
    /// another kind): the transaction was rolled back; make one and run the step again.
    NeedsSecret(SecretKind),
    /// The database failed: the transaction cannot go on.
    Database(sqlx::Error),
    /// The message cannot be handled (its transition or its stored state failed); nothing of
    /// the attempt but the inbox row is written.
    Failed(Failure),
}

/// What an attempt did in its transaction, not yet committed.
enum Attempted {
    /// The message is in the inbox already: nothing written.
    Duplicate,
    /// Nothing to do (a cancel of a saga that has ended meanwhile): only the inbox row.
    Nothing,
    /// The step is written.
    Stepped(Stepped),
}

/// A written step, for the log and the metrics after the commit.
struct Stepped {
    saga_id: Uuid,
    from: Option<String>,
    /// The saga had ended before this step.
    was_terminal: bool,
    created_at: DateTime<Utc>,
    written: Written,
}

/// The saga row as a step found it, locked.
struct Locked<St> {
    /// `None` before the first step.
    state: Option<St>,
    /// 0 before the first step.
    version: i64,
    state_name: Option<String>,
    /// When the saga started (now, before the first step).
    created_at: DateTime<Utc>,
}

/// What a step wrote, for the log and the metrics.
struct Written {
    to_state: String,
    terminal: bool,
    sent: usize,
}

/// The secret the step may use: the one `prepared`, when it is of the kind the transition
/// `wanted`; `Err(kind)` when the transition wants one it was not given.
fn secret_for(
    wanted: Option<SecretKind>,
    prepared: Option<&FreshSecret>,
) -> Result<Option<&FreshSecret>, SecretKind> {
    match (wanted, prepared) {
        (None, _) => Ok(None),
        (Some(kind), Some(secret)) if secret.kind() == kind => Ok(Some(secret)),
        (Some(kind), _) => Err(kind),
    }
}

impl From<sqlx::Error> for StepError {
    fn from(e: sqlx::Error) -> Self {
        StepError::Database(e)
    }
}

impl From<Failure> for StepError {
    fn from(f: Failure) -> Self {
        StepError::Failed(f)
    }
}

/// How many times a step is re-run when it loses a race to create or update the row (or, once,
/// to make the new secret it hands out).
const CONFLICT_RETRIES: usize = 5;

impl<S: Saga> SagaEngine<S> {
    /// An engine for `saga` consuming work queue `queue_short` of `topology`.
    pub fn new(
        saga: S,
        pool: PgPool,
        topology: Arc<Topology>,
        queue_short: &str,
        app_id: &str,
    ) -> Self {
        let inbox_key = format!("saga:{}", saga.saga_type());
        Self {
            queue: topology.work_queue(queue_short),
            saga,
            pool,
            topology,
            app_id: app_id.to_owned(),
            inbox_key,
        }
    }

    /// The step of a message handled alone: re-run when it loses a race, and once more with
    /// the new secret it turned out to need.
    async fn step_alone(
        &self,
        message: &Incoming,
        key: &SagaKey,
        input: &Delivery<S::Input>,
    ) -> Result<(), Failure> {
        // The likely secret is made before the first attempt: the usual step then runs once,
        // with no transaction open while argon2 works.
        let mut prepared = self.likely(input).await?;
        for _ in 0..CONFLICT_RETRIES {
            match self.step(message, key, input, prepared.as_ref()).await {
                Ok(()) => return Ok(()),
                Err(StepError::Conflict) => continue,
                // Made with no transaction open, then the step runs again.
                Err(StepError::NeedsSecret(kind)) => {
                    prepared = Some(FreshSecret::make(kind).await?);
                }
                Err(StepError::Database(e)) => return Err(db_failure(&e)),
                Err(StepError::Failed(f)) => return Err(f),
            }
        }
        Err(Failure::transient(format!(
            "saga {} kept changing during {CONFLICT_RETRIES} attempts",
            key.id
        )))
    }

    /// One attempt at the step, in one transaction: lock the row, run the transition, write
    /// its effects. Argon2 never runs in here: a transition that hands out a new secret gets it
    /// `prepared` before the transaction, or the attempt ends with [`StepError::NeedsSecret`]
    /// before it has written anything.
    async fn step(
        &self,
        message: &Incoming,
        key: &SagaKey,
        input: &Delivery<S::Input>,
        prepared: Option<&FreshSecret>,
    ) -> Result<(), StepError> {
        let mut tx = self.pool.begin().await?;
        match self.attempt(&mut tx, message, key, input, prepared).await {
            Ok(Attempted::Duplicate) => {
                tracing::debug!(message_id = %message.metadata.message_id, "duplicate message skipped");
                crate::broker::handled_as_duplicate();
                tx.rollback().await?;
            }
            // Nothing to do; the inbox row is kept so the message is not handled again.
            Ok(Attempted::Nothing) => tx.commit().await?,
            Ok(Attempted::Stepped(stepped)) => {
                tx.commit().await?;
                self.committed(&stepped);
            }
            // A broken transaction is rolled back when dropped.
            Err(e @ StepError::Database(_)) => return Err(e),
            Err(e) => {
                // Released at once: a secret is then made with no transaction open.
                tx.rollback().await?;
                return Err(e);
            }
        }
        Ok(())
    }

    /// The step of one message within `tx`, not committed: the inbox row and the lock, the
    /// transition, and what it writes.
    async fn attempt(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        message: &Incoming,
        key: &SagaKey,
        input: &Delivery<S::Input>,
        prepared: Option<&FreshSecret>,
    ) -> Result<Attempted, StepError> {
        let Some(row) = self.lock(tx, message, key).await? else {
            return Ok(Attempted::Duplicate);
        };
        let secret = match input {
            Delivery::Input(input) => {
                let wanted = self.saga.fresh_secret(row.state.as_ref(), input);
                secret_for(wanted, prepared).map_err(StepError::NeedsSecret)?
            }
            Delivery::Cancel(_) => None,
        };
        let ctx = StepContext {
            now: Utc::now(),
            saga_id: key.id,
            message: &message.metadata,
            seed: rand::random(),
            prepared: secret,
        };
        let Some(step) = self.decide(key, &row, input, &ctx)? else {
            return Ok(Attempted::Nothing);
        };
        let written = self.write(tx, message, key, &row, &step).await?;
        Ok(Attempted::Stepped(Stepped {
            saga_id: key.id,
            from: row.state_name,
            was_terminal: row.state.as_ref().is_some_and(|s| self.saga.is_terminal(s)),
            created_at: row.created_at,
            written,
        }))
    }

    /// After the commit of a step: the saga's duration when it has just ended, and the log.
    fn committed(&self, stepped: &Stepped) {
        let written = &stepped.written;
        if written.terminal && !stepped.was_terminal {
            let lasted = (Utc::now() - stepped.created_at)
                .to_std()
                .unwrap_or_default();
            crate::metrics::metrics().saga_ended(self.saga.saga_type(), lasted);
        }
        tracing::Span::current().record("state", written.to_state.as_str());
        tracing::debug!(saga_id = %stepped.saga_id, saga_type = self.saga.saga_type(), from = ?stepped.from, to = %written.to_state, sent = written.sent, "saga step committed");
    }

    /// What a message asks of the saga, and of which instance: its input, or an operator's
    /// cancel.
    fn delivery(&self, message: &Incoming) -> Result<(SagaKey, Delivery<S::Input>), Failure> {
        if CancelSaga::TYPE.matches(&message.metadata.message_type) {
            let (key, request) = self.read_cancel(message)?;
            Ok((key, Delivery::Cancel(request)))
        } else {
            let (key, input) = self.saga.read(message)?;
            Ok((key, Delivery::Input(input)))
        }
    }

    /// The secret a message will most likely need, made before its step's transaction opens.
    async fn likely(&self, input: &Delivery<S::Input>) -> Result<Option<FreshSecret>, Failure> {
        match input {
            Delivery::Input(input) => match self.saga.likely_secret(input) {
                Some(kind) => FreshSecret::make(kind).await.map(Some),
                None => Ok(None),
            },
            Delivery::Cancel(_) => Ok(None),
        }
    }

    /// Handles `messages` in one transaction (see the module's notes): one outcome per message.
    async fn batch(&self, messages: &[Incoming]) -> Result<Vec<BatchOutcome>, Failure> {
        let mut outcomes: Vec<BatchOutcome> =
            messages.iter().map(|_| BatchOutcome::Alone).collect();
        let mut work = Vec::new();
        for (i, message) in messages.iter().enumerate() {
            match self.delivery(message) {
                Ok((key, input)) => work.push((i, key, input)),
                Err(failure) => outcomes[i] = BatchOutcome::Failed(failure),
            }
        }
        // One lock order for every batch; stable, so a saga's messages keep their order.
        work.sort_by_key(|(_, key, _)| key.id);
        let secrets = join_all(work.iter().map(|(_, _, input)| self.likely(input))).await;
        let mut tx = self.pool.begin().await.map_err(|e| db_failure(&e))?;
        let mut alone = HashSet::new();
        let mut stepped = Vec::new();
        for ((i, key, input), secret) in work.iter().zip(secrets) {
            let message = &messages[*i];
            if alone.contains(&key.id) {
                continue;
            }
            let secret = match secret {
                Ok(secret) => secret,
                Err(failure) => {
                    outcomes[*i] = BatchOutcome::Failed(failure);
                    continue;
                }
            };
            let span = step_span(self.saga.saga_type(), key, message);
            let attempt = self
                .attempt(&mut tx, message, key, input, secret.as_ref())
                .instrument(span.clone());
            outcomes[*i] = match attempt.await {
                Ok(attempted) => {
                    let duplicate = matches!(attempted, Attempted::Duplicate);
                    if let Attempted::Stepped(s) = attempted {
                        stepped.push((span, s));
                    }
                    BatchOutcome::Done { duplicate }
                }
                Err(StepError::Database(e)) => return Err(db_failure(&e)),
                Err(StepError::Conflict | StepError::NeedsSecret(_)) => {
                    self.forget(&mut tx, message).await?;
                    alone.insert(key.id);
                    BatchOutcome::Alone
                }
                Err(StepError::Failed(failure)) => {
                    self.forget(&mut tx, message).await?;
                    BatchOutcome::Failed(failure)
                }
            };
        }
        tx.commit().await.map_err(|e| db_failure(&e))?;
        for (span, s) in &stepped {
            span.in_scope(|| self.committed(s));
        }
        Ok(outcomes)
    }

    /// Takes a message's inbox row out of the batch's transaction again: its attempt wrote
    /// nothing else, and it is handled later (alone, or as a retry).
    async fn forget(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        message: &Incoming,
    ) -> Result<(), Failure> {
        sqlx::query("DELETE FROM inbox WHERE consumer = $1 AND message_id = $2")
            .bind(&self.inbox_key)
            .bind(message.metadata.message_id)
            .execute(&mut **tx)
            .await
            .map(|_| ())
            .map_err(|e| db_failure(&e))
    }

    /// Locks the saga row (if there is one yet) and records the message in the inbox, in one
    /// round trip. `None` when the message is in the inbox already (a duplicate).
    async fn lock(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        message: &Incoming,
        key: &SagaKey,
    ) -> Result<Option<Locked<S::State>>, StepError> {
        // Every step takes the two in this order, so two copies of one message cannot deadlock:
        // the second waits for the saga, then finds the message already recorded.
        type Read = (
            bool,
            Option<Json<serde_json::Value>>,
            Option<i64>,
            Option<String>,
            Option<DateTime<Utc>>,
        );
        let (fresh, state, version, name, created_at): Read = sqlx::query_as(
            "WITH fresh AS (
                 INSERT INTO inbox (consumer, message_id) VALUES ($1, $2)
                 ON CONFLICT DO NOTHING RETURNING 1)
             SELECT EXISTS (SELECT 1 FROM fresh), s.state, s.version, s.state_name, s.created_at
             FROM (VALUES (1)) AS one
             LEFT JOIN LATERAL (
                 SELECT state, version, state_name, created_at FROM sagas WHERE id = $3 FOR UPDATE
             ) s ON true",
        )
        .bind(&self.inbox_key)
        .bind(message.metadata.message_id)
        .bind(key.id)
        .fetch_one(&mut **tx)
        .await?;
        if !fresh {
            return Ok(None);
        }
        let Some((Json(value), version, name, created_at)) = state
            .zip(version)
            .zip(name)
            .zip(created_at)
            .map(|(((s, v), n), c)| (s, v, n, c))
        else {
            return Ok(Some(Locked {
                state: None,
                version: 0,
                state_name: None,
                created_at: Utc::now(),
            }));
        };
        let state = serde_json::from_value::<S::State>(value).map_err(|e| {
            Failure::permanent(format!(
                "stored state of saga {} cannot be read: {e}",
                key.id
            ))
        })?;
        Ok(Some(Locked {
            state: Some(state),
            version,
            state_name: Some(name),
            created_at,
        }))
    }

    /// What the step does: the saga's transition, or an operator's cancel. `None` when there is
    /// nothing to do (a cancel of a saga that has ended meanwhile).
    fn decide(
        &self,
        key: &SagaKey,
        row: &Locked<S::State>,
        input: &Delivery<S::Input>,
        ctx: &StepContext<'_>,
    ) -> Result<Option<Step<S::State>>, Failure> {
        match (input, row.state.as_ref()) {
            (Delivery::Input(input), state) => self.saga.transition(state, input, ctx).map(Some),
            (Delivery::Cancel(_), None) => {
                Err(Failure::permanent(format!("no saga {} to cancel", key.id)))
            }
            (Delivery::Cancel(_), Some(state)) if self.saga.is_terminal(state) => {
                // It ended while the operator's message was on its way: nothing to undo.
                tracing::warn!(saga_id = %key.id, state = row.state_name.as_deref().unwrap_or_default(), "cancel of an ended saga ignored");
                Ok(None)
            }
            (Delivery::Cancel(request), Some(state)) => {
                self.cancelled(state, request, ctx).map(Some)
            }
        }
    }

    /// Writes the step: the saga row, its history row, the outbox rows and the relays' wake-up
    /// in one statement (one round trip), then the timers. The history row is written only if
    /// the saga row was: none means someone else got there first ([`StepError::Conflict`]).
    async fn write(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        message: &Incoming,
        key: &SagaKey,
        row: &Locked<S::State>,
        step: &Step<S::State>,
    ) -> Result<Written, StepError> {
        let to_state = self.saga.state_name(&step.state);
        let terminal = self.saga.is_terminal(&step.state);
        let state_json = serde_json::to_value(&step.state)
            .map_err(|e| Failure::permanent(format!("new state cannot be stored: {e}")))?;
        let envelopes: Vec<Envelope> = step
            .commands
            .iter()
            .enumerate()
            .map(|(i, c)| self.envelope(&message.metadata, key.id, &format!("out/{i}"), c, None))
            .collect();
        let outgoing: Vec<Uuid> = envelopes.iter().map(|e| e.metadata.message_id).collect();
        // $1-$9 the step, $10 the relays' channel, $11-$15 the outbox columns, then the saga
        // row's own: a new saga's type and business key, or the version it must still have.
        macro_rules! step_statement {
            ($saga:literal) => {
                concat!(
                    "WITH saga AS (",
                    $saga,
                    " RETURNING id),
                     history AS (
                         INSERT INTO saga_history (saga_id, version, message_id, message_type, from_state, to_state, outgoing)
                         SELECT id, $2, $3, $4, $5, $6, $7 FROM saga RETURNING 1),
                     written AS (
                         INSERT INTO outbox (id, exchange, routing_key, metadata, body)
                         SELECT u.* FROM UNNEST($11::uuid[], $12::text[], $13::text[], $14::jsonb[], $15::bytea[]) AS u, saga
                         ON CONFLICT (id) DO NOTHING)
                     SELECT (SELECT count(*) FROM history), pg_notify($10, '')::text"
                )
            };
        }
        let version = row.version;
        let statement = if version == 0 {
            step_statement!(
                "INSERT INTO sagas (id, saga_type, business_key, state_name, state, terminal, version)
                 VALUES ($1, $16, $17, $6, $8, $9, 1) ON CONFLICT (id) DO NOTHING"
            )
        } else {
            step_statement!(
                "UPDATE sagas SET state_name = $6, state = $8, terminal = $9, version = version + 1, updated_at = now()
                 WHERE id = $1 AND version = $16"
            )
        };
        let rows = outbox::Rows::of(&envelopes);
        let query = sqlx::query_as::<_, (i64, String)>(statement)
            .bind(key.id)
            .bind(version + 1)
            .bind(message.metadata.message_id)
            .bind(&message.metadata.message_type)
            .bind(row.state_name.as_deref())
            .bind(&to_state)
            .bind(&outgoing)
            .bind(Json(&state_json))
            .bind(terminal)
            .bind(crate::store::OUTBOX_CHANNEL)
            .bind(&rows.ids)
            .bind(&rows.exchanges)
            .bind(&rows.keys)
            .bind(&rows.metadata)
            .bind(&rows.bodies);
        let query = if version == 0 {
            query
                .bind(self.saga.saga_type())
                .bind(key.business_key.as_deref())
        } else {
            query.bind(version)
        };
        let (written, _) = query.fetch_one(&mut **tx).await?;
        if written != 1 {
            return Err(StepError::Conflict);
        }
        self.write_timers(tx, &message.metadata, key.id, step)
            .await?;
        Ok(Written {
            to_state,
            terminal,
            sent: outgoing.len(),
        })
    }

    /// The saga's cancel step, which must end it.
    fn cancelled(
        &self,
        state: &S::State,
        request: &CancelSaga,
        ctx: &StepContext<'_>,
    ) -> Result<Step<S::State>, Failure> {
        let step = self.saga.cancel(state, request, ctx)?;
        if !self.saga.is_terminal(&step.state) {
            return Err(Failure::permanent(format!(
                "the {} saga's cancel left it in {}, not ended",
                self.saga.saga_type(),
                self.saga.state_name(&step.state)
            )));
        }
        Ok(step)
    }

    /// An operator's cancel: named by its `correlation_id`, and only from the hub's requeue
    /// exchange (agencies may publish only to the bus).
    fn read_cancel(&self, message: &Incoming) -> Result<(SagaKey, CancelSaga), Failure> {
        let request: CancelSaga = decode(&message.metadata.message_type, &message.body)?;
        let key = SagaKey::from_correlation_id(&message.metadata)?;
        if request.saga_id != key.id {
            return Err(Failure::invalid_input(format!(
                "the cancel names saga {} but is correlated to {}",
                request.saga_id, key.id
            )));
        }
        if message.exchange != self.topology.requeue_exchange() {
            return Err(Failure::invalid_input(format!(
                "an operator's cancel is taken only from {}, not {:?}",
                self.topology.requeue_exchange(),
                message.exchange
            )));
        }
        Ok((key, request))
    }

    async fn write_timers(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        cause: &Metadata,
        saga_id: Uuid,
        step: &Step<S::State>,
    ) -> Result<(), sqlx::Error> {
        if !step.cancel_timers.is_empty() {
            sqlx::query("DELETE FROM timers WHERE saga_id = $1 AND name = ANY($2)")
                .bind(saga_id)
                .bind(&step.cancel_timers)
                .execute(&mut **tx)
                .await?;
        }
        for timer in &step.timers {
            let due = Utc::now() + timer.after;
            let envelope = self.envelope(
                cause,
                saga_id,
                &format!("timer/{}", timer.name),
                &timer.message,
                Some(&self.queue),
            );
            sqlx::query(
                "INSERT INTO timers (id, saga_id, name, due_at, exchange, routing_key, metadata, body)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (saga_id, name) DO UPDATE SET id = excluded.id, due_at = excluded.due_at,
                     exchange = excluded.exchange, routing_key = excluded.routing_key,
                     metadata = excluded.metadata, body = excluded.body, created_at = now()",
            )
            .bind(envelope.metadata.message_id)
            .bind(saga_id)
            .bind(&timer.name)
            .bind(due)
            .bind(&envelope.exchange)
            .bind(&envelope.routing_key)
            .bind(Json(&envelope.metadata))
            .bind(&envelope.body)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    /// The envelope of an outgoing message. Its id is derived from the cause's id, so the same
    /// input always yields the same ids and a receiver deduplicates any re-send. Answers to the
    /// saga's commands come back to its own queue (`reply_to`).
    fn envelope(
        &self,
        cause: &Metadata,
        saga_id: Uuid,
        slot: &str,
        c: &Command,
        to_queue: Option<&str>,
    ) -> Envelope {
        let slot = format!("{}/{slot}", self.saga.saga_type());
        let mut envelope = outgoing(&self.topology, &self.app_id, cause, &slot, c);
        envelope.metadata.correlation_id = Some(saga_id.to_string());
        if c.reply_to.is_none() && c.to.is_none() && !c.detached {
            envelope.metadata.reply_to = Some(self.queue.clone());
        }
        if let Some(queue) = to_queue {
            // A timer goes straight back to this saga's queue.
            envelope.exchange = self.topology.requeue_exchange();
            envelope.routing_key = queue.to_owned();
        }
        envelope
    }
}

/// The span of one message's saga step, alone or in a batch: a child of the message's handling
/// (its `traceparent`, set by the consumer to the handling's own span, which is not entered
/// while a batch runs), so its log lines carry the message's trace id. The state it reached is
/// recorded when the step commits ([`SagaEngine::committed`]).
fn step_span(saga_type: &str, key: &SagaKey, message: &Incoming) -> tracing::Span {
    let span = tracing::info_span!(
        "saga_step",
        saga_type,
        saga_id = %key.id,
        queue = %message.queue,
        message_type = %message.metadata.message_type,
        message_id = %message.metadata.message_id,
        state = tracing::field::Empty,
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
    );
    let parent = message
        .metadata
        .traceparent
        .as_deref()
        .and_then(TraceContext::parse);
    crate::trace::open(&span, parent);
    span
}

impl<S: Saga> SagaControl for SagaEngine<S> {
    fn saga_type(&self) -> &str {
        self.saga.saga_type()
    }

    fn queue(&self) -> &str {
        &self.queue
    }

    fn preview_cancel(
        &self,
        saga_id: Uuid,
        state: &serde_json::Value,
        request: &CancelSaga,
    ) -> Result<CancelPreview, Failure> {
        let state = serde_json::from_value::<S::State>(state.clone()).map_err(|e| {
            Failure::permanent(format!(
                "stored state of saga {saga_id} cannot be read: {e}"
            ))
        })?;
        if self.saga.is_terminal(&state) {
            return Err(Failure::permanent(format!(
                "saga {saga_id} has ended ({}): nothing to cancel",
                self.saga.state_name(&state)
            )));
        }
        let metadata = Metadata::new(CancelSaga::TYPE.to_string(), self.app_id.clone())
            .with_correlation_id(saga_id.to_string());
        let ctx = StepContext {
            now: Utc::now(),
            saga_id,
            message: &metadata,
            seed: rand::random(),
            prepared: None,
        };
        let step = self.cancelled(&state, request, &ctx)?;
        Ok(CancelPreview {
            to_state: self.saga.state_name(&step.state),
            sends: step
                .commands
                .iter()
                .map(|c| c.message_type.to_string())
                .collect(),
        })
    }
}

impl<S: Saga> Handler for SagaEngine<S> {
    fn name(&self) -> &str {
        &self.inbox_key
    }

    fn saga(&self) -> Option<&dyn SagaControl> {
        Some(self)
    }

    fn batches(&self) -> bool {
        true
    }

    fn handle_batch<'a>(
        &'a self,
        messages: &'a [Incoming],
    ) -> BoxFuture<'a, Result<Vec<BatchOutcome>, Failure>> {
        Box::pin(self.batch(messages))
    }

    fn handle<'a>(&'a self, message: &'a Incoming) -> BoxFuture<'a, Result<(), Failure>> {
        Box::pin(async move {
            let (key, input) = self.delivery(message)?;
            let span = step_span(self.saga.saga_type(), &key, message);
            self.step_alone(message, &key, &input)
                .instrument(span)
                .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_gets_the_prepared_secret_only_when_its_transition_wants_that_kind() {
        let code = FreshSecret::from_parts(SecretKind::Digits(6), "123456", "hash-of-code");
        let password = FreshSecret::from_parts(SecretKind::Password, "Xy3kLmNpQr", "hash");
        // No secret wanted: none given, whatever was prepared.
        assert_eq!(secret_for(None, None), Ok(None));
        assert_eq!(secret_for(None, Some(&code)), Ok(None));
        // Wanted and prepared: given.
        assert_eq!(
            secret_for(Some(SecretKind::Digits(6)), Some(&code)),
            Ok(Some(&code))
        );
        // Wanted and not prepared, or prepared for another state (another kind): the attempt
        // stops before it writes, and the secret is made outside the transaction.
        assert_eq!(
            secret_for(Some(SecretKind::Password), None),
            Err(SecretKind::Password)
        );
        assert_eq!(
            secret_for(Some(SecretKind::Password), Some(&code)),
            Err(SecretKind::Password)
        );
        assert_eq!(
            secret_for(Some(SecretKind::Digits(6)), Some(&password)),
            Err(SecretKind::Digits(6))
        );
    }
}
