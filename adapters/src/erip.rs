//! ERIP, the payment system administrative procedures are paid through: registering an invoice
//! by account number (the hub's order number), asking its status, cancelling and refunding it,
//! and verifying the signed notifications ERIP posts on every status change.
//!
//! The hub learns of a payment from a notification, and a forged "paid" would grant a procedure
//! for free, so [`verify_notification`] checks the HMAC-SHA256 signature over the exact body
//! bytes, in constant time, before it even parses them. ERIP's refusals that a saga decides on
//! (a duplicate account number, an invoice already paid, expired or not paid) are permanent
//! failures with the fixed reasons below, so a saga can tell them apart; everything else is
//! classified once ([`crate::failure`]): a busy or unreachable ERIP is transient (a few quick
//! retries with the same `Idempotency-Key` here, then the hub's delayed-retry tiers), an answer
//! outside the published contract is permanent.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use url::Url;
use uuid::Uuid;

use crate::api_url;
use crate::client::{Answer, ClientError, HttpClient};
use crate::failure::{
    Failure, QuickRetry, contract_violation, describe_json_error, quoted_code, unexpected_json,
};
use crate::signature;

/// How ERIP is named in failure reasons and logs.
const SYSTEM: &str = "ERIP";

/// The only currency of an ERIP invoice here: the Belarusian ruble (ISO 4217 933).
const CURRENCY_BYN: u64 = 933;

/// How many decimal digits an account number (an order number) has.
const ACCOUNT_DIGITS: usize = 30;

/// The longest description ERIP takes.
const MAX_DESCRIPTION_CHARS: usize = 255;

/// The longest invoice id this client sends in a path.
const MAX_INVOICE_ID_LEN: usize = 128;

/// The header carrying a notification's signature, `sha256=<hex HMAC-SHA256 of the body>`.
pub const SIGNATURE_HEADER: &str = "X-Erip-Signature";

/// The reason of the permanent failure when ERIP refuses an invoice because another one has
/// its account number (`409 duplicate_account_number`). A retried create must reuse its request
/// id to get the first answer back; a new request id for the same order gets this.
pub const DUPLICATE_ACCOUNT_NUMBER: &str = "duplicate account number";

/// The reason of the permanent failure when ERIP refuses to cancel an invoice that was paid
/// (`409 already_paid`): the money has moved, so it must be refunded instead.
pub const ALREADY_PAID: &str = "invoice already paid";

/// The reason of the permanent failure when ERIP refuses to cancel an invoice that expired
/// (`409 invoice_expired`): it can no longer be paid anyway.
pub const INVOICE_EXPIRED: &str = "invoice expired";

/// The reason of the permanent failure when ERIP refuses to refund an invoice that is not paid
/// (`409 not_paid`): an awaiting one is cancelled instead.
pub const NOT_PAID: &str = "invoice not paid";

/// The reason of the permanent failure when ERIP does not know the invoice id
/// (`404 unknown_invoice`).
pub const UNKNOWN_INVOICE: &str = "unknown invoice";

/// The reason of the invalid-input failure for a notification whose signature is missing,
/// malformed or wrong. It never says more: the body is not to be trusted, nor echoed.
pub const BAD_SIGNATURE: &str = signature::BAD_SIGNATURE;

/// How old a notification's signed `occurred_at` may be when it arrives. ERIP re-sends a
/// notification the hub has not acknowledged for hours, not days, so an older one is a captured
/// copy sent again (or a notice held back on the way) and is refused whatever its signature.
/// Three days also cover a hub that was down over a weekend.
pub const NOTIFICATION_MAX_AGE: Duration = Duration::from_secs(72 * 3600);

/// How far ahead of the hub's clock a notification's `occurred_at` may be (the two clocks
/// differ a little; ERIP never notifies a change before it happens).
pub const NOTIFICATION_CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// The words every refusal of a notification outside the acceptance window contains.
pub const OUTSIDE_WINDOW: &str = "outside the acceptance window";

/// A client of ERIP's invoice API (`/api/v1/invoices`).
#[derive(Clone, Debug)]
pub struct EripClient {
    http: HttpClient,
    base: Url,
}

/// An invoice to register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInvoice {
    /// The account number the payer pays by: the order number, 30 decimal digits.
    pub account_number: String,
    /// The amount due, in kopecks (above 0).
    pub amount_kopecks: u64,
    /// What the payer sees at the bank or terminal (1 to 255 characters).
    pub description: String,
    /// When the invoice stops being payable; ERIP expires it then.
    pub expires_at: DateTime<Utc>,
    /// Where ERIP posts the notifications; none are sent without it.
    pub notify_url: Option<Url>,
}

/// An invoice as ERIP holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    /// ERIP's id of the invoice (`erip-<uuid>`).
    pub invoice_id: String,
    /// The account number it was registered under.
    pub account_number: String,
    /// The amount due, in kopecks.
    pub amount_kopecks: u64,
    /// Where it is in its life.
    pub status: InvoiceStatus,
    /// The payment, once paid (also after a refund); `None` before.
    pub payment: Option<Payment>,
}

/// Where an invoice is in its life. `Expired`, `Cancelled` and `Refunded` are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceStatus {
    /// Registered, payable.
    Awaiting,
    /// Paid by the payer. In a notification: one payment (its operation number and amount),
    /// which may be part of the amount due, all of it, or more; several may come for one
    /// invoice.
    Paid,
    /// Its time passed unpaid.
    Expired,
    /// Cancelled by the provider before it was paid.
    Cancelled,
    /// Paid, then the payment was returned. In a notification: one payment (its operation
    /// number) was refunded.
    Refunded,
    /// In a notification: one payment (its operation number) was reversed by the bank
    /// (ERIP's reversal notice, message 216). Not an invoice's own status.
    Reversed,
}

impl InvoiceStatus {
    /// The wire name: `awaiting`, `paid`, `expired`, `cancelled`, `refunded`.
    pub fn as_str(self) -> &'static str {
        match self {
            InvoiceStatus::Awaiting => "awaiting",
            InvoiceStatus::Paid => "paid",
            InvoiceStatus::Expired => "expired",
            InvoiceStatus::Cancelled => "cancelled",
            InvoiceStatus::Refunded => "refunded",
            InvoiceStatus::Reversed => "reversed",
        }
    }

    /// The status of a wire name; `None` for a name outside the contract.
    fn parse(s: &str) -> Option<InvoiceStatus> {
        [
            InvoiceStatus::Awaiting,
            InvoiceStatus::Paid,
            InvoiceStatus::Expired,
            InvoiceStatus::Cancelled,
            InvoiceStatus::Refunded,
            InvoiceStatus::Reversed,
        ]
        .into_iter()
        .find(|status| status.as_str() == s)
    }

    /// Whether the status carries a payment (`paid`, `refunded`).
    fn has_payment(self) -> bool {
        matches!(
            self,
            InvoiceStatus::Paid | InvoiceStatus::Refunded | InvoiceStatus::Reversed
        )
    }
}

