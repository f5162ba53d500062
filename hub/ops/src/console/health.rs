//! The health page: readiness as `GET /readyz` sees it, every queue of the namespace with its
//! depth and consumers (a passive `queue.declare` answers both without touching the queue), the
//! dead letters waiting, the outbox lag, and whether each external system answers.
//!
//! An HTTP system is probed with a `GET` of a cheap endpoint of its API (its probe path, set per
//! system: `<PREFIX>_PROBE_PATH`; the simulators answer `healthz` under their faults, GosSUOK
//! publishes its root certificate at `ca/root.der`), and it is "up" only when that call answers
//! `2xx` within the probe timeout: a `404` (no such endpoint: the probe path or the base URL is
//! wrong) or a `5xx` (the system fails) is "down" with the status in the reason, as is no
//! answer. The page shows the call's status and latency. The mail server is "up" when it greets
//! a new connection with `220` (over TLS from the first byte for `smtps://`); the probe then
//! says `QUIT`.
//!
//! An `https://` system is probed with the TLS settings its adapter uses (its CA bundle, its
//! client certificate: [`ExternalSystem::tls`]), so a system with a private CA or one that
//! requires mutual TLS is up when the adapter can reach it; when the handshake fails the page
//! says why in rustls's words (`TLS: invalid peer certificate: UnknownIssuer`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use futures_util::future::join_all;
use maud::{Markup, html};

use super::auth::SignedIn;
use super::layout::{self, Section};
use super::{Console, HubParts};
use crate::dlq::{self, Filter};
use hub_runtime::config::mask_url;
pub use hub_runtime::health::{ExternalSystem, Target};

/// Where a system is, for the page: no password.
fn shown(target: &Target) -> String {
    match target {
        Target::Http(url) => mask_url(url.as_str()),
        Target::Tcp { host, port } => format!("{host}:{port}"),
    }
}

/// What one probe saw.
#[derive(Debug, Clone)]
struct Probe {
    /// It answered `2xx` (an HTTP system), or greeted with `220` (the mail server).
    up: bool,
    latency: Duration,
    detail: String,
}

/// An external system and the HTTP client its probes go through.
#[derive(Debug, Clone)]
pub(super) struct Probed {
    system: ExternalSystem,
    client: reqwest::Client,
}

/// The systems with their probes' clients, built once at start: an HTTP system with TLS
/// settings of its own gets a client with them (its CA bundle, its client certificate), the
/// others share one client of the process's defaults. Redirects are not followed: a probe
/// path answers itself.
///
/// Errors: a client that cannot be built (the system's TLS config refused), naming the system.
pub(super) fn probed(
    systems: Vec<ExternalSystem>,
    timeout: Duration,
) -> anyhow::Result<Vec<Probed>> {
    hub_runtime::tls::install_default_provider();
    let shared = client(None, timeout)?;
    systems
        .into_iter()
        .map(|system| {
            let client = match (&system.target, &system.tls) {
                (Target::Http(_), Some(tls)) => client(Some(tls), timeout).map_err(|e| {
                    anyhow::anyhow!(
                        "console: the health probe of {} cannot be built: {e}",
                        system.name
                    )
                })?,
                _ => shared.clone(),
            };
            Ok(Probed { system, client })
        })
        .collect()
}

/// A probe client: bounded by `timeout`, redirects not followed, HTTP/1.1 (as the adapters
/// speak), with `tls` when given.
fn client(
    tls: Option<&Arc<rustls::ClientConfig>>,
    timeout: Duration,
) -> Result<reqwest::Client, reqwest::Error> {
    let builder = reqwest::Client::builder()
        .connect_timeout(timeout)
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none());
    let builder = match tls {
        Some(tls) => {
            let mut config = rustls::ClientConfig::clone(tls);
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            builder.tls_backend_preconfigured(config)
        }
        None => builder,
    };
    builder.build()
}

