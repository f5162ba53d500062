//! What every simulator's document has: the fault-injection control API (`/sim/faults`), the
//! health checks (`/sim/health`, and `/healthz` under the faults), the document itself, the error body, and the finishing touches (info, the
//! generic server, security schemes, webhooks).

#![allow(
    dead_code,
    reason = "the functions carry the operations' annotations and the types are schemas only; \
              the handlers are in crate::faults and crate::server"
)]

use serde_json::{Value, json};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{OpenApi, ToSchema};

/// Every error a simulator answers, whatever the endpoint: `{"error": code, "message": text}`.
/// A request no route serves is `404 not_found` ("no such endpoint"), a method a path does not
/// take `405 method_not_allowed`, a malformed JSON body `400 invalid_request`, an injected fault
/// `503 unavailable`.
#[derive(ToSchema)]
#[schema(
    title = "ApiError",
    example = json!({"error": "invalid_request", "message": "malformed JSON body: expected value at line 1 column 1"})
)]
pub(super) struct ApiError {
    /// A machine-readable code (`invalid_request`, `not_found`, `method_not_allowed`,
    /// `unavailable`, `idempotency_conflict`, and the endpoint's own).
    error: String,
    /// What is wrong, in words.
    message: String,
}

/// The faults in force on one simulator. Each applies to every path but `/sim/` and
/// `/openapi.json`.
#[derive(ToSchema)]
#[schema(
    title = "FaultSettings",
    example = json!({"latency_ms": 0, "error_rate": 0.0, "timeout_rate": 0.0, "drop_callback_rate": 0.0, "duplicate_callback_rate": 0.0, "notification_delay_ms": 0})
)]
pub(super) struct FaultSettings {
    /// Milliseconds every call waits before it is handled.
    #[schema(minimum = 0, maximum = 600_000)]
    latency_ms: u64,
    /// The share of calls answered `503 unavailable` without being handled.
    #[schema(minimum = 0.0, maximum = 1.0)]
    error_rate: f64,
    /// The share of calls held for 60 seconds before they are handled (the caller's timeout).
    #[schema(minimum = 0.0, maximum = 1.0)]
    timeout_rate: f64,
    /// The share of callbacks (delivery reports, notifications, back-office answers) never sent.
    #[schema(minimum = 0.0, maximum = 1.0)]
    drop_callback_rate: f64,
    /// The share of callbacks sent twice.
    #[schema(minimum = 0.0, maximum = 1.0)]
    duplicate_callback_rate: f64,
    /// Milliseconds each ERIP notification waits before its first attempt (ERIP only).
    #[schema(minimum = 0, maximum = 600_000)]
    notification_delay_ms: u64,
}

/// A `PUT /sim/faults` body: the fields given replace the current values, the others stay; an
/// unknown field is refused. The e-mail simulator takes `smtp_reply` (an SMTP reply code to
/// refuse recipients with, or null) and `smtp_reply_rate` too.
#[derive(ToSchema)]
#[schema(title = "FaultPatch", example = json!({"error_rate": 0.2, "latency_ms": 150}))]
pub(super) struct FaultPatch {
    /// Milliseconds every call waits (at most 600000).
    #[schema(minimum = 0, maximum = 600_000)]
    latency_ms: Option<u64>,
    /// The share of calls answered 503, 0.0 to 1.0.
    #[schema(minimum = 0.0, maximum = 1.0)]
    error_rate: Option<f64>,
    /// The share of calls held for 60 seconds, 0.0 to 1.0.
    #[schema(minimum = 0.0, maximum = 1.0)]
    timeout_rate: Option<f64>,
    /// The share of callbacks dropped, 0.0 to 1.0.
    #[schema(minimum = 0.0, maximum = 1.0)]
    drop_callback_rate: Option<f64>,
    /// The share of callbacks sent twice, 0.0 to 1.0.
    #[schema(minimum = 0.0, maximum = 1.0)]
    duplicate_callback_rate: Option<f64>,
    /// Milliseconds each ERIP notification waits (at most 600000).
    #[schema(minimum = 0, maximum = 600_000)]
    notification_delay_ms: Option<u64>,
}