impl fmt::Display for InvoiceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A payment of an invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    /// ERIP's operation number: unique, it makes payment notices idempotent.
    pub operation_id: String,
    /// When the payer paid.
    pub paid_at: DateTime<Utc>,
    /// What the payer paid, in kopecks (compare it with the amount due).
    pub amount_kopecks: u64,
    /// Where the payer paid.
    pub channel: PaymentChannel,
}

/// Where a payer paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentChannel {
    /// At a bank's counter.
    Bank,
    /// At a payment terminal or ATM.
    Terminal,
    /// In an internet or mobile bank.
    InternetBanking,
}

impl PaymentChannel {
    /// The wire name: `bank`, `terminal`, `internet_banking`.
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentChannel::Bank => "bank",
            PaymentChannel::Terminal => "terminal",
            PaymentChannel::InternetBanking => "internet_banking",
        }
    }
}

/// A verified notification of an invoice's status change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EripNotification {
    /// Names the status change: a retried or duplicated notification has the same one.
    pub event_id: String,
    /// The invoice.
    pub invoice_id: String,
    /// Its account number (the order number).
    pub account_number: String,
    /// The new status; never `Awaiting`.
    pub status: InvoiceStatus,
    /// The amount paid for `Paid` and `Refunded`, else the amount due, in kopecks.
    pub amount_kopecks: u64,
    /// The payment's operation number: always there for `Paid` and `Refunded`, else `None`.
    pub operation_id: Option<String>,
    /// When the status changed.
    pub occurred_at: DateTime<Utc>,
}

impl EripClient {
    /// A client of ERIP at `base_url` (`http://127.0.0.1:8121` for the simulator). Every HTTP
    /// attempt is bounded by `timeout`; transient failures get [`QuickRetry::default`].
    ///
    /// Errors: the HTTP client cannot be built (a start-up error naming ERIP).
    pub fn new(base_url: Url, timeout: Duration) -> Result<Self, ClientError> {
        Ok(EripClient {
            http: HttpClient::new(SYSTEM, timeout)?,
            base: base_url,
        })
    }

    /// The same client with another in-process retry policy.
    pub fn with_retry(mut self, retry: QuickRetry) -> Self {
        self.http = self.http.with_retry(retry);
        self
    }

    /// The same client, its HTTPS verified against `tls`'s CA bundle (instead of the OS roots)
    /// and showing `tls`'s client certificate, if any ([`crate::tls`]).
    ///
    /// Errors: rustls refuses the settings (a start-up error naming ERIP).
    pub fn with_tls(mut self, tls: &crate::tls::ClientTls) -> Result<Self, ClientError> {
        self.http = self.http.retls(SYSTEM, tls)?;
        Ok(self)
    }

    /// The same client, sending `traceparent` (W3C trace context) with each of its calls, so
    /// the system's own logs join the trace of the message that caused them. `None`, or a value
    /// that cannot be a header, sends none.
    pub fn with_traceparent(mut self, traceparent: Option<&str>) -> Self {
        self.http = self.http.with_traceparent(traceparent);
        self
    }

    /// Registers an invoice. The same `request_id` (the command's message id) always gets the
    /// same answer, so a redelivered command registers it once.
    ///
    /// Errors: an account number that is not 30 digits, an amount of 0, a blank or too long
    /// description or a `notify_url` that is not http(s) is invalid input (nothing is sent);
    /// another invoice with this account number is permanent with the reason
    /// [`DUPLICATE_ACCOUNT_NUMBER`]; other refusals and answers outside the contract are
    /// permanent; timeouts, lost connections, 429 and 5xx are transient after the quick retries.
    pub async fn create_invoice(
        &self,
        request_id: Uuid,
        req: &NewInvoice,
    ) -> Result<Invoice, Failure> {
        validate(req)?;
        let endpoint = api_url(&self.base, "api/v1/invoices");
        let body = WireNewInvoice {
            account_number: &req.account_number,
            amount: req.amount_kopecks,
            currency: CURRENCY_BYN,
            description: req.description.trim(),
            expires_at: req.expires_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            notify_url: req.notify_url.as_ref().map(Url::as_str),
        };
        let result = self
            .http
            .run(SYSTEM, || async {
                let request = self
                    .http
                    .post(endpoint.clone())
                    .header("Idempotency-Key", request_id.to_string())
                    .json(&body);
                let body = accepted(self.http.send(SYSTEM, request).await?)?;
                let invoice = parse_invoice(&body)?;
                if invoice.account_number != req.account_number
                    || invoice.amount_kopecks != req.amount_kopecks
                {
                    return Err(contract_violation(
                        SYSTEM,
                        "answered a new invoice with another account number or amount",
                    ));
                }
                if invoice.status != InvoiceStatus::Awaiting {
                    return Err(contract_violation(
                        SYSTEM,
                        format!(
                            "answered a new invoice as {} (expected awaiting)",
                            invoice.status
                        ),
                    ));
                }
                Ok(invoice)
            })
            .await;
        log("invoice registered", &result, Some(request_id));
        result
    }

    /// The invoice now.
    ///
    /// Errors: an id that cannot be ERIP's is invalid input; an id ERIP does not know is
    /// permanent with the reason [`UNKNOWN_INVOICE`]; otherwise as [`Self::create_invoice`].
    pub async fn invoice(&self, invoice_id: &str) -> Result<Invoice, Failure> {
        check_invoice_id(invoice_id)?;
        let url = api_url(&self.base, &format!("api/v1/invoices/{invoice_id}"));
        let result = self
            .http
            .run(SYSTEM, || async {
                let request = self.http.get(url.clone());
                let body = accepted(self.http.send(SYSTEM, request).await?)?;
                parse_invoice_of(invoice_id, &body)
            })
            .await;
        log("invoice read", &result, None);
        result
    }

    /// Cancels an awaiting invoice: it can no longer be paid. Cancelling a cancelled one again
    /// answers it unchanged.
    ///
    /// Errors: a paid (or refunded) invoice is permanent with the reason [`ALREADY_PAID`] —
    /// refund it instead; an expired one permanent with [`INVOICE_EXPIRED`]; an unknown one
    /// [`UNKNOWN_INVOICE`]; otherwise as [`Self::create_invoice`].
    pub async fn cancel(&self, request_id: Uuid, invoice_id: &str) -> Result<Invoice, Failure> {
        self.change(request_id, invoice_id, "cancel", InvoiceStatus::Cancelled)
            .await
    }

