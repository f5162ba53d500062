//! `hub bench`: how fast the hub runs its sagas on these servers, next to what the servers can
//! do at all. In one run, in a namespace and database of its own (removed afterwards), it
//! measures the raw limits ([`raw`]: broker hops and engine-step-shaped transactions), then
//! starts every simulator and the hub in this process (the demo's [`Stage`], with no added
//! latency) and drives a number of sagas of each type with a bounded number in flight: identifier
//! issuance, a free application at an HTTP back-office, a paid one (paid at ERIP). Figures come
//! from the client's clock (saga time) and from the database (steps, messages, transactions).

pub mod measure;
pub mod raw;

use std::future::Future;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use simulators::SimConfig;

pub use measure::Cpu;
use measure::{Counts, HubProbes, Measured, Meter};

use crate::demo::procedures::Journey;
use crate::stage::{Hubs, Person, Play, Stage, a1_phone, is_good, percentile};
use hub_runtime::config::HubConfig;

/// The desk the benchmark's identifier applications come from.
const DESK: &str = "bench-desk";

/// The idle window over which the hub's idle polling (transactions per second) is measured,
/// once per run before the first phase: that rate is taken off the wait between a phase's end
/// and the moment its transaction count is read (see [`measure`]).
const IDLE_WINDOW: Duration = Duration::from_secs(5);

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

    /// The hub's saga type (`sagas.saga_type`) a saga of this kind runs as.
    fn saga_type(self) -> &'static str {
        match self {
            SagaKind::Issuance => hub_portal::sagas::issuance::SAGA_TYPE,
            SagaKind::Free | SagaKind::Paid => hub_portal::procedures::saga::SAGA_TYPE,
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
    /// How the hub reaches the mobile operators (SMPP by default).
    pub sms: crate::simulated::SmsProtocol,
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

/// The figures of one saga type, every one over the same interval: from just before the first
/// saga is driven to quiescence (every saga of the type ended, the outbox drained).
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    /// The saga type.
    pub saga_type: SagaKind,
    /// Sagas started: the denominator of every per-saga figure.
    pub sagas: usize,
    /// Of those, sagas that came to their expected end.
    pub completed: usize,
    /// Sagas that failed (their time, to the failure, is in the percentiles).
    pub failed: usize,
    /// Sagas not done when the phase's time was up (their time, to then, is in the
    /// percentiles: a lower bound).
    pub timed_out: usize,
    /// The first few failures.
    pub errors: Vec<String>,
    /// The interval, seconds.
    pub seconds: f64,
    /// Completed sagas per second of the interval.
    pub sagas_per_second: f64,
    /// Engine steps (`saga_history` rows) of the interval.
    pub steps: i64,
    /// Engine steps per second of the interval.
    pub steps_per_second: f64,
    /// Engine steps per second over the lower raw limit.
    pub of_raw_limit: f64,
    /// Time from the first command to the final event (or the failure, or the phase's end), as
    /// the client saw it, over every saga started, ms.
    pub saga_p50_ms: f64,
    /// The same, 99th percentile.
    pub saga_p99_ms: f64,
    /// Time between consecutive steps of the same saga (`saga_history.at`), ms.
    pub step_p50_ms: f64,
    /// The same, 99th percentile.
    pub step_p99_ms: f64,
    /// Messages the hub published (outbox rows) per saga started.
    pub messages_per_saga: f64,
    /// Broker publishes (outbox rows) per engine step.
    pub publishes_per_step: f64,
    /// The hub's committed database transactions per saga started (the probe's and the idle
    /// polling after the end taken off: see [`measure`]).
    pub db_transactions_per_saga: f64,
    /// Database statements (round trips, `BEGIN` and `COMMIT` included) of every component but
    /// the bench's probe per engine step, from `pg_stat_statements`; absent where that
    /// extension is not loaded.
    pub db_statements_per_step: Option<f64>,
    /// CPU time of the hub processes per saga started, ms.
    pub hub_cpu_ms_per_saga: f64,
    /// CPU time per saga started, ms, of each party on the machine.
    pub cpu_ms_per_saga: Cpu,
    /// Argon2 time (hashing and verifying codes and passwords) per saga started, ms.
    pub argon2_ms_per_saga: f64,
    /// Argon2's share of the hub processes' CPU time in the interval.
    pub argon2_share_of_hub_cpu: f64,
    /// The largest peak resident memory (VmHWM) of a hub process at the end of the phase, MiB.
    pub peak_memory_mib: f64,
    /// The counts the figures are made of.
    pub counts: Counts,
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
    /// How the hub reached the mobile operators.
    pub sms: crate::simulated::SmsProtocol,
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
    /// Sagas that did not come to their expected end (failed, timed out or never started),
    /// over every run and type.
    pub fn failed(&self) -> usize {
        self.runs
            .iter()
            .flat_map(|r| &r.types)
            .map(|t| self.sagas_per_type.saturating_sub(t.completed))
            .sum()
    }

    /// Effects that happened more than once, over every run.
    pub fn duplicates(&self) -> usize {
        self.runs.iter().map(|r| r.effects.duplicates()).sum()
    }
}

