//! The mobile operators' document (handlers: `crate::operators::api`; reports:
//! `crate::operators::delivery`).

#![allow(
    dead_code,
    reason = "the functions carry the operations' annotations and the types are schemas only"
)]

use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use super::common::{ApiError, IDEMPOTENCY_KEY, TRACEPARENT};

/// A number's state at the operator.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
enum SubscriberStatus {
    /// An SMS would be delivered.
    Active,
    /// The operator blocked the subscriber: an SMS is refused.
    Blocked,
}

/// A number the operator serves (for a ported number, the operator that serves it now).
#[derive(ToSchema)]
#[schema(example = json!({"msisdn": "+375291234567", "operator": "a1", "status": "active"}))]
struct Subscriber {
    /// The number, `+375` and 9 digits.
    #[schema(pattern = r"^\+375(25|29|33|44)[0-9]{7}$")]
    msisdn: String,
    /// The operator (`a1`, `mts`, `life`).
    operator: String,
    /// Whether it can receive.
    status: SubscriberStatus,
}

/// An SMS to send.
#[derive(ToSchema)]
#[schema(example = json!({"sender": "Portal", "to": "+375291234567", "text": "Код: 123456", "callback_url": "http://127.0.0.1:8080/callbacks/sms/a1"}))]
struct SendRequest {
    /// The sender name shown on the phone, 1 to 20 characters.
    #[schema(min_length = 1, max_length = 20)]
    sender: String,
    /// The recipient, a Belarusian mobile number (`+375` 25/29/33/44 and 7 digits) this
    /// operator serves.
    to: String,
    /// The text, 1 to 1000 characters.
    #[schema(min_length = 1, max_length = 1000)]
    text: String,
    /// Where the signed delivery report is posted (absolute http(s) URL); none without it.
    #[schema(format = "uri")]
    callback_url: Option<String>,
}

/// The operator took the SMS; its delivery report follows at `callback_url`.
#[derive(ToSchema)]
#[schema(example = json!({"message_id": "a1-5f0c2d7e-0d0a-4c55-b1c4-0f3b1c8f9e01", "status": "accepted"}))]
struct SendAnswer {
    /// The operator's message id; the delivery report names it.
    message_id: String,
    /// Always `accepted`.
    status: String,
}

/// A message on a phone's screen.
#[derive(ToSchema)]
struct InboxEntry {
    message_id: String,
    sender: String,
    text: String,
    /// When the phone received it (RFC 3339, UTC).
    received_at: chrono::DateTime<chrono::Utc>,
}

/// What a phone received, oldest first (whichever operator is asked).
#[derive(ToSchema)]
struct Inbox {
    msisdn: String,
    messages: Vec<InboxEntry>,
}

/// Where a message's delivery report is.
#[derive(ToSchema)]
struct ReportState {
    /// `none` (no callback URL), `pending`, `sent`, `dropped` (fault), `gave_up`, `cancelled`.
    status: String,
    /// Attempts made.
    attempts: u32,
    /// Reports the receiver took (2 with a duplicate).
    sent: u32,
}

/// A message as the operator holds it (simulator only).
#[derive(ToSchema)]
struct MessageRecord {
    message_id: String,
    operator: String,
    sender: String,
    to: String,
    text: String,
    callback_url: Option<String>,
    /// `accepted`, `delivered` or `failed`.
    status: String,
    accepted_at: chrono::DateTime<chrono::Utc>,
    delivered_at: Option<chrono::DateTime<chrono::Utc>>,
    report: ReportState,
    /// The caller's W3C trace context, sent back with the report.
    traceparent: Option<String>,
}

/// Whether the operator serves a number, and whether it can receive.
#[utoipa::path(
    get,
    path = "/api/v1/subscribers/{msisdn}",
    tag = "sms",
    operation_id = "subscriber",
    params(("msisdn" = String, Path, description = "The number, `+375` and 9 digits.")),
    responses(
        (status = 200, description = "The operator serves the number.", body = Subscriber),
        (status = 400, description = "`invalid_msisdn`: not a Belarusian mobile number.", body = ApiError),
        (status = 404, description = "`not_our_subscriber`: another operator serves it.", body = ApiError),
        (status = 503, description = "`unavailable`: an injected fault.", body = ApiError)
    )
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn subscriber() {}

