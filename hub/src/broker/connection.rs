//! A supervised broker connection. The broker restarting must not need a hub restart: the
//! supervisor reconnects with jittered exponential backoff, and every component asks it for a
//! fresh channel whenever the one it had died.

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use futures_util::StreamExt;
use lapin::{Channel, Connection, ConnectionProperties, Event};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::mask_url;

/// The broker could not be reached or refused us.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot connect to RabbitMQ at {url}: {reason}. Start it (`rabbitmq-server -detached`, or `docker compose up -d rabbitmq`) or point AMQP_URL at a running broker"
)]
pub struct ConnectError {
    /// The URL with its password masked.
    pub url: String,
    /// The client's words.
    pub reason: String,
}

/// A handle on the supervised connection; cheap to clone.
#[derive(Clone, Debug)]
pub struct Broker {
    current: watch::Receiver<Option<Arc<Connection>>>,
    name: String,
}

impl Broker {
    /// Connects once (so a wrong URL or a stopped broker is reported at start), then keeps the
    /// connection up in a background task until `shutdown` is cancelled.
    pub async fn connect(
        url: &str,
        name: &str,
        shutdown: CancellationToken,
    ) -> Result<Self, ConnectError> {
        let first = open(url, name).await?;
        let (tx, rx) = watch::channel(Some(Arc::new(first)));
        tokio::spawn(supervise(url.to_owned(), name.to_owned(), tx, shutdown));
        Ok(Self {
            current: rx,
            name: name.to_owned(),
        })
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

async fn open(url: &str, name: &str) -> Result<Connection, ConnectError> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    Connection::connect(url, properties)
        .await
        .map_err(|e| ConnectError {
            url: mask_url(url),
            reason: e.to_string(),
        })
}

async fn supervise(
    url: String,
    name: String,
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
                        tracing::warn!(connection = %name, error = %e, "broker connection lost; reconnecting");
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
        let reconnected = loop {
            match open(&url, &name).await {
                Ok(c) => break c,
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
        tracing::info!(connection = %name, "broker connection restored");
        tx.send_replace(Some(Arc::new(reconnected)));
    }
}
