//! A real Prometheus (Debian's `prometheus` package) scrapes the running system under load,
//! with chaos, a canary and a reload going on, and evaluates the generated SLO rules: every
//! query of every dashboard panel in `dashboards/grafana/` returns data.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{append, edit, repository, shipped_copy, simple_order, System, TempPg};

/// The Prometheus process of the test, stopped when dropped.
struct Prometheus {
    child: Child,
    base: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Prometheus's config: the rules, and the runner as its one target once there is one.
fn write_prometheus_config(dir: &Path, rules: &Path, target: Option<&str>) {
    let scrape = match target {
        Some(target) => format!(
            "scrape_configs:\n  - job_name: chaos-symphony\n    static_configs:\n      - targets: [\"{target}\"]\n"
        ),
        None => "scrape_configs: []\n".to_owned(),
    };
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\n{scrape}",
        rules.display()
    );
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
}

/// Starts Prometheus with no target yet and waits until it answers `/-/ready`. A port picked
/// free can be taken by a parallel test before Prometheus binds it; then Prometheus exits and
/// the next attempt takes another port.
async fn start_prometheus(dir: &Path, rules: &Path) -> Prometheus {
    write_prometheus_config(dir, rules, None);
    let client = reqwest::Client::new();
    for _attempt in 0..5 {
        let port = free_port();
        let mut child = Command::new("prometheus")
            .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.enable-lifecycle")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start prometheus ({e}); install Debian's `prometheus` package (scripts/test does)")
            });
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if client.get(format!("{base}/-/ready")).send().await.is_ok_and(|r| r.status().is_success()) {
                return Prometheus { child, base };
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("prometheus did not become ready on any of five ports")
}

impl Prometheus {
    /// Points Prometheus at the runner and reloads its config.
    async fn scrape(&self, dir: &Path, rules: &Path, target: &str) {
        write_prometheus_config(dir, rules, Some(target));
        let response = reqwest::Client::new().post(format!("{}/-/reload", self.base)).send().await.unwrap();
        assert!(response.status().is_success(), "prometheus refused the reload: {}", response.status());
    }
}

/// Every panel query of every dashboard, with Grafana's interval variable filled in.
fn dashboard_queries() -> Vec<(String, String)> {
    let dir = repository().join("dashboards/grafana");
    let mut queries = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert_eq!(files.len(), 5, "overview, saga, canary, chaos, slo");
    for file in files {
        let board: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(
            board["templating"]["list"][0]["type"],
            "datasource",
            "{}: a Prometheus data-source variable",
            file.display()
        );
        for panel in board["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                let expr = target["expr"].as_str().unwrap().replace("$__rate_interval", "1m");
                queries.push((
                    format!("{} / {}", board["title"].as_str().unwrap(), panel["title"].as_str().unwrap()),
                    expr,
                ));
            }
        }
    }
    queries
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prometheus_scrapes_the_system_and_every_dashboard_query_has_data() {
    let db = TempPg::create("prometheus").await;
    let (root, dir) = shipped_copy();
    // A canary judged every second, payment failures for a tenth of the orders, one dropped
    // shipping request: every panel has something to show.
    let orchestrator = dir.join("orchestrator.toml");
    edit(&orchestrator, "percent = 0", "percent = 50");
    edit(&orchestrator, "interval = \"30s\"", "interval = \"1s\"");
    edit(&orchestrator, "min_requests = 20", "min_requests = 5");
    let payment = dir.join("payment.toml");
    append(
        &payment,
        "\n[[chaos.rules]]\nid = \"failing-charge\"\ntarget = { kind = \"handler\", handler = \"payment.charge\" }\n\
         fault = { kind = \"error\" }\nkey_sample = 0.1\n\n[[chaos.rules]]\nid = \"lose-one\"\n\
         target = { kind = \"topic\", topic = \"shipping.schedule.requested\" }\nfault = { kind = \"drop\" }\n\
         allow_drop = true\nmax_count = 1\n",
    );
    // streams-analytics reads the SLO figures from this Prometheus.
    let rules = repository().join("dashboards/rules/slo.rules.yml").canonicalize().unwrap();
    let prometheus = start_prometheus(root.path(), &rules).await;
    let url = format!("prometheus_url = \"{}\"", prometheus.base);
    edit(&dir.join("streams-analytics.toml"), "# prometheus_url = \"http://prometheus:9090\"", &url);
    let system = System::start_watched(&dir, &db.url).await;
    prometheus.scrape(root.path(), &rules, &system.running.addr.to_string()).await;

    // Load: 150 orders at about 10 a second; a reload of payment.toml on the way.
    for i in 0..150 {
        system.post_order(&simple_order(i)).await;
        if i == 30 {
            append(&payment, "\n# touched by the test\n[chaos]\nenabled = true\n");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    system.wait_all_terminal(150, Duration::from_secs(120)).await;
    tokio::time::sleep(Duration::from_secs(6)).await;

    let client = reqwest::Client::new();
    let query = |expr: String| {
        let client = client.clone();
        let url = format!("{}/api/v1/query", prometheus.base);
        async move {
            let response = client.get(url).query(&[("query", expr.as_str())]).send().await.unwrap();
            response.json::<Value>().await.unwrap()
        }
    };
    let up = query("up{job=\"chaos-symphony\"}".into()).await;
    assert_eq!(up["data"]["result"][0]["value"][1], "1", "the runner is scraped: {up}");
    let started = Instant::now();
    let mut empty = Vec::new();
    for (panel, expr) in dashboard_queries() {
        let answer = query(expr.clone()).await;
        assert_eq!(answer["status"], "success", "{panel}: `{expr}`: {answer}");
        if answer["data"]["result"].as_array().is_none_or(|r| r.is_empty()) {
            empty.push(format!("{panel}: `{expr}`"));
        }
    }
    assert!(empty.is_empty(), "panels without data:\n{}", empty.join("\n"));
    println!("every dashboard query answered in {:?}", started.elapsed());

    // The SLO view in one call, computed from Prometheus's recording rules.
    let slo = system.get("/api/slo").await;
    assert_eq!(slo["source"], "prometheus", "{slo}");
    let success = slo["objectives"].as_array().unwrap().iter().find(|o| o["name"] == "order-success").unwrap();
    let ratio =
        success["errorRatio1h"].as_f64().unwrap_or_else(|| panic!("no 1h error ratio from Prometheus: {success}"));
    assert!(ratio > 0.0 && ratio < 0.5, "a tenth of the payments fail: {success}");
    assert!(success["burnRates"][0]["shortBurnRate"].is_number(), "{success}");
    // Prometheus extrapolates the rate over the samples it has: about 150 orders, not exactly.
    assert!(success["ordersLastHour"].as_f64().unwrap() > 50.0, "{success}");
    drop(prometheus);
    system.stop().await;
    db.drop_database().await;
}
