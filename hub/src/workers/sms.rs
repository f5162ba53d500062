//! The SMS worker: the operators' subscriber check and sending. The text of an SMS arrives
//! sealed; it is opened here, just before the call, and never logged or stored.

use std::sync::Arc;

use adapters::Failure;
use adapters::sms::SmsClient;
use contracts::person::Msisdn;
use contracts::sms::{
    CheckSubscriber, NotifyHolder, SendSms, SmsNotSent, SmsPurpose, SmsSent, SubscriberChecked,
    SubscriberStatus,
};
use contracts::{Message, decode};
use futures_util::future::BoxFuture;
use sqlx::{PgConnection, PgPool};
use url::Url;

use crate::broker::Incoming;
use crate::engine::service::db_failure;
use crate::engine::{Command, Service};
use crate::metrics::external_call;
use crate::secrets::Sealer;

/// The worker's queue (short name).
pub const QUEUE: &str = "adapter.sms";

/// The queue and the commands it takes.
pub fn queue_spec() -> contracts::QueueSpec {
    contracts::QueueSpec::new(
        QUEUE,
        [
            CheckSubscriber::TYPE.to_string(),
            SendSms::TYPE.to_string(),
            NotifyHolder::TYPE.to_string(),
        ],
    )
}

/// Talks to the mobile operators.
#[derive(Debug, Clone)]
pub struct SmsWorker {
    client: SmsClient,
    sealer: Arc<Sealer>,
    /// Where the registry keeps the holders' phones (`sms.notify_holder.v1`).
    pool: PgPool,
    /// Where operators post delivery reports (`{base}callbacks/sms/{operator}`), if anywhere.
    callback_base: Option<Url>,
}

impl SmsWorker {
    /// A worker using `client`, opening texts with `sealer`.
    pub fn new(
        client: SmsClient,
        sealer: Arc<Sealer>,
        pool: PgPool,
        callback_base: Option<Url>,
    ) -> Self {
        Self {
            client,
            sealer,
            pool,
            callback_base,
        }
    }
}

/// What the call came to.
#[derive(Debug)]
pub enum SmsOutcome {
    /// A subscriber check's answer.
    Checked(SubscriberChecked),
    /// Accepted by the operator.
    Sent(SmsSent),
    /// Refused by the operator for good.
    NotSent(SmsNotSent),
}

impl SmsWorker {
    /// The client, sending the message's trace context along.
    fn client(&self, message: &Incoming) -> SmsClient {
        self.client
            .clone()
            .with_traceparent(message.metadata.traceparent.as_deref())
    }

    async fn notify_holder(
        &self,
        message: &Incoming,
        cmd: &NotifyHolder,
    ) -> Result<SmsOutcome, Failure> {
        let not_sent = |reason: &str| {
            Ok(SmsOutcome::NotSent(SmsNotSent {
                purpose: SmsPurpose::Notice,
                reason: reason.to_owned(),
            }))
        };
        let phone: Option<String> =
            sqlx::query_scalar("SELECT phone FROM identifiers WHERE identifier = $1")
                .bind(&cmd.identifier)
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| db_failure(&e))?;
        let Some(to) = phone.and_then(|p| Msisdn::parse(&p).ok()) else {
            // An applicant who logged in another way has no phone here: the cabinet shows the
            // notice, the SMS is skipped.
            tracing::info!("no phone for the holder; the notice SMS is skipped");
            return not_sent("no phone for the holder");
        };
        let client = self.client(message);
        let asked = external_call("sms", "subscriber", client.subscriber(&to));
        let Some(subscriber) = asked.await? else {
            return not_sent("no operator serves the number");
        };
        let sent = client.send(
            message.metadata.message_id,
            subscriber.operator,
            &to,
            &cmd.text,
            None,
        );
        match external_call("sms", "send", sent).await {
            Ok(s) => Ok(SmsOutcome::Sent(SmsSent {
                purpose: SmsPurpose::Notice,
                operator: s.operator,
                provider_message_id: s.provider_message_id,
            })),
            Err(f) if !f.is_transient() => not_sent(&f.reason),
            Err(f) => Err(f),
        }
    }
}

impl Service for SmsWorker {
    type Prepared = SmsOutcome;

