//! The saga: the pure state machine ([`machine`]) and the orchestrator that runs it against
//! the broker and the database ([`orchestrator`]), with canary routing of one step ([`canary`]).

pub mod canary;
mod config;
pub mod machine;
pub mod orchestrator;

pub use config::{CanaryAnalysis, CanaryConfig, SagaConfig};

#[cfg(test)]
mod tests;
