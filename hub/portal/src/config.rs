//! The portal's configuration: where the external systems are and how the business sagas
//! behave, read once at start from flags and the environment, with defaults that work against
//! the simulators on this machine.

use std::time::Duration;

use clap::Args;
use hub_runtime::config::{Problem, parse_duration};

use crate::procedures::catalogue::{AuthorityChannel, Catalogue};

/// Where the external systems are and how the business sagas behave. Separate from
/// [`HubConfig`](hub_runtime::config::HubConfig) because the messaging core does not need it.
#[derive(Clone, Args)]
pub struct IntegrationConfig {
    /// Base URL of the MVD population registry.
    #[arg(long, env = "HUB_MVD_URL", default_value = "http://127.0.0.1:8101/")]
    pub mvd_url: url::Url,

    /// Base URL of operator A1's SMS gateway.
    #[arg(long, env = "HUB_SMS_A1_URL", default_value = "http://127.0.0.1:8111/")]
    pub sms_a1_url: url::Url,

    /// Base URL of operator MTS's SMS gateway.
    #[arg(
        long,
        env = "HUB_SMS_MTS_URL",
        default_value = "http://127.0.0.1:8112/"
    )]
    pub sms_mts_url: url::Url,

    /// Base URL of operator life:)'s SMS gateway.
    #[arg(
        long,
        env = "HUB_SMS_LIFE_URL",
        default_value = "http://127.0.0.1:8113/"
    )]
    pub sms_life_url: url::Url,

    /// Operator A1's secret for the HMAC signature of its delivery reports.
    #[arg(
        long,
        env = "HUB_SMS_A1_SECRET",
        default_value = DEV_SMS_A1_SECRET,
        hide_env_values = true
    )]
    pub sms_a1_secret: String,

    /// Operator MTS's secret for the HMAC signature of its delivery reports.
    #[arg(
        long,
        env = "HUB_SMS_MTS_SECRET",
        default_value = DEV_SMS_MTS_SECRET,
        hide_env_values = true
    )]
    pub sms_mts_secret: String,

    /// Operator life:)'s secret for the HMAC signature of its delivery reports.
    #[arg(
        long,
        env = "HUB_SMS_LIFE_SECRET",
        default_value = DEV_SMS_LIFE_SECRET,
        hide_env_values = true
    )]
    pub sms_life_secret: String,

    /// Sender id shown on the hub's SMS.
    #[arg(long, env = "HUB_SMS_SENDER", default_value = "E-SERVICES")]
    pub sms_sender: String,

    /// Timeout of one call to an external system.
    #[arg(long, env = "HUB_HTTP_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub http_timeout: Duration,

    /// Base URL of ERIP's invoicing API.
    #[arg(long, env = "HUB_ERIP_URL", default_value = "http://127.0.0.1:8121/")]
    pub erip_url: url::Url,

    /// ERIP's shared secret for the HMAC signature of its notifications.
    #[arg(
        long,
        env = "HUB_ERIP_SECRET",
        default_value = DEV_ERIP_SECRET,
        hide_env_values = true
    )]
    pub erip_secret: String,

    /// How long an ERIP invoice may stay unpaid before the application ends.
    #[arg(long, env = "HUB_PAYMENT_TTL", default_value = "72h", value_parser = parse_duration)]
    pub payment_ttl: Duration,

    /// What becomes of an unsigned decision (`authority.decided.v1`): `refuse` (back to the
    /// authority, reason `unsigned`) or, in development only, `accept`.
    #[arg(
        long,
        env = "HUB_UNSIGNED_DECISIONS",
        default_value = "refuse",
        value_enum
    )]
    pub unsigned_decisions: crate::procedures::saga::UnsignedDecisions,

    /// Where the hub listens for the external systems' callbacks (and nothing else).
    #[arg(long, env = "HUB_HTTP_ADDR", default_value = "127.0.0.1:8090")]
    pub http_addr: std::net::SocketAddr,

    /// Where the hub serves its health and metrics (`/healthz`, `/readyz`, `/metrics`): an
    /// internal listener of its own, for the orchestrator and the monitoring only, never the
    /// callbacks' port that the external systems reach.
    #[arg(
        long = "ops-addr",
        env = "HUB_OPS_ADDR",
        default_value = "127.0.0.1:8092"
    )]
    pub ops_addr: std::net::SocketAddr,

    /// The callback base URL the external systems are given (how they reach `HUB_HTTP_ADDR`).
    #[arg(
        long,
        env = "HUB_CALLBACK_URL",
        default_value = "http://127.0.0.1:8090/"
    )]
    pub callback_url: url::Url,

    /// How far a back-office callback's `X-Authority-Timestamp` may be from the hub's clock,
    /// either way; a callback outside it is refused (401) as a replay or a clock to set right.
    #[arg(long, env = "HUB_BACKOFFICE_CALLBACK_WINDOW", default_value = "5m", value_parser = parse_duration)]
    pub backoffice_callback_window: Duration,

    /// Key that seals codes and passwords on their way to the SMS worker: 32 random bytes in
    /// base64, optionally prefixed by a key id (`k2:...`). Unset: a development key, announced
    /// at start (refused by `HUB_ENV=production`).
    #[arg(long, env = "HUB_SEAL_KEY", hide_env_values = true)]
    pub seal_key: Option<String>,

    /// How long a phone confirmation code is valid.
    #[arg(long, env = "HUB_PHONE_CODE_TTL", default_value = "10m", value_parser = parse_duration)]
    pub phone_code_ttl: Duration,

    /// Codes a desk may try before the application is rejected.
    #[arg(long, env = "HUB_PHONE_CODE_ATTEMPTS", default_value_t = 3)]
    pub phone_code_attempts: u32,

    /// How long a temporary password is valid.
    #[arg(long, env = "HUB_TEMP_PASSWORD_TTL", default_value = "72h", value_parser = parse_duration)]
    pub temp_password_ttl: Duration,

    /// How long a portal session lasts after the login that opened it (a fixed lifetime, not an
    /// idle one); it ends sooner by logout, a password change or recovery, or a block.
    #[arg(long, env = "HUB_SESSION_TTL", default_value = "8h", value_parser = parse_duration)]
    pub session_ttl: Duration,

    /// The portal's mail server, `smtp://host:port` (or `smtps://user:password@host`).
    #[arg(
        long,
        env = "HUB_SMTP_URL",
        default_value = "smtp://127.0.0.1:2525",
        hide_env_values = true
    )]
    pub smtp_url: url::Url,

    /// The sender of the portal's e-mails.
    #[arg(
        long,
        env = "HUB_EMAIL_FROM",
        default_value = "E-Services Portal <noreply@portal.example.by>"
    )]
    pub email_from: String,

    /// The portal's public address: activation links point at `<it>activate?token=...`.
    #[arg(long, env = "HUB_PORTAL_URL", default_value = "http://127.0.0.1:8080/")]
    pub portal_url: url::Url,

    /// GosSUOK, the state PKI: CRLs and certificate status.
    #[arg(
        long,
        env = "HUB_GOSSUOK_URL",
        default_value = "http://127.0.0.1:8141/"
    )]
    pub gossuok_url: url::Url,

    /// Files with the trusted root certificates of EDS chains (DER or PEM), comma separated:
    /// the real KUC/RUC roots in production. None: EDS proofs are refused as `untrusted_chain`
    /// (with a warning at start).
    #[arg(long, env = "HUB_EDS_TRUSTED_ROOTS", value_delimiter = ',')]
    pub eds_trusted_root_files: Vec<std::path::PathBuf>,

    /// Trusted roots given in code (the demo and the tests take the simulator's), DER.
    #[arg(skip)]
    pub eds_trusted_roots: Vec<Vec<u8>>,

    /// How long a verified OCSP answer about an EDS certificate is reused (never past its
    /// `nextUpdate`); `0` asks the CA's responder at every check. The trade-off: a certificate
    /// revoked meanwhile is refused at the latest when the kept answer ages out (RFC 5019
    /// section 6), as a cached CRL is used until its `nextUpdate`.
    #[arg(long, env = "HUB_OCSP_CACHE", default_value = "5m", value_parser = parse_cache_age)]
    pub ocsp_cache: Duration,

    /// The settings the catalogue's HTTP authorities name (`base_url_key`, `secret_key`, e.g.
    /// `HUB_AUTHORITY_TAX_MINISTRY_URL`). A key not given here is read from the environment;
    /// unset there too, the URL is the back-office simulator's
    /// (`http://127.0.0.1:8131/<authority>/`) and the secret its development one.
    #[arg(skip)]
    pub authority_settings: std::collections::HashMap<String, String>,

    /// The portal's broker user: the only party that may send cabinet, registration,
    /// application and complaint messages, and the one that hears their answers (in its queue
    /// `<ns>.portal`).
    #[arg(long, env = "HUB_PORTAL_USER", default_value = crate::parties::DEFAULT_PORTAL_USER)]
    pub portal_user: String,

    /// The issuance desks (comma separated ids): desk `<id>` connects as `desk-<id>`, may send
    /// only its own desk's commands, and hears its events in its queue `<ns>.desk.<id>`. A desk
    /// not named here is refused.
    #[arg(long, env = "HUB_DESKS", value_delimiter = ',')]
    pub desks: Vec<String>,

    /// Per-phone limits against brute force and SMS floods ([`crate::external::sms::worker::PhoneLimits`]).
    #[command(flatten)]
    pub limits: LimitsConfig,
}

