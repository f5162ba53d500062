//! An authority's back-office that speaks the hub's queue contracts: the reference client an
//! agency copies. It connects to RabbitMQ as the authority's own broker user, consumes the
//! authority's queue, and answers on the bus:
//!
//! - `authority.application.v1` -> `authority.registered.v1` at once, `authority.info_requested.v1`
//!   when the form asks for it (`"simulate_info_request": true`), then after `decide_after`
//!   `authority.decided.v1` (refused when the form says `"simulate_refusal": true`, else granted);
//! - `authority.withdrawal.v1` -> `authority.withdrawal_answered.v1`: accepted unless it decided.
//! - `authority.complaint.v1` -> after `complaint_decide_after` `authority.complaint_decided.v1`
//!   (dismissed), unless the complaint was withdrawn first;
//! - `authority.complaint_withdrawal.v1` -> `authority.complaint_withdrawal_answered.v1`:
//!   accepted unless it decided.
//!
//! Every answer carries the application's `correlation_id`, a fresh `message_id`, the message
//! type, and `user_id` = the broker user (RabbitMQ checks it), and is published persistent with
//! a publisher confirm; a delivery is acked only after its answers are confirmed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions,
    ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

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
}

#[derive(Debug, Default)]
struct Book {
    /// Application or complaint id -> decided (true) or withdrawn (false).
    ended: HashMap<String, bool>,
    registered: u64,
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
    let book = Arc::new(Mutex::new(Book::default()));
    let config = Arc::new(config);
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
        let handled = handle(
            &channel,
            &config,
            &book,
            &kind,
            &body,
            correlation,
            &shutdown,
        )
        .await;
        match handled {
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
    let _ = conn.close(200, "authority stopping".into()).await;
    Ok(())
}

async fn handle(
    channel: &Channel,
    config: &Arc<AuthorityConfig>,
    book: &Arc<Mutex<Book>>,
    kind: &str,
    body: &Value,
    correlation: Option<String>,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let id = body["application_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if kind == "authority.application.v1" {
        let n = {
            let mut b = book.lock().map_err(|_| anyhow::anyhow!("book poisoned"))?;
            b.registered += 1;
            b.registered
        };
        let number = format!("{}-{n:06}", config.authority.to_uppercase());
        publish(
            channel,
            config,
            "authority.registered.v1",
            &correlation,
            json!({"application_id": id, "registration_number": number}),
        )
        .await?;
        if body["form"]["simulate_info_request"] == json!(true) {
            publish(
                channel,
                config,
                "authority.info_requested.v1",
                &correlation,
                json!({"application_id": id, "request": "Please attach a copy of the lease."}),
            )
            .await?;
        }
        let verdict = if body["form"]["simulate_refusal"] == json!(true) {
            "refused"
        } else {
            "granted"
        };
        // Decide later, unless the person withdraws first.
        let (channel, config, book, shutdown) = (
            channel.clone(),
            config.clone(),
            book.clone(),
            shutdown.clone(),
        );
        tokio::spawn(async move {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(config.decide_after) => {}
            }
            let decide = book
                .lock()
                .map(|mut b| match b.ended.get(&id) {
                    Some(_) => false,
                    None => {
                        b.ended.insert(id.clone(), true);
                        true
                    }
                })
                .unwrap_or(false);
            if decide {
                let document = format!("Decision on application {id}: {verdict}.");
                let answer = json!({"application_id": id, "verdict": verdict,
                    "document": document, "decided_at": chrono::Utc::now()});
                if let Err(e) = publish(
                    &channel,
                    &config,
                    "authority.decided.v1",
                    &correlation,
                    answer,
                )
                .await
                {
                    tracing::warn!(error = %e, "decision not published");
                }
            }
        });
        Ok(())
    } else if kind == "authority.withdrawal.v1" {
        let accepted = {
            let mut b = book.lock().map_err(|_| anyhow::anyhow!("book poisoned"))?;
            match b.ended.get(&id) {
                Some(true) => false,
                _ => {
                    b.ended.insert(id.clone(), false);
                    true
                }
            }
        };
        publish(
            channel,
            config,
            "authority.withdrawal_answered.v1",
            &correlation,
            json!({"application_id": id, "accepted": accepted}),
        )
        .await
    } else if kind == "authority.complaint.v1" {
        // Complaints share the book with applications: their ids are the portal's UUIDs too.
        let id = body["complaint_id"].as_str().unwrap_or_default().to_owned();
        let (channel, config, book, shutdown) = (
            channel.clone(),
            config.clone(),
            book.clone(),
            shutdown.clone(),
        );
        tokio::spawn(async move {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(config.complaint_decide_after) => {}
            }
            let decide = book
                .lock()
                .map(|mut b| match b.ended.get(&id) {
                    Some(_) => false,
                    None => {
                        b.ended.insert(id.clone(), true);
                        true
                    }
                })
                .unwrap_or(false);
            if decide {
                let document = format!("Decision on complaint {id}: the decision stands.");
                let answer = json!({"complaint_id": id, "verdict": "dismissed",
                    "document": document, "decided_at": chrono::Utc::now()});
                if let Err(e) = publish(
                    &channel,
                    &config,
                    "authority.complaint_decided.v1",
                    &correlation,
                    answer,
                )
                .await
                {
                    tracing::warn!(error = %e, "complaint decision not published");
                }
            }
        });
        Ok(())
    } else if kind == "authority.complaint_withdrawal.v1" {
        let id = body["complaint_id"].as_str().unwrap_or_default().to_owned();
        let accepted = {
            let mut b = book.lock().map_err(|_| anyhow::anyhow!("book poisoned"))?;
            match b.ended.get(&id) {
                Some(true) => false,
                _ => {
                    b.ended.insert(id.clone(), false);
                    true
                }
            }
        };
        publish(
            channel,
            config,
            "authority.complaint_withdrawal_answered.v1",
            &correlation,
            json!({"complaint_id": id, "accepted": accepted}),
        )
        .await
    } else {
        // Not ours to understand: answer nothing, keep going (the hub never sends other types).
        tracing::warn!(%kind, "authority ignores a message type it does not know");
        Ok(())
    }
}

async fn publish(
    channel: &Channel,
    config: &AuthorityConfig,
    kind: &str,
    correlation: &Option<String>,
    body: Value,
) -> anyhow::Result<()> {
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
            &serde_json::to_vec(&body)?,
            props,
        )
        .await?
        .await?;
    anyhow::ensure!(confirm.is_ack(), "the broker refused {kind}");
    Ok(())
}
