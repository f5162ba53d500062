//! The registry's population, generated from a seed so that tests and the demo can rely on the
//! same persons run after run, and so that every case the hub must handle is present: valid
//! numbers in both layouts and a few old ones whose check digit does not verify, foreigners and
//! stateless persons with residence permits, expired and lost documents, changed surnames.
//!
//! Everything but the document dates is a function of the seed alone. Document dates are placed
//! relative to the day the simulator starts, so that the share of expired documents is the same
//! whichever day it runs (and a document generated as valid is valid for at least 30 days).

use std::collections::{HashMap, HashSet};

use chrono::{Datelike, Days, Months, NaiveDate};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::idnumber;

/// The earliest birth date generated.
const EARLIEST_BIRTH: NaiveDate = match NaiveDate::from_ymd_opt(1940, 1, 1) {
    Some(date) => date,
    None => panic!("a valid date"),
};

/// The latest birth date generated.
const LATEST_BIRTH: NaiveDate = match NaiveDate::from_ymd_opt(2008, 12, 31) {
    Some(date) => date,
    None => panic!("a valid date"),
};

/// The age at which a person gets a first identity document.
const FIRST_DOCUMENT_AGE: u32 = 14;

/// A person's legal status, and the status letters of the identification number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = PersonStatus)]
pub(crate) enum Status {
    Citizen,
    ForeignCitizen,
    Stateless,
}

impl Status {
    fn code(self) -> &'static str {
        match self {
            Status::Citizen => "PB",
            Status::Stateless => "BA",
            Status::ForeignCitizen => "BI",
        }
    }
}

/// The kind of an identity document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum DocumentKind {
    Passport,
    IdCard,
    ResidencePermit,
}

impl DocumentKind {
    fn series(self) -> &'static [&'static str] {
        match self {
            DocumentKind::Passport => &["MP", "MC", "AB", "BM", "HB", "KH", "KB"],
            DocumentKind::IdCard => &["ID"],
            DocumentKind::ResidencePermit => &["RP"],
        }
    }

    fn validity_years(self) -> u32 {
        match self {
            DocumentKind::Passport | DocumentKind::IdCard => 10,
            DocumentKind::ResidencePermit => 5,
        }
    }
}

/// What the registry knows about a document beyond its dates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum DocumentStatus {
    Valid,
    Expired,
    Lost,
}

/// An identity document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub(crate) struct Document {
    pub(crate) kind: DocumentKind,
    pub(crate) number: String,
    pub(crate) issued_on: NaiveDate,
    pub(crate) expires_on: NaiveDate,
}

/// A person in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Person {
    pub(crate) identification_number: String,
    pub(crate) surname: String,
    pub(crate) given_name: String,
    pub(crate) patronymic: Option<String>,
    pub(crate) birth_date: NaiveDate,
    pub(crate) document: Document,
    pub(crate) status: Status,
    pub(crate) lost: bool,
    pub(crate) previous_surname: Option<String>,
    pub(crate) check_digit_valid: bool,
}

impl Person {
    /// The document's status on `today`: lost if reported lost, expired once its expiry date
    /// has passed, valid otherwise.
    pub(crate) fn document_status(&self, today: NaiveDate) -> DocumentStatus {
        if self.lost {
            DocumentStatus::Lost
        } else if self.document.expires_on < today {
            DocumentStatus::Expired
        } else {
            DocumentStatus::Valid
        }
    }

    /// The person as `/sim/population` and `/sim/persons/{id}` show it.
    pub(crate) fn to_json(&self, today: NaiveDate) -> Value {
        json!({
            "identification_number": self.identification_number,
            "surname": self.surname,
            "given_name": self.given_name,
            "patronymic": self.patronymic,
            "birth_date": self.birth_date,
            "document": self.document,
            "status": self.status,
            "document_status": self.document_status(today),
            "previous_surname": self.previous_surname,
            "check_digit_valid": self.check_digit_valid,
        })
    }
}

