//! Operations: what operators (the third kind of user, DESIGN.md) use to see and repair the
//! hub — the dead-letter keeper and workbench, saga inspection, and the audit trail every
//! operator action goes to. The CLI (`hub dlq`, `hub saga`) and the web console call the same
//! functions.

pub mod audit;
pub mod console;
pub mod dlq;
pub mod keeper;
pub mod sagas;
