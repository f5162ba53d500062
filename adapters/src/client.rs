//! The HTTP side every adapter client shares: one `reqwest` client per external system, built
//! with that system's timeouts; the quick in-process retries ([`QuickRetry`]); and the
//! `traceparent` each call carries, so the system's logs join the trace of the message that
//! caused the call.
//!
//! It is built in one place so that a client that cannot be built stops the hub at start with
//! an error naming the system ([`ClientError`]), instead of quietly running with a default
//! client that has no timeouts and could hold a consumer's slot forever.

use std::time::Duration;

use reqwest::{Method, RequestBuilder};
use url::Url;

use crate::failure::{Failure, QuickRetry, Refusal, transport_failure};
use crate::tls::ClientTls;

/// The W3C trace context header the HTTP adapters send, so an external system's logs can join
/// the trace of the message that caused the call.
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// An adapter's HTTP client could not be built (the system's TLS settings were refused, or the
/// TLS backend or the resolver could not be set up). A start-up error: the hub does not run
/// without its timeouts, nor with TLS other than configured.
#[derive(Debug, thiserror::Error)]
#[error("the HTTP client of {system} could not be built: {source}")]
pub struct ClientError {
    /// The system the client was for, as its failure reasons name it.
    pub system: String,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

/// The HTTP client of one external system: every attempt bounded by the system's timeout
/// (connecting included), the quick retries, and the `traceparent` of the message at hand.
#[derive(Debug, Clone)]
pub(crate) struct HttpClient {
    http: reqwest::Client,
    timeout: Duration,
    retry: QuickRetry,
    traceparent: Traceparent,
}

/// What one exchange with a system came to, when it answered at all.
#[derive(Debug)]
pub(crate) enum Answer {
    /// A 2xx answer, with its body.
    Success(Vec<u8>),
    /// Any other status, read once ([`Refusal::read`]): the caller decides what it means.
    Refused(Refusal),
}

impl Answer {
    /// The body of a success; a refusal as the failure it means ([`Refusal::failure`], which
    /// keeps the system's `Retry-After`).
    pub(crate) fn body(self, system: &str) -> Result<Vec<u8>, Failure> {
        match self {
            Answer::Success(body) => Ok(body),
            Answer::Refused(refusal) => Err(refusal.failure(system)),
        }
    }
}

impl HttpClient {
    /// A client of `system` whose every attempt is bounded by `timeout`, with
    /// [`QuickRetry::default`], no `traceparent`, and the default TLS (the OS roots, no client
    /// certificate).
    pub(crate) fn new(system: &str, timeout: Duration) -> Result<Self, ClientError> {
        Self::with_tls(system, timeout, &ClientTls::default())
    }

    /// A client of `system` as [`Self::new`], its HTTPS verified against `tls`'s roots and
    /// showing `tls`'s client certificate.
    pub(crate) fn with_tls(
        system: &str,
        timeout: Duration,
        tls: &ClientTls,
    ) -> Result<Self, ClientError> {
        Self::from_builder(system, timeout, tls, reqwest::Client::builder())
    }

    /// The same client (timeout, retries, `traceparent`) with other TLS settings.
    pub(crate) fn retls(self, system: &str, tls: &ClientTls) -> Result<Self, ClientError> {
        let rebuilt = Self::with_tls(system, self.timeout, tls)?;
        Ok(HttpClient {
            http: rebuilt.http,
            ..self
        })
    }

    /// [`Self::with_tls`] from a given builder: the one place a `reqwest` client is built.
    fn from_builder(
        system: &str,
        timeout: Duration,
        tls: &ClientTls,
        builder: reqwest::ClientBuilder,
    ) -> Result<Self, ClientError> {
        let failed = |source: Box<dyn std::error::Error + Send + Sync>| ClientError {
            system: system.to_owned(),
            source,
        };
        let mut config = tls.rustls_config().map_err(|e| failed(Box::new(e)))?;
        // The client speaks HTTP/1.1 only (no `http2` feature).
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let http = builder
            .tls_backend_preconfigured(config)
            .connect_timeout(timeout)
            .timeout(timeout)
            .build()
            .map_err(|e| failed(Box::new(e)))?;
        Ok(HttpClient {
            http,
            timeout,
            retry: QuickRetry::default(),
            traceparent: Traceparent::default(),
        })
    }

    /// The same client with another in-process retry policy.
    pub(crate) fn with_retry(mut self, retry: QuickRetry) -> Self {
        self.retry = retry;
        self
    }

    /// The same client, sending `traceparent` with each call; `None`, or a value that cannot
    /// be a header, sends none (a malformed one is left out rather than failing the call).
    pub(crate) fn with_traceparent(mut self, traceparent: Option<&str>) -> Self {
        self.traceparent = Traceparent::new(traceparent);
        self
    }

    /// The bound on every attempt.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The in-process retry policy.
    pub(crate) fn retry(&self) -> QuickRetry {
        self.retry
    }

    /// A `method` request to `url`, bounded by the timeout, carrying the `traceparent`.
    pub(crate) fn request(&self, method: Method, url: Url) -> RequestBuilder {
        let request = self.http.request(method, url).timeout(self.timeout);
        self.traceparent.apply(request)
    }

