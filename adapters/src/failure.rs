//! Classification of the HTTP adapters' failures into [`Failure`]s (the type itself is the
//! contracts', shared with the runtime), and one policy of quick in-process retries.

use std::time::Duration;

pub use contracts::failure::{Failure, FailureKind};

/// Classifies an HTTP status from an external system. `None` for success.
///
/// 408, 425, 429 and every 5xx are transient (the system is busy or down); other 4xx mean the
/// request itself was refused and retrying the same request cannot help.
pub fn classify_status(status: reqwest::StatusCode) -> Option<FailureKind> {
    if status.is_success() {
        None
    } else if status.is_server_error() || matches!(status.as_u16(), 408 | 425 | 429) {
        Some(FailureKind::Transient)
    } else {
        Some(FailureKind::Permanent)
    }
}

/// Classifies a transport error from `reqwest`: connection, timeout and body-read errors are
/// transient; a request that could not even be built is permanent.
pub fn classify_transport(error: &reqwest::Error) -> FailureKind {
    if error.is_builder() || error.is_redirect() {
        FailureKind::Permanent
    } else if let Some(status) = error.status() {
        classify_status(status).unwrap_or(FailureKind::Permanent)
    } else {
        FailureKind::Transient
    }
}

/// Turns a response into a failure when its status says so, naming the system and the status.
pub fn check_response(system: &str, response: &reqwest::Response) -> Result<(), Failure> {
    match classify_status(response.status()) {
        None => Ok(()),
        Some(kind) => Err(Failure::new(
            kind,
            format!("{system} answered HTTP {}", response.status()),
        )),
    }
}

/// Turns a transport error into a failure naming the system. The URL is left out: it may
/// carry personal data in its path or query.
pub fn transport_failure(system: &str, error: reqwest::Error) -> Failure {
    let kind = classify_transport(&error);
    if let Some(cause) = tls_cause(&error) {
        // A refused certificate (theirs or ours) says so, not only "error sending request".
        return Failure::new(
            kind,
            format!("{system} could not be reached over TLS: {cause}"),
        );
    }
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not be reached"
    } else {
        "failed"
    };
    Failure::new(kind, format!("{system} {what}: {}", error.without_url()))
}

/// The TLS error behind a transport error, if there is one (rustls's words: an unknown issuer,
/// a name the certificate does not cover, the server's alert that a client certificate is
/// required, …).
fn tls_cause(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
        // An I/O error's `source` skips the error it wraps (itself an I/O error at times): go
        // through the wrapped one.
        current = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

/// The `Retry-After` a busy system asked for, when it gave one in seconds.
pub fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// A non-success answer from an external system, read once: its status, the error code from a
/// body of the shape `{"error": "<code>", "message": "<text>"}`, and its `Retry-After`.
///
/// The free-text `message` is never kept: systems echo the request in it (numbers, names), and
/// a refusal ends up in failure reasons, logs and dead-letter headers. The code is kept only when
/// it looks like a code (`[a-z0-9_]`, at most 64 characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The HTTP status.
    pub status: reqwest::StatusCode,
    /// The machine-readable error code, when the body had one.
    pub code: Option<String>,
    /// How long the system asked us to wait, when it said so in seconds.
    pub retry_after: Option<Duration>,
}

impl Refusal {
    /// Reads the status, `Retry-After` and the error code of a response. A body that cannot be
    /// read or is not the error shape leaves the code out; the status still decides.
    pub async fn read(response: reqwest::Response) -> Refusal {
        let status = response.status();
        let retry_after = retry_after(&response);
        let code = response
            .bytes()
            .await
            .ok()
            .and_then(|body| error_code(&body));
        Refusal {
            status,
            code,
            retry_after,
        }
    }

    /// The failure this refusal means, classified by [`classify_status`], with a reason naming
    /// the system, the status and the code: `MVD answered HTTP 400 Bad Request (invalid_request)`.
    pub fn failure(&self, system: &str) -> Failure {
        let kind = classify_status(self.status).unwrap_or(FailureKind::Permanent);
        let reason = match &self.code {
            Some(code) => format!("{system} answered HTTP {} ({code})", self.status),
            None => format!("{system} answered HTTP {}", self.status),
        };
        Failure::new(kind, reason).with_retry_after(self.retry_after)
    }

    /// True when the status is `status` and the body's code is `code`.
    pub fn is(&self, status: u16, code: &str) -> bool {
        self.status.as_u16() == status && self.code.as_deref() == Some(code)
    }
}

