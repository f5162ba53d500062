//! The SMS worker: the operators' subscriber check and sending. The text of an SMS arrives
//! sealed; it is opened here, just before the call, and never logged or stored.
//!
//! It also keeps the **per-phone limits** ([`PhoneLimits`]) that every SMS and every code is held
//! to, whoever asked (a saga, the cabinet):
//!
//! - at most `HUB_SMS_PER_PHONE` SMS to one number in a rolling window: over it the SMS is not
//!   sent and the requester gets the usual [`SmsNotSent`], so nothing waits for it;
//! - no further code (phone confirmation, recovery) to a number for which
//!   `HUB_WRONG_CODES_PER_PHONE` wrong codes were typed in the window, counted from
//!   `sms.wrong_code.v1` (the sagas) and by the cabinet, over every application and account;
//! - the cabinet's own recovery codes per number (see [`crate::cabinet`]).
//!
//! The counts live in PostgreSQL (`phone_events`), so every hub process sees the same ones; a
//! check and the event it admits are one transaction under a per-phone advisory lock. A number is
//! kept only as its HMAC-SHA256 under a key derived from `HUB_SEAL_KEY` (a plain hash of a
//! 12-digit number is reversed by trying them all).

use std::sync::Arc;
use std::time::Duration;

use adapters::Failure;
use adapters::smpp::SmppClient;
use adapters::sms::{SentSms, SmsClient};
use chrono::{DateTime, Utc};
use contracts::person::Msisdn;
use contracts::person::Operator;
use contracts::sms::{
    CheckSubscriber, DeliveryReported, NotSentReason, NotifyHolder, SendSms, SmsNotSent,
    SmsPurpose, SmsSent, SubscriberChecked, SubscriberStatus, WrongCode,
};
use contracts::{Message, decode};
use futures_util::future::BoxFuture;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use sqlx::{PgConnection, PgPool};
use url::Url;
use uuid::Uuid;

use super::smpp::{Receipts, SmppOperators};
use crate::config::LimitsConfig;
use crate::external::{first_callback, release_callback};
use crate::metrics::portal_metrics;
use hub_runtime::broker::Incoming;
use hub_runtime::engine::db_failure;
use hub_runtime::engine::{Command, Service};
use hub_runtime::metrics::{external_call, metrics};
use hub_runtime::secrets::Sealer;

/// What a per-phone limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhoneEvent {
    /// An SMS admitted for sending.
    Sms,
    /// A password recovery code issued.
    RecoveryCode,
    /// A wrong code typed.
    WrongCode,
}

impl PhoneEvent {
    /// The `kind` in `phone_events`.
    fn kind(self) -> &'static str {
        match self {
            PhoneEvent::Sms => "sms",
            PhoneEvent::RecoveryCode => "recovery_code",
            PhoneEvent::WrongCode => "wrong_code",
        }
    }

    /// The limit's name, in logs and metric labels.
    pub fn limit_name(self) -> &'static str {
        match self {
            PhoneEvent::Sms => "sms_per_phone",
            PhoneEvent::RecoveryCode => "recovery_codes_per_phone",
            PhoneEvent::WrongCode => "wrong_codes_per_phone",
        }
    }
}

/// At most `max` events in any `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Events allowed in the window (at least 1).
    pub max: u32,
    /// The rolling window.
    pub window: Duration,
}

impl Limit {
    fn window_ms(self) -> i64 {
        i64::try_from(self.window.as_millis()).unwrap_or(i64::MAX)
    }
}

/// A phone number as the limits know it: the HMAC-SHA256 of the normalised number.
#[derive(Clone, PartialEq, Eq)]
pub struct PhoneKey([u8; 32]);

impl PhoneKey {
    /// The bytes stored in `phone_events.phone_key`.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The two halves of the per-phone advisory lock (class, object).
    fn lock_ids(&self) -> (i32, i32) {
        const CLASS: i32 = i32::from_be_bytes(*b"phon");
        let [a, b, c, d, ..] = self.0;
        (CLASS, i32::from_be_bytes([a, b, c, d]))
    }

