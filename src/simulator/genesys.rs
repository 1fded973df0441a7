//! Genesys Cloud simulator: the login host's client-credentials token endpoint and the two
//! Platform API operations attrsync relies on (`GET /api/v2/conversations/{id}` and
//! `PATCH /api/v2/conversations/{id}/participants/{pid}/attributes`), with Genesys' `ErrorBody`
//! errors, per-token rate limiting, token expiry/revocation and fault injection, plus the
//! `/sim/...` admin API and the [`GenesysSim`] handle that drive it.
//!
//! One router serves both hosts; clients point their login and API base URLs at the same
//! address. Behaviour follows `shared/reference/genesys-api.md`; where the real API is
//! undocumented the simulator takes the documented working assumption (PATCH upserts keys) and
//! says so next to the code.
//!
//! Every Platform API request goes through the same gate, in this order: count the call, add
//! the configured latency, consume one scripted fault, roll the random error rate, check the
//! bearer token, apply the token's rate limit. Scripted faults come before authentication so a
//! test can make any call fail regardless of what the client sends.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{middleware, Json, Router};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::time::Instant;
use uuid::Uuid;

use super::{bearer_token, lock, ServerHandle};

/// Genesys reports rate limits per minute; a fixed window per token is close enough for a
/// client that only has to honour `Retry-After`.
const RATE_LIMIT_WINDOW: Duration = Duration::from_secs(60);

/// Genesys echoes the error body's `contextId` in this header ([F429]).
static CORRELATION_ID: HeaderName = HeaderName::from_static("inin-correlation-id");

const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";
const JSON_CONTENT_TYPE: &str = "application/json";

/// How the simulator starts; latency, error rate and rate limit can be changed later through
/// [`GenesysSim`] or `PATCH /sim/config`.
#[derive(Debug, Clone)]
pub struct GenesysSimConfig {
    pub client_id: String,
    pub client_secret: String,
    /// `expires_in` of issued tokens; Genesys' default for an OAuth client is 24 h.
    pub token_lifetime: Duration,
    /// Requests per minute per access token; `None` disables rate limiting. The real
    /// client-credentials limit is reportedly 300.
    pub rate_limit_per_minute: Option<u32>,
    /// Added before every Platform API request is handled.
    pub latency: Duration,
    /// Fraction (0.0–1.0) of Platform API requests answered with 503 `service.unavailable`.
    pub error_rate: f64,
}

impl Default for GenesysSimConfig {
    fn default() -> Self {
        Self {
            client_id: "attrsync-sim".to_owned(),
            client_secret: "sim-secret".to_owned(),
            token_lifetime: Duration::from_secs(86_400),
            rate_limit_per_minute: None,
            latency: Duration::ZERO,
            error_rate: 0.0,
        }
    }
}

/// The simulated operations, each with its own queue of scripted faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Op {
    /// `POST /oauth/token`
    Token,
    /// `GET /api/v2/conversations/{conversationId}`
    GetConversation,
    /// `PATCH /api/v2/conversations/{conversationId}/participants/{participantId}/attributes`
    PatchAttributes,
}

impl Op {
    const COUNT: usize = 3;

    fn index(self) -> usize {
        match self {
            Op::Token => 0,
            Op::GetConversation => 1,
            Op::PatchAttributes => 2,
        }
    }
}

/// A canned outcome for the next call of an operation, consumed before normal handling.
///
/// On the admin API a fault is written as `{"kind": "unauthorized"}`,
/// `{"kind": "tooManyRequests", "retryAfterSecs": 3}`, `{"kind": "status", "status": 503}` or
/// `{"kind": "delay", "millis": 250}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "FaultWire", into = "FaultWire")]
pub enum Fault {
    /// 401 `bad.credentials`, as for an expired or revoked token.
    Unauthorized,
    /// The normalized 429 with `Retry-After: retry_after_secs`.
    TooManyRequests { retry_after_secs: u64 },
    /// An `ErrorBody` with this status and a plausible code (500 `internal.server.error`,
    /// 503 `service.unavailable`, 504 `request.timeout`, ...). Values outside 400–599 become 500.
    Status(u16),
    /// Sleep, then handle the request normally.
    Delay(Duration),
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
enum FaultWire {
    Unauthorized,
    TooManyRequests {
        #[serde(rename = "retryAfterSecs")]
        retry_after_secs: u64,
    },
    Status {
        status: u16,
    },
    Delay {
        millis: u64,
    },
}

impl From<FaultWire> for Fault {
    fn from(wire: FaultWire) -> Self {
        match wire {
            FaultWire::Unauthorized => Fault::Unauthorized,
            FaultWire::TooManyRequests { retry_after_secs } => {
                Fault::TooManyRequests { retry_after_secs }
            }
            FaultWire::Status { status } => Fault::Status(status),
            FaultWire::Delay { millis } => Fault::Delay(Duration::from_millis(millis)),
        }
    }
}

impl From<Fault> for FaultWire {
    fn from(fault: Fault) -> Self {
        match fault {
            Fault::Unauthorized => FaultWire::Unauthorized,
            Fault::TooManyRequests { retry_after_secs } => {
                FaultWire::TooManyRequests { retry_after_secs }
            }
            Fault::Status(status) => FaultWire::Status { status },
            Fault::Delay(delay) => FaultWire::Delay {
                millis: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            },
        }
    }
}

/// Media type of a simulated conversation; decides which media array its participants carry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaType {
    #[default]
    Voice,
    Chat,
    Message,
    Callback,
    Email,
}

impl MediaType {
    /// The `provider` Genesys reports on the media object.
    fn provider(self) -> &'static str {
        match self {
            MediaType::Voice => "Edge",
            MediaType::Chat => "PureCloud Webchat v2",
            MediaType::Message => "PureCloud Messaging",
            MediaType::Callback => "PureCloud Callback",
            MediaType::Email => "PureCloud Email",
        }
    }

    /// Voice calls are answered by an Architect IVR; the digital channels by a flow that the
    /// analytics vocabulary calls `workflow`. Clients should only rely on `customer`.
    fn flow_purpose(self) -> &'static str {
        match self {
            MediaType::Voice | MediaType::Callback => "ivr",
            MediaType::Chat | MediaType::Message | MediaType::Email => "workflow",
        }
    }

    fn flow_name(self) -> &'static str {
        match self {
            MediaType::Voice | MediaType::Callback => "Inbound Call Flow",
            MediaType::Chat | MediaType::Message | MediaType::Email => "Inbound Message Flow",
        }
    }
}

/// Body of `POST /sim/conversations` and argument of [`GenesysSim::create_conversation`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NewConversation {
    pub media_type: MediaType,
    /// Caller address as Genesys reports it, e.g. `tel:+13175550125`; omitted when `None`
    /// (a withheld number).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ani: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dnis: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_contact_id: Option<String>,
    /// Attributes already on the customer participant, as if the flow had set them.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

/// Reply of `POST /sim/conversations` and result of [`GenesysSim::create_conversation`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedConversation {
    pub conversation_id: String,
    pub customer_participant_id: String,
    /// The IVR (voice, callback) or flow (digital channels) participant.
    pub ivr_participant_id: String,
}

/// Counters since start; `GET /sim/stats` returns the same in camelCase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimStats {
    /// Every `POST /oauth/token`, whatever the outcome.
    pub token_requests: u64,
    pub tokens_issued: u64,
    /// Every GET conversation call, including rejected ones.
    pub get_conversation: u64,
    /// Every PATCH attributes call, including rejected ones.
    pub patch_attributes: u64,
    /// Every 429 sent, whether from the rate limiter or scripted.
    pub rate_limited: u64,
    /// Scripted faults consumed plus random `error_rate` failures.
    pub faults_injected: u64,
    pub patches_accepted: u64,
}

/// Handle to a running Genesys simulator; clones share the same state and server.
#[derive(Clone)]
pub struct GenesysSim {
    shared: Arc<Shared>,
    server: Arc<ServerHandle>,
}

