//! The person's side of a procedure, end to end on the real broker and database: answering the
//! authority's information request (the term suspended, then moved by the working days waited),
//! being told of an overdue application, and choosing how the decision is delivered. The test
//! is the portal; the authority is the queue simulator, as its own broker user.

use std::time::Duration;

use chrono::{NaiveDate, Utc};
use contracts::cabinet::SessionToken;
use contracts::procedure::{
    ApplicationAccepted, ApplicationDecided, ApplicationOverdue, ApplicationRegistered,
    ApplicationRejected, ComplaintAccepted, ComplaintDecided, ComplaintKind, ComplaintRejectReason,
    ComplaintRejected, ComplaintVerdict, Delivery, InfoProvided, InfoRequested,
    ProcedureRejectReason, ProvideInfo, SubmitApplication, SubmitComplaint, Verdict,
};
use e2e::portal::{Portal, WAIT};
use e2e::wait_until;
use hub_portal::procedures::calendar::Calendar;
use hub_portal::procedures::saga::ProcedureSaga;
use serde_json::{Value, json};
use uuid::Uuid;

/// A free procedure of a queue authority (pension certificate, FSZN).
const FREE: &str = "2.19";
const FREE_AUTHORITY: &str = "fszn";

fn submit(
    session: &SessionToken,
    attachments: Vec<String>,
    delivery: Delivery,
) -> SubmitApplication {
    let form = json!({"period_from": "2026-01-01", "period_to": "2026-06-30", "purpose": "bank"});
    SubmitApplication {
        application_id: Uuid::new_v4(),
        procedure_code: FREE.into(),
        session_token: session.clone(),
        form: form.as_object().cloned().expect("object"),
        attachments,
        delivery,
    }
}

fn answer(application_id: Uuid, session: &SessionToken) -> ProvideInfo {
    ProvideInfo {
        application_id,
        session_token: session.clone(),
        form: json!({"lease_number": "L-7"})
            .as_object()
            .cloned()
            .expect("object"),
        attachments: vec!["att-lease".into()],
    }
}

async fn saga_state(portal: &Portal, id: Uuid) -> (String, Value) {
    sqlx::query_as("SELECT state_name, state FROM sagas WHERE id = $1")
        .bind(ProcedureSaga::key(id).id)
        .fetch_one(&portal.env.pool)
        .await
        .expect("saga")
}

/// The bodies of the messages of `message_type` the hub put in its outbox about `id`.
async fn sent_bodies(portal: &Portal, message_type: &str, id: Uuid) -> Vec<Value> {
    let bodies: Vec<Vec<u8>> = sqlx::query_scalar(
        "SELECT body FROM outbox WHERE metadata->>'message_type' = $1 ORDER BY created_at",
    )
    .bind(message_type)
    .fetch_all(&portal.env.pool)
    .await
    .expect("outbox");
    bodies
        .iter()
        .filter_map(|b| serde_json::from_slice::<Value>(b).ok())
        .filter(|b| b["application_id"] == id.to_string())
        .collect()
}

