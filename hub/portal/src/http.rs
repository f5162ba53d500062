//! The hub's HTTP side: callbacks from external systems, and the operators' endpoints
//! (`/healthz`, `/readyz`, `/metrics`; see [`hub_runtime::health`] and [`hub_runtime::metrics`]).
//!
//! Each callback continues the trace of the call that caused it when the caller sends a
//! `traceparent` header, else starts one ([`hub_runtime::trace`]); the message it puts on the bus
//! carries it, and its log lines carry the trace id.
//!
//! An operator's delivery report is turned
//! into a `sms.delivery_reported.v1` message for the saga that sent the SMS, written to the
//! outbox in one transaction, so a report is never lost once it has been answered `200`.
//! Reports are deduplicated: a report's message id is derived from the operator's message id and
//! its status, and the saga's inbox drops the second copy.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use contracts::sms::{DeliveryReported, SmsPurpose};
use contracts::{Message, Metadata};
use sqlx::PgPool;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use hub_runtime::broker::Envelope;
use hub_runtime::health::Readiness;
use hub_runtime::metrics::{SagaCountCache, Snapshot, metrics};
use hub_runtime::store::outbox;
use hub_runtime::trace::TraceContext;

/// What the callbacks need to know besides the database.
#[derive(Clone)]
pub struct Callbacks {
    /// ERIP's shared secret for notification signatures.
    pub erip_secret: Vec<u8>,
    /// The full name of the procedure saga's queue (ERIP's events go there).
    pub procedure_queue: String,
    /// The bus exchange (HTTP back-offices' answers go there, as a queue authority's would).
    pub bus_exchange: String,
    /// The hub's own broker user: the bridge's messages carry it as `user_id`.
    pub bridge_user: String,
    /// Each HTTP authority's id and the secret its back-office signs with.
    pub authority_secrets: std::collections::HashMap<String, Vec<u8>>,
}

impl std::fmt::Debug for Callbacks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callbacks")
            .field("procedure_queue", &self.procedure_queue)
            .field("bus_exchange", &self.bus_exchange)
            .field("bridge_user", &self.bridge_user)
            .field(
                "authorities",
                &self.authority_secrets.keys().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
struct AppState {
    pool: PgPool,
    app_id: String,
    callbacks: Arc<Callbacks>,
    readiness: Readiness,
    saga_counts: Arc<SagaCountCache>,
}

/// Serves the callbacks and the operators' endpoints on `addr` until `shutdown`.
pub async fn serve(
    addr: SocketAddr,
    pool: PgPool,
    app_id: String,
    callbacks: Callbacks,
    readiness: Readiness,
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

fn router(state: AppState) -> Router {
    let callbacks = Router::new()
        .route("/callbacks/sms/{operator}", post(sms_report))
        .route("/callbacks/erip", post(erip_notification))
        .route(
            "/callbacks/authority/{authority}/{message_type}",
            post(authority_answer),
        )
        .route_layer(middleware::from_fn(traced))
        // Callbacks are small JSON documents: a larger body is refused (413) before it is read
        // whole or parsed.
        .layer(DefaultBodyLimit::max(CALLBACK_BODY_LIMIT));
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/healthz", get(alive))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics_text))
        .merge(callbacks)
        .with_state(state)
}

/// Alive: the process serves HTTP.
async fn alive() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "alive"}))
}

/// Ready: 200 with the checks, or 503 naming the failing ones.
async fn ready(State(state): State<AppState>) -> (StatusCode, Json<hub_runtime::health::Report>) {
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
async fn metrics_text(State(state): State<AppState>) -> Response {
    let (unsent, lag) = match hub_runtime::metrics::outbox_lag(&state.pool).await {
        Some((unsent, lag)) => (Some(unsent), Some(lag)),
        None => (None, None),
    };
    let snapshot = Snapshot {
        sagas: state.saga_counts.get(&state.pool).await.unwrap_or_default(),
        outbox_unsent: unsent,
        outbox_lag_seconds: lag,
        broker_connected: Some(state.readiness.broker_connected()),
    };
    let text = metrics().encode(&snapshot.registry());
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
    let trace = TraceContext::continue_or_start(parent);
    let span = tracing::info_span!(
        "callback",
        path = %request.uri().path(),
        trace_id = %trace.trace_id(),
        span_id = %trace.span_id(),
    );
    request.extensions_mut().insert(trace);
    next.run(request).instrument(span).await
}

async fn sms_report(
    State(state): State<AppState>,
    Path(operator): Path<String>,
    Extension(trace): Extension<TraceContext>,
    body: Bytes,
) -> (StatusCode, String) {
    let report = match adapters::sms::parse_delivery_report(&body) {
        Ok(r) => r,
        Err(f) => return (StatusCode::BAD_REQUEST, f.reason),
    };
    match record(&state, &report, trace).await {
        Ok(true) => (StatusCode::OK, "recorded".into()),
        // The worker has not committed the send yet (the operator was quicker): ask again.
        Ok(false) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("message of {operator} not known yet; retry"),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "delivery report not recorded; the operator will retry");
            (StatusCode::SERVICE_UNAVAILABLE, "try again later".into())
        }
    }
}

