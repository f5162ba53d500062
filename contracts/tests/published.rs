//! The published schemas: complete, valid JSON Schema 2020-12, equal to the checked-in copy, and
//! compatible with the last release (the compatibility gate), with the gate shown able to fail.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::is_test_module;
use contracts::schema::{PUBLISHED, compat, find, schemas};
use serde_json::Value;

mod common;

const REGENERATE: &str = "regenerate with `cargo run -p hub -- contracts export` and commit \
                          contracts/published";

fn published_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("published")
}

fn read_dir(dir: &Path) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        let text = std::fs::read_to_string(&path).expect("readable");
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
        let name = path
            .file_name()
            .expect("a name")
            .to_string_lossy()
            .into_owned();
        out.insert(name, value);
    }
    out
}

/// The types that implement `Message` in this crate's sources (outside test modules).
fn message_impls(items: &[syn::Item], out: &mut BTreeSet<String>) {
    for item in items {
        match item {
            syn::Item::Impl(i) => {
                let is_message = i
                    .trait_
                    .as_ref()
                    .and_then(|(_, path, _)| path.segments.last())
                    .is_some_and(|s| s.ident == "Message");
                if is_message && let syn::Type::Path(p) = &*i.self_ty {
                    let name = p.path.segments.last().expect("a type").ident.to_string();
                    out.insert(name);
                }
            }
            syn::Item::Mod(m) if !is_test_module(&m.attrs) => {
                if let Some((_, items)) = &m.content {
                    message_impls(items, out);
                }
            }
            _ => {}
        }
    }
}

#[test]
fn every_message_type_of_the_crate_is_published() {
    let mut impls = BTreeSet::new();
    for parsed in common::parsed_sources() {
        message_impls(&parsed.items, &mut impls);
    }
    let listed: BTreeSet<String> = PUBLISHED
        .iter()
        .map(|p| p.rust_type.rsplit("::").next().expect("a name").to_owned())
        .collect();
    let missing: Vec<&String> = impls.difference(&listed).collect();
    assert!(
        missing.is_empty(),
        "these types implement Message but are not in contracts::schema::PUBLISHED: {missing:?}"
    );
    assert!(
        impls.len() > 100,
        "the scan found the types: {}",
        impls.len()
    );
}

#[test]
fn every_schema_is_valid_json_schema_2020_12() {
    for p in PUBLISHED {
        let schema = p.schema();
        if let Err(e) = jsonschema::meta::validate(&schema) {
            panic!("{}: not a valid schema: {e}", p.message_type);
        }
        jsonschema::validator_for(&schema)
            .unwrap_or_else(|e| panic!("{}: cannot be compiled: {e}", p.message_type));
    }
}

#[test]
fn schemas_carry_formats_patterns_and_every_enum_value() {
    let submit = find("issuance.apply.v1").expect("listed").schema();
    let text = submit.to_string();
    assert!(text.contains("\"format\":\"date\""), "dates have a format");
    let id = contracts::person::id_number_pattern();
    let phone = contracts::person::phone_pattern();
    assert!(
        text.contains(&serde_json::to_string(&id).expect("JSON")),
        "the identification number has its pattern"
    );
    assert!(
        text.contains(&serde_json::to_string(&phone).expect("JSON")),
        "the phone has its pattern"
    );
    let accepted = find("procedure.accepted.v1")
        .expect("listed")
        .schema()
        .to_string();
    assert!(
        accepted.contains("^[0-9]{30}$"),
        "the order number has its pattern"
    );
    let decided = find("authority.decided.v2")
        .expect("listed")
        .schema()
        .to_string();
    assert!(
        decided.contains("\"format\":\"uuid\"") && decided.contains("\"format\":\"date-time\"")
    );
    assert!(
        decided.contains("\"granted\"") && decided.contains("\"refused\""),
        "every verdict"
    );

    // A body the hub accepts validates; one it refuses does not.
    let v = jsonschema::validator_for(&find("procedure.accepted.v1").expect("listed").schema())
        .expect("compiles");
    let good = serde_json::json!({
        "application_id": "7f1c0a52-3a7e-4d6b-9d52-0c9a8b1f6e10",
        "number": "P-1",
        "order_number": "123456789012345678901234567890",
        "amount_kopecks": 1250,
        "pay_before": "2026-12-10T10:00:00Z"
    });
    let errors: Vec<String> = v.iter_errors(&good).map(|e| e.to_string()).collect();
    assert!(
        errors.is_empty(),
        "a body the hub writes validates: {errors:?}"
    );
    let mut bad = good.clone();
    bad["order_number"] = "12-34".into();
    assert!(!v.is_valid(&bad), "a malformed order number is refused");
    let mut bad = good;
    bad.as_object_mut().expect("an object").remove("number");
    assert!(!v.is_valid(&bad), "a missing required field is refused");
}

