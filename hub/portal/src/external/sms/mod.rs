//! The mobile operators' SMS gateways (A1, MTS, life:)), one API each: the [worker](worker)
//! asks which operator serves a number and sends the hub's SMS (confirmation codes, temporary
//! passwords, notices) through it, holding every SMS and code to the per-phone limits; the
//! operators post their delivery reports to the [callback](callback), which hands them to the
//! saga that sent the SMS. The client and the wire contract are [`adapters::sms`].
//!
//! An operator may instead be reached over SMPP 3.4 ([settings](settings)): the worker then
//! sends through that operator's [`adapters::smpp::SmppClient`] ([smpp](smpp)), whose delivery
//! receipts take the callback's path to the saga.

pub mod callback;
pub mod settings;
pub mod smpp;
pub mod worker;
