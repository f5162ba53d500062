//! Dead letters end to end: the keeper moves them from the broker into `dead_letters`, and
//! operators list, group, inspect, replay, discard and export them — through the library
//! (`hub_ops::dlq`, what the console calls) and through the real CLI (`dlq` of the tests'
//! ledger hub binary, the same command line as `hub`'s). Real RabbitMQ, real PostgreSQL, the
//! ledger test saga.

use std::process::Output;
use std::time::{Duration, Instant};

use base64::Engine as _;
use contracts::{Message, Metadata, Topology, headers};
use e2e::ledger::{self, Deposit, OpenAccount};
use e2e::{RunningHub, TestEnv, wait_until};
use hub_ops::dlq::{self, DeadLetter, Disclosure, DlqError, Filter, ReplayOptions, Selection};
use hub_runtime::app::Components;
use hub_runtime::broker::Envelope;
use hub_runtime::keeper;
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString};
use serde_json::Value;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(30);
const QUEUE: &str = ledger::QUEUE;
/// The broker user of the test's connection and of the hub it runs: `guest`.
const HUB_USER: &str = "guest";
const ID_NUMBER: &str = "3270287A012PB2";
const PHONE: &str = "+375291234567";

struct Bench {
    env: TestEnv,
    topology: Topology,
    hub: RunningHub,
}

/// The ledger saga in a hub with every component, the keeper among them.
async fn bench() -> Bench {
    let env = TestEnv::new().await;
    let topology = env.declare(vec![ledger::queue_spec()]).await;
    let hub = env.spawn_hub(Components::ALL, vec![ledger::registration()]);
    Bench { env, topology, hub }
}

async fn open(env: &TestEnv, account: &str) {
    env.send(&OpenAccount {
        account: account.into(),
        expire_after_ms: None,
    })
    .await;
    wait_until(WAIT, &format!("account {account} opened"), || {
        ledger::load(&env.pool, account)
    })
    .await;
}

/// A deposit; to an account that is not open it fails for good ("no such account").
async fn deposit(env: &TestEnv, account: &str, seq: u64) -> Metadata {
    env.send(&Deposit {
        account: account.into(),
        amount: 1,
        seq,
    })
    .await
}

/// Publishes `body` on the bus as a deposit, as it is (extra fields, bad JSON).
async fn raw_deposit(b: &Bench, body: &[u8]) -> Metadata {
    let metadata = Metadata::new(Deposit::TYPE.to_string(), "test");
    b.env
        .publisher
        .publish(&Envelope {
            exchange: b.topology.bus_exchange(),
            routing_key: Deposit::TYPE.to_string(),
            metadata: metadata.clone(),
            body: body.to_vec(),
        })
        .await
        .expect("published");
    metadata
}

fn ledger_filter() -> Filter {
    Filter {
        queue: Some(QUEUE.into()),
        ..Filter::default()
    }
}

fn options(rate: f64) -> ReplayOptions {
    ReplayOptions {
        rate,
        operator: "tester".into(),
        reason: Some("cause fixed".into()),
        include_replayed: false,
    }
}

/// `dlq <args>` of the ledger hub binary (the hub's own command line) against the test's
/// namespace and database, never allowed to unmask unless `extra` says so.
async fn cli(env: &TestEnv, args: &[&str], extra: &[(&str, &str)]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_ledger-hub"))
        .arg("dlq")
        .args(args)
        .envs(env.process_env())
        .env("RUST_LOG", "warn")
        .env_remove(dlq::UNMASK_VAR)
        .envs(extra.iter().copied())
        .output()
        .await
        .expect("the hub binary runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[track_caller]
fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "exit code; stdout:\n{}\nstderr:\n{}",
        stdout(out),
        stderr(out)
    );
}

/// Audit rows of `action`: operator, target, reason, details.
async fn audit(env: &TestEnv, action: &str) -> Vec<(String, String, Option<String>, Value)> {
    sqlx::query_as(
        "SELECT operator, target, reason, details FROM ops_audit WHERE action = $1 ORDER BY id",
    )
    .bind(action)
    .fetch_all(&env.pool)
    .await
    .expect("audit")
}

async fn status(env: &TestEnv, id: i64) -> (String, i32) {
    sqlx::query_as("SELECT status, replay_count FROM dead_letters WHERE id = $1")
        .bind(id)
        .fetch_one(&env.pool)
        .await
        .expect("dead letter")
}

