//! The test harness: `spawn_app()` starts the two simulators and an attrsync instance wired to
//! them on free ports, with its own queue database and inbound secrets; `TestApp` has one helper
//! per use case, and authenticates the way each endpoint group is configured to require (API
//! key, Basic, bearer or a Standard Webhooks signature). The envelope builders turn the official
//! Genesys samples in `tests/fixtures/` into events for a conversation that exists in the
//! simulator.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use attrsync::app::App;
use attrsync::config::{AuthMode, EndpointAuth};
use attrsync::config::{CrmAdapterKind, LogFormat, Settings, TelemetrySettings};
use attrsync::domain::KeyKind;
use attrsync::http::AppState;
use attrsync::simulator::{
    CreatedConversation, CrmSim, CrmSimConfig, GenesysSim, GenesysSimConfig, MediaType,
    NewConversation,
};
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::{Map, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The ids in the official samples, replaced by the ids of a simulated conversation.
const SAMPLE_CONVERSATION_ID: &str = "2f7bf00a-0fc2-4d6a-9b56-92238191433e";
const SAMPLE_PARTICIPANT_ID: &str = "9fb2ca78-8389-4758-b76a-9b0300de1fce";

/// The DNIS of every simulated voice call.
const DNIS: &str = "tel:+18005550100";

/// The inbound secrets, one per endpoint group. Standard Webhooks secrets (`whsec_` + base64) are
/// also valid API keys, passwords and bearer tokens, so they fit whatever mode a group uses.
const INBOUND_SECRETS: [(&str, &str); 4] = [
    (
        "ATTRSYNC_AUTH__GENESYS__SECRETS",
        "whsec_YXR0cnN5bmMtdGVzdHMtZ2VuZXN5cy1zZWNyZXQhLi4=",
    ),
    (
        "ATTRSYNC_AUTH__CTI__SECRETS",
        "whsec_YXR0cnN5bmMtdGVzdHMtY3RpLXNlY3JldCEuLi4uLi4=",
    ),
    (
        "ATTRSYNC_AUTH__LOOKUP__SECRETS",
        "whsec_YXR0cnN5bmMtdGVzdHMtbG9va3VwLXNlY3JldCEuLi4=",
    ),
    (
        "ATTRSYNC_AUTH__OPS__SECRETS",
        "whsec_YXR0cnN5bmMtdGVzdHMtb3BzLXNlY3JldCEuLi4uLi4=",
    ),
];

/// How long `settle()` and the bounded polls wait before giving up.
const SETTLE_LIMIT: Duration = Duration::from_secs(10);
const POLL_EVERY: Duration = Duration::from_millis(10);

/// Logs only when `TEST_LOG` is set (`TEST_LOG=1 cargo test --test api -- --nocapture`).
fn init_tracing() {
    static TRACING: OnceLock<()> = OnceLock::new();
    TRACING.get_or_init(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            attrsync::telemetry::init(&TelemetrySettings {
                log_format: LogFormat::Pretty,
                log_level: "debug".to_owned(),
                redact: Default::default(),
                otlp_endpoint: String::new(),
            });
        }
    });
}

/// The running simulators, handed to `spawn_app_with`'s closure so settings can point at them.
pub struct Sims {
    pub genesys: GenesysSim,
    pub crm: CrmSim,
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub genesys: GenesysSim,
    pub crm: CrmSim,
    pub state: AppState,
    /// Dropping the sender completes the app's shutdown future.
    _shutdown: oneshot::Sender<()>,
    /// Holds this instance's queue database; removed when the test ends.
    _queue_dir: tempfile::TempDir,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.genesys.shutdown();
        self.crm.shutdown();
    }
}

/// attrsync with its defaults (the `file` CRM over `config/customers.json`), pointed at a fresh
/// Genesys simulator.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_, _| {}).await
}

