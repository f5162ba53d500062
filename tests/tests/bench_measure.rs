//! The bench's measuring machinery (`hub_lab::bench::measure`, what `hub bench` measures every
//! phase with) on a saga whose shape is known: the tests' ledger. Each account is opened, takes
//! [`DEPOSITS`] deposits and is closed by its expiry timer: `DEPOSITS + 2` engine steps, each
//! publishing one event, plus the timer's own message (the poller writes it to the outbox):
//! `DEPOSITS + 3` outbox rows per saga. The clients learn of the events from the bus only, so
//! the bench's probe is the only other user of the database.
//!
//! Checked against independent counts: the steps against the `saga_history` table and the
//! shape, the messages against the events an observer queue received on the bus plus one timer
//! per saga, the interval against the test's own clock around the phase and the longest saga the
//! client saw. Tolerances: steps and messages exact; steps/s exactly steps over the interval,
//! and the interval at least the longest saga and at most the test's clock around the phase
//! (so steps/s lies between steps over the test's clock and steps over the longest saga). A
//! per-saga figure over completed sagas instead of started ones, or an interval that ends before
//! quiescence (steps still to come) or is read after a settle sleep, breaks one of these; the
//! arithmetic itself is unit-tested with planted numbers in `measure.rs`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use contracts::Message;
use e2e::TestEnv;
use e2e::ledger::{self, AccountClosed, AccountOpened, Deposit, Deposited, OpenAccount};
use hub_lab::bench::measure::{HubProbes, Meter, Phase};
use hub_runtime::app::Components;

/// Sagas driven.
const SAGAS: usize = 12;
/// Deposits per account.
const DEPOSITS: u64 = 3;
/// The expiry timer, after the opening (the deposits come well before it).
const EXPIRY_MS: u64 = 2500;
/// The longest a client waits for one event.
const WAIT: Duration = Duration::from_secs(30);

/// The events the clients heard on the bus, by account, in order.
#[derive(Default)]
struct Heard {
    events: Mutex<HashMap<String, Vec<String>>>,
    changed: tokio::sync::Notify,
    total: Mutex<usize>,
}

impl Heard {
    /// Waits (up to [`WAIT`]) until `account` has had an event of type `kind`.
    async fn wait(&self, account: &str, kind: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + WAIT;
        loop {
            let notified = self.changed.notified();
            if self
                .events
                .lock()
                .expect("lock")
                .get(account)
                .is_some_and(|e| e.iter().any(|k| k == kind))
            {
                return Ok(());
            }
            anyhow::ensure!(
                tokio::time::timeout_at(deadline.into(), notified)
                    .await
                    .is_ok(),
                "{account}: no {kind} within {WAIT:?}"
            );
        }
    }
}