    /// Refunds a paid invoice: the payment goes back to the payer. Refunding a refunded one
    /// again answers it unchanged.
    ///
    /// Errors: an invoice that is not paid (awaiting, expired, cancelled) is permanent with the
    /// reason [`NOT_PAID`]; an unknown one [`UNKNOWN_INVOICE`]; otherwise as
    /// [`Self::create_invoice`].
    pub async fn refund(&self, request_id: Uuid, invoice_id: &str) -> Result<Invoice, Failure> {
        self.change(request_id, invoice_id, "refund", InvoiceStatus::Refunded)
            .await
    }

    /// `POST /api/v1/invoices/{invoice_id}/{action}`, which must leave the invoice `expected`.
    async fn change(
        &self,
        request_id: Uuid,
        invoice_id: &str,
        action: &str,
        expected: InvoiceStatus,
    ) -> Result<Invoice, Failure> {
        check_invoice_id(invoice_id)?;
        let url = api_url(
            &self.base,
            &format!("api/v1/invoices/{invoice_id}/{action}"),
        );
        let result = self
            .http
            .run(SYSTEM, || async {
                let request = self
                    .http
                    .post(url.clone())
                    .header("Idempotency-Key", request_id.to_string());
                let body = accepted(self.http.send(SYSTEM, request).await?)?;
                let invoice = parse_invoice_of(invoice_id, &body)?;
                if invoice.status != expected {
                    return Err(contract_violation(
                        SYSTEM,
                        format!(
                            "answered a {action} with the status {} (expected {expected})",
                            invoice.status
                        ),
                    ));
                }
                Ok(invoice)
            })
            .await;
        let what = if expected == InvoiceStatus::Cancelled {
            "invoice cancelled"
        } else {
            "invoice refunded"
        };
        log(what, &result, Some(request_id));
        result
    }
}

/// The body of a success, else the failure its refusal means: ERIP's refusals that a saga
/// decides on get their fixed reasons, the others the generic one naming the status and code
/// (and keeping ERIP's `Retry-After`).
fn accepted(answer: Answer) -> Result<Vec<u8>, Failure> {
    let refusal = match answer {
        Answer::Success(body) => return Ok(body),
        Answer::Refused(refusal) => refusal,
    };
    let known = [
        (409, "duplicate_account_number", DUPLICATE_ACCOUNT_NUMBER),
        (409, "already_paid", ALREADY_PAID),
        (409, "invoice_expired", INVOICE_EXPIRED),
        (409, "not_paid", NOT_PAID),
        (404, "unknown_invoice", UNKNOWN_INVOICE),
    ]
    .into_iter()
    .find(|(status, code, _)| refusal.is(*status, code));
    Err(match known {
        Some((_, _, reason)) => Failure::permanent(reason),
        None => refusal.failure(SYSTEM),
    })
}

fn log(what: &str, result: &Result<Invoice, Failure>, request_id: Option<Uuid>) {
    match result {
        Ok(invoice) => tracing::info!(
            system = SYSTEM,
            invoice_id = %invoice.invoice_id,
            status = %invoice.status,
            request_id = ?request_id,
            "{what}"
        ),
        Err(f) => tracing::warn!(
            system = SYSTEM,
            request_id = ?request_id,
            kind = ?f.kind,
            reason = %f.reason,
            "ERIP call failed ({what})"
        ),
    }
}

/// Refuses what ERIP would refuse anyway, without a round trip and with a clearer reason.
fn validate(req: &NewInvoice) -> Result<(), Failure> {
    let invalid = |what: &str| Failure::invalid_input(format!("ERIP invoice: {what}"));
    if !is_account_number(&req.account_number) {
        return Err(invalid("account_number must be exactly 30 decimal digits"));
    }
    if req.amount_kopecks == 0 {
        return Err(invalid("amount must be above 0"));
    }
    let description = req.description.trim();
    if description.is_empty() || description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(invalid("description must be 1 to 255 characters"));
    }
    if let Some(url) = &req.notify_url
        && !matches!(url.scheme(), "http" | "https")
    {
        return Err(invalid("notify_url must be an http(s) URL"));
    }
    Ok(())
}

fn is_account_number(s: &str) -> bool {
    s.len() == ACCOUNT_DIGITS && s.bytes().all(|b| b.is_ascii_digit())
}

/// An invoice id goes into a URL path: only the characters ERIP's ids are made of.
fn check_invoice_id(invoice_id: &str) -> Result<(), Failure> {
    let ok = !invoice_id.is_empty()
        && invoice_id.len() <= MAX_INVOICE_ID_LEN
        && invoice_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && invoice_id != "."
        && invoice_id != "..";
    if ok {
        Ok(())
    } else {
        Err(Failure::invalid_input(
            "ERIP invoice id must be 1 to 128 letters, digits, '-', '_' or '.'",
        ))
    }
}

/// The body of `POST /api/v1/invoices`.
#[derive(Serialize)]
struct WireNewInvoice<'a> {
    account_number: &'a str,
    amount: u64,
    currency: u64,
    description: &'a str,
    expires_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    notify_url: Option<&'a str>,
}

/// An invoice as the wire has it; checked into an [`Invoice`] by [`parse_invoice`].
#[derive(Deserialize)]
struct WireInvoice {
    invoice_id: String,
    account_number: String,
    amount: u64,
    currency: u64,
    status: String,
    #[serde(default)]
    payment: Option<WirePayment>,
}

#[derive(Deserialize)]
struct WirePayment {
    operation_id: String,
    paid_at: String,
    amount: u64,
    channel: String,
}

/// A notification as the wire has it.
#[derive(Deserialize)]
struct WireNotification {
    event_id: String,
    invoice_id: String,
    account_number: String,
    status: String,
    amount: u64,
    #[serde(default)]
    operation_id: Option<String>,
    occurred_at: String,
}

/// Parses an invoice answered about `invoice_id`; an answer about another one breaks the
/// contract.
fn parse_invoice_of(invoice_id: &str, body: &[u8]) -> Result<Invoice, Failure> {
    let invoice = parse_invoice(body)?;
    if invoice.invoice_id != invoice_id {
        return Err(contract_violation(
            SYSTEM,
            "answered about another invoice than the one asked",
        ));
    }
    Ok(invoice)
}

