//! The `runner` command line: run one pipeline, run them all (`up`), check, graph, schema,
//! check the relay (`relay reconcile`), and run game days (`gameday`, in `gameday_cli.rs`).

mod gameday_cli;
mod plan_cli;
mod simulate_cli;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use runner::config::{self, Defaults, LoadOptions, Overrides};
use runner::services::relay::reconcile::{reconcile, ReconcileOptions};
use runner::store::Store;
use runner::transport::Broker;
use runner::transport::Brokers;

/// mimalloc (its v2) instead of the system's malloc: under a burst glibc's malloc and free
/// were about a quarter of the runner's own CPU (docs/benchmarks.md, 2026-12-07, later).
/// Without transparent huge pages (`no_thp`): with them the burst's peak RSS grew from 92 to
/// 130 MB; v3 kept 99–100 MB where v2 keeps 92–97.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mi_option_t` (the same index in its v2 and v3; the
/// sys crate names no constant for it). Checked against both bundled builds: with
/// `MIMALLOC_PURGE_DELAY=7` in the environment, `mi_option_get(15)` reads 7.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Freed memory goes back to the OS at once instead of after a delay (10 ms in v2, a second
/// in v3): with v3 the burst's peak RSS was 101–105 MB with the delay and 94–100 MB without.
fn return_freed_memory_at_once() {
    // SAFETY: sets one integer option of the allocator; any value is valid for it, and the
    // allocator reads options with atomics, so other threads may allocate meanwhile.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
}

#[derive(Parser)]
#[command(name = "runner", version, about = "Runs Chaos Symphony services from TOML pipeline files")]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    /// Run the service described by this pipeline file.
    #[arg(long, value_name = "FILE")]
    pipeline: Option<PathBuf>,
    #[command(flatten)]
    overrides: OverrideArgs,
    /// Log as JSON lines instead of text.
    #[arg(long, global = true, env = "RUNNER_LOG_FORMAT", value_parser = ["text", "json"], default_value = "text")]
    log_format: String,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Args, Clone, Default)]
