//! The relay benchmark: measures the WAL outbox relay against a real PostgreSQL and prints the figures.
//!
//! The workload, on a throw-away database `chaos_bench_<hex>` (dropped at the end with its
//! replication slots, also on error or Ctrl-C):
//!
//! 1. baseline: `--writers` connections insert `--rows` single-row outbox transactions at full
//!    speed with no relay and no slot;
//! 2. the relay (`runner --pipeline`, WAL mode, a separate process) is started against a
//!    Kafka-protocol broker hosted in this process; start-to-streaming is measured;
//! 3. full speed: the same writers again while the relay runs; writer rate, relay throughput
//!    and commit-to-ack latency (as the relay reports it at `/api/relay/status`);
//! 4. paced: `--paced-rows` rows at `--rate` rows/s in total; latency and achieved rate;
//! 5. the relay process's peak RSS and CPU time, then SIGTERM.
//!
//! Run: `cargo bench -p runner --bench relay -- [--writers 8] [--rows 50000] …` (cargo builds
//! the `runner` binary it starts with the same profile).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};
use clap::Parser;
use hdrhistogram::Histogram;
use reqwest::{Method, StatusCode};
use runner::store::Store;
use runner::store::StoreConfig;
use runner::transport::EmbeddedBroker;
use serde_json::Value;
use sqlx::pool::PoolConnection;
use sqlx::{Any, Connection, Row};
use uuid::Uuid;

mod common;
use common::{cpu_seconds, free_port, proc_status_kb, signal_term};

const TOPIC: &str = "order.created";
const PARTITIONS: i32 = 4;
const ORDER_IDS: usize = 1000;
const STATUS_POLL: Duration = Duration::from_millis(5);
const INSERT: &str =
    "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, traceparent, source, occurred_at) \
                      VALUES (CAST($1 AS uuid), 'order', $2, 'order.created', CAST($3 AS jsonb), $4, 'bench', $5)";

// The project's targets for the relay.
const TARGET_PACED_P99_MS: f64 = 5.0;
const TARGET_WRITER_RATIO: f64 = 0.90;
const TARGET_FULL_P99_MS: f64 = 50.0;
const TARGET_PEAK_RSS_MB: f64 = 50.0;
const TARGET_START_MS: f64 = 300.0;

#[derive(Parser, Debug)]
#[command(name = "relay", about = "Benchmarks the WAL outbox relay against PostgreSQL and prints the figures")]
struct Args {
    /// Admin URL of the PostgreSQL server; a throw-away database is created there.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    database_url: String,
    /// Concurrent writer connections.
    #[arg(long, default_value_t = 8)]
    writers: usize,
    /// Rows written at full speed (baseline, and again with the relay).
    #[arg(long, default_value_t = 50_000)]
    rows: usize,
    /// Rows written in the paced phase.
    #[arg(long, default_value_t = 20_000)]
    paced_rows: usize,
    /// Total rows per second of the paced phase, across all writers.
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// Approximate size of each JSON payload.
    #[arg(long, default_value_t = 300)]
    payload_bytes: usize,
    /// Passed by `cargo bench`; nothing to do with the workload.
    #[arg(long, hide = true)]
    bench: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.writers == 0 || args.rows == 0 || args.paced_rows == 0 || args.rate == 0 {
        bail!("--writers, --rows, --paced-rows and --rate must be at least 1");
    }
    let relay_exe = Path::new(env!("CARGO_BIN_EXE_runner"));

    sqlx::any::install_default_drivers();
    let name = format!("chaos_bench_{}", Uuid::new_v4().simple());
    let mut admin_url = url::Url::parse(&args.database_url).context("--database-url is not a URL")?;
    {
        let mut admin = sqlx::AnyConnection::connect(admin_url.as_str())
            .await
            .with_context(|| format!("cannot connect to {admin_url}"))?;
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.context("CREATE DATABASE")?;
        let _ = admin.close().await;
    }
    let admin = admin_url.to_string();
    admin_url.set_path(&format!("/{name}"));
    let db_url = admin_url.to_string();
    let dir = std::env::temp_dir().join(&name);
    eprintln!("database {name}; relay files in {}", dir.display());

