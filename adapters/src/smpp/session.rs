//! The client's connection task: connect and bind as a transceiver, serve the bind (answers to
//! their requests, receipts to the tracker, `enquire_link` both ways), notice its loss, and
//! bind again after a doubling backoff with jitter; `unbind` when the client stops.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use rusmpp::pdus::{BindTransceiver, DeliverSmResp};
use rusmpp::types::COctetString;
use rusmpp::values::{InterfaceVersion, Npi, Ton};
use rusmpp::{Command, CommandStatus, Pdu};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_util::codec::{FramedRead, FramedWrite};

use super::Inner;
use super::wire::{self, ClientCodec, Inbound};

/// The answers awaited on one connection, by sequence number.
type Waiting = Arc<Mutex<HashMap<u32, oneshot::Sender<Command>>>>;

/// A bound connection's way out: requests get their answer by sequence number.
#[derive(Debug, Clone)]
pub(super) struct Link {
    out: mpsc::UnboundedSender<Command>,
    waiting: Waiting,
    next_sequence: Arc<AtomicU32>,
}

/// Forgets an awaited answer when its requester stops waiting (a timeout).
struct Forget {
    waiting: Waiting,
    sequence: u32,
}

impl Drop for Forget {
    fn drop(&mut self) {
        lock(&self.waiting).remove(&self.sequence);
    }
}

/// Drops every awaited answer when a connection ends, so their requesters learn of the loss at
/// once instead of at their timeout.
struct FailAllOnDrop(Waiting);