fn minsk_today() -> NaiveDate {
    (Utc::now() + chrono::Duration::hours(3)).date_naive()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answered_information_request_moves_the_term_by_the_working_days_waited() {
    let mut portal = Portal::start().await;
    let (_, session) = portal.eds_session(0).await;
    let (_, stranger) = portal.eds_session(1).await;
    // The clerk asks for information, then waits long before deciding.
    portal.start_authority(FREE_AUTHORITY, Duration::from_secs(600));
    let app = submit(
        &session,
        vec![simulators::INFO_REQUEST_ATTACHMENT.into()],
        Delivery::CabinetAndCollect,
    );
    let id = app.application_id;
    portal.env.send(&app).await;
    let _: ApplicationAccepted = portal.event(&id.to_string()).await;
    let registered: ApplicationRegistered = portal.event(&id.to_string()).await;
    let asked: InfoRequested = portal.event(&id.to_string()).await;
    let calendar = Calendar::belarus().expect("calendar");
    assert_eq!(
        asked.answer_by,
        Some(calendar.add_working_days(minsk_today(), simulators::INFO_PERIOD_WORKING_DAYS)),
        "the period the authority named, in working days"
    );
    let (state_name, _) = saga_state(&portal, id).await;
    assert_eq!(state_name, "awaiting_info");
    // The term is suspended: no overdue timer while the authority waits for the person.
    let saga = ProcedureSaga::key(id).id;
    let timers: Vec<String> = sqlx::query_scalar("SELECT name FROM timers WHERE saga_id = $1")
        .bind(saga)
        .fetch_all(&portal.env.pool)
        .await
        .expect("timers");
    assert_eq!(timers, ["info"]);

    // Another person's session answers: refused, nothing changes.
    portal.env.send(&answer(id, &stranger)).await;
    let refused: ApplicationRejected = portal.event(&id.to_string()).await;
    assert_eq!(refused.reason, ProcedureRejectReason::NotTheApplicant);
    assert_eq!(saga_state(&portal, id).await.0, "awaiting_info");

    // Let a week pass: the request is dated seven days back (the authority and the person take
    // their time; the calendar counts the working days in between).
    let asked_on = minsk_today() - chrono::Duration::days(7);
    sqlx::query(
        "UPDATE sagas SET state = jsonb_set(jsonb_set(state, '{info_request,requested_on}', to_jsonb($2::text)),
                                            '{info_request,answer_by}', to_jsonb($3::text))
         WHERE id = $1",
    )
    .bind(saga)
    .bind(asked_on.to_string())
    .bind(calendar.add_working_days(minsk_today(), 3).to_string())
    .execute(&portal.env.pool)
    .await
    .expect("the request dated back");
    let waited = calendar.working_days_between(asked_on, minsk_today());
    assert!(waited >= 3, "a week holds working days");

    portal.env.send(&answer(id, &session)).await;
    let provided: InfoProvided = portal.event(&id.to_string()).await;
    assert_eq!(provided.suspended_working_days, waited);
    assert_eq!(
        provided.decision_due,
        calendar.add_working_days(registered.decision_due, waited),
        "the registered term moved by the working days waited"
    );
    let (state_name, state) = saga_state(&portal, id).await;
    assert_eq!(state_name, "registered");
    assert_eq!(state["decision_due"], provided.decision_due.to_string());
    // The authority got the answer, with the moved term.
    let to_authority = wait_until(WAIT, "the answer in the outbox", || async {
        sent_bodies(&portal, "authority.info_provided.v1", id)
            .await
            .pop()
    })
    .await;
    assert_eq!(to_authority["form"]["lease_number"], "L-7");
    assert_eq!(to_authority["attachments"], json!(["att-lease"]));
    assert_eq!(
        to_authority["decision_due"],
        provided.decision_due.to_string()
    );
    // The overdue timer runs again, to the end of the moved term.
    let timers: Vec<String> = sqlx::query_scalar("SELECT name FROM timers WHERE saga_id = $1")
        .bind(saga)
        .fetch_all(&portal.env.pool)
        .await
        .expect("timers");
    assert_eq!(timers, ["overdue"]);
    // And the authority was told how the person wants the decision.
    let application = sent_bodies(&portal, "authority.application.v1", id).await;
    assert_eq!(application[0]["delivery"], "cabinet_and_collect");

    // A second answer: no request waits.
    portal.env.send(&answer(id, &session)).await;
    let again: ApplicationRejected = portal.nth_event(&id.to_string(), 2).await;
    assert_eq!(again.reason, ProcedureRejectReason::NoInfoRequested);
    portal.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_with_no_request_or_past_the_period_is_refused() {
    let mut portal = Portal::start().await;
    let (_, session) = portal.eds_session(0).await;
    // No authority runs: nobody asks anything.
    let app = submit(&session, vec![], Delivery::Cabinet);
    let id = app.application_id;
    portal.env.send(&app).await;
    let _: ApplicationAccepted = portal.event(&id.to_string()).await;
    portal.env.send(&answer(id, &session)).await;
    let refused: ApplicationRejected = portal.event(&id.to_string()).await;
    assert_eq!(refused.reason, ProcedureRejectReason::NoInfoRequested);
    assert_eq!(saga_state(&portal, id).await.0, "at_authority");
    // A submit without the field asks for the cabinet only.
    let application = wait_until(WAIT, "the application in the outbox", || async {
        sent_bodies(&portal, "authority.application.v1", id)
            .await
            .pop()
    })
    .await;
    assert_eq!(application["delivery"], "cabinet");

    // The authority asks (as its own broker user); the period passes unanswered.
    let user = format!("authority-{FREE_AUTHORITY}");
    let request = contracts::procedure::AuthorityInfoRequested {
        application_id: id,
        request: "the lease".into(),
        answer_within_working_days: Some(2),
    };
    let mut metadata = contracts::Metadata::new(
        <contracts::procedure::AuthorityInfoRequested as contracts::Message>::TYPE.to_string(),
        "authority",
    );
    metadata.user_id = Some(user.clone());
    portal
        .env
        .send_raw_as(
            Some(&user),
            "authority.info_requested.v1",
            serde_json::to_vec(&request).expect("json"),
            metadata,
        )
        .await;
    let _: InfoRequested = portal.event(&id.to_string()).await;
    let saga = ProcedureSaga::key(id).id;
    let (_, before) = saga_state(&portal, id).await;
    sqlx::query("UPDATE timers SET due_at = now() WHERE saga_id = $1 AND name = 'info'")
        .bind(saga)
        .execute(&portal.env.pool)
        .await
        .expect("timers");
    let lapsed = wait_until(WAIT, "the period's end", || async {
        let (name, state) = saga_state(&portal, id).await;
        (name == "at_authority").then_some(state)
    })
    .await;
    assert_eq!(lapsed["info_request"]["lapsed"], true);
    assert_eq!(lapsed["suspended_working_days"], 2);
    assert_ne!(lapsed["decision_due"], before["decision_due"]);
    portal.env.send(&answer(id, &session)).await;
    let late: ApplicationRejected = portal.nth_event(&id.to_string(), 2).await;
    assert_eq!(late.reason, ProcedureRejectReason::InfoPeriodPassed);
    portal.stop().await;
}

fn inaction(application_id: Uuid, session: &SessionToken) -> SubmitComplaint {
    SubmitComplaint {
        complaint_id: Uuid::new_v4(),
        application_id,
        session_token: session.clone(),
        text: "No decision within the term.".into(),
        kind: ComplaintKind::Inaction,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_person_is_told_when_the_term_passes_and_the_superior_hears_the_inaction() {
    let mut portal = Portal::start().await;
    // FSZN's superior body (the catalogue's `superior`) hears complaints of its inaction.
    portal.start_authority("mintrud", Duration::from_millis(200));
    let (_, session) = portal.password_session(0).await;
    let (_, stranger) = portal.eds_session(1).await;
    let phone = e2e::portal::phone(100);
    let app = submit(&session, vec![], Delivery::Cabinet);
    let id = app.application_id;
    portal.env.send(&app).await;
    let accepted: ApplicationAccepted = portal.event(&id.to_string()).await;
    // Before the term passed there is no inaction to complain of.
    let early = inaction(id, &session);
    portal.env.send(&early).await;
    let refused: ComplaintRejected = portal.event(&early.complaint_id.to_string()).await;
    assert_eq!(refused.reason, ComplaintRejectReason::NotOverdue);
    let saga = ProcedureSaga::key(id).id;
    wait_until(WAIT, "the overdue timer", || async {
        let n =
            sqlx::query("UPDATE timers SET due_at = now() WHERE saga_id = $1 AND name = 'overdue'")
                .bind(saga)
                .execute(&portal.env.pool)
                .await
                .expect("timers")
                .rows_affected();
        (n == 1).then_some(())
    })
    .await;
    let overdue: ApplicationOverdue = portal.event(&id.to_string()).await;
    assert_eq!(overdue.authority, FREE_AUTHORITY);
    // The SMS: two at issuance, then the overdue notice.
    let text = portal.nth_text(&phone, 3).await;
    assert!(
        text.contains(&accepted.number) && text.contains("бездействие"),
        "{text}"
    );
    assert_eq!(saga_state(&portal, id).await.1["overdue"], true);
    // Another person may not complain of it.
    let theirs = inaction(id, &stranger);
    portal.env.send(&theirs).await;
    let refused: ComplaintRejected = portal.event(&theirs.complaint_id.to_string()).await;
    assert_eq!(refused.reason, ComplaintRejectReason::NotTheApplicant);
    // The applicant's complaint goes to the superior, which decides it as its own broker user:
    // the inaction is a fact (the term passed undecided), so the complaint is upheld, and the
    // portal is told so.
    let complaint = inaction(id, &session);
    portal.env.send(&complaint).await;
    let heard: ComplaintAccepted = portal.event(&complaint.complaint_id.to_string()).await;
    assert_eq!(heard.authority, "mintrud");
    let decided: ComplaintDecided = portal.event(&complaint.complaint_id.to_string()).await;
    assert_eq!(decided.verdict, ComplaintVerdict::Upheld);
    assert!(
        decided
            .document
            .contains(&complaint.complaint_id.to_string()),
        "{}",
        decided.document
    );
    let (complaint_state,): (Value,) = sqlx::query_as("SELECT state FROM sagas WHERE id = $1")
        .bind(hub_portal::procedures::complaint::ComplaintSaga::key(complaint.complaint_id).id)
        .fetch_one(&portal.env.pool)
        .await
        .expect("the complaint's saga");
    assert_eq!(
        complaint_state["stage"]["verdict"], "upheld",
        "{complaint_state}"
    );
    portal.stop().await;
}

/// The back-office simulator's record of an application of HTTP authority `authority`.
async fn at_backoffice(portal: &Portal, authority: &str, id: Uuid) -> Value {
    let url = portal
        .sims
        .operator_url(simulators::SimKind::BackOffice)
        .expect("the back-office simulator")
        .join(&format!("sim/backoffice/{authority}/applications/{id}"))
        .expect("URL");
    reqwest::get(url)
        .await
        .expect("the simulator answers")
        .json()
        .await
        .expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_back_office_gets_the_persons_answer_through_the_bridge() {
    const CEC: &str = "minsk-city-executive-committee";
    let mut portal = Portal::start_custom(
        |s| s.backoffice.decide_after = Duration::from_secs(600),
        |_| {},
    )
    .await;
    let (_, session) = portal.eds_session(0).await;
    let form = json!({"address": "Minsk, Nezavisimosti 1-1", "purpose": "bank"});
    let app = SubmitApplication {
        procedure_code: "1.3.1".into(),
        form: form.as_object().cloned().expect("object"),
        ..submit(
            &session,
            vec![simulators::INFO_REQUEST_ATTACHMENT.into()],
            Delivery::CabinetAndCollect,
        )
    };
    let id = app.application_id;
    portal.env.send(&app).await;
    let registered: ApplicationRegistered = portal.event(&id.to_string()).await;
    let asked: InfoRequested = portal.event(&id.to_string()).await;
    assert!(asked.answer_by.is_some());
    portal.env.send(&answer(id, &session)).await;
    let provided: InfoProvided = portal.event(&id.to_string()).await;
    assert_eq!(provided.suspended_working_days, 0, "answered the same day");
    assert_eq!(provided.decision_due, registered.decision_due);
    let record = wait_until(WAIT, "the back-office has the answer", || async {
        let record = at_backoffice(&portal, CEC, id).await;
        record
            .get("decision_due_after_info")
            .is_some()
            .then_some(record)
    })
    .await;
    assert_eq!(
        record["decision_due_after_info"],
        provided.decision_due.to_string()
    );
    portal.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authority_that_waits_for_the_answer_decides_after_it() {
    let mut portal = Portal::start().await;
    let (_, session) = portal.eds_session(0).await;
    // A quick clerk, which for this application waits for the person's answer before its pace.
    portal.start_authority(FREE_AUTHORITY, Duration::from_millis(100));
    let app = submit(
        &session,
        vec![
            simulators::INFO_REQUEST_ATTACHMENT.into(),
            simulators::IDLE_ATTACHMENT.into(),
        ],
        Delivery::Cabinet,
    );
    let id = app.application_id;
    portal.env.send(&app).await;
    let registered: ApplicationRegistered = portal.event(&id.to_string()).await;
    let _: InfoRequested = portal.event(&id.to_string()).await;
    // Ten times the clerk's pace, and still undecided: it waits for the person. (A quiet
    // window, as there is no event to wait for when nothing may happen.)
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        portal
            .events_so_far::<ApplicationDecided>(&id.to_string())
            .await,
        0
    );
    assert_eq!(saga_state(&portal, id).await.0, "awaiting_info");
    portal.env.send(&answer(id, &session)).await;
    let provided: InfoProvided = portal.event(&id.to_string()).await;
    assert_eq!(
        provided.decision_due, registered.decision_due,
        "answered at once"
    );
    let decided: ApplicationDecided = portal.event(&id.to_string()).await;
    assert_eq!(decided.verdict, Verdict::Granted);
    assert_eq!(saga_state(&portal, id).await.0, "decided");
    portal.stop().await;
}
