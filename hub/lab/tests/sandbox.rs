//! The sandbox the lab and the tests share, against the local RabbitMQ and PostgreSQL: what it
//! was told about is gone after [`Sandbox::remove`], and after a drop without one (a test that
//! panicked).

use hub_lab::sandbox::{Sandbox, Servers};
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;

/// A sandbox whose database exists and that remembers one declared queue; returns the queue.
async fn occupied(sandbox: &Sandbox) -> String {
    let migrator = hub_runtime::store::migrator(&[]).expect("the runtime's migrations");
    let pool = hub_runtime::store::connect(&sandbox.database_url, 1, &migrator)
        .await
        .expect("PostgreSQL is running (see README, Prerequisites)");
    pool.close().await;
    let queue = format!("{}.probe", sandbox.namespace);
    let conn = connection(sandbox).await;
    let channel = conn.create_channel().await.expect("a channel");
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("the queue declared");
    let _ = conn.close(200, "declared".into()).await;
    sandbox.remember_queue(queue.clone());
    queue
}

async fn connection(sandbox: &Sandbox) -> lapin::Connection {
    hub_runtime::broker::connect_first(
        &sandbox.servers().amqp_url,
        lapin::ConnectionProperties::default(),
    )
    .await
    .expect("RabbitMQ is running (see README, Prerequisites)")
}

/// Fails unless database `name` and queue `queue` are both gone.
async fn assert_gone(servers: &Servers, name: &str, queue: &str) {
    let admin = sqlx::PgPool::connect(&servers.postgres_url)
        .await
        .expect("PostgreSQL");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_one(&admin)
        .await
        .expect("the database list");
    admin.close().await;
    assert_eq!(left, 0, "database {name} is still there");
    let conn = hub_runtime::broker::connect_first(
        &servers.amqp_url,
        lapin::ConnectionProperties::default(),
    )
    .await
    .expect("RabbitMQ");
    let channel = conn.create_channel().await.expect("a channel");
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let declared = channel
        .queue_declare(queue.into(), passive, FieldTable::default())
        .await;
    let _ = conn.close(200, "checked".into()).await;
    let error = declared.expect_err("the queue is gone").to_string();
    assert!(
        error.contains("404") || error.contains("NOT_FOUND"),
        "{queue}: {error}"
    );
}

#[tokio::test]
async fn remove_deletes_the_remembered_queues_and_drops_the_database() {
    let servers = Servers::for_tests();
    let sandbox = Sandbox::new(&servers, "t", "hubtest").expect("a sandbox");
    let queue = occupied(&sandbox).await;
    sandbox.remove().await;
    assert_gone(&servers, &sandbox.database, &queue).await;
}

#[tokio::test]
async fn a_dropped_sandbox_removes_itself() {
    let servers = Servers::for_tests();
    let sandbox = Sandbox::new(&servers, "t", "hubtest").expect("a sandbox");
    let queue = occupied(&sandbox).await;
    let database = sandbox.database.clone();
    drop(sandbox);
    assert_gone(&servers, &database, &queue).await;
}
