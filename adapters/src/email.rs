//! The portal's e-mail: the client of the SMTP relay that takes the portal's messages (the
//! activation link after a registration, ...) to the people's mailboxes.
//!
//! SMTP is a conversation, not a request, and its failures come as reply codes: a relay that
//! answers 4xx (421 closing, 450/451/452 busy or short of resources) asks to be tried again
//! later, one that answers 5xx (550 no such mailbox, 553, 554) has refused for good. The client
//! maps them, and connection failures and timeouts, onto [`crate::failure`]'s classification.
//!
//! A re-sent e-mail carries the same `Message-ID`, derived from the command's idempotency key
//! ([`message_id`]): SMTP has no idempotency, so a re-send after a lost reply may deliver twice,
//! but the relay's logs and the recipient's client can tell the copies for what they are.
//!
//! The body holds an activation link, a secret, and an address is personal data: neither goes
//! into a failure reason or a log line (addresses are masked, [`mask_email`]), and the relay's
//! own reply text, which usually repeats the address, is left out too — only its codes are kept.
//!
//! TLS: `smtp://` is plain SMTP (the local simulator), `smtp://...?tls=required` STARTTLS,
//! `smtps://` TLS from the first byte; lettre does it with rustls, trusting the OS's
//! certificate store (where a national CA can be added).

use std::fmt;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::{Address, AsyncTransport, Message, Tokio1Executor};
use url::Url;
use uuid::Uuid;

use crate::failure::{Failure, QuickRetry, contract_violation};

/// How the relay is named in failure reasons and logs.
const SYSTEM: &str = "SMTP relay";

/// The domain of the `Message-ID`s the hub gives its e-mails.
pub const MESSAGE_ID_DOMAIN: &str = "hub.portal";

/// Where the relay is and who the e-mails are from.
#[derive(Clone, PartialEq, Eq)]
pub struct EmailConfig {
    /// The relay: `smtp://host:port` (plain; the simulator is `smtp://127.0.0.1:2525`),
    /// `smtp://host:587?tls=required` (STARTTLS), or `smtps://host:465` (TLS), with an optional
    /// `user:password@` (percent-encoded) — only over TLS. A path gives the name the client
    /// introduces itself with (`smtps://relay:465/hub.portal.gov.by`); without one it is
    /// `[127.0.0.1]`.
    pub smtp_url: Url,
    /// The sender as the person sees it: `E-Services Portal <noreply@portal.gov.by>`.
    pub from: String,
    /// The bound on one attempt at sending, connecting and every reply included.
    pub timeout: Duration,
}

