//! Saga inspection and repair for operators: list sagas, show one (its state, the timeline of
//! every message in and out, pending timers, the dead letters it caused), re-publish its last
//! step's messages, cancel it. The CLI (`hub saga`, [`cli`]) and the web console call these
//! functions; every action that changes something, or shows personal data in the clear, writes
//! an audit row ([`super::audit`]) in the same transaction.
//!
//! - **Masking.** Business keys, states and error texts are masked with the dead-letter
//!   workbench's rules ([`super::dlq::mask`]) unless the caller asks for
//!   [`Disclosure::Unmasked`], which is audited (`saga.show_unmasked`).
//! - **Retry step** puts the outgoing messages of the saga's last transition back into the
//!   outbox with their original message ids: a receiver that handled one already drops it (its
//!   inbox), one that lost it (dead-lettered, never received) does it now.
//! - **Cancel** sends `ops.cancel_saga.v1` through the outbox to the saga's own queue, the way
//!   its timers come back to it; the saga's [`hub_runtime::engine::Saga::cancel`] hook runs the
//!   compensations and ends it. What the hook would do is checked first, so a saga that cannot
//!   be cancelled is refused here and not in a dead letter.

pub mod cli;

use chrono::{DateTime, Utc};
use contracts::Message;
use contracts::Metadata;
use contracts::ops::CancelSaga;
use contracts::person::IdNumber;
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use sqlx::types::Json;
use uuid::Uuid;

use super::audit::{self, Action};
use super::dlq::{self, Disclosure, mask::mask_json, mask::mask_text};
use hub_runtime::broker::Envelope;
use hub_runtime::engine::CancelPreview;
pub use hub_runtime::engine::SagaTypes;
use hub_runtime::store::outbox;

/// Why a call did not do what was asked. Each variant is a decision for the caller (and an
/// exit code for the CLI).
#[derive(Debug, thiserror::Error)]
pub enum SagaOpsError {
    /// No saga matches.
    #[error("no saga matches {0:?}")]
    NotFound(String),
    /// Several sagas match: the caller must name one by its id.
    #[error("{} sagas match {target:?}: name one by its id", .matches.len())]
    Ambiguous {
        /// What was asked for.
        target: String,
        /// The sagas it matches (business keys masked).
        matches: Vec<SagaSummary>,
    },
    /// The saga refuses: it has ended, its last step sent nothing, it cannot be cancelled.
    #[error("{0}")]
    Refused(String),
    /// The operator may not do this (see the message).
    #[error("{0}")]
    NotAllowed(String),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

impl SagaOpsError {
    /// The CLI's exit code: 3 nothing found or ambiguous, 1 refused, 77 not allowed, 69 database
    /// unreachable, 1 anything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            SagaOpsError::NotFound(_) | SagaOpsError::Ambiguous { .. } => 3,
            SagaOpsError::NotAllowed(_) => 77,
            SagaOpsError::Database(e) if hub_runtime::store::is_transient(e) => 69,
            SagaOpsError::Refused(_) | SagaOpsError::Database(_) => 1,
        }
    }
}

impl From<dlq::DlqError> for SagaOpsError {
    fn from(e: dlq::DlqError) -> Self {
        match e {
            dlq::DlqError::Database(e) => SagaOpsError::Database(e),
            other => SagaOpsError::Refused(other.to_string()),
        }
    }
}

/// One saga in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct SagaSummary {
    /// The saga id (the `correlation_id` of its messages).
    pub id: Uuid,
    /// Its type (`issuance`, `procedure`, ...).
    pub saga_type: String,
    /// The business key (masked when it is an identification number).
    pub business_key: Option<String>,
    /// The state's short name.
    pub state_name: String,
    /// Whether it has ended.
    pub terminal: bool,
    /// Steps taken.
    pub version: i64,
    /// When it started.
    pub created_at: DateTime<Utc>,
    /// Its last step.
    pub updated_at: DateTime<Utc>,
}

impl SagaSummary {
    /// The same, with the business key masked when it is an identification number.
    fn masked(mut self) -> Self {
        self.business_key = self.business_key.map(|k| mask_key(&k));
        self
    }
}

