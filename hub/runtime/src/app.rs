//! Starting and stopping the hub: connect, migrate, declare, run every component, drain.
//!
//! Shutdown order (SIGINT/SIGTERM or the caller's token): stop taking deliveries and firing
//! timers, let in-flight handlers finish, flush the outbox relay, close the connection.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use contracts::{QueueSpec, Topology};
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::broker::{
    self, Broker, ConsumerSettings, Handler, NamedSenders, Publisher, SenderPolicy,
};
use crate::config::HubConfig;
use crate::engine::SagaTypes;
use crate::health::Readiness;
use crate::store::{self, relay, timers};

/// What a handler factory may use.
#[derive(Debug, Clone)]
pub struct HubContext {
    /// The database pool.
    pub pool: PgPool,
    /// The namespace's topology.
    pub topology: Arc<Topology>,
    /// This process's `app_id` on outgoing messages.
    pub app_id: String,
    /// The broker user the hub connects as: what the broker puts in `user_id` checks for the
    /// hub's own messages (the bridge from HTTP back-offices speaks as it).
    pub broker_user: String,
    /// Most messages handled in one transaction (`HUB_BATCH`): a saga's batches, a service's
    /// group commits ([`crate::engine::ServiceRunner::with_group_commit`]).
    pub batch: usize,
}

/// Builds a handler once the hub is connected.
pub type HandlerFactory = Box<dyn Fn(&HubContext) -> Arc<dyn Handler> + Send + Sync>;

/// A work queue and the handler that consumes it.
pub struct Registration {
    /// The queue and its bindings.
    pub queue: QueueSpec,
    /// Makes its handler.
    pub factory: HandlerFactory,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

/// Which parts of the hub this process runs (`hub run --only ...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Components {
    /// Saga engines and other consumers.
    pub consumers: bool,
    /// The outbox relay.
    pub relay: bool,
    /// The timer poller.
    pub timers: bool,
    /// The dead-letter keeper ([`crate::keeper`]): dead-letter queues into `dead_letters`.
    pub keeper: bool,
}

impl Components {
    /// Everything.
    pub const ALL: Components = Components {
        consumers: true,
        relay: true,
        timers: true,
        keeper: true,
    };
}

/// A command line that asks for something that does not exist (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The plan of a process that consumes only `queues` (short names; all when empty): the other
/// queues stay declared, as queues other processes consume, and the background tasks (the HTTP
/// listener, the console) are left to the process that consumes everything, but for those of
/// the queues it consumes ([`Plan::queue_tasks`]). An unknown name is an error that lists the
/// known ones.
pub fn only_queues(mut plan: Plan, queues: &[String]) -> anyhow::Result<Plan> {
    if queues.is_empty() {
        return Ok(plan);
    }
    let known: Vec<&str> = plan
        .registrations
        .iter()
        .map(|r| r.queue.name.as_str())
        .collect();
    if let Some(unknown) = queues.iter().find(|q| !known.contains(&q.as_str())) {
        return Err(UsageError(format!(
            "--queues: {unknown:?} is not a work queue of the hub; use some of: {}",
            known.join(", ")
        ))
        .into());
    }
    let (mine, others): (Vec<_>, Vec<_>) = plan
        .registrations
        .into_iter()
        .partition(|r| queues.contains(&r.queue.name));
    plan.foreign_queues
        .extend(others.into_iter().map(|r| r.queue));
    plan.registrations = mine;
    plan.background = std::mem::take(&mut plan.queue_tasks)
        .into_iter()
        .filter(|t| queues.contains(&t.queue))
        .map(|t| t.task)
        .collect();
    Ok(plan)
}

/// The topology of `config`'s namespace with these queues.
pub fn topology(config: &HubConfig, queues: Vec<QueueSpec>) -> anyhow::Result<Topology> {
    Ok(Topology::new(
        config.namespace.clone(),
        queues,
        config.retry_tiers.0.clone(),
    )?)
}

