//! What the simulators answer and call back with matches their documents: a run of each
//! simulator's main calls, every answer and every callback validated against the documented
//! schema of its operation and status (or webhook).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::document;
use crate::SimKind;

/// How long a callback may take to arrive (the back-office decides after 2 s).
const CALLBACK_DEADLINE: Duration = Duration::from_secs(20);

/// A JSON pointer's token: `~` and `/` escaped, then percent-encoded braces for the URI
/// fragment.
fn token(raw: &str) -> String {
    raw.replace('~', "~0")
        .replace('/', "~1")
        .replace('{', "%7B")
        .replace('}', "%7D")
}

/// Validates `instance` against the schema at `pointer` in `doc`; the errors, if any. The
/// contract bodies' `#/$defs/...` references resolve inside them, as an OpenAPI 3.1 tool
/// resolves them (`contracts::schema::openapi::as_json_schema`).
fn errors(doc: &Value, pointer: &str, instance: &Value) -> Vec<String> {
    let root = contracts::schema::openapi::as_json_schema(doc, pointer);
    let validator =
        jsonschema::validator_for(&root).unwrap_or_else(|e| panic!("no schema at {pointer}: {e}"));
    validator
        .iter_errors(instance)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect()
}

/// What a simulator answered.
struct Answer {
    status: u16,
    body: Value,
}

/// Calls a simulator and checks its answer against the document of `kind`: the operation
/// `method template` must document the status with a JSON body, and the body must match.
struct Checker {
    client: reqwest::Client,
    urls: BTreeMap<SimKind, url::Url>,
}

impl Checker {
    async fn call(
        &self,
        kind: SimKind,
        method: &str,
        (template, path): (&str, &str),
        headers: &[(&str, String)],
        body: Option<Vec<u8>>,
    ) -> Answer {
        let url = self.urls[&kind].join(&path[1..]).expect("a URL");
        let mut request = self
            .client
            .request(method.to_uppercase().parse().expect("a method"), url);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let answer = request.send().await.expect("an answer");
        let status = answer.status().as_u16();
        let body: Value = answer.json().await.expect("a JSON answer");
        let doc = document(kind);
        let pointer = format!(
            "/paths/{}/{method}/responses/{status}/content/application~1json/schema",
            token(template)
        );
        let found = errors(&doc, &pointer, &body);
        assert!(
            found.is_empty(),
            "{kind}: {method} {path} answered {status} {body} against the document: {found:#?}"
        );
        Answer { status, body }
    }

    async fn get(&self, kind: SimKind, template: &str, path: &str) -> Answer {
        self.call(kind, "get", (template, path), &[], None).await
    }

    async fn post(&self, kind: SimKind, template: &str, path: &str, body: &Value) -> Answer {
        let bytes = serde_json::to_vec(body).expect("JSON");
        self.call(kind, "post", (template, path), &[], Some(bytes))
            .await
    }
}

/// A callback as received: its path and body.
type Received = (String, Value);

/// Takes every POST, answers 200 and hands it on.
async fn receive(
    State(sender): State<mpsc::UnboundedSender<Received>>,
    uri: Uri,
    _headers: HeaderMap,
    body: Bytes,
) -> &'static str {
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let _ = sender.send((uri.path().to_owned(), body));
    "ok"
}

/// Waits for the next callback whose path ends with `suffix`.
async fn next_callback(callbacks: &mut mpsc::UnboundedReceiver<Received>, suffix: &str) -> Value {
    let wait = async {
        while let Some((path, body)) = callbacks.recv().await {
            if path.ends_with(suffix) {
                return body;
            }
        }
        Value::Null
    };
    tokio::time::timeout(CALLBACK_DEADLINE, wait)
        .await
        .unwrap_or_else(|_| panic!("no callback to {suffix} within {CALLBACK_DEADLINE:?}"))
}

