//! `runner gameday run FILE` and `runner gameday report RUN`: a game day from the command line.
//! `run` checks the scenario here, starts it on gameday-svc (of the system at `--target`, or
//! of a system it starts on embedded defaults), shows its progress, and exits 0 when the
//! hypothesis held, 1 when it did not, 2 when a stop condition (or Ctrl-C) aborted it, and 3
//! when it could not run at all.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use runner::config::{self, scenario as scenario_files, Defaults, LoadOptions, Overrides};
use runner::services::gameday::model::{RunRecord, RunState};
use serde_json::{json, Value};

/// The exit code of a run that could not start or be followed.
const CANNOT_RUN: u8 = 3;

pub struct RunArgs {
    pub file: PathBuf,
    pub target: Option<String>,
    pub token: Option<String>,
    pub report: Option<PathBuf>,
}

pub fn run(args: RunArgs) -> ExitCode {
    match run_inner(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(CANNOT_RUN)
        }
    }
}

fn run_inner(args: RunArgs) -> anyhow::Result<ExitCode> {
    // Checked here first: a broken file is reported as `file:line:column`, with nothing started.
    let scenario = match scenario_files::load_scenario(&args.file) {
        Ok(scenario) => scenario,
        Err(diagnostics) => {
            println!("{diagnostics}");
            eprintln!("{} problem(s) found; nothing was run", diagnostics.0.len());
            return Ok(ExitCode::from(CANNOT_RUN));
        }
    };
    let system_dir = scenario_files::system_dir_of(&args.file);
    let token = match args.token.clone() {
        Some(token) => token,
        None => gameday_token(&system_dir)?,
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let (target, embedded) = match &args.target {
            Some(url) => (url.trim_end_matches('/').to_string(), None),
            None => {
                let system = start_embedded(&system_dir).await?;
                (format!("http://{}", system.0.addr), Some(system))
            }
        };
        let outcome = follow(&target, &token, &args, &scenario.name).await;
        if let Some((running, data_dir)) = embedded {
            running.stop().await;
            let _ = std::fs::remove_dir_all(&data_dir);
        }
        outcome
    })
}

/// The token of the `[admin]` section of the system's gameday-svc pipeline (what `runner up` accepts).
fn gameday_token(system_dir: &Path) -> anyhow::Result<String> {
    let files = config::pipeline_files(system_dir).unwrap_or_default();
    let options = LoadOptions { use_environment: true, ..LoadOptions::default() };
    files
        .iter()
        .filter_map(|f| config::load(f, &options).ok())
        .find(|l| l.pipeline.gameday.is_some())
        .and_then(|l| l.pipeline.admin.tokens.first().map(|(_, token)| token.clone()))
        .ok_or_else(|| {
            anyhow!(
                "no gameday-svc pipeline with an [admin] token in {}; pass --token (or RUNNER_GAMEDAY_TOKEN)",
                system_dir.display()
            )
        })
}

