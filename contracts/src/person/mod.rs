//! Identification numbers, phone numbers and names: parsing, validation, masking.
//!
//! Every message about a person carries these values, and every one of them is personal data.
//! Parsing them once, here, into types whose `Debug` is masked means a value that made it into
//! a message is well formed, and a value that made it into a log line is not readable.

mod idnumber;
mod mask;
mod phone;

pub use idnumber::{IdNumber, IdNumberError, PersonStatus, check_digit};
pub use mask::mask_name;
pub use phone::{Msisdn, Operator, PhoneError, UnknownOperator};
