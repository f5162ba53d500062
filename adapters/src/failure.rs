//! One classification of failures, used by every adapter and every handler in the hub.
//!
//! The variants are decisions, not causes: the consumer runtime retries a transient failure
//! through the delayed-retry tiers, and dead-letters a permanent failure or invalid input at
//! once. A saga that can handle a permanent failure itself gets it as a reply instead.

use std::time::Duration;

/// What the runtime should do with a message whose handling failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// Trying again later may succeed: timeouts, 5xx, 429, a lost connection, a busy database.
    Transient,
    /// Trying again cannot help: a 4xx with meaning, a state the message does not fit.
    Permanent,
    /// The message itself is malformed or breaks the contract.
    InvalidInput,
}

/// A failure with its kind and a one-line description for logs and dead-letter headers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind:?}: {reason}")]
pub struct Failure {
    /// What to do about it.
    pub kind: FailureKind,
    /// What went wrong, one line, with no secret or personal data in it.
    pub reason: String,
}

impl Failure {
    /// A failure worth retrying.
    pub fn transient(reason: impl Into<String>) -> Self {
        Self::new(FailureKind::Transient, reason)
    }

    /// A failure not worth retrying.
    pub fn permanent(reason: impl Into<String>) -> Self {
        Self::new(FailureKind::Permanent, reason)
    }

    /// A malformed message.
    pub fn invalid_input(reason: impl Into<String>) -> Self {
        Self::new(FailureKind::InvalidInput, reason)
    }

    fn new(kind: FailureKind, reason: impl Into<String>) -> Self {
        // Header values and log lines stay one line.
        let reason = reason.into().replace(['\n', '\r'], " ");
        Self { kind, reason }
    }

    /// True for [`FailureKind::Transient`].
    pub fn is_transient(&self) -> bool {
        self.kind == FailureKind::Transient
    }
}

impl From<contracts::DecodeError> for Failure {
    fn from(e: contracts::DecodeError) -> Self {
        Failure::invalid_input(e.to_string())
    }
}

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
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not be reached"
    } else {
        "failed"
    };
    let kind = classify_transport(&error);
    Failure::new(kind, format!("{system} {what}: {}", error.without_url()))
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

    #[test]
    fn reasons_stay_on_one_line() {
        assert_eq!(Failure::permanent("a\nb\rc").reason, "a b c");
    }
}
