//! The saga engine against the real RabbitMQ and PostgreSQL: state, history, outbox, inbox,
//! dead letters, and concurrent engines.

use std::time::Duration;

use contracts::{Message, Metadata, headers};
use e2e::harness::queue_depth;
use e2e::ledger::{self, AccountOpened, Deposit, Deposited, Ledger, OpenAccount};
use e2e::{TestEnv, wait_until};
use hub_ops::dlq::DeadLetter;
use hub_runtime::app::Components;
use hub_runtime::broker::Envelope;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(30);

/// One row of `saga_history`.
#[derive(Debug, sqlx::FromRow)]
struct HistoryRow {
    version: i64,
    message_id: Uuid,
    message_type: String,
    from_state: Option<String>,
    to_state: String,
    outgoing: Vec<Uuid>,
}

fn events() -> Vec<String> {
    vec![AccountOpened::TYPE.to_string(), Deposited::TYPE.to_string()]
}

async fn account(env: &TestEnv, name: &str) -> Option<(ledger::Account, i64)> {
    ledger::load(&env.pool, name).await
}

async fn wait_for_applied(env: &TestEnv, name: &str, n: usize) -> (ledger::Account, i64) {
    wait_until(WAIT, &format!("{n} deposits applied to {name}"), || async {
        account(env, name)
            .await
            .filter(|(a, _)| a.applied.len() >= n)
    })
    .await
}