impl fmt::Debug for EmailConfig {
    /// Leaves the credentials in the URL out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailConfig")
            .field("smtp_url", &redacted(&self.smtp_url))
            .field("from", &self.from)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A client of the SMTP relay.
#[derive(Clone)]
pub struct EmailClient {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    config: EmailConfig,
    retry: QuickRetry,
}

impl fmt::Debug for EmailClient {
    /// The configuration without its credentials; the transport (which holds them) is left out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailClient")
            .field("config", &self.config)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// The relay accepted an e-mail for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentEmail {
    /// The e-mail's `Message-ID` (`<key@hub.portal>`, see [`message_id`]).
    pub message_id: String,
}

impl EmailClient {
    /// A client of the relay in `config`; transient failures get [`QuickRetry::default`].
    ///
    /// Errors (permanent, naming what is wrong and never the password): a URL that is not
    /// `smtp://` or `smtps://` or has no host, a `tls` parameter other than `required` or
    /// `opportunistic`, credentials without TLS (they would cross the network in clear), a zero
    /// timeout, a `from` that is not a mailbox.
    pub fn new(config: EmailConfig) -> Result<Self, Failure> {
        let url = &config.smtp_url;
        let tls = url
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned());
        match (url.scheme(), tls.as_deref()) {
            ("smtp", None | Some("required" | "opportunistic")) | ("smtps", None) => {}
            ("smtp", Some(other)) => {
                return Err(Failure::permanent(format!(
                    "EmailConfig.smtp_url: tls={other:?} is not one of required, opportunistic"
                )));
            }
            ("smtps", Some(other)) => {
                return Err(Failure::permanent(format!(
                    "EmailConfig.smtp_url: smtps:// is TLS already and takes no tls={other:?}"
                )));
            }
            (scheme, _) => {
                return Err(Failure::permanent(format!(
                    "EmailConfig.smtp_url must be smtp:// or smtps://, not {scheme}://"
                )));
            }
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(Failure::permanent("EmailConfig.smtp_url has no host"));
        }
        let encrypted = url.scheme() == "smtps" || tls.as_deref() == Some("required");
        if url.password().is_some() && !encrypted {
            return Err(Failure::permanent(
                "EmailConfig.smtp_url has credentials but no TLS: use smtps:// or ?tls=required",
            ));
        }
        if config.timeout.is_zero() {
            return Err(Failure::permanent("EmailConfig.timeout must not be zero"));
        }
        let from: Mailbox = config.from.parse().map_err(|e| {
            Failure::permanent(format!(
                "EmailConfig.from {:?} is not a mailbox like \"Name <user@domain>\" ({e})",
                config.from
            ))
        })?;
        // lettre's own errors name the part it did not take, never the URL or the password.
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.as_str())
            .map_err(|e| Failure::permanent(format!("EmailConfig.smtp_url: {e}")))?
            .timeout(Some(config.timeout))
            .build();
        Ok(EmailClient {
            transport,
            from,
            config,
            retry: QuickRetry::default(),
        })
    }

    /// The same client with another in-process retry policy.
    pub fn with_retry(mut self, retry: QuickRetry) -> Self {
        self.retry = retry;
        self
    }

    /// Sends a plain-text e-mail to `to`. Its `Message-ID` is [`message_id`] of
    /// `idempotency_key` (the command's message id), the same for every re-send.
    ///
    /// Errors: an address that is not one (the reason masks it), an empty or multi-line subject,
    /// an empty body are invalid input; a 5xx reply (550 no such mailbox, 553, 554, ...) is
    /// permanent, naming the code; a 4xx reply (421, 450, 451, 452), a refused or lost
    /// connection, a TLS failure and a timeout are transient after the quick retries; a relay
    /// that does not speak SMTP, or that cannot take the e-mail as configured (STARTTLS
    /// required but not offered), is permanent.
    pub async fn send(
        &self,
        idempotency_key: Uuid,
        to: &str,
        subject: &str,
        text_body: &str,
    ) -> Result<SentEmail, Failure> {
        let masked = mask_email(to);
        let address: Address = to.trim().parse().map_err(|e| {
            Failure::invalid_input(format!("not an e-mail address ({e}): {masked}"))
        })?;
        if subject.trim().is_empty() {
            return Err(Failure::invalid_input("e-mail subject must not be empty"));
        }
        if subject.contains(['\r', '\n']) {
            return Err(Failure::invalid_input("e-mail subject must be one line"));
        }
        if text_body.trim().is_empty() {
            return Err(Failure::invalid_input("e-mail body must not be empty"));
        }
        let message_id = message_id(idempotency_key);
        let message = Message::builder()
            .message_id(Some(message_id.clone()))
            .from(self.from.clone())
            .to(Mailbox::new(None, address))
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(text_body.to_owned())
            .map_err(|e| Failure::permanent(format!("the e-mail could not be built: {e}")))?;
        let envelope = message.envelope().clone();
        let bytes = message.formatted();
        let timeout = self.config.timeout;
        let result = self
            .retry
            .run(SYSTEM, || async {
                match tokio::time::timeout(timeout, self.transport.send_raw(&envelope, &bytes))
                    .await
                {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(classify(&e)),
                    Err(_) => Err(Failure::transient(format!(
                        "{SYSTEM} timed out after {} ms",
                        timeout.as_millis()
                    ))),
                }
            })
            .await;
        match &result {
            Ok(()) => tracing::info!(to = %masked, %message_id, "e-mail accepted by the relay"),
            Err(f) => tracing::warn!(
                to = %masked,
                %message_id,
                kind = ?f.kind,
                reason = %f.reason,
                "e-mail not sent"
            ),
        }
        result.map(|()| SentEmail { message_id })
    }
}

