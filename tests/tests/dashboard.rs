//! The Grafana dashboard (`deploy/grafana/dashboards/hub.json`) and the Prometheus alert rules
//! (`deploy/prometheus/rules/hub.rules.yml`) ask only for what the hub exports: every PromQL
//! expression in them parses, and every metric it names is in the live `/metrics` of a test hub
//! that handled an application (a histogram's `_bucket`, `_sum` and `_count`, a counter's
//! `_total`). The dashboard shows every metric of the README's table. And the statutory terms'
//! gauge (`hub_procedures_term`) counts planted applications as their terms say.
//!
//! A metric family shows in `/metrics` only once it has a series, so the test hub is made to
//! have one of each: an issuance from application to identifier, a body the contract refuses
//! (a dead letter), an application past its term in the database; what a short journey cannot
//! cause (a retry, a batch, a failed publish, a failing external call, an SMS held back, a
//! retention round) is recorded through the very methods the hub calls when it happens.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{Duration as Days, Utc};
use contracts::issuance::{IdentifierIssued, PhoneCodeSent};
use contracts::procedure::{Delivery, SubmitApplication};
use contracts::{Failure, Message, MessageType};
use e2e::portal::{Portal, WAIT, code_in, phone};
use e2e::{TestEnv, wait_until};
use hub_portal::metrics::portal_metrics;
use hub_portal::procedures::payment::Ledger;
use hub_portal::procedures::saga::{Application, SAGA_TYPE, Stage};
use hub_portal::sessions::GATE_QUEUE;
use hub_runtime::health::Readiness;
use hub_runtime::metrics::metrics;
use promql_parser::parser::{self, Expr};
use promql_parser::util::{ExprVisitor, walk_expr};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use yaml_rust2::YamlLoader;

/// Series Prometheus makes itself, which a rule may name.
const PROMETHEUS_BUILTINS: &[&str] = &["up", "ALERTS", "ALERTS_FOR_STATE"];

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_owned()
}

fn read(file: &str) -> String {
    std::fs::read_to_string(repository().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// A query and where it is (a panel's title, a rule's alert).
#[derive(Debug, Clone)]
struct Query {
    place: String,
    expr: String,
}

/// Every target's `expr` of the dashboard, with Grafana's variables substituted as Grafana
/// would before sending it to Prometheus.
fn dashboard_queries(dashboard: &serde_json::Value) -> Vec<Query> {
    let mut out = Vec::new();
    collect_targets(dashboard, "dashboard", &mut out);
    out
}

fn collect_targets(value: &serde_json::Value, place: &str, out: &mut Vec<Query>) {
    match value {
        serde_json::Value::Object(map) => {
            let place = map
                .get("title")
                .and_then(|t| t.as_str())
                .unwrap_or(place)
                .to_owned();
            if let Some(expr) = map.get("expr").and_then(|e| e.as_str()) {
                out.push(Query {
                    place: place.clone(),
                    expr: substitute(expr),
                });
            }
            for child in map.values() {
                collect_targets(child, &place, out);
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                collect_targets(item, place, out);
            }
        }
        _ => {}
    }
}

/// Grafana's interval macros become a duration and a template variable (`$instance`,
/// `${instance}`) a regular expression matching anything, as "All" does.
fn substitute(expr: &str) -> String {
    let mut text = expr.to_owned();
    for (macro_name, value) in [
        ("$__rate_interval", "5m"),
        ("${__rate_interval}", "5m"),
        ("$__interval", "1m"),
        ("${__interval}", "1m"),
        ("$__range", "1h"),
    ] {
        text = text.replace(macro_name, value);
    }
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name_len, skip) = if let Some(braced) = after.strip_prefix('{') {
            let end = braced.find('}').expect("a closed ${...}");
            (end, end + 2)
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (end, end)
        };
        assert!(name_len > 0, "a bare $ in {expr}");
        out.push_str(".*");
        rest = &after[skip..];
    }
    out.push_str(rest);
    out
}

/// Every rule's `expr` of the rules file (no substitution: `$1` of `label_replace` is PromQL's).
fn rule_queries(rules: &str) -> Vec<Query> {
    let docs = YamlLoader::load_from_str(rules).expect("the rules file is YAML");
    let groups = docs[0]["groups"].as_vec().expect("groups");
    let mut out = Vec::new();
    for group in groups {
        for rule in group["rules"].as_vec().expect("rules") {
            let name = rule["alert"]
                .as_str()
                .or_else(|| rule["record"].as_str())
                .expect("an alert or a record");
            out.push(Query {
                place: name.to_owned(),
                expr: rule["expr"].as_str().expect("an expr").to_owned(),
            });
        }
    }
    out
}

