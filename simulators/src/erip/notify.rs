//! Sending ERIP's notifications: each signed with HMAC-SHA256 over its exact body bytes, retried
//! while the receiver fails, and — by the faults — delayed, dropped or sent twice, because the
//! hub must cope with payment notices that are late, lost or repeated.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use url::Url;

use super::api::{Delivery, EripState};
use crate::faults::roll;

/// The header carrying the signature: `sha256=<lower-case hex>`.
pub(super) const SIGNATURE_HEADER: &str = "x-erip-signature";

/// How many times a notification is retried after its first attempt.
const RETRIES: u32 = 5;

/// The wait before the first retry; it doubles for each next one (0.2, 0.4, 0.8, 1.6, 3.2 s).
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// A notification ready to go: its body is serialised and signed once, so that every attempt
/// and every duplicate carries the identical bytes and signature.
#[derive(Debug, Clone)]
pub(super) struct Outgoing {
    invoice_id: String,
    event_id: String,
    url: Url,
    body: Vec<u8>,
    signature: String,
}

impl Outgoing {
    pub(super) fn new(
        invoice_id: String,
        event_id: String,
        url: Url,
        body: Vec<u8>,
        secret: &[u8],
    ) -> Self {
        let signature = sign(secret, &body);
        Outgoing {
            invoice_id,
            event_id,
            url,
            body,
            signature,
        }
    }
}

/// `sha256=<hex of HMAC-SHA256(secret, body)>`. The operators sign their delivery reports
/// with it too: one scheme, as the hub checks one.
pub(crate) fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        // HMAC takes a key of any length (a long one is hashed first), so this is never taken;
        // an all-zero key is what an empty key means to HMAC anyway.
        Err(_) => Hmac::<Sha256>::new(&Default::default()),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Sends one notification, by the faults in force when it starts. Stops early when the
/// simulator shuts down.
pub(super) async fn deliver(state: Arc<EripState>, outgoing: Outgoing) {
    let faults = state.ctx.faults.get();
    let update = |change: &dyn Fn(&mut super::api::NotificationRecord)| {
        state.update_notification(&outgoing.invoice_id, &outgoing.event_id, change);
    };
    if roll(faults.drop_callback_rate) {
        update(&|n| n.delivery = Delivery::Dropped);
        tracing::info!(
            simulator = %state.ctx.kind,
            invoice_id = %outgoing.invoice_id,
            event_id = %outgoing.event_id,
            "notification dropped (fault)"
        );
        return;
    }
    let copies = if roll(faults.duplicate_callback_rate) {
        2
    } else {
        1
    };
    if faults.notification_delay_ms > 0
        && !sleep(&state, Duration::from_millis(faults.notification_delay_ms)).await
    {
        update(&|n| n.delivery = Delivery::Cancelled);
        return;
    }
    for _ in 0..copies {
        let outcome = send(&state, &outgoing).await;
        update(&|n| match outcome {
            Delivery::Sent => {
                n.sent += 1;
                n.delivery = Delivery::Sent;
            }
            other if n.sent == 0 => n.delivery = other,
            _ => {}
        });
        if outcome != Delivery::Sent {
            return;
        }
    }
}

/// POSTs a notification until the receiver answers 2xx: the first attempt and up to
/// [`RETRIES`] more with a doubling backoff.
async fn send(state: &EripState, outgoing: &Outgoing) -> Delivery {
    let mut backoff = FIRST_BACKOFF;
    for attempt in 0..=RETRIES {
        if attempt > 0 {
            if !sleep(state, backoff).await {
                return Delivery::Cancelled;
            }
            backoff *= 2;
        }
        state.update_notification(&outgoing.invoice_id, &outgoing.event_id, |n| {
            n.attempts += 1;
        });
        let request = state
            .deps
            .client
            .post(outgoing.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, &outgoing.signature)
            .body(outgoing.body.clone())
            .send();
        let result = tokio::select! {
            result = request => result,
            () = state.ctx.shutdown.cancelled() => return Delivery::Cancelled,
        };
        match result {
            Ok(response) if response.status().is_success() => {
                tracing::debug!(
                    simulator = %state.ctx.kind,
                    invoice_id = %outgoing.invoice_id,
                    event_id = %outgoing.event_id,
                    attempt = attempt + 1,
                    "notification sent"
                );
                return Delivery::Sent;
            }
            Ok(response) => tracing::info!(
                simulator = %state.ctx.kind,
                invoice_id = %outgoing.invoice_id,
                event_id = %outgoing.event_id,
                attempt = attempt + 1,
                status = %response.status(),
                "notification refused"
            ),
            Err(e) => tracing::info!(
                simulator = %state.ctx.kind,
                invoice_id = %outgoing.invoice_id,
                event_id = %outgoing.event_id,
                attempt = attempt + 1,
                error = %e.without_url(),
                "notification failed"
            ),
        }
    }
    tracing::warn!(
        simulator = %state.ctx.kind,
        invoice_id = %outgoing.invoice_id,
        event_id = %outgoing.event_id,
        "notification given up"
    );
    Delivery::GaveUp
}

/// Sleeps unless shutdown comes first; true when the whole time passed.
async fn sleep(state: &EripState, duration: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(duration) => true,
        () = state.ctx.shutdown.cancelled() => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_rfc_4231_hmac_sha256_in_hex() {
        // RFC 4231, test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
