//! Authorities whose back-office is an HTTP system, end to end: the hub's bridge calls the
//! back-office simulator, the simulator calls the hub back with signed answers, and the bridge
//! puts them on the bus for the sagas, through the real RabbitMQ and PostgreSQL.

use std::time::Duration;

use contracts::Message;
use contracts::cabinet::SessionToken;
use contracts::procedure::{
    ApplicationAccepted, ApplicationDecided, ApplicationRegistered, ApplicationWithdrawn,
    AuthorityDecided, ComplaintAccepted, ComplaintDecided, ComplaintVerdict, SubmitApplication,
    SubmitComplaint, Verdict, WithdrawApplication,
};
use e2e::portal::{Portal, WAIT};
use e2e::wait_until;
use hub_portal::procedures::saga::ProcedureSaga;
use serde_json::{Value, json};
use simulators::SimKind;
use uuid::Uuid;

/// A certificate of residence from the Minsk City Executive Committee: free, substantial.
const CEC: &str = "minsk-city-executive-committee";
const CEC_PROCEDURE: &str = "1.3.1";
/// A tax certificate from the Ministry of Taxes and Duties: free, substantial.
const TAX: &str = "tax-ministry";
const TAX_PROCEDURE: &str = "18.13";

/// An application of procedure `code` by the holder of `session`.
fn submit(code: &str, session: &SessionToken) -> SubmitApplication {
    let form = match code {
        CEC_PROCEDURE => json!({"address": "Minsk, Nezavisimosti 1-1", "purpose": "bank"}),
        _ => json!({"tax_year": 2025, "purpose": "embassy"}),
    };
    SubmitApplication {
        application_id: Uuid::new_v4(),
        procedure_code: code.into(),
        session_token: session.clone(),
        form: form.as_object().cloned().expect("object"),
        attachments: vec!["att-1".into()],
        delivery: Default::default(),
    }
}

/// The hub and simulators, the back-office deciding `decide_after` after registering.
async fn portal(decide_after: Duration) -> Portal {
    Portal::start_custom(
        |s| {
            s.backoffice.decide_after = decide_after;
            s.backoffice.complaint_decide_after = decide_after;
        },
        |_| {},
    )
    .await
}

async fn state_name(portal: &Portal, id: Uuid) -> Option<String> {
    sqlx::query_scalar("SELECT state_name FROM sagas WHERE id = $1")
        .bind(ProcedureSaga::key(id).id)
        .fetch_optional(&portal.env.pool)
        .await
        .expect("saga")
}

/// The back-office simulator's record of an application.
async fn at_backoffice(portal: &Portal, authority: &str, id: Uuid) -> Value {
    let url = portal
        .sims
        .operator_url(SimKind::BackOffice)
        .expect("the back-office simulator")
        .join(&format!("sim/backoffice/{authority}/applications/{id}"))
        .expect("URL");
    let r = reqwest::get(url).await.expect("the simulator answers");
    if r.status() == reqwest::StatusCode::NOT_FOUND {
        return Value::Null;
    }
    r.json().await.expect("JSON")
}

/// The hub's callback URL for `authority`'s answers of `message_type`.
fn answer_url(portal: &Portal, authority: &str, message_type: &str) -> url::Url {
    portal
        .integrations
        .callback_url
        .join(&format!("callbacks/authority/{authority}/{message_type}"))
        .expect("URL")
}

/// The headers of a back-office callback sent at `sent` (seconds since 1970) and signed with
/// `secret` as a `POST` to `signed_for` with `body`: the timestamp and the signature.
fn signed_headers(
    secret: &[u8],
    signed_for: &url::Url,
    sent: i64,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    use adapters::backoffice::{
        AUTHORITY_SIGNATURE_HEADER, AUTHORITY_TIMESTAMP_HEADER, sign_callback,
    };
    let signature = sign_callback(secret, "POST", signed_for.path(), sent, body);
    vec![
        (AUTHORITY_TIMESTAMP_HEADER, sent.to_string()),
        (AUTHORITY_SIGNATURE_HEADER, signature),
    ]
}