/// Fails the test if more than `n` letters of `message_id` are kept at any time within
/// `window` (a replayed message must not loop).
async fn assert_stays(env: &TestEnv, message_id: Uuid, n: i64, window: Duration) {
    let end = Instant::now() + window;
    while Instant::now() < end {
        let kept: i64 =
            sqlx::query_scalar("SELECT count(*) FROM dead_letters WHERE message_id = $1")
                .bind(message_id)
                .fetch_one(&env.pool)
                .await
                .expect("count");
        assert_eq!(kept, n, "letters of message {message_id}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn failed_messages_are_kept_with_their_reasons_and_listed_by_filter_and_by_cause() {
    let b = bench().await;
    let env = &b.env;
    open(env, "erin").await;
    let not_json = raw_deposit(&b, b"{oops").await;
    let mut unknown = Vec::new();
    for (seq, account) in [(1, "nobody-1"), (2, "nobody-22")] {
        unknown.push(deposit(env, account, seq).await);
    }
    let in_saga = Metadata::new(Deposit::TYPE.to_string(), "test").with_correlation_id("saga-42");
    let deposit_333 = Deposit {
        account: "nobody-333".into(),
        amount: 1,
        seq: 3,
    };
    env.send_with(&deposit_333, in_saga.clone()).await;
    // A message no queue is bound for goes to the bus's alternate exchange.
    let nowhere = Metadata::new("test.nobody_listens.v1", "test");
    env.publisher
        .publish(&Envelope {
            exchange: b.topology.bus_exchange(),
            routing_key: "test.nobody_listens.v1".into(),
            metadata: nowhere.clone(),
            body: b"{}".to_vec(),
        })
        .await
        .expect("published");

    let letters = env.dead_letters(QUEUE, 4, WAIT).await;
    assert_eq!(letters.len(), 4, "each kept once");
    let by_id = |id: Uuid| -> &DeadLetter {
        letters
            .iter()
            .find(|l| l.message_id == Some(id))
            .unwrap_or_else(|| panic!("letter of {id}"))
    };
    let bad = by_id(not_json.message_id);
    assert_eq!(bad.error_kind, "invalid_input");
    assert!(
        bad.error.contains("not a valid test.deposit.v1 JSON"),
        "{}",
        bad.error
    );
    assert_eq!(bad.body, b"{oops");
    assert_eq!(bad.queue, QUEUE);
    assert_eq!(bad.original_exchange, b.topology.bus_exchange());
    assert_eq!(bad.original_routing_key, "test.deposit.v1");
    assert_eq!(bad.status, "new");
    assert!(bad.first_failure_at.is_some() && bad.last_failure_at.is_some());
    let failed = by_id(in_saga.message_id);
    assert_eq!(
        (failed.error_kind.as_str(), failed.error.as_str()),
        ("permanent", "no such account")
    );
    assert_eq!(failed.correlation_id.as_deref(), Some("saga-42"));
    assert_eq!(failed.message_type.as_deref(), Some("test.deposit.v1"));
    assert_eq!(
        failed.property("app_id").and_then(Value::as_str),
        Some("test")
    );
    // Events nobody here listens to (the account's opening) are unrouted too.
    let unrouted = wait_until(WAIT, "the unrouted message kept", || async {
        env.dead_letters(keeper::UNROUTED, 1, WAIT)
            .await
            .into_iter()
            .find(|l| l.message_id == Some(nowhere.message_id))
    })
    .await;
    assert_eq!(unrouted.error_kind, "unrouted");
    assert_eq!(unrouted.original_exchange, b.topology.bus_exchange());
    assert_eq!(unrouted.original_routing_key, "test.nobody_listens.v1");
    assert!(
        unrouted.error.contains("test.nobody_listens.v1"),
        "{}",
        unrouted.error
    );

    // Filters.
    let pool = &env.pool;
    let ids = |rows: Vec<dlq::Summary>| rows.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        dlq::list(pool, &ledger_filter()).await.expect("list").len(),
        4
    );
    let permanent = Filter {
        kind: Some("permanent".into()),
        ..ledger_filter()
    };
    assert_eq!(dlq::list(pool, &permanent).await.expect("list").len(), 3);
    let saga = Filter {
        saga: Some("saga-42".into()),
        ..Filter::default()
    };
    assert_eq!(
        ids(dlq::list(pool, &saga).await.expect("list")),
        vec![failed.id]
    );
    let nobody_type = Filter {
        message_type: Some("test.nobody*".into()),
        ..Filter::default()
    };
    assert_eq!(
        ids(dlq::list(pool, &nobody_type).await.expect("list")),
        vec![unrouted.id]
    );
    let any_test_type = Filter {
        message_type: Some("test.*".into()),
        ..ledger_filter()
    };
    assert_eq!(
        dlq::list(pool, &any_test_type).await.expect("list").len(),
        4
    );
    let exact_type = Filter {
        message_type: Some("test.deposit.v1".into()),
        ..Filter::default()
    };
    assert_eq!(dlq::list(pool, &exact_type).await.expect("list").len(), 4);
    let now = chrono::Utc::now();
    let future = Filter {
        since: Some(now + chrono::Duration::hours(1)),
        ..Filter::default()
    };
    assert!(dlq::list(pool, &future).await.expect("list").is_empty());
    let past = Filter {
        until: Some(now - chrono::Duration::hours(1)),
        ..Filter::default()
    };
    assert!(dlq::list(pool, &past).await.expect("list").is_empty());
    let recent = Filter {
        since: Some(now - chrono::Duration::hours(1)),
        limit: Some(2),
        ..ledger_filter()
    };
    assert_eq!(dlq::list(pool, &recent).await.expect("list").len(), 2);
    assert_eq!(dlq::count(pool, &recent).await.expect("count"), 4);
    let replayed = Filter {
        status: dlq::StatusFilter::Replayed,
        ..Filter::default()
    };
    assert!(dlq::list(pool, &replayed).await.expect("list").is_empty());

    // Causes: the three deposits to unknown accounts are one, whatever their ids.
    let groups = dlq::groups(pool, &ledger_filter()).await.expect("groups");
    assert_eq!(groups.len(), 2, "{groups:#?}");
    assert_eq!(groups[0].count, 3);
    assert_eq!(groups[0].error_kind, "permanent");
    assert_eq!(groups[0].cause, "no such account");
    assert!(groups[0].oldest <= groups[0].newest);
    let mut grouped: Vec<i64> = groups[0].ids.clone();
    grouped.sort_unstable();
    let mut expected = ids(dlq::list(pool, &permanent).await.expect("list"));
    expected.sort_unstable();
    assert_eq!(grouped, expected);
    assert!(groups[1..].iter().all(|g| g.count == 1));

    // The same through the command line.
    let out = cli(env, &["list", "--queue", QUEUE, "--json"], &[]).await;
    assert_exit(&out, 0);
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).expect("JSON list");
    assert_eq!(rows.len(), 4);
    let out = cli(env, &["list", "--kind", "permanent"], &[]).await;
    assert_exit(&out, 0);
    let table = stdout(&out);
    assert!(table.starts_with("ID "), "{table}");
    assert_eq!(
        table.lines().count(),
        4,
        "a header and three rows:\n{table}"
    );
    assert!(
        table.contains("no such account") && table.contains("saga-42"),
        "{table}"
    );
    // A full queue name is taken too.
    let full = b.topology.dead_queue(QUEUE);
    let out = cli(env, &["list", "--queue", &full, "--json"], &[]).await;
    assert_exit(&out, 0);
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).expect("JSON list");
    assert_eq!(rows.len(), 4);
    let out = cli(env, &["list", "--group", "--queue", QUEUE, "--json"], &[]).await;
    assert_exit(&out, 0);
    let cli_groups: Vec<Value> = serde_json::from_slice(&out.stdout).expect("JSON groups");
    assert_eq!(cli_groups.len(), 2);
    assert_eq!(cli_groups[0]["key"], groups[0].key);
    assert_eq!(cli_groups[0]["count"], 3);
    let out = cli(env, &["list", "--group"], &[]).await;
    assert_exit(&out, 0);
    assert!(stdout(&out).contains(&groups[0].key), "{}", stdout(&out));
    let out = cli(env, &["list", "--kind", "no_such_kind"], &[]).await;
    assert_exit(&out, 3);
    let out = cli(env, &["list", "--since", "soon"], &[]).await;
    assert_exit(&out, 2);
    b.hub.stop().await;
}

