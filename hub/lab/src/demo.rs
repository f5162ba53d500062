//! `hub demo`: the whole portal on one machine. Starts every simulator and the hub (in this
//! process, against the local RabbitMQ and PostgreSQL, in a namespace and database of its own),
//! then plays issuance desks and citizens through a number of applications — most succeed, some
//! break each rule on purpose — reading codes and passwords from the simulated phones, and prints
//! what happened. Exits 0 only when every outcome is the expected one.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use contracts::Message;

use contracts::issuance::{
    ApplicationRejected, ApplyForIdentifier, ConfirmPhone, IdentifierIssued, PhoneCodeSent,
    RejectReason,
};
use serde::Serialize;
use simulators::{SimConfig, SimKind};
use tokio_util::sync::CancellationToken;

pub(crate) use crate::stage::{Desk, Person, Play, STEP_TIMEOUT};
use crate::stage::{Stage, is_good, percentile};
use hub_runtime::broker;
use hub_runtime::config::HubConfig;

mod outage;
pub(crate) mod procedures;
mod registration;

const DESK: &str = "demo-desk";

/// What one application is meant to come to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
enum Expect {
    Issued,
    Rejected(RejectReasonKey),
}

/// `RejectReason` with an order, for the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
struct RejectReasonKey(&'static str);

impl From<RejectReason> for RejectReasonKey {
    fn from(r: RejectReason) -> Self {
        RejectReasonKey(r.as_str())
    }
}

/// The demo's report.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Applications started.
    pub started: usize,
    /// Identifiers issued.
    pub issued: usize,
    /// Issued identifiers whose holder then logged in with the temporary password, set a static
    /// one, and logged in with it.
    pub first_logins: usize,
    /// Rejections by reason.
    pub rejected: BTreeMap<String, usize>,
    /// Administrative procedures the new identifier holders applied for, by outcome.
    pub procedures: BTreeMap<String, usize>,
    /// Why the journeys at authorities on the bus were left out, when they were.
    pub procedures_on_bus_skipped: Option<String>,
    /// Median time from an application for a procedure to its outcome, ms.
    pub procedure_p50_ms: u64,
    /// Registrations on the portal (by e-mail, by EDS), by outcome.
    pub registrations: BTreeMap<String, usize>,
    /// The MVD outage and its repair by dead-letter replay.
    pub outage: outage::OutageReport,
    /// Outcomes that were not the expected one.
    pub unexpected: Vec<String>,
    /// Median time from application to the final answer, ms.
    pub p50_ms: u64,
    /// 99th percentile of the same, ms.
    pub p99_ms: u64,
    /// Wall time of the whole run, ms.
    pub total_ms: u64,
}

impl Desk {
    /// The final answer: issued or rejected.
    async fn outcome(&self, number: &str) -> anyhow::Result<Expect> {
        let issued = IdentifierIssued::TYPE.to_string();
        let rejected = ApplicationRejected::TYPE.to_string();
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            let notified = self.changed.notified();
            let found = self
                .events
                .lock()
                .map_err(|_| anyhow::anyhow!("desk lock poisoned"))?
                .get(number)
                .and_then(|evs| {
                    evs.iter().find_map(|(t, b)| {
                        if *t == issued {
                            Some(Ok(Expect::Issued))
                        } else if *t == rejected {
                            Some(
                                serde_json::from_value::<ApplicationRejected>(b.clone())
                                    .map(|r| Expect::Rejected(r.reason.into())),
                            )
                        } else {
                            None
                        }
                    })
                });
            if let Some(r) = found {
                return Ok(r?);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                anyhow::bail!("application {number}: no final answer within {STEP_TIMEOUT:?}");
            }
            let _ = tokio::time::timeout(left, notified).await;
        }
    }
}

