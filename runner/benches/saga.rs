//! The saga benchmark: the shipped pipelines under `runner up`, end to end, on PostgreSQL (WAL
//! relay) and on SQLite, against PostgreSQL's own ceiling measured in the same run.
//!
//! 1. ceiling: `--writers` connections commit one-row insert transactions for
//!    `--ceiling-seconds` on a throw-away database `chaos_bench_<hex>` (dropped at the end);
//! 2. for each store: `runner up pipelines` as a child process (embedded broker); idle CPU
//!    over 10 s once ready; a burst of `--orders` orders from `--clients` keep-alive clients,
//!    every order followed to its end (orders/s = orders ÷ first POST to last terminal state);
//!    then `--paced-orders` at `--rate` orders/s; latency = `updatedAtMs − createdAtMs`;
//!    CPU per order of the runner and of every PostgreSQL process; the runner's peak RSS.
//!
//! Run: `cargo bench -p runner --bench saga -- [--orders 3000] [--clients 16] …`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use clap::Parser;
use runner::load::{self, Load, Settled};
use serde_json::json;
use sqlx::{Connection, Executor};
use uuid::Uuid;

mod common;
use common::{cpu_seconds, cpu_seconds_of_all, free_port, proc_status_kb, signal_term};

#[derive(Parser, Debug)]
#[command(name = "saga", about = "Benchmarks the whole saga under `runner up` and prints the figures")]
struct Args {
    /// Admin URL of the PostgreSQL server; a throw-away database is created there.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    database_url: String,
    /// Writers of the ceiling measurement.
    #[arg(long, default_value_t = 8)]
    writers: usize,
    #[arg(long, default_value_t = 5)]
    ceiling_seconds: u64,
    /// Orders of the burst.
    #[arg(long, default_value_t = 3000)]
    orders: usize,
    /// Keep-alive clients posting the burst.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Orders of the paced run.
    #[arg(long, default_value_t = 1000)]
    paced_orders: usize,
    /// Orders per second of the paced run.
    #[arg(long, default_value_t = 50.0)]
    rate: f64,
    /// Which stores to run, of `postgres` and `sqlite`.
    #[arg(long, value_delimiter = ',', default_value = "postgres,sqlite")]
    stores: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.writers == 0 || args.orders == 0 || args.clients == 0 || args.paced_orders == 0 {
        bail!("--writers, --orders, --clients and --paced-orders must be at least 1");
    }
    if !(args.rate.is_finite() && args.rate > 0.0 && args.rate <= 10_000.0) {
        bail!("--rate must be above 0 and at most 10000 orders/s");
    }
    if args.stores.iter().any(|s| s != "postgres" && s != "sqlite") {
        bail!("--stores takes postgres and/or sqlite");
    }
    sqlx::any::install_default_drivers();
    let name = format!("chaos_bench_{}", Uuid::new_v4().simple());
    let mut url = url::Url::parse(&args.database_url).context("--database-url is not a URL")?;
    let admin = url.to_string();
    execute(&admin, &format!("CREATE DATABASE {name}")).await?;
    url.set_path(&format!("/{name}"));
    let db_url = url.to_string();
    let dir = std::env::temp_dir().join(&name);
    std::fs::create_dir_all(&dir)?;

