//! `hub bench` run as users run it, with a small load and two hub processes: it must measure
//! every saga type and the raw limits, make every figure of a row from the counts of one
//! interval (over the sagas started, the steps, the interval's seconds), count no effect twice,
//! and leave neither its queues nor its database behind. The machinery's figures against
//! independent counts of a saga of known shape: `tests/tests/bench_measure.rs`.

use std::process::Command;

fn amqp_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

fn total_seconds(report: &serde_json::Value) -> f64 {
    report["total_seconds"].as_f64().expect("total_seconds")
}

fn f(v: &serde_json::Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is a number: {v}"))
}

/// Every saga of the type came to its end, and each figure is its count over the sagas started,
/// the steps or the interval (to a rounding), the interval at least the longest saga.
fn figures_are_the_counts_of_one_interval(t: &serde_json::Value, total_seconds: f64) {
    let c = &t["counts"];
    assert_eq!(t["sagas"], 10, "{t}");
    assert_eq!(c["started"], 10, "{t}");
    assert_eq!(t["completed"], 10, "{t}");
    assert_eq!(t["failed"], 0, "{t}");
    assert_eq!(t["timed_out"], 0, "{t}");
    assert_eq!(c["quiescent"], true, "{t}");
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
    let (seconds, steps, messages) = (f(c, "seconds"), f(c, "steps"), f(c, "messages"));
    assert!(seconds > 0.0 && seconds <= total_seconds, "{t}");
    // Every saga's time is inside the interval (p99 of 10 is the longest).
    assert!(f(t, "saga_p99_ms") <= seconds * 1000.0, "{t}");
    assert!(steps >= 20.0 && messages >= 10.0, "{t}");
    assert!(close(f(t, "seconds"), seconds), "{t}");
    assert!(close(f(t, "steps_per_second"), steps / seconds), "{t}");
    assert!(close(f(t, "sagas_per_second"), 10.0 / seconds), "{t}");
    assert!(close(f(t, "messages_per_saga"), messages / 10.0), "{t}");
    assert!(close(f(t, "publishes_per_step"), messages / steps), "{t}");
    let transactions = f(c, "transactions");
    assert!(
        close(f(t, "db_transactions_per_saga"), transactions / 10.0),
        "{t}"
    );
    // The hub's transactions leave out the probe's and the idle polling after the end.
    let from = &c["transactions_from"];
    assert!(f(from, "probe") > 0.0, "{t}");
    assert!(
        transactions <= f(from, "xact_commit") - f(from, "probe") + 1e-9,
        "{t}"
    );
    assert!(
        transactions >= steps,
        "a step is one transaction at least: {t}"
    );
    if let Some(statements) = c["statements"].as_f64() {
        let per_step = f(t, "db_statements_per_step");
        assert!(close(per_step, statements / steps), "{t}");
    }
    let cpu = &c["cpu_seconds"];
    assert!(
        close(f(t, "hub_cpu_ms_per_saga"), f(cpu, "hub") * 100.0),
        "{t}"
    );
    for figure in [
        "of_raw_limit",
        "saga_p50_ms",
        "step_p50_ms",
        "step_p99_ms",
        "hub_cpu_ms_per_saga",
        "peak_memory_mib",
    ] {
        assert!(f(t, figure) > 0.0, "{figure} of {}: {t}", t["saga_type"]);
    }
}

fn postgres_url() -> String {
    let mut url = url::Url::parse(
        &std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/hub".into()),
    )
    .expect("DATABASE_URL parses");
    url.set_path("postgres");
    url.to_string()
}

#[test]
fn the_bench_measures_every_saga_type_and_leaves_nothing_behind() {
    let json_out = std::env::temp_dir().join(format!("hub-bench-{}.json", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_hub"))
        .args([
            "bench",
            "--sagas",
            "10",
            "--concurrency",
            "4",
            "--raw-operations",
            "500",
            "--processes",
            "2",
            "--json",
            "--json-out",
        ])
        .arg(&json_out)
        .env("RUST_LOG", "warn")
        .output()
        .expect("the hub binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "hub bench failed: {stderr}");
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("the report is JSON on stdout");
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json_out).expect("--json-out wrote the report"))
            .expect("the written report is JSON");
    let _ = std::fs::remove_file(&json_out);
    assert_eq!(written, report);

    for raw in ["broker_hops", "database_steps"] {
        assert!(
            report["raw"][raw]["per_second"].as_f64().unwrap_or(0.0) > 0.0,
            "raw {raw}: {report}"
        );
    }
    let runs = report["runs"]
        .as_array()
        .expect("one run per process count");
    assert_eq!(runs.len(), 1, "{report}");
    let run = &runs[0];
    assert_eq!(run["processes"], 2, "{run}");
    let hub_memory = run["hub_peak_memory_mib"]
        .as_array()
        .expect("per hub process");
    assert_eq!(hub_memory.len(), 2, "{run}");
    assert!(
        hub_memory.iter().all(|m| m.as_f64().unwrap_or(0.0) > 0.0),
        "{run}"
    );
    let effects = &run["effects"];
    // 10 issuances: a code and a password each, at least; 10 paid applications: one invoice each.
    assert!(effects["sms"].as_u64().unwrap_or(0) >= 20, "{effects}");
    assert_eq!(effects["invoices"], 10, "{effects}");
    assert!(
        effects["portal_events"].as_u64().unwrap_or(0) >= 30,
        "{effects}"
    );
    for twice in ["sms_duplicates", "invoice_duplicates", "portal_duplicates"] {
        assert_eq!(effects[twice], 0, "{twice}: {effects}");
    }
    let types = run["types"].as_array().expect("figures by type");
    let names: Vec<&str> = types
        .iter()
        .filter_map(|t| t["saga_type"].as_str())
        .collect();
    assert_eq!(names, ["issuance", "free", "paid"]);
    for t in types {
        figures_are_the_counts_of_one_interval(t, total_seconds(&report));
    }
    assert!(report["peak_memory_mib"].as_f64().unwrap_or(0.0) > 0.0);

    // Issuance hashes codes and passwords with argon2: its time is reported.
    assert!(
        types[0]["argon2_ms_per_saga"].as_f64().unwrap_or(0.0) > 0.0,
        "{}",
        types[0]
    );

    let namespace = run["namespace"].as_str().expect("the namespace");
    let probe = run["probe_queue"].as_str().expect("a queue of the run");
    let database = run["database"].as_str().expect("the database");
    assert!(
        probe.starts_with(namespace),
        "{probe} is not in {namespace}"
    );
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        // The database is gone.
        let admin = sqlx::PgPool::connect(&postgres_url())
            .await
            .expect("PostgreSQL");
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
            .bind(database)
            .fetch_one(&admin)
            .await
            .expect("the database list");
        admin.close().await;
        assert_eq!(left, 0, "the bench's database {database} is still there");

        // Its queues are gone: a passive declare of each answers 404.
        let conn = lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
            .await
            .expect("RabbitMQ");
        for queue in [
            probe.to_owned(),
            format!("{namespace}.raw.a"),
            format!("{namespace}.raw.b"),
        ] {
            let channel = conn.create_channel().await.expect("a channel");
            let declared = channel
                .queue_declare(
                    queue.as_str().into(),
                    lapin::options::QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    lapin::types::FieldTable::default(),
                )
                .await;
            let error = declared.expect_err("the queue is gone").to_string();
            assert!(
                error.contains("404") || error.contains("NOT_FOUND"),
                "{queue}: {error}"
            );
        }
        let _ = conn.close(200, "checked".into()).await;
    });
}
