//! `hub dlq`: the workbench on a terminal. Parsing (clap) and presentation (tables, JSON,
//! the progress bar) only; the work is in [`super`].
//!
//! Exit codes: 0 done, 1 failed, 2 bad usage, 3 nothing matched, 69 RabbitMQ or PostgreSQL
//! unreachable, 77 not allowed (`--unmask` without `HUB_OPS_UNMASK=1`).

use std::io::IsTerminal;

use base64::Engine as _;

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use tokio_util::sync::CancellationToken;

use super::{
    DeadLetterKind, Disclosure, DlqError, Filter, Group, LetterView, ReplayOptions, Selection,
    StatusFilter, Summary, UNMASK_VAR,
};
use crate::audit;
use hub_runtime::broker::{self, Broker, Publisher};
use hub_runtime::config::HubConfig;
use sqlx::migrate::Migrator;

/// `hub dlq ...`.
#[derive(Debug, Args)]
pub struct DlqArgs {
    #[command(subcommand)]
    command: DlqCommand,
}

/// Which letters: every condition given must hold.
#[derive(Debug, Clone, Default, Args)]
struct FilterArgs {
    /// Queue they died on, short (`saga.issuance`, `unrouted`) or full name.
    #[arg(long)]
    queue: Option<String>,
    /// Message type, exact or with `*` (`procedure.*`).
    #[arg(long = "type", value_name = "TYPE")]
    message_type: Option<String>,
    /// Error kind: invalid_input, permanent, retries_exhausted, handler_panicked, unrouted,
    /// delivery_limit, rejected, unknown.
    #[arg(long)]
    kind: Option<String>,
    /// Correlation id: the saga they belong to.
    #[arg(long, value_name = "ID")]
    saga: Option<String>,
    /// Failed at or after: an age (30m, 1h, 2d) or an RFC 3339 time.
    #[arg(long, value_name = "WHEN", value_parser = parse_when)]
    since: Option<DateTime<Utc>>,
    /// Failed before: an age or an RFC 3339 time.
    #[arg(long, value_name = "WHEN", value_parser = parse_when)]
    until: Option<DateTime<Utc>>,
}

#[derive(Debug, Subcommand)]
enum DlqCommand {
    /// List dead letters, newest first, or their causes with `--group`. Exit 3 when none
    /// matches.
    #[command(
        after_help = "Examples:\n  hub dlq list\n  hub dlq list --queue saga.issuance --since 1h\n  \
                            hub dlq list --group --status all\n  \
                            hub dlq list --kind unrouted --json"
    )]
    List(ListArgs),
    /// Show one dead letter: properties, headers, body (pretty when JSON). Personal data is
    /// masked; `--unmask` shows it in the clear, for operators with HUB_OPS_UNMASK=1, and is
    /// audited.
    #[command(
        after_help = "Examples:\n  hub dlq show 42\n  hub dlq show 42 --json\n  \
                            HUB_OPS_UNMASK=1 hub dlq show 42 --unmask --operator ivanova"
    )]
    Show(ShowArgs),
    /// Re-publish letters to their original exchange and routing key, with their original
    /// message id, at a bounded rate; mark them replayed and audit the run. By group or filter,
    /// only `new` letters are taken, and letters whose message already failed again after a
    /// replay are left alone unless `--include-replayed`.
    #[command(after_help = "Examples:\n  hub dlq replay 42 43\n  \
                            hub dlq replay --group 3f9c0a1b2c4d --reason \"MVD is back\"\n  \
                            hub dlq replay --queue saga.issuance --since 2h --rate 5 --dry-run\n  \
                            hub dlq replay --all --rate 20 --operator ivanova")]
    Replay(ReplayArgs),
    /// Mark letters discarded, with a reason (required); audited. By group or filter, only
    /// `new` letters are taken.
    #[command(
        after_help = "Examples:\n  hub dlq discard 42 --reason \"duplicate of 41\"\n  \
                            hub dlq discard --group 3f9c0a1b2c4d --reason \"test traffic\"\n  \
                            hub dlq discard --kind unrouted --until 7d --reason \"old\""
    )]
    Discard(DiscardArgs),
    /// Write letters as JSON lines to stdout, oldest first: the body as base64 (`body`) and,
    /// when it is JSON, as `body_json`. Masked unless `--unmask` (HUB_OPS_UNMASK=1; audited).
    #[command(after_help = "Examples:\n  hub dlq export > dead-letters.jsonl\n  \
                            hub dlq export --queue saga.procedure --status all --since 7d\n  \
                            HUB_OPS_UNMASK=1 hub dlq export --saga 5d0c... --unmask")]
    Export(ExportArgs),
}

