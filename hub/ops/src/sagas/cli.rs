//! `hub saga`: saga inspection and repair on a terminal. Parsing (clap) and presentation
//! (tables, JSON) only; the work is in [`super`].
//!
//! Exit codes: 0 done, 1 failed or refused (an ended saga), 2 bad usage, 3 nothing found or
//! several found, 69 PostgreSQL unreachable, 77 not allowed (`--unmask` without
//! `HUB_OPS_UNMASK=1`).

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use sqlx::PgPool;

use super::{
    CancelReport, ListFilter, OperatorRequest, RetryReport, SagaDetail, SagaOpsError, SagaSummary,
    age_text,
};
use crate::audit;
use crate::dlq::{Disclosure, UNMASK_VAR, unmask_allowed};
use hub_runtime::app::Plan;
use hub_runtime::app::{self, HubContext};
use hub_runtime::broker;
use hub_runtime::config::HubConfig;
use sqlx::migrate::Migrator;

/// `hub saga ...`.
#[derive(Debug, Args)]
pub struct SagaArgs {
    #[command(subcommand)]
    command: SagaCommand,
}

#[derive(Debug, Subcommand)]
enum SagaCommand {
    /// List sagas, the most recently changed first (the longest stuck first with
    /// `--stuck-longer-than`). Business keys that are identification numbers are masked. Exit 3
    /// when none matches.
    #[command(after_help = "Examples:\n  hub saga list\n  \
                            hub saga list --type procedure --state at_authority\n  \
                            hub saga list --stuck-longer-than 10m\n  \
                            hub saga list --terminal --older-than 7d --limit 500 --json")]
    List(ListArgs),
    /// Show one saga: its state (personal data masked), the timeline of every message in and
    /// out, pending timers, and the dead letters it caused. TARGET is the saga id, its business
    /// key, or a value in its state: an identification number, an application number, an ERIP
    /// order number, an application id. When several sagas match they are listed (exit 3).
    #[command(
        after_help = "Examples:\n  hub saga show 5d0c2a8e-0b1f-5c57-9d0e-2f1a7c3b9e41\n  \
                            hub saga show minsk-desk-1/A-17\n  \
                            hub saga show 123456789012345678901234567890\n  \
                            HUB_OPS_UNMASK=1 hub saga show 3270287A012PB2 --unmask --operator ivanova"
    )]
    Show(ShowArgs),
    /// Send the messages of a stuck saga's last step again, with their original message ids:
    /// a receiver that handled one already drops it, one that lost it (dead-lettered, never
    /// received) handles it now. The running hub's relay publishes them. Audited. Refuses a
    /// saga that has ended (exit 1).
    #[command(
        after_help = "Examples:\n  hub saga retry-step 5d0c2a8e-0b1f-5c57-9d0e-2f1a7c3b9e41\n  \
                            hub saga retry-step minsk-desk-1/A-17 --reason \"MVD is back\" --operator ivanova"
    )]
    RetryStep(RetryStepArgs),
    /// End a stuck saga with the compensations its type defines (a procedure application:
    /// the invoice cancelled or the refund due, the authority told, `cancelled`; an identifier
    /// application: the reservation released, rejected as `cancelled_by_operator`). The running
    /// hub delivers the cancel to the saga's own queue. Audited. Refuses a saga that has ended
    /// or cannot be cancelled (exit 1).
    #[command(
        after_help = "Examples:\n  hub saga cancel 5d0c2a8e-0b1f-5c57-9d0e-2f1a7c3b9e41 --reason \"authority closed\"\n  \
                            hub saga cancel minsk-desk-1/A-17 --reason \"MVD outage, desk asked\" --wait 30s"
    )]
    Cancel(CancelArgs),
}

