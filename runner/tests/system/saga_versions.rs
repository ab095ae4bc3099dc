//! Saga definitions change while instances are in flight: each instance finishes on the
//! definition it started on and new ones start on the new one, as `runner plan --target`
//! predicted; a change stranding instances on a step it removes is refused with their count
//! until a step mapping says where they continue, and then they move and finish there.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::process::run;
use crate::support::{
    assert_guarantees, edit, eventually, shipped_copy, simple_order, temp_sqlite, System, ADMIN_TOKEN,
};

/// The orchestrator's status on the config endpoint.
async fn orchestrator_status(system: &System) -> Value {
    let config = system.get("/api/runtime/config").await;
    config["services"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["service"] == "orchestrator")
        .cloned()
        .unwrap_or_default()
}

/// The hash of the saga definition in force.
async fn definition_in_force(system: &System) -> String {
    system.get("/api/runtime/sagas").await["sagas"][0]["definition"].as_str().unwrap_or_default().to_string()
}

/// The position of the first history line of `step` in an order's history.
async fn first_line_of(system: &System, order: &str, step: &str) -> Option<usize> {
    let order = system.get(&format!("/api/orders/{order}")).await;
    order["history"].as_array()?.iter().position(|line| line["step"] == step)
}

/// Waits until the orchestrator applied a file whose definition is not `old`; its hash.
async fn applied_other_than(system: &System, old: &str) -> String {
    eventually(Duration::from_secs(30), Duration::from_millis(100), async || {
        let status = orchestrator_status(system).await;
        let hash = definition_in_force(system).await;
        if status["lastResult"] == "applied" && hash != old {
            Ok(hash)
        } else {
            Err(format!("not applied yet: {status}"))
        }
    })
    .await
}

async fn sagas_on(system: &System, hash: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM sagas WHERE definition = '{hash}'");
    crate::support::database::scalar(system.store(), &sql).await
}

/// How many instances in flight wait at `step` (running it).
async fn waiting_at(system: &System, step: &str) -> u64 {
    let answer = system.get("/api/runtime/sagas/in-flight").await;
    answer["sagas"][0]["inFlight"]["byStep"][step]["running"].as_u64().unwrap_or(0)
}

