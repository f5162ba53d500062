//! The Belarus working-day calendar.
//!
//! Statutory terms of administrative procedures ("a decision within seven working days") are
//! counted in working days, and in Belarus those are not simply Monday to Friday: public
//! holidays are days off, and each year the Council of Ministers moves some working days to
//! Saturdays to join holidays to weekends. A deadline one day off is a legal error, so the
//! calendar is data (`hub/data/calendar.toml`), validated when it is loaded, plus the statutory
//! rule for the years the data does not cover.
//!
//! The rules, in the order they apply to a date:
//!
//! 1. A Saturday that a transfer makes a working day is a working day.
//! 2. A weekday that a transfer makes a day off is a day off.
//! 3. A public holiday is a day off. A holiday that falls on a Saturday or Sunday is **not**
//!    moved to the next weekday (Belarus gives no substitute day): 9 May 2026 is a Saturday and
//!    Monday 11 May 2026 is an ordinary working day.
//! 4. Saturday and Sunday are days off; every other day is a working day.
//!
//! For a year listed in the data, its holiday list is used as given. For any other year the
//! holidays follow the statutory rule (the fixed dates and Radunitsa, computed from Orthodox
//! Easter), but there are no transfers: they are decided by an annual resolution and cannot be
//! computed, so such a year counts weekends and holidays only until its section is added.
//!
//! Everything here is pure: no clock, no I/O except [`Calendar::from_path`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use chrono::{Datelike, NaiveDate, TimeDelta, Weekday};
use serde::Deserialize;
use toml::Spanned;

/// The calendar shipped with the hub, compiled in so a deployment cannot lose it.
const EMBEDDED: &str = include_str!("../../data/calendar.toml");

/// The fixed-date public holidays (month, day, name); Radunitsa is the only movable one.
const FIXED_HOLIDAYS: [(u32, u32, &str); 9] = [
    (1, 1, "New Year"),
    (1, 2, "New Year"),
    (1, 7, "Orthodox Christmas"),
    (3, 8, "Women's Day"),
    (5, 1, "Labour Day"),
    (5, 9, "Victory Day"),
    (7, 3, "Independence Day"),
    (11, 7, "October Revolution Day"),
    (12, 25, "Catholic Christmas"),
];

/// Radunitsa, the day of remembrance: the Tuesday of the second week after Orthodox Easter.
const RADUNITSA_AFTER_EASTER_DAYS: i64 = 9;

