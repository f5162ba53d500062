//! The outbox relay: claims unsent rows with `FOR UPDATE SKIP LOCKED` (so several hub
//! processes share the work without publishing a row twice at once), publishes the batch with
//! confirms in flight together, and marks the whole batch, sent and failed rows alike, in one
//! statement.
//!
//! A crash after the publish and before the mark publishes the row again on restart: delivery
//! is at-least-once, and receivers deduplicate by `message_id` in their inbox.
//!
//! A row of a type that carries a secret ([`contracts::is_sensitive`]: a `cabinet.reply.v1`
//! with a login's session token) keeps it only until it is sent: the statement that marks the
//! row sent replaces its secret fields with [`contracts::REDACTED_VALUE`] ([`redacted_body`]),
//! so no sent row holds a secret in the clear.

use std::sync::Arc;
use std::time::Duration;

use contracts::Metadata;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use sqlx::types::Json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::OUTBOX_CHANNEL;
use crate::broker::{Envelope, Publisher};
use crate::metrics::metrics;

/// How the relay runs.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// Rows per batch.
    pub batch: i64,
    /// Look for rows this often even without a notification.
    pub poll_interval: Duration,
}

type Row = (Uuid, String, String, Json<Metadata>, Vec<u8>);

/// Publishes one batch; returns how many rows it claimed.
pub async fn relay_once(
    pool: &PgPool,
    publisher: &Publisher,
    batch: i64,
) -> Result<usize, sqlx::Error> {
    let started = std::time::Instant::now();
    let mut tx = pool.begin().await?;
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, exchange, routing_key, metadata, body FROM outbox
         WHERE sent_at IS NULL AND available_at <= now()
         ORDER BY created_at LIMIT $1
         FOR UPDATE SKIP LOCKED",
    )
    .bind(batch)
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        tx.commit().await?;
        return Ok(0);
    }
    let envelopes: Vec<Envelope> = rows
        .into_iter()
        .map(
            |(_, exchange, routing_key, Json(metadata), body)| Envelope {
                exchange,
                routing_key,
                metadata,
                body,
            },
        )
        .collect();
    let results = publisher.publish_all(&envelopes).await;
    // One row per envelope for the marking statement: the secret-free body to keep of a sent
    // one that carried a secret, the error of a failed one.
    let mut ids = Vec::with_capacity(envelopes.len());
    let mut kept_bodies: Vec<Option<Vec<u8>>> = Vec::with_capacity(envelopes.len());
    let mut errors: Vec<Option<String>> = Vec::with_capacity(envelopes.len());
    for (envelope, result) in envelopes.iter().zip(results) {
        let (exchange, message_type) = (&envelope.exchange, &envelope.metadata.message_type);
        metrics().relayed(exchange, message_type, result.is_ok());
        ids.push(envelope.metadata.message_id);
        match result {
            // Sent: the secrets a reply carried (a session token) are not kept.
            Ok(()) => {
                kept_bodies.push(redacted_body(envelope));
                errors.push(None);
            }
            Err(e) => {
                tracing::warn!(message_id = %envelope.metadata.message_id, message_type = %envelope.metadata.message_type, error = %e, "outbox publish failed; will retry");
                kept_bodies.push(None);
                errors.push(Some(e.to_string()));
            }
        }
    }
    // The whole batch marked in one statement: a sent row gets its time (and loses its
    // secrets); a failed one backs off per row, 1 s, 2 s, 4 s ... up to 5 minutes.
    sqlx::query(
        "UPDATE outbox o SET
             attempts = o.attempts + 1,
             sent_at = CASE WHEN r.error IS NULL THEN now() ELSE o.sent_at END,
             body = coalesce(r.body, o.body),
             last_error = coalesce(r.error, o.last_error),
             available_at = CASE WHEN r.error IS NULL THEN o.available_at
                 ELSE now() + least(interval '1 second' * power(2, o.attempts), interval '5 minutes') END
         FROM UNNEST($1::uuid[], $2::bytea[], $3::text[]) AS r(id, body, error)
         WHERE o.id = r.id",
    )
    .bind(&ids)
    .bind(&kept_bodies)
    .bind(&errors)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    metrics().relay_batch(started.elapsed());
    Ok(envelopes.len())
}

