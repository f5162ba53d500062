//! Timers: saga timeouts due at a time, fired as messages.
//!
//! Firing moves a due row from `timers` to `outbox` in one statement under
//! `FOR UPDATE SKIP LOCKED`, so a timer fires once however many hub processes poll, and the
//! fired message has the timer's id as its `message_id`, so even a re-fire would deduplicate.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// Fires up to `batch` due timers; returns how many fired.
pub async fn fire_due(pool: &PgPool, batch: i64) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let fired: i64 = sqlx::query_scalar(
        "WITH due AS (
             DELETE FROM timers WHERE id IN (
                 SELECT id FROM timers WHERE due_at <= now()
                 ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED)
             RETURNING id, exchange, routing_key, metadata, body),
         moved AS (
             INSERT INTO outbox (id, exchange, routing_key, metadata, body)
             SELECT id, exchange, routing_key, metadata, body FROM due
             ON CONFLICT (id) DO NOTHING RETURNING 1)
         SELECT count(*) FROM moved",
    )
    .bind(batch)
    .fetch_one(&mut *tx)
    .await?;
    if fired > 0 {
        super::outbox::notify(&mut tx).await?;
    }
    tx.commit().await?;
    Ok(fired as u64)
}

/// Fires due timers until `stop`. Sleeps until the next timer is due, at most `poll_interval`
/// (another process may add an earlier one).
pub async fn run_timers(
    pool: PgPool,
    batch: i64,
    poll_interval: Duration,
    stop: CancellationToken,
) {
    while !stop.is_cancelled() {
        let wait = match fire_due(&pool, batch).await {
            Ok(n) if n as i64 >= batch => Duration::ZERO,
            Ok(_) => until_next_due(&pool)
                .await
                .unwrap_or(poll_interval)
                .min(poll_interval),
            Err(e) => {
                tracing::warn!(error = %e, "timer poller could not read timers; will retry");
                poll_interval
            }
        };
        tokio::select! {
            () = stop.cancelled() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
    tracing::info!("timer poller stopped");
}

/// How long until the next timer is due; `None` when there is none (`greatest(0, NULL)` is 0
/// in SQL, which once made an empty table a busy loop, so the clamp is done here).
pub async fn until_next_due(pool: &PgPool) -> Option<Duration> {
    let ms: Option<f64> = sqlx::query_scalar(
        "SELECT (extract(epoch FROM min(due_at) - now()) * 1000)::float8 FROM timers",
    )
    .fetch_one(pool)
    .await
    .ok()?;
    ms.map(|ms| Duration::from_millis(ms.max(0.0) as u64 + 1))
}
