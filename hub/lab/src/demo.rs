//! `hub demo`: the whole portal on one machine. Starts every simulator and the hub (in this
//! process, against the local RabbitMQ and PostgreSQL, in a namespace and database of its own),
//! then plays issuance desks and citizens through a number of applications — most succeed, some
//! break each rule on purpose — reading codes and passwords from the simulated phones, and prints
//! what happened; at the end some holders give their identifier up and take it back (in the
//! cabinet and at a desk) and a desk asks for a temporary password too late. Exits 0 only when
//! every outcome is the expected one.

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
use crate::stage::{Stage, a1_phone, is_good, percentile};
use hub_runtime::broker;
use hub_runtime::config::HubConfig;

mod accounts;
mod outage;
mod person_side;
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
    /// Signed decisions (a signed one shown with its signer, a badly signed one refused), by
    /// outcome; empty when the authorities on the bus were left out.
    pub signed_decisions: BTreeMap<String, usize>,
    /// The signer the cabinet was shown (name, organisation, certificate serial).
    pub decision_signer: Option<String>,
    /// What the lab did to the clock for the journeys of the person's side (an information
    /// request dated back, a term's end brought forward), one line each.
    pub clock: Vec<String>,
    /// Why the journeys at authorities on the bus were left out, when they were.
    pub procedures_on_bus_skipped: Option<String>,
    /// Median time from an application for a procedure to its outcome, ms.
    pub procedure_p50_ms: u64,
    /// Registrations on the portal (by e-mail, by EDS), by outcome.
    pub registrations: BTreeMap<String, usize>,
    /// The ways back into an account (unblock in the cabinet and at a desk, a resend after a
    /// static password), by outcome.
    pub accounts: BTreeMap<String, usize>,
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
pub async fn run(
    config: &HubConfig,
    applications: usize,
    seed: u64,
    sms: crate::simulated::SmsProtocol,
) -> anyhow::Result<Report> {
    let started_at = Instant::now();
    let (sim_config, hub_config) = demo_settings(config, applications, seed);
    let stage = Stage::start(
        &hub_config,
        sim_config,
        "demo",
        crate::stage::Hubs::InProcess,
        sms,
    )
    .await?;
    let population = stage.population(stage.population).await?;
    // The authorities on the bus connect as their own broker users, which the demo creates
    // on the local broker; where it may not, their journeys are left out (and the report says
    // why), while the HTTP back-offices still decide.
    let ids: Vec<String> = population
        .iter()
        .map(|p| p.identification_number.clone())
        .collect();
    let officials = procedures::officials(&stage.play, &ids).await?;
    let bus_skipped =
        start_bus_authorities(&stage.hub_config, &stage.topology, &stage.token, &officials);
    let outage = outage_act(&stage, &population).await?;
    let acts = Acts {
        play: stage.play.clone(),
        semaphore: Arc::new(tokio::sync::Semaphore::new(8)),
    };
    let issued = acts.issuance(scenarios(&population, applications)).await?;
    let holders: Vec<String> = issued
        .iter()
        .filter(|(_, r)| matches!(r, Ok((Expect::Issued, _))))
        .map(|(s, _)| s.application.person.identification_number.clone())
        .collect();
    let mut procedures = acts
        .procedures(holders.clone(), bus_skipped.is_none())
        .await?;
    // The person's side, where the lab moves the clock on the stage's database.
    let mut clock = Vec::new();
    if bus_skipped.is_none() {
        let pool = stage.pool(2).await?;
        for (journey, played) in acts.person_side(holders.clone(), &pool).await? {
            let played = played.map(|((outcome, moved), took)| {
                clock.push(moved);
                (outcome, took)
            });
            procedures.push((journey, played));
        }
        pool.close().await;
    }
    // Alone, as the authority's fault switch would touch other journeys' decisions.
    let signed = match (&bus_skipped, holders.first(), officials.get("fszn")) {
        (None, Some(holder), Some(fszn)) => Some(acts.play.signed_decisions(holder, fszn).await),
        _ => None,
    };
    let registrations = acts.registrations(holders).await?;
    // Last, as blocking ends the holders' sessions: the ways back into an account.
    let account_holders: Vec<accounts::Holder> = issued
        .iter()
        .filter(|(_, r)| matches!(r, Ok((Expect::Issued, _))))
        .rev()
        .take(accounts::Journey::ALL.len())
        .map(|(s, _)| accounts::Holder {
            number: s.number.clone(),
            application: s.application.clone(),
            password: chosen_password(&s.number),
        })
        .collect();
    let accounts = acts.accounts(account_holders).await?;

    let mut report = Report::new(outage, bus_skipped);
    report.count_issuance(&issued);
    report.count_procedures(&procedures);
    report.clock = clock;
    report.count_signed(signed);
    report.count_outage();
    report.count_registrations(&registrations);
    report.count_accounts(&accounts);
    // Leave nothing behind: the demo's queues, exchanges and database.
    stage.stop().await?;
    report.total_ms = started_at.elapsed().as_millis() as u64;
    Ok(report)
}

