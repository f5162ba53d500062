//! What the broker says about queues, for the operators' pages: a passive `queue.declare`
//! answers a queue's depth and consumers without touching the queue.

use std::time::Duration;

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use tokio_util::sync::CancellationToken;

use super::Broker;

/// A queue as the broker sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueState {
    /// Messages ready for delivery.
    pub messages: u32,
    /// Consumers attached.
    pub consumers: u32,
}

/// Why a queue's state is not known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InspectError {
    /// The broker has no such queue.
    #[error("missing")]
    Missing,
    /// The broker did not answer in time.
    #[error("no answer within {0:?}")]
    NoAnswer(Duration),
    /// The broker refused, in its words.
    #[error("{0}")]
    Broker(String),
}

impl Broker {
    /// The state of each of `queues` (full names), in order, each asked within `timeout`; `None`
    /// when no channel could be opened within `timeout`.
    pub async fn queue_states(
        &self,
        queues: &[String],
        timeout: Duration,
        shutdown: &CancellationToken,
    ) -> Option<Vec<Result<QueueState, InspectError>>> {
        let open = || async {
            tokio::time::timeout(timeout, self.channel(shutdown))
                .await
                .ok()
                .flatten()
        };
        let mut channel = open().await?;
        let mut states = Vec::with_capacity(queues.len());
        for name in queues {
            let options = QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            };
            let declared = tokio::time::timeout(
                timeout,
                channel.queue_declare(name.as_str().into(), options, FieldTable::default()),
            )
            .await;
            states.push(match declared {
                Ok(Ok(q)) => Ok(QueueState {
                    messages: q.message_count(),
                    consumers: q.consumer_count(),
                }),
                Ok(Err(e)) => {
                    // A missing queue closes the channel (404): go on with a new one.
                    if let Some(fresh) = open().await {
                        channel = fresh;
                    }
                    Err(if e.to_string().contains("NOT_FOUND") {
                        InspectError::Missing
                    } else {
                        InspectError::Broker(e.to_string())
                    })
                }
                Err(_) => Err(InspectError::NoAnswer(timeout)),
            });
        }
        let _ = channel.close(200, "queues inspected".into()).await;
        Some(states)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_queue_answers_its_depth_and_a_missing_one_says_so() {
        let url = std::env::var("TEST_AMQP_URL")
            .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
        let token = CancellationToken::new();
        let broker = Broker::connect(&url, "inspect test", token.clone())
            .await
            .expect("a broker");
        let channel = broker.channel(&token).await.expect("a channel");
        // Confirmed publishes: the queue holds the message before the broker is asked.
        channel
            .confirm_select(Default::default())
            .await
            .expect("confirms");
        let name = format!("inspect-test-{}", uuid::Uuid::new_v4().simple());
        let options = lapin::options::QueueDeclareOptions {
            auto_delete: true,
            ..Default::default()
        };
        channel
            .queue_declare(name.as_str().into(), options, FieldTable::default())
            .await
            .expect("declared");
        channel
            .basic_publish(
                "".into(),
                name.as_str().into(),
                lapin::options::BasicPublishOptions::default(),
                b"{}",
                lapin::BasicProperties::default(),
            )
            .await
            .expect("published")
            .await
            .expect("sent");
        let missing = format!("{name}-missing");
        let queues = [missing, name.clone(), name.clone()];
        let timeout = Duration::from_secs(5);
        let states = broker
            .queue_states(&queues, timeout, &token)
            .await
            .expect("a channel");
        assert_eq!(states[0], Err(InspectError::Missing));
        // The channel the missing queue closed was replaced: the next queues still answer.
        assert_eq!(
            states[1],
            Ok(QueueState {
                messages: 1,
                consumers: 0
            })
        );
        assert_eq!(states[1], states[2]);
        let _ = channel
            .queue_delete(name.as_str().into(), Default::default())
            .await;
        broker.close().await;
        token.cancel();
    }
}