/// Runs the demo with `applications` applications; returns the report.
pub async fn run(config: &HubConfig, applications: usize, seed: u64) -> anyhow::Result<Report> {
    let started_at = Instant::now();
    let mut sim_config = SimConfig {
        seed,
        population: (applications * 3).max(200),
        ..SimConfig::ephemeral()
    };
    sim_config.backoffice.decide_after = AUTHORITY_DELAY;
    sim_config.backoffice.complaint_decide_after = AUTHORITY_DELAY;
    // Short-lived CRLs: a revocation reaches the hub within seconds.
    sim_config.gossuok.crl_validity = Duration::from_secs(2);
    let hub_config = HubConfig {
        poll_interval: Duration::from_millis(200),
        // Short retries, so the outage's commands are dead-lettered within seconds.
        retry_tiers: hub_runtime::config::Tiers(vec![
            contracts::RetryTier {
                delay: Duration::from_millis(200),
            },
            contracts::RetryTier {
                delay: Duration::from_millis(500),
            },
        ]),
        max_attempts: 3,
        ..config.clone()
    };
    let stage = Stage::start(
        &hub_config,
        sim_config,
        "demo",
        crate::stage::Hubs::InProcess,
    )
    .await?;
    let hub_config = stage.hub_config.clone();
    let mvd = stage.url(SimKind::Mvd)?;
    let population = stage.population(stage.population).await?;
    let scenarios = scenarios(&population, applications);
    // The authorities on the bus connect as their own broker users, which the demo creates
    // on the local broker; where it may not, their journeys are left out (and the report says
    // why), while the HTTP back-offices still decide.
    let bus_skipped = start_bus_authorities(&hub_config, &stage.topology, &stage.token);
    let ctx = stage.play.clone();
    let publisher = ctx.publisher.clone();
    // First act: the MVD registry is down for a while; the operator replays what died.
    let today = chrono::Utc::now().date_naive();
    let spare: Vec<&Person> = population
        .iter()
        .filter(|p| is_good(p, today))
        .rev()
        .take(2)
        .collect();
    let ops_pool = stage.pool(2).await?;
    let outage = outage::play(
        &ctx,
        &ops_pool,
        &publisher,
        &broker::broker_user(&hub_config.amqp_url),
        &mvd,
        &spare,
    )
    .await?;
    ops_pool.close().await;

    let progress = Progress::new(scenarios.len());
    let semaphore = Arc::new(tokio::sync::Semaphore::new(8));
    let mut tasks = Vec::new();
    // Scenarios that depend on an earlier issue (the same person or phone again) go after it.
    let (first, second): (Vec<_>, Vec<_>) = scenarios.into_iter().partition(|s| !s.after_others);
    let mut results = Vec::new();
    for batch in [first, second] {
        for s in batch {
            let ctx = ctx.clone();
            let permit = semaphore.clone();
            let progress = progress.clone();
            tasks.push(tokio::spawn(async move {
                let _permit = permit.acquire_owned().await;
                let r = ctx.play(&s).await;
                progress.tick();
                (s, r)
            }));
        }
        for t in tasks.drain(..) {
            results.push(t.await?);
        }
    }
    progress.finish();

    // Second act: the new identifier holders apply for procedures.
    let holders: Vec<String> = results
        .iter()
        .filter(|(_, r)| matches!(r, Ok((Expect::Issued, _))))
        .map(|(s, _)| s.application.person.identification_number.clone())
        .collect();
    let signups = registration::Signup::deal(holders.len());
    let signup_holders = holders.clone();
    let journeys = procedures::Journey::deal(holders.len(), bus_skipped.is_none());
    let progress = Progress::new(journeys.len()).named("procedures");
    let mut procedure_tasks = Vec::new();
    for (journey, identifier) in journeys.into_iter().zip(holders) {
        let ctx = ctx.clone();
        let permit = semaphore.clone();
        let progress = progress.clone();
        procedure_tasks.push(tokio::spawn(async move {
            let _permit = permit.acquire_owned().await;
            let r = ctx.procedure(journey, &identifier).await;
            progress.tick();
            (journey, r)
        }));
    }
    let mut procedure_results = Vec::new();
    for t in procedure_tasks {
        procedure_results.push(t.await?);
    }
    progress.finish();

    // Third act: registration on the portal, by e-mail and by EDS.
    let progress = Progress::new(signups.len()).named("registrations");
    let mut signup_tasks = Vec::new();
    for (n, (signup, identifier)) in signups.into_iter().zip(signup_holders).enumerate() {
        let ctx = ctx.clone();
        let permit = semaphore.clone();
        let progress = progress.clone();
        signup_tasks.push(tokio::spawn(async move {
            let _permit = permit.acquire_owned().await;
            let r = ctx.signup(signup, &identifier, n).await;
            progress.tick();
            (signup, r)
        }));
    }
    let mut signup_results = Vec::new();
    for t in signup_tasks {
        signup_results.push(t.await?);
    }
    progress.finish();

    let mut report = Report {
        started: results.len(),
        issued: 0,
        first_logins: 0,
        rejected: BTreeMap::new(),
        procedures: BTreeMap::new(),
        procedures_on_bus_skipped: bus_skipped,
        procedure_p50_ms: 0,
        registrations: BTreeMap::new(),
        outage,
        unexpected: Vec::new(),
        p50_ms: 0,
        p99_ms: 0,
        total_ms: 0,
    };
    let mut times: Vec<u64> = Vec::new();
    for (s, r) in &results {
        match r {
            Ok((outcome, took)) => {
                times.push(took.as_millis() as u64);
                match outcome {
                    Expect::Issued => {
                        report.issued += 1;
                        report.first_logins += 1;
                    }
                    Expect::Rejected(reason) => {
                        *report.rejected.entry(reason.0.to_owned()).or_default() += 1;
                    }
                }
                if *outcome != s.expect {
                    report.unexpected.push(format!(
                        "{}: expected {:?}, got {:?}",
                        s.number, s.expect, outcome
                    ));
                }
            }
            Err(e) => report.unexpected.push(format!("{}: {e:#}", s.number)),
        }
    }
    let mut procedure_times: Vec<u64> = Vec::new();
    for (i, (journey, r)) in procedure_results.iter().enumerate() {
        match r {
            Ok((outcome, took)) => {
                procedure_times.push(took.as_millis() as u64);
                *report.procedures.entry(outcome.clone()).or_default() += 1;
                if outcome != journey.expected() {
                    report.unexpected.push(format!(
                        "procedure {i} ({journey:?}): expected {}, got {outcome}",
                        journey.expected()
                    ));
                }
            }
            Err(e) => report
                .unexpected
                .push(format!("procedure {i} ({journey:?}): {e:#}")),
        }
    }
    if report.outage.issued_after_replay != report.outage.applications {
        report.unexpected.push(format!(
            "outage: {} of {} applications issued after the replay",
            report.outage.issued_after_replay, report.outage.applications
        ));
    }
    for (i, (signup, r)) in signup_results.iter().enumerate() {
        match r {
            Ok((outcome, _)) => {
                *report.registrations.entry(outcome.clone()).or_default() += 1;
                if outcome != signup.expected() {
                    report.unexpected.push(format!(
                        "registration {i} ({signup:?}): expected {}, got {outcome}",
                        signup.expected()
                    ));
                }
            }
            Err(e) => report
                .unexpected
                .push(format!("registration {i} ({signup:?}): {e:#}")),
        }
    }
    report.p50_ms = percentile(&mut times, 0.50);
    report.p99_ms = percentile(&mut times, 0.99);
    report.procedure_p50_ms = percentile(&mut procedure_times, 0.50);

    // Leave nothing behind: the demo's queues, exchanges and database.
    stage.stop().await?;
    report.total_ms = started_at.elapsed().as_millis() as u64;
    Ok(report)
}

