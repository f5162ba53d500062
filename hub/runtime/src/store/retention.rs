//! Retention: the inbox and the outbox would grow for ever. Rows older than a horizon
//! (`HUB_RETENTION`) are removed in small batches, each its own short transaction, by one process
//! at a time (a transaction-scoped advisory lock: the others skip the round).
//!
//! What goes:
//! - **inbox** rows received before the horizon. The inbox is what drops a redelivered message
//!   (same consumer, same message id), so the horizon is the dedup guarantee: a copy of a message
//!   arriving within the horizon of the first is dropped; one arriving later would be handled
//!   again. Copies come from a lost ack (redelivered at once), the relay's publish whose mark was
//!   lost (published again within seconds) and the retry tiers (a failed handling writes no inbox
//!   row, so its retries are not copies). The horizon is refused when it is shorter than a day or
//!   than the whole retry schedule ([`minimum_horizon`]); the default is 7 days.
//! - **outbox** rows sent before the horizon. An unsent row is never removed, however old.
//!
//! `hub_retention_deleted_rows_total{table}` counts what went.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::metrics::metrics;

/// The advisory lock that makes one process at a time prune (any fixed key: "hubretn").
pub const LOCK_KEY: i64 = 0x0068_7562_7265_746e;

/// How retention runs.
#[derive(Debug, Clone, Copy)]
pub struct RetentionSettings {
    /// Rows older than this go.
    pub horizon: Duration,
    /// At most this many rows of a table per transaction.
    pub batch: i64,
    /// How often a round runs.
    pub every: Duration,
}

/// What one round removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Inbox rows.
    pub inbox: u64,
    /// Outbox rows.
    pub outbox: u64,
    /// False when another process held the lock and this one left the round to it.
    pub ran: bool,
}

/// The shortest horizon that keeps the dedup promise: a day, or the whole retry schedule of
/// `max_attempts` attempts over `tiers` (the last tier repeating) with a handler timeout each,
/// twice over, whichever is longer.
pub fn minimum_horizon(
    tiers: &[Duration],
    max_attempts: u32,
    handler_timeout: Duration,
) -> Duration {
    let retries: Duration = (1..max_attempts.max(1))
        .map(|attempt| {
            let i = (attempt as usize - 1).min(tiers.len().saturating_sub(1));
            tiers.get(i).copied().unwrap_or_default()
        })
        .sum();
    let schedule = retries + handler_timeout * max_attempts.max(1);
    (schedule * 2).max(Duration::from_secs(24 * 3600))
}

/// Removes what is older than `horizon`, `batch` rows of a table per transaction, until a batch
/// comes back short; nothing when another process holds the lock.
///
/// Errors: the database's.
pub async fn prune(pool: &PgPool, horizon: Duration, batch: i64) -> Result<Pruned, sqlx::Error> {
    let mut pruned = Pruned::default();
    let seconds = horizon.as_secs_f64();
    loop {
        let mut tx = pool.begin().await?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(LOCK_KEY)
            .fetch_one(&mut *tx)
            .await?;
        if !locked {
            return Ok(pruned);
        }
        pruned.ran = true;
        let inbox = sqlx::query(
            "DELETE FROM inbox WHERE (consumer, message_id) IN (
                 SELECT consumer, message_id FROM inbox
                 WHERE received_at < now() - make_interval(secs => $1) LIMIT $2)",
        )
        .bind(seconds)
        .bind(batch)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let outbox = sqlx::query(
            "DELETE FROM outbox WHERE id IN (
                 SELECT id FROM outbox
                 WHERE sent_at IS NOT NULL AND sent_at < now() - make_interval(secs => $1)
                 LIMIT $2)",
        )
        .bind(seconds)
        .bind(batch)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        metrics().retention_deleted("inbox", inbox);
        metrics().retention_deleted("outbox", outbox);
        pruned.inbox += inbox;
        pruned.outbox += outbox;
        if (inbox as i64) < batch && (outbox as i64) < batch {
            return Ok(pruned);
        }
    }
}

/// Prunes every `settings.every` until `stop`.
pub async fn run_retention(pool: PgPool, settings: RetentionSettings, stop: CancellationToken) {
    loop {
        match prune(&pool, settings.horizon, settings.batch.max(1)).await {
            Ok(p) if p.inbox + p.outbox > 0 => tracing::info!(
                inbox = p.inbox,
                outbox = p.outbox,
                "retention removed rows past the horizon"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention could not prune; will try again"),
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(settings.every) => {}
        }
    }
    tracing::info!("retention stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_minimum_is_a_day_or_twice_the_retry_schedule() {
        let s = Duration::from_secs;
        // 1s,5s,30s,2m,10m over 8 attempts: 1+5+30+120+600*3 = 1956 s of retries, plus 8 handler
        // timeouts of 60 s: 2436 s; twice is under a day.
        let tiers = [s(1), s(5), s(30), s(120), s(600)];
        assert_eq!(minimum_horizon(&tiers, 8, s(60)), s(24 * 3600));
        // A week-long last tier over 8 attempts needs longer than a day.
        let slow = [s(3600), s(7 * 24 * 3600)];
        let schedule = 3600 + 6 * 7 * 24 * 3600 + 8 * 60;
        assert_eq!(minimum_horizon(&slow, 8, s(60)), s(2 * schedule));
    }
}
