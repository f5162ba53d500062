//! The bench's measuring machinery (`hub_lab::bench::measure`, what `hub bench` measures every
//! phase with) on a saga whose shape is known: the tests' ledger. Each account is opened, takes
//! [`DEPOSITS`] deposits and is closed by its expiry timer: `DEPOSITS + 2` engine steps, each
//! publishing one event, plus the timer's own message (the poller writes it to the outbox):
//! `DEPOSITS + 3` outbox rows per saga. The clients learn of the events from the bus only, so
//! the bench's probe is the only other user of the database.
//!
//! The database is a private PostgreSQL server (the installed one, on a free loopback port)
//! that loads `pg_stat_statements`, so statements are counted too.
//!
//! Checked against independent counts: the steps against the `saga_history` table and the
//! shape, the messages against the events an observer queue received on the bus plus one timer
//! per saga, the interval against the test's own clock and the longest saga the client saw, the statements between the calls of the engine's history-writing statement (each
//! in the interval, as every step is) and every statement the test's own window around the phase
//! saw, less the probe's.
//!
//! Tolerances: steps, messages and msgs/saga exact; steps/s exactly steps over the interval, and
//! the interval at least the longest saga and at most the test's clock from before the phase to
//! the last saga's end plus 0.5 s (so steps/s lies between steps over those two). An interval
//! that starts after the first saga, ends before quiescence (steps still to come, counted or
//! not) or after a settle sleep or the wait for PostgreSQL's counters, or a count taken over
//! another span, breaks one of these. A per-saga figure over completed sagas instead of started
//! ones cannot show here (every saga completes): the arithmetic is unit-tested with planted
//! numbers, failures among them, in `hub/lab/src/bench/measure.rs`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use contracts::Message;
use e2e::TestEnv;
use e2e::ledger::{self, AccountClosed, AccountOpened, Deposit, Deposited, OpenAccount};
use hub_lab::bench::measure::{HubProbes, Meter, Phase};
use hub_lab::chaos::servers::PrivatePostgres;
use hub_lab::sandbox::Servers;
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
    /// When the last client saw its saga closed.
    last_end: Mutex<Option<Instant>>,
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
    heard
        .wait(&account, &AccountClosed::TYPE.to_string())
        .await?;
    let now = Instant::now();
    let mut last = heard.last_end.lock().expect("lock");
    *last = Some(last.map_or(now, |l| l.max(now)));
    Ok(())
}

/// How long after the last client saw its saga closed the interval may end: the outbox is
/// drained by then (the client heard the event), so quiescence is seen at the next 50 ms poll,
/// then read.
const END_TOLERANCE: Duration = Duration::from_millis(500);

/// Every statement `pg_stat_statements` has counted in the test's database so far.
async fn statements(env: &TestEnv) -> i64 {
    sqlx::query_scalar(
        "SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements
         WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_one(&env.pool)
    .await
    .expect("pg_stat_statements")
}

/// The clients' ears: every event on the bus, by account (a poll of the observer queue, until
/// the test ends).
fn listen(observer: e2e::Observer, heard: Arc<Heard>) -> tokio::task::JoinHandle<()> {
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
            // A poll interval of the observer queue, not a wait for a condition.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_bench_measures_a_saga_of_known_shape_over_one_interval() {
    let pg =
        PrivatePostgres::start_with_settings(&[("shared_preload_libraries", "pg_stat_statements")])
            .await
            .expect("a private PostgreSQL server");
    let env = TestEnv::on(Servers {
        postgres_url: pg.url().replace("/hub", "/postgres"),
        ..Servers::for_tests()
    })
    .await;
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
    let listening = listen(observer, heard.clone());

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
    assert!(meter.counts_statements(), "pg_stat_statements is loaded");
    let (window_before, probe_before) = (statements(&env).await, meter.probe_statements());
    let around = Instant::now();
    let measured = meter
        .phase(&phase, |i| {
            let (env, heard) = (env.clone(), heard.clone());
            async move { one_account(&env, &heard, i).await }
        })
        .await
        .expect("the phase is measured");
    // The window's own first reading is counted at its end, inside the window.
    let window = statements(&env).await - window_before - 1;
    let window_probe = (meter.probe_statements() - probe_before) as i64;
    let step_calls: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements
         WHERE query LIKE '%INSERT INTO saga_history%'
           AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_one(&env.pool)
    .await
    .expect("pg_stat_statements");
    listening.abort();
    let c = &measured.counts;
    eprintln!(
        "measured: {c:?}; the test's clock to the last end {:?}",
        heard.last_end.lock().expect("lock").map(|l| l - around)
    );
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

    // The interval: at least the longest saga the client saw, at most the test's own clock
    // from before the phase to the last saga's end, plus [`END_TOLERANCE`] (an interval read
    // after a settle, or after the wait for PostgreSQL's counters, is longer).
    let longest = *measured.saga_times.iter().max().expect("times") as f64 / 1e6;
    assert_eq!(measured.saga_times.len(), SAGAS);
    let last_end = heard.last_end.lock().expect("lock").expect("sagas ended");
    let upper = (last_end - around).as_secs_f64() + END_TOLERANCE.as_secs_f64();
    assert!(
        longest <= c.seconds && c.seconds <= upper,
        "interval {} s: the longest saga took {longest} s, the test's clock to the last end \
         (with the tolerance) {upper} s",
        c.seconds
    );
    let rates = c.rates(1.0);
    assert_eq!(rates.steps_per_second, history as f64 / c.seconds);
    assert!(
        history as f64 / upper <= rates.steps_per_second
            && rates.steps_per_second <= history as f64 / longest,
        "steps/s {} outside [{}, {}]",
        rates.steps_per_second,
        history as f64 / upper,
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
    // Statements: at least the engine's history-writing ones (all in the interval, since every
    // step is), at most every statement of the test's window but the probe's.
    let counted = c.statements.expect("statements are counted");
    assert_eq!(
        step_calls, history,
        "one history-writing statement per step"
    );
    assert!(
        step_calls <= counted && counted <= window - window_probe,
        "{counted} statements: at least {step_calls}, at most {window} - {window_probe}"
    );
    assert_eq!(
        rates.statements_per_step,
        Some(counted as f64 / history as f64)
    );

    drop(meter);
    hub.stop().await;
    drop(env);
    drop(pg);
}
