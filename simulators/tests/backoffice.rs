//! The HTTP back-office simulator against its contract (v1), over real HTTP: applications and
//! complaints `PUT` with a signature, withdrawals, and the signed callbacks with their retries,
//! received by a tiny server standing in for the hub.

mod common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use common::{Sims, eventually, json_of};
use hmac::{Hmac, KeyInit, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;
use simulators::{BackOfficeSimConfig, SimConfig, SimKind};
use tokio_util::sync::CancellationToken;
use url::Url;
use uuid::Uuid;

const BACKOFFICE: SimKind = SimKind::BackOffice;
const SECRET: &[u8] = b"backoffice-test-secret";
const DECIDE_AFTER: Duration = Duration::from_millis(300);

/// How long a test watches to show that nothing (more) comes: well past `DECIDE_AFTER` and a
/// callback's first retry (200 ms). A bounded watch, not a synchronisation.
const QUIET: Duration = Duration::from_millis(1000);

fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("a key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// One callback as the stand-in hub received it, with the status it answered.
#[derive(Debug, Clone)]
struct Received {
    authority: String,
    message_type: String,
    body: Bytes,
    /// The path it was posted to, which the signature covers.
    path: String,
    /// `X-Authority-Timestamp`, as sent.
    timestamp: Option<String>,
    signature: Option<String>,
    answered: u16,
    at: Instant,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON callback")
    }

    /// Checked as a receiver must: HMAC-SHA256 over `POST`, the path, the timestamp and the
    /// exact body bytes, one line feed between them, in constant time; and the timestamp within
    /// the hub's default window (5 minutes) of now.
    fn is_signed(&self) -> bool {
        let Some(sent) = self.timestamp.as_deref() else {
            return false;
        };
        let fresh = sent
            .parse::<i64>()
            .is_ok_and(|s| chrono::Utc::now().timestamp().abs_diff(s) <= 300);
        let tag = self
            .signature
            .as_deref()
            .and_then(|h| h.strip_prefix("sha256="))
            .and_then(|h| hex::decode(h).ok());
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).expect("a key");
        mac.update(format!("POST\n{}\n{sent}\n", self.path).as_bytes());
        mac.update(&self.body);
        fresh && tag.is_some_and(|tag| mac.verify_slice(&tag).is_ok())
    }
}

/// A tiny HTTP server standing in for the hub's callback endpoint: it records every callback
/// and answers the statuses it was told to, then 200.
struct Hub {
    callback: Url,
    state: HubState,
    shutdown: CancellationToken,
}

#[derive(Clone, Default)]
struct HubState {
    received: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<u16>>>,
}

impl Hub {
    async fn start() -> Hub {
        let state = HubState::default();
        let app = axum::Router::new()
            .route("/callbacks/{authority}/{message_type}", post(receive))
            .with_state(state.clone());
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
        Hub {
            // No trailing slash: the back-office adds the one before the message type.
            callback: Url::parse(&format!("http://{addr}/callbacks/tax-ministry")).expect("a URL"),
            state,
            shutdown,
        }
    }

    fn answer_next_with(&self, statuses: &[u16]) {
        self.state.script.lock().expect("the lock").extend(statuses);
    }

    fn received(&self) -> Vec<Received> {
        self.state.received.lock().expect("the lock").clone()
    }

    /// Waits until at least `n` callbacks arrived and returns them.
    async fn wait_for(&self, n: usize) -> Vec<Received> {
        eventually(&format!("{n} callback(s)"), || async {
            let received = self.received();
            (received.len() >= n).then_some(received)
        })
        .await
    }

