//! ERIP's document (handlers: `crate::erip::api`; notifications: `crate::erip::notify`).

#![allow(
    dead_code,
    reason = "the functions carry the operations' annotations and the types are schemas only"
)]

use chrono::{DateTime, Utc};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use super::common::{ApiError, IDEMPOTENCY_KEY};

/// Where an invoice is in its life; `expired`, `cancelled` and `refunded` are final. `reversed`
/// is never an invoice's status, only a notification's: one payment reversed by the bank.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
enum InvoiceStatus {
    Awaiting,
    Paid,
    Expired,
    Cancelled,
    Refunded,
    Reversed,
}

/// Where the payer paid.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
enum Channel {
    Bank,
    Terminal,
    InternetBanking,
}

/// An invoice to register.
#[derive(ToSchema)]
#[schema(example = json!({
    "account_number": "202611260000000000000000000042", "amount": 2500, "currency": 933,
    "description": "Государственная пошлина", "expires_at": "2026-11-29T10:00:00Z",
    "notify_url": "http://127.0.0.1:8080/callbacks/erip"
}))]
struct CreateInvoice {
    /// The account number the payer pays by: the hub's order number, exactly 30 decimal
    /// digits, one invoice per number.
    #[schema(pattern = "^[0-9]{30}$")]
    account_number: String,
    /// The amount due in kopecks, above 0.
    #[schema(minimum = 1)]
    amount: u64,
    /// ISO 4217 numeric code; only 933 (BYN).
    #[schema(minimum = 933, maximum = 933)]
    currency: u64,
    /// What the payer sees, 1 to 255 characters.
    #[schema(min_length = 1, max_length = 255)]
    description: String,
    /// When it stops being payable (RFC 3339, in the future).
    expires_at: DateTime<Utc>,
    /// Where the signed notifications go (absolute http(s) URL); none are sent without it.
    #[schema(format = "uri")]
    notify_url: Option<String>,
}

/// The payment the API shows (of a `paid` or `refunded` invoice: the last one).
#[derive(ToSchema)]
struct Payment {
    /// ERIP's operation number (18 digits): unique, it makes payment notices idempotent.
    operation_id: String,
    paid_at: DateTime<Utc>,
    /// What the payer paid, in kopecks.
    amount: u64,
    channel: Channel,
}

/// An invoice as ERIP holds it.
#[derive(ToSchema)]
#[schema(example = json!({
    "invoice_id": "erip-0f3b1c8f-9e01-4c55-b1c4-5f0c2d7e0d0a", "account_number": "202611260000000000000000000042",
    "amount": 2500, "currency": 933, "description": "Государственная пошлина", "status": "awaiting",
    "created_at": "2026-11-26T10:00:00.000Z", "expires_at": "2026-11-29T10:00:00.000Z", "payment": null
}))]
struct Invoice {
    /// ERIP's id (`erip-<uuid>`).
    invoice_id: String,
    account_number: String,
    /// The amount due, in kopecks.
    amount: u64,
    /// 933 (BYN).
    currency: u64,
    description: String,
    status: InvoiceStatus,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    /// The payment, for a `paid` or `refunded` invoice; null before.
    payment: Option<Payment>,
}

/// A payment as the simulator records it.
#[derive(ToSchema)]
struct SimPayment {
    operation_id: String,
    paid_at: DateTime<Utc>,
    amount: u64,
    channel: Channel,
    /// `refunded` or `reversed` once the payment went back; null before.
    returned: Option<String>,
}

/// One status change's notification and where its delivery is.
#[derive(ToSchema)]
struct NotificationState {
    event_id: String,
    status: InvoiceStatus,
    /// `none` (no notify URL), `pending`, `sent`, `dropped` (fault), `gave_up`, `cancelled`.
    delivery: String,
    attempts: u32,
    /// How often the receiver took it (2 with a duplicate).
    sent: u32,
}

/// An invoice with what only the simulator shows: every payment and notification.
#[derive(ToSchema)]
struct SimInvoice {
    invoice_id: String,
    account_number: String,
    amount: u64,
    currency: u64,
    description: String,
    status: InvoiceStatus,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    payment: Option<Payment>,
    /// Paid and not returned, kopecks.
    paid_amount: u64,
    payments: Vec<SimPayment>,
    notify_url: Option<String>,
    notifications: Vec<NotificationState>,
}

/// The simulator's invoices.
#[derive(ToSchema)]
struct SimInvoices {
    invoices: Vec<SimInvoice>,
}

