//! Genesys Cloud simulator: the login host's client-credentials token endpoint and the Platform
//! API operations attrsync relies on (`GET /api/v2/conversations/{id}`,
//! `PATCH /api/v2/conversations/{id}/participants/{pid}/attributes` and `GET /api/v2/ipranges`),
//! with Genesys' `ErrorBody`
//! errors, per-token rate limiting, token expiry/revocation and fault injection, plus the
//! `/sim/...` admin API and the [`GenesysSim`] handle that drive it.
//!
//! Files: this one holds the configuration, the public types and the [`GenesysSim`] handle;
//! `state`, `errors` (Genesys' error bodies), `platform` (login host and Platform API), `views`
//! (the conversation as Genesys serialises it), `admin` (`/sim/...`), `events` (event builders),
//! `ipranges` (the published address ranges, switchable to fail or change), `unsettled` (switches
//! for what no public source settles: a PATCH after the end, the token error body, `{}`).
//!
//! One router serves both hosts; clients point their login and API base URLs at the same
//! address. Behaviour follows `shared/reference/genesys-api.md`; where the real API is
//! undocumented the simulator takes the documented working assumption (PATCH upserts keys) and
//! says so next to the code, or, where no assumption is safe, offers both behaviours as a switch.
//!
//! Every Platform API request goes through the same gate, in this order: count the call, add
//! the configured latency, consume one scripted fault, roll the random error rate, check the
//! bearer token, apply the token's rate limit. Scripted faults come before authentication so a
//! test can make any call fail regardless of what the client sends.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderName;
use axum::Router;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

use super::{lock, ServerHandle};

mod admin;
mod errors;
mod events;
mod ipranges;
mod platform;
mod state;
#[cfg(test)]
mod tests;
mod unsettled;
mod views;

pub use events::{eventbridge_customer_start, eventbridge_envelope};
use platform::app;
pub use state::PublishedRange;
use state::Shared;
pub use unsettled::{EmptyPatch, EndedPatch, TokenErrors, Unsettled};

/// Genesys reports rate limits per minute; a fixed window per token is close enough for a
/// client that only has to honour `Retry-After`.
pub(super) const RATE_LIMIT_WINDOW: Duration = Duration::from_secs(60);

/// Genesys echoes the error body's `contextId` in this header ([F429]).
pub(super) static CORRELATION_ID: HeaderName = HeaderName::from_static("inin-correlation-id");

pub(super) const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";
pub(super) const JSON_CONTENT_TYPE: &str = "application/json";

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
    /// Requests per minute for the whole org, all tokens and clients together, answered with
    /// the same 429; `None` (the default) for no such cap. Whether Genesys has one for
    /// client-credentials traffic, and its figure, is unverified: this lets attrsync be tested
    /// at such a cap.
    pub org_rate_limit_per_minute: Option<u32>,
    /// More OAuth clients (id, secret) the token endpoint accepts besides `client_id`.
    pub extra_clients: Vec<(String, String)>,
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
            org_rate_limit_per_minute: None,
            extra_clients: Vec::new(),
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
    pub(super) const COUNT: usize = 3;

    pub(super) fn index(self) -> usize {
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
pub(super) enum FaultWire {
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
    pub(super) fn provider(self) -> &'static str {
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
    pub(super) fn flow_purpose(self) -> &'static str {
        match self {
            MediaType::Voice | MediaType::Callback => "ivr",
            MediaType::Chat | MediaType::Message | MediaType::Email => "workflow",
        }
    }

    pub(super) fn flow_name(self) -> &'static str {
        match self {
            MediaType::Voice | MediaType::Callback => "Inbound Call Flow",
            MediaType::Chat | MediaType::Message | MediaType::Email => "Inbound Message Flow",
        }
    }
}

/// Who started the conversation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    #[default]
    Inbound,
    Outbound,
}

impl Direction {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// The purpose of the customer's participant: `customer`, or `external` (as an agent-dialed
/// remote party may be; unverified which).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RemotePurpose {
    #[default]
    Customer,
    External,
}

/// Body of `POST /sim/conversations` and argument of [`GenesysSim::create_conversation`].
///
/// Give `customer` (the customer's number, email address or messaging platform id) and `org`
/// (the org's number or address), and the simulator fills `ani`/`dnis` (and the event's
/// `addressFrom`/`addressTo`) as the platform does: the initiating side first, so on an outbound
/// conversation `ani` is the org's (see `domain::party` for the sources). `ani`/`dnis` set
/// directly are kept as given (the older form: an inbound call).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NewConversation {
    pub media_type: MediaType,
    pub direction: Direction,
    /// A MESSAGE's platform (`sms`, `whatsapp`, `facebook`, ...), as the message's `type`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    pub customer_purpose: RemotePurpose,
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
    /// The 429s of those sent because the org-wide cap was reached.
    pub org_rate_limited: u64,
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

    /// The body of the `customer.start` event Genesys would send for the conversation, with
    /// `direction`, `mediaType`, `messageType`, `ani`, `dnis`, `addressFrom`, `addressTo` and
    /// `callbackNumbers` filled as the platform fills them; `None` for an unknown id.
    pub fn customer_start_body(&self, conversation_id: &str) -> Option<serde_json::Value> {
        lock(&self.shared.conversations)
            .get(conversation_id)
            .map(events::customer_start_body)
    }

    /// Sets `endTime` on the conversation and its participants; later PATCHes get 404, or 202
    /// and are not kept (`Unsettled::ended_patch`). Returns whether the conversation exists;
    /// ending it again keeps the first end time.
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
                p.attributes.extend(attrs);
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

    /// Sets the switches for behaviour no public source settles (see `unsettled`).
    pub fn set_unsettled(&self, unsettled: Unsettled) {
        *lock(&self.shared.unsettled) = unsettled;
    }

    pub fn unsettled(&self) -> Unsettled {
        *lock(&self.shared.unsettled)
    }

    /// The org-wide cap over every token (see [`GenesysSimConfig::org_rate_limit_per_minute`]).
    pub fn set_org_rate_limit(&self, per_minute: Option<u32>) {
        lock(&self.shared.faults).org_rate_limit_per_minute = per_minute;
    }
}

pub(super) fn sanitize_rate(rate: f64) -> f64 {
    if rate.is_nan() {
        0.0
    } else {
        rate.clamp(0.0, 1.0)
    }
}