    let outcome = tokio::select! {
        result = bench(&args, &db_url, &dir) => result,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    let cleanup = async {
        execute(
            &admin,
            &format!("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = '{name}'"),
        )
        .await?;
        execute(&admin, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await
    };
    if let Err(e) = cleanup.await {
        eprintln!("warning: cleanup failed ({e:#}); drop the slots of database {name} and the database by hand");
    }
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

async fn execute(url: &str, sql: &str) -> anyhow::Result<()> {
    let mut conn = sqlx::AnyConnection::connect(url).await.with_context(|| format!("cannot connect to {url}"))?;
    conn.execute(sql).await.with_context(|| sql.to_string())?;
    let _ = conn.close().await;
    Ok(())
}

async fn bench(args: &Args, db_url: &str, dir: &Path) -> anyhow::Result<()> {
    let ceiling = ceiling(db_url, args.writers, Duration::from_secs(args.ceiling_seconds)).await?;
    println!(
        "PostgreSQL ceiling: {ceiling:.0} one-row commits/s ({} writers, {} s)",
        args.writers, args.ceiling_seconds
    );
    for store in &args.stores {
        let url = if store == "postgres" {
            db_url.to_string()
        } else {
            format!("sqlite://{}/bench.db?mode=rwc", dir.display())
        };
        let figures = run_store(args, &url, dir).await.with_context(|| format!("{store} run"))?;
        println!("\n## runner up, {store}\n");
        figures.print(ceiling, store == "postgres");
    }
    Ok(())
}

/// One-row insert transactions per second of `writers` connections.
async fn ceiling(db_url: &str, writers: usize, duration: Duration) -> anyhow::Result<f64> {
    execute(db_url, "CREATE TABLE bench_ceiling (id uuid PRIMARY KEY, payload jsonb NOT NULL)").await?;
    let committed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..writers {
        let (committed, url) = (committed.clone(), db_url.to_string());
        tasks.spawn(async move {
            let mut conn = sqlx::AnyConnection::connect(&url).await?;
            while started.elapsed() < duration {
                sqlx::query("INSERT INTO bench_ceiling (id, payload) VALUES (CAST($1 AS uuid), CAST($2 AS jsonb))")
                    .bind(Uuid::new_v4().to_string())
                    .bind(r#"{"orderId":"x","total":100}"#)
                    .execute(&mut conn)
                    .await?;
                committed.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    execute(db_url, "DROP TABLE bench_ceiling").await?;
    Ok(committed.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

struct Phase {
    orders: usize,
    seconds: f64,
    latencies: Vec<i64>,
    not_completed: usize,
    runner_cpu: f64,
    postgres_cpu: f64,
}

struct Figures {
    idle_cpu_share: f64,
    burst: Phase,
    paced: Phase,
    rate: f64,
    peak_rss_mb: f64,
}

fn order(i: usize) -> serde_json::Value {
    json!({"customerId": format!("bench-{i}"), "currency": "EUR",
        "items": [{"sku": format!("SKU-{}", 1 + i % 5), "quantity": 1, "unitPrice": 100 + (i % 50) as i64}],
        "shipTo": {"country": "DE"}})
}

async fn run_store(args: &Args, url: &str, dir: &Path) -> anyhow::Result<Figures> {
    let port = free_port()?;
    let api = format!("http://127.0.0.1:{port}");
    let log = dir.join(format!("runner-{port}.log"));
    let pipelines = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../pipelines");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_runner"))
        .arg("up")
        .arg(&pipelines)
        .args(["--database-url", url, "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .kill_on_drop(true)
        .spawn()
        .context("cannot start runner up")?;
    let pid = child.id().ok_or_else(|| anyhow!("runner up exited at once; see {}", log.display()))?;
    wait_ready(&api, Duration::from_secs(120))
        .await
        .with_context(|| format!("runner up never got ready; see {}", log.display()))?;

    // Idle: settled after start-up, nothing posted.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle_from = (cpu_seconds(pid).unwrap_or(0.0), Instant::now());
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle_cpu_share = (cpu_seconds(pid).unwrap_or(0.0) - idle_from.0) / idle_from.1.elapsed().as_secs_f64();

    let burst = phase(&api, pid, Load { orders: args.orders, clients: args.clients, rate: None }).await?;
    let paced =
        phase(&api, pid, Load { orders: args.paced_orders, clients: args.clients, rate: Some(args.rate) }).await?;
    let peak_rss_mb = proc_status_kb(pid, "VmHWM").unwrap_or(0) as f64 / 1024.0;
    signal_term(pid);
    if tokio::time::timeout(Duration::from_secs(30), child.wait()).await.is_err() {
        eprintln!("warning: runner up still running 30 s after SIGTERM; killed");
    }
    Ok(Figures { idle_cpu_share, burst, paced, rate: args.rate, peak_rss_mb })
}

async fn wait_ready(api: &str, timeout: Duration) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(response) = client.get(format!("{api}/readyz")).send().await {
            if response.status().is_success() {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    bail!("/readyz did not answer 200 within {timeout:?}")
}

async fn phase(api: &str, pid: u32, plan: Load) -> anyhow::Result<Phase> {
    let (runner0, postgres0, started) =
        (cpu_seconds(pid).unwrap_or(0.0), cpu_seconds_of_all("postgres"), Instant::now());
    let posted = load::post_orders(api, &plan, order).await?;
    let settled: Vec<Settled> = load::settle(api, &posted.ids, Duration::from_secs(900)).await?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(Phase {
        orders: plan.orders,
        seconds,
        latencies: settled.iter().map(|s| s.latency_ms).collect(),
        not_completed: settled.iter().filter(|s| s.status != "COMPLETED").count(),
        runner_cpu: cpu_seconds(pid).unwrap_or(0.0) - runner0,
        postgres_cpu: cpu_seconds_of_all("postgres") - postgres0,
    })
}

impl Figures {
    fn print(&self, ceiling: f64, postgres: bool) {
        println!("| figure | burst | paced at {} orders/s |", self.rate);
        println!("| --- | --- | --- |");
        let both = |label: &str, f: &dyn Fn(&Phase) -> String| {
            println!("| {label} | {} | {} |", f(&self.burst), f(&self.paced))
        };
        both("orders", &|p| p.orders.to_string());
        both("orders/s end to end", &|p| format!("{:.1}", p.orders as f64 / p.seconds));
        if postgres {
            both("÷ PostgreSQL ceiling", &|p| format!("{:.2} %", 100.0 * p.orders as f64 / p.seconds / ceiling));
        }
        for (label, q) in [("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("max", 100.0)] {
            both(&format!("latency {label} (ms)"), &|p| {
                load::percentile(&p.latencies, q).map_or("-".into(), |v| v.to_string())
            });
        }
        both("not COMPLETED", &|p| p.not_completed.to_string());
        both("CPU per order, runner (ms)", &|p| format!("{:.2}", 1000.0 * p.runner_cpu / p.orders as f64));
        if postgres {
            both("CPU per order, PostgreSQL (ms)", &|p| format!("{:.2}", 1000.0 * p.postgres_cpu / p.orders as f64));
        }
        println!("| idle CPU of runner up | {:.1} % of a core | |", 100.0 * self.idle_cpu_share);
        println!("| peak RSS | {:.0} MB | |", self.peak_rss_mb);
    }
}
