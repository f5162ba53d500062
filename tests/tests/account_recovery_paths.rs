//! The ways back into an account, end to end on the real broker and database (issue 17): a new
//! temporary password resent only after the identity checks of issuance, only while no static
//! password is set, only to the phone the registry holds now; and unblocking in the cabinet by a
//! code to that phone with a new password. The test is the desk and the portal, and reads the
//! phones.

use contracts::Message;
use contracts::account::{ChangePhoneV2, ConfirmNewPhone, NewPhoneCodeSent, PhoneChanged};
use contracts::cabinet::{
    BlockSelf, CabinetOutcome, ChangePassword, CompleteUnblock, LogIn, UnblockSelf,
};
use contracts::issuance::{
    IdentifierIssued, PasswordResent, PhoneCodeSent, ResendRefusal, ResendRefused,
    ResendTemporaryPassword, ResendTemporaryPasswordV2,
};
use contracts::{Metadata, encode};
use e2e::portal::{
    DESK, Person, Portal, STATIC_PASSWORD, WAIT, code_in, password_in, phone, plain,
};

/// Issues an identifier the way a desk does; returns the temporary password.
async fn issue(portal: &Portal, person: &Person, number: &str, phone: &str) -> String {
    portal.apply(&person.application(number, phone)).await;
    let _: PhoneCodeSent = portal.event(number).await;
    let code = code_in(&portal.nth_text(phone, 1).await);
    portal.confirm(number, &code).await;
    let _: IdentifierIssued = portal.event(number).await;
    password_in(&portal.nth_text(phone, 2).await)
}

