//! The personal identification number: 14 characters that name a person in every state system.
//!
//! The format is strict, so a typo is caught where the person types it. The check digit is not:
//! many real numbers issued in the older layout do not satisfy it, so a wrong check digit is a
//! flag ([`IdNumber::check_digit_valid`]) for MVD reconciliation to settle, never a parse error.
//! The number is personal data, so its `Debug` form is masked; the full value is only available
//! through [`IdNumber::as_str`], on purpose.

use std::fmt;
use std::str::FromStr;

use chrono::NaiveDate;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::mask::mask_keep_ends;

/// Length of an identification number, in characters.
const LEN: usize = 14;

/// Region letters of the older layout.
const REGIONS: [char; 7] = ['A', 'B', 'C', 'E', 'H', 'K', 'M'];

/// A well-formed personal identification number, trimmed and upper-case.
///
/// Two layouts are accepted:
///
/// - older: `D DDMMYY R NNN SS C`: sex and century digit 1-6, birth date, region letter
///   (A B C E H K M), sequence, status (`PB`, `BA`, `BI`), check digit;
/// - 2012 and later: `7xxxxxx A NNN SS C`: `7` and six digits, a letter, three digits, status,
///   check digit.
///
/// `Debug` shows the masked form only; serde reads and writes the plain string and validates on
/// the way in.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IdNumber(String);

impl schemars::JsonSchema for IdNumber {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "IdNumber".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A personal identification number, 14 characters, upper case: the \
                older layout (sex and century digit 1-6, birth date DDMMYY, region letter A B C E \
                H K M, sequence, status PB/BA/BI, check digit) or the 2012 layout (7, six \
                digits, a letter, three digits, status, check digit). The hub trims and \
                upper-cases what it reads and checks the birth date; it writes this form.",
            "pattern": "^(?:[1-6][0-9]{6}[ABCEHKM]|7[0-9]{6}[A-Z])[0-9]{3}(?:PB|BA|BI)[0-9]$",
            "minLength": 14,
            "maxLength": 14,
            "examples": ["3270287A012PB2"]
        })
    }
}

/// Why a string is not a well-formed identification number. Messages name the position
/// (1-based) and what is expected there, and never repeat the whole number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdNumberError {
    /// Not 14 characters after trimming.
    #[error("identification number must be 14 characters, got {got}")]
    Length {
        /// Characters found.
        got: usize,
    },
    /// A Cyrillic letter where a Latin one is expected (typed on a Cyrillic keyboard layout).
    #[error(
        "identification number has the Cyrillic letter '{found}' at position {position}; \
         only Latin letters are allowed{}",
        latin.map(|c| format!(" (type the Latin '{c}' instead)")).unwrap_or_default()
    )]
    CyrillicLetter {
        /// 1-based position.
        position: usize,
        /// The Cyrillic letter.
        found: char,
        /// The Latin letter it looks like, if any.
        latin: Option<char>,
    },
    /// A character that is neither a Latin letter nor a digit.
    #[error(
        "identification number may contain only Latin letters A-Z and digits 0-9, \
         found {found:?} at position {position}"
    )]
    InvalidCharacter {
        /// 1-based position.
        position: usize,
        /// The character found.
        found: char,
    },
    /// The first character names neither layout.
    #[error(
        "identification number must start with a digit 1-6 (older layout: sex and century) \
         or 7 (2012+ layout), got '{found}'"
    )]
    FirstCharacter {
        /// The character found.
        found: char,
    },
    /// A letter where the layout has a digit.
    #[error(
        "identification number must have a digit at position {position} ({what}), got '{found}'"
    )]
    ExpectedDigit {
        /// 1-based position.
        position: usize,
        /// What the layout has there.
        what: &'static str,
        /// The character found.
        found: char,
    },
    /// A digit where the layout has a letter.
    #[error(
        "identification number must have a Latin letter at position {position} ({what}), got '{found}'"
    )]
    ExpectedLetter {
        /// 1-based position.
        position: usize,
        /// What the layout has there.
        what: &'static str,
        /// The character found.
        found: char,
    },
    /// Characters 2-7 of the older layout are not a real date.
    #[error(
        "identification number in the older layout must have a valid birth date DDMMYY \
         at positions 2-7"
    )]
    BirthDate,
    /// The region letter of the older layout is not one of the known regions.
    #[error(
        "identification number in the older layout must have a region letter A, B, C, E, H, K \
         or M at position 8, got '{found}'"
    )]
    Region {
        /// The letter found.
        found: char,
    },
    /// The status at positions 12-13 is not one of the known ones.
    #[error(
        "identification number must have a status PB (citizen), BI (foreign citizen) or \
         BA (stateless) at positions 12-13, got '{found}'"
    )]
    Status {
        /// The two characters found.
        found: String,
    },
}

