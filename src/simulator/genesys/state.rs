//! The simulator's state: issued tokens and their rate windows, conversations and their
//! participants, scripted faults, the counters `GET /sim/stats` reports, and the published
//! address ranges.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use axum::http::{header, HeaderMap, StatusCode};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use uuid::Uuid;

use super::errors::ApiError;
use super::unsettled::Unsettled;
use super::{
    sanitize_rate, CreatedConversation, Direction, Fault, GenesysSimConfig, MediaType,
    NewConversation, Op, RemotePurpose, SimStats, RATE_LIMIT_WINDOW,
};
use crate::simulator::{bearer_token, lock};

/// One `IpAddressRange` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedRange {
    pub cidr: String,
    pub service: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// `inbound`, `outbound` or `both`, "from the perspective of Genesys Cloud"; absent in
    /// answers older than SDK 229.0.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
}

impl PublishedRange {
    pub fn new(cidr: &str, service: &str, direction: Option<&str>) -> Self {
        Self {
            cidr: cidr.to_owned(),
            service: service.to_owned(),
            region: Some("us-east-1".to_owned()),
            direction: direction.map(str::to_owned),
        }
    }
}

/// What `GET /api/v2/ipranges` answers. The default rows are documentation addresses
/// (RFC 5737, RFC 3849) under real `service` names: Genesys's own addresses and the format of
/// `region` (not documented) are not something to copy into a test.
pub(super) struct IpRanges {
    pub(super) entities: Vec<PublishedRange>,
    pub(super) fail_with: Option<u16>,
    pub(super) calls: u64,
}

impl Default for IpRanges {
    fn default() -> Self {
        Self {
            entities: vec![
                PublishedRange::new("192.0.2.0/28", "data-actions", Some("outbound")),
                PublishedRange::new("2001:db8:da::/48", "data-actions", Some("outbound")),
                PublishedRange::new("198.51.100.0/26", "api", Some("inbound")),
                PublishedRange::new("203.0.113.0/28", "smtp", Some("both")),
            ],
            fail_with: None,
            calls: 0,
        }
    }
}

pub(super) struct Shared {
    pub(super) client_id: String,
    pub(super) client_secret: String,
    pub(super) extra_clients: Vec<(String, String)>,
    /// The org-wide cap's window, shared by every token.
    pub(super) org_window: Mutex<RateWindow>,
    pub(super) token_lifetime: Duration,
    pub(super) tokens: Mutex<HashMap<String, IssuedToken>>,
    pub(super) conversations: Mutex<HashMap<String, Conversation>>,
    pub(super) faults: Mutex<FaultSettings>,
    pub(super) counters: Counters,
    pub(super) ip_ranges: Mutex<IpRanges>,
    pub(super) unsettled: Mutex<Unsettled>,
}

pub(super) struct IssuedToken {
    pub(super) expires_at: Instant,
    pub(super) window: RateWindow,
}

pub(super) struct FaultSettings {
    pub(super) latency: Duration,
    pub(super) error_rate: f64,
    pub(super) rate_limit_per_minute: Option<u32>,
    pub(super) org_rate_limit_per_minute: Option<u32>,
    pub(super) scripted: [VecDeque<Fault>; Op::COUNT],
}

#[derive(Default)]
pub(super) struct Counters {
    pub(super) token_requests: AtomicU64,
    pub(super) tokens_issued: AtomicU64,
    pub(super) get_conversation: AtomicU64,
    pub(super) patch_attributes: AtomicU64,
    pub(super) rate_limited: AtomicU64,
    pub(super) org_rate_limited: AtomicU64,
    pub(super) faults_injected: AtomicU64,
    pub(super) patches_accepted: AtomicU64,
}

