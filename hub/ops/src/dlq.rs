//! The dead-letter workbench: list, group by cause, inspect, replay, discard and export the
//! letters the keeper ([`hub_runtime::keeper`]) moved into `dead_letters`. The CLI (`hub dlq`) and the
//! web console call these functions; every action that changes a letter or shows personal data
//! in the clear writes an audit row ([`super::audit`]).
//!
//! - **Masking.** Views are masked ([`mask`]) unless the caller asks for [`Disclosure::Unmasked`],
//!   which is audited. Whether an operator may ask is the caller's decision (the CLI:
//!   [`unmask_allowed`]).
//! - **Replay** re-publishes a letter to its original exchange and routing key with its original
//!   message id and properties (so the receiver's inbox still deduplicates it), without the
//!   `x-hub-*` failure headers but with `x-hub-replayed: <count>` and `x-hub-dead-letter-id`,
//!   and with its original sender in `x-hub-original-user-id` ([`replay_properties`]), so the
//!   consumer judges it as that sender's, through the hub's confirming publisher, at a bounded
//!   rate. A replayed message that fails again comes back as a new letter that remembers it
//!   was replayed; nothing replays it automatically, and a replay by filter leaves it alone
//!   unless told otherwise.

pub mod cli;
pub mod mask;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use super::audit::{self, Action};
use hub_runtime::broker::Publisher;
use hub_runtime::keeper::{COLUMNS, DEAD_LETTER_ID, REPLAYED};
pub use hub_runtime::keeper::{DeadLetter, DeadLetterKind, LetterStatus};
pub use mask::{mask_json, mask_text};

/// Why a workbench call did not do what was asked. Each variant is a decision for the caller
/// (and an exit code for the CLI).
#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    /// No dead letter matched the ids, group or filter.
    #[error("no dead letter matched {0}")]
    NothingMatched(String),
    /// The request itself is wrong (a missing reason, a bad rate).
    #[error("{0}")]
    BadUsage(String),
    /// The operator may not do this (see the message).
    #[error("{0}")]
    NotAllowed(String),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Writing the output failed.
    #[error("output: {0}")]
    Output(#[from] std::io::Error),
}

impl DlqError {
    /// The CLI's exit code: 3 nothing matched, 2 bad usage, 77 not allowed, 69 database
    /// unreachable, 1 anything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            DlqError::NothingMatched(_) => 3,
            DlqError::BadUsage(_) => 2,
            DlqError::NotAllowed(_) => 77,
            DlqError::Database(e) if hub_runtime::store::is_transient(e) => 69,
            DlqError::Database(_) | DlqError::Output(_) => 1,
        }
    }
}

/// The environment variable that makes the CLI's operator one allowed to see personal data in
/// the clear (`--unmask`): `HUB_OPS_UNMASK=1`.
pub const UNMASK_VAR: &str = "HUB_OPS_UNMASK";

/// Whether this CLI process may unmask personal data ([`UNMASK_VAR`] is `1`).
pub fn unmask_allowed() -> bool {
    std::env::var(UNMASK_VAR).is_ok_and(|v| v.trim() == "1")
}

/// Which statuses a filter takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum StatusFilter {
    /// Not yet replayed nor discarded.
    #[default]
    New,
    /// Replayed at least once.
    Replayed,
    /// Discarded.
    Discarded,
    /// Any.
    All,
}

impl StatusFilter {
    /// The status it takes, or `None` for any.
    pub fn status(self) -> Option<LetterStatus> {
        match self {
            StatusFilter::New => Some(LetterStatus::New),
            StatusFilter::Replayed => Some(LetterStatus::Replayed),
            StatusFilter::Discarded => Some(LetterStatus::Discarded),
            StatusFilter::All => None,
        }
    }

    /// Its name: a status's, or `all`.
    pub fn as_str(self) -> &'static str {
        self.status().map_or("all", LetterStatus::as_str)
    }
}

/// Which dead letters: every condition given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Filter {
    /// Short name of the queue they died on (`saga.ledger`, `unrouted`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Message type, exact or with `*` wildcards (`procedure.*`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_type: Option<String>,
    /// Error kind (`permanent`, `invalid_input`, `unrouted`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<DeadLetterKind>,
    /// Correlation id (the saga).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub saga: Option<String>,
    /// Failed at or after.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    /// Failed before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
    /// Status.
    pub status: StatusFilter,
    /// At most this many, newest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
}

/// When a letter failed, for filters and ages: its last failure, else when it was kept.
const FAILED_AT: &str = "coalesce(last_failure_at, received_at)";

impl Filter {
    /// Whether it narrows anything but the status.
    pub fn is_narrowed(&self) -> bool {
        self.queue.is_some()
            || self.message_type.is_some()
            || self.kind.is_some()
            || self.saga.is_some()
            || self.since.is_some()
            || self.until.is_some()
    }

    fn push_where(&self, q: &mut QueryBuilder<Postgres>) {
        q.push(" WHERE true");
        if let Some(queue) = &self.queue {
            q.push(" AND queue = ").push_bind(queue.clone());
        }
        if let Some(t) = &self.message_type {
            if t.contains('*') {
                let like = t
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
                    .replace('*', "%");
                q.push(" AND message_type LIKE ").push_bind(like);
            } else {
                q.push(" AND message_type = ").push_bind(t.clone());
            }
        }
        if let Some(kind) = &self.kind {
            q.push(" AND error_kind = ").push_bind(kind.clone());
        }
        if let Some(saga) = &self.saga {
            q.push(" AND correlation_id = ").push_bind(saga.clone());
        }
        if let Some(since) = self.since {
            q.push(format!(" AND {FAILED_AT} >= ")).push_bind(since);
        }
        if let Some(until) = self.until {
            q.push(format!(" AND {FAILED_AT} < ")).push_bind(until);
        }
        if let Some(status) = self.status.status() {
            q.push(" AND status = ").push_bind(status);
        }
    }

