//! The shipped system against tansu.

use std::time::Duration;

use crate::saga_end_to_end::{relay_mode, run_500_orders};
use crate::support::broker::TestBroker;
use crate::support::{shipped_pipelines_on, System, TempPg};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_orders_on_tansu() {
    let broker = TestBroker::tansu();
    let db = TempPg::create("tansu_e2e").await;
    let system = System::start(shipped_pipelines_on(&db.url, &broker.brokers())).await;
    let started = std::time::Instant::now();
    run_500_orders(&system).await;
    eprintln!("500 orders on tansu in {:?}", started.elapsed());
    assert_eq!(relay_mode(&system).await, "wal");
    system.stop().await;
    db.drop_database().await;
    let _ = Duration::ZERO;
}
