//! A hub running as a separate operating-system process, so that a test can kill it with
//! SIGKILL or stop it with SIGTERM, and run several at once.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::TestEnv;

/// A child hub process; killed (SIGKILL) when dropped if it is still running.
#[derive(Debug)]
pub struct HubProcess {
    child: Child,
    log: PathBuf,
    name: String,
}

impl HubProcess {
    /// Starts `binary run <args...>` pointed at `env`'s namespace and database. Its stderr goes
    /// to a log file, shown when the process does something the test did not expect.
    pub fn run(env: &TestEnv, binary: &Path, name: &str, args: &[&str]) -> Self {
        let log = std::env::temp_dir().join(format!("{}-{name}.log", env.config.namespace));
        let stderr = File::create(&log).expect("process log file");
        let child = Command::new(binary)
            .arg("run")
            .args(args)
            .envs(env.process_env())
            .env(
                "RUST_LOG",
                std::env::var("TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("the hub binary starts");
        Self {
            child,
            log,
            name: name.to_owned(),
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills it with SIGKILL: no drain, no flush, no goodbye.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL sent");
        self.child.wait().expect("killed process reaped");
    }

    /// Sends SIGTERM and waits (up to `timeout`) for it to drain and exit; returns its status.
    pub fn terminate(mut self, timeout: Duration) -> ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill(1) runs");
        assert!(sent.success(), "SIGTERM could not be sent to {}", self.name);
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {timeout:?} of SIGTERM; its log:\n{}",
                self.name,
                self.log_tail()
            );
            // The poll interval of this wait for the exit, which has a deadline.
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Fails the test (with the log) if the process has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("wait") {
            panic!(
                "{} exited early with {status}; its log:\n{}",
                self.name,
                self.log_tail()
            );
        }
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_file(&self.log);
    }
}
