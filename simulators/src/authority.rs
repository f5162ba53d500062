//! An authority's back-office that speaks the hub's queue contracts: the reference client an
//! agency copies. It connects to RabbitMQ as the authority's own broker user, consumes the
//! authority's queue, hands each message to the authority's clerk (`clerk.rs`, shared with
//! the HTTP back-office) and answers on the bus:
//!
//! - `authority.application.v1` -> `authority.registered.v1` at once, `authority.info_requested.v1`
//!   when asked (the form's `"simulate_info_request": true` or the attachment
//!   `simulate:info_request`), then after `decide_after` `authority.decided.v1` (refused when
//!   asked the same way with `simulate_refusal` / `simulate:refusal`, else granted; with the
//!   attachment `simulate:idle` only `decide_after` after the person's answer, if any);
//!   a redelivered application gets the same registration number again, and nothing more;
//!   the info request gives the person 5 working days (`answer_within_working_days`);
//!   with an official's certificate ([`AuthorityConfig::signing`]) the decision is the signed
//!   `authority.decided.v2` instead ([`crate::decision_signing`]);
//! - `authority.info_provided.v1` (the person's answer, with the moved term) -> taken and logged;
//! - `authority.decision_refused.v1`, `authority.complaint_decision_refused.v1` -> nothing: the
//!   refusal is logged and kept;
//! - `authority.withdrawal.v1` -> `authority.withdrawal_answered.v1`: accepted unless it decided.
//! - `authority.payment_receipt.v1` (a payment made outside ERIP) -> `authority.receipt_answered.v1`
//!   at once: confirmed, unless the receipt's document number starts with `refuse` (then refused,
//!   "no such payment reached the authority's account");
//! - `authority.complaint.v1` -> after `complaint_decide_after` `authority.complaint_decided.v1`,
//!   unless the complaint was withdrawn first: `upheld` or `dismissed` by the clerk's rule (a
//!   `simulate:upheld` / `simulate:dismissed` marker in the text, else upheld for a complaint of
//!   inaction, dismissed for one against a decision); with an official's certificate the signed
//!   `authority.complaint_decided.v2` instead;
//! - `authority.complaint_withdrawal.v1` -> `authority.complaint_withdrawal_answered.v1`:
//!   accepted unless it decided.
//!
//! Every answer carries the application's `correlation_id`, a fresh `message_id`, the message
//! type, and `user_id` = the broker user (RabbitMQ checks it), and is published persistent with
//! a publisher confirm. A delivery is acked only after the answer it gets at once (the
//! registration, a withdrawal's answer) is confirmed; the clerk's later answers (the info
//! request, the decisions) are published when it gives them, and a failed one is logged.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions,
    ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::clerk::{Answer, Application, Clerk, Complaint, Outbox, Pace};
use crate::decision_signing::DecisionSigning;

/// How the simulated authority behaves.
#[derive(Debug, Clone)]
pub struct AuthorityConfig {
    /// RabbitMQ URL with the authority's own user.
    pub amqp_url: String,
    /// The broker user in that URL (stamped as `user_id`).
    pub broker_user: String,
    /// The authority's id (in registration numbers).
    pub authority: String,
    /// The queue the hub sends this authority's work to (full name).
    pub queue: String,
    /// The hub's bus exchange (full name).
    pub bus_exchange: String,
    /// How long after registering it decides.
    pub decide_after: Duration,
    /// How long after receiving a complaint it decides it.
    pub complaint_decide_after: Duration,
    /// Its official's certificate: with one, it decides with the signed
    /// `authority.decided.v2`; without, with the unsigned `authority.decided.v1`.
    pub signing: Option<Arc<DecisionSigning>>,
}

/// Publishes the clerk's later answers on the bus, correlated with the application they answer.
#[derive(Debug)]
struct Bus {
    channel: Channel,
    config: Arc<AuthorityConfig>,
}

impl Outbox for Bus {
    /// The application's `correlation_id`.
    type Address = Option<String>;

