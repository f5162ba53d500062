//! The engine's batches against the real RabbitMQ and PostgreSQL: a queue's ready deliveries
//! handled in one transaction, each saga's messages in order, a failing message settled on its
//! own while the others commit once, a batch the database refuses redone message by message,
//! and every delivery acked (one multiple-ack per batch) with nothing handled twice. And a
//! service's group commit: prepared messages committed together, a failing one alone.
//!
//! Each test fills the queue before its hub starts, so the consumer finds deliveries waiting and
//! makes batches of them; with one lane the batches run one after the other in delivery order.

use std::collections::HashMap;
use std::time::Duration;

use contracts::{Failure, Message, Metadata};
use e2e::TestEnv;
use e2e::harness::queue_depth;
use e2e::ledger::{self, Deposit, Deposited, OpenAccount};
use futures_util::future::BoxFuture;
use hub_runtime::app::Components;
use hub_runtime::broker::{Handler, Incoming};
use hub_runtime::engine::{Command, Service, ServiceRunner};

const WAIT: Duration = Duration::from_secs(60);
const DEPOSITS: u64 = 25;

/// A test environment whose hub runs one lane per saga queue, so that batches run in
/// delivery order.
async fn one_lane() -> TestEnv {
    let mut env = TestEnv::new().await;
    env.config.batch_lanes = 1;
    env.declare(vec![ledger::queue_spec()]).await;
    env
}

/// Opens `accounts` and queues `DEPOSITS` deposits to each, interleaved (seq 1 to every
/// account, then seq 2 ...), before any hub runs.
async fn fill(env: &TestEnv, accounts: &[String]) {
    for account in accounts {
        env.send(&OpenAccount {
            account: account.clone(),
            expire_after_ms: None,
        })
        .await;
    }
    for seq in 1..=DEPOSITS {
        for account in accounts {
            env.send(&Deposit {
                account: account.clone(),
                amount: seq as i64,
                seq,
            })
            .await;
        }
    }
}