    /// The filter as `key=value` words, for messages and the audit trail.
    pub fn describe(&self) -> String {
        let mut words = Vec::new();
        let mut add = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                words.push(format!("{k}={v}"));
            }
        };
        add("queue", self.queue.clone());
        add("type", self.message_type.clone());
        add("kind", self.kind.as_ref().map(ToString::to_string));
        add("saga", self.saga.clone());
        add("since", self.since.map(|t| t.to_rfc3339()));
        add("until", self.until.map(|t| t.to_rfc3339()));
        add("status", Some(self.status.as_str().to_owned()));
        add("limit", self.limit.map(|n| n.to_string()));
        words.join(" ")
    }
}

/// Parses a point in time for `--since` and `--until`: an age (`90s`, `15m`, `1h`, `2d`, `1w`:
/// that long before `now`), an RFC 3339 time, or a date (midnight UTC).
pub fn parse_when(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    }
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: i64 = n.parse().map_err(|_| {
        format!("{s:?} is not a time: write an age (30m, 1h, 2d) or an RFC 3339 time")
    })?;
    let age = match unit {
        "s" => chrono::Duration::try_seconds(n),
        "m" => chrono::Duration::try_minutes(n),
        "h" => chrono::Duration::try_hours(n),
        "d" => chrono::Duration::try_days(n),
        "w" => chrono::Duration::try_weeks(n),
        _ => None,
    }
    .ok_or_else(|| format!("{s:?}: use s, m, h, d or w after the number, e.g. 1h"))?;
    Ok(now - age)
}

/// One dead letter in a list: no body, personal data masked.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Summary {
    /// Row id.
    pub id: i64,
    /// Message id.
    pub message_id: Option<Uuid>,
    /// Message type.
    pub message_type: Option<String>,
    /// Short name of the queue it died on.
    pub queue: String,
    /// Error kind.
    pub error_kind: DeadLetterKind,
    /// Error text (masked).
    pub error: String,
    /// The saga (masked).
    pub correlation_id: Option<String>,
    /// Failed attempts.
    pub attempts: i32,
    /// Last failure, else when it was kept.
    pub failed_at: DateTime<Utc>,
    /// When the keeper kept it.
    pub received_at: DateTime<Utc>,
    /// Where it stands.
    pub status: LetterStatus,
    /// How many times this row was replayed.
    pub replay_count: i32,
    /// How many times the message had been replayed before it died this time.
    pub replayed_before: i32,
}

impl Summary {
    /// Masks the personal data in its error text and saga id.
    fn mask(&mut self) {
        self.error = mask_text(&self.error);
        self.correlation_id = self.correlation_id.as_deref().map(mask_text);
    }

    /// What an operator should notice about it, in words (empty when nothing).
    pub fn flags(&self) -> Vec<String> {
        flags(
            self.status,
            self.replay_count,
            self.replayed_before,
            None,
            false,
        )
    }
}

fn flags(
    status: LetterStatus,
    replay_count: i32,
    replayed_before: i32,
    replayed_from: Option<i64>,
    redacted: bool,
) -> Vec<String> {
    let mut out = Vec::new();
    if replayed_before > 0 {
        let from = replayed_from
            .map(|id| format!(" (from #{id})"))
            .unwrap_or_default();
        out.push(format!(
            "failed again after {replayed_before} replay{}{from}",
            plural(replayed_before)
        ));
    }
    if replay_count > 0 {
        out.push(format!(
            "replayed {replay_count} time{}",
            plural(replay_count)
        ));
    }
    if status == LetterStatus::Discarded {
        out.push("discarded".into());
    }
    if redacted {
        out.push("body redacted".into());
    }
    out
}

fn plural(n: i32) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The columns of a [`Summary`].
pub(crate) const SUMMARY_COLUMNS: &str = "id, message_id, message_type, queue, error_kind, error, \
     correlation_id, attempts, coalesce(last_failure_at, received_at) AS failed_at, received_at, \
     status, replay_count, replayed_before";

/// The letters `filter` matches, newest first, masked.
pub async fn list(pool: &PgPool, filter: &Filter) -> Result<Vec<Summary>, DlqError> {
    let mut q = QueryBuilder::new(format!("SELECT {SUMMARY_COLUMNS} FROM dead_letters"));
    filter.push_where(&mut q);
    q.push(format!(" ORDER BY {FAILED_AT} DESC, id DESC"));
    if let Some(limit) = filter.limit {
        q.push(" LIMIT ").push_bind(limit.max(0));
    }
    let mut rows: Vec<Summary> = q.build_query_as().fetch_all(pool).await?;
    for r in &mut rows {
        r.mask();
    }
    Ok(rows)
}

/// How many letters `filter` matches (its limit aside).
pub async fn count(pool: &PgPool, filter: &Filter) -> Result<i64, DlqError> {
    let mut q = QueryBuilder::new("SELECT count(*) FROM dead_letters");
    filter.push_where(&mut q);
    Ok(q.build_query_scalar().fetch_one(pool).await?)
}

/// Letters that failed for the same cause: same queue, type, kind and error text once ids and
/// numbers in it are left out.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    /// Stable key of the cause (what `--group` takes).
    pub key: String,
    /// Queue.
    pub queue: String,
    /// Message type.
    pub message_type: Option<String>,
    /// Error kind.
    pub error_kind: DeadLetterKind,
    /// The error text with ids and numbers as `#` (masked).
    pub cause: String,
    /// How many letters.
    pub count: usize,
    /// The oldest failure.
    pub oldest: DateTime<Utc>,
    /// The newest failure.
    pub newest: DateTime<Utc>,
    /// The newest letter's own error text (masked).
    pub example: String,
    /// The letters' ids, newest first.
    pub ids: Vec<i64>,
}