/// A task that runs beside the consumers (the HTTP listeners for callbacks and for health and
/// metrics, the operators' console), started and stopped with them. It gets the process's
/// [`Running`] parts besides the context.
pub type Background = Box<
    dyn FnOnce(&HubContext, &Running, CancellationToken) -> BoxFuture<'static, anyhow::Result<()>>
        + Send,
>;

/// What a background task may use besides the [`HubContext`]: the parts that exist only once
/// this process is connected and its handlers are made.
#[derive(Debug, Clone)]
pub struct Running {
    /// What `GET /readyz` checks: this process's broker connection, database and outbox.
    pub readiness: Readiness,
    /// This process's broker connection.
    pub broker: Broker,
    /// This process's confirming publisher.
    pub publisher: Arc<Publisher>,
    /// The sagas this process runs (what an operator may cancel).
    pub sagas: Arc<SagaTypes>,
}

/// What a hub process runs: its queues with their handlers, background tasks, who may send what
/// and the business's migrations.
#[derive(Default)]
pub struct Plan {
    /// Queues and handlers.
    pub registrations: Vec<Registration>,
    /// Queues the hub declares but others consume (an authority's queue).
    pub foreign_queues: Vec<QueueSpec>,
    /// Background tasks.
    pub background: Vec<Background>,
    /// Background tasks that belong to one work queue's handler (the SMS worker's SMPP binds,
    /// drained when the process stops): run with the rest, and also by a process that consumes
    /// only some queues ([`only_queues`]) when it consumes that one.
    pub queue_tasks: Vec<QueueTask>,
    /// Who may send what; [`NamedSenders`] (every message names its sender) when `None`.
    pub senders: Option<Arc<dyn SenderPolicy>>,
    /// The business's migrations, run with the runtime's as one ordered set
    /// ([`store::migrator`]).
    pub migrations: Vec<&'static Migrator>,
}

/// A background task of one work queue's handler ([`Plan::queue_tasks`]).
pub struct QueueTask {
    /// The queue's short name, as its [`Registration`] has it.
    pub queue: String,
    /// The task.
    pub task: Background,
}

impl std::fmt::Debug for QueueTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueTask")
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

impl Plan {
    /// The sagas of this plan, with what operators may ask of each: its handlers are made (not
    /// run) with `ctx`.
    pub fn saga_types(&self, ctx: &HubContext) -> SagaTypes {
        SagaTypes::new(
            &ctx.topology,
            self.registrations.iter().map(|r| (r.factory)(ctx)),
        )
    }

    /// Every queue of the plan: consumed and foreign.
    pub fn queues(&self) -> Vec<QueueSpec> {
        self.registrations
            .iter()
            .map(|r| r.queue.clone())
            .chain(self.foreign_queues.iter().cloned())
            .collect()
    }
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("registrations", &self.registrations)
            .field("foreign_queues", &self.foreign_queues)
            .field("background", &self.background.len())
            .field(
                "queue_tasks",
                &self
                    .queue_tasks
                    .iter()
                    .map(|t| &t.queue)
                    .collect::<Vec<_>>(),
            )
            .field("senders", &self.senders.is_some())
            .field("migrations", &self.migrations.len())
            .finish()
    }
}

impl From<Vec<Registration>> for Plan {
    fn from(registrations: Vec<Registration>) -> Self {
        Self {
            registrations,
            ..Self::default()
        }
    }
}

/// Runs the hub with these queues until `shutdown` is cancelled, then drains and returns.
pub async fn run(
    config: &HubConfig,
    components: Components,
    registrations: Vec<Registration>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    run_plan(config, components, Plan::from(registrations), shutdown).await
}

