//! The operators' console end to end (`hub_ops::console`).
//!
//! - Over HTTP, without a browser: no page without a session, no POST without the session's
//!   CSRF token, failed logins audited and locked out, logout.
//! - In a headless Chromium: an issuance saga sticks for real (the MVD registry fails until its
//!   command is dead-lettered), the registry comes back, and an operator logs in (once with a
//!   wrong password), finds the letter's group, replays it, and follows the saga to its end;
//!   the audit trail has the operator's login and replay.

use std::net::SocketAddr;
use std::time::Duration;

use contracts::issuance::IdentifierIssued;
use e2e::browser::Browser;
use e2e::console::{self, OPERATOR, PASSWORD};
use e2e::portal::{DESK, Portal, WAIT, code_in, phone};
use e2e::{TestEnv, wait_until};
use hub_ops::config::{ConsoleConfig, ConsoleUsers};
use hub_ops::console::{ConsoleSettings, auth::Limits};
use hub_portal::sagas::issuance::IssuanceSaga;
use hub_runtime::app::{Components, Plan};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use serde_json::json;
use simulators::SimKind;

/// A client that does not follow redirects, so the test sees them.
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The value of cookie `name` set by `response`, if any.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<(String, String)> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| {
            let value = v[name.len() + 1..]
                .split(';')
                .next()
                .unwrap_or_default()
                .to_owned();
            (value, v.to_owned())
        })
}

/// The `value` of the first hidden `csrf` field of a page.
fn csrf_in(html: &str) -> String {
    let at = html.find("name=\"csrf\"").expect("a CSRF field");
    let rest = &html[at..];
    let value = rest.find("value=\"").expect("its value") + 7;
    rest[value..]
        .split('"')
        .next()
        .expect("closing quote")
        .to_owned()
}

async fn post_form(
    client: &reqwest::Client,
    url: &str,
    cookies: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    client
        .post(url)
        .header(COOKIE, cookies)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("POST")
}

/// Opens the login page: the login cookie and the form's token.
async fn login_form(client: &reqwest::Client, base: &str) -> (String, String) {
    let page = client
        .get(format!("{base}/login"))
        .send()
        .await
        .expect("login page");
    assert_eq!(page.status(), StatusCode::OK);
    let (cookie, _) = set_cookie(&page, "hub_console_login").expect("login cookie");
    let token = csrf_in(&page.text().await.expect("HTML"));
    (cookie, token)
}

/// Logs in with `password`: the response.
async fn log_in(client: &reqwest::Client, base: &str, password: &str) -> reqwest::Response {
    let (cookie, token) = login_form(client, base).await;
    post_form(
        client,
        &format!("{base}/login"),
        &format!("hub_console_login={cookie}"),
        &[
            ("csrf", &token),
            ("name", OPERATOR),
            ("password", password),
            ("next", "/sagas"),
        ],
    )
    .await
}

