//! The catalogue of administrative procedures and the authorities that decide them.
//!
//! The application saga needs, for each procedure the portal offers, who decides it, how
//! strongly the applicant must be identified, what it costs, how long the authority has, and
//! what the electronic form holds. That is law and organisation, not code, so it is data
//! (`hub/data/procedures.toml`), validated once at load: a catalogue that loads is consistent
//! (unique codes, known authorities, sane fees, terms and forms), and the saga can trust it.
//!
//! The form check ([`Catalogue::validate_form`]) is pure and reports every problem at once, in
//! the `contracts::FieldError` shape the portal already shows to people.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use contracts::FieldError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The assurance levels are the contracts' own, so a login's level and a procedure's
/// requirement compare directly (`High > Substantial > Basic`).
pub use contracts::procedure::AssuranceLevel;

/// The catalogue compiled into the hub.
const EMBEDDED: &str = include_str!("../../data/procedures.toml");

/// The longest text field a catalogue may declare: a bound on what one application carries.
const MAX_TEXT_LENGTH: u32 = 10_000;

/// Why a catalogue could not be loaded; each variant names the entry at fault.
#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    /// The file could not be read.
    #[error("cannot read the catalogue {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The text is not TOML, or not in the catalogue's shape (the message has the position).
    #[error("the catalogue is not valid: {0}")]
    Parse(#[from] toml::de::Error),
    /// Two authorities with one id.
    #[error("authority {id} is listed twice")]
    DuplicateAuthority {
        /// The id.
        id: String,
    },
    /// Two authorities with one broker user, which would let one act for the other.
    #[error("authorities {first} and {second} share the broker user {user}")]
    SharedBrokerUser {
        /// The user.
        user: String,
        /// The authority listed first.
        first: String,
        /// The authority listed second.
        second: String,
    },
    /// An authority entry that is incomplete or inconsistent.
    #[error("authority {authority}: {problem}")]
    BadAuthority {
        /// The authority's id (empty if that is the problem).
        authority: String,
        /// What is wrong.
        problem: String,
    },
    /// Two procedures with one code.
    #[error("procedure {code} is listed twice")]
    DuplicateProcedure {
        /// The code.
        code: String,
    },
    /// A procedure entry with a malformed code or a missing name.
    #[error("procedure {procedure}: {problem}")]
    BadProcedure {
        /// The procedure's code.
        procedure: String,
        /// What is wrong.
        problem: String,
    },
    /// An authority that decides procedures without a superior body in the catalogue, or one
    /// naming a superior the catalogue does not list (or itself).
    #[error("authority {authority}: {problem}")]
    BadSuperior {
        /// The authority's id.
        authority: String,
        /// What is wrong.
        problem: String,
    },
    /// A procedure decided by an authority the catalogue does not list.
    #[error("procedure {procedure}: authority {authority} is not in the catalogue")]
    UnknownAuthority {
        /// The procedure's code.
        procedure: String,
        /// The authority named.
        authority: String,
    },
    /// A negative fee.
    #[error("procedure {procedure}: fee_kopecks is {fee}, it must be 0 or more")]
    NegativeFee {
        /// The procedure's code.
        procedure: String,
        /// The fee found.
        fee: i64,
    },
    /// A term that is not a positive number of working days.
    #[error("procedure {procedure}: term_working_days is {term}, it must be 1 or more")]
    BadTerm {
        /// The procedure's code.
        procedure: String,
        /// The term found.
        term: i64,
    },
    /// Two form fields with one name.
    #[error("procedure {procedure}: field {field} is listed twice")]
    DuplicateField {
        /// The procedure's code.
        procedure: String,
        /// The field's name.
        field: String,
    },
    /// A choice field with nothing to choose.
    #[error("procedure {procedure}: choice field {field} has no options")]
    ChoiceWithoutOptions {
        /// The procedure's code.
        procedure: String,
        /// The field's name.
        field: String,
    },
    /// A form field whose name or attributes do not fit its kind.
    #[error("procedure {procedure}: field {field}: {problem}")]
    BadField {
        /// The procedure's code.
        procedure: String,
        /// The field's name.
        field: String,
        /// What is wrong.
        problem: String,
    },
}

/// How the hub reaches an authority's back-office.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AuthorityChannel {
    /// The authority consumes its own queue on the bus (a queue-contract agency).
    Queue {
        /// The RabbitMQ user the authority connects as: only messages carrying it as the
        /// broker-checked `user_id` are taken as the authority's answers.
        broker_user: String,
    },
    /// The hub calls the authority's HTTP back-office, and the back-office calls the hub back.
    /// Its answers enter the bus through the hub's bridge, which checks their signature and
    /// that the application is the authority's; they carry the hub's own broker user.
    Http {
        /// The configuration key holding the back-office's base URL: the URL is deployment
        /// configuration, the catalogue only says where to find it.
        base_url_key: String,
        /// The configuration key holding the secret both sides sign their requests with.
        secret_key: String,
    },
}

