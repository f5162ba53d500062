//! The hub's OpenAPI 3.1 document: the callbacks the external systems post to
//! (`HUB_HTTP_ADDR`), this document, and the operators' endpoints (`HUB_OPS_ADDR`, a server of
//! their own in the document). Generated from the code: the operations are `utoipa` path
//! annotations on functions of their own (the handlers stay as they are) and the bodies
//! `ToSchema` types; the tests check that every route the two routers serve is documented and
//! the other way round, that the document is valid OpenAPI 3.1, and that the examples are
//! bodies the hub's own parsers take.
//!
//! The bodies are what the external systems send. The back-offices' answers are the queue
//! contracts' messages (`contracts::procedure`): their published JSON Schemas, put in the
//! document under the message type's name (`contracts::schema::openapi`).

#![allow(
    dead_code,
    reason = "the functions carry the operations' annotations and the types are schemas only"
)]

use chrono::{DateTime, Utc};
use contracts::{Message, MessageType, procedure};
use serde_json::{Value, json};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// Where the hub serves this document, on its callbacks' address.
pub(super) const PATH: &str = "/openapi.json";

/// The description of the `traceparent` header every callback may carry.
const TRACEPARENT: &str = "W3C trace context of the call that caused the callback; the message the callback puts on the bus continues that trace (a new one starts without it).";

/// The answer shared by every callback's refusals and acceptances: a short text.
const TEXT: &str = "text/plain";

/// An SMS gateway's delivery report.
#[derive(ToSchema)]
#[schema(example = json!({"message_id": "a1-5f0c2d7e-0d0a-4c55-b1c4-0f3b1c8f9e01", "to": "+375291234567", "status": "delivered", "at": "2026-11-26T10:00:00.123Z"}))]
pub(super) struct DeliveryReport {
    /// The operator's message id, as its send answer gave it; not empty.
    #[schema(min_length = 1)]
    message_id: String,
    /// The recipient: the number the hub sent the SMS to.
    #[schema(pattern = r"^\+375(25|29|33|44)[0-9]{7}$")]
    to: String,
    /// `delivered`, or `failed` when the operator gave up.
    #[schema(pattern = "^(delivered|failed)$")]
    status: String,
    /// When it happened (RFC 3339).
    at: DateTime<Utc>,
}

/// What an invoice became.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
enum InvoiceStatus {
    /// Not news: accepted, nothing done.
    Awaiting,
    /// One payment (its operation number and amount), part of the amount due, all or more.
    Paid,
    /// Its time passed unpaid.
    Expired,
    /// Cancelled before it was paid.
    Cancelled,
    /// One payment was refunded.
    Refunded,
    /// One payment was reversed by the bank (ERIP's message 216).
    Reversed,
}

/// ERIP's notification of an invoice's status change.
#[derive(ToSchema)]
#[schema(example = json!({
    "event_id": "evt-3f1c", "invoice_id": "erip-0f3b1c8f-9e01-4c55-b1c4-5f0c2d7e0d0a",
    "account_number": "202611260000000000000000000042", "status": "paid", "amount": 2500,
    "operation_id": "123456789012345678", "occurred_at": "2026-11-26T10:05:00.000Z"
}))]
pub(super) struct EripNotification {
    /// Names the status change: a retried or duplicated notification has the same one.
    #[schema(min_length = 1)]
    event_id: String,
    /// ERIP's invoice id; it must be the one the application's saga holds.
    #[schema(min_length = 1)]
    invoice_id: String,
    /// The order number the invoice was registered under: 30 decimal digits.
    #[schema(pattern = "^[0-9]{30}$")]
    account_number: String,
    /// The new status.
    status: InvoiceStatus,
    /// For `paid`, `refunded`, `reversed`: the payment's amount; else the amount due; kopecks.
    amount: u64,
    /// The payment's operation number: required for `paid`, `refunded` and `reversed`.
    #[schema(nullable = false)]
    operation_id: Option<String>,
    /// When the status changed: refused when more than 72 hours old or more than 5 minutes
    /// ahead of the hub's clock, whatever the signature.
    occurred_at: DateTime<Utc>,
}

/// The answers an HTTP back-office may call back with, in the order the document lists them.
const ANSWERS: [MessageType; 5] = [
    procedure::AuthorityInfoRequested::TYPE,
    procedure::AuthorityDecidedSigned::TYPE,
    procedure::AuthorityDecided::TYPE,
    procedure::AuthorityComplaintDecidedSigned::TYPE,
    procedure::AuthorityComplaintDecided::TYPE,
];

/// A check of readiness.
#[derive(ToSchema)]
struct Check {
    /// Passed.
    ok: bool,
    /// What was seen, for a person.
    detail: String,
}

/// The readiness verdict.
#[derive(ToSchema)]
#[schema(example = json!({"status": "ready", "checks": {"broker": {"ok": true, "detail": "connected"}, "database": {"ok": true, "detail": "SELECT 1 in 2 ms"}, "outbox": {"ok": true, "detail": "nothing unsent"}}, "failing": []}))]
struct Readiness {
    /// `ready` or `not_ready`.
    #[schema(pattern = "^(ready|not_ready)$")]
    status: String,
    /// Each check by name: `broker`, `database`, `outbox`.
    checks: std::collections::BTreeMap<String, Check>,
    /// The names of the failing checks.
    failing: Vec<String>,
}

