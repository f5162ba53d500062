//! The SMS centre's controls on the operator's HTTP simulator: `GET`/`PUT /sim/smpp/faults`
//! and `GET /sim/smpp/duplicates`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Smsc;
use crate::error::{ApiError, parse_json};

/// The largest `latency_ms` accepted (one minute).
const MAX_LATENCY_MS: u64 = 60_000;

/// The SMPP faults in force on one SMS centre.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub(crate) struct SmppFaults {
    /// How long every request (bind, submit_sm, enquire_link) waits before it is answered.
    pub(crate) latency_ms: u64,
    /// The share of `submit_sm` answered `ESME_RTHROTTLED` (not taken).
    pub(crate) throttle_rate: f64,
    /// The share of `submit_sm` answered `ESME_RMSGQFUL` (not taken).
    pub(crate) queue_full_rate: f64,
    /// The share of `submit_sm` answered `ESME_RSYSERR` (not taken).
    pub(crate) system_error_rate: f64,
    /// The share of receipts never sent.
    pub(crate) drop_receipt_rate: f64,
    /// The share of receipts sent twice.
    pub(crate) duplicate_receipt_rate: f64,
    /// The share of single-part messages delivered, and their receipt sent, before their
    /// `submit_sm_resp`.
    pub(crate) receipt_first_rate: f64,
    /// How many of the next binds are refused (`ESME_RBINDFAIL`).
    pub(crate) refuse_binds: u32,
    /// The `submit_sm` (counted from when this was set, 1 = the next) on which its connection is
    /// dropped without an answer; once.
    pub(crate) drop_connection_after: Option<u32>,
    /// Whether the `submit_sm` the connection is dropped on was taken (and will reach the
    /// phone) before the drop: the ESME cannot know, and a resend sends it twice.
    pub(crate) drop_accepted: bool,
}

/// A `PUT /sim/smpp/faults` body: the fields given replace the current values, the others stay;
/// `drop_connection_after` 0 clears it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SmppFaultPatch {
    latency_ms: Option<u64>,
    throttle_rate: Option<f64>,
    queue_full_rate: Option<f64>,
    system_error_rate: Option<f64>,
    drop_receipt_rate: Option<f64>,
    duplicate_receipt_rate: Option<f64>,
    receipt_first_rate: Option<f64>,
    refuse_binds: Option<u32>,
    drop_connection_after: Option<u32>,
    drop_accepted: Option<bool>,
}

impl SmppFaultPatch {
    fn apply(&self, mut faults: SmppFaults) -> Result<SmppFaults, ApiError> {
        if let Some(latency_ms) = self.latency_ms {
            if latency_ms > MAX_LATENCY_MS {
                return Err(ApiError::invalid_request(format!(
                    "latency_ms must be at most {MAX_LATENCY_MS}"
                )));
            }
            faults.latency_ms = latency_ms;
        }
        let rates = [
            (
                "throttle_rate",
                self.throttle_rate,
                &mut faults.throttle_rate,
            ),
            (
                "queue_full_rate",
                self.queue_full_rate,
                &mut faults.queue_full_rate,
            ),
            (
                "system_error_rate",
                self.system_error_rate,
                &mut faults.system_error_rate,
            ),
            (
                "drop_receipt_rate",
                self.drop_receipt_rate,
                &mut faults.drop_receipt_rate,
            ),
            (
                "duplicate_receipt_rate",
                self.duplicate_receipt_rate,
                &mut faults.duplicate_receipt_rate,
            ),
            (
                "receipt_first_rate",
                self.receipt_first_rate,
                &mut faults.receipt_first_rate,
            ),
        ];
        for (name, value, slot) in rates {
            if let Some(value) = value {
                if !(0.0..=1.0).contains(&value) {
                    return Err(ApiError::invalid_request(format!(
                        "{name} must be between 0.0 and 1.0"
                    )));
                }
                *slot = value;
            }
        }
        if let Some(refuse) = self.refuse_binds {
            faults.refuse_binds = refuse;
        }
        if let Some(after) = self.drop_connection_after {
            faults.drop_connection_after = (after > 0).then_some(after);
        }
        if let Some(accepted) = self.drop_accepted {
            faults.drop_accepted = accepted;
        }
        Ok(faults)
    }
}

/// The SMS centre's control routes, for the operator's router.
pub(crate) fn routes(smsc: Arc<Smsc>) -> Router {
    Router::new()
        .route("/sim/smpp/faults", get(faults).put(set_faults))
        .route("/sim/smpp/duplicates", get(duplicates))
        .with_state(smsc)
}

async fn faults(State(smsc): State<Arc<Smsc>>) -> axum::Json<SmppFaults> {
    axum::Json(smsc.faults())
}

async fn set_faults(
    State(smsc): State<Arc<Smsc>>,
    body: Bytes,
) -> Result<axum::Json<SmppFaults>, ApiError> {
    let patch: SmppFaultPatch = parse_json(&body)?;
    let faults = patch.apply(smsc.faults())?;
    smsc.set_faults(faults);
    tracing::info!(simulator = %smsc.ctx.kind, ?faults, "SMPP faults set");
    Ok(axum::Json(faults))
}

async fn duplicates(State(smsc): State<Arc<Smsc>>) -> axum::Json<Value> {
    axum::Json(json!({ "duplicates": smsc.duplicates() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch(body: &str) -> Result<SmppFaults, ApiError> {
        let patch: SmppFaultPatch =
            serde_json::from_str(body).map_err(|_| ApiError::invalid_request("not a patch"))?;
        patch.apply(SmppFaults::default())
    }

    #[test]
    fn a_patch_sets_what_it_names_and_refuses_what_is_out_of_range() {
        let faults = patch(r#"{"throttle_rate": 0.5, "drop_connection_after": 3}"#).expect("valid");
        assert_eq!(faults.throttle_rate, 0.5);
        assert_eq!(faults.drop_connection_after, Some(3));
        assert_eq!(faults.queue_full_rate, 0.0);
        assert!(patch(r#"{"throttle_rate": 1.5}"#).is_err());
        assert!(patch(r#"{"latency_ms": 600000}"#).is_err());
        assert!(
            patch(r#"{"drop_connection_after": 0}"#)
                .expect("valid")
                .drop_connection_after
                .is_none()
        );
        assert!(patch(r#"{"unknown": 1}"#).is_err());
    }
}