/// The generated persons, in generation order, with an index by identification number.
#[derive(Debug)]
pub(crate) struct Population {
    persons: Vec<Person>,
    by_number: HashMap<String, usize>,
}

impl Population {
    /// Every person, in generation order.
    pub(crate) fn persons(&self) -> &[Person] {
        &self.persons
    }

    /// The person with this identification number.
    pub(crate) fn find(&self, identification_number: &str) -> Option<&Person> {
        self.by_number
            .get(identification_number)
            .and_then(|&i| self.persons.get(i))
    }
}

// Names. Slavic surnames as (masculine, feminine); many Belarusian ones do not change.
const SURNAMES: &[(&str, &str)] = &[
    ("Иванов", "Иванова"),
    ("Петров", "Петрова"),
    ("Ковалёв", "Ковалёва"),
    ("Новиков", "Новикова"),
    ("Козлов", "Козлова"),
    ("Морозов", "Морозова"),
    ("Волков", "Волкова"),
    ("Соколов", "Соколова"),
    ("Лебедев", "Лебедева"),
    ("Кузнецов", "Кузнецова"),
    ("Смирнов", "Смирнова"),
    ("Попов", "Попова"),
    ("Васильев", "Васильева"),
    ("Михайлов", "Михайлова"),
    ("Фёдоров", "Фёдорова"),
    ("Жуков", "Жукова"),
    ("Макаров", "Макарова"),
    ("Белов", "Белова"),
    ("Зайцев", "Зайцева"),
    ("Орлов", "Орлова"),
    ("Гурин", "Гурина"),
    ("Савицкий", "Савицкая"),
    ("Высоцкий", "Высоцкая"),
    ("Островский", "Островская"),
    ("Яновский", "Яновская"),
    ("Дубовский", "Дубовская"),
    ("Ковальчук", "Ковальчук"),
    ("Шевчук", "Шевчук"),
    ("Климович", "Климович"),
    ("Лукашевич", "Лукашевич"),
    ("Мицкевич", "Мицкевич"),
    ("Карпович", "Карпович"),
    ("Богданович", "Богданович"),
    ("Ярошевич", "Ярошевич"),
    ("Радкевич", "Радкевич"),
    ("Шинкевич", "Шинкевич"),
    ("Тарасевич", "Тарасевич"),
    ("Пашкевич", "Пашкевич"),
    ("Кравченко", "Кравченко"),
    ("Бондаренко", "Бондаренко"),
    ("Сидоренко", "Сидоренко"),
    ("Громыко", "Громыко"),
    ("Жук", "Жук"),
];

const MALE_NAMES: &[&str] = &[
    "Александр",
    "Алексей",
    "Андрей",
    "Антон",
    "Артём",
    "Владимир",
    "Дмитрий",
    "Евгений",
    "Иван",
    "Игорь",
    "Кирилл",
    "Максим",
    "Михаил",
    "Николай",
    "Павел",
    "Сергей",
    "Виктор",
    "Юрий",
    "Олег",
    "Денис",
    "Вадим",
    "Геннадий",
    "Степан",
    "Фёдор",
];

const FEMALE_NAMES: &[&str] = &[
    "Анна",
    "Алина",
    "Валентина",
    "Вероника",
    "Виктория",
    "Галина",
    "Дарья",
    "Екатерина",
    "Елена",
    "Ирина",
    "Ксения",
    "Людмила",
    "Марина",
    "Мария",
    "Наталья",
    "Ольга",
    "Светлана",
    "Татьяна",
    "Юлия",
    "Янина",
    "Оксана",
    "Алеся",
    "Полина",
    "Кристина",
];

