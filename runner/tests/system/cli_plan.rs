//! `runner plan`: edited pipeline files planned against the files in force — unchanged,
//! applied live, or a restart needed with the keys — and, with `--target`, checked against
//! what the running system really runs (by file hash), with the sagas in flight a saga
//! change would move.

use crate::support::process::run;
use std::time::Duration;

use crate::support::{
    append, copy_dir, edit, pipelines_dir, shipped_copy, simple_order, temp_sqlite, System, ADMIN_TOKEN,
};

#[test]
fn a_plan_tells_live_changes_from_restarts_by_service() {
    let edited = tempfile::tempdir().unwrap();
    let dir = edited.path().join("pipelines");
    copy_dir(&pipelines_dir(), &dir);
    edit(&dir.join("payment.toml"), "decline_above = 500000", "decline_above = 400000");
    edit(&dir.join("orchestrator.toml"), "timeout = \"10s\"", "timeout = \"15s\"");
    edit(&dir.join("shipping.toml"), "listen = \"0.0.0.0:8085\"", "listen = \"0.0.0.0:9085\"");
    let output = run(&["plan", dir.to_str().unwrap(), "--against", "../pipelines"]);
    assert_eq!(output.status.code(), Some(1), "a restart is needed:\n{}", output.stdout);
    for line in [
        "~ payment-svc: applied live — consumer charge rebuilt",
        "~ orchestrator: applied live — saga definition replaced (instances in flight keep theirs)",
        "! shipping-svc: needs a restart — [service] changed",
        "  order-api: unchanged",
        "11 service(s): 2 applied live, 1 need a restart",
    ] {
        assert!(output.stdout.contains(line), "missing `{line}` in:\n{}", output.stdout);
    }
    // One live change alone plans clean.
    let output = run(&["plan", dir.join("payment.toml").to_str().unwrap(), "--against", "../pipelines"]);
    assert!(output.status.success(), "{}", output.stdout);
    // A broken edit is refused before anything is compared.
    append(&dir.join("payment.toml"), "\n[broker]\npartitions = 0\n");
    let output = run(&["plan", dir.join("payment.toml").to_str().unwrap(), "--against", "../pipelines"]);
    assert_eq!(output.status.code(), Some(2), "{}", output.stdout);
    assert!(output.stdout.contains("partitions must be at least 1"), "{}", output.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_checks_the_target_runs_the_files_it_compares_with() {
    let (_root, running) = shipped_copy();
    // The running system's chaos differs from the repository's files.
    edit(&running.join("chaos.toml"), "[service]", "# changed for the test\n[service]");
    let (_db, url) = temp_sqlite();
    let system = System::start_watched(&running, &url).await;
    let target = system.base.clone();
    let payment = pipelines_dir().join("payment.toml");
    let (running_dir, payment_file) = (running.to_str().unwrap().to_string(), payment.to_str().unwrap().to_string());
    let target_arg = target.clone();
    let matching = tokio::task::spawn_blocking(move || {
        run(&["plan", &payment_file, "--against", &running_dir, "--target", &target_arg])
    })
    .await
    .unwrap();
    assert!(matching.status.success(), "the target runs the files compared with:\n{}", matching.stdout);
    assert!(!matching.stdout.contains("the system runs a file with hash"), "{}", matching.stdout);
    // Orders held at their payment (a 30 s delay on the charge), then a plan that swaps the
    // first two steps: the sagas in flight finish on the definition they started on.
    let slow = serde_json::json!({ "id": "slow-charges", "ttl": "5m",
        "target": { "kind": "handler", "handler": "payment.charge" }, "fault": { "kind": "latency", "fixed": "30s" } });
    system.create_rule(&slow).await;
    for i in 0..5 {
        system.post_order(&simple_order(i)).await;
    }
    let edited = tempfile::tempdir().unwrap();
    let swapped = edited.path().join("orchestrator.toml");
    let text = std::fs::read_to_string(running.join("orchestrator.toml")).unwrap();
    let parts: Vec<&str> = text.split("[[saga.steps]]").collect();
    assert_eq!(parts.len(), 4, "payment, inventory, shipping");
    std::fs::write(&swapped, [parts[0], parts[2], parts[1], parts[3]].join("[[saga.steps]]")).unwrap();
    let (swapped_file, running_dir, target_arg) =
        (swapped.to_str().unwrap().to_string(), running.to_str().unwrap().to_string(), target.clone());
    let plan = crate::support::eventually(Duration::from_secs(30), Duration::from_millis(200), async || {
        let (file, dir, url) = (swapped_file.clone(), running_dir.clone(), target_arg.clone());
        let plan = tokio::task::spawn_blocking(move || run(&["plan", &file, "--against", &dir, "--target", &url]))
            .await
            .unwrap();
        if plan.stdout.contains("5 saga(s) in flight") {
            Ok(plan)
        } else {
            Err(format!("not 5 sagas in flight yet:\n{}", plan.stdout))
        }
    })
    .await;
    assert_eq!(plan.status.code(), Some(0), "{}", plan.stdout);
    assert!(plan.stdout.contains("~ orchestrator: applied live — saga definition replaced"), "{}", plan.stdout);
    assert!(
        plan.stdout
            .contains("5 saga(s) in flight: 5 finish on the definition they started on; new sagas start on definition"),
        "{}",
        plan.stdout
    );
    let (status, _) =
        system.call(reqwest::Method::DELETE, "/api/chaos/rules/slow-charges", Some(ADMIN_TOKEN), None).await;
    assert_eq!(status, reqwest::StatusCode::NO_CONTENT);

    let payment_file = payment.to_str().unwrap().to_string();
    let other = tokio::task::spawn_blocking(move || {
        run(&["plan", &payment_file, "--against", "../pipelines", "--target", &target])
    })
    .await
    .unwrap();
    assert_eq!(other.status.code(), Some(2), "{}", other.stdout);
    assert!(other.stdout.contains("! chaos-svc: the system runs a file with hash"), "{}", other.stdout);
    system.stop().await;
}