/// The `error` code of a body `{"error": "<code>", ...}`, when it looks like a code.
pub fn error_code(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        error: String,
    }
    let code = serde_json::from_slice::<ErrorBody>(body).ok()?.error;
    is_code(&code).then_some(code)
}

/// Whether `s` looks like a machine-readable code (`[a-z0-9_]`, 1 to 64 characters), and so
/// is safe to repeat in a failure reason.
pub fn is_code(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// A permanent failure for an answer that breaks the system's published contract: the system
/// changed, or is not the system we think. Retrying cannot help; a person has to look.
pub fn contract_violation(system: &str, what: impl std::fmt::Display) -> Failure {
    Failure::permanent(format!("contract violation: {system} {what}"))
}

/// A [`contract_violation`] for a success body that does not parse into the expected shape.
pub fn unexpected_json(system: &str, error: &serde_json::Error) -> Failure {
    contract_violation(system, format!("answered {}", describe_json_error(error)))
}

/// What was wrong with a JSON body, safe for a failure reason: `a body that is not JSON (line
/// 1 column 7)`, `JSON without a required field: missing field `id` at line 1 column 9`.
///
/// Only the parts of the parser's message that cannot carry the body's values are kept (a
/// missing field's name, the position): a wrong-typed value is quoted by the parser, and the
/// value may be personal data.
pub fn describe_json_error(error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let at = format!("line {} column {}", error.line(), error.column());
    match error.classify() {
        Category::Syntax | Category::Eof => format!("a body that is not JSON ({at})"),
        Category::Io => format!("a body that could not be read ({at})"),
        Category::Data => {
            let message = error.to_string();
            if message.starts_with("missing field") {
                format!("JSON without a required field: {message}")
            } else {
                format!("JSON with a value of the wrong type or shape ({at})")
            }
        }
    }
}

/// A value chosen by the other side, for a failure reason: quoted when it looks like a code
/// (see [`is_code`]), replaced by `(not a code)` otherwise, since it could be anything,
/// personal data included.
pub fn quoted_code(s: &str) -> String {
    if is_code(s) {
        format!("{s:?}")
    } else {
        "(not a code)".to_owned()
    }
}

/// The few quick in-process retries every adapter makes before it hands a transient failure to
/// the hub's delayed-retry tiers.
///
/// They are short on purpose: they cover a blip (a dropped connection, one 503) without holding
/// a consumer's slot for long. Anything longer is the retry queues' job, which wait without
/// blocking anything. Only transient failures are retried; a POST is retried with the same
/// `Idempotency-Key`, so the system applies it once. A system's `Retry-After` travels in the
/// [`Failure`] itself ([`Failure::retry_after`]): honoured here when it is short, handed on to
/// the delayed-retry tiers with the failure when it is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuickRetry {
    /// Attempts in all, the first included; 1 means no retry.
    pub attempts: usize,
    /// Delay before the first retry; it doubles up to `max_delay`, plus up to 100 % jitter.
    pub min_delay: Duration,
    /// Longest delay between two attempts, before jitter.
    pub max_delay: Duration,
    /// Longest `Retry-After` honoured in process. A system that asks for more is left to the
    /// delayed-retry tiers: the failure is returned at once.
    pub max_retry_after: Duration,
}

impl Default for QuickRetry {
    /// Three attempts, 50 ms to 500 ms apart with jitter, `Retry-After` honoured up to 1 s.
    fn default() -> Self {
        QuickRetry {
            attempts: 3,
            min_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(500),
            max_retry_after: Duration::from_secs(1),
        }
    }
}

impl QuickRetry {
    /// No retry at all: one attempt.
    pub const NONE: QuickRetry = QuickRetry {
        attempts: 1,
        min_delay: Duration::ZERO,
        max_delay: Duration::ZERO,
        max_retry_after: Duration::ZERO,
    };

    /// Runs `attempt` until it succeeds, fails for good, or the attempts run out; returns the
    /// last failure then, its `Retry-After` included. A `Retry-After` longer than
    /// [`Self::max_retry_after`] ends the retries at once. `system` names the system in the log
    /// line of each retry.
    pub async fn run<T, F, Fut>(&self, system: &str, attempt: F) -> Result<T, Failure>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        use backon::Retryable;

