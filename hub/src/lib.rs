//! The `hub` binary's library: the command line ([`cli`]) and the wiring of the crates behind it.
//!
//! | crate | holds |
//! |---|---|
//! | `hub-runtime` | broker, store, saga engine, dead-letter keeper, lifecycle, health, metrics |
//! | `hub-portal` | the portal's sagas, workers, callbacks and rules (who may send what) |
//! | `hub-ops` | the dead-letter workbench, saga inspection, audit, the web console |
//! | `hub-lab` | stage, demo, bench, chaos (feature `lab`, on by default) |
//!
//! [`plan`] is what `hub run` runs: the portal's plan with the operators' console beside it.
//! [`migrator`] is every crate's migrations as one ordered set.

pub mod cli;
pub mod contracts;

use hub_ops::config::ConsoleConfig;
use hub_portal::config::IntegrationConfig;
use hub_runtime::app::Plan;
use hub_runtime::store::{self, StoreError};
use sqlx::migrate::Migrator;

/// The business crates' migrations, which run after (and between) the runtime's in version
/// order. The operators' tools keep their tables in the runtime's migrations (the audit trail
/// came with the dead letters in 0007, and applied migrations keep their checksums).
pub fn migrations() -> Vec<&'static Migrator> {
    vec![&hub_portal::MIGRATOR]
}

/// Every migration of the hub, as `hub run` and `hub migrate` apply them.
///
/// Errors: two crates define the same version (a programming error).
pub fn migrator() -> Result<Migrator, StoreError> {
    store::migrator(&migrations())
}

/// Everything `hub run` runs: the portal's plan ([`hub_portal::services::plan`]) and, when
/// operators are configured, the console on its own listener, probing the portal's external
/// systems.
///
/// Errors: a setting the portal or the console cannot use.
pub fn plan(integrations: &IntegrationConfig, console: &ConsoleConfig) -> anyhow::Result<Plan> {
    let mut plan = hub_portal::services::plan(integrations)?;
    // The console probes the portal's external systems; with no operator it does not run.
    let systems = if console.users.is_empty() {
        Vec::new()
    } else {
        let catalogue = hub_portal::procedures::catalogue::Catalogue::embedded()?;
        hub_portal::services::external_systems(integrations, &catalogue)?
    };
    plan.background
        .extend(hub_ops::console::background(console, systems));
    Ok(plan)
}
