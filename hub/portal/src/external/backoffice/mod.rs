//! The authorities' HTTP back-offices.

pub mod worker;
