//! The `hub` command line. It lives in the library so that a binary embedding other sagas
//! (the end-to-end tests' fixture) gets the very same commands, flags and drain.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use hub_ops::config::ConsoleConfig;
use hub_portal::config::IntegrationConfig;
use hub_runtime::app::{self, Components, Plan};
use hub_runtime::broker::{self, Broker, ConnectError};
use hub_runtime::config::{HubConfig, Problem, mask_url};
use hub_runtime::store::{self, StoreError};
use tokio_util::sync::CancellationToken;

mod contracts;
#[cfg(feature = "lab")]
mod lab;

/// Exit code when RabbitMQ or PostgreSQL cannot be reached (sysexits EX_UNAVAILABLE).
const EXIT_UNAVAILABLE: u8 = 69;

/// Exit code of a bad setting read outside the command line (sysexits EX_USAGE).
const EXIT_USAGE: u8 = 64;

/// Exit code when production mode refuses the settings (sysexits EX_CONFIG).
pub const EXIT_CONFIG: u8 = 78;

/// Where the hub runs: on one machine against the simulators (every setting has a default), or
/// in production, where it refuses to start on a development default or a connection without
/// TLS ([`production_problems`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HubEnv {
    /// Defaults for one machine; each development default in use is announced at start.
    Development,
    /// No development key or secret, TLS to the broker, the database and every external system.
    Production,
}

/// Production mode refused the settings: every problem, one line each (exit 78).
#[derive(Debug)]
pub struct ConfigRefused(pub Vec<Problem>);