/// Alive.
#[derive(ToSchema)]
#[schema(example = json!({"status": "alive"}))]
struct Alive {
    /// Always `alive`.
    status: String,
}

/// An SMS gateway's delivery report about an SMS the hub sent. Every verified report that
/// needs nothing more is answered alike, known message id or not.
#[utoipa::path(
    post,
    path = "/callbacks/sms/{operator}",
    tag = "callbacks",
    operation_id = "sms_delivery_report",
    params(
        ("operator" = String, Path, description = "The operator that sent the SMS and signs the report: `a1`, `mts` or `life`."),
        ("traceparent" = Option<String>, Header, description = TRACEPARENT)
    ),
    request_body(content = DeliveryReport),
    security(("sms_signature" = [])),
    responses(
        (status = 200, description = "`recorded`.", content_type = TEXT, body = String),
        (status = 400, description = "A signed body that is not a report: the reason.", content_type = TEXT, body = String),
        (status = 401, description = "Unsigned or wrongly signed (refused before the body is read).", content_type = TEXT, body = String),
        (status = 404, description = "No such operator.", content_type = TEXT, body = String),
        (status = 409, description = "The report's `to` is not the SMS's recipient.", content_type = TEXT, body = String),
        (status = 413, description = "The body is over 256 KiB."),
        (status = 503, description = "Not recorded now (`try again later`); the operator retries.", content_type = TEXT, body = String)
    )
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn sms_delivery_report() {}

/// ERIP's notification of an invoice's status change, for the procedure whose order number
/// the invoice carries. Copies change nothing: the first of each (order number, status,
/// operation number) is recorded, a copy is answered `already recorded`.
#[utoipa::path(
    post,
    path = "/callbacks/erip",
    tag = "callbacks",
    operation_id = "erip_notification",
    params(("traceparent" = Option<String>, Header, description = TRACEPARENT)),
    request_body(content = EripNotification),
    security(("erip_signature" = [])),
    responses(
        (status = 200, description = "`recorded`, `already recorded`, or `unknown order number` (nothing waits for it; ERIP stops re-sending).", content_type = TEXT, body = String),
        (status = 400, description = "A signed body that is not a notification, or outside the acceptance window: the reason.", content_type = TEXT, body = String),
        (status = 401, description = "Unsigned or wrongly signed.", content_type = TEXT, body = String),
        (status = 409, description = "About another invoice than the one of this order number.", content_type = TEXT, body = String),
        (status = 413, description = "The body is over 256 KiB."),
        (status = 503, description = "Not recorded now (`try again later`); ERIP retries.", content_type = TEXT, body = String)
    )
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn erip_notification() {}

/// An HTTP back-office's later answer about an application or complaint of its authority; it
/// goes on the bus as the authority's message, the way a queue authority's would. Its message
/// id is derived from the authority, the type and the exact body, so a re-sent answer counts
/// once.
#[utoipa::path(
    post,
    path = "/callbacks/authority/{authority}/{message_type}",
    tag = "callbacks",
    operation_id = "authority_answer",
    params(
        ("authority" = String, Path, description = "The HTTP authority's id in the hub's catalogue (the path the hub gave its back-office with the application)."),
        ("message_type" = String, Path, description = "The answer's type: `authority.info_requested.v1`, `authority.decided.v2`, `authority.decided.v1`, `authority.complaint_decided.v2` or `authority.complaint_decided.v1`; the body is that message's."),
        ("X-Authority-Timestamp" = i64, Header, description = "When the attempt was sent: whole seconds since 1970-01-01 UTC; refused outside the hub's window (`HUB_BACKOFFICE_CALLBACK_WINDOW`, 5 minutes by default) either way."),
        ("traceparent" = Option<String>, Header, description = TRACEPARENT)
    ),
    request_body(content = Object, description = "The body of the message type the path names (`oneOf` the five)."),
    security(("authority_signature" = [])),
    responses(
        (status = 200, description = "`recorded`.", content_type = TEXT, body = String),
        (status = 400, description = "Not a body of that type, or a type a back-office may not send: the reason.", content_type = TEXT, body = String),
        (status = 401, description = "A wrong signature or a timestamp outside the window: the reason.", content_type = TEXT, body = String),
        (status = 403, description = "The application or complaint is another authority's.", content_type = TEXT, body = String),
        (status = 404, description = "Not an HTTP authority of this hub, or no such application or complaint.", content_type = TEXT, body = String),
        (status = 413, description = "The body is over 256 KiB."),
        (status = 503, description = "Not recorded now (`try again later`); the back-office retries.", content_type = TEXT, body = String)
    )
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn authority_answer() {}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "callbacks",
    operation_id = "openapi",
    responses((status = 200, description = "The hub's OpenAPI 3.1 document.", content_type = "application/json", body = Object))
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn openapi() {}

