//! The whole portal in one test: a [`TestEnv`], every simulator on free ports, and the hub's own
//! plan (issuance saga, registry, MVD and SMS workers, callback listener) pointed at them. The
//! test plays the desk: it sends applications on the bus, reads the events the hub sends back,
//! and reads the person's phone from the operator's inbox.

use std::sync::Mutex;
use std::time::Duration;

use contracts::cabinet::{CabinetOutcome, CabinetReply, ChangePassword, LogIn, SessionToken};
use contracts::issuance::{
    Applicant, Application, ApplyForIdentifier, ConfirmPhone, DocumentKind, IdentifierIssued,
    IdentityDocument, PhoneCodeSent,
};
use contracts::person::{Msisdn, Operator, PersonStatus};
use contracts::registration::RegisterByEds;
use contracts::{Message, Metadata};
use hub_lab::simulated::{Simulated, random_seal_key};
use hub_ops::config::ConsoleConfig;
use hub_portal::config::IntegrationConfig;
use hub_runtime::app::Components;
use serde::Deserialize;
use simulators::{RunningSims, SimConfig, SimKind};
use tokio_util::sync::CancellationToken;

use crate::harness::{Observed, Observer};
use crate::{RunningHub, TestEnv, wait_until};

/// The test's client of the simulators when they serve plain HTTP.
fn plain_http() -> reqwest::Client {
    adapters::tls::install_default_provider();
    reqwest::Client::new()
}

/// How long a test waits for a journey step.
pub const WAIT: Duration = Duration::from_secs(60);

/// A person of the simulated MVD registry.
#[derive(Debug, Clone, Deserialize)]
pub struct Person {
    /// Identification number.
    pub identification_number: String,
    /// Surname (the current one).
    pub surname: String,
    /// Given name.
    pub given_name: String,
    /// Patronymic.
    pub patronymic: Option<String>,
    /// Birth date.
    pub birth_date: chrono::NaiveDate,
    /// The document.
    pub document: SimDocument,
    /// Citizen, foreign citizen, stateless.
    pub status: PersonStatus,
    /// `valid`, `expired`, `lost`.
    pub document_status: String,
    /// The surname before a change, if any.
    pub previous_surname: Option<String>,
    /// Whether the identification number's check digit verifies.
    pub check_digit_valid: bool,
}

/// A document as the simulator lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct SimDocument {
    /// Kind.
    pub kind: DocumentKind,
    /// Number.
    pub number: String,
    /// Issued.
    pub issued_on: chrono::NaiveDate,
    /// Expires.
    pub expires_on: chrono::NaiveDate,
}

impl Person {
    /// An application of this person with `phone`, as desk `desk` would send it.
    pub fn application(&self, number: &str, phone: &str) -> ApplyForIdentifier {
        ApplyForIdentifier {
            application: Application {
                number: number.into(),
                date: chrono::Utc::now().date_naive(),
                desk_id: DESK.into(),
                worker_id: "worker-1".into(),
            },
            person: Applicant {
                identification_number: self.identification_number.clone(),
                surname: self.surname.clone(),
                given_name: self.given_name.clone(),
                patronymic: self.patronymic.clone(),
                birth_date: self.birth_date,
                status: self.status,
            },
            document: IdentityDocument {
                kind: self.document.kind,
                number: self.document.number.clone(),
                issued_on: self.document.issued_on,
                expires_on: self.document.expires_on,
            },
            phone: phone.into(),
            consent_to_mvd_check: true,
        }
    }
}

/// The desk every test application comes from.
pub const DESK: &str = crate::harness::TEST_DESKS[0];

/// The n-th test phone: an A1 number that is not ported, unknown, blocked or failing.
pub fn phone(n: u32) -> String {
    format!("+37544{:03}1234", n % 1000)
}

/// The portal under test.
#[derive(Debug)]
pub struct Portal {
    /// The namespace and database.
    pub env: TestEnv,
    /// The simulators.
    pub sims: RunningSims,
    /// The hub's integration settings (simulator URLs, sealing key, timings).
    pub integrations: IntegrationConfig,
    hub: Option<RunningHub>,
    sims_token: CancellationToken,
    pub(crate) http: reqwest::Client,
    desk: Observer,
    seen: Mutex<Vec<Observed>>,
    replies: Observer,
}

