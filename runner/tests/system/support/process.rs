//! Services as separate `runner --pipeline` processes: start one with its stderr followed,
//! wait for a line, signal it, and stop it when the test ends.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::pipelines_dir;

/// A `runner --pipeline` process; killed when dropped.
pub struct Service {
    pub name: String,
    pub child: Child,
    lines: mpsc::Receiver<String>,
    pub log: Vec<String>,
}

impl Service {
    pub fn start(file: &str, database_url: &str, brokers: Option<&str>) -> Service {
        Service::start_with_env(file, database_url, brokers, &[])
    }

    pub fn start_with_env(file: &str, database_url: &str, brokers: Option<&str>, env: &[(&str, &str)]) -> Service {
        let mut command = Command::new(env!("CARGO_BIN_EXE_runner"));
        command.envs(env.iter().copied());
        command
            .arg("--pipeline")
            .arg(pipelines_dir().join(file))
            .args(["--database-url", database_url, "--listen", "127.0.0.1:0"])
            .env("RUNNER_BROKER__SESSION_TIMEOUT", "6s")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(brokers) = brokers {
            command.args(["--brokers", brokers]);
        }
        let mut child = command.spawn().expect("start runner");
        let stderr = child.stderr.take().unwrap();
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Service { name: file.to_string(), child, lines, log: Vec::new() }
    }

    /// Waits for a stderr line starting with `prefix` and returns the rest of it.
    pub fn wait_for(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
                self.log.push(line.clone());
                if let Some(rest) = line.strip_prefix(prefix) {
                    return rest.trim().to_string();
                }
            }
        }
        panic!("{}: no `{prefix}` line; log:\n{}", self.name, self.log.join("\n"));
    }

    pub fn drain(&mut self) {
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100)) {
            self.log.push(line);
        }
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([signal, &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// Sends SIGTERM and returns the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal("-TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.drain();
                return status;
            }
            assert!(Instant::now() < deadline, "{} did not stop within 30 s of SIGTERM", self.name);
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
