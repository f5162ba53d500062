//! The whole portal over TLS on this machine: every simulator serves HTTPS with a certificate of
//! a test CA and requires a client certificate of another; the hub is given both through the
//! documented settings (`HUB_<SYSTEM>_CA_FILE`, `_CLIENT_CERT`, `_CLIENT_KEY`), and completes an
//! issuance, a paid application (ERIP) and an application to an HTTP authority's back-office
//! over TLS only. The certificates are made in the test (rcgen).

use std::time::Duration;

use contracts::cabinet::SessionToken;
use contracts::procedure::{
    ApplicationAccepted, ApplicationDecided, ApplicationRegistered, PaymentReceived,
    SubmitApplication, Verdict,
};
use e2e::portal::{Portal, WAIT};
use e2e::tls::TestPki;
use e2e::wait_until;
use serde_json::json;
use uuid::Uuid;

/// The prefixes of the systems the hub calls itself (the back-offices' come from the catalogue).
const SYSTEMS: [&str; 6] = [
    "HUB_MVD",
    "HUB_SMS_A1",
    "HUB_SMS_MTS",
    "HUB_SMS_LIFE",
    "HUB_ERIP",
    "HUB_GOSSUOK",
];

fn submit(code: &str, form: serde_json::Value, session: &SessionToken) -> SubmitApplication {
    SubmitApplication {
        application_id: Uuid::new_v4(),
        procedure_code: code.into(),
        session_token: session.clone(),
        form: form.as_object().cloned().expect("object"),
        attachments: vec!["att-1".into()],
        delivery: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuance_payment_and_a_back_office_work_over_mutual_tls_only() {
    let pki = TestPki::new();
    let mut portal = Portal::start_custom_with_http(
        |sims| {
            sims.tls = Some(pki.sim_tls());
            sims.backoffice.decide_after = Duration::from_millis(200);
        },
        |config| {
            for url in [
                &config.mvd_url,
                &config.sms_a1_url,
                &config.sms_mts_url,
                &config.sms_life_url,
                &config.erip_url,
                &config.gossuok_url,
            ] {
                assert_eq!(url.scheme(), "https", "{url}");
            }
            let mut prefixes: Vec<String> = SYSTEMS.map(str::to_owned).to_vec();
            prefixes.extend(
                config
                    .authority_settings
                    .iter()
                    // The SMS centres' `smpps://` (SMPP, not HTTP) have their operator's prefix.
                    .filter(|(key, _)| key.ends_with("_URL") && !key.ends_with("_SMPP_URL"))
                    .inspect(|(_, url)| assert!(url.starts_with("https://"), "{url}"))
                    .map(|(key, _)| hub_portal::config::tls_prefix(key).to_owned()),
            );
            let prefixes: Vec<&str> = prefixes.iter().map(String::as_str).collect();
            config
                .authority_settings
                .extend(pki.hub_settings(&prefixes));
        },
        pki.http_client(),
    )
    .await;

    // An issuance: MVD reconciles, A1's gateway sends the code and the password, over mTLS.
    let (identifier, password, _) = portal.issued(0).await;
    assert!(!identifier.is_empty() && !password.is_empty());

    // A paid application: an EDS login (GosSUOK over mTLS), an ERIP invoice, the payment.
    let (_, session) = portal.eds_session(1).await;
    portal.start_authority("minsk-civil-registry", Duration::from_millis(200));
    let app = submit(
        "5.13",
        json!({"record_kind": "birth", "record_year": 1990}),
        &session,
    );
    let id = app.application_id.to_string();
    portal.env.send(&app).await;
    let accepted: ApplicationAccepted = portal.event(&id).await;
    assert_eq!(accepted.amount_kopecks, 2100);
    let order = accepted.order_number.expect("an order number");
    wait_until(WAIT, "the ERIP invoice", || async {
        let invoice = portal.erip_invoice(&order).await;
        (invoice["status"] == "awaiting").then_some(())
    })
    .await;
    portal.pay(&order).await;
    let paid: PaymentReceived = portal.event(&id).await;
    assert_eq!(paid.amount_kopecks, 2100);

    // An HTTP authority: the bridge hands the application to the back-office over mTLS.
    let app = submit(
        "18.13",
        json!({"tax_year": 2025, "purpose": "embassy"}),
        &session,
    );
    let id = app.application_id.to_string();
    portal.env.send(&app).await;
    let registered: ApplicationRegistered = portal.event(&id).await;
    assert!(!registered.registration_number.is_empty());
    let decided: ApplicationDecided = portal.event(&id).await;
    assert_eq!(decided.verdict, Verdict::Granted);
    portal.stop().await;
}

/// A server whose certificate does not name the host the hub calls is refused, though its CA is
/// trusted: the simulators' certificate names only `127.0.0.1` and the hub reaches the MVD
/// registry as `localhost`. The reconciliation never reaches the registry; after its attempts
/// the command is dead-lettered with the TLS refusal as its reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_certificate_for_another_host_is_refused() {
    let pki = TestPki::for_server_names(&["127.0.0.1"]);
    let mut portal = Portal::start_custom_with_http(
        |sims| sims.tls = Some(pki.sim_tls()),
        |config| {
            config
                .mvd_url
                .set_host(Some("localhost"))
                .expect("a host name");
            config.authority_settings.extend(pki.hub_settings(&SYSTEMS));
        },
        pki.http_client(),
    )
    .await;
    let person = portal.good_persons().await.remove(0);
    portal
        .apply(&person.application("TLS-1", &e2e::portal::phone(901)))
        .await;
    let letters = portal
        .env
        .dead_letters(hub_portal::external::mvd::worker::QUEUE, 1, WAIT)
        .await;
    let reason = &letters[0].error;
    assert!(
        reason.contains("not valid for name \"localhost\""),
        "the refusal names the host: {reason}"
    );
    assert!(
        portal
            .phone_texts(&e2e::portal::phone(901))
            .await
            .is_empty(),
        "no code was sent for an unreconciled application"
    );
    portal.stop().await;
}

/// PostgreSQL over TLS with `sslmode=verify-full` (the hub's `DATABASE_URL` form, through the
/// hub's own pool): a private server with a certificate of the test CA; the CA given in
/// `sslrootcert` gets an encrypted connection, another CA is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_over_tls_is_verified_against_sslrootcert() {
    let pki = TestPki::new();
    let stranger = TestPki::new();
    let pg =
        hub_lab::chaos::servers::PrivatePostgres::start_with_tls(&pki.server_cert, &pki.server_key)
            .await
            .expect("a private PostgreSQL server with TLS");
    let url = |ca: &std::path::Path| {
        format!(
            "{}?sslmode=verify-full&sslrootcert={}",
            pg.url(),
            ca.display()
        )
    };
    let migrator = hub_runtime::store::migrator(&[]).expect("the runtime's migrations");
    let pool = hub_runtime::store::connect(&url(&pki.server_ca), 2, &migrator)
        .await
        .expect("connected over verified TLS");
    let ssl: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&pool)
        .await
        .expect("pg_stat_ssl");
    assert!(ssl, "the session is encrypted");
    pool.close().await;
    let refused = hub_runtime::store::connect(&url(&stranger.server_ca), 2, &migrator)
        .await
        .expect_err("a server certificate of another CA");
    // The stranger CA has the same name as the server's (both TestPki's): rustls finds it as
    // the issuer and the signature does not verify.
    let text = refused.to_string();
    assert!(
        text.contains("invalid peer certificate: BadSignature"),
        "{text}"
    );
}

