//! A RabbitMQ node and a PostgreSQL server of the chaos run's own, on free loopback ports with
//! their data in a temporary directory, so the run can restart them (a broker restart, a
//! database crash) without touching the servers anything else on the machine uses. Both are
//! stopped and their directories removed when dropped.
//!
//! They run the installed servers: RabbitMQ's `rabbitmq-server` script (`RABBITMQ_SERVER`, else
//! Debian's `/usr/lib/rabbitmq/bin/rabbitmq-server`, else on `PATH`) and PostgreSQL's `initdb`
//! and `pg_ctl` (`PG_BINDIR`, else the newest `/usr/lib/postgresql/*/bin`, else on `PATH`).
//! PostgreSQL refuses to run as root, so as root its commands run as the `postgres` user.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

/// How long a server may take to start on a loaded two-core machine.
const START_TIMEOUT: Duration = Duration::from_secs(120);

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn temp_dir(what: &str) -> anyhow::Result<PathBuf> {
    let id = &uuid::Uuid::new_v4().simple().to_string()[..10];
    let dir = std::env::temp_dir().join(format!("hub-chaos-{what}-{id}"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// True when this process runs as root (PostgreSQL's servers refuse to).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0")
    })
}

/// The last lines of a server's output file, for error messages.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// A private RabbitMQ node.
#[derive(Debug)]
pub struct PrivateRabbit {
    dir: PathBuf,
    node: String,
    port: u16,
    dist_port: u16,
    /// The AMQPS listener's port, when the node has one.
    tls_port: Option<u16>,
    child: Option<std::process::Child>,
}

/// The files of a node's AMQPS listener.
#[derive(Debug, Clone, Copy)]
pub struct RabbitTls<'a> {
    /// The server's PEM certificate (its names must cover `127.0.0.1`).
    pub cert: &'a Path,
    /// Its PEM key.
    pub key: &'a Path,
    /// The CA whose client certificates are required; `None` asks for none.
    pub client_ca: Option<&'a Path>,
}

