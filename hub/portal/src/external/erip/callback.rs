//! ERIP's payment notifications (`POST /callbacks/erip`): an invoice was paid, expired, was
//! cancelled or refunded. Verified, then turned into a message for the procedure saga whose
//! order number the invoice carries (the invoice the [worker](super::worker) registered).

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use contracts::{Message, Metadata};
use uuid::Uuid;

use crate::external::CallbackState;
use hub_runtime::broker::Envelope;
use hub_runtime::store::outbox;
use hub_runtime::trace::TraceContext;

/// ERIP's signed notification: verified (signature over the exact body, then its signed
/// `occurred_at` inside the acceptance window, see [`adapters::erip::verify_notification_at`]),
/// then turned into a message for the application's saga, found by the order number in its
/// state.
///
/// Replays change nothing. The first notification of each (order number, status, operation
/// number) is recorded in `erip_notifications` in the transaction that writes the saga's
/// message; a copy — ERIP's own retry, or a captured one re-sent — finds the row and is answered
/// `200 already recorded` with nothing written. Several payments of one order (short payments
/// that add up, a second payment) have operation numbers of their own, so each is taken once.
/// The message id is derived from the same three, so even without the row the saga's inbox
/// would count it once (and the saga's ledger knows each operation number). A notification about another
/// invoice than the one the application's saga holds is refused (`409`), whatever its signature.
pub(crate) async fn notification(
    State(state): State<CallbackState>,
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

/// Records a verified notification and writes the saga's message, in one transaction.
async fn record_invoice_event(
    state: &CallbackState,
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
        InvoiceStatus::Reversed => InvoiceEvent::Reversed,
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
         ON CONFLICT (account_number, status, (COALESCE(operation_id, ''))) DO NOTHING",
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
    let name = match &n.operation_id {
        Some(operation) => format!("erip/{}/{:?}/{operation}", n.account_number, event),
        None => format!("erip/{}/{:?}", n.account_number, event),
    };
    let mut metadata = Metadata::new(InvoiceNotified::TYPE.to_string(), state.app_id.clone())
        .with_message_id(Uuid::new_v5(&Uuid::NAMESPACE_URL, name.as_bytes()));
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
