//! Chaos Symphony's runner: one generic binary that runs any service of the system from a
//! TOML pipeline file. See ARCHITECTURE.md for the map.

pub mod admin;
pub mod chaos;
pub mod config;
pub mod deploy;
pub mod diagnostic;
pub mod event;
pub mod handlers;
pub mod http;
pub mod load;
pub mod order;
pub mod pipeline_tests;
pub mod runtime;
pub mod saga;
pub mod schemas;
pub mod services;
pub mod simulate;
pub mod slo;
pub mod store;
pub mod supervise;
pub mod telemetry;
pub mod traces;
pub mod transport;
