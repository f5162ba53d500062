//! GosSUOK's HTTP API: the CA certificates (`/ca/`), freshly signed CRLs (`/crl/`), the OCSP
//! responder (`/ocsp`, RFC 6960: POST, and GET with the request in base64 in the path) and the
//! unsigned JSON status endpoint (`/api/v1/certificates/{serial}/status`, for integrators; the
//! hub trusts only signed answers), all under the faults; and, for tests and the demo, each
//! person's certificate and key token, extra certificates, revocation and the OCSP responder's
//! mode (`/sim/`).
//!
//! Every certificate the simulator knows is in one [`Book`], keyed by serial: the intermediate
//! (so the root's CRL can list it) and the leaves. A revocation is recorded there once and read
//! by the status endpoint, the CRLs and the OCSP responder, so they never disagree.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::{
    STANDARD as BASE64, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD,
};
use belt_hash::{BeltHash, Digest};
use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Deps;
use super::ca::{
    HolderKey, IssueOptions, Issuer, LeafKeyUsage, Revocation, RevocationReason, Subject, TestCa,
};
use super::ocsp::{self, OcspMode, OcspStatus};
use crate::error::{ApiError, parse_json, timestamp};
use crate::idempotency::IdempotencyStore;
use crate::idnumber;
use crate::mvd::population::{Person, Population};
use crate::server::{self, SimContext};

/// The media type of a DER certificate (RFC 2585).
const PKIX_CERT: &str = "application/pkix-cert";

/// The media type of a DER CRL (RFC 2585).
const PKIX_CRL: &str = "application/pkix-crl";

/// The media type of an OCSP response (RFC 6960 appendix C.2).
const OCSP_RESPONSE: &str = "application/ocsp-response";

/// The longest serial accepted, in hex digits (20 bytes and a sign byte).
const MAX_SERIAL_DIGITS: usize = 42;

/// 9999-12-31T23:59:59Z, the last second an X.509 time can carry.
const LAST_X509_SECOND: i64 = 253_402_300_799;

/// The longest validity of a CRL: longer makes no sense for a CA that signs on every request.
pub(crate) const MAX_CRL_VALIDITY: std::time::Duration =
    std::time::Duration::from_secs(365 * 24 * 3600);

#[derive(Debug)]
struct GossuokState {
    ctx: SimContext,
    ca: TestCa,
    population: Population,
    crl_validity: TimeDelta,
    book: Mutex<Book>,
    /// How the OCSP responder answers (`/sim/ocsp`).
    ocsp_mode: Mutex<OcspMode>,
    idempotency: IdempotencyStore,
}

/// Every certificate the CA knows, by serial (lower-case hex).
#[derive(Debug, Default)]
struct Book {
    certificates: HashMap<String, Record>,
    /// A person's own certificate (the one their key token holds), by identification number.
    person_certificates: HashMap<String, String>,
    /// How many extra certificates each person has had issued, by identification number.
    extra_certificates: HashMap<String, u64>,
}

/// One certificate.
#[derive(Debug)]
struct Record {
    issuer: Issuer,
    certificate_der: Vec<u8>,
    /// The holder's key; `None` for the intermediate CA, whose key signs nothing on request.
    holder: Option<HolderKey>,
    revocation: Option<(DateTime<Utc>, RevocationReason)>,
}

/// The simulator's CA and key tokens, as the simulators of the same process may use them: an
/// authority's back-office gets its official's certificate and signs with its key here, without
/// an HTTP call (which under mutual TLS would need a client certificate of its own). Whatever it
/// issues is in the simulator's book like any certificate: its status, OCSP answers and
/// revocation (`POST /sim/revoke/{serial}`) apply to it.
#[derive(Debug, Clone)]
pub struct KeyTokens(Arc<GossuokState>);

/// An official's certificate issued in-process ([`KeyTokens::issue_official`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfficialCertificate {
    /// The serial, lowercase hex (what [`KeyTokens::sign`] takes).
    pub serial: String,
    /// The certificate, DER in base64.
    pub certificate: String,
    /// Its issuers up to the root, DER in base64.
    pub chain: Vec<String>,
}

