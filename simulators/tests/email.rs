//! The e-mail simulator over real SMTP and HTTP: a raw SMTP session as a client speaks it
//! (dot-unstuffing, the size and line bounds, commands out of order), what the inbox then
//! shows, and the `smtp_reply` fault.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::Sims;
use serde_json::{Value, json};
use simulators::{BindError, Ports, SimConfig, SimKind};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::sync::CancellationToken;

const EMAIL: SimKind = SimKind::Email;

/// The e-mail simulator alone, on free ports.
async fn sims() -> Sims {
    Sims::start(SimConfig {
        only: Some(vec![EMAIL]),
        ..SimConfig::ephemeral()
    })
    .await
}

/// A raw SMTP client: sends lines, reads replies.
struct Smtp {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Smtp {
    /// Connects to the sink and returns the client and the greeting.
    async fn connect(sims: &Sims) -> (Smtp, (u16, String)) {
        let url = sims.running.email_smtp_url().expect("the SMTP sink runs");
        let addr = format!(
            "{}:{}",
            url.host_str().expect("a host"),
            url.port().expect("a port")
        );
        let stream = TcpStream::connect(addr).await.expect("the sink accepts");
        let (read, write) = stream.into_split();
        let mut smtp = Smtp {
            reader: BufReader::new(read),
            writer: write,
        };
        let greeting = smtp.reply().await;
        (smtp, greeting)
    }

    /// Connects, checks the greeting, says EHLO.
    async fn ready(sims: &Sims) -> Smtp {
        let (mut smtp, (code, _)) = Smtp::connect(sims).await;
        assert_eq!(code, 220);
        assert_eq!(smtp.command("EHLO client.test").await.0, 250);
        smtp
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.expect("the sink reads");
    }

    /// One reply: its code and its text (the lines of a multi-line reply joined by `\n`).
    async fn reply(&mut self) -> (u16, String) {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let read =
                tokio::time::timeout(Duration::from_secs(10), self.reader.read_line(&mut line))
                    .await
                    .expect("a reply within 10 s")
                    .expect("the sink answers");
            assert!(read > 0, "the sink closed the connection");
            let line = line.trim_end().to_owned();
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                break;
            }
        }
        let code = lines[0][..3].parse().expect("a reply code");
        let text = lines
            .iter()
            .map(|l| l.get(4..).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n");
        (code, text)
    }