/// Patronymics as (masculine, feminine).
const PATRONYMICS: &[(&str, &str)] = &[
    ("Александрович", "Александровна"),
    ("Алексеевич", "Алексеевна"),
    ("Андреевич", "Андреевна"),
    ("Антонович", "Антоновна"),
    ("Владимирович", "Владимировна"),
    ("Дмитриевич", "Дмитриевна"),
    ("Евгеньевич", "Евгеньевна"),
    ("Иванович", "Ивановна"),
    ("Игоревич", "Игоревна"),
    ("Михайлович", "Михайловна"),
    ("Николаевич", "Николаевна"),
    ("Павлович", "Павловна"),
    ("Сергеевич", "Сергеевна"),
    ("Викторович", "Викторовна"),
    ("Юрьевич", "Юрьевна"),
    ("Олегович", "Олеговна"),
    ("Геннадьевич", "Геннадьевна"),
    ("Степанович", "Степановна"),
    ("Фёдорович", "Фёдоровна"),
    ("Петрович", "Петровна"),
    ("Васильевич", "Васильевна"),
    ("Леонидович", "Леонидовна"),
    ("Анатольевич", "Анатольевна"),
    ("Валерьевич", "Валерьевна"),
];

/// Foreigners' surnames (the same for men and women), written in Cyrillic as a registry would.
const FOREIGN_SURNAMES: &[&str] = &[
    "Ли",
    "Ван",
    "Чжан",
    "Лю",
    "Новак",
    "Мюллер",
    "Шмидт",
    "Нгуен",
    "Озтюрк",
    "Коэн",
    "Мартинес",
];

const FOREIGN_MALE_NAMES: &[&str] = &["Вэй", "Мин", "Томаш", "Ахмед", "Али", "Йонас", "Кемаль"];

const FOREIGN_FEMALE_NAMES: &[&str] = &["Мэй", "Лин", "Зейнеп", "Айгуль", "Ева", "Агнешка"];

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

fn add_years(date: NaiveDate, years: u32) -> NaiveDate {
    date.checked_add_months(Months::new(12 * years))
        .unwrap_or(NaiveDate::MAX)
}

fn sub_years(date: NaiveDate, years: u32) -> NaiveDate {
    date.checked_sub_months(Months::new(12 * years))
        .unwrap_or(NaiveDate::MIN)
}

fn add_days(date: NaiveDate, days: u64) -> NaiveDate {
    date.checked_add_days(Days::new(days))
        .unwrap_or(NaiveDate::MAX)
}

fn sub_days(date: NaiveDate, days: u64) -> NaiveDate {
    date.checked_sub_days(Days::new(days))
        .unwrap_or(NaiveDate::MIN)
}

/// A date in `from..=to` (`from` must not be after `to`).
fn random_date(rng: &mut StdRng, from: NaiveDate, to: NaiveDate) -> NaiveDate {
    let span = u64::try_from((to - from).num_days()).unwrap_or(0);
    add_days(from, rng.random_range(0..=span))
}

/// Generates `size` persons from `seed`, with document dates relative to `today`.
pub(crate) fn generate(seed: u64, size: usize, today: NaiveDate) -> Population {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut numbers = HashSet::with_capacity(size);
    let mut documents = HashSet::with_capacity(size);
    let mut persons = Vec::with_capacity(size);
    for _ in 0..size {
        persons.push(person(&mut rng, today, &mut numbers, &mut documents));
    }
    let by_number = persons
        .iter()
        .enumerate()
        .map(|(i, p)| (p.identification_number.clone(), i))
        .collect();
    Population { persons, by_number }
}

