//! The raw limits the hub's figures are compared with, measured with the same client crates on
//! the same servers in the same run:
//!
//! - **broker hops**: consume from a quorum queue, publish one persistent message with a
//!   publisher confirm to another quorum queue, then ack — with `in_flight` hops at once (the
//!   consumer's prefetch), which is what one engine step costs the broker;
//! - **database steps**: transactions shaped like one engine step — update a saga row (with its
//!   version), insert a history row, an outbox row and an inbox row — from `concurrency` tasks
//!   at once (the hub's pool size).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, ConnectionProperties};
use sqlx::PgPool;
use tokio::sync::Notify;
use uuid::Uuid;

/// One measured rate.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Rate {
    /// Operations done.
    pub count: usize,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Operations per second.
    pub per_second: f64,
}

impl Rate {
    fn of(count: usize, elapsed: Duration) -> Self {
        let seconds = elapsed.as_secs_f64();
        Rate {
            count,
            seconds,
            per_second: if seconds > 0.0 {
                count as f64 / seconds
            } else {
                0.0
            },
        }
    }
}

fn quorum() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    args
}

/// The two queues [`broker_hops`] hops between, for namespace `prefix`.
pub fn queues(prefix: &str) -> [String; 2] {
    [format!("{prefix}.raw.a"), format!("{prefix}.raw.b")]
}

