//! Fault injection, shared by every simulator: integrators must see their adapters cope with a
//! slow, failing or hanging system and with lost or repeated delivery reports, so the faults are
//! set at run time through `/sim/faults` and applied by one axum middleware to the API paths
//! (every path but `/sim/` and `/openapi.json`, so a test can always control and inspect a
//! simulator).

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::{ApiError, parse_json};
use crate::server::SimContext;

/// How long a call picked by `timeout_rate` is held before it is answered.
pub(crate) const TIMEOUT_HOLD: Duration = Duration::from_secs(60);

/// The largest `latency_ms` (and `notification_delay_ms`) accepted (ten minutes).
const MAX_LATENCY_MS: u64 = 600_000;

/// The faults in force on one simulator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub(crate) struct FaultSettings {
    pub(crate) latency_ms: u64,
    pub(crate) error_rate: f64,
    pub(crate) timeout_rate: f64,
    pub(crate) drop_callback_rate: f64,
    pub(crate) duplicate_callback_rate: f64,
    /// How long each ERIP notification waits before its first attempt: notifications arrive
    /// late, after the hub has moved on, as with a real system's queue.
    pub(crate) notification_delay_ms: u64,
}

/// A `PUT /sim/faults` body: the fields given replace the current values, the others stay.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultPatch {
    latency_ms: Option<u64>,
    error_rate: Option<f64>,
    timeout_rate: Option<f64>,
    drop_callback_rate: Option<f64>,
    duplicate_callback_rate: Option<f64>,
    notification_delay_ms: Option<u64>,
}

impl FaultPatch {
    fn apply(&self, mut settings: FaultSettings) -> Result<FaultSettings, ApiError> {
        if let Some(latency_ms) = self.latency_ms {
            if latency_ms > MAX_LATENCY_MS {
                return Err(ApiError::invalid_request(format!(
                    "latency_ms must be at most {MAX_LATENCY_MS}"
                )));
            }
            settings.latency_ms = latency_ms;
        }
        if let Some(delay_ms) = self.notification_delay_ms {
            if delay_ms > MAX_LATENCY_MS {
                return Err(ApiError::invalid_request(format!(
                    "notification_delay_ms must be at most {MAX_LATENCY_MS}"
                )));
            }
            settings.notification_delay_ms = delay_ms;
        }
        let rates = [
            ("error_rate", self.error_rate, &mut settings.error_rate),
            (
                "timeout_rate",
                self.timeout_rate,
                &mut settings.timeout_rate,
            ),
            (
                "drop_callback_rate",
                self.drop_callback_rate,
                &mut settings.drop_callback_rate,
            ),
            (
                "duplicate_callback_rate",
                self.duplicate_callback_rate,
                &mut settings.duplicate_callback_rate,
            ),
        ];
        for (name, value, slot) in rates {
            if let Some(value) = value {
                if !(0.0..=1.0).contains(&value) {
                    return Err(ApiError::invalid_request(format!(
                        "{name} must be between 0.0 and 1.0"
                    )));
                }
                *slot = value;
            }
        }
        Ok(settings)
    }
}

/// The faults of one simulator, shared by its handlers and its delivery tasks.
#[derive(Debug, Clone, Default)]
pub(crate) struct Faults(Arc<RwLock<FaultSettings>>);

impl Faults {
    /// The faults in force now.
    pub(crate) fn get(&self) -> FaultSettings {
        *self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn set(&self, settings: FaultSettings) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = settings;
    }
}

/// True with probability `rate` (0 never, 1 always).
pub(crate) fn roll(rate: f64) -> bool {
    rate > 0.0 && rand::random::<f64>() < rate
}

/// The middleware: on the API paths (every path but `/sim/`, since the back-offices' are not
/// under `/api/`), waits `latency_ms`, holds a `timeout_rate` share of calls for
/// [`TIMEOUT_HOLD`] (then answers them normally), and answers an `error_rate` share with
/// `503 unavailable` without running the handler. Shutdown cuts every wait short with a 503.
pub(crate) async fn fault_layer(
    State(ctx): State<SimContext>,
    req: Request,
    next: Next,
) -> Response {
    if req.uri().path().starts_with("/sim/") || req.uri().path() == crate::openapi::PATH {
        return next.run(req).await;
    }
    let faults = ctx.faults.get();
    if faults.latency_ms > 0 && !wait(&ctx, Duration::from_millis(faults.latency_ms)).await {
        return unavailable("the simulator is shutting down");
    }
    if roll(faults.timeout_rate) {
        tracing::debug!(simulator = %ctx.kind, "holding a call (timeout fault)");
        if !wait(&ctx, TIMEOUT_HOLD).await {
            return unavailable("the simulator is shutting down");
        }
    }
    if roll(faults.error_rate) {
        tracing::debug!(simulator = %ctx.kind, "failing a call (error fault)");
        return unavailable("injected fault: the service is temporarily unavailable");
    }
    next.run(req).await
}

/// Sleeps unless shutdown comes first; true when the whole time passed.
async fn wait(ctx: &SimContext, duration: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(duration) => true,
        () = ctx.shutdown.cancelled() => false,
    }
}

fn unavailable(message: &str) -> Response {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message).into_response()
}

/// `GET/PUT/DELETE /sim/faults` and `GET /sim/health`.
pub(crate) fn sim_routes(ctx: SimContext) -> Router {
    Router::new()
        .route(
            "/sim/faults",
            get(get_faults).put(put_faults).delete(delete_faults),
        )
        .route("/sim/health", get(health))
        .with_state(ctx)
}

async fn get_faults(State(ctx): State<SimContext>) -> Json<FaultSettings> {
    Json(ctx.faults.get())
}

async fn put_faults(
    State(ctx): State<SimContext>,
    body: Bytes,
) -> Result<Json<FaultSettings>, ApiError> {
    let patch: FaultPatch = parse_json(&body)?;
    let settings = patch.apply(ctx.faults.get())?;
    ctx.faults.set(settings);
    tracing::info!(simulator = %ctx.kind, faults = ?settings, "faults set");
    Ok(Json(settings))
}

async fn delete_faults(State(ctx): State<SimContext>) -> Json<FaultSettings> {
    ctx.faults.set(FaultSettings::default());
    tracing::info!(simulator = %ctx.kind, "faults cleared");
    Json(FaultSettings::default())
}

async fn health(State(ctx): State<SimContext>) -> Json<serde_json::Value> {
    Json(json!({"status": "ok", "simulator": ctx.kind.name()}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_keeps_the_missing_fields() {
        let before = FaultSettings {
            latency_ms: 50,
            error_rate: 0.5,
            ..FaultSettings::default()
        };
        let patch: FaultPatch = parse_json(br#"{"timeout_rate": 0.25}"#).expect("a patch");
        let after = patch.apply(before).expect("valid");
        assert_eq!(after.latency_ms, 50);
        assert_eq!(after.error_rate, 0.5);
        assert_eq!(after.timeout_rate, 0.25);
    }

    #[test]
    fn a_patch_rejects_rates_out_of_range_and_unknown_fields() {
        let patch: FaultPatch = parse_json(br#"{"error_rate": 1.5}"#).expect("a patch");
        assert!(patch.apply(FaultSettings::default()).is_err());
        assert!(parse_json::<FaultPatch>(br#"{"eror_rate": 0.5}"#).is_err());
    }

    #[test]
    fn roll_is_never_at_zero_and_always_at_one() {
        assert!((0..1000).all(|_| !roll(0.0)));
        assert!((0..1000).all(|_| roll(1.0)));
    }
}