impl std::fmt::Display for ConfigRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "HUB_ENV=production: the hub refuses to start with {} setting{} to fix:",
            self.0.len(),
            if self.0.len() == 1 { "" } else { "s" }
        )?;
        for p in &self.0 {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigRefused {}

/// What production mode refuses in these settings, all of them: the broker's and the
/// database's URLs ([`hub_runtime::config::production_problems`]), the portal's secrets and
/// external systems ([`hub_portal::config::production_problems`]), and, when `console` is
/// given (a process that serves it), the console's ([`hub_ops::config::production_problems`]).
pub fn production_problems(
    config: &HubConfig,
    integrations: Option<&IntegrationConfig>,
    console: Option<&ConsoleConfig>,
) -> anyhow::Result<Vec<Problem>> {
    let mut problems = hub_runtime::config::production_problems(config);
    // An endpoint that is not a URL stops the hub before this (when logging starts).
    if let Ok(Some(otlp)) = hub_runtime::otlp::OtlpSettings::from_env() {
        problems.extend(otlp.production_problem());
    }
    if let Some(integrations) = integrations {
        let catalogue = hub_portal::procedures::catalogue::Catalogue::embedded()?;
        problems.extend(hub_portal::config::production_problems(
            integrations,
            &catalogue,
        ));
    }
    if let Some(console) = console {
        problems.extend(hub_ops::config::production_problems(console));
    }
    Ok(problems)
}

/// In production, refuses `problems` (all at once); in development, announces each development
/// default in use, once: a warning per secret, one for the services reached on this machine in
/// plain text. Production mode switches the conformance check off
/// ([`hub_runtime::conformance`]).
fn enforce(env: HubEnv, problems: Vec<Problem>, announce: bool) -> anyhow::Result<()> {
    // A build with the lab in it checks every body it sends; production does not pay for it,
    // nor does a process told `HUB_CONFORMANCE=off` (the bench's hubs).
    if env == HubEnv::Production || std::env::var("HUB_CONFORMANCE").is_ok_and(|v| v == "off") {
        hub_runtime::conformance::switch_off();
    }
    match env {
        HubEnv::Production if !problems.is_empty() => Err(ConfigRefused(problems).into()),
        HubEnv::Production => Ok(()),
        HubEnv::Development => {
            if announce {
                let mut urls = Vec::new();
                for p in problems.iter().filter(|p| p.dev_default) {
                    if p.variable.ends_with("_URL") {
                        if !urls.contains(&p.variable.as_str()) {
                            urls.push(p.variable.as_str());
                        }
                    } else {
                        tracing::warn!(
                            variable = %p.variable,
                            "development default: {}; {} (HUB_ENV=production refuses it)",
                            p.why,
                            p.how
                        );
                    }
                }
                if !urls.is_empty() {
                    tracing::warn!(
                        "development defaults: {} reach this machine's simulators and servers in plain text (HUB_ENV=production requires TLS)",
                        urls.join(", ")
                    );
                }
            }
            Ok(())
        }
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "hub",
    version,
    about = "The integration hub of the national e-services portal",
    long_about = "The integration hub of the national e-services portal: runs every multi-step \
                  process as a durable saga over RabbitMQ and PostgreSQL.\n\nLogs go to stderr \
                  (RUST_LOG sets the level, e.g. RUST_LOG=hub=debug; JSON lines unless stderr is a \
                  terminal, HUB_LOG_FORMAT=json|text forces one); results go to stdout."
)]
struct Cli {
    /// `production` refuses to start while a development key or secret is in use, or the
    /// broker, the database or an external system is reached without TLS: every problem is
    /// printed, one line each, and the exit code is 78. `development` (the default) announces
    /// each development default at start.
    #[arg(
        long = "env",
        env = "HUB_ENV",
        value_enum,
        default_value = "development"
    )]
    env: HubEnv,

    #[command(flatten)]
    config: HubConfig,

    #[command(flatten)]
    integrations: IntegrationConfig,

    /// The operators' web console ([`hub_ops::console`]).
    #[command(flatten)]
    console: ConsoleConfig,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the hub until SIGINT or SIGTERM, then drain and exit 0.
    #[command(after_help = "Examples:\n  hub run\n  hub run --only relay,timers\n  \
                            AMQP_URL=amqp://hub:secret@mq:5672/%2f DATABASE_URL=postgres://hub@db/hub hub run")]
    Run {
        /// Run only these components (comma separated); all by default.
        #[arg(long, value_delimiter = ',', value_enum)]
        only: Vec<Component>,
        /// Consume only these work queues (short names, comma separated, e.g.
        /// `adapter.sms,adapter.mvd`): an adapter worker in a process of its own. The other
        /// queues are still declared; the HTTP listener and the console run only in a process
        /// without `--queues`.
        #[arg(long, value_delimiter = ',')]
        queues: Vec<String>,
    },
    #[cfg(feature = "lab")]
    /// Run the whole portal on this machine: every simulator and the hub, playing an MVD outage
    /// repaired by dead-letter replay, desks and citizens through identifier issuance,
    /// administrative procedures, and registration by e-mail and by EDS; print what happened.
    /// Exit 0 when every outcome was the expected one, 1 otherwise.
    #[command(
        after_help = "Examples:\n  hub demo\n  hub demo --applications 200 --json\n  \
                            hub demo --sms-protocol http"
    )]
    Demo(DemoArgs),
    #[cfg(feature = "lab")]
    /// Measure the hub on this machine: the raw limits of the broker and the database, then
    /// identifier issuance, free and paid applications driven through `hub run` processes (this
    /// executable) with every simulator in this process, in a namespace and database of its
    /// own per run (removed afterwards). Exit 0 when every saga came to its expected end and no
    /// effect happened twice, 1 otherwise.
    #[command(
        after_help = "Examples:\n  hub bench\n  hub bench --sagas 1000 --concurrency 64 --json-out bench.json\n  \
                            hub bench --types free,paid --processes 1,2,3\n  \
                            hub bench --types issuance --sms-protocol http"
    )]
    Bench(BenchArgs),
    #[cfg(feature = "lab")]
    /// Run the demo's journeys at load while injecting faults on a seeded schedule (hub
    /// processes killed with SIGKILL, the broker and PostgreSQL restarted, simulators slow,
    /// failing, timing out, sending callbacks twice or late, down for a while), then check the
    /// invariants: every saga ended, no effect twice, no message lost, no code or password in
    /// clear text anywhere. Uses a RabbitMQ node and a PostgreSQL server of its own (the
    /// installed servers, on free loopback ports, removed afterwards), so it can restart them.
    /// Exit 0 when no invariant was broken, 1 otherwise.
    #[command(
        after_help = "Examples:\n  hub chaos\n  hub chaos --seed 7 --duration 10m --concurrency 16 --processes 3\n  \
                            hub chaos --faults kill,sims --duration 30s --json"
    )]
    Chaos(ChaosArgs),
    /// Check the settings as `hub run` does, without connecting: in production mode
    /// (`HUB_ENV=production`) print every problem, one line each, and exit 78; else print
    /// the development defaults in use and exit 0.
    #[command(after_help = "Example:\n  HUB_ENV=production hub check-config")]
    CheckConfig,
    /// Create the database if needed and apply the migrations, then exit.
    #[command(
        after_help = "Example:\n  DATABASE_URL=postgres://postgres@127.0.0.1:5432/hub hub migrate"
    )]
    Migrate,
    /// Declare the broker topology of the namespace and print it.
    #[command(
        after_help = "Examples:\n  hub topology\n  hub topology --dry-run --json\n  \
                            HUB_NAMESPACE=staging hub topology\n  \
                            hub topology --agency-users > agency-users.sh\n  \
                            hub topology --agency-users --desks minsk-desk-1,brest-desk-2"
    )]
    Topology(TopologyArgs),
    /// The dead letters the keeper keeps: list and group them by cause, show one, replay,
    /// discard or export them. Exit 3 when nothing matched, 77 when not allowed.
    #[command(
        after_help = "Examples:\n  hub dlq list --group\n  hub dlq show 42\n  \
                            hub dlq replay --group 3f9c0a1b2c4d --rate 5 --reason \"MVD is back\"\n  \
                            hub dlq discard 42 --reason \"test message\"\n  \
                            hub dlq export --since 1d > dead-letters.jsonl"
    )]
    Dlq(hub_ops::dlq::cli::DlqArgs),
    /// Inspect and repair sagas: list them (stuck ones too), show one with its timeline,
    /// retry a stuck step, cancel one. Exit 3 when nothing (or several) matched, 77 when not
    /// allowed.
    #[command(after_help = "Examples:\n  hub saga list --stuck-longer-than 10m\n  \
                            hub saga show minsk-desk-1/A-17\n  \
                            hub saga retry-step 5d0c2a8e-0b1f-5c57-9d0e-2f1a7c3b9e41 --reason \"MVD is back\"\n  \
                            hub saga cancel 5d0c2a8e-0b1f-5c57-9d0e-2f1a7c3b9e41 --reason \"authority closed\"")]
    Saga(hub_ops::sagas::cli::SagaArgs),
    /// Set up the operators' web console: `hash-password` prints the hash of a password read
    /// from standard input, for `HUB_CONSOLE_USERS=name:<hash>`.
    #[command(
        after_help = "Example:\n  HUB_CONSOLE_USERS=\"ivanova:$(hub console hash-password)\" hub run"
    )]
    Console(hub_ops::console::cli::ConsoleArgs),
    /// The published contracts for agencies: `export` writes the JSON Schemas, the AsyncAPI
    /// document and the OpenAPI documents; `check` runs the compatibility gate against the last
    /// release; `release` freezes the current contracts as the new baseline.
    #[command(
        after_help = "Examples:\n  hub contracts export --out /tmp/c\n  hub contracts check\n  \
                            hub contracts release"
    )]
    Contracts(contracts::ContractsArgs),
}

