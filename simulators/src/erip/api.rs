//! ERIP's HTTP API: `POST /api/v1/invoices`, `GET /api/v1/invoices/{invoice_id}`, its `cancel`
//! and `refund`, and the simulator-only payment by account number (short, in full, twice, or
//! late), refund or reversal of one payment, expiry clock and invoice list.
//!
//! Every status change goes through [`Invoice::change`], and every payment event through
//! [`Invoice::notify`], which records the notification and hands it to [`super::notify`];
//! nothing else sets a status or takes money, so nothing can go unnotified.
//!
//! Payments are ERIP's payment notices (message 206), one per operation: a notification with
//! status `paid` carries one operation's number and amount, which may be part of the amount
//! due (the invoice stays `awaiting`, still payable, until its payments add up), all of it, or
//! more. `refunded` and `reversed` notifications name the one payment returned.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use rand::Rng;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use url::Url;
use uuid::Uuid;

use super::Deps;
use super::notify::{Outgoing, deliver};
use crate::error::{ApiError, parse_json, timestamp};
use crate::idempotency::IdempotencyStore;
use crate::retention::{Bounded, Limit};
use crate::server::{self, SimContext};

/// The only currency ERIP invoices here are in: the Belarusian ruble (ISO 4217 933).
const CURRENCY_BYN: u64 = 933;

/// How many decimal digits an account number (the hub's order number) has.
const ACCOUNT_DIGITS: usize = 30;

/// The longest description accepted.
const MAX_DESCRIPTION_CHARS: usize = 255;

/// How often the clock expires the invoices whose time has passed.
const CLOCK_TICK: Duration = Duration::from_secs(1);

/// Where an invoice is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Status {
    Awaiting,
    Paid,
    Expired,
    Cancelled,
    Refunded,
    /// Never an invoice's status: the notification of one payment reversed by the bank.
    Reversed,
}

impl Status {
    pub(super) fn name(self) -> &'static str {
        match self {
            Status::Awaiting => "awaiting",
            Status::Paid => "paid",
            Status::Expired => "expired",
            Status::Cancelled => "cancelled",
            Status::Refunded => "refunded",
            Status::Reversed => "reversed",
        }
    }
}

/// Where the payer paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Channel {
    #[default]
    Bank,
    Terminal,
    InternetBanking,
}

impl Channel {
    fn name(self) -> &'static str {
        match self {
            Channel::Bank => "bank",
            Channel::Terminal => "terminal",
            Channel::InternetBanking => "internet_banking",
        }
    }
}

/// Where one notification is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Delivery {
    /// The invoice has no `notify_url`.
    None,
    /// Not yet sent, or being sent.
    Pending,
    /// The receiver answered 2xx (`sent` counts how often: 2 with a duplicate).
    Sent,
    /// Dropped by the `drop_callback_rate` fault.
    Dropped,
    /// Every attempt failed.
    GaveUp,
    /// The simulator shut down before it got through.
    Cancelled,
}

impl Delivery {
    fn name(self) -> &'static str {
        match self {
            Delivery::None => "none",
            Delivery::Pending => "pending",
            Delivery::Sent => "sent",
            Delivery::Dropped => "dropped",
            Delivery::GaveUp => "gave_up",
            Delivery::Cancelled => "cancelled",
        }
    }
}

/// A payment made by account number.
#[derive(Debug, Clone)]
struct Payment {
    operation_id: String,
    paid_at: DateTime<Utc>,
    amount: u64,
    channel: Channel,
    /// Set once the payment went back: `Refunded` or `Reversed`.
    returned: Option<Status>,
}

impl Payment {
    fn to_json(&self) -> Value {
        json!({
            "operation_id": self.operation_id,
            "paid_at": timestamp(self.paid_at),
            "amount": self.amount,
            "channel": self.channel.name(),
            "returned": self.returned.map(Status::name),
        })
    }
}

/// One status change's notification, as `GET /sim/invoices` shows it.
#[derive(Debug, Clone)]
pub(super) struct NotificationRecord {
    event_id: String,
    status: Status,
    pub(super) delivery: Delivery,
    pub(super) attempts: u32,
    pub(super) sent: u32,
}