fn person(
    rng: &mut StdRng,
    today: NaiveDate,
    numbers: &mut HashSet<String>,
    documents: &mut HashSet<String>,
) -> Person {
    let female = rng.random_bool(0.5);
    let status = match rng.random::<f64>() {
        r if r < 0.90 => Status::Citizen,
        r if r < 0.97 => Status::ForeignCitizen,
        _ => Status::Stateless,
    };
    let birth_date = random_date(rng, EARLIEST_BIRTH, LATEST_BIRTH);

    // Names: foreigners and stateless persons have foreign names and no patronymic half of
    // the time; everybody else has Slavic names with a patronymic.
    let foreign_names = status != Status::Citizen && rng.random_bool(0.5);
    let (surname, given_name, patronymic) = if foreign_names {
        let surname = *pick(rng, FOREIGN_SURNAMES);
        let names = if female {
            FOREIGN_FEMALE_NAMES
        } else {
            FOREIGN_MALE_NAMES
        };
        (surname.to_owned(), pick(rng, names).to_string(), None)
    } else {
        let surname = gendered(*pick(rng, SURNAMES), female);
        let names = if female { FEMALE_NAMES } else { MALE_NAMES };
        let given = pick(rng, names).to_string();
        let patronymic = gendered(*pick(rng, PATRONYMICS), female);
        (surname.to_owned(), given, Some(patronymic.to_owned()))
    };
    let previous_surname = rng.random_bool(0.03).then(|| {
        loop {
            let candidate = if foreign_names {
                *pick(rng, FOREIGN_SURNAMES)
            } else {
                gendered(*pick(rng, SURNAMES), female)
            };
            if candidate != surname {
                break candidate.to_owned();
            }
        }
    });

    let (identification_number, check_digit_valid) =
        identification_number(rng, status, birth_date, female, numbers);

    let kind = match status {
        Status::Citizen if rng.random_bool(0.8) => DocumentKind::Passport,
        Status::Citizen => DocumentKind::IdCard,
        Status::ForeignCitizen | Status::Stateless => DocumentKind::ResidencePermit,
    };
    let series = *pick(rng, kind.series());
    let number = loop {
        let candidate = format!("{series}{:07}", rng.random_range(0..10_000_000));
        if documents.insert(candidate.clone()) {
            break candidate;
        }
    };
    let years = kind.validity_years();
    let first_possible = add_years(birth_date, FIRST_DOCUMENT_AGE);
    let roll = rng.random::<f64>();
    let expired = if roll < 0.05 {
        // Expired in the last five years, if the person was old enough to be issued it.
        let from = sub_years(today, 5).max(add_years(first_possible, years));
        let to = sub_days(today, 1);
        (from <= to).then(|| random_date(rng, from, to))
    } else {
        None
    };
    let (issued_on, expires_on) = match expired {
        Some(expires_on) => (sub_years(expires_on, years), expires_on),
        None => {
            let from = add_days(sub_years(today, years), 30).max(first_possible);
            let to = sub_days(today, 1);
            let issued_on = if from <= to {
                random_date(rng, from, to)
            } else {
                first_possible.min(today)
            };
            (issued_on, add_years(issued_on, years))
        }
    };
    let lost = (0.05..0.07).contains(&roll);

    Person {
        identification_number,
        surname,
        given_name,
        patronymic,
        birth_date,
        document: Document {
            kind,
            number,
            issued_on,
            expires_on,
        },
        status,
        lost,
        previous_surname,
        check_digit_valid,
    }
}

fn gendered<'a>((masculine, feminine): (&'a str, &'a str), female: bool) -> &'a str {
    if female { feminine } else { masculine }
}

