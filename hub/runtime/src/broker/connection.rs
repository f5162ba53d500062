//! A supervised broker connection. The broker restarting must not need a hub restart: the
//! supervisor reconnects with jittered exponential backoff, and every component asks it for a
//! fresh channel whenever the one it had died.
//!
//! `AMQP_URL` may name a cluster's nodes, separated by commas: the hub connects to the first
//! that answers and, when that connection is lost, tries the others in turn starting after it,
//! so it moves away from a node that went down.

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use futures_util::StreamExt;
use lapin::{Channel, Connection, ConnectionProperties, Event};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::mask_url;
use crate::tls::BrokerTls;

/// The longest one node of a list may take to answer before the next is tried: a node that is
/// cut off rather than stopped would otherwise hold the connect for the TCP timeout (minutes).
/// A single URL has no such limit, as before lists existed.
const NODE_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The broker could not be reached or refused us.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot connect to RabbitMQ at {url}: {reason}. Start it (`rabbitmq-server -detached`, or `docker compose up -d rabbitmq`) or point AMQP_URL at a running broker"
)]
pub struct ConnectError {
    /// The URL tried, or the URLs tried separated by `, `, with their passwords masked.
    pub url: String,
    /// The client's words (for several URLs, each URL's, after that URL).
    pub reason: String,
}

/// The URLs of an `AMQP_URL` value: one URL, or a cluster's nodes separated by commas
/// (`amqp://hub:pw@mq1:5672/%2f,amqp://hub:pw@mq2:5672/%2f`; spaces around the commas are
/// ignored). Only a comma followed by an AMQP URL (`amqp://`, `amqps://`) separates two: a
/// comma inside a URL (in a password) stays part of it. A value naming no URL is returned as
/// it is, for the client to refuse in its own words.
pub fn amqp_urls(value: &str) -> Vec<String> {
    let mut urls: Vec<String> = Vec::new();
    for piece in value.split(',') {
        let trimmed = piece.trim();
        let lower = trimmed.to_ascii_lowercase();
        let starts_url = lower.starts_with("amqp://") || lower.starts_with("amqps://");
        match urls.last_mut() {
            Some(last) if !starts_url => {
                last.push(',');
                last.push_str(piece);
            }
            _ if trimmed.is_empty() => {}
            _ => urls.push(trimmed.to_owned()),
        }
    }
    for url in &mut urls {
        // A trailing comma or space after the last URL is a separator, not part of it.
        let kept = url.trim_end_matches([',', ' ']).len();
        url.truncate(kept);
    }
    if urls.is_empty() {
        urls.push(value.to_owned());
    }
    urls
}

/// Connects to the first URL of an `AMQP_URL` value that answers: for a one-off connection
/// (a benchmark, a clean-up) that needs no supervision.
pub async fn connect_first(
    amqp_url: &str,
    properties: ConnectionProperties,
) -> Result<Connection, ConnectError> {
    let urls = amqp_urls(amqp_url);
    connect_any(&urls, 0, &properties, &BrokerTls::default())
        .await
        .map(|(c, _)| c)
}

/// Connects to `url` once, over TLS as `tls` says for an `amqps://` URL.
async fn connect_one(
    url: &str,
    properties: ConnectionProperties,
    tls: &BrokerTls,
) -> lapin::Result<Connection> {
    Connection::connect_with_config(
        url,
        properties,
        tls.lapin_config(),
        lapin::runtime::default_runtime()?,
    )
    .await
}

/// Tries each of `urls` once, starting at `start` and wrapping around; returns the first
/// connection made and the index of its URL, or every URL's failure.
async fn connect_any(
    urls: &[String],
    start: usize,
    properties: &ConnectionProperties,
    tls: &BrokerTls,
) -> Result<(Connection, usize), ConnectError> {
    if let [url] = urls {
        return connect_one(url, properties.clone(), tls)
            .await
            .map(|c| (c, 0))
            .map_err(|e| ConnectError {
                url: mask_url(url),
                reason: e.to_string(),
            });
    }
    let mut failures = Vec::with_capacity(urls.len());
    for i in (0..urls.len()).map(|k| (start + k) % urls.len()) {
        let url = &urls[i];
        let reason = match tokio::time::timeout(
            NODE_CONNECT_TIMEOUT,
            connect_one(url, properties.clone(), tls),
        )
        .await
        {
            Ok(Ok(c)) => return Ok((c, i)),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {NODE_CONNECT_TIMEOUT:?}"),
        };
        tracing::debug!(url = %mask_url(url), error = %reason, "broker node did not answer; trying the next");
        failures.push(format!("{}: {reason}", mask_url(url)));
    }
    Err(ConnectError {
        url: urls
            .iter()
            .map(|u| mask_url(u))
            .collect::<Vec<_>>()
            .join(", "),
        reason: failures.join("; "),
    })
}

