//! The MVD registry's document (handlers: `crate::mvd::api`).

#![allow(
    dead_code,
    reason = "the functions carry the operations' annotations and the types are schemas only"
)]

use chrono::NaiveDate;
use utoipa::{OpenApi, ToSchema};
use uuid::Uuid;

use super::common::{ApiError, IDEMPOTENCY_KEY};
use crate::mvd::population::{Document, DocumentKind, DocumentStatus, Status as PersonStatus};

/// The identity document the person states.
#[derive(ToSchema)]
struct DocumentClaim {
    /// The document's kind.
    kind: DocumentKind,
    /// Its series and number (spaces and case ignored), e.g. `MP1234567`.
    #[schema(example = "MP1234567")]
    number: String,
    /// The day it was issued.
    issued_on: NaiveDate,
    /// The day it expires.
    expires_on: NaiveDate,
}

/// A person's stated data and document, to reconcile with the registry.
#[derive(ToSchema)]
#[schema(example = json!({
    "identification_number": "3150790A001PB7", "surname": "Иванова", "given_name": "Анна",
    "patronymic": "Сергеевна", "birth_date": "1990-07-15",
    "document": {"kind": "passport", "number": "MP1234567", "issued_on": "2020-03-01", "expires_on": "2030-03-01"}
}))]
struct ReconciliationRequest {
    /// The personal identification number, 14 characters (spaces and case ignored).
    #[schema(min_length = 1)]
    identification_number: String,
    /// The surname (case and surrounding spaces ignored).
    #[schema(min_length = 1)]
    surname: String,
    /// The given name.
    #[schema(min_length = 1)]
    given_name: String,
    /// The patronymic, if the person has one.
    patronymic: Option<String>,
    /// The day of birth.
    birth_date: NaiveDate,
    /// The identity document.
    document: DocumentClaim,
}

/// The outcome of a reconciliation.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
enum ReconciliationResult {
    /// Everything stated is as registered.
    Match,
    /// Some fields differ (`fields` names them).
    Mismatch,
    /// The document is lost or expired (`document_status`).
    DocumentInvalid,
    /// No person has this identification number.
    PersonUnknown,
}

/// The registry's answer. Order: an unknown identification number is `person_unknown`; a
/// document whose number matches the registry's but which is lost or expired is
/// `document_invalid`; otherwise any differing field makes a `mismatch`.
#[derive(ToSchema)]
#[schema(example = json!({"reconciliation_id": "4b0c3d58-7a51-4a4e-9a36-1f5f0c0f9e11", "result": "mismatch", "fields": ["given_name", "birth_date"]}))]
struct ReconciliationAnswer {
    /// The registry's id of this reconciliation.
    reconciliation_id: Uuid,
    /// The outcome.
    result: ReconciliationResult,
    /// For `mismatch`: the differing fields (`surname`, `given_name`, `patronymic`,
    /// `birth_date`, `document.number`, `document.kind`, `document.issued_on`,
    /// `document.expires_on`).
    #[schema(nullable = false)]
    fields: Option<Vec<String>>,
    /// For `document_invalid`: why.
    #[schema(nullable = false)]
    document_status: Option<DocumentStatus>,
}

/// A person of the simulated population, as tests and the demo pick applicants.
#[derive(ToSchema)]
struct Person {
    identification_number: String,
    surname: String,
    given_name: String,
    patronymic: Option<String>,
    birth_date: NaiveDate,
    document: Document,
    status: PersonStatus,
    /// The document's status today.
    document_status: DocumentStatus,
    /// The surname before a change, if it changed (the document may still carry it).
    previous_surname: Option<String>,
    /// Whether the identification number's check digit is right (a few are wrong on purpose).
    check_digit_valid: bool,
}

/// A page of the population.
#[derive(ToSchema)]
struct PopulationPage {
    /// How many persons pass the filters.
    total: u64,
    /// The page.
    persons: Vec<Person>,
}

/// Reconciles a person's stated data and document with the registry.
#[utoipa::path(
    post,
    path = "/api/v1/reconciliations",
    tag = "registry",
    operation_id = "reconcile",
    params(("Idempotency-Key" = Option<String>, Header, description = IDEMPOTENCY_KEY)),
    request_body(content = ReconciliationRequest),
    responses(
        (status = 200, description = "The registry's answer.", body = ReconciliationAnswer),
        (status = 400, description = "`invalid_request`: malformed JSON, a missing field or an empty one.", body = ApiError),
        (status = 409, description = "`idempotency_conflict`: the key was used with another body.", body = ApiError),
        (status = 503, description = "`unavailable`: an injected fault.", body = ApiError)
    )
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn reconcile() {}

/// A page of the simulated population, optionally filtered (simulator only).
#[utoipa::path(
    get,
    path = "/sim/population",
    tag = "simulator",
    operation_id = "list_population",
    params(
        ("offset" = Option<u64>, Query, description = "Persons to skip (0 by default)."),
        ("limit" = Option<u64>, Query, description = "Page size (100 by default, at most 10000)."),
        ("status" = Option<PersonStatus>, Query, description = "Only persons of this status."),
        ("document_status" = Option<DocumentStatus>, Query, description = "Only persons whose document has this status today."),
        ("changed_surname" = Option<bool>, Query, description = "Only persons who did (or did not) change their surname."),
        ("check_digit_valid" = Option<bool>, Query, description = "Only persons whose identification number's check digit is (or is not) right.")
    ),
    responses(
        (status = 200, description = "The page.", body = PopulationPage),
        (status = 400, description = "`invalid_request`: a bad query.", body = ApiError)
    )
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn list_population() {}

/// One person of the simulated population (simulator only).
#[utoipa::path(
    get,
    path = "/sim/persons/{identification_number}",
    tag = "simulator",
    operation_id = "get_person",
    params(("identification_number" = String, Path, description = "The person's identification number.")),
    responses(
        (status = 200, description = "The person.", body = Person),
        (status = 404, description = "`not_found`: no person has this number.", body = ApiError)
    )
)]
// One line: the `utoipa::path` annotation above is the whole operation; the body is empty.
fn get_person() {}

/// The registry's own operations.
#[derive(OpenApi)]
#[openapi(paths(reconcile, list_population, get_person))]
pub(super) struct Doc;