/// Checks a callback's body against the webhook `name` of `kind`'s document.
fn check_webhook(kind: SimKind, name: &str, body: &Value) {
    let pointer = format!(
        "/webhooks/{}/post/requestBody/content/application~1json/schema",
        token(name)
    );
    let found = errors(&document(kind), &pointer, body);
    assert!(
        found.is_empty(),
        "{kind}: webhook {name} {body}: {found:#?}"
    );
}

#[test]
fn the_check_refuses_what_the_document_does_not_allow() {
    let doc = document(SimKind::Mvd);
    let pointer = format!(
        "/paths/{}/post/responses/200/content/application~1json/schema",
        token("/api/v1/reconciliations")
    );
    let good =
        json!({"reconciliation_id": "4b0c3d58-7a51-4a4e-9a36-1f5f0c0f9e11", "result": "match"});
    assert_eq!(errors(&doc, &pointer, &good), Vec::<String>::new());
    for bad in [
        json!({"reconciliation_id": "4b0c3d58-7a51-4a4e-9a36-1f5f0c0f9e11", "result": "maybe"}),
        json!({"result": "match"}),
        json!({"reconciliation_id": 7, "result": "match"}),
    ] {
        assert!(!errors(&doc, &pointer, &bad).is_empty(), "{bad} passed");
    }
}

#[tokio::test]
async fn answers_and_callbacks_match_the_documents() {
    let shutdown = CancellationToken::new();
    let urls = super::tests::running(&shutdown).await;
    crate::tls::install_default_provider();
    let checker = Checker {
        client: reqwest::Client::new(),
        urls,
    };
    let (sender, mut callbacks) = mpsc::unbounded_channel();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let hook = format!("http://{}", listener.local_addr().expect("an address"));
    let receiver = axum::Router::new()
        .fallback(axum::routing::post(receive))
        .with_state(sender);
    let server = tokio::spawn(async move { axum::serve(listener, receiver).await });

    common_and_mvd(&checker).await;
    operators(&checker, &hook, &mut callbacks).await;
    erip(&checker, &hook, &mut callbacks).await;
    backoffice(&checker, &hook, &mut callbacks).await;
    gossuok_and_email(&checker).await;

    server.abort();
    shutdown.cancel();
}

