//! Mutual TLS against a simulator on this machine: the MVD simulator serves HTTPS and requires a
//! client certificate; certificates are made in the test. The hub's client with the system's CA
//! bundle and its client certificate gets through; without the certificate, with a CA that did
//! not sign the server's certificate, or against a certificate for another host name, it is
//! refused with a failure saying why.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::NaiveDate;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use simulators::tls::SimTls;
use simulators::{SimConfig, SimKind};
use tokio_util::sync::CancellationToken;

use crate::FailureKind;
use crate::failure::QuickRetry;
use crate::mvd::{DocumentKind, DocumentRef, MvdClient, ReconcileRequest};
use crate::tls::{ClientTls, TlsFiles};

/// A CA of the test: its certificate and the issuer that signs with its key.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("a CA key");
        Ca {
            issuer: CertifiedIssuer::self_signed(params, key).expect("a CA certificate"),
        }
    }

    /// A leaf certificate for `names` and its key, both PEM.
    fn leaf(&self, names: &[&str]) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, "leaf");
        let key = KeyPair::generate().expect("a leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("a leaf");
        (cert.pem(), key.serialize_pem())
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }
}

struct Files {
    dir: PathBuf,
}

impl Files {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("adapters-mtls-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        Files { dir }
    }

    fn write(&self, name: &str, content: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, content).expect("written");
        path
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts the MVD simulator over HTTPS with `cert`/`key`, requiring client certificates of
/// `client_ca`.
async fn mvd_over_tls(
    cert: &Path,
    key: &Path,
    client_ca: &Path,
    shutdown: &CancellationToken,
) -> url::Url {
    let running = simulators::start(
        SimConfig {
            only: Some(vec![SimKind::Mvd]),
            population: 10,
            tls: Some(SimTls {
                cert: cert.to_owned(),
                key: key.to_owned(),
                client_ca: Some(client_ca.to_owned()),
            }),
            ..SimConfig::ephemeral()
        },
        shutdown.clone(),
    )
    .await
    .expect("the MVD simulator starts over TLS");
    let url = running.mvd.clone().expect("the MVD URL");
    assert_eq!(url.scheme(), "https");
    tokio::spawn(running.stopped());
    url
}

fn request() -> ReconcileRequest {
    let date = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).expect("a date");
    ReconcileRequest {
        identification_number: "3270287A012PB2".to_owned(),
        surname: "Иванова".to_owned(),
        given_name: "Анна".to_owned(),
        patronymic: Some("Сергеевна".to_owned()),
        birth_date: date(1987, 2, 27),
        document: DocumentRef {
            kind: DocumentKind::Passport,
            number: "MP1234567".to_owned(),
            issued_on: date(2015, 3, 1),
            expires_on: date(2025, 3, 1),
        },
    }
}

fn client(url: &url::Url, tls: &ClientTls) -> MvdClient {
    MvdClient::new(url.clone(), Duration::from_secs(5))
        .expect("a client")
        .with_retry(QuickRetry {
            attempts: 1,
            ..QuickRetry::default()
        })
        .with_tls(tls)
        .expect("the TLS settings are taken")
}

fn load(ca: Option<&Path>, cert: Option<&Path>, key: Option<&Path>) -> ClientTls {
    ClientTls::load(&TlsFiles {
        prefix: "HUB_MVD".into(),
        ca_file: ca.map(Path::to_owned),
        client_cert: cert.map(Path::to_owned),
        client_key: key.map(Path::to_owned),
    })
    .expect("the files load")
}

