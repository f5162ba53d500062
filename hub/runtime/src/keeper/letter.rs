//! The one dead-letter row type, [`DeadLetter`], with its typed kind and status. The keeper
//! writes it; the operators' workbench, saga inspection and console read it (and make views of
//! it where a page needs fewer fields).

use chrono::{DateTime, Utc};
use contracts::headers;
use contracts::metadata::ErrorKind;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// Why a message became a dead letter, as the `error_kind` column says it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DeadLetterKind {
    /// The hub's consumer dead-lettered it (`invalid_input`, `permanent`, `retries_exhausted`,
    /// `handler_panicked`).
    Consumer(ErrorKind),
    /// No queue was bound for it (`unrouted`).
    Unrouted,
    /// The broker dead-lettered it: delivered too many times without an ack
    /// (`delivery_limit`).
    DeliveryLimit,
    /// The broker dead-lettered it: a consumer rejected it (`rejected`).
    Rejected,
    /// It came without the hub's headers and without the broker's (`unknown`).
    Unknown,
    /// Any other text: another reason the broker gave (`expired`, `maxlen`), or a kind header
    /// the hub did not write. Kept as it came.
    Other(String),
}

impl DeadLetterKind {
    /// The column's text.
    pub fn as_str(&self) -> &str {
        match self {
            DeadLetterKind::Consumer(kind) => kind.as_str(),
            DeadLetterKind::Unrouted => "unrouted",
            DeadLetterKind::DeliveryLimit => "delivery_limit",
            DeadLetterKind::Rejected => "rejected",
            DeadLetterKind::Unknown => "unknown",
            DeadLetterKind::Other(text) => text,
        }
    }
}

impl From<&str> for DeadLetterKind {
    fn from(text: &str) -> Self {
        if let Some(kind) = ErrorKind::parse(text) {
            return DeadLetterKind::Consumer(kind);
        }
        match text {
            "unrouted" => DeadLetterKind::Unrouted,
            "delivery_limit" => DeadLetterKind::DeliveryLimit,
            "rejected" => DeadLetterKind::Rejected,
            "unknown" => DeadLetterKind::Unknown,
            other => DeadLetterKind::Other(other.to_owned()),
        }
    }
}

impl From<ErrorKind> for DeadLetterKind {
    fn from(kind: ErrorKind) -> Self {
        DeadLetterKind::Consumer(kind)
    }
}

impl std::str::FromStr for DeadLetterKind {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(DeadLetterKind::from(text))
    }
}

/// Where a dead letter stands with the operators, as the `status` column says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LetterStatus {
    /// Not yet replayed nor discarded (`new`).
    New,
    /// Replayed at least once (`replayed`).
    Replayed,
    /// Discarded (`discarded`).
    Discarded,
}

impl LetterStatus {
    /// Every status.
    pub const ALL: [LetterStatus; 3] = [
        LetterStatus::New,
        LetterStatus::Replayed,
        LetterStatus::Discarded,
    ];

    /// The column's text.
    pub fn as_str(self) -> &'static str {
        match self {
            LetterStatus::New => "new",
            LetterStatus::Replayed => "replayed",
            LetterStatus::Discarded => "discarded",
        }
    }
}

/// A status the `dead_letters` table does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a dead letter's status (new, replayed or discarded)")]
pub struct UnknownStatus(pub String);

impl std::str::FromStr for LetterStatus {
    type Err = UnknownStatus;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        LetterStatus::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| UnknownStatus(text.to_owned()))
    }
}

/// Text, display, serde, comparison with text and the `text` column, for an enum with
/// `as_str` and `FromStr`: both enums read and write the same text as the strings they replace.
macro_rules! text_column {
    ($ty:ty) => {
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        /// Compares with the column's text, so a test or a page reads `kind == "permanent"`.
        impl PartialEq<&str> for $ty {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl PartialEq<str> for $ty {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }

        impl sqlx::Type<sqlx::Postgres> for $ty {
            fn type_info() -> sqlx::postgres::PgTypeInfo {
                <&str as sqlx::Type<sqlx::Postgres>>::type_info()
            }

            fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <&str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
            }
        }

        impl sqlx::Encode<'_, sqlx::Postgres> for $ty {
            fn encode_by_ref(
                &self,
                buf: &mut sqlx::postgres::PgArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&str as sqlx::Encode<sqlx::Postgres>>::encode(self.as_str(), buf)
            }
        }

        impl<'r> sqlx::Decode<'r, sqlx::Postgres> for $ty {
            fn decode(
                value: sqlx::postgres::PgValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
                Ok(text.parse()?)
            }
        }
    };
}

text_column!(DeadLetterKind);
text_column!(LetterStatus);

