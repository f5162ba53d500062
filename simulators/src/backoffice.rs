//! The HTTP back-office of an authority: the reference for the authorities that take work from
//! the hub over HTTP instead of consuming its RabbitMQ queue. It behaves exactly like the queue
//! back-office ([`crate::authority`]) — both hand the work to the same [`Clerk`] — and only the
//! transport differs: the hub `PUT`s applications and complaints and `POST`s withdrawals, and
//! the back-office answers the registration and the withdrawals at once and posts its later
//! answers (info requests, decisions) to the callback URL the hub gave, retrying while the hub
//! cannot take them. Both directions are signed with HMAC-SHA256: the hub's calls over the exact
//! body bytes, the callbacks over the method, the path, a timestamp (`X-Authority-Timestamp`)
//! and the body, each attempt signed anew at the time it is sent.
//!
//! One server serves any number of authorities, each under its own path prefix
//! (`http://127.0.0.1:8131/tax-ministry/`), each with its own book, made when first called; so
//! the simulator needs no catalogue. The contract (v1) is in README.md and in the `adapters`
//! crate's `backoffice` module.
//!
//! Decisions are signed as the queue authority signs them ([`crate::decision_signing`]): each
//! authority gets its own official's certificate (organizationName = the authority's id) from
//! the GosSUOK simulator of the same process, and signs in-process with that certificate's key
//! (no HTTP call, so no client certificate is needed under mutual TLS); its decisions go to the
//! hub as `authority.decided.v2` and `authority.complaint_decided.v2`. Without GosSUOK in the
//! process (`--only backoffice`) they stay unsigned (v1), which a hub refuses unless
//! `HUB_UNSIGNED_DECISIONS=accept`. `PUT /sim/backoffice/{authority}/signing` with
//! `{"fault": "unsigned" | "bad_signature" | "none"}` makes an authority sign badly on demand.
//!
//! Forms and applicants are never logged: ids, registration numbers and verdicts only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use chrono::NaiveDate;
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::Sha256;
use tokio_util::task::TaskTracker;
use url::Url;
use uuid::Uuid;

use crate::clerk::{self, Answer, Application, Clerk, Outbox, Pace};
use crate::decision_signing::{DecisionSigning, SigningFault};
use crate::error::{ApiError, parse_json};
use crate::faults::roll;
use crate::retention::Bounded;
use crate::server::{self, SimContext};

/// The header the hub signs its calls with: `sha256=<lower-case hex>`.
const HUB_SIGNATURE_HEADER: &str = "x-hub-signature";

/// The header the back-office signs its callbacks with: `sha256=<lower-case hex>` of
/// [`callback_signed_bytes`].
const AUTHORITY_SIGNATURE_HEADER: &str = "x-authority-signature";

/// The header of a callback saying when the attempt was sent: whole seconds since 1970 (UTC).
const AUTHORITY_TIMESTAMP_HEADER: &str = "x-authority-timestamp";

/// The header of a `PUT` naming where the later answers go.
const CALLBACK_URL_HEADER: &str = "x-callback-url";

/// The wait before a callback's first retry; it doubles for each next one, up to
/// [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// The longest wait between two attempts at a callback.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The longest authority id served.
const MAX_AUTHORITY_LEN: usize = 64;

/// What the back-office simulator needs from the process that starts it.
#[derive(Clone)]
pub(crate) struct Deps {
    /// The HTTP client callbacks are posted with (its timeout bounds each attempt).
    pub(crate) client: reqwest::Client,
    /// Where the clerks' timers and callbacks run, so that [`crate::RunningSims::stopped`]
    /// waits for them.
    pub(crate) tasks: TaskTracker,
    /// The key both directions are signed with (the same for every authority served).
    pub(crate) secret: Vec<u8>,
    /// How long the clerks take.
    pub(crate) pace: Pace,
    /// GosSUOK's key tokens in this process, for the officials' certificates; `None`: the
    /// decisions go unsigned.
    pub(crate) key_tokens: Option<crate::gossuok::KeyTokens>,
}

impl std::fmt::Debug for Deps {
    /// Leaves the secret out: whoever holds it can forge decisions.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deps")
            .field("client", &self.client)
            .field("tasks", &self.tasks)
            .field("secret", &"<redacted>")
            .field("pace", &self.pace)
            .field("signs", &self.key_tokens.is_some())
            .finish()
    }
}

