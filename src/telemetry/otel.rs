//! OpenTelemetry traces over OTLP/HTTP with protobuf bodies, when `telemetry.otlp_endpoint` is
//! set: the `tracing` spans become OpenTelemetry spans (`tracing-opentelemetry`), batched by the
//! SDK and posted to the endpoint. Context travels as a W3C `traceparent`
//! (<https://www.w3.org/TR/trace-context/#traceparent-header>): read from an incoming request,
//! kept with a queued job, and sent on every CRM request.
//!
//! The SDK's batch processor exports from a thread of its own, outside the runtime; the HTTP
//! client here hands each export to the runtime attrsync started it in, so it uses the same
//! `reqwest` as everything else.

use std::collections::HashMap;
use std::sync::OnceLock;

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The provider, kept to flush it at shutdown.
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// The layer exporting spans to `endpoint`, or none when it is empty or cannot be used (logged).
pub fn layer<S>(endpoint: &str) -> Option<impl tracing_subscriber::Layer<S>>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let endpoint = endpoint.trim();
    if endpoint.is_empty() {
        return None;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        eprintln!("attrsync: traces need the runtime; not exporting");
        return None;
    };
    let client = RuntimeClient {
        client: reqwest::Client::new(),
        runtime,
    };
    let exporter = match opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(endpoint)
        .with_http_client(client)
        .build()
    {
        Ok(exporter) => exporter,
        Err(e) => {
            eprintln!("attrsync: telemetry.otlp_endpoint: {e}; not exporting traces");
            return None;
        }
    };
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name("attrsync")
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("attrsync");
    let _ = PROVIDER.set(provider);
    Some(tracing_opentelemetry::layer().with_tracer(tracer))
}

/// Exports what is buffered (at shutdown, and in tests before reading the receiver).
pub async fn flush_traces() {
    if let Some(provider) = PROVIDER.get() {
        // Blocks until the export is done; the export itself runs on the runtime.
        let flushed = tokio::task::spawn_blocking(|| provider.force_flush()).await;
        if let Ok(Err(e)) = flushed {
            tracing::warn!(error = %e, "could not export the last traces");
        }
    }
}

/// The current span's context as a `traceparent` value; none when traces are off.
pub fn traceparent() -> Option<String> {
    PROVIDER.get()?;
    let context = tracing::Span::current().context();
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove("traceparent")
}

/// Makes `span` a child of the trace `traceparent` names (a malformed value is ignored: the
/// span starts a trace of its own).
pub fn continue_trace(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(value) = traceparent.filter(|_| PROVIDER.get().is_some()) else {
        return;
    };
    let carrier = HashMap::from([("traceparent".to_owned(), value.to_owned())]);
    let context = TraceContextPropagator::new().extract(&carrier);
    if context.span().span_context().is_valid() {
        let _ = span.set_parent(context);
    }
}

/// The exporter's HTTP client: `reqwest` on attrsync's runtime.
#[derive(Debug, Clone)]
struct RuntimeClient {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for RuntimeClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let sent = self.runtime.spawn(async move {
            let request = reqwest::Request::try_from(request)?;
            let response = client.execute(request).await?;
            let status = response.status();
            let body = response.bytes().await?;
            let mut answer = Response::new(body);
            *answer.status_mut() = status;
            Ok::<_, reqwest::Error>(answer)
        });
        Ok(sent.await??)
    }
}