impl Portal {
    /// Starts everything with the default settings.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts everything, letting the test adjust the hub's integration settings first.
    pub async fn start_with(adjust: impl FnOnce(&mut IntegrationConfig)) -> Self {
        Self::start_custom(|_| {}, adjust).await
    }

    /// Starts everything with the operators' console configured as `console`.
    pub async fn start_with_console(console: ConsoleConfig) -> Self {
        Self::start_full(|_| {}, |_| {}, console, plain_http()).await
    }

    /// Starts everything, letting the test adjust the simulators' and then the hub's settings.
    pub async fn start_custom(
        adjust_sims: impl FnOnce(&mut SimConfig),
        adjust: impl FnOnce(&mut IntegrationConfig),
    ) -> Self {
        Self::start_full(adjust_sims, adjust, ConsoleConfig::default(), plain_http()).await
    }

    /// [`Self::start_custom`], the test reaching the simulators with `http` (over TLS: a client
    /// that trusts their CA and shows the certificate they require).
    pub async fn start_custom_with_http(
        adjust_sims: impl FnOnce(&mut SimConfig),
        adjust: impl FnOnce(&mut IntegrationConfig),
        http: reqwest::Client,
    ) -> Self {
        Self::start_full(adjust_sims, adjust, ConsoleConfig::default(), http).await
    }

    async fn start_full(
        adjust_sims: impl FnOnce(&mut SimConfig),
        adjust: impl FnOnce(&mut IntegrationConfig),
        console: ConsoleConfig,
        http: reqwest::Client,
    ) -> Self {
        let env = TestEnv::new().await;
        let mut sim_config = SimConfig {
            population: 500,
            ..SimConfig::ephemeral()
        };
        adjust_sims(&mut sim_config);
        let Simulated {
            sims,
            mut integrations,
            token: sims_token,
        } = Simulated::start_with_client(sim_config, &http)
            .await
            .expect("the simulators start");
        // Tests fail sooner than the lab, and each seals with a key of its own.
        integrations.http_timeout = Duration::from_secs(2);
        integrations.phone_code_ttl = Duration::from_secs(60);
        integrations.seal_key = Some(random_seal_key());
        integrations.desks = crate::harness::TEST_DESKS.map(str::to_owned).to_vec();
        // The queue authorities the tests start with `start_authority` decide unsigned
        // (`authority.decided.v1`, `authority.complaint_decided.v1`); the tests of signed
        // decisions set `Refuse` (the lab's and production's) themselves.
        integrations.unsigned_decisions = hub_portal::procedures::saga::UnsignedDecisions::Accept;
        adjust(&mut integrations);
        let plan = hub::plan(&integrations, &console).expect("the hub's plan");
        let topology = env.declare(plan.queues()).await;
        // What the desk and the portal hear: their own queues, which the hub declares.
        let desk = Observer::attach(
            &env,
            topology.work_queue(&hub_portal::agency::desk_queue(DESK)),
        )
        .await;
        let replies =
            Observer::attach(&env, topology.work_queue(hub_portal::parties::PORTAL_QUEUE)).await;
        let hub = env.spawn_plan(Components::ALL, plan);
        Self {
            env,
            sims,
            integrations,
            hub: Some(hub),
            sims_token,
            http,
            desk,
            seen: Mutex::new(Vec::new()),
            replies,
        }
    }

    /// The registry's population (the first `limit` persons).
    pub async fn population(&self, limit: usize) -> Vec<Person> {
        #[derive(Deserialize)]
        struct Page {
            persons: Vec<Person>,
        }
        let url = self
            .sims
            .mvd
            .as_ref()
            .expect("mvd")
            .join(&format!("sim/population?offset=0&limit={limit}"))
            .expect("url");
        let page: Page = self
            .http
            .get(url)
            .send()
            .await
            .expect("population")
            .json()
            .await
            .expect("population JSON");
        page.persons
    }

    /// Persons with a valid document, no surname change, and a verifying check digit.
    pub async fn good_persons(&self) -> Vec<Person> {
        let today = chrono::Utc::now().date_naive();
        self.population(500)
            .await
            .into_iter()
            .filter(|p| {
                p.document_status == "valid"
                    && p.previous_surname.is_none()
                    && p.check_digit_valid
                    && p.document.expires_on > today
                    && p.birth_date < today - chrono::Days::new(15 * 366)
            })
            .collect()
    }