/// `hub dlq list`.
#[derive(Debug, Args)]
struct ListArgs {
    #[command(flatten)]
    filter: FilterArgs,
    /// Status.
    #[arg(long, value_enum, default_value_t)]
    status: StatusFilter,
    /// Group by cause (queue, type, kind, error text without ids and numbers), with counts
    /// and the oldest and newest failure; the KEY column is what `--group` of replay and
    /// discard takes.
    #[arg(long)]
    group: bool,
    /// At most this many letters.
    #[arg(long, default_value_t = 100)]
    limit: i64,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// `hub dlq show`.
#[derive(Debug, Args)]
struct ShowArgs {
    /// The letter's id (first column of `list`).
    id: i64,
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

/// Which letters a replay or discard takes.
#[derive(Debug, Args)]
struct SelectionArgs {
    /// Letters by id.
    ids: Vec<i64>,
    /// The `new` letters of this cause (the KEY of `list --group`).
    #[arg(long, value_name = "KEY")]
    group: Option<String>,
    /// Every `new` letter (when no id, group or filter is given).
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    filter: FilterArgs,
    /// At most this many letters (newest first).
    #[arg(long)]
    limit: Option<i64>,
}

/// `hub dlq replay`.
#[derive(Debug, Args)]
struct ReplayArgs {
    #[command(flatten)]
    which: SelectionArgs,
    /// Letters a second at most: `10`, `10/s`, `120/m`.
    #[arg(long, default_value = "10/s", value_parser = parse_rate)]
    rate: f64,
    /// List what would be replayed; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Also take letters whose message already failed again after a replay.
    #[arg(long)]
    include_replayed: bool,
    /// Why, for the audit trail.
    #[arg(long)]
    reason: Option<String>,
    /// Who you are, for the audit trail (default: $USER).
    #[arg(long)]
    operator: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `hub dlq discard`.
#[derive(Debug, Args)]
struct DiscardArgs {
    #[command(flatten)]
    which: SelectionArgs,
    /// Why (required).
    #[arg(long, value_name = "TEXT")]
    reason: String,
    /// Who you are, for the audit trail (default: $USER).
    #[arg(long)]
    operator: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `hub dlq export`.
#[derive(Debug, Args)]
struct ExportArgs {
    #[command(flatten)]
    filter: FilterArgs,
    /// Status.
    #[arg(long, value_enum, default_value_t)]
    status: StatusFilter,
    /// At most this many letters.
    #[arg(long)]
    limit: Option<i64>,
    /// Personal data in the clear (needs HUB_OPS_UNMASK=1; audited).
    #[arg(long)]
    unmask: bool,
    /// Who you are, for the audit trail (default: $USER).
    #[arg(long)]
    operator: Option<String>,
}

fn parse_when(s: &str) -> Result<DateTime<Utc>, String> {
    super::parse_when(s, Utc::now())
}

/// `10`, `10/s`, `120/m`, `3600/h`: letters a second.
fn parse_rate(s: &str) -> Result<f64, String> {
    let (n, per) = s.split_once('/').unwrap_or((s, "s"));
    let n: f64 = n
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a rate: write e.g. 10, 10/s or 120/m"))?;
    let seconds = match per.trim() {
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        other => return Err(format!("{s:?}: per {other:?}? use /s, /m or /h")),
    };
    let rate = n / seconds;
    if rate.is_finite() && rate > 0.0 {
        Ok(rate)
    } else {
        Err(format!("{s:?}: the rate must be above zero"))
    }
}

impl FilterArgs {
    /// The library's filter; a full queue name (`ns.Q`, `ns.Q.dead`) is cut to its short name.
    fn filter(&self, config: &HubConfig, status: StatusFilter, limit: Option<i64>) -> Filter {
        let prefix = format!("{}.", config.namespace);
        let queue = self.queue.as_deref().map(|q| {
            let q = q.strip_prefix(&prefix).unwrap_or(q);
            q.strip_suffix(".dead").unwrap_or(q).to_owned()
        });
        Filter {
            queue,
            message_type: self.message_type.clone(),
            kind: self.kind.as_deref().map(DeadLetterKind::from),
            saga: self.saga.clone(),
            since: self.since,
            until: self.until,
            status,
            limit,
        }
    }
}

fn selection(
    ids: Vec<i64>,
    group: Option<String>,
    all: bool,
    filter: Filter,
) -> Result<Selection, DlqError> {
    let narrowed = filter.is_narrowed() || filter.limit.is_some();
    match (ids.is_empty(), group) {
        (false, None) if !narrowed && !all => Ok(Selection::Ids(ids)),
        (false, _) => Err(DlqError::BadUsage(
            "give ids, or --group, or filters, not several of them".into(),
        )),
        (true, Some(key)) if !all => Ok(Selection::Group { key, filter }),
        (true, None) if narrowed || all => Ok(Selection::Filter(filter)),
        _ => Err(DlqError::BadUsage(
            "say which letters: ids, --group KEY (see `hub dlq list --group`), filters \
             (--queue, --type, --kind, --saga, --since, --until) or --all"
                .into(),
        )),
    }
}

fn check_unmask(unmask: bool) -> Result<(), DlqError> {
    if unmask && !super::unmask_allowed() {
        return Err(DlqError::NotAllowed(format!(
            "--unmask shows personal data in the clear: only operators allowed to see it may use \
             it, with {UNMASK_VAR}=1 in their environment (every use is audited)"
        )));
    }
    Ok(())
}

impl SelectionArgs {
    /// The selection these arguments name.
    ///
    /// Errors: none named, or several ways at once ([`DlqError::BadUsage`]).
    fn selection(&self, config: &HubConfig) -> Result<Selection, DlqError> {
        selection(
            self.ids.clone(),
            self.group.clone(),
            self.all,
            self.filter.filter(config, StatusFilter::New, self.limit),
        )
    }
}

/// Whether to show personal data: in the clear (audited) for this operator, or masked.
fn disclosure(unmask: bool, operator: &str) -> Disclosure<'_> {
    if unmask {
        Disclosure::Unmasked { operator }
    } else {
        Disclosure::Masked
    }
}

/// Runs `hub dlq ...`. Errors carry their exit code: [`DlqError::exit_code`], or the CLI's
/// own for an unreachable broker or database.
pub async fn run(config: &HubConfig, migrator: &Migrator, args: DlqArgs) -> anyhow::Result<()> {
    let broker_user = broker::broker_user(&config.amqp_url);
    // Usage is checked before connecting, so a mistake is reported as one even when the
    // database is down.
    match &args.command {
        DlqCommand::Show(ShowArgs { unmask, .. })
        | DlqCommand::Export(ExportArgs { unmask, .. }) => check_unmask(*unmask)?,
        DlqCommand::Discard(d) if d.reason.trim().is_empty() => {
            return Err(DlqError::BadUsage(
                "say why the letters are discarded: --reason TEXT".into(),
            )
            .into());
        }
        _ => {}
    }
    if let DlqCommand::Replay(ReplayArgs { which, .. })
    | DlqCommand::Discard(DiscardArgs { which, .. }) = &args.command
    {
        which.selection(config)?;
    }
    let pool = hub_runtime::store::connect(&config.database_url, 2, migrator).await?;
    let result = execute(config, &pool, &broker_user, args.command).await;
    pool.close().await;
    result
}

async fn execute(
    config: &HubConfig,
    pool: &sqlx::PgPool,
    broker_user: &str,
    command: DlqCommand,
) -> anyhow::Result<()> {
    match command {
        DlqCommand::List(args) => list(config, pool, args).await,
        DlqCommand::Show(args) => show(pool, broker_user, args).await,
        DlqCommand::Replay(args) => replay(config, pool, broker_user, args).await,
        DlqCommand::Discard(args) => discard(config, pool, args).await,
        DlqCommand::Export(args) => export(config, pool, broker_user, args).await,
    }
}

/// `hub dlq list`: the letters, or their causes.
async fn list(config: &HubConfig, pool: &sqlx::PgPool, args: ListArgs) -> anyhow::Result<()> {
    let ListArgs {
        filter,
        status,
        group,
        limit,
        json,
    } = args;
    if group {
        let filter = filter.filter(config, status, None);
        let groups = super::groups(pool, &filter).await?;
        if groups.is_empty() {
            return Err(DlqError::NothingMatched(filter.describe()).into());
        }
        if json {
            println!("{}", serde_json::to_string_pretty(&groups)?);
        } else {
            print!("{}", groups_table(&groups, Utc::now()));
        }
        return Ok(());
    }
    let filter = filter.filter(config, status, Some(limit));
    let rows = super::list(pool, &filter).await?;
    if rows.is_empty() {
        return Err(DlqError::NothingMatched(filter.describe()).into());
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", list_table(&rows, Utc::now()));
        let total = super::count(pool, &filter).await?;
        if total > rows.len() as i64 {
            println!(
                "{} of {total} shown (newest first); --limit shows more",
                rows.len()
            );
        }
    }
    Ok(())
}

/// `hub dlq show`: one letter.
async fn show(pool: &sqlx::PgPool, broker_user: &str, args: ShowArgs) -> anyhow::Result<()> {
    let operator = audit::cli_operator(args.operator.as_deref());
    let disclosure = disclosure(args.unmask, &operator);
    let view = super::show(pool, args.id, disclosure, broker_user).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        print!("{}", show_text(&view));
    }
    if view.masked && std::io::stderr().is_terminal() {
        eprintln!(
            "personal data is masked; --unmask shows it (operators with {UNMASK_VAR}=1; audited)"
        );
    }
    Ok(())
}

/// `hub dlq replay`: a dry run's plan, or the replay through a publisher of its own.
async fn replay(
    config: &HubConfig,
    pool: &sqlx::PgPool,
    broker_user: &str,
    args: ReplayArgs,
) -> anyhow::Result<()> {
    let selection = args.which.selection(config)?;
    if args.dry_run {
        let plan = super::plan_replay(pool, broker_user, &selection, args.include_replayed).await?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&plan)?);
        } else {
            print!("{}", plan_text(&plan, args.rate));
        }
        return Ok(());
    }
    let options = ReplayOptions {
        rate: args.rate,
        operator: audit::cli_operator(args.operator.as_deref()),
        reason: args.reason,
        include_replayed: args.include_replayed,
    };
    let token = CancellationToken::new();
    let tls = config.broker_tls()?;
    let broker =
        Broker::connect_with_tls(&config.amqp_url, &tls, "hub dlq replay", token.clone()).await?;
    let publisher = Publisher::new(broker.clone(), token.clone());
    let bar = progress_bar(!args.json);
    let mut progress = |done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let report = super::replay(
        pool,
        &publisher,
        broker_user,
        &selection,
        &options,
        &mut progress,
    )
    .await;
    bar.finish_and_clear();
    broker.close().await;
    token.cancel();
    let report = report?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", replay_text(&report));
    }
    if !report.failed.is_empty() {
        anyhow::bail!(
            "{} of {} letters could not be replayed",
            report.failed.len(),
            report.failed.len() + report.replayed.len()
        );
    }
    if report.replayed.is_empty() {
        anyhow::bail!("nothing was replayed: none of the letters can be");
    }
    Ok(())
}

