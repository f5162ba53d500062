//! The operators' web console: dead letters, sagas and the hub's health in a browser.
//!
//! Server-rendered HTML ([`maud`] templates: every value is escaped), plain forms that POST, no
//! script. It calls the very functions the CLI calls ([`super::dlq`], [`super::sagas`]) with the
//! logged-in operator's name, so a replay from the console and one from `hub dlq replay` leave the
//! same rows in `ops_audit`.
//!
//! It listens on its own address (`HUB_CONSOLE_ADDR`, loopback by default), never on the
//! callbacks' port, and runs only when `HUB_CONSOLE_USERS` names at least one operator.
//!
//! - **Who.** Operators and their argon2 hashes come from configuration ([`auth`]); a failed
//!   login is audited and a name that fails too often is locked for a while, and the console
//!   checks at most `HUB_CONSOLE_LOGIN_RATE` passwords a second over every name.
//! - **Sessions** live in memory: a random 32-byte id in an `HttpOnly`, `SameSite=Strict`
//!   cookie, ending after 8 hours or 30 idle minutes (a restart logs everyone out). Served over
//!   TLS (`HUB_CONSOLE_BEHIND_TLS`, required in production mode) the cookies are `Secure` and
//!   `__Host-` prefixed.
//! - **CSRF.** Every form carries the session's token, checked on every POST before any
//!   handler runs; the login form has its own (double-submit cookie).
//! - **Personal data** is shown masked only: there is no unmask in the console.

pub mod auth;
mod chart;
pub mod cli;
mod dead_letters;
pub mod health;
mod layout;
mod login_rate;
pub mod monitor;
mod sagas;
mod signed_in;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use contracts::Topology;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::config::{ConsoleConfig, ConsoleUsers};
use crate::sagas::SagaTypes;
use hub_runtime::app::{Background, Running};
use hub_runtime::broker::{Broker, Publisher};
use hub_runtime::health::Readiness;

use auth::{Limiter, Sessions};
use health::ExternalSystem;

/// What the console is given at start: where to listen, who may log in, which external systems
/// the health page checks.
#[derive(Debug, Clone)]
pub struct ConsoleSettings {
    /// Listen address.
    pub addr: SocketAddr,
    /// Operators and their password hashes.
    pub users: ConsoleUsers,
    /// The external systems the health page probes.
    pub systems: Vec<ExternalSystem>,
    /// How long one probe of an external system may take.
    pub probe_timeout: Duration,
    /// Session lifetime and idle limit, and the login lock-out.
    pub limits: auth::Limits,
    /// Served over TLS (behind a TLS-terminating proxy): `__Host-` and `Secure` cookies.
    pub secure_cookies: bool,
    /// How often the monitor's charts are sampled ([`monitor`]).
    pub sample_interval: Duration,
}

/// The running hub's parts the console works with.
#[derive(Debug, Clone)]
pub struct HubParts {
    /// The database.
    pub pool: PgPool,
    /// The namespace's topology (the health page's queues).
    pub topology: Arc<Topology>,
    /// The broker user the hub publishes as (replays must carry it).
    pub broker_user: String,
    /// The hub's broker connection (queue depths).
    pub broker: Broker,
    /// The hub's confirming publisher (replays).
    pub publisher: Arc<Publisher>,
    /// The saga types this hub runs (cancel).
    pub sagas: Arc<SagaTypes>,
    /// Readiness, as `GET /readyz` sees it.
    pub readiness: Readiness,
}

/// The console's shared state.
#[derive(Debug)]
pub(crate) struct Console {
    hub: HubParts,
    users: ConsoleUsers,
    /// Verified against when the name is unknown, so a wrong name takes as long as a wrong
    /// password and names cannot be probed by timing.
    decoy_hash: String,
    sessions: Sessions,
    limiter: Limiter,
    /// Password checks per second, over every name.
    login_rate: login_rate::LoginRate,
    cookies: auth::Cookies,
    /// The external systems, each with the client its probes go through.
    systems: Vec<health::Probed>,
    probe_timeout: Duration,
    /// The monitor's samples of the last hour, and how often they are taken.
    monitor: monitor::Ring,
    sample_interval: Duration,
    shutdown: CancellationToken,
}

/// The console as a background task of a hub's plan, or `None` (with a log line saying how to
/// enable it) when no operator is configured. The health page probes `systems`.
pub fn background(config: &ConsoleConfig, systems: Vec<ExternalSystem>) -> Option<Background> {
    if config.users.is_empty() {
        tracing::info!(
            "the operators' console is off: set HUB_CONSOLE_USERS (see `hub console hash-password`) to run it"
        );
        return None;
    }
    let settings = ConsoleSettings {
        addr: config.addr,
        users: config.users.clone(),
        systems,
        probe_timeout: Duration::from_secs(2),
        limits: auth::Limits {
            login_rate: config.login_rate,
            ..auth::Limits::default()
        },
        secure_cookies: config.behind_tls,
        sample_interval: config.sample_interval,
    };
    Some(task(settings))
}

