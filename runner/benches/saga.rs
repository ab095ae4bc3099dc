//! The saga benchmark: the shipped pipelines under `runner up`, end to end, on PostgreSQL (WAL
//! relay) and on SQLite, against PostgreSQL's own ceiling measured in the same run.
//!
//! 1. ceiling: `--writers` connections commit one-row insert transactions for
//!    `--ceiling-seconds` on a throw-away database `chaos_bench_<hex>` (dropped at the end);
//! 2. for each store: `runner up pipelines` as a child process (embedded broker); idle CPU
//!    over 10 s, 20 s after it got ready (start-up work over); a burst of `--orders` orders from `--clients` keep-alive clients,
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

/// How long after `/readyz` the idle window starts: long enough for start-up work to end
/// (group joins, the first lag samples, paused consumers' first looks at 1, 2 and 4 s).
const IDLE_SETTLE: Duration = Duration::from_secs(20);

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
    /// `max_in_flight` of every consumer and of the saga, one run per value (written into
    /// a copy of the pipelines); unset: the shipped pipelines' own values.
    #[arg(long, value_delimiter = ',')]
    in_flight: Vec<u32>,
    /// `max_group` of every consumer and of the saga, one run per value and `max_in_flight`
    /// (values above a given `--in-flight` are skipped; above a shipped `max_in_flight` the
    /// runner refuses the files); unset, the default: groups of up to `max_in_flight`
    /// messages. `1` is a transaction per message (and drops the files' `groups_in_flight`).
    #[arg(long, value_delimiter = ',')]
    max_group: Vec<u32>,
    /// Passed by `cargo bench`; nothing to do with the workload.
    #[arg(long, hide = true)]
    bench: bool,
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
    if args.in_flight.iter().any(|n| !(1..=1024).contains(n)) {
        bail!("--in-flight values must be 1 to 1024");
    }
    let distinct: std::collections::BTreeSet<u32> = args.in_flight.iter().copied().collect();
    if distinct.len() != args.in_flight.len() {
        bail!("--in-flight values must differ (each value's run has a database of its own name)");
    }
    if args.max_group.iter().any(|n| !(1..=1024).contains(n)) {
        bail!("--max-group values must be 1 to 1024");
    }
    if args.stores.iter().any(|s| s != "postgres" && s != "sqlite") {
        bail!("--stores takes postgres and/or sqlite");
    }
    sqlx::any::install_default_drivers();
    let scratch = Scratch::new(&args.database_url)?;
    let dir = std::env::temp_dir().join(&scratch.name);
    std::fs::create_dir_all(&dir)?;

    let outcome = tokio::select! {
        result = bench(&args, &scratch, &dir) => result,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    if let Err(e) = scratch.drop_all().await {
        eprintln!("warning: cleanup failed ({e:#}); drop the slots and databases named {}_* by hand", scratch.name);
    }
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

/// Throw-away databases `chaos_bench_<hex>_<what>`, one per run: each starts from empty
/// tables and its own replication slot.
struct Scratch {
    admin: url::Url,
    name: String,
}

impl Scratch {
    fn new(admin: &str) -> anyhow::Result<Scratch> {
        let admin = url::Url::parse(admin).context("--database-url is not a URL")?;
        Ok(Scratch { admin, name: format!("chaos_bench_{}", Uuid::new_v4().simple()) })
    }

    /// Creates database `<name>_<what>` and gives its URL.
    async fn create(&self, what: &str) -> anyhow::Result<String> {
        let database = format!("{}_{what}", self.name);
        execute(self.admin.as_str(), &format!("CREATE DATABASE {database}")).await?;
        let mut url = self.admin.clone();
        url.set_path(&format!("/{database}"));
        Ok(url.to_string())
    }

    /// Drops every database of this run and its replication slots (waiting up to 30 s for a
    /// stopped relay's slot to become inactive).
    async fn drop_all(&self) -> anyhow::Result<()> {
        let admin = self.admin.as_str();
        let pattern = format!("{}_%", self.name);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let dropped = execute(
                admin,
                &format!("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database LIKE '{pattern}'"),
            )
            .await;
            match dropped {
                Ok(()) => break,
                Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(500)).await,
                Err(e) => return Err(e),
            }
        }
        let mut conn = sqlx::AnyConnection::connect(admin).await?;
        let names: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT CAST(datname AS text) FROM pg_database WHERE datname LIKE '{pattern}'"
        ))
        .fetch_all(&mut conn)
        .await?;
        for database in names {
            conn.execute(format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)").as_str()).await?;
        }
        Ok(())
    }
}

