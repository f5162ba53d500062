//! Belarusian mobile numbers (MSISDN) and the operators that serve them.
//!
//! People type phone numbers in many shapes; the hub keeps one, `+375XXXXXXXXX`, so that two
//! spellings of a number are the same number everywhere (rate limits, inboxes, the operators'
//! APIs). Only mobile codes are accepted, since a number is only useful here if it can receive
//! an SMS. The operator by prefix is a first guess: ported numbers keep their prefix, so the
//! operators' own subscriber check is the truth. A number is personal data, so its `Debug`
//! form is masked.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Mobile network codes that follow `+375`.
const MOBILE_CODES: [&str; 4] = ["25", "29", "33", "44"];

/// A Belarusian mobile number, normalised to `+375XXXXXXXXX` (13 characters).
///
/// `Debug` shows the masked form only; serde reads any accepted spelling and writes the
/// normalised one.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Msisdn(String);

impl JsonSchema for Msisdn {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Msisdn".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A Belarusian mobile number in its normalised form, +375 and a \
                mobile code (25, 29, 33, 44) and 7 digits. The hub also reads the national \
                form (80...) and spaces, hyphens and parentheses, and always writes this form.",
            "pattern": "^\\+375(?:25|29|33|44)[0-9]{7}$",
            "examples": ["+375291234567"]
        })
    }
}

/// Why a string is not an accepted mobile number. Messages never repeat the number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    /// A number of another country.
    #[error(
        "phone number is not Belarusian: expected +375 and 9 digits (or 80 and 9 digits in the \
         national form)"
    )]
    NotBelarusian,
    /// A Belarusian number that is not mobile (a landline, a service number).
    #[error(
        "phone number +375 {code} is not a mobile number: the code after +375 must be \
         25, 29, 33 or 44"
    )]
    NotMobile {
        /// The two digits after `+375`.
        code: String,
    },
    /// Not a phone number at all, or the wrong number of digits.
    #[error("phone number is malformed: {problem}")]
    Malformed {
        /// What is wrong and what is expected.
        problem: String,
    },
}

/// A Belarusian mobile operator.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Operator {
    /// A1 (`a1`).
    A1,
    /// MTS (`mts`).
    Mts,
    /// life:) (`life`).
    Life,
}

impl Operator {
    /// Every operator, in the porting order A1 → MTS → life:).
    pub const ALL: [Operator; 3] = [Operator::A1, Operator::Mts, Operator::Life];

    /// The next operator in the order A1 → MTS → life:) → A1.
    pub fn next(self) -> Operator {
        match self {
            Operator::A1 => Operator::Mts,
            Operator::Mts => Operator::Life,
            Operator::Life => Operator::A1,
        }
    }

    /// The wire name: `a1`, `mts`, `life`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::A1 => "a1",
            Operator::Mts => "mts",
            Operator::Life => "life",
        }
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown operator name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown mobile operator {0:?}: expected a1, mts or life")]
pub struct UnknownOperator(pub String);

impl FromStr for Operator {
    type Err = UnknownOperator;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Operator::ALL
            .into_iter()
            .find(|o| o.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownOperator(s.to_owned()))
    }
}

