//! TLS of the hub's clients: which CA bundle verifies a system's server certificate, and which
//! client certificate the hub shows it (mutual TLS, what state systems ask of their clients).
//!
//! One scheme names the files of every system: for a system whose settings start with
//! `PREFIX` (`HUB_MVD`, `HUB_SMS_A1`, `HUB_ERIP`, `HUB_AUTHORITY_TAX_MINISTRY`, …),
//!
//! * `PREFIX_CA_FILE`: a PEM bundle of CA certificates that **replaces** the default roots (the
//!   OS trust store) for that system only;
//! * `PREFIX_CLIENT_CERT` and `PREFIX_CLIENT_KEY`: the PEM client certificate (chain) and its
//!   PEM private key (PKCS#8, PKCS#1 or SEC1), given together.
//!
//! Every file is read and parsed once, at start ([`ClientTls::load`]); a file that cannot be
//! read or parsed is a start-up error naming the variable and the file ([`TlsError`]). The
//! crypto provider is ring throughout (no C toolchain, no OpenSSL).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Installs ring as the process's default rustls provider, for the `reqwest` clients built
/// without a TLS config of ours (the simulators' callbacks, tools, tests). Safe to call again:
/// a provider already installed is kept.
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The provider every TLS config of the hub is built with.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The suffixes of the scheme's three settings.
pub const CA_FILE: &str = "_CA_FILE";
/// See [`CA_FILE`].
pub const CLIENT_CERT: &str = "_CLIENT_CERT";
/// See [`CA_FILE`].
pub const CLIENT_KEY: &str = "_CLIENT_KEY";

/// A TLS file could not be used: its message names the setting and the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read.
    #[error("{variable}: cannot read {}: {source}", path.display())]
    Read {
        /// The setting that named the file (`HUB_MVD_CA_FILE`).
        variable: String,
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file was read but holds nothing usable.
    #[error("{variable}: {} {problem}", path.display())]
    Parse {
        /// The setting that named the file.
        variable: String,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// A client certificate without its key, or a key without its certificate.
    #[error(
        "{given} is set but {missing} is not: give the client certificate and its key together"
    )]
    HalfIdentity {
        /// The setting given.
        given: String,
        /// The setting missing.
        missing: String,
    },
    /// rustls refused the configuration (a key that does not match the certificate, …).
    #[error("{prefix}: the TLS configuration was refused: {reason}")]
    Refused {
        /// The settings' prefix.
        prefix: String,
        /// rustls's words.
        reason: String,
    },
}

/// Where one system's TLS files are, and the names of the settings that gave them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// The settings' prefix (`HUB_MVD`); the variables are `<prefix>_CA_FILE`, … .
    pub prefix: String,
    /// `<prefix>_CA_FILE`: the CA bundle that replaces the default roots.
    pub ca_file: Option<PathBuf>,
    /// `<prefix>_CLIENT_CERT`: the client certificate chain.
    pub client_cert: Option<PathBuf>,
    /// `<prefix>_CLIENT_KEY`: the client certificate's private key.
    pub client_key: Option<PathBuf>,
}

impl TlsFiles {
    /// The files `lookup` gives for `prefix` (`lookup("HUB_MVD_CA_FILE")`, …); an empty value
    /// is unset.
    pub fn lookup(prefix: &str, lookup: impl Fn(&str) -> Option<String>) -> Self {
        let get = |suffix: &str| {
            lookup(&format!("{prefix}{suffix}"))
                .filter(|v| !v.trim().is_empty())
                .map(PathBuf::from)
        };
        TlsFiles {
            prefix: prefix.to_owned(),
            ca_file: get(CA_FILE),
            client_cert: get(CLIENT_CERT),
            client_key: get(CLIENT_KEY),
        }
    }

    /// The files the environment gives for `prefix`.
    pub fn from_env(prefix: &str) -> Self {
        Self::lookup(prefix, |key| std::env::var(key).ok())
    }

