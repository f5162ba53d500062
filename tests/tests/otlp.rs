//! OpenTelemetry trace export end to end: a collector of the test's own (OTLP/HTTP, protobuf
//! `ExportTraceServiceRequest`s on `127.0.0.1:0`) receives the spans of a hub whose export
//! points at it, while one issuance runs against the real RabbitMQ and PostgreSQL and the
//! simulators. The application is one trace and one tree of spans: the handling of every
//! message, every saga step, every external call (MVD, the SMS gateway) and the SMS gateway's
//! delivery report (a callback), with the ids the log lines and the `traceparent` headers name.
//!
//! The subscriber is process-global: one test of this binary installs it; the other runs the
//! hub's command line as a process of its own, exporting to a collector of its own.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use contracts::issuance::{ApplyForIdentifier, ConfirmPhone, IdentifierIssued, PhoneCodeSent};
use contracts::{Message, Metadata};
use e2e::ledger::{self, OpenAccount};
use e2e::portal::{DESK, Portal, WAIT, code_in, phone};
use e2e::{TestEnv, wait_until};
use hub_runtime::logging::LogFormat;
use hub_runtime::otlp::{ENDPOINT_VAR, OtlpSettings, SERVICE_NAME_VAR, TraceExport};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message as _;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::util::SubscriberInitExt;

/// The trace the desk's application starts, and the desk's own span (not exported: the root's
/// parent).
const DESK_TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
const DESK_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const DESK_SPAN: &str = "b7ad6b7169203331";

/// One span as the collector received it.
#[derive(Debug, Clone)]
struct Exported {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    /// Empty for a root.
    parent_span_id: String,
    attributes: BTreeMap<String, String>,
}

impl Exported {
    fn attribute(&self, key: &str) -> &str {
        self.attributes.get(key).map_or("", String::as_str)
    }
}

/// What the collector received.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<Exported>>>);

impl Received {
    fn spans(&self) -> Vec<Exported> {
        self.0.lock().expect("lock").clone()
    }
}

fn text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn attributes(list: &[KeyValue]) -> BTreeMap<String, String> {
    list.iter()
        .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
        .collect()
}

/// `POST /v1/traces`: decodes the request as the OTLP/HTTP specification says (binary protobuf)
/// and keeps its spans.
async fn take_traces(State(received): State<Received>, body: Bytes) -> impl IntoResponse {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return (StatusCode::BAD_REQUEST, Vec::new()).into_response();
    };
    let mut spans = Vec::new();
    for resource_spans in request.resource_spans {
        let resource = resource_spans
            .resource
            .map(|r| attributes(&r.attributes))
            .unwrap_or_default();
        let service = resource.get("service.name").cloned().unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                spans.push(Exported {
                    service: service.clone(),
                    name: span.name,
                    trace_id: hex::encode(&span.trace_id),
                    span_id: hex::encode(&span.span_id),
                    parent_span_id: hex::encode(&span.parent_span_id),
                    attributes: attributes(&span.attributes),
                });
            }
        }
    }
    received.0.lock().expect("lock").extend(spans);
    (
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
        .into_response()
}