    /// Sends an application; returns its number.
    pub async fn apply(&self, application: &ApplyForIdentifier) {
        self.env.send(application).await;
    }

    /// Sends a phone code for application `number`.
    pub async fn confirm(&self, number: &str, code: &str) {
        self.env
            .send(&ConfirmPhone {
                desk_id: DESK.into(),
                application_number: number.into(),
                code: code.into(),
            })
            .await;
    }

    /// Takes what the desk's and the portal's queues hold into `seen`.
    async fn hear(&self) {
        for queue in [&self.desk, &self.replies] {
            while let Some(m) = queue.get().await {
                self.seen.lock().expect("lock").push(m);
            }
        }
    }

    /// Waits for an event of type `M` about application `number` (an issuance's number, or a
    /// procedure application's id), heard by the desk or the portal.
    pub async fn event<M: Message>(&self, number: &str) -> M {
        let wanted = M::TYPE.to_string();
        let observed = wait_until(
            WAIT,
            &format!("{wanted} for application {number}"),
            || async {
                self.hear().await;
                let seen = self.seen.lock().expect("lock");
                seen.iter()
                    .find(|m| {
                        m.metadata.message_type == wanted
                            && (m.body["application_number"] == number
                                || m.body["application_id"] == number
                                || m.body["complaint_id"] == number
                                || m.body["request_id"] == number
                                || m.body["notice"]["application"]["number"] == number)
                    })
                    .cloned()
            },
        )
        .await;
        serde_json::from_value(observed.body).expect("event body")
    }

    /// The texts the phone received so far (oldest first).
    pub async fn phone_texts(&self, phone: &str) -> Vec<String> {
        #[derive(Deserialize)]
        struct Inbox {
            messages: Vec<InboxMessage>,
        }
        #[derive(Deserialize)]
        struct InboxMessage {
            text: String,
        }
        let msisdn = Msisdn::parse(phone).expect("test phone");
        let kind = match msisdn.operator_by_prefix() {
            Operator::A1 => SimKind::A1,
            Operator::Mts => SimKind::Mts,
            Operator::Life => SimKind::Life,
        };
        let url = self
            .sims
            .operator_url(kind)
            .expect("operator")
            .join(&format!(
                "sim/inbox/{}",
                msisdn.as_str().trim_start_matches('+')
            ))
            .expect("url");
        let inbox: Inbox = self
            .http
            .get(url)
            .send()
            .await
            .expect("inbox")
            .json()
            .await
            .expect("inbox JSON");
        inbox.messages.into_iter().map(|m| m.text).collect()
    }

    /// Waits for the n-th (1-based) SMS on `phone` and returns its text.
    pub async fn nth_text(&self, phone: &str, n: usize) -> String {
        wait_until(WAIT, &format!("SMS number {n} on the phone"), || async {
            self.phone_texts(phone).await.into_iter().nth(n - 1)
        })
        .await
    }

    /// Sends a cabinet request as the portal does (reply queue and a correlation id) and waits
    /// for the hub's answer.
    pub async fn cabinet<M: Message>(&self, request: &M) -> CabinetOutcome {
        self.ask::<M, CabinetReply>(request).await.outcome
    }

    /// Sends the portal's request `request` with a `reply_to` of the portal's own queue and a
    /// fresh correlation id, and waits for the answer with that correlation id, of type `R`.
    pub async fn ask<M: Message, R: Message + serde::de::DeserializeOwned>(
        &self,
        request: &M,
    ) -> R {
        let mut metadata = Metadata::new(M::TYPE.to_string(), "portal");
        let correlation = uuid::Uuid::new_v4().to_string();
        metadata.correlation_id = Some(correlation.clone());
        metadata.reply_to = Some(self.replies.queue.clone());
        self.env.send_with(request, metadata).await;
        let reply = wait_until(WAIT, &format!("the answer to {}", M::TYPE), || async {
            self.hear().await;
            let mut seen = self.seen.lock().expect("lock");
            let at = seen
                .iter()
                .position(|m| m.metadata.correlation_id.as_deref() == Some(correlation.as_str()))?;
            Some(seen.remove(at))
        })
        .await;
        assert_eq!(reply.metadata.message_type, R::TYPE.to_string());
        serde_json::from_value::<R>(reply.body).expect("the answer's body")
    }

