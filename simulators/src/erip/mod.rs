//! The ERIP payment system's simulator: invoices registered by account number, paid by a
//! simulated person at a bank or terminal, expired by a clock, cancelled and refunded, with a
//! signed notification to the provider on every status change.
//!
//! Administrative procedures are paid through ERIP, and the hub learns of a payment only from
//! a notification that may come late, twice, out of order, or before the hub has even recorded
//! the invoice. This simulator produces exactly those cases on demand (the common faults plus
//! `notification_delay_ms`), so the hub's payment handling is tested against them rather than
//! against a well-behaved stub.

mod api;
mod notify;

use tokio_util::task::TaskTracker;

pub(crate) use api::router;
pub(crate) use notify::sign;

/// What the ERIP simulator needs from the process that starts it.
#[derive(Clone)]
pub(crate) struct Deps {
    /// The HTTP client notifications are sent with (its timeout bounds each attempt).
    pub(crate) client: reqwest::Client,
    /// Where the notification tasks and the expiry clock run, so that
    /// [`crate::RunningSims::stopped`] waits for them.
    pub(crate) tasks: TaskTracker,
    /// The key notifications are signed with (HMAC-SHA256 over the body).
    pub(crate) secret: Vec<u8>,
}

impl std::fmt::Debug for Deps {
    /// Leaves the secret out: whoever can read it can forge payment notifications.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deps")
            .field("client", &self.client)
            .field("tasks", &self.tasks)
            .field("secret", &"<redacted>")
            .finish()
    }
}
