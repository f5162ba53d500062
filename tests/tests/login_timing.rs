//! A login's time does not tell who is registered: an unknown identifier (cabinet) or e-mail
//! (registration) is checked against a decoy hash, one argon2 verification like a known one's,
//! and refused with the same answer.
//!
//! The verifications are counted on `hub_argon2_seconds_count{op="verify"}`, which is
//! per process: this binary holds this one test, so that no other test's argon2 work runs in
//! the process while it counts.

use contracts::cabinet::{CabinetOutcome, LogIn};
use contracts::registration::{LogInByEmail, RegisterByEmail};
use e2e::portal::Portal;
use hub_runtime::metrics::{Snapshot, metrics};

/// Argon2 verifications this process has run so far.
fn verifications() -> f64 {
    let text = metrics().encode(&Snapshot::default().registry());
    text.lines()
        .find_map(|l| l.strip_prefix(r#"hub_argon2_seconds_count{op="verify"} "#))
        .map_or(0.0, |v| v.trim().parse().expect("a number"))
}

/// The answer to `request` and the argon2 verifications the hub ran to give it.
async fn answer_and_verifications<M: contracts::Message>(
    portal: &Portal,
    request: &M,
) -> (CabinetOutcome, f64) {
    let before = verifications();
    let outcome = portal.cabinet(request).await;
    (outcome, verifications() - before)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_login_costs_one_argon2_verification_like_a_known_one() {
    let mut portal = Portal::start().await;

    // The cabinet: an identifier nobody holds.
    let unknown = LogIn {
        identifier: "7999999A999PB9".into(),
        password: "not-the-password1".into(),
    };
    assert_eq!(
        answer_and_verifications(&portal, &unknown).await,
        (CabinetOutcome::WrongCredentials, 1.0),
        "an unknown identifier is checked against the decoy and refused as a wrong password"
    );

    // Registration: an address with an account (its password hashed before the reply) and one
    // without, each with a wrong password.
    let known = format!(
        "known.{}@mail.example.by",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let form = RegisterByEmail {
        email: known.clone(),
        password: "Portal2026pass".into(),
        surname: "Иванова".into(),
        given_name: "Мария".into(),
    };
    assert_eq!(portal.cabinet(&form).await, CabinetOutcome::ActivationSent);
    let wrong = |email: &str| LogInByEmail {
        email: email.into(),
        password: "not-the-password1".into(),
    };
    let known_answer = answer_and_verifications(&portal, &wrong(&known)).await;
    assert_eq!(known_answer, (CabinetOutcome::WrongCredentials, 1.0));
    let unknown_answer =
        answer_and_verifications(&portal, &wrong("nobody.here@mail.example.by")).await;
    assert_eq!(
        unknown_answer, known_answer,
        "an unknown address is answered like a known one, after the same argon2 work"
    );
    portal.stop().await;
}
