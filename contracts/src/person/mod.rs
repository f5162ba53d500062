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

/// The published schemas' pattern of an identification number (or identifier) as the hub reads
/// it: the layout [`IdNumber::parse`] checks, in either case, with spaces around. The birth
/// date and the check digit are checked by the hub, not by the pattern.
pub fn id_number_pattern() -> String {
    let status = "(?:[Pp][Bb]|[Bb][AaIi])";
    format!(
        r"^\s*(?:[1-6][0-9]{{6}}[ABCEHKMabcehkm]|7[0-9]{{6}}[A-Za-z])[0-9]{{3}}{status}[0-9]\s*$"
    )
}

/// The published schemas' pattern of a mobile number as the hub reads it: what
/// [`Msisdn::parse`] accepts (`+375`, `375`, `80`, `00375` or `810375`, a mobile code 25, 29,
/// 33 or 44, seven digits; spaces, hyphens, dots and parentheses anywhere). The hub writes the
/// normalised `+375XXXXXXXXX`.
pub fn phone_pattern() -> String {
    let s = r"[\s().\-]*";
    let d = |digits: &str| -> String {
        digits
            .chars()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(s)
    };
    format!(
        "^{s}(?:\\+{s}{cc}|{cc}|{z}{s}{cc}|{e}{s}{cc}|{n}){s}(?:{two}{s}[59]|{three}|{four})(?:{s}[0-9]){{7}}{s}$",
        cc = d("375"),
        z = d("00"),
        e = d("810"),
        n = d("80"),
        two = "2",
        three = d("33"),
        four = d("44"),
    )
}