/// `hub saga list`.
#[derive(Debug, Args)]
struct ListArgs {
    /// Saga type (`issuance`, `account`, `procedure`, `complaint`).
    #[arg(long = "type", value_name = "TYPE")]
    saga_type: Option<String>,
    /// State name (`reconciling`, `awaiting_payment`, `cancelled`, ...).
    #[arg(long)]
    state: Option<String>,
    /// Started longer ago than this (`30s`, `10m`, `2h`, `7d`).
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    older_than: Option<chrono::Duration>,
    /// Not ended, and no step for longer than this.
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    stuck_longer_than: Option<chrono::Duration>,
    /// Only ended sagas.
    #[arg(long, conflicts_with = "active")]
    terminal: bool,
    /// Only sagas that have not ended.
    #[arg(long)]
    active: bool,
    /// At most this many.
    #[arg(long, default_value_t = 50)]
    limit: i64,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// `hub saga show`.
#[derive(Debug, Args)]
struct ShowArgs {
    /// Saga id, business key, or a value in the state.
    target: String,
    /// Show personal data in the clear (needs HUB_OPS_UNMASK=1; audited).
    #[arg(long)]
    unmask: bool,
    /// Who you are, for the audit trail (default: $USER).
    #[arg(long)]
    operator: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `hub saga retry-step`.
#[derive(Debug, Args)]
struct RetryStepArgs {
    /// Saga id, business key, or a value in the state.
    target: String,
    /// Why, for the audit trail.
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
    /// Who you are, for the audit trail (default: $USER).
    #[arg(long)]
    operator: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `hub saga cancel`.
#[derive(Debug, Args)]
struct CancelArgs {
    /// Saga id, business key, or a value in the state.
    target: String,
    /// Why (required): the agency that started the saga sees it.
    #[arg(long, value_name = "TEXT")]
    reason: String,
    /// Who you are, for the audit trail (default: $USER).
    #[arg(long)]
    operator: Option<String>,
    /// Wait this long for the saga to end (exit 1 if it does not).
    #[arg(long, value_name = "AGE", value_parser = parse_wait)]
    wait: Option<Duration>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `30s`, `10m`, `2h`, `7d`, `1w`.
fn parse_age(s: &str) -> Result<chrono::Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: i64 = n
        .parse()
        .map_err(|_| format!("{s:?} is not an age: write a number and a unit, e.g. 10m"))?;
    match unit {
        "s" => chrono::Duration::try_seconds(n),
        "m" => chrono::Duration::try_minutes(n),
        "h" => chrono::Duration::try_hours(n),
        "d" => chrono::Duration::try_days(n),
        "w" => chrono::Duration::try_weeks(n),
        _ => None,
    }
    .ok_or_else(|| format!("{s:?}: use s, m, h, d or w after the number, e.g. 10m"))
}

fn parse_wait(s: &str) -> Result<Duration, String> {
    parse_age(s)?
        .to_std()
        .map_err(|_| format!("{s:?} must not be negative"))
}

/// Builds the hub's plan (what `hub run` would run), for the saga types a cancel needs.
pub type PlanBuilder<'a> = &'a dyn Fn() -> anyhow::Result<Plan>;

/// Runs `hub saga ...` against the database `migrator` brings up to date. Errors carry their
/// exit code ([`SagaOpsError::exit_code`]), or the CLI's own for an unreachable database.
pub async fn run(
    config: &HubConfig,
    migrator: &Migrator,
    build: PlanBuilder<'_>,
    args: SagaArgs,
) -> anyhow::Result<()> {
    // Usage is checked before connecting, so a mistake is reported as one even when the
    // database is down.
    if let SagaCommand::Show(ShowArgs { unmask: true, .. }) = &args.command
        && !unmask_allowed()
    {
        return Err(SagaOpsError::NotAllowed(format!(
            "--unmask shows personal data in the clear: only operators allowed to see it may use \
             it, with {UNMASK_VAR}=1 in their environment (every use is audited)"
        ))
        .into());
    }
    let pool = hub_runtime::store::connect(&config.database_url, 2, migrator).await?;
    let result = execute(config, build, &pool, args.command).await;
    pool.close().await;
    result
}

async fn execute(
    config: &HubConfig,
    build: PlanBuilder<'_>,
    pool: &PgPool,
    command: SagaCommand,
) -> anyhow::Result<()> {
    match command {
        SagaCommand::List(args) => list(pool, args).await,
        SagaCommand::Show(args) => show(pool, args).await,
        SagaCommand::RetryStep(args) => retry_step(pool, args).await,
        SagaCommand::Cancel(args) => cancel(config, build, pool, args).await,
    }
}

/// `hub saga list`.
async fn list(pool: &PgPool, args: ListArgs) -> anyhow::Result<()> {
    let filter = ListFilter {
        saga_type: args.saga_type,
        state: args.state,
        older_than: args.older_than,
        stuck_longer_than: args.stuck_longer_than,
        terminal: match (args.terminal, args.active) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        },
        limit: args.limit,
    };
    let rows = super::list(pool, &filter).await?;
    if rows.is_empty() {
        return Err(SagaOpsError::NotFound(filter.describe()).into());
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", list_table(&rows, Utc::now()));
        let total = super::count(pool, &filter).await?;
        if total > rows.len() as i64 {
            println!("{} of {total} shown; --limit shows more", rows.len());
        }
    }
    Ok(())
}

/// `hub saga show`.
async fn show(pool: &PgPool, args: ShowArgs) -> anyhow::Result<()> {
    let saga = one(pool, &args.target, args.json).await?;
    let operator = audit::cli_operator(args.operator.as_deref());
    let disclosure = if args.unmask {
        Disclosure::Unmasked {
            operator: &operator,
        }
    } else {
        Disclosure::Masked
    };
    let detail = super::show(pool, saga.id, disclosure).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&detail)?);
    } else {
        print!("{}", detail_text(&detail, Utc::now()));
    }
    if detail.masked && std::io::stderr().is_terminal() {
        eprintln!(
            "personal data is masked; --unmask shows it (operators with {UNMASK_VAR}=1; audited)"
        );
    }
    Ok(())
}