impl fmt::Debug for GenesysSim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GenesysSim")
            .field("base_url", &self.base_url())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl GenesysSim {
    /// Serves on `listener` (already bound, e.g. `127.0.0.1:0`) in a spawned task until
    /// [`GenesysSim::shutdown`] or the end of the process.
    pub async fn start(config: GenesysSimConfig, listener: TcpListener) -> std::io::Result<Self> {
        let shared = Arc::new(Shared::new(config));
        let server = ServerHandle::spawn("genesys", app(Arc::clone(&shared)), listener)?;
        Ok(Self {
            shared,
            server: Arc::new(server),
        })
    }

    /// The same app over the same state, for serving it on further listeners (e.g. separate
    /// login and API ports) or mounting it in another router.
    pub fn router(&self) -> Router {
        app(Arc::clone(&self.shared))
    }

    /// `http://127.0.0.1:PORT`; use it as both the login and the API base URL.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// Stops accepting connections and lets in-flight requests finish.
    pub fn shutdown(&self) {
        self.server.shutdown();
    }

    pub fn create_conversation(&self, spec: NewConversation) -> CreatedConversation {
        self.shared.create_conversation(spec)
    }

    /// Sets `endTime` on the conversation and its participants; later PATCHes get 404. Returns
    /// whether the conversation exists; ending it again keeps the first end time.
    pub fn end_conversation(&self, conversation_id: &str) -> bool {
        self.shared.end_conversation(conversation_id)
    }

    pub fn attributes(
        &self,
        conversation_id: &str,
        participant_id: &str,
    ) -> Option<BTreeMap<String, String>> {
        self.shared
            .with_participant(conversation_id, participant_id, |p| p.attributes.clone())
    }

    /// Upserts attributes as an Architect flow's Set Participant Data would: not recorded as
    /// a PATCH, allowed after the conversation ended. Returns whether the participant exists.
    pub fn set_attributes(
        &self,
        conversation_id: &str,
        participant_id: &str,
        attrs: BTreeMap<String, String>,
    ) -> bool {
        self.shared
            .with_participant(conversation_id, participant_id, |p| {
                p.attributes.extend(attrs)
            })
            .is_some()
    }

    /// Accepted PATCH bodies for this participant, oldest first (empty if unknown).
    pub fn patches(
        &self,
        conversation_id: &str,
        participant_id: &str,
    ) -> Vec<BTreeMap<String, String>> {
        self.shared
            .with_participant(conversation_id, participant_id, |p| p.patches.clone())
            .unwrap_or_default()
    }

    pub fn stats(&self) -> SimStats {
        self.shared.counters.snapshot()
    }

    /// Queues `fault` for the next not-yet-faulted call of `op` (FIFO per operation).
    pub fn push_fault(&self, op: Op, fault: Fault) {
        lock(&self.shared.faults).scripted[op.index()].push_back(fault);
    }

    /// Invalidates every issued token (401 `bad.credentials`), simulating expiry or rotation.
    pub fn revoke_tokens(&self) {
        lock(&self.shared.tokens).clear();
    }

    pub fn set_latency(&self, latency: Duration) {
        lock(&self.shared.faults).latency = latency;
    }

    /// Clamped to 0.0–1.0; NaN disables random failures.
    pub fn set_error_rate(&self, rate: f64) {
        lock(&self.shared.faults).error_rate = sanitize_rate(rate);
    }

    pub fn set_rate_limit(&self, per_minute: Option<u32>) {
        lock(&self.shared.faults).rate_limit_per_minute = per_minute;
    }
}

fn sanitize_rate(rate: f64) -> f64 {
    if rate.is_nan() {
        0.0
    } else {
        rate.clamp(0.0, 1.0)
    }
}

// ---------------------------------------------------------------------------------------------
// State

struct Shared {
    client_id: String,
    client_secret: String,
    token_lifetime: Duration,
    tokens: Mutex<HashMap<String, IssuedToken>>,
    conversations: Mutex<HashMap<String, Conversation>>,
    faults: Mutex<FaultSettings>,
    counters: Counters,
}

struct IssuedToken {
    expires_at: Instant,
    window: RateWindow,
}

struct FaultSettings {
    latency: Duration,
    error_rate: f64,
    rate_limit_per_minute: Option<u32>,
    scripted: [VecDeque<Fault>; Op::COUNT],
}

#[derive(Default)]
struct Counters {
    token_requests: AtomicU64,
    tokens_issued: AtomicU64,
    get_conversation: AtomicU64,
    patch_attributes: AtomicU64,
    rate_limited: AtomicU64,
    faults_injected: AtomicU64,
    patches_accepted: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    fn calls(&self, op: Op) -> &AtomicU64 {
        match op {
            Op::Token => &self.token_requests,
            Op::GetConversation => &self.get_conversation,
            Op::PatchAttributes => &self.patch_attributes,
        }
    }

    fn snapshot(&self) -> SimStats {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SimStats {
            token_requests: read(&self.token_requests),
            tokens_issued: read(&self.tokens_issued),
            get_conversation: read(&self.get_conversation),
            patch_attributes: read(&self.patch_attributes),
            rate_limited: read(&self.rate_limited),
            faults_injected: read(&self.faults_injected),
            patches_accepted: read(&self.patches_accepted),
        }
    }
}

/// Fixed rate-limit window of one token.
#[derive(Debug, Clone, Copy)]
struct RateWindow {
    started: Instant,
    admitted: u32,
}

impl RateWindow {
    fn new(now: Instant) -> Self {
        Self {
            started: now,
            admitted: 0,
        }
    }

    /// Admits one request or returns the `Retry-After` seconds: the window's remaining time
    /// rounded up, so a client that waits exactly that long is admitted.
    fn admit(&mut self, now: Instant, limit: u32) -> Result<(), u64> {
        if now.saturating_duration_since(self.started) >= RATE_LIMIT_WINDOW {
            *self = Self::new(now);
        }
        if self.admitted >= limit {
            let remaining = (self.started + RATE_LIMIT_WINDOW).saturating_duration_since(now);
            let secs = remaining.as_secs() + u64::from(remaining.subsec_nanos() > 0);
            return Err(secs.max(1));
        }
        self.admitted += 1;
        Ok(())
    }
}

struct Conversation {
    id: String,
    media_type: MediaType,
    start_time: DateTime<Utc>,
    end_time: Option<DateTime<Utc>>,
    address: Option<String>,
    participants: Vec<Participant>,
}

struct Participant {
    id: String,
    purpose: &'static str,
    participant_type: &'static str,
    name: Option<String>,
    address: Option<String>,
    ani: Option<String>,
    dnis: Option<String>,
    external_contact_id: Option<String>,
    start_time: DateTime<Utc>,
    end_time: Option<DateTime<Utc>>,
    media_id: String,
    attributes: BTreeMap<String, String>,
    patches: Vec<BTreeMap<String, String>>,
}

impl Shared {
    fn new(config: GenesysSimConfig) -> Self {
        Self {
            client_id: config.client_id,
            client_secret: config.client_secret,
            token_lifetime: config.token_lifetime,
            tokens: Mutex::new(HashMap::new()),
            conversations: Mutex::new(HashMap::new()),
            faults: Mutex::new(FaultSettings {
                latency: config.latency,
                error_rate: sanitize_rate(config.error_rate),
                rate_limit_per_minute: config.rate_limit_per_minute,
                scripted: Default::default(),
            }),
            counters: Counters::default(),
        }
    }

    fn create_conversation(&self, spec: NewConversation) -> CreatedConversation {
        let now = Utc::now();
        let media_type = spec.media_type;
        let customer = Participant {
            id: Uuid::new_v4().to_string(),
            purpose: "customer",
            // The participantType vocabulary is undocumented; these are the values seen in the
            // wild. Clients must identify the customer by `purpose`.
            participant_type: "External",
            name: None,
            address: spec.ani.clone(),
            ani: spec.ani.clone(),
            dnis: spec.dnis.clone(),
            external_contact_id: spec.external_contact_id,
            start_time: now,
            end_time: None,
            media_id: Uuid::new_v4().to_string(),
            attributes: spec.attributes,
            patches: Vec::new(),
        };
        let flow = Participant {
            id: Uuid::new_v4().to_string(),
            purpose: media_type.flow_purpose(),
            participant_type: "Internal",
            name: Some(media_type.flow_name().to_owned()),
            address: spec.dnis.clone(),
            ani: spec.ani,
            dnis: spec.dnis.clone(),
            external_contact_id: None,
            start_time: now,
            end_time: None,
            media_id: Uuid::new_v4().to_string(),
            attributes: BTreeMap::new(),
            patches: Vec::new(),
        };
        let created = CreatedConversation {
            conversation_id: Uuid::new_v4().to_string(),
            customer_participant_id: customer.id.clone(),
            ivr_participant_id: flow.id.clone(),
        };
        let conversation = Conversation {
            id: created.conversation_id.clone(),
            media_type,
            start_time: now,
            end_time: None,
            // "For phone calls this will be the DNIS for inbound calls".
            address: spec.dnis,
            participants: vec![customer, flow],
        };
        lock(&self.conversations).insert(conversation.id.clone(), conversation);
        created
    }

