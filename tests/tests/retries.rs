//! The consumer runner's failure paths against the real RabbitMQ: delayed retries through the
//! TTL tiers, exhaustion, panics. The handler here is a plain `Handler`, not a saga.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use contracts::Failure;
use contracts::{Message, MessageType, QueueSpec, headers};
use e2e::harness::{Shared, queue_depth};
use e2e::{TestEnv, wait_until};
use futures_util::future::BoxFuture;
use hub_runtime::app::{Components, Registration};
use hub_runtime::broker::{Handler, Incoming};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(30);
const QUEUE: &str = "probe";

/// What the probe handler should do with this message.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Probe {
    /// Fail transiently this many times, then succeed.
    fail_times: u32,
    /// Panic instead of failing.
    panic: bool,
}
impl Message for Probe {
    const TYPE: MessageType = MessageType::new("test.probe", 1);
}

#[derive(Debug, Clone, Copy)]
struct Attempt {
    at: Instant,
    previous_failures: u32,
    succeeded: bool,
}

/// Records every call, by message id.
#[derive(Debug, Default)]
struct ProbeHandler {
    calls: Shared<HashMap<Uuid, Vec<Attempt>>>,
}

impl Handler for ProbeHandler {
    fn name(&self) -> &str {
        "probe"
    }

    fn handle<'a>(&'a self, message: &'a Incoming) -> BoxFuture<'a, Result<(), Failure>> {
        Box::pin(async move {
            let probe: Probe = contracts::decode(&message.metadata.message_type, &message.body)?;
            let at = Instant::now();
            let n = {
                let mut calls = self.calls.lock().expect("lock");
                let list = calls.entry(message.metadata.message_id).or_default();
                list.push(Attempt {
                    at,
                    previous_failures: message.previous_failures,
                    succeeded: false,
                });
                list.len() as u32
            };
            if probe.panic {
                panic!("probe handler panics on purpose");
            }
            if n <= probe.fail_times {
                return Err(Failure::transient(format!("attempt {n} fails on purpose")));
            }
            if let Some(last) = self
                .calls
                .lock()
                .expect("lock")
                .get_mut(&message.metadata.message_id)
                .and_then(|l| l.last_mut())
            {
                last.succeeded = true;
            }
            Ok(())
        })
    }
}

struct Fixture {
    env: TestEnv,
    calls: Shared<HashMap<Uuid, Vec<Attempt>>>,
    hub: e2e::RunningHub,
}

async fn fixture() -> Fixture {
    let env = TestEnv::new().await;
    let spec = QueueSpec::new(QUEUE, [Probe::TYPE.to_string()]);
    env.declare(vec![spec.clone()]).await;
    let calls: Shared<HashMap<Uuid, Vec<Attempt>>> = Arc::new(Mutex::new(HashMap::new()));
    let handler_calls = calls.clone();
    let registration = Registration {
        queue: spec,
        factory: Box::new(move |_| {
            Arc::new(ProbeHandler {
                calls: handler_calls.clone(),
            })
        }),
    };
    let hub = env.spawn_hub(Components::ALL, vec![registration]);
    Fixture { env, calls, hub }
}

impl Fixture {
    fn attempts(&self, id: Uuid) -> Vec<Attempt> {
        self.calls
            .lock()
            .expect("lock")
            .get(&id)
            .cloned()
            .unwrap_or_default()
    }
}

