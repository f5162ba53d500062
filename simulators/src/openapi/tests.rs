//! The documents are valid OpenAPI 3.1, deterministic, served at `/openapi.json`, cover exactly
//! the routes the routers serve (with their methods), and describe what the simulators answer
//! and call back with.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener as StdListener;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::{PATH, STEMS, document, documents};
use crate::{SimConfig, SimKind};

/// The OpenAPI 3.1 meta-schema, vendored (see contracts/published/meta/README.md).
const META_SCHEMA: &str = include_str!("../../../contracts/published/meta/openapi-3.1.schema.json");

#[test]
fn every_document_is_valid_openapi_3_1_and_its_schemas_are_json_schemas() {
    let meta: Value = serde_json::from_str(META_SCHEMA).expect("the vendored meta-schema");
    let validator = jsonschema::validator_for(&meta).expect("the meta-schema compiles");
    let docs = documents();
    assert_eq!(
        docs.iter().map(|(stem, _)| *stem).collect::<Vec<_>>(),
        STEMS
    );
    for (stem, doc) in &docs {
        let errors: Vec<String> = validator
            .iter_errors(doc)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{stem}: {errors:#?}");
        assert_eq!(doc["openapi"], "3.1.0", "{stem}");
        let schemas = doc["components"]["schemas"]
            .as_object()
            .expect("component schemas");
        for (name, schema) in schemas {
            if let Err(e) = jsonschema::meta::validate(schema) {
                panic!("{stem}: schema {name} is no JSON Schema: {e}");
            }
        }
    }
}

#[test]
fn a_broken_document_fails_the_meta_schema() {
    let meta: Value = serde_json::from_str(META_SCHEMA).expect("the vendored meta-schema");
    let validator = jsonschema::validator_for(&meta).expect("the meta-schema compiles");
    let mut doc = document(SimKind::Mvd);
    assert!(validator.is_valid(&doc));
    // A response without its required description.
    doc["paths"]["/sim/health"]["get"]["responses"]["200"] = json!({});
    assert!(!validator.is_valid(&doc));
}

#[test]
fn documents_are_deterministic_and_name_no_host() {
    let first = serde_json::to_string(&documents()).expect("JSON");
    let second = serde_json::to_string(&documents()).expect("JSON");
    assert_eq!(first, second);
    for (stem, doc) in documents() {
        assert_eq!(
            doc["servers"][0]["url"], "{scheme}://{host}:{port}",
            "{stem}"
        );
    }
    // The three operators share one document.
    assert_eq!(document(SimKind::A1), document(SimKind::Life));
}

#[test]
fn the_backoffice_document_describes_its_signatures_and_callbacks() {
    let doc = document(SimKind::BackOffice);
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["hub_signature"]["name"], "X-Hub-Signature");
    assert_eq!(
        schemes["authority_signature"]["name"],
        "X-Authority-Signature"
    );
    assert_eq!(schemes["mutual_tls"]["type"], "mutualTLS");
    let put = &doc["paths"]["/{authority}/applications/{application_id}"]["put"];
    assert_eq!(put["security"], json!([{"hub_signature": []}]));
    let decided = &put["callbacks"]["authority.decided.v2"]["{$request.header.X-Callback-Url}/authority.decided.v2"]
        ["$ref"];
    assert_eq!(decided, "#/webhooks/authority.decided.v2");
    for webhook in [
        "authority.info_requested.v1",
        "authority.decided.v1",
        "authority.decided.v2",
        "authority.complaint_decided.v1",
        "authority.complaint_decided.v2",
    ] {
        let post = &doc["webhooks"][webhook]["post"];
        assert_eq!(
            post["security"],
            json!([{"authority_signature": []}]),
            "{webhook}"
        );
        // The body is the contract's published schema, referred to by the type's name.
        assert_eq!(
            post["requestBody"]["content"]["application/json"]["schema"],
            contracts::schema::openapi::reference(webhook),
            "{webhook}"
        );
        let published = contracts::schema::find(webhook).expect("published");
        assert_eq!(
            doc["components"]["schemas"][webhook],
            published.schema(),
            "{webhook}"
        );
    }
    let complaint = &doc["paths"]["/{authority}/complaints/{complaint_id}"]["put"];
    assert_eq!(
        complaint["callbacks"]["authority.complaint_decided.v2"]["{$request.header.X-Callback-Url}/authority.complaint_decided.v2"]
            ["$ref"],
        "#/webhooks/authority.complaint_decided.v2"
    );
}

/// The paths a router serves, from its `Debug` form (axum shows its route table there), in the
/// documents' form (`{*rest}` as `{rest}`).
fn router_paths(router: &axum::Router) -> BTreeSet<String> {
    let debug = format!("{router:?}");
    // The route table proper; the fallback router's own paths (`/`, a catch-all) come after.
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
            paths.insert(path.replace("{*", "{"));
        }
        rest = &tail[end..];
    }
    paths
}

