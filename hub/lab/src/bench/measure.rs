//! One measured interval: every figure of a phase (time, engine steps, messages, database
//! transactions and statements, CPU, argon2 time) is a difference between two readings taken at
//! the same two instants, the start `S` (just before the first saga is driven) and the end `E`
//! (quiescence: every saga of the phase's types ended and the outbox drained, waited on as a
//! condition with a deadline).
//!
//! The bench's own queries on the measured database go through a [`Probe`]: one connection of
//! its own (no pool, so no pings), simple-protocol statements only, so each is exactly one
//! statement and one transaction, counted here and subtracted from PostgreSQL's counters.
//!
//! PostgreSQL (15 and later) publishes a backend's transaction counts to `pg_stat_database`
//! when it goes idle at least 1 s after its previous flush, else at the latest 10 s after it
//! went idle (`PGSTAT_MIN_INTERVAL`, `PGSTAT_IDLE_INTERVAL`). So the transaction count at `E` is
//! read at a later instant `R`, once every other backend of the database has published what it
//! did before `E` (it went idle again at least 1 s after `E`, or has been idle 10 s: see
//! [`Probe::await_published`]); the hub's idle polling between `E` and `R` is taken off at the
//! rate measured over an idle window of the same run ([`Meter::start`]). The probe's own
//! counts are published at once (`pg_stat_force_next_flush()` before each reading).
//! `pg_stat_statements`, where PostgreSQL loads it, counts at each statement's end: statements
//! are read at `E` itself.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use sqlx::{Connection, Row};

/// How often the waits on a condition look again.
const POLL: Duration = Duration::from_millis(50);

/// How long an idle backend may keep its counts before publishing them (PostgreSQL's
/// `PGSTAT_IDLE_INTERVAL`, 10 s), with a margin.
const IDLE_FLUSH: Duration = Duration::from_millis(10_500);

/// How long after `E` the backends may take to publish their counts before the reading fails.
const PUBLISH_DEADLINE: Duration = Duration::from_secs(40);

/// The bench's own connection to the measured database: every statement it runs is counted, so
/// that it can be taken off PostgreSQL's counters.
#[derive(Debug)]
pub struct Probe {
    conn: sqlx::PgConnection,
    /// Statements (each one transaction) run successfully so far, readings included.
    issued: u64,
    /// `pg_stat_force_next_flush()` exists (PostgreSQL 15 and later).
    force_flush: bool,
    /// `pg_stat_statements` answers.
    statements_view: bool,
}

impl Probe {
    /// Connects to `url` and finds out what the server offers; creates `pg_stat_statements` in
    /// that database where PostgreSQL loads it. Nothing before the first reading is counted.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let conn = sqlx::PgConnection::connect(url)
            .await
            .context("the bench's probe connection to the measured database")?;
        let mut probe = Self {
            conn,
            issued: 0,
            force_flush: false,
            statements_view: false,
        };
        let version = probe
            .row("SELECT current_setting('server_version_num')::bigint")
            .await?
            .try_get::<i64, _>(0)?;
        probe.force_flush = version >= 150_000;
        let _ = probe
            .row("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .await;
        probe.statements_view = probe
            .row("SELECT count(*) FROM pg_stat_statements")
            .await
            .is_ok();
        Ok(probe)
    }

    /// Whether statements are counted (`pg_stat_statements` is loaded).
    pub fn counts_statements(&self) -> bool {
        self.statements_view
    }

    /// Statements the probe has run so far.
    pub fn issued(&self) -> u64 {
        self.issued
    }

    /// Runs one statement (simple protocol: one statement, one transaction), counted when it
    /// succeeds (a failed one is neither committed nor recorded by `pg_stat_statements`).
    async fn row(&mut self, sql: impl Into<String>) -> anyhow::Result<sqlx::postgres::PgRow> {
        let sql: String = sql.into();
        let row = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
            .fetch_one(&mut self.conn)
            .await
            .with_context(|| format!("the bench's probe: {sql}"))?;
        self.issued += 1;
        Ok(row)
    }