async fn record(
    state: &AppState,
    report: &adapters::sms::DeliveryReport,
    trace: TraceContext,
) -> Result<bool, sqlx::Error> {
    let mut tx = state.pool.begin().await?;
    let row: Option<(String, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT purpose, correlation_id, reply_to FROM sms_messages WHERE provider_message_id = $1",
    )
    .bind(&report.provider_message_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((purpose, correlation_id, reply_to)) = row else {
        return Ok(false);
    };
    let Some(reply_to) = reply_to else {
        // Nobody waits for this SMS's fate (a detached notification): accept and forget.
        return Ok(true);
    };
    let purpose: SmsPurpose = match serde_json::from_value(serde_json::Value::String(purpose)) {
        Ok(p) => p,
        Err(_) => return Ok(false),
    };
    let event = DeliveryReported {
        purpose,
        provider_message_id: report.provider_message_id.clone(),
        delivered: report.delivered,
        at: report.at,
    };
    let mut metadata = Metadata::new(DeliveryReported::TYPE.to_string(), state.app_id.clone())
        .with_message_id(Uuid::new_v5(
            &Uuid::NAMESPACE_URL,
            format!(
                "sms-report/{}/{}",
                report.provider_message_id, report.delivered
            )
            .as_bytes(),
        ));
    metadata.correlation_id = correlation_id;
    metadata.traceparent = Some(trace.to_string());
    let (exchange, routing_key) = (String::new(), reply_to);
    let body = contracts::encode(&event).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    outbox::insert(
        &mut tx,
        &[Envelope {
            exchange,
            routing_key,
            metadata,
            body,
        }],
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// ERIP's signed notification: verified (signature over the exact body, then its signed
/// `occurred_at` inside the acceptance window, see [`adapters::erip::verify_notification_at`]),
/// then turned into a message for the application's saga, found by the order number in its
/// state.
///
/// Replays change nothing. The first notification of each (order number, status) is recorded
/// in `erip_notifications` in the transaction that writes the saga's message; a copy — ERIP's
/// own retry, or a captured one re-sent — finds the row and is answered `200 already recorded`
/// with nothing written. The message id is derived from the order number and the status too, so
/// even without the row the saga's inbox would count it once. A notification about another
/// invoice than the one the application's saga holds is refused (`409`), whatever its signature.
async fn erip_notification(
    State(state): State<AppState>,
    Extension(trace): Extension<TraceContext>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let signature = headers
        .get("x-erip-signature")
        .and_then(|v| v.to_str().ok());
    let verified = adapters::erip::verify_notification_at(
        &state.callbacks.erip_secret,
        &body,
        signature,
        chrono::Utc::now(),
    );
    let n = match verified {
        Ok(n) => n,
        Err(f) => {
            tracing::warn!(reason = %f.reason, "ERIP notification refused");
            let status = if f.reason == adapters::erip::BAD_SIGNATURE {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::BAD_REQUEST
            };
            return (status, f.reason);
        }
    };
    match record_invoice_event(&state, &n, trace).await {
        Ok(Noted::Recorded) => (StatusCode::OK, "recorded".into()),
        Ok(Noted::AlreadyRecorded) => {
            tracing::info!(
                invoice = %n.invoice_id,
                event_id = %n.event_id,
                status = %n.status,
                "ERIP notification already recorded; nothing changes"
            );
            (StatusCode::OK, "already recorded".into())
        }
        Ok(Noted::UnknownOrder) => {
            // No application has this order number: nothing waits for it. Acknowledge, so ERIP
            // stops re-sending, and leave a trace for operators.
            tracing::warn!(invoice = %n.invoice_id, "ERIP notification for an unknown order number");
            (StatusCode::OK, "unknown order number".into())
        }
        Ok(Noted::OtherInvoice(expected)) => {
            tracing::warn!(
                invoice = %n.invoice_id,
                %expected,
                "ERIP notification about another invoice than the application's; refused"
            );
            (
                StatusCode::CONFLICT,
                format!(
                    "invoice {} is not the invoice of this order number ({expected})",
                    n.invoice_id
                ),
            )
        }
        Err(e) => {
            tracing::warn!(error = %e, "ERIP notification not recorded; ERIP will retry");
            (StatusCode::SERVICE_UNAVAILABLE, "try again later".into())
        }
    }
}

/// What became of a verified ERIP notification.
enum Noted {
    /// New: the saga's message is in the outbox.
    Recorded,
    /// This order number's notification of this status was taken before: nothing written.
    AlreadyRecorded,
    /// No application has this order number.
    UnknownOrder,
    /// The application's saga holds this other invoice id.
    OtherInvoice(String),
}

async fn record_invoice_event(
    state: &AppState,
    n: &adapters::erip::EripNotification,
    trace: TraceContext,
) -> Result<Noted, sqlx::Error> {
    use adapters::erip::InvoiceStatus;
    use contracts::procedure::{InvoiceEvent, InvoiceNotified};
    let event = match n.status {
        InvoiceStatus::Paid => InvoiceEvent::Paid,
        InvoiceStatus::Expired => InvoiceEvent::Expired,
        InvoiceStatus::Cancelled => InvoiceEvent::Cancelled,
        InvoiceStatus::Refunded => InvoiceEvent::Refunded,
        // "awaiting" is not news.
        InvoiceStatus::Awaiting => return Ok(Noted::Recorded),
    };
    let mut tx = state.pool.begin().await?;
    let saga: Option<(Uuid, Option<String>)> = sqlx::query_as(
        "SELECT id, state->>'invoice_id' FROM sagas
         WHERE saga_type = 'procedure' AND state->>'order_number' = $1",
    )
    .bind(&n.account_number)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((saga, invoice_id)) = saga else {
        return Ok(Noted::UnknownOrder);
    };
    // Before ERIP's answer to the invoice's creation reaches the saga, it holds no invoice id
    // yet (ERIP may notify first): then the order number alone decides.
    if let Some(expected) = invoice_id.filter(|id| *id != n.invoice_id) {
        return Ok(Noted::OtherInvoice(expected));
    }
    let first = sqlx::query(
        "INSERT INTO erip_notifications
             (account_number, status, invoice_id, event_id, operation_id, occurred_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (account_number, status) DO NOTHING",
    )
    .bind(&n.account_number)
    .bind(n.status.as_str())
    .bind(&n.invoice_id)
    .bind(&n.event_id)
    .bind(&n.operation_id)
    .bind(n.occurred_at)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !first {
        return Ok(Noted::AlreadyRecorded);
    }
    let message = InvoiceNotified {
        order_number: n.account_number.clone(),
        event,
        amount_kopecks: n.amount_kopecks,
        operation_id: n.operation_id.clone(),
    };
    let mut metadata = Metadata::new(InvoiceNotified::TYPE.to_string(), state.app_id.clone())
        .with_message_id(Uuid::new_v5(
            &Uuid::NAMESPACE_URL,
            format!("erip/{}/{:?}", n.account_number, event).as_bytes(),
        ));
    metadata.correlation_id = Some(saga.to_string());
    metadata.traceparent = Some(trace.to_string());
    let body = contracts::encode(&message).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    outbox::insert(
        &mut tx,
        &[Envelope {
            exchange: String::new(),
            routing_key: state.callbacks.procedure_queue.clone(),
            metadata,
            body,
        }],
    )
    .await?;
    tx.commit().await?;
    Ok(Noted::Recorded)
}

/// An HTTP back-office's later answer (`authority.info_requested.v1`, `authority.decided.v1`,
/// `authority.complaint_decided.v1`): verified by the authority's signature, checked to be about
/// an application (or complaint) of that authority, then put on the bus as the hub's bridge
/// (`user_id` = the hub's broker user), where the saga takes it like a queue authority's
/// answer. Its message id is derived from the authority, the type and the exact body, so a
/// re-sent answer counts once.
async fn authority_answer(
    State(state): State<AppState>,
    Path((authority, message_type)): Path<(String, String)>,
    Extension(trace): Extension<TraceContext>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let Some(secret) = state.callbacks.authority_secrets.get(&authority) else {
        return (
            StatusCode::NOT_FOUND,
            format!("{authority} is not an HTTP authority of this hub"),
        );
    };
    let signature = headers
        .get(adapters::backoffice::AUTHORITY_SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok());
    if let Err(f) = adapters::backoffice::verify_callback(secret, &body, signature) {
        tracing::warn!(%authority, reason = %f.reason, "back-office callback refused");
        return (StatusCode::UNAUTHORIZED, f.reason);
    }
    let subject = match about(&message_type, &body) {
        Ok(s) => s,
        Err(reason) => return (StatusCode::BAD_REQUEST, reason),
    };
    match record_authority_answer(&state, &authority, &message_type, &body, subject, trace).await {
        Ok(Recorded::Yes) => (StatusCode::OK, "recorded".into()),
        Ok(Recorded::Unknown) => (
            StatusCode::NOT_FOUND,
            format!("no {} {} at this hub", subject.kind(), subject.id()),
        ),
        Ok(Recorded::NotYours(owner)) => {
            tracing::warn!(
                %authority,
                %owner,
                id = %subject.id(),
                "a back-office answered for another authority's case; refused"
            );
            (
                StatusCode::FORBIDDEN,
                format!("{} {} is not {authority}'s", subject.kind(), subject.id()),
            )
        }
        Err(e) => {
            tracing::warn!(error = %e, "back-office answer not recorded; it will retry");
            (StatusCode::SERVICE_UNAVAILABLE, "try again later".into())
        }
    }
}

/// What a back-office answer is about.
#[derive(Debug, Clone, Copy)]
enum Subject {
    Application(Uuid),
    Complaint(Uuid),
}

impl Subject {
    fn kind(self) -> &'static str {
        match self {
            Subject::Application(_) => "application",
            Subject::Complaint(_) => "complaint",
        }
    }

    fn id(self) -> Uuid {
        match self {
            Subject::Application(id) | Subject::Complaint(id) => id,
        }
    }

    /// The saga that handles it.
    fn saga(self) -> (&'static str, Uuid) {
        use crate::procedures::{complaint, saga as procedure};
        match self {
            Subject::Application(id) => {
                (procedure::SAGA_TYPE, procedure::ProcedureSaga::key(id).id)
            }
            Subject::Complaint(id) => (complaint::SAGA_TYPE, complaint::ComplaintSaga::key(id).id),
        }
    }
}

/// Decodes an answer of one of the types a back-office may call back with.
fn about(message_type: &str, body: &[u8]) -> Result<Subject, String> {
    use contracts::procedure::{
        AuthorityComplaintDecided, AuthorityDecided, AuthorityInfoRequested,
    };
    let bad = |e: contracts::DecodeError| e.to_string();
    if AuthorityDecided::TYPE.matches(message_type) {
        let m: AuthorityDecided = contracts::decode(message_type, body).map_err(bad)?;
        Ok(Subject::Application(m.application_id))
    } else if AuthorityInfoRequested::TYPE.matches(message_type) {
        let m: AuthorityInfoRequested = contracts::decode(message_type, body).map_err(bad)?;
        Ok(Subject::Application(m.application_id))
    } else if AuthorityComplaintDecided::TYPE.matches(message_type) {
        let m: AuthorityComplaintDecided = contracts::decode(message_type, body).map_err(bad)?;
        Ok(Subject::Complaint(m.complaint_id))
    } else {
        Err(format!(
            "a back-office may call back with {}, {} or {}, not {message_type:?}",
            AuthorityInfoRequested::TYPE,
            AuthorityDecided::TYPE,
            AuthorityComplaintDecided::TYPE
        ))
    }
}

enum Recorded {
    Yes,
    Unknown,
    NotYours(String),
}

async fn record_authority_answer(
    state: &AppState,
    authority: &str,
    message_type: &str,
    body: &[u8],
    subject: Subject,
    trace: TraceContext,
) -> Result<Recorded, sqlx::Error> {
    let (saga_type, saga_id) = subject.saga();
    let mut tx = state.pool.begin().await?;
    let owner: Option<Option<String>> = sqlx::query_scalar(
        "SELECT state->>'authority' FROM sagas WHERE saga_type = $1 AND id = $2",
    )
    .bind(saga_type)
    .bind(saga_id)
    .fetch_optional(&mut *tx)
    .await?;
    let owner = match owner {
        None => return Ok(Recorded::Unknown),
        Some(owner) => owner.unwrap_or_default(),
    };
    if owner != authority {
        return Ok(Recorded::NotYours(owner));
    }
    let mut name = format!("authority/{authority}/{message_type}/").into_bytes();
    name.extend_from_slice(body);
    let mut metadata = Metadata::new(message_type.to_owned(), state.app_id.clone())
        .with_message_id(Uuid::new_v5(&Uuid::NAMESPACE_URL, &name))
        .with_correlation_id(saga_id.to_string());
    metadata.user_id = Some(state.callbacks.bridge_user.clone());
    metadata.traceparent = Some(trace.to_string());
    outbox::insert(
        &mut tx,
        &[Envelope {
            exchange: state.callbacks.bus_exchange.clone(),
            routing_key: message_type.to_owned(),
            metadata,
            body: body.to_vec(),
        }],
    )
    .await?;
    tx.commit().await?;
    Ok(Recorded::Yes)
}
