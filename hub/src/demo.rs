//! `hub demo`: the whole portal on one machine. Starts every simulator and the hub (in this
//! process, against the local RabbitMQ and PostgreSQL, in a namespace and database of its own),
//! then plays issuance desks and citizens through a number of applications — most succeed, some
//! break each rule on purpose — reading codes and passwords from the simulated phones, and prints
//! what happened. Exits 0 only when every outcome is the expected one.

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use contracts::cabinet::{CabinetOutcome, CabinetReply, ChangePassword, LogIn};
use contracts::issuance::{
    Applicant, Application, ApplicationRejected, ApplyForIdentifier, ConfirmPhone, DocumentKind,
    IdentifierIssued, IdentityDocument, PhoneCodeSent, RejectReason,
};
use contracts::person::PersonStatus;
use contracts::{Message, Metadata, Namespace};
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use serde::{Deserialize, Serialize};
use simulators::{SimConfig, SimKind};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::app::{self, Components};
use crate::broker::{self, Broker, Envelope, Publisher, decode_properties};
use crate::config::{HubConfig, IntegrationConfig};

mod outage;
mod procedures;
mod registration;

const DESK: &str = "demo-desk";
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

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

#[derive(Debug, Clone, Deserialize)]
struct Person {
    identification_number: String,
    surname: String,
    given_name: String,
    patronymic: Option<String>,
    birth_date: chrono::NaiveDate,
    document: SimDocument,
    status: PersonStatus,
    document_status: String,
    previous_surname: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct SimDocument {
    kind: DocumentKind,
    number: String,
    issued_on: chrono::NaiveDate,
    expires_on: chrono::NaiveDate,
}

/// Events the desk received, by application number.
#[derive(Debug, Default)]
struct Desk {
    events: Mutex<HashMap<String, Vec<(String, serde_json::Value)>>>,
    /// Cabinet answers, by correlation id.
    replies: Mutex<HashMap<String, serde_json::Value>>,
    changed: Notify,
}

impl Desk {
    async fn wait<M: Message>(&self, number: &str) -> anyhow::Result<M> {
        let wanted = M::TYPE.to_string();
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            let notified = self.changed.notified();
            if let Some(body) = self
                .events
                .lock()
                .map_err(|_| anyhow::anyhow!("desk lock poisoned"))?
                .get(number)
                .and_then(|evs| {
                    evs.iter()
                        .find(|(t, _)| *t == wanted)
                        .map(|(_, b)| b.clone())
                })
            {
                return Ok(serde_json::from_value(body)?);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                anyhow::bail!("application {number}: no {wanted} within {STEP_TIMEOUT:?}");
            }
            let _ = tokio::time::timeout(left, notified).await;
        }
    }

