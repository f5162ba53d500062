//! One ESME's connection to the SMS centre: bind, `submit_sm`, `enquire_link`, `unbind`, with
//! the faults in force applied. Nothing an ESME sends ends in a panic: a body that does not
//! decode is answered `generic_nack`, a stream that cannot be framed is closed with a log line.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rusmpp::pdus::{
    BindReceiverResp, BindTransceiverResp, BindTransmitterResp, SubmitSm, SubmitSmResp,
};
use rusmpp::types::COctetString;
use rusmpp::values::InterfaceVersion;
use rusmpp::{Command, CommandStatus, Pdu};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite};

use super::wire::{Inbound, SmscCodec};
use super::{Link, Smsc, deliver_later};
use crate::faults::roll;

/// How long a clean unbind waits for its answer to be written.
const FLUSH_WAIT: Duration = Duration::from_secs(1);

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Takes connections until shutdown (over TLS when `tls` is given); each is served on the SMS
/// centre's task tracker.
pub(crate) async fn serve(
    smsc: Arc<Smsc>,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = smsc.ctx.shutdown.cancelled() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                match &acceptor {
                    None => {
                        smsc.tasks.spawn(connection(smsc.clone(), stream, peer));
                    }
                    Some(acceptor) => {
                        smsc.tasks
                            .spawn(handshake(smsc.clone(), acceptor.clone(), stream, peer));
                    }
                }
            }
            Err(e) => {
                tracing::warn!(simulator = %smsc.ctx.kind, error = %e, "SMPP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// How a bound ESME may use the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BindKind {
    Transmitter,
    Receiver,
    Transceiver,
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The ESME unbound: the answer is written before the close.
    Unbound,
    /// The ESME closed, or its stream broke.
    Closed,
    /// The connection is dropped at once (a fault).
    Dropped,
}

/// One connection's state.
struct Session {
    smsc: Arc<Smsc>,
    link: Link,
    peer: SocketAddr,
    bound: Option<BindKind>,
}

/// Serves a connection once its TLS handshake is done (a failed one is logged and closed).
async fn handshake(
    smsc: Arc<Smsc>,
    acceptor: tokio_rustls::TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
) {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => connection(smsc, tls, peer).await,
        Ok(Err(e)) => {
            tracing::info!(simulator = %smsc.ctx.kind, %peer, error = %e, "SMPP TLS handshake refused");
        }
        Err(_) => tracing::info!(simulator = %smsc.ctx.kind, %peer, "SMPP TLS handshake timed out"),
    }
}

async fn connection<S>(smsc: Arc<Smsc>, stream: S, peer: SocketAddr)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read, write) = tokio::io::split(stream);
    let mut reader = FramedRead::new(read, SmscCodec::default());
    let mut writer = FramedWrite::new(write, SmscCodec::default());
    let (out, mut queue) = mpsc::unbounded_channel::<Command>();
    let writing = async move {
        while let Some(command) = queue.recv().await {
            if writer.send(command).await.is_err() {
                break;
            }
        }
    };
    tokio::pin!(writing);
    let mut session = Session {
        link: smsc.new_link(out),
        smsc: smsc.clone(),
        peer,
        bound: None,
    };
    tracing::debug!(simulator = %smsc.ctx.kind, %peer, "SMPP connection opened");
    let end = tokio::select! {
        end = session.read(&mut reader) => end,
        () = &mut writing => End::Closed,
        () = smsc.ctx.shutdown.cancelled() => End::Closed,
    };
    smsc.detach(session.link.id);
    drop(session);
    if end == End::Unbound {
        // Every sender is gone now: the writer ends once the unbind_resp is out.
        let _ = tokio::time::timeout(FLUSH_WAIT, writing).await;
    }
    tracing::info!(simulator = %smsc.ctx.kind, %peer, ?end, "SMPP connection closed");
}

