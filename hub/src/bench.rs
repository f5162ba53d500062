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
use contracts::issuance::{ConfirmPhone, IdentifierIssued, PhoneCodeSent};
use serde::Serialize;
use simulators::SimConfig;
use sqlx::PgPool;

use crate::config::HubConfig;
use crate::demo::procedures::Journey;
use crate::stage::{Person, Play, Stage, a1_phone, identifier_application, is_good, percentile};

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
    /// Committed database transactions (`pg_stat_database.xact_commit`) per saga.
    pub db_transactions_per_saga: f64,
    /// The process's peak resident memory (VmHWM) at the end of the phase, MiB.
    pub peak_memory_mib: f64,
}

/// The benchmark's report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The namespace the run used (its queues are gone afterwards).
    pub namespace: String,
    /// One queue of that namespace, for checking that it is gone.
    pub probe_queue: String,
    /// The database the run used (gone afterwards).
    pub database: String,
    /// CPU cores of this machine.
    pub cores: usize,
    /// Sagas per type.
    pub sagas_per_type: usize,
    /// Sagas in flight at once.
    pub concurrency: usize,
    /// The raw limits.
    pub raw: RawLimits,
    /// The figures by saga type.
    pub types: Vec<Figures>,
    /// The process's peak resident memory (VmHWM: the hub and every simulator), MiB.
    pub peak_memory_mib: f64,
    /// Wall time of the whole run, seconds.
    pub total_seconds: f64,
}

impl Report {
    /// Sagas that failed, over every type.
    pub fn failed(&self) -> usize {
        self.types.iter().map(|t| t.failed).sum()
    }
}

/// Runs the benchmark on the servers `config` names.
pub async fn run(config: &HubConfig, settings: &Settings) -> anyhow::Result<Report> {
    let started = Instant::now();
    let mut sims = SimConfig {
        population: (settings.sagas * 3).max(200),
        ..SimConfig::ephemeral()
    };
    sims.backoffice.decide_after = Duration::ZERO;
    sims.backoffice.complaint_decide_after = Duration::ZERO;
    let stage = Stage::start(config, sims, "bench").await?;
    let namespace = stage.hub_config.namespace.to_string();
    let outcome = play(&stage, settings).await;
    // Leave nothing behind, whatever happened: the raw queues, the stage's queues, exchanges
    // and database.
    let raw_cleanup = delete_raw_queues(&stage.hub_config.amqp_url, &namespace).await;
    let stopped = stage.stop().await;
    let (raw, types, probe_queue, database) = outcome?;
    stopped?;
    raw_cleanup?;
    Ok(Report {
        namespace,
        probe_queue,
        database,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        sagas_per_type: settings.sagas,
        concurrency: settings.concurrency,
        raw,
        types,
        peak_memory_mib: peak_memory_mib(),
        total_seconds: started.elapsed().as_secs_f64(),
    })
}

type Played = (RawLimits, Vec<Figures>, String, String);

async fn play(stage: &Stage, settings: &Settings) -> anyhow::Result<Played> {
    let config = &stage.hub_config;
    let probe_queue = crate::broker::describe(&stage.topology, config.delivery_limit)
        .into_iter()
        .find_map(|d| match d {
            crate::broker::Declaration::Queue { name, .. } => Some(name),
            _ => None,
        })
        .context("the hub declares no queue")?;
    let pool = stage.pool(4).await?;

    // 1. The raw limits, while the hub idles.
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
    let raw = RawLimits {
        lower_per_second: broker_hops.per_second.min(database_steps.per_second),
        broker_hops,
        broker_in_flight: config.prefetch,
        database_steps,
        database_concurrency: config.db_pool,
    };

    // 2. The sagas, one type at a time.
    let today = chrono::Utc::now().date_naive();
    let people: Vec<Person> = stage
        .population(stage.population)
        .await?
        .into_iter()
        .filter(|p| is_good(p, today))
        .take(settings.sagas)
        .collect();
    anyhow::ensure!(
        people.len() == settings.sagas,
        "the simulated population has only {} people every issuance rule lets through",
        people.len()
    );
    let people = Arc::new(people);
    tokio::time::sleep(STATS_SETTLE).await;
    let mut types = Vec::new();
    for kind in SagaKind::ALL {
        if !settings.kinds.contains(&kind) {
            continue;
        }
        let play = stage.play.clone();
        let people = people.clone();
        let figures = phase(&pool, kind, settings, &raw, move |i| {
            let (play, people) = (play.clone(), people.clone());
            async move { journey(&play, kind, &people[i], i).await }
        })
        .await?;
        types.push(figures);
    }
    pool.close().await;
    Ok((raw, types, probe_queue, stage.database().to_owned()))
}

/// One saga of `kind`, played to its expected end.
async fn journey(play: &Play, kind: SagaKind, person: &Person, i: usize) -> anyhow::Result<()> {
    match kind {
        SagaKind::Issuance => {
            let number = format!("B-{i:05}");
            let phone = a1_phone(i);
            play.send(&identifier_application(person, &number, &phone, DESK))
                .await?;
            let _: PhoneCodeSent = play.desk.wait(&number).await?;
            let code = play.code_from_phone(&phone).await?;
            play.send(&ConfirmPhone {
                desk_id: DESK.into(),
                application_number: number.clone(),
                code,
            })
            .await?;
            let _: IdentifierIssued = play.desk.wait(&number).await?;
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
            let (outcome, _) = play
                .procedure(journey, &person.identification_number)
                .await?;
            anyhow::ensure!(outcome == journey.expected(), "came to {outcome}");
            Ok(())
        }
    }
}