#[tokio::test]
async fn show_masks_personal_data_and_only_the_allowed_operator_unmasks_it_audited() {
    let b = bench().await;
    let env = &b.env;
    // Readers ignore unknown fields: the deposit decodes, and fails for its unknown account.
    let body = serde_json::json!({
        "account": "nobody",
        "amount": 1,
        "seq": 1,
        "identification_number": ID_NUMBER,
        "phone": PHONE,
        "surname": "Иванова",
        "note": format!("holder {ID_NUMBER}"),
    });
    raw_deposit(&b, body.to_string().as_bytes()).await;
    let id = env.dead_letters(QUEUE, 1, WAIT).await[0].id;

    let view = dlq::show(&env.pool, id, Disclosure::Masked, HUB_USER)
        .await
        .expect("show");
    let shown = view.body_json.clone().expect("JSON body");
    assert_eq!(shown["identification_number"], "32**********B2");
    assert_eq!(shown["phone"], "+375 29 ***-**-67");
    assert_eq!(shown["surname"], "И******");
    assert_eq!(shown["note"], "holder 32**********B2");
    assert_eq!(shown["account"], "nobody");
    let all = serde_json::to_string(&view).expect("JSON");
    assert!(
        !all.contains(ID_NUMBER) && !all.contains("1234567") && !all.contains("Иванова"),
        "{all}"
    );
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(
            serde_json::to_value(&view).expect("JSON")["body"]
                .as_str()
                .expect("base64"),
        )
        .expect("base64");
    assert!(!String::from_utf8_lossy(&decoded).contains(ID_NUMBER));
    assert!(view.masked && view.replayable);

    let out = cli(env, &["show", &id.to_string()], &[]).await;
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert!(
        text.contains("32**********B2") && text.contains("+375 29 ***-**-67"),
        "{text}"
    );
    assert!(!text.contains(ID_NUMBER) && !text.contains(PHONE), "{text}");
    assert!(
        text.contains("no such account") && text.contains("headers"),
        "{text}"
    );

    // Not allowed: refused, and nothing disclosed or audited.
    let out = cli(env, &["show", &id.to_string(), "--unmask"], &[]).await;
    assert_exit(&out, 77);
    assert!(
        stderr(&out).contains("HUB_OPS_UNMASK=1"),
        "{}",
        stderr(&out)
    );
    assert!(!stdout(&out).contains(ID_NUMBER));
    let out = cli(
        env,
        &["show", &id.to_string(), "--unmask"],
        &[(dlq::UNMASK_VAR, "yes")],
    )
    .await;
    assert_exit(&out, 77);
    assert!(audit(env, "dlq.show_unmasked").await.is_empty());

    // Allowed: in the clear, and audited.
    let out = cli(
        env,
        &[
            "show",
            &id.to_string(),
            "--unmask",
            "--operator",
            "ivanova",
            "--json",
        ],
        &[(dlq::UNMASK_VAR, "1")],
    )
    .await;
    assert_exit(&out, 0);
    let clear: Value = serde_json::from_slice(&out.stdout).expect("JSON view");
    assert_eq!(clear["body_json"]["identification_number"], ID_NUMBER);
    assert_eq!(clear["body_json"]["phone"], PHONE);
    assert_eq!(clear["body_json"]["surname"], "Иванова");
    assert_eq!(clear["masked"], false);
    let rows = audit(env, "dlq.show_unmasked").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].0.as_str(), rows[0].1.as_str()),
        ("ivanova", id.to_string().as_str())
    );

    let out = cli(env, &["show", "999999"], &[]).await;
    assert_exit(&out, 3);
    b.hub.stop().await;
}