/// The simulator is up.
#[derive(ToSchema)]
#[schema(title = "SimHealth", example = json!({"status": "ok", "simulator": "mvd"}))]
pub(super) struct SimHealth {
    /// Always `ok`.
    status: String,
    /// Which simulator (`mvd`, `a1`, `mts`, `life`, `erip`, `backoffice`, `email`, `gossuok`).
    simulator: String,
}

/// The faults in force.
#[utoipa::path(
    get,
    path = "/sim/faults",
    tag = "simulator control",
    operation_id = "get_faults",
    responses((status = 200, description = "The faults in force.", body = FaultSettings))
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn get_faults() {}

/// Sets some faults; the others stay.
#[utoipa::path(
    put,
    path = "/sim/faults",
    tag = "simulator control",
    operation_id = "put_faults",
    request_body(content = FaultPatch, description = "The faults to change."),
    responses(
        (status = 200, description = "The faults now in force.", body = FaultSettings),
        (status = 400, description = "`invalid_request`: malformed JSON, an unknown field, a rate outside 0.0 to 1.0 or a delay over ten minutes.", body = ApiError)
    )
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn put_faults() {}

/// Clears every fault.
#[utoipa::path(
    delete,
    path = "/sim/faults",
    tag = "simulator control",
    operation_id = "delete_faults",
    responses((status = 200, description = "No fault in force any more.", body = FaultSettings))
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn delete_faults() {}

/// Whether the simulator is up; never under the faults.
#[utoipa::path(
    get,
    path = "/sim/health",
    tag = "simulator control",
    operation_id = "health",
    responses((status = 200, description = "Up.", body = SimHealth))
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn health() {}

/// Whether the simulator's API answers, under the faults as every API call is (its latency,
/// timeouts and `503`s): what the hub's console probes.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "simulator control",
    operation_id = "api_health",
    responses(
        (status = 200, description = "The API answers.", body = SimHealth),
        (status = 503, description = "`unavailable`: an injected fault.", body = ApiError)
    )
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn api_health() {}

/// This document; never under the faults.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "simulator control",
    operation_id = "openapi",
    responses((status = 200, description = "The simulator's OpenAPI 3.1 document.", content_type = "application/json", body = Object))
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn openapi() {}

/// The operations every simulator has.
#[derive(OpenApi)]
#[openapi(
    paths(get_faults, put_faults, delete_faults, health, api_health, openapi),
    components(schemas(ApiError))
)]
pub(super) struct Doc;

/// The description of the `Idempotency-Key` header of a simulator's `POST` endpoints.
pub(super) const IDEMPOTENCY_KEY: &str = "Makes the call idempotent: a second call with the same key and the same body gets the first answer again (with `Idempotent-Replayed: true`); the same key with another body is refused `409 idempotency_conflict`. Without it every call is served.";

/// The description of the W3C `traceparent` header the simulators take and pass on.
pub(super) const TRACEPARENT: &str = "W3C trace context of the caller; a simulator that calls back (a delivery report, a notification) sends it back with the call.";

/// The title and summary of each document.
fn describe(stem: &str) -> (&'static str, &'static str) {
    match stem {
        "mvd" => (
            "MVD population registry (simulator)",
            "Reconciles a person's stated data and identity document with the population registry of the Ministry of Internal Affairs; the simulator's registry is a seeded population.",
        ),
        "operators" => (
            "Mobile operator SMS gateway (simulator of A1, MTS and life:))",
            "Subscriber checks and SMS sending with signed, asynchronous delivery reports. A1, MTS and life:) serve the same API, each on its own port and with its own report secret.",
        ),
        "erip" => (
            "ERIP payment system (simulator)",
            "Invoices by account number (the hub's 30-digit order number) and signed notifications of every status change, posted to the invoice's `notify_url`.",
        ),
        "backoffice" => (
            "Authority HTTP back-office",
            "The API an authority's back-office implements to take work from the hub over HTTP instead of the hub's queue: the hub `PUT`s applications and complaints and `POST`s withdrawals, receipts, information and decision refusals, each signed with `X-Hub-Signature`; the back-office posts its later answers (information requests, decisions) to the callback URL of the application, signed with `X-Authority-Signature` over the method, path, timestamp and body (see `webhooks` and each `PUT`'s `callbacks`). One server serves any number of authorities, each under its own path prefix `/{authority}/`. The `/sim/` paths are the simulator's own.",
        ),
        "email" => (
            "Mail relay (simulator)",
            "An SMTP sink (plain SMTP on its own port, not described here) with an HTTP inbox for tests and the demo.",
        ),
        _ => (
            "GosSUOK state PKI (simulator)",
            "The CA certificates, freshly signed CRLs, the OCSP responder (RFC 6960) and an unsigned JSON certificate status, with a test CA doing real bign (STB 34.101.45) cryptography; `/sim/` issues and revokes certificates and signs with persons' key tokens.",
        ),
    }
}

