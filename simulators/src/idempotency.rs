//! Idempotency keys, shared by every simulator's `POST` endpoints. The real systems dedupe a
//! `POST` by its `Idempotency-Key` header, and the adapters rely on that when they retry after a
//! timeout; the simulators must behave the same so that a missing or unstable key shows up as a
//! second SMS or a second reconciliation in a test.
//!
//! The store maps a key to a fingerprint of the request (method and path, and the body bytes)
//! and the response given (status and JSON). The same key with the same request returns the
//! stored response without running the handler again; the same key with another request is
//! `409 idempotency_conflict`. A request without the header is served every time (no dedupe).
//! A `400` (malformed request) is not stored, so the key can be used again with a corrected body.
//! Keys are kept up to the simulator's [`crate::Retention`]: at most `keys` of them (the oldest
//! dropped first), none longer than `max_age`. A key dropped is a key never seen: a retry that
//! comes later than that is served as a new request (see README.md, "Retention", for why the
//! defaults outlast the hub's retries).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Mutex, PoisonError};

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::error::ApiError;
use crate::retention::{Bounded, Limit};

/// The request header carrying the key.
pub(crate) const HEADER: &str = "idempotency-key";

/// The response header set on a replayed response.
pub(crate) const REPLAYED_HEADER: &str = "idempotent-replayed";

/// The longest key accepted.
const MAX_KEY_LEN: usize = 255;

/// A stored response.
#[derive(Debug, Clone)]
struct Stored {
    fingerprint: u64,
    status: StatusCode,
    body: Value,
}

/// The keys seen by one simulator, the newest up to its limit.
#[derive(Debug)]
pub(crate) struct IdempotencyStore {
    entries: Mutex<Bounded<String, Stored>>,
}

impl IdempotencyStore {
    /// An empty store keeping keys up to `limit`.
    pub(crate) fn new(limit: Limit) -> Self {
        IdempotencyStore {
            entries: Mutex::new(Bounded::new(limit)),
        }
    }

    /// Answers a `POST` to `route` with `body`: runs `effect` unless the request's key was seen.
    ///
    /// `effect` runs under the store's lock, so two concurrent requests with one key have one
    /// effect; it must be quick and must not wait.
    pub(crate) fn run(
        &self,
        headers: &HeaderMap,
        route: &str,
        body: &[u8],
        effect: impl FnOnce() -> Result<(StatusCode, Value), ApiError>,
    ) -> Response {
        let key = match key(headers) {
            Ok(Some(key)) => key,
            Ok(None) => return respond(effect()),
            Err(e) => return e.into_response(),
        };
        let fingerprint = fingerprint(route, body);
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(stored) = entries.get(&key) {
            if stored.fingerprint != fingerprint {
                return ApiError::new(
                    StatusCode::CONFLICT,
                    "idempotency_conflict",
                    "this Idempotency-Key was used with a different request",
                )
                .into_response();
            }
            let mut response = (stored.status, Json(stored.body.clone())).into_response();
            response
                .headers_mut()
                .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
            return response;
        }
        let outcome = effect();
        let (status, body) = match &outcome {
            Ok((status, body)) => (*status, body.clone()),
            Err(e) => (e.status, e.body()),
        };
        if status != StatusCode::BAD_REQUEST {
            entries.insert(
                key,
                Stored {
                    fingerprint,
                    status,
                    body,
                },
            );
        }
        respond(outcome)
    }
}

fn respond(outcome: Result<(StatusCode, Value), ApiError>) -> Response {
    match outcome {
        Ok((status, body)) => (status, Json(body)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// The request's key: `None` without the header; 1-255 visible ASCII characters otherwise.
fn key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(HEADER) else {
        return Ok(None);
    };
    let invalid = || {
        ApiError::invalid_request(format!(
            "Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters (a UUID)"
        ))
    };
    let key = value.to_str().map_err(|_| invalid())?.trim();
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid());
    }
    Ok(Some(key.to_owned()))
}