/// One row of `dead_letters`: a dead letter as the keeper read it, and what operators did with
/// it since. The keeper's reading ([`super::read_letter`]) has id 0 until [`super::keep`]
/// stores it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct DeadLetter {
    /// Row id.
    pub id: i64,
    /// Property `message_id`, when it is a UUID.
    pub message_id: Option<Uuid>,
    /// Property `type`.
    pub message_type: Option<String>,
    /// Short name of the work queue it died on, or [`super::UNROUTED`].
    pub queue: String,
    /// Where it was first published.
    pub original_exchange: String,
    /// With which routing key.
    pub original_routing_key: String,
    /// Why it died.
    pub error_kind: DeadLetterKind,
    /// Why, one line.
    pub error: String,
    /// Failed handling attempts.
    pub attempts: i32,
    /// First failure.
    pub first_failure_at: Option<DateTime<Utc>>,
    /// Last failure.
    pub last_failure_at: Option<DateTime<Utc>>,
    /// Property `correlation_id`: the saga.
    pub correlation_id: Option<String>,
    /// Every property and header ([`crate::broker::properties_to_json`]).
    pub properties: Value,
    /// The body as it came, less any secret in the clear (see [`super`]; base64 in JSON).
    #[serde(serialize_with = "base64_bytes")]
    pub body: Vec<u8>,
    /// Identity of this delivery: see [`super`]. Not shown: it is the keeper's.
    #[serde(skip)]
    pub fingerprint: Option<String>,
    /// Where it stands with the operators.
    pub status: LetterStatus,
    /// How many times this row was replayed.
    pub replay_count: i32,
    /// Last replay.
    pub replayed_at: Option<DateTime<Utc>>,
    /// When it was discarded.
    pub discarded_at: Option<DateTime<Utc>>,
    /// Why.
    pub discard_reason: Option<String>,
    /// When the keeper took it.
    pub received_at: DateTime<Utc>,
    /// `x-hub-replayed`: replays of this message before it died this time.
    pub replayed_before: i32,
    /// `x-hub-dead-letter-id`: the row it was last replayed from.
    pub replayed_from: Option<i64>,
}

fn base64_bytes<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    use base64::Engine as _;
    s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// Every column of [`DeadLetter`], for a `SELECT`.
pub const COLUMNS: &str = "id, message_id, message_type, queue, original_exchange, \
     original_routing_key, error_kind, error, attempts, first_failure_at, last_failure_at, \
     correlation_id, properties, body, fingerprint, status, replay_count, replayed_at, \
     discarded_at, discard_reason, received_at, replayed_before, replayed_from";

impl DeadLetter {
    /// Its headers.
    pub fn headers(&self) -> Option<&Map<String, Value>> {
        self.properties.get("headers").and_then(Value::as_object)
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&Value> {
        self.headers()?.get(name)
    }

    /// A string header.
    pub fn header_str(&self, name: &str) -> Option<String> {
        self.header(name)?.as_str().map(str::to_owned)
    }

    /// An integer header.
    pub fn header_i64(&self, name: &str) -> Option<i64> {
        self.header(name)?.as_i64()
    }

    /// A property (`app_id`, `user_id`, `timestamp`, ...).
    pub fn property(&self, name: &str) -> Option<&Value> {
        self.properties.get(name)
    }

    /// The body as JSON, when it is.
    pub fn body_json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// Whether the consumer or the keeper replaced its body, or a secret in it, because it
    /// carried one: such a letter cannot be replayed.
    pub fn is_redacted(&self) -> bool {
        self.header(headers::REDACTED)
            .is_some_and(|v| v.as_bool() == Some(true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_statuses_read_and_write_the_columns_text() {
        for text in [
            "invalid_input",
            "permanent",
            "retries_exhausted",
            "handler_panicked",
            "unrouted",
            "delivery_limit",
            "rejected",
            "unknown",
            "expired",
        ] {
            let kind = DeadLetterKind::from(text);
            assert_eq!(kind.as_str(), text);
            assert_eq!(kind, text);
            assert_eq!(serde_json::to_value(&kind).ok(), Some(Value::from(text)));
        }
        assert_eq!(
            DeadLetterKind::from("permanent"),
            DeadLetterKind::Consumer(ErrorKind::Permanent)
        );
        assert_eq!(
            DeadLetterKind::from("expired"),
            DeadLetterKind::Other("expired".into())
        );
        for status in LetterStatus::ALL {
            assert_eq!(status.as_str().parse(), Ok(status));
        }
        assert!("lost".parse::<LetterStatus>().is_err());
        assert_eq!(
            serde_json::from_value::<LetterStatus>(Value::from("replayed")).ok(),
            Some(LetterStatus::Replayed)
        );
    }
}
