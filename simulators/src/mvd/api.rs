//! The registry's HTTP API: `POST /api/v1/reconciliations`, and the simulator-only
//! `GET /sim/population` and `GET /sim/persons/{identification_number}` that tests and the demo
//! pick applicants from.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{NaiveDate, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::population::{DocumentKind, DocumentStatus, Person, Population, Status};
use crate::error::{ApiError, parse_json};
use crate::idempotency::IdempotencyStore;
use crate::idnumber;
use crate::server::{self, SimContext};

/// The most persons one `/sim/population` page holds.
const MAX_PAGE: usize = 10_000;

#[derive(Debug)]
struct MvdState {
    ctx: SimContext,
    population: Population,
    idempotency: IdempotencyStore,
}

/// The registry's routes, finished with the common ones.
pub(crate) fn router(ctx: SimContext, population: Population) -> Router {
    let state = Arc::new(MvdState {
        ctx: ctx.clone(),
        population,
        idempotency: IdempotencyStore::new(ctx.retention.keys_limit()),
    });
    let routes = Router::new()
        .route("/api/v1/reconciliations", post(reconcile))
        .route("/sim/population", get(list_population))
        .route("/sim/persons/{identification_number}", get(get_person))
        .with_state(state);
    server::finish(routes, ctx)
}

/// A reconciliation request: a person's stated data and document.
#[derive(Debug, Deserialize)]
struct ReconciliationRequest {
    identification_number: String,
    surname: String,
    given_name: String,
    #[serde(default)]
    patronymic: Option<String>,
    birth_date: NaiveDate,
    document: DocumentClaim,
}

#[derive(Debug, Deserialize)]
struct DocumentClaim {
    kind: DocumentKind,
    number: String,
    issued_on: NaiveDate,
    expires_on: NaiveDate,
}

impl ReconciliationRequest {
    fn validate(&self) -> Result<(), ApiError> {
        for (name, value) in [
            ("identification_number", &self.identification_number),
            ("surname", &self.surname),
            ("given_name", &self.given_name),
            ("document.number", &self.document.number),
        ] {
            if value.trim().is_empty() {
                return Err(ApiError::invalid_request(format!(
                    "{name} must not be empty"
                )));
            }
        }
        Ok(())
    }
}

/// What the registry answers.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Match,
    Mismatch(Vec<&'static str>),
    DocumentInvalid(DocumentStatus),
    PersonUnknown,
}

impl Outcome {
    fn name(&self) -> &'static str {
        match self {
            Outcome::Match => "match",
            Outcome::Mismatch(_) => "mismatch",
            Outcome::DocumentInvalid(_) => "document_invalid",
            Outcome::PersonUnknown => "person_unknown",
        }
    }

    fn to_json(&self, reconciliation_id: Uuid) -> Value {
        let mut body = json!({"reconciliation_id": reconciliation_id, "result": self.name()});
        match self {
            Outcome::Mismatch(fields) => body["fields"] = json!(fields),
            Outcome::DocumentInvalid(status) => body["document_status"] = json!(status),
            Outcome::Match | Outcome::PersonUnknown => {}
        }
        body
    }
}

fn normalize_name(name: &str) -> String {
    name.trim().to_lowercase()
}

fn normalize_optional(name: Option<&str>) -> Option<String> {
    name.map(normalize_name).filter(|n| !n.is_empty())
}

fn normalize_code(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_uppercase()
}

/// Reconciles a request with the registry on `today`.
///
/// Order: an unknown identification number is `person_unknown`; a document whose number matches
/// the registry's but which is lost or expired is `document_invalid` (whatever else differs:
/// the document cannot be used anyway); otherwise any differing field is a `mismatch`.
fn reconcile_person(
    population: &Population,
    request: &ReconciliationRequest,
    today: NaiveDate,
) -> Outcome {
    let Some(person) = population.find(&normalize_code(&request.identification_number)) else {
        return Outcome::PersonUnknown;
    };
    let document_number_matches =
        normalize_code(&request.document.number) == person.document.number;
    if document_number_matches {
        let status = person.document_status(today);
        if status != DocumentStatus::Valid {
            return Outcome::DocumentInvalid(status);
        }
    }
    let fields = differing_fields(person, request, document_number_matches);
    if fields.is_empty() {
        Outcome::Match
    } else {
        Outcome::Mismatch(fields)
    }
}

fn differing_fields(
    person: &Person,
    request: &ReconciliationRequest,
    document_number_matches: bool,
) -> Vec<&'static str> {
    let document = &request.document;
    [
        (
            "surname",
            normalize_name(&request.surname) == normalize_name(&person.surname),
        ),
        (
            "given_name",
            normalize_name(&request.given_name) == normalize_name(&person.given_name),
        ),
        (
            "patronymic",
            normalize_optional(request.patronymic.as_deref())
                == normalize_optional(person.patronymic.as_deref()),
        ),
        ("birth_date", request.birth_date == person.birth_date),
        ("document.number", document_number_matches),
        ("document.kind", document.kind == person.document.kind),
        (
            "document.issued_on",
            document.issued_on == person.document.issued_on,
        ),
        (
            "document.expires_on",
            document.expires_on == person.document.expires_on,
        ),
    ]
    .into_iter()
    .filter(|(_, same)| !same)
    .map(|(field, _)| field)
    .collect()
}

