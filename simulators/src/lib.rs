//! Simulators of the external systems behind the hub: the MVD population registry, the mobile
//! operators A1, MTS and life:), the ERIP payment system and the authorities' HTTP back-offices
//! (see README.md for the HTTP API they speak), and an authority's back-office on the hub's
//! queue ([`authority`]). Both back-offices share one clerk, so they decide alike.
//!
//! GosSUOK, the state PKI, is simulated with a test CA doing real bign cryptography; the CA is
//! public ([`gossuok::ca::TestCa`]) so that validators can be tested against it without HTTP.
//!
//! They exist so that the whole portal runs on one machine and integrators can test without the
//! real systems. Each simulator speaks its system's own wire format with its own types — it
//! deliberately shares nothing with the `adapters` crate, so a mismatch between an adapter and
//! the system it talks to shows up in a test instead of hiding in a shared struct.
//!
//! The hub's `demo` command and the end-to-end tests start them in-process with [`start`]; the
//! `simulators` binary does the same from the command line.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use url::Url;

pub mod authority;
mod backoffice;
mod clerk;
pub mod decision_signing;
pub use clerk::{
    DISMISSED_MARKER, IDLE_ATTACHMENT, INFO_PERIOD_WORKING_DAYS, INFO_REQUEST_ATTACHMENT,
    REFUSAL_ATTACHMENT, UPHELD_MARKER,
};
mod email;
mod erip;
mod error;
mod faults;
pub mod gossuok;
mod idempotency;
mod idnumber;
mod msisdn;
mod mvd;
pub mod openapi;
mod operators;
pub mod retention;
pub use retention::Retention;
mod server;
pub mod tls;

/// One of the simulated external systems.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum SimKind {
    /// The population registry of the Ministry of Internal Affairs.
    Mvd,
    /// Mobile operator A1.
    A1,
    /// Mobile operator MTS.
    Mts,
    /// Mobile operator life:).
    Life,
    /// The ERIP payment system (invoices by account number, signed payment notifications).
    Erip,
    /// The HTTP back-offices of the authorities (one server, an authority per path prefix).
    #[value(name = "backoffice")]
    BackOffice,
    /// The portal's mail relay: an SMTP sink with an HTTP inbox.
    Email,
    /// GosSUOK, the state PKI: CA certificates, CRLs, certificate status, persons' key tokens.
    Gossuok,
}

impl SimKind {
    /// Every simulator, in start order.
    pub const ALL: [SimKind; 8] = [
        SimKind::Mvd,
        SimKind::A1,
        SimKind::Mts,
        SimKind::Life,
        SimKind::Erip,
        SimKind::BackOffice,
        SimKind::Email,
        SimKind::Gossuok,
    ];

    /// The lower-case name used on the command line, in URLs and in logs (`mvd`, `a1`, ...).
    pub fn name(self) -> &'static str {
        match self {
            SimKind::Mvd => "mvd",
            SimKind::A1 => "a1",
            SimKind::Mts => "mts",
            SimKind::Life => "life",
            SimKind::Erip => "erip",
            SimKind::BackOffice => "backoffice",
            SimKind::Email => "email",
            SimKind::Gossuok => "gossuok",
        }
    }

    /// Whether this simulator is a mobile operator.
    pub fn is_operator(self) -> bool {
        matches!(self, SimKind::A1 | SimKind::Mts | SimKind::Life)
    }
}

impl fmt::Display for SimKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error of parsing a [`SimKind`] from a string that names no simulator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown simulator {0:?}; expected one of mvd, a1, mts, life, erip, backoffice, email, gossuok"
)]
pub struct UnknownSimKind(pub String);

impl FromStr for SimKind {
    type Err = UnknownSimKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase();
        SimKind::ALL
            .into_iter()
            .find(|kind| kind.name() == wanted)
            .ok_or_else(|| UnknownSimKind(s.to_owned()))
    }
}

