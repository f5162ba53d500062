//! Declares a namespace's topology on the broker, from one plan that `hub topology` also prints.

use contracts::Topology;
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};
use serde::Serialize;

use super::properties::long_string;

/// One thing to declare.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Declaration {
    /// A durable exchange.
    Exchange {
        /// Name.
        name: String,
        /// `topic`, `direct` or `fanout`.
        exchange_type: &'static str,
        /// Arguments, as text.
        arguments: Vec<(&'static str, String)>,
    },
    /// A durable quorum queue.
    Queue {
        /// Name.
        name: String,
        /// What it is for.
        role: &'static str,
        /// Arguments beyond `x-queue-type: quorum`, as text.
        arguments: Vec<(&'static str, String)>,
    },
    /// A binding of a queue to an exchange.
    Binding {
        /// Queue.
        queue: String,
        /// Exchange.
        exchange: String,
        /// Routing key or pattern.
        key: String,
    },
}

/// The declarations of `topology`, in an order that works on an empty broker.
pub fn describe(topology: &Topology, delivery_limit: u32) -> Vec<Declaration> {
    let mut out = Vec::new();
    let exchange = |name: String, exchange_type| Declaration::Exchange {
        name,
        exchange_type,
        arguments: vec![],
    };
    out.push(exchange(topology.unrouted(), "fanout"));
    out.push(Declaration::Queue {
        name: topology.unrouted(),
        role: "unrouted",
        arguments: vec![],
    });
    out.push(Declaration::Binding {
        queue: topology.unrouted(),
        exchange: topology.unrouted(),
        key: String::new(),
    });
    out.push(Declaration::Exchange {
        name: topology.bus_exchange(),
        exchange_type: "topic",
        arguments: vec![("alternate-exchange", topology.unrouted())],
    });
    out.push(exchange(topology.requeue_exchange(), "direct"));
    out.push(exchange(topology.dead_exchange(), "direct"));
    for (i, tier) in topology.retry_tiers().iter().enumerate() {
        let name = topology.retry_tier(i);
        out.push(exchange(name.clone(), "fanout"));
        out.push(Declaration::Queue {
            name: name.clone(),
            role: "retry tier",
            arguments: vec![
                ("x-dead-letter-exchange", topology.requeue_exchange()),
                ("x-dead-letter-strategy", "at-least-once".into()),
                ("x-overflow", "reject-publish".into()),
                ("nominal-delay-ms", tier.delay.as_millis().to_string()),
            ],
        });
        out.push(Declaration::Binding {
            queue: name.clone(),
            exchange: name,
            key: String::new(),
        });
    }
    for q in topology.queues() {
        let work = topology.work_queue(&q.name);
        let dead = topology.dead_queue(&q.name);
        out.push(Declaration::Queue {
            name: work.clone(),
            role: "work",
            arguments: vec![
                ("x-delivery-limit", delivery_limit.to_string()),
                ("x-dead-letter-exchange", topology.dead_exchange()),
                ("x-dead-letter-routing-key", work.clone()),
                ("x-dead-letter-strategy", "at-least-once".into()),
                ("x-overflow", "reject-publish".into()),
            ],
        });
        out.push(Declaration::Queue {
            name: dead.clone(),
            role: "dead letters",
            arguments: vec![],
        });
        for pattern in &q.bindings {
            out.push(Declaration::Binding {
                queue: work.clone(),
                exchange: topology.bus_exchange(),
                key: pattern.clone(),
            });
        }
        out.push(Declaration::Binding {
            queue: work.clone(),
            exchange: topology.requeue_exchange(),
            key: work.clone(),
        });
        out.push(Declaration::Binding {
            queue: dead,
            exchange: topology.dead_exchange(),
            key: work,
        });
    }
    out
}

/// Declares everything in `describe(topology)`. Declarations are idempotent, so every hub
/// process declares at start; a changed argument on an existing queue is refused by the broker
/// and reported.
pub async fn declare(
    channel: &Channel,
    topology: &Topology,
    delivery_limit: u32,
) -> Result<(), lapin::Error> {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    for d in describe(topology, delivery_limit) {
        match d {
            Declaration::Exchange {
                name,
                exchange_type,
                arguments,
            } => {
                let mut args = FieldTable::default();
                for (k, v) in arguments {
                    args.insert(k.into(), long_string(&v));
                }
                let kind = match exchange_type {
                    "topic" => ExchangeKind::Topic,
                    "direct" => ExchangeKind::Direct,
                    _ => ExchangeKind::Fanout,
                };
                channel
                    .exchange_declare(name.into(), kind, durable, args)
                    .await?;
            }
            Declaration::Queue {
                name, arguments, ..
            } => {
                let mut args = FieldTable::default();
                args.insert("x-queue-type".into(), long_string("quorum"));
                for (k, v) in arguments {
                    let value = match k {
                        "x-delivery-limit" => AMQPValue::LongLongInt(v.parse().unwrap_or(20)),
                        // Documentation only: each message carries its own TTL.
                        "nominal-delay-ms" => continue,
                        _ => long_string(&v),
                    };
                    args.insert(k.into(), value);
                }
                let options = QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                };
                channel.queue_declare(name.into(), options, args).await?;
            }
            Declaration::Binding {
                queue,
                exchange,
                key,
            } => {
                channel
                    .queue_bind(
                        queue.into(),
                        exchange.into(),
                        key.into(),
                        QueueBindOptions::default(),
                        FieldTable::default(),
                    )
                    .await?;
            }
        }
    }
    Ok(())
}

