//! The hub's PostgreSQL store: migrations, inbox, outbox and its relay, saga rows, timers.

pub mod outbox;
pub mod relay;
pub mod retention;
pub mod timers;

use std::time::Duration;

use sqlx::migrate::{MigrateDatabase, Migration, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};

use crate::config::mask_url;

/// The channel `NOTIFY`-ed when outbox rows are committed, so the relay wakes at once.
pub const OUTBOX_CHANNEL: &str = "hub_outbox";

/// The runtime's own migrations (inbox, outbox, sagas, timers, dead letters), embedded in the
/// binary. A business adds its own sets; [`migrator`] puts them in one order.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// One ordered set of the runtime's migrations and `sets` (each crate's own), as `hub run`
/// applies them at every start. Versions are one sequence across crates (a business crate
/// takes the next free number), so a database migrated before the crates were split keeps
/// every applied version and checksum. A version two sets both claim is a programming error
/// and is refused.
///
/// Every migration of the set that the database has applied is checked against its checksum;
/// versions the database has and the set does not are left alone, because processes with
/// different plans (a test's own saga beside the portal, an adapter process during a rolling
/// upgrade) share one database and one migrations table.
///
/// Errors: the version that two sets both define.
pub fn migrator(sets: &[&Migrator]) -> Result<Migrator, StoreError> {
    let mut all: Vec<Migration> = MIGRATOR
        .iter()
        .chain(sets.iter().flat_map(|s| s.iter()))
        .cloned()
        .collect();
    all.sort_by_key(|m| m.version);
    if let Some(pair) = all.windows(2).find(|w| w[0].version == w[1].version) {
        return Err(StoreError {
            url: String::new(),
            reason: format!(
                "two migrations have version {} ({:?} and {:?})",
                pair[0].version, pair[0].description, pair[1].description
            ),
        });
    }
    let mut migrator = Migrator::with_migrations(all);
    migrator.set_ignore_missing(true);
    Ok(migrator)
}

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

/// Connects a pool, creating the database when it does not exist yet, and runs `migrator`
/// (see [`migrator`]).
pub async fn connect(url: &str, pool_size: u32, migrator: &Migrator) -> Result<PgPool, StoreError> {
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
    migrator
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

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use sqlx::SqlSafeStr;
    use sqlx::migrate::{Migration, MigrationType, Migrator};

    use super::{MIGRATOR, migrator};

    fn set(versions: &[i64]) -> Migrator {
        Migrator::with_migrations(
            versions
                .iter()
                .map(|&v| {
                    Migration::new(
                        v,
                        Cow::Owned(format!("business {v}")),
                        MigrationType::Simple,
                        sqlx::AssertSqlSafe(format!("SELECT {v}")).into_sql_str(),
                        false,
                    )
                })
                .collect(),
        )
    }

    #[test]
    fn sets_merge_in_version_order_with_the_runtimes_own() {
        let business = set(&[1_000_001, 2, 3]);
        let merged = migrator(&[&business]).expect("no version twice");
        let versions: Vec<i64> = merged.iter().map(|m| m.version).collect();
        let mut expected: Vec<i64> = MIGRATOR.iter().map(|m| m.version).collect();
        expected.extend([1_000_001, 2, 3]);
        expected.sort_unstable();
        assert_eq!(versions, expected);
        assert!(
            merged.ignore_missing,
            "other plans' migrations are left alone"
        );
    }

    #[test]
    fn a_version_two_sets_claim_is_refused() {
        let first = MIGRATOR
            .iter()
            .next()
            .expect("the runtime has migrations")
            .version;
        let err = migrator(&[&set(&[first])]).expect_err("version claimed twice");
        assert!(
            err.reason
                .contains(&format!("two migrations have version {first}")),
            "{}",
            err.reason
        );
    }
}
