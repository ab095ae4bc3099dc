//! Passes for the sections every service has: `[service]`, `[broker]`, `[store]`, `[admin]`
//! and `[telemetry]`.

use std::net::SocketAddr;
use std::time::Duration;

use super::{Bounds, Compiler};
use crate::admin::AdminConfig;
use crate::config::spec::{AdminSpec, BrokerSpec, ServiceSpec, StoreSpec, TelemetrySpec, VariantSpec};
use crate::diagnostic::KeyPath;
use crate::store::{Dialect, StoreConfig};
use crate::traces::TelemetryConfig;
use crate::transport::{BrokerConfig, Brokers};

/// `[service]`, compiled.
pub(super) struct Identity {
    pub name: String,
    pub listen: SocketAddr,
    pub shutdown_grace: Duration,
    pub variant: String,
}

pub(super) fn compile_service(c: &mut Compiler, spec: &ServiceSpec, default_name: &str) -> Identity {
    let at = KeyPath::section("service");
    let name = spec.name.clone().unwrap_or_else(|| default_name.to_string());
    if name.is_empty() {
        c.problem(at.key("name"), "service name is empty");
    }
    let listen_text = spec.listen.as_deref().unwrap_or("127.0.0.1:8080");
    let listen = listen_text.parse::<SocketAddr>().unwrap_or_else(|_| {
        c.problem(at.key("listen"), format!("`{listen_text}` is not a socket address; write it like \"0.0.0.0:8080\""));
        SocketAddr::from(([127, 0, 0, 1], 8080))
    });
    let shutdown_grace = c.duration(at.key("shutdown_grace"), spec.shutdown_grace.as_deref(), Duration::from_secs(10));
    let variant = match spec.variant.unwrap_or(VariantSpec::Stable) {
        VariantSpec::Stable => "stable",
        VariantSpec::Canary => "canary",
    };
    Identity { name, listen, shutdown_grace, variant: variant.to_string() }
}

pub(super) fn compile_broker(c: &mut Compiler, spec: &BrokerSpec) -> BrokerConfig {
    let at = KeyPath::section("broker");
    let text = spec.brokers.clone().unwrap_or_else(|| "embedded".to_string());
    let brokers = if text == "embedded" {
        Brokers::Embedded
    } else {
        for part in text.split(',') {
            let part = part.trim();
            let ok = part.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !ok {
                c.problem(
                    at.key("brokers"),
                    format!(
                        "`{part}` is not `host:port`; write \"embedded\" or a list like \"kafka-0:9092,kafka-1:9092\""
                    ),
                );
            }
        }
        Brokers::List(text)
    };
    let partitions = spec.partitions.unwrap_or(4);
    if partitions < 1 {
        c.problem(at.key("partitions"), "partitions must be at least 1");
    }
    let replication = spec.replication.unwrap_or(1);
    if replication < 1 {
        c.problem(at.key("replication"), "replication must be at least 1");
    }
    BrokerConfig {
        brokers,
        partitions,
        replication,
        session_timeout: c.duration_in(
            at.key("session_timeout"),
            spec.session_timeout.as_deref(),
            Duration::from_secs(10),
            Bounds::WAIT,
        ),
        // Unset: chosen by the broker kind when connecting (see `BrokerConfig::fetch_wait`).
        fetch_wait: spec
            .fetch_wait
            .as_deref()
            .map(|text| c.duration_in(at.key("fetch_wait"), Some(text), Duration::from_millis(20), Bounds::INTERVAL)),
        redeliver_each_message: spec.redeliver_each_message.unwrap_or(false),
    }
}

pub(super) fn compile_store(c: &mut Compiler, spec: &StoreSpec) -> StoreConfig {
    let url = spec.url.clone().unwrap_or_else(|| "sqlite://chaos-symphony.db".to_string());
    let dialect = Dialect::of_url(&url).unwrap_or_else(|| {
        c.problem(
            KeyPath::section("store").key("url"),
            format!("unsupported database URL `{url}`; use postgres://… or sqlite://path/to/file.db"),
        );
        Dialect::Sqlite
    });
    StoreConfig { url, dialect, max_connections: spec.max_connections.unwrap_or(10) }
}

pub(super) fn compile_admin(c: &mut Compiler, spec: Option<&AdminSpec>) -> AdminConfig {
    let tokens: Vec<(String, String)> =
        spec.iter().flat_map(|a| a.tokens.iter().map(|(who, token)| (who.clone(), token.clone()))).collect();
    for (who, token) in &tokens {
        if token.len() < 16 {
            c.problem(
                KeyPath::section("admin").key("tokens").key(who),
                format!("the token of `{who}` is shorter than 16 characters; use a long random one"),
            );
        }
    }
    AdminConfig { tokens }
}

/// Sections that change things through an API need someone allowed to call it.
pub(super) fn require_tokens(c: &mut Compiler, admin: &AdminConfig, section: &str, what: &str) {
    if admin.tokens.is_empty() {
        c.problem(
            KeyPath::section(section),
            format!(
                "{what} changes things and needs [admin] tokens; add one, e.g. with RUNNER_ADMIN__TOKENS__OPERATOR"
            ),
        );
    }
}

pub(super) fn compile_telemetry(c: &mut Compiler, spec: &TelemetrySpec) -> TelemetryConfig {
    let at = KeyPath::section("telemetry");
    if let Some(endpoint) = &spec.otlp_endpoint {
        let scheme_ok = endpoint.starts_with("http://") || endpoint.starts_with("https://");
        if !scheme_ok || url::Url::parse(endpoint).is_err() {
            c.problem(
                at.key("otlp_endpoint"),
                format!("`{endpoint}` is not an http(s):// URL; write the collector's OTLP/HTTP address like \"http://127.0.0.1:4318\""),
            );
        }
    }
    let sample_ratio = spec.sample_ratio.unwrap_or(1.0);
    if !(0.0..=1.0).contains(&sample_ratio) {
        c.problem(at.key("sample_ratio"), format!("{sample_ratio} is not a share; write a number from 0 to 1"));
    }
    TelemetryConfig { otlp_endpoint: spec.otlp_endpoint.clone(), sample_ratio }
}
