//! The portal's business on the hub runtime: the sagas of the seeds (issuance of an
//! identifier, the account's life, an administrative procedure, a complaint), the identifier
//! registry, the personal cabinet, registration by e-mail or EDS, the workers that call the
//! external systems (MVD, the SMS gateways, ERIP, e-mail, the HTTP back-offices) and the HTTP
//! callbacks they answer on, the catalogue of procedures and the calendar, and who may send
//! what ([`agency`]). [`services::plan`] puts it all together for `hub run`.

pub mod agency;
pub mod asyncapi;
pub mod cabinet;
pub mod config;
pub mod external;
pub mod http;
pub mod metrics;
pub mod parties;
pub mod probes;
pub mod procedures;
pub mod registration;
pub mod registry;
pub mod sagas;
pub mod services;
pub mod sessions;

/// The portal's migrations (identifiers, cabinet, procedures, registration, limits, ERIP); the
/// binary runs them with the runtime's and the operators' as one ordered set.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