    async fn reply(&self, correlation: &str) -> anyhow::Result<CabinetOutcome> {
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            let notified = self.changed.notified();
            if let Some(body) = self
                .replies
                .lock()
                .map_err(|_| anyhow::anyhow!("desk lock poisoned"))?
                .remove(correlation)
            {
                return Ok(serde_json::from_value::<CabinetReply>(body)?.outcome);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                anyhow::bail!("no cabinet answer within {STEP_TIMEOUT:?}");
            }
            let _ = tokio::time::timeout(left, notified).await;
        }
    }

    fn record(&self, meta: Metadata, body: serde_json::Value, is_reply: bool) {
        if is_reply {
            if let (Some(c), Ok(mut replies)) = (meta.correlation_id, self.replies.lock()) {
                replies.insert(c, body);
            }
        } else {
            // Issuance events by application number; procedures' and complaints' by their id.
            let number = body["application_number"]
                .as_str()
                .or_else(|| body["notice"]["application"]["number"].as_str())
                .or_else(|| body["complaint_id"].as_str())
                .or_else(|| body["application_id"].as_str())
                .unwrap_or_default()
                .to_owned();
            if let Ok(mut events) = self.events.lock() {
                events
                    .entry(number)
                    .or_default()
                    .push((meta.message_type, body));
            }
        }
        self.changed.notify_waiters();
    }

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
    let token = CancellationToken::new();
    let sim_config = SimConfig {
        seed,
        population: (applications * 3).max(200),
        ..SimConfig::ephemeral()
    };
    let erip_secret = sim_config.erip_secret.clone();
    let backoffice_secret = sim_config.backoffice.secret.clone();
    let mut sim_config = sim_config;
    sim_config.backoffice.decide_after = AUTHORITY_DELAY;
    sim_config.backoffice.complaint_decide_after = AUTHORITY_DELAY;
    // Short-lived CRLs: a revocation reaches the hub within seconds.
    sim_config.gossuok.crl_validity = Duration::from_secs(2);
    let sims = simulators::start(sim_config, token.clone()).await?;
    let url = |k: SimKind| {
        sims.operator_url(k)
            .cloned()
            .context("a simulator did not start")
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let mut db_url = url::Url::parse(&config.database_url).context("DATABASE_URL")?;
    db_url.set_path(&format!("hub_demo_{suffix}"));
    let hub_config = HubConfig {
        namespace: Namespace::new(format!("demo-{suffix}"))?,
        database_url: db_url.to_string(),
        poll_interval: Duration::from_millis(200),
        // Short retries, so the outage's commands are dead-lettered within seconds.
        retry_tiers: crate::config::Tiers(vec![
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
    let integrations = IntegrationConfig {
        mvd_url: url(SimKind::Mvd)?,
        sms_a1_url: url(SimKind::A1)?,
        sms_mts_url: url(SimKind::Mts)?,
        sms_life_url: url(SimKind::Life)?,
        sms_sender: "E-SERVICES".into(),
        http_timeout: Duration::from_secs(5),
        http_addr: format!("127.0.0.1:{port}").parse()?,
        callback_url: format!("http://127.0.0.1:{port}/").parse()?,
        seal_key: None,
        phone_code_ttl: Duration::from_secs(120),
        phone_code_attempts: 3,
        temp_password_ttl: Duration::from_secs(72 * 3600),
        erip_url: url(SimKind::Erip)?,
        erip_secret,
        payment_ttl: Duration::from_secs(3600),
        authority_settings: backoffice_settings(&url(SimKind::BackOffice)?, &backoffice_secret)?,
        smtp_url: sims
            .email_smtp_url()
            .context("the e-mail simulator did not start")?,
        email_from: "E-Services Portal <noreply@portal.example.by>".into(),
        portal_url: "http://127.0.0.1:8080/".parse()?,
        gossuok_url: url(SimKind::Gossuok)?,
        eds_trusted_root_files: Vec::new(),
        eds_trusted_roots: vec![gossuok_root(&url(SimKind::Gossuok)?).await?],
        console: Default::default(),
    };
    let plan = crate::services::plan(&integrations)?;
    let topology = app::topology(&hub_config, plan.queues())?;

    // The desk's connection: it sends applications and listens to what comes back.
    let broker = Broker::connect(&hub_config.amqp_url, "demo desk", token.clone()).await?;
    let channel = broker
        .channel(&token)
        .await
        .context("broker connection closed")?;
    broker::declare(&channel, &topology, hub_config.delivery_limit).await?;
    let desk = Arc::new(Desk::default());
    // The desk hears every issuance event; the portal's queue gets the cabinet's answers.
    let desk_queue = format!("{}.demo-desk", hub_config.namespace);
    let portal_queue = format!("{}.demo-portal", hub_config.namespace);
    let mut listeners = Vec::new();
    for (queue, bindings, is_reply) in [
        (
            &desk_queue,
            &["issuance.#", "procedure.#", "complaint.#"][..],
            false,
        ),
        (&portal_queue, &[][..], true),
    ] {
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        for pattern in bindings {
            channel
                .queue_bind(
                    queue.as_str().into(),
                    topology.bus_exchange().into(),
                    (*pattern).into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        let mut consumer = channel
            .basic_consume(
                queue.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let desk = desk.clone();
        listeners.push(tokio::spawn(async move {
            while let Some(Ok(d)) = consumer.next().await {
                let _ = d.acker.ack(BasicAckOptions::default()).await;
                if let (Ok(meta), Ok(body)) = (
                    decode_properties(&d.properties),
                    serde_json::from_slice::<serde_json::Value>(&d.data),
                ) {
                    desk.record(meta, body, is_reply);
                }
            }
        }));
    }
    let publisher = Arc::new(Publisher::new(broker.clone(), token.clone()));

    let hub_token = CancellationToken::new();
    let hub = {
        let cfg = hub_config.clone();
        let t = hub_token.clone();
        tokio::spawn(async move { app::run_plan(&cfg, Components::ALL, plan, t).await })
    };

    let http = reqwest::Client::new();
    let mvd = url(SimKind::Mvd)?;
    #[derive(Deserialize)]
    struct Page {
        persons: Vec<Person>,
    }
    let population: Page = http
        .get(mvd.join(&format!(
            "sim/population?offset=0&limit={}",
            (applications * 3).max(200)
        ))?)
        .send()
        .await?
        .json()
        .await?;
    let scenarios = scenarios(&population.persons, applications);
    // The authorities on the bus connect as their own broker users, which the demo creates
    // on the local broker; where it may not, their journeys are left out (and the report says
    // why), while the HTTP back-offices still decide.
    let bus_skipped = start_bus_authorities(&hub_config, &topology, &token);
    let ctx = Arc::new(Play {
        publisher: publisher.clone(),
        bus: topology.bus_exchange(),
        desk,
        http,
        a1: url(SimKind::A1)?,
        erip: url(SimKind::Erip)?,
        email: url(SimKind::Email)?,
        gossuok: url(SimKind::Gossuok)?,
        portal_queue,
    });
    // First act: the MVD registry is down for a while; the operator replays what died.
    let today = chrono::Utc::now().date_naive();
    let spare: Vec<&Person> = population
        .persons
        .iter()
        .filter(|p| is_good(p, today))
        .rev()
        .take(2)
        .collect();
    let ops_pool = ops_pool(&hub_config.database_url).await?;
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

    hub_token.cancel();
    hub.await??;
    for l in listeners {
        l.abort();
    }
    // Leave nothing behind: the demo's queues, exchanges and database.
    for d in broker::describe(&topology, hub_config.delivery_limit) {
        match d {
            broker::Declaration::Queue { name, .. } => {
                let _ = channel
                    .queue_delete(name.into(), QueueDeleteOptions::default())
                    .await;
            }
            broker::Declaration::Exchange { name, .. } => {
                let _ = channel
                    .exchange_delete(
                        name.into(),
                        lapin::options::ExchangeDeleteOptions::default(),
                    )
                    .await;
            }
            broker::Declaration::Binding { .. } => {}
        }
    }
    broker.close().await;
    token.cancel();
    sims.stopped().await;
    drop_database(&config.database_url, &format!("hub_demo_{suffix}")).await;
    report.total_ms = started_at.elapsed().as_millis() as u64;
    Ok(report)
}

/// The GosSUOK simulator's root certificate (DER): the demo's EDS trust anchor.
async fn gossuok_root(gossuok: &url::Url) -> anyhow::Result<Vec<u8>> {
    let r = reqwest::get(gossuok.join("ca/root.der")?).await?;
    anyhow::ensure!(r.status().is_success(), "GosSUOK root: {}", r.status());
    Ok(r.bytes().await?.to_vec())
}

/// How long the simulated authorities take to decide.
const AUTHORITY_DELAY: Duration = Duration::from_millis(500);

/// The `p` quantile of `times` (sorted in place), 0 when empty.
fn percentile(times: &mut [u64], p: f64) -> u64 {
    times.sort_unstable();
    times
        .get(((times.len() as f64 * p).ceil() as usize).saturating_sub(1))
        .copied()
        .unwrap_or(0)
}

/// Points every HTTP authority of the catalogue at the back-office simulator.
fn backoffice_settings(
    simulator: &url::Url,
    secret: &str,
) -> anyhow::Result<HashMap<String, String>> {
    let catalogue = crate::procedures::catalogue::Catalogue::embedded()?;
    let mut settings = HashMap::new();
    for a in catalogue.authorities() {
        if let crate::procedures::catalogue::AuthorityChannel::Http {
            base_url_key,
            secret_key,
        } = &a.channel
        {
            settings.insert(
                base_url_key.clone(),
                simulator.join(&format!("{}/", a.id))?.to_string(),
            );
            settings.insert(secret_key.clone(), secret.to_owned());
        }
    }
    Ok(settings)
}

/// Starts the back-office simulators of the demo's authorities on the bus, each as its own
/// broker user (created with `rabbitmqctl`). Returns why they could not start, if so.
fn start_bus_authorities(
    config: &HubConfig,
    topology: &contracts::Topology,
    token: &CancellationToken,
) -> Option<String> {
    let catalogue = match crate::procedures::catalogue::Catalogue::embedded() {
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
        if let Err(e) = crate::agency::ensure_user_with_rabbitmqctl(
            user,
            crate::agency::DEV_PASSWORD,
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
            || url.set_password(Some(crate::agency::DEV_PASSWORD)).is_err()
        {
            return Some("the AMQP URL takes no user".into());
        }
        configs.push(simulators::authority::AuthorityConfig {
            amqp_url: url.to_string(),
            broker_user: user.to_owned(),
            authority: id.to_owned(),
            queue: topology.work_queue(&crate::procedures::saga::authority_queue(id)),
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

async fn drop_database(url: &str, name: &str) {
    let Ok(mut admin) = url::Url::parse(url) else {
        return;
    };
    admin.set_path("postgres");
    if let Ok(pool) = sqlx::PgPool::connect(admin.as_str()).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
        )))
        .execute(&pool)
        .await;
        pool.close().await;
    }
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

/// A person every issuance rule lets through.
fn is_good(p: &Person, today: chrono::NaiveDate) -> bool {
    p.document_status == "valid"
        && p.previous_surname.is_none()
        && p.document.expires_on > today
        && p.birth_date < today - chrono::Days::new(15 * 366)
}

/// A pool on the demo's database for the operator's tools, once the hub has created it.
async fn ops_pool(url: &str) -> anyhow::Result<sqlx::PgPool> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        match sqlx::PgPool::connect(url).await {
            Ok(pool) => {
                // The hub's migrations are in once the keeper's table answers.
                if sqlx::query("SELECT 1 FROM dead_letters LIMIT 1")
                    .execute(&pool)
                    .await
                    .is_ok()
                {
                    return Ok(pool);
                }
                pool.close().await;
            }
            Err(e) if Instant::now() > deadline => {
                return Err(e).context("the demo's database");
            }
            Err(_) => {}
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the demo's database was not migrated within {STEP_TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
    let phone = |i: usize| format!("+37544{:03}{:04}", i / 10000 % 1000, 1000 + i % 9000);
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
    ApplyForIdentifier {
        application: Application {
            number: number.into(),
            date: chrono::Utc::now().date_naive(),
            desk_id: DESK.into(),
            worker_id: "worker-1".into(),
        },
        person: Applicant {
            identification_number: p.identification_number.clone(),
            surname: p.surname.clone(),
            given_name: p.given_name.clone(),
            patronymic: p.patronymic.clone(),
            birth_date: p.birth_date,
            status: p.status,
        },
        document: IdentityDocument {
            kind: p.document.kind,
            number: p.document.number.clone(),
            issued_on: p.document.issued_on,
            expires_on: p.document.expires_on,
        },
        phone: phone.into(),
        consent_to_mvd_check: true,
    }
}

struct Play {
    publisher: Arc<Publisher>,
    bus: String,
    desk: Arc<Desk>,
    http: reqwest::Client,
    a1: url::Url,
    erip: url::Url,
    email: url::Url,
    gossuok: url::Url,
    portal_queue: String,
}

impl Play {
    async fn send<M: Message>(&self, m: &M) -> anyhow::Result<()> {
        let envelope = Envelope {
            exchange: self.bus.clone(),
            routing_key: M::TYPE.to_string(),
            metadata: Metadata::new(M::TYPE.to_string(), "demo-desk"),
            body: contracts::encode(m)?,
        };
        self.publisher.publish(&envelope).await?;
        Ok(())
    }

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
            self.first_login(s).await?;
        }
        Ok((outcome, took))
    }

    /// The citizen logs in with the temporary password from the phone and sets a static one.
    async fn first_login(&self, s: &Scenario) -> anyhow::Result<()> {
        let text = self.nth_text(&s.application.phone, 2).await?;
        let temporary = text
            .split("пароль: ")
            .nth(1)
            .and_then(|r| r.split('.').next())
            .context("no temporary password in the SMS")?
            .to_owned();
        let id = s.application.person.identification_number.clone();
        let new_password = format!("Demo{}x", &s.number.replace('-', ""));
        let done = CabinetOutcome::Ok {
            assurance_level: "substantial".into(),
        };
        self.expect(
            &LogIn {
                identifier: id.clone(),
                password: temporary.clone(),
            },
            &CabinetOutcome::MustChangePassword,
        )
        .await?;
        self.expect(
            &ChangePassword {
                identifier: id.clone(),
                current_password: temporary,
                new_password: new_password.clone(),
            },
            &done,
        )
        .await?;
        self.expect(
            &LogIn {
                identifier: id,
                password: new_password,
            },
            &done,
        )
        .await
    }

    /// Sends a request as the portal does (reply queue, correlation id) and waits for the
    /// answer.
    async fn ask<M: Message>(&self, m: &M) -> anyhow::Result<CabinetOutcome> {
        let mut metadata = Metadata::new(M::TYPE.to_string(), "demo-portal");
        let correlation = uuid::Uuid::new_v4().to_string();
        metadata.correlation_id = Some(correlation.clone());
        metadata.reply_to = Some(self.portal_queue.clone());
        self.publisher
            .publish(&Envelope {
                exchange: self.bus.clone(),
                routing_key: M::TYPE.to_string(),
                metadata,
                body: contracts::encode(m)?,
            })
            .await?;
        self.desk.reply(&correlation).await
    }

    /// [`Play::ask`], failing unless the answer is `expected`.
    async fn expect<M: Message>(&self, m: &M, expected: &CabinetOutcome) -> anyhow::Result<()> {
        let got = self.ask(m).await?;
        anyhow::ensure!(
            got == *expected,
            "{}: expected {expected:?}, got {got:?}",
            M::TYPE
        );
        Ok(())
    }

    /// The n-th SMS the phone received (1-based), waiting for it.
    async fn nth_text(&self, phone: &str, n: usize) -> anyhow::Result<String> {
        #[derive(Deserialize)]
        struct Inbox {
            messages: Vec<Text>,
        }
        #[derive(Deserialize)]
        struct Text {
            text: String,
        }
        let url = self
            .a1
            .join(&format!("sim/inbox/{}", phone.trim_start_matches('+')))?;
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            let inbox: Inbox = self.http.get(url.clone()).send().await?.json().await?;
            if let Some(m) = inbox.messages.into_iter().nth(n - 1) {
                return Ok(m.text);
            }
            if Instant::now() > deadline {
                anyhow::bail!("SMS number {n} did not reach the phone within {STEP_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Reads the code from the phone's inbox, as the person would from the screen.
    async fn code_from_phone(&self, phone: &str) -> anyhow::Result<String> {
        let text = self.nth_text(phone, 1).await?;
        text.split(|c: char| !c.is_ascii_digit())
            .find(|run| run.len() == 6)
            .map(str::to_owned)
            .context("no six-digit code in the SMS")
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