/// `error` with every word holding a digit (ids, numbers, times) and every long hexadecimal
/// word replaced by `#`, so letters that failed the same way share one cause.
pub fn normalize_cause(error: &str) -> String {
    let mut out = String::with_capacity(error.len());
    let mut rest = error;
    while !rest.is_empty() {
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '*'))
            .unwrap_or(rest.len());
        if end == 0 {
            let c = rest.chars().next().unwrap_or_default();
            out.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        }
        let (word, after) = rest.split_at(end);
        let numeric = word.chars().any(|c| c.is_ascii_digit())
            || (word.len() >= 8 && word.chars().all(|c| c.is_ascii_hexdigit()));
        if numeric {
            // `#-#-#-#-#` (a UUID) and `#.#` (a decimal) are one `#`.
            while out.ends_with(['-', '.', ':']) && out[..out.len() - 1].ends_with('#') {
                out.pop();
                out.pop();
            }
            out.push('#');
        } else {
            out.push_str(word);
        }
        rest = after;
    }
    out.chars().take(200).collect()
}

/// The key of a cause: 12 hex digits of a digest of queue, type, kind and normalized error.
pub fn group_key(queue: &str, message_type: Option<&str>, kind: &str, cause: &str) -> String {
    let mut h = Sha256::new();
    for part in [queue, message_type.unwrap_or(""), kind, cause] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())[..12].to_owned()
}

/// Groups `rows` by cause, largest group first.
pub fn group(rows: &[Summary]) -> Vec<Group> {
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    for r in rows {
        let cause = normalize_cause(&r.error);
        let key = group_key(
            &r.queue,
            r.message_type.as_deref(),
            r.error_kind.as_str(),
            &cause,
        );
        let g = groups.entry(key.clone()).or_insert_with(|| Group {
            key,
            queue: r.queue.clone(),
            message_type: r.message_type.clone(),
            error_kind: r.error_kind.clone(),
            cause,
            count: 0,
            oldest: r.failed_at,
            newest: r.failed_at,
            example: r.error.clone(),
            ids: Vec::new(),
        });
        g.count += 1;
        g.ids.push(r.id);
        g.oldest = g.oldest.min(r.failed_at);
        if r.failed_at > g.newest {
            g.newest = r.failed_at;
            g.example = r.error.clone();
        }
    }
    let mut out: Vec<Group> = groups.into_values().collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then(b.newest.cmp(&a.newest)));
    out
}

/// The causes of the letters `filter` matches (its limit applies to the letters).
pub async fn groups(pool: &PgPool, filter: &Filter) -> Result<Vec<Group>, DlqError> {
    Ok(group(&list(pool, filter).await?))
}

/// Why `letter` cannot be replayed, or `None` when it can.
pub fn replay_refusal(letter: &DeadLetter) -> Option<String> {
    if letter.status == LetterStatus::Discarded {
        return Some("it was discarded".into());
    }
    if letter.is_redacted() {
        return Some(
            "its body was redacted (the message carried a secret): the sender must send it again"
                .into(),
        );
    }
    if letter.message_id.is_none() {
        return Some(
                "it has no message id (missing or not a UUID), so its receiver could not tell a copy from a new message"
                    .into(),
            );
    }
    if letter.message_type.is_none() {
        return Some("it has no message type".into());
    }
    // Whoever sent it, the hub may replay it: the replay names the original sender
    // (`replay_properties`), so the message is judged as that sender's, not as the hub's.
    None
}

/// The broker user whose message a replay of `letter` by the hub (`hub_user`) is judged as:
/// its original sender ([`original_sender`]), or the hub when that was the hub; `None` when
/// the letter names no sender (the consumer refuses it again).
pub fn replay_sender(letter: &DeadLetter, hub_user: &str) -> Option<String> {
    letter
        .property("user_id")
        .is_some()
        .then(|| original_sender(letter, hub_user).unwrap_or_else(|| hub_user.to_owned()))
}

/// The broker user a replay of `letter` must be judged as, when it is not the hub
/// (`hub_user`) itself: the sender the hub's copy names in
/// [`headers::ORIGINAL_USER_ID`](contracts::headers::ORIGINAL_USER_ID) (the consumer
/// republishes an agency's failed message as the hub with that header), or the letter's own
/// `user_id` when the broker dead-lettered another user's message as it was.
///
/// The header is believed only on a letter whose `user_id` is the hub's: as in the consumer,
/// only the hub's own user can have put it there (the broker checks `user_id`), so a header an
/// agency forged on its own message, or on one naming no user, names no one.
pub fn original_sender(letter: &DeadLetter, hub_user: &str) -> Option<String> {
    match letter.property("user_id").and_then(Value::as_str) {
        Some(user) if user == hub_user => letter
            .header_str(contracts::headers::ORIGINAL_USER_ID)
            .filter(|original| original != hub_user),
        Some(user) => Some(user.to_owned()),
        None => None,
    }
}

/// One letter by id, unmasked.
pub async fn get(pool: &PgPool, id: i64) -> Result<Option<DeadLetter>, DlqError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM dead_letters WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

/// Letters by id, in id order (missing ids are left out).
pub async fn get_many(pool: &PgPool, ids: &[i64]) -> Result<Vec<DeadLetter>, DlqError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM dead_letters WHERE id = ANY($1) ORDER BY id"
    )))
    .bind(ids)
    .fetch_all(pool)
    .await?)
}

/// Whether a view shows personal data in the clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disclosure<'a> {
    /// Masked (the default).
    Masked,
    /// In the clear, for this operator: audited.
    Unmasked {
        /// Who asks.
        operator: &'a str,
    },
}

impl Disclosure<'_> {
    fn masked(&self) -> bool {
        matches!(self, Disclosure::Masked)
    }
}

