//! Checks that the committed JSON Schema of pipeline files, `schemas/pipeline.schema.json`, matches the one generated from the spec types.

use crate::support::repository;

#[test]
fn committed_schema_matches_the_spec_types() {
    let path = repository().join("schemas/pipeline.schema.json");
    let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let generated = runner::config::pipeline_schema();
    if committed != generated {
        let first_difference = committed.lines().zip(generated.lines()).position(|(a, b)| a != b).map_or_else(
            || "one file is a prefix of the other".to_string(),
            |i| format!("first difference at line {}", i + 1),
        );
        panic!(
            "schemas/pipeline.schema.json is out of date ({first_difference}); \
             run `cargo run -p runner -- schema --write schemas/pipeline.schema.json` from the workspace root"
        );
    }
}
