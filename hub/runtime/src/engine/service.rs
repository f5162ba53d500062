//! Services: consumers that are not sagas but keep the same guarantees. An adapter worker that
//! calls an external system, or the identifier registry that keeps uniqueness in its tables,
//! answers each command once:
//!
//! 1. skip the message if its id is in the inbox;
//! 2. `prepare`, outside any transaction: decode, call the external system (idempotent by the
//!    message id, which goes along as the idempotency key);
//! 3. in one transaction: the inbox row, `apply`'s database effects, the answers into the outbox.
//!
//! Answers go to the request's `reply_to` queue (the saga that asked), else to the bus; a
//! command marked `detached` goes to the bus and expects no answer.
//!
//! **Group commit** ([`ServiceRunner::with_group_commit`]): step 3 of the messages whose
//! `prepare` finished while another's transaction was committing is done together, in one
//! transaction, by whichever of their handlers gets the turn first (the others wait for their
//! outcome). Each message still has its own inbox row and its own savepoint, so one whose
//! `apply` fails is rolled back alone and retried or dead-lettered like any failure, while the
//! others commit; their answers go into the outbox in one statement. `prepare` stays outside,
//! concurrent as before, so a slow external call holds up no other message.

use std::sync::{Arc, Mutex, PoisonError};

use contracts::Failure;
use contracts::Topology;
use futures_util::future::BoxFuture;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use tokio::sync::oneshot;

use super::command::outgoing;
use super::{Command, db_failure};
use crate::broker::{Handler, Incoming};
use crate::store::outbox;

/// A command handler with a database side.
pub trait Service: Send + Sync + 'static {
    /// What `prepare` hands to `apply`.
    type Prepared: Send;

    /// Stable name; the inbox key.
    fn name(&self) -> &'static str;

    /// Outside the transaction: decode the message and call what must be called. A failure
    /// here is classified as usual (transient ones are retried later).
    fn prepare<'a>(
        &'a self,
        message: &'a Incoming,
    ) -> BoxFuture<'a, Result<Self::Prepared, Failure>>;

    /// Inside the transaction: database effects; returns the answers to send.
    fn apply<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        message: &'a Incoming,
        prepared: Self::Prepared,
    ) -> BoxFuture<'a, Result<Vec<Command>, Failure>>;
}

/// Runs a [`Service`] as a queue [`Handler`].
pub struct ServiceRunner<S: Service> {
    service: S,
    pool: PgPool,
    topology: Arc<Topology>,
    app_id: String,
    inbox_key: String,
    /// Most messages committed together; 1 commits each in a transaction of its own.
    group: usize,
    /// Prepared messages waiting for their commit, oldest first.
    waiting: Mutex<Vec<Pending<S::Prepared>>>,
    /// The turn to commit what waits.
    turn: tokio::sync::Mutex<()>,
}

impl<S: Service> std::fmt::Debug for ServiceRunner<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceRunner")
            .field("inbox_key", &self.inbox_key)
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

/// A prepared message waiting for a group commit.
struct Pending<P> {
    message: Incoming,
    prepared: P,
    /// Its outcome: `Ok(true)` committed, `Ok(false)` found in the inbox (a duplicate).
    done: oneshot::Sender<Result<bool, Failure>>,
}

/// How one message of a group went inside the transaction.
enum Applied {
    /// In the inbox already: nothing written.
    Duplicate,
    /// Applied; its answers.
    Answers(Vec<crate::broker::Envelope>),
    /// Its `apply` failed and was rolled back to its savepoint.
    Failed(Failure),
}

impl<S: Service> ServiceRunner<S> {
    /// A runner for `service`.
    pub fn new(service: S, pool: PgPool, topology: Arc<Topology>, app_id: &str) -> Self {
        let inbox_key = format!("service:{}", service.name());
        Self {
            service,
            pool,
            topology,
            app_id: app_id.to_owned(),
            inbox_key,
            group: 1,
            waiting: Mutex::new(Vec::new()),
            turn: tokio::sync::Mutex::new(()),
        }
    }

    /// Commits up to `group` prepared messages in one transaction (see the module); 1 (the
    /// default) commits each on its own.
    #[must_use]
    pub fn with_group_commit(mut self, group: usize) -> Self {
        self.group = group.max(1);
        self
    }

