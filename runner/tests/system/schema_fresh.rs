//! Checks that the committed JSON Schemas — of pipeline files, `schemas/pipeline.schema.json`,
//! of game-day scenarios, `schemas/gameday.schema.json`, and of test files,
//! `schemas/test.schema.json` — match the ones generated from
//! the spec types.

use crate::support::repository;

/// Panics unless `schemas/NAME` is `generated`, saying how to regenerate it with `flags`.
fn assert_fresh(name: &str, generated: String, flags: &str) {
    let path = repository().join("schemas").join(name);
    let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    if committed != generated {
        let first_difference = committed.lines().zip(generated.lines()).position(|(a, b)| a != b).map_or_else(
            || "one file is a prefix of the other".to_string(),
            |i| format!("first difference at line {}", i + 1),
        );
        panic!(
            "schemas/{name} is out of date ({first_difference}); \
             run `cargo run -p runner -- schema {flags}--write schemas/{name}` from the workspace root"
        );
    }
}

#[test]
fn committed_schema_matches_the_spec_types() {
    assert_fresh("pipeline.schema.json", runner::config::pipeline_schema(), "");
}

#[test]
fn committed_gameday_schema_matches_the_scenario_types() {
    assert_fresh("gameday.schema.json", runner::config::scenario::scenario_schema(), "--gameday ");
}

#[test]
fn committed_test_schema_matches_the_test_file_types() {
    assert_fresh("test.schema.json", runner::config::test_file::test_schema(), "--test ");
}
