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
