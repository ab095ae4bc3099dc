//! Hot reload while orders flow: a chaos rule and a canary percentage changed in the files
//! take effect with no restart; an invalid edit and a change that needs a restart are refused
//! and the running config stays; no message is lost or handled twice.


use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use runner::config::{self, Defaults, LoadOptions, Overrides};
use runner::runtime;
use serde_json::Value;
use crate::support::{assert_guarantees, copy_dir, pipelines_dir, scalar, simple_order, System, TempPg};

async fn status(system: &System, service: &str) -> Value {
    let body: Value =
        system.client.get(format!("{}/api/runtime/config", system.base)).send().await.unwrap().json().await.unwrap();
    body["services"].as_array().unwrap().iter().find(|s| s["service"] == service).cloned().unwrap()
}

/// Waits until the service's last reload result is `result`; returns its status.
async fn reloaded(system: &System, service: &str, result: &str, count: u64) -> Value {
    let started = Instant::now();
    loop {
        let status = status(system, service).await;
        if status["lastResult"] == result && status["reloads"][result].as_u64().unwrap_or(0) >= count {
            return status;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{service} never reported {result}: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from} in {}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reload_applies_chaos_and_canary_changes_while_orders_flow() {
    let db = TempPg::create("hot_reload").await;
    let root = tempfile::tempdir().unwrap();
    copy_dir(&pipelines_dir(), &root.path().join("pipelines"));
    copy_dir(&pipelines_dir().join("../schemas"), &root.path().join("schemas"));
    let dir = root.path().join("pipelines");
    let options = LoadOptions {
        defaults: Defaults { brokers: Some("embedded".into()), database_url: None, chaos_enabled: Some(true) },
        overrides: Overrides { database_url: Some(db.url.clone()), brokers: Some("embedded".into()), listen: None },
        use_environment: false,
    };
    let files = config::pipeline_files(&dir).unwrap();
    let loaded = config::load_system(&files, &[], &options).unwrap();
    let running = runtime::start_watched(loaded, "127.0.0.1:0".parse().unwrap(), options).await.unwrap();
    let system = Arc::new(System { base: format!("http://{}", running.addr), running, client: reqwest::Client::new() });

    // Orders flow the whole time: 300 orders at about 50 per second.
    let poster = {
        let system = system.clone();
        tokio::spawn(async move {
            for i in 0..300 {
                system.post_order(&simple_order(i)).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;

    // A chaos rule appears in payment.toml: every charge is delayed a little.
    let payment = dir.join("payment.toml");
    let mut text = std::fs::read_to_string(&payment).unwrap();
    text.push_str(
        "\n[[chaos.rules]]\nid = \"reloaded-latency\"\ntarget = { kind = \"handler\", handler = \"payment.charge\" }\n\
         fault = { kind = \"latency\", fixed = \"5ms\" }\n",
    );
    std::fs::write(&payment, &text).unwrap();
    let applied = reloaded(&system, "payment-svc", "applied", 1).await;
    assert_eq!(applied["lastChanges"], "chaos");
    // The canary percentage changes in orchestrator.toml.
    edit(&dir.join("orchestrator.toml"), "percent = 0", "percent = 50");
    let applied = reloaded(&system, "orchestrator", "applied", 1).await;
    assert_eq!(applied["lastChanges"], "canary");
    let first_hash = applied["hash"].clone();

    // An invalid edit is refused with file:line:column; the running config stays.
    edit(&dir.join("orchestrator.toml"), "percent = 50", "percent = \"half\"");
    let rejected = reloaded(&system, "orchestrator", "rejected", 1).await;
    let error = rejected["lastError"].as_str().unwrap();
    assert!(error.contains("orchestrator.toml:") && error.contains("percent"), "{error}");
    assert_eq!(rejected["hash"], first_hash, "the running config's hash is kept");
    // A change that cannot be applied live is refused, saying a restart is needed.
    edit(&dir.join("inventory.toml"), "[[consumers]]", "[broker]\npartitions = 7\n\n[[consumers]]");
    let refused = reloaded(&system, "inventory-svc", "restart_required", 1).await;
    assert!(refused["lastError"].as_str().unwrap().contains("[broker]"), "{refused}");
    // A handler parameter change rebuilds that consumer alone.
    edit(&payment, "decline_above = 500000", "decline_above = 400000");
    let applied = reloaded(&system, "payment-svc", "applied", 2).await;
    assert_eq!(applied["lastChanges"], "consumer charge rebuilt");

    poster.await.unwrap();
    system.wait_all_terminal(300, Duration::from_secs(120)).await;
    let store = system.store();
    assert_guarantees(store).await;
    // Both changes took effect: delays on charges, and canary traffic after the edit.
    let chaos: Value =
        system.client.get(format!("{}/api/runtime/chaos", system.base)).send().await.unwrap().json().await.unwrap();
    let delays = chaos["injections"].as_array().unwrap().iter().filter(|i| i["rule"] == "reloaded-latency").count();
    assert!(delays > 0);
    let canary = scalar(store, "SELECT COUNT(*) FROM saga_routes WHERE variant = 'canary'").await;
    assert!(canary > 0, "no canary traffic after the percentage changed");
    // The rejected edit did not stop the canary: it kept its 50 %.
    let view: Value =
        system.client.get(format!("{}/api/runtime/canary", system.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(view["canaries"][0]["percent"], 50.0);
    // Nothing lost, nothing handled twice: one payment answer per order, from one service.
    let answers =
        scalar(store, "SELECT COUNT(*) FROM outbox WHERE type IN ('payment.charged', 'payment.declined')").await;
    assert_eq!(answers, 300, "payment answers for 300 orders");
    Arc::try_unwrap(system).ok().unwrap().stop().await;
    db.drop_database().await;
}