/// The simulators' and the hub's settings of a demo with `applications` applications: quick
/// authorities, short-lived CRLs, short retries.
fn demo_settings(config: &HubConfig, applications: usize, seed: u64) -> (SimConfig, HubConfig) {
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
    (sim_config, hub_config)
}

/// First act: the MVD registry is down for a while; the operator replays what died. Plays it
/// with the last two people every rule lets through (the other acts start from the first).
async fn outage_act(stage: &Stage, population: &[Person]) -> anyhow::Result<outage::OutageReport> {
    let today = chrono::Utc::now().date_naive();
    let spare: Vec<&Person> = population
        .iter()
        .filter(|p| is_good(p, today))
        .rev()
        .take(2)
        .collect();
    let ops_pool = stage.pool(2).await?;
    let outage = outage::play(
        &stage.play,
        &ops_pool,
        &stage.play.publisher,
        &broker::broker_user(&stage.hub_config.amqp_url),
        &stage.url(SimKind::Mvd)?,
        &spare,
    )
    .await?;
    ops_pool.close().await;
    Ok(outage)
}

/// An outcome of one player's journey and how long it took.
type Played<T> = anyhow::Result<(T, Duration)>;

/// The acts played by many at once: at most the semaphore's permits in flight.
struct Acts {
    play: Arc<Play>,
    semaphore: Arc<tokio::sync::Semaphore>,
}

impl Acts {
    /// Second act: the applications for identifiers. Scenarios that depend on an earlier issue
    /// (the same person or phone again) go after it.
    async fn issuance(
        &self,
        scenarios: Vec<Scenario>,
    ) -> anyhow::Result<Vec<(Scenario, Played<Expect>)>> {
        let progress = Progress::new(scenarios.len());
        let (first, second): (Vec<_>, Vec<_>) =
            scenarios.into_iter().partition(|s| !s.after_others);
        let mut results = Vec::new();
        for batch in [first, second] {
            let played = self
                .all(batch, &progress, |play, s| async move {
                    let r = play.play(&s).await;
                    (s, r)
                })
                .await?;
            results.extend(played);
        }
        progress.finish();
        Ok(results)
    }

    /// Third act: the new identifier holders apply for procedures (those at authorities on the
    /// bus only when `bus`).
    async fn procedures(
        &self,
        holders: Vec<String>,
        bus: bool,
    ) -> anyhow::Result<Vec<(procedures::Journey, Played<String>)>> {
        let journeys = procedures::Journey::deal(holders.len(), bus);
        let progress = Progress::new(journeys.len()).named("procedures");
        let played = self
            .all(
                journeys.into_iter().zip(holders),
                &progress,
                |play, (journey, identifier)| async move {
                    (journey, play.procedure(journey, &identifier).await)
                },
            )
            .await?;
        progress.finish();
        Ok(played)
    }