#[tokio::test]
async fn a_replayed_letter_whose_cause_was_fixed_completes_the_saga_and_is_audited() {
    let b = bench().await;
    let env = &b.env;
    // The deposit comes before its account is open: it fails for good.
    let sent = deposit(env, "frank", 1).await;
    let letter = env.dead_letters(QUEUE, 1, WAIT).await.remove(0);
    assert_eq!(letter.message_id, Some(sent.message_id));
    assert_eq!(letter.error, "no such account");
    // The cause goes away.
    open(env, "frank").await;

    let out = cli(
        env,
        &[
            "replay",
            &letter.id.to_string(),
            "--reason",
            "account opened",
            "--operator",
            "tester",
            "--json",
        ],
        &[],
    )
    .await;
    assert_exit(&out, 0);
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["replayed"], serde_json::json!([letter.id]));

    ledger::wait_for_every_deposit_once(&env.pool, "frank", 1, false, WAIT).await;
    // The receiver saw the original message id (its inbox keeps the replay idempotent).
    let handled: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox WHERE message_id = $1")
        .bind(sent.message_id)
        .fetch_one(&env.pool)
        .await
        .expect("inbox");
    assert_eq!(handled, 1);
    assert_eq!(status(env, letter.id).await, ("replayed".to_owned(), 1));
    let rows = audit(env, "dlq.replay").await;
    assert_eq!(rows.len(), 1, "one audit row for the run");
    let (operator, target, reason, details) = &rows[0];
    assert_eq!(operator, "tester");
    assert_eq!(target, &format!("ids {}", letter.id));
    assert_eq!(reason.as_deref(), Some("account opened"));
    assert_eq!(details["replayed"], serde_json::json!([letter.id]));
    assert_stays(env, sent.message_id, 1, Duration::from_secs(1)).await;

    // Replaying it again by id is the operator's explicit choice: the inbox skips the copy.
    let again = dlq::replay(
        &env.pool,
        &env.publisher,
        HUB_USER,
        &Selection::Ids(vec![letter.id]),
        &options(10.0),
        &mut |_, _| {},
    )
    .await
    .expect("replay");
    assert_eq!(again.replayed, vec![letter.id]);
    assert_eq!(status(env, letter.id).await, ("replayed".to_owned(), 2));
    assert_stays(env, sent.message_id, 1, Duration::from_secs(1)).await;
    let (state, _) = ledger::load(&env.pool, "frank").await.expect("saga");
    assert_eq!(state.applied, vec![1], "applied once");
    b.hub.stop().await;
}

