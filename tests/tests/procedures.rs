//! Administrative procedures end to end: the hub's plan, the ERIP simulator, an authority's
//! back-office speaking the queue contracts as its own broker user, the real RabbitMQ and
//! PostgreSQL. The test is the portal.

use std::time::Duration;

use contracts::cabinet::SessionToken;
use contracts::procedure::{
    ApplicationAccepted, ApplicationDecided, ApplicationRegistered, ApplicationRejected,
    ApplicationWithdrawn, PaymentReceived, ProcedureRejectReason, SubmitApplication, Verdict,
    WithdrawApplication, is_order_number,
};
use contracts::{Message, Metadata, headers};
use e2e::portal::{Portal, WAIT};
use e2e::wait_until;
use serde_json::json;
use simulators::SimKind;
use uuid::Uuid;

/// A free procedure of a queue authority (pension certificate, FSZN).
const FREE: &str = "2.19";
const FREE_AUTHORITY: &str = "fszn";
/// A paid one (duplicate civil-status certificate, 21.00 BYN, civil registry).
const PAID: &str = "5.13";
const PAID_AUTHORITY: &str = "minsk-civil-registry";
/// One that needs an EDS login (passport).
const HIGH: &str = "11.1.2";

/// An application of procedure `code` by the holder of `session`.
fn submit(code: &str, session: &SessionToken) -> SubmitApplication {
    let form = match code {
        FREE => json!({"period_from": "2026-01-01", "period_to": "2026-06-30", "purpose": "bank"}),
        PAID => json!({"record_kind": "birth", "record_year": 1990}),
        _ => json!({"passport_number": "MP1234567", "passport_expires": "2026-12-31"}),
    };
    SubmitApplication {
        application_id: Uuid::new_v4(),
        procedure_code: code.into(),
        session_token: session.clone(),
        form: form.as_object().cloned().expect("object"),
        attachments: vec!["att-1".into()],
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_free_procedure_goes_from_submission_to_decision() {
    let mut portal = Portal::start().await;
    let (_, session) = portal.eds_session(0).await;
    portal.start_authority(FREE_AUTHORITY, Duration::from_millis(200));
    let app = submit(FREE, &session);
    let id = app.application_id.to_string();
    portal.env.send(&app).await;
    let accepted: ApplicationAccepted = portal.event(&id).await;
    assert_eq!((accepted.amount_kopecks, accepted.order_number), (0, None));
    let registered: ApplicationRegistered = portal.event(&id).await;
    assert!(registered.registration_number.starts_with("FSZN-"));
    assert!(registered.decision_due > chrono::Utc::now().date_naive());
    let decided: ApplicationDecided = portal.event(&id).await;
    assert_eq!(decided.verdict, Verdict::Granted);
    assert_eq!(
        state_name(&portal, app.application_id).await.as_deref(),
        Some("decided")
    );
    portal.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_procedure_is_paid_once_although_erip_notifies_twice() {
    let mut portal = Portal::start().await;
    let (_, session) = portal.eds_session(0).await;
    portal.start_authority(PAID_AUTHORITY, Duration::from_millis(200));
    portal
        .faults(SimKind::Erip, json!({"duplicate_callback_rate": 1.0}))
        .await;
    let app = submit(PAID, &session);
    let id = app.application_id.to_string();
    portal.env.send(&app).await;
    let accepted: ApplicationAccepted = portal.event(&id).await;
    assert_eq!(accepted.amount_kopecks, 2100);
    let order = accepted.order_number.expect("an order number");
    assert!(
        is_order_number(&order),
        "30 digits with a check digit: {order}"
    );
    wait_until(WAIT, "the ERIP invoice", || async {
        let invoice = portal.erip_invoice(&order).await;
        (invoice["status"] == "awaiting").then_some(())
    })
    .await;
    portal.pay(&order).await;
    let paid: PaymentReceived = portal.event(&id).await;
    assert_eq!(paid.amount_kopecks, 2100);
    // The person attaches the receipt the bank gave: it matches ERIP's record.
    portal
        .env
        .send(&contracts::procedure::AttachReceipt {
            application_id: app.application_id,
            session_token: session.clone(),
            operation_id: paid.operation_id.clone(),
            amount_kopecks: 2100,
            outside_erip: None,
        })
        .await;
    let checked: contracts::procedure::ReceiptChecked = portal.event(&id).await;
    assert!(checked.matches, "{checked:?}");
    let decided: ApplicationDecided = portal.event(&id).await;
    assert_eq!(decided.verdict, Verdict::Granted);
    portal.stop().await;
    assert_eq!(
        portal.events_so_far::<PaymentReceived>(&id).await,
        1,
        "the payment counted once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpaid_invoice_expires_and_ends_the_application() {
    let mut portal = Portal::start_with(|c| c.payment_ttl = Duration::from_secs(2)).await;
    let (_, session) = portal.eds_session(0).await;
    let app = submit(PAID, &session);
    let id = app.application_id.to_string();
    portal.env.send(&app).await;
    let accepted: ApplicationAccepted = portal.event(&id).await;
    let rejected: ApplicationRejected = portal.event(&id).await;
    assert_eq!(rejected.reason, ProcedureRejectReason::PaymentExpired);
    let order = accepted.order_number.expect("order number");
    // Closed either way: ERIP's own expiry, or the hub's cancellation at its deadline.
    wait_until(WAIT, "the invoice closed at ERIP", || async {
        let status = portal.erip_invoice(&order).await["status"].clone();
        (status == "cancelled" || status == "expired").then_some(())
    })
    .await;
    portal.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_below_the_procedures_assurance_level_is_refused() {
    let mut portal = Portal::start().await;
    // A password login is `substantial`; the passport needs `high` (an EDS login).
    let (_, session) = portal.password_session(0).await;
    let app = submit(HIGH, &session);
    let id = app.application_id.to_string();
    portal.env.send(&app).await;
    let rejected: ApplicationRejected = portal.event(&id).await;
    assert_eq!(rejected.reason, ProcedureRejectReason::AssuranceTooLow);
    assert_eq!(rejected.fields[0].field, "assurance_level");
    let mut bad_form = submit(FREE, &session);
    bad_form.form.remove("period_to");
    bad_form.form.insert("colour".into(), json!("red"));
    let id = bad_form.application_id.to_string();
    portal.env.send(&bad_form).await;
    let rejected: ApplicationRejected = portal.event(&id).await;
    assert_eq!(rejected.reason, ProcedureRejectReason::InvalidInput);
    let fields: Vec<&str> = rejected.fields.iter().map(|f| f.field.as_str()).collect();
    assert!(
        fields.contains(&"form.period_to") && fields.contains(&"form.colour"),
        "{fields:?}"
    );
    portal.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withdrawal_before_payment_cancels_the_invoice_and_after_payment_owes_a_refund() {
    let mut portal = Portal::start().await;
    let (_, session) = portal.eds_session(0).await;
    // The authority takes its time, so the withdrawal reaches it before any decision.
    portal.start_authority(PAID_AUTHORITY, Duration::from_secs(600));
    let before = submit(PAID, &session);
    let id = before.application_id.to_string();
    portal.env.send(&before).await;
    let accepted: ApplicationAccepted = portal.event(&id).await;
    let order = accepted.order_number.expect("order number");
    portal
        .env
        .send(&WithdrawApplication {
            application_id: before.application_id,
            session_token: session.clone(),
        })
        .await;
    let withdrawn: ApplicationWithdrawn = portal.event(&id).await;
    assert_eq!(withdrawn.refund_due_kopecks, 0);
    wait_until(WAIT, "the invoice cancelled at ERIP", || async {
        (portal.erip_invoice(&order).await["status"] == "cancelled").then_some(())
    })
    .await;

    let after = submit(PAID, &session);
    let id = after.application_id.to_string();
    portal.env.send(&after).await;
    let accepted: ApplicationAccepted = portal.event(&id).await;
    let order = accepted.order_number.expect("order number");
    wait_until(WAIT, "the ERIP invoice", || async {
        (portal.erip_invoice(&order).await["status"] == "awaiting").then_some(())
    })
    .await;
    portal.pay(&order).await;
    let _: ApplicationRegistered = portal.event(&id).await;
    portal
        .env
        .send(&WithdrawApplication {
            application_id: after.application_id,
            session_token: session.clone(),
        })
        .await;
    let withdrawn: ApplicationWithdrawn = portal.event(&id).await;
    assert_eq!(
        withdrawn.refund_due_kopecks, 2100,
        "the fee paid is due back"
    );
    assert_eq!(
        state_name(&portal, after.application_id).await.as_deref(),
        Some("withdrawn")
    );
    portal.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawal_racing_the_decision_ends_in_exactly_one_of_them() {
    let mut portal = Portal::start().await;
    let (_, session) = portal.eds_session(0).await;
    // The authority decides the moment it registers.
    portal.start_authority(FREE_AUTHORITY, Duration::ZERO);
    let app = submit(FREE, &session);
    let id = app.application_id.to_string();
    portal.env.send(&app).await;
    let _: ApplicationAccepted = portal.event(&id).await;
    portal
        .env
        .send(&WithdrawApplication {
            application_id: app.application_id,
            session_token: session.clone(),
        })
        .await;
    let end = wait_until(WAIT, "the application to end", || async {
        state_name(&portal, app.application_id)
            .await
            .filter(|s| s == "decided" || s == "withdrawn")
    })
    .await;
    // Let the losing side's answer arrive too, then check that everyone saw one ending.
    if end == "decided" {
        let refused: ApplicationRejected = portal.event(&id).await;
        assert_eq!(refused.reason, ProcedureRejectReason::AlreadyDecided);
    }
    portal.stop().await;
    let decided = portal.events_so_far::<ApplicationDecided>(&id).await;
    let withdrawn = portal.events_so_far::<ApplicationWithdrawn>(&id).await;
    assert_eq!(
        decided + withdrawn,
        1,
        "exactly one ending: {decided} decided, {withdrawn} withdrawn"
    );
    assert_eq!(
        end == "decided",
        decided == 1,
        "the saga and the portal agree"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_sent_by_another_authority_is_dead_lettered() {
    let mut portal = Portal::start().await;
    let (_, session) = portal.eds_session(0).await;
    let app = submit(FREE, &session);
    let id = app.application_id.to_string();
    portal.env.send(&app).await;
    let _: ApplicationAccepted = portal.event(&id).await;
    // The test's own connection is `guest`, not FSZN's broker user.
    let forged = contracts::procedure::AuthorityDecided {
        application_id: app.application_id,
        verdict: Verdict::Granted,
        document: "forged".into(),
        decided_at: chrono::Utc::now(),
    };
    let mut metadata = Metadata::new(
        contracts::procedure::AuthorityDecided::TYPE.to_string(),
        "intruder",
    );
    metadata.user_id = Some("guest".into());
    portal.env.send_with(&forged, metadata).await;
    let letters = portal
        .env
        .dead_letters(hub_portal::procedures::saga::QUEUE, 1, WAIT)
        .await;
    let reason = letters[0]
        .header_str(headers::ERROR_TEXT)
        .unwrap_or_default();
    assert!(
        reason.contains("\"guest\"") && reason.contains("authority-fszn"),
        "{reason}"
    );
    assert_eq!(letters[0].error, reason);
    assert_eq!(
        state_name(&portal, app.application_id).await.as_deref(),
        Some("at_authority")
    );
    portal.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_holder_is_told_of_registration_and_decision_by_sms() {
    let mut portal = Portal::start().await;
    portal.start_authority(FREE_AUTHORITY, Duration::from_millis(100));
    // First the person gets an identifier (two SMS: the code and the temporary password),
    // replaces the temporary password and logs in.
    let (_, session) = portal.password_session(0).await;
    let phone = e2e::portal::phone(100);
    // Then applies for a procedure: the notices go to the session's identifier's phone.
    let app = submit(FREE, &session);
    let id = app.application_id.to_string();
    portal.env.send(&app).await;
    let accepted: ApplicationAccepted = portal.event(&id).await;
    let _: ApplicationDecided = portal.event(&id).await;
    // Two notices follow; the operator delivers them in its own time, so find them by content.
    portal.nth_text(&phone, 4).await;
    let texts = portal.phone_texts(&phone).await;
    let notices = &texts[2..];
    assert!(
        notices
            .iter()
            .any(|t| t.contains(&accepted.number) && t.contains("зарегистрировано")),
        "{notices:?}"
    );
    assert!(
        notices.iter().any(|t| t.contains("удовлетворено")),
        "{notices:?}"
    );
    assert_eq!(texts.len(), 4, "one SMS per notice: {texts:?}");
    portal.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_past_its_term_raises_the_overdue_event() {
    let mut portal = Portal::start().await;
    let (_, session) = portal.eds_session(0).await;
    // No authority runs: nobody decides.
    let app = submit(FREE, &session);
    let id = app.application_id.to_string();
    portal.env.send(&app).await;
    let _: ApplicationAccepted = portal.event(&id).await;
    let saga = hub_portal::procedures::saga::ProcedureSaga::key(app.application_id).id;
    // The term is days long; let it pass by moving the timer's due time to now.
    let moved = wait_until(WAIT, "the overdue timer", || async {
        let n =
            sqlx::query("UPDATE timers SET due_at = now() WHERE saga_id = $1 AND name = 'overdue'")
                .bind(saga)
                .execute(&portal.env.pool)
                .await
                .expect("timers")
                .rows_affected();
        (n == 1).then_some(n)
    })
    .await;
    assert_eq!(moved, 1);
    let overdue: contracts::procedure::ApplicationOverdue = portal.event(&id).await;
    assert_eq!(overdue.procedure_code, FREE);
    assert_eq!(overdue.authority, FREE_AUTHORITY);
    assert!(
        overdue.decision_due > chrono::Utc::now().date_naive(),
        "due in working days from today"
    );
    assert_eq!(
        state_name(&portal, app.application_id).await.as_deref(),
        Some("at_authority")
    );
    portal.stop().await;
}

/// A create-invoice command that reached ERIP from one hub process is handled again by another:
/// the first was killed after ERIP registered the invoice and before its own commit (or its call
/// timed out and the retry went to the other), as in the chaos run. Each process has a callback
/// URL of its own, which goes to ERIP as the invoice's `notify_url`, and ERIP compares the whole
/// request under the `Idempotency-Key`: the second process must send the request the first
/// sent, and so gets ERIP's first answer rather than `409 idempotency_conflict` (a dead letter,
/// and an application whose invoice the hub never learns of).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invoice_command_handled_again_by_another_hub_process_gets_erips_first_answer() {
    use adapters::erip::EripClient;
    use contracts::procedure::CreateInvoice;
    use hub_portal::external::erip::worker::{self as erip_worker, EripOutcome, EripWorker};
    use hub_runtime::broker::{Handler, Incoming};
    use hub_runtime::engine::{Service, ServiceRunner};

    let env = e2e::TestEnv::new().await;
    let token = tokio_util::sync::CancellationToken::new();
    let sims = simulators::start(
        simulators::SimConfig {
            only: Some(vec![SimKind::Erip]),
            ..simulators::SimConfig::ephemeral()
        },
        token.clone(),
    )
    .await
    .expect("the ERIP simulator starts");
    let erip_url = sims.erip.clone().expect("ERIP's URL");
    let client = EripClient::new(erip_url.clone(), Duration::from_secs(2)).expect("a client");
    // Two hub processes, each told to give ERIP its own callback listener.
    let notify =
        |host: &str| url::Url::parse(&format!("http://{host}/callbacks/erip")).expect("URL");
    let first = EripWorker::new(client.clone(), env.pool.clone(), Some(notify("hub-0:8090")));
    let second = EripWorker::new(client, env.pool.clone(), Some(notify("hub-1:8090")));

    let order_number = "202612070000000000000000000409".to_owned();
    let command = CreateInvoice {
        order_number: order_number.clone(),
        amount_kopecks: 2100,
        description: "5.13 Duplicate civil-status certificate".into(),
        expires_at: chrono::Utc::now() + chrono::TimeDelta::hours(1),
    };
    let topology = env.topology(vec![erip_worker::queue_spec()]);
    let incoming = Incoming {
        metadata: Metadata::new(CreateInvoice::TYPE.to_string(), "hub")
            .with_correlation_id(Uuid::new_v4().to_string()),
        body: contracts::encode(&command).expect("JSON"),
        queue: topology.work_queue(erip_worker::QUEUE),
        exchange: topology.bus_exchange(),
        routing_key: CreateInvoice::TYPE.to_string(),
        previous_failures: 0,
    };

    // The first process calls ERIP, which registers the invoice; the process dies before its
    // transaction, so nothing of its handling is committed and the command is not acknowledged.
    let invoice_id = match first.prepare(&incoming).await {
        Ok(EripOutcome::Created { invoice_id, .. }) => invoice_id,
        other => panic!("the first process registers the invoice: {other:?}"),
    };
    // The broker hands the command to the other process, which handles it whole.
    let runner = ServiceRunner::new(
        second,
        env.pool.clone(),
        std::sync::Arc::new(topology),
        "hub",
    );
    runner
        .handle(&incoming)
        .await
        .expect("the second process gets ERIP's first answer, not a conflict");

    let recorded: String =
        sqlx::query_scalar("SELECT invoice_id FROM erip_invoices WHERE order_number = $1")
            .bind(&order_number)
            .fetch_one(&env.pool)
            .await
            .expect("the invoice recorded");
    assert_eq!(recorded, invoice_id);
    // ERIP holds one invoice, which notifies the process that registered it.
    let mut list = erip_url.join("sim/invoices").expect("URL");
    list.query_pairs_mut()
        .append_pair("account_number", &order_number);
    let invoices: serde_json::Value = reqwest::get(list)
        .await
        .expect("ERIP answers")
        .json()
        .await
        .expect("JSON");
    let invoices = invoices["invoices"].as_array().expect("a list");
    assert_eq!(invoices.len(), 1, "{invoices:?}");
    assert_eq!(invoices[0]["notify_url"], notify("hub-0:8090").as_str());
    // Answered: nothing of the request is kept for another attempt.
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM request_callbacks")
        .fetch_one(&env.pool)
        .await
        .expect("request_callbacks");
    assert_eq!(kept, 0);

    token.cancel();
    sims.stopped().await;
}
