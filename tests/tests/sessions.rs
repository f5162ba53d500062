//! Sessions end to end: a login answers a session token the hub keeps only hashed; the portal's
//! applications, withdrawals and receipts carry it, and the hub takes the applicant and the
//! assurance level from the session, never from the body; an expired, logged-out, or ended
//! (password change, block) session is refused with the flow's rejection event, and nothing is
//! dead-lettered. The test is the portal.

use contracts::cabinet::{BlockSelf, CabinetOutcome, ChangePassword, LogOut, SessionToken};
use contracts::procedure::{
    ApplicationAccepted, ApplicationRejected, ApplicationWithdrawn, AttachReceipt,
    ComplaintRejectReason, ComplaintRejected, ProcedureRejectReason, SubmitApplication,
    SubmitComplaint, WithdrawApplication,
};
use contracts::{Message, MessageType};
use e2e::portal::{Portal, STATIC_PASSWORD, WAIT, plain};
use e2e::wait_until;
use hub_portal::procedures::saga::ProcedureSaga;
use hub_portal::sessions::{GATE_QUEUE, token_hash};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

/// A free procedure (pension certificate, FSZN), level `substantial`.
const FREE: &str = "2.19";
/// A paid one (duplicate civil-status certificate, 21.00 BYN), level `substantial`.
const PAID: &str = "5.13";
/// One that needs an EDS login (passport), level `high`.
const HIGH: &str = "11.1.2";

/// A `procedure.submit.v1` body sent as it is, to put fields in it the contract does not have.
#[derive(Serialize, Deserialize)]
#[serde(transparent)]
struct RawSubmit(Value);

impl Message for RawSubmit {
    const TYPE: MessageType = SubmitApplication::TYPE;
}

fn form(code: &str) -> Value {
    match code {
        FREE => json!({"period_from": "2026-01-01", "period_to": "2026-06-30", "purpose": "bank"}),
        PAID => json!({"record_kind": "birth", "record_year": 1990}),
        _ => json!({"passport_number": "MP1234567", "passport_expires": "2026-12-31"}),
    }
}

fn submit(code: &str, session: &SessionToken) -> SubmitApplication {
    SubmitApplication {
        application_id: Uuid::new_v4(),
        procedure_code: code.into(),
        session_token: session.clone(),
        form: form(code).as_object().cloned().expect("object"),
        attachments: vec![],
        delivery: Default::default(),
    }
}

/// Submits an application of `code` with `session`; returns the first answer about it: the
/// acceptance (`Ok`) or the rejection (`Err`).
async fn apply(
    portal: &Portal,
    code: &str,
    session: &SessionToken,
) -> (Uuid, Result<ApplicationAccepted, ApplicationRejected>) {
    let app = submit(code, session);
    portal.env.send(&app).await;
    (
        app.application_id,
        first_answer(portal, app.application_id).await,
    )
}

/// The first `procedure.accepted.v1` or `procedure.rejected.v1` about application `id`.
async fn first_answer(
    portal: &Portal,
    id: Uuid,
) -> Result<ApplicationAccepted, ApplicationRejected> {
    let key = id.to_string();
    let any = wait_until(WAIT, "an answer about the application", || async {
        if portal.events_so_far::<ApplicationAccepted>(&key).await > 0 {
            return Some(true);
        }
        (portal.events_so_far::<ApplicationRejected>(&key).await > 0).then_some(false)
    })
    .await;
    if any {
        Ok(portal.event(&key).await)
    } else {
        Err(portal.event(&key).await)
    }
}

fn session_refused(answer: Result<ApplicationAccepted, ApplicationRejected>, what: &str) {
    match answer {
        Err(rejected) => {
            assert_eq!(
                rejected.reason,
                ProcedureRejectReason::SessionInvalid,
                "{what}"
            );
            assert_eq!(rejected.fields[0].field, "session_token", "{what}");
        }
        Ok(accepted) => panic!("{what}: accepted as {}", accepted.number),
    }
}