    /// From stored bytes (`None` unless 32 of them).
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }
}

impl std::fmt::Debug for PhoneKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PhoneKey(..)")
    }
}

/// The per-phone limits and the key that pseudonymises numbers for them.
#[derive(Clone)]
pub struct PhoneLimits {
    key: [u8; 32],
    sms: Limit,
    recovery_codes: Limit,
    wrong_codes: Limit,
}

impl std::fmt::Debug for PhoneLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PhoneLimits")
            .field("sms", &self.sms)
            .field("recovery_codes", &self.recovery_codes)
            .field("wrong_codes", &self.wrong_codes)
            .finish_non_exhaustive()
    }
}

/// Used to derive the key when `HUB_SEAL_KEY` is not set: a constant in the repository, so the
/// stored phone keys of a hub without one can be reversed by hashing every number (announced at
/// start, refused in production mode).
pub const DEV_KEY_MATERIAL: &str = "dev-only-phone-limits-key";

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        // HMAC takes a key of any length; an empty key is what this means to it anyway.
        Err(_) => Hmac::<Sha256>::new(&Default::default()),
    };
    mac.update(data);
    let mut out = [0u8; 32];
    out.copy_from_slice(&mac.finalize().into_bytes());
    out
}

impl PhoneLimits {
    /// The configured limits, with a key derived from the hub's sealing key (`HUB_SEAL_KEY`, as
    /// configured): a key of its own for this one use, so a phone key says nothing about the
    /// sealing key. A new sealing key starts the counts afresh (at most one window is lost).
    pub fn new(config: &LimitsConfig, seal_key: Option<&str>) -> Self {
        let material = seal_key
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .unwrap_or(DEV_KEY_MATERIAL);
        Self {
            key: hmac_sha256(material.as_bytes(), b"hub/phone-limits/v1"),
            sms: Limit {
                max: config.sms_per_phone.max(1),
                window: config.sms_window,
            },
            recovery_codes: Limit {
                max: config.recovery_codes_per_phone.max(1),
                window: config.recovery_codes_window,
            },
            wrong_codes: Limit {
                max: config.wrong_codes_per_phone.max(1),
                window: config.wrong_codes_window,
            },
        }
    }

    /// The limit on `event`.
    pub fn limit(&self, event: PhoneEvent) -> Limit {
        match event {
            PhoneEvent::Sms => self.sms,
            PhoneEvent::RecoveryCode => self.recovery_codes,
            PhoneEvent::WrongCode => self.wrong_codes,
        }
    }

    /// The key of `phone`.
    pub fn key(&self, phone: &Msisdn) -> PhoneKey {
        PhoneKey(hmac_sha256(&self.key, phone.as_str().as_bytes()))
    }

    /// Serialises the checks and records of one phone until the transaction ends, across every
    /// hub process: a check and what it admits are then one step.
    pub async fn lock(&self, conn: &mut PgConnection, phone: &PhoneKey) -> sqlx::Result<()> {
        let (class, object) = phone.lock_ids();
        sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
            .bind(class)
            .bind(object)
            .execute(&mut *conn)
            .await
            .map(|_| ())
    }

    /// Whether `event`'s limit is reached for `phone`: `Some(until)`, the time the oldest
    /// counted event leaves the window and one more is allowed; `None` while one more is.
    pub async fn reached(
        &self,
        conn: &mut PgConnection,
        phone: &PhoneKey,
        event: PhoneEvent,
    ) -> sqlx::Result<Option<DateTime<Utc>>> {
        let limit = self.limit(event);
        // The max-th newest event in the window: if there is one, the window is full until it
        // leaves.
        let at: Option<DateTime<Utc>> = sqlx::query_scalar(
            "SELECT at FROM phone_events
             WHERE phone_key = $1 AND kind = $2 AND at > now() - $3 * interval '1 millisecond'
             ORDER BY at DESC OFFSET $4 LIMIT 1",
        )
        .bind(phone.as_bytes())
        .bind(event.kind())
        .bind(limit.window_ms())
        .bind(i64::from(limit.max.saturating_sub(1)))
        .fetch_optional(&mut *conn)
        .await?;
        let window = chrono::Duration::from_std(limit.window).unwrap_or(chrono::Duration::MAX);
        Ok(at.map(|at| {
            at.checked_add_signed(window)
                .unwrap_or(DateTime::<Utc>::MAX_UTC)
        }))
    }