/// Why a calendar could not be loaded; each variant names the line of the offending entry.
#[derive(Debug, thiserror::Error)]
pub enum CalendarError {
    /// The file could not be read.
    #[error("cannot read the calendar {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The text is not TOML, or not in the calendar's shape (the message has the position).
    #[error("the calendar is not valid: {0}")]
    Parse(#[from] toml::de::Error),
    /// A date that does not parse as `YYYY-MM-DD`.
    #[error("calendar line {line}: `{value}` is not a date written as YYYY-MM-DD")]
    BadDate {
        /// 1-based line of the entry.
        line: usize,
        /// The text found.
        value: String,
    },
    /// A `year` that chrono cannot represent.
    #[error("calendar line {line}: {year} is not a year the calendar can hold")]
    BadYear {
        /// 1-based line of the entry.
        line: usize,
        /// The year found.
        year: i64,
    },
    /// The same year has two sections.
    #[error("calendar line {line}: year {year} is listed twice")]
    DuplicateYear {
        /// 1-based line of the second section's `year`.
        line: usize,
        /// The year.
        year: i32,
    },
    /// A date listed under a year it does not belong to.
    #[error("calendar line {line}: {date} is listed under year {year}")]
    WrongYear {
        /// 1-based line of the entry.
        line: usize,
        /// The date.
        date: NaiveDate,
        /// The section's year.
        year: i32,
    },
    /// The same holiday date is listed twice.
    #[error("calendar line {line}: holiday {date} is listed twice")]
    DuplicateHoliday {
        /// 1-based line of the second entry.
        line: usize,
        /// The date.
        date: NaiveDate,
    },
    /// A transfer whose day off is not a Monday to Friday.
    #[error("calendar line {line}: transfer day off {date} is a {weekday}, not a weekday")]
    TransferFromWeekend {
        /// 1-based line of the entry.
        line: usize,
        /// The date.
        date: NaiveDate,
        /// What day it is.
        weekday: Weekday,
    },
    /// A transfer whose working day is not a Saturday.
    #[error("calendar line {line}: transfer working day {date} is a {weekday}, not a Saturday")]
    TransferToNonSaturday {
        /// 1-based line of the entry.
        line: usize,
        /// The date.
        date: NaiveDate,
        /// What day it is.
        weekday: Weekday,
    },
    /// A transfer touching a public holiday, which is a day off whatever the transfer says.
    #[error("calendar line {line}: transfer date {date} is a public holiday")]
    TransferOnHoliday {
        /// 1-based line of the entry.
        line: usize,
        /// The date.
        date: NaiveDate,
    },
    /// A date used by two transfers (or as both ends of transfers).
    #[error("calendar line {line}: {date} is already used by another transfer")]
    DuplicateTransfer {
        /// 1-based line of the second use.
        line: usize,
        /// The date.
        date: NaiveDate,
    },
}

/// The working-day calendar: weekends, public holidays and the transfers of working days.
#[derive(Debug, Clone)]
pub struct Calendar {
    /// Holidays (date -> name) of each year the data lists; authoritative for those years.
    years: BTreeMap<i32, BTreeMap<NaiveDate, String>>,
    /// Weekdays a transfer made days off.
    transferred_off: BTreeSet<NaiveDate>,
    /// Saturdays a transfer made working days.
    transferred_working: BTreeSet<NaiveDate>,
}

/// `calendar.toml` as written, before validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCalendar {
    #[serde(default, rename = "year")]
    years: Vec<RawYear>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawYear {
    year: Spanned<i64>,
    #[serde(default)]
    holidays: Vec<RawHoliday>,
    #[serde(default)]
    transfers: Vec<RawTransfer>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHoliday {
    date: Spanned<String>,
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTransfer {
    day_off: Spanned<String>,
    working_day: Spanned<String>,
}

impl Calendar {
    /// The calendar compiled into the hub (`hub/data/calendar.toml`).
    pub fn belarus() -> Result<Calendar, CalendarError> {
        Self::from_toml(EMBEDDED)
    }

    /// Reads and validates a calendar file, for a deployment that must follow a resolution
    /// published after its build.
    pub fn from_path(path: &Path) -> Result<Calendar, CalendarError> {
        let text = std::fs::read_to_string(path).map_err(|source| CalendarError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text)
    }

    /// Parses and validates a calendar in the format of `hub/data/calendar.toml`: dates parse
    /// and lie in their section's year, no year, holiday or transfer date is listed twice, and
    /// every transfer moves a weekday that is not a holiday to a Saturday that is not one.
    pub fn from_toml(text: &str) -> Result<Calendar, CalendarError> {
        let raw: RawCalendar = toml::from_str(text)?;
        let line = |span: std::ops::Range<usize>| line_of(text, span.start);
        let mut calendar = Calendar {
            years: BTreeMap::new(),
            transferred_off: BTreeSet::new(),
            transferred_working: BTreeSet::new(),
        };
        for section in raw.years {
            let year_line = line(section.year.span());
            let year = *section.year.get_ref();
            let year = i32::try_from(year)
                .ok()
                .filter(|y| NaiveDate::from_ymd_opt(*y, 1, 1).is_some())
                .ok_or(CalendarError::BadYear {
                    line: year_line,
                    year,
                })?;
            if calendar.years.contains_key(&year) {
                return Err(CalendarError::DuplicateYear {
                    line: year_line,
                    year,
                });
            }
            let parse_in_year =
                |date: &Spanned<String>| -> Result<(NaiveDate, usize), CalendarError> {
                    let at = line(date.span());
                    let parsed =
                        parse_date(date.get_ref()).ok_or_else(|| CalendarError::BadDate {
                            line: at,
                            value: date.get_ref().clone(),
                        })?;
                    if parsed.year() != year {
                        return Err(CalendarError::WrongYear {
                            line: at,
                            date: parsed,
                            year,
                        });
                    }
                    Ok((parsed, at))
                };

            let mut holidays = BTreeMap::new();
            for holiday in &section.holidays {
                let (date, at) = parse_in_year(&holiday.date)?;
                if holidays.insert(date, holiday.name.clone()).is_some() {
                    return Err(CalendarError::DuplicateHoliday { line: at, date });
                }
            }
            for transfer in &section.transfers {
                let (off, off_line) = parse_in_year(&transfer.day_off)?;
                let (working, working_line) = parse_in_year(&transfer.working_day)?;
                if matches!(off.weekday(), Weekday::Sat | Weekday::Sun) {
                    return Err(CalendarError::TransferFromWeekend {
                        line: off_line,
                        date: off,
                        weekday: off.weekday(),
                    });
                }
                if working.weekday() != Weekday::Sat {
                    return Err(CalendarError::TransferToNonSaturday {
                        line: working_line,
                        date: working,
                        weekday: working.weekday(),
                    });
                }
                for (date, at) in [(off, off_line), (working, working_line)] {
                    if holidays.contains_key(&date) {
                        return Err(CalendarError::TransferOnHoliday { line: at, date });
                    }
                    if calendar.transferred_off.contains(&date)
                        || calendar.transferred_working.contains(&date)
                    {
                        return Err(CalendarError::DuplicateTransfer { line: at, date });
                    }
                }
                calendar.transferred_off.insert(off);
                calendar.transferred_working.insert(working);
            }
            calendar.years.insert(year, holidays);
        }
        Ok(calendar)
    }

    /// True when the data has a section for `year`, so its transfers are known; other years
    /// count weekends and computed holidays only.
    pub fn has_data_for(&self, year: i32) -> bool {
        self.years.contains_key(&year)
    }

    /// The public holiday on `d`, by name, if there is one (whatever day of the week it is).
    pub fn holiday(&self, d: NaiveDate) -> Option<&str> {
        match self.years.get(&d.year()) {
            Some(holidays) => holidays.get(&d).map(String::as_str),
            None => statutory_holiday(d),
        }
    }

    /// True when `d` is a working day (see the module's rules).
    pub fn is_working_day(&self, d: NaiveDate) -> bool {
        if self.transferred_working.contains(&d) {
            return true;
        }
        if self.transferred_off.contains(&d) || self.holiday(d).is_some() {
            return false;
        }
        !matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
    }

    /// The date `n` working days after `start`, not counting `start` itself: the last day of a
    /// term "within `n` working days" of an application made on `start` (which may itself be
    /// a day off). `n == 0` gives `start`. Saturates at [`NaiveDate::MAX`].
    pub fn add_working_days(&self, start: NaiveDate, n: u32) -> NaiveDate {
        let mut day = start;
        let mut left = n;
        while left > 0 {
            let Some(next) = day.succ_opt() else {
                return NaiveDate::MAX;
            };
            day = next;
            if self.is_working_day(day) {
                left -= 1;
            }
        }
        day
    }

    /// How many working days lie after `from` up to and including `to`: the inverse of
    /// [`Calendar::add_working_days`], so `working_days_between(s, add_working_days(s, n)) == n`.
    /// Zero when `to` is not after `from`.
    pub fn working_days_between(&self, from: NaiveDate, to: NaiveDate) -> u32 {
        let count = from
            .iter_days()
            .skip(1)
            .take_while(|d| *d <= to)
            .filter(|d| self.is_working_day(*d))
            .count();
        // A span of chrono dates has fewer than u32::MAX days; saturate rather than wrap.
        u32::try_from(count).unwrap_or(u32::MAX)
    }

    /// Orthodox Easter of `year`, as a Gregorian date: the Julian computus (Meeus), then the
    /// Julian calendar's lag behind the Gregorian one in that year (13 days in 1900-2099).
    ///
    /// Defined for every year chrono can represent; at the extreme ends of that range, where
    /// the date itself would not be representable, it saturates to [`NaiveDate::MIN`] or
    /// [`NaiveDate::MAX`] rather than panic.
    pub fn orthodox_easter(year: i32) -> NaiveDate {
        let a = year.rem_euclid(4);
        let b = year.rem_euclid(7);
        let c = year.rem_euclid(19);
        let d = (19 * c + 15) % 30;
        let e = (2 * a + 4 * b - d + 34) % 7;
        // Both are non-negative and small: month 3 or 4, day 1..=31.
        let month = ((d + e + 114) / 31).unsigned_abs();
        let day = ((d + e + 114) % 31 + 1).unsigned_abs();
        // The lag grows by one day in each century year not divisible by 400, on Julian
        // 29 February, so it is constant from March on within a year: Easter never straddles it.
        let lag = year.div_euclid(100) - year.div_euclid(400) - 2;
        NaiveDate::from_ymd_opt(year, month, day)
            .and_then(|julian| julian.checked_add_signed(TimeDelta::days(i64::from(lag))))
            .unwrap_or(if year < 0 {
                NaiveDate::MIN
            } else {
                NaiveDate::MAX
            })
    }
}

/// The holiday on `d` by the statutory rule, for years the data does not list.
fn statutory_holiday(d: NaiveDate) -> Option<&'static str> {
    if let Some((_, _, name)) = FIXED_HOLIDAYS
        .iter()
        .find(|(month, day, _)| d.month() == *month && d.day() == *day)
    {
        return Some(name);
    }
    let radunitsa = Calendar::orthodox_easter(d.year())
        .checked_add_signed(TimeDelta::days(RADUNITSA_AFTER_EASTER_DAYS));
    (radunitsa == Some(d)).then_some("Radunitsa")
}

/// A strict `YYYY-MM-DD` date (chrono alone would also take `2025-1-6`).
fn parse_date(text: &str) -> Option<NaiveDate> {
    let shaped = text.len() == 10
        && text.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if !shaped {
        return None;
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

/// The 1-based line of byte `offset` in `text`, for error messages.
fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(0, |before| before.matches('\n').count())
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("a test date")
    }

    fn belarus() -> Calendar {
        Calendar::belarus().expect("the embedded calendar loads")
    }

    #[test]
    fn orthodox_easter_matches_the_published_dates() {
        assert_eq!(Calendar::orthodox_easter(2024), date("2024-05-05"));
        assert_eq!(Calendar::orthodox_easter(2025), date("2025-04-20"));
        assert_eq!(Calendar::orthodox_easter(2026), date("2026-04-12"));
        assert_eq!(Calendar::orthodox_easter(2027), date("2027-05-02"));
        // Further checks against the published tables, including a shared Easter and a May one.
        assert_eq!(Calendar::orthodox_easter(2017), date("2017-04-16"));
        assert_eq!(Calendar::orthodox_easter(2021), date("2021-05-02"));
        assert_eq!(Calendar::orthodox_easter(2023), date("2023-04-16"));
        assert_eq!(Calendar::orthodox_easter(2028), date("2028-04-16"));
        assert_eq!(Calendar::orthodox_easter(2030), date("2030-04-28"));
        for year in 1900..2100 {
            let easter = Calendar::orthodox_easter(year);
            assert_eq!(easter.year(), year);
            assert_eq!(easter.weekday(), Weekday::Sun, "{year}");
        }
    }

    #[test]
    fn orthodox_easter_saturates_instead_of_panicking() {
        let _ = Calendar::orthodox_easter(i32::MAX);
        let _ = Calendar::orthodox_easter(i32::MIN);
        let _ = Calendar::orthodox_easter(NaiveDate::MAX.year());
        let _ = Calendar::orthodox_easter(NaiveDate::MIN.year());
    }

    #[test]
    fn radunitsa_is_a_day_off() {
        let c = belarus();
        assert_eq!(c.holiday(date("2025-04-29")), Some("Radunitsa"));
        assert_eq!(c.holiday(date("2026-04-21")), Some("Radunitsa"));
        assert_eq!(date("2026-04-21").weekday(), Weekday::Tue);
        assert!(!c.is_working_day(date("2025-04-29")));
        assert!(!c.is_working_day(date("2026-04-21")));
    }

    #[test]
    fn the_data_agrees_with_the_statutory_rule() {
        let c = belarus();
        for year in 2024..=2027 {
            assert!(c.has_data_for(year));
            let mut day = date(&format!("{year}-01-01"));
            while day.year() == year {
                assert_eq!(
                    c.holiday(day).is_some(),
                    statutory_holiday(day).is_some(),
                    "{day}"
                );
                day = day.succ_opt().expect("a next day");
            }
        }
    }

    #[test]
    fn transfers_swap_a_weekday_and_a_saturday() {
        let c = belarus();
        assert!(!c.is_working_day(date("2025-01-06")));
        assert!(c.is_working_day(date("2025-01-11")));
        assert!(!c.is_working_day(date("2025-04-28")));
        assert!(c.is_working_day(date("2025-04-26")));
        assert!(!c.is_working_day(date("2025-07-04")));
        assert!(c.is_working_day(date("2025-07-12")));
        assert!(!c.is_working_day(date("2025-12-26")));
        assert!(c.is_working_day(date("2025-12-20")));
        assert!(!c.is_working_day(date("2026-04-20")));
        assert!(c.is_working_day(date("2026-04-25")));
        // An ordinary Saturday and Monday.
        assert!(!c.is_working_day(date("2026-04-18")));
        assert!(c.is_working_day(date("2026-04-27")));
    }

    #[test]
    fn seven_working_days_around_radunitsa_2026() {
        // Thu 16 Apr: Fri 17 (1); Sat 18, Sun 19 off; Mon 20 transferred off; Tue 21
        // Radunitsa; Wed 22 (2), Thu 23 (3), Fri 24 (4), Sat 25 transferred working (5);
        // Sun 26 off; Mon 27 (6), Tue 28 (7).
        let c = belarus();
        assert_eq!(
            c.add_working_days(date("2026-04-16"), 7),
            date("2026-04-28")
        );
        assert_eq!(
            c.add_working_days(date("2026-04-16"), 5),
            date("2026-04-25")
        );
        assert_eq!(
            c.working_days_between(date("2026-04-16"), date("2026-04-28")),
            7
        );
    }

    #[test]
    fn across_new_year_2025_to_2026() {
        // Wed 24 Dec: Thu 25 holiday; Fri 26 transferred off; weekend; Mon 29 (1), Tue 30 (2),
        // Wed 31 (3); Thu 1 and Fri 2 Jan holidays; weekend; Mon 5 (4), Tue 6 (5: 6 Jan is
        // an ordinary day in 2026); Wed 7 Orthodox Christmas; Thu 8 (6), Fri 9 (7).
        let c = belarus();
        assert_eq!(
            c.add_working_days(date("2025-12-24"), 7),
            date("2026-01-09")
        );
        // The Saturday worked for 26 Dec counts.
        assert_eq!(
            c.add_working_days(date("2025-12-19"), 1),
            date("2025-12-20")
        );
    }

    #[test]
    fn holidays_on_a_weekend_are_not_moved() {
        // Wed 29 Apr 2026: Thu 30 (1); Fri 1 May holiday; weekend; Mon 4 (2) .. Fri 8 (6);
        // Sat 9 May, Victory Day, is a Saturday anyway and Mon 11 May stays a working day (7).
        let c = belarus();
        assert_eq!(c.holiday(date("2026-05-09")), Some("Victory Day"));
        assert!(c.is_working_day(date("2026-05-11")));
        assert_eq!(
            c.add_working_days(date("2026-04-29"), 7),
            date("2026-05-11")
        );
        assert_eq!(
            c.add_working_days(date("2026-04-29"), 10),
            date("2026-05-14")
        );
    }

    #[test]
    fn years_without_data_still_know_weekends_and_holidays() {
        let c = belarus();
        assert!(!c.has_data_for(2030));
        // Orthodox Easter 2030 is 28 Apr, so Radunitsa is Tue 7 May.
        assert_eq!(c.holiday(date("2030-05-07")), Some("Radunitsa"));
        assert!(!c.is_working_day(date("2030-05-07")));
        assert!(!c.is_working_day(date("2030-01-07")));
        assert!(!c.is_working_day(date("2030-01-05")));
        assert!(c.is_working_day(date("2030-01-08")));
    }

    #[test]
    fn zero_days_and_backwards_spans() {
        let c = belarus();
        let sunday = date("2026-04-19");
        assert_eq!(c.add_working_days(sunday, 0), sunday);
        assert_eq!(c.working_days_between(sunday, sunday), 0);
        assert_eq!(
            c.working_days_between(date("2026-04-28"), date("2026-04-16")),
            0
        );
        assert_eq!(c.add_working_days(NaiveDate::MAX, 1), NaiveDate::MAX);
    }

    #[test]
    fn add_and_between_agree_on_random_dates() {
        let c = belarus();
        // A fixed xorshift keeps the test reproducible without a dependency.
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let first = date("2023-06-01");
        for _ in 0..2000 {
            let offset = i64::try_from(next() % 2200).expect("small");
            let start = first + TimeDelta::days(offset);
            let n = u32::try_from(next() % 60).expect("small") + 1;
            let end = c.add_working_days(start, n);
            assert!(c.is_working_day(end), "{start} + {n} = {end}");
            assert!(end > start);
            assert_eq!(c.working_days_between(start, end), n, "{start} + {n}");
            // The day before the deadline has one working day fewer.
            let before = end.pred_opt().expect("a previous day");
            assert_eq!(c.working_days_between(start, before), n - 1);
        }
    }

    fn load_error(text: &str) -> CalendarError {
        Calendar::from_toml(text).expect_err("the calendar is rejected")
    }

    #[test]
    fn rejects_bad_dates_with_their_line() {
        let e = load_error(
            "[[year]]\nyear = 2025\nholidays = [\n  { date = \"2025-02-30\", name = \"x\" },\n]\n",
        );
        assert!(matches!(e, CalendarError::BadDate { line: 4, .. }), "{e}");
        assert!(e.to_string().contains("line 4"), "{e}");
        let e = load_error(
            "[[year]]\nyear = 2025\nholidays = [{ date = \"2025-1-1\", name = \"x\" }]\n",
        );
        assert!(matches!(e, CalendarError::BadDate { line: 3, .. }), "{e}");
    }

    #[test]
    fn rejects_malformed_toml_and_unknown_keys() {
        assert!(matches!(load_error("[[year]\n"), CalendarError::Parse(_)));
        assert!(matches!(
            load_error("[[year]]\nyear = 2025\nholiday = []\n"),
            CalendarError::Parse(_)
        ));
        assert!(matches!(
            load_error("[[year]]\nyear = 9999999\n"),
            CalendarError::BadYear { line: 2, .. }
        ));
    }

    #[test]
    fn rejects_duplicates() {
        let e = load_error("[[year]]\nyear = 2025\n[[year]]\nyear = 2025\n");
        assert!(
            matches!(
                e,
                CalendarError::DuplicateYear {
                    line: 4,
                    year: 2025
                }
            ),
            "{e}"
        );
        let e = load_error(
            "[[year]]\nyear = 2025\nholidays = [\n { date = \"2025-01-01\", name = \"a\" },\n { date = \"2025-01-01\", name = \"b\" },\n]\n",
        );
        assert!(
            matches!(e, CalendarError::DuplicateHoliday { line: 5, .. }),
            "{e}"
        );
        let e = load_error(
            "[[year]]\nyear = 2025\ntransfers = [\n { day_off = \"2025-01-06\", working_day = \"2025-01-11\" },\n { day_off = \"2025-01-06\", working_day = \"2025-01-18\" },\n]\n",
        );
        assert!(
            matches!(e, CalendarError::DuplicateTransfer { line: 5, .. }),
            "{e}"
        );
    }

    #[test]
    fn rejects_dates_outside_their_year() {
        let e = load_error(
            "[[year]]\nyear = 2025\nholidays = [{ date = \"2026-01-01\", name = \"x\" }]\n",
        );
        assert!(
            matches!(
                e,
                CalendarError::WrongYear {
                    line: 3,
                    year: 2025,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn rejects_transfers_that_do_not_move_a_weekday_to_a_saturday() {
        // 5 Jan 2025 is a Sunday.
        let e = load_error(
            "[[year]]\nyear = 2025\ntransfers = [{ day_off = \"2025-01-05\", working_day = \"2025-01-11\" }]\n",
        );
        assert!(
            matches!(
                e,
                CalendarError::TransferFromWeekend {
                    line: 3,
                    weekday: Weekday::Sun,
                    ..
                }
            ),
            "{e}"
        );
        // 12 Jan 2025 is a Sunday.
        let e = load_error(
            "[[year]]\nyear = 2025\ntransfers = [{ day_off = \"2025-01-06\", working_day = \"2025-01-12\" }]\n",
        );
        assert!(
            matches!(
                e,
                CalendarError::TransferToNonSaturday {
                    line: 3,
                    weekday: Weekday::Sun,
                    ..
                }
            ),
            "{e}"
        );
        let e = load_error(
            "[[year]]\nyear = 2025\nholidays = [{ date = \"2025-01-02\", name = \"New Year\" }]\ntransfers = [{ day_off = \"2025-01-02\", working_day = \"2025-01-11\" }]\n",
        );
        assert!(
            matches!(e, CalendarError::TransferOnHoliday { line: 4, .. }),
            "{e}"
        );
    }

    #[test]
    fn loads_from_a_path() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/calendar.toml");
        let c = Calendar::from_path(&path).expect("the data file loads");
        assert!(!c.is_working_day(date("2025-01-06")));
        let e = Calendar::from_path(Path::new("/nonexistent/calendar.toml"))
            .expect_err("a missing file");
        assert!(matches!(e, CalendarError::Io { .. }));
    }
}
