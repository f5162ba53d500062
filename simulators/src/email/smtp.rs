//! A minimal RFC 5321 server: as much SMTP as a client (lettre, a real MTA) needs to hand a
//! message over, and nothing more.
//!
//! It greets, takes `EHLO`/`HELO`, `MAIL FROM`, any number of `RCPT TO`, `DATA` (with the
//! dot-unstuffing of RFC 5321 4.5.2), `RSET`, `NOOP` and `QUIT`; anything else is `502`, a
//! command out of order `503`. There is no `AUTH` and no `STARTTLS`: the sink listens on the
//! loopback for tests, and the adapter's TLS is lettre's, tested by lettre. Everything a client
//! sends is bounded: a line at [`MAX_LINE`] octets, a message at [`MAX_MESSAGE`] (`552`
//! beyond), a session's silence at [`IDLE_TIMEOUT`], the sessions at [`MAX_SESSIONS`].
//!
//! No async SMTP server crate is both small and kept up, and the subset needed is small, so it
//! is written out here.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::task::TaskTracker;

use super::{EmailState, Mail, mask, message};
use crate::error::timestamp;
use crate::faults::{TIMEOUT_HOLD, roll};

/// The longest line taken, its CRLF included (RFC 5321 4.5.3.1.6).
pub(super) const MAX_LINE: usize = 1000;

/// The largest message taken, in octets after dot-unstuffing (advertised as `SIZE`).
pub(super) const MAX_MESSAGE: usize = 1024 * 1024;

/// The most recipients of one message.
const MAX_RECIPIENTS: usize = 100;

/// How long a session may stay silent before the sink closes it.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How many sessions run at once; one more is told to come back later (`421`).
const MAX_SESSIONS: usize = 64;

/// How many syntax and sequence errors a session may make before it is closed: something that
/// is not an SMTP client (an HTTP client on the wrong port) is sent away.
const MAX_ERRORS: u32 = 20;

/// The name the sink gives itself in its greeting.
const HOSTNAME: &str = "email.sim.local";

/// The codes `smtp_reply` may inject, with the text each is sent with.
pub(super) const INJECTABLE_REPLIES: [(u16, &str); 9] = [
    (
        421,
        "4.3.2 Service not available, closing transmission channel",
    ),
    (450, "4.2.1 Mailbox unavailable, try again later"),
    (451, "4.3.0 Local error in processing, try again later"),
    (452, "4.3.1 Insufficient system storage"),
    (550, "5.1.1 Mailbox unavailable"),
    (551, "5.1.6 User not local"),
    (552, "5.2.2 Mailbox full"),
    (553, "5.1.3 Mailbox name not allowed"),
    (554, "5.7.1 Transaction failed"),
];