/// Sends an SMS; the delivery report goes to `callback_url` (see the webhook
/// `delivery-report`), late, twice or not at all by the faults.
#[utoipa::path(
    post,
    path = "/api/v1/messages",
    tag = "sms",
    operation_id = "send",
    params(
        ("Idempotency-Key" = Option<String>, Header, description = IDEMPOTENCY_KEY),
        ("traceparent" = Option<String>, Header, description = TRACEPARENT)
    ),
    request_body(content = SendRequest),
    responses(
        (status = 202, description = "Accepted for delivery.", body = SendAnswer),
        (status = 400, description = "`invalid_request` (a field out of bounds, a bad callback URL) or `invalid_msisdn`.", body = ApiError),
        (status = 404, description = "`not_our_subscriber`: another operator serves the number.", body = ApiError),
        (status = 409, description = "`idempotency_conflict`.", body = ApiError),
        (status = 422, description = "`subscriber_blocked`: the number is blocked.", body = ApiError),
        (status = 503, description = "`unavailable`: an injected fault.", body = ApiError)
    )
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn send() {}

/// What a phone received (simulator only; a phone is one phone whichever operator is asked).
#[utoipa::path(
    get,
    path = "/sim/inbox/{msisdn}",
    tag = "simulator",
    operation_id = "inbox",
    params(("msisdn" = String, Path, description = "The number.")),
    responses(
        (status = 200, description = "The phone's messages, oldest first.", body = Inbox),
        (status = 400, description = "`invalid_msisdn`.", body = ApiError)
    )
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn inbox() {}

/// A message and its report's state (simulator only).
#[utoipa::path(
    get,
    path = "/sim/messages/{message_id}",
    tag = "simulator",
    operation_id = "message",
    params(("message_id" = String, Path, description = "The operator's message id.")),
    responses(
        (status = 200, description = "The message.", body = MessageRecord),
        (status = 404, description = "`not_found`: no message with this id at this operator.", body = ApiError)
    )
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn message() {}

/// The SMPP faults in force on the operator's SMS centre.
#[derive(ToSchema)]
#[schema(example = json!({"latency_ms": 0, "throttle_rate": 0.3, "queue_full_rate": 0.0, "system_error_rate": 0.0, "drop_receipt_rate": 0.0, "duplicate_receipt_rate": 0.0, "receipt_first_rate": 0.0, "refuse_binds": 0, "drop_connection_after": null, "drop_accepted": false}))]
struct SmppFaults {
    /// How long every request (bind, submit_sm, enquire_link) waits before its answer.
    latency_ms: u64,
    /// The share of submit_sm answered ESME_RTHROTTLED (0x58), not taken.
    throttle_rate: f64,
    /// The share of submit_sm answered ESME_RMSGQFUL (0x14), not taken.
    queue_full_rate: f64,
    /// The share of submit_sm answered ESME_RSYSERR (0x08), not taken.
    system_error_rate: f64,
    /// The share of delivery receipts never sent.
    drop_receipt_rate: f64,
    /// The share of delivery receipts sent twice.
    duplicate_receipt_rate: f64,
    /// The share of single-part messages whose receipt goes out before their submit_sm_resp.
    receipt_first_rate: f64,
    /// How many of the next binds are refused (ESME_RBINDFAIL).
    refuse_binds: u32,
    /// The submit_sm (1 = the next) on which its connection is dropped without an answer; once.
    drop_connection_after: Option<u32>,
    /// Whether that submit_sm was taken (and reaches the phone) before the drop.
    drop_accepted: bool,
}