#[tokio::test]
async fn a_replayed_message_that_fails_again_comes_back_once_and_is_not_replayed_again() {
    let b = bench().await;
    let env = &b.env;
    let mut metadata =
        Metadata::new(Deposit::TYPE.to_string(), "test").with_correlation_id("saga-ghost");
    metadata.traceparent = Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into());
    let ghost = Deposit {
        account: "ghost".into(),
        amount: 1,
        seq: 1,
    };
    env.send_with(&ghost, metadata.clone()).await;
    let first = env.dead_letters(QUEUE, 1, WAIT).await.remove(0);

    // The account never opens: the replay fails again.
    let report = dlq::replay(
        &env.pool,
        &env.publisher,
        HUB_USER,
        &Selection::Ids(vec![first.id]),
        &options(10.0),
        &mut |_, _| {},
    )
    .await
    .expect("replay");
    assert_eq!(report.replayed, vec![first.id]);
    let letters = env.dead_letters(QUEUE, 2, WAIT).await;
    let second = &letters[1];
    assert_eq!(second.message_id, Some(metadata.message_id), "same message");
    assert_eq!(second.correlation_id.as_deref(), Some("saga-ghost"));
    assert_eq!(
        second.header_str(headers::TRACEPARENT),
        metadata.traceparent,
        "the trace goes on"
    );
    assert_eq!(
        second.attempts, 1,
        "the old failure's headers were not replayed"
    );
    assert_eq!(second.replayed_before, 1);
    assert_eq!(second.replayed_from, Some(first.id));
    assert_eq!(second.header_i64(keeper::REPLAYED), Some(1));
    assert_eq!(second.header_i64(keeper::DEAD_LETTER_ID), Some(first.id));
    assert_eq!(second.status, "new");
    assert_eq!(status(env, first.id).await, ("replayed".to_owned(), 1));
    let summary = dlq::list(&env.pool, &ledger_filter())
        .await
        .expect("list")
        .into_iter()
        .find(|s| s.id == second.id)
        .expect("listed");
    assert!(
        summary
            .flags()
            .iter()
            .any(|f| f.contains("failed again after 1 replay")),
        "{:?}",
        summary.flags()
    );

    // Nothing replays it by itself: exactly one new letter, for good.
    assert_stays(env, metadata.message_id, 2, Duration::from_secs(3)).await;

    // A replay by filter leaves it alone, and says why.
    let by_filter = dlq::replay(
        &env.pool,
        &env.publisher,
        HUB_USER,
        &Selection::Filter(ledger_filter()),
        &options(10.0),
        &mut |_, _| {},
    )
    .await
    .expect("replay");
    assert!(by_filter.replayed.is_empty());
    assert_eq!(by_filter.skipped.len(), 1);
    assert_eq!(by_filter.skipped[0].id, second.id);
    assert!(
        by_filter.skipped[0].reason.contains("failed again"),
        "{:?}",
        by_filter.skipped
    );
    let out = cli(env, &["replay", "--queue", QUEUE], &[]).await;
    assert_exit(&out, 1);
    assert!(stdout(&out).contains("failed again"), "{}", stdout(&out));
    assert_stays(env, metadata.message_id, 2, Duration::from_secs(1)).await;
    // Unless asked.
    let plan = dlq::plan_replay(
        &env.pool,
        HUB_USER,
        &Selection::Filter(ledger_filter()),
        true,
    )
    .await
    .expect("plan");
    assert_eq!(
        plan.replay.iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![second.id]
    );
    assert_eq!(plan.replay[0].replays_so_far, 1);
    b.hub.stop().await;
}

#[tokio::test]
async fn a_replay_at_five_a_second_spreads_ten_letters_over_at_least_1_8_seconds() {
    let b = bench().await;
    let env = &b.env;
    for seq in 1..=10 {
        deposit(env, "late", seq).await;
    }
    env.dead_letters(QUEUE, 10, WAIT).await;
    open(env, "late").await;

    let mut calls = Vec::new();
    let started = Instant::now();
    let report = dlq::replay(
        &env.pool,
        &env.publisher,
        HUB_USER,
        &Selection::Filter(ledger_filter()),
        &options(5.0),
        &mut |done, total| calls.push((done, total)),
    )
    .await
    .expect("replay");
    let elapsed = started.elapsed();
    eprintln!("10 letters at 5/s took {elapsed:?}");
    assert_eq!(report.replayed.len(), 10);
    assert!(report.failed.is_empty() && report.skipped.is_empty());
    // A rate limit is behaviour, not speed: only a lower bound (9 intervals of 200 ms).
    assert!(elapsed >= Duration::from_millis(1800), "{elapsed:?}");
    assert!(report.elapsed_ms >= 1800, "{}", report.elapsed_ms);
    assert_eq!(calls.len(), 10);
    assert_eq!(calls.last(), Some(&(10, 10)));
    ledger::wait_for_every_deposit_once(&env.pool, "late", 10, false, WAIT).await;
    let rows = audit(env, "dlq.replay").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].3["rate"], 5.0);
    assert_eq!(rows[0].3["replayed"].as_array().map(Vec::len), Some(10));
    b.hub.stop().await;
}