    /// [`Probe::row`] returning every row.
    async fn rows(&mut self, sql: String) -> anyhow::Result<Vec<sqlx::postgres::PgRow>> {
        let rows = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
            .fetch_all(&mut self.conn)
            .await
            .with_context(|| format!("the bench's probe: {sql}"))?;
        self.issued += 1;
        Ok(rows)
    }

    /// The database's counters now: its clock, committed transactions, statements.
    async fn counters(&mut self) -> anyhow::Result<DbCounters> {
        if self.force_flush {
            // Published when this backend goes idle after it: the probe's own transactions so
            // far are in the reading below.
            self.row("SELECT pg_stat_force_next_flush()::text").await?;
        }
        let probe_before = self.issued;
        let statements = if self.statements_view {
            "(SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements
              WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()))"
        } else {
            "NULL::bigint"
        };
        let row = self
            .row(format!(
                "SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint,
                        xact_commit, {statements}
                 FROM pg_stat_database WHERE datname = current_database()"
            ))
            .await?;
        Ok(DbCounters {
            clock_micros: row.try_get(0)?,
            xact_commit: row.try_get(1)?,
            statements: row.try_get(2)?,
            probe_before,
        })
    }

    /// Waits until every other backend of the database has published the counts of what it did
    /// before `since` (database clock, µs): it went idle at least 1 s after `since` (its flush
    /// then, or one after `since`, took them), or it has been idle for 10 s (the idle flush took
    /// them). A backend that exited published at its exit.
    pub async fn await_published(&mut self, since_micros: i64) -> anyhow::Result<()> {
        let deadline = Instant::now() + PUBLISH_DEADLINE;
        let idle_ms = IDLE_FLUSH.as_millis();
        loop {
            let row = self
                .row(format!(
                    "SELECT count(*), coalesce(string_agg(pid::text || ' ' || coalesce(state, '?'), ', '), '')
                     FROM pg_stat_activity
                     WHERE datname = current_database() AND pid <> pg_backend_pid()
                       AND backend_type = 'client backend'
                       AND NOT (state = 'idle' AND (
                           state_change >= to_timestamp({since_micros} / 1000000.0) + interval '1 second'
                           OR state_change <= clock_timestamp() - interval '{idle_ms} milliseconds'))"
                ))
                .await?;
            let (waiting, which): (i64, String) = (row.try_get(0)?, row.try_get(1)?);
            if waiting == 0 {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "PostgreSQL's backends did not publish their transaction counts within \
                 {PUBLISH_DEADLINE:?} (still busy or recently idle: {which})"
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

/// What the database's counters said at one reading.
#[derive(Debug, Clone, Copy)]
struct DbCounters {
    clock_micros: i64,
    xact_commit: i64,
    statements: Option<i64>,
    /// Probe statements run before the reading's own (the ones the counters include).
    probe_before: u64,
}

/// Every counter at one instant.
#[derive(Debug, Clone, Copy)]
struct Reading {
    at: Instant,
    db: DbCounters,
    cpu: Cpu,
    argon2_seconds: f64,
}

/// A phase to measure.
#[derive(Debug, Clone)]
pub struct Phase {
    /// Its name (progress bar, errors).
    pub name: String,
    /// The saga types (`sagas.saga_type`) it drives: it ends when every saga of these types
    /// created since its start has ended.
    pub saga_types: Vec<String>,
    /// Sagas to drive.
    pub sagas: usize,
    /// Sagas in flight at once.
    pub concurrency: usize,
    /// The longest the driving may take; the wait for quiescence gets at least
    /// [`QUIESCENCE_GRACE`] more.
    pub timeout: Duration,
}

/// How long quiescence is waited for after the last saga was driven, at least.
pub const QUIESCENCE_GRACE: Duration = Duration::from_secs(30);

/// The raw counts of one interval: every figure is one of these over another.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Counts {
    /// Sagas started (the per-saga denominator).
    pub started: usize,
    /// Of those, sagas that came to their expected end.
    pub completed: usize,
    /// Sagas that failed (an error before the phase's deadline).
    pub failed: usize,
    /// Sagas not done when the phase's time was up.
    pub timed_out: usize,
    /// The interval, seconds (`E - S`).
    pub seconds: f64,
    /// Whether `E` is quiescence (false: the wait gave up and `E` is when it did).
    pub quiescent: bool,
    /// From the last saga's end, as the client saw it, to `E`, seconds.
    pub tail_seconds: f64,
    /// Engine steps (`saga_history` rows) in the interval.
    pub steps: i64,
    /// Messages the hub published (outbox rows) in the interval.
    pub messages: i64,
    /// The hub's committed transactions in the interval (an estimate: see [`Transactions`]).
    pub transactions: f64,
    /// How the transaction count was made.
    pub transactions_from: Transactions,
    /// Statements of every component but the probe (`pg_stat_statements`), when it is loaded.
    pub statements: Option<i64>,
    /// CPU seconds of each party in the interval.
    pub cpu_seconds: Cpu,
    /// Argon2 seconds of the hub processes in the interval.
    pub argon2_seconds: f64,
}

/// The terms of the transaction count: `xact_commit` at `R` minus at `S`, minus the probe's
/// own, minus the hub's idle polling between `E` and `R`.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Transactions {
    /// `pg_stat_database.xact_commit` at `R` minus at `S`.
    pub xact_commit: i64,
    /// The probe's own transactions among them.
    pub probe: u64,
    /// The hub's idle polling rate, transactions per second (measured over an idle window).
    pub idle_per_second: f64,
    /// `R - E`, seconds: the wait for the backends to publish.
    pub publish_wait_seconds: f64,
}

impl Transactions {
    /// The hub's transactions in `[S, E]`.
    pub fn hub(&self) -> f64 {
        (self.xact_commit as f64
            - self.probe as f64
            - self.idle_per_second * self.publish_wait_seconds)
            .max(0.0)
    }
}

/// The figures of one interval: each is a count of [`Counts`] over another.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Rates {
    /// Completed sagas per second.
    pub sagas_per_second: f64,
    /// Engine steps per second.
    pub steps_per_second: f64,
    /// Steps per second over the lower raw limit.
    pub of_raw_limit: f64,
    /// Messages per saga started.
    pub messages_per_saga: f64,
    /// Messages per engine step.
    pub publishes_per_step: f64,
    /// The hub's transactions per saga started.
    pub transactions_per_saga: f64,
    /// Statements per engine step.
    pub statements_per_step: Option<f64>,
    /// CPU ms per saga started, by party.
    pub cpu_ms_per_saga: Cpu,
    /// Argon2 ms per saga started.
    pub argon2_ms_per_saga: f64,
}

