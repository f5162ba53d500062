//! The mobile operators over real HTTP: who serves which number, sending, the inbox, delivery
//! reports (with retries and the drop/duplicate faults) and idempotency keys.

mod common;

use axum::http::StatusCode;
use common::{Receiver, Sims, eventually};
use serde_json::{Value, json};
use simulators::SimKind::{self, A1, Life, Mts};

const OPERATORS: [SimKind; 3] = [A1, Mts, Life];

async fn subscriber(sims: &Sims, kind: SimKind, msisdn: &str) -> (StatusCode, Value) {
    sims.get(kind, &format!("api/v1/subscribers/{msisdn}"))
        .await
}

fn message(to: &str, text: &str, callback_url: Option<&str>) -> Value {
    json!({"sender": "E-SERVICES", "to": to, "text": text, "callback_url": callback_url})
}

async fn send(sims: &Sims, kind: SimKind, key: Option<&str>, body: &Value) -> (StatusCode, Value) {
    sims.post(kind, "api/v1/messages", key, body).await
}

async fn inbox(sims: &Sims, kind: SimKind, msisdn: &str) -> Vec<Value> {
    let (status, body) = sims.get(kind, &format!("sim/inbox/{msisdn}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["messages"].as_array().expect("messages").clone()
}

/// Waits until the message's delivery and report are settled and returns its record.
async fn settled(sims: &Sims, kind: SimKind, message_id: &str) -> Value {
    eventually("the message to be settled", || async {
        let (status, body) = sims.get(kind, &format!("sim/messages/{message_id}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let delivered = body["status"] != "accepted";
        let reported = body["report"]["status"] != "pending";
        (delivered && reported).then_some(body)
    })
    .await
}

#[tokio::test]
async fn subscribers_by_prefix() {
    let sims = Sims::all().await;
    for (msisdn, owner) in [
        ("%2B375441234567", A1),
        ("%2B375291234567", A1),
        ("%2B375299234561", A1),
        ("%2B375292234567", Mts),
        ("375331234567", Mts),
        ("%2B375251234567", Life),
    ] {
        for kind in OPERATORS {
            let (status, body) = subscriber(&sims, kind, msisdn).await;
            if kind == owner {
                assert_eq!(status, StatusCode::OK, "{kind} {msisdn}: {body}");
                assert_eq!(body["operator"], kind.name());
                assert_eq!(body["status"], "active");
                assert!(body["msisdn"].as_str().expect("msisdn").starts_with("+375"));
            } else {
                assert_eq!(status, StatusCode::NOT_FOUND, "{kind} {msisdn}: {body}");
                assert_eq!(body["error"], "not_our_subscriber");
            }
        }
    }
    for invalid in ["%2B375171234567", "12345", "%2B375121234567"] {
        let (status, body) = subscriber(&sims, A1, invalid).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{invalid}");
        assert_eq!(body["error"], "invalid_msisdn");
    }
    sims.stop().await;
}

#[tokio::test]
async fn ported_unknown_and_blocked_numbers() {
    let sims = Sims::all().await;
    // +375 29 1... is A1's prefix, but ..77 moved to the next operator, MTS.
    let (status, body) = subscriber(&sims, Mts, "%2B375291234577").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["operator"], "mts");
    let (status, body) = subscriber(&sims, A1, "%2B375291234577").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_our_subscriber");
    // life:) wraps around to A1.
    let (status, _) = subscriber(&sims, A1, "%2B375251234577").await;
    assert_eq!(status, StatusCode::OK);

    for kind in OPERATORS {
        let (status, body) = subscriber(&sims, kind, "%2B375330000000").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{kind}: {body}");
    }

    let (status, body) = subscriber(&sims, Life, "%2B375259999999").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "blocked");
    let (status, body) = send(&sims, Life, None, &message("+375259999999", "Код: 1", None)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"], "subscriber_blocked");

    let (status, body) = send(&sims, A1, None, &message("+375291234577", "Код: 1", None)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_our_subscriber");
    sims.stop().await;
}

#[tokio::test]
async fn a_message_reaches_the_inbox_and_its_report_the_receiver() {
    let sims = Sims::all().await;
    let receiver = Receiver::start(0).await;
    let to = "+375291112233";
    let (status, body) = send(
        &sims,
        A1,
        Some("3f1c1c8e-0000-4000-8000-000000000001"),
        &message(to, "Код: 123456", Some(&receiver.url)),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "accepted");
    let message_id = body["message_id"].as_str().expect("an id").to_owned();
    assert!(message_id.starts_with("a1-"), "{message_id}");

    let reports = receiver.wait_for(1).await;
    assert_eq!(reports[0]["message_id"], message_id);
    assert_eq!(reports[0]["to"], to);
    assert_eq!(reports[0]["status"], "delivered");
    assert!(reports[0]["at"].as_str().expect("a time").ends_with('Z'));

    // The phone is one phone: any operator's simulator shows its inbox.
    for kind in OPERATORS {
        let messages = inbox(&sims, kind, "%2B375291112233").await;
        assert_eq!(messages.len(), 1, "{kind}");
        assert_eq!(messages[0]["message_id"], message_id);
        assert_eq!(messages[0]["text"], "Код: 123456");
        assert_eq!(messages[0]["sender"], "E-SERVICES");
    }
    let record = settled(&sims, A1, &message_id).await;
    assert_eq!(record["status"], "delivered");
    assert_eq!(record["report"]["status"], "sent");
    assert_eq!(record["report"]["sent"], 1);
    sims.stop().await;
}

/// `sha256=<hex of HMAC-SHA256(secret, body)>`, computed here so the test does not trust the
/// simulator's own signing code.
fn hmac_sha256_hex(secret: &[u8], body: &[u8]) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn each_operator_signs_its_reports_with_its_own_secret() {
    let secrets = simulators::OperatorSecrets {
        a1: "a1-test-key".into(),
        mts: "mts-test-key".into(),
        life: "life-test-key".into(),
    };
    let sims = Sims::start(simulators::SimConfig {
        operator_secrets: secrets.clone(),
        ..simulators::SimConfig::ephemeral()
    })
    .await;
    let numbers = [
        (A1, "+375441112201"),
        (Mts, "+375331112202"),
        (Life, "+375251112203"),
    ];
    for (n, (kind, to)) in numbers.into_iter().enumerate() {
        let receiver = Receiver::start(0).await;
        let (status, body) = send(&sims, kind, None, &message(to, "x", Some(&receiver.url))).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let report = receiver.wait_for(1).await;
        assert_eq!(report.len(), 1, "{n}");
        let got = receiver.signed().remove(0);
        let secret = secrets.get(kind).expect("an operator").as_bytes();
        assert_eq!(
            got.signature.as_deref(),
            Some(hmac_sha256_hex(secret, &got.body).as_str()),
            "{kind}'s report is signed over its body with {kind}'s secret"
        );
    }
    sims.stop().await;
}

#[tokio::test]
async fn a_phone_ending_in_8888_never_receives() {
    let sims = Sims::all().await;
    let receiver = Receiver::start(0).await;
    let (status, body) = send(
        &sims,
        Mts,
        None,
        &message("+375338888888", "Пароль: x", Some(&receiver.url)),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let message_id = body["message_id"].as_str().expect("an id").to_owned();
    let reports = receiver.wait_for(1).await;
    assert_eq!(reports[0]["status"], "failed");
    assert_eq!(reports[0]["message_id"], message_id);
    let record = settled(&sims, Mts, &message_id).await;
    assert_eq!(record["status"], "failed");
    assert!(inbox(&sims, Mts, "%2B375338888888").await.is_empty());
    sims.stop().await;
}

#[tokio::test]
async fn reports_are_retried_until_the_receiver_takes_them() {
    let sims = Sims::all().await;
    let receiver = Receiver::start(2).await;
    let (_, body) = send(
        &sims,
        Life,
        None,
        &message("+375251112233", "Код: 1", Some(&receiver.url)),
    )
    .await;
    let message_id = body["message_id"].as_str().expect("an id").to_owned();
    let reports = receiver.wait_for(1).await;
    assert_eq!(reports[0]["message_id"], message_id);
    let record = settled(&sims, Life, &message_id).await;
    assert_eq!(record["report"]["attempts"], 3);
    assert_eq!(record["report"]["status"], "sent");
    sims.stop().await;
}

#[tokio::test]
async fn duplicate_and_dropped_reports() {
    let sims = Sims::all().await;
    let receiver = Receiver::start(0).await;
    let (status, _) = sims
        .put_faults(A1, &json!({"duplicate_callback_rate": 1.0}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) = send(
        &sims,
        A1,
        None,
        &message("+375441112233", "Код: 2", Some(&receiver.url)),
    )
    .await;
    let message_id = body["message_id"].as_str().expect("an id").to_owned();
    let reports = receiver.wait_for(2).await;
    assert_eq!(reports[0], reports[1], "the same report twice");
    assert_eq!(reports[0]["message_id"], message_id);
    eventually("both reports to be recorded as sent", || async {
        let (_, record) = sims.get(A1, &format!("sim/messages/{message_id}")).await;
        (record["report"]["sent"] == 2).then_some(())
    })
    .await;

    // Dropped: the report is never sent; the message is still delivered.
    let dropping = Receiver::start(0).await;
    sims.put_faults(Mts, &json!({"drop_callback_rate": 1.0}))
        .await;
    let (_, body) = send(
        &sims,
        Mts,
        None,
        &message("+375331112233", "Код: 3", Some(&dropping.url)),
    )
    .await;
    let message_id = body["message_id"].as_str().expect("an id").to_owned();
    let record = settled(&sims, Mts, &message_id).await;
    assert_eq!(record["status"], "delivered");
    assert_eq!(record["report"]["status"], "dropped");
    assert_eq!(record["report"]["attempts"], 0);
    assert!(dropping.reports().is_empty());
    assert_eq!(inbox(&sims, Mts, "%2B375331112233").await.len(), 1);
    sims.stop().await;
}

#[tokio::test]
async fn the_same_key_sends_once() {
    let sims = Sims::all().await;
    let body = message("+375292223344", "Код: 777", None);
    let key = Some("5e0c1b1e-1111-4111-8111-111111111111");
    let (first_status, first) = send(&sims, Mts, key, &body).await;
    let (second_status, second) = send(&sims, Mts, key, &body).await;
    assert_eq!(first_status, StatusCode::ACCEPTED);
    assert_eq!(second_status, StatusCode::ACCEPTED);
    assert_eq!(first["message_id"], second["message_id"]);
    let message_id = first["message_id"].as_str().expect("an id").to_owned();
    let record = settled(&sims, Mts, &message_id).await;
    assert_eq!(record["report"]["status"], "none");
    assert_eq!(
        inbox(&sims, Mts, "%2B375292223344").await.len(),
        1,
        "one SMS only"
    );

    let other = message("+375292223344", "Код: 778", None);
    let (status, body) = send(&sims, Mts, key, &other).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"], "idempotency_conflict");

    // Without a key every POST is a new message.
    let (_, a) = send(&sims, Mts, None, &body_without_key()).await;
    let (_, b) = send(&sims, Mts, None, &body_without_key()).await;
    assert_ne!(a["message_id"], b["message_id"]);
    sims.stop().await;
}

fn body_without_key() -> Value {
    message("+375292223355", "Код: 1", None)
}

#[tokio::test]
async fn invalid_messages_are_400() {
    let sims = Sims::all().await;
    let (status, body) = send(&sims, A1, None, &json!({"to": "+375291234567"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_request");
    let (status, body) = send(&sims, A1, None, &message("+37529123", "x", None)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_msisdn");
    let (status, body) = send(
        &sims,
        A1,
        None,
        &message("+375291234567", "x", Some("not a url")),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_request");
    let (status, body) = sims.get(A1, "sim/messages/a1-nothing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_found");
    sims.stop().await;
}