/// A handle on the supervised connection; cheap to clone.
#[derive(Clone, Debug)]
pub struct Broker {
    current: watch::Receiver<Option<Arc<Connection>>>,
    name: String,
    user: String,
}

impl Broker {
    /// Connects once (so a wrong URL or a stopped broker is reported at start), then keeps the
    /// connection up in a background task until `shutdown` is cancelled. `url` is an
    /// `AMQP_URL` value: one URL or several ([`amqp_urls`]).
    pub async fn connect(
        url: &str,
        name: &str,
        shutdown: CancellationToken,
    ) -> Result<Self, ConnectError> {
        Self::connect_with_tls(url, &BrokerTls::default(), name, shutdown).await
    }

    /// [`Self::connect`], an `amqps://` URL's TLS as `tls` says (a CA bundle added to the
    /// roots, a client certificate), on the first connection and every reconnection.
    pub async fn connect_with_tls(
        url: &str,
        tls: &BrokerTls,
        name: &str,
        shutdown: CancellationToken,
    ) -> Result<Self, ConnectError> {
        let urls = amqp_urls(url);
        let (first, node) = open(&urls, 0, name, tls).await?;
        if urls.len() > 1 {
            tracing::info!(connection = %name, url = %mask_url(&urls[node]), "connected to the broker");
        }
        let (tx, rx) = watch::channel(Some(Arc::new(first)));
        tokio::spawn(supervise(
            urls,
            node,
            name.to_owned(),
            tls.clone(),
            tx,
            shutdown,
        ));
        Ok(Self {
            current: rx,
            name: name.to_owned(),
            user: super::broker_user(url),
        })
    }