impl Counts {
    /// The figures, against `lower_raw` (the lower raw limit, per second).
    pub fn rates(&self, lower_raw: f64) -> Rates {
        let over = |n: f64, d: f64| if d > 0.0 { n / d } else { 0.0 };
        let (sagas, steps) = (self.started as f64, self.steps as f64);
        let steps_per_second = over(steps, self.seconds);
        let ms = |s: f64| over(s * 1000.0, sagas);
        Rates {
            sagas_per_second: over(self.completed as f64, self.seconds),
            steps_per_second,
            of_raw_limit: over(steps_per_second, lower_raw),
            messages_per_saga: over(self.messages as f64, sagas),
            publishes_per_step: over(self.messages as f64, steps),
            transactions_per_saga: over(self.transactions, sagas),
            statements_per_step: self.statements.map(|s| over(s as f64, steps)),
            cpu_ms_per_saga: Cpu {
                hub: ms(self.cpu_seconds.hub),
                simulators_and_clients: ms(self.cpu_seconds.simulators_and_clients),
                postgres: ms(self.cpu_seconds.postgres),
                rabbitmq: ms(self.cpu_seconds.rabbitmq),
            },
            argon2_ms_per_saga: ms(self.argon2_seconds),
        }
    }
}

/// One measured phase: its counts, and the times the figures take percentiles of.
#[derive(Debug, Clone)]
pub struct Measured {
    /// The counts over the interval.
    pub counts: Counts,
    /// Every started saga's time, µs, as the client saw it: to its end, to its failure, or
    /// (timed out) to the phase's deadline.
    pub saga_times: Vec<u64>,
    /// Time between consecutive steps of one saga in the interval, µs.
    pub step_times: Vec<i64>,
    /// The first few failures.
    pub errors: Vec<String>,
}

