//! Matching delivery receipts to messages, by the SMS centre's `message_id`: a receipt may come
//! before the `submit_sm_resp` naming its id was read (it waits), twice (the second is ignored)
//! or never (the message is forgotten after the receipt timeout). A message of several parts
//! is delivered once every part is, failed as soon as one fails; it is reported once.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use contracts::person::Msisdn;

use super::wire::Receipt;
use crate::sms::DeliveryReport;

/// How many ids of reported messages are remembered, so a late duplicate receipt is known.
const REMEMBERED: usize = 10_000;

/// How many receipts for unknown ids wait for their `submit_sm_resp`.
const EARLY: usize = 10_000;

/// A message sent, waiting for its receipts.
#[derive(Debug)]
struct Message {
    to: Msisdn,
    parts: usize,
    /// The SMS centre's ids of the parts taken, in order.
    ids: Vec<String>,
    delivered: HashSet<String>,
    opened: Instant,
}

/// Every message waiting for receipts.
#[derive(Debug)]
pub(super) struct Tracker {
    messages: HashMap<u64, Message>,
    by_id: HashMap<String, u64>,
    early: HashMap<String, (Receipt, Instant)>,
    reported: HashSet<String>,
    reported_order: VecDeque<String>,
    next: u64,
    timeout: Duration,
}

impl Tracker {
    pub(super) fn new(timeout: Duration) -> Self {
        Tracker {
            messages: HashMap::new(),
            by_id: HashMap::new(),
            early: HashMap::new(),
            reported: HashSet::new(),
            reported_order: VecDeque::new(),
            next: 0,
            timeout,
        }
    }

    /// A message of `parts` parts to `to` is being sent; its number.
    pub(super) fn open(&mut self, to: Msisdn, parts: usize) -> u64 {
        self.expire();
        self.next += 1;
        self.messages.insert(
            self.next,
            Message {
                to,
                parts,
                ids: Vec::new(),
                delivered: HashSet::new(),
                opened: Instant::now(),
            },
        );
        self.next
    }

    /// A part of `message` was taken as `id`: a receipt that came first counts now.
    pub(super) fn taken(&mut self, message: u64, id: &str) -> Vec<DeliveryReport> {
        let Some(m) = self.messages.get_mut(&message) else {
            return Vec::new();
        };
        m.ids.push(id.to_owned());
        self.by_id.insert(id.to_owned(), message);
        match self.early.remove(id) {
            Some((receipt, _)) => self.receipt(receipt),
            None => Vec::new(),
        }
    }

    /// A message given up: its receipts are not waited for.
    pub(super) fn abandon(&mut self, message: u64) {
        if let Some(m) = self.messages.remove(&message) {
            for id in m.ids {
                self.by_id.remove(&id);
            }
        }
    }

    /// A receipt: the report it completes, if any.
    pub(super) fn receipt(&mut self, receipt: Receipt) -> Vec<DeliveryReport> {
        let Some(&number) = self.by_id.get(&receipt.message_id) else {
            if self.reported.contains(&receipt.message_id) {
                tracing::debug!(message_id = %receipt.message_id, "a receipt again, ignored");
            } else {
                self.keep_early(receipt);
            }
            return Vec::new();
        };
        let Some(message) = self.messages.get_mut(&number) else {
            return Vec::new();
        };
        let complete = if receipt.delivered {
            message.delivered.insert(receipt.message_id.clone());
            message.delivered.len() == message.parts
        } else {
            true
        };
        if !complete {
            return Vec::new();
        }
        let Some(message) = self.messages.remove(&number) else {
            return Vec::new();
        };
        for id in &message.ids {
            self.by_id.remove(id);
            self.remember(id.clone());
        }
        vec![DeliveryReport {
            provider_message_id: message.ids.first().cloned().unwrap_or_default(),
            to: message.to,
            delivered: receipt.delivered,
            at: receipt.at,
        }]
    }

    /// A receipt for an id no answer named yet: kept for the answer.
    fn keep_early(&mut self, receipt: Receipt) {
        if self.early.len() >= EARLY {
            let cutoff = Instant::now() - self.timeout.min(Duration::from_secs(60));
            self.early.retain(|_, (_, at)| *at > cutoff);
            if self.early.len() >= EARLY {
                self.early.clear();
            }
        }
        self.early
            .insert(receipt.message_id.clone(), (receipt, Instant::now()));
    }

    fn remember(&mut self, id: String) {
        if self.reported_order.len() >= REMEMBERED
            && let Some(old) = self.reported_order.pop_front()
        {
            self.reported.remove(&old);
        }
        self.reported.insert(id.clone());
        self.reported_order.push_back(id);
    }

    /// Forgets the messages whose receipts did not come in time.
    fn expire(&mut self) {
        let timeout = self.timeout;
        let expired: Vec<u64> = self
            .messages
            .iter()
            .filter(|(_, m)| m.opened.elapsed() > timeout)
            .map(|(n, _)| *n)
            .collect();
        for number in expired {
            if let Some(m) = self.messages.get(&number) {
                tracing::warn!(phone = %m.to.masked(), provider_message_id = %m.ids.first().map_or("", String::as_str), "no delivery receipt in time; the message is forgotten");
            }
            self.abandon(number);
        }
    }

    /// How many messages wait for receipts (for the tests).
    #[cfg(test)]
    pub(super) fn waiting(&self) -> usize {
        self.messages.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(id: &str, delivered: bool) -> Receipt {
        Receipt {
            message_id: id.to_owned(),
            delivered,
            at: chrono::Utc::now(),
        }
    }

    fn phone() -> Msisdn {
        Msisdn::parse("+375291234567").expect("a number")
    }

    #[test]
    fn a_receipt_before_its_answer_counts_once_the_answer_comes() {
        let mut t = Tracker::new(Duration::from_secs(60));
        let m = t.open(phone(), 1);
        assert!(t.receipt(receipt("x", true)).is_empty());
        let reports = t.taken(m, "x");
        assert_eq!(reports.len(), 1);
        assert!(reports[0].delivered);
        assert_eq!(reports[0].provider_message_id, "x");
        assert!(t.receipt(receipt("x", true)).is_empty(), "a duplicate");
        assert_eq!(t.waiting(), 0);
    }

    #[test]
    fn every_part_must_be_delivered_and_one_failure_fails_the_message() {
        let mut t = Tracker::new(Duration::from_secs(60));
        let m = t.open(phone(), 2);
        t.taken(m, "a");
        t.taken(m, "b");
        assert!(t.receipt(receipt("a", true)).is_empty());
        assert!(
            t.receipt(receipt("a", true)).is_empty(),
            "the same part twice"
        );
        let reports = t.receipt(receipt("b", true));
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].provider_message_id, "a");
        let m = t.open(phone(), 2);
        t.taken(m, "c");
        t.taken(m, "d");
        let reports = t.receipt(receipt("d", false));
        assert_eq!(reports.len(), 1);
        assert!(!reports[0].delivered);
        assert!(t.receipt(receipt("c", true)).is_empty(), "reported already");
    }

    #[test]
    fn a_message_without_receipts_is_forgotten_after_the_timeout() {
        let mut t = Tracker::new(Duration::ZERO);
        let m = t.open(phone(), 1);
        t.taken(m, "z");
        // Time passes: with a zero timeout, any at all expires the first message (this waits for
        // no other task).
        std::thread::sleep(Duration::from_millis(2));
        t.open(phone(), 1);
        assert_eq!(t.waiting(), 1, "only the new one");
    }
}