/// A person's status, from characters 12-13 of the identification number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PersonStatus {
    /// `PB`: a citizen of the Republic of Belarus.
    Citizen,
    /// `BI`: a foreign citizen.
    ForeignCitizen,
    /// `BA`: a stateless person.
    Stateless,
}

impl PersonStatus {
    /// The two-letter code in the identification number.
    pub fn code(self) -> &'static str {
        match self {
            PersonStatus::Citizen => "PB",
            PersonStatus::ForeignCitizen => "BI",
            PersonStatus::Stateless => "BA",
        }
    }

    fn from_code(code: &str) -> Option<Self> {
        match code {
            "PB" => Some(PersonStatus::Citizen),
            "BI" => Some(PersonStatus::ForeignCitizen),
            "BA" => Some(PersonStatus::Stateless),
            _ => None,
        }
    }
}

/// The check digit for the first 13 characters of an identification number.
///
/// Digits count as 0-9 and letters as A=10 ... Z=35; the weights 7, 3, 1 repeat from the left;
/// the digit is the sum mod 10. `None` when `first13` is not exactly 13 characters of `[0-9A-Z]`.
pub fn check_digit(first13: &str) -> Option<u8> {
    if first13.len() != LEN - 1 {
        return None;
    }
    const WEIGHTS: [u32; 3] = [7, 3, 1];
    let mut sum = 0u32;
    for (i, b) in first13.bytes().enumerate() {
        let value = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'A'..=b'Z' => u32::from(b - b'A') + 10,
            _ => return None,
        };
        sum += value * WEIGHTS[i % 3];
    }
    // sum % 10 < 10, so the conversion cannot fail.
    u8::try_from(sum % 10).ok()
}

impl IdNumber {
    /// Parses an identification number: trims, upper-cases, then checks the layout strictly.
    /// A check digit that does not verify is accepted (see [`IdNumber::check_digit_valid`]).
    pub fn parse(s: &str) -> Result<IdNumber, IdNumberError> {
        let s = s.trim().to_uppercase();
        let chars: Vec<char> = s.chars().collect();
        if chars.len() != LEN {
            return Err(IdNumberError::Length { got: chars.len() });
        }
        for (i, &c) in chars.iter().enumerate() {
            if is_cyrillic(c) {
                return Err(IdNumberError::CyrillicLetter {
                    position: i + 1,
                    found: c,
                    latin: latin_look_alike(c),
                });
            }
            if !(c.is_ascii_uppercase() || c.is_ascii_digit()) {
                return Err(IdNumberError::InvalidCharacter {
                    position: i + 1,
                    found: c,
                });
            }
        }
        match chars[0] {
            '1'..='6' => {
                digits(&chars, 1..7, "birth date DDMMYY")?;
                if older_birth_date(&s).is_none() {
                    return Err(IdNumberError::BirthDate);
                }
                letter(&chars, 7, "region")?;
                if !REGIONS.contains(&chars[7]) {
                    return Err(IdNumberError::Region { found: chars[7] });
                }
            }
            '7' => {
                digits(&chars, 1..7, "number")?;
                letter(&chars, 7, "region letter")?;
            }
            found => return Err(IdNumberError::FirstCharacter { found }),
        }
        digits(&chars, 8..11, "sequence number")?;
        letter(&chars, 11, "status")?;
        letter(&chars, 12, "status")?;
        if PersonStatus::from_code(&s[11..13]).is_none() {
            return Err(IdNumberError::Status {
                found: s[11..13].to_owned(),
            });
        }
        digits(&chars, 13..14, "check digit")?;
        Ok(IdNumber(s))
    }

    /// The number, 14 upper-case characters. Personal data: do not log it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the 14th character is the check digit of the first 13.
    pub fn check_digit_valid(&self) -> bool {
        let expected = check_digit(&self.0[..LEN - 1]);
        let actual = self.0.as_bytes()[LEN - 1].checked_sub(b'0');
        expected.is_some() && expected == actual
    }

