//! `hub chaos`: the demo's journeys at load while faults are injected on a seeded schedule,
//! then an invariant checker ([`checker`]) says whether anything was lost, done twice or leaked.
//!
//! The run has servers of its own ([`servers`]: a RabbitMQ node and a PostgreSQL server on free
//! loopback ports, in temporary directories), so it can restart them without disturbing
//! anything else on the machine. On them it starts every simulator in this process and the hub
//! as `hub run` processes (this executable), which it kills with SIGKILL and starts again.
//!
//! Phases: load with faults for `duration`; then no new journeys, the journeys in flight finish,
//! every fault is turned off and every process is up; the system settles (outbox published,
//! queues drained, sagas ended) or the settle timeout passes; the checker reads everything.

pub mod checker;
pub mod schedule;
pub mod servers;

use std::io::IsTerminal;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use contracts::Message;
use contracts::issuance::ConfirmPhone;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use simulators::SimConfig;
use tokio_util::sync::CancellationToken;

pub use crate::chaos::schedule::{Fault, FaultKind, Planned};
use crate::demo::procedures::Journey;
use crate::stage::{Hubs, Person, Play, Stage, a1_phone, is_good};
use hub_runtime::config::{HubConfig, Tiers};

/// The desk the chaos run's identifier applications come from.
const DESK: &str = "chaos-desk";

/// What to run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Seed of the fault schedule, the journeys' mix and the simulated population.
    pub seed: u64,
    /// How long journeys are started for.
    pub duration: Duration,
    /// Journeys in flight at once.
    pub concurrency: usize,
    /// `hub run` processes.
    pub processes: usize,
    /// The kinds of faults to inject.
    pub faults: Vec<FaultKind>,
    /// About one fault this often.
    pub fault_every: Duration,
    /// The longest the system may take to settle after the load.
    pub settle_timeout: Duration,
    /// The longest one journey may wait for one answer.
    pub step_timeout: Duration,
    /// How the hub reaches the mobile operators (SMPP by default).
    pub sms: crate::simulated::SmsProtocol,
}

/// A journey the load plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Apply for an identifier, confirm the phone by its code, log in with the temporary
    /// password, set a static one and log in with it.
    Issuance,
    /// A free application at an HTTP back-office.
    Free,
    /// A paid application at an HTTP back-office, paid at ERIP.
    Paid,
}

/// What a fault came to.
#[derive(Debug, Clone, Serialize)]
pub struct Injected {
    /// The planned fault.
    #[serde(flatten)]
    pub planned: Planned,
    /// Whether it happened (a kill of a process already down does not).
    pub applied: bool,
    /// Why not, or what went wrong doing it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The run's report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// Hub processes.
    pub processes: usize,
    /// How the hub reached the mobile operators.
    pub sms: crate::simulated::SmsProtocol,
    /// Load time, seconds.
    pub duration_seconds: f64,
    /// Journeys started, by kind.
    pub journeys: std::collections::BTreeMap<String, usize>,
    /// Journeys that came to their expected end.
    pub journeys_done: usize,
    /// Journeys that did not (each also a violation), the first few with their error.
    pub journeys_failed: usize,
    /// The first few journey errors.
    pub journey_errors: Vec<String>,
    /// The faults, as planned and as done.
    pub faults: Vec<Injected>,
    /// Hub processes that exited by themselves and were started again.
    pub hub_restarts_by_supervisor: usize,
    /// Seconds from the end of the load to a settled system.
    pub settle_seconds: f64,
    /// The checker's counts.
    pub checks: Vec<checker::Check>,
    /// Wall time of the whole run, seconds.
    pub total_seconds: f64,
}

impl Report {
    /// Broken invariants: failed checks and failed journeys.
    pub fn violations(&self) -> usize {
        self.checks.iter().filter(|c| c.violation).count() + usize::from(self.journeys_failed > 0)
    }
}

/// The shared record of what the journeys used and how they went.
#[derive(Default)]
struct Ledger {
    needles: Mutex<checker::Needles>,
    phones: Mutex<Vec<String>>,
    started: Mutex<std::collections::BTreeMap<String, usize>>,
    done: AtomicUsize,
    failed: AtomicUsize,
    errors: Mutex<Vec<String>>,
}