#[tokio::test]
async fn a_handler_failing_twice_is_retried_through_the_delay_tiers_and_completes() {
    let f = fixture().await;
    let sent = f
        .env
        .send(&Probe {
            fail_times: 2,
            panic: false,
        })
        .await;
    let attempts = wait_until(WAIT, "the third attempt to succeed", || async {
        let a = f.attempts(sent.message_id);
        a.last().is_some_and(|l| l.succeeded).then_some(a)
    })
    .await;
    assert_eq!(attempts.len(), 3, "two failures, one success");
    assert_eq!(
        attempts
            .iter()
            .map(|a| a.previous_failures)
            .collect::<Vec<_>>(),
        vec![0, 1, 2],
        "each redelivery carries its failure count"
    );
    // Tier n holds the message n-th tier's delay, ±jitter, before it comes back.
    let tiers = &f.env.config.retry_tiers.0;
    let jitter = f.env.config.retry_jitter;
    for (i, pair) in attempts.windows(2).enumerate() {
        let measured = pair[1].at - pair[0].at;
        let nominal = tiers[i].delay;
        eprintln!(
            "retry {}: nominal {nominal:?}, measured {measured:?}",
            i + 1
        );
        assert!(
            measured >= nominal.mul_f64(1.0 - jitter),
            "retry {} came back after {measured:?}, before tier {} ({nominal:?} -{jitter})",
            i + 1,
            i + 1
        );
        assert!(
            measured < nominal.mul_f64(1.0 + jitter) + Duration::from_secs(2),
            "retry {} took {measured:?}, far beyond tier {} ({nominal:?})",
            i + 1,
            i + 1
        );
    }
    f.hub.stop().await;
    let ch = f.env.channel().await;
    let topology = f.env.topology(vec![]);
    // The keeper would have moved a dead letter into the table; once the hub stopped, one it
    // had not yet kept would be back in the queue.
    assert_eq!(
        queue_depth(&ch, &topology.dead_queue(QUEUE)).await,
        0,
        "nothing dead-lettered"
    );
    assert_eq!(
        f.env.dead_letter_count(QUEUE).await,
        0,
        "nothing dead-lettered"
    );
    assert_eq!(queue_depth(&ch, &topology.work_queue(QUEUE)).await, 0);
}

#[tokio::test]
async fn a_handler_that_always_fails_is_dead_lettered_after_the_configured_attempts() {
    let f = fixture().await;
    let sent = f
        .env
        .send(&Probe {
            fail_times: u32::MAX,
            panic: false,
        })
        .await;
    let topology = f.env.topology(vec![]);
    let letters = f.env.dead_letters(QUEUE, 1, WAIT).await;
    let letter = &letters[0];
    let max = f.env.config.max_attempts;
    assert_eq!(
        f.attempts(sent.message_id).len() as u32,
        max,
        "handled exactly max_attempts times"
    );
    assert_eq!(letter.message_id, Some(sent.message_id));
    assert_eq!(
        letter.header_str(headers::ERROR_KIND).as_deref(),
        Some("retries_exhausted")
    );
    assert_eq!(letter.error_kind, "retries_exhausted");
    assert_eq!(letter.header_i64(headers::ATTEMPTS), Some(i64::from(max)));
    assert_eq!(letter.attempts as u32, max);
    assert_eq!(
        letter.header_str(headers::ERROR_TEXT),
        Some(format!("attempt {max} fails on purpose"))
    );
    assert_eq!(
        letter.header_str(headers::ORIGINAL_ROUTING_KEY).as_deref(),
        Some("test.probe.v1")
    );
    assert_eq!(
        letter.header_str(headers::ORIGINAL_EXCHANGE),
        Some(topology.bus_exchange())
    );
    assert_eq!(
        (
            letter.original_exchange.clone(),
            letter.original_routing_key.as_str()
        ),
        (topology.bus_exchange(), "test.probe.v1")
    );
    let probe: Probe = serde_json::from_slice(&letter.body).expect("the body is kept");
    assert_eq!(probe.fail_times, u32::MAX);
    let Fixture { calls, hub, env } = f;
    hub.stop().await;
    let handled = calls
        .lock()
        .expect("lock")
        .get(&sent.message_id)
        .map_or(0, Vec::len);
    assert_eq!(
        handled as u32, max,
        "not handled again after dead-lettering"
    );
    drop(env);
}

#[tokio::test]
async fn a_panicking_handler_is_dead_lettered_and_the_consumer_goes_on() {
    let f = fixture().await;
    let bad = f
        .env
        .send(&Probe {
            fail_times: 0,
            panic: true,
        })
        .await;
    let good = f
        .env
        .send(&Probe {
            fail_times: 0,
            panic: false,
        })
        .await;
    wait_until(WAIT, "the message after the panic", || async {
        f.attempts(good.message_id)
            .last()
            .filter(|a| a.succeeded)
            .copied()
    })
    .await;
    let letters = f.env.dead_letters(QUEUE, 1, WAIT).await;
    let letter = &letters[0];
    assert_eq!(letter.message_id, Some(bad.message_id));
    assert_eq!(
        letter.header_str(headers::ERROR_KIND).as_deref(),
        Some("handler_panicked")
    );
    assert_eq!(letter.error_kind, "handler_panicked");
    assert_eq!(
        f.attempts(bad.message_id).len(),
        1,
        "a panic is not retried"
    );
    f.hub.stop().await;
}
