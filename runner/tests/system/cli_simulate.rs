//! `runner simulate`: the shipped system holds its invariants over the CI budget of seeds
//! with every kind of fault; one seed is one trace; two deliberately broken variants (a
//! charge that forgets its checks, a saga whose compensations are swapped) are caught within
//! a stated number of seeds and shrunk to a run that replays; bad arguments are refused.

use crate::support::process::run;
use crate::support::repository;

/// Seeds the shipped system runs in CI (about 15 s of a debug build on two cores).
const CI_SEEDS: &str = "500";

/// The figure before `label` in a summary line (`… 3206 faults struck …`).
fn figure(text: &str, label: &str) -> u64 {
    let before = text.split(label).next().unwrap_or_default();
    before.split_whitespace().last().and_then(|n| n.trim_start_matches('(').parse().ok()).unwrap_or(0)
}

/// The output without its wall-clock figures, which are the only thing allowed to differ.
fn without_timing(text: &str) -> String {
    text.lines().map(|l| l.split(" · ").filter(|p| !p.contains("runs/min")).collect::<Vec<_>>().join(" · ")).collect()
}

/// A copy of the shipped pipelines, with `edit` applied to the file `name`.
fn edited_pipelines(name: &str, edit: impl Fn(String) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(repository().join("pipelines")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let mut text = std::fs::read_to_string(&path).unwrap();
            if path.file_name().is_some_and(|n| n == name) {
                text = edit(text);
            }
            std::fs::write(dir.path().join(path.file_name().unwrap()), text).unwrap();
        }
    }
    dir
}

#[test]
fn the_shipped_system_holds_every_invariant_over_the_ci_budget_of_seeds() {
    let output = run(&["simulate", "--pipelines", "../pipelines", "--seed", "1", "--runs", CI_SEEDS]);
    assert!(output.status.success(), "stdout:\n{}stderr:\n{}", output.stdout, output.stderr);
    let summary = output.stdout.lines().find(|l| l.contains(" run(s): ")).unwrap_or_default();
    assert!(summary.starts_with("500 run(s): 500 held every invariant, 0 broke one"), "{summary}");
    // The faults really struck, of every standard kind.
    assert!(figure(summary, "faults struck") > 2_000, "{summary}");
    assert!(figure(summary, "crashes)") > 200, "{summary}");
    assert!(figure(summary, "duplicate)") > 500, "{summary}");
    assert!(figure(summary, "CANCELLED") > 1_000 && figure(summary, "COMPLETED") > 2_000, "{summary}");
}

#[test]
fn one_seed_is_one_trace_and_another_seed_another() {
    let args = ["simulate", "--pipelines", "../pipelines", "--seed", "42", "--orders", "20", "--trace"];
    let first = run(&args);
    let second = run(&args);
    assert!(first.status.success(), "{}", first.stdout);
    assert!(first.stdout.lines().count() > 300, "{}", first.stdout);
    assert!(first.stdout.contains("fault "), "the standard faults strike in this run:\n{}", first.stdout);
    assert_eq!(without_timing(&first.stdout), without_timing(&second.stdout));
    let other = run(&["simulate", "--pipelines", "../pipelines", "--seed", "43", "--orders", "20", "--trace"]);
    assert_ne!(without_timing(&first.stdout), without_timing(&other.stdout));
}

#[test]
fn a_charge_that_forgets_its_checks_is_caught_within_20_seeds_and_its_shrunk_run_replays() {
    let output = run(&["simulate", "--pipelines", "../pipelines", "--runs", "20", "--mutant", "charge-without-checks"]);
    assert_eq!(output.status.code(), Some(1), "stdout:\n{}stderr:\n{}", output.stdout, output.stderr);
    assert!(output.stdout.contains("money-conserved: charged"), "{}", output.stdout);
    let smallest = output.stdout.lines().find(|l| l.starts_with("smallest failing run: ")).unwrap_or_default();
    // One duplicate delivery of one charge request is all it takes.
    assert!(smallest.contains("faults duplicate=0.05 (1 fault(s) struck)"), "{smallest}");
    let replay = output.stdout.lines().find_map(|l| l.strip_prefix("replay it: runner ")).expect("a replay command");
    let mut args: Vec<&str> = replay.split_whitespace().collect();
    args.extend(["--pipelines", "../pipelines"]);
    let again = run(&args);
    assert_eq!(again.status.code(), Some(1), "{}", again.stdout);
    assert!(again.stdout.contains("will be delivered again"), "{}", again.stdout);
    assert!(again.stdout.contains("money-conserved: charged"), "{}", again.stdout);
}