/// A payer pays by account number (simulator only); every field is optional.
#[derive(ToSchema)]
#[schema(example = json!({"channel": "internet_banking"}))]
struct PayRequest {
    /// Where (`bank` by default).
    channel: Option<Channel>,
    /// Kopecks, above 0; by default what is still due (the whole amount once paid).
    #[schema(minimum = 1)]
    amount: Option<u64>,
    /// Pay an expired or cancelled invoice too: a payment arriving after it closed.
    late: Option<bool>,
}

/// A payment goes back to the payer (simulator only); every field is optional.
#[derive(ToSchema)]
struct ReturnRequest {
    /// The payment; by default the last one not returned.
    operation_id: Option<String>,
    /// A bank's reversal (message 216) rather than a refund.
    reversal: Option<bool>,
}

/// Expire the invoices due by a time (simulator only).
#[derive(ToSchema)]
struct ExpireRequest {
    /// The time (RFC 3339); now by default.
    at: Option<DateTime<Utc>>,
}

/// The invoices expired, oldest first.
#[derive(ToSchema)]
struct Expired {
    /// Their ids.
    expired: Vec<String>,
}

/// Registers an invoice.
#[utoipa::path(
    post,
    path = "/api/v1/invoices",
    tag = "invoices",
    operation_id = "create_invoice",
    params(("Idempotency-Key" = Option<String>, Header, description = IDEMPOTENCY_KEY)),
    request_body(content = CreateInvoice),
    responses(
        (status = 201, description = "Registered, `awaiting`.", body = Invoice),
        (status = 400, description = "`invalid_request`, naming the field.", body = ApiError),
        (status = 409, description = "`duplicate_account_number` (an invoice has this number) or `idempotency_conflict`.", body = ApiError),
        (status = 503, description = "`unavailable`: an injected fault.", body = ApiError)
    )
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn create_invoice() {}

/// An invoice.
#[utoipa::path(
    get,
    path = "/api/v1/invoices/{invoice_id}",
    tag = "invoices",
    operation_id = "get_invoice",
    params(("invoice_id" = String, Path, description = "ERIP's invoice id.")),
    responses(
        (status = 200, description = "The invoice.", body = Invoice),
        (status = 404, description = "`unknown_invoice`.", body = ApiError),
        (status = 503, description = "`unavailable`: an injected fault.", body = ApiError)
    )
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn get_invoice() {}

/// Cancels an awaiting invoice (a cancelled one stays so).
#[utoipa::path(
    post,
    path = "/api/v1/invoices/{invoice_id}/cancel",
    tag = "invoices",
    operation_id = "cancel_invoice",
    params(
        ("invoice_id" = String, Path, description = "ERIP's invoice id."),
        ("Idempotency-Key" = Option<String>, Header, description = IDEMPOTENCY_KEY)
    ),
    responses(
        (status = 200, description = "Cancelled.", body = Invoice),
        (status = 404, description = "`unknown_invoice`.", body = ApiError),
        (status = 409, description = "`already_paid` (refund it instead), `invoice_expired` or `idempotency_conflict`.", body = ApiError),
        (status = 503, description = "`unavailable`: an injected fault.", body = ApiError)
    )
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn cancel_invoice() {}

/// Refunds every payment of a paid invoice, each with its notification.
#[utoipa::path(
    post,
    path = "/api/v1/invoices/{invoice_id}/refund",
    tag = "invoices",
    operation_id = "refund_invoice",
    params(
        ("invoice_id" = String, Path, description = "ERIP's invoice id."),
        ("Idempotency-Key" = Option<String>, Header, description = IDEMPOTENCY_KEY)
    ),
    responses(
        (status = 200, description = "Refunded.", body = Invoice),
        (status = 404, description = "`unknown_invoice`.", body = ApiError),
        (status = 409, description = "`not_paid` or `idempotency_conflict`.", body = ApiError),
        (status = 503, description = "`unavailable`: an injected fault.", body = ApiError)
    )
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn refund_invoice() {}

/// Every invoice with its payments and notifications (simulator only).
#[utoipa::path(
    get,
    path = "/sim/invoices",
    tag = "simulator",
    operation_id = "list_invoices",
    params(
        ("account_number" = Option<String>, Query, description = "Only this account number's."),
        ("status" = Option<InvoiceStatus>, Query, description = "Only invoices of this status.")
    ),
    responses(
        (status = 200, description = "The invoices, oldest first.", body = SimInvoices),
        (status = 400, description = "`invalid_request`: a bad query.", body = ApiError)
    )
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn list_invoices() {}