/// A business key as operators see it: masked when it is an identification number.
pub fn mask_key(key: &str) -> String {
    IdNumber::parse(key).map_or_else(|_| key.to_owned(), |id| id.masked())
}

const SUMMARY: &str =
    "id, saga_type, business_key, state_name, terminal, version, created_at, updated_at";

/// Which sagas: every condition given must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListFilter {
    /// Saga type.
    pub saga_type: Option<String>,
    /// State name.
    pub state: Option<String>,
    /// Started longer ago than this.
    pub older_than: Option<chrono::Duration>,
    /// Not ended, and no step for longer than this (listed longest stuck first).
    pub stuck_longer_than: Option<chrono::Duration>,
    /// Ended (`Some(true)`) or not (`Some(false)`).
    pub terminal: Option<bool>,
    /// At most this many.
    pub limit: i64,
}

impl Default for ListFilter {
    fn default() -> Self {
        Self {
            saga_type: None,
            state: None,
            older_than: None,
            stuck_longer_than: None,
            terminal: None,
            limit: 50,
        }
    }
}

impl ListFilter {
    /// The filter in words, for messages.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(t) = &self.saga_type {
            parts.push(format!("type {t}"));
        }
        if let Some(s) = &self.state {
            parts.push(format!("state {s}"));
        }
        if let Some(d) = self.older_than {
            parts.push(format!("older than {}", age_text(d)));
        }
        if let Some(d) = self.stuck_longer_than {
            parts.push(format!("stuck longer than {}", age_text(d)));
        }
        match self.terminal {
            Some(true) => parts.push("ended".into()),
            Some(false) => parts.push("active".into()),
            None => {}
        }
        if parts.is_empty() {
            "the filter (there are no sagas)".into()
        } else {
            parts.join(", ")
        }
    }
}

const FILTER: &str = "($1::text IS NULL OR saga_type = $1)
     AND ($2::text IS NULL OR state_name = $2)
     AND ($3::float8 IS NULL OR created_at < now() - make_interval(secs => $3))
     AND ($4::float8 IS NULL OR (NOT terminal AND updated_at < now() - make_interval(secs => $4)))
     AND ($5::bool IS NULL OR terminal = $5)";

fn seconds(d: Option<chrono::Duration>) -> Option<f64> {
    d.map(|d| d.num_milliseconds() as f64 / 1000.0)
}

/// The sagas `filter` matches, business keys masked: newest step first, or longest stuck first
/// when `stuck_longer_than` is given.
pub async fn list(pool: &PgPool, filter: &ListFilter) -> Result<Vec<SagaSummary>, SagaOpsError> {
    let rows: Vec<SagaSummary> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SUMMARY} FROM sagas WHERE {FILTER}
         ORDER BY (CASE WHEN $4::float8 IS NOT NULL THEN updated_at END) ASC, updated_at DESC, id
         LIMIT $6"
    )))
    .bind(&filter.saga_type)
    .bind(&filter.state)
    .bind(seconds(filter.older_than))
    .bind(seconds(filter.stuck_longer_than))
    .bind(filter.terminal)
    .bind(filter.limit.max(0))
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(SagaSummary::masked).collect())
}

/// How many sagas `filter` matches, without the limit.
pub async fn count(pool: &PgPool, filter: &ListFilter) -> Result<i64, SagaOpsError> {
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM sagas WHERE {FILTER}"
    )))
    .bind(&filter.saga_type)
    .bind(&filter.state)
    .bind(seconds(filter.older_than))
    .bind(seconds(filter.stuck_longer_than))
    .bind(filter.terminal)
    .fetch_one(pool)
    .await?)
}