impl PrivateRabbit {
    /// Starts a fresh node and waits until it takes AMQP connections.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_inner(None).await
    }

    /// [`Self::start`], the node also listening for AMQPS ([`Self::tls_url`]) with `tls`.
    pub async fn start_with_tls(tls: RabbitTls<'_>) -> anyhow::Result<Self> {
        Self::start_inner(Some(tls)).await
    }

    /// The node's AMQPS URL, when it was started with TLS.
    pub fn tls_url(&self) -> Option<String> {
        self.tls_port
            .map(|port| format!("amqps://guest:guest@127.0.0.1:{port}/%2f"))
    }

    async fn start_inner(tls: Option<RabbitTls<'_>>) -> anyhow::Result<Self> {
        let dir = temp_dir("rabbitmq")?;
        for d in ["log", "mnesia"] {
            std::fs::create_dir_all(dir.join(d))?;
        }
        std::fs::write(dir.join("enabled_plugins"), "[].\n")?;
        let port = free_port()?;
        let dist_port = free_port()?;
        let mut conf = format!("listeners.tcp.default = 127.0.0.1:{port}\nloopback_users = none\n");
        let mut tls_port = None;
        if let Some(tls) = tls {
            let p = free_port()?;
            tls_port = Some(p);
            conf.push_str(&format!(
                "listeners.ssl.default = 127.0.0.1:{p}\nssl_options.certfile = {}\nssl_options.keyfile = {}\n",
                tls.cert.display(),
                tls.key.display()
            ));
            if let Some(ca) = tls.client_ca {
                conf.push_str(&format!(
                    "ssl_options.cacertfile = {}\nssl_options.verify = verify_peer\nssl_options.fail_if_no_peer_cert = true\n",
                    ca.display()
                ));
            }
        }
        std::fs::write(dir.join("rabbitmq.conf"), conf)?;
        let id = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("hub-chaos")
            .to_owned();
        let mut node = Self {
            dir,
            node: format!("{id}@localhost"),
            port,
            dist_port,
            tls_port,
            child: None,
        };
        node.boot().await?;
        Ok(node)
    }

    /// Adds the broker users of the parties the lab plays (the portal and the lab's desks) on
    /// this node, with [`crate::parties::PARTY_PASSWORD`] and their least permissions, so that
    /// they log in here as on the local broker (`rabbitmqctl -n <node>`).
    pub fn add_party_users(&self) -> anyhow::Result<()> {
        use hub_portal::agency;
        let mut users = vec![(
            hub_portal::parties::DEFAULT_PORTAL_USER.to_owned(),
            agency::portal_permissions(),
        )];
        users.extend(
            crate::stage::LAB_DESKS
                .iter()
                .map(|d| (agency::desk_user(d), agency::desk_permissions(d))),
        );
        // The CLI beside the node's own script: it runs as this user, with this user's Erlang
        // cookie, as the node does (the packaged wrapper would switch users).
        let ctl = agency::Rabbitmqctl::on_node(Self::cli(), &self.node);
        for (user, permissions) in users {
            ctl.ensure_user(&user, crate::parties::PARTY_PASSWORD, permissions, "/")?;
        }
        Ok(())
    }

    /// The node's AMQP URL.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    fn script() -> PathBuf {
        if let Ok(p) = std::env::var("RABBITMQ_SERVER") {
            return p.into();
        }
        let debian = Path::new("/usr/lib/rabbitmq/bin/rabbitmq-server");
        if debian.exists() {
            return debian.into();
        }
        "rabbitmq-server".into()
    }

    fn cli() -> PathBuf {
        let beside = Self::script().with_file_name("rabbitmqctl");
        if beside.exists() {
            beside
        } else {
            "rabbitmqctl".into()
        }
    }

    async fn boot(&mut self) -> anyhow::Result<()> {
        let out = std::fs::File::create(self.dir.join("server.out"))?;
        let d = &self.dir;
        let child = Command::new(Self::script())
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("enabled_plugins"))
            .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq.conf"))
            .env("RABBITMQ_PID_FILE", d.join("pid"))
            .current_dir(d)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| {
                format!(
                    "cannot run {}: install RabbitMQ or set RABBITMQ_SERVER to its rabbitmq-server script",
                    Self::script().display()
                )
            })?;
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                anyhow::bail!(
                    "the private RabbitMQ node exited with {status} while starting:\n{}",
                    tail(&self.dir.join("server.out"))
                );
            }
            let props = lapin::ConnectionProperties::default();
            if let Ok(c) = lapin::Connection::connect(&self.url(), props).await {
                let _ = c.close(200, "ready check".into()).await;
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the private RabbitMQ node did not start within {START_TIMEOUT:?}:\n{}",
                tail(&self.dir.join("server.out"))
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Stops the node (SIGTERM to the Erlang VM) and waits until it has exited; its data stays.
    fn stop(&mut self) {
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
        if pid != child.id() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }

    /// Stops the node, waits `down`, and starts it again on the same port with the same data.
    pub async fn restart(&mut self, down: Duration) -> anyhow::Result<()> {
        tokio::task::block_in_place(|| self.stop());
        tokio::time::sleep(down).await;
        self.boot().await
    }
}

impl Drop for PrivateRabbit {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A private PostgreSQL server.
#[derive(Debug)]
pub struct PrivatePostgres {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
    running: bool,
    /// `-c name=value` options: `ssl=on …` when the server takes TLS connections, and the
    /// settings it was started with.
    options: String,
}

impl PrivatePostgres {
    /// Creates a cluster (`initdb`, trust authentication on loopback) and starts it.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_inner(None, &[]).await
    }

    /// [`Self::start`] with server settings (`-c name=value` each), e.g.
    /// `("shared_preload_libraries", "pg_stat_statements")`.
    pub async fn start_with_settings(settings: &[(&str, &str)]) -> anyhow::Result<Self> {
        Self::start_inner(None, settings).await
    }

    /// [`Self::start`], the server also taking TLS connections with the PEM certificate `cert`
    /// and key `key` (copied into its directory; plain connections are still taken).
    pub async fn start_with_tls(cert: &Path, key: &Path) -> anyhow::Result<Self> {
        Self::start_inner(Some((cert, key)), &[]).await
    }