/// An invoice registered by the provider.
#[derive(Debug, Clone)]
struct Invoice {
    invoice_id: String,
    account_number: String,
    amount: u64,
    description: String,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    notify_url: Option<Url>,
    status: Status,
    payments: Vec<Payment>,
    notifications: Vec<NotificationRecord>,
}

impl Invoice {
    /// Paid and not returned, kopecks.
    fn paid_amount(&self) -> u64 {
        self.payments
            .iter()
            .filter(|p| p.returned.is_none())
            .map(|p| p.amount)
            .sum()
    }

    /// The payment the API shows (`paid` and `refunded` invoices only, as the contract has it):
    /// the last one.
    fn payment(&self) -> Option<&Payment> {
        matches!(self.status, Status::Paid | Status::Refunded)
            .then(|| self.payments.last())
            .flatten()
    }

    /// The invoice as the API answers it.
    fn to_json(&self) -> Value {
        json!({
            "invoice_id": self.invoice_id,
            "account_number": self.account_number,
            "amount": self.amount,
            "currency": CURRENCY_BYN,
            "description": self.description,
            "status": self.status.name(),
            "created_at": timestamp(self.created_at),
            "expires_at": timestamp(self.expires_at),
            "payment": self.payment().map(|p| json!({
                "operation_id": p.operation_id,
                "paid_at": timestamp(p.paid_at),
                "amount": p.amount,
                "channel": p.channel.name(),
            })),
        })
    }

    /// The invoice as `GET /sim/invoices` shows it: with its notifications.
    fn to_sim_json(&self) -> Value {
        let mut value = self.to_json();
        value["paid_amount"] = json!(self.paid_amount());
        value["payments"] = self.payments.iter().map(Payment::to_json).collect();
        value["notify_url"] = json!(self.notify_url.as_ref().map(Url::as_str));
        value["notifications"] = self
            .notifications
            .iter()
            .map(|n| {
                json!({
                    "event_id": n.event_id,
                    "status": n.status.name(),
                    "delivery": n.delivery.name(),
                    "attempts": n.attempts,
                    "sent": n.sent,
                })
            })
            .collect();
        value
    }

    /// Moves the invoice to `status` as of `at`, records the change's notification and, when
    /// the invoice has a `notify_url`, adds it to `out` to be sent.
    fn change(
        &mut self,
        status: Status,
        at: DateTime<Utc>,
        secret: &[u8],
        out: &mut Vec<Outgoing>,
    ) {
        self.status = status;
        self.notify(status, None, at, secret, out);
    }

    /// Records the notification of `status` (about payment number `payment` for `paid`,
    /// `refunded` and `reversed`) and, when the invoice has a `notify_url`, adds it to `out`.
    fn notify(
        &mut self,
        status: Status,
        payment: Option<usize>,
        at: DateTime<Utc>,
        secret: &[u8],
        out: &mut Vec<Outgoing>,
    ) {
        let event_id = Uuid::new_v4().to_string();
        let payment = payment.and_then(|i| self.payments.get(i)).cloned();
        let payment = payment.as_ref();
        let mut body = Map::new();
        body.insert("event_id".into(), json!(event_id));
        body.insert("invoice_id".into(), json!(self.invoice_id));
        body.insert("account_number".into(), json!(self.account_number));
        body.insert("status".into(), json!(status.name()));
        body.insert(
            "amount".into(),
            json!(payment.map_or(self.amount, |p| p.amount)),
        );
        if let Some(payment) = payment {
            body.insert("operation_id".into(), json!(payment.operation_id));
        }
        body.insert("occurred_at".into(), json!(timestamp(at)));
        self.notifications.push(NotificationRecord {
            event_id: event_id.clone(),
            status,
            delivery: if self.notify_url.is_some() {
                Delivery::Pending
            } else {
                Delivery::None
            },
            attempts: 0,
            sent: 0,
        });
        if let Some(url) = &self.notify_url {
            let body = Value::Object(body).to_string().into_bytes();
            out.push(Outgoing::new(
                self.invoice_id.clone(),
                event_id,
                url.clone(),
                body,
                secret,
            ));
        }
    }

    /// Expires the invoice if it is awaiting and its time has passed by `at`; true if it did.
    fn expire_if_due(&mut self, at: DateTime<Utc>, secret: &[u8], out: &mut Vec<Outgoing>) -> bool {
        let due = self.status == Status::Awaiting && self.expires_at <= at;
        if due {
            self.change(Status::Expired, at.min(Utc::now()), secret, out);
        }
        due
    }
}

