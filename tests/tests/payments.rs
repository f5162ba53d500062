//! Payments that match the fee (issue 17), end to end: the hub's plan, the ERIP simulator paying
//! short, twice, late and refunding, an authority's back-office confirming receipts of payments
//! made outside ERIP, the real RabbitMQ and PostgreSQL. The test is the portal.

use std::time::Duration;

use contracts::cabinet::SessionToken;
use contracts::procedure::{
    ApplicationAccepted, ApplicationDecided, ApplicationRejected, ApplicationWithdrawn,
    AttachReceipt, AuthorityReceiptAnswered, BankPayment, DueBackReason, PaymentDueBack,
    PaymentReceived, PaymentReturned, ProcedureRejectReason, ReceiptChecked, ReceiptCheckedBy,
    ReturnKind, SubmitApplication, Verdict, WithdrawApplication,
};
use contracts::{Message, Metadata, headers};
use e2e::portal::{Portal, WAIT};
use e2e::wait_until;
use serde_json::json;
use simulators::SimKind;
use uuid::Uuid;

/// A paid procedure of a queue authority: a duplicate civil-status certificate, 21.00 BYN.
const PAID: &str = "5.13";
const FEE: u64 = 2100;
const PAID_AUTHORITY: &str = "minsk-civil-registry";

fn submit(session: &SessionToken) -> SubmitApplication {
    SubmitApplication {
        application_id: Uuid::new_v4(),
        procedure_code: PAID.into(),
        session_token: session.clone(),
        form: json!({"record_kind": "birth", "record_year": 1990})
            .as_object()
            .cloned()
            .expect("object"),
        attachments: vec![],
        delivery: Default::default(),
    }
}

async fn state_name(portal: &Portal, id: Uuid) -> String {
    sqlx::query_scalar("SELECT state_name FROM sagas WHERE id = $1")
        .bind(hub_portal::procedures::saga::ProcedureSaga::key(id).id)
        .fetch_one(&portal.env.pool)
        .await
        .expect("saga")
}

/// Submits a paid application and waits for its invoice at ERIP; returns its id and order.
async fn applied(portal: &Portal, session: &SessionToken) -> (Uuid, String) {
    let app = submit(session);
    portal.env.send(&app).await;
    let accepted: ApplicationAccepted = portal.event(&app.application_id.to_string()).await;
    assert_eq!(accepted.amount_kopecks, FEE);
    let order = accepted.order_number.expect("an order number");
    wait_until(WAIT, "the ERIP invoice", || async {
        (portal.erip_invoice(&order).await["status"] == "awaiting").then_some(())
    })
    .await;
    (app.application_id, order)
}