/// The TCP port of each simulator; 0 asks the OS for any free port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// The MVD population registry (default 8101).
    pub mvd: u16,
    /// Operator A1 (default 8111).
    pub a1: u16,
    /// Operator MTS (default 8112).
    pub mts: u16,
    /// Operator life:) (default 8113).
    pub life: u16,
    /// The ERIP payment system (default 8121).
    pub erip: u16,
    /// The authorities' HTTP back-offices (default 8131).
    pub backoffice: u16,
    /// The e-mail simulator's HTTP inbox (default 8151).
    pub email: u16,
    /// The e-mail simulator's SMTP sink (default 2525).
    pub email_smtp: u16,
    /// GosSUOK, the state PKI (default 8141).
    pub gossuok: u16,
    /// Operator A1's SMS centre, SMPP (default 2775).
    pub a1_smpp: u16,
    /// Operator MTS's SMS centre, SMPP (default 2776).
    pub mts_smpp: u16,
    /// Operator life:)'s SMS centre, SMPP (default 2777).
    pub life_smpp: u16,
}

impl Ports {
    /// Every port 0: each simulator gets a free port from the OS (for tests).
    pub const ANY: Ports = Ports {
        mvd: 0,
        a1: 0,
        mts: 0,
        life: 0,
        erip: 0,
        backoffice: 0,
        email: 0,
        email_smtp: 0,
        gossuok: 0,
        a1_smpp: 0,
        mts_smpp: 0,
        life_smpp: 0,
    };

    /// The (HTTP) port of one simulator.
    pub fn get(&self, kind: SimKind) -> u16 {
        match kind {
            SimKind::Mvd => self.mvd,
            SimKind::A1 => self.a1,
            SimKind::Mts => self.mts,
            SimKind::Life => self.life,
            SimKind::Erip => self.erip,
            SimKind::BackOffice => self.backoffice,
            SimKind::Email => self.email,
            SimKind::Gossuok => self.gossuok,
        }
    }

    /// The SMPP port of an operator's SMS centre; `None` for a simulator that is no operator.
    pub fn smpp(&self, kind: SimKind) -> Option<u16> {
        match kind {
            SimKind::A1 => Some(self.a1_smpp),
            SimKind::Mts => Some(self.mts_smpp),
            SimKind::Life => Some(self.life_smpp),
            _ => None,
        }
    }
}

impl Default for Ports {
    fn default() -> Self {
        Ports {
            mvd: 8101,
            a1: 8111,
            mts: 8112,
            life: 8113,
            erip: 8121,
            backoffice: 8131,
            email: 8151,
            email_smtp: 2525,
            gossuok: 8141,
            a1_smpp: 2775,
            mts_smpp: 2776,
            life_smpp: 2777,
        }
    }
}

/// The ERIP notification secret when none is given: fine for one machine, never for a real one.
pub const DEFAULT_ERIP_SECRET: &str = "erip-dev-secret";

/// The back-offices' secret when none is given: fine for one machine, never for a real one.
pub const DEFAULT_BACKOFFICE_SECRET: &str = "backoffice-dev-secret";

/// Operator A1's delivery-report secret when none is given: fine for one machine, never for a
/// real one.
pub const DEFAULT_A1_SECRET: &str = "a1-dev-secret";

/// Operator MTS's delivery-report secret when none is given: fine for one machine only.
pub const DEFAULT_MTS_SECRET: &str = "mts-dev-secret";

/// Operator life:)'s delivery-report secret when none is given: fine for one machine only.
pub const DEFAULT_LIFE_SECRET: &str = "life-dev-secret";

/// The secret each operator signs its delivery reports with (HMAC-SHA256 over the body, header
/// `X-Sms-Signature`). One per operator, so a leaked key forges one operator's reports only;
/// the hub holds the same three.
#[derive(Clone, PartialEq, Eq)]
pub struct OperatorSecrets {
    /// Operator A1's.
    pub a1: String,
    /// Operator MTS's.
    pub mts: String,
    /// Operator life:)'s.
    pub life: String,
}

impl OperatorSecrets {
    /// The secret of an operator; `None` for a simulator that is no operator.
    pub fn get(&self, kind: SimKind) -> Option<&str> {
        match kind {
            SimKind::A1 => Some(&self.a1),
            SimKind::Mts => Some(&self.mts),
            SimKind::Life => Some(&self.life),
            _ => None,
        }
    }
}

impl fmt::Debug for OperatorSecrets {
    /// Leaves the secrets out: whoever holds one can forge that operator's reports.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OperatorSecrets(<redacted>)")
    }
}

impl Default for OperatorSecrets {
    /// [`DEFAULT_A1_SECRET`], [`DEFAULT_MTS_SECRET`], [`DEFAULT_LIFE_SECRET`].
    fn default() -> Self {
        OperatorSecrets {
            a1: DEFAULT_A1_SECRET.to_owned(),
            mts: DEFAULT_MTS_SECRET.to_owned(),
            life: DEFAULT_LIFE_SECRET.to_owned(),
        }
    }
}

