//! An authority's HTTP back-office: for the authorities that decide administrative procedures
//! in their own system and take work over HTTP instead of consuming the hub's RabbitMQ queue.
//!
//! The same messages travel as on the queue — the bodies are the JSON of the queue contracts in
//! [`contracts::procedure`] — but the hub calls the back-office, and the back-office calls the
//! hub back with what it decides later. This is the hub's side of the calls; the simulator
//! `simulators` (`backoffice`) is the reference back-office.
//!
//! # The HTTP back-office contract, v1
//!
//! **Signatures.** Both directions sign with HMAC-SHA256 under the authority's shared secret;
//! the header value is `sha256=<lower-case hex>` (an empty body is signed as the empty byte
//! string). The hub signs the exact body bytes of its calls in [`HUB_SIGNATURE_HEADER`]
//! (`X-Hub-Signature`). The back-office signs its callbacks in [`AUTHORITY_SIGNATURE_HEADER`]
//! (`X-Authority-Signature`) over the whole request ([`sign_callback`]):
//!
//! ```text
//! METHOD "\n" path "\n" timestamp "\n" body
//! ```
//!
//! — the method (`POST`), the path of the URL it posts to (percent-encoded as in the URL, no
//! query: it names the authority and the answer type, e.g.
//! `/callbacks/authority/tax-ministry/authority.decided.v1`), the value of
//! [`AUTHORITY_TIMESTAMP_HEADER`] (`X-Authority-Timestamp`: whole seconds since 1970-01-01 UTC,
//! in decimal, taken when the attempt is sent) and the body bytes. So a signed answer cannot be
//! moved to another authority or another answer type, and the hub refuses one whose timestamp is
//! more than its window (by default [`DEFAULT_CALLBACK_WINDOW`], 5 minutes) from its own clock,
//! either way: a replay is refused once it is old, whatever the hub still remembers. Each side
//! checks the signature over the bytes it received, in constant time, before it parses them.
//!
//! **Hub -> back-office**, under the authority's base URL (it ends with `/`):
//!
//! | call | body | answer |
//! |------|------|--------|
//! | `PUT {base}applications/{application_id}` | `AuthorityApplication` | `200 {"registration_number": "<text>"}` |
//! | `POST {base}applications/{application_id}/withdrawal` | empty | `200 {"accepted": true \| false}` |
//! | `POST {base}applications/{application_id}/receipts` | `AuthorityPaymentReceipt` | `200 {"confirmed": true \| false, "reason": "<text, when refused>"}` |
//! | `POST {base}applications/{application_id}/info` | `AuthorityInfoProvided` | `2xx` (the person's answer to the authority's information request; the same answer again changes nothing) |
//! | `PUT {base}complaints/{complaint_id}` | `AuthorityComplaint` | `202 {}` |
//! | `POST {base}complaints/{complaint_id}/withdrawal` | empty | `200 {"accepted": true \| false}` |
//! | `POST {base}applications/{application_id}/decision-refusals` | `AuthorityDecisionRefused` | `2xx` (the hub refused the back-office's decision) |
//! | `POST {base}complaints/{complaint_id}/decision-refusals` | `AuthorityComplaintDecisionRefused` | `2xx` (the hub refused its decision on the complaint) |
//!
//! The two `PUT`s carry [`CALLBACK_URL_HEADER`] (`X-Callback-Url`): where the back-office posts
//! its later answers about that application or complaint. Every call is idempotent: a repeated
//! `PUT` of the same id answers the same registration number (or `202`) and does nothing more; a
//! repeated withdrawal answers the same `accepted`. `accepted: false` means the back-office had
//! already decided (the decision follows, or came). A withdrawal of an id it does not know is
//! `404 {"error": "not_found", ...}`; a missing or wrong signature `401 {"error":
//! "bad_signature", ...}`; a body that is not the contract `400 {"error": "invalid_request",
//! ...}`.
//!
//! **Back-office -> hub**: `POST {callback_url}/{message_type}` (one `/` between them, whether or
//! not the callback URL ends with one), where the message type is `authority.info_requested.v1`
//! (`AuthorityInfoRequested`), the signed `authority.decided.v2` (`AuthorityDecidedSigned`) or the
//! unsigned `authority.decided.v1` (`AuthorityDecided`), the signed
//! `authority.complaint_decided.v2` (`AuthorityComplaintDecidedSigned`) or the unsigned
//! `authority.complaint_decided.v1` (`AuthorityComplaintDecided`), the body is that contract's
//! JSON, [`AUTHORITY_TIMESTAMP_HEADER`] says when it was sent and [`AUTHORITY_SIGNATURE_HEADER`]
//! signs the request ([`verify_callback`] checks both; a retry is signed anew, with its own
//! timestamp). The hub answers `200` when it recorded the answer (also for a duplicate), `401`
//! when the signature or the timestamp is missing or wrong, `4xx` when it refuses it
//! (the back-office logs that and gives up on that answer), `5xx` when it cannot take it now
//! (the back-office retries with a backoff, e.g. from 200 ms doubling up to 5 s, until it gets
//! a 2xx or 4xx). A callback may reach the hub before the answer to the `PUT` that asked for it.
//!
//! # Failures
//!
//! Classified once ([`crate::failure`]), with the few quick retries every adapter makes (all
//! calls are idempotent, so a retry is safe): a timeout, a lost connection, 429 or 5xx is
//! transient; 401 is permanent — the hub's and the back-office's secrets differ, a configuration
//! error for a person to fix; 400 is permanent and names the back-office's error code; 404 on a
//! withdrawal is permanent with the reason [`UNKNOWN_APPLICATION`] or [`UNKNOWN_COMPLAINT`]; a
//! success whose body is not the contract's is a permanent contract violation. Reasons and log
//! lines name the back-office and the ids, never the form or the applicant.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use contracts::procedure::{
    AuthorityApplication, AuthorityComplaint, AuthorityInfoProvided, AuthorityPaymentReceipt,
};
use reqwest::Method;
use serde::Deserialize;
use url::Url;
use uuid::Uuid;