/// Runs the benchmark on the servers `config` names.
pub async fn run(config: &HubConfig, settings: &Settings) -> anyhow::Result<Report> {
    // The bench measures speed; conformance is the tests', the demo's and chaos's to check.
    hub_runtime::conformance::switch_off();
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
        sms: settings.sms,
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
    let stage = Stage::start(
        config,
        sims,
        crate::stage::BENCH_LABEL,
        Hubs::Processes(processes.max(1)),
        settings.sms,
    )
    .await?;
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
    // The hub has created and migrated its database once this answers.
    stage.pool(1).await?.close().await;

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
    let hubs = HubProbes::new(stage.hub_processes(), stage.play.http.clone());
    let mut meter = Meter::start(&config.database_url, hubs.clone(), IDLE_WINDOW).await?;
    let mut types = Vec::new();
    for kind in SagaKind::ALL {
        if !settings.kinds.contains(&kind) {
            continue;
        }
        let play = stage.play.clone();
        let people = people.clone();
        let figures = phase(&mut meter, &hubs, kind, settings, &raw, move |i| {
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

/// Drives `settings.sagas` sagas of `kind` and makes the phase's figures from one interval.
async fn phase<F, Fut>(
    meter: &mut Meter,
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
    let spec = measure::Phase {
        name: kind.name().to_owned(),
        saga_types: vec![kind.saga_type().to_owned()],
        sagas: settings.sagas,
        concurrency: settings.concurrency,
        timeout: settings.phase_timeout,
    };
    let measured = meter.phase(&spec, saga).await?;
    Ok(figures(
        kind,
        raw.lower_per_second,
        measured,
        hubs.peak_memory_mib(),
    ))
}

/// A phase's figures: each a count of its interval over another (see [`Counts::rates`]), the
/// saga time's percentiles over every saga started.
fn figures(kind: SagaKind, lower_raw: f64, mut m: Measured, peak_memory_mib: f64) -> Figures {
    let r = m.counts.rates(lower_raw);
    let c = &m.counts;
    Figures {
        saga_type: kind,
        sagas: c.started,
        completed: c.completed,
        failed: c.failed,
        timed_out: c.timed_out,
        errors: m.errors,
        seconds: c.seconds,
        sagas_per_second: r.sagas_per_second,
        steps: c.steps,
        steps_per_second: r.steps_per_second,
        of_raw_limit: r.of_raw_limit,
        saga_p50_ms: percentile(&mut m.saga_times, 0.50) as f64 / 1000.0,
        saga_p99_ms: percentile(&mut m.saga_times, 0.99) as f64 / 1000.0,
        step_p50_ms: percentile(&mut m.step_times, 0.50) as f64 / 1000.0,
        step_p99_ms: percentile(&mut m.step_times, 0.99) as f64 / 1000.0,
        messages_per_saga: r.messages_per_saga,
        publishes_per_step: r.publishes_per_step,
        db_transactions_per_saga: r.transactions_per_saga,
        db_statements_per_step: r.statements_per_step,
        hub_cpu_ms_per_saga: r.cpu_ms_per_saga.hub,
        cpu_ms_per_saga: r.cpu_ms_per_saga,
        argon2_ms_per_saga: r.argon2_ms_per_saga,
        argon2_share_of_hub_cpu: if r.cpu_ms_per_saga.hub > 0.0 {
            r.argon2_ms_per_saga / r.cpu_ms_per_saga.hub
        } else {
            0.0
        },
        peak_memory_mib,
        counts: m.counts,
    }
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

/// The report as aligned tables.
pub fn table(r: &Report) -> String {
    let mut out = raw_lines(&r.raw);
    out.push_str(&figures_table(r));
    out.push_str(&cpu_lines(r));
    out.push('\n');
    out.push_str(&effects_lines(r));
    out.push_str(&format!(
        "\n{} sagas per type, {} in flight, SMS over {}; {} cores (the hubs, the simulators and clients, \
         RabbitMQ and PostgreSQL share them). Every figure of a row is over one interval, \
         `seconds`: from just before the first saga to quiescence (every saga of the type \
         ended, the outbox drained; `!` where the wait gave up). Per-saga figures are over \
         every saga started; saga p50/p99 too, a failed saga with its time to the failure, a \
         timed-out one with its time to the phase's end. xacts/saga: the hub's own (the \
         bench's probe and the idle polling after the end taken off); stmts/step: every \
         component's statements but the probe's (BEGIN and COMMIT too) per engine step; argon2 \
         % is of the hubs' CPU; bench process peak {:.0} MiB; {:.0} s in all\n",
        r.sagas_per_type,
        r.concurrency,
        r.sms.as_str(),
        r.cores,
        r.peak_memory_mib,
        r.total_seconds
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
const FIGURES_HEADER: [&str; 20] = [
    "hubs",
    "type",
    "sagas",
    "failed",
    "timed out",
    "seconds",
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
        t.timed_out.to_string(),
        format!(
            "{:.1}{}",
            t.seconds,
            if t.counts.quiescent { "" } else { "!" }
        ),
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