/// The `system_id` the SMS centres take binds of when none is given.
pub const DEFAULT_SMPP_SYSTEM_ID: &str = "hub";

/// Operator A1's SMPP password when none is given: fine for one machine, never for a real one.
pub const DEFAULT_A1_SMPP_PASSWORD: &str = "a1-dev";

/// Operator MTS's SMPP password when none is given: fine for one machine only.
pub const DEFAULT_MTS_SMPP_PASSWORD: &str = "mts-dev";

/// Operator life:)'s SMPP password when none is given: fine for one machine only.
pub const DEFAULT_LIFE_SMPP_PASSWORD: &str = "life-dev";

/// Who may bind to the operators' SMS centres: one `system_id` (1 to 15 ASCII characters) and a
/// password per operator (1 to 8, SMPP 3.4's limit).
#[derive(Clone, PartialEq, Eq)]
pub struct SmppAccounts {
    /// The `system_id` every SMS centre takes.
    pub system_id: String,
    /// Operator A1's password.
    pub a1_password: String,
    /// Operator MTS's password.
    pub mts_password: String,
    /// Operator life:)'s password.
    pub life_password: String,
}

impl SmppAccounts {
    /// The password of an operator's SMS centre; `None` for a simulator that is no operator.
    pub fn password(&self, kind: SimKind) -> Option<&str> {
        match kind {
            SimKind::A1 => Some(&self.a1_password),
            SimKind::Mts => Some(&self.mts_password),
            SimKind::Life => Some(&self.life_password),
            _ => None,
        }
    }
}

impl fmt::Debug for SmppAccounts {
    /// Leaves the passwords out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmppAccounts")
            .field("system_id", &self.system_id)
            .field("passwords", &"<redacted>")
            .finish()
    }
}

impl Default for SmppAccounts {
    /// [`DEFAULT_SMPP_SYSTEM_ID`] and the development passwords.
    fn default() -> Self {
        SmppAccounts {
            system_id: DEFAULT_SMPP_SYSTEM_ID.to_owned(),
            a1_password: DEFAULT_A1_SMPP_PASSWORD.to_owned(),
            mts_password: DEFAULT_MTS_SMPP_PASSWORD.to_owned(),
            life_password: DEFAULT_LIFE_SMPP_PASSWORD.to_owned(),
        }
    }
}

/// How the simulated HTTP back-offices behave (the same for every authority they serve).
#[derive(Clone, PartialEq, Eq)]
pub struct BackOfficeSimConfig {
    /// The secret both directions are signed with (HMAC-SHA256 over the body): the hub's calls
    /// and the back-offices' callbacks. The hub needs the same one; it must not be empty.
    pub secret: String,
    /// How long after taking an application up a back-office decides it.
    pub decide_after: Duration,
    /// How long after receiving a complaint a back-office decides it.
    pub complaint_decide_after: Duration,
}

impl fmt::Debug for BackOfficeSimConfig {
    /// Leaves the secret out: whoever holds it can forge decisions.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackOfficeSimConfig")
            .field("secret", &"<redacted>")
            .field("decide_after", &self.decide_after)
            .field("complaint_decide_after", &self.complaint_decide_after)
            .finish()
    }
}

impl Default for BackOfficeSimConfig {
    /// Secret [`DEFAULT_BACKOFFICE_SECRET`], decisions and complaint decisions after 2 s.
    fn default() -> Self {
        BackOfficeSimConfig {
            secret: DEFAULT_BACKOFFICE_SECRET.to_owned(),
            decide_after: Duration::from_secs(2),
            complaint_decide_after: Duration::from_secs(2),
        }
    }
}

/// How the simulated GosSUOK behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GossuokSimConfig {
    /// How long each CRL and OCSP answer is valid: its nextUpdate is its thisUpdate (the
    /// moment it is fetched) plus this. At most 365 days.
    pub crl_validity: Duration,
    /// The base URL the certificates name for the CRLs and the OCSP responder (their CRL
    /// distribution points and authorityInfoAccess), as the hub reaches the simulator; `None`
    /// takes the simulator's own (`http://127.0.0.1:<port>/`, https with TLS). For compose,
    /// where the hub reaches it as `http://simulators:8141/`.
    pub public_url: Option<Url>,
}