/// Measures phases on one database with the hub processes `hubs`.
#[derive(Debug)]
pub struct Meter {
    probe: Probe,
    hubs: HubProbes,
    idle_per_second: f64,
}

impl Meter {
    /// Connects the probe to `database_url` (migrated), waits until the backends have published
    /// what they did before now, and measures the hub's idle polling over `idle_window` (the
    /// hub running, nothing driven).
    pub async fn start(
        database_url: &str,
        hubs: HubProbes,
        idle_window: Duration,
    ) -> anyhow::Result<Self> {
        let mut probe = Probe::connect(database_url).await?;
        let now = probe.counters().await?.clock_micros;
        probe.await_published(now).await?;
        let mut meter = Self {
            probe,
            hubs,
            idle_per_second: 0.0,
        };
        let a = meter.read().await?;
        // A measurement window, not a wait for something to happen.
        tokio::time::sleep(idle_window).await;
        let b = meter.read().await?;
        let seconds = (b.at - a.at).as_secs_f64();
        let polled = (b.db.xact_commit - a.db.xact_commit) as f64
            - (b.db.probe_before - a.db.probe_before) as f64;
        meter.idle_per_second = if seconds > 0.0 {
            (polled / seconds).max(0.0)
        } else {
            0.0
        };
        Ok(meter)
    }

    /// The hub's idle polling, transactions per second.
    pub fn idle_transactions_per_second(&self) -> f64 {
        self.idle_per_second
    }

    /// Whether statements are counted.
    pub fn counts_statements(&self) -> bool {
        self.probe.counts_statements()
    }

    /// Statements (each one transaction) the meter's probe has run so far.
    pub fn probe_statements(&self) -> u64 {
        self.probe.issued()
    }

    async fn read(&mut self) -> anyhow::Result<Reading> {
        let argon2_seconds = self.hubs.argon2_seconds().await;
        let cpu = Cpu::now(&self.hubs);
        let db = self.probe.counters().await?;
        Ok(Reading {
            at: Instant::now(),
            db,
            cpu,
            argon2_seconds,
        })
    }