    let outcome = tokio::select! {
        result = bench(&args, &db_url, relay_exe, &dir) => result,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    // The relay process (kill_on_drop) and the pool are gone with the bench future.
    if let Err(e) = cleanup(&admin, &name).await {
        eprintln!(
            "warning: cleanup failed ({e:#}); drop the replication slots of database {name} and the database by hand"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    let report = outcome?;
    println!("{report}");
    Ok(())
}

/// Drops the database's replication slots (ending the connections that hold them) and the database.
async fn cleanup(admin_url: &str, name: &str) -> anyhow::Result<()> {
    let mut conn = sqlx::AnyConnection::connect(admin_url).await?;
    for _ in 0..100 {
        sqlx::query(
            "SELECT CAST(pg_terminate_backend(active_pid) AS text) FROM pg_replication_slots \
             WHERE database = $1 AND active_pid IS NOT NULL",
        )
        .bind(name)
        .execute(&mut conn)
        .await?;
        let slots: Vec<String> =
            sqlx::query("SELECT CAST(slot_name AS text) FROM pg_replication_slots WHERE database = $1")
                .bind(name)
                .fetch_all(&mut conn)
                .await?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?;
        if slots.is_empty() {
            break;
        }
        for slot in slots {
            match sqlx::query("SELECT CAST(pg_drop_replication_slot($1) AS text)").bind(&slot).execute(&mut conn).await
            {
                Ok(_) => {}
                // Still active for a moment after the terminate.
                Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("55006") => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn).await?;
    Ok(())
}

/// What one row looks like; payloads are padded JSON of about `payload_bytes`.
struct Workload {
    order_ids: Vec<String>,
    payload_bytes: usize,
}

impl Workload {
    fn new(payload_bytes: usize) -> Self {
        Workload { order_ids: (0..ORDER_IDS).map(|_| Uuid::new_v4().to_string()).collect(), payload_bytes }
    }

    fn payload(&self, order_id: &str, n: usize) -> String {
        let mut text = format!(
            r#"{{"orderId":"{order_id}","customerId":"customer-{:04}","currency":"EUR","total":{},"items":[{{"sku":"SKU-{:03}","quantity":{},"unitPrice":1999}}],"shipTo":{{"country":"DE","city":"Berlin"}},"note":""#,
            n % 5000,
            1999 * (1 + n % 3),
            n % 100,
            1 + n % 3
        );
        let pad = self.payload_bytes.saturating_sub(text.len() + 2);
        text.push_str(&"x".repeat(pad));
        text.push_str("\"}");
        text
    }

    /// One single-row autocommit transaction.
    /// Records the statement's round trip (insert and commit) in `timings`, in µs.
    async fn insert(
        &self,
        conn: &mut PoolConnection<Any>,
        n: usize,
        timings: &mut Histogram<u64>,
    ) -> anyhow::Result<()> {
        let order_id = &self.order_ids[n % ORDER_IDS];
        let trace = Uuid::new_v4().simple().to_string();
        let span = Uuid::new_v4().simple().to_string();
        let payload = self.payload(order_id, n);
        let traceparent = format!("00-{trace}-{}-01", &span[..16]);
        let sent = Instant::now();
        sqlx::query(INSERT)
            .bind(Uuid::new_v4().to_string())
            .bind(order_id)
            .bind(payload)
            .bind(traceparent)
            .bind(runner::event::now_rfc3339())
            .execute(&mut **conn)
            .await
            .context("insert into outbox")?;
        let _ = timings.record((sent.elapsed().as_micros() as u64).max(1));
        Ok(())
    }
}

async fn connections(store: &Store, writers: usize) -> anyhow::Result<Vec<PoolConnection<Any>>> {
    let mut conns = Vec::with_capacity(writers);
    for _ in 0..writers {
        conns.push(store.pool().acquire().await?);
    }
    Ok(conns)
}

fn timings() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// What the writers of one phase did: wall time from first insert to last commit, and the
/// round trip of each INSERT (autocommit) in µs.
struct Writes {
    took: Duration,
    timings: Histogram<u64>,
}

async fn join_writers(
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<Histogram<u64>>>>,
) -> anyhow::Result<Histogram<u64>> {
    let mut all = timings();
    for task in tasks {
        all.add(task.await??)?;
    }
    Ok(all)
}

/// `rows` rows as fast as the writers go.
async fn write_full_speed(
    store: &Store,
    workload: &Arc<Workload>,
    writers: usize,
    rows: usize,
    base: usize,
) -> anyhow::Result<Writes> {
    let conns = connections(store, writers).await?;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|mut conn| {
            let (next, workload) = (next.clone(), workload.clone());
            tokio::spawn(async move {
                let mut timings = timings();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= rows {
                        return Ok::<_, anyhow::Error>(timings);
                    }
                    workload.insert(&mut conn, base + n, &mut timings).await?;
                }
            })
        })
        .collect();
    let timings = join_writers(tasks).await?;
    Ok(Writes { took: started.elapsed(), timings })
}

/// `rows` rows at `rate` rows/s in total: each writer ticks every `writers / rate` seconds,
/// the writers' ticks spread evenly; `took` runs from the first tick.
async fn write_paced(
    store: &Store,
    workload: &Arc<Workload>,
    writers: usize,
    rows: usize,
    rate: u32,
    base: usize,
) -> anyhow::Result<Writes> {
    let conns = connections(store, writers).await?;
    let period = Duration::from_secs_f64(writers as f64 / rate as f64);
    let start = tokio::time::Instant::now() + Duration::from_millis(20);
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(w, mut conn)| {
            let workload = workload.clone();
            let share = rows / writers + usize::from(w < rows % writers);
            let offset = Duration::from_secs_f64(w as f64 / rate as f64);
            tokio::spawn(async move {
                let mut interval = tokio::time::interval_at(start + offset, period);
                let mut timings = timings();
                for k in 0..share {
                    interval.tick().await;
                    workload.insert(&mut conn, base + w + k * writers, &mut timings).await?;
                }
                Ok::<_, anyhow::Error>(timings)
            })
        })
        .collect();
    let timings = join_writers(tasks).await?;
    Ok(Writes { took: tokio::time::Instant::now().saturating_duration_since(start), timings })
}

/// The relay's JSON status routes, over kept-alive connections.
#[derive(Clone)]
struct Http {
    client: reqwest::Client,
    base: String,
}

/// The admin token of the relay the benchmark starts (its latency reset needs one).
const BENCH_TOKEN: &str = "relay-benchmark-token-0001";

impl Http {
    fn new(addr: SocketAddr) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder().tcp_nodelay(true).timeout(Duration::from_secs(5)).build()?;
        Ok(Http { client, base: format!("http://{addr}") })
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(Method::GET, path).await
    }

    async fn post(&self, path: &str) -> anyhow::Result<Value> {
        self.send(Method::POST, path).await
    }

    async fn send(&self, method: Method, path: &str) -> anyhow::Result<Value> {
        let context = format!("{method} {}{path}", self.base);
        let mut request = self.client.request(method.clone(), format!("{}{path}", self.base));
        if method != Method::GET {
            request = request.bearer_auth(BENCH_TOKEN);
        }
        let response = request.send().await.context(context.clone())?;
        let code = response.status();
        if code != StatusCode::OK {
            bail!("{context}: HTTP {code}: {}", response.text().await.unwrap_or_default());
        }
        response.json().await.context(context)
    }
}

fn unix_micros(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_micros() as i64
}

/// Polls the status every 5 ms until `publishedTotal` reaches `target`; returns the moment it
/// was seen there and that status. Fails when nothing is published for a minute.
async fn wait_published(http: Http, target: u64) -> anyhow::Result<(SystemTime, Value)> {
    let mut last_total = None;
    let mut last_progress = Instant::now();
    let mut interval = tokio::time::interval(STATUS_POLL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let status = http.get("/api/relay/status").await?;
        let seen = SystemTime::now();
        let total = status["publishedTotal"].as_u64().unwrap_or(0);
        if total >= target {
            return Ok((seen, status));
        }
        if last_total != Some(total) {
            last_total = Some(total);
            last_progress = Instant::now();
        } else if last_progress.elapsed() > Duration::from_secs(60) {
            bail!(
                "the relay published nothing for a minute ({total} of {target}); last error: {}",
                status["lastError"]
            );
        }
    }
}

#[derive(Default, Clone, Copy)]
struct Latency {
    count: u64,
    p50: f64,
    p95: f64,
    p99: f64,
    max: f64,
}

impl Latency {
    fn from_status(status: &Value) -> Self {
        let l = &status["commitToAckMs"];
        let ms = |key: &str| l[key].as_f64().unwrap_or(f64::NAN);
        Latency {
            count: l["count"].as_u64().unwrap_or(0),
            p50: ms("p50"),
            p95: ms("p95"),
            p99: ms("p99"),
            max: ms("max"),
        }
    }

