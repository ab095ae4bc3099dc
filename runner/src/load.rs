//! Load on order-api: orders posted by a number of keep-alive clients, as fast as they go or
//! paced to a rate, then followed to their end. An order's latency is its `updatedAtMs −
//! createdAtMs` (POST committed → terminal state committed), as order-api reports it.
//!
//! Used by the saga benchmark (`cargo bench -p runner --bench saga`); a game day drives its
//! load with it too.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How many orders, by how many clients, at what pace.
#[derive(Debug, Clone)]
pub struct Load {
    pub orders: usize,
    /// Concurrent keep-alive connections posting (at least one).
    pub clients: usize,
    /// Orders per second in total; `None`: as fast as the clients go.
    pub rate: Option<f64>,
}

/// What posting the orders gave: their ids in posting order and how long it took.
#[derive(Debug, Clone)]
pub struct Posted {
    pub ids: Vec<String>,
    pub elapsed: Duration,
}

/// One order at its end.
#[derive(Debug, Clone, PartialEq)]
pub struct Settled {
    pub order_id: String,
    pub status: String,
    /// `updatedAtMs − createdAtMs`.
    pub latency_ms: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("order-api at {api}: {message}")]
    Api { api: String, message: String },
    #[error("{pending} of {total} orders not ended after {waited:?}; is the saga running?")]
    NotSettled { pending: usize, total: usize, waited: Duration },
}

/// Posts `load.orders` orders to `api` (`http://host:port`), order `i` being `order(i)`:
/// [`post_following`] at `load.rate` (or as fast as the clients go), stopping at the count.
pub async fn post_orders(
    api: &str,
    load: &Load,
    order: impl Fn(usize) -> Value + Send + Sync + 'static,
) -> Result<Posted, LoadError> {
    let (results, mut received) = tokio::sync::mpsc::unbounded_channel();
    let rate = load.rate.filter(|r| r.is_finite() && *r > 0.0).unwrap_or(f64::INFINITY);
    let pace = Pace { clients: load.clients, duration: Duration::MAX, limit: Some(load.orders as u64) };
    let started = Instant::now();
    let stop = tokio_util::sync::CancellationToken::new();
    post_following(api, &pace, |_| rate, |i| order(i as usize), results, stop).await?;
    let elapsed = started.elapsed();
    let mut ids = Vec::with_capacity(load.orders);
    while let Ok(result) = received.try_recv() {
        ids.push((result.index, result.outcome?));
    }
    ids.sort_by_key(|(i, _)| *i);
    Ok(Posted { ids: ids.into_iter().map(|(_, id)| id).collect(), elapsed })
}

/// How [`post_following`] sends: by how many keep-alive connections, for how long, and at
/// most how many orders.
#[derive(Debug, Clone)]
pub struct Pace {
    pub clients: usize,
    pub duration: Duration,
    pub limit: Option<u64>,
}

/// What became of one order of [`post_following`].
#[derive(Debug)]
pub struct PostResult {
    /// The order's place in the load (0, 1, …).
    pub index: u64,
    /// When it was sent.
    pub sent_at: Instant,
    /// The order id of a `202`, or why there was none.
    pub outcome: Result<String, LoadError>,
}

/// Posts orders at a rate that follows `rate_at(elapsed)` (orders per second; 0 pauses,
/// infinity sends as fast as the clients go) for `pace.duration`, up to `pace.limit` orders,
/// or until `stop`, by `pace.clients` keep-alive connections; order `i` is `next(i)`. Each
/// result goes to `results` as it comes. Returns how many orders were sent.
///
/// The one load generator: the saga benchmark and the game days both send through it. Sends
/// are scheduled by the clock, one every `1 / rate` seconds; when every client is busy the
/// next send waits for one (the system under test is slower than the asked rate).
pub async fn post_following(
    api: &str,
    pace: &Pace,
    rate_at: impl Fn(Duration) -> f64,
    mut next: impl FnMut(u64) -> Value,
    results: tokio::sync::mpsc::UnboundedSender<PostResult>,
    stop: tokio_util::sync::CancellationToken,
) -> Result<u64, LoadError> {
    let clients = pace.clients.max(1);
    let client =
        reqwest::Client::builder().pool_max_idle_per_host(clients).timeout(Duration::from_secs(30)).build().map_err(
            |e| LoadError::Api { api: api.to_string(), message: format!("cannot build an HTTP client: {e}") },
        )?;
    let slots = Arc::new(tokio::sync::Semaphore::new(clients));
    let started = Instant::now();
    let mut due = started;
    let mut sent = 0u64;
    loop {
        let elapsed = due.saturating_duration_since(started);
        if elapsed >= pace.duration || pace.limit.is_some_and(|limit| sent >= limit) || stop.is_cancelled() {
            break;
        }
        let rate = rate_at(elapsed);
        if rate.is_nan() || rate <= 0.0 {
            // A pause: look again in a tenth of a second.
            due += Duration::from_millis(100);
            tokio::select! {
                _ = tokio::time::sleep_until(due.into()) => {}
                _ = stop.cancelled() => break,
            }
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(due.into()) => {}
            _ = stop.cancelled() => break,
        }
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.map_err(|_| LoadError::Api { api: api.to_string(), message: "the load stopped".into() })?,
            _ = stop.cancelled() => break,
        };
        let (client, api, body, results, index) = (client.clone(), api.to_string(), next(sent), results.clone(), sent);
        tokio::spawn(async move {
            let sent_at = Instant::now();
            let outcome = post_one(&client, &api, &body).await;
            let _ = results.send(PostResult { index, sent_at, outcome });
            drop(slot);
        });
        sent += 1;
        // An infinite rate adds nothing: the next send waits only for a free client.
        due += Duration::from_secs_f64(1.0 / rate);
        // Far behind (every client was busy): do not burst to catch up.
        let now = Instant::now();
        if now > due + Duration::from_secs(1) {
            due = now;
        }
    }
    // Wait for the posts in flight, so every sent order has its result.
    let _ = slots.acquire_many(clients as u32).await;
    Ok(sent)
}