/// How long the simulated authorities take to decide.
const AUTHORITY_DELAY: Duration = Duration::from_millis(500);

/// Starts the back-office simulators of the demo's authorities on the bus, each as its own
/// broker user (created with `rabbitmqctl`). Returns why they could not start, if so.
fn start_bus_authorities(
    config: &HubConfig,
    topology: &contracts::Topology,
    token: &CancellationToken,
) -> Option<String> {
    let catalogue = match hub_portal::procedures::catalogue::Catalogue::embedded() {
        Ok(c) => c,
        Err(e) => return Some(e.to_string()),
    };
    let vhost = broker::vhost(&config.amqp_url);
    let mut configs = Vec::new();
    for id in procedures::QUEUE_AUTHORITIES {
        let Some(user) = catalogue.authority(id).and_then(|a| a.broker_user()) else {
            return Some(format!(
                "{id} is not an authority on the bus in the catalogue"
            ));
        };
        if let Err(e) = hub_portal::agency::ensure_user_with_rabbitmqctl(
            user,
            hub_portal::agency::DEV_PASSWORD,
            id,
            &vhost,
        ) {
            return Some(format!(
                "the broker user {user} could not be created ({e:#}); run the demo where \
                 rabbitmqctl may administer the broker, or create the users with the commands \
                 of `hub topology --agency-users`"
            ));
        }
        let Ok(mut url) = url::Url::parse(&config.amqp_url) else {
            return Some("the AMQP URL does not parse".into());
        };
        if url.set_username(user).is_err()
            || url
                .set_password(Some(hub_portal::agency::DEV_PASSWORD))
                .is_err()
        {
            return Some("the AMQP URL takes no user".into());
        }
        configs.push(simulators::authority::AuthorityConfig {
            amqp_url: url.to_string(),
            broker_user: user.to_owned(),
            authority: id.to_owned(),
            queue: topology.work_queue(&hub_portal::procedures::saga::authority_queue(id)),
            bus_exchange: topology.bus_exchange(),
            decide_after: AUTHORITY_DELAY,
            complaint_decide_after: AUTHORITY_DELAY,
        });
    }
    for c in configs {
        let token = token.clone();
        tokio::spawn(async move {
            let authority = c.authority.clone();
            if let Err(e) = simulators::authority::run(c, token).await {
                tracing::error!(%authority, error = %format!("{e:#}"), "an authority simulator stopped");
            }
        });
    }
    None
}