/// The `Message-ID` of the e-mail sent under `idempotency_key`: `<{key}@hub.portal>`.
pub fn message_id(idempotency_key: Uuid) -> String {
    format!("<{idempotency_key}@{MESSAGE_ID_DOMAIN}>")
}

/// An address for logs and failure reasons: the first character of the local part and the
/// domain (`ivan.petrov@example.by` → `i***@example.by`); `***` for anything without both.
pub fn mask_email(address: &str) -> String {
    /// A domain longer than DNS allows is cut: the input may be anything.
    const MAX_DOMAIN_CHARS: usize = 253;
    match address.trim().rsplit_once('@') {
        Some((local, domain)) if !domain.is_empty() => match local.chars().next() {
            Some(first) => {
                let domain: String = domain.chars().take(MAX_DOMAIN_CHARS).collect();
                format!("{first}***@{domain}")
            }
            None => "***".to_owned(),
        },
        _ => "***".to_owned(),
    }
}

/// The relay URL without its credentials, for `Debug`.
fn redacted(url: &Url) -> String {
    let mut shown = url.clone();
    let had_credentials = !url.username().is_empty() || url.password().is_some();
    // Both only fail for URLs that cannot have credentials, which then have none to hide.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    if had_credentials {
        format!("{shown} (credentials redacted)")
    } else {
        shown.to_string()
    }
}

/// Classifies a failed SMTP exchange: reply codes by their first digit (4 transient, 5
/// permanent), then timeouts, broken connections and TLS (transient), then a relay that cannot
/// do what the configuration asks or does not speak SMTP (permanent).
fn classify(error: &lettre::transport::smtp::Error) -> Failure {
    use std::error::Error as _;

    if let Some(code) = error.status() {
        let code = u16::from(code);
        // Only the enhanced status code (`5.1.1`) of the reply's text is kept: the rest usually
        // repeats the address.
        let enhanced = error
            .source()
            .map(ToString::to_string)
            .and_then(|text| text.split_whitespace().next().map(str::to_owned))
            .filter(|token| is_enhanced_code(token));
        let reason = match enhanced {
            Some(enhanced) => format!("{SYSTEM} answered {code} ({enhanced})"),
            None => format!("{SYSTEM} answered {code}"),
        };
        return if error.is_permanent() {
            Failure::permanent(reason)
        } else {
            Failure::transient(reason)
        };
    }
    if error.is_timeout() {
        return Failure::transient(format!("{SYSTEM} timed out"));
    }
    if error.is_tls() {
        // A handshake cut short or a certificate being replaced: worth the delayed retries,
        // which also give an operator time to fix a trust problem before the e-mail is lost.
        return Failure::transient(format!("TLS with the {SYSTEM} failed: {error}"));
    }
    if error.is_client() {
        return Failure::permanent(format!("{SYSTEM} cannot be used as configured: {error}"));
    }
    if error.is_response() {
        // lettre reports a connection closed before the reply as an incomplete response.
        if error.to_string().ends_with("incomplete response") {
            return Failure::transient(format!("{SYSTEM} closed the connection without an answer"));
        }
        return contract_violation(SYSTEM, "answered outside the SMTP protocol");
    }
    let io = io_error(error);
    match io {
        Some(io) => Failure::transient(format!("{SYSTEM} could not be reached: {io}")),
        None => Failure::transient(format!("{SYSTEM} connection failed: {error}")),
    }
}

/// The innermost I/O error under `error`, if any.
fn io_error<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a std::io::Error> {
    let mut current = error.source();
    let mut found = None;
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            found = Some(io);
        }
        current = e.source();
    }
    found
}

