//! The HTTP back-office's document (handlers and callbacks: `crate::backoffice`): the API a real
//! authority's back-office implements to take work from the hub over HTTP. The bodies that are
//! queue contracts' messages (`contracts::procedure`) are their published JSON Schemas, put in
//! the document under the message type's name (`contracts::schema::openapi`); the HTTP-only
//! answers and the simulator's own bodies have schemas here.

#![allow(
    dead_code,
    reason = "the functions carry the operations' annotations and the types are schemas only"
)]

use serde_json::{Value, json};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use super::common::ApiError;

/// The description of the `X-Callback-Url` header.
const CALLBACK_URL: &str = "Where the later answers about this application (or complaint) go: an absolute http(s) URL; each answer is posted to `{X-Callback-Url}/{message type}` (one `/` between them).";

/// The registration of an application.
#[derive(ToSchema)]
#[schema(example = json!({"registration_number": "MNS-2026-0001"}))]
struct Registered {
    /// The number in the authority's register.
    registration_number: String,
}

/// The answer to a withdrawal.
#[derive(ToSchema)]
struct WithdrawalAnswer {
    /// True: it stopped. False: it had been decided (the decision follows or came).
    accepted: bool,
}

/// The authority's word on a receipt; the same receipt always gets the same one.
#[derive(ToSchema)]
#[schema(example = json!({"confirmed": false, "reason": "no such payment document"}))]
struct ReceiptAnswer {
    confirmed: bool,
    /// Why not, when not confirmed.
    #[schema(nullable = false)]
    reason: Option<String>,
}

/// An empty JSON object.
#[derive(ToSchema)]
struct Empty {}

/// The refusal was recorded.
#[derive(ToSchema)]
struct Recorded {
    /// Always true.
    recorded: bool,
}

/// The decision on an application.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
enum Verdict {
    Granted,
    Refused,
}

/// An application as the simulator's clerk holds it (simulator only).
#[derive(ToSchema)]
struct SimApplication {
    registration_number: String,
    /// `registered`, `decided` or `withdrawn`.
    state: String,
    /// For `decided`.
    #[schema(nullable = false)]
    verdict: Option<Verdict>,
    /// The term's last day after an information request was answered.
    #[schema(nullable = false)]
    decision_due_after_info: Option<String>,
}

/// A complaint as the simulator's clerk holds it (simulator only).
#[derive(ToSchema)]
struct SimComplaint {
    /// `received`, `decided` or `withdrawn`.
    state: String,
    /// `upheld` or `dismissed`, once decided.
    #[schema(nullable = false)]
    verdict: Option<String>,
}

/// The hub's refusals of this authority's decisions, on applications and on complaints
/// (simulator only).
#[derive(ToSchema)]
struct SimRefusals {
    /// Oldest first, as received: `authority.decision_refused.v1` and
    /// `authority.complaint_decision_refused.v1` bodies.
    #[schema(schema_with = refusal_items)]
    refusals: Vec<Value>,
}

/// The items of [`SimRefusals`]: either refusal's published schema.
fn refusal_items() -> utoipa::openapi::Array {
    let refusal = |message_type: &str| {
        utoipa::openapi::Ref::new(format!("#/components/schemas/{message_type}"))
    };
    utoipa::openapi::ArrayBuilder::new()
        .items(
            utoipa::openapi::OneOfBuilder::new()
                .item(refusal("authority.decision_refused.v1"))
                .item(refusal("authority.complaint_decision_refused.v1")),
        )
        .build()
}

/// How an authority's decisions go out (simulator only).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
enum SigningFault {
    /// Properly signed (`authority.decided.v2`, `authority.complaint_decided.v2`).
    None,
    /// v2 without a signature.
    Unsigned,
    /// v2 with a signature that does not verify.
    BadSignature,
}

/// The body of `PUT /sim/backoffice/{authority}/signing`.
#[derive(ToSchema)]
#[schema(example = json!({"fault": "bad_signature"}))]
struct SigningRequest {
    fault: SigningFault,
}

/// Whether an authority signs its decisions, and how (simulator only).
#[derive(ToSchema)]
#[schema(example = json!({"signed": true, "serial": "5f0c2d7e0d0a4c55", "fault": "none"}))]
struct Signing {
    /// False without GosSUOK in the process: the decisions go unsigned (`authority.decided.v1`,
    /// `authority.complaint_decided.v1`) and nothing else is said.
    signed: bool,
    /// The serial of the authority's official's certificate, hex.
    #[schema(nullable = false)]
    serial: Option<String>,
    /// The fault in force.
    #[schema(nullable = false)]
    fault: Option<SigningFault>,
}

