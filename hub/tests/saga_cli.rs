//! `hub saga` as operators run it: the binary against a database of its own (DATABASE_URL,
//! HUB_NAMESPACE), holding sagas stored the way the engine stores them, with states the real
//! sagas made. No broker is needed: the commands read and write the database, and the running
//! hub's relay (absent here) would publish what they put in the outbox.

use std::process::Output;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use contracts::Metadata;
use contracts::procedure::{Applicant, AssuranceLevel};
use hub_lab::sandbox::{Sandbox, Servers};
use hub_portal::procedures::calendar::Calendar;
use hub_portal::procedures::catalogue::Catalogue;
use hub_portal::procedures::complaint::{ComplaintInput, ComplaintSaga};
use hub_portal::procedures::saga::{Input, ProcedureSaga, ProcedureSettings};
use hub_portal::sessions::{StartApplication, StartComplaint};
use hub_runtime::engine::{Saga, Step, StepContext};
use serde::Serialize;
use sqlx::PgPool;
use sqlx::types::Json;
use uuid::Uuid;

const ID_NUMBER: &str = "3270287A012PB2";

/// A database and namespace of one test, dropped at the end (also when the test fails).
struct Db {
    pool: PgPool,
    namespace: String,
    /// Last: the database goes after the pool.
    sandbox: Sandbox,
}

impl Db {
    async fn new() -> Self {
        let sandbox = Sandbox::new(&Servers::for_tests(), "t", "hubtest_cli")
            .expect("TEST_DATABASE_URL is a PostgreSQL URL");
        let pool = hub_runtime::store::connect(
            &sandbox.database_url,
            2,
            &hub::migrator().expect("migrations"),
        )
        .await
        .expect("PostgreSQL is running (see README, Prerequisites)");
        Self {
            pool,
            namespace: sandbox.namespace.to_string(),
            sandbox,
        }
    }

