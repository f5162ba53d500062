//! Issuance of the unique identifier end to end: the hub's own plan, every simulator, the real
//! RabbitMQ and PostgreSQL. The test is the desk and reads the person's phone.

use contracts::headers;
use contracts::issuance::{
    ApplicationRejected, IdentifierIssued, PhoneCodeSent, PhoneCodeWrong, RejectReason,
};
use e2e::portal::{Portal, WAIT, code_in, password_in, phone};
use e2e::wait_until;
use simulators::SimKind;

/// Runs one application through to the notice; returns (notice, temporary password).
async fn issue(
    portal: &Portal,
    person: &e2e::portal::Person,
    number: &str,
    phone: &str,
) -> (IdentifierIssued, String) {
    portal.apply(&person.application(number, phone)).await;
    let sent: PhoneCodeSent = portal.event(number).await;
    assert_eq!(sent.attempts_left, 3);
    let code = code_in(&portal.nth_text(phone, 1).await);
    portal.confirm(number, &code).await;
    let issued: IdentifierIssued = portal.event(number).await;
    let password = password_in(&portal.nth_text(phone, 2).await);
    (issued, password)
}

async fn rejected(portal: &Portal, number: &str) -> ApplicationRejected {
    portal.event::<ApplicationRejected>(number).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identifier_is_issued_once_per_person_and_phone_with_no_secret_in_the_clear() {
    let mut portal = Portal::start().await;
    let persons = portal.good_persons().await;
    let (alice, bob) = (&persons[0], &persons[1]);
    let (issued, password) = issue(&portal, alice, "A-1", &phone(1)).await;
    let notice = &issued.notice;
    assert_eq!(notice.identifier, alice.identification_number);
    assert_eq!(notice.surname, alice.surname);
    assert_eq!(notice.phone_masked, "+375 44 ***-**-34");
    assert!(notice.notice_number.starts_with("UI-"));

    // The account: the temporary password verifies against the stored hash, must be changed.
    let (hash, must_change): (String, bool) = sqlx::query_as(
        "SELECT password_hash, must_change_password FROM accounts WHERE identifier = $1",
    )
    .bind(&alice.identification_number)
    .fetch_one(&portal.env.pool)
    .await
    .expect("account");
    assert!(hub_runtime::secrets::verify_secret(&password, &hash));
    assert!(must_change);

    // Nowhere in the database is the password or the code in the clear.
    let code = code_in(&portal.nth_text(&phone(1), 1).await);
    let dump: String = sqlx::query_scalar(
        "SELECT concat_ws(' ',
            (SELECT string_agg(convert_from(body, 'UTF8'), ' ') FROM outbox),
            (SELECT string_agg(state::text, ' ') FROM sagas),
            (SELECT string_agg(password_hash, ' ') FROM accounts))",
    )
    .fetch_one(&portal.env.pool)
    .await
    .expect("dump");
    assert!(
        !dump.contains(&password),
        "the temporary password is stored somewhere in the clear"
    );
    assert!(
        !dump.contains(&format!("\"{code}\"")) && !dump.contains(&format!(": {code}")),
        "the code is stored in the clear"
    );

    // The same person again, with another phone: already assigned.
    portal.apply(&alice.application("A-2", &phone(2))).await;
    assert_eq!(
        rejected(&portal, "A-2").await.reason,
        RejectReason::AlreadyAssigned
    );
    // Another person with the first phone: the phone is bound.
    portal.apply(&bob.application("A-3", &phone(1))).await;
    assert_eq!(
        rejected(&portal, "A-3").await.reason,
        RejectReason::PhoneBound
    );
    // The rejected applications hold nothing.
    let held: i64 = sqlx::query_scalar("SELECT count(*) FROM identifiers")
        .fetch_one(&portal.env.pool)
        .await
        .expect("identifiers");
    assert_eq!(held, 1);
    portal.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mvd_verdict_rejects_mismatches_and_lost_documents_and_releases_the_reservation() {
    let mut portal = Portal::start().await;
    let population = portal.population(500).await;
    let changed = population
        .iter()
        .find(|p| p.previous_surname.is_some() && p.document_status == "valid")
        .expect("a person who changed surname");
    let lost = population
        .iter()
        .find(|p| p.document_status == "lost" && p.previous_surname.is_none())
        .expect("a person with a lost document");
    let mut old_name = changed.application("M-1", &phone(11));
    old_name.person.surname = changed.previous_surname.clone().expect("previous surname");
    portal.apply(&old_name).await;
    let r = rejected(&portal, "M-1").await;
    assert_eq!(r.reason, RejectReason::MvdMismatch);
    assert_eq!(
        r.fields
            .iter()
            .map(|f| f.field.as_str())
            .collect::<Vec<_>>(),
        ["person.surname"]
    );

    let mut lost_app = lost.application("M-2", &phone(12));
    // The desk sees a date in the future; the registry knows the document was reported lost.
    lost_app.document.expires_on = chrono::Utc::now().date_naive() + chrono::Days::new(365);
    portal.apply(&lost_app).await;
    let r = rejected(&portal, "M-2").await;
    assert_eq!(r.reason, RejectReason::DocumentInvalid);
    assert_eq!(r.detail.as_ref().map(|d| d.as_str()), Some("lost"));

    wait_until(WAIT, "both reservations released", || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM identifiers")
            .fetch_one(&portal.env.pool)
            .await
            .expect("identifiers");
        (n == 0).then_some(())
    })
    .await;
    portal.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_codes_end_the_application_and_a_bad_code_message_is_dead_lettered_without_its_body()
{
    let mut portal = Portal::start().await;
    let person = portal.good_persons().await.remove(0);
    portal.apply(&person.application("C-1", &phone(21))).await;
    let _: PhoneCodeSent = portal.event("C-1").await;
    portal.confirm("C-1", "000000x").await;
    let wrong: PhoneCodeWrong = portal.event("C-1").await;
    assert_eq!(wrong.attempts_left, 2);
    portal.confirm("C-1", "111111x").await;
    portal.confirm("C-1", "222222x").await;
    let r = rejected(&portal, "C-1").await;
    assert_eq!(
        (r.reason, r.detail.as_ref().map(|d| d.as_str())),
        (RejectReason::PhoneNotConfirmed, Some("too_many_attempts"))
    );

    // A confirmation for an application that does not exist fails for good: its dead letter
    // keeps the reason, not the code.
    portal.confirm("no-such-application", "654321").await;
    let letters = portal
        .env
        .dead_letters(hub_portal::sagas::issuance::QUEUE, 1, WAIT)
        .await;
    let letter = &letters[0];
    assert_eq!(
        letter.header_str(headers::ERROR_TEXT).as_deref(),
        Some("no such application")
    );
    assert_eq!(letter.error, "no such application");
    assert!(
        !String::from_utf8_lossy(&letter.body).contains("654321"),
        "the code is not kept"
    );
    assert!(
        !letter.properties.to_string().contains("654321"),
        "nor anywhere in its properties"
    );
    assert!(
        letter.header(headers::REDACTED).is_some(),
        "the dead letter says its body was redacted"
    );
    assert!(letter.is_redacted());
    portal.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_saga_waits_while_the_mvd_is_down_and_completes_when_it_is_back() {
    let mut portal = Portal::start().await;
    let person = portal.good_persons().await.remove(0);
    portal
        .faults(SimKind::Mvd, serde_json::json!({"error_rate": 1.0}))
        .await;
    portal.apply(&person.application("D-1", &phone(31))).await;
    // The reconciliation fails and waits in the retry tiers.
    wait_until(WAIT, "the saga waiting for the MVD", || async {
        let state: Option<String> = sqlx::query_scalar("SELECT state_name FROM sagas")
            .fetch_optional(&portal.env.pool)
            .await
            .expect("saga");
        (state.as_deref() == Some("reconciling")).then_some(())
    })
    .await;
    portal
        .faults(SimKind::Mvd, serde_json::json!({"error_rate": 0.0}))
        .await;
    let sent: PhoneCodeSent = portal.event("D-1").await;
    assert_eq!(sent.application_number, "D-1");
    portal.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicated_delivery_report_changes_nothing() {
    let mut portal = Portal::start().await;
    portal
        .faults(
            SimKind::A1,
            serde_json::json!({"duplicate_callback_rate": 1.0}),
        )
        .await;
    let person = portal.good_persons().await.remove(0);
    issue(&portal, &person, "R-1", &phone(41)).await;
    // Both copies of the password's delivery report reach the hub; the saga takes one.
    let saga = hub_portal::sagas::issuance::IssuanceSaga::key(e2e::portal::DESK, "R-1").id;
    wait_until(WAIT, "the delivery report applied", || async {
        let delivered: Option<bool> = sqlx::query_scalar(
            "SELECT (state->'stage'->>'password_delivered')::boolean FROM sagas WHERE id = $1",
        )
        .bind(saga)
        .fetch_one(&portal.env.pool)
        .await
        .expect("saga");
        (delivered == Some(true)).then_some(())
    })
    .await;
    let pool = portal.env.pool.clone();
    let reports = || {
        let pool = pool.clone();
        async move {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM saga_history WHERE saga_id = $1 AND message_type = 'sms.delivery_reported.v1'",
            )
            .bind(saga)
            .fetch_one(&pool)
            .await
            .expect("history");
            n
        }
    };
    // Two SMS (code and password), one report each taken; the duplicates were skipped.
    wait_until(WAIT, "both SMS reported", || async {
        (reports().await >= 2).then_some(())
    })
    .await;
    portal.stop().await;
    assert_eq!(reports().await, 2, "each report applied once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_sms_that_cannot_be_sent_is_dead_lettered_sealed_and_the_desk_resends_it() {
    let mut portal = Portal::start().await;
    let person = portal.good_persons().await.remove(0);
    let phone = phone(51);
    portal.apply(&person.application("S-1", &phone)).await;
    let _: PhoneCodeSent = portal.event("S-1").await;
    let code = code_in(&portal.nth_text(&phone, 1).await);
    // The operator goes down just before the password SMS.
    portal
        .faults(SimKind::A1, serde_json::json!({"error_rate": 1.0}))
        .await;
    portal.confirm("S-1", &code).await;
    let letters = portal
        .env
        .dead_letters(hub_portal::external::sms::worker::QUEUE, 1, WAIT)
        .await;
    let letter = &letters[0];
    let body = &letter.body;
    assert_eq!(
        letter.header_str(headers::ERROR_KIND).as_deref(),
        Some("retries_exhausted")
    );
    assert_eq!(letter.error_kind, "retries_exhausted");
    let text = String::from_utf8_lossy(body);
    assert!(
        !text.contains("пароль") && !text.contains("Временный"),
        "the text is not in the clear: {text}"
    );
    let send: contracts::sms::SendSms =
        serde_json::from_slice(body).expect("the dead letter is the command");
    let sealer = hub_runtime::secrets::Sealer::from_config(portal.integrations.seal_key.as_deref())
        .expect("key");
    assert!(
        sealer
            .open(&send.text)
            .expect("opens with the hub's key")
            .contains("Временный пароль")
    );

    // The operator is back; the desk asks for a new password without a new application.
    portal
        .faults(SimKind::A1, serde_json::json!({"error_rate": 0.0}))
        .await;
    // The person presents the document again (checked as at issuance).
    let again = person.application("S-1", &phone);
    portal
        .env
        .send(&contracts::issuance::ResendTemporaryPasswordV2 {
            desk_id: e2e::portal::DESK.into(),
            application_number: "S-1".into(),
            worker_id: "worker-2".into(),
            person: again.person,
            document: again.document,
            consent_to_mvd_check: true,
        })
        .await;
    let issued: IdentifierIssued = portal.event("S-1").await;
    assert_eq!(issued.notice.identifier, person.identification_number);
    let password = password_in(&portal.nth_text(&phone, 2).await);
    let login = contracts::cabinet::LogIn {
        identifier: person.identification_number.clone(),
        password,
    };
    assert_eq!(
        portal.cabinet(&login).await,
        contracts::cabinet::CabinetOutcome::MustChangePassword,
        "the resent password works"
    );
    portal.stop().await;
}