/// One application the demo plays.
#[derive(Debug, Clone)]
struct Scenario {
    number: String,
    application: ApplyForIdentifier,
    /// Codes to give (wrong ones to break the rule), or the one from the phone.
    wrong_codes: u32,
    expect: Expect,
    after_others: bool,
}

fn scenarios(population: &[Person], n: usize) -> Vec<Scenario> {
    let today = chrono::Utc::now().date_naive();
    let good: Vec<&Person> = population.iter().filter(|p| is_good(p, today)).collect();
    let changed = population
        .iter()
        .find(|p| p.previous_surname.is_some() && p.document_status == "valid");
    let lost = population
        .iter()
        .find(|p| p.document_status == "lost" && p.previous_surname.is_none());
    let phone = crate::stage::a1_phone;
    let mut out = Vec::new();
    let mut add = |i: usize,
                   p: &Person,
                   phone: String,
                   expect: Expect,
                   tweak: &dyn Fn(&mut ApplyForIdentifier),
                   wrong_codes: u32,
                   after_others: bool| {
        let number = format!("D-{i:04}");
        let mut application = apply(p, &number, &phone);
        tweak(&mut application);
        out.push(Scenario {
            number,
            application,
            wrong_codes,
            expect,
            after_others,
        });
    };
    let rejected = |r: RejectReason| Expect::Rejected(r.into());
    let special = 8;
    let happy = n
        .saturating_sub(special)
        .max(1)
        .min(good.len().saturating_sub(special));
    for (i, p) in good.iter().take(happy).enumerate() {
        add(i, p, phone(i), Expect::Issued, &|_| {}, 0, false);
    }
    let mut i = happy;
    let mut next_good = good.iter().skip(happy);
    if let Some(p) = next_good.next() {
        add(
            i,
            p,
            phone(i),
            rejected(RejectReason::InvalidInput),
            &|a| a.person.identification_number = "12345".into(),
            0,
            false,
        );
        i += 1;
    }
    if let Some(p) = next_good.next() {
        add(
            i,
            p,
            phone(i),
            rejected(RejectReason::ConsentMissing),
            &|a| a.consent_to_mvd_check = false,
            0,
            false,
        );
        i += 1;
    }
    if let Some(p) = next_good.next() {
        // A number no operator serves.
        add(
            i,
            p,
            "+375440000000".into(),
            rejected(RejectReason::PhoneNotMobile),
            &|_| {},
            0,
            false,
        );
        i += 1;
    }
    if let Some(p) = next_good.next() {
        add(
            i,
            p,
            phone(i),
            rejected(RejectReason::PhoneNotConfirmed),
            &|_| {},
            3,
            false,
        );
        i += 1;
    }
    if let Some(p) = changed {
        let old = p.previous_surname.clone().unwrap_or_default();
        add(
            i,
            p,
            phone(i),
            rejected(RejectReason::MvdMismatch),
            &move |a| a.person.surname = old.clone(),
            0,
            false,
        );
        i += 1;
    }
    if let Some(p) = lost {
        add(
            i,
            p,
            phone(i),
            rejected(RejectReason::DocumentInvalid),
            &|a| {
                a.document.expires_on = chrono::Utc::now().date_naive() + chrono::Days::new(365);
            },
            0,
            false,
        );
        i += 1;
    }
    if let Some(p) = good.first() {
        // The first person again, with a new phone, once the first issue is done.
        add(
            i,
            p,
            phone(i),
            rejected(RejectReason::AlreadyAssigned),
            &|_| {},
            0,
            true,
        );
        i += 1;
    }
    if let Some(p) = next_good.next() {
        // Someone else with the first person's phone.
        add(
            i,
            p,
            phone(0),
            rejected(RejectReason::PhoneBound),
            &|_| {},
            0,
            true,
        );
    }
    out
}

