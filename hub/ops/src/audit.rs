//! The operators' audit trail (`ops_audit`, append-only): who did what, to what, when and why.
//! Every operator action — from the CLI or the console — writes one row, in the same
//! transaction as the action where it changes the database.

use sqlx::PgConnection;

/// One action to record.
#[derive(Debug, Clone)]
pub struct Action<'a> {
    /// Who: the console login, or the CLI's `--operator` (default: `$USER`).
    pub operator: &'a str,
    /// What: `dlq.replay`, `dlq.discard`, `saga.cancel`, ...
    pub action: &'a str,
    /// To what: a dead letter id, a saga id, a filter.
    pub target: &'a str,
    /// Why, as the operator said it.
    pub reason: Option<&'a str>,
    /// Anything else worth keeping (counts, the filter, the rate).
    pub details: serde_json::Value,
}

/// Writes `action`; returns the row id.
pub async fn record(conn: &mut PgConnection, action: &Action<'_>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO ops_audit (operator, action, target, reason, details)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(action.operator)
    .bind(action.action)
    .bind(action.target)
    .bind(action.reason)
    .bind(sqlx::types::Json(&action.details))
    .fetch_one(conn)
    .await
}

/// The operator running the CLI: `--operator`, else `$USER`, else `unknown`.
pub fn cli_operator(given: Option<&str>) -> String {
    given
        .map(str::to_owned)
        .or_else(|| std::env::var("USER").ok())
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}