    /// Runs `hub args...` against this database and namespace.
    async fn hub(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_hub"));
        command
            .args(args)
            .envs(self.sandbox.env())
            .env("RUST_LOG", "warn")
            .env_remove("HUB_OPS_UNMASK");
        for (k, v) in env {
            command.env(k, v);
        }
        command.output().await.expect("the hub binary runs")
    }
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn text(out: &Output) -> String {
    format!(
        "exit {}\nstdout:\n{}\nstderr:\n{}",
        code(out),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Stores a saga's first step as the engine does: the saga row, a history row, its messages in
/// the outbox (as sent), its timers. `at` is when the step happened.
async fn store<S: Serialize>(
    db: &Db,
    saga: &impl Saga<State = S>,
    id: Uuid,
    key: &str,
    message_type: &str,
    step: &Step<S>,
    at: DateTime<Utc>,
) {
    let state_name = saga.state_name(&step.state);
    let version = 1_i64;
    let state = serde_json::to_value(&step.state).expect("state");
    sqlx::query(
        "INSERT INTO sagas (id, saga_type, business_key, state_name, state, terminal, version,
             created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
    )
    .bind(id)
    .bind(saga.saga_type())
    .bind(key)
    .bind(&state_name)
    .bind(Json(&state))
    .bind(saga.is_terminal(&step.state))
    .bind(version)
    .bind(at)
    .execute(&db.pool)
    .await
    .expect("saga row");
    let mut outgoing = Vec::new();
    for c in &step.commands {
        let metadata =
            Metadata::new(c.message_type, "hub/test").with_correlation_id(id.to_string());
        outgoing.push(metadata.message_id);
        sqlx::query(
            "INSERT INTO outbox (id, exchange, routing_key, metadata, body, created_at, sent_at, attempts)
             VALUES ($1, $2, $3, $4, $5, $6, $6, 1)",
        )
        .bind(metadata.message_id)
        .bind(format!("{}.bus", db.namespace))
        .bind(c.message_type.to_string())
        .bind(Json(&metadata))
        .bind(&c.body)
        .bind(at)
        .execute(&db.pool)
        .await
        .expect("outbox row");
    }
    sqlx::query(
        "INSERT INTO saga_history (saga_id, version, message_id, message_type, from_state, to_state, outgoing, at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id)
    .bind(version)
    .bind(Uuid::new_v4())
    .bind(message_type)
    .bind(None::<String>)
    .bind(&state_name)
    .bind(&outgoing)
    .bind(at)
    .execute(&db.pool)
    .await
    .expect("history row");
    for t in &step.timers {
        sqlx::query(
            "INSERT INTO timers (id, saga_id, name, due_at, exchange, routing_key, metadata, body)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(Uuid::new_v4())
        .bind(id)
        .bind(&t.name)
        .bind(at + t.after)
        .bind(format!("{}.requeue", db.namespace))
        .bind(format!("{}.saga.procedure", db.namespace))
        .bind(Json(Metadata::new(t.message.message_type, "hub/test")))
        .bind(&t.message.body)
        .execute(&db.pool)
        .await
        .expect("timer row");
    }
}

fn procedures(ns: &str) -> ProcedureSaga {
    ProcedureSaga::new(
        Arc::new(Catalogue::embedded().expect("catalogue")),
        Arc::new(Calendar::belarus().expect("calendar")),
        ProcedureSettings::default(),
        ns,
        "hub",
    )
}

fn ctx(meta: &Metadata) -> StepContext<'_> {
    StepContext {
        now: Utc::now(),
        saga_id: Uuid::nil(),
        message: meta,
        seed: rand::random(),
        prepared: None,
    }
}

/// A paid application that waits for its payment, submitted `minutes_ago`; returns its saga
/// id and ERIP order number.
async fn awaiting_payment(db: &Db, minutes_ago: i64) -> (Uuid, String) {
    let saga = procedures(&db.namespace);
    let application_id = Uuid::new_v4();
    let meta = Metadata::new("procedure.start.v1", "portal");
    let step = saga
        .transition(
            None,
            &Input::Submit(StartApplication {
                application_id,
                procedure_code: "5.13".into(),
                applicant: Applicant {
                    identifier: ID_NUMBER.into(),
                    assurance_level: AssuranceLevel::Substantial,
                },
                form: serde_json::json!({"record_kind": "birth", "record_year": 1990})
                    .as_object()
                    .cloned()
                    .expect("object"),
                attachments: vec![],
                delivery: Default::default(),
            }),
            &ctx(&meta),
        )
        .expect("submitted");
    let key = ProcedureSaga::key(application_id);
    let at = Utc::now() - chrono::Duration::minutes(minutes_ago);
    store(
        db,
        &saga,
        key.id,
        &application_id.to_string(),
        "procedure.start.v1",
        &step,
        at,
    )
    .await;
    (key.id, step.state.order_number.clone().expect("order"))
}

/// An application refused at once (unknown procedure): ended.
async fn rejected(db: &Db) -> Uuid {
    let saga = procedures(&db.namespace);
    let application_id = Uuid::new_v4();
    let meta = Metadata::new("procedure.start.v1", "portal");
    let step = saga
        .transition(
            None,
            &Input::Submit(StartApplication {
                application_id,
                procedure_code: "99.99".into(),
                applicant: Applicant {
                    identifier: ID_NUMBER.into(),
                    assurance_level: AssuranceLevel::Substantial,
                },
                form: serde_json::Map::new(),
                attachments: vec![],
                delivery: Default::default(),
            }),
            &ctx(&meta),
        )
        .expect("refused");
    assert!(saga.is_terminal(&step.state));
    let id = ProcedureSaga::key(application_id).id;
    store(
        db,
        &saga,
        id,
        &application_id.to_string(),
        "procedure.start.v1",
        &step,
        Utc::now(),
    )
    .await;
    id
}

/// A complaint waiting for the lookup of its application: a saga with no cancel hook.
async fn complaint(db: &Db) -> Uuid {
    let saga = ComplaintSaga::new(
        Arc::new(Catalogue::embedded().expect("catalogue")),
        &db.namespace,
        "hub",
    );
    let complaint_id = Uuid::new_v4();
    let meta = Metadata::new("complaint.start.v1", "portal");
    let step = saga
        .transition(
            None,
            &ComplaintInput::Submit(StartComplaint {
                complaint_id,
                application_id: Uuid::new_v4(),
                applicant: ID_NUMBER.into(),
                text: "the decision is wrong".into(),
                kind: Default::default(),
            }),
            &ctx(&meta),
        )
        .expect("submitted");
    let id = ComplaintSaga::key(complaint_id).id;
    store(
        db,
        &saga,
        id,
        &complaint_id.to_string(),
        "complaint.start.v1",
        &step,
        Utc::now(),
    )
    .await;
    id
}

async fn audit_count(db: &Db, action: &str, target: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM ops_audit WHERE action = $1 AND target = $2")
        .bind(action)
        .bind(target.to_string())
        .fetch_one(&db.pool)
        .await
        .expect("audit")
}

#[tokio::test]
async fn saga_list_and_show_filter_find_mask_and_say_when_nothing_or_several_match() {
    let db = Db::new().await;
    let (stuck, order) = awaiting_payment(&db, 20).await;
    let (fresh, _) = awaiting_payment(&db, 0).await;
    let ended = rejected(&db).await;

    let out = db.hub(&["saga", "list"], &[]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("BUSINESS KEY"),
        "{table}"
    );
    assert_eq!(lines.len(), 4, "{table}");
    for id in [stuck, fresh, ended] {
        assert!(table.contains(&id.to_string()), "{table}");
    }

    let out = db
        .hub(
            &[
                "saga",
                "list",
                "--type",
                "procedure",
                "--state",
                "awaiting_payment",
                "--json",
            ],
            &[],
        )
        .await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(rows.as_array().map(Vec::len), Some(2), "{rows}");

    let out = db
        .hub(
            &["saga", "list", "--stuck-longer-than", "10m", "--json"],
            &[],
        )
        .await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(rows[0]["id"], stuck.to_string(), "{rows}");
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "{rows}");

    let out = db.hub(&["saga", "list", "--terminal", "--json"], &[]).await;
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(rows[0]["state_name"], "rejected", "{rows}");
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "{rows}");

    let out = db.hub(&["saga", "list", "--type", "nothing"], &[]).await;
    assert_eq!(code(&out), 3, "{}", text(&out));
    let out = db
        .hub(&["saga", "list", "--terminal", "--active"], &[])
        .await;
    assert_eq!(code(&out), 2, "conflicting flags: {}", text(&out));

    // By the ERIP order number: state masked, the timeline with what went where.
    let out = db.hub(&["saga", "show", &order], &[]).await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains(&stuck.to_string()), "{shown}");
    assert!(shown.contains("timeline:"), "{shown}");
    assert!(
        shown.contains("procedure.start.v1") && shown.contains("(new) -> awaiting_payment"),
        "{shown}"
    );
    assert!(
        shown.contains(&format!(
            "out erip.create_invoice.v1  to {}.bus/erip.create_invoice.v1  sent",
            db.namespace
        )),
        "{shown}"
    );
    assert!(shown.contains("payment  due"), "the payment timer: {shown}");
    assert!(shown.contains("32**********B2"), "{shown}");
    assert!(!shown.contains(ID_NUMBER), "{shown}");

    // The identification number names all three: listed, exit 3.
    let out = db.hub(&["saga", "show", ID_NUMBER], &[]).await;
    assert_eq!(code(&out), 3, "{}", text(&out));
    let listed = String::from_utf8_lossy(&out.stdout);
    for id in [stuck, fresh, ended] {
        assert!(listed.contains(&id.to_string()), "{listed}");
    }
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("3 sagas match"),
        "{}",
        text(&out)
    );
    let out = db.hub(&["saga", "show", "no-such-saga"], &[]).await;
    assert_eq!(code(&out), 3, "{}", text(&out));