/// A unique number: 70% in the 2012+ layout, 27% in the older one, 3% in the older one with a
/// check digit that does not verify. Returns the number and whether its check digit verifies.
fn identification_number(
    rng: &mut StdRng,
    status: Status,
    birth_date: NaiveDate,
    female: bool,
    numbers: &mut HashSet<String>,
) -> (String, bool) {
    let roll = rng.random::<f64>();
    loop {
        let region = *pick(rng, &idnumber::REGIONS);
        let sequence = rng.random_range(0..1000);
        let first13 = if roll < 0.30 {
            format!(
                "{}{:02}{:02}{:02}{region}{sequence:03}{}",
                idnumber::sex_century_digit(birth_date, female),
                birth_date.day(),
                birth_date.month(),
                birth_date.year() % 100,
                status.code()
            )
        } else {
            format!(
                "7{:06}{region}{sequence:03}{}",
                rng.random_range(0..1_000_000),
                status.code()
            )
        };
        let Some(check) = idnumber::check_digit(&first13) else {
            continue;
        };
        let (check, valid) = if roll < 0.03 {
            let correct = check.to_digit(10).unwrap_or(0);
            let wrong = (correct + rng.random_range(1..10)) % 10;
            (char::from_digit(wrong, 10).unwrap_or('0'), false)
        } else {
            (check, true)
        };
        let number = format!("{first13}{check}");
        if numbers.insert(number.clone()) {
            return (number, valid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TODAY: NaiveDate = match NaiveDate::from_ymd_opt(2026, 11, 26) {
        Some(date) => date,
        None => panic!("a valid date"),
    };

    #[test]
    fn the_same_seed_gives_the_same_population() {
        let a = generate(42, 200, TODAY);
        let b = generate(42, 200, TODAY);
        let c = generate(43, 200, TODAY);
        assert_eq!(a.persons(), b.persons());
        assert_ne!(a.persons()[..10], c.persons()[..10]);
    }

    #[test]
    fn numbers_and_check_digits() {
        let population = generate(7, 5000, TODAY);
        let persons = population.persons();
        let mut unique = HashSet::new();
        for p in persons {
            assert!(
                unique.insert(p.identification_number.clone()),
                "duplicate number"
            );
            assert_eq!(p.identification_number.len(), 14);
            assert_eq!(
                idnumber::verifies(&p.identification_number),
                p.check_digit_valid
            );
            if p.identification_number.starts_with('7') {
                assert!(p.check_digit_valid, "{}", p.identification_number);
            }
            let status = &p.identification_number[11..13];
            assert_eq!(status, p.status.code());
            assert!(population.find(&p.identification_number).is_some());
        }
        let invalid = persons.iter().filter(|p| !p.check_digit_valid).count();
        let old = persons
            .iter()
            .filter(|p| !p.identification_number.starts_with('7'))
            .count();
        assert!((75..=250).contains(&invalid), "{invalid} invalid of 5000");
        assert!((1000..=2000).contains(&old), "{old} old of 5000");
    }

    #[test]
    fn old_layout_numbers_carry_the_birth_date_and_sex() {
        let population = generate(11, 2000, TODAY);
        for p in population.persons() {
            let n = &p.identification_number;
            if n.starts_with('7') {
                continue;
            }
            assert_eq!(&n[1..7], p.birth_date.format("%d%m%y").to_string(), "{n}");
            assert!(matches!(&n[..1], "3" | "4" | "5" | "6"), "{n}");
        }
    }

    #[test]
    fn document_shares_and_rules() {
        let population = generate(42, 5000, TODAY);
        let persons = population.persons();
        let count = |f: &dyn Fn(&Person) -> bool| persons.iter().filter(|p| f(p)).count();
        let expired = count(&|p| p.document_status(TODAY) == DocumentStatus::Expired);
        let lost = count(&|p| p.document_status(TODAY) == DocumentStatus::Lost);
        let renamed = count(&|p| p.previous_surname.is_some());
        assert!((100..=350).contains(&expired), "{expired} expired");
        assert!((40..=180).contains(&lost), "{lost} lost");
        assert!((60..=250).contains(&renamed), "{renamed} renamed");
        let mut documents = HashSet::new();
        for p in persons {
            assert!(
                documents.insert(p.document.number.clone()),
                "duplicate document"
            );
            assert_eq!(p.document.number.len(), 9);
            assert!(p.birth_date >= EARLIEST_BIRTH && p.birth_date <= LATEST_BIRTH);
            assert!(p.document.issued_on >= add_years(p.birth_date, FIRST_DOCUMENT_AGE));
            assert_eq!(
                p.document.expires_on,
                add_years(p.document.issued_on, p.document.kind.validity_years())
            );
            if p.document_status(TODAY) == DocumentStatus::Valid {
                assert!(p.document.expires_on >= add_days(TODAY, 30));
            }
            let foreign = p.status != Status::Citizen;
            assert_eq!(p.document.kind == DocumentKind::ResidencePermit, foreign);
            if p.patronymic.is_none() {
                assert!(foreign);
            }
            assert_ne!(p.previous_surname.as_deref(), Some(p.surname.as_str()));
        }
    }
}
