//! Belarusian mobile numbers and which simulated operator serves each. Written here, not taken
//! from the hub, so the operators are an independent check of the hub's phone handling.
//!
//! The rules (README): `+375 44` A1, `+375 33` MTS, `+375 25` life:), `+375 29` followed by
//! 1/3/6/9 (and 0/4, outside the table) A1 and 2/5/7/8 MTS. A number ending in `77` is
//! ported to the next operator (A1 → MTS → life:) → A1); one ending in `0000` has no subscriber;
//! one ending in `9999` is blocked; one ending in `8888` never receives a message.

use std::fmt;

/// A simulated mobile operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Operator {
    A1,
    Mts,
    Life,
}

impl Operator {
    /// The operator a simulator kind stands for (`None` for the other systems).
    pub(crate) fn from_kind(kind: crate::SimKind) -> Option<Operator> {
        match kind {
            crate::SimKind::Mvd
            | crate::SimKind::Erip
            | crate::SimKind::BackOffice
            | crate::SimKind::Email
            | crate::SimKind::Gossuok => None,
            crate::SimKind::A1 => Some(Operator::A1),
            crate::SimKind::Mts => Some(Operator::Mts),
            crate::SimKind::Life => Some(Operator::Life),
        }
    }

    /// The operator a number ported away from this one moves to.
    pub(crate) fn next(self) -> Operator {
        match self {
            Operator::A1 => Operator::Mts,
            Operator::Mts => Operator::Life,
            Operator::Life => Operator::A1,
        }
    }

    /// `a1`, `mts`, `life`: in answers and message ids.
    pub(crate) fn id(self) -> &'static str {
        match self {
            Operator::A1 => "a1",
            Operator::Mts => "mts",
            Operator::Life => "life",
        }
    }
}

/// A valid Belarusian mobile number, kept as `+375XXXXXXXXX`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Msisdn(String);

impl Msisdn {
    /// Accepts `+375XXXXXXXXX` or `375XXXXXXXXX` (surrounding spaces ignored).
    pub(crate) fn parse(input: &str) -> Option<Msisdn> {
        let trimmed = input.trim();
        let digits = trimmed.strip_prefix('+').unwrap_or(trimmed);
        if digits.len() != 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let rest = digits.strip_prefix("375")?;
        let number = Msisdn(format!("+{digits}"));
        match &rest[..2] {
            "25" | "33" | "44" => Some(number),
            "29" => Some(number),
            _ => None,
        }
    }

    /// `+375XXXXXXXXX`.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// The operator owning the number's prefix.
    pub(crate) fn prefix_operator(&self) -> Operator {
        let code = &self.0[4..6];
        let first = self.0.as_bytes()[6];
        match code {
            "44" => Operator::A1,
            "33" => Operator::Mts,
            "25" => Operator::Life,
            _ => match first {
                // 0 and 4 are not in the published table; like the hub, count them as A1's.
                b'0' | b'1' | b'3' | b'4' | b'6' | b'9' => Operator::A1,
                _ => Operator::Mts,
            },
        }
    }

    /// The operator that serves the number now, or `None` if nobody does (ends in `0000`).
    pub(crate) fn serving_operator(&self) -> Option<Operator> {
        if self.0.ends_with("0000") {
            None
        } else if self.0.ends_with("77") {
            Some(self.prefix_operator().next())
        } else {
            Some(self.prefix_operator())
        }
    }

    /// Ends in `9999`: a subscriber whose number is blocked.
    pub(crate) fn is_blocked(&self) -> bool {
        self.0.ends_with("9999")
    }

    /// Ends in `8888`: a phone that never receives (every message to it fails).
    pub(crate) fn never_receives(&self) -> bool {
        self.0.ends_with("8888")
    }

    /// For logs: `+375 29 ***-**-67`.
    pub(crate) fn masked(&self) -> String {
        format!("+375 {} ***-**-{}", &self.0[4..6], &self.0[11..])
    }
}

impl fmt::Display for Msisdn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A possibly invalid number as given, masked for logs (keeps only the last two characters).
pub(crate) fn mask_raw(input: &str) -> String {
    match Msisdn::parse(input) {
        Some(number) => number.masked(),
        None => {
            let chars: Vec<char> = input.chars().collect();
            let keep = chars.len().saturating_sub(2);
            chars
                .iter()
                .enumerate()
                .map(|(i, c)| if i < keep { '*' } else { *c })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Msisdn {
        Msisdn::parse(s).expect("a valid number")
    }

    #[test]
    fn parses_with_or_without_plus() {
        assert_eq!(parse("+375291234567").as_str(), "+375291234567");
        assert_eq!(parse("375291234567").as_str(), "+375291234567");
        assert!(Msisdn::parse("+37529123456").is_none());
        assert!(Msisdn::parse("+375171234567").is_none(), "Minsk landline");
        assert_eq!(
            Msisdn::parse("+375294234567").map(|m| m.prefix_operator()),
            Some(Operator::A1)
        );
        assert!(Msisdn::parse("+79161234567").is_none());
        assert!(Msisdn::parse("+3752912345a7").is_none());
    }

    #[test]
    fn prefixes_map_to_operators() {
        assert_eq!(parse("+375441234567").prefix_operator(), Operator::A1);
        assert_eq!(parse("+375331234567").prefix_operator(), Operator::Mts);
        assert_eq!(parse("+375251234567").prefix_operator(), Operator::Life);
        for (first, op) in [
            ('1', Operator::A1),
            ('3', Operator::A1),
            ('6', Operator::A1),
            ('9', Operator::A1),
            ('2', Operator::Mts),
            ('5', Operator::Mts),
            ('7', Operator::Mts),
            ('8', Operator::Mts),
        ] {
            assert_eq!(parse(&format!("+37529{first}234567")).prefix_operator(), op);
        }
    }

    #[test]
    fn ported_unknown_and_special_numbers() {
        assert_eq!(
            parse("+375441234577").serving_operator(),
            Some(Operator::Mts)
        );
        assert_eq!(
            parse("+375331234577").serving_operator(),
            Some(Operator::Life)
        );
        assert_eq!(
            parse("+375251234577").serving_operator(),
            Some(Operator::A1)
        );
        assert_eq!(parse("+375291230000").serving_operator(), None);
        assert!(parse("+375291239999").is_blocked());
        assert!(parse("+375291238888").never_receives());
    }

    #[test]
    fn masks() {
        assert_eq!(parse("+375291234567").masked(), "+375 29 ***-**-67");
        assert_eq!(mask_raw("12345"), "***45");
    }
}