/// Per-phone limits: SMS to one number, recovery codes to one number, wrong codes typed for one
/// number, each in a rolling window shared by every hub process (kept in PostgreSQL). A limit is
/// at least 1: a security limit is not switched off by a zero.
#[derive(Debug, Clone, Args)]
pub struct LimitsConfig {
    /// SMS of any kind sent to one number in `HUB_SMS_PER_PHONE_WINDOW`; more are not sent (the
    /// requester gets the usual "not sent" answer).
    #[arg(
        long = "sms-per-phone",
        env = "HUB_SMS_PER_PHONE",
        default_value_t = 10,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub sms_per_phone: u32,

    /// The window of `HUB_SMS_PER_PHONE`.
    #[arg(long = "sms-per-phone-window", env = "HUB_SMS_PER_PHONE_WINDOW", default_value = "1h", value_parser = parse_duration)]
    pub sms_window: Duration,

    /// Password recovery codes sent to one number in `HUB_RECOVERY_CODES_WINDOW`, whichever
    /// identifiers they were asked for.
    #[arg(
        long = "recovery-codes-per-phone",
        env = "HUB_RECOVERY_CODES_PER_PHONE",
        default_value_t = 3,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub recovery_codes_per_phone: u32,

    /// The window of `HUB_RECOVERY_CODES_PER_PHONE`.
    #[arg(long = "recovery-codes-window", env = "HUB_RECOVERY_CODES_WINDOW", default_value = "1h", value_parser = parse_duration)]
    pub recovery_codes_window: Duration,

