//! The operators' console in tests: a configuration with one operator whose hash the test makes
//! (as `hub console hash-password` would), a wait for its listener, and the audit rows to check.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use hub_ops::config::{ConsoleConfig, ConsoleUsers};
use sqlx::PgPool;

use crate::wait_until;

/// The test operator.
pub const OPERATOR: &str = "ivanova";
/// The test operator's password.
pub const PASSWORD: &str = "correct horse battery staple";

/// A free loopback address.
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// The console on a free port with [`OPERATOR`] and the hash of [`PASSWORD`].
pub fn config() -> ConsoleConfig {
    let hash = hub_ops::console::cli::hash_password(PASSWORD).expect("hash");
    ConsoleConfig {
        addr: free_addr(),
        users: ConsoleUsers::single(OPERATOR, &hash),
        ..ConsoleConfig::default()
    }
}

/// Waits until the console listens on `addr`.
pub async fn wait_listening(addr: SocketAddr) {
    wait_until(Duration::from_secs(30), "the console listening", || async {
        TcpStream::connect(addr).ok().map(|_| ())
    })
    .await;
}

/// One row of `ops_audit`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRow {
    /// Who.
    pub operator: String,
    /// What.
    pub action: String,
    /// To what.
    pub target: String,
    /// Why.
    pub reason: Option<String>,
    /// The rest.
    pub details: sqlx::types::Json<serde_json::Value>,
}

/// The audit rows of `action`, oldest first.
pub async fn audit(pool: &PgPool, action: &str) -> Vec<AuditRow> {
    sqlx::query_as(
        "SELECT operator, action, target, reason, details FROM ops_audit WHERE action = $1
         ORDER BY id",
    )
    .bind(action)
    .fetch_all(pool)
    .await
    .expect("audit rows")
}