    /// A `GET` of `url`, as [`Self::request`].
    pub(crate) fn get(&self, url: Url) -> RequestBuilder {
        self.request(Method::GET, url)
    }

    /// A `POST` to `url`, as [`Self::request`].
    pub(crate) fn post(&self, url: Url) -> RequestBuilder {
        self.request(Method::POST, url)
    }

    /// Sends `request` once: the body of a success or the refusal of any other status; a
    /// request that got no whole answer (timeout, lost connection, body cut short) is a
    /// failure naming `system` ([`transport_failure`]).
    pub(crate) async fn send(
        &self,
        system: &str,
        request: RequestBuilder,
    ) -> Result<Answer, Failure> {
        let response = request
            .send()
            .await
            .map_err(|e| transport_failure(system, e))?;
        if !response.status().is_success() {
            return Ok(Answer::Refused(Refusal::read(response).await));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| transport_failure(system, e))?;
        Ok(Answer::Success(body.to_vec()))
    }

    /// Runs `attempt` under the retry policy ([`QuickRetry::run`]).
    pub(crate) async fn run<T, F, Fut>(&self, system: &str, attempt: F) -> Result<T, Failure>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        self.retry.run(system, attempt).await
    }
}

/// The `traceparent` a client sends with its calls: checked once to be a valid header value,
/// so a malformed one is left out instead of failing the request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Traceparent(Option<reqwest::header::HeaderValue>);

impl Traceparent {
    fn new(value: Option<&str>) -> Self {
        Self(value.and_then(|v| reqwest::header::HeaderValue::from_str(v).ok()))
    }

    /// `request` with the header, when there is one.
    fn apply(&self, request: RequestBuilder) -> RequestBuilder {
        match &self.0 {
            Some(value) => request.header(TRACEPARENT_HEADER, value.clone()),
            None => request,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FailureKind;
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    fn url(server: &MockServer, p: &str) -> Url {
        Url::parse(&format!("{}{p}", server.uri())).expect("the mock server's URL")
    }

    #[test]
    fn a_builder_that_fails_is_an_error_naming_the_system_not_a_default_client() {
        // A user agent that cannot be a header makes reqwest's builder fail at `build()`.
        let failing = reqwest::Client::builder().user_agent("bad\nagent");
        let error = HttpClient::from_builder(
            "MVD",
            Duration::from_secs(1),
            &ClientTls::default(),
            failing,
        )
        .expect_err("the builder fails");
        assert_eq!(error.system, "MVD");
        assert!(
            error
                .to_string()
                .starts_with("the HTTP client of MVD could not be built: "),
            "{error}"
        );
        assert!(
            std::error::Error::source(&error).is_some(),
            "the builder's own error is kept as the source"
        );
    }

    #[tokio::test]
    async fn every_request_is_bounded_by_the_timeout() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
            .mount(&server)
            .await;
        let client = HttpClient::new("MVD", Duration::from_millis(200)).expect("a client");
        let started = std::time::Instant::now();
        let failure = client
            .send("MVD", client.get(url(&server, "/slow")))
            .await
            .expect_err("too slow");
        assert_eq!(failure.kind, FailureKind::Transient);
        assert!(
            failure.reason.starts_with("MVD timed out"),
            "{}",
            failure.reason
        );
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn a_refusal_keeps_the_retry_after_the_system_asked_for() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/busy"))
            .respond_with(
                ResponseTemplate::new(429)
                    .insert_header("Retry-After", "30")
                    .set_body_json(serde_json::json!({"error": "rate_limited"})),
            )
            .mount(&server)
            .await;
        let client = HttpClient::new("ERIP", Duration::from_secs(1)).expect("a client");
        let answer = client
            .send("ERIP", client.post(url(&server, "/busy")))
            .await
            .expect("an answer");
        let failure = answer.body("ERIP").expect_err("refused");
        assert_eq!(failure.kind, FailureKind::Transient);
        assert_eq!(failure.retry_after, Some(Duration::from_secs(30)));
        assert_eq!(
            failure.reason,
            "ERIP answered HTTP 429 Too Many Requests (rate_limited)"
        );
    }

    #[tokio::test]
    async fn the_traceparent_goes_along_and_a_malformed_one_is_left_out() {
        let server = MockServer::start().await;
        let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        Mock::given(method("GET"))
            .and(header(TRACEPARENT_HEADER, traceparent))
            .respond_with(ResponseTemplate::new(200).set_body_string("traced"))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_string("untraced"))
            .mount(&server)
            .await;
        let client = HttpClient::new("MVD", Duration::from_secs(1)).expect("a client");
        for (sent, expected) in [
            (Some(traceparent), "traced"),
            (Some("bad\nvalue"), "untraced"),
            (None, "untraced"),
        ] {
            let client = client.clone().with_traceparent(sent);
            let body = client
                .send("MVD", client.get(url(&server, "/")))
                .await
                .and_then(|a| a.body("MVD"))
                .expect("an answer");
            assert_eq!(body, expected.as_bytes(), "{sent:?}");
        }
    }
}