/// `hub dlq discard`.
async fn discard(config: &HubConfig, pool: &sqlx::PgPool, args: DiscardArgs) -> anyhow::Result<()> {
    let selection = args.which.selection(config)?;
    let operator = audit::cli_operator(args.operator.as_deref());
    let report = super::discard(pool, &selection, &args.reason, &operator).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "discarded {} dead letter{} ({}); audit #{}",
            report.discarded.len(),
            if report.discarded.len() == 1 { "" } else { "s" },
            report.selection,
            report.audit_id
        );
        for s in &report.skipped {
            println!("  #{} left alone: {}", s.id, s.reason);
        }
    }
    Ok(())
}

/// `hub dlq export`: JSON lines on stdout.
async fn export(
    config: &HubConfig,
    pool: &sqlx::PgPool,
    broker_user: &str,
    args: ExportArgs,
) -> anyhow::Result<()> {
    let operator = audit::cli_operator(args.operator.as_deref());
    let disclosure = disclosure(args.unmask, &operator);
    let filter = args.filter.filter(config, args.status, args.limit);
    let mut out = std::io::BufWriter::new(std::io::stdout());
    let n = super::export(pool, &filter, disclosure, broker_user, &mut out).await?;
    tracing::debug!(letters = n, "exported");
    Ok(())
}

