//! The MVD registry over real HTTP: the seeded population, check digits, reconciliation
//! outcomes, malformed requests and idempotency keys.

mod common;

use axum::http::StatusCode;
use common::Sims;
use serde_json::{Value, json};
use simulators::{SimConfig, SimKind};

const MVD: SimKind = SimKind::Mvd;

async fn mvd(seed: u64, population: usize) -> Sims {
    Sims::start(SimConfig {
        seed,
        population,
        only: Some(vec![MVD]),
        ..SimConfig::ephemeral()
    })
    .await
}

/// The check digit, computed here independently of the simulator's code.
fn check_digit(first13: &str) -> Option<char> {
    let weights = [7, 3, 1];
    let mut sum = 0;
    for (i, c) in first13.chars().enumerate() {
        let value = match c {
            '0'..='9' => c as u32 - '0' as u32,
            'A'..='Z' => c as u32 - 'A' as u32 + 10,
            _ => return None,
        };
        sum += value * weights[i % 3];
    }
    char::from_digit(sum % 10, 10)
}

fn verifies(number: &str) -> bool {
    number.len() == 14 && check_digit(&number[..13]) == number[13..].chars().next()
}

async fn first_person(sims: &Sims, filter: &str) -> Value {
    let (status, body) = sims
        .get(MVD, &format!("sim/population?limit=1&{filter}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["persons"][0].clone()
}

/// A reconciliation request with exactly the data the registry holds.
fn request_for(person: &Value) -> Value {
    json!({
        "identification_number": person["identification_number"],
        "surname": person["surname"],
        "given_name": person["given_name"],
        "patronymic": person["patronymic"],
        "birth_date": person["birth_date"],
        "document": person["document"],
    })
}

async fn reconcile(sims: &Sims, key: Option<&str>, request: &Value) -> (StatusCode, Value) {
    sims.post(MVD, "api/v1/reconciliations", key, request).await
}

#[test]
fn the_known_examples_verify_with_the_test_check_digit() {
    assert!(verifies("7000000A000PB1"));
    assert!(verifies("3270287A012PB2"));
    assert!(!verifies("3270287A012PB3"));
}

#[tokio::test]
async fn the_population_is_deterministic_for_a_seed() {
    let a = mvd(42, 300).await;
    let b = mvd(42, 300).await;
    let c = mvd(43, 300).await;
    let (_, first) = a.get(MVD, "sim/population?limit=20").await;
    let (_, again) = b.get(MVD, "sim/population?limit=20").await;
    let (_, other) = c.get(MVD, "sim/population?limit=20").await;
    assert_eq!(first["total"], 300);
    assert_eq!(first["persons"].as_array().map(Vec::len), Some(20));
    assert_eq!(first, again, "same seed, same persons");
    assert_ne!(
        first["persons"], other["persons"],
        "another seed, other persons"
    );
    for sims in [a, b, c] {
        sims.stop().await;
    }
}

#[tokio::test]
async fn generated_numbers_have_the_right_check_digits() {
    let sims = mvd(42, 3000).await;
    let (status, body) = sims.get(MVD, "sim/population?limit=3000").await;
    assert_eq!(status, StatusCode::OK);
    let persons = body["persons"].as_array().expect("persons");
    assert_eq!(persons.len(), 3000);
    let mut flagged = 0;
    let mut new_layout = 0;
    for person in persons {
        let number = person["identification_number"].as_str().expect("a number");
        let valid = person["check_digit_valid"].as_bool().expect("a flag");
        assert_eq!(verifies(number), valid, "{number}");
        if number.starts_with('7') {
            new_layout += 1;
            assert!(valid, "2012+ layout number {number} does not verify");
        }
        if !valid {
            flagged += 1;
            assert!(!number.starts_with('7'));
        }
        assert_eq!(person["status"] == "citizen", &number[11..13] == "PB");
    }
    assert!(
        flagged > 20,
        "only {flagged} numbers with a wrong check digit"
    );
    assert!(
        new_layout > 1500,
        "only {new_layout} numbers in the 2012+ layout"
    );

    // The filter finds exactly the flagged ones.
    let (_, invalid) = sims
        .get(MVD, "sim/population?check_digit_valid=false&limit=3000")
        .await;
    assert_eq!(invalid["total"], flagged);
    sims.stop().await;
}

#[tokio::test]
async fn reconciliation_outcomes() {
    let sims = mvd(42, 2000).await;

    let person = first_person(&sims, "document_status=valid&changed_surname=false").await;
    let (status, body) = reconcile(&sims, None, &request_for(&person)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"], "match", "{body}");
    assert!(body["reconciliation_id"].is_string());

    // Names compare case-insensitively after trimming.
    let mut request = request_for(&person);
    let shouted = person["given_name"]
        .as_str()
        .expect("a name")
        .to_uppercase();
    request["given_name"] = json!(format!("  {shouted} "));
    let (_, body) = reconcile(&sims, None, &request).await;
    assert_eq!(body["result"], "match", "{body}");

    let mut request = request_for(&person);
    request["birth_date"] = json!("1939-01-01");
    request["document"]["kind"] = json!(if person["document"]["kind"] == "id_card" {
        "passport"
    } else {
        "id_card"
    });
    let (_, body) = reconcile(&sims, None, &request).await;
    assert_eq!(body["result"], "mismatch", "{body}");
    assert_eq!(body["fields"], json!(["birth_date", "document.kind"]));

    // Changed surname: the registry knows the new one; the old one is a mismatch.
    let renamed = first_person(&sims, "document_status=valid&changed_surname=true").await;
    assert!(renamed["previous_surname"].is_string(), "{renamed}");
    let mut request = request_for(&renamed);
    request["surname"] = renamed["previous_surname"].clone();
    let (_, body) = reconcile(&sims, None, &request).await;
    assert_eq!(body["result"], "mismatch", "{body}");
    assert_eq!(body["fields"], json!(["surname"]));

    let expired = first_person(&sims, "document_status=expired").await;
    let (_, body) = reconcile(&sims, None, &request_for(&expired)).await;
    assert_eq!(body["result"], "document_invalid", "{body}");
    assert_eq!(body["document_status"], "expired");

    let lost = first_person(&sims, "document_status=lost").await;
    let (_, body) = reconcile(&sims, None, &request_for(&lost)).await;
    assert_eq!(body["result"], "document_invalid", "{body}");
    assert_eq!(body["document_status"], "lost");

    let mut unknown = request_for(&person);
    unknown["identification_number"] = json!("7999999M999PB0");
    let (status, body) = reconcile(&sims, None, &unknown).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["result"], "person_unknown", "{body}");
    assert!(body.get("fields").is_none());

    // A foreigner without a patronymic matches with null.
    let (_, foreigners) = sims
        .get(MVD, "sim/population?status=foreign_citizen&limit=1000")
        .await;
    let without = foreigners["persons"]
        .as_array()
        .expect("persons")
        .iter()
        .find(|p| p["patronymic"].is_null() && p["document_status"] == "valid")
        .expect("a foreigner without a patronymic");
    assert_eq!(without["document"]["kind"], "residence_permit");
    let (_, body) = reconcile(&sims, None, &request_for(without)).await;
    assert_eq!(body["result"], "match", "{body}");
    sims.stop().await;
}

#[tokio::test]
async fn malformed_requests_are_400() {
    let sims = mvd(42, 100).await;
    let url = sims.url(MVD, "api/v1/reconciliations");
    let response = sims
        .client
        .post(url.clone())
        .header("content-type", "application/json")
        .body("{\"identification_number\": ")
        .send()
        .await
        .expect("an answer");
    let (status, body) = common::json_of(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_request");
    assert!(body["message"].is_string());

    let (status, body) = reconcile(&sims, None, &json!({"surname": "Иванов"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_request");

    let person = first_person(&sims, "").await;
    let mut request = request_for(&person);
    request["document"]["kind"] = json!("driving_licence");
    let (status, _) = reconcile(&sims, None, &request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    sims.stop().await;
}

#[tokio::test]
async fn idempotency_keys() {
    let sims = mvd(42, 100).await;
    let person = first_person(&sims, "document_status=valid").await;
    let request = request_for(&person);

    let (first_status, first) = reconcile(&sims, Some("key-1"), &request).await;
    let (second_status, second) = reconcile(&sims, Some("key-1"), &request).await;
    assert_eq!(first_status, StatusCode::OK);
    assert_eq!(second_status, StatusCode::OK);
    assert_eq!(first["reconciliation_id"], second["reconciliation_id"]);
    assert_eq!(first, second);

    let (_, other_key) = reconcile(&sims, Some("key-2"), &request).await;
    assert_ne!(other_key["reconciliation_id"], first["reconciliation_id"]);
    let (_, no_key_1) = reconcile(&sims, None, &request).await;
    let (_, no_key_2) = reconcile(&sims, None, &request).await;
    assert_ne!(no_key_1["reconciliation_id"], no_key_2["reconciliation_id"]);

    let mut changed = request.clone();
    changed["surname"] = json!("Другая");
    let (status, body) = reconcile(&sims, Some("key-1"), &changed).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"], "idempotency_conflict");
    sims.stop().await;
}

#[tokio::test]
async fn persons_by_number() {
    let sims = mvd(42, 100).await;
    let person = first_person(&sims, "").await;
    let number = person["identification_number"].as_str().expect("a number");
    let (status, body) = sims.get(MVD, &format!("sim/persons/{number}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, person);
    let (status, body) = sims.get(MVD, "sim/persons/7999999M999PB0").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_found");
    let (status, body) = sims.get(MVD, "sim/nothing-here").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_found");
    sims.stop().await;
}
