//! The README's main command, run as users run it: `hub demo` against the local RabbitMQ and
//! PostgreSQL, with every simulator. It must finish with every outcome as expected and leave
//! nothing behind.

use std::process::Command;

#[test]
fn the_demo_plays_every_journey_and_reports_them() {
    let out = Command::new(env!("CARGO_BIN_EXE_hub"))
        .args(["demo", "--applications", "18", "--json"])
        .env("RUST_LOG", "warn")
        .output()
        .expect("the hub binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "hub demo failed: {stderr}");
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("the report is JSON on stdout");
    assert_eq!(report["started"], 18);
    assert_eq!(report["issued"], 10);
    assert_eq!(report["first_logins"], 10);
    let rejected = report["rejected"]
        .as_object()
        .expect("rejections by reason");
    for reason in [
        "invalid_input",
        "consent_missing",
        "document_invalid",
        "already_assigned",
        "phone_bound",
        "phone_not_mobile",
        "mvd_mismatch",
        "phone_not_confirmed",
    ] {
        assert_eq!(
            rejected.get(reason),
            Some(&serde_json::json!(1)),
            "{reason}"
        );
    }
    // Each new holder applies for a procedure: the ten journeys once each; then two of them play
    // the person's side.
    assert_eq!(report["procedures_on_bus_skipped"], serde_json::Value::Null);
    assert_eq!(
        report["procedures"],
        serde_json::json!({
            "granted": 4,
            "refused": 1,
            "withdrawn": 1,
            "rejected: assurance_too_low": 1,
            "complaint dismissed": 1,
            "granted after a short payment completed": 1,
            "late payment due back (withdrawn)": 1,
            "information given, term moved by the working days waited, granted": 1,
            "overdue, inaction complaint upheld by the superior body": 1,
        })
    );
    // The person's side (issue 17): the lab moved the clock for both, and says so.
    let clock = report["clock"].as_array().expect("the clock's moves");
    assert_eq!(clock.len(), 2, "{clock:?}");
    assert!(
        clock.iter().all(|m| m
            .as_str()
            .is_some_and(|m| m.starts_with("the lab moves the clock: "))),
        "{clock:?}"
    );
    // Signed decisions (issue 17): FSZN's official signs; the cabinet shows the signer, and a
    // badly signed decision is refused back to FSZN.
    assert_eq!(
        report["signed_decisions"],
        serde_json::json!({
            "signed decision shown with its signer": 1,
            "badly signed decision refused (bad_signature)": 1,
        })
    );
    assert!(
        report["decision_signer"].is_string(),
        "{}",
        report["decision_signer"]
    );
    // And registers on the portal: by e-mail, by EDS, and one EDS revoked at the CA.
    assert_eq!(
        report["registrations"],
        serde_json::json!({
            "e-mail: activated, logged in (basic)": 5,
            "EDS: registered, logged in (high)": 4,
            "EDS: revoked certificate refused": 1,
        })
    );
    // The ways back into an account (issue 17): unblocked in the cabinet and at a desk, and a
    // resend refused once the holder has a static password.
    assert_eq!(
        report["accounts"],
        serde_json::json!({
            "unblocked in the cabinet (SMS code, new password)": 1,
            "unblocked at a desk (MVD check, new temporary password)": 1,
            "resend refused: use_recovery": 1,
        })
    );
    // The MVD outage: its commands dead-lettered, grouped, replayed by the operator's tools,
    // and the applications issued.
    let outage = &report["outage"];
    assert_eq!(outage["applications"], 2);
    assert_eq!(outage["dead_letters"], 2);
    assert_eq!(outage["replayed"], 2);
    assert_eq!(outage["issued_after_replay"], 2);
    assert_eq!(
        outage["groups"].as_array().map(Vec::len),
        Some(1),
        "{outage}"
    );
    assert_eq!(report["unexpected"], serde_json::json!([]));
    assert!(report["p99_ms"].as_u64() >= report["p50_ms"].as_u64());
}