/// Why a call failed, for the page: a TLS problem in rustls's words (an unknown issuer, a name
/// the certificate does not cover, the server's alert that a client certificate is required),
/// else the innermost cause.
fn call_failed(error: &reqwest::Error, timeout: Duration) -> String {
    if let Some(tls) = tls_cause(error) {
        return format!("TLS: {tls}");
    }
    if error.is_timeout() {
        return format!("no answer within {timeout:?}");
    }
    let what = if error.is_connect() {
        "cannot connect"
    } else {
        "the call failed"
    };
    match innermost(error) {
        Some(cause) => format!("{what}: {cause}"),
        None => what.to_owned(),
    }
}

/// The next error down the chain. An I/O error's `source` skips the error it wraps (where
/// rustls's is): go through the wrapped one.
fn next_cause<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a (dyn std::error::Error + 'static)> {
    match e
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
    {
        Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
        None => e.source(),
    }
}

/// The rustls error behind `error`, if there is one.
fn tls_cause(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
        current = next_cause(e);
    }
    None
}

/// The last error of the chain below `error` (the OS's words: connection refused, …).
fn innermost(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut last = None;
    let mut current = next_cause(error);
    while let Some(e) = current {
        last = Some(e.to_string());
        current = next_cause(e);
    }
    last
}

/// `HTTP 404 Not Found`: the status as the page shows it.
fn status_text(status: reqwest::StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("HTTP {} {reason}", status.as_u16()),
        None => format!("HTTP {}", status.as_u16()),
    }
}

