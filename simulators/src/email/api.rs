//! The e-mail simulator's HTTP side, all simulator-only: `GET`/`DELETE /sim/inbox/{address}`,
//! `GET /sim/messages`, and the e-mail faults `smtp_reply` and `smtp_reply_rate`, taken in the
//! same `/sim/faults` JSON as the common ones.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::smtp::INJECTABLE_REPLIES;
use super::{EmailState, MAX_LISTED, SmtpFaults, mask};
use crate::error::{ApiError, parse_json};
use crate::server::{self, SimContext};

/// The largest `/sim/faults` body read.
const MAX_FAULTS_BODY: usize = 64 * 1024;

/// The inbox's routes, finished with the common ones and the e-mail faults.
pub(super) fn router(ctx: SimContext, state: Arc<EmailState>) -> Router {
    let routes = Router::new()
        .route("/sim/inbox/{address}", get(inbox).delete(clear_inbox))
        .route("/sim/messages", get(messages))
        .with_state(state.clone());
    server::finish(routes, ctx).layer(axum::middleware::from_fn_with_state(
        state,
        smtp_faults_layer,
    ))
}

/// An address from a path: trimmed and lower-cased (inboxes are case-insensitive).
fn parse_address(raw: &str) -> Result<String, ApiError> {
    let address = raw.trim().to_lowercase();
    match address.rsplit_once('@') {
        Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && address.len() <= 254 =>
        {
            Ok(address)
        }
        _ => {
            tracing::debug!(address = %mask(raw), "inbox of an invalid address");
            Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_address",
                "not an e-mail address (local@domain, at most 254 characters)",
            ))
        }
    }
}

async fn inbox(
    State(state): State<Arc<EmailState>>,
    Path(address): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let address = parse_address(&address)?;
    let messages = state.store.inbox(&address);
    Ok(axum::Json(
        json!({"address": address, "messages": messages}),
    ))
}

async fn clear_inbox(
    State(state): State<Arc<EmailState>>,
    Path(address): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let address = parse_address(&address)?;
    let deleted = state.store.clear(&address);
    tracing::info!(simulator = %state.ctx.kind, address = %mask(&address), deleted, "inbox emptied");
    Ok(axum::Json(json!({"address": address, "deleted": deleted})))
}

/// `GET /sim/messages` query.
#[derive(Debug, Deserialize)]
struct MessagesQuery {
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    100
}

async fn messages(
    State(state): State<Arc<EmailState>>,
    query: Result<Query<MessagesQuery>, QueryRejection>,
) -> Result<axum::Json<Value>, ApiError> {
    let Query(query) =
        query.map_err(|e| ApiError::invalid_request(format!("bad query: {}", e.body_text())))?;
    let messages = state.store.recent(query.limit.min(MAX_LISTED));
    Ok(axum::Json(json!({"messages": messages})))
}

/// Adds the e-mail faults to `/sim/faults`, around the common handler: a `PUT` has its
/// `smtp_reply` and `smtp_reply_rate` taken out and checked, the rest goes to the common
/// handler (which refuses unknown fields), and the e-mail faults change only when it accepted
/// the rest; a `DELETE` clears them too; every answer shows them next to the common ones.
async fn smtp_faults_layer(
    State(state): State<Arc<EmailState>>,
    request: Request,
    next: Next,
) -> Response {
    if request.uri().path() != "/sim/faults" {
        return next.run(request).await;
    }
    let method = request.method().clone();
    if method == Method::PUT {
        let (mut parts, body) = request.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, MAX_FAULTS_BODY).await else {
            return ApiError::invalid_request("the request body could not be read").into_response();
        };
        let mut fields: Map<String, Value> = match parse_json(&bytes) {
            Ok(fields) => fields,
            Err(e) => return e.into_response(),
        };
        let smtp = match take_smtp_faults(&mut fields, state.smtp_faults()) {
            Ok(smtp) => smtp,
            Err(e) => return e.into_response(),
        };
        parts.headers.remove(header::CONTENT_LENGTH);
        let rest = Body::from(Value::Object(fields).to_string());
        let response = next.run(Request::from_parts(parts, rest)).await;
        if response.status().is_success() {
            state.set_smtp_faults(smtp);
            tracing::info!(simulator = %state.ctx.kind, faults = ?smtp, "e-mail faults set");
        }
        return with_smtp_faults(response, &state).await;
    }
    let response = next.run(request).await;
    if method == Method::DELETE && response.status().is_success() {
        state.set_smtp_faults(SmtpFaults::default());
    }
    if method == Method::GET || method == Method::DELETE {
        return with_smtp_faults(response, &state).await;
    }
    response
}

