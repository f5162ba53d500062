//! The short chaos run CI makes: `hub chaos` as users run it, for under a minute of load with
//! every kind of fault (hub processes killed, the broker and PostgreSQL restarted, simulators
//! misbehaving), with three hostile messages carrying secrets. It must inject each kind, finish
//! every journey, dead-letter the hostile messages with their reasons, and break no invariant.

use std::process::Command;

#[test]
fn a_short_chaos_run_injects_every_fault_and_breaks_no_invariant() {
    let out = Command::new(env!("CARGO_BIN_EXE_hub"))
        .args([
            "chaos",
            "--seed",
            "3",
            "--duration",
            "45s",
            "--concurrency",
            "6",
            "--fault-every",
            "5s",
            "--settle-timeout",
            "3m",
            "--json",
        ])
        .env("RUST_LOG", "warn")
        .output()
        .expect("the hub binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}); stderr:\n{stderr}"));
    assert!(
        out.status.success(),
        "hub chaos found a violation or failed:\n{report:#}\n{stderr}"
    );

    for kind in ["kill_hub", "restart_broker", "restart_postgres", "sim"] {
        let applied = report["faults"]
            .as_array()
            .expect("faults")
            .iter()
            .filter(|f| f["fault"] == kind && f["applied"] == true)
            .count();
        assert!(applied > 0, "no {kind} fault was injected: {report:#}");
    }
    assert!(
        report["journeys_done"].as_u64().unwrap_or(0) > 0,
        "{report:#}"
    );
    assert_eq!(report["journeys_failed"], 0, "{report:#}");
    assert_eq!(report["sms"], "smpp", "SMPP is the default: {report:#}");

    let checks = report["checks"].as_array().expect("checks");
    let count = |name: &str| {
        checks
            .iter()
            .find(|c| c["name"] == name)
            .and_then(|c| c["count"].as_u64())
            .unwrap_or_else(|| panic!("no check {name}: {report:#}"))
    };
    // The checker read what it says it checked.
    for read in [
        "sagas ended",
        "SMS received",
        "ERIP invoices",
        "accounts",
        "outbox rows",
        "hub log lines read",
        "table rows read",
        "codes and passwords looked for",
    ] {
        assert!(count(read) > 0, "{read} is 0: {report:#}");
    }
    assert_eq!(
        count("hostile messages dead-lettered with their reason"),
        3,
        "{report:#}"
    );
    assert_eq!(
        count("sagas ended"),
        report["journeys_done"].as_u64().unwrap_or(0),
        "one saga per journey: {report:#}"
    );
    for c in checks.iter().filter(|c| c["invariant"] == true) {
        assert_eq!(c["count"], 0, "invariant broken: {c:#}");
    }
}