impl KeyTokens {
    /// Issues a certificate signing for `organization` (its subject's organizationName) to an
    /// official: a person of the population chosen by the organisation's name (the same one for
    /// the same name), as `POST /sim/certificates` with `organization` would.
    ///
    /// Errors: the population is empty, or the CA cannot issue.
    pub fn issue_official(&self, organization: &str) -> anyhow::Result<OfficialCertificate> {
        let persons = self.0.population.persons();
        anyhow::ensure!(!persons.is_empty(), "GosSUOK's population is empty");
        let digest = BeltHash::digest(organization.as_bytes());
        let pick = u64::from_be_bytes(digest[..8].try_into().unwrap_or_default());
        let index = usize::try_from(pick % persons.len() as u64).unwrap_or_default();
        let person = &persons[index];
        let mut book = self.0.book();
        let count = book
            .extra_certificates
            .entry(person.identification_number.clone())
            .or_insert(0);
        *count += 1;
        let now = Utc::now();
        let options = IssueOptions {
            not_before: now - TimeDelta::days(1),
            not_after: now + TimeDelta::days(365),
            key_usage: LeafKeyUsage::DigitalSignature,
            signed_by: Issuer::Intermediate,
            key_seed: key_seed(&person.identification_number, *count),
            private_key_usage: None,
            unknown_critical_extension: false,
        };
        let serial = self
            .0
            .issue(&mut book, person, Some(organization.to_owned()), &options)
            .map_err(|e| anyhow::anyhow!("GosSUOK could not issue: {e:?}"))?;
        let record = book
            .certificates
            .get(&serial)
            .ok_or_else(|| anyhow::anyhow!("the certificate {serial} is gone"))?;
        let json = self.0.certificate_json(&serial, record);
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        Ok(OfficialCertificate {
            serial,
            certificate: text(&json["certificate"]),
            chain: json["chain"]
                .as_array()
                .map(|c| c.iter().map(text).collect())
                .unwrap_or_default(),
        })
    }

    /// Signs `data` with the key of the certificate `serial` (bign over belt-hash), as
    /// `POST /sim/certificates/{serial}/sign` does.
    ///
    /// Errors: no key token holds a certificate with this serial.
    pub fn sign(&self, serial: &str, data: &[u8]) -> anyhow::Result<Vec<u8>> {
        let book = self.0.book();
        let holder = book
            .certificates
            .get(serial)
            .and_then(|record| record.holder.as_ref())
            .ok_or_else(|| anyhow::anyhow!("no key token holds certificate {serial}"))?;
        Ok(holder.sign(data).to_vec())
    }
}

/// The simulator's CA and book, made from `deps`; serve it with [`router`].
pub(crate) fn key_tokens(ctx: SimContext, deps: Deps) -> KeyTokens {
    let mut book = Book::default();
    book.certificates.insert(
        deps.ca.intermediate_serial().to_owned(),
        Record {
            issuer: Issuer::Root,
            certificate_der: deps.ca.intermediate_der(),
            holder: None,
            revocation: None,
        },
    );
    let crl_validity = deps.crl_validity.min(MAX_CRL_VALIDITY);
    let state = Arc::new(GossuokState {
        ctx: ctx.clone(),
        ca: deps.ca,
        population: deps.population,
        crl_validity: TimeDelta::from_std(crl_validity).unwrap_or(TimeDelta::days(365)),
        book: Mutex::new(book),
        ocsp_mode: Mutex::new(OcspMode::default()),
        idempotency: IdempotencyStore::new(ctx.retention.keys_limit()),
    });
    KeyTokens(state)
}

/// The simulator's routes over `tokens`' CA and book, finished with the common ones.
pub(crate) fn router(tokens: &KeyTokens) -> Router {
    let (state, ctx) = (tokens.0.clone(), tokens.0.ctx.clone());
    let routes = Router::new()
        .route("/ca/root.der", get(root_certificate))
        .route("/ca/intermediate.der", get(intermediate_certificate))
        .route("/crl/root.crl", get(root_crl))
        .route("/crl/intermediate.crl", get(intermediate_crl))
        .route("/ocsp", post(ocsp_post))
        .route("/ocsp/{*request}", get(ocsp_get))
        .route("/api/v1/certificates/{serial}/status", get(status))
        .route(
            "/sim/persons/{identification_number}/certificate",
            get(person_certificate),
        )
        .route(
            "/sim/persons/{identification_number}/sign",
            post(person_sign),
        )
        .route("/sim/certificates", post(issue_certificate))
        .route("/sim/certificates/{serial}/sign", post(certificate_sign))
        .route("/sim/revoke/{serial}", post(revoke))
        .route("/sim/ocsp", get(get_ocsp_mode).put(put_ocsp_mode))
        .with_state(state);
    server::finish(routes, ctx)
}

