//! The personal cabinet against the hub, request/reply over the broker: first login with the
//! temporary password, its replacement, lock-out that does not reveal who exists, recovery by an
//! SMS code, and blocking oneself.

use contracts::cabinet::{
    BlockSelf, CabinetOutcome, ChangePassword, CompleteRecovery, LogIn, RecoverPassword,
};
use contracts::issuance::{IdentifierIssued, PhoneCodeSent};
use e2e::portal::{Portal, code_in, password_in, phone, plain};

/// Issues an identifier; returns (identifier, temporary password, phone).
async fn issued(portal: &Portal, n: u32) -> (String, String, String) {
    let person = portal.good_persons().await.remove(n as usize);
    let number = format!("K-{n}");
    let phone = phone(100 + n);
    portal.apply(&person.application(&number, &phone)).await;
    let _: PhoneCodeSent = portal.event(&number).await;
    let code = code_in(&portal.nth_text(&phone, 1).await);
    portal.confirm(&number, &code).await;
    let _: IdentifierIssued = portal.event(&number).await;
    let password = password_in(&portal.nth_text(&phone, 2).await);
    (person.identification_number, password, phone)
}

fn login(identifier: &str, password: &str) -> LogIn {
    LogIn {
        identifier: identifier.into(),
        password: password.into(),
    }
}

fn ok() -> CabinetOutcome {
    CabinetOutcome::Ok {
        assurance_level: "substantial".into(),
        session_token: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_login_forces_a_new_password_which_then_works() {
    let mut portal = Portal::start().await;
    let (id, temporary, _) = issued(&portal, 0).await;
    assert_eq!(
        plain(portal.cabinet(&login(&id, &temporary)).await),
        CabinetOutcome::MustChangePassword
    );
    let weak = ChangePassword {
        identifier: id.clone(),
        current_password: temporary.clone(),
        new_password: "short".into(),
    };
    assert!(matches!(
        plain(portal.cabinet(&weak).await),
        CabinetOutcome::WeakPassword { .. }
    ));
    let change = ChangePassword {
        identifier: id.clone(),
        current_password: temporary.clone(),
        new_password: "Static2026pass".into(),
    };
    assert_eq!(plain(portal.cabinet(&change).await), ok());
    assert_eq!(
        plain(portal.cabinet(&login(&id, "Static2026pass")).await),
        ok()
    );
    assert_eq!(
        plain(portal.cabinet(&login(&id, &temporary)).await),
        CabinetOutcome::WrongCredentials,
        "the temporary password is single use"
    );
    portal.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failures_lock_out_known_and_unknown_identifiers_alike() {
    let mut portal = Portal::start().await;
    let (id, temporary, _) = issued(&portal, 0).await;
    let unknown = "7999999A999PB9";
    for who in [id.as_str(), unknown] {
        for i in 1..=5 {
            assert_eq!(
                plain(portal.cabinet(&login(who, "not-the-password1")).await),
                CabinetOutcome::WrongCredentials,
                "failure {i} of {who:?} looks the same for everyone"
            );
        }
        let sixth = plain(portal.cabinet(&login(who, "not-the-password1")).await);
        assert!(
            matches!(sixth, CabinetOutcome::LockedOut { .. }),
            "{sixth:?}"
        );
    }
    // Locked out: even the right password is not checked now.
    assert!(matches!(
        plain(portal.cabinet(&login(&id, &temporary)).await),
        CabinetOutcome::LockedOut { .. }
    ));
    portal.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_password_is_recovered_by_an_sms_code() {
    let mut portal = Portal::start().await;
    let (id, _, phone) = issued(&portal, 0).await;
    // The wrong phone: the same answer, and no SMS.
    let wrong_phone = RecoverPassword {
        identifier: id.clone(),
        phone: e2e::portal::phone(999),
    };
    assert_eq!(
        plain(portal.cabinet(&wrong_phone).await),
        CabinetOutcome::CodeSentIfKnown
    );
    let right = RecoverPassword {
        identifier: id.clone(),
        phone: phone.clone(),
    };
    assert_eq!(
        plain(portal.cabinet(&right).await),
        CabinetOutcome::CodeSentIfKnown
    );
    let code = code_in(&portal.nth_text(&phone, 3).await);
    assert!(
        portal
            .phone_texts(&e2e::portal::phone(999))
            .await
            .is_empty()
    );
    let wrong = CompleteRecovery {
        identifier: id.clone(),
        code: "000000".into(),
        new_password: "Recovered2026".into(),
    };
    let wrong_answer = plain(portal.cabinet(&wrong).await);
    if code != "000000" {
        assert_eq!(wrong_answer, CabinetOutcome::WrongCode);
    }
    let complete = CompleteRecovery {
        identifier: id.clone(),
        code,
        new_password: "Recovered2026".into(),
    };
    assert_eq!(plain(portal.cabinet(&complete).await), ok());
    assert_eq!(
        plain(portal.cabinet(&login(&id, "Recovered2026")).await),
        ok()
    );
    assert_eq!(
        plain(portal.cabinet(&complete).await),
        CabinetOutcome::CodeExpired,
        "a code works once"
    );
    let codes: i64 = sqlx::query_scalar("SELECT count(*) FROM recoveries")
        .fetch_one(&portal.env.pool)
        .await
        .expect("recoveries");
    assert_eq!(codes, 0);
    portal.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_blocks_the_identifier_and_can_no_longer_log_in() {
    let mut portal = Portal::start().await;
    let (id, temporary, _) = issued(&portal, 0).await;
    let change = ChangePassword {
        identifier: id.clone(),
        current_password: temporary,
        new_password: "Static2026pass".into(),
    };
    assert_eq!(plain(portal.cabinet(&change).await), ok());
    let block = BlockSelf {
        identifier: id.clone(),
        password: "Static2026pass".into(),
    };
    assert_eq!(plain(portal.cabinet(&block).await), ok());
    assert_eq!(
        plain(portal.cabinet(&login(&id, "Static2026pass")).await),
        CabinetOutcome::Blocked
    );
    assert_eq!(
        plain(portal.cabinet(&login(&id, "wrong-password1")).await),
        CabinetOutcome::WrongCredentials,
        "a blocked account tells nothing to someone without the password"
    );
    let events: Vec<String> =
        sqlx::query_scalar("SELECT event FROM account_events WHERE identifier = $1 ORDER BY id")
            .bind(&id)
            .fetch_all(&portal.env.pool)
            .await
            .expect("events");
    assert_eq!(
        events,
        ["account_created", "password_changed", "blocked_by_person"]
    );
    portal.stop().await;
}