    /// Records one `event` for `phone`, once per `cause` (a message id), and sweeps a few
    /// expired events of the same kind so the table holds about one window of them.
    pub async fn record(
        &self,
        conn: &mut PgConnection,
        phone: &PhoneKey,
        event: PhoneEvent,
        cause: Option<Uuid>,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "WITH swept AS (
                 DELETE FROM phone_events WHERE id IN (
                     SELECT id FROM phone_events
                     WHERE kind = $2 AND at <= now() - $4 * interval '1 millisecond'
                     ORDER BY at LIMIT 64 FOR UPDATE SKIP LOCKED))
             INSERT INTO phone_events (phone_key, kind, message_id) VALUES ($1, $2, $3)
             ON CONFLICT (kind, message_id) WHERE message_id IS NOT NULL DO NOTHING",
        )
        .bind(phone.as_bytes())
        .bind(event.kind())
        .bind(cause)
        .bind(self.limit(event).window_ms())
        .execute(&mut *conn)
        .await
        .map(|_| ())
    }

    /// Admits the SMS `message_id` for `purpose` to `phone`, or says which limit holds it back
    /// and until when. A redelivered message that was admitted is admitted again, uncounted.
    async fn admit(
        &self,
        pool: &PgPool,
        phone: &PhoneKey,
        purpose: SmsPurpose,
        message_id: Uuid,
    ) -> sqlx::Result<Option<(PhoneEvent, DateTime<Utc>)>> {
        let mut tx = pool.begin().await?;
        self.lock(&mut tx, phone).await?;
        let admitted: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM phone_events WHERE kind = $1 AND message_id = $2)",
        )
        .bind(PhoneEvent::Sms.kind())
        .bind(message_id)
        .fetch_one(&mut *tx)
        .await?;
        if admitted {
            return Ok(None);
        }
        let carries_code = matches!(purpose, SmsPurpose::PhoneCode | SmsPurpose::RecoveryCode);
        if carries_code
            && let Some(until) = self.reached(&mut tx, phone, PhoneEvent::WrongCode).await?
        {
            return Ok(Some((PhoneEvent::WrongCode, until)));
        }
        if let Some(until) = self.reached(&mut tx, phone, PhoneEvent::Sms).await? {
            return Ok(Some((PhoneEvent::Sms, until)));
        }
        self.record(&mut tx, phone, PhoneEvent::Sms, Some(message_id))
            .await?;
        tx.commit().await?;
        Ok(None)
    }
}

/// The label of an SMS purpose in metrics.
pub fn purpose_label(purpose: SmsPurpose) -> &'static str {
    match purpose {
        SmsPurpose::PhoneCode => "phone_code",
        SmsPurpose::TemporaryPassword => "temporary_password",
        SmsPurpose::RecoveryCode => "recovery_code",
        SmsPurpose::Notice => "notice",
    }
}

/// The worker's queue (short name).
pub const QUEUE: &str = "adapter.sms";

/// The queue and the commands it takes.
pub fn queue_spec() -> contracts::QueueSpec {
    contracts::QueueSpec::new(
        QUEUE,
        [
            CheckSubscriber::TYPE.to_string(),
            SendSms::TYPE.to_string(),
            NotifyHolder::TYPE.to_string(),
            WrongCode::TYPE.to_string(),
        ],
    )
}

/// Talks to the mobile operators.
#[derive(Debug, Clone)]
pub struct SmsWorker {
    client: SmsClient,
    sealer: Arc<Sealer>,
    /// Where the registry keeps the holders' phones (`sms.notify_holder.v1`).
    pool: PgPool,
    /// Where operators post delivery reports (`{base}callbacks/sms/{operator}`), if anywhere.
    callback_base: Option<Url>,
    /// The per-phone limits every SMS is held to.
    limits: PhoneLimits,
    /// The operators on SMPP, whose SMS go through their SMS centre instead of `client`.
    smpp: Arc<SmppOperators>,
}