    async fn command(&mut self, line: &str) -> (u16, String) {
        self.send_raw(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }

    /// MAIL, a RCPT per recipient and DATA with `message` (dot-stuffed here); the final reply.
    async fn transaction(&mut self, to: &[&str], message: &str) -> (u16, String) {
        assert_eq!(
            self.command("MAIL FROM:<noreply@portal.gov.by>").await.0,
            250
        );
        for to in to {
            let (code, text) = self.command(&format!("RCPT TO:<{to}>")).await;
            if code != 250 {
                return (code, text);
            }
        }
        assert_eq!(self.command("DATA").await.0, 354);
        let mut data = String::new();
        for line in message.split("\r\n") {
            if line.starts_with('.') {
                data.push('.');
            }
            data.push_str(line);
            data.push_str("\r\n");
        }
        data.push_str(".\r\n");
        self.send_raw(data.as_bytes()).await;
        self.reply().await
    }

    /// True when the sink closed the connection (after a 421).
    async fn closed(&mut self) -> bool {
        let mut rest = String::new();
        matches!(
            tokio::time::timeout(Duration::from_secs(10), self.reader.read_line(&mut rest)).await,
            Ok(Ok(0))
        )
    }
}

async fn inbox(sims: &Sims, address: &str) -> Vec<Value> {
    let (status, body) = sims.get(EMAIL, &format!("sim/inbox/{address}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["messages"].as_array().expect("messages").clone()
}

/// A message as lettre writes one with Cyrillic in it: the subject and the display name as
/// base64 encoded words, the body base64.
const CYRILLIC_MESSAGE: &str = "From: =?utf-8?b?0J/QvtGA0YLQsNC7?= <noreply@portal.gov.by>\r\n\
    To: ivan@example.by\r\n\
    Subject: =?utf-8?b?0JDQutGC0LjQstCw0YbQuNGP?=\r\n\
    Message-ID: <6f1c1a9e-0000-4000-8000-000000000001@hub.portal>\r\n\
    Date: Thu, 26 Nov 2026 10:00:00 +0000\r\n\
    MIME-Version: 1.0\r\n\
    Content-Type: text/plain; charset=utf-8\r\n\
    Content-Transfer-Encoding: base64\r\n\
    \r\n\
    0J/RgNC40LLQtdGCLA0K0LzQuNGA";

#[tokio::test]
async fn a_full_session_delivers_to_every_recipient() {
    let sims = sims().await;
    let (mut smtp, (code, greeting)) = Smtp::connect(&sims).await;
    assert_eq!(code, 220);
    assert!(greeting.contains("ESMTP"), "{greeting}");
    let (code, extensions) = smtp.command("EHLO client.test").await;
    assert_eq!(code, 250);
    assert!(extensions.lines().any(|l| l == "8BITMIME"), "{extensions}");
    assert!(
        extensions.lines().any(|l| l == "SIZE 1048576"),
        "{extensions}"
    );
    assert_eq!(smtp.command("NOOP").await.0, 250);
    let (code, text) = smtp
        .transaction(&["ivan@example.by", "Anna@Example.by"], CYRILLIC_MESSAGE)
        .await;
    assert_eq!(code, 250, "{text}");
    assert_eq!(smtp.command("RSET").await.0, 250);
    assert_eq!(smtp.command("QUIT").await.0, 221);
    assert!(smtp.closed().await);

    let expected_to = json!(["ivan@example.by", "Anna@Example.by"]);
    for address in ["ivan@example.by", "anna@example.by", "ANNA@example.BY"] {
        let messages = inbox(&sims, address).await;
        assert_eq!(messages.len(), 1, "{address}");
        let m = &messages[0];
        assert_eq!(m["from"], "Портал <noreply@portal.gov.by>");
        assert_eq!(m["to"], expected_to);
        assert_eq!(m["subject"], "Активация");
        assert_eq!(
            m["message_id"],
            "<6f1c1a9e-0000-4000-8000-000000000001@hub.portal>"
        );
        assert_eq!(m["text"], "Привет,\nмир");
        assert!(m["received_at"].as_str().is_some_and(|t| t.ends_with('Z')));
    }
    assert!(inbox(&sims, "petr@example.by").await.is_empty());
    assert_eq!(
        inbox(&sims, "ivan%40example.by").await.len(),
        1,
        "@ encoded"
    );

    let (status, all) = sims.get(EMAIL, "sim/messages?limit=10").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all["messages"].as_array().map(Vec::len), Some(1));

    let response = sims
        .client
        .delete(sims.url(EMAIL, "sim/inbox/Ivan@example.by"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["deleted"], 1);
    assert!(inbox(&sims, "ivan@example.by").await.is_empty());
    assert_eq!(inbox(&sims, "anna@example.by").await.len(), 1);
    sims.stop().await;
}

#[tokio::test]
async fn dot_stuffed_lines_are_unstuffed_and_quoted_printable_is_decoded() {
    let sims = sims().await;
    let mut smtp = Smtp::ready(&sims).await;
    let message = "Subject: =?utf-8?q?=D0=9A=D0=BE=D0=B4?= 42\r\n\
        Content-Type: text/plain; charset=utf-8\r\n\
        Content-Transfer-Encoding: quoted-printable\r\n\
        \r\n\
        .\r\n\
        ..two dots\r\n\
        =D0=9F=D1=80=D0=B8=\r\n\
        =D0=B2=D0=B5=D1=82 a=3Db";
    let (code, text) = smtp.transaction(&["ivan@example.by"], message).await;
    assert_eq!(code, 250, "{text}");
    let messages = inbox(&sims, "ivan@example.by").await;
    assert_eq!(messages[0]["subject"], "Код 42");
    assert_eq!(messages[0]["text"], ".\n..two dots\nПривет a=b\n");
    assert_eq!(messages[0]["message_id"], Value::Null);
    assert_eq!(
        messages[0]["from"], "noreply@portal.gov.by",
        "no From header: the envelope's sender"
    );
    sims.stop().await;
}

#[tokio::test]
async fn an_oversized_message_is_refused_with_552() {
    let sims = sims().await;
    let mut smtp = Smtp::ready(&sims).await;
    let (code, _) = smtp
        .command("MAIL FROM:<noreply@portal.gov.by> SIZE=2000000")
        .await;
    assert_eq!(code, 552, "the declared size is too big");

    let line = "x".repeat(998);
    let body = vec![line.as_str(); 1100].join("\r\n");
    let (code, text) = smtp
        .transaction(&["ivan@example.by"], &format!("Subject: big\r\n\r\n{body}"))
        .await;
    assert_eq!(code, 552, "{text}");
    assert!(inbox(&sims, "ivan@example.by").await.is_empty());

    // The session goes on: the next message is taken.
    let (code, _) = smtp
        .transaction(&["ivan@example.by"], "Subject: small\r\n\r\nok")
        .await;
    assert_eq!(code, 250);
    assert_eq!(inbox(&sims, "ivan@example.by").await.len(), 1);
    sims.stop().await;
}

#[tokio::test]
async fn commands_out_of_sequence_are_503_and_unknown_ones_502() {
    let sims = sims().await;
    let (mut smtp, _) = Smtp::connect(&sims).await;
    assert_eq!(
        smtp.command("MAIL FROM:<a@b.by>").await.0,
        503,
        "before EHLO"
    );
    assert_eq!(smtp.command("HELO client.test").await.0, 250);
    assert_eq!(smtp.command("RCPT TO:<ivan@example.by>").await.0, 503);
    assert_eq!(smtp.command("DATA").await.0, 503);
    assert_eq!(smtp.command("MAIL FROM:<a@b.by>").await.0, 250);
    assert_eq!(smtp.command("MAIL FROM:<a@b.by>").await.0, 503, "nested");
    assert_eq!(smtp.command("DATA").await.0, 503, "no recipient yet");
    assert_eq!(smtp.command("RCPT TO:ivan@example.by").await.0, 501);
    assert_eq!(smtp.command("RCPT TO:<not an address>").await.0, 553);
    for unknown in ["VRFY ivan", "AUTH PLAIN", "STARTTLS", "HELP", "TURN"] {
        assert_eq!(smtp.command(unknown).await.0, 502, "{unknown}");
    }
    assert_eq!(smtp.command("EHLO").await.0, 501);
    let long = format!("NOOP {}", "x".repeat(1200));
    assert_eq!(smtp.command(&long).await.0, 500);
    assert_eq!(smtp.command("NOOP").await.0, 250, "still in step");
    assert_eq!(smtp.command("RSET").await.0, 250);
    assert_eq!(
        smtp.command("RCPT TO:<ivan@example.by>").await.0,
        503,
        "RSET ended it"
    );
    assert_eq!(smtp.command("QUIT").await.0, 221);
    sims.stop().await;
}

#[tokio::test]
async fn fault_451_refuses_recipients_until_cleared() {
    let sims = sims().await;
    let (status, faults) = sims.put_faults(EMAIL, &json!({"smtp_reply": 451})).await;
    assert_eq!(status, StatusCode::OK, "{faults}");
    assert_eq!(faults["smtp_reply"], 451);
    assert_eq!(faults["smtp_reply_rate"], 1.0);
    assert_eq!(faults["error_rate"], 0.0, "the common faults are there too");

    let mut smtp = Smtp::ready(&sims).await;
    let (code, text) = smtp
        .transaction(&["ivan@example.by"], "Subject: x\r\n\r\ny")
        .await;
    assert_eq!(code, 451);
    assert!(text.starts_with("4.3.0"), "{text}");
    assert_eq!(smtp.command("RSET").await.0, 250);

    let (status, faults) = sims
        .put_faults(EMAIL, &json!({"smtp_reply": 550, "latency_ms": 1}))
        .await;
    assert_eq!(status, StatusCode::OK, "{faults}");
    assert_eq!(faults["latency_ms"], 1);
    let (code, _) = smtp
        .transaction(&["ivan@example.by"], "Subject: x\r\n\r\ny")
        .await;
    assert_eq!(code, 550);
    assert_eq!(smtp.command("RSET").await.0, 250);

    for bad in [
        json!({"smtp_reply": 250}),
        json!({"smtp_reply_rate": 2.0}),
        json!({"smtp_reply": 451, "eror_rate": 0.5}),
    ] {
        let (status, body) = sims.put_faults(EMAIL, &bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(body["error"], "invalid_request");
    }
    let (_, faults) = sims.get(EMAIL, "sim/faults").await;
    assert_eq!(faults["smtp_reply"], 550, "a refused PUT changes nothing");

    let response = sims
        .client
        .delete(sims.url(EMAIL, "sim/faults"))
        .send()
        .await
        .expect("an answer");
    let faults: Value = response.json().await.expect("JSON");
    assert_eq!(faults["smtp_reply"], Value::Null);
    assert_eq!(faults["latency_ms"], 0);
    let (code, _) = smtp
        .transaction(&["ivan@example.by"], "Subject: x\r\n\r\ny")
        .await;
    assert_eq!(code, 250);
    assert_eq!(inbox(&sims, "ivan@example.by").await.len(), 1);
    sims.stop().await;
}

#[tokio::test]
async fn error_rate_turns_sessions_away_with_421() {
    let sims = sims().await;
    sims.put_faults(EMAIL, &json!({"error_rate": 1.0})).await;
    let (mut smtp, (code, _)) = Smtp::connect(&sims).await;
    assert_eq!(code, 421);
    assert!(smtp.closed().await);
    sims.stop().await;
}

#[tokio::test]
async fn bad_inbox_addresses_and_queries_are_400() {
    let sims = sims().await;
    let (status, body) = sims.get(EMAIL, "sim/inbox/not-an-address").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_address");
    let (status, body) = sims.get(EMAIL, "sim/messages?limit=many").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_request");
    let (status, body) = sims.get(EMAIL, "sim/health").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["simulator"], "email");
    sims.stop().await;
}

#[tokio::test]
async fn an_open_session_is_told_and_closed_on_shutdown() {
    let sims = sims().await;
    let url = sims.running.email_smtp_url().expect("the sink runs");
    assert_eq!(url.scheme(), "smtp");
    assert_eq!(url.host_str(), Some("127.0.0.1"));
    let mut smtp = Smtp::ready(&sims).await;
    sims.shutdown.cancel();
    let (code, _) = smtp.reply().await;
    assert_eq!(code, 421);
    assert!(smtp.closed().await);
    tokio::time::timeout(Duration::from_secs(10), sims.running.stopped())
        .await
        .expect("the simulator stops within 10 s");
}

#[tokio::test]
async fn a_taken_smtp_port_names_its_own_option() {
    let first = sims().await;
    let taken = first
        .running
        .email_smtp_url()
        .and_then(|url| url.port())
        .expect("a port");
    let result = simulators::start(
        SimConfig {
            only: Some(vec![EMAIL]),
            ports: Ports {
                email_smtp: taken,
                ..Ports::ANY
            },
            ..SimConfig::ephemeral()
        },
        CancellationToken::new(),
    )
    .await;
    let error = result.expect_err("the port is taken");
    let bind = error
        .downcast_ref::<BindError>()
        .expect("a BindError inside");
    assert_eq!(bind.kind, EMAIL);
    assert_eq!(bind.option, "--email-smtp-port");
    let message = error.to_string();
    assert!(message.contains("--email-smtp-port 0"), "{message}");
    assert!(message.contains(&format!("127.0.0.1:{taken}")), "{message}");
    first.stop().await;
}