/// The body to keep of a sent message that carries a secret: its secret fields replaced
/// ([`contracts::redact_secrets`]); `None` when there is nothing to replace (a type that
/// carries no secret, a reply without a token). A body of such a type that is not JSON is kept
/// as `{}`: it cannot be redacted field by field.
pub fn redacted_body(envelope: &Envelope) -> Option<Vec<u8>> {
    let message_type = &envelope.metadata.message_type;
    if !contracts::is_sensitive(message_type) {
        return None;
    }
    let Ok(mut body) = serde_json::from_slice::<serde_json::Value>(&envelope.body) else {
        return Some(b"{}".to_vec());
    };
    if !contracts::redact_secrets(message_type, &mut body) {
        return None;
    }
    serde_json::to_vec(&body).ok()
}

/// Relays until `stop`, then flushes what is left (as far as the broker lets it) and returns.
///
/// Every committed step notifies the relay; a busy hub commits far faster than one batch
/// publishes. The notifications are folded into one pending wake-up, so the relay claims once per
/// batch of work instead of once per notification (which had most claims find nothing).
pub async fn run_relay(
    pool: PgPool,
    publisher: Arc<Publisher>,
    settings: RelaySettings,
    stop: CancellationToken,
) {
    let wake = Arc::new(Notify::new());
    let listener = tokio::spawn(forward_notifications(
        pool.clone(),
        wake.clone(),
        settings.poll_interval,
        stop.clone(),
    ));
    loop {
        drain(&pool, &publisher, settings.batch).await;
        if stop.is_cancelled() {
            break;
        }
        tokio::select! {
            () = stop.cancelled() => {}
            () = tokio::time::sleep(settings.poll_interval) => {}
            () = wake.notified() => {}
        }
    }
    drain(&pool, &publisher, settings.batch).await;
    listener.abort();
    tracing::info!("outbox relay stopped");
}

/// Publishes batches until one comes back short or fails.
async fn drain(pool: &PgPool, publisher: &Publisher, batch: i64) {
    loop {
        match relay_once(pool, publisher, batch).await {
            Ok(n) if n as i64 >= batch => {}
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(error = %e, "outbox relay could not read the outbox; will retry");
                return;
            }
        }
    }
}

/// Turns outbox notifications into wake-ups of the relay (at most one pending: [`Notify`] keeps
/// a single permit). A broken listener is replaced after `retry`; meanwhile the relay polls.
async fn forward_notifications(
    pool: PgPool,
    wake: Arc<Notify>,
    retry: Duration,
    stop: CancellationToken,
) {
    while !stop.is_cancelled() {
        if let Some(mut listener) = listen(&pool).await {
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    n = listener.recv() => match n {
                        Ok(_) => wake.notify_one(),
                        Err(_) => break,
                    },
                }
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(retry) => {}
        }
    }
}

async fn listen(pool: &PgPool) -> Option<PgListener> {
    let mut listener = PgListener::connect_with(pool).await.ok()?;
    listener.listen(OUTBOX_CHANNEL).await.ok()?;
    Some(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(message_type: &str, body: serde_json::Value) -> Envelope {
        Envelope {
            exchange: String::new(),
            routing_key: "portal".into(),
            metadata: Metadata::new(message_type, "hub"),
            body: serde_json::to_vec(&body).expect("json"),
        }
    }

    #[test]
    fn a_sent_reply_keeps_no_session_token_and_other_rows_stay_as_they_are() {
        let token = "q3Jx0Wm6oVt1b1tVZ2p0f0sSb3QkqB9fQm3P4x7JdE8";
        let login = envelope(
            "cabinet.reply.v1",
            serde_json::json!({"outcome": "ok", "assurance_level": "high", "session_token": token}),
        );
        let kept = redacted_body(&login).expect("redacted");
        let text = String::from_utf8(kept).expect("utf-8");
        assert!(!text.contains(token), "{text}");
        assert!(text.contains("\"assurance_level\":\"high\""), "{text}");
        let changed = envelope(
            "cabinet.reply.v1",
            serde_json::json!({"outcome": "ok", "assurance_level": "substantial"}),
        );
        assert_eq!(redacted_body(&changed), None, "nothing to replace");
        let event = envelope(
            "procedure.accepted.v1",
            serde_json::json!({"application_id": "x", "number": "N-1"}),
        );
        assert_eq!(redacted_body(&event), None);
    }
}