    /// Drives `phase.sagas` sagas (`saga(i)` plays the `i`-th) and measures the interval from
    /// just before the first to quiescence.
    pub async fn phase<F, Fut>(&mut self, phase: &Phase, saga: F) -> anyhow::Result<Measured>
    where
        F: Fn(usize) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let start = self.read().await?;
        let driven = drive(phase, saga).await?;
        let deadline = (start.at + phase.timeout).max(Instant::now() + QUIESCENCE_GRACE);
        let quiescent = self
            .await_quiescence(phase, start.db.clock_micros, deadline)
            .await?;
        let end = self.read().await?;
        let (steps, messages, step_times) = self
            .history(start.db.clock_micros, end.db.clock_micros)
            .await?;
        self.probe.await_published(end.db.clock_micros).await?;
        let published = self.read().await?;
        let transactions = Transactions {
            xact_commit: published.db.xact_commit - start.db.xact_commit,
            probe: published.db.probe_before - start.db.probe_before,
            idle_per_second: self.idle_per_second,
            publish_wait_seconds: (published.at - end.at).as_secs_f64(),
        };
        let mut errors = driven.errors;
        if !quiescent {
            errors.push(format!(
                "{}: not quiescent by the deadline (sagas still running or outbox rows unsent); \
                 the interval ends there",
                phase.name
            ));
        }
        let statements = start.db.statements.zip(end.db.statements).map(|(s, e)| {
            e - s - i64::try_from(end.db.probe_before - start.db.probe_before).unwrap_or(i64::MAX)
        });
        Ok(Measured {
            counts: Counts {
                started: driven.times.len(),
                completed: driven.completed,
                failed: driven.failed,
                timed_out: driven.timed_out,
                seconds: (end.at - start.at).as_secs_f64(),
                quiescent,
                tail_seconds: end
                    .at
                    .saturating_duration_since(driven.last_end)
                    .as_secs_f64(),
                steps,
                messages,
                transactions: transactions.hub(),
                transactions_from: transactions,
                statements,
                cpu_seconds: end.cpu.minus(start.cpu),
                argon2_seconds: (end.argon2_seconds - start.argon2_seconds).max(0.0),
            },
            saga_times: driven.times,
            step_times,
            errors,
        })
    }

    /// Waits until every saga of the phase's types created since `since` (database clock, µs)
    /// has ended and the outbox has no unsent row; false when `deadline` came first.
    async fn await_quiescence(
        &mut self,
        phase: &Phase,
        since: i64,
        deadline: Instant,
    ) -> anyhow::Result<bool> {
        let types = phase
            .saga_types
            .iter()
            .map(|t| format!("'{}'", t.replace('\'', "''")))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT (SELECT count(*) FROM sagas WHERE saga_type IN ({types}) AND NOT terminal
                       AND created_at >= to_timestamp({since} / 1000000.0))
                  + (SELECT count(*) FROM outbox WHERE sent_at IS NULL)"
        );
        loop {
            let busy: i64 = self.probe.row(sql.clone()).await?.try_get(0)?;
            if busy == 0 {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Steps and messages in `[from, to]` (database clock, µs), and the time between consecutive
    /// steps of one saga there (µs).
    async fn history(&mut self, from: i64, to: i64) -> anyhow::Result<(i64, i64, Vec<i64>)> {
        let between = |column: &str| {
            format!(
                "{column} BETWEEN to_timestamp({from} / 1000000.0) AND to_timestamp({to} / 1000000.0)"
            )
        };
        let counts = self
            .probe
            .row(format!(
                "SELECT (SELECT count(*) FROM saga_history WHERE {}),
                        (SELECT count(*) FROM outbox WHERE {})",
                between("at"),
                between("created_at")
            ))
            .await?;
        let gaps = self
            .probe
            .rows(format!(
                "SELECT (extract(epoch FROM gap) * 1000000)::bigint FROM (
                     SELECT at - lag(at) OVER (PARTITION BY saga_id ORDER BY version) AS gap
                     FROM saga_history WHERE {}) steps
                 WHERE gap IS NOT NULL",
                between("at")
            ))
            .await?;
        let gaps = gaps
            .iter()
            .map(|r| r.try_get::<i64, _>(0))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((counts.try_get(0)?, counts.try_get(1)?, gaps))
    }
}

/// How a phase's sagas went, as the client saw them.
struct Driven {
    /// Every started saga's time, µs.
    times: Vec<u64>,
    completed: usize,
    failed: usize,
    timed_out: usize,
    errors: Vec<String>,
    /// When the last saga ended (or the phase gave up on it).
    last_end: Instant,
}

/// Runs `phase.sagas` sagas, at most `phase.concurrency` at once, for at most `phase.timeout`;
/// a saga not done by then is aborted and counted as timed out, with its time up to then.
async fn drive<F, Fut>(phase: &Phase, saga: F) -> anyhow::Result<Driven>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let bar = super::progress_bar(phase.sagas as u64, &phase.name);
    let semaphore = Arc::new(tokio::sync::Semaphore::new(phase.concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let mut started = std::collections::HashMap::new();
    let deadline = Instant::now() + phase.timeout;
    let mut d = Driven {
        times: Vec::new(),
        completed: 0,
        failed: 0,
        timed_out: 0,
        errors: Vec::new(),
        last_end: Instant::now(),
    };
    let mut launched = 0;
    while launched < phase.sagas {
        let permit = tokio::select! {
            permit = semaphore.clone().acquire_owned() => permit?,
            Some(joined) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                d.record(joined, &mut started, &phase.name);
                continue;
            }
            () = tokio::time::sleep_until(deadline.into()) => break,
        };
        let run = saga(launched);
        let bar = bar.clone();
        let handle = tasks.spawn(async move {
            let r = run.await;
            drop(permit);
            bar.inc(1);
            r
        });
        started.insert(handle.id(), Instant::now());
        launched += 1;
    }
    loop {
        match tokio::time::timeout_at(deadline.into(), tasks.join_next_with_id()).await {
            Ok(Some(joined)) => d.record(joined, &mut started, &phase.name),
            Ok(None) => break,
            Err(_) => {
                let now = Instant::now();
                d.timed_out = started.len();
                d.times
                    .extend(started.values().map(|t| (now - *t).as_micros() as u64));
                d.errors.push(format!(
                    "{}: {} sagas not done within {:?} ({} never started)",
                    phase.name,
                    started.len(),
                    phase.timeout,
                    phase.sagas - launched
                ));
                tasks.abort_all();
                d.last_end = now;
                break;
            }
        }
    }
    bar.finish_and_clear();
    Ok(d)
}