    /// Registers the n-th good person by EDS (a challenge signed by their key at the GosSUOK
    /// simulator), which logs them in; returns their identification number and the session
    /// (level `high`). Cheap: no password is hashed.
    pub async fn eds_session(&self, n: usize) -> (String, SessionToken) {
        let id = crate::eds::holder(self, n).await;
        let proof = crate::eds::proof(self, &id).await;
        let (level, session) = session_in(self.cabinet(&RegisterByEds { proof }).await);
        assert_eq!(level, "high");
        (id, session)
    }

    /// Issues an identifier to the n-th good person, with phone `phone(100 + n)`; returns
    /// (identifier, temporary password, phone).
    pub async fn issued(&self, n: u32) -> (String, String, String) {
        let person = self.good_persons().await.remove(n as usize);
        let number = format!("K-{n}");
        let phone = phone(100 + n);
        self.apply(&person.application(&number, &phone)).await;
        let _: PhoneCodeSent = self.event(&number).await;
        let code = code_in(&self.nth_text(&phone, 1).await);
        self.confirm(&number, &code).await;
        let _: IdentifierIssued = self.event(&number).await;
        let password = password_in(&self.nth_text(&phone, 2).await);
        (person.identification_number, password, phone)
    }

    /// Issues an identifier to the n-th good person ([`Portal::issued`]), replaces the temporary
    /// password with [`STATIC_PASSWORD`] and logs in with it, as a person does on the portal;
    /// returns the identifier and the session (level `substantial`).
    pub async fn password_session(&self, n: u32) -> (String, SessionToken) {
        let (id, temporary, _) = self.issued(n).await;
        let change = ChangePassword {
            identifier: id.clone(),
            current_password: temporary,
            new_password: STATIC_PASSWORD.into(),
        };
        assert!(matches!(
            self.cabinet(&change).await,
            CabinetOutcome::Ok { .. }
        ));
        let session = self.log_in(&id, STATIC_PASSWORD).await;
        (id, session)
    }

    /// Logs in with the identifier and password; returns the session (level `substantial`).
    pub async fn log_in(&self, identifier: &str, password: &str) -> SessionToken {
        let (level, session) = session_in(
            self.cabinet(&LogIn {
                identifier: identifier.into(),
                password: password.into(),
            })
            .await,
        );
        assert_eq!(level, "substantial");
        session
    }

    /// Waits for the n-th (1-based) event of type `M` about application `number`, in the order
    /// heard.
    pub async fn nth_event<M: Message>(&self, number: &str, n: usize) -> M {
        let wanted = M::TYPE.to_string();
        let observed = wait_until(
            WAIT,
            &format!("{wanted} number {n} for application {number}"),
            || async {
                self.hear().await;
                let seen = self.seen.lock().expect("lock");
                seen.iter()
                    .filter(|m| {
                        m.metadata.message_type == wanted
                            && (m.body["application_number"] == number
                                || m.body["application_id"] == number)
                    })
                    .nth(n - 1)
                    .cloned()
            },
        )
        .await;
        serde_json::from_value(observed.body).expect("event body")
    }

    /// Every event of type `M` about application `number` seen so far.
    pub async fn events_so_far<M: Message>(&self, number: &str) -> usize {
        self.hear().await;
        let wanted = M::TYPE.to_string();
        self.seen
            .lock()
            .expect("lock")
            .iter()
            .filter(|m| {
                m.metadata.message_type == wanted
                    && (m.body["application_number"] == number
                        || m.body["application_id"] == number)
            })
            .count()
    }

    /// The broker user of queue authority `authority` (made on the local RabbitMQ if missing)
    /// and the AMQP URL it connects with.
    pub fn authority_login(&self, authority: &str) -> (String, url::Url) {
        let catalogue = hub_portal::procedures::catalogue::Catalogue::embedded()
            .expect("the embedded catalogue");
        let user = catalogue
            .authority(authority)
            .and_then(|a| a.broker_user())
            .expect("a queue authority of the catalogue")
            .to_owned();
        hub_portal::agency::ensure_user_with_rabbitmqctl(&user, AUTHORITY_PASSWORD, authority, "/")
            .expect("the authority's broker user");
        let mut url = url::Url::parse(&self.env.config.amqp_url).expect("AMQP URL");
        url.set_username(&user).expect("user");
        url.set_password(Some(AUTHORITY_PASSWORD))
            .expect("password");
        (user, url)
    }

