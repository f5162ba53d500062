//! An operator's SMS centre over SMPP 3.4, beside its HTTP gateway and sharing its numbers,
//! subscribers and phones: a bound ESME submits messages (GSM 7-bit, ASCII, Latin-1 or UCS-2;
//! whole, in UDH-concatenated segments, or in `message_payload`), the phone shows the
//! reassembled text, and `deliver_sm` receipts go back when `registered_delivery` asks for
//! them. Faults are switched at run time over the operator's HTTP simulator
//! (`PUT /sim/smpp/faults`): slow answers, throttling, system errors, lost or repeated receipts,
//! receipts ahead of their `submit_sm_resp`, refused binds, a connection dropped mid-window.
//! The same text reaching a phone twice is recorded (`GET /sim/smpp/duplicates`), so tests see
//! what a resend after a lost answer did.

mod control;
mod session;
mod wire;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rand::Rng;
use rusmpp::pdus::{DeliverSm, SubmitSm};
use rusmpp::tlvs::{MessageDeliveryRequestTlvValue, TlvValue};
use rusmpp::types::{COctetString, OctetString};
use rusmpp::values::{DataCoding, EsmClass, MessageState, Npi, Ton};
use rusmpp::{Command, CommandStatus, Pdu};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::{InboxEntry, Phones};
use crate::error::timestamp;
use crate::faults::roll;
use crate::msisdn::{Msisdn, Operator};
use crate::server::SimContext;

pub(crate) use control::{SmppFaults, routes};
pub(crate) use session::serve;
use wire::{Outcome, Segment};

/// How many receipts wait for a bound session, at most; older ones are dropped first.
const MAX_WAITING_RECEIPTS: usize = 10_000;

/// How many messages may be half reassembled at once; past it the oldest are forgotten.
const MAX_PARTIAL: usize = 10_000;

/// How many duplicates are kept for `GET /sim/smpp/duplicates`.
const MAX_DUPLICATES: usize = 1_000;

/// The `system_id` and password an ESME binds with.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Account {
    pub(crate) system_id: String,
    pub(crate) password: String,
}

impl std::fmt::Debug for Account {
    /// Leaves the password out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("system_id", &self.system_id)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// One operator's SMS centre.
#[derive(Debug)]
pub(crate) struct Smsc {
    operator: Operator,
    ctx: SimContext,
    account: Account,
    phones: Arc<Phones>,
    tasks: TaskTracker,
    faults: Mutex<SmppFaults>,
    links: Mutex<Links>,
    partial: Mutex<HashMap<PartialKey, Partial>>,
    duplicates: Mutex<VecDeque<Duplicate>>,
    /// Held while a message is checked against its phone and put there, so two copies
    /// delivered at once are still seen as a duplicate.
    delivering: Mutex<()>,
    next_link: AtomicU64,
}

/// The bound sessions that take receipts, and the receipts waiting for one.
#[derive(Debug, Default)]
struct Links {
    bound: Vec<Link>,
    waiting: VecDeque<DeliverSm>,
}

/// A connection's way out: its PDUs go through its writer, in order.
#[derive(Debug, Clone)]
pub(super) struct Link {
    id: u64,
    out: mpsc::UnboundedSender<Command>,
    next_sequence: Arc<AtomicU32>,
}

impl Link {
    fn new(id: u64, out: mpsc::UnboundedSender<Command>) -> Self {
        Link {
            id,
            out,
            next_sequence: Arc::new(AtomicU32::new(1)),
        }
    }

    /// Sends a request of the SMSC's own (a receipt) with the next sequence number; false when
    /// the connection is gone.
    fn request(&self, pdu: impl Into<Pdu>) -> bool {
        let sequence = self.next_sequence.fetch_add(1, Ordering::Relaxed) % 0x7FFF_FFFF + 1;
        self.out
            .send(Command::new(CommandStatus::EsmeRok, sequence, pdu))
            .is_ok()
    }

    /// Answers the ESME's request `sequence`.
    fn respond(&self, status: CommandStatus, sequence: u32, pdu: impl Into<Pdu>) {
        // A closed writer means the connection is going; its reader ends too.
        let _ = self.out.send(Command::new(status, sequence, pdu));
    }
}

/// The segments of one concatenated message, by where they belong.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PartialKey {
    to: String,
    sender: String,
    reference: u16,
    total: u8,
}

