//! Consumer lag is read through each group's own consumer: `consumer_lag` is reported for every
//! consumer group of the shipped pipelines, and once every group's consumer runs the process
//! holds no librdkafka client beyond its consumers, its two shared producers, its two
//! control-topic followers and the embedded broker's own (each idle client costs wake-ups:
//! idle CPU).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::support::{shipped_pipelines, simple_order, temp_sqlite, System};

/// librdkafka clients of this process: each has one thread named `rdk:main`.
fn librdkafka_clients() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim() == "rdk:main")
        .count()
}

/// The groups `consumer_lag` samples name in the exposition.
fn lag_groups(metrics: &str) -> BTreeSet<String> {
    metrics
        .lines()
        .filter(|line| line.starts_with("consumer_lag{"))
        .filter_map(|line| line.split("group=\"").nth(1)?.split('"').next().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_is_read_through_each_groups_own_consumer() {
    let (_dir, url) = temp_sqlite();
    let pipelines = shipped_pipelines(&url);
    let groups: BTreeSet<String> =
        pipelines.iter().flat_map(|p| p.consumer_groups().into_iter().map(|(group, _)| group)).collect();
    assert!(groups.len() >= 8, "the shipped pipelines' groups: {groups:?}");
    let system = System::start(pipelines).await;
    system.post_order(&simple_order(1)).await;
    system.wait_all_terminal(1, Duration::from_secs(60)).await;

    // A consumer per group, and dlq-admin's ingest consumer; the two shared producers (the
    // relay's, whose records never time out, and the bounded one of every other part); the
    // control and injections followers; the embedded broker's own handle. Lag is sampled
    // every 15 s; the first sample may come before a group's consumer exists (then through a
    // client of its own, dropped at the next sample).
    let expected = groups.len() + 1 + 2 + 2 + 1;
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let reported = lag_groups(&system.metrics().await);
        let clients = librdkafka_clients();
        if reported == groups && clients == expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after 45 s: lag reported for {reported:?} of {groups:?}; {clients} librdkafka clients, {expected} expected"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