/// A payer pays the invoice of an account number (simulator only).
#[utoipa::path(
    post,
    path = "/sim/invoices/by-account/{account_number}/pay",
    tag = "simulator",
    operation_id = "pay",
    params(
        ("account_number" = String, Path, description = "The invoice's account number."),
        ("Idempotency-Key" = Option<String>, Header, description = IDEMPOTENCY_KEY)
    ),
    request_body(content = Option<PayRequest>, description = "Optional; an empty body takes the defaults."),
    responses(
        (status = 201, description = "Paid; the notification is on its way.", body = SimInvoice),
        (status = 400, description = "`invalid_request`.", body = ApiError),
        (status = 404, description = "`unknown_account`: no invoice has this account number.", body = ApiError),
        (status = 409, description = "`not_awaiting` (closed, and not `late`).", body = ApiError)
    )
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn pay() {}

/// A payment goes back: a refund or the bank's reversal (simulator only).
#[utoipa::path(
    post,
    path = "/sim/invoices/by-account/{account_number}/return",
    tag = "simulator",
    operation_id = "return_payment",
    params(
        ("account_number" = String, Path, description = "The invoice's account number."),
        ("Idempotency-Key" = Option<String>, Header, description = IDEMPOTENCY_KEY)
    ),
    request_body(content = Option<ReturnRequest>, description = "Optional; an empty body takes the defaults."),
    responses(
        (status = 200, description = "Returned; the notification is on its way.", body = SimInvoice),
        (status = 400, description = "`invalid_request`.", body = ApiError),
        (status = 404, description = "`unknown_account`: no invoice has this account number.", body = ApiError),
        (status = 409, description = "`not_paid`: no payment to return.", body = ApiError)
    )
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn return_payment() {}

/// Expires the invoices due by a time, as ERIP's clock does (simulator only).
#[utoipa::path(
    post,
    path = "/sim/clock/expire",
    tag = "simulator",
    operation_id = "expire",
    params(("Idempotency-Key" = Option<String>, Header, description = IDEMPOTENCY_KEY)),
    request_body(content = Option<ExpireRequest>, description = "Optional; an empty body expires what is due now."),
    responses(
        (status = 200, description = "The invoices expired.", body = Expired),
        (status = 400, description = "`invalid_request`.", body = ApiError)
    )
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn expire() {}

/// ERIP's own operations.
#[derive(OpenApi)]
#[openapi(paths(
    create_invoice,
    get_invoice,
    cancel_invoice,
    refund_invoice,
    list_invoices,
    pay,
    return_payment,
    expire
))]
pub(super) struct Doc;

/// A status change of an invoice, posted to its `notify_url`.
#[derive(ToSchema)]
#[schema(example = json!({
    "event_id": "evt-3f1c", "invoice_id": "erip-0f3b1c8f-9e01-4c55-b1c4-5f0c2d7e0d0a",
    "account_number": "202611260000000000000000000042", "status": "paid", "amount": 2500,
    "operation_id": "123456789012345678", "occurred_at": "2026-11-26T10:05:00.000Z"
}))]
struct Notification {
    /// Names the status change: a retried or duplicated notification has the same one.
    event_id: String,
    invoice_id: String,
    /// The order number.
    #[schema(pattern = "^[0-9]{30}$")]
    account_number: String,
    /// The new status (never `awaiting`).
    status: InvoiceStatus,
    /// For `paid`, `refunded`, `reversed`: the payment's amount; else the amount due; kopecks.
    amount: u64,
    /// For `paid`, `refunded`, `reversed`: the payment's operation number; absent otherwise.
    #[schema(nullable = false)]
    operation_id: Option<String>,
    /// When the status changed; the receiver refuses a notification older than 72 hours or
    /// more than 5 minutes ahead of its clock.
    occurred_at: DateTime<Utc>,
}

/// ERIP's notification of a status change, posted to the invoice's `notify_url`, retried while
/// the receiver answers other than 2xx; the same signed bytes on every attempt.
#[utoipa::path(
    post,
    path = "/invoice-notification",
    operation_id = "invoice_notification",
    request_body(content = Notification),
    security(("erip_signature" = [])),
    responses(
        (status = 200, description = "Taken (any 2xx)."),
        (status = 401, description = "Refused: the signature is wrong.")
    )
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn invoice_notification() {}

/// Adds the notifications' signature scheme.
struct Signature;

impl Modify for Signature {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "erip_signature",
                SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                    "X-Erip-Signature",
                    "`X-Erip-Signature: sha256=<lower-case hex of HMAC-SHA256(secret, body)>` over the exact body bytes, the secret shared by ERIP and the provider.",
                ))),
            );
    }
}

/// The calls ERIP makes.
#[derive(OpenApi)]
#[openapi(paths(invoice_notification), modifiers(&Signature))]
pub(super) struct Webhooks;
