//! The account lifecycle by desk application end to end: blocking, unblocking after the identity
//! and MVD checks with a new temporary password, and changing the phone with an SMS code, against the hub's own plan, every
//! simulator, the real RabbitMQ and PostgreSQL. The test is the desk and reads the phones.

use contracts::Message;
use contracts::account::{
    BlockIdentifier, BlockIdentifierV2, ChangePhone, ChangePhoneV2, ConfirmNewPhone,
    IdentifierBlocked, IdentifierUnblocked, NewPhoneCodeSent, NewPhoneCodeWrong, PhoneChanged,
    RequestRejectReason, RequestRejected, UnblockIdentifier, UnblockIdentifierV2,
};
use contracts::cabinet::{CabinetOutcome, LogIn};
use contracts::issuance::{IdentifierIssued, PhoneCodeSent};
use contracts::procedure::{ApplicationRejected, ProcedureRejectReason, SubmitApplication};
use e2e::portal::{DESK, Person, Portal, WAIT, code_in, password_in, phone};
use e2e::wait_until;

/// The desk's side: the events the hub sends to the desk's own queue.
struct Desk<'a> {
    portal: &'a Portal,
}

impl<'a> Desk<'a> {
    async fn new(portal: &'a Portal) -> Self {
        Self { portal }
    }

    /// Waits for an event of type `M` about application `number`.
    async fn event<M: Message>(&self, number: &str) -> M {
        self.portal.event::<M>(number).await
    }

    async fn rejected(&self, number: &str) -> RequestRejected {
        self.event::<RequestRejected>(number).await
    }
}

/// Issues an identifier the way a desk does; returns the temporary password.
async fn issue(portal: &Portal, person: &Person, number: &str, phone: &str) -> String {
    portal.apply(&person.application(number, phone)).await;
    let _: PhoneCodeSent = portal.event(number).await;
    let code = code_in(&portal.nth_text(phone, 1).await);
    portal.confirm(number, &code).await;
    let _: IdentifierIssued = portal.event(number).await;
    password_in(&portal.nth_text(phone, 2).await)
}

/// A block on the written application of `person`, who presents the document.
fn block(number: &str, person: &Person) -> BlockIdentifierV2 {
    let application = person.application(number, &phone(0));
    BlockIdentifierV2 {
        desk_id: DESK.into(),
        application_number: number.into(),
        worker_id: "worker-3".into(),
        person: application.person,
        document: application.document,
        consent_to_mvd_check: true,
        reason: Some("the person gives the identifier up".into()),
    }
}

fn unblock(number: &str, person: &Person) -> UnblockIdentifierV2 {
    let application = person.application(number, &phone(0));
    UnblockIdentifierV2 {
        desk_id: DESK.into(),
        application_number: number.into(),
        worker_id: "worker-3".into(),
        person: application.person,
        document: application.document,
        consent_to_mvd_check: true,
    }
}

/// A change of phone on the written application of `person`, who presents the document.
fn change_phone(number: &str, person: &Person, new_phone: &str) -> ChangePhoneV2 {
    let application = person.application(number, &phone(0));
    ChangePhoneV2 {
        desk_id: DESK.into(),
        application_number: number.into(),
        worker_id: "worker-3".into(),
        person: application.person,
        document: application.document,
        consent_to_mvd_check: true,
        new_phone: new_phone.into(),
    }
}

fn confirm(number: &str, code: &str) -> ConfirmNewPhone {
    ConfirmNewPhone {
        desk_id: DESK.into(),
        application_number: number.into(),
        code: code.into(),
    }
}

fn login(identifier: &str, password: &str) -> LogIn {
    LogIn {
        identifier: identifier.into(),
        password: password.into(),
    }
}

async fn blocked(portal: &Portal, identifier: &str) -> bool {
    sqlx::query_scalar("SELECT blocked FROM accounts WHERE identifier = $1")
        .bind(identifier)
        .fetch_one(&portal.env.pool)
        .await
        .expect("account")
}

/// The account's history: (event, desk application) in order.
async fn history(portal: &Portal, identifier: &str) -> Vec<(String, Option<String>)> {
    sqlx::query_as(
        "SELECT event, application FROM account_events WHERE identifier = $1 ORDER BY id",
    )
    .bind(identifier)
    .fetch_all(&portal.env.pool)
    .await
    .expect("account events")
}