impl SmsWorker {
    /// A worker using `client`, opening texts with `sealer`, holding every SMS to `limits`.
    pub fn new(
        client: SmsClient,
        sealer: Arc<Sealer>,
        pool: PgPool,
        callback_base: Option<Url>,
        limits: PhoneLimits,
    ) -> Self {
        Self {
            client,
            sealer,
            pool,
            callback_base,
            limits,
            smpp: Arc::new(SmppOperators::default()),
        }
    }

    /// The same worker, sending through `smpp`'s SMS centres for the operators on SMPP
    /// (started with `receipts`: the clients and their receipts' recording, once per process).
    pub fn with_smpp(mut self, smpp: Arc<SmppOperators>, receipts: &Receipts) -> Self {
        smpp.start(receipts);
        self.smpp = smpp;
        self
    }
}

/// What the call came to.
#[derive(Debug)]
pub enum SmsOutcome {
    /// A subscriber check's answer.
    Checked(SubscriberChecked),
    /// Accepted by the operator, for the recipient of this key: the key is kept with the
    /// operator's message id, so that a delivery report about another number is refused.
    Sent(SmsSent, PhoneKey),
    /// Refused by the operator for good, or held back by a per-phone limit.
    NotSent(SmsNotSent),
    /// A wrong code typed for this phone, to be counted.
    WrongCode(PhoneKey),
}

impl SmsWorker {
    /// Holds the SMS `message` to the per-phone limits: `Some` answer when it must not be sent
    /// (logged with the number masked, counted in `hub_sms_capped_total`).
    async fn over_limit(
        &self,
        message: &Incoming,
        to: &Msisdn,
        purpose: SmsPurpose,
    ) -> Result<Option<SmsNotSent>, Failure> {
        let key = self.limits.key(to);
        let held = self
            .limits
            .admit(&self.pool, &key, purpose, message.metadata.message_id)
            .await
            .map_err(|e| db_failure(&e))?;
        let Some((event, until)) = held else {
            return Ok(None);
        };
        let limit = self.limits.limit(event);
        tracing::warn!(
            phone = %to.masked(),
            purpose = purpose_label(purpose),
            limit = event.limit_name(),
            max = limit.max,
            window_secs = limit.window.as_secs(),
            %until,
            "SMS not sent: a per-phone limit is reached"
        );
        portal_metrics().sms_capped(purpose_label(purpose), event.limit_name());
        Ok(Some(SmsNotSent::new(
            purpose,
            match event {
                PhoneEvent::WrongCode => NotSentReason::WrongCodesPerPhoneReached,
                PhoneEvent::Sms | PhoneEvent::RecoveryCode => NotSentReason::SmsPerPhoneReached,
            },
        )))
    }

    /// The client, sending the message's trace context along.
    fn client(&self, message: &Incoming) -> SmsClient {
        self.client
            .clone()
            .with_traceparent(message.metadata.traceparent.as_deref())
    }