/// Measures `count` broker hops between two quorum queues named `<prefix>.raw.a` and
/// `<prefix>.raw.b` (deleted afterwards), `in_flight` at once, giving up after `timeout`.
pub async fn broker_hops(
    amqp_url: &str,
    prefix: &str,
    count: usize,
    in_flight: u16,
    timeout: Duration,
) -> anyhow::Result<Rate> {
    // The first node that answers, when AMQP_URL names a cluster.
    let conn = hub_runtime::broker::connect_first(amqp_url, ConnectionProperties::default())
        .await
        .context("the broker for the raw hop benchmark")?;
    let [a, b] = queues(prefix);
    let setup = conn.create_channel().await?;
    for q in [&a, &b] {
        setup
            .queue_declare(
                q.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                quorum(),
            )
            .await?;
    }
    load(&setup, &a, count).await?;
    let sink = Sink::start(&conn, &b, count, in_flight).await?;
    let (hops, started) = start_hops(&conn, &a, &b, count, in_flight).await?;
    let waited = tokio::time::timeout(timeout, sink.done.notified()).await;
    let elapsed = started.elapsed();
    hops.abort();
    sink.task.abort();
    for q in [&a, &b] {
        let _ = setup
            .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
    let _ = conn.close(200, "raw benchmark done".into()).await;
    anyhow::ensure!(
        waited.is_ok(),
        "the raw hop benchmark did not finish in {timeout:?} ({} of {count} hops)",
        sink.arrived.load(Ordering::Relaxed)
    );
    Ok(Rate::of(count, elapsed))
}

/// Loads `count` persistent messages into `queue` (not timed), with confirms so every message
/// is there.
async fn load(channel: &lapin::Channel, queue: &str, count: usize) -> anyhow::Result<()> {
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let body = vec![b'x'; 512];
    let props = BasicProperties::default().with_delivery_mode(2);
    let mut pending = Vec::with_capacity(count);
    for _ in 0..count {
        pending.push(
            channel
                .basic_publish(
                    "".into(),
                    queue.into(),
                    BasicPublishOptions::default(),
                    &body,
                    props.clone(),
                )
                .await?,
        );
    }
    for p in pending {
        p.await?;
    }
    Ok(())
}

/// The end of the hops: counts arrivals in the second queue, and says when all have come.
struct Sink {
    arrived: Arc<AtomicUsize>,
    done: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Sink {
    async fn start(
        conn: &lapin::Connection,
        queue: &str,
        count: usize,
        in_flight: u16,
    ) -> anyhow::Result<Self> {
        let arrived = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(Notify::new());
        let sink = conn.create_channel().await?;
        sink.basic_qos(in_flight.max(1), BasicQosOptions::default())
            .await?;
        let mut deliveries = sink
            .basic_consume(
                queue.into(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        let task = {
            let (arrived, done) = (arrived.clone(), done.clone());
            tokio::spawn(async move {
                while let Some(Ok(_)) = deliveries.next().await {
                    if arrived.fetch_add(1, Ordering::Relaxed) + 1 >= count {
                        done.notify_one();
                        break;
                    }
                }
            })
        };
        Ok(Self {
            arrived,
            done,
            task,
        })
    }
}

/// The hops: consume from `a`, publish to `b` with a confirm, then ack, `in_flight` at once;
/// with the moment they started consuming (the clock starts there).
async fn start_hops(
    conn: &lapin::Connection,
    a: &str,
    b: &str,
    count: usize,
    in_flight: u16,
) -> anyhow::Result<(tokio::task::JoinHandle<()>, Instant)> {
    let hop = conn.create_channel().await?;
    hop.confirm_select(ConfirmSelectOptions::default()).await?;
    hop.basic_qos(in_flight.max(1), BasicQosOptions::default())
        .await?;
    let started = Instant::now();
    let mut deliveries = hop
        .basic_consume(
            a.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let b = b.to_owned();
    let task = tokio::spawn(async move {
        let mut taken = 0;
        while taken < count {
            let Some(Ok(d)) = deliveries.next().await else {
                break;
            };
            taken += 1;
            let (hop, b) = (hop.clone(), b.clone());
            tokio::spawn(async move {
                let confirm = hop
                    .basic_publish(
                        "".into(),
                        b.as_str().into(),
                        BasicPublishOptions::default(),
                        &d.data,
                        BasicProperties::default().with_delivery_mode(2),
                    )
                    .await;
                if let Ok(c) = confirm
                    && c.await.is_ok()
                {
                    let _ = d.acker.ack(BasicAckOptions::default()).await;
                }
            });
        }
    });
    Ok((task, started))
}

/// Measures `count` engine-step-shaped transactions on `pool` (a database with the hub's
/// schema), `concurrency` at once, against `concurrency` saga rows of its own (removed after).
pub async fn database_steps(
    pool: &PgPool,
    count: usize,
    concurrency: usize,
) -> anyhow::Result<Rate> {
    let concurrency = concurrency.max(1);
    let sagas: Vec<Uuid> = (0..concurrency).map(|_| Uuid::new_v4()).collect();
    for id in &sagas {
        sqlx::query(
            "INSERT INTO sagas (id, saga_type, business_key, state_name, state, version)
             VALUES ($1, 'raw-bench', NULL, 'running', '{}'::jsonb, 0)",
        )
        .bind(id)
        .execute(pool)
        .await?;
    }
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for saga in sagas.clone() {
        let (pool, next) = (pool.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut version: i64 = 0;
            while next.fetch_add(1, Ordering::Relaxed) < count {
                let message = Uuid::new_v4();
                let out = Uuid::new_v4();
                let mut tx = pool.begin().await?;
                sqlx::query("INSERT INTO inbox (consumer, message_id) VALUES ('raw-bench', $1)")
                    .bind(message)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "UPDATE sagas SET state = jsonb_build_object('n', $3::bigint), version = $3,
                     updated_at = now() WHERE id = $1 AND version = $2",
                )
                .bind(saga)
                .bind(version)
                .bind(version + 1)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO saga_history (saga_id, version, message_id, message_type,
                     from_state, to_state, outgoing) VALUES ($1, $2, $3, 'raw.step.v1',
                     'running', 'running', ARRAY[$4]::uuid[])",
                )
                .bind(saga)
                .bind(version + 1)
                .bind(message)
                .bind(out)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO outbox (id, exchange, routing_key, metadata, body, sent_at)
                     VALUES ($1, 'raw', 'raw.step.v1', '{}'::jsonb, '\\x00'::bytea, now())",
                )
                .bind(out)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                version += 1;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let elapsed = started.elapsed();
    // Leave nothing behind (the history is append-only: its rows go with the database).
    sqlx::query("DELETE FROM inbox WHERE consumer = 'raw-bench'")
        .execute(pool)
        .await?;
    sqlx::query("DELETE FROM outbox WHERE exchange = 'raw'")
        .execute(pool)
        .await?;
    Ok(Rate::of(count, elapsed))
}
