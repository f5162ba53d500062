//! `hub bench`: how fast the hub runs its sagas on these servers, next to what the servers can
//! do at all. In one run, in a namespace and database of its own (removed afterwards), it
//! measures the raw limits ([`raw`]: broker hops and engine-step-shaped transactions), then
//! starts every simulator and the hub in this process (the demo's [`Stage`], with no added
//! latency) and drives a number of sagas of each type with a bounded number in flight: identifier
//! issuance, a free application at an HTTP back-office, a paid one (paid at ERIP). Figures come
//! from the client's clock (saga time) and from the database (steps, messages, transactions).

pub mod raw;

use std::future::Future;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;
use simulators::SimConfig;
use sqlx::PgPool;

use crate::demo::procedures::Journey;
use crate::stage::{Hubs, Person, Play, Stage, a1_phone, is_good, percentile};
use hub_runtime::config::HubConfig;

/// The desk the benchmark's identifier applications come from.
const DESK: &str = "bench-desk";

/// How long PostgreSQL may keep an idle backend's counters before publishing them to
/// `pg_stat_database` (PostgreSQL 15's `PGSTAT_IDLE_INTERVAL` is 10 s); the transaction count of
/// a phase is read this long after it ends.
const STATS_SETTLE: Duration = Duration::from_secs(11);

/// A saga type the benchmark drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum SagaKind {
    /// Identifier issuance: apply, read the SMS code from the phone, confirm, issued.
    Issuance,
    /// A free procedure at an HTTP back-office (18.13, tax-ministry): submit, decided.
    Free,
    /// A paid procedure at an HTTP back-office (16.6, Minsk city executive committee): submit,
    /// pay at ERIP, decided.
    Paid,
}

impl SagaKind {
    /// Every type, in the order the benchmark runs them.
    pub const ALL: [SagaKind; 3] = [SagaKind::Issuance, SagaKind::Free, SagaKind::Paid];

    fn name(self) -> &'static str {
        match self {
            SagaKind::Issuance => "issuance",
            SagaKind::Free => "free",
            SagaKind::Paid => "paid",
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Sagas per type.
    pub sagas: usize,
    /// Sagas in flight at once.
    pub concurrency: usize,
    /// The types to drive (each once, in [`SagaKind::ALL`]'s order).
    pub kinds: Vec<SagaKind>,
    /// The longest a phase (a raw measurement, a saga type) may take.
    pub phase_timeout: Duration,
    /// Operations of each raw measurement.
    pub raw_operations: usize,
    /// The numbers of `hub run` processes to measure with, one run each (e.g. 1, 2, 3).
    pub processes: Vec<usize>,
}

/// The raw limits of the servers, measured in the same run.
#[derive(Debug, Clone, Serialize)]
pub struct RawLimits {
    /// Consume, publish persistent with a confirm, ack, between two quorum queues.
    pub broker_hops: raw::Rate,
    /// Hops in flight at once (the hub's prefetch).
    pub broker_in_flight: u16,
    /// Engine-step-shaped transactions.
    pub database_steps: raw::Rate,
    /// Transactions at once (the hub's pool size).
    pub database_concurrency: u32,
    /// The lower of the two, per second: what an engine step cannot beat.
    pub lower_per_second: f64,
}

/// The figures of one saga type.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    /// The saga type.
    pub saga_type: SagaKind,
    /// Sagas that came to their expected end.
    pub sagas: usize,
    /// Sagas that failed or timed out.
    pub failed: usize,
    /// The first few failures.
    pub errors: Vec<String>,
    /// Wall time of the phase, seconds.
    pub seconds: f64,
    /// Finished sagas per second of the phase.
    pub sagas_per_second: f64,
    /// Engine steps (`saga_history` rows) of the phase.
    pub steps: i64,
    /// Engine steps per second of the phase.
    pub steps_per_second: f64,
    /// Engine steps per second over the lower raw limit.
    pub of_raw_limit: f64,
    /// Time from the first command to the final event, as the client saw it, ms.
    pub saga_p50_ms: f64,
    /// The same, 99th percentile.
    pub saga_p99_ms: f64,
    /// Time between consecutive steps of the same saga (`saga_history.at`), ms.
    pub step_p50_ms: f64,
    /// The same, 99th percentile.
    pub step_p99_ms: f64,
    /// Messages the hub published (outbox rows) per saga.
    pub messages_per_saga: f64,
    /// Broker publishes (outbox rows) per engine step.
    pub publishes_per_step: f64,
    /// Committed database transactions (`pg_stat_database.xact_commit`) per saga.
    pub db_transactions_per_saga: f64,
    /// Database statements (round trips, `BEGIN` and `COMMIT` included) of every component per
    /// engine step, from `pg_stat_statements`; absent where that extension is not loaded.
    pub db_statements_per_step: Option<f64>,
    /// CPU time of the hub processes per saga, ms.
    pub hub_cpu_ms_per_saga: f64,
    /// CPU time per saga, ms, of each party on the machine.
    pub cpu_ms_per_saga: Cpu,
    /// Argon2 time (hashing and verifying codes and passwords) per saga, ms.
    pub argon2_ms_per_saga: f64,
    /// Argon2's share of the hub processes' CPU time in the phase.
    pub argon2_share_of_hub_cpu: f64,
    /// The largest peak resident memory (VmHWM) of a hub process at the end of the phase, MiB.
    pub peak_memory_mib: f64,
}