    /// `sms.send.v1`: held to the limits, its operator found, its text opened and sent.
    async fn send_sms(&self, message: &Incoming, cmd: &SendSms) -> Result<SmsOutcome, Failure> {
        let to = Msisdn::parse(&cmd.to).map_err(|e| Failure::invalid_input(e.to_string()))?;
        // Before anything is asked of the operators: a flood costs them nothing either.
        if let Some(held) = self.over_limit(message, &to, cmd.purpose).await? {
            return Ok(SmsOutcome::NotSent(held));
        }
        // Without a known operator, ask the operators (a ported number is not where its prefix
        // says).
        let operator = match cmd.operator {
            Some(o) => o,
            None => {
                let client = self.client(message);
                let asked = external_call("sms", "subscriber", client.subscriber(&to));
                match asked.await? {
                    Some(s) => s.operator,
                    None => {
                        return Ok(SmsOutcome::NotSent(SmsNotSent::new(
                            cmd.purpose,
                            NotSentReason::NoOperator,
                        )));
                    }
                }
            }
        };
        let text = self.sealer.open(&cmd.text)?;
        // An HTTP gateway gets the callback URL in the body it compares under the key: the one
        // this command first went out with, whichever process sent it. An SMS centre reports
        // over its bind.
        let callback = if self.smpp.uses(operator) {
            None
        } else {
            let ours = self
                .callback_base
                .as_ref()
                .and_then(|b| b.join(&format!("callbacks/sms/{operator}")).ok());
            first_callback(&self.pool, message.metadata.message_id, ours.as_ref()).await?
        };
        match self
            .send(message, operator, &to, &text, callback.as_ref())
            .await
        {
            Ok(sent) => Ok(SmsOutcome::Sent(
                SmsSent {
                    purpose: cmd.purpose,
                    operator: sent.operator,
                    provider_message_id: sent.provider_message_id,
                },
                self.limits.key(&to),
            )),
            // The operator refuses for good (blocked, not its subscriber): the saga decides what
            // that means.
            Err(f) if !f.is_transient() => Ok(SmsOutcome::NotSent(SmsNotSent {
                purpose: cmd.purpose,
                reason: NotSentReason::Refused,
                detail: Some(f.reason),
            })),
            Err(f) => Err(f),
        }
    }

    /// Sends `text` to `to` through `operator`: over SMPP when the operator is on SMPP
    /// ([`Self::send_smpp`]), else through its HTTP gateway with the command's message id as the
    /// idempotency key.
    async fn send(
        &self,
        message: &Incoming,
        operator: Operator,
        to: &Msisdn,
        text: &str,
        callback: Option<&Url>,
    ) -> Result<SentSms, Failure> {
        if self.smpp.uses(operator) {
            let client = self.smpp.client(operator).ok_or_else(|| {
                Failure::transient(format!("the SMS centre of {operator} is not started"))
            })?;
            return self
                .send_smpp(&client, message.metadata.message_id, to, text)
                .await;
        }
        let client = self.client(message);
        let sent = client.send(message.metadata.message_id, operator, to, text, callback);
        external_call("sms", "send", sent).await
    }