/// Each simulator's router as `start` builds it, with its kind.
async fn routers() -> Vec<(SimKind, axum::Router)> {
    let config = SimConfig::ephemeral();
    let shutdown = CancellationToken::new();
    let tasks = tokio_util::task::TaskTracker::new();
    let shared = crate::Shared {
        phones: std::sync::Arc::new(crate::operators::Phones::default()),
        client: {
            crate::tls::install_default_provider();
            reqwest::Client::new()
        },
        tasks: tasks.clone(),
        smpp_listeners: Default::default(),
        smpp_tls: None,
    };
    // GosSUOK's key tokens, as `start` makes them (on a port nothing listens on).
    let gossuok_port = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let listener = tokio::net::TcpListener::from_std({
        gossuok_port.set_nonblocking(true).expect("non-blocking");
        gossuok_port
    })
    .expect("a listener");
    let tokens = crate::gossuok_tokens(&config, &[(SimKind::Gossuok, listener)], false, &shutdown)
        .expect("the key tokens")
        .expect("GosSUOK is among the listeners");
    let mut routers = Vec::new();
    for kind in SimKind::ALL {
        let ctx = crate::server::SimContext::new(kind, shutdown.clone());
        let router = if kind == SimKind::Gossuok {
            crate::gossuok::router(&tokens)
        } else if kind == SimKind::Email {
            let smtp = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("an SMTP port");
            crate::email::start(ctx, smtp, &tasks)
        } else {
            crate::router(kind, ctx, &config, &shared, Some(&tokens))
        };
        routers.push((kind, router));
    }
    shutdown.cancel();
    routers
}

#[tokio::test]
async fn every_route_served_is_documented_and_every_documented_path_is_served() {
    for (kind, router) in routers().await {
        let served = router_paths(&router);
        assert!(
            served.contains(PATH) && served.contains("/sim/faults"),
            "{kind}: the route table was not read from the router: {served:?}"
        );
        let doc = document(kind);
        let documented: BTreeSet<String> = doc["paths"]
            .as_object()
            .expect("paths")
            .keys()
            .cloned()
            .collect();
        // A route added without documentation is seen.
        let extra = router
            .clone()
            .route("/sim/undocumented", axum::routing::get(|| async { "" }));
        assert!(!documented.is_superset(&router_paths(&extra)), "{kind}");
        let undocumented: Vec<_> = served.difference(&documented).collect();
        let unserved: Vec<_> = documented.difference(&served).collect();
        assert!(
            undocumented.is_empty() && unserved.is_empty(),
            "{kind}: served but not documented {undocumented:?}, documented but not served {unserved:?}"
        );
    }
}

/// A concrete path for a documented template: every parameter `x`.
fn concrete(template: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for c in template.chars() {
        match c {
            '{' => inside = true,
            '}' => {
                inside = false;
                out.push('x');
            }
            _ if inside => {}
            _ => out.push(c),
        }
    }
    out
}

/// Starts every simulator on free ports; their base URLs by kind.
pub(super) async fn running(shutdown: &CancellationToken) -> BTreeMap<SimKind, url::Url> {
    let mut config = SimConfig::ephemeral();
    config.population = 50;
    let email_smtp = StdListener::bind("127.0.0.1:0").expect("a free port");
    config.ports.email_smtp = email_smtp.local_addr().expect("an address").port();
    drop(email_smtp);
    let sims = crate::start(config, shutdown.clone())
        .await
        .expect("the simulators start");
    SimKind::ALL
        .into_iter()
        .filter_map(|kind| sims.operator_url(kind).map(|url| (kind, url.clone())))
        .collect()
}

#[tokio::test]
async fn every_simulator_serves_its_document_and_exactly_the_documented_methods() {
    let shutdown = CancellationToken::new();
    let urls = running(&shutdown).await;
    let client = reqwest::Client::new();
    for (kind, base) in &urls {
        let served: Value = client
            .get(base.join("openapi.json").expect("a URL"))
            .send()
            .await
            .expect("an answer")
            .json()
            .await
            .expect("JSON");
        let doc = document(*kind);
        assert_eq!(served, doc, "{kind} serves another document");
        for (template, item) in doc["paths"].as_object().expect("paths") {
            let url = base.join(&concrete(template)[1..]).expect("a URL");
            for method in ["get", "put", "post", "delete", "patch"] {
                let answer = client
                    .request(
                        method.to_uppercase().parse().expect("a method"),
                        url.clone(),
                    )
                    .send()
                    .await
                    .expect("an answer");
                let status = answer.status().as_u16();
                let body: Value = answer.json().await.unwrap_or(Value::Null);
                if item.get(method).is_some() {
                    assert!(
                        status != 405 && body["message"] != "no such endpoint",
                        "{kind}: {method} {template} is documented but not served ({status} {body})"
                    );
                } else {
                    assert_eq!(
                        status, 405,
                        "{kind}: {method} {template} is served but not documented"
                    );
                }
            }
        }
    }
    shutdown.cancel();
}