    fn variable(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.prefix)
    }
}

/// A client certificate chain and its key.
#[derive(Debug)]
struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Identity {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

/// One system's TLS settings, read and parsed: the roots its server certificate is verified
/// against and the client certificate shown to it, if any. The default verifies against the OS
/// trust store and shows none.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    prefix: String,
    roots: Option<Vec<CertificateDer<'static>>>,
    identity: Option<Identity>,
}

impl ClientTls {
    /// Reads and parses `files`.
    ///
    /// Errors: a file that cannot be read, a CA bundle without a certificate, a client
    /// certificate without its key (or the reverse), a key file without a key.
    pub fn load(files: &TlsFiles) -> Result<Self, TlsError> {
        let roots = match &files.ca_file {
            Some(path) => Some(read_certificates(&files.variable(CA_FILE), path)?),
            None => None,
        };
        let identity = match (&files.client_cert, &files.client_key) {
            (None, None) => None,
            (Some(_), None) => {
                return Err(TlsError::HalfIdentity {
                    given: files.variable(CLIENT_CERT),
                    missing: files.variable(CLIENT_KEY),
                });
            }
            (None, Some(_)) => {
                return Err(TlsError::HalfIdentity {
                    given: files.variable(CLIENT_KEY),
                    missing: files.variable(CLIENT_CERT),
                });
            }
            (Some(cert), Some(key)) => Some(Identity {
                chain: read_certificates(&files.variable(CLIENT_CERT), cert)?,
                key: read_key(&files.variable(CLIENT_KEY), key)?,
            }),
        };
        let tls = ClientTls {
            prefix: files.prefix.clone(),
            roots,
            identity,
        };
        // A key that does not match its certificate is found now, not at the first call.
        tls.rustls_config()?;
        Ok(tls)
    }

    /// Settings given in code: `roots` (DER) replace the default roots when given; `identity`
    /// is a client certificate chain (DER) and its key (PKCS#8 DER). For tests and tools.
    pub fn from_der(
        prefix: &str,
        roots: Option<Vec<Vec<u8>>>,
        identity: Option<(Vec<Vec<u8>>, Vec<u8>)>,
    ) -> Self {
        ClientTls {
            prefix: prefix.to_owned(),
            roots: roots.map(|r| r.into_iter().map(CertificateDer::from).collect()),
            identity: identity.map(|(chain, key)| Identity {
                chain: chain.into_iter().map(CertificateDer::from).collect(),
                key: PrivateKeyDer::Pkcs8(key.into()),
            }),
        }
    }

    /// True when a CA bundle replaces the default roots.
    pub fn has_own_roots(&self) -> bool {
        self.roots.is_some()
    }

    /// True when a client certificate is shown.
    pub fn has_client_certificate(&self) -> bool {
        self.identity.is_some()
    }

    /// The rustls client config: ring, TLS 1.2 and 1.3, the roots, the client certificate.
    ///
    /// Errors: rustls refuses the client certificate or its key.
    pub fn rustls_config(&self) -> Result<rustls::ClientConfig, TlsError> {
        let refused = |e: rustls::Error| TlsError::Refused {
            prefix: self.prefix.clone(),
            reason: e.to_string(),
        };
        let roots = match &self.roots {
            Some(certs) => {
                let mut store = RootCertStore::empty();
                let (_, ignored) = store.add_parsable_certificates(certs.iter().cloned());
                if store.is_empty() {
                    return Err(TlsError::Refused {
                        prefix: self.prefix.clone(),
                        reason: format!(
                            "none of the CA bundle's certificates can be a trust anchor ({ignored} refused)"
                        ),
                    });
                }
                Arc::new(store)
            }
            None => native_roots(),
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(refused)?
            .with_root_certificates(roots);
        match &self.identity {
            Some(identity) => builder
                .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())
                .map_err(refused),
            None => Ok(builder.with_no_client_auth()),
        }
    }
}