/// `ok` while the process serves HTTP (operators' address).
#[utoipa::path(
    get,
    path = "/health",
    tag = "operations",
    operation_id = "health",
    responses((status = 200, description = "`ok`.", content_type = TEXT, body = String))
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn health() {}

/// Liveness (operators' address).
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    operation_id = "alive",
    responses((status = 200, description = "Alive.", body = Alive))
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn alive() {}

/// Readiness: the broker, the database and the outbox's lag (operators' address).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    operation_id = "ready",
    responses(
        (status = 200, description = "Ready.", body = Readiness),
        (status = 503, description = "Not ready; `failing` names the failing checks.", body = Readiness)
    )
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn ready() {}

/// The process's metrics, OpenMetrics text, the gauges read now (operators' address).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    operation_id = "metrics",
    responses((status = 200, description = "OpenMetrics 1.0.0 text.", content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String))
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn metrics() {}

/// Adds the callbacks' signature schemes.
struct Signatures;

impl Modify for Signatures {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let header = |name: &str, description: &str| {
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                name,
                description,
            )))
        };
        components.add_security_scheme(
            "sms_signature",
            header(
                "X-Sms-Signature",
                "`X-Sms-Signature: sha256=<lower-case hex of HMAC-SHA256(operator's secret, body)>` over the exact body bytes; each operator has its own secret (HUB_SMS_*_SECRET), so a report is taken only on the path of the operator that signed it.",
            ),
        );
        components.add_security_scheme(
            "erip_signature",
            header(
                "X-Erip-Signature",
                "`X-Erip-Signature: sha256=<lower-case hex of HMAC-SHA256(secret, body)>` over the exact body bytes, with ERIP's secret (HUB_ERIP_SECRET); checked in constant time before the body is parsed.",
            ),
        );
        components.add_security_scheme(
            "authority_signature",
            header(
                "X-Authority-Signature",
                "`X-Authority-Signature: sha256=<lower-case hex of HMAC-SHA256(secret, M)>` with `M = METHOD + \"\\n\" + path + \"\\n\" + timestamp + \"\\n\" + body`: the method (`POST`), the path of the callback URL the hub gave (from HUB_CALLBACK_URL, percent-encoded, without the query, e.g. `/callbacks/authority/mns/authority.decided.v2`), the `X-Authority-Timestamp` value, and the exact body bytes; the secret is the authority's own, the one the hub signs its calls to that back-office with.",
            ),
        );
    }
}

/// The hub's HTTP operations.
#[derive(OpenApi)]
#[openapi(
    paths(
        sms_delivery_report,
        erip_notification,
        authority_answer,
        openapi,
        health,
        alive,
        ready,
        metrics
    ),
    modifiers(&Signatures),
    info(
        title = "Integration hub: HTTP side",
        version = "1",
        description = "The callbacks the external systems post to the hub (`HUB_HTTP_ADDR`, reached as `HUB_CALLBACK_URL`): the SMS gateways' delivery reports, ERIP's payment notifications and the HTTP back-offices' later answers, each signed; and the operators' endpoints (health, readiness, metrics), served on the internal `HUB_OPS_ADDR` only. Every callback body is at most 256 KiB; the answers are short texts.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    tags(
        (name = "callbacks", description = "On the callbacks' address (HUB_HTTP_ADDR)."),
        (name = "operations", description = "On the operators' address (HUB_OPS_ADDR), never the callbacks'.")
    )
)]
struct Doc;

/// The operators' paths, served on `HUB_OPS_ADDR`.
pub(super) const OPS_PATHS: [&str; 4] = ["/health", "/healthz", "/readyz", "/metrics"];

/// The document, as JSON: deterministic, no host named (the servers are templates).
///
/// # Panics
///
/// When a body's stand-in names no published message type: a mistake in this code, which the
/// tests that build the document find.
pub(super) fn document() -> Value {
    let mut doc = serde_json::to_value(Doc::openapi()).unwrap_or_default();
    let server = |description: &str, port: &str| {
        json!([{
            "url": "{scheme}://{host}:{port}",
            "description": description,
            "variables": {
                "scheme": {"default": "http", "enum": ["http", "https"]},
                "host": {"default": "127.0.0.1"},
                "port": {"default": port},
            }
        }])
    };
    doc["servers"] = server(
        "The callbacks' address (HUB_HTTP_ADDR; the external systems are given HUB_CALLBACK_URL, which may be a proxy in front of it).",
        "8090",
    );
    // One of the answers' bodies, as the path's `message_type` names it: the contracts'
    // published schemas.
    let answers: Result<Vec<Value>, _> = ANSWERS
        .iter()
        .map(|answer| contracts::schema::openapi::insert(&mut doc, &answer.to_string()))
        .collect();
    let answers = answers.unwrap_or_else(|e| panic!("the hub's OpenAPI document: {e}"));
    doc["paths"]["/callbacks/authority/{authority}/{message_type}"]["post"]["requestBody"]["content"]
        ["application/json"]["schema"] = json!({ "oneOf": answers });
    for path in OPS_PATHS {
        doc["paths"][path]["servers"] =
            server("The operators' address (HUB_OPS_ADDR), internal.", "8092");
    }
    doc
}
