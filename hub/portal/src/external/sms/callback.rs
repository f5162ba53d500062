//! The SMS gateways' delivery reports (`POST /callbacks/sms/{operator}`).
//!
//! A report is taken only when signed by the operator of its path: `X-Sms-Signature:
//! sha256=<hex of HMAC-SHA256(that operator's secret, the exact body bytes)>`
//! ([`adapters::sms::verify_delivery_report`]); anything else is refused `401` before a byte of
//! the body is read. Its `to` must be the number the hub sent that message to (compared as the
//! per-phone limits' key, the only form the number is kept in); a report about another number is
//! refused `409`.
//!
//! A verified report is turned into a `sms.delivery_reported.v1` message for the saga that sent
//! the SMS, written to the outbox in one transaction, so a report is never lost once it has been
//! answered `200`. Reports are deduplicated: a report's message id is derived from the operator's
//! message id and its status, and the saga's inbox drops the second copy. The saga is found
//! through the row the [worker](super::worker) wrote when the operator took the SMS.
//!
//! Every report with nothing more to do is answered alike, `200 recorded`, whether its message
//! id is known or not, so the answer says nothing of which ids exist. A report that comes before
//! the worker has committed its send (the operator was quicker) is kept in `sms_early_reports`
//! and handed to the saga by the worker when it records the send.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use contracts::person::Operator;
use contracts::sms::{DeliveryReported, SmsPurpose};
use contracts::{Message, Metadata};
use uuid::Uuid;

use crate::external::CallbackState;
use hub_runtime::broker::Envelope;
use hub_runtime::store::outbox;
use hub_runtime::trace::TraceContext;

/// How long a report about an unknown message id is kept for a send that may still commit.
const EARLY_REPORTS_KEPT_HOURS: i32 = 24;

/// An operator's delivery report: `200 recorded` for every verified report that needs nothing
/// more (known id or not), `401` for an unsigned or wrongly signed one, `409` for one whose `to`
/// is not the message's recipient, `400` with the reason for a signed body that is not a report,
/// `404` for a path naming no operator, `503` when it cannot be recorded yet (the operator
/// retries).
pub(crate) async fn delivery_report(
    State(state): State<CallbackState>,
    Path(operator): Path<String>,
    Extension(trace): Extension<TraceContext>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let Ok(operator) = operator.parse::<Operator>() else {
        return (StatusCode::NOT_FOUND, "no such operator".into());
    };
    let signature = headers
        .get(adapters::sms::SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok());
    // No secret for the operator is an empty one, which the check refuses as unconfigured.
    let secret = state
        .callbacks
        .sms_secrets
        .get(&operator)
        .map_or(&[][..], Vec::as_slice);
    let report = match adapters::sms::verify_delivery_report(operator, secret, &body, signature) {
        Ok(r) => r,
        // The reasons name the operator and what is wrong, never the number (the adapter's
        // parse errors leave values out), so they may be logged and answered.
        Err(f) if f.reason == adapters::sms::BAD_SIGNATURE => {
            tracing::warn!(%operator, "SMS delivery report refused: bad signature");
            return (StatusCode::UNAUTHORIZED, f.reason);
        }
        // No secret configured for this operator: the hub's mistake, not the report's; the
        // operator retries until it is fixed.
        Err(f) if f.kind != adapters::FailureKind::InvalidInput => {
            tracing::error!(%operator, reason = %f.reason, "SMS delivery report not checked");
            return (StatusCode::SERVICE_UNAVAILABLE, "try again later".into());
        }
        Err(f) => {
            tracing::warn!(%operator, reason = %f.reason, "SMS delivery report refused");
            return (StatusCode::BAD_REQUEST, f.reason);
        }
    };
    let traceparent = Some(trace.to_string());
    let recorded = record(
        &state.pool,
        &state.app_id,
        &state.callbacks.phone_limits,
        operator,
        &report,
        traceparent,
    );
    match recorded.await {
        Ok(Noted::Recorded) => (StatusCode::OK, "recorded".into()),
        Ok(Noted::OtherRecipient) => {
            tracing::warn!(
                %operator,
                "SMS delivery report about another number than the message's; refused"
            );
            (
                StatusCode::CONFLICT,
                "the report's recipient is not the message's".into(),
            )
        }
        Err(e) => {
            tracing::warn!(%operator, error = %e, "delivery report not recorded; the operator will retry");
            (StatusCode::SERVICE_UNAVAILABLE, "try again later".into())
        }
    }
}

