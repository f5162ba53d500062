//! Conformance: what the tests, the hub and the queue authorities send is checked against the
//! published schemas (`hub_runtime::conformance`, on in this crate's build), and a body that
//! does not match is refused, naming the type, the path and the rule, never the value.

use std::collections::BTreeSet;
use std::path::Path;

use contracts::Metadata;
use e2e::TestEnv;
use hub_runtime::broker::{Envelope, PublishError};
use hub_runtime::conformance::{self, HUB_INTERNAL};

/// A password nobody may read in an error.
const PASSWORD: &str = "Never-Shown-Pa55";
/// A malformed identifier, no more printable than the password.
const BAD_ID: &str = "SHOULD-NOT-APPEAR";

fn login(env: &TestEnv, identifier: &str) -> Envelope {
    let body = serde_json::json!({"identifier": identifier, "password": PASSWORD});
    Envelope {
        exchange: env.topology(vec![]).bus_exchange(),
        routing_key: "cabinet.login.v1".into(),
        metadata: Metadata::new("cabinet.login.v1", "conformance-test"),
        body: serde_json::to_vec(&body).expect("JSON"),
    }
}

fn namespace(env: &TestEnv) -> String {
    env.config.namespace.as_str().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_conforming_body_is_refused_naming_type_path_and_rule_never_the_value() {
    assert!(
        conformance::is_on(),
        "the end-to-end tests check conformance"
    );
    let env = TestEnv::new().await;
    env.declare(vec![]).await;
    let ns = namespace(&env);

    let refused = env
        .publisher
        .publish(&login(&env, BAD_ID))
        .await
        .expect_err("a malformed identifier is refused");
    let PublishError::Nonconforming(violation) = &refused else {
        panic!("refused for conformance, not {refused:?}");
    };
    let text = refused.to_string();
    assert_eq!(violation.message_type, "cabinet.login.v1");
    for part in ["cabinet.login.v1", "at /identifier", "\"pattern\""] {
        assert!(text.contains(part), "{part} is named: {text}");
    }
    for secret in [PASSWORD, BAD_ID] {
        assert!(!text.contains(secret), "no value in the error: {text}");
    }
    assert_eq!(
        conformance::violations_in(&ns),
        vec![violation.clone()],
        "recorded for this namespace, so the test's fixture fails the test"
    );

    // A missing field is named; a body that is not JSON, or of a type without a schema, is
    // refused as well.
    let mut missing = login(&env, "3270287A012PB2");
    missing.body = br#"{"identifier": "3270287A012PB2"}"#.to_vec();
    let e = env.publisher.publish(&missing).await.expect_err("refused");
    assert!(e.to_string().contains("missing \"password\""), "{e}");
    let mut garbage = login(&env, "3270287A012PB2");
    garbage.body = b"{not json".to_vec();
    let e = env.publisher.publish(&garbage).await.expect_err("refused");
    assert!(e.to_string().contains("not JSON"), "{e}");
    let mut unknown = login(&env, "3270287A012PB2");
    unknown.metadata.message_type = "nobody.knows.v1".into();
    let e = env.publisher.publish(&unknown).await.expect_err("refused");
    assert!(e.to_string().contains("publishes no schema"), "{e}");
    assert_eq!(conformance::violations_in(&ns).len(), 3);

    // A conforming body goes; a malformed one sent on purpose goes, and is recorded nowhere.
    env.publisher
        .publish(&login(&env, "3270287A012PB2"))
        .await
        .expect("a conforming login is sent");
    env.publisher
        .publish_deliberately_invalid(&login(&env, BAD_ID))
        .await
        .expect("sent on purpose");
    assert_eq!(conformance::violations_in(&ns), Vec::new());

    // The authorities' hook says the same.
    let bus = env.topology(vec![]).bus_exchange();
    let e = conformance::check_text(&bus, "authority.registered.v1", b"{}")
        .expect_err("a registration without its fields");
    assert!(
        e.contains("authority.registered.v1") && e.contains("missing"),
        "{e}"
    );
    assert_eq!(conformance::violations_in(&ns).len(), 1);
}

/// Plants a non-conforming row in the outbox, as a faulty saga would, and relays it.
async fn plant_in_the_outbox(env: &TestEnv) {
    let mut conn = env.pool.acquire().await.expect("a connection");
    hub_runtime::store::outbox::insert(&mut conn, &[login(env, BAD_ID)])
        .await
        .expect("an outbox row");
    drop(conn);
    hub_runtime::store::relay::relay_once(&env.pool, &env.publisher, 10)
        .await
        .expect("a relay pass");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_refuses_a_non_conforming_message_of_the_hub_and_keeps_why() {
    let env = TestEnv::new().await;
    plant_in_the_outbox(&env).await;
    let (sent, error): (bool, Option<String>) =
        sqlx::query_as("SELECT sent_at IS NOT NULL, last_error FROM outbox")
            .fetch_one(&env.pool)
            .await
            .expect("the row");
    assert!(!sent, "not sent");
    let error = error.expect("the row says why");
    assert!(
        error.contains("non-conforming cabinet.login.v1") && error.contains("/identifier"),
        "{error}"
    );
    assert!(
        !error.contains(PASSWORD) && !error.contains(BAD_ID),
        "{error}"
    );
    assert_eq!(conformance::violations_in(&namespace(&env)).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[should_panic(expected = "do not conform to their published schema")]
async fn a_test_whose_hub_sent_a_non_conforming_message_fails_when_it_ends() {
    let env = TestEnv::new().await;
    plant_in_the_outbox(&env).await;
    // Nothing else fails here: the fixture's end does (TestEnv's drop).
}

/// `MessageType::new("name", n)` in the sources under `dir`, as `name.vN`.
fn declared_types(dir: &Path, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).expect("the sources") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            declared_types(&path, out);
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("a source");
        for rest in text.split("MessageType::new(\"").skip(1) {
            let (name, after) = rest.split_once('"').expect("a closing quote");
            let version: String = after
                .trim_start_matches([',', ' '])
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if !version.is_empty() {
                out.insert(format!("{name}.v{version}"));
            }
        }
    }
}

#[test]
fn the_exempt_types_are_exactly_the_hubs_own_and_publish_no_schema() {
    let portal = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hub/portal/src");
    let mut declared = BTreeSet::new();
    declared_types(&portal, &mut declared);
    let internal: BTreeSet<String> = declared
        .into_iter()
        .filter(|t| contracts::schema::find(t).is_none())
        .collect();
    let listed: BTreeSet<String> = HUB_INTERNAL.iter().map(|t| (*t).to_owned()).collect();
    assert_eq!(
        internal, listed,
        "hub_runtime::conformance::HUB_INTERNAL lists the hub-portal's own message types"
    );
    for t in HUB_INTERNAL {
        assert!(contracts::schema::find(t).is_none(), "{t} is published");
    }
}