/// Effects counted after a run: each must have happened once.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Effects {
    /// SMS messages in the issuance phones' inboxes.
    pub sms: usize,
    /// Of those, the same text to the same phone a second time.
    pub sms_duplicates: usize,
    /// ERIP invoices.
    pub invoices: usize,
    /// Invoices for an order number that already had one.
    pub invoice_duplicates: usize,
    /// Events the desk and cabinet heard (per application and event type: issued, accepted,
    /// paid, registered, decided ...).
    pub portal_events: usize,
    /// Of those, the same event for the same application under a second message id.
    pub portal_duplicates: usize,
    /// The first few of those, as `type application`.
    pub portal_twice: Vec<String>,
}

impl Effects {
    /// Effects that happened more than once.
    pub fn duplicates(&self) -> usize {
        self.sms_duplicates + self.invoice_duplicates + self.portal_duplicates
    }
}

/// One run: the saga types with a number of hub processes, on a stage of its own.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// `hub run` processes.
    pub processes: usize,
    /// The namespace the run used (its queues are gone afterwards).
    pub namespace: String,
    /// One queue of that namespace, for checking that it is gone.
    pub probe_queue: String,
    /// The database the run used (gone afterwards).
    pub database: String,
    /// The figures by saga type.
    pub types: Vec<Figures>,
    /// Each hub process's peak resident memory (VmHWM) at the end, MiB.
    pub hub_peak_memory_mib: Vec<f64>,
    /// What happened how often.
    pub effects: Effects,
}

/// The benchmark's report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// CPU cores of this machine.
    pub cores: usize,
    /// Sagas per type.
    pub sagas_per_type: usize,
    /// Sagas in flight at once.
    pub concurrency: usize,
    /// The raw limits.
    pub raw: RawLimits,
    /// One run per number of hub processes.
    pub runs: Vec<Run>,
    /// This process's peak resident memory (VmHWM: the simulators and the clients), MiB.
    pub peak_memory_mib: f64,
    /// Wall time of the whole benchmark, seconds.
    pub total_seconds: f64,
}

impl Report {
    /// Sagas that failed, over every run and type.
    pub fn failed(&self) -> usize {
        self.runs
            .iter()
            .flat_map(|r| &r.types)
            .map(|t| t.failed)
            .sum()
    }

    /// Effects that happened more than once, over every run.
    pub fn duplicates(&self) -> usize {
        self.runs.iter().map(|r| r.effects.duplicates()).sum()
    }
}

/// Runs the benchmark on the servers `config` names.
pub async fn run(config: &HubConfig, settings: &Settings) -> anyhow::Result<Report> {
    let started = Instant::now();
    let mut raw = None;
    let mut runs = Vec::new();
    for &processes in &settings.processes {
        let (limits, run) = run_with(config, settings, processes, raw.clone()).await?;
        raw = Some(limits);
        runs.push(run);
    }
    Ok(Report {
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        sagas_per_type: settings.sagas,
        concurrency: settings.concurrency,
        raw: raw.context("no run: give at least one number of processes")?,
        runs,
        peak_memory_mib: peak_memory_mib("self"),
        total_seconds: started.elapsed().as_secs_f64(),
    })
}