    /// The broker user the connection logs in as: what the broker accepts as `user_id`.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// A new channel on the current connection, waiting for a reconnect if there is none.
    /// Returns `None` only when the hub is shutting down and no connection will come.
    pub async fn channel(&self, shutdown: &CancellationToken) -> Option<Channel> {
        let mut current = self.current.clone();
        loop {
            let conn = current.borrow_and_update().clone();
            if let Some(conn) = conn {
                match conn.create_channel().await {
                    Ok(channel) => return Some(channel),
                    Err(e) => {
                        tracing::debug!(connection = %self.name, error = %e, "channel not opened, waiting for reconnect")
                    }
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return None,
                changed = current.changed() => if changed.is_err() { return None },
                // The supervisor may not have noticed the loss yet: look again shortly.
                () = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
        }
    }

    /// Closes the current connection cleanly (the supervisor stops when its token is cancelled).
    pub async fn close(&self) {
        let conn = self.current.borrow().clone();
        if let Some(conn) = conn {
            let _ = conn.close(200, "closing".into()).await;
        }
    }

    /// True while a connection is up.
    pub fn is_connected(&self) -> bool {
        self.current
            .borrow()
            .as_ref()
            .is_some_and(|c| c.status().connected())
    }
}

async fn open(
    urls: &[String],
    start: usize,
    name: &str,
    tls: &BrokerTls,
) -> Result<(Connection, usize), ConnectError> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    connect_any(urls, start, &properties, tls).await
}

/// Watches the connection to `urls[node]` and replaces it when it fails.
async fn supervise(
    urls: Vec<String>,
    mut node: usize,
    name: String,
    tls: BrokerTls,
    tx: watch::Sender<Option<Arc<Connection>>>,
    shutdown: CancellationToken,
) {
    loop {
        let Some(conn) = tx.borrow().clone() else {
            return;
        };
        let mut events = conn.events_listener();
        // Wait for the connection to fail, or for shutdown.
        loop {
            tokio::select! {
                () = shutdown.cancelled() => {
                    let _ = conn.close(200, "hub shutting down".into()).await;
                    tx.send_replace(None);
                    return;
                }
                event = events.next() => match event {
                    Some(Event::Error(e)) => {
                        tracing::warn!(connection = %name, url = %mask_url(&urls[node]), error = %e, "broker connection lost; reconnecting");
                        break;
                    }
                    Some(_) => {}
                    None => break,
                },
                // Events are not sent for every way a socket can die; poll the status too.
                () = tokio::time::sleep(Duration::from_secs(1)) => {
                    if !conn.status().connected() { break; }
                }
            }
        }
        tx.send_replace(None);
        let mut delays = ExponentialBuilder::default()
            .with_jitter()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(Duration::from_secs(5))
            .without_max_times()
            .build();
        // Start with the node after the one lost (it may be down); one URL is tried alone.
        let start = (node + 1) % urls.len();
        let reconnected = loop {
            match open(&urls, start, &name, &tls).await {
                Ok((c, i)) => {
                    node = i;
                    break c;
                }
                Err(e) => {
                    let delay = delays.next().unwrap_or(Duration::from_secs(5));
                    tracing::warn!(connection = %name, error = %e.reason, retry_in_ms = delay.as_millis() as u64, "broker still unreachable");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        };
        tracing::info!(connection = %name, url = %mask_url(&urls[node]), "broker connection restored");
        tx.send_replace(Some(Arc::new(reconnected)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_url_stays_as_it_is_and_a_list_splits_at_commas_before_a_url() {
        let one = "amqp://hub:pw@mq:5672/%2f";
        assert_eq!(amqp_urls(one), [one]);
        assert_eq!(
            amqp_urls(" amqp://a:1/%2f, amqps://b:2/%2f ,AMQP://c:3/%2f,"),
            ["amqp://a:1/%2f", "amqps://b:2/%2f", "AMQP://c:3/%2f"]
        );
        // A comma in a password is not a separator.
        assert_eq!(
            amqp_urls("amqp://hub:p,w@a/%2f,amqp://hub:p,w@b/%2f"),
            ["amqp://hub:p,w@a/%2f", "amqp://hub:p,w@b/%2f"]
        );
        // Nothing to split: the client gets the value and refuses it in its own words.
        assert_eq!(amqp_urls(""), [""]);
        assert_eq!(amqp_urls("not a url"), ["not a url"]);
    }

    #[test]
    fn a_list_is_masked_url_by_url() {
        let masked = mask_url("amqp://hub:secret@a:5672/%2f, amqp://hub:secret@b:5672/%2f");
        assert_eq!(
            masked,
            "amqp://hub:***@a:5672/%2f, amqp://hub:***@b:5672/%2f"
        );
    }

    /// A loopback port nothing listens on.
    fn closed_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port")
    }

    #[tokio::test]
    async fn the_error_names_every_url_tried_without_its_password() {
        let (a, b) = (closed_port(), closed_port());
        let value =
            format!("amqp://hub:secret@127.0.0.1:{a}/%2f,amqp://hub:secret@127.0.0.1:{b}/%2f");
        let e = connect_first(&value, ConnectionProperties::default())
            .await
            .expect_err("nothing listens");
        let text = e.to_string();
        assert!(!text.contains("secret"), "{text}");
        for port in [a, b] {
            assert!(
                text.contains(&format!("amqp://hub:***@127.0.0.1:{port}/%2f: ")),
                "{text}"
            );
        }
    }

    #[tokio::test]
    async fn the_first_node_that_answers_is_the_one_connected_to() {
        let live = std::env::var("TEST_AMQP_URL")
            .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
        let dead = format!("amqp://guest:guest@127.0.0.1:{}/%2f", closed_port());
        let urls = [dead.clone(), live, dead];
        let props = ConnectionProperties::default();
        let tls = BrokerTls::default();
        let (conn, node) = connect_any(&urls, 0, &props, &tls)
            .await
            .expect("the live node");
        assert_eq!(node, 1);
        let _ = conn.close(200, "test".into()).await;
        // Starting after the live node wraps around to it.
        let (conn, node) = connect_any(&urls, 2, &props, &tls)
            .await
            .expect("the live node");
        assert_eq!(node, 1);
        let _ = conn.close(200, "test".into()).await;
    }
}
