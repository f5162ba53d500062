//! The mobile operators' SMS gateways (A1, MTS, life:)): who serves a number, sending an SMS,
//! and the delivery reports the gateways post back.
//!
//! Each operator runs its own gateway with the same API, so one client holds a base URL per
//! operator. The prefix of a number only says which operator issued it: ported numbers keep
//! their prefix and move, so [`SmsClient::subscriber`] asks the prefix operator first and then
//! the others, and takes the operators' word over the prefix table.
//!
//! An SMS carries a confirmation code or a temporary password, and a phone number is personal
//! data: neither the text nor an unmasked number ever goes into a failure reason (they end up in
//! dead-letter headers) or a log line. Failures are classified once ([`crate::failure`]); a
//! send is retried with the same `Idempotency-Key`, so the gateway sends the SMS once.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use contracts::person::{Msisdn, Operator};
use serde::{Deserialize, Serialize};
use url::Url;
use uuid::Uuid;

use crate::api_url;
use crate::client::{Answer, ClientError, HttpClient};
use crate::failure::{
    Failure, QuickRetry, contract_violation, describe_json_error, quoted_code, unexpected_json,
};
use crate::signature;

/// The reason of the permanent failure when a gateway refuses an SMS because the subscriber is
/// blocked (`422 subscriber_blocked`).
pub const SUBSCRIBER_BLOCKED: &str = "subscriber blocked";

/// The reason of the permanent failure when a gateway refuses an SMS to a number it does not
/// serve (`404 not_our_subscriber`): the number was ported, or nobody serves it. Ask
/// [`SmsClient::subscriber`] which operator to send through.
pub const NOT_OUR_SUBSCRIBER: &str = "not our subscriber";

/// The header a gateway signs its delivery reports with: `sha256=<lower-case hex of
/// HMAC-SHA256(the operator's secret, the exact body bytes)>`.
pub const SIGNATURE_HEADER: &str = "x-sms-signature";

/// The reason of the invalid-input failure for a delivery report whose signature is missing,
/// malformed or wrong. It never says more: the body is not to be trusted, nor echoed.
pub const BAD_SIGNATURE: &str = signature::BAD_SIGNATURE;

/// Where the gateways are, and how to talk to them.
#[derive(Debug, Clone)]
pub struct SmsConfig {
    /// Each operator's gateway base URL (`http://127.0.0.1:8111` for the A1 simulator). An
    /// operator without one cannot be asked or sent through: that is a permanent failure.
    pub operators: HashMap<Operator, Url>,
    /// The sender name shown on the phone (`E-SERVICES`).
    pub sender: String,
    /// The bound on every HTTP attempt.
    pub timeout: Duration,
}

/// A client of the operators' SMS gateways.
#[derive(Debug, Clone)]
pub struct SmsClient {
    http: HttpClient,
    /// The clients of the operators with TLS settings of their own ([`SmsClient::with_tls`]).
    per_operator: HashMap<Operator, HttpClient>,
    config: SmsConfig,
}

/// An operator's answer about a number it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriber {
    /// The number.
    pub msisdn: Msisdn,
    /// The operator that serves it now (for a ported number, not the prefix operator).
    pub operator: Operator,
    /// True when the operator has blocked the subscriber: an SMS would be refused.
    pub blocked: bool,
}

/// A gateway accepted an SMS for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentSms {
    /// The operator that accepted it.
    pub operator: Operator,
    /// The operator's message id; its delivery report names it.
    pub provider_message_id: String,
}

/// A gateway's report that an SMS reached the phone, or never will.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryReport {
    /// The operator's message id, as in [`SentSms::provider_message_id`].
    pub provider_message_id: String,
    /// The recipient.
    pub to: Msisdn,
    /// True when delivered; false when the operator gave up.
    pub delivered: bool,
    /// When the operator says it happened.
    pub at: DateTime<Utc>,
}

impl SmsClient {
    /// A client of the gateways in `config`; transient failures get [`QuickRetry::default`].
    ///
    /// Errors: the HTTP client cannot be built (a start-up error naming the SMS gateways).
    pub fn new(config: SmsConfig) -> Result<Self, ClientError> {
        Ok(SmsClient {
            http: HttpClient::new("the SMS gateways", config.timeout)?,
            per_operator: HashMap::new(),
            config,
        })
    }

    /// The same client with another in-process retry policy.
    pub fn with_retry(mut self, retry: QuickRetry) -> Self {
        self.http = self.http.with_retry(retry);
        for http in self.per_operator.values_mut() {
            *http = http.clone().with_retry(retry);
        }
        self
    }

