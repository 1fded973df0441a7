//! Tracing set-up, once per process: JSON lines for log shippers or pretty output for a
//! terminal; the filter from `RUST_LOG`, else `telemetry.log_level`. Span fields (request id,
//! conversation id) appear on every line logged inside a request or a job. With
//! `telemetry.otlp_endpoint` set, the same spans are exported as OpenTelemetry traces (`otel`).

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, TelemetrySettings};

mod otel;

pub use otel::{continue_trace, flush_traces, traceparent};

/// The filter used when `RUST_LOG` is not set: `level` for attrsync and the HTTP layer; the
/// client and database libraries only warn (at debug they would log request URLs, which for a CRM
/// can carry a phone number).
pub fn default_filter(level: &str) -> String {
    format!("{level},attrsync={level},tower_http={level},hyper=warn,reqwest=warn,h2=warn,sqlx=warn")
}

/// Installs the global subscriber and the redaction mode. A second call (tests) is a no-op.
pub fn init(settings: &TelemetrySettings) {
    crate::redact::set_mode(settings.redact);
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(default_filter(&settings.log_level)));
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(otel::layer(&settings.otlp_endpoint));
    let _ = match settings.log_format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(false)
                    .with_span_list(true)
                    .flatten_event(true),
            )
            .try_init(),
        LogFormat::Pretty => registry
            .with(tracing_subscriber::fmt::layer().compact())
            .try_init(),
    };
}