    /// Shortest time between two recovery codes for one identifier.
    #[arg(long = "recovery-interval", env = "HUB_RECOVERY_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    pub recovery_interval: Duration,

    /// Wrong SMS codes (phone confirmation, password recovery) typed for one number in
    /// `HUB_WRONG_CODES_WINDOW`, over every application and account; then no further code is
    /// sent to it or checked until the window moves on.
    #[arg(
        long = "wrong-codes-per-phone",
        env = "HUB_WRONG_CODES_PER_PHONE",
        default_value_t = 10,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub wrong_codes_per_phone: u32,

    /// The window of `HUB_WRONG_CODES_PER_PHONE`.
    #[arg(long = "wrong-codes-window", env = "HUB_WRONG_CODES_WINDOW", default_value = "24h", value_parser = parse_duration)]
    pub wrong_codes_window: Duration,
}

impl Default for LimitsConfig {
    /// The defaults of the flags.
    fn default() -> Self {
        Self {
            sms_per_phone: 10,
            sms_window: Duration::from_secs(3600),
            recovery_codes_per_phone: 3,
            recovery_codes_window: Duration::from_secs(3600),
            recovery_interval: Duration::from_secs(60),
            wrong_codes_per_phone: 10,
            wrong_codes_window: Duration::from_secs(24 * 3600),
        }
    }
}