    /// The same client, `operator`'s gateway verified against `tls`'s CA bundle (instead of the
    /// OS roots) and shown `tls`'s client certificate, if any ([`crate::tls`]); the other
    /// operators keep theirs.
    ///
    /// Errors: rustls refuses the settings (a start-up error naming the operator's gateway).
    pub fn with_tls(
        mut self,
        operator: Operator,
        tls: &crate::tls::ClientTls,
    ) -> Result<Self, ClientError> {
        let http = self.http.clone().retls(&system(operator), tls)?;
        self.per_operator.insert(operator, http);
        Ok(self)
    }

    /// The same client, sending `traceparent` (W3C trace context) with each of its calls, so
    /// the system's own logs join the trace of the message that caused them. `None`, or a value
    /// that cannot be a header, sends none.
    pub fn with_traceparent(mut self, traceparent: Option<&str>) -> Self {
        self.http = self.http.with_traceparent(traceparent);
        for http in self.per_operator.values_mut() {
            *http = http.clone().with_traceparent(traceparent);
        }
        self
    }

    /// The HTTP client of `operator`'s gateway.
    fn http(&self, operator: Operator) -> &HttpClient {
        self.per_operator.get(&operator).unwrap_or(&self.http)
    }

    /// Which operator serves `msisdn`, and whether the subscriber is blocked.
    ///
    /// Asks the prefix operator first; on 404 not_our_subscriber asks the others (ported
    /// numbers): the operator's answer is the truth. The others are asked in the porting order
    /// A1 → MTS → life:) from the prefix operator on. `None` means every operator said the
    /// number is not theirs.
    ///
    /// Errors: when no operator claims the number and one of them could not answer, that
    /// failure (a transient one first, since asking again may settle it); an operator without
    /// a configured gateway, a refusal or an answer outside the contract is permanent.
    pub async fn subscriber(&self, msisdn: &Msisdn) -> Result<Option<Subscriber>, Failure> {
        let first = msisdn.operator_by_prefix();
        let mut failure: Option<Failure> = None;
        for operator in [first, first.next(), first.next().next()] {
            match self.ask(operator, msisdn).await {
                Ok(Some(subscriber)) => {
                    tracing::debug!(
                        phone = %msisdn.masked(),
                        %operator,
                        ported = operator != first,
                        blocked = subscriber.blocked,
                        "subscriber found"
                    );
                    return Ok(Some(subscriber));
                }
                Ok(None) => {}
                Err(f) => {
                    tracing::warn!(
                        phone = %msisdn.masked(),
                        %operator,
                        kind = ?f.kind,
                        reason = %f.reason,
                        "subscriber lookup failed"
                    );
                    failure = match failure {
                        Some(kept) if kept.is_transient() || !f.is_transient() => Some(kept),
                        _ => Some(f),
                    };
                }
            }
        }
        match failure {
            Some(f) => Err(f),
            None => {
                tracing::debug!(phone = %msisdn.masked(), "no operator serves the number");
                Ok(None)
            }
        }
    }

    /// Sends `text` to `to` through `operator`'s gateway. The same `idempotency_key` (the
    /// command's message id) sends the SMS once, however often it is retried. When
    /// `callback_url` is given, the gateway posts a delivery report there (see
    /// [`parse_delivery_report`]).
    ///
    /// Errors: an empty text is invalid input; a blocked subscriber is permanent with the reason
    /// [`SUBSCRIBER_BLOCKED`], a number the operator does not serve permanent with
    /// [`NOT_OUR_SUBSCRIBER`]; other refusals, an unconfigured operator and answers outside the
    /// contract are permanent; timeouts, lost connections, 429 and 5xx are transient after the
    /// quick retries.
    pub async fn send(
        &self,
        idempotency_key: Uuid,
        operator: Operator,
        to: &Msisdn,
        text: &str,
        callback_url: Option<&Url>,
    ) -> Result<SentSms, Failure> {
        if text.trim().is_empty() {
            return Err(Failure::invalid_input("SMS text must not be empty"));
        }
        let system = system(operator);
        let endpoint = api_url(self.base(operator)?, "api/v1/messages");
        let body = WireMessage {
            sender: &self.config.sender,
            to: to.as_str(),
            text,
            callback_url: callback_url.map(Url::as_str),
        };
        let http = self.http(operator);
        let result = http
            .run(&system, || async {
                let request = http
                    .post(endpoint.clone())
                    .header("Idempotency-Key", idempotency_key.to_string())
                    .json(&body);
                let body = match http.send(&system, request).await? {
                    Answer::Success(body) => body,
                    Answer::Refused(refusal) if refusal.is(422, "subscriber_blocked") => {
                        return Err(Failure::permanent(SUBSCRIBER_BLOCKED));
                    }
                    Answer::Refused(refusal) if refusal.is(404, "not_our_subscriber") => {
                        return Err(Failure::permanent(NOT_OUR_SUBSCRIBER));
                    }
                    Answer::Refused(refusal) => return Err(refusal.failure(&system)),
                };
                parse_accepted(&system, operator, &body)
            })
            .await;
        match &result {
            Ok(sent) => tracing::info!(
                phone = %to.masked(),
                %operator,
                provider_message_id = %sent.provider_message_id,
                "SMS accepted"
            ),
            Err(f) => tracing::warn!(
                phone = %to.masked(),
                %operator,
                kind = ?f.kind,
                reason = %f.reason,
                "SMS not sent"
            ),
        }
        result
    }