async fn execute(url: &str, sql: &str) -> anyhow::Result<()> {
    let mut conn = sqlx::AnyConnection::connect(url).await.with_context(|| format!("cannot connect to {url}"))?;
    conn.execute(sql).await.with_context(|| sql.to_string())?;
    let _ = conn.close().await;
    Ok(())
}

async fn bench(args: &Args, scratch: &Scratch, dir: &Path) -> anyhow::Result<()> {
    if args.stores.iter().any(|s| s == "postgres") {
        // Without logical decoding the relay polls: the figures would not be the WAL relay's.
        let mut conn = sqlx::AnyConnection::connect(scratch.admin.as_str()).await?;
        let (wal_level,): (String,) = sqlx::query_as("SHOW wal_level").fetch_one(&mut conn).await?;
        if wal_level != "logical" {
            bail!(
                "PostgreSQL runs with wal_level={wal_level}, the WAL relay needs logical; run scripts/prepare-postgres"
            );
        }
    }
    let ceiling =
        ceiling(&scratch.create("ceiling").await?, args.writers, Duration::from_secs(args.ceiling_seconds)).await?;
    println!(
        "PostgreSQL ceiling: {ceiling:.0} one-row commits/s ({} writers, {} s)",
        args.writers, args.ceiling_seconds
    );
    for store in &args.stores {
        let in_flights: Vec<Option<u32>> =
            if args.in_flight.is_empty() { vec![None] } else { args.in_flight.iter().copied().map(Some).collect() };
        for in_flight in in_flights {
            let groups: Vec<Option<u32>> = if args.max_group.is_empty() {
                vec![None]
            } else {
                args.max_group.iter().filter(|&&g| in_flight.is_none_or(|n| g <= n)).map(|&g| Some(g)).collect()
            };
            for max_group in groups {
                let in_flight_name = in_flight.map_or("shipped".to_string(), |n| n.to_string());
                let run = match max_group {
                    Some(g) => format!("{store}_{in_flight_name}_{g}"),
                    None => format!("{store}_{in_flight_name}"),
                };
                let url = match store.as_str() {
                    "postgres" => scratch.create(&run).await?,
                    _ => format!("sqlite://{}/{run}.db?mode=rwc", dir.display()),
                };
                let pipelines = pipelines_with(in_flight, max_group, &dir.join(&run))?;
                let figures = run_store(args, &url, &pipelines, dir).await.with_context(|| format!("{run} run"))?;
                let shown = |value: Option<u32>| value.map_or("as shipped".to_string(), |n| n.to_string());
                println!(
                    "\n## runner up, {store}, max_in_flight = {}, max_group = {}\n",
                    shown(in_flight),
                    shown(max_group)
                );
                figures.print(ceiling, store == "postgres");
            }
        }
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
    /// How long the POSTs took (all answered `202`).
    posting_seconds: f64,
    latencies: Vec<i64>,
    not_completed: usize,
    runner_cpu: f64,
    postgres_cpu: f64,
}

/// A hop's mean over a phase: (mean ms, how many).
type HopMean = (f64, f64);

struct Figures {
    idle_cpu_share: f64,
    burst: Phase,
    paced: Phase,
    rate: f64,
    peak_rss_mb: f64,
    /// Each hop's mean under the burst and in the paced run: (hop, burst (mean ms, how
    /// many), paced (mean ms, how many)), from the runner's own histograms.
    hops: Vec<(String, HopMean, HopMean)>,
    /// Messages per database transaction of the worker and saga consumers: burst, paced.
    groups: (f64, f64),
}

/// The mean of every series named `what…` between two readings of [`hop_totals`].
fn mean_between(
    from: &std::collections::BTreeMap<String, (f64, f64)>,
    to: &std::collections::BTreeMap<String, (f64, f64)>,
    what: &str,
) -> f64 {
    let (mut sum, mut count) = (0.0, 0.0);
    for (series, (s, n)) in to.iter().filter(|(series, _)| series.starts_with(what)) {
        let (s0, n0) = from.get(series).copied().unwrap_or_default();
        sum += s - s0;
        count += n - n0;
    }
    if count > 0.0 {
        sum / count
    } else {
        0.0
    }
}

/// The per-hop histograms' sums and counts by series, as `/metrics` shows them now.
async fn hop_totals(api: &str) -> anyhow::Result<std::collections::BTreeMap<String, (f64, f64)>> {
    let text = reqwest::get(format!("{api}/metrics")).await?.text().await?;
    let mut totals = std::collections::BTreeMap::new();
    let metrics = [
        ("relay_commit_to_ack_seconds", "outbox commit → broker ack (relay)"),
        ("consumer_delivery_seconds", "broker hop, produced → taken"),
        ("consumer_handle_seconds", "handling"),
        ("consumer_transaction_messages", "messages per transaction"),
    ];
    for line in text.lines() {
        for (metric, what) in metrics {
            for (suffix, is_count) in [("_sum", false), ("_count", true)] {
                let Some(rest) = line.strip_prefix(metric).and_then(|r| r.strip_prefix(suffix)) else { continue };
                let Some((labels, value)) = rest.rsplit_once(' ') else { continue };
                let Ok(value) = value.parse::<f64>() else { continue };
                let consumer = labels.split("consumer=\"").nth(1).and_then(|l| l.split('"').next()).unwrap_or("");
                let entry: &mut (f64, f64) = totals.entry(format!("{what} {consumer}").trim().to_string()).or_default();
                if is_count {
                    entry.1 += value;
                } else {
                    entry.0 += value;
                }
            }
        }
    }
    Ok(totals)
}

fn order(i: usize) -> serde_json::Value {
    json!({"customerId": format!("bench-{i}"), "currency": "EUR",
        "items": [{"sku": format!("SKU-{}", 1 + i % 5), "quantity": 1, "unitPrice": 100 + (i % 50) as i64}],
        "shipTo": {"country": "DE"}})
}

/// A copy of the shipped pipelines, with `max_in_flight` and `max_group` of every consumer
/// and the saga set where given (in place of the file's own), in `run/pipelines`, beside a
/// link to the repository's `schemas`.
fn pipelines_with(max_in_flight: Option<u32>, max_group: Option<u32>, run: &Path) -> anyhow::Result<PathBuf> {
    let repository = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let into = run.join("pipelines");
    std::fs::create_dir_all(&into)?;
    std::os::unix::fs::symlink(repository.join("schemas").canonicalize()?, run.join("schemas"))?;
    let overrides: Vec<(&str, u32)> = [("max_in_flight", max_in_flight), ("max_group", max_group)]
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
        .collect();
    // With a transaction per message there is no group to run side by side (the runner
    // refuses `groups_in_flight` above 1 then): the file's own goes.
    let dropped: Vec<&str> = if max_group == Some(1) { vec!["groups_in_flight"] } else { Vec::new() };
    for entry in std::fs::read_dir(repository.join("pipelines"))? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let mut text = String::new();
        for line in std::fs::read_to_string(&path)?.lines() {
            let key = line.split('=').next().unwrap_or_default().trim();
            if overrides.iter().any(|(k, _)| *k == key) || dropped.contains(&key) {
                continue;
            }
            text.push_str(line);
            text.push('\n');
            if line.trim() == "[[consumers]]" || line.trim() == "[saga]" {
                for (key, value) in &overrides {
                    text.push_str(&format!("{key} = {value}\n"));
                }
            }
        }
        std::fs::write(into.join(path.file_name().unwrap_or_default()), text)?;
    }
    Ok(into)
}