async fn plan(file: &std::path::Path, against: &std::path::Path, target: &str) -> crate::support::process::Outcome {
    let (file, against, target) =
        (file.to_str().unwrap().to_string(), against.to_str().unwrap().to_string(), target.to_string());
    tokio::task::spawn_blocking(move || run(&["plan", &file, "--against", &against, "--target", &target]))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_orders_in_flight_finish_on_their_definition_and_new_ones_on_the_new_one() {
    let (_root, running) = shipped_copy();
    // Every charge takes 20 s and up to 512 run at once: 200 orders wait at their payment together.
    edit(
        &running.join("payment.toml"),
        "handler = \"payment.charge\"",
        "handler = \"payment.charge\"\nmax_in_flight = 512",
    );
    let (_db, url) = temp_sqlite();
    let system = System::start_watched(&running, &url).await;
    let slow = json!({ "id": "slow-charges", "ttl": "10m",
        "target": { "kind": "handler", "handler": "payment.charge" }, "fault": { "kind": "latency", "fixed": "20s" } });
    system.create_rule(&slow).await;
    let old_definition = definition_in_force(&system).await;
    let in_flight = system.post_orders((0..200).map(simple_order), 20).await;
    eventually(Duration::from_secs(60), Duration::from_millis(200), async || {
        match waiting_at(&system, "payment").await {
            200 => Ok(()),
            n => Err(format!("{n} of 200 orders wait at their payment")),
        }
    })
    .await;

    // The new definition ships before it reserves.
    let text = std::fs::read_to_string(running.join("orchestrator.toml")).unwrap();
    let parts: Vec<&str> = text.split("[[saga.steps]]").collect();
    assert_eq!(parts.len(), 4, "payment, inventory, shipping");
    let reordered = [parts[0], parts[1], parts[3], parts[2]].join("[[saga.steps]]");
    let edited = tempfile::tempdir().unwrap();
    let edited_file = edited.path().join("orchestrator.toml");
    std::fs::write(&edited_file, &reordered).unwrap();
    let predicted = plan(&edited_file, &running, &system.base).await;
    assert_eq!(predicted.status.code(), Some(0), "{}{}", predicted.stdout, predicted.stderr);
    assert!(
        predicted
            .stdout
            .contains("~ orchestrator: applied live — saga definition replaced (instances in flight keep theirs)"),
        "{}",
        predicted.stdout
    );
    let line = "200 saga(s) in flight: 200 finish on the definition they started on; new sagas start on definition";
    assert!(predicted.stdout.contains(line), "{}", predicted.stdout);

    // Applied while the 200 wait.
    std::fs::write(running.join("orchestrator.toml"), &reordered).unwrap();
    let new_definition = applied_other_than(&system, &old_definition).await;
    assert!(
        predicted.stdout.contains(&format!("new sagas start on definition {new_definition}")),
        "{}",
        predicted.stdout
    );
    assert_eq!(waiting_at(&system, "payment").await, 200, "the reload did not disturb the orders in flight");
    let (status, _) =
        system.call(reqwest::Method::DELETE, "/api/chaos/rules/slow-charges", Some(ADMIN_TOKEN), None).await;
    assert_eq!(status, reqwest::StatusCode::NO_CONTENT);
    let started_after = system.post_orders((200..250).map(simple_order), 10).await;

    let statuses = system.wait_all_terminal(250, Duration::from_secs(180)).await;
    assert!(statuses.iter().all(|(_, s)| s == "COMPLETED"), "{statuses:?}");
    assert_eq!(sagas_on(&system, &old_definition).await, 200, "as plan predicted: 200 on the old definition");
    assert_eq!(sagas_on(&system, &new_definition).await, 50, "and the new ones on the new");
    for id in &in_flight {
        let (inventory, shipping) =
            (first_line_of(&system, id, "inventory").await, first_line_of(&system, id, "shipping").await);
        assert!(inventory < shipping && inventory.is_some(), "{id} started before the change reserves first");
    }
    for id in &started_after {
        let (inventory, shipping) =
            (first_line_of(&system, id, "inventory").await, first_line_of(&system, id, "shipping").await);
        assert!(shipping < inventory && shipping.is_some(), "{id} started after the change ships first");
    }
    assert_guarantees(system.store()).await;
    system.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renaming_a_step_instances_wait_on_is_refused_until_a_step_mapping_moves_them() {
    let (_root, running) = shipped_copy();
    let (_db, url) = temp_sqlite();
    let system = System::start_watched(&running, &url).await;
    let slow = json!({ "id": "slow-reservations", "ttl": "10m",
        "target": { "kind": "handler", "handler": "inventory.reserve" }, "fault": { "kind": "latency", "fixed": "15s" } });
    system.create_rule(&slow).await;
    let ids = system.post_orders((0..20).map(simple_order), 10).await;
    eventually(Duration::from_secs(60), Duration::from_millis(200), async || {
        match waiting_at(&system, "inventory").await {
            20 => Ok(()),
            n => Err(format!("{n} of 20 orders wait at their reservation")),
        }
    })
    .await;
    let old_definition = definition_in_force(&system).await;

    // The step is renamed: the 20 would wait on a step that is gone. The plan says so first.
    let file = running.join("orchestrator.toml");
    let edited = tempfile::tempdir().unwrap();
    let renamed = edited.path().join("orchestrator.toml");
    std::fs::write(
        &renamed,
        std::fs::read_to_string(&file).unwrap().replace("name = \"inventory\"", "name = \"stock\""),
    )
    .unwrap();
    let predicted = plan(&renamed, &running, &system.base).await;
    assert_eq!(predicted.status.code(), Some(1), "{}", predicted.stdout);
    assert!(
        predicted
            .stdout
            .contains("! orchestrator: refused — 20 saga(s) in flight wait on steps the edited file removes"),
        "{}",
        predicted.stdout
    );
    assert!(
        predicted.stdout.contains(&format!("20 at `inventory` (definition {old_definition}) wait on a step")),
        "{}",
        predicted.stdout
    );
    let mapping = "\n[[saga.step_mapping]]\nfrom = \"inventory\"\nto = \"stock\"\n";
    std::fs::write(&renamed, std::fs::read_to_string(&renamed).unwrap() + mapping).unwrap();
    let predicted = plan(&renamed, &running, &system.base).await;
    assert_eq!(predicted.status.code(), Some(0), "{}", predicted.stdout);
    let moves =
        format!("20 at `inventory` (definition {old_definition}) move to the new definition at `stock` (step mapping)");
    assert!(predicted.stdout.contains(&moves), "{}", predicted.stdout);
    edit(&file, "name = \"inventory\"", "name = \"stock\"");
    let refused = eventually(Duration::from_secs(30), Duration::from_millis(100), async || {
        let status = orchestrator_status(&system).await;
        if status["lastResult"] == "rejected" {
            Ok(status)
        } else {
            Err(format!("not refused yet: {status}"))
        }
    })
    .await;
    let reason = refused["lastError"].as_str().unwrap_or_default();
    assert!(reason.contains("(20 at `inventory`)"), "{reason}");
    assert!(reason.contains("[[saga.step_mapping]] (from = \"inventory\""), "{reason}");
    assert_eq!(definition_in_force(&system).await, old_definition, "the running config stays");

    // With a mapping the change applies, and the 20 move to the new definition at `stock`.
    std::fs::write(&file, std::fs::read_to_string(&file).unwrap() + mapping).unwrap();
    let new_definition = applied_other_than(&system, &old_definition).await;
    assert_eq!(sagas_on(&system, &new_definition).await, 20, "the 20 moved");
    let (status, _) =
        system.call(reqwest::Method::DELETE, "/api/chaos/rules/slow-reservations", Some(ADMIN_TOKEN), None).await;
    assert_eq!(status, reqwest::StatusCode::NO_CONTENT);
    let statuses = system.wait_all_terminal(20, Duration::from_secs(120)).await;
    assert!(statuses.iter().all(|(_, s)| s == "COMPLETED"), "{statuses:?}");
    for id in &ids {
        let order = system.get(&format!("/api/orders/{id}")).await;
        let history = order["history"].as_array().cloned().unwrap_or_default();
        assert!(history.iter().any(|l| l["step"] == "stock" && l["action"] == "moved"), "{id}: {history:?}");
        assert!(history.iter().any(|l| l["step"] == "stock" && l["action"] == "succeeded"), "{id}: {history:?}");
    }
    assert_guarantees(system.store()).await;
    system.stop().await;
}