impl Ledger {
    fn secret(&self, s: &str) {
        if let Ok(mut n) = self.needles.lock() {
            n.secrets.push(s.to_owned());
        }
    }

    fn personal(&self, s: &str) {
        if let Ok(mut n) = self.needles.lock() {
            n.personal.push(s.to_owned());
        }
    }

    /// Counts journey `i` of `kind` done or failed (keeping the first few errors).
    fn count(&self, kind: Kind, i: usize, outcome: anyhow::Result<()>) {
        match outcome {
            Ok(()) => {
                self.done.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut errors) = self.errors.lock()
                    && errors.len() < 10
                {
                    errors.push(format!("{kind:?} {i}: {e:#}"));
                }
            }
        }
    }
}

/// Runs chaos with `settings`; `config` gives everything but the servers (the run has its own).
pub async fn run(config: &HubConfig, settings: &Settings) -> anyhow::Result<Report> {
    let started = Instant::now();
    anyhow::ensure!(
        settings.processes > 0 && settings.concurrency > 0,
        "give at least one process and one journey in flight"
    );
    let (rabbit, postgres) = tokio::try_join!(servers::PrivateRabbit::start(), async {
        servers::PrivatePostgres::start().await
    })?;
    // The parties the run plays log in to the private node as to the local broker.
    rabbit.add_party_users()?;
    let rabbit = Arc::new(tokio::sync::Mutex::new(rabbit));
    let postgres = Arc::new(tokio::sync::Mutex::new(postgres));
    let config = HubConfig {
        amqp_url: rabbit.lock().await.url(),
        database_url: postgres.lock().await.url(),
        // Retries outlast the longest outage, so a fault delays work and kills none of it.
        retry_tiers: Tiers(
            ["1s", "3s", "10s", "30s", "60s"]
                .iter()
                .map(|d| {
                    hub_runtime::config::parse_duration(d)
                        .map(|delay| contracts::RetryTier { delay })
                })
                .collect::<Result<_, _>>()
                .map_err(anyhow::Error::msg)?,
        ),
        max_attempts: 16,
        poll_interval: Duration::from_millis(200),
        ..config.clone()
    };
    // Enough people for one issuance per journey slot and second.
    let people = (settings.duration.as_secs() as usize * settings.concurrency).clamp(200, 20_000);
    let mut sims = SimConfig {
        seed: settings.seed,
        population: people * 2,
        ..SimConfig::ephemeral()
    };
    sims.backoffice.decide_after = Duration::from_millis(200);
    sims.backoffice.complaint_decide_after = Duration::from_millis(200);
    // The hub processes log at `info`, as in production, whatever this process logs at: the
    // checker reads their logs for secrets and personal data.
    let stage = Stage::start_logged(
        &config,
        sims,
        "chaos",
        Hubs::Processes(settings.processes),
        settings.sms,
        Some("info"),
    )
    .await?;
    stage.play.desk.set_timeout(settings.step_timeout);
    let outcome = play(&stage, settings, &rabbit, &postgres, people).await;
    let logs = stage.hub_logs();
    let kept = match &outcome {
        Ok(r) if r.violations() == 0 => None,
        _ => keep_logs(&logs),
    };
    let stopped = stage.stop().await;
    let mut report = outcome?;
    if let Err(e) = stopped {
        tracing::warn!(error = %format!("{e:#}"), "stopping the chaos stage");
    }
    if let Some(dir) = kept {
        eprintln!("the hub processes' logs are kept in {}", dir.display());
    }
    report.total_seconds = started.elapsed().as_secs_f64();
    drop((rabbit, postgres));
    Ok(report)
}

/// Copies the hub logs somewhere that outlives the run, for a run that found a violation.
fn keep_logs(logs: &[std::path::PathBuf]) -> Option<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "hub-chaos-logs-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    ));
    std::fs::create_dir_all(&dir).ok()?;
    for l in logs {
        if let Some(name) = l.file_name() {
            let _ = std::fs::copy(l, dir.join(name));
        }
    }
    Some(dir)
}

