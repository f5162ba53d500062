//! Registration and login on the portal, end to end: by e-mail with an activation link read from
//! the e-mail simulator's inbox, and by EDS with real bign signatures made by the GosSUOK
//! simulator's keys and checked by the hub against the simulator's CA, through the real RabbitMQ
//! and PostgreSQL. The test is the portal.

use std::time::Duration;

use contracts::cabinet::CabinetOutcome;
use contracts::procedure::{ApplicationAccepted, SubmitApplication};
use contracts::registration::{
    ActivateEmail, LogInByEds, LogInByEmail, RegisterByEds, RegisterByEmail,
};
use e2e::eds::{holder, proof};
use e2e::portal::{Portal, WAIT, plain, session_in};
use e2e::wait_until;
use serde_json::{Value, json};
use simulators::SimKind;
use uuid::Uuid;

fn ok(level: &str) -> CabinetOutcome {
    CabinetOutcome::Ok {
        assurance_level: level.into(),
        session_token: None,
    }
}

fn form(email: &str) -> RegisterByEmail {
    RegisterByEmail {
        email: email.into(),
        password: "Portal2026pass".into(),
        surname: "Иванова".into(),
        given_name: "Мария".into(),
    }
}

/// A fresh address for this test run.
fn address(tag: &str) -> String {
    format!(
        "{tag}.{}@mail.example.by",
        &Uuid::new_v4().simple().to_string()[..8]
    )
}

