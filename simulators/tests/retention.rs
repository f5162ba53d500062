//! The simulators' bounds over real HTTP: with a small `--keep-records` / `--keep-keys`, the
//! oldest records and keys are dropped first, the newest stay, and a dropped one answers as
//! README.md ("Retention") says: as one the simulator never had.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use chrono::{TimeDelta, Utc};
use common::{Sims, eventually};
use serde_json::{Value, json};
use simulators::{Retention, SimConfig, SimKind};

/// Two records per store, two idempotency keys per simulator.
async fn small(only: Vec<SimKind>) -> Sims {
    Sims::start(SimConfig {
        only: Some(only),
        retention: Retention {
            records: 2,
            keys: 2,
            max_age: Duration::from_secs(3600),
        },
        ..SimConfig::ephemeral()
    })
    .await
}

fn message(text: &str) -> Value {
    json!({"sender": "E-SERVICES", "to": "+375441112233", "text": text})
}

/// The texts on the phone, oldest first.
async fn texts(sims: &Sims) -> Vec<String> {
    let (status, body) = sims.get(SimKind::A1, "sim/inbox/+375441112233").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["text"].as_str().expect("a text").to_owned())
        .collect()
}

#[tokio::test]
async fn an_operator_keeps_its_newest_messages_inboxes_and_keys() {
    let sims = small(vec![SimKind::A1]).await;
    let mut ids = Vec::new();
    for n in 1..=3 {
        let key = format!("key-{n}");
        let (status, body) = sims
            .post(
                SimKind::A1,
                "api/v1/messages",
                Some(&key),
                &message(&format!("text {n}")),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        ids.push(body["message_id"].as_str().expect("an id").to_owned());
        // One at a time, so the phone receives them in this order.
        let want = format!("text {n}");
        eventually("the message on the phone", || async {
            texts(&sims).await.contains(&want).then_some(())
        })
        .await;
    }
    // The phone shows its two newest; the first went.
    assert_eq!(texts(&sims).await, vec!["text 2", "text 3"]);
    // The oldest message is unknown, as an id never given.
    let (status, body) = sims
        .get(SimKind::A1, &format!("sim/messages/{}", ids[0]))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"], "not_found");
    let (status, body) = sims
        .get(SimKind::A1, &format!("sim/messages/{}", ids[2]))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["text"], "text 3");
    // The newest key is still deduplicated: the same message id, nothing sent.
    let (status, body) = sims
        .post(
            SimKind::A1,
            "api/v1/messages",
            Some("key-3"),
            &message("text 3"),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["message_id"], ids[2].as_str());
    // The oldest key was dropped: a very late retry is a new message.
    let (status, body) = sims
        .post(
            SimKind::A1,
            "api/v1/messages",
            Some("key-1"),
            &message("text 1"),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_ne!(body["message_id"], ids[0].as_str(), "served anew");
    sims.stop().await;
}

fn invoice(account: &str) -> Value {
    json!({
        "account_number": account,
        "amount": 2750,
        "currency": 933,
        "description": "State fee",
        "expires_at": (Utc::now() + TimeDelta::hours(1)).to_rfc3339(),
    })
}

#[tokio::test]
async fn erip_keeps_its_newest_invoices() {
    let sims = small(vec![SimKind::Erip]).await;
    let accounts: Vec<String> = (1..=3).map(|n| format!("{n:030}")).collect();
    let mut ids = Vec::new();
    for account in &accounts {
        let (status, body) = sims
            .post(SimKind::Erip, "api/v1/invoices", None, &invoice(account))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        ids.push(body["invoice_id"].as_str().expect("an id").to_owned());
    }
    // The oldest invoice is unknown by its id and by its account number.
    let (status, body) = sims
        .get(SimKind::Erip, &format!("api/v1/invoices/{}", ids[0]))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"], "unknown_invoice");
    let (status, body) = sims
        .post(
            SimKind::Erip,
            &format!("sim/invoices/by-account/{}/pay", accounts[0]),
            None,
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"], "unknown_account");
    // The newest are there, and payable.
    let (status, body) = sims
        .get(SimKind::Erip, &format!("api/v1/invoices/{}", ids[2]))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = sims
        .post(
            SimKind::Erip,
            &format!("sim/invoices/by-account/{}/pay", accounts[1]),
            None,
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = sims.get(SimKind::Erip, "sim/invoices").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let listed: Vec<&str> = body["invoices"]
        .as_array()
        .expect("invoices")
        .iter()
        .map(|i| i["invoice_id"].as_str().expect("an id"))
        .collect();
    assert_eq!(listed, vec![ids[1].as_str(), ids[2].as_str()]);
    // The dropped account number may be registered again.
    let (status, body) = sims
        .post(
            SimKind::Erip,
            "api/v1/invoices",
            None,
            &invoice(&accounts[0]),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    sims.stop().await;
}
