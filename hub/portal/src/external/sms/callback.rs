//! The SMS gateways' delivery reports (`POST /callbacks/sms/{operator}`).
//!
//! An operator's delivery report is turned into a `sms.delivery_reported.v1` message for the
//! saga that sent the SMS, written to the outbox in one transaction, so a report is never lost
//! once it has been answered `200`. Reports are deduplicated: a report's message id is derived
//! from the operator's message id and its status, and the saga's inbox drops the second copy.
//! The saga is found through the row the [worker](super::worker) wrote when the operator took
//! the SMS.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use contracts::sms::{DeliveryReported, SmsPurpose};
use contracts::{Message, Metadata};
use uuid::Uuid;

use crate::external::CallbackState;
use hub_runtime::broker::Envelope;
use hub_runtime::store::outbox;
use hub_runtime::trace::TraceContext;

/// An operator's delivery report: `200 recorded`, `400` with the reason for a report that is
/// not one, `503` when the report cannot be recorded yet (the operator retries).
pub(crate) async fn delivery_report(
    State(state): State<CallbackState>,
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

/// Writes the saga's message for `report`: `false` when no SMS of that operator message id is
/// known (yet).
async fn record(
    state: &CallbackState,
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