async fn probe(
    client: &reqwest::Client,
    timeout: Duration,
    target: &Target,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Probe {
    let started = Instant::now();
    match target {
        Target::Http(url) => match client.get(url.clone()).send().await {
            Ok(r) => Probe {
                up: r.status().is_success(),
                latency: started.elapsed(),
                detail: status_text(r.status()),
            },
            Err(e) => Probe {
                up: false,
                latency: started.elapsed(),
                detail: call_failed(&e, timeout),
            },
        },
        Target::Tcp { host, port } => {
            let greeted = tokio::time::timeout(timeout, smtp_greeting(host, *port, tls)).await;
            let (up, detail) = match greeted {
                Ok(Ok(line)) => (line.starts_with("220"), format!("SMTP {line}")),
                Ok(Err(e)) => (false, e),
                Err(_) => (false, format!("no greeting within {timeout:?}")),
            };
            Probe {
                up,
                latency: started.elapsed(),
                detail,
            }
        }
    }
}

/// The first line a mail server says on a new connection (over TLS from the first byte when
/// `tls` is given: `smtps://`), cut to 80 characters; then `QUIT`. A server that takes mail
/// greets with `220`; `421` or `554` mean it refuses.
async fn smtp_greeting(
    host: &str,
    port: u16,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<String, String> {
    let tcp = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    match tls {
        None => read_greeting(tcp).await,
        Some(config) => {
            let name = rustls::pki_types::ServerName::try_from(host.to_owned())
                .map_err(|e| format!("TLS: {host} is no server name: {e}"))?;
            let stream = tokio_rustls::TlsConnector::from(config.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| match tls_cause(&e) {
                    Some(tls) => format!("TLS: {tls}"),
                    None => format!("TLS: {e}"),
                })?;
            read_greeting(stream).await
        }
    }
}

async fn read_greeting<S>(stream: S) -> Result<String, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    let mut reader = tokio::io::BufReader::new(stream);
    let mut line = Vec::new();
    // A greeting line is short: read at most 512 bytes of it.
    (&mut reader)
        .take(512)
        .read_until(b'\n', &mut line)
        .await
        .map_err(|e| format!("the greeting could not be read: {e}"))?;
    if line.is_empty() {
        return Err("closed without a greeting".to_owned());
    }
    let _ = reader.get_mut().write_all(b"QUIT\r\n").await;
    let text = String::from_utf8_lossy(&line);
    Ok(text.trim_end().chars().take(80).collect())
}

/// One queue of the namespace.
#[derive(Debug, Clone)]
struct QueueRow {
    name: String,
    role: String,
    /// Messages ready and consumers, or why they are not known.
    seen: Result<(u32, u32), String>,
}

/// The queues of the namespace, in the order operators read them: each work queue with its
/// dead-letter queue, then the retry tiers and the unrouted queue.
fn queue_names(hub: &HubParts) -> Vec<(String, String)> {
    let t = &hub.topology;
    let mut out = Vec::new();
    for q in t.queues() {
        out.push((t.work_queue(&q.name), "work".to_owned()));
        out.push((t.dead_queue(&q.name), "dead letters".to_owned()));
    }
    for (i, tier) in t.retry_tiers().iter().enumerate() {
        out.push((t.retry_tier(i), format!("retry after {:?}", tier.delay)));
    }
    out.push((t.unrouted(), "unrouted".to_owned()));
    out
}

/// The messages ready in the namespace's work queues, summed; `None` when no queue's depth could
/// be read (the monitor's queue depth).
pub(super) async fn work_queue_depth(console: &Console) -> Option<u64> {
    let rows = queue_depths(console).await;
    let depths: Vec<u64> = rows
        .iter()
        .filter(|q| q.role == "work")
        .filter_map(|q| {
            q.seen
                .as_ref()
                .ok()
                .map(|(messages, _)| u64::from(*messages))
        })
        .collect();
    (!depths.is_empty()).then(|| depths.iter().sum())
}

async fn queue_depths(console: &Console) -> Vec<QueueRow> {
    let names = queue_names(&console.hub);
    let row = |(name, role): &(String, String), seen| QueueRow {
        name: name.clone(),
        role: role.clone(),
        seen,
    };
    let unknown = |why: &str| names.iter().map(|n| row(n, Err(why.to_owned()))).collect();
    if !console.hub.broker.is_connected() {
        return unknown("the broker is not connected");
    }
    let queues: Vec<String> = names.iter().map(|(name, _)| name.clone()).collect();
    let Some(states) = console
        .hub
        .broker
        .queue_states(&queues, console.probe_timeout, &console.shutdown)
        .await
    else {
        return unknown("no channel could be opened");
    };
    names
        .iter()
        .zip(states)
        .map(|(n, state)| {
            let seen = state
                .map(|s| (s.messages, s.consumers))
                .map_err(|e| e.to_string());
            row(n, seen)
        })
        .collect()
}

/// `GET /health`.
pub(super) async fn page(
    State(console): State<Arc<Console>>,
    Extension(signed): Extension<SignedIn>,
) -> Response {
    let pool = &console.hub.pool;
    let probes = join_all(console.systems.iter().map(|p| {
        probe(
            &p.client,
            console.probe_timeout,
            &p.system.target,
            p.system.tls.as_ref(),
        )
    }));
    let waiting = Filter::default();
    let (readiness, queues, dead, outbox, probes) = tokio::join!(
        console.hub.readiness.check(),
        queue_depths(&console),
        dlq::count(pool, &waiting),
        hub_runtime::metrics::outbox_lag(pool),
        probes,
    );
    let flash = console.sessions.take_flash(&signed.id);
    let content = html! {
        h2 { "Readiness" }
        p #readiness {
            @if readiness.is_ready() { span.up { "ready" } } @else { span.down { "not ready" } }
        }
        table {
            thead { tr { th { "Check" } th { "" } th { "Seen" } } }
            tbody {
                @for (name, check) in &readiness.checks {
                    tr { td { (name) } td { (up_down(check.ok)) } td { (check.detail) } }
                }
            }
        }
        h2 { "Dead letters and outbox" }
        dl.facts {
            dt { "Dead letters waiting" }
            dd #dead-letter-count {
                @match &dead {
                    Ok(0) => span.up { "0" },
                    Ok(n) => { a.warn href="/dead-letters" { (n) } " not yet replayed nor discarded" },
                    Err(e) => span.down { "unknown: " (e) },
                }
            }
            dt { "Outbox" }
            dd #outbox {
                @match outbox {
                    Some((0, _)) => span.up { "every message sent" },
                    Some((n, lag)) => {
                        span class=(if lag > 30.0 { "down" } else { "warn" }) {
                            (n) " unsent, the oldest for " (crate::sagas::age_text(chrono::Duration::milliseconds((lag * 1000.0) as i64)))
                        }
                    },
                    None => span.down { "unknown: the database did not answer" },
                }
            }
        }
        h2 { "External systems" }
        (systems_table(&console.systems, &probes))
        h2 { "Queues" }
        (queues_table(&queues))
    };
    layout::page("Health", Section::Health, &signed, flash, content).into_response()
}

