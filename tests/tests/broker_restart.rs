//! RabbitMQ restarted while the hub is consuming and publishing: the hub reconnects by itself,
//! nothing is lost, no effect happens twice. Runs on a private broker node so the restart does
//! not disturb the other tests.

use std::time::Duration;

use contracts::Message;
use e2e::ledger::{self, Deposit, Deposited, OpenAccount};
use e2e::private_broker::PrivateBroker;
use e2e::{Observer, TestEnv, wait_until};
use hub_runtime::app::Components;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(90);

async fn account(env: &TestEnv, name: &str) -> Option<ledger::Account> {
    ledger::load(&env.pool, name).await.map(|(a, _)| a)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_mid_stream_loses_nothing_and_applies_nothing_twice() {
    const N: u64 = 2000;
    let mut rabbit = PrivateBroker::start().await;
    let env = TestEnv::with_broker(&rabbit.url()).await;
    let topology = env.declare(vec![ledger::queue_spec()]).await;
    let observer = env.observe("observe", &[Deposited::TYPE.to_string()]).await;
    let opener = env.spawn_hub(Components::ALL, vec![ledger::registration()]);
    env.send(&OpenAccount {
        account: "grace".into(),
        expire_after_ms: None,
    })
    .await;
    wait_until(WAIT, "the account saga", || account(&env, "grace")).await;
    opener.stop().await;
    // The whole stream waits in the queue before the hub starts again, so the restart surely
    // falls in its middle.
    let seqs: Vec<u64> = (1..=N).collect();
    let env_ref = &env;
    for chunk in seqs.chunks(200) {
        futures_util::future::join_all(chunk.iter().map(|&seq| async move {
            let deposit = Deposit {
                account: "grace".into(),
                amount: 1,
                seq,
            };
            env_ref.send(&deposit).await
        }))
        .await;
    }
    let hub = env.spawn_hub(Components::ALL, vec![ledger::registration()]);
    wait_until(WAIT, "some deposits applied", || async {
        account(&env, "grace")
            .await
            .filter(|a| a.applied.len() >= 100)
    })
    .await;
    let before = account(&env, "grace").await.map_or(0, |a| a.applied.len());
    // Every connection of the hub and the test is cut; the queues and messages survive.
    rabbit.restart().await;
    let after = account(&env, "grace").await.map_or(0, |a| a.applied.len());
    eprintln!("restart began after {before} of {N} deposits; {after} applied when it was back");
    assert!(
        after < N as usize,
        "the restart happened mid-stream ({after} of {N} already applied)"
    );

    ledger::wait_for_every_deposit_once(&env.pool, "grace", N, false, WAIT).await;

    // The old observer channel died with the broker; read the same queue on a new one.
    let observer = Observer::attach(&env, observer.queue.clone()).await;
    let seen = observer.collect_ids(N as usize, WAIT).await;
    hub.stop().await;
    let outgoing: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM outbox WHERE routing_key = 'test.deposited.v1'")
            .fetch_all(&env.pool)
            .await
            .expect("outbox");
    assert_eq!(outgoing.len(), N as usize, "one event per deposit");
    assert!(
        outgoing.iter().all(|id| seen.contains_key(id)),
        "every event delivered"
    );
    assert_eq!(seen.len(), N as usize, "no event under a new id");
    let twice = seen.values().filter(|&&n| n > 1).count();
    eprintln!("{twice} events were delivered twice (same message_id) around the restart");
    let unsent: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE sent_at IS NULL")
        .fetch_one(&env.pool)
        .await
        .expect("outbox");
    assert_eq!(unsent, 0);
    // A dead letter is in the keeper's table, or back in its queue if the hub stopped before
    // keeping it.
    let dead =
        e2e::harness::queue_depth(&env.channel().await, &topology.dead_queue(ledger::QUEUE)).await;
    assert_eq!(dead, 0, "nothing dead-lettered by the restart");
    assert_eq!(
        env.dead_letter_count(ledger::QUEUE).await,
        0,
        "nothing dead-lettered by the restart"
    );
    drop(env);
}