/// Turns a simulator's merged operations into its document: info, the generic server, the
/// security schemes, as JSON.
pub(super) fn finish(mut api: utoipa::openapi::OpenApi, stem: &str) -> Value {
    let (title, description) = describe(stem);
    api.info = utoipa::openapi::InfoBuilder::new()
        .title(title)
        .version("1")
        .description(Some(description))
        .license(Some(
            utoipa::openapi::LicenseBuilder::new()
                .name("Apache-2.0")
                .identifier(Some("Apache-2.0"))
                .build(),
        ))
        .build();
    let components = api.components.get_or_insert_with(Default::default);
    if stem == "backoffice" {
        components.add_security_scheme("hub_signature", hub_signature());
    }
    components.add_security_scheme("mutual_tls", mutual_tls());
    let mut doc = serde_json::to_value(&api).unwrap_or_default();
    doc["servers"] = json!([{
        "url": "{scheme}://{host}:{port}",
        "description": "Wherever the simulator listens (`simulators --help` gives each one's port).",
        "variables": {
            "scheme": {"default": "http", "enum": ["http", "https"], "description": "https when the simulators run with --tls-cert and --tls-key."},
            "host": {"default": "127.0.0.1"},
            "port": {"default": default_port(stem)},
        }
    }]);
    doc
}

/// The default port of the simulator a document describes (A1's for the operators).
fn default_port(stem: &str) -> String {
    let ports = crate::Ports::default();
    let port = match stem {
        "mvd" => ports.mvd,
        "operators" => ports.a1,
        "erip" => ports.erip,
        "backoffice" => ports.backoffice,
        "email" => ports.email,
        _ => ports.gossuok,
    };
    port.to_string()
}

/// The hub's signature of its calls to a back-office.
fn hub_signature() -> SecurityScheme {
    SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
        "X-Hub-Signature",
        "The hub signs every call: `X-Hub-Signature: sha256=<lower-case hex of HMAC-SHA256(secret, body)>`, the MAC over the exact body bytes sent (an empty body for a bodiless call), the secret shared by the hub and the back-office. A back-office refuses a call whose signature is missing or wrong with `401 bad_signature`, before it reads the body, and compares in constant time.",
    )))
}

/// Client certificates, as production uses them.
fn mutual_tls() -> SecurityScheme {
    SecurityScheme::MutualTls {
        description: Some(
            "In production the hub calls over TLS with a client certificate (HUB_*_TLS_CLIENT_CERT and _KEY); the simulators ask for one when started with --tls-client-ca.".into(),
        ),
        deprecated: None,
        extensions: None,
    }
}

/// Adds the calls a simulator makes (its `webhooks`, described as operations of a document of
/// their own whose path keys are the webhooks' names) and their schemas.
pub(super) fn add_webhooks(doc: &mut Value, webhooks: utoipa::openapi::OpenApi) {
    let webhooks = serde_json::to_value(&webhooks).unwrap_or_default();
    let mut named = serde_json::Map::new();
    if let Some(paths) = webhooks["paths"].as_object() {
        for (path, item) in paths {
            named.insert(path.trim_start_matches('/').to_owned(), item.clone());
        }
    }
    doc["webhooks"] = Value::Object(named);
    for part in ["schemas", "securitySchemes"] {
        if let Some(extra) = webhooks["components"][part].as_object() {
            let into = &mut doc["components"][part];
            if !into.is_object() {
                *into = json!({});
            }
            if let Some(into) = into.as_object_mut() {
                for (name, value) in extra {
                    into.insert(name.clone(), value.clone());
                }
            }
        }
    }
}
