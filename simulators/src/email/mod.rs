//! The e-mail simulator: an SMTP sink that takes every message it is given, and an HTTP inbox
//! where the demo and the tests read them, as the person would in a mail client.
//!
//! The portal registers people by e-mail: a registration form, then an activation link sent by
//! e-mail. The hub hands its e-mails to an SMTP relay; here the relay is this sink, so a test can
//! register a person, read the link from `GET /sim/inbox/{address}` and follow it. Its faults
//! (the common ones, applied per SMTP connection, and `smtp_reply`, a refusal of recipients)
//! let the hub's e-mail adapter show that it tells a relay that is busy (4xx) from one that
//! refuses (5xx).
//!
//! Message bodies hold activation links, which are secrets: they are never logged, and
//! addresses are logged masked (`i***@example.by`).

mod api;
mod message;
mod smtp;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use axum::Router;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

use crate::retention::{Bounded, Limit};
use crate::server::SimContext;

/// The most messages one `GET /sim/messages` lists (the sink keeps up to the record limit).
const MAX_LISTED: usize = 10_000;

/// Starts the SMTP sink on `smtp` (its sessions run on `tasks`, so
/// [`crate::RunningSims::stopped`] waits for them) and returns the inbox's HTTP routes.
pub(crate) fn start(ctx: SimContext, smtp: TcpListener, tasks: &TaskTracker) -> Router {
    let state = Arc::new(EmailState {
        ctx: ctx.clone(),
        store: Store::new(ctx.retention.records_limit()),
        smtp_faults: RwLock::new(SmtpFaults::default()),
    });
    tasks.spawn(smtp::serve(smtp, state.clone(), tasks.clone()));
    api::router(ctx, state)
}

/// What the SMTP sink and the inbox share.
#[derive(Debug)]
struct EmailState {
    ctx: SimContext,
    store: Store,
    smtp_faults: RwLock<SmtpFaults>,
}

impl EmailState {
    fn smtp_faults(&self) -> SmtpFaults {
        *self
            .smtp_faults
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn set_smtp_faults(&self, faults: SmtpFaults) {
        *self
            .smtp_faults
            .write()
            .unwrap_or_else(PoisonError::into_inner) = faults;
    }
}

/// The e-mail faults, set through `/sim/faults` next to the common ones: `smtp_reply` answers
/// that share (`smtp_reply_rate`) of `RCPT TO` commands, so a client sees a relay that is busy
/// (4xx) or refuses the recipient (5xx).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
struct SmtpFaults {
    /// The reply code, or `None` for no refusal.
    smtp_reply: Option<u16>,
    /// The share of recipients refused while `smtp_reply` is set.
    smtp_reply_rate: f64,
}

impl Default for SmtpFaults {
    /// No refusal; once one is set, every recipient gets it unless a rate says otherwise.
    fn default() -> Self {
        SmtpFaults {
            smtp_reply: None,
            smtp_reply_rate: 1.0,
        }
    }
}

/// A received message as the inbox shows it.
#[derive(Debug, Clone, Serialize)]
struct Mail {
    /// The `From` header, decoded (the envelope's sender when the message has none).
    from: String,
    /// The envelope's recipients (`RCPT TO`), in the order given.
    to: Vec<String>,
    /// The `Subject` header, decoded; empty when the message has none.
    subject: String,
    /// The `Message-ID` header, when the message has one.
    message_id: Option<String>,
    /// The text body, decoded, with `\n` line ends (a 7bit or quoted-printable body ends with
    /// its last line's break, as SMTP carries it).
    text: String,
    /// When the sink accepted it.
    received_at: String,
}

/// One stored message and the inboxes (lower-case addresses) that still show it.
#[derive(Debug)]
struct Stored {
    mail: Mail,
    inboxes: Vec<String>,
}

/// Every message the sink accepted, oldest first, the newest up to the record limit (all
/// inboxes together); a message dropped is in no inbox and no list.
#[derive(Debug)]
struct Store {
    messages: Mutex<Messages>,
}

#[derive(Debug)]
struct Messages {
    kept: Bounded<u64, Stored>,
    /// How many kept messages carry each `Message-ID`.
    ids: HashMap<String, usize>,
    next: u64,
}

impl Messages {
    /// Forgets the `Message-ID`s of dropped messages.
    fn forget(&mut self, dropped: Vec<(u64, Stored)>) {
        for (_, stored) in dropped {
            if let Some(id) = stored.mail.message_id
                && let Some(count) = self.ids.get_mut(&id)
            {
                *count -= 1;
                if *count == 0 {
                    self.ids.remove(&id);
                }
            }
        }
    }
}

impl Store {
    /// An empty sink keeping up to `limit` messages.
    fn new(limit: Limit) -> Self {
        Store {
            messages: Mutex::new(Messages {
                kept: Bounded::new(limit),
                ids: HashMap::new(),
                next: 0,
            }),
        }
    }