/// `hub saga retry-step`.
async fn retry_step(pool: &PgPool, args: RetryStepArgs) -> anyhow::Result<()> {
    let saga = one(pool, &args.target, args.json).await?;
    let request = OperatorRequest {
        operator: audit::cli_operator(args.operator.as_deref()),
        reason: args.reason,
    };
    let report = super::retry_step(pool, saga.id, &request).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", retry_text(&report));
    }
    Ok(())
}

/// `hub saga cancel`: queues the cancel, then waits for the saga to end when asked to.
async fn cancel(
    config: &HubConfig,
    build: PlanBuilder<'_>,
    pool: &PgPool,
    args: CancelArgs,
) -> anyhow::Result<()> {
    if args.reason.trim().is_empty() {
        anyhow::bail!(SagaOpsError::Refused(
            "say why the saga is cancelled: --reason TEXT".into()
        ));
    }
    let saga = one(pool, &args.target, args.json).await?;
    let plan = build()?;
    let ctx = HubContext {
        pool: pool.clone(),
        topology: Arc::new(app::topology(config, plan.queues())?),
        app_id: "hub saga cancel".into(),
        broker_user: broker::broker_user(&config.amqp_url),
        batch: config.batch,
    };
    let sagas = plan.saga_types(&ctx);
    let request = OperatorRequest {
        operator: audit::cli_operator(args.operator.as_deref()),
        reason: Some(args.reason),
    };
    let report = super::cancel(pool, &sagas, saga.id, &request, &ctx.app_id).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", cancel_text(&report));
    }
    let Some(wait) = args.wait else {
        return Ok(());
    };
    match wait_until_ended(pool, saga.id, wait).await? {
        Some(state) if !args.json => println!("saga {} ended: {state}", saga.id),
        Some(_) => {}
        None => anyhow::bail!(SagaOpsError::Refused(format!(
            "saga {} has not ended within {}: is the hub running? (the cancel waits in \
             the outbox until its relay publishes it)",
            saga.id,
            age_text(chrono::Duration::from_std(wait).unwrap_or_default())
        ))),
    }
    Ok(())
}