/// The OS trust store, read once (certificates it cannot parse are left out).
fn native_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::debug!(error = %e, "a certificate of the OS trust store was not read");
            }
            let mut store = RootCertStore::empty();
            store.add_parsable_certificates(found.certs);
            Arc::new(store)
        })
        .clone()
}

/// Every PEM certificate in `path`; at least one.
fn read_certificates(
    variable: &str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(variable, path)?;
    let parse = |problem: String| TlsError::Parse {
        variable: variable.to_owned(),
        path: path.to_owned(),
        problem,
    };
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| parse(format!("is not a PEM certificate bundle ({e})")))?;
    if certs.is_empty() {
        return Err(parse(
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    Ok(certs)
}

/// The PEM private key in `path`.
fn read_key(variable: &str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(variable, path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| TlsError::Parse {
        variable: variable.to_owned(),
        path: path.to_owned(),
        problem: format!("holds no PEM private key (PKCS#8, PKCS#1 or SEC1): {e}"),
    })
}

fn read(variable: &str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        variable: variable.to_owned(),
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("adapters-tls-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        dir
    }

    #[test]
    fn the_variables_follow_the_prefix_and_empty_values_are_unset() {
        let files = TlsFiles::lookup("HUB_MVD", |key| match key {
            "HUB_MVD_CA_FILE" => Some("/etc/hub/mvd-ca.pem".into()),
            "HUB_MVD_CLIENT_CERT" => Some(" ".into()),
            _ => None,
        });
        assert_eq!(files.ca_file, Some(PathBuf::from("/etc/hub/mvd-ca.pem")));
        assert_eq!(files.client_cert, None);
        assert_eq!(files.client_key, None);
        assert!(
            ClientTls::load(&TlsFiles::default()).is_ok(),
            "nothing set: the OS roots"
        );
    }

    #[test]
    fn errors_name_the_variable_and_the_file() {
        let dir = dir();
        let missing = dir.join("missing.pem");
        let garbage = dir.join("garbage.pem");
        std::fs::write(&garbage, "not a certificate").expect("written");
        let files = |ca: &Path| TlsFiles {
            prefix: "HUB_ERIP".into(),
            ca_file: Some(ca.to_owned()),
            ..TlsFiles::default()
        };
        let e = ClientTls::load(&files(&missing)).expect_err("no file");
        let text = e.to_string();
        assert!(
            text.starts_with(&format!(
                "HUB_ERIP_CA_FILE: cannot read {}",
                missing.display()
            )),
            "{text}"
        );
        let e = ClientTls::load(&files(&garbage)).expect_err("no certificate");
        assert_eq!(
            e.to_string(),
            format!(
                "HUB_ERIP_CA_FILE: {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                garbage.display()
            )
        );
        let half = TlsFiles {
            prefix: "HUB_ERIP".into(),
            client_cert: Some(garbage.clone()),
            ..TlsFiles::default()
        };
        assert_eq!(
            ClientTls::load(&half).expect_err("no key").to_string(),
            "HUB_ERIP_CLIENT_CERT is set but HUB_ERIP_CLIENT_KEY is not: give the client certificate and its key together"
        );
        let ca = rcgen::generate_simple_self_signed(vec!["erip.test".into()]).expect("a cert");
        let cert = dir.join("client.pem");
        std::fs::write(&cert, ca.cert.pem()).expect("written");
        let no_key = TlsFiles {
            prefix: "HUB_ERIP".into(),
            client_cert: Some(cert),
            client_key: Some(garbage.clone()),
            ..TlsFiles::default()
        };
        let text = ClientTls::load(&no_key).expect_err("no key").to_string();
        assert!(
            text.starts_with(&format!(
                "HUB_ERIP_CLIENT_KEY: {} holds no PEM private key",
                garbage.display()
            )),
            "{text}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