/// Parses an invoice; anything outside the published contract is a permanent failure.
fn parse_invoice(body: &[u8]) -> Result<Invoice, Failure> {
    let wire: WireInvoice =
        serde_json::from_slice(body).map_err(|e| unexpected_json(SYSTEM, &e))?;
    if wire.invoice_id.trim().is_empty() {
        return Err(contract_violation(SYSTEM, "answered an empty invoice_id"));
    }
    if !is_account_number(&wire.account_number) {
        return Err(contract_violation(
            SYSTEM,
            "answered an account_number that is not 30 digits",
        ));
    }
    if wire.currency != CURRENCY_BYN {
        return Err(contract_violation(
            SYSTEM,
            format!("answered the currency {} (expected 933)", wire.currency),
        ));
    }
    let status = InvoiceStatus::parse(&wire.status).ok_or_else(|| {
        contract_violation(
            SYSTEM,
            format!(
                "answered an unknown invoice status {} (expected awaiting, paid, expired, \
                 cancelled or refunded)",
                quoted_code(&wire.status)
            ),
        )
    })?;
    let payment = match (status.has_payment(), wire.payment) {
        (true, Some(payment)) => Some(parse_payment(payment)?),
        (false, None) => None,
        (true, None) => {
            return Err(contract_violation(
                SYSTEM,
                format!("answered a {status} invoice without its payment"),
            ));
        }
        (false, Some(_)) => {
            return Err(contract_violation(
                SYSTEM,
                format!("answered a {status} invoice with a payment"),
            ));
        }
    };
    Ok(Invoice {
        invoice_id: wire.invoice_id,
        account_number: wire.account_number,
        amount_kopecks: wire.amount,
        status,
        payment,
    })
}

fn parse_payment(wire: WirePayment) -> Result<Payment, Failure> {
    if wire.operation_id.trim().is_empty() {
        return Err(contract_violation(SYSTEM, "answered an empty operation_id"));
    }
    let paid_at = DateTime::parse_from_rfc3339(&wire.paid_at)
        .map_err(|_| contract_violation(SYSTEM, "answered a paid_at that is not RFC 3339"))?
        .with_timezone(&Utc);
    let channel = match wire.channel.as_str() {
        "bank" => PaymentChannel::Bank,
        "terminal" => PaymentChannel::Terminal,
        "internet_banking" => PaymentChannel::InternetBanking,
        other => {
            return Err(contract_violation(
                SYSTEM,
                format!(
                    "answered an unknown payment channel {} (expected bank, terminal or \
                     internet_banking)",
                    quoted_code(other)
                ),
            ));
        }
    };
    Ok(Payment {
        operation_id: wire.operation_id,
        paid_at,
        amount_kopecks: wire.amount,
        channel,
    })
}

/// Verifies a notification posted by ERIP and parses it.
///
/// `body` must be the exact bytes received and `signature_header` the value of
/// [`SIGNATURE_HEADER`]: `sha256=` and the hex HMAC-SHA256 of `body` with `secret`. The
/// signature is checked first, in constant time; nothing of an unverified body is parsed.
///
/// Errors: a missing, malformed or wrong signature is invalid input with the reason
/// [`BAD_SIGNATURE`] and nothing more; a signed body that is not a notification of a status
/// change is invalid input naming what is wrong (never its values); an empty `secret` is a
/// permanent failure — a configuration mistake that would accept any signature made with it.
pub fn verify_notification(
    secret: &[u8],
    body: &[u8],
    signature_header: Option<&str>,
) -> Result<EripNotification, Failure> {
    signature::verify(secret, body, signature_header, "ERIP notification")?;
    parse_notification(body)
}

/// The value of [`SIGNATURE_HEADER`] for `body` as ERIP computes it: `sha256=` and the hex
/// HMAC-SHA256 of the exact bytes with `secret`. For ERIP's stand-ins (tests, tools).
pub fn sign_notification(secret: &[u8], body: &[u8]) -> String {
    signature::sign(secret, body)
}

/// [`verify_notification`], then [`EripNotification::check_window`] at `now` with
/// [`NOTIFICATION_MAX_AGE`] and [`NOTIFICATION_CLOCK_SKEW`]: what the hub's callback runs.
///
/// Errors: those of [`verify_notification`]; a notification outside the window is invalid
/// input whose reason contains [`OUTSIDE_WINDOW`].
pub fn verify_notification_at(
    secret: &[u8],
    body: &[u8],
    signature_header: Option<&str>,
    now: DateTime<Utc>,
) -> Result<EripNotification, Failure> {
    let n = verify_notification(secret, body, signature_header)?;
    n.check_window(now, NOTIFICATION_MAX_AGE, NOTIFICATION_CLOCK_SKEW)?;
    Ok(n)
}

impl EripNotification {
    /// Refuses a notification whose signed `occurred_at` is more than `max_age` before `now` or
    /// more than `skew` after it. The signature proves ERIP wrote the body, not when it was
    /// sent: the time inside it is what bounds how long a captured copy could be replayed.
    ///
    /// Errors: invalid input naming the time and the window (a time is not a secret), with
    /// [`OUTSIDE_WINDOW`] in the reason.
    pub fn check_window(
        &self,
        now: DateTime<Utc>,
        max_age: Duration,
        skew: Duration,
    ) -> Result<(), Failure> {
        let age = now.signed_duration_since(self.occurred_at);
        let too_old = chrono::TimeDelta::from_std(max_age).is_ok_and(|max| age > max);
        let too_new = chrono::TimeDelta::from_std(skew).is_ok_and(|skew| -age > skew);
        if too_old || too_new {
            return Err(Failure::invalid_input(format!(
                "ERIP notification: occurred_at {} is {OUTSIDE_WINDOW} (at most {} s old and \
                 {} s ahead of the hub's clock): a replayed or held-back notification",
                self.occurred_at.to_rfc3339_opts(SecondsFormat::Secs, true),
                max_age.as_secs(),
                skew.as_secs(),
            )));
        }
        Ok(())
    }
}

