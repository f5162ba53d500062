//! The e-mail worker: sends the portal's e-mails (activation links, notes to account holders).
//! An activation token arrives sealed and is opened here, just before the call, into the link;
//! it is never logged or stored. The command's message id is the e-mail's idempotency key
//! (its `Message-ID`), so a redelivered command is recognisable downstream.

use std::sync::Arc;

use adapters::Failure;
use adapters::email::{EmailClient, mask_email};
use contracts::registration::{EmailPurpose, SendEmail};
use contracts::{Message, decode};
use futures_util::future::BoxFuture;
use sqlx::PgConnection;
use url::Url;

use hub_runtime::broker::Incoming;
use hub_runtime::engine::{Command, Service};
use hub_runtime::metrics::external_call;
use hub_runtime::secrets::Sealer;

/// The worker's queue (short name).
pub const QUEUE: &str = "adapter.email";

/// The queue and the commands it takes.
pub fn queue_spec() -> contracts::QueueSpec {
    contracts::QueueSpec::new(QUEUE, [SendEmail::TYPE.to_string()])
}

/// Sends e-mail through the portal's mail server.
#[derive(Debug, Clone)]
pub struct EmailWorker {
    client: EmailClient,
    sealer: Arc<Sealer>,
    /// The portal's public address: activation links point at `{portal}activate?token=...`.
    portal_url: Url,
}

impl EmailWorker {
    /// A worker sending through `client`, opening tokens with `sealer`.
    pub fn new(client: EmailClient, sealer: Arc<Sealer>, portal_url: Url) -> Self {
        Self {
            client,
            sealer,
            portal_url,
        }
    }

    /// The subject and text of an e-mail.
    fn compose(&self, m: &SendEmail) -> Result<(String, String), Failure> {
        Ok(match m.purpose {
            EmailPurpose::Activation => {
                let sealed = m.token.as_ref().ok_or_else(|| {
                    Failure::invalid_input("an activation e-mail without its token")
                })?;
                let token = self.sealer.open(sealed)?;
                let mut link = self
                    .portal_url
                    .join("activate")
                    .map_err(|e| Failure::permanent(format!("the portal URL: {e}")))?;
                link.query_pairs_mut().append_pair("token", &token);
                (
                    "Активация личного кабинета на портале электронных услуг".to_owned(),
                    format!(
                        "Здравствуйте, {}!\n\nДля активации личного кабинета перейдите по ссылке:\n{link}\n\n\
                         Ссылка действует 24 часа и может быть использована один раз. Если вы не \
                         регистрировались на портале, просто удалите это письмо.\n",
                        m.name
                    ),
                )
            }
            EmailPurpose::AlreadyRegistered => (
                "Попытка повторной регистрации на портале электронных услуг".to_owned(),
                format!(
                    "Здравствуйте, {}!\n\nКто-то пытался зарегистрироваться на портале с этим адресом \
                     электронной почты, но для него уже есть личный кабинет. Если это были вы, войдите \
                     со своим паролем или восстановите его. Если нет, ничего делать не нужно.\n",
                    m.name
                ),
            ),
        })
    }
}

impl Service for EmailWorker {
    type Prepared = ();

    fn name(&self) -> &'static str {
        "adapter.email"
    }

    fn prepare<'a>(&'a self, message: &'a Incoming) -> BoxFuture<'a, Result<(), Failure>> {
        Box::pin(async move {
            let t = message.metadata.message_type.as_str();
            if !SendEmail::TYPE.matches(t) {
                return Err(Failure::invalid_input(format!(
                    "the e-mail worker does not take {t}"
                )));
            }
            let m: SendEmail = decode(t, &message.body)?;
            let (subject, text) = self.compose(&m)?;
            let sent = self
                .client
                .send(message.metadata.message_id, &m.to, &subject, &text);
            external_call("email", "send", sent).await?;
            tracing::info!(to = %mask_email(&m.to), purpose = ?m.purpose, "e-mail sent");
            Ok(())
        })
    }

    fn apply<'a>(
        &'a self,
        _conn: &'a mut PgConnection,
        _message: &'a Incoming,
        (): (),
    ) -> BoxFuture<'a, Result<Vec<Command>, Failure>> {
        Box::pin(async move { Ok(Vec::new()) })
    }
}