    fn end_conversation(&self, conversation_id: &str) -> bool {
        let mut conversations = lock(&self.conversations);
        let Some(conversation) = conversations.get_mut(conversation_id) else {
            return false;
        };
        let now = Utc::now();
        let end = *conversation.end_time.get_or_insert(now);
        for participant in &mut conversation.participants {
            participant.end_time.get_or_insert(end);
        }
        true
    }

    fn with_participant<R>(
        &self,
        conversation_id: &str,
        participant_id: &str,
        f: impl FnOnce(&mut Participant) -> R,
    ) -> Option<R> {
        let mut conversations = lock(&self.conversations);
        conversations
            .get_mut(conversation_id)?
            .participant_mut(participant_id)
            .map(f)
    }

    fn issue_token(&self) -> String {
        let access_token = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        let now = Instant::now();
        let mut tokens = lock(&self.tokens);
        // Long benchmark runs issue many short-lived tokens; forget the dead ones here rather
        // than on a timer.
        tokens.retain(|_, token| token.expires_at > now);
        tokens.insert(
            access_token.clone(),
            IssuedToken {
                expires_at: now + self.token_lifetime,
                window: RateWindow::new(now),
            },
        );
        bump(&self.counters.tokens_issued);
        access_token
    }

    fn check_client_credentials(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let credentials = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
            .and_then(|(_, encoded)| STANDARD.decode(encoded.trim()).ok())
            .and_then(|decoded| String::from_utf8(decoded).ok());
        let valid = credentials
            .as_deref()
            .and_then(|c| c.split_once(':'))
            .is_some_and(|(id, secret)| id == self.client_id && secret == self.client_secret);
        if valid {
            Ok(())
        } else {
            Err(ApiError::bad_credentials())
        }
    }

    /// The shared gate of every Platform API request (see the module docs for the order).
    async fn admit_api_call(&self, op: Op, headers: &HeaderMap) -> Result<(), ApiError> {
        bump(self.counters.calls(op));
        let (latency, error_rate) = {
            let faults = lock(&self.faults);
            (faults.latency, faults.error_rate)
        };
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        self.apply_scripted_fault(op).await?;
        if error_rate > 0.0 && rand::random::<f64>() < error_rate {
            bump(&self.counters.faults_injected);
            return Err(ApiError::for_status(StatusCode::SERVICE_UNAVAILABLE));
        }
        self.authorize(headers)
    }

    async fn apply_scripted_fault(&self, op: Op) -> Result<(), ApiError> {
        let Some(fault) = lock(&self.faults).scripted[op.index()].pop_front() else {
            return Ok(());
        };
        bump(&self.counters.faults_injected);
        let error = match fault {
            Fault::Delay(delay) => {
                tokio::time::sleep(delay).await;
                return Ok(());
            }
            Fault::Unauthorized => ApiError::bad_credentials(),
            Fault::TooManyRequests { retry_after_secs } => {
                ApiError::too_many_requests(retry_after_secs)
            }
            Fault::Status(status) => ApiError::for_status(
                StatusCode::from_u16(status)
                    .ok()
                    .filter(|s| s.is_client_error() || s.is_server_error())
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            ),
        };
        if error.status == StatusCode::TOO_MANY_REQUESTS {
            bump(&self.counters.rate_limited);
        }
        Err(error)
    }

    fn authorize(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(token) = bearer_token(headers) else {
            return Err(ApiError::authentication_required());
        };
        let limit = lock(&self.faults).rate_limit_per_minute;
        let now = Instant::now();
        let mut tokens = lock(&self.tokens);
        let Some(issued) = tokens.get_mut(token) else {
            return Err(ApiError::bad_credentials());
        };
        if issued.expires_at <= now {
            tokens.remove(token);
            return Err(ApiError::bad_credentials());
        }
        let Some(limit) = limit else {
            return Ok(());
        };
        issued.window.admit(now, limit).map_err(|retry_after| {
            bump(&self.counters.rate_limited);
            ApiError::too_many_requests(retry_after)
        })
    }
}

impl Conversation {
    fn participant_mut(&mut self, participant_id: &str) -> Option<&mut Participant> {
        self.participants
            .iter_mut()
            .find(|p| p.id == participant_id)
    }
}

// ---------------------------------------------------------------------------------------------
// Errors

/// A Genesys `ErrorBody` response; `contextId` and `ININ-Correlation-Id` are generated together
/// when it is rendered.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Vec<ErrorDetail>,
    retry_after: Option<u64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorDetail {
    error_code: &'static str,
    field_name: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody<'a> {
    message: &'a str,
    code: &'a str,
    status: u16,
    context_id: &'a str,
    details: &'a [ErrorDetail],
    errors: Vec<Value>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
            retry_after: None,
        }
    }

    fn authentication_required() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "authentication.required",
            "No authentication bearer token specified in authorization header.",
        )
    }

    /// Genesys does not document a distinct code for expired tokens; `bad.credentials` is the
    /// documented 401 for a token it does not accept.
    fn bad_credentials() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "bad.credentials",
            "Invalid login credentials.",
        )
    }

    /// The 429 normalized in 2021: fixed message and code, no details ([F429]).
    fn too_many_requests(retry_after_secs: u64) -> Self {
        Self {
            retry_after: Some(retry_after_secs),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too.many.requests.retry.after",
                format!(
                    "Rate limit exceeded the maximum. Retry the request in [{retry_after_secs}] seconds"
                ),
            )
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad.request", message)
    }

    fn not_found() -> Self {
        Self::for_status(StatusCode::NOT_FOUND)
    }

    /// The error Genesys documents for `status` on these endpoints, with its standard message.
    fn for_status(status: StatusCode) -> Self {
        let (code, message) = match status {
            StatusCode::BAD_REQUEST => (
                "bad.request",
                "The request could not be understood by the server due to malformed syntax.",
            ),
            StatusCode::UNAUTHORIZED => return Self::bad_credentials(),
            StatusCode::FORBIDDEN => (
                "missing.permissions",
                "You are not authorized to perform the requested action.",
            ),
            StatusCode::NOT_FOUND => ("not.found", "The requested resource was not found."),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => (
                "unsupported.media.type",
                "Unsupported Media Type - Unsupported or incorrect media type, such as an incorrect Content-Type value in the header.",
            ),
            StatusCode::TOO_MANY_REQUESTS => return Self::too_many_requests(1),
            StatusCode::SERVICE_UNAVAILABLE => (
                "service.unavailable",
                "Service Unavailable - The server is currently unavailable (because it is overloaded or down for maintenance).",
            ),
            StatusCode::GATEWAY_TIMEOUT => (
                "request.timeout",
                "The request timed out.",
            ),
            s if s.is_client_error() => (
                "bad.request",
                "The request could not be understood by the server due to malformed syntax.",
            ),
            _ => (
                "internal.server.error",
                "The server encountered an unexpected condition which prevented it from fulfilling the request.",
            ),
        };
        Self::new(status, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let context_id = Uuid::new_v4().to_string();
        let body = ErrorBody {
            message: &self.message,
            code: self.code,
            status: self.status.as_u16(),
            context_id: &context_id,
            details: &self.details,
            errors: Vec::new(),
        };
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&context_id) {
            headers.insert(CORRELATION_ID.clone(), value);
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Accepts `expected` with or without parameters such as `; charset=utf-8`.
fn require_content_type(headers: &HeaderMap, expected: &str) -> Result<(), ApiError> {
    let matches = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media_type| media_type.trim().eq_ignore_ascii_case(expected));
    if matches {
        Ok(())
    } else {
        Err(ApiError::for_status(StatusCode::UNSUPPORTED_MEDIA_TYPE))
    }
}

// ---------------------------------------------------------------------------------------------
// Platform API

fn app(shared: Arc<Shared>) -> Router {
    let genesys = Router::new()
        .route("/oauth/token", post(issue_token))
        .route(
            "/api/v2/conversations/{conversation_id}",
            get(get_conversation),
        )
        .route(
            "/api/v2/conversations/{conversation_id}/participants/{participant_id}/attributes",
            patch(patch_attributes),
        )
        .fallback(|| async { ApiError::not_found() })
        // Genesys puts a correlation id on every response, not just on errors.
        .layer(middleware::map_response(ensure_correlation_id));
    Router::new()
        .nest("/sim", admin_routes())
        .merge(genesys)
        .with_state(shared)
}

async fn ensure_correlation_id(mut response: Response) -> Response {
    if !response.headers().contains_key(&CORRELATION_ID) {
        if let Ok(value) = HeaderValue::from_str(&Uuid::new_v4().to_string()) {
            response.headers_mut().insert(CORRELATION_ID.clone(), value);
        }
    }
    response
}

#[derive(Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
}

