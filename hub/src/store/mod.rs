//! The hub's PostgreSQL store: migrations, inbox, outbox and its relay, saga rows, timers.

pub mod outbox;
pub mod relay;
pub mod timers;

use std::time::Duration;

use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};

use crate::config::mask_url;

/// The channel `NOTIFY`-ed when outbox rows are committed, so the relay wakes at once.
pub const OUTBOX_CHANNEL: &str = "hub_outbox";

/// Migrations embedded in the binary; run at every start.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The database could not be reached or prepared.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot use PostgreSQL at {url}: {reason}. Start it (`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, or `docker compose up -d postgres`) or point DATABASE_URL at a running server"
)]
pub struct StoreError {
    /// The URL with its password masked.
    pub url: String,
    /// What failed.
    pub reason: String,
}

/// Connects a pool, creating the database when it does not exist yet, and runs the migrations.
pub async fn connect(url: &str, pool_size: u32) -> Result<PgPool, StoreError> {
    let fail = |reason: String| StoreError {
        url: mask_url(url),
        reason,
    };
    let options: PgConnectOptions = url.parse().map_err(|e: sqlx::Error| fail(e.to_string()))?;
    if !Postgres::database_exists(url)
        .await
        .map_err(|e| fail(e.to_string()))?
    {
        tracing::info!(url = %mask_url(url), "creating database");
        if let Err(e) = Postgres::create_database(url).await {
            // Another process may have created it in the meantime.
            if !Postgres::database_exists(url).await.unwrap_or(false) {
                return Err(fail(e.to_string()));
            }
        }
    }
    let pool = PgPoolOptions::new()
        .max_connections(pool_size)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .map_err(|e| fail(e.to_string()))?;
    MIGRATOR
        .run(&pool)
        .await
        .map_err(|e| fail(format!("migrations failed: {e}")))?;
    Ok(pool)
}

/// Whether a database error is worth retrying: lost connections, pool timeouts, serialization
/// failures and deadlocks are; constraint violations and bad SQL are not.
pub fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => matches!(
            db.code().as_deref(),
            // serialization_failure, deadlock_detected, admin_shutdown, crash_shutdown,
            // cannot_connect_now, too_many_connections
            Some("40001" | "40P01" | "57P01" | "57P02" | "57P03" | "53300")
        ),
        _ => false,
    }
}