type Joined = Result<(tokio::task::Id, anyhow::Result<()>), tokio::task::JoinError>;

impl Driven {
    /// Records one saga's end: its time from its start, and how it ended.
    fn record(
        &mut self,
        joined: Joined,
        started: &mut std::collections::HashMap<tokio::task::Id, Instant>,
        phase: &str,
    ) {
        let now = Instant::now();
        let id = match &joined {
            Ok((id, _)) => *id,
            Err(e) => e.id(),
        };
        let since = started.remove(&id).unwrap_or(now);
        self.times.push((now - since).as_micros() as u64);
        self.last_end = now;
        let error = match joined {
            Ok((_, Ok(()))) => {
                self.completed += 1;
                return;
            }
            Ok((_, Err(e))) => format!("{e:#}"),
            Err(e) => format!("a saga's task: {e}"),
        };
        self.failed += 1;
        if self.errors.len() < 5 {
            self.errors.push(format!("{phase}: {error}"));
        }
    }
}

/// User and system CPU time of a process (`pid` or `self`) so far, seconds; 0 where /proc is
/// not there.
fn cpu_seconds(pid: &str) -> f64 {
    // /proc/PID/stat counts in USER_HZ, which Linux fixes at 100 for user space.
    const TICKS_PER_SECOND: f64 = 100.0;
    let ticks = || -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command name (which may hold spaces) start at field 3; utime and
        // stime are fields 14 and 15.
        let rest = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        Some(fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?)
    };
    ticks().map_or(0.0, |t| t / TICKS_PER_SECOND)
}

/// CPU time so far of every process of this machine named `comm` (e.g. `postgres`,
/// `beam.smp`), seconds. Exited processes (PostgreSQL's short-lived backends) are not counted.
fn cpu_seconds_named(comm: &str) -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|pid| pid.bytes().all(|b| b.is_ascii_digit()))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == comm)
        })
        .map(|pid| cpu_seconds(&pid))
        .sum()
}

/// CPU time of the hubs, this process (simulators and clients), PostgreSQL, RabbitMQ: seconds
/// in [`Counts`], ms per saga in [`Rates`].
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Cpu {
    /// The `hub run` processes.
    pub hub: f64,
    /// This process: every simulator and the clients playing desks, citizens and banks (and
    /// the hub, when it runs in this process).
    pub simulators_and_clients: f64,
    /// PostgreSQL's processes.
    pub postgres: f64,
    /// RabbitMQ's Erlang VM.
    pub rabbitmq: f64,
}

impl Cpu {
    fn now(hubs: &HubProbes) -> Self {
        Self {
            hub: hubs.cpu_seconds(),
            simulators_and_clients: cpu_seconds("self"),
            postgres: cpu_seconds_named("postgres"),
            rabbitmq: cpu_seconds_named("beam.smp"),
        }
    }

    /// `self - before`, each at least 0.
    fn minus(self, before: Cpu) -> Cpu {
        let d = |a: f64, b: f64| (a - b).max(0.0);
        Cpu {
            hub: d(self.hub, before.hub),
            simulators_and_clients: d(self.simulators_and_clients, before.simulators_and_clients),
            postgres: d(self.postgres, before.postgres),
            rabbitmq: d(self.rabbitmq, before.rabbitmq),
        }
    }
}

/// Reads the hub processes: CPU time and peak memory from /proc, argon2 time from `/metrics` on
/// each one's internal listener (`HUB_OPS_ADDR`). None for a hub running in this process.
#[derive(Debug, Clone, Default)]
pub struct HubProbes {
    processes: Vec<(u32, std::net::SocketAddr)>,
    http: reqwest::Client,
}