/// One run with `processes` hubs, on a stage of its own; measures the raw limits first unless
/// an earlier run did.
async fn run_with(
    config: &HubConfig,
    settings: &Settings,
    processes: usize,
    raw: Option<RawLimits>,
) -> anyhow::Result<(RawLimits, Run)> {
    // Procedures may reuse people; identifiers are issued once per person.
    let people = if settings.kinds.contains(&SagaKind::Issuance) {
        settings.sagas
    } else {
        settings.sagas.min(2000)
    };
    let mut sims = SimConfig {
        population: (people * 3).max(200),
        ..SimConfig::ephemeral()
    };
    sims.backoffice.decide_after = Duration::ZERO;
    sims.backoffice.complaint_decide_after = Duration::ZERO;
    let stage = Stage::start(config, sims, "bench", Hubs::Processes(processes.max(1))).await?;
    let namespace = stage.hub_config.namespace.to_string();
    // The raw measurement's queues go with the stage, also when a failed measurement left them.
    for queue in raw::queues(&namespace) {
        stage.remove_later(queue);
    }
    let outcome = play(&stage, settings, people, raw).await;
    let hub_peak_memory_mib = stage
        .hub_processes()
        .iter()
        .map(|(pid, _)| peak_memory_mib(&pid.to_string()))
        .collect();
    // Leave nothing behind, whatever happened: the raw queues, the stage's queues, exchanges
    // and database.
    let database = stage.database().to_owned();
    let stopped = stage.stop().await;
    let (raw, types, effects, probe_queue) = outcome?;
    stopped?;
    Ok((
        raw,
        Run {
            processes,
            namespace,
            probe_queue,
            database,
            types,
            hub_peak_memory_mib,
            effects,
        },
    ))
}

type Played = (RawLimits, Vec<Figures>, Effects, String);

async fn play(
    stage: &Stage,
    settings: &Settings,
    people: usize,
    raw: Option<RawLimits>,
) -> anyhow::Result<Played> {
    let config = &stage.hub_config;
    let probe_queue = hub_runtime::broker::describe(&stage.topology, config.delivery_limit)
        .into_iter()
        .find_map(|d| match d {
            hub_runtime::broker::Declaration::Queue { name, .. } => Some(name),
            _ => None,
        })
        .context("the hub declares no queue")?;
    let pool = stage.pool(4).await?;
    let statements = Statements::new(&pool).await;

    // 1. The raw limits, while the hub idles (once per benchmark).
    let raw = match raw {
        Some(raw) => raw,
        None => measure_raw(stage, settings).await?,
    };

    // 2. The sagas, one type at a time.
    let today = chrono::Utc::now().date_naive();
    let people: Vec<Person> = stage
        .population(stage.population)
        .await?
        .into_iter()
        .filter(|p| is_good(p, today))
        .take(people)
        .collect();
    anyhow::ensure!(
        !people.is_empty()
            && (people.len() == settings.sagas || !settings.kinds.contains(&SagaKind::Issuance)),
        "the simulated population has only {} people every issuance rule lets through",
        people.len()
    );
    let people = Arc::new(people);
    let hubs = HubProbes::of(stage);
    tokio::time::sleep(STATS_SETTLE).await;
    let mut types = Vec::new();
    for kind in SagaKind::ALL {
        if !settings.kinds.contains(&kind) {
            continue;
        }
        let play = stage.play.clone();
        let people = people.clone();
        let figures = phase(&pool, &statements, &hubs, kind, settings, &raw, move |i| {
            let (play, people) = (play.clone(), people.clone());
            async move { journey(&play, kind, &people[i % people.len()], i).await }
        })
        .await?;
        types.push(figures);
    }
    let issued = if settings.kinds.contains(&SagaKind::Issuance) {
        settings.sagas
    } else {
        0
    };
    let effects = effects(stage, issued).await?;
    pool.close().await;
    Ok((raw, types, effects, probe_queue))
}

async fn measure_raw(stage: &Stage, settings: &Settings) -> anyhow::Result<RawLimits> {
    let config = &stage.hub_config;
    let broker_hops = tokio::time::timeout(
        settings.phase_timeout,
        raw::broker_hops(
            &config.amqp_url,
            &config.namespace.to_string(),
            settings.raw_operations,
            config.prefetch,
            settings.phase_timeout,
        ),
    )
    .await
    .context("the raw broker measurement timed out")??;
    let steps_pool = stage.pool(config.db_pool).await?;
    let database_steps = tokio::time::timeout(
        settings.phase_timeout,
        raw::database_steps(
            &steps_pool,
            settings.raw_operations,
            config.db_pool as usize,
        ),
    )
    .await
    .context("the raw database measurement timed out")??;
    steps_pool.close().await;
    Ok(RawLimits {
        lower_per_second: broker_hops.per_second.min(database_steps.per_second),
        broker_hops,
        broker_in_flight: config.prefetch,
        database_steps,
        database_concurrency: config.db_pool,
    })
}