fn progress_bar(wanted: bool) -> indicatif::ProgressBar {
    if !wanted || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(0);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bar:40} {pos}/{len} replayed, {per_sec}, {eta} left",
    ) {
        bar.set_style(style);
    }
    bar
}

/// How long ago, in one short word: `45s`, `12m`, `5h`, `3d`.
fn age(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let s = (now - t).num_seconds().max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..172_800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// `s` cut to `n` characters, with `…` when cut.
fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(n.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// Rows as columns padded to their widest cell (by characters, for Cyrillic text).
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i + 1 == widths.len() {
                out.push_str(cell);
            } else {
                out.push_str(cell);
                out.push_str(&" ".repeat(w - cell.chars().count() + 2));
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = line(&mut header.iter().copied());
    for r in rows {
        out.push_str(&line(&mut r.iter().map(String::as_str)));
    }
    out
}

fn list_table(rows: &[Summary], now: DateTime<Utc>) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.id.to_string(),
                age(r.failed_at, now),
                r.queue.clone(),
                r.message_type.clone().unwrap_or_else(|| "-".into()),
                r.error_kind.to_string(),
                short(&r.error, 50),
                short(r.correlation_id.as_deref().unwrap_or("-"), 36),
                r.flags().join("; "),
            ]
        })
        .collect();
    table(
        &[
            "ID", "AGE", "QUEUE", "TYPE", "KIND", "ERROR", "SAGA", "FLAGS",
        ],
        &cells,
    )
}