impl Default for GossuokSimConfig {
    /// CRLs and OCSP answers valid for 10 minutes; the simulator's own URL in certificates.
    fn default() -> Self {
        GossuokSimConfig {
            crl_validity: Duration::from_secs(600),
            public_url: None,
        }
    }
}

/// What to start and how.
#[derive(Clone, PartialEq, Eq)]
pub struct SimConfig {
    /// The address every simulator listens on.
    pub bind: IpAddr,
    /// The seed of the MVD population and of GosSUOK's CA (the same seed gives the same persons
    /// and the same CA).
    pub seed: u64,
    /// How many persons the MVD registry holds.
    pub population: usize,
    /// Start only these simulators; `None` starts every one.
    pub only: Option<Vec<SimKind>>,
    /// The port of each simulator.
    pub ports: Ports,
    /// The secret ERIP signs its notifications with (HMAC-SHA256 over the body); the hub
    /// verifies them with the same one.
    pub erip_secret: String,
    /// The secrets the operators sign their delivery reports with; the hub verifies each
    /// operator's with the same one.
    pub operator_secrets: OperatorSecrets,
    /// Who may bind to the operators' SMS centres (SMPP).
    pub smpp: SmppAccounts,
    /// The HTTP back-offices.
    pub backoffice: BackOfficeSimConfig,
    /// GosSUOK.
    pub gossuok: GossuokSimConfig,
    /// HTTPS for every HTTP simulator and TLS for the SMS centres' SMPP (the SMTP sink stays
    /// plain); `None` serves plain HTTP and SMPP.
    pub tls: Option<tls::SimTls>,
    /// How many records and idempotency keys each store keeps, and for how long.
    pub retention: Retention,
}

impl fmt::Debug for SimConfig {
    /// Leaves the ERIP secret out: whoever holds it can forge payment notifications.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimConfig")
            .field("bind", &self.bind)
            .field("seed", &self.seed)
            .field("population", &self.population)
            .field("only", &self.only)
            .field("ports", &self.ports)
            .field("erip_secret", &"<redacted>")
            .field("operator_secrets", &self.operator_secrets)
            .field("smpp", &self.smpp)
            .field("backoffice", &self.backoffice)
            .field("gossuok", &self.gossuok)
            .field("tls", &self.tls)
            .field("retention", &self.retention)
            .finish()
    }
}

impl Default for SimConfig {
    /// 127.0.0.1, seed 42, 5000 persons, every simulator on its default port, ERIP secret
    /// [`DEFAULT_ERIP_SECRET`], the operators' development secrets
    /// ([`OperatorSecrets::default`]), the back-offices' defaults ([`BackOfficeSimConfig::default`]),
    /// GosSUOK's ([`GossuokSimConfig::default`]), the default [`Retention`].
    fn default() -> Self {
        SimConfig {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            seed: 42,
            population: 5000,
            only: None,
            ports: Ports::default(),
            erip_secret: DEFAULT_ERIP_SECRET.to_owned(),
            operator_secrets: OperatorSecrets::default(),
            smpp: SmppAccounts::default(),
            backoffice: BackOfficeSimConfig::default(),
            gossuok: GossuokSimConfig::default(),
            tls: None,
            retention: Retention::default(),
        }
    }
}

impl SimConfig {
    /// The defaults, but every simulator on a free port chosen by the OS (for tests).
    pub fn ephemeral() -> Self {
        SimConfig {
            ports: Ports::ANY,
            ..SimConfig::default()
        }
    }

    /// The simulators this configuration starts, in [`SimKind::ALL`] order, each once.
    pub fn kinds(&self) -> Vec<SimKind> {
        match &self.only {
            None => SimKind::ALL.to_vec(),
            Some(only) => SimKind::ALL
                .into_iter()
                .filter(|kind| only.contains(kind))
                .collect(),
        }
    }
}

/// A simulator could not listen on its address (typically: the port is taken).
///
/// Its message names the simulator and the address and says how to choose another port; the
/// binary exits with code 69 on it.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot listen on {addr} for the {kind} simulator: {io}; choose another port with \
     {option} <port>, or {option} 0 for any free port"
)]
pub struct BindError {
    /// The simulator that could not start.
    pub kind: SimKind,
    /// The address it tried to listen on.
    pub addr: SocketAddr,
    /// What the OS said.
    pub io: std::io::Error,
    /// The command-line option that sets this port (`--a1-port`; `--email-smtp-port` for the
    /// e-mail simulator's second listener).
    pub option: String,
}