/// Counts what happened more than once: SMS texts per phone, invoices per order number, the
/// portal's events per application.
async fn effects(stage: &Stage, issued: usize) -> anyhow::Result<Effects> {
    let mut e = Effects::default();
    for (_, mut texts) in stage.play.inboxes((0..issued).map(a1_phone)).await? {
        e.sms += texts.len();
        texts.sort_unstable();
        e.sms_duplicates += texts.windows(2).filter(|w| w[0] == w[1]).count();
    }
    let mut orders = stage.play.invoice_orders().await?;
    e.invoices = orders.len();
    orders.sort_unstable();
    e.invoice_duplicates = orders.windows(2).filter(|w| w[0] == w[1]).count();
    let (events, twice) = stage.play.desk.effects();
    (e.portal_events, e.portal_duplicates) = (events, twice.len());
    e.portal_twice = twice.into_iter().take(5).collect();
    Ok(e)
}
/// One saga of `kind`, played to its expected end.
async fn journey(play: &Play, kind: SagaKind, person: &Person, i: usize) -> anyhow::Result<()> {
    match kind {
        SagaKind::Issuance => {
            let number = format!("B-{i:05}");
            let phone = a1_phone(i);
            play.issue(person, &number, &phone, DESK).await?;
            Ok(())
        }
        SagaKind::Free | SagaKind::Paid => {
            let journey = if kind == SagaKind::Free {
                Journey::FreeOverHttp
            } else {
                Journey::PaidOverHttp
            };
            // The people issued their identifiers in the first phase (when it ran; an unknown
            // identifier only means no notice SMS).
            play.procedure_as_expected(journey, &person.identification_number)
                .await
        }
    }
}

/// Drives `settings.sagas` sagas of `kind` with `settings.concurrency` in flight and reads the
/// phase's figures from the database.
async fn phase<F, Fut>(
    pool: &PgPool,
    statements: &Statements,
    hubs: &HubProbes,
    kind: SagaKind,
    settings: &Settings,
    raw: &RawLimits,
    saga: F,
) -> anyhow::Result<Figures>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let since: DateTime<Utc> = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(pool)
        .await?;
    let before = Counters::read(pool, statements, hubs).await?;
    let driven = drive(kind, settings, saga).await?;
    // Late steps (an SMS report after the final event) and idle backends' counters come in.
    tokio::time::sleep(STATS_SETTLE).await;
    let after = Counters::read(pool, statements, hubs).await?;
    let history = History::since(pool, since).await?;
    Ok(figures(kind, raw, driven, &before, &after, history, hubs))
}

/// The database's and the hub processes' counters at one moment.
struct Counters {
    commits: i64,
    statements: Option<i64>,
    cpu: Cpu,
    argon2_seconds: f64,
}

impl Counters {
    async fn read(
        pool: &PgPool,
        statements: &Statements,
        hubs: &HubProbes,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            commits: commits(pool).await?,
            statements: statements.count(pool).await,
            cpu: Cpu::now(hubs),
            argon2_seconds: hubs.argon2_seconds().await,
        })
    }
}

/// How a phase's sagas went, as the client saw them.
struct Driven {
    /// Each finished saga's time, µs.
    times: Vec<u64>,
    failed: usize,
    /// The first few failures.
    errors: Vec<String>,
    /// Wall time of the phase.
    seconds: f64,
}