    /// Puts a message into each recipient's inbox. True when a message with the same
    /// `Message-ID` was received before (and is still kept): the sender sent it again.
    fn receive(&self, mail: Mail) -> bool {
        let inboxes = mail.to.iter().map(|to| to.to_lowercase()).collect();
        let mut messages = self.lock();
        let expired = messages.kept.expire();
        messages.forget(expired);
        let again = mail.message_id.as_ref().is_some_and(|id| {
            let count = messages.ids.entry(id.clone()).or_insert(0);
            *count += 1;
            *count > 1
        });
        let seq = messages.next;
        messages.next += 1;
        let dropped = messages.kept.insert(seq, Stored { mail, inboxes });
        messages.forget(dropped);
        again
    }

    /// What `address` (lower case) received, oldest first.
    fn inbox(&self, address: &str) -> Vec<Mail> {
        self.lock()
            .kept
            .iter()
            .filter(|(_, m)| m.inboxes.iter().any(|i| i == address))
            .map(|(_, m)| m.mail.clone())
            .collect()
    }

    /// Empties the inbox of `address` (lower case); the messages stay in the sink's list.
    /// Returns how many it held.
    fn clear(&self, address: &str) -> usize {
        let mut cleared = 0;
        for (_, message) in self.lock().kept.iter_mut() {
            let before = message.inboxes.len();
            message.inboxes.retain(|i| i != address);
            cleared += before - message.inboxes.len();
        }
        cleared
    }

    /// The last `limit` messages received, oldest first.
    fn recent(&self, limit: usize) -> Vec<Mail> {
        let messages = self.lock();
        let kept: Vec<&Stored> = messages.kept.iter().map(|(_, m)| m).collect();
        let skip = kept.len().saturating_sub(limit);
        kept[skip..].iter().map(|m| m.mail.clone()).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Messages> {
        self.messages.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// An address for a log line: the first character of the local part and the domain
/// (`i***@example.by`), or `***` when it is not an address at all.
fn mask(address: &str) -> String {
    match address.trim().rsplit_once('@') {
        Some((local, domain)) if !domain.is_empty() => match local.chars().next() {
            Some(first) => format!("{first}***@{domain}"),
            None => "***".to_owned(),
        },
        _ => "***".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(to: &[&str], message_id: &str) -> Mail {
        Mail {
            from: "noreply@portal.gov.by".to_owned(),
            to: to.iter().map(|t| (*t).to_owned()).collect(),
            subject: "s".to_owned(),
            message_id: Some(message_id.to_owned()),
            text: "t".to_owned(),
            received_at: "2026-11-26T10:00:00.000Z".to_owned(),
        }
    }

    #[test]
    fn inboxes_are_per_lower_case_address_and_clearing_one_keeps_the_others() {
        let store = Store::new(Limit::new(100, std::time::Duration::from_secs(3600)));
        assert!(!store.receive(mail(&["Ivan@Example.by", "anna@example.by"], "<1@h>")));
        assert!(!store.receive(mail(&["ivan@example.by"], "<2@h>")));
        assert!(
            store.receive(mail(&["ivan@example.by"], "<2@h>")),
            "a re-send"
        );
        assert_eq!(store.inbox("ivan@example.by").len(), 3);
        assert_eq!(store.inbox("anna@example.by").len(), 1);
        assert_eq!(store.clear("ivan@example.by"), 3);
        assert!(store.inbox("ivan@example.by").is_empty());
        assert_eq!(store.inbox("anna@example.by").len(), 1);
        assert_eq!(store.recent(2).len(), 2);
        assert_eq!(store.recent(100).len(), 3);
        assert_eq!(
            store.recent(1)[0].message_id.as_deref(),
            Some("<2@h>"),
            "the newest"
        );
    }

    #[test]
    fn past_the_bound_the_oldest_messages_go_and_the_newest_stay() {
        let store = Store::new(Limit::new(2, std::time::Duration::from_secs(3600)));
        store.receive(mail(&["ivan@example.by"], "<1@h>"));
        store.receive(mail(&["anna@example.by"], "<2@h>"));
        store.receive(mail(&["ivan@example.by"], "<3@h>"));
        let ids = |mails: Vec<Mail>| -> Vec<String> {
            mails.into_iter().filter_map(|m| m.message_id).collect()
        };
        assert_eq!(ids(store.inbox("ivan@example.by")), vec!["<3@h>"]);
        assert_eq!(ids(store.inbox("anna@example.by")), vec!["<2@h>"]);
        assert_eq!(ids(store.recent(100)), vec!["<2@h>", "<3@h>"]);
        // The dropped message's id is forgotten: sent again, it is news.
        assert!(!store.receive(mail(&["ivan@example.by"], "<1@h>")));
        assert!(
            store.receive(mail(&["ivan@example.by"], "<1@h>")),
            "kept: a re-send"
        );
    }

    #[test]
    fn addresses_are_masked() {
        assert_eq!(mask("ivan.petrov@example.by"), "i***@example.by");
        assert_eq!(mask(" Анна@почта.бел "), "А***@почта.бел");
        assert_eq!(mask("@example.by"), "***");
        assert_eq!(mask("no-at-sign"), "***");
        assert_eq!(mask("ivan@"), "***");
    }
}
