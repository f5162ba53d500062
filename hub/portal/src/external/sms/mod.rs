//! The mobile operators' SMS gateways (A1, MTS, life:)), one API each: the [worker](worker)
//! asks which operator serves a number and sends the hub's SMS (confirmation codes, temporary
//! passwords, notices) through it, holding every SMS and code to the per-phone limits; the
//! operators post their delivery reports to the [callback](callback), which hands them to the
//! saga that sent the SMS. The client and the wire contract are [`adapters::sms`].
//!
//! Which protocol each operator is reached by, and its SMPP 3.4 settings, are in
//! [settings](settings).

pub mod callback;
pub mod settings;
pub mod worker;