/// Operator A1's development secret (the SMS simulator's): the default of `HUB_SMS_A1_SECRET`.
pub const DEV_SMS_A1_SECRET: &str = "a1-dev-secret";
/// Operator MTS's development secret: the default of `HUB_SMS_MTS_SECRET`.
pub const DEV_SMS_MTS_SECRET: &str = "mts-dev-secret";
/// Operator life:)'s development secret: the default of `HUB_SMS_LIFE_SECRET`.
pub const DEV_SMS_LIFE_SECRET: &str = "life-dev-secret";
/// ERIP's development secret (the ERIP simulator's): the default of `HUB_ERIP_SECRET`.
pub const DEV_ERIP_SECRET: &str = "erip-dev-secret";

/// The prefix of the TLS settings of the system whose base URL is set by `url_key`: the key
/// without its `_URL` (`HUB_AUTHORITY_TAX_MINISTRY_URL` → `HUB_AUTHORITY_TAX_MINISTRY`).
pub fn tls_prefix(url_key: &str) -> &str {
    url_key.strip_suffix("_URL").unwrap_or(url_key)
}

/// The back-office simulator's development secret: the default of every HTTP authority's
/// `secret_key`, for one machine only.
pub const DEV_BACKOFFICE_SECRET: &str = "backoffice-dev-secret";

impl IntegrationConfig {
    /// Every trusted EDS root, DER: the files read (PEM converted) and the ones given in code.
    pub fn eds_roots(&self) -> anyhow::Result<Vec<Vec<u8>>> {
        let mut roots = self.eds_trusted_roots.clone();
        for path in &self.eds_trusted_root_files {
            let bytes = std::fs::read(path).map_err(|e| {
                anyhow::anyhow!("HUB_EDS_TRUSTED_ROOTS: cannot read {}: {e}", path.display())
            })?;
            roots.push(pem_or_der(&bytes).ok_or_else(|| {
                anyhow::anyhow!(
                    "HUB_EDS_TRUSTED_ROOTS: {} is neither DER nor a PEM certificate",
                    path.display()
                )
            })?);
        }
        Ok(roots)
    }

    /// The secret `operator` signs its delivery reports with (`HUB_SMS_<OPERATOR>_SECRET`).
    pub fn sms_secret(&self, operator: contracts::person::Operator) -> &str {
        use contracts::person::Operator;
        match operator {
            Operator::A1 => &self.sms_a1_secret,
            Operator::Mts => &self.sms_mts_secret,
            Operator::Life => &self.sms_life_secret,
        }
    }

    /// The value of a setting the catalogue names: given in `authority_settings`, else from the
    /// environment.
    pub fn authority_setting(&self, key: &str) -> Option<String> {
        self.authority_settings
            .get(key)
            .cloned()
            .or_else(|| std::env::var(key).ok())
            .filter(|v| !v.is_empty())
    }

    /// The TLS settings of the external system whose settings start with `prefix` (`HUB_MVD`,
    /// `HUB_SMS_A1`, `HUB_AUTHORITY_TAX_MINISTRY`, …): `<prefix>_CA_FILE`, a PEM bundle that
    /// replaces the OS roots for that system; `<prefix>_CLIENT_CERT` and `<prefix>_CLIENT_KEY`,
    /// the PEM client certificate and key shown to it (mutual TLS). Each is taken from
    /// `authority_settings`, else from the environment ([`adapters::tls`]).
    ///
    /// Errors: a file that cannot be read or parsed, named with its variable.
    pub fn client_tls(&self, prefix: &str) -> anyhow::Result<adapters::ClientTls> {
        let files = adapters::TlsFiles::lookup(prefix, |key| self.authority_setting(key));
        Ok(adapters::ClientTls::load(&files)?)
    }

