//! Operations: what operators (the third kind of user, DESIGN.md) use to see and repair the
//! hub — the dead-letter workbench, saga inspection, and the audit trail every operator action
//! goes to. The CLI (`hub dlq`, `hub saga`, `hub console`) and the web console call the same
//! functions. The dead-letter keeper that fills the workbench is the runtime's
//! ([`hub_runtime::keeper`]).

pub mod audit;
pub mod config;
pub mod console;
pub mod dlq;
pub mod sagas;