    /// The person's status, from characters 12-13.
    pub fn status(&self) -> PersonStatus {
        // Checked by `parse`; every IdNumber comes from there.
        PersonStatus::from_code(&self.0[11..13]).unwrap_or(PersonStatus::Citizen)
    }

    /// The birth date encoded in the older layout (century from the first digit: 1-2 the
    /// 1800s, 3-4 the 1900s, 5-6 the 2000s). `None` for the 2012+ layout, which carries none.
    pub fn birth_date(&self) -> Option<NaiveDate> {
        older_birth_date(&self.0)
    }

    /// The number with all but its first two and last two characters hidden:
    /// `32**********B2`. Safe for logs.
    pub fn masked(&self) -> String {
        mask_keep_ends(&self.0, 2, 2)
    }
}

/// Birth date of an older-layout number whose first seven characters are ASCII digits.
fn older_birth_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    let century = match b.first()? {
        b'1' | b'2' => 1800,
        b'3' | b'4' => 1900,
        b'5' | b'6' => 2000,
        _ => return None,
    };
    let two = |i: usize| -> Option<u32> {
        let hi = char::from(*b.get(i)?).to_digit(10)?;
        let lo = char::from(*b.get(i + 1)?).to_digit(10)?;
        Some(hi * 10 + lo)
    };
    let (day, month, year) = (two(1)?, two(3)?, two(5)?);
    NaiveDate::from_ymd_opt(century + i32::try_from(year).ok()?, month, day)
}

fn digits(
    chars: &[char],
    range: std::ops::Range<usize>,
    what: &'static str,
) -> Result<(), IdNumberError> {
    for i in range {
        if !chars[i].is_ascii_digit() {
            return Err(IdNumberError::ExpectedDigit {
                position: i + 1,
                what,
                found: chars[i],
            });
        }
    }
    Ok(())
}

fn letter(chars: &[char], i: usize, what: &'static str) -> Result<(), IdNumberError> {
    if chars[i].is_ascii_uppercase() {
        Ok(())
    } else {
        Err(IdNumberError::ExpectedLetter {
            position: i + 1,
            what,
            found: chars[i],
        })
    }
}

fn is_cyrillic(c: char) -> bool {
    matches!(c, '\u{0400}'..='\u{052F}')
}

/// The Latin capital that a Cyrillic capital is usually mistaken for.
fn latin_look_alike(c: char) -> Option<char> {
    Some(match c {
        'А' => 'A',
        'В' => 'B',
        'С' => 'C',
        'Е' => 'E',
        'Н' => 'H',
        'І' => 'I',
        'Ј' => 'J',
        'К' => 'K',
        'М' => 'M',
        'О' => 'O',
        'Р' => 'P',
        'Ѕ' => 'S',
        'Т' => 'T',
        'Х' => 'X',
        'У' => 'Y',
        _ => return None,
    })
}

impl fmt::Debug for IdNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("IdNumber").field(&self.masked()).finish()
    }
}

impl FromStr for IdNumber {
    type Err = IdNumberError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        IdNumber::parse(s)
    }
}

impl TryFrom<String> for IdNumber {
    type Error = IdNumberError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        IdNumber::parse(&s)
    }
}

impl From<IdNumber> for String {
    fn from(id: IdNumber) -> String {
        id.0
    }
}

impl AsRef<str> for IdNumber {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reference_examples_are_valid() {
        assert_eq!(check_digit("7000000A000PB"), Some(1));
        assert_eq!(check_digit("3270287A012PB"), Some(2));
        for s in ["7000000A000PB1", "3270287A012PB2"] {
            let id = IdNumber::parse(s).expect("a reference example parses");
            assert!(id.check_digit_valid(), "{s}");
            assert_eq!(id.as_str(), s);
            assert_eq!(id.status(), PersonStatus::Citizen);
        }
    }

    #[test]
    fn check_digit_rejects_other_characters_and_lengths() {
        assert_eq!(check_digit("3270287a012PB"), None);
        assert_eq!(check_digit("3270287A012P-"), None);
        assert_eq!(check_digit("3270287A012P"), None);
        assert_eq!(check_digit("3270287A012PB2"), None);
        assert_eq!(check_digit(""), None);
        assert_eq!(check_digit("3270287А012PB"), None, "Cyrillic А");
    }

    #[test]
    fn parse_trims_and_uppercases() {
        let id = IdNumber::parse("  3270287a012pb2\n").expect("parses");
        assert_eq!(id.as_str(), "3270287A012PB2");
    }

