//! HTTPS for the simulators (`--tls-cert`, `--tls-key`, and `--tls-client-ca` to require client
//! certificates), so the hub's TLS, mutual TLS included, can be tried on one machine. Plain HTTP
//! stays the default.
//!
//! The TLS handshake runs in a task of its own per connection (bounded by
//! [`HANDSHAKE_TIMEOUT`]), so a slow or failing client holds up no other; a connection whose
//! handshake fails (no client certificate, a certificate the CA did not sign, …) is dropped and
//! logged. The servers stay axum's own ([`axum::serve`]), given a listener of TLS streams.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

/// The longest a client may take over its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Installs ring as the process's default rustls provider, for the simulators' own `reqwest`
/// client (reports, notifications, callbacks). Safe to call again.
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Where the simulators' server certificate is, and whether they require client certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimTls {
    /// PEM certificate chain of the servers (`--tls-cert`): its names must cover the host the
    /// clients use (`127.0.0.1`, `localhost`).
    pub cert: PathBuf,
    /// Its PEM private key (`--tls-key`).
    pub key: PathBuf,
    /// PEM bundle of the CAs whose client certificates are accepted (`--tls-client-ca`); when
    /// given, a client without such a certificate is refused at the handshake.
    pub client_ca: Option<PathBuf>,
}

impl SimTls {
    /// The rustls server config (ring; HTTP/1.1).
    ///
    /// Errors: a file that cannot be read or parsed, named with its option.
    pub fn server_config(&self) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let chain = certificates("--tls-cert", &self.cert)?;
        let key = PrivateKeyDer::from_pem_file(&self.key).with_context(|| {
            format!(
                "--tls-key: {} holds no readable PEM private key",
                self.key.display()
            )
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("the TLS protocol versions")?;
        let builder = match &self.client_ca {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let mut roots = RootCertStore::empty();
                for cert in certificates("--tls-client-ca", path)? {
                    roots.add(cert).with_context(|| {
                        format!(
                            "--tls-client-ca: a certificate of {} is no CA",
                            path.display()
                        )
                    })?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .context("--tls-client-ca: the client certificate verifier")?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder
            .with_single_cert(chain, key)
            .context("--tls-cert/--tls-key: the certificate and key do not go together")?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

fn certificates(option: &str, path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| {
            format!(
                "{option}: cannot read PEM certificates from {}",
                path.display()
            )
        })?;
    if certs.is_empty() {
        anyhow::bail!("{option}: {} holds no PEM certificate", path.display());
    }
    Ok(certs)
}

/// A listener of TLS streams for [`axum::serve`]: connections accepted on a TCP listener,
/// their handshakes done in tasks of their own, until `shutdown`.
pub(crate) struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Starts accepting on `tcp` with `config`.
    pub(crate) fn new(
        tcp: TcpListener,
        config: Arc<rustls::ServerConfig>,
        shutdown: CancellationToken,
    ) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        let acceptor = TlsAcceptor::from(config);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tx.closed() => return,
                    accepted = tcp.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(e) => {
                            tracing::debug!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::info!(%peer, error = %e, "TLS handshake refused");
                        }
                        Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { ready, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The acceptor stopped (shutdown): wait for the server's own shutdown.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
