//! A RabbitMQ node of the test's own, on free ports, with its data in a temporary directory: a
//! test can stop and start it (a broker restart) without disturbing the tests that share the
//! machine's broker. The node is the one `hub chaos` runs on
//! ([`hub_lab::chaos::servers::PrivateRabbit`]); this wraps it for tests, which fail on the spot
//! when it cannot start.

use std::time::Duration;

use hub_lab::chaos::servers::PrivateRabbit;

/// A private RabbitMQ node; stopped and its directory removed when dropped.
#[derive(Debug)]
pub struct PrivateBroker(PrivateRabbit);

impl PrivateBroker {
    /// Starts a fresh node and waits until it accepts AMQP connections.
    pub async fn start() -> Self {
        Self(
            PrivateRabbit::start()
                .await
                .unwrap_or_else(|e| panic!("the private RabbitMQ node: {e:#}")),
        )
    }

    /// The AMQP URL of the node.
    pub fn url(&self) -> String {
        self.0.url()
    }

    /// Stops the node and starts it again on the same port with the same data.
    /// Needs a multi-threaded test runtime (the stop blocks its thread).
    pub async fn restart(&mut self) {
        self.0
            .restart(Duration::ZERO)
            .await
            .unwrap_or_else(|e| panic!("restarting the private RabbitMQ node: {e:#}"));
    }
}