impl Drop for FailAllOnDrop {
    fn drop(&mut self) {
        lock(&self.0).clear();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Link {
    fn new(out: mpsc::UnboundedSender<Command>, first_sequence: u32) -> Self {
        Link {
            out,
            waiting: Arc::default(),
            next_sequence: Arc::new(AtomicU32::new(first_sequence)),
        }
    }

    fn sequence(&self) -> u32 {
        self.next_sequence.fetch_add(1, Ordering::Relaxed) % 0x7FFF_FFFF + 1
    }

    /// Sends a request; its answer, or `None` when the connection is lost first.
    pub(super) async fn request(&self, pdu: Pdu) -> Option<Command> {
        let sequence = self.sequence();
        let (tx, rx) = oneshot::channel();
        lock(&self.waiting).insert(sequence, tx);
        let _forget = Forget {
            waiting: self.waiting.clone(),
            sequence,
        };
        self.out
            .send(Command::new(CommandStatus::EsmeRok, sequence, pdu))
            .ok()?;
        rx.await.ok()
    }

    /// Sends a request whose answer the connection task itself watches for; its sequence.
    fn send(&self, pdu: Pdu) -> u32 {
        let sequence = self.sequence();
        let _ = self
            .out
            .send(Command::new(CommandStatus::EsmeRok, sequence, pdu));
        sequence
    }

    fn respond(&self, status: CommandStatus, sequence: u32, pdu: Pdu) {
        let _ = self.out.send(Command::new(status, sequence, pdu));
    }

    /// Hands an answer to its requester (none waiting: a late answer, dropped).
    fn answer(&self, command: Command) {
        if let Some(tx) = lock(&self.waiting).remove(&command.sequence_number()) {
            let _ = tx.send(command);
        }
    }
}

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
enum Lost {
    #[error("could not connect: {0}")]
    Connect(std::io::Error),
    #[error("the bind was refused: {0}")]
    Refused(String),
    #[error("the bind got no answer in time")]
    BindTimeout,
    #[error("the configuration cannot bind: {0}")]
    Config(&'static str),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("the SMS centre closed the connection")]
    Closed,
    #[error("the SMS centre unbound")]
    Unbound,
    #[error("the stream broke: {0}")]
    Stream(String),
    #[error("no answer to enquire_link in time")]
    Silent,
    #[error("the client stopped")]
    Stopped,
}

type Reader = FramedRead<Box<dyn AsyncRead + Send + Unpin>, ClientCodec>;
type Writer = FramedWrite<Box<dyn AsyncWrite + Send + Unpin>, ClientCodec>;

/// Binds, serves the bind, and binds again after a loss, until the client stops.
pub(super) async fn run(inner: Arc<Inner>) {
    let config = &inner.config;
    let mut wait = config.reconnect_min;
    loop {
        if inner.stop.is_cancelled() {
            return;
        }
        let lost = match bind(&inner).await {
            Ok((reader, writer)) => {
                wait = config.reconnect_min;
                inner.binds.fetch_add(1, Ordering::Relaxed);
                tracing::info!(operator = %config.operator, "SMPP bound");
                let lost = serve(&inner, reader, writer).await;
                inner.link.send_replace(None);
                lost
            }
            Err(lost) => lost,
        };
        if matches!(lost, Lost::Stopped) {
            tracing::info!(operator = %config.operator, "SMPP unbound; the client stopped");
            return;
        }
        tracing::warn!(operator = %config.operator, reason = %lost, retry_in_ms = wait.as_millis() as u64, "SMPP connection lost");
        let jitter =
            Duration::from_millis(rand::rng().random_range(0..=wait.as_millis() as u64 / 2));
        tokio::select! {
            () = tokio::time::sleep(wait + jitter) => {}
            () = inner.stop.cancelled() => return,
        }
        wait = (wait * 2).min(config.reconnect_max);
    }
}

/// Connects and binds as a transceiver.
async fn bind(inner: &Inner) -> Result<(Reader, Writer), Lost> {
    let config = &inner.config;
    let pdu = BindTransceiver::builder()
        .system_id(
            COctetString::from_string(config.system_id.clone())
                .map_err(|_| Lost::Config("system_id is not 1 to 15 ASCII characters"))?,
        )
        .password(
            COctetString::from_string(config.password.clone())
                .map_err(|_| Lost::Config("the password is not 1 to 8 ASCII characters"))?,
        )
        .system_type(
            COctetString::from_string(config.system_type.clone())
                .map_err(|_| Lost::Config("system_type is not up to 12 ASCII characters"))?,
        )
        .interface_version(InterfaceVersion::Smpp3_4)
        .addr_ton(Ton::Unknown)
        .addr_npi(Npi::Unknown)
        .build();
    let connect = TcpStream::connect((config.host.as_str(), config.port));
    let stream = tokio::time::timeout(config.response_timeout, connect)
        .await
        .map_err(|_| Lost::Connect(std::io::ErrorKind::TimedOut.into()))?
        .map_err(Lost::Connect)?;
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = match &config.tls {
        None => {
            let (read, write) = stream.into_split();
            framed(read, write)
        }
        Some(tls) => {
            let rustls = tls.rustls_config().map_err(|e| Lost::Tls(e.to_string()))?;
            let name = ServerName::try_from(config.host.clone())
                .map_err(|_| Lost::Config("the host is no TLS server name"))?;
            let connect = TlsConnector::from(Arc::new(rustls)).connect(name, stream);
            let tls = tokio::time::timeout(config.response_timeout, connect)
                .await
                .map_err(|_| Lost::Tls("the handshake timed out".to_owned()))?
                .map_err(|e| Lost::Tls(e.to_string()))?;
            let (read, write) = tokio::io::split(tls);
            framed(read, write)
        }
    };
    writer
        .send(Command::new(CommandStatus::EsmeRok, 1, pdu))
        .await
        .map_err(|e| Lost::Stream(e.to_string()))?;
    let answer = async {
        while let Some(next) = reader.next().await {
            match next {
                Ok(Inbound::Command(c)) if c.sequence_number() == 1 => return Ok(c),
                Ok(_) => {}
                Err(e) => return Err(Lost::Stream(e.to_string())),
            }
        }
        Err(Lost::Closed)
    };
    let answer = tokio::time::timeout(config.response_timeout, answer)
        .await
        .map_err(|_| Lost::BindTimeout)??;
    match (answer.status, answer.pdu()) {
        (CommandStatus::EsmeRok, Some(Pdu::BindTransceiverResp(_))) => Ok((reader, writer)),
        (CommandStatus::EsmeRok, _) => Err(Lost::Refused(
            "an answer that is no bind_transceiver_resp".to_owned(),
        )),
        (status, _) => Err(Lost::Refused(wire::status_name(status))),
    }
}

fn framed(
    read: impl AsyncRead + Send + Unpin + 'static,
    write: impl AsyncWrite + Send + Unpin + 'static,
) -> (Reader, Writer) {
    (
        FramedRead::new(Box::new(read), ClientCodec::default()),
        FramedWrite::new(Box::new(write), ClientCodec::default()),
    )
}

/// What the connection task waits for besides the wire: an `enquire_link` or `unbind` answer.
#[derive(Debug, Default)]
struct Awaiting {
    enquire: Option<(u32, Instant)>,
    unbind: Option<(u32, Instant)>,
}

impl Awaiting {
    fn deadline(&self) -> Option<Instant> {
        [self.enquire, self.unbind]
            .into_iter()
            .flatten()
            .map(|(_, at)| at)
            .min()
    }
}

/// Serves a bound connection until it is lost or the client stops (then unbinds).
async fn serve(inner: &Inner, mut reader: Reader, mut writer: Writer) -> Lost {
    let config = &inner.config;
    let (out, mut queue) = mpsc::unbounded_channel::<Command>();
    let link = Link::new(out, 2);
    let _fail_all = FailAllOnDrop(link.waiting.clone());
    inner.link.send_replace(Some(link.clone()));
    let writing = async move {
        while let Some(command) = queue.recv().await {
            if writer.send(command).await.is_err() {
                break;
            }
        }
    };
    tokio::pin!(writing);
    let every = config.enquire_link_every.max(Duration::from_millis(10));
    let mut keepalive = tokio::time::interval_at(Instant::now() + every, every);
    let mut awaiting = Awaiting::default();
    loop {
        let deadline = awaiting.deadline();
        let timed_out = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            next = reader.next() => {
                let command = match next {
                    None => return Lost::Closed,
                    Some(Err(e)) => return Lost::Stream(e.to_string()),
                    Some(Ok(Inbound::Malformed { sequence_number })) => {
                        tracing::warn!(operator = %config.operator, "malformed PDU from the SMS centre answered with generic_nack");
                        link.respond(CommandStatus::EsmeRinvcmdlen, sequence_number, Pdu::GenericNack);
                        continue;
                    }
                    Some(Ok(Inbound::Command(command))) => *command,
                };
                if let Some(lost) = handle(inner, &link, &mut awaiting, command) {
                    return lost;
                }
            }
            _ = keepalive.tick() => {
                if awaiting.enquire.is_none() && awaiting.unbind.is_none() {
                    let sequence = link.send(Pdu::EnquireLink);
                    awaiting.enquire = Some((sequence, Instant::now() + config.response_timeout));
                }
            }
            () = timed_out => {
                return if awaiting.unbind.is_some() { Lost::Stopped } else { Lost::Silent };
            }
            () = &mut writing => return Lost::Closed,
            () = inner.stop.cancelled(), if awaiting.unbind.is_none() => {
                let sequence = link.send(Pdu::Unbind);
                awaiting.unbind = Some((sequence, Instant::now() + config.response_timeout));
            }
        }
    }
}

/// One PDU from the SMS centre; `Some` when it ends the connection.
fn handle(inner: &Inner, link: &Link, awaiting: &mut Awaiting, command: Command) -> Option<Lost> {
    let sequence = command.sequence_number();
    match command.pdu() {
        Some(Pdu::DeliverSm(sm)) => {
            link.respond(
                CommandStatus::EsmeRok,
                sequence,
                DeliverSmResp::builder().build().into(),
            );
            match wire::receipt(sm) {
                Some(receipt) => {
                    let reports = inner.tracker().receipt(receipt);
                    inner.emit(reports);
                }
                None => {
                    tracing::debug!(operator = %inner.config.operator, "a deliver_sm that is no final receipt")
                }
            }
        }
        Some(Pdu::EnquireLink) => {
            link.respond(CommandStatus::EsmeRok, sequence, Pdu::EnquireLinkResp);
        }
        Some(Pdu::EnquireLinkResp) => {
            if awaiting.enquire.is_some_and(|(s, _)| s == sequence) {
                awaiting.enquire = None;
            }
        }
        Some(Pdu::Unbind) => {
            link.respond(CommandStatus::EsmeRok, sequence, Pdu::UnbindResp);
            return Some(Lost::Unbound);
        }
        Some(Pdu::UnbindResp) if awaiting.unbind.is_some_and(|(s, _)| s == sequence) => {
            return Some(Lost::Stopped);
        }
        _ if u32::from(command.id()) & 0x8000_0000 != 0 => link.answer(command),
        _ => link.respond(CommandStatus::EsmeRinvcmdid, sequence, Pdu::GenericNack),
    }
    None
}