/// The sagas `target` names, business keys masked, looked up in this order (the first that
/// finds any wins): the saga id; the business key; a value in the state — an identification
/// number, an application number (the hub's `number` or a desk's), an ERIP order number, an
/// application or complaint id.
pub async fn find(pool: &PgPool, target: &str) -> Result<Vec<SagaSummary>, SagaOpsError> {
    let target = target.trim();
    if let Ok(id) = Uuid::parse_str(target) {
        let row: Option<SagaSummary> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {SUMMARY} FROM sagas WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(pool)
        .await?;
        if let Some(row) = row {
            return Ok(vec![row.masked()]);
        }
    }
    let by_key: Vec<SagaSummary> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SUMMARY} FROM sagas WHERE business_key = $1 ORDER BY created_at DESC LIMIT 100"
    )))
    .bind(target)
    .fetch_all(pool)
    .await?;
    if !by_key.is_empty() {
        return Ok(by_key.into_iter().map(SagaSummary::masked).collect());
    }
    // An identification number is stored upper case, however it was typed.
    let value =
        IdNumber::parse(target).map_or_else(|_| target.to_owned(), |id| id.as_str().to_owned());
    let by_state: Vec<SagaSummary> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SUMMARY} FROM sagas
         WHERE state->>'number' = $1
            OR state->>'order_number' = $1
            OR state->>'application_id' = $1
            OR state->>'complaint_id' = $1
            OR state->>'application_number' = $1
            OR state->'application'->>'number' = $1
            OR state->'person'->>'identification_number' = $1
            OR state->>'identifier' = $1
            OR state->>'applicant' = $1
         ORDER BY created_at DESC LIMIT 100"
    )))
    .bind(&value)
    .fetch_all(pool)
    .await?;
    Ok(by_state.into_iter().map(SagaSummary::masked).collect())
}

/// The one saga `target` names; [`SagaOpsError::NotFound`] or [`SagaOpsError::Ambiguous`]
/// otherwise.
pub async fn find_one(pool: &PgPool, target: &str) -> Result<SagaSummary, SagaOpsError> {
    let mut found = find(pool, target).await?;
    match found.len() {
        0 => Err(SagaOpsError::NotFound(target.to_owned())),
        1 => Ok(found.remove(0)),
        _ => Err(SagaOpsError::Ambiguous {
            target: target.to_owned(),
            matches: found,
        }),
    }
}

/// Everything about one saga.
#[derive(Debug, Clone, Serialize)]
pub struct SagaDetail {
    /// The row (business key masked unless unmasked).
    pub saga: SagaSummary,
    /// Whether personal data is masked in this view.
    pub masked: bool,
    /// The state.
    pub state: Value,
    /// Every step, in order.
    pub timeline: Vec<TimelineStep>,
    /// Timers that have not fired.
    pub timers: Vec<PendingTimer>,
    /// Dead letters correlated to the saga, oldest first (error text masked unless unmasked).
    pub dead_letters: Vec<dlq::Summary>,
}

/// One step: the message that came in, the state change, the messages that went out.
#[derive(Debug, Clone, Serialize)]
pub struct TimelineStep {
    /// The version the step made.
    pub version: i64,
    /// When it was committed.
    pub at: DateTime<Utc>,
    /// The message that came in.
    pub message_id: Uuid,
    /// Its type.
    pub message_type: String,
    /// The state before (none for the first step).
    pub from_state: Option<String>,
    /// The state after.
    pub to_state: String,
    /// The messages it sent, in order.
    pub outgoing: Vec<OutgoingMessage>,
}

/// A message a step sent, as the outbox knows it.
#[derive(Debug, Clone, Serialize)]
pub struct OutgoingMessage {
    /// Its id.
    pub message_id: Uuid,
    /// Its type (unknown when the outbox row and any dead letter of it are gone).
    pub message_type: Option<String>,
    /// The exchange it is published to (empty: the default exchange, straight to a queue).
    pub exchange: Option<String>,
    /// Its routing key.
    pub routing_key: Option<String>,
    /// `sent`, `pending` (not yet published, or publishing failed and will be retried) or
    /// `gone` (no outbox row any more).
    pub status: &'static str,
    /// When the relay published it.
    pub sent_at: Option<DateTime<Utc>>,
    /// Publish attempts.
    pub attempts: i32,
    /// The last publish error.
    pub last_error: Option<String>,
    /// The newest dead letter of this message, if a receiver dead-lettered it.
    pub dead_letter_id: Option<i64>,
}

