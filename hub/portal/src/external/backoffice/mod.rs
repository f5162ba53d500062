//! The authorities' HTTP back-offices (`channel = "http"` in the catalogue): one
//! [worker](worker) per such authority bridges the authority's queue to its back-office
//! (applications, complaints, withdrawals), and the back-office posts its later answers
//! (information requested, decisions) to the [callback](callback), which checks the authority's
//! signature and that the case is the authority's own before it puts the answer on the bus. The
//! client, the wire contract and the signatures are [`adapters::backoffice`].

pub mod callback;
pub mod worker;