/// Runs `settings.sagas` sagas, at most `settings.concurrency` at once, for at most
/// `settings.phase_timeout`.
async fn drive<F, Fut>(kind: SagaKind, settings: &Settings, saga: F) -> anyhow::Result<Driven>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let bar = progress_bar(settings.sagas as u64, kind.name());
    let semaphore = Arc::new(tokio::sync::Semaphore::new(settings.concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let started = Instant::now();
    for i in 0..settings.sagas {
        let permit = semaphore.clone().acquire_owned().await?;
        let run = saga(i);
        let bar = bar.clone();
        tasks.spawn(async move {
            let t = Instant::now();
            let r = run.await.map(|()| t.elapsed());
            drop(permit);
            bar.inc(1);
            r
        });
    }
    let mut driven = Driven {
        times: Vec::new(),
        failed: 0,
        errors: Vec::new(),
        seconds: 0.0,
    };
    let deadline = started + settings.phase_timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, tasks.join_next()).await {
            Ok(Some(Ok(Ok(took)))) => driven.times.push(took.as_micros() as u64),
            Ok(Some(Ok(Err(e)))) => {
                driven.failed += 1;
                if driven.errors.len() < 5 {
                    driven.errors.push(format!("{e:#}"));
                }
            }
            Ok(Some(Err(e))) => {
                driven.failed += 1;
                driven.errors.push(format!("a saga's task: {e}"));
            }
            Ok(None) => break,
            Err(_) => {
                driven.failed += tasks.len();
                driven.errors.push(format!(
                    "{} sagas not done within {:?}",
                    tasks.len(),
                    settings.phase_timeout
                ));
                tasks.abort_all();
                break;
            }
        }
    }
    driven.seconds = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    Ok(driven)
}

/// What the engine recorded in a phase: its steps, the messages it published, and the time
/// between consecutive steps of a saga (µs).
struct History {
    steps: i64,
    messages: i64,
    step_times: Vec<i64>,
}

impl History {
    async fn since(pool: &PgPool, since: DateTime<Utc>) -> anyhow::Result<Self> {
        let steps: i64 = sqlx::query_scalar("SELECT count(*) FROM saga_history WHERE at >= $1")
            .bind(since)
            .fetch_one(pool)
            .await?;
        let messages: i64 =
            sqlx::query_scalar("SELECT count(*) FROM outbox WHERE created_at >= $1")
                .bind(since)
                .fetch_one(pool)
                .await?;
        let step_times: Vec<i64> = sqlx::query_scalar(
            "SELECT (EXTRACT(EPOCH FROM gap) * 1000000)::bigint FROM (
                 SELECT at - lag(at) OVER (PARTITION BY saga_id ORDER BY version) AS gap
                 FROM saga_history WHERE at >= $1) steps
             WHERE gap IS NOT NULL",
        )
        .bind(since)
        .fetch_all(pool)
        .await?;
        Ok(Self {
            steps,
            messages,
            step_times,
        })
    }
}

/// A phase's figures from what the client saw and the counters before and after it.
fn figures(
    kind: SagaKind,
    raw: &RawLimits,
    mut driven: Driven,
    before: &Counters,
    after: &Counters,
    mut history: History,
    hubs: &HubProbes,
) -> Figures {
    let (done, steps, seconds) = (driven.times.len(), history.steps, driven.seconds);
    let per_saga = |n: f64| if done > 0 { n / done as f64 } else { 0.0 };
    let per_step = |n: f64| if steps > 0 { n / steps as f64 } else { 0.0 };
    let cpu_per_saga = after.cpu.per(before.cpu, done);
    let argon2 = after.argon2_seconds - before.argon2_seconds;
    let steps_per_second = steps as f64 / seconds;
    let messages = history.messages as f64;
    Figures {
        saga_type: kind,
        sagas: done,
        failed: driven.failed,
        errors: driven.errors,
        seconds,
        sagas_per_second: done as f64 / seconds,
        steps,
        steps_per_second,
        of_raw_limit: if raw.lower_per_second > 0.0 {
            steps_per_second / raw.lower_per_second
        } else {
            0.0
        },
        saga_p50_ms: percentile(&mut driven.times, 0.50) as f64 / 1000.0,
        saga_p99_ms: percentile(&mut driven.times, 0.99) as f64 / 1000.0,
        step_p50_ms: percentile(&mut history.step_times, 0.50) as f64 / 1000.0,
        step_p99_ms: percentile(&mut history.step_times, 0.99) as f64 / 1000.0,
        messages_per_saga: per_saga(messages),
        publishes_per_step: per_step(messages),
        db_transactions_per_saga: per_saga(after.commits.saturating_sub(before.commits) as f64),
        db_statements_per_step: before
            .statements
            .zip(after.statements)
            .map(|(b, a)| per_step(a.saturating_sub(b) as f64)),
        hub_cpu_ms_per_saga: cpu_per_saga.hub,
        cpu_ms_per_saga: cpu_per_saga,
        argon2_ms_per_saga: per_saga(argon2 * 1000.0),
        argon2_share_of_hub_cpu: if cpu_per_saga.hub > 0.0 {
            per_saga(argon2 * 1000.0) / cpu_per_saga.hub
        } else {
            0.0
        },
        peak_memory_mib: hubs.peak_memory_mib(),
    }
}

