//! The invariant checker: after the load and the faults, it reads the database, the
//! simulators' records and the queues, and says with counts whether the promises held:
//!
//! - every saga ended (terminal) once the system settled;
//! - no effect twice: SMS per intent, invoice per application, decision per application,
//!   account per identifier, event per application;
//! - no message lost: every outbox row published, every queue drained, no dead letter;
//! - no code or password in clear text in a log line, a table row, a dead letter or a queued
//!   message (as a string or as a number), and no full identification number or phone number
//!   (in any of its spellings) in a log line;
//! - every log it was given was read: a missing, unreadable or non-UTF-8 log is a violation,
//!   never a skip.
//!
//! Each invariant is counted from the data, not from what the schema should prevent (a second
//! account of one identifier is counted even though the primary key forbids it), and the tests
//! below plant each violation and see it reported.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

use anyhow::Context;
use contracts::person::Msisdn;
use futures_util::StreamExt;
use hub_portal::external::sms::worker::PhoneLimits;
use lapin::options::{BasicGetOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use serde::Serialize;
use sqlx::PgPool;

use crate::stage::Stage;

/// What the journeys used that must not show in clear text.
#[derive(Debug, Default, Clone)]
pub struct Needles {
    /// Phone codes, temporary and chosen passwords: nowhere in clear text.
    pub secrets: Vec<String>,
    /// Identification numbers and phone numbers: not in a log line (logs mask them).
    pub personal: Vec<String>,
}

/// One count the checker took, and whether it breaks an invariant.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was counted.
    pub name: String,
    /// The count.
    pub count: u64,
    /// True when the count is an invariant's (it must be zero).
    pub invariant: bool,
    /// True when the count breaks an invariant.
    pub violation: bool,
    /// What was found, where it helps (never the secret itself).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
}

impl Check {
    fn info(name: &str, count: u64) -> Self {
        Self {
            name: name.into(),
            count,
            invariant: false,
            violation: false,
            details: Vec::new(),
        }
    }

    /// A count that must be zero.
    fn zero(name: &str, count: u64, details: Vec<String>) -> Self {
        Self {
            name: name.into(),
            count,
            invariant: true,
            violation: count > 0,
            details: details.into_iter().take(10).collect(),
        }
    }
}

/// Everything the checker reads, in order.
pub(crate) async fn check(
    stage: &Stage,
    pool: &PgPool,
    phones: &[String],
    needles: &Needles,
    logs: &[PathBuf],
    planted: &[uuid::Uuid],
) -> anyhow::Result<Vec<Check>> {
    let mut checks = Vec::new();
    sagas(pool, &mut checks).await?;
    effects(stage, pool, phones, &mut checks).await?;
    messages(stage, pool, planted, &mut checks).await?;
    secrets(stage, pool, needles, logs, &mut checks).await?;
    Ok(checks)
}

async fn sagas(pool: &PgPool, checks: &mut Vec<Check>) -> anyhow::Result<()> {
    let rows: Vec<(String, String, bool, i64)> = sqlx::query_as(
        "SELECT saga_type, state_name, terminal, count(*) FROM sagas
         GROUP BY saga_type, state_name, terminal ORDER BY saga_type, state_name",
    )
    .fetch_all(pool)
    .await?;
    let ended: i64 = rows.iter().filter(|r| r.2).map(|r| r.3).sum();
    checks.push(Check::info("sagas ended", ended as u64));
    let open: Vec<String> = rows
        .iter()
        .filter(|r| !r.2)
        .map(|(t, s, _, n)| format!("{n} {t} in {s}"))
        .collect();
    let open_count: i64 = rows.iter().filter(|r| !r.2).map(|r| r.3).sum();
    checks.push(Check::zero("sagas not ended", open_count as u64, open));
    Ok(())
}

/// Each run of the same text to the same phone after the first.
fn repeats(mut texts: Vec<String>) -> usize {
    texts.sort_unstable();
    texts.windows(2).filter(|w| w[0] == w[1]).count()
}

async fn effects(
    stage: &Stage,
    pool: &PgPool,
    phones: &[String],
    checks: &mut Vec<Check>,
) -> anyhow::Result<()> {
    let inboxes = stage.play.inboxes(phones.iter().cloned()).await?;
    let resent = resent_in_doubt(pool, &stage.phone_limits, &inboxes).await?;
    sms_checks(&inboxes, &resent, checks);

    let orders = stage.play.invoice_orders().await?;
    checks.push(Check::info("ERIP invoices", orders.len() as u64));
    let n = repeats(orders);
    checks.push(Check::zero(
        "invoices twice for one order",
        n as u64,
        Vec::new(),
    ));

    let (events, twice) = stage.play.desk.effects();
    checks.push(Check::info(
        "events the desk and portal heard",
        events as u64,
    ));
    checks.push(Check::zero(
        "events twice (decision, payment, issue... per application)",
        twice.len() as u64,
        twice,
    ));
    accounts(pool, checks).await
}

