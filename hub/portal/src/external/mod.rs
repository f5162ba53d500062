//! The external systems, one folder each, the way `simulators/src/` has them: a system's
//! worker (a service that takes a contract command off its queue, calls the system through its
//! adapter in the `adapters` crate and answers the saga that asked; the call carries the
//! command's message id as its idempotency key, so a redelivered command does not act twice)
//! sits beside its callback (what the system sends back over HTTP, checked and put on the bus).

pub mod backoffice;
pub mod email;
pub mod erip;
pub mod mvd;
pub mod sms;

use std::sync::Arc;

use sqlx::PgPool;

/// What the callbacks need to know besides the database.
#[derive(Clone)]
pub struct Callbacks {
    /// ERIP's shared secret for notification signatures.
    pub erip_secret: Vec<u8>,
    /// Each operator's shared secret for delivery-report signatures.
    pub sms_secrets: std::collections::HashMap<contracts::person::Operator, Vec<u8>>,
    /// The per-phone limits, for their key: a report's `to` is compared with the recipient as
    /// the SMS worker stored it, keyed the same way.
    pub phone_limits: sms::worker::PhoneLimits,
    /// The full name of the procedure saga's queue (ERIP's events go there).
    pub procedure_queue: String,
    /// The bus exchange (HTTP back-offices' answers go there, as a queue authority's would).
    pub bus_exchange: String,
    /// The hub's own broker user: the bridge's messages carry it as `user_id`.
    pub bridge_user: String,
    /// Each HTTP authority's id and the secret its back-office signs with.
    pub authority_secrets: std::collections::HashMap<String, Vec<u8>>,
    /// The callback base URL the back-offices were given: their signatures cover the path
    /// under it (`HUB_CALLBACK_URL`), whatever a proxy in front of the hub makes of it.
    pub callback_url: url::Url,
    /// How far a back-office callback's timestamp may be from the hub's clock, either way.
    pub backoffice_window: std::time::Duration,
}

impl std::fmt::Debug for Callbacks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callbacks")
            .field("procedure_queue", &self.procedure_queue)
            .field("bus_exchange", &self.bus_exchange)
            .field("bridge_user", &self.bridge_user)
            .field(
                "authorities",
                &self.authority_secrets.keys().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// What a callback handler is given: the database its message is written to (through the
/// outbox), the hub's app id for the message's metadata, and [`Callbacks`]. Nothing of the
/// operators' endpoints.
#[derive(Debug, Clone)]
pub(crate) struct CallbackState {
    /// The hub's database.
    pub(crate) pool: PgPool,
    /// The app id the callbacks' messages carry.
    pub(crate) app_id: String,
    /// Secrets, queues and users the callbacks need.
    pub(crate) callbacks: Arc<Callbacks>,
}

/// The callback URL the request `request_id` (a command's message id, its `Idempotency-Key`)
/// goes out with: the one it first went out with, from whichever hub process, else `ours`,
/// recorded now as the first.
///
/// Each hub process has a callback URL of its own (`HUB_CALLBACK_URL`: its own listener, a
/// replica's own address), and ERIP's invoice and the operators' SMS carry it in their body,
/// which the system compares under one key. A command redelivered to another process (the first
/// was killed after its call and before its commit, or its call timed out and the retry went to
/// the other) must send the very request the first one sent, else it is refused as a conflict
/// (`409 idempotency_conflict`) and the command is lost. Called before the call, outside any
/// transaction; [`release_callback`] forgets it in the transaction that records the answer.
///
/// Errors: the database, as [`db_failure`](hub_runtime::engine::db_failure) classifies it.
pub(crate) async fn first_callback(
    pool: &PgPool,
    request_id: uuid::Uuid,
    ours: Option<&url::Url>,
) -> Result<Option<url::Url>, contracts::Failure> {
    // `DO UPDATE` (a no-op) rather than `DO NOTHING`, so that the row is returned either way
    // and a concurrent first attempt is waited for rather than missed.
    let stored: Option<String> = sqlx::query_scalar(
        "INSERT INTO request_callbacks (request_id, callback_url) VALUES ($1, $2)
         ON CONFLICT (request_id) DO UPDATE SET callback_url = request_callbacks.callback_url
         RETURNING callback_url",
    )
    .bind(request_id)
    .bind(ours.map(url::Url::as_str))
    .fetch_one(pool)
    .await
    .map_err(|e| hub_runtime::engine::db_failure(&e))?;
    if stored.as_deref() != ours.map(url::Url::as_str) {
        tracing::info!(
            %request_id,
            "the request goes again with the callback URL another hub process first sent it with"
        );
    }
    stored
        .map(|raw| {
            url::Url::parse(&raw).map_err(|e| {
                contracts::Failure::permanent(format!(
                    "the callback URL stored for request {request_id} does not parse: {e}"
                ))
            })
        })
        .transpose()
}

/// Forgets the callback URL of the request `request_id` once its answer is recorded: in the
/// transaction that records it, after which the command is in the inbox and never sent again.
///
/// Errors: the database, as [`db_failure`](hub_runtime::engine::db_failure) classifies it.
pub(crate) async fn release_callback(
    conn: &mut sqlx::PgConnection,
    request_id: uuid::Uuid,
) -> Result<(), contracts::Failure> {
    sqlx::query("DELETE FROM request_callbacks WHERE request_id = $1")
        .bind(request_id)
        .execute(conn)
        .await
        .map_err(|e| hub_runtime::engine::db_failure(&e))?;
    Ok(())
}
