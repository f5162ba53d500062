//! The hub's two HTTP listeners: the external systems' callbacks on `HUB_HTTP_ADDR`, and the
//! operators' endpoints (`/health`, `/healthz`, `/readyz`, `/metrics`; see
//! [`hub_runtime::health`] and [`hub_runtime::metrics`]) on `HUB_OPS_ADDR`.
//!
//! They are apart because they face different parties: ERIP, the mobile operators and the
//! back-offices must reach the callbacks, while saga counts, queue names and database errors are
//! for the orchestrator and the monitoring only. The callbacks' listener answers 404 for the
//! operators' paths, and the operators' listener for the callbacks.
//!
//! The callbacks themselves live beside their systems' workers: the SMS delivery reports in
//! [`crate::external::sms::callback`], ERIP's notifications in
//! [`crate::external::erip::callback`], the back-offices' answers in
//! [`crate::external::backoffice::callback`]. What they share is here: a body limit, and a span
//! per callback that continues the trace of the call that caused it when the caller sends a
//! `traceparent` header, else starts one ([`hub_runtime::trace`]); the message a callback puts
//! on the bus carries it, and its log lines carry the trace id.

use axum::extract::{DefaultBodyLimit, FromRef, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use sqlx::PgPool;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::external::{backoffice, erip, sms};
use hub_runtime::health::Readiness;
use hub_runtime::metrics::{SagaCountCache, Snapshot, metrics};
use hub_runtime::trace::TraceContext;

use crate::external::CallbackState;
pub use crate::external::Callbacks;

mod openapi;

/// The hub's OpenAPI 3.1 document: its callbacks (served on `HUB_HTTP_ADDR`, where the
/// document itself is at `GET /openapi.json`) and the operators' endpoints (`HUB_OPS_ADDR`).
/// Deterministic, and naming no host, so a checked-in copy does not drift.
pub fn openapi() -> serde_json::Value {
    openapi::document()
}

/// What the callbacks' handlers share.
#[derive(Debug, Clone)]
struct AppState {
    pool: PgPool,
    app_id: String,
    callbacks: Arc<Callbacks>,
}

impl FromRef<AppState> for CallbackState {
    fn from_ref(state: &AppState) -> Self {
        CallbackState {
            pool: state.pool.clone(),
            app_id: state.app_id.clone(),
            callbacks: state.callbacks.clone(),
        }
    }
}

/// What the operators' endpoints read.
#[derive(Debug, Clone)]
struct OpsState {
    pool: PgPool,
    readiness: Readiness,
    saga_counts: Arc<SagaCountCache>,
}

/// Serves the external systems' callbacks on `addr` until `shutdown`.
pub async fn serve(
    addr: SocketAddr,
    pool: PgPool,
    app_id: String,
    callbacks: Callbacks,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen for callbacks on {addr}: {e}; set HUB_HTTP_ADDR to a free address"
        )
    })?;
    tracing::info!(%addr, "listening for callbacks");
    let app = router(AppState {
        pool,
        app_id,
        callbacks: Arc::new(callbacks),
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    Ok(())
}

/// Serves health and metrics on `addr`, an internal address, until `shutdown`.
pub async fn serve_ops(
    addr: SocketAddr,
    pool: PgPool,
    readiness: Readiness,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen for health and metrics on {addr}: {e}; set HUB_OPS_ADDR to a free address"
        )
    })?;
    tracing::info!(%addr, "serving health and metrics");
    let app = ops_router(OpsState {
        pool,
        readiness,
        saga_counts: Arc::new(SagaCountCache::default()),
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    Ok(())
}

/// The largest callback body the hub reads (256 KiB).
pub const CALLBACK_BODY_LIMIT: usize = 256 * 1024;

/// The callbacks' routes and the hub's OpenAPI document, and nothing else.
fn router(state: AppState) -> Router {
    callback_routes().with_state(state)
}

/// The callbacks' routes and the document, before their state.
fn callback_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/callbacks/sms/{operator}",
            post(sms::callback::delivery_report),
        )
        .route("/callbacks/erip", post(erip::callback::notification))
        .route(
            "/callbacks/authority/{authority}/{message_type}",
            post(backoffice::callback::answer),
        )
        .route_layer(middleware::from_fn(traced))
        // Callbacks are small JSON documents: a larger body is refused (413) before it is read
        // whole or parsed.
        .layer(DefaultBodyLimit::max(CALLBACK_BODY_LIMIT))
        .route(openapi::PATH, get(|| async { Json(openapi()) }))
}

/// The operators' routes: health and metrics.
fn ops_router(state: OpsState) -> Router {
    ops_routes().with_state(state)
}

/// The operators' routes, before their state.
fn ops_routes() -> Router<OpsState> {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/healthz", get(alive))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics_text))
}

/// Alive: the process serves HTTP.
async fn alive() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "alive"}))
}

/// Ready: 200 with the checks, or 503 naming the failing ones.
async fn ready(State(state): State<OpsState>) -> (StatusCode, Json<hub_runtime::health::Report>) {
    let report = state.readiness.check().await;
    let status = if report.is_ready() {
        StatusCode::OK
    } else {
        tracing::debug!(failing = ?report.failing, "not ready");
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report))
}

/// The process's metrics, with the gauges read now from this hub's database and broker.
async fn metrics_text(State(state): State<OpsState>) -> Response {
    let (unsent, lag) = match hub_runtime::metrics::outbox_lag(&state.pool).await {
        Some((unsent, lag)) => (Some(unsent), Some(lag)),
        None => (None, None),
    };
    let (sagas, open_sagas) = state
        .saga_counts
        .get_with_open(&state.pool)
        .await
        .unwrap_or_default();
    let snapshot = Snapshot {
        sagas,
        open_sagas,
        outbox_unsent: unsent,
        outbox_lag_seconds: lag,
        broker_connected: Some(state.readiness.broker_connected()),
    };
    let mut scraped = snapshot.registry();
    if let Some(terms) = crate::metrics::procedure_terms(&state.pool).await {
        crate::metrics::register_procedure_terms(&mut scraped, &terms);
    }
    let text = metrics().encode(&scraped);
    (
        [(header::CONTENT_TYPE, hub_runtime::metrics::CONTENT_TYPE)],
        text,
    )
        .into_response()
}

/// Puts a callback in a span of its own trace: a child of the caller's `traceparent`, or a new
/// trace. The handler finds the [`TraceContext`] among the request's extensions.
async fn traced(mut request: Request, next: Next) -> Response {
    let parent = request
        .headers()
        .get(adapters::TRACEPARENT_HEADER)
        .and_then(|v| v.to_str().ok());
    let span = tracing::info_span!(
        "callback",
        path = %request.uri().path(),
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
    );
    let trace = hub_runtime::trace::open(&span, parent.and_then(TraceContext::parse));
    request.extensions_mut().insert(trace);
    next.run(request).instrument(span).await
}

#[cfg(test)]
mod tests;