    fn name(&self) -> &'static str {
        "adapter.sms"
    }

    fn prepare<'a>(&'a self, message: &'a Incoming) -> BoxFuture<'a, Result<SmsOutcome, Failure>> {
        Box::pin(async move {
            let t = message.metadata.message_type.as_str();
            if CheckSubscriber::TYPE.matches(t) {
                let cmd: CheckSubscriber = decode(t, &message.body)?;
                let phone =
                    Msisdn::parse(&cmd.phone).map_err(|e| Failure::invalid_input(e.to_string()))?;
                let client = self.client(message);
                let subscriber = external_call("sms", "subscriber", client.subscriber(&phone));
                let answer = match subscriber.await? {
                    None => SubscriberChecked {
                        status: SubscriberStatus::Unknown,
                        operator: None,
                    },
                    Some(s) => SubscriberChecked {
                        status: if s.blocked {
                            SubscriberStatus::Blocked
                        } else {
                            SubscriberStatus::Active
                        },
                        operator: Some(s.operator),
                    },
                };
                Ok(SmsOutcome::Checked(answer))
            } else if SendSms::TYPE.matches(t) {
                let cmd: SendSms = decode(t, &message.body)?;
                let to =
                    Msisdn::parse(&cmd.to).map_err(|e| Failure::invalid_input(e.to_string()))?;
                let client = self.client(message);
                // Without a known operator, ask the operators (a ported number is not where
                // its prefix says).
                let operator = match cmd.operator {
                    Some(o) => o,
                    None => {
                        let asked = external_call("sms", "subscriber", client.subscriber(&to));
                        match asked.await? {
                            Some(s) => s.operator,
                            None => {
                                return Ok(SmsOutcome::NotSent(SmsNotSent {
                                    purpose: cmd.purpose,
                                    reason: "no operator serves the number".into(),
                                }));
                            }
                        }
                    }
                };
                let text = self.sealer.open(&cmd.text)?;
                let callback = self
                    .callback_base
                    .as_ref()
                    .and_then(|b| b.join(&format!("callbacks/sms/{operator}")).ok());
                let sent = client.send(
                    message.metadata.message_id,
                    operator,
                    &to,
                    &text,
                    callback.as_ref(),
                );
                match external_call("sms", "send", sent).await {
                    Ok(sent) => Ok(SmsOutcome::Sent(SmsSent {
                        purpose: cmd.purpose,
                        operator: sent.operator,
                        provider_message_id: sent.provider_message_id,
                    })),
                    // The operator refuses for good (blocked, not its subscriber): the saga
                    // decides what that means.
                    Err(f) if !f.is_transient() => Ok(SmsOutcome::NotSent(SmsNotSent {
                        purpose: cmd.purpose,
                        reason: f.reason,
                    })),
                    Err(f) => Err(f),
                }
            } else if NotifyHolder::TYPE.matches(t) {
                let cmd: NotifyHolder = decode(t, &message.body)?;
                self.notify_holder(message, &cmd).await
            } else {
                Err(Failure::invalid_input(format!(
                    "the SMS worker does not take {t}"
                )))
            }
        })
    }

    fn apply<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        message: &'a Incoming,
        outcome: SmsOutcome,
    ) -> BoxFuture<'a, Result<Vec<Command>, Failure>> {
        Box::pin(async move {
            // Nobody asked for an answer (a detached notification): record, answer nobody.
            let answer_wanted = message.metadata.reply_to.is_some();
            let answers = vec![match outcome {
                SmsOutcome::Checked(c) => Command::new(&c)?,
                SmsOutcome::NotSent(n) => Command::new(&n)?,
                SmsOutcome::Sent(s) => {
                    // Remember who asked, so the operator's delivery report finds its saga.
                    sqlx::query(
                        "INSERT INTO sms_messages (provider_message_id, operator, purpose, correlation_id, reply_to)
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                    )
                    .bind(&s.provider_message_id)
                    .bind(s.operator.to_string())
                    .bind(serde_json::to_value(s.purpose).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default())
                    .bind(message.metadata.correlation_id.as_deref())
                    .bind(message.metadata.reply_to.as_deref())
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| db_failure(&e))?;
                    Command::new(&s)?
                }
            }];
            Ok(if answer_wanted { answers } else { Vec::new() })
        })
    }
}