impl Session {
    async fn read<R: AsyncRead + Unpin>(&mut self, reader: &mut FramedRead<R, SmscCodec>) -> End {
        while let Some(next) = reader.next().await {
            match next {
                Err(e) => {
                    tracing::warn!(simulator = %self.smsc.ctx.kind, peer = %self.peer, error = %e, "SMPP stream cannot be read; closing the connection");
                    return End::Closed;
                }
                Ok(Inbound::Malformed {
                    command_id,
                    sequence_number,
                }) => {
                    tracing::info!(simulator = %self.smsc.ctx.kind, peer = %self.peer, command_id = format_args!("{command_id:#010x}"), "malformed PDU answered with generic_nack");
                    self.link.respond(
                        CommandStatus::EsmeRinvcmdlen,
                        sequence_number,
                        Pdu::GenericNack,
                    );
                }
                Ok(Inbound::Command(command)) => {
                    if let Some(end) = self.handle(*command).await {
                        return end;
                    }
                }
            }
        }
        End::Closed
    }

    /// Waits the `latency_ms` fault before an answer.
    async fn slow_down(&self) {
        let latency = self.smsc.faults().latency_ms;
        if latency > 0 {
            tokio::time::sleep(Duration::from_millis(latency)).await;
        }
    }

    async fn handle(&mut self, command: Command) -> Option<End> {
        let sequence = command.sequence_number();
        let Some(pdu) = command.pdu() else {
            self.link
                .respond(CommandStatus::EsmeRinvcmdlen, sequence, Pdu::GenericNack);
            return None;
        };
        match pdu {
            Pdu::BindTransceiver(b) => {
                self.bind(
                    sequence,
                    BindKind::Transceiver,
                    b.system_id.as_str(),
                    b.password.as_str(),
                )
                .await;
            }
            Pdu::BindTransmitter(b) => {
                self.bind(
                    sequence,
                    BindKind::Transmitter,
                    b.system_id.as_str(),
                    b.password.as_str(),
                )
                .await;
            }
            Pdu::BindReceiver(b) => {
                self.bind(
                    sequence,
                    BindKind::Receiver,
                    b.system_id.as_str(),
                    b.password.as_str(),
                )
                .await;
            }
            Pdu::SubmitSm(sm) => return self.submit(sequence, sm).await,
            Pdu::EnquireLink => {
                self.slow_down().await;
                self.link
                    .respond(CommandStatus::EsmeRok, sequence, Pdu::EnquireLinkResp);
            }
            Pdu::Unbind => {
                self.link
                    .respond(CommandStatus::EsmeRok, sequence, Pdu::UnbindResp);
                return Some(End::Unbound);
            }
            Pdu::DeliverSmResp(_) | Pdu::EnquireLinkResp | Pdu::GenericNack | Pdu::UnbindResp => {}
            _ => {
                self.link
                    .respond(CommandStatus::EsmeRinvcmdid, sequence, Pdu::GenericNack);
            }
        }
        None
    }

    /// Answers a bind: refused by the fault, for a wrong `system_id` or password, or when the
    /// session is bound already.
    async fn bind(&mut self, sequence: u32, kind: BindKind, system_id: &str, password: &str) {
        self.slow_down().await;
        let refused = self.smsc.update_faults(|f| {
            let refuse = f.refuse_binds > 0;
            f.refuse_binds = f.refuse_binds.saturating_sub(1);
            refuse
        });
        let status = if self.bound.is_some() {
            CommandStatus::EsmeRalybnd
        } else if refused {
            CommandStatus::EsmeRbindfail
        } else if system_id != self.smsc.account.system_id {
            CommandStatus::EsmeRinvsysid
        } else if password != self.smsc.account.password {
            CommandStatus::EsmeRinvpaswd
        } else {
            CommandStatus::EsmeRok
        };
        // The password is never logged; the system_id says who tried.
        tracing::info!(simulator = %self.smsc.ctx.kind, peer = %self.peer, %system_id, ?kind, ?status, "SMPP bind");
        let name =
            COctetString::from_string(self.smsc.operator.id().to_owned()).unwrap_or_default();
        let pdu: Pdu = match kind {
            BindKind::Transceiver => BindTransceiverResp::builder()
                .system_id(name)
                .sc_interface_version(Some(InterfaceVersion::Smpp3_4))
                .build()
                .into(),
            BindKind::Transmitter => BindTransmitterResp::builder()
                .system_id(name)
                .sc_interface_version(Some(InterfaceVersion::Smpp3_4))
                .build()
                .into(),
            BindKind::Receiver => BindReceiverResp::builder()
                .system_id(name)
                .sc_interface_version(Some(InterfaceVersion::Smpp3_4))
                .build()
                .into(),
        };
        self.link.respond(status, sequence, pdu);
        if status == CommandStatus::EsmeRok {
            self.bound = Some(kind);
            if kind != BindKind::Transmitter {
                self.smsc.attach(&self.link);
            }
        }
    }