// The hub's calls' bodies: the contracts' published schemas.
contracts::openapi_body! {
    Application = authority::application::v1,
    Complaint = authority::complaint::v1,
    Receipt = authority::payment_receipt::v1,
    InfoProvided = authority::info_provided::v1,
    DecisionRefused = authority::decision_refused::v1,
    ComplaintDecisionRefused = authority::complaint_decision_refused::v1,
}

/// The description of the authority path parameter.
const AUTHORITY: &str = "The authority's id: 1 to 64 of `a-z`, `0-9`, `-` (not `sim`); the hub's HTTP authority's base URL ends with it.";

/// Registers an application and takes it up; the answers come later to `X-Callback-Url`.
#[utoipa::path(
    put,
    path = "/{authority}/applications/{application_id}",
    tag = "applications",
    operation_id = "submit_application",
    params(
        ("authority" = String, Path, description = AUTHORITY),
        ("application_id" = Uuid, Path, description = "The application's id."),
        ("X-Callback-Url" = String, Header, description = CALLBACK_URL)
    ),
    request_body(content = Application),
    security(("hub_signature" = [])),
    responses(
        (status = 200, description = "Registered (the same again for the same application).", body = Registered),
        (status = 400, description = "`invalid_request`: malformed JSON, a missing field, the body's id differs from the path's, or no valid `X-Callback-Url`.", body = ApiError),
        (status = 401, description = "`bad_signature`.", body = ApiError),
        (status = 404, description = "`not_found`: not an authority id.", body = ApiError),
        (status = 503, description = "`unavailable`: an injected fault; the hub retries.", body = ApiError)
    )
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn submit_application() {}

/// Withdraws an application (`authority.withdrawal.v1`'s HTTP form; the body is not read but
/// signed: an empty body signs as empty).
#[utoipa::path(
    post,
    path = "/{authority}/applications/{application_id}/withdrawal",
    tag = "applications",
    operation_id = "withdraw_application",
    params(
        ("authority" = String, Path, description = AUTHORITY),
        ("application_id" = Uuid, Path, description = "The application's id.")
    ),
    security(("hub_signature" = [])),
    responses(
        (status = 200, description = "Stopped, or too late (decided).", body = WithdrawalAnswer),
        (status = 400, description = "`invalid_request`: the id is not a UUID.", body = ApiError),
        (status = 401, description = "`bad_signature`.", body = ApiError),
        (status = 404, description = "`not_found`: no such authority or application.", body = ApiError),
        (status = 503, description = "`unavailable`: an injected fault.", body = ApiError)
    )
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn withdraw_application() {}

/// Asks the authority to confirm a receipt of a payment outside ERIP; answered at once.
#[utoipa::path(
    post,
    path = "/{authority}/applications/{application_id}/receipts",
    tag = "applications",
    operation_id = "check_receipt",
    params(
        ("authority" = String, Path, description = AUTHORITY),
        ("application_id" = Uuid, Path, description = "The application's id.")
    ),
    request_body(content = Receipt),
    security(("hub_signature" = [])),
    responses(
        (status = 200, description = "Confirmed or refused.", body = ReceiptAnswer),
        (status = 400, description = "`invalid_request`.", body = ApiError),
        (status = 401, description = "`bad_signature`.", body = ApiError),
        (status = 404, description = "`not_found`: not an authority id.", body = ApiError),
        (status = 503, description = "`unavailable`: an injected fault.", body = ApiError)
    )
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn check_receipt() {}

/// The person's answer to the authority's information request; the same answer again changes
/// nothing.
#[utoipa::path(
    post,
    path = "/{authority}/applications/{application_id}/info",
    tag = "applications",
    operation_id = "provide_info",
    params(
        ("authority" = String, Path, description = AUTHORITY),
        ("application_id" = Uuid, Path, description = "The application's id.")
    ),
    request_body(content = InfoProvided),
    security(("hub_signature" = [])),
    responses(
        (status = 200, description = "Taken.", body = Empty),
        (status = 400, description = "`invalid_request`.", body = ApiError),
        (status = 401, description = "`bad_signature`.", body = ApiError),
        (status = 404, description = "`not_found`: no such authority or application.", body = ApiError),
        (status = 503, description = "`unavailable`: an injected fault.", body = ApiError)
    )
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn provide_info() {}