impl GossuokState {
    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn find_person(&self, identification_number: &str) -> Result<&Person, ApiError> {
        self.population
            .find(&normalize_id(identification_number))
            .ok_or_else(|| ApiError::not_found("no person with this identification number"))
    }

    /// The serial of the person's own certificate, issued on first use: valid from the start
    /// of yesterday (UTC) for a year, signed by the intermediate, the key fixed by the
    /// identification number.
    fn person_serial(&self, book: &mut Book, person: &Person) -> Result<String, ApiError> {
        if let Some(serial) = book.person_certificates.get(&person.identification_number) {
            return Ok(serial.clone());
        }
        let today = Utc::now()
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .map(|midnight| midnight.and_utc())
            .unwrap_or_else(Utc::now);
        let options = IssueOptions {
            not_before: today - TimeDelta::days(1),
            not_after: today + TimeDelta::days(365),
            key_usage: LeafKeyUsage::DigitalSignature,
            signed_by: Issuer::Intermediate,
            key_seed: key_seed(&person.identification_number, 0),
            private_key_usage: None,
            unknown_critical_extension: false,
        };
        let serial = self.issue(book, person, None, &options)?;
        book.person_certificates
            .insert(person.identification_number.clone(), serial.clone());
        Ok(serial)
    }

    /// Issues a certificate to `person`, records it and returns its serial.
    fn issue(
        &self,
        book: &mut Book,
        person: &Person,
        organization: Option<String>,
        options: &IssueOptions,
    ) -> Result<String, ApiError> {
        let subject = Subject {
            identification_number: person.identification_number.clone(),
            surname: person.surname.clone(),
            given_name: person.given_name.clone(),
            patronymic: person.patronymic.clone(),
            organization,
        };
        let issued = self
            .ca
            .try_issue(&subject, options)
            .map_err(|e| ApiError::invalid_request(e.to_string()))?;
        tracing::info!(
            simulator = %self.ctx.kind,
            identification_number = %idnumber::mask(&person.identification_number),
            serial = %issued.serial,
            signed_by = ?options.signed_by,
            "certificate issued"
        );
        book.certificates.insert(
            issued.serial.clone(),
            Record {
                issuer: options.signed_by,
                certificate_der: issued.certificate_der,
                holder: Some(issued.holder),
                revocation: None,
            },
        );
        Ok(issued.serial)
    }

    /// `{"serial", "certificate", "chain"}`: the certificate and its issuers up to the root,
    /// each DER in base64.
    fn certificate_json(&self, serial: &str, record: &Record) -> Value {
        let chain = match record.issuer {
            Issuer::Intermediate => vec![
                BASE64.encode(self.ca.intermediate_der()),
                BASE64.encode(self.ca.root_der()),
            ],
            Issuer::Root => vec![BASE64.encode(self.ca.root_der())],
        };
        json!({
            "serial": serial,
            "certificate": BASE64.encode(&record.certificate_der),
            "chain": chain,
        })
    }
}

/// `status`: `good`, `revoked` (with when and why) or `unknown`.
fn status_json(serial: &str, record: Option<&Record>) -> Value {
    match record {
        None => json!({"serial": serial, "status": "unknown"}),
        Some(Record {
            revocation: Some((at, reason)),
            ..
        }) => json!({
            "serial": serial,
            "status": "revoked",
            "revoked_at": timestamp(*at),
            "reason": reason.as_str(),
        }),
        Some(_) => json!({"serial": serial, "status": "good"}),
    }
}

/// Identification numbers ignore spaces and case, as at the MVD.
fn normalize_id(identification_number: &str) -> String {
    identification_number
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_uppercase()
}

/// A serial as the book keys it: lower-case hex without leading `00` bytes.
fn normalize_serial(serial: &str) -> Result<String, ApiError> {
    let serial = serial.trim().to_ascii_lowercase();
    if serial.is_empty()
        || serial.len() > MAX_SERIAL_DIGITS
        || !serial.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err(ApiError::invalid_request(format!(
            "a serial number is 1 to {MAX_SERIAL_DIGITS} hex digits"
        )));
    }
    let mut rest = serial.as_str();
    while rest.len() > 2 && rest.starts_with("00") {
        rest = &rest[2..];
    }
    Ok(rest.to_owned())
}