/// An authority that decides procedures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Authority {
    /// Stable id (`fszn`), used in queue names and in applications.
    pub id: String,
    /// Display name.
    pub name: String,
    /// How the hub reaches it.
    pub channel: AuthorityChannel,
    /// The superior body that hears complaints of its inaction (a term passed without a
    /// decision); required of every authority that decides a procedure.
    pub superior: Option<String>,
}

impl Authority {
    /// The broker user of a queue-contract authority; `None` for an HTTP one.
    pub fn broker_user(&self) -> Option<&str> {
        match &self.channel {
            AuthorityChannel::Queue { broker_user } => Some(broker_user),
            AuthorityChannel::Http { .. } => None,
        }
    }
}

pub use contracts::offer::{FieldKind, FormField};

/// An administrative procedure as the portal offers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Procedure {
    /// The code in the list of procedures (`1.3.1`).
    pub code: String,
    /// The official name, in Russian.
    pub name_ru: String,
    /// The name in English.
    pub name_en: String,
    /// The id of the deciding authority (always in the catalogue).
    pub authority: String,
    /// The weakest login that may apply.
    pub assurance: AssuranceLevel,
    /// The fee in BYN kopecks; 0 for a free procedure.
    pub fee_kopecks: u64,
    /// The statutory term of the decision, in working days.
    pub term_working_days: u32,
    /// The electronic form.
    pub fields: Vec<FormField>,
}

