//! The invariant checker: after the load and the faults, it reads the database, the
//! simulators' records and the queues, and says with counts whether the promises held:
//!
//! - every saga ended (terminal) once the system settled;
//! - no effect twice: SMS per intent, invoice per application, decision per application,
//!   account per identifier, event per application;
//! - no message lost: every outbox row published, every queue drained, no dead letter;
//! - no code or password in clear text in a log line, a table row, a dead letter or a queued
//!   message, and no full identification number or phone number in a log line.

use std::collections::{BTreeMap, HashMap};
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
                crate::ops::dlq::mask::mask_personal(&phone)
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
            .map(|(q, k, c, n)| {
                format!("{n} in {q}: {k}: {}", crate::ops::dlq::mask::mask_text(&c))
            })
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

/// Where a needle was found.
#[derive(Default)]
struct Found(BTreeMap<String, u64>);

impl Found {
    fn add(&mut self, place: String) {
        *self.0.entry(place).or_default() += 1;
    }

    fn total(&self) -> u64 {
        self.0.values().sum()
    }

    fn details(&self) -> Vec<String> {
        self.0.iter().map(|(p, n)| format!("{n} in {p}")).collect()
    }
}

/// Whether `needle` occurs in `text`; an all-digit needle only where no digit is beside it (a
/// code inside a longer number is not that code).
fn contains(text: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return false;
    }
    if !needle.bytes().all(|b| b.is_ascii_digit()) {
        return text.contains(needle);
    }
    let bytes = text.as_bytes();
    text.match_indices(needle).any(|(i, _)| {
        let before = i.checked_sub(1).map(|j| bytes[j]);
        let after = bytes.get(i + needle.len()).copied();
        !before.is_some_and(|b| b.is_ascii_digit()) && !after.is_some_and(|b| b.is_ascii_digit())
    })
}

/// Strings that are identifiers or times, where a run of digits is not data: UUIDs, long hex
/// (trace and span ids, hashes), RFC 3339 timestamps.
fn is_noise(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok()
        || (s.len() >= 16 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        || chrono::DateTime::parse_from_rfc3339(s).is_ok()
        || (s.len() >= 19
            && s.as_bytes().get(4) == Some(&b'-')
            && chrono::NaiveDateTime::parse_from_str(&s[..19], "%Y-%m-%dT%H:%M:%S")
                .or_else(|_| chrono::NaiveDateTime::parse_from_str(&s[..19], "%Y-%m-%d %H:%M:%S"))
                .is_ok())
}

/// Every text in a JSON value (strings; a bytea column's `\x...` hex decoded to text).
fn texts(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => {
            if let Some(bytes) = s.strip_prefix("\\x").and_then(|h| hex::decode(h).ok()) {
                let decoded = String::from_utf8_lossy(&bytes).into_owned();
                match serde_json::from_str::<serde_json::Value>(&decoded) {
                    Ok(inner) => texts(&inner, out),
                    Err(_) => out.push(decoded),
                }
            } else if !is_noise(s) {
                out.push(s.clone());
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| texts(v, out)),
        serde_json::Value::Object(o) => o.values().for_each(|v| texts(v, out)),
        _ => {}
    }
}

/// Counts the needles found in `text`, under `place`.
fn scan(text: &[String], needles: &[String], place: &str, found: &mut Found) {
    for t in text {
        for n in needles {
            if contains(t, n) {
                found.add(place.to_owned());
            }
        }
    }
}

/// Reads the JSON log lines of `logs` for the needles: the lines read, and where secrets and
/// personal data were found.
fn scan_logs(logs: &[PathBuf], needles: &Needles) -> (u64, Found, Found) {
    let (mut secrets, mut personal) = (Found::default(), Found::default());
    let mut lines = 0u64;
    for log in logs {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        for line in text.lines() {
            lines += 1;
            let mut t = Vec::new();
            match serde_json::from_str::<serde_json::Value>(line) {
                Ok(v) => texts(&v, &mut t),
                Err(_) => t.push(line.to_owned()),
            }
            scan(&t, &needles.secrets, "hub logs", &mut secrets);
            scan(&t, &needles.personal, "hub logs", &mut personal);
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
            scan(
                &t,
                &needles.secrets,
                &format!("table {table}"),
                &mut secrets,
            );
        }
    }
    checks.push(Check::info("table rows read", rows));

    let mut queued = 0u64;
    let channel = stage.channel().await?;
    let mut seen = HashMap::new();
    for queue in stage.queues() {
        // Read without acking: the messages go back when the channel closes.
        while let Some(m) = channel
            .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: false })
            .await?
        {
            queued += 1;
            let mut t = vec![String::from_utf8_lossy(&m.delivery.data).into_owned()];
            t.push(format!("{:?}", m.delivery.properties.headers()));
            scan(
                &t,
                &needles.secrets,
                &format!("queue {queue}"),
                &mut secrets,
            );
            *seen.entry(queue.clone()).or_insert(0u64) += 1;
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
        assert!(contains("your code is 123456.", "123456"));
        assert!(contains("123456", "123456"));
        assert!(!contains("91234567", "123456"));
        assert!(!contains("1234567", "123456"));
        assert!(contains("password Abc123456x", "Abc123456x"));
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
        assert!(is_noise("2026-11-27T07:38:56.123456Z"));
        assert!(is_noise("2026-11-27 07:38:56.123456+00"));
        assert!(is_noise("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert!(is_noise("67e55044-10b1-426f-9247-bb680e5fe0c8"));
        assert!(!is_noise("code 123456"));
        let body = hex::encode(br#"{"text":"code 123456"}"#);
        let mut out = Vec::new();
        texts(
            &serde_json::json!({"body": format!("\\x{body}"), "at": "2026-11-27T07:38:56.123456Z"}),
            &mut out,
        );
        assert_eq!(out, vec!["code 123456".to_owned()]);
    }
}
