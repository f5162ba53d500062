//! The ERIP simulator over real HTTP: invoices, payment by account number, cancel, refund,
//! expiry, idempotency keys, and the signed notifications with their retries and faults,
//! received by a tiny server that checks every signature.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use chrono::{TimeDelta, Utc};
use common::{Sims, eventually};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use simulators::{SimConfig, SimKind};
use tokio_util::sync::CancellationToken;

const ERIP: SimKind = SimKind::Erip;
const SECRET: &str = "test-erip-secret";

async fn erip() -> Sims {
    Sims::start(SimConfig {
        only: Some(vec![ERIP]),
        erip_secret: SECRET.to_owned(),
        ..SimConfig::ephemeral()
    })
    .await
}

/// A fresh 30-digit account number, so that tests never share one.
fn account() -> String {
    format!("{:030}", uuid::Uuid::new_v4().as_u128() % 10_u128.pow(30))
}

fn new_invoice(account: &str, notify_url: Option<&str>) -> Value {
    json!({
        "account_number": account,
        "amount": 2750,
        "currency": 933,
        "description": "State fee",
        "expires_at": (Utc::now() + TimeDelta::hours(1)).to_rfc3339(),
        "notify_url": notify_url,
    })
}

/// Registers an invoice and returns its id.
async fn create(sims: &Sims, account: &str, notify_url: Option<&str>) -> String {
    let (status, body) = sims
        .post(
            ERIP,
            "api/v1/invoices",
            None,
            &new_invoice(account, notify_url),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["invoice_id"].as_str().expect("an id").to_owned()
}

async fn pay(sims: &Sims, account: &str, body: &Value) -> (StatusCode, Value) {
    sims.post(
        ERIP,
        &format!("sim/invoices/by-account/{account}/pay"),
        None,
        body,
    )
    .await
}

/// The invoice's record in `GET /sim/invoices`, with its notifications.
async fn sim_record(sims: &Sims, account: &str) -> Value {
    let (status, body) = sims
        .get(ERIP, &format!("sim/invoices?account_number={account}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let invoices = body["invoices"].as_array().expect("invoices");
    assert_eq!(invoices.len(), 1, "{body}");
    invoices[0].clone()
}

/// One notification as received: its raw bytes and its signature header.
#[derive(Debug, Clone)]
struct Received {
    body: Bytes,
    signature: Option<String>,
    at: Instant,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON notification")
    }
}

/// A tiny HTTP server that records the notifications POSTed to it.
struct Receiver {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
    shutdown: CancellationToken,
}

#[derive(Clone)]
struct ReceiverState {
    received: Arc<Mutex<Vec<Received>>>,
    failures_left: Arc<AtomicU32>,
}

impl Receiver {
    /// Starts a receiver on a free port that answers 500 to its first `fail_first` posts.
    async fn start(fail_first: u32) -> Receiver {
        let received = Arc::new(Mutex::new(Vec::new()));
        let state = ReceiverState {
            received: received.clone(),
            failures_left: Arc::new(AtomicU32::new(fail_first)),
        };
        let app = axum::Router::new()
            .route("/callbacks/erip", post(record))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the receiver binds");
        let addr = listener.local_addr().expect("an address");
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
                .expect("the receiver serves");
        });
        Receiver {
            url: format!("http://{addr}/callbacks/erip"),
            received,
            shutdown,
        }
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().expect("the lock").clone()
    }

    /// Waits until at least `n` notifications arrived and returns them, each checked for a
    /// good signature.
    async fn wait_for(&self, n: usize) -> Vec<Received> {
        let received = eventually(&format!("{n} notification(s)"), || async {
            let received = self.received();
            (received.len() >= n).then_some(received)
        })
        .await;
        for r in &received {
            assert_signed(r);
        }
        received
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn record(State(state): State<ReceiverState>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let failing = state
        .failures_left
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if failing {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let signature = headers
        .get("x-erip-signature")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    state.received.lock().expect("the lock").push(Received {
        body,
        signature,
        at: Instant::now(),
    });
    StatusCode::NO_CONTENT
}

/// Checks the signature as a receiver must: HMAC-SHA256 over the exact bytes, constant time.
fn assert_signed(received: &Received) {
    let header = received.signature.as_deref().expect("a signature header");
    let hex_mac = header.strip_prefix("sha256=").expect("the sha256= prefix");
    let tag = hex::decode(hex_mac).expect("hex");
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("a key");
    mac.update(&received.body);
    mac.verify_slice(&tag).expect("a good signature");
}

#[tokio::test]
async fn create_pay_and_a_signed_notification() {
    let sims = erip().await;
    let receiver = Receiver::start(0).await;
    let account = account();
    let (status, invoice) = sims
        .post(
            ERIP,
            "api/v1/invoices",
            Some("5b0c7a52-1111-4111-8111-111111111111"),
            &new_invoice(&account, Some(&receiver.url)),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{invoice}");
    let invoice_id = invoice["invoice_id"].as_str().expect("an id").to_owned();
    assert!(invoice_id.starts_with("erip-"), "{invoice_id}");
    assert_eq!(invoice["account_number"], account);
    assert_eq!(invoice["amount"], 2750);
    assert_eq!(invoice["currency"], 933);
    assert_eq!(invoice["status"], "awaiting");
    assert_eq!(invoice["payment"], Value::Null);
    assert!(
        invoice["created_at"]
            .as_str()
            .expect("a time")
            .ends_with('Z')
    );
    assert!(
        invoice["expires_at"]
            .as_str()
            .expect("a time")
            .ends_with('Z')
    );

    let (status, paid) = pay(&sims, &account, &json!({"channel": "terminal"})).await;
    assert_eq!(status, StatusCode::CREATED, "{paid}");
    assert_eq!(paid["status"], "paid");
    assert_eq!(paid["payment"]["channel"], "terminal");
    assert_eq!(paid["payment"]["amount"], 2750);
    let operation_id = paid["payment"]["operation_id"]
        .as_str()
        .expect("an operation id")
        .to_owned();
    assert!(
        operation_id.bytes().all(|b| b.is_ascii_digit()),
        "{operation_id}"
    );

    let received = receiver.wait_for(1).await;
    let notification = received[0].json();
    assert_eq!(notification["invoice_id"], invoice_id.as_str());
    assert_eq!(notification["account_number"], account);
    assert_eq!(notification["status"], "paid");
    assert_eq!(notification["amount"], 2750);
    assert_eq!(notification["operation_id"], operation_id.as_str());
    assert!(
        notification["event_id"]
            .as_str()
            .is_some_and(|e| !e.is_empty())
    );
    assert!(
        notification["occurred_at"]
            .as_str()
            .expect("a time")
            .ends_with('Z')
    );

    let (status, current) = sims
        .get(ERIP, &format!("api/v1/invoices/{invoice_id}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(current["status"], "paid");
    assert_eq!(current["payment"]["operation_id"], operation_id.as_str());

    let record = eventually("the notification to be settled", || async {
        let record = sim_record(&sims, &account).await;
        (record["notifications"][0]["delivery"] == "sent").then_some(record)
    })
    .await;
    assert_eq!(record["notify_url"], receiver.url.as_str());
    assert_eq!(record["notifications"][0]["attempts"], 1);
    assert_eq!(record["notifications"][0]["sent"], 1);

    // Paying twice is a second payment (ERIP takes it; the provider owes it back), notified
    // with its own operation number; an unknown account is not found.
    let (status, body) = pay(&sims, &account, &json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        (body["status"].clone(), body["paid_amount"].clone()),
        (json!("paid"), json!(5500))
    );
    let second = receiver.wait_for(2).await[1].json();
    assert_eq!(
        (second["status"].clone(), second["amount"].clone()),
        (json!("paid"), json!(2750))
    );
    assert_ne!(second["operation_id"], operation_id.as_str());
    let (status, body) = pay(&sims, &"9".repeat(30), &json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "unknown_account");
    let (status, body) = sims.get(ERIP, "api/v1/invoices/erip-nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "unknown_invoice");
    sims.stop().await;
}

#[tokio::test]
async fn a_create_is_idempotent_by_its_key_and_an_account_number_is_registered_once() {
    let sims = erip().await;
    let account = account();
    let body = new_invoice(&account, None);
    let key = "5b0c7a52-2222-4222-8222-222222222222";
    let (first_status, first) = sims.post(ERIP, "api/v1/invoices", Some(key), &body).await;
    assert_eq!(first_status, StatusCode::CREATED, "{first}");

    let response = sims
        .client
        .post(sims.url(ERIP, "api/v1/invoices"))
        .header("Idempotency-Key", key)
        .json(&body)
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status().as_u16(), 201);
    assert_eq!(
        response
            .headers()
            .get("idempotent-replayed")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    let replayed: Value = response.json().await.expect("JSON");
    assert_eq!(replayed, first);

    // The same key with another body is a conflict.
    let mut other = body.clone();
    other["amount"] = json!(100);
    let (status, answer) = sims.post(ERIP, "api/v1/invoices", Some(key), &other).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(answer["error"], "idempotency_conflict");

    // Another key (or none) for the same account number is a duplicate.
    for key in [None, Some("5b0c7a52-3333-4333-8333-333333333333")] {
        let (status, answer) = sims.post(ERIP, "api/v1/invoices", key, &body).await;
        assert_eq!(status, StatusCode::CONFLICT, "{answer}");
        assert_eq!(answer["error"], "duplicate_account_number");
    }
    let (_, list) = sims.get(ERIP, "sim/invoices").await;
    assert_eq!(list["invoices"].as_array().expect("invoices").len(), 1);
    sims.stop().await;
}

#[tokio::test]
async fn malformed_invoices_are_400() {
    let sims = erip().await;
    let good = new_invoice(&account(), None);
    let past = (Utc::now() - TimeDelta::minutes(1)).to_rfc3339();
    for (field, value) in [
        ("account_number", json!("12345")),
        ("account_number", json!(format!("{}a", "1".repeat(29)))),
        ("amount", json!(0)),
        ("amount", json!(-5)),
        ("amount", json!(27.5)),
        ("currency", json!(840)),
        ("description", json!("  ")),
        ("description", json!("x".repeat(256))),
        ("expires_at", json!("tomorrow")),
        ("expires_at", json!(past)),
        ("notify_url", json!("ftp://example.org/x")),
        ("notify_url", json!("/relative")),
    ] {
        let mut body = good.clone();
        body[field] = value.clone();
        let key = Some("5b0c7a52-4444-4444-8444-444444444444");
        let (status, answer) = sims.post(ERIP, "api/v1/invoices", key, &body).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{field} = {value}: {answer}"
        );
        assert_eq!(answer["error"], "invalid_request");
    }
    // A 400 is not stored: the key works with the corrected body.
    let key = Some("5b0c7a52-4444-4444-8444-444444444444");
    let (status, answer) = sims.post(ERIP, "api/v1/invoices", key, &good).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    sims.stop().await;
}

#[tokio::test]
async fn cancel_an_awaiting_invoice_but_not_a_paid_one() {
    let sims = erip().await;
    let receiver = Receiver::start(0).await;
    let account = account();
    let invoice_id = create(&sims, &account, Some(&receiver.url)).await;
    let cancel = format!("api/v1/invoices/{invoice_id}/cancel");
    let key = Some("5b0c7a52-5555-4555-8555-555555555555");
    let (status, body) = sims.post(ERIP, &cancel, key, &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "cancelled");
    let received = receiver.wait_for(1).await;
    let notification = received[0].json();
    assert_eq!(notification["status"], "cancelled");
    assert_eq!(notification["amount"], 2750);
    assert!(notification.get("operation_id").is_none(), "{notification}");

    // Cancelling again is fine and changes nothing; paying is refused.
    let (status, body) = sims.post(ERIP, &cancel, None, &json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "cancelled");
    let (status, body) = pay(&sims, &account, &json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"], "not_awaiting");

    // A paid invoice cannot be cancelled.
    let paid_account = self::account();
    let paid_id = create(&sims, &paid_account, None).await;
    let (status, _) = pay(&sims, &paid_account, &json!({"channel": "bank"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = sims
        .post(
            ERIP,
            &format!("api/v1/invoices/{paid_id}/cancel"),
            None,
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"], "already_paid");
    let (status, body) = sims
        .post(ERIP, "api/v1/invoices/erip-nope/cancel", None, &json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "unknown_invoice");

    // Only the one change was notified (notifications are recorded with the change).
    let record = sim_record(&sims, &account).await;
    assert_eq!(record["notifications"].as_array().map(Vec::len), Some(1));
    sims.stop().await;
}

#[tokio::test]
async fn refund_a_paid_invoice() {
    let sims = erip().await;
    let receiver = Receiver::start(0).await;
    let account = account();
    let invoice_id = create(&sims, &account, Some(&receiver.url)).await;
    let refund = format!("api/v1/invoices/{invoice_id}/refund");

    let (status, body) = sims.post(ERIP, &refund, None, &json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"], "not_paid");

    let (_, paid) = pay(
        &sims,
        &account,
        &json!({"channel": "internet_banking", "amount": 3000}),
    )
    .await;
    assert_eq!(paid["payment"]["amount"], 3000);
    assert_eq!(paid["payment"]["channel"], "internet_banking");
    let operation_id = paid["payment"]["operation_id"].clone();
    receiver.wait_for(1).await;

    let (status, body) = sims.post(ERIP, &refund, None, &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "refunded");
    assert_eq!(body["payment"]["operation_id"], operation_id);

    let received = receiver.wait_for(2).await;
    let paid_notice = received[0].json();
    let refunded = received[1].json();
    assert_eq!(paid_notice["status"], "paid");
    assert_eq!(paid_notice["amount"], 3000);
    assert_eq!(refunded["status"], "refunded");
    assert_eq!(refunded["amount"], 3000);
    assert_eq!(refunded["operation_id"], operation_id);
    assert_ne!(refunded["event_id"], paid_notice["event_id"]);

    let (status, body) = sims.post(ERIP, &refund, None, &json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "refunded");
    let (status, body) = sims
        .post(
            ERIP,
            &format!("api/v1/invoices/{invoice_id}/cancel"),
            None,
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"], "already_paid");
    sims.stop().await;
}

#[tokio::test]
async fn short_payments_add_up_late_ones_need_asking_and_one_payment_can_go_back() {
    let sims = erip().await;
    let receiver = Receiver::start(0).await;
    let account = account();
    create(&sims, &account, Some(&receiver.url)).await;

    // 10.00 of 27.50: still awaiting (payable), the notice carries the payment's own amount.
    let (status, short) = pay(&sims, &account, &json!({"amount": 1000})).await;
    assert_eq!(status, StatusCode::CREATED, "{short}");
    assert_eq!(short["status"], "awaiting");
    assert_eq!(short["payment"], Value::Null);
    let notice = receiver.wait_for(1).await[0].json();
    assert_eq!(
        (notice["status"].clone(), notice["amount"].clone()),
        (json!("paid"), json!(1000))
    );
    // By default the rest is paid.
    let (_, full) = pay(&sims, &account, &json!({})).await;
    assert_eq!(
        (full["status"].clone(), full["paid_amount"].clone()),
        (json!("paid"), json!(2750))
    );
    assert_eq!(receiver.wait_for(2).await[1].json()["amount"], 1750);

    // The bank reverses the second payment: the invoice is payable again.
    let return_path = format!("sim/invoices/by-account/{account}/return");
    let (status, back) = sims
        .post(ERIP, &return_path, None, &json!({"reversal": true}))
        .await;
    assert_eq!(status, StatusCode::OK, "{back}");
    assert_eq!(
        (back["status"].clone(), back["paid_amount"].clone()),
        (json!("awaiting"), json!(1000))
    );
    let reversed = receiver.wait_for(3).await[2].json();
    assert_eq!(
        (reversed["status"].clone(), reversed["amount"].clone()),
        (json!("reversed"), json!(1750))
    );

    // Closed, it takes only a payment asked to be late.
    sims.post(
        ERIP,
        "sim/clock/expire",
        None,
        &json!({"at": "2999-01-01T00:00:00Z"}),
    )
    .await;
    let (status, body) = pay(&sims, &account, &json!({})).await;
    assert_eq!(
        (status, body["error"].clone()),
        (StatusCode::CONFLICT, json!("not_awaiting"))
    );
    let (status, late) = pay(&sims, &account, &json!({"late": true, "amount": 500})).await;
    assert_eq!(status, StatusCode::CREATED, "{late}");
    assert_eq!(late["status"], "expired");
    let notices = receiver.wait_for(5).await;
    assert_eq!(notices[3].json()["status"], "expired");
    assert_eq!(
        (
            notices[4].json()["status"].clone(),
            notices[4].json()["amount"].clone()
        ),
        (json!("paid"), json!(500))
    );
    sims.stop().await;
}

#[tokio::test]
async fn the_clock_expires_invoices_on_demand_and_by_itself() {
    let sims = erip().await;
    let receiver = Receiver::start(0).await;
    let account = account();
    let invoice_id = create(&sims, &account, Some(&receiver.url)).await;

    // Nothing is due now.
    let (status, body) = sims.post(ERIP, "sim/clock/expire", None, &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["expired"], json!([]));

    // As if two hours had passed.
    let at = (Utc::now() + TimeDelta::hours(2)).to_rfc3339();
    let (status, body) = sims
        .post(ERIP, "sim/clock/expire", None, &json!({"at": at}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["expired"], json!([invoice_id]));
    let received = receiver.wait_for(1).await;
    assert_eq!(received[0].json()["status"], "expired");
    assert_eq!(received[0].json()["invoice_id"], invoice_id.as_str());

    let (status, body) = pay(&sims, &account, &json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"], "not_awaiting");
    let (status, body) = sims
        .post(
            ERIP,
            &format!("api/v1/invoices/{invoice_id}/cancel"),
            None,
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"], "invoice_expired");

    // An invoice due in a moment is expired by the clock, untouched.
    let soon = self::account();
    let mut body = new_invoice(&soon, Some(&receiver.url));
    body["expires_at"] = json!((Utc::now() + TimeDelta::milliseconds(300)).to_rfc3339());
    let (status, created) = sims.post(ERIP, "api/v1/invoices", None, &body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let received = receiver.wait_for(2).await;
    assert_eq!(received[1].json()["status"], "expired");
    assert_eq!(received[1].json()["account_number"], soon.as_str());
    let (status, body) = sims.get(ERIP, "sim/invoices?status=expired").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["invoices"].as_array().expect("invoices").len(), 2);
    sims.stop().await;
}

#[tokio::test]
async fn duplicated_notifications_carry_the_same_event_and_bytes() {
    let sims = erip().await;
    let receiver = Receiver::start(0).await;
    let (status, _) = sims
        .put_faults(ERIP, &json!({"duplicate_callback_rate": 1.0}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let account = account();
    create(&sims, &account, Some(&receiver.url)).await;
    pay(&sims, &account, &json!({})).await;
    let received = receiver.wait_for(2).await;
    assert_eq!(received[0].body, received[1].body);
    assert_eq!(
        received[0].json()["event_id"],
        received[1].json()["event_id"]
    );
    let record = eventually("both copies to be counted", || async {
        let record = sim_record(&sims, &account).await;
        (record["notifications"][0]["sent"] == 2).then_some(record)
    })
    .await;
    assert_eq!(record["notifications"][0]["delivery"], "sent");
    sims.stop().await;
}

#[tokio::test]
async fn dropped_notifications_never_arrive_and_failing_receivers_get_retries() {
    let sims = erip().await;
    let receiver = Receiver::start(2).await;
    sims.put_faults(ERIP, &json!({"drop_callback_rate": 1.0}))
        .await;
    let dropped = account();
    create(&sims, &dropped, Some(&receiver.url)).await;
    pay(&sims, &dropped, &json!({})).await;
    let record = eventually("the notification to be dropped", || async {
        let record = sim_record(&sims, &dropped).await;
        (record["notifications"][0]["delivery"] == "dropped").then_some(record)
    })
    .await;
    assert_eq!(record["status"], "paid");
    assert_eq!(record["notifications"][0]["attempts"], 0);

    sims.put_faults(ERIP, &json!({"drop_callback_rate": 0.0}))
        .await;
    let retried = account();
    create(&sims, &retried, Some(&receiver.url)).await;
    pay(&sims, &retried, &json!({})).await;
    let received = receiver.wait_for(1).await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].json()["account_number"], retried.as_str());
    let record = eventually("the notification to be settled", || async {
        let record = sim_record(&sims, &retried).await;
        (record["notifications"][0]["delivery"] == "sent").then_some(record)
    })
    .await;
    assert_eq!(record["notifications"][0]["attempts"], 3);
    sims.stop().await;
}

#[tokio::test]
async fn notification_delay_is_honoured() {
    let sims = erip().await;
    let receiver = Receiver::start(0).await;
    let (status, faults) = sims
        .put_faults(ERIP, &json!({"notification_delay_ms": 600}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(faults["notification_delay_ms"], 600);
    let account = account();
    create(&sims, &account, Some(&receiver.url)).await;
    let paid_at = Instant::now();
    let (status, _) = pay(&sims, &account, &json!({})).await;
    assert_eq!(status, StatusCode::CREATED);
    let received = receiver.wait_for(1).await;
    let waited = received[0].at.duration_since(paid_at);
    assert!(
        waited >= Duration::from_millis(600),
        "the notification came after {waited:?}"
    );

    let (status, body) = sims
        .put_faults(ERIP, &json!({"notification_delay_ms": 600_001}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    sims.stop().await;
}

#[tokio::test]
async fn error_rate_fails_the_api_with_503_and_has_no_effect() {
    let sims = erip().await;
    sims.put_faults(ERIP, &json!({"error_rate": 1.0})).await;
    let account = account();
    let body = new_invoice(&account, None);
    let key = Some("5b0c7a52-6666-4666-8666-666666666666");
    let (status, answer) = sims.post(ERIP, "api/v1/invoices", key, &body).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer["error"], "unavailable");
    let (status, _) = sims.get(ERIP, "api/v1/invoices/erip-x").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    // The simulator-only paths are never failed.
    let (status, list) = sims.get(ERIP, "sim/invoices").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["invoices"], json!([]));

    sims.put_faults(ERIP, &json!({"error_rate": 0.0})).await;
    let (status, answer) = sims.post(ERIP, "api/v1/invoices", key, &body).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let (status, body) = sims.get(ERIP, "sim/health").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"status": "ok", "simulator": "erip"}));
    sims.stop().await;
}

#[tokio::test]
async fn erip_starts_with_the_others_on_its_own_port() {
    let sims = Sims::start(SimConfig {
        only: Some(vec![SimKind::Mvd, ERIP]),
        population: 10,
        ..SimConfig::ephemeral()
    })
    .await;
    let url = sims.running.erip.as_ref().expect("erip runs");
    assert_eq!(sims.running.operator_url(ERIP), Some(url));
    assert!(url.as_str().ends_with('/'));
    assert!(sims.running.a1.is_none());
    assert!(!ERIP.is_operator());
    assert_eq!("erip".parse::<SimKind>(), Ok(ERIP));
    sims.stop().await;
}