/// A timer that has not fired.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct PendingTimer {
    /// Its name.
    pub name: String,
    /// When it fires.
    pub due_at: DateTime<Utc>,
    /// The message it fires.
    pub message_type: Option<String>,
}

type HistoryRow = (
    i64,
    DateTime<Utc>,
    Uuid,
    String,
    Option<String>,
    String,
    Vec<Uuid>,
);
type OutboxRow = (
    Uuid,
    Option<String>,
    String,
    String,
    Option<DateTime<Utc>>,
    i32,
    Option<String>,
);

/// Everything about saga `id`. Masked unless `disclosure` says otherwise; an unmasked view is
/// audited (`saga.show_unmasked`) before it is returned.
pub async fn show(
    pool: &PgPool,
    id: Uuid,
    disclosure: Disclosure<'_>,
) -> Result<SagaDetail, SagaOpsError> {
    let saga: SagaSummary = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SUMMARY} FROM sagas WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| SagaOpsError::NotFound(id.to_string()))?;
    let state: Json<Value> = sqlx::query_scalar("SELECT state FROM sagas WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await?;
    let history: Vec<HistoryRow> = sqlx::query_as(
        "SELECT version, at, message_id, message_type, from_state, to_state, outgoing
         FROM saga_history WHERE saga_id = $1 ORDER BY version",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    let ids: Vec<Uuid> = history.iter().flat_map(|h| h.6.iter().copied()).collect();
    let outbox: Vec<OutboxRow> = sqlx::query_as(
        "SELECT id, metadata->>'message_type', exchange, routing_key, sent_at, attempts, last_error
         FROM outbox WHERE id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await?;
    let letters_of_outgoing: Vec<(Uuid, i64, Option<String>)> = sqlx::query_as(
        "SELECT DISTINCT ON (message_id) message_id, id, message_type FROM dead_letters
         WHERE message_id = ANY($1) ORDER BY message_id, id DESC",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await?;
    let timers: Vec<PendingTimer> = sqlx::query_as(
        "SELECT name, due_at, metadata->>'message_type' AS message_type FROM timers
         WHERE saga_id = $1 ORDER BY due_at, name",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    let mut dead_letters: Vec<dlq::Summary> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM dead_letters WHERE correlation_id = $1 ORDER BY id",
        dlq::SUMMARY_COLUMNS
    )))
    .bind(id.to_string())
    .fetch_all(pool)
    .await?;
    let timeline = history
        .into_iter()
        .map(
            |(version, at, message_id, message_type, from_state, to_state, outgoing)| {
                TimelineStep {
                    version,
                    at,
                    message_id,
                    message_type,
                    from_state,
                    to_state,
                    outgoing: outgoing
                        .into_iter()
                        .map(|id| outgoing_message(id, &outbox, &letters_of_outgoing))
                        .collect(),
                }
            },
        )
        .collect();
    let mut detail = SagaDetail {
        saga,
        masked: true,
        state: state.0,
        timeline,
        timers,
        dead_letters: Vec::new(),
    };
    match disclosure {
        Disclosure::Masked => {
            detail.saga = detail.saga.masked();
            mask_json(&mut detail.state);
            // The saga's own id is shown anyway: only the error text is masked.
            for letter in &mut dead_letters {
                letter.error = mask_text(&letter.error);
            }
        }
        Disclosure::Unmasked { operator } => {
            detail.masked = false;
            let mut conn = pool.acquire().await?;
            audit::record(
                &mut conn,
                &Action {
                    operator,
                    action: "saga.show_unmasked",
                    target: &id.to_string(),
                    reason: None,
                    details: serde_json::json!({
                        "saga_type": detail.saga.saga_type,
                        "state": detail.saga.state_name,
                    }),
                },
            )
            .await?;
        }
    }
    detail.dead_letters = dead_letters;
    Ok(detail)
}

fn outgoing_message(
    id: Uuid,
    outbox: &[OutboxRow],
    letters: &[(Uuid, i64, Option<String>)],
) -> OutgoingMessage {
    let letter = letters.iter().find(|l| l.0 == id);
    let dead_letter_id = letter.map(|l| l.1);
    match outbox.iter().find(|o| o.0 == id) {
        Some((_, message_type, exchange, routing_key, sent_at, attempts, last_error)) => {
            OutgoingMessage {
                message_id: id,
                message_type: message_type.clone(),
                exchange: Some(exchange.clone()),
                routing_key: Some(routing_key.clone()),
                status: if sent_at.is_some() { "sent" } else { "pending" },
                sent_at: *sent_at,
                attempts: *attempts,
                last_error: last_error.clone(),
                dead_letter_id,
            }
        }
        None => OutgoingMessage {
            message_id: id,
            message_type: letter.and_then(|l| l.2.clone()),
            exchange: None,
            routing_key: None,
            status: "gone",
            sent_at: None,
            attempts: 0,
            last_error: None,
            dead_letter_id,
        },
    }
}

/// Who acts, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorRequest {
    /// The console login, or the CLI's `--operator` (default `$USER`).
    pub operator: String,
    /// Why (required for a cancel).
    pub reason: Option<String>,
}