#[tokio::test]
async fn a_message_changes_state_writes_history_and_its_events_are_published_once() {
    let env = TestEnv::new().await;
    env.declare(vec![ledger::queue_spec()]).await;
    let observer = env.observe("observe", &events()).await;
    let hub = env.spawn_hub(Components::ALL, vec![ledger::registration()]);

    let open = env
        .send(&OpenAccount {
            account: "alice".into(),
            expire_after_ms: None,
        })
        .await;
    wait_until(WAIT, "the account saga", || account(&env, "alice")).await;
    let deposits = [(1, 500), (2, 250)];
    let mut sent = Vec::new();
    // One after the other, so that the history's order is known (concurrent deposits are the
    // subject of the two-engines test).
    for (seq, amount) in deposits {
        sent.push(
            env.send(&Deposit {
                account: "alice".into(),
                amount,
                seq,
            })
            .await,
        );
        wait_for_applied(&env, "alice", seq as usize).await;
    }
    let (state, version) = wait_for_applied(&env, "alice", 2).await;
    assert_eq!(state.balance, 750);
    assert_eq!(state.applied, vec![1, 2]);
    assert_eq!(version, 3);

    let history: Vec<HistoryRow> = sqlx::query_as(
        "SELECT version, message_id, message_type, from_state, to_state, outgoing FROM saga_history
         WHERE saga_id = $1 ORDER BY version",
    )
    .bind(Ledger::key("alice").id)
    .fetch_all(&env.pool)
    .await
    .expect("history");
    assert_eq!(
        history.iter().map(|h| h.version).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(history[0].message_id, open.message_id);
    assert_eq!(
        history[0].from_state, None,
        "the first step creates the saga"
    );
    assert_eq!(history[1].message_id, sent[0].message_id);
    assert_eq!(history[2].message_id, sent[1].message_id);
    assert_eq!(history[2].message_type, "test.deposit.v1");
    assert!(history.iter().all(|h| h.to_state == "open"));
    for change in [
        "UPDATE saga_history SET to_state = 'x'",
        "DELETE FROM saga_history",
    ] {
        let refused = sqlx::query(change).execute(&env.pool).await;
        assert!(
            refused.is_err(),
            "the history is append-only: {change} was allowed"
        );
    }
    assert!(
        history.iter().all(|h| h.outgoing.len() == 1),
        "each step sent one event"
    );

    // Every event arrives, in the saga's correlation, caused by the message that made it.
    let got = observer.take(3, WAIT).await;
    let outgoing: Vec<Uuid> = history.iter().map(|h| h.outgoing[0]).collect();
    let mut got_ids: Vec<Uuid> = got.iter().map(|m| m.metadata.message_id).collect();
    got_ids.sort();
    let mut want = outgoing.clone();
    want.sort();
    assert_eq!(got_ids, want);
    let saga_id = Ledger::key("alice").id.to_string();
    assert!(
        got.iter()
            .all(|m| m.metadata.correlation_id.as_deref() == Some(saga_id.as_str()))
    );
    let last = got
        .iter()
        .find(|m| m.metadata.message_type == "test.deposited.v1" && m.body["seq"] == 2);
    assert_eq!(
        last.map(|m| m.metadata.causation_id),
        Some(Some(sent[1].message_id))
    );
    assert_eq!(
        last.map(|m| m.body["balance"].clone()),
        Some(serde_json::json!(750))
    );

    // Published once: every outbox row was confirmed on its first attempt, and nothing more
    // is waiting on the observer queue.
    let unsent_or_retried: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE sent_at IS NULL OR attempts <> 1")
            .fetch_one(&env.pool)
            .await
            .expect("outbox");
    assert_eq!(unsent_or_retried, 0);
    assert_eq!(observer.depth().await, 0);
    hub.stop().await;
}

#[tokio::test]
async fn the_same_message_delivered_twice_has_its_effect_once() {
    let env = TestEnv::new().await;
    env.declare(vec![ledger::queue_spec()]).await;
    let observer = env.observe("observe", &[Deposited::TYPE.to_string()]).await;
    let hub = env.spawn_hub(Components::ALL, vec![ledger::registration()]);
    env.send(&OpenAccount {
        account: "bob".into(),
        expire_after_ms: None,
    })
    .await;
    wait_until(WAIT, "the account saga", || account(&env, "bob")).await;
    let deposit = Deposit {
        account: "bob".into(),
        amount: 100,
        seq: 1,
    };
    let metadata = Metadata::new(Deposit::TYPE.to_string(), "test");
    env.send_with(&deposit, metadata.clone()).await;
    env.send_with(&deposit, metadata.clone()).await;
    env.send(&Deposit {
        seq: 2,
        ..deposit.clone()
    })
    .await;
    wait_for_applied(&env, "bob", 2).await;
    // Stopping drains the consumer: every delivered message is finished, and an empty queue
    // then means both copies were consumed.
    let got = observer.take(2, WAIT).await;
    hub.stop().await;
    let work = env.topology(vec![]).work_queue(ledger::QUEUE);
    assert_eq!(
        queue_depth(&env.channel().await, &work).await,
        0,
        "every copy was consumed"
    );
    let (state, version) = account(&env, "bob").await.expect("saga");
    // The consumer handles deliveries concurrently (up to the prefetch), so deposits 1 and 2 may
    // be applied in either order; each exactly once is what counts.
    let mut applied = state.applied.clone();
    applied.sort_unstable();
    assert_eq!(applied, vec![1, 2], "the duplicate was not applied");
    assert_eq!(state.balance, 200);
    assert_eq!(version, 3);
    let inbox: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox WHERE message_id = $1")
        .bind(metadata.message_id)
        .fetch_one(&env.pool)
        .await
        .expect("inbox");
    assert_eq!(inbox, 1);
    assert_eq!(got.iter().filter(|m| m.body["seq"] == 1).count(), 1);
    assert_eq!(
        observer.depth().await,
        0,
        "no second event for the duplicate"
    );
}

/// Retention keeps the dedup promise within its horizon: a round of pruning leaves a fresh inbox
/// row, so a copy of that message is still dropped; once the row is older than the horizon it
/// goes (counted in `hub_retention_deleted_rows_total`), and only then would a copy be taken again,
/// which is why the horizon is refused shorter than a day or twice the retry schedule.
#[tokio::test]
async fn a_copy_within_the_retention_horizon_is_still_dropped() {
    use hub_runtime::store::retention::prune;
    let env = TestEnv::new().await;
    env.declare(vec![ledger::queue_spec()]).await;
    let hub = env.spawn_hub(Components::ALL, vec![ledger::registration()]);
    env.send(&OpenAccount {
        account: "ret".into(),
        expire_after_ms: None,
    })
    .await;
    wait_until(WAIT, "the account saga", || account(&env, "ret")).await;
    let deposit = Deposit {
        account: "ret".into(),
        amount: 100,
        seq: 1,
    };
    let metadata = Metadata::new(Deposit::TYPE.to_string(), "test");
    env.send_with(&deposit, metadata.clone()).await;
    wait_for_applied(&env, "ret", 1).await;
    let horizon = Duration::from_secs(7 * 24 * 3600);
    let inbox_rows = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM inbox WHERE message_id = $1")
            .bind(metadata.message_id)
            .fetch_one(&env.pool)
            .await
            .expect("inbox")
    };

    // Inside the horizon: pruning keeps the row, and the copy is dropped.
    let pruned = prune(&env.pool, horizon, 10).await.expect("pruned");
    assert!(pruned.ran);
    assert_eq!(inbox_rows().await, 1, "a fresh row stays");
    env.send_with(&deposit, metadata.clone()).await;
    env.send(&Deposit {
        seq: 2,
        ..deposit.clone()
    })
    .await;
    let (state, _) = wait_for_applied(&env, "ret", 2).await;
    let mut applied = state.applied.clone();
    applied.sort_unstable();
    assert_eq!(applied, vec![1, 2], "the copy was not applied");
    assert_eq!(inbox_rows().await, 1, "the copy was dropped by the inbox");

    // Past the horizon: the row goes, in batches, and is counted.
    sqlx::query("UPDATE inbox SET received_at = now() - interval '8 days' WHERE message_id = $1")
        .bind(metadata.message_id)
        .execute(&env.pool)
        .await
        .expect("backdated");
    let pruned = prune(&env.pool, horizon, 10).await.expect("pruned");
    assert_eq!(pruned.inbox, 1, "{pruned:?}");
    assert_eq!(inbox_rows().await, 0);
    let exported = hub_runtime::metrics::metrics().encode(&Default::default());
    assert!(
        exported
            .lines()
            .any(|l| l.starts_with("hub_retention_deleted_rows_total{table=\"inbox\"}")),
        "{exported}"
    );
    // Sent outbox rows past the horizon go too; an unsent one never does.
    sqlx::query(
        "INSERT INTO outbox (id, exchange, routing_key, metadata, body, sent_at, created_at)
         VALUES (gen_random_uuid(), 'x', 'old-sent', '{}', '', now() - interval '8 days', now() - interval '8 days'),
                (gen_random_uuid(), 'x', 'old-unsent', '{}', '', NULL, now() - interval '8 days')",
    )
    .execute(&env.pool)
    .await
    .expect("planted");
    let pruned = prune(&env.pool, horizon, 10).await.expect("pruned");
    assert_eq!(pruned.outbox, 1, "{pruned:?}");
    let left: Vec<String> = sqlx::query_scalar(
        "SELECT routing_key FROM outbox WHERE routing_key IN ('old-sent', 'old-unsent')",
    )
    .fetch_all(&env.pool)
    .await
    .expect("outbox");
    assert_eq!(left, vec!["old-unsent".to_owned()]);

    // One process at a time: while another holds the lock, a round does nothing.
    let mut holder = env.pool.begin().await.expect("a transaction");
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(hub_runtime::store::retention::LOCK_KEY)
        .execute(&mut *holder)
        .await
        .expect("locked");
    let skipped = prune(&env.pool, horizon, 10).await.expect("pruned");
    assert!(!skipped.ran, "{skipped:?}");
    holder.rollback().await.expect("released");
    hub.stop().await;
}