/// One authority's refusals: the last number given, and the newest refusals by number.
type Refusals = (u64, Bounded<u64, Value>);

/// The simulator's state: a clerk per authority called so far.
#[derive(Debug)]
struct BackOffice {
    ctx: SimContext,
    deps: Deps,
    clerks: Mutex<HashMap<String, Arc<Clerk<Callbacks>>>>,
    /// Each authority's official's certificate (`None`: it decides unsigned), made on first use.
    signers: Mutex<HashMap<String, Option<Arc<DecisionSigning>>>>,
    /// The hub's refusals of the authorities' decisions, per authority, as received (the
    /// newest up to the record limit), numbered in arrival order.
    refusals: Mutex<HashMap<String, Refusals>>,
}

impl BackOffice {
    /// The official's certificate `authority` signs its decisions with, issued by GosSUOK on
    /// first use; `None` when GosSUOK is not in this process (or cannot issue).
    fn signing(&self, authority: &str) -> Option<Arc<DecisionSigning>> {
        let tokens = self.deps.key_tokens.as_ref()?;
        let mut signers = self.signers.lock().unwrap_or_else(PoisonError::into_inner);
        let signing =
            signers.entry(authority.to_owned()).or_insert_with(
                || match DecisionSigning::in_process(tokens, authority) {
                    Ok(signing) => {
                        tracing::info!(
                            simulator = %self.ctx.kind,
                            %authority,
                            serial = %signing.serial,
                            "the authority's official signs its decisions"
                        );
                        Some(Arc::new(signing))
                    }
                    Err(e) => {
                        tracing::warn!(
                            simulator = %self.ctx.kind,
                            %authority,
                            error = %e,
                            "no official's certificate: the authority decides unsigned"
                        );
                        None
                    }
                },
            );
        signing.clone()
    }

    /// The clerk of `authority`, made on its first call.
    fn clerk(&self, authority: &str) -> Arc<Clerk<Callbacks>> {
        let signing = self.signing(authority);
        let mut clerks = self.clerks.lock().unwrap_or_else(PoisonError::into_inner);
        let clerk = clerks.entry(authority.to_owned()).or_insert_with(|| {
            let callbacks = Callbacks {
                authority: authority.to_owned(),
                client: self.deps.client.clone(),
                secret: self.deps.secret.clone(),
                ctx: self.ctx.clone(),
                signing,
            };
            Clerk::new(
                authority,
                (self.deps.pace, self.ctx.retention.records_limit()),
                callbacks,
                self.deps.tasks.clone(),
                self.ctx.shutdown.clone(),
            )
        });
        clerk.clone()
    }

    /// The clerk of `authority` if it was ever called (for the inspection endpoints).
    fn known_clerk(&self, authority: &str) -> Result<Arc<Clerk<Callbacks>>, ApiError> {
        let clerks = self.clerks.lock().unwrap_or_else(PoisonError::into_inner);
        clerks
            .get(authority)
            .cloned()
            .ok_or_else(|| ApiError::not_found("this authority has been sent nothing"))
    }

    /// Checks the call's authority id and signature, before anything of it is read.
    fn admit(&self, authority: &str, headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
        check_authority(authority)?;
        let header = headers
            .get(HUB_SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok());
        if verify(&self.deps.secret, body, header) {
            Ok(())
        } else {
            tracing::info!(simulator = %self.ctx.kind, %authority, "call refused: bad signature");
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "bad_signature",
                "X-Hub-Signature is missing or does not sign this body with the shared secret",
            ))
        }
    }

    /// Admits a signed call about the application or complaint `path_id` (its path parameter
    /// `which`: `application_id`, `complaint_id`) and reads its JSON body, which must name the
    /// same one (`body_id`).
    fn admit_about<T: serde::de::DeserializeOwned>(
        &self,
        authority: &str,
        headers: &HeaderMap,
        body: &[u8],
        (which, path_id): (&str, &str),
        body_id: impl FnOnce(&T) -> Option<Uuid>,
    ) -> Result<(Uuid, T), ApiError> {
        self.admit(authority, headers, body)?;
        let id = parse_id(which, path_id)?;
        let parsed: T = parse_json(body)?;
        if body_id(&parsed) != Some(id) {
            return Err(ApiError::invalid_request(format!(
                "{which} in the body differs from the one in the path"
            )));
        }
        Ok((id, parsed))
    }
}

