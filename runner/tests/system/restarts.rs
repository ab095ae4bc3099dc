//! A consumer process killed with -9 and started again, against both brokers: every order
//! still completes, and the seconds from the restart to the first payment the new process
//! handles are printed (docs/benchmarks.md). The process runs with `RUNNER_INSTANCE` set, so
//! its consumers are static group members; neither test broker implements static membership
//! (librdkafka's mock cluster and tansu 0.6 take the rejoining id for a new member), so here
//! the rejoin waits for the dead member's session to time out (6 s in the tests, 10 s by
//! default): the bound asserted is three session timeouts. On Apache Kafka the static member
//! takes its partitions back at once.

use std::time::{Duration, Instant};

use crate::support::broker::TestBroker;
use crate::support::process::Service;
use crate::support::{assert_guarantees, eventually, scalar, shipped_pipelines_on, simple_order, System, TempPg};

async fn payments(system: &System) -> i64 {
    scalar(system.store(), "SELECT COUNT(*) FROM payments WHERE charged_at_ms IS NOT NULL").await
}

async fn a_killed_consumer_rejoins_and_handles_again(broker: TestBroker) {
    let db = TempPg::create("restart").await;
    let pipelines = shipped_pipelines_on(&db.url, &broker.brokers()).into_iter().filter(|p| p.service != "payment-svc");
    let system = System::start(pipelines.collect()).await;
    let bootstrap = system.bootstrap();
    let env = [("RUNNER_INSTANCE", "restart-test")];
    let mut payment = Service::start_with_env("payment.toml", &db.url, Some(&bootstrap), &env);
    payment.wait_for("listening on");
    let mut ids = vec![system.post_order(&simple_order(0)).await];
    eventually(Duration::from_secs(60), Duration::from_millis(50), async || match payments(&system).await {
        0 => Err("payment-svc never handled the first order".to_string()),
        _ => Ok(()),
    })
    .await;

    payment.kill();
    let restarted = Instant::now();
    let mut payment = Service::start_with_env("payment.toml", &db.url, Some(&bootstrap), &env);
    ids.push(system.post_order(&simple_order(1)).await);
    eventually(Duration::from_secs(60), Duration::from_millis(20), async || match payments(&system).await {
        1 => Err("the restarted payment-svc handled nothing yet".to_string()),
        _ => Ok(()),
    })
    .await;
    let seconds = restarted.elapsed().as_secs_f64();
    println!("{}: restarted payment-svc handled its first message {seconds:.2} s after the restart", broker.name());
    assert!(seconds < 18.0, "{}: {seconds:.1} s: more than three session timeouts", broker.name());

    let statuses = system.wait_all_terminal(ids.len(), Duration::from_secs(60)).await;
    assert!(statuses.iter().all(|(_, s)| s == "COMPLETED"), "{statuses:?}");
    assert_guarantees(system.store()).await;
    let status = tokio::task::block_in_place(|| payment.terminate());
    assert!(status.success(), "{status:?}");
    system.stop().await;
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_consumer_rejoins_and_handles_again_on_the_embedded_broker() {
    a_killed_consumer_rejoins_and_handles_again(TestBroker::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_consumer_rejoins_and_handles_again_on_tansu() {
    a_killed_consumer_rejoins_and_handles_again(TestBroker::tansu()).await;
}