async fn run_store(args: &Args, url: &str, pipelines: &Path, dir: &Path) -> anyhow::Result<Figures> {
    let port = free_port()?;
    let api = format!("http://127.0.0.1:{port}");
    let log = dir.join(format!("runner-{port}.log"));
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_runner"))
        .arg("up")
        .arg(pipelines)
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

    // Idle: nothing posted, once start-up work (migrations, group joins, the first lag
    // samples and looks of paused consumers) is over.
    tokio::time::sleep(IDLE_SETTLE).await;
    let idle_from = (cpu_seconds(pid).unwrap_or(0.0), Instant::now());
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle_cpu_share = (cpu_seconds(pid).unwrap_or(0.0) - idle_from.0) / idle_from.1.elapsed().as_secs_f64();

    let start = hop_totals(&api).await?;
    let burst = phase(&api, pid, Load { orders: args.orders, clients: args.clients, rate: None }).await?;
    let before = hop_totals(&api).await?;
    let burst_groups = mean_between(&start, &before, "messages per transaction");
    let paced =
        phase(&api, pid, Load { orders: args.paced_orders, clients: args.clients, rate: Some(args.rate) }).await?;
    let after = hop_totals(&api).await?;
    // (mean ms, count) of a hop between two readings.
    let between = |from: &std::collections::BTreeMap<String, (f64, f64)>,
                   to: &std::collections::BTreeMap<String, (f64, f64)>,
                   hop: &str| {
        let ((s0, n0), (s1, n1)) =
            (from.get(hop).copied().unwrap_or_default(), to.get(hop).copied().unwrap_or_default());
        let n = n1 - n0;
        (if n > 0.0 { 1000.0 * (s1 - s0) / n } else { 0.0 }, n)
    };
    let hops = after
        .keys()
        .filter(|hop| !hop.starts_with("messages per transaction"))
        .map(|hop| (hop.clone(), between(&start, &before, hop), between(&before, &after, hop)))
        .filter(|(_, burst, paced)| burst.1 > 0.0 || paced.1 > 0.0)
        .collect();
    let paced_groups = mean_between(&before, &after, "messages per transaction");
    let peak_rss_mb = proc_status_kb(pid, "VmHWM").unwrap_or(0) as f64 / 1024.0;
    signal_term(pid);
    if tokio::time::timeout(Duration::from_secs(30), child.wait()).await.is_err() {
        eprintln!("warning: runner up still running 30 s after SIGTERM; killed");
    }
    Ok(Figures {
        idle_cpu_share,
        burst,
        paced,
        rate: args.rate,
        peak_rss_mb,
        hops,
        groups: (burst_groups, paced_groups),
    })
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
        posting_seconds: posted.elapsed.as_secs_f64(),
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
        both("POSTs answered/s", &|p| format!("{:.1}", p.orders as f64 / p.posting_seconds));
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
        println!("| messages per transaction | {:.2} | {:.2} |", self.groups.0, self.groups.1);
        println!("| idle CPU of runner up | {:.1} % of a core | |", 100.0 * self.idle_cpu_share);
        println!("| peak RSS | {:.0} MB | |", self.peak_rss_mb);
        println!();
        println!("| hop | burst: mean (ms) | messages | paced: mean (ms) | messages |");
        println!("| --- | --- | --- | --- | --- |");
        for (hop, (burst_ms, burst_n), (paced_ms, paced_n)) in &self.hops {
            println!("| {hop} | {burst_ms:.2} | {burst_n:.0} | {paced_ms:.2} | {paced_n:.0} |");
        }
    }
}