struct OverrideArgs {
    /// Broker list, or "embedded" (overrides the file and RUNNER_BROKERS).
    #[arg(long)]
    brokers: Option<String>,
    /// Database URL, postgres://… or sqlite://… (overrides the file and RUNNER_DATABASE_URL).
    #[arg(long)]
    database_url: Option<String>,
    /// Address to listen on (overrides the file and RUNNER_LISTEN).
    #[arg(long)]
    listen: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run every pipeline of DIR in one process on embedded defaults.
    Up {
        /// Directory of pipeline files.
        #[arg(default_value = "pipelines")]
        dir: PathBuf,
        /// Where the SQLite database lives when no database URL is given.
        #[arg(long, default_value = "data")]
        data_dir: PathBuf,
        #[command(flatten)]
        overrides: OverrideArgs,
    },
    /// Validate pipeline files without network or database; print every problem.
    Check {
        /// Files or directories (default: pipelines/).
        paths: Vec<PathBuf>,
    },
    /// Print a pipeline's saga as a Mermaid diagram.
    Graph { file: PathBuf },
    /// Print (or write) the JSON Schema of pipeline files (or of game-day scenarios).
    Schema {
        #[arg(long, value_name = "PATH")]
        write: Option<PathBuf>,
        /// The schema of game-day scenario files instead.
        #[arg(long, conflicts_with = "test")]
        gameday: bool,
        /// The schema of test files (pipelines/tests/*.toml) instead.
        #[arg(long)]
        test: bool,
    },
    /// List the compiled handlers a pipeline can use.
    Handlers,
    /// What applying edited pipeline files would do, per service: unchanged, applied live, or
    /// a restart needed (and why), before anything is saved. Exit code 0: all applies live;
    /// 1: a service needs a restart; 2: a file does not load, or the target runs other files.
    Plan {
        /// The edited pipeline files, or a folder of them.
        #[arg(required = true)]
        new: Vec<PathBuf>,
        /// The folder of the files in force (what the system runs from).
        #[arg(long, value_name = "DIR")]
        against: PathBuf,
        /// The running system: checks that it runs the files of --against (by hash).
        #[arg(long, value_name = "URL")]
        target: Option<String>,
    },
    /// Run the saga and handler cases of test files, with no broker and no database server.
    /// Exit code 0: every case passed; 1: one failed; 2: a file could not be loaded.
    Test {
        /// Test files or folders of them (default `pipelines/tests`).
        paths: Vec<PathBuf>,
    },
    /// Run the whole system on a virtual clock, one exact interleaving per seed: the services'
    /// own code on an in-memory database, a simulated broker, faults drawn from the seed;
    /// check the invariants after each run and shrink a failure to its smallest run.
    /// Exit code 0: every invariant held; 1: one broke; 2: bad arguments or files.
    Simulate(simulate_cli::SimulateArgs),
    /// List every topic the pipelines need on the broker, or write them as Strimzi KafkaTopics.
    Topics {
        /// Pipeline files or directories (default `pipelines`).
        paths: Vec<PathBuf>,
        /// `text` (one topic per line, `compacted` marked) or `strimzi` (KafkaTopic objects).
        #[arg(long, default_value = "text", value_parser = ["text", "strimzi"])]
        format: String,
        /// Partitions of each topic (strimzi; compacted topics keep one).
        #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u32).range(1..=1000))]
        partitions: u32,
        /// Replicas of each topic (strimzi).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=10))]
        replicas: u32,
        /// Write the output here instead of printing it (e.g. kubernetes/kafka/topics.yaml).
        #[arg(long, value_name = "PATH")]
        write: Option<PathBuf>,
    },
    /// Service-level objectives: generate Prometheus rules.
    Slo {
        #[command(subcommand)]
        command: SloCommand,
    },
    /// Check the outbox relay.
    Relay {
        #[command(subcommand)]
        command: RelayCommand,
    },
    /// Game days: run a scenario, print a run's report.
    Gameday {
        #[command(subcommand)]
        command: GamedayCommand,
    },
}