    /// What was received after watching for [`QUIET`]: to show that nothing more came.
    async fn after_quiet(&self) -> Vec<Received> {
        // The sleep is what is tested: an absence can only be shown by watching for a while.
        tokio::time::sleep(QUIET).await;
        self.received()
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn receive(
    State(state): State<HubState>,
    Path((authority, message_type)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let answered = state
        .script
        .lock()
        .expect("the lock")
        .pop_front()
        .unwrap_or(200);
    let header = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    state.received.lock().expect("the lock").push(Received {
        path: format!("/callbacks/{authority}/{message_type}"),
        authority,
        message_type,
        body,
        timestamp: header("x-authority-timestamp"),
        signature: header("x-authority-signature"),
        answered,
        at: Instant::now(),
    });
    StatusCode::from_u16(answered).expect("a status")
}

/// The back-office simulator, the stand-in hub, and the hub's side of the calls.
struct Harness {
    sims: Sims,
    /// The `tax-ministry` back-office's base URL.
    base: Url,
    hub: Hub,
}

impl Harness {
    async fn start() -> Harness {
        Harness::keeping(simulators::Retention::default()).await
    }

    /// A harness whose back-office keeps what `retention` says.
    async fn keeping(retention: simulators::Retention) -> Harness {
        let sims = Sims::start(SimConfig {
            retention,
            only: Some(vec![BACKOFFICE]),
            backoffice: BackOfficeSimConfig {
                secret: String::from_utf8(SECRET.to_vec()).expect("UTF-8"),
                decide_after: DECIDE_AFTER,
                complaint_decide_after: DECIDE_AFTER,
            },
            ..SimConfig::ephemeral()
        })
        .await;
        let base = sims
            .running
            .backoffice_url("tax-ministry")
            .expect("a base URL");
        assert_eq!(base, sims.url(BACKOFFICE, "tax-ministry/"));
        Harness {
            sims,
            base,
            hub: Hub::start().await,
        }
    }

    /// A call signed as the hub signs it, under the `tax-ministry` base URL.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: &[u8],
        callback: Option<&Url>,
    ) -> reqwest::Response {
        let mut request = self
            .sims
            .client
            .request(method, self.base.join(path).expect("a URL"))
            .header("X-Hub-Signature", sign(SECRET, body))
            .header("Content-Type", "application/json")
            .body(body.to_vec());
        if let Some(callback) = callback {
            request = request.header("X-Callback-Url", callback.as_str());
        }
        request.send().await.expect("the back-office answers")
    }

    /// `PUT`s a new application with `form`; its id and the answer.
    async fn submit(&self, form: Value) -> (Uuid, (StatusCode, Value)) {
        let id = Uuid::new_v4();
        (id, self.resubmit(id, form).await)
    }

    async fn resubmit(&self, id: Uuid, form: Value) -> (StatusCode, Value) {
        let body = application(id, form).to_string();
        let path = format!("applications/{id}");
        json_of(
            self.call(
                Method::PUT,
                &path,
                body.as_bytes(),
                Some(&self.hub.callback),
            )
            .await,
        )
        .await
    }

    async fn submit_complaint(&self, id: Uuid) -> (StatusCode, Value) {
        let body = json!({
            "complaint_id": id, "application_id": Uuid::new_v4(),
            "application_number": "A-2026-000001", "text": "I disagree.",
        });
        let path = format!("complaints/{id}");
        json_of(
            self.call(
                Method::PUT,
                &path,
                body.to_string().as_bytes(),
                Some(&self.hub.callback),
            )
            .await,
        )
        .await
    }

    /// `POST {base}{what}/{id}/withdrawal` with an empty signed body.
    async fn withdraw(&self, what: &str, id: Uuid) -> (StatusCode, Value) {
        let path = format!("{what}/{id}/withdrawal");
        json_of(self.call(Method::POST, &path, b"", None).await).await
    }

    /// `GET /sim/backoffice/tax-ministry/{what}/{id}`.
    async fn inspect(&self, what: &str, id: Uuid) -> (StatusCode, Value) {
        self.sims
            .get(
                BACKOFFICE,
                &format!("sim/backoffice/tax-ministry/{what}/{id}"),
            )
            .await
    }

    /// Stops the simulator and waits for it: its timers and callbacks end too.
    async fn stop(self) {
        self.sims.stop().await;
    }
}

fn application(id: Uuid, form: Value) -> Value {
    json!({
        "application_id": id, "number": "A-2026-000001", "procedure_code": "1.1.5",
        "applicant": "3270287A012PB2", "form": form, "attachments": [],
        "paid_kopecks": 2750, "decision_due": "2026-12-10",
    })
}

#[tokio::test]
async fn an_application_is_registered_once_and_its_decision_reaches_the_callback() {
    let h = Harness::start().await;
    let submitted = Instant::now();
    let (id, (status, answer)) = h.submit(json!({"address": "Minsk"})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer,
        json!({"registration_number": "TAX-MINISTRY-000001"})
    );
    let again = h.resubmit(id, json!({"address": "Minsk"})).await;
    assert_eq!(
        again,
        (StatusCode::OK, answer),
        "a repeated PUT: the same number"
    );

    let received = h.hub.wait_for(1).await;
    let decision = &received[0];
    assert_eq!(decision.authority, "tax-ministry");
    assert_eq!(decision.message_type, "authority.decided.v1");
    assert!(
        decision.at >= submitted + DECIDE_AFTER,
        "decided after decide_after"
    );
    assert!(decision.is_signed(), "signed: {:?}", decision.signature);
    let body = decision.json();
    assert_eq!(body["application_id"], json!(id));
    assert_eq!(body["verdict"], "granted");
    assert!(body["document"].as_str().is_some_and(|d| !d.is_empty()));
    assert!(body["decided_at"].as_str().is_some());

    assert_eq!(
        h.inspect("applications", id).await,
        (
            StatusCode::OK,
            json!({"registration_number": "TAX-MINISTRY-000001", "state": "decided",
                   "verdict": "granted"})
        )
    );
    assert_eq!(h.hub.after_quiet().await.len(), 1, "one decision, once");
    h.stop().await;
}

#[tokio::test]
async fn an_info_request_comes_first_and_a_refusal_follows() {
    let mut h = Harness::start().await;
    h.hub.callback = Url::parse(&format!("{}/", h.hub.callback)).expect("a trailing slash");
    let form = json!({"simulate_info_request": true, "simulate_refusal": true});
    let (id, (status, _)) = h.submit(form).await;
    assert_eq!(status, StatusCode::OK);
    let received = h.hub.wait_for(2).await;
    let types: Vec<&str> = received.iter().map(|r| r.message_type.as_str()).collect();
    assert_eq!(
        types,
        ["authority.info_requested.v1", "authority.decided.v1"]
    );
    assert!(received.iter().all(Received::is_signed));
    let info = received[0].json();
    assert_eq!(info["application_id"], json!(id));
    assert!(info["request"].as_str().is_some_and(|r| !r.is_empty()));
    assert_eq!(received[1].json()["verdict"], "refused");
    h.stop().await;
}

#[tokio::test]
async fn a_withdrawal_before_the_decision_stops_it() {
    let h = Harness::start().await;
    let (id, _) = h.submit(json!({})).await;
    for _ in 0..2 {
        let answer = h.withdraw("applications", id).await;
        assert_eq!(answer, (StatusCode::OK, json!({"accepted": true})));
    }
    assert!(
        h.hub.after_quiet().await.is_empty(),
        "no decision after a withdrawal"
    );
    assert_eq!(
        h.inspect("applications", id).await.1,
        json!({"registration_number": "TAX-MINISTRY-000001", "state": "withdrawn"})
    );
    h.stop().await;
}

#[tokio::test]
async fn a_withdrawal_after_the_decision_is_not_accepted() {
    let h = Harness::start().await;
    let (id, _) = h.submit(json!({})).await;
    h.hub.wait_for(1).await;
    for _ in 0..2 {
        let answer = h.withdraw("applications", id).await;
        assert_eq!(answer, (StatusCode::OK, json!({"accepted": false})));
    }
    assert_eq!(h.inspect("applications", id).await.1["state"], "decided");
    h.stop().await;
}

#[tokio::test]
async fn calls_without_the_right_signature_are_refused() {
    let h = Harness::start().await;
    let id = Uuid::new_v4();
    let body = application(id, json!({})).to_string();
    let url = h.base.join(&format!("applications/{id}")).expect("a URL");
    for signature in [
        Some(sign(b"another-secret", body.as_bytes())),
        Some(sign(SECRET, b"another body")),
        Some("sha256=not-hex".to_owned()),
        None,
    ] {
        let mut request = h
            .sims
            .client
            .put(url.clone())
            .header("X-Callback-Url", h.hub.callback.as_str())
            .body(body.clone());
        if let Some(signature) = &signature {
            request = request.header("X-Hub-Signature", signature);
        }
        let (status, answer) = json_of(request.send().await.expect("answered")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{signature:?}");
        assert_eq!(answer["error"], "bad_signature");
    }
    let withdrawal = h
        .sims
        .client
        .post(
            h.base
                .join(&format!("applications/{id}/withdrawal"))
                .expect("a URL"),
        )
        .header("X-Hub-Signature", sign(b"another-secret", b""))
        .send()
        .await
        .expect("answered");
    assert_eq!(withdrawal.status().as_u16(), 401);
    let (status, _) = h.inspect("applications", id).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing registered");
    h.stop().await;
}

#[tokio::test]
async fn calls_outside_the_contract_are_refused() {
    let h = Harness::start().await;
    let id = Uuid::new_v4();
    let path = format!("applications/{id}");
    let mut missing_field = application(id, json!({}));
    missing_field
        .as_object_mut()
        .expect("an object")
        .remove("decision_due");
    let missing_field = missing_field.to_string();
    let good = application(id, json!({})).to_string();
    let other_id = application(Uuid::new_v4(), json!({})).to_string();
    let ftp = Url::parse("ftp://127.0.0.1/callbacks").expect("a URL");
    let cases: [(&str, &[u8], Option<&Url>); 6] = [
        (&path, b"not json", Some(&h.hub.callback)),
        (&path, missing_field.as_bytes(), Some(&h.hub.callback)),
        (&path, other_id.as_bytes(), Some(&h.hub.callback)),
        (&path, good.as_bytes(), None),
        (&path, good.as_bytes(), Some(&ftp)),
        ("applications/42", good.as_bytes(), Some(&h.hub.callback)),
    ];
    for (path, body, callback) in cases {
        let (status, answer) = json_of(h.call(Method::PUT, path, body, callback).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(answer["error"], "invalid_request");
    }
    for what in ["applications", "complaints"] {
        let (status, answer) = h.withdraw(what, Uuid::new_v4()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{what}");
        assert_eq!(answer["error"], "not_found");
    }
    let response = h
        .sims
        .client
        .post(h.sims.url(
            BACKOFFICE,
            &format!("Tax_Ministry/applications/{id}/withdrawal"),
        ))
        .header("X-Hub-Signature", sign(SECRET, b""))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status().as_u16(), 404, "not an authority id");
    assert!(h.hub.received().is_empty());
    h.stop().await;
}

#[tokio::test]
async fn a_decision_the_hub_cannot_take_is_retried_until_it_does() {
    let h = Harness::start().await;
    h.hub.answer_next_with(&[503, 503]);
    let (id, _) = h.submit(json!({})).await;
    let received = h.hub.wait_for(3).await;
    let answered: Vec<u16> = received.iter().map(|r| r.answered).collect();
    assert_eq!(answered, [503, 503, 200]);
    assert!(
        received
            .iter()
            .all(|r| r.body == received[0].body && r.is_signed()),
        "every attempt carries the same signed bytes"
    );
    assert_eq!(received[0].json()["application_id"], json!(id));
    assert_eq!(
        h.hub.after_quiet().await.len(),
        3,
        "delivered once, then no more"
    );
    h.stop().await;
}

#[tokio::test]
async fn an_answer_the_hub_refuses_is_given_up() {
    let h = Harness::start().await;
    h.hub.answer_next_with(&[422]);
    h.submit(json!({})).await;
    h.hub.wait_for(1).await;
    assert_eq!(h.hub.after_quiet().await.len(), 1, "a 4xx is not retried");
    h.stop().await;
}

#[tokio::test]
async fn a_complaint_is_dismissed_at_the_callback() {
    let h = Harness::start().await;
    let id = Uuid::new_v4();
    for _ in 0..2 {
        assert_eq!(
            h.submit_complaint(id).await,
            (StatusCode::ACCEPTED, json!({}))
        );
    }
    let received = h.hub.wait_for(1).await;
    let decision = &received[0];
    assert_eq!(decision.message_type, "authority.complaint_decided.v1");
    assert!(decision.is_signed());
    let body = decision.json();
    assert_eq!(body["complaint_id"], json!(id));
    assert_eq!(body["verdict"], "dismissed");
    assert_eq!(
        h.withdraw("complaints", id).await,
        (StatusCode::OK, json!({"accepted": false}))
    );
    assert_eq!(
        h.inspect("complaints", id).await.1,
        json!({"state": "decided", "verdict": "dismissed"})
    );
    assert_eq!(
        h.hub.after_quiet().await.len(),
        1,
        "a repeated PUT does nothing more"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_withdrawn_complaint_is_never_decided() {
    let h = Harness::start().await;
    let id = Uuid::new_v4();
    assert_eq!(h.submit_complaint(id).await.0, StatusCode::ACCEPTED);
    assert_eq!(
        h.withdraw("complaints", id).await,
        (StatusCode::OK, json!({"accepted": true}))
    );
    assert!(h.hub.after_quiet().await.is_empty());
    assert_eq!(
        h.inspect("complaints", id).await.1,
        json!({"state": "withdrawn"})
    );
    h.stop().await;
}

#[tokio::test]
async fn faults_apply_to_the_back_office_but_not_to_sim() {
    let h = Harness::start().await;
    let (status, _) = h
        .sims
        .put_faults(BACKOFFICE, &json!({"error_rate": 1.0}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, (status, answer)) = h.submit(json!({})).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer["error"], "unavailable");
    let (status, _) = h.inspect("applications", Uuid::new_v4()).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "/sim/ is never faulted");
    h.sims
        .put_faults(BACKOFFICE, &json!({"error_rate": 0.0}))
        .await;
    let (_, (status, _)) = h.submit(json!({})).await;
    assert_eq!(status, StatusCode::OK);
    h.stop().await;
}

#[tokio::test]
async fn stopping_ends_the_retries_of_a_callback_the_hub_never_takes() {
    let h = Harness::start().await;
    h.hub.answer_next_with(&[503; 1000]);
    h.submit(json!({})).await;
    h.hub.wait_for(2).await;
    h.stop().await;
}

#[tokio::test]
async fn a_complaint_of_inaction_is_upheld_and_a_marked_one_dismissed() {
    let h = Harness::start().await;
    let (inaction, marked) = (Uuid::new_v4(), Uuid::new_v4());
    for (id, text) in [
        (inaction, "No decision within the term.".to_owned()),
        (
            marked,
            format!("No decision. {}", simulators::DISMISSED_MARKER),
        ),
    ] {
        let body = json!({
            "complaint_id": id, "application_id": Uuid::new_v4(),
            "application_number": "A-2026-000001", "text": text, "kind": "inaction",
            "subordinate": "tax-ministry",
        });
        let path = format!("complaints/{id}");
        let answer = json_of(
            h.call(
                Method::PUT,
                &path,
                body.to_string().as_bytes(),
                Some(&h.hub.callback),
            )
            .await,
        )
        .await;
        assert_eq!(answer, (StatusCode::ACCEPTED, json!({})));
    }
    let received = h.hub.wait_for(2).await;
    for (id, verdict) in [(inaction, "upheld"), (marked, "dismissed")] {
        let decision = received
            .iter()
            .map(Received::json)
            .find(|b| b["complaint_id"] == json!(id))
            .expect("a decision on each");
        assert_eq!(decision["verdict"], verdict, "{decision}");
        assert_eq!(
            h.inspect("complaints", id).await.1,
            json!({"state": "decided", "verdict": verdict})
        );
    }
    h.stop().await;
}

#[tokio::test]
async fn past_its_bound_the_oldest_cases_are_unknown() {
    let h = Harness::keeping(simulators::Retention {
        records: 2,
        keys: 2,
        max_age: Duration::from_secs(3600),
    })
    .await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (id, (status, answer)) = h.submit(json!({"address": "Minsk"})).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        ids.push(id);
    }
    // The oldest application was dropped: unknown to an inspection and a withdrawal.
    let (status, body) = h.inspect("applications", ids[0]).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"], "not_found");
    let (status, body) = h.withdraw("applications", ids[0]).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = h.inspect("applications", ids[2]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["registration_number"], "TAX-MINISTRY-000003");
    // Sent again, it is registered anew.
    let again = h.resubmit(ids[0], json!({"address": "Minsk"})).await;
    assert_eq!(
        again,
        (
            StatusCode::OK,
            json!({"registration_number": "TAX-MINISTRY-000004"})
        )
    );
    // The same for complaints.
    let complaints = [Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()];
    for id in complaints {
        let (status, body) = h.submit_complaint(id).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    let (status, body) = h.inspect("complaints", complaints[0]).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = h.withdraw("complaints", complaints[0]).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = h.inspect("complaints", complaints[2]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    h.stop().await;
}
