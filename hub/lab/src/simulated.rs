//! Every external system simulated on free ports, and the portal's integration settings pointed
//! at them: the one place the lab's [`Stage`](crate::stage::Stage) and the end-to-end tests'
//! `Portal` start the simulators from, so both run the hub against the same world.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use hub_portal::config::IntegrationConfig;
use hub_portal::procedures::catalogue::{AuthorityChannel, Catalogue};
use simulators::{RunningSims, SimConfig, SimKind};
use tokio_util::sync::CancellationToken;

/// The simulators, running in this process, and the hub's settings for them.
#[derive(Debug)]
pub struct Simulated {
    /// The running simulators (their URLs).
    pub sims: RunningSims,
    /// The portal's integration settings, every system at its simulator, the callbacks and the
    /// health and metrics each at a free local port, GosSUOK's root as the one trusted EDS root.
    pub integrations: IntegrationConfig,
    /// Stops the simulators (and whatever else was started under it, such as the authorities
    /// on the bus).
    pub token: CancellationToken,
}

impl Simulated {
    /// Starts the simulators of `config` and points the portal's settings at them.
    ///
    /// The settings are the lab's: a 5 s HTTP timeout, phone codes valid for 2 minutes, and
    /// no seal key (the development key, as `hub run` without `HUB_SEAL_KEY` uses); a test that
    /// wants its own key sets [`random_seal_key`].
    ///
    /// The simulators keep what `config.retention` says, or what `SIM_KEEP_RECORDS`,
    /// `SIM_KEEP_KEYS` and `SIM_KEEP_FOR` say when set (so `SIM_KEEP_RECORDS=5000 hub bench`
    /// bounds the bench's simulators).
    ///
    /// Errors: a retention variable is not a count or an age, a simulator does not start, or
    /// GosSUOK's root cannot be read.
    pub async fn start(config: SimConfig) -> anyhow::Result<Simulated> {
        hub_runtime::tls::install_default_provider();
        Self::start_with_client(config, &reqwest::Client::new()).await
    }

    /// [`Self::start`], reading GosSUOK's root with `http`: over HTTPS, a client that trusts
    /// the simulators' CA and shows the client certificate they require.
    ///
    /// Errors: as [`Self::start`].
    pub async fn start_with_client(
        mut config: SimConfig,
        http: &reqwest::Client,
    ) -> anyhow::Result<Simulated> {
        config.retention = config
            .retention
            .with_env()
            .context("the simulators' retention")?;
        let token = CancellationToken::new();
        let erip_secret = config.erip_secret.clone();
        let backoffice_secret = config.backoffice.secret.clone();
        let operator_secrets = config.operator_secrets.clone();
        let smpp_accounts = config.smpp.clone();
        // The SMS centres speak TLS when the simulators do.
        let smpp_scheme = if config.tls.is_some() {
            "smpps"
        } else {
            "smpp"
        };
        let sims = simulators::start(config, token.clone()).await?;
        let url = |k: SimKind| sim_url(&sims, k);
        let callbacks = free_local_addr()?;
        let integrations = IntegrationConfig {
            mvd_url: url(SimKind::Mvd)?,
            sms_a1_url: url(SimKind::A1)?,
            sms_mts_url: url(SimKind::Mts)?,
            sms_life_url: url(SimKind::Life)?,
            // The operators sign their reports with these; the hub checks with the same.
            sms_a1_secret: operator_secrets.a1,
            sms_mts_secret: operator_secrets.mts,
            sms_life_secret: operator_secrets.life,
            sms_sender: "E-SERVICES".into(),
            http_timeout: Duration::from_secs(5),
            http_addr: callbacks,
            ops_addr: free_local_addr()?,
            callback_url: format!("http://{callbacks}/").parse()?,
            backoffice_callback_window: Duration::from_secs(5 * 60),
            seal_key: None,
            phone_code_ttl: Duration::from_secs(120),
            phone_code_attempts: 3,
            temp_password_ttl: Duration::from_secs(72 * 3600),
            session_ttl: Duration::from_secs(8 * 3600),
            erip_url: url(SimKind::Erip)?,
            erip_secret,
            payment_ttl: Duration::from_secs(3600),
            // Every simulated authority signs: the HTTP back-offices with their officials'
            // certificates from the GosSUOK simulator of this process, the queue authorities
            // when given one. An unsigned decision is refused, as in production.
            unsigned_decisions: hub_portal::procedures::saga::UnsignedDecisions::Refuse,
            authority_settings: {
                let mut settings =
                    backoffice_settings(&url(SimKind::BackOffice)?, &backoffice_secret)?;
                settings.extend(smsc_settings(&sims, &smpp_accounts, smpp_scheme));
                settings
            },
            smtp_url: sims
                .email_smtp_url()
                .context("the e-mail simulator did not start")?,
            email_from: "E-Services Portal <noreply@portal.example.by>".into(),
            portal_url: "http://127.0.0.1:8080/".parse()?,
            gossuok_url: url(SimKind::Gossuok)?,
            eds_trusted_root_files: Vec::new(),
            eds_trusted_roots: vec![gossuok_root(http, &url(SimKind::Gossuok)?).await?],
            // Shorter than production's 5 minutes (`HUB_OCSP_CACHE`): the demo's revoked
            // certificate is refused within its step, and the bench still reuses the
            // intermediate's and the officials' answers. The tests that revoke a certificate
            // and expect the very next check to see it turn the cache off.
            ocsp_cache: Duration::from_secs(10),
            portal_user: hub_portal::parties::DEFAULT_PORTAL_USER.into(),
            desks: Vec::new(),
            limits: Default::default(),
        };
        Ok(Simulated {
            sims,
            integrations,
            token,
        })
    }

