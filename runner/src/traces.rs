//! Traces: the log subscriber, OpenTelemetry spans exported over OTLP, and the W3C
//! `traceparent` that carries one order's trace from the HTTP request through the outbox row
//! and the Kafka headers to every consumer and on into what it produces.
//!
//! Spans are `tracing` spans; when an OTLP endpoint is configured (`[telemetry] otlp_endpoint`
//! or the standard `OTEL_EXPORTER_OTLP_ENDPOINT`) a `tracing-opentelemetry` layer in the
//! subscriber exports them. Without one, ids still travel: each hop writes a new
//! span id under the order's trace id, so logs of one order share a trace id either way.

use std::sync::OnceLock;

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry::Context;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, Registry};

type OtelLayer = tracing_opentelemetry::OpenTelemetryLayer<Registry, SdkTracer>;

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// `[telemetry]`, compiled: the OTLP endpoint named in the file (the environment may name
/// one too) and the share of new traces recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryConfig {
    pub otlp_endpoint: Option<String>,
    pub sample_ratio: f64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig { otlp_endpoint: None, sample_ratio: 1.0 }
    }
}

/// Where and how spans are exported; see `[telemetry]`.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceSettings {
    /// Base OTLP/HTTP endpoint (`http://collector:4318`) or the full `/v1/traces` URL.
    pub endpoint: String,
    /// `service.name` of the exported spans.
    pub service_name: String,
    /// Share of new traces recorded (parent-based: a sampled parent keeps its children).
    pub sample_ratio: f64,
}

/// Installs the process's subscriber: log lines (text or JSON) and, when `export` says where,
/// the OTLP exporter. One `RUST_LOG` filter (default `info`) decides for both: spans are INFO,
/// so they are exported unless the filter silences them. (One global filter rather than a
/// filter per layer: per-layer filters lost spans when consumers first met a span at once.)
/// The exporter is set up before the async runtime starts (its HTTP client blocks).
pub fn init_subscriber(json: bool, export: Option<&TraceSettings>) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rdkafka=warn,sqlx=warn"));
    let (otel, problem) = match export.map(otel_layer) {
        Some(Ok(layer)) => (Some(layer), None),
        Some(Err(problem)) => (None, Some(problem)),
        None => (None, None),
    };
    let text = (!json).then(|| fmt::layer().with_writer(std::io::stderr));
    let json = json.then(|| fmt::layer().json().with_writer(std::io::stderr));
    let installed = tracing_subscriber::registry().with(otel).with(filter).with(text).with(json).try_init();
    if installed.is_err() {
        return;
    }
    match (export, problem) {
        (Some(settings), None) => tracing::info!(
            endpoint = %traces_url(&settings.endpoint),
            service = %settings.service_name,
            "exporting spans over OTLP"
        ),
        (_, Some(problem)) => tracing::warn!("{problem}; spans are not exported"),
        _ => {}
    }
}

/// The OTLP endpoint: the pipeline's, else `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, else
/// `OTEL_EXPORTER_OTLP_ENDPOINT` (the standard variables), else none (no export).
pub fn endpoint(configured: Option<&str>) -> Option<String> {
    let from_env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    configured
        .map(str::to_string)
        .or_else(|| from_env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
        .or_else(|| from_env("OTEL_EXPORTER_OTLP_ENDPOINT"))
}

/// The URL spans are posted to: a base endpoint gets the standard `/v1/traces` path.
pub fn traces_url(endpoint: &str) -> String {
    let endpoint = endpoint.trim_end_matches('/');
    if endpoint.ends_with("/v1/traces") {
        endpoint.to_string()
    } else {
        format!("{endpoint}/v1/traces")
    }
}

/// The layer exporting spans over OTLP/HTTP (protobuf) in batches.
fn otel_layer(settings: &TraceSettings) -> Result<OtelLayer, String> {
    let url = traces_url(&settings.endpoint);
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(url.clone())
        .build()
        .map_err(|e| format!("cannot set up the OTLP exporter for {url}: {e}"))?;
    let mut resource = opentelemetry_sdk::Resource::builder();
    // OTEL_SERVICE_NAME, when set, names the service (the builder reads it).
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(settings.service_name.clone());
    }
    let ratio = settings.sample_ratio.clamp(0.0, 1.0);
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio))))
        .with_resource(resource.build())
        .build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("runner")).with_location(false);
    let _ = PROVIDER.set(provider);
    Ok(layer)
}

/// Sends the spans still buffered; called once the services have stopped.
pub fn shutdown() {
    if let Some(provider) = PROVIDER.get() {
        if let Err(e) = provider.shutdown() {
            eprintln!("warning: spans not flushed to the OTLP endpoint: {e}");
        }
    }
}

/// Parses a W3C `traceparent` (`00-<trace id>-<span id>-<flags>`).
pub fn parse_traceparent(traceparent: &str) -> Option<SpanContext> {
    let mut parts = traceparent.trim().split('-');
    let (version, trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version.len() != 2 || trace.len() != 32 || span.len() != 16 || flags.len() != 2 {
        return None;
    }
    let context = SpanContext::new(
        TraceId::from_hex(trace).ok()?,
        SpanId::from_hex(span).ok()?,
        TraceFlags::new(u8::from_str_radix(flags, 16).ok()?),
        true,
        TraceState::default(),
    );
    context.is_valid().then_some(context)
}

/// Makes `span` a child of the remote span a `traceparent` names (a header, an outbox row).
pub fn set_parent(span: &Span, traceparent: Option<&str>) {
    if let Some(remote) = traceparent.and_then(parse_traceparent) {
        let _ = span.set_parent(Context::new().with_remote_span_context(remote));
    }
}

/// The `traceparent` naming `span`, when spans are being recorded.
pub fn traceparent_of(span: &Span) -> Option<String> {
    let context = span.context();
    let span_ref = context.span();
    let sc = span_ref.span_context();
    sc.is_valid().then(|| format!("00-{}-{}-{:02x}", sc.trace_id(), sc.span_id(), sc.trace_flags().to_u8()))
}

/// The `traceparent` for something produced now: the current span when spans are recorded,
/// else a new span id under `parent`'s trace id (a new trace without a parent).
pub fn outgoing(parent: Option<&str>) -> String {
    traceparent_of(&Span::current()).unwrap_or_else(|| crate::event::child_traceparent(parent))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparents_parse_and_bad_ones_are_refused() {
        let ok = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(ok.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(ok.span_id().to_string(), "00f067aa0ba902b7");
        assert!(ok.is_sampled());
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473x-00f067aa0ba902b7-01",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn endpoints_get_the_traces_path_once() {
        assert_eq!(traces_url("http://c:4318"), "http://c:4318/v1/traces");
        assert_eq!(traces_url("http://c:4318/"), "http://c:4318/v1/traces");
        assert_eq!(traces_url("http://c:4318/v1/traces"), "http://c:4318/v1/traces");
    }

    #[test]
    fn without_an_exporter_outgoing_keeps_the_trace_id() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let child = outgoing(Some(parent));
        assert!(child.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"), "{child}");
        assert_ne!(child, parent);
    }
}
