//! `runner simulate`: loads the pipelines of one system, runs a budget of seeds side by side
//! (`runner::simulate`), prints the figures, and for a broken invariant the smallest failing
//! run found by shrinking, with its trace and the command that replays it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt as _;
use runner::config::{self, LoadOptions};
use runner::simulate::{self, Faults, Mutant, Outcome, Scenario, System};

/// Prints a line; a closed stdout (`| head`) is not an error worth a panic.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// Runs in flight per worker thread.
const RUNS_PER_CORE: usize = 8;

/// Seeds per invocation at most.
pub const MAX_RUNS: u64 = 1_000_000;

/// What `runner simulate` was asked.
#[derive(clap::Args, Debug)]
pub struct SimulateArgs {
    /// The folder of the system's pipeline files.
    #[arg(long, value_name = "DIR", default_value = "pipelines")]
    pub pipelines: PathBuf,
    /// The first seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// How many seeds to run, from --seed on.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=MAX_RUNS))]
    pub runs: u64,
    /// Orders per run.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=simulate::MAX_ORDERS as i64))]
    pub orders: u32,
    /// Leave out the seed's first N orders (as a shrunk run prints it).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub skip_orders: u32,
    /// `standard`, `none`, or rates by kind: `delay=0.03,drop=0.02,duplicate=0.05,crash=0.01,error=0.02`
    /// (kinds not named are off; `fail` makes a handler fail an attempt; each rate 0 to 0.5).
    #[arg(long, default_value = "standard")]
    pub faults: String,
    /// Only these faults may strike, by the ids a trace shows (as a shrunk run prints them), or `none`.
    #[arg(long, value_name = "ID,…")]
    pub keep_faults: Option<String>,
    /// A deliberately broken variant, to see it caught: `charge-without-checks`, `inbox-skipped`.
    #[arg(long)]
    pub mutant: Option<String>,
    /// Print each run's trace.
    #[arg(long)]
    pub trace: bool,
    /// Worker threads (default: the number of cores); each keeps several runs in flight.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub jobs: Option<u32>,
}

/// Reads `--keep-faults`: `none`, or fault ids separated by commas.
fn keep_list(text: &str) -> Result<BTreeSet<u64>, String> {
    if text.trim() == "none" {
        return Ok(BTreeSet::new());
    }
    let ids: Option<BTreeSet<u64>> = text.split(',').map(simulate::parse_id).collect();
    match ids {
        Some(ids) if ids.len() <= 10_000 => Ok(ids),
        Some(_) => Err("--keep-faults takes at most 10,000 fault ids".into()),
        None => Err("--keep-faults takes fault ids as a trace shows them (`fault 3f09a1c2d4`: ten hex digits), \
             separated by commas, or `none`"
            .into()),
    }
}

fn system_of(dir: &std::path::Path) -> Result<System, String> {
    let files = config::pipeline_files(dir).map_err(|e| format!("{}: cannot read the folder: {e}", dir.display()))?;
    if files.is_empty() {
        return Err(format!("{}: no pipeline files (*.toml) to simulate", dir.display()));
    }
    let loaded = config::load_system(&files, &[], &LoadOptions::default()).map_err(|d| d.to_string())?;
    let pipelines: Vec<&config::Pipeline> = loaded.iter().map(|l| &l.pipeline).collect();
    System::from_pipelines(&pipelines).map_err(|e| format!("{}: {e}", dir.display()))
}

/// Runs the seeds; exit 0 when every invariant held in every run, 1 when one broke, 2 when
/// the arguments or the files are wrong.
pub fn run(args: SimulateArgs) -> ExitCode {
    match simulate(args) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::from(2)
        }
    }
}