/// Takes `smtp_reply` and `smtp_reply_rate` out of a `PUT /sim/faults` body and applies them to
/// `current`; the fields not given keep their value.
fn take_smtp_faults(
    fields: &mut Map<String, Value>,
    current: SmtpFaults,
) -> Result<SmtpFaults, ApiError> {
    let mut faults = current;
    match fields.remove("smtp_reply") {
        None => {}
        Some(Value::Null) => faults.smtp_reply = None,
        Some(value) => {
            let code = value
                .as_u64()
                .and_then(|c| u16::try_from(c).ok())
                .filter(|c| INJECTABLE_REPLIES.iter().any(|(known, _)| known == c));
            let Some(code) = code else {
                let known: Vec<String> = INJECTABLE_REPLIES
                    .iter()
                    .map(|(c, _)| c.to_string())
                    .collect();
                return Err(ApiError::invalid_request(format!(
                    "smtp_reply must be null or one of {}",
                    known.join(", ")
                )));
            };
            faults.smtp_reply = Some(code);
        }
    }
    if let Some(value) = fields.remove("smtp_reply_rate") {
        match value.as_f64() {
            Some(rate) if (0.0..=1.0).contains(&rate) => faults.smtp_reply_rate = rate,
            _ => {
                return Err(ApiError::invalid_request(
                    "smtp_reply_rate must be between 0.0 and 1.0",
                ));
            }
        }
    }
    Ok(faults)
}

/// The common handler's answer with the e-mail faults added to its JSON object.
async fn with_smtp_faults(response: Response, state: &EmailState) -> Response {
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_FAULTS_BODY).await else {
        return ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the faults could not be read",
        )
        .into_response();
    };
    let body = match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(mut fields)) if parts.status.is_success() => {
            let smtp = state.smtp_faults();
            fields.insert("smtp_reply".to_owned(), json!(smtp.smtp_reply));
            fields.insert("smtp_reply_rate".to_owned(), json!(smtp.smtp_reply_rate));
            parts.headers.remove(header::CONTENT_LENGTH);
            Body::from(Value::Object(fields).to_string())
        }
        _ => Body::from(bytes),
    };
    Response::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(fields) => fields,
            _ => Map::new(),
        }
    }

    #[test]
    fn smtp_faults_are_taken_out_and_checked() {
        let mut fields = object(json!({"latency_ms": 5, "smtp_reply": 451}));
        let faults = take_smtp_faults(&mut fields, SmtpFaults::default()).expect("valid");
        assert_eq!(faults.smtp_reply, Some(451));
        assert_eq!(faults.smtp_reply_rate, 1.0);
        assert_eq!(Value::Object(fields), json!({"latency_ms": 5}));

        let mut fields = object(json!({"smtp_reply_rate": 0.5}));
        let kept = take_smtp_faults(&mut fields, faults).expect("valid");
        assert_eq!(kept.smtp_reply, Some(451));
        assert_eq!(kept.smtp_reply_rate, 0.5);

        let mut fields = object(json!({"smtp_reply": null}));
        let cleared = take_smtp_faults(&mut fields, kept).expect("valid");
        assert_eq!(cleared.smtp_reply, None);

        for bad in [
            json!({"smtp_reply": 250}),
            json!({"smtp_reply": "451"}),
            json!({"smtp_reply": 451.5}),
            json!({"smtp_reply_rate": 1.5}),
            json!({"smtp_reply_rate": null}),
        ] {
            let mut fields = object(bad.clone());
            assert!(
                take_smtp_faults(&mut fields, SmtpFaults::default()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn inbox_addresses_are_lower_cased_and_checked() {
        assert_eq!(
            parse_address(" Ivan@Example.BY ").ok().as_deref(),
            Some("ivan@example.by")
        );
        for bad in ["", "ivan", "@example.by", "ivan@"] {
            assert!(parse_address(bad).is_err(), "{bad}");
        }
    }
}