    async fn seen(&self, message: &Incoming) -> Result<bool, Failure> {
        sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM inbox WHERE consumer = $1 AND message_id = $2)",
        )
        .bind(&self.inbox_key)
        .bind(message.metadata.message_id)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| db_failure(&e))
    }

    async fn run(&self, message: &Incoming) -> Result<(), Failure> {
        if self.seen(message).await? {
            tracing::debug!(message_id = %message.metadata.message_id, "duplicate message skipped");
            crate::broker::handled_as_duplicate();
            return Ok(());
        }
        let prepared = self.service.prepare(message).await?;
        if self.group > 1 {
            let fresh = self.commit_in_group(message, prepared).await?;
            if !fresh {
                crate::broker::handled_as_duplicate();
            }
            return Ok(());
        }
        let mut tx = self.pool.begin().await.map_err(|e| db_failure(&e))?;
        let fresh = sqlx::query(
            "INSERT INTO inbox (consumer, message_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(&self.inbox_key)
        .bind(message.metadata.message_id)
        .execute(&mut *tx)
        .await
        .map_err(|e| db_failure(&e))?
        .rows_affected()
            == 1;
        if !fresh {
            // Another consumer finished the same message meanwhile: its answers stand.
            crate::broker::handled_as_duplicate();
            return Ok(());
        }
        let answers = self.service.apply(&mut tx, message, prepared).await?;
        let envelopes = self.answers(message, &answers);
        outbox::insert(&mut tx, &envelopes)
            .await
            .map_err(|e| db_failure(&e))?;
        tx.commit().await.map_err(|e| db_failure(&e))?;
        Ok(())
    }

    /// The envelopes of `message`'s answers.
    fn answers(&self, message: &Incoming, answers: &[Command]) -> Vec<crate::broker::Envelope> {
        answers
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut c = c.clone();
                if c.reply_to.is_none() && !c.detached {
                    c.reply_to.clone_from(&message.metadata.reply_to);
                }
                let slot = format!("{}/out/{i}", self.inbox_key);
                outgoing(&self.topology, &self.app_id, &message.metadata, &slot, &c)
            })
            .collect()
    }

    /// Queues the prepared `message` for a group commit, takes the turn to commit what waits
    /// (its own message among them, unless the one before took it), and returns its outcome:
    /// true when committed, false when it was a duplicate. Every message queued is followed by
    /// its handler taking the turn, so none is left waiting: each turn commits the oldest.
    async fn commit_in_group(
        &self,
        message: &Incoming,
        prepared: S::Prepared,
    ) -> Result<bool, Failure> {
        let (done, outcome) = oneshot::channel();
        self.waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Pending {
                message: message.clone(),
                prepared,
                done,
            });
        {
            let _turn = self.turn.lock().await;
            let group: Vec<Pending<S::Prepared>> = {
                let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
                let n = waiting.len().min(self.group);
                waiting.drain(..n).collect()
            };
            if !group.is_empty() {
                self.commit_group(group).await;
            }
        }
        outcome.await.unwrap_or_else(|_| {
            Err(Failure::transient(
                "the group commit holding this message was abandoned before it finished",
            ))
        })
    }

    /// Commits `group` in one transaction and tells each its outcome. A database error outside
    /// one message's savepoint fails them all, transiently: nothing of the group is committed.
    async fn commit_group(&self, group: Vec<Pending<S::Prepared>>) {
        let mut dones = Vec::with_capacity(group.len());
        let result = async {
            let mut tx = self.pool.begin().await?;
            let mut outcomes = Vec::with_capacity(group.len());
            let mut envelopes = Vec::new();
            for (i, pending) in group.into_iter().enumerate() {
                dones.push(pending.done);
                match self
                    .apply_in(&mut tx, i, &pending.message, pending.prepared)
                    .await?
                {
                    Applied::Answers(mut answers) => {
                        envelopes.append(&mut answers);
                        outcomes.push(Ok(true));
                    }
                    Applied::Duplicate => outcomes.push(Ok(false)),
                    Applied::Failed(failure) => outcomes.push(Err(failure)),
                }
            }
            outbox::insert(&mut tx, &envelopes).await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(outcomes)
        }
        .await;
        match result {
            Ok(outcomes) => {
                for (done, outcome) in dones.into_iter().zip(outcomes) {
                    let _ = done.send(outcome);
                }
            }
            Err(e) => {
                tracing::warn!(service = %self.inbox_key, messages = dones.len(), error = %e, "a group commit failed; its messages are retried");
                for done in dones {
                    let _ = done.send(Err(db_failure(&e)));
                }
            }
        }
    }

    /// One message of a group: its savepoint and inbox row (one round trip), then `apply`,
    /// rolled back to the savepoint if it fails.
    async fn apply_in(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        i: usize,
        message: &Incoming,
        prepared: S::Prepared,
    ) -> Result<Applied, sqlx::Error> {
        // The consumer key is the service's own name and the id a UUID; quotes are doubled all
        // the same. The previous message's savepoint is released first, so they do not nest.
        let release = if i == 0 {
            ""
        } else {
            "RELEASE SAVEPOINT item; "
        };
        let statement = format!(
            "{release}SAVEPOINT item; INSERT INTO inbox (consumer, message_id) VALUES ('{}', '{}') \
             ON CONFLICT DO NOTHING RETURNING 1",
            self.inbox_key.replace('\'', "''"),
            message.metadata.message_id
        );
        let inserted = sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .fetch_all(&mut **tx)
            .await?;
        if inserted.is_empty() {
            return Ok(Applied::Duplicate);
        }
        match self.service.apply(tx, message, prepared).await {
            Ok(answers) => Ok(Applied::Answers(self.answers(message, &answers))),
            Err(failure) => {
                sqlx::raw_sql("ROLLBACK TO SAVEPOINT item")
                    .execute(&mut **tx)
                    .await?;
                Ok(Applied::Failed(failure))
            }
        }
    }
}

impl<S: Service> Handler for ServiceRunner<S> {
    fn name(&self) -> &str {
        &self.inbox_key
    }

    fn handle<'a>(&'a self, message: &'a Incoming) -> BoxFuture<'a, Result<(), Failure>> {
        Box::pin(self.run(message))
    }
}
