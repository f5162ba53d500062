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

/// What the operators started in one process share: the phones (a phone is one phone whichever
/// operator's simulator is asked about its inbox), the HTTP client for delivery reports, and
/// the task tracker that [`crate::RunningSims::stopped`] waits on.
#[derive(Debug, Clone)]
pub(crate) struct Deps {
    pub(crate) phones: std::sync::Arc<Phones>,
    pub(crate) client: reqwest::Client,
    pub(crate) tasks: TaskTracker,
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