/// Served over TLS (behind a TLS-terminating proxy; here plain HTTP stands in for it) the
/// console's cookies are `__Host-` prefixed and `Secure`, and only those open a session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_tls_the_cookies_are_host_prefixed_and_secure() {
    let env = TestEnv::new().await;
    let addr: SocketAddr = console::free_addr();
    let hash = hub_ops::console::cli::hash_password(PASSWORD).expect("hash");
    let settings = ConsoleSettings {
        addr,
        users: ConsoleUsers::single(OPERATOR, &hash),
        systems: Vec::new(),
        probe_timeout: Duration::from_secs(1),
        limits: Limits::default(),
        secure_cookies: true,
        sample_interval: Duration::from_secs(15),
    };
    let plan = Plan {
        background: vec![hub_ops::console::task(settings)],
        ..Plan::default()
    };
    let hub = env.spawn_plan(Components::ALL, plan);
    console::wait_listening(addr).await;
    let base = format!("http://{addr}");
    let client = http();

    let page = client
        .get(format!("{base}/login"))
        .send()
        .await
        .expect("login page");
    assert_eq!(page.status(), StatusCode::OK);
    assert!(set_cookie(&page, "hub_console_login").is_none());
    let (login_cookie, attributes) =
        set_cookie(&page, "__Host-hub_console_login").expect("login cookie");
    assert!(
        attributes.ends_with("; Path=/; Secure; HttpOnly; SameSite=Strict"),
        "{attributes}"
    );
    let token = csrf_in(&page.text().await.expect("HTML"));
    let fields = [
        ("csrf", token.as_str()),
        ("name", OPERATOR),
        ("password", PASSWORD),
    ];
    // The plain cookie's name is not the login cookie's any more.
    let r = post_form(
        &client,
        &format!("{base}/login"),
        &format!("hub_console_login={login_cookie}"),
        &fields,
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = post_form(
        &client,
        &format!("{base}/login"),
        &format!("__Host-hub_console_login={login_cookie}"),
        &fields,
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (session, attributes) = set_cookie(&r, "__Host-hub_console").expect("session cookie");
    assert!(
        attributes.ends_with("; Path=/; Secure; HttpOnly; SameSite=Strict"),
        "{attributes}"
    );
    let (_, gone) = set_cookie(&r, "__Host-hub_console_login").expect("login cookie removed");
    assert!(
        gone.contains("Secure") && gone.contains("Max-Age=0"),
        "{gone}"
    );
    for (cookie, status) in [
        (format!("hub_console={session}"), StatusCode::SEE_OTHER),
        (format!("__Host-hub_console={session}"), StatusCode::OK),
    ] {
        let r = client
            .get(format!("{base}/dead-letters"))
            .header(COOKIE, &cookie)
            .send()
            .await
            .expect("GET");
        assert_eq!(r.status(), status, "{cookie}");
    }
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_need_a_session_and_posts_need_its_csrf_token() {
    let env = TestEnv::new().await;
    let addr: SocketAddr = console::free_addr();
    let hash = hub_ops::console::cli::hash_password(PASSWORD).expect("hash");
    let settings = ConsoleSettings {
        addr,
        users: ConsoleUsers::single(OPERATOR, &hash),
        systems: Vec::new(),
        probe_timeout: Duration::from_secs(1),
        limits: Limits {
            max_failures: 3,
            ..Limits::default()
        },
        secure_cookies: false,
        sample_interval: Duration::from_secs(15),
    };
    let plan = Plan {
        background: vec![hub_ops::console::task(settings)],
        ..Plan::default()
    };
    let hub = env.spawn_plan(Components::ALL, plan);
    console::wait_listening(addr).await;
    let base = format!("http://{addr}");
    let client = http();

    // Without a session every page sends the browser to the login, which comes back to it.
    let saga = uuid::Uuid::new_v4();
    for path in [
        "/".to_owned(),
        "/dead-letters".to_owned(),
        "/dead-letters?status=all".to_owned(),
        "/dead-letters/1".to_owned(),
        "/sagas".to_owned(),
        format!("/sagas/{saga}"),
        "/health".to_owned(),
        "/monitor".to_owned(),
    ] {
        let r = client
            .get(format!("{base}{path}"))
            .send()
            .await
            .expect("GET");
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{path}");
        let location = r.headers()[LOCATION].to_str().expect("location");
        assert!(location.starts_with("/login"), "{path} -> {location}");
        if path != "/" {
            assert!(location.contains("next=%2F"), "{path} -> {location}");
        }
        let headers = r.headers();
        assert_eq!(headers["cache-control"], "no-store");
        assert!(
            headers["content-security-policy"]
                .to_str()
                .is_ok_and(|p| p.contains("default-src 'none'"))
        );
    }
    // A POST without a session does nothing and goes to the login too.
    for path in [
        "/dead-letters/1/replay",
        "/dead-letters/groups/abc/discard",
        "/sagas/search",
        "/logout",
    ] {
        let r = post_form(&client, &format!("{base}{path}"), "", &[("reason", "x")]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(r.headers()[LOCATION], "/login", "{path}");
    }

    // The login form needs its own token, paired with its cookie.
    let (_, token) = login_form(&client, &base).await;
    let r = post_form(
        &client,
        &format!("{base}/login"),
        "",
        &[("csrf", &token), ("name", OPERATOR), ("password", PASSWORD)],
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "no login cookie");

    // A wrong password is refused and audited; the right one opens a session.
    let r = log_in(&client, &base, "not the password").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookie(&r, "hub_console").is_none());
    assert!(
        r.text()
            .await
            .expect("HTML")
            .contains("Wrong name or password")
    );
    let r = log_in(&client, &base, PASSWORD).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        r.headers()[LOCATION],
        "/sagas",
        "back where the login was asked from"
    );
    let (session, attributes) = set_cookie(&r, "hub_console").expect("session cookie");
    assert_eq!(session.len(), 64, "32 random bytes");
    assert!(attributes.contains("HttpOnly") && attributes.contains("SameSite=Strict"));
    let cookies = format!("hub_console={session}");
    let page = client
        .get(format!("{base}/dead-letters"))
        .header(COOKIE, &cookies)
        .send()
        .await
        .expect("GET");
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("HTML");
    assert!(html.contains(OPERATOR) && html.contains("No new dead letters"));
    let csrf = csrf_in(&html);
    for path in ["/health", "/monitor", "/sagas", "/dead-letters?status=all"] {
        let r = client
            .get(format!("{base}{path}"))
            .header(COOKIE, &cookies)
            .send()
            .await
            .expect("GET");
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }

    // With a session, a POST without the session's token, or with another, is refused.
    for fields in [
        vec![("reason", "test")],
        vec![("reason", "test"), ("csrf", "")],
        vec![("reason", "test"), ("csrf", &token)],
    ] {
        for path in [
            "/dead-letters/1/discard",
            "/dead-letters/1/replay",
            "/sagas/search",
            "/logout",
        ] {
            let r = post_form(&client, &format!("{base}{path}"), &cookies, &fields).await;
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path} with {fields:?}");
        }
    }
    assert!(console::audit(&env.pool, "dlq.discard").await.is_empty());
    // With it, the action runs (and says there is no such letter).
    let r = post_form(
        &client,
        &format!("{base}/dead-letters/1/discard"),
        &cookies,
        &[("csrf", &csrf), ("reason", "test")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let page = client
        .get(format!("{base}/dead-letters"))
        .header(COOKIE, &cookies)
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("HTML");
    assert!(
        page.contains("Nothing was discarded: no dead letter matched ids 1"),
        "{page}"
    );

    // Logout ends the session.
    let r = post_form(
        &client,
        &format!("{base}/logout"),
        &cookies,
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[LOCATION], "/login");
    let r = client
        .get(format!("{base}/dead-letters"))
        .header(COOKIE, &cookies)
        .send()
        .await
        .expect("GET");
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "the old cookie opens nothing"
    );

    // Three failures in a row lock the name: then even the right password is refused.
    for _ in 0..3 {
        assert_eq!(
            log_in(&client, &base, "guess").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let r = log_in(&client, &base, PASSWORD).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(set_cookie(&r, "hub_console").is_none());

    let results: Vec<(String, String)> = console::audit(&env.pool, "console.login")
        .await
        .into_iter()
        .map(|row| {
            (
                row.operator,
                row.details.0["result"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        "failure",
        "success",
        "failure",
        "failure",
        "failure_locked",
        "locked",
    ]
    .iter()
    .map(|r| (OPERATOR.to_owned(), (*r).to_owned()))
    .collect();
    assert_eq!(results, expected);
    assert_eq!(console::audit(&env.pool, "console.logout").await.len(), 1);
    hub.stop().await;
}

/// A console on a free port with the test operator and `limits`, in a hub of `env`: its base
/// URL and the hub.
async fn console_with(env: &TestEnv, limits: Limits) -> (String, e2e::RunningHub) {
    let addr: SocketAddr = console::free_addr();
    let hash = hub_ops::console::cli::hash_password(PASSWORD).expect("hash");
    let settings = ConsoleSettings {
        addr,
        users: ConsoleUsers::single(OPERATOR, &hash),
        systems: Vec::new(),
        probe_timeout: Duration::from_secs(1),
        limits,
        secure_cookies: false,
        sample_interval: Duration::from_secs(15),
    };
    let plan = Plan {
        background: vec![hub_ops::console::task(settings)],
        ..Plan::default()
    };
    let hub = env.spawn_plan(Components::ALL, plan);
    console::wait_listening(addr).await;
    (format!("http://{addr}"), hub)
}

/// Logins of `names` with `password`, all sent at once (each with a login form of its own):
/// their answers' statuses, `Retry-After` and pages, in the order of `names`.
async fn log_in_at_once(
    client: &reqwest::Client,
    base: &str,
    names: &[String],
    password: &str,
) -> Vec<(StatusCode, Option<u64>, String)> {
    let mut forms = Vec::new();
    for _ in names {
        forms.push(login_form(client, base).await);
    }
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(names.len()));
    let logins: Vec<_> = names
        .iter()
        .zip(forms)
        .map(|(name, (cookie, token))| {
            let (client, base, name) = (client.clone(), base.to_owned(), name.clone());
            let (password, start) = (password.to_owned(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                let r = post_form(
                    &client,
                    &format!("{base}/login"),
                    &format!("hub_console_login={cookie}"),
                    &[
                        ("csrf", token.as_str()),
                        ("name", name.as_str()),
                        ("password", password.as_str()),
                    ],
                )
                .await;
                let retry_after = r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok());
                (r.status(), retry_after, r.text().await.expect("HTML"))
            })
        })
        .collect();
    let mut answers = Vec::new();
    for login in logins {
        answers.push(login.await.expect("a login"));
    }
    answers
}

/// Wrong passwords for one name sent all at once, while each check takes an argon2 hash: no
/// more are checked than the failures that lock the name (the others are refused, 429, before
/// their hash), and then the right password is refused too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guesses_of_one_name_at_once_check_no_more_passwords_than_the_lock_allows() {
    let env = TestEnv::new().await;
    let limits = Limits {
        max_failures: 3,
        login_rate: 1000,
        ..Limits::default()
    };
    let (base, hub) = console_with(&env, limits).await;
    let client = http();
    let names = vec![OPERATOR.to_owned(); 24];
    let answers = log_in_at_once(&client, &base, &names, "a wrong guess").await;
    let checked = answers
        .iter()
        .filter(|(status, _, _)| *status == StatusCode::UNAUTHORIZED)
        .count();
    let refused: Vec<_> = answers
        .iter()
        .filter(|(status, _, _)| *status == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert_eq!(checked, 3, "passwords checked: {answers:?}");
    assert_eq!(checked + refused.len(), names.len(), "{answers:?}");
    assert!(
        refused
            .iter()
            .all(|(_, retry_after, _)| retry_after.is_some_and(|s| s >= 1)),
        "{refused:?}"
    );
    // Locked now: the right password is not even checked.
    let r = log_in(&client, &base, PASSWORD).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(set_cookie(&r, "hub_console").is_none());
    let page = r.text().await.expect("HTML");
    assert!(
        page.contains("Too many failed logins with this name: try again in 15 minutes."),
        "{page}"
    );
    let results: Vec<String> = console::audit(&env.pool, "console.login")
        .await
        .into_iter()
        .map(|row| row.details.0["result"].as_str().unwrap_or("").to_owned())
        .collect();
    let count = |result: &str| results.iter().filter(|r| *r == result).count();
    assert_eq!(count("failure"), 2, "{results:?}");
    assert_eq!(count("failure_locked"), 1, "{results:?}");
    assert_eq!(
        count("busy") + count("locked"),
        names.len() - 3 + 1,
        "{results:?}"
    );
    assert_eq!(results.len(), names.len() + 1, "every login audited");
    hub.stop().await;
}

/// A spray of made-up names, each tried once, all at once: the console checks no more
/// passwords than its login rate allows (a second's worth, then the rate), and refuses the
/// others before their hash with 429, `Retry-After` and how long to wait, audited
/// `rate_limited`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_checks_no_more_passwords_a_second_than_its_login_rate() {
    let env = TestEnv::new().await;
    let limits = Limits {
        login_rate: 2,
        ..Limits::default()
    };
    let (base, hub) = console_with(&env, limits).await;
    let client = http();
    let names: Vec<String> = (0..16).map(|i| format!("sprayed-{i}")).collect();
    let started = std::time::Instant::now();
    let answers = log_in_at_once(&client, &base, &names, "a wrong guess").await;
    let elapsed = started.elapsed().as_secs_f64();
    let checked = answers
        .iter()
        .filter(|(status, _, _)| *status == StatusCode::UNAUTHORIZED)
        .count();
    let refused: Vec<_> = answers
        .iter()
        .filter(|(status, _, _)| *status == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert_eq!(checked + refused.len(), names.len(), "{answers:?}");
    assert!(!refused.is_empty(), "{answers:?}");
    // The burst (2) and what the rate gave back while they ran.
    let allowed = 2 + (elapsed * 2.0).ceil() as usize;
    assert!(
        (2..=allowed).contains(&checked),
        "{checked} checked in {elapsed:.2} s"
    );
    for (_, retry_after, page) in &refused {
        assert_eq!(*retry_after, Some(1), "a token within a second");
        assert!(
            page.contains("Too many login attempts, try again in 1 s."),
            "{page}"
        );
    }
    let rate_limited = console::audit(&env.pool, "console.login")
        .await
        .into_iter()
        .filter(|row| row.details.0["result"] == "rate_limited")
        .count();
    assert_eq!(rate_limited, refused.len());
    // A token comes back within a second, and the operator logs in.
    let r = wait_until(
        Duration::from_secs(5),
        "a token back for the operator",
        || async {
            let r = log_in(&client, &base, PASSWORD).await;
            (r.status() != StatusCode::TOO_MANY_REQUESTS).then_some(r)
        },
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_replays_a_dead_letter_in_the_browser_and_the_saga_completes() {
    // Sampled often, so that the monitor's charts have lines within the test.
    let console_config = ConsoleConfig {
        sample_interval: SAMPLE_INTERVAL,
        ..console::config()
    };
    let addr = console_config.addr;
    let mut portal = Portal::start_with_console(console_config).await;
    let pool = portal.env.pool.clone();
    console::wait_listening(addr).await;
    let base = format!("http://{addr}");

    // The MVD registry fails every call: the saga's command is retried, then dead-lettered.
    let person = portal.good_persons().await.remove(0);
    portal
        .faults(SimKind::Mvd, json!({"error_rate": 1.0}))
        .await;
    let phone = phone(21);
    portal.apply(&person.application("CO-1", &phone)).await;
    let saga = IssuanceSaga::key(DESK, "CO-1").id;
    let letter: i64 = wait_until(WAIT, "the MVD command dead-lettered and kept", || async {
        sqlx::query_scalar(
            "SELECT id FROM dead_letters WHERE correlation_id = $1 AND message_type = $2",
        )
        .bind(saga.to_string())
        .bind("mvd.reconcile.v1")
        .fetch_optional(&pool)
        .await
        .expect("dead letters")
    })
    .await;
    // The registry is back.
    portal
        .faults(SimKind::Mvd, json!({"error_rate": 0.0}))
        .await;

    let browser = Browser::start().await;
    // No session: the console sends the browser to its login.
    browser.goto(&format!("{base}/dead-letters")).await;
    assert_eq!(browser.path().await, "/login");
    browser.snapshot("console-login").await;
    browser.fill("#name", OPERATOR).await;
    browser.fill("#password", "not the password").await;
    browser.click("#login").await;
    assert!(
        browser
            .text("#login-error")
            .await
            .contains("Wrong name or password")
    );
    assert_eq!(browser.path().await, "/login");
    browser.fill("#name", OPERATOR).await;
    browser.fill("#password", PASSWORD).await;
    browser.click("#login").await;
    assert_eq!(
        browser.path().await,
        "/dead-letters",
        "back where it was going"
    );
    assert_eq!(browser.text("#operator").await, OPERATOR);

    // The letter's group: the MVD command, with the letter in it.
    let group = browser
        .find("section.group[data-message-type='mvd.reconcile.v1']")
        .await;
    let key = group
        .attr("data-group")
        .await
        .expect("attribute")
        .expect("the group's key");
    assert!(
        browser
            .try_find(&format!("#group-{key} tr[data-letter='{letter}']"))
            .await
            .is_some(),
        "letter #{letter} is in its group"
    );
    browser.snapshot("console-dead-letters").await;
    // The letter's own page, masked, on the way.
    browser
        .click(&format!(
            "#group-{key} tr[data-letter='{letter}'] a[href='/dead-letters/{letter}']"
        ))
        .await;
    assert_eq!(browser.path().await, format!("/dead-letters/{letter}"));
    assert!(browser.text("#status").await.contains("new"));
    let source = browser.client.source().await.expect("page source");
    assert!(source.contains("mvd.reconcile.v1") && source.contains(&saga.to_string()));
    assert!(!source.contains(&person.identification_number));
    browser.click("nav a[href='/dead-letters']").await;
    // Nothing in the clear: the person's identification number is not on the page.
    let source = browser.client.source().await.expect("page source");
    assert!(!source.contains(&person.identification_number));
    browser
        .click(&format!("#group-{key} button.replay-group"))
        .await;
    let flash = browser.text("#flash").await;
    browser.snapshot("console-replayed").await;
    assert!(flash.starts_with("Replayed 1 of 1"), "{flash}");
    assert!(flash.contains(&format!("#{letter}")), "{flash}");

    // The saga, found by its business key, moves on; the test plays the desk to the end.
    browser.click("nav a[href='/sagas']").await;
    browser.fill("#q", &format!("{DESK}/CO-1")).await;
    browser.click("#search").await;
    assert_eq!(browser.path().await, format!("/sagas/{saga}"));
    let state = || async {
        browser.client.refresh().await.expect("reload");
        browser.text("#state").await
    };
    wait_until(WAIT, "the saga confirming the phone", || async {
        state().await.contains("confirming_phone").then_some(())
    })
    .await;
    let code = code_in(&portal.nth_text(&phone, 1).await);
    portal.confirm("CO-1", &code).await;
    let _: IdentifierIssued = portal.event("CO-1").await;
    wait_until(
        WAIT,
        "the saga page showing it issued and ended",
        || async {
            let s = state().await;
            (s.contains("issued") && s.contains("ended")).then_some(())
        },
    )
    .await;
    assert!(
        browser
            .text(&format!("#saga-dead-letters tr[data-letter='{letter}']"))
            .await
            .contains("replayed")
    );
    assert!(
        browser.try_find("#retry-step").await.is_none(),
        "an ended saga has no step to retry"
    );
    browser.snapshot("console-saga").await;

    // The health page: the queues with their consumers, the external systems up.
    browser.click("nav a[href='/health']").await;
    health_shows_queues_and_real_probes(&browser, &portal.env.config.namespace.to_string()).await;

    // The monitor: the charts of what was sampled while the saga ran.
    browser.click("nav a[href='/monitor']").await;
    monitor_charts_are_drawn(&browser).await;

    browser.click("#logout").await;
    assert_eq!(browser.path().await, "/login");
    browser.close().await;

    // The audit trail: the operator's failed and good logins, and the replay.
    let logins: Vec<(String, String)> = console::audit(&pool, "console.login")
        .await
        .into_iter()
        .map(|r| {
            (
                r.operator,
                r.details.0["result"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        logins,
        [
            (OPERATOR.to_owned(), "failure".to_owned()),
            (OPERATOR.to_owned(), "success".to_owned())
        ]
    );
    let replays = console::audit(&pool, "dlq.replay").await;
    assert_eq!(replays.len(), 1, "{replays:?}");
    assert_eq!(replays[0].operator, OPERATOR);
    assert_eq!(replays[0].target, format!("group {key}"));
    assert_eq!(replays[0].details.0["replayed"], json!([letter]));
    portal.stop().await;
}

/// On the health page: the MVD worker's queue with its consumer, MVD up by its probe path's
/// `200`, the mail server up by its `220` greeting, no dead letter waiting.
async fn health_shows_queues_and_real_probes(browser: &Browser, namespace: &str) {
    let mvd_queue = format!("{namespace}.{}", hub_portal::external::mvd::worker::QUEUE);
    let row = browser
        .text(&format!("#queues tr[data-queue='{mvd_queue}']"))
        .await;
    assert!(row.contains("work"), "{row}");
    let mvd = browser
        .text("#systems tr[data-system='MVD population registry']")
        .await;
    assert!(mvd.contains("up"), "{mvd}");
    assert!(
        mvd.contains("HTTP 200 OK") && mvd.contains("/healthz"),
        "{mvd}"
    );
    let mail = browser
        .text("#systems tr[data-system='Mail server (SMTP)']")
        .await;
    assert!(mail.contains("up") && mail.contains("SMTP 220"), "{mail}");
    assert_eq!(browser.text("#dead-letter-count").await, "0");
    browser.snapshot("console-health").await;
}

/// How often the browser test's console samples its charts.
const SAMPLE_INTERVAL: Duration = Duration::from_millis(200);

/// The points of the polyline `css` names (`x,y x,y …`), read through the DOM.
async fn polyline_points(browser: &Browser, css: &str) -> Vec<(f64, f64)> {
    let Some(line) = browser.try_find(css).await else {
        return Vec::new();
    };
    let points = line
        .attr("points")
        .await
        .expect("attribute")
        .unwrap_or_default();
    points
        .split_whitespace()
        .filter_map(|p| {
            let (x, y) = p.split_once(',')?;
            Some((x.parse().ok()?, y.parse().ok()?))
        })
        .collect()
}

/// On the monitor page: each of the four charts is an SVG with a title, and the throughput,
/// queue depth and dead-letter lines have more than one point; the throughput line rose above
/// its floor (messages were handled while it sampled). Saves a screenshot under `target/` and
/// prints where.
async fn monitor_charts_are_drawn(browser: &Browser) {
    assert_eq!(browser.path().await, "/monitor");
    wait_until(WAIT, "the monitor's charts drawn with data", || async {
        browser.client.refresh().await.expect("reload");
        for chart in ["throughput", "queue-depth", "dead-letters"] {
            let css = format!("#chart-{chart} svg polyline");
            if polyline_points(browser, &css).await.len() < 2 {
                return None;
            }
        }
        let throughput = polyline_points(browser, "#chart-throughput svg polyline").await;
        let floor = throughput.iter().map(|(_, y)| *y).fold(f64::MIN, f64::max);
        throughput.iter().any(|(_, y)| *y < floor).then_some(())
    })
    .await;
    for chart in ["throughput", "queue-depth", "dead-letters", "saga-time"] {
        let figure = browser.find(&format!("#chart-{chart}")).await;
        let caption = figure
            .find(fantoccini::Locator::Css("figcaption"))
            .await
            .expect("a caption")
            .text()
            .await
            .expect("its text");
        assert!(!caption.is_empty(), "{chart}");
    }
    let title = browser
        .find("#chart-throughput svg title")
        .await
        .html(true)
        .await
        .expect("the title");
    assert!(title.starts_with("Throughput in msg/min"), "{title}");
    let caption = browser.text("#chart-throughput figcaption").await;
    assert!(
        caption.contains("msg/min") && caption.contains("last:"),
        "{caption}"
    );
    // The saga ended while sampled: its time was drawn (p50 and p95), or it is older than a
    // minute of samples and the chart says "no data yet"; either way no broken chart.
    let saga = browser.text("#chart-saga-time").await;
    assert!(saga.contains("Saga time"), "{saga}");

    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-monitor.png");
    let png = browser.client.screenshot().await.expect("a screenshot");
    std::fs::write(&path, png).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    println!("the monitor's screenshot: {}", path.display());
    browser.snapshot("console-monitor").await;
}
