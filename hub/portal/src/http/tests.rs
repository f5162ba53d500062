//! The hub's OpenAPI document: valid OpenAPI 3.1, deterministic, served on the callbacks'
//! address, covering exactly the routes the two routers serve, with examples the hub's own
//! parsers take and schemas the contract messages satisfy.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{Value, json};

use super::openapi::{OPS_PATHS, PATH};
use super::{AppState, Callbacks, callback_routes, ops_routes, router};

/// The OpenAPI 3.1 meta-schema, vendored (see contracts/published/meta/README.md).
const META_SCHEMA: &str =
    include_str!("../../../../contracts/published/meta/openapi-3.1.schema.json");

/// A validator of what `pointer` (a JSON pointer into the document) describes, its `$ref`s
/// resolved in the document (the contract bodies' own `#/$defs/...` inside them, as an OpenAPI
/// 3.1 tool resolves them).
fn validator_of(doc: &Value, pointer: &str) -> jsonschema::Validator {
    // A URI fragment: the braces of path templates percent-encoded.
    let fragment = pointer.replace('{', "%7B").replace('}', "%7D");
    let root = contracts::schema::openapi::as_json_schema(doc, &fragment);
    jsonschema::validator_for(&root).expect("the document's schemas compile")
}

#[test]
fn the_document_is_valid_openapi_3_1_and_its_schemas_are_json_schemas() {
    let meta: Value = serde_json::from_str(META_SCHEMA).expect("the vendored meta-schema");
    let validator = jsonschema::validator_for(&meta).expect("the meta-schema compiles");
    let doc = super::openapi();
    let errors: Vec<String> = validator
        .iter_errors(&doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(doc["openapi"], "3.1.0");
    for (name, schema) in doc["components"]["schemas"].as_object().expect("schemas") {
        if let Err(e) = jsonschema::meta::validate(schema) {
            panic!("schema {name} is no JSON Schema: {e}");
        }
    }
    // And the check can fail: an operation without responses is not OpenAPI.
    let mut broken = doc.clone();
    broken["paths"]["/callbacks/erip"]["post"]["responses"] = json!([]);
    assert!(!validator.is_valid(&broken));
}

#[test]
fn the_document_is_deterministic_names_no_host_and_says_where_each_path_is() {
    let doc = super::openapi();
    assert_eq!(
        serde_json::to_string(&doc).expect("JSON"),
        serde_json::to_string(&super::openapi()).expect("JSON")
    );
    assert_eq!(doc["servers"][0]["url"], "{scheme}://{host}:{port}");
    assert_eq!(doc["servers"][0]["variables"]["port"]["default"], "8090");
    for path in OPS_PATHS {
        assert_eq!(
            doc["paths"][path]["servers"][0]["variables"]["port"]["default"], "8092",
            "{path} is on the operators' address"
        );
    }
    let schemes = &doc["components"]["securitySchemes"];
    for (scheme, header) in [
        ("sms_signature", "X-Sms-Signature"),
        ("erip_signature", "X-Erip-Signature"),
        ("authority_signature", "X-Authority-Signature"),
    ] {
        assert_eq!(schemes[scheme]["type"], "apiKey");
        assert_eq!(schemes[scheme]["in"], "header");
        assert_eq!(schemes[scheme]["name"], header);
    }
}

/// The paths a router serves, from its `Debug` form (axum shows its route table there).
fn router_paths(debug: &str) -> BTreeSet<String> {
    // The route table proper; the fallback router's own paths come after.
    let table = debug.split("fallback_router:").next().unwrap_or_default();
    let mut paths = BTreeSet::new();
    let mut rest = table;
    while let Some(at) = rest.find("RouteId(") {
        rest = &rest[at..];
        let Some(quote) = rest.find(": \"") else {
            break;
        };
        let tail = &rest[quote + 3..];
        let end = tail.find('"').unwrap_or(tail.len());
        let path = &tail[..end];
        if path.starts_with('/') && !path.contains("__private__axum") {
            paths.insert(path.to_owned());
        }
        rest = &tail[end..];
    }
    paths
}

#[test]
fn every_route_served_is_documented_and_every_documented_path_is_served() {
    let callbacks = router_paths(&format!("{:?}", callback_routes()));
    let ops = router_paths(&format!("{:?}", ops_routes()));
    assert!(
        callbacks.contains(PATH) && ops.contains("/readyz"),
        "the route tables were not read: {callbacks:?} {ops:?}"
    );
    assert_eq!(
        ops,
        OPS_PATHS.iter().map(|p| (*p).to_owned()).collect(),
        "the operators' paths"
    );
    let served: BTreeSet<String> = callbacks.union(&ops).cloned().collect();
    let doc = super::openapi();
    let documented: BTreeSet<String> = doc["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .cloned()
        .collect();
    assert_eq!(served, documented);
    // Every callback is a POST, every other path a GET, as the routers have them.
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let methods: Vec<&String> = item
            .as_object()
            .expect("a path item")
            .keys()
            .filter(|k| *k != "servers")
            .collect();
        let expected = if path.starts_with("/callbacks/") {
            "post"
        } else {
            "get"
        };
        assert_eq!(methods, [expected], "{path}");
    }
}

#[tokio::test]
async fn the_callbacks_address_serves_the_document() {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .connect_lazy("postgres://postgres@127.0.0.1:5432/postgres")
        .expect("a lazy pool");
    let callbacks = Callbacks {
        erip_secret: b"erip".to_vec(),
        sms_secrets: Default::default(),
        phone_limits: crate::external::sms::worker::PhoneLimits::new(
            &crate::config::LimitsConfig::default(),
            None,
        ),
        procedure_queue: "procedure".into(),
        bus_exchange: "bus".into(),
        bridge_user: "hub".into(),
        authority_secrets: Default::default(),
        callback_url: url::Url::parse("http://127.0.0.1:8090/").expect("a URL"),
        backoffice_window: std::time::Duration::from_secs(300),
    };
    let app = router(AppState {
        pool,
        app_id: "hub".into(),
        callbacks: Arc::new(callbacks),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let addr = listener.local_addr().expect("an address");
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    adapters::tls::install_default_provider();
    let answer = reqwest::Client::new()
        .get(format!("http://{addr}{PATH}"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(answer.status(), 200);
    let served: Value = answer.json().await.expect("JSON");
    assert_eq!(served, super::openapi());
    server.abort();
}

#[test]
fn the_examples_are_bodies_the_hub_takes() {
    let doc = super::openapi();
    let schemas = &doc["components"]["schemas"];
    let report = &schemas["DeliveryReport"]["example"];
    assert!(validator_of(&doc, "/components/schemas/DeliveryReport").is_valid(report));
    let body = serde_json::to_vec(report).expect("JSON");
    adapters::sms::parse_delivery_report(&body).expect("the hub takes the example report");

    let notification = &schemas["EripNotification"]["example"];
    assert!(validator_of(&doc, "/components/schemas/EripNotification").is_valid(notification));
    let body = serde_json::to_vec(notification).expect("JSON");
    let signature = adapters::erip::sign_notification(b"secret", &body);
    adapters::erip::verify_notification(b"secret", &body, Some(&signature))
        .expect("the hub takes the example notification");

    // And the schemas refuse what the hub refuses.
    let mut bad = report.clone();
    bad["status"] = json!("lost");
    assert!(!validator_of(&doc, "/components/schemas/DeliveryReport").is_valid(&bad));
    assert!(
        adapters::sms::parse_delivery_report(&serde_json::to_vec(&bad).expect("JSON")).is_err()
    );
}

#[test]
fn the_back_offices_answers_as_the_contracts_encode_them_match_the_schemas() {
    use contracts::procedure::{
        AuthorityComplaintDecided, AuthorityComplaintDecidedSigned, AuthorityDecided,
        AuthorityDecidedSigned, AuthorityInfoRequested, ComplaintDecisionDocument,
        ComplaintVerdict, DecisionDocument, DecisionSignature, Verdict,
    };
    let doc = super::openapi();
    let id = uuid::Uuid::new_v4();
    let at = chrono::Utc::now();
    let answers: [(&str, Value); 6] = [
        (
            "authority.info_requested.v1",
            serde_json::to_value(AuthorityInfoRequested {
                application_id: id,
                request: "the lease".into(),
                answer_within_working_days: Some(5),
            })
            .expect("JSON"),
        ),
        (
            "authority.decided.v1",
            serde_json::to_value(AuthorityDecided {
                application_id: id,
                verdict: Verdict::Refused,
                document: "notice".into(),
                decided_at: at,
            })
            .expect("JSON"),
        ),
        (
            "authority.decided.v2",
            serde_json::to_value(AuthorityDecidedSigned {
                application_id: id,
                document: DecisionDocument {
                    application_id: id,
                    authority_id: "mns".into(),
                    number: "MNS-1".into(),
                    date: at.date_naive(),
                    verdict: Verdict::Granted,
                    text: "granted\nas asked".into(),
                },
                signature: Some(DecisionSignature {
                    signature: "AAAA".into(),
                    certificate: "AAAA".into(),
                    chain: vec!["AAAA".into()],
                }),
                decided_at: at,
            })
            .expect("JSON"),
        ),
        (
            "authority.decided.v2",
            serde_json::to_value(AuthorityDecidedSigned {
                application_id: id,
                document: DecisionDocument {
                    application_id: id,
                    authority_id: "mns".into(),
                    number: "MNS-2".into(),
                    date: at.date_naive(),
                    verdict: Verdict::Refused,
                    text: "refused".into(),
                },
                signature: None,
                decided_at: at,
            })
            .expect("JSON"),
        ),
        (
            "authority.complaint_decided.v2",
            serde_json::to_value(AuthorityComplaintDecidedSigned {
                complaint_id: id,
                document: ComplaintDecisionDocument {
                    complaint_id: id,
                    authority_id: "mns".into(),
                    number: "MNS-C-1".into(),
                    date: at.date_naive(),
                    verdict: ComplaintVerdict::Dismissed,
                    text: "dismissed".into(),
                },
                signature: Some(DecisionSignature {
                    signature: "AAAA".into(),
                    certificate: "AAAA".into(),
                    chain: Vec::new(),
                }),
                decided_at: at,
            })
            .expect("JSON"),
        ),
        (
            "authority.complaint_decided.v1",
            serde_json::to_value(AuthorityComplaintDecided {
                complaint_id: id,
                verdict: ComplaintVerdict::Upheld,
                document: "revised".into(),
                decided_at: at,
            })
            .expect("JSON"),
        ),
    ];
    let body_schema = validator_of(
        &doc,
        "/paths/~1callbacks~1authority~1{authority}~1{message_type}/post/requestBody/content/application~1json/schema",
    );
    for (name, body) in &answers {
        let own = validator_of(&doc, &format!("/components/schemas/{name}"));
        let errors: Vec<String> = own.iter_errors(body).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{name}: {errors:?}");
        assert!(body_schema.is_valid(body), "{name} is one of the answers");
    }
    // A body missing what its contract requires does not match.
    let mut partial = answers[1].1.clone();
    partial
        .as_object_mut()
        .expect("an object")
        .remove("verdict");
    assert!(!validator_of(&doc, "/components/schemas/authority.decided.v1").is_valid(&partial));
    // And a body of another contract is none of the answers.
    let refused =
        json!({"application_id": id, "number": "", "reason": "unsigned", "detail": "none"});
    assert!(!body_schema.is_valid(&refused));
}

#[test]
fn the_readiness_report_matches_its_schema() {
    use hub_runtime::health::{Check, Report};
    let doc = super::openapi();
    let check = |ok: bool| Check {
        ok,
        detail: "seen".into(),
    };
    let report = Report {
        status: "not_ready",
        checks: [("broker", check(true)), ("database", check(false))]
            .into_iter()
            .collect(),
        failing: vec!["database"],
    };
    let body = serde_json::to_value(&report).expect("JSON");
    let readiness = validator_of(&doc, "/components/schemas/Readiness");
    let errors: Vec<String> = readiness
        .iter_errors(&body)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    assert!(!readiness.is_valid(&json!({"status": "maybe", "checks": {}, "failing": []})));
}
