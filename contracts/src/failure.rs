//! One classification of failures, shared by the HTTP adapters and the messaging runtime.
//!
//! The variants are decisions, not causes: the consumer runtime retries a transient failure
//! through the delayed-retry tiers, and dead-letters a permanent failure or invalid input at
//! once. A saga that can handle a permanent failure itself gets it as a reply instead. It lives
//! here, beside the contracts, so that the runtime uses it without depending on HTTP clients.

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
    /// How long the failing system asked to be left alone (an HTTP 429's or 503's
    /// `Retry-After`): the runtime retries a transient failure no sooner than this.
    pub retry_after: Option<Duration>,
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

    /// A failure of this kind; the reason is kept to one line.
    pub fn new(kind: FailureKind, reason: impl Into<String>) -> Self {
        // Header values and log lines stay one line.
        let reason = reason.into().replace(['\n', '\r'], " ");
        Self {
            kind,
            reason,
            retry_after: None,
        }
    }

    /// The same failure, to be retried no sooner than `delay` when the system said so.
    #[must_use]
    pub fn with_retry_after(mut self, delay: Option<Duration>) -> Self {
        self.retry_after = delay;
        self
    }

    /// True for [`FailureKind::Transient`].
    pub fn is_transient(&self) -> bool {
        self.kind == FailureKind::Transient
    }
}

impl From<crate::DecodeError> for Failure {
    fn from(e: crate::DecodeError) -> Self {
        Failure::invalid_input(e.to_string())
    }
}
