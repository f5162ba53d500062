//! The MVD population registry: reconciling a person's stated data and identity document with
//! what the registry holds.
//!
//! Issuing a unique identifier needs the registry's word that the applicant is who they say, so
//! the issuance saga asks through this client. The registry's verdicts (match, mismatch, invalid
//! document, unknown person) are answers, not failures: they come back as a
//! [`ReconcileOutcome`] for the saga to decide on. Failures are what stops us getting a verdict,
//! classified once ([`crate::failure`]): a busy or unreachable registry is transient (a few quick
//! retries here, then the hub's delayed-retry tiers), a refused request or an answer outside the
//! published contract is permanent.
//!
//! The request is personal data through and through, so its `Debug` is masked and failure
//! reasons and log lines never carry the identification number, names or document number.

use std::fmt;
use std::time::Duration;

use chrono::NaiveDate;
use contracts::person::{IdNumber, mask_name};
use serde::{Deserialize, Serialize};
use url::Url;
use uuid::Uuid;

use crate::api_url;
use crate::client::{ClientError, HttpClient};
use crate::failure::{Failure, QuickRetry, contract_violation, quoted_code, unexpected_json};

/// How the registry is named in failure reasons and logs.
const SYSTEM: &str = "MVD";

/// A client of the MVD registry's reconciliation API (`POST /api/v1/reconciliations`).
#[derive(Clone, Debug)]
pub struct MvdClient {
    http: HttpClient,
    endpoint: Url,
}

/// A person's stated data and identity document, as the registry's API takes them.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct ReconcileRequest {
    /// The identification number, 14 characters.
    pub identification_number: String,
    /// Surname as stated.
    pub surname: String,
    /// Given name as stated.
    pub given_name: String,
    /// Patronymic as stated; `None` for people who have none (most foreigners).
    pub patronymic: Option<String>,
    /// Date of birth.
    pub birth_date: NaiveDate,
    /// The identity document presented.
    pub document: DocumentRef,
}

/// An identity document as presented.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct DocumentRef {
    /// What kind of document.
    pub kind: DocumentKind,
    /// Its number (series and number, as printed).
    pub number: String,
    /// Date of issue.
    pub issued_on: NaiveDate,
    /// Date of expiry.
    pub expires_on: NaiveDate,
}

/// Kinds of identity document the registry knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentKind {
    /// A passport of a citizen of Belarus.
    Passport,
    /// An identity card (ID card).
    IdCard,
    /// A residence permit, for foreign citizens and stateless persons.
    ResidencePermit,
}

/// The registry's verdict on one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciliation {
    /// The registry's id of this check, for the audit trail.
    pub reconciliation_id: String,
    /// The verdict.
    pub outcome: ReconcileOutcome,
}

/// What the registry said about the person and the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReconcileOutcome {
    /// Everything matches, and the document is valid.
    Match,
    /// The person is known, but these request fields differ from the registry (`surname`,
    /// `given_name`, `patronymic`, `birth_date`, `document.number`, `document.kind`,
    /// `document.issued_on`, `document.expires_on`).
    Mismatch {
        /// The differing fields, as the registry named them; never empty.
        fields: Vec<String>,
    },
    /// The person and the document match, but the document is no longer valid.
    DocumentInvalid {
        /// Why it is not valid.
        status: DocumentStatus,
    },
    /// The registry does not know the identification number.
    PersonUnknown,
}

/// Why a document is not valid. The published contract has exactly these two; anything else
/// from the registry is a contract violation (a permanent failure), so a new status is noticed
/// rather than mistaken for one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentStatus {
    /// Its expiry date has passed.
    Expired,
    /// It was reported lost.
    Lost,
}

impl DocumentStatus {
    /// The wire name: `expired`, `lost`.
    pub fn as_str(self) -> &'static str {
        match self {
            DocumentStatus::Expired => "expired",
            DocumentStatus::Lost => "lost",
        }
    }
}