type Servers = (
    Arc<tokio::sync::Mutex<servers::PrivateRabbit>>,
    Arc<tokio::sync::Mutex<servers::PrivatePostgres>>,
);

/// The load with its faults, the settling, and the checker's verdict.
async fn play(
    stage: &Stage,
    settings: &Settings,
    rabbit: &Arc<tokio::sync::Mutex<servers::PrivateRabbit>>,
    postgres: &Arc<tokio::sync::Mutex<servers::PrivatePostgres>>,
    people: usize,
) -> anyhow::Result<Report> {
    let people = people_to_play(stage, people).await?;
    let pool = stage.pool(4).await?;
    let ledger = Arc::new(Ledger::default());
    let plan = schedule::plan(
        settings.seed,
        settings.duration,
        settings.fault_every,
        settings.processes,
        &settings.faults,
        settings.sms == crate::simulated::SmsProtocol::Smpp,
    );
    let servers: Servers = (rabbit.clone(), postgres.clone());
    // Hostile input beside the load: each must be dead-lettered with its reason, and the secret
    // it carries must not be kept in clear.
    let planted = plant_hostile(&stage.play, &ledger).await?;

    let load_started = Instant::now();
    let bar = progress(settings.duration);
    let mut players = start_players(stage, settings, people, &ledger, load_started);
    let revived = AtomicUsize::new(0);
    let supervising = tokio_util::sync::CancellationToken::new();
    let load = async {
        let injected = inject_all(stage, &servers, plan, load_started).await;
        while players.join_next().await.is_some() {}
        let duration_seconds = load_started.elapsed().as_secs_f64();
        all_faults_off(stage, settings.processes).await;
        let settle_started = Instant::now();
        settle(stage, &pool, settings.settle_timeout).await;
        supervising.cancel();
        (
            injected,
            duration_seconds,
            settle_started.elapsed().as_secs_f64(),
        )
    };
    let ((injected, duration_seconds, settle_seconds), ()) =
        tokio::join!(load, supervise(stage, &supervising, &revived));
    bar.finish_and_clear();

    let needles = ledger.needles.lock().map(|n| n.clone()).unwrap_or_default();
    let phones = ledger.phones.lock().map(|p| p.clone()).unwrap_or_default();
    let checks =
        checker::check(stage, &pool, &phones, &needles, &stage.hub_logs(), &planted).await?;
    pool.close().await;
    Ok(Report {
        seed: settings.seed,
        processes: settings.processes,
        sms: settings.sms,
        duration_seconds,
        journeys: ledger.started.lock().map(|s| s.clone()).unwrap_or_default(),
        journeys_done: ledger.done.load(Ordering::Relaxed),
        journeys_failed: ledger.failed.load(Ordering::Relaxed),
        journey_errors: ledger.errors.lock().map(|e| e.clone()).unwrap_or_default(),
        faults: injected,
        hub_restarts_by_supervisor: revived.load(Ordering::Relaxed),
        settle_seconds,
        checks,
        total_seconds: 0.0,
    })
}

/// The first `people * 2` of the population, those every issuance rule lets through.
async fn people_to_play(stage: &Stage, people: usize) -> anyhow::Result<Arc<Vec<Person>>> {
    let today = chrono::Utc::now().date_naive();
    let people: Vec<Person> = stage
        .population(people * 2)
        .await?
        .into_iter()
        .filter(|p| is_good(p, today))
        .collect();
    anyhow::ensure!(
        !people.is_empty(),
        "the simulated population has nobody to play"
    );
    Ok(Arc::new(people))
}

