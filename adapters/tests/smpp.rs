//! The SMPP client against the operators' SMS centre simulator, over real TCP: segments
//! reassemble to the original Cyrillic text, a window of 10 with throttling answers delivers
//! every message exactly once (by the phone's inbox), receipts that come before their answer,
//! twice or never, a connection dropped mid-window, refused binds and a clean drain.
//!
//! No bare sleeps: every wait is on a condition with a deadline. The tests run on tokio's
//! current-thread runtime, so the simulator's delivery of a message and its receipt happen
//! without the test in between.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use adapters::FailureKind;
use adapters::smpp::{LongText, SmppClient, SmppConfig};
use adapters::sms::DeliveryReport;
use contracts::person::{Msisdn, Operator};
use serde_json::{Value, json};
use simulators::{RunningSims, SimConfig, SimKind};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

const PHONE: &str = "+375291234567";

/// The A1 simulator (HTTP and SMS centre) on free ports.
struct Sim {
    running: RunningSims,
    shutdown: CancellationToken,
    http: reqwest::Client,
}

impl Sim {
    async fn start() -> Sim {
        let shutdown = CancellationToken::new();
        let config = SimConfig {
            only: Some(vec![SimKind::A1]),
            ..SimConfig::ephemeral()
        };
        let running = simulators::start(config, shutdown.clone())
            .await
            .expect("the simulator starts");
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("a client");
        Sim {
            running,
            shutdown,
            http,
        }
    }

    fn url(&self, path: &str) -> url::Url {
        self.running
            .operator_url(SimKind::A1)
            .expect("A1 runs")
            .join(path)
            .expect("a path")
    }

    /// A client of A1's SMS centre with short timeouts.
    fn config(&self) -> SmppConfig {
        let addr = self
            .running
            .smpp_addr(SimKind::A1)
            .expect("A1's SMS centre");
        let mut config = SmppConfig::new(
            Operator::A1,
            addr.ip().to_string(),
            addr.port(),
            "hub",
            "a1-dev",
        );
        config.response_timeout = Duration::from_secs(2);
        config.reconnect_min = Duration::from_millis(20);
        config.reconnect_max = Duration::from_millis(200);
        config.throughput = 1000;
        config
    }

    async fn faults(&self, patch: Value) -> Value {
        let response = self
            .http
            .put(self.url("sim/smpp/faults"))
            .json(&patch)
            .send()
            .await
            .expect("answered");
        assert!(response.status().is_success(), "faults {patch} refused");
        response.json().await.expect("JSON")
    }