    /// The person's side of a procedure (issue 17): one journey of
    /// [`procedures::Journey::PERSON_SIDE`] per holder, the lab moving the clock in `pool`.
    async fn person_side(
        &self,
        holders: Vec<String>,
        pool: &sqlx::PgPool,
    ) -> anyhow::Result<Vec<(procedures::Journey, Played<(String, String)>)>> {
        let progress = Progress::new(procedures::Journey::PERSON_SIDE.len()).named("person side");
        let played = self
            .all(
                procedures::Journey::PERSON_SIDE.into_iter().zip(holders),
                &progress,
                |play, (journey, identifier)| {
                    let pool = pool.clone();
                    async move {
                        let started = Instant::now();
                        let r = play.person_side(journey, &identifier, &pool).await;
                        (journey, r.map(|outcome| (outcome, started.elapsed())))
                    }
                },
            )
            .await?;
        progress.finish();
        Ok(played)
    }

    /// Fourth act: registration on the portal, by e-mail and by EDS.
    async fn registrations(
        &self,
        holders: Vec<String>,
    ) -> anyhow::Result<Vec<(registration::Signup, Played<String>)>> {
        let signups = registration::Signup::deal(holders.len());
        let progress = Progress::new(signups.len()).named("registrations");
        let played = self
            .all(
                signups.into_iter().zip(holders).enumerate(),
                &progress,
                |play, (n, (signup, identifier))| async move {
                    (signup, play.signup(signup, &identifier, n).await)
                },
            )
            .await?;
        progress.finish();
        Ok(played)
    }

    /// Fifth act: the ways back into an account, one journey per holder.
    async fn accounts(
        &self,
        holders: Vec<accounts::Holder>,
    ) -> anyhow::Result<Vec<(accounts::Journey, Played<String>)>> {
        let progress = Progress::new(holders.len()).named("accounts");
        let played = self
            .all(
                accounts::Journey::ALL.into_iter().zip(holders),
                &progress,
                |play, (journey, holder)| async move {
                    let started = Instant::now();
                    let r = play.account_journey(journey, &holder).await;
                    (journey, r.map(|outcome| (outcome, started.elapsed())))
                },
            )
            .await?;
        progress.finish();
        Ok(played)
    }

    /// Plays every item at once, within the permits, ticking `progress`; the outcomes in the
    /// items' order.
    async fn all<I, O, F, Fut>(
        &self,
        items: impl IntoIterator<Item = I>,
        progress: &Progress,
        play: F,
    ) -> anyhow::Result<Vec<O>>
    where
        F: Fn(Arc<Play>, I) -> Fut,
        Fut: Future<Output = O> + Send + 'static,
        O: Send + 'static,
    {
        let mut tasks = Vec::new();
        for item in items {
            let (permit, progress) = (self.semaphore.clone(), progress.clone());
            let played = play(self.play.clone(), item);
            tasks.push(tokio::spawn(async move {
                let _permit = permit.acquire_owned().await;
                let outcome = played.await;
                progress.tick();
                outcome
            }));
        }
        let mut outcomes = Vec::new();
        for t in tasks {
            outcomes.push(t.await?);
        }
        Ok(outcomes)
    }
}

impl Report {
    /// A report with nothing counted yet but the outage.
    fn new(outage: outage::OutageReport, procedures_on_bus_skipped: Option<String>) -> Self {
        Report {
            started: 0,
            issued: 0,
            first_logins: 0,
            rejected: BTreeMap::new(),
            procedures: BTreeMap::new(),
            signed_decisions: BTreeMap::new(),
            decision_signer: None,
            clock: Vec::new(),
            procedures_on_bus_skipped,
            procedure_p50_ms: 0,
            registrations: BTreeMap::new(),
            accounts: BTreeMap::new(),
            outage,
            unexpected: Vec::new(),
            p50_ms: 0,
            p99_ms: 0,
            total_ms: 0,
        }
    }