/// Simulators started by [`start`]: their base URLs (ending in `/`) and their tasks.
#[derive(Debug)]
pub struct RunningSims {
    /// The MVD registry's base URL, if started.
    pub mvd: Option<Url>,
    /// Operator A1's base URL, if started.
    pub a1: Option<Url>,
    /// Operator MTS's base URL, if started.
    pub mts: Option<Url>,
    /// Operator life:)'s base URL, if started.
    pub life: Option<Url>,
    /// The ERIP payment system's base URL, if started.
    pub erip: Option<Url>,
    /// The HTTP back-offices' server URL, if started; an authority's base URL is under it
    /// ([`RunningSims::backoffice_url`]).
    pub backoffice: Option<Url>,
    /// The e-mail simulator's inbox (HTTP) base URL, if started; its SMTP sink is at
    /// [`RunningSims::email_smtp_url`].
    pub email: Option<Url>,
    email_smtp: Option<Url>,
    /// GosSUOK's base URL, if started.
    pub gossuok: Option<Url>,
    /// The operators' SMS centres (SMPP), by operator.
    smpp: Vec<(SimKind, SocketAddr)>,
    tasks: TaskTracker,
}

impl RunningSims {
    /// The base URL of a started simulator (any kind, the MVD, ERIP and the back-offices'
    /// server included), or `None`.
    pub fn operator_url(&self, kind: SimKind) -> Option<&Url> {
        match kind {
            SimKind::Mvd => self.mvd.as_ref(),
            SimKind::A1 => self.a1.as_ref(),
            SimKind::Mts => self.mts.as_ref(),
            SimKind::Life => self.life.as_ref(),
            SimKind::Erip => self.erip.as_ref(),
            SimKind::BackOffice => self.backoffice.as_ref(),
            SimKind::Email => self.email.as_ref(),
            SimKind::Gossuok => self.gossuok.as_ref(),
        }
    }