/// An RFC 3463 enhanced status code: `4.3.0`, `5.1.1`.
fn is_enhanced_code(token: &str) -> bool {
    let mut parts = token.split('.');
    let class = parts.next();
    let subject = parts.next();
    let detail = parts.next();
    let numeric = |p: Option<&str>| {
        p.is_some_and(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
    };
    matches!(class, Some("2" | "4" | "5"))
        && numeric(subject)
        && numeric(detail)
        && parts.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::FailureKind;
    use serde_json::{Value, json};
    use simulators::{RunningSims, SimConfig, SimKind};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_util::sync::CancellationToken;

    const FROM: &str = "E-Services Portal <noreply@portal.gov.by>";
    const TO: &str = "ivan.petrov@example.by";
    const LINK: &str =
        "https://portal.gov.by/activate?token=Zm9vYmFyLXNlY3JldC10b2tlbi0xMjM0NTY3ODkw";

    /// The e-mail simulator on free ports, and an HTTP client for its inbox.
    struct Sink {
        sims: RunningSims,
        shutdown: CancellationToken,
        http: reqwest::Client,
    }

    impl Sink {
        async fn start() -> Sink {
            let shutdown = CancellationToken::new();
            let sims = simulators::start(
                SimConfig {
                    only: Some(vec![SimKind::Email]),
                    ..SimConfig::ephemeral()
                },
                shutdown.clone(),
            )
            .await
            .expect("the e-mail simulator starts");
            crate::tls::install_default_provider();
            let http = reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("an HTTP client");
            Sink {
                sims,
                shutdown,
                http,
            }
        }

        fn client_with(&self, timeout: Duration) -> EmailClient {
            EmailClient::new(config(
                self.sims.email_smtp_url().expect("the sink runs"),
                timeout,
            ))
            .expect("a valid configuration")
            .with_retry(quick())
        }

        fn client(&self) -> EmailClient {
            self.client_with(Duration::from_secs(2))
        }

        fn url(&self, path: &str) -> Url {
            self.sims
                .operator_url(SimKind::Email)
                .expect("the inbox runs")
                .join(path)
                .expect("a valid path")
        }

        async fn inbox(&self, address: &str) -> Vec<Value> {
            let body: Value = self
                .http
                .get(self.url(&format!("sim/inbox/{address}")))
                .send()
                .await
                .expect("the inbox answers")
                .json()
                .await
                .expect("JSON");
            body["messages"].as_array().cloned().unwrap_or_default()
        }

        async fn faults(&self, faults: Value) {
            let response = self
                .http
                .put(self.url("sim/faults"))
                .json(&faults)
                .send()
                .await
                .expect("the faults answer");
            assert!(response.status().is_success(), "{faults}");
        }

        async fn stop(self) {
            self.shutdown.cancel();
            tokio::time::timeout(Duration::from_secs(10), self.sims.stopped())
                .await
                .expect("the simulator stops");
        }
    }

    fn config(smtp_url: Url, timeout: Duration) -> EmailConfig {
        EmailConfig {
            smtp_url,
            from: FROM.to_owned(),
            timeout,
        }
    }

    fn url(s: &str) -> Url {
        Url::parse(s).expect("a URL")
    }

    fn quick() -> QuickRetry {
        QuickRetry {
            attempts: 2,
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(20),
            max_retry_after: Duration::ZERO,
        }
    }

    fn assert_no_secrets(failure: &Failure) {
        for secret in [TO, "ivan.petrov", LINK, "Zm9vYmFy"] {
            assert!(
                !failure.reason.contains(secret),
                "{secret} leaked: {}",
                failure.reason
            );
        }
    }

    #[tokio::test]
    async fn a_message_arrives_with_subject_body_and_message_id() {
        let sink = Sink::start().await;
        let key = Uuid::new_v4();
        let text = format!(
            "Здравствуйте!\n\nЧтобы активировать учётную запись, откройте ссылку:\n{LINK}\n"
        );
        let sent = sink
            .client()
            .send(key, TO, "Активация учётной записи на портале", &text)
            .await
            .expect("accepted");
        assert_eq!(sent.message_id, format!("<{key}@hub.portal>"));

        let messages = sink.inbox(TO).await;
        assert_eq!(messages.len(), 1);
        let m = &messages[0];
        assert_eq!(m["subject"], "Активация учётной записи на портале");
        assert_eq!(m["text"], text.as_str());
        assert_eq!(m["message_id"], sent.message_id.as_str());
        assert_eq!(m["from"], "\"E-Services Portal\" <noreply@portal.gov.by>");
        assert_eq!(m["to"], json!([TO]));
        sink.stop().await;
    }

    #[tokio::test]
    async fn an_ascii_message_with_a_long_link_arrives_whole() {
        let sink = Sink::start().await;
        let long_link = format!("{LINK}{}", "x".repeat(200));
        let text = format!("Hello,\r\n\r\n.a line with a leading dot\nactivate: {long_link}");
        sink.client()
            .send(
                Uuid::new_v4(),
                "Anna@Example.by",
                "Activate your account",
                &text,
            )
            .await
            .expect("accepted");
        let messages = sink.inbox("anna@example.by").await;
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0]["subject"], "Activate your account");
        // Quoted-printable, as SMTP carries it: the last line ends with a line break.
        assert_eq!(
            messages[0]["text"],
            format!("Hello,\n\n.a line with a leading dot\nactivate: {long_link}\n")
        );
        sink.stop().await;
    }

    #[tokio::test]
    async fn a_resend_carries_the_same_message_id() {
        let sink = Sink::start().await;
        let key = Uuid::new_v4();
        let client = sink.client();
        let first = client
            .send(key, TO, "Activation", LINK)
            .await
            .expect("sent");
        let again = client
            .send(key, TO, "Activation", LINK)
            .await
            .expect("sent");
        assert_eq!(first, again);
        let other = client
            .send(Uuid::new_v4(), TO, "Activation", LINK)
            .await
            .expect("sent");
        assert_ne!(first.message_id, other.message_id);
        let ids: Vec<Value> = sink
            .inbox(TO)
            .await
            .iter()
            .map(|m| m["message_id"].clone())
            .collect();
        assert_eq!(
            ids,
            vec![
                json!(first.message_id),
                json!(first.message_id),
                json!(other.message_id)
            ]
        );
        sink.stop().await;
    }

    #[tokio::test]
    async fn an_unreachable_relay_is_transient() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = listener.local_addr().expect("an address").port();
        drop(listener);
        let client = EmailClient::new(config(
            url(&format!("smtp://127.0.0.1:{port}")),
            Duration::from_secs(2),
        ))
        .expect("a valid configuration")
        .with_retry(quick());
        let f = client
            .send(Uuid::new_v4(), TO, "Activation", LINK)
            .await
            .expect_err("nobody listens");
        assert_eq!(f.kind, FailureKind::Transient);
        assert!(
            f.reason.starts_with("SMTP relay could not be reached"),
            "{}",
            f.reason
        );
        assert_no_secrets(&f);
    }

    #[tokio::test]
    async fn a_451_is_transient_and_a_550_permanent_naming_the_code() {
        let sink = Sink::start().await;
        for (code, kind, reason) in [
            (
                451,
                FailureKind::Transient,
                "SMTP relay answered 451 (4.3.0)",
            ),
            (
                452,
                FailureKind::Transient,
                "SMTP relay answered 452 (4.3.1)",
            ),
            (
                421,
                FailureKind::Transient,
                "SMTP relay answered 421 (4.3.2)",
            ),
            (
                550,
                FailureKind::Permanent,
                "SMTP relay answered 550 (5.1.1)",
            ),
            (
                553,
                FailureKind::Permanent,
                "SMTP relay answered 553 (5.1.3)",
            ),
            (
                554,
                FailureKind::Permanent,
                "SMTP relay answered 554 (5.7.1)",
            ),
        ] {
            sink.faults(json!({"smtp_reply": code})).await;
            let f = sink
                .client()
                .send(Uuid::new_v4(), TO, "Activation", LINK)
                .await
                .expect_err("refused");
            assert_eq!(f.kind, kind, "{code}");
            assert_eq!(f.reason, reason);
            assert_no_secrets(&f);
        }
        assert!(sink.inbox(TO).await.is_empty());
        sink.faults(json!({"smtp_reply": null})).await;
        sink.client()
            .send(Uuid::new_v4(), TO, "Activation", LINK)
            .await
            .expect("accepted once the fault is cleared");
        sink.stop().await;
    }

    #[tokio::test]
    async fn a_relay_turning_sessions_away_is_transient() {
        let sink = Sink::start().await;
        sink.faults(json!({"error_rate": 1.0})).await;
        let f = sink
            .client()
            .send(Uuid::new_v4(), TO, "Activation", LINK)
            .await
            .expect_err("turned away");
        assert_eq!(f.kind, FailureKind::Transient);
        assert_eq!(f.reason, "SMTP relay answered 421 (4.3.2)");
        sink.stop().await;
    }

    #[tokio::test]
    async fn a_silent_relay_times_out_as_transient() {
        let sink = Sink::start().await;
        sink.faults(json!({"timeout_rate": 1.0})).await;
        let started = std::time::Instant::now();
        let f = sink
            .client_with(Duration::from_millis(200))
            .send(Uuid::new_v4(), TO, "Activation", LINK)
            .await
            .expect_err("no greeting");
        assert_eq!(f.kind, FailureKind::Transient);
        assert!(f.reason.contains("timed out"), "{}", f.reason);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "two bounded attempts"
        );
        sink.stop().await;
    }

    /// A TCP server that answers every connection with `greeting` (nothing: hang up).
    async fn fake_relay(greeting: &'static [u8]) -> Url {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        let port = listener.local_addr().expect("an address").port();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let _ = stream.write_all(greeting).await;
                let mut buf = [0_u8; 256];
                let _ =
                    tokio::time::timeout(Duration::from_millis(50), stream.read(&mut buf)).await;
            }
        });
        url(&format!("smtp://127.0.0.1:{port}"))
    }

    #[tokio::test]
    async fn a_relay_that_hangs_up_is_transient_and_one_that_is_not_smtp_permanent() {
        let client = |smtp_url| {
            EmailClient::new(config(smtp_url, Duration::from_secs(2)))
                .expect("a valid configuration")
                .with_retry(QuickRetry::NONE)
        };
        let f = client(fake_relay(b"").await)
            .send(Uuid::new_v4(), TO, "Activation", LINK)
            .await
            .expect_err("no answer");
        assert_eq!(f.kind, FailureKind::Transient);
        assert_eq!(
            f.reason,
            "SMTP relay closed the connection without an answer"
        );

        let f = client(fake_relay(b"HTTP/1.1 400 Bad Request\r\n\r\n").await)
            .send(Uuid::new_v4(), TO, "Activation", LINK)
            .await
            .expect_err("not SMTP");
        assert_eq!(f.kind, FailureKind::Permanent);
        assert!(
            f.reason.starts_with("contract violation: SMTP relay"),
            "{}",
            f.reason
        );
    }

    #[tokio::test]
    async fn bad_addresses_are_invalid_input_and_masked() {
        let sink = Sink::start().await;
        let client = sink.client();
        for (to, masked) in [
            ("ivan.petrov@@example.by", "i***@example.by"),
            ("ivan.petrov example.by", "***"),
            ("ivan petrov@example.by", "i***@example.by"),
            ("ivan.petrov@", "***"),
            ("", "***"),
        ] {
            let f = client
                .send(Uuid::new_v4(), to, "Activation", LINK)
                .await
                .expect_err("not an address");
            assert_eq!(f.kind, FailureKind::InvalidInput, "{to}");
            assert!(
                f.reason.starts_with("not an e-mail address ("),
                "{}",
                f.reason
            );
            assert!(f.reason.ends_with(masked), "{to}: {}", f.reason);
            assert!(to.is_empty() || !f.reason.contains(to), "{}", f.reason);
            assert_no_secrets(&f);
        }
        for (subject, body) in [
            ("", LINK),
            ("Two\r\nBcc: x@y.by", LINK),
            ("Activation", " "),
        ] {
            let f = client
                .send(Uuid::new_v4(), TO, subject, body)
                .await
                .expect_err("invalid");
            assert_eq!(f.kind, FailureKind::InvalidInput);
        }
        assert!(sink.inbox(TO).await.is_empty());
        sink.stop().await;
    }

    #[test]
    fn mask_email_keeps_the_first_character_and_the_domain() {
        for (address, masked) in [
            ("ivan.petrov@example.by", "i***@example.by"),
            ("i@example.by", "i***@example.by"),
            ("  Anna@Mail.BY ", "A***@Mail.BY"),
            ("анна@почта.бел", "а***@почта.бел"),
            ("a@b@example.by", "a***@example.by"),
            ("@example.by", "***"),
            ("ivan@", "***"),
            ("ivan", "***"),
            ("", "***"),
        ] {
            assert_eq!(mask_email(address), masked, "{address}");
        }
        let long = format!("ivan@{}", "d".repeat(1000));
        assert_eq!(mask_email(&long).len(), "i***@".len() + 253);
    }

    #[test]
    fn the_client_is_shareable_and_its_send_future_is_send() {
        fn send_sync<T: Send + Sync>(_: &T) {}
        fn send<T: Send>(_: T) {}
        let client = EmailClient::new(config(url("smtp://127.0.0.1:2525"), Duration::from_secs(1)))
            .expect("a valid configuration");
        send_sync(&client);
        // Not awaited: only its type is checked, since the hub's workers box it as `Send`.
        send(client.send(Uuid::new_v4(), TO, "Activation", LINK));
    }

    #[test]
    fn the_message_id_comes_from_the_key() {
        let key = Uuid::parse_str("6f1c1a9e-0000-4000-8000-000000000001").expect("a UUID");
        assert_eq!(
            message_id(key),
            "<6f1c1a9e-0000-4000-8000-000000000001@hub.portal>"
        );
    }

    #[test]
    fn debug_shows_no_credentials() {
        let client = EmailClient::new(config(
            url("smtps://hub-mailer:s3cr%40t-pass@relay.portal.gov.by:465"),
            Duration::from_secs(5),
        ))
        .expect("a valid configuration");
        for shown in [format!("{client:?}"), format!("{:?}", client.config)] {
            assert!(!shown.contains("s3cr"), "{shown}");
            assert!(!shown.contains("hub-mailer"), "{shown}");
            assert!(shown.contains("relay.portal.gov.by"), "{shown}");
            assert!(shown.contains("credentials redacted"), "{shown}");
        }
    }

    #[test]
    fn tls_configurations_build() {
        for smtp_url in [
            "smtp://127.0.0.1:2525",
            "smtp://relay.portal.gov.by:587?tls=required",
            "smtp://user:pass@relay.portal.gov.by:587?tls=required",
            "smtp://relay.portal.gov.by?tls=opportunistic",
            "smtps://user:pass@relay.portal.gov.by",
            "smtps://relay.portal.gov.by:465/hub.portal.gov.by",
        ] {
            EmailClient::new(config(url(smtp_url), Duration::from_secs(5)))
                .unwrap_or_else(|f| panic!("{smtp_url}: {f}"));
        }
    }

    #[test]
    fn a_bad_configuration_is_permanent_and_keeps_the_password_out() {
        for (smtp_url, from, timeout, expected) in [
            ("http://relay:25", FROM, 5, "must be smtp:// or smtps://"),
            ("smtp://relay:25?tls=always", FROM, 5, "tls=\"always\""),
            ("smtps://relay?tls=required", FROM, 5, "tls=\"required\""),
            (
                "smtp://user:s3cret@relay:25",
                FROM,
                5,
                "credentials but no TLS",
            ),
            (
                "smtp://user:s3cret@relay:25?tls=opportunistic",
                FROM,
                5,
                "credentials but no TLS",
            ),
            ("smtp://relay:25", "not a mailbox", 5, "is not a mailbox"),
            ("smtp://relay:25", FROM, 0, "timeout must not be zero"),
        ] {
            let f = EmailClient::new(EmailConfig {
                smtp_url: url(smtp_url),
                from: from.to_owned(),
                timeout: Duration::from_secs(timeout),
            })
            .expect_err("a bad configuration");
            assert_eq!(f.kind, FailureKind::Permanent, "{smtp_url}");
            assert!(f.reason.contains(expected), "{smtp_url}: {}", f.reason);
            assert!(!f.reason.contains("s3cret"), "{}", f.reason);
        }
    }

    #[test]
    fn enhanced_status_codes_are_recognised() {
        for code in ["5.1.1", "4.3.0", "2.0.0", "5.7.123"] {
            assert!(is_enhanced_code(code), "{code}");
        }
        for token in [
            "550",
            "5.1",
            "6.1.1",
            "5.1.1.1",
            "5.a.1",
            "<ivan@example.by>",
            "",
        ] {
            assert!(!is_enhanced_code(token), "{token}");
        }
    }
}
