//! The engine's I/O shell around a [`Saga`]: one PostgreSQL transaction per message.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use contracts::Failure;
use contracts::ops::CancelSaga;
use contracts::{Message, Metadata, Topology, decode};
use futures_util::future::BoxFuture;
use sqlx::types::Json;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::service::db_failure;
use super::{CancelPreview, Command, Saga, SagaControl, SagaKey, StepContext};
use crate::broker::{Envelope, Handler, Incoming};
use crate::store::outbox;

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

enum StepError {
    /// Someone else created or changed the row first: run the step again.
    Conflict,
    Failed(Failure),
}

impl From<sqlx::Error> for StepError {
    fn from(e: sqlx::Error) -> Self {
        StepError::Failed(db_failure(&e))
    }
}

impl From<Failure> for StepError {
    fn from(f: Failure) -> Self {
        StepError::Failed(f)
    }
}

/// How many times a step is re-run when it loses a race to create or update the row.
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

    async fn step(
        &self,
        message: &Incoming,
        key: &SagaKey,
        input: &Delivery<S::Input>,
    ) -> Result<(), StepError> {
        let mut tx = self.pool.begin().await?;
        // One round trip: lock the saga row (if there is one yet), then record the message in
        // the inbox. Every step takes the two in this order, so two copies of one message cannot
        // deadlock: the second waits for the saga, then finds the message already recorded.
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
        .fetch_one(&mut *tx)
        .await?;
        if !fresh {
            tracing::debug!(message_id = %message.metadata.message_id, "duplicate message skipped");
            crate::broker::handled_as_duplicate();
            tx.rollback().await?;
            return Ok(());
        }
        let row = match (state, version, name, created_at) {
            (Some(state), Some(version), Some(name), Some(created_at)) => {
                Some((state, version, name, created_at))
            }
            _ => None,
        };
        let (state, version, from_state, started_at) = match row {
            Some((Json(value), version, name, created_at)) => {
                let state = serde_json::from_value::<S::State>(value).map_err(|e| {
                    Failure::permanent(format!(
                        "stored state of saga {} cannot be read: {e}",
                        key.id
                    ))
                })?;
                (Some(state), version, Some(name), created_at)
            }
            None => (None, 0, None, Utc::now()),
        };
        let was_terminal = state.as_ref().is_some_and(|s| self.saga.is_terminal(s));
        let ctx = StepContext {
            now: Utc::now(),
            saga_id: key.id,
            message: &message.metadata,
            seed: rand::random(),
        };
        let step = match (input, state.as_ref()) {
            (Delivery::Input(input), state) => self.saga.transition(state, input, &ctx)?,
            (Delivery::Cancel(_), None) => {
                return Err(StepError::Failed(Failure::permanent(format!(
                    "no saga {} to cancel",
                    key.id
                ))));
            }
            (Delivery::Cancel(_), Some(state)) if self.saga.is_terminal(state) => {
                // It ended while the operator's message was on its way: nothing to undo.
                tracing::warn!(saga_id = %key.id, state = from_state.as_deref().unwrap_or_default(), "cancel of an ended saga ignored");
                tx.commit().await?;
                return Ok(());
            }
            (Delivery::Cancel(request), Some(state)) => self.cancelled(state, request, &ctx)?,
        };
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
        // The saga row, its history row, the outbox rows and the relays' wake-up in one
        // statement (one round trip). The history row is written only if the saga row was: none
        // means someone else got there first, and the transaction is rolled back.
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
                         SELECT * FROM UNNEST($11::uuid[], $12::text[], $13::text[], $14::jsonb[], $15::bytea[])
                         ON CONFLICT (id) DO NOTHING)
                     SELECT (SELECT count(*) FROM history), pg_notify($10, '')::text"
                )
            };
        }
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
            .bind(from_state.as_deref())
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
        let (written, _) = query.fetch_one(&mut *tx).await?;
        if written != 1 {
            return Err(StepError::Conflict);
        }
        self.write_timers(&mut tx, &message.metadata, key.id, &step)
            .await?;
        tx.commit().await?;
        if terminal && !was_terminal {
            let lasted = (Utc::now() - started_at).to_std().unwrap_or_default();
            crate::metrics::metrics().saga_ended(self.saga.saga_type(), lasted);
        }
        tracing::debug!(saga_id = %key.id, saga_type = self.saga.saga_type(), from = ?from_state, to = %to_state, sent = outgoing.len(), "saga step committed");
        Ok(())
    }

    /// The saga's cancel step, which must end it.
    fn cancelled(
        &self,
        state: &S::State,
        request: &CancelSaga,
        ctx: &StepContext<'_>,
    ) -> Result<super::Step<S::State>, Failure> {
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
        step: &super::Step<S::State>,
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
        if c.reply_to.is_none() && !c.detached {
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

/// The envelope of a message `c` sent because of `cause`: its id is derived from the cause's
/// id and `slot`, so handling the same input twice yields the same ids. It goes to the bus by
/// type, or, when it answers a request (`c.reply_to`), straight to that queue through the
/// default exchange, keeping the request's correlation.
pub(crate) fn outgoing(
    topology: &Topology,
    app_id: &str,
    cause: &Metadata,
    slot: &str,
    c: &Command,
) -> Envelope {
    let mut metadata = Metadata::caused_by(cause, c.message_type.clone(), app_id.to_owned())
        .with_message_id(Uuid::new_v5(&cause.message_id, slot.as_bytes()));
    metadata.correlation_id = cause.correlation_id.clone();
    metadata.user_id.clone_from(&c.user_id);
    let (exchange, routing_key) = match &c.reply_to {
        Some(queue) => (String::new(), queue.clone()),
        None => (topology.bus_exchange(), c.message_type.clone()),
    };
    Envelope {
        exchange,
        routing_key,
        metadata,
        body: c.body.clone(),
    }
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
        };
        let step = self.cancelled(&state, request, &ctx)?;
        Ok(CancelPreview {
            to_state: self.saga.state_name(&step.state),
            sends: step
                .commands
                .iter()
                .map(|c| c.message_type.clone())
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

    fn handle<'a>(&'a self, message: &'a Incoming) -> BoxFuture<'a, Result<(), Failure>> {
        Box::pin(async move {
            let (key, input) = if CancelSaga::TYPE.matches(&message.metadata.message_type) {
                let (key, request) = self.read_cancel(message)?;
                (key, Delivery::Cancel(request))
            } else {
                let (key, input) = self.saga.read(message)?;
                (key, Delivery::Input(input))
            };
            for _ in 0..CONFLICT_RETRIES {
                match self.step(message, &key, &input).await {
                    Ok(()) => return Ok(()),
                    Err(StepError::Conflict) => continue,
                    Err(StepError::Failed(f)) => return Err(f),
                }
            }
            Err(Failure::transient(format!(
                "saga {} kept changing during {CONFLICT_RETRIES} attempts",
                key.id
            )))
        })
    }
}