#[test]
fn the_checked_in_schemas_are_what_the_code_generates() {
    let checked_in = read_dir(&published_dir().join("schemas"));
    let generated = schemas();
    let stale: Vec<&String> = generated
        .iter()
        .filter(|(k, v)| checked_in.get(*k) != Some(*v))
        .map(|(k, _)| k)
        .collect();
    let extra: Vec<&String> = checked_in
        .keys()
        .filter(|k| !generated.contains_key(*k))
        .collect();
    assert!(
        stale.is_empty() && extra.is_empty(),
        "contracts/published/schemas differs from the code: changed or new {stale:?}, no longer \
         generated {extra:?}; {REGENERATE}"
    );
}

#[test]
fn the_code_keeps_every_type_of_the_last_release_compatible() {
    let released = read_dir(&published_dir().join("baseline").join("schemas"));
    assert!(!released.is_empty(), "a baseline is released");
    let breaks = compat::gate(&released, &schemas());
    assert!(
        breaks.is_empty(),
        "breaking changes since the last release (make a new version of the type instead):\n  {}",
        breaks.join("\n  ")
    );
}

/// The gate fails on a field renamed in a contract type: the released schema of
/// `procedure.submit.v1` against the generated one with `procedure_code` renamed.
#[test]
fn renaming_a_field_fails_the_gate_and_says_which() {
    let released = read_dir(&published_dir().join("baseline").join("schemas"));
    let mut current = schemas();
    let submit = current
        .get_mut("procedure.submit.v1.json")
        .expect("generated");
    let props = submit["properties"].as_object_mut().expect("an object");
    let field = props.remove("procedure_code").expect("the field exists");
    props.insert("procedure".to_owned(), field);
    let required = submit["required"].as_array_mut().expect("required fields");
    for r in required.iter_mut() {
        if r == "procedure_code" {
            *r = "procedure".into();
        }
    }
    let breaks = compat::gate(&released, &current);
    assert_eq!(
        breaks,
        vec![
            "procedure.submit.v1: `procedure_code`: field removed (or renamed): agencies that \
             send or read it break",
            "procedure.submit.v1: `procedure`: new required field: a sender written against the \
             release omits it",
        ]
    );

    // And removing a type, or a value of an enum, fails it too.
    let mut current = schemas();
    current.remove("cabinet.login.v1.json");
    let decided = current
        .get_mut("authority.decided.v2.json")
        .expect("generated");
    let verdicts = decided
        .pointer_mut("/$defs/Verdict/oneOf")
        .and_then(Value::as_array_mut)
        .expect("the verdict is a union of constants");
    verdicts.retain(|v| v["const"] != "refused");
    let breaks = compat::gate(&released, &current);
    assert!(
        breaks[0].starts_with("cabinet.login.v1: message type removed"),
        "{breaks:?}"
    );
    assert!(
        breaks.contains(
            &"authority.decided.v2: `document.verdict`: value \"refused\" removed".to_owned()
        ),
        "{breaks:?}"
    );
}

/// The patterns accept what the hub's parsers accept, and refuse what they refuse.
#[test]
fn the_patterns_agree_with_the_parsers() {
    let id = jsonschema::validator_for(
        &serde_json::json!({"type": "string", "pattern": contracts::person::id_number_pattern()}),
    )
    .expect("compiles");
    for ok in [
        "3270287A012PB2",
        "  3270287a012pb2\n",
        "7000000A000PB1",
        "5010105H001BI0",
    ] {
        assert!(
            contracts::person::IdNumber::parse(ok).is_ok(),
            "{ok:?} parses"
        );
        assert!(id.is_valid(&ok.into()), "{ok:?} matches the pattern");
    }
    for bad in [
        "3270287A012PB",
        "3270287\u{0410}012PB2",
        "8270287A012PB2",
        "3270287D012PB2",
        "3270287A012XX2",
    ] {
        assert!(
            contracts::person::IdNumber::parse(bad).is_err(),
            "{bad:?} does not parse"
        );
        assert!(
            !id.is_valid(&bad.into()),
            "{bad:?} does not match the pattern"
        );
    }
    let phone = jsonschema::validator_for(
        &serde_json::json!({"type": "string", "pattern": contracts::person::phone_pattern()}),
    )
    .expect("compiles");
    for ok in [
        "+375291234567",
        "+375 29 123-45-67",
        "375291234567",
        "+375(29)1234567",
        "80291234567",
        "00375331234567",
        "810375441234567",
        "8 (025) 123.45.67",
    ] {
        assert!(
            contracts::person::Msisdn::parse(ok).is_ok(),
            "{ok:?} parses"
        );
        assert!(phone.is_valid(&ok.into()), "{ok:?} matches the pattern");
    }
    for bad in [
        "+375171234567",
        "+48291234567",
        "+37529123456",
        "+3752912345678",
        "80171234567",
        "",
    ] {
        assert!(
            contracts::person::Msisdn::parse(bad).is_err(),
            "{bad:?} does not parse"
        );
        assert!(
            !phone.is_valid(&bad.into()),
            "{bad:?} does not match the pattern"
        );
    }
}