async fn post_one(client: &reqwest::Client, api: &str, order: &Value) -> Result<String, LoadError> {
    let failed = |message: String| LoadError::Api { api: api.to_string(), message };
    let mut delay = Duration::from_millis(50);
    // A 503 (database busy) is tried again; anything else that is not 202 is an error.
    for _ in 0..20 {
        let response = client
            .post(format!("{api}/api/orders"))
            .json(order)
            .send()
            .await
            .map_err(|e| failed(format!("POST /api/orders: {e}")))?;
        let status = response.status();
        if status == reqwest::StatusCode::SERVICE_UNAVAILABLE {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
            continue;
        }
        let body: Value =
            response.json().await.map_err(|e| failed(format!("POST /api/orders answered {status}: {e}")))?;
        if status != reqwest::StatusCode::ACCEPTED {
            return Err(failed(format!("POST /api/orders answered {status}: {body}")));
        }
        return body["orderId"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| failed(format!("POST /api/orders answered without an orderId: {body}")));
    }
    Err(failed("POST /api/orders kept answering 503".to_string()))
}

/// Waits until every order of `ids` is terminal (COMPLETED, CANCELLED or FAILED), polling
/// order-api, for at most `timeout`.
///
/// Orders end about in the order they were posted, so each round asks in posting order and
/// stops at the first batch that still holds an unfinished order: every order is asked about
/// once or a few times, not once per round. (Asking all of them each round cost the runner
/// and its database as much as the saga itself under a 3,000-order burst.)
pub async fn settle(api: &str, ids: &[String], timeout: Duration) -> Result<Vec<Settled>, LoadError> {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + timeout;
    let mut settled: Vec<Option<Settled>> = vec![None; ids.len()];
    loop {
        let pending: Vec<usize> = (0..ids.len()).filter(|i| settled[*i].is_none()).collect();
        if pending.is_empty() {
            return Ok(settled.into_iter().flatten().collect());
        }
        let last_round = Instant::now() >= deadline;
        for chunk in pending.chunks(16) {
            let answers = futures::future::join_all(chunk.iter().map(|&i| order_state(&client, api, &ids[i]))).await;
            let mut unfinished = false;
            for (&i, answer) in chunk.iter().zip(answers) {
                settled[i] = answer?;
                unfinished |= settled[i].is_none();
            }
            if unfinished && !last_round {
                break;
            }
        }
        if last_round {
            let pending = settled.iter().filter(|s| s.is_none()).count();
            if pending > 0 {
                return Err(LoadError::NotSettled { pending, total: ids.len(), waited: timeout });
            }
            continue;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn order_state(client: &reqwest::Client, api: &str, id: &str) -> Result<Option<Settled>, LoadError> {
    let failed = |message: String| LoadError::Api { api: api.to_string(), message };
    let response = client
        .get(format!("{api}/api/orders/{id}"))
        .send()
        .await
        .map_err(|e| failed(format!("GET order {id}: {e}")))?;
    let body: Value = response.json().await.map_err(|e| failed(format!("GET order {id}: {e}")))?;
    let status = body["status"].as_str().unwrap_or_default();
    if !matches!(status, "COMPLETED" | "CANCELLED" | "FAILED") {
        return Ok(None);
    }
    let (created, updated) = (body["createdAtMs"].as_i64(), body["updatedAtMs"].as_i64());
    Ok(Some(Settled {
        order_id: id.to_string(),
        status: status.to_string(),
        latency_ms: updated.zip(created).map_or(0, |(u, c)| u.saturating_sub(c)),
    }))
}

/// The `p`-th percentile (0 to 100) of `values`, nearest rank; `None` when empty.
pub fn percentile(values: &[i64], p: f64) -> Option<i64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let rank = ((p.clamp(0.0, 100.0) / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentiles_by_nearest_rank() {
        let values: Vec<i64> = (1..=100).rev().collect();
        for (p, want) in [(0.0, Some(1)), (50.0, Some(50)), (90.0, Some(90)), (99.0, Some(99)), (100.0, Some(100))] {
            assert_eq!(percentile(&values, p), want, "p{p}");
        }
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[7], 99.0), Some(7));
    }
}