/// Accepts SMTP sessions until shutdown; each runs on `tasks`.
pub(super) async fn serve(listener: TcpListener, state: Arc<EmailState>, tasks: TaskTracker) {
    let kind = state.ctx.kind;
    let sessions = Arc::new(Semaphore::new(MAX_SESSIONS));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = state.ctx.shutdown.cancelled() => break,
        };
        match accepted {
            Ok((stream, _peer)) => {
                let permit = sessions.clone().try_acquire_owned().ok();
                tasks.spawn(session(stream, state.clone(), permit));
            }
            Err(e) => {
                // Out of file descriptors, typically: wait a little rather than spin.
                tracing::warn!(simulator = %kind, error = %e, "SMTP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    tracing::info!(simulator = %kind, "SMTP sink stopped");
}

/// One SMTP session, from the greeting to `QUIT` (or EOF, idleness, shutdown).
async fn session(stream: TcpStream, state: Arc<EmailState>, permit: Option<OwnedSemaphorePermit>) {
    let (read, write) = stream.into_split();
    let mut session = Session {
        reader: BufReader::new(read),
        writer: write,
        state,
        greeted: false,
        from: None,
        to: Vec::new(),
        errors: 0,
    };
    let busy = permit.is_none();
    if let Err(e) = session.run(busy).await {
        tracing::debug!(simulator = %session.state.ctx.kind, error = %e, "SMTP session ended");
    }
    drop(permit);
}

/// A line from the client.
#[derive(Debug, PartialEq, Eq)]
enum Input {
    /// A whole line, its line break included.
    Line(Vec<u8>),
    /// A line longer than [`MAX_LINE`]; it was read and dropped.
    TooLong,
    /// The client closed the connection.
    Closed,
    /// The client said nothing for [`IDLE_TIMEOUT`].
    Idle,
    /// The simulator is shutting down.
    Shutdown,
}

/// Whether the session goes on after a command.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Close,
}

struct Session {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    state: Arc<EmailState>,
    /// `EHLO` or `HELO` was given.
    greeted: bool,
    /// The reverse path of the transaction under way (empty for the null path `<>`).
    from: Option<String>,
    /// Its recipients so far.
    to: Vec<String>,
    errors: u32,
}

impl Session {
    async fn run(&mut self, busy: bool) -> io::Result<()> {
        if self.open(busy).await? == Flow::Close {
            return Ok(());
        }
        loop {
            let line = match self.next_line().await? {
                Input::Line(line) => line,
                Input::TooLong => {
                    self.error("500 5.5.2 Line too long").await?;
                    continue;
                }
                input => return self.end(input).await,
            };
            let line = String::from_utf8_lossy(trim_line_break(&line)).into_owned();
            if self.command(&line).await? == Flow::Close {
                return Ok(());
            }
            if self.errors >= MAX_ERRORS {
                return self.reply("421 4.7.0 Too many errors, closing").await;
            }
        }
    }

    /// The greeting, after the common faults: `latency_ms` delays it, `timeout_rate` holds it
    /// for [`TIMEOUT_HOLD`], `error_rate` replaces it with `421` — per connection, as the HTTP
    /// simulators apply them per call.
    async fn open(&mut self, busy: bool) -> io::Result<Flow> {
        let state = self.state.clone();
        let ctx = &state.ctx;
        let faults = ctx.faults.get();
        if faults.latency_ms > 0 && !self.wait(Duration::from_millis(faults.latency_ms)).await {
            return Ok(Flow::Close);
        }
        if roll(faults.timeout_rate) {
            tracing::debug!(simulator = %ctx.kind, "holding an SMTP greeting (timeout fault)");
            if !self.wait(TIMEOUT_HOLD).await {
                return Ok(Flow::Close);
            }
        }
        if roll(faults.error_rate) {
            tracing::debug!(simulator = %ctx.kind, "refusing an SMTP session (error fault)");
            self.reply("421 4.3.2 Service not available (injected fault), closing")
                .await?;
            return Ok(Flow::Close);
        }
        if busy {
            self.reply("421 4.7.0 Too many sessions, try again later")
                .await?;
            return Ok(Flow::Close);
        }
        self.reply(&format!(
            "220 {HOSTNAME} ESMTP e-services e-mail simulator ready"
        ))
        .await?;
        Ok(Flow::Continue)
    }

    async fn command(&mut self, line: &str) -> io::Result<Flow> {
        let (verb, argument) = line.split_once(' ').unwrap_or((line, ""));
        let argument = argument.trim();
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" | "HELO" if argument.is_empty() => {
                self.error("501 5.5.4 A domain or address literal is needed")
                    .await?;
            }
            "EHLO" => {
                self.greeted = true;
                self.reset();
                self.reply(&format!(
                    "250-{HOSTNAME}\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250 SIZE {MAX_MESSAGE}"
                ))
                .await?;
            }
            "HELO" => {
                self.greeted = true;
                self.reset();
                self.reply(&format!("250 {HOSTNAME}")).await?;
            }
            "MAIL" => self.mail(argument).await?,
            "RCPT" => return self.rcpt(argument).await,
            "DATA" => return self.data(argument).await,
            "RSET" if !argument.is_empty() => {
                self.error("501 5.5.4 RSET takes no argument").await?;
            }
            "RSET" => {
                self.reset();
                self.reply("250 2.0.0 OK").await?;
            }
            "NOOP" => self.reply("250 2.0.0 OK").await?,
            "QUIT" => {
                self.reply("221 2.0.0 Bye").await?;
                return Ok(Flow::Close);
            }
            "" => self.error("500 5.5.2 Syntax error").await?,
            _ => self.error("502 5.5.1 Command not implemented").await?,
        }
        Ok(Flow::Continue)
    }

    async fn mail(&mut self, argument: &str) -> io::Result<()> {
        if !self.greeted {
            return self.error("503 5.5.1 Send EHLO or HELO first").await;
        }
        if self.from.is_some() {
            return self.error("503 5.5.1 Nested MAIL command").await;
        }
        let Some((from, parameters)) = path(argument, "FROM:") else {
            return self
                .error("501 5.5.4 Syntax: MAIL FROM:<address> [parameters]")
                .await;
        };
        for parameter in parameters.split_ascii_whitespace() {
            let (name, value) = parameter.split_once('=').unwrap_or((parameter, ""));
            match name.to_ascii_uppercase().as_str() {
                "SIZE" => match value.parse::<usize>() {
                    Ok(size) if size > MAX_MESSAGE => {
                        return self
                            .reply(&format!(
                                "552 5.3.4 Message size exceeds the fixed maximum of {MAX_MESSAGE} octets"
                            ))
                            .await;
                    }
                    Ok(_) => {}
                    Err(_) => return self.error("501 5.5.4 Bad SIZE parameter").await,
                },
                "BODY"
                    if value.eq_ignore_ascii_case("7BIT")
                        || value.eq_ignore_ascii_case("8BITMIME") => {}
                _ => {
                    return self
                        .error("555 5.5.4 MAIL FROM parameter not recognized")
                        .await;
                }
            }
        }
        self.from = Some(from.to_owned());
        self.reply("250 2.1.0 OK").await
    }

    async fn rcpt(&mut self, argument: &str) -> io::Result<Flow> {
        if self.from.is_none() {
            self.error("503 5.5.1 Need MAIL before RCPT").await?;
            return Ok(Flow::Continue);
        }
        let Some((to, parameters)) = path(argument, "TO:") else {
            self.error("501 5.5.4 Syntax: RCPT TO:<address>").await?;
            return Ok(Flow::Continue);
        };
        if !parameters.is_empty() {
            self.error("555 5.5.4 RCPT TO parameters not recognized")
                .await?;
            return Ok(Flow::Continue);
        }
        if !is_address(to) {
            self.reply("553 5.1.3 Bad recipient address syntax").await?;
            return Ok(Flow::Continue);
        }
        if self.to.len() >= MAX_RECIPIENTS {
            self.reply("452 4.5.3 Too many recipients").await?;
            return Ok(Flow::Continue);
        }
        let faults = self.state.smtp_faults();
        if let Some(code) = faults.smtp_reply
            && roll(faults.smtp_reply_rate)
        {
            tracing::info!(
                simulator = %self.state.ctx.kind,
                to = %mask(to),
                code,
                "recipient refused (fault)"
            );
            self.reply(&injected_reply(code)).await?;
            return Ok(if code == 421 {
                Flow::Close
            } else {
                Flow::Continue
            });
        }
        self.to.push(to.to_owned());
        self.reply("250 2.1.5 OK").await?;
        Ok(Flow::Continue)
    }

    async fn data(&mut self, argument: &str) -> io::Result<Flow> {
        if !argument.is_empty() {
            self.error("501 5.5.4 DATA takes no argument").await?;
            return Ok(Flow::Continue);
        }
        if self.from.is_none() {
            self.error("503 5.5.1 Need MAIL before DATA").await?;
            return Ok(Flow::Continue);
        }
        if self.to.is_empty() {
            self.error("503 5.5.1 Need RCPT before DATA").await?;
            return Ok(Flow::Continue);
        }
        self.reply("354 Start mail input; end with <CRLF>.<CRLF>")
            .await?;

        let mut data = Vec::new();
        let mut too_big = false;
        let mut too_long = false;
        loop {
            match self.next_line().await? {
                Input::Line(line) => {
                    if line == b".\r\n" || line == b".\n" {
                        break;
                    }
                    // Dot-unstuffing: the client doubled every leading dot.
                    let line = line.strip_prefix(b".").unwrap_or(&line);
                    if data.len() + line.len() > MAX_MESSAGE {
                        too_big = true;
                    } else if !too_big {
                        data.extend_from_slice(line);
                    }
                }
                Input::TooLong => too_long = true,
                input => {
                    self.end(input).await?;
                    return Ok(Flow::Close);
                }
            }
        }

        if too_big {
            self.reset();
            self.reply(&format!(
                "552 5.3.4 Message size exceeds the fixed maximum of {MAX_MESSAGE} octets"
            ))
            .await?;
        } else if too_long {
            self.reset();
            self.reply("500 5.5.2 Line too long").await?;
        } else {
            let queued = self.store(&data);
            self.reset();
            self.reply(&format!("250 2.0.0 OK: queued as {queued}"))
                .await?;
        }
        Ok(Flow::Continue)
    }

    /// Keeps a received message; returns its queue id.
    fn store(&self, data: &[u8]) -> String {
        let parsed = message::parse(data);
        let envelope_from = self.from.clone().unwrap_or_default();
        let mail = Mail {
            from: parsed.from.unwrap_or(envelope_from),
            to: self.to.clone(),
            subject: parsed.subject.unwrap_or_default(),
            message_id: parsed.message_id,
            text: parsed.text,
            received_at: timestamp(Utc::now()),
        };
        let queued = uuid::Uuid::new_v4().simple().to_string();
        let to: Vec<String> = mail.to.iter().map(|t| mask(t)).collect();
        let message_id = mail.message_id.clone();
        let again = self.state.store.receive(mail);
        tracing::info!(
            simulator = %self.state.ctx.kind,
            %queued,
            to = ?to,
            message_id = message_id.as_deref().unwrap_or("-"),
            bytes = data.len(),
            again,
            "e-mail received"
        );
        queued
    }

    /// Ends the session on EOF, idleness or shutdown, telling the client why when it is there.
    async fn end(&mut self, input: Input) -> io::Result<()> {
        match input {
            Input::Idle => self.reply("421 4.4.2 Idle for too long, closing").await,
            Input::Shutdown => self.reply("421 4.3.2 Shutting down, closing").await,
            _ => Ok(()),
        }
    }

    /// The next line, unless the client goes silent or the simulator shuts down first.
    async fn next_line(&mut self) -> io::Result<Input> {
        tokio::select! {
            read = tokio::time::timeout(IDLE_TIMEOUT, read_line(&mut self.reader, MAX_LINE)) => {
                match read {
                    Ok(input) => input,
                    Err(_) => Ok(Input::Idle),
                }
            }
            () = self.state.ctx.shutdown.cancelled() => Ok(Input::Shutdown),
        }
    }

    /// Sleeps unless shutdown comes first; true when the whole time passed.
    async fn wait(&self, duration: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(duration) => true,
            () = self.state.ctx.shutdown.cancelled() => false,
        }
    }

    /// Forgets the transaction under way (not the greeting).
    fn reset(&mut self) {
        self.from = None;
        self.to.clear();
    }

    /// Sends a reply (its lines separated by CRLF, without the last CRLF).
    async fn reply(&mut self, reply: &str) -> io::Result<()> {
        self.writer
            .write_all(format!("{reply}\r\n").as_bytes())
            .await?;
        self.writer.flush().await
    }

    /// Sends a reply to a command that was malformed or out of order, and counts it.
    async fn error(&mut self, reply: &str) -> io::Result<()> {
        self.errors += 1;
        self.reply(reply).await
    }
}