/// Runs the hub with this plan until `shutdown` is cancelled, then drains and returns.
pub async fn run_plan(
    config: &HubConfig,
    components: Components,
    plan: Plan,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let retention = config.retention_settings().map_err(anyhow::Error::msg)?;
    let queues = plan.queues();
    let Plan {
        registrations,
        mut background,
        queue_tasks,
        senders,
        migrations,
        ..
    } = plan;
    background.extend(queue_tasks.into_iter().map(|t| t.task));
    let senders = senders.unwrap_or_else(|| Arc::new(NamedSenders));
    let hub = connect(config, queues, &migrations).await?;
    let consuming = TaskTracker::new();
    if components.consumers {
        let handlers =
            spawn_consumers(&hub, config, &registrations, senders, &consuming, &shutdown);
        spawn_background(&hub, handlers, background, &consuming, &shutdown);
    }
    if components.timers {
        consuming.spawn(timers::run_timers(
            hub.ctx.pool.clone(),
            config.relay_batch,
            config.poll_interval,
            shutdown.clone(),
        ));
    }
    if components.keeper {
        // Housekeeping beside the keeper; one process at a time prunes (an advisory lock).
        consuming.spawn(crate::store::retention::run_retention(
            hub.ctx.pool.clone(),
            retention,
            shutdown.clone(),
        ));
        consuming.spawn(crate::keeper::run_keeper(
            hub.broker.clone(),
            hub.ctx.pool.clone(),
            hub.ctx.topology.clone(),
            shutdown.clone(),
        ));
    }
    consuming.close();
    let relay_stop = CancellationToken::new();
    let relay_task = components.relay.then(|| {
        tokio::spawn(relay::run_relay(
            hub.ctx.pool.clone(),
            hub.publisher.clone(),
            relay::RelaySettings {
                batch: config.relay_batch,
                poll_interval: config.poll_interval,
            },
            relay_stop.clone(),
        ))
    });
    tracing::info!(
        namespace = %config.namespace,
        queues = registrations.len(),
        consumers = components.consumers,
        relay = components.relay,
        timers = components.timers,
        keeper = components.keeper,
        "hub running"
    );
    shutdown.cancelled().await;
    drain(config, hub, consuming, relay_stop, relay_task).await;
    Ok(())
}

/// A process's connections, once the database is migrated and the topology declared.
struct Connected {
    ctx: HubContext,
    broker: Broker,
    /// Ends the broker connection: it outlives the consumers so the relay can flush after they
    /// stop.
    connection_token: CancellationToken,
    publisher: Arc<Publisher>,
    readiness: Readiness,
}