/// The load: `concurrency` players, each starting journeys until `settings.duration` after
/// `load_started`, recording them in `ledger`.
fn start_players(
    stage: &Stage,
    settings: &Settings,
    people: Arc<Vec<Person>>,
    ledger: &Arc<Ledger>,
    load_started: Instant,
) -> tokio::task::JoinSet<()> {
    let load_end = load_started + settings.duration;
    let next_person = Arc::new(AtomicUsize::new(0));
    let mut players = tokio::task::JoinSet::new();
    for slot in 0..settings.concurrency {
        let (play, people, ledger, next_person) = (
            stage.play.clone(),
            people.clone(),
            ledger.clone(),
            next_person.clone(),
        );
        let mut rng = StdRng::seed_from_u64(settings.seed ^ (slot as u64).wrapping_mul(0x9e37));
        players.spawn(async move {
            while Instant::now() < load_end {
                let kind = match rng.random_range(0..10) {
                    0..4 => Kind::Issuance,
                    4..7 => Kind::Free,
                    _ => Kind::Paid,
                };
                let i = next_person.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut s) = ledger.started.lock() {
                    *s.entry(format!("{kind:?}").to_lowercase()).or_default() += 1;
                }
                let outcome = journey(&play, kind, &people, i, &ledger).await;
                ledger.count(kind, i, outcome);
            }
        });
    }
    players
}

