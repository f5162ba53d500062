//! Delivering an accepted message and reporting on it, as an operator's SMS centre does: the
//! message reaches the phone a little later (10-200 ms), then a delivery report goes to the
//! sender's `callback_url`, retried while the receiver fails, and — by the fault rates — dropped
//! or sent twice, because the hub must cope with reports that are late, lost or repeated.
//!
//! Every report is signed as ERIP signs its notifications: `X-Sms-Signature: sha256=<hex of
//! HMAC-SHA256(secret, body)>` over the exact body bytes, under this operator's own secret, so
//! the hub can tell an operator's report from anyone else's post.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rand::Rng;
use serde_json::json;
use url::Url;

use super::InboxEntry;
use super::api::{DeliveryStatus, OperatorState, ReportStatus};
use crate::error::timestamp;
use crate::faults::roll;

/// The header carrying a report's signature: `sha256=<lower-case hex>`.
pub(super) const SIGNATURE_HEADER: &str = "x-sms-signature";

/// How many times a report is retried after its first attempt.
const REPORT_RETRIES: u32 = 5;

/// The wait before the first retry; it doubles for each next one (0.2, 0.4, 0.8, 1.6, 3.2 s).
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// Delivers one message and reports on it. Stops early when the simulator shuts down.
pub(super) async fn deliver(state: Arc<OperatorState>, message_id: String) {
    let delay = Duration::from_millis(rand::rng().random_range(10..=200));
    if !sleep(&state, delay).await {
        return;
    }
    let Some(record) = state.message(&message_id) else {
        return;
    };
    let now = Utc::now();
    let status = if record.to.never_receives() {
        DeliveryStatus::Failed
    } else {
        state.deps.phones.receive(
            record.to.as_str(),
            InboxEntry {
                message_id: message_id.clone(),
                sender: record.sender.clone(),
                text: record.text.clone(),
                received_at: timestamp(now),
            },
        );
        DeliveryStatus::Delivered
    };
    state.update(&message_id, |r| {
        r.status = status;
        r.delivered_at = Some(now);
    });
    tracing::info!(
        simulator = %state.ctx.kind,
        %message_id,
        to = %record.to.masked(),
        status = status.name(),
        "message delivered to the phone"
    );

    let Some(callback_url) = record.callback_url else {
        return;
    };
    let report = json!({
        "message_id": message_id,
        "to": record.to.as_str(),
        "status": status.name(),
        "at": timestamp(now),
    });
    // Serialised and signed once: every attempt and every duplicate carries the same bytes.
    let body = report.to_string().into_bytes();
    let signature = crate::erip::sign(&state.deps.secret, &body);
    let report = Signed { body, signature };
    let faults = state.ctx.faults.get();
    if roll(faults.drop_callback_rate) {
        state.update(&message_id, |r| r.report_status = ReportStatus::Dropped);
        tracing::info!(simulator = %state.ctx.kind, %message_id, "delivery report dropped (fault)");
        return;
    }
    let copies = if roll(faults.duplicate_callback_rate) {
        2
    } else {
        1
    };
    // The sender's trace context goes back with the report, so the report joins its trace.
    let traceparent = record.traceparent.as_deref();
    for _ in 0..copies {
        let outcome = send_report(&state, &message_id, &callback_url, &report, traceparent).await;
        state.update(&message_id, |r| match outcome {
            ReportStatus::Sent => {
                r.reports_sent += 1;
                r.report_status = ReportStatus::Sent;
            }
            other if r.reports_sent == 0 => r.report_status = other,
            _ => {}
        });
        if outcome != ReportStatus::Sent {
            return;
        }
    }
}

/// A report's body bytes and their signature.
struct Signed {
    body: Vec<u8>,
    signature: String,
}

/// POSTs a report until the receiver answers 2xx: the first attempt and up to
/// [`REPORT_RETRIES`] more with a doubling backoff.
async fn send_report(
    state: &OperatorState,
    message_id: &str,
    url: &Url,
    report: &Signed,
    traceparent: Option<&str>,
) -> ReportStatus {
    let mut backoff = FIRST_BACKOFF;
    for attempt in 0..=REPORT_RETRIES {
        if attempt > 0 {
            if !sleep(state, backoff).await {
                return ReportStatus::Cancelled;
            }
            backoff *= 2;
        }
        state.update(message_id, |r| r.report_attempts += 1);
        let mut request = state
            .deps
            .client
            .post(url.clone())
            .header("content-type", "application/json")
            .header(SIGNATURE_HEADER, &report.signature)
            .body(report.body.clone());
        if let Some(traceparent) = traceparent {
            request = request.header("traceparent", traceparent);
        }
        let request = request.send();
        let result = tokio::select! {
            result = request => result,
            () = state.ctx.shutdown.cancelled() => return ReportStatus::Cancelled,
        };
        match result {
            Ok(response) if response.status().is_success() => {
                tracing::debug!(
                    simulator = %state.ctx.kind,
                    %message_id,
                    attempt = attempt + 1,
                    "delivery report sent"
                );
                return ReportStatus::Sent;
            }
            Ok(response) => tracing::info!(
                simulator = %state.ctx.kind,
                %message_id,
                attempt = attempt + 1,
                status = %response.status(),
                "delivery report refused"
            ),
            Err(e) => tracing::info!(
                simulator = %state.ctx.kind,
                %message_id,
                attempt = attempt + 1,
                error = %e.without_url(),
                "delivery report failed"
            ),
        }
    }
    tracing::warn!(simulator = %state.ctx.kind, %message_id, "delivery report given up");
    ReportStatus::GaveUp
}

/// Sleeps unless shutdown comes first; true when the whole time passed.
async fn sleep(state: &OperatorState, duration: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(duration) => true,
        () = state.ctx.shutdown.cancelled() => false,
    }
}