/// The segments of a concatenated message received so far.
#[derive(Debug)]
struct Partial {
    started: Instant,
    data_coding: u8,
    parts: BTreeMap<u8, Part>,
}

/// One accepted segment (or a whole message as its only part).
#[derive(Debug, Clone)]
struct Part {
    message_id: String,
    bytes: Vec<u8>,
    receipt: bool,
    submitted: DateTime<Utc>,
}

/// A message ready for the phone: every part accepted.
#[derive(Debug)]
pub(super) struct Whole {
    to: Msisdn,
    sender: String,
    /// The text; `None` when its bytes are no text in their coding (the phone cannot show it).
    text: Option<String>,
    parts: Vec<Part>,
    /// The connection it came on: its receipts go there first.
    origin: u64,
}

/// A text a phone received twice.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Duplicate {
    msisdn: String,
    message_id: String,
    text: String,
    at: String,
}

/// What a `submit_sm` was accepted as: its message id, and the whole message when it was the
/// last missing part.
#[derive(Debug)]
pub(super) struct Accepted {
    message_id: String,
    whole: Option<Whole>,
}

impl Smsc {
    /// The SMS centre of `operator`, taking binds of `account`, delivering to `phones`.
    pub(crate) fn new(
        ctx: SimContext,
        operator: Operator,
        account: Account,
        phones: Arc<Phones>,
        tasks: TaskTracker,
    ) -> Self {
        Smsc {
            operator,
            ctx,
            account,
            phones,
            tasks,
            faults: Mutex::default(),
            links: Mutex::default(),
            partial: Mutex::default(),
            duplicates: Mutex::default(),
            delivering: Mutex::default(),
            next_link: AtomicU64::new(1),
        }
    }

    fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
        mutex.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The faults in force now.
    pub(crate) fn faults(&self) -> SmppFaults {
        *Self::lock(&self.faults)
    }

    fn set_faults(&self, faults: SmppFaults) {
        *Self::lock(&self.faults) = faults;
    }

    /// Changes the faults under the lock (for the one-shot ones a session uses up).
    fn update_faults<R>(&self, change: impl FnOnce(&mut SmppFaults) -> R) -> R {
        change(&mut Self::lock(&self.faults))
    }

    /// The texts phones received twice, oldest first.
    pub(crate) fn duplicates(&self) -> Vec<Duplicate> {
        Self::lock(&self.duplicates).iter().cloned().collect()
    }

    fn new_link(&self, out: mpsc::UnboundedSender<Command>) -> Link {
        Link::new(self.next_link.fetch_add(1, Ordering::Relaxed), out)
    }

    /// A session bound to take receipts: the waiting ones go to it.
    fn attach(&self, link: &Link) {
        let mut links = Self::lock(&self.links);
        while let Some(receipt) = links.waiting.pop_front() {
            if !link.request(receipt) {
                break;
            }
        }
        links.bound.push(link.clone());
    }

    /// A session gone.
    fn detach(&self, id: u64) {
        Self::lock(&self.links).bound.retain(|l| l.id != id);
    }

