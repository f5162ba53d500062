//! `simulators`: runs the simulated external systems (MVD, A1, MTS, life:), ERIP, the
//! authorities' HTTP back-offices, GosSUOK) until Ctrl-C or SIGTERM, for integrators and for the hub's own
//! tests. The HTTP APIs are in README.md.

use std::io::{IsTerminal, Write};
use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use simulators::{
    BackOfficeSimConfig, BindError, DEFAULT_A1_SECRET, DEFAULT_A1_SMPP_PASSWORD,
    DEFAULT_BACKOFFICE_SECRET, DEFAULT_ERIP_SECRET, DEFAULT_LIFE_SECRET,
    DEFAULT_LIFE_SMPP_PASSWORD, DEFAULT_MTS_SECRET, DEFAULT_MTS_SMPP_PASSWORD,
    DEFAULT_SMPP_SYSTEM_ID, GossuokSimConfig, OperatorSecrets, Ports, Retention, SimConfig,
    SimKind, SmppAccounts, retention,
};
use tokio_util::sync::CancellationToken;

/// Exit code when a simulator cannot listen on its address (sysexits EX_UNAVAILABLE).
const EXIT_UNAVAILABLE: u8 = 69;

#[derive(Debug, Parser)]
#[command(
    name = "simulators",
    version,
    about = "Simulators of the external systems behind the hub: the MVD population registry, \
             the mobile operators A1, MTS and life:), the ERIP payment system and the \
             authorities' HTTP back-offices",
    long_about = "Simulators of the external systems behind the hub: the MVD population registry, \
                  the mobile operators A1, MTS and life:), the ERIP payment system and the \
                  authorities' HTTP back-offices (any authority under its own path prefix, \
                  http://127.0.0.1:8131/<authority>/), and GosSUOK, the state PKI (a test CA \
                  signing with bign, its CRLs and the persons' key tokens). Each listens on its own port and takes faults at run time (PUT /sim/faults).\n\n\
                  Prints one line per started \
                  simulator to stdout (its name and base URL); logs go to stderr (RUST_LOG sets \
                  the level, e.g. RUST_LOG=simulators=debug). Runs until Ctrl-C or SIGTERM.",
    after_help = "Examples:\n  simulators\n  simulators --only mvd,a1 --seed 7\n  \
                  simulators --population 200 --mvd-port 0 --a1-port 0 --mts-port 0 --life-port 0 \
                  --erip-port 0 --backoffice-port 0\n  \
                  simulators --only backoffice --backoffice-decide-after-ms 500\n  \
                  simulators --only email --email-port 0 --email-smtp-port 0\n  \
                  simulators --only a1 --a1-port 0 --a1-smpp-port 0\n  \
                  simulators --only gossuok --gossuok-port 0 --gossuok-crl-validity-secs 60\n  \
                  simulators --bind 0.0.0.0\n  \
                  simulators --keep-records 5000 --keep-for 2h\n  \
                  curl -s 'http://127.0.0.1:8101/sim/population?limit=1'"
)]
struct Cli {
    /// Start only these simulators (comma separated); all by default.
    #[arg(long, value_delimiter = ',', value_enum)]
    only: Vec<SimKind>,

    /// Seed of the MVD population: the same seed gives the same persons.
    #[arg(long, default_value_t = 42)]
    seed: u64,

    /// How many persons the MVD registry holds.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    population: u32,

    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,

    /// Port of the MVD registry (0: any free port).
    #[arg(long, default_value_t = 8101)]
    mvd_port: u16,

    /// Port of operator A1 (0: any free port).
    #[arg(long, default_value_t = 8111)]
    a1_port: u16,

    /// Port of operator MTS (0: any free port).
    #[arg(long, default_value_t = 8112)]
    mts_port: u16,

    /// Port of operator life:) (0: any free port).
    #[arg(long, default_value_t = 8113)]
    life_port: u16,

    /// SMPP port of operator A1's SMS centre (0: any free port).
    #[arg(long, env = "A1_SMPP_PORT", default_value_t = 2775)]
    a1_smpp_port: u16,

    /// SMPP port of operator MTS's SMS centre (0: any free port).
    #[arg(long, env = "MTS_SMPP_PORT", default_value_t = 2776)]
    mts_smpp_port: u16,