/// Transactions committed in this database so far.
async fn commits(pool: &PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(pool)
    .await?)
}

/// A progress bar on stderr when it is a terminal; hidden otherwise.
fn progress_bar(total: u64, name: &str) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg:>9} [{bar:40}] {pos}/{len} {per_sec}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(name.to_owned());
    bar
}

/// A process's peak resident memory (VmHWM), MiB: `pid` is a process id or `self`; 0 where
/// /proc is not there.
fn peak_memory_mib(pid: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Database statements of this database so far, from `pg_stat_statements` where PostgreSQL
/// loads it (`shared_preload_libraries`); the bench creates the extension in its database.
struct Statements {
    available: bool,
}

impl Statements {
    async fn new(pool: &PgPool) -> Self {
        let created = sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .execute(pool)
            .await
            .is_ok();
        let mut s = Self { available: created };
        s.available = s.count(pool).await.is_some();
        s
    }

    async fn count(&self, pool: &PgPool) -> Option<i64> {
        if !self.available {
            return None;
        }
        sqlx::query_scalar(
            "SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .fetch_one(pool)
        .await
        .ok()
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

/// CPU seconds so far: the hubs, this process (simulators and clients), PostgreSQL, RabbitMQ.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Cpu {
    /// The `hub run` processes.
    pub hub: f64,
    /// This process: every simulator and the clients playing desks, citizens and banks.
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

    /// `self - before`, in ms per `n`.
    fn per(self, before: Cpu, n: usize) -> Cpu {
        let per = |a: f64, b: f64| {
            if n > 0 {
                (a - b).max(0.0) * 1000.0 / n as f64
            } else {
                0.0
            }
        };
        Cpu {
            hub: per(self.hub, before.hub),
            simulators_and_clients: per(self.simulators_and_clients, before.simulators_and_clients),
            postgres: per(self.postgres, before.postgres),
            rabbitmq: per(self.rabbitmq, before.rabbitmq),
        }
    }
}

/// Reads the hub processes: CPU time and peak memory from /proc, argon2 time from `/metrics` on
/// each one's internal listener (`HUB_OPS_ADDR`).
struct HubProbes {
    processes: Vec<(u32, std::net::SocketAddr)>,
    http: reqwest::Client,
}

impl HubProbes {
    fn of(stage: &Stage) -> Self {
        Self {
            processes: stage.hub_processes(),
            http: stage.play.http.clone(),
        }
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
    fn peak_memory_mib(&self) -> f64 {
        self.processes
            .iter()
            .map(|(pid, _)| peak_memory_mib(&pid.to_string()))
            .fold(0.0, f64::max)
    }
}

/// The report as aligned tables.
pub fn table(r: &Report) -> String {
    let mut out = raw_lines(&r.raw);
    out.push_str(&figures_table(r));
    out.push_str(&cpu_lines(r));
    out.push('\n');
    out.push_str(&effects_lines(r));
    out.push_str(&format!(
        "\n{} sagas per type, {} in flight; {} cores (the hubs, the simulators and clients, \
         RabbitMQ and PostgreSQL share them); argon2 % is of the hubs' CPU; stmts/step counts \
         every component's statements (BEGIN and COMMIT too) per engine step; bench process peak \
         {:.0} MiB; {:.0} s in all\n",
        r.sagas_per_type, r.concurrency, r.cores, r.peak_memory_mib, r.total_seconds
    ));
    out.push_str(&warnings(r));
    out
}

/// The raw limits, two lines.
fn raw_lines(raw: &RawLimits) -> String {
    format!(
        "raw limits (same servers, same run)\n  broker hops: consume, persistent publish with confirm, ack; quorum queues, {} in flight  {:>9.0} /s\n  database steps: engine-step-shaped transactions, {} at once                          {:>9.0} /s\n\n",
        raw.broker_in_flight,
        raw.broker_hops.per_second,
        raw.database_concurrency,
        raw.database_steps.per_second,
    )
}

/// The columns of the figures table.
const FIGURES_HEADER: [&str; 18] = [
    "hubs",
    "type",
    "sagas",
    "failed",
    "sagas/s",
    "steps/s",
    "of raw",
    "saga p50",
    "saga p99",
    "step p50",
    "step p99",
    "msgs/saga",
    "pub/step",
    "xacts/saga",
    "stmts/step",
    "hub CPU/saga",
    "argon2/saga",
    "hub MiB",
];

/// The figures of every run and type, a row each, in aligned columns (the type left-aligned).
fn figures_table(r: &Report) -> String {
    let mut rows = vec![FIGURES_HEADER.map(str::to_owned).to_vec()];
    for run in &r.runs {
        rows.extend(run.types.iter().map(|t| figures_row(run.processes, t)));
    }
    let widths: Vec<usize> = (0..FIGURES_HEADER.len())
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, v)| {
                if c == 1 {
                    format!("{v:<w$}", w = widths[c])
                } else {
                    format!("{v:>w$}", w = widths[c])
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// One row of the figures table: `t` with `processes` hubs.
fn figures_row(processes: usize, t: &Figures) -> Vec<String> {
    vec![
        processes.to_string(),
        t.saga_type.name().to_owned(),
        t.sagas.to_string(),
        t.failed.to_string(),
        format!("{:.1}", t.sagas_per_second),
        format!("{:.1}", t.steps_per_second),
        format!("{:.1}%", t.of_raw_limit * 100.0),
        format!("{:.0} ms", t.saga_p50_ms),
        format!("{:.0} ms", t.saga_p99_ms),
        format!("{:.1} ms", t.step_p50_ms),
        format!("{:.1} ms", t.step_p99_ms),
        format!("{:.1}", t.messages_per_saga),
        format!("{:.2}", t.publishes_per_step),
        format!("{:.1}", t.db_transactions_per_saga),
        t.db_statements_per_step
            .map_or_else(|| "-".to_owned(), |n| format!("{n:.1}")),
        format!("{:.1} ms", t.hub_cpu_ms_per_saga),
        if t.argon2_ms_per_saga > 0.0 {
            format!(
                "{:.1} ms ({:.0}%)",
                t.argon2_ms_per_saga,
                t.argon2_share_of_hub_cpu * 100.0
            )
        } else {
            "-".to_owned()
        },
        format!("{:.0}", t.peak_memory_mib),
    ]
}

/// Where the machine's CPU time went, per saga, a line per run and type.
fn cpu_lines(r: &Report) -> String {
    let mut out = String::from("\nCPU per saga (where the machine's time went)\n");
    for run in &r.runs {
        for t in &run.types {
            let c = &t.cpu_ms_per_saga;
            out.push_str(&format!(
                "  {} hub{} {:<9} hub {:>6.1} ms   simulators+clients {:>6.1} ms   PostgreSQL {:>6.1} ms   RabbitMQ {:>6.1} ms\n",
                run.processes,
                if run.processes == 1 { " " } else { "s" },
                t.saga_type.name(),
                c.hub,
                c.simulators_and_clients,
                c.postgres,
                c.rabbitmq
            ));
        }
    }
    out
}

/// The effects of each run and the hubs' peak memory, a line per run.
fn effects_lines(r: &Report) -> String {
    let mut out = String::new();
    for run in &r.runs {
        let e = &run.effects;
        out.push_str(&format!(
            "{} hub process{}: SMS {} ({} twice), ERIP invoices {} ({} twice), portal events {} ({} twice); hub peak memory {} MiB\n",
            run.processes,
            if run.processes == 1 { "" } else { "es" },
            e.sms,
            e.sms_duplicates,
            e.invoices,
            e.invoice_duplicates,
            e.portal_events,
            e.portal_duplicates,
            run.hub_peak_memory_mib
                .iter()
                .map(|m| format!("{m:.0}"))
                .collect::<Vec<_>>()
                .join(" + "),
        ));
    }
    out
}

/// Effects seen twice and sagas' errors, a `!` line each.
fn warnings(r: &Report) -> String {
    let mut out = String::new();
    for run in &r.runs {
        for twice in &run.effects.portal_twice {
            out.push_str(&format!("  ! {} hubs, twice: {twice}\n", run.processes));
        }
        for t in &run.types {
            for e in &t.errors {
                out.push_str(&format!(
                    "  ! {} hubs, {}: {e}\n",
                    run.processes,
                    t.saga_type.name()
                ));
            }
        }
    }
    out
}