/// A dead letter as an operator sees it: masked unless disclosed, body decoded when it can be.
#[derive(Debug, Clone, Serialize)]
pub struct LetterView {
    /// The letter as shown: its error, saga, discard reason, properties and body masked unless
    /// disclosed (its JSON fields are the view's own, the body as base64).
    #[serde(flatten)]
    pub letter: DeadLetter,
    /// What to notice (a message that failed again after a replay, ...).
    pub flags: Vec<String>,
    /// Whether `replay` would take it.
    pub replayable: bool,
    /// Why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_replayable: Option<String>,
    /// The broker user a replay is judged as sent by: the original sender, which the replay
    /// keeps ([`replay_properties`]); `None` when the letter names no sender.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replayed_as: Option<String>,
    /// The body, when it is JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_json: Option<Value>,
    /// The body, when it is text but not JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_text: Option<String>,
    /// Size of the stored body.
    pub body_bytes: usize,
    /// Whether the consumer replaced the body because it carried a secret.
    pub redacted: bool,
    /// Whether personal data is masked.
    pub masked: bool,
}

/// How `letter` looks to an operator, for a hub publishing as `broker_user` (whose message a
/// replay is when the letter's sender was the hub). Does not audit: [`show`] and [`export`]
/// do.
pub fn view(letter: &DeadLetter, disclosure: Disclosure<'_>, broker_user: &str) -> LetterView {
    let masked = disclosure.masked();
    let text = |s: &str| if masked { mask_text(s) } else { s.to_owned() };
    let mut shown = letter.clone();
    let mut body_json = letter.body_json();
    if masked {
        mask_json(&mut shown.properties);
        if let Some(b) = &mut body_json {
            mask_json(b);
        }
    }
    let body_text = match body_json {
        Some(_) => None,
        None => std::str::from_utf8(&letter.body).ok().map(text),
    };
    match (&body_json, &body_text) {
        (Some(j), _) if masked => shown.body = serde_json::to_vec(j).unwrap_or_default(),
        (None, Some(t)) if masked => shown.body = t.as_bytes().to_vec(),
        _ => {}
    }
    shown.error = text(&letter.error);
    shown.correlation_id = letter.correlation_id.as_deref().map(text);
    shown.discard_reason = letter.discard_reason.as_deref().map(text);
    let refusal = replay_refusal(letter);
    LetterView {
        flags: flags(
            letter.status,
            letter.replay_count,
            letter.replayed_before,
            letter.replayed_from,
            letter.is_redacted(),
        ),
        letter: shown,
        replayable: refusal.is_none(),
        not_replayable: refusal,
        replayed_as: replay_sender(letter, broker_user),
        body_json,
        body_text,
        body_bytes: letter.body.len(),
        redacted: letter.is_redacted(),
        masked,
    }
}

/// One letter as an operator sees it; an unmasked view is audited (`dlq.show_unmasked`) before
/// it is returned.
pub async fn show(
    pool: &PgPool,
    id: i64,
    disclosure: Disclosure<'_>,
    broker_user: &str,
) -> Result<LetterView, DlqError> {
    let letter = get(pool, id)
        .await?
        .ok_or_else(|| DlqError::NothingMatched(format!("id {id}")))?;
    if let Disclosure::Unmasked { operator } = disclosure {
        let mut conn = pool.acquire().await?;
        audit::record(
            &mut conn,
            &Action {
                operator,
                action: "dlq.show_unmasked",
                target: &id.to_string(),
                reason: None,
                details: serde_json::json!({
                    "message_id": letter.message_id,
                    "message_type": letter.message_type,
                    "queue": letter.queue,
                }),
            },
        )
        .await?;
    }
    Ok(view(&letter, disclosure, broker_user))
}

/// Writes every letter `filter` matches to `out`, one JSON object ([`LetterView`]) a line,
/// oldest first; returns how many. An unmasked export is audited (`dlq.export_unmasked`)
/// before anything is written.
pub async fn export(
    pool: &PgPool,
    filter: &Filter,
    disclosure: Disclosure<'_>,
    broker_user: &str,
    out: &mut (dyn std::io::Write + Send),
) -> Result<usize, DlqError> {
    let total = count(pool, filter).await?;
    let total = filter.limit.map_or(total, |l| total.min(l.max(0)));
    if let Disclosure::Unmasked { operator } = disclosure {
        let mut conn = pool.acquire().await?;
        audit::record(
            &mut conn,
            &Action {
                operator,
                action: "dlq.export_unmasked",
                target: &format!("filter: {}", filter.describe()),
                reason: None,
                details: serde_json::json!({ "filter": filter, "letters": total }),
            },
        )
        .await?;
    }
    // Pages by id, so a large export never holds every body at once.
    const PAGE: i64 = 200;
    let mut written = 0usize;
    let mut after = 0i64;
    while (written as i64) < total {
        let mut q = QueryBuilder::new(format!("SELECT {COLUMNS} FROM dead_letters"));
        filter.push_where(&mut q);
        q.push(" AND id > ").push_bind(after);
        q.push(" ORDER BY id LIMIT ")
            .push_bind(PAGE.min(total - written as i64));
        let page: Vec<DeadLetter> = q.build_query_as().fetch_all(pool).await?;
        if page.is_empty() {
            break;
        }
        for letter in &page {
            let line = serde_json::to_string(&view(letter, disclosure, broker_user))
                .map_err(std::io::Error::other)?;
            writeln!(out, "{line}")?;
            written += 1;
            after = letter.id;
        }
    }
    out.flush()?;
    Ok(written)
}

/// Which letters a replay or discard takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Selection {
    /// These, whatever their status (a discarded one is refused).
    Ids(Vec<i64>),
    /// The `new` letters of the group with this key among those the filter matches.
    Group {
        /// The group's key ([`Group::key`]).
        key: String,
        /// Narrows the letters grouped.
        filter: Filter,
    },
    /// The `new` letters the filter matches (its status is ignored).
    Filter(Filter),
}

