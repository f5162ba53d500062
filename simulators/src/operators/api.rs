//! An operator's HTTP API: `GET /api/v1/subscribers/{msisdn}`, `POST /api/v1/messages`, and the
//! simulator-only `GET /sim/inbox/{msisdn}` and `GET /sim/messages/{message_id}`, and the SMS
//! centre's controls (`/sim/smpp/faults`, `/sim/smpp/duplicates`).

use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;
use uuid::Uuid;

use super::{Deps, delivery};
use crate::error::{ApiError, parse_json, timestamp};
use crate::idempotency::IdempotencyStore;
use crate::msisdn::{self, Msisdn, Operator};
use crate::retention::Bounded;
use crate::server::{self, SimContext};

/// The longest sender name accepted.
const MAX_SENDER_CHARS: usize = 20;

/// The longest message text accepted.
const MAX_TEXT_CHARS: usize = 1000;

/// One operator's state.
#[derive(Debug)]
pub(super) struct OperatorState {
    pub(super) operator: Operator,
    pub(super) ctx: SimContext,
    pub(super) deps: Deps,
    /// The messages accepted, the newest up to the record limit.
    messages: Mutex<Bounded<String, MessageRecord>>,
    idempotency: IdempotencyStore,
}

/// Where a message is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DeliveryStatus {
    Accepted,
    Delivered,
    Failed,
}

impl DeliveryStatus {
    pub(super) fn name(self) -> &'static str {
        match self {
            DeliveryStatus::Accepted => "accepted",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }
}

/// Where a message's delivery report is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReportStatus {
    /// No `callback_url` was given.
    None,
    /// Not yet sent, or being sent.
    Pending,
    /// The receiver answered 2xx (`sent` counts how often: 2 with a duplicate).
    Sent,
    /// Dropped by the `drop_callback_rate` fault.
    Dropped,
    /// Every attempt failed.
    GaveUp,
    /// The simulator shut down before the report got through.
    Cancelled,
}

impl ReportStatus {
    fn name(self) -> &'static str {
        match self {
            ReportStatus::None => "none",
            ReportStatus::Pending => "pending",
            ReportStatus::Sent => "sent",
            ReportStatus::Dropped => "dropped",
            ReportStatus::GaveUp => "gave_up",
            ReportStatus::Cancelled => "cancelled",
        }
    }
}

/// A message the operator accepted.
#[derive(Debug, Clone)]
pub(super) struct MessageRecord {
    pub(super) message_id: String,
    pub(super) sender: String,
    pub(super) to: Msisdn,
    pub(super) text: String,
    pub(super) callback_url: Option<Url>,
    pub(super) status: DeliveryStatus,
    pub(super) accepted_at: DateTime<Utc>,
    pub(super) delivered_at: Option<DateTime<Utc>>,
    pub(super) report_status: ReportStatus,
    pub(super) report_attempts: u32,
    pub(super) reports_sent: u32,
    /// The W3C `traceparent` the sender sent, if any: shown by `/sim/messages/{id}` and sent
    /// back with the delivery report, as a traced gateway would.
    pub(super) traceparent: Option<String>,
}

impl MessageRecord {
    fn to_json(&self, operator: Operator) -> Value {
        json!({
            "message_id": self.message_id,
            "operator": operator.id(),
            "sender": self.sender,
            "to": self.to.as_str(),
            "text": self.text,
            "callback_url": self.callback_url.as_ref().map(Url::as_str),
            "status": self.status.name(),
            "accepted_at": timestamp(self.accepted_at),
            "delivered_at": self.delivered_at.map(timestamp),
            "report": {
                "status": self.report_status.name(),
                "attempts": self.report_attempts,
                "sent": self.reports_sent,
            },
            "traceparent": self.traceparent,
        })
    }
}

impl OperatorState {
    /// A copy of a message's record.
    pub(super) fn message(&self, message_id: &str) -> Option<MessageRecord> {
        self.messages
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(message_id)
            .cloned()
    }

    /// Changes a message's record (nothing if it was dropped meanwhile).
    pub(super) fn update(&self, message_id: &str, change: impl FnOnce(&mut MessageRecord)) {
        if let Some(record) = self
            .messages
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(message_id)
        {
            change(record);
        }
    }
}

/// An operator's routes, finished with the common ones.
pub(crate) fn router(ctx: SimContext, operator: Operator, deps: Deps) -> Router {
    let state = Arc::new(OperatorState {
        operator,
        ctx: ctx.clone(),
        deps,
        messages: Mutex::new(Bounded::new(ctx.retention.records_limit())),
        idempotency: IdempotencyStore::new(ctx.retention.keys_limit()),
    });
    let routes = Router::new()
        .route("/api/v1/subscribers/{msisdn}", get(subscriber))
        .route("/api/v1/messages", post(send))
        .route("/sim/inbox/{msisdn}", get(inbox))
        .route("/sim/messages/{message_id}", get(message))
        .with_state(state.clone())
        .merge(super::smsc::routes(state.deps.smsc.clone()));
    server::finish(routes, ctx)
}