fn simulate(args: SimulateArgs) -> Result<ExitCode, String> {
    let faults = Faults::parse(&args.faults).map_err(|e| format!("--faults: {e}"))?;
    let keep = args.keep_faults.as_deref().map(keep_list).transpose()?;
    let mutant = args.mutant.as_deref().map(Mutant::parse).transpose().map_err(|e| format!("--mutant: {e}"))?;
    if args.seed.checked_add(args.runs).is_none() {
        return Err(format!("--seed {} with --runs {} runs past the largest seed", args.seed, args.runs));
    }
    let system = Arc::new(system_of(&args.pipelines)?);
    let jobs = args.jobs.map_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()), |j| j as usize);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(jobs)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let last = args.seed + args.runs - 1;
    say!(
        "simulating {}: seed{} {}, {} order(s) each, faults {}{}",
        args.pipelines.display(),
        if args.runs > 1 { "s" } else { "" },
        if args.runs > 1 { format!("{}–{last}", args.seed) } else { args.seed.to_string() },
        args.orders,
        faults,
        mutant.map_or(String::new(), |m| format!(", mutant {}", m.name())),
    );
    let started = Instant::now();
    let outcomes: Vec<Outcome> = runtime.block_on(async {
        let results: Vec<Result<Outcome, String>> = futures::stream::iter(args.seed..=last)
            .map(|seed| {
                let system = system.clone();
                let scenario = Scenario {
                    seed,
                    orders: args.orders,
                    skip_orders: args.skip_orders,
                    faults,
                    keep: keep.clone(),
                    mutant,
                };
                async move {
                    tokio::spawn(async move { simulate::run(&system, &scenario).await })
                        .await
                        .unwrap_or_else(|e| Err(format!("seed {seed}: the run panicked: {e}")))
                }
            })
            // A run spends most of its time waiting for SQLite's own thread: several runs per
            // core keep the cores busy (measured: docs/benchmarks.md, "runner simulate").
            .buffer_unordered(jobs * RUNS_PER_CORE)
            .collect()
            .await;
        results.into_iter().collect::<Result<Vec<_>, String>>()
    })?;
    let elapsed = started.elapsed();
    let mut outcomes = outcomes;
    outcomes.sort_by_key(|o| o.scenario.seed);
    if args.trace {
        for outcome in &outcomes {
            say!("\nseed {}:", outcome.scenario.seed);
            for line in &outcome.trace {
                say!("{line}");
            }
        }
        say!("");
    }
    summary(&outcomes, elapsed.as_secs_f64());
    let broken: Vec<&Outcome> = outcomes.iter().filter(|o| !o.held()).collect();
    let Some(first) = broken.first() else { return Ok(ExitCode::SUCCESS) };
    let seeds: Vec<String> = broken.iter().take(20).map(|o| o.scenario.seed.to_string()).collect();
    say!(
        "\n{} of {} run(s) broke an invariant (seed{} {}{})",
        broken.len(),
        outcomes.len(),
        if broken.len() > 1 { "s" } else { "" },
        seeds.join(", "),
        if broken.len() > 20 { ", …" } else { "" }
    );
    for violation in &first.violations {
        say!("  seed {}: {}: {}", first.scenario.seed, violation.check, violation.detail);
    }
    say!("\nshrinking seed {} …", first.scenario.seed);
    let smallest = runtime.block_on(simulate::shrink(&system, (*first).clone()))?;
    let kept = smallest.scenario.keep.as_ref().map_or(0, BTreeSet::len);
    say!(
        "smallest failing run: {} order(s), faults {} ({} fault(s) struck)",
        smallest.scenario.orders,
        smallest.scenario.faults,
        kept
    );
    for violation in &smallest.violations {
        say!("  {}: {}", violation.check, violation.detail);
    }
    say!("replay it: {}", smallest.scenario.command());
    for line in &smallest.trace {
        say!("{line}");
    }
    Ok(ExitCode::from(1))
}

fn summary(outcomes: &[Outcome], seconds: f64) {
    let held = outcomes.iter().filter(|o| o.held()).count();
    let mut statuses: BTreeMap<&str, u64> = BTreeMap::new();
    for (status, n) in outcomes.iter().flat_map(|o| o.stats.statuses.iter()) {
        *statuses.entry(status).or_default() += n;
    }
    let orders: u64 = statuses.values().sum();
    let total = |f: fn(&Outcome) -> u64| outcomes.iter().map(f).sum::<u64>();
    let faults = total(|o| o.stats.faults.len() as u64);
    let per_minute = if seconds > 0.0 { outcomes.len() as f64 * 60.0 / seconds } else { 0.0 };
    let shown: Vec<String> = statuses.iter().map(|(s, n)| format!("{n} {s}")).collect();
    say!(
        "{} run(s): {held} held every invariant, {} broke one · {orders} orders: {} · {} deliveries ({} duplicate), \
         {faults} faults struck ({} crashes), {} dead letters · {seconds:.1} s ({per_minute:.0} runs/min)",
        outcomes.len(),
        outcomes.len() - held,
        shown.join(", "),
        total(|o| o.stats.deliveries),
        total(|o| o.stats.duplicates),
        total(|o| o.stats.crashes),
        total(|o| o.stats.dead_letters),
    );
    let cut: Vec<String> =
        outcomes.iter().filter(|o| o.stats.cut_short).take(10).map(|o| o.scenario.seed.to_string()).collect();
    if !cut.is_empty() {
        say!("runs cut short by the time or action limit (seeds {})", cut.join(", "));
    }
}
