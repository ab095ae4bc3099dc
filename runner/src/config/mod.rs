//! Pipeline configuration: the file's shape ([`spec`]), reading and layering ([`load`]),
//! compiling into typed values ([`compile`], [`model`]), what a reload changes ([`diff`]),
//! and the Mermaid graph. Diagnostics live in [`crate::diagnostic`], below every component.

pub mod compile;
pub mod diff;
pub mod graph;
pub mod load;
pub mod model;
pub mod scenario;
mod shape;
pub mod spec;
pub mod test_file;

pub use crate::diagnostic::{Anchor, Diagnostic, Diagnostics, KeyPath, Problem, SourceMap};
pub use load::{
    load, load_system, load_text, pipeline_files, read_pipeline_file, Defaults, LoadOptions, LoadedPipeline, Overrides,
    MAX_FILE_BYTES,
};
pub use model::{BrokerTopic, Pipeline};

/// The JSON Schema of pipeline files, as written to `schemas/pipeline.schema.json`.
pub fn pipeline_schema() -> String {
    let schema = schemars::schema_for!(spec::PipelineSpec);
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema serializes");
    text.push('\n');
    text
}
