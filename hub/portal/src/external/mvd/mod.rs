//! MVD, the population registry.

pub mod worker;
