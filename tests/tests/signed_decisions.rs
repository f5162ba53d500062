//! Signed decisions end to end: the queue authority simulator signs its decisions
//! (`authority.decided.v2`) with an official's certificate the GosSUOK simulator issued; the hub
//! checks the chain, the revocation (OCSP at the certificate's own address), that the
//! certificate is the authority's and the signature, on the real RabbitMQ and PostgreSQL. Only
//! a verified decision reaches the portal, with its signer; any other is refused back to the
//! authority (`authority.decision_refused.v1`) and the application keeps waiting. The HTTP
//! back-office simulator signs its own decisions in-process (its officials' certificates from
//! the GosSUOK simulator of the same process); decisions on complaints are signed and verified
//! the same way (`authority.complaint_decided.v2`, refused with
//! `authority.complaint_decision_refused.v1`).

use std::sync::Arc;
use std::time::Duration;

use contracts::cabinet::SessionToken;
use contracts::procedure::{
    ApplicationDecided, ApplicationRegistered, ComplaintAccepted, ComplaintDecided,
    SubmitApplication, SubmitComplaint, Verdict,
};
use e2e::portal::{Portal, WAIT};
use e2e::wait_until;
use hub_portal::procedures::saga::UnsignedDecisions;
use serde_json::json;
use simulators::SimKind;
use simulators::decision_signing::{ComplaintRefusal, DecisionSigning, Refusal, SigningFault};
use uuid::Uuid;

/// A free procedure of a queue authority (pension certificate, FSZN).
const FREE: &str = "2.19";
const FREE_AUTHORITY: &str = "fszn";