/// What a retry did.
#[derive(Debug, Clone, Serialize)]
pub struct RetryReport {
    /// The saga.
    pub saga_id: Uuid,
    /// Its state.
    pub state: String,
    /// The step whose messages went out again.
    pub version: i64,
    /// The message that step handled.
    pub step_message_type: String,
    /// Each of its outgoing messages, and what was done with it.
    pub messages: Vec<RetriedMessage>,
    /// The audit row.
    pub audit_id: i64,
}

/// One message of a retried step.
#[derive(Debug, Clone, Serialize)]
pub struct RetriedMessage {
    /// Its (original) id.
    pub message_id: Uuid,
    /// Its type, when known.
    pub message_type: Option<String>,
    /// `requeued` (its outbox row is pending again), `restored` (put back into the outbox from
    /// its dead letter), or `missing` (neither is there any more: it cannot be sent again).
    pub action: &'static str,
}

/// Re-publishes the outgoing messages of the last step of saga `id`, which must not have
/// ended, with their original message ids: their outbox rows are made pending again, or put
/// back from their dead letters when the rows are gone. Dead letters of these messages that
/// were still `new` are marked replayed. One audit row (`saga.retry_step`), in the same
/// transaction.
pub async fn retry_step(
    pool: &PgPool,
    id: Uuid,
    request: &OperatorRequest,
) -> Result<RetryReport, SagaOpsError> {
    let mut tx = pool.begin().await?;
    let (terminal, state): (bool, String) =
        sqlx::query_as("SELECT terminal, state_name FROM sagas WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| SagaOpsError::NotFound(id.to_string()))?;
    if terminal {
        return Err(SagaOpsError::Refused(format!(
            "saga {id} has ended ({state}): there is no step to retry"
        )));
    }
    let (version, step_message_type, outgoing): (i64, String, Vec<Uuid>) = sqlx::query_as(
        "SELECT version, message_type, outgoing FROM saga_history
         WHERE saga_id = $1 ORDER BY version DESC LIMIT 1",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| SagaOpsError::Refused(format!("saga {id} has no steps")))?;
    if outgoing.is_empty() {
        return Err(SagaOpsError::Refused(format!(
            "the last step of saga {id} (version {version}, {step_message_type}) sent nothing: \
             it waits for a message or a timer, not for one of its own"
        )));
    }
    let requeued: Vec<(Uuid, Option<String>)> = sqlx::query_as(
        "UPDATE outbox SET sent_at = NULL, available_at = now(), attempts = 0, last_error = NULL
         WHERE id = ANY($1) RETURNING id, metadata->>'message_type'",
    )
    .bind(&outgoing)
    .fetch_all(&mut *tx)
    .await?;
    let mut messages = Vec::new();
    for message_id in &outgoing {
        if let Some((_, message_type)) = requeued.iter().find(|r| r.0 == *message_id) {
            messages.push(RetriedMessage {
                message_id: *message_id,
                message_type: message_type.clone(),
                action: "requeued",
            });
            continue;
        }
        let restored = restore_from_dead_letter(pool, *message_id).await?;
        let action = match &restored {
            Some(envelope) => {
                outbox::insert(&mut tx, std::slice::from_ref(envelope)).await?;
                "restored"
            }
            None => "missing",
        };
        messages.push(RetriedMessage {
            message_id: *message_id,
            message_type: restored.map(|e| e.metadata.message_type),
            action,
        });
    }
    if messages.iter().all(|m| m.action == "missing") {
        return Err(SagaOpsError::Refused(format!(
            "the messages of the last step of saga {id} (version {version}) are neither in the \
             outbox nor in the dead letters any more: they cannot be sent again"
        )));
    }
    outbox::notify(&mut tx).await?;
    sqlx::query(
        "UPDATE dead_letters SET status = $2, replay_count = replay_count + 1,
             replayed_at = now()
         WHERE message_id = ANY($1) AND status = $3",
    )
    .bind(&outgoing)
    .bind(dlq::LetterStatus::Replayed)
    .bind(dlq::LetterStatus::New)
    .execute(&mut *tx)
    .await?;
    let audit_id = audit::record(
        &mut tx,
        &Action {
            operator: &request.operator,
            action: "saga.retry_step",
            target: &id.to_string(),
            reason: request.reason.as_deref(),
            details: serde_json::json!({
                "state": state,
                "version": version,
                "step_message_type": step_message_type,
                "messages": messages,
            }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(RetryReport {
        saga_id: id,
        state,
        version,
        step_message_type,
        messages,
        audit_id,
    })
}

/// The envelope of a message that is no longer in the outbox, from its newest dead letter:
/// its original exchange, routing key, properties and body.
async fn restore_from_dead_letter(
    pool: &PgPool,
    message_id: Uuid,
) -> Result<Option<Envelope>, SagaOpsError> {
    let newest: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM dead_letters WHERE message_id = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(message_id)
    .fetch_optional(pool)
    .await?;
    let Some(letter_id) = newest else {
        return Ok(None);
    };
    let Some(letter) = dlq::get(pool, letter_id).await? else {
        return Ok(None);
    };
    // The saga's own message was published by the hub. A letter of that id naming another
    // sender is the hub's copy of someone else's message (an agency may reuse an id it saw):
    // putting it in the outbox would send it as the hub's own, so it is not restored.
    if letter
        .header_str(contracts::headers::ORIGINAL_USER_ID)
        .is_some()
    {
        return Ok(None);
    }
    // Taking the letter's own user as the hub's keeps its `user_id` as it was and adds no
    // sender: the outbox sends it as it was first sent (by the hub, the saga's publisher).
    let hub_user = letter
        .property("user_id")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let properties = dlq::replay_properties(
        &letter,
        letter.replayed_before + letter.replay_count + 1,
        &hub_user,
    );
    let Ok(metadata) = hub_runtime::broker::metadata_from_json(&properties) else {
        return Ok(None);
    };
    Ok(Some(Envelope {
        exchange: letter.original_exchange,
        routing_key: letter.original_routing_key,
        metadata,
        body: letter.body,
    }))
}

/// What a cancel did: the message is in the outbox; the saga ends when the hub handles it.
#[derive(Debug, Clone, Serialize)]
pub struct CancelReport {
    /// The saga.
    pub saga_id: Uuid,
    /// Its type.
    pub saga_type: String,
    /// Its state when cancelled.
    pub from_state: String,
    /// What the saga's cancel will do.
    pub preview: CancelPreview,
    /// The `ops.cancel_saga.v1` message.
    pub message_id: Uuid,
    /// The queue it goes to (the saga's own).
    pub queue: String,
    /// The audit row.
    pub audit_id: i64,
}

/// Ends saga `id` with the compensations its type defines: checks that it has not ended and
/// that its cancel hook accepts, then writes `ops.cancel_saga.v1` (to the saga's own queue
/// through the requeue exchange) into the outbox and one audit row (`saga.cancel`), in one
/// transaction. `app_id` names the sender. The reason is required.
pub async fn cancel(
    pool: &PgPool,
    sagas: &SagaTypes,
    id: Uuid,
    request: &OperatorRequest,
    app_id: &str,
) -> Result<CancelReport, SagaOpsError> {
    let reason = request
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| SagaOpsError::Refused("say why the saga is cancelled".into()))?;
    let message = CancelSaga {
        saga_id: id,
        reason: reason.to_owned(),
        operator: request.operator.clone(),
    };
    message
        .validate()
        .map_err(|e| SagaOpsError::Refused(format!("the cancel is not valid: {e}")))?;
    let mut tx = pool.begin().await?;
    let (saga_type, state_name, terminal, state): (String, String, bool, Json<Value>) =
        sqlx::query_as(
            "SELECT saga_type, state_name, terminal, state FROM sagas WHERE id = $1 FOR UPDATE",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| SagaOpsError::NotFound(id.to_string()))?;
    if terminal {
        return Err(SagaOpsError::Refused(format!(
            "saga {id} has ended ({state_name}): there is nothing to cancel"
        )));
    }
    let control = sagas.get(&saga_type).ok_or_else(|| {
        SagaOpsError::Refused(format!(
            "this hub runs no {saga_type} saga (it runs: {}): it cannot cancel one",
            sagas.types().join(", ")
        ))
    })?;
    let preview = control
        .preview_cancel(id, &state.0, &message)
        .map_err(|f| {
            SagaOpsError::Refused(format!(
                "saga {id} ({saga_type}, {state_name}) refuses: {}",
                f.reason
            ))
        })?;
    let metadata = Metadata::new(CancelSaga::TYPE.to_string(), app_id.to_owned())
        .with_correlation_id(id.to_string());
    let envelope = Envelope {
        exchange: sagas.requeue_exchange().to_owned(),
        routing_key: control.queue().to_owned(),
        body: contracts::encode(&message)
            .map_err(|e| SagaOpsError::Refused(format!("the cancel cannot be encoded: {e}")))?,
        metadata,
    };
    outbox::insert(&mut tx, std::slice::from_ref(&envelope)).await?;
    let audit_id = audit::record(
        &mut tx,
        &Action {
            operator: &request.operator,
            action: "saga.cancel",
            target: &id.to_string(),
            reason: Some(reason),
            details: serde_json::json!({
                "saga_type": saga_type,
                "from_state": state_name,
                "to_state": preview.to_state,
                "sends": preview.sends,
                "message_id": envelope.metadata.message_id,
            }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(CancelReport {
        saga_id: id,
        saga_type,
        from_state: state_name,
        preview,
        message_id: envelope.metadata.message_id,
        queue: envelope.routing_key,
        audit_id,
    })
}

/// A duration as operators write it: `45s`, `12m`, `3h`, `2d`.
pub fn age_text(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..172_800 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identification_numbers_in_keys_are_masked_other_keys_are_not() {
        assert_eq!(mask_key("3270287A012PB2"), "32**********B2");
        assert_eq!(mask_key("minsk-desk-1/A-17"), "minsk-desk-1/A-17");
        assert_eq!(
            mask_key("6f1c1a52-3c55-4a43-9c1e-6f0e8a1d1a01"),
            "6f1c1a52-3c55-4a43-9c1e-6f0e8a1d1a01"
        );
    }

    #[test]
    fn ages_read_like_operators_write_them() {
        assert_eq!(age_text(chrono::Duration::seconds(42)), "42s");
        assert_eq!(age_text(chrono::Duration::seconds(600)), "10m");
        assert_eq!(age_text(chrono::Duration::seconds(3 * 3600 + 65)), "3h01m");
        assert_eq!(age_text(chrono::Duration::days(3)), "3d00h");
        assert_eq!(age_text(chrono::Duration::seconds(-5)), "0s");
    }

    #[test]
    fn a_filter_says_what_it_is() {
        let f = ListFilter {
            saga_type: Some("procedure".into()),
            stuck_longer_than: Some(chrono::Duration::minutes(10)),
            terminal: Some(false),
            ..ListFilter::default()
        };
        assert_eq!(
            f.describe(),
            "type procedure, stuck longer than 10m, active"
        );
    }
}