/// The console with these settings as a background task.
pub fn task(settings: ConsoleSettings) -> Background {
    Box::new(move |ctx, running: &Running, shutdown| {
        let hub = HubParts {
            pool: ctx.pool.clone(),
            topology: ctx.topology.clone(),
            broker_user: ctx.broker_user.clone(),
            broker: running.broker.clone(),
            publisher: running.publisher.clone(),
            sagas: running.sagas.clone(),
            readiness: running.readiness.clone(),
        };
        Box::pin(serve(settings, hub, shutdown))
    })
}

/// Serves the console on `settings.addr` until `shutdown`.
pub async fn serve(
    settings: ConsoleSettings,
    hub: HubParts,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(settings.addr)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot listen for the operators' console on {}: {e}; set HUB_CONSOLE_ADDR to a free address",
                settings.addr
            )
        })?;
    let decoy_hash = tokio::task::spawn_blocking(|| {
        hub_runtime::secrets::hash_secret(&mut rand::rng(), &auth::random_token())
    })
    .await?
    .map_err(|f| anyhow::anyhow!("console: {}", f.reason))?;
    let systems = health::probed(settings.systems, settings.probe_timeout)?;
    let console = Arc::new(Console {
        hub,
        users: settings.users,
        decoy_hash,
        sessions: Sessions::new(settings.limits),
        limiter: Limiter::new(settings.limits),
        login_rate: login_rate::LoginRate::new(settings.limits.login_rate, Instant::now()),
        cookies: auth::Cookies {
            secure: settings.secure_cookies,
        },
        systems,
        probe_timeout: settings.probe_timeout,
        monitor: monitor::Ring::new(settings.sample_interval, monitor::WINDOW),
        sample_interval: settings.sample_interval,
        shutdown: shutdown.clone(),
    });
    let sampler = tokio::spawn(monitor::run(console.clone(), settings.sample_interval));
    tracing::info!(
        addr = %settings.addr,
        operators = ?console.users,
        behind_tls = settings.secure_cookies,
        login_rate = settings.limits.login_rate,
        sample_interval = ?settings.sample_interval,
        "operators' console listening"
    );
    let served = axum::serve(
        listener,
        router(console).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await })
    .await;
    // The sampler ends with the shutdown; if serving failed, it is stopped here.
    sampler.abort();
    let _ = sampler.await;
    served?;
    Ok(())
}

fn router(console: Arc<Console>) -> Router {
    let signed_in = Router::new()
        .route("/", get(|| async { Redirect::to("/dead-letters") }))
        .route("/logout", post(auth::logout))
        .route("/dead-letters", get(dead_letters::index))
        .route("/dead-letters/{id}", get(dead_letters::letter))
        .route(
            "/dead-letters/{id}/replay",
            post(dead_letters::replay_letter),
        )
        .route(
            "/dead-letters/{id}/discard",
            post(dead_letters::discard_letter),
        )
        .route(
            "/dead-letters/groups/{key}/replay",
            post(dead_letters::replay_group),
        )
        .route(
            "/dead-letters/groups/{key}/discard",
            post(dead_letters::discard_group),
        )
        .route("/sagas", get(sagas::index))
        .route("/sagas/search", post(sagas::search))
        .route("/sagas/{id}", get(sagas::saga))
        .route("/sagas/{id}/retry-step", post(sagas::retry_step))
        .route("/sagas/{id}/cancel", post(sagas::cancel))
        .route("/health", get(health::page))
        .route("/monitor", get(monitor::page))
        .route_layer(middleware::from_fn_with_state(
            console.clone(),
            auth::require_session,
        ));
    Router::new()
        .route("/login", get(auth::login_page).post(auth::login))
        .merge(signed_in)
        .fallback(not_found)
        .layer(middleware::from_fn(protect))
        .with_state(console)
}

/// Headers on every answer: nothing is cached (pages hold personal data, masked or not), no
/// page may be framed, no script runs, forms post only here, no referrer leaves.
async fn protect(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let policy = layout::content_security_policy();
    if let Ok(v) = HeaderValue::from_str(&policy) {
        headers.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

async fn not_found() -> Response {
    layout::plain_page(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no such page. Go back to the dead letters.",
    )
}

/// A 303 to `location` (after a POST: the browser GETs it).
fn see_other(location: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(
            header::LOCATION,
            HeaderValue::from_str(location).unwrap_or(HeaderValue::from_static("/")),
        )],
    )
        .into_response()
}

/// A failure no operator can fix from the page (the database is down): logged, and a short page.
fn internal(what: &str, e: &dyn std::fmt::Display) -> Response {
    tracing::warn!(error = %e, "console: {what} failed");
    layout::plain_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Not available",
        &format!("{what} failed: {e}. Try again in a moment."),
    )
}

/// A reason as typed: trimmed, `None` when blank.
fn reason(text: &str) -> Option<String> {
    let t = text.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blank_reason_is_none() {
        assert_eq!(reason("  "), None);
        assert_eq!(reason(" MVD is back "), Some("MVD is back".into()));
    }
}