/// Every invoice, oldest first, the newest up to the record limit, with the index by account
/// number. An invoice dropped is unknown by its id and by its account number, and its account
/// number may be registered again.
#[derive(Debug)]
struct Book {
    invoices: Bounded<String, Invoice>,
    /// The invoice id of each account number kept.
    by_account: HashMap<String, String>,
}

impl Book {
    fn new(limit: Limit) -> Self {
        Book {
            invoices: Bounded::new(limit),
            by_account: HashMap::new(),
        }
    }

    /// Keeps a new invoice (the newest), dropping the oldest past the limit.
    fn add(&mut self, invoice: Invoice) {
        let account = invoice.account_number.clone();
        let id = invoice.invoice_id.clone();
        let dropped = self.invoices.insert(id.clone(), invoice);
        self.by_account.insert(account, id);
        self.forget(dropped);
    }

    /// Drops the invoices too old to keep.
    fn expire_old(&mut self) {
        let dropped = self.invoices.expire();
        self.forget(dropped);
    }

    fn forget(&mut self, dropped: Vec<(String, Invoice)>) {
        for (id, invoice) in dropped {
            if self.by_account.get(&invoice.account_number) == Some(&id) {
                self.by_account.remove(&invoice.account_number);
            }
        }
    }

    fn by_id(&mut self, invoice_id: &str) -> Result<&mut Invoice, ApiError> {
        self.invoices.get_mut(invoice_id).ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_invoice",
                "no invoice with this id",
            )
        })
    }

    fn by_account(&mut self, account_number: &str) -> Result<&mut Invoice, ApiError> {
        let id = self.by_account.get(account_number).cloned();
        id.and_then(|id| self.invoices.get_mut(&id)).ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_account",
                "no invoice with this account number",
            )
        })
    }

    /// Whether an invoice with this account number is kept.
    fn has_account(&self, account_number: &str) -> bool {
        self.by_account
            .get(account_number)
            .is_some_and(|id| self.invoices.contains_key(id))
    }

    /// Expires every awaiting invoice due by `at`; their ids, oldest first.
    fn expire_due(
        &mut self,
        at: DateTime<Utc>,
        secret: &[u8],
        out: &mut Vec<Outgoing>,
    ) -> Vec<String> {
        self.expire_old();
        self.invoices
            .iter_mut()
            .filter_map(|(_, invoice)| {
                invoice
                    .expire_if_due(at, secret, out)
                    .then(|| invoice.invoice_id.clone())
            })
            .collect()
    }
}

/// The ERIP simulator's state.
#[derive(Debug)]
pub(super) struct EripState {
    pub(super) ctx: SimContext,
    pub(super) deps: Deps,
    book: Mutex<Book>,
    idempotency: IdempotencyStore,
}

impl EripState {
    /// Runs `f` on the book, then starts sending the notifications it produced — after the
    /// lock is released, so that a notification task never waits for it while `f` runs.
    fn with_book<T>(self: &Arc<Self>, f: impl FnOnce(&mut Book, &mut Vec<Outgoing>) -> T) -> T {
        let mut out = Vec::new();
        let result = {
            let mut book = self.book.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut book, &mut out)
        };
        for outgoing in out {
            self.deps.tasks.spawn(deliver(self.clone(), outgoing));
        }
        result
    }

    /// Changes the record of one notification.
    pub(super) fn update_notification(
        &self,
        invoice_id: &str,
        event_id: &str,
        change: impl FnOnce(&mut NotificationRecord),
    ) {
        let mut book = self.book.lock().unwrap_or_else(PoisonError::into_inner);
        if let Ok(invoice) = book.by_id(invoice_id)
            && let Some(record) = invoice
                .notifications
                .iter_mut()
                .find(|n| n.event_id == event_id)
        {
            change(record);
        }
    }
}