    /// Counts the applications for identifiers and their times.
    fn count_issuance(&mut self, results: &[(Scenario, Played<Expect>)]) {
        self.started = results.len();
        let mut times: Vec<u64> = Vec::new();
        for (s, r) in results {
            match r {
                Ok((outcome, took)) => {
                    times.push(took.as_millis() as u64);
                    match outcome {
                        Expect::Issued => {
                            self.issued += 1;
                            self.first_logins += 1;
                        }
                        Expect::Rejected(reason) => {
                            *self.rejected.entry(reason.0.to_owned()).or_default() += 1;
                        }
                    }
                    if *outcome != s.expect {
                        self.unexpected.push(format!(
                            "{}: expected {:?}, got {:?}",
                            s.number, s.expect, outcome
                        ));
                    }
                }
                Err(e) => self.unexpected.push(format!("{}: {e:#}", s.number)),
            }
        }
        self.p50_ms = percentile(&mut times, 0.50);
        self.p99_ms = percentile(&mut times, 0.99);
    }

    /// Counts the signed-decision act's outcomes; each must be the expected one.
    fn count_signed(&mut self, played: Option<anyhow::Result<(Vec<String>, Option<String>)>>) {
        match played {
            None => {}
            Some(Err(e)) => self.unexpected.push(format!("signed decisions: {e:#}")),
            Some(Ok((outcomes, signer))) => {
                self.decision_signer = signer;
                for (outcome, expected) in outcomes.iter().zip(procedures::SIGNED_EXPECTED) {
                    *self.signed_decisions.entry(outcome.clone()).or_default() += 1;
                    if outcome != expected {
                        self.unexpected.push(format!(
                            "signed decisions: expected {expected}, got {outcome}"
                        ));
                    }
                }
            }
        }
    }

    /// Counts the procedures by outcome, and their median time.
    fn count_procedures(&mut self, results: &[(procedures::Journey, Played<String>)]) {
        let mut times: Vec<u64> = Vec::new();
        for (i, (journey, r)) in results.iter().enumerate() {
            match r {
                Ok((outcome, took)) => {
                    times.push(took.as_millis() as u64);
                    *self.procedures.entry(outcome.clone()).or_default() += 1;
                    if outcome != journey.expected() {
                        self.unexpected.push(format!(
                            "procedure {i} ({journey:?}): expected {}, got {outcome}",
                            journey.expected()
                        ));
                    }
                }
                Err(e) => self
                    .unexpected
                    .push(format!("procedure {i} ({journey:?}): {e:#}")),
            }
        }
        self.procedure_p50_ms = percentile(&mut times, 0.50);
    }

    /// Every application of the outage must have been issued after the replay.
    fn count_outage(&mut self) {
        if self.outage.issued_after_replay != self.outage.applications {
            self.unexpected.push(format!(
                "outage: {} of {} applications issued after the replay",
                self.outage.issued_after_replay, self.outage.applications
            ));
        }
    }

    /// Counts the account journeys by outcome; each must come to its own.
    fn count_accounts(&mut self, results: &[(accounts::Journey, Played<String>)]) {
        for (journey, r) in results {
            match r {
                Ok((outcome, _)) => {
                    *self.accounts.entry(outcome.clone()).or_default() += 1;
                    if outcome != journey.expected() {
                        self.unexpected.push(format!(
                            "account ({journey:?}): expected {}, got {outcome}",
                            journey.expected()
                        ));
                    }
                }
                Err(e) => self
                    .unexpected
                    .push(format!("account ({journey:?}): {e:#}")),
            }
        }
    }

    /// Counts the registrations by outcome.
    fn count_registrations(&mut self, results: &[(registration::Signup, Played<String>)]) {
        for (i, (signup, r)) in results.iter().enumerate() {
            match r {
                Ok((outcome, _)) => {
                    *self.registrations.entry(outcome.clone()).or_default() += 1;
                    if outcome != signup.expected() {
                        self.unexpected.push(format!(
                            "registration {i} ({signup:?}): expected {}, got {outcome}",
                            signup.expected()
                        ));
                    }
                }
                Err(e) => self
                    .unexpected
                    .push(format!("registration {i} ({signup:?}): {e:#}")),
            }
        }
    }
}

