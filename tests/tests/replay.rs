//! Replays are refused, end to end (real RabbitMQ, PostgreSQL, the ERIP and GosSUOK simulators).
//!
//! - ERIP: a notification the simulator really sent, captured on its way to the hub and sent
//!   again later with the same bytes and signature, changes nothing (no second payment, no new
//!   message to the saga); a signature copied onto another notification, a validly signed one
//!   whose `occurred_at` is outside the acceptance window, and one about another invoice than
//!   the application's are refused.
//! - EDS: a signed challenge answers once: a second copy, even racing the first, is
//!   `challenge_used`; one past its time `challenge_expired`; a nonce the hub never issued
//!   `challenge_unknown`; a signature presented with another person's certificate
//!   `bad_signature`, which leaves the challenge to its holder.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine;
use contracts::cabinet::{CabinetOutcome, CabinetReply};
use contracts::procedure::{
    ApplicationAccepted, InvoiceNotified, PaymentReceived, SubmitApplication,
};
use contracts::registration::{EdsProof, LogInByEds, RegisterByEds};
use contracts::{Message, Metadata};
use e2e::eds::{certificate, holder, proof, sign};
use e2e::portal::{Portal, WAIT, plain};
use e2e::wait_until;
use serde_json::{Value, json};
use simulators::SimConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use uuid::Uuid;

/// A paid procedure (duplicate civil-status certificate, 21.00 BYN).
const PAID: &str = "5.13";

/// A notification as it reached the hub's callback, and the status the hub answered.
#[derive(Debug, Clone)]
struct Captured {
    body: Vec<u8>,
    signature: String,
    status: u16,
}

impl Captured {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON notification")
    }
}

/// What the tap saw of ERIP's notifications.
type Seen = Arc<Mutex<Vec<Captured>>>;

/// A tap between the simulators and the hub's callback listener: relays every callback as it
/// is and keeps a copy of ERIP's notifications, as someone on the wire could.
async fn tap(listener: TcpListener, hub: SocketAddr, seen: Seen) {
    let http = reqwest::Client::new();
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(relay(stream, hub, http.clone(), seen.clone()));
    }
}