fn apply(p: &Person, number: &str, phone: &str) -> ApplyForIdentifier {
    crate::stage::identifier_application(p, number, phone, DESK)
}

impl Play {
    async fn play(&self, s: &Scenario) -> anyhow::Result<(Expect, Duration)> {
        let started = Instant::now();
        self.send(&s.application).await?;
        if s.expect == Expect::Issued || s.wrong_codes > 0 {
            let _: PhoneCodeSent = self.desk.wait(&s.number).await?;
            let code = if s.wrong_codes > 0 {
                None
            } else {
                Some(self.code_from_phone(&s.application.phone).await?)
            };
            let tries = s.wrong_codes.max(1);
            for i in 0..tries {
                let code = code.clone().unwrap_or_else(|| format!("wrong-{i}"));
                self.send(&ConfirmPhone {
                    desk_id: DESK.into(),
                    application_number: s.number.clone(),
                    code,
                })
                .await?;
            }
        }
        let outcome = self.desk.outcome(&s.number).await?;
        let took = started.elapsed();
        if outcome == Expect::Issued {
            self.first_login_of(s).await?;
        }
        Ok((outcome, took))
    }

    /// The citizen logs in with the temporary password from the phone and sets a static one.
    async fn first_login_of(&self, s: &Scenario) -> anyhow::Result<()> {
        let chosen = format!("Demo{}x", &s.number.replace('-', ""));
        self.first_login(
            &s.application.person.identification_number,
            &s.application.phone,
            &chosen,
        )
        .await?;
        Ok(())
    }
}

/// A one-line progress counter on stderr, when stderr is a terminal.
#[derive(Debug, Clone)]
struct Progress {
    name: &'static str,
    total: usize,
    done: Arc<std::sync::atomic::AtomicUsize>,
    enabled: bool,
}

impl Progress {
    fn new(total: usize) -> Self {
        Self {
            name: "applications",
            total,
            done: Arc::default(),
            enabled: std::io::stderr().is_terminal(),
        }
    }

    fn named(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }

    fn tick(&self) {
        let done = self.done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        if self.enabled {
            eprint!("\r{}: {done}/{}", self.name, self.total);
        }
    }

    fn finish(&self) {
        if self.enabled {
            eprintln!();
        }
    }
}

/// The report as an aligned table.
pub fn table(r: &Report) -> String {
    let mut rows: Vec<(String, String)> = vec![
        ("applications started".into(), r.started.to_string()),
        ("identifiers issued".into(), r.issued.to_string()),
        (
            "first logins, static password set".into(),
            r.first_logins.to_string(),
        ),
    ];
    let o = &r.outage;
    rows.push((
        "outage: MVD commands dead-lettered".into(),
        o.dead_letters.to_string(),
    ));
    for (cause, n) in &o.groups {
        rows.push((format!("  dlq group: {cause}"), n.to_string()));
    }
    rows.push((
        "outage: replayed by the operator".into(),
        o.replayed.to_string(),
    ));
    rows.push((
        "outage: issued after the replay".into(),
        o.issued_after_replay.to_string(),
    ));
    for (reason, n) in &r.rejected {
        rows.push((format!("rejected: {reason}"), n.to_string()));
    }
    for (outcome, n) in &r.procedures {
        rows.push((format!("procedures: {outcome}"), n.to_string()));
    }
    for (outcome, n) in &r.registrations {
        rows.push((format!("registrations: {outcome}"), n.to_string()));
    }
    rows.push(("saga time p50".into(), format!("{} ms", r.p50_ms)));
    rows.push(("saga time p99".into(), format!("{} ms", r.p99_ms)));
    rows.push((
        "procedure time p50".into(),
        format!("{} ms", r.procedure_p50_ms),
    ));
    rows.push(("total time".into(), format!("{} ms", r.total_ms)));
    rows.push(("unexpected outcomes".into(), r.unexpected.len().to_string()));
    let w = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (k, v) in rows {
        out.push_str(&format!("{k:<w$}  {v:>8}\n"));
    }
    if let Some(why) = &r.procedures_on_bus_skipped {
        out.push_str(&format!(
            "  (procedures at authorities on the bus left out: {why})\n"
        ));
    }
    for u in &r.unexpected {
        out.push_str(&format!("  ! {u}\n"));
    }
    out
}