    /// From a histogram in µs.
    fn from_micros(h: &Histogram<u64>) -> Self {
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        Latency { count: h.len(), p50: ms(0.50), p95: ms(0.95), p99: ms(0.99), max: h.max() as f64 / 1000.0 }
    }
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Creation times (clock_timestamp() at insert) of the rows after `seq`: first and last, in Unix µs.
async fn created_range(store: &Store, after_seq: i64) -> anyhow::Result<(i64, i64)> {
    let row = sqlx::query(
        "SELECT CAST(EXTRACT(EPOCH FROM MIN(created_at)) * 1000000 AS BIGINT), \
         CAST(EXTRACT(EPOCH FROM MAX(created_at)) * 1000000 AS BIGINT) FROM outbox WHERE seq > $1",
    )
    .bind(after_seq)
    .fetch_one(store.pool())
    .await?;
    let first: Option<i64> = row.try_get(0)?;
    let last: Option<i64> = row.try_get(1)?;
    Ok((first.ok_or_else(|| anyhow!("no rows written"))?, last.unwrap_or_default()))
}

async fn last_seq(store: &Store) -> anyhow::Result<i64> {
    Ok(sqlx::query("SELECT CAST(COALESCE(MAX(seq), 0) AS BIGINT) FROM outbox")
        .fetch_one(store.pool())
        .await?
        .try_get(0)?)
}

/// Where the relay's replication connection (the walsender) runs, to read its CPU time.
async fn walsender_pid(store: &Store) -> Option<u32> {
    let row = sqlx::query(
        "SELECT CAST(active_pid AS BIGINT) FROM pg_replication_slots \
         WHERE database = current_database() AND active_pid IS NOT NULL",
    )
    .fetch_optional(store.pool())
    .await
    .ok()??;
    row.try_get::<i64, _>(0).ok().map(|pid| pid as u32)
}

struct Phase {
    writer_secs: f64,
    writer_rate: f64,
    first_commit_micros: i64,
    last_commit_micros: i64,
    last_ack_micros: i64,
    latency: Latency,
    /// The writers' INSERT round trips.
    insert: Latency,
    relay_cpu_secs: Option<f64>,
    walsender_cpu_secs: Option<f64>,
    /// This process: the writers' client side and the embedded broker.
    bench_cpu_secs: Option<f64>,
}

impl Phase {
    fn relay_rate(&self, rows: usize) -> f64 {
        rows as f64 / ((self.last_ack_micros - self.first_commit_micros).max(1) as f64 / 1e6)
    }
}

struct Report {
    args: ArgsEcho,
    nproc: usize,
    kernel: String,
    cpu_model: String,
    pg_version: String,
    baseline_secs: f64,
    baseline_rate: f64,
    baseline_insert: Latency,
    baseline_bench_cpu: Option<f64>,
    start_in_process_ms: Option<i64>,
    start_observed_ms: f64,
    idle_cpu: (Option<f64>, Option<f64>),
    full: Phase,
    paced: Phase,
    peak_rss_kb: Option<u64>,
    relay_cpu_total: Option<f64>,
    published_total: u64,
    reconnects: u64,
    last_error: Option<String>,
    exit: String,
    stop_ms: f64,
}

struct ArgsEcho {
    writers: usize,
    rows: usize,
    paced_rows: usize,
    rate: u32,
    payload_bytes: usize,
}

async fn bench(args: &Args, db_url: &str, relay_exe: &Path, dir: &Path) -> anyhow::Result<Report> {
    let store = Store::connect(&StoreConfig::for_url(db_url, (args.writers + 4) as u32).unwrap())
        .await
        .context("connect to the bench database")?;
    let pg_version: String = sqlx::query("SHOW server_version").fetch_one(store.pool()).await?.try_get(0)?;
    let nproc = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string();
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':').map(|(_, v)| v.trim().to_string()))
        .unwrap_or_else(|| "unknown".into());
    let workload = Arc::new(Workload::new(args.payload_bytes));