#[cfg(feature = "lab")]
#[derive(Debug, clap::Args)]
struct DemoArgs {
    /// How many applications to play (8 of them break a rule on purpose).
    #[arg(long, default_value_t = 40)]
    applications: usize,
    /// Seed of the simulated population.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// How the hub reaches the simulated mobile operators: `smpp` (their SMS centres) or `http`
    /// (their HTTP gateways).
    #[arg(long, value_enum, default_value_t = hub_lab::simulated::SmsProtocol::Smpp)]
    sms_protocol: hub_lab::simulated::SmsProtocol,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[cfg(feature = "lab")]
#[derive(Debug, clap::Args)]
struct BenchArgs {
    /// Sagas of each type.
    #[arg(long, default_value_t = 200)]
    sagas: usize,
    /// Sagas in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// The saga types to drive (comma separated); all by default.
    #[arg(long, value_delimiter = ',', value_enum)]
    types: Vec<hub_lab::bench::SagaKind>,
    /// Operations of each raw measurement (broker hops, database steps).
    #[arg(long, default_value_t = 3000)]
    raw_operations: usize,
    /// Numbers of `hub run` processes to measure with, comma separated: one run each, on
    /// a namespace and database of its own (e.g. `1,2,3` for scale-out).
    #[arg(long, value_delimiter = ',', default_value = "1", value_parser = clap::value_parser!(u16).range(1..=16))]
    processes: Vec<u16>,
    /// The longest one phase (a raw measurement, one saga type) may take.
    #[arg(long, default_value = "10m", value_parser = hub_runtime::config::parse_duration)]
    phase_timeout: std::time::Duration,
    /// How the hub reaches the simulated mobile operators: `smpp` (their SMS centres) or `http`
    /// (their HTTP gateways).
    #[arg(long, value_enum, default_value_t = hub_lab::simulated::SmsProtocol::Smpp)]
    sms_protocol: hub_lab::simulated::SmsProtocol,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json_out: Option<std::path::PathBuf>,
}

#[cfg(feature = "lab")]
#[derive(Debug, clap::Args)]
struct ChaosArgs {
    /// Seed of the fault schedule and the journeys' mix: the same seed, the same faults at
    /// the same moments.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How long to start journeys for.
    #[arg(long, default_value = "2m", value_parser = hub_runtime::config::parse_duration)]
    duration: std::time::Duration,
    /// Journeys in flight at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// `hub run` processes.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=16))]
    processes: u16,
    /// The kinds of faults to inject, comma separated; all by default.
    #[arg(long, value_delimiter = ',', value_enum)]
    faults: Vec<hub_lab::chaos::FaultKind>,
    /// About one fault this often.
    #[arg(long, default_value = "8s", value_parser = hub_runtime::config::parse_duration)]
    fault_every: std::time::Duration,
    /// The longest the system may take to settle after the load before the check.
    #[arg(long, default_value = "5m", value_parser = hub_runtime::config::parse_duration)]
    settle_timeout: std::time::Duration,
    /// How the hub reaches the simulated mobile operators: `smpp` (their SMS centres) or `http`
    /// (their HTTP gateways).
    #[arg(long, value_enum, default_value_t = hub_lab::simulated::SmsProtocol::Smpp)]
    sms_protocol: hub_lab::simulated::SmsProtocol,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct TopologyArgs {
    /// Print the declarations without connecting to the broker.
    #[arg(long)]
    dry_run: bool,
    /// Print, without connecting, the `rabbitmqctl` commands that create the broker user of
    /// every party (the portal, each desk, each authority on the bus) with the least
    /// permissions it needs: write the bus, read its own queue (for the broker's
    /// administrators; replace the PASSWORD_OF_* placeholders).
    #[arg(long, conflicts_with_all = ["dry_run", "json"])]
    agency_users: bool,
    /// The issuance desks (comma separated ids) whose queues (`<ns>.desk.<id>`) are declared
    /// and whose users (`desk-<id>`) are printed; HUB_DESKS when not given.
    #[arg(long, value_delimiter = ',')]
    desks: Vec<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Component {
    /// Saga engines and other queue consumers.
    Consumers,
    /// The outbox relay.
    Relay,
    /// The timer poller.
    Timers,
    /// The dead-letter keeper.
    Keeper,
}

/// What a binary runs: built from the portal's and the console's settings once the command line
/// is parsed ([`crate::plan`] for `hub` itself).
pub type PlanBuilder = fn(&IntegrationConfig, &ConsoleConfig) -> anyhow::Result<Plan>;

/// Parses the command line and runs it with the plan `build` makes; returns the exit code.
pub fn main(build: PlanBuilder) -> ExitCode {
    let cli = Cli::parse();
    let traces = match init_logging() {
        Ok(traces) => traces,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    // A handler's panic is caught and dead-lettered by the consumer runner; report it as one
    // log line (with where it happened) instead of the default multi-line dump on stderr.
    std::panic::set_hook(Box::new(|info| {
        tracing::error!(panic = %info, "a task panicked");
    }));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(execute(cli, build));
    // The hub has drained: the last spans go out before the process ends.
    if let Some(traces) = traces {
        traces.shutdown();
    }
    exit_code(result)
}

/// The exit code of a command's result.
fn exit_code(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let unavailable = e.downcast_ref::<ConnectError>().is_some()
                || e.downcast_ref::<StoreError>().is_some();
            eprintln!("error: {e:#}");
            if e.downcast_ref::<app::UsageError>().is_some() {
                return ExitCode::from(2);
            }
            if e.downcast_ref::<ConfigRefused>().is_some() {
                return ExitCode::from(EXIT_CONFIG);
            }
            if let Some(code) = e
                .downcast_ref::<hub_ops::dlq::DlqError>()
                .map(hub_ops::dlq::DlqError::exit_code)
            {
                return ExitCode::from(code);
            }
            if let Some(code) = e
                .downcast_ref::<hub_ops::sagas::SagaOpsError>()
                .map(hub_ops::sagas::SagaOpsError::exit_code)
            {
                return ExitCode::from(code);
            }
            if unavailable {
                ExitCode::from(EXIT_UNAVAILABLE)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Logs on stderr: JSON lines unless stderr is a terminal, or as `HUB_LOG_FORMAT` says; and the
/// spans exported over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set ([`hub_runtime::otlp`]).
fn init_logging() -> Result<Option<hub_runtime::otlp::TraceExport>, String> {
    let format = hub_runtime::logging::LogFormat::from_env()?;
    let traces = hub_runtime::otlp::OtlpSettings::from_env()?;
    hub_runtime::logging::init(format, traces.as_ref())
}

async fn execute(cli: Cli, build: PlanBuilder) -> anyhow::Result<()> {
    let config = cli.config;
    let mut integrations = cli.integrations;
    if let Command::Topology(TopologyArgs { desks, .. }) = &cli.command
        && !desks.is_empty()
    {
        // `hub topology --desks ...` declares (and prints the users of) these desks.
        integrations.desks.clone_from(desks);
    }
    let console = cli.console;
    let env = cli.env;
    // Production mode checks what the command uses before it connects to anything: `hub run`
    // (and `hub check-config`) everything, the console's settings too unless `--queues` keeps
    // it off; the commands that only reach the broker and the database, their URLs.
    match &cli.command {
        Command::Run { queues, .. } => {
            let console = queues.is_empty().then_some(&console);
            enforce(
                env,
                production_problems(&config, Some(&integrations), console)?,
                true,
            )?;
        }
        Command::CheckConfig => {}
        Command::Topology(_) => enforce(
            env,
            production_problems(&config, Some(&integrations), None)?,
            false,
        )?,
        Command::Migrate | Command::Dlq(_) | Command::Saga(_) => {
            enforce(env, production_problems(&config, None, None)?, false)?;
        }
        #[cfg(feature = "lab")]
        Command::Demo(_) | Command::Bench(_) | Command::Chaos(_) => {}
        Command::Console(_) | Command::Contracts(_) => {}
    }
    let build = || build(&integrations, &console);
    match cli.command {
        Command::Run { only, queues } => run(&config, &build, &only, &queues).await,
        Command::CheckConfig => check_config(env, &config, &integrations, &console),
        #[cfg(feature = "lab")]
        Command::Demo(args) => lab::demo(&config, args).await,
        #[cfg(feature = "lab")]
        Command::Bench(args) => lab::bench(&config, args).await,
        #[cfg(feature = "lab")]
        Command::Chaos(args) => lab::chaos(&config, args).await,
        Command::Migrate => migrate(&config).await,
        Command::Dlq(args) => hub_ops::dlq::cli::run(&config, &crate::migrator()?, args).await,
        Command::Saga(args) => {
            hub_ops::sagas::cli::run(&config, &crate::migrator()?, &build, args).await
        }
        Command::Console(args) => hub_ops::console::cli::run(args),
        Command::Contracts(args) => contracts::run(args),
        Command::Topology(args) => topology(&config, &integrations, &build, args).await,
    }
}

/// `hub run`: the plan's components until SIGINT or SIGTERM, then a drain.
async fn run(
    config: &HubConfig,
    build: &dyn Fn() -> anyhow::Result<Plan>,
    only: &[Component],
    queues: &[String],
) -> anyhow::Result<()> {
    let components = if only.is_empty() {
        Components::ALL
    } else {
        Components {
            consumers: only.contains(&Component::Consumers),
            relay: only.contains(&Component::Relay),
            timers: only.contains(&Component::Timers),
            keeper: only.contains(&Component::Keeper),
        }
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    let plan = app::only_queues(build()?, queues)?;
    app::run_plan(config, components, plan, shutdown).await
}

/// `hub check-config`: the settings as production mode sees them.
fn check_config(
    env: HubEnv,
    config: &HubConfig,
    integrations: &IntegrationConfig,
    console: &ConsoleConfig,
) -> anyhow::Result<()> {
    let problems = production_problems(config, Some(integrations), Some(console))?;
    if env == HubEnv::Production {
        enforce(env, problems, false)?;
        println!("HUB_ENV=production: the settings pass the check");
        return Ok(());
    }
    let defaults: Vec<&Problem> = problems.iter().filter(|p| p.dev_default).collect();
    println!(
        "HUB_ENV=development: {} development default{} in use (HUB_ENV=production would refuse {} setting{}):",
        defaults.len(),
        if defaults.len() == 1 { "" } else { "s" },
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for p in &problems {
        println!("  {p}");
    }
    Ok(())
}

/// `hub migrate`: every crate's migrations, in one order.
async fn migrate(config: &HubConfig) -> anyhow::Result<()> {
    let migrator = crate::migrator()?;
    let pool = store::connect(&config.database_url, 1, &migrator).await?;
    let applied = migrator.iter().count();
    pool.close().await;
    println!("database is at the latest schema ({applied} migrations)");
    Ok(())
}

/// `hub topology`: declares (or only prints) the namespace's topology, or prints the
/// agencies' broker users.
async fn topology(
    config: &HubConfig,
    integrations: &IntegrationConfig,
    build: &dyn Fn() -> anyhow::Result<Plan>,
    args: TopologyArgs,
) -> anyhow::Result<()> {
    let TopologyArgs {
        dry_run,
        agency_users,
        desks: _,
        json,
    } = args;
    if agency_users {
        let catalogue = hub_portal::procedures::catalogue::Catalogue::embedded()?;
        let vhost = broker::vhost(&config.amqp_url);
        let parties = hub_portal::parties::Parties::declare(
            &integrations.portal_user,
            &integrations.desks,
            &catalogue,
        )
        .map_err(|e| {
            anyhow::anyhow!("the parties on the bus (--desks, HUB_DESKS, HUB_PORTAL_USER): {e}")
        })?;
        let desks: Vec<String> = parties.desks().map(str::to_owned).collect();
        let commands =
            hub_portal::agency::portal_rabbitmqctl_commands(parties.portal_user(), &vhost)
                .into_iter()
                .chain(hub_portal::agency::desk_rabbitmqctl_commands(
                    &desks, &vhost,
                ))
                .chain(hub_portal::agency::rabbitmqctl_commands(&catalogue, &vhost));
        for command in commands {
            let words: Vec<String> = command.iter().map(|w| shell_quote(w)).collect();
            println!("rabbitmqctl {}", words.join(" "));
        }
        return Ok(());
    }
    // Every queue of the plan, the ones others consume (authorities') too.
    let queues = build()?.queues();
    let topology = app::topology(config, queues)?;
    if !dry_run {
        let token = CancellationToken::new();
        let tls = config.broker_tls()?;
        let broker =
            Broker::connect_with_tls(&config.amqp_url, &tls, "hub topology", token.clone()).await?;
        let channel = broker
            .channel(&token)
            .await
            .context("broker connection closed")?;
        broker::declare(&channel, &topology, config.delivery_limit)
            .await
            .context("declaring the topology failed")?;
        let _ = channel.close(200, "topology declared".into()).await;
        broker.close().await;
        token.cancel();
    }
    let plan = broker::topology::describe(&topology, config.delivery_limit);
    if json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
    } else {
        print!("{}", broker::topology::table(&plan));
        if !dry_run {
            println!("declared on {}", mask_url(&config.amqp_url));
        }
    }
    Ok(())
}

/// A word as a POSIX shell reads it back: bare when it is plain, else in single quotes.
fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

async fn cancel_on_signal(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
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
    tracing::info!("signal received");
    token.cancel();
}