impl Selection {
    /// In words, for messages and the audit trail.
    pub fn describe(&self) -> String {
        match self {
            Selection::Ids(ids) => {
                let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
                format!("ids {}", ids.join(","))
            }
            Selection::Group { key, filter } if filter.is_narrowed() => {
                format!("group {key} ({})", filter.describe())
            }
            Selection::Group { key, .. } => format!("group {key}"),
            Selection::Filter(filter) => format!("filter {}", filter.describe()),
        }
    }

    fn by_id(&self) -> bool {
        matches!(self, Selection::Ids(_))
    }
}

/// A letter a replay or discard left alone, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// Row id.
    pub id: i64,
    /// Why.
    pub reason: String,
}

/// The letters of `selection`, with the ids that named none.
async fn resolve(
    pool: &PgPool,
    selection: &Selection,
) -> Result<(Vec<DeadLetter>, Vec<Skipped>), DlqError> {
    let letters = match selection {
        Selection::Ids(ids) => {
            let found = get_many(pool, ids).await?;
            let missing = ids
                .iter()
                .filter(|id| !found.iter().any(|l| l.id == **id))
                .map(|&id| Skipped {
                    id,
                    reason: "no such dead letter".into(),
                })
                .collect();
            return Ok((found, missing));
        }
        Selection::Group { key, filter } => {
            let filter = Filter {
                status: StatusFilter::New,
                ..filter.clone()
            };
            let ids = groups(pool, &filter)
                .await?
                .into_iter()
                .find(|g| g.key == *key)
                .map(|g| g.ids)
                .unwrap_or_default();
            get_many(pool, &ids).await?
        }
        Selection::Filter(filter) => {
            let filter = Filter {
                status: StatusFilter::New,
                ..filter.clone()
            };
            let ids: Vec<i64> = list(pool, &filter).await?.iter().map(|s| s.id).collect();
            get_many(pool, &ids).await?
        }
    };
    Ok((letters, Vec::new()))
}

/// How a replay runs.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// Letters per second at most.
    pub rate: f64,
    /// Who.
    pub operator: String,
    /// Why (kept in the audit trail).
    pub reason: Option<String>,
    /// By filter or group, also take letters whose message already failed again after a
    /// replay (left alone by default, so nothing loops).
    pub include_replayed: bool,
}

/// The default rate of `hub dlq replay`: 10 letters a second.
pub const DEFAULT_RATE: f64 = 10.0;

/// One letter a replay will send.
#[derive(Debug, Clone, Serialize)]
pub struct Planned {
    /// Row id.
    pub id: i64,
    /// Queue it died on.
    pub queue: String,
    /// Message type.
    pub message_type: Option<String>,
    /// Message id (kept).
    pub message_id: Option<Uuid>,
    /// Exchange it goes to.
    pub exchange: String,
    /// Routing key.
    pub routing_key: String,
    /// Replays of this message so far (the new `x-hub-replayed` is one more).
    pub replays_so_far: i32,
    /// Whose message the replay is judged as ([`replay_sender`]).
    pub sender: Option<String>,
    #[serde(skip)]
    letter: DeadLetter,
}

/// What a replay would do: what goes, what does not and why. A dry run prints this.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayPlan {
    /// The selection, in words.
    pub selection: String,
    /// To send, in id order.
    pub replay: Vec<Planned>,
    /// Left alone.
    pub skipped: Vec<Skipped>,
}

/// Works out what replaying `selection` would do, changing nothing.
pub async fn plan_replay(
    pool: &PgPool,
    broker_user: &str,
    selection: &Selection,
    include_replayed: bool,
) -> Result<ReplayPlan, DlqError> {
    let (letters, mut skipped) = resolve(pool, selection).await?;
    if letters.is_empty() {
        return Err(DlqError::NothingMatched(selection.describe()));
    }
    let mut replay = Vec::new();
    for letter in letters {
        let refusal = replay_refusal(&letter).or_else(|| {
            (!selection.by_id() && !include_replayed && letter.replayed_before > 0).then(|| {
                format!(
                    "its message already failed again after {} replay{}: replay it by id, or add --include-replayed",
                    letter.replayed_before,
                    plural(letter.replayed_before)
                )
            })
        });
        match refusal {
            Some(reason) => skipped.push(Skipped {
                id: letter.id,
                reason,
            }),
            None => replay.push(Planned {
                id: letter.id,
                queue: letter.queue.clone(),
                message_type: letter.message_type.clone(),
                message_id: letter.message_id,
                exchange: letter.original_exchange.clone(),
                routing_key: letter.original_routing_key.clone(),
                replays_so_far: letter.replayed_before + letter.replay_count,
                sender: replay_sender(&letter, broker_user),
                letter,
            }),
        }
    }
    skipped.sort_by_key(|s| s.id);
    Ok(ReplayPlan {
        selection: selection.describe(),
        replay,
        skipped,
    })
}

/// What a replay did.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    /// The selection, in words.
    pub selection: String,
    /// Re-published and marked `replayed`.
    pub replayed: Vec<i64>,
    /// Left alone, and why.
    pub skipped: Vec<Skipped>,
    /// Could not be re-published (or marked), and why; still `new`.
    pub failed: Vec<Skipped>,
    /// Letters per second asked for.
    pub rate: f64,
    /// How long it took.
    pub elapsed_ms: u64,
    /// The audit row.
    pub audit_id: i64,
}