/// The hub refused the authority's decision (its signature, certificate or document); the
/// authority decides again with a decision the hub can accept.
#[utoipa::path(
    post,
    path = "/{authority}/applications/{application_id}/decision-refusals",
    tag = "applications",
    operation_id = "decision_refused",
    params(
        ("authority" = String, Path, description = AUTHORITY),
        ("application_id" = Uuid, Path, description = "The application's id.")
    ),
    request_body(content = DecisionRefused),
    security(("hub_signature" = [])),
    responses(
        (status = 200, description = "Recorded.", body = Recorded),
        (status = 400, description = "`invalid_request`.", body = ApiError),
        (status = 401, description = "`bad_signature`.", body = ApiError),
        (status = 404, description = "`not_found`: not an authority id.", body = ApiError),
        (status = 503, description = "`unavailable`: an injected fault.", body = ApiError)
    )
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn decision_refused() {}

/// The hub refused the authority's decision on a complaint (its signature, certificate or
/// document); the authority decides again with a decision the hub can accept.
#[utoipa::path(
    post,
    path = "/{authority}/complaints/{complaint_id}/decision-refusals",
    tag = "complaints",
    operation_id = "complaint_decision_refused",
    params(
        ("authority" = String, Path, description = AUTHORITY),
        ("complaint_id" = Uuid, Path, description = "The complaint's id.")
    ),
    request_body(content = ComplaintDecisionRefused),
    security(("hub_signature" = [])),
    responses(
        (status = 200, description = "Recorded.", body = Recorded),
        (status = 400, description = "`invalid_request`: the body names another complaint than the path, or is no refusal.", body = ApiError),
        (status = 401, description = "`bad_signature`.", body = ApiError),
        (status = 404, description = "`not_found`: not an authority id.", body = ApiError),
        (status = 503, description = "`unavailable`: an injected fault.", body = ApiError)
    )
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn complaint_decision_refused() {}

/// Receives a complaint; the decision comes later to `X-Callback-Url`.
#[utoipa::path(
    put,
    path = "/{authority}/complaints/{complaint_id}",
    tag = "complaints",
    operation_id = "submit_complaint",
    params(
        ("authority" = String, Path, description = AUTHORITY),
        ("complaint_id" = Uuid, Path, description = "The complaint's id."),
        ("X-Callback-Url" = String, Header, description = CALLBACK_URL)
    ),
    request_body(content = Complaint),
    security(("hub_signature" = [])),
    responses(
        (status = 202, description = "Received.", body = Empty),
        (status = 400, description = "`invalid_request`.", body = ApiError),
        (status = 401, description = "`bad_signature`.", body = ApiError),
        (status = 404, description = "`not_found`: not an authority id.", body = ApiError),
        (status = 503, description = "`unavailable`: an injected fault.", body = ApiError)
    )
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn submit_complaint() {}

/// Withdraws a complaint (the body is not read but signed).
#[utoipa::path(
    post,
    path = "/{authority}/complaints/{complaint_id}/withdrawal",
    tag = "complaints",
    operation_id = "withdraw_complaint",
    params(
        ("authority" = String, Path, description = AUTHORITY),
        ("complaint_id" = Uuid, Path, description = "The complaint's id.")
    ),
    security(("hub_signature" = [])),
    responses(
        (status = 200, description = "Stopped, or too late (decided).", body = WithdrawalAnswer),
        (status = 400, description = "`invalid_request`.", body = ApiError),
        (status = 401, description = "`bad_signature`.", body = ApiError),
        (status = 404, description = "`not_found`: no such authority or complaint.", body = ApiError),
        (status = 503, description = "`unavailable`: an injected fault.", body = ApiError)
    )
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn withdraw_complaint() {}

/// Where the simulator's clerk is with an application (simulator only).
#[utoipa::path(
    get,
    path = "/sim/backoffice/{authority}/applications/{application_id}",
    tag = "simulator",
    operation_id = "inspect_application",
    params(
        ("authority" = String, Path, description = AUTHORITY),
        ("application_id" = Uuid, Path, description = "The application's id.")
    ),
    responses(
        (status = 200, description = "The application.", body = SimApplication),
        (status = 400, description = "`invalid_request`: not a UUID.", body = ApiError),
        (status = 404, description = "`not_found`.", body = ApiError)
    )
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn inspect_application() {}