/// The back-office's routes, finished with the common ones.
pub(crate) fn router(ctx: SimContext, deps: Deps) -> Router {
    if deps.key_tokens.is_none() {
        tracing::warn!(
            simulator = %ctx.kind,
            "GosSUOK is not started in this process: the back-offices decide unsigned \
             (authority.decided.v1), which a hub refuses unless HUB_UNSIGNED_DECISIONS=accept"
        );
    }
    let state = Arc::new(BackOffice {
        ctx: ctx.clone(),
        deps,
        clerks: Mutex::new(HashMap::new()),
        signers: Mutex::new(HashMap::new()),
        refusals: Mutex::new(HashMap::new()),
    });
    let routes = Router::new()
        .route(
            "/{authority}/applications/{application_id}",
            put(submit_application),
        )
        .route(
            "/{authority}/applications/{application_id}/withdrawal",
            post(withdraw_application),
        )
        .route(
            "/{authority}/applications/{application_id}/receipts",
            post(check_receipt),
        )
        .route(
            "/{authority}/applications/{application_id}/info",
            post(provide_info),
        )
        .route(
            "/{authority}/applications/{application_id}/decision-refusals",
            post(decision_refused),
        )
        .route(
            "/{authority}/complaints/{complaint_id}/decision-refusals",
            post(complaint_decision_refused),
        )
        .route(
            "/sim/backoffice/{authority}/decision-refusals",
            get(inspect_refusals),
        )
        .route(
            "/sim/backoffice/{authority}/signing",
            get(inspect_signing).put(set_signing),
        )
        .route(
            "/{authority}/complaints/{complaint_id}",
            put(submit_complaint),
        )
        .route(
            "/{authority}/complaints/{complaint_id}/withdrawal",
            post(withdraw_complaint),
        )
        .route(
            "/sim/backoffice/{authority}/applications/{application_id}",
            get(inspect_application),
        )
        .route(
            "/sim/backoffice/{authority}/complaints/{complaint_id}",
            get(inspect_complaint),
        )
        .with_state(state);
    server::finish(routes, ctx)
}

/// The body of `PUT {base}applications/{id}`: the queue contract `authority.application.v1`,
/// every field required as there. Not `Debug`: it is personal data.
#[derive(Deserialize)]
#[allow(
    dead_code,
    reason = "every field is checked to be there; the clerk reads the id and the form"
)]
struct ApplicationBody {
    application_id: Uuid,
    number: String,
    procedure_code: String,
    applicant: String,
    form: Map<String, Value>,
    attachments: Vec<String>,
    paid_kopecks: u64,
    decision_due: NaiveDate,
}

/// The body of `PUT {base}complaints/{id}`: the queue contract `authority.complaint.v1`.
#[derive(Deserialize)]
#[allow(
    dead_code,
    reason = "every field is checked to be there; the clerk reads the id, the text and the kind"
)]
struct ComplaintBody {
    complaint_id: Uuid,
    application_id: Uuid,
    application_number: String,
    text: String,
    /// `decision` (the default) or `inaction`.
    #[serde(default)]
    kind: Option<String>,
}