/// The key seed of a person's `n`-th certificate (0: their own): a function of the
/// identification number, so the same person has the same key run after run.
fn key_seed(identification_number: &str, n: u64) -> u64 {
    let digest = BeltHash::new()
        .chain_update(b"gossuok-sim/person-key")
        .chain_update(identification_number.as_bytes())
        .chain_update(n.to_be_bytes())
        .finalize();
    let mut seed = [0_u8; 8];
    seed.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(seed)
}

fn der_response(content_type: &'static str, der: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, content_type)], der).into_response()
}

async fn root_certificate(State(state): State<Arc<GossuokState>>) -> Response {
    der_response(PKIX_CERT, state.ca.root_der())
}

async fn intermediate_certificate(State(state): State<Arc<GossuokState>>) -> Response {
    der_response(PKIX_CERT, state.ca.intermediate_der())
}

async fn root_crl(State(state): State<Arc<GossuokState>>) -> Response {
    crl(&state, Issuer::Root)
}

async fn intermediate_crl(State(state): State<Arc<GossuokState>>) -> Response {
    crl(&state, Issuer::Intermediate)
}

/// A CRL signed now by `issuer`, valid for the configured time, listing its revoked
/// certificates (oldest revocation first).
fn crl(state: &GossuokState, issuer: Issuer) -> Response {
    let mut revoked: Vec<Revocation> = state
        .book()
        .certificates
        .iter()
        .filter(|(_, record)| record.issuer == issuer)
        .filter_map(|(serial, record)| {
            record.revocation.map(|(revoked_at, reason)| Revocation {
                serial: serial.clone(),
                revoked_at,
                reason,
            })
        })
        .collect();
    revoked.sort_by(|a, b| {
        a.revoked_at
            .cmp(&b.revoked_at)
            .then_with(|| a.serial.cmp(&b.serial))
    });
    let now = Utc::now();
    match state
        .ca
        .try_crl_der(issuer, &revoked, now, now + state.crl_validity)
    {
        Ok(der) => der_response(PKIX_CRL, der),
        Err(e) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("cannot sign the CRL: {e}"),
        )
        .into_response(),
    }
}

/// `POST /ocsp`: the body is a DER OCSPRequest (`application/ocsp-request`).
async fn ocsp_post(State(state): State<Arc<GossuokState>>, body: Bytes) -> Response {
    ocsp_answer(&state, &body)
}

/// `GET /ocsp/{request}`: the DER OCSPRequest in base64 (standard or URL-safe, padded or
/// not), URL-encoded (RFC 6960 appendix A.1).
async fn ocsp_get(State(state): State<Arc<GossuokState>>, Path(encoded): Path<String>) -> Response {
    let encoded = encoded.trim();
    let der = [&BASE64, &URL_SAFE, &STANDARD_NO_PAD, &URL_SAFE_NO_PAD]
        .into_iter()
        .find_map(|engine| engine.decode(encoded).ok());
    match der {
        Some(der) => ocsp_answer(&state, &der),
        None => der_response(
            OCSP_RESPONSE,
            ocsp::status_only_der(x509_ocsp::OcspResponseStatus::MalformedRequest),
        ),
    }
}

/// The responder's answer to a DER request, from the book, valid as long as a CRL. Always
/// `200 OK`: an OCSP refusal is in the response's status (RFC 6960 2.3).
fn ocsp_answer(state: &GossuokState, request_der: &[u8]) -> Response {
    let mode = *state
        .ocsp_mode
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let book = state.book();
    let der = ocsp::respond(
        &state.ca,
        request_der,
        Utc::now(),
        state.crl_validity,
        mode,
        |issuer, serial| match book.certificates.get(serial) {
            Some(record) if record.issuer == issuer => match record.revocation {
                Some((revoked_at, reason)) => OcspStatus::Revoked { revoked_at, reason },
                None => OcspStatus::Good,
            },
            _ => OcspStatus::Unknown,
        },
    );
    der_response(OCSP_RESPONSE, der)
}

/// A `PUT /sim/ocsp` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OcspModeRequest {
    mode: OcspMode,
}