fn parse_notification(body: &[u8]) -> Result<EripNotification, Failure> {
    let invalid = |what: String| Failure::invalid_input(format!("ERIP notification: {what}"));
    let wire: WireNotification =
        serde_json::from_slice(body).map_err(|e| invalid(describe_json_error(&e)))?;
    if wire.event_id.trim().is_empty() {
        return Err(invalid("event_id must not be empty".to_owned()));
    }
    if wire.invoice_id.trim().is_empty() {
        return Err(invalid("invoice_id must not be empty".to_owned()));
    }
    if !is_account_number(&wire.account_number) {
        return Err(invalid(
            "account_number must be exactly 30 decimal digits".to_owned(),
        ));
    }
    let status = match InvoiceStatus::parse(&wire.status) {
        Some(InvoiceStatus::Awaiting) => {
            return Err(invalid(
                "status awaiting is not a change to notify".to_owned(),
            ));
        }
        Some(status) => status,
        None => {
            return Err(invalid(format!(
                "status must be paid, expired, cancelled, refunded or reversed, got {}",
                quoted_code(&wire.status)
            )));
        }
    };
    let operation_id = wire.operation_id.filter(|id| !id.trim().is_empty());
    if status.has_payment() && operation_id.is_none() {
        return Err(invalid(format!(
            "a {status} notification needs an operation_id"
        )));
    }
    let occurred_at = DateTime::parse_from_rfc3339(&wire.occurred_at)
        .map_err(|_| {
            invalid("occurred_at must be an RFC 3339 time such as 2026-11-26T10:00:00Z".to_owned())
        })?
        .with_timezone(&Utc);
    Ok(EripNotification {
        event_id: wire.event_id,
        invoice_id: wire.invoice_id,
        account_number: wire.account_number,
        status,
        amount_kopecks: wire.amount,
        operation_id,
        occurred_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FailureKind;
    use serde_json::{Value, json};
    use sha2::Sha256;
    use wiremock::matchers::{body_json, header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const ACCOUNT: &str = "100000000000000000000000000019";
    const INVOICE_ID: &str = "erip-5b0c7a52-1111-4111-8111-111111111111";
    const SECRET: &[u8] = b"erip-test-secret";

    fn quick() -> QuickRetry {
        QuickRetry {
            attempts: 3,
            min_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            max_retry_after: Duration::from_secs(1),
        }
    }

    fn client_with(server: &MockServer, timeout: Duration) -> EripClient {
        let base = Url::parse(&server.uri()).expect("the mock server's URL");
        EripClient::new(base, timeout)
            .expect("a client")
            .with_retry(quick())
    }

    fn client(server: &MockServer) -> EripClient {
        client_with(server, Duration::from_millis(500))
    }

    fn expires_at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-29T13:00:00+03:00")
            .expect("a time")
            .with_timezone(&Utc)
    }

    fn new_invoice() -> NewInvoice {
        NewInvoice {
            account_number: ACCOUNT.to_owned(),
            amount_kopecks: 2750,
            description: "State fee".to_owned(),
            expires_at: expires_at(),
            notify_url: Some(Url::parse("http://127.0.0.1:8090/callbacks/erip").expect("a URL")),
        }
    }

    fn invoice_json(status: &str, payment: Option<Value>) -> Value {
        json!({
            "invoice_id": INVOICE_ID, "account_number": ACCOUNT, "amount": 2750,
            "currency": 933, "description": "State fee", "status": status,
            "created_at": "2026-11-26T10:00:00.000Z", "expires_at": "2026-11-29T10:00:00.000Z",
            "payment": payment,
        })
    }

    fn payment_json() -> Value {
        json!({"operation_id": "123456789012345678", "paid_at": "2026-11-26T10:05:00.123Z",
               "amount": 2750, "channel": "terminal"})
    }

    fn answer(status: u16, body: Value) -> ResponseTemplate {
        ResponseTemplate::new(status).set_body_json(body)
    }

    fn refusal(status: u16, code: &str) -> ResponseTemplate {
        // The message echoes the request, as real systems do: it must never reach a reason.
        answer(
            status,
            json!({"error": code, "message": format!("account {ACCOUNT}: refused")}),
        )
    }

    async fn on(server: &MockServer, verb: &str, at: &str, template: ResponseTemplate) {
        Mock::given(method(verb))
            .and(path(at))
            .respond_with(template)
            .mount(server)
            .await;
    }

    fn assert_no_account(failure: &Failure) {
        assert!(
            !failure.reason.contains(ACCOUNT),
            "the account number leaked: {}",
            failure.reason
        );
    }

    #[tokio::test]
    async fn create_posts_the_published_body_with_the_idempotency_key() {
        let server = MockServer::start().await;
        let key = Uuid::new_v4();
        Mock::given(method("POST"))
            .and(path("/api/v1/invoices"))
            .and(header("Idempotency-Key", key.to_string().as_str()))
            .and(body_json(json!({
                "account_number": ACCOUNT, "amount": 2750, "currency": 933,
                "description": "State fee", "expires_at": "2026-11-29T10:00:00.000Z",
                "notify_url": "http://127.0.0.1:8090/callbacks/erip",
            })))
            .respond_with(answer(201, invoice_json("awaiting", None)))
            .expect(1)
            .mount(&server)
            .await;
        let invoice = client(&server)
            .create_invoice(key, &new_invoice())
            .await
            .expect("registered");
        assert_eq!(
            invoice,
            Invoice {
                invoice_id: INVOICE_ID.to_owned(),
                account_number: ACCOUNT.to_owned(),
                amount_kopecks: 2750,
                status: InvoiceStatus::Awaiting,
                payment: None,
            }
        );
    }

    #[tokio::test]
    async fn create_without_a_notify_url_leaves_it_out() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/api/v1/invoices"))
            .and(body_json(json!({
                "account_number": ACCOUNT, "amount": 2750, "currency": 933,
                "description": "State fee", "expires_at": "2026-11-29T10:00:00.000Z",
            })))
            .respond_with(answer(201, invoice_json("awaiting", None)))
            .expect(1)
            .mount(&server)
            .await;
        let request = NewInvoice {
            notify_url: None,
            ..new_invoice()
        };
        client(&server)
            .create_invoice(Uuid::new_v4(), &request)
            .await
            .expect("registered");
    }

    #[tokio::test]
    async fn a_503_is_retried_with_the_same_key() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(refusal(503, "unavailable"))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        on(
            &server,
            "POST",
            "/api/v1/invoices",
            answer(201, invoice_json("awaiting", None)),
        )
        .await;
        let key = Uuid::new_v4();
        client(&server)
            .create_invoice(key, &new_invoice())
            .await
            .expect("the retry is registered");
        let calls = server.received_requests().await.unwrap_or_default();
        assert_eq!(calls.len(), 2);
        for call in calls {
            assert_eq!(
                call.headers
                    .get("Idempotency-Key")
                    .and_then(|v| v.to_str().ok()),
                Some(key.to_string().as_str())
            );
        }
    }

    #[tokio::test]
    async fn an_unavailable_erip_is_transient_after_the_quick_retries() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(refusal(503, "unavailable"))
            .expect(3)
            .mount(&server)
            .await;
        let f = client(&server).invoice(INVOICE_ID).await.expect_err("down");
        assert_eq!(f.kind, FailureKind::Transient);
        assert_eq!(
            f.reason,
            "ERIP answered HTTP 503 Service Unavailable (unavailable)"
        );
    }

    #[tokio::test]
    async fn erip_s_retry_after_reaches_the_failure() {
        // A 429 on a registration and a 503 on a cancellation: both paths through `accepted`.
        let server = MockServer::start().await;
        on(
            &server,
            "POST",
            "/api/v1/invoices",
            refusal(429, "rate_limited").insert_header("Retry-After", "30"),
        )
        .await;
        on(
            &server,
            "POST",
            &format!("/api/v1/invoices/{INVOICE_ID}/cancel"),
            refusal(503, "unavailable").insert_header("Retry-After", "45"),
        )
        .await;
        let f = client(&server)
            .create_invoice(Uuid::new_v4(), &new_invoice())
            .await
            .expect_err("busy");
        assert_eq!(f.kind, FailureKind::Transient);
        assert_eq!(
            f.reason,
            "ERIP answered HTTP 429 Too Many Requests (rate_limited)"
        );
        assert_eq!(f.retry_after, Some(Duration::from_secs(30)));
        let f = client(&server)
            .cancel(Uuid::new_v4(), INVOICE_ID)
            .await
            .expect_err("down");
        assert_eq!(f.kind, FailureKind::Transient);
        assert_eq!(f.retry_after, Some(Duration::from_secs(45)));
        let calls = server.received_requests().await.unwrap_or_default();
        assert_eq!(calls.len(), 2, "no in-process wait of half a minute");
    }

    #[tokio::test]
    async fn a_slow_erip_times_out_as_transient() {
        let server = MockServer::start().await;
        on(
            &server,
            "POST",
            "/api/v1/invoices",
            answer(201, invoice_json("awaiting", None)).set_delay(Duration::from_secs(5)),
        )
        .await;
        let started = std::time::Instant::now();
        let f = client_with(&server, Duration::from_millis(150))
            .create_invoice(Uuid::new_v4(), &new_invoice())
            .await
            .expect_err("too slow");
        assert_eq!(f.kind, FailureKind::Transient);
        assert!(f.reason.starts_with("ERIP timed out"), "{}", f.reason);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "three bounded attempts"
        );
    }

    #[tokio::test]
    async fn refusals_are_permanent_with_their_reasons() {
        for (verb, at, status, code, reason) in [
            (
                "POST",
                "/api/v1/invoices",
                409,
                "duplicate_account_number",
                DUPLICATE_ACCOUNT_NUMBER.to_owned(),
            ),
            (
                "POST",
                "/api/v1/invoices",
                400,
                "invalid_request",
                "ERIP answered HTTP 400 Bad Request (invalid_request)".to_owned(),
            ),
            (
                "POST",
                "/api/v1/invoices",
                409,
                "idempotency_conflict",
                "ERIP answered HTTP 409 Conflict (idempotency_conflict)".to_owned(),
            ),
        ] {
            let server = MockServer::start().await;
            on(&server, verb, at, refusal(status, code)).await;
            let f = client(&server)
                .create_invoice(Uuid::new_v4(), &new_invoice())
                .await
                .expect_err("refused");
            assert_eq!(f.kind, FailureKind::Permanent, "{code}");
            assert_eq!(f.reason, reason);
            assert_no_account(&f);
            let calls = server.received_requests().await.unwrap_or_default();
            assert_eq!(calls.len(), 1, "a permanent failure is not retried");
        }
    }

    #[tokio::test]
    async fn create_answers_outside_the_contract_are_permanent() {
        let mut other_account = invoice_json("awaiting", None);
        other_account["account_number"] = json!("200000000000000000000000000018");
        let mut other_amount = invoice_json("awaiting", None);
        other_amount["amount"] = json!(100);
        let mut dollars = invoice_json("awaiting", None);
        dollars["currency"] = json!(840);
        let mut no_id = invoice_json("awaiting", None);
        no_id["invoice_id"] = json!(" ");
        for template in [
            ResponseTemplate::new(201).set_body_string("{\"invoice_id\": "),
            answer(201, json!({"invoice_id": INVOICE_ID})),
            answer(201, invoice_json("pending", None)),
            answer(201, invoice_json("paid", Some(payment_json()))),
            answer(201, invoice_json("awaiting", Some(payment_json()))),
            answer(201, other_account),
            answer(201, other_amount),
            answer(201, dollars),
            answer(201, no_id),
        ] {
            let server = MockServer::start().await;
            on(&server, "POST", "/api/v1/invoices", template).await;
            let f = client(&server)
                .create_invoice(Uuid::new_v4(), &new_invoice())
                .await
                .expect_err("a contract violation");
            assert_eq!(f.kind, FailureKind::Permanent);
            assert!(
                f.reason.starts_with("contract violation: ERIP"),
                "{}",
                f.reason
            );
            assert_no_account(&f);
        }
    }

    #[tokio::test]
    async fn invalid_invoices_are_refused_without_a_call() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(answer(201, invoice_json("awaiting", None)))
            .expect(0)
            .mount(&server)
            .await;
        for request in [
            NewInvoice {
                account_number: "12345".to_owned(),
                ..new_invoice()
            },
            NewInvoice {
                account_number: format!("{}x", &ACCOUNT[..29]),
                ..new_invoice()
            },
            NewInvoice {
                amount_kopecks: 0,
                ..new_invoice()
            },
            NewInvoice {
                description: "  ".to_owned(),
                ..new_invoice()
            },
            NewInvoice {
                description: "x".repeat(256),
                ..new_invoice()
            },
            NewInvoice {
                notify_url: Some(Url::parse("ftp://example.org/x").expect("a URL")),
                ..new_invoice()
            },
        ] {
            let f = client(&server)
                .create_invoice(Uuid::new_v4(), &request)
                .await
                .expect_err("invalid");
            assert_eq!(f.kind, FailureKind::InvalidInput, "{request:?}");
        }
        for id in ["", "../admin", "erip 1", "erip/1", "..", &"e".repeat(129)] {
            let f = client(&server).invoice(id).await.expect_err("invalid id");
            assert_eq!(f.kind, FailureKind::InvalidInput, "{id:?}");
        }
    }

    #[tokio::test]
    async fn a_paid_invoice_comes_with_its_payment() {
        let server = MockServer::start().await;
        on(
            &server,
            "GET",
            &format!("/api/v1/invoices/{INVOICE_ID}"),
            answer(200, invoice_json("paid", Some(payment_json()))),
        )
        .await;
        let invoice = client(&server).invoice(INVOICE_ID).await.expect("read");
        assert_eq!(invoice.status, InvoiceStatus::Paid);
        assert_eq!(
            invoice.payment,
            Some(Payment {
                operation_id: "123456789012345678".to_owned(),
                paid_at: DateTime::parse_from_rfc3339("2026-11-26T10:05:00.123Z")
                    .expect("a time")
                    .with_timezone(&Utc),
                amount_kopecks: 2750,
                channel: PaymentChannel::Terminal,
            })
        );
    }

    #[tokio::test]
    async fn every_status_reads() {
        for (status, payment) in [
            ("awaiting", None),
            ("expired", None),
            ("cancelled", None),
            ("refunded", Some(payment_json())),
        ] {
            let server = MockServer::start().await;
            on(
                &server,
                "GET",
                &format!("/api/v1/invoices/{INVOICE_ID}"),
                answer(200, invoice_json(status, payment)),
            )
            .await;
            let invoice = client(&server).invoice(INVOICE_ID).await.expect("read");
            assert_eq!(invoice.status.as_str(), status);
        }
    }

    #[tokio::test]
    async fn read_answers_outside_the_contract_are_permanent() {
        let mut other = invoice_json("awaiting", None);
        other["invoice_id"] = json!("erip-other");
        let mut bad_channel = payment_json();
        bad_channel["channel"] = json!("cash");
        let mut bad_time = payment_json();
        bad_time["paid_at"] = json!("yesterday");
        for body in [
            invoice_json("paid", None),
            invoice_json("refunded", None),
            invoice_json("cancelled", Some(payment_json())),
            invoice_json("PAID", Some(payment_json())),
            invoice_json("paid", Some(bad_channel)),
            invoice_json("paid", Some(bad_time)),
            other,
            json!({"invoice_id": INVOICE_ID, "status": "paid"}),
        ] {
            let server = MockServer::start().await;
            on(
                &server,
                "GET",
                &format!("/api/v1/invoices/{INVOICE_ID}"),
                answer(200, body.clone()),
            )
            .await;
            let f = client(&server)
                .invoice(INVOICE_ID)
                .await
                .expect_err("a contract violation");
            assert_eq!(f.kind, FailureKind::Permanent, "{body}");
            assert!(
                f.reason.starts_with("contract violation: ERIP"),
                "{}",
                f.reason
            );
            assert_no_account(&f);
        }
    }

    #[tokio::test]
    async fn an_unknown_invoice_is_permanent() {
        let server = MockServer::start().await;
        on(
            &server,
            "GET",
            &format!("/api/v1/invoices/{INVOICE_ID}"),
            refusal(404, "unknown_invoice"),
        )
        .await;
        let f = client(&server)
            .invoice(INVOICE_ID)
            .await
            .expect_err("unknown");
        assert_eq!(f, Failure::permanent(UNKNOWN_INVOICE));
    }

    #[tokio::test]
    async fn cancel_posts_with_the_key_and_answers_the_cancelled_invoice() {
        let server = MockServer::start().await;
        let key = Uuid::new_v4();
        Mock::given(method("POST"))
            .and(path(format!("/api/v1/invoices/{INVOICE_ID}/cancel")))
            .and(header("Idempotency-Key", key.to_string().as_str()))
            .respond_with(answer(200, invoice_json("cancelled", None)))
            .expect(1)
            .mount(&server)
            .await;
        let invoice = client(&server)
            .cancel(key, INVOICE_ID)
            .await
            .expect("cancelled");
        assert_eq!(invoice.status, InvoiceStatus::Cancelled);
    }

    #[tokio::test]
    async fn cancel_refusals_have_their_reasons() {
        for (status, code, expected) in [
            (409, "already_paid", ALREADY_PAID),
            (409, "invoice_expired", INVOICE_EXPIRED),
            (404, "unknown_invoice", UNKNOWN_INVOICE),
        ] {
            let server = MockServer::start().await;
            on(
                &server,
                "POST",
                &format!("/api/v1/invoices/{INVOICE_ID}/cancel"),
                refusal(status, code),
            )
            .await;
            let f = client(&server)
                .cancel(Uuid::new_v4(), INVOICE_ID)
                .await
                .expect_err("refused");
            assert_eq!(f, Failure::permanent(expected));
        }
    }

    #[tokio::test]
    async fn a_cancel_answered_with_another_status_is_a_contract_violation() {
        let server = MockServer::start().await;
        on(
            &server,
            "POST",
            &format!("/api/v1/invoices/{INVOICE_ID}/cancel"),
            answer(200, invoice_json("awaiting", None)),
        )
        .await;
        let f = client(&server)
            .cancel(Uuid::new_v4(), INVOICE_ID)
            .await
            .expect_err("not cancelled");
        assert_eq!(f.kind, FailureKind::Permanent);
        assert_eq!(
            f.reason,
            "contract violation: ERIP answered a cancel with the status awaiting (expected \
             cancelled)"
        );
    }

    #[tokio::test]
    async fn refund_answers_the_refunded_invoice_or_not_paid() {
        let server = MockServer::start().await;
        let key = Uuid::new_v4();
        Mock::given(method("POST"))
            .and(path(format!("/api/v1/invoices/{INVOICE_ID}/refund")))
            .and(header("Idempotency-Key", key.to_string().as_str()))
            .respond_with(answer(200, invoice_json("refunded", Some(payment_json()))))
            .expect(1)
            .mount(&server)
            .await;
        let invoice = client(&server)
            .refund(key, INVOICE_ID)
            .await
            .expect("refunded");
        assert_eq!(invoice.status, InvoiceStatus::Refunded);
        assert!(invoice.payment.is_some());

        let server = MockServer::start().await;
        on(
            &server,
            "POST",
            &format!("/api/v1/invoices/{INVOICE_ID}/refund"),
            refusal(409, "not_paid"),
        )
        .await;
        let f = client(&server)
            .refund(Uuid::new_v4(), INVOICE_ID)
            .await
            .expect_err("not paid");
        assert_eq!(f, Failure::permanent(NOT_PAID));
    }

    #[tokio::test]
    async fn a_base_url_with_a_path_prefix_keeps_it() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path(format!("/erip/api/v1/invoices/{INVOICE_ID}")))
            .respond_with(answer(200, invoice_json("awaiting", None)))
            .expect(1)
            .mount(&server)
            .await;
        let base = Url::parse(&format!("{}/erip/", server.uri())).expect("a URL");
        EripClient::new(base, Duration::from_millis(500))
            .expect("a client")
            .invoice(INVOICE_ID)
            .await
            .expect("found under the prefix");
    }

    fn sign(secret: &[u8], body: &[u8]) -> String {
        use hmac::{Hmac, KeyInit, Mac};
        // Computed here, not with the crate's own helper, so the test checks it independently.
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("a key");
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    fn notification(status: &str, operation_id: Option<&str>) -> Vec<u8> {
        let mut body = json!({
            "event_id": "7d3f0a52-0000-4000-8000-000000000001", "invoice_id": INVOICE_ID,
            "account_number": ACCOUNT, "status": status, "amount": 2750,
            "occurred_at": "2026-11-26T13:05:00.123+03:00",
        });
        if let Some(id) = operation_id {
            body["operation_id"] = json!(id);
        }
        body.to_string().into_bytes()
    }

    #[test]
    fn a_well_signed_notification_verifies_and_parses() {
        let body = notification("paid", Some("123456789012345678"));
        let n = verify_notification(SECRET, &body, Some(&sign(SECRET, &body)))
            .expect("a good notification");
        assert_eq!(
            n,
            EripNotification {
                event_id: "7d3f0a52-0000-4000-8000-000000000001".to_owned(),
                invoice_id: INVOICE_ID.to_owned(),
                account_number: ACCOUNT.to_owned(),
                status: InvoiceStatus::Paid,
                amount_kopecks: 2750,
                operation_id: Some("123456789012345678".to_owned()),
                occurred_at: DateTime::parse_from_rfc3339("2026-11-26T10:05:00.123Z")
                    .expect("a time")
                    .with_timezone(&Utc),
            }
        );
        let body = notification("expired", None);
        let n = verify_notification(SECRET, &body, Some(&sign(SECRET, &body))).expect("good");
        assert_eq!(n.status, InvoiceStatus::Expired);
        assert_eq!(n.operation_id, None);
    }

    #[test]
    fn the_simulators_signature_scheme_matches_rfc_4231() {
        // RFC 4231, test case 2: what the simulator's signature test checks too.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            sign_notification(b"Jefe", b"what do ya want for nothing?"),
            sign(b"Jefe", b"what do ya want for nothing?")
        );
    }

    #[test]
    fn bad_signatures_are_refused_without_echoing_the_body() {
        let body = notification("paid", Some("123456789012345678"));
        let good = sign(SECRET, &body);
        let mut tampered = body.clone();
        let at = tampered
            .windows(4)
            .position(|w| w == b"2750")
            .expect("the amount");
        tampered[at] = b'0';
        let upper_prefix = good.replacen("sha256=", "SHA256=", 1);
        let other_prefix = good.replacen("sha256=", "sha1=", 1);
        let bare_hex = good.trim_start_matches("sha256=").to_owned();
        let wrong_secret = sign(b"another-secret", &body);
        let cases: [(&[u8], Option<&str>); 8] = [
            (&tampered, Some(&good)),
            (&body, Some(&wrong_secret)),
            (&body, None),
            (&body, Some(&upper_prefix)),
            (&body, Some(&other_prefix)),
            (&body, Some(&bare_hex)),
            (&body, Some("sha256=not-hex")),
            (&body, Some("sha256=")),
        ];
        for (body, header) in cases {
            let f = verify_notification(SECRET, body, header).expect_err("a bad signature");
            assert_eq!(f, Failure::invalid_input(BAD_SIGNATURE), "{header:?}");
        }
    }

    #[test]
    fn an_empty_secret_is_a_configuration_failure() {
        let body = notification("paid", Some("1"));
        let f = verify_notification(b"", &body, Some(&sign(b"", &body))).expect_err("no secret");
        assert_eq!(f.kind, FailureKind::Permanent);
    }

    #[test]
    fn signed_bodies_that_are_not_notifications_are_invalid_input() {
        let mut bodies: Vec<Vec<u8>> = vec![
            b"not json".to_vec(),
            notification("awaiting", None),
            notification("settled", None),
            notification("paid", None),
            notification("refunded", Some(" ")),
        ];
        for (field, value) in [
            ("event_id", json!("")),
            ("invoice_id", json!("")),
            ("account_number", json!("12345")),
            ("amount", json!("2750")),
            ("occurred_at", json!("yesterday")),
        ] {
            let mut body: Value =
                serde_json::from_slice(&notification("cancelled", None)).expect("JSON");
            body[field] = value;
            bodies.push(body.to_string().into_bytes());
        }
        for body in bodies {
            let f = verify_notification(SECRET, &body, Some(&sign(SECRET, &body)))
                .expect_err("not a notification");
            assert_eq!(f.kind, FailureKind::InvalidInput);
            assert!(f.reason.starts_with("ERIP notification: "), "{}", f.reason);
            assert_no_account(&f);
        }
    }

    #[test]
    fn a_notification_is_taken_only_inside_its_acceptance_window() {
        let body = notification("paid", Some("123456789012345678"));
        let signature = sign(SECRET, &body);
        // The notification's occurred_at is 2026-11-26T10:05:00.123Z.
        let at = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .expect("a time")
                .with_timezone(&Utc)
        };
        for now in [
            "2026-11-26T10:05:00Z", // a little before it: inside the skew
            "2026-11-26T10:05:01Z",
            "2026-11-29T10:05:00Z", // 72 hours later, less a fraction
        ] {
            verify_notification_at(SECRET, &body, Some(&signature), at(now))
                .unwrap_or_else(|f| panic!("taken at {now}: {}", f.reason));
        }
        for now in [
            "2026-11-29T10:05:01Z", // more than 72 hours later: a replay
            "2026-12-26T10:05:00Z",
            "2026-11-26T09:59:00Z", // more than 5 minutes before it happened
        ] {
            let f = verify_notification_at(SECRET, &body, Some(&signature), at(now))
                .expect_err("outside the window");
            assert_eq!(f.kind, FailureKind::InvalidInput, "{now}");
            assert!(f.reason.contains(OUTSIDE_WINDOW), "{now}: {}", f.reason);
            assert!(f.reason.contains("2026-11-26T10:05:00Z"), "{}", f.reason);
            assert_no_account(&f);
        }
        // The signature is checked first: a forged body says nothing of its time.
        let f =
            verify_notification_at(SECRET, &body, Some("sha256=00"), at("2030-01-01T00:00:00Z"))
                .expect_err("forged");
        assert_eq!(f, Failure::invalid_input(BAD_SIGNATURE));
    }

    #[test]
    fn a_signature_copied_onto_another_invoices_notification_is_refused() {
        let body = notification("paid", Some("123456789012345678"));
        let signature = sign(SECRET, &body);
        let mut other: Value = serde_json::from_slice(&body).expect("JSON");
        other["invoice_id"] = json!("erip-5b0c7a52-2222-4222-8222-222222222222");
        other["account_number"] = json!("100000000000000000000000000027");
        let other = other.to_string().into_bytes();
        let f = verify_notification(SECRET, &other, Some(&signature)).expect_err("copied");
        assert_eq!(f, Failure::invalid_input(BAD_SIGNATURE));
    }
}