async fn saga_state(portal: &Portal, id: Uuid) -> Option<(String, Value)> {
    sqlx::query_as("SELECT state_name, state FROM sagas WHERE id = $1")
        .bind(ProcedureSaga::key(id).id)
        .fetch_optional(&portal.env.pool)
        .await
        .expect("saga")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_answers_a_token_the_hub_keeps_only_hashed_and_sends_once() {
    let mut portal = Portal::start().await;
    let (id, session) = portal.eds_session(0).await;
    let token = session.as_str().to_owned();
    assert!(token.len() >= 22, "at least 128 bits: {}", token.len());
    assert!(
        token
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'),
        "URL-safe"
    );
    // The table has the token's hash, with the holder and the level, and never the token.
    let (identifier, level, method): (String, String, String) = sqlx::query_as(
        "SELECT identifier, assurance_level, method FROM portal_sessions WHERE token_hash = $1",
    )
    .bind(token_hash(&token))
    .fetch_one(&portal.env.pool)
    .await
    .expect("the session, by the token's hash");
    assert_eq!(
        (identifier.as_str(), level.as_str(), method.as_str()),
        (id.as_str(), "high", "eds")
    );
    let in_clear: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM portal_sessions s WHERE strpos(row_to_json(s)::text, $1) > 0",
    )
    .bind(&token)
    .fetch_one(&portal.env.pool)
    .await
    .expect("count");
    assert_eq!(in_clear, 0, "the token itself is in no session row");
    // The reply that carried it went out through the outbox; once sent, the row keeps no token.
    wait_until(WAIT, "no outbox row with the token", || async {
        let rows: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM outbox WHERE strpos(convert_from(body, 'UTF8'), $1) > 0
                 OR strpos(metadata::text, $1) > 0",
        )
        .bind(&token)
        .fetch_one(&portal.env.pool)
        .await
        .expect("outbox");
        (rows == 0).then_some(())
    })
    .await;
    let replies: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outbox WHERE metadata->>'message_type' = 'cabinet.reply.v1'
             AND sent_at IS NOT NULL AND strpos(convert_from(body, 'UTF8'), '[redacted]') > 0",
    )
    .fetch_one(&portal.env.pool)
    .await
    .expect("outbox");
    assert!(
        replies >= 1,
        "the login's reply is kept, its token redacted"
    );
    // A request with it works; an unknown token is refused; none is kept as a dead letter.
    let (_, answer) = apply(&portal, FREE, &session).await;
    answer.expect("accepted with the session");
    let made_up = SessionToken(token.chars().rev().collect());
    let (_, answer) = apply(&portal, FREE, &made_up).await;
    session_refused(answer, "a made-up token");
    let letters: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM dead_letters WHERE strpos(convert_from(body, 'UTF8'), $1) > 0",
    )
    .bind(&token)
    .fetch_one(&portal.env.pool)
    .await
    .expect("dead letters");
    assert_eq!(letters, 0);
    assert_eq!(portal.env.dead_letter_count(GATE_QUEUE).await, 0);
    portal.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_runs_as_the_sessions_holder_whatever_the_body_claims() {
    let mut portal = Portal::start().await;
    // A password login: `substantial`.
    let (id, session) = portal.password_session(0).await;
    // The body claims someone else at level `high`, as the contract's earlier version let it.
    let claim = json!({"identifier": "3270287A012PB2", "assurance_level": "high"});
    let application_id = Uuid::new_v4();
    portal
        .env
        .send(&RawSubmit(json!({
            "application_id": application_id,
            "procedure_code": FREE,
            "session_token": session,
            "applicant": claim,
            "applicant_identifier": "3270287A012PB2",
            "form": form(FREE),
        })))
        .await;
    first_answer(&portal, application_id)
        .await
        .expect("accepted: the extra fields are ignored");
    let (_, state) = saga_state(&portal, application_id)
        .await
        .expect("the application");
    assert_eq!(
        state["applicant"],
        id.as_str(),
        "the session's holder applies"
    );
    assert_ne!(id, "3270287A012PB2");
    // Nor does a claimed level count: the passport needs `high`, the session is `substantial`.
    let application_id = Uuid::new_v4();
    portal
        .env
        .send(&RawSubmit(json!({
            "application_id": application_id,
            "procedure_code": HIGH,
            "session_token": session,
            "applicant": claim,
            "form": form(HIGH),
        })))
        .await;
    let rejected = first_answer(&portal, application_id)
        .await
        .expect_err("refused");
    assert_eq!(rejected.reason, ProcedureRejectReason::AssuranceTooLow);
    // Without a session at all, the body is refused as breaking the contract.
    let before = portal.env.dead_letter_count(GATE_QUEUE).await;
    portal
        .env
        .send_deliberately_invalid(&RawSubmit(json!({
            "application_id": Uuid::new_v4(),
            "procedure_code": FREE,
            "applicant": claim,
            "form": form(FREE),
        })))
        .await;
    let letters = portal
        .env
        .dead_letters(
            GATE_QUEUE,
            usize::try_from(before).expect("count") + 1,
            WAIT,
        )
        .await;
    assert!(
        letters
            .last()
            .expect("a letter")
            .error
            .contains("session_token"),
        "{}",
        letters.last().expect("a letter").error
    );
    portal.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_logged_out_changed_and_blocked_sessions_are_refused_without_dead_letters() {
    let mut portal = Portal::start().await;
    let (id, first) = portal.password_session(0).await;
    let second = portal.log_in(&id, STATIC_PASSWORD).await;
    let third = portal.log_in(&id, STATIC_PASSWORD).await;
    assert!(
        first != second && second != third,
        "each login its own session"
    );

    // Expired: its time is moved into the past here, not waited for.
    let moved = sqlx::query(
        "UPDATE portal_sessions SET expires_at = now() - interval '1 second' WHERE token_hash = $1",
    )
    .bind(token_hash(first.as_str()))
    .execute(&portal.env.pool)
    .await
    .expect("expired")
    .rows_affected();
    assert_eq!(moved, 1);
    let (_, answer) = apply(&portal, PAID, &first).await;
    session_refused(answer, "an expired session");
    // A complaint with it is refused in the complaints' own event.
    let complaint = SubmitComplaint {
        complaint_id: Uuid::new_v4(),
        application_id: Uuid::new_v4(),
        session_token: first.clone(),
        text: "unfair".into(),
        kind: Default::default(),
    };
    portal.env.send(&complaint).await;
    let refused: ComplaintRejected = portal.event(&complaint.complaint_id.to_string()).await;
    assert_eq!(refused.reason, ComplaintRejectReason::SessionInvalid);

    // Logged out: the logout answers `ok`, and the session is gone.
    let out = portal
        .cabinet(&LogOut {
            session_token: second.clone(),
        })
        .await;
    assert_eq!(
        out,
        CabinetOutcome::Ok {
            assurance_level: "substantial".into(),
            session_token: None
        }
    );
    let (_, answer) = apply(&portal, PAID, &second).await;
    session_refused(answer, "a logged-out session");

    // The third still works: the refusals were about the sessions.
    let (_, answer) = apply(&portal, PAID, &third).await;
    answer.expect("accepted with an open session");

    // A password change ends every session of the identifier.
    let change = ChangePassword {
        identifier: id.clone(),
        current_password: STATIC_PASSWORD.into(),
        new_password: "Changed2026pass".into(),
    };
    assert!(matches!(
        plain(portal.cabinet(&change).await),
        CabinetOutcome::Ok {
            session_token: None,
            ..
        }
    ));
    let (_, answer) = apply(&portal, PAID, &third).await;
    session_refused(answer, "a session from before the password change");

    // A block ends every session too, in the block's transaction.
    let fourth = portal.log_in(&id, "Changed2026pass").await;
    let block = BlockSelf {
        identifier: id.clone(),
        password: "Changed2026pass".into(),
    };
    assert!(matches!(
        plain(portal.cabinet(&block).await),
        CabinetOutcome::Ok { .. }
    ));
    let (_, answer) = apply(&portal, PAID, &fourth).await;
    session_refused(answer, "a session from before the block");
    let open: i64 =
        sqlx::query_scalar("SELECT count(*) FROM portal_sessions WHERE identifier = $1")
            .bind(&id)
            .fetch_one(&portal.env.pool)
            .await
            .expect("count");
    assert_eq!(open, 0, "no session of a blocked identifier is left");

    // A refused session is ordinary input: nothing was dead-lettered anywhere.
    let letters: i64 = sqlx::query_scalar("SELECT count(*) FROM dead_letters")
        .fetch_one(&portal.env.pool)
        .await
        .expect("dead letters");
    assert_eq!(letters, 0);
    portal.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawal_or_receipt_with_another_persons_session_is_refused() {
    let mut portal = Portal::start().await;
    let (owner, mine) = portal.eds_session(0).await;
    let (stranger, theirs) = portal.eds_session(1).await;
    assert_ne!(owner, stranger);
    // A paid application waits for its payment; no authority is needed.
    let (application_id, answer) = apply(&portal, PAID, &mine).await;
    answer.expect("accepted");
    let key = application_id.to_string();
    portal
        .env
        .send(&WithdrawApplication {
            application_id,
            session_token: theirs.clone(),
        })
        .await;
    let refused: ApplicationRejected = portal.event(&key).await;
    assert_eq!(refused.reason, ProcedureRejectReason::NotTheApplicant);
    portal
        .env
        .send(&AttachReceipt {
            application_id,
            session_token: theirs,
            operation_id: "op-1".into(),
            amount_kopecks: 2100,
            outside_erip: None,
        })
        .await;
    wait_until(WAIT, "the receipt refused too", || async {
        (portal.events_so_far::<ApplicationRejected>(&key).await == 2).then_some(())
    })
    .await;
    let (stage, state) = saga_state(&portal, application_id)
        .await
        .expect("the application");
    assert_eq!(stage, "awaiting_payment", "nothing changed");
    assert_eq!(state["receipt"], Value::Null, "no receipt recorded");
    assert_eq!(state["applicant"], owner.as_str());
    // Its applicant's own session withdraws it.
    portal
        .env
        .send(&WithdrawApplication {
            application_id,
            session_token: mine,
        })
        .await;
    let withdrawn: ApplicationWithdrawn = portal.event(&key).await;
    assert_eq!(withdrawn.refund_due_kopecks, 0);
    portal.stop().await;
}

/// The procedures a person may order (seeds 000, 001): a session at `substantial` (password)
/// lists every procedure up to that level and none at `high`; an EDS session (`high`) lists the
/// whole catalogue, each with its authority, fee, term and form; a session that is no more gets
/// `session_invalid`; a request naming no `reply_to` is answered on the portal's queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_procedures_on_offer_follow_the_sessions_level() {
    use contracts::offer::{ListOutcome, ListProcedures, ProceduresListed};
    use contracts::procedure::AssuranceLevel;
    let portal = Portal::start().await;
    let catalogue = hub_portal::procedures::catalogue::Catalogue::embedded().expect("catalogue");
    let list = |session: &SessionToken| ListProcedures {
        request_id: Uuid::new_v4(),
        session_token: session.clone(),
    };
    let listed = |answer: ProceduresListed| match answer.outcome {
        ListOutcome::Listed { level, procedures } => (level, procedures),
        ListOutcome::SessionInvalid => panic!("a valid session is refused"),
    };

    let (_, password) = portal.password_session(0).await;
    let (level, offered) = listed(portal.ask(&list(&password)).await);
    assert_eq!(level, AssuranceLevel::Substantial);
    let expected: Vec<&str> = catalogue
        .procedures()
        .filter(|p| p.assurance <= AssuranceLevel::Substantial)
        .map(|p| p.code.as_str())
        .collect();
    let codes: Vec<&str> = offered.iter().map(|p| p.code.as_str()).collect();
    assert_eq!(codes, expected);
    assert!(!codes.contains(&HIGH), "{HIGH} needs an EDS login");
    let paid = offered.iter().find(|p| p.code == PAID).expect("offered");
    assert_eq!(paid.fee_kopecks, 2100);
    assert_eq!(paid.authority_id, "minsk-civil-registry");
    assert!(!paid.authority_name.is_empty());
    assert!(
        paid.fields
            .iter()
            .any(|f| f.name == "record_kind" && f.required)
    );

    let (_, eds) = portal.eds_session(1).await;
    let (level, offered) = listed(portal.ask(&list(&eds)).await);
    assert_eq!(level, AssuranceLevel::High);
    assert_eq!(offered.len(), catalogue.procedures().count());

    // Without a reply_to: on the portal's queue, found by the request's id.
    let request = list(&eds);
    portal.env.send(&request).await;
    let answer: ProceduresListed = portal.event(&request.request_id.to_string()).await;
    assert!(matches!(answer.outcome, ListOutcome::Listed { .. }));

    // Logged out: no list.
    let out = portal
        .cabinet(&LogOut {
            session_token: eds.clone(),
        })
        .await;
    assert!(matches!(out, CabinetOutcome::Ok { .. }), "{out:?}");
    let answer: ProceduresListed = portal.ask(&list(&eds)).await;
    assert_eq!(answer.outcome, ListOutcome::SessionInvalid);
}