fn cancel_text(report: &CancelReport) -> String {
    format!(
        "cancel of saga {} ({}, {}) queued to {} as message {} (audit #{})\nit will end as {}, sending {}\n",
        report.saga_id,
        report.saga_type,
        report.from_state,
        report.queue,
        report.message_id,
        report.audit_id,
        report.preview.to_state,
        if report.preview.sends.is_empty() {
            "nothing".to_owned()
        } else {
            report.preview.sends.join(", ")
        }
    )
}

/// The one saga `target` names; when several match they are printed before the error.
async fn one(pool: &PgPool, target: &str, json: bool) -> Result<SagaSummary, SagaOpsError> {
    match super::find_one(pool, target).await {
        Err(SagaOpsError::Ambiguous { target, matches }) => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&matches).unwrap_or_default()
                );
            } else {
                print!("{}", list_table(&matches, Utc::now()));
            }
            Err(SagaOpsError::Ambiguous { target, matches })
        }
        other => other,
    }
}

/// The state of saga `id` once it has ended, or `None` after `wait`.
async fn wait_until_ended(
    pool: &PgPool,
    id: uuid::Uuid,
    wait: Duration,
) -> Result<Option<String>, SagaOpsError> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let (terminal, state): (bool, String) =
            sqlx::query_as("SELECT terminal, state_name FROM sagas WHERE id = $1")
                .bind(id)
                .fetch_one(pool)
                .await?;
        if terminal {
            return Ok(Some(state));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Aligned columns: each as wide as its widest cell.
fn columns(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = line(header.iter().map(|h| (*h).to_owned()).collect());
    for row in rows {
        out.push_str(&line(row.clone()));
    }
    out
}

/// The list as an aligned table.
pub fn list_table(rows: &[SagaSummary], now: DateTime<Utc>) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|s| {
            vec![
                s.id.to_string(),
                s.saga_type.clone(),
                s.business_key.clone().unwrap_or_else(|| "-".into()),
                s.state_name.clone(),
                age_text(now - s.created_at),
                format!("{} ago", age_text(now - s.updated_at)),
                if s.terminal { "yes" } else { "no" }.into(),
            ]
        })
        .collect();
    columns(
        &[
            "ID",
            "TYPE",
            "BUSINESS KEY",
            "STATE",
            "AGE",
            "LAST UPDATE",
            "TERMINAL",
        ],
        &cells,
    )
}

fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.3f").to_string()
}

/// Where a message goes: `exchange/routing key` (`(default)` is the default exchange, which
/// puts it straight into the queue named by the key).
fn destination(exchange: &str, routing_key: &str) -> String {
    let exchange = if exchange.is_empty() {
        "(default)"
    } else {
        exchange
    };
    format!("{exchange}/{routing_key}")
}

