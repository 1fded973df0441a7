//! What the logs of a full run contain: no secret and no phone number, email or CRM value, in
//! any form, at debug level.
//!
//! A binary of its own, unlike the other integration tests: it installs the process-wide
//! tracing subscriber, which would race with tests running beside it in one process (tracing
//! caches per-callsite interest globally, so a thread-local subscriber misses events now and
//! then).

#[allow(dead_code)]
#[path = "api/helpers.rs"]
mod helpers;

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::json;
use tracing_subscriber::layer::SubscriberExt as _;

use crate::helpers::{
    as_voice_call_from, eventbridge_start, spawn_app_with, use_http_crm, TestApp,
};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

async fn a_full_run(app: &TestApp) {
    // EventBridge, CTI (with an email), a data-action lookup, an unknown caller, a bad request
    // quoting a phone number, and a refused request carrying a wrong key.
    let ada = app.new_voice_call("tel:+13175550125");
    let event = as_voice_call_from(eventbridge_start(&ada), "tel:+13175550125");
    assert_eq!(app.post_genesys_event(&event).await.status(), 202);
    let alan = app.new_voice_call("tel:+442079460018");
    let cti = json!({
        "eventId": "cti-logs-1", "conversationId": alan.conversation_id,
        "callerNumber": "+44 20 7946 0018", "email": "alan.turing@example.org",
        "attributes": {"ivr.intent": "billing"}
    });
    assert_eq!(app.post_cti_event(&cti).await.status(), 202);
    let lookup = json!({"conversationId": ada.conversation_id, "participantId": ada.customer_participant_id,
                        "ani": "(317) 555-0125", "email": "ada@example.com"});
    assert_eq!(app.post_lookup(&lookup).await.status(), 200);
    let stranger = app.new_voice_call("tel:+13175550999");
    let event = as_voice_call_from(eventbridge_start(&stranger), "tel:+13175550999");
    assert_eq!(app.post_genesys_event(&event).await.status(), 202);
    let bad =
        json!({"eventId": "cti-logs-2", "conversationId": "c1", "callerNumber": 3175550125u64});
    assert_eq!(app.post_cti_event(&bad).await.status(), 422);
    let refused = app
        .client
        .post(app.url("/v1/events/genesys"))
        .header("x-api-key", "not-the-key-3175550125")
        .json(&json!({"conversationId": "c1"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(refused.status(), 401);
    app.settle().await;
    assert_eq!(app.customer_patches(&ada).len(), 1, "the run did its work");
}

/// A Zendesk and a HubSpot lookup that each meet a 429 first: the log line names the limit
/// (HubSpot's `policyName`, Zendesk's text), never the number searched or the token.
async fn vendor_rate_limits() {
    use attrsync::config::CrmAdapterKind;
    use attrsync::simulator::{hubspot, zendesk, HubSpotSim, ZendeskSim};
    let bind = || tokio::net::TcpListener::bind("127.0.0.1:0");
    let zd = ZendeskSim::start(Default::default(), bind().await.expect("bind"))
        .await
        .expect("Zendesk simulator");
    let hs = HubSpotSim::start(Default::default(), bind().await.expect("bind"))
        .await
        .expect("HubSpot simulator");
    zd.seed_user(json!({"name": "Ada Lovelace", "phone": "+1 513 555 7611"}));
    hs.seed_contact(json!({"firstname": "Ada", "lastname": "Lovelace", "phone": "+15135557611"}));
    zd.push_fault(zendesk::Fault::Status { status: 429 });
    hs.push_fault(hubspot::Fault::Status { status: 429 });
    let app = spawn_app_with(|s, _| {
        s.crm.sources = vec![CrmAdapterKind::Zendesk, CrmAdapterKind::Hubspot];
        s.crm.chain_mode = attrsync::config::ChainMode::Merge;
        s.crm.zendesk.base_url = zd.base_url();
        s.crm.zendesk.email = "agent@example.com".into();
        s.crm.zendesk.api_token = "sim-api-token".to_owned().into();
        s.crm.hubspot.base_url = hs.base_url();
        s.crm.hubspot.access_token = "pat-na1-sim-token".to_owned().into();
    })
    .await;
    let answer = app
        .post_lookup(&json!({"ani": "tel:+15135557611"}))
        .await
        .text()
        .await
        .expect("answer");
    assert!(answer.contains("\"found\":\"true\""), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_logs_of_a_full_run_contain_no_secret_and_no_personal_data() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new(
            attrsync::telemetry::default_filter("debug"),
        ))
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_span_list(true)
                .with_writer(capture.clone()),
        );
    tracing::subscriber::set_global_default(subscriber)
        .expect("the only subscriber of this binary");

    let app = spawn_app_with(|settings, sims| {
        use_http_crm(settings, &sims.crm);
        settings.genesys.rate_limit_per_minute = 0;
    })
    .await;
    app.crm.insert(json!({
        "id": "C-77", "firstName": "Ada", "lastName": "Lovelace", "email": "ada@example.com",
        "phone": "+13175550125", "tier": "gold"
    }));
    app.crm.insert(json!({
        "id": "C-78", "firstName": "Alan", "lastName": "Turing", "email": "alan.turing@example.org",
        "phone": "+442079460018"
    }));
    a_full_run(&app).await;
    vendor_rate_limits().await;

    let logs = String::from_utf8_lossy(
        &capture
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    )
    .to_string();
    assert!(
        logs.contains("participant attributes written"),
        "the capture saw the pipeline"
    );
    assert!(
        logs.contains("\"request_id\"") && logs.contains("\"conversation_id\""),
        "log lines carry the request and conversation ids"
    );
    assert!(
        logs.contains("\"client_addr\":\"127.0.0.1\""),
        "request spans carry the client address"
    );
    assert!(
        logs.contains("\"policy_name\":\"SECONDLY\"")
            && logs.contains("HubSpot rate limit reached"),
        "a HubSpot 429 is logged with its policyName"
    );
    assert!(
        logs.contains("Zendesk rate limit reached")
            && logs.contains("Number of allowed API requests per minute exceeded"),
        "a Zendesk 429 is logged with its text"
    );
    let auth = &app.state.settings.auth;
    let mut forbidden: Vec<String> = vec![
        "sim-secret".into(),
        "3175550125".into(),
        "555-0125".into(),
        "2079460018".into(),
        "7946 0018".into(),
        "3175550999".into(),
        "ada@example.com".into(),
        "alan.turing@example.org".into(),
        "Lovelace".into(),
        "Turing".into(),
        "5135557611".into(),
        "sim-api-token".into(),
        "pat-na1-sim-token".into(),
    ];
    for group in [&auth.genesys, &auth.cti, &auth.lookup, &auth.ops] {
        forbidden.extend(
            group
                .secrets
                .iter()
                .map(|s| secrecy::ExposeSecret::expose_secret(s).to_owned()),
        );
    }
    let lines = logs.lines().count();
    for needle in &forbidden {
        let hit = logs.lines().find(|l| l.contains(needle.as_str()));
        assert!(
            hit.is_none(),
            "the logs contain {needle:?}: {}",
            hit.unwrap_or_default()
        );
    }
    eprintln!(
        "{lines} log lines checked for {} forbidden strings",
        forbidden.len()
    );
    if std::env::var_os("SHOW_LOGS").is_some() {
        eprintln!("{logs}");
    }
}