impl Procedure {
    /// The field named `name`, if the form has one.
    pub fn field(&self, name: &str) -> Option<&FormField> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// The validated catalogue: procedures and authorities in the order the data lists them.
#[derive(Debug, Clone)]
pub struct Catalogue {
    procedures: Vec<Procedure>,
    authorities: Vec<Authority>,
    /// Code -> index in `procedures`.
    by_code: BTreeMap<String, usize>,
    /// Id -> index in `authorities`.
    by_id: BTreeMap<String, usize>,
}

/// `procedures.toml` as written, before validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalogue {
    #[serde(default, rename = "authority")]
    authorities: Vec<RawAuthority>,
    #[serde(default, rename = "procedure")]
    procedures: Vec<RawProcedure>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum RawChannel {
    Queue,
    Http,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuthority {
    id: String,
    name: String,
    broker_user: Option<String>,
    channel: RawChannel,
    base_url_key: Option<String>,
    secret_key: Option<String>,
    #[serde(default)]
    superior: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProcedure {
    code: String,
    name_ru: String,
    name_en: String,
    authority: String,
    assurance: AssuranceLevel,
    fee_kopecks: i64,
    term_working_days: i64,
    #[serde(default)]
    fields: Vec<RawField>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum RawKind {
    Text,
    Date,
    Number,
    Choice,
    Boolean,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    name: String,
    kind: RawKind,
    #[serde(default)]
    required: bool,
    max_length: Option<i64>,
    min: Option<i64>,
    max: Option<i64>,
    options: Option<Vec<String>>,
}

impl Catalogue {
    /// Only `authority` may send this: the broker checked the sender's `user_id` against its
    /// connection, and the catalogue says whose it must be — the authority's own broker user
    /// for a queue-contract authority, the hub's bridge (`bridge_user`, the hub's own broker
    /// user) for an HTTP one. `what` names the thing answered, as the refusal reads it
    /// (`procedure 2.19 is decided by fszn`).
    pub fn check_sender(
        &self,
        authority: &str,
        user_id: Option<&str>,
        what: &str,
        bridge_user: &str,
    ) -> Result<(), contracts::Failure> {
        let expected = self
            .authority(authority)
            .map(|a| a.broker_user().unwrap_or(bridge_user))
            .ok_or_else(|| {
                contracts::Failure::permanent(format!(
                    "authority {authority} is not in the catalogue"
                ))
            })?;
        match user_id {
            Some(user) if user == expected => Ok(()),
            other => Err(contracts::Failure::permanent(format!(
                "sent by broker user {:?}, but {what} (user {expected:?})",
                other.unwrap_or("<none>"),
            ))),
        }
    }

    /// Refuses a hub whose own broker user is an authority's: the hub's bridge would then
    /// speak for that authority.
    pub fn check_bridge_user(&self, bridge_user: &str) -> Result<(), CatalogueError> {
        match self
            .authorities()
            .find(|a| a.broker_user() == Some(bridge_user))
        {
            Some(a) => Err(CatalogueError::SharedBrokerUser {
                user: bridge_user.to_owned(),
                first: a.id.clone(),
                second: "the hub itself".to_owned(),
            }),
            None => Ok(()),
        }
    }

    /// The catalogue compiled into the hub (`hub/data/procedures.toml`).
    pub fn embedded() -> Result<Catalogue, CatalogueError> {
        Self::from_toml(EMBEDDED)
    }

    /// Reads and validates a catalogue file, for a deployment with its own list.
    pub fn from_path(path: &Path) -> Result<Catalogue, CatalogueError> {
        let text = std::fs::read_to_string(path).map_err(|source| CatalogueError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text)
    }

    /// Parses and validates a catalogue in the format of `hub/data/procedures.toml`: unique
    /// authority ids and broker users, unique procedure codes, every procedure's authority
    /// listed, fees of 0 or more, terms of 1 or more, and forms whose fields have unique names
    /// and the attributes their kind needs (text a `max_length`, choice its `options`).
    pub fn from_toml(text: &str) -> Result<Catalogue, CatalogueError> {
        let raw: RawCatalogue = toml::from_str(text)?;
        let mut authorities = Vec::with_capacity(raw.authorities.len());
        let mut by_id = BTreeMap::new();
        let mut users: BTreeMap<String, String> = BTreeMap::new();
        for a in raw.authorities {
            let authority = authority(a)?;
            if by_id.contains_key(&authority.id) {
                return Err(CatalogueError::DuplicateAuthority { id: authority.id });
            }
            if let Some(user) = authority.broker_user() {
                if let Some(first) = users.get(user) {
                    return Err(CatalogueError::SharedBrokerUser {
                        user: user.to_owned(),
                        first: first.clone(),
                        second: authority.id,
                    });
                }
                users.insert(user.to_owned(), authority.id.clone());
            }
            by_id.insert(authority.id.clone(), authorities.len());
            authorities.push(authority);
        }

        let mut procedures = Vec::with_capacity(raw.procedures.len());
        let mut by_code = BTreeMap::new();
        for p in raw.procedures {
            let procedure = procedure(p)?;
            if !by_id.contains_key(&procedure.authority) {
                return Err(CatalogueError::UnknownAuthority {
                    procedure: procedure.code,
                    authority: procedure.authority,
                });
            }
            if by_code.contains_key(&procedure.code) {
                return Err(CatalogueError::DuplicateProcedure {
                    code: procedure.code,
                });
            }
            by_code.insert(procedure.code.clone(), procedures.len());
            procedures.push(procedure);
        }
        // Every deciding authority has a superior body, listed, and not itself: a complaint of
        // its inaction must have somewhere to go.
        for a in &authorities {
            let decides = procedures.iter().any(|p| p.authority == a.id);
            let bad = |problem: String| CatalogueError::BadSuperior {
                authority: a.id.clone(),
                problem,
            };
            match &a.superior {
                None if decides => {
                    return Err(bad(
                        "it decides procedures, so it needs a superior (who hears complaints of \
                         its inaction)"
                            .into(),
                    ));
                }
                Some(s) if *s == a.id => return Err(bad("it cannot be its own superior".into())),
                Some(s) if !by_id.contains_key(s) => {
                    return Err(bad(format!("its superior {s} is not in the catalogue")));
                }
                _ => {}
            }
        }
        Ok(Catalogue {
            procedures,
            authorities,
            by_code,
            by_id,
        })
    }

    /// The procedure with `code`, if the catalogue has it.
    pub fn procedure(&self, code: &str) -> Option<&Procedure> {
        self.by_code.get(code).and_then(|i| self.procedures.get(*i))
    }

    /// The authority with `id`, if the catalogue has it.
    pub fn authority(&self, id: &str) -> Option<&Authority> {
        self.by_id.get(id).and_then(|i| self.authorities.get(*i))
    }

    /// Every procedure, in the data's order.
    pub fn procedures(&self) -> impl Iterator<Item = &Procedure> {
        self.procedures.iter()
    }

    /// Every authority, in the data's order.
    pub fn authorities(&self) -> impl Iterator<Item = &Authority> {
        self.authorities.iter()
    }

    /// Checks a submitted form against `procedure`'s fields and returns every problem, each
    /// at `form.<name>`; empty means the form is acceptable. A `null` counts as absent.
    /// Problems: a required field missing or blank, a value of the wrong type, text too long,
    /// a number out of range, a choice not among the options, a field the form does not have.
    pub fn validate_form(
        &self,
        procedure: &Procedure,
        form: &Map<String, Value>,
    ) -> Vec<FieldError> {
        let mut errors = Vec::new();
        for field in &procedure.fields {
            let path = format!("form.{}", field.name);
            match form.get(&field.name) {
                None | Some(Value::Null) => {
                    if field.required {
                        errors.push(problem(path, "is required".into()));
                    }
                }
                Some(value) => {
                    if let Some(text) = value_problem(field, value) {
                        errors.push(problem(path, text));
                    }
                }
            }
        }
        for name in form.keys() {
            if procedure.field(name).is_none() {
                errors.push(problem(
                    format!("form.{name}"),
                    format!("is not a field of procedure {}", procedure.code),
                ));
            }
        }
        errors
    }
}

fn problem(field: String, problem: String) -> FieldError {
    FieldError { field, problem }
}

/// What is wrong with a present, non-null `value` for `field`, if anything.
fn value_problem(field: &FormField, value: &Value) -> Option<String> {
    match &field.kind {
        FieldKind::Text { max_length } => {
            let Value::String(text) = value else {
                return Some("must be text".into());
            };
            if field.required && text.trim().is_empty() {
                return Some("is required and must not be blank".into());
            }
            let length = text.chars().count();
            (length > *max_length as usize)
                .then(|| format!("must be at most {max_length} characters long, not {length}"))
        }
        FieldKind::Date => {
            let valid = value
                .as_str()
                .is_some_and(|s| s.len() == 10 && NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok());
            (!valid).then(|| "must be a date written as YYYY-MM-DD".into())
        }
        FieldKind::Number { min, max } => {
            let Some(number) = value.as_i64() else {
                return Some(match value {
                    // An integer beyond i64 is whole but out of any range a form declares.
                    Value::Number(n) if n.is_u64() => range_text(*min, *max),
                    _ => "must be a whole number".into(),
                });
            };
            let below = min.is_some_and(|m| number < m);
            let above = max.is_some_and(|m| number > m);
            (below || above).then(|| range_text(*min, *max))
        }
        FieldKind::Choice { options } => {
            let known = value
                .as_str()
                .is_some_and(|s| options.iter().any(|o| o == s));
            (!known).then(|| format!("must be one of: {}", options.join(", ")))
        }
        FieldKind::Boolean => (!value.is_boolean()).then(|| "must be true or false".into()),
    }
}

/// The range a number field accepts, as a problem text.
fn range_text(min: Option<i64>, max: Option<i64>) -> String {
    match (min, max) {
        (Some(min), Some(max)) => format!("must be between {min} and {max}"),
        (Some(min), None) => format!("must be at least {min}"),
        (None, Some(max)) => format!("must be at most {max}"),
        (None, None) => "must be a whole number that fits in 64 bits".into(),
    }
}

/// True for a name made of lower-case ASCII letters, digits and `sep`, starting with a letter.
fn is_slug(name: &str, sep: char) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == sep)
}

fn authority(raw: RawAuthority) -> Result<Authority, CatalogueError> {
    let bad = |problem: &str| CatalogueError::BadAuthority {
        authority: raw.id.clone(),
        problem: problem.into(),
    };
    if !is_slug(&raw.id, '-') {
        return Err(bad(
            "the id must be lower-case letters, digits and `-`, starting with a letter",
        ));
    }
    if raw.name.trim().is_empty() {
        return Err(bad("the name is empty"));
    }
    let given = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    let channel = match raw.channel {
        RawChannel::Queue => {
            if raw.base_url_key.is_some() || raw.secret_key.is_some() {
                return Err(bad("a queue authority takes no base_url_key or secret_key"));
            }
            AuthorityChannel::Queue {
                broker_user: given(raw.broker_user)
                    .ok_or_else(|| bad("a queue authority needs a broker_user"))?,
            }
        }
        RawChannel::Http => {
            if raw.broker_user.is_some() {
                return Err(bad(
                    "an http authority takes no broker_user (its answers come through the hub)",
                ));
            }
            AuthorityChannel::Http {
                base_url_key: given(raw.base_url_key)
                    .ok_or_else(|| bad("an http authority needs a base_url_key"))?,
                secret_key: given(raw.secret_key)
                    .ok_or_else(|| bad("an http authority needs a secret_key"))?,
            }
        }
    };
    Ok(Authority {
        id: raw.id,
        name: raw.name,
        channel,
        superior: given(raw.superior),
    })
}

fn procedure(raw: RawProcedure) -> Result<Procedure, CatalogueError> {
    let bad = |problem: &str| CatalogueError::BadProcedure {
        procedure: raw.code.clone(),
        problem: problem.into(),
    };
    let code_ok = !raw.code.is_empty()
        && raw
            .code
            .split('.')
            .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_digit()));
    if !code_ok {
        return Err(bad(
            "the code must be numbers separated by dots, like 1.1.5",
        ));
    }
    if raw.name_ru.trim().is_empty() || raw.name_en.trim().is_empty() {
        return Err(bad("name_ru and name_en must both be given"));
    }
    let fee_kopecks = u64::try_from(raw.fee_kopecks).map_err(|_| CatalogueError::NegativeFee {
        procedure: raw.code.clone(),
        fee: raw.fee_kopecks,
    })?;
    let term_working_days = u32::try_from(raw.term_working_days)
        .ok()
        .filter(|t| *t > 0)
        .ok_or_else(|| CatalogueError::BadTerm {
            procedure: raw.code.clone(),
            term: raw.term_working_days,
        })?;
    let mut names = BTreeSet::new();
    let mut fields = Vec::with_capacity(raw.fields.len());
    for f in raw.fields {
        let field = form_field(&raw.code, f)?;
        if !names.insert(field.name.clone()) {
            return Err(CatalogueError::DuplicateField {
                procedure: raw.code,
                field: field.name,
            });
        }
        fields.push(field);
    }
    Ok(Procedure {
        code: raw.code,
        name_ru: raw.name_ru,
        name_en: raw.name_en,
        authority: raw.authority,
        assurance: raw.assurance,
        fee_kopecks,
        term_working_days,
        fields,
    })
}