/// The SMS each phone may show twice because SMPP could not tell the hub whether the SMS centre
/// had taken a send (`smpp_sends.resent_in_doubt`, by the recipient's pseudonym): phones with
/// none are left out.
async fn resent_in_doubt(
    pool: &PgPool,
    limits: &PhoneLimits,
    inboxes: &[(String, Vec<String>)],
) -> anyhow::Result<HashMap<String, usize>> {
    let rows: Vec<(Vec<u8>, i64)> = sqlx::query_as(
        "SELECT phone_key, sum(resent_in_doubt)::bigint FROM smpp_sends
          WHERE resent_in_doubt > 0 AND phone_key IS NOT NULL GROUP BY phone_key",
    )
    .fetch_all(pool)
    .await?;
    let by_key: HashMap<Vec<u8>, i64> = rows.into_iter().collect();
    Ok(inboxes
        .iter()
        .filter_map(|(phone, _)| {
            let key = limits.key(&Msisdn::parse(phone).ok()?);
            let n = *by_key.get(key.as_bytes())?;
            Some((phone.clone(), usize::try_from(n).unwrap_or(0)))
        })
        .collect())
}

/// SMS per phone: none repeated beyond what a send in doubt over SMPP explains (`resent`, by
/// phone), at most one temporary password (a repeated SMS with the same password is one).
fn sms_checks(
    inboxes: &[(String, Vec<String>)],
    resent: &HashMap<String, usize>,
    checks: &mut Vec<Check>,
) {
    let (mut sms, mut twice, mut passwords_twice) = (0, Vec::new(), Vec::new());
    let mut explained = 0;
    for (phone, texts) in inboxes {
        sms += texts.len();
        let masked = hub_ops::dlq::mask::mask_personal(phone);
        let passwords: HashSet<&String> = texts.iter().filter(|t| t.contains("пароль: ")).collect();
        if passwords.len() > 1 {
            passwords_twice.push(format!(
                "{} temporary passwords to {masked}",
                passwords.len()
            ));
        }
        let n = repeats(texts.clone());
        let in_doubt = resent.get(phone).copied().unwrap_or(0);
        explained += n.min(in_doubt);
        if n > in_doubt {
            twice.push(format!(
                "{n} repeated SMS to {masked}, {in_doubt} of them explained by SMPP sends in doubt"
            ));
        }
    }
    checks.push(Check::info("SMS received", sms as u64));
    checks.push(Check::info(
        "SMS repeated after an SMPP send in doubt (at-least-once)",
        explained as u64,
    ));
    checks.push(Check::zero("SMS sent twice", twice.len() as u64, twice));
    checks.push(Check::zero(
        "temporary passwords beyond one per phone",
        passwords_twice.len() as u64,
        passwords_twice,
    ));
}

/// Accounts, and those beyond one per identifier, counted from the rows (not trusted to the
/// primary key: the checker checks what is there).
async fn accounts(pool: &PgPool, checks: &mut Vec<Check>) -> anyhow::Result<()> {
    let accounts: i64 = sqlx::query_scalar("SELECT count(*) FROM accounts")
        .fetch_one(pool)
        .await?;
    checks.push(Check::info("accounts", accounts as u64));
    let twice: Vec<(String, i64)> = sqlx::query_as(
        "SELECT identifier, count(*) FROM accounts GROUP BY identifier HAVING count(*) > 1",
    )
    .fetch_all(pool)
    .await?;
    checks.push(Check::zero(
        "accounts beyond one per identifier",
        twice.iter().map(|(_, n)| (n - 1) as u64).sum(),
        twice
            .iter()
            .map(|(id, n)| format!("{n} accounts of {}", hub_ops::dlq::mask::mask_personal(id)))
            .collect(),
    ));
    Ok(())
}

async fn messages(
    stage: &Stage,
    pool: &PgPool,
    planted: &[uuid::Uuid],
    checks: &mut Vec<Check>,
) -> anyhow::Result<()> {
    stored_messages(pool, planted, checks).await?;
    queued_messages(stage, checks).await
}

/// The outbox and the dead letters: every row published, the hostile messages (`planted`) each
/// dead-lettered with its reason, no other dead letter.
async fn stored_messages(
    pool: &PgPool,
    planted: &[uuid::Uuid],
    checks: &mut Vec<Check>,
) -> anyhow::Result<()> {
    let (outbox, unsent): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(*) FILTER (WHERE sent_at IS NULL) FROM outbox")
            .fetch_one(pool)
            .await?;
    checks.push(Check::info("outbox rows", outbox as u64));
    checks.push(Check::zero(
        "outbox rows never published",
        unsent as u64,
        Vec::new(),
    ));
    // The hostile messages the run sent must be there, each once, with its reason.
    let hostile: Vec<(String, String)> = sqlx::query_as(
        "SELECT DISTINCT ON (message_id) error_kind, left(error, 160) FROM dead_letters
         WHERE message_id = ANY($1) ORDER BY message_id",
    )
    .bind(planted)
    .fetch_all(pool)
    .await?;
    checks.push(Check::info(
        "hostile messages dead-lettered with their reason",
        hostile.iter().filter(|(_, e)| !e.is_empty()).count() as u64,
    ));
    checks.push(Check::zero(
        "hostile messages not dead-lettered (taken, or lost)",
        (planted.len() - hostile.len().min(planted.len())) as u64,
        Vec::new(),
    ));
    let dead: Vec<(String, String, String, i64)> = sqlx::query_as(
        "SELECT queue, error_kind, left(error, 160), count(*) FROM dead_letters
         WHERE NOT message_id = ANY($1)
         GROUP BY 1, 2, 3 ORDER BY 4 DESC",
    )
    .bind(planted)
    .fetch_all(pool)
    .await?;
    let total: i64 = dead.iter().map(|d| d.3).sum();
    checks.push(Check::zero(
        "other dead letters",
        total as u64,
        dead.into_iter()
            .map(|(q, k, c, n)| format!("{n} in {q}: {k}: {}", hub_ops::dlq::mask::mask_text(&c)))
            .collect(),
    ));
    Ok(())
}