        // backon is built without its `std` feature, so its jitter would start from the same
        // fixed seed in every process; a random seed per call keeps retries from synchronising.
        let seed = uuid::Uuid::new_v4().as_u64_pair().0;
        let backoff = backon::ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.attempts.saturating_sub(1))
            .with_jitter()
            .with_jitter_seed(seed);
        let max_retry_after = self.max_retry_after;
        attempt
            .retry(backoff)
            .when(Failure::is_transient)
            .adjust(move |f: &Failure, delay| match (delay, f.retry_after) {
                (Some(_), Some(asked)) if asked > max_retry_after => None,
                (Some(delay), Some(asked)) => Some(delay.max(asked)),
                (delay, _) => delay,
            })
            .notify(|f: &Failure, delay| {
                tracing::warn!(
                    system,
                    reason = %f.reason,
                    retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    "transient failure, retrying"
                );
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    async fn call(status: u16) -> Result<reqwest::Response, reqwest::Error> {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(status).insert_header("retry-after", "7"))
            .mount(&server)
            .await;
        reqwest::get(server.uri()).await
    }

    #[tokio::test]
    async fn statuses_from_a_real_http_server_are_classified() {
        for (status, expected) in [
            (200, None),
            (204, None),
            (400, Some(FailureKind::Permanent)),
            (404, Some(FailureKind::Permanent)),
            (408, Some(FailureKind::Transient)),
            (429, Some(FailureKind::Transient)),
            (500, Some(FailureKind::Transient)),
            (503, Some(FailureKind::Transient)),
        ] {
            let response = call(status).await.expect("the mock server answers");
            assert_eq!(
                classify_status(response.status()),
                expected,
                "HTTP {status}"
            );
            let checked = check_response("MVD", &response);
            assert_eq!(
                checked.as_ref().err().map(|f| f.kind),
                expected,
                "HTTP {status}"
            );
            if let Err(f) = checked {
                assert_eq!(f.reason, format!("MVD answered HTTP {}", response.status()));
            }
        }
        let busy = call(429).await.expect("the mock server answers");
        assert_eq!(retry_after(&busy), Some(Duration::from_secs(7)));
    }

    #[tokio::test]
    async fn an_unreachable_system_is_transient() {
        // Bind and drop a listener so the port is closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let error = reqwest::get(format!("http://127.0.0.1:{port}/person/3270287A012PB2"))
            .await
            .expect_err("nothing listens there");
        let failure = transport_failure("MVD", error);
        assert_eq!(failure.kind, FailureKind::Transient);
        assert!(
            failure.reason.starts_with("MVD could not be reached"),
            "{}",
            failure.reason
        );
        assert!(
            !failure.reason.contains("3270287A012PB2"),
            "the URL leaked: {}",
            failure.reason
        );
    }

    /// Runs `policy` over an attempt that always fails with `failure`; the result and the number
    /// of attempts made.
    async fn always_failing(policy: QuickRetry, failure: Failure) -> (Failure, usize) {
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let result: Result<(), Failure> = policy
            .run("MVD", || {
                calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let failure = failure.clone();
                async move { Err(failure) }
            })
            .await;
        (
            result.expect_err("it always fails"),
            calls.load(std::sync::atomic::Ordering::SeqCst),
        )
    }

    const QUICK: QuickRetry = QuickRetry {
        attempts: 3,
        min_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(1),
        max_retry_after: Duration::from_secs(1),
    };

    #[tokio::test]
    async fn a_long_retry_after_ends_the_quick_retries_and_is_handed_on() {
        let busy = Failure::transient("MVD answered HTTP 429 Too Many Requests")
            .with_retry_after(Some(Duration::from_secs(120)));
        let (failure, calls) = always_failing(QUICK, busy.clone()).await;
        assert_eq!(calls, 1, "no in-process wait of two minutes");
        assert_eq!(failure, busy, "the Retry-After reaches the caller");
    }

    #[tokio::test]
    async fn a_short_retry_after_is_honoured_and_the_last_one_handed_on() {
        let busy = Failure::transient("MVD answered HTTP 503 Service Unavailable")
            .with_retry_after(Some(Duration::from_millis(5)));
        let (failure, calls) = always_failing(QUICK, busy.clone()).await;
        assert_eq!(calls, 3, "retried within the call");
        assert_eq!(failure.retry_after, Some(Duration::from_millis(5)));
    }

    #[tokio::test]
    async fn a_permanent_failure_is_not_retried() {
        let (failure, calls) = always_failing(QUICK, Failure::permanent("refused")).await;
        assert_eq!(calls, 1);
        assert_eq!(failure.kind, FailureKind::Permanent);
    }

    #[test]
    fn reasons_stay_on_one_line() {
        assert_eq!(Failure::permanent("a\nb\rc").reason, "a b c");
    }
}