#[derive(Subcommand)]
enum GamedayCommand {
    /// Run a scenario file and follow it. Exit code 0: the hypothesis held and the audit is
    /// green; 1: it did not; 2: a stop condition (or Ctrl-C) aborted it; 3: it could not run.
    Run {
        /// The scenario, e.g. pipelines/gamedays/baseline.toml.
        file: PathBuf,
        /// The running system (where gameday-svc answers), e.g. http://127.0.0.1:8080.
        /// Without it, the system of the pipelines beside the scenario folder is started
        /// here on embedded defaults for the run.
        #[arg(long)]
        target: Option<String>,
        /// Admin token for gameday-svc (default: the token of the gameday pipeline's [admin]).
        #[arg(long, env = "RUNNER_GAMEDAY_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Write the run's report here when it ends (`.html`, else Markdown).
        #[arg(long, value_name = "PATH")]
        report: Option<PathBuf>,
    },
    /// Print (or write) the report of a run.
    Report {
        /// The run's id.
        run: String,
        /// Where gameday-svc answers.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        target: String,
        /// `md`, `html` or `json`.
        #[arg(long, default_value = "md", value_parser = ["md", "html", "json"])]
        format: String,
        /// Write it here instead of printing it.
        #[arg(long, value_name = "PATH")]
        output: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum SloCommand {
    /// Generates Prometheus recording and burn-rate alert rules from every `[[slo.objectives]]`.
    Rules {
        /// Pipeline files or directories (default `pipelines`).
        paths: Vec<PathBuf>,
        /// Write the rules here instead of printing them (e.g. dashboards/rules/slo.rules.yml).
        #[arg(long, value_name = "PATH")]
        write: Option<PathBuf>,
        /// As a Prometheus Operator PrometheusRule (e.g. kubernetes/monitoring/slo-rules.yaml).
        #[arg(long)]
        prometheus_rule: bool,
    },
}

#[derive(Subcommand)]
enum RelayCommand {
    /// Compare the outbox with what reached the topics: rows missing, duplicated, unknown
    /// records, order per key. Exit code 0: nothing missing; 1: rows missing; 2: error.
    Reconcile(ReconcileArgs),
}

#[derive(Args)]
struct ReconcileArgs {
    /// The relay's pipeline file (its [relay], [store] and [broker] settings).
    #[arg(long, value_name = "FILE")]
    pipeline: PathBuf,
    /// Broker list (overrides the file and RUNNER_BROKERS). For an embedded broker, the
    /// address the runner hosting it printed at start.
    #[arg(long)]
    brokers: Option<String>,
    /// Database URL, postgres://… or sqlite://… (overrides the file and RUNNER_DATABASE_URL).
    #[arg(long)]
    database_url: Option<String>,
    /// Check only the outbox rows with seq >= N.
    #[arg(long, value_name = "N")]
    since_seq: Option<i64>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    return_freed_memory_at_once();
    runner::telemetry::process_started();
    let cli = Cli::parse();
    if matches!(cli.command, Some(Command::Gameday { .. })) && std::env::var_os("RUST_LOG").is_none() {
        // The progress line, not the log of a system started for the run, is what to see.
        std::env::set_var("RUST_LOG", "warn,rdkafka=off,librdkafka=off");
    }
    let export = spans_to_export(&cli);
    runner::traces::init_subscriber(cli.log_format == "json", export.as_ref());
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Some(Command::Check { paths }) => Ok(check(paths)),
        Some(Command::Graph { file }) => {
            let loaded = config::load(&file, &LoadOptions::default()).map_err(|d| anyhow::anyhow!("{d}"))?;
            let Some(saga) = loaded.pipeline.saga else {
                bail!("{} has no [saga] section; graph draws the orchestrator's saga", file.display());
            };
            print!("{}", config::graph::mermaid(&saga.definition));
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Schema { write, gameday, test }) => {
            let schema = if gameday {
                config::scenario::scenario_schema()
            } else if test {
                config::test_file::test_schema()
            } else {
                config::pipeline_schema()
            };
            match write {
                Some(path) => {
                    std::fs::write(&path, schema).with_context(|| format!("cannot write {}", path.display()))?
                }
                None => print!("{schema}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Handlers) => {
            for handler in runner::handlers::HANDLERS {
                println!("{:<20} {}", handler.name, handler.summary);
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Test { paths }) => Ok(test(paths)),
        Some(Command::Simulate(args)) => Ok(simulate_cli::run(args)),
        Some(Command::Plan { new, against, target }) => Ok(plan_cli::run(plan_cli::PlanArgs { new, against, target })),
        Some(Command::Topics { paths, format, partitions, replicas, write }) => {
            let pipelines: Vec<_> = load_files(&paths)?.into_iter().map(|l| l.pipeline).collect();
            let topics = runner::deploy::system_topics(&pipelines);
            let text = match format.as_str() {
                "strimzi" => {
                    runner::deploy::strimzi_topics(&topics, runner::deploy::TopicLayout { partitions, replicas })
                }
                _ => topics
                    .iter()
                    .map(|t| if t.compacted { format!("{} compacted\n", t.name) } else { format!("{}\n", t.name) })
                    .collect(),
            };
            write_or_print(write.as_deref(), &text)
        }
        Some(Command::Slo { command: SloCommand::Rules { paths, write, prometheus_rule } }) => {
            let objectives: Vec<_> = load_files(&paths)?.into_iter().flat_map(|l| l.pipeline.slo).collect();
            if objectives.is_empty() {
                bail!("no [[slo.objectives]] in the pipeline files; declare some (see pipelines/orchestrator.toml)");
            }
            let rules = runner::slo::prometheus_rules(&objectives);
            let text = if prometheus_rule { runner::deploy::prometheus_rule(&rules) } else { rules };
            write_or_print(write.as_deref(), &text)
        }
        // Errors exit with 2 here: 1 means the check ran and found rows missing.
        Some(Command::Relay { command: RelayCommand::Reconcile(args) }) => {
            Ok(relay_reconcile(args).unwrap_or_else(|e| {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }))
        }
        Some(Command::Gameday { command: GamedayCommand::Run { file, target, token, report } }) => {
            Ok(gameday_cli::run(gameday_cli::RunArgs { file, target, token, report }))
        }
        Some(Command::Gameday { command: GamedayCommand::Report { run, target, format, output } }) => {
            Ok(gameday_cli::report(&run, &target, &format, output.as_deref()))
        }
        Some(Command::Up { dir, data_dir, overrides }) => {
            let files = config::pipeline_files(&dir)
                .with_context(|| format!("cannot read pipeline directory {}", dir.display()))?;
            if files.is_empty() {
                bail!("no pipeline files (*.toml) in {}", dir.display());
            }
            let options = up_options(&data_dir, &overrides);
            let loaded = config::load_system(&files, &[], &options).map_err(|d| anyhow::anyhow!("{d}"))?;
            let listen = overrides
                .listen
                .or_else(|| std::env::var("RUNNER_LISTEN").ok())
                .unwrap_or_else(|| "127.0.0.1:8080".into());
            let listen: SocketAddr = listen
                .parse()
                .with_context(|| format!("`{listen}` is not a socket address; write it like 127.0.0.1:8080"))?;
            serve(loaded, listen, options)
        }
        None => {
            let Some(file) = cli.pipeline else {
                bail!("nothing to run: give --pipeline FILE, or use `runner up`, `runner check` (see --help)");
            };
            let options = pipeline_options(&cli.overrides);
            let loaded = config::load(&file, &options).map_err(|d| anyhow::anyhow!("{d}"))?;
            let listen = loaded.pipeline.listen;
            serve(vec![loaded], listen, options)
        }
    }
}

/// The pipelines of `paths` (files or directories; default `pipelines`), loaded as a system
/// without the environment: what generated files are made from.
fn load_files(paths: &[PathBuf]) -> anyhow::Result<Vec<config::LoadedPipeline>> {
    let paths = if paths.is_empty() { vec![PathBuf::from("pipelines")] } else { paths.to_vec() };
    let files = toml_files(&paths).map_err(anyhow::Error::msg)?;
    config::load_system(&files, &[], &LoadOptions::default()).map_err(|d| anyhow::anyhow!("{d}"))
}

/// The files of `paths`: each folder's `*.toml` files (sorted), each file as given.
pub(crate) fn toml_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            files.extend(
                config::pipeline_files(path).map_err(|e| format!("{}: cannot read directory: {e}", path.display()))?,
            );
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

/// Writes `text` to `path`, or prints it.
fn write_or_print(path: Option<&Path>, text: &str) -> anyhow::Result<ExitCode> {
    match path {
        Some(path) => std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?,
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// How `runner up` loads its files: embedded broker, SQLite under `data_dir`, chaos on.
fn up_options(data_dir: &Path, overrides: &OverrideArgs) -> LoadOptions {
    let database = format!("sqlite://{}", data_dir.join("chaos-symphony.db").display());
    LoadOptions {
        defaults: Defaults {
            brokers: Some("embedded".into()),
            database_url: Some(database),
            chaos_enabled: Some(true),
        },
        overrides: Overrides { listen: None, ..to_overrides(overrides) },
        use_environment: true,
    }
}

fn pipeline_options(overrides: &OverrideArgs) -> LoadOptions {
    LoadOptions { defaults: Defaults::default(), overrides: to_overrides(overrides), use_environment: true }
}

/// Where the spans of the services this command runs go, read before logging starts (the
/// exporter is part of the subscriber). A file that does not load exports nothing here; the
/// run itself reports why. One exporter per process: files run together export as
/// `chaos-symphony`.
fn spans_to_export(cli: &Cli) -> Option<runner::traces::TraceSettings> {
    let loaded = match (&cli.command, &cli.pipeline) {
        (None, Some(file)) => vec![config::load(file, &pipeline_options(&cli.overrides)).ok()?],
        (Some(Command::Up { dir, data_dir, overrides }), _) => {
            let files = config::pipeline_files(dir).ok()?;
            config::load_system(&files, &[], &up_options(data_dir, overrides)).ok()?
        }
        _ => return None,
    };
    let configured = loaded.iter().find_map(|l| l.pipeline.telemetry.otlp_endpoint.as_deref());
    let endpoint = runner::traces::endpoint(configured)?;
    let service_name = match loaded.as_slice() {
        [one] => one.pipeline.service.clone(),
        _ => "chaos-symphony".to_string(),
    };
    let sample_ratio = loaded.iter().map(|l| l.pipeline.telemetry.sample_ratio).fold(0.0, f64::max);
    Some(runner::traces::TraceSettings { endpoint, service_name, sample_ratio })
}

fn to_overrides(args: &OverrideArgs) -> Overrides {
    Overrides { brokers: args.brokers.clone(), database_url: args.database_url.clone(), listen: args.listen.clone() }
}

/// Runs the loaded pipelines, reloading each file when it changes.
fn serve(loaded: Vec<config::LoadedPipeline>, listen: SocketAddr, options: LoadOptions) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let code = runtime.block_on(async move {
        let running = runner::runtime::start_watched(loaded, listen, options).await?;
        if let Some(broker) = &running.embedded_broker {
            eprintln!("embedded broker: {}", broker.bootstrap_servers());
        }
        eprintln!("listening on http://{}", running.addr);
        let console = runner::http::console::console_dir();
        if runner::http::console::is_built(&console) {
            eprintln!("console: http://{}/", running.addr);
        } else {
            eprintln!(
                "console: not built ({} has no index.html); build it with `npm --prefix ui ci && npm --prefix ui run build`",
                console.display()
            );
        }
        let shutdown = running.shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown requested; finishing in-flight work");
            shutdown.cancel();
        });
        running.wait().await;
        Ok(ExitCode::SUCCESS)
    });
    runner::traces::shutdown();
    code
}

/// `runner relay reconcile`: prints the report; exit code 1 when rows are missing.
fn relay_reconcile(args: ReconcileArgs) -> anyhow::Result<ExitCode> {
    let options = LoadOptions {
        defaults: Defaults::default(),
        overrides: Overrides { brokers: args.brokers.clone(), database_url: args.database_url.clone(), listen: None },
        use_environment: true,
    };
    let pipeline = config::load(&args.pipeline, &options).map_err(|d| anyhow::anyhow!("{d}"))?.pipeline;
    let Some(relay) = pipeline.relay else {
        bail!(
            "{} has no [relay] section; pass the relay's pipeline file (like pipelines/outbox-relay.toml)",
            args.pipeline.display()
        );
    };
    if pipeline.broker.brokers == Brokers::Embedded {
        bail!(
            "the broker is \"embedded\", and an embedded broker lives inside a running runner where reconcile \
             cannot read it; pass its address with --brokers host:port (the runner prints `embedded broker: host:port` \
             at start)"
        );
    }
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let store = Store::connect(&pipeline.store).await.context("cannot open the database; check --database-url")?;
        let broker = Broker::connect(&pipeline.broker)?;
        let options = ReconcileOptions { since_seq: args.since_seq, after_publish: relay.after_publish };
        let report = reconcile(&store, &broker, &options).await;
        store.close().await;
        let report = report?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print!("{report}");
        }
        Ok(if report.has_missing() { ExitCode::from(1) } else { ExitCode::SUCCESS })
    })
}