/// Connects to the database (migrating it with the runtime's and the business's migrations)
/// and to the broker, and declares the topology of `queues`.
async fn connect(
    config: &HubConfig,
    queues: Vec<QueueSpec>,
    migrations: &[&'static Migrator],
) -> anyhow::Result<Connected> {
    // Which process sent a message: several hub processes (or engines in one test) share a
    // namespace, and operators need to tell them apart.
    let app_id = format!(
        "hub/{}/{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..6]
    );
    let topology = Arc::new(topology(config, queues)?);
    let migrator = store::migrator(migrations)?;
    let pool = store::connect(&config.database_url, config.db_pool, &migrator).await?;
    let connection_token = CancellationToken::new();
    let broker_tls = config.broker_tls()?;
    let broker = Broker::connect_with_tls(
        &config.amqp_url,
        &broker_tls,
        &app_id,
        connection_token.clone(),
    )
    .await?;
    broker::declare_topology(&broker, &topology, config.delivery_limit, &connection_token).await?;
    let publisher = Arc::new(Publisher::new(broker.clone(), connection_token.clone()));
    // What `GET /readyz` checks: this process's broker connection, database and outbox.
    let readiness = Readiness::new(broker.clone(), pool.clone(), config.ready_max_outbox_lag);
    Ok(Connected {
        ctx: HubContext {
            pool,
            topology,
            app_id,
            broker_user: broker::broker_user(&config.amqp_url),
            batch: config.batch,
        },
        broker,
        connection_token,
        publisher,
        readiness,
    })
}

/// Starts a consumer for each registration; returns the handlers made.
fn spawn_consumers(
    hub: &Connected,
    config: &HubConfig,
    registrations: &[Registration],
    senders: Arc<dyn SenderPolicy>,
    consuming: &TaskTracker,
    shutdown: &CancellationToken,
) -> Vec<Arc<dyn Handler>> {
    let mut handlers = Vec::new();
    for r in registrations {
        let settings = ConsumerSettings {
            queue: hub.ctx.topology.work_queue(&r.queue.name),
            prefetch: config.prefetch,
            batch: config.batch,
            lanes: config.batch_lanes,
            max_attempts: config.max_attempts,
            handler_timeout: config.handler_timeout,
            jitter: config.retry_jitter,
            broker_user: hub.ctx.broker_user.clone(),
            senders: senders.clone(),
        };
        let handler = (r.factory)(&hub.ctx);
        handlers.push(handler.clone());
        consuming.spawn(broker::run_consumer(
            hub.broker.clone(),
            hub.publisher.clone(),
            hub.ctx.topology.clone(),
            settings,
            handler,
            shutdown.clone(),
        ));
    }
    handlers
}

/// Starts the background tasks, each with the running process's parts; a failing one is logged.
fn spawn_background(
    hub: &Connected,
    handlers: Vec<Arc<dyn Handler>>,
    background: Vec<Background>,
    consuming: &TaskTracker,
    shutdown: &CancellationToken,
) {
    let running = Running {
        readiness: hub.readiness.clone(),
        broker: hub.broker.clone(),
        publisher: hub.publisher.clone(),
        sagas: Arc::new(crate::engine::SagaTypes::new(&hub.ctx.topology, handlers)),
    };
    for task in background {
        let run = task(&hub.ctx, &running, shutdown.clone());
        consuming.spawn(async move {
            if let Err(e) = run.await {
                tracing::error!(error = %format!("{e:#}"), "background task failed");
            }
        });
    }
}

/// After shutdown: lets in-flight handlers finish, flushes the relay, closes the connections,
/// each within the drain timeout.
async fn drain(
    config: &HubConfig,
    hub: Connected,
    consuming: TaskTracker,
    relay_stop: CancellationToken,
    relay_task: Option<tokio::task::JoinHandle<()>>,
) {
    tracing::info!("draining: finishing in-flight messages");
    if tokio::time::timeout(config.drain_timeout, consuming.wait())
        .await
        .is_err()
    {
        tracing::warn!("in-flight messages did not finish in time; the broker will redeliver them");
    }
    relay_stop.cancel();
    if let Some(task) = relay_task
        && tokio::time::timeout(config.drain_timeout, task)
            .await
            .is_err()
    {
        tracing::warn!("the outbox relay did not flush in time; the rest goes out at next start");
    }
    hub.broker.close().await;
    hub.connection_token.cancel();
    hub.ctx.pool.close().await;
    tracing::info!("hub stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registration(name: &str) -> Registration {
        Registration {
            queue: QueueSpec::new(name, Vec::<String>::new()),
            factory: Box::new(|_| unreachable!("not built in this test")),
        }
    }

    #[test]
    fn a_process_for_some_queues_declares_the_others_and_runs_only_their_background_tasks() {
        let task = || -> Background { Box::new(|_, _, _| Box::pin(async { Ok(()) })) };
        let plan = Plan {
            registrations: vec![registration("a"), registration("b"), registration("c")],
            foreign_queues: vec![QueueSpec::new("x", Vec::<String>::new())],
            background: vec![task()],
            queue_tasks: vec![
                QueueTask {
                    queue: "a".into(),
                    task: task(),
                },
                QueueTask {
                    queue: "b".into(),
                    task: task(),
                },
            ],
            ..Plan::default()
        };
        let plan = only_queues(plan, &["b".to_owned()]).expect("b is a queue");
        let mine: Vec<_> = plan
            .registrations
            .iter()
            .map(|r| r.queue.name.clone())
            .collect();
        assert_eq!(mine, ["b"]);
        let mut declared: Vec<_> = plan.queues().into_iter().map(|q| q.name).collect();
        declared.sort();
        assert_eq!(declared, ["a", "b", "c", "x"]);
        // The listener-like task is left to the process of every queue; b's own task runs.
        assert_eq!(plan.background.len(), 1, "b's task only");
        assert!(plan.queue_tasks.is_empty());
        let all = Plan {
            registrations: vec![registration("a")],
            ..Plan::default()
        };
        assert!(only_queues(all, &["z".to_owned()]).is_err());
    }
}