    /// One operator's answer about a number: `None` for 404 not_our_subscriber.
    async fn ask(
        &self,
        operator: Operator,
        msisdn: &Msisdn,
    ) -> Result<Option<Subscriber>, Failure> {
        let system = system(operator);
        // `+` URL-encoded, as the API publishes it; the number follows it as digits only.
        let digits = msisdn.as_str().trim_start_matches('+');
        let url = api_url(
            self.base(operator)?,
            &format!("api/v1/subscribers/%2B{digits}"),
        );
        let http = self.http(operator);
        http.run(&system, || async {
            let request = http.get(url.clone());
            let body = match http.send(&system, request).await? {
                Answer::Success(body) => body,
                Answer::Refused(refusal) if refusal.is(404, "not_our_subscriber") => {
                    return Ok(None);
                }
                Answer::Refused(refusal) => return Err(refusal.failure(&system)),
            };
            parse_subscriber(&system, operator, msisdn, &body).map(Some)
        })
        .await
    }

    fn base(&self, operator: Operator) -> Result<&Url, Failure> {
        self.config.operators.get(&operator).ok_or_else(|| {
            Failure::permanent(format!(
                "{} is not configured (no base URL for operator {operator})",
                system(operator)
            ))
        })
    }
}

/// How an operator's gateway is named in failure reasons and logs: `SMS gateway a1`.
fn system(operator: Operator) -> String {
    format!("SMS gateway {operator}")
}

/// The body of `POST /api/v1/messages`.
#[derive(Serialize)]
struct WireMessage<'a> {
    sender: &'a str,
    to: &'a str,
    text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    callback_url: Option<&'a str>,
}

/// The `202` answer to a message.
#[derive(Deserialize)]
struct WireAccepted {
    message_id: String,
    #[serde(default)]
    status: Option<String>,
}

/// The `200` answer about a subscriber.
#[derive(Deserialize)]
struct WireSubscriber {
    msisdn: String,
    operator: String,
    status: String,
}

/// A delivery report as the gateways post it.
#[derive(Deserialize)]
struct WireReport {
    message_id: String,
    to: String,
    status: String,
    at: String,
}

fn parse_accepted(system: &str, operator: Operator, body: &[u8]) -> Result<SentSms, Failure> {
    let wire: WireAccepted =
        serde_json::from_slice(body).map_err(|e| unexpected_json(system, &e))?;
    if wire.message_id.trim().is_empty() {
        return Err(contract_violation(system, "answered an empty message_id"));
    }
    match wire.status.as_deref() {
        None | Some("accepted") => {}
        Some(other) => {
            return Err(contract_violation(
                system,
                format!(
                    "answered the status {} for a new message (expected accepted)",
                    quoted_code(other)
                ),
            ));
        }
    }
    Ok(SentSms {
        operator,
        provider_message_id: wire.message_id,
    })
}