use crate::api_url;
use crate::client::{Answer, ClientError, HttpClient};
use crate::failure::{Failure, QuickRetry, Refusal, contract_violation, unexpected_json};
use crate::signature;

/// The header the hub signs its calls with: `sha256=<hex HMAC-SHA256 of the body>`.
pub const HUB_SIGNATURE_HEADER: &str = "X-Hub-Signature";

/// The header the back-office signs its callbacks with: `sha256=<hex HMAC-SHA256 of the
/// method, path, timestamp and body>` ([`sign_callback`]).
pub const AUTHORITY_SIGNATURE_HEADER: &str = "X-Authority-Signature";

/// The header of a callback saying when it was sent: whole seconds since 1970-01-01 UTC.
pub const AUTHORITY_TIMESTAMP_HEADER: &str = "X-Authority-Timestamp";

/// How far a callback's timestamp may be from the hub's clock, either way, unless configured
/// otherwise: long enough for a retry's flight and a modest clock skew, short enough that a
/// captured callback soon cannot be replayed.
pub const DEFAULT_CALLBACK_WINDOW: Duration = Duration::from_secs(5 * 60);

/// The header of a `PUT` naming where the back-office posts its later answers.
pub const CALLBACK_URL_HEADER: &str = "X-Callback-Url";

/// The reason of the invalid-input failure for a callback whose signature is missing, malformed
/// or wrong. It never says more: the body is not to be trusted, nor echoed.
pub const BAD_SIGNATURE: &str = signature::BAD_SIGNATURE;

/// The reason of the permanent failure when the back-office answers a withdrawal with `404`: it
/// does not know the application.
pub const UNKNOWN_APPLICATION: &str = "the back-office does not know the application";

/// The reason of the permanent failure when the back-office answers a complaint's withdrawal
/// with `404`: it does not know the complaint.
pub const UNKNOWN_COMPLAINT: &str = "the back-office does not know the complaint";

/// A client of one authority's HTTP back-office.
#[derive(Clone)]
pub struct BackOfficeClient {
    system: String,
    http: HttpClient,
    base: Url,
    secret: Vec<u8>,
}

impl fmt::Debug for BackOfficeClient {
    /// Leaves the secret out: whoever holds it can forge the authority's decisions.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackOfficeClient")
            .field("system", &self.system)
            .field("base", &self.base.as_str())
            .field("secret", &"<redacted>")
            .field("timeout", &self.http.timeout())
            .field("retry", &self.http.retry())
            .finish()
    }
}

/// What a call is about, for its log line and its 404.
#[derive(Debug, Clone, Copy)]
enum Subject {
    Application(Uuid),
    Complaint(Uuid),
}