    /// The address of an operator's SMS centre (SMPP), if the operator was started.
    pub fn smpp_addr(&self, kind: SimKind) -> Option<SocketAddr> {
        self.smpp
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, addr)| *addr)
    }

    /// The e-mail simulator's SMTP sink (`smtp://127.0.0.1:2525`), if it was started.
    pub fn email_smtp_url(&self) -> Option<Url> {
        self.email_smtp.clone()
    }

    /// The base URL of one authority's HTTP back-office (`http://127.0.0.1:8131/tax-ministry/`),
    /// if the back-offices were started. Any id of `[a-z0-9-]` (but `sim`) is served.
    pub fn backoffice_url(&self, authority: &str) -> Option<Url> {
        self.backoffice
            .as_ref()
            .and_then(|server| server.join(&format!("{authority}/")).ok())
    }

    /// Records the base URL of a started simulator.
    fn set(&mut self, kind: SimKind, url: Url) {
        let slot = match kind {
            SimKind::Mvd => &mut self.mvd,
            SimKind::A1 => &mut self.a1,
            SimKind::Mts => &mut self.mts,
            SimKind::Life => &mut self.life,
            SimKind::Erip => &mut self.erip,
            SimKind::BackOffice => &mut self.backoffice,
            SimKind::Email => &mut self.email,
            SimKind::Gossuok => &mut self.gossuok,
        };
        *slot = Some(url);
    }

    /// Waits until every server, delivery-report, notification and callback task has finished. They finish once the
    /// `shutdown` token given to [`start`] is cancelled; before that this waits forever.
    pub async fn stopped(self) {
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// Starts the configured simulators and returns once every one is listening.
///
/// Every listener is bound before any serves, so a taken port fails the whole start with a
/// [`BindError`] (inside the `anyhow::Error`) and nothing is left running. The servers, the
/// operators' delivery reports and ERIP's notifications and expiry clock stop when `shutdown` is
/// cancelled; so do the back-offices' timers and callbacks. [`RunningSims::stopped`] waits for
/// that.
pub async fn start(config: SimConfig, shutdown: CancellationToken) -> anyhow::Result<RunningSims> {
    let kinds = config.kinds();
    check(&config, &kinds)?;
    let tls = match &config.tls {
        Some(tls) => Some(tls.server_config()?),
        None => None,
    };
    let (listeners, mut email_smtp) = bind(&config, kinds).await?;
    let smpp_listeners = bind_smpp(&config, &listeners).await?;
    let mut smpp = Vec::new();
    for (kind, listener) in &smpp_listeners {
        let local = listener
            .local_addr()
            .with_context(|| format!("reading the SMPP address of the {kind} simulator"))?;
        smpp.push((*kind, loopback(local)));
        tracing::info!(simulator = %kind, addr = %loopback(local), "SMS centre (SMPP) listening");
    }
    tls::install_default_provider();
    let tasks = TaskTracker::new();
    let shared = Shared {
        phones: Arc::new(operators::Phones::new(config.retention.records_limit())),
        client: reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(5))
            .build()
            .context(
                "building the HTTP client for delivery reports, notifications and callbacks",
            )?,
        tasks: tasks.clone(),
        smpp_listeners: std::sync::Mutex::new(smpp_listeners.into_iter().collect()),
        smpp_tls: tls.clone(),
    };
    let mut running = RunningSims {
        mvd: None,
        a1: None,
        mts: None,
        life: None,
        erip: None,
        backoffice: None,
        email: None,
        email_smtp: None,
        gossuok: None,
        smpp,
        tasks: tasks.clone(),
    };
    let key_tokens = gossuok_tokens(&config, &listeners, tls.is_some(), &shutdown)?;
    for (kind, listener) in listeners {
        let local = listener
            .local_addr()
            .with_context(|| format!("reading the address of the {kind} simulator"))?;
        let url = base_url(local, tls.is_some())?;
        let ctx = server::SimContext::new(kind, shutdown.clone()).with_retention(config.retention);
        let router = if let (SimKind::Gossuok, Some(tokens)) = (kind, &key_tokens) {
            gossuok::router(tokens)
        } else if kind == SimKind::Email {
            let smtp = email_smtp
                .take()
                .context("the e-mail simulator's SMTP listener is missing")?;
            running.email_smtp = Some(smtp_url(&smtp)?);
            email::start(ctx, smtp, &tasks)
        } else {
            router(kind, ctx, &config, &shared, key_tokens.as_ref())
        };
        let listener = match &tls {
            None => server::Listening::Plain(listener),
            Some(config) => server::Listening::Tls(
                tls::TlsListener::new(listener, config.clone(), shutdown.clone())
                    .with_context(|| format!("starting the {kind} simulator's TLS listener"))?,
            ),
        };
        tasks.spawn(server::serve(kind, listener, router, shutdown.clone()));
        tracing::info!(simulator = %kind, %url, "simulator listening");
        running.set(kind, url);
    }
    Ok(running)
}

/// Refuses a configuration no simulator could run with.
fn check(config: &SimConfig, kinds: &[SimKind]) -> anyhow::Result<()> {
    if kinds.is_empty() {
        anyhow::bail!("no simulator selected: `only` is empty");
    }
    if kinds.contains(&SimKind::BackOffice) && config.backoffice.secret.is_empty() {
        // An empty key signs nothing anyone could not forge.
        anyhow::bail!("the back-office secret is empty; give one with --backoffice-secret");
    }
    if let Some(kind) = kinds
        .iter()
        .find(|k| config.operator_secrets.get(**k).is_some_and(str::is_empty))
    {
        // An empty key signs nothing anyone could not forge.
        anyhow::bail!(
            "the {kind} operator's report secret is empty; give one with --{kind}-secret"
        );
    }
    let system_id = &config.smpp.system_id;
    if system_id.is_empty() || system_id.len() > 15 || !system_id.is_ascii() {
        anyhow::bail!(
            "the SMPP system_id must be 1 to 15 ASCII characters; give one with --smpp-system-id"
        );
    }
    if let Some(kind) = kinds.iter().find(|k| {
        config
            .smpp
            .password(**k)
            .is_some_and(|p| p.is_empty() || p.len() > 8 || !p.is_ascii())
    }) {
        anyhow::bail!(
            "the {kind} SMS centre's password must be 1 to 8 ASCII characters (SMPP 3.4); give one with --{kind}-smpp-password"
        );
    }
    if kinds.contains(&SimKind::Gossuok) && config.gossuok.crl_validity > gossuok::MAX_CRL_VALIDITY
    {
        anyhow::bail!(
            "GosSUOK's CRL validity is over 365 days; give less with --gossuok-crl-validity-secs"
        );
    }
    if let Some(url) = &config.gossuok.public_url
        && (!matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base())
    {
        // The hub fetches CRLs and asks OCSP over HTTP(S) only.
        anyhow::bail!("GosSUOK's public URL {url} is not an http or https URL");
    }
    Ok(())
}

