//! Belarusian identification numbers (личный номер), written here rather than taken from the
//! `contracts` crate so that the MVD simulator is an independent check of the hub's own
//! validation: 14 characters, the 14th a check digit over the first 13 (digits 0-9 and letters
//! A=10 .. Z=35, weights 7, 3, 1 repeating from the left, the sum mod 10).
//!
//! Layouts generated: the older `D DDMMYY R NNN SS C` (sex/century digit, birth date, region
//! letter, sequence, status PB/BA/BI, check digit) and the 2012+ `7xxxxxx R NNN SS C`.

use chrono::NaiveDate;

/// Region letters of the older layout (and used in the newer one too).
pub(crate) const REGIONS: [char; 7] = ['A', 'B', 'C', 'E', 'H', 'K', 'M'];

const WEIGHTS: [u32; 3] = [7, 3, 1];

fn value(c: char) -> Option<u32> {
    if c.is_ascii_digit() || c.is_ascii_uppercase() {
        c.to_digit(36)
    } else {
        None
    }
}

/// The check digit over the first 13 characters, or `None` if they are not 13 digits and
/// capital Latin letters.
pub(crate) fn check_digit(first13: &str) -> Option<char> {
    if first13.chars().count() != 13 {
        return None;
    }
    let mut sum = 0;
    for (i, c) in first13.chars().enumerate() {
        sum += value(c)? * WEIGHTS[i % 3];
    }
    char::from_digit(sum % 10, 10)
}

/// Whether a 14-character number's last character is the check digit of the first 13.
#[cfg(test)]
pub(crate) fn verifies(number: &str) -> bool {
    let chars: Vec<char> = number.chars().collect();
    if chars.len() != 14 {
        return false;
    }
    let first13: String = chars[..13].iter().collect();
    check_digit(&first13) == Some(chars[13])
}

/// The sex/century digit of the older layout: 3/4 for men/women born in the 1900s, 5/6 in the
/// 2000s (1/2, the 1800s, is never generated).
pub(crate) fn sex_century_digit(birth_date: NaiveDate, female: bool) -> u8 {
    use chrono::Datelike;
    let base = if birth_date.year() >= 2000 { 5 } else { 3 };
    if female { base + 1 } else { base }
}

/// A number for logs: the first 2 and last 2 characters, the rest as `*`.
pub(crate) fn mask(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    if chars.len() <= 4 {
        return "*".repeat(chars.len());
    }
    let n = chars.len();
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| if i < 2 || i >= n - 2 { *c } else { '*' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_numbers_verify() {
        assert_eq!(check_digit("7000000A000PB"), Some('1'));
        assert_eq!(check_digit("3270287A012PB"), Some('2'));
        assert!(verifies("7000000A000PB1"));
        assert!(verifies("3270287A012PB2"));
    }

    #[test]
    fn a_changed_character_fails() {
        assert!(!verifies("7000000A000PB2"));
        assert!(!verifies("3270287A013PB2"));
        assert!(!verifies("3270287a012PB2"));
        assert!(!verifies("3270287A012PB"));
    }

    #[test]
    fn masking_keeps_two_characters_at_each_end() {
        assert_eq!(mask("3270287A012PB2"), "32**********B2");
        assert_eq!(mask("abc"), "***");
    }
}
