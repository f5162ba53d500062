//! Administrative complaints end to end: an application decided by an authority's back-office
//! (the queue-contract simulator, as its own broker user), then a complaint against it, heard
//! by the same authority, through the real RabbitMQ and PostgreSQL. The test is the portal.

use std::time::Duration;

use contracts::cabinet::SessionToken;
use contracts::procedure::{
    ApplicationDecided, ApplicationRegistered, ComplaintAccepted, ComplaintDecided,
    ComplaintRejectReason, ComplaintRejected, ComplaintVerdict, ComplaintWithdrawn,
    SubmitApplication, SubmitComplaint, WithdrawComplaint,
};
use e2e::portal::{Portal, WAIT};
use e2e::wait_until;
use hub_portal::procedures::complaint::ComplaintSaga;
use serde_json::json;
use uuid::Uuid;

/// A free procedure of a queue authority (pension certificate, FSZN).
const FREE: &str = "2.19";
const FREE_AUTHORITY: &str = "fszn";

fn application(session: &SessionToken) -> SubmitApplication {
    let form = json!({"period_from": "2026-01-01", "period_to": "2026-06-30", "purpose": "bank"});
    SubmitApplication {
        application_id: Uuid::new_v4(),
        procedure_code: FREE.into(),
        session_token: session.clone(),
        form: form.as_object().cloned().expect("object"),
        attachments: vec![],
        delivery: Default::default(),
    }
}

fn complaint(application_id: Uuid, session: &SessionToken) -> SubmitComplaint {
    SubmitComplaint {
        complaint_id: Uuid::new_v4(),
        application_id,
        session_token: session.clone(),
        text: "The certificate leaves out March.".into(),
        kind: Default::default(),
    }
}

/// Submits a free application and waits for the authority's decision.
async fn decided_application(portal: &Portal, session: &SessionToken) -> Uuid {
    let app = application(session);
    portal.env.send(&app).await;
    let _: ApplicationDecided = portal.event(&app.application_id.to_string()).await;
    app.application_id
}

async fn complaint_state(portal: &Portal, id: Uuid) -> Option<String> {
    sqlx::query_scalar("SELECT state_name FROM sagas WHERE id = $1")
        .bind(ComplaintSaga::key(id).id)
        .fetch_optional(&portal.env.pool)
        .await
        .expect("saga")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complaint_is_heard_and_decided_by_the_authority_that_decided() {
    let mut portal = Portal::start().await;
    let (_, session) = portal.eds_session(0).await;
    portal.start_authority(FREE_AUTHORITY, Duration::from_millis(200));
    let application_id = decided_application(&portal, &session).await;
    let c = complaint(application_id, &session);
    let id = c.complaint_id.to_string();
    portal.env.send(&c).await;
    let accepted: ComplaintAccepted = portal.event(&id).await;
    assert_eq!(accepted.authority, FREE_AUTHORITY);
    assert_eq!(accepted.application_id, application_id);
    let decided: ComplaintDecided = portal.event(&id).await;
    assert_eq!(decided.verdict, ComplaintVerdict::Dismissed);
    assert!(decided.document.contains(&id), "{}", decided.document);
    assert_eq!(
        complaint_state(&portal, c.complaint_id).await.as_deref(),
        Some("decided")
    );
    portal.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complaint_the_authority_upholds_reaches_the_portal_upheld() {
    let mut portal = Portal::start().await;
    let (_, session) = portal.eds_session(0).await;
    portal.start_authority(FREE_AUTHORITY, Duration::from_millis(200));
    let application_id = decided_application(&portal, &session).await;
    // The simulated clerk upholds a complaint whose text carries the marker.
    let c = SubmitComplaint {
        text: format!("March is missing. {}", simulators::UPHELD_MARKER),
        ..complaint(application_id, &session)
    };
    let id = c.complaint_id.to_string();
    portal.env.send(&c).await;
    let accepted: ComplaintAccepted = portal.event(&id).await;
    assert_eq!(accepted.authority, FREE_AUTHORITY);
    let decided: ComplaintDecided = portal.event(&id).await;
    assert_eq!(decided.verdict, ComplaintVerdict::Upheld);
    assert!(decided.document.contains(&id), "{}", decided.document);
    let state: serde_json::Value = sqlx::query_scalar("SELECT state FROM sagas WHERE id = $1")
        .bind(ComplaintSaga::key(c.complaint_id).id)
        .fetch_one(&portal.env.pool)
        .await
        .expect("saga");
    assert_eq!(
        state["stage"],
        json!({"stage": "decided", "verdict": "upheld"})
    );
    portal.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complaint_against_an_undecided_application_is_rejected() {
    let mut portal = Portal::start().await;
    let (_, session) = portal.eds_session(0).await;
    // The authority registers at once and takes its time to decide.
    portal.start_authority(FREE_AUTHORITY, Duration::from_secs(600));
    let app = application(&session);
    portal.env.send(&app).await;
    let _: ApplicationRegistered = portal.event(&app.application_id.to_string()).await;
    let c = complaint(app.application_id, &session);
    let id = c.complaint_id.to_string();
    portal.env.send(&c).await;
    let rejected: ComplaintRejected = portal.event(&id).await;
    assert_eq!(rejected.reason, ComplaintRejectReason::NoDecisionToAppeal);
    assert_eq!(
        complaint_state(&portal, c.complaint_id).await.as_deref(),
        Some("rejected")
    );
    portal.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complaint_withdrawn_before_the_decision_ends_withdrawn() {
    let mut portal = Portal::start().await;
    let (_, session) = portal.eds_session(0).await;
    // The authority decides applications at once but takes its time over complaints, so the
    // withdrawal surely reaches it first.
    portal.start_authority_with(
        FREE_AUTHORITY,
        Duration::from_millis(100),
        Duration::from_secs(600),
    );
    let application_id = decided_application(&portal, &session).await;
    let c = complaint(application_id, &session);
    let id = c.complaint_id.to_string();
    portal.env.send(&c).await;
    let _: ComplaintAccepted = portal.event(&id).await;
    // Another person's session cannot withdraw it.
    let (_, stranger) = portal.eds_session(1).await;
    portal
        .env
        .send(&WithdrawComplaint {
            complaint_id: c.complaint_id,
            session_token: stranger,
        })
        .await;
    let refused: ComplaintRejected = portal.event(&id).await;
    assert_eq!(refused.reason, ComplaintRejectReason::NotTheApplicant);
    assert_eq!(
        complaint_state(&portal, c.complaint_id).await.as_deref(),
        Some("at_authority")
    );
    portal
        .env
        .send(&WithdrawComplaint {
            complaint_id: c.complaint_id,
            session_token: session.clone(),
        })
        .await;
    let withdrawn: ComplaintWithdrawn = portal.event(&id).await;
    assert_eq!(withdrawn.complaint_id, c.complaint_id);
    wait_until(WAIT, "the complaint saga ended withdrawn", || async {
        (complaint_state(&portal, c.complaint_id).await.as_deref() == Some("withdrawn"))
            .then_some(())
    })
    .await;
    portal.stop().await;
}