/// Binds every simulator's listener (and the e-mail simulator's SMTP sink), before any serves.
async fn bind(
    config: &SimConfig,
    kinds: Vec<SimKind>,
) -> anyhow::Result<(Vec<(SimKind, TcpListener)>, Option<TcpListener>)> {
    let listen = |kind: SimKind, port: u16, option: String| async move {
        let addr = SocketAddr::new(config.bind, port);
        TcpListener::bind(addr).await.map_err(|io| BindError {
            kind,
            addr,
            io,
            option,
        })
    };
    let mut listeners = Vec::with_capacity(kinds.len());
    for kind in kinds {
        let listener = listen(kind, config.ports.get(kind), format!("--{kind}-port")).await?;
        listeners.push((kind, listener));
    }
    // The e-mail simulator's second listener, bound with the others.
    let mut email_smtp = None;
    if listeners.iter().any(|(kind, _)| *kind == SimKind::Email) {
        let option = "--email-smtp-port".to_owned();
        email_smtp = Some(listen(SimKind::Email, config.ports.email_smtp, option).await?);
    }
    Ok((listeners, email_smtp))
}

/// Binds the SMS centre (SMPP) of every operator among `listeners`.
async fn bind_smpp(
    config: &SimConfig,
    listeners: &[(SimKind, TcpListener)],
) -> anyhow::Result<Vec<(SimKind, TcpListener)>> {
    let mut smpp = Vec::new();
    for (kind, _) in listeners {
        let Some(port) = config.ports.smpp(*kind) else {
            continue;
        };
        let addr = SocketAddr::new(config.bind, port);
        let listener = TcpListener::bind(addr).await.map_err(|io| BindError {
            kind: *kind,
            addr,
            io,
            option: format!("--{kind}-smpp-port"),
        })?;
        smpp.push((*kind, listener));
    }
    Ok(smpp)
}

/// `smtp://<host>:<port>` of the e-mail simulator's SMTP sink.
fn smtp_url(smtp: &TcpListener) -> anyhow::Result<Url> {
    let local = smtp
        .local_addr()
        .context("reading the address of the e-mail simulator's SMTP sink")?;
    let http = base_url(local, false)?;
    let url = Url::parse(&format!(
        "smtp://{}:{}",
        http.host_str().unwrap_or("127.0.0.1"),
        local.port()
    ))
    .context("building the SMTP URL of the e-mail simulator")?;
    tracing::info!(simulator = %SimKind::Email, url = %url, "SMTP sink listening");
    Ok(url)
}

/// What the simulators share: the phones the operators deliver to, the HTTP client of their
/// reports, notifications and callbacks, the tracker of those tasks, and the SMS centres'
/// listeners not yet served (each operator's router takes its own).
struct Shared {
    phones: Arc<operators::Phones>,
    client: reqwest::Client,
    tasks: TaskTracker,
    smpp_listeners: std::sync::Mutex<std::collections::HashMap<SimKind, TcpListener>>,
    /// The TLS the SMS centres serve SMPP over, as the HTTP simulators serve HTTPS; `None` for
    /// plain TCP.
    smpp_tls: Option<Arc<rustls::ServerConfig>>,
}

