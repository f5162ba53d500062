//! A private PKI for the TLS tests, made in the test (rcgen, ring): a CA that signs the
//! simulators' server certificate (for `127.0.0.1` and `localhost`), a CA that signs the hub's
//! client certificate, and the files the hub's settings name.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use simulators::tls::SimTls;

/// A CA of the test.
#[derive(Debug)]
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    /// A new self-signed CA named `name`.
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("a CA key");
        Ca {
            issuer: CertifiedIssuer::self_signed(params, key).expect("a CA certificate"),
        }
    }

    /// A certificate for `names` signed by this CA, and its key, both PEM.
    pub fn leaf(&self, names: &[&str]) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, "leaf");
        let key = KeyPair::generate().expect("a leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("a leaf");
        (cert.pem(), key.serialize_pem())
    }

    /// The CA's certificate, PEM.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }
}

/// The files of a test PKI, removed when dropped.
#[derive(Debug)]
pub struct TestPki {
    dir: PathBuf,
    /// The CA of the simulators' server certificate (what the hub's `*_CA_FILE` name).
    pub server_ca: PathBuf,
    /// The simulators' server certificate (`127.0.0.1` and `localhost` unless made for other names) and key.
    pub server_cert: PathBuf,
    /// See [`Self::server_cert`].
    pub server_key: PathBuf,
    /// The CA whose client certificates the simulators accept.
    pub client_ca: PathBuf,
    /// The hub's client certificate and key.
    pub client_cert: PathBuf,
    /// See [`Self::client_cert`].
    pub client_key: PathBuf,
}

impl TestPki {
    /// Makes the CAs, certificates and keys, and writes them to a fresh directory.
    pub fn new() -> Self {
        Self::for_server_names(&["127.0.0.1", "localhost"])
    }

    /// [`Self::new`], the simulators' server certificate naming only `names`.
    pub fn for_server_names(names: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!("e2e-pki-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let write = |name: &str, content: &str| -> PathBuf {
            let path = dir.join(name);
            std::fs::write(&path, content).expect("written");
            path
        };
        let server_ca = Ca::new("simulators' test CA");
        let client_ca = Ca::new("hub's test client CA");
        let (server_cert, server_key) = server_ca.leaf(names);
        let (client_cert, client_key) = client_ca.leaf(&["hub.test"]);
        TestPki {
            server_ca: write("server-ca.pem", &server_ca.pem()),
            server_cert: write("server.pem", &server_cert),
            server_key: write("server.key", &server_key),
            client_ca: write("client-ca.pem", &client_ca.pem()),
            client_cert: write("client.pem", &client_cert),
            client_key: write("client.key", &client_key),
            dir,
        }
    }

    /// The simulators' HTTPS, requiring a client certificate of [`Self::client_ca`].
    pub fn sim_tls(&self) -> SimTls {
        SimTls {
            cert: self.server_cert.clone(),
            key: self.server_key.clone(),
            client_ca: Some(self.client_ca.clone()),
        }
    }

    /// The hub's TLS settings for the systems of `prefixes` (`HUB_MVD`, …): the server CA and
    /// the client certificate, as `<prefix>_CA_FILE`, `_CLIENT_CERT`, `_CLIENT_KEY`.
    pub fn hub_settings(&self, prefixes: &[&str]) -> Vec<(String, String)> {
        let path = |p: &Path| p.display().to_string();
        prefixes
            .iter()
            .flat_map(|prefix| {
                [
                    (format!("{prefix}_CA_FILE"), path(&self.server_ca)),
                    (format!("{prefix}_CLIENT_CERT"), path(&self.client_cert)),
                    (format!("{prefix}_CLIENT_KEY"), path(&self.client_key)),
                ]
            })
            .collect()
    }

    /// A client for the test itself: trusts only the server CA, shows the client certificate.
    pub fn http_client(&self) -> reqwest::Client {
        adapters::tls::install_default_provider();
        let read = |p: &Path| std::fs::read(p).expect("a PEM file");
        let ca = reqwest::Certificate::from_pem(&read(&self.server_ca)).expect("the CA");
        let mut identity = read(&self.client_cert);
        identity.extend(read(&self.client_key));
        reqwest::Client::builder()
            .tls_certs_only([ca])
            .identity(reqwest::Identity::from_pem(&identity).expect("the identity"))
            .build()
            .expect("the test's TLS client")
    }
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