    /// Sends over SMPP at most once per command, as far as the hub can tell, and counts what
    /// it cannot tell.
    ///
    /// SMPP has no idempotency key, so the hub keeps its own: the command's message id
    /// (`command`) gets a row in `smpp_sends`, committed before anything goes to the SMS centre,
    /// and the row gets the SMS centre's message id as soon as the centre took the SMS, before
    /// the command is answered and acked. A redelivered command (the process died, the answer's
    /// transaction failed, the broker lost the ack) that finds the id is answered with the
    /// recorded send; nothing goes to the SMS centre again. The receipts are matched by that id
    /// (`sms_messages`, written when the command is answered).
    ///
    /// What SMPP leaves at-least-once is made visible instead: a row found without the id is a
    /// send whose fate is unknown (the process died while it was under way, or the centre's
    /// answers were lost with the connection). The command is sent again, as nothing else
    /// reaches the phone, with a warning, and the resend is counted in the row
    /// (`resent_in_doubt`) with the recipient's pseudonym, as are the client's own resends after
    /// a lost answer. A repeated SMS on a phone is then either explained by those counts or a
    /// bug (the chaos run's checker tells them apart). A send the centre refused outright takes
    /// its row out again, so its retry is not in doubt.
    async fn send_smpp(
        &self,
        client: &SmppClient,
        command: Uuid,
        to: &Msisdn,
        text: &str,
    ) -> Result<SentSms, Failure> {
        let operator = client.operator();
        let phone_key = self.limits.key(to);
        // One statement: the existing row when there is one (the insert then does nothing), else
        // the new row, committed before the submit. The sweep keeps the table to 30 days.
        let existing: Option<(Option<String>,)> = sqlx::query_as(
            "WITH swept AS (
                 DELETE FROM smpp_sends WHERE message_id IN (
                     SELECT message_id FROM smpp_sends WHERE sent_at < now() - interval '30 days'
                     ORDER BY sent_at LIMIT 64 FOR UPDATE SKIP LOCKED)),
             ins AS (
                 INSERT INTO smpp_sends (message_id, operator, phone_key)
                 VALUES ($1, $2, $3) ON CONFLICT (message_id) DO NOTHING RETURNING 1)
             SELECT provider_message_id FROM smpp_sends
              WHERE message_id = $1 AND NOT EXISTS (SELECT 1 FROM ins)",
        )
        .bind(command)
        .bind(operator.to_string())
        .bind(phone_key.as_bytes())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| db_failure(&e))?;
        let earlier_in_doubt = match existing {
            Some((Some(provider_message_id),)) => {
                tracing::info!(
                    phone = %to.masked(),
                    %operator,
                    %provider_message_id,
                    "SMS already sent over SMPP for this command; not sent again"
                );
                return Ok(SentSms {
                    operator,
                    provider_message_id,
                });
            }
            Some((None,)) => {
                tracing::warn!(
                    phone = %to.masked(),
                    %operator,
                    command = %command,
                    "an earlier send of this command over SMPP may have reached the SMS centre \
                     (its answer never came back); sending again, so the phone may show it twice"
                );
                true
            }
            None => false,
        };
        let started = std::time::Instant::now();
        let counted = client.send_counted(to, text).await;
        metrics().external_call("sms", "send", started.elapsed(), &counted.result);
        if counted.result.is_err() && counted.in_doubt == 0 {
            if !earlier_in_doubt {
                // The SMS centre answered every submit: nothing of this send is in doubt.
                sqlx::query(
                    "DELETE FROM smpp_sends WHERE message_id = $1 AND provider_message_id IS NULL",
                )
                .bind(command)
                .execute(&self.pool)
                .await
                .map_err(|e| db_failure(&e))?;
            }
            // Refused outright, so not a copy either; an earlier send's doubt stays recorded.
            return counted.result;
        }
        let resent = counted.resent_in_doubt + u32::from(earlier_in_doubt);
        if counted.in_doubt > 0 {
            tracing::warn!(phone = %to.masked(), %operator, in_doubt = counted.in_doubt, resent, "SMS submits in doubt over SMPP");
        }
        let result = counted.result;
        sqlx::query(
            "UPDATE smpp_sends
                SET provider_message_id = coalesce($2, provider_message_id),
                    resent_in_doubt = resent_in_doubt + $3,
                    sent_at = now()
              WHERE message_id = $1",
        )
        .bind(command)
        .bind(result.as_ref().ok().map(|s| s.provider_message_id.as_str()))
        .bind(i32::try_from(resent).unwrap_or(i32::MAX))
        .execute(&self.pool)
        .await
        .map_err(|e| db_failure(&e))?;
        result
    }

    async fn notify_holder(
        &self,
        message: &Incoming,
        cmd: &NotifyHolder,
    ) -> Result<SmsOutcome, Failure> {
        let not_sent = |reason, detail: Option<String>| {
            Ok(SmsOutcome::NotSent(SmsNotSent {
                purpose: SmsPurpose::Notice,
                reason,
                detail,
            }))
        };
        let phone: Option<String> =
            sqlx::query_scalar("SELECT phone FROM identifiers WHERE identifier = $1")
                .bind(&cmd.identifier)
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| db_failure(&e))?;
        let Some(to) = phone.and_then(|p| Msisdn::parse(&p).ok()) else {
            // An applicant who logged in another way has no phone here: the cabinet shows the
            // notice, the SMS is skipped.
            tracing::info!("no phone for the holder; the notice SMS is skipped");
            return not_sent(NotSentReason::NoPhone, None);
        };
        if let Some(held) = self.over_limit(message, &to, SmsPurpose::Notice).await? {
            return Ok(SmsOutcome::NotSent(held));
        }
        let client = self.client(message);
        let asked = external_call("sms", "subscriber", client.subscriber(&to));
        let Some(subscriber) = asked.await? else {
            return not_sent(NotSentReason::NoOperator, None);
        };
        let sent = self.send(message, subscriber.operator, &to, &cmd.text, None);
        match sent.await {
            Ok(s) => Ok(SmsOutcome::Sent(
                SmsSent {
                    purpose: SmsPurpose::Notice,
                    operator: s.operator,
                    provider_message_id: s.provider_message_id,
                },
                self.limits.key(&to),
            )),
            Err(f) if !f.is_transient() => not_sent(NotSentReason::Refused, Some(f.reason)),
            Err(f) => Err(f),
        }
    }
}

