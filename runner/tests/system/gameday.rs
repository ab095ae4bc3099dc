//! gameday-svc against the real system: the shipped baseline passes from the command line
//! with its audit green and an HTML report with plots; the payment-latency scenario is
//! aborted by its burn rate and leaves no rule behind; a gameday-svc killed with -9 leaves its
//! fault to its lease and the next start works; broken scenarios are refused with their place
//! and starting a run needs the admin token.

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::process::{run, Service};
use crate::support::{eventually, pipelines_dir, shipped_copy, simple_order, temp_sqlite, System, ADMIN_TOKEN};

/// Every check the audit names.
const AUDIT_CHECKS: [&str; 7] = [
    "every-order-final",
    "no-order-failed",
    "money-conserved",
    "stock-conserved",
    "one-effect-per-order",
    "outbox-relayed",
    "dead-letters-counted",
];

/// The rules of chaos-svc at `base` that a game day created and that are still in force.
async fn game_day_rules_in_force(client: &reqwest::Client, base: &str) -> Vec<String> {
    let rules: Value = client.get(format!("{base}/api/chaos/rules")).send().await.unwrap().json().await.unwrap();
    rules["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["id"].as_str().unwrap().starts_with("gameday-") && r["state"] == "active")
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

/// Waits until run `id` at `base` has ended; returns its record.
async fn wait_ended(client: &reqwest::Client, base: &str, id: &str, limit: Duration) -> Value {
    eventually(limit, Duration::from_millis(500), async || {
        let run: Value =
            client.get(format!("{base}/api/gamedays/runs/{id}")).send().await.unwrap().json().await.unwrap();
        match run["state"].as_str() {
            Some("running" | "auditing") => Err(format!("still {}: {}", run["state"], run["phase"])),
            _ => Ok(run),
        }
    })
    .await
}

#[test]
fn the_baseline_passes_from_the_command_line_with_its_audit_green_and_a_report_with_plots() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("baseline.html");
    let outcome = run(&[
        "gameday".as_ref(),
        "run".as_ref(),
        "../pipelines/gamedays/baseline.toml".as_ref(),
        "--report".as_ref(),
        report.as_os_str(),
    ]);
    assert_eq!(outcome.code(), 0, "stdout:\n{}\nstderr:\n{}", outcome.stdout, outcome.stderr);
    assert!(outcome.stdout.contains("baseline: passed"), "{}", outcome.stdout);
    for check in AUDIT_CHECKS {
        assert!(outcome.stdout.contains(&format!("ok   {check}:")), "{check} not green:\n{}", outcome.stdout);
    }
    assert!(outcome.stdout.contains("orders: 600 sent, 600 accepted"), "{}", outcome.stdout);
    let html = std::fs::read_to_string(&report).unwrap();
    assert_eq!(html.matches("<svg").count(), 4, "four plots: throughput, latency, error ratio, burn rate");
    for check in AUDIT_CHECKS {
        assert!(html.contains(check), "the report names {check}");
    }
    assert!(!html.contains("<script"), "a self-contained page with no script");
}

#[test]
fn broken_scenarios_are_refused_with_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let file = "streams-analytics.toml";
    std::fs::copy(pipelines_dir().join(file), dir.path().join(file)).unwrap();
    std::fs::create_dir(dir.path().join("gamedays")).unwrap();
    let broken = dir.path().join("gamedays").join("broken.toml");
    std::fs::write(
        &broken,
        r#"[scenario]
name = "broken"
[load]
rate = 0
duration = "10s"
[[faults]]
name = "late"
at = "8s"
for = "5s"
rule = { ttl = "1h", target = { kind = "handler", handler = "payment.charge" }, fault = { kind = "latency", fixed = "1s" } }
[[stop_conditions]]
kind = "burn_rate"
objective = "no-such-objective"
above = 10
[[hypothesis.thresholds]]
success_ratio = 2
"#,
    )
    .unwrap();
    let outcome = run(&["check".as_ref(), broken.as_os_str()]);
    assert_eq!(outcome.code(), 1, "{}{}", outcome.stdout, outcome.stderr);
    let at = |line_col: &str| format!("{}:{line_col}: ", broken.display());
    for (place, words) in [
        ("4:8", "not a usable rate"),
        ("9:7", "after the load"),
        ("10:16", "`ttl` is set by the game day"),
        ("13:13", "no objective `no-such-objective`"),
        ("16:17", "not a share"),
    ] {
        assert!(
            outcome.stdout.lines().any(|l| l.starts_with(&at(place)) && l.contains(words)),
            "expected `{words}` at {place}:\n{}",
            outcome.stdout
        );
    }
    // The shipped scenarios are checked with the pipelines.
    let shipped = run(&["check", "../pipelines"]);
    assert_eq!(shipped.code(), 0, "{}", shipped.stdout);
    assert!(shipped.stdout.contains("6 game-day scenario(s) OK"), "{}", shipped.stdout);
    // A broken file given to `gameday run` is refused before anything starts.
    let refused = run(&["gameday".as_ref(), "run".as_ref(), broken.as_os_str()]);
    assert_eq!(refused.code(), 3, "{}", refused.stdout);
    assert!(refused.stdout.contains(&at("4:8")), "{}", refused.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_latency_scenario_is_aborted_by_its_burn_rate_and_leaves_no_rule_behind() {
    let (_dir, url) = temp_sqlite();
    // As `runner up` runs them: chaos on.
    let system = System::start_watched(&pipelines_dir(), &url).await;
    system.wait_announced("payment-svc").await;
    // Warm: a system that just started is slow for its first orders, which the burn rate
    // would (rightly) stop on before the fault.
    system.post_orders((0..5).map(simple_order), 5).await;
    system.wait_all_terminal(5, Duration::from_secs(60)).await;
    let runs = "/api/gamedays/runs";

    // Starting a run needs the admin token; a broken scenario is refused with its place.
    let (status, _) = system.call(Method::POST, runs, None, Some(json!({ "scenario": "baseline" }))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let broken = json!({ "scenarioToml": "[load]\nrate = 10\nduration = \"forever\"\n", "file": "mine.toml" });
    let (status, answer) = system.call(Method::POST, runs, Some(ADMIN_TOKEN), Some(broken)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("mine.toml:3:12:"), "{answer}");
    let (status, _) = system.call(Method::POST, runs, Some(ADMIN_TOKEN), Some(json!({ "scenario": "nope" }))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for hostile in [
        json!({ "scenario": "base\u{0}line" }),
        json!({ "scenario": "../../etc/passwd" }),
        json!({ "scenario": "baseline", "scenarioToml": "[load]" }),
        json!({ "scenarioToml": "[load]\nrate = 1e308\nduration = \"9999999h\"\n" }),
        json!({ "scenarioToml": 42 }),
    ] {
        let (status, answer) = system.call(Method::POST, runs, Some(ADMIN_TOKEN), Some(hostile.clone())).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{hostile} → {answer}");
    }
    let huge = json!({ "scenarioToml": "#".repeat(300 * 1024) });
    let (status, _) = system.call(Method::POST, runs, Some(ADMIN_TOKEN), Some(huge)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (status, _) = system.call(Method::GET, &format!("{runs}/not-a-run"), None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = system.call(Method::POST, &format!("{runs}/0123abcd/abort"), Some(ADMIN_TOKEN), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "aborting a run nobody has");

    let (status, started) =
        system.call(Method::POST, runs, Some(ADMIN_TOKEN), Some(json!({ "scenario": "payment-latency" }))).await;
    assert_eq!(status, StatusCode::CREATED, "{started}");
    let id = started["id"].as_str().unwrap().to_string();

    // One run at a time: 20 starts at once while it runs all get 409.
    let starts =
        (0..20).map(|_| system.call(Method::POST, runs, Some(ADMIN_TOKEN), Some(json!({ "scenario": "baseline" }))));
    for (status, answer) in futures::future::join_all(starts).await {
        assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    }

    // The fault goes in at 10 s; the burn rate stops the run; the rule is gone within 2 s.
    let stopped = eventually(Duration::from_secs(60), Duration::from_millis(100), async || {
        let run = system.get(&format!("{runs}/{id}")).await;
        if run["stop"].is_object() {
            Ok(run)
        } else {
            Err(format!("not stopped yet: {} at {} ms", run["phase"], run["elapsedMs"]))
        }
    })
    .await;
    let seen_stopped = Instant::now();
    assert!(stopped["stop"]["condition"].as_str().unwrap().contains("burn rate of order-latency"), "{stopped}");
    assert!(
        stopped["faults"][0]["injections"].as_u64().unwrap() > 0,
        "the fault struck before the stop: {} {}",
        stopped["stop"],
        stopped["faults"]
    );
    eventually(Duration::from_secs(2), Duration::from_millis(50), async || {
        match game_day_rules_in_force(&system.client, &system.base).await {
            rules if rules.is_empty() => Ok(()),
            rules => Err(format!("still in force: {rules:?}")),
        }
    })
    .await;
    println!("rules gone {:?} after the stop was seen", seen_stopped.elapsed());

    // The orders sent before the abort still settle; the run ends aborted, audit green.
    let ended = wait_ended(&system.client, &system.base, &id, Duration::from_secs(150)).await;
    assert_eq!(ended["state"], "aborted", "{}", ended["verdict"]);
    let orders = &ended["orders"];
    assert!(orders["accepted"].as_u64().unwrap() > 200, "{orders}");
    assert_eq!(orders["settled"], orders["accepted"], "{orders}");
    for check in ended["audit"].as_array().unwrap() {
        assert_eq!(check["passed"], true, "{check}");
    }
    let (status, _) = system.call(Method::POST, &format!("{runs}/{id}/abort"), Some(ADMIN_TOKEN), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "an ended run cannot be aborted");

    // History and the report.
    let history = system.get(runs).await;
    assert_eq!(history["runs"][0]["id"], id.as_str());
    assert_eq!(history["runs"][0]["verdict"]["outcome"], "aborted");
    let html =
        system.client.get(format!("{}{runs}/{id}/report", system.base)).send().await.unwrap().text().await.unwrap();
    assert_eq!(html.matches("<svg").count(), 4);
    for check in AUDIT_CHECKS {
        assert!(html.contains(check), "the report names {check}");
    }
    system.running.stop().await;
}

/// A short scenario without objectives (the killed gameday-svc runs beside no analytics file).
fn leased_scenario(fault_for: &str) -> String {
    format!(
        r#"[scenario]
name = "leased"
[load]
rate = 5
duration = "40s"
[[faults]]
name = "slow"
at = "1s"
for = "{fault_for}"
rule = {{ target = {{ kind = "handler", handler = "payment.charge" }}, fault = {{ kind = "latency", fixed = "20ms" }} }}
[rollback]
lease_margin = "2s"
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gameday_killed_with_sigkill_leaves_its_faults_to_their_leases_and_the_next_start_works() {
    let (_db, url) = temp_sqlite();
    // The system without gameday-svc, in this process (chaos on, as under `runner up`);
    // gameday-svc as a process of its own.
    let (_copy, pipelines) = shipped_copy();
    std::fs::remove_file(pipelines.join("gameday.toml")).unwrap();
    let system = System::start_watched(&pipelines, &url).await;
    system.wait_announced("payment-svc").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gameday.toml");
    let text = std::fs::read_to_string(pipelines_dir().join("gameday.toml")).unwrap();
    let text = text.replace("[gameday]\n", &format!("[gameday]\nsystem_url = \"{}\"\n", system.base));
    std::fs::write(&file, text).unwrap();
    let start = |dir: &Path| {
        let mut service = Service::pipeline(&dir.join("gameday.toml"), &url, Some(&system.bootstrap()), &[]);
        let base = service.wait_for("listening on");
        (service, base)
    };
    let (mut gameday, base) = start(dir.path());
    let client = reqwest::Client::new();
    let body = json!({ "scenarioToml": leased_scenario("8s"), "file": "leased.toml" });
    let response =
        client.post(format!("{base}/api/gamedays/runs")).bearer_auth(ADMIN_TOKEN).json(&body).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let first: Value = response.json().await.unwrap();

    // Once its rule is in force, the game day dies.
    eventually(Duration::from_secs(20), Duration::from_millis(100), async || {
        match game_day_rules_in_force(&client, &system.base).await {
            rules if rules.is_empty() => Err("no game-day rule yet".to_string()),
            _ => Ok(()),
        }
    })
    .await;
    // Struck at least once (chaos is on), then the game day dies.
    eventually(Duration::from_secs(20), Duration::from_millis(200), async || {
        let injections: Value =
            client.get(format!("{}/api/chaos/injections", system.base)).send().await.unwrap().json().await.unwrap();
        match injections["injections"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["rule"].as_str().unwrap().starts_with("gameday-"))
        {
            true => Ok(()),
            false => Err("no injection yet".to_string()),
        }
    })
    .await;
    gameday.kill();
    let killed = Instant::now();

    // Nobody removes the rule: its lease (8 s of fault + 2 s of margin) ends it.
    eventually(Duration::from_secs(20), Duration::from_millis(200), async || {
        match game_day_rules_in_force(&client, &system.base).await {
            rules if rules.is_empty() => Ok(()),
            rules => Err(format!("still in force {:?} after the kill: {rules:?}", killed.elapsed())),
        }
    })
    .await;
    let ended_after = killed.elapsed();
    println!("the killed game day's rule ended by its lease {ended_after:?} after the kill");
    assert!(ended_after <= Duration::from_secs(12), "the lease is at most 10 s: {ended_after:?}");

    // Started again: the interrupted run is marked so, and a new run goes through.
    let (_gameday, base) = start(dir.path());
    let history: Value = client.get(format!("{base}/api/gamedays/runs")).send().await.unwrap().json().await.unwrap();
    let old = history["runs"].as_array().unwrap().iter().find(|r| r["id"] == first["id"]).cloned().unwrap();
    assert_eq!(old["state"], "interrupted", "{old}");
    let body = json!({
        "scenarioToml": "[scenario]\nname = \"short\"\n[load]\nrate = 5\nduration = \"3s\"\n",
        "file": "short.toml"
    });
    let response =
        client.post(format!("{base}/api/gamedays/runs")).bearer_auth(ADMIN_TOKEN).json(&body).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let second: Value = response.json().await.unwrap();
    let ended = wait_ended(&client, &base, second["id"].as_str().unwrap(), Duration::from_secs(90)).await;
    assert_eq!(ended["state"], "passed", "{}", ended["verdict"]);
    system.running.stop().await;
}