/// Every queue of the namespace drained.
async fn queued_messages(stage: &Stage, checks: &mut Vec<Check>) -> anyhow::Result<()> {
    let channel = stage.channel().await?;
    let depths = queue_depths(&channel, stage.queues()).await;
    let _ = channel.close(200, "checked".into()).await;
    checks.push(left_in_queues(depths?));
    Ok(())
}

/// The messages still in the queues of `depths`, which must be none.
fn left_in_queues(depths: Vec<(String, u32)>) -> Check {
    let mut left = Vec::new();
    let mut waiting = 0u64;
    for (queue, n) in depths {
        if n > 0 {
            waiting += u64::from(n);
            left.push(format!("{n} in {queue}"));
        }
    }
    Check::zero("messages left in queues", waiting, left)
}

/// The depths of `queues`.
async fn queue_depths(
    channel: &lapin::Channel,
    queues: Vec<String>,
) -> anyhow::Result<Vec<(String, u32)>> {
    let mut depths = Vec::new();
    for queue in queues {
        let q = channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .with_context(|| format!("queue {queue}"))?;
        depths.push((queue, q.message_count()));
    }
    Ok(depths)
}

/// Where needles were found: a count per place, and one masked excerpt per place.
#[derive(Default)]
struct Found(BTreeMap<String, (u64, String)>);

impl Found {
    fn add(&mut self, place: &str, excerpt: impl FnOnce() -> String) {
        match self.0.get_mut(place) {
            Some((n, _)) => *n += 1,
            None => {
                self.0.insert(place.to_owned(), (1, excerpt()));
            }
        }
    }

    fn total(&self) -> u64 {
        self.0.values().map(|(n, _)| n).sum()
    }

    fn details(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|(p, (n, e))| format!("{n} in {p}, e.g. …{e}…"))
            .collect()
    }
}

/// The strings looked for, all at once (Aho-Corasick: a run reads each text once, whatever the
/// number of needles).
struct Matcher {
    automaton: Option<aho_corasick::AhoCorasick>,
    /// Per needle: all digits (a code), matched only where it stands alone, since six digits
    /// inside a longer number or an id are not that code.
    digits: Vec<bool>,
}

impl Matcher {
    /// A matcher of `needles` (empty ones left out).
    ///
    /// Errors: the automaton cannot be built (too many or too long needles): the checker then
    /// fails the run rather than find nothing.
    fn new(needles: &[String]) -> anyhow::Result<Self> {
        let needles: Vec<&String> = needles.iter().filter(|n| !n.is_empty()).collect();
        let automaton = if needles.is_empty() {
            None
        } else {
            Some(
                aho_corasick::AhoCorasick::new(&needles)
                    .context("building the matcher of the needles")?,
            )
        };
        Ok(Self {
            automaton,
            digits: needles
                .iter()
                .map(|n| n.bytes().all(|b| b.is_ascii_digit()))
                .collect(),
        })
    }

    /// The first match in `text`, as (start, end).
    fn find(&self, text: &str) -> Option<(usize, usize)> {
        let bytes = text.as_bytes();
        self.automaton
            .as_ref()?
            .find_overlapping_iter(text)
            .find(|m| {
                !self.digits[m.pattern().as_usize()] || {
                    // A code stands alone: not inside a longer number or word, and not the
                    // number part of an id (`C-0001234`, `TAX-MINISTRY-123456`, `a/123456`).
                    let before = m.start().checked_sub(1).map(|j| bytes[j]);
                    let after = bytes.get(m.end()).copied();
                    !before.is_some_and(|b| b.is_ascii_alphanumeric() || b"-_/".contains(&b))
                        && !after.is_some_and(|b| b.is_ascii_alphanumeric())
                }
            })
            .map(|m| (m.start(), m.end()))
    }

