//! The MVD population registry simulator: reconciles an applicant's stated data and document
//! with a seeded population, so the hub's identifier-issuance saga meets matches, mismatches,
//! expired and lost documents and unknown persons exactly as it would against the real registry.

mod api;
pub(crate) mod population;

pub(crate) use api::router;