impl BackOfficeClient {
    /// A client of the back-office at `base_url` (`http://127.0.0.1:8131/tax-ministry/` for the
    /// simulator), signing with `secret`. `system_name` names it in failure reasons and logs
    /// (`back-office of tax-ministry`). Every HTTP attempt is bounded by `timeout`; transient
    /// failures get [`QuickRetry::default`].
    ///
    /// Errors: the HTTP client cannot be built (a start-up error naming `system_name`).
    pub fn new(
        system_name: impl Into<String>,
        base_url: Url,
        secret: Vec<u8>,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let system = system_name.into();
        Ok(BackOfficeClient {
            http: HttpClient::new(&system, timeout)?,
            system,
            base: base_url,
            secret,
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
    /// Errors: rustls refuses the settings (a start-up error naming the back-office).
    pub fn with_tls(mut self, tls: &crate::tls::ClientTls) -> Result<Self, ClientError> {
        self.http = self.http.retls(&self.system, tls)?;
        Ok(self)
    }

    /// The same client, sending `traceparent` (W3C trace context) with each of its calls, so
    /// the system's own logs join the trace of the message that caused them. `None`, or a value
    /// that cannot be a header, sends none.
    pub fn with_traceparent(mut self, traceparent: Option<&str>) -> Self {
        self.http = self.http.with_traceparent(traceparent);
        self
    }

    /// Hands an application to the back-office; its later answers (an info request, the
    /// decision) are posted under `callback`. Returns the authority's registration number; a
    /// repeated call answers the same one.
    ///
    /// Errors: a `callback` that is not http(s) is invalid input (nothing is sent); otherwise
    /// as described in the module docs.
    pub async fn submit_application(
        &self,
        application: &AuthorityApplication,
        callback: &Url,
    ) -> Result<String, Failure> {
        #[derive(Deserialize)]
        struct Registration {
            registration_number: String,
        }
        let subject = Subject::Application(application.application_id);
        let result = async {
            check_callback(callback)?;
            let body = encode(application)?;
            let path = format!("applications/{}", application.application_id);
            let answer = self
                .call(Method::PUT, &path, body, Some(callback), subject)
                .await?;
            let registration: Registration =
                serde_json::from_slice(&answer).map_err(|e| unexpected_json(&self.system, &e))?;
            if registration.registration_number.trim().is_empty() {
                return Err(contract_violation(
                    &self.system,
                    "answered an empty registration_number",
                ));
            }
            Ok(registration.registration_number)
        }
        .await;
        self.log("application submitted", subject, &result);
        result
    }

    /// Withdraws an application: true when the back-office stopped processing it, false when
    /// it had already decided (the decision follows, or came). A repeated call answers the same.
    ///
    /// Errors: a back-office that does not know the application is permanent with the reason
    /// [`UNKNOWN_APPLICATION`]; otherwise as described in the module docs.
    pub async fn withdraw_application(&self, application_id: Uuid) -> Result<bool, Failure> {
        let subject = Subject::Application(application_id);
        let path = format!("applications/{application_id}/withdrawal");
        let result = self.withdraw(&path, subject).await;
        self.log("application withdrawal answered", subject, &result);
        result
    }

    /// Asks the back-office whether the payment a receipt shows (made outside ERIP) reached the
    /// authority: `(confirmed, reason)`. The same receipt gets the same answer.
    ///
    /// Errors: as [`Self::submit_application`].
    pub async fn check_receipt(
        &self,
        receipt: &AuthorityPaymentReceipt,
    ) -> Result<(bool, Option<String>), Failure> {
        #[derive(Deserialize)]
        struct Answer {
            confirmed: bool,
            #[serde(default)]
            reason: Option<String>,
        }
        let subject = Subject::Application(receipt.application_id);
        let result = async {
            let body = encode(receipt)?;
            let path = format!("applications/{}/receipts", receipt.application_id);
            let answer = self.call(Method::POST, &path, body, None, subject).await?;
            let answer: Answer =
                serde_json::from_slice(&answer).map_err(|e| unexpected_json(&self.system, &e))?;
            Ok((answer.confirmed, answer.reason))
        }
        .await;
        self.log("receipt answered", subject, &result);
        result
    }

    /// Hands the person's answer to the authority's information request to the back-office,
    /// with the moved term. A repeated call does nothing more.
    ///
    /// Errors: as [`Self::submit_application`].
    pub async fn provide_info(&self, info: &AuthorityInfoProvided) -> Result<(), Failure> {
        let subject = Subject::Application(info.application_id);
        let result = async {
            let body = encode(info)?;
            let path = format!("applications/{}/info", info.application_id);
            self.call(Method::POST, &path, body, None, subject).await?;
            Ok(())
        }
        .await;
        self.log("information provided", subject, &result);
        result
    }

    /// Hands a complaint to the back-office; its decision is posted under `callback`. A
    /// repeated call does nothing more.
    ///
    /// Errors: as [`Self::submit_application`].
    pub async fn submit_complaint(
        &self,
        complaint: &AuthorityComplaint,
        callback: &Url,
    ) -> Result<(), Failure> {
        let subject = Subject::Complaint(complaint.complaint_id);
        let result = async {
            check_callback(callback)?;
            let body = encode(complaint)?;
            let path = format!("complaints/{}", complaint.complaint_id);
            let answer = self
                .call(Method::PUT, &path, body, Some(callback), subject)
                .await?;
            // The contract's `{}`: an object, whatever its fields. A page that is not JSON
            // (a proxy's, a web server's at a wrong URL) must not pass for an acceptance.
            serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&answer)
                .map_err(|e| unexpected_json(&self.system, &e))?;
            Ok(())
        }
        .await;
        self.log("complaint submitted", subject, &result);
        result
    }

    /// Withdraws a complaint: true when the back-office stopped, false when it had already
    /// decided it.
    ///
    /// Errors: a back-office that does not know the complaint is permanent with the reason
    /// [`UNKNOWN_COMPLAINT`]; otherwise as described in the module docs.
    pub async fn withdraw_complaint(&self, complaint_id: Uuid) -> Result<bool, Failure> {
        let subject = Subject::Complaint(complaint_id);
        let path = format!("complaints/{complaint_id}/withdrawal");
        let result = self.withdraw(&path, subject).await;
        self.log("complaint withdrawal answered", subject, &result);
        result
    }

    /// Tells the back-office the hub refused its decision (`authority.decision_refused.v1` as
    /// the body of `POST {base}applications/{id}/decision-refusals`): it did not reach the
    /// person, and the application waits for a properly signed one. A repeated call records
    /// nothing more at a back-office that keeps it idempotent.
    ///
    /// Errors: as [`Self::submit_application`].
    pub async fn decision_refused(
        &self,
        refusal: &contracts::procedure::AuthorityDecisionRefused,
    ) -> Result<(), Failure> {
        let subject = Subject::Application(refusal.application_id);
        let result = async {
            let body = encode(refusal)?;
            let path = format!("applications/{}/decision-refusals", refusal.application_id);
            self.call(Method::POST, &path, body, None, subject).await?;
            Ok(())
        }
        .await;
        self.log("decision refusal delivered", subject, &result);
        result
    }

    /// Tells the back-office the hub refused its decision on a complaint
    /// (`authority.complaint_decision_refused.v1` as the body of
    /// `POST {base}complaints/{id}/decision-refusals`): it did not reach the person, and the
    /// complaint waits for a properly signed one.
    ///
    /// Errors: as [`Self::submit_application`].
    pub async fn complaint_decision_refused(
        &self,
        refusal: &contracts::procedure::AuthorityComplaintDecisionRefused,
    ) -> Result<(), Failure> {
        let subject = Subject::Complaint(refusal.complaint_id);
        let result = async {
            let body = encode(refusal)?;
            let path = format!("complaints/{}/decision-refusals", refusal.complaint_id);
            self.call(Method::POST, &path, body, None, subject).await?;
            Ok(())
        }
        .await;
        self.log("complaint decision refusal delivered", subject, &result);
        result
    }

    /// `POST {base}{path}` with an empty body; the answer's `accepted`.
    async fn withdraw(&self, path: &str, subject: Subject) -> Result<bool, Failure> {
        #[derive(Deserialize)]
        struct Answer {
            accepted: bool,
        }
        let answer = self
            .call(Method::POST, path, Vec::new(), None, subject)
            .await?;
        let answer: Answer =
            serde_json::from_slice(&answer).map_err(|e| unexpected_json(&self.system, &e))?;
        Ok(answer.accepted)
    }

    /// One signed call, with the quick retries; the body of its 2xx answer.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
        callback: Option<&Url>,
        subject: Subject,
    ) -> Result<Vec<u8>, Failure> {
        let url = api_url(&self.base, path);
        let signature = sign(&self.secret, &body);
        self.http
            .run(&self.system, || async {
                let mut request = self
                    .http
                    .request(method.clone(), url.clone())
                    .header(HUB_SIGNATURE_HEADER, &signature)
                    .body(body.clone());
                if !body.is_empty() {
                    request = request.header(reqwest::header::CONTENT_TYPE, "application/json");
                }
                if let Some(callback) = callback {
                    request = request.header(CALLBACK_URL_HEADER, callback.as_str());
                }
                match self.http.send(&self.system, request).await? {
                    Answer::Success(answer) => Ok(answer),
                    Answer::Refused(refusal) => Err(self.refused(refusal, subject)),
                }
            })
            .await
    }

    /// The failure a non-success answer means.
    fn refused(&self, refusal: Refusal, subject: Subject) -> Failure {
        match (refusal.status.as_u16(), subject) {
            (401, _) => Failure::permanent(format!(
                "{} refused the hub's signature (HTTP 401): the hub and the back-office have \
                 different secrets for this authority, a configuration error",
                self.system
            )),
            (404, Subject::Application(_)) => Failure::permanent(UNKNOWN_APPLICATION),
            (404, Subject::Complaint(_)) => Failure::permanent(UNKNOWN_COMPLAINT),
            _ => refusal.failure(&self.system),
        }
    }

    fn log<T: fmt::Debug>(&self, what: &str, subject: Subject, result: &Result<T, Failure>) {
        let (application_id, complaint_id) = match subject {
            Subject::Application(id) => (Some(id), None),
            Subject::Complaint(id) => (None, Some(id)),
        };
        match result {
            Ok(answer) => tracing::info!(
                system = %self.system,
                application_id = ?application_id,
                complaint_id = ?complaint_id,
                answer = ?answer,
                "{what}"
            ),
            Err(f) => tracing::warn!(
                system = %self.system,
                application_id = ?application_id,
                complaint_id = ?complaint_id,
                kind = ?f.kind,
                reason = %f.reason,
                "back-office call failed ({what})"
            ),
        }
    }
}

/// The JSON of a contract body.
fn encode(body: &impl serde::Serialize) -> Result<Vec<u8>, Failure> {
    serde_json::to_vec(body).map_err(|_| Failure::invalid_input("the body does not serialise"))
}

/// The back-office posts to the callback URL: it must be one it can post to.
fn check_callback(callback: &Url) -> Result<(), Failure> {
    if matches!(callback.scheme(), "http" | "https") {
        Ok(())
    } else {
        Err(Failure::invalid_input(
            "the back-office callback URL must be an http(s) URL",
        ))
    }
}

/// The value of a signature header for `body`: `sha256=<hex HMAC-SHA256(secret, body)>`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    signature::sign(secret, body)
}

