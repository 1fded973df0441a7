//! OpenTelemetry traces, against a real OTLP/HTTP receiver started here (it decodes the
//! protobuf `ExportTraceServiceRequest` the exporter posts, as a Collector would): an event sent
//! with a W3C `traceparent` is one trace from the request through the queued job, the CRM call
//! and the Genesys PATCH, the CRM request carries the trace on, and no span holds a caller's
//! number, email or CRM values. A binary of its own: the tracing subscriber is process-wide.

#[allow(dead_code)]
#[path = "api/helpers.rs"]
mod helpers;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use attrsync::config::{LogFormat, TelemetrySettings};
use axum::body::Bytes;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use serde_json::json;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// The spans every export carried.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<Span>>>);

impl Received {
    fn spans(&self) -> Vec<Span> {
        self.0.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

async fn receiver() -> (String, Received) {
    let received = Received::default();
    let store = received.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| {
            let store = store.clone();
            async move {
                let Ok(request) = ExportTraceServiceRequest::decode(body) else {
                    return (axum::http::StatusCode::BAD_REQUEST, Vec::new());
                };
                let spans = request
                    .resource_spans
                    .into_iter()
                    .flat_map(|r| r.scope_spans)
                    .flat_map(|s| s.spans);
                if let Ok(mut all) = store.0.lock() {
                    all.extend(spans);
                }
                (
                    axum::http::StatusCode::OK,
                    ExportTraceServiceResponse::default().encode_to_vec(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}/v1/traces"), received)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(value: &KeyValue) -> String {
    match value.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes.iter().find(|a| a.key == key).map(text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_with_a_traceparent_is_one_trace_through_queue_crm_and_patch_without_pii() {
    let (endpoint, received) = receiver().await;
    attrsync::telemetry::init(&TelemetrySettings {
        log_format: LogFormat::Pretty,
        log_level: "info".to_owned(),
        redact: Default::default(),
        otlp_endpoint: endpoint,
    });
    let app = helpers::spawn_app_with(|s, sims| helpers::use_http_crm(s, &sims.crm)).await;
    for customer in attrsync::simulator::CrmSim::sample_customers() {
        assert!(app.crm.insert(customer));
    }
    let call = app.new_voice_call("tel:+13175550125");
    let body = serde_json::to_vec(&json!({
        "eventId": "cti-trace-1",
        "conversationId": call.conversation_id,
        "participantId": call.customer_participant_id,
        "callerNumber": "+1 317 555 0125",
    }))
    .unwrap();
    let request = app
        .client
        .post(app.url("/v1/events/cti"))
        .header("content-type", "application/json")
        .header("traceparent", PARENT);
    let response = helpers::with_credentials(request, &app.state.settings.auth.cti, &body)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    app.settle().await;
    let patches = app.customer_patches(&call);
    assert_eq!(patches.len(), 1);
    assert_eq!(
        patches[0]["crm.lastName"], "Lovelace",
        "the CRM knew the caller"
    );

    // The exporter batches; flush and wait for the trace's spans to arrive.
    let wanted = [
        "request",
        "job",
        "crm.find",
        "genesys.patch_participant_attributes",
    ];
    let started = tokio::time::Instant::now();
    let spans = loop {
        attrsync::telemetry::flush_traces().await;
        let spans: Vec<Span> = received
            .spans()
            .into_iter()
            .filter(|s| hex(&s.trace_id) == TRACE_ID)
            .collect();
        if wanted.iter().all(|w| spans.iter().any(|s| s.name == *w)) {
            break spans;
        }
        let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "spans of the trace so far: {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let request = spans.iter().find(|s| s.name == "request").unwrap();
    assert_eq!(
        hex(&request.parent_span_id),
        "00f067aa0ba902b7",
        "continues the sender's span"
    );
    let job = spans.iter().find(|s| s.name == "job").unwrap();
    assert_eq!(
        attribute(job, "conversation_id").as_deref(),
        Some(call.conversation_id.as_str())
    );
    assert!(attribute(job, "queue_wait_ms").is_some());
    let crm = spans.iter().find(|s| s.name == "crm.find").unwrap();
    assert_eq!(
        crm.parent_span_id, job.span_id,
        "the CRM call is the job's child"
    );
    assert_eq!(attribute(crm, "source").as_deref(), Some("http"));

    // The CRM request carried the trace on.
    let carried = app.crm.traceparents();
    assert!(
        carried.iter().any(|p| p.contains(TRACE_ID)),
        "CRM saw {carried:?}"
    );

    // Nothing personal in any span of any trace: attributes, events and their attributes.
    let mut everything = String::new();
    for span in received.spans() {
        everything.push_str(&span.name);
        for kv in span
            .attributes
            .iter()
            .chain(span.events.iter().flat_map(|e| &e.attributes))
        {
            everything.push_str(&format!(" {}={}", kv.key, text(kv)));
        }
        for event in &span.events {
            everything.push_str(&format!(" {}", event.name));
        }
    }
    for personal in [
        "5550125",
        "555 0125",
        "Lovelace",
        "ada@example.com",
        "ACC-000-1001",
    ] {
        assert!(
            !everything.contains(personal),
            "{personal} exported: {everything}"
        );
    }
}