    async fn send(&self, correlation: &Option<String>, answer: &Answer) -> anyhow::Result<()> {
        // A decision (on an application or a complaint) goes signed when it has a certificate.
        if let Some(signing) = &self.config.signing
            && let Some((kind, body)) = signing
                .sign_answer(
                    &self.config.authority,
                    answer.message_type(),
                    &answer.to_json(),
                )
                .await?
        {
            return publish(&self.channel, &self.config, kind, correlation, body).await;
        }
        publish(
            &self.channel,
            &self.config,
            answer.message_type(),
            correlation,
            answer.to_json(),
        )
        .await
    }
}

/// Runs the authority until `shutdown`.
pub async fn run(config: AuthorityConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let conn = Connection::connect(&config.amqp_url, ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let mut deliveries = channel
        .basic_consume(
            config.queue.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let config = Arc::new(config);
    let pace = Pace {
        decide_after: config.decide_after,
        complaint_decide_after: config.complaint_decide_after,
    };
    // The clerk's timers stop with the consumer, whatever ends it.
    let (tasks, stopping) = (TaskTracker::new(), shutdown.child_token());
    let bus = Bus {
        channel: channel.clone(),
        config: config.clone(),
    };
    // Its book keeps what the simulators keep: the defaults, or SIM_KEEP_RECORDS / SIM_KEEP_FOR.
    let limit = crate::Retention::default().with_env()?.records_limit();
    let clerk = Clerk::new(
        &config.authority,
        (pace, limit),
        bus,
        tasks.clone(),
        stopping.clone(),
    );
    loop {
        let delivery = tokio::select! {
            () = shutdown.cancelled() => break,
            d = deliveries.next() => match d {
                Some(Ok(d)) => d,
                _ => break,
            },
        };
        let kind = delivery
            .properties
            .kind()
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        let correlation = delivery
            .properties
            .correlation_id()
            .as_ref()
            .map(ToString::to_string);
        let body: Value = serde_json::from_slice(&delivery.data).unwrap_or(Value::Null);
        match handle(&channel, &config, &clerk, &kind, &body, correlation).await {
            Ok(()) => {
                delivery.acker.ack(BasicAckOptions::default()).await?;
            }
            Err(e) => {
                tracing::warn!(error = %e, "authority could not answer; the message goes back");
                delivery
                    .acker
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..BasicNackOptions::default()
                    })
                    .await?;
            }
        }
    }
    stopping.cancel();
    tasks.close();
    tasks.wait().await;
    let _ = conn.close(200, "authority stopping".into()).await;
    Ok(())
}