async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// `runner test`: loads every test file (all problems printed, exit 2), then runs the cases.
fn test(paths: Vec<PathBuf>) -> ExitCode {
    let paths =
        if paths.is_empty() { vec![PathBuf::from("pipelines").join(config::test_file::TEST_DIR)] } else { paths };
    let files = match toml_files(&paths) {
        Ok(files) => files,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if files.is_empty() {
        eprintln!(
            "no test files (*.toml) in {}",
            paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        );
        return ExitCode::from(2);
    }
    let mut problems = Vec::new();
    let mut loaded = Vec::new();
    for file in &files {
        match config::test_file::load_test_file(file) {
            Ok(test_file) => loaded.push(test_file),
            Err(diagnostics) => problems.extend(diagnostics.0),
        }
    }
    if !problems.is_empty() {
        let count = problems.len();
        println!("{}", config::Diagnostics(problems));
        eprintln!("{count} problem(s) found; no case was run");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    if runtime.block_on(runner::pipeline_tests::run_and_report(&loaded)) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `runner check`: every problem of every file, as `file:line:column: message`. Game-day
/// scenarios (the files of a `gamedays` folder) are checked as scenarios, test files (of a
/// `tests` folder) as test files.
fn check(paths: Vec<PathBuf>) -> ExitCode {
    let paths = if paths.is_empty() { vec![PathBuf::from("pipelines")] } else { paths };
    let mut files = Vec::new();
    let mut context = Vec::new();
    let mut scenarios = Vec::new();
    let mut tests = Vec::new();
    for path in &paths {
        if path.is_dir() {
            match config::pipeline_files(path) {
                Ok(mut found) => files.append(&mut found),
                Err(e) => {
                    eprintln!("{}: cannot read directory: {e}", path.display());
                    return ExitCode::FAILURE;
                }
            }
            let folder = path.join(config::scenario::SCENARIO_DIR);
            scenarios.extend(config::scenario::scenario_files(&folder).unwrap_or_default());
            tests.extend(config::pipeline_files(&path.join(config::test_file::TEST_DIR)).unwrap_or_default());
        } else if config::scenario::is_scenario_file(path) {
            scenarios.push(path.clone());
        } else if config::test_file::is_test_file(path) {
            tests.push(path.clone());
        } else {
            files.push(path.clone());
            // The other pipelines beside a file are the rest of its system.
            if let Some(dir) = path.parent().map(|d| if d.as_os_str().is_empty() { Path::new(".") } else { d }) {
                context.extend(config::pipeline_files(dir).unwrap_or_default());
            }
        }
    }
    let mut problems = Vec::new();
    let loaded = if files.is_empty() {
        0
    } else {
        match config::load_system(&files, &context, &LoadOptions::default()) {
            Ok(loaded) => loaded.len(),
            Err(diagnostics) => {
                problems.extend(diagnostics.0);
                0
            }
        }
    };
    let mut scenarios_ok = 0;
    for file in &scenarios {
        match config::scenario::load_scenario(file) {
            Ok(_) => scenarios_ok += 1,
            Err(diagnostics) => problems.extend(diagnostics.0),
        }
    }
    let mut tests_ok = 0;
    for file in &tests {
        match config::test_file::load_test_file(file) {
            Ok(_) => tests_ok += 1,
            Err(diagnostics) => problems.extend(diagnostics.0),
        }
    }
    if problems.is_empty() {
        println!("{loaded} pipeline file(s) OK");
        if !scenarios.is_empty() {
            println!("{scenarios_ok} game-day scenario(s) OK");
        }
        if !tests.is_empty() {
            println!("{tests_ok} test file(s) OK");
        }
        ExitCode::SUCCESS
    } else {
        let count = problems.len();
        println!("{}", config::Diagnostics(problems));
        eprintln!("{count} problem(s) found");
        ExitCode::FAILURE
    }
}