/// Starts the system of `dir` in this process on embedded defaults: embedded broker, a
/// throw-away SQLite database, a free port.
async fn start_embedded(dir: &Path) -> anyhow::Result<(runner::runtime::Running, PathBuf)> {
    let files = config::pipeline_files(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    let data_dir = std::env::temp_dir().join(format!("chaos-symphony-gameday-{}", std::process::id()));
    std::fs::create_dir_all(&data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
    let options = LoadOptions {
        defaults: Defaults {
            brokers: Some("embedded".into()),
            database_url: Some(format!("sqlite://{}", data_dir.join("chaos-symphony.db").display())),
            chaos_enabled: Some(true),
        },
        overrides: Overrides::default(),
        use_environment: true,
    };
    let loaded = config::load_system(&files, &[], &options).map_err(|d| anyhow!("{d}"))?;
    let pipelines = loaded.into_iter().map(|l| l.pipeline).collect();
    let listen = "127.0.0.1:0".parse().expect("an address");
    let running = runner::runtime::start(pipelines, listen).await?;
    eprintln!("started the system of {} on embedded defaults at http://{}", dir.display(), running.addr);
    // Ready: every part up, and the announcements chaos-svc checks rules against are in.
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let ready =
            client.get(format!("http://{}/readyz", running.addr)).send().await.is_ok_and(|r| r.status().is_success());
        let catalog: Value = match client.get(format!("http://{}/api/chaos/catalog", running.addr)).send().await {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        let announced = catalog["services"].as_array().map_or(0, Vec::len);
        if ready && announced >= 5 {
            break;
        }
        if Instant::now() > deadline {
            bail!("the system did not become ready within 90 s; see its log above");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    warm_up(&client, &format!("http://{}", running.addr), deadline).await?;
    Ok((running, data_dir))
}

/// One order through the whole saga before the run: a system that just started is slow for
/// its first orders (consumers joining their groups), which is no finding of the game day.
async fn warm_up(client: &reqwest::Client, base: &str, deadline: Instant) -> anyhow::Result<()> {
    let order = json!({ "customerId": "gameday-warm-up", "currency": "EUR",
        "items": [{ "sku": "SKU-1", "quantity": 1, "unitPrice": 100 }], "shipTo": { "country": "DE" } });
    let answer: Value = client.post(format!("{base}/api/orders")).json(&order).send().await?.json().await?;
    let id = answer["orderId"].as_str().ok_or_else(|| anyhow!("the warm-up order was refused: {answer}"))?;
    loop {
        let order: Value = client.get(format!("{base}/api/orders/{id}")).send().await?.json().await?;
        if matches!(order["status"].as_str(), Some("COMPLETED" | "CANCELLED" | "FAILED")) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the warm-up order did not end within 90 s of the start; see the system's log above");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Starts the run on gameday-svc at `target` and follows it to its end.
async fn follow(target: &str, token: &str, args: &RunArgs, name: &str) -> anyhow::Result<ExitCode> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let text = std::fs::read_to_string(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
    let file = args.file.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    let response = client
        .post(format!("{target}/api/gamedays/runs"))
        .bearer_auth(token)
        .json(&json!({ "scenarioToml": text, "file": file }))
        .send()
        .await
        .with_context(|| format!("cannot reach gameday-svc at {target}"))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!(
            "starting the game day: {target} answered {status}: {}",
            body["error"].as_str().unwrap_or("no reason given")
        );
    }
    let id = body["id"].as_str().ok_or_else(|| anyhow!("gameday-svc answered without a run id: {body}"))?.to_string();
    eprintln!("game day {name}: run {id} (report: {target}/api/gamedays/runs/{id}/report)");

    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let mut aborted = false;
    let terminal = std::io::stderr().is_terminal();
    let mut last_line = Instant::now() - Duration::from_secs(10);
    let record = loop {
        tokio::select! {
            _ = &mut interrupted, if !aborted => {
                aborted = true;
                eprintln!("\naborting: the load stops and every fault is removed; the audit still runs");
                let _ = client.post(format!("{target}/api/gamedays/runs/{id}/abort")).bearer_auth(token).send().await;
            }
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        let record: RunRecord = match client.get(format!("{target}/api/gamedays/runs/{id}")).send().await {
            Ok(r) if r.status().is_success() => r.json().await.context("reading the run")?,
            Ok(r) => bail!("following run {id}: {target} answered {}", r.status()),
            Err(e) => bail!("following run {id}: {e}"),
        };
        if terminal {
            eprint!("\r\x1b[2K{}", progress(&record));
        } else if last_line.elapsed() >= Duration::from_secs(5) {
            eprintln!("{}", progress(&record));
            last_line = Instant::now();
        }
        if record.state.is_over() {
            break record;
        }
    };
    if terminal {
        eprintln!();
    }
    print_summary(&record);
    if let Some(path) = &args.report {
        let format = if path.extension().is_some_and(|e| e == "html") { "html" } else { "md" };
        let url = format!("{target}/api/gamedays/runs/{id}/report?format={format}");
        let report = client.get(url).send().await.context("fetching the report")?.text().await?;
        std::fs::write(path, report).with_context(|| format!("cannot write {}", path.display()))?;
        println!("report written to {}", path.display());
    }
    Ok(exit_code(record.state))
}

fn exit_code(state: RunState) -> ExitCode {
    match state {
        RunState::Passed => ExitCode::SUCCESS,
        RunState::Failed => ExitCode::from(1),
        RunState::Aborted => ExitCode::from(2),
        RunState::Running | RunState::Auditing | RunState::Interrupted => ExitCode::from(CANNOT_RUN),
    }
}

/// One line: a bar over the planned time, the phase, the rate, orders, errors, burn rate, faults.
fn progress(run: &RunRecord) -> String {
    const WIDTH: usize = 20;
    let done = if run.planned_ms == 0 { 1.0 } else { (run.elapsed_ms as f64 / run.planned_ms as f64).min(1.0) };
    let filled = (done * WIDTH as f64).round() as usize;
    let faults: Vec<&str> = run.faults.iter().filter(|f| f.state == "active").map(|f| f.name.as_str()).collect();
    format!(
        "[{}{}] {:>4}s/{}s {:<9} {:>6.1}/s sent {} settled {} bad {} burn {} faults: {}",
        "#".repeat(filled),
        "-".repeat(WIDTH - filled),
        run.elapsed_ms / 1000,
        run.planned_ms / 1000,
        run.phase.as_deref().unwrap_or(run.state.as_str()),
        run.rate,
        run.orders.accepted,
        run.orders.settled,
        run.orders.unexpected + run.orders.refused,
        run.burn_rate.map_or("-".to_string(), |b| format!("{b:.2}")),
        if faults.is_empty() { "none".to_string() } else { faults.join(", ") },
    )
}

fn print_summary(run: &RunRecord) {
    let verdict = run.verdict.as_ref().map_or("no verdict", |v| v.summary.as_str());
    println!("{}: {} — {verdict}", run.scenario, run.state.as_str());
    let o = &run.orders;
    println!(
        "orders: {} sent, {} accepted, {} completed, {} cancelled, {} failed, {} not as expected",
        o.sent, o.accepted, o.completed, o.cancelled, o.failed, o.unexpected
    );
    for phase in &run.phases {
        println!(
            "phase {} ({} orders): {}",
            phase.name,
            phase.orders,
            if phase.held { "held" } else { "did not hold" }
        );
        for check in &phase.checks {
            let mark = if check.held { "ok  " } else { "FAIL" };
            println!("  {mark} {}: expected {}, measured {}", check.name, check.expected, check.measured);
        }
    }
    println!("audit:");
    for check in &run.audit {
        println!("  {} {}: {}", if check.passed { "ok  " } else { "FAIL" }, check.name, check.detail);
    }
    for fault in &run.faults {
        let figure = match fault.kind.as_str() {
            "replay" => format!("{} dead letters sent back", fault.injections),
            "canary" => "percentage set and put back".to_string(),
            _ => format!("{} injections", fault.injections),
        };
        println!("fault {} ({}): {}, {figure}", fault.name, fault.summary, fault.state);
        if let Some(error) = &fault.error {
            println!("  {error}");
        }
    }
    if let Some(stop) = &run.stop {
        println!("stopped at {}s: {} ({})", stop.at_ms / 1000, stop.condition, stop.detail);
    }
    for error in &run.errors {
        println!("error: {error}");
    }
}

/// `runner gameday report RUN`: the report of a run, printed or written to a file.
pub fn report(run: &str, target: &str, format: &str, output: Option<&Path>) -> ExitCode {
    let result = (|| -> anyhow::Result<()> {
        let runtime = tokio::runtime::Runtime::new()?;
        let text = runtime.block_on(async {
            let url = format!("{}/api/gamedays/runs/{run}/report?format={format}", target.trim_end_matches('/'));
            let response = reqwest::get(&url).await.with_context(|| format!("cannot reach {target}"))?;
            let status = response.status();
            let text = response.text().await?;
            if !status.is_success() {
                bail!("{target} answered {status}: {text}");
            }
            Ok::<_, anyhow::Error>(text)
        })?;
        match output {
            Some(path) => {
                std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
                println!("report written to {}", path.display());
            }
            None => {
                let mut out = std::io::stdout();
                out.write_all(text.as_bytes())?;
            }
        }
        Ok(())
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(CANNOT_RUN)
        }
    }
}