/// Runs the collector on a free port; returns its base URL (what `OTEL_EXPORTER_OTLP_ENDPOINT`
/// would hold) and what it receives.
async fn collector() -> (String, Received) {
    let received = Received::default();
    let app = axum::Router::new()
        .route("/v1/traces", axum::routing::post(take_traces))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let addr = listener.local_addr().expect("its address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), received)
}

/// The log lines, as the hub's JSON logger writes them.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// The lines at level WARN or ERROR.
    fn warnings(&self) -> String {
        let bytes = self.0.lock().expect("lock").clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter(|l| l.contains(r#""level":"WARN""#) || l.contains(r#""level":"ERROR""#))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The `(trace_id, span_id)` of every line logged inside a span with ids.
    fn span_ids(&self) -> BTreeSet<(String, String)> {
        let bytes = self.0.lock().expect("lock").clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter_map(|line| {
                let span = &line["span"];
                Some((
                    span["trace_id"].as_str()?.to_owned(),
                    span["span_id"].as_str()?.to_owned(),
                ))
            })
            .collect()
    }
}

/// The process's subscriber as `hub run` installs it with an endpoint set: the JSON logs (here
/// into `logs`, at `info`) and the export.
fn install(base_url: &str, logs: &Logs) -> TraceExport {
    let settings = OtlpSettings::from_vars(|name| (name == ENDPOINT_VAR).then(|| base_url.into()))
        .expect("valid settings")
        .expect("an endpoint: the export is on");
    assert_eq!(settings.service_name, "hub");
    let export = TraceExport::start(&settings).expect("the exporter");
    let writer = logs.clone();
    hub_runtime::logging::subscriber(
        LogFormat::Json,
        EnvFilter::new("info"),
        move || writer.clone(),
        Some(&export),
    )
    .init();
    export
}

/// The spans of `trace` whose names and attributes show the whole journey: the code's and
/// the password's SMS sent, MVD asked, the delivery report's callback, the saga issued.
fn journey_complete(spans: &[Exported]) -> bool {
    let ours: Vec<&Exported> = spans.iter().filter(|s| s.trace_id == DESK_TRACE).collect();
    let calls = |system: &str, operation: &str| {
        ours.iter()
            .filter(|s| {
                s.name == "external_call"
                    && s.attribute("system") == system
                    && s.attribute("operation") == operation
            })
            .count()
    };
    calls("mvd", "reconcile") >= 1
        && calls("sms", "send") >= 2
        && ours.iter().any(|s| s.name == "callback")
        && ours
            .iter()
            .any(|s| s.name == "saga_step" && s.attribute("state") == "issued")
}

/// One line per span: its name, ids and attributes.
fn summary(spans: &[Exported]) -> String {
    let mut lines = vec![format!("{} spans", spans.len())];
    for s in spans {
        lines.push(format!(
            "{} {} {}<-{} {:?}",
            s.name, s.trace_id, s.span_id, s.parent_span_id, s.attributes
        ));
    }
    lines.join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuance_is_exported_as_one_tree_of_spans() {
    let (base_url, received) = collector().await;
    let logs = Logs::default();
    let export = install(&base_url, &logs);

    let mut portal = Portal::start().await;
    let persons = portal.good_persons().await;
    let (number, phone) = ("OTLP-1", phone(73));
    let mut metadata = Metadata::new(ApplyForIdentifier::TYPE.to_string(), "desk");
    metadata.traceparent = Some(DESK_TRACEPARENT.to_owned());
    portal
        .env
        .send_with(&persons[0].application(number, &phone), metadata)
        .await;
    let _: PhoneCodeSent = portal.event(number).await;
    // The desk answers within the trace of the hub's event, as a portal that propagates the
    // trace context does.
    let code_sent: String = sqlx::query_scalar(
        "SELECT metadata->>'traceparent' FROM outbox WHERE metadata->>'message_type' = $1",
    )
    .bind(PhoneCodeSent::TYPE.to_string())
    .fetch_one(&portal.env.pool)
    .await
    .expect("the event's traceparent");
    let code = code_in(&portal.nth_text(&phone, 1).await);
    let mut metadata = Metadata::new(ConfirmPhone::TYPE.to_string(), "desk");
    metadata.traceparent = Some(code_sent);
    let confirm = ConfirmPhone {
        desk_id: DESK.into(),
        application_number: number.into(),
        code,
    };
    portal.env.send_with(&confirm, metadata).await;
    let _: IdentifierIssued = portal.event(number).await;
    portal.nth_text(&phone, 2).await;

    // The spans go out in batches while the hub works.
    let deadline = Instant::now() + WAIT;
    while !journey_complete(&received.spans()) {
        assert!(
            Instant::now() < deadline,
            "the journey's spans did not reach the collector within {WAIT:?}; it has: {}\nwarnings: {}",
            summary(&received.spans()),
            logs.warnings()
        );
        // The poll interval of this wait on a condition with a deadline.
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // The hub stops as `hub run` does: drained, then the last spans sent.
    portal.stop().await;
    tokio::task::spawn_blocking(move || export.shutdown())
        .await
        .expect("the export shuts down");
    let spans = received.spans();

    // One trace: every span the hub exported belongs to the application's.
    let traces: BTreeSet<&str> = spans.iter().map(|s| s.trace_id.as_str()).collect();
    assert_eq!(
        traces,
        BTreeSet::from([DESK_TRACE]),
        "every span is in the desk's trace: {spans:#?}"
    );
    assert!(spans.iter().all(|s| s.service == "hub"), "{spans:#?}");

    // One tree: every parent is exported, but the desk's span, the root's parent.
    assert_one_tree(&spans);
    let ids: HashMap<&str, &Exported> = spans.iter().map(|s| (s.span_id.as_str(), s)).collect();

    // The confirmation (sent by the desk in the trace) joined the tree.
    assert!(
        spans.iter().any(|s| s.name == "saga_step"
            && s.attribute("message_type") == ConfirmPhone::TYPE.to_string()),
        "{spans:#?}"
    );

    // The same ids as the logs and the headers: every log line of the trace names an exported
    // span, and every message the hub sent names an exported span as its parent.
    let logged = logs.span_ids();
    let logged_in_trace: Vec<&String> = logged
        .iter()
        .filter(|(trace, _)| trace == DESK_TRACE)
        .map(|(_, span)| span)
        .collect();
    assert!(!logged_in_trace.is_empty(), "the trace is in the logs");
    for span in logged_in_trace {
        assert!(
            ids.contains_key(span.as_str()),
            "a log line names span {span}, which was not exported"
        );
    }
    let sent: Vec<(String, String)> = sqlx::query_as(
        "SELECT metadata->>'message_type', metadata->>'traceparent' FROM outbox ORDER BY created_at",
    )
    .fetch_all(&portal.env.pool)
    .await
    .expect("outbox rows");
    assert!(sent.len() >= 5, "{sent:?}");
    for (message_type, traceparent) in &sent {
        let parent = hub_runtime::trace::TraceContext::parse(traceparent)
            .unwrap_or_else(|| panic!("{message_type}: {traceparent} is valid"));
        assert_eq!(parent.trace_id(), DESK_TRACE, "{message_type}");
        let span = ids
            .get(parent.span_id().as_str())
            .unwrap_or_else(|| panic!("{message_type} names span {traceparent}, not exported"));
        assert!(
            matches!(span.name.as_str(), "message" | "callback"),
            "{message_type} is caused by a handling or a callback, not a {}",
            span.name
        );
    }

    // No personal data in the attributes: names and ids only.
    let person = &persons[0];
    for span in &spans {
        for value in span.attributes.values() {
            for personal in [
                phone.trim_start_matches('+'),
                person.identification_number.as_str(),
                person.surname.as_str(),
            ] {
                assert!(!value.contains(personal), "{personal} in {span:?}");
            }
        }
    }
}

/// Every parent of `spans` is among them, but the desk's span (the root's parent), and each
/// kind of span hangs where it should.
fn assert_one_tree(spans: &[Exported]) {
    let ids: HashMap<&str, &Exported> = spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    assert_eq!(ids.len(), spans.len(), "span ids are unique");
    for span in spans {
        assert!(
            span.parent_span_id == DESK_SPAN || ids.contains_key(span.parent_span_id.as_str()),
            "{} {} has a parent that is not in the trace: {span:?}",
            span.name,
            span.span_id
        );
    }
    let roots: Vec<&Exported> = spans
        .iter()
        .filter(|s| s.parent_span_id == DESK_SPAN)
        .collect();
    assert_eq!(roots.len(), 1, "one span hangs from the desk's: {roots:#?}");
    assert_eq!(roots[0].name, "message");
    assert_eq!(
        roots[0].attribute("message_type"),
        ApplyForIdentifier::TYPE.to_string()
    );

    // The span kinds, and what their parents are.
    let parent_name = |s: &Exported| ids.get(s.parent_span_id.as_str()).map(|p| p.name.as_str());
    let names: BTreeSet<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        BTreeSet::from(["callback", "external_call", "message", "saga_step"]),
        "{spans:#?}"
    );
    for span in spans {
        let expected_parents: &[&str] = match span.name.as_str() {
            // A step and a call are done while a message is handled.
            "saga_step" | "external_call" => &["message"],
            // The gateway reports on the call that sent the SMS.
            "callback" => &["message", "external_call"],
            // A message is caused by a handling or a callback (or by the desk).
            _ => &["message", "callback"],
        };
        if span.parent_span_id != DESK_SPAN {
            assert!(
                parent_name(span).is_some_and(|p| expected_parents.contains(&p)),
                "{} under {:?}: {span:?}",
                span.name,
                parent_name(span)
            );
        }
    }
}

/// A child process, killed if the test ends before it exits.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// `hub run` (the ledger hub's command line) exports with the standard variables, whatever
/// `RUST_LOG` says, and sends the last spans when it stops: with a schedule longer than the
/// test, only the flush at stop can have sent them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_run_exports_with_the_standard_variables_and_flushes_at_stop() {
    let (base_url, received) = collector().await;
    let env = TestEnv::new().await;
    env.declare(vec![ledger::queue_spec()]).await;
    let mut hub = Killed(
        std::process::Command::new(env!("CARGO_BIN_EXE_ledger-hub"))
            .arg("run")
            .envs(env.process_env())
            .env("RUST_LOG", "warn")
            .env(ENDPOINT_VAR, &base_url)
            .env(SERVICE_NAME_VAR, "ledger-hub")
            .env("OTEL_BSP_SCHEDULE_DELAY", "3600000")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the hub binary starts"),
    );
    env.send(&OpenAccount {
        account: "otto".into(),
        expire_after_ms: None,
    })
    .await;
    wait_until(WAIT, "the account saga", || ledger::load(&env.pool, "otto")).await;
    assert!(
        received.spans().is_empty(),
        "nothing is sent before the schedule or the stop"
    );

    let sent = std::process::Command::new("kill")
        .args(["-TERM", &hub.0.id().to_string()])
        .status()
        .expect("kill(1) runs");
    assert!(sent.success());
    let exited = wait_until(WAIT, "the hub to exit after SIGTERM", || {
        let status = hub.0.try_wait().expect("wait");
        async move { status }
    })
    .await;
    assert!(exited.success(), "{exited}");

    // The stop sent them before the process ended.
    let spans = received.spans();
    let handled = spans
        .iter()
        .find(|s| {
            s.name == "message" && s.attribute("message_type") == OpenAccount::TYPE.to_string()
        })
        .unwrap_or_else(|| panic!("the handling of the command: {}", summary(&spans)));
    assert!(
        spans
            .iter()
            .any(|s| s.name == "saga_step" && s.parent_span_id == handled.span_id),
        "its saga step: {}",
        summary(&spans)
    );
    assert!(
        spans.iter().all(|s| s.service == "ledger-hub"),
        "{}",
        summary(&spans)
    );
    assert!(
        spans.iter().all(|s| s.trace_id == handled.trace_id),
        "{}",
        summary(&spans)
    );
}