/// Drives `settings.sagas` sagas of `kind` with `settings.concurrency` in flight and reads the
/// phase's figures from the database.
async fn phase<F, Fut>(
    pool: &PgPool,
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
    let commits_before = commits(pool).await?;
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
    let mut times = Vec::new();
    let mut errors = Vec::new();
    let mut failed = 0;
    let deadline = started + settings.phase_timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, tasks.join_next()).await {
            Ok(Some(Ok(Ok(took)))) => times.push(took.as_micros() as u64),
            Ok(Some(Ok(Err(e)))) => {
                failed += 1;
                if errors.len() < 5 {
                    errors.push(format!("{e:#}"));
                }
            }
            Ok(Some(Err(e))) => {
                failed += 1;
                errors.push(format!("a saga's task: {e}"));
            }
            Ok(None) => break,
            Err(_) => {
                failed += tasks.len();
                errors.push(format!(
                    "{} sagas not done within {:?}",
                    tasks.len(),
                    settings.phase_timeout
                ));
                tasks.abort_all();
                break;
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    // Late steps (an SMS report after the final event) and idle backends' counters come in.
    tokio::time::sleep(STATS_SETTLE).await;
    let commits_after = commits(pool).await?;
    let steps: i64 = sqlx::query_scalar("SELECT count(*) FROM saga_history WHERE at >= $1")
        .bind(since)
        .fetch_one(pool)
        .await?;
    let messages: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE created_at >= $1")
        .bind(since)
        .fetch_one(pool)
        .await?;
    let mut step_times: Vec<i64> = sqlx::query_scalar(
        "SELECT (EXTRACT(EPOCH FROM gap) * 1000000)::bigint FROM (
             SELECT at - lag(at) OVER (PARTITION BY saga_id ORDER BY version) AS gap
             FROM saga_history WHERE at >= $1) steps
         WHERE gap IS NOT NULL",
    )
    .bind(since)
    .fetch_all(pool)
    .await?;
    let done = times.len();
    let per_saga = |n: f64| if done > 0 { n / done as f64 } else { 0.0 };
    let steps_per_second = steps as f64 / seconds;
    Ok(Figures {
        saga_type: kind,
        sagas: done,
        failed,
        errors,
        seconds,
        sagas_per_second: done as f64 / seconds,
        steps,
        steps_per_second,
        of_raw_limit: if raw.lower_per_second > 0.0 {
            steps_per_second / raw.lower_per_second
        } else {
            0.0
        },
        saga_p50_ms: percentile(&mut times, 0.50) as f64 / 1000.0,
        saga_p99_ms: percentile(&mut times, 0.99) as f64 / 1000.0,
        step_p50_ms: percentile(&mut step_times, 0.50) as f64 / 1000.0,
        step_p99_ms: percentile(&mut step_times, 0.99) as f64 / 1000.0,
        messages_per_saga: per_saga(messages as f64),
        db_transactions_per_saga: per_saga(commits_after.saturating_sub(commits_before) as f64),
        peak_memory_mib: peak_memory_mib(),
    })
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

/// Deletes the raw measurement's queues, if a failed measurement left them.
async fn delete_raw_queues(amqp_url: &str, prefix: &str) -> anyhow::Result<()> {
    let conn = lapin::Connection::connect(amqp_url, lapin::ConnectionProperties::default())
        .await
        .context("the broker, to clean up")?;
    let channel = conn.create_channel().await?;
    for q in [format!("{prefix}.raw.a"), format!("{prefix}.raw.b")] {
        channel
            .queue_delete(
                q.as_str().into(),
                lapin::options::QueueDeleteOptions::default(),
            )
            .await?;
    }
    let _ = conn.close(200, "bench cleaned up".into()).await;
    Ok(())
}

/// The process's peak resident memory (VmHWM), MiB; 0 where /proc is not there.
fn peak_memory_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// The report as aligned tables.
pub fn table(r: &Report) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "raw limits (same servers, same run)\n  broker hops: consume, persistent publish with confirm, ack; quorum queues, {} in flight  {:>9.0} /s\n  database steps: engine-step-shaped transactions, {} at once                          {:>9.0} /s\n\n",
        r.raw.broker_in_flight,
        r.raw.broker_hops.per_second,
        r.raw.database_concurrency,
        r.raw.database_steps.per_second,
    ));
    let header = [
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
        "xacts/saga",
        "peak MiB",
    ];
    let mut rows = vec![header.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>()];
    for t in &r.types {
        rows.push(vec![
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
            format!("{:.1}", t.db_transactions_per_saga),
            format!("{:.0}", t.peak_memory_mib),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, v)| {
                if c == 0 {
                    format!("{v:<w$}", w = widths[c])
                } else {
                    format!("{v:>w$}", w = widths[c])
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out.push_str(&format!(
        "\n{} sagas per type, {} in flight; peak memory {:.0} MiB (VmHWM: the hub and every \
         simulator, one process); {} cores; {:.0} s in all\n",
        r.sagas_per_type, r.concurrency, r.peak_memory_mib, r.cores, r.total_seconds
    ));
    for t in &r.types {
        for e in &t.errors {
            out.push_str(&format!("  ! {}: {e}\n", t.saga_type.name()));
        }
    }
    out
}
