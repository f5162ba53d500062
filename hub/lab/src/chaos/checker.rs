//! The invariant checker: after the load and the faults, it reads the database, the
//! simulators' records and the queues, and says with counts whether the promises held:
//!
//! - every saga ended (terminal) once the system settled;
//! - no effect twice: SMS per intent, invoice per application, decision per application,
//!   account per identifier, event per application;
//! - no message lost: every outbox row published, every queue drained, no dead letter;
//! - no code or password in clear text in a log line, a table row, a dead letter or a queued
//!   message, and no full identification number or phone number in a log line.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use futures_util::StreamExt;
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
    let (mut sms, mut twice, mut passwords_twice) = (0, Vec::new(), Vec::new());
    for (phone, texts) in inboxes {
        sms += texts.len();
        let passwords = texts.iter().filter(|t| t.contains("пароль: ")).count();
        if passwords > 1 {
            passwords_twice.push(format!("{passwords} temporary passwords to one phone"));
        }
        let n = repeats(texts);
        if n > 0 {
            twice.push(format!(
                "{n} repeated SMS to {}",
                hub_ops::dlq::mask::mask_personal(&phone)
            ));
        }
    }
    checks.push(Check::info("SMS received", sms as u64));
    checks.push(Check::zero("SMS sent twice", twice.len() as u64, twice));

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

    let (accounts, identifiers): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM accounts), (SELECT count(*) FROM identifiers)",
    )
    .fetch_one(pool)
    .await?;
    checks.push(Check::info("accounts", accounts as u64));
    checks.push(Check::zero(
        "accounts beyond one per identifier, temporary passwords beyond one per phone",
        (accounts - identifiers).max(0) as u64 + passwords_twice.len() as u64,
        passwords_twice,
    ));
    Ok(())
}

async fn messages(
    stage: &Stage,
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
    let mut left = Vec::new();
    let mut waiting = 0;
    for (queue, n) in queue_depths(stage).await? {
        if n > 0 {
            waiting += n;
            left.push(format!("{n} in {queue}"));
        }
    }
    checks.push(Check::zero("messages left in queues", waiting as u64, left));
    Ok(())
}

/// The namespace's queues and their depths.
async fn queue_depths(stage: &Stage) -> anyhow::Result<Vec<(String, u32)>> {
    let channel = stage.channel().await?;
    let mut depths = Vec::new();
    for queue in stage.queues() {
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
    let _ = channel.close(200, "checked".into()).await;
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
    fn new(needles: &[String]) -> Self {
        let needles: Vec<&String> = needles.iter().filter(|n| !n.is_empty()).collect();
        Self {
            automaton: aho_corasick::AhoCorasick::new(&needles).ok(),
            digits: needles
                .iter()
                .map(|n| n.bytes().all(|b| b.is_ascii_digit()))
                .collect(),
        }
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

/// Every text in a JSON value (strings, with ids and times blanked out; a bytea column's
/// `\x...` hex decoded to text).
fn texts(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => {
            if let Some(bytes) = s.strip_prefix("\\x").and_then(|h| hex::decode(h).ok()) {
                let decoded = String::from_utf8_lossy(&bytes).into_owned();
                match serde_json::from_str::<serde_json::Value>(&decoded) {
                    Ok(inner) => texts(&inner, out),
                    Err(_) => out.push(scrub(&decoded)),
                }
            } else {
                let t = scrub(s);
                if !t.trim().is_empty() {
                    out.push(t);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| texts(v, out)),
        serde_json::Value::Object(o) => o.values().for_each(|v| texts(v, out)),
        _ => {}
    }
}

/// Reads the JSON log lines of `logs` for the needles: the lines read, and where secrets and
/// personal data were found.
fn scan_logs(logs: &[PathBuf], needles: &Needles) -> (u64, Found, Found) {
    let (mut secrets, mut personal) = (Found::default(), Found::default());
    let (secret, private) = (
        Matcher::new(&needles.secrets),
        Matcher::new(&needles.personal),
    );
    let mut lines = 0u64;
    for log in logs {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        for line in text.lines() {
            lines += 1;
            let mut t = Vec::new();
            match serde_json::from_str::<serde_json::Value>(line) {
                Ok(v) => texts(&v, &mut t),
                Err(_) => t.push(scrub(line)),
            }
            secret.scan(&t, "hub logs", &mut secrets);
            private.scan(&t, "hub logs", &mut personal);
        }
    }
    (lines, secrets, personal)
}

async fn secrets(
    stage: &Stage,
    pool: &PgPool,
    needles: &Needles,
    logs: &[PathBuf],
    checks: &mut Vec<Check>,
) -> anyhow::Result<()> {
    let (lines, mut secrets, personal) = scan_logs(logs, needles);
    checks.push(Check::info("hub log lines read", lines));
    let secret = Matcher::new(&needles.secrets);

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
            secret.scan(&t, &format!("table {table}"), &mut secrets);
        }
    }
    checks.push(Check::info("table rows read", rows));

    let mut queued = 0u64;
    let channel = stage.channel().await?;
    for queue in stage.queues() {
        // Read without acking: the messages go back when the channel closes.
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
            secret.scan(&t, &format!("queue {queue}"), &mut secrets);
        }
    }
    let _ = channel.close(200, "read".into()).await;
    checks.push(Check::info("queued messages read", queued));

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
        let m = Matcher::new(&["123456".into(), "Abc123456x".into()]);
        assert!(m.find("your code is 123456.").is_some());
        assert!(m.find("123456").is_some());
        assert!(m.find("91234567").is_none());
        assert!(m.find("1234567").is_none());
        // The password is found as itself; the code's digits inside it or inside an id are not
        // the code.
        assert_eq!(m.find("password Abc123456x"), Some((9, 19)));
        let code = Matcher::new(&["123456".into()]);
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
        assert!(Matcher::new(&[]).find("anything").is_none());
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
        let (read, secrets, personal) = scan_logs(std::slice::from_ref(&log), &needles);
        let _ = std::fs::remove_file(&log);
        assert_eq!(read, 4);
        assert_eq!(secrets.total(), 2, "{:?}", secrets.details());
        assert_eq!(personal.total(), 1, "{:?}", personal.details());
    }

    #[test]
    fn timestamps_ids_and_bytea_are_read_as_they_should_be() {
        let m = Matcher::new(&["123456".into()]);
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
}