#[test]
fn a_saga_with_swapped_compensations_passes_check_but_not_the_simulation() {
    // payment's compensation asks for a release, inventory's for a refund: each reply still
    // means one thing, so the compiler has nothing to say.
    let dir = edited_pipelines("orchestrator.toml", |text| {
        text.replace("request = \"payment.refund.requested\"\nsuccess = \"payment.refunded\"", "@REFUND@")
            .replace(
                "request = \"inventory.release.requested\"\nsuccess = \"inventory.released\"",
                "request = \"payment.refund.requested\"\nsuccess = \"payment.refunded\"",
            )
            .replace("@REFUND@", "request = \"inventory.release.requested\"\nsuccess = \"inventory.released\"")
    });
    let folder = dir.path().to_str().unwrap();
    let checked = run(&["check", folder]);
    assert!(checked.status.success(), "{}{}", checked.stdout, checked.stderr);
    let output = run(&["simulate", "--pipelines", folder, "--runs", "20", "--faults", "none"]);
    assert_eq!(output.status.code(), Some(1), "{}", output.stdout);
    assert!(output.stdout.contains("smallest failing run: 1 order(s), faults none"), "{}", output.stdout);
    assert!(
        output.stdout.contains("compensating payment #1 (reply by")
            && output.stdout.contains("sends inventory.release.requested #1"),
        "the trace shows the wrong compensation:\n{}",
        output.stdout
    );
    assert!(output.stdout.contains("one-effect-per-order: 1 orders' effects do not match"), "{}", output.stdout);
}

#[test]
fn forgetting_the_inbox_alone_breaks_nothing_because_each_handler_looks_at_its_own_row() {
    let output = run(&["simulate", "--pipelines", "../pipelines", "--runs", "200", "--mutant", "inbox-skipped"]);
    assert!(output.status.success(), "{}", output.stdout);
    assert!(output.stdout.contains("200 run(s): 200 held every invariant"), "{}", output.stdout);
}

#[test]
fn the_pipelines_own_chaos_rules_strike_in_the_simulation() {
    let dir = edited_pipelines("payment.toml", |text| {
        text + "\n[[chaos.rules]]\nid = \"flaky-charges\"\ntarget = { kind = \"handler\", handler = \"payment.charge\" }\n\
                fault = { kind = \"error\", message = \"card gateway timeout\" }\nprobability = 0.6\n"
    });
    let folder = dir.path().to_str().unwrap();
    let output = run(&["simulate", "--pipelines", folder, "--runs", "50", "--faults", "none"]);
    assert!(output.status.success(), "{}", output.stdout);
    assert!(
        figure(&output.stdout, "dead letters") > 10,
        "charges dead-lettered after their attempts:\n{}",
        output.stdout
    );
    let traced =
        run(&["simulate", "--pipelines", folder, "--seed", "5", "--orders", "2", "--faults", "none", "--trace"]);
    assert!(
        traced.stdout.contains("(chaos rule flaky-charges): #2 payment.requested of o1 fails"),
        "{}",
        traced.stdout
    );
}

#[test]
fn wrong_arguments_are_refused_saying_what_to_give() {
    let only_payment = tempfile::tempdir().unwrap();
    std::fs::copy(repository().join("pipelines/payment.toml"), only_payment.path().join("payment.toml")).unwrap();
    let long = "x".repeat(100_000);
    let too_many_ids = (0..10_001u64).map(|i| format!("{i:010x}")).collect::<Vec<_>>().join(",");
    for (args, says) in [
        (
            vec!["--faults", "fire=0.1"],
            "unknown fault kind `fire`: the kinds are delay, drop, duplicate, crash, error, fail",
        ),
        (vec!["--faults", "drop=0.9"], "the rate of `drop` must be a number from 0 to 0.5"),
        (vec!["--faults", long.as_str()], "is not `kind=rate`"),
        (vec!["--keep-faults", "17"], "fault ids as a trace shows them"),
        (vec!["--keep-faults", "ääääa"], "fault ids as a trace shows them"),
        (vec!["--keep-faults", too_many_ids.as_str()], "at most 10,000 fault ids"),
        (vec!["--mutant", "nope"], "the broken variants are charge-without-checks, inbox-skipped"),
        (vec!["--orders", "0"], "0 is not in 1..=1000"),
        (vec!["--orders", "100000"], "100000 is not in 1..=1000"),
        (vec!["--runs", "0"], "0 is not in 1..=1000000"),
        (vec!["--seed", "18446744073709551615", "--runs", "2"], "runs past the largest seed"),
        (vec!["--pipelines", "/nonexistent/folder"], "cannot read the folder"),
        (vec!["--pipelines", only_payment.path().to_str().unwrap()], "no pipeline has an [order_api]"),
    ] {
        let mut all = vec!["simulate"];
        all.extend(args.iter().copied());
        let output = run(&all);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}{}", output.stdout, output.stderr);
        assert!(output.stderr.contains(says), "{args:?}: expected {says:?} in\n{}", output.stderr);
        assert!(output.stderr.len() < 2_000, "{args:?}: the message stays short");
    }
}