fn up_down(ok: bool) -> Markup {
    html! { @if ok { span.up { "ok" } } @else { span.down { "failing" } } }
}

fn systems_table(systems: &[Probed], probes: &[Probe]) -> Markup {
    html! {
        table #systems {
            thead { tr { th { "System" } th { "Address" } th { "State" } th.num { "Latency" } th { "Seen" } } }
            tbody {
                @for (s, p) in systems.iter().map(|p| &p.system).zip(probes) {
                    tr data-system=(s.name) {
                        td { (s.name) }
                        td { code { (shown(&s.target)) } }
                        td {
                            @if p.up { span.up { "up" } } @else { span.down { "down" } }
                        }
                        td.num { (p.latency.as_millis()) " ms" }
                        td { (p.detail) }
                    }
                }
            }
        }
    }
}

fn queues_table(rows: &[QueueRow]) -> Markup {
    html! {
        table #queues {
            thead { tr { th { "Queue" } th { "Role" } th.num { "Messages" } th.num { "Consumers" } } }
            tbody {
                @for q in rows {
                    tr data-queue=(q.name) {
                        td { code { (q.name) } }
                        td { (q.role) }
                        @match &q.seen {
                            Ok((messages, consumers)) => {
                                td.num.warn[q.role == "dead letters" && *messages > 0] { (messages) }
                                td.num.warn[q.role == "work" && *consumers == 0] { (consumers) }
                            },
                            Err(e) => td.down colspan="2" { (e) },
                        }
                    }
                }
            }
        }
        p.muted {
            "A work queue without consumers is consumed by no process of this hub (an authority's "
            "queue is consumed by the authority). Dead-letter queues are emptied into the table by the keeper."
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A private CA of the test.
    struct Ca(CertifiedIssuer<'static, KeyPair>);

    impl Ca {
        fn new(name: &str) -> Self {
            let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, name);
            let key = KeyPair::generate().expect("a CA key");
            Ca(CertifiedIssuer::self_signed(params, key).expect("a CA certificate"))
        }

        /// A certificate for `name` signed by this CA, and its key.
        fn leaf(&self, name: &str) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
            let params = CertificateParams::new(vec![name.to_owned()]).expect("leaf params");
            let key = KeyPair::generate().expect("a leaf key");
            let cert = params.signed_by(&key, &self.0).expect("a leaf");
            (
                cert.der().clone(),
                PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
            )
        }

        fn roots(&self) -> Arc<rustls::RootCertStore> {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(self.0.der().clone()).expect("a root");
            Arc::new(roots)
        }
    }

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    /// A client config as an adapter's: `ca`'s roots only, and `identity` shown when given.
    fn client_tls(
        ca: &Ca,
        identity: Option<(CertificateDer<'static>, PrivateKeyDer<'static>)>,
    ) -> Arc<rustls::ClientConfig> {
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(ca.roots());
        Arc::new(match identity {
            Some((cert, key)) => builder
                .with_client_auth_cert(vec![cert], key)
                .expect("a client certificate"),
            None => builder.with_no_client_auth(),
        })
    }

    /// An HTTPS server on a free port answering `200 OK` to anything, with a certificate of
    /// `ca` for 127.0.0.1; when `clients` is given, only clients with a certificate of it get
    /// through the handshake (mutual TLS).
    async fn https_server(ca: &Ca, clients: Option<&Ca>) -> url::Url {
        let (cert, key) = ca.leaf("127.0.0.1");
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions");
        let builder = match clients {
            Some(clients) => builder.with_client_cert_verifier(
                rustls::server::WebPkiClientVerifier::builder_with_provider(
                    clients.roots(),
                    provider(),
                )
                .build()
                .expect("a client verifier"),
            ),
            None => builder.with_no_client_auth(),
        };
        let config = builder
            .with_single_cert(vec![cert], key)
            .expect("a server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        let addr = listener.local_addr().expect("its address");
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let _ = tls
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        format!("https://{addr}/").parse().expect("a URL")
    }

    /// Probes `url` as the console would, with `tls` as the system's settings.
    async fn probe_with(url: &url::Url, tls: Option<Arc<rustls::ClientConfig>>) -> Probe {
        let timeout = Duration::from_secs(5);
        let system = ExternalSystem {
            name: "MVD population registry".into(),
            target: Target::Http(url.clone()),
            tls,
        };
        let probed = probed(vec![system], timeout).expect("a probe client");
        probe(
            &probed[0].client,
            timeout,
            &probed[0].system.target,
            probed[0].system.tls.as_ref(),
        )
        .await
    }

    #[tokio::test]
    async fn a_system_with_a_private_ca_is_probed_with_its_ca_bundle() {
        let ca = Ca::new("MVD's private CA");
        let url = https_server(&ca, None).await;
        let up = probe_with(&url, Some(client_tls(&ca, None))).await;
        assert!(up.up, "{up:?}");
        assert_eq!(up.detail, "HTTP 200 OK");
        // Trusting another CA, or the process's default roots, it is down, and says why.
        let other = probe_with(&url, Some(client_tls(&Ca::new("another CA"), None))).await;
        assert!(!other.up);
        assert_eq!(
            other.detail, "TLS: invalid peer certificate: UnknownIssuer",
            "{other:?}"
        );
        let default = probe_with(&url, None).await;
        assert!(!default.up);
        assert!(
            default.detail.starts_with("TLS: invalid peer certificate"),
            "{default:?}"
        );
    }

    #[tokio::test]
    async fn a_system_requiring_a_client_certificate_is_shown_it() {
        let ca = Ca::new("ERIP's private CA");
        let clients = Ca::new("the hub's client CA");
        let url = https_server(&ca, Some(&clients)).await;
        let identity = clients.leaf("hub.test");
        let up = probe_with(&url, Some(client_tls(&ca, Some(identity)))).await;
        assert!(up.up, "{up:?}");
        let refused = probe_with(&url, Some(client_tls(&ca, None))).await;
        assert!(!refused.up);
        assert!(refused.detail.starts_with("TLS: "), "{refused:?}");
        assert!(
            refused.detail.contains("CertificateRequired"),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn a_closed_port_says_it_cannot_connect() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let url: url::Url = format!("https://127.0.0.1:{port}/").parse().expect("URL");
        let down = probe_with(&url, None).await;
        assert!(!down.up);
        assert!(down.detail.starts_with("cannot connect: "), "{down:?}");
        let smtp = probe(
            &client(None, Duration::from_secs(1)).expect("a client"),
            Duration::from_secs(1),
            &Target::Tcp {
                host: "127.0.0.1".into(),
                port,
            },
            None,
        )
        .await;
        assert!(smtp.detail.starts_with("cannot connect: "), "{smtp:?}");
    }

    /// A system that answers `404` at its probe path is down, with the status; one that answers
    /// `200` there is up, with the call's latency; a `5xx` is down too.
    #[tokio::test]
    async fn only_a_2xx_at_the_probe_path_is_up() {
        use wiremock::matchers::{method, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};

        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/mvd/healthz"))
            .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(30)))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/erip/healthz"))
            .respond_with(ResponseTemplate::new(503))
            .mount(&server)
            .await;
        // Anything else (the root, a wrong probe path): wiremock's 404.
        let base: url::Url = server.uri().parse().expect("URL");
        let system = |name: &str, probe: &str| ExternalSystem {
            name: name.to_owned(),
            target: Target::Http(base.join(probe).expect("a probe URL")),
            tls: None,
        };
        let systems = vec![
            system("MVD population registry", "mvd/healthz"),
            system("SMS gateway A1", "a1/healthz"),
            system("ERIP", "erip/healthz"),
        ];
        let timeout = Duration::from_secs(5);
        let systems = probed(systems, timeout).expect("probe clients");
        let probes = join_all(
            systems
                .iter()
                .map(|p| probe(&p.client, timeout, &p.system.target, None)),
        )
        .await;
        let (up, missing, failing) = (&probes[0], &probes[1], &probes[2]);
        assert!(up.up, "{up:?}");
        assert_eq!(up.detail, "HTTP 200 OK");
        assert!(up.latency >= Duration::from_millis(30), "{up:?}");
        assert!(!missing.up, "{missing:?}");
        assert_eq!(missing.detail, "HTTP 404 Not Found");
        assert!(!failing.up, "{failing:?}");
        assert_eq!(failing.detail, "HTTP 503 Service Unavailable");

        // The page's rows say so, with the probe's address.
        let table = systems_table(&systems, &probes).into_string();
        let row = |name: &str| {
            let start = table
                .find(&format!("data-system=\"{name}\""))
                .expect("the system's row");
            table[start..start + table[start..].find("</tr>").expect("row end")].to_owned()
        };
        let mvd = row("MVD population registry");
        assert!(mvd.contains("<span class=\"up\">up</span>"), "{mvd}");
        assert!(
            mvd.contains("/mvd/healthz") && mvd.contains(" ms</td>"),
            "{mvd}"
        );
        let a1 = row("SMS gateway A1");
        assert!(a1.contains("<span class=\"down\">down</span>"), "{a1}");
        assert!(a1.contains("HTTP 404 Not Found"), "{a1}");
        let erip = row("ERIP");
        assert!(
            erip.contains(">down<") && erip.contains("HTTP 503"),
            "{erip}"
        );
    }

    /// A mail server on a free port that greets each connection with `greeting` (nothing when
    /// empty, holding the connection open) and notes whether the probe said `QUIT`.
    async fn mail_server(greeting: &'static str) -> (u16, tokio::sync::mpsc::Receiver<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        let port = listener.local_addr().expect("its address").port();
        let (said, heard) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let said = said.clone();
                tokio::spawn(async move {
                    if !greeting.is_empty() {
                        let _ = tcp.write_all(greeting.as_bytes()).await;
                    }
                    let mut buf = [0u8; 64];
                    if let Ok(n) = tcp.read(&mut buf).await {
                        let _ = said
                            .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                            .await;
                    }
                });
            }
        });
        (port, heard)
    }

    async fn probe_mail(port: u16, timeout: Duration) -> Probe {
        let target = Target::Tcp {
            host: "127.0.0.1".into(),
            port,
        };
        probe(
            &client(None, timeout).expect("a client"),
            timeout,
            &target,
            None,
        )
        .await
    }

    #[tokio::test]
    async fn the_mail_server_is_up_when_it_greets_with_220() {
        let (port, mut heard) = mail_server("220 mail.example.by ESMTP ready\r\n").await;
        let up = probe_mail(port, Duration::from_secs(5)).await;
        assert!(up.up, "{up:?}");
        assert_eq!(up.detail, "SMTP 220 mail.example.by ESMTP ready");
        assert_eq!(heard.recv().await.as_deref(), Some("QUIT\r\n"));

        let (port, _) = mail_server("554 no service for you\r\n").await;
        let refused = probe_mail(port, Duration::from_secs(5)).await;
        assert!(!refused.up, "{refused:?}");
        assert_eq!(refused.detail, "SMTP 554 no service for you");

        let (port, _) = mail_server("").await;
        let silent = probe_mail(port, Duration::from_millis(300)).await;
        assert!(!silent.up, "{silent:?}");
        assert_eq!(silent.detail, "no greeting within 300ms");
    }

    #[test]
    fn the_mail_server_is_shown_without_its_password() {
        let t = Target::Http(
            "https://user:secret@erip.example.by/api/"
                .parse()
                .expect("URL"),
        );
        assert!(!shown(&t).contains("secret"));
        let smtp = Target::Tcp {
            host: "mail.example.by".into(),
            port: 465,
        };
        assert_eq!(shown(&smtp), "mail.example.by:465");
    }
}