    async fn start_inner(
        tls: Option<(&Path, &Path)>,
        settings: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let dir = temp_dir("postgres")?;
        let as_postgres = is_root();
        let mut pg = Self {
            bin: Self::bindir()?,
            port: free_port()?,
            as_postgres,
            running: false,
            options: settings
                .iter()
                .map(|(name, value)| format!(" -c {name}={value}"))
                .collect(),
            dir,
        };
        if let Some((cert, key)) = tls {
            let (server_cert, server_key) = (pg.dir.join("server.crt"), pg.dir.join("server.key"));
            std::fs::copy(cert, &server_cert).context("copying the server certificate")?;
            std::fs::copy(key, &server_key).context("copying the server key")?;
            // PostgreSQL refuses a key others may read.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&server_key, std::fs::Permissions::from_mode(0o600))
                .context("chmod of the server key")?;
            pg.options += &format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                server_cert.display(),
                server_key.display()
            );
        }
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&pg.dir)
                .status()
                .context("chown of the private PostgreSQL directory")?;
            anyhow::ensure!(status.success(), "chown postgres {}", pg.dir.display());
        }
        let data = pg.dir.join("data");
        pg.run(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "--auth=trust".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
                "--no-sync".as_ref(),
            ],
        )
        .await?;
        pg.boot().await?;
        Ok(pg)
    }

    /// The URL of database `hub` on the server (the hub creates it).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/hub", self.port)
    }

    fn bindir() -> anyhow::Result<PathBuf> {
        if let Ok(p) = std::env::var("PG_BINDIR") {
            return Ok(p.into());
        }
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter_map(|e| {
                        let v = e.file_name().to_str()?.parse::<u32>().ok()?;
                        Some((v, e.path().join("bin")))
                    })
                    .filter(|(_, bin)| bin.join("initdb").exists())
                    .collect()
            })
            .unwrap_or_default();
        versions.sort();
        Ok(versions.pop().map_or_else(PathBuf::new, |(_, bin)| bin))
    }

    /// Runs one of PostgreSQL's programs (as `postgres` when we are root).
    async fn run(&self, program: &str, args: &[&std::ffi::OsStr]) -> anyhow::Result<()> {
        let exe = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut c = tokio::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            tokio::process::Command::new(&exe)
        };
        let out = command
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .await
            .with_context(|| {
                format!(
                    "cannot run {}: install PostgreSQL's server or set PG_BINDIR to its bin directory",
                    exe.display()
                )
            })?;
        anyhow::ensure!(
            out.status.success(),
            "{program} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }

    async fn boot(&mut self) -> anyhow::Result<()> {
        let data = self.dir.join("data");
        let log = self.dir.join("server.log");
        // fsync off: a killed server loses nothing the OS has (the faults here are process
        // crashes, not power cuts), and the run is not slowed by the disk.
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c max_connections=300 -c fsync=off{}",
            self.port,
            self.dir.display(),
            self.options
        );
        let timeout = START_TIMEOUT.as_secs().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-o".as_ref(),
                options.as_ref(),
                "-t".as_ref(),
                timeout.as_ref(),
                "-w".as_ref(),
                "start".as_ref(),
            ],
        )
        .await
        .with_context(|| format!("the private PostgreSQL server:\n{}", tail(&log)))?;
        self.running = true;
        Ok(())
    }

    /// Kills the server as a crash would (`pg_ctl stop -m immediate`: no checkpoint, recovery
    /// from the WAL at the next start), waits `down`, and starts it again.
    pub async fn crash_restart(&mut self, down: Duration) -> anyhow::Result<()> {
        self.stop_with("immediate").await?;
        tokio::time::sleep(down).await;
        self.boot().await
    }

    async fn stop_with(&mut self, mode: &str) -> anyhow::Result<()> {
        let data = self.dir.join("data");
        self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-m".as_ref(),
                mode.as_ref(),
                "-w".as_ref(),
                "stop".as_ref(),
            ],
        )
        .await?;
        self.running = false;
        Ok(())
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        if self.running {
            let exe = self.bin.join("pg_ctl");
            let data = self.dir.join("data");
            let mut c = if self.as_postgres {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(&exe);
                c
            } else {
                Command::new(&exe)
            };
            let _ = c
                .arg("-D")
                .arg(&data)
                .args(["-m", "fast", "-w", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
