//! The one publisher: persistent, mandatory, with publisher confirms, many in flight.
//!
//! A message counts as published only when the broker confirmed it *and* routed it to at least
//! one queue (`mandatory`): an unroutable message is otherwise confirmed and silently dropped.

use futures_util::future::join_all;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Confirmation};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::Broker;
use super::properties::{Envelope, encode_properties};

/// Why a publish did not go through. Every variant but [`PublishError::Nonconforming`] is worth
/// retrying later.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// The broker returned the message: no queue is bound for its routing key.
    #[error("unroutable: no queue bound to exchange {exchange:?} with routing key {routing_key:?}")]
    Unroutable {
        /// Exchange published to.
        exchange: String,
        /// Routing key used.
        routing_key: String,
    },
    /// The broker refused to take responsibility for the message.
    #[error("the broker nacked the message")]
    Nacked,
    /// The channel or connection failed; the message may or may not have arrived.
    #[error("broker connection lost: {0}")]
    Connection(String),
    /// The hub is shutting down and no connection is left.
    #[error("the hub is shutting down")]
    ShuttingDown,
    /// The body does not match its type's published schema (checked in the tests' and the
    /// lab's builds only: [`crate::conformance`]); nothing was sent.
    #[error(transparent)]
    Nonconforming(#[from] crate::conformance::Violation),
}

/// Publishes with confirms on a channel of its own, reopened after a failure.
#[derive(Debug)]
pub struct Publisher {
    broker: Broker,
    channel: Mutex<Option<Channel>>,
    shutdown: CancellationToken,
}

impl Publisher {
    /// A publisher on `broker`. `shutdown` ends waits for a reconnect.
    pub fn new(broker: Broker, shutdown: CancellationToken) -> Self {
        Self {
            broker,
            channel: Mutex::new(None),
            shutdown,
        }
    }

    async fn channel(&self) -> Result<Channel, PublishError> {
        let mut slot = self.channel.lock().await;
        if let Some(ch) = slot.as_ref()
            && ch.status().connected()
        {
            return Ok(ch.clone());
        }
        *slot = None;
        let ch = self
            .broker
            .channel(&self.shutdown)
            .await
            .ok_or(PublishError::ShuttingDown)?;
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| PublishError::Connection(e.to_string()))?;
        *slot = Some(ch.clone());
        Ok(ch)
    }

    async fn forget(&self, failed: &Channel) {
        let mut slot = self.channel.lock().await;
        if slot.as_ref().is_some_and(|c| c.id() == failed.id()) {
            *slot = None;
        }
    }

    /// The properties of `metadata`, naming the connection's user as the sender when it names
    /// none: consumers refuse a message that does not say who sent it.
    fn properties(&self, metadata: &contracts::Metadata) -> BasicProperties {
        let props = encode_properties(metadata);
        if metadata.user_id.is_some() {
            return props;
        }
        props.with_user_id(self.broker.user().into())
    }

    /// Publishes one envelope and waits for its confirm. In the builds that check conformance
    /// ([`crate::conformance`]) a body that does not match its type's schema is refused.
    pub async fn publish(&self, envelope: &Envelope) -> Result<(), PublishError> {
        conformance(envelope)?;
        self.publish_deliberately_invalid(envelope).await
    }

    /// Publishes one envelope without the conformance check: for a hostile-path test that
    /// sends a malformed body on purpose, to show the hub refuses it. Nothing else uses it.
    pub async fn publish_deliberately_invalid(
        &self,
        envelope: &Envelope,
    ) -> Result<(), PublishError> {
        let props = self.properties(&envelope.metadata);
        self.publish_raw(
            &envelope.exchange,
            &envelope.routing_key,
            props,
            &envelope.body,
        )
        .await
    }

    /// Publishes with the given properties (a redelivery keeps the original ones).
    pub async fn publish_raw(
        &self,
        exchange: &str,
        routing_key: &str,
        properties: BasicProperties,
        body: &[u8],
    ) -> Result<(), PublishError> {
        let ch = self.channel().await?;
        let result = publish_on(&ch, exchange, routing_key, properties, body).await;
        // A refused publish (a queue whose leader moved away, in a cluster) may go on being
        // refused on that channel: the next attempt takes a fresh one.
        if matches!(
            result,
            Err(PublishError::Connection(_) | PublishError::Nacked)
        ) {
            self.forget(&ch).await;
        }
        result
    }

    /// Publishes a message kept as JSON (a dead letter's properties as
    /// [`super::properties_to_json`] gave them, perhaps changed) and waits for its confirm: how
    /// the operators' tools send a kept message again without handling AMQP types.
    pub async fn republish(
        &self,
        exchange: &str,
        routing_key: &str,
        properties: &serde_json::Value,
        body: &[u8],
    ) -> Result<(), PublishError> {
        let properties = super::properties_from_json(properties);
        self.publish_raw(exchange, routing_key, properties, body)
            .await
    }

    /// Publishes all envelopes at once and waits for all their confirms: one round trip for the
    /// batch instead of one per message. Results are in input order. A body that does not
    /// conform ([`Self::publish`]) is refused alone.
    pub async fn publish_all(&self, envelopes: &[Envelope]) -> Vec<Result<(), PublishError>> {
        let ch = match self.channel().await {
            Ok(ch) => ch,
            Err(e) => return vec![Err(e); envelopes.len()],
        };
        let results = join_all(envelopes.iter().map(|e| async {
            conformance(e)?;
            publish_on(
                &ch,
                &e.exchange,
                &e.routing_key,
                self.properties(&e.metadata),
                &e.body,
            )
            .await
        }))
        .await;
        if results
            .iter()
            .any(|r| matches!(r, Err(PublishError::Connection(_) | PublishError::Nacked)))
        {
            self.forget(&ch).await;
        }
        results
    }
}

/// The conformance check of an envelope's body ([`crate::conformance::check`]).
fn conformance(envelope: &Envelope) -> Result<(), PublishError> {
    crate::conformance::check(
        &envelope.exchange,
        &envelope.metadata.message_type,
        &envelope.body,
    )?;
    Ok(())
}

/// Longest wait for a publisher confirm.
const CONFIRM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

async fn publish_on(
    ch: &Channel,
    exchange: &str,
    routing_key: &str,
    properties: BasicProperties,
    body: &[u8],
) -> Result<(), PublishError> {
    let options = BasicPublishOptions {
        mandatory: true,
        ..BasicPublishOptions::default()
    };
    // A connection that dies without the client noticing would leave a confirm pending for
    // ever; bound the wait, and treat silence as a lost channel (the message is re-sent, and its
    // id makes the copy harmless).
    let confirmed = tokio::time::timeout(CONFIRM_TIMEOUT, async {
        ch.basic_publish(
            exchange.into(),
            routing_key.into(),
            options,
            body,
            properties,
        )
        .await?
        .await
    })
    .await
    .map_err(|_| PublishError::Connection(format!("no confirm within {CONFIRM_TIMEOUT:?}")))?
    .map_err(|e| PublishError::Connection(e.to_string()))?;
    match confirmed {
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Ack(Some(_)) | Confirmation::Nack(Some(_)) => Err(PublishError::Unroutable {
            exchange: exchange.to_owned(),
            routing_key: routing_key.to_owned(),
        }),
        Confirmation::Nack(None) => Err(PublishError::Nacked),
        // Confirms are always selected on our channels; treat anything else as a lost channel.
        Confirmation::NotRequested => {
            Err(PublishError::Connection("confirms were not enabled".into()))
        }
    }
}