/// A resend under issuance application `number`, with the person's own data and document.
fn resend(number: &str, person: &Person) -> ResendTemporaryPasswordV2 {
    let application = person.application(number, &phone(0));
    ResendTemporaryPasswordV2 {
        desk_id: DESK.into(),
        application_number: number.into(),
        worker_id: "worker-2".into(),
        person: application.person,
        document: application.document,
        consent_to_mvd_check: true,
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

async fn events(portal: &Portal, identifier: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT event FROM account_events WHERE identifier = $1 ORDER BY id")
        .bind(identifier)
        .fetch_all(&portal.env.pool)
        .await
        .expect("account events")
}

/// Everything the hub keeps that a secret must never be in, in the clear: outbox bodies, saga
/// states, account events, dead letters.
async fn kept(portal: &Portal) -> String {
    sqlx::query_scalar(
        "SELECT concat_ws(' ',
            (SELECT string_agg(convert_from(body, 'UTF8'), ' ') FROM outbox),
            (SELECT string_agg(state::text, ' ') FROM sagas),
            (SELECT string_agg(concat(event, detail::text), ' ') FROM account_events),
            (SELECT string_agg(coalesce(convert_from(body, 'UTF8'), ''), ' ') FROM dead_letters))",
    )
    .fetch_one(&portal.env.pool)
    .await
    .expect("dump")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resend_checks_the_person_again_goes_to_the_phone_held_now_and_stops_at_a_static_password()
 {
    let mut portal = Portal::start().await;
    let alice = portal.good_persons().await.remove(0);
    let id = alice.identification_number.clone();
    let (first_phone, second_phone) = (phone(11), phone(12));
    let first = issue(&portal, &alice, "I-1", &first_phone).await;

    // The retired v1, with no document: refused, and no SMS goes anywhere.
    portal
        .env
        .send(&ResendTemporaryPassword {
            desk_id: DESK.into(),
            application_number: "I-1".into(),
        })
        .await;
    let r: ResendRefused = portal.nth_event("I-1", 1).await;
    assert_eq!(r.reason, ResendRefusal::RetiredVersion);
    assert!(
        r.detail
            .as_ref()
            .is_some_and(|d| d.as_str().contains("issuance.resend_password.v2")),
        "{r:?}"
    );

    // A desk binds the identifier to a new phone (the old number may go to a stranger).
    let presented = alice.application("P-1", &second_phone);
    portal
        .env
        .send(&ChangePhoneV2 {
            desk_id: DESK.into(),
            application_number: "P-1".into(),
            worker_id: "worker-3".into(),
            person: presented.person,
            document: presented.document,
            consent_to_mvd_check: true,
            new_phone: second_phone.clone(),
        })
        .await;
    let _: NewPhoneCodeSent = portal.event("P-1").await;
    let code = code_in(&portal.nth_text(&second_phone, 1).await);
    portal
        .env
        .send(&ConfirmNewPhone {
            desk_id: DESK.into(),
            application_number: "P-1".into(),
            code,
        })
        .await;
    let _: PhoneChanged = portal.event("P-1").await;

    // A stated surname the MVD registry does not confirm: refused, nothing sent.
    let mut wrong = resend("I-1", &alice);
    wrong.person.surname = format!("{}а", alice.surname);
    portal.env.send(&wrong).await;
    let r: ResendRefused = portal.nth_event("I-1", 2).await;
    assert_eq!(r.reason, ResendRefusal::MvdMismatch);
    assert_eq!(r.fields[0].field, "person.surname");
    // Another person's identification number under Alice's application: refused by form.
    let bob = portal.good_persons().await.remove(1);
    let mut other = resend("I-1", &bob);
    other.application_number = "I-1".into();
    portal.env.send(&other).await;
    let r: ResendRefused = portal.nth_event("I-1", 3).await;
    assert_eq!(r.reason, ResendRefusal::InvalidInput);
    assert!(
        r.fields
            .iter()
            .any(|f| f.field == "person.identification_number"),
        "{r:?}"
    );

    // The person's own data and document: a new temporary password, to the phone held now.
    portal.env.send(&resend("I-1", &alice)).await;
    let resent: PasswordResent = portal.event("I-1").await;
    assert_eq!(resent.phone_masked.as_deref(), Some("+375 44 ***-**-34"));
    let second = password_in(&portal.nth_text(&second_phone, 2).await);
    assert_eq!(
        portal.phone_texts(&first_phone).await.len(),
        2,
        "nothing more goes to the phone recorded at issuance"
    );
    assert_ne!(first, second);
    assert_eq!(
        portal.cabinet(&login(&id, &first)).await,
        CabinetOutcome::WrongCredentials,
        "the earlier temporary password is replaced"
    );
    assert_eq!(
        portal.cabinet(&login(&id, &second)).await,
        CabinetOutcome::MustChangePassword
    );
    let (worker,): (Option<String>,) = sqlx::query_as(
        "SELECT detail->>'worker_id' FROM account_events
         WHERE identifier = $1 AND event = 'temporary_password_reissued'",
    )
    .bind(&id)
    .fetch_one(&portal.env.pool)
    .await
    .expect("the reissue is in the history");
    assert_eq!(worker.as_deref(), Some("worker-2"));

    // The person forms a static password: a resend is refused with "use recovery", and the
    // static password still works.
    let change = ChangePassword {
        identifier: id.clone(),
        current_password: second.clone(),
        new_password: STATIC_PASSWORD.into(),
    };
    assert!(matches!(
        portal.cabinet(&change).await,
        CabinetOutcome::Ok { .. }
    ));
    portal.env.send(&resend("I-1", &alice)).await;
    let r: ResendRefused = portal.nth_event("I-1", 4).await;
    assert_eq!(r.reason, ResendRefusal::UseRecovery);
    assert_eq!(portal.phone_texts(&second_phone).await.len(), 2, "no SMS");
    assert!(matches!(
        plain(portal.cabinet(&login(&id, STATIC_PASSWORD)).await),
        CabinetOutcome::Ok { .. }
    ));
    assert_eq!(
        portal.events_so_far::<PasswordResent>("I-1").await,
        1,
        "one resend only"
    );

    // The portal may not ask for it: dead-lettered naming the user, never handled.
    let body = encode(&resend("I-1", &alice)).expect("encodes");
    portal
        .env
        .send_raw_as(
            Some(hub_portal::parties::DEFAULT_PORTAL_USER),
            &ResendTemporaryPasswordV2::TYPE.to_string(),
            body,
            Metadata::new(ResendTemporaryPasswordV2::TYPE.to_string(), "intruder"),
        )
        .await;
    let letters = portal
        .env
        .dead_letters(hub_portal::sagas::issuance::QUEUE, 1, WAIT)
        .await;
    assert!(
        letters[0]
            .error
            .contains("may not send issuance.resend_password.v2"),
        "{}",
        letters[0].error
    );

    // No password in the clear anywhere the hub keeps things.
    let dump = kept(&portal).await;
    for secret in [&first, &second] {
        assert!(!dump.contains(secret.as_str()), "a password in the clear");
    }
    portal.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_person_unblocks_in_the_cabinet_by_a_code_to_the_phone_held_now_and_a_new_password() {
    let mut portal = Portal::start().await;
    let alice = portal.good_persons().await.remove(0);
    let id = alice.identification_number.clone();
    let own = phone(21);
    let temporary = issue(&portal, &alice, "I-1", &own).await;
    let change = ChangePassword {
        identifier: id.clone(),
        current_password: temporary,
        new_password: STATIC_PASSWORD.into(),
    };
    assert!(matches!(
        portal.cabinet(&change).await,
        CabinetOutcome::Ok { .. }
    ));

    // Not blocked: asking to unblock sends nothing (and answers as ever).
    let ask = |phone: &str| UnblockSelf {
        identifier: id.clone(),
        phone: phone.into(),
    };
    assert_eq!(
        portal.cabinet(&ask(&own)).await,
        CabinetOutcome::CodeSentIfKnown
    );
    // The person gives the identifier up in the cabinet.
    let block = BlockSelf {
        identifier: id.clone(),
        password: STATIC_PASSWORD.into(),
    };
    assert!(matches!(
        portal.cabinet(&block).await,
        CabinetOutcome::Ok { .. }
    ));
    assert!(blocked(&portal, &id).await);
    let before = events(&portal, &id).await;

    // Another phone than the registry's: the same answer, no code anywhere.
    let stranger = phone(22);
    assert_eq!(
        portal.cabinet(&ask(&stranger)).await,
        CabinetOutcome::CodeSentIfKnown
    );
    assert!(portal.phone_texts(&stranger).await.is_empty());
    assert_eq!(portal.phone_texts(&own).await.len(), 2, "no code sent");

    // The registry's phone: a code goes there.
    assert_eq!(
        portal.cabinet(&ask(&own)).await,
        CabinetOutcome::CodeSentIfKnown
    );
    let text = portal.nth_text(&own, 3).await;
    assert!(text.contains("разблокировки"), "{text}");
    let code = code_in(&text);
    let complete = |code: &str, password: &str| CompleteUnblock {
        identifier: id.clone(),
        code: code.into(),
        new_password: password.into(),
    };
    let new_password = "Unblocked-2026";

    // A wrong code, and a weak password: still blocked.
    let wrong = if code == "000000" { "111111" } else { "000000" };
    assert_eq!(
        portal.cabinet(&complete(wrong, new_password)).await,
        CabinetOutcome::WrongCode
    );
    assert!(matches!(
        portal.cabinet(&complete(&code, "short")).await,
        CabinetOutcome::WeakPassword { .. }
    ));
    assert!(blocked(&portal, &id).await);
    assert_eq!(
        portal.cabinet(&login(&id, STATIC_PASSWORD)).await,
        CabinetOutcome::Blocked
    );

    // The code and a good password: unblocked, every earlier event kept, the new password
    // logs in, the old one does not.
    assert!(matches!(
        portal.cabinet(&complete(&code, new_password)).await,
        CabinetOutcome::Ok { .. }
    ));
    assert!(!blocked(&portal, &id).await);
    let after = events(&portal, &id).await;
    assert_eq!(after[..before.len()], before[..], "no event is lost");
    assert_eq!(
        after[before.len()..],
        [
            "unblock_code_sent".to_string(),
            "unblocked_by_person".to_string()
        ]
    );
    assert!(matches!(
        plain(portal.cabinet(&login(&id, new_password)).await),
        CabinetOutcome::Ok { .. }
    ));
    assert_eq!(
        portal.cabinet(&login(&id, STATIC_PASSWORD)).await,
        CabinetOutcome::WrongCredentials
    );
    // The code is used up.
    assert_eq!(
        portal.cabinet(&complete(&code, "Another-2026")).await,
        CabinetOutcome::CodeExpired
    );

    // The code and the password were never kept in the clear.
    let dump = kept(&portal).await;
    let stored: Vec<String> = sqlx::query_scalar("SELECT code_hash FROM unblock_codes")
        .fetch_all(&portal.env.pool)
        .await
        .expect("unblock codes");
    assert!(stored.is_empty(), "a used code is deleted");
    assert!(!dump.contains(new_password), "the password in the clear");
    assert!(
        !dump.contains(&format!("\"{code}\"")) && !dump.contains(&format!(": {code}")),
        "the code in the clear"
    );
    portal.stop().await;
}
