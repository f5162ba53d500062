//! Hostile input to the parsers of what external systems post to the hub: SMS delivery reports,
//! ERIP notifications, and back-office callbacks (signed, then decoded as contract messages).
//! Arbitrary bytes, and valid documents with one field replaced by anything, never panic; a
//! refusal never quotes the number or account it refuses; a wrong signature says only that.

use adapters::{backoffice, erip, sms};
use contracts::Message;
use contracts::procedure::{AuthorityDecided, AuthorityInfoRequested, AuthorityRegistered};
use proptest::prelude::*;
use serde_json::{Value, json};

const SECRET: &[u8] = b"hostile-input-test-secret";

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// `valid` with one of its fields replaced by `value`, or removed when `value` is `None`.
fn mutated(valid: &Value, field: prop::sample::Index, value: Option<Value>) -> Vec<u8> {
    let mut v = valid.clone();
    if let Some(object) = v.as_object_mut() {
        let keys: Vec<String> = object.keys().cloned().collect();
        let key = keys[field.index(keys.len())].clone();
        match value {
            Some(value) => object.insert(key, value),
            None => object.remove(&key),
        };
    }
    serde_json::to_vec(&v).expect("JSON")
}

fn report() -> Value {
    json!({
        "message_id": "a1-000123",
        "to": "+375291234567",
        "status": "delivered",
        "at": "2026-11-27T10:00:00Z",
    })
}

fn notification() -> Value {
    json!({
        "event_id": "evt-1",
        "invoice_id": "erip-1",
        "account_number": "1".repeat(30),
        "status": "paid",
        "amount": 2750,
        "operation_id": "op-1",
        "occurred_at": "2026-11-27T10:00:00Z",
    })
}

fn decided() -> Value {
    json!({
        "application_id": "8f0c6f4e-8a0e-4d5c-9d55-3f1f0b8a2b6e",
        "verdict": "granted",
        "document": "Certificate No. 123",
        "decided_at": "2026-11-27T10:00:00Z",
    })
}

fn registered() -> Value {
    json!({
        "application_id": "8f0c6f4e-8a0e-4d5c-9d55-3f1f0b8a2b6e",
        "registration_number": "TAX-2026-000123",
    })
}

/// What the hub does with a back-office callback sent now: verify the signature, then decode
/// the body as the message type the URL names. `signature` signs the body only; the callback's
/// own request signature is made here when it is that body's, so the parsers behind a good
/// signature are what the hostile bodies reach.
fn authority_callback(message_type: &str, body: &[u8], signature: Option<&str>) -> bool {
    let now = chrono::Utc::now();
    let path = format!("/callbacks/authority/tax-ministry/{message_type}");
    let request_signature = (signature == Some(backoffice::sign(SECRET, body).as_str()))
        .then(|| backoffice::sign_callback(SECRET, "POST", &path, now.timestamp(), body));
    let timestamp = now.timestamp().to_string();
    let callback = backoffice::ReceivedCallback {
        authority: "tax-ministry",
        method: "POST",
        path: &path,
        timestamp: Some(&timestamp),
        signature: request_signature.as_deref().or(signature),
        body,
    };
    if backoffice::verify_callback(SECRET, &callback, now, backoffice::DEFAULT_CALLBACK_WINDOW)
        .is_err()
    {
        return false;
    }
    match message_type {
        t if AuthorityDecided::TYPE.matches(t) => {
            contracts::decode::<AuthorityDecided>(t, body).is_ok()
        }
        t if AuthorityRegistered::TYPE.matches(t) => {
            contracts::decode::<AuthorityRegistered>(t, body).is_ok()
        }
        t => contracts::decode::<AuthorityInfoRequested>(t, body).is_ok(),
    }
}

#[test]
fn the_valid_documents_parse() {
    assert!(sms::parse_delivery_report(&serde_json::to_vec(&report()).expect("JSON")).is_ok());
    let body = serde_json::to_vec(&notification()).expect("JSON");
    let signature = backoffice::sign(SECRET, &body);
    assert!(erip::verify_notification(SECRET, &body, Some(&signature)).is_ok());
    for (t, v) in [
        (AuthorityDecided::TYPE.to_string(), decided()),
        (AuthorityRegistered::TYPE.to_string(), registered()),
    ] {
        let body = serde_json::to_vec(&v).expect("JSON");
        let signature = backoffice::sign(SECRET, &body);
        assert!(authority_callback(&t, &body, Some(&signature)), "{t}");
    }
}

proptest! {
    #[test]
    fn any_bytes_are_answered_without_a_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = sms::parse_delivery_report(&body);
        let signature = backoffice::sign(SECRET, &body);
        let _ = erip::verify_notification(SECRET, &body, Some(&signature));
        for t in [AuthorityDecided::TYPE, AuthorityRegistered::TYPE, AuthorityInfoRequested::TYPE] {
            let _ = authority_callback(&t.to_string(), &body, Some(&signature));
        }
    }

    #[test]
    fn a_report_with_any_field_changed_is_parsed_or_refused_without_quoting_the_number(
        field in any::<prop::sample::Index>(),
        value in prop::option::of(any_json()),
        to in "[+]?[0-9]{6,15}",
    ) {
        let _ = sms::parse_delivery_report(&mutated(&report(), field, value));
        let mut with_to = report();
        with_to["to"] = json!(to);
        if let Err(e) = sms::parse_delivery_report(&serde_json::to_vec(&with_to).expect("JSON")) {
            prop_assert!(!e.reason.contains(to.trim()), "{} quotes {to:?}", e.reason);
        }
    }

    #[test]
    fn a_signed_notification_with_any_field_changed_is_parsed_or_refused(
        field in any::<prop::sample::Index>(),
        value in prop::option::of(any_json()),
        account in "[0-9]{6,40}",
    ) {
        let body = mutated(&notification(), field, value);
        let _ = erip::verify_notification(SECRET, &body, Some(&backoffice::sign(SECRET, &body)));
        let mut with_account = notification();
        with_account["account_number"] = json!(account);
        let body = serde_json::to_vec(&with_account).expect("JSON");
        let signature = backoffice::sign(SECRET, &body);
        if let Err(e) = erip::verify_notification(SECRET, &body, Some(&signature)) {
            prop_assert!(!e.reason.contains(&account), "{} quotes {account:?}", e.reason);
        }
    }

    #[test]
    fn a_wrong_signature_is_refused_and_says_only_that(
        header in prop::option::of(".{0,80}"),
    ) {
        let body = serde_json::to_vec(&notification()).expect("JSON");
        let right = backoffice::sign(SECRET, &body);
        prop_assume!(header.as_deref() != Some(right.as_str()));
        let e = erip::verify_notification(SECRET, &body, header.as_deref())
            .expect_err("refused");
        prop_assert_eq!(e.reason, erip::BAD_SIGNATURE);
        prop_assert!(!authority_callback(&AuthorityDecided::TYPE.to_string(), &body, header.as_deref()));
    }

    #[test]
    fn a_signed_authority_answer_with_any_field_changed_is_decoded_or_refused(
        field in any::<prop::sample::Index>(),
        value in prop::option::of(any_json()),
    ) {
        for (t, valid) in [
            (AuthorityDecided::TYPE.to_string(), decided()),
            (AuthorityRegistered::TYPE.to_string(), registered()),
        ] {
            let body = mutated(&valid, field, value.clone());
            let _ = authority_callback(&t, &body, Some(&backoffice::sign(SECRET, &body)));
        }
    }
}
