//! Message metadata. It rides in AMQP properties and headers, never in the body, so the broker
//! (and an operator looking at a queue) can read it without parsing JSON.
//!
//! | field            | carried as                          |
//! |------------------|-------------------------------------|
//! | `message_id`     | property `message_id` (UUID)        |
//! | `correlation_id` | property `correlation_id` (saga id) |
//! | `message_type`   | property `type` (`name.vN`)         |
//! | `timestamp`      | property `timestamp` (Unix seconds) |
//! | `app_id`         | property `app_id` (sender)          |
//! | `user_id`        | property `user_id` (broker-checked) |
//! | `reply_to`       | property `reply_to`                 |
//! | `causation_id`   | header `causation_id`               |
//! | `traceparent`    | header `traceparent` (W3C)          |

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The only content type the hub reads and writes.
pub const CONTENT_TYPE_JSON: &str = "application/json";

/// Names of the headers the hub reads and writes.
pub mod headers {
    /// The `message_id` of the message that caused this one.
    pub const CAUSATION_ID: &str = "causation_id";
    /// W3C trace context, so one trace follows a whole saga.
    pub const TRACEPARENT: &str = "traceparent";
    /// How many times handling this message has failed so far.
    pub const ATTEMPTS: &str = "x-hub-attempts";
    /// When handling first failed (RFC 3339).
    pub const FIRST_FAILURE: &str = "x-hub-first-failure";
    /// When handling last failed (RFC 3339).
    pub const LAST_FAILURE: &str = "x-hub-last-failure";
    /// The kind of the last failure: see [`super::ErrorKind`].
    pub const ERROR_KIND: &str = "x-hub-error-kind";
    /// The text of the last failure, one line.
    pub const ERROR_TEXT: &str = "x-hub-error";
    /// The exchange the message was first published to.
    pub const ORIGINAL_EXCHANGE: &str = "x-hub-original-exchange";
    /// The routing key the message was first published with.
    pub const ORIGINAL_ROUTING_KEY: &str = "x-hub-original-routing-key";
    /// The work queue the message failed on.
    pub const QUEUE: &str = "x-hub-queue";
    /// On a dead letter: `true` when its body was replaced because it carried a secret.
    pub const REDACTED: &str = "x-hub-redacted";
    /// On a message the hub republished (to retry or dead-letter it) for another broker user:
    /// that user. The broker lets a connection publish only with its own `user_id`, so the copy
    /// carries the hub's, and this header is believed only on a message whose `user_id` is the
    /// hub's (which no one else can publish).
    pub const ORIGINAL_USER_ID: &str = "x-hub-original-user-id";
}

/// Why a message failed, as written in the [`headers::ERROR_KIND`] header of a dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The body or properties could not be read or broke a contract rule.
    InvalidInput,
    /// The handler decided that trying again cannot help.
    Permanent,
    /// A transient failure that went on past the configured attempts.
    RetriesExhausted,
    /// The handler panicked; treated as permanent so one bad message cannot stop a consumer.
    HandlerPanicked,
}

impl ErrorKind {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::Permanent => "permanent",
            ErrorKind::RetriesExhausted => "retries_exhausted",
            ErrorKind::HandlerPanicked => "handler_panicked",
        }
    }
}

impl ErrorKind {
    /// Every kind, in the order of the table above.
    pub const ALL: [ErrorKind; 4] = [
        ErrorKind::InvalidInput,
        ErrorKind::Permanent,
        ErrorKind::RetriesExhausted,
        ErrorKind::HandlerPanicked,
    ];

    /// The kind a header value names, or `None` for any other text.
    pub fn parse(value: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.as_str() == value)
    }
}

/// The [`headers::ERROR_KIND`] value of a message on its way to a retry tier: not a dead
/// letter's kind, so not an [`ErrorKind`].
pub const RETRYING: &str = "transient";

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything about a message except its body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Metadata {
    /// Unique per message; the inbox deduplicates by it, so a re-send keeps it.
    pub message_id: Uuid,
    /// The message type, `name.vN`.
    pub message_type: String,
    /// The saga this message belongs to, or the request a reply answers.
    pub correlation_id: Option<String>,
    /// The `message_id` of the message that caused this one.
    pub causation_id: Option<Uuid>,
    /// When the sender made the message (second precision on the wire).
    pub timestamp: DateTime<Utc>,
    /// The sending application.
    pub app_id: String,
    /// The broker user that published it, checked by the broker against the connection.
    pub user_id: Option<String>,
    /// Where a reply goes, for request/reply.
    pub reply_to: Option<String>,
    /// W3C trace context.
    pub traceparent: Option<String>,
}

impl Metadata {
    /// Metadata for a new message of `message_type` sent by `app_id`, with a fresh id.
    pub fn new(message_type: impl Into<String>, app_id: impl Into<String>) -> Self {
        Self {
            message_id: Uuid::new_v4(),
            message_type: message_type.into(),
            correlation_id: None,
            causation_id: None,
            timestamp: Utc::now(),
            app_id: app_id.into(),
            user_id: None,
            reply_to: None,
            traceparent: None,
        }
    }

    /// Metadata for a message caused by `cause`: same correlation and trace, causation set.
    pub fn caused_by(
        cause: &Metadata,
        message_type: impl Into<String>,
        app_id: impl Into<String>,
    ) -> Self {
        Self {
            correlation_id: cause.correlation_id.clone(),
            causation_id: Some(cause.message_id),
            traceparent: cause.traceparent.clone(),
            ..Self::new(message_type, app_id)
        }
    }

    /// Sets the correlation id.
    pub fn with_correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// Sets the message id (a deterministic id makes a re-send deduplicate).
    pub fn with_message_id(mut self, id: Uuid) -> Self {
        self.message_id = id;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::{ErrorKind, RETRYING};

    #[test]
    fn every_error_kind_reads_back_from_its_header_value() {
        for kind in ErrorKind::ALL {
            assert_eq!(ErrorKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(
            ErrorKind::parse(RETRYING),
            None,
            "a retry is not a dead letter"
        );
        assert_eq!(ErrorKind::parse("delivery_limit"), None);
    }
}
