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

use std::sync::Arc;

use contracts::Failure;
use contracts::Topology;
use futures_util::future::BoxFuture;
use sqlx::{PgConnection, PgPool};

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
#[derive(Debug)]
pub struct ServiceRunner<S> {
    service: S,
    pool: PgPool,
    topology: Arc<Topology>,
    app_id: String,
    inbox_key: String,
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
        }
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
        let envelopes: Vec<_> = answers
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
            .collect();
        outbox::insert(&mut tx, &envelopes)
            .await
            .map_err(|e| db_failure(&e))?;
        tx.commit().await.map_err(|e| db_failure(&e))?;
        Ok(())
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
