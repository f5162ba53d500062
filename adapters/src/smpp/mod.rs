//! The mobile operators' SMS centres over SMPP 3.4: one [`SmppClient`] per operator.
//!
//! The client binds as a transceiver (`system_id`, password, `system_type`) and keeps the bind:
//! `enquire_link` while idle, a reconnect with a doubling backoff after a lost bind, a clean
//! `unbind` on [`SmppClient::drain`]. [`SmppClient::send`] splits a text into `submit_sm`s
//! (GSM 7-bit when it fits, UCS-2 otherwise; UDH segments or `message_payload`, see
//! [`LongText`]), keeps at most `window` of them unanswered and at most `throughput` a second,
//! and retries throttling answers, system errors and lost connections a few times in process.
//! Delivery receipts (`deliver_sm`) are matched to their message by the SMS centre's
//! `message_id`, whether they come before the `submit_sm_resp` was read, twice, or never, and
//! come out of the receiver [`SmppClient::start`] gives, as the same [`DeliveryReport`]s the
//! HTTP gateways post: a message of several segments is delivered once every segment is.
//!
//! What SMPP cannot promise, this client cannot either: a `submit_sm` whose answer is lost with
//! its connection may have been taken; it is sent again, so the phone may show it twice
//! (at-least-once). What it does promise: no message is dropped without a failure returned.
//!
//! An SMS carries a code or a password and a phone number is personal data: neither the text
//! nor an unmasked number, nor the SMPP password, goes into a log line or a failure reason.

mod session;
mod tracker;
mod wire;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::time::Duration;

