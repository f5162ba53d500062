//! Reading a delivery found on a dead-letter or unrouted queue into a [`DeadLetter`]: what the
//! hub's `x-hub-*` headers say, else what the broker's `x-death` says, else what is known.

use chrono::{DateTime, TimeZone, Utc};
use contracts::metadata::RETRYING;
use contracts::{Topology, headers};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{DEAD_LETTER_ID, DELIVERY_COUNT, DeadLetter, DeadLetterKind, LetterStatus, REPLAYED};
use super::{Source, clean};

/// Reads a letter found on `source` (delivered from `exchange` with `routing_key`, its
/// properties as [`crate::broker::properties_to_json`] gives them) and taken at `received_at`.
/// Pure: the same delivery always reads the same, so its fingerprint is stable. Its id is 0
/// until [`super::keep`] stores it.
pub fn read_letter(
    topology: &Topology,
    source: &Source,
    exchange: &str,
    routing_key: &str,
    properties: Value,
    body: &[u8],
    received_at: DateTime<Utc>,
) -> DeadLetter {
    let said = Headers(&properties);
    let mut failure = Failure::from_hub(&said);
    let (error_kind, error) = match source {
        Source::Unrouted => (
            DeadLetterKind::Unrouted,
            format!("no queue is bound for routing key {routing_key:?} on exchange {exchange:?}"),
        ),
        Source::Dead { short } => {
            let work_queue = topology.work_queue(short);
            match broker_death(&said, &work_queue) {
                Some(death) => {
                    failure.complete_from(&death, &said);
                    death.cause(&work_queue, said.text(headers::ERROR_TEXT))
                }
                None => hub_cause(&said),
            }
        }
    };
    let first_failure_at = said.time(headers::FIRST_FAILURE).or(failure.last_at);
    let mut letter = DeadLetter {
        id: 0,
        message_id: said
            .property("message_id")
            .and_then(|id| Uuid::parse_str(&id).ok()),
        message_type: said.property("type"),
        queue: source.queue().to_owned(),
        original_exchange: failure.exchange.unwrap_or_else(|| clean(exchange)),
        original_routing_key: failure.routing_key.unwrap_or_else(|| clean(routing_key)),
        error_kind,
        error: clean(&error),
        attempts: failure
            .attempts
            .and_then(|n| i32::try_from(n).ok())
            .unwrap_or_default(),
        first_failure_at,
        last_failure_at: failure.last_at,
        correlation_id: said.property("correlation_id"),
        body: body.to_vec(),
        fingerprint: None,
        status: LetterStatus::New,
        replay_count: 0,
        replayed_at: None,
        discarded_at: None,
        discard_reason: None,
        received_at,
        replayed_before: said
            .int(REPLAYED)
            .and_then(|n| i32::try_from(n).ok())
            .unwrap_or_default(),
        replayed_from: said
            .header(DEAD_LETTER_ID)
            .and_then(|v| json_int(v).or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))),
        properties,
    };
    // The consumer redacts what it dead-letters; a letter it never saw (unrouted, or
    // dead-lettered by the broker itself) is redacted here, before anything of it is kept.
    let types = [
        letter.message_type.as_deref(),
        Some(letter.original_routing_key.as_str()),
    ];
    if let Some(redacted) = redact(&types, body) {
        mark_redacted(&mut letter.properties);
        letter.body = redacted;
    }
    // Over the redacted body: a digest of a body holding a six-digit code would give the code
    // back to anyone who tries the million candidates.
    letter.fingerprint = Some(fingerprint(
        source.queue(),
        &letter.properties,
        &letter.body,
    ));
    letter
}

/// What replaces a body of a type that carries a secret when its secret fields cannot be found
/// (the body is not a JSON object).
const REDACTED_BODY: &[u8] =
    br#"{"redacted":"this message type carries a secret; its body is not kept in dead letters"}"#;

/// The body to keep instead of `body` when it holds a secret, or `None` to keep it as it came.
///
/// `types` are what may name its type (the `type` property, the routing key: an unrouted
/// message's routing key is usually its type, and a sender may leave the property out). Which
/// fields hold a secret is the contracts' one list ([`contracts::SECRET_FIELDS`], kept in sync
/// with the types by a test there); whatever its type, a scalar under a field named like a
/// secret ([`contracts::is_secret_field`]) is replaced too. The rest is kept, so an operator
/// still sees what the message was.
pub(crate) fn redact(types: &[Option<&str>], body: &[u8]) -> Option<Vec<u8>> {
    let sensitive = types.iter().flatten().any(|t| contracts::is_sensitive(t));
    match serde_json::from_slice::<Value>(body) {
        Ok(mut json) if json.is_object() => {
            let mut replaced = false;
            for t in types.iter().flatten() {
                replaced |= contracts::redact_secrets(t, &mut json);
            }
            replaced.then(|| serde_json::to_vec(&json).unwrap_or_else(|_| REDACTED_BODY.to_vec()))
        }
        // Nothing to find the secret in: the whole body goes.
        _ if sensitive => Some(REDACTED_BODY.to_vec()),
        Ok(_) | Err(_) => None,
    }
}

/// Marks `properties` as those of a redacted letter (the consumer's header), so the workbench
/// shows it and refuses to replay a body whose secret is gone.
fn mark_redacted(properties: &mut Value) {
    if !properties.is_object() {
        *properties = Value::Object(serde_json::Map::new());
    }
    let table = properties.as_object_mut().map(|p| {
        p.entry("headers")
            .or_insert_with(|| Value::Object(serde_json::Map::new()))
    });
    if let Some(table) = table {
        if !table.is_object() {
            *table = Value::Object(serde_json::Map::new());
        }
        if let Some(h) = table.as_object_mut() {
            h.insert(headers::REDACTED.to_owned(), Value::Bool(true));
        }
    }
}