/// ERIP's routes, finished with the common ones; also starts the expiry clock.
pub(crate) fn router(ctx: SimContext, deps: Deps) -> Router {
    let state = Arc::new(EripState {
        ctx: ctx.clone(),
        deps,
        book: Mutex::new(Book::new(ctx.retention.records_limit())),
        idempotency: IdempotencyStore::new(ctx.retention.keys_limit()),
    });
    state.deps.tasks.spawn(clock(state.clone()));
    let routes = Router::new()
        .route("/api/v1/invoices", post(create))
        .route("/api/v1/invoices/{invoice_id}", get(invoice))
        .route("/api/v1/invoices/{invoice_id}/cancel", post(cancel))
        .route("/api/v1/invoices/{invoice_id}/refund", post(refund))
        .route("/sim/invoices", get(list))
        .route("/sim/invoices/by-account/{account_number}/pay", post(pay))
        .route(
            "/sim/invoices/by-account/{account_number}/return",
            post(return_payment),
        )
        .route("/sim/clock/expire", post(expire))
        .with_state(state);
    server::finish(routes, ctx)
}

/// Expires the invoices whose time has passed, every [`CLOCK_TICK`], until shutdown.
async fn clock(state: Arc<EripState>) {
    let mut tick = tokio::time::interval(CLOCK_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = state.ctx.shutdown.cancelled() => return,
        }
        let expired =
            state.with_book(|book, out| book.expire_due(Utc::now(), &state.deps.secret, out));
        for invoice_id in expired {
            tracing::info!(simulator = %state.ctx.kind, %invoice_id, "invoice expired");
        }
    }
}

/// A `POST /api/v1/invoices` body.
#[derive(Debug, Deserialize)]
struct CreateRequest {
    account_number: String,
    amount: u64,
    currency: u64,
    description: String,
    expires_at: String,
    #[serde(default)]
    notify_url: Option<String>,
}

async fn create(State(state): State<Arc<EripState>>, headers: HeaderMap, body: Bytes) -> Response {
    state
        .idempotency
        .run(&headers, "POST /api/v1/invoices", &body, || {
            register(&state, &body)
        })
}

/// Validates and registers a new invoice.
fn register(state: &Arc<EripState>, body: &[u8]) -> Result<(StatusCode, Value), ApiError> {
    let request: CreateRequest = parse_json(body)?;
    let account_number = request.account_number;
    if account_number.len() != ACCOUNT_DIGITS || !account_number.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(ApiError::invalid_request(format!(
            "account_number must be exactly {ACCOUNT_DIGITS} decimal digits"
        )));
    }
    if request.amount == 0 {
        return Err(ApiError::invalid_request(
            "amount must be a whole number of kopecks above 0",
        ));
    }
    if request.currency != CURRENCY_BYN {
        return Err(ApiError::invalid_request(format!(
            "currency must be {CURRENCY_BYN} (BYN)"
        )));
    }
    let description = request.description.trim();
    if description.is_empty() || description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(ApiError::invalid_request(format!(
            "description must be 1 to {MAX_DESCRIPTION_CHARS} characters"
        )));
    }
    let now = Utc::now();
    let expires_at = DateTime::parse_from_rfc3339(request.expires_at.trim())
        .map_err(|_| {
            ApiError::invalid_request(
                "expires_at must be an RFC 3339 time such as 2026-11-29T10:00:00Z",
            )
        })?
        .with_timezone(&Utc);
    if expires_at <= now {
        return Err(ApiError::invalid_request(
            "expires_at must be in the future",
        ));
    }
    let notify_url = match request.notify_url.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(raw) => match Url::parse(raw) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => Some(url),
            _ => {
                return Err(ApiError::invalid_request(
                    "notify_url must be an absolute http(s) URL",
                ));
            }
        },
    };

    state.with_book(|book, _| {
        if book.has_account(&account_number) {
            tracing::info!(
                simulator = %state.ctx.kind,
                %account_number,
                "invoice refused: duplicate account number"
            );
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "duplicate_account_number",
                "an invoice with this account number exists already",
            ));
        }
        let invoice = Invoice {
            invoice_id: format!("erip-{}", Uuid::new_v4()),
            account_number: account_number.clone(),
            amount: request.amount,
            description: description.to_owned(),
            created_at: now,
            expires_at,
            notify_url,
            status: Status::Awaiting,
            payments: Vec::new(),
            notifications: Vec::new(),
        };
        tracing::info!(
            simulator = %state.ctx.kind,
            invoice_id = %invoice.invoice_id,
            %account_number,
            amount = invoice.amount,
            "invoice registered"
        );
        let answer = invoice.to_json();
        book.add(invoice);
        Ok((StatusCode::CREATED, answer))
    })
}

