//! What every simulator's HTTP server has in common: its context (name, faults, shutdown), the
//! finishing touches on its router (the `/sim/` control routes, the fault layer, JSON 404/405),
//! and serving it until shutdown. Kept in one place so the simulators behave alike.

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::SimKind;
use crate::error;
use crate::faults::{self, Faults};

/// What every handler of one simulator may need besides its own state.
#[derive(Debug, Clone)]
pub(crate) struct SimContext {
    pub(crate) kind: SimKind,
    pub(crate) faults: Faults,
    pub(crate) shutdown: CancellationToken,
    /// How much its stores keep.
    pub(crate) retention: crate::Retention,
}

impl SimContext {
    /// The context of simulator `kind`, keeping the default [`crate::Retention`].
    pub(crate) fn new(kind: SimKind, shutdown: CancellationToken) -> Self {
        SimContext {
            kind,
            faults: Faults::default(),
            shutdown,
            retention: crate::Retention::default(),
        }
    }

    /// The same, keeping `retention`.
    pub(crate) fn with_retention(mut self, retention: crate::Retention) -> Self {
        self.retention = retention;
        self
    }
}

/// Adds the common `/sim/` routes, the simulator's OpenAPI document (`/openapi.json`), its API
/// health (`/healthz`), the JSON fallbacks and the fault layer to a simulator's own routes.
pub(crate) fn finish(routes: Router, ctx: SimContext) -> Router {
    routes
        .merge(faults::sim_routes(ctx.clone()))
        .merge(
            Router::new()
                .route(
                    crate::openapi::PATH,
                    axum::routing::get(crate::openapi::serve),
                )
                .route(API_HEALTH, axum::routing::get(api_health))
                .with_state(ctx.clone()),
        )
        .fallback(error::no_route)
        .method_not_allowed_fallback(error::wrong_method)
        .layer(axum::middleware::from_fn_with_state(
            ctx,
            faults::fault_layer,
        ))
}

/// The API's health: what the hub's console probes. Unlike `/sim/health` it is under the fault
/// layer, so it answers as the API does: late with injected latency, `503` with injected errors.
pub(crate) const API_HEALTH: &str = "/healthz";

async fn api_health(
    axum::extract::State(ctx): axum::extract::State<SimContext>,
) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({"status": "ok", "simulator": ctx.kind.name()}))
}

/// How a simulator listens: plain HTTP, or HTTPS with the run's server config.
pub(crate) enum Listening {
    Plain(TcpListener),
    Tls(crate::tls::TlsListener),
}

/// Serves until `shutdown` is cancelled, then lets the requests in flight finish.
pub(crate) async fn serve(
    kind: SimKind,
    listener: Listening,
    router: Router,
    shutdown: CancellationToken,
) {
    let result = match listener {
        Listening::Plain(listener) => serve_on(listener, router, shutdown).await,
        Listening::Tls(listener) => serve_on(listener, router, shutdown).await,
    };
    match result {
        Ok(()) => tracing::info!(simulator = %kind, "simulator stopped"),
        Err(e) => tracing::error!(simulator = %kind, error = %e, "simulator failed"),
    }
}

async fn serve_on<L>(
    listener: L,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}