    #[test]
    fn older_layout_has_a_birth_date_with_its_century() {
        let id = IdNumber::parse("3270287A012PB2").expect("parses");
        assert_eq!(id.birth_date(), NaiveDate::from_ymd_opt(1987, 2, 27));
        let id = IdNumber::parse("5010105H001BI0").expect("parses");
        assert_eq!(id.birth_date(), NaiveDate::from_ymd_opt(2005, 1, 1));
        assert_eq!(id.status(), PersonStatus::ForeignCitizen);
        let id = IdNumber::parse("2311299K123BA0").expect("parses");
        assert_eq!(id.birth_date(), NaiveDate::from_ymd_opt(1899, 12, 31));
        assert_eq!(id.status(), PersonStatus::Stateless);
        let id = IdNumber::parse("7000000A000PB1").expect("parses");
        assert_eq!(id.birth_date(), None);
    }

    #[test]
    fn the_century_decides_whether_29_february_exists() {
        // 1900 was not a leap year, 2000 was.
        assert_eq!(
            IdNumber::parse("3290200A012PB0"),
            Err(IdNumberError::BirthDate)
        );
        assert!(IdNumber::parse("5290200A012PB0").is_ok());
    }

    #[test]
    fn a_wrong_check_digit_is_a_flag_not_an_error() {
        let id = IdNumber::parse("3270287A012PB7").expect("parses");
        assert!(!id.check_digit_valid());
    }

    #[test]
    fn format_errors_say_what_is_wrong_and_what_is_expected() {
        let cases: [(&str, IdNumberError); 11] = [
            ("3270287A012P", IdNumberError::Length { got: 12 }),
            ("", IdNumberError::Length { got: 0 }),
            (
                "3270287A012PB_",
                IdNumberError::InvalidCharacter {
                    position: 14,
                    found: '_',
                },
            ),
            (
                "8270287A012PB2",
                IdNumberError::FirstCharacter { found: '8' },
            ),
            (
                "A270287A012PB2",
                IdNumberError::FirstCharacter { found: 'A' },
            ),
            ("3271387A012PB2", IdNumberError::BirthDate),
            ("3270287D012PB2", IdNumberError::Region { found: 'D' }),
            (
                "32702871012PB2",
                IdNumberError::ExpectedLetter {
                    position: 8,
                    what: "region",
                    found: '1',
                },
            ),
            (
                "3270287A0X2PB2",
                IdNumberError::ExpectedDigit {
                    position: 10,
                    what: "sequence number",
                    found: 'X',
                },
            ),
            (
                "3270287A012PX2",
                IdNumberError::Status {
                    found: "PX".to_owned(),
                },
            ),
            (
                "3270287A012PBX",
                IdNumberError::ExpectedDigit {
                    position: 14,
                    what: "check digit",
                    found: 'X',
                },
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(IdNumber::parse(input), Err(expected), "{input:?}");
        }
        assert_eq!(
            IdNumberError::Length { got: 12 }.to_string(),
            "identification number must be 14 characters, got 12"
        );
        let msg = IdNumber::parse("3270287D012PB2")
            .expect_err("bad region")
            .to_string();
        assert!(msg.contains("A, B, C, E, H, K or M"), "{msg}");
    }

    #[test]
    fn new_layout_accepts_any_latin_letter_but_not_a_digit() {
        assert!(IdNumber::parse("7123456Z001BA3").is_ok());
        assert!(matches!(
            IdNumber::parse("71234560001PB3"),
            Err(IdNumberError::ExpectedLetter { position: 8, .. })
        ));
    }

    #[test]
    fn cyrillic_look_alikes_are_named() {
        // Cyrillic А at position 8, Cyrillic Р and В in the status.
        let err = IdNumber::parse("3270287А012PB2").expect_err("Cyrillic");
        assert_eq!(
            err,
            IdNumberError::CyrillicLetter {
                position: 8,
                found: 'А',
                latin: Some('A')
            }
        );
        let msg = err.to_string();
        assert!(msg.contains("Cyrillic"), "{msg}");
        assert!(msg.contains("Latin 'A'"), "{msg}");
        // Lower-case Cyrillic is upper-cased first, then named.
        let err = IdNumber::parse("3270287A012рв2").expect_err("Cyrillic");
        assert_eq!(
            err,
            IdNumberError::CyrillicLetter {
                position: 12,
                found: 'Р',
                latin: Some('P')
            }
        );
    }

    #[test]
    fn debug_is_masked_and_serde_is_a_plain_string() {
        let id = IdNumber::parse("3270287A012PB2").expect("parses");
        let debug = format!("{id:?}");
        assert!(!debug.contains("3270287A012PB2"), "{debug}");
        assert!(debug.contains("32**********B2"), "{debug}");
        let json = serde_json::to_string(&id).expect("serialises");
        assert_eq!(json, "\"3270287A012PB2\"");
        let back: IdNumber = serde_json::from_str(&json).expect("deserialises");
        assert_eq!(back, id);
        let bad = serde_json::from_str::<IdNumber>("\"3270287A012P\"").expect_err("too short");
        assert!(bad.to_string().contains("must be 14 characters"), "{bad}");
        assert_eq!(
            serde_json::to_string(&PersonStatus::ForeignCitizen).expect("serialises"),
            "\"foreign_citizen\""
        );
    }

    fn digit() -> impl Strategy<Value = char> {
        proptest::char::range('0', '9')
    }

    fn latin() -> impl Strategy<Value = char> {
        proptest::char::range('A', 'Z')
    }

    fn status() -> impl Strategy<Value = &'static str> {
        prop_oneof![Just("PB"), Just("BA"), Just("BI")]
    }