async fn common_and_mvd(checker: &Checker) {
    let mvd = SimKind::Mvd;
    checker.get(mvd, "/sim/faults", "/sim/faults").await;
    checker.get(mvd, "/sim/health", "/sim/health").await;
    let up = checker.get(mvd, "/healthz", "/healthz").await;
    assert_eq!((up.status, &up.body["simulator"]), (200, &json!("mvd")));
    let set = checker
        .call(
            mvd,
            "put",
            ("/sim/faults", "/sim/faults"),
            &[],
            Some(br#"{"latency_ms": 1}"#.to_vec()),
        )
        .await;
    assert_eq!(set.body["latency_ms"], 1);
    let refused = checker
        .call(
            mvd,
            "put",
            ("/sim/faults", "/sim/faults"),
            &[],
            Some(br#"{"error_rate": 2}"#.to_vec()),
        )
        .await;
    assert_eq!(refused.status, 400);
    // The API's health is under the faults, as the API is; `/sim/health` is not.
    checker
        .call(
            mvd,
            "put",
            ("/sim/faults", "/sim/faults"),
            &[],
            Some(br#"{"error_rate": 1.0}"#.to_vec()),
        )
        .await;
    let failing = checker.get(mvd, "/healthz", "/healthz").await;
    assert_eq!(
        (failing.status, &failing.body["error"]),
        (503, &json!("unavailable"))
    );
    assert_eq!(
        checker.get(mvd, "/sim/health", "/sim/health").await.status,
        200
    );
    checker
        .call(mvd, "delete", ("/sim/faults", "/sim/faults"), &[], None)
        .await;
    let page = checker
        .get(mvd, "/sim/population", "/sim/population?limit=3")
        .await;
    let person = page.body["persons"][0].clone();
    let number = person["identification_number"].as_str().expect("a number");
    let template = "/sim/persons/{identification_number}";
    checker
        .get(mvd, template, &format!("/sim/persons/{number}"))
        .await;
    checker.get(mvd, template, "/sim/persons/nobody").await;
    let mut request = json!({
        "identification_number": number,
        "surname": person["surname"],
        "given_name": person["given_name"],
        "patronymic": person["patronymic"],
        "birth_date": person["birth_date"],
        "document": person["document"],
    });
    let path = "/api/v1/reconciliations";
    checker.post(mvd, path, path, &request).await;
    request["given_name"] = json!("Никто");
    let mismatch = checker.post(mvd, path, path, &request).await;
    assert_ne!(mismatch.body["result"], "match");
    assert_eq!(checker.post(mvd, path, path, &json!({})).await.status, 400);
}

async fn operators(
    checker: &Checker,
    hook: &str,
    callbacks: &mut mpsc::UnboundedReceiver<Received>,
) {
    let number = "+375291234567";
    let template = "/api/v1/subscribers/{msisdn}";
    let mut serving = None;
    for kind in [SimKind::A1, SimKind::Mts, SimKind::Life] {
        let answer = checker
            .get(kind, template, &format!("/api/v1/subscribers/{number}"))
            .await;
        if answer.status == 200 {
            serving = Some(kind);
        }
    }
    let kind = serving.expect("an operator serves the number");
    let path = "/api/v1/messages";
    let sent = checker
        .post(
            kind,
            path,
            path,
            &json!({"sender": "Portal", "to": number, "text": "Код: 123456",
                    "callback_url": format!("{hook}/callbacks/sms/{kind}")}),
        )
        .await;
    assert_eq!(sent.status, 202);
    let report = next_callback(callbacks, &format!("/callbacks/sms/{kind}")).await;
    check_webhook(kind, "delivery-report", &report);
    let id = sent.body["message_id"].as_str().expect("an id");
    checker
        .get(
            kind,
            "/sim/messages/{message_id}",
            &format!("/sim/messages/{id}"),
        )
        .await;
    checker
        .get(kind, "/sim/inbox/{msisdn}", &format!("/sim/inbox/{number}"))
        .await;
    let blocked = checker
        .post(
            kind,
            path,
            path,
            &json!({"sender": "Portal", "to": "+375291239999", "text": "x"}),
        )
        .await;
    assert!(blocked.status >= 400);
}

async fn erip(checker: &Checker, hook: &str, callbacks: &mut mpsc::UnboundedReceiver<Received>) {
    let erip = SimKind::Erip;
    let account = "202611260000000000000000000042";
    let path = "/api/v1/invoices";
    let expires = (chrono::Utc::now() + chrono::TimeDelta::days(3)).to_rfc3339();
    let created = checker
        .post(
            erip,
            path,
            path,
            &json!({"account_number": account, "amount": 2500, "currency": 933,
                    "description": "Пошлина", "expires_at": expires,
                    "notify_url": format!("{hook}/callbacks/erip")}),
        )
        .await;
    assert_eq!(created.status, 201);
    let id = created.body["invoice_id"].as_str().expect("an id");
    checker
        .get(
            erip,
            "/api/v1/invoices/{invoice_id}",
            &format!("/api/v1/invoices/{id}"),
        )
        .await;
    let pay = "/sim/invoices/by-account/{account_number}/pay";
    let paid = checker
        .post(
            erip,
            pay,
            &format!("/sim/invoices/by-account/{account}/pay"),
            &json!({}),
        )
        .await;
    assert_eq!(paid.status, 201);
    let notification = next_callback(callbacks, "/callbacks/erip").await;
    check_webhook(erip, "invoice-notification", &notification);
    checker.get(erip, "/sim/invoices", "/sim/invoices").await;
    let cancel = "/api/v1/invoices/{invoice_id}/cancel";
    let refused = checker
        .post(
            erip,
            cancel,
            &format!("/api/v1/invoices/{id}/cancel"),
            &json!({}),
        )
        .await;
    assert_eq!(refused.status, 409);
    let returned = checker
        .post(
            erip,
            "/sim/invoices/by-account/{account_number}/return",
            &format!("/sim/invoices/by-account/{account}/return"),
            &json!({}),
        )
        .await;
    assert_eq!(returned.status, 200);
    let refund = checker
        .post(
            erip,
            "/api/v1/invoices/{invoice_id}/refund",
            &format!("/api/v1/invoices/{id}/refund"),
            &json!({}),
        )
        .await;
    assert_eq!(refund.status, 200);
    let expire = "/sim/clock/expire";
    checker.post(erip, expire, expire, &json!({})).await;
}

async fn backoffice(
    checker: &Checker,
    hook: &str,
    callbacks: &mut mpsc::UnboundedReceiver<Received>,
) {
    let office = SimKind::BackOffice;
    let id = uuid::Uuid::new_v4();
    let body = json!({
        "application_id": id, "number": "2026-000123", "procedure_code": "mns.tax_certificate",
        "applicant": "3150790A001PB7", "form": {"simulate_info_request": true}, "attachments": [],
        "paid_kopecks": 0, "decision_due": "2026-12-31"
    });
    let bytes = serde_json::to_vec(&body).expect("JSON");
    let signature = crate::erip::sign(crate::DEFAULT_BACKOFFICE_SECRET.as_bytes(), &bytes);
    let template = "/{authority}/applications/{application_id}";
    let path = format!("/mns/applications/{id}");
    let callback = format!("{hook}/callbacks/authority/mns");
    let registered = checker
        .call(
            office,
            "put",
            (template, &path),
            &[
                ("x-hub-signature", signature),
                ("x-callback-url", callback.clone()),
            ],
            Some(bytes.clone()),
        )
        .await;
    assert_eq!(registered.status, 200);
    let unsigned = checker
        .call(
            office,
            "put",
            (template, &path),
            &[("x-callback-url", callback)],
            Some(bytes),
        )
        .await;
    assert_eq!(unsigned.status, 401);
    let asked = next_callback(callbacks, "/authority.info_requested.v1").await;
    check_webhook(office, "authority.info_requested.v1", &asked);
    let complaint_id = complaint(checker, hook).await;
    signing_and_refusals(checker, complaint_id).await;
    // Decided with GosSUOK in the process: signed, as the contracts' v2 bodies.
    let decided = next_callback(callbacks, "/authority.decided.v2").await;
    check_webhook(office, "authority.decided.v2", &decided);
    assert!(decided["signature"].is_object(), "{decided}");
    let decided = next_callback(callbacks, "/authority.complaint_decided.v2").await;
    check_webhook(office, "authority.complaint_decided.v2", &decided);
    assert_eq!(decided["complaint_id"], json!(complaint_id));
    checker
        .get(
            office,
            "/sim/backoffice/{authority}/applications/{application_id}",
            &format!("/sim/backoffice/mns/applications/{id}"),
        )
        .await;
    checker
        .get(
            office,
            "/sim/backoffice/{authority}/decision-refusals",
            "/sim/backoffice/mns/decision-refusals",
        )
        .await;
}

/// Submits a complaint to the back-office (`mns`); its id.
async fn complaint(checker: &Checker, hook: &str) -> uuid::Uuid {
    let id = uuid::Uuid::new_v4();
    let body = json!({
        "complaint_id": id, "application_id": uuid::Uuid::new_v4(),
        "application_number": "2026-000124", "text": "simulate:dismissed"
    });
    let bytes = serde_json::to_vec(&body).expect("JSON");
    let signature = crate::erip::sign(crate::DEFAULT_BACKOFFICE_SECRET.as_bytes(), &bytes);
    let received = checker
        .call(
            SimKind::BackOffice,
            "put",
            (
                "/{authority}/complaints/{complaint_id}",
                &format!("/mns/complaints/{id}"),
            ),
            &[
                ("x-hub-signature", signature),
                ("x-callback-url", format!("{hook}/callbacks/authority/mns")),
            ],
            Some(bytes),
        )
        .await;
    assert_eq!(received.status, 202);
    id
}

/// The signing switch, and a refusal of a complaint's decision among the refusals kept.
async fn signing_and_refusals(checker: &Checker, complaint_id: uuid::Uuid) {
    let office = SimKind::BackOffice;
    let signing = "/sim/backoffice/{authority}/signing";
    let at = "/sim/backoffice/mns/signing";
    let seen = checker.get(office, signing, at).await;
    assert_eq!((seen.status, &seen.body["signed"]), (200, &json!(true)));
    let put = |fault: &str| {
        let bytes = serde_json::to_vec(&json!({"fault": fault})).expect("JSON");
        checker.call(office, "put", (signing, at), &[], Some(bytes))
    };
    let refused = put("tired").await;
    assert_eq!(refused.status, 400);
    let set = put("none").await;
    assert_eq!((set.status, &set.body["fault"]), (200, &json!("none")));

    let refusal = json!({
        "complaint_id": complaint_id, "number": "MNS-C-000001", "reason": "bad_signature",
        "detail": "the signature does not verify"
    });
    let bytes = serde_json::to_vec(&refusal).expect("JSON");
    let signature = crate::erip::sign(crate::DEFAULT_BACKOFFICE_SECRET.as_bytes(), &bytes);
    let recorded = checker
        .call(
            office,
            "post",
            (
                "/{authority}/complaints/{complaint_id}/decision-refusals",
                &format!("/mns/complaints/{complaint_id}/decision-refusals"),
            ),
            &[("x-hub-signature", signature)],
            Some(bytes),
        )
        .await;
    assert_eq!(recorded.status, 200);
    let refusals = checker
        .get(
            office,
            "/sim/backoffice/{authority}/decision-refusals",
            "/sim/backoffice/mns/decision-refusals",
        )
        .await;
    assert!(
        refusals.body["refusals"]
            .as_array()
            .is_some_and(|all| all.contains(&refusal)),
        "{}",
        refusals.body
    );
}

async fn gossuok_and_email(checker: &Checker) {
    let pki = SimKind::Gossuok;
    let person = checker
        .get(SimKind::Mvd, "/sim/population", "/sim/population?limit=1")
        .await;
    let number = person.body["persons"][0]["identification_number"]
        .as_str()
        .expect("a number")
        .to_owned();
    let certificate = checker
        .get(
            pki,
            "/sim/persons/{identification_number}/certificate",
            &format!("/sim/persons/{number}/certificate"),
        )
        .await;
    let serial = certificate.body["serial"].as_str().expect("a serial");
    checker
        .get(
            pki,
            "/api/v1/certificates/{serial}/status",
            &format!("/api/v1/certificates/{serial}/status"),
        )
        .await;
    let revoke = "/sim/revoke/{serial}";
    checker
        .post(
            pki,
            revoke,
            &format!("/sim/revoke/{serial}"),
            &json!({"reason": "key_compromise"}),
        )
        .await;
    checker.get(pki, "/sim/ocsp", "/sim/ocsp").await;
    checker
        .call(
            pki,
            "put",
            ("/sim/ocsp", "/sim/ocsp"),
            &[],
            Some(br#"{"mode": "try_later"}"#.to_vec()),
        )
        .await;
    let mail = SimKind::Email;
    let inbox = "/sim/inbox/{address}";
    checker
        .get(mail, inbox, "/sim/inbox/person@example.by")
        .await;
    checker.get(mail, "/sim/messages", "/sim/messages").await;
    checker
        .call(
            mail,
            "delete",
            (inbox, "/sim/inbox/person@example.by"),
            &[],
            None,
        )
        .await;
}