/// What became of a verified report.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Noted {
    /// Done with: the saga's message is in the outbox, nobody waits for it, or it is kept for a
    /// send not committed yet. One outcome, so that one answer covers them all.
    Recorded,
    /// The message was sent to another number than the report's `to`.
    OtherRecipient,
}

/// An `sms_messages` row: purpose, correlation id, reply queue, recipient's key.
type SentRow = (String, Option<String>, Option<String>, Option<Vec<u8>>);

/// Writes the saga's message for `report`, or keeps the report for a send not recorded yet.
/// The one path of every delivery report, whether an operator posted it (HTTP) or its SMS
/// centre sent it over the bind (SMPP receipts, [`super::smpp`]): the saga hears the same
/// `sms.delivery_reported.v1`, deduplicated the same way.
pub(crate) async fn record(
    pool: &sqlx::PgPool,
    app_id: &str,
    phone_limits: &super::worker::PhoneLimits,
    operator: Operator,
    report: &adapters::sms::DeliveryReport,
    traceparent: Option<String>,
) -> Result<Noted, sqlx::Error> {
    let to_key = phone_limits.key(&report.to);
    let mut tx = pool.begin().await?;
    // Only this operator's messages: a report signed by one operator never speaks of another's.
    let row: Option<SentRow> = sqlx::query_as(
        "SELECT purpose, correlation_id, reply_to, to_key FROM sms_messages
          WHERE provider_message_id = $1 AND operator = $2",
    )
    .bind(&report.provider_message_id)
    .bind(operator.to_string())
    .fetch_optional(&mut *tx)
    .await?;
    let Some((purpose, correlation_id, reply_to, sent_to)) = row else {
        keep_early(&mut tx, operator, report, &to_key).await?;
        tx.commit().await?;
        return Ok(Noted::Recorded);
    };
    // A row from before the recipient was kept has none to compare with.
    if sent_to.is_some_and(|k| k != to_key.as_bytes()) {
        return Ok(Noted::OtherRecipient);
    }
    let Some(reply_to) = reply_to else {
        // Nobody waits for this SMS's fate (a detached notification): accept and forget.
        return Ok(Noted::Recorded);
    };
    let purpose: SmsPurpose = match serde_json::from_value(serde_json::Value::String(purpose)) {
        Ok(p) => p,
        Err(_) => {
            // Not a purpose this hub knows (a row of a newer version): nothing to hand on.
            tracing::warn!(%operator, "SMS delivery report for a message of an unknown purpose");
            return Ok(Noted::Recorded);
        }
    };
    let event = DeliveryReported {
        purpose,
        provider_message_id: report.provider_message_id.clone(),
        delivered: report.delivered,
        at: report.at,
    };
    let mut metadata = Metadata::new(DeliveryReported::TYPE.to_string(), app_id.to_owned())
        .with_message_id(Uuid::new_v5(
            &Uuid::NAMESPACE_URL,
            format!(
                "sms-report/{}/{}",
                report.provider_message_id, report.delivered
            )
            .as_bytes(),
        ));
    metadata.correlation_id = correlation_id;
    metadata.traceparent = traceparent;
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
    Ok(Noted::Recorded)
}

/// Keeps a verified report about a message id not (yet) known, for the worker to take when it
/// records that send; prunes the reports no send claimed in [`EARLY_REPORTS_KEPT_HOURS`].
async fn keep_early(
    tx: &mut sqlx::PgConnection,
    operator: Operator,
    report: &adapters::sms::DeliveryReport,
    to_key: &super::worker::PhoneKey,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM sms_early_reports WHERE received_at < now() - make_interval(hours => $1)",
    )
    .bind(EARLY_REPORTS_KEPT_HOURS)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO sms_early_reports (operator, provider_message_id, delivered, to_key, at)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(operator.to_string())
    .bind(&report.provider_message_id)
    .bind(report.delivered)
    .bind(to_key.as_bytes())
    .bind(report.at)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
