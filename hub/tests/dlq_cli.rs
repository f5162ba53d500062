//! `hub dlq` as operators run it: the `hub` binary, its exit codes, and a list and a replay
//! against a scratch database and namespace on the local RabbitMQ and PostgreSQL (given to the
//! binary through `DATABASE_URL`, `AMQP_URL` and `HUB_NAMESPACE`, as in production).

use std::process::Output;
use std::time::Duration;

use contracts::{QueueSpec, RetryTier, Topology, headers};
use hub_lab::sandbox::{Sandbox, Servers};
use hub_runtime::broker::{self, Broker};
use hub_runtime::keeper;
use lapin::BasicProperties;
use lapin::options::{BasicAckOptions, BasicGetOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// `hub <args>` with `env` set and `HUB_OPS_UNMASK` unset.
async fn hub(args: &[&str], env: &[(&str, &str)]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_hub"))
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("HUB_OPS_UNMASK")
        .envs(env.iter().copied())
        .output()
        .await
        .expect("the hub binary runs")
}

#[track_caller]
fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Nothing listens at this address.
const NO_DATABASE: &str = "postgres://postgres@127.0.0.1:1/nothing";

#[tokio::test]
async fn usage_mistakes_and_refusals_exit_before_anything_is_touched() {
    let offline = [("DATABASE_URL", NO_DATABASE)];
    let out = hub(&["dlq", "discard", "5"], &offline).await;
    assert_exit(&out, 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--reason"));
    let out = hub(&["dlq", "discard", "5", "--reason", " "], &offline).await;
    assert_exit(&out, 2);
    let out = hub(&["dlq", "replay"], &offline).await;
    assert_exit(&out, 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--group"));
    let out = hub(&["dlq", "replay", "1", "--queue", "q"], &offline).await;
    assert_exit(&out, 2);
    let out = hub(&["dlq", "replay", "1", "--rate", "0"], &offline).await;
    assert_exit(&out, 2);
    let out = hub(&["dlq", "show", "5", "--unmask"], &offline).await;
    assert_exit(&out, 77);
    assert!(String::from_utf8_lossy(&out.stderr).contains("HUB_OPS_UNMASK=1"));
    let out = hub(&["dlq", "export", "--unmask"], &offline).await;
    assert_exit(&out, 77);
    // Allowed, it goes on to the database, which is not there.
    let out = hub(
        &["dlq", "show", "5", "--unmask"],
        &[("DATABASE_URL", NO_DATABASE), ("HUB_OPS_UNMASK", "1")],
    )
    .await;
    assert_exit(&out, 69);
    let out = hub(&["dlq", "list"], &offline).await;
    assert_exit(&out, 69);
    assert!(String::from_utf8_lossy(&out.stderr).contains("PostgreSQL"));
}

#[tokio::test]
async fn every_dlq_command_has_help_with_examples() {
    for command in ["list", "show", "replay", "discard", "export"] {
        let out = hub(&["dlq", command, "--help"], &[]).await;
        assert_exit(&out, 0);
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("Example"), "{command}: {help}");
        assert!(
            help.contains(&format!("hub dlq {command}")),
            "{command}: {help}"
        );
    }
    let out = hub(&["run", "--help"], &[]).await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("keeper"));
}

/// A scratch database and namespace, removed when dropped (also after a failure).
struct Scratch {
    sandbox: Sandbox,
    topology: Topology,
}

impl Scratch {
    fn new() -> Self {
        let sandbox = Sandbox::new(&Servers::for_tests(), "c", "hubcli")
            .expect("TEST_DATABASE_URL is a PostgreSQL URL");
        let topology = Topology::new(
            sandbox.namespace.clone(),
            vec![QueueSpec::new("probe", ["test.probe.v1"])],
            vec![RetryTier {
                delay: Duration::from_secs(1),
            }],
        )
        .expect("valid topology");
        sandbox.remember(&topology, DELIVERY_LIMIT);
        Self { sandbox, topology }
    }
}

/// The delivery limit the scratch topology is declared with.
const DELIVERY_LIMIT: u32 = 20;

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()))
}