fn parse_msisdn(input: &str) -> Result<Msisdn, ApiError> {
    Msisdn::parse(input).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_msisdn",
            "not a Belarusian mobile number (+375 25/29/33/44 and 7 digits)",
        )
    })
}

fn not_our_subscriber() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_our_subscriber",
        "this number is not served by this operator",
    )
}

async fn subscriber(
    State(state): State<Arc<OperatorState>>,
    Path(number): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let number = parse_msisdn(&number)?;
    let ours = number.serving_operator() == Some(state.operator);
    tracing::info!(
        simulator = %state.ctx.kind,
        msisdn = %number.masked(),
        ours,
        "subscriber check"
    );
    if !ours {
        return Err(not_our_subscriber());
    }
    let status = if number.is_blocked() {
        "blocked"
    } else {
        "active"
    };
    Ok(axum::Json(json!({
        "msisdn": number.as_str(),
        "operator": state.operator.id(),
        "status": status,
    })))
}

/// A `POST /api/v1/messages` body.
#[derive(Debug, Deserialize)]
struct SendRequest {
    sender: String,
    to: String,
    text: String,
    #[serde(default)]
    callback_url: Option<String>,
}

async fn send(
    State(state): State<Arc<OperatorState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state
        .idempotency
        .run(&headers, "POST /api/v1/messages", &body, || {
            accept(&state, &body, &headers)
        })
}

/// Validates and accepts a message, and starts its delivery.
fn accept(
    state: &Arc<OperatorState>,
    body: &[u8],
    headers: &HeaderMap,
) -> Result<(StatusCode, Value), ApiError> {
    let request: SendRequest = parse_json(body)?;
    let sender = request.sender.trim();
    if sender.is_empty() || sender.chars().count() > MAX_SENDER_CHARS {
        return Err(ApiError::invalid_request(format!(
            "sender must be 1 to {MAX_SENDER_CHARS} characters"
        )));
    }
    if request.text.is_empty() || request.text.chars().count() > MAX_TEXT_CHARS {
        return Err(ApiError::invalid_request(format!(
            "text must be 1 to {MAX_TEXT_CHARS} characters"
        )));
    }
    let to = parse_msisdn(&request.to)?;
    let callback_url = match request.callback_url.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(raw) => match Url::parse(raw) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => Some(url),
            _ => {
                return Err(ApiError::invalid_request(
                    "callback_url must be an absolute http(s) URL",
                ));
            }
        },
    };
    if to.serving_operator() != Some(state.operator) {
        tracing::info!(
            simulator = %state.ctx.kind,
            to = %to.masked(),
            "message refused: not our subscriber"
        );
        return Err(not_our_subscriber());
    }
    if to.is_blocked() {
        tracing::info!(
            simulator = %state.ctx.kind,
            to = %to.masked(),
            "message refused: subscriber blocked"
        );
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "subscriber_blocked",
            "the subscriber's number is blocked",
        ));
    }

    let message_id = format!("{}-{}", state.operator.id(), Uuid::new_v4());
    let record = MessageRecord {
        message_id: message_id.clone(),
        sender: sender.to_owned(),
        to,
        text: request.text,
        report_status: if callback_url.is_some() {
            ReportStatus::Pending
        } else {
            ReportStatus::None
        },
        callback_url,
        status: DeliveryStatus::Accepted,
        accepted_at: Utc::now(),
        delivered_at: None,
        report_attempts: 0,
        reports_sent: 0,
        traceparent: headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    tracing::info!(
        simulator = %state.ctx.kind,
        %message_id,
        to = %record.to.masked(),
        "message accepted"
    );
    state
        .messages
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(message_id.clone(), record);
    state
        .deps
        .tasks
        .spawn(delivery::deliver(state.clone(), message_id.clone()));
    Ok((
        StatusCode::ACCEPTED,
        json!({"message_id": message_id, "status": "accepted"}),
    ))
}

async fn inbox(
    State(state): State<Arc<OperatorState>>,
    Path(number): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let number = parse_msisdn(&number).inspect_err(|_| {
        tracing::debug!(msisdn = %msisdn::mask_raw(&number), "inbox of an invalid number");
    })?;
    Ok(axum::Json(json!({
        "msisdn": number.as_str(),
        "messages": state.deps.phones.inbox(number.as_str()),
    })))
}

async fn message(
    State(state): State<Arc<OperatorState>>,
    Path(message_id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    state
        .message(&message_id)
        .map(|record| axum::Json(record.to_json(state.operator)))
        .ok_or_else(|| ApiError::not_found("no message with this id at this operator"))
}