#[tokio::test]
async fn a_dry_run_changes_nothing_and_a_discard_needs_a_reason() {
    let b = bench().await;
    let env = &b.env;
    let one = deposit(env, "nobody", 1).await;
    deposit(env, "nobody", 2).await;
    let letters = env.dead_letters(QUEUE, 2, WAIT).await;
    let (a, z) = (letters[0].id, letters[1].id);

    let out = cli(env, &["replay", "--all", "--dry-run", "--json"], &[]).await;
    assert_exit(&out, 0);
    let plan: Value = serde_json::from_slice(&out.stdout).expect("JSON plan");
    assert_eq!(plan["replay"].as_array().map(Vec::len), Some(2));
    let out = cli(env, &["replay", "--queue", QUEUE, "--dry-run"], &[]).await;
    assert_exit(&out, 0);
    assert!(stdout(&out).contains("dry run"), "{}", stdout(&out));
    assert_stays(env, one.message_id, 1, Duration::from_secs(1)).await;
    for id in [a, z] {
        assert_eq!(status(env, id).await, ("new".to_owned(), 0), "unchanged");
    }
    assert!(
        audit(env, "dlq.replay").await.is_empty(),
        "a dry run is not an action"
    );

    // No reason, no discard.
    let out = cli(env, &["discard", &a.to_string()], &[]).await;
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("--reason"), "{}", stderr(&out));
    let out = cli(env, &["discard", &a.to_string(), "--reason", "  "], &[]).await;
    assert_exit(&out, 2);
    let refused = dlq::discard(&env.pool, &Selection::Ids(vec![a]), "", "tester").await;
    assert!(matches!(refused, Err(DlqError::BadUsage(_))), "{refused:?}");
    assert_eq!(status(env, a).await.0, "new");
    assert!(audit(env, "dlq.discard").await.is_empty());

    let out = cli(
        env,
        &[
            "discard",
            &a.to_string(),
            "--reason",
            "test traffic",
            "--operator",
            "tester",
        ],
        &[],
    )
    .await;
    assert_exit(&out, 0);
    assert_eq!(status(env, a).await.0, "discarded");
    let reason: Option<String> =
        sqlx::query_scalar("SELECT discard_reason FROM dead_letters WHERE id = $1")
            .bind(a)
            .fetch_one(&env.pool)
            .await
            .expect("reason");
    assert_eq!(reason.as_deref(), Some("test traffic"));
    let rows = audit(env, "dlq.discard").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, "tester");
    assert_eq!(rows[0].2.as_deref(), Some("test traffic"));
    assert_eq!(rows[0].3["discarded"], serde_json::json!([a]));

    // A discarded letter is not replayed, even by id; usage and empty selections say so.
    let out = cli(env, &["replay", &a.to_string()], &[]).await;
    assert_exit(&out, 1);
    assert!(stdout(&out).contains("discarded"), "{}", stdout(&out));
    assert_eq!(status(env, a).await.0, "discarded");
    let out = cli(env, &["replay"], &[]).await;
    assert_exit(&out, 2);
    let out = cli(env, &["replay", "--kind", "no_such_kind"], &[]).await;
    assert_exit(&out, 3);
    let out = cli(
        env,
        &["discard", "--kind", "no_such_kind", "--reason", "x"],
        &[],
    )
    .await;
    assert_exit(&out, 3);
    // By group: the other letter (same cause) only, since the discarded one is not new.
    let key = dlq::groups(&env.pool, &ledger_filter())
        .await
        .expect("groups")[0]
        .key
        .clone();
    let out = cli(
        env,
        &["discard", "--group", &key, "--reason", "same cause"],
        &[],
    )
    .await;
    assert_exit(&out, 0);
    assert_eq!(status(env, z).await.0, "discarded");
    b.hub.stop().await;
}

#[tokio::test]
async fn export_writes_one_json_line_per_letter_masked_unless_allowed() {
    let b = bench().await;
    let env = &b.env;
    raw_deposit(&b, b"{oops").await;
    let body = serde_json::json!({"account": "nobody", "amount": 1, "seq": 1, "phone": PHONE});
    raw_deposit(&b, body.to_string().as_bytes()).await;
    deposit(env, "nobody", 2).await;
    env.dead_letters(QUEUE, 3, WAIT).await;

    let out = cli(env, &["export"], &[]).await;
    assert_exit(&out, 0);
    let text = stdout(&out);
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(!text.contains(PHONE) && !text.contains("1234567"), "{text}");
    for line in &lines {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(line["body"].as_str().expect("body"))
            .expect("base64");
        match line.get("body_json") {
            Some(json) => assert_eq!(
                &serde_json::from_slice::<Value>(&bytes).expect("JSON"),
                json
            ),
            None => assert_eq!(bytes, b"{oops"),
        }
        assert_eq!(line["masked"], true);
    }
    assert!(
        lines
            .iter()
            .any(|l| l["body_json"]["phone"] == "+375 29 ***-**-67")
    );

    let out = cli(env, &["export", "--unmask"], &[]).await;
    assert_exit(&out, 77);
    assert!(stdout(&out).is_empty());
    let out = cli(
        env,
        &["export", "--unmask", "--operator", "ivanova"],
        &[(dlq::UNMASK_VAR, "1")],
    )
    .await;
    assert_exit(&out, 0);
    assert!(stdout(&out).contains(PHONE));
    assert_eq!(stdout(&out).lines().count(), 3);
    let rows = audit(env, "dlq.export_unmasked").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, "ivanova");
    assert_eq!(rows[0].3["letters"], 3);

    // The library writes the same lines.
    let mut buf = Vec::new();
    let n = dlq::export(
        &env.pool,
        &Filter {
            status: dlq::StatusFilter::All,
            ..Filter::default()
        },
        Disclosure::Masked,
        HUB_USER,
        &mut buf,
    )
    .await
    .expect("export");
    assert_eq!(n, 3);
    assert_eq!(String::from_utf8_lossy(&buf).lines().count(), 3);
    b.hub.stop().await;
}