/// `POST {base}applications/{id}/decision-refusals`: the hub refused the authority's decision
/// (`authority.decision_refused.v1`); kept for `GET /sim/backoffice/{authority}/decision-refusals`.
async fn decision_refused(
    State(state): State<Arc<BackOffice>>,
    Path((authority, application_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let (_, refusal) = state.admit_about(
        &authority,
        &headers,
        &body,
        ("application_id", &application_id),
        |v: &Value| {
            v["application_id"]
                .as_str()
                .and_then(|s| Uuid::parse_str(s).ok())
        },
    )?;
    Ok(state.record_refusal(authority, refusal))
}

/// `POST {base}complaints/{id}/decision-refusals`: the hub refused the authority's decision on
/// a complaint (`authority.complaint_decision_refused.v1`); kept with the other refusals.
async fn complaint_decision_refused(
    State(state): State<Arc<BackOffice>>,
    Path((authority, complaint_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let (_, refusal) = state.admit_about(
        &authority,
        &headers,
        &body,
        ("complaint_id", &complaint_id),
        |v: &Value| {
            v["complaint_id"]
                .as_str()
                .and_then(|s| Uuid::parse_str(s).ok())
        },
    )?;
    Ok(state.record_refusal(authority, refusal))
}

impl BackOffice {
    /// Keeps a refusal the hub sent `authority` (and tells its signer, as a queue authority's).
    fn record_refusal(&self, authority: String, refusal: Value) -> Json<Value> {
        tracing::warn!(
            simulator = %self.ctx.kind,
            %authority,
            reason = refusal["reason"].as_str().unwrap_or_default(),
            "the hub refused the authority's decision"
        );
        if let Some(signing) = self.signing(&authority) {
            signing.refused(&refusal);
        }
        let limit = self.ctx.retention.records_limit();
        let mut refusals = self.refusals.lock().unwrap_or_else(PoisonError::into_inner);
        let (next, kept) = refusals
            .entry(authority)
            .or_insert_with(|| (0, Bounded::new(limit)));
        *next += 1;
        // The oldest refusals are dropped past the limit.
        let _dropped = kept.insert(*next, refusal);
        Json(json!({"recorded": true}))
    }

    /// `{"signed": bool, "serial", "fault"}` of an authority's signing.
    fn signing_json(&self, authority: &str) -> Value {
        match self.signing(authority) {
            None => json!({"signed": false}),
            Some(s) => json!({
                "signed": true,
                "serial": s.serial,
                "fault": match s.fault() {
                    SigningFault::None => "none",
                    SigningFault::Unsigned => "unsigned",
                    SigningFault::BadSignature => "bad_signature",
                },
            }),
        }
    }
}

/// `GET /sim/backoffice/{authority}/signing`: whether the authority signs, its official's
/// certificate serial and the fault in force.
async fn inspect_signing(
    State(state): State<Arc<BackOffice>>,
    Path(authority): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_authority(&authority)?;
    Ok(Json(state.signing_json(&authority)))
}

/// The body of `PUT /sim/backoffice/{authority}/signing`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SigningBody {
    /// `none`, `unsigned` or `bad_signature`.
    fault: String,
}

/// `PUT /sim/backoffice/{authority}/signing`: from now on the authority's decisions go
/// unsigned (`unsigned`), with a signature that does not verify (`bad_signature`), or properly
/// signed (`none`).
async fn set_signing(
    State(state): State<Arc<BackOffice>>,
    Path(authority): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    check_authority(&authority)?;
    let request: SigningBody = parse_json(&body)?;
    let fault = match request.fault.as_str() {
        "none" => SigningFault::None,
        "unsigned" => SigningFault::Unsigned,
        "bad_signature" => SigningFault::BadSignature,
        other => {
            return Err(ApiError::invalid_request(format!(
                "fault {other:?} is none of none, unsigned, bad_signature"
            )));
        }
    };
    let signing = state.signing(&authority).ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "not_signing",
            "this authority has no official's certificate: GosSUOK is not in this process",
        )
    })?;
    signing.set_fault(fault);
    Ok(Json(state.signing_json(&authority)))
}

/// `GET /sim/backoffice/{authority}/decision-refusals`: the refusals received, oldest first.
async fn inspect_refusals(
    State(state): State<Arc<BackOffice>>,
    Path(authority): Path<String>,
) -> Json<Value> {
    let refusals = state
        .refusals
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&authority)
        .map(|(_, kept)| kept.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>())
        .unwrap_or_default();
    Json(json!({"refusals": refusals}))
}