    /// Counts a match in each of `texts` under `place`, with an excerpt around the first one
    /// (the needle itself replaced, and personal data masked).
    fn scan(&self, texts: &[String], place: &str, found: &mut Found) {
        for t in texts {
            if let Some((start, end)) = self.find(t) {
                found.add(place, || {
                    let from = t.floor_char_boundary(start.saturating_sub(24));
                    let to = t.ceil_char_boundary((end + 24).min(t.len()));
                    hub_ops::dlq::mask::mask_text(&format!(
                        "{}<found>{}",
                        &t[from..start],
                        &t[end..to]
                    ))
                });
            }
        }
    }
}

/// The personal needles in every spelling looked for: a Belarusian phone number
/// (`375291234567`) also as `80291234567` and `291234567`; the texts are read with the
/// separators inside numbers taken out ([`joined`]), so `+375 (29) 123-45-67` is found too.
fn personal_spellings(personal: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(personal.len() * 3);
    for p in personal {
        let digits: String = p.chars().filter(char::is_ascii_digit).collect();
        match digits.strip_prefix("375") {
            Some(national) if national.len() == 9 => {
                out.push(digits.clone());
                out.push(format!("80{national}"));
                out.push(national.to_owned());
            }
            _ => out.push(p.clone()),
        }
    }
    out
}

/// `text` with the separators inside a number (spaces, `-`, `(`, `)`, `.`) taken out, so that a
/// number written in groups reads as its digits.
fn joined(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if " -().".contains(c) && out.chars().last().is_some_and(|l| l.is_ascii_digit()) {
            // A run of at most three separators between two digits goes.
            let run = chars[i..]
                .iter()
                .take_while(|c| " -().".contains(**c))
                .count();
            if run <= 3 && chars.get(i + run).is_some_and(char::is_ascii_digit) {
                i += run;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

/// Ids and times inside a text, where a run of digits is not data: UUIDs (also inside longer
/// ids such as `a1-<uuid>`), long hex (trace and span ids, hashes), timestamps.
static NOISE: std::sync::LazyLock<Option<regex::Regex>> = std::sync::LazyLock::new(|| {
    regex::Regex::new(
        r"(?x)
          [0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}
        | [0-9a-fA-F]{16,}
        | \d{4}-\d{2}-\d{2}[T\ ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}(:?\d{2})?)?",
    )
    .ok()
});

/// `s` with its ids and times blanked out.
fn scrub(s: &str) -> String {
    match NOISE.as_ref() {
        Some(noise) => noise.replace_all(s, " ").into_owned(),
        None => s.to_owned(),
    }
}

/// Whether a number under `key` is a row's own counter (an id, a version, a count), which can
/// be any number and says nothing.
fn counter_key(key: &str) -> bool {
    key == "id"
        || key.ends_with("_id")
        || matches!(
            key,
            "version" | "attempts" | "count" | "seq" | "failed_logins" | "delivery_count"
        )
}

/// Every text in a JSON value: strings (ids and times blanked out; a bytea column's `\x...`
/// hex decoded to text) and numbers (a code may be stored as one), but the counters of
/// [`counter_key`].
fn texts(v: &serde_json::Value, out: &mut Vec<String>) {
    texts_under(None, v, out);
}

fn texts_under(key: Option<&str>, v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => {
            if let Some(bytes) = s.strip_prefix("\\x").and_then(|h| hex::decode(h).ok()) {
                let decoded = String::from_utf8_lossy(&bytes).into_owned();
                match serde_json::from_str::<serde_json::Value>(&decoded) {
                    Ok(inner) => texts_under(key, &inner, out),
                    Err(_) => out.push(scrub(&decoded)),
                }
            } else {
                let t = scrub(s);
                if !t.trim().is_empty() {
                    out.push(t);
                }
            }
        }
        serde_json::Value::Number(n) if !key.is_some_and(counter_key) => {
            out.push(n.to_string());
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| texts_under(key, v, out)),
        serde_json::Value::Object(o) => o
            .iter()
            .for_each(|(k, v)| texts_under(Some(k.as_str()), v, out)),
        _ => {}
    }
}

/// What reading the logs found.
#[derive(Default)]
struct LogScan {
    lines: u64,
    secrets: Found,
    personal: Found,
    /// Logs that could not be read, each with why.
    unreadable: Vec<String>,
}

/// Reads the JSON log lines of `logs` for the needles. A log that is missing, cannot be read or
/// is not UTF-8 is listed as unreadable (a violation: what cannot be read cannot be vouched for).
///
/// Errors: the needles make no matcher.
fn scan_logs(logs: &[PathBuf], needles: &Needles) -> anyhow::Result<LogScan> {
    let secret = Matcher::new(&needles.secrets)?;
    let private = Matcher::new(&personal_spellings(&needles.personal))?;
    let mut scan = LogScan::default();
    for log in logs {
        let text = match std::fs::read(log) {
            Err(e) => {
                scan.unreadable.push(format!("{}: {e}", log.display()));
                continue;
            }
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => text,
                Err(e) => {
                    scan.unreadable.push(format!(
                        "{}: not UTF-8 from byte {}",
                        log.display(),
                        e.utf8_error().valid_up_to()
                    ));
                    continue;
                }
            },
        };
        for line in text.lines() {
            scan.lines += 1;
            let mut t = Vec::new();
            match serde_json::from_str::<serde_json::Value>(line) {
                Ok(v) => texts(&v, &mut t),
                Err(_) => t.push(scrub(line)),
            }
            secret.scan(&t, "hub logs", &mut scan.secrets);
            let t: Vec<String> = t.iter().map(|t| joined(t)).collect();
            private.scan(&t, "hub logs", &mut scan.personal);
        }
    }
    Ok(scan)
}