/// Reads one line of at most `max` octets (line break included). A longer one is read to its
/// end and dropped, so the session stays in step with the client.
async fn read_line<R: AsyncBufRead + Unpin>(reader: &mut R, max: usize) -> io::Result<Input> {
    let mut line = Vec::new();
    let mut too_long = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(Input::Closed);
        }
        let (taken, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        if line.len() + taken > max {
            too_long = true;
            line.clear();
        } else if !too_long {
            line.extend_from_slice(&available[..taken]);
        }
        reader.consume(taken);
        if done {
            return Ok(if too_long {
                Input::TooLong
            } else {
                Input::Line(line)
            });
        }
    }
}

fn trim_line_break(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The path and the parameters of `MAIL FROM:<path> params` (after the verb): `keyword` is
/// `FROM:` or `TO:`, matched case-insensitively, with optional space before the `<`.
fn path<'a>(argument: &'a str, keyword: &str) -> Option<(&'a str, &'a str)> {
    let head = argument.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = argument[keyword.len()..].trim_start();
    let rest = rest.strip_prefix('<')?;
    let end = rest.find('>')?;
    Some((&rest[..end], rest[end + 1..].trim()))
}

/// A forward path the sink delivers to: `local@domain`, without white space or brackets.
fn is_address(to: &str) -> bool {
    match to.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && to.len() <= 254
                && !to.contains(|c: char| c.is_whitespace() || c == '<' || c == '>')
        }
        None => false,
    }
}

