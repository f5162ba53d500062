//! The HTTP back-office's document (handlers and callbacks: `crate::backoffice`): the API a real
//! authority's back-office implements to take work from the hub over HTTP. The bodies are the
//! queue contracts' (`contracts::procedure`), described here with schemas of their own; the
//! published JSON Schemas of the contracts are the reference for them.

#![allow(
    dead_code,
    reason = "the functions carry the operations' annotations and the types are schemas only"
)]

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Value, json};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use uuid::Uuid;

use super::common::ApiError;

/// The description of the `X-Callback-Url` header.
const CALLBACK_URL: &str = "Where the later answers about this application (or complaint) go: an absolute http(s) URL; each answer is posted to `{X-Callback-Url}/{message type}` (one `/` between them).";

/// `authority.application.v1`: an application for the authority to register and decide.
#[derive(ToSchema)]
#[schema(example = json!({
    "application_id": "6f1d2c3b-4a59-4e8f-9a7b-0c1d2e3f4a5b", "number": "2026-000123",
    "procedure_code": "mns.tax_certificate", "applicant": "3150790A001PB7",
    "form": {"purpose": "for the bank"}, "attachments": [], "paid_kopecks": 0, "decision_due": "2026-12-11"
}))]
struct Application {
    /// The application's id; the same as the path's.
    application_id: Uuid,
    /// Its number in the portal's register.
    number: String,
    /// The procedure's code in the hub's catalogue.
    procedure_code: String,
    /// The applicant's identification number.
    applicant: String,
    /// The form, as the procedure's form defines it. `"simulate_info_request": true` or
    /// `"simulate_refusal": true` steer the simulator's clerk.
    form: serde_json::Map<String, Value>,
    /// References to attachments kept by the portal.
    attachments: Vec<String>,
    /// What the applicant paid, kopecks.
    paid_kopecks: u64,
    /// The last day of the term to decide.
    decision_due: NaiveDate,
}

/// The registration of an application.
#[derive(ToSchema)]
#[schema(example = json!({"registration_number": "MNS-2026-0001"}))]
struct Registered {
    /// The number in the authority's register.
    registration_number: String,
}

/// `authority.complaint.v1`: a complaint about a decision.
#[derive(ToSchema)]
struct Complaint {
    /// The complaint's id; the same as the path's.
    complaint_id: Uuid,
    /// The application decided.
    application_id: Uuid,
    /// Its number in the portal's register.
    application_number: String,
    /// The complaint.
    text: String,
}

/// The answer to a withdrawal.
#[derive(ToSchema)]
struct WithdrawalAnswer {
    /// True: it stopped. False: it had been decided (the decision follows or came).
    accepted: bool,
}

/// A payment outside ERIP, paid at a bank.
#[derive(ToSchema)]
struct ReceiptPayment {
    /// The order number the payer paid by.
    order_number: String,
    /// The bank.
    bank: String,
    /// The day paid.
    paid_on: NaiveDate,
    /// The payment document's number.
    document_number: String,
}

/// `authority.payment_receipt.v1`: a receipt for the authority to confirm.
#[derive(ToSchema)]
struct Receipt {
    application_id: Uuid,
    number: String,
    procedure_code: String,
    /// The fee due, kopecks.
    fee_kopecks: u64,
    /// The amount paid, kopecks.
    amount_kopecks: u64,
    payment: ReceiptPayment,
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

/// `authority.info_provided.v1`: the person's answer to the authority's information request.
#[derive(ToSchema)]
struct InfoProvided {
    application_id: Uuid,
    /// The answer's form fields.
    form: serde_json::Map<String, Value>,
    /// References to attachments kept by the portal.
    attachments: Vec<String>,
    /// Working days the term was suspended.
    suspended_working_days: u32,
    /// The term's last day, moved by them.
    decision_due: NaiveDate,
}

/// An empty JSON object.
#[derive(ToSchema)]
struct Empty {}

/// Why the hub refused a decision.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
enum DecisionRefusalReason {
    /// No signature (or `authority.decided.v1`, which has none).
    Unsigned,
    /// The document breaks the canonical layout, or names another application.
    MalformedDocument,
    /// The signature, the certificate or the chain cannot be read.
    MalformedSignature,
    /// The signature does not verify under the certificate's key.
    BadSignature,
    /// No path from the certificate to the hub's trusted roots.
    UntrustedChain,
    /// A certificate of the path expired, or is not valid yet.
    CertificateExpired,
    /// A certificate of the path is revoked.
    Revoked,
    /// The certificate's key may not sign, or an algorithm other than bign-with-hbelt.
    WrongKeyUsage,
    /// The certificate is not the deciding authority's, or the document names another.
    WrongAuthority,
}

/// `authority.decision_refused.v1`: the hub refused the authority's decision; the application
/// keeps waiting for a decision it accepts.
#[derive(ToSchema)]
#[schema(example = json!({"application_id": "6f1d2c3b-4a59-4e8f-9a7b-0c1d2e3f4a5b", "number": "", "reason": "unsigned", "detail": "authority.decided.v1 carries no signature"}))]
struct DecisionRefused {
    application_id: Uuid,
    /// The refused decision's number (empty for an `authority.decided.v1`).
    number: String,
    reason: DecisionRefusalReason,
    /// What failed, in words.
    detail: String,
}

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
    /// `dismissed` once decided.
    #[schema(nullable = false)]
    verdict: Option<String>,
}

