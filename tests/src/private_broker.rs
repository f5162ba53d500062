//! A RabbitMQ node of the test's own, on free ports, with its data in a temporary directory: a
//! test can stop and start it (a broker restart) without disturbing the tests that share the
//! machine's broker.
//!
//! It runs the `rabbitmq-server` script of the installed RabbitMQ as the current user:
//! `RABBITMQ_SERVER` names it, else `/usr/lib/rabbitmq/bin/rabbitmq-server` (Debian's
//! package), else `rabbitmq-server` on `PATH`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a node may take to start on a loaded two-core machine.
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// A private RabbitMQ node; stopped and its directory removed when dropped.
#[derive(Debug)]
pub struct PrivateBroker {
    dir: PathBuf,
    node: String,
    port: u16,
    dist_port: u16,
    child: Option<Child>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn server_script() -> PathBuf {
    if let Ok(p) = std::env::var("RABBITMQ_SERVER") {
        return p.into();
    }
    let debian = Path::new("/usr/lib/rabbitmq/bin/rabbitmq-server");
    if debian.exists() {
        return debian.into();
    }
    "rabbitmq-server".into()
}

impl PrivateBroker {
    /// Starts a fresh node and waits until it accepts AMQP connections.
    pub async fn start() -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
        let dir = std::env::temp_dir().join(format!("hubtest-rabbitmq-{id}"));
        std::fs::create_dir_all(dir.join("log")).expect("node directory");
        std::fs::create_dir_all(dir.join("mnesia")).expect("node directory");
        std::fs::write(dir.join("enabled_plugins"), "[].\n").expect("plugins file");
        let port = free_port();
        // The distribution port is AMQP port + 20000 by default; pick one that is free instead.
        let dist_port = free_port();
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!("listeners.tcp.default = 127.0.0.1:{port}\nloopback_users = none\n"),
        )
        .expect("config file");
        let mut broker = Self {
            dir,
            node: format!("hubtest-{id}@localhost"),
            port,
            dist_port,
            child: None,
        };
        broker.boot().await;
        broker
    }

    /// The AMQP URL of the node.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    async fn boot(&mut self) {
        let log = std::fs::File::create(self.dir.join("server.out")).expect("server log");
        let child = Command::new(server_script())
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", self.dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", self.dir.join("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", self.dir.join("enabled_plugins"))
            .env("RABBITMQ_CONFIG_FILE", self.dir.join("rabbitmq.conf"))
            .env("RABBITMQ_PID_FILE", self.dir.join("pid"))
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {} ({e}): install RabbitMQ or set RABBITMQ_SERVER to its rabbitmq-server script",
                    server_script().display()
                )
            });
        self.child = Some(child);
        // Ready means the AMQP handshake works, not merely that the port is open.
        let url = self.url();
        let dir = self.dir.clone();
        let child = self.child.as_mut().map(std::sync::Mutex::new);
        crate::wait_until(
            START_TIMEOUT,
            "the private RabbitMQ node to start",
            || async {
                if let Some(child) = &child
                    && let Ok(Some(status)) = child.lock().expect("lock").try_wait()
                {
                    panic!(
                        "the private RabbitMQ node exited with {status} while starting:\n{}",
                        output_tail(&dir)
                    );
                }
                let c = lapin::Connection::connect(&url, lapin::ConnectionProperties::default())
                    .await
                    .ok()?;
                let _ = c.close(200, "ready check".into()).await;
                Some(())
            },
        )
        .await;
    }

    /// Stops the node gracefully (SIGTERM) and waits until it has exited. Its data stays.
    /// (Blocking: it also runs in `Drop`. A stop takes about a second.)
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // The script execs the Erlang VM, which writes its own pid: signal that one.
        let pid = std::fs::read_to_string(self.dir.join("pid"))
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok())
            .unwrap_or_else(|| child.id());
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        // The VM may not be the script's own process on every platform.
        if pid != child.id() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }

    /// Stops the node and starts it again on the same port with the same data.
    /// Needs a multi-threaded test runtime (the stop blocks its thread).
    pub async fn restart(&mut self) {
        tokio::task::block_in_place(|| self.stop());
        self.boot().await;
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The last lines of the node's output, for failure messages.
fn output_tail(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("server.out")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