async fn submit_application(
    State(state): State<Arc<BackOffice>>,
    Path((authority, application_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let (id, application) = state.admit_about(
        &authority,
        &headers,
        &body,
        ("application_id", &application_id),
        |a: &ApplicationBody| Some(a.application_id),
    )?;
    let callback = callback_url(&headers)?;
    let clerk = state.clerk(&authority);
    let number =
        clerk.register(Application::new(id, &application.form).marked(&application.attachments));
    clerk.take_up(id, callback);
    Ok(Json(json!({"registration_number": number})))
}

async fn withdraw_application(
    State(state): State<Arc<BackOffice>>,
    Path((authority, application_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    state.admit(&authority, &headers, &body)?;
    let id = parse_id("application_id", &application_id)?;
    let accepted = state
        .clerk(&authority)
        .withdraw(id)
        .ok_or_else(|| ApiError::not_found("no application with this id"))?;
    Ok(Json(json!({"accepted": accepted})))
}

/// The body of `POST {base}applications/{id}/receipts`: the queue contract
/// `authority.payment_receipt.v1`.
#[derive(Deserialize)]
#[allow(
    dead_code,
    reason = "every field is checked to be there; the clerk reads the document number"
)]
struct ReceiptBody {
    application_id: Uuid,
    number: String,
    procedure_code: String,
    fee_kopecks: u64,
    amount_kopecks: u64,
    payment: ReceiptPayment,
}

#[derive(Deserialize)]
#[allow(dead_code, reason = "checked to be there")]
struct ReceiptPayment {
    order_number: String,
    bank: String,
    paid_on: NaiveDate,
    document_number: String,
}

/// A receipt of a payment outside ERIP, answered at once: confirmed or refused (the clerk's
/// rule, [`clerk::check_receipt`]); the same receipt gets the same answer.
async fn check_receipt(
    State(state): State<Arc<BackOffice>>,
    Path((authority, application_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let (_, receipt) = state.admit_about(
        &authority,
        &headers,
        &body,
        ("application_id", &application_id),
        |r: &ReceiptBody| Some(r.application_id),
    )?;
    Ok(Json(
        match clerk::check_receipt(&receipt.payment.document_number) {
            Ok(()) => json!({"confirmed": true}),
            Err(reason) => json!({"confirmed": false, "reason": reason}),
        },
    ))
}

/// The body of `POST {base}applications/{id}/info`: the queue contract
/// `authority.info_provided.v1`.
#[derive(Deserialize)]
#[allow(dead_code, reason = "every field is checked to be there")]
struct InfoBody {
    application_id: Uuid,
    form: serde_json::Map<String, Value>,
    attachments: Vec<String>,
    suspended_working_days: u32,
    decision_due: NaiveDate,
}

/// The person's answer to the clerk's information request: taken (the clerk decides at its
/// own pace, within the moved term); the same answer again changes nothing.
async fn provide_info(
    State(state): State<Arc<BackOffice>>,
    Path((authority, application_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let (id, info) = state.admit_about(
        &authority,
        &headers,
        &body,
        ("application_id", &application_id),
        |i: &InfoBody| Some(i.application_id),
    )?;
    state
        .clerk(&authority)
        .info_provided(id, &info.decision_due.to_string())
        .ok_or_else(|| ApiError::not_found("no application with this id"))?;
    Ok(Json(json!({})))
}

async fn submit_complaint(
    State(state): State<Arc<BackOffice>>,
    Path((authority, complaint_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (id, complaint) = state.admit_about(
        &authority,
        &headers,
        &body,
        ("complaint_id", &complaint_id),
        |c: &ComplaintBody| Some(c.complaint_id),
    )?;
    let callback = callback_url(&headers)?;
    let complaint = clerk::Complaint::new(id, &complaint.text, complaint.kind.as_deref());
    state
        .clerk(&authority)
        .receive_complaint(complaint, callback);
    Ok((StatusCode::ACCEPTED, Json(json!({}))))
}

async fn withdraw_complaint(
    State(state): State<Arc<BackOffice>>,
    Path((authority, complaint_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    state.admit(&authority, &headers, &body)?;
    let id = parse_id("complaint_id", &complaint_id)?;
    let accepted = state
        .clerk(&authority)
        .withdraw_complaint(id)
        .ok_or_else(|| ApiError::not_found("no complaint with this id"))?;
    Ok(Json(json!({"accepted": accepted})))
}

async fn inspect_application(
    State(state): State<Arc<BackOffice>>,
    Path((authority, application_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id("application_id", &application_id)?;
    let case = state
        .known_clerk(&authority)?
        .application(id)
        .ok_or_else(|| ApiError::not_found("no application with this id"))?;
    let mut answer = json!({
        "registration_number": case.registration_number,
        "state": case.state.name(),
    });
    if let clerk::State::Decided(verdict) = case.state {
        answer["verdict"] = json!(verdict.name());
    }
    if let Some(due) = &case.due_after_info {
        answer["decision_due_after_info"] = json!(due);
    }
    Ok(Json(answer))
}

async fn inspect_complaint(
    State(state): State<Arc<BackOffice>>,
    Path((authority, complaint_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id("complaint_id", &complaint_id)?;
    let complaint = state
        .known_clerk(&authority)?
        .complaint(id)
        .ok_or_else(|| ApiError::not_found("no complaint with this id"))?;
    let mut answer = json!({"state": complaint.name()});
    if let clerk::ComplaintState::Decided(verdict) = complaint {
        answer["verdict"] = json!(verdict.name());
    }
    Ok(Json(answer))
}

/// An authority id is `[a-z0-9-]`, 1 to 64 of them; `sim` is the simulator's own prefix.
fn check_authority(authority: &str) -> Result<(), ApiError> {
    let ok = !authority.is_empty()
        && authority.len() <= MAX_AUTHORITY_LEN
        && authority != "sim"
        && authority
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::not_found(
            "no such authority: an authority id is 1 to 64 of a-z, 0-9 and '-' (not sim)",
        ))
    }
}

fn parse_id(name: &str, raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw)
        .map_err(|_| ApiError::invalid_request(format!("{name} in the path must be a UUID")))
}

/// The `X-Callback-Url` of a `PUT`: an absolute http(s) URL.
fn callback_url(headers: &HeaderMap) -> Result<Url, ApiError> {
    let invalid = || ApiError::invalid_request("X-Callback-Url must be an absolute http(s) URL");
    let raw = headers
        .get(CALLBACK_URL_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(invalid)?;
    match Url::parse(raw.trim()) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Ok(url),
        _ => Err(invalid()),
    }
}

/// Where an answer of `message_type` goes: `{callback}/{message_type}`, with one `/` between
/// them whether or not the callback URL ends with one.
fn callback_to(callback: &Url, message_type: &str) -> Url {
    let mut url = callback.clone();
    let path = format!("{}/{message_type}", callback.path().trim_end_matches('/'));
    url.set_path(&path);
    url
}

/// `sha256=<hex of HMAC-SHA256(secret, body)>`.
fn sign(secret: &[u8], body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(mac(secret, body).finalize().into_bytes())
    )
}

/// What a callback's signature covers: `METHOD "\n" path "\n" timestamp "\n" body`, the path
/// percent-encoded as in the URL, without its query; so the hub can tell a callback moved to
/// another authority's or another answer type's path, or sent again later.
fn callback_signed_bytes(method: &str, url: &Url, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut signed = format!("{method}\n{}\n{timestamp}\n", url.path()).into_bytes();
    signed.extend_from_slice(body);
    signed
}

/// Whether `header` is `sha256=<hex>` of `body` under `secret`, compared in constant time.
fn verify(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let tag = header
        .map(str::trim)
        .and_then(|h| h.strip_prefix("sha256="))
        .and_then(|hex| hex::decode(hex).ok());
    tag.is_some_and(|tag| mac(secret, body).verify_slice(&tag).is_ok())
}

fn mac(secret: &[u8], body: &[u8]) -> Hmac<Sha256> {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        // HMAC takes a key of any length (a long one is hashed first), so this is never taken.
        Err(_) => Hmac::<Sha256>::new(&Default::default()),
    };
    mac.update(body);
    mac
}

/// Posts one authority's later answers to the hub's callback URLs.
#[derive(Debug)]
struct Callbacks {
    authority: String,
    client: reqwest::Client,
    secret: Vec<u8>,
    ctx: SimContext,
    /// Its official's certificate: decisions go signed (v2) with one.
    signing: Option<Arc<DecisionSigning>>,
}

impl Outbox for Callbacks {
    /// The `X-Callback-Url` of the application or complaint.
    type Address = Url;

    /// Signs the answer once, then posts it — dropped or sent twice by the faults in force.
    async fn send(&self, callback: &Url, answer: &Answer) -> anyhow::Result<()> {
        let unsigned = answer.to_json();
        let signed = match &self.signing {
            Some(signing) => {
                signing
                    .sign_answer(&self.authority, answer.message_type(), &unsigned)
                    .await?
            }
            None => None,
        };
        let (message_type, body) = signed.unwrap_or((answer.message_type(), unsigned));
        let url = callback_to(callback, message_type);
        let body = body.to_string().into_bytes();
        let faults = self.ctx.faults.get();
        if roll(faults.drop_callback_rate) {
            tracing::info!(
                simulator = %self.ctx.kind,
                authority = %self.authority,
                id = %answer.about(),
                message_type = answer.message_type(),
                "callback dropped (fault)"
            );
            return Ok(());
        }
        let copies = if roll(faults.duplicate_callback_rate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            self.post(&url, &body, answer).await?;
        }
        Ok(())
    }
}

impl Callbacks {
    /// POSTs until the hub answers 2xx (done) or 4xx (it refuses: given up), retrying other
    /// answers and failed connections with a doubling backoff; stops when the simulator does.
    /// Each attempt is signed at the time it is sent, so a long outage of the hub does not age
    /// the retries out of the hub's window.
    async fn post(&self, url: &Url, body: &[u8], answer: &Answer) -> anyhow::Result<()> {
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 0_u32;
        loop {
            attempt += 1;
            let now = chrono::Utc::now().timestamp();
            let signed = callback_signed_bytes("POST", url, now, body);
            let request = self
                .client
                .post(url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(AUTHORITY_TIMESTAMP_HEADER, now.to_string())
                .header(AUTHORITY_SIGNATURE_HEADER, sign(&self.secret, &signed))
                .body(body.to_vec())
                .send();
            let result = tokio::select! {
                result = request => result,
                () = self.ctx.shutdown.cancelled() => anyhow::bail!("the simulator stopped"),
            };
            let failure = match result {
                Ok(response) if response.status().is_success() => {
                    tracing::debug!(
                        simulator = %self.ctx.kind,
                        authority = %self.authority,
                        id = %answer.about(),
                        message_type = answer.message_type(),
                        attempt,
                        "callback delivered"
                    );
                    return Ok(());
                }
                Ok(response) if response.status().is_client_error() => {
                    anyhow::bail!("the hub refused it with HTTP {}", response.status())
                }
                Ok(response) => format!("HTTP {}", response.status()),
                Err(e) => e.without_url().to_string(),
            };
            tracing::info!(
                simulator = %self.ctx.kind,
                authority = %self.authority,
                id = %answer.about(),
                message_type = answer.message_type(),
                attempt,
                %failure,
                retry_in_ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX),
                "callback failed, retrying"
            );
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = self.ctx.shutdown.cancelled() => anyhow::bail!("the simulator stopped"),
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callbacks_go_under_the_callback_url_with_one_slash() {
        for base in [
            "http://127.0.0.1:8090/callbacks/tax",
            "http://127.0.0.1:8090/callbacks/tax/",
        ] {
            let url = Url::parse(base).expect("a URL");
            assert_eq!(
                callback_to(&url, "authority.decided.v1").as_str(),
                "http://127.0.0.1:8090/callbacks/tax/authority.decided.v1"
            );
        }
        let bare = Url::parse("http://127.0.0.1:8090").expect("a URL");
        assert_eq!(
            callback_to(&bare, "authority.decided.v1").as_str(),
            "http://127.0.0.1:8090/authority.decided.v1"
        );
        let with_query = Url::parse("http://127.0.0.1:8090/cb?t=1").expect("a URL");
        assert_eq!(
            callback_to(&with_query, "authority.decided.v1").as_str(),
            "http://127.0.0.1:8090/cb/authority.decided.v1?t=1"
        );
    }

    #[test]
    fn authority_ids_are_lower_case_letters_digits_and_dashes() {
        for ok in ["tax-ministry", "fszn", "a1", &"a".repeat(64)] {
            assert!(check_authority(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Tax",
            "tax_ministry",
            "sim",
            "tax.ministry",
            &"a".repeat(65),
        ] {
            assert!(check_authority(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_signature_is_the_rfc_4231_hmac_sha256_in_hex_and_verifies() {
        // RFC 4231, test case 2: the adapter's signature test checks the same.
        let signature = sign(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            signature,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(verify(
            b"Jefe",
            b"what do ya want for nothing?",
            Some(&signature)
        ));
        assert!(!verify(b"Jefe", b"what do ya want?", Some(&signature)));
        assert!(!verify(b"Jefe", b"", None));
        assert!(!verify(b"Jefe", b"", Some("sha256=zz")));
        assert!(verify(b"Jefe", b"", Some(&sign(b"Jefe", b""))));
    }

    #[test]
    fn a_callback_signs_method_path_timestamp_and_body_on_lines() {
        // The adapter's request-signature test pins the same layout: both sides agree.
        let url = Url::parse("http://127.0.0.1:8090/cb/a.v1?t=1").expect("a URL");
        assert_eq!(
            callback_signed_bytes("POST", &url, 1_700_000_000, b"{}"),
            b"POST\n/cb/a.v1\n1700000000\n{}".to_vec()
        );
    }
}