fn accounts(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

/// The value of the metric line that starts with `name{labels}`, 0 when there is none.
fn metric(name_and_labels: &str) -> f64 {
    let text = hub_runtime::metrics::metrics().encode(&Default::default());
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Every deposit of every account applied once, in the order it was queued.
async fn every_deposit_once_in_order(env: &TestEnv, accounts: &[String]) {
    for account in accounts {
        let (state, _) =
            ledger::wait_for_every_deposit_once(&env.pool, account, DEPOSITS, true, WAIT).await;
        assert_eq!(
            state.applied,
            (1..=DEPOSITS).collect::<Vec<_>>(),
            "{account}: its deposits in queue order"
        );
    }
}

/// Nothing is left on the queue once the hub has stopped: a delivery not acked would have gone
/// back to it when the hub's channels closed.
async fn queue_left_empty(env: &TestEnv) {
    let queue = env.topology(vec![]).work_queue(ledger::QUEUE);
    assert_eq!(queue_depth(&env.channel().await, &queue).await, 0);
}

#[tokio::test]
async fn a_batch_keeps_each_sagas_order_and_commits_every_message_once() {
    let env = one_lane().await;
    let names = accounts("batch-", 8);
    // Each account's opening is queued before its deposits: one applied out of order would be
    // refused ("no such account") and dead-lettered.
    fill(&env, &names).await;
    let queue = env.topology(vec![]).work_queue(ledger::QUEUE);
    let observer = env.observe("observe", &[Deposited::TYPE.to_string()]).await;
    let hub = env.spawn_hub(Components::ALL, vec![ledger::registration()]);

    every_deposit_once_in_order(&env, &names).await;
    let total = names.len() * DEPOSITS as usize;
    let copies = observer.collect_ids(total, WAIT).await;
    assert!(
        copies.values().all(|&n| n == 1),
        "each event published once"
    );
    hub.stop().await;

    // Batches of more than one message were made, and took most of the queue.
    let batches = metric(&format!("hub_batch_messages_count{{queue=\"{queue}\"}}"));
    let batched = metric(&format!("hub_batch_messages_sum{{queue=\"{queue}\"}}"));
    assert!(batches >= 1.0, "no batch of two or more was made");
    assert!(
        batched >= (total / 2) as f64,
        "only {batched} of {total} messages went through batches"
    );
    // Nothing handled twice (no redelivery of an acked message), nothing dead-lettered, nothing
    // left unacked.
    let duplicates = metric(&format!(
        "hub_messages_in_total{{queue=\"{queue}\",type=\"{}\",outcome=\"duplicate\"}}",
        Deposit::TYPE
    ));
    assert_eq!(duplicates, 0.0);
    assert_eq!(env.dead_letter_count(ledger::QUEUE).await, 0);
    queue_left_empty(&env).await;
}

#[tokio::test]
async fn a_message_failing_in_a_batch_is_dead_lettered_alone_and_the_others_commit_once() {
    let env = one_lane().await;
    let names = accounts("mixed-", 4);
    fill(&env, &names).await;
    // Two messages whose transitions fail, queued among the others: a deposit to an account
    // that does not exist, and a second opening of an open account.
    env.send(&Deposit {
        account: "nobody".into(),
        amount: 1,
        seq: 1,
    })
    .await;
    env.send(&OpenAccount {
        account: names[1].clone(),
        expire_after_ms: None,
    })
    .await;
    for seq in DEPOSITS + 1..=DEPOSITS + 5 {
        env.send(&Deposit {
            account: names[2].clone(),
            amount: seq as i64,
            seq,
        })
        .await;
    }
    let observer = env.observe("observe", &[Deposited::TYPE.to_string()]).await;
    let hub = env.spawn_hub(Components::ALL, vec![ledger::registration()]);

    let letters = env.dead_letters(ledger::QUEUE, 2, WAIT).await;
    let mut reasons: Vec<String> = letters.iter().map(|l| l.error.clone()).collect();
    reasons.sort();
    assert_eq!(reasons, ["account already open", "no such account"]);
    for (i, account) in names.iter().enumerate() {
        let n = if i == 2 { DEPOSITS + 5 } else { DEPOSITS };
        let (state, _) =
            ledger::wait_for_every_deposit_once(&env.pool, account, n, true, WAIT).await;
        assert_eq!(state.applied, (1..=n).collect::<Vec<_>>(), "{account}");
    }
    let total = names.len() * DEPOSITS as usize + 5;
    let copies: HashMap<_, _> = observer.collect_ids(total, WAIT).await;
    assert!(
        copies.values().all(|&n| n == 1),
        "each event published once"
    );
    // The failed ones left nothing behind: no inbox row, so a replay would be handled.
    let failed: Vec<uuid::Uuid> = letters.iter().filter_map(|l| l.message_id).collect();
    let inbox: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox WHERE message_id = ANY($1)")
        .bind(&failed)
        .fetch_one(&env.pool)
        .await
        .expect("inbox");
    assert_eq!(inbox, 0, "a failed message's inbox row is not kept");
    hub.stop().await;
    assert_eq!(env.dead_letter_count(ledger::QUEUE).await, 2);
    queue_left_empty(&env).await;
}

#[tokio::test]
async fn a_batch_the_database_refuses_is_redone_message_by_message() {
    let env = one_lane().await;
    let names = accounts("refused-", 4);
    fill(&env, &names).await;
    // One deposit the database itself refuses (a trigger planted for this test raises on its
    // history row): the whole batch's transaction fails, so its messages are handled one by
    // one, and only that one fails.
    let planted = Metadata::new(Deposit::TYPE.to_string(), "test");
    // The id is a UUID the test made, written into the function's text.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE FUNCTION refuse_planted() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.message_id = '{}' THEN RAISE EXCEPTION 'planted refusal'; END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER planted BEFORE INSERT ON saga_history
             FOR EACH ROW EXECUTE FUNCTION refuse_planted();",
        planted.message_id
    )))
    .execute(&env.pool)
    .await
    .expect("trigger planted");
    env.send_with(
        &Deposit {
            account: names[0].clone(),
            amount: 1000,
            seq: 1000,
        },
        planted.clone(),
    )
    .await;
    for seq in DEPOSITS + 1..=DEPOSITS + 5 {
        env.send(&Deposit {
            account: names[3].clone(),
            amount: seq as i64,
            seq,
        })
        .await;
    }
    let hub = env.spawn_hub(Components::ALL, vec![ledger::registration()]);

    let letters = env.dead_letters(ledger::QUEUE, 1, WAIT).await;
    assert_eq!(letters[0].message_id, Some(planted.message_id));
    let reason = &letters[0].error;
    assert!(reason.contains("planted refusal"), "{reason}");
    for (i, account) in names.iter().enumerate() {
        let n = if i == 3 { DEPOSITS + 5 } else { DEPOSITS };
        let (state, _) =
            ledger::wait_for_every_deposit_once(&env.pool, account, n, true, WAIT).await;
        assert_eq!(state.applied, (1..=n).collect::<Vec<_>>(), "{account}");
    }
    // The deposits in the refused batch were done alone, each once.
    let history: i64 = sqlx::query_scalar("SELECT count(*) FROM saga_history")
        .fetch_one(&env.pool)
        .await
        .expect("history");
    assert_eq!(history, names.len() as i64 * (1 + DEPOSITS as i64) + 5);
    hub.stop().await;
    assert_eq!(env.dead_letter_count(ledger::QUEUE).await, 1);
    queue_left_empty(&env).await;
}

/// A service for the group-commit test: it journals each deposit in a table of the test's own
/// (with the transaction it was written in) and answers `Deposited`; its `apply` refuses
/// sequence number 13 after writing, to show the refusal is rolled back alone.
struct Journal;

impl Service for Journal {
    type Prepared = Deposit;