fn parse_subscriber(
    system: &str,
    asked: Operator,
    msisdn: &Msisdn,
    body: &[u8],
) -> Result<Subscriber, Failure> {
    let wire: WireSubscriber =
        serde_json::from_slice(body).map_err(|e| unexpected_json(system, &e))?;
    match Msisdn::parse(&wire.msisdn) {
        Ok(answered) if answered == *msisdn => {}
        Ok(_) => {
            return Err(contract_violation(
                system,
                "answered about another number than the one asked",
            ));
        }
        Err(e) => {
            return Err(contract_violation(
                system,
                format!("answered an msisdn: {e}"),
            ));
        }
    }
    let operator: Operator = wire.operator.parse().map_err(|_| {
        contract_violation(
            system,
            format!(
                "answered an unknown operator {} (expected a1, mts or life)",
                quoted_code(&wire.operator)
            ),
        )
    })?;
    if operator != asked {
        // One gateway answering as another is a wiring mistake: trusting it would send the SMS
        // to a gateway that will refuse it.
        return Err(contract_violation(
            system,
            format!("answered as operator {operator}: check which URL is configured for {asked}"),
        ));
    }
    let blocked = match wire.status.as_str() {
        "active" => false,
        "blocked" => true,
        other => {
            return Err(contract_violation(
                system,
                format!(
                    "answered an unknown subscriber status {} (expected active or blocked)",
                    quoted_code(other)
                ),
            ));
        }
    };
    Ok(Subscriber {
        msisdn: msisdn.clone(),
        operator,
        blocked,
    })
}

/// Parses a delivery report posted by a gateway to the callback URL given in
/// [`SmsClient::send`]. A body that is not a well-formed report is invalid input; the reason
/// never quotes the number.
/// Verifies a delivery report posted by `operator`'s gateway and parses it.
///
/// `body` must be the exact bytes received, `signature_header` the value of
/// [`SIGNATURE_HEADER`], and `secret` that operator's own secret (each operator has one, so a
/// report signed by one operator is refused when posted as another's). The signature is
/// checked first, in constant time; nothing of an unverified body is parsed.
///
/// Errors: a missing, malformed or wrong signature is invalid input with the reason
/// [`BAD_SIGNATURE`] and nothing more; a signed body that is not a report, those of
/// [`parse_delivery_report`]; an empty `secret` is a permanent failure — a configuration mistake
/// that would accept any signature made with it.
pub fn verify_delivery_report(
    operator: Operator,
    secret: &[u8],
    body: &[u8],
    signature_header: Option<&str>,
) -> Result<DeliveryReport, Failure> {
    let name = format!("{operator} delivery report");
    signature::verify(secret, body, signature_header, &name)?;
    parse_delivery_report(body)
}

/// The value of [`SIGNATURE_HEADER`] for `body` as a gateway computes it. For the gateways'
/// stand-ins (tests, tools).
pub fn sign_delivery_report(secret: &[u8], body: &[u8]) -> String {
    signature::sign(secret, body)
}

