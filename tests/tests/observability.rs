//! Observability end to end: `/metrics`, `/healthz` and `/readyz` on the hub's internal
//! listener (`HUB_OPS_ADDR`) and not on the callbacks' port, and one W3C trace from the portal's message through the saga, the adapters, the SMS
//! gateway and its delivery report, against the real RabbitMQ and PostgreSQL.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use contracts::Failure;
use contracts::issuance::{ApplyForIdentifier, IdentifierIssued, PhoneCodeSent};
use contracts::sms::DeliveryReported;
use contracts::{Message, MessageType, Metadata, QueueSpec};
use e2e::portal::{Portal, WAIT, code_in, phone};
use e2e::{TestEnv, wait_until};
use futures_util::future::BoxFuture;
use hub_runtime::app::{Components, Registration};
use hub_runtime::broker::{Envelope, Handler, Incoming};
use hub_runtime::health::Readiness;
use hub_runtime::trace::{TraceContext, trace_id_of};
use serde::{Deserialize, Serialize};
use simulators::SimKind;
use tokio_util::sync::CancellationToken;

/// The trace the portal's application starts (the W3C spec's example).
const PORTAL_TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const PORTAL_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PORTAL_SPAN: &str = "00f067aa0ba902b7";

/// The value of the series `series` (name and labels exactly as exposed), if exposed.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?;
        rest.strip_prefix(' ')?.trim().parse().ok()
    })
}

async fn get(url: String) -> (u16, String, String) {
    let r = reqwest::get(&url).await.expect("the hub answers HTTP");
    let status = r.status().as_u16();
    let content_type = r
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, content_type, r.text().await.expect("a body"))
}