/// The metric names a parsed expression selects.
#[derive(Default)]
struct Names {
    names: Vec<String>,
    unnamed: usize,
}

impl Names {
    fn selector(&mut self, name: Option<&String>, matchers: &promql_parser::label::Matchers) {
        let by_matcher = matchers
            .matchers
            .iter()
            .find(|m| m.name == "__name__" && matches!(m.op, promql_parser::label::MatchOp::Equal))
            .map(|m| m.value.clone());
        match name.cloned().or(by_matcher) {
            Some(n) => self.names.push(n),
            None => self.unnamed += 1,
        }
    }
}

impl ExprVisitor for Names {
    type Error = std::convert::Infallible;

    fn pre_visit(&mut self, expr: &Expr) -> Result<bool, Self::Error> {
        match expr {
            Expr::VectorSelector(vs) => self.selector(vs.name.as_ref(), &vs.matchers),
            Expr::MatrixSelector(ms) => self.selector(ms.vs.name.as_ref(), &ms.vs.matchers),
            _ => {}
        }
        Ok(true)
    }
}

/// The series names a scrape of `text` gives Prometheus: each sample's name, and from each
/// `# TYPE` line the names of its family (so a family with no sample yet counts too).
fn exported(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if let Some(descriptor) = line.strip_prefix("# TYPE ") {
            let mut parts = descriptor.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                "summary" => &["", "_sum", "_count"],
                _ => &[""],
            };
            names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_owned());
        }
    }
    names
}

/// What is wrong with `queries`: expressions that do not parse, selectors without a metric
/// name, and metrics neither in `exported` nor in `builtins`. Empty when all is well.
fn problems(queries: &[Query], exported: &BTreeSet<String>, builtins: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for q in queries {
        let expr = match parser::parse(&q.expr) {
            Ok(expr) => expr,
            Err(e) => {
                out.push(format!("{}: {} does not parse: {e}", q.place, q.expr));
                continue;
            }
        };
        let mut names = Names::default();
        let _ = walk_expr(&mut names, &expr);
        if names.unnamed > 0 {
            out.push(format!("{}: a selector without a metric name", q.place));
        }
        for name in names.names {
            if !exported.contains(&name) && !builtins.contains(&name.as_str()) {
                out.push(format!("{}: {name} is not exported by the hub", q.place));
            }
        }
    }
    out
}

/// The metrics the README's Observability table lists.
fn readme_metrics() -> BTreeSet<String> {
    let readme = read("README.md");
    let section = readme
        .split("\n## Observability")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("README's Observability section");
    section
        .lines()
        .filter(|l| l.starts_with("| `hub_"))
        .filter_map(|l| l.split('|').nth(1))
        .flat_map(|cell| cell.split('`').skip(1).step_by(2).map(str::to_owned))
        .collect()
}

fn dashboard() -> serde_json::Value {
    serde_json::from_str(&read("deploy/grafana/dashboards/hub.json"))
        .expect("the dashboard is JSON")
}

#[test]
fn the_checker_refuses_unknown_metrics_and_bad_promql() {
    let text = "# HELP hub_messages_in Messages.\n# TYPE hub_messages_in counter\n\
                hub_messages_in_total{queue=\"q\"} 1\n\
                # HELP hub_handler_duration_seconds Time.\n# TYPE hub_handler_duration_seconds histogram\n\
                # HELP hub_broker_connected Up.\n# TYPE hub_broker_connected gauge\nhub_broker_connected 1\n# EOF\n";
    let known = exported(text);
    let query = |expr: &str| Query {
        place: "test".into(),
        expr: substitute(expr),
    };
    let good = [
        query(
            "sum by (queue) (rate(hub_messages_in_total{instance=~\"$instance\"}[$__rate_interval]))",
        ),
        query(
            "histogram_quantile(0.95, sum by (le) (rate(hub_handler_duration_seconds_bucket[5m])))",
        ),
        query("hub_handler_duration_seconds_count + hub_handler_duration_seconds_sum"),
        query("{__name__=\"hub_broker_connected\"} == 0 or absent(hub_broker_connected)"),
    ];
    assert_eq!(problems(&good, &known, &[]), Vec::<String>::new());
    for bad in [
        "rate(hub_no_such_metric_total[5m])",
        // A counter is exported with `_total`; its family name is not a series.
        "rate(hub_messages_in[5m])",
        "hub_handler_duration_seconds",
        "sum(rate(hub_messages_in_total[5m])",
        "{queue=\"q\"}",
        "up == 0",
    ] {
        assert_eq!(
            problems(&[query(bad)], &known, &[]).len(),
            1,
            "{bad} is refused"
        );
    }
    assert!(problems(&[query("up == 0")], &known, PROMETHEUS_BUILTINS).is_empty());
}

