//! The services as separate `runner --pipeline` processes on PostgreSQL, talking through a
//! Kafka-protocol broker in another process: an order survives a service killed with -9,
//! and SIGTERM stops every service cleanly.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{pipelines_dir, scalar, TempPg};

struct Service {
    name: String,
    child: Child,
    lines: mpsc::Receiver<String>,
    log: Vec<String>,
}

impl Service {
    fn start(file: &str, database_url: &str, brokers: Option<&str>) -> Service {
        let mut command = Command::new(env!("CARGO_BIN_EXE_runner"));
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
    fn wait_for(&mut self, prefix: &str) -> String {
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

    fn drain(&mut self) {
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100)) {
            self.log.push(line);
        }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([signal, &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// Sends SIGTERM and returns the exit status.
    fn terminate(&mut self) -> std::process::ExitStatus {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_as_processes_survive_a_kill_and_stop_on_sigterm() {
    let db = TempPg::create("chaos_processes").await;
    // The relay hosts the broker; the others reach it by its address like any Kafka cluster.
    let mut relay = Service::start("outbox-relay.toml", &db.url, Some("embedded"));
    let brokers = relay.wait_for("embedded broker:");
    relay.wait_for("listening on");
    let mut services = vec![
        Service::start("order-api.toml", &db.url, Some(&brokers)),
        Service::start("orchestrator.toml", &db.url, Some(&brokers)),
        Service::start("payment.toml", &db.url, Some(&brokers)),
        Service::start("inventory.toml", &db.url, Some(&brokers)),
        Service::start("shipping.toml", &db.url, Some(&brokers)),
    ];
    let api = services[0].wait_for("listening on");
    for service in &mut services[1..] {
        service.wait_for("listening on");
    }

    let client = reqwest::Client::new();
    let mut ids = Vec::new();
    for i in 0..60 {
        if i == 20 {
            // Kill payment-svc outright in the middle of the load, then bring it back.
            services[2].signal("-KILL");
            let _ = services[2].child.wait();
            services[2] = Service::start("payment.toml", &db.url, Some(&brokers));
            services[2].wait_for("listening on");
        }
        let country = if i % 6 == 5 { "ZZ" } else { "DE" };
        let body = json!({"customerId": format!("c-{i}"), "currency": "EUR",
            "items": [{"sku": "SKU-2", "quantity": 1, "unitPrice": 500 + i}], "shipTo": {"country": country}});
        let response = client.post(format!("{api}/api/orders")).json(&body).send().await.unwrap();
        assert_eq!(response.status(), 202);
        ids.push(response.json::<serde_json::Value>().await.unwrap()["orderId"].as_str().unwrap().to_string());
    }

    let store =
        runner::store::Store::connect(&runner::config::model::StoreConfig { url: db.url.clone(), max_connections: 2 })
            .await
            .unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let pending = scalar(&store, "SELECT COUNT(*) FROM orders WHERE status = 'PENDING'").await;
        if pending == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{pending} orders still PENDING");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(scalar(&store, "SELECT COUNT(*) FROM orders").await, 60);
    assert_eq!(scalar(&store, "SELECT COUNT(*) FROM orders WHERE status = 'FAILED'").await, 0);
    let charged = scalar(&store, "SELECT SUM(amount) FROM payments WHERE charged_at_ms IS NOT NULL").await;
    let refunded = scalar(&store, "SELECT SUM(amount) FROM payments WHERE refunded_at_ms IS NOT NULL").await;
    let completed = scalar(&store, "SELECT SUM(total) FROM orders WHERE status = 'COMPLETED'").await;
    assert_eq!(charged - refunded, completed);
    let shipped = scalar(&store, "SELECT COUNT(*) FROM orders WHERE status = 'COMPLETED'").await;
    assert_eq!(1_000_000 - scalar(&store, "SELECT available FROM stock WHERE sku = 'SKU-2'").await, shipped);
    assert_eq!(scalar(&store, "SELECT COUNT(*) FROM orders WHERE status = 'CANCELLED'").await, 10, "the ZZ orders");
    store.close().await;

    // SIGTERM: each service finishes, commits and exits 0.
    for service in services.iter_mut().chain(std::iter::once(&mut relay)) {
        let status = service.terminate();
        assert!(status.success(), "{} exited with {status}; log:\n{}", service.name, service.log.join("\n"));
        assert!(service.log.iter().any(|l| l.contains("shutdown requested")), "{}: no shutdown line", service.name);
    }
    drop(services);
    drop(relay);
    db.drop_database().await;
}