fn parent_of(traceparent: &str) -> String {
    traceparent.split('-').nth(2).unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuance_is_one_trace_and_shows_in_the_metrics() {
    let mut portal = Portal::start().await;
    let persons = portal.good_persons().await;
    let person = &persons[0];
    let (number, phone) = ("OBS-1", phone(71));
    let base = format!("http://{}", portal.integrations.ops_addr);

    // The desk's application arrives with a trace of its own; a copy with the same id is a
    // duplicate.
    let application = person.application(number, &phone);
    let mut metadata = Metadata::new(ApplyForIdentifier::TYPE.to_string(), "desk");
    metadata.traceparent = Some(PORTAL_TRACEPARENT.to_owned());
    portal.env.send_with(&application, metadata.clone()).await;
    portal.env.send_with(&application, metadata).await;

    // The hub's answer to the desk continues that trace, one hop further.
    let sent: PhoneCodeSent = portal.event(number).await;
    assert_eq!(sent.attempts_left, 3);
    let code = code_in(&portal.nth_text(&phone, 1).await);
    // The code comes back without a trace: the hub starts one at its edge.
    portal.confirm(number, &code).await;
    let _: IdentifierIssued = portal.event(number).await;
    portal.nth_text(&phone, 2).await;

    // Every outgoing message of the first trace carries its id, each hop a parent of its own.
    let rows: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT metadata->>'message_type', metadata->>'traceparent' FROM outbox")
            .fetch_all(&portal.env.pool)
            .await
            .expect("outbox rows");
    let mut traces: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for (message_type, traceparent) in &rows {
        let traceparent = traceparent
            .as_deref()
            .unwrap_or_else(|| panic!("{message_type} went out without a traceparent"));
        let trace = trace_id_of(traceparent)
            .unwrap_or_else(|| panic!("{message_type} has an invalid traceparent {traceparent}"));
        traces
            .entry(trace)
            .or_default()
            .push((message_type.clone(), parent_of(traceparent)));
    }
    let first = traces
        .get(PORTAL_TRACE)
        .expect("messages in the portal's trace");
    let types: BTreeSet<&str> = first.iter().map(|(t, _)| t.as_str()).collect();
    for wanted in [
        PhoneCodeSent::TYPE.to_string(),
        "registry.reserve.v1".to_owned(),
        "mvd.reconcile.v1".to_owned(),
        "sms.send.v1".to_owned(),
    ] {
        assert!(
            types.contains(wanted.as_str()),
            "{wanted} is not in the portal's trace: {types:?}"
        );
    }
    let parents: BTreeSet<&str> = first.iter().map(|(_, p)| p.as_str()).collect();
    assert!(
        parents.len() >= 4,
        "each hop is a span of its own: {parents:?}"
    );
    assert!(
        !parents.contains(PORTAL_SPAN),
        "the hub's messages name the hub's span, not the desk's"
    );
    // The SMS gateway's delivery report came back to the callback with the trace, and the
    // message the callback made continues it.
    assert!(
        types.contains(DeliveryReported::TYPE.to_string().as_str()),
        "the delivery report joined the portal's trace: {types:?}"
    );
    // The confirmation started a second trace, which the notice and the password SMS follow.
    assert_eq!(
        traces.len(),
        2,
        "one trace per message from outside: {traces:?}"
    );

    // The SMS gateway was called with the trace: the code SMS in the first, the password in
    // the second.
    let sms_ids: Vec<String> = sqlx::query_scalar("SELECT provider_message_id FROM sms_messages")
        .fetch_all(&portal.env.pool)
        .await
        .expect("the SMS sent");
    assert_eq!(sms_ids.len(), 2);
    let a1 = portal.sims.operator_url(SimKind::A1).expect("A1").clone();
    let mut gateway_traces = BTreeSet::new();
    for id in &sms_ids {
        let record: serde_json::Value =
            reqwest::get(a1.join(&format!("sim/messages/{id}")).expect("URL"))
                .await
                .expect("the A1 simulator answers")
                .json()
                .await
                .expect("JSON");
        let traceparent = record["traceparent"]
            .as_str()
            .unwrap_or_else(|| panic!("SMS {id} was sent without a traceparent: {record}"));
        gateway_traces.insert(trace_id_of(traceparent).expect("a valid traceparent"));
    }
    assert_eq!(
        gateway_traces,
        traces.keys().cloned().collect::<BTreeSet<_>>(),
        "each SMS carries the trace of the message that asked for it"
    );

    // The metrics show the journey.
    let (status, content_type, text) = get(format!("{base}/metrics")).await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("application/openmetrics-text"));
    let topology = portal.env.topology(vec![]);
    let queue = topology.work_queue(hub_portal::sagas::issuance::QUEUE);
    let apply = ApplyForIdentifier::TYPE.to_string();
    let series = |s: &str| value(&text, s).unwrap_or_else(|| panic!("{s} missing:\n{text}"));
    assert_eq!(
        series(&format!(
            r#"hub_messages_in_total{{queue="{queue}",type="{apply}",outcome="ok"}}"#
        )),
        1.0
    );
    assert_eq!(
        series(&format!(
            r#"hub_messages_in_total{{queue="{queue}",type="{apply}",outcome="duplicate"}}"#
        )),
        1.0
    );
    assert!(
        series(&format!(
            r#"hub_handler_duration_seconds_count{{queue="{queue}"}}"#
        )) >= 2.0
    );
    // An event for the desk goes straight to the desk's own queue (the default exchange).
    let code_sent = PhoneCodeSent::TYPE.to_string();
    assert_eq!(
        series(&format!(
            r#"hub_messages_out_total{{exchange="(default)",type="{code_sent}"}}"#
        )),
        1.0
    );
    assert!(series(r#"hub_saga_duration_seconds_count{saga_type="issuance"}"#) >= 1.0);
    assert_eq!(
        series(r#"hub_sagas{saga_type="issuance",state="issued"}"#),
        1.0
    );
    assert!(
        series(r#"hub_external_call_duration_seconds_count{system="mvd",operation="reconcile"}"#)
            >= 1.0
    );
    assert!(
        series(r#"hub_external_call_duration_seconds_count{system="sms",operation="send"}"#) >= 2.0
    );
    assert!(series("hub_relay_batch_duration_seconds_count") >= 1.0);
    assert_eq!(series("hub_broker_connected"), 1.0);
    assert!(series("hub_outbox_lag_seconds") >= 0.0);
    // No personal data in the labels.
    let digits = phone.trim_start_matches('+');
    for personal in [
        digits,
        person.identification_number.as_str(),
        person.surname.as_str(),
    ] {
        assert!(!text.contains(personal), "{personal} is in /metrics");
    }

    // Alive and ready.
    let (status, _, body) = get(format!("{base}/healthz")).await;
    assert_eq!(status, 200, "{body}");
    let (status, content_type, body) = get(format!("{base}/readyz")).await;
    assert_eq!(status, 200, "{body}");
    assert!(content_type.starts_with("application/json"));
    let ready: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(ready["status"], "ready");
    for check in ["broker", "database", "outbox"] {
        assert_eq!(ready["checks"][check]["ok"], true, "{body}");
    }
    portal.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics_answer_on_the_internal_listener_and_not_on_the_callbacks_port() {
    let mut portal = Portal::start().await;
    let ops = format!("http://{}", portal.integrations.ops_addr);
    let callbacks = format!("http://{}", portal.integrations.http_addr);
    assert_ne!(ops, callbacks, "two listeners");
    let client = reqwest::Client::new();
    // Both listeners start with the hub; ready once the hub has connected.
    wait_until(WAIT, "the internal listener ready", || async {
        let r = client.get(format!("{ops}/readyz")).send().await.ok()?;
        r.status().is_success().then_some(())
    })
    .await;
    wait_until(WAIT, "the callbacks' listener", || async {
        client.get(&callbacks).send().await.ok().map(|_| ())
    })
    .await;

    // The external systems' port knows nothing of the hub's insides.
    for path in ["/metrics", "/readyz", "/healthz", "/health"] {
        let (status, _, body) = get(format!("{callbacks}{path}")).await;
        assert_eq!(status, 404, "{path} on the callbacks' port: {body}");
        assert!(!body.contains("hub_"), "{path}: {body}");
    }
    // The internal one serves them, and no callback.
    let (status, content_type, text) = get(format!("{ops}/metrics")).await;
    assert_eq!(status, 200, "{text}");
    assert!(content_type.starts_with("application/openmetrics-text"));
    assert!(value(&text, "hub_broker_connected").is_some(), "{text}");
    for path in ["/readyz", "/healthz", "/health"] {
        let (status, _, body) = get(format!("{ops}{path}")).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    let status = client
        .post(format!("{ops}/callbacks/erip"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("the internal listener answers")
        .status();
    assert_eq!(status, reqwest::StatusCode::NOT_FOUND, "no callback there");
    portal.stop().await;
}

/// Starts the internal listener (health and metrics) alone, with this readiness probe, on a
/// free port.
async fn listener(env: &TestEnv, readiness: Readiness, shutdown: &CancellationToken) -> String {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let (pool, token) = (env.pool.clone(), shutdown.clone());
    tokio::spawn(async move { hub_portal::http::serve_ops(addr, pool, readiness, token).await });
    let base = format!("http://{addr}");
    wait_until(WAIT, "the listener", || async {
        reqwest::get(format!("{base}/healthz"))
            .await
            .ok()
            .map(|_| ())
    })
    .await;
    base
}

async fn not_ready(base: &str) -> serde_json::Value {
    let (status, _, body) = get(format!("{base}/readyz")).await;
    assert_eq!(status, 503, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(report["status"], "not_ready");
    report
}

#[tokio::test]
async fn readyz_names_a_database_that_does_not_answer_and_an_outbox_that_lags() {
    let env = TestEnv::new().await;
    let shutdown = CancellationToken::new();

    // A database nobody listens for.
    let gone = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_secs(1))
        .connect_lazy("postgres://postgres@127.0.0.1:1/nowhere")
        .expect("a lazy pool");
    let readiness = Readiness::new(env.broker.clone(), gone, Duration::from_secs(30));
    let base = listener(&env, readiness, &shutdown).await;
    let report = not_ready(&base).await;
    let failing: Vec<&str> = report["failing"]
        .as_array()
        .expect("failing")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(failing.contains(&"database"), "{report}");
    assert_eq!(report["checks"]["broker"]["ok"], true, "{report}");

    // An outbox row nobody relays, against a bound of zero.
    let readiness = Readiness::new(env.broker.clone(), env.pool.clone(), Duration::ZERO);
    let base = listener(&env, readiness, &shutdown).await;
    let (status, _, body) = get(format!("{base}/readyz")).await;
    assert_eq!(status, 200, "an empty outbox does not lag: {body}");
    let mut conn = env.pool.acquire().await.expect("a connection");
    hub_runtime::store::outbox::insert(
        &mut conn,
        &[Envelope {
            exchange: String::new(),
            routing_key: "nowhere".into(),
            metadata: Metadata::new("test.pending.v1", "test"),
            body: b"{}".to_vec(),
        }],
    )
    .await
    .expect("an outbox row");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let report = not_ready(&base).await;
    assert_eq!(report["failing"], serde_json::json!(["outbox"]), "{report}");
    assert!(
        report["checks"]["outbox"]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("HUB_READY_MAX_OUTBOX_LAG")),
        "{report}"
    );
    // The lag shows in the metrics too.
    let (_, _, text) = get(format!("{base}/metrics")).await;
    assert_eq!(value(&text, "hub_outbox_unsent"), Some(1.0), "{text}");
    assert!(value(&text, "hub_outbox_lag_seconds").is_some_and(|lag| lag > 0.0));
    shutdown.cancel();
}

/// A message nobody can handle.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Doomed {
    n: u32,
}

impl Message for Doomed {
    const TYPE: MessageType = MessageType::new("test.doomed", 1);
}

#[derive(Debug)]
struct Refuses;

impl Handler for Refuses {
    fn name(&self) -> &str {
        "refuses"
    }

    fn handle<'a>(&'a self, _message: &'a Incoming) -> BoxFuture<'a, Result<(), Failure>> {
        Box::pin(async { Err(Failure::permanent("refused on purpose")) })
    }
}

#[tokio::test]
async fn a_dead_letter_keeps_its_traceparent_and_is_counted_by_cause() {
    const QUEUE: &str = "doomed";
    let env = TestEnv::new().await;
    let spec = QueueSpec::new(QUEUE, [Doomed::TYPE.to_string()]);
    env.declare(vec![spec.clone()]).await;
    let hub = env.spawn_hub(
        Components::ALL,
        vec![Registration {
            queue: spec,
            factory: Box::new(|_| Arc::new(Refuses)),
        }],
    );
    let traceparent = TraceContext::new_root().to_string();
    let mut metadata = Metadata::new(Doomed::TYPE.to_string(), "test");
    metadata.traceparent = Some(traceparent.clone());
    env.send_with(&Doomed { n: 1 }, metadata).await;
    let letters = env.dead_letters(QUEUE, 1, WAIT).await;
    let kept = letters[0].properties.to_string();
    assert!(
        kept.contains(&traceparent),
        "the dead letter keeps the traceparent it arrived with (a replay sends it again): {kept}"
    );
    let queue = env.topology(vec![]).work_queue(QUEUE);
    let text = hub_runtime::metrics::metrics()
        .encode(&hub_runtime::metrics::Snapshot::default().registry());
    assert_eq!(
        value(
            &text,
            &format!(r#"hub_dead_letters_total{{queue="{queue}",kind="permanent"}}"#)
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            &format!(
                r#"hub_messages_in_total{{queue="{queue}",type="test.doomed.v1",outcome="dead_lettered"}}"#
            )
        ),
        Some(1.0)
    );
    hub.stop().await;
}