pub fn parse_delivery_report(body: &[u8]) -> Result<DeliveryReport, Failure> {
    let invalid = |what: String| Failure::invalid_input(format!("SMS delivery report: {what}"));
    let wire: WireReport =
        serde_json::from_slice(body).map_err(|e| invalid(describe_json_error(&e)))?;
    if wire.message_id.trim().is_empty() {
        return Err(invalid("message_id must not be empty".to_owned()));
    }
    let to = Msisdn::parse(&wire.to).map_err(|e| invalid(format!("to: {e}")))?;
    let delivered = match wire.status.as_str() {
        "delivered" => true,
        "failed" => false,
        other => {
            return Err(invalid(format!(
                "status must be delivered or failed, got {}",
                quoted_code(other)
            )));
        }
    };
    let at = DateTime::parse_from_rfc3339(&wire.at)
        .map_err(|_| {
            invalid("at must be an RFC 3339 time such as 2026-11-26T10:00:00Z".to_owned())
        })?
        .with_timezone(&Utc);
    Ok(DeliveryReport {
        provider_message_id: wire.message_id,
        to,
        delivered,
        at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FailureKind;
    use serde_json::json;
    use wiremock::matchers::{body_json, header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const PHONE: &str = "+375291234567";
    const TEXT: &str = "Код: 123456";

    fn phone() -> Msisdn {
        Msisdn::parse(PHONE).expect("a valid number")
    }

    fn quick() -> QuickRetry {
        QuickRetry {
            attempts: 3,
            min_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            max_retry_after: Duration::from_secs(1),
        }
    }

    /// One mock gateway per operator.
    struct Gateways {
        a1: MockServer,
        mts: MockServer,
        life: MockServer,
    }

    impl Gateways {
        async fn start() -> Self {
            Gateways {
                a1: MockServer::start().await,
                mts: MockServer::start().await,
                life: MockServer::start().await,
            }
        }

        fn client_with(&self, timeout: Duration) -> SmsClient {
            let url = |s: &MockServer| Url::parse(&s.uri()).expect("the mock server's URL");
            SmsClient::new(SmsConfig {
                operators: HashMap::from([
                    (Operator::A1, url(&self.a1)),
                    (Operator::Mts, url(&self.mts)),
                    (Operator::Life, url(&self.life)),
                ]),
                sender: "E-SERVICES".to_owned(),
                timeout,
            })
            .expect("a client")
            .with_retry(quick())
        }

        fn client(&self) -> SmsClient {
            self.client_with(Duration::from_millis(500))
        }
    }

    async fn lookup(server: &MockServer, template: ResponseTemplate, times: u64) {
        Mock::given(method("GET"))
            .and(path("/api/v1/subscribers/%2B375291234567"))
            .respond_with(template)
            .expect(times)
            .mount(server)
            .await;
    }

    fn subscriber(operator: &str, status: &str) -> ResponseTemplate {
        ResponseTemplate::new(200)
            .set_body_json(json!({"msisdn": PHONE, "operator": operator, "status": status}))
    }

    fn not_ours() -> ResponseTemplate {
        ResponseTemplate::new(404).set_body_json(
            json!({"error": "not_our_subscriber", "message": format!("{PHONE} is not ours")}),
        )
    }

    fn assert_no_personal_data(failure: &Failure) {
        for secret in [PHONE, "291234567", "1234567", TEXT, "123456"] {
            assert!(
                !failure.reason.contains(secret),
                "{secret} leaked: {}",
                failure.reason
            );
        }
    }

    #[tokio::test]
    async fn the_prefix_operator_answers_first() {
        let g = Gateways::start().await;
        lookup(&g.a1, subscriber("a1", "active"), 1).await;
        lookup(&g.mts, not_ours(), 0).await;
        lookup(&g.life, not_ours(), 0).await;
        let s = g.client().subscriber(&phone()).await.expect("an answer");
        assert_eq!(
            s,
            Some(Subscriber {
                msisdn: phone(),
                operator: Operator::A1,
                blocked: false
            })
        );
    }

    #[tokio::test]
    async fn a_ported_number_is_found_at_the_next_operator() {
        let g = Gateways::start().await;
        lookup(&g.a1, not_ours(), 1).await;
        lookup(&g.mts, subscriber("mts", "active"), 1).await;
        lookup(&g.life, not_ours(), 0).await;
        let s = g
            .client()
            .subscriber(&phone())
            .await
            .expect("an answer")
            .expect("a subscriber");
        assert_eq!(s.operator, Operator::Mts);
        assert!(!s.blocked);
    }

    #[tokio::test]
    async fn a_number_nobody_serves_is_none_after_asking_everyone() {
        let g = Gateways::start().await;
        lookup(&g.a1, not_ours(), 1).await;
        lookup(&g.mts, not_ours(), 1).await;
        lookup(&g.life, not_ours(), 1).await;
        assert_eq!(g.client().subscriber(&phone()).await, Ok(None));
    }

    #[tokio::test]
    async fn a_blocked_subscriber_is_found_and_flagged() {
        let g = Gateways::start().await;
        lookup(&g.a1, subscriber("a1", "blocked"), 1).await;
        let s = g
            .client()
            .subscriber(&phone())
            .await
            .expect("an answer")
            .expect("a subscriber");
        assert!(s.blocked);
    }

    #[tokio::test]
    async fn an_operator_that_is_down_does_not_hide_a_ported_number() {
        let g = Gateways::start().await;
        lookup(&g.a1, ResponseTemplate::new(503), 3).await;
        lookup(&g.mts, not_ours(), 1).await;
        lookup(&g.life, subscriber("life", "active"), 1).await;
        let s = g
            .client()
            .subscriber(&phone())
            .await
            .expect("life answered")
            .expect("a subscriber");
        assert_eq!(s.operator, Operator::Life);
    }

    #[tokio::test]
    async fn an_operator_that_is_down_makes_not_found_transient() {
        let g = Gateways::start().await;
        lookup(&g.a1, ResponseTemplate::new(503), 3).await;
        lookup(&g.mts, not_ours(), 1).await;
        lookup(&g.life, not_ours(), 1).await;
        let f = g
            .client()
            .subscriber(&phone())
            .await
            .expect_err("A1 could not say");
        assert_eq!(f.kind, FailureKind::Transient);
        assert_eq!(
            f.reason,
            "SMS gateway a1 answered HTTP 503 Service Unavailable"
        );
    }

    #[tokio::test]
    async fn lookup_answers_outside_the_contract_are_permanent() {
        for body in [
            json!({"msisdn": PHONE, "operator": "a1", "status": "suspended"}),
            json!({"msisdn": PHONE, "operator": "velcom", "status": "active"}),
            json!({"msisdn": PHONE, "operator": "mts", "status": "active"}),
            json!({"msisdn": "+375441112233", "operator": "a1", "status": "active"}),
            json!({"msisdn": "+375171112233", "operator": "a1", "status": "active"}),
            json!({"msisdn": 375291234567_u64, "operator": "a1", "status": "active"}),
            json!({"operator": "a1", "status": "active"}),
        ] {
            let g = Gateways::start().await;
            lookup(
                &g.a1,
                ResponseTemplate::new(200).set_body_json(body.clone()),
                1,
            )
            .await;
            let f = g
                .client()
                .subscriber(&phone())
                .await
                .expect_err("a contract violation");
            assert_eq!(f.kind, FailureKind::Permanent, "{body}");
            assert!(
                f.reason.starts_with("contract violation: SMS gateway a1"),
                "{}",
                f.reason
            );
            assert_no_personal_data(&f);
        }
    }

    #[tokio::test]
    async fn an_unconfigured_operator_is_a_permanent_failure() {
        let g = Gateways::start().await;
        lookup(&g.a1, not_ours(), 1).await;
        let mut client = g.client();
        client.config.operators.remove(&Operator::Mts);
        client.config.operators.remove(&Operator::Life);
        let f = client
            .subscriber(&phone())
            .await
            .expect_err("cannot ask MTS");
        assert_eq!(f.kind, FailureKind::Permanent);
        assert!(f.reason.contains("not configured"), "{}", f.reason);
        let f = client
            .send(Uuid::new_v4(), Operator::Mts, &phone(), TEXT, None)
            .await
            .expect_err("cannot send through MTS");
        assert_eq!(f.kind, FailureKind::Permanent);
    }

    async fn messages(server: &MockServer, template: ResponseTemplate) {
        Mock::given(method("POST"))
            .and(path("/api/v1/messages"))
            .respond_with(template)
            .mount(server)
            .await;
    }

    fn accepted() -> ResponseTemplate {
        ResponseTemplate::new(202)
            .set_body_json(json!({"message_id": "a1-42", "status": "accepted"}))
    }

    #[tokio::test]
    async fn send_posts_the_published_body_with_the_idempotency_key() {
        let g = Gateways::start().await;
        let key = Uuid::new_v4();
        let callback = Url::parse("http://127.0.0.1:8090/callbacks/sms/a1").expect("a URL");
        Mock::given(method("POST"))
            .and(path("/api/v1/messages"))
            .and(header("Idempotency-Key", key.to_string().as_str()))
            .and(body_json(json!({
                "sender": "E-SERVICES", "to": PHONE, "text": TEXT,
                "callback_url": "http://127.0.0.1:8090/callbacks/sms/a1"
            })))
            .respond_with(accepted())
            .expect(1)
            .mount(&g.a1)
            .await;
        let sent = g
            .client()
            .send(key, Operator::A1, &phone(), TEXT, Some(&callback))
            .await
            .expect("accepted");
        assert_eq!(
            sent,
            SentSms {
                operator: Operator::A1,
                provider_message_id: "a1-42".to_owned()
            }
        );
    }

    #[tokio::test]
    async fn send_without_a_callback_leaves_it_out() {
        let g = Gateways::start().await;
        Mock::given(method("POST"))
            .and(path("/api/v1/messages"))
            .and(body_json(
                json!({"sender": "E-SERVICES", "to": PHONE, "text": TEXT}),
            ))
            .respond_with(accepted())
            .expect(1)
            .mount(&g.mts)
            .await;
        let sent = g
            .client()
            .send(Uuid::new_v4(), Operator::Mts, &phone(), TEXT, None)
            .await
            .expect("accepted");
        assert_eq!(sent.operator, Operator::Mts);
    }

    #[tokio::test]
    async fn a_503_is_retried_with_the_same_key() {
        let g = Gateways::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(503))
            .up_to_n_times(1)
            .mount(&g.a1)
            .await;
        messages(&g.a1, accepted()).await;
        let key = Uuid::new_v4();
        g.client()
            .send(key, Operator::A1, &phone(), TEXT, None)
            .await
            .expect("the retry is accepted");
        let calls = g.a1.received_requests().await.unwrap_or_default();
        assert_eq!(calls.len(), 2);
        for call in calls {
            assert_eq!(
                call.headers
                    .get("Idempotency-Key")
                    .and_then(|v| v.to_str().ok()),
                Some(key.to_string().as_str())
            );
        }
    }

    #[tokio::test]
    async fn a_busy_gateway_s_retry_after_reaches_the_failure() {
        let g = Gateways::start().await;
        messages(
            &g.a1,
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "90")
                .set_body_json(json!({"error": "rate_limited", "message": "slow down"})),
        )
        .await;
        let f = g
            .client()
            .send(Uuid::new_v4(), Operator::A1, &phone(), TEXT, None)
            .await
            .expect_err("busy");
        assert_eq!(f.kind, FailureKind::Transient);
        assert_eq!(
            f.reason,
            "SMS gateway a1 answered HTTP 429 Too Many Requests (rate_limited)"
        );
        assert_eq!(f.retry_after, Some(Duration::from_secs(90)));
        let calls = g.a1.received_requests().await.unwrap_or_default();
        assert_eq!(calls.len(), 1, "no in-process wait of a minute and a half");
    }

    #[tokio::test]
    async fn a_down_gateway_s_retry_after_reaches_the_lookup_s_failure() {
        let g = Gateways::start().await;
        lookup(
            &g.a1,
            ResponseTemplate::new(503).insert_header("Retry-After", "60"),
            1,
        )
        .await;
        lookup(&g.mts, not_ours(), 1).await;
        lookup(&g.life, not_ours(), 1).await;
        let f = g
            .client()
            .subscriber(&phone())
            .await
            .expect_err("A1 could not say");
        assert_eq!(f.kind, FailureKind::Transient);
        assert_eq!(f.retry_after, Some(Duration::from_secs(60)));
    }

    #[tokio::test]
    async fn refusals_are_permanent_with_clear_reasons() {
        for (status, code, reason) in [
            (422, "subscriber_blocked", SUBSCRIBER_BLOCKED.to_owned()),
            (404, "not_our_subscriber", NOT_OUR_SUBSCRIBER.to_owned()),
            (
                400,
                "invalid_request",
                "SMS gateway a1 answered HTTP 400 Bad Request (invalid_request)".to_owned(),
            ),
            (
                409,
                "idempotency_conflict",
                "SMS gateway a1 answered HTTP 409 Conflict (idempotency_conflict)".to_owned(),
            ),
        ] {
            let g = Gateways::start().await;
            messages(
                &g.a1,
                ResponseTemplate::new(status).set_body_json(
                    json!({"error": code, "message": format!("cannot send {TEXT} to {PHONE}")}),
                ),
            )
            .await;
            let f = g
                .client()
                .send(Uuid::new_v4(), Operator::A1, &phone(), TEXT, None)
                .await
                .expect_err("refused");
            assert_eq!(f.kind, FailureKind::Permanent, "HTTP {status}");
            assert_eq!(f.reason, reason);
            assert_no_personal_data(&f);
            let calls = g.a1.received_requests().await.unwrap_or_default();
            assert_eq!(calls.len(), 1, "a permanent failure is not retried");
        }
    }

    #[tokio::test]
    async fn a_slow_gateway_times_out_as_transient() {
        let g = Gateways::start().await;
        messages(&g.a1, accepted().set_delay(Duration::from_secs(5))).await;
        let started = std::time::Instant::now();
        let f = g
            .client_with(Duration::from_millis(150))
            .send(Uuid::new_v4(), Operator::A1, &phone(), TEXT, None)
            .await
            .expect_err("too slow");
        assert_eq!(f.kind, FailureKind::Transient);
        assert!(
            f.reason.starts_with("SMS gateway a1 timed out"),
            "{}",
            f.reason
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "three bounded attempts"
        );
        assert_no_personal_data(&f);
    }

    #[tokio::test]
    async fn send_answers_outside_the_contract_are_permanent() {
        for template in [
            ResponseTemplate::new(202).set_body_string("{\"message_id\": "),
            ResponseTemplate::new(202).set_body_json(json!({"id": "a1-42"})),
            ResponseTemplate::new(202).set_body_json(json!({"message_id": ""})),
            ResponseTemplate::new(202)
                .set_body_json(json!({"message_id": "a1-42", "status": "rejected"})),
            ResponseTemplate::new(202).set_body_json(json!({"message_id": ["a1", PHONE]})),
        ] {
            let g = Gateways::start().await;
            messages(&g.a1, template).await;
            let f = g
                .client()
                .send(Uuid::new_v4(), Operator::A1, &phone(), TEXT, None)
                .await
                .expect_err("a contract violation");
            assert_eq!(f.kind, FailureKind::Permanent);
            assert!(
                f.reason.starts_with("contract violation: SMS gateway a1"),
                "{}",
                f.reason
            );
            assert_no_personal_data(&f);
        }
    }

    #[tokio::test]
    async fn an_empty_text_is_invalid_input() {
        let g = Gateways::start().await;
        let f = g
            .client()
            .send(Uuid::new_v4(), Operator::A1, &phone(), "  ", None)
            .await
            .expect_err("nothing to send");
        assert_eq!(f.kind, FailureKind::InvalidInput);
    }

    #[test]
    fn delivery_reports_parse() {
        let report = parse_delivery_report(
            br#"{"message_id": "a1-42", "to": "+375291234567", "status": "delivered",
                 "at": "2026-11-26T10:00:00Z"}"#,
        )
        .expect("a report");
        assert_eq!(report.provider_message_id, "a1-42");
        assert_eq!(report.to, phone());
        assert!(report.delivered);
        assert_eq!(report.at.to_rfc3339(), "2026-11-26T10:00:00+00:00");
        let failed = parse_delivery_report(
            br#"{"message_id": "a1-43", "to": "+375291234567", "status": "failed",
                 "at": "2026-11-26T13:00:00+03:00"}"#,
        )
        .expect("a report");
        assert!(!failed.delivered);
        assert_eq!(failed.at.to_rfc3339(), "2026-11-26T10:00:00+00:00");
        assert!(!format!("{failed:?}").contains(PHONE));
    }

    #[test]
    fn a_delivery_report_is_taken_only_with_its_operators_signature() {
        let body = br#"{"message_id": "a1-42", "to": "+375291234567", "status": "delivered",
                 "at": "2026-11-26T10:00:00Z"}"#;
        let good = sign_delivery_report(b"a1-key", body);
        let report = verify_delivery_report(Operator::A1, b"a1-key", body, Some(&good))
            .expect("signed by A1");
        assert_eq!(report.provider_message_id, "a1-42");
        // Another operator's key, none, or a signature of other bytes: the same bare refusal.
        let other = sign_delivery_report(b"mts-key", body);
        for header in [None, Some(other.as_str()), Some("sha256=00")] {
            let f = verify_delivery_report(Operator::A1, b"a1-key", body, header)
                .expect_err("not A1's signature");
            assert_eq!(f, Failure::invalid_input(BAD_SIGNATURE), "{header:?}");
        }
        let f = verify_delivery_report(
            Operator::A1,
            b"",
            body,
            Some(&sign_delivery_report(b"", body)),
        )
        .expect_err("no secret configured");
        assert_eq!(f.kind, FailureKind::Permanent);
        assert!(f.reason.contains("a1"), "{}", f.reason);
    }

    #[test]
    fn bad_delivery_reports_are_invalid_input_without_the_number() {
        for body in [
            &b"not json"[..],
            br#"{"message_id": "a1-42", "to": "+375291234567", "status": "delivered"}"#,
            br#"{"message_id": "", "to": "+375291234567", "status": "delivered", "at": "2026-11-26T10:00:00Z"}"#,
            br#"{"message_id": "a1-42", "to": "+375171234567", "status": "delivered", "at": "2026-11-26T10:00:00Z"}"#,
            br#"{"message_id": "a1-42", "to": 375291234567, "status": "delivered", "at": "2026-11-26T10:00:00Z"}"#,
            br#"{"message_id": "a1-42", "to": "+375291234567", "status": "read", "at": "2026-11-26T10:00:00Z"}"#,
            br#"{"message_id": "a1-42", "to": "+375291234567", "status": "+375291234567", "at": "2026-11-26T10:00:00Z"}"#,
            br#"{"message_id": "a1-42", "to": "+375291234567", "status": "delivered", "at": "yesterday"}"#,
        ] {
            let f = parse_delivery_report(body).expect_err("a bad report");
            assert_eq!(f.kind, FailureKind::InvalidInput);
            assert!(f.reason.starts_with("SMS delivery report: "), "{}", f.reason);
            assert_no_personal_data(&f);
        }
    }
}