async fn issue_token(
    State(sim): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<TokenResponse>, ApiError> {
    bump(sim.counters.calls(Op::Token));
    sim.apply_scripted_fault(Op::Token).await?;
    sim.check_client_credentials(&headers)?;
    require_content_type(&headers, FORM_CONTENT_TYPE)?;
    let grant_type = url::form_urlencoded::parse(&body)
        .find(|(key, _)| key == "grant_type")
        .map(|(_, value)| value);
    if grant_type.as_deref() != Some("client_credentials") {
        return Err(ApiError::bad_request(
            "Invalid grant_type; this client supports client_credentials.",
        ));
    }
    Ok(Json(TokenResponse {
        access_token: sim.issue_token(),
        token_type: "bearer",
        expires_in: sim.token_lifetime.as_secs(),
    }))
}

async fn get_conversation(
    State(sim): State<Arc<Shared>>,
    Path(conversation_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    sim.admit_api_call(Op::GetConversation, &headers).await?;
    let conversations = lock(&sim.conversations);
    let conversation = conversations
        .get(&conversation_id)
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(ConversationView::from(conversation)).into_response())
}

async fn patch_attributes(
    State(sim): State<Arc<Shared>>,
    Path((conversation_id, participant_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    sim.admit_api_call(Op::PatchAttributes, &headers).await?;
    require_content_type(&headers, JSON_CONTENT_TYPE)?;
    // The body is validated before the conversation is looked up, as a framework that
    // deserializes the request before calling the service would.
    let attributes = parse_attributes_body(&body)?;
    let mut conversations = lock(&sim.conversations);
    let participant = conversations
        .get_mut(&conversation_id)
        .filter(|conversation| conversation.end_time.is_none())
        .and_then(|conversation| conversation.participant_mut(&participant_id))
        .ok_or_else(ApiError::not_found)?;
    // Upsert: merge semantics are undocumented; this is the working assumption of the
    // reference (official samples send only the keys they set).
    participant.attributes.extend(attributes.clone());
    participant.patches.push(attributes);
    bump(&sim.counters.patches_accepted);
    Ok(StatusCode::ACCEPTED)
}

/// `ParticipantAttributes`: `{"attributes": {string: string}}`. All non-string values are
/// reported together so a client sees every offending key at once.
fn parse_attributes_body(body: &[u8]) -> Result<BTreeMap<String, String>, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| {
        ApiError::bad_request(
            "The request could not be understood by the server due to malformed syntax.",
        )
    })?;
    let Some(Value::Object(attributes)) = value.get("attributes") else {
        return Err(ApiError::bad_request(
            "The request body must be an object with an \"attributes\" map of strings.",
        ));
    };
    let mut accepted = BTreeMap::new();
    let mut invalid = Vec::new();
    for (key, value) in attributes {
        match value {
            Value::String(text) => {
                accepted.insert(key.clone(), text.clone());
            }
            _ => invalid.push(ErrorDetail {
                error_code: "invalid.value",
                field_name: format!("attributes.{key}"),
            }),
        }
    }
    if invalid.is_empty() {
        Ok(accepted)
    } else {
        Err(ApiError {
            details: invalid,
            ..ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid.value",
                "Attribute values must be strings.",
            )
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Wire views of a conversation

fn timestamp(time: DateTime<Utc>) -> String {
    // Genesys timestamps carry milliseconds: yyyy-MM-ddTHH:mm:ss.mmmZ.
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConversationView<'a> {
    id: &'a str,
    start_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    address: Option<&'a str>,
    participants: Vec<ParticipantView<'a>>,
    recording_state: &'static str,
    self_uri: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ParticipantView<'a> {
    id: &'a str,
    start_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_time: Option<String>,
    connected_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    external_contact_id: Option<&'a str>,
    purpose: &'static str,
    participant_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    address: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ani: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dnis: Option<&'a str>,
    wrapup_required: bool,
    attributes: &'a BTreeMap<String, String>,
    // Like the real API, every media array is present and only the conversation's is filled.
    calls: Vec<MediaView<'a>>,
    callbacks: Vec<MediaView<'a>>,
    chats: Vec<MediaView<'a>>,
    cobrowsesessions: Vec<MediaView<'a>>,
    emails: Vec<MediaView<'a>>,
    messages: Vec<MediaView<'a>>,
    screenshares: Vec<MediaView<'a>>,
    social_expressions: Vec<MediaView<'a>>,
    videos: Vec<MediaView<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MediaView<'a> {
    id: &'a str,
    state: &'static str,
    direction: &'static str,
    connected_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    disconnected_time: Option<String>,
    provider: &'static str,
}

impl<'a> From<&'a Conversation> for ConversationView<'a> {
    fn from(conversation: &'a Conversation) -> Self {
        Self {
            id: &conversation.id,
            start_time: timestamp(conversation.start_time),
            end_time: conversation.end_time.map(timestamp),
            address: conversation.address.as_deref(),
            participants: conversation
                .participants
                .iter()
                .map(|p| ParticipantView::new(p, conversation.media_type))
                .collect(),
            recording_state: "NONE",
            self_uri: format!("/api/v2/conversations/{}", conversation.id),
        }
    }
}

impl<'a> ParticipantView<'a> {
    fn new(participant: &'a Participant, media_type: MediaType) -> Self {
        let media = vec![MediaView {
            id: &participant.media_id,
            state: if participant.end_time.is_some() {
                "disconnected"
            } else {
                "connected"
            },
            direction: "inbound",
            connected_time: timestamp(participant.start_time),
            disconnected_time: participant.end_time.map(timestamp),
            provider: media_type.provider(),
        }];
        let mut view = Self {
            id: &participant.id,
            start_time: timestamp(participant.start_time),
            end_time: participant.end_time.map(timestamp),
            connected_time: timestamp(participant.start_time),
            name: participant.name.as_deref(),
            external_contact_id: participant.external_contact_id.as_deref(),
            purpose: participant.purpose,
            participant_type: participant.participant_type,
            address: participant.address.as_deref(),
            ani: participant.ani.as_deref(),
            dnis: participant.dnis.as_deref(),
            wrapup_required: false,
            attributes: &participant.attributes,
            calls: Vec::new(),
            callbacks: Vec::new(),
            chats: Vec::new(),
            cobrowsesessions: Vec::new(),
            emails: Vec::new(),
            messages: Vec::new(),
            screenshares: Vec::new(),
            social_expressions: Vec::new(),
            videos: Vec::new(),
        };
        match media_type {
            MediaType::Voice => view.calls = media,
            MediaType::Chat => view.chats = media,
            MediaType::Message => view.messages = media,
            MediaType::Callback => view.callbacks = media,
            MediaType::Email => view.emails = media,
        }
        view
    }
}

// ---------------------------------------------------------------------------------------------
// Admin API (`/sim/...`, no auth, plain `{"error": ...}` errors: it is not Genesys)

fn admin_routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/conversations", post(admin_create_conversation))
        .route(
            "/conversations/{conversation_id}/end",
            post(admin_end_conversation),
        )
        .route(
            "/conversations/{conversation_id}/participants/{participant_id}/attributes",
            get(admin_get_attributes).patch(admin_set_attributes),
        )
        .route(
            "/conversations/{conversation_id}/participants/{participant_id}/patches",
            get(admin_get_patches),
        )
        .route("/stats", get(admin_stats))
        .route("/faults", post(admin_push_fault))
        .route("/config", get(admin_get_config).patch(admin_patch_config))
        .route("/tokens/revoke", post(admin_revoke_tokens))
}

fn admin_error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

fn admin_not_found() -> Response {
    admin_error(StatusCode::NOT_FOUND, "not found")
}

/// An empty body means "all defaults", which keeps `curl -X POST .../sim/conversations` short.
fn parse_admin_body<T: Default + DeserializeOwned>(body: &[u8]) -> serde_json::Result<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
}

fn admin_bad_request(error: serde_json::Error) -> Response {
    admin_error(StatusCode::BAD_REQUEST, error.to_string())
}

async fn admin_create_conversation(State(sim): State<Arc<Shared>>, body: Bytes) -> Response {
    match parse_admin_body::<NewConversation>(&body) {
        Ok(spec) => (StatusCode::CREATED, Json(sim.create_conversation(spec))).into_response(),
        Err(error) => admin_bad_request(error),
    }
}

async fn admin_end_conversation(
    State(sim): State<Arc<Shared>>,
    Path(conversation_id): Path<String>,
) -> Response {
    if sim.end_conversation(&conversation_id) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        admin_not_found()
    }
}

