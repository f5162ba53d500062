//! The stage `hub demo` and `hub bench` play on: every simulator and the hub in this process,
//! against the local RabbitMQ and PostgreSQL, in a namespace and database of their own (removed
//! by [`Stage::stop`]), with a desk and a portal listening on the bus — and the moves every
//! player makes: send a command, wait for the answer, read the SMS code from the simulated
//! phone, pay at the simulated ERIP.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use contracts::cabinet::{CabinetOutcome, CabinetReply, ChangePassword, LogIn, SessionToken};
use contracts::issuance::{
    Applicant, Application, ApplyForIdentifier, ConfirmPhone, DocumentKind, IdentifierIssued,
    IdentityDocument, PhoneCodeSent,
};
use contracts::person::PersonStatus;
use contracts::registration::RegisterByEds;
use contracts::{Message, Metadata, Topology};
use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions};
use lapin::types::FieldTable;
use serde::Deserialize;
use serde_json::json;
use simulators::retention::Bounded;
use simulators::{RunningSims, SimConfig, SimKind};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use hub_portal::config::IntegrationConfig;
use hub_portal::procedures::saga::UnsignedDecisions;
use hub_runtime::app::{self, Components};
use hub_runtime::broker::{self, Broker, Envelope, PublishError, Publisher, decode_properties};
use hub_runtime::config::HubConfig;

use crate::sandbox::{Sandbox, Servers};
use crate::simulated::{Simulated, SmsProtocol, free_local_addr};

/// The label of the bench's stage: its hub processes run without the conformance check.
pub const BENCH_LABEL: &str = "bench";

/// The longest wait for one answer.
pub(crate) const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// A person of the simulated population (the MVD simulator's `sim/population`).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Person {
    pub(crate) identification_number: String,
    pub(crate) surname: String,
    pub(crate) given_name: String,
    pub(crate) patronymic: Option<String>,
    pub(crate) birth_date: chrono::NaiveDate,
    pub(crate) document: SimDocument,
    pub(crate) status: PersonStatus,
    pub(crate) document_status: String,
    pub(crate) previous_surname: Option<String>,
}

/// A person's identity document, as the MVD simulator has it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct SimDocument {
    pub(crate) kind: DocumentKind,
    pub(crate) number: String,
    pub(crate) issued_on: chrono::NaiveDate,
    pub(crate) expires_on: chrono::NaiveDate,
}

/// A person every issuance rule lets through.
pub(crate) fn is_good(p: &Person, today: chrono::NaiveDate) -> bool {
    p.document_status == "valid"
        && p.previous_surname.is_none()
        && p.document.expires_on > today
        && p.birth_date < today - chrono::Days::new(15 * 366)
}

/// The `i`-th phone number of the A1 simulator, whose inbox [`Play::nth_text`] reads.
pub(crate) fn a1_phone(i: usize) -> String {
    format!("+37544{:03}{:04}", i / 10000 % 1000, 1000 + i % 9000)
}