impl Msisdn {
    /// Parses a mobile number and normalises it to `+375XXXXXXXXX`.
    ///
    /// Spaces, hyphens, dots and parentheses are ignored. Accepted: `+375 29 123-45-67`,
    /// `375291234567`, `+375(29)1234567`, the national trunk form `80291234567`, and the
    /// international dialling prefixes `00` and `810` before `375`. Only the mobile codes 25, 29,
    /// 33 and 44 are accepted.
    pub fn parse(s: &str) -> Result<Msisdn, PhoneError> {
        let compact: String = s
            .chars()
            .filter(|c| !(c.is_whitespace() || matches!(c, '-' | '(' | ')' | '.')))
            .collect();
        if compact.is_empty() {
            return Err(malformed("it is empty; expected +375 and 9 digits"));
        }
        let (plus, digits) = match compact.strip_prefix('+') {
            Some(rest) => (true, rest),
            None => (false, compact.as_str()),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed(
                "it may contain only digits, spaces, hyphens and parentheses after an optional \
                 leading +",
            ));
        }
        let national = if plus {
            digits
                .strip_prefix("375")
                .ok_or(PhoneError::NotBelarusian)?
        } else if let Some(rest) = digits.strip_prefix("375") {
            rest
        } else if let Some(rest) = digits.strip_prefix("80") {
            rest
        } else if let Some(rest) = digits
            .strip_prefix("00")
            .or_else(|| digits.strip_prefix("810"))
        {
            rest.strip_prefix("375").ok_or(PhoneError::NotBelarusian)?
        } else {
            return Err(malformed(
                "expected +375 and 9 digits, 375 and 9 digits, or 80 and 9 digits",
            ));
        };
        if national.len() != 9 {
            return Err(PhoneError::Malformed {
                problem: format!(
                    "a Belarusian number has 9 digits after +375 (or after 80), got {}",
                    national.len()
                ),
            });
        }
        let code = &national[..2];
        if !MOBILE_CODES.contains(&code) {
            return Err(PhoneError::NotMobile {
                code: code.to_owned(),
            });
        }
        Ok(Msisdn(format!("+375{national}")))
    }

    /// The number, `+375XXXXXXXXX`. Personal data: do not log it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The two-digit mobile code after `+375`: `25`, `29`, `33` or `44`.
    pub fn code(&self) -> &str {
        &self.0[4..6]
    }

    /// The operator that owns the number's prefix: 25 life:), 33 MTS, 44 A1; 29 by the next
    /// digit, 1, 3, 6, 9 A1 and 2, 5, 7, 8 MTS. The published table leaves 29 followed by 0 or 4
    /// open; the hub assigns those to A1, and since the guess is only where the lookup starts
    /// (ported numbers break it anyway), a wrong guess costs one extra lookup, not a wrong answer.
    pub fn operator_by_prefix(&self) -> Operator {
        match self.code() {
            "25" => Operator::Life,
            "33" => Operator::Mts,
            "44" => Operator::A1,
            _ => match self.0.as_bytes()[6] {
                b'2' | b'5' | b'7' | b'8' => Operator::Mts,
                _ => Operator::A1,
            },
        }
    }

    /// The number with the subscriber part hidden but its last two digits: `+375 29 ***-**-67`.
    /// Safe for logs.
    pub fn masked(&self) -> String {
        format!("+375 {} ***-**-{}", self.code(), &self.0[11..13])
    }
}

fn malformed(problem: &str) -> PhoneError {
    PhoneError::Malformed {
        problem: problem.to_owned(),
    }
}

impl fmt::Debug for Msisdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Msisdn").field(&self.masked()).finish()
    }
}

impl FromStr for Msisdn {
    type Err = PhoneError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Msisdn::parse(s)
    }
}

impl TryFrom<String> for Msisdn {
    type Error = PhoneError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Msisdn::parse(&s)
    }
}

impl From<Msisdn> for String {
    fn from(m: Msisdn) -> String {
        m.0
    }
}

impl AsRef<str> for Msisdn {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn msisdn(s: &str) -> Msisdn {
        Msisdn::parse(s).expect("a valid number")
    }

    #[test]
    fn common_spellings_normalise_to_one_form() {
        for s in [
            "+375 29 123-45-67",
            "375291234567",
            "+375(29)1234567",
            "80291234567",
            "8 (029) 123-45-67",
            " +375 29 123 45 67 ",
            "00375291234567",
            "810375291234567",
        ] {
            assert_eq!(msisdn(s).as_str(), "+375291234567", "{s:?}");
        }
    }

    #[test]
    fn other_countries_landlines_and_garbage_are_refused() {
        assert_eq!(
            Msisdn::parse("+7 916 123-45-67"),
            Err(PhoneError::NotBelarusian)
        );
        assert_eq!(
            Msisdn::parse("0048601234567"),
            Err(PhoneError::NotBelarusian)
        );
        assert_eq!(
            Msisdn::parse("+375 17 123-45-67"),
            Err(PhoneError::NotMobile {
                code: "17".to_owned()
            })
        );
        assert_eq!(
            Msisdn::parse("80171234567"),
            Err(PhoneError::NotMobile {
                code: "17".to_owned()
            })
        );
        for s in [
            "",
            "   ",
            "+",
            "+375 29 123-45-6",
            "+375 29 123-45-678",
            "29123456a",
            "1234567",
        ] {
            assert!(
                matches!(Msisdn::parse(s), Err(PhoneError::Malformed { .. })),
                "{s:?}: {:?}",
                Msisdn::parse(s)
            );
        }
        let msg = Msisdn::parse("+375 29 123-45-6")
            .expect_err("too short")
            .to_string();
        assert_eq!(
            msg,
            "phone number is malformed: a Belarusian number has 9 digits after +375 \
             (or after 80), got 8"
        );
        let msg = Msisdn::parse("+375 17 123-45-67")
            .expect_err("landline")
            .to_string();
        assert!(msg.contains("25, 29, 33 or 44"), "{msg}");
        assert!(!msg.contains("1234567"), "{msg}");
    }

