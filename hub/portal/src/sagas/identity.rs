//! The desk's proof of identity, checked as at issuance: the person as stated and the identity
//! document presented, by issuance's rules of form (the age rule aside: the person holds an
//! identifier already), then reconciled with the MVD registry by the saga. Shared by every desk
//! request that needs it (an unblock, a resend of the temporary password).

use chrono::{Datelike, NaiveDate};
use contracts::ValidationErrors;
use contracts::issuance::{Applicant, DocumentKind, IdentityDocument};
use contracts::person::{IdNumber, PersonStatus};

/// Checks the person and the document; adds the problems to `e` (fields `person.*`,
/// `document.*`) and returns the parsed identification number.
pub(crate) fn check_person_and_document(
    e: &mut ValidationErrors,
    p: &Applicant,
    d: &IdentityDocument,
    today: NaiveDate,
) -> Option<IdNumber> {
    let id = check_person(e, p, today, None);
    check_document(e, p, d, today);
    id
}

/// Checks the person as stated (`person.*`): the identification number and the status it
/// says, the names, and the birth date — not in the future, and with `min_age` (issuance) at
/// least that many years ago. Returns the parsed identification number.
pub(crate) fn check_person(
    e: &mut ValidationErrors,
    p: &Applicant,
    today: NaiveDate,
    min_age: Option<u32>,
) -> Option<IdNumber> {
    let id = IdNumber::parse(&p.identification_number)
        .map_err(|err| e.add("person.identification_number", err.to_string()))
        .ok();
    if let Some(id) = id.as_ref().filter(|id| id.status() != p.status) {
        e.add(
            "person.status",
            format!(
                "does not match the identification number, which says {}",
                status_name(id.status())
            ),
        );
    }
    for (field, value) in [
        ("person.surname", Some(&p.surname)),
        ("person.given_name", Some(&p.given_name)),
        ("person.patronymic", p.patronymic.as_ref()),
    ] {
        if let Some(v) = value {
            let v = v.trim();
            let ok = !v.is_empty()
                && v.chars().count() <= 100
                && v.chars().all(|c| c.is_alphabetic() || " -'".contains(c));
            e.check(
                ok,
                field,
                "must be 1-100 letters (spaces, hyphens and apostrophes allowed)",
            );
        }
    }
    match (age_on(p.birth_date, today), min_age) {
        (None, _) => e.add("person.birth_date", "must not be in the future"),
        (Some(age), Some(min_age)) if age < min_age => e.add(
            "person.birth_date",
            format!("the person must be at least {min_age} years old"),
        ),
        _ => {}
    }
    id
}

/// Checks the identity document presented (`document.*`): a number, dates in order, and the
/// kind the person's status calls for.
pub(crate) fn check_document(
    e: &mut ValidationErrors,
    p: &Applicant,
    d: &IdentityDocument,
    today: NaiveDate,
) {
    e.check(
        !d.number.trim().is_empty(),
        "document.number",
        "must not be empty",
    );
    e.check(
        d.issued_on <= today,
        "document.issued_on",
        "must not be in the future",
    );
    e.check(
        d.issued_on < d.expires_on,
        "document.expires_on",
        "must be after the date of issue",
    );
    let kind_fits = match p.status {
        PersonStatus::Citizen => matches!(d.kind, DocumentKind::Passport | DocumentKind::IdCard),
        _ => d.kind == DocumentKind::ResidencePermit,
    };
    e.check(
        kind_fits,
        "document.kind",
        "a citizen presents a passport or identity card; a foreign citizen or stateless person a residence permit",
    );
}

/// Whole years from `birth` to `today`; `None` for a birth in the future.
fn age_on(birth: NaiveDate, today: NaiveDate) -> Option<u32> {
    if birth > today {
        return None;
    }
    let mut age = today.year() - birth.year();
    if (today.month(), today.day()) < (birth.month(), birth.day()) {
        age -= 1;
    }
    u32::try_from(age).ok()
}

/// How the rules name a person's status.
pub(crate) fn status_name(s: PersonStatus) -> &'static str {
    match s {
        PersonStatus::Citizen => "citizen",
        PersonStatus::ForeignCitizen => "foreign citizen",
        PersonStatus::Stateless => "stateless person",
    }
}

/// The request's field for an MVD field name.
pub(crate) fn mvd_field(f: &str) -> String {
    if f.starts_with("document.") {
        f.to_owned()
    } else {
        format!("person.{f}")
    }
}