/// The message types no run of the end-to-end tests sends with a conforming body, so without an
/// example in `contracts/published/examples.json`. A type leaves this list when a test sends it
/// and the examples are captured again (README: Published contracts, Conformance and examples
/// from a real run).
const NO_EXAMPLE: &[&str] = &[
    // The hub's answer when an issuance's SMS code expires: no test waits out the code.
    "issuance.phone_code_expired.v1",
    // The hub's answer when the SMS with the temporary password is reported undelivered: no
    // test has an operator fail that SMS.
    "issuance.password_not_delivered.v1",
];

fn examples() -> serde_json::Map<String, Value> {
    match serde_json::from_str(contracts::schema::EXAMPLES) {
        Ok(Value::Object(map)) => map,
        _ => panic!("contracts/published/examples.json is an object of bodies by message type"),
    }
}

#[test]
fn every_type_has_an_example_from_a_run_but_the_listed_ones() {
    let examples = examples();
    let missing: Vec<String> = PUBLISHED
        .iter()
        .map(|p| p.message_type.to_string())
        .filter(|t| !examples.contains_key(t) && !NO_EXAMPLE.contains(&t.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "no example taken from a run for {missing:?}: capture them again (README, Published contracts, \
         Conformance and examples from a real run), or list them in NO_EXAMPLE if no test sends them"
    );
    let stale: Vec<&&str> = NO_EXAMPLE
        .iter()
        .filter(|t| examples.contains_key(**t))
        .collect();
    assert!(
        stale.is_empty(),
        "{stale:?} have an example now: take them off NO_EXAMPLE"
    );
    for t in examples.keys() {
        assert!(find(t).is_some(), "{t} has an example but is not published");
    }
}

#[test]
fn every_example_validates_against_its_schema_and_is_carried_by_it() {
    for (t, example) in examples() {
        let published = find(&t).expect("published");
        let schema = published.schema();
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(&schema)
            .expect("compiles");
        let problems: Vec<String> = validator
            .iter_errors(&example)
            .map(|e| format!("{} {}", e.instance_path(), e.kind().keyword()))
            .collect();
        assert!(
            problems.is_empty(),
            "the example of {t} does not validate: {problems:?}"
        );
        assert_eq!(schema["examples"], Value::Array(vec![example]), "{t}");
    }
}

/// A secret's placeholder: zeros for a code, `example-...` for anything else.
fn is_placeholder(value: &Value) -> bool {
    match value {
        Value::String(s) => {
            s.starts_with("example-") || (!s.is_empty() && s.bytes().all(|b| b == b'0'))
        }
        Value::Number(n) => n.as_u64() == Some(0),
        Value::Null => true,
        _ => false,
    }
}

fn secrets_are_placeholders(t: &str, value: &Value, listed: &[&str], top: bool) {
    match value {
        Value::Object(fields) => {
            for (key, v) in fields {
                let secret =
                    contracts::is_secret_field(key) || (top && listed.contains(&key.as_str()));
                if secret && !v.is_object() && !v.is_array() {
                    assert!(is_placeholder(v), "{t}: the secret {key} is a placeholder");
                } else {
                    secrets_are_placeholders(t, v, listed, false);
                }
            }
        }
        Value::Array(items) => items
            .iter()
            .for_each(|v| secrets_are_placeholders(t, v, listed, false)),
        _ => {}
    }
}

#[test]
fn no_example_carries_a_secret() {
    for (t, example) in examples() {
        let listed = contracts::secret_fields(&t).unwrap_or(&[]);
        secrets_are_placeholders(&t, &example, listed, true);
    }
}
