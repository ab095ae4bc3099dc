//! `runner test`: the shipped saga and handler cases pass; a case whose expectation is wrong
//! fails with the first difference at the file:line:column of that expectation; a broken
//! test file is refused with its problems before any case runs.

use crate::support::process::run;
use crate::support::repository;

#[test]
fn the_shipped_cases_pass() {
    let output = run(&["test", "../pipelines/tests"]);
    assert!(output.status.success(), "stdout:\n{}stderr:\n{}", output.stdout, output.stderr);
    let summary = output.stdout.lines().last().unwrap_or_default();
    assert!(summary.contains(" passed, 0 failed"), "{summary}");
    for case in [
        "saga every step succeeds",
        "saga a refund that is dead-lettered fails the order",
        "handler a shipment to ZZ is refused",
    ] {
        assert!(output.stdout.contains(&format!("ok    {case}")), "{case} ran:\n{}", output.stdout);
    }
}

#[test]
fn a_wrong_expectation_fails_at_its_line_with_the_difference() {
    let dir = tempfile::tempdir().unwrap();
    let orchestrator = repository().join("pipelines/orchestrator.toml");
    let file = dir.path().join("mutated.toml");
    let text = format!(
        "pipeline = {orchestrator:?}\n\n[[sagas]]\nname = \"mutated\"\n\n[[sagas.steps]]\nat = \"0s\"\ninput = \"start\"\n\n\
         [[sagas.steps]]\nat = \"1s\"\ninput = \"reply payment.declined\"\nstate = \"completed\"\n"
    );
    std::fs::write(&file, text).unwrap();
    let output = run(&["test", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "stdout:\n{}", output.stdout);
    let expected = format!(
        "{}:13:9: step 2 (at 1s, reply payment.declined): state: expected `completed`, got `cancelled: payment failed: refused`",
        file.display()
    );
    assert!(output.stdout.contains(&expected), "missing\n  {expected}\nin:\n{}", output.stdout);
    assert!(output.stdout.contains("1 cases: 0 passed, 1 failed"), "{}", output.stdout);
}

#[test]
fn a_broken_test_file_is_refused_before_any_case_runs() {
    let dir = tempfile::tempdir().unwrap();
    let orchestrator = repository().join("pipelines/orchestrator.toml");
    let file = dir.path().join("broken.toml");
    let text = format!(
        "pipeline = {orchestrator:?}\n\n[[sagas]]\nname = \"broken\"\n\n[[sagas.steps]]\nat = \"soon\"\ninput = \"reply payment.charge\"\n\n\
         [[sagas.steps]]\nat = \"1s\"\ninput = \"wait\"\nstatus = \"completed\"\n\n[[handlers]]\nname = \"x\"\nconsumer = \"charge\"\n"
    );
    std::fs::write(&file, text).unwrap();
    let output = run(&["test", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "stdout:\n{}", output.stdout);
    let shown = file.display();
    for expected in [
        format!("{shown}:7:6: `soon` is not a duration"),
        format!("{shown}:8:9: `payment.charge` is no reply of this saga"),
        format!("{shown}:13:1: "),
        format!("{shown}:17:12: no consumer `charge` in `orchestrator`"),
    ] {
        assert!(output.stdout.contains(&expected), "missing\n  {expected}\nin:\n{}", output.stdout);
    }
    assert!(!output.stdout.contains("cases:"), "no case ran: {}", output.stdout);
    // The same problems from `runner check` when the file sits in a `tests` folder.
    let tests = dir.path().join("tests");
    std::fs::create_dir(&tests).unwrap();
    std::fs::copy(&file, tests.join("broken.toml")).unwrap();
    let checked = run(&["check", tests.join("broken.toml").to_str().unwrap()]);
    assert!(!checked.status.success());
    assert!(checked.stdout.contains("is no reply of this saga"), "{}", checked.stdout);
}

#[test]
fn an_inline_saga_replaces_the_pipelines_and_its_problems_are_placed_in_the_test_file() {
    let dir = tempfile::tempdir().unwrap();
    let orchestrator = repository().join("pipelines/orchestrator.toml");
    let file = dir.path().join("variant.toml");
    let saga = "[saga]\nname = \"order\"\ntrigger = \"order.created\"\non_completed = \"order.completed\"\n\
                on_cancelled = \"order.cancelled\"\non_failed = \"order.failed\"\n\n[[saga.steps]]\nname = \"payment\"\n\
                request = \"payment.requested\"\nsuccess = \"payment.charged\"\ntimeout = \"TIMEOUT\"\nirreversible = true\n";
    let cases = "\n[[sagas]]\nname = \"one step\"\n\n[[sagas.steps]]\nat = \"0s\"\ninput = \"start\"\n\n\
                 [[sagas.steps]]\nat = \"1s\"\ninput = \"reply payment.charged\"\nstate = \"completed\"\n";
    let write = |timeout: &str| {
        let text = format!("pipeline = {orchestrator:?}\n\n{}{cases}", saga.replace("TIMEOUT", timeout));
        std::fs::write(&file, text).unwrap();
    };
    // One step only: its success completes the order.
    write("2s");
    let output = run(&["test", file.to_str().unwrap()]);
    assert!(output.status.success(), "{}", output.stdout);
    assert!(output.stdout.contains("1 cases: 1 passed, 0 failed"), "{}", output.stdout);
    // A timeout the pipeline would refuse is refused here, at its line of this file.
    write("0s");
    let output = run(&["test", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", output.stdout);
    let line = format!("{}:14:11: ", file.display());
    assert!(output.stdout.contains(&line), "missing `{line}` in:\n{}", output.stdout);
}

/// Absurd test files: too many cases, a step at an absurd time, NUL in a name, an input
/// that is only spaces — each refused at its place, none run.
#[test]
fn absurd_test_files_are_refused_with_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let payment = repository().join("pipelines/payment.toml");
    let file = dir.path().join("absurd.toml");
    let mut text = format!("pipeline = {payment:?}\n");
    for i in 0..201 {
        text.push_str(&format!("\n[[handlers]]\nname = \"case {i}\"\nconsumer = \"charge\"\n[[handlers.messages]]\noutcome = \"success\"\n"));
    }
    std::fs::write(&file, text).unwrap();
    let output = run(&["test", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", output.stdout);
    assert!(output.stdout.contains("201 cases; a file holds at most 200"), "{}", output.stdout);

    let orchestrator = repository().join("pipelines/orchestrator.toml");
    let text = format!(
        "pipeline = {orchestrator:?}\n\n[[sagas]]\nname = \"a\\u0000b\"\n\n[[sagas.steps]]\nat = \"99999999999999d\"\ninput = \"   \"\n"
    );
    std::fs::write(&file, text).unwrap();
    let output = run(&["test", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", output.stdout);
    for expected in ["give the case a name of 1 to 200 characters", "a step is at most 7 days", "is no input"] {
        assert!(output.stdout.contains(expected), "missing `{expected}` in:\n{}", output.stdout);
    }
}