fn long_string(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()))
}

#[tokio::test]
async fn the_keeper_keeps_a_redelivered_letter_once_and_a_malformed_one_with_what_is_known() {
    let b = bench().await;
    let env = &b.env;
    let dead = b.topology.dead_exchange();
    let work = b.topology.work_queue(QUEUE);
    let mut h = FieldTable::default();
    for (k, v) in [
        (headers::ERROR_KIND, "permanent"),
        (headers::ERROR_TEXT, "no such account"),
        (headers::LAST_FAILURE, "2026-03-01T10:00:05.000Z"),
        (headers::FIRST_FAILURE, "2026-03-01T10:00:05.000Z"),
        (
            headers::ORIGINAL_EXCHANGE,
            b.topology.bus_exchange().as_str(),
        ),
        (headers::ORIGINAL_ROUTING_KEY, "test.deposit.v1"),
    ] {
        h.insert(k.into(), long_string(v));
    }
    let id = Uuid::new_v4();
    let props = BasicProperties::default()
        .with_message_id(id.to_string().into())
        .with_type("test.deposit.v1".into())
        .with_headers(h.clone());
    let body = br#"{"account":"x","amount":1,"seq":1}"#;
    // The same letter twice, the second as a redelivery carries it (a crash before the ack).
    let mut redelivered = h;
    redelivered.insert("x-delivery-count".into(), AMQPValue::LongLongInt(1));
    for p in [props.clone(), props.with_headers(redelivered)] {
        env.publisher
            .publish_raw(&dead, &work, p, body)
            .await
            .expect("published");
    }
    // A letter with nothing the hub would write: no id, no type, no header.
    env.publisher
        .publish_raw(&dead, &work, BasicProperties::default(), b"\x00\x01 binary")
        .await
        .expect("published");
    // One queue is kept in order: once the last is kept, the copy was seen.
    let letters = wait_until(WAIT, "the malformed letter kept", || async {
        let letters = dlq::get_many(
            &env.pool,
            &sqlx::query_scalar::<_, i64>("SELECT id FROM dead_letters ORDER BY id")
                .fetch_all(&env.pool)
                .await
                .expect("ids"),
        )
        .await
        .expect("letters");
        letters
            .iter()
            .any(|l| l.message_id.is_none())
            .then_some(letters)
    })
    .await;
    assert_eq!(letters.len(), 2, "the redelivery was not kept twice");
    let kept = &letters[0];
    assert_eq!(kept.message_id, Some(id));
    assert_eq!(kept.error, "no such account");
    assert_eq!(
        kept.last_failure_at.map(|t| t.to_rfc3339()),
        Some("2026-03-01T10:00:05+00:00".to_owned())
    );
    let malformed = &letters[1];
    assert_eq!(
        (malformed.message_type.as_deref(), malformed.queue.as_str()),
        (None, QUEUE)
    );
    assert_eq!(malformed.error_kind, "unknown");
    assert_eq!(malformed.body, b"\x00\x01 binary");
    let view = dlq::view(malformed, Disclosure::Masked, HUB_USER);
    assert!(!view.replayable);
    assert!(
        view.not_replayable
            .is_some_and(|r| r.contains("no message id"))
    );

    // A message another broker user published, kept as the broker dead-lettered it.
    let foreign = BasicProperties::default()
        .with_message_id(Uuid::new_v4().to_string().into())
        .with_type("procedure.authority_decided.v1".into())
        .with_user_id("authority-fszn".into());
    let letter = keeper::read_letter(
        &b.topology,
        &keeper::Source::Dead {
            short: QUEUE.into(),
        },
        &dead,
        &work,
        hub_runtime::broker::properties_to_json(&foreign),
        b"{}",
        chrono::Utc::now(),
    );
    let foreign_id = keeper::keep(&env.pool, &letter)
        .await
        .expect("kept")
        .expect("new");
    assert_eq!(
        keeper::keep(&env.pool, &letter).await.expect("kept"),
        None,
        "idempotent"
    );
    // The hub replays it as itself, naming the broker user that published it as the sender
    // (the consumer judges it as that user's); a dry run says so and changes nothing.
    let plan = dlq::plan_replay(
        &env.pool,
        HUB_USER,
        &Selection::Ids(vec![foreign_id, 999_999]),
        false,
    )
    .await
    .expect("plan");
    let planned: Vec<(i64, Option<&str>)> = plan
        .replay
        .iter()
        .map(|p| (p.id, p.sender.as_deref()))
        .collect();
    assert_eq!(planned, [(foreign_id, Some("authority-fszn"))]);
    let reasons: Vec<(i64, &str)> = plan
        .skipped
        .iter()
        .map(|s| (s.id, s.reason.as_str()))
        .collect();
    assert_eq!(reasons, [(999_999, "no such dead letter")]);
    assert_eq!(status(env, foreign_id).await.0, "new");
    b.hub.stop().await;
}