/// The operators' view of what is due back for an application: (reason, amount, outstanding).
async fn due_back(portal: &Portal, id: Uuid) -> Vec<(String, i64, i64)> {
    sqlx::query_as(
        "SELECT reason, amount_kopecks, outstanding_kopecks FROM payments_due_back
         WHERE application_id = $1 ORDER BY recorded_at, reason",
    )
    .bind(id.to_string())
    .fetch_all(&portal.env.pool)
    .await
    .expect("payments_due_back")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_payment_waits_for_the_rest_and_an_overpayment_or_a_second_payment_is_due_back() {
    let mut portal = Portal::start().await;
    let (_, session) = portal.eds_session(0).await;
    portal.start_authority(PAID_AUTHORITY, Duration::from_millis(300));
    // ERIP sends every notice twice: each payment still counts once.
    portal
        .faults(SimKind::Erip, json!({"duplicate_callback_rate": 1.0}))
        .await;
    let (app, order) = applied(&portal, &session).await;
    let id = app.to_string();

    // 10.00 of 21.00: the person is told what is missing; the application waits, the invoice
    // stays open.
    let invoice = portal.pay_with(&order, json!({"amount": 1000})).await;
    assert_eq!(invoice["status"], "awaiting", "{invoice}");
    let short: PaymentReceived = portal.event(&id).await;
    assert_eq!(
        (
            short.amount_kopecks,
            short.paid_kopecks,
            short.missing_kopecks
        ),
        (1000, 1000, 1100)
    );
    assert_eq!(state_name(&portal, app).await, "awaiting_payment");

    // 15.00 more: the fee is met, 4.00 is due back, the application goes to the authority.
    portal.pay_with(&order, json!({"amount": 1500})).await;
    let full: PaymentReceived = portal
        .event_where(&id, |p: &PaymentReceived| p.missing_kopecks == 0)
        .await;
    assert_eq!((full.amount_kopecks, full.paid_kopecks), (1500, FEE));
    let over: PaymentDueBack = portal.event(&id).await;
    assert_eq!(
        (over.amount_kopecks, over.reason, over.operation_ids.clone()),
        (
            400,
            DueBackReason::Overpaid,
            vec![full.operation_id.clone()]
        )
    );
    let decided: ApplicationDecided = portal.event(&id).await;
    assert_eq!(decided.verdict, Verdict::Granted);

    // Paid twice: the second payment is due back whole.
    portal.pay_with(&order, json!({})).await;
    let twice: PaymentDueBack = portal
        .event_where(&id, |d: &PaymentDueBack| {
            d.reason == DueBackReason::AlreadyPaid
        })
        .await;
    assert_eq!(
        (twice.amount_kopecks, twice.due_back_kopecks),
        (FEE, 400 + FEE)
    );
    assert_eq!(
        due_back(&portal, app).await,
        [
            ("overpaid".to_owned(), 400, 400),
            ("already_paid".to_owned(), 2100, 2100)
        ]
    );
    portal.stop().await;
    assert_eq!(
        portal.events_so_far::<PaymentReceived>(&id).await,
        2,
        "two payments toward the fee, each counted once although ERIP notified twice"
    );
    assert_eq!(portal.events_so_far::<PaymentDueBack>(&id).await, 2);
}

async fn post_erip(portal: &Portal, body: &[u8], signature: Option<&str>) -> u16 {
    let mut request = reqwest::Client::new()
        .post(format!(
            "http://{}/callbacks/erip",
            portal.integrations.http_addr
        ))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(signature) = signature {
        request = request.header(adapters::erip::SIGNATURE_HEADER, signature);
    }
    request
        .send()
        .await
        .expect("the hub answers")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_after_expiry_or_withdrawal_are_due_back_and_refunds_and_reversals_settle_them() {
    let mut portal = Portal::start().await;
    let (_, session) = portal.eds_session(0).await;

    // 7.00 paid, then the invoice expires: the application ends and the 7.00 is due back.
    let (app, order) = applied(&portal, &session).await;
    let id = app.to_string();
    portal.pay_with(&order, json!({"amount": 700})).await;
    let _: PaymentReceived = portal.event(&id).await;
    let soon = chrono::Utc::now() + chrono::TimeDelta::days(30);
    portal.erip_sim_expire(&soon.to_rfc3339()).await;
    let rejected: ApplicationRejected = portal.event(&id).await;
    assert_eq!(rejected.reason, ProcedureRejectReason::PaymentExpired);
    let expired: PaymentDueBack = portal.event(&id).await;
    assert_eq!(
        (expired.amount_kopecks, expired.reason),
        (700, DueBackReason::Expired)
    );

    // A forged "paid" for the rest — unsigned, or signed with another key — is refused and
    // changes nothing.
    let invoice_id = portal.erip_invoice(&order).await["invoice_id"].clone();
    let forged = json!({
        "event_id": Uuid::new_v4().to_string(), "invoice_id": invoice_id,
        "account_number": order, "status": "paid", "amount": 1400,
        "operation_id": "999999999999999999", "occurred_at": chrono::Utc::now().to_rfc3339(),
    })
    .to_string()
    .into_bytes();
    assert_eq!(post_erip(&portal, &forged, None).await, 401);
    let wrong = adapters::erip::sign_notification(b"not ERIP's key", &forged);
    assert_eq!(post_erip(&portal, &forged, Some(&wrong)).await, 401);

    // The rest paid late (the bank took it by the order number after the invoice closed): due
    // back whole, the application stays ended.
    portal
        .pay_with(&order, json!({"amount": 1400, "late": true}))
        .await;
    let late: PaymentDueBack = portal
        .event_where(&id, |d: &PaymentDueBack| d.amount_kopecks == 1400)
        .await;
    assert_eq!(
        (late.reason, late.due_back_kopecks),
        (DueBackReason::Expired, 2100)
    );
    assert_eq!(state_name(&portal, app).await, "rejected");

    // ERIP refunds the first payment and the bank reverses the second: both recorded, nothing
    // is due back any more.
    let first = expired.operation_ids[0].clone();
    portal
        .return_payment(&order, json!({"operation_id": first}))
        .await;
    let refund: PaymentReturned = portal.event(&id).await;
    assert_eq!(
        (refund.kind, refund.amount_kopecks, refund.due_back_kopecks),
        (ReturnKind::Refund, 700, 1400)
    );
    portal
        .return_payment(&order, json!({"reversal": true}))
        .await;
    let reversal: PaymentReturned = portal
        .event_where(&id, |r: &PaymentReturned| r.kind == ReturnKind::Reversal)
        .await;
    assert_eq!(
        (reversal.amount_kopecks, reversal.due_back_kopecks),
        (1400, 0)
    );
    assert_eq!(
        due_back(&portal, app).await,
        [
            ("expired".to_owned(), 700, 0),
            ("expired".to_owned(), 1400, 0)
        ]
    );

    // Withdrawn before paying, then paid: due back, the person told.
    let (withdrawn_app, withdrawn_order) = applied(&portal, &session).await;
    let wid = withdrawn_app.to_string();
    portal
        .env
        .send(&WithdrawApplication {
            application_id: withdrawn_app,
            session_token: session.clone(),
        })
        .await;
    let withdrawn: ApplicationWithdrawn = portal.event(&wid).await;
    assert_eq!(withdrawn.refund_due_kopecks, 0);
    wait_until(WAIT, "the invoice cancelled at ERIP", || async {
        (portal.erip_invoice(&withdrawn_order).await["status"] == "cancelled").then_some(())
    })
    .await;
    portal
        .pay_with(&withdrawn_order, json!({"late": true}))
        .await;
    let after: PaymentDueBack = portal.event(&wid).await;
    assert_eq!(
        (after.amount_kopecks, after.reason),
        (FEE, DueBackReason::Withdrawn)
    );
    assert_eq!(state_name(&portal, withdrawn_app).await, "withdrawn");
    portal.stop().await;
    assert_eq!(portal.events_so_far::<PaymentReturned>(&id).await, 2);
}

fn bank_receipt(
    app: Uuid,
    session: &SessionToken,
    order: &str,
    document: &str,
    amount: u64,
) -> AttachReceipt {
    AttachReceipt {
        application_id: app,
        session_token: session.clone(),
        operation_id: String::new(),
        amount_kopecks: amount,
        outside_erip: Some(BankPayment {
            order_number: order.into(),
            bank: "Belarusbank".into(),
            paid_on: chrono::Utc::now().date_naive(),
            document_number: document.into(),
        }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_of_a_payment_outside_erip_waits_for_the_authoritys_confirmation() {
    let mut portal = Portal::start().await;
    let (_, session) = portal.eds_session(0).await;
    portal.start_authority(PAID_AUTHORITY, Duration::from_millis(300));
    let (app, order) = applied(&portal, &session).await;
    let id = app.to_string();

    // The authority finds no such payment: the person is told why, the application still
    // awaits payment.
    portal
        .env
        .send(&bank_receipt(app, &session, &order, "refuse-17", FEE))
        .await;
    let refused: ReceiptChecked = portal.event(&id).await;
    assert_eq!(
        (refused.matches, refused.checked_by),
        (false, ReceiptCheckedBy::Authority)
    );
    assert!(
        refused
            .problem
            .as_deref()
            .is_some_and(|p| p.contains("no such payment")),
        "{refused:?}"
    );
    assert_eq!(state_name(&portal, app).await, "awaiting_payment");

    // A confirmation from a party that may not send it (the test's `guest`, not the civil
    // registry's broker user) is dead-lettered and changes nothing.
    let forged = AuthorityReceiptAnswered {
        application_id: app,
        document_number: "PP-2026-17".into(),
        confirmed: true,
        reason: None,
    };
    let mut metadata = Metadata::new(AuthorityReceiptAnswered::TYPE.to_string(), "intruder");
    metadata.user_id = Some("guest".into());
    portal.env.send_with(&forged, metadata).await;
    let letters = portal
        .env
        .dead_letters(hub_portal::procedures::saga::QUEUE, 1, WAIT)
        .await;
    let reason = letters[0]
        .header_str(headers::ERROR_TEXT)
        .unwrap_or_default();
    assert!(reason.contains("\"guest\""), "{reason}");
    assert_eq!(state_name(&portal, app).await, "awaiting_payment");

    // A receipt naming another order number is refused at once.
    portal
        .env
        .send(&bank_receipt(
            app,
            &session,
            &"1".repeat(30),
            "PP-2026-16",
            FEE,
        ))
        .await;
    let _: ReceiptChecked = portal
        .event_where(&id, |c: &ReceiptChecked| {
            c.problem
                .as_deref()
                .is_some_and(|p| p.contains("order number"))
        })
        .await;

    // The authority confirms the bank transfer: it is the payment, the application goes on.
    portal
        .env
        .send(&bank_receipt(app, &session, &order, "PP-2026-17", FEE))
        .await;
    let confirmed: ReceiptChecked = portal
        .event_where(&id, |c: &ReceiptChecked| c.matches)
        .await;
    assert_eq!(confirmed.checked_by, ReceiptCheckedBy::Authority);
    let paid: PaymentReceived = portal.event(&id).await;
    assert_eq!(
        (paid.operation_id.as_str(), paid.missing_kopecks),
        ("bank:PP-2026-17", 0)
    );
    let decided: ApplicationDecided = portal.event(&id).await;
    assert_eq!(decided.verdict, Verdict::Granted);
    portal.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_back_office_confirms_or_refuses_a_receipt_through_the_bridge() {
    let mut portal = Portal::start_custom(
        |s| s.backoffice.decide_after = Duration::from_millis(300),
        |_| {},
    )
    .await;
    let (_, session) = portal.eds_session(0).await;
    // Pet registration in Minsk: 12.60 BYN, decided by the city executive committee's HTTP
    // back-office.
    let app = SubmitApplication {
        procedure_code: "16.6".into(),
        form: json!({"species": "dog", "pet_name": "Rex", "microchipped": true})
            .as_object()
            .cloned()
            .expect("object"),
        ..submit(&session)
    };
    let id = app.application_id.to_string();
    portal.env.send(&app).await;
    let accepted: ApplicationAccepted = portal.event(&id).await;
    let order = accepted.order_number.expect("an order number");
    let fee = accepted.amount_kopecks;
    portal
        .env
        .send(&bank_receipt(
            app.application_id,
            &session,
            &order,
            "refuse-5",
            fee,
        ))
        .await;
    let refused: ReceiptChecked = portal.event(&id).await;
    assert!(!refused.matches, "{refused:?}");
    assert_eq!(
        state_name(&portal, app.application_id).await,
        "awaiting_payment"
    );
    portal
        .env
        .send(&bank_receipt(
            app.application_id,
            &session,
            &order,
            "PP-5",
            fee,
        ))
        .await;
    let confirmed: ReceiptChecked = portal
        .event_where(&id, |c: &ReceiptChecked| c.matches)
        .await;
    assert_eq!(confirmed.checked_by, ReceiptCheckedBy::Authority);
    let paid: PaymentReceived = portal.event(&id).await;
    assert_eq!((paid.amount_kopecks, paid.missing_kopecks), (fee, 0));
    let decided: ApplicationDecided = portal.event(&id).await;
    assert_eq!(decided.verdict, Verdict::Granted);
    portal.stop().await;
}