/// Hands one message to the clerk and publishes the answer it gives on the spot.
async fn handle(
    channel: &Channel,
    config: &AuthorityConfig,
    clerk: &Arc<Clerk<Bus>>,
    kind: &str,
    body: &Value,
    correlation: Option<String>,
) -> anyhow::Result<()> {
    let id = |field: &str| body[field].as_str().and_then(|s| Uuid::parse_str(s).ok());
    match (kind, id("application_id"), id("complaint_id")) {
        ("authority.application.v1", Some(id), _) => {
            let empty = Map::new();
            let form = body["form"].as_object().unwrap_or(&empty);
            let attachments: Vec<&str> = body["attachments"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let number = clerk.register(Application::new(id, form).marked(&attachments));
            let answer = json!({"application_id": id, "registration_number": number});
            publish(
                channel,
                config,
                "authority.registered.v1",
                &correlation,
                answer,
            )
            .await?;
            // Only now, so that the registration goes out before the info request.
            clerk.take_up(id, correlation);
            Ok(())
        }
        ("authority.withdrawal.v1", Some(id), _) => {
            // One it never had is not being processed: nothing to stop, so accepted.
            let accepted = clerk.withdraw(id).unwrap_or(true);
            let answer = json!({"application_id": id, "accepted": accepted});
            let kind = "authority.withdrawal_answered.v1";
            publish(channel, config, kind, &correlation, answer).await
        }
        ("authority.payment_receipt.v1", Some(id), _) => {
            let document = body["payment"]["document_number"]
                .as_str()
                .unwrap_or_default();
            let checked = crate::clerk::check_receipt(document);
            let mut answer = json!({
                "application_id": id,
                "document_number": document,
                "confirmed": checked.is_ok(),
            });
            if let Err(reason) = checked {
                answer["reason"] = json!(reason);
            }
            let kind = "authority.receipt_answered.v1";
            publish(channel, config, kind, &correlation, answer).await
        }
        ("authority.info_provided.v1", Some(id), _) => {
            // The person's answer to the clerk's request: the file is complete again; the clerk
            // decides on its own pace, within the moved term.
            let due = body["decision_due"].as_str().unwrap_or_default();
            if clerk.info_provided(id, due).is_none() {
                tracing::warn!(application = %id, "information for an application it never had");
            }
            Ok(())
        }
        ("authority.decision_refused.v1", Some(_), _)
        | ("authority.complaint_decision_refused.v1", _, Some(_)) => {
            // Its decision did not reach the person: kept for the tests and the demo to read.
            tracing::warn!(
                reason = body["reason"].as_str().unwrap_or_default(),
                "the hub refused the authority's decision"
            );
            if let Some(signing) = &config.signing {
                signing.refused(body);
            }
            Ok(())
        }
        ("authority.complaint.v1", _, Some(id)) => {
            let text = body["text"].as_str().unwrap_or_default();
            let complaint = Complaint::new(id, text, body["kind"].as_str());
            clerk.receive_complaint(complaint, correlation);
            Ok(())
        }
        ("authority.complaint_withdrawal.v1", _, Some(id)) => {
            let accepted = clerk.withdraw_complaint(id).unwrap_or(true);
            let answer = json!({"complaint_id": id, "accepted": accepted});
            let kind = "authority.complaint_withdrawal_answered.v1";
            publish(channel, config, kind, &correlation, answer).await
        }
        _ => {
            // Not ours to understand: answer nothing, keep going (the hub never sends it).
            tracing::warn!(%kind, "authority ignores a message it does not understand");
            Ok(())
        }
    }
}

/// A check of every body an authority sends: the message's exchange, type and body, and why it
/// may not be sent.
pub type OutgoingCheck = fn(&str, &str, &[u8]) -> Result<(), String>;

static OUTGOING_CHECK: std::sync::OnceLock<OutgoingCheck> = std::sync::OnceLock::new();

/// Makes every authority of this process pass each body it sends through `check` first and
/// refuse to send one it fails: the end-to-end tests and the lab check what the authorities
/// publish against the hub's published schemas this way (the simulator itself, like an
/// agency's client, knows only the wire). The first check installed stays.
pub fn check_outgoing_with(check: OutgoingCheck) {
    let _ = OUTGOING_CHECK.set(check);
}

async fn publish(
    channel: &Channel,
    config: &AuthorityConfig,
    kind: &str,
    correlation: &Option<String>,
    body: Value,
) -> anyhow::Result<()> {
    let body = serde_json::to_vec(&body)?;
    if let Some(check) = OUTGOING_CHECK.get() {
        check(&config.bus_exchange, kind, &body).map_err(anyhow::Error::msg)?;
    }
    let mut props = BasicProperties::default()
        .with_message_id(uuid::Uuid::new_v4().to_string().into())
        .with_type(kind.into())
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_timestamp(u64::try_from(chrono::Utc::now().timestamp()).unwrap_or_default())
        .with_app_id(format!("authority/{}", config.authority).into())
        .with_user_id(config.broker_user.as_str().into());
    if let Some(c) = correlation {
        props = props.with_correlation_id(c.as_str().into());
    }
    let confirm = channel
        .basic_publish(
            config.bus_exchange.as_str().into(),
            kind.into(),
            BasicPublishOptions::default(),
            &body,
            props,
        )
        .await?
        .await?;
    anyhow::ensure!(confirm.is_ack(), "the broker refused {kind}");
    Ok(())
}