    /// Where an HTTP authority's back-office is, and the secret both sides sign with.
    pub fn backoffice(
        &self,
        authority: &str,
        base_url_key: &str,
        secret_key: &str,
    ) -> anyhow::Result<(url::Url, Vec<u8>)> {
        let url = match self.authority_setting(base_url_key) {
            Some(v) => {
                let mut url = url::Url::parse(&v).map_err(|e| {
                    anyhow::anyhow!("{base_url_key}={v:?} is not a URL ({e}); write e.g. https://backoffice.example.by/api/")
                })?;
                if !url.path().ends_with('/') {
                    let path = format!("{}/", url.path());
                    url.set_path(&path);
                }
                url
            }
            None => format!("http://127.0.0.1:8131/{authority}/").parse()?,
        };
        let secret = self
            .authority_setting(secret_key)
            .unwrap_or_else(|| DEV_BACKOFFICE_SECRET.to_owned());
        Ok((url, secret.into_bytes()))
    }
}

/// Everything production mode (`HUB_ENV=production`) refuses in the portal's settings, each
/// with the variable, why and how; empty when nothing is wrong. In development the ones that
/// are development defaults (`dev_default`) are announced at start instead.
///
/// - a development secret: `HUB_SEAL_KEY` unset or the development key (the sealing key and the
///   phone-limits key derived from it), `HUB_ERIP_SECRET`, `HUB_SMS_<OPERATOR>_SECRET`, and the
///   `secret_key` of every HTTP authority of `catalogue`, unset (the back-office simulator's
///   secret) or equal to a development value, or empty;
/// - an external system reached over plain `http://` (and SMTP without TLS), or an HTTP
///   authority's back-office URL left to the simulator's;
/// - for an operator on SMPP, the SMS centre simulators' development password or plain TCP
///   ([`crate::external::sms::settings::production_problems`]).
pub fn production_problems(config: &IntegrationConfig, catalogue: &Catalogue) -> Vec<Problem> {
    let mut problems = Vec::new();
    if hub_runtime::secrets::is_dev_seal_key(config.seal_key.as_deref()) {
        let how = "set it to 32 random bytes in base64 from a secret store: HUB_SEAL_KEY=k1:$(openssl rand -base64 32)";
        problems.push(Problem::new(
            "HUB_SEAL_KEY",
            "codes and passwords on their way to the SMS worker are sealed with the development key, which is in the repository",
            how,
            true,
        ));
        problems.push(Problem::new(
            "HUB_SEAL_KEY (the phone-limits key)",
            "the key of the stored phone hashes (phone_events, recoveries) is derived from a constant in the repository, so they can be reversed by hashing every number",
            how,
            true,
        ));
    }
    let secrets = [
        (
            "HUB_ERIP_SECRET",
            &config.erip_secret,
            DEV_ERIP_SECRET,
            "ERIP's 'paid' notifications",
        ),
        (
            "HUB_SMS_A1_SECRET",
            &config.sms_a1_secret,
            DEV_SMS_A1_SECRET,
            "A1's delivery reports",
        ),
        (
            "HUB_SMS_MTS_SECRET",
            &config.sms_mts_secret,
            DEV_SMS_MTS_SECRET,
            "MTS's delivery reports",
        ),
        (
            "HUB_SMS_LIFE_SECRET",
            &config.sms_life_secret,
            DEV_SMS_LIFE_SECRET,
            "life:)'s delivery reports",
        ),
    ];
    for (variable, value, dev, what) in secrets {
        if let Some(p) = secret_problem(variable, Some(value.as_str()), dev, what) {
            problems.push(p);
        }
    }
    let urls = [
        ("HUB_MVD_URL", &config.mvd_url),
        ("HUB_SMS_A1_URL", &config.sms_a1_url),
        ("HUB_SMS_MTS_URL", &config.sms_mts_url),
        ("HUB_SMS_LIFE_URL", &config.sms_life_url),
        ("HUB_ERIP_URL", &config.erip_url),
        ("HUB_GOSSUOK_URL", &config.gossuok_url),
        ("HUB_CALLBACK_URL", &config.callback_url),
        ("HUB_PORTAL_URL", &config.portal_url),
    ];
    for (variable, url) in urls {
        if let Some(p) = url_problem(variable, url) {
            problems.push(p);
        }
    }
    let smtp_tls = config.smtp_url.scheme() == "smtps"
        || config
            .smtp_url
            .query_pairs()
            .any(|(k, v)| k == "tls" && v == "required");
    if !smtp_tls {
        problems.push(Problem::new(
            "HUB_SMTP_URL",
            "the mail server is reached without TLS (or with STARTTLS only if offered): activation links and the SMTP password cross the network readable",
            "use smtps://USER:PASSWORD@HOST:465 or smtp://USER:PASSWORD@HOST:587?tls=required",
            is_local_dev(&config.smtp_url),
        ));
    }
    for a in catalogue.authorities() {
        let AuthorityChannel::Http {
            base_url_key,
            secret_key,
        } = &a.channel
        else {
            continue;
        };
        match config.authority_setting(base_url_key) {
            None => problems.push(Problem::new(
                base_url_key,
                format!(
                    "not set: the back-office of {} is the simulator's, http://127.0.0.1:8131/{}/",
                    a.id, a.id
                ),
                "set it to the back-office's https:// base URL",
                true,
            )),
            Some(v) => {
                if let Ok(url) = url::Url::parse(&v)
                    && let Some(p) = url_problem(base_url_key, &url)
                {
                    problems.push(p);
                }
            }
        }
        let what = format!("the decisions of {}'s back-office", a.id);
        if let Some(p) = secret_problem(
            secret_key,
            config.authority_setting(secret_key).as_deref(),
            DEV_BACKOFFICE_SECRET,
            &what,
        ) {
            problems.push(p);
        }
    }
    problems.extend(crate::external::sms::settings::production_problems(config));
    if config.unsigned_decisions == crate::procedures::saga::UnsignedDecisions::Accept {
        problems.push(Problem::new(
            "HUB_UNSIGNED_DECISIONS",
            "unsigned decisions (authority.decided.v1) would reach the person: nobody could prove who decided",
            "leave it unset (refuse), so only decisions signed with an authority's certificate (authority.decided.v2) are taken",
            false,
        ));
    }
    problems
}