/// The e-mails the simulator received for `to`: (subject, text).
async fn inbox(portal: &Portal, to: &str) -> Vec<(String, String)> {
    let url = portal
        .sims
        .operator_url(SimKind::Email)
        .expect("the e-mail simulator")
        .join(&format!("sim/inbox/{to}"))
        .expect("URL");
    let body: Value = reqwest::get(url)
        .await
        .expect("the simulator answers")
        .json()
        .await
        .expect("JSON");
    body["messages"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .map(|m| {
                    (
                        m["subject"].as_str().unwrap_or_default().to_owned(),
                        m["text"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The activation token in the n-th (1-based) e-mail to `to`.
async fn activation_token(portal: &Portal, to: &str, n: usize) -> String {
    let text = wait_until(WAIT, "the activation e-mail", || async {
        inbox(portal, to)
            .await
            .into_iter()
            .nth(n - 1)
            .map(|(_, t)| t)
    })
    .await;
    let link = text
        .split_whitespace()
        .find(|w| w.contains("activate?token="))
        .unwrap_or_else(|| panic!("an activation link in the e-mail: {text}"));
    url::Url::parse(link)
        .expect("the link is a URL")
        .query_pairs()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .expect("a token in the link")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_by_email_activates_once_and_logs_in_at_basic() {
    let mut portal = Portal::start().await;
    let email = address("maria");
    assert_eq!(
        plain(portal.cabinet(&form(&email)).await),
        CabinetOutcome::ActivationSent
    );
    // Not activated yet: the right password says so, a wrong one says nothing.
    let login = |password: &str| LogInByEmail {
        email: email.to_uppercase(),
        password: password.into(),
    };
    assert_eq!(
        plain(portal.cabinet(&login("Portal2026pass")).await),
        CabinetOutcome::NotActivated
    );
    assert_eq!(
        plain(portal.cabinet(&login("Wrong2026pass")).await),
        CabinetOutcome::WrongCredentials
    );
    let token = activation_token(&portal, &email, 1).await;
    let activate = ActivateEmail { token };
    assert_eq!(plain(portal.cabinet(&activate).await), ok("basic"));
    assert_eq!(
        plain(portal.cabinet(&activate).await),
        CabinetOutcome::ActivationInvalid,
        "the link works once"
    );
    assert_eq!(
        plain(portal.cabinet(&login("Portal2026pass")).await),
        ok("basic")
    );
    // Registering the address again tells the portal nothing new, and the owner gets a note.
    assert_eq!(
        plain(portal.cabinet(&form(&email)).await),
        CabinetOutcome::ActivationSent
    );
    let note = wait_until(WAIT, "the note to the owner", || async {
        inbox(&portal, &email).await.into_iter().nth(1)
    })
    .await;
    assert!(
        !note.1.contains("activate?token="),
        "no second link: {}",
        note.1
    );
    // The password is nowhere in the database in the clear.
    let leaked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM portal_users WHERE password_hash LIKE '%Portal2026pass%'",
    )
    .fetch_one(&portal.env.pool)
    .await
    .expect("count");
    assert_eq!(leaked, 0);
    portal.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_form_that_breaks_the_rules_is_answered_field_by_field() {
    let mut portal = Portal::start().await;
    let bad = RegisterByEmail {
        email: "not-an-address".into(),
        password: "short".into(),
        ..form("x@y.by")
    };
    let CabinetOutcome::InvalidForm { problems } = plain(portal.cabinet(&bad).await) else {
        panic!("an invalid form");
    };
    assert!(
        problems.iter().any(|p| p.starts_with("email:")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.starts_with("password:")),
        "{problems:?}"
    );
    assert_eq!(
        portal
            .cabinet(&ActivateEmail {
                token: "made-up".into()
            })
            .await,
        CabinetOutcome::ActivationInvalid
    );
    portal.stop().await;
}

/// The serial of `id`'s certificate at the simulator.
async fn serial(portal: &Portal, id: &str) -> String {
    let url = portal
        .sims
        .operator_url(SimKind::Gossuok)
        .expect("gossuok")
        .join(&format!("sim/persons/{id}/certificate"))
        .expect("URL");
    let cert: Value = reqwest::get(url)
        .await
        .expect("cert")
        .json()
        .await
        .expect("JSON");
    cert["serial"].as_str().expect("serial").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_and_login_by_eds_give_level_high_and_a_procedure_that_needs_it() {
    let mut portal = Portal::start().await;
    let id = holder(&portal, 0).await;
    // Not registered yet: a valid EDS is not an account.
    let p = proof(&portal, &id).await;
    assert_eq!(
        plain(portal.cabinet(&LogInByEds { proof: p }).await),
        CabinetOutcome::NotRegistered
    );
    let p = proof(&portal, &id).await;
    assert_eq!(
        plain(portal.cabinet(&RegisterByEds { proof: p }).await),
        ok("high")
    );
    let p = proof(&portal, &id).await;
    let (level, session) = session_in(portal.cabinet(&LogInByEds { proof: p.clone() }).await);
    assert_eq!(level, "high");
    // The same signed challenge again is a replay.
    assert_eq!(
        plain(portal.cabinet(&LogInByEds { proof: p.clone() }).await),
        CabinetOutcome::EdsRefused {
            reason: "challenge_used".into()
        }
    );
    // A signature over another challenge does not answer this one.
    let mut other = proof(&portal, &id).await;
    other.signature = p.signature.clone();
    assert_eq!(
        plain(portal.cabinet(&LogInByEds { proof: other }).await),
        CabinetOutcome::EdsRefused {
            reason: "bad_signature".into()
        }
    );
    // With the EDS login, a procedure that needs `high` is accepted (a passport, 11.1.2).
    let app = SubmitApplication {
        application_id: Uuid::new_v4(),
        procedure_code: "11.1.2".into(),
        session_token: session.clone(),
        form: json!({"passport_number": "MP1234567", "passport_expires": "2026-12-31"})
            .as_object()
            .cloned()
            .expect("object"),
        attachments: vec![],
        delivery: Default::default(),
    };
    portal.env.send(&app).await;
    let accepted: ApplicationAccepted = portal.event(&app.application_id.to_string()).await;
    assert_eq!(
        accepted.amount_kopecks, 4200,
        "accepted, with the passport's fee to pay"
    );
    let applicant: String =
        sqlx::query_scalar("SELECT state->>'applicant' FROM sagas WHERE id = $1")
            .bind(hub_portal::procedures::saga::ProcedureSaga::key(app.application_id).id)
            .fetch_one(&portal.env.pool)
            .await
            .expect("the application");
    assert_eq!(applicant, id, "the applicant is the EDS session's holder");
    let level: String = sqlx::query_scalar(
        "SELECT assurance_level FROM portal_users WHERE identification_number = $1",
    )
    .bind(&id)
    .fetch_one(&portal.env.pool)
    .await
    .expect("the account");
    assert_eq!(level, "high");
    portal.stop().await;
}

/// Revokes the certificate `serial` at the GosSUOK simulator (key compromise).
/// Logs `id` in by EDS until the hub refuses it (failing the test after `WAIT`); the reason.
async fn refused_login(portal: &Portal, id: &str, what: &str) -> String {
    wait_until(WAIT, what, || async {
        let p = proof(portal, id).await;
        match plain(portal.cabinet(&LogInByEds { proof: p }).await) {
            CabinetOutcome::EdsRefused { reason } => Some(reason),
            _ => None,
        }
    })
    .await
}

async fn revoke(portal: &Portal, serial: &str) {
    let url = portal
        .sims
        .operator_url(SimKind::Gossuok)
        .expect("gossuok")
        .join(&format!("sim/revoke/{serial}"))
        .expect("URL");
    let r = reqwest::Client::new()
        .post(url)
        .json(&json!({"reason": "key_compromise"}))
        .send()
        .await
        .expect("revoke");
    assert!(r.status().is_success(), "revoked: {}", r.status());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_certificate_is_refused_at_the_next_login() {
    // The hub asks the certificate's OCSP responder at each login (it caches no CRL while OCSP
    // answers, and keeps no OCSP answer here); CRLs live one second in case it falls back to
    // them.
    let mut portal = Portal::start_custom(
        |s| s.gossuok.crl_validity = Duration::from_secs(1),
        |c| c.ocsp_cache = Duration::ZERO,
    )
    .await;
    let id = holder(&portal, 1).await;
    let p = proof(&portal, &id).await;
    assert_eq!(
        plain(portal.cabinet(&RegisterByEds { proof: p }).await),
        ok("high")
    );
    let serial = serial(&portal, &id).await;
    revoke(&portal, &serial).await;
    let outcome = refused_login(&portal, &id, "the revocation seen by the hub").await;
    assert_eq!(outcome, "revoked");
    portal.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_ocsp_answer_is_reused_within_its_window_and_not_after() {
    // The trade-off of `HUB_OCSP_CACHE`, seen from outside: after a revocation, the hub's kept
    // `good` answer still lets the holder in until it ages out, and not a moment longer.
    // The simulator's answers hold 10 minutes (its CRL validity): the window ends first.
    const WINDOW: Duration = Duration::from_secs(30);
    let mut portal = Portal::start_with(|c| c.ocsp_cache = WINDOW).await;
    let id = holder(&portal, 3).await;
    // The hub fetches the answer after this instant, so it ages out after `fetched_by + WINDOW`.
    let fetched_by = std::time::Instant::now();
    let p = proof(&portal, &id).await;
    assert_eq!(
        plain(portal.cabinet(&RegisterByEds { proof: p }).await),
        ok("high")
    );
    let serial = serial(&portal, &id).await;
    revoke(&portal, &serial).await;
    let p = proof(&portal, &id).await;
    let within = plain(portal.cabinet(&LogInByEds { proof: p }).await);
    assert!(
        fetched_by.elapsed() < WINDOW,
        "the login must come within the window for this test to say anything"
    );
    assert_eq!(within, ok("high"), "the kept answer, not the responder's");
    let outcome = refused_login(&portal, &id, "the kept answer aged out").await;
    assert_eq!(outcome, "revoked");
    assert!(
        fetched_by.elapsed() >= WINDOW,
        "refused only once the kept answer aged out"
    );
    portal.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_ca_is_a_transient_failure_never_a_success() {
    let mut portal = Portal::start().await;
    let id = holder(&portal, 2).await;
    let p = proof(&portal, &id).await;
    portal
        .faults(SimKind::Gossuok, json!({"error_rate": 1.0}))
        .await;
    let outcome = plain(portal.cabinet(&RegisterByEds { proof: p }).await);
    assert!(
        matches!(outcome, CabinetOutcome::TryLater { .. }),
        "{outcome:?}"
    );
    let registered: i64 =
        sqlx::query_scalar("SELECT count(*) FROM portal_users WHERE identification_number = $1")
            .bind(&id)
            .fetch_one(&portal.env.pool)
            .await
            .expect("count");
    assert_eq!(registered, 0, "nothing registered on an unknown status");
    portal.stop().await;
}