/// The letter kept of the message with id `id`, once the keeper has stored it.
async fn kept(env: &TestEnv, id: Uuid) -> DeadLetter {
    let row = wait_until(WAIT, &format!("letter of {id} kept"), || async {
        sqlx::query_scalar::<_, i64>("SELECT id FROM dead_letters WHERE message_id = $1")
            .bind(id)
            .fetch_optional(&env.pool)
            .await
            .expect("query")
    })
    .await;
    dlq::get(&env.pool, row)
        .await
        .expect("get")
        .expect("the letter")
}

/// Everything a kept letter stores as text: the row's error, properties and body.
fn stored(letter: &DeadLetter) -> String {
    format!(
        "{} {} {}",
        letter.error,
        letter.properties,
        String::from_utf8_lossy(&letter.body)
    )
}

#[tokio::test]
async fn no_secret_and_no_value_of_a_bad_body_is_kept_in_a_dead_letter() {
    let b = bench().await;
    let env = &b.env;

    // A value of the wrong type (a number where the contract has text): the decode error names
    // the field and the kind of error, not the value.
    let bad = raw_deposit(&b, br#"{"account":987654321,"amount":1,"seq":1}"#).await;
    let letter = kept(env, bad.message_id).await;
    assert_eq!(letter.error_kind, "invalid_input");
    assert!(
        letter.error.contains("field account") && letter.error.contains("wrong type"),
        "{}",
        letter.error
    );
    assert!(!letter.error.contains("987654321"), "{}", letter.error);
    assert!(
        !letter
            .header_str(headers::ERROR_TEXT)
            .unwrap_or_default()
            .contains("987654321")
    );

    // A login nobody here consumes is unrouted: the keeper keeps it without the password.
    let login = Uuid::new_v4();
    env.publisher
        .publish_raw(
            &b.topology.bus_exchange(),
            "cabinet.login.v1",
            BasicProperties::default()
                .with_message_id(login.to_string().into())
                .with_type("cabinet.login.v1".into()),
            format!(r#"{{"identifier":"{ID_NUMBER}","password":"Xy3kLmNpQr"}}"#).as_bytes(),
        )
        .await
        .expect("published");
    let letter = kept(env, login).await;
    assert_eq!(letter.error_kind, "unrouted");
    assert!(
        !stored(&letter).contains("Xy3kLmNpQr"),
        "{}",
        stored(&letter)
    );
    assert_eq!(
        letter.body_json().map(|j| j["identifier"].clone()),
        Some(ID_NUMBER.into()),
        "the rest of the body stays for the operators"
    );
    assert!(letter.is_redacted());
    let view = dlq::view(&letter, Disclosure::Masked, HUB_USER);
    assert!(
        !view.replayable,
        "a body without its secret is not replayed"
    );

    // A code (a JSON number) the broker dead-lettered itself (delivery limit): the consumer
    // never redacted it, the keeper does.
    let code = Uuid::new_v4();
    let mut death = FieldTable::default();
    death.insert("queue".into(), long_string(&b.topology.work_queue(QUEUE)));
    death.insert("reason".into(), long_string("delivery_limit"));
    let mut h = FieldTable::default();
    h.insert(
        "x-death".into(),
        AMQPValue::FieldArray(vec![AMQPValue::FieldTable(death)].into()),
    );
    env.publisher
        .publish_raw(
            &b.topology.dead_exchange(),
            &b.topology.work_queue(QUEUE),
            BasicProperties::default()
                .with_message_id(code.to_string().into())
                .with_type("identifier.confirm_phone.v1".into())
                .with_headers(h),
            br#"{"desk_id":"desk-1","application_number":"7","code":123456}"#,
        )
        .await
        .expect("published");
    let letter = kept(env, code).await;
    assert_eq!(letter.error_kind, "delivery_limit");
    assert!(!stored(&letter).contains("123456"), "{}", stored(&letter));
    assert!(letter.is_redacted());
    b.hub.stop().await;
}