async fn phone_of(portal: &Portal, identifier: &str) -> String {
    sqlx::query_scalar("SELECT phone FROM identifiers WHERE identifier = $1")
        .bind(identifier)
        .fetch_one(&portal.env.pool)
        .await
        .expect("identifier")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_desk_blocks_and_only_a_checked_application_unblocks_with_all_history_kept() {
    let mut portal = Portal::start().await;
    let desk = Desk::new(&portal).await;
    let persons = portal.good_persons().await;
    let (alice, bob) = (&persons[0], &persons[1]);
    let id = alice.identification_number.clone();
    let password = issue(&portal, alice, "I-1", &phone(1)).await;
    let before = history(&portal, &id).await;
    assert_eq!(
        before.len(),
        1,
        "issuance wrote the account's first event: {before:?}"
    );

    // Alice also logs in with her EDS (her identification number is the identifier): a
    // session of the identifier.
    let (eds_id, session) = portal.eds_session(0).await;
    assert_eq!(eds_id, id);

    // The retired v1 (no worker, no document): refused, nothing blocked.
    portal
        .env
        .send(&BlockIdentifier {
            desk_id: DESK.into(),
            application_number: "B-0".into(),
            identifier: id.clone(),
            reason: None,
        })
        .await;
    assert_eq!(
        desk.rejected("B-0").await.reason,
        RequestRejectReason::RetiredVersion
    );
    // A document the MVD registry does not confirm: refused, nothing blocked.
    let mut forged = block("B-0a", alice);
    forged.document.number = format!("{}9", forged.document.number);
    portal.env.send(&forged).await;
    let r = desk.rejected("B-0a").await;
    assert_eq!(r.reason, RequestRejectReason::MvdMismatch, "{r:?}");
    assert!(!blocked(&portal, &id).await);

    // Blocked by desk: the flag, the event with its application, and the cabinet refuses.
    let mut lower = block("B-1", alice);
    lower.person.identification_number = id.to_lowercase();
    portal.env.send(&lower).await;
    let b: IdentifierBlocked = desk.event("B-1").await;
    assert_eq!(b.desk_id, DESK);
    assert!(blocked(&portal, &id).await);
    // Every session of the identifier ended with the block: an application with one is refused.
    let open: i64 =
        sqlx::query_scalar("SELECT count(*) FROM portal_sessions WHERE identifier = $1")
            .bind(&id)
            .fetch_one(&portal.env.pool)
            .await
            .expect("sessions");
    assert_eq!(open, 0, "no session outlives the block");
    let application = SubmitApplication {
        application_id: uuid::Uuid::new_v4(),
        procedure_code: "2.19".into(),
        session_token: session,
        form: serde_json::Map::new(),
        attachments: vec![],
        delivery: Default::default(),
    };
    portal.env.send(&application).await;
    let refused: ApplicationRejected = portal.event(&application.application_id.to_string()).await;
    assert_eq!(refused.reason, ProcedureRejectReason::SessionInvalid);
    // Nor does an EDS login open a new one while the identifier is blocked.
    let proof = e2e::eds::proof(&portal, &id).await;
    assert_eq!(
        portal
            .cabinet(&contracts::registration::LogInByEds { proof })
            .await,
        CabinetOutcome::Blocked
    );
    let after_block = history(&portal, &id).await;
    assert_eq!(
        after_block.last(),
        Some(&("blocked_by_desk".to_string(), Some(format!("{DESK}/B-1"))))
    );
    assert_eq!(
        portal.cabinet(&login(&id, &password)).await,
        CabinetOutcome::Blocked
    );

    // No new temporary password for a blocked identifier, even with the document: unblock first.
    let presented = alice.application("I-1", &phone(1));
    portal
        .env
        .send(&contracts::issuance::ResendTemporaryPasswordV2 {
            desk_id: DESK.into(),
            application_number: "I-1".into(),
            worker_id: "worker-3".into(),
            person: presented.person,
            document: presented.document,
            consent_to_mvd_check: true,
        })
        .await;
    let refused: contracts::issuance::ResendRefused = portal.event("I-1").await;
    assert_eq!(
        refused.reason,
        contracts::issuance::ResendRefusal::IdentifierBlocked
    );
    assert_eq!(portal.phone_texts(&phone(1)).await.len(), 2, "no SMS");

    // Blocking again, and blocking an identifier nobody holds, are rejected.
    portal.env.send(&block("B-2", alice)).await;
    assert_eq!(
        desk.rejected("B-2").await.reason,
        RequestRejectReason::AlreadyBlocked
    );
    portal.env.send(&block("B-3", bob)).await;
    assert_eq!(
        desk.rejected("B-3").await.reason,
        RequestRejectReason::UnknownIdentifier
    );

    // Failed logins while blocked lock the cabinet out.
    let mut locked_out = false;
    for _ in 0..20 {
        if let CabinetOutcome::LockedOut { .. } = portal.cabinet(&login(&id, "not-it")).await {
            locked_out = true;
            break;
        }
    }
    assert!(locked_out, "wrong passwords lead to a lock-out");

    // The retired v1 (no worker, no new password): refused with the version to send.
    let v1 = unblock("U-0", alice);
    portal
        .env
        .send(&UnblockIdentifier {
            desk_id: v1.desk_id,
            application_number: v1.application_number,
            person: v1.person,
            document: v1.document,
            consent_to_mvd_check: true,
        })
        .await;
    let r = desk.rejected("U-0").await;
    assert_eq!(r.reason, RequestRejectReason::RetiredVersion);
    assert!(blocked(&portal, &id).await);

    // A stated surname that the MVD registry does not confirm: still blocked.
    let mut wrong = unblock("U-1", alice);
    wrong.person.surname = format!("{}а", alice.surname);
    portal.env.send(&wrong).await;
    let r = desk.rejected("U-1").await;
    assert_eq!(r.reason, RequestRejectReason::MvdMismatch);
    assert_eq!(
        r.fields
            .iter()
            .map(|f| f.field.as_str())
            .collect::<Vec<_>>(),
        ["person.surname"]
    );
    assert!(blocked(&portal, &id).await);

    // The person's correct data: unblocked, every earlier event still there, a new temporary
    // password by SMS to the registry's phone (the old password no longer works) and the
    // lock-out is gone.
    portal.env.send(&unblock("U-2", alice)).await;
    let unblocked: IdentifierUnblocked = desk.event("U-2").await;
    assert_eq!(unblocked.phone_masked.as_deref(), Some("+375 44 ***-**-34"));
    assert!(unblocked.temporary_password_expires_at.is_some());
    let text = portal.nth_text(&phone(1), 3).await;
    assert!(text.contains("разблокирован"), "{text}");
    let new_password = password_in(&text);
    assert!(!blocked(&portal, &id).await);
    let after_unblock = history(&portal, &id).await;
    assert_eq!(
        after_unblock[..after_block.len()],
        after_block[..],
        "no event is lost"
    );
    assert_eq!(
        after_unblock[after_block.len()..],
        [("unblocked_by_desk".to_string(), Some(format!("{DESK}/U-2")))]
    );
    let worker: Option<String> = sqlx::query_scalar(
        "SELECT detail->>'worker_id' FROM account_events
         WHERE identifier = $1 AND event = 'unblocked_by_desk'",
    )
    .bind(&id)
    .fetch_one(&portal.env.pool)
    .await
    .expect("the unblock's event");
    assert_eq!(worker.as_deref(), Some("worker-3"));
    assert_eq!(
        portal.cabinet(&login(&id, &password)).await,
        CabinetOutcome::WrongCredentials,
        "the password before the block is replaced"
    );
    assert_eq!(
        portal.cabinet(&login(&id, &new_password)).await,
        CabinetOutcome::MustChangePassword
    );
    let dump: String = sqlx::query_scalar(
        "SELECT concat_ws(' ',
            (SELECT string_agg(convert_from(body, 'UTF8'), ' ') FROM outbox),
            (SELECT string_agg(state::text, ' ') FROM sagas))",
    )
    .fetch_one(&portal.env.pool)
    .await
    .expect("dump");
    assert!(!dump.contains(&new_password), "the password in the clear");

    // Nothing to unblock any more; an identifier nobody holds cannot be unblocked either.
    portal.env.send(&unblock("U-3", alice)).await;
    assert_eq!(
        desk.rejected("U-3").await.reason,
        RequestRejectReason::NotBlocked
    );
    portal.env.send(&unblock("U-4", bob)).await;
    assert_eq!(
        desk.rejected("U-4").await.reason,
        RequestRejectReason::UnknownIdentifier
    );
    portal.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_desk_changes_the_phone_after_the_code_and_never_to_a_bound_one() {
    let mut portal = Portal::start().await;
    let desk = Desk::new(&portal).await;
    let persons = portal.good_persons().await;
    let (alice, bob) = (&persons[0], &persons[1]);
    let id = alice.identification_number.clone();
    issue(&portal, alice, "I-1", &phone(1)).await;
    issue(&portal, bob, "I-2", &phone(2)).await;

    // A free number, confirmed with the code the new phone received.
    let new_phone = phone(3);
    portal
        .env
        .send(&ChangePhone {
            desk_id: DESK.into(),
            application_number: "P-0".into(),
            identifier: id.clone(),
            new_phone: new_phone.clone(),
        })
        .await;
    assert_eq!(
        desk.rejected("P-0").await.reason,
        RequestRejectReason::RetiredVersion,
        "the retired v1 carries no proof of identity"
    );
    // Bob cannot move Alice's identifier to his phone with his own document: the identifier
    // is the presenting person's identification number.
    let mut impostor = change_phone("P-0b", alice, &new_phone);
    impostor.person.surname = bob.surname.clone();
    impostor.document = change_phone("P-0b", bob, &new_phone).document;
    portal.env.send(&impostor).await;
    assert_eq!(
        desk.rejected("P-0b").await.reason,
        RequestRejectReason::MvdMismatch
    );
    assert!(
        portal.phone_texts(&new_phone).await.is_empty(),
        "no code sent"
    );
    portal
        .env
        .send(&change_phone("P-1", alice, &new_phone))
        .await;
    let sent: NewPhoneCodeSent = desk.event("P-1").await;
    assert_eq!(sent.phone_masked, "+375 44 ***-**-34");
    assert_eq!(sent.attempts_left, 3);
    assert_eq!(
        phone_of(&portal, &id).await,
        phone(1),
        "nothing changes before the code"
    );
    let code = code_in(&portal.nth_text(&new_phone, 1).await);
    portal.env.send(&confirm("P-1", &code)).await;
    let changed: PhoneChanged = desk.event("P-1").await;
    assert_eq!(changed.phone_masked, "+375 44 ***-**-34");
    assert_eq!(phone_of(&portal, &id).await, new_phone);
    let (event, application, previous, worker): (
        String,
        Option<String>,
        Option<String>,
        Option<String>,
    ) = sqlx::query_as(
        "SELECT event, application, detail->>'previous_phone', detail->>'worker_id'
         FROM account_events WHERE identifier = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(&id)
    .fetch_one(&portal.env.pool)
    .await
    .expect("the last event");
    assert_eq!(
        (event.as_str(), application, previous, worker.as_deref()),
        (
            "phone_changed",
            Some(format!("{DESK}/P-1")),
            Some(phone(1)),
            Some("worker-3")
        )
    );
    // The code is nowhere in the clear.
    let dump: String = sqlx::query_scalar(
        "SELECT concat_ws(' ',
            (SELECT string_agg(convert_from(body, 'UTF8'), ' ') FROM outbox),
            (SELECT string_agg(state::text, ' ') FROM sagas))",
    )
    .fetch_one(&portal.env.pool)
    .await
    .expect("dump");
    assert!(!dump.contains(&format!("\"{code}\"")) && !dump.contains(&format!(": {code}")));

    // Bob's phone is bound to Bob: refused before any SMS.
    portal
        .env
        .send(&change_phone("P-2", alice, &phone(2)))
        .await;
    let r = desk.rejected("P-2").await;
    assert_eq!(r.reason, RequestRejectReason::PhoneBound);
    assert!(
        portal.phone_texts(&phone(2)).await.len() == 2,
        "no code went to Bob's phone"
    );

    // Alice's old phone is free now: Bob may take it.
    portal.env.send(&change_phone("P-3", bob, &phone(1))).await;
    let _: NewPhoneCodeSent = desk.event("P-3").await;
    let code = wait_until(WAIT, "the code on the old phone", || async {
        portal
            .phone_texts(&phone(1))
            .await
            .iter()
            .find(|t| t.contains("нового номера"))
            .map(|t| code_in(t))
    })
    .await;
    portal.env.send(&confirm("P-3", &code)).await;
    let _: PhoneChanged = desk.event("P-3").await;
    assert_eq!(
        phone_of(&portal, &bob.identification_number).await,
        phone(1)
    );

    // Wrong codes: counted, and the last one ends the request with the phone unchanged.
    portal
        .env
        .send(&change_phone("P-4", alice, &phone(4)))
        .await;
    let _: NewPhoneCodeSent = desk.event("P-4").await;
    portal.env.send(&confirm("P-4", "000000x")).await;
    let wrong: NewPhoneCodeWrong = desk.event("P-4").await;
    assert_eq!(wrong.attempts_left, 2);
    portal.env.send(&confirm("P-4", "111111x")).await;
    portal.env.send(&confirm("P-4", "222222x")).await;
    let r = desk.rejected("P-4").await;
    assert_eq!(
        (r.reason, r.detail.as_ref().map(|d| d.as_str())),
        (
            RequestRejectReason::PhoneNotConfirmed,
            Some("too_many_attempts")
        )
    );
    assert_eq!(phone_of(&portal, &id).await, new_phone);
    portal.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_code_that_is_never_given_times_out() {
    let mut portal =
        Portal::start_with(|c| c.phone_code_ttl = std::time::Duration::from_secs(8)).await;
    let desk = Desk::new(&portal).await;
    let person = portal.good_persons().await.remove(0);
    let id = person.identification_number.clone();
    issue(&portal, &person, "I-1", &phone(1)).await;
    portal
        .env
        .send(&change_phone("T-1", &person, &phone(5)))
        .await;
    let _: NewPhoneCodeSent = desk.event("T-1").await;
    let r = desk.rejected("T-1").await;
    assert_eq!(
        (r.reason, r.detail.as_ref().map(|d| d.as_str())),
        (RequestRejectReason::PhoneNotConfirmed, Some("timed_out"))
    );
    assert_eq!(phone_of(&portal, &id).await, phone(1));
    portal.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_desk_confirms_the_signed_notice_and_the_application_records_it() {
    use contracts::issuance::{NoticeRecorded, NoticeRefusal, NoticeRefused, NoticeSigned};
    let mut portal = Portal::start().await;
    let person = portal.good_persons().await.remove(0);
    portal.apply(&person.application("N-1", &phone(7))).await;
    let _: PhoneCodeSent = portal.event("N-1").await;
    let code = code_in(&portal.nth_text(&phone(7), 1).await);
    portal.confirm("N-1", &code).await;
    let issued: IdentifierIssued = portal.event("N-1").await;
    let today = chrono::Utc::now().date_naive();
    let signed = |number: &str| NoticeSigned {
        desk_id: DESK.into(),
        application_number: "N-1".into(),
        notice_number: number.into(),
        signed_on: today,
        worker_id: "worker-1".into(),
    };

    // Another desk may not confirm it: dead-lettered, naming its user.
    let other = e2e::harness::TEST_DESKS[1];
    let body = contracts::encode(&signed(&issued.notice.notice_number)).expect("encodes");
    portal
        .env
        .send_raw_as(
            Some(&hub_portal::agency::desk_user(other)),
            &NoticeSigned::TYPE.to_string(),
            body,
            contracts::Metadata::new(NoticeSigned::TYPE.to_string(), "intruder"),
        )
        .await;
    let letters = portal
        .env
        .dead_letters(hub_portal::sagas::issuance::QUEUE, 1, WAIT)
        .await;
    assert!(
        letters[0].error.contains("a desk sends only its own"),
        "{}",
        letters[0].error
    );

    // Another notice's number: refused, nothing recorded.
    portal.env.send(&signed("UI-1999-x-1")).await;
    let refused: NoticeRefused = portal.event("N-1").await;
    assert_eq!(refused.reason, NoticeRefusal::NoticeMismatch);

    // The notice's own number: recorded in the application.
    portal.env.send(&signed(&issued.notice.notice_number)).await;
    let recorded: NoticeRecorded = portal.event("N-1").await;
    assert_eq!(
        (recorded.notice_number.as_str(), recorded.signed_on),
        (issued.notice.notice_number.as_str(), today)
    );
    let kept: serde_json::Value = sqlx::query_scalar(
        "SELECT state->'notice_signed' FROM sagas
         WHERE saga_type = 'issuance' AND business_key = $1",
    )
    .bind(format!("{DESK}/N-1"))
    .fetch_one(&portal.env.pool)
    .await
    .expect("the application");
    assert_eq!(kept["worker_id"], "worker-1");
    assert_eq!(kept["signed_on"], today.to_string());
    portal.stop().await;
}