/// One saga for a terminal.
pub fn detail_text(d: &SagaDetail, now: DateTime<Utc>) -> String {
    let s = &d.saga;
    let mut out = String::new();
    out.push_str(&format!("saga      {} ({})\n", s.id, s.saga_type));
    out.push_str(&format!(
        "key       {}\n",
        s.business_key.as_deref().unwrap_or("-")
    ));
    out.push_str(&format!(
        "state     {} ({}, {} step{})\n",
        s.state_name,
        if s.terminal { "ended" } else { "active" },
        s.version,
        if s.version == 1 { "" } else { "s" }
    ));
    out.push_str(&format!(
        "started   {} UTC ({} ago)\n",
        time(s.created_at),
        age_text(now - s.created_at)
    ));
    out.push_str(&format!(
        "updated   {} UTC ({} ago)\n",
        time(s.updated_at),
        age_text(now - s.updated_at)
    ));
    out.push_str(if d.masked {
        "\nstate (personal data masked):\n"
    } else {
        "\nstate (UNMASKED):\n"
    });
    let state = serde_json::to_string_pretty(&d.state).unwrap_or_default();
    for line in state.lines() {
        out.push_str(&format!("  {line}\n"));
    }
    out.push_str("\ntimeline:\n");
    for step in &d.timeline {
        out.push_str(&format!(
            "  v{:<3} {}  in  {} ({})  {} -> {}\n",
            step.version,
            time(step.at),
            step.message_type,
            step.message_id,
            step.from_state.as_deref().unwrap_or("(new)"),
            step.to_state
        ));
        for m in &step.outgoing {
            let to = match (&m.exchange, &m.routing_key) {
                (Some(x), Some(k)) => destination(x, k),
                _ => "?".into(),
            };
            let status = match m.status {
                "sent" => format!("sent {}", m.sent_at.map(time).unwrap_or_default()),
                "pending" => match &m.last_error {
                    Some(e) => format!("pending ({} attempts; {e})", m.attempts),
                    None => "pending".into(),
                },
                other => format!("{other} (not in the outbox any more)"),
            };
            let dead = m
                .dead_letter_id
                .map(|id| format!("  dead letter #{id}"))
                .unwrap_or_default();
            out.push_str(&format!(
                "        out {}  to {to}  {status}{dead}  ({})\n",
                m.message_type.as_deref().unwrap_or("?"),
                m.message_id
            ));
        }
    }
    out.push_str("\npending timers:\n");
    if d.timers.is_empty() {
        out.push_str("  none\n");
    }
    for t in &d.timers {
        let when = if t.due_at > now {
            format!("in {}", age_text(t.due_at - now))
        } else {
            format!("{} overdue", age_text(now - t.due_at))
        };
        out.push_str(&format!(
            "  {}  due {} UTC ({when})  fires {}\n",
            t.name,
            time(t.due_at),
            t.message_type.as_deref().unwrap_or("?")
        ));
    }
    out.push_str("\ndead letters:\n");
    if d.dead_letters.is_empty() {
        out.push_str("  none\n");
    }
    for l in &d.dead_letters {
        out.push_str(&format!(
            "  #{}  {}  on {}  {}  {}  {}\n",
            l.id,
            l.message_type.as_deref().unwrap_or("?"),
            l.queue,
            l.error_kind,
            l.status,
            l.error
        ));
    }
    out
}

fn retry_text(r: &RetryReport) -> String {
    let mut out = format!(
        "saga {} ({}): the messages of step v{} ({}) go out again (audit #{})\n",
        r.saga_id, r.state, r.version, r.step_message_type, r.audit_id
    );
    for m in &r.messages {
        out.push_str(&format!(
            "  {:<9} {}  {}\n",
            m.action,
            m.message_type.as_deref().unwrap_or("?"),
            m.message_id
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_parse_in_every_unit_and_refuse_the_rest() {
        assert_eq!(parse_age("10m"), Ok(chrono::Duration::minutes(10)));
        assert_eq!(parse_age("7d"), Ok(chrono::Duration::days(7)));
        assert_eq!(parse_age("45s"), Ok(chrono::Duration::seconds(45)));
        assert!(parse_age("10").is_err());
        assert!(parse_age("m").is_err());
        assert!(parse_age("3y").is_err());
    }

    #[test]
    fn the_list_is_an_aligned_table() {
        let now = Utc::now();
        let row = |key: &str, state: &str| SagaSummary {
            id: uuid::Uuid::nil(),
            saga_type: "procedure".into(),
            business_key: Some(key.into()),
            state_name: state.into(),
            terminal: false,
            version: 3,
            created_at: now - chrono::Duration::minutes(12),
            updated_at: now - chrono::Duration::seconds(30),
        };
        let table = list_table(&[row("a", "at_authority"), row("longer-key", "x")], now);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        let state_at = lines[0].find("STATE").expect("header");
        assert_eq!(lines[1].find("at_authority"), Some(state_at));
        assert!(lines[1].contains("12m") && lines[1].contains("30s ago"));
        assert!(lines[1].ends_with("no"));
    }
}