/// The value of [`AUTHORITY_SIGNATURE_HEADER`] for a callback: `method` (`POST`), `path` (the
/// percent-encoded path of the URL posted to, no query), `timestamp` (the value of
/// [`AUTHORITY_TIMESTAMP_HEADER`]) and the exact `body`.
pub fn sign_callback(
    secret: &[u8],
    method: &str,
    path: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    signature::sign_request(secret, method, path, &timestamp.to_string(), body)
}

/// The path a back-office posts an answer of `message_type` to, under the `callback` URL the
/// hub gave it: `{callback path}/{message_type}`, one `/` between them, percent-encoded as in
/// the URL. The hub checks a callback's signature against this path (made from its own
/// callback URL, so a proxy that rewrites the path in front of the hub changes nothing).
pub fn callback_path(callback: &Url, message_type: &str) -> String {
    let mut url = callback.clone();
    url.set_path(&format!(
        "{}/{message_type}",
        callback.path().trim_end_matches('/')
    ));
    url.path().to_owned()
}

/// A callback as the hub received it, for [`verify_callback`].
#[derive(Debug, Clone, Copy)]
pub struct ReceivedCallback<'a> {
    /// The authority the path names: only for the refusal's reason.
    pub authority: &'a str,
    /// The request's method.
    pub method: &'a str,
    /// The path the back-office posted to ([`callback_path`]).
    pub path: &'a str,
    /// The value of [`AUTHORITY_TIMESTAMP_HEADER`], if any.
    pub timestamp: Option<&'a str>,
    /// The value of [`AUTHORITY_SIGNATURE_HEADER`], if any.
    pub signature: Option<&'a str>,
    /// The exact body bytes received.
    pub body: &'a [u8],
}

