//! End-to-end tests of the `runner` binary: `check` prints every problem as `file:line:column: message` and sets the exit code; `graph` draws the orchestrator's saga.

use runner::config::{load, LoadOptions};

use crate::support::pipelines_dir;
use crate::support::process::run;

#[test]
fn check_reports_every_problem_and_fails() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(dir.path().join("api.toml"), "[order_api]\nmax_page_size = 100\n").unwrap();
    std::fs::write(dir.path().join("relay.toml"), "[relay]\nmode = \"logical\"\nbatch_size = 0\n").unwrap();

    let output = run(&["check", dir.path().to_str().expect("a UTF-8 path")]);
    let printed = &output.stdout;
    assert!(!output.status.success(), "check must fail on a broken file; stdout:\n{printed}");
    let broken = dir.path().join("relay.toml");
    for expected in [
        format!(
            "{}:2:8: `relay.mode`: unknown variant `logical`, expected one of `polling`, `wal`, `auto`",
            broken.display()
        ),
        format!("{}:3:14: batch_size must be at least 1", broken.display()),
    ] {
        assert!(printed.lines().any(|line| line == expected), "missing line\n  {expected}\nin stdout:\n{printed}");
    }
    assert!(!printed.contains("api.toml"), "the valid file has no problems; stdout:\n{printed}");
}

#[test]
fn check_passes_on_the_shipped_pipelines() {
    let output = run(&["check", "../pipelines"]);
    assert!(
        output.status.success(),
        "the shipped pipelines must pass `runner check`; stdout:\n{}stderr:\n{}",
        output.stdout,
        output.stderr
    );
}

#[test]
fn graph_draws_every_step_of_the_orchestrator() {
    let output = run(&["graph", "../pipelines/orchestrator.toml"]);
    assert!(output.status.success(), "graph failed: {}", output.stderr);
    let chart = &output.stdout;
    assert!(chart.starts_with("flowchart"), "not a Mermaid flowchart:\n{chart}");

    let file = pipelines_dir().join("orchestrator.toml");
    let loaded = load(&file, &LoadOptions::default()).expect("the orchestrator pipeline loads");
    let saga = loaded.pipeline.saga.expect("the orchestrator has a saga");
    assert!(!saga.definition.steps.is_empty());
    for step in &saga.definition.steps {
        assert!(chart.contains(&step.name), "step `{}` is missing from the chart:\n{chart}", step.name);
    }
}

#[test]
fn check_prints_at_most_a_hundred_problems_and_counts_the_rest() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    // 150 rules, each with a probability that is not one: 150 problems of the right shape,
    // and one for a file that runs nothing.
    let mut text = String::from("[chaos]\n");
    for i in 0..150 {
        text.push_str(&format!(
            "[[chaos.rules]]\nid = \"r{i}\"\ntarget = {{ kind = \"service\", service = \"s\" }}\nfault = {{ kind = \"error\" }}\nprobability = 2.0\n"
        ));
    }
    std::fs::write(dir.path().join("many.toml"), text).unwrap();
    let output = run(&["check", dir.path().to_str().expect("a UTF-8 path")]);
    assert!(!output.status.success());
    let printed = output.stdout.lines().filter(|l| l.contains("many.toml:")).count();
    assert_eq!(printed, 100, "stdout:\n{}", output.stdout);
    assert!(
        output.stdout.contains("... and 51 more problems not shown; fix these first and check again"),
        "stdout:\n{}",
        output.stdout
    );
    assert!(output.stderr.contains("151 problem(s) found"), "stderr:\n{}", output.stderr);
}
