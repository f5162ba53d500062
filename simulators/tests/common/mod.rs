//! Helpers shared by the simulators' HTTP tests: start simulators on free ports, a client, a
//! delivery-report receiver, and polling a condition with a deadline (never a bare sleep).
#![allow(dead_code)]

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;
use simulators::{RunningSims, SimConfig, SimKind};
use tokio_util::sync::CancellationToken;
use url::Url;

/// Simulators running for one test; stopped (and waited for) by [`Sims::stop`].
pub(crate) struct Sims {
    pub(crate) running: RunningSims,
    pub(crate) shutdown: CancellationToken,
    pub(crate) client: reqwest::Client,
}

impl Sims {
    pub(crate) async fn start(config: SimConfig) -> Sims {
        let shutdown = CancellationToken::new();
        let running = simulators::start(config, shutdown.clone())
            .await
            .expect("the simulators start");
        Sims {
            running,
            shutdown,
            client: client(),
        }
    }

    /// Every simulator on free ports, with a small population.
    pub(crate) async fn all() -> Sims {
        Sims::start(SimConfig {
            population: 1000,
            ..SimConfig::ephemeral()
        })
        .await
    }

    pub(crate) fn url(&self, kind: SimKind, path: &str) -> Url {
        self.running
            .operator_url(kind)
            .expect("the simulator runs")
            .join(path)
            .expect("a valid path")
    }

    pub(crate) async fn get(&self, kind: SimKind, path: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .get(self.url(kind, path))
            .send()
            .await
            .expect("the GET is answered");
        json_of(response).await
    }

    pub(crate) async fn post(
        &self,
        kind: SimKind,
        path: &str,
        key: Option<&str>,
        body: &Value,
    ) -> (StatusCode, Value) {
        let mut request = self.client.post(self.url(kind, path)).json(body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        json_of(request.send().await.expect("the POST is answered")).await
    }

    pub(crate) async fn put_faults(&self, kind: SimKind, faults: &Value) -> (StatusCode, Value) {
        let response = self
            .client
            .put(self.url(kind, "sim/faults"))
            .json(faults)
            .send()
            .await
            .expect("the PUT is answered");
        json_of(response).await
    }

    /// Cancels the shutdown token and waits (at most 10 s) for everything to stop.
    pub(crate) async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.running.stopped())
            .await
            .expect("the simulators stop within 10 s");
    }
}

pub(crate) fn client() -> reqwest::Client {
    simulators::tls::install_default_provider();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTP client")
}

pub(crate) async fn json_of(response: reqwest::Response) -> (StatusCode, Value) {
    let status = StatusCode::from_u16(response.status().as_u16()).expect("a status");
    let body = response.json().await.expect("a JSON body");
    (status, body)
}

/// Polls `probe` every 20 ms until it gives `Some`, for at most 10 s.
pub(crate) async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        // The poll interval of this wait on a condition with a deadline.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A tiny HTTP server that records the delivery reports POSTed to it, with their exact body
/// bytes and `X-Sms-Signature` header.
pub(crate) struct Receiver {
    pub(crate) url: String,
    reports: Arc<Mutex<Vec<Value>>>,
    signed: Arc<Mutex<Vec<SignedReport>>>,
    shutdown: CancellationToken,
}

/// A report as received: its body bytes and its signature header, if any.
#[derive(Debug, Clone)]
pub(crate) struct SignedReport {
    pub(crate) body: Vec<u8>,
    pub(crate) signature: Option<String>,
}

#[derive(Clone)]
struct ReceiverState {
    reports: Arc<Mutex<Vec<Value>>>,
    signed: Arc<Mutex<Vec<SignedReport>>>,
    failures_left: Arc<AtomicU32>,
}

impl Receiver {
    /// Starts a receiver on a free port that answers 500 to its first `fail_first` reports.
    pub(crate) async fn start(fail_first: u32) -> Receiver {
        let reports = Arc::new(Mutex::new(Vec::new()));
        let signed = Arc::new(Mutex::new(Vec::new()));
        let state = ReceiverState {
            reports: reports.clone(),
            signed: signed.clone(),
            failures_left: Arc::new(AtomicU32::new(fail_first)),
        };
        let app = axum::Router::new()
            .route("/callbacks/sms", post(record))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the receiver binds");
        let addr = listener.local_addr().expect("an address");
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
                .expect("the receiver serves");
        });
        Receiver {
            url: format!("http://{addr}/callbacks/sms"),
            reports,
            signed,
            shutdown,
        }
    }

    /// The reports received so far as they came: body bytes and signature.
    pub(crate) fn signed(&self) -> Vec<SignedReport> {
        self.signed.lock().expect("the lock").clone()
    }

    /// The reports received so far, in arrival order.
    pub(crate) fn reports(&self) -> Vec<Value> {
        self.reports.lock().expect("the lock").clone()
    }

    /// Waits until at least `n` reports arrived and returns them.
    pub(crate) async fn wait_for(&self, n: usize) -> Vec<Value> {
        eventually(&format!("{n} delivery report(s)"), || async {
            let reports = self.reports();
            (reports.len() >= n).then_some(reports)
        })
        .await
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn record(State(state): State<ReceiverState>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let Ok(report) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let failing = state
        .failures_left
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if failing {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    state.reports.lock().expect("the lock").push(report);
    state.signed.lock().expect("the lock").push(SignedReport {
        body: body.to_vec(),
        signature: headers
            .get("x-sms-signature")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    });
    StatusCode::NO_CONTENT
}