    /// Starts the simulated back-office of `authority`, connected as its own broker user (made
    /// on the local RabbitMQ if missing), deciding `decide_after` after registering.
    pub fn start_authority(&self, authority: &str, decide_after: Duration) {
        self.start_authority_with(authority, decide_after, decide_after);
    }

    /// Starts the queue authority simulator deciding with the signed `authority.decided.v2`:
    /// its official (the population's person `official`) gets a certificate from the GosSUOK
    /// simulator naming `organization` (the authority's id, or another's to test the refusal).
    /// The returned signing holds the fault switch and the refusals the hub answered.
    pub async fn start_signing_authority(
        &self,
        authority: &str,
        organization: &str,
        official: &str,
        decide_after: Duration,
    ) -> std::sync::Arc<simulators::decision_signing::DecisionSigning> {
        let gossuok = self
            .sims
            .operator_url(SimKind::Gossuok)
            .expect("gossuok")
            .clone();
        let signing = std::sync::Arc::new(
            simulators::decision_signing::DecisionSigning::issue(
                &self.http,
                &gossuok,
                official,
                organization,
            )
            .await
            .expect("the official's certificate"),
        );
        self.spawn_authority(authority, decide_after, decide_after, Some(signing.clone()));
        signing
    }

    /// Like [`Portal::start_authority`], with its own delay for deciding complaints.
    pub fn start_authority_with(
        &self,
        authority: &str,
        decide_after: Duration,
        complaint_decide_after: Duration,
    ) {
        self.spawn_authority(authority, decide_after, complaint_decide_after, None);
    }

    fn spawn_authority(
        &self,
        authority: &str,
        decide_after: Duration,
        complaint_decide_after: Duration,
        signing: Option<std::sync::Arc<simulators::decision_signing::DecisionSigning>>,
    ) {
        let (user, url) = self.authority_login(authority);
        let topology = self.env.topology(vec![]);
        let config = simulators::authority::AuthorityConfig {
            amqp_url: url.to_string(),
            broker_user: user,
            authority: authority.to_owned(),
            queue: topology.work_queue(&hub_portal::procedures::saga::authority_queue(authority)),
            bus_exchange: topology.bus_exchange(),
            decide_after,
            complaint_decide_after,
            signing,
        };
        let token = self.sims_token.clone();
        tokio::spawn(async move {
            if let Err(e) = simulators::authority::run(config, token).await {
                panic!("the authority simulator failed: {e:#}");
            }
        });
    }

    /// Pays the invoice of `order_number` at the simulated bank.
    pub async fn pay(&self, order_number: &str) {
        let url = self
            .sims
            .operator_url(SimKind::Erip)
            .expect("erip")
            .join(&format!("sim/invoices/by-account/{order_number}/pay"))
            .expect("url");
        let r = self
            .http
            .post(url)
            .json(&serde_json::json!({"channel": "bank"}))
            .send()
            .await
            .expect("pay");
        assert!(r.status().is_success(), "paid: {}", r.status());
    }

    /// Pays the invoice of `order_number` at the simulated bank as `body` says (`amount` in
    /// kopecks for a short payment or an overpayment, `late: true` for a payment after it
    /// closed); returns the simulator's view of the invoice.
    pub async fn pay_with(&self, order_number: &str, body: serde_json::Value) -> serde_json::Value {
        self.erip_sim(&format!("sim/invoices/by-account/{order_number}/pay"), body)
            .await
    }

    /// Returns a payment of `order_number` to the payer (`{"operation_id": ..., "reversal":
    /// true}`, both optional); returns the simulator's view of the invoice.
    pub async fn return_payment(
        &self,
        order_number: &str,
        body: serde_json::Value,
    ) -> serde_json::Value {
        self.erip_sim(
            &format!("sim/invoices/by-account/{order_number}/return"),
            body,
        )
        .await
    }