/// Replays `selection` through `publisher` (the hub's, publishing as `broker_user`) at
/// `options.rate`, marking each letter `replayed` once the broker confirmed it, then writes one
/// audit row (`dlq.replay`) for the run. `progress(done, total)` is called after each letter.
pub async fn replay(
    pool: &PgPool,
    publisher: &Publisher,
    broker_user: &str,
    selection: &Selection,
    options: &ReplayOptions,
    progress: &mut (dyn FnMut(usize, usize) + Send),
) -> Result<ReplayReport, DlqError> {
    if !(options.rate.is_finite() && options.rate > 0.0) {
        return Err(DlqError::BadUsage(format!(
            "the rate must be a positive number of letters a second, not {}",
            options.rate
        )));
    }
    let plan = plan_replay(pool, broker_user, selection, options.include_replayed).await?;
    let period = Duration::from_secs_f64(1.0 / options.rate);
    let started = Instant::now();
    let total = plan.replay.len();
    let (mut replayed, mut failed) = (Vec::new(), Vec::new());
    for (i, item) in plan.replay.iter().enumerate() {
        // One letter per period, measured from the start: a slow publish does not make the
        // next ones burst.
        if i > 0 {
            tokio::time::sleep_until((started + period.mul_f64(i as f64)).into()).await;
        }
        match replay_one(
            pool,
            publisher,
            broker_user,
            &item.letter,
            selection.by_id(),
        )
        .await
        {
            Ok(()) => replayed.push(item.id),
            Err(reason) => {
                tracing::warn!(id = item.id, %reason, "dead letter not replayed");
                failed.push(Skipped {
                    id: item.id,
                    reason,
                });
            }
        }
        progress(i + 1, total);
    }
    let elapsed_ms = started.elapsed().as_millis() as u64;
    let mut conn = pool.acquire().await?;
    let audit_id = audit::record(
        &mut conn,
        &Action {
            operator: &options.operator,
            action: "dlq.replay",
            target: &plan.selection,
            reason: options.reason.as_deref(),
            details: serde_json::json!({
                "selection": selection,
                "replayed": replayed,
                "skipped": plan.skipped,
                "failed": failed,
                "rate": options.rate,
                "elapsed_ms": elapsed_ms,
            }),
        },
    )
    .await?;
    tracing::info!(
        selection = %plan.selection, replayed = replayed.len(), failed = failed.len(),
        skipped = plan.skipped.len(), audit_id, "dead letters replayed"
    );
    Ok(ReplayReport {
        selection: plan.selection,
        replayed,
        skipped: plan.skipped,
        failed,
        rate: options.rate,
        elapsed_ms,
        audit_id,
    })
}