#[tokio::test]
async fn mutual_tls_to_a_simulator_gets_through_only_with_the_right_ca_and_client_certificate() {
    let files = Files::new();
    let server_ca = Ca::new("MVD test server CA");
    let client_ca = Ca::new("hub test client CA");
    let stranger_ca = Ca::new("some other CA");
    let (server_cert, server_key) = server_ca.leaf(&["127.0.0.1", "localhost"]);
    let (client_cert, client_key) = client_ca.leaf(&["hub.test"]);
    let server_ca_file = files.write("server-ca.pem", &server_ca.pem());
    let stranger_ca_file = files.write("stranger-ca.pem", &stranger_ca.pem());
    let client_ca_file = files.write("client-ca.pem", &client_ca.pem());
    let server_cert_file = files.write("server.pem", &server_cert);
    let server_key_file = files.write("server.key", &server_key);
    let client_cert_file = files.write("client.pem", &client_cert);
    let client_key_file = files.write("client.key", &client_key);

    let shutdown = CancellationToken::new();
    let url = mvd_over_tls(
        &server_cert_file,
        &server_key_file,
        &client_ca_file,
        &shutdown,
    )
    .await;

    // The system's CA and the hub's client certificate: an answer.
    let good = load(
        Some(&server_ca_file),
        Some(&client_cert_file),
        Some(&client_key_file),
    );
    client(&url, &good)
        .reconcile(uuid::Uuid::new_v4(), &request())
        .await
        .expect("MVD answers over mutual TLS");

    // No client certificate: the server refuses the handshake.
    let failure = client(&url, &load(Some(&server_ca_file), None, None))
        .reconcile(uuid::Uuid::new_v4(), &request())
        .await
        .expect_err("no client certificate");
    assert_eq!(failure.kind, FailureKind::Transient, "{}", failure.reason);
    assert!(
        failure
            .reason
            .starts_with("MVD could not be reached over TLS: ")
            && failure.reason.contains("CertificateRequired"),
        "{}",
        failure.reason
    );

    // A CA that did not sign the server's certificate: the hub refuses the server.
    let failure = client(
        &url,
        &load(
            Some(&stranger_ca_file),
            Some(&client_cert_file),
            Some(&client_key_file),
        ),
    )
    .reconcile(uuid::Uuid::new_v4(), &request())
    .await
    .expect_err("an unknown issuer");
    assert_eq!(
        failure.reason,
        "MVD could not be reached over TLS: invalid peer certificate: UnknownIssuer"
    );

    // The OS roots (no CA bundle) do not know the test CA either.
    let failure = client(&url, &ClientTls::default())
        .reconcile(uuid::Uuid::new_v4(), &request())
        .await
        .expect_err("not in the OS roots");
    assert!(
        failure.reason.contains("UnknownIssuer"),
        "{}",
        failure.reason
    );
    shutdown.cancel();

    // A certificate of the right CA but for another host: refused too.
    let (other_cert, other_key) = server_ca.leaf(&["mvd.other.example"]);
    let other_cert_file = files.write("other.pem", &other_cert);
    let other_key_file = files.write("other.key", &other_key);
    let shutdown = CancellationToken::new();
    let url = mvd_over_tls(
        &other_cert_file,
        &other_key_file,
        &client_ca_file,
        &shutdown,
    )
    .await;
    let failure = client(&url, &good)
        .reconcile(uuid::Uuid::new_v4(), &request())
        .await
        .expect_err("a certificate for another name");
    assert!(
        failure
            .reason
            .starts_with("MVD could not be reached over TLS: invalid peer certificate: ")
            && failure
                .reason
                .contains(r#"certificate not valid for name "127.0.0.1""#),
        "{}",
        failure.reason
    );
    shutdown.cancel();
}

#[tokio::test]
async fn smpp_over_tls_binds_and_sends_only_with_the_right_ca() {
    use crate::smpp::{SmppClient, SmppConfig};
    use contracts::person::{Msisdn, Operator};

    let files = Files::new();
    let server_ca = Ca::new("SMS centre test CA");
    let stranger_ca = Ca::new("some other CA");
    let (server_cert, server_key) = server_ca.leaf(&["127.0.0.1", "localhost"]);
    let server_ca_file = files.write("server-ca.pem", &server_ca.pem());
    let stranger_ca_file = files.write("stranger-ca.pem", &stranger_ca.pem());
    let shutdown = CancellationToken::new();
    let running = simulators::start(
        SimConfig {
            only: Some(vec![SimKind::A1]),
            tls: Some(SimTls {
                cert: files.write("server.pem", &server_cert),
                key: files.write("server.key", &server_key),
                client_ca: None,
            }),
            ..SimConfig::ephemeral()
        },
        shutdown.clone(),
    )
    .await
    .expect("A1 starts over TLS");
    let addr = running.smpp_addr(SimKind::A1).expect("A1's SMS centre");
    let config = |ca: &Path| {
        let mut config = SmppConfig::new(Operator::A1, "127.0.0.1", addr.port(), "hub", "a1-dev");
        config.response_timeout = Duration::from_secs(2);
        config.reconnect_min = Duration::from_millis(20);
        config.tls = Some(load(Some(ca), None, None));
        config
    };

    // The SMS centre's CA: bound, sent, delivered.
    let (client, mut reports) = SmppClient::start(config(&server_ca_file));
    let to = Msisdn::parse("+375291234567").expect("a number");
    let sent = client
        .send(&to, "Code 123456")
        .await
        .expect("sent over TLS");
    let report = tokio::time::timeout(Duration::from_secs(10), reports.recv())
        .await
        .expect("a report in time")
        .expect("the client runs");
    assert_eq!(report.provider_message_id, sent.provider_message_id);
    assert!(report.delivered);
    client.drain(Duration::from_secs(2)).await;

    // Another CA: the handshake fails, the client never binds.
    let mut refused = config(&stranger_ca_file);
    refused.attempts = 1;
    let (stranger, _reports) = SmppClient::start(refused);
    assert!(!stranger.bound(Duration::from_millis(500)).await);
    assert_eq!(stranger.binds(), 0);
    let failure = stranger.send(&to, "Code 1").await.expect_err("not bound");
    assert_eq!(failure.kind, FailureKind::Transient);
    drop(stranger);
    shutdown.cancel();
    running.stopped().await;
}