/// The application for an identifier a desk makes for `p`.
pub(crate) fn identifier_application(
    p: &Person,
    number: &str,
    phone: &str,
    desk: &str,
) -> ApplyForIdentifier {
    ApplyForIdentifier {
        application: Application {
            number: number.into(),
            date: chrono::Utc::now().date_naive(),
            desk_id: desk.into(),
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

/// Events the desk received, by application number (or application / complaint id), and the
/// cabinet's answers by correlation id. Like the simulators, it keeps the applications of the
/// last [`simulators::Retention::records`] (their events and their message ids): a long bench
/// stays flat, and an application still in play is always among them.
#[derive(Debug)]
pub(crate) struct Desk {
    pub(crate) events: Mutex<Bounded<String, Vec<(String, serde_json::Value)>>>,
    /// Cabinet answers, by correlation id.
    pub(crate) replies: Mutex<HashMap<String, serde_json::Value>>,
    pub(crate) changed: Notify,
    /// The distinct message ids seen per (application, event type): more than one is the same
    /// effect delivered twice (a redelivery of one message keeps its id). Kept as long as the
    /// events, so a copy is seen when it comes within the last that many applications.
    distinct: Mutex<Bounded<(String, String), Vec<uuid::Uuid>>>,
    /// The longest wait for one answer, ms ([`STEP_TIMEOUT`] unless set).
    timeout_ms: std::sync::atomic::AtomicU64,
}

impl Desk {
    /// A desk that has heard nothing yet and keeps the applications of `limit`.
    pub(crate) fn new(limit: simulators::retention::Limit) -> Self {
        Self {
            events: Mutex::new(Bounded::new(limit)),
            replies: Mutex::default(),
            changed: Notify::new(),
            distinct: Mutex::new(Bounded::new(limit)),
            timeout_ms: std::sync::atomic::AtomicU64::new(STEP_TIMEOUT.as_millis() as u64),
        }
    }
}

impl Desk {
    /// The longest wait for one answer.
    pub(crate) fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Waits up to `timeout` for each answer from now on (a run with faults waits longer).
    pub(crate) fn set_timeout(&self, timeout: Duration) {
        self.timeout_ms.store(
            timeout.as_millis() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// The first `M` the desk received for `number`, waiting for it.
    pub(crate) async fn wait<M: Message>(&self, number: &str) -> anyhow::Result<M> {
        let wanted = M::TYPE.to_string();
        let timeout = self.timeout();
        let deadline = Instant::now() + timeout;
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
                anyhow::bail!("application {number}: no {wanted} within {timeout:?}");
            }
            let _ = tokio::time::timeout(left, notified).await;
        }
    }

    /// The cabinet's answer to the request with this correlation id, waiting for it.
    /// The events the desk heard (per application and type), and those it heard under more
    /// than one message id (the same effect twice), as `type application`.
    pub(crate) fn effects(&self) -> (usize, Vec<String>) {
        self.distinct.lock().map_or((0, Vec::new()), |d| {
            let twice = d
                .iter()
                .filter(|(_, ids)| ids.len() > 1)
                .map(|((number, kind), _)| format!("{kind} {number}"))
                .collect();
            (d.iter().count(), twice)
        })
    }

    pub(crate) async fn reply(&self, correlation: &str) -> anyhow::Result<CabinetOutcome> {
        let timeout = self.timeout();
        let deadline = Instant::now() + timeout;
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
                anyhow::bail!("no cabinet answer within {timeout:?}");
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
            if let (false, Ok(mut distinct)) = (number.is_empty(), self.distinct.lock()) {
                let key = (number.clone(), meta.message_type.clone());
                match distinct.get_mut(&key) {
                    Some(ids) if !ids.contains(&meta.message_id) => ids.push(meta.message_id),
                    Some(_) => {}
                    None => {
                        // The oldest application's ids go past the limit.
                        let _dropped = distinct.insert(key, vec![meta.message_id]);
                    }
                }
            }
            if let Ok(mut events) = self.events.lock() {
                match events.get_mut(&number) {
                    Some(list) => list.push((meta.message_type, body)),
                    None => {
                        let _dropped = events.insert(number, vec![(meta.message_type, body)]);
                    }
                }
            }
        }
        self.changed.notify_waiters();
    }
}

/// What the players share: the bus, the desk's ears, and the simulators' own doors (the phone's
/// inbox, ERIP's bank, the mailbox, the CA).
#[derive(Debug)]
pub(crate) struct Play {
    /// The hub's own user's publisher (the operators' replays).
    pub(crate) publisher: Arc<Publisher>,
    /// The parties' publishers (the portal, each desk), by broker user: a command goes out as
    /// the party that legitimately sends it.
    pub(crate) parties: HashMap<String, Arc<Publisher>>,
    pub(crate) bus: String,
    pub(crate) desk: Arc<Desk>,
    pub(crate) http: reqwest::Client,
    pub(crate) a1: url::Url,
    pub(crate) erip: url::Url,
    pub(crate) email: url::Url,
    pub(crate) gossuok: url::Url,
    pub(crate) portal_queue: String,
    /// Who the commands say they come from (`app_id`).
    pub(crate) sender: String,
    /// Each person's session, by identifier: a person logs in once and applies with it (a
    /// password login costs an argon2 hash).
    pub(crate) sessions: Mutex<HashMap<String, SessionToken>>,
}

impl Play {
    /// Publishes a command on the bus, as a desk or the portal does.
    pub(crate) async fn send<M: Message>(&self, m: &M) -> anyhow::Result<()> {
        let envelope = Envelope {
            exchange: self.bus.clone(),
            routing_key: M::TYPE.to_string(),
            metadata: Metadata::new(M::TYPE.to_string(), &self.sender),
            body: contracts::encode(m)?,
        };
        self.publish(&envelope).await
    }

    /// Publishes a command whose body its type's schema refuses, on purpose (a breach the hub
    /// must refuse): [`Self::send`] without the conformance check.
    pub(crate) async fn send_deliberately_invalid<M: Message>(&self, m: &M) -> anyhow::Result<()> {
        let envelope = Envelope {
            exchange: self.bus.clone(),
            routing_key: M::TYPE.to_string(),
            metadata: Metadata::new(M::TYPE.to_string(), &self.sender),
            body: contracts::encode(m)?,
        };
        self.publish_deliberately_invalid(&envelope).await
    }

    /// [`Self::publish`] without the conformance check: for a hostile body sent on purpose.
    pub(crate) async fn publish_deliberately_invalid(
        &self,
        envelope: &Envelope,
    ) -> anyhow::Result<()> {
        self.publish_checked(envelope, false).await
    }

    /// Publishes until the broker confirms, as a desk does: through a broker restart the same
    /// message (same id) is sent again, and the hub's inbox takes it once. It goes out as the
    /// party that legitimately sends it (the portal, the desk it names), else as the hub. A body
    /// that does not conform to its published schema is refused at once
    /// ([`hub_runtime::conformance`]).
    pub(crate) async fn publish(&self, envelope: &Envelope) -> anyhow::Result<()> {
        self.publish_checked(envelope, true).await
    }

    async fn publish_checked(&self, envelope: &Envelope, checked: bool) -> anyhow::Result<()> {
        let deadline = Instant::now() + self.desk.timeout();
        let publisher = hub_portal::parties::legitimate_sender(
            &envelope.metadata.message_type,
            &envelope.body,
            hub_portal::parties::DEFAULT_PORTAL_USER,
        )
        .and_then(|user| self.parties.get(&user))
        .unwrap_or(&self.publisher);
        loop {
            let sent = if checked {
                publisher.publish(envelope).await
            } else {
                publisher.publish_deliberately_invalid(envelope).await
            };
            match sent {
                Ok(()) => return Ok(()),
                Err(e @ PublishError::Nonconforming(_)) => {
                    return Err(e).context("a command the lab sent breaks its published schema");
                }
                Err(e) if Instant::now() > deadline => {
                    return Err(e).context("the broker did not confirm a command");
                }
                Err(e) => {
                    tracing::debug!(error = %e, "publish not confirmed; sending again");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }
    }

    /// Sends a request as the portal does (reply queue, correlation id) and waits for the
    /// answer.
    pub(crate) async fn ask<M: Message>(&self, m: &M) -> anyhow::Result<CabinetOutcome> {
        let mut metadata = Metadata::new(M::TYPE.to_string(), "demo-portal");
        let correlation = uuid::Uuid::new_v4().to_string();
        metadata.correlation_id = Some(correlation.clone());
        metadata.reply_to = Some(self.portal_queue.clone());
        self.publish(&Envelope {
            exchange: self.bus.clone(),
            routing_key: M::TYPE.to_string(),
            metadata,
            body: contracts::encode(m)?,
        })
        .await?;
        self.desk.reply(&correlation).await
    }

    /// The texts of the SMS messages on the phone, oldest first.
    pub(crate) async fn inbox(&self, phone: &str) -> anyhow::Result<Vec<String>> {
        let url = self
            .a1
            .join(&format!("sim/inbox/{}", phone.trim_start_matches('+')))?;
        let inbox: serde_json::Value = self.http.get(url).send().await?.json().await?;
        Ok(inbox["messages"]
            .as_array()
            .map(|m| {
                m.iter()
                    .filter_map(|m| m["text"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The inboxes of `phones`, a few read at once.
    pub(crate) async fn inboxes(
        &self,
        phones: impl IntoIterator<Item = String>,
    ) -> anyhow::Result<Vec<(String, Vec<String>)>> {
        use futures_util::TryStreamExt;
        futures_util::stream::iter(phones.into_iter().map(|phone| async move {
            let texts = self.inbox(&phone).await.context("a phone's inbox")?;
            Ok::<_, anyhow::Error>((phone, texts))
        }))
        .buffer_unordered(16)
        .try_collect()
        .await
    }

    /// The SMS `pick` finds on the phone, waiting for it; `what` names it in the error.
    async fn wait_text(
        &self,
        phone: &str,
        what: &str,
        pick: impl Fn(Vec<String>) -> Option<String>,
    ) -> anyhow::Result<String> {
        let timeout = self.desk.timeout();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(text) = pick(self.inbox(phone).await?) {
                return Ok(text);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{what} did not reach the phone within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The n-th SMS the phone received (1-based), waiting for it.
    pub(crate) async fn nth_text(&self, phone: &str, n: usize) -> anyhow::Result<String> {
        self.wait_text(phone, &format!("SMS number {n}"), |texts| {
            texts.into_iter().nth(n - 1)
        })
        .await
    }

    /// The first SMS on the phone that contains `what`, waiting for it.
    pub(crate) async fn text_containing(&self, phone: &str, what: &str) -> anyhow::Result<String> {
        self.wait_text(phone, "the SMS", |texts| {
            texts.into_iter().find(|t| t.contains(what))
        })
        .await
    }

    /// The citizen logs in with the temporary password from the phone, sets `chosen` as the
    /// static one, and logs in with it; returns the temporary password.
    pub(crate) async fn first_login(
        &self,
        identifier: &str,
        phone: &str,
        chosen: &str,
    ) -> anyhow::Result<String> {
        let text = self.text_containing(phone, "пароль: ").await?;
        let temporary = text
            .split("пароль: ")
            .nth(1)
            .and_then(|r| r.split('.').next())
            .context("no temporary password in the SMS")?
            .to_owned();
        let done = CabinetOutcome::Ok {
            assurance_level: "substantial".into(),
            session_token: None,
        };
        self.expect(
            &LogIn {
                identifier: identifier.to_owned(),
                password: temporary.clone(),
            },
            &CabinetOutcome::MustChangePassword,
        )
        .await?;
        self.expect(
            &ChangePassword {
                identifier: identifier.to_owned(),
                current_password: temporary.clone(),
                new_password: chosen.to_owned(),
            },
            &done,
        )
        .await?;
        let login = self
            .ask(&LogIn {
                identifier: identifier.to_owned(),
                password: chosen.to_owned(),
            })
            .await?;
        let CabinetOutcome::Ok {
            assurance_level,
            session_token: Some(session),
        } = login
        else {
            anyhow::bail!("{}: expected a session, got {login:?}", LogIn::TYPE);
        };
        anyhow::ensure!(
            assurance_level == "substantial",
            "a password login at {assurance_level}"
        );
        self.keep_session(identifier, session);
        Ok(temporary)
    }

    /// Keeps `identifier`'s session for the applications that follow.
    pub(crate) fn keep_session(&self, identifier: &str, session: SessionToken) {
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.insert(identifier.to_owned(), session);
        }
    }

    /// The session of the person with `identifier`: the one their login left, else a new one
    /// from an EDS registration (which logs them in at level `high`; their certificate at the
    /// GosSUOK simulator signs the challenge), kept for the next time.
    pub(crate) async fn session(&self, identifier: &str) -> anyhow::Result<SessionToken> {
        if let Some(s) = self
            .sessions
            .lock()
            .ok()
            .and_then(|s| s.get(identifier).cloned())
        {
            return Ok(s);
        }
        let proof = self.proof(identifier).await?;
        let registered = self.ask(&RegisterByEds { proof }).await?;
        let CabinetOutcome::Ok {
            session_token: Some(session),
            ..
        } = registered
        else {
            anyhow::bail!("an EDS login for a session: {registered:?}");
        };
        self.keep_session(identifier, session.clone());
        Ok(session)
    }

    /// [`Play::ask`], failing unless the answer is `expected`.
    pub(crate) async fn expect<M: Message>(
        &self,
        m: &M,
        expected: &CabinetOutcome,
    ) -> anyhow::Result<()> {
        let got = self.ask(m).await?;
        anyhow::ensure!(
            got == *expected,
            "{}: expected {expected:?}, got {got:?}",
            M::TYPE
        );
        Ok(())
    }

    /// Applies for an identifier for `person` at `desk`, confirms the phone with the code it
    /// receives, and waits for the identifier; returns the code.
    pub(crate) async fn issue(
        &self,
        person: &Person,
        number: &str,
        phone: &str,
        desk: &str,
    ) -> anyhow::Result<String> {
        self.send(&identifier_application(person, number, phone, desk))
            .await?;
        let _: PhoneCodeSent = self.desk.wait(number).await?;
        let code = self.code_from_phone(phone).await?;
        self.send(&ConfirmPhone {
            desk_id: desk.into(),
            application_number: number.to_owned(),
            code: code.clone(),
        })
        .await?;
        let _: IdentifierIssued = self.desk.wait(number).await?;
        Ok(code)
    }

    /// The order numbers of every invoice at the ERIP simulator, one per invoice.
    pub(crate) async fn invoice_orders(&self) -> anyhow::Result<Vec<String>> {
        let invoices: serde_json::Value = self
            .http
            .get(self.erip.join("sim/invoices")?)
            .send()
            .await?
            .json()
            .await?;
        Ok(invoices["invoices"]
            .as_array()
            .map(|i| {
                i.iter()
                    .filter_map(|i| i["account_number"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Reads the code from the phone's inbox, as the person would from the screen.
    pub(crate) async fn code_from_phone(&self, phone: &str) -> anyhow::Result<String> {
        let text = self.nth_text(phone, 1).await?;
        text.split(|c: char| !c.is_ascii_digit())
            .find(|run| run.len() == 6)
            .map(str::to_owned)
            .context("no six-digit code in the SMS")
    }

    /// Pays the invoice with this order number at the simulated bank, once ERIP has it.
    pub(crate) async fn pay(&self, order_number: &str) -> anyhow::Result<()> {
        self.pay_with(order_number, json!({"channel": "bank"}))
            .await
    }

    /// Pays the invoice of `order_number` at the simulated bank as `body` says (`amount` for a
    /// short payment, `late` for a payment after the invoice closed), once ERIP has it.
    pub(crate) async fn pay_with(
        &self,
        order_number: &str,
        body: serde_json::Value,
    ) -> anyhow::Result<()> {
        let url = self
            .erip
            .join(&format!("sim/invoices/by-account/{order_number}/pay"))?;
        let timeout = self.desk.timeout();
        let deadline = Instant::now() + timeout;
        loop {
            let r = self
                .http
                .post(url.clone())
                .json(&body)
                .send()
                .await
                .context("the ERIP simulator")?;
            if r.status().is_success() {
                return Ok(());
            }
            // 404: the hub has not created the invoice yet.
            if Instant::now() > deadline {
                anyhow::bail!(
                    "order {order_number} could not be paid within {timeout:?}: {}",
                    r.status()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Every simulator and the hub, running in this process in a namespace and database of their
/// own, with a desk (every issuance, procedure and complaint event) and a portal (the cabinet's
/// answers) listening on the bus.
pub(crate) struct Stage {
    /// The hub's configuration on this stage (its namespace and database).
    pub(crate) hub_config: HubConfig,
    /// The broker topology the hub declared.
    pub(crate) topology: Topology,
    /// The players' moves.
    pub(crate) play: Arc<Play>,
    /// Stops the simulators (and whatever else the players started).
    pub(crate) token: CancellationToken,
    /// The simulated population's size.
    pub(crate) population: usize,
    /// The hub's per-phone limits, for the pseudonym its tables keep a phone under.
    pub(crate) phone_limits: hub_portal::external::sms::worker::PhoneLimits,
    sims: RunningSims,
    broker: Broker,
    listeners: Vec<JoinHandle<()>>,
    hub: RunningHub,
    /// The namespace and database, with every queue and exchange of the stage to remove.
    sandbox: Sandbox,
    /// The parties' connections.
    party_brokers: Vec<Broker>,
}

/// The desks the lab plays (`HUB_DESKS` of its hubs): the demo's, the bench's, the chaos run's.
pub(crate) const LAB_DESKS: [&str; 3] = ["demo-desk", "bench-desk", "chaos-desk"];

/// The parties' side of the stage: the hub user's connection (it declares the topology), the
/// parties' own connections with their publishers, their ears, and the portal's queue.
struct Listening {
    broker: Broker,
    party_brokers: Vec<Broker>,
    parties: HashMap<String, Arc<Publisher>>,
    desk: Arc<Desk>,
    listeners: Vec<JoinHandle<()>>,
    portal_queue: String,
}

impl Stage {
    /// Starts the simulators with `sims`, then the hub (`hubs`, sending its SMS over `sms`) with
    /// `config` in a namespace and database named after `label` and a random suffix.
    pub(crate) async fn start(
        config: &HubConfig,
        sims: SimConfig,
        label: &str,
        hubs: Hubs,
        sms: SmsProtocol,
    ) -> anyhow::Result<Stage> {
        Self::start_logged(config, sims, label, hubs, sms, None).await
    }

    /// [`Stage::start`], with the hub processes' log filter (`RUST_LOG`) set to `hub_log`
    /// instead of inherited.
    pub(crate) async fn start_logged(
        config: &HubConfig,
        sims: SimConfig,
        label: &str,
        hubs: Hubs,
        sms: SmsProtocol,
        hub_log: Option<&str>,
    ) -> anyhow::Result<Stage> {
        // The lab's queue authorities check what they send against the published schemas, as
        // the stage's publishers do (hub_runtime::conformance).
        simulators::authority::check_outgoing_with(hub_runtime::conformance::check_text);
        let population = sims.population;
        // What the simulators keep, the desk keeps too (the environment's, when set).
        let retention = sims
            .retention
            .with_env()
            .context("the simulators' retention")?;
        let mut simulated = Simulated::start(sims).await?;
        simulated.integrations.desks = LAB_DESKS.map(str::to_owned).to_vec();
        simulated.send_sms_over(sms);
        let servers = Servers {
            amqp_url: config.amqp_url.clone(),
            postgres_url: config.database_url.clone(),
        };
        let sandbox = Sandbox::new(&servers, label, &format!("hub_{label}"))?;
        let hub_config = HubConfig {
            namespace: sandbox.namespace.clone(),
            database_url: sandbox.database_url.clone(),
            ..config.clone()
        };
        let plan = hub_portal::services::plan(&simulated.integrations)?;
        let topology = app::topology(&hub_config, plan.queues())?;
        sandbox.remember(&topology, hub_config.delivery_limit);
        let heard = listen_as_parties(&hub_config, &topology, &simulated.token, &retention).await?;
        let hub = match hubs {
            Hubs::InProcess => RunningHub::task(&hub_config, plan),
            Hubs::Processes(n) => RunningHub::Processes(Mutex::new(HubProcess::spawn_all(
                n,
                &hub_config,
                &simulated.integrations,
                hub_log,
                // The bench measures the hub as production runs it: without the conformance
                // check (the tests, the demo and chaos keep it).
                label != BENCH_LABEL,
            )?)),
        };
        let play = Arc::new(Play {
            publisher: Arc::new(Publisher::new(
                heard.broker.clone(),
                simulated.token.clone(),
            )),
            bus: topology.bus_exchange(),
            desk: heard.desk,
            http: {
                hub_runtime::tls::install_default_provider();
                reqwest::Client::new()
            },
            a1: simulated.url(SimKind::A1)?,
            erip: simulated.url(SimKind::Erip)?,
            email: simulated.url(SimKind::Email)?,
            gossuok: simulated.url(SimKind::Gossuok)?,
            portal_queue: heard.portal_queue.clone(),
            parties: heard.parties,
            sender: "demo-desk".into(),
            sessions: Mutex::new(HashMap::new()),
        });
        let phone_limits = hub_portal::external::sms::worker::PhoneLimits::new(
            &simulated.integrations.limits,
            simulated.integrations.seal_key.as_deref(),
        );
        Ok(Stage {
            hub_config,
            topology,
            play,
            token: simulated.token,
            population,
            phone_limits,
            sims: simulated.sims,
            broker: heard.broker,
            listeners: heard.listeners,
            hub,
            sandbox,
            party_brokers: heard.party_brokers,
        })
    }

    /// The URL of one simulator.
    pub(crate) fn url(&self, kind: SimKind) -> anyhow::Result<url::Url> {
        self.sims
            .operator_url(kind)
            .cloned()
            .context("a simulator did not start")
    }

    /// A new channel on the stage's broker connection (as it is now, after any reconnect).
    pub(crate) async fn channel(&self) -> anyhow::Result<lapin::Channel> {
        tokio::time::timeout(self.play.desk.timeout(), self.broker.channel(&self.token))
            .await
            .ok()
            .flatten()
            .context("no broker connection")
    }

    /// Every queue of the stage: the hub's and the parties'.
    pub(crate) fn queues(&self) -> Vec<String> {
        broker::describe(&self.topology, self.hub_config.delivery_limit)
            .into_iter()
            .filter_map(|d| match d {
                broker::Declaration::Queue { name, .. } => Some(name),
                _ => None,
            })
            .collect()
    }

    /// Removes `queue` (a full name) with the stage's own, when it stops.
    pub(crate) fn remove_later(&self, queue: String) {
        self.sandbox.remember_queue(queue);
    }

    /// The stage's database's name.
    pub(crate) fn database(&self) -> &str {
        &self.sandbox.database
    }

    /// The first `limit` people of the simulated population.
    pub(crate) async fn population(&self, limit: usize) -> anyhow::Result<Vec<Person>> {
        #[derive(Deserialize)]
        struct Page {
            persons: Vec<Person>,
        }
        let page: Page = self
            .play
            .http
            .get(
                self.url(SimKind::Mvd)?
                    .join(&format!("sim/population?offset=0&limit={limit}"))?,
            )
            .send()
            .await?
            .json()
            .await?;
        Ok(page.persons)
    }

    /// A pool of `size` on the stage's database, once the hub has created and migrated it.
    pub(crate) async fn pool(&self, size: u32) -> anyhow::Result<sqlx::PgPool> {
        let url = &self.hub_config.database_url;
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            match sqlx::postgres::PgPoolOptions::new()
                .max_connections(size.max(1))
                .connect(url)
                .await
            {
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
                    return Err(e).context("the stage's database");
                }
                Err(_) => {}
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the stage's database was not migrated within {STEP_TIMEOUT:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the hub (draining it), the listeners and the simulators, and removes the stage's
    /// queues, exchanges and database. Returns the hub's own error, if it failed.
    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        let hub = self.hub.stop().await;
        for l in self.listeners {
            l.abort();
        }
        for b in self.party_brokers {
            b.close().await;
        }
        self.broker.close().await;
        self.token.cancel();
        self.sims.stopped().await;
        self.sandbox.remove().await;
        hub
    }

    /// The hub processes' ids and health-and-metrics addresses (`HUB_OPS_ADDR`; none when the
    /// hub runs in this process; a killed process is left out).
    pub(crate) fn hub_processes(&self) -> Vec<(u32, std::net::SocketAddr)> {
        match &self.hub {
            RunningHub::Task { .. } => Vec::new(),
            RunningHub::Processes(p) => p.lock().map_or_else(
                |_| Vec::new(),
                |p| {
                    p.iter()
                        .filter_map(|h| Some((h.child.as_ref()?.id()?, h.ops)))
                        .collect()
                },
            ),
        }
    }

    /// The hub processes' log files (JSON lines, appended to across restarts).
    pub(crate) fn hub_logs(&self) -> Vec<std::path::PathBuf> {
        match &self.hub {
            RunningHub::Task { .. } => Vec::new(),
            RunningHub::Processes(p) => p.lock().map_or_else(
                |_| Vec::new(),
                |p| p.iter().map(|h| h.log.clone()).collect(),
            ),
        }
    }

    /// Kills hub process `i` with SIGKILL (no drain, as a crash or an OOM kill would) and waits
    /// until it is gone. False when there is no such process or it is already down.
    pub(crate) async fn kill_hub(&self, i: usize) -> anyhow::Result<bool> {
        let RunningHub::Processes(p) = &self.hub else {
            return Ok(false);
        };
        let child = p
            .lock()
            .map_err(|_| anyhow::anyhow!("hub processes lock poisoned"))?
            .get_mut(i)
            .and_then(|h| h.child.take());
        let Some(mut child) = child else {
            return Ok(false);
        };
        child.kill().await.context("killing a hub process")?;
        Ok(true)
    }

    /// Starts again every hub process that exited by itself, as a supervisor (systemd, compose's
    /// `restart:`) would; returns how many. (A process that cannot reach the broker or the
    /// database when it starts exits at once with a message, by design.)
    pub(crate) fn revive_exited_hubs(&self) -> anyhow::Result<usize> {
        let RunningHub::Processes(p) = &self.hub else {
            return Ok(0);
        };
        let mut p = p
            .lock()
            .map_err(|_| anyhow::anyhow!("hub processes lock poisoned"))?;
        let mut revived = 0;
        for h in p.iter_mut() {
            let exited = h
                .child
                .as_mut()
                .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
            if exited {
                h.child = None;
                h.spawn()?;
                revived += 1;
            }
        }
        Ok(revived)
    }

    /// Starts hub process `i` again after [`Stage::kill_hub`].
    pub(crate) fn restart_hub(&self, i: usize) -> anyhow::Result<()> {
        let RunningHub::Processes(p) = &self.hub else {
            return Ok(());
        };
        let mut p = p
            .lock()
            .map_err(|_| anyhow::anyhow!("hub processes lock poisoned"))?;
        match p.get_mut(i) {
            Some(h) if h.child.is_none() => h.spawn(),
            _ => Ok(()),
        }
    }
}

/// The hub user's connection declares the hub's topology (so nothing the hub sends is lost
/// before it starts); then each party connects as its own broker user and listens to its own
/// queue, which the topology holds: every desk of [`LAB_DESKS`] to its events, the portal to its
/// events and the cabinet's answers.
async fn listen_as_parties(
    hub_config: &HubConfig,
    topology: &Topology,
    token: &CancellationToken,
    retention: &simulators::Retention,
) -> anyhow::Result<Listening> {
    let broker = Broker::connect(&hub_config.amqp_url, "lab", token.clone()).await?;
    let channel = broker
        .channel(token)
        .await
        .context("broker connection closed")?;
    broker::declare(&channel, topology, hub_config.delivery_limit).await?;
    let _ = channel.close(200, "declared".into()).await;
    let desk = Arc::new(Desk::new(retention.records_limit()));
    let portal_user = hub_portal::parties::DEFAULT_PORTAL_USER;
    let portal_queue = topology.work_queue(hub_portal::parties::PORTAL_QUEUE);
    let mut parties = vec![(portal_user.to_owned(), portal_queue.clone(), true)];
    parties.extend(LAB_DESKS.map(|d| {
        (
            hub_portal::agency::desk_user(d),
            topology.work_queue(&hub_portal::agency::desk_queue(d)),
            false,
        )
    }));
    let (mut listeners, mut party_brokers, mut publishers) =
        (Vec::new(), Vec::new(), HashMap::new());
    for (user, queue, is_reply) in parties {
        crate::parties::ensure_party_user(&hub_config.amqp_url, &user, portal_user).await?;
        let url = crate::parties::url_as(&hub_config.amqp_url, &user)?;
        let party = Broker::connect(url.as_str(), &format!("lab {user}"), token.clone())
            .await
            .with_context(|| format!("the lab's party {user} connecting"))?;
        publishers.insert(
            user.clone(),
            Arc::new(Publisher::new(party.clone(), token.clone())),
        );
        let (desk, broker, token) = (desk.clone(), party.clone(), token.clone());
        listeners.push(tokio::spawn(async move {
            // Consume; when the connection goes (a broker restart), consume again on the next
            // one.
            while let Some(channel) = broker.channel(&token).await {
                if let Err(e) = consume(&channel, &queue, &desk, is_reply).await {
                    tracing::debug!(queue = %queue, error = %e, "listener lost its channel");
                }
                if token.is_cancelled() {
                    break;
                }
            }
        }));
        party_brokers.push(party);
    }
    Ok(Listening {
        broker,
        party_brokers,
        parties: publishers,
        desk,
        listeners,
        portal_queue,
    })
}

/// Consumes a party's queue into the desk until the channel goes.
async fn consume(
    channel: &lapin::Channel,
    queue: &str,
    desk: &Desk,
    is_reply: bool,
) -> anyhow::Result<()> {
    let mut consumer = channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    while let Some(Ok(d)) = consumer.next().await {
        if let (Ok(meta), Ok(body)) = (
            decode_properties(&d.properties),
            serde_json::from_slice::<serde_json::Value>(&d.data),
        ) {
            // The portal's queue holds its events and the cabinet's answers: an answer carries
            // the correlation of a request the portal made.
            let reply = is_reply && meta.message_type == CabinetReply::TYPE.to_string();
            desk.record(meta, body, reply);
        }
        // Acked after it is recorded: a delivery lost with the connection comes again, and the
        // desk counts effects by message id.
        let _ = d.acker.ack(BasicAckOptions::default()).await;
    }
    Ok(())
}

/// Where the stage runs the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hubs {
    /// As a task of this process, beside the simulators (the demo).
    InProcess,
    /// As this many `hub run` processes (this executable) on the same broker and database, each
    /// with its own HTTP listener for the callbacks it asked for.
    Processes(usize),
}

enum RunningHub {
    Task {
        token: CancellationToken,
        task: JoinHandle<anyhow::Result<()>>,
    },
    Processes(Mutex<Vec<HubProcess>>),
}

impl RunningHub {
    /// Runs `plan` as a task of this process.
    fn task(config: &HubConfig, plan: app::Plan) -> Self {
        let token = CancellationToken::new();
        let (config, t) = (config.clone(), token.clone());
        RunningHub::Task {
            token,
            task: tokio::spawn(
                async move { app::run_plan(&config, Components::ALL, plan, t).await },
            ),
        }
    }

    /// Drains and stops the hub; its own error, if it failed.
    async fn stop(self) -> anyhow::Result<()> {
        match self {
            RunningHub::Task { token, task } => {
                token.cancel();
                task.await.context("the hub task")?
            }
            RunningHub::Processes(processes) => {
                let mut first_error = None;
                let processes = processes
                    .into_inner()
                    .map_err(|_| anyhow::anyhow!("hub processes lock poisoned"))?;
                for p in processes {
                    if let Err(e) = p.stop().await {
                        first_error.get_or_insert(e);
                    }
                }
                first_error.map_or(Ok(()), Err)
            }
        }
    }
}

/// One `hub run` child process of the stage; `child` is `None` while it is killed.
struct HubProcess {
    child: Option<tokio::process::Child>,
    /// Where it serves health and metrics (`HUB_OPS_ADDR`).
    ops: std::net::SocketAddr,
    log: std::path::PathBuf,
    files: Vec<std::path::PathBuf>,
    env: Vec<(String, String)>,
}

impl HubProcess {
    /// Starts `n` hub processes configured like the in-process hub would be.
    fn spawn_all(
        n: usize,
        config: &HubConfig,
        integrations: &IntegrationConfig,
        log_filter: Option<&str>,
        conformance: bool,
    ) -> anyhow::Result<Vec<HubProcess>> {
        let dir = std::env::temp_dir();
        // The trusted EDS roots go by file, as in production.
        let mut roots = Vec::new();
        for (k, der) in integrations.eds_trusted_roots.iter().enumerate() {
            let path = dir.join(format!("{}-eds-root-{k}.der", config.namespace));
            std::fs::write(&path, der).with_context(|| format!("writing {}", path.display()))?;
            roots.push(path);
        }
        let mut processes = Vec::new();
        for i in 0..n {
            let (http, ops) = (free_local_addr()?, free_local_addr()?);
            let log = dir.join(format!("{}-hub-{i}.log", config.namespace));
            let _ = std::fs::remove_file(&log);
            let mut env = process_env(config, integrations, http, ops, &roots);
            if let Some(filter) = log_filter {
                env.push(("RUST_LOG".into(), filter.into()));
            }
            if !conformance {
                env.push(("HUB_CONFORMANCE".into(), "off".into()));
            }
            let mut p = HubProcess {
                child: None,
                ops,
                log,
                files: if i == 0 { roots.clone() } else { Vec::new() },
                env,
            };
            p.spawn()?;
            processes.push(p);
        }
        Ok(processes)
    }

    /// Starts the process (again, after a kill: same port, same log, appended to).
    fn spawn(&mut self) -> anyhow::Result<()> {
        let exe = std::env::current_exe().context("this executable's path, to start hub run")?;
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let child = tokio::process::Command::new(&exe)
            .arg("run")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} run", exe.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// SIGTERM, then waits for the drain; SIGKILL if it takes too long.
    async fn stop(mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if let Some(pid) = child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        let status = match tokio::time::timeout(STEP_TIMEOUT, child.wait()).await {
            Ok(status) => status?,
            Err(_) => {
                child.kill().await?;
                anyhow::bail!(
                    "a hub process did not drain within {STEP_TIMEOUT:?}; its log: {}",
                    self.log.display()
                );
            }
        };
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
        anyhow::ensure!(
            status.success(),
            "a hub process exited with {status}; its log: {}",
            self.log.display()
        );
        let _ = std::fs::remove_file(&self.log);
        Ok(())
    }
}

/// The environment of a `hub run` process with this configuration (everything else it
/// inherits from this process's environment).
fn process_env(
    config: &HubConfig,
    i: &IntegrationConfig,
    http: std::net::SocketAddr,
    ops: std::net::SocketAddr,
    roots: &[std::path::PathBuf],
) -> Vec<(String, String)> {
    let ms = |d: Duration| format!("{}ms", d.as_millis());
    let mut env: Vec<(String, String)> = [
        ("AMQP_URL", config.amqp_url.clone()),
        ("DATABASE_URL", config.database_url.clone()),
        ("HUB_NAMESPACE", config.namespace.to_string()),
        ("HUB_PREFETCH", config.prefetch.to_string()),
        ("HUB_BATCH", config.batch.to_string()),
        ("HUB_BATCH_LANES", config.batch_lanes.to_string()),
        ("HUB_MAX_ATTEMPTS", config.max_attempts.to_string()),
        ("HUB_DELIVERY_LIMIT", config.delivery_limit.to_string()),
        ("HUB_DB_POOL", config.db_pool.to_string()),
        ("HUB_RELAY_BATCH", config.relay_batch.to_string()),
        ("HUB_POLL_INTERVAL", ms(config.poll_interval)),
        ("HUB_HANDLER_TIMEOUT", ms(config.handler_timeout)),
        (
            "HUB_RETRY_TIERS",
            config
                .retry_tiers
                .0
                .iter()
                .map(|t| ms(t.delay))
                .collect::<Vec<_>>()
                .join(","),
        ),
        ("HUB_MVD_URL", i.mvd_url.to_string()),
        ("HUB_SMS_A1_URL", i.sms_a1_url.to_string()),
        ("HUB_SMS_MTS_URL", i.sms_mts_url.to_string()),
        ("HUB_SMS_LIFE_URL", i.sms_life_url.to_string()),
        ("HUB_SMS_A1_SECRET", i.sms_a1_secret.clone()),
        ("HUB_SMS_MTS_SECRET", i.sms_mts_secret.clone()),
        ("HUB_SMS_LIFE_SECRET", i.sms_life_secret.clone()),
        ("HUB_SMS_SENDER", i.sms_sender.clone()),
        ("HUB_HTTP_TIMEOUT", ms(i.http_timeout)),
        ("HUB_PORTAL_USER", i.portal_user.clone()),
        ("HUB_DESKS", i.desks.join(",")),
        ("HUB_HTTP_ADDR", http.to_string()),
        ("HUB_CALLBACK_URL", format!("http://{http}/")),
        ("HUB_OPS_ADDR", ops.to_string()),
        ("HUB_PHONE_CODE_TTL", ms(i.phone_code_ttl)),
        ("HUB_PHONE_CODE_ATTEMPTS", i.phone_code_attempts.to_string()),
        ("HUB_TEMP_PASSWORD_TTL", ms(i.temp_password_ttl)),
        ("HUB_SESSION_TTL", ms(i.session_ttl)),
        ("HUB_ERIP_URL", i.erip_url.to_string()),
        ("HUB_ERIP_SECRET", i.erip_secret.clone()),
        ("HUB_PAYMENT_TTL", ms(i.payment_ttl)),
        (
            "HUB_UNSIGNED_DECISIONS",
            match i.unsigned_decisions {
                UnsignedDecisions::Refuse => "refuse",
                UnsignedDecisions::Accept => "accept",
            }
            .to_owned(),
        ),
        ("HUB_SMTP_URL", i.smtp_url.to_string()),
        ("HUB_EMAIL_FROM", i.email_from.clone()),
        ("HUB_PORTAL_URL", i.portal_url.to_string()),
        ("HUB_GOSSUOK_URL", i.gossuok_url.to_string()),
        (
            "HUB_EDS_TRUSTED_ROOTS",
            roots
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(","),
        ),
        ("HUB_OCSP_CACHE", ms(i.ocsp_cache)),
        // One console at most per machine; the stage's hubs need none.
        ("HUB_CONSOLE_USERS", String::new()),
        ("HUB_LOG_FORMAT", "json".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    env.extend(i.authority_settings.clone());
    env
}

/// The `p` quantile of `times` (sorted in place), 0 when empty.
pub(crate) fn percentile<T: Copy + Ord + Default>(times: &mut [T], p: f64) -> T {
    times.sort_unstable();
    times
        .get(((times.len() as f64 * p).ceil() as usize).saturating_sub(1))
        .copied()
        .unwrap_or_default()
}