async fn invoice(
    State(state): State<Arc<EripState>>,
    Path(invoice_id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    state.with_book(|book, out| {
        let invoice = book.by_id(&invoice_id)?;
        invoice.expire_if_due(Utc::now(), &state.deps.secret, out);
        Ok(axum::Json(invoice.to_json()))
    })
}

async fn cancel(
    State(state): State<Arc<EripState>>,
    Path(invoice_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let route = format!("POST /api/v1/invoices/{invoice_id}/cancel");
    state.idempotency.run(&headers, &route, &body, || {
        state.with_book(|book, out| {
            let invoice = book.by_id(&invoice_id)?;
            let now = Utc::now();
            invoice.expire_if_due(now, &state.deps.secret, out);
            match invoice.status {
                Status::Awaiting => {
                    invoice.change(Status::Cancelled, now, &state.deps.secret, out);
                    tracing::info!(simulator = %state.ctx.kind, %invoice_id, "invoice cancelled");
                }
                Status::Cancelled => {}
                Status::Paid | Status::Refunded | Status::Reversed => {
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        "already_paid",
                        "the invoice was paid; refund it instead",
                    ));
                }
                Status::Expired => {
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        "invoice_expired",
                        "the invoice has expired",
                    ));
                }
            }
            Ok((StatusCode::OK, invoice.to_json()))
        })
    })
}

async fn refund(
    State(state): State<Arc<EripState>>,
    Path(invoice_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let route = format!("POST /api/v1/invoices/{invoice_id}/refund");
    state.idempotency.run(&headers, &route, &body, || {
        state.with_book(|book, out| {
            let invoice = book.by_id(&invoice_id)?;
            let now = Utc::now();
            invoice.expire_if_due(now, &state.deps.secret, out);
            match invoice.status {
                Status::Paid => {
                    // Every payment not returned yet goes back, each with its notification.
                    invoice.status = Status::Refunded;
                    for i in 0..invoice.payments.len() {
                        if invoice.payments[i].returned.is_none() {
                            invoice.payments[i].returned = Some(Status::Refunded);
                            invoice.notify(Status::Refunded, Some(i), now, &state.deps.secret, out);
                        }
                    }
                    tracing::info!(simulator = %state.ctx.kind, %invoice_id, "payment refunded");
                }
                Status::Refunded => {}
                Status::Awaiting | Status::Expired | Status::Cancelled | Status::Reversed => {
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        "not_paid",
                        format!("the invoice is {}, not paid", invoice.status.name()),
                    ));
                }
            }
            Ok((StatusCode::OK, invoice.to_json()))
        })
    })
}

/// A `POST /sim/invoices/by-account/{account_number}/pay` body; every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PayRequest {
    #[serde(default)]
    channel: Channel,
    /// Kopecks; by default what is still due (the whole amount once paid).
    #[serde(default)]
    amount: Option<u64>,
    /// Pay an expired or cancelled invoice too: a payment that arrives after it closed.
    #[serde(default)]
    late: bool,
}

async fn pay(
    State(state): State<Arc<EripState>>,
    Path(account_number): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let route = format!("POST /sim/invoices/by-account/{account_number}/pay");
    state.idempotency.run(&headers, &route, &body, || {
        let request: PayRequest = if body.trim_ascii().is_empty() {
            PayRequest::default()
        } else {
            parse_json(&body)?
        };
        if request.amount == Some(0) {
            return Err(ApiError::invalid_request(
                "amount must be a whole number of kopecks above 0",
            ));
        }
        state.with_book(|book, out| {
            let invoice = book.by_account(&account_number)?;
            let now = Utc::now();
            invoice.expire_if_due(now, &state.deps.secret, out);
            // An awaiting invoice takes payments, and a paid one a second; a closed one only
            // a late payment (one the bank took by the account number before it heard).
            let payable = matches!(invoice.status, Status::Awaiting | Status::Paid);
            if !payable && !request.late {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "not_awaiting",
                    format!(
                        "the invoice is {}; only an awaiting or paid invoice can be paid \
                         (send \"late\": true for a payment that arrives after it closed)",
                        invoice.status.name()
                    ),
                ));
            }
            // By default the payer pays what is still due (all of it again once it is paid:
            // a second payment).
            let due = invoice.amount.saturating_sub(invoice.paid_amount());
            let payment = Payment {
                operation_id: operation_id(),
                paid_at: now,
                amount: request
                    .amount
                    .unwrap_or(if due > 0 { due } else { invoice.amount }),
                channel: request.channel,
                returned: None,
            };
            tracing::info!(
                simulator = %state.ctx.kind,
                invoice_id = %invoice.invoice_id,
                %account_number,
                operation_id = %payment.operation_id,
                amount = payment.amount,
                channel = payment.channel.name(),
                "invoice paid"
            );
            invoice.payments.push(payment);
            if invoice.status == Status::Awaiting && invoice.paid_amount() >= invoice.amount {
                invoice.status = Status::Paid;
            }
            let index = invoice.payments.len() - 1;
            invoice.notify(Status::Paid, Some(index), now, &state.deps.secret, out);
            Ok((StatusCode::CREATED, invoice.to_sim_json()))
        })
    })
}