    /// Moves ERIP's clock: every awaiting invoice due by `at` (RFC 3339) expires, notified.
    pub async fn erip_sim_expire(&self, at: &str) -> serde_json::Value {
        self.erip_sim("sim/clock/expire", serde_json::json!({"at": at}))
            .await
    }

    async fn erip_sim(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let url = self
            .sims
            .operator_url(SimKind::Erip)
            .expect("erip")
            .join(path)
            .expect("url");
        let r = self.http.post(url).json(&body).send().await.expect(path);
        let status = r.status();
        let answer: serde_json::Value = r.json().await.unwrap_or_default();
        assert!(status.is_success(), "{path}: {status} {answer}");
        answer
    }

    /// Waits for an event of type `M` about application `number` for which `pick` holds.
    pub async fn event_where<M: Message>(&self, number: &str, pick: impl Fn(&M) -> bool) -> M {
        let wanted = M::TYPE.to_string();
        wait_until(
            WAIT,
            &format!("a matching {wanted} for {number}"),
            || async {
                self.hear().await;
                let seen = self.seen.lock().expect("lock");
                seen.iter()
                    .filter(|m| {
                        m.metadata.message_type == wanted
                            && (m.body["application_id"] == number
                                || m.body["application_number"] == number)
                    })
                    .filter_map(|m| serde_json::from_value::<M>(m.body.clone()).ok())
                    .find(|m| pick(m))
            },
        )
        .await
    }

    /// ERIP's view of the invoice with this order number (`status` etc.).
    pub async fn erip_invoice(&self, order_number: &str) -> serde_json::Value {
        let url = self
            .sims
            .operator_url(SimKind::Erip)
            .expect("erip")
            .join("sim/invoices")
            .expect("url");
        let all: serde_json::Value = self
            .http
            .get(url)
            .send()
            .await
            .expect("invoices")
            .json()
            .await
            .expect("JSON");
        let list = all.get("invoices").cloned().unwrap_or(all);
        list.as_array()
            .and_then(|l| {
                l.iter()
                    .find(|i| i["account_number"] == order_number)
                    .cloned()
            })
            .unwrap_or(serde_json::Value::Null)
    }

    /// Sets faults on a simulator (`{"error_rate": 1.0}`).
    pub async fn faults(&self, kind: SimKind, faults: serde_json::Value) {
        let url = self
            .sims
            .operator_url(kind)
            .expect("simulator")
            .join("sim/faults")
            .expect("url");
        let r = self
            .http
            .put(url)
            .json(&faults)
            .send()
            .await
            .expect("faults");
        assert!(r.status().is_success(), "faults set: {}", r.status());
    }

    /// Stops the hub (draining) and the simulators.
    pub async fn stop(&mut self) {
        if let Some(hub) = self.hub.take() {
            hub.stop().await;
        }
        self.sims_token.cancel();
    }
}

/// The static password [`Portal::password_session`] sets.
pub const STATIC_PASSWORD: &str = "Static2026pass";

/// The assurance level and the session of a successful login's answer (fails the test on any
/// other answer, or an `ok` without a session).
pub fn session_in(outcome: CabinetOutcome) -> (String, SessionToken) {
    match outcome {
        CabinetOutcome::Ok {
            assurance_level,
            session_token: Some(session),
        } => (assurance_level, session),
        other => panic!("a login with a session, got {other:?}"),
    }
}

/// An answer with its session left out (each login's token is new), to compare answers whole.
pub fn plain(outcome: CabinetOutcome) -> CabinetOutcome {
    match outcome {
        CabinetOutcome::Ok {
            assurance_level, ..
        } => CabinetOutcome::Ok {
            assurance_level,
            session_token: None,
        },
        other => other,
    }
}

/// The password the tests' authority users have on the local broker.
pub const AUTHORITY_PASSWORD: &str = hub_portal::agency::DEV_PASSWORD;

/// The six-digit code in an SMS text.
pub fn code_in(text: &str) -> String {
    text.split(|c: char| !c.is_ascii_digit())
        .find(|run| run.len() == 6)
        .expect("a six-digit code in the SMS")
        .to_owned()
}

/// The temporary password in an SMS text.
pub fn password_in(text: &str) -> String {
    text.split("пароль: ")
        .nth(1)
        .and_then(|rest| rest.split('.').next())
        .expect("a temporary password in the SMS")
        .to_owned()
}
