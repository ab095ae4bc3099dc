//! Pipeline configuration: the file's shape ([`spec`]), reading and layering ([`load`]),
//! compiling into typed values ([`compile`], [`model`]), what a reload changes ([`diff`]),
//! diagnostics and the Mermaid graph.

pub mod compile;
pub mod diagnostic;
pub mod diff;
pub mod graph;
pub mod load;
pub mod model;
pub mod spec;

pub use diagnostic::{Anchor, Diagnostic, Diagnostics, KeyPath, SourceMap};
pub use load::{load, load_system, load_text, pipeline_files, Defaults, LoadOptions, LoadedPipeline, Overrides};
pub use model::Pipeline;

/// The JSON Schema of pipeline files, as written to `schemas/pipeline.schema.json`.
pub fn pipeline_schema() -> String {
    let schema = schemars::schema_for!(spec::PipelineSpec);
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema serializes");
    text.push('\n');
    text
}