    fn three_digits() -> impl Strategy<Value = String> {
        proptest::collection::vec(digit(), 3).prop_map(|v| v.into_iter().collect())
    }

    /// Any well-formed first 13 characters, in either layout.
    fn prefix13() -> impl Strategy<Value = String> {
        let older = (
            1u32..=6,
            1u32..=28,
            1u32..=12,
            0u32..=99,
            proptest::sample::select(REGIONS.to_vec()),
            three_digits(),
            status(),
        )
            .prop_map(|(sex, d, m, y, r, seq, st)| format!("{sex}{d:02}{m:02}{y:02}{r}{seq}{st}"));
        let newer = (
            proptest::collection::vec(digit(), 6),
            latin(),
            three_digits(),
            status(),
        )
            .prop_map(|(six, l, seq, st)| {
                format!("7{}{l}{seq}{st}", six.into_iter().collect::<String>())
            });
        prop_oneof![older, newer]
    }

    proptest! {
        #[test]
        fn a_prefix_with_its_check_digit_parses_and_verifies(prefix in prefix13()) {
            let c = check_digit(&prefix).expect("the prefix is [0-9A-Z]");
            let id = IdNumber::parse(&format!("{prefix}{c}")).expect("well formed");
            prop_assert!(id.check_digit_valid());
            prop_assert_eq!(id.birth_date().is_some(), !prefix.starts_with('7'));
        }

        #[test]
        fn another_check_digit_parses_but_does_not_verify(prefix in prefix13(), shift in 1u8..10) {
            let c = check_digit(&prefix).expect("the prefix is [0-9A-Z]");
            let wrong = (c + shift) % 10;
            let id = IdNumber::parse(&format!("{prefix}{wrong}")).expect("well formed");
            prop_assert!(!id.check_digit_valid());
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,20}") {
            let _ = IdNumber::parse(&s);
        }

        #[test]
        fn parse_never_panics_on_near_misses(s in "[0-9A-Zа-яА-Я ]{12,16}") {
            if let Ok(id) = IdNumber::parse(&s) {
                let _ = (id.check_digit_valid(), id.status(), id.birth_date(), id.masked());
            }
        }

        #[test]
        fn masking_keeps_exactly_four_characters(prefix in prefix13(), c in 0u8..10) {
            let id = IdNumber::parse(&format!("{prefix}{c}")).expect("well formed");
            let masked = id.masked();
            prop_assert_eq!(masked.chars().count(), 14);
            for (i, (m, o)) in masked.chars().zip(id.as_str().chars()).enumerate() {
                if !(2..12).contains(&i) {
                    prop_assert_eq!(m, o);
                } else {
                    prop_assert_eq!(m, '*');
                }
            }
            let debug = format!("{id:?}");
            prop_assert!(!debug.contains(id.as_str()));
        }

        #[test]
        fn serde_round_trips(prefix in prefix13(), c in 0u8..10) {
            let id = IdNumber::parse(&format!("{prefix}{c}")).expect("well formed");
            let json = serde_json::to_string(&id).expect("serialises");
            let back: IdNumber = serde_json::from_str(&json).expect("deserialises");
            prop_assert_eq!(back, id);
        }
    }
}
