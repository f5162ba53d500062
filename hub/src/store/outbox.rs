//! Outbox rows: written in the transaction that decided them, published later by the relay.

use sqlx::{PgConnection, types::Json};
use uuid::Uuid;

use crate::broker::Envelope;

/// Adds envelopes to the outbox and wakes the relays (when the transaction commits), in one
/// statement: one round trip. The envelope's `message_id` is the row id, so writing the same
/// message twice is a no-op.
pub async fn insert(conn: &mut PgConnection, envelopes: &[Envelope]) -> Result<(), sqlx::Error> {
    if envelopes.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = envelopes.iter().map(|e| e.metadata.message_id).collect();
    let exchanges: Vec<&str> = envelopes.iter().map(|e| e.exchange.as_str()).collect();
    let keys: Vec<&str> = envelopes.iter().map(|e| e.routing_key.as_str()).collect();
    let metadata: Vec<Json<&contracts::Metadata>> =
        envelopes.iter().map(|e| Json(&e.metadata)).collect();
    let bodies: Vec<&[u8]> = envelopes.iter().map(|e| e.body.as_slice()).collect();
    sqlx::query(
        "WITH written AS (
             INSERT INTO outbox (id, exchange, routing_key, metadata, body)
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::bytea[])
             ON CONFLICT (id) DO NOTHING)
         SELECT pg_notify($6, '')",
    )
    .bind(&ids)
    .bind(&exchanges)
    .bind(&keys)
    .bind(&metadata)
    .bind(&bodies)
    .bind(super::OUTBOX_CHANNEL)
    .execute(&mut *conn)
    .await
    .map(|_| ())
}

/// Wakes the relays; delivered when the surrounding transaction commits.
pub async fn notify(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(super::OUTBOX_CHANNEL)
        .execute(conn)
        .await
        .map(|_| ())
}