/// Verifies a callback posted by a back-office: its signature over the method, path, timestamp
/// and body (in constant time), then that its timestamp is within `window` of `now`, either
/// way. Parse the body only after this succeeds.
///
/// Errors, all invalid input unless said otherwise: a missing timestamp, or one that is not
/// whole seconds, names the header; a missing, malformed or wrong signature has the reason
/// [`BAD_SIGNATURE`] and nothing more; a well-signed callback whose timestamp is outside the
/// window names the authority and how far off it is — never the body; an empty `secret` is a
/// permanent failure — a configuration mistake that would accept any signature made with it.
pub fn verify_callback(
    secret: &[u8],
    callback: &ReceivedCallback<'_>,
    now: DateTime<Utc>,
    window: Duration,
) -> Result<(), Failure> {
    let authority = callback.authority;
    let raw = callback.timestamp.map(str::trim).unwrap_or_default();
    let sent: i64 = raw.parse().map_err(|_| {
        Failure::invalid_input(format!(
            "a callback of {authority} refused: {AUTHORITY_TIMESTAMP_HEADER} is missing or not \
             whole seconds since 1970-01-01 UTC"
        ))
    })?;
    // The signature first: only a callback the authority really signed learns of the window.
    signature::verify_request(
        secret,
        callback.method,
        callback.path,
        raw,
        callback.body,
        callback.signature,
        "back-office",
    )?;
    let off = now.timestamp().abs_diff(sent);
    if off > window.as_secs() {
        return Err(Failure::invalid_input(format!(
            "a callback of {authority} refused: its timestamp is {off} s from the hub's clock, \
             outside the window of {} s (a replay, or a clock to set right)",
            window.as_secs()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FailureKind;
    use chrono::NaiveDate;
    use serde_json::{Value, json};
    use wiremock::matchers::{body_json, header, method, path};
    use wiremock::{Mock, MockServer, Request, ResponseTemplate};

    const SECRET: &[u8] = b"backoffice-test-secret";
    const SYSTEM: &str = "back-office of tax-ministry";
    const APPLICANT: &str = "3270287A012PB2";

    fn quick() -> QuickRetry {
        QuickRetry {
            attempts: 3,
            min_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            max_retry_after: Duration::from_secs(1),
        }
    }

    fn base(server: &MockServer) -> Url {
        Url::parse(&format!("{}/tax-ministry/", server.uri())).expect("a URL")
    }

    fn client_with(server: &MockServer, timeout: Duration) -> BackOfficeClient {
        BackOfficeClient::new(SYSTEM, base(server), SECRET.to_vec(), timeout)
            .expect("a client")
            .with_retry(quick())
    }

    fn client(server: &MockServer) -> BackOfficeClient {
        client_with(server, Duration::from_millis(500))
    }

    fn callback() -> Url {
        Url::parse("http://127.0.0.1:8090/callbacks/authority/tax-ministry").expect("a URL")
    }

    fn application() -> AuthorityApplication {
        let form = json!({"address": "Minsk, Nezavisimosti 1", "simulate_refusal": false});
        AuthorityApplication {
            application_id: Uuid::new_v4(),
            number: "A-2026-000001".to_owned(),
            procedure_code: "1.1.5".to_owned(),
            applicant: APPLICANT.to_owned(),
            form: form.as_object().cloned().unwrap_or_default(),
            attachments: vec!["att-1".to_owned()],
            delivery: Default::default(),
            paid_kopecks: 2750,
            decision_due: NaiveDate::from_ymd_opt(2026, 12, 10).expect("a date"),
        }
    }

    fn complaint() -> AuthorityComplaint {
        AuthorityComplaint {
            complaint_id: Uuid::new_v4(),
            application_id: Uuid::new_v4(),
            application_number: "A-2026-000001".to_owned(),
            text: "I disagree with the decision.".to_owned(),
            kind: Default::default(),
            subordinate: None,
        }
    }

    /// Matches a request whose `X-Hub-Signature` signs its exact body bytes with `SECRET`.
    struct SignedWithTheSecret;

    impl wiremock::Match for SignedWithTheSecret {
        fn matches(&self, request: &Request) -> bool {
            let header = request
                .headers
                .get(HUB_SIGNATURE_HEADER)
                .and_then(|v| v.to_str().ok());
            signature::verify(SECRET, &request.body, header, "test").is_ok()
        }
    }

    fn answer(status: u16, body: Value) -> ResponseTemplate {
        ResponseTemplate::new(status).set_body_json(body)
    }

    fn refusal(status: u16, code: &str) -> ResponseTemplate {
        // The message echoes the request, as real systems do: it must never reach a reason.
        answer(
            status,
            json!({"error": code, "message": format!("applicant {APPLICANT}: refused")}),
        )
    }

    async fn on(server: &MockServer, verb: &str, template: ResponseTemplate) {
        Mock::given(method(verb))
            .respond_with(template)
            .mount(server)
            .await;
    }

    fn assert_no_personal_data(failure: &Failure) {
        assert!(
            !failure.reason.contains(APPLICANT) && !failure.reason.contains("Minsk"),
            "personal data leaked: {}",
            failure.reason
        );
    }

    #[tokio::test]
    async fn submit_puts_the_signed_application_with_the_callback_url() {
        let server = MockServer::start().await;
        let application = application();
        Mock::given(method("PUT"))
            .and(path(format!(
                "/tax-ministry/applications/{}",
                application.application_id
            )))
            .and(SignedWithTheSecret)
            .and(header(CALLBACK_URL_HEADER, callback().as_str()))
            .and(header("content-type", "application/json"))
            .and(body_json(&application))
            .respond_with(answer(200, json!({"registration_number": "TAX-000001"})))
            .expect(1)
            .mount(&server)
            .await;
        let number = client(&server)
            .submit_application(&application, &callback())
            .await
            .expect("registered");
        assert_eq!(number, "TAX-000001");
    }

    #[tokio::test]
    async fn a_repeated_submit_sends_the_same_bytes_and_gets_the_same_number() {
        let server = MockServer::start().await;
        Mock::given(method("PUT"))
            .and(SignedWithTheSecret)
            .respond_with(answer(200, json!({"registration_number": "TAX-000001"})))
            .expect(2)
            .mount(&server)
            .await;
        let client = client(&server);
        let application = application();
        let first = client
            .submit_application(&application, &callback())
            .await
            .expect("registered");
        let again = client
            .submit_application(&application, &callback())
            .await
            .expect("registered again");
        assert_eq!(first, again);
        let calls = server.received_requests().await.unwrap_or_default();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].body, calls[1].body);
        assert_eq!(
            calls[0].headers.get(HUB_SIGNATURE_HEADER),
            calls[1].headers.get(HUB_SIGNATURE_HEADER)
        );
    }

    #[tokio::test]
    async fn submit_complaint_puts_the_signed_complaint() {
        let server = MockServer::start().await;
        let complaint = complaint();
        Mock::given(method("PUT"))
            .and(path(format!(
                "/tax-ministry/complaints/{}",
                complaint.complaint_id
            )))
            .and(SignedWithTheSecret)
            .and(header(CALLBACK_URL_HEADER, callback().as_str()))
            .and(body_json(&complaint))
            .respond_with(answer(202, json!({})))
            .expect(1)
            .mount(&server)
            .await;
        client(&server)
            .submit_complaint(&complaint, &callback())
            .await
            .expect("received");
    }

    #[tokio::test]
    async fn withdrawals_post_a_signed_empty_body_and_read_accepted() {
        let server = MockServer::start().await;
        let (application_id, complaint_id) = (Uuid::new_v4(), Uuid::new_v4());
        Mock::given(method("POST"))
            .and(path(format!(
                "/tax-ministry/applications/{application_id}/withdrawal"
            )))
            .and(header(HUB_SIGNATURE_HEADER, sign(SECRET, b"").as_str()))
            .respond_with(answer(200, json!({"accepted": true})))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path(format!(
                "/tax-ministry/complaints/{complaint_id}/withdrawal"
            )))
            .and(SignedWithTheSecret)
            .respond_with(answer(200, json!({"accepted": false})))
            .expect(1)
            .mount(&server)
            .await;
        let client = client(&server);
        assert!(
            client
                .withdraw_application(application_id)
                .await
                .expect("answered")
        );
        assert!(
            !client
                .withdraw_complaint(complaint_id)
                .await
                .expect("answered")
        );
        for call in server.received_requests().await.unwrap_or_default() {
            assert!(call.body.is_empty());
            assert!(!call.headers.contains_key(CALLBACK_URL_HEADER));
        }
    }

    #[tokio::test]
    async fn a_busy_or_down_back_office_is_transient_after_the_quick_retries() {
        for (status, code) in [(503, "unavailable"), (500, "internal"), (429, "busy")] {
            let server = MockServer::start().await;
            Mock::given(method("PUT"))
                .respond_with(refusal(status, code))
                .expect(3)
                .mount(&server)
                .await;
            let f = client(&server)
                .submit_application(&application(), &callback())
                .await
                .expect_err("down");
            assert_eq!(f.kind, FailureKind::Transient, "HTTP {status}");
            assert!(f.reason.starts_with(SYSTEM), "{}", f.reason);
            assert!(f.reason.ends_with(&format!("({code})")), "{}", f.reason);
            assert_no_personal_data(&f);
        }
    }

    #[tokio::test]
    async fn the_back_office_s_retry_after_reaches_the_failure() {
        for (status, code) in [(429, "busy"), (503, "unavailable")] {
            let server = MockServer::start().await;
            Mock::given(method("PUT"))
                .respond_with(refusal(status, code).insert_header("Retry-After", "120"))
                .expect(1)
                .mount(&server)
                .await;
            let f = client(&server)
                .submit_application(&application(), &callback())
                .await
                .expect_err("busy");
            assert_eq!(f.kind, FailureKind::Transient, "HTTP {status}");
            assert_eq!(
                f.retry_after,
                Some(Duration::from_secs(120)),
                "HTTP {status}"
            );
        }
    }

    #[tokio::test]
    async fn a_503_is_retried_with_the_same_signed_body() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(refusal(503, "unavailable"))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        on(&server, "POST", answer(200, json!({"accepted": true}))).await;
        let accepted = client(&server)
            .withdraw_application(Uuid::new_v4())
            .await
            .expect("the retry is answered");
        assert!(accepted);
        let calls = server.received_requests().await.unwrap_or_default();
        assert_eq!(calls.len(), 2);
        assert_eq!(
            calls[0].headers.get(HUB_SIGNATURE_HEADER),
            calls[1].headers.get(HUB_SIGNATURE_HEADER)
        );
    }

    #[tokio::test]
    async fn a_slow_back_office_times_out_as_transient() {
        let server = MockServer::start().await;
        on(
            &server,
            "PUT",
            answer(202, json!({})).set_delay(Duration::from_secs(5)),
        )
        .await;
        let started = std::time::Instant::now();
        let f = client_with(&server, Duration::from_millis(150))
            .submit_complaint(&complaint(), &callback())
            .await
            .expect_err("too slow");
        assert_eq!(f.kind, FailureKind::Transient);
        assert!(
            f.reason.starts_with(&format!("{SYSTEM} timed out")),
            "{}",
            f.reason
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "three bounded attempts"
        );
    }

    #[tokio::test]
    async fn an_unreachable_back_office_is_transient() {
        // Bind and drop a listener so the port is closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let base = Url::parse(&format!("http://127.0.0.1:{port}/tax-ministry/")).expect("a URL");
        let f = BackOfficeClient::new(SYSTEM, base, SECRET.to_vec(), Duration::from_millis(500))
            .expect("a client")
            .with_retry(QuickRetry::NONE)
            .withdraw_application(Uuid::new_v4())
            .await
            .expect_err("nothing listens there");
        assert_eq!(f.kind, FailureKind::Transient);
        assert!(
            f.reason
                .starts_with(&format!("{SYSTEM} could not be reached")),
            "{}",
            f.reason
        );
    }

    #[tokio::test]
    async fn a_refused_signature_is_a_permanent_configuration_failure() {
        let server = MockServer::start().await;
        on(&server, "PUT", refusal(401, "bad_signature")).await;
        let f = client(&server)
            .submit_application(&application(), &callback())
            .await
            .expect_err("refused");
        assert_eq!(f.kind, FailureKind::Permanent);
        assert!(f.reason.starts_with(SYSTEM), "{}", f.reason);
        assert!(f.reason.contains("different secrets"), "{}", f.reason);
        let calls = server.received_requests().await.unwrap_or_default();
        assert_eq!(calls.len(), 1, "a permanent failure is not retried");
    }

    #[tokio::test]
    async fn an_invalid_request_is_permanent_naming_the_code() {
        let server = MockServer::start().await;
        on(&server, "PUT", refusal(400, "invalid_request")).await;
        let f = client(&server)
            .submit_application(&application(), &callback())
            .await
            .expect_err("refused");
        assert_eq!(
            f,
            Failure::permanent(format!(
                "{SYSTEM} answered HTTP 400 Bad Request (invalid_request)"
            ))
        );
        assert_no_personal_data(&f);
        let calls = server.received_requests().await.unwrap_or_default();
        assert_eq!(calls.len(), 1, "a permanent failure is not retried");
    }

    #[tokio::test]
    async fn withdrawing_what_the_back_office_does_not_know_is_permanent() {
        let server = MockServer::start().await;
        on(&server, "POST", refusal(404, "not_found")).await;
        let client = client(&server);
        let f = client
            .withdraw_application(Uuid::new_v4())
            .await
            .expect_err("unknown");
        assert_eq!(f, Failure::permanent(UNKNOWN_APPLICATION));
        let f = client
            .withdraw_complaint(Uuid::new_v4())
            .await
            .expect_err("unknown");
        assert_eq!(f, Failure::permanent(UNKNOWN_COMPLAINT));
    }

    #[tokio::test]
    async fn answers_outside_the_contract_are_permanent() {
        let pages = || ResponseTemplate::new(200).set_body_string("<html>It works!</html>");
        for template in [
            answer(200, json!({})),
            answer(200, json!({"registration_number": " "})),
            answer(200, json!({"registration_number": 42})),
            pages(),
        ] {
            let server = MockServer::start().await;
            on(&server, "PUT", template).await;
            let f = client(&server)
                .submit_application(&application(), &callback())
                .await
                .expect_err("a contract violation");
            assert_eq!(f.kind, FailureKind::Permanent);
            assert!(
                f.reason
                    .starts_with(&format!("contract violation: {SYSTEM}")),
                "{}",
                f.reason
            );
        }
        for template in [answer(200, json!({"accepted": "yes"})), pages()] {
            let server = MockServer::start().await;
            on(&server, "POST", template).await;
            let f = client(&server)
                .withdraw_application(Uuid::new_v4())
                .await
                .expect_err("a contract violation");
            assert!(f.reason.starts_with("contract violation"), "{}", f.reason);
        }
        let server = MockServer::start().await;
        on(&server, "PUT", pages()).await;
        let f = client(&server)
            .submit_complaint(&complaint(), &callback())
            .await
            .expect_err("a contract violation");
        assert!(f.reason.starts_with("contract violation"), "{}", f.reason);
    }

    #[tokio::test]
    async fn a_callback_url_that_is_not_http_is_refused_without_a_call() {
        let server = MockServer::start().await;
        Mock::given(method("PUT"))
            .respond_with(answer(202, json!({})))
            .expect(0)
            .mount(&server)
            .await;
        let ftp = Url::parse("ftp://example.org/callbacks").expect("a URL");
        let f = client(&server)
            .submit_application(&application(), &ftp)
            .await
            .expect_err("invalid");
        assert_eq!(f.kind, FailureKind::InvalidInput);
        let f = client(&server)
            .submit_complaint(&complaint(), &ftp)
            .await
            .expect_err("invalid");
        assert_eq!(f.kind, FailureKind::InvalidInput);
    }

    const PATH: &str = "/callbacks/authority/tax-ministry/authority.decided.v1";
    const BODY: &[u8] = br#"{"application_id":"5b0c7a52-1111-4111-8111-111111111111"}"#;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).expect("a time")
    }

    /// Checks a callback to `path`, sent at `sent` with `signature`, at the hub's `now`.
    fn check(path: &str, sent: &str, signature: Option<&str>, now: i64) -> Result<(), Failure> {
        let callback = ReceivedCallback {
            authority: "tax-ministry",
            method: "POST",
            path,
            timestamp: Some(sent),
            signature,
            body: BODY,
        };
        verify_callback(SECRET, &callback, at(now), DEFAULT_CALLBACK_WINDOW)
    }

    #[test]
    fn a_callback_signed_for_its_path_and_time_is_accepted_within_the_window() {
        let sent = 1_800_000_000;
        let good = sign_callback(SECRET, "POST", PATH, sent, BODY);
        for now in [sent, sent + 300, sent - 300] {
            assert_eq!(
                check(PATH, &sent.to_string(), Some(&good), now),
                Ok(()),
                "{now}"
            );
        }
    }

    #[test]
    fn a_signed_body_moved_to_another_authority_or_answer_type_is_refused() {
        let sent = 1_800_000_000;
        let good = sign_callback(SECRET, "POST", PATH, sent, BODY);
        for moved in [
            "/callbacks/authority/minsk-city-executive-committee/authority.decided.v1",
            "/callbacks/authority/tax-ministry/authority.info_requested.v1",
            "/callbacks/authority/tax-ministry/authority.complaint_decided.v1",
        ] {
            assert_eq!(
                check(moved, &sent.to_string(), Some(&good), sent),
                Err(Failure::invalid_input(BAD_SIGNATURE)),
                "{moved}"
            );
        }
        // Nor is another method, another time in the header, or the body-only signature.
        let put = sign_callback(SECRET, "PUT", PATH, sent, BODY);
        let body_only = sign(SECRET, BODY);
        for signature in [put.as_str(), body_only.as_str()] {
            assert_eq!(
                check(PATH, &sent.to_string(), Some(signature), sent),
                Err(Failure::invalid_input(BAD_SIGNATURE))
            );
        }
        assert_eq!(
            check(PATH, &(sent + 1).to_string(), Some(&good), sent),
            Err(Failure::invalid_input(BAD_SIGNATURE))
        );
    }

    #[test]
    fn a_well_signed_callback_outside_the_window_is_refused_naming_the_authority() {
        let sent = 1_800_000_000;
        let good = sign_callback(SECRET, "POST", PATH, sent, BODY);
        for now in [sent + 301, sent - 301, sent + 86_400] {
            let f = check(PATH, &sent.to_string(), Some(&good), now).expect_err("refused");
            assert_eq!(f.kind, FailureKind::InvalidInput);
            assert!(f.reason.contains("tax-ministry"), "{}", f.reason);
            assert!(f.reason.contains("window of 300 s"), "{}", f.reason);
            assert!(!f.reason.contains("5b0c7a52"), "no body in {}", f.reason);
        }
        // The window is the caller's.
        let callback = ReceivedCallback {
            authority: "tax-ministry",
            method: "POST",
            path: PATH,
            timestamp: Some("1800000000"),
            signature: Some(&good),
            body: BODY,
        };
        assert_eq!(
            verify_callback(SECRET, &callback, at(sent + 500), Duration::from_secs(600)),
            Ok(())
        );
    }

    #[test]
    fn a_callback_without_a_timestamp_or_a_good_signature_is_refused() {
        let sent = 1_800_000_000;
        let good = sign_callback(SECRET, "POST", PATH, sent, BODY);
        for raw in ["", "soon", "1800000000.5", "2027-01-15T10:00:00Z"] {
            let f = check(PATH, raw, Some(&good), sent).expect_err("refused");
            assert!(
                f.reason.contains(AUTHORITY_TIMESTAMP_HEADER),
                "{}",
                f.reason
            );
            assert!(f.reason.contains("tax-ministry"), "{}", f.reason);
        }
        let wrong_secret = sign_callback(b"another-secret", "POST", PATH, sent, BODY);
        let upper_prefix = good.replacen("sha256=", "SHA256=", 1);
        let bare_hex = good.trim_start_matches("sha256=").to_owned();
        for header in [
            Some(wrong_secret.as_str()),
            None,
            Some(upper_prefix.as_str()),
            Some(bare_hex.as_str()),
            Some("sha256=not-hex"),
            Some("sha256="),
        ] {
            assert_eq!(
                check(PATH, &sent.to_string(), header, sent),
                Err(Failure::invalid_input(BAD_SIGNATURE)),
                "{header:?}"
            );
        }
        let callback = ReceivedCallback {
            authority: "tax-ministry",
            method: "POST",
            path: PATH,
            timestamp: Some("1800000000"),
            signature: Some(&good),
            body: BODY,
        };
        let f = verify_callback(b"", &callback, at(sent), DEFAULT_CALLBACK_WINDOW)
            .expect_err("no secret");
        assert_eq!(f.kind, FailureKind::Permanent);
    }

    #[test]
    fn the_callback_path_is_the_callback_url_s_path_and_the_type_with_one_slash() {
        for base in [
            "http://127.0.0.1:8090/callbacks/authority/tax-ministry",
            "http://127.0.0.1:8090/callbacks/authority/tax-ministry/",
        ] {
            let url = Url::parse(base).expect("a URL");
            assert_eq!(callback_path(&url, "authority.decided.v1"), PATH);
        }
        let behind_a_proxy =
            Url::parse("https://gw.example/hub/callbacks/authority/fszn?x=1").expect("a URL");
        assert_eq!(
            callback_path(&behind_a_proxy, "authority.decided.v1"),
            "/hub/callbacks/authority/fszn/authority.decided.v1"
        );
    }

    #[test]
    fn debug_leaves_the_secret_out() {
        let client = BackOfficeClient::new(
            SYSTEM,
            Url::parse("http://127.0.0.1:8131/tax-ministry/").expect("a URL"),
            SECRET.to_vec(),
            Duration::from_secs(1),
        )
        .expect("a client");
        let printed = format!("{client:?}");
        assert!(printed.contains("<redacted>"), "{printed}");
        assert!(!printed.contains("backoffice-test-secret"), "{printed}");
        assert!(!printed.contains("98, 97, 99"), "{printed}");
    }
}