    /// Checks and takes one `submit_sm` that came on connection `origin`.
    fn accept(&self, sm: &SubmitSm, origin: u64) -> Result<Accepted, CommandStatus> {
        let sender = sm.source_addr.as_str().to_owned();
        if sender.is_empty() {
            return Err(CommandStatus::EsmeRinvsrcadr);
        }
        let to =
            Msisdn::parse(sm.destination_addr.as_str()).ok_or(CommandStatus::EsmeRinvdstadr)?;
        if to.serving_operator() != Some(self.operator) {
            tracing::info!(simulator = %self.ctx.kind, to = %to.masked(), "submit_sm refused: not our subscriber");
            return Err(CommandStatus::EsmeRinvdstadr);
        }
        if to.is_blocked() {
            tracing::info!(simulator = %self.ctx.kind, to = %to.masked(), "submit_sm refused: subscriber blocked");
            return Err(CommandStatus::EsmeRxPAppn);
        }
        let data_coding = u8::from(sm.data_coding);
        if !matches!(data_coding, 0 | 1 | 3 | 8) {
            return Err(CommandStatus::EsmeRinvdcs);
        }
        let bytes = message_bytes(sm)?;
        let udhi = u8::from(sm.esm_class) & 0x40 != 0;
        let (segment, text) = if udhi {
            wire::split_udh(&bytes).ok_or(CommandStatus::EsmeRinvesmclass)?
        } else {
            (None, &bytes[..])
        };
        if segment.is_none() && wire::decode_text(data_coding, text).is_none() {
            return Err(CommandStatus::EsmeRsubmitfail);
        }
        let part = Part {
            message_id: format!("{}-{}", self.operator.id(), Uuid::new_v4().simple()),
            bytes: text.to_vec(),
            receipt: u8::from(sm.registered_delivery) & 0x03 != 0,
            submitted: Utc::now(),
        };
        let message_id = part.message_id.clone();
        tracing::info!(simulator = %self.ctx.kind, %message_id, to = %to.masked(), "submit_sm accepted");
        let whole = match segment {
            None => Some(Whole {
                text: wire::decode_text(data_coding, &part.bytes),
                to,
                sender,
                parts: vec![part],
                origin,
            }),
            Some(segment) => self.assemble(to, sender, data_coding, segment, part, origin),
        };
        Ok(Accepted { message_id, whole })
    }

    /// Keeps a segment; gives the whole message once its last part came.
    fn assemble(
        &self,
        to: Msisdn,
        sender: String,
        data_coding: u8,
        segment: Segment,
        part: Part,
        origin: u64,
    ) -> Option<Whole> {
        let key = PartialKey {
            to: to.as_str().to_owned(),
            sender: sender.clone(),
            reference: segment.reference,
            total: segment.total,
        };
        let mut partial = Self::lock(&self.partial);
        if partial.len() >= MAX_PARTIAL
            && let Some(oldest) = partial
                .iter()
                .min_by_key(|(_, p)| p.started)
                .map(|(k, _)| k.clone())
        {
            partial.remove(&oldest);
        }
        let entry = partial.entry(key.clone()).or_insert_with(|| Partial {
            started: Instant::now(),
            data_coding,
            parts: BTreeMap::new(),
        });
        // A segment sent again replaces the one kept: the phone shows one message.
        entry.parts.insert(segment.number, part);
        if entry.parts.len() < usize::from(segment.total) {
            return None;
        }
        let complete = partial.remove(&key)?;
        let bytes: Vec<u8> = complete
            .parts
            .values()
            .flat_map(|p| p.bytes.iter().copied())
            .collect();
        Some(Whole {
            text: wire::decode_text(complete.data_coding, &bytes),
            to,
            sender,
            parts: complete.parts.into_values().collect(),
            origin,
        })
    }

    /// Puts a whole message on its phone (or fails it) and sends the receipts asked for.
    fn deliver_now(&self, whole: Whole) {
        let now = Utc::now();
        let first_id = whole
            .parts
            .first()
            .map(|p| p.message_id.clone())
            .unwrap_or_default();
        let outcome = match &whole.text {
            Some(text) if !whole.to.never_receives() => {
                let _one_at_a_time = Self::lock(&self.delivering);
                self.note_duplicate(&whole.to, &first_id, text, now);
                self.phones.receive(
                    whole.to.as_str(),
                    InboxEntry {
                        message_id: first_id.clone(),
                        sender: whole.sender.clone(),
                        text: text.clone(),
                        received_at: timestamp(now),
                    },
                );
                Outcome::Delivered
            }
            _ => Outcome::Undeliverable,
        };
        tracing::info!(
            simulator = %self.ctx.kind,
            message_id = %first_id,
            to = %whole.to.masked(),
            segments = whole.parts.len(),
            delivered = outcome == Outcome::Delivered,
            "SMPP message delivered to the phone"
        );
        for part in whole.parts.iter().filter(|p| p.receipt) {
            let receipt = receipt(&whole, part, outcome, now);
            self.send_receipt(whole.origin, receipt);
        }
    }

    /// Records the text if the phone already shows it.
    fn note_duplicate(&self, to: &Msisdn, message_id: &str, text: &str, now: DateTime<Utc>) {
        if !self
            .phones
            .inbox(to.as_str())
            .iter()
            .any(|entry| entry.text == text)
        {
            return;
        }
        tracing::warn!(simulator = %self.ctx.kind, %message_id, to = %to.masked(), "the same text reached the phone again");
        let mut duplicates = Self::lock(&self.duplicates);
        if duplicates.len() >= MAX_DUPLICATES {
            duplicates.pop_front();
        }
        duplicates.push_back(Duplicate {
            msisdn: to.as_str().to_owned(),
            message_id: message_id.to_owned(),
            text: text.to_owned(),
            at: timestamp(now),
        });
    }