/// A `PUT /sim/smpp/faults` body: the fields given replace the current values, the others stay
/// (`drop_connection_after` 0 clears it).
#[derive(ToSchema)]
#[schema(example = json!({"throttle_rate": 0.3}))]
struct SmppFaultPatch {
    latency_ms: Option<u64>,
    throttle_rate: Option<f64>,
    queue_full_rate: Option<f64>,
    system_error_rate: Option<f64>,
    drop_receipt_rate: Option<f64>,
    duplicate_receipt_rate: Option<f64>,
    receipt_first_rate: Option<f64>,
    refuse_binds: Option<u32>,
    drop_connection_after: Option<u32>,
    drop_accepted: Option<bool>,
}

/// A text a phone received a second time over SMPP.
#[derive(ToSchema)]
struct Duplicate {
    msisdn: String,
    /// The SMS centre's id of the second copy (its first segment's).
    message_id: String,
    text: String,
    /// When the second copy arrived (RFC 3339, UTC).
    at: chrono::DateTime<chrono::Utc>,
}

/// The duplicates recorded, oldest first.
#[derive(ToSchema)]
struct Duplicates {
    duplicates: Vec<Duplicate>,
}

/// The SMPP faults in force (simulator only).
#[utoipa::path(
    get,
    path = "/sim/smpp/faults",
    tag = "simulator",
    operation_id = "smpp_faults",
    responses((status = 200, description = "The faults.", body = SmppFaults))
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn smpp_faults() {}

/// Changes the SMPP faults (simulator only).
#[utoipa::path(
    put,
    path = "/sim/smpp/faults",
    tag = "simulator",
    operation_id = "set_smpp_faults",
    request_body = SmppFaultPatch,
    responses(
        (status = 200, description = "The faults now in force.", body = SmppFaults),
        (status = 400, description = "`invalid_request`: a value out of range or an unknown field.", body = ApiError)
    )
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn set_smpp_faults() {}

/// The texts phones received twice over SMPP (simulator only).
#[utoipa::path(
    get,
    path = "/sim/smpp/duplicates",
    tag = "simulator",
    operation_id = "smpp_duplicates",
    responses((status = 200, description = "The duplicates.", body = Duplicates))
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn smpp_duplicates() {}

/// The operator's own operations.
#[derive(OpenApi)]
#[openapi(paths(
    subscriber,
    send,
    inbox,
    message,
    smpp_faults,
    set_smpp_faults,
    smpp_duplicates
))]
pub(super) struct Doc;

/// The delivery report an operator posts to the message's `callback_url`.
#[derive(ToSchema)]
#[schema(example = json!({"message_id": "a1-5f0c2d7e-0d0a-4c55-b1c4-0f3b1c8f9e01", "to": "+375291234567", "status": "delivered", "at": "2026-11-26T10:00:00.123Z"}))]
struct DeliveryReport {
    /// The operator's message id, as the send answered it.
    message_id: String,
    /// The recipient.
    to: String,
    /// `delivered`, or `failed` when the operator gave up.
    #[schema(pattern = "^(delivered|failed)$")]
    status: String,
    /// When it happened (RFC 3339, UTC, milliseconds).
    at: chrono::DateTime<chrono::Utc>,
}

/// A delivery report, posted to the message's `callback_url` once the message reached the phone
/// or never will; retried with a doubling backoff (0.2 s, 5 retries) while the receiver answers
/// other than 2xx; the same signed bytes on every attempt.
#[utoipa::path(
    post,
    path = "/delivery-report",
    operation_id = "delivery_report",
    params(("traceparent" = Option<String>, Header, description = "The trace context the send came with.")),
    request_body(content = DeliveryReport),
    security(("sms_signature" = [])),
    responses(
        (status = 200, description = "Taken (any 2xx)."),
        (status = 401, description = "Refused: the signature is wrong; not retried (any 4xx).")
    )
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn delivery_report() {}

/// Adds the reports' signature scheme.
struct Signature;

impl Modify for Signature {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "sms_signature",
                SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                    "X-Sms-Signature",
                    "`X-Sms-Signature: sha256=<lower-case hex of HMAC-SHA256(operator's secret, body)>` over the exact body bytes; each operator has its own secret, shared with the hub.",
                ))),
            );
    }
}

/// The calls an operator makes.
#[derive(OpenApi)]
#[openapi(paths(delivery_report), modifiers(&Signature))]
pub(super) struct Webhooks;