/// Reads every row of every table of the current schema for `secret`: the rows read.
async fn scan_tables(pool: &PgPool, secret: &Matcher, found: &mut Found) -> anyhow::Result<u64> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1",
    )
    .fetch_all(pool)
    .await?;
    let mut rows = 0u64;
    for table in &tables {
        let mut stream = sqlx::query_scalar::<_, serde_json::Value>(sqlx::AssertSqlSafe(format!(
            "SELECT to_jsonb(t) FROM \"{table}\" t"
        )))
        .fetch(pool);
        while let Some(row) = stream.next().await {
            rows += 1;
            let mut t = Vec::new();
            texts(&row?, &mut t);
            secret.scan(&t, &format!("table {table}"), found);
        }
    }
    Ok(rows)
}

/// Reads every message of `queues` for `secret`, without taking them (unacked, they go back
/// when the channel closes): the messages read.
async fn scan_queues(
    channel: &lapin::Channel,
    queues: Vec<String>,
    secret: &Matcher,
    found: &mut Found,
) -> anyhow::Result<u64> {
    let mut queued = 0u64;
    for queue in queues {
        while let Some(m) = channel
            .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: false })
            .await?
        {
            queued += 1;
            let body = String::from_utf8_lossy(&m.delivery.data);
            let mut t = Vec::new();
            match serde_json::from_str::<serde_json::Value>(&body) {
                Ok(v) => texts(&v, &mut t),
                Err(_) => t.push(scrub(&body)),
            }
            t.push(scrub(&format!("{:?}", m.delivery.properties.headers())));
            secret.scan(&t, &format!("queue {queue}"), found);
        }
    }
    Ok(queued)
}

