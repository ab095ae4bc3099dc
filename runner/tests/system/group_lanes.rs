//! `groups_in_flight`: a consumer's committer runs that many groups side by side over one
//! queue. On PostgreSQL, with two, a group whose work waits does not hold up the group queued
//! after it; with one, it does. On SQLite (one connection) groups stay one after the other
//! whatever the setting, and nothing hangs. Every message commits once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt as _;
use runner::services::group_commit::GroupCommit;
use runner::services::ServiceContext;
use runner::store::{ReadAhead, Store, StoreConfig};
use runner::transport::{Broker, BrokerConfig};
use tokio::sync::Semaphore;

use crate::support::{scalar, temp_sqlite, TempPg};

async fn context(url: &str) -> ServiceContext {
    let broker = Broker::connect(&BrokerConfig::embedded_single_partition()).unwrap();
    let store = Store::connect(&StoreConfig::for_url(url, 4).unwrap()).await.unwrap();
    sqlx::query("CREATE TABLE handled (id BIGINT PRIMARY KEY)").execute(store.pool()).await.unwrap();
    ServiceContext::standalone("orchestrator", store, broker)
}

/// Message `base` waits at a gate inside its transaction (having written nothing yet);
/// message `base + 1` is queued after it. Returns whether `base + 1` committed while `base`
/// still waited, then opens the gate and checks that both committed.
async fn next_commits_while_first_waits(ctx: &ServiceContext, lanes: usize, base: i64) -> bool {
    let committer = Arc::new(GroupCommit::<i64>::start(ctx, "orchestrator/saga-order", 8, 8, lanes));
    let gate = Arc::new(Semaphore::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let message = |id: i64| {
        let (committer, gate, started) = (committer.clone(), gate.clone(), started.clone());
        async move {
            committer
                .run(ReadAhead::default(), move |tx| {
                    let (gate, started) = (gate.clone(), started.clone());
                    async move {
                        started.fetch_add(1, Ordering::SeqCst);
                        if id == base {
                            let _ = gate.acquire().await;
                        }
                        sqlx::query("INSERT INTO handled (id) VALUES ($1)").bind(id).execute(&mut **tx).await.unwrap();
                        Ok(id)
                    }
                    .boxed()
                })
                .await
        }
    };
    let waiting = tokio::spawn(message(base));
    while started.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut next = tokio::spawn(message(base + 1));
    let beside = tokio::time::timeout(Duration::from_secs(2), &mut next).await.ok();
    gate.add_permits(1);
    assert_eq!(waiting.await.unwrap().unwrap(), base);
    let committed_beside = beside.is_some();
    let next = match beside {
        Some(done) => done,
        None => next.await,
    };
    assert_eq!(next.unwrap().unwrap(), base + 1);
    Arc::into_inner(committer).expect("no message holds the committer any more").close().await;
    committed_beside
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_groups_in_flight_commit_side_by_side_on_postgres() {
    let db = TempPg::create("group_lanes").await;
    let ctx = context(&db.url).await;
    assert!(!next_commits_while_first_waits(&ctx, 1, 10).await, "one group at a time: the next waits for the first");
    assert!(
        next_commits_while_first_waits(&ctx, 2, 20).await,
        "two groups in flight: the next commits beside the first"
    );
    assert!(
        next_commits_while_first_waits(&ctx, 8, 30).await,
        "eight asked, as many as the pool's four connections run"
    );
    assert_eq!(scalar(&ctx.store, "SELECT COUNT(*) FROM handled").await, 6, "every message once");
    ctx.store.close().await;
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_groups_in_flight_wait_for_its_one_connection() {
    let (_dir, url) = temp_sqlite();
    let ctx = context(&url).await;
    assert!(!next_commits_while_first_waits(&ctx, 2, 10).await, "one connection: the next group waits for it");
    assert_eq!(scalar(&ctx.store, "SELECT COUNT(*) FROM handled").await, 2, "both messages once");
    ctx.store.close().await;
}