async fn reconcile(
    State(state): State<Arc<MvdState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state
        .idempotency
        .run(&headers, "POST /api/v1/reconciliations", &body, || {
            let request: ReconciliationRequest = parse_json(&body)?;
            request.validate()?;
            let outcome = reconcile_person(&state.population, &request, Utc::now().date_naive());
            let reconciliation_id = Uuid::new_v4();
            tracing::info!(
                simulator = %state.ctx.kind,
                identification_number = %idnumber::mask(&request.identification_number),
                %reconciliation_id,
                result = outcome.name(),
                "reconciliation"
            );
            Ok((StatusCode::OK, outcome.to_json(reconciliation_id)))
        })
}

/// `GET /sim/population` query: a page, optionally filtered.
#[derive(Debug, Deserialize)]
struct PopulationQuery {
    #[serde(default)]
    offset: usize,
    #[serde(default = "default_limit")]
    limit: usize,
    status: Option<Status>,
    document_status: Option<DocumentStatus>,
    changed_surname: Option<bool>,
    check_digit_valid: Option<bool>,
}

fn default_limit() -> usize {
    100
}

async fn list_population(
    State(state): State<Arc<MvdState>>,
    query: Result<Query<PopulationQuery>, QueryRejection>,
) -> Result<axum::Json<Value>, ApiError> {
    let Query(query) =
        query.map_err(|e| ApiError::invalid_request(format!("bad query: {}", e.body_text())))?;
    let today = Utc::now().date_naive();
    let selected: Vec<&Person> = state
        .population
        .persons()
        .iter()
        .filter(|p| query.status.is_none_or(|s| p.status == s))
        .filter(|p| {
            query
                .document_status
                .is_none_or(|s| p.document_status(today) == s)
        })
        .filter(|p| {
            query
                .changed_surname
                .is_none_or(|c| p.previous_surname.is_some() == c)
        })
        .filter(|p| {
            query
                .check_digit_valid
                .is_none_or(|c| p.check_digit_valid == c)
        })
        .collect();
    let persons: Vec<Value> = selected
        .iter()
        .skip(query.offset)
        .take(query.limit.min(MAX_PAGE))
        .map(|p| p.to_json(today))
        .collect();
    Ok(axum::Json(
        json!({"total": selected.len(), "persons": persons}),
    ))
}

async fn get_person(
    State(state): State<Arc<MvdState>>,
    Path(identification_number): Path<String>,
) -> Response {
    match state
        .population
        .find(&normalize_code(&identification_number))
    {
        Some(person) => axum::Json(person.to_json(Utc::now().date_naive())).into_response(),
        None => ApiError::not_found("no person with this identification number").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvd::population::generate;

    const TODAY: NaiveDate = match NaiveDate::from_ymd_opt(2026, 11, 26) {
        Some(date) => date,
        None => panic!("a valid date"),
    };

    fn request_for(person: &Person) -> ReconciliationRequest {
        ReconciliationRequest {
            identification_number: person.identification_number.clone(),
            surname: person.surname.clone(),
            given_name: person.given_name.clone(),
            patronymic: person.patronymic.clone(),
            birth_date: person.birth_date,
            document: DocumentClaim {
                kind: person.document.kind,
                number: person.document.number.clone(),
                issued_on: person.document.issued_on,
                expires_on: person.document.expires_on,
            },
        }
    }

    #[test]
    fn outcomes() {
        let population = generate(42, 2000, TODAY);
        let valid = |p: &&Person| p.document_status(TODAY) == DocumentStatus::Valid;
        let person = population
            .persons()
            .iter()
            .find(valid)
            .expect("a valid person");

        let mut request = request_for(person);
        request.surname = format!("  {}  ", person.surname.to_uppercase());
        assert_eq!(
            reconcile_person(&population, &request, TODAY),
            Outcome::Match
        );

        request.given_name = "Никто".into();
        request.birth_date = EARLIER;
        assert_eq!(
            reconcile_person(&population, &request, TODAY),
            Outcome::Mismatch(vec!["given_name", "birth_date"])
        );

        let mut request = request_for(person);
        request.identification_number = "7000000A000PB1".into();
        assert_eq!(
            reconcile_person(&population, &request, TODAY),
            Outcome::PersonUnknown
        );

        let lost = population
            .persons()
            .iter()
            .find(|p| p.document_status(TODAY) == DocumentStatus::Lost)
            .expect("a lost document");
        let mut request = request_for(lost);
        request.surname = "Другая".into();
        assert_eq!(
            reconcile_person(&population, &request, TODAY),
            Outcome::DocumentInvalid(DocumentStatus::Lost)
        );
        request.document.number = "MP0000000".into();
        assert_eq!(
            reconcile_person(&population, &request, TODAY),
            Outcome::Mismatch(vec!["surname", "document.number"])
        );
    }

    const EARLIER: NaiveDate = match NaiveDate::from_ymd_opt(1900, 1, 1) {
        Some(date) => date,
        None => panic!("a valid date"),
    };
}
