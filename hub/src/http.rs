//! The hub's HTTP side: callbacks from external systems. An operator's delivery report is turned
//! into a `sms.delivery_reported.v1` message for the saga that sent the SMS, written to the
//! outbox in one transaction, so a report is never lost once it has been answered `200`.
//! Reports are deduplicated: a report's message id is derived from the operator's message id and
//! its status, and the saga's inbox drops the second copy.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use contracts::sms::{DeliveryReported, SmsPurpose};
use contracts::{Message, Metadata};
use sqlx::PgPool;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::broker::Envelope;
use crate::store::outbox;

/// What the callbacks need to know besides the database.
#[derive(Clone)]
pub struct Callbacks {
    /// ERIP's shared secret for notification signatures.
    pub erip_secret: Vec<u8>,
    /// The full name of the procedure saga's queue (ERIP's events go there).
    pub procedure_queue: String,
}

impl std::fmt::Debug for Callbacks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callbacks")
            .field("procedure_queue", &self.procedure_queue)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
struct AppState {
    pool: PgPool,
    app_id: String,
    callbacks: Arc<Callbacks>,
}

/// Serves the callbacks on `addr` until `shutdown`.
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

fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/callbacks/sms/{operator}", post(sms_report))
        .route("/callbacks/erip", post(erip_notification))
        .with_state(state)
}

async fn sms_report(
    State(state): State<AppState>,
    Path(operator): Path<String>,
    body: Bytes,
) -> (StatusCode, String) {
    let report = match adapters::sms::parse_delivery_report(&body) {
        Ok(r) => r,
        Err(f) => return (StatusCode::BAD_REQUEST, f.reason),
    };
    match record(&state, &report).await {
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

/// ERIP's signed notification: verified, then turned into a message for the application's saga,
/// found by the order number in its state. The message id is derived from the order number and
/// the status, so a notification sent twice (or re-sent under a new event id) counts once.
async fn erip_notification(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let signature = headers
        .get("x-erip-signature")
        .and_then(|v| v.to_str().ok());
    let n =
        match adapters::erip::verify_notification(&state.callbacks.erip_secret, &body, signature) {
            Ok(n) => n,
            Err(f) => {
                tracing::warn!(reason = %f.reason, "ERIP notification refused");
                return (StatusCode::UNAUTHORIZED, f.reason);
            }
        };
    match record_invoice_event(&state, &n).await {
        Ok(true) => (StatusCode::OK, "recorded".into()),
        Ok(false) => {
            // No application has this order number: nothing waits for it. Acknowledge, so ERIP
            // stops re-sending, and leave a trace for operators.
            tracing::warn!(invoice = %n.invoice_id, "ERIP notification for an unknown order number");
            (StatusCode::OK, "unknown order number".into())
        }
        Err(e) => {
            tracing::warn!(error = %e, "ERIP notification not recorded; ERIP will retry");
            (StatusCode::SERVICE_UNAVAILABLE, "try again later".into())
        }
    }
}

async fn record_invoice_event(
    state: &AppState,
    n: &adapters::erip::EripNotification,
) -> Result<bool, sqlx::Error> {
    use adapters::erip::InvoiceStatus;
    use contracts::procedure::{InvoiceEvent, InvoiceNotified};
    let event = match n.status {
        InvoiceStatus::Paid => InvoiceEvent::Paid,
        InvoiceStatus::Expired => InvoiceEvent::Expired,
        InvoiceStatus::Cancelled => InvoiceEvent::Cancelled,
        InvoiceStatus::Refunded => InvoiceEvent::Refunded,
        // "awaiting" is not news.
        InvoiceStatus::Awaiting => return Ok(true),
    };
    let mut tx = state.pool.begin().await?;
    let saga: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM sagas WHERE saga_type = 'procedure' AND state->>'order_number' = $1",
    )
    .bind(&n.account_number)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(saga) = saga else {
        return Ok(false);
    };
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
    Ok(true)
}