/// A signing secret that is unset (`None`), empty or the development one.
fn secret_problem(variable: &str, value: Option<&str>, dev: &str, what: &str) -> Option<Problem> {
    let how = "set it to the secret agreed with the system, at least 32 random bytes (e.g. `openssl rand -base64 32`), from a secret store";
    let why = match value {
        None => format!(
            "not set: {what} are checked with the development secret {dev:?}, so anyone can sign them"
        ),
        Some(v) if v == dev => format!("the development secret {dev:?}: anyone can sign {what}"),
        Some(v) if v.trim().is_empty() => format!("empty: anyone can sign {what}"),
        Some(_) => return None,
    };
    let dev_default = value.is_none_or(|v| v == dev);
    Some(Problem::new(variable, why, how, dev_default))
}

/// An external system's URL in plain `http://`.
fn url_problem(variable: &str, url: &url::Url) -> Option<Problem> {
    (url.scheme() != "https").then(|| {
        Problem::new(
            variable,
            format!(
                "{url} is not https://: requests, answers and their signatures cross the network readable and unauthenticated"
            ),
            "give the system's https:// URL",
            is_local_dev(url),
        )
    })
}

/// A cache's age as [`parse_duration`] reads it, or a bare `0`: no caching.
fn parse_cache_age(s: &str) -> Result<Duration, String> {
    if s.trim() == "0" {
        Ok(Duration::ZERO)
    } else {
        parse_duration(s)
    }
}

/// A URL on this machine in plain text: a development default (a simulator).
fn is_local_dev(url: &url::Url) -> bool {
    matches!(url.scheme(), "http" | "smtp")
        && matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"))
}

impl std::fmt::Debug for IntegrationConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntegrationConfig")
            .field("mvd_url", &self.mvd_url.as_str())
            .field("http_addr", &self.http_addr)
            .field("ops_addr", &self.ops_addr)
            .field("seal_key", &self.seal_key.as_ref().map(|_| "***"))
            .field("portal_user", &self.portal_user)
            .field("desks", &self.desks)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// The DER inside a PEM certificate, or the bytes themselves when they look like DER.
fn pem_or_der(bytes: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine;
    if bytes.first() == Some(&0x30) {
        return Some(bytes.to_vec());
    }
    let text = std::str::from_utf8(bytes).ok()?;
    let body = text
        .split("-----BEGIN CERTIFICATE-----")
        .nth(1)?
        .split("-----END CERTIFICATE-----")
        .next()?;
    let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .ok()
}

