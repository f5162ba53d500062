//! A run's own namespace on the broker and database on PostgreSQL, and their removal: what the
//! lab's [`Stage`](crate::stage::Stage), the end-to-end tests' `TestEnv` and the command-line
//! tests' scratch databases share, so that runs side by side on one broker and one server never
//! see each other's messages or rows, and leave nothing behind.
//!
//! The database itself is created by whoever migrates it first (`store::connect` creates a
//! missing database); the sandbox names it, and removes it with every queue and exchange it was
//! told about ([`Sandbox::remember`]), when [`Sandbox::remove`] is called or, at the latest, when
//! it is dropped (also after a panic).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use contracts::{Namespace, Topology};
use hub_runtime::broker;

/// The longest removal waits for the broker to take a connection.
const REMOVAL_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the broker and PostgreSQL are.
#[derive(Debug, Clone)]
pub struct Servers {
    /// The broker (an `AMQP_URL` value: one URL, or a cluster's).
    pub amqp_url: String,
    /// Any database on the PostgreSQL server; a sandbox's database is made beside it.
    pub postgres_url: String,
}

impl Servers {
    /// The servers tests use: `TEST_AMQP_URL` and `TEST_DATABASE_URL`, or the local ones on
    /// their default ports.
    pub fn for_tests() -> Self {
        Self {
            amqp_url: std::env::var("TEST_AMQP_URL")
                .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into()),
            postgres_url: std::env::var("TEST_DATABASE_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into()),
        }
    }
}

/// A namespace and a database of one run, removed at the end.
#[derive(Debug)]
pub struct Sandbox {
    /// The namespace: `<namespace prefix>-<id>`.
    pub namespace: Namespace,
    /// The database's name: `<database prefix>_<id>`.
    pub database: String,
    /// The URL of that database (on the server of [`Servers::postgres_url`]).
    pub database_url: String,
    servers: Servers,
    queues: Mutex<Vec<String>>,
    exchanges: Mutex<Vec<String>>,
    removed: AtomicBool,
}

impl Sandbox {
    /// A fresh namespace `<namespace_prefix>-<id>` and database `<database_prefix>_<id>` on
    /// `servers`, with a random id of 12 hex digits.
    ///
    /// Errors: the PostgreSQL URL does not parse, or the prefix makes no valid namespace.
    pub fn new(
        servers: &Servers,
        namespace_prefix: &str,
        database_prefix: &str,
    ) -> anyhow::Result<Self> {
        let id = &uuid::Uuid::new_v4().simple().to_string()[..12];
        let database = format!("{database_prefix}_{id}");
        let mut database_url =
            url::Url::parse(&servers.postgres_url).context("the PostgreSQL URL")?;
        database_url.set_path(&database);
        Ok(Self {
            namespace: Namespace::new(format!("{namespace_prefix}-{id}"))?,
            database,
            database_url: database_url.to_string(),
            servers: servers.clone(),
            queues: Mutex::default(),
            exchanges: Mutex::default(),
            removed: AtomicBool::new(false),
        })
    }

    /// Where the sandbox lives.
    pub fn servers(&self) -> &Servers {
        &self.servers
    }

    /// The environment that points a `hub` process at the sandbox: `AMQP_URL`, `DATABASE_URL`
    /// and `HUB_NAMESPACE`, as in production.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AMQP_URL", self.servers.amqp_url.clone()),
            ("DATABASE_URL", self.database_url.clone()),
            ("HUB_NAMESPACE", self.namespace.to_string()),
        ]
    }

    /// Removes every queue and exchange of `topology` with the sandbox (a hub of the run may
    /// have declared them without the run knowing which).
    pub fn remember(&self, topology: &Topology, delivery_limit: u32) {
        for d in broker::describe(topology, delivery_limit) {
            match d {
                broker::Declaration::Queue { name, .. } => self.remember_queue(name),
                broker::Declaration::Exchange { name, .. } => {
                    let mut exchanges = self.exchanges.lock().unwrap_or_else(|e| e.into_inner());
                    if !exchanges.contains(&name) {
                        exchanges.push(name);
                    }
                }
                broker::Declaration::Binding { .. } => {}
            }
        }
    }

    /// Removes `queue` (a full name) with the sandbox.
    pub fn remember_queue(&self, queue: String) {
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        if !queues.contains(&queue) {
            queues.push(queue);
        }
    }

    /// Deletes the remembered queues, then exchanges, then drops the database, whoever is
    /// still connected to it. Failures are passed over: what is gone need not go again. A
    /// second call (or the drop after one) does nothing.
    pub async fn remove(&self) {
        if let Some(leftovers) = self.take() {
            leftovers.remove().await;
        }
    }

    /// What is left to remove, once.
    fn take(&self) -> Option<Leftovers> {
        if self.removed.swap(true, Ordering::SeqCst) {
            return None;
        }
        let take = |m: &Mutex<Vec<String>>| {
            std::mem::take(&mut *m.lock().unwrap_or_else(|e| e.into_inner()))
        };
        Some(Leftovers {
            servers: self.servers.clone(),
            database: self.database.clone(),
            queues: take(&self.queues),
            exchanges: take(&self.exchanges),
        })
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let Some(leftovers) = self.take() else {
            return;
        };
        // Removal must also run when a test panicked, and Drop cannot await: it runs on a thread
        // of its own with a small runtime (the caller's runtime may be the one this blocks).
        let cleanup = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(leftovers.remove());
            }
        });
        let _ = cleanup.join();
    }
}

/// A sandbox's broker objects and database, to remove.
struct Leftovers {
    servers: Servers,
    database: String,
    queues: Vec<String>,
    exchanges: Vec<String>,
}

impl Leftovers {
    async fn remove(self) {
        if !(self.queues.is_empty() && self.exchanges.is_empty()) {
            self.remove_from_broker().await;
        }
        drop_database(&self.servers.postgres_url, &self.database).await;
    }

    async fn remove_from_broker(&self) {
        let connect = broker::connect_first(
            &self.servers.amqp_url,
            lapin::ConnectionProperties::default(),
        );
        let Ok(Ok(conn)) = tokio::time::timeout(REMOVAL_TIMEOUT, connect).await else {
            tracing::warn!(
                queues = self.queues.len(),
                "the broker was not there to remove the sandbox's queues"
            );
            return;
        };
        if let Ok(channel) = conn.create_channel().await {
            for q in &self.queues {
                let _ = channel
                    .queue_delete(
                        q.as_str().into(),
                        lapin::options::QueueDeleteOptions::default(),
                    )
                    .await;
            }
            for x in &self.exchanges {
                let _ = channel
                    .exchange_delete(
                        x.as_str().into(),
                        lapin::options::ExchangeDeleteOptions::default(),
                    )
                    .await;
            }
        }
        let _ = conn.close(200, "sandbox removed".into()).await;
    }
}

/// Drops database `name` on the server of `url` (any database on it), whoever is still
/// connected to it.
async fn drop_database(url: &str, name: &str) {
    let Ok(mut admin) = url::Url::parse(url) else {
        return;
    };
    admin.set_path("postgres");
    if let Ok(pool) = sqlx::PgPool::connect(admin.as_str()).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
        )))
        .execute(&pool)
        .await;
        pool.close().await;
    }
}