impl Service for SmsWorker {
    type Prepared = SmsOutcome;

    fn name(&self) -> &'static str {
        "adapter.sms"
    }

    fn prepare<'a>(&'a self, message: &'a Incoming) -> BoxFuture<'a, Result<SmsOutcome, Failure>> {
        Box::pin(async move {
            let t = message.metadata.message_type.as_str();
            if CheckSubscriber::TYPE.matches(t) {
                let cmd: CheckSubscriber = decode(t, &message.body)?;
                let phone =
                    Msisdn::parse(&cmd.phone).map_err(|e| Failure::invalid_input(e.to_string()))?;
                let client = self.client(message);
                let subscriber = external_call("sms", "subscriber", client.subscriber(&phone));
                let answer = match subscriber.await? {
                    None => SubscriberChecked {
                        status: SubscriberStatus::Unknown,
                        operator: None,
                    },
                    Some(s) => SubscriberChecked {
                        status: if s.blocked {
                            SubscriberStatus::Blocked
                        } else {
                            SubscriberStatus::Active
                        },
                        operator: Some(s.operator),
                    },
                };
                Ok(SmsOutcome::Checked(answer))
            } else if SendSms::TYPE.matches(t) {
                let cmd: SendSms = decode(t, &message.body)?;
                self.send_sms(message, &cmd).await
            } else if NotifyHolder::TYPE.matches(t) {
                let cmd: NotifyHolder = decode(t, &message.body)?;
                self.notify_holder(message, &cmd).await
            } else if WrongCode::TYPE.matches(t) {
                let cmd: WrongCode = decode(t, &message.body)?;
                let phone =
                    Msisdn::parse(&cmd.phone).map_err(|e| Failure::invalid_input(e.to_string()))?;
                Ok(SmsOutcome::WrongCode(self.limits.key(&phone)))
            } else {
                Err(Failure::invalid_input(format!(
                    "the SMS worker does not take {t}"
                )))
            }
        })
    }

    fn apply<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        message: &'a Incoming,
        outcome: SmsOutcome,
    ) -> BoxFuture<'a, Result<Vec<Command>, Failure>> {
        Box::pin(async move {
            // Nobody asked for an answer (a detached notification): record, answer nobody.
            let answer_wanted = message.metadata.reply_to.is_some();
            if SendSms::TYPE.matches(&message.metadata.message_type) {
                // Answered (sent, refused or held back): never sent again.
                release_callback(conn, message.metadata.message_id).await?;
            }
            let answers = vec![match outcome {
                SmsOutcome::WrongCode(phone) => {
                    // Counted in the inbox transaction: once per message, however redelivered.
                    self.limits
                        .record(
                            conn,
                            &phone,
                            PhoneEvent::WrongCode,
                            Some(message.metadata.message_id),
                        )
                        .await
                        .map_err(|e| db_failure(&e))?;
                    return Ok(Vec::new());
                }
                SmsOutcome::Checked(c) => Command::new(&c)?,
                SmsOutcome::NotSent(n) => Command::new(&n)?,
                SmsOutcome::Sent(s, to) => {
                    // Remember who asked, so the operator's delivery report finds its saga, and
                    // to whom (as the limits' key, never the number), so that a report about
                    // another number is refused.
                    sqlx::query(
                        "INSERT INTO sms_messages (provider_message_id, operator, purpose, correlation_id, reply_to, to_key)
                         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                    )
                    .bind(&s.provider_message_id)
                    .bind(s.operator.to_string())
                    .bind(serde_json::to_value(s.purpose).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default())
                    .bind(message.metadata.correlation_id.as_deref())
                    .bind(message.metadata.reply_to.as_deref())
                    .bind(to.as_bytes())
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| db_failure(&e))?;
                    let early = take_early_reports(conn, &s, &to).await?;
                    let mut answers = vec![Command::new(&s)?];
                    // After the `SmsSent`, so the saga hears of the send before its fate.
                    for report in &early {
                        answers.push(Command::new(report)?);
                    }
                    return Ok(if answer_wanted { answers } else { Vec::new() });
                }
            }];
            Ok(if answer_wanted { answers } else { Vec::new() })
        })
    }
}