/// Posts `body` to `to` with `headers`: the hub's status and its reason.
async fn post(
    to: url::Url,
    headers: &[(&'static str, String)],
    body: &[u8],
) -> (reqwest::StatusCode, String) {
    let mut request = reqwest::Client::new()
        .post(to)
        .header("content-type", "application/json")
        .body(body.to_vec());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let answer = request.send().await.expect("the hub answers");
    let status = answer.status();
    (status, answer.text().await.expect("a reason"))
}

/// Posts a back-office answer to the hub's callback as `authority`, signed now with `secret`
/// the way the contract says.
async fn call_back(
    portal: &Portal,
    authority: &str,
    message_type: &str,
    body: &Value,
    secret: &[u8],
) -> reqwest::StatusCode {
    let body = serde_json::to_vec(body).expect("JSON");
    let url = answer_url(portal, authority, message_type);
    let headers = signed_headers(secret, &url, chrono::Utc::now().timestamp(), &body);
    post(url, &headers, &body).await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_authority_registers_and_decides_through_the_bridge() {
    let mut portal = portal(Duration::from_millis(300)).await;
    let (_, session) = portal.eds_session(0).await;
    let app = submit(CEC_PROCEDURE, &session);
    let id = app.application_id.to_string();
    portal.env.send(&app).await;
    let accepted: ApplicationAccepted = portal.event(&id).await;
    assert_eq!(accepted.amount_kopecks, 0);
    let registered: ApplicationRegistered = portal.event(&id).await;
    let decided: ApplicationDecided = portal.event(&id).await;
    assert_eq!(decided.verdict, Verdict::Granted);
    assert!(decided.document.contains(&id), "{}", decided.document);
    assert_eq!(
        state_name(&portal, app.application_id).await.as_deref(),
        Some("decided")
    );
    // The back-office holds the same application, under the number the person was told.
    let record = at_backoffice(&portal, CEC, app.application_id).await;
    assert_eq!(
        record["registration_number"].as_str(),
        Some(registered.registration_number.as_str())
    );
    assert_eq!(record["state"], "decided");
    portal.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_back_office_answers_only_for_its_own_applications_and_only_signed() {
    let mut portal = portal(Duration::from_secs(600)).await;
    let (_, session) = portal.eds_session(0).await;
    let app = submit(TAX_PROCEDURE, &session);
    let id = app.application_id.to_string();
    portal.env.send(&app).await;
    let _: ApplicationRegistered = portal.event(&id).await;
    let secret = simulators::SimConfig::default()
        .backoffice
        .secret
        .into_bytes();
    let decision = json!(AuthorityDecided {
        application_id: app.application_id,
        verdict: Verdict::Refused,
        document: "Refused by someone else.".into(),
        decided_at: chrono::Utc::now(),
    });
    let decided = AuthorityDecided::TYPE.to_string();
    // Another authority (with a valid signature of its own) may not decide it.
    assert_eq!(
        call_back(&portal, CEC, &decided, &decision, &secret).await,
        reqwest::StatusCode::FORBIDDEN
    );
    // Nor may anyone without the authority's signature.
    assert_eq!(
        call_back(&portal, TAX, &decided, &decision, b"not the secret").await,
        reqwest::StatusCode::UNAUTHORIZED
    );
    // Nor an authority the hub does not call over HTTP, nor an unknown message type.
    assert_eq!(
        call_back(&portal, "fszn", &decided, &decision, &secret).await,
        reqwest::StatusCode::NOT_FOUND
    );
    assert_eq!(
        call_back(&portal, TAX, "authority.registered.v1", &decision, &secret).await,
        reqwest::StatusCode::BAD_REQUEST
    );
    assert_eq!(
        state_name(&portal, app.application_id).await.as_deref(),
        Some("registered"),
        "no refused answer touched the application"
    );
    // The owner's signed answer is taken, once, even when sent twice.
    for _ in 0..2 {
        assert_eq!(
            call_back(&portal, TAX, &decided, &decision, &secret).await,
            reqwest::StatusCode::OK
        );
    }
    let event: ApplicationDecided = portal.event(&id).await;
    assert_eq!(event.verdict, Verdict::Refused);
    wait_until(WAIT, "the application decided", || async {
        (state_name(&portal, app.application_id).await.as_deref() == Some("decided")).then_some(())
    })
    .await;
    portal.stop().await;
    assert_eq!(portal.events_so_far::<ApplicationDecided>(&id).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_s_signature_binds_its_authority_answer_type_and_time() {
    use adapters::backoffice::{AUTHORITY_SIGNATURE_HEADER, AUTHORITY_TIMESTAMP_HEADER, sign};
    let mut portal = portal(Duration::from_secs(600)).await;
    let (applicant, session) = portal.eds_session(0).await;
    let app = submit(TAX_PROCEDURE, &session);
    let id = app.application_id.to_string();
    portal.env.send(&app).await;
    let _: ApplicationRegistered = portal.event(&id).await;
    let secret = simulators::SimConfig::default()
        .backoffice
        .secret
        .into_bytes();
    let body = serde_json::to_vec(&json!(AuthorityDecided {
        application_id: app.application_id,
        verdict: Verdict::Granted,
        document: "Certificate No. 7.".into(),
        decided_at: chrono::Utc::now(),
    }))
    .expect("JSON");
    let decided = AuthorityDecided::TYPE.to_string();
    let right = answer_url(&portal, TAX, &decided);
    let now = chrono::Utc::now().timestamp();
    let good = signed_headers(&secret, &right, now, &body);
    let unauthorized = reqwest::StatusCode::UNAUTHORIZED;
    // The very headers and body, moved to another authority (the simulator signs for every
    // authority with one secret, so only the path tells them apart) or another answer type.
    for moved in [
        answer_url(&portal, CEC, &decided),
        answer_url(&portal, TAX, "authority.info_requested.v1"),
    ] {
        assert_eq!(
            post(moved.clone(), &good, &body).await,
            (unauthorized, "bad signature".to_owned()),
            "{moved}"
        );
    }
    // A signature of the body alone (the contract before the request was signed) is refused.
    let body_only = vec![
        (AUTHORITY_TIMESTAMP_HEADER, now.to_string()),
        (AUTHORITY_SIGNATURE_HEADER, sign(&secret, &body)),
    ];
    assert_eq!(post(right.clone(), &body_only, &body).await.0, unauthorized);
    // A well-signed callback ten minutes old, or ten minutes ahead, is outside the window; the
    // reason names the authority and no one's data.
    for sent in [now - 600, now + 600] {
        let (status, reason) = post(
            right.clone(),
            &signed_headers(&secret, &right, sent, &body),
            &body,
        )
        .await;
        assert_eq!(status, unauthorized, "{reason}");
        assert!(reason.contains(TAX), "{reason}");
        assert!(reason.contains("window of 300 s"), "{reason}");
        assert!(
            !reason.contains(&id) && !reason.contains(&applicant),
            "{reason}"
        );
    }
    assert_eq!(
        state_name(&portal, app.application_id).await.as_deref(),
        Some("registered"),
        "no refused callback touched the application"
    );
    // The headers refused on the other paths are good on their own: the path alone was wrong.
    assert_eq!(
        post(right, &good, &body).await,
        (reqwest::StatusCode::OK, "recorded".to_owned())
    );
    let event: ApplicationDecided = portal.event(&id).await;
    assert_eq!(event.verdict, Verdict::Granted);
    portal.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_at_an_http_authority_is_withdrawn_there() {
    let mut portal = portal(Duration::from_secs(600)).await;
    let (_, session) = portal.eds_session(0).await;
    let app = submit(TAX_PROCEDURE, &session);
    let id = app.application_id.to_string();
    portal.env.send(&app).await;
    let _: ApplicationRegistered = portal.event(&id).await;
    portal
        .env
        .send(&WithdrawApplication {
            application_id: app.application_id,
            session_token: session.clone(),
        })
        .await;
    let withdrawn: ApplicationWithdrawn = portal.event(&id).await;
    assert_eq!(withdrawn.refund_due_kopecks, 0);
    let record = at_backoffice(&portal, TAX, app.application_id).await;
    assert_eq!(record["state"], "withdrawn", "{record}");
    portal.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complaint_is_heard_by_the_http_authority_that_decided() {
    let mut portal = portal(Duration::from_millis(300)).await;
    let (_, session) = portal.eds_session(0).await;
    let app = submit(CEC_PROCEDURE, &session);
    portal.env.send(&app).await;
    let _: ApplicationDecided = portal.event(&app.application_id.to_string()).await;
    let complaint = SubmitComplaint {
        complaint_id: Uuid::new_v4(),
        application_id: app.application_id,
        session_token: session.clone(),
        text: "The certificate has the wrong flat number.".into(),
        kind: Default::default(),
    };
    let id = complaint.complaint_id.to_string();
    portal.env.send(&complaint).await;
    let accepted: ComplaintAccepted = portal.event(&id).await;
    assert_eq!(accepted.authority, CEC);
    let decided: ComplaintDecided = portal.event(&id).await;
    assert_eq!(decided.verdict, ComplaintVerdict::Dismissed);
    portal.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_callback_is_refused_before_it_is_read_and_the_hub_goes_on() {
    let portal = portal(Duration::from_secs(3600)).await;
    let base = &portal.integrations.callback_url;
    let oversized = vec![b' '; hub_portal::http::CALLBACK_BODY_LIMIT + 1];
    let client = reqwest::Client::new();
    // The callbacks' listener serves nothing but callbacks: any answer (a 404 here) means it
    // is listening.
    wait_until(WAIT, "the hub's callback listener", || async {
        client.get(base.clone()).send().await.ok().map(|_| ())
    })
    .await;
    for path in [
        "callbacks/erip",
        "callbacks/sms/a1",
        "callbacks/authority/tax-ministry/backoffice.registered.v1",
    ] {
        let status = client
            .post(base.join(path).expect("URL"))
            .header("content-type", "application/json")
            .body(oversized.clone())
            .send()
            .await
            .expect("the hub answers")
            .status();
        assert_eq!(status, reqwest::StatusCode::PAYLOAD_TOO_LARGE, "{path}");
    }
    // Nothing came of them, and the next well-formed (but unsigned) callback is still read and
    // judged on its merits.
    let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&portal.env.pool)
        .await
        .expect("outbox");
    assert_eq!(outbox, 0, "an oversized callback publishes nothing");
    let status = client
        .post(base.join("callbacks/erip").expect("URL"))
        .header("content-type", "application/json")
        .body(r#"{"event_id":"e-1"}"#)
        .send()
        .await
        .expect("the hub answers")
        .status();
    assert_eq!(status, reqwest::StatusCode::UNAUTHORIZED, "an unsigned one");
}