#[tokio::test]
async fn bad_bodies_are_dead_lettered_with_reasons_and_the_next_message_is_processed() {
    let env = TestEnv::new().await;
    let topology = env.declare(vec![ledger::queue_spec()]).await;
    let hub = env.spawn_hub(Components::ALL, vec![ledger::registration()]);
    env.send(&OpenAccount {
        account: "carol".into(),
        expire_after_ms: None,
    })
    .await;
    wait_until(WAIT, "the account saga", || account(&env, "carol")).await;

    let bus = topology.bus_exchange();
    let raw = |body: &[u8], metadata: Metadata| Envelope {
        exchange: bus.clone(),
        routing_key: Deposit::TYPE.to_string(),
        metadata,
        body: body.to_vec(),
    };
    let not_json = Metadata::new(Deposit::TYPE.to_string(), "test");
    env.publisher
        .publish(&raw(b"{not json", not_json.clone()))
        .await
        .expect("sent");
    let invalid = Metadata::new(Deposit::TYPE.to_string(), "test");
    env.publisher
        .publish(&raw(
            br#"{"account":"carol","amount":-5,"seq":9}"#,
            invalid.clone(),
        ))
        .await
        .expect("sent");
    // No message_id at all: only the runtime can refuse it.
    let no_id = lapin::BasicProperties::default().with_type(Deposit::TYPE.to_string().into());
    env.publisher
        .publish_raw(
            &bus,
            &Deposit::TYPE.to_string(),
            no_id,
            br#"{"account":"carol","amount":1,"seq":8}"#,
        )
        .await
        .expect("sent");
    // Valid JSON, but padded past the size limit: refused before it is parsed.
    let oversized = Metadata::new(Deposit::TYPE.to_string(), "test");
    let mut big = br#"{"account":"carol","amount":1,"seq":6}"#.to_vec();
    big.resize(hub_runtime::broker::MAX_BODY_BYTES + 1, b' ');
    env.publisher
        .publish(&raw(&big, oversized.clone()))
        .await
        .expect("sent");
    // A deposit to an account that does not exist: a permanent failure of the saga.
    let unknown = env
        .send(&Deposit {
            account: "nobody".into(),
            amount: 1,
            seq: 7,
        })
        .await;
    env.send(&Deposit {
        account: "carol".into(),
        amount: 42,
        seq: 1,
    })
    .await;

    let (state, _) = wait_for_applied(&env, "carol", 1).await;
    assert_eq!(
        state.balance, 42,
        "the good message after the bad ones was processed"
    );

    // The keeper moved them from the dead-letter queue into the table, headers and all.
    let letters = env.dead_letters(ledger::QUEUE, 5, WAIT).await;
    assert_eq!(letters.len(), 5, "each bad message kept once");
    let header = |l: &DeadLetter, name: &str| l.header_str(name);
    let by_id = |id: Uuid| {
        letters
            .iter()
            .find(|l| l.message_id == Some(id))
            .unwrap_or_else(|| panic!("dead letter {id} not found"))
    };
    let l = by_id(not_json.message_id);
    assert_eq!(l.body, b"{not json", "the body is kept as it came");
    assert_eq!(
        header(l, headers::ERROR_KIND).as_deref(),
        Some("invalid_input")
    );
    assert_eq!(l.error_kind, "invalid_input");
    assert!(
        header(l, headers::ERROR_TEXT)
            .is_some_and(|t| t.contains("not a valid test.deposit.v1 JSON"))
    );
    assert!(l.error.contains("not a valid test.deposit.v1 JSON"));
    assert_eq!(header(l, headers::ORIGINAL_EXCHANGE), Some(bus.clone()));
    assert_eq!(l.original_exchange, bus);
    assert_eq!(
        header(l, headers::ORIGINAL_ROUTING_KEY).as_deref(),
        Some("test.deposit.v1")
    );
    assert_eq!(l.original_routing_key, "test.deposit.v1");
    assert_eq!(
        header(l, headers::QUEUE),
        Some(topology.work_queue(ledger::QUEUE))
    );
    assert_eq!(l.header_i64(headers::ATTEMPTS), Some(1));
    assert_eq!(l.attempts, 1);
    assert!(
        header(l, headers::FIRST_FAILURE).is_some() && header(l, headers::LAST_FAILURE).is_some()
    );
    assert!(l.first_failure_at.is_some() && l.last_failure_at.is_some());

    let l = by_id(invalid.message_id);
    assert_eq!(
        header(l, headers::ERROR_KIND).as_deref(),
        Some("invalid_input")
    );
    assert_eq!(
        header(l, headers::ERROR_TEXT).as_deref(),
        Some("test.deposit.v1 failed validation: amount: must be positive")
    );
    let l = by_id(oversized.message_id);
    assert_eq!(l.error_kind, "invalid_input");
    assert_eq!(
        l.error,
        format!(
            "body of {} bytes is larger than the {} bytes the hub accepts",
            hub_runtime::broker::MAX_BODY_BYTES + 1,
            hub_runtime::broker::MAX_BODY_BYTES
        )
    );
    assert_eq!(
        l.body.len(),
        hub_runtime::broker::MAX_BODY_BYTES + 1,
        "kept whole"
    );
    let l = by_id(unknown.message_id);
    assert_eq!(header(l, headers::ERROR_KIND).as_deref(), Some("permanent"));
    assert_eq!(
        header(l, headers::ERROR_TEXT).as_deref(),
        Some("no such account")
    );
    assert_eq!(l.error, "no such account");
    let l = letters
        .iter()
        .find(|l| l.property("message_id").is_none())
        .expect("the message without id was dead-lettered");
    assert_eq!(l.message_id, None);
    assert_eq!(
        header(l, headers::ERROR_TEXT).as_deref(),
        Some("property message_id is missing")
    );

    // None of them left a trace in the saga or the inbox.
    let inbox: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox")
        .fetch_one(&env.pool)
        .await
        .expect("inbox");
    assert_eq!(
        inbox, 2,
        "only the opening and the good deposit were handled"
    );
    hub.stop().await;
    assert_eq!(
        queue_depth(&env.channel().await, &topology.work_queue(ledger::QUEUE)).await,
        0
    );
}