/// The delivery reports the operator posted for `sent` before this send was recorded (see
/// [`super::callback`]), taken out of `sms_early_reports`: those about its recipient become the
/// saga's `sms.delivery_reported.v1`; one about another number is dropped, as the callback would
/// have refused it.
async fn take_early_reports(
    conn: &mut PgConnection,
    sent: &SmsSent,
    to: &PhoneKey,
) -> Result<Vec<DeliveryReported>, Failure> {
    let rows: Vec<(bool, Vec<u8>, DateTime<Utc>)> = sqlx::query_as(
        "DELETE FROM sms_early_reports WHERE operator = $1 AND provider_message_id = $2
         RETURNING delivered, to_key, at",
    )
    .bind(sent.operator.to_string())
    .bind(&sent.provider_message_id)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| db_failure(&e))?;
    let mut reports = Vec::with_capacity(rows.len());
    for (delivered, to_key, at) in rows {
        if to_key != to.as_bytes() {
            tracing::warn!(
                operator = %sent.operator,
                "early SMS delivery report about another number than the message's; dropped"
            );
            continue;
        }
        reports.push(DeliveryReported {
            purpose: sent.purpose,
            provider_message_id: sent.provider_message_id.clone(),
            delivered,
            at,
        });
    }
    // A failure before a delivery in time: the saga keeps whichever comes last.
    reports.sort_by_key(|r| (r.at, r.delivered));
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(seal_key: Option<&str>) -> PhoneLimits {
        PhoneLimits::new(&LimitsConfig::default(), seal_key)
    }

    #[test]
    fn a_phone_key_is_keyed_and_says_nothing_of_the_number() {
        let phone = Msisdn::parse("+375 29 123-45-67").expect("phone");
        let same = Msisdn::parse("80291234567").expect("phone");
        let a = limits(Some("k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="));
        assert_eq!(
            a.key(&phone),
            a.key(&same),
            "keyed by the normalised number"
        );
        let other_key = limits(Some("k2:AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="));
        assert_ne!(
            a.key(&phone),
            other_key.key(&phone),
            "another hub key, another phone key"
        );
        use sha2::Digest;
        let plain = Sha256::digest(phone.as_str().as_bytes());
        assert_ne!(
            a.key(&phone).as_bytes(),
            plain.as_slice(),
            "not a plain hash"
        );
        let shown = format!("{:?} {a:?}", a.key(&phone));
        assert!(
            !shown.contains("1234567") && !shown.contains("key: "),
            "{shown}"
        );
        assert_eq!(
            PhoneKey::from_bytes(a.key(&phone).as_bytes()),
            Some(a.key(&phone))
        );
    }

    #[test]
    fn limits_come_from_the_configuration() {
        let l = limits(None);
        assert_eq!(
            l.limit(PhoneEvent::Sms),
            Limit {
                max: 10,
                window: Duration::from_secs(3600)
            }
        );
        assert_eq!(l.limit(PhoneEvent::RecoveryCode).max, 3);
        assert_eq!(
            l.limit(PhoneEvent::WrongCode).window,
            Duration::from_secs(24 * 3600)
        );
        assert_eq!(PhoneEvent::Sms.limit_name(), "sms_per_phone");
        assert_eq!(purpose_label(SmsPurpose::RecoveryCode), "recovery_code");
    }
}