/// RabbitMQ over TLS (`amqps://`) with a client certificate required: a private node with an
/// AMQPS listener; the hub's broker connection with `HUB_AMQP_CA_FILE`, `HUB_AMQP_CLIENT_CERT`
/// and `HUB_AMQP_CLIENT_KEY` gets in; without the client certificate, or trusting another CA,
/// it does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_over_tls_takes_the_hub_with_its_client_certificate() {
    use hub_lab::chaos::servers::{PrivateRabbit, RabbitTls};
    use hub_runtime::broker::Broker;
    use hub_runtime::tls::BrokerTls;
    let pki = TestPki::new();
    let stranger = e2e::tls::Ca::new("a stranger CA");
    let stranger_ca = std::env::temp_dir().join(format!("stranger-{}.pem", Uuid::new_v4()));
    std::fs::write(&stranger_ca, stranger.pem()).expect("written");
    let node = PrivateRabbit::start_with_tls(RabbitTls {
        cert: &pki.server_cert,
        key: &pki.server_key,
        client_ca: Some(&pki.client_ca),
    })
    .await
    .expect("a private RabbitMQ node with an AMQPS listener");
    let url = node.tls_url().expect("the AMQPS URL");
    let token = tokio_util::sync::CancellationToken::new();

    let tls = BrokerTls::load(
        Some(&pki.server_ca),
        Some(&pki.client_cert),
        Some(&pki.client_key),
    )
    .expect("the broker's TLS files");
    let broker = Broker::connect_with_tls(&url, &tls, "tls test", token.clone())
        .await
        .expect("connected over mutual TLS");
    assert!(broker.is_connected());
    broker.channel(&token).await.expect("a channel");
    broker.close().await;

    let no_client_cert = BrokerTls::load(Some(&pki.server_ca), None, None).expect("the CA");
    let refused = Broker::connect_with_tls(&url, &no_client_cert, "tls test", token.clone())
        .await
        .expect_err("no client certificate");
    // In TLS 1.3 the client's handshake ends before the server judges its certificate: the
    // refusal is the server's certificate_required alert, or, when the client's first AMQP
    // bytes cross it, a reset that discards the alert (seen on a loaded machine). The same
    // connection with the client certificate succeeded just above.
    assert!(
        refused.reason.contains("CertificateRequired")
            || refused.reason.contains("Connection reset by peer"),
        "{refused}"
    );

    let other_ca = BrokerTls::load(
        Some(&stranger_ca),
        Some(&pki.client_cert),
        Some(&pki.client_key),
    )
    .expect("the stranger CA");
    let refused = Broker::connect_with_tls(&url, &other_ca, "tls test", token.clone())
        .await
        .expect_err("a server certificate the hub does not trust");
    assert!(refused.reason.contains("UnknownIssuer"), "{refused}");
    token.cancel();
    let _ = std::fs::remove_file(stranger_ca);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identifier_is_issued_with_a1_on_smpp_over_mutual_tls() {
    let pki = TestPki::new();
    let mut portal = Portal::start_custom_with_http(
        |sims| sims.tls = Some(pki.sim_tls()),
        |config| {
            let smsc = config
                .authority_settings
                .get("HUB_SMS_A1_SMPP_URL")
                .expect("the lab gives A1's SMS centre");
            assert!(smsc.starts_with("smpps://"), "{smsc}");
            config
                .authority_settings
                .insert("HUB_SMS_A1_PROTOCOL".into(), "smpp".into());
            // A1's CA file and client certificate serve its gateway and its SMS centre alike.
            config.authority_settings.extend(pki.hub_settings(&SYSTEMS));
        },
        pki.http_client(),
    )
    .await;
    let (identifier, password, _) = portal.issued(0).await;
    assert!(!identifier.is_empty() && !password.is_empty());
    let sends: i64 = sqlx::query_scalar("SELECT count(*) FROM smpp_sends WHERE operator = 'a1'")
        .fetch_one(&portal.env.pool)
        .await
        .expect("smpp_sends");
    assert_eq!(
        sends, 2,
        "the code and the password went through A1's SMS centre"
    );
    portal.stop().await;
}