/// A `POST /sim/invoices/by-account/{account_number}/return` body; every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReturnRequest {
    /// The payment; by default the last one not returned.
    #[serde(default)]
    operation_id: Option<String>,
    /// A bank's reversal (216) rather than a refund.
    #[serde(default)]
    reversal: bool,
}

/// Returns one payment to the payer, as a refund or the bank's reversal, with its notification.
/// The invoice leaves `paid` when its payments no longer add up: `refunded` after a refund,
/// `awaiting` (payable again) after a reversal.
async fn return_payment(
    State(state): State<Arc<EripState>>,
    Path(account_number): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let route = format!("POST /sim/invoices/by-account/{account_number}/return");
    state.idempotency.run(&headers, &route, &body, || {
        let request: ReturnRequest = if body.trim_ascii().is_empty() {
            ReturnRequest::default()
        } else {
            parse_json(&body)?
        };
        state.with_book(|book, out| {
            let invoice = book.by_account(&account_number)?;
            let index = invoice
                .payments
                .iter()
                .rposition(|p| {
                    p.returned.is_none()
                        && request
                            .operation_id
                            .as_deref()
                            .is_none_or(|o| o == p.operation_id)
                })
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::CONFLICT,
                        "not_paid",
                        "no payment of this invoice to return",
                    )
                })?;
            let kind = if request.reversal {
                Status::Reversed
            } else {
                Status::Refunded
            };
            invoice.payments[index].returned = Some(kind);
            if invoice.status == Status::Paid && invoice.paid_amount() < invoice.amount {
                invoice.status = if request.reversal {
                    Status::Awaiting
                } else {
                    Status::Refunded
                };
            }
            let now = Utc::now();
            invoice.notify(kind, Some(index), now, &state.deps.secret, out);
            tracing::info!(
                simulator = %state.ctx.kind,
                invoice_id = %invoice.invoice_id,
                operation_id = %invoice.payments[index].operation_id,
                kind = kind.name(),
                "payment returned"
            );
            Ok((StatusCode::OK, invoice.to_sim_json()))
        })
    })
}

/// A fresh ERIP operation number: 18 random decimal digits. Random rather than counted, so that
/// a restarted simulator does not repeat the numbers a hub has already seen (and would take a
/// new payment for a duplicate notice).
fn operation_id() -> String {
    rand::rng()
        .random_range(100_000_000_000_000_000_u64..1_000_000_000_000_000_000)
        .to_string()
}

/// A `POST /sim/clock/expire` body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpireRequest {
    #[serde(default)]
    at: Option<String>,
}

async fn expire(State(state): State<Arc<EripState>>, headers: HeaderMap, body: Bytes) -> Response {
    state
        .idempotency
        .run(&headers, "POST /sim/clock/expire", &body, || {
            let request: ExpireRequest = if body.trim_ascii().is_empty() {
                ExpireRequest::default()
            } else {
                parse_json(&body)?
            };
            let at = match request.at.as_deref().map(str::trim) {
                None => Utc::now(),
                Some(raw) => DateTime::parse_from_rfc3339(raw)
                    .map_err(|_| {
                        ApiError::invalid_request(
                            "at must be an RFC 3339 time such as 2026-11-29T10:00:00Z",
                        )
                    })?
                    .with_timezone(&Utc),
            };
            let expired = state.with_book(|book, out| book.expire_due(at, &state.deps.secret, out));
            tracing::info!(
                simulator = %state.ctx.kind,
                count = expired.len(),
                at = %timestamp(at),
                "invoices expired on demand"
            );
            Ok((StatusCode::OK, json!({"expired": expired})))
        })
}