    /// SMPP port of operator life:)'s SMS centre (0: any free port).
    #[arg(long, env = "LIFE_SMPP_PORT", default_value_t = 2777)]
    life_smpp_port: u16,

    /// The system_id the SMS centres take binds of (1 to 15 ASCII characters).
    #[arg(long, env = "SMPP_SYSTEM_ID", default_value = DEFAULT_SMPP_SYSTEM_ID)]
    smpp_system_id: String,

    /// The password of operator A1's SMS centre (1 to 8 ASCII characters, SMPP 3.4).
    #[arg(long, env = "A1_SMPP_PASSWORD", default_value = DEFAULT_A1_SMPP_PASSWORD, hide_env_values = true)]
    a1_smpp_password: String,

    /// The password of operator MTS's SMS centre.
    #[arg(long, env = "MTS_SMPP_PASSWORD", default_value = DEFAULT_MTS_SMPP_PASSWORD, hide_env_values = true)]
    mts_smpp_password: String,

    /// The password of operator life:)'s SMS centre.
    #[arg(long, env = "LIFE_SMPP_PASSWORD", default_value = DEFAULT_LIFE_SMPP_PASSWORD, hide_env_values = true)]
    life_smpp_password: String,

    /// Port of the ERIP payment system (0: any free port).
    #[arg(long, default_value_t = 8121)]
    erip_port: u16,

    /// The secret ERIP signs its notifications with (HMAC-SHA256); the hub needs the same one.
    #[arg(long, env = "ERIP_SECRET", default_value = DEFAULT_ERIP_SECRET, hide_env_values = true)]
    erip_secret: String,

    /// The secret operator A1 signs its delivery reports with (HMAC-SHA256); the hub needs the
    /// same one (`HUB_SMS_A1_SECRET`).
    #[arg(long, env = "A1_SECRET", default_value = DEFAULT_A1_SECRET, hide_env_values = true)]
    a1_secret: String,

    /// The secret operator MTS signs its delivery reports with (`HUB_SMS_MTS_SECRET`).
    #[arg(long, env = "MTS_SECRET", default_value = DEFAULT_MTS_SECRET, hide_env_values = true)]
    mts_secret: String,

    /// The secret operator life:) signs its delivery reports with (`HUB_SMS_LIFE_SECRET`).
    #[arg(long, env = "LIFE_SECRET", default_value = DEFAULT_LIFE_SECRET, hide_env_values = true)]
    life_secret: String,

    /// Port of the authorities' HTTP back-offices (0: any free port).
    #[arg(long, default_value_t = 8131)]
    backoffice_port: u16,

    /// The secret the back-offices and the hub sign their calls with (HMAC-SHA256); the hub
    /// needs the same one.
    #[arg(long, env = "BACKOFFICE_SECRET", default_value = DEFAULT_BACKOFFICE_SECRET, hide_env_values = true)]
    backoffice_secret: String,

    /// How long after taking an application up a back-office decides it, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    backoffice_decide_after_ms: u64,

    /// How long after receiving a complaint a back-office decides it, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    backoffice_complaint_decide_after_ms: u64,

    /// Port of the e-mail simulator's HTTP inbox (0: any free port).
    #[arg(long, default_value_t = 8151)]
    email_port: u16,

    /// Port of the e-mail simulator's SMTP sink (0: any free port).
    #[arg(long, default_value_t = 2525)]
    email_smtp_port: u16,

    /// Port of GosSUOK, the state PKI (0: any free port).
    #[arg(long, default_value_t = 8141)]
    gossuok_port: u16,

    /// How long each CRL GosSUOK signs is valid (its nextUpdate after its thisUpdate), in
    /// seconds; at most 365 days.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(0..=31_536_000))]
    gossuok_crl_validity_secs: u64,

    /// The base URL GosSUOK's certificates name for their CRLs and the OCSP responder, as the
    /// hub reaches the simulator (e.g. http://simulators:8141/ in compose); by default its own
    /// listening URL (https with --tls-cert).
    #[arg(long)]
    gossuok_public_url: Option<url::Url>,

    /// Serve HTTPS with this PEM certificate chain (its names must cover the host the clients
    /// use, e.g. 127.0.0.1); needs --tls-key. Without it every simulator serves plain HTTP.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,

    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,

    /// Require client certificates signed by a CA of this PEM bundle (mutual TLS); needs
    /// --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_client_ca: Option<std::path::PathBuf>,