    // 1. Baseline: no relay, no slot.
    eprintln!("baseline: {} rows, {} writers, no relay", args.rows, args.writers);
    let me = std::process::id();
    let bench_cpu0 = cpu_seconds(me);
    let baseline = write_full_speed(&store, &workload, args.writers, args.rows, 0).await?;
    let baseline_bench_cpu = cpu_seconds(me).zip(bench_cpu0).map(|(b, a)| b - a);
    let baseline_rate = args.rows as f64 / baseline.took.as_secs_f64();
    eprintln!("baseline: {baseline_rate:.0} rows/s");
    sqlx::query("TRUNCATE outbox").execute(store.pool()).await?;

    // 2. Broker in this process, relay in its own.
    let broker = EmbeddedBroker::start(1)?;
    broker.create_topic(TOPIC, PARTITIONS, 1)?;
    std::fs::create_dir_all(dir)?;
    let pipeline = dir.join("outbox-relay.toml");
    std::fs::write(
        &pipeline,
        format!(
            "[service]\nname = \"outbox-relay\"\n\n[relay]\nmode = \"wal\"\nafter_publish = \"keep\"\nstatus_interval = \"1s\"\n\n[admin]\ntokens = {{ bench = \"{BENCH_TOKEN}\" }}\n"
        ),
    )?;
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    let log_path = dir.join("relay.log");
    let spawned = Instant::now();
    let mut relay = tokio::process::Command::new(relay_exe)
        .arg("--pipeline")
        .arg(&pipeline)
        .args(["--database-url", db_url, "--brokers", broker.bootstrap_servers(), "--listen", &addr.to_string()])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path)?)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", relay_exe.display()))?;
    let pid = relay.id().ok_or_else(|| anyhow!("the relay exited at once"))?;
    let http = Http::new(addr)?;
    let start_in_process_ms = loop {
        if let Some(exit) = relay.try_wait()? {
            bail!("the relay exited ({exit}) before streaming:\n{}", log_tail(&log_path));
        }
        if spawned.elapsed() > Duration::from_secs(60) {
            bail!("the relay was not streaming after 60 s:\n{}", log_tail(&log_path));
        }
        if let Ok(status) = http.get("/api/relay/status").await {
            if let Some(ms) = status["startToStreamingMs"].as_i64() {
                break Some(ms);
            }
        }
        tokio::time::sleep(STATUS_POLL).await;
    };
    let start_observed_ms = spawned.elapsed().as_secs_f64() * 1000.0;
    eprintln!(
        "relay streaming: {} ms in process, {start_observed_ms:.0} ms observed",
        start_in_process_ms.map_or("?".into(), |m| m.to_string())
    );
    let walsender = walsender_pid(&store).await;

    // The relay's idle CPU, without and with the 5 ms status polling the phases below use.
    let idle = {
        let window = Duration::from_secs(2);
        let cpu0 = cpu_seconds(pid);
        tokio::time::sleep(window).await;
        let cpu1 = cpu_seconds(pid);
        let polling = tokio::spawn(wait_published(http.clone(), u64::MAX));
        tokio::time::sleep(window).await;
        polling.abort();
        let cpu2 = cpu_seconds(pid);
        let per_second = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| (b - a) / window.as_secs_f64());
        (per_second(cpu0, cpu1), per_second(cpu1, cpu2))
    };

    // 3. Full speed with the relay.
    let full = {
        http.post("/api/relay/status/reset-latency").await?;
        let seq = last_seq(&store).await?;
        let (cpu0, wal0) = (cpu_seconds(pid), walsender.and_then(cpu_seconds));
        let watcher = tokio::spawn(wait_published(http.clone(), args.rows as u64));
        eprintln!("full speed: {} rows, {} writers, relay running", args.rows, args.writers);
        let me0 = cpu_seconds(me);
        let writes = write_full_speed(&store, &workload, args.writers, args.rows, args.rows).await?;
        let (acked, status) = watcher.await??;
        let (cpu1, wal1, me1) = (cpu_seconds(pid), walsender.and_then(cpu_seconds), cpu_seconds(me));
        let (first, last) = created_range(&store, seq).await?;
        let phase = Phase {
            writer_secs: writes.took.as_secs_f64(),
            writer_rate: args.rows as f64 / writes.took.as_secs_f64(),
            insert: Latency::from_micros(&writes.timings),
            bench_cpu_secs: me0.zip(me1).map(|(a, b)| b - a),
            first_commit_micros: first,
            last_commit_micros: last,
            last_ack_micros: unix_micros(acked),
            latency: Latency::from_status(&status),
            relay_cpu_secs: cpu0.zip(cpu1).map(|(a, b)| b - a),
            walsender_cpu_secs: wal0.zip(wal1).map(|(a, b)| b - a),
        };
        eprintln!(
            "full speed: writers {:.0} rows/s, relay {:.0} rows/s, p99 {} ms",
            phase.writer_rate,
            phase.relay_rate(args.rows),
            phase.latency.p99
        );
        phase
    };

    // 4. Paced.
    let paced = {
        http.post("/api/relay/status/reset-latency").await?;
        let seq = last_seq(&store).await?;
        let (cpu0, wal0) = (cpu_seconds(pid), walsender.and_then(cpu_seconds));
        let target = (args.rows + args.paced_rows) as u64;
        let watcher = tokio::spawn(wait_published(http.clone(), target));
        eprintln!("paced: {} rows at {} rows/s", args.paced_rows, args.rate);
        let me0 = cpu_seconds(me);
        let writes = write_paced(&store, &workload, args.writers, args.paced_rows, args.rate, 2 * args.rows).await?;
        let (acked, status) = watcher.await??;
        let (cpu1, wal1, me1) = (cpu_seconds(pid), walsender.and_then(cpu_seconds), cpu_seconds(me));
        let (first, last) = created_range(&store, seq).await?;
        let phase = Phase {
            writer_secs: writes.took.as_secs_f64(),
            writer_rate: args.paced_rows as f64 / writes.took.as_secs_f64(),
            insert: Latency::from_micros(&writes.timings),
            bench_cpu_secs: me0.zip(me1).map(|(a, b)| b - a),
            first_commit_micros: first,
            last_commit_micros: last,
            last_ack_micros: unix_micros(acked),
            latency: Latency::from_status(&status),
            relay_cpu_secs: cpu0.zip(cpu1).map(|(a, b)| b - a),
            walsender_cpu_secs: wal0.zip(wal1).map(|(a, b)| b - a),
        };
        eprintln!("paced: {:.0} rows/s achieved, p99 {} ms", phase.writer_rate, phase.latency.p99);
        phase
    };

    // 5. Process figures, then SIGTERM.
    let status = http.get("/api/relay/status").await?;
    let peak_rss_kb = proc_status_kb(pid, "VmHWM");
    let relay_cpu_total = cpu_seconds(pid);
    let stopping = Instant::now();
    signal_term(pid);
    let exit = match tokio::time::timeout(Duration::from_secs(30), relay.wait()).await {
        Ok(Ok(exit)) => exit.to_string(),
        Ok(Err(e)) => format!("wait failed: {e}"),
        Err(_) => "still running 30 s after SIGTERM (killed)".to_string(),
    };
    let stop_ms = stopping.elapsed().as_secs_f64() * 1000.0;
    drop(relay);
    store.close().await;
    drop(broker);

    Ok(Report {
        args: ArgsEcho {
            writers: args.writers,
            rows: args.rows,
            paced_rows: args.paced_rows,
            rate: args.rate,
            payload_bytes: args.payload_bytes,
        },
        nproc,
        kernel,
        cpu_model,
        pg_version,
        baseline_secs: baseline.took.as_secs_f64(),
        baseline_insert: Latency::from_micros(&baseline.timings),
        baseline_bench_cpu,
        baseline_rate,
        start_in_process_ms,
        start_observed_ms,
        idle_cpu: idle,
        full,
        paced,
        peak_rss_kb,
        relay_cpu_total,
        published_total: status["publishedTotal"].as_u64().unwrap_or(0),
        reconnects: status["reconnects"].as_u64().unwrap_or(0),
        last_error: status["lastError"].as_str().map(str::to_string),
        exit,
        stop_ms,
    })
}

fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.round());
    let (sign, digits) = digits.strip_prefix('-').map_or(("", digits.as_str()), |d| ("-", d));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

fn ms(value: f64) -> String {
    if value.is_nan() {
        "n/a".into()
    } else if value < 10.0 {
        format!("{value:.2} ms")
    } else {
        format!("{value:.1} ms")
    }
}

fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "not met"
    }
}

fn per_row_micros(secs: Option<f64>, rows: u64) -> String {
    match secs {
        Some(secs) if rows > 0 => format!("{:.1} µs/row", secs * 1e6 / rows as f64),
        _ => "n/a".into(),
    }
}

fn secs(value: Option<f64>) -> String {
    value.map_or("n/a".into(), |s| format!("{s:.2} s"))
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let a = &self.args;
        let (full, paced) = (&self.full, &self.paced);
        let ratio = full.writer_rate / self.baseline_rate;
        let rss_mib = self.peak_rss_kb.map(|kb| kb as f64 / 1024.0);
        let rss_mb = self.peak_rss_kb.map(|kb| kb as f64 * 1024.0 / 1e6);
        let start_ms = self.start_in_process_ms.map(|m| m as f64);
        let relay_rate = full.relay_rate(a.rows);
        let drain_ms = |p: &Phase| (p.last_ack_micros - p.last_commit_micros) as f64 / 1000.0;

        writeln!(f, "## Outbox relay, WAL mode")?;
        writeln!(f)?;
        writeln!(
            f,
            "Machine: {} CPU(s) (`nproc`), {}, Linux {}; PostgreSQL {}.",
            self.nproc, self.cpu_model, self.kernel, self.pg_version
        )?;
        writeln!(
            f,
            "Workload: {} writers, single-row autocommit INSERTs of ~{}-byte JSON payloads into `outbox`, \
             {} rows at full speed (without, then with the relay), then {} rows paced at {} rows/s; \
             topic `{TOPIC}` with {PARTITIONS} partitions on the embedded broker (in the benchmark's process).",
            a.writers,
            a.payload_bytes,
            thousands(a.rows as f64),
            thousands(a.paced_rows as f64),
            a.rate
        )?;
        writeln!(f)?;
        writeln!(f, "| Measure | Value |")?;
        writeln!(f, "|---|---|")?;
        writeln!(
            f,
            "| Writers, no relay (baseline) | {} rows/s ({:.2} s) |",
            thousands(self.baseline_rate),
            self.baseline_secs
        )?;
        writeln!(
            f,
            "| Writers, relay running | {} rows/s ({:.2} s), {:.1}% of baseline |",
            thousands(full.writer_rate),
            full.writer_secs,
            ratio * 100.0
        )?;
        writeln!(
            f,
            "| Relay throughput, full speed (rows / (last ack − first commit)) | {} rows/s |",
            thousands(relay_rate)
        )?;
        writeln!(f, "| Last ack after the writers' last commit, full speed | {} |", ms(drain_ms(full)))?;
        writeln!(
            f,
            "| Commit-to-ack, full speed: p50 / p95 / p99 / max | {} / {} / {} / {} ({} rows) |",
            ms(full.latency.p50),
            ms(full.latency.p95),
            ms(full.latency.p99),
            ms(full.latency.max),
            thousands(full.latency.count as f64)
        )?;
        writeln!(
            f,
            "| Paced rate achieved (target {} rows/s) | {} rows/s ({:.2} s) |",
            a.rate,
            thousands(paced.writer_rate),
            paced.writer_secs
        )?;
        writeln!(
            f,
            "| Commit-to-ack, paced: p50 / p95 / p99 / max | {} / {} / {} / {} ({} rows) |",
            ms(paced.latency.p50),
            ms(paced.latency.p95),
            ms(paced.latency.p99),
            ms(paced.latency.max),
            thousands(paced.latency.count as f64)
        )?;
        writeln!(f, "| Last ack after the writers' last commit, paced | {} |", ms(drain_ms(paced)))?;
        writeln!(
            f,
            "| Start to streaming: in process (`startToStreamingMs`) / observed from spawn | {} / {:.0} ms |",
            self.start_in_process_ms.map_or("n/a".into(), |m| format!("{m} ms")),
            self.start_observed_ms
        )?;
        writeln!(
            f,
            "| Relay peak RSS (`VmHWM`) | {} |",
            match (rss_mib, rss_mb) {
                (Some(mib), Some(mb)) => format!("{mib:.1} MiB ({mb:.1} MB)"),
                _ => "n/a".into(),
            }
        )?;
        writeln!(
            f,
            "| Relay CPU, whole run (start-up and idle included) | {}, {} over {} published rows |",
            secs(self.relay_cpu_total),
            per_row_micros(self.relay_cpu_total, self.published_total),
            thousands(self.published_total as f64)
        )?;
        let per_s = |v: Option<f64>| v.map_or("n/a".into(), |v| format!("{:.1} ms/s", v * 1000.0));
        writeln!(
            f,
            "| Relay CPU while idle: no status polling / polled every 5 ms | {} / {} |",
            per_s(self.idle_cpu.0),
            per_s(self.idle_cpu.1)
        )?;
        writeln!(
            f,
            "| Relay CPU, full-speed phase | {}, {} |",
            secs(full.relay_cpu_secs),
            per_row_micros(full.relay_cpu_secs, a.rows as u64)
        )?;
        writeln!(
            f,
            "| Relay CPU, paced phase | {}, {} |",
            secs(paced.relay_cpu_secs),
            per_row_micros(paced.relay_cpu_secs, a.paced_rows as u64)
        )?;
        writeln!(
            f,
            "| PostgreSQL walsender CPU, full speed / paced | {} / {} |",
            per_row_micros(full.walsender_cpu_secs, a.rows as u64),
            per_row_micros(paced.walsender_cpu_secs, a.paced_rows as u64)
        )?;
        let quantiles = |l: &Latency| format!("{} / {} / {}", ms(l.p50), ms(l.p99), ms(l.max));
        writeln!(f, "| Writers' INSERT round trip p50 / p99 / max, baseline | {} |", quantiles(&self.baseline_insert))?;
        writeln!(f, "| Writers' INSERT round trip p50 / p99 / max, full speed | {} |", quantiles(&full.insert))?;
        writeln!(f, "| Writers' INSERT round trip p50 / p99 / max, paced | {} |", quantiles(&paced.insert))?;
        writeln!(
            f,
            "| Benchmark process CPU (writers' client side, embedded broker): baseline / full speed / paced | {} / {} / {} |",
            per_row_micros(self.baseline_bench_cpu, a.rows as u64),
            per_row_micros(full.bench_cpu_secs, a.rows as u64),
            per_row_micros(paced.bench_cpu_secs, a.paced_rows as u64)
        )?;
        writeln!(
            f,
            "| Relay reconnects / last error | {} / {} |",
            self.reconnects,
            self.last_error.as_deref().unwrap_or("none")
        )?;
        writeln!(f, "| Relay exit after SIGTERM | {} in {:.0} ms |", self.exit, self.stop_ms)?;
        writeln!(f)?;
        writeln!(f, "| Target | Measured | |")?;
        writeln!(f, "|---|---|---|")?;
        writeln!(
            f,
            "| p99 commit-to-ack under {TARGET_PACED_P99_MS} ms at {} rows/s | {} | {} |",
            a.rate,
            ms(paced.latency.p99),
            met(paced.latency.p99 < TARGET_PACED_P99_MS)
        )?;
        writeln!(
            f,
            "| Writers keep ≥ {:.0}% of their no-relay rate at full speed | {:.1}% | {} |",
            TARGET_WRITER_RATIO * 100.0,
            ratio * 100.0,
            met(ratio >= TARGET_WRITER_RATIO)
        )?;
        writeln!(
            f,
            "| p99 commit-to-ack under {TARGET_FULL_P99_MS} ms at full speed | {} | {} |",
            ms(full.latency.p99),
            met(full.latency.p99 < TARGET_FULL_P99_MS)
        )?;
        writeln!(
            f,
            "| Peak RSS under {TARGET_PEAK_RSS_MB} MB | {} | {} |",
            rss_mb.map_or("n/a".into(), |mb| format!("{mb:.1} MB")),
            met(rss_mb.is_some_and(|mb| mb < TARGET_PEAK_RSS_MB))
        )?;
        writeln!(
            f,
            "| Start to streaming under {TARGET_START_MS} ms | {} in process, {:.0} ms observed | {} |",
            self.start_in_process_ms.map_or("n/a".into(), |m| format!("{m} ms")),
            self.start_observed_ms,
            met(start_ms.is_some_and(|m| m < TARGET_START_MS))
        )?;
        Ok(())
    }
}