    /// Sends a receipt (dropped or doubled by the faults) to the connection the message came
    /// on, else to another bound one, else keeps it for the next bind.
    fn send_receipt(&self, origin: u64, receipt: DeliverSm) {
        let faults = self.faults();
        if roll(faults.drop_receipt_rate) {
            tracing::info!(simulator = %self.ctx.kind, "receipt dropped (fault)");
            return;
        }
        let copies = if roll(faults.duplicate_receipt_rate) {
            2
        } else {
            1
        };
        let mut links = Self::lock(&self.links);
        for _ in 0..copies {
            let mut order: Vec<&Link> = links.bound.iter().filter(|l| l.id == origin).collect();
            order.extend(links.bound.iter().filter(|l| l.id != origin));
            if order.iter().any(|link| link.request(receipt.clone())) {
                continue;
            }
            if links.waiting.len() >= MAX_WAITING_RECEIPTS {
                links.waiting.pop_front();
            }
            links.waiting.push_back(receipt.clone());
        }
    }
}

/// The bytes of a `submit_sm`: its `short_message`, or its `message_payload` when that is empty.
fn message_bytes(sm: &SubmitSm) -> Result<Vec<u8>, CommandStatus> {
    let payload = sm.tlvs().iter().find_map(|tlv| match tlv.value() {
        Some(TlvValue::MessagePayload(payload)) => Some(payload.value.to_vec()),
        _ => None,
    });
    let short = sm.short_message().to_vec();
    match payload {
        Some(_) if !short.is_empty() => Err(CommandStatus::EsmeRinvtlvval),
        Some(payload) if !payload.is_empty() => Ok(payload),
        _ if short.is_empty() => Err(CommandStatus::EsmeRinvmsglen),
        _ => Ok(short),
    }
}

/// The receipt of one part: from the phone to the sender, `esm_class` "delivery receipt", the
/// standard text, and the `receipted_message_id` and `message_state` TLVs.
fn receipt(whole: &Whole, part: &Part, outcome: Outcome, done: DateTime<Utc>) -> DeliverSm {
    let text = wire::receipt_text(&part.message_id, outcome, part.submitted, done);
    let state = match outcome {
        Outcome::Delivered => MessageState::Delivered,
        Outcome::Undeliverable => MessageState::Undeliverable,
    };
    let phone = whole.to.as_str().trim_start_matches('+').to_owned();
    let mut sm = DeliverSm::builder()
        .source_addr_ton(Ton::International)
        .source_addr_npi(Npi::Isdn)
        .source_addr(COctetString::from_string(phone).unwrap_or_default())
        .dest_addr_ton(Ton::Alphanumeric)
        .dest_addr_npi(Npi::Unknown)
        .destination_addr(COctetString::from_string(whole.sender.clone()).unwrap_or_default())
        .esm_class(EsmClass::from(0x04))
        .data_coding(DataCoding::McSpecific)
        .short_message(OctetString::from_vec(text.into_bytes()).unwrap_or_default())
        .build();
    if let Ok(id) = COctetString::from_string(part.message_id.clone()) {
        sm.push_tlv(MessageDeliveryRequestTlvValue::ReceiptedMessageId(id));
    }
    sm.push_tlv(MessageDeliveryRequestTlvValue::MessageState(state));
    sm
}

/// A random wait of 10 to 200 ms, as a phone takes to receive; false when shutdown came first.
async fn phone_delay(smsc: &Smsc) -> bool {
    let delay = Duration::from_millis(rand::rng().random_range(10..=200));
    tokio::select! {
        () = tokio::time::sleep(delay) => true,
        () = smsc.ctx.shutdown.cancelled() => false,
    }
}

/// Delivers a whole message a little later, as a phone receives it.
async fn deliver_later(smsc: Arc<Smsc>, whole: Whole) {
    if phone_delay(&smsc).await {
        smsc.deliver_now(whole);
    }
}