    async fn inbox(&self) -> Vec<String> {
        let body: Value = self
            .http
            .get(self.url("sim/inbox/%2B375291234567"))
            .send()
            .await
            .expect("answered")
            .json()
            .await
            .expect("JSON");
        body["messages"]
            .as_array()
            .map(|m| {
                m.iter()
                    .filter_map(|e| e["text"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    async fn duplicates(&self) -> Vec<Value> {
        let body: Value = self
            .http
            .get(self.url("sim/smpp/duplicates"))
            .send()
            .await
            .expect("answered")
            .json()
            .await
            .expect("JSON");
        body["duplicates"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until the phone shows `n` messages, and gives them.
    async fn inbox_of(&self, n: usize) -> Vec<String> {
        eventually(&format!("{n} messages on the phone"), || async {
            let inbox = self.inbox().await;
            (inbox.len() >= n).then_some(inbox)
        })
        .await
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.running.stopped().await;
    }
}

fn phone() -> Msisdn {
    Msisdn::parse(PHONE).expect("a number")
}

/// Polls `probe` until it gives a value, for at most 15 s.
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        // The poll interval of this wait on a condition with a deadline.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The next `n` reports, within a deadline.
async fn reports(rx: &mut UnboundedReceiver<DeliveryReport>, n: usize) -> Vec<DeliveryReport> {
    let mut got = Vec::new();
    while got.len() < n {
        let report = tokio::time::timeout(Duration::from_secs(15), rx.recv())
            .await
            .expect("a report in time")
            .expect("the client runs");
        got.push(report);
    }
    got
}

fn counts(texts: &[String]) -> HashMap<&str, usize> {
    let mut counts = HashMap::new();
    for text in texts {
        *counts.entry(text.as_str()).or_insert(0) += 1;
    }
    counts
}

const PASSWORD_SMS: &str = "Ваш временный пароль для входа на портал электронных услуг: Kx7-pQ2m. \
                            Смените его при первом входе.";

#[tokio::test]
async fn cyrillic_password_text_reassembles_in_the_inbox_from_segments_and_from_a_payload() {
    let sim = Sim::start().await;
    assert!(PASSWORD_SMS.chars().count() > 70, "two UCS-2 segments");
    let (client, mut rx) = SmppClient::start(sim.config());
    let sent = client.send(&phone(), PASSWORD_SMS).await.expect("sent");
    assert_eq!(sent.operator, Operator::A1);
    assert_eq!(sim.inbox_of(1).await, vec![PASSWORD_SMS.to_owned()]);
    let report = reports(&mut rx, 1).await.remove(0);
    assert_eq!(report.provider_message_id, sent.provider_message_id);
    assert!(report.delivered);
    assert_eq!(report.to, phone());

    let mut config = sim.config();
    config.long_text = LongText::Payload;
    let (payload, mut payload_rx) = SmppClient::start(config);
    let text = format!("{PASSWORD_SMS} (2)");
    payload.send(&phone(), &text).await.expect("sent");
    assert_eq!(sim.inbox_of(2).await[1], text);
    assert!(reports(&mut payload_rx, 1).await[0].delivered);
    client.drain(Duration::from_secs(2)).await;
    payload.drain(Duration::from_secs(2)).await;
    sim.stop().await;
}

#[tokio::test]
async fn a_window_of_10_with_throttling_answers_delivers_every_message_exactly_once() {
    let sim = Sim::start().await;
    let faults = sim
        .faults(json!({"throttle_rate": 0.3, "queue_full_rate": 0.1}))
        .await;
    assert_eq!(faults["throttle_rate"], 0.3);
    let mut config = sim.config();
    config.window = 10;
    // 0.4 of answers refused: 25 attempts all refused has odds of 1e-10.
    config.attempts = 25;
    let (client, mut rx) = SmppClient::start(config);
    let texts: Vec<String> = (0..30).map(|i| format!("Code {i:04}")).collect();
    let to = phone();
    let sends = texts.iter().map(|text| client.send(&to, text));
    let results = futures_util::future::join_all(sends).await;
    let ids: Vec<String> = results
        .into_iter()
        .map(|r| r.expect("every message is sent").provider_message_id)
        .collect();
    let inbox = sim.inbox_of(30).await;
    let counts = counts(&inbox);
    for text in &texts {
        assert_eq!(counts.get(text.as_str()), Some(&1), "{text} exactly once");
    }
    assert_eq!(inbox.len(), 30);
    assert!(sim.duplicates().await.is_empty());
    let mut reported: Vec<String> = reports(&mut rx, 30)
        .await
        .into_iter()
        .map(|r| r.provider_message_id)
        .collect();
    reported.sort();
    let mut ids = ids;
    ids.sort();
    assert_eq!(reported, ids, "one report per message");
    client.drain(Duration::from_secs(2)).await;
    sim.stop().await;
}

#[tokio::test]
async fn receipts_before_the_answer_twice_or_never_are_each_handled() {
    let sim = Sim::start().await;
    let (client, mut rx) = SmppClient::start(sim.config());

    // Before the answer: the receipt waits for the submit_sm_resp naming its id.
    sim.faults(json!({"receipt_first_rate": 1.0})).await;
    let early = client.send(&phone(), "early").await.expect("sent");
    let report = reports(&mut rx, 1).await.remove(0);
    assert_eq!(report.provider_message_id, early.provider_message_id);
    assert!(report.delivered);

    // Twice: one report per message.
    sim.faults(json!({"receipt_first_rate": 0.0, "duplicate_receipt_rate": 1.0}))
        .await;
    let mut ids = Vec::new();
    for text in ["twice 1", "twice 2", "twice 3"] {
        ids.push(
            client
                .send(&phone(), text)
                .await
                .expect("sent")
                .provider_message_id,
        );
    }
    let mut reported: Vec<String> = reports(&mut rx, 3)
        .await
        .into_iter()
        .map(|r| r.provider_message_id)
        .collect();
    reported.sort();
    ids.sort();
    assert_eq!(reported, ids);

    // Never: no report, nothing else disturbed.
    sim.faults(json!({"duplicate_receipt_rate": 0.0, "drop_receipt_rate": 1.0}))
        .await;
    client.send(&phone(), "never").await.expect("sent");
    sim.inbox_of(5).await;
    sim.faults(json!({"drop_receipt_rate": 0.0})).await;
    let last = client.send(&phone(), "last").await.expect("sent");
    // The last receipt comes after every copy of the earlier ones (one connection, in order).
    let report = reports(&mut rx, 1).await.remove(0);
    assert_eq!(
        report.provider_message_id, last.provider_message_id,
        "no duplicate or dropped message reported"
    );
    assert!(rx.try_recv().is_err(), "nothing more");
    client.drain(Duration::from_secs(2)).await;
    sim.stop().await;
}

#[tokio::test]
async fn a_connection_dropped_mid_window_loses_nothing_and_sends_nothing_twice() {
    let sim = Sim::start().await;
    let (client, mut rx) = SmppClient::start(sim.config());
    assert!(client.bound(Duration::from_secs(5)).await);
    // The 4th submit_sm closes the connection before it is taken; the rest of the window
    // (answered or not) is sent again after the reconnect.
    let faults = sim
        .faults(json!({"drop_connection_after": 4, "drop_accepted": false, "latency_ms": 20}))
        .await;
    assert_eq!(faults["drop_connection_after"], 4);
    let texts: Vec<String> = (0..10).map(|i| format!("Window {i}")).collect();
    let to = phone();
    let results = futures_util::future::join_all(texts.iter().map(|t| client.send(&to, t))).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let after: Value = sim.faults(json!({})).await;
    assert_eq!(
        after["drop_connection_after"],
        Value::Null,
        "the drop happened"
    );
    let inbox = sim.inbox_of(10).await;
    let counts = counts(&inbox);
    for text in &texts {
        assert_eq!(counts.get(text.as_str()), Some(&1), "{text} exactly once");
    }
    assert!(sim.duplicates().await.is_empty());
    assert!(reports(&mut rx, 10).await.iter().all(|r| r.delivered));
    client.drain(Duration::from_secs(2)).await;
    sim.stop().await;
}

#[tokio::test]
async fn a_submit_taken_before_the_drop_is_sent_again_and_the_phone_shows_it_twice() {
    // What SMPP promises when the answer is lost with the connection: at least once. The
    // client cannot know the message was taken; the simulator records the duplicate.
    let sim = Sim::start().await;
    let (client, _rx) = SmppClient::start(sim.config());
    assert!(client.bound(Duration::from_secs(5)).await);
    sim.faults(json!({"drop_connection_after": 1, "drop_accepted": true}))
        .await;
    client
        .send(&phone(), "Code 7777")
        .await
        .expect("sent after the reconnect");
    let inbox = sim.inbox_of(2).await;
    assert_eq!(inbox, vec!["Code 7777".to_owned(), "Code 7777".to_owned()]);
    let duplicates = sim.duplicates().await;
    assert_eq!(duplicates.len(), 1);
    assert_eq!(duplicates[0]["text"], "Code 7777");
    client.drain(Duration::from_secs(2)).await;
    sim.stop().await;
}

#[tokio::test]
async fn refused_binds_are_retried_and_a_drain_unbinds_cleanly() {
    let sim = Sim::start().await;
    sim.faults(json!({"refuse_binds": 3})).await;
    let (client, _rx) = SmppClient::start(sim.config());
    assert!(
        client.bound(Duration::from_secs(10)).await,
        "bound after three refusals"
    );
    let after = sim.faults(json!({})).await;
    assert_eq!(after["refuse_binds"], 0, "every refusal was used up");
    client
        .send(&phone(), "after the refusals")
        .await
        .expect("sent");
    // The SMS centre answers the unbind at once: the drain is done well before the answer
    // timeout (2 s) an unanswered unbind would wait.
    let started = Instant::now();
    client.drain(Duration::from_secs(2)).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let failure = client.send(&phone(), "late").await.expect_err("drained");
    assert_eq!(failure.kind, FailureKind::Transient);
    sim.stop().await;
}

#[tokio::test]
async fn an_enquire_link_left_unanswered_brings_a_reconnect() {
    let sim = Sim::start().await;
    let mut config = sim.config();
    config.enquire_link_every = Duration::from_millis(100);
    config.response_timeout = Duration::from_millis(400);
    let (client, _rx) = SmppClient::start(config);
    assert!(client.bound(Duration::from_secs(5)).await);
    assert_eq!(client.binds(), 1);
    // Answers now take longer than the client waits: the keep-alive finds the bind dead.
    sim.faults(json!({"latency_ms": 2000})).await;
    eventually("the bind given up", || async {
        (!client.is_bound()).then_some(())
    })
    .await;
    sim.faults(json!({"latency_ms": 0})).await;
    eventually("a new bind", || async {
        (client.binds() >= 2).then_some(())
    })
    .await;
    client
        .send(&phone(), "after the reconnect")
        .await
        .expect("sent");
    assert_eq!(
        sim.inbox_of(1).await,
        vec!["after the reconnect".to_owned()]
    );
    client.drain(Duration::from_secs(2)).await;
    sim.stop().await;
}

#[tokio::test]
async fn refusals_are_classified_and_name_no_number() {
    let sim = Sim::start().await;
    let (client, _rx) = SmppClient::start(sim.config());
    let cases = [
        (
            "+375290000000",
            FailureKind::Permanent,
            adapters::sms::NOT_OUR_SUBSCRIBER,
        ),
        (
            "+375291119999",
            FailureKind::Permanent,
            adapters::sms::SUBSCRIBER_BLOCKED,
        ),
    ];
    for (number, kind, reason) in cases {
        let to = Msisdn::parse(number).expect("a number");
        let failure = client.send(&to, "hi").await.expect_err("refused");
        assert_eq!((failure.kind, failure.reason.as_str()), (kind, reason));
    }
    sim.faults(json!({"system_error_rate": 1.0})).await;
    let failure = client.send(&phone(), "hi").await.expect_err("refused");
    assert_eq!(failure.kind, FailureKind::Transient);
    assert!(
        failure.reason.contains("ESME_RSYSERR"),
        "{}",
        failure.reason
    );
    assert!(!failure.reason.contains("291234567"));
    let empty = client.send(&phone(), " ").await.expect_err("empty");
    assert_eq!(empty.kind, FailureKind::InvalidInput);
    client.drain(Duration::from_secs(2)).await;
    sim.stop().await;
}

#[tokio::test]
async fn the_throughput_limit_spaces_the_submits() {
    let sim = Sim::start().await;
    let mut config = sim.config();
    config.throughput = 20;
    config.window = 10;
    let (client, _rx) = SmppClient::start(config);
    assert!(client.bound(Duration::from_secs(5)).await);
    let to = phone();
    let texts: Vec<String> = (0..10).map(|i| format!("Paced {i}")).collect();
    let started = Instant::now();
    let results = futures_util::future::join_all(texts.iter().map(|t| client.send(&to, t))).await;
    let elapsed = started.elapsed();
    assert!(results.iter().all(Result::is_ok));
    // 20 a second: the 10th submit_sm goes 9 gaps of 50 ms after the first.
    assert!(elapsed >= Duration::from_millis(450), "{elapsed:?}");
    client.drain(Duration::from_secs(2)).await;
    sim.stop().await;
}

#[tokio::test]
async fn a_phone_that_never_receives_is_reported_failed() {
    let sim = Sim::start().await;
    let (client, mut rx) = SmppClient::start(sim.config());
    let to = Msisdn::parse("+375291118888").expect("a number");
    let sent = client.send(&to, PASSWORD_SMS).await.expect("taken");
    let report = reports(&mut rx, 1).await.remove(0);
    assert_eq!(report.provider_message_id, sent.provider_message_id);
    assert!(!report.delivered, "UNDELIV");
    assert_eq!(report.to, to);
    client.drain(Duration::from_secs(2)).await;
    sim.stop().await;
}