/// Where the simulator's clerk is with a complaint (simulator only).
#[utoipa::path(
    get,
    path = "/sim/backoffice/{authority}/complaints/{complaint_id}",
    tag = "simulator",
    operation_id = "inspect_complaint",
    params(
        ("authority" = String, Path, description = AUTHORITY),
        ("complaint_id" = Uuid, Path, description = "The complaint's id.")
    ),
    responses(
        (status = 200, description = "The complaint.", body = SimComplaint),
        (status = 400, description = "`invalid_request`: not a UUID.", body = ApiError),
        (status = 404, description = "`not_found`.", body = ApiError)
    )
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn inspect_complaint() {}

/// The hub's refusals of an authority's decisions (simulator only).
#[utoipa::path(
    get,
    path = "/sim/backoffice/{authority}/decision-refusals",
    tag = "simulator",
    operation_id = "inspect_refusals",
    params(("authority" = String, Path, description = AUTHORITY)),
    responses((status = 200, description = "The refusals received.", body = SimRefusals))
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn inspect_refusals() {}

/// Whether an authority signs its decisions, its official's certificate serial and the fault in
/// force (simulator only).
#[utoipa::path(
    get,
    path = "/sim/backoffice/{authority}/signing",
    tag = "simulator",
    operation_id = "inspect_signing",
    params(("authority" = String, Path, description = AUTHORITY)),
    responses(
        (status = 200, description = "How its decisions go out.", body = Signing),
        (status = 404, description = "`not_found`: not an authority id.", body = ApiError)
    )
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn inspect_signing() {}

/// From now on the authority's decisions (on applications and complaints) go properly signed
/// (`none`), without a signature (`unsigned`) or with one that does not verify
/// (`bad_signature`) (simulator only).
#[utoipa::path(
    put,
    path = "/sim/backoffice/{authority}/signing",
    tag = "simulator",
    operation_id = "set_signing",
    params(("authority" = String, Path, description = AUTHORITY)),
    request_body(content = SigningRequest),
    responses(
        (status = 200, description = "Set; as `GET` answers.", body = Signing),
        (status = 400, description = "`invalid_request`: no such fault, or not that body.", body = ApiError),
        (status = 404, description = "`not_found`: not an authority id.", body = ApiError),
        (status = 409, description = "`not_signing`: GosSUOK is not in this process, so the authority has no official's certificate.", body = ApiError)
    )
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn set_signing() {}

/// The back-office's operations.
#[derive(OpenApi)]
#[openapi(paths(
    submit_application,
    withdraw_application,
    check_receipt,
    provide_info,
    decision_refused,
    complaint_decision_refused,
    submit_complaint,
    withdraw_complaint,
    inspect_application,
    inspect_complaint,
    inspect_refusals,
    inspect_signing,
    set_signing
))]
pub(super) struct Doc;

// The callbacks' bodies: the contracts' published schemas.
contracts::openapi_body! {
    InfoRequested = authority::info_requested::v1,
    DecidedV1 = authority::decided::v1,
    DecidedV2 = authority::decided::v2,
    ComplaintDecidedV1 = authority::complaint_decided::v1,
    ComplaintDecidedV2 = authority::complaint_decided::v2,
}

/// The hub's answers to a callback.
const CALLBACK_ANSWERS: &str = "2xx: taken (a copy sent again is taken once). 4xx: refused for good (401 a bad or stale signature, 400 not that message type's body, 403 the case is another authority's, 404 no such case); the back-office gives up. Anything else or no answer: retried with a doubling backoff from 0.2 s up to 5 s, each attempt signed anew.";

/// An information request about an application, posted to
/// `{X-Callback-Url}/authority.info_requested.v1`.
#[utoipa::path(
    post,
    path = "/authority.info_requested.v1",
    operation_id = "callback_info_requested",
    params(("X-Authority-Timestamp" = i64, Header, description = "When this attempt was sent: whole seconds since 1970-01-01 UTC.")),
    request_body(content = InfoRequested),
    security(("authority_signature" = [])),
    responses((status = 200, description = CALLBACK_ANSWERS))
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn info_requested() {}