async fn get_ocsp_mode(State(state): State<Arc<GossuokState>>) -> axum::Json<Value> {
    let mode = *state
        .ocsp_mode
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    axum::Json(json!({ "mode": mode }))
}

/// `PUT /sim/ocsp {"mode": "..."}`: how the OCSP responder answers from now on.
async fn put_ocsp_mode(
    State(state): State<Arc<GossuokState>>,
    body: Bytes,
) -> Result<axum::Json<Value>, ApiError> {
    let request: OcspModeRequest = parse_json(&body)?;
    *state
        .ocsp_mode
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = request.mode;
    tracing::info!(simulator = %state.ctx.kind, mode = ?request.mode, "OCSP mode set");
    Ok(axum::Json(json!({ "mode": request.mode })))
}

async fn status(
    State(state): State<Arc<GossuokState>>,
    Path(serial): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let serial = normalize_serial(&serial)?;
    let book = state.book();
    Ok(axum::Json(status_json(
        &serial,
        book.certificates.get(&serial),
    )))
}

async fn person_certificate(
    State(state): State<Arc<GossuokState>>,
    Path(identification_number): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let person = state.find_person(&identification_number)?;
    let mut book = state.book();
    let serial = state.person_serial(&mut book, person)?;
    let record = book
        .certificates
        .get(&serial)
        .ok_or_else(|| ApiError::not_found("the person's certificate is gone"))?;
    Ok(axum::Json(state.certificate_json(&serial, record)))
}

/// A `sign` body: the bytes to sign, base64.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignRequest {
    data: String,
}

impl SignRequest {
    fn parse(body: &[u8]) -> Result<Vec<u8>, ApiError> {
        let request: SignRequest = parse_json(body)?;
        BASE64
            .decode(request.data.trim())
            .map_err(|e| ApiError::invalid_request(format!("data must be base64: {e}")))
    }
}

fn signature_json(serial: &str, holder: &HolderKey, data: &[u8]) -> Value {
    json!({"serial": serial, "signature": BASE64.encode(holder.sign(data))})
}

async fn person_sign(
    State(state): State<Arc<GossuokState>>,
    Path(identification_number): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let route = format!("POST /sim/persons/{identification_number}/sign");
    state.idempotency.run(&headers, &route, &body, || {
        let data = SignRequest::parse(&body)?;
        let person = state.find_person(&identification_number)?;
        let mut book = state.book();
        let serial = state.person_serial(&mut book, person)?;
        let holder = book
            .certificates
            .get(&serial)
            .and_then(|record| record.holder.as_ref())
            .ok_or_else(|| ApiError::not_found("the person's key is gone"))?;
        Ok((StatusCode::OK, signature_json(&serial, holder, &data)))
    })
}

async fn certificate_sign(
    State(state): State<Arc<GossuokState>>,
    Path(serial): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let route = format!("POST /sim/certificates/{serial}/sign");
    state.idempotency.run(&headers, &route, &body, || {
        let data = SignRequest::parse(&body)?;
        let serial = normalize_serial(&serial)?;
        let book = state.book();
        let holder = book
            .certificates
            .get(&serial)
            .and_then(|record| record.holder.as_ref())
            .ok_or_else(|| {
                ApiError::not_found("no key token holds a certificate with this serial")
            })?;
        Ok((StatusCode::OK, signature_json(&serial, holder, &data)))
    })
}

/// `key_usage` of `POST /sim/certificates`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
enum KeyUsageName {
    #[default]
    DigitalSignature,
    KeyEnciphermentOnly,
}

/// `signed_by` of `POST /sim/certificates`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
enum SignedBy {
    #[default]
    Intermediate,
    Root,
}

/// A `POST /sim/certificates` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IssueRequest {
    identification_number: String,
    valid_from: Option<DateTime<Utc>>,
    valid_to: Option<DateTime<Utc>>,
    #[serde(default)]
    key_usage: KeyUsageName,
    #[serde(default)]
    signed_by: SignedBy,
    /// The organisation the person signs for (`organizationName`): an authority's official
    /// gets the authority's catalogue id here, and signs its decisions with the certificate.
    #[serde(default)]
    organization: Option<String>,
}