fn groups_table(groups: &[Group], now: DateTime<Utc>) -> String {
    let cells: Vec<Vec<String>> = groups
        .iter()
        .map(|g| {
            vec![
                g.key.clone(),
                g.count.to_string(),
                age(g.oldest, now),
                age(g.newest, now),
                g.queue.clone(),
                g.message_type.clone().unwrap_or_else(|| "-".into()),
                g.error_kind.to_string(),
                short(&g.cause, 60),
            ]
        })
        .collect();
    table(
        &[
            "KEY", "COUNT", "OLDEST", "NEWEST", "QUEUE", "TYPE", "KIND", "CAUSE",
        ],
        &cells,
    )
}

fn show_text(v: &LetterView) -> String {
    let l = &v.letter;
    let time = |t: Option<DateTime<Utc>>| t.map_or_else(|| "-".to_owned(), |t| t.to_rfc3339());
    let mut out = format!("dead letter #{} ({})\n", l.id, l.status);
    for flag in &v.flags {
        out.push_str(&format!("  ! {flag}\n"));
    }
    let mut field = |k: &str, val: String| out.push_str(&format!("{k:<14}{val}\n"));
    field(
        "message id",
        l.message_id.map_or_else(|| "-".into(), |m| m.to_string()),
    );
    field("type", l.message_type.clone().unwrap_or_else(|| "-".into()));
    field("queue", l.queue.clone());
    field(
        "published to",
        format!(
            "exchange {:?}, routing key {:?}",
            l.original_exchange, l.original_routing_key
        ),
    );
    field("kind", l.error_kind.to_string());
    field("error", l.error.clone());
    field("attempts", l.attempts.to_string());
    field("first failure", time(l.first_failure_at));
    field("last failure", time(l.last_failure_at));
    field(
        "saga",
        l.correlation_id.clone().unwrap_or_else(|| "-".into()),
    );
    field("kept", l.received_at.to_rfc3339());
    if l.replay_count > 0 {
        field(
            "replayed",
            format!("{} times, last {}", l.replay_count, time(l.replayed_at)),
        );
    }
    if let Some(reason) = &l.discard_reason {
        field(
            "discarded",
            format!("{} because {reason}", time(l.discarded_at)),
        );
    }
    field(
        "replayable",
        match &v.not_replayable {
            None => "yes".into(),
            Some(why) => format!("no: {why}"),
        },
    );
    out.push_str("properties\n");
    if let Some(props) = v.letter.properties.as_object() {
        for (k, val) in props.iter().filter(|(k, _)| k.as_str() != "headers") {
            out.push_str(&format!("  {k}: {}\n", plain(val)));
        }
    }
    out.push_str("headers\n");
    if let Some(h) = v
        .letter
        .properties
        .get("headers")
        .and_then(|h| h.as_object())
    {
        for (k, val) in h {
            out.push_str(&format!("  {k}: {}\n", plain(val)));
        }
    }
    out.push_str(&format!(
        "body ({} bytes{}{})\n",
        v.body_bytes,
        if v.redacted { ", redacted" } else { "" },
        if v.masked {
            ", personal data masked"
        } else {
            ""
        },
    ));
    match (&v.body_json, &v.body_text) {
        (Some(json), _) => {
            out.push_str(&serde_json::to_string_pretty(json).unwrap_or_default());
            out.push('\n');
        }
        (None, Some(text)) => {
            out.push_str(text);
            out.push('\n');
        }
        (None, None) => out.push_str(&format!(
            "(binary, base64) {}\n",
            base64::engine::general_purpose::STANDARD.encode(&v.letter.body)
        )),
    }
    out
}

