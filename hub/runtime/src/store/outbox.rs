//! Outbox rows: written in the transaction that decided them, published later by the relay.

use sqlx::{PgConnection, types::Json};
use uuid::Uuid;

use crate::broker::Envelope;

/// Envelopes as the outbox's column arrays, for an `UNNEST` insert (the engine writes them in
/// its step's one statement).
#[derive(Debug)]
pub struct Rows<'a> {
    /// Row ids: the messages' ids.
    pub ids: Vec<Uuid>,
    /// Exchanges.
    pub exchanges: Vec<&'a str>,
    /// Routing keys.
    pub keys: Vec<&'a str>,
    /// Metadata, as JSON.
    pub metadata: Vec<Json<&'a contracts::Metadata>>,
    /// Bodies.
    pub bodies: Vec<&'a [u8]>,
}

impl<'a> Rows<'a> {
    /// The columns of `envelopes`.
    pub fn of(envelopes: &'a [Envelope]) -> Self {
        Self {
            ids: envelopes.iter().map(|e| e.metadata.message_id).collect(),
            exchanges: envelopes.iter().map(|e| e.exchange.as_str()).collect(),
            keys: envelopes.iter().map(|e| e.routing_key.as_str()).collect(),
            metadata: envelopes.iter().map(|e| Json(&e.metadata)).collect(),
            bodies: envelopes.iter().map(|e| e.body.as_slice()).collect(),
        }
    }
}

/// Adds envelopes to the outbox and wakes the relays (when the transaction commits), in one
/// statement: one round trip. The envelope's `message_id` is the row id, so writing the same
/// message twice is a no-op.
pub async fn insert(conn: &mut PgConnection, envelopes: &[Envelope]) -> Result<(), sqlx::Error> {
    if envelopes.is_empty() {
        return Ok(());
    }
    let rows = Rows::of(envelopes);
    sqlx::query(
        "WITH written AS (
             INSERT INTO outbox (id, exchange, routing_key, metadata, body)
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::bytea[])
             ON CONFLICT (id) DO NOTHING)
         SELECT pg_notify($6, '')",
    )
    .bind(&rows.ids)
    .bind(&rows.exchanges)
    .bind(&rows.keys)
    .bind(&rows.metadata)
    .bind(&rows.bodies)
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