async fn issue_certificate(
    State(state): State<Arc<GossuokState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state
        .idempotency
        .run(&headers, "POST /sim/certificates", &body, || {
            let request: IssueRequest = parse_json(&body)?;
            let now = Utc::now();
            let not_before = request.valid_from.unwrap_or(now - TimeDelta::days(1));
            let not_after = request.valid_to.unwrap_or(now + TimeDelta::days(365));
            if not_after <= not_before {
                return Err(ApiError::invalid_request(
                    "valid_to must be after valid_from",
                ));
            }
            let person = state.find_person(&request.identification_number)?;
            let mut book = state.book();
            let count = book
                .extra_certificates
                .entry(person.identification_number.clone())
                .or_insert(0);
            *count += 1;
            let n = *count;
            let options = IssueOptions {
                not_before,
                not_after,
                key_usage: match request.key_usage {
                    KeyUsageName::DigitalSignature => LeafKeyUsage::DigitalSignature,
                    KeyUsageName::KeyEnciphermentOnly => LeafKeyUsage::KeyEnciphermentOnly,
                },
                signed_by: match request.signed_by {
                    SignedBy::Intermediate => Issuer::Intermediate,
                    SignedBy::Root => Issuer::Root,
                },
                key_seed: key_seed(&person.identification_number, n),
                private_key_usage: None,
                unknown_critical_extension: false,
            };
            let serial = state.issue(&mut book, person, request.organization, &options)?;
            let record = book
                .certificates
                .get(&serial)
                .ok_or_else(|| ApiError::not_found("the certificate is gone"))?;
            Ok((StatusCode::CREATED, state.certificate_json(&serial, record)))
        })
}

/// A `POST /sim/revoke/{serial}` body; an empty body takes the defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeRequest {
    /// A [`RevocationReason`] name; `unspecified` by default.
    reason: Option<String>,
    /// When it was revoked; now by default.
    revoked_at: Option<DateTime<Utc>>,
}

async fn revoke(
    State(state): State<Arc<GossuokState>>,
    Path(serial): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let route = format!("POST /sim/revoke/{serial}");
    state.idempotency.run(&headers, &route, &body, || {
        let request: RevokeRequest = if body.iter().all(u8::is_ascii_whitespace) {
            RevokeRequest::default()
        } else {
            parse_json(&body)?
        };
        let reason = match request.reason.as_deref() {
            None => RevocationReason::Unspecified,
            Some(name) => RevocationReason::from_name(name).ok_or_else(|| {
                let names: Vec<&str> = RevocationReason::ALL.iter().map(|r| r.as_str()).collect();
                ApiError::invalid_request(format!(
                    "unknown reason {name:?}; expected one of {}",
                    names.join(", ")
                ))
            })?,
        };
        // A CRL carries whole seconds; the status endpoint says the same time.
        let revoked_at = request.revoked_at.unwrap_or_else(Utc::now);
        let revoked_at = DateTime::from_timestamp(revoked_at.timestamp(), 0).unwrap_or(revoked_at);
        if !(0..=LAST_X509_SECOND).contains(&revoked_at.timestamp()) {
            return Err(ApiError::invalid_request(
                "revoked_at must be between 1970 and 9999",
            ));
        }
        let serial = normalize_serial(&serial)?;
        let mut book = state.book();
        let record = book
            .certificates
            .get_mut(&serial)
            .ok_or_else(|| ApiError::not_found("no certificate with this serial"))?;
        if record.revocation.is_none() {
            record.revocation = Some((revoked_at, reason));
            tracing::info!(
                simulator = %state.ctx.kind,
                %serial,
                reason = reason.as_str(),
                "certificate revoked"
            );
        }
        Ok((StatusCode::OK, status_json(&serial, Some(record))))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_normalize_to_lower_case_without_leading_zero_bytes() {
        assert_eq!(normalize_serial(" 00AB12 ").expect("hex"), "ab12");
        assert_eq!(normalize_serial("00").expect("hex"), "00");
        assert!(normalize_serial("xyz").is_err());
        assert!(normalize_serial("").is_err());
        assert!(normalize_serial(&"a".repeat(43)).is_err());
    }

    #[test]
    fn key_seeds_depend_on_the_person_and_the_count() {
        assert_eq!(key_seed("3270287A012PB2", 0), key_seed("3270287A012PB2", 0));
        assert_ne!(key_seed("3270287A012PB2", 0), key_seed("3270287A012PB2", 1));
        assert_ne!(key_seed("3270287A012PB2", 0), key_seed("3270287A012PB3", 0));
    }
}