fn submit(session: &SessionToken) -> SubmitApplication {
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

async fn state_name(portal: &Portal, id: Uuid) -> Option<String> {
    sqlx::query_scalar("SELECT state_name FROM sagas WHERE id = $1")
        .bind(hub_portal::procedures::saga::ProcedureSaga::key(id).id)
        .fetch_optional(&portal.env.pool)
        .await
        .expect("saga")
}

/// Submits an application and waits for the authority to hear the hub refuse its decision;
/// checks the application did not move to `decided`.
async fn refused(
    portal: &mut Portal,
    session: &SessionToken,
    signing: &Arc<DecisionSigning>,
) -> Refusal {
    let app = submit(session);
    let id = app.application_id;
    portal.env.send(&app).await;
    let _: ApplicationRegistered = portal.event(&id.to_string()).await;
    let refusal = wait_until(WAIT, "the hub's refusal of the decision", || async {
        signing
            .refusals()
            .into_iter()
            .find(|r| r.application_id == id)
    })
    .await;
    let state = state_name(portal, id).await;
    assert_ne!(
        state.as_deref(),
        Some("decided"),
        "a refused decision never reaches the person"
    );
    refusal
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_properly_signed_decision_reaches_the_portal_with_its_signer() {
    // The revocation at the end must be seen by the next decision: no OCSP answer kept.
    let mut portal = Portal::start_with(|c| c.ocsp_cache = Duration::ZERO).await;
    let (_, session) = portal.eds_session(0).await;
    let official = e2e::eds::holder(&portal, 3).await;
    let signing = portal
        .start_signing_authority(
            FREE_AUTHORITY,
            FREE_AUTHORITY,
            &official,
            Duration::from_millis(200),
        )
        .await;

    // Signed by the authority's official: shown with the document and the signer.
    let app = submit(&session);
    let id = app.application_id.to_string();
    portal.env.send(&app).await;
    let decided: ApplicationDecided = portal.event(&id).await;
    assert_eq!(decided.verdict, Verdict::Granted);
    let signed = decided.signed.expect("the signed decision");
    assert_eq!(signed.signer.certificate_serial, signing.serial);
    assert_eq!(signed.signer.organization, FREE_AUTHORITY);
    assert!(!signed.signer.name.is_empty());
    assert_eq!(signed.document.application_id, app.application_id);
    assert_eq!(signed.document.text, decided.document);
    assert_eq!(
        state_name(&portal, app.application_id).await.as_deref(),
        Some("decided")
    );

    // Unsigned.
    signing.set_fault(SigningFault::Unsigned);
    let r = refused(&mut portal, &session, &signing).await;
    assert_eq!(r.reason, "unsigned", "{r:?}");

    // A signature that does not verify.
    signing.set_fault(SigningFault::BadSignature);
    let r = refused(&mut portal, &session, &signing).await;
    assert_eq!(r.reason, "bad_signature", "{r:?}");

    // The official's certificate revoked: its CA's OCSP responder says so.
    signing.set_fault(SigningFault::None);
    let gossuok = portal
        .sims
        .operator_url(SimKind::Gossuok)
        .expect("gossuok")
        .clone();
    let revoked = reqwest::Client::new()
        .post(
            gossuok
                .join(&format!("sim/revoke/{}", signing.serial))
                .expect("url"),
        )
        .json(&json!({"reason": "key_compromise"}))
        .send()
        .await
        .expect("revoke");
    assert!(revoked.status().is_success(), "{}", revoked.status());
    let r = refused(&mut portal, &session, &signing).await;
    assert_eq!(r.reason, "revoked", "{r:?}");
    portal.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_signed_with_another_authoritys_certificate_is_refused() {
    let mut portal = Portal::start().await;
    let (_, session) = portal.eds_session(0).await;
    let official = e2e::eds::holder(&portal, 3).await;
    // The official's certificate names the civil registry, not FSZN.
    let signing = portal
        .start_signing_authority(
            FREE_AUTHORITY,
            "minsk-civil-registry",
            &official,
            Duration::from_millis(200),
        )
        .await;
    let r = refused(&mut portal, &session, &signing).await;
    assert_eq!(r.reason, "wrong_authority", "{r:?}");
    portal.stop().await;
}

/// A tax certificate from the Ministry of Taxes and Duties, an HTTP back-office.
const TAX: &str = "tax-ministry";
const TAX_PROCEDURE: &str = "18.13";

/// Posts a back-office answer to the hub's callback as `authority`, signed with the
/// back-office's shared secret as the contract says: the hub's status.
async fn call_back(
    portal: &Portal,
    authority: &str,
    message_type: &str,
    body: &serde_json::Value,
) -> reqwest::StatusCode {
    use adapters::backoffice::{
        AUTHORITY_SIGNATURE_HEADER, AUTHORITY_TIMESTAMP_HEADER, sign_callback,
    };
    let secret = simulators::SimConfig::default().backoffice.secret;
    let body = serde_json::to_vec(body).expect("JSON");
    let url = portal
        .integrations
        .callback_url
        .join(&format!("callbacks/authority/{authority}/{message_type}"))
        .expect("URL");
    let sent = chrono::Utc::now().timestamp();
    let signature = sign_callback(secret.as_bytes(), "POST", url.path(), sent, &body);
    reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header(AUTHORITY_TIMESTAMP_HEADER, sent.to_string())
        .header(AUTHORITY_SIGNATURE_HEADER, signature)
        .body(body)
        .send()
        .await
        .expect("the hub answers")
        .status()
}

/// The refusals the back-office simulator received for `authority`.
async fn backoffice_refusals(portal: &Portal, authority: &str) -> Vec<serde_json::Value> {
    let url = portal
        .sims
        .operator_url(SimKind::BackOffice)
        .expect("the back-office simulator")
        .join(&format!("sim/backoffice/{authority}/decision-refusals"))
        .expect("URL");
    let answer: serde_json::Value = reqwest::get(url)
        .await
        .expect("the simulator answers")
        .json()
        .await
        .expect("JSON");
    answer["refusals"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_back_office_decision_is_verified_and_a_bad_one_refused_back_to_it() {
    // The back-office simulator would decide unsigned after 10 minutes: the test decides first,
    // as the back-office, with its official's certificate.
    let mut portal = Portal::start_custom(
        |s| s.backoffice.decide_after = Duration::from_secs(600),
        |_| {},
    )
    .await;
    let (_, session) = portal.eds_session(0).await;
    let official = e2e::eds::holder(&portal, 4).await;
    let gossuok = portal
        .sims
        .operator_url(SimKind::Gossuok)
        .expect("gossuok")
        .clone();
    let signing = DecisionSigning::issue(&reqwest::Client::new(), &gossuok, &official, TAX)
        .await
        .expect("the official's certificate");
    let form = json!({"tax_year": 2025, "purpose": "embassy"});
    let app = SubmitApplication {
        application_id: Uuid::new_v4(),
        procedure_code: TAX_PROCEDURE.into(),
        session_token: session.clone(),
        form: form.as_object().cloned().expect("object"),
        attachments: vec![],
        delivery: Default::default(),
    };
    let id = app.application_id;
    portal.env.send(&app).await;
    let _: ApplicationRegistered = portal.event(&id.to_string()).await;

    // Badly signed: the callback is taken (the bridge does not check signatures of
    // documents), the gate refuses it, the bridge hands the refusal to the back-office.
    signing.set_fault(SigningFault::BadSignature);
    let bad = signing
        .decided(TAX, id, "granted", "Справка выдана.", chrono::Utc::now())
        .await
        .expect("signed");
    assert!(
        call_back(&portal, TAX, "authority.decided.v2", &bad)
            .await
            .is_success()
    );
    let refusal = wait_until(WAIT, "the back-office hears the refusal", || async {
        backoffice_refusals(&portal, TAX)
            .await
            .into_iter()
            .find(|r| r["application_id"] == json!(id))
    })
    .await;
    assert_eq!(refusal["reason"], "bad_signature", "{refusal}");
    assert_ne!(state_name(&portal, id).await.as_deref(), Some("decided"));

    // Properly signed: the person gets it with the signer.
    signing.set_fault(SigningFault::None);
    let good = signing
        .decided(TAX, id, "granted", "Справка выдана.", chrono::Utc::now())
        .await
        .expect("signed");
    assert!(
        call_back(&portal, TAX, "authority.decided.v2", &good)
            .await
            .is_success()
    );
    let decided: ApplicationDecided = portal.event(&id.to_string()).await;
    let signed = decided.signed.expect("the signed decision");
    assert_eq!(signed.signer.certificate_serial, signing.serial);
    assert_eq!(signed.signer.organization, TAX);
    assert_eq!(decided.document, "Справка выдана.");
    portal.stop().await;
}

/// The complaint saga's state of complaint `id`.
async fn complaint_state(portal: &Portal, id: Uuid) -> Option<String> {
    sqlx::query_scalar("SELECT state_name FROM sagas WHERE id = $1")
        .bind(hub_portal::procedures::complaint::ComplaintSaga::key(id).id)
        .fetch_optional(&portal.env.pool)
        .await
        .expect("saga")
}

fn complaint(application_id: Uuid, session: &SessionToken) -> SubmitComplaint {
    SubmitComplaint {
        complaint_id: Uuid::new_v4(),
        application_id,
        session_token: session.clone(),
        text: "The decision leaves out March.".into(),
        kind: Default::default(),
    }
}

/// The hub as in production: an unsigned decision (v1) is refused.
fn refusing(i: &mut hub_portal::config::IntegrationConfig) {
    i.unsigned_decisions = UnsignedDecisions::Refuse;
}

/// `GET` or `PUT` the back-office simulator's signing of `authority`: its official's
/// certificate serial and the fault in force.
async fn backoffice_signing(
    portal: &Portal,
    authority: &str,
    fault: Option<&str>,
) -> serde_json::Value {
    let url = portal
        .sims
        .operator_url(SimKind::BackOffice)
        .expect("the back-office simulator")
        .join(&format!("sim/backoffice/{authority}/signing"))
        .expect("URL");
    let client = reqwest::Client::new();
    let request = match fault {
        Some(fault) => client.put(url).json(&json!({ "fault": fault })),
        None => client.get(url),
    };
    let answer = request.send().await.expect("the simulator answers");
    assert!(answer.status().is_success(), "{}", answer.status());
    answer.json().await.expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_back_offices_own_decisions_arrive_signed_while_the_hub_refuses_unsigned_ones() {
    let mut portal = Portal::start_custom(
        |s| {
            s.backoffice.decide_after = Duration::from_millis(200);
            s.backoffice.complaint_decide_after = Duration::from_millis(200);
        },
        refusing,
    )
    .await;
    let (_, session) = portal.eds_session(0).await;
    let form = json!({"tax_year": 2025, "purpose": "embassy"});
    let tax_application = || SubmitApplication {
        application_id: Uuid::new_v4(),
        procedure_code: TAX_PROCEDURE.into(),
        session_token: session.clone(),
        form: form.as_object().cloned().expect("object"),
        attachments: vec![],
        delivery: Default::default(),
    };

    // The back-office's clerk decides on its own, signed by the Ministry's official.
    let app = tax_application();
    let id = app.application_id;
    portal.env.send(&app).await;
    let decided: ApplicationDecided = portal.event(&id.to_string()).await;
    let signing = backoffice_signing(&portal, TAX, None).await;
    let signed = decided.signed.expect("the signed decision");
    assert_eq!(signed.signer.organization, TAX);
    assert_eq!(
        json!(signed.signer.certificate_serial),
        signing["serial"],
        "{signing}"
    );
    assert_eq!(signed.document.authority_id, TAX);
    assert_eq!(state_name(&portal, id).await.as_deref(), Some("decided"));

    // Its decision on a complaint is signed too, and reaches the portal with the signer.
    let c = complaint(id, &session);
    portal.env.send(&c).await;
    let decided: ComplaintDecided = portal.event(&c.complaint_id.to_string()).await;
    let signed = decided
        .signed
        .expect("the signed decision on the complaint");
    assert_eq!(signed.signer.organization, TAX);
    assert_eq!(signed.document.complaint_id, c.complaint_id);
    assert_eq!(signed.document.text, decided.document);

    // On demand it signs badly: refused back to it, never reaching the person.
    backoffice_signing(&portal, TAX, Some("bad_signature")).await;
    let bad = tax_application();
    portal.env.send(&bad).await;
    let refusal = wait_until(WAIT, "the back-office hears the refusal", || async {
        backoffice_refusals(&portal, TAX)
            .await
            .into_iter()
            .find(|r| r["application_id"] == json!(bad.application_id))
    })
    .await;
    assert_eq!(refusal["reason"], "bad_signature", "{refusal}");
    assert_ne!(
        state_name(&portal, bad.application_id).await.as_deref(),
        Some("decided")
    );
    portal.stop().await;
}

/// Files a complaint against application `application_id` and waits for the authority to hear
/// the hub refuse its decision on it; checks the complaint stays with the authority.
async fn complaint_refused(
    portal: &Portal,
    session: &SessionToken,
    signing: &Arc<DecisionSigning>,
    application_id: Uuid,
) -> ComplaintRefusal {
    let c = complaint(application_id, session);
    let id = c.complaint_id;
    portal.env.send(&c).await;
    let _: ComplaintAccepted = portal.event(&id.to_string()).await;
    let refusal = wait_until(
        WAIT,
        "the hub's refusal of the complaint decision",
        || async {
            signing
                .complaint_refusals()
                .into_iter()
                .find(|r| r.complaint_id == id)
        },
    )
    .await;
    // The refusal is the transition that would have decided it: the complaint did not move.
    assert_eq!(
        complaint_state(portal, id).await.as_deref(),
        Some("at_authority"),
        "a refused decision never reaches the person"
    );
    refusal
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_properly_signed_complaint_decision_reaches_the_portal_with_its_signer() {
    let mut portal = Portal::start_with(refusing).await;
    let (_, session) = portal.eds_session(0).await;
    let official = e2e::eds::holder(&portal, 3).await;
    let signing = portal
        .start_signing_authority(
            FREE_AUTHORITY,
            FREE_AUTHORITY,
            &official,
            Duration::from_millis(200),
        )
        .await;
    let app = submit(&session);
    portal.env.send(&app).await;
    let _: ApplicationDecided = portal.event(&app.application_id.to_string()).await;

    // Signed by the authority's official: shown with the document and the signer.
    let c = complaint(app.application_id, &session);
    portal.env.send(&c).await;
    let decided: ComplaintDecided = portal.event(&c.complaint_id.to_string()).await;
    let signed = decided
        .signed
        .expect("the signed decision on the complaint");
    assert_eq!(signed.signer.certificate_serial, signing.serial);
    assert_eq!(signed.signer.organization, FREE_AUTHORITY);
    assert_eq!(signed.document.complaint_id, c.complaint_id);
    assert_eq!(signed.document.verdict, decided.verdict);
    assert_eq!(
        complaint_state(&portal, c.complaint_id).await.as_deref(),
        Some("decided")
    );

    // Unsigned.
    signing.set_fault(SigningFault::Unsigned);
    let r = complaint_refused(&portal, &session, &signing, app.application_id).await;
    assert_eq!(r.reason, "unsigned", "{r:?}");

    // A signature that does not verify.
    signing.set_fault(SigningFault::BadSignature);
    let r = complaint_refused(&portal, &session, &signing, app.application_id).await;
    assert_eq!(r.reason, "bad_signature", "{r:?}");
    portal.stop().await;
}