impl fmt::Display for DocumentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl MvdClient {
    /// A client of the registry at `base_url` (`http://127.0.0.1:8101` for the simulator).
    /// Every HTTP attempt is bounded by `timeout`; transient failures get
    /// [`QuickRetry::default`].
    ///
    /// Errors: the HTTP client cannot be built (a start-up error naming MVD).
    pub fn new(base_url: Url, timeout: Duration) -> Result<Self, ClientError> {
        Ok(MvdClient {
            http: HttpClient::new(SYSTEM, timeout)?,
            endpoint: api_url(&base_url, "api/v1/reconciliations"),
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
    /// Errors: rustls refuses the settings (a start-up error naming MVD).
    pub fn with_tls(mut self, tls: &crate::tls::ClientTls) -> Result<Self, ClientError> {
        self.http = self.http.retls(SYSTEM, tls)?;
        Ok(self)
    }

    /// The same client, sending `traceparent` (W3C trace context) with each of its calls, so
    /// the system's own logs join the trace of the message that caused them. `None`, or a value
    /// that cannot be a header, sends none.
    pub fn with_traceparent(mut self, traceparent: Option<&str>) -> Self {
        self.http = self.http.with_traceparent(traceparent);
        self
    }

    /// Asks the registry to reconcile `request`. The same `idempotency_key` (the command's
    /// message id) always gets the same verdict, so a redelivered command is checked once.
    ///
    /// Errors: a malformed identification number or an empty name is [`InvalidInput`]
    /// (nothing is sent); a refused request (400, 404, 409, 422) or an answer outside the
    /// contract is [`Permanent`]; a timeout, a lost connection, 429 or 5xx is [`Transient`]
    /// after the quick retries.
    ///
    /// [`InvalidInput`]: crate::FailureKind::InvalidInput
    /// [`Permanent`]: crate::FailureKind::Permanent
    /// [`Transient`]: crate::FailureKind::Transient
    pub async fn reconcile(
        &self,
        idempotency_key: Uuid,
        request: &ReconcileRequest,
    ) -> Result<Reconciliation, Failure> {
        validate(request)?;
        tracing::debug!(
            system = SYSTEM,
            person = %masked_id(&request.identification_number),
            %idempotency_key,
            "reconciling"
        );
        let result = self
            .http
            .run(SYSTEM, || self.attempt(idempotency_key, request))
            .await;
        match &result {
            Ok(r) => tracing::info!(
                system = SYSTEM,
                person = %masked_id(&request.identification_number),
                reconciliation_id = %r.reconciliation_id,
                outcome = r.outcome.name(),
                "reconciled"
            ),
            Err(f) => tracing::warn!(
                system = SYSTEM,
                person = %masked_id(&request.identification_number),
                kind = ?f.kind,
                reason = %f.reason,
                "reconciliation failed"
            ),
        }
        result
    }

    async fn attempt(
        &self,
        idempotency_key: Uuid,
        request: &ReconcileRequest,
    ) -> Result<Reconciliation, Failure> {
        let request = self
            .http
            .post(self.endpoint.clone())
            .header("Idempotency-Key", idempotency_key.to_string())
            .json(request);
        let body = self.http.send(SYSTEM, request).await?.body(SYSTEM)?;
        parse_answer(&body)
    }
}

impl ReconcileOutcome {
    /// The wire name of the verdict: `match`, `mismatch`, `document_invalid`, `person_unknown`.
    pub fn name(&self) -> &'static str {
        match self {
            ReconcileOutcome::Match => "match",
            ReconcileOutcome::Mismatch { .. } => "mismatch",
            ReconcileOutcome::DocumentInvalid { .. } => "document_invalid",
            ReconcileOutcome::PersonUnknown => "person_unknown",
        }
    }
}

/// Refuses what the registry would refuse anyway, without a round trip and with a clearer
/// reason. Reasons name the field, never its value.
fn validate(request: &ReconcileRequest) -> Result<(), Failure> {
    IdNumber::parse(&request.identification_number)
        .map_err(|e| Failure::invalid_input(format!("MVD reconciliation request: {e}")))?;
    for (field, value) in [
        ("surname", &request.surname),
        ("given_name", &request.given_name),
        ("document.number", &request.document.number),
    ] {
        if value.trim().is_empty() {
            return Err(Failure::invalid_input(format!(
                "MVD reconciliation request: {field} must not be empty"
            )));
        }
    }
    Ok(())
}

/// The answer as the wire has it; checked into a [`Reconciliation`] by [`parse_answer`].
#[derive(Deserialize)]
struct WireAnswer {
    reconciliation_id: String,
    result: String,
    #[serde(default)]
    fields: Option<Vec<String>>,
    #[serde(default)]
    document_status: Option<String>,
}

/// Parses a `200` body; anything outside the published contract is a permanent failure.
fn parse_answer(body: &[u8]) -> Result<Reconciliation, Failure> {
    let wire: WireAnswer = serde_json::from_slice(body).map_err(|e| unexpected_json(SYSTEM, &e))?;
    if wire.reconciliation_id.trim().is_empty() {
        return Err(contract_violation(
            SYSTEM,
            "answered an empty reconciliation_id",
        ));
    }
    let outcome = match wire.result.as_str() {
        "match" => ReconcileOutcome::Match,
        "mismatch" => match wire.fields {
            Some(fields) if !fields.is_empty() => ReconcileOutcome::Mismatch { fields },
            _ => {
                return Err(contract_violation(
                    SYSTEM,
                    "answered mismatch without the fields that differ",
                ));
            }
        },
        "document_invalid" => {
            let status = match wire.document_status.as_deref() {
                Some("expired") => DocumentStatus::Expired,
                Some("lost") => DocumentStatus::Lost,
                Some(other) => {
                    return Err(contract_violation(
                        SYSTEM,
                        format!(
                            "answered an unknown document_status {} (expected expired or lost)",
                            quoted_code(other)
                        ),
                    ));
                }
                None => {
                    return Err(contract_violation(
                        SYSTEM,
                        "answered document_invalid without a document_status",
                    ));
                }
            };
            ReconcileOutcome::DocumentInvalid { status }
        }
        "person_unknown" => ReconcileOutcome::PersonUnknown,
        other => {
            return Err(contract_violation(
                SYSTEM,
                format!(
                    "answered an unknown result {} (expected match, mismatch, document_invalid \
                     or person_unknown)",
                    quoted_code(other)
                ),
            ));
        }
    };
    Ok(Reconciliation {
        reconciliation_id: wire.reconciliation_id,
        outcome,
    })
}

/// An identification number for logs: the first two and last two characters.
fn masked_id(s: &str) -> String {
    match IdNumber::parse(s) {
        Ok(id) => id.masked(),
        Err(_) => mask_keep_ends(s, 2, 2),
    }
}

/// Every character but the first `head` and last `tail` replaced by `*`; all of them when the
/// value is too short for that.
fn mask_keep_ends(s: &str, head: usize, tail: usize) -> String {
    let n = s.chars().count();
    s.chars()
        .enumerate()
        .map(|(i, c)| {
            if n > head + tail && (i < head || i >= n - tail) {
                c
            } else {
                '*'
            }
        })
        .collect()
}

impl fmt::Debug for ReconcileRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReconcileRequest")
            .field(
                "identification_number",
                &masked_id(&self.identification_number),
            )
            .field("surname", &mask_name(&self.surname))
            .field("given_name", &mask_name(&self.given_name))
            .field("patronymic", &self.patronymic.as_deref().map(mask_name))
            .field("birth_date", &"****-**-**")
            .field("document", &self.document)
            .finish()
    }
}