fn fingerprint(route: &str, body: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    route.hash(&mut hasher);
    body.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::cell::Cell;
    use std::time::Duration;

    fn store() -> IdempotencyStore {
        IdempotencyStore::new(Limit::new(100, Duration::from_secs(3600)))
    }

    fn with_key(key: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(HEADER, HeaderValue::from_str(key).expect("a header value"));
        headers
    }

    #[test]
    fn same_key_same_body_runs_once() {
        let store = store();
        let runs = Cell::new(0);
        let effect = || {
            runs.set(runs.get() + 1);
            Ok((StatusCode::ACCEPTED, json!({"n": runs.get()})))
        };
        let first = store.run(&with_key("k1"), "POST /x", b"{}", effect);
        let second = store.run(&with_key("k1"), "POST /x", b"{}", effect);
        assert_eq!(first.status(), StatusCode::ACCEPTED);
        assert_eq!(second.status(), StatusCode::ACCEPTED);
        assert!(second.headers().contains_key(REPLAYED_HEADER));
        assert_eq!(runs.get(), 1);
    }

    #[test]
    fn same_key_other_body_is_a_conflict() {
        let store = store();
        let ok = || Ok((StatusCode::OK, json!({})));
        store.run(&with_key("k1"), "POST /x", b"{\"a\":1}", ok);
        let second = store.run(&with_key("k1"), "POST /x", b"{\"a\":2}", ok);
        assert_eq!(second.status(), StatusCode::CONFLICT);
    }

    #[test]
    fn no_key_runs_every_time_and_a_400_is_not_stored() {
        let store = store();
        let runs = Cell::new(0);
        let effect = || {
            runs.set(runs.get() + 1);
            Ok((StatusCode::OK, json!({})))
        };
        store.run(&HeaderMap::new(), "POST /x", b"{}", effect);
        store.run(&HeaderMap::new(), "POST /x", b"{}", effect);
        assert_eq!(runs.get(), 2);

        let bad = || Err(ApiError::invalid_request("bad"));
        let first = store.run(&with_key("k2"), "POST /x", b"{", bad);
        assert_eq!(first.status(), StatusCode::BAD_REQUEST);
        let fixed = store.run(&with_key("k2"), "POST /x", b"{}", effect);
        assert_eq!(fixed.status(), StatusCode::OK);
        assert_eq!(runs.get(), 3);
    }
}

#[cfg(test)]
mod bound_tests {
    use super::*;
    use serde_json::json;
    use std::cell::Cell;
    use std::time::Duration;

    fn with_key(key: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(HEADER, HeaderValue::from_str(key).expect("a header value"));
        headers
    }

    #[test]
    fn past_its_bound_the_oldest_key_is_forgotten_and_its_retry_runs_anew() {
        let store = IdempotencyStore::new(Limit::new(3, Duration::from_secs(3600)));
        let runs = Cell::new(0);
        let effect = || {
            runs.set(runs.get() + 1);
            Ok((StatusCode::ACCEPTED, json!({"n": runs.get()})))
        };
        for key in ["k1", "k2", "k3", "k4"] {
            store.run(&with_key(key), "POST /x", b"{}", effect);
        }
        assert_eq!(runs.get(), 4);
        // The newest are still deduplicated.
        let newest = store.run(&with_key("k4"), "POST /x", b"{}", effect);
        assert!(newest.headers().contains_key(REPLAYED_HEADER));
        let kept = store.run(&with_key("k2"), "POST /x", b"{}", effect);
        assert!(kept.headers().contains_key(REPLAYED_HEADER));
        assert_eq!(runs.get(), 4);
        // The oldest was dropped: its very late retry is a new request.
        let late = store.run(&with_key("k1"), "POST /x", b"{}", effect);
        assert_eq!(late.status(), StatusCode::ACCEPTED);
        assert!(!late.headers().contains_key(REPLAYED_HEADER));
        assert_eq!(runs.get(), 5);
    }
}
