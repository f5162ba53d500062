//! The mobile operators' simulators (A1, MTS, life:)): subscriber checks, SMS sending with
//! asynchronous delivery reports, and the phones' inboxes. The hub confirms phone numbers and
//! sends temporary passwords by SMS; these let it (and the demo, reading the inbox as a person
//! reads the phone) do so against ported, unknown, blocked and never-receiving numbers, with
//! reports that arrive late, twice or not at all. Each operator also runs an SMS centre speaking
//! SMPP 3.4 ([`smsc`]) that delivers to the same phones.

mod api;
mod delivery;
pub(crate) mod smsc;

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};

use serde::Serialize;
use tokio_util::task::TaskTracker;

use crate::retention::{Bounded, Limit};

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
    /// This operator's SMS centre (SMPP), whose faults and duplicates the HTTP side serves.
    pub(crate) smsc: std::sync::Arc<smsc::Smsc>,
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

/// Every phone's inbox, by number (`+375...`): the messages of all phones together, the newest
/// up to the simulators' record limit. A phone shows the ones still kept, oldest first.
#[derive(Debug)]
pub(crate) struct Phones {
    inboxes: Mutex<Inboxes>,
}

/// The messages on every phone, by arrival, and each phone's, by number.
#[derive(Debug)]
struct Inboxes {
    messages: Bounded<u64, (String, InboxEntry)>,
    /// Each phone's messages (their arrival numbers), oldest first.
    by_phone: HashMap<String, VecDeque<u64>>,
    next: u64,
}

impl Inboxes {
    /// Forgets a dropped message in its phone's list; a phone left with none is forgotten.
    fn forget(&mut self, seq: u64, msisdn: &str) {
        if let Some(list) = self.by_phone.get_mut(msisdn) {
            // The oldest of all is the oldest of its phone.
            if list.front() == Some(&seq) {
                list.pop_front();
            } else {
                list.retain(|s| *s != seq);
            }
            if list.is_empty() {
                self.by_phone.remove(msisdn);
            }
        }
    }
}

impl Default for Phones {
    /// No messages yet; keeps the default [`crate::Retention`]'s records.
    fn default() -> Self {
        Phones::new(crate::Retention::default().records_limit())
    }
}

impl Phones {
    /// No messages yet; keeps up to `limit` of them, all phones together.
    pub(crate) fn new(limit: Limit) -> Self {
        Phones {
            inboxes: Mutex::new(Inboxes {
                messages: Bounded::new(limit),
                by_phone: HashMap::new(),
                next: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inboxes> {
        self.inboxes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Puts a message on a phone's screen; the oldest message of all goes once there are too
    /// many.
    pub(crate) fn receive(&self, msisdn: &str, entry: InboxEntry) {
        let mut inboxes = self.lock();
        let seq = inboxes.next;
        inboxes.next += 1;
        let dropped = inboxes.messages.insert(seq, (msisdn.to_owned(), entry));
        inboxes
            .by_phone
            .entry(msisdn.to_owned())
            .or_default()
            .push_back(seq);
        for (seq, (phone, _)) in dropped {
            inboxes.forget(seq, &phone);
        }
    }

    /// What a phone received and is still kept, oldest first.
    pub(crate) fn inbox(&self, msisdn: &str) -> Vec<InboxEntry> {
        let mut inboxes = self.lock();
        for (seq, (phone, _)) in inboxes.messages.expire() {
            inboxes.forget(seq, &phone);
        }
        let Some(list) = inboxes.by_phone.get(msisdn) else {
            return Vec::new();
        };
        list.iter()
            .filter_map(|seq| inboxes.messages.get(seq))
            .map(|(_, entry)| entry.clone())
            .collect()
    }

    /// How many phones have a message kept (for the tests of the bound).
    #[cfg(test)]
    fn phones(&self) -> usize {
        self.lock().by_phone.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn entry(n: u32) -> InboxEntry {
        InboxEntry {
            message_id: format!("a1-{n}"),
            sender: "E-SERVICES".to_owned(),
            text: format!("text {n}"),
            received_at: "2026-12-07T10:00:00.000Z".to_owned(),
        }
    }

    fn texts(phones: &Phones, msisdn: &str) -> Vec<String> {
        phones.inbox(msisdn).into_iter().map(|e| e.text).collect()
    }

    #[test]
    fn past_the_bound_the_oldest_messages_of_all_phones_go_first() {
        let phones = Phones::new(Limit::new(3, Duration::from_secs(3600)));
        phones.receive("+375291111111", entry(1));
        phones.receive("+375292222222", entry(2));
        phones.receive("+375291111111", entry(3));
        phones.receive("+375292222222", entry(4));
        assert_eq!(texts(&phones, "+375291111111"), vec!["text 3"]);
        assert_eq!(texts(&phones, "+375292222222"), vec!["text 2", "text 4"]);
        phones.receive("+375293333333", entry(5));
        phones.receive("+375293333333", entry(6));
        // The first phone's last message went: the phone is forgotten, its inbox empty.
        assert!(phones.inbox("+375291111111").is_empty());
        assert_eq!(texts(&phones, "+375292222222"), vec!["text 4"]);
        assert_eq!(texts(&phones, "+375293333333"), vec!["text 5", "text 6"]);
        assert_eq!(phones.phones(), 2);
    }
}