impl fmt::Debug for DocumentRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DocumentRef")
            .field("kind", &self.kind)
            .field("number", &mask_keep_ends(&self.number, 2, 2))
            .field("issued_on", &self.issued_on)
            .field("expires_on", &self.expires_on)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FailureKind;
    use serde_json::json;
    use wiremock::matchers::{body_json, header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const ID: &str = "3270287A012PB2";

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("a real date")
    }

    fn request() -> ReconcileRequest {
        ReconcileRequest {
            identification_number: ID.to_owned(),
            surname: "Иванова".to_owned(),
            given_name: "Анна".to_owned(),
            patronymic: Some("Сергеевна".to_owned()),
            birth_date: date(1987, 2, 27),
            document: DocumentRef {
                kind: DocumentKind::Passport,
                number: "MP1234567".to_owned(),
                issued_on: date(2015, 3, 1),
                expires_on: date(2025, 3, 1),
            },
        }
    }

    fn quick() -> QuickRetry {
        QuickRetry {
            attempts: 3,
            min_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            max_retry_after: Duration::from_secs(1),
        }
    }

    async fn client(server: &MockServer) -> MvdClient {
        let base = Url::parse(&server.uri()).expect("the mock server's URL");
        MvdClient::new(base, Duration::from_millis(500))
            .expect("a client")
            .with_retry(quick())
    }

    async fn answer(server: &MockServer, template: ResponseTemplate) {
        Mock::given(method("POST"))
            .and(path("/api/v1/reconciliations"))
            .respond_with(template)
            .mount(server)
            .await;
    }

    async fn reconcile_with(template: ResponseTemplate) -> Result<Reconciliation, Failure> {
        let server = MockServer::start().await;
        answer(&server, template).await;
        client(&server)
            .await
            .reconcile(Uuid::new_v4(), &request())
            .await
    }

    fn assert_no_personal_data(failure: &Failure) {
        for secret in [ID, "Иванова", "Анна", "MP1234567", "1987-02-27"] {
            assert!(
                !failure.reason.contains(secret),
                "{secret} leaked: {}",
                failure.reason
            );
        }
    }

    #[tokio::test]
    async fn sends_the_published_body_with_the_idempotency_key() {
        let server = MockServer::start().await;
        let key = Uuid::new_v4();
        Mock::given(method("POST"))
            .and(path("/api/v1/reconciliations"))
            .and(header("Idempotency-Key", key.to_string().as_str()))
            .and(body_json(json!({
                "identification_number": ID,
                "surname": "Иванова", "given_name": "Анна", "patronymic": "Сергеевна",
                "birth_date": "1987-02-27",
                "document": {"kind": "passport", "number": "MP1234567",
                             "issued_on": "2015-03-01", "expires_on": "2025-03-01"}
            })))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"reconciliation_id": "r-1", "result": "match"})),
            )
            .expect(1)
            .mount(&server)
            .await;
        let r = client(&server)
            .await
            .reconcile(key, &request())
            .await
            .expect("a match");
        assert_eq!(
            r,
            Reconciliation {
                reconciliation_id: "r-1".to_owned(),
                outcome: ReconcileOutcome::Match
            }
        );
    }

    #[tokio::test]
    async fn a_missing_patronymic_is_sent_as_null() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/api/v1/reconciliations"))
            .and(wiremock::matchers::body_partial_json(
                json!({"patronymic": null, "document": {"kind": "residence_permit"}}),
            ))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"reconciliation_id": "r-2", "result": "person_unknown"})),
            )
            .expect(1)
            .mount(&server)
            .await;
        let mut req = request();
        req.patronymic = None;
        req.document.kind = DocumentKind::ResidencePermit;
        let r = client(&server)
            .await
            .reconcile(Uuid::new_v4(), &req)
            .await
            .expect("an answer");
        assert_eq!(r.outcome, ReconcileOutcome::PersonUnknown);
    }

    #[tokio::test]
    async fn every_verdict_is_an_outcome() {
        let cases = [
            (
                json!({"reconciliation_id": "r", "result": "mismatch", "fields": ["surname", "birth_date"]}),
                ReconcileOutcome::Mismatch {
                    fields: vec!["surname".to_owned(), "birth_date".to_owned()],
                },
            ),
            (
                json!({"reconciliation_id": "r", "result": "document_invalid", "document_status": "expired"}),
                ReconcileOutcome::DocumentInvalid {
                    status: DocumentStatus::Expired,
                },
            ),
            (
                json!({"reconciliation_id": "r", "result": "document_invalid", "document_status": "lost"}),
                ReconcileOutcome::DocumentInvalid {
                    status: DocumentStatus::Lost,
                },
            ),
            (
                json!({"reconciliation_id": "r", "result": "person_unknown"}),
                ReconcileOutcome::PersonUnknown,
            ),
        ];
        for (body, expected) in cases {
            let r = reconcile_with(ResponseTemplate::new(200).set_body_json(body))
                .await
                .expect("a verdict");
            assert_eq!(r.outcome, expected);
        }
    }

    #[tokio::test]
    async fn answers_outside_the_contract_are_permanent_contract_violations() {
        let cases = [
            (
                json!({"reconciliation_id": "r", "result": "perhaps"}),
                "unknown result \"perhaps\"",
            ),
            (
                json!({"reconciliation_id": "r", "result": "document_invalid", "document_status": "stolen"}),
                "unknown document_status \"stolen\"",
            ),
            (
                json!({"reconciliation_id": "r", "result": "document_invalid"}),
                "without a document_status",
            ),
            (
                json!({"reconciliation_id": "r", "result": "mismatch"}),
                "without the fields",
            ),
            (
                json!({"result": "match"}),
                "missing field `reconciliation_id`",
            ),
            (
                json!({"reconciliation_id": "r", "result": ID}),
                "unknown result (not a code)",
            ),
            (
                json!({"reconciliation_id": "r", "result": "mismatch", "fields": ID}),
                "wrong type",
            ),
        ];
        for (body, expected) in cases {
            let f = reconcile_with(ResponseTemplate::new(200).set_body_json(body.clone()))
                .await
                .expect_err("a contract violation");
            assert_eq!(f.kind, FailureKind::Permanent, "{body}");
            assert!(
                f.reason.starts_with("contract violation: MVD"),
                "{}",
                f.reason
            );
            assert!(f.reason.contains(expected), "{body}: {}", f.reason);
            assert_no_personal_data(&f);
        }
        let f = reconcile_with(ResponseTemplate::new(200).set_body_string("<html>oops"))
            .await
            .expect_err("not JSON");
        assert_eq!(f.kind, FailureKind::Permanent);
        assert!(f.reason.contains("not JSON"), "{}", f.reason);
    }

    #[tokio::test]
    async fn refusals_are_permanent_and_name_the_code_only() {
        for (status, code) in [
            (400, "invalid_request"),
            (404, "not_found"),
            (409, "idempotency_conflict"),
            (422, "unprocessable"),
        ] {
            let server = MockServer::start().await;
            answer(
                &server,
                ResponseTemplate::new(status).set_body_json(
                    json!({"error": code, "message": format!("bad request for {ID} Иванова")}),
                ),
            )
            .await;
            let f = client(&server)
                .await
                .reconcile(Uuid::new_v4(), &request())
                .await
                .expect_err("refused");
            assert_eq!(f.kind, FailureKind::Permanent, "HTTP {status}");
            assert!(f.reason.contains(&format!("HTTP {status}")), "{}", f.reason);
            assert!(f.reason.contains(code), "{}", f.reason);
            assert_no_personal_data(&f);
            let calls = server.received_requests().await.unwrap_or_default();
            assert_eq!(calls.len(), 1, "a permanent failure is not retried");
        }
    }

    #[tokio::test]
    async fn a_503_is_retried_within_the_call() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(503)
                    .set_body_json(json!({"error": "unavailable", "message": "busy"})),
            )
            .up_to_n_times(1)
            .mount(&server)
            .await;
        answer(
            &server,
            ResponseTemplate::new(200)
                .set_body_json(json!({"reconciliation_id": "r", "result": "match"})),
        )
        .await;
        let key = Uuid::new_v4();
        let r = client(&server)
            .await
            .reconcile(key, &request())
            .await
            .expect("the retry succeeds");
        assert_eq!(r.outcome, ReconcileOutcome::Match);
        let calls = server.received_requests().await.unwrap_or_default();
        assert_eq!(calls.len(), 2);
        for call in calls {
            assert_eq!(
                call.headers
                    .get("Idempotency-Key")
                    .and_then(|v| v.to_str().ok()),
                Some(key.to_string().as_str()),
                "every attempt carries the same key"
            );
        }
    }

    #[tokio::test]
    async fn a_traceparent_goes_along_as_a_header_and_a_malformed_one_is_left_out() {
        let server = MockServer::start().await;
        answer(
            &server,
            ResponseTemplate::new(200)
                .set_body_json(json!({"reconciliation_id": "r", "result": "match"})),
        )
        .await;
        let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let traced = client(&server).await.with_traceparent(Some(traceparent));
        traced
            .reconcile(Uuid::new_v4(), &request())
            .await
            .expect("reconciled");
        traced
            .with_traceparent(Some("bad\nvalue"))
            .reconcile(Uuid::new_v4(), &request())
            .await
            .expect("reconciled without the header");
        let calls = server.received_requests().await.unwrap_or_default();
        let sent: Vec<Option<&str>> = calls
            .iter()
            .map(|c| {
                c.headers
                    .get(crate::TRACEPARENT_HEADER)
                    .and_then(|v| v.to_str().ok())
            })
            .collect();
        assert_eq!(sent, [Some(traceparent), None]);
    }

    #[tokio::test]
    async fn a_registry_that_stays_down_is_transient_after_the_quick_retries() {
        let server = MockServer::start().await;
        answer(&server, ResponseTemplate::new(503)).await;
        let f = client(&server)
            .await
            .reconcile(Uuid::new_v4(), &request())
            .await
            .expect_err("down");
        assert_eq!(f.kind, FailureKind::Transient);
        assert_eq!(f.reason, "MVD answered HTTP 503 Service Unavailable");
        let calls = server.received_requests().await.unwrap_or_default();
        assert_eq!(calls.len(), 3, "three attempts in all");
    }

    #[tokio::test]
    async fn a_long_retry_after_is_left_to_the_retry_tiers() {
        let server = MockServer::start().await;
        answer(
            &server,
            ResponseTemplate::new(429).insert_header("Retry-After", "120"),
        )
        .await;
        let f = client(&server)
            .await
            .reconcile(Uuid::new_v4(), &request())
            .await
            .expect_err("busy");
        assert_eq!(f.kind, FailureKind::Transient);
        assert_eq!(
            f.retry_after,
            Some(Duration::from_secs(120)),
            "the Retry-After reaches the retry tiers"
        );
        let calls = server.received_requests().await.unwrap_or_default();
        assert_eq!(calls.len(), 1, "no in-process wait of two minutes");
    }

    #[tokio::test]
    async fn a_503_s_retry_after_reaches_the_failure() {
        let server = MockServer::start().await;
        answer(
            &server,
            ResponseTemplate::new(503).insert_header("Retry-After", "60"),
        )
        .await;
        let f = client(&server)
            .await
            .reconcile(Uuid::new_v4(), &request())
            .await
            .expect_err("down for a minute");
        assert_eq!(f.kind, FailureKind::Transient);
        assert_eq!(f.reason, "MVD answered HTTP 503 Service Unavailable");
        assert_eq!(f.retry_after, Some(Duration::from_secs(60)));
    }

    #[tokio::test]
    async fn a_short_retry_after_is_honoured() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(503).insert_header("Retry-After", "1"))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        answer(
            &server,
            ResponseTemplate::new(200)
                .set_body_json(json!({"reconciliation_id": "r", "result": "match"})),
        )
        .await;
        let started = std::time::Instant::now();
        client(&server)
            .await
            .reconcile(Uuid::new_v4(), &request())
            .await
            .expect("the retry succeeds");
        assert!(started.elapsed() >= Duration::from_secs(1));
    }

    #[tokio::test]
    async fn a_slow_registry_times_out_as_transient() {
        let server = MockServer::start().await;
        answer(
            &server,
            ResponseTemplate::new(200)
                .set_body_json(json!({"reconciliation_id": "r", "result": "match"}))
                .set_delay(Duration::from_secs(5)),
        )
        .await;
        let base = Url::parse(&server.uri()).expect("the mock server's URL");
        let started = std::time::Instant::now();
        let f = MvdClient::new(base, Duration::from_millis(200))
            .expect("a client")
            .with_retry(QuickRetry::NONE)
            .reconcile(Uuid::new_v4(), &request())
            .await
            .expect_err("too slow");
        assert_eq!(f.kind, FailureKind::Transient);
        assert!(f.reason.starts_with("MVD timed out"), "{}", f.reason);
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_no_personal_data(&f);
    }

    #[tokio::test]
    async fn an_unreachable_registry_is_transient() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let base = Url::parse(&format!("http://127.0.0.1:{port}")).expect("a URL");
        let f = MvdClient::new(base, Duration::from_millis(500))
            .expect("a client")
            .with_retry(quick())
            .reconcile(Uuid::new_v4(), &request())
            .await
            .expect_err("nothing listens");
        assert_eq!(f.kind, FailureKind::Transient);
        assert!(
            f.reason.starts_with("MVD could not be reached"),
            "{}",
            f.reason
        );
    }

    #[tokio::test]
    async fn a_malformed_request_is_invalid_input_and_is_not_sent() {
        let server = MockServer::start().await;
        answer(&server, ResponseTemplate::new(200)).await;
        let client = client(&server).await;
        let mut req = request();
        req.identification_number = "3270287А012PB2".to_owned(); // Cyrillic А
        let f = client
            .reconcile(Uuid::new_v4(), &req)
            .await
            .expect_err("malformed");
        assert_eq!(f.kind, FailureKind::InvalidInput);
        assert!(f.reason.contains("Cyrillic"), "{}", f.reason);
        let mut req = request();
        req.surname = "  ".to_owned();
        let f = client
            .reconcile(Uuid::new_v4(), &req)
            .await
            .expect_err("malformed");
        assert_eq!(f.kind, FailureKind::InvalidInput);
        assert!(f.reason.contains("surname"), "{}", f.reason);
        assert!(
            server
                .received_requests()
                .await
                .unwrap_or_default()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn a_base_url_with_a_path_keeps_it() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/mvd/api/v1/reconciliations"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"reconciliation_id": "r", "result": "match"})),
            )
            .expect(1)
            .mount(&server)
            .await;
        let base = Url::parse(&format!("{}/mvd/", server.uri())).expect("a URL");
        MvdClient::new(base, Duration::from_millis(500))
            .expect("a client")
            .reconcile(Uuid::new_v4(), &request())
            .await
            .expect("found under the prefix");
    }

    #[test]
    fn debug_masks_personal_data() {
        let debug = format!("{:?}", request());
        for secret in [ID, "Иванова", "Анна", "Сергеевна", "MP1234567", "1987"]
        {
            assert!(!debug.contains(secret), "{secret} leaked: {debug}");
        }
        assert!(debug.contains("32**********B2"), "{debug}");
        assert!(debug.contains("И******"), "{debug}");
    }
}
