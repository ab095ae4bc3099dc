//! A committer allowed two groups at once commits a second group while the first is still
//! open; one allowed a single group makes everything queue behind it. On PostgreSQL (a
//! SQLite store has one connection, so its groups queue for it either way).

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt as _;
use runner::chaos::Chaos;
use runner::schemas::SchemaRegistry;
use runner::services::group_commit::GroupCommit;
use runner::services::ServiceContext;
use runner::store::{ReadAhead, Store, StoreConfig};
use runner::transport::{Broker, BrokerConfig, Brokers};
use tokio::sync::Semaphore;

use crate::support::TempPg;

async fn context(url: &str) -> ServiceContext {
    let broker = Broker::connect(&BrokerConfig {
        brokers: Brokers::Embedded,
        partitions: 1,
        replication: 1,
        session_timeout: Duration::from_secs(6),
        fetch_wait: None,
        redeliver_each_message: false,
    })
    .unwrap();
    ServiceContext {
        service: "payment-svc".into(),
        store: Store::connect(&StoreConfig::for_url(url, 4).unwrap()).await.unwrap(),
        broker,
        shutdown: tokio_util::sync::CancellationToken::new(),
        outbox_written: Arc::default(),
        schemas: Arc::new(SchemaRegistry::empty()),
        chaos: Chaos::new(),
        variant: "stable".into(),
        parts: runner::supervise::Supervisor::new(tokio_util::task::TaskTracker::new()),
    }
}

/// Message 0's work waits for a gate inside its transaction; messages 1–4 come after it.
/// Returns whether 1–4 committed before the gate opened.
async fn others_commit_while_the_first_is_open(ctx: &ServiceContext, at_once: usize) -> bool {
    let committer = Arc::new(GroupCommit::<u32>::start(ctx, "payment-svc/charge", 8, 8, at_once));
    let gate = Arc::new(Semaphore::new(0));
    let entered = Arc::new(Semaphore::new(0));
    let message = |id: u32| {
        let (committer, gate, entered) = (committer.clone(), gate.clone(), entered.clone());
        async move {
            committer
                .run(ReadAhead::default(), move |tx| {
                    let (gate, entered) = (gate.clone(), entered.clone());
                    async move {
                        sqlx::query("SELECT 1").execute(&mut **tx).await.unwrap();
                        if id == 0 {
                            entered.add_permits(1);
                            let _ = gate.acquire().await.unwrap();
                        }
                        Ok(id)
                    }
                    .boxed()
                })
                .await
        }
    };
    let first = tokio::spawn(message(0));
    let _ = entered.acquire().await.unwrap();
    let others = futures::future::join_all((1..5).map(message));
    let committed = tokio::time::timeout(Duration::from_secs(5), others).await;
    gate.add_permits(1);
    assert_eq!(first.await.unwrap().unwrap(), 0);
    match committed {
        Ok(results) => {
            assert_eq!(results.into_iter().map(Result::unwrap).collect::<Vec<_>>(), [1, 2, 3, 4]);
            true
        }
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_groups_commit_side_by_side_and_one_at_a_time_queues() {
    let db = TempPg::create("groups_side_by_side").await;
    let ctx = context(&db.url).await;
    assert!(others_commit_while_the_first_is_open(&ctx, 2).await, "a second group commits beside an open one");
    assert!(!others_commit_while_the_first_is_open(&ctx, 1).await, "with one group at a time the rest waits");
    ctx.store.close().await;
    db.drop_database().await;
}