fn position(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// One HTTP/1.1 request (the simulators send a `Content-Length` body), relayed; the connection
/// is closed after the answer.
async fn relay(mut stream: TcpStream, hub: SocketAddr, http: reqwest::Client, seen: Seen) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = position(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let path = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or("/")
        .to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let length: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body = buf[head_end..head_end + length].to_vec();
    let mut request = http.post(format!("http://{hub}{path}")).body(body.clone());
    for (k, v) in &headers {
        if !matches!(k.as_str(), "host" | "content-length" | "connection") {
            request = request.header(k.as_str(), v.as_str());
        }
    }
    let (status, answer) = match request.send().await {
        Ok(r) => (r.status().as_u16(), r.bytes().await.unwrap_or_default()),
        Err(_) => (502, Default::default()),
    };
    if path == "/callbacks/erip" {
        seen.lock().expect("lock").push(Captured {
            body,
            signature: header("x-erip-signature").unwrap_or_default(),
            status,
        });
    }
    let head = format!(
        "HTTP/1.1 {status} Relayed\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        answer.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(&answer).await;
    let _ = stream.shutdown().await;
}

/// The portal, with the simulators' callbacks going through a tap.
async fn portal_with_tap() -> (Portal, Seen, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let tap_url = format!(
        "http://{}/",
        listener.local_addr().expect("the tap's address")
    );
    let mut hub_addr = None;
    let portal = Portal::start_with(|c| {
        hub_addr = Some(c.http_addr);
        c.callback_url = tap_url.parse().expect("URL");
    })
    .await;
    let seen = Seen::default();
    let task = tokio::spawn(tap(
        listener,
        hub_addr.expect("the hub's callback address"),
        seen.clone(),
    ));
    (portal, seen, task)
}

/// ERIP's key, as the simulators sign with it.
fn erip_secret() -> Vec<u8> {
    SimConfig::default().erip_secret.into_bytes()
}

/// POSTs a notification to the hub's callback directly: (status, answer).
async fn post_erip(portal: &Portal, body: &[u8], signature: &str) -> (u16, String) {
    let r = reqwest::Client::new()
        .post(format!(
            "http://{}/callbacks/erip",
            portal.integrations.http_addr
        ))
        .header("content-type", "application/json")
        .header(adapters::erip::SIGNATURE_HEADER, signature)
        .body(body.to_vec())
        .send()
        .await
        .expect("the hub answers");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

/// `notification` changed by `edit`, signed with ERIP's key (as ERIP would have signed it).
fn resigned(notification: &Value, edit: impl FnOnce(&mut Value)) -> (Vec<u8>, String) {
    let mut n = notification.clone();
    edit(&mut n);
    let body = n.to_string().into_bytes();
    let signature = adapters::erip::sign_notification(&erip_secret(), &body);
    (body, signature)
}

fn paid_application(session: &contracts::cabinet::SessionToken) -> SubmitApplication {
    SubmitApplication {
        application_id: Uuid::new_v4(),
        procedure_code: PAID.into(),
        session_token: session.clone(),
        form: json!({"record_kind": "birth", "record_year": 1990})
            .as_object()
            .cloned()
            .expect("object"),
        attachments: vec![],
        delivery: Default::default(),
    }
}

/// What a payment left in the hub: the saga's state and version, the notifications recorded,
/// the messages for the saga written and the saga's steps taken on them.
#[derive(Debug, PartialEq, Eq)]
struct Effects {
    state: (String, i64),
    recorded: Vec<(String, String)>,
    messages: i64,
    steps: i64,
}

async fn effects(portal: &Portal, application_id: Uuid, order: &str) -> Effects {
    let pool = &portal.env.pool;
    let saga = hub_portal::procedures::saga::ProcedureSaga::key(application_id).id;
    let state = sqlx::query_as("SELECT state_name, version FROM sagas WHERE id = $1")
        .bind(saga)
        .fetch_one(pool)
        .await
        .expect("the saga");
    let recorded = sqlx::query_as(
        "SELECT status, event_id FROM erip_notifications WHERE account_number = $1
         ORDER BY status",
    )
    .bind(order)
    .fetch_all(pool)
    .await
    .expect("recorded notifications");
    let messages = sqlx::query_scalar(
        "SELECT count(*) FROM outbox
         WHERE metadata->>'message_type' = $1 AND metadata->>'correlation_id' = $2",
    )
    .bind(InvoiceNotified::TYPE.to_string())
    .bind(saga.to_string())
    .fetch_one(pool)
    .await
    .expect("outbox");
    let steps = sqlx::query_scalar(
        "SELECT count(*) FROM saga_history WHERE saga_id = $1 AND message_type = $2",
    )
    .bind(saga)
    .bind(InvoiceNotified::TYPE.to_string())
    .fetch_one(pool)
    .await
    .expect("history");
    Effects {
        state,
        recorded,
        messages,
        steps,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captured_erip_notification_sent_again_changes_nothing_and_forgeries_are_refused() {
    let (mut portal, seen, tap) = portal_with_tap().await;
    let (_, session) = portal.eds_session(0).await;
    let app = paid_application(&session);
    let id = app.application_id.to_string();
    portal.env.send(&app).await;
    let accepted: ApplicationAccepted = portal.event(&id).await;
    let order = accepted.order_number.expect("an order number");
    // The saga knows its invoice before the payment (else it never learns it: see below).
    let saga = hub_portal::procedures::saga::ProcedureSaga::key(app.application_id).id;
    wait_until(WAIT, "the invoice id in the saga", || async {
        sqlx::query_scalar::<_, Option<String>>(
            "SELECT state->>'invoice_id' FROM sagas WHERE id = $1",
        )
        .bind(saga)
        .fetch_optional(&portal.env.pool)
        .await
        .expect("the saga")
        .flatten()
    })
    .await;
    portal.pay(&order).await;
    let paid: PaymentReceived = portal.event(&id).await;
    assert_eq!(paid.amount_kopecks, 2100);
    let captured = wait_until(WAIT, "the paid notification on the wire", || async {
        seen.lock()
            .expect("lock")
            .iter()
            .find(|c| c.json()["status"] == "paid")
            .cloned()
    })
    .await;
    assert_eq!(captured.status, 200, "the original was taken");
    let notification = captured.json();
    assert_eq!(notification["account_number"], order.as_str());
    // The saga has taken the payment: what it did is the baseline.
    wait_until(WAIT, "the saga's step on the payment", || async {
        (effects(&portal, app.application_id, &order).await.steps == 1).then_some(())
    })
    .await;
    let before = effects(&portal, app.application_id, &order).await;
    assert_eq!(
        before.recorded,
        [(
            "paid".to_owned(),
            notification["event_id"].as_str().expect("id").to_owned()
        )]
    );
    assert_eq!(before.messages, 1);

    // The captured notification, byte for byte with its signature, sent again (twice): ERIP is
    // told it is recorded, so it stops, and nothing is written.
    for _ in 0..2 {
        let (status, answer) = post_erip(&portal, &captured.body, &captured.signature).await;
        assert_eq!((status, answer.as_str()), (200, "already recorded"));
    }
    // The same payment under a new event id (ERIP re-sending it as a new event): still once.
    let (body, signature) = resigned(&notification, |n| {
        n["event_id"] = json!(Uuid::new_v4().to_string());
    });
    let (status, answer) = post_erip(&portal, &body, &signature).await;
    assert_eq!((status, answer.as_str()), (200, "already recorded"));

    // Its signature copied onto a notification of another invoice and order, or onto a changed
    // amount: refused, the body is not ERIP's.
    for edit in [
        json!({"invoice_id": "erip-00000000-0000-4000-8000-000000000000",
               "account_number": "100000000000000000000000000019"}),
        json!({"amount": 1}),
    ] {
        let mut forged = notification.clone();
        for (k, v) in edit.as_object().expect("object") {
            forged[k] = v.clone();
        }
        let (status, answer) =
            post_erip(&portal, forged.to_string().as_bytes(), &captured.signature).await;
        assert_eq!(
            (status, answer.as_str()),
            (401, adapters::erip::BAD_SIGNATURE)
        );
    }

    // Validly signed, but outside the acceptance window: a notice of this order's expiry from
    // four days ago (captured then, held back until now), or from ten minutes in the future.
    for at in [
        chrono::Utc::now() - chrono::TimeDelta::days(4),
        chrono::Utc::now() + chrono::TimeDelta::minutes(10),
    ] {
        let (body, signature) = resigned(&notification, |n| {
            n["event_id"] = json!(Uuid::new_v4().to_string());
            n["status"] = json!("expired");
            n.as_object_mut().expect("object").remove("operation_id");
            n["occurred_at"] = json!(at.to_rfc3339());
        });
        let (status, answer) = post_erip(&portal, &body, &signature).await;
        assert_eq!(status, 400, "{answer}");
        assert!(
            answer.contains(adapters::erip::OUTSIDE_WINDOW),
            "the reason says why: {answer}"
        );
    }

    // Validly signed and fresh, but about another invoice than the application's.
    let (body, signature) = resigned(&notification, |n| {
        n["event_id"] = json!(Uuid::new_v4().to_string());
        n["invoice_id"] = json!("erip-00000000-0000-4000-8000-000000000000");
        n["status"] = json!("refunded");
        n["occurred_at"] = json!(chrono::Utc::now().to_rfc3339());
    });
    let (status, answer) = post_erip(&portal, &body, &signature).await;
    assert_eq!(status, 409, "{answer}");
    assert!(
        answer.contains("erip-00000000-0000-4000-8000-000000000000"),
        "{answer}"
    );

    // None of it left a trace: no new record, no message for the saga, no step, no second
    // payment. (Nothing was written, so nothing is still on its way.)
    assert_eq!(effects(&portal, app.application_id, &order).await, before);
    assert_eq!(
        portal.events_so_far::<PaymentReceived>(&id).await,
        1,
        "the payment counted once"
    );
    tap.abort();
    portal.stop().await;
}

fn refused(reason: &str) -> CabinetOutcome {
    CabinetOutcome::EdsRefused {
        reason: reason.into(),
    }
}

fn high() -> CabinetOutcome {
    CabinetOutcome::Ok {
        assurance_level: "high".into(),
        session_token: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_eds_challenge_answers_once_even_when_two_copies_race() {
    let mut portal = Portal::start().await;
    let id = holder(&portal, 3).await;
    let p = proof(&portal, &id).await;
    assert_eq!(
        plain(portal.cabinet(&RegisterByEds { proof: p }).await),
        high()
    );

    // Two copies of one login, sent together as two messages: one logs in, the other is a
    // replay, whichever the hub takes first.
    // The portal asks for answers in its own queue (the only one it may name).
    let replies = e2e::Observer::attach(
        &portal.env,
        portal
            .env
            .topology(vec![])
            .work_queue(hub_portal::parties::PORTAL_QUEUE),
    )
    .await;
    let login = LogInByEds {
        proof: proof(&portal, &id).await,
    };
    let mut correlations = Vec::new();
    for _ in 0..2 {
        let mut metadata = Metadata::new(LogInByEds::TYPE.to_string(), "portal");
        let correlation = Uuid::new_v4().to_string();
        metadata.correlation_id = Some(correlation.clone());
        metadata.reply_to = Some(replies.queue.clone());
        portal.env.send_with(&login, metadata).await;
        correlations.push(correlation);
    }
    let answers = replies.take(2, WAIT).await;
    let mut outcomes: Vec<CabinetOutcome> = answers
        .iter()
        .map(|m| {
            assert!(
                correlations.contains(m.metadata.correlation_id.as_ref().expect("correlated")),
                "answers to this test's requests"
            );
            plain(
                serde_json::from_value::<CabinetReply>(m.body.clone())
                    .expect("a cabinet reply")
                    .outcome,
            )
        })
        .collect();
    outcomes.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(outcomes, [refused("challenge_used"), high()]);
    // And later still: used.
    assert_eq!(
        plain(portal.cabinet(&login).await),
        refused(hub_portal::registration::CHALLENGE_USED)
    );
    let used: bool =
        sqlx::query_scalar("SELECT used_at IS NOT NULL FROM eds_challenges WHERE nonce = $1")
            .bind(&login.proof.nonce)
            .fetch_one(&portal.env.pool)
            .await
            .expect("the challenge");
    assert!(used, "spent once, and kept as spent");
    portal.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_unknown_or_someone_elses_eds_challenge_is_refused_with_its_reason() {
    let mut portal = Portal::start().await;
    let id = holder(&portal, 4).await;
    let other = holder(&portal, 5).await;
    let p = proof(&portal, &id).await;
    assert_eq!(
        plain(portal.cabinet(&RegisterByEds { proof: p }).await),
        high()
    );

    // Expired: the challenge's five minutes pass (moved into the past here, not waited for).
    let late = proof(&portal, &id).await;
    sqlx::query(
        "UPDATE eds_challenges SET expires_at = now() - interval '1 second' WHERE nonce = $1",
    )
    .bind(&late.nonce)
    .execute(&portal.env.pool)
    .await
    .expect("expired");
    assert_eq!(
        plain(portal.cabinet(&LogInByEds { proof: late }).await),
        refused(hub_portal::registration::CHALLENGE_EXPIRED)
    );

    // Unknown: a nonce this hub never issued, with a signature over bytes that look like a
    // challenge of it.
    let mut made_up = proof(&portal, &id).await;
    made_up.nonce = hex_nonce();
    let to_sign = base64::engine::general_purpose::STANDARD.encode(
        [
            adapters::gossuok::CHALLENGE_CONTEXT,
            &hex_decode(&made_up.nonce),
            b"2026-11-27T10:15:00Z",
        ]
        .concat(),
    );
    made_up.signature = sign(&portal, &id, &to_sign).await;
    assert_eq!(
        plain(portal.cabinet(&LogInByEds { proof: made_up }).await),
        refused(hub_portal::registration::CHALLENGE_UNKNOWN)
    );

    // Someone else's: the holder's signature presented with another person's certificate does
    // not verify, and that attempt does not spend the challenge: the holder still logs in.
    let own = proof(&portal, &id).await;
    let (certificate, chain) = certificate(&portal, &other).await;
    let swapped = EdsProof {
        certificate,
        chain,
        ..own.clone()
    };
    assert_eq!(
        plain(portal.cabinet(&LogInByEds { proof: swapped }).await),
        refused("bad_signature")
    );
    assert_eq!(
        plain(portal.cabinet(&LogInByEds { proof: own.clone() }).await),
        high()
    );
    assert_eq!(
        plain(portal.cabinet(&LogInByEds { proof: own }).await),
        refused(hub_portal::registration::CHALLENGE_USED)
    );
    portal.stop().await;
}

/// 32 random bytes in hex: a nonce nobody issued.
fn hex_nonce() -> String {
    rand::random::<[u8; 32]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}