use contracts::person::{Msisdn, Operator};
use rusmpp::pdus::SubmitSm;
use rusmpp::{CommandStatus, Pdu};
use tokio::sync::{Mutex, Semaphore, mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::failure::{Failure, FailureKind};
use crate::sms::{DeliveryReport, NOT_OUR_SUBSCRIBER, SUBSCRIBER_BLOCKED, SentSms};
pub use wire::LongText;

/// Where an operator's SMS centre is and how to use it.
#[derive(Clone)]
pub struct SmppConfig {
    /// The operator this SMS centre belongs to.
    pub operator: Operator,
    /// Its host name or address.
    pub host: String,
    /// Its SMPP port.
    pub port: u16,
    /// The `system_id` to bind with (up to 15 characters).
    pub system_id: String,
    /// The password (up to 8 characters, SMPP 3.4).
    pub password: String,
    /// The `system_type` (up to 12 characters; often empty).
    pub system_type: String,
    /// The alphanumeric sender shown on the phone (`E-SERVICES`).
    pub sender: String,
    /// How many `submit_sm` may wait for their answer at once.
    pub window: usize,
    /// How many `submit_sm` a second, at most.
    pub throughput: u32,
    /// How a text longer than one short message goes.
    pub long_text: LongText,
    /// How long an idle bind waits before an `enquire_link`.
    pub enquire_link_every: Duration,
    /// How long any answer (bind, `submit_sm`, `enquire_link`, `unbind`) is waited for.
    pub response_timeout: Duration,
    /// The first wait before a reconnect; it doubles up to `reconnect_max`.
    pub reconnect_min: Duration,
    /// The longest wait between two reconnects.
    pub reconnect_max: Duration,
    /// How many times one `submit_sm` is tried (throttled, system error, lost connection).
    pub attempts: u32,
    /// How long a message's receipts are waited for before it is forgotten (no report).
    pub receipt_timeout: Duration,
    /// SMPP over TLS, verified against these roots (with this client certificate, if any);
    /// `None` for plain TCP.
    pub tls: Option<crate::tls::ClientTls>,
}

impl fmt::Debug for SmppConfig {
    /// Leaves the password out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmppConfig")
            .field("operator", &self.operator)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("system_id", &self.system_id)
            .field("password", &"<redacted>")
            .field("system_type", &self.system_type)
            .field("sender", &self.sender)
            .field("window", &self.window)
            .field("throughput", &self.throughput)
            .field("long_text", &self.long_text)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl SmppConfig {
    /// The SMS centre of `operator` at `host:port`, bound with `system_id` and `password`, with
    /// the defaults: no `system_type`, sender `E-SERVICES`, a window of 10, 50 a second, UDH
    /// segments, `enquire_link` every 30 s, answers within 10 s, reconnects 0.5 s to 30 s
    /// apart, 5 attempts, receipts waited for an hour, plain TCP.
    pub fn new(
        operator: Operator,
        host: impl Into<String>,
        port: u16,
        system_id: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        SmppConfig {
            operator,
            host: host.into(),
            port,
            system_id: system_id.into(),
            password: password.into(),
            system_type: String::new(),
            sender: "E-SERVICES".to_owned(),
            window: 10,
            throughput: 50,
            long_text: LongText::Segments,
            enquire_link_every: Duration::from_secs(30),
            response_timeout: Duration::from_secs(10),
            reconnect_min: Duration::from_millis(500),
            reconnect_max: Duration::from_secs(30),
            attempts: 5,
            receipt_timeout: Duration::from_secs(3600),
            tls: None,
        }
    }
}

/// A client of one operator's SMS centre. Cheap to share behind an `Arc`; dropping it without
/// [`SmppClient::drain`] closes the connection without an `unbind`.
#[derive(Debug)]
pub struct SmppClient {
    inner: Arc<Inner>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// What the client's callers and its connection task share.
#[derive(Debug)]
struct Inner {
    config: SmppConfig,
    /// The bound connection, when there is one.
    link: watch::Sender<Option<session::Link>>,
    window: Semaphore,
    /// When the next `submit_sm` may go (the throughput limit).
    next_slot: Mutex<Instant>,
    tracker: std::sync::Mutex<tracker::Tracker>,
    reports: mpsc::UnboundedSender<DeliveryReport>,
    next_reference: AtomicU16,
    /// How many times a bind succeeded.
    binds: AtomicU64,
    draining: AtomicBool,
    stop: CancellationToken,
}

impl Drop for SmppClient {
    fn drop(&mut self) {
        self.inner.stop.cancel();
    }
}

impl SmppClient {
    /// Starts the client: its connection task binds in the background (and again after every
    /// loss) on the current tokio runtime. Returns at once, with the receiver of the delivery
    /// reports.
    pub fn start(config: SmppConfig) -> (SmppClient, mpsc::UnboundedReceiver<DeliveryReport>) {
        let (reports, receiver) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            window: Semaphore::new(config.window.max(1)),
            next_slot: Mutex::new(Instant::now()),
            tracker: std::sync::Mutex::new(tracker::Tracker::new(config.receipt_timeout)),
            link: watch::channel(None).0,
            reports,
            next_reference: AtomicU16::new(rand::random()),
            binds: AtomicU64::new(0),
            draining: AtomicBool::new(false),
            stop: CancellationToken::new(),
            config,
        });
        let task = tokio::spawn(session::run(inner.clone()));
        let client = SmppClient {
            inner,
            task: Mutex::new(Some(task)),
        };
        (client, receiver)
    }

    /// Waits until the client is bound, up to `timeout`; false if it is not by then.
    pub async fn bound(&self, timeout: Duration) -> bool {
        let mut link = self.inner.link.subscribe();
        tokio::time::timeout(timeout, link.wait_for(Option::is_some))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Whether the client is bound now.
    pub fn is_bound(&self) -> bool {
        self.inner.link.borrow().is_some()
    }

    /// How many times the client bound: 1 after the first bind, one more after each reconnect.
    pub fn binds(&self) -> u64 {
        self.inner.binds.load(Ordering::Relaxed)
    }

    /// Sends `text` to `to`; returns once the SMS centre took every part. The report comes
    /// later, out of the receiver [`SmppClient::start`] gave, naming the same
    /// `provider_message_id` (the SMS centre's id of the first part).
    ///
    /// Errors: an empty text, or one SMPP cannot carry, is invalid input; a number the operator
    /// does not serve is permanent with the reason [`NOT_OUR_SUBSCRIBER`], a blocked subscriber
    /// with [`SUBSCRIBER_BLOCKED`], other refusals permanent; throttling, system errors, a lost
    /// or missing bind are transient once the attempts are spent. A part taken before a later
    /// part failed stays taken (the phone shows nothing until every part came).
    pub async fn send(&self, to: &Msisdn, text: &str) -> Result<SentSms, Failure> {
        self.send_counted(to, text).await.result
    }

    /// [`Self::send`], telling also how many of its `submit_sm` were in doubt and sent again:
    /// written to the SMS centre, then their connection was lost or their answer did not come in
    /// time, so the centre may have taken them, and the next attempt may reach the phone a
    /// second time. A caller that keeps its own record of sends (the hub's `smpp_sends`) adds
    /// these to it, so a repeated SMS on a phone can be told from a bug.
    pub async fn send_counted(&self, to: &Msisdn, text: &str) -> Counted {
        let mut doubt = Doubt::default();
        let result = self.send_parts(to, text, &mut doubt).await;
        Counted {
            result,
            in_doubt: doubt.in_doubt,
            resent_in_doubt: doubt.resent,
        }
    }

    async fn send_parts(
        &self,
        to: &Msisdn,
        text: &str,
        doubt: &mut Doubt,
    ) -> Result<SentSms, Failure> {
        if text.trim().is_empty() {
            return Err(Failure::invalid_input("SMS text must not be empty"));
        }
        if self.inner.draining.load(Ordering::Relaxed) {
            return Err(Failure::transient(format!("{} is draining", self.system())));
        }
        let config = &self.inner.config;
        let reference = self.inner.next_reference.fetch_add(1, Ordering::Relaxed);
        let parts = wire::submit_parts(&config.sender, to, text, config.long_text, reference)?;
        let message = self.inner.tracker().open(to.clone(), parts.len());
        let mut first = None;
        for part in parts {
            match self.submit(part, doubt).await {
                Ok(id) => {
                    let reports = self.inner.tracker().taken(message, &id);
                    self.inner.emit(reports);
                    first.get_or_insert(id);
                }
                Err(f) => {
                    self.inner.tracker().abandon(message);
                    tracing::warn!(phone = %to.masked(), operator = %config.operator, kind = ?f.kind, reason = %f.reason, "SMS not sent over SMPP");
                    return Err(f);
                }
            }
        }
        let provider_message_id = first.unwrap_or_default();
        tracing::info!(phone = %to.masked(), operator = %config.operator, %provider_message_id, "SMS accepted over SMPP");
        Ok(SentSms {
            operator: config.operator,
            provider_message_id,
        })
    }

    /// Stops taking sends, waits up to `wait` for the ones under way, unbinds and closes.
    pub async fn drain(&self, wait: Duration) {
        self.inner.draining.store(true, Ordering::Relaxed);
        let all = u32::try_from(self.inner.config.window.max(1)).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(wait, self.inner.window.acquire_many(all)).await;
        self.inner.stop.cancel();
        if let Some(task) = self.task.lock().await.take() {
            let _ = tokio::time::timeout(wait + self.inner.config.response_timeout, task).await;
        }
    }

    /// The operator whose SMS centre this is.
    pub fn operator(&self) -> Operator {
        self.inner.config.operator
    }

    /// `SMS centre a1`, as failures and logs name it.
    fn system(&self) -> String {
        system(self.inner.config.operator)
    }

    /// Submits one part: within the window and the throughput, retried on transient answers
    /// and lost connections. Gives the SMS centre's message id.
    async fn submit(&self, sm: SubmitSm, doubt: &mut Doubt) -> Result<String, Failure> {
        let config = &self.inner.config;
        let mut wait = Duration::from_millis(100);
        let mut last = Failure::transient(format!("{} was not tried", self.system()));
        let mut this_in_doubt = false;
        for attempt in 1..=config.attempts.max(1) {
            if attempt > 1 {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(2));
            }
            if this_in_doubt {
                doubt.resent += 1;
            }
            match self.submit_once(&sm).await {
                Ok(id) => return Ok(id),
                Err(Refused::InDoubt(f)) => {
                    tracing::warn!(attempt, operator = %config.operator, reason = %f.reason, "submit_sm in doubt: the SMS centre may have taken it; it is sent again");
                    doubt.in_doubt += 1;
                    this_in_doubt = true;
                    last = f;
                }
                Err(Refused::Answered(f)) if f.kind == FailureKind::Transient => {
                    tracing::debug!(attempt, reason = %f.reason, "submit_sm to be tried again");
                    last = f;
                }
                Err(Refused::Answered(f)) => return Err(f),
            }
        }
        Err(last)
    }

    /// One `submit_sm`: its message id, or why not, and whether the SMS centre may have taken
    /// it all the same ([`Refused::InDoubt`]).
    async fn submit_once(&self, sm: &SubmitSm) -> Result<String, Refused> {
        let config = &self.inner.config;
        let system = self.system();
        let _permit =
            self.inner.window.acquire().await.map_err(|_| {
                Refused::Answered(Failure::transient(format!("{system} is closed")))
            })?;
        self.inner.pace().await;
        let link = self
            .inner
            .current_link(config.response_timeout)
            .await
            .ok_or_else(|| {
                Refused::Answered(Failure::transient(format!("{system} is not bound")))
            })?;
        let answer = link.request(Pdu::SubmitSm(sm.clone()));
        let answer = tokio::time::timeout(config.response_timeout, answer)
            .await
            .map_err(|_| {
                Refused::InDoubt(Failure::transient(format!(
                    "{system} did not answer a submit_sm in time"
                )))
            })?
            .ok_or_else(|| {
                Refused::InDoubt(Failure::transient(format!(
                    "{system}: the connection was lost before the answer"
                )))
            })?;
        if answer.status != CommandStatus::EsmeRok {
            return Err(Refused::Answered(refusal(&system, answer.status)));
        }
        match answer.pdu() {
            Some(Pdu::SubmitSmResp(resp)) if !resp.message_id().as_str().is_empty() => {
                Ok(resp.message_id().as_str().to_owned())
            }
            // Taken, by the look of it, but with no id the receipts could be matched to.
            _ => Err(Refused::Answered(Failure::permanent(format!(
                "{system} answered a submit_sm without a message_id"
            )))),
        }
    }
}

/// What [`SmppClient::send_counted`] did.
#[derive(Debug)]
pub struct Counted {
    /// The SMS centre's answer: the message id of the first part, or why not.
    pub result: Result<SentSms, Failure>,
    /// How many `submit_sm` the SMS centre may have taken without the client learning it (the
    /// connection lost, or no answer in time).
    pub in_doubt: u32,
    /// How many `submit_sm` were sent again after one of those: each may show on the phone a
    /// second time.
    pub resent_in_doubt: u32,
}

/// The in-doubt submits of one send, counted as it goes.
#[derive(Debug, Default)]
struct Doubt {
    in_doubt: u32,
    resent: u32,
}

/// Why one `submit_sm` gave no message id.
enum Refused {
    /// The SMS centre answered: it did not take the message.
    Answered(Failure),
    /// No answer came (the connection was lost, or the wait ran out): it may have taken it.
    InDoubt(Failure),
}

impl Inner {
    fn tracker(&self) -> std::sync::MutexGuard<'_, tracker::Tracker> {
        self.tracker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sends the reports a receipt or an answer completed.
    fn emit(&self, reports: Vec<DeliveryReport>) {
        for report in reports {
            tracing::info!(
                phone = %report.to.masked(),
                operator = %self.config.operator,
                provider_message_id = %report.provider_message_id,
                delivered = report.delivered,
                "SMS delivery report over SMPP"
            );
            // Nobody listening is the caller's choice; the report is not kept.
            let _ = self.reports.send(report);
        }
    }

    /// Waits for this `submit_sm`'s slot under the throughput limit.
    async fn pace(&self) {
        let gap = Duration::from_secs(1) / self.config.throughput.max(1);
        let slot = {
            let mut next = self.next_slot.lock().await;
            let slot = (*next).max(Instant::now());
            *next = slot + gap;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }

    /// The bound connection, waiting up to `wait` for one.
    async fn current_link(&self, wait: Duration) -> Option<session::Link> {
        let mut link = self.link.subscribe();
        let found = tokio::time::timeout(wait, link.wait_for(Option::is_some)).await;
        found.ok()?.ok()?.clone()
    }
}

/// `SMS centre a1`.
fn system(operator: Operator) -> String {
    format!("SMS centre {operator}")
}

/// The failure of a `submit_sm` the SMS centre refused with `status`.
fn refusal(system: &str, status: CommandStatus) -> Failure {
    match status {
        CommandStatus::EsmeRinvdstadr => Failure::permanent(NOT_OUR_SUBSCRIBER),
        CommandStatus::EsmeRxPAppn => Failure::permanent(SUBSCRIBER_BLOCKED),
        status => Failure::new(
            wire::classify(status),
            format!("{system} answered {}", wire::status_name(status)),
        ),
    }
}