/// One saga: open, wait until opened, deposit, wait until the timer closed it.
async fn one_account(env: &TestEnv, heard: &Heard, i: usize) -> anyhow::Result<()> {
    let account = format!("bench-{i}");
    env.send(&OpenAccount {
        account: account.clone(),
        expire_after_ms: Some(EXPIRY_MS),
    })
    .await;
    heard
        .wait(&account, &AccountOpened::TYPE.to_string())
        .await?;
    for seq in 1..=DEPOSITS {
        env.send(&Deposit {
            account: account.clone(),
            amount: 1,
            seq,
        })
        .await;
    }
    heard.wait(&account, &AccountClosed::TYPE.to_string()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_bench_measures_a_saga_of_known_shape_over_one_interval() {
    let env = TestEnv::new().await;
    env.declare(vec![ledger::queue_spec()]).await;
    let kinds = [
        AccountOpened::TYPE.to_string(),
        Deposited::TYPE.to_string(),
        AccountClosed::TYPE.to_string(),
    ];
    let observer = env.observe("bench-heard", &kinds).await;
    let hub = env.spawn_hub(Components::ALL, vec![ledger::registration()]);
    let env = Arc::new(env);
    let heard = Arc::new(Heard::default());
    // The clients' ears: every event on the bus, by account (a poll of the observer queue,
    // until the test ends).
    let listening = {
        let heard = heard.clone();
        tokio::spawn(async move {
            loop {
                while let Some(m) = observer.get().await {
                    let account = m.body["account"].as_str().unwrap_or_default().to_owned();
                    heard
                        .events
                        .lock()
                        .expect("lock")
                        .entry(account)
                        .or_default()
                        .push(m.metadata.message_type.clone());
                    *heard.total.lock().expect("lock") += 1;
                    heard.changed.notify_waiters();
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };

    let mut meter = Meter::start(
        &env.config.database_url,
        HubProbes::default(),
        Duration::from_secs(3),
    )
    .await
    .expect("the meter starts");
    let phase = Phase {
        name: "ledger".into(),
        saga_types: vec![ledger::SAGA_TYPE.into()],
        sagas: SAGAS,
        concurrency: 6,
        timeout: Duration::from_secs(120),
    };
    let around = Instant::now();
    let measured = meter
        .phase(&phase, |i| {
            let (env, heard) = (env.clone(), heard.clone());
            async move { one_account(&env, &heard, i).await }
        })
        .await
        .expect("the phase is measured");
    let around = around.elapsed().as_secs_f64();
    listening.abort();
    let c = &measured.counts;
    eprintln!("measured: {c:?}");
    assert!(measured.errors.is_empty(), "{:?}", measured.errors);
    assert_eq!(
        (c.started, c.completed, c.failed, c.timed_out),
        (SAGAS, SAGAS, 0, 0),
        "{c:?}"
    );
    assert!(c.quiescent, "{c:?}");

    // Steps: the shape, and the history table counted by the test.
    let per_saga_steps = DEPOSITS as i64 + 2;
    let history: i64 =
        sqlx::query_scalar("SELECT count(*) FROM saga_history h JOIN sagas s ON s.id = h.saga_id WHERE s.saga_type = $1")
            .bind(ledger::SAGA_TYPE)
            .fetch_one(&env.pool)
            .await
            .expect("the history");
    assert_eq!(history, SAGAS as i64 * per_saga_steps);
    assert_eq!(c.steps, history, "{c:?}");

    // The interval: at least the longest saga the client saw, at most the test's own clock.
    let longest = *measured.saga_times.iter().max().expect("times") as f64 / 1e6;
    assert_eq!(measured.saga_times.len(), SAGAS);
    assert!(
        longest <= c.seconds && c.seconds <= around,
        "interval {} s: the longest saga took {longest} s, the test's clock {around} s",
        c.seconds
    );
    let rates = c.rates(1.0);
    assert_eq!(rates.steps_per_second, history as f64 / c.seconds);
    assert!(
        history as f64 / around <= rates.steps_per_second
            && rates.steps_per_second <= history as f64 / longest,
        "steps/s {} outside [{}, {}]",
        rates.steps_per_second,
        history as f64 / around,
        history as f64 / longest
    );

    // Messages: the events the bus carried (counted by the observer) and one timer each.
    let events = *heard.total.lock().expect("lock");
    assert_eq!(events, SAGAS * per_saga_steps as usize);
    assert_eq!(c.messages, (events + SAGAS) as i64, "{c:?}");
    assert_eq!(rates.messages_per_saga, DEPOSITS as f64 + 3.0);
    assert_eq!(rates.publishes_per_step, c.messages as f64 / history as f64);

    // Transactions: each step is one of the hub's own at least; the probe's are not among them.
    assert!(
        c.transactions >= history as f64 * 0.9,
        "{} hub transactions for {history} steps: {:?}",
        c.transactions,
        c.transactions_from
    );
    // Statements, where PostgreSQL loads pg_stat_statements: a step is at least BEGIN, its
    // statement and COMMIT.
    match c.statements {
        Some(statements) => {
            assert!(
                statements >= 3 * history,
                "{statements} for {history} steps"
            );
            assert_eq!(
                rates.statements_per_step,
                Some(statements as f64 / history as f64)
            );
        }
        None => assert!(!meter.counts_statements()),
    }

    drop(meter);
    hub.stop().await;
}