async fn secrets(
    stage: &Stage,
    pool: &PgPool,
    needles: &Needles,
    logs: &[PathBuf],
    checks: &mut Vec<Check>,
) -> anyhow::Result<()> {
    let LogScan {
        lines,
        mut secrets,
        personal,
        unreadable,
    } = scan_logs(logs, needles)?;
    checks.push(Check::info("hub log lines read", lines));
    checks.push(Check::zero(
        "hub logs that could not be read",
        unreadable.len() as u64,
        unreadable,
    ));
    let secret = Matcher::new(&needles.secrets)?;
    let rows = scan_tables(pool, &secret, &mut secrets).await?;
    checks.push(Check::info("table rows read", rows));

    let channel = stage.channel().await?;
    let queued = scan_queues(&channel, stage.queues(), &secret, &mut secrets).await;
    let _ = channel.close(200, "read".into()).await;
    checks.push(Check::info("queued messages read", queued?));

    checks.push(Check::info(
        "codes and passwords looked for",
        needles.secrets.len() as u64,
    ));
    checks.push(Check::zero(
        "codes or passwords in clear text (logs, tables, dead letters, queues)",
        secrets.total(),
        secrets.details(),
    ));
    checks.push(Check::zero(
        "identification or phone numbers in clear text in logs",
        personal.total(),
        personal.details(),
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_is_found_only_as_a_whole_number() {
        let m = Matcher::new(&["123456".into(), "Abc123456x".into()]).expect("a matcher");
        assert!(m.find("your code is 123456.").is_some());
        assert!(m.find("123456").is_some());
        assert!(m.find("91234567").is_none());
        assert!(m.find("1234567").is_none());
        // The password is found as itself; the code's digits inside it or inside an id are not
        // the code.
        assert_eq!(m.find("password Abc123456x"), Some((9, 19)));
        let code = Matcher::new(&["123456".into()]).expect("a matcher");
        for id in [
            "TAX-MINISTRY-123456",
            "C-123456",
            "x123456",
            "123456a",
            "r/123456",
        ] {
            assert!(code.find(id).is_none(), "{id}");
        }
        assert!(code.find("Код: 123456.").is_some());
        assert!(code.find("(123456)").is_some());
        assert!(
            Matcher::new(&[])
                .expect("a matcher")
                .find("anything")
                .is_none()
        );
    }

    #[test]
    fn a_log_with_a_code_or_an_identification_number_is_caught() {
        let log = std::env::temp_dir().join(format!("chaos-scan-{}.log", uuid::Uuid::new_v4()));
        let lines = [
            // The code's digits as a timestamp's microseconds and inside an id: not the code.
            r#"{"timestamp":"2026-11-27T07:38:56.482913Z","message":"sent","trace_id":"aa482913bb482913cc482913dd482913"}"#,
            r#"{"timestamp":"2026-11-27T07:38:57.000001Z","message":"code 482913 sent","to":"+375 44 ***-**-22"}"#,
            r#"{"message":"checked","identification_number":"3140583A001PB7"}"#,
            "thread 'main' panicked: password Tmp-pass-1 rejected",
        ];
        std::fs::write(&log, lines.join("\n")).expect("a temporary log");
        let needles = Needles {
            secrets: vec!["482913".into(), "Tmp-pass-1".into()],
            personal: vec!["3140583A001PB7".into(), "375441231000".into()],
        };
        let scan = scan_logs(std::slice::from_ref(&log), &needles).expect("scanned");
        let _ = std::fs::remove_file(&log);
        assert_eq!(scan.lines, 4);
        assert!(scan.unreadable.is_empty());
        assert_eq!(scan.secrets.total(), 2, "{:?}", scan.secrets.details());
        assert_eq!(scan.personal.total(), 1, "{:?}", scan.personal.details());
    }

    #[test]
    fn timestamps_ids_and_bytea_are_read_as_they_should_be() {
        let m = Matcher::new(&["123456".into()]).expect("a matcher");
        for noise in [
            "2026-11-27T07:38:56.123456Z",
            "at 2026-11-27 07:38:56.123456+00",
            "4bf92f3577b34da6a3ce929d0e123456",
            "a1-67e55044-10b1-426f-9247-bb6801234560",
            "a1-67e55044-10b1-426f-9247-123456fe0c8a",
        ] {
            assert!(m.find(&scrub(noise)).is_none(), "{noise}");
        }
        assert!(m.find(&scrub("code 123456")).is_some());
        let body = hex::encode(br#"{"text":"code 123456"}"#);
        let mut out = Vec::new();
        texts(
            &serde_json::json!({"body": format!("\\x{body}"), "at": "2026-11-27T07:38:56.123456Z"}),
            &mut out,
        );
        assert_eq!(out, vec!["code 123456".to_owned()]);
    }

    /// The check named `name` of `checks`.
    fn named<'c>(checks: &'c [Check], name: &str) -> &'c Check {
        checks
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no check {name}"))
    }

    fn temp_log(content: &[u8]) -> PathBuf {
        let log = std::env::temp_dir().join(format!("chaos-scan-{}.log", uuid::Uuid::new_v4()));
        std::fs::write(&log, content).expect("a temporary log");
        log
    }

    #[test]
    fn a_missing_or_non_utf8_log_is_a_violation_not_a_skip() {
        let missing = std::env::temp_dir().join(format!("chaos-none-{}.log", uuid::Uuid::new_v4()));
        let broken = temp_log(b"{\"message\":\"ok\"}\n\xff\xfe not text\n");
        let good = temp_log(b"{\"message\":\"ok\"}\n");
        let scan = scan_logs(
            &[missing.clone(), broken.clone(), good.clone()],
            &Needles::default(),
        )
        .expect("scanned");
        let _ = std::fs::remove_file(&broken);
        let _ = std::fs::remove_file(&good);
        assert_eq!(scan.lines, 1, "only the good log's line is read");
        assert_eq!(scan.unreadable.len(), 2, "{:?}", scan.unreadable);
        assert!(scan.unreadable[0].contains(&missing.display().to_string()));
        assert!(
            scan.unreadable[1].contains("not UTF-8 from byte 17"),
            "{:?}",
            scan.unreadable
        );
    }

    #[test]
    fn a_code_written_as_a_number_is_found_but_not_a_rows_counter() {
        let log = temp_log(
            br#"{"message":"sent","code":482913}
{"message":"row","id":482913,"attempts":482913,"message_id":482913}"#,
        );
        let needles = Needles {
            secrets: vec!["482913".into()],
            personal: Vec::new(),
        };
        let scan = scan_logs(std::slice::from_ref(&log), &needles).expect("scanned");
        let _ = std::fs::remove_file(&log);
        assert_eq!(scan.secrets.total(), 1, "{:?}", scan.secrets.details());
    }

    #[test]
    fn a_phone_is_found_in_each_of_its_spellings() {
        let spellings = [
            "+375291234567",
            "375291234567",
            "80291234567",
            "8 029 123-45-67",
            "+375 29 123-45-67",
            "+375 (29) 123-45-67",
            "+375-29-1234567",
            "29 123 45 67",
            "291234567",
        ];
        let lines: Vec<String> = spellings
            .iter()
            .map(|p| format!(r#"{{"message":"sent to {p}"}}"#))
            .chain([
                // Masked, or another number: not the phone.
                r#"{"message":"sent to +375 29 ***-**-67"}"#.to_owned(),
                r#"{"message":"sent to +375 29 123-45-68"}"#.to_owned(),
                r#"{"message":"order 1291234567"}"#.to_owned(),
            ])
            .collect();
        let log = temp_log(lines.join("\n").as_bytes());
        let needles = Needles {
            secrets: Vec::new(),
            personal: vec!["375291234567".into()],
        };
        let scan = scan_logs(std::slice::from_ref(&log), &needles).expect("scanned");
        let _ = std::fs::remove_file(&log);
        assert_eq!(
            scan.personal.total(),
            spellings.len() as u64,
            "{:?}",
            scan.personal.details()
        );
    }

    #[test]
    fn a_repeated_sms_and_a_second_temporary_password_are_reported() {
        let mut checks = Vec::new();
        sms_checks(
            &[
                (
                    "+375291234567".into(),
                    vec!["Код: 111111".into(), "Код: 111111".into()],
                ),
                (
                    "+375291234568".into(),
                    vec!["Ваш пароль: Aa1-x".into(), "Ваш пароль: Bb2-y".into()],
                ),
                ("+375291234569".into(), vec!["Код: 222222".into()]),
            ],
            &HashMap::new(),
            &mut checks,
        );
        assert_eq!(named(&checks, "SMS received").count, 5);
        let twice = named(&checks, "SMS sent twice");
        assert!(twice.violation && twice.count == 1, "{twice:?}");
        assert!(!twice.details[0].contains("1234567"), "the phone is masked");
        let passwords = named(&checks, "temporary passwords beyond one per phone");
        assert!(passwords.violation && passwords.count == 1, "{passwords:?}");
        let mut clean = Vec::new();
        sms_checks(
            &[("+375291234569".into(), vec!["Код: 222222".into()])],
            &HashMap::new(),
            &mut clean,
        );
        assert!(clean.iter().all(|c| !c.violation));
    }

    #[test]
    fn a_repeat_is_explained_only_by_a_send_in_doubt_to_the_same_phone() {
        let inboxes = [
            (
                "+375291234567".to_owned(),
                vec![
                    "Ваш пароль: Aa1-x".to_owned(),
                    "Ваш пароль: Aa1-x".to_owned(),
                ],
            ),
            (
                "+375291234568".to_owned(),
                vec![
                    "Код: 1".to_owned(),
                    "Код: 1".to_owned(),
                    "Код: 1".to_owned(),
                ],
            ),
        ];
        // One resend in doubt to the first phone explains its one repeat (and the same password
        // twice is one password); the second phone's two repeats have one explanation between
        // them, so one is a violation.
        let resent = HashMap::from([
            ("+375291234567".to_owned(), 1),
            ("+375291234568".to_owned(), 1),
        ]);
        let mut checks = Vec::new();
        sms_checks(&inboxes, &resent, &mut checks);
        let twice = named(&checks, "SMS sent twice");
        assert!(twice.violation && twice.count == 1, "{twice:?}");
        assert!(twice.details[0].contains("2 repeated SMS"), "{twice:?}");
        let explained = named(
            &checks,
            "SMS repeated after an SMPP send in doubt (at-least-once)",
        );
        assert_eq!(explained.count, 2);
        assert!(!named(&checks, "temporary passwords beyond one per phone").violation);
        // A resend in doubt to another phone explains nothing here.
        let elsewhere = HashMap::from([("+375291234569".to_owned(), 5)]);
        let mut checks = Vec::new();
        sms_checks(&inboxes, &elsewhere, &mut checks);
        assert_eq!(named(&checks, "SMS sent twice").count, 2);
    }

    #[test]
    fn messages_left_in_a_queue_are_reported() {
        let check = left_in_queues(vec![("ns.a".into(), 0), ("ns.b".into(), 2)]);
        assert!(check.violation && check.count == 2, "{check:?}");
        assert_eq!(check.details, vec!["2 in ns.b".to_owned()]);
        assert!(!left_in_queues(vec![("ns.a".into(), 0)]).violation);
    }

    /// A database of the hub's schema, in a sandbox of its own.
    async fn sandbox_pool() -> (crate::sandbox::Sandbox, PgPool) {
        let sandbox = crate::sandbox::Sandbox::new(
            &crate::sandbox::Servers::for_tests(),
            "t",
            "hubtest_checker",
        )
        .expect("a sandbox");
        let migrator = hub_runtime::store::migrator(&[&hub_portal::MIGRATOR]).expect("migrations");
        let pool = hub_runtime::store::connect(&sandbox.database_url, 2, &migrator)
            .await
            .expect("the sandbox's database");
        (sandbox, pool)
    }

    /// Every invariant kept in the database, planted and reported: an open saga, a second
    /// account of one identifier (its primary key dropped for the test), an unpublished outbox
    /// row, a hostile message never dead-lettered, another dead letter, and a code in a table
    /// as a string, as a number and inside an outbox body.
    #[tokio::test]
    async fn every_invariant_of_the_database_reports_its_planted_violation() {
        let (sandbox, pool) = sandbox_pool().await;
        let run = |sql: &'static str| {
            let pool = pool.clone();
            async move {
                sqlx::query(sql).execute(&pool).await.expect(sql);
            }
        };
        // Clean first: nothing to report.
        let mut checks = Vec::new();
        sagas(&pool, &mut checks).await.expect("sagas");
        accounts(&pool, &mut checks).await.expect("accounts");
        stored_messages(&pool, &[], &mut checks)
            .await
            .expect("messages");
        assert!(checks.iter().all(|c| !c.violation), "{checks:?}");

        run(
            "INSERT INTO sagas (id, saga_type, state_name, state, version)
             VALUES (gen_random_uuid(), 'issuance', 'awaiting_code', '{}', 1)",
        )
        .await;
        run("ALTER TABLE accounts DROP CONSTRAINT accounts_pkey CASCADE").await;
        run(
            "INSERT INTO identifiers (identifier, phone, application, status)
             VALUES ('3140583A001PB7', '+375291234567', 'A-1', 'assigned')",
        )
        .await;
        run(
            "INSERT INTO accounts (identifier, password_hash, must_change_password)
             VALUES ('3140583A001PB7', 'h1', true), ('3140583A001PB7', 'h2', true)",
        )
        .await;
        run("INSERT INTO outbox (id, exchange, routing_key, metadata, body)
             VALUES (gen_random_uuid(), 'x', 'k', '{}', convert_to('{\"text\":\"code 482913\"}', 'UTF8'))")
        .await;
        run(
            "INSERT INTO dead_letters (message_id, message_type, queue, original_exchange,
             original_routing_key, error_kind, error, properties, body)
             VALUES (gen_random_uuid(), 't.v1', 'q', 'x', 'k', 'permanent', 'broke', '{}', '')",
        )
        .await;
        run("CREATE TABLE planted_secrets (note text, code bigint)").await;
        run("INSERT INTO planted_secrets VALUES ('your code 482913', NULL), (NULL, 482913)").await;

        let hostile = uuid::Uuid::new_v4();
        let mut checks = Vec::new();
        sagas(&pool, &mut checks).await.expect("sagas");
        accounts(&pool, &mut checks).await.expect("accounts");
        stored_messages(&pool, &[hostile], &mut checks)
            .await
            .expect("messages");
        for (name, count) in [
            ("sagas not ended", 1),
            ("accounts beyond one per identifier", 1),
            ("outbox rows never published", 1),
            ("hostile messages not dead-lettered (taken, or lost)", 1),
            ("other dead letters", 1),
        ] {
            let check = named(&checks, name);
            assert!(check.violation && check.count == count, "{check:?}");
        }
        let mut found = Found::default();
        let secret = Matcher::new(&["482913".into()]).expect("a matcher");
        scan_tables(&pool, &secret, &mut found)
            .await
            .expect("tables");
        let places: BTreeMap<_, _> = found.0.iter().map(|(p, (n, _))| (p.clone(), *n)).collect();
        assert_eq!(places.get("table planted_secrets"), Some(&2), "{places:?}");
        assert_eq!(places.get("table outbox"), Some(&1), "{places:?}");
        pool.close().await;
        sandbox.remove().await;
    }

    /// A code in a queued message, as a string and as a number, is found, and the messages
    /// left in the queue are counted.
    #[tokio::test]
    async fn a_code_in_a_queued_message_is_found_and_the_queue_is_not_drained() {
        use lapin::options::{BasicPublishOptions, QueueDeclareOptions};
        let servers = crate::sandbox::Servers::for_tests();
        let sandbox =
            crate::sandbox::Sandbox::new(&servers, "t", "hubtest_checker").expect("a sandbox");
        let queue = format!("{}.planted", sandbox.namespace);
        sandbox.remember_queue(queue.clone());
        let conn =
            lapin::Connection::connect(&servers.amqp_url, lapin::ConnectionProperties::default())
                .await
                .expect("the broker");
        let channel = conn.create_channel().await.expect("a channel");
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("declared");
        for body in [
            &br#"{"code": 482913}"#[..],
            br#"{"text": "code 482913"}"#,
            br#"{"text": "fine"}"#,
        ] {
            channel
                .basic_publish(
                    "".into(),
                    queue.as_str().into(),
                    BasicPublishOptions::default(),
                    body,
                    lapin::BasicProperties::default(),
                )
                .await
                .expect("published")
                .await
                .expect("confirmed");
        }
        let secret = Matcher::new(&["482913".into()]).expect("a matcher");
        let mut found = Found::default();
        let read = scan_queues(&channel, vec![queue.clone()], &secret, &mut found)
            .await
            .expect("read");
        assert_eq!(read, 3);
        assert_eq!(found.total(), 2, "{:?}", found.details());
        // Read without taking: closing the channel gives the messages back.
        let _ = channel.close(200, "read".into()).await;
        let channel = conn.create_channel().await.expect("a channel");
        let check = wait_for_depth(&channel, &queue, 3).await;
        assert!(check.violation && check.count == 3, "{check:?}");
        let _ = conn.close(200, "done".into()).await;
        sandbox.remove().await;
    }

    /// The check of `queue`'s depth once it is `depth` (the broker requeues read messages
    /// asynchronously), within a deadline.
    async fn wait_for_depth(channel: &lapin::Channel, queue: &str, depth: u32) -> Check {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let depths = queue_depths(channel, vec![queue.to_owned()])
                .await
                .expect("depths");
            if depths[0].1 == depth || std::time::Instant::now() > deadline {
                return left_in_queues(depths);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}
