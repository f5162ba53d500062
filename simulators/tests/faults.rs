//! Fault injection and the simulators' life cycle over real HTTP: errors, latency and held calls
//! on `/api/` only, the `/sim/faults` control, a taken port, and a clean stop.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::Sims;
use serde_json::json;
use simulators::{BindError, Ports, SimConfig, SimKind};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn error_rate_fails_the_api_but_not_sim() {
    let sims = Sims::all().await;
    let (status, faults) = sims
        .put_faults(SimKind::Mts, &json!({"error_rate": 1.0}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(faults["error_rate"], 1.0);
    assert_eq!(faults["latency_ms"], 0);

    for _ in 0..5 {
        let (status, body) = sims
            .get(SimKind::Mts, "api/v1/subscribers/%2B375331234567")
            .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["error"], "unavailable");
    }
    let (status, body) = sims
        .post(
            SimKind::Mts,
            "api/v1/messages",
            None,
            &json!({"sender": "E-SERVICES", "to": "+375331234567", "text": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");

    let (status, body) = sims.get(SimKind::Mts, "sim/health").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"status": "ok", "simulator": "mts"}));
    let (_, faults) = sims.get(SimKind::Mts, "sim/faults").await;
    assert_eq!(faults["error_rate"], 1.0);

    // The other simulators are not affected.
    let (status, _) = sims
        .get(SimKind::A1, "api/v1/subscribers/%2B375441234567")
        .await;
    assert_eq!(status, StatusCode::OK);

    let response = sims
        .client
        .delete(sims.url(SimKind::Mts, "sim/faults"))
        .send()
        .await
        .expect("an answer");
    assert!(response.status().is_success());
    let (status, _) = sims
        .get(SimKind::Mts, "api/v1/subscribers/%2B375331234567")
        .await;
    assert_eq!(status, StatusCode::OK);
    sims.stop().await;
}

#[tokio::test]
async fn a_failed_call_has_no_effect_and_its_key_stays_usable() {
    let sims = Sims::all().await;
    sims.put_faults(SimKind::A1, &json!({"error_rate": 1.0}))
        .await;
    let body = json!({"sender": "E-SERVICES", "to": "+375441234567", "text": "Код: 1"});
    let key = Some("9d7e0a52-2222-4222-8222-222222222222");
    let (status, _) = sims.post(SimKind::A1, "api/v1/messages", key, &body).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    sims.put_faults(SimKind::A1, &json!({"error_rate": 0.0}))
        .await;
    let (status, body) = sims.post(SimKind::A1, "api/v1/messages", key, &body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    sims.stop().await;
}

#[tokio::test]
async fn latency_delays_the_api_only() {
    let sims = Sims::all().await;
    let (status, _) = sims
        .put_faults(SimKind::Life, &json!({"latency_ms": 400}))
        .await;
    assert_eq!(status, StatusCode::OK);

    let started = Instant::now();
    let (status, _) = sims
        .get(SimKind::Life, "api/v1/subscribers/%2B375251234567")
        .await;
    let api = started.elapsed();
    assert_eq!(status, StatusCode::OK);
    assert!(
        api >= Duration::from_millis(400),
        "the API answered in {api:?}"
    );

    let started = Instant::now();
    let (status, _) = sims.get(SimKind::Life, "sim/health").await;
    let sim = started.elapsed();
    assert_eq!(status, StatusCode::OK);
    assert!(
        sim < Duration::from_millis(400),
        "/sim/ answered in {sim:?}"
    );
    sims.stop().await;
}

#[tokio::test]
async fn a_held_call_times_the_client_out_and_does_not_block_the_stop() {
    let sims = Sims::all().await;
    sims.put_faults(SimKind::Mvd, &json!({"timeout_rate": 1.0}))
        .await;
    let started = Instant::now();
    let result = sims
        .client
        .post(sims.url(SimKind::Mvd, "api/v1/reconciliations"))
        .timeout(Duration::from_millis(300))
        .json(&json!({}))
        .send()
        .await;
    let error = result.expect_err("the call is held past the client's timeout");
    assert!(error.is_timeout(), "{error}");
    assert!(started.elapsed() >= Duration::from_millis(300));

    // A call still held when the simulators stop does not hold up the stop: it is answered
    // 503 (or its connection closed) at once instead of after 60 s.
    let mvd = sims.running.mvd.as_ref().expect("mvd");
    let addr = format!(
        "{}:{}",
        mvd.host_str().expect("a host"),
        mvd.port().expect("a port")
    );
    let mut held = std::net::TcpStream::connect(&addr).expect("a connection");
    let request = format!(
        "POST /api/v1/reconciliations HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}"
    );
    held.write_all(request.as_bytes())
        .expect("the request is sent");
    // Served after the held connection was accepted: the held request is in the server by now.
    let (status, _) = sims.get(SimKind::Mvd, "sim/health").await;
    assert_eq!(status, StatusCode::OK);
    let started = Instant::now();
    sims.stop().await;
    assert!(started.elapsed() < Duration::from_secs(10));
    held.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("a read timeout");
    let mut answer = String::new();
    let _ = held.read_to_string(&mut answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 503"),
        "{answer}"
    );
}

#[tokio::test]
async fn bad_fault_settings_are_400() {
    let sims = Sims::all().await;
    for bad in [
        json!({"error_rate": 2.0}),
        json!({"timeout_rate": -0.1}),
        json!({"latncy_ms": 5}),
    ] {
        let (status, body) = sims.put_faults(SimKind::A1, &bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(body["error"], "invalid_request");
    }
    let (_, faults) = sims.get(SimKind::A1, "sim/faults").await;
    assert_eq!(faults["error_rate"], 0.0);
    sims.stop().await;
}

#[tokio::test]
async fn a_taken_port_names_the_simulator_and_the_way_out() {
    let first = Sims::start(SimConfig {
        only: Some(vec![SimKind::A1]),
        ..SimConfig::ephemeral()
    })
    .await;
    let taken = first
        .running
        .a1
        .as_ref()
        .expect("a1")
        .port()
        .expect("a port");
    let result = simulators::start(
        SimConfig {
            only: Some(vec![SimKind::Mvd, SimKind::A1]),
            ports: Ports {
                a1: taken,
                ..Ports::ANY
            },
            ..SimConfig::ephemeral()
        },
        CancellationToken::new(),
    )
    .await;
    let error = result.expect_err("the port is taken");
    let bind = error
        .downcast_ref::<BindError>()
        .expect("a BindError inside");
    assert_eq!(bind.kind, SimKind::A1);
    let message = error.to_string();
    assert!(message.contains("a1"), "{message}");
    assert!(message.contains(&format!("127.0.0.1:{taken}")), "{message}");
    assert!(message.contains("--a1-port 0"), "{message}");
    first.stop().await;
}

#[tokio::test]
async fn only_starts_the_chosen_simulators() {
    let sims = Sims::start(SimConfig {
        only: Some(vec![SimKind::Life]),
        ..SimConfig::ephemeral()
    })
    .await;
    assert!(sims.running.mvd.is_none());
    assert!(sims.running.a1.is_none());
    assert!(sims.running.mts.is_none());
    let url = sims.running.operator_url(SimKind::Life).expect("life");
    assert!(url.as_str().ends_with('/'));
    let (_, body) = sims.get(SimKind::Life, "sim/health").await;
    assert_eq!(body["simulator"], "life");
    sims.stop().await;
}