#[tokio::test]
async fn two_engines_on_one_queue_apply_every_event_once_in_a_serial_order() {
    const N: u64 = 200;
    let env = TestEnv::new().await;
    env.declare(vec![ledger::queue_spec()]).await;
    let first = env.spawn_hub(Components::ALL, vec![ledger::registration()]);
    let second = env.spawn_hub(Components::ALL, vec![ledger::registration()]);
    env.send(&OpenAccount {
        account: "dave".into(),
        expire_after_ms: None,
    })
    .await;
    wait_until(WAIT, "the account saga", || account(&env, "dave")).await;
    let sends = (1..=N).map(|seq| {
        let env = &env;
        async move {
            env.send(&Deposit {
                account: "dave".into(),
                amount: seq as i64,
                seq,
            })
            .await
        }
    });
    let sent = futures_util::future::join_all(sends).await;
    let seq_of: std::collections::HashMap<Uuid, u64> = sent
        .iter()
        .zip(1..=N)
        .map(|(m, seq)| (m.message_id, seq))
        .collect();
    let (state, version) =
        ledger::wait_for_every_deposit_once(&env.pool, "dave", N, true, WAIT).await;
    assert_eq!(version, N as i64 + 1);
    // The history is one unbroken chain of versions, and the deposits it records, in version
    // order, are the order the state applied them in: one serial order, seen the same by both.
    let history: Vec<(i64, Uuid)> = sqlx::query_as(
        "SELECT version, message_id FROM saga_history WHERE saga_id = $1 ORDER BY version",
    )
    .bind(Ledger::key("dave").id)
    .fetch_all(&env.pool)
    .await
    .expect("history");
    let versions: Vec<i64> = history.iter().map(|h| h.0).collect();
    assert_eq!(versions, (1..=N as i64 + 1).collect::<Vec<_>>());
    let history_order: Vec<u64> = history[1..].iter().map(|h| seq_of[&h.1]).collect();
    assert_eq!(
        history_order, state.applied,
        "history and state agree on the order"
    );
    // Both engines took part: each process writes its own app_id on what it sends.
    let senders: i64 = sqlx::query_scalar("SELECT count(DISTINCT metadata->>'app_id') FROM outbox")
        .fetch_one(&env.pool)
        .await
        .expect("outbox");
    assert_eq!(senders, 2, "both engines handled deposits");
    first.stop().await;
    second.stop().await;
}

#[tokio::test]
async fn the_timer_poller_sleeps_when_no_timer_is_set_and_wakes_for_the_next_one() {
    let env = TestEnv::new().await;
    // An empty table once made the poller spin (`greatest(0, NULL)` is 0 in SQL).
    assert_eq!(
        hub_runtime::store::timers::until_next_due(&env.pool).await,
        None,
        "no timer, no wake-up"
    );
    let saga = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO sagas (id, saga_type, state_name, state, version) VALUES ($1, 't', 's', '{}', 0)",
    )
    .bind(saga)
    .execute(&env.pool)
    .await
    .expect("saga");
    sqlx::query(
        "INSERT INTO timers (id, saga_id, name, due_at, exchange, routing_key, metadata, body)
         VALUES ($1, $2, 't', now() + interval '1 hour', 'x', 'k', '{}', '')",
    )
    .bind(Uuid::new_v4())
    .bind(saga)
    .execute(&env.pool)
    .await
    .expect("timer");
    let next = hub_runtime::store::timers::until_next_due(&env.pool)
        .await
        .expect("a timer is set");
    assert!(
        next > Duration::from_secs(3500) && next <= Duration::from_secs(3601),
        "{next:?}"
    );
}