    fn name(&self) -> &'static str {
        "test.journal"
    }

    fn prepare<'a>(&'a self, message: &'a Incoming) -> BoxFuture<'a, Result<Deposit, Failure>> {
        Box::pin(async move {
            Ok(contracts::decode(
                &message.metadata.message_type,
                &message.body,
            )?)
        })
    }

    fn apply<'a>(
        &'a self,
        conn: &'a mut sqlx::PgConnection,
        _message: &'a Incoming,
        deposit: Deposit,
    ) -> BoxFuture<'a, Result<Vec<Command>, Failure>> {
        Box::pin(async move {
            sqlx::query("INSERT INTO journal (account, seq, xid) VALUES ($1, $2, txid_current())")
                .bind(&deposit.account)
                .bind(deposit.seq as i64)
                .execute(conn)
                .await
                .map_err(|e| Failure::transient(e.to_string()))?;
            if deposit.seq == 13 {
                return Err(Failure::permanent("refused after writing"));
            }
            Ok(vec![Command::new(&Deposited {
                account: deposit.account.clone(),
                seq: deposit.seq,
                balance: deposit.amount,
            })?])
        })
    }
}

/// `n` deposits to `account` as the service's queue would hand them over.
fn deposits(env: &TestEnv, account: &str, n: u64) -> Vec<Incoming> {
    let topology = env.topology(vec![]);
    (1..=n)
        .map(|seq| {
            let deposit = Deposit {
                account: account.into(),
                amount: seq as i64,
                seq,
            };
            Incoming {
                metadata: Metadata::new(Deposit::TYPE.to_string(), "test"),
                body: contracts::encode(&deposit).expect("JSON"),
                queue: topology.work_queue("journal"),
                exchange: topology.bus_exchange(),
                routing_key: Deposit::TYPE.to_string(),
                previous_failures: 0,
            }
        })
        .collect()
}

/// Handles `messages` concurrently; the refusals' reasons by sequence number.
async fn handle_all(runner: &ServiceRunner<Journal>, messages: &[Incoming]) -> Vec<(u64, String)> {
    let results = futures_util::future::join_all(messages.iter().map(|m| runner.handle(m))).await;
    results
        .into_iter()
        .zip(1..)
        .filter_map(|(r, seq)| r.err().map(|f| (seq, f.reason)))
        .collect()
}

/// (rows, distinct transactions) journalled for `account`.
async fn journalled(env: &TestEnv, account: &str) -> (i64, i64) {
    sqlx::query_as("SELECT count(*), count(DISTINCT xid) FROM journal WHERE account = $1")
        .bind(account)
        .fetch_one(&env.pool)
        .await
        .expect("journal")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_commits_prepared_messages_in_groups_and_a_failing_one_alone() {
    const N: u64 = 64;
    let env = TestEnv::new().await;
    sqlx::query(
        "CREATE TABLE journal (account text, seq bigint, xid bigint, UNIQUE (account, seq))",
    )
    .execute(&env.pool)
    .await
    .expect("journal table");
    let topology = std::sync::Arc::new(env.topology(vec![]));
    let grouped = ServiceRunner::new(Journal, env.pool.clone(), topology.clone(), "hub")
        .with_group_commit(16);
    let messages = deposits(&env, "grouped", N);

    let refused = handle_all(&grouped, &messages).await;
    assert_eq!(refused, [(13, "refused after writing".to_owned())]);
    let (rows, transactions) = journalled(&env, "grouped").await;
    assert_eq!(
        rows,
        N as i64 - 1,
        "the refused one's write is rolled back, the others kept"
    );
    assert!(
        transactions < rows,
        "{rows} messages in {transactions} transactions: no group was formed"
    );
    let ids: Vec<uuid::Uuid> = messages.iter().map(|m| m.metadata.message_id).collect();
    let count = |sql: &'static str| {
        let (pool, ids) = (env.pool.clone(), ids.clone());
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .bind(&ids)
                .fetch_one(&pool)
                .await
                .expect("count")
        }
    };
    let inbox = "SELECT count(*) FROM inbox WHERE message_id = ANY($1)";
    let answers =
        "SELECT count(*) FROM outbox WHERE metadata->>'causation_id' = ANY($1::uuid[]::text[])";
    assert_eq!(
        count(inbox).await,
        N as i64 - 1,
        "no inbox row for the refused one"
    );
    assert_eq!(
        count(answers).await,
        N as i64 - 1,
        "one answer per committed message"
    );

    // Delivered again: every committed one is a duplicate (nothing written twice), the refused
    // one is refused again.
    let again = handle_all(&grouped, &messages).await;
    assert_eq!(again, [(13, "refused after writing".to_owned())]);
    assert_eq!(journalled(&env, "grouped").await.0, N as i64 - 1);
    assert_eq!(count(inbox).await, N as i64 - 1);
    assert_eq!(count(answers).await, N as i64 - 1);

    // Without group commit, each message is a transaction of its own.
    let alone = ServiceRunner::new(Journal, env.pool.clone(), topology, "hub");
    handle_all(&alone, &deposits(&env, "alone", 20)).await;
    assert_eq!(journalled(&env, "alone").await, (19, 19));
}