/// Why the topology was not declared.
#[derive(Debug, thiserror::Error)]
pub enum DeclareError {
    /// The connection closed (the process is shutting down) before a channel opened.
    #[error("broker connection closed during start")]
    Closed,
    /// The broker refused a declaration (a changed argument on an existing queue, ...).
    #[error("{0}")]
    Refused(#[from] lapin::Error),
}

/// Declares everything in `describe(topology)` on a channel of its own, closed afterwards.
pub async fn declare_topology(
    broker: &super::Broker,
    topology: &Topology,
    delivery_limit: u32,
    shutdown: &tokio_util::sync::CancellationToken,
) -> Result<(), DeclareError> {
    let channel = broker.channel(shutdown).await.ok_or(DeclareError::Closed)?;
    declare(&channel, topology, delivery_limit).await?;
    let _ = channel.close(200, "topology declared".into()).await;
    Ok(())
}

/// The plan as an aligned table for a terminal.
pub fn table(plan: &[Declaration]) -> String {
    let rows: Vec<[String; 3]> = plan
        .iter()
        .map(|d| match d {
            Declaration::Exchange {
                name,
                exchange_type,
                arguments,
            } => {
                let args: Vec<String> =
                    arguments.iter().map(|(k, v)| format!(" {k}={v}")).collect();
                [
                    "exchange".into(),
                    name.clone(),
                    format!("{exchange_type}, durable;{}", args.concat()),
                ]
            }
            Declaration::Queue {
                name,
                role,
                arguments,
            } => {
                let args: Vec<String> = arguments.iter().map(|(k, v)| format!("{k}={v}")).collect();
                [
                    "queue".into(),
                    name.clone(),
                    format!("quorum {role}; {}", args.join(" ")),
                ]
            }
            Declaration::Binding {
                queue,
                exchange,
                key,
            } => [
                "binding".into(),
                queue.clone(),
                format!("<- {exchange} [{key}]"),
            ],
        })
        .collect();
    let w0 = rows.iter().map(|r| r[0].len()).max().unwrap_or(4).max(4);
    let w1 = rows.iter().map(|r| r[1].len()).max().unwrap_or(4).max(4);
    let mut out = format!("{:w0$}  {:w1$}  DETAILS\n", "KIND", "NAME");
    for r in rows {
        out.push_str(&format!("{:w0$}  {:w1$}  {}\n", r[0], r[1], r[2]));
    }
    out
}