/// The hub's refusals of this authority's decisions (simulator only).
#[derive(ToSchema)]
struct SimRefusals {
    /// Oldest first, as received.
    refusals: Vec<DecisionRefused>,
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
fn decision_refused() {}

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
fn inspect_refusals() {}

/// The back-office's operations.
#[derive(OpenApi)]
#[openapi(paths(
    submit_application,
    withdraw_application,
    check_receipt,
    provide_info,
    decision_refused,
    submit_complaint,
    withdraw_complaint,
    inspect_application,
    inspect_complaint,
    inspect_refusals
))]
pub(super) struct Doc;

/// `authority.info_requested.v1`: the authority asks the person for more information.
#[derive(ToSchema)]
#[schema(example = json!({"application_id": "6f1d2c3b-4a59-4e8f-9a7b-0c1d2e3f4a5b", "request": "Please attach the lease agreement.", "answer_within_working_days": 5}))]
struct InfoRequested {
    application_id: Uuid,
    /// What it asks.
    request: String,
    /// Working days the person has to answer (the hub's default, 10, when absent).
    #[schema(nullable = false)]
    answer_within_working_days: Option<u32>,
}

/// `authority.decided.v1`: an unsigned decision. A hub in production refuses it
/// (`authority.decision_refused.v1`, reason `unsigned`); send `authority.decided.v2`.
#[derive(ToSchema)]
struct DecidedV1 {
    application_id: Uuid,
    verdict: Verdict,
    /// The decision document or notice.
    document: String,
    decided_at: DateTime<Utc>,
}

/// The decision document the authority signs. The signed bytes are UTF-8 lines joined by `\n`,
/// no newline after the text: `by.portal.decision.v1`, the application id (lower-case
/// hyphenated UUID), `authority_id`, `number`, `date` (YYYY-MM-DD), `verdict`, `text`.
#[derive(ToSchema)]
struct DecisionDocument {
    /// The application decided (the same as the body's).
    application_id: Uuid,
    /// The deciding authority's id in the hub's catalogue; one non-empty line.
    authority_id: String,
    /// The decision's number in the authority's register; one non-empty line.
    number: String,
    /// The day of the decision.
    date: NaiveDate,
    verdict: Verdict,
    /// The decision's text (may span lines).
    text: String,
}

/// The authority's bign signature of the decision document, with the certificate to check it.
#[derive(ToSchema)]
struct DecisionSignature {
    /// The bign signature (48 bytes, STB 34.101.45 with belt-hash) of the document's signed
    /// bytes, base64 (standard, padded).
    #[schema(content_encoding = "base64")]
    signature: String,
    /// The signer's certificate (issued by GosSUOK to an official of the authority), DER in
    /// base64.
    #[schema(content_encoding = "base64")]
    certificate: String,
    /// Intermediate CA certificates, DER in base64, any order; may be empty or absent.
    #[schema(nullable = false)]
    chain: Option<Vec<String>>,
}

/// `authority.decided.v2`: the authority's signed decision. The hub verifies the signature, the
/// certificate's path to its trusted roots, its revocation status and that it is the deciding
/// authority's before the person sees it; otherwise it posts `decision-refusals`.
#[derive(ToSchema)]
struct DecidedV2 {
    /// The application (the same as the document's).
    application_id: Uuid,
    document: DecisionDocument,
    /// The signature; an unsigned decision is refused (`unsigned`).
    #[schema(nullable = false)]
    signature: Option<DecisionSignature>,
    decided_at: DateTime<Utc>,
}

/// `authority.complaint_decided.v1`: the decision on a complaint.
#[derive(ToSchema)]
struct ComplaintDecided {
    complaint_id: Uuid,
    /// `upheld` (the decision is revised) or `dismissed`.
    #[schema(pattern = "^(upheld|dismissed)$")]
    verdict: String,
    /// The decision document.
    document: String,
    decided_at: DateTime<Utc>,
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
fn decided_v1() {}

/// The decision on a complaint, posted to `{X-Callback-Url}/authority.complaint_decided.v1`.
#[utoipa::path(
    post,
    path = "/authority.complaint_decided.v1",
    operation_id = "callback_complaint_decided",
    params(("X-Authority-Timestamp" = i64, Header, description = "When this attempt was sent: whole seconds since 1970-01-01 UTC.")),
    request_body(content = ComplaintDecided),
    security(("authority_signature" = [])),
    responses((status = 200, description = CALLBACK_ANSWERS))
)]
fn complaint_decided() {}

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
    paths(info_requested, decided_v2, decided_v1, complaint_decided),
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
    doc["paths"]["/{authority}/complaints/{complaint_id}"]["put"]["callbacks"] =
        answers(&["authority.complaint_decided.v1"]);
}