/// A signed decision on an application, posted to `{X-Callback-Url}/authority.decided.v2`.
#[utoipa::path(
    post,
    path = "/authority.decided.v2",
    operation_id = "callback_decided_v2",
    params(("X-Authority-Timestamp" = i64, Header, description = "When this attempt was sent: whole seconds since 1970-01-01 UTC.")),
    request_body(content = DecidedV2),
    security(("authority_signature" = [])),
    responses((status = 200, description = CALLBACK_ANSWERS))
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn decided_v2() {}

/// An unsigned decision, posted to `{X-Callback-Url}/authority.decided.v1` (refused in
/// production).
#[utoipa::path(
    post,
    path = "/authority.decided.v1",
    operation_id = "callback_decided_v1",
    params(("X-Authority-Timestamp" = i64, Header, description = "When this attempt was sent: whole seconds since 1970-01-01 UTC.")),
    request_body(content = DecidedV1),
    security(("authority_signature" = [])),
    responses((status = 200, description = CALLBACK_ANSWERS))
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn decided_v1() {}

/// An unsigned decision on a complaint, posted to
/// `{X-Callback-Url}/authority.complaint_decided.v1` (refused in production).
#[utoipa::path(
    post,
    path = "/authority.complaint_decided.v1",
    operation_id = "callback_complaint_decided",
    params(("X-Authority-Timestamp" = i64, Header, description = "When this attempt was sent: whole seconds since 1970-01-01 UTC.")),
    request_body(content = ComplaintDecidedV1),
    security(("authority_signature" = [])),
    responses((status = 200, description = CALLBACK_ANSWERS))
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn complaint_decided() {}

/// A signed decision on a complaint, posted to
/// `{X-Callback-Url}/authority.complaint_decided.v2`.
#[utoipa::path(
    post,
    path = "/authority.complaint_decided.v2",
    operation_id = "callback_complaint_decided_v2",
    params(("X-Authority-Timestamp" = i64, Header, description = "When this attempt was sent: whole seconds since 1970-01-01 UTC.")),
    request_body(content = ComplaintDecidedV2),
    security(("authority_signature" = [])),
    responses((status = 200, description = CALLBACK_ANSWERS))
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn complaint_decided_v2() {}

/// Adds the callbacks' signature scheme.
struct Signature;

impl Modify for Signature {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "authority_signature",
                SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                    "X-Authority-Signature",
                    "The back-office signs every callback attempt: `X-Authority-Signature: sha256=<lower-case hex of HMAC-SHA256(secret, M)>` with `M = METHOD + \"\\n\" + path + \"\\n\" + timestamp + \"\\n\" + body`: the method (`POST`), the URL's path as sent (percent-encoded, without the query, e.g. `/callbacks/authority/mns/authority.decided.v2`), the `X-Authority-Timestamp` value as sent, and the exact body bytes. The secret is the one the hub signs its calls with. The hub refuses (401) a signature that does not verify and a timestamp outside its window (`HUB_BACKOFFICE_CALLBACK_WINDOW`, 5 minutes by default, either way), so each retry is signed anew.",
                ))),
            );
    }
}

/// The calls a back-office makes: its later answers.
#[derive(OpenApi)]
#[openapi(
    paths(
        info_requested,
        decided_v2,
        decided_v1,
        complaint_decided_v2,
        complaint_decided
    ),
    modifiers(&Signature)
)]
pub(super) struct Webhooks;

/// Gives each `PUT` its `callbacks`: the webhooks that answer it, at `{X-Callback-Url}/{type}`.
pub(super) fn link_callbacks(doc: &mut Value) {
    let answers = |types: &[&str]| {
        let mut callbacks = serde_json::Map::new();
        for message_type in types {
            callbacks.insert(
                (*message_type).to_owned(),
                json!({
                    format!("{{$request.header.X-Callback-Url}}/{message_type}"):
                        {"$ref": format!("#/webhooks/{message_type}")}
                }),
            );
        }
        Value::Object(callbacks)
    };
    doc["paths"]["/{authority}/applications/{application_id}"]["put"]["callbacks"] = answers(&[
        "authority.info_requested.v1",
        "authority.decided.v2",
        "authority.decided.v1",
    ]);
    doc["paths"]["/{authority}/complaints/{complaint_id}"]["put"]["callbacks"] = answers(&[
        "authority.complaint_decided.v2",
        "authority.complaint_decided.v1",
    ]);
}