/// Re-publishes one letter and marks it, holding its row so two operators cannot replay it at
/// once. An error is the reason, for the report.
async fn replay_one(
    pool: &PgPool,
    publisher: &Publisher,
    hub_user: &str,
    letter: &DeadLetter,
    by_id: bool,
) -> Result<(), String> {
    let db = |e: sqlx::Error| format!("database: {e}");
    let mut tx = pool.begin().await.map_err(db)?;
    let row: Option<(LetterStatus, i32)> =
        sqlx::query_as("SELECT status, replay_count FROM dead_letters WHERE id = $1 FOR UPDATE")
            .bind(letter.id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
    let Some((status, replay_count)) = row else {
        return Err("it is gone".into());
    };
    if status == LetterStatus::Discarded || (!by_id && status != LetterStatus::New) {
        return Err(format!("it was {status} meanwhile"));
    }
    let count = letter.replayed_before + replay_count + 1;
    let properties = replay_properties(letter, count, hub_user);
    publisher
        .republish(
            &letter.original_exchange,
            &letter.original_routing_key,
            &properties,
            &letter.body,
        )
        .await
        .map_err(|e| e.to_string())?;
    sqlx::query(
        "UPDATE dead_letters SET status = $2, replay_count = replay_count + 1,
             replayed_at = now() WHERE id = $1",
    )
    .bind(letter.id)
    .bind(LetterStatus::Replayed)
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    // Published but not marked (the commit failed): a second replay sends the same message id,
    // which the receiver's inbox skips.
    tx.commit().await.map_err(db)
}

/// Headers that describe how a message failed, not the message: a replay leaves them out.
fn is_failure_header(name: &str) -> bool {
    name.starts_with("x-hub-")
        || name == "x-death"
        || name.starts_with("x-first-death-")
        || name.starts_with("x-last-death-")
        || name == "x-delivery-count"
}

/// The properties a replay by the hub (broker user `hub_user`) publishes `letter` with, as
/// JSON ([`hub_runtime::broker::properties_to_json`]): the original ones (message id, type,
/// correlation id, timestamp, app id, `traceparent` and every other header) without the
/// failure headers and a retry tier's TTL, plus `x-hub-replayed: count` and
/// `x-hub-dead-letter-id`.
///
/// The replay keeps the sender: the broker lets the hub publish only as itself, so a letter
/// that named a user goes out with the hub's `user_id`, and, when its sender was not the hub
/// ([`original_sender`]), with that sender in
/// [`headers::ORIGINAL_USER_ID`](contracts::headers::ORIGINAL_USER_ID), where the consumer
/// reads it: the replayed message is judged as its sender's, so a refused forgery is refused
/// again and an agency's message is taken as the agency's. A letter that named no user names
/// none again (and no original sender either), so the consumer still refuses it.
pub fn replay_properties(letter: &DeadLetter, count: i32, hub_user: &str) -> Value {
    /// The properties that travel as they are; `user_id` is set below.
    const KEPT: [&str; 9] = [
        "message_id",
        "type",
        "correlation_id",
        "app_id",
        "reply_to",
        "content_type",
        "content_encoding",
        "timestamp",
        "priority",
    ];
    let mut props: Map<String, Value> = KEPT
        .iter()
        .filter_map(|&name| Some((name.to_owned(), letter.property(name)?.clone())))
        .collect();
    // Persistent unless the letter said otherwise.
    let delivery_mode = letter
        .property("delivery_mode")
        .and_then(Value::as_u64)
        .and_then(|d| u8::try_from(d).ok())
        .unwrap_or(2);
    props.insert("delivery_mode".into(), Value::from(delivery_mode));
    let mut headers: Map<String, Value> = letter
        .headers()
        .map(|h| {
            h.iter()
                .filter(|(k, _)| !is_failure_header(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    // The failure headers were dropped above, the original sender's among them (a header an
    // agency forged is no different from any other `x-hub-*` one): it comes back only as
    // `original_sender` judged it.
    if letter.property("user_id").is_some() {
        props.insert("user_id".into(), Value::from(hub_user));
    }
    if let Some(sender) = original_sender(letter, hub_user) {
        headers.insert(
            contracts::headers::ORIGINAL_USER_ID.into(),
            Value::from(sender),
        );
    }
    headers.insert(REPLAYED.into(), Value::from(count));
    headers.insert(DEAD_LETTER_ID.into(), Value::from(letter.id));
    props.insert("headers".into(), Value::Object(headers));
    Value::Object(props)
}

/// What a discard did.
#[derive(Debug, Clone, Serialize)]
pub struct DiscardReport {
    /// The selection, in words.
    pub selection: String,
    /// Marked `discarded`.
    pub discarded: Vec<i64>,
    /// Left alone, and why.
    pub skipped: Vec<Skipped>,
    /// The audit row.
    pub audit_id: i64,
}

/// Marks the letters of `selection` discarded with `reason` (required), and writes one audit
/// row (`dlq.discard`) in the same transaction.
pub async fn discard(
    pool: &PgPool,
    selection: &Selection,
    reason: &str,
    operator: &str,
) -> Result<DiscardReport, DlqError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(DlqError::BadUsage(
            "say why the letters are discarded: --reason TEXT".into(),
        ));
    }
    let (letters, mut skipped) = resolve(pool, selection).await?;
    if letters.is_empty() {
        return Err(DlqError::NothingMatched(selection.describe()));
    }
    let ids: Vec<i64> = letters.iter().map(|l| l.id).collect();
    let mut tx = pool.begin().await?;
    let discarded: Vec<i64> = sqlx::query_scalar(
        "UPDATE dead_letters SET status = $3, discarded_at = now(), discard_reason = $2
         WHERE id = ANY($1) AND status <> $3 RETURNING id",
    )
    .bind(&ids)
    .bind(reason)
    .bind(LetterStatus::Discarded)
    .fetch_all(&mut *tx)
    .await?;
    skipped.extend(
        ids.iter()
            .filter(|id| !discarded.contains(id))
            .map(|&id| Skipped {
                id,
                reason: "it was discarded before".into(),
            }),
    );
    skipped.sort_by_key(|s| s.id);
    let mut discarded = discarded;
    discarded.sort_unstable();
    let selection_text = selection.describe();
    let audit_id = audit::record(
        &mut tx,
        &Action {
            operator,
            action: "dlq.discard",
            target: &selection_text,
            reason: Some(reason),
            details: serde_json::json!({
                "selection": selection,
                "discarded": discarded,
                "skipped": skipped,
            }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(DiscardReport {
        selection: selection_text,
        discarded,
        skipped,
        audit_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use chrono::TimeZone;

    fn letter(properties: Value) -> DeadLetter {
        let t = Utc.timestamp_opt(1_772_000_000, 0).single().expect("time");
        DeadLetter {
            id: 42,
            message_id: Some(Uuid::nil()),
            message_type: Some("test.deposit.v1".into()),
            queue: "saga.ledger".into(),
            original_exchange: "ns.bus".into(),
            original_routing_key: "test.deposit.v1".into(),
            error_kind: DeadLetterKind::from("permanent"),
            error: "no such account".into(),
            attempts: 1,
            first_failure_at: Some(t),
            last_failure_at: Some(t),
            correlation_id: Some("saga-1".into()),
            properties,
            body: br#"{"account":"a","phone":"+375291234567"}"#.to_vec(),
            fingerprint: None,
            status: LetterStatus::New,
            replay_count: 0,
            replayed_at: None,
            discarded_at: None,
            discard_reason: None,
            received_at: t,
            replayed_before: 0,
            replayed_from: None,
        }
    }

    #[test]
    fn causes_leave_ids_and_numbers_out() {
        assert_eq!(
            normalize_cause("saga 6f1c1a52-3c55-4a43-9c1e-6f0e8a1d1a01 not found after 3 tries"),
            "saga # not found after # tries"
        );
        assert_eq!(
            normalize_cause("amount 12.50 too large"),
            normalize_cause("amount 3.1 too large")
        );
        assert_eq!(normalize_cause("no such account"), "no such account");
        let a = group_key("q", Some("t.v1"), "permanent", "x #");
        assert_eq!(a.len(), 12);
        assert_ne!(a, group_key("q", Some("t.v1"), "invalid_input", "x #"));
    }

    #[test]
    fn a_replay_keeps_the_message_and_drops_the_failure() {
        let l = letter(serde_json::json!({
            "message_id": Uuid::nil().to_string(),
            "type": "test.deposit.v1",
            "correlation_id": "saga-1",
            "app_id": "desk",
            "user_id": "hub",
            "timestamp": 1_772_000_000u64,
            "delivery_mode": 2,
            "expiration": "300",
            "headers": {
                "traceparent": "00-a-b-01",
                "causation_id": "c",
                "x-hub-error": "no such account",
                "x-hub-attempts": 1,
                "x-death": [{"queue": "ns.retry.1"}],
                "x-delivery-count": 2,
            }
        }));
        assert_eq!(replay_refusal(&l), None);
        let p = replay_properties(&l, 3, "hub");
        assert_eq!(p["message_id"], Uuid::nil().to_string());
        assert_eq!(p["correlation_id"], "saga-1");
        assert_eq!(p["user_id"], "hub");
        assert_eq!(p["timestamp"], 1_772_000_000u64);
        assert_eq!(p["delivery_mode"], 2);
        assert_eq!(
            p.get("expiration"),
            None,
            "a retry tier's TTL does not travel"
        );
        let h = p["headers"].as_object().expect("headers");
        let names: Vec<&str> = h.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "causation_id",
                "traceparent",
                "x-hub-dead-letter-id",
                "x-hub-replayed"
            ]
        );
        assert_eq!(h[REPLAYED], 3);
        assert_eq!(h[DEAD_LETTER_ID], 42);
        let mut no_mode = l.clone();
        no_mode.properties["delivery_mode"] = Value::from("x");
        assert_eq!(replay_properties(&no_mode, 1, "hub")["delivery_mode"], 2);
    }

    #[test]
    fn letters_that_cannot_be_replayed_say_why() {
        let redacted = letter(serde_json::json!({"headers": {"x-hub-redacted": true}}));
        assert!(replay_refusal(&redacted).is_some_and(|r| r.contains("redacted")));
        let mut no_id = letter(serde_json::json!({"headers": {}}));
        no_id.message_id = None;
        assert!(replay_refusal(&no_id).is_some_and(|r| r.contains("message id")));
    }

    /// A letter as the consumer makes it of an agency's message: the hub's copy, with the
    /// hub's user id and the agency's in `x-hub-original-user-id` (`republished_as_hub`).
    fn agencys_letter(agency: &str) -> DeadLetter {
        letter(serde_json::json!({
            "message_id": Uuid::nil().to_string(),
            "type": "test.deposit.v1",
            "user_id": "hub",
            "headers": {
                contracts::headers::ORIGINAL_USER_ID: agency,
                "x-hub-error": "sent by broker user \"desk-a\" for desk \"b\"",
                "x-hub-error-kind": "permanent",
            }
        }))
    }

    #[test]
    fn a_replay_of_an_agencys_letter_is_judged_as_the_agencys() {
        let l = agencys_letter("authority-fszn");
        assert_eq!(replay_refusal(&l), None);
        assert_eq!(replay_sender(&l, "hub").as_deref(), Some("authority-fszn"));
        let p = replay_properties(&l, 1, "hub");
        // The broker lets the hub publish only as itself; the consumer believes the header on
        // the hub's user id, so the replay is judged as the agency's.
        assert_eq!(p["user_id"], "hub");
        assert_eq!(
            p["headers"][contracts::headers::ORIGINAL_USER_ID],
            "authority-fszn"
        );
        assert_eq!(p["headers"].get("x-hub-error"), None);
    }

    #[test]
    fn a_letter_the_broker_kept_as_the_agency_sent_it_is_replayed_in_its_name() {
        // Dead-lettered by the broker (a delivery limit), not by the consumer: the agency's own
        // user id, and a header it forged, which names no one.
        let l = letter(serde_json::json!({
            "user_id": "desk-a",
            "headers": {contracts::headers::ORIGINAL_USER_ID: "hub"},
        }));
        assert_eq!(replay_refusal(&l), None);
        let p = replay_properties(&l, 1, "hub");
        assert_eq!(p["user_id"], "hub");
        assert_eq!(p["headers"][contracts::headers::ORIGINAL_USER_ID], "desk-a");
        assert_eq!(replay_sender(&l, "hub").as_deref(), Some("desk-a"));
    }

    #[test]
    fn only_the_hubs_own_letters_vouch_for_a_sender() {
        // The hub's own message stays the hub's: no header is made up.
        let ours = letter(serde_json::json!({"user_id": "hub", "headers": {}}));
        let p = replay_properties(&ours, 1, "hub");
        assert_eq!(p["user_id"], "hub");
        assert_eq!(p["headers"].get(contracts::headers::ORIGINAL_USER_ID), None);
        assert_eq!(replay_sender(&ours, "hub").as_deref(), Some("hub"));
        // A letter naming no sender names none again, whatever header it carries: the consumer
        // refuses it again instead of taking the header's word.
        let unnamed = letter(serde_json::json!({
            "headers": {contracts::headers::ORIGINAL_USER_ID: "authority-fszn"},
        }));
        let p = replay_properties(&unnamed, 1, "hub");
        assert_eq!(p.get("user_id"), None);
        assert_eq!(p["headers"].get(contracts::headers::ORIGINAL_USER_ID), None);
        assert_eq!(replay_sender(&unnamed, "hub"), None);
    }

    #[test]
    fn a_view_is_masked_unless_disclosed() {
        let l = letter(serde_json::json!({"headers": {"x-hub-error": "phone 375291234567 taken"}}));
        let v = view(&l, Disclosure::Masked, "hub");
        assert_eq!(
            v.body_json.as_ref().map(|b| b["phone"].clone()),
            Some("+375 29 ***-**-67".into())
        );
        assert_eq!(
            v.letter.properties["headers"]["x-hub-error"],
            "phone +375 29 ***-**-67 taken"
        );
        assert!(!String::from_utf8_lossy(&v.letter.body).contains("1234567"));
        let json = serde_json::to_value(&v).expect("json");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(json["body"].as_str().expect("base64 text"))
            .expect("base64");
        assert_eq!(raw, v.letter.body, "the body shown is the body in JSON");
        assert_eq!(json["status"], "new");
        assert_eq!(json["error_kind"], "permanent");
        assert_eq!(json.get("fingerprint"), None);
        let clear = view(&l, Disclosure::Unmasked { operator: "op" }, "hub");
        assert_eq!(
            clear.body_json.map(|b| b["phone"].clone()),
            Some("+375291234567".into())
        );
        assert!(!clear.masked);
    }

    #[test]
    fn times_are_ages_dates_or_rfc3339() {
        let now = Utc.timestamp_opt(1_772_000_000, 0).single().expect("time");
        assert_eq!(parse_when("1h", now), Ok(now - chrono::Duration::hours(1)));
        assert_eq!(parse_when("2d", now), Ok(now - chrono::Duration::days(2)));
        assert_eq!(
            parse_when("2026-03-01T10:00:00Z", now).map(|t| t.timestamp()),
            Ok(1_772_359_200)
        );
        assert!(parse_when("2026-03-01", now).is_ok());
        assert!(parse_when("soon", now).is_err());
        assert!(parse_when("5y", now).is_err());
    }
}