/// `GET /sim/invoices` filters.
#[derive(Debug, Deserialize)]
struct ListQuery {
    #[serde(default)]
    account_number: Option<String>,
    #[serde(default)]
    status: Option<Status>,
}

async fn list(
    State(state): State<Arc<EripState>>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<axum::Json<Value>, ApiError> {
    let Query(query) =
        query.map_err(|e| ApiError::invalid_request(format!("bad query: {}", e.body_text())))?;
    let invoices = state.with_book(|book, out| {
        book.expire_due(Utc::now(), &state.deps.secret, out);
        book.invoices
            .iter()
            .map(|(_, invoice)| invoice)
            .filter(|i| {
                query
                    .account_number
                    .as_deref()
                    .is_none_or(|a| a == i.account_number)
                    && query.status.is_none_or(|s| s == i.status)
            })
            .map(Invoice::to_sim_json)
            .collect::<Vec<_>>()
    });
    Ok(axum::Json(json!({"invoices": invoices})))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invoice(notify_url: Option<&str>) -> Invoice {
        Invoice {
            invoice_id: "erip-1".into(),
            account_number: "1".repeat(ACCOUNT_DIGITS),
            amount: 2750,
            description: "fee".into(),
            created_at: Utc::now(),
            expires_at: Utc::now() + chrono::TimeDelta::hours(1),
            notify_url: notify_url.map(|u| Url::parse(u).expect("a URL")),
            status: Status::Awaiting,
            payments: Vec::new(),
            notifications: Vec::new(),
        }
    }

    #[test]
    fn a_change_without_a_notify_url_is_recorded_but_not_sent() {
        let mut invoice = invoice(None);
        let mut out = Vec::new();
        invoice.change(Status::Cancelled, Utc::now(), b"k", &mut out);
        assert!(out.is_empty());
        assert_eq!(invoice.notifications.len(), 1);
        assert_eq!(invoice.notifications[0].delivery, Delivery::None);
    }

    #[test]
    fn expiry_happens_only_to_an_awaiting_invoice_that_is_due() {
        let mut invoice = invoice(Some("http://127.0.0.1:1/n"));
        let mut out = Vec::new();
        assert!(!invoice.expire_if_due(Utc::now(), b"k", &mut out));
        let later = Utc::now() + chrono::TimeDelta::hours(2);
        assert!(invoice.expire_if_due(later, b"k", &mut out));
        assert_eq!(invoice.status, Status::Expired);
        assert!(!invoice.expire_if_due(later, b"k", &mut out));
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn past_the_bound_the_oldest_invoice_is_unknown_by_id_and_account() {
        let mut book = Book::new(Limit::new(2, Duration::from_secs(3600)));
        for n in 1..=3 {
            let mut invoice = invoice(None);
            invoice.invoice_id = format!("erip-{n}");
            invoice.account_number = n.to_string().repeat(ACCOUNT_DIGITS);
            book.add(invoice);
        }
        let first_account = "1".repeat(ACCOUNT_DIGITS);
        assert_eq!(
            book.by_id("erip-1")
                .map(|_| ())
                .map_err(|e| e.body()["error"].clone()),
            Err(json!("unknown_invoice"))
        );
        assert_eq!(
            book.by_account(&first_account)
                .map(|_| ())
                .map_err(|e| e.body()["error"].clone()),
            Err(json!("unknown_account"))
        );
        assert!(!book.has_account(&first_account), "free to register again");
        assert!(book.by_id("erip-2").is_ok());
        assert_eq!(
            book.by_account(&"3".repeat(ACCOUNT_DIGITS))
                .map(|i| i.invoice_id.clone())
                .ok(),
            Some("erip-3".to_owned())
        );
        let listed: Vec<&String> = book.invoices.iter().map(|(id, _)| id).collect();
        assert_eq!(listed, vec!["erip-2", "erip-3"]);
        assert_eq!(book.by_account.len(), 2, "the index follows");
    }

    #[test]
    fn operation_ids_are_18_digits() {
        let id = operation_id();
        assert_eq!(id.len(), 18);
        assert!(id.bytes().all(|b| b.is_ascii_digit()));
    }
}
