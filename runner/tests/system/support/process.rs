//! The `runner` binary as a separate process: a service (`runner --pipeline`, `runner up`)
//! with its stderr followed, waited for, signalled and stopped when the test ends; and a
//! command run to its end with its output.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::pipelines_dir;

/// A `runner` process; killed when dropped.
pub struct Service {
    pub name: String,
    pub child: Child,
    lines: mpsc::Receiver<String>,
    pub log: Vec<String>,
}

impl Service {
    /// `runner --pipeline pipelines/FILE` (a shipped file) on `database_url`.
    pub fn start(file: &str, database_url: &str, brokers: Option<&str>) -> Service {
        Service::start_with_env(file, database_url, brokers, &[])
    }

    pub fn start_with_env(file: &str, database_url: &str, brokers: Option<&str>, env: &[(&str, &str)]) -> Service {
        Service::pipeline(&pipelines_dir().join(file), database_url, brokers, env)
    }

    /// `runner --pipeline PATH` on `database_url`, listening on a free port, with a short
    /// consumer-group session timeout and `info` logs unless `env` says otherwise.
    pub fn pipeline(path: &Path, database_url: &str, brokers: Option<&str>, env: &[(&str, &str)]) -> Service {
        let mut args: Vec<&OsStr> = vec![
            "--pipeline".as_ref(),
            path.as_os_str(),
            "--database-url".as_ref(),
            database_url.as_ref(),
            "--listen".as_ref(),
            "127.0.0.1:0".as_ref(),
        ];
        if let Some(brokers) = brokers {
            args.extend::<[&OsStr; 2]>(["--brokers".as_ref(), brokers.as_ref()]);
        }
        let env = [[("RUNNER_BROKER__SESSION_TIMEOUT", "6s"), ("RUST_LOG", "info")].as_slice(), env].concat();
        let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        Service::runner(&name, &args, &env)
    }

    /// `runner ARGS…` with `env` added: stdout discarded, stderr followed line by line.
    pub fn runner(name: &str, args: &[&OsStr], env: &[(&str, &str)]) -> Service {
        let mut child = Command::new(env!("CARGO_BIN_EXE_runner"))
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start runner");
        let stderr = child.stderr.take().unwrap();
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Service { name: name.to_string(), child, lines, log: Vec::new() }
    }

    /// Waits for a stderr line starting with `prefix` and returns the rest of it.
    pub fn wait_for(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(line) = self.next_line(Duration::from_millis(200)) {
                if let Some(rest) = line.strip_prefix(prefix) {
                    return rest.trim().to_string();
                }
            }
        }
        panic!("{}: no `{prefix}` line; log:\n{}", self.name, self.log.join("\n"));
    }

    /// The next stderr line within `timeout`, also kept in `log`.
    pub fn next_line(&mut self, timeout: Duration) -> Option<String> {
        let line = self.lines.recv_timeout(timeout).ok()?;
        self.log.push(line.clone());
        Some(line)
    }

    pub fn drain(&mut self) {
        while self.next_line(Duration::from_millis(100)).is_some() {}
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([signal, &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// Kills the process outright (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Sends SIGTERM and returns the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal("-TERM");
        self.wait_exit(Duration::from_secs(30))
    }

    /// Waits for the process to end (by itself or after a signal); returns its exit status.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.drain();
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} still running after {limit:?}; log:\n{}",
                self.name,
                self.log.join("\n")
            );
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

/// What a command printed and how it ended.
pub struct Outcome {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    pub fn code(&self) -> i32 {
        self.status.code().expect("exit code")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("{e}: not JSON:\n{}\n{}", self.stdout, self.stderr))
    }
}

/// Runs `runner ARGS…` to its end in the crate's directory (so `../pipelines` is the shipped
/// set), without the caller's RUNNER_* settings and with logging off.
pub fn run(args: &[impl AsRef<OsStr>]) -> Outcome {
    let output = Command::new(env!("CARGO_BIN_EXE_runner"))
        .args(args.iter().map(AsRef::as_ref))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("RUNNER_BROKERS")
        .env_remove("RUNNER_DATABASE_URL")
        .env_remove("RUNNER_LISTEN")
        .env("RUST_LOG", "off")
        .output()
        .expect("the runner binary starts");
    Outcome {
        status: output.status,
        stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