pub(super) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    pub(super) fn calls(&self, op: Op) -> &AtomicU64 {
        match op {
            Op::Token => &self.token_requests,
            Op::GetConversation => &self.get_conversation,
            Op::PatchAttributes => &self.patch_attributes,
        }
    }

    pub(super) fn snapshot(&self) -> SimStats {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SimStats {
            token_requests: read(&self.token_requests),
            tokens_issued: read(&self.tokens_issued),
            get_conversation: read(&self.get_conversation),
            patch_attributes: read(&self.patch_attributes),
            rate_limited: read(&self.rate_limited),
            org_rate_limited: read(&self.org_rate_limited),
            faults_injected: read(&self.faults_injected),
            patches_accepted: read(&self.patches_accepted),
        }
    }
}

/// Fixed rate-limit window of one token.
#[derive(Debug, Clone, Copy)]
pub(super) struct RateWindow {
    pub(super) started: Instant,
    pub(super) admitted: u32,
}

impl RateWindow {
    pub(super) fn new(now: Instant) -> Self {
        Self {
            started: now,
            admitted: 0,
        }
    }

    /// Admits one request or returns the `Retry-After` seconds: the window's remaining time
    /// rounded up, so a client that waits exactly that long is admitted.
    pub(super) fn admit(&mut self, now: Instant, limit: u32) -> Result<(), u64> {
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

pub(super) struct Conversation {
    pub(super) id: String,
    pub(super) media_type: MediaType,
    pub(super) direction: Direction,
    pub(super) message_type: Option<String>,
    /// The customer's own address and the org's, as given.
    pub(super) customer: Option<String>,
    pub(super) org: Option<String>,
    pub(super) start_time: DateTime<Utc>,
    pub(super) end_time: Option<DateTime<Utc>>,
    pub(super) address: Option<String>,
    pub(super) participants: Vec<Participant>,
}

pub(super) struct Participant {
    pub(super) id: String,
    pub(super) purpose: &'static str,
    pub(super) participant_type: &'static str,
    pub(super) name: Option<String>,
    pub(super) address: Option<String>,
    pub(super) ani: Option<String>,
    pub(super) dnis: Option<String>,
    pub(super) external_contact_id: Option<String>,
    pub(super) start_time: DateTime<Utc>,
    pub(super) end_time: Option<DateTime<Utc>>,
    pub(super) media_id: String,
    pub(super) attributes: BTreeMap<String, String>,
    pub(super) patches: Vec<BTreeMap<String, String>>,
}

impl Shared {
    pub(super) fn new(config: GenesysSimConfig) -> Self {
        Self {
            client_id: config.client_id,
            client_secret: config.client_secret,
            extra_clients: config.extra_clients,
            org_window: Mutex::new(RateWindow::new(Instant::now())),
            token_lifetime: config.token_lifetime,
            tokens: Mutex::new(HashMap::new()),
            conversations: Mutex::new(HashMap::new()),
            faults: Mutex::new(FaultSettings {
                latency: config.latency,
                error_rate: sanitize_rate(config.error_rate),
                rate_limit_per_minute: config.rate_limit_per_minute,
                org_rate_limit_per_minute: config.org_rate_limit_per_minute,
                scripted: Default::default(),
            }),
            counters: Counters::default(),
            ip_ranges: Mutex::new(IpRanges::default()),
            unsettled: Mutex::new(Unsettled::default()),
        }
    }

    pub(super) fn create_conversation(&self, spec: NewConversation) -> CreatedConversation {
        let now = Utc::now();
        let media_type = spec.media_type;
        // `ani` is the initiating side, `dnis` the receiving one: on an outbound conversation the
        // org's number comes first. Without `customer`/`org`, `ani`/`dnis` are kept as given.
        let given = spec.customer.is_some() || spec.org.is_some();
        let (ani, dnis) = match (given, spec.direction) {
            (false, _) => (spec.ani.clone(), spec.dnis.clone()),
            (true, Direction::Inbound) => (spec.customer.clone(), spec.org.clone()),
            (true, Direction::Outbound) => (spec.org.clone(), spec.customer.clone()),
        };
        let (customer_address, org_address) = if given {
            (spec.customer.clone(), spec.org.clone())
        } else {
            (spec.ani.clone(), spec.dnis.clone())
        };
        let customer = Participant {
            id: Uuid::new_v4().to_string(),
            purpose: match spec.customer_purpose {
                RemotePurpose::Customer => "customer",
                RemotePurpose::External => "external",
            },
            // The participantType vocabulary is undocumented; these are the values seen in the
            // wild. Clients must identify the customer by `purpose`.
            participant_type: "External",
            name: None,
            address: customer_address.clone(),
            ani: ani.clone(),
            dnis: dnis.clone(),
            external_contact_id: spec.external_contact_id,
            start_time: now,
            end_time: None,
            media_id: Uuid::new_v4().to_string(),
            attributes: spec.attributes,
            patches: Vec::new(),
        };
        // An outbound conversation is placed by an agent (or a campaign), not answered by a flow.
        let (flow_purpose, flow_name) = match spec.direction {
            Direction::Inbound => (media_type.flow_purpose(), media_type.flow_name()),
            Direction::Outbound => ("agent", "Agent"),
        };
        let flow = Participant {
            id: Uuid::new_v4().to_string(),
            purpose: flow_purpose,
            participant_type: "Internal",
            name: Some(flow_name.to_owned()),
            address: org_address.clone(),
            ani,
            dnis,
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
            direction: spec.direction,
            message_type: spec.message_type,
            customer: customer_address,
            org: org_address.clone(),
            start_time: now,
            end_time: None,
            // "The DNIS for inbound calls and the ANI for outbound calls": the org's side both
            // times (Conversation.md).
            address: org_address,
            participants: vec![customer, flow],
        };
        lock(&self.conversations).insert(conversation.id.clone(), conversation);
        created
    }

    pub(super) fn end_conversation(&self, conversation_id: &str) -> bool {
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

    pub(super) fn with_participant<R>(
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

    pub(super) fn issue_token(&self) -> String {
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

    pub(super) fn check_client_credentials(&self, headers: &HeaderMap) -> Result<(), ApiError> {
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
            .is_some_and(|(id, secret)| {
                (id == self.client_id && secret == self.client_secret)
                    || self
                        .extra_clients
                        .iter()
                        .any(|(i, s)| i == id && s == secret)
            });
        if valid {
            Ok(())
        } else {
            Err(ApiError::bad_credentials())
        }
    }

    /// The shared gate of every Platform API request (see the module docs for the order).
    pub(super) async fn admit_api_call(&self, op: Op, headers: &HeaderMap) -> Result<(), ApiError> {
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

    pub(super) async fn apply_scripted_fault(&self, op: Op) -> Result<(), ApiError> {
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

    pub(super) fn authorize(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(token) = bearer_token(headers) else {
            return Err(ApiError::authentication_required());
        };
        let (limit, org_limit) = {
            let faults = lock(&self.faults);
            (
                faults.rate_limit_per_minute,
                faults.org_rate_limit_per_minute,
            )
        };
        let now = Instant::now();
        let mut tokens = lock(&self.tokens);
        let Some(issued) = tokens.get_mut(token) else {
            return Err(ApiError::bad_credentials());
        };
        if issued.expires_at <= now {
            tokens.remove(token);
            return Err(ApiError::bad_credentials());
        }
        if let Some(limit) = limit {
            issued.window.admit(now, limit).map_err(|retry_after| {
                bump(&self.counters.rate_limited);
                ApiError::too_many_requests(retry_after)
            })?;
        }
        drop(tokens);
        // The org-wide cap counts what the token's own limit let through (unverified how
        // Genesys would count; the answer is the same normalized 429 either way).
        if let Some(org_limit) = org_limit {
            lock(&self.org_window)
                .admit(now, org_limit)
                .map_err(|retry_after| {
                    bump(&self.counters.rate_limited);
                    bump(&self.counters.org_rate_limited);
                    ApiError::too_many_requests(retry_after)
                })?;
        }
        Ok(())
    }
}

impl Conversation {
    pub(super) fn participant_mut(&mut self, participant_id: &str) -> Option<&mut Participant> {
        self.participants
            .iter_mut()
            .find(|p| p.id == participant_id)
    }
}
