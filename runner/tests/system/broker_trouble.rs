//! Broker trouble, on both brokers: the broker lost while orders are posted and brought
//! back, then orders after it. On the embedded broker the node goes down and comes back with
//! everything it had; tansu (memory storage) is stopped and started empty — the broker that
//! lost its state: no topics, no groups, no committed offsets, no producer ids. Rows written
//! meanwhile stay in the outbox and are published once it is back; consumers are paused the
//! moment its address refuses connections (a fetch of a topic tansu no longer knows crashes
//! librdkafka 2.12: see `transport/watch.rs`), recreate the topics, and go on from the
//! committed offsets; producers left with records the broker does not acknowledge 10 s after
//! its return are replaced (counted in `transport_producer_rebuilds_total`; only tansu needs
//! it). Every order completes, none is lost or doubled.
//!
//! Orders in flight at the moment of the loss are not part of it: records the broker had
//! acknowledged and then lost are gone from every topic, and only the saga's retries bring
//! back a lost request or reply; a lost `order.created` would leave its order PENDING.

use std::time::{Duration, Instant};

use crate::support::broker::TestBroker;
use crate::support::{assert_guarantees, shipped_pipelines_on, simple_order, System, TempPg};

async fn orders_survive_losing_the_broker(broker: TestBroker) {
    let db = TempPg::create("broker_loss").await;
    let system = System::start(shipped_pipelines_on(&db.url, &broker.brokers())).await;
    system.post_orders((0..50).map(simple_order), 10).await;
    system.wait_all_terminal(50, Duration::from_secs(60)).await;

    broker.take_down(&system);
    let lost_at = Instant::now();
    system.post_orders((50..100).map(simple_order), 10).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    broker.bring_back(&system);
    system.wait_all_terminal(100, Duration::from_secs(120)).await;
    println!(
        "{}: the orders posted while it was away ended {:.1} s after the loss",
        broker.name(),
        lost_at.elapsed().as_secs_f64()
    );

    system.post_orders((100..150).map(simple_order), 10).await;
    let statuses = system.wait_all_terminal(150, Duration::from_secs(60)).await;
    let not_completed: Vec<_> = statuses.iter().filter(|(_, s)| s != "COMPLETED").collect();
    assert!(not_completed.is_empty(), "{}: {not_completed:?}", broker.name());
    assert_guarantees(system.store()).await;
    let metrics = system.metrics().await;
    let rebuilds = metrics.lines().find(|l| l.starts_with("transport_producer_rebuilds_total ")).unwrap_or_default();
    // A broker that lost its state leaves producers stuck on ids it forgot: they are
    // replaced. One that kept it acknowledges their records: they are kept (replacing one
    // purges records in flight, which the broker may have stored already).
    match broker {
        TestBroker::Embedded => assert!(rebuilds.is_empty(), "no producer needed replacing: {rebuilds}"),
        TestBroker::Tansu(_) => {
            assert!(!rebuilds.is_empty(), "{}: no producer was replaced after the loss", broker.name())
        }
    }
    println!("{}: producers replaced: {}", broker.name(), if rebuilds.is_empty() { "none" } else { rebuilds });
    system.stop().await;
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_survive_losing_the_embedded_broker() {
    orders_survive_losing_the_broker(TestBroker::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_survive_tansu_losing_its_state() {
    orders_survive_losing_the_broker(TestBroker::tansu()).await;
}