async fn admin_get_attributes(
    State(sim): State<Arc<Shared>>,
    Path((conversation_id, participant_id)): Path<(String, String)>,
) -> Response {
    sim.with_participant(&conversation_id, &participant_id, |p| {
        Json(&p.attributes).into_response()
    })
    .unwrap_or_else(admin_not_found)
}

async fn admin_set_attributes(
    State(sim): State<Arc<Shared>>,
    Path((conversation_id, participant_id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let attributes = match parse_admin_body::<BTreeMap<String, String>>(&body) {
        Ok(attributes) => attributes,
        Err(error) => return admin_bad_request(error),
    };
    sim.with_participant(&conversation_id, &participant_id, |p| {
        p.attributes.extend(attributes);
        Json(&p.attributes).into_response()
    })
    .unwrap_or_else(admin_not_found)
}

async fn admin_get_patches(
    State(sim): State<Arc<Shared>>,
    Path((conversation_id, participant_id)): Path<(String, String)>,
) -> Response {
    sim.with_participant(&conversation_id, &participant_id, |p| {
        Json(&p.patches).into_response()
    })
    .unwrap_or_else(admin_not_found)
}

async fn admin_stats(State(sim): State<Arc<Shared>>) -> Json<SimStats> {
    Json(sim.counters.snapshot())
}

#[derive(Deserialize)]
struct PushFault {
    op: Op,
    fault: Fault,
}

async fn admin_push_fault(State(sim): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<PushFault>(&body) {
        Ok(PushFault { op, fault }) => {
            lock(&sim.faults).scripted[op.index()].push_back(fault);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(error) => admin_bad_request(error),
    }
}

/// Runtime-adjustable settings; on PATCH every field is optional and `rateLimitPerMinute:
/// null` removes the limit (absent leaves it alone).
#[derive(Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ConfigPatch {
    latency_ms: Option<u64>,
    error_rate: Option<f64>,
    #[serde(deserialize_with = "present_or_null")]
    rate_limit_per_minute: Option<Option<u32>>,
}

fn present_or_null<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<u32>>, D::Error> {
    Option::<u32>::deserialize(d).map(Some)
}

fn config_view(faults: &FaultSettings) -> Value {
    json!({
        "latencyMs": u64::try_from(faults.latency.as_millis()).unwrap_or(u64::MAX),
        "errorRate": faults.error_rate,
        "rateLimitPerMinute": faults.rate_limit_per_minute,
        "scriptedFaults": {
            "token": faults.scripted[Op::Token.index()].len(),
            "getConversation": faults.scripted[Op::GetConversation.index()].len(),
            "patchAttributes": faults.scripted[Op::PatchAttributes.index()].len(),
        },
    })
}

async fn admin_get_config(State(sim): State<Arc<Shared>>) -> Json<Value> {
    Json(config_view(&lock(&sim.faults)))
}

async fn admin_patch_config(State(sim): State<Arc<Shared>>, body: Bytes) -> Response {
    let patch = match parse_admin_body::<ConfigPatch>(&body) {
        Ok(patch) => patch,
        Err(error) => return admin_bad_request(error),
    };
    let mut faults = lock(&sim.faults);
    if let Some(ms) = patch.latency_ms {
        faults.latency = Duration::from_millis(ms);
    }
    if let Some(rate) = patch.error_rate {
        faults.error_rate = sanitize_rate(rate);
    }
    if let Some(limit) = patch.rate_limit_per_minute {
        faults.rate_limit_per_minute = limit;
    }
    Json(config_view(&faults)).into_response()
}

async fn admin_revoke_tokens(State(sim): State<Arc<Shared>>) -> StatusCode {
    lock(&sim.tokens).clear();
    StatusCode::NO_CONTENT
}

/// A `customer.start` event for `call`, from a caller at `ani`, as Genesys delivers it through
/// AWS EventBridge (the envelope of the official sample), with fresh event and correlation ids.
/// What the demo and the benchmark send.
pub fn eventbridge_customer_start(call: &CreatedConversation, ani: &str) -> Value {
    json!({
        "version": "0",
        "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": "v2.detail.events.conversation.{id}.customer.start",
        "source": "aws.partner/genesys.com/cloud/00000000-0000-0000-0000-000000000000/attrsync-sim",
        "account": "123456789012",
        "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "topicName": format!("v2.detail.events.conversation.{}.customer.start", call.conversation_id),
            "version": "2",
            "eventBody": {
                "eventTime": chrono::Utc::now().timestamp_millis(),
                "conversationId": call.conversation_id,
                "participantId": call.customer_participant_id,
                "sessionId": uuid::Uuid::new_v4().to_string(),
                "mediaType": "VOICE",
                "provider": "Edge",
                "direction": "INBOUND",
                "ani": ani,
                "dnis": "tel:+18005550100"
            },
            "metadata": {"CorrelationId": uuid::Uuid::new_v4().to_string()},
            "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    async fn start(config: GenesysSimConfig) -> std::io::Result<GenesysSim> {
        GenesysSim::start(config, TcpListener::bind("127.0.0.1:0").await?).await
    }

    fn client() -> reqwest::Client {
        // Loopback must never be routed through a proxy from the environment.
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap_or_default()
    }

    fn token_request(sim: &GenesysSim, id: &str, secret: &str) -> reqwest::RequestBuilder {
        client()
            .post(format!("{}/oauth/token", sim.base_url()))
            .basic_auth(id, Some(secret))
            .header(header::CONTENT_TYPE, FORM_CONTENT_TYPE)
            .body("grant_type=client_credentials")
    }

    async fn fetch_token(sim: &GenesysSim) -> Result<String, Box<dyn std::error::Error>> {
        let body: Value = token_request(sim, "attrsync-sim", "sim-secret")
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(body["access_token"].as_str().unwrap_or_default().to_owned())
    }

    fn conversation_url(sim: &GenesysSim, conversation_id: &str) -> String {
        format!("{}/api/v2/conversations/{conversation_id}", sim.base_url())
    }

    fn attributes_url(sim: &GenesysSim, created: &CreatedConversation) -> String {
        format!(
            "{}/participants/{}/attributes",
            conversation_url(sim, &created.conversation_id),
            created.customer_participant_id
        )
    }

    async fn patch_json(
        sim: &GenesysSim,
        token: &str,
        created: &CreatedConversation,
        body: Value,
    ) -> reqwest::Result<reqwest::Response> {
        client()
            .patch(attributes_url(sim, created))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
    }

    fn voice_call() -> NewConversation {
        NewConversation {
            ani: Some("tel:+13175550125".to_owned()),
            dnis: Some("tel:+18005550100".to_owned()),
            ..NewConversation::default()
        }
    }

    /// Status, error body, and the correlation header that must echo `contextId`.
    async fn error_of(
        response: reqwest::Response,
    ) -> Result<(u16, Value), Box<dyn std::error::Error>> {
        let status = response.status().as_u16();
        let correlation = response
            .headers()
            .get("ININ-Correlation-Id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body: Value = response.json().await?;
        assert_eq!(body["contextId"].as_str(), correlation.as_deref());
        assert_eq!(body["status"], json!(status));
        assert_eq!(body["errors"], json!([]));
        Ok((status, body))
    }

    #[tokio::test]
    async fn valid_client_credentials_get_a_bearer_token_with_the_configured_lifetime() -> TestResult
    {
        let sim = start(GenesysSimConfig::default()).await?;
        let response = token_request(&sim, "attrsync-sim", "sim-secret")
            .send()
            .await?;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await?;
        assert_eq!(body["token_type"], "bearer");
        assert_eq!(body["expires_in"], 86_400);
        assert!(body["access_token"].as_str().is_some_and(|t| t.len() >= 32));
        assert_eq!(sim.stats().tokens_issued, 1);
        Ok(())
    }

    #[tokio::test]
    async fn wrong_or_missing_client_credentials_are_rejected_as_bad_credentials() -> TestResult {
        let sim = start(GenesysSimConfig::default()).await?;
        let (status, body) =
            error_of(token_request(&sim, "attrsync-sim", "wrong").send().await?).await?;
        assert_eq!(status, 401);
        assert_eq!(body["code"], "bad.credentials");
        assert_eq!(body["message"], "Invalid login credentials.");
        assert_eq!(body["details"], json!([]));

        let unauthenticated = client()
            .post(format!("{}/oauth/token", sim.base_url()))
            .header(header::CONTENT_TYPE, FORM_CONTENT_TYPE)
            .body("grant_type=client_credentials")
            .send()
            .await?;
        assert_eq!(
            error_of(unauthenticated).await?.1["code"],
            "bad.credentials"
        );
        assert_eq!(sim.stats().token_requests, 2);
        assert_eq!(sim.stats().tokens_issued, 0);
        Ok(())
    }

    #[tokio::test]
    async fn a_grant_type_other_than_client_credentials_is_a_bad_request() -> TestResult {
        let sim = start(GenesysSimConfig::default()).await?;
        let response = token_request(&sim, "attrsync-sim", "sim-secret")
            .body("grant_type=password")
            .send()
            .await?;
        let (status, body) = error_of(response).await?;
        assert_eq!((status, body["code"].as_str()), (400, Some("bad.request")));
        Ok(())
    }

    #[tokio::test]
    async fn an_api_call_without_a_bearer_token_requires_authentication() -> TestResult {
        let sim = start(GenesysSimConfig::default()).await?;
        let created = sim.create_conversation(voice_call());
        let response = client()
            .get(conversation_url(&sim, &created.conversation_id))
            .send()
            .await?;
        let (status, body) = error_of(response).await?;
        assert_eq!(status, 401);
        assert_eq!(body["code"], "authentication.required");
        assert_eq!(
            body["message"],
            "No authentication bearer token specified in authorization header."
        );
        Ok(())
    }

    #[tokio::test]
    async fn unknown_and_revoked_tokens_are_rejected_as_bad_credentials() -> TestResult {
        let sim = start(GenesysSimConfig::default()).await?;
        let created = sim.create_conversation(voice_call());
        let url = conversation_url(&sim, &created.conversation_id);

        let unknown = client().get(&url).bearer_auth("made-up").send().await?;
        assert_eq!(error_of(unknown).await?.1["code"], "bad.credentials");

        let token = fetch_token(&sim).await?;
        let lower_case_scheme = client()
            .get(&url)
            .header(header::AUTHORIZATION, format!("bearer {token}"))
            .send()
            .await?;
        assert_eq!(lower_case_scheme.status(), 200);

        sim.revoke_tokens();
        let revoked = client().get(&url).bearer_auth(&token).send().await?;
        assert_eq!(error_of(revoked).await?.1["code"], "bad.credentials");
        Ok(())
    }

    #[tokio::test]
    async fn a_voice_conversation_has_a_customer_and_an_ivr_participant_with_calls() -> TestResult {
        let sim = start(GenesysSimConfig::default()).await?;
        let token = fetch_token(&sim).await?;
        let created = sim.create_conversation(NewConversation {
            external_contact_id: Some("ext-42".to_owned()),
            attributes: BTreeMap::from([("flow.lang".to_owned(), "en-US".to_owned())]),
            ..voice_call()
        });
        let response = client()
            .get(conversation_url(&sim, &created.conversation_id))
            .bearer_auth(&token)
            .send()
            .await?;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await?;

        assert_eq!(body["id"].as_str(), Some(created.conversation_id.as_str()));
        assert!(body.get("endTime").is_none());
        assert_eq!(body["address"], "tel:+18005550100");
        assert_eq!(
            body["selfUri"].as_str(),
            Some(format!("/api/v2/conversations/{}", created.conversation_id).as_str())
        );
        let start_time = body["startTime"].as_str().unwrap_or_default();
        assert!(
            DateTime::parse_from_rfc3339(start_time).is_ok(),
            "{start_time}"
        );

        let customer = &body["participants"][0];
        assert_eq!(
            customer["id"].as_str(),
            Some(created.customer_participant_id.as_str())
        );
        assert_eq!(customer["purpose"], "customer");
        assert_eq!(customer["ani"], "tel:+13175550125");
        assert_eq!(customer["address"], "tel:+13175550125");
        assert_eq!(customer["externalContactId"], "ext-42");
        assert_eq!(customer["attributes"], json!({"flow.lang": "en-US"}));
        assert_eq!(customer["calls"][0]["state"], "connected");
        assert_eq!(customer["calls"][0]["direction"], "inbound");
        assert_eq!(customer["chats"], json!([]));

        let ivr = &body["participants"][1];
        assert_eq!(
            ivr["id"].as_str(),
            Some(created.ivr_participant_id.as_str())
        );
        assert_eq!(ivr["purpose"], "ivr");
        Ok(())
    }

    #[tokio::test]
    async fn a_chat_conversation_carries_its_media_in_chats() -> TestResult {
        let sim = start(GenesysSimConfig::default()).await?;
        let token = fetch_token(&sim).await?;
        let created = sim.create_conversation(NewConversation {
            media_type: MediaType::Chat,
            ..NewConversation::default()
        });
        let body: Value = client()
            .get(conversation_url(&sim, &created.conversation_id))
            .bearer_auth(&token)
            .send()
            .await?
            .json()
            .await?;
        let customer = &body["participants"][0];
        assert_eq!(customer["calls"], json!([]));
        assert_eq!(customer["chats"][0]["provider"], "PureCloud Webchat v2");
        assert!(customer.get("ani").is_none());
        Ok(())
    }

    #[tokio::test]
    async fn an_unknown_conversation_is_not_found() -> TestResult {
        let sim = start(GenesysSimConfig::default()).await?;
        let token = fetch_token(&sim).await?;
        let response = client()
            .get(conversation_url(&sim, &Uuid::new_v4().to_string()))
            .bearer_auth(&token)
            .send()
            .await?;
        let (status, body) = error_of(response).await?;
        assert_eq!((status, body["code"].as_str()), (404, Some("not.found")));
        Ok(())
    }

    #[tokio::test]
    async fn a_patch_upserts_string_attributes_and_answers_202_with_an_empty_body() -> TestResult {
        let sim = start(GenesysSimConfig::default()).await?;
        let token = fetch_token(&sim).await?;
        let created = sim.create_conversation(voice_call());
        let customer = &created.customer_participant_id;
        sim.set_attributes(
            &created.conversation_id,
            customer,
            BTreeMap::from([("flow.lang".to_owned(), "en-US".to_owned())]),
        );

        let first = json!({"attributes": {"crm.id": "C-1001", "crm.tier": "silver"}});
        let response = patch_json(&sim, &token, &created, first).await?;
        assert_eq!(response.status(), 202);
        assert!(response.bytes().await?.is_empty());
        let second = json!({"attributes": {"crm.tier": "gold"}});
        assert_eq!(
            patch_json(&sim, &token, &created, second).await?.status(),
            202
        );

        let stored = sim.attributes(&created.conversation_id, customer);
        let expected = BTreeMap::from([
            ("crm.id".to_owned(), "C-1001".to_owned()),
            ("crm.tier".to_owned(), "gold".to_owned()),
            ("flow.lang".to_owned(), "en-US".to_owned()),
        ]);
        assert_eq!(stored, Some(expected));
        let patches = sim.patches(&created.conversation_id, customer);
        assert_eq!(patches.len(), 2);
        assert_eq!(
            patches[1],
            BTreeMap::from([("crm.tier".to_owned(), "gold".to_owned())])
        );
        assert_eq!(sim.stats().patches_accepted, 2);
        Ok(())
    }

    #[tokio::test]
    async fn a_non_string_value_is_an_invalid_value_and_nothing_is_stored() -> TestResult {
        let sim = start(GenesysSimConfig::default()).await?;
        let token = fetch_token(&sim).await?;
        let created = sim.create_conversation(voice_call());
        let body = json!({"attributes": {"crm.id": "C-1001", "crm.score": 7}});
        let (status, error) = error_of(patch_json(&sim, &token, &created, body).await?).await?;
        assert_eq!(status, 400);
        assert_eq!(error["code"], "invalid.value");
        assert_eq!(
            error["details"],
            json!([{"errorCode": "invalid.value", "fieldName": "attributes.crm.score"}])
        );
        let stored = sim.attributes(&created.conversation_id, &created.customer_participant_id);
        assert_eq!(stored, Some(BTreeMap::new()));
        assert!(sim
            .patches(&created.conversation_id, &created.customer_participant_id)
            .is_empty());
        Ok(())
    }

    #[tokio::test]
    async fn malformed_json_or_a_missing_attributes_map_is_a_bad_request() -> TestResult {
        let sim = start(GenesysSimConfig::default()).await?;
        let token = fetch_token(&sim).await?;
        let created = sim.create_conversation(voice_call());
        for body in [
            "{\"attributes\": ",
            "{\"crm.id\": \"C-1\"}",
            "{\"attributes\": [\"a\"]}",
        ] {
            let response = client()
                .patch(attributes_url(&sim, &created))
                .bearer_auth(&token)
                .header(header::CONTENT_TYPE, JSON_CONTENT_TYPE)
                .body(body)
                .send()
                .await?;
            let (status, error) = error_of(response).await?;
            assert_eq!(
                (status, error["code"].as_str()),
                (400, Some("bad.request")),
                "{body}"
            );
        }
        Ok(())
    }

    #[tokio::test]
    async fn a_patch_without_a_json_content_type_is_an_unsupported_media_type() -> TestResult {
        let sim = start(GenesysSimConfig::default()).await?;
        let token = fetch_token(&sim).await?;
        let created = sim.create_conversation(voice_call());
        let response = client()
            .patch(attributes_url(&sim, &created))
            .bearer_auth(&token)
            .header(header::CONTENT_TYPE, "text/plain")
            .body(r#"{"attributes": {"crm.id": "C-1"}}"#)
            .send()
            .await?;
        let (status, error) = error_of(response).await?;
        assert_eq!(
            (status, error["code"].as_str()),
            (415, Some("unsupported.media.type"))
        );
        Ok(())
    }

    #[tokio::test]
    async fn an_ended_conversation_is_still_readable_but_rejects_patches_as_not_found() -> TestResult
    {
        let sim = start(GenesysSimConfig::default()).await?;
        let token = fetch_token(&sim).await?;
        let created = sim.create_conversation(voice_call());
        assert!(sim.end_conversation(&created.conversation_id));

        let body = json!({"attributes": {"crm.id": "C-1001"}});
        let (status, error) = error_of(patch_json(&sim, &token, &created, body).await?).await?;
        assert_eq!((status, error["code"].as_str()), (404, Some("not.found")));

        let conversation: Value = client()
            .get(conversation_url(&sim, &created.conversation_id))
            .bearer_auth(&token)
            .send()
            .await?
            .json()
            .await?;
        assert!(conversation["endTime"].is_string());
        assert!(conversation["participants"][0]["endTime"].is_string());
        assert_eq!(
            conversation["participants"][0]["calls"][0]["state"],
            "disconnected"
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_patch_for_an_unknown_participant_is_not_found() -> TestResult {
        let sim = start(GenesysSimConfig::default()).await?;
        let token = fetch_token(&sim).await?;
        let created = CreatedConversation {
            customer_participant_id: Uuid::new_v4().to_string(),
            ..sim.create_conversation(voice_call())
        };
        let body = json!({"attributes": {"crm.id": "C-1001"}});
        let (status, _) = error_of(patch_json(&sim, &token, &created, body).await?).await?;
        assert_eq!(status, 404);
        Ok(())
    }

    #[tokio::test]
    async fn exceeding_the_rate_limit_returns_the_normalized_429_with_retry_after() -> TestResult {
        let sim = start(GenesysSimConfig {
            rate_limit_per_minute: Some(2),
            ..GenesysSimConfig::default()
        })
        .await?;
        let token = fetch_token(&sim).await?;
        let created = sim.create_conversation(voice_call());
        let url = conversation_url(&sim, &created.conversation_id);
        for _ in 0..2 {
            assert_eq!(
                client()
                    .get(&url)
                    .bearer_auth(&token)
                    .send()
                    .await?
                    .status(),
                200
            );
        }

        let response = client().get(&url).bearer_auth(&token).send().await?;
        let retry_after: u64 = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or_default();
        assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
        let (status, body) = error_of(response).await?;
        assert_eq!(status, 429);
        let context_id = body["contextId"].clone();
        assert_eq!(
            body,
            json!({
                "message": format!("Rate limit exceeded the maximum. Retry the request in [{retry_after}] seconds"),
                "code": "too.many.requests.retry.after",
                "status": 429,
                "contextId": context_id,
                "details": [],
                "errors": [],
            })
        );
        assert_eq!(sim.stats().rate_limited, 1);

        // The limit is per token: a fresh token has its own window.
        let other = fetch_token(&sim).await?;
        assert_eq!(
            client()
                .get(&url)
                .bearer_auth(&other)
                .send()
                .await?
                .status(),
            200
        );
        Ok(())
    }

    #[tokio::test]
    async fn scripted_faults_are_consumed_in_order_before_normal_handling() -> TestResult {
        let sim = start(GenesysSimConfig::default()).await?;
        let token = fetch_token(&sim).await?;
        let created = sim.create_conversation(voice_call());
        let url = conversation_url(&sim, &created.conversation_id);
        sim.push_fault(Op::GetConversation, Fault::Unauthorized);
        sim.push_fault(
            Op::GetConversation,
            Fault::TooManyRequests {
                retry_after_secs: 7,
            },
        );
        sim.push_fault(Op::GetConversation, Fault::Status(503));
        sim.push_fault(Op::GetConversation, Fault::Status(504));
        sim.push_fault(Op::GetConversation, Fault::Delay(Duration::from_millis(1)));

        let mut outcomes = Vec::new();
        for _ in 0..6 {
            let response = client().get(&url).bearer_auth(&token).send().await?;
            let status = response.status().as_u16();
            let retry_after = response.headers().get(header::RETRY_AFTER).cloned();
            let code = if status == 200 {
                String::new()
            } else {
                error_of(response).await?.1["code"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            };
            outcomes.push((status, code, retry_after));
        }
        let expected = [
            (401, "bad.credentials", None),
            (
                429,
                "too.many.requests.retry.after",
                Some(HeaderValue::from(7u64)),
            ),
            (503, "service.unavailable", None),
            (504, "request.timeout", None),
            (200, "", None),
            (200, "", None),
        ];
        let expected: Vec<_> = expected
            .into_iter()
            .map(|(status, code, retry_after)| (status, code.to_owned(), retry_after))
            .collect();
        assert_eq!(outcomes, expected);

        let stats = sim.stats();
        assert_eq!(stats.get_conversation, 6);
        assert_eq!(stats.faults_injected, 5);
        assert_eq!(stats.rate_limited, 1);
        Ok(())
    }

    #[tokio::test]
    async fn a_scripted_fault_on_the_token_endpoint_fails_only_the_next_token_request() -> TestResult
    {
        let sim = start(GenesysSimConfig::default()).await?;
        sim.push_fault(Op::Token, Fault::Status(500));
        let (status, body) = error_of(
            token_request(&sim, "attrsync-sim", "sim-secret")
                .send()
                .await?,
        )
        .await?;
        assert_eq!(
            (status, body["code"].as_str()),
            (500, Some("internal.server.error"))
        );
        assert!(!fetch_token(&sim).await?.is_empty());
        assert_eq!(sim.stats().tokens_issued, 1);
        Ok(())
    }

    #[tokio::test]
    async fn an_error_rate_of_one_fails_every_api_call_with_service_unavailable() -> TestResult {
        let sim = start(GenesysSimConfig::default()).await?;
        let token = fetch_token(&sim).await?;
        let created = sim.create_conversation(voice_call());
        sim.set_error_rate(1.0);
        let response = client()
            .get(conversation_url(&sim, &created.conversation_id))
            .bearer_auth(&token)
            .send()
            .await?;
        let (status, body) = error_of(response).await?;
        assert_eq!(
            (status, body["code"].as_str()),
            (503, Some("service.unavailable"))
        );
        sim.set_error_rate(0.0);
        let response = client()
            .get(conversation_url(&sim, &created.conversation_id))
            .bearer_auth(&token)
            .send()
            .await?;
        assert_eq!(response.status(), 200);
        Ok(())
    }

    #[tokio::test]
    async fn the_admin_api_creates_ends_and_reports_like_the_handle() -> TestResult {
        let sim = start(GenesysSimConfig::default()).await?;
        let admin = format!("{}/sim", sim.base_url());
        let response = client()
            .post(format!("{admin}/conversations"))
            .json(&json!({"mediaType": "message", "ani": "+13175550125", "attributes": {"a": "b"}}))
            .send()
            .await?;
        assert_eq!(response.status(), 201);
        let created: CreatedConversation = response.json().await?;
        let attributes: Value = client()
            .get(format!(
                "{admin}/conversations/{}/participants/{}/attributes",
                created.conversation_id, created.customer_participant_id
            ))
            .send()
            .await?
            .json()
            .await?;
        assert_eq!(attributes, json!({"a": "b"}));

        let fault = json!({"op": "patchAttributes", "fault": {"kind": "tooManyRequests", "retryAfterSecs": 3}});
        let pushed = client()
            .post(format!("{admin}/faults"))
            .json(&fault)
            .send()
            .await?;
        assert_eq!(pushed.status(), 204);
        let config: Value = client()
            .patch(format!("{admin}/config"))
            .json(&json!({"rateLimitPerMinute": 300, "latencyMs": 0}))
            .send()
            .await?
            .json()
            .await?;
        assert_eq!(config["rateLimitPerMinute"], 300);
        assert_eq!(config["scriptedFaults"]["patchAttributes"], 1);

        let ended = client()
            .post(format!(
                "{admin}/conversations/{}/end",
                created.conversation_id
            ))
            .send()
            .await?;
        assert_eq!(ended.status(), 204);
        let missing = client()
            .post(format!("{admin}/conversations/nope/end"))
            .send()
            .await?;
        assert_eq!(missing.status(), 404);

        fetch_token(&sim).await?;
        let stats: SimStats = client()
            .get(format!("{admin}/stats"))
            .send()
            .await?
            .json()
            .await?;
        assert_eq!(stats, sim.stats());
        assert_eq!(stats.tokens_issued, 1);
        Ok(())
    }

    #[test]
    fn faults_round_trip_through_their_admin_json_form() -> Result<(), serde_json::Error> {
        let faults = [
            Fault::Unauthorized,
            Fault::TooManyRequests {
                retry_after_secs: 3,
            },
            Fault::Status(504),
            Fault::Delay(Duration::from_millis(250)),
        ];
        let wire = serde_json::to_value(&faults)?;
        assert_eq!(
            wire,
            json!([
                {"kind": "unauthorized"},
                {"kind": "tooManyRequests", "retryAfterSecs": 3},
                {"kind": "status", "status": 504},
                {"kind": "delay", "millis": 250},
            ])
        );
        assert_eq!(serde_json::from_value::<Vec<Fault>>(wire)?, faults);
        Ok(())
    }

    #[test]
    fn retry_after_is_the_rest_of_the_window_rounded_up_and_at_least_one_second() {
        let start = Instant::now();
        let mut window = RateWindow::new(start);
        assert_eq!(window.admit(start, 1), Ok(()));
        assert_eq!(window.admit(start, 1), Err(60));
        assert_eq!(
            window.admit(start + Duration::from_millis(20_500), 1),
            Err(40)
        );
        assert_eq!(
            window.admit(start + Duration::from_millis(59_999), 1),
            Err(1)
        );
        assert_eq!(window.admit(start + RATE_LIMIT_WINDOW, 1), Ok(()));
    }

    /// Driven through the router without sockets: with paused time, the runtime would
    /// otherwise auto-advance the clock while a real socket is waiting for data.
    async fn call(
        app: &Router,
        request: Request<Body>,
    ) -> Result<Response, Box<dyn std::error::Error>> {
        Ok(app.clone().oneshot(request).await?)
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_expires_after_its_lifetime() -> TestResult {
        let shared = Arc::new(Shared::new(GenesysSimConfig {
            token_lifetime: Duration::from_secs(300),
            ..GenesysSimConfig::default()
        }));
        let app = app(Arc::clone(&shared));
        let created = shared.create_conversation(voice_call());

        let credentials = STANDARD.encode("attrsync-sim:sim-secret");
        let issued = call(
            &app,
            Request::post("/oauth/token")
                .header(header::AUTHORIZATION, format!("Basic {credentials}"))
                .header(header::CONTENT_TYPE, FORM_CONTENT_TYPE)
                .body(Body::from("grant_type=client_credentials"))?,
        )
        .await?;
        let body: Value =
            serde_json::from_slice(&axum::body::to_bytes(issued.into_body(), 1 << 16).await?)?;
        assert_eq!(body["expires_in"], 300);
        let token = body["access_token"].as_str().unwrap_or_default().to_owned();

        let get = || {
            Request::get(format!("/api/v2/conversations/{}", created.conversation_id))
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::empty())
        };
        tokio::time::advance(Duration::from_secs(299)).await;
        assert_eq!(call(&app, get()?).await?.status(), StatusCode::OK);

        tokio::time::advance(Duration::from_secs(1)).await;
        let expired = call(&app, get()?).await?;
        assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
        let body: Value =
            serde_json::from_slice(&axum::body::to_bytes(expired.into_body(), 1 << 16).await?)?;
        assert_eq!(body["code"], "bad.credentials");
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_limited_token_is_admitted_again_once_the_window_has_passed() -> TestResult {
        let shared = Arc::new(Shared::new(GenesysSimConfig {
            rate_limit_per_minute: Some(1),
            ..GenesysSimConfig::default()
        }));
        let app = app(Arc::clone(&shared));
        let created = shared.create_conversation(voice_call());
        let token = shared.issue_token();
        let get = || {
            Request::get(format!("/api/v2/conversations/{}", created.conversation_id))
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::empty())
        };
        assert_eq!(call(&app, get()?).await?.status(), StatusCode::OK);
        tokio::time::advance(Duration::from_secs(15)).await;
        let limited = call(&app, get()?).await?;
        assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            limited.headers().get(header::RETRY_AFTER),
            Some(&HeaderValue::from(45u64))
        );

        tokio::time::advance(Duration::from_secs(45)).await;
        assert_eq!(call(&app, get()?).await?.status(), StatusCode::OK);
        Ok(())
    }
}