/// The settings as flags give them (the environment's `HUB_*` could add to them), for the
/// crate's tests.
#[cfg(test)]
pub(crate) fn parsed_for_tests(args: &[&str]) -> IntegrationConfig {
    #[derive(clap::Parser)]
    struct Portal {
        #[command(flatten)]
        integrations: IntegrationConfig,
    }
    <Portal as clap::Parser>::try_parse_from(std::iter::once("hub").chain(args.iter().copied()))
        .expect("parses")
        .integrations
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(args: &[&str]) -> IntegrationConfig {
        parsed_for_tests(args)
    }

    const DEV_ARGS: &[&str] = &[
        "--mvd-url",
        "http://127.0.0.1:8101/",
        "--sms-a1-url",
        "http://127.0.0.1:8111/",
        "--sms-mts-url",
        "http://127.0.0.1:8112/",
        "--sms-life-url",
        "http://127.0.0.1:8113/",
        "--sms-a1-secret",
        DEV_SMS_A1_SECRET,
        "--sms-mts-secret",
        DEV_SMS_MTS_SECRET,
        "--sms-life-secret",
        DEV_SMS_LIFE_SECRET,
        "--erip-url",
        "http://127.0.0.1:8121/",
        "--erip-secret",
        DEV_ERIP_SECRET,
        "--callback-url",
        "http://127.0.0.1:8090/",
        "--smtp-url",
        "smtp://127.0.0.1:2525",
        "--portal-url",
        "http://127.0.0.1:8080/",
        "--gossuok-url",
        "http://127.0.0.1:8141/",
    ];

    fn http_authorities(catalogue: &Catalogue) -> Vec<(String, String)> {
        catalogue
            .authorities()
            .filter_map(|a| match &a.channel {
                AuthorityChannel::Http {
                    base_url_key,
                    secret_key,
                } => Some((base_url_key.clone(), secret_key.clone())),
                AuthorityChannel::Queue { .. } => None,
            })
            .collect()
    }

    #[test]
    fn production_refuses_every_development_default_naming_it() {
        let catalogue = Catalogue::embedded().expect("catalogue");
        let mut config = parsed(DEV_ARGS);
        let authorities = http_authorities(&catalogue);
        assert!(
            !authorities.is_empty(),
            "the catalogue has HTTP authorities"
        );
        // None of the authorities' settings given, unless the environment has them: say none.
        for (url_key, secret_key) in &authorities {
            config
                .authority_settings
                .insert(url_key.clone(), String::new());
            config
                .authority_settings
                .insert(secret_key.clone(), String::new());
        }
        let problems = production_problems(&config, &catalogue);
        let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
        let named = |variable: &str| {
            lines
                .iter()
                .filter(|l| l.starts_with(&format!("{variable}: ")))
                .count()
        };
        for variable in [
            "HUB_SEAL_KEY",
            "HUB_SEAL_KEY (the phone-limits key)",
            "HUB_ERIP_SECRET",
            "HUB_SMS_A1_SECRET",
            "HUB_SMS_MTS_SECRET",
            "HUB_SMS_LIFE_SECRET",
            "HUB_MVD_URL",
            "HUB_SMS_A1_URL",
            "HUB_SMS_MTS_URL",
            "HUB_SMS_LIFE_URL",
            "HUB_ERIP_URL",
            "HUB_GOSSUOK_URL",
            "HUB_CALLBACK_URL",
            "HUB_PORTAL_URL",
            "HUB_SMTP_URL",
        ] {
            assert_eq!(named(variable), 1, "{variable} once in {lines:#?}");
        }
        for (url_key, secret_key) in &authorities {
            assert_eq!(named(url_key), 1, "{url_key} in {lines:#?}");
            assert_eq!(named(secret_key), 1, "{secret_key} in {lines:#?}");
        }
        assert_eq!(lines.len(), 15 + 2 * authorities.len(), "{lines:#?}");
        assert!(problems.iter().all(|p| p.dev_default), "{lines:#?}");
        assert!(
            lines.iter().all(|l| l.split("; ").count() >= 2),
            "each says why and how: {lines:#?}"
        );
        // A secret set to the development value is refused as well as an unset one.
        let (_, secret_key) = &authorities[0];
        config
            .authority_settings
            .insert(secret_key.clone(), DEV_BACKOFFICE_SECRET.to_owned());
        config.seal_key = Some(format!(
            "k1:{}",
            base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                hub_runtime::secrets::DEV_SEAL_KEY
            )
        ));
        let lines: Vec<String> = production_problems(&config, &catalogue)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("{secret_key}: the development secret"))),
            "{lines:#?}"
        );
        assert!(
            lines.iter().any(|l| l.starts_with("HUB_SEAL_KEY: ")),
            "{lines:#?}"
        );
    }

    #[test]
    fn the_ocsp_cache_keeps_answers_five_minutes_unless_told_and_zero_turns_it_off() {
        assert_eq!(
            parsed(DEV_ARGS).ocsp_cache,
            Duration::from_secs(5 * 60),
            "the default, unless HUB_OCSP_CACHE is set here"
        );
        for (given, age) in [
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("30s", Duration::from_secs(30)),
        ] {
            let args: Vec<&str> = DEV_ARGS
                .iter()
                .copied()
                .chain(["--ocsp-cache", given])
                .collect();
            assert_eq!(parsed(&args).ocsp_cache, age, "{given}");
        }
        assert!(parse_cache_age("soon").is_err());
    }

    #[test]
    fn production_accepts_real_secrets_and_tls() {
        let catalogue = Catalogue::embedded().expect("catalogue");
        let mut config = parsed(&[
            "--mvd-url",
            "https://mvd.example.by/",
            "--sms-a1-url",
            "https://sms.a1.by/",
            "--sms-mts-url",
            "https://sms.mts.by/",
            "--sms-life-url",
            "https://sms.life.by/",
            "--sms-a1-secret",
            "a1-real-secret-from-the-vault",
            "--sms-mts-secret",
            "mts-real-secret-from-the-vault",
            "--sms-life-secret",
            "life-real-secret-from-the-vault",
            "--erip-url",
            "https://erip.example.by/",
            "--erip-secret",
            "erip-real-secret-from-the-vault",
            "--callback-url",
            "https://hub.portal.gov.by/",
            "--smtp-url",
            "smtp://relay.portal.gov.by:587?tls=required",
            "--portal-url",
            "https://portal.gov.by/",
            "--gossuok-url",
            "https://pki.example.by/",
            "--seal-key",
            "k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        ]);
        for (url_key, secret_key) in http_authorities(&catalogue) {
            config
                .authority_settings
                .insert(url_key, "https://backoffice.example.by/api/".to_owned());
            config
                .authority_settings
                .insert(secret_key, "a-real-back-office-secret".to_owned());
        }
        assert_eq!(production_problems(&config, &catalogue), Vec::new());
        config.smtp_url = "smtp://relay.portal.gov.by:587".parse().expect("url");
        let problems = production_problems(&config, &catalogue);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].variable, "HUB_SMTP_URL");
        assert!(!problems[0].dev_default, "a value given, not a default");
    }

    #[test]
    fn the_limits_flags_default_to_the_limits_default() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            limits: LimitsConfig,
        }
        let parsed = <Cli as clap::Parser>::try_parse_from(["hub"]).expect("defaults");
        let d = LimitsConfig::default();
        assert_eq!(
            format!("{:?}", parsed.limits),
            format!("{d:?}"),
            "Default and the flags' defaults agree"
        );
        let set = <Cli as clap::Parser>::try_parse_from([
            "hub",
            "--sms-per-phone",
            "3",
            "--sms-per-phone-window",
            "10m",
        ])
        .expect("set");
        assert_eq!(set.limits.sms_per_phone, 3);
        assert_eq!(set.limits.sms_window, Duration::from_secs(600));
        assert!(
            <Cli as clap::Parser>::try_parse_from(["hub", "--sms-per-phone", "0"]).is_err(),
            "a zero limit is refused, not taken as off"
        );
    }
}