/// A supervisor: a hub process that exits by itself (one started while the broker or the
/// database is down exits at once, by design) is started again, as systemd or compose's
/// `restart:` would, until `supervising` is cancelled; `revived` counts them.
async fn supervise(stage: &Stage, supervising: &CancellationToken, revived: &AtomicUsize) {
    while !supervising.is_cancelled() {
        match stage.revive_exited_hubs() {
            Ok(n) => revived.fetch_add(n, Ordering::Relaxed),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "restarting a hub process");
                0
            }
        };
        tokio::select! {
            () = supervising.cancelled() => {}
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// The faults of `plan`, each in a task of its own at its moment after `load_started`.
async fn inject_all(
    stage: &Stage,
    servers: &Servers,
    plan: Vec<Planned>,
    load_started: Instant,
) -> Vec<Injected> {
    futures_util::future::join_all(plan.into_iter().map(|p| async move {
        tokio::time::sleep_until((load_started + p.at()).into()).await;
        let result = inject(stage, servers, &p).await;
        tracing::info!(fault = ?p.fault, hold_ms = p.hold_ms, ok = result.is_ok(), "fault injected");
        let (applied, note) = match result {
            Ok(true) => (true, None),
            Ok(false) => (false, Some("the process was already down".into())),
            Err(e) => (false, Some(format!("{e:#}"))),
        };
        Injected {
            planned: p,
            applied,
            note,
        }
    }))
    .await
}

/// After the load: every hub process up, every simulator without faults.
async fn all_faults_off(stage: &Stage, processes: usize) {
    for i in 0..processes {
        if let Err(e) = stage.restart_hub(i) {
            tracing::warn!(error = %format!("{e:#}"), "restarting a hub process");
        }
    }
    for kind in [
        simulators::SimKind::Mvd,
        simulators::SimKind::A1,
        simulators::SimKind::Erip,
        simulators::SimKind::BackOffice,
    ] {
        if let Ok(url) = stage.url(kind).and_then(|u| Ok(u.join("sim/faults")?)) {
            let _ = stage.play.http.delete(url).send().await;
        }
        if kind == simulators::SimKind::A1
            && let Ok(url) = stage.url(kind).and_then(|u| Ok(u.join("sim/smpp/faults")?))
        {
            let none = serde_json::json!({
                "latency_ms": 0, "throttle_rate": 0.0, "queue_full_rate": 0.0,
                "system_error_rate": 0.0, "drop_receipt_rate": 0.0,
                "duplicate_receipt_rate": 0.0, "receipt_first_rate": 0.0, "refuse_binds": 0,
                "drop_connection_after": 0, "drop_accepted": false,
            });
            let _ = stage.play.http.put(url).json(&none).send().await;
        }
    }
}

/// Sends messages a hub must refuse, each carrying a secret: a phone confirmation and a login
/// with fields of the wrong type, and a confirmation over the size limit. Returns their ids.
async fn plant_hostile(play: &Play, ledger: &Ledger) -> anyhow::Result<Vec<uuid::Uuid>> {
    use contracts::cabinet::LogIn;
    let code = format!("{:06}", rand::random_range(0..1_000_000u32));
    let password = format!("Hostile-{}", uuid::Uuid::new_v4().simple());
    ledger.secret(&code);
    ledger.secret(&password);
    let bodies = [
        (
            ConfirmPhone::TYPE.to_string(),
            serde_json::json!({"desk_id": 7, "application_number": ["C-0"], "code": code}),
        ),
        (
            LogIn::TYPE.to_string(),
            serde_json::json!({"identifier": 12, "password": password}),
        ),
        (
            ConfirmPhone::TYPE.to_string(),
            serde_json::json!({
                "desk_id": DESK,
                "application_number": "C-0",
                "code": code,
                "padding": "x".repeat(hub_runtime::broker::MAX_BODY_BYTES),
            }),
        ),
    ];
    let mut ids = Vec::new();
    for (message_type, body) in bodies {
        let metadata = contracts::Metadata::new(message_type.clone(), "chaos-hostile");
        ids.push(metadata.message_id);
        // Malformed on purpose: the hub must dead-letter them (no conformance check).
        play.publish_deliberately_invalid(&hub_runtime::broker::Envelope {
            exchange: play.bus.clone(),
            routing_key: message_type,
            metadata,
            body: serde_json::to_vec(&body)?,
        })
        .await?;
    }
    Ok(ids)
}

/// Applies one fault and holds it; false when there was nothing to do.
async fn inject(stage: &Stage, servers: &Servers, p: &Planned) -> anyhow::Result<bool> {
    match &p.fault {
        Fault::KillHub { hub } => {
            if !stage.kill_hub(*hub).await? {
                return Ok(false);
            }
            tokio::time::sleep(p.hold()).await;
            stage.restart_hub(*hub)?;
        }
        Fault::RestartBroker => servers.0.lock().await.restart(p.hold()).await?,
        Fault::RestartPostgres => servers.1.lock().await.crash_restart(p.hold()).await?,
        Fault::Sim { sim, what } => {
            let url = stage.url(*sim)?.join(what.path())?;
            let (on, off) = what.patches();
            let http = &stage.play.http;
            http.put(url.clone())
                .json(&on)
                .send()
                .await?
                .error_for_status()?;
            tokio::time::sleep(p.hold()).await;
            http.put(url).json(&off).send().await?.error_for_status()?;
        }
    }
    Ok(true)
}

/// Waits until the outbox is published, the queues are drained and every saga has ended, or
/// `timeout` passes (the checker then says what is left).
async fn settle(stage: &Stage, pool: &sqlx::PgPool, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let open: Result<(i64, i64), _> = sqlx::query_as(
            "SELECT (SELECT count(*) FROM outbox WHERE sent_at IS NULL),
                    (SELECT count(*) FROM sagas WHERE NOT terminal)",
        )
        .fetch_one(pool)
        .await;
        if let Ok((0, 0)) = open
            && queues_empty(stage).await
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn queues_empty(stage: &Stage) -> bool {
    let Ok(channel) = stage.channel().await else {
        return false;
    };
    let mut empty = true;
    for q in stage.queues() {
        let declared = channel
            .queue_declare(
                q.as_str().into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                lapin::types::FieldTable::default(),
            )
            .await;
        if !declared.is_ok_and(|d| d.message_count() == 0) {
            empty = false;
            break;
        }
    }
    let _ = channel.close(200, "settled?".into()).await;
    empty
}

/// One journey, to its expected end.
async fn journey(
    play: &Play,
    kind: Kind,
    people: &[Person],
    i: usize,
    ledger: &Ledger,
) -> anyhow::Result<()> {
    match kind {
        Kind::Issuance => {
            // Issuance takes a person of its own: an identifier is issued once per person.
            let person = people
                .get(i)
                .context("the simulated population ran out of people")?;
            // Seven digits: a six-digit code can never be read in an application number.
            let number = format!("C-{i:07}");
            let phone = a1_phone(i);
            ledger.personal(&person.identification_number);
            ledger.personal(phone.trim_start_matches('+'));
            if let Ok(mut p) = ledger.phones.lock() {
                p.push(phone.clone());
            }
            let code = play.issue(person, &number, &phone, DESK).await?;
            ledger.secret(&code);
            let chosen = format!("Chaos{}x", number.replace('-', ""));
            ledger.secret(&chosen);
            let temporary = play
                .first_login(&person.identification_number, &phone, &chosen)
                .await?;
            ledger.secret(&temporary);
            Ok(())
        }
        Kind::Free | Kind::Paid => {
            let journey = if kind == Kind::Free {
                Journey::FreeOverHttp
            } else {
                Journey::PaidOverHttp
            };
            let person = &people[i % people.len()];
            play.procedure_as_expected(journey, &person.identification_number)
                .await
        }
    }
}

/// A progress bar over the load's time on stderr when it is a terminal; hidden otherwise.
fn progress(duration: Duration) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(duration.as_secs());
    if let Ok(style) = indicatif::ProgressStyle::with_template("chaos [{bar:40}] {pos}/{len} s") {
        bar.set_style(style.progress_chars("=> "));
    }
    let b = bar.clone();
    tokio::spawn(async move {
        while !b.is_finished() {
            tokio::time::sleep(Duration::from_secs(1)).await;
            b.inc(1);
        }
    });
    bar
}

/// The report as aligned text.
pub fn table(r: &Report) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "chaos: seed {}, {} hub process{}, SMS over {}, {:.0} s of load, settled in {:.0} s, \
         {:.0} s in all\n\n",
        r.seed,
        r.processes,
        if r.processes == 1 { "" } else { "es" },
        r.sms.as_str(),
        r.duration_seconds,
        r.settle_seconds,
        r.total_seconds
    ));
    out.push_str("faults\n");
    for f in &r.faults {
        out.push_str(&format!(
            "  {:>7.1} s  {:<60} held {:>6.1} s{}\n",
            f.planned.at_ms as f64 / 1000.0,
            describe(&f.planned.fault),
            f.planned.hold_ms as f64 / 1000.0,
            match (&f.applied, &f.note) {
                (true, _) => String::new(),
                (false, Some(n)) => format!("  (not done: {n})"),
                (false, None) => "  (not done)".into(),
            }
        ));
    }
    if r.hub_restarts_by_supervisor > 0 {
        out.push_str(&format!(
            "  a hub process exited by itself {} time{} (started while a server was down) and was started again, as a supervisor would\n",
            r.hub_restarts_by_supervisor,
            if r.hub_restarts_by_supervisor == 1 { "" } else { "s" }
        ));
    }
    out.push_str("\njourneys\n");
    for (kind, n) in &r.journeys {
        out.push_str(&format!("  {kind:<10} {n:>6}\n"));
    }
    out.push_str(&format!(
        "  {:<10} {:>6}\n  {:<10} {:>6}\n",
        "done", r.journeys_done, "failed", r.journeys_failed
    ));
    for e in &r.journey_errors {
        out.push_str(&format!("  ! {e}\n"));
    }
    out.push_str("\ninvariants\n");
    let width = r.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
    for c in &r.checks {
        let mark = match (c.invariant, c.violation) {
            (_, true) => "VIOLATED",
            (true, false) => "ok",
            (false, false) => "",
        };
        out.push_str(&format!("  {:<width$}  {:>8}  {mark}\n", c.name, c.count));
        for d in &c.details {
            out.push_str(&format!("      {d}\n"));
        }
    }
    out.push_str(&format!(
        "\n{} violation{}\n",
        r.violations(),
        if r.violations() == 1 { "" } else { "s" }
    ));
    out
}

fn describe(f: &Fault) -> String {
    match f {
        Fault::KillHub { hub } => format!("SIGKILL hub process {hub}, start it again"),
        Fault::RestartBroker => "stop the broker, start it again".into(),
        Fault::RestartPostgres => "crash PostgreSQL (immediate stop), start it again".into(),
        Fault::Sim { sim, what } => format!("{sim:?} simulator: {what:?}"),
    }
}
