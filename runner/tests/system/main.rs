//! The runner's integration tests, one crate: each module holds the tests of one part of the
//! system, `support` what they share. `scripts/test` runs them with cargo-nextest, one process
//! per test, since the tests share process-wide state (environment variables, the metrics
//! recorder, the tracing subscriber).

mod support;

mod analytics;
mod architecture;
mod broker_trouble;
mod canary;
mod chaos_api;
mod chaos_faults;
mod cli_check;
mod cli_plan;
mod cli_simulate;
mod cli_test;
mod config_diagnostics;
mod config_layering;
mod consumer_lag;
mod dead_letters;
mod dlq_admin;
mod event_schemas;
mod gameday;
mod group_lanes;
mod held_writes;
mod hostile_requests;
mod hot_reload;
mod http_api;
mod http_hardening;
mod inventory_reserve;
mod json_logs;
mod keyed_concurrency;
mod kubernetes;
mod otel_collector;
mod payment_outage;
mod processes;
mod prometheus_scrape;
mod read_ahead;
mod reconcile;
mod relay;
mod relay_crash;
mod relay_outages;
mod relay_slot;
mod restarts;
mod saga_end_to_end;
mod saga_versions;
mod schema_fresh;
mod slo_rules;
mod supervision;
mod tansu;
mod traces;