/// The properties and headers of a delivery, as JSON, read by name.
struct Headers<'a>(&'a Value);

impl Headers<'_> {
    fn property(&self, name: &str) -> Option<String> {
        self.0.get(name).and_then(Value::as_str).map(clean)
    }

    fn header(&self, name: &str) -> Option<&Value> {
        self.0["headers"].get(name)
    }

    fn text(&self, name: &str) -> Option<String> {
        self.header(name).and_then(Value::as_str).map(clean)
    }

    fn int(&self, name: &str) -> Option<i64> {
        self.header(name).and_then(json_int)
    }

    fn time(&self, name: &str) -> Option<DateTime<Utc>> {
        self.header(name)
            .and_then(Value::as_str)
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc))
    }
}

/// What is known of how a letter failed: the hub's headers, completed from the broker's
/// `x-death` where the broker dead-lettered it.
struct Failure {
    exchange: Option<String>,
    routing_key: Option<String>,
    attempts: Option<i64>,
    last_at: Option<DateTime<Utc>>,
}

impl Failure {
    fn from_hub(said: &Headers<'_>) -> Self {
        Self {
            exchange: said.text(headers::ORIGINAL_EXCHANGE),
            routing_key: said.text(headers::ORIGINAL_ROUTING_KEY),
            attempts: said.int(headers::ATTEMPTS),
            last_at: said.time(headers::LAST_FAILURE),
        }
    }

    /// Fills in what the hub's headers do not say from the broker's death record; the broker's
    /// time is the last failure, and its redelivery count bounds the attempts from below.
    fn complete_from(&mut self, death: &Death<'_>, said: &Headers<'_>) {
        if self.exchange.is_none() {
            self.exchange = death.text("exchange");
        }
        if self.routing_key.is_none() {
            self.routing_key = death
                .0
                .get("routing-keys")
                .and_then(Value::as_array)
                .and_then(|keys| keys.first())
                .and_then(Value::as_str)
                .map(str::to_owned);
        }
        if let Some(t) = death.0.get("time").and_then(json_int) {
            self.last_at = Utc.timestamp_opt(t, 0).single().or(self.last_at);
        }
        let deliveries = said.int(DELIVERY_COUNT).map(|n| n + 1);
        self.attempts = self.attempts.max(deliveries);
    }
}

/// One entry of a delivery's `x-death` header.
struct Death<'a>(&'a Value);

/// The broker's own dead-lettering (delivery limit, reject) of `work_queue`: the latest
/// `x-death` entry, when it names the work queue. Entries of the retry tiers are the hub's
/// delayed retries, not deaths.
fn broker_death<'a>(said: &Headers<'a>, work_queue: &str) -> Option<Death<'a>> {
    said.0["headers"]
        .get("x-death")
        .and_then(Value::as_array)
        .and_then(|deaths| deaths.first())
        .filter(|d| d.get("queue").and_then(Value::as_str) == Some(work_queue))
        .map(Death)
}

impl Death<'_> {
    fn text(&self, name: &str) -> Option<String> {
        self.0.get(name).and_then(Value::as_str).map(str::to_owned)
    }

    /// The kind (the broker's reason) and the error in words, with the hub's last failure
    /// when it said one.
    fn cause(&self, work_queue: &str, last_failure: Option<String>) -> (DeadLetterKind, String) {
        let reason = self.text("reason").unwrap_or_else(|| "unknown".to_owned());
        let mut error = match reason.as_str() {
            "delivery_limit" => format!(
                "the broker dead-lettered it from {work_queue}: delivered too many times without an ack (x-delivery-limit)"
            ),
            "rejected" => {
                format!("the broker dead-lettered it from {work_queue}: a consumer rejected it")
            }
            other => format!("the broker dead-lettered it from {work_queue}: {other}"),
        };
        if let Some(last) = last_failure {
            error.push_str(&format!("; last failure: {last}"));
        }
        (DeadLetterKind::from(reason.as_str()), error)
    }
}

/// The kind and error the hub's consumer wrote, or what can be said without them.
fn hub_cause(said: &Headers<'_>) -> (DeadLetterKind, String) {
    let kind = said
        .text(headers::ERROR_KIND)
        .filter(|k| k != RETRYING)
        .map(|k| DeadLetterKind::from(k.as_str()));
    match (kind, said.text(headers::ERROR_TEXT)) {
        (Some(kind), Some(error)) => (kind, error),
        (Some(kind), None) => (kind, "no reason given (x-hub-error missing)".to_owned()),
        (None, error) => (
            DeadLetterKind::Unknown,
            error.unwrap_or_else(|| {
                "dead letter without the hub's headers (x-hub-error-kind missing)".to_owned()
            }),
        ),
    }
}

/// Digest of a delivery: its queue, its properties without the broker's redelivery count, its
/// body.
fn fingerprint(queue: &str, properties: &Value, body: &[u8]) -> String {
    let mut stable = properties.clone();
    if let Some(h) = stable.get_mut("headers").and_then(Value::as_object_mut) {
        h.remove(DELIVERY_COUNT);
    }
    let mut hash = Sha256::new();
    hash.update(queue.as_bytes());
    hash.update([0]);
    hash.update(stable.to_string().as_bytes());
    hash.update([0]);
    hash.update(body);
    hex::encode(hash.finalize())
}

fn json_int(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_u64().and_then(|n| i64::try_from(n).ok()))
}