impl HubProbes {
    /// The hub processes `processes` (id, internal listener), read with `http`.
    pub fn new(processes: Vec<(u32, std::net::SocketAddr)>, http: reqwest::Client) -> Self {
        Self { processes, http }
    }

    /// User and system CPU time of the hub processes so far, seconds.
    fn cpu_seconds(&self) -> f64 {
        self.processes
            .iter()
            .map(|(pid, _)| cpu_seconds(&pid.to_string()))
            .sum()
    }

    /// Argon2 time of the hub processes so far (`hub_argon2_seconds_sum`), seconds.
    async fn argon2_seconds(&self) -> f64 {
        let mut total = 0.0;
        for (_, addr) in &self.processes {
            let Ok(r) = self.http.get(format!("http://{addr}/metrics")).send().await else {
                continue;
            };
            let text = r.text().await.unwrap_or_default();
            total += text
                .lines()
                .filter(|l| l.starts_with("hub_argon2_seconds_sum"))
                .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
                .sum::<f64>();
        }
        total
    }

    /// The largest peak resident memory of a hub process, MiB.
    pub fn peak_memory_mib(&self) -> f64 {
        self.processes
            .iter()
            .map(|(pid, _)| super::peak_memory_mib(&pid.to_string()))
            .fold(0.0, f64::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A phase with planted counts: 100 sagas started (90 completed, 6 failed, 4 timed out),
    /// 20 s from `S` to quiescence, 1000 steps, 750 messages, 4000 statements.
    fn planted() -> Counts {
        Counts {
            started: 100,
            completed: 90,
            failed: 6,
            timed_out: 4,
            seconds: 20.0,
            quiescent: true,
            tail_seconds: 0.5,
            steps: 1000,
            messages: 750,
            transactions: 0.0,
            transactions_from: Transactions::default(),
            statements: Some(4000),
            cpu_seconds: Cpu {
                hub: 2.0,
                simulators_and_clients: 1.0,
                postgres: 3.0,
                rabbitmq: 0.5,
            },
            argon2_seconds: 0.25,
        }
    }

    #[test]
    fn rates_divide_by_the_interval_every_saga_started_and_every_step() {
        let r = planted().rates(250.0);
        // Steps over the interval to quiescence: 1000 / 20 s (not over the 18 s a client
        // clock might have seen, which would give 55.6).
        assert_eq!(r.steps_per_second, 50.0);
        assert_eq!(r.of_raw_limit, 0.2);
        assert_eq!(r.sagas_per_second, 4.5);
        // Per saga over the 100 started, not the 90 completed (which would give 8.33).
        assert_eq!(r.messages_per_saga, 7.5);
        assert_eq!(r.publishes_per_step, 0.75);
        assert_eq!(r.statements_per_step, Some(4.0));
        assert_eq!(r.cpu_ms_per_saga.hub, 20.0);
        assert_eq!(r.cpu_ms_per_saga.postgres, 30.0);
        assert_eq!(r.argon2_ms_per_saga, 2.5);
    }

    #[test]
    fn nothing_measured_gives_zeros_not_nan() {
        let r = Counts::default().rates(0.0);
        assert_eq!(r, Rates::default());
    }

    #[test]
    fn the_hub_transactions_leave_out_the_probe_and_the_idle_polling_after_the_end() {
        // 1300 commits between S and R: 40 were the probe's, and R came 10 s after E with the
        // hub polling 6 a second when idle: 1300 - 40 - 60 = 1200 were the hub's in [S, E].
        let t = Transactions {
            xact_commit: 1300,
            probe: 40,
            idle_per_second: 6.0,
            publish_wait_seconds: 10.0,
        };
        assert_eq!(t.hub(), 1200.0);
        let counts = Counts {
            transactions: t.hub(),
            ..planted()
        };
        assert_eq!(counts.rates(1.0).transactions_per_saga, 12.0);
        // Never below zero.
        let t = Transactions {
            xact_commit: 5,
            probe: 10,
            ..t
        };
        assert_eq!(t.hub(), 0.0);
    }
}
