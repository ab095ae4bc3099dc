//! The saga: its settings ([`SagaConfig`]), the pure state machine ([`machine`]) and canary
//! routing and analysis of one step ([`canary`]), and what a new definition means for the
//! instances in flight ([`versions`]). The orchestrator that runs it against the
//! broker and the database is a service: `services::orchestrator`.

pub mod canary;
mod config;
pub mod machine;
pub mod versions;

pub use config::{CanaryAnalysis, CanaryConfig, SagaConfig};

#[cfg(test)]
mod tests;
