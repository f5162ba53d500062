//! `TestEnv`: one test's isolated namespace and database, and the helpers every test uses.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use contracts::{Message, Metadata, QueueSpec, RetryTier, Topology};
use hub_lab::sandbox::{Sandbox, Servers};
use hub_runtime::app::{self, Components, Registration};
use hub_runtime::broker::{self, Broker, Envelope, Publisher};
use hub_runtime::config::{HubConfig, Tiers};
use lapin::options::{BasicAckOptions, BasicGetOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Logs to stderr when `TEST_LOG` is set (`TEST_LOG=hub=debug`), quiet otherwise.
pub fn init_logging() {
    if let Ok(filter) = std::env::var("TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .with_test_writer()
            .try_init();
    }
}

/// Polls `check` every 25 ms until it returns `Some`, or fails the test after `timeout` with
/// `what` in the message. This is how tests wait: on a condition, with a deadline.
pub async fn wait_until<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        // The poll interval of this wait on a condition with a deadline.
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The issuance desks every test hub declares (`HUB_DESKS`): the tests' desk and another.
pub const TEST_DESKS: [&str; 2] = ["minsk-desk-1", "brest-desk-2"];

/// The password the tests' party users (the portal, the desks, the bus authorities) have on
/// the local broker.
pub const PARTY_PASSWORD: &str = hub_lab::parties::PARTY_PASSWORD;

/// `amqp_url` with `user` and [`PARTY_PASSWORD`] as its credentials.
pub fn url_as(amqp_url: &str, user: &str) -> url::Url {
    hub_lab::parties::url_as(amqp_url, user).expect("AMQP URL")
}

/// Makes sure party `user` (the portal's `portal`, a desk's `desk-<id>`, a bus authority's
/// user) exists on the local RabbitMQ with [`PARTY_PASSWORD`] and its least permissions.
pub async fn ensure_party_user(amqp_url: &str, user: &str) {
    hub_lab::parties::ensure_party_user(amqp_url, user, hub_portal::parties::DEFAULT_PORTAL_USER)
        .await
        .expect("the party's broker user");
}

/// One test's namespace and database.
#[derive(Debug)]
pub struct TestEnv {
    /// The hub configuration for this test (fast retry tiers, short polls).
    pub config: HubConfig,
    /// The test's own database, migrated.
    pub pool: PgPool,
    /// A broker connection for the test's own publishing and inspection.
    pub broker: Broker,
    /// Publisher with confirms on that connection.
    pub publisher: Publisher,
    token: CancellationToken,
    /// Publishers connected as the parties (the portal, desks, authorities), by broker user.
    parties: tokio::sync::Mutex<HashMap<String, Arc<Publisher>>>,
    /// The namespace and database, and every queue and exchange to remove with them (last
    /// field: dropped after the test's connections).
    sandbox: Sandbox,
}

impl TestEnv {
    /// A fresh namespace and database on the default local servers.
    pub async fn new() -> Self {
        Self::on(Servers::for_tests()).await
    }

    /// A fresh namespace and database, with the broker at `amqp_url`.
    pub async fn with_broker(amqp_url: &str) -> Self {
        Self::on(Servers {
            amqp_url: amqp_url.to_owned(),
            ..Servers::for_tests()
        })
        .await
    }

    /// A fresh namespace and database on `servers` (a private PostgreSQL server, say).
    pub async fn on(servers: Servers) -> Self {
        // The tests' own reqwest clients need a process default TLS provider.
        adapters::tls::install_default_provider();
        init_logging();
        // The queue authorities the tests run check what they send, as the test's own sends do.
        simulators::authority::check_outgoing_with(hub_runtime::conformance::check_text);
        let sandbox =
            Sandbox::new(&servers, "t", "hubtest").expect("TEST_DATABASE_URL is a PostgreSQL URL");
        let config = HubConfig {
            amqp_url: servers.amqp_url.clone(),
            database_url: sandbox.database_url.clone(),
            namespace: sandbox.namespace.clone(),
            prefetch: 16,
            batch: 32,
            batch_lanes: 2,
            max_attempts: 4,
            delivery_limit: 20,
            retry_tiers: Tiers(
                [300, 600, 900]
                    .into_iter()
                    .map(|ms| RetryTier {
                        delay: Duration::from_millis(ms),
                    })
                    .collect(),
            ),
            retry_jitter: 0.2,
            handler_timeout: Duration::from_secs(10),
            db_pool: 8,
            relay_batch: 64,
            poll_interval: Duration::from_millis(100),
            drain_timeout: Duration::from_secs(10),
            ready_max_outbox_lag: Duration::from_secs(30),
            retention: Duration::from_secs(7 * 24 * 3600),
            retention_batch: 1000,
            retention_every: Duration::from_secs(300),
            amqp_ca_file: None,
            amqp_client_cert: None,
            amqp_client_key: None,
        };
        if let Ok(template) = std::env::var("TEST_DATABASE_TEMPLATE") {
            copy_template(&servers.postgres_url, &sandbox.database, &template).await;
        }
        let migrator = hub::migrator().expect("the hub's migrations");
        let pool = hub_runtime::store::connect(&config.database_url, 4, &migrator)
            .await
            .expect("PostgreSQL is running (see README, Prerequisites)");
        let token = CancellationToken::new();
        let broker = Broker::connect(&servers.amqp_url, "test harness", token.clone())
            .await
            .expect("RabbitMQ is running (see README, Prerequisites)");
        let publisher = Publisher::new(broker.clone(), token.clone());
        // The namespace's base topology (retry tiers, unrouted, bus ...) goes at the end too: a
        // hub process of the test may declare it without the test declaring anything.
        let base = app::topology(&config, vec![]).expect("valid topology");
        sandbox.remember(&base, config.delivery_limit);
        Self {
            config,
            pool,
            broker,
            publisher,
            token,
            parties: tokio::sync::Mutex::default(),
            sandbox,
        }
    }

    /// The topology of this namespace with these queues.
    pub fn topology(&self, queues: Vec<QueueSpec>) -> Topology {
        app::topology(&self.config, queues).expect("valid topology")
    }

    /// Declares the topology (as the hub does at start) and remembers it for cleanup.
    pub async fn declare(&self, queues: Vec<QueueSpec>) -> Topology {
        let topology = self.topology(queues);
        let channel = self.channel().await;
        broker::declare(&channel, &topology, self.config.delivery_limit)
            .await
            .expect("topology declared");
        self.sandbox.remember(&topology, self.config.delivery_limit);
        topology
    }

    /// A channel on the test's connection.
    pub async fn channel(&self) -> lapin::Channel {
        self.broker
            .channel(&self.token)
            .await
            .expect("broker channel")
    }

    /// Publishes `message` on the bus with a fresh id; returns its metadata.
    pub async fn send<M: Message>(&self, message: &M) -> Metadata {
        let metadata = Metadata::new(M::TYPE.to_string(), "test");
        self.send_with(message, metadata.clone()).await;
        metadata
    }

    /// As [`Self::send`], for a body its type's schema refuses, sent on purpose by a
    /// hostile-path test ([`Self::send_deliberately_invalid_as`]).
    pub async fn send_deliberately_invalid<M: Message>(&self, message: &M) -> Metadata {
        let metadata = Metadata::new(M::TYPE.to_string(), "test");
        let body = contracts::encode(message).expect("encodes");
        let user = hub_portal::parties::legitimate_sender(
            &M::TYPE.to_string(),
            &body,
            hub_portal::parties::DEFAULT_PORTAL_USER,
        );
        self.send_envelope(
            user.as_deref(),
            &M::TYPE.to_string(),
            body,
            metadata.clone(),
            false,
        )
        .await;
        metadata
    }

    /// Publishes `message` on the bus with the given metadata (to re-send an id), as the party
    /// that legitimately sends it ([`hub_portal::parties::legitimate_sender`]): the portal, the desk its body names,
    /// or the hub's own user.
    pub async fn send_with<M: Message>(&self, message: &M, metadata: Metadata) {
        let body = contracts::encode(message).expect("encodes");
        let user = hub_portal::parties::legitimate_sender(
            &M::TYPE.to_string(),
            &body,
            hub_portal::parties::DEFAULT_PORTAL_USER,
        );
        self.send_raw_as(user.as_deref(), &M::TYPE.to_string(), body, metadata)
            .await;
    }

    /// Publishes a body of type `message_type` on the bus as broker user `user` (`None`: the
    /// hub's own), made on the local broker if missing. The body must conform to the type's
    /// published schema ([`hub_runtime::conformance`]): a test that sends a malformed one on
    /// purpose says so with [`Self::send_deliberately_invalid_as`].
    pub async fn send_raw_as(
        &self,
        user: Option<&str>,
        message_type: &str,
        body: Vec<u8>,
        metadata: Metadata,
    ) {
        self.send_envelope(user, message_type, body, metadata, true)
            .await;
    }

    /// As [`Self::send_raw_as`], without the conformance check: for a hostile-path test that
    /// sends a body its type's schema refuses (a wrong field, a bad number, not JSON), to show
    /// the hub refuses it.
    pub async fn send_deliberately_invalid_as(
        &self,
        user: Option<&str>,
        message_type: &str,
        body: Vec<u8>,
        metadata: Metadata,
    ) {
        self.send_envelope(user, message_type, body, metadata, false)
            .await;
    }

    async fn send_envelope(
        &self,
        user: Option<&str>,
        message_type: &str,
        body: Vec<u8>,
        metadata: Metadata,
        checked: bool,
    ) {
        let envelope = Envelope {
            exchange: self.topology(vec![]).bus_exchange(),
            routing_key: message_type.to_owned(),
            metadata,
            body,
        };
        let party = match user {
            Some(user) => Some(self.publisher_as(user).await),
            None => None,
        };
        let publisher = party.as_deref().unwrap_or(&self.publisher);
        let sent = if checked {
            publisher.publish(&envelope).await
        } else {
            publisher.publish_deliberately_invalid(&envelope).await
        };
        if let Err(e) = sent {
            // Taken out of the record: the test fails here, not again when it ends.
            let _ = hub_runtime::conformance::violations_in(self.config.namespace.as_str());
            panic!("{message_type} not sent: {e}");
        }
    }

    /// A publisher connected as party `user` (made on the local broker if missing).
    pub async fn publisher_as(&self, user: &str) -> Arc<Publisher> {
        let mut parties = self.parties.lock().await;
        if let Some(p) = parties.get(user) {
            return p.clone();
        }
        ensure_party_user(&self.config.amqp_url, user).await;
        let url = url_as(&self.config.amqp_url, user);
        let broker = Broker::connect(url.as_str(), "test party", self.token.clone())
            .await
            .expect("the party connects");
        let publisher = Arc::new(Publisher::new(broker, self.token.clone()));
        parties.insert(user.to_owned(), publisher.clone());
        publisher
    }

    /// Declares a queue that collects copies of the messages matching `patterns` from the bus.
    pub async fn observe(&self, name: &str, patterns: &[String]) -> Observer {
        let topology = self.topology(vec![]);
        let queue = topology.work_queue(name);
        let channel = self.channel().await;
        let mut args = FieldTable::default();
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString(LongString::from(b"quorum".to_vec())),
        );
        let durable = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        channel
            .queue_declare(queue.as_str().into(), durable, args)
            .await
            .expect("observer declared");
        for p in patterns {
            channel
                .queue_bind(
                    queue.as_str().into(),
                    topology.bus_exchange().into(),
                    p.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .expect("observer bound");
        }
        self.sandbox.remember_queue(queue.clone());
        Observer { channel, queue }
    }

    /// Runs a hub in this process with these registrations.
    pub fn spawn_hub(
        &self,
        components: Components,
        registrations: Vec<Registration>,
    ) -> RunningHub {
        self.spawn_plan(components, app::Plan::from(registrations))
    }

    /// Runs a hub in this process with a whole plan (registrations and background tasks).
    pub fn spawn_plan(&self, components: Components, plan: app::Plan) -> RunningHub {
        let token = CancellationToken::new();
        let config = self.config.clone();
        let t = token.clone();
        let task = tokio::spawn(async move { app::run_plan(&config, components, plan, t).await });
        RunningHub { token, task }
    }

    /// Environment variables that point a `hub`-like process at this test's namespace.
    pub fn process_env(&self) -> Vec<(String, String)> {
        let c = &self.config;
        let tiers: Vec<String> = c
            .retry_tiers
            .0
            .iter()
            .map(|t| format!("{}ms", t.delay.as_millis()))
            .collect();
        let mut env: Vec<(String, String)> = self
            .sandbox
            .env()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        env.extend([
            ("HUB_MAX_ATTEMPTS".into(), c.max_attempts.to_string()),
            ("HUB_RETRY_TIERS".into(), tiers.join(",")),
            (
                "HUB_POLL_INTERVAL".into(),
                format!("{}ms", c.poll_interval.as_millis()),
            ),
            ("HUB_DB_POOL".into(), "4".into()),
            ("HUB_DESKS".into(), TEST_DESKS.join(",")),
        ]);
        env
    }

    /// Remembers extra broker objects for cleanup.
    pub fn forget_later(&self, queue: String) {
        self.sandbox.remember_queue(queue);
    }

    /// The dead letters the keeper kept from queue `queue` (short name, or `unrouted`), in the
    /// order it kept them, once there are at least `n` (fails the test after `timeout`). The
    /// keeper runs in every hub (`Components::ALL`) and drains the `.dead` queues, so this is
    /// where tests read dead letters.
    pub async fn dead_letters(
        &self,
        queue: &str,
        n: usize,
        timeout: Duration,
    ) -> Vec<hub_ops::dlq::DeadLetter> {
        let what = format!("{n} dead letters of {queue} kept");
        wait_until(timeout, &what, || async {
            let ids: Vec<i64> =
                sqlx::query_scalar("SELECT id FROM dead_letters WHERE queue = $1 ORDER BY id")
                    .bind(queue)
                    .fetch_all(&self.pool)
                    .await
                    .expect("dead letters");
            if ids.len() < n {
                return None;
            }
            Some(
                hub_ops::dlq::get_many(&self.pool, &ids)
                    .await
                    .expect("dead letters"),
            )
        })
        .await
    }

    /// How many dead letters the keeper kept from queue `queue` (short name) so far.
    pub async fn dead_letter_count(&self, queue: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM dead_letters WHERE queue = $1")
            .bind(queue)
            .fetch_one(&self.pool)
            .await
            .expect("dead letters")
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        // The test's connection goes first; the sandbox (dropped after this) then removes the
        // namespace's queues and exchanges and the database, also when the test panicked. The
        // test's pool is not closed here (its connections belong to the test's runtime, which
        // the removal blocks); the forced DROP DATABASE ends them.
        self.token.cancel();
        // A body that did not conform to its published schema, sent in this test's namespace
        // by the test or by a hub it ran, fails the test (hub_runtime::conformance).
        let violations = hub_runtime::conformance::violations_in(self.config.namespace.as_str());
        if !violations.is_empty() {
            let list: Vec<String> = violations.iter().map(ToString::to_string).collect();
            let text = format!(
                "{} message(s) sent in this test do not conform to their published schema:\n  {}",
                list.len(),
                list.join("\n  ")
            );
            if std::thread::panicking() {
                eprintln!("{text}");
            } else {
                panic!("{text}");
            }
        }
    }
}

/// A hub running inside the test process.
#[derive(Debug)]
pub struct RunningHub {
    token: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl RunningHub {
    /// Drains and stops it; fails the test if it failed.
    pub async fn stop(self) {
        self.token.cancel();
        self.task
            .await
            .expect("hub task")
            .expect("hub ran and drained");
    }
}

/// A queue that collects copies of messages from the bus, read with `basic.get`.
#[derive(Debug)]
pub struct Observer {
    channel: lapin::Channel,
    /// Full queue name.
    pub queue: String,
}

/// One observed message.
#[derive(Debug, Clone)]
pub struct Observed {
    /// Its metadata.
    pub metadata: Metadata,
    /// Its body as JSON.
    pub body: serde_json::Value,
    /// Its raw properties (for headers).
    pub properties: lapin::BasicProperties,
}

impl Observer {
    /// Reads an existing queue (a dead-letter queue, say).
    pub async fn attach(env: &TestEnv, queue: String) -> Self {
        Self {
            channel: env.channel().await,
            queue,
        }
    }

    /// Takes `n` messages as they are, properties and raw body, or fails after `timeout`.
    pub async fn take_raw(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Vec<(lapin::BasicProperties, Vec<u8>)> {
        self.take_with(n, timeout, Self::get_raw).await
    }

    /// Takes messages until `n` were taken, or fails after `timeout`.
    pub async fn take(&self, n: usize, timeout: Duration) -> Vec<Observed> {
        self.take_with(n, timeout, Self::get).await
    }

    /// Takes messages until `expected` distinct message ids were seen, or fails after
    /// `timeout`; returns how many copies of each id arrived (more than one is a redelivery).
    pub async fn collect_ids(&self, expected: usize, timeout: Duration) -> HashMap<Uuid, usize> {
        let seen: Mutex<HashMap<Uuid, usize>> = Mutex::new(HashMap::new());
        let what = format!("{expected} distinct messages on {}", self.queue);
        wait_until(timeout, &what, || async {
            while let Some(m) = self.get().await {
                *seen
                    .lock()
                    .expect("lock")
                    .entry(m.metadata.message_id)
                    .or_default() += 1;
            }
            (seen.lock().expect("lock").len() >= expected).then_some(())
        })
        .await;
        seen.into_inner().expect("lock")
    }

    async fn take_with<'a, T, Fut>(
        &'a self,
        n: usize,
        timeout: Duration,
        get: impl Fn(&'a Self) -> Fut,
    ) -> Vec<T>
    where
        Fut: Future<Output = Option<T>>,
    {
        let got = Mutex::new(Vec::new());
        let what = format!("{n} messages on {}", self.queue);
        wait_until(timeout, &what, || async {
            while got.lock().expect("lock").len() < n {
                let Some(m) = get(self).await else { break };
                got.lock().expect("lock").push(m);
            }
            (got.lock().expect("lock").len() >= n).then_some(())
        })
        .await;
        got.into_inner().expect("lock")
    }

    async fn get_raw(&self) -> Option<(lapin::BasicProperties, Vec<u8>)> {
        let d = self
            .channel
            .basic_get(self.queue.as_str().into(), BasicGetOptions::default())
            .await
            .expect("basic.get")?;
        d.delivery
            .acker
            .ack(BasicAckOptions::default())
            .await
            .expect("ack");
        Some((d.delivery.properties, d.delivery.data))
    }

    /// Takes one message if there is one.
    pub async fn get(&self) -> Option<Observed> {
        let (properties, data) = self.get_raw().await?;
        let metadata = hub_runtime::broker::decode_properties(&properties).expect("hub metadata");
        let body = serde_json::from_slice(&data).unwrap_or(serde_json::Value::Null);
        Some(Observed {
            metadata,
            body,
            properties,
        })
    }

    /// How many messages wait in the queue now.
    pub async fn depth(&self) -> u32 {
        queue_depth(&self.channel, &self.queue).await
    }
}

/// How many ready messages wait in `queue`.
pub async fn queue_depth(channel: &lapin::Channel, queue: &str) -> u32 {
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(queue.into(), passive, FieldTable::default())
        .await
        .expect("queue exists")
        .message_count()
}

/// Shared state handlers in tests record into.
pub type Shared<T> = Arc<Mutex<T>>;

/// `TEST_DATABASE_TEMPLATE`: the test's database starts as a copy of that one instead of empty
/// (e.g. one an older `hub migrate` made, to run every test on a database migrated the old way;
/// the hub's migrations then take it as it is). Creating two copies of one template at the same
/// moment can be refused while the other copy reads it, so a refusal is tried again.
async fn copy_template(postgres_url: &str, database: &str, template: &str) {
    use sqlx::Executor;
    let create = format!("CREATE DATABASE {database} TEMPLATE {template}");
    let server = PgPool::connect(postgres_url)
        .await
        .expect("PostgreSQL is running (see README, Prerequisites)");
    // A refusal because another copy is reading the template is waited out, on the tests' one
    // wait (a condition with a deadline); any other error fails the test at once.
    wait_until(
        Duration::from_secs(60),
        "a copy of TEST_DATABASE_TEMPLATE",
        || {
            let (server, create) = (server.clone(), create.clone());
            async move {
                match server.execute(sqlx::AssertSqlSafe(create)).await.map(drop) {
                    Ok(_) => Some(()),
                    Err(e) if e.to_string().contains("being accessed") => None,
                    Err(e) => panic!("cannot copy TEST_DATABASE_TEMPLATE {template:?}: {e}"),
                }
            }
        },
    )
    .await;
    server.close().await;
}
