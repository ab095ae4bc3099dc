//! End-to-end tests of the `runner` binary: `check` prints every problem as `file:line:column: message` and sets the exit code; `graph` draws the orchestrator's saga.

use std::path::Path;
use std::process::{Command, Output};

use runner::config::{load, LoadOptions};

/// Runs the built binary in the crate directory (so `../pipelines` is the shipped set).
fn runner(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_runner"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("RUST_LOG")
        .output()
        .expect("the runner binary starts")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("stdout is UTF-8")
}

#[test]
fn check_reports_every_problem_and_fails() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(dir.path().join("api.toml"), "[order_api]\nmax_page_size = 100\n").unwrap();
    std::fs::write(dir.path().join("relay.toml"), "[relay]\nmode = \"logical\"\nbatch_size = 0\n").unwrap();

    let output = runner(&["check", dir.path().to_str().expect("a UTF-8 path")]);
    let printed = stdout(&output);
    assert!(!output.status.success(), "check must fail on a broken file; stdout:\n{printed}");
    let broken = dir.path().join("relay.toml");
    for expected in [
        format!("{}:2:8: unknown relay mode `logical`; expected \"auto\", \"wal\" or \"polling\"", broken.display()),
        format!("{}:3:14: batch_size must be at least 1", broken.display()),
    ] {
        assert!(printed.lines().any(|line| line == expected), "missing line\n  {expected}\nin stdout:\n{printed}");
    }
    assert!(!printed.contains("api.toml"), "the valid file has no problems; stdout:\n{printed}");
}

#[test]
fn check_passes_on_the_shipped_pipelines() {
    let output = runner(&["check", "../pipelines"]);
    assert!(
        output.status.success(),
        "the shipped pipelines must pass `runner check`; stdout:\n{}stderr:\n{}",
        stdout(&output),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn graph_draws_every_step_of_the_orchestrator() {
    let output = runner(&["graph", "../pipelines/orchestrator.toml"]);
    assert!(output.status.success(), "graph failed: {}", String::from_utf8_lossy(&output.stderr));
    let chart = stdout(&output);
    assert!(chart.starts_with("flowchart"), "not a Mermaid flowchart:\n{chart}");

    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines/orchestrator.toml");
    let loaded = load(&file, &LoadOptions::default()).expect("the orchestrator pipeline loads");
    let saga = loaded.pipeline.saga.expect("the orchestrator has a saga");
    assert!(!saga.definition.steps.is_empty());
    for step in &saga.definition.steps {
        assert!(chart.contains(&step.name), "step `{}` is missing from the chart:\n{chart}", step.name);
    }
}