/// How long the simulated authorities take to decide.
const AUTHORITY_DELAY: Duration = Duration::from_millis(500);

/// Starts the back-office simulators of the demo's authorities on the bus, each as its own
/// broker user (created with `rabbitmqctl`). Returns why they could not start, if so.
fn start_bus_authorities(
    config: &HubConfig,
    topology: &contracts::Topology,
    token: &CancellationToken,
    officials: &std::collections::HashMap<
        String,
        Arc<simulators::decision_signing::DecisionSigning>,
    >,
) -> Option<String> {
    let catalogue = match hub_portal::procedures::catalogue::Catalogue::embedded() {
        Ok(c) => c,
        Err(e) => return Some(e.to_string()),
    };
    let vhost = broker::vhost(&config.amqp_url);
    let mut configs = Vec::new();
    let superior = [person_side::FSZN_SUPERIOR];
    for id in procedures::QUEUE_AUTHORITIES.into_iter().chain(superior) {
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
            // Each decides with the signed authority.decided.v2, its official's certificate.
            signing: officials.get(id).cloned(),
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

/// Who applies in a scenario that breaks a rule.
#[derive(Debug, Clone, Copy)]
enum Who {
    /// The next person every rule lets through, not used yet.
    NextGood,
    /// Someone whose surname changed (the application gives the old one).
    SurnameChanged,
    /// Someone whose document is lost.
    DocumentLost,
    /// The first person again, once the first issue is done.
    FirstGood,
}

/// The phone a scenario that breaks a rule gives.
#[derive(Debug, Clone, Copy)]
enum PhoneOf {
    /// The scenario's own A1 number.
    Own,
    /// A number no operator serves.
    NotMobile,
    /// The first person's phone.
    FirstHolders,
}

/// A scenario that breaks one rule on purpose.
struct Breach {
    who: Who,
    phone: PhoneOf,
    reason: RejectReason,
    /// Changes the application of the person (`p`) to break the rule.
    tweak: fn(&mut ApplyForIdentifier, &Person),
    wrong_codes: u32,
    after_others: bool,
}

/// Every rule the demo breaks, once each, in the order the scenarios are numbered.
const BREACHES: [Breach; 8] = [
    Breach {
        who: Who::NextGood,
        phone: PhoneOf::Own,
        reason: RejectReason::InvalidInput,
        tweak: |a, _| a.person.identification_number = "12345".into(),
        wrong_codes: 0,
        after_others: false,
    },
    Breach {
        who: Who::NextGood,
        phone: PhoneOf::Own,
        reason: RejectReason::ConsentMissing,
        tweak: |a, _| a.consent_to_mvd_check = false,
        wrong_codes: 0,
        after_others: false,
    },
    Breach {
        who: Who::NextGood,
        phone: PhoneOf::NotMobile,
        reason: RejectReason::PhoneNotMobile,
        tweak: |_, _| {},
        wrong_codes: 0,
        after_others: false,
    },
    Breach {
        who: Who::NextGood,
        phone: PhoneOf::Own,
        reason: RejectReason::PhoneNotConfirmed,
        tweak: |_, _| {},
        wrong_codes: 3,
        after_others: false,
    },
    Breach {
        who: Who::SurnameChanged,
        phone: PhoneOf::Own,
        reason: RejectReason::MvdMismatch,
        tweak: |a, p| a.person.surname = p.previous_surname.clone().unwrap_or_default(),
        wrong_codes: 0,
        after_others: false,
    },
    Breach {
        who: Who::DocumentLost,
        phone: PhoneOf::Own,
        reason: RejectReason::DocumentInvalid,
        tweak: |a, _| {
            a.document.expires_on = chrono::Utc::now().date_naive() + chrono::Days::new(365);
        },
        wrong_codes: 0,
        after_others: false,
    },
    Breach {
        who: Who::FirstGood,
        phone: PhoneOf::Own,
        reason: RejectReason::AlreadyAssigned,
        tweak: |_, _| {},
        wrong_codes: 0,
        after_others: true,
    },
    Breach {
        who: Who::NextGood,
        phone: PhoneOf::FirstHolders,
        reason: RejectReason::PhoneBound,
        tweak: |_, _| {},
        wrong_codes: 0,
        after_others: true,
    },
];

/// About `n` applications: most by people every rule lets through, then one breaking each rule
/// of [`BREACHES`] (left out where the population has nobody to break it).
fn scenarios(population: &[Person], n: usize) -> Vec<Scenario> {
    let today = chrono::Utc::now().date_naive();
    let good: Vec<&Person> = population.iter().filter(|p| is_good(p, today)).collect();
    let changed = population
        .iter()
        .find(|p| p.previous_surname.is_some() && p.document_status == "valid");
    let lost = population
        .iter()
        .find(|p| p.document_status == "lost" && p.previous_surname.is_none());
    let happy = n
        .saturating_sub(BREACHES.len())
        .max(1)
        .min(good.len().saturating_sub(BREACHES.len()));
    let mut out: Vec<Scenario> = good
        .iter()
        .take(happy)
        .enumerate()
        .map(|(i, p)| scenario(i, p, a1_phone(i), Expect::Issued))
        .collect();
    let mut next_good = good.iter().skip(happy).copied();
    for breach in &BREACHES {
        let who = match breach.who {
            Who::NextGood => next_good.next(),
            Who::SurnameChanged => changed,
            Who::DocumentLost => lost,
            Who::FirstGood => good.first().copied(),
        };
        let Some(p) = who else { continue };
        let i = out.len();
        let phone = match breach.phone {
            PhoneOf::Own => a1_phone(i),
            PhoneOf::NotMobile => "+375440000000".into(),
            PhoneOf::FirstHolders => a1_phone(0),
        };
        let mut s = scenario(i, p, phone, Expect::Rejected(breach.reason.into()));
        (breach.tweak)(&mut s.application, p);
        s.wrong_codes = breach.wrong_codes;
        s.after_others = breach.after_others;
        out.push(s);
    }
    out
}

/// Application `D-<i>` of `p` with `phone`, confirmed with the code from the phone.
fn scenario(i: usize, p: &Person, phone: String, expect: Expect) -> Scenario {
    let number = format!("D-{i:04}");
    Scenario {
        application: crate::stage::identifier_application(p, &number, &phone, DESK),
        number,
        wrong_codes: 0,
        expect,
        after_others: false,
    }
}

impl Play {
    async fn play(&self, s: &Scenario) -> anyhow::Result<(Expect, Duration)> {
        let started = Instant::now();
        if s.expect == Expect::Rejected(RejectReason::InvalidInput.into()) {
            // The breach of a malformed field: refused by the published schema too, on purpose.
            self.send_deliberately_invalid(&s.application).await?;
        } else {
            self.send(&s.application).await?;
        }
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
        let chosen = chosen_password(&s.number);
        self.first_login(
            &s.application.person.identification_number,
            &s.application.phone,
            &chosen,
        )
        .await?;
        Ok(())
    }
}

/// The static password the holder of application `number` sets at the first login.
fn chosen_password(number: &str) -> String {
    format!("Demo{}x", number.replace('-', ""))
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
    for (outcome, n) in &r.signed_decisions {
        rows.push((format!("signed decisions: {outcome}"), n.to_string()));
    }
    for (outcome, n) in &r.registrations {
        rows.push((format!("registrations: {outcome}"), n.to_string()));
    }
    for (outcome, n) in &r.accounts {
        rows.push((format!("accounts: {outcome}"), n.to_string()));
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
    for moved in &r.clock {
        out.push_str(&format!("  ({moved})\n"));
    }
    if let Some(signer) = &r.decision_signer {
        out.push_str(&format!("  (the decision was shown signed by {signer})\n"));
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