#[tokio::test]
async fn list_and_replay_through_the_hub_binary() {
    let scratch = Scratch::new();
    let pool = hub_runtime::store::connect(
        &scratch.sandbox.database_url,
        2,
        &hub::migrator().expect("migrations"),
    )
    .await
    .expect("PostgreSQL is running");
    let token = CancellationToken::new();
    let broker = Broker::connect(
        &scratch.sandbox.servers().amqp_url,
        "dlq cli test",
        token.clone(),
    )
    .await
    .expect("RabbitMQ is running");
    let channel = broker.channel(&token).await.expect("channel");
    broker::declare(&channel, &scratch.topology, DELIVERY_LIMIT)
        .await
        .expect("declared");

    // A letter as the keeper keeps it: a probe that failed for good.
    let message_id = Uuid::new_v4();
    let mut h = FieldTable::default();
    h.insert(headers::ERROR_KIND.into(), text("permanent"));
    h.insert(headers::ERROR_TEXT.into(), text("probe refused"));
    h.insert(headers::ATTEMPTS.into(), AMQPValue::LongLongInt(1));
    h.insert(
        headers::LAST_FAILURE.into(),
        text("2026-03-01T10:00:00.000Z"),
    );
    h.insert(
        headers::ORIGINAL_EXCHANGE.into(),
        text(&scratch.topology.bus_exchange()),
    );
    h.insert(headers::ORIGINAL_ROUTING_KEY.into(), text("test.probe.v1"));
    h.insert(headers::TRACEPARENT.into(), text("00-abc-def-01"));
    let props = BasicProperties::default()
        .with_message_id(message_id.to_string().into())
        .with_type("test.probe.v1".into())
        .with_correlation_id("saga-probe".into())
        .with_headers(h);
    let letter = keeper::read_letter(
        &scratch.topology,
        &keeper::Source::Dead {
            short: "probe".into(),
        },
        &scratch.topology.dead_exchange(),
        &scratch.topology.work_queue("probe"),
        broker::properties_to_json(&props),
        br#"{"n":1,"phone":"+375291234567"}"#,
        chrono::Utc::now(),
    );
    let id = keeper::keep(&pool, &letter)
        .await
        .expect("kept")
        .expect("new");
    let env = scratch.sandbox.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let out = hub(&["dlq", "list", "--json"], &env).await;
    assert_exit(&out, 0);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(rows[0]["id"], id);
    assert_eq!(rows[0]["error"], "probe refused");
    let out = hub(&["dlq", "list"], &env).await;
    assert_exit(&out, 0);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("probe refused") && table.contains("saga-probe"),
        "{table}"
    );
    let out = hub(&["dlq", "show", &id.to_string()], &env).await;
    assert_exit(&out, 0);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("+375 29 ***-**-67") && !shown.contains("+375291234567"),
        "{shown}"
    );

    let out = hub(
        &["dlq", "replay", &id.to_string(), "--operator", "cli-test"],
        &env,
    )
    .await;
    assert_exit(&out, 0);
    assert!(String::from_utf8_lossy(&out.stdout).contains("replayed 1 dead letter"));

    // On the work queue: the same message, its failure headers gone, its replay marked.
    let queue = scratch.topology.work_queue("probe");
    let got = channel
        .basic_get(queue.as_str().into(), BasicGetOptions::default())
        .await
        .expect("basic.get")
        .expect("the replayed message is on the work queue");
    got.delivery
        .acker
        .ack(BasicAckOptions::default())
        .await
        .expect("ack");
    let p = &got.delivery.properties;
    assert_eq!(
        p.message_id().as_ref().map(|m| m.to_string()),
        Some(message_id.to_string())
    );
    assert_eq!(
        p.correlation_id()
            .as_ref()
            .map(|c| c.to_string())
            .as_deref(),
        Some("saga-probe")
    );
    assert_eq!(broker::header_u32(p, keeper::REPLAYED), Some(1));
    assert_eq!(
        broker::header_u32(p, keeper::DEAD_LETTER_ID).map(i64::from),
        Some(id)
    );
    assert_eq!(
        broker::header_str(p, headers::TRACEPARENT).as_deref(),
        Some("00-abc-def-01")
    );
    assert_eq!(broker::header_str(p, headers::ERROR_TEXT), None);
    assert_eq!(got.delivery.data, br#"{"n":1,"phone":"+375291234567"}"#);
    let (status, operator): (String, String) = sqlx::query_as(
        "SELECT d.status, a.operator FROM dead_letters d, ops_audit a
         WHERE d.id = $1 AND a.action = 'dlq.replay'",
    )
    .bind(id)
    .fetch_one(&pool)
    .await
    .expect("replayed and audited");
    assert_eq!(
        (status.as_str(), operator.as_str()),
        ("replayed", "cli-test")
    );

    // Nothing new is left.
    let out = hub(&["dlq", "list"], &env).await;
    assert_exit(&out, 3);
    let out = hub(&["dlq", "replay", "--all"], &env).await;
    assert_exit(&out, 3);

    let _ = channel.close(200, "done".into()).await;
    broker.close().await;
    token.cancel();
    pool.close().await;
}