    /// The base URL of one simulator.
    pub fn url(&self, kind: SimKind) -> anyhow::Result<url::Url> {
        sim_url(&self.sims, kind)
    }
}

fn sim_url(sims: &RunningSims, kind: SimKind) -> anyhow::Result<url::Url> {
    sims.operator_url(kind)
        .cloned()
        .with_context(|| format!("the {kind} simulator did not start"))
}

/// How the lab's hub reaches the simulated operators: over SMPP to their SMS centres (the
/// default of `hub demo`, `hub bench` and `hub chaos`, as real operators take application traffic)
/// or through their HTTP gateways. The operator lookup (which operator serves a number) is over
/// HTTP either way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum SmsProtocol {
    /// SMPP 3.4 to each operator's SMS centre.
    #[default]
    Smpp,
    /// Each operator's HTTP gateway (`POST /api/v1/messages`, JSON delivery reports).
    Http,
}

impl SmsProtocol {
    /// Its name in settings (`HUB_SMS_<OPERATOR>_PROTOCOL`) and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            SmsProtocol::Smpp => "smpp",
            SmsProtocol::Http => "http",
        }
    }
}

impl Simulated {
    /// Sends the hub's SMS over `protocol`: for SMPP, every operator whose SMS centre started
    /// gets `HUB_SMS_<OPERATOR>_PROTOCOL=smpp`; for HTTP nothing changes (the default).
    pub fn send_sms_over(&mut self, protocol: SmsProtocol) {
        if protocol != SmsProtocol::Smpp {
            return;
        }
        let settings = &mut self.integrations.authority_settings;
        for prefix in ["HUB_SMS_A1", "HUB_SMS_MTS", "HUB_SMS_LIFE"] {
            if settings.contains_key(&format!("{prefix}_SMPP_URL")) {
                settings.insert(format!("{prefix}_PROTOCOL"), "smpp".to_owned());
            }
        }
    }
}

/// Where the simulated SMS centres are and how to bind to them, as each operator's settings
/// (`HUB_SMS_<OPERATOR>_SMPP_URL` with `scheme`, `_SYSTEM_ID`, `_PASSWORD`); the protocol stays
/// the default (`http`) until [`Simulated::send_sms_over`] says SMPP, so a test sends over SMPP
/// only where it says `HUB_SMS_<OPERATOR>_PROTOCOL=smpp`.
fn smsc_settings(
    sims: &RunningSims,
    accounts: &simulators::SmppAccounts,
    scheme: &str,
) -> HashMap<String, String> {
    let mut settings = HashMap::new();
    for kind in [SimKind::A1, SimKind::Mts, SimKind::Life] {
        let (Some(addr), Some(password)) = (sims.smpp_addr(kind), accounts.password(kind)) else {
            continue;
        };
        let prefix = match kind {
            SimKind::A1 => "HUB_SMS_A1",
            SimKind::Mts => "HUB_SMS_MTS",
            _ => "HUB_SMS_LIFE",
        };
        settings.insert(format!("{prefix}_SMPP_URL"), format!("{scheme}://{addr}"));
        settings.insert(format!("{prefix}_SYSTEM_ID"), accounts.system_id.clone());
        settings.insert(format!("{prefix}_PASSWORD"), password.to_owned());
    }
    settings
}

/// A free port on the loopback interface, for a listener started soon after.
pub fn free_local_addr() -> std::io::Result<SocketAddr> {
    std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()
}

/// A fresh random seal key (`HUB_SEAL_KEY` form, `t1:<base64 of 32 bytes>`).
pub fn random_seal_key() -> String {
    format!(
        "t1:{}",
        base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
    )
}

/// The GosSUOK simulator's root certificate (DER): the EDS trust anchor.
///
/// Errors: the simulator does not answer, or answers with an error.
async fn gossuok_root(http: &reqwest::Client, gossuok: &url::Url) -> anyhow::Result<Vec<u8>> {
    let r = http.get(gossuok.join("ca/root.der")?).send().await?;
    anyhow::ensure!(r.status().is_success(), "GosSUOK root: {}", r.status());
    Ok(r.bytes().await?.to_vec())
}

/// The settings that point every HTTP authority of the catalogue at the back-office simulator
/// at `simulator`, signing with `secret`.
///
/// Errors: the embedded catalogue does not load, or an authority's id makes no URL.
fn backoffice_settings(
    simulator: &url::Url,
    secret: &str,
) -> anyhow::Result<HashMap<String, String>> {
    let catalogue = Catalogue::embedded()?;
    let mut settings = HashMap::new();
    for a in catalogue.authorities() {
        if let AuthorityChannel::Http {
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
