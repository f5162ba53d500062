//! TLS of the broker connection, and the process's default TLS provider.
//!
//! `amqps://` URLs verify the broker's certificate against the OS trust store and, when
//! `HUB_AMQP_CA_FILE` names a PEM bundle, its CA certificates too (lapin adds them to the roots;
//! it cannot replace them). `HUB_AMQP_CLIENT_CERT` and `HUB_AMQP_CLIENT_KEY` (PEM) give the
//! client certificate the broker may ask for. The files are read and checked at start
//! ([`BrokerTls::load`]): a file that cannot be read or parsed is a start-up error naming the
//! variable and the file. PostgreSQL takes its TLS settings from `DATABASE_URL` itself
//! (`sslmode=verify-full&sslrootcert=…&sslcert=…&sslkey=…`).

use std::path::Path;

use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Installs ring as the process's default rustls provider, for the `reqwest` clients built
/// without a TLS config of their own (the console's probes, tools, tests). Safe to call again.
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The variable of the broker's CA bundle.
pub const AMQP_CA_FILE: &str = "HUB_AMQP_CA_FILE";
/// The variable of the broker client certificate.
pub const AMQP_CLIENT_CERT: &str = "HUB_AMQP_CLIENT_CERT";
/// The variable of the broker client certificate's key.
pub const AMQP_CLIENT_KEY: &str = "HUB_AMQP_CLIENT_KEY";

/// A broker TLS file could not be used; the message names the variable and the file.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct TlsFileError {
    /// The variable that named the file (or was missing).
    pub variable: &'static str,
    /// What is wrong, with the file's path.
    pub problem: String,
}

/// The broker connection's TLS settings, read and checked; the default adds no CA and shows no
/// client certificate.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BrokerTls {
    config: OwnedTLSConfig,
}

impl BrokerTls {
    /// Reads the CA bundle and the client certificate and key.
    ///
    /// Errors: a file that cannot be read, a bundle without a certificate, a key file without
    /// a key, a certificate without its key or the reverse.
    pub fn load(
        ca_file: Option<&Path>,
        client_cert: Option<&Path>,
        client_key: Option<&Path>,
    ) -> Result<Self, TlsFileError> {
        let mut config = OwnedTLSConfig::default();
        if let Some(path) = ca_file {
            let pem = read(AMQP_CA_FILE, path)?;
            certificates(AMQP_CA_FILE, path, &pem)?;
            config.cert_chain = Some(String::from_utf8(pem).map_err(|_| TlsFileError {
                variable: AMQP_CA_FILE,
                problem: format!("{} is not PEM text", path.display()),
            })?);
        }
        config.identity = match (client_cert, client_key) {
            (None, None) => None,
            (Some(_), None) => return Err(half(AMQP_CLIENT_CERT, AMQP_CLIENT_KEY)),
            (None, Some(_)) => return Err(half(AMQP_CLIENT_KEY, AMQP_CLIENT_CERT)),
            (Some(cert), Some(key)) => {
                let pem = read(AMQP_CLIENT_CERT, cert)?;
                certificates(AMQP_CLIENT_CERT, cert, &pem)?;
                let key_pem = read(AMQP_CLIENT_KEY, key)?;
                PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsFileError {
                    variable: AMQP_CLIENT_KEY,
                    problem: format!(
                        "{} holds no PEM private key (PKCS#8, PKCS#1 or SEC1): {e}",
                        key.display()
                    ),
                })?;
                Some(OwnedIdentity::PKCS8 { pem, key: key_pem })
            }
        };
        Ok(BrokerTls { config })
    }

    /// True when nothing is configured: the OS roots, no client certificate.
    pub fn is_default(&self) -> bool {
        self.config == OwnedTLSConfig::default()
    }

    /// lapin's form of the settings.
    pub fn lapin_config(&self) -> OwnedTLSConfig {
        self.config.clone()
    }
}

fn half(given: &'static str, missing: &'static str) -> TlsFileError {
    TlsFileError {
        variable: given,
        problem: format!(
            "is set but {missing} is not: give the client certificate and its key together"
        ),
    }
}

fn read(variable: &'static str, path: &Path) -> Result<Vec<u8>, TlsFileError> {
    std::fs::read(path).map_err(|e| TlsFileError {
        variable,
        problem: format!("cannot read {}: {e}", path.display()),
    })
}

fn certificates(variable: &'static str, path: &Path, pem: &[u8]) -> Result<(), TlsFileError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsFileError {
            variable,
            problem: format!("{} is not a PEM certificate bundle ({e})", path.display()),
        })?;
    if certs.is_empty() {
        return Err(TlsFileError {
            variable,
            problem: format!(
                "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                path.display()
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_checked_at_start_and_errors_name_the_variable_and_file() {
        assert!(
            BrokerTls::load(None, None, None)
                .expect("nothing set")
                .is_default()
        );
        let dir = std::env::temp_dir().join(format!("runtime-tls-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let garbage = dir.join("garbage.pem");
        std::fs::write(&garbage, "not PEM").expect("written");
        let e = BrokerTls::load(Some(&dir.join("none.pem")), None, None).expect_err("no file");
        assert!(
            e.to_string().starts_with("HUB_AMQP_CA_FILE: cannot read "),
            "{e}"
        );
        let e = BrokerTls::load(Some(&garbage), None, None).expect_err("no certificate");
        assert_eq!(
            e.to_string(),
            format!(
                "HUB_AMQP_CA_FILE: {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                garbage.display()
            )
        );
        let e = BrokerTls::load(None, Some(&garbage), None).expect_err("half");
        assert_eq!(
            e.to_string(),
            "HUB_AMQP_CLIENT_CERT: is set but HUB_AMQP_CLIENT_KEY is not: give the client certificate and its key together"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