#[test]
fn the_dashboard_shows_every_metric_of_the_readme() {
    let queries = dashboard_queries(&dashboard());
    assert!(queries.len() >= 30, "{} queries", queries.len());
    let mut named = BTreeSet::new();
    for q in &queries {
        let expr = parser::parse(&q.expr).unwrap_or_else(|e| panic!("{}: {e}", q.place));
        let mut names = Names::default();
        let _ = walk_expr(&mut names, &expr);
        named.extend(names.names);
    }
    let listed = readme_metrics();
    assert!(listed.len() >= 15, "the README's table: {listed:?}");
    let missing: Vec<&String> = listed
        .iter()
        .filter(|m| {
            !["", "_bucket", "_count", "_sum"]
                .iter()
                .any(|s| named.contains(&format!("{m}{s}")))
        })
        .collect();
    assert!(missing.is_empty(), "no panel shows {missing:?}");
}

/// A `procedure.submit.v1` body without the session token the contract requires.
#[derive(Serialize, Deserialize)]
#[serde(transparent)]
struct RawSubmit(serde_json::Value);

impl Message for RawSubmit {
    const TYPE: MessageType = SubmitApplication::TYPE;
}

/// Records, through the hub's own recording methods, what a short journey does not cause.
fn record_what_the_journey_does_not_cause() {
    let m = metrics();
    m.retry("t-dashboard.q", 0);
    m.batch_ran("t-dashboard.q", 2, Duration::from_millis(3));
    m.relayed("t-dashboard.x", "t-dashboard.published.v1", false);
    m.external_call::<()>(
        "t-dashboard",
        "call",
        Duration::from_millis(5),
        &Err(Failure::transient("down")),
    );
    portal_metrics().sms_capped("t-dashboard", "sms_per_phone");
    portal_metrics().cabinet_limited("t-dashboard", "wrong_codes_per_phone");
    // A retention round may not have run yet.
    m.retention_deleted("inbox", 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_and_the_alert_rules_ask_only_for_what_the_hub_exports() {
    let mut portal = Portal::start().await;
    let persons = portal.good_persons().await;
    let (number, phone) = ("DASH-1", phone(72));
    portal
        .env
        .send(&persons[0].application(number, &phone))
        .await;
    let _: PhoneCodeSent = portal.event(number).await;
    let code = code_in(&portal.nth_text(&phone, 1).await);
    portal.confirm(number, &code).await;
    let _: IdentifierIssued = portal.event(number).await;
    portal
        .env
        .send_deliberately_invalid(&RawSubmit(serde_json::json!({
            "application_id": Uuid::new_v4(),
            "procedure_code": "2.19",
            "applicant": "3010190A001PB1",
            "form": {},
        })))
        .await;
    portal.env.dead_letters(GATE_QUEUE, 1, WAIT).await;
    let today = (Utc::now() + Days::hours(3)).date_naive();
    let late = application("2.19", Some(today - Days::days(3)), true);
    plant(&portal.env, &late, "at_authority", false).await;
    record_what_the_journey_does_not_cause();

    // The saga counts are read at scrape (and cached a few seconds): wait until the ended
    // issuance shows.
    let url = format!("http://{}/metrics", portal.integrations.ops_addr);
    let text = wait_until(WAIT, "the sagas in /metrics", || async {
        let text = reqwest::get(&url).await.ok()?.text().await.ok()?;
        text.contains(r#"hub_sagas_open{saga_type="procedure"} 1"#)
            .then_some(text)
    })
    .await;
    let known = exported(&text);
    for name in [
        "hub_messages_in_total",
        "hub_handler_duration_seconds_bucket",
        "hub_saga_duration_seconds_count",
        "hub_dead_letters_total",
        "hub_procedures_term",
    ] {
        assert!(known.contains(name), "{name} missing from\n{text}");
    }

    let dashboard = dashboard_queries(&dashboard());
    assert_eq!(
        problems(&dashboard, &known, &["up"]),
        Vec::<String>::new(),
        "the dashboard"
    );
    let rules = rule_queries(&read("deploy/prometheus/rules/hub.rules.yml"));
    assert!(rules.len() >= 9, "{rules:?}");
    assert_eq!(
        problems(&rules, &known, PROMETHEUS_BUILTINS),
        Vec::<String>::new(),
        "the alert rules"
    );
    // The variable's query (label_values(metric, label)) names an exported metric too.
    let variable = dashboard_json_variable_metric();
    assert!(known.contains(&variable), "{variable}");
    portal.stop().await;
}

/// The metric of the dashboard's `$instance` variable, `label_values(<metric>, instance)`.
fn dashboard_json_variable_metric() -> String {
    let d = dashboard();
    let definition = d["templating"]["list"][0]["definition"]
        .as_str()
        .expect("the variable's definition");
    definition
        .strip_prefix("label_values(")
        .and_then(|s| s.split(',').next())
        .expect("label_values(metric, label)")
        .trim()
        .to_owned()
}

/// An application of `procedure` with its term's last day `due`, at `stage`.
fn application(procedure: &str, due: Option<chrono::NaiveDate>, overdue: bool) -> Application {
    Application {
        application_id: Uuid::new_v4(),
        number: format!("T-{}", Uuid::new_v4().simple()),
        procedure_code: procedure.into(),
        authority: "minsk-city-executive-committee".into(),
        applicant: "3010190A001PB1".into(),
        form: serde_json::Map::new(),
        attachments: Vec::new(),
        fee_kopecks: 0,
        order_number: None,
        invoice_id: None,
        paid: None,
        receipt: None,
        ledger: Ledger::default(),
        receipt_at_authority: None,
        registration_number: None,
        decision_due: due,
        stage: Stage::AtAuthority,
        delivery: Delivery::default(),
        info_request: None,
        suspended_working_days: 0,
        overdue,
    }
}

/// Puts `app` in the sagas table as the procedure saga keeps it, at `state_name`.
async fn plant(env: &TestEnv, app: &Application, state_name: &str, terminal: bool) {
    sqlx::query(
        "INSERT INTO sagas (id, saga_type, business_key, state_name, state, terminal, version)
         VALUES ($1, $2, $3, $4, $5, $6, 1)",
    )
    .bind(Uuid::new_v4())
    .bind(SAGA_TYPE)
    .bind(app.application_id.to_string())
    .bind(state_name)
    .bind(serde_json::to_value(app).expect("the state as JSON"))
    .bind(terminal)
    .execute(&env.pool)
    .await
    .expect("a planted saga");
}

#[tokio::test]
async fn the_terms_gauge_counts_open_applications_near_or_past_their_term() {
    let env = TestEnv::new().await;
    // Today in Minsk (UTC+3), as the saga counts the term.
    let today = (Utc::now() + Days::hours(3)).date_naive();
    let past = today - Days::days(5);
    let overdue = application("1.1.5", Some(past), true);
    let unnoticed = application("1.1.5", Some(today - Days::days(1)), false);
    let due_soon = application("2.6", Some(today + Days::days(2)), false);
    let far = application("2.6", Some(today + Days::days(30)), false);
    let decided = application("9.3.1", Some(past), true);
    let suspended = application("9.3.1", Some(past), false);
    let unpaid = application("9.3.1", None, false);
    plant(&env, &overdue, "at_authority", false).await;
    plant(&env, &unnoticed, "registered", false).await;
    plant(&env, &due_soon, "registered", false).await;
    plant(&env, &far, "at_authority", false).await;
    plant(&env, &decided, "decided", true).await;
    plant(&env, &suspended, "awaiting_info", false).await;
    plant(&env, &unpaid, "awaiting_payment", false).await;

    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let shutdown = CancellationToken::new();
    let readiness = Readiness::new(
        env.broker.clone(),
        env.pool.clone(),
        Duration::from_secs(30),
    );
    let (pool, token) = (env.pool.clone(), shutdown.clone());
    tokio::spawn(async move { hub_portal::http::serve_ops(addr, pool, readiness, token).await });
    let url = format!("http://{addr}/metrics");
    let text = wait_until(WAIT, "the metrics", || async {
        reqwest::get(&url).await.ok()?.text().await.ok()
    })
    .await;

    let value = |series: &str| {
        text.lines().find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .parse::<f64>()
                .ok()
        })
    };
    assert_eq!(
        value(r#"hub_procedures_term{procedure="1.1.5",state="overdue"}"#),
        Some(2.0),
        "the one the saga found overdue and the one whose last day is over:\n{text}"
    );
    assert_eq!(
        value(r#"hub_procedures_term{procedure="2.6",state="due_soon"}"#),
        Some(1.0),
        "{text}"
    );
    for absent in [
        r#"hub_procedures_term{procedure="2.6",state="overdue"}"#,
        r#"hub_procedures_term{procedure="9.3.1","#,
    ] {
        assert!(
            !text.contains(absent),
            "decided, suspended, unpaid and far ones are not counted: {absent}\n{text}"
        );
    }
    assert_eq!(
        value(r#"hub_sagas_open{saga_type="procedure"}"#),
        Some(6.0),
        "{text}"
    );
    for app in [&overdue, &unnoticed, &due_soon] {
        assert!(
            !text.contains(&app.number),
            "no application number in /metrics"
        );
        assert!(!text.contains(&app.application_id.to_string()));
    }
    assert!(
        !text.contains(&overdue.applicant),
        "no applicant in /metrics"
    );
    shutdown.cancel();
}