    // In the clear only for those allowed, and audited.
    let id = stuck.to_string();
    let out = db.hub(&["saga", "show", &id, "--unmask"], &[]).await;
    assert_eq!(code(&out), 77, "{}", text(&out));
    assert_eq!(audit_count(&db, "saga.show_unmasked", stuck).await, 0);
    let out = db
        .hub(
            &[
                "saga",
                "show",
                &id,
                "--unmask",
                "--json",
                "--operator",
                "ivanova",
            ],
            &[("HUB_OPS_UNMASK", "1")],
        )
        .await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    let detail: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(detail["state"]["applicant"], ID_NUMBER);
    assert_eq!(detail["masked"], false);
    assert_eq!(audit_count(&db, "saga.show_unmasked", stuck).await, 1);
}

#[tokio::test]
async fn saga_retry_step_and_cancel_write_the_outbox_and_the_audit_or_refuse() {
    let db = Db::new().await;
    let (stuck, _) = awaiting_payment(&db, 20).await;
    let ended = rejected(&db).await;
    let waiting = complaint(&db).await;
    let id = stuck.to_string();

    let out = db
        .hub(
            &[
                "saga",
                "retry-step",
                &id,
                "--reason",
                "ERIP is back",
                "--operator",
                "ivanova",
            ],
            &[],
        )
        .await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("requeued  erip.create_invoice.v1"), "{said}");
    let pending: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outbox WHERE sent_at IS NULL AND metadata->>'correlation_id' = $1",
    )
    .bind(&id)
    .fetch_one(&db.pool)
    .await
    .expect("outbox");
    assert_eq!(pending, 2, "both messages of the step go out again");
    assert_eq!(audit_count(&db, "saga.retry_step", stuck).await, 1);

    let out = db
        .hub(&["saga", "retry-step", &ended.to_string()], &[])
        .await;
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("has ended"),
        "{}",
        text(&out)
    );

    // A cancel needs a reason.
    let out = db.hub(&["saga", "cancel", &id], &[]).await;
    assert_eq!(code(&out), 2, "{}", text(&out));
    let out = db
        .hub(
            &[
                "saga",
                "cancel",
                &id,
                "--reason",
                "the person asked by phone",
                "--operator",
                "petrov",
            ],
            &[],
        )
        .await;
    assert_eq!(code(&out), 0, "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("it will end as cancelled"), "{said}");
    let (exchange, routing_key, body): (String, String, Vec<u8>) = sqlx::query_as(
        "SELECT exchange, routing_key, body FROM outbox
         WHERE metadata->>'message_type' = 'ops.cancel_saga.v1' AND metadata->>'correlation_id' = $1",
    )
    .bind(&id)
    .fetch_one(&db.pool)
    .await
    .expect("the cancel in the outbox");
    assert_eq!(exchange, format!("{}.requeue", db.namespace));
    assert_eq!(routing_key, format!("{}.saga.procedure", db.namespace));
    let body: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(body["reason"], "the person asked by phone");
    assert_eq!(body["operator"], "petrov");
    assert_eq!(audit_count(&db, "saga.cancel", stuck).await, 1);

    // An ended saga, and one whose type defines no cancel, are refused.
    let out = db
        .hub(
            &["saga", "cancel", &ended.to_string(), "--reason", "x"],
            &[],
        )
        .await;
    assert_eq!(code(&out), 1, "{}", text(&out));
    let out = db
        .hub(
            &["saga", "cancel", &waiting.to_string(), "--reason", "x"],
            &[],
        )
        .await;
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot be cancelled"),
        "{}",
        text(&out)
    );
    assert_eq!(audit_count(&db, "saga.cancel", waiting).await, 0);
}

#[tokio::test]
async fn saga_commands_say_when_the_database_is_unreachable() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hub"))
        .args(["saga", "list"])
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/hub")
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("the hub binary runs");
    assert_eq!(code(&out), 69, "{}", text(&out));
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hub"))
        .args(["saga", "cancel", "--help"])
        .output()
        .await
        .expect("the hub binary runs");
    assert_eq!(code(&out), 0);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Examples:\n  hub saga cancel"),
        "{}",
        text(&out)
    );
}
