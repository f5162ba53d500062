//! The one consume loop: takes a queue's deliveries with a bounded prefetch, through every
//! reconnect, until shutdown, and hands them (one by one, or the ready ones as a batch) to a
//! processing function that settles them (acks or returns them). The consumer runner ([`super::run_consumer`]) and the dead-letter keeper both
//! consume through it, so reconnecting, draining and bounded acks are written once.

use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use lapin::BasicProperties;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
};
use lapin::types::FieldTable;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Broker;

/// Longest wait for an ack or nack to be written: on a connection that died unnoticed it would
/// otherwise hold the consumer's drain for ever.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// How a consumer takes its deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Each delivery is processed in a task of its own, up to the prefetch at once.
    Concurrent,
    /// One delivery at a time, in the order they come.
    InOrder,
    /// The deliveries already taken from the broker when one arrives, up to this many, are
    /// processed together, one batch at a time per channel (so a batch may be settled with one
    /// multiple-ack: every delivery of the channel before its last is settled by then). None is
    /// waited for: a lone delivery is a batch of one.
    Batched(usize),
}

/// What a consume loop takes from one queue.
#[derive(Debug, Clone)]
pub(crate) struct Consumption {
    /// Full name of the queue.
    pub(crate) queue: String,
    /// Unacked deliveries at once.
    pub(crate) prefetch: u16,
    /// Concurrent or in order.
    pub(crate) flow: Flow,
    /// Who consumes, for the log (a handler's name, `dead-letter keeper`).
    pub(crate) consumer: String,
}

/// One delivery taken from a queue, to be settled by whoever processes it. Dropped unsettled,
/// it goes back to its queue when the channel closes.
#[derive(Debug)]
pub(crate) struct Taken {
    delivery: Delivery,
}

impl Taken {
    /// The exchange it was delivered from.
    pub(crate) fn exchange(&self) -> &str {
        self.delivery.exchange.as_str()
    }

    /// The routing key it was delivered with.
    pub(crate) fn routing_key(&self) -> &str {
        self.delivery.routing_key.as_str()
    }

    /// Its properties and headers.
    pub(crate) fn properties(&self) -> &BasicProperties {
        &self.delivery.properties
    }

    /// Its body.
    pub(crate) fn body(&self) -> &[u8] {
        &self.delivery.data
    }

    /// Acknowledges it, waiting at most [`ACK_TIMEOUT`]; false when the ack was not written
    /// (the broker then redelivers it after the channel closes).
    pub(crate) async fn ack(&self) -> bool {
        self.ack_with(BasicAckOptions::default()).await
    }

    /// Acknowledges it and every delivery of its channel before it that is not settled yet, in
    /// one frame (`multiple`). Only for [`Flow::Batched`], after every delivery of the batch
    /// that is settled on its own has been: a delivery acked this way must never be settled
    /// again (the broker closes the channel on an unknown delivery tag).
    pub(crate) async fn ack_through(&self) -> bool {
        self.ack_with(BasicAckOptions { multiple: true }).await
    }

    async fn ack_with(&self, options: BasicAckOptions) -> bool {
        match tokio::time::timeout(ACK_TIMEOUT, self.delivery.acker.ack(options)).await {
            Ok(Ok(_)) => true,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "ack failed; the broker redelivers after the channel closes");
                false
            }
            Err(_) => {
                tracing::warn!("ack not written within {ACK_TIMEOUT:?}; the broker will redeliver");
                false
            }
        }
    }

    /// Returns it to the front of its queue.
    pub(crate) async fn requeue(&self) {
        let requeue = BasicNackOptions {
            requeue: true,
            ..BasicNackOptions::default()
        };
        let nacked = tokio::time::timeout(ACK_TIMEOUT, self.delivery.acker.nack(requeue)).await;
        if let Some(e) = match nacked {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(format!("not written within {ACK_TIMEOUT:?}")),
        } {
            tracing::debug!(error = %e, "nack failed; the broker redelivers after the channel closes");
        }
    }
}

/// The deliveries to process together: `first`, and for [`Flow::Batched`] those the consumer
/// already holds, up to the batch's size. The second value is `Some` when the consumer ended
/// meanwhile (with its error, if it failed): the loop processes what it has and reconnects.
#[allow(clippy::option_option)]
fn gather(
    first: Taken,
    consumer: &mut lapin::Consumer,
    flow: Flow,
) -> (Vec<Taken>, Option<Option<lapin::Error>>) {
    let mut taken = vec![first];
    let Flow::Batched(max) = flow else {
        return (taken, None);
    };
    while taken.len() < max {
        match consumer.next().now_or_never() {
            Some(Some(Ok(delivery))) => taken.push(Taken { delivery }),
            Some(Some(Err(e))) => return (taken, Some(Some(e))),
            Some(None) => return (taken, Some(None)),
            None => break,
        }
    }
    (taken, None)
}

/// Consumes `what.queue` until `shutdown`, reconnecting as often as the broker goes away, and
/// gives every delivery to `process`: one per call, or with [`Flow::Batched`] the ready ones
/// together (in delivery order). On shutdown it stops taking deliveries and waits for those
/// being processed.
pub(crate) async fn consume<F>(
    broker: &Broker,
    what: &Consumption,
    shutdown: &CancellationToken,
    process: F,
) where
    F: Fn(Vec<Taken>) -> BoxFuture<'static, ()> + Send + Sync,
{
    let queue = what.queue.as_str();
    while !shutdown.is_cancelled() {
        let Some(channel) = broker.channel(shutdown).await else {
            break;
        };
        let consumer = async {
            channel
                .basic_qos(what.prefetch, BasicQosOptions::default())
                .await?;
            channel
                .basic_consume(
                    queue.into(),
                    "".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
        }
        .await;
        let mut consumer = match consumer {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(%queue, consumer = %what.consumer, error = %e, "cannot consume; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        tracing::info!(%queue, consumer = %what.consumer, "consuming");
        let in_flight = TaskTracker::new();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => {
                    let _ = channel.basic_cancel(consumer.tag(), BasicCancelOptions::default()).await;
                    break;
                }
                next = consumer.next() => match next {
                    Some(Ok(delivery)) => {
                        if matches!(what.flow, Flow::Batched(_)) {
                            // Lets the connection's reader hand over what came with this one.
                            tokio::task::yield_now().await;
                        }
                        let (taken, lost) = gather(Taken { delivery }, &mut consumer, what.flow);
                        let processing = process(taken);
                        match what.flow {
                            Flow::Concurrent => {
                                in_flight.spawn(processing);
                            }
                            Flow::InOrder | Flow::Batched(_) => processing.await,
                        }
                        if let Some(lost) = lost {
                            if let Some(e) = lost {
                                tracing::warn!(%queue, consumer = %what.consumer, error = %e, "consumer failed; reconnecting");
                            }
                            break;
                        }
                    }
                    Some(Err(e)) => {
                        tracing::warn!(%queue, consumer = %what.consumer, error = %e, "consumer failed; reconnecting");
                        break;
                    }
                    None => break,
                },
            }
        }
        // Finish what was taken before giving the channel up: its acks go on this channel.
        in_flight.close();
        if !in_flight.is_empty() {
            tracing::debug!(%queue, in_flight = in_flight.len(), "finishing in-flight messages");
        }
        in_flight.wait().await;
    }
    tracing::info!(%queue, consumer = %what.consumer, "consumer stopped");
}