/// The reply an injected `smtp_reply` code is sent with.
fn injected_reply(code: u16) -> String {
    let text = INJECTABLE_REPLIES
        .iter()
        .find(|(c, _)| *c == code)
        .map_or("Injected fault", |(_, text)| text);
    format!("{code} {text} (injected fault)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_with_or_without_a_space() {
        assert_eq!(
            path("FROM:<a@b.by> SIZE=10", "FROM:"),
            Some(("a@b.by", "SIZE=10"))
        );
        assert_eq!(path("from: <a@b.by>", "FROM:"), Some(("a@b.by", "")));
        assert_eq!(path("FROM:<>", "FROM:"), Some(("", "")));
        assert_eq!(
            path("TO:<Ivan@Example.by>", "TO:"),
            Some(("Ivan@Example.by", ""))
        );
        assert_eq!(path("TO:a@b.by", "TO:"), None);
        assert_eq!(path("FROM:<a@b.by>", "TO:"), None);
        assert_eq!(path("T", "TO:"), None);
    }

    #[test]
    fn only_plain_addresses_are_recipients() {
        assert!(is_address("ivan@example.by"));
        assert!(!is_address(""));
        assert!(!is_address("ivan"));
        assert!(!is_address("@example.by"));
        assert!(!is_address("ivan@"));
        assert!(!is_address("iv an@example.by"));
    }

    #[tokio::test]
    async fn lines_are_bounded_and_a_long_one_is_skipped_whole() {
        let long = "x".repeat(MAX_LINE + 10);
        let input = format!("EHLO a\r\n{long}\r\nNOOP\r\nlast");
        let mut reader = BufReader::with_capacity(16, input.as_bytes());
        assert_eq!(
            read_line(&mut reader, MAX_LINE).await.ok(),
            Some(Input::Line(b"EHLO a\r\n".to_vec()))
        );
        assert_eq!(
            read_line(&mut reader, MAX_LINE).await.ok(),
            Some(Input::TooLong)
        );
        assert_eq!(
            read_line(&mut reader, MAX_LINE).await.ok(),
            Some(Input::Line(b"NOOP\r\n".to_vec()))
        );
        assert_eq!(
            read_line(&mut reader, MAX_LINE).await.ok(),
            Some(Input::Closed)
        );
    }

    #[test]
    fn injected_replies_name_their_code() {
        assert!(injected_reply(451).starts_with("451 4.3.0 "));
        assert!(injected_reply(550).starts_with("550 5.1.1 "));
    }
}