    /// Answers a `submit_sm`: the faults first, then the checks; a message taken reaches the
    /// phone a little later (or at once, its receipt ahead of this answer, by the fault).
    async fn submit(&mut self, sequence: u32, sm: &SubmitSm) -> Option<End> {
        let refuse = |status| {
            self.link
                .respond(status, sequence, SubmitSmResp::builder().build());
        };
        if !matches!(
            self.bound,
            Some(BindKind::Transmitter | BindKind::Transceiver)
        ) {
            refuse(CommandStatus::EsmeRinvbndsts);
            return None;
        }
        self.slow_down().await;
        let (drop_now, drop_accepted) =
            self.smsc.update_faults(|f| match f.drop_connection_after {
                Some(1) => {
                    f.drop_connection_after = None;
                    (true, f.drop_accepted)
                }
                Some(n) => {
                    f.drop_connection_after = Some(n - 1);
                    (false, false)
                }
                None => (false, false),
            });
        if drop_now && !drop_accepted {
            tracing::info!(simulator = %self.smsc.ctx.kind, peer = %self.peer, "connection dropped before a submit_sm was taken (fault)");
            return Some(End::Dropped);
        }
        let faults = self.smsc.faults();
        for (rate, status) in [
            (faults.throttle_rate, CommandStatus::EsmeRthrottled),
            (faults.queue_full_rate, CommandStatus::EsmeRmsgqful),
            (faults.system_error_rate, CommandStatus::EsmeRsyserr),
        ] {
            if !drop_now && roll(rate) {
                tracing::debug!(simulator = %self.smsc.ctx.kind, ?status, "submit_sm refused (fault)");
                refuse(status);
                return None;
            }
        }
        let accepted = match self.smsc.accept(sm, self.link.id) {
            Ok(accepted) => accepted,
            Err(status) => {
                refuse(status);
                return None;
            }
        };
        if drop_now {
            if let Some(whole) = accepted.whole {
                self.smsc
                    .tasks
                    .spawn(deliver_later(self.smsc.clone(), whole));
            }
            tracing::info!(simulator = %self.smsc.ctx.kind, peer = %self.peer, message_id = %accepted.message_id, "connection dropped after a submit_sm was taken (fault)");
            return Some(End::Dropped);
        }
        let resp = SubmitSmResp::builder()
            .message_id(COctetString::from_string(accepted.message_id).unwrap_or_default())
            .build();
        match accepted.whole {
            Some(whole) if whole.parts.len() == 1 && roll(faults.receipt_first_rate) => {
                self.smsc.deliver_now(whole);
                self.link.respond(CommandStatus::EsmeRok, sequence, resp);
            }
            whole => {
                self.link.respond(CommandStatus::EsmeRok, sequence, resp);
                if let Some(whole) = whole {
                    self.smsc
                        .tasks
                        .spawn(deliver_later(self.smsc.clone(), whole));
                }
            }
        }
        None
    }
}
