//! The broker a test runs against: the embedded one (librdkafka's mock cluster, hosted by the
//! runner), or tansu, an independently written Kafka-protocol broker, one private instance
//! per test started through `scripts/tansu` (memory storage: a restart loses every topic,
//! group and producer id).
//!
//! A tansu test needs `RUNNER_TEST_TANSU`, the path of the tansu binary (`scripts/test` sets
//! it from `scripts/tansu install`). Without it the test fails: it never skips.

use std::process::Command;

use super::{repository, System};

/// Which broker a test body runs against.
pub enum TestBroker {
    /// The broker hosted inside the runner (`brokers = "embedded"`).
    Embedded,
    /// A private tansu instance.
    Tansu(Tansu),
}

impl TestBroker {
    /// A fresh tansu instance.
    pub fn tansu() -> TestBroker {
        TestBroker::Tansu(Tansu::start())
    }

    /// What the pipelines' `brokers` setting should say: `embedded` or tansu's address.
    pub fn brokers(&self) -> String {
        match self {
            TestBroker::Embedded => "embedded".to_string(),
            TestBroker::Tansu(tansu) => tansu.address().to_string(),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            TestBroker::Embedded => "embedded",
            TestBroker::Tansu(_) => "tansu",
        }
    }

    /// Takes the broker away from `system`: the embedded node goes down, tansu stops.
    pub fn take_down(&self, system: &System) {
        match self {
            TestBroker::Embedded => embedded(system).set_up(false).expect("take the embedded broker down"),
            TestBroker::Tansu(tansu) => tansu.stop(),
        }
    }

    /// Brings the broker back: the embedded node with its topics, groups and records; tansu
    /// empty, as a broker that lost its state.
    pub fn bring_back(&self, system: &System) {
        match self {
            TestBroker::Embedded => embedded(system).set_up(true).expect("bring the embedded broker back"),
            TestBroker::Tansu(tansu) => tansu.start_again(),
        }
    }
}

fn embedded(system: &System) -> &runner::transport::EmbeddedBroker {
    system.running.embedded_broker.as_deref().expect("the system hosts an embedded broker")
}

/// One tansu instance of this test, stopped when dropped.
pub struct Tansu {
    name: String,
    port: u16,
    address: String,
}

impl Tansu {
    /// Starts an instance with memory storage on a free port of 127.0.0.1.
    pub fn start() -> Tansu {
        let name = format!("test-{}", uuid::Uuid::new_v4().simple());
        let address = tansu_script(&["start", &name]);
        let port = address.rsplit(':').next().and_then(|p| p.parse().ok()).expect("tansu's address has a port");
        Tansu { name, port, address }
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// Stops the broker: clients see refused connections.
    pub fn stop(&self) {
        tansu_script(&["stop", &self.name]);
    }

    /// Starts the broker again on the same port, empty: the broker lost its state.
    pub fn start_again(&self) {
        let address = tansu_script(&["start", &self.name, &self.port.to_string()]);
        assert_eq!(address, self.address);
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = Command::new(repository().join("scripts/tansu")).args(["stop", &self.name]).status();
    }
}

/// Runs `scripts/tansu ARGS…` with the binary from `RUNNER_TEST_TANSU`; its output, trimmed.
fn tansu_script(args: &[&str]) -> String {
    let binary = std::env::var("RUNNER_TEST_TANSU").unwrap_or_else(|_| {
        panic!(
            "RUNNER_TEST_TANSU is not set: this test runs against tansu. Run scripts/test, or \
             `export RUNNER_TEST_TANSU=$(scripts/tansu install)` and run it again"
        )
    });
    let output = Command::new(repository().join("scripts/tansu"))
        .args(args)
        .env("TANSU_BIN", &binary)
        .output()
        .expect("scripts/tansu runs");
    assert!(output.status.success(), "scripts/tansu {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("UTF-8").trim().to_string()
}