    #[test]
    fn operators_by_prefix() {
        for (number, operator) in [
            ("+375251234567", Operator::Life),
            ("+375331234567", Operator::Mts),
            ("+375441234567", Operator::A1),
            ("+375291234567", Operator::A1),
            ("+375293234567", Operator::A1),
            ("+375296234567", Operator::A1),
            ("+375299234567", Operator::A1),
            ("+375292234567", Operator::Mts),
            ("+375295234567", Operator::Mts),
            ("+375297234567", Operator::Mts),
            ("+375298234567", Operator::Mts),
            // Not in the published table: the hub's documented choice.
            ("+375290234567", Operator::A1),
            ("+375294234567", Operator::A1),
        ] {
            assert_eq!(msisdn(number).operator_by_prefix(), operator, "{number}");
        }
    }

    #[test]
    fn operator_names_and_order() {
        assert_eq!(Operator::A1.next(), Operator::Mts);
        assert_eq!(Operator::Mts.next(), Operator::Life);
        assert_eq!(Operator::Life.next(), Operator::A1);
        for o in Operator::ALL {
            let json = serde_json::to_string(&o).expect("serialises");
            assert_eq!(json, format!("\"{o}\""));
            assert_eq!(
                serde_json::from_str::<Operator>(&json).expect("deserialises"),
                o
            );
            assert_eq!(o.to_string().parse::<Operator>(), Ok(o));
        }
        assert_eq!(Operator::A1.to_string(), "a1");
        assert_eq!(Operator::Mts.to_string(), "mts");
        assert_eq!(Operator::Life.to_string(), "life");
        assert!("velcom".parse::<Operator>().is_err());
    }

    #[test]
    fn debug_and_masked_hide_the_subscriber_number() {
        let m = msisdn("+375 29 123-45-67");
        assert_eq!(m.masked(), "+375 29 ***-**-67");
        let debug = format!("{m:?}");
        assert!(!debug.contains("+375291234567"), "{debug}");
        assert!(!debug.contains("12345"), "{debug}");
        assert!(debug.contains("+375 29 ***-**-67"), "{debug}");
    }

    #[test]
    fn serde_is_the_normalised_string() {
        let m: Msisdn = serde_json::from_str("\"8 029 123-45-67\"").expect("deserialises");
        assert_eq!(
            serde_json::to_string(&m).expect("serialises"),
            "\"+375291234567\""
        );
        assert!(serde_json::from_str::<Msisdn>("\"+375171234567\"").is_err());
    }

    fn national() -> impl Strategy<Value = (String, String)> {
        (proptest::sample::select(MOBILE_CODES.to_vec()), "[0-9]{7}")
            .prop_map(|(code, rest)| (code.to_owned(), rest))
    }

    proptest! {
        #[test]
        fn every_spelling_normalises_and_round_trips((code, rest) in national(), style in 0usize..5) {
            let spelled = match style {
                0 => format!("+375 {code} {}-{}-{}", &rest[..3], &rest[3..5], &rest[5..]),
                1 => format!("375{code}{rest}"),
                2 => format!("+375({code}){rest}"),
                3 => format!("80{code}{rest}"),
                _ => format!("8 (0{code}) {} {} {}", &rest[..3], &rest[3..5], &rest[5..]),
            };
            let m = Msisdn::parse(&spelled).expect("an accepted spelling");
            prop_assert_eq!(m.as_str(), format!("+375{code}{rest}"));
            prop_assert_eq!(Msisdn::parse(m.as_str()), Ok(m.clone()));
        }

        #[test]
        fn parse_never_panics_and_accepted_numbers_are_normal(s in "\\PC{0,20}") {
            if let Ok(m) = Msisdn::parse(&s) {
                prop_assert_eq!(m.as_str().len(), 13);
                prop_assert!(m.as_str().starts_with("+375"));
                prop_assert!(MOBILE_CODES.contains(&m.code()));
                prop_assert_eq!(Msisdn::parse(m.as_str()), Ok(m.clone()));
            }
        }

        #[test]
        fn parse_never_panics_on_digit_soup(s in "[+0-9 ()-]{0,20}") {
            if let Ok(m) = Msisdn::parse(&s) {
                prop_assert_eq!(m.as_str().len(), 13);
                prop_assert_eq!(Msisdn::parse(m.as_str()), Ok(m.clone()));
            }
        }

        #[test]
        fn masking_keeps_only_the_code_and_the_last_two_digits((code, rest) in national()) {
            let m = Msisdn::parse(&format!("+375{code}{rest}")).expect("valid");
            let masked = m.masked();
            prop_assert_eq!(&masked, &format!("+375 {code} ***-**-{}", &rest[5..]));
            // Besides 375 and the code, exactly two digits of the number are shown.
            prop_assert_eq!(masked.chars().filter(char::is_ascii_digit).count(), 3 + 2 + 2);
            let debug = format!("{m:?}");
            prop_assert!(!debug.contains(m.as_str()));
            prop_assert!(!debug.contains(&rest));
        }
    }
}