/// A JSON value as text: strings bare, the rest as JSON.
fn plain(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn plan_text(plan: &super::ReplayPlan, rate: f64) -> String {
    let mut out = format!(
        "dry run: would replay {} dead letter{} ({}), {rate} a second; nothing was sent or changed\n",
        plan.replay.len(),
        if plan.replay.len() == 1 { "" } else { "s" },
        plan.selection
    );
    if !plan.replay.is_empty() {
        let cells: Vec<Vec<String>> = plan
            .replay
            .iter()
            .map(|p| {
                vec![
                    p.id.to_string(),
                    p.queue.clone(),
                    p.message_type.clone().unwrap_or_else(|| "-".into()),
                    p.exchange.clone(),
                    p.routing_key.clone(),
                    (p.replays_so_far + 1).to_string(),
                ]
            })
            .collect();
        out.push_str(&table(
            &["ID", "QUEUE", "TYPE", "EXCHANGE", "ROUTING KEY", "REPLAY #"],
            &cells,
        ));
    }
    for s in &plan.skipped {
        out.push_str(&format!("  #{} left alone: {}\n", s.id, s.reason));
    }
    out
}

fn replay_text(r: &super::ReplayReport) -> String {
    let mut out = format!(
        "replayed {} dead letter{} ({}) in {:.1} s at most {} a second; audit #{}\n",
        r.replayed.len(),
        if r.replayed.len() == 1 { "" } else { "s" },
        r.selection,
        r.elapsed_ms as f64 / 1000.0,
        r.rate,
        r.audit_id
    );
    for s in &r.skipped {
        out.push_str(&format!("  #{} left alone: {}\n", s.id, s.reason));
    }
    for s in &r.failed {
        out.push_str(&format!("  #{} failed: {}\n", s.id, s.reason));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_per_second_minute_or_hour() {
        assert_eq!(parse_rate("10"), Ok(10.0));
        assert_eq!(parse_rate("5/s"), Ok(5.0));
        assert_eq!(parse_rate("120/m"), Ok(2.0));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("3/d").is_err());
        assert_eq!(crate::dlq::DEFAULT_RATE, 10.0);
    }

    #[test]
    fn a_selection_is_ids_a_group_or_a_filter_never_nothing() {
        let narrowed = Filter {
            queue: Some("q".into()),
            ..Filter::default()
        };
        assert_eq!(
            selection(vec![1, 2], None, false, Filter::default()).ok(),
            Some(Selection::Ids(vec![1, 2]))
        );
        assert!(selection(vec![1], Some("k".into()), false, Filter::default()).is_err());
        assert!(selection(vec![1], None, false, narrowed.clone()).is_err());
        assert!(matches!(
            selection(vec![], Some("k".into()), false, narrowed.clone()),
            Ok(Selection::Group { .. })
        ));
        assert!(matches!(
            selection(vec![], None, false, narrowed),
            Ok(Selection::Filter(_))
        ));
        assert!(matches!(
            selection(vec![], None, true, Filter::default()),
            Ok(Selection::Filter(_))
        ));
        let err = selection(vec![], None, false, Filter::default()).expect_err("nothing");
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn tables_align_by_characters() {
        let t = table(
            &["A", "B"],
            &[
                vec!["Иванова".into(), "x".into()],
                vec!["1".into(), "y".into()],
            ],
        );
        assert_eq!(t, "A        B\nИванова  x\n1        y\n");
        let now = Utc::now();
        assert_eq!(age(now - chrono::Duration::seconds(90), now), "1m");
        assert_eq!(age(now - chrono::Duration::hours(50), now), "2d");
        assert_eq!(short("abcdef", 4), "abc…");
    }
}
