//! Administrative procedures: the catalogue, the working-day calendar, and (to come) the
//! application saga.

pub mod calendar;
pub mod catalogue;
pub mod complaint;
pub mod decision;
pub mod payment;
pub mod saga;