    /// The most records each store keeps (an operator's messages, all phones' inboxes, the mail
    /// sink, ERIP's invoices, one authority's applications, complaints, refusals); the oldest
    /// are dropped first.
    #[arg(long, env = retention::ENV_KEEP_RECORDS, default_value_t = retention::DEFAULT_KEEP_RECORDS,
          value_parser = retention::parse_count)]
    keep_records: usize,

    /// The most idempotency keys each simulator keeps; the oldest are dropped first, and a
    /// retry with a dropped key is served as a new request.
    #[arg(long, env = retention::ENV_KEEP_KEYS, default_value_t = retention::DEFAULT_KEEP_KEYS,
          value_parser = retention::parse_count)]
    keep_keys: usize,

    /// How long records and idempotency keys are kept: 90s, 30m, 24h, 7d.
    #[arg(long, env = retention::ENV_KEEP_FOR, default_value = "24h", value_parser = retention::parse_age)]
    keep_for: Duration,
}

impl Cli {
    fn config(&self) -> SimConfig {
        SimConfig {
            bind: self.bind,
            seed: self.seed,
            population: self.population as usize,
            only: (!self.only.is_empty()).then(|| self.only.clone()),
            ports: Ports {
                mvd: self.mvd_port,
                a1: self.a1_port,
                mts: self.mts_port,
                life: self.life_port,
                erip: self.erip_port,
                backoffice: self.backoffice_port,
                email: self.email_port,
                email_smtp: self.email_smtp_port,
                gossuok: self.gossuok_port,
                a1_smpp: self.a1_smpp_port,
                mts_smpp: self.mts_smpp_port,
                life_smpp: self.life_smpp_port,
            },
            erip_secret: self.erip_secret.clone(),
            operator_secrets: OperatorSecrets {
                a1: self.a1_secret.clone(),
                mts: self.mts_secret.clone(),
                life: self.life_secret.clone(),
            },
            smpp: SmppAccounts {
                system_id: self.smpp_system_id.clone(),
                a1_password: self.a1_smpp_password.clone(),
                mts_password: self.mts_smpp_password.clone(),
                life_password: self.life_smpp_password.clone(),
            },
            backoffice: BackOfficeSimConfig {
                secret: self.backoffice_secret.clone(),
                decide_after: Duration::from_millis(self.backoffice_decide_after_ms),
                complaint_decide_after: Duration::from_millis(
                    self.backoffice_complaint_decide_after_ms,
                ),
            },
            gossuok: GossuokSimConfig {
                crl_validity: Duration::from_secs(self.gossuok_crl_validity_secs),
                public_url: self.gossuok_public_url.clone(),
            },
            tls: match (&self.tls_cert, &self.tls_key) {
                (Some(cert), Some(key)) => Some(simulators::tls::SimTls {
                    cert: cert.clone(),
                    key: key.clone(),
                    client_ca: self.tls_client_ca.clone(),
                }),
                _ => None,
            },
            retention: Retention {
                records: self.keep_records,
                keys: self.keep_keys,
                max_age: self.keep_for,
            },
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();

    let shutdown = CancellationToken::new();
    let running = match simulators::start(cli.config(), shutdown.clone()).await {
        Ok(running) => running,
        Err(e) => {
            return match e.downcast_ref::<BindError>() {
                Some(bind) => {
                    eprintln!("error: {bind}");
                    ExitCode::from(EXIT_UNAVAILABLE)
                }
                None => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            };
        }
    };
    let mut stdout = std::io::stdout().lock();
    for kind in SimKind::ALL {
        if let Some(url) = running.operator_url(kind) {
            // A closed stdout must not stop the simulators; the log has the URLs too.
            let _ = writeln!(stdout, "{kind} {url}");
        }
        if let Some(addr) = running.smpp_addr(kind) {
            let _ = writeln!(stdout, "{kind}-smpp smpp://{addr}");
        }
    }
    if let Some(url) = running.email_smtp_url() {
        let _ = writeln!(stdout, "email-smtp {url}");
    }
    let _ = stdout.flush();
    drop(stdout);

    cancel_on_signal(shutdown).await;
    running.stopped().await;
    tracing::info!("simulators stopped");
    ExitCode::SUCCESS
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// Waits for Ctrl-C or SIGTERM, then cancels `token`.
async fn cancel_on_signal(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("signal received, stopping");
    token.cancel();
}