/// As [`spawn_app`], with `configure` changing the settings before the app is built.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings, &Sims)) -> TestApp {
    init_tracing();
    let genesys = GenesysSim::start(GenesysSimConfig::default(), bind().await)
        .await
        .expect("start the Genesys simulator");
    let crm = CrmSim::start(CrmSimConfig::default(), bind().await)
        .await
        .expect("start the CRM simulator");
    let defaults = GenesysSimConfig::default();
    // An explicit environment, so the tests never depend on the process environment.
    let env: Vec<(String, String)> = [
        ("GENESYS_API_URL", genesys.base_url()),
        ("GENESYS_LOGIN_URL", genesys.base_url()),
        ("GENESYS_CLIENT_ID", defaults.client_id),
        ("GENESYS_CLIENT_SECRET", defaults.client_secret),
    ]
    .into_iter()
    .chain(INBOUND_SECRETS.map(|(k, v)| (k, v.to_owned())))
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let mut settings = Settings::load_from(None, &env).expect("the test configuration loads");
    settings.server.port = 0;
    settings.crm.file.path = manifest_dir().join("config/customers.json");
    // Every instance gets its own queue database: tests run in parallel.
    let queue_dir = tempfile::tempdir().expect("a temporary directory for the queue");
    settings.queue.sqlite_path = queue_dir.path().join("queue.db");
    // Quick retries, so the retry tests take milliseconds rather than seconds.
    settings.genesys.retry_base_ms = 10;
    settings.genesys.retry_max_ms = 200;
    settings.crm.http.common.retry_base_ms = 10;
    settings.crm.http.common.retry_max_ms = 200;
    settings.queue.retry_base_ms = 10;
    settings.queue.retry_max_ms = 200;
    settings.queue.poll_interval_ms = 20;

    let sims = Sims { genesys, crm };
    configure(&mut settings, &sims);
    let Sims { genesys, crm } = sims;

    let app = App::build(settings).await.expect("attrsync builds");
    let address = app.base_url();
    let state = app.state().clone();
    let (shutdown, stopped) = oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::builder()
        // Loopback must never go through a proxy from the environment.
        .no_proxy()
        .build()
        .expect("HTTP client");
    TestApp {
        address,
        client,
        genesys,
        crm,
        state,
        _shutdown: shutdown,
        _queue_dir: queue_dir,
    }
}

