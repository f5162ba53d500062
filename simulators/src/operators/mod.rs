//! The mobile operators' simulators (A1, MTS, life:)): subscriber checks, SMS sending with
//! asynchronous delivery reports, and the phones' inboxes. The hub confirms phone numbers and
//! sends temporary passwords by SMS; these let it (and the demo, reading the inbox as a person
//! reads the phone) do so against ported, unknown, blocked and never-receiving numbers, with
//! reports that arrive late, twice or not at all.

mod api;
mod delivery;

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use serde::Serialize;
use tokio_util::task::TaskTracker;

pub(crate) use api::router;

/// What one operator's simulator is given: the phones (a phone is one phone whichever
/// operator's simulator is asked about its inbox), the HTTP client for delivery reports, the
/// task tracker that [`crate::RunningSims::stopped`] waits on, and this operator's own secret
/// its delivery reports are signed with.
#[derive(Clone)]
pub(crate) struct Deps {
    pub(crate) phones: std::sync::Arc<Phones>,
    pub(crate) client: reqwest::Client,
    pub(crate) tasks: TaskTracker,
    /// The key of the reports' HMAC-SHA256 (the hub holds the same one for this operator).
    pub(crate) secret: Vec<u8>,
}

impl std::fmt::Debug for Deps {
    /// Leaves the secret out: whoever holds it can forge delivery reports.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deps")
            .field("secret", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// A message as the phone shows it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct InboxEntry {
    pub(crate) message_id: String,
    pub(crate) sender: String,
    pub(crate) text: String,
    pub(crate) received_at: String,
}

/// Every phone's inbox, by number (`+375...`).
#[derive(Debug, Default)]
pub(crate) struct Phones {
    inboxes: Mutex<HashMap<String, Vec<InboxEntry>>>,
}

impl Phones {
    /// Puts a message on a phone's screen.
    pub(crate) fn receive(&self, msisdn: &str, entry: InboxEntry) {
        self.inboxes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(msisdn.to_owned())
            .or_default()
            .push(entry);
    }

    /// What a phone received, oldest first.
    pub(crate) fn inbox(&self, msisdn: &str) -> Vec<InboxEntry> {
        self.inboxes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(msisdn)
            .cloned()
            .unwrap_or_default()
    }
}