fn form_field(code: &str, raw: RawField) -> Result<FormField, CatalogueError> {
    let bad = |problem: &str| CatalogueError::BadField {
        procedure: code.into(),
        field: raw.name.clone(),
        problem: problem.into(),
    };
    if !is_slug(&raw.name, '_') {
        return Err(bad(
            "the name must be lower-case letters, digits and `_`, starting with a letter",
        ));
    }
    let kind = raw.kind;
    if raw.max_length.is_some() && kind != RawKind::Text {
        return Err(bad("only a text field takes max_length"));
    }
    if (raw.min.is_some() || raw.max.is_some()) && kind != RawKind::Number {
        return Err(bad("only a number field takes min and max"));
    }
    if raw.options.is_some() && kind != RawKind::Choice {
        return Err(bad("only a choice field takes options"));
    }
    let kind = match kind {
        RawKind::Text => {
            let max_length = raw
                .max_length
                .and_then(|m| u32::try_from(m).ok())
                .filter(|m| (1..=MAX_TEXT_LENGTH).contains(m))
                .ok_or_else(|| {
                    bad(&format!(
                        "a text field needs a max_length between 1 and {MAX_TEXT_LENGTH}"
                    ))
                })?;
            FieldKind::Text { max_length }
        }
        RawKind::Date => FieldKind::Date,
        RawKind::Number => {
            if let (Some(min), Some(max)) = (raw.min, raw.max)
                && min > max
            {
                return Err(bad(&format!("min {min} is greater than max {max}")));
            }
            FieldKind::Number {
                min: raw.min,
                max: raw.max,
            }
        }
        RawKind::Choice => {
            let options = raw.options.clone().unwrap_or_default();
            if options.is_empty() {
                return Err(CatalogueError::ChoiceWithoutOptions {
                    procedure: code.into(),
                    field: raw.name,
                });
            }
            if options.iter().any(|o| o.trim().is_empty()) {
                return Err(bad("an option is empty"));
            }
            let distinct: BTreeSet<&String> = options.iter().collect();
            if distinct.len() != options.len() {
                return Err(bad("an option is listed twice"));
            }
            FieldKind::Choice { options }
        }
        RawKind::Boolean => FieldKind::Boolean,
    };
    Ok(FormField {
        name: raw.name,
        kind,
        required: raw.required,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn embedded() -> Catalogue {
        Catalogue::embedded().expect("the embedded catalogue loads")
    }

    #[test]
    fn the_embedded_catalogue_loads_and_covers_the_cases() {
        let c = embedded();
        assert!(c.procedures().count() >= 12);
        assert!(c.authorities().count() >= 4);
        assert!(c.procedures().any(|p| p.fee_kopecks > 0));
        assert!(c.procedures().any(|p| p.fee_kopecks == 0));
        assert!(c.procedures().any(|p| p.assurance == AssuranceLevel::High));
        assert!(c.procedures().any(|p| p.assurance == AssuranceLevel::Basic));
        assert!(
            c.authorities()
                .any(|a| matches!(a.channel, AuthorityChannel::Http { .. }))
        );
        assert!(
            c.authorities()
                .any(|a| matches!(a.channel, AuthorityChannel::Queue { .. }))
        );
        // Every authority decides something, or is the superior of one that does.
        for a in c.authorities() {
            assert!(
                c.procedures().any(|p| p.authority == a.id)
                    || c.authorities().any(|b| b.superior.as_ref() == Some(&a.id)),
                "{}",
                a.id
            );
        }
        let p = c.procedure("1.3.1").expect("1.3.1 is listed");
        assert_eq!(
            p.name_en,
            "Issue of a certificate of place of residence and family composition"
        );
        assert_eq!(
            c.authority(&p.authority).map(|a| a.id.as_str()),
            Some(p.authority.as_str())
        );
        assert_eq!(
            c.authority("fszn").and_then(Authority::broker_user),
            Some("authority-fszn")
        );
        assert!(c.procedure("99.99").is_none());
        assert!(c.authority("nobody").is_none());
    }

    #[test]
    fn http_authorities_answer_through_the_hubs_bridge_only() {
        let c = embedded();
        let check = |authority, user| c.check_sender(authority, user, "it is theirs", "hub");
        assert!(check("tax-ministry", Some("hub")).is_ok());
        assert!(check("tax-ministry", Some("authority-fszn")).is_err());
        assert!(check("tax-ministry", None).is_err());
        assert!(check("fszn", Some("authority-fszn")).is_ok());
        assert!(
            check("fszn", Some("hub")).is_err(),
            "the bridge never speaks for a queue authority"
        );
        assert!(check("nobody", Some("hub")).is_err());
        assert!(c.check_bridge_user("hub").is_ok());
        assert!(matches!(
            c.check_bridge_user("authority-fszn"),
            Err(CatalogueError::SharedBrokerUser { .. })
        ));
    }

    #[test]
    fn assurance_levels_are_ordered() {
        assert!(AssuranceLevel::High > AssuranceLevel::Substantial);
        assert!(AssuranceLevel::Substantial > AssuranceLevel::Basic);
        let level: AssuranceLevel = serde_json::from_value(json!("substantial")).expect("a level");
        assert_eq!(level, AssuranceLevel::Substantial);
    }

    #[test]
    fn loads_from_a_path() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/procedures.toml");
        assert!(Catalogue::from_path(&path).is_ok());
        assert!(matches!(
            Catalogue::from_path(Path::new("/nonexistent/procedures.toml")),
            Err(CatalogueError::Io { .. })
        ));
    }

    const AUTHORITIES: &str = r#"
[[authority]]
id = "fszn"
name = "Social Protection Fund"
broker_user = "authority-fszn"
channel = "queue"
superior = "tax-ministry"

[[authority]]
id = "tax-ministry"
name = "Ministry of Taxes and Duties"
channel = "http"
base_url_key = "HUB_TAX_URL"
secret_key = "HUB_TAX_SECRET"
"#;

    /// The test authorities plus one procedure with `body` spliced in after its `code`.
    fn with_procedure(code: &str, body: &str) -> String {
        format!(
            "{AUTHORITIES}\n[[procedure]]\ncode = \"{code}\"\nname_ru = \"Справка\"\nname_en = \"Certificate\"\n{body}\n"
        )
    }

    const GOOD: &str =
        "authority = \"fszn\"\nassurance = \"basic\"\nfee_kopecks = 0\nterm_working_days = 7";

    fn load_error(text: &str) -> CatalogueError {
        Catalogue::from_toml(text).expect_err("the catalogue is rejected")
    }

    #[test]
    fn a_deciding_authority_needs_a_listed_superior_other_than_itself() {
        let without = with_procedure("2.1", GOOD).replace("superior = \"tax-ministry\"\n", "");
        assert!(matches!(
            load_error(&without),
            CatalogueError::BadSuperior { ref authority, .. } if authority == "fszn"
        ));
        let unknown = with_procedure("2.1", GOOD)
            .replace("superior = \"tax-ministry\"", "superior = \"nobody\"");
        assert!(
            load_error(&unknown)
                .to_string()
                .contains("nobody is not in the catalogue")
        );
        let itself = with_procedure("2.1", GOOD)
            .replace("superior = \"tax-ministry\"", "superior = \"fszn\"");
        assert!(load_error(&itself).to_string().contains("its own superior"));
    }

    #[test]
    fn a_minimal_catalogue_loads() {
        let c = Catalogue::from_toml(&with_procedure("2.1", GOOD)).expect("loads");
        assert_eq!(c.procedure("2.1").map(|p| p.term_working_days), Some(7));
    }

    #[test]
    fn rejects_malformed_toml_and_unknown_levels() {
        assert!(matches!(
            load_error("[[procedure]"),
            CatalogueError::Parse(_)
        ));
        let e = load_error(&with_procedure(
            "2.1",
            &GOOD.replace("\"basic\"", "\"medium\""),
        ));
        assert!(matches!(e, CatalogueError::Parse(_)), "{e}");
        assert!(e.to_string().contains("medium"), "{e}");
    }

    #[test]
    fn rejects_duplicate_codes() {
        let text = format!(
            "{}\n[[procedure]]\ncode = \"2.1\"\nname_ru = \"x\"\nname_en = \"x\"\n{GOOD}\n",
            with_procedure("2.1", GOOD)
        );
        let e = load_error(&text);
        assert!(
            matches!(e, CatalogueError::DuplicateProcedure { ref code } if code == "2.1"),
            "{e}"
        );
    }

    #[test]
    fn rejects_malformed_codes_and_missing_names() {
        let e = load_error(&with_procedure("2..1", GOOD));
        assert!(matches!(e, CatalogueError::BadProcedure { .. }), "{e}");
        let text =
            with_procedure("2.1", GOOD).replace("name_en = \"Certificate\"", "name_en = \" \"");
        let e = load_error(&text);
        assert!(matches!(e, CatalogueError::BadProcedure { .. }), "{e}");
    }

    #[test]
    fn rejects_an_unknown_authority() {
        let e = load_error(&with_procedure(
            "2.1",
            &GOOD.replace("\"fszn\"", "\"nobody\""),
        ));
        assert!(
            matches!(e, CatalogueError::UnknownAuthority { ref procedure, ref authority }
                if procedure == "2.1" && authority == "nobody"),
            "{e}"
        );
    }

    #[test]
    fn rejects_negative_fees_and_empty_terms() {
        let e = load_error(&with_procedure(
            "2.1",
            &GOOD.replace("fee_kopecks = 0", "fee_kopecks = -100"),
        ));
        assert!(
            matches!(e, CatalogueError::NegativeFee { fee: -100, .. }),
            "{e}"
        );
        let e = load_error(&with_procedure(
            "2.1",
            &GOOD.replace("term_working_days = 7", "term_working_days = 0"),
        ));
        assert!(matches!(e, CatalogueError::BadTerm { term: 0, .. }), "{e}");
        assert!(e.to_string().contains("procedure 2.1"), "{e}");
    }

    #[test]
    fn rejects_duplicate_and_malformed_fields() {
        let e = load_error(&with_procedure(
            "2.1",
            &format!(
                "{GOOD}\nfields = [{{ name = \"a\", kind = \"boolean\" }}, {{ name = \"a\", kind = \"date\" }}]"
            ),
        ));
        assert!(
            matches!(e, CatalogueError::DuplicateField { ref procedure, ref field }
                if procedure == "2.1" && field == "a"),
            "{e}"
        );
        let e = load_error(&with_procedure(
            "2.1",
            &format!(
                "{GOOD}\nfields = [{{ name = \"purpose\", kind = \"choice\", options = [] }}]"
            ),
        ));
        assert!(
            matches!(e, CatalogueError::ChoiceWithoutOptions { ref field, .. } if field == "purpose"),
            "{e}"
        );
        let e = load_error(&with_procedure(
            "2.1",
            &format!("{GOOD}\nfields = [{{ name = \"purpose\", kind = \"choice\" }}]"),
        ));
        assert!(
            matches!(e, CatalogueError::ChoiceWithoutOptions { .. }),
            "{e}"
        );
        for bad in [
            "{ name = \"note\", kind = \"text\" }",
            "{ name = \"note\", kind = \"text\", max_length = 0 }",
            "{ name = \"note\", kind = \"date\", max_length = 5 }",
            "{ name = \"n\", kind = \"number\", min = 5, max = 1 }",
            "{ name = \"n\", kind = \"text\", max_length = 5, min = 1 }",
            "{ name = \"c\", kind = \"boolean\", options = [\"a\"] }",
            "{ name = \"c\", kind = \"choice\", options = [\"a\", \"a\"] }",
            "{ name = \"Bad Name\", kind = \"boolean\" }",
        ] {
            let e = load_error(&with_procedure("2.1", &format!("{GOOD}\nfields = [{bad}]")));
            assert!(matches!(e, CatalogueError::BadField { .. }), "{bad}: {e}");
            assert!(e.to_string().starts_with("procedure 2.1: field "), "{e}");
        }
    }

    #[test]
    fn rejects_bad_authorities() {
        let twice = format!(
            "{AUTHORITIES}\n[[authority]]\nid = \"fszn\"\nname = \"x\"\nbroker_user = \"other\"\nchannel = \"queue\"\n"
        );
        assert!(
            matches!(load_error(&twice), CatalogueError::DuplicateAuthority { ref id } if id == "fszn")
        );
        let shared = format!(
            "{AUTHORITIES}\n[[authority]]\nid = \"other\"\nname = \"x\"\nbroker_user = \"authority-fszn\"\nchannel = \"queue\"\n"
        );
        assert!(matches!(
            load_error(&shared),
            CatalogueError::SharedBrokerUser { ref first, ref second, .. } if first == "fszn" && second == "other"
        ));
        for bad_http in [
            "channel = \"http\"\nsecret_key = \"S\"",
            "channel = \"http\"\nbase_url_key = \"K\"",
            "channel = \"http\"\nbase_url_key = \"K\"\nsecret_key = \"S\"\nbroker_user = \"u\"",
        ] {
            let text = format!("[[authority]]\nid = \"a\"\nname = \"A\"\n{bad_http}\n");
            assert!(
                matches!(load_error(&text), CatalogueError::BadAuthority { .. }),
                "{bad_http}"
            );
        }
        let stray_url = "[[authority]]\nid = \"a\"\nname = \"A\"\nbroker_user = \"u\"\nchannel = \"queue\"\nbase_url_key = \"K\"\n";
        assert!(matches!(
            load_error(stray_url),
            CatalogueError::BadAuthority { .. }
        ));
        let no_user =
            "[[authority]]\nid = \"a\"\nname = \"A\"\nbroker_user = \"\"\nchannel = \"queue\"\n";
        assert!(matches!(
            load_error(no_user),
            CatalogueError::BadAuthority { .. }
        ));
        let bad_id =
            "[[authority]]\nid = \"A B\"\nname = \"A\"\nbroker_user = \"u\"\nchannel = \"queue\"\n";
        assert!(matches!(
            load_error(bad_id),
            CatalogueError::BadAuthority { .. }
        ));
    }

    fn form(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    fn problems(errors: &[FieldError]) -> Vec<(&str, &str)> {
        errors
            .iter()
            .map(|e| (e.field.as_str(), e.problem.as_str()))
            .collect()
    }

    #[test]
    fn a_complete_form_passes() {
        let c = embedded();
        let p = c.procedure("15.1").expect("vehicle registration");
        let f = form(json!({
            "vin": "WVWZZZ1JZXW000001",
            "make_and_model": "Volkswagen Golf",
            "year_of_manufacture": 2019,
            "category": "B",
            "acquired_on": "2026-03-02",
            "keep_plates": null,
        }));
        assert_eq!(c.validate_form(p, &f), vec![]);
    }

    #[test]
    fn every_form_problem_is_reported_at_its_field() {
        let c = embedded();
        let p = c.procedure("15.1").expect("vehicle registration");
        let f = form(json!({
            "vin": "WVWZZZ1JZXW0000012345",
            "make_and_model": 42,
            "year_of_manufacture": 1850,
            "category": "Z",
            "acquired_on": "2026-02-30",
            "keep_plates": "yes",
            "colour": "red",
        }));
        let errors = c.validate_form(p, &f);
        assert_eq!(
            problems(&errors),
            vec![
                ("form.vin", "must be at most 17 characters long, not 21"),
                ("form.make_and_model", "must be text"),
                ("form.year_of_manufacture", "must be between 1900 and 2100"),
                ("form.category", "must be one of: A, B, C, D, trailer"),
                ("form.acquired_on", "must be a date written as YYYY-MM-DD"),
                ("form.keep_plates", "must be true or false"),
                ("form.colour", "is not a field of procedure 15.1"),
            ]
        );
    }

    #[test]
    fn missing_blank_and_fractional_values() {
        let c = embedded();
        let p = c.procedure("1.3.1").expect("residence certificate");
        let errors = c.validate_form(p, &form(json!({ "address": "   ", "copies": 1.5 })));
        assert_eq!(
            problems(&errors),
            vec![
                ("form.address", "is required and must not be blank"),
                ("form.purpose", "is required"),
                ("form.copies", "must be a whole number"),
            ]
        );
        let errors = c.validate_form(
            p,
            &form(json!({ "address": "Минск", "purpose": "bank", "copies": 9 })),
        );
        assert_eq!(
            problems(&errors),
            vec![("form.copies", "must be between 1 and 5")]
        );
        let errors = c.validate_form(
            p,
            &form(json!({ "address": "Минск", "purpose": "bank", "copies": u64::MAX })),
        );
        assert_eq!(
            problems(&errors),
            vec![("form.copies", "must be between 1 and 5")]
        );
        // Optional fields may be left out or null; a required null is missing.
        let errors = c.validate_form(p, &form(json!({ "address": "Минск", "purpose": null })));
        assert_eq!(problems(&errors), vec![("form.purpose", "is required")]);
    }

    #[test]
    fn text_length_counts_characters_not_bytes() {
        let c = embedded();
        let p = c.procedure("16.6").expect("pet registration");
        // 50 Cyrillic letters are 100 bytes but exactly the 50 characters allowed.
        let name: String = std::iter::repeat_n('ж', 50).collect();
        let f = form(json!({ "species": "cat", "pet_name": name, "microchipped": false }));
        assert_eq!(c.validate_form(p, &f), vec![]);
        let f = form(
            json!({ "species": "cat", "pet_name": format!("{name}ж"), "microchipped": false }),
        );
        assert_eq!(
            problems(&c.validate_form(p, &f)),
            vec![(
                "form.pet_name",
                "must be at most 50 characters long, not 51"
            )]
        );
    }

    #[test]
    fn dates_must_be_strict() {
        let c = embedded();
        let p = c.procedure("18.14").expect("tax debt certificate");
        for bad in [json!("2026-1-5"), json!("05.01.2026"), json!(20260105)] {
            let errors = c.validate_form(p, &form(json!({ "as_of": bad })));
            assert_eq!(
                problems(&errors),
                vec![("form.as_of", "must be a date written as YYYY-MM-DD")],
                "{bad}"
            );
        }
        assert_eq!(
            c.validate_form(p, &form(json!({ "as_of": "2026-01-05" }))),
            vec![]
        );
    }
}
