//! Operators' saga tools end to end (`hub_ops::sagas`, which `hub saga` and the console call):
//! the hub's own plan, every simulator, the real RabbitMQ and PostgreSQL. A saga is made to
//! stick for real (the MVD registry failing until its command is dead-lettered, an authority
//! that never answers), then found, shown, retried and cancelled.

use std::sync::Arc;
use std::time::Duration;

use contracts::procedure::{
    ApplicationAccepted, ApplicationWithdrawn, PaymentReceived, SubmitApplication,
};
use e2e::portal::{DESK, Portal, WAIT, phone};
use e2e::{Observer, wait_until};
use hub_ops::dlq::Disclosure;
use hub_ops::sagas::{self, ListFilter, OperatorRequest, SagaOpsError};
use hub_portal::procedures::saga::ProcedureSaga;
use hub_portal::sagas::issuance::IssuanceSaga;
use hub_runtime::app::HubContext;
use serde_json::json;
use simulators::SimKind;
use sqlx::PgPool;
use uuid::Uuid;

async fn state_of(pool: &PgPool, id: Uuid) -> (String, bool) {
    sqlx::query_as("SELECT state_name, terminal FROM sagas WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await
        .expect("saga")
        .unwrap_or_default()
}

async fn wait_for_state(pool: &PgPool, id: Uuid, state: &str) {
    wait_until(WAIT, &format!("saga {id} in {state}"), || async {
        (state_of(pool, id).await.0 == state).then_some(())
    })
    .await;
}

/// The audit rows of `action` on saga `id`: (operator, reason, details).
async fn audit_rows(
    pool: &PgPool,
    action: &str,
    id: Uuid,
) -> Vec<(String, Option<String>, serde_json::Value)> {
    sqlx::query_as(
        "SELECT operator, reason, details FROM ops_audit WHERE action = $1 AND target = $2
         ORDER BY id",
    )
    .bind(action)
    .bind(id.to_string())
    .fetch_all(pool)
    .await
    .expect("audit")
}

fn ids(rows: &[sagas::SagaSummary]) -> Vec<Uuid> {
    rows.iter().map(|s| s.id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_application_is_listed_shown_masked_and_its_step_retried_to_completion() {
    let mut portal = Portal::start().await;
    let pool = portal.env.pool.clone();
    let person = portal.good_persons().await.remove(0);
    // The MVD registry fails every call: the saga's command is retried, then dead-lettered,
    // and the saga waits in `reconciling`.
    portal
        .faults(SimKind::Mvd, json!({"error_rate": 1.0}))
        .await;
    portal.apply(&person.application("SO-1", &phone(7))).await;
    let stuck = IssuanceSaga::key(DESK, "SO-1").id;
    // The same person, refused at once (no consent): an ended saga of the same type.
    let mut refused = person.application("SO-2", &phone(8));
    refused.consent_to_mvd_check = false;
    portal.apply(&refused).await;
    let ended = IssuanceSaga::key(DESK, "SO-2").id;
    wait_for_state(&pool, stuck, "reconciling").await;
    wait_for_state(&pool, ended, "rejected").await;
    // The keeper moves the dead letter into `dead_letters`, correlated to the saga.
    wait_until(WAIT, "the MVD command dead-lettered and kept", || async {
        let kept: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM dead_letters WHERE correlation_id = $1 AND message_type = $2",
        )
        .bind(stuck.to_string())
        .bind("mvd.reconcile.v1")
        .fetch_one(&pool)
        .await
        .expect("dead letters");
        (kept > 0).then_some(())
    })
    .await;

    // Listing by type, state, end and being stuck.
    let all = ListFilter::default();
    let listed = sagas::list(&pool, &all).await.expect("list");
    assert!(ids(&listed).contains(&stuck) && ids(&listed).contains(&ended));
    let filter = |f: ListFilter| {
        let pool = pool.clone();
        async move { ids(&sagas::list(&pool, &f).await.expect("list")) }
    };
    let issuance = Some("issuance".to_owned());
    assert_eq!(
        filter(ListFilter {
            saga_type: issuance.clone(),
            state: Some("reconciling".into()),
            ..ListFilter::default()
        })
        .await,
        [stuck]
    );
    assert_eq!(
        filter(ListFilter {
            saga_type: Some("procedure".into()),
            ..ListFilter::default()
        })
        .await,
        Vec::<Uuid>::new()
    );
    assert_eq!(
        filter(ListFilter {
            saga_type: issuance.clone(),
            terminal: Some(true),
            ..ListFilter::default()
        })
        .await,
        [ended]
    );
    assert_eq!(
        filter(ListFilter {
            saga_type: issuance.clone(),
            terminal: Some(false),
            ..ListFilter::default()
        })
        .await,
        [stuck]
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let stuck_filter = ListFilter {
        stuck_longer_than: Some(chrono::Duration::seconds(1)),
        ..ListFilter::default()
    };
    assert_eq!(
        filter(stuck_filter.clone()).await,
        [stuck],
        "ended sagas are never stuck"
    );
    assert_eq!(sagas::count(&pool, &stuck_filter).await.expect("count"), 1);
    assert_eq!(
        filter(ListFilter {
            stuck_longer_than: Some(chrono::Duration::hours(1)),
            ..ListFilter::default()
        })
        .await,
        Vec::<Uuid>::new()
    );

    // Found by id, by business key; the identification number names both applications.
    let key = format!("{DESK}/SO-1");
    assert_eq!(
        sagas::find_one(&pool, &stuck.to_string())
            .await
            .expect("by id")
            .id,
        stuck
    );
    assert_eq!(
        sagas::find_one(&pool, &key).await.expect("by key").id,
        stuck
    );
    match sagas::find_one(&pool, &person.identification_number.to_lowercase()).await {
        Err(e @ SagaOpsError::Ambiguous { .. }) => {
            assert_eq!(e.exit_code(), 3);
            let SagaOpsError::Ambiguous { matches, .. } = e else {
                unreachable!()
            };
            let mut found = ids(&matches);
            found.sort();
            let mut expected = vec![stuck, ended];
            expected.sort();
            assert_eq!(found, expected);
        }
        other => panic!("two applications of one person: {other:?}"),
    }
    let nothing = sagas::find_one(&pool, "no-such-thing")
        .await
        .expect_err("none");
    assert_eq!(nothing.exit_code(), 3);

    // Shown masked: the timeline in order, each command with where it went.
    let detail = sagas::show(&pool, stuck, Disclosure::Masked)
        .await
        .expect("show");
    let versions: Vec<i64> = detail.timeline.iter().map(|s| s.version).collect();
    assert_eq!(versions, [1, 2]);
    let steps: Vec<(&str, Option<&str>, &str)> = detail
        .timeline
        .iter()
        .map(|s| {
            (
                s.message_type.as_str(),
                s.from_state.as_deref(),
                s.to_state.as_str(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("issuance.apply.v1", None, "reserving"),
            ("registry.reserved.v1", Some("reserving"), "reconciling"),
        ]
    );
    let reconcile = &detail.timeline[1].outgoing[0];
    assert_eq!(reconcile.message_type.as_deref(), Some("mvd.reconcile.v1"));
    assert_eq!(reconcile.status, "sent");
    assert_eq!(reconcile.routing_key.as_deref(), Some("mvd.reconcile.v1"));
    // The dead letter it caused, also linked from the message that died.
    assert_eq!(detail.dead_letters.len(), 1, "{:?}", detail.dead_letters);
    let letter = &detail.dead_letters[0];
    assert_eq!(letter.message_id, Some(reconcile.message_id));
    assert_eq!(letter.queue, hub_portal::external::mvd::worker::QUEUE);
    assert_eq!(letter.error_kind, "retries_exhausted");
    assert_eq!(letter.status, "new");
    assert_eq!(reconcile.dead_letter_id, Some(letter.id));
    let person_state = &detail.state["person"];
    assert_ne!(
        person_state["identification_number"],
        json!(person.identification_number)
    );
    assert!(
        person_state["identification_number"]
            .as_str()
            .is_some_and(|v| v.contains("**")),
        "{person_state}"
    );
    assert_ne!(person_state["surname"], json!(person.surname));
    let whole = serde_json::to_string(&detail).expect("JSON");
    assert!(
        !whole.contains(&person.identification_number) && !whole.contains("440071234"),
        "personal data in a masked view: {whole}"
    );
    assert!(
        audit_rows(&pool, "saga.show_unmasked", stuck)
            .await
            .is_empty()
    );
    let clear = sagas::show(
        &pool,
        stuck,
        Disclosure::Unmasked {
            operator: "ivanova",
        },
    )
    .await
    .expect("show unmasked");
    assert_eq!(
        clear.state["person"]["identification_number"],
        json!(person.identification_number)
    );
    assert_eq!(
        audit_rows(&pool, "saga.show_unmasked", stuck).await[0].0,
        "ivanova"
    );

    // The registry is back: the step is sent again with its id, and the saga goes on.
    portal
        .faults(SimKind::Mvd, json!({"error_rate": 0.0}))
        .await;
    let request = OperatorRequest {
        operator: "ivanova".into(),
        reason: Some("MVD is back".into()),
    };
    let report = sagas::retry_step(&pool, stuck, &request)
        .await
        .expect("retried");
    assert_eq!(report.version, 2);
    assert_eq!(report.messages.len(), 1);
    assert_eq!(report.messages[0].message_id, reconcile.message_id);
    assert_eq!(report.messages[0].action, "requeued");
    wait_for_state(&pool, stuck, "confirming_phone").await;
    let after = sagas::show(&pool, stuck, Disclosure::Masked)
        .await
        .expect("show");
    assert_eq!(after.timeline[2].message_type, "mvd.reconciled.v1");
    assert_eq!(after.timeline[2].from_state.as_deref(), Some("reconciling"));
    assert_eq!(
        after.timers.len(),
        1,
        "the phone code's timer: {:?}",
        after.timers
    );
    let audit = audit_rows(&pool, "saga.retry_step", stuck).await;
    assert_eq!(audit.len(), 1);
    assert_eq!(
        (audit[0].0.as_str(), audit[0].1.as_deref()),
        ("ivanova", Some("MVD is back"))
    );
    assert_eq!(audit[0].2["version"], 2);
    assert_eq!(
        after.dead_letters[0].status, "replayed",
        "not for replay again"
    );

    // An ended saga has no step to retry.
    let refused = sagas::retry_step(&pool, ended, &request)
        .await
        .expect_err("refused");
    assert!(matches!(refused, SagaOpsError::Refused(_)), "{refused}");
    assert_eq!(refused.exit_code(), 1);
    portal.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_undecided_application_is_cancelled_with_its_refund_and_an_ended_one_is_refused() {
    let mut portal = Portal::start().await;
    let pool = portal.env.pool.clone();
    let (applicant, session) = portal.eds_session(0).await;
    // No authority is running: the application waits with it after the payment.
    let app = SubmitApplication {
        application_id: Uuid::new_v4(),
        procedure_code: "5.13".into(),
        session_token: session,
        form: json!({"record_kind": "birth", "record_year": 1990})
            .as_object()
            .cloned()
            .expect("object"),
        attachments: vec![],
        delivery: Default::default(),
    };
    let id = app.application_id.to_string();
    portal.env.send(&app).await;
    let accepted: ApplicationAccepted = portal.event(&id).await;
    let order = accepted.order_number.expect("order number");
    wait_until(WAIT, "the ERIP invoice", || async {
        (portal.erip_invoice(&order).await["status"] == "awaiting").then_some(())
    })
    .await;
    portal.pay(&order).await;
    let _: PaymentReceived = portal.event(&id).await;
    let saga = ProcedureSaga::key(app.application_id).id;
    wait_for_state(&pool, saga, "at_authority").await;

    // Found by the ERIP order number and by the hub's application number.
    assert_eq!(
        sagas::find_one(&pool, &order).await.expect("by order").id,
        saga
    );
    assert_eq!(
        sagas::find_one(&pool, &accepted.number)
            .await
            .expect("by number")
            .id,
        saga
    );
    let detail = sagas::show(&pool, saga, Disclosure::Masked)
        .await
        .expect("show");
    // The portal's `procedure.submit.v1` reached the saga as the session gate's own message.
    assert_eq!(detail.timeline[0].message_type, "procedure.start.v1");
    let sent: Vec<&str> = detail.timeline[0]
        .outgoing
        .iter()
        .filter_map(|m| m.message_type.as_deref())
        .collect();
    assert_eq!(sent, ["erip.create_invoice.v1", "procedure.accepted.v1"]);
    assert!(
        detail
            .timeline
            .windows(2)
            .all(|w| w[0].version + 1 == w[1].version && w[0].at <= w[1].at)
    );
    let masked = format!(
        "{}{}{}",
        &applicant[..2],
        "*".repeat(applicant.len() - 4),
        &applicant[applicant.len() - 2..]
    );
    assert_eq!(detail.state["applicant"], masked.as_str());

    // Cancelled: the authority is told, the fee is due back, the portal learns why.
    let plan = hub_portal::services::plan(&portal.integrations).expect("plan");
    let ctx = HubContext {
        pool: pool.clone(),
        topology: Arc::new(portal.env.topology(plan.queues())),
        app_id: "saga-ops-test".into(),
        broker_user: hub_runtime::broker::broker_user(&portal.env.config.amqp_url),
        batch: portal.env.config.batch,
    };
    let types = plan.saga_types(&ctx);
    let request = OperatorRequest {
        operator: "petrov".into(),
        reason: Some("the registry office is closed for a month".into()),
    };
    let report = sagas::cancel(&pool, &types, saga, &request, "saga-ops-test")
        .await
        .expect("cancel queued");
    assert_eq!(report.from_state, "at_authority");
    assert_eq!(report.preview.to_state, "cancelled");
    assert_eq!(
        report.preview.sends,
        ["procedure.withdrawn.v1", "authority.withdrawal.v1"]
    );
    assert_eq!(
        report.queue,
        portal
            .env
            .topology(vec![])
            .work_queue(hub_portal::procedures::saga::QUEUE)
    );
    let withdrawn: ApplicationWithdrawn = portal.event(&id).await;
    assert_eq!(withdrawn.refund_due_kopecks, 2100);
    assert_eq!(
        withdrawn.reason,
        Some(contracts::procedure::WithdrawalReason::CancelledByOperator)
    );
    assert_eq!(
        withdrawn.detail.as_deref(),
        Some("the registry office is closed for a month")
    );
    wait_for_state(&pool, saga, "cancelled").await;
    assert!(state_of(&pool, saga).await.1, "ended");
    let detail = sagas::show(&pool, saga, Disclosure::Masked)
        .await
        .expect("show");
    assert_eq!(detail.state["stage"]["refund_due_kopecks"], 2100);
    let last = detail.timeline.last().expect("steps");
    assert_eq!(
        (
            last.message_type.as_str(),
            last.from_state.as_deref(),
            last.to_state.as_str()
        ),
        ("ops.cancel_saga.v1", Some("at_authority"), "cancelled")
    );
    assert!(detail.timers.is_empty(), "{:?}", detail.timers);
    let audit = audit_rows(&pool, "saga.cancel", saga).await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].0, "petrov");
    assert_eq!(
        audit[0].1.as_deref(),
        Some("the registry office is closed for a month")
    );
    assert_eq!(audit[0].2["to_state"], "cancelled");
    // The authority's queue has the application and, after it, the withdrawal.
    let authority = Observer::attach(
        &portal.env,
        portal
            .env
            .topology(vec![])
            .work_queue("authority.minsk-civil-registry"),
    )
    .await;
    let told: Vec<String> = authority
        .take(2, WAIT)
        .await
        .into_iter()
        .map(|m| m.metadata.message_type)
        .collect();
    assert_eq!(
        told,
        ["authority.application.v1", "authority.withdrawal.v1"]
    );

    // Once ended, it cannot be cancelled again (nor retried).
    let again = sagas::cancel(&pool, &types, saga, &request, "saga-ops-test")
        .await
        .expect_err("refused");
    assert!(
        matches!(&again, SagaOpsError::Refused(m) if m.contains("has ended")),
        "{again}"
    );
    assert_eq!(again.exit_code(), 1);
    assert_eq!(audit_rows(&pool, "saga.cancel", saga).await.len(), 1);
    portal.stop().await;
}