async fn bind() -> TcpListener {
    TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a free port")
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Switches to the `http` CRM adapter, searching the CRM simulator by phone and email.
pub fn use_http_crm(settings: &mut Settings, crm: &CrmSim) {
    settings.crm.adapter = CrmAdapterKind::Http;
    settings.crm.http.templates = BTreeMap::from([
        (
            KeyKind::Phone,
            format!("{}/api/customers?phone={{phone}}", crm.base_url()),
        ),
        (
            KeyKind::Email,
            format!("{}/api/customers?email={{email}}", crm.base_url()),
        ),
    ]);
    settings.crm.http.results_pointer = "/results".to_owned();
    let host = url::Url::parse(&crm.base_url())
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .expect("the CRM simulator's URL has a host");
    settings.crm.http.allowed_hosts = vec![host];
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn post_genesys_event(&self, event: &Value) -> reqwest::Response {
        self.post_json("/v1/events/genesys", event).await
    }

    pub async fn post_cti_event(&self, event: &Value) -> reqwest::Response {
        self.post_json("/v1/events/cti", event).await
    }

    pub async fn post_lookup(&self, request: &Value) -> reqwest::Response {
        self.post_json("/v1/lookup", request).await
    }

    async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.post_raw(path, "application/json", body.to_string())
            .await
    }

    /// POSTs `body` as it is, with the credentials `path`'s endpoint group requires.
    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<Vec<u8>>,
    ) -> reqwest::Response {
        let body = body.into();
        let request = self
            .client
            .post(self.url(path))
            .header(reqwest::header::CONTENT_TYPE, content_type);
        let request = match self.auth_for(Method::POST, path) {
            Some(auth) => with_credentials(request, auth, &body),
            None => request,
        };
        request
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    /// GETs `path`, with credentials where its endpoint group requires them.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        let request = self.client.get(self.url(path));
        let request = match self.auth_for(Method::GET, path) {
            Some(auth) => with_credentials(request, auth, &[]),
            None => request,
        };
        request
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// The authentication settings of the endpoint group serving `method path`, if any.
    fn auth_for(&self, method: Method, path: &str) -> Option<&EndpointAuth> {
        let auth = &self.state.settings.auth;
        match (method, path) {
            (Method::POST, "/v1/events/genesys") => Some(&auth.genesys),
            (Method::POST, "/v1/events/cti") => Some(&auth.cti),
            (Method::POST, "/v1/lookup") => Some(&auth.lookup),
            (Method::GET, "/metrics") => Some(&auth.ops),
            _ => None,
        }
    }

    /// A live inbound voice call from `ani`, answered by an IVR.
    pub fn new_voice_call(&self, ani: &str) -> CreatedConversation {
        self.new_voice_call_with(ani, BTreeMap::new())
    }

    /// As [`TestApp::new_voice_call`], the customer participant already holding `attributes`.
    pub fn new_voice_call_with(
        &self,
        ani: &str,
        attributes: BTreeMap<String, String>,
    ) -> CreatedConversation {
        self.genesys.create_conversation(NewConversation {
            media_type: MediaType::Voice,
            ani: Some(ani.to_owned()),
            dnis: Some(DNIS.to_owned()),
            external_contact_id: None,
            attributes,
            ..NewConversation::default()
        })
    }

    /// The customer participant's attributes as Genesys holds them now.
    pub fn customer_attributes(&self, call: &CreatedConversation) -> BTreeMap<String, String> {
        self.genesys
            .attributes(&call.conversation_id, &call.customer_participant_id)
            .expect("the customer participant exists")
    }

    /// The PATCH bodies Genesys accepted for the customer participant.
    pub fn customer_patches(&self, call: &CreatedConversation) -> Vec<BTreeMap<String, String>> {
        self.genesys
            .patches(&call.conversation_id, &call.customer_participant_id)
    }

    /// Accepted events not yet finished (queued, running or waiting for a retry).
    pub async fn pending(&self) -> u64 {
        self.state
            .queue
            .pending()
            .await
            .expect("the queue store answers")
    }

    /// Waits until every accepted event is processed (done or given up); call it before
    /// asserting that something did *not* happen.
    pub async fn settle(&self) {
        let started = tokio::time::Instant::now();
        loop {
            let pending = self.pending().await;
            if pending == 0 {
                return;
            }
            if started.elapsed() > SETTLE_LIMIT {
                panic!(
                    "settle(): {pending} accepted event(s) still unfinished after \
                     {SETTLE_LIMIT:?} (a retry loop that never ends, or a hung upstream call?)"
                );
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }
}

/// Adds what `auth` requires to `request`; a signature covers `body`, under a fresh message id.
pub fn with_credentials(
    request: reqwest::RequestBuilder,
    auth: &EndpointAuth,
    body: &[u8],
) -> reqwest::RequestBuilder {
    let secret = || {
        auth.secrets
            .first()
            .map(|s| s.expose_secret().trim().to_owned())
            .expect("the test configuration gives every group a secret")
    };
    match auth.mode {
        AuthMode::None => request,
        AuthMode::ApiKey => request.header(auth.api_key_header.as_str(), secret()),
        AuthMode::Bearer => request.bearer_auth(secret()),
        AuthMode::Basic => request.basic_auth(&auth.basic_username, Some(secret())),
        AuthMode::Signature => {
            let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
            let timestamp = chrono::Utc::now().timestamp();
            let signature = standardwebhooks::Webhook::new(&secret())
                .expect("a Standard Webhooks secret")
                .sign(&id, timestamp, body)
                .expect("the body is UTF-8");
            request
                .header("webhook-id", id)
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", signature)
        }
    }
}

/// The response body as JSON, with the status in the panic message when it is not JSON.
pub async fn json_body(response: reqwest::Response) -> Value {
    let status = response.status();
    let text = response.text().await.expect("response body");
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("expected a JSON body (status {status}), got {text:?}: {e}"))
}

pub fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Envelopes built from the official samples

fn fixture_for(name: &str, call: &CreatedConversation) -> Value {
    let path = manifest_dir().join("tests/fixtures").join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read fixture {}: {e}", path.display()));
    // Plain text substitution also reaches the id inside `detail.topicName`.
    let text = text
        .replace(SAMPLE_CONVERSATION_ID, &call.conversation_id)
        .replace(SAMPLE_PARTICIPANT_ID, &call.customer_participant_id);
    let mut event: Value = serde_json::from_str(&text).expect("fixtures are JSON");
    // Every event Genesys sends has its own EventBridge id and correlation id; the samples'
    // fixed ones would make every event built from them a redelivery of the first.
    event["id"] = Value::String(uuid::Uuid::new_v4().to_string());
    event["detail"]["metadata"]["CorrelationId"] = Value::String(uuid::Uuid::new_v4().to_string());
    event
}

/// The official EventBridge `customer.start` sample, for `call`, with fresh envelope ids.
pub fn eventbridge_start(call: &CreatedConversation) -> Value {
    fixture_for("eventbridge-customer-start.json", call)
}

/// The official EventBridge `customer.end` sample, for `call`.
pub fn eventbridge_end(call: &CreatedConversation) -> Value {
    fixture_for("eventbridge-customer-end.json", call)
}

/// A notification (`topicName`, `eventBody`, ...): the EventBridge sample's `detail`.
pub fn notification_start(call: &CreatedConversation) -> Value {
    eventbridge_start(call)["detail"].clone()
}

/// A bare event body: the EventBridge sample's `detail.eventBody`.
pub fn bare_start(call: &CreatedConversation) -> Value {
    eventbridge_start(call)["detail"]["eventBody"].clone()
}

/// The event body inside any of the three envelopes.
pub fn event_body_mut(event: &mut Value) -> &mut Map<String, Value> {
    let body = if event.get("detail").is_some() {
        &mut event["detail"]["eventBody"]
    } else if event.get("eventBody").is_some() {
        &mut event["eventBody"]
    } else {
        event
    };
    body.as_object_mut().expect("the event body is an object")
}

/// Turns the (chat) sample into a voice call from `ani`: the sample's external contact ids go,
/// so the caller is found by number.
pub fn as_voice_call_from(mut event: Value, ani: &str) -> Value {
    let body = event_body_mut(&mut event);
    body.insert("ani".to_owned(), ani.into());
    body.insert("dnis".to_owned(), DNIS.into());
    body.insert("mediaType".to_owned(), "VOICE".into());
    body.insert("provider".to_owned(), "Edge".into());
    body.remove("externalContactId");
    body.remove("externalOrganizationId");
    body.remove("conversationExternalContactIds");
    event
}

pub fn without_participant_id(mut event: Value) -> Value {
    event_body_mut(&mut event).remove("participantId");
    event
}