/// GosSUOK's CA and key tokens when it is started in this process (made before any router, so
/// that the back-offices sign with them in-process): its certificates name where the hub finds
/// their CRLs and the OCSP responder, its public URL or its own.
fn gossuok_tokens(
    config: &SimConfig,
    listeners: &[(SimKind, TcpListener)],
    https: bool,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<gossuok::KeyTokens>> {
    let Some((_, listener)) = listeners.iter().find(|(k, _)| *k == SimKind::Gossuok) else {
        return Ok(None);
    };
    let local = listener
        .local_addr()
        .context("reading the address of the gossuok simulator")?;
    let url = base_url(local, https)?;
    let today = chrono::Utc::now().date_naive();
    let ctx = server::SimContext::new(SimKind::Gossuok, shutdown.clone())
        .with_retention(config.retention);
    Ok(Some(gossuok::key_tokens(
        ctx,
        gossuok::Deps {
            ca: gossuok::ca::TestCa::new(config.seed)
                .with_publication(config.gossuok.public_url.as_ref().unwrap_or(&url)),
            population: mvd::population::generate(config.seed, config.population, today),
            crl_validity: config.gossuok.crl_validity,
        },
    )))
}

/// The HTTP routes of simulator `kind` (every one but the e-mail simulator, which starts its
/// SMTP sink too, and GosSUOK, served from its `key_tokens`).
fn router(
    kind: SimKind,
    ctx: server::SimContext,
    config: &SimConfig,
    shared: &Shared,
    key_tokens: Option<&gossuok::KeyTokens>,
) -> axum::Router {
    let today = chrono::Utc::now().date_naive();
    match (kind, msisdn::Operator::from_kind(kind)) {
        (SimKind::BackOffice, _) => backoffice::router(
            ctx,
            backoffice::Deps {
                client: shared.client.clone(),
                tasks: shared.tasks.clone(),
                secret: config.backoffice.secret.clone().into_bytes(),
                pace: clerk::Pace {
                    decide_after: config.backoffice.decide_after,
                    complaint_decide_after: config.backoffice.complaint_decide_after,
                },
                // The officials' certificates and keys: GosSUOK's, in this process.
                key_tokens: key_tokens.cloned(),
            },
        ),
        (SimKind::Erip, _) => erip::router(
            ctx,
            erip::Deps {
                client: shared.client.clone(),
                tasks: shared.tasks.clone(),
                secret: config.erip_secret.clone().into_bytes(),
            },
        ),
        (_, Some(operator)) => {
            let smsc = Arc::new(operators::smsc::Smsc::new(
                ctx.clone(),
                operator,
                operators::smsc::Account {
                    system_id: config.smpp.system_id.clone(),
                    password: config.smpp.password(kind).unwrap_or_default().to_owned(),
                },
                shared.phones.clone(),
                shared.tasks.clone(),
            ));
            let listener = shared
                .smpp_listeners
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&kind);
            if let Some(listener) = listener {
                shared.tasks.spawn(operators::smsc::serve(
                    smsc.clone(),
                    listener,
                    shared.smpp_tls.clone(),
                ));
            }
            operators::router(
                ctx,
                operator,
                operators::Deps {
                    phones: shared.phones.clone(),
                    client: shared.client.clone(),
                    tasks: shared.tasks.clone(),
                    secret: config
                        .operator_secrets
                        .get(kind)
                        .unwrap_or_default()
                        .as_bytes()
                        .to_vec(),
                    smsc,
                },
            )
        }
        (_, None) => {
            let population = mvd::population::generate(config.seed, config.population, today);
            mvd::router(ctx, population)
        }
    }
}

/// `addr` with an unspecified IP (0.0.0.0, ::) given as the loopback one.
fn loopback(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

/// `http://<addr>/`; an unspecified bind address (0.0.0.0, ::) is given as the loopback one, the
/// address a local client can actually connect to.
fn base_url(local: SocketAddr, https: bool) -> anyhow::Result<Url> {
    let ip = match local.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let addr = SocketAddr::new(ip, local.port());
    let scheme = if https { "https" } else { "http" };
    Url::parse(&format!("{scheme}://{addr}/")).with_context(|| format!("building a URL for {addr}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_and_print_lower_case() {
        for kind in SimKind::ALL {
            assert_eq!(kind.to_string().parse::<SimKind>(), Ok(kind));
        }
        assert_eq!("MTS".parse::<SimKind>(), Ok(SimKind::Mts));
        assert!("beltelecom".parse::<SimKind>().is_err());
    }

    #[test]
    fn only_keeps_the_canonical_order_once() {
        let config = SimConfig {
            only: Some(vec![SimKind::Life, SimKind::Mvd, SimKind::Life]),
            ..SimConfig::ephemeral()
        };
        assert_eq!(config.kinds(), vec![SimKind::Mvd, SimKind::Life]);
    }

    #[test]
    fn base_urls_end_with_a_slash_and_use_loopback_for_any() {
        let url = base_url("0.0.0.0:8101".parse().expect("an address"), false).expect("a URL");
        assert_eq!(url.as_str(), "http://127.0.0.1:8101/");
        let url = base_url("0.0.0.0:8101".parse().expect("an address"), true).expect("a URL");
        assert_eq!(url.as_str(), "https://127.0.0.1:8101/");
        let url = base_url("[::]:8101".parse().expect("an address"), false).expect("a URL");
        assert_eq!(url.as_str(), "http://[::1]:8101/");
    }
}
