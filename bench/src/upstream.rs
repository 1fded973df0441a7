//! The upstreams attrsync talks to during a run, served in the bench process on 127.0.0.1:
//!
//! - Genesys: the project's [`GenesysSim`], served through a front router that records when
//!   each conversation's PATCH was accepted (acceptance-to-PATCH latency is measured on the
//!   simulator side) and can enforce a smoothed per-token budget (token bucket) in front of the
//!   simulator's own fixed 60-second window.
//! - CRM: either a synthetic CRM that knows every caller (default; see `bench/README.md`) or the
//!   project's [`CrmSim`] with an empty store (every caller unknown). Both answer
//!   `GET /api/customers?phone=...` with `{"results": [...]}`, and both go through a front that
//!   counts requests and can time each one, keyed by the phone number asked for.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use attrsync::simulator::{CrmSim, CrmSimConfig, GenesysSim, GenesysSimConfig};
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Nanoseconds since the first call in this process, plus one: 0 is free to mean "not yet".
pub fn now_ns() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    let base = BASE.get_or_init(Instant::now);
    u64::try_from(base.elapsed().as_nanos())
        .unwrap_or(u64::MAX - 1)
        .saturating_add(1)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A router served on 127.0.0.1:0 until dropped.
pub struct Served {
    pub url: String,
    task: JoinHandle<()>,
}

impl Served {
    pub async fn serve(name: &'static str, router: Router) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .with_context(|| format!("binding the {name} front"))?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                eprintln!("bench: {name} front stopped: {e}");
            }
        });
        Ok(Self {
            url: format!("http://{addr}"),
            task,
        })
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---------------------------------------------------------------------------------------------
// Genesys

/// Which conversations the run measures, and when each was first patched.
struct Tracking {
    index: HashMap<String, usize>,
    patched_at: Vec<AtomicU64>,
}

/// A token bucket per access token (the simulator issues one token per client here, so one
/// bucket is enough; the front keys nothing).
struct Bucket {
    per_sec: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// `Ok` admits; `Err(secs)` is the Retry-After to send.
    fn take(&mut self, now: Instant) -> Result<(), u64> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - self.tokens) / self.per_sec;
            // Genesys sends whole seconds; never 0.
            Err((wait.ceil() as u64).max(1))
        }
    }
}

#[derive(Default)]
struct GenesysFrontState {
    tracking: OnceLock<Tracking>,
    tracked_patches: AtomicU64,
    last_patch_ns: AtomicU64,
    untracked_patches: AtomicU64,
    repeated_patches: AtomicU64,
    limiter: Mutex<Option<Bucket>>,
    limiter_rejections: AtomicU64,
}

impl GenesysFrontState {
    fn record_patch(&self, conversation_id: &str) {
        let now = now_ns();
        let slot = self
            .tracking
            .get()
            .and_then(|t| t.index.get(conversation_id).map(|&i| &t.patched_at[i]));
        match slot {
            Some(slot) => {
                if slot
                    .compare_exchange(0, now, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    self.tracked_patches.fetch_add(1, Ordering::AcqRel);
                    self.last_patch_ns.fetch_max(now, Ordering::AcqRel);
                } else {
                    self.repeated_patches.fetch_add(1, Ordering::Relaxed);
                }
            }
            None => {
                self.untracked_patches.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn admit(&self) -> Result<(), u64> {
        let mut limiter = lock(&self.limiter);
        match limiter.as_mut() {
            None => Ok(()),
            Some(bucket) => bucket.take(Instant::now()).inspect_err(|_| {
                self.limiter_rejections.fetch_add(1, Ordering::Relaxed);
            }),
        }
    }
}

/// `/api/v2/conversations/{cid}/participants/{pid}/attributes` -> `cid`.
fn patched_conversation(path: &str) -> Option<String> {
    let mut parts = path.split('/');
    let ok = parts.next() == Some("")
        && parts.next() == Some("api")
        && parts.next() == Some("v2")
        && parts.next() == Some("conversations");
    if !ok {
        return None;
    }
    let conversation = parts.next()?;
    (parts.next() == Some("participants") && parts.next().is_some())
        .then(|| conversation.to_owned())
}

/// The normalized Genesys 429 (the simulator's shape), for the smoothed budget.
fn too_many_requests(retry_after: u64) -> Response {
    let body = json!({
        "message": format!("Rate limit exceeded the maximum. Retry the request in [{retry_after}] seconds"),
        "code": "too.many.requests",
        "status": 429,
        "contextId": "attrsync-bench-front",
        "details": [],
        "errors": [],
    });
    let mut response = (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    response
}

async fn genesys_front(
    State(state): State<Arc<GenesysFrontState>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let api = path.starts_with("/api/v2/");
    let patched = if request.method() == Method::PATCH {
        patched_conversation(path)
    } else {
        None
    };
    if api {
        if let Err(retry_after) = state.admit() {
            return too_many_requests(retry_after);
        }
    }
    let response = next.run(request).await;
    if response.status() == StatusCode::ACCEPTED {
        if let Some(conversation) = patched {
            state.record_patch(&conversation);
        }
    }
    response
}

pub struct GenesysFront {
    pub sim: GenesysSim,
    pub config: GenesysSimConfig,
    state: Arc<GenesysFrontState>,
    served: Served,
}

impl GenesysFront {
    pub async fn start() -> anyhow::Result<Self> {
        let config = GenesysSimConfig {
            client_id: "attrsync-bench".to_owned(),
            client_secret: format!("bench-{}", uuid::Uuid::new_v4().simple()),
            ..GenesysSimConfig::default()
        };
        // The simulator serves itself on a listener of its own, which the run does not use:
        // attrsync talks to the front, which serves the same state.
        let own = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the Genesys simulator")?;
        let sim = GenesysSim::start(config.clone(), own).await?;
        let state = Arc::new(GenesysFrontState::default());
        let router = sim
            .router()
            .layer(middleware::from_fn_with_state(state.clone(), genesys_front));
        let served = Served::serve("genesys", router).await?;
        Ok(Self {
            sim,
            config,
            state,
            served,
        })
    }

    pub fn url(&self) -> &str {
        &self.served.url
    }

    /// Measure these conversations from now on (index = position in `ids`). Once per front.
    pub fn track(&self, ids: &[String]) -> anyhow::Result<()> {
        let tracking = Tracking {
            index: ids
                .iter()
                .cloned()
                .enumerate()
                .map(|(i, c)| (c, i))
                .collect(),
            patched_at: ids.iter().map(|_| AtomicU64::new(0)).collect(),
        };
        self.state
            .tracking
            .set(tracking)
            .map_err(|_| anyhow::anyhow!("tracking already installed"))
    }

    /// Tracked conversations patched so far (first PATCH only).
    pub fn tracked_patches(&self) -> u64 {
        self.state.tracked_patches.load(Ordering::Acquire)
    }

    pub fn last_patch_ns(&self) -> u64 {
        self.state.last_patch_ns.load(Ordering::Acquire)
    }

    pub fn untracked_patches(&self) -> u64 {
        self.state.untracked_patches.load(Ordering::Relaxed)
    }

    pub fn repeated_patches(&self) -> u64 {
        self.state.repeated_patches.load(Ordering::Relaxed)
    }

    /// When the tracked conversation `i` was first patched (0 = not).
    pub fn patched_at(&self, i: usize) -> u64 {
        self.state
            .tracking
            .get()
            .and_then(|t| t.patched_at.get(i))
            .map_or(0, |a| a.load(Ordering::Acquire))
    }

    /// A smoothed budget in front of the simulator: `per_minute / 60` per second, bucket of one
    /// second's worth, starting full. `None` removes it.
    pub fn set_smooth_limit(&self, per_minute: Option<u32>) {
        *lock(&self.state.limiter) = per_minute.map(|per_minute| {
            let per_sec = f64::from(per_minute) / 60.0;
            Bucket {
                per_sec,
                capacity: per_sec.max(1.0),
                tokens: per_sec.max(1.0),
                last: Instant::now(),
            }
        });
    }

    pub fn front_429s(&self) -> u64 {
        self.state.limiter_rejections.load(Ordering::Relaxed)
    }
}

impl Drop for GenesysFront {
    fn drop(&mut self) {
        self.sim.shutdown();
    }
}

// ---------------------------------------------------------------------------------------------
// CRM

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CrmKind {
    /// A CRM that knows every caller and answers with a realistic customer record.
    Synthetic,
    /// The project's CrmSim with an empty store: every caller is unknown.
    Crmsim,
}

#[derive(Default)]
struct CrmFrontState {
    requests: AtomicU64,
    timing_on: AtomicBool,
    timing: Mutex<HashMap<String, u64>>,
    /// Synthetic CRM latency, in nanoseconds.
    latency_ns: AtomicU64,
}

#[derive(Deserialize)]
struct SearchParams {
    phone: Option<String>,
}

/// A customer for any phone number, shaped like `CrmSim::sample_customers()`.
fn synthetic_customer(phone: &str) -> serde_json::Value {
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    let n = digits.bytes().fold(0u64, |acc, b| {
        acc.wrapping_mul(10).wrapping_add(u64::from(b - b'0'))
    });
    let tier = ["gold", "silver", "bronze"][(n % 3) as usize];
    json!({
        "id": format!("C-{digits}"),
        "firstName": "Ada",
        "lastName": format!("Caller{}", n % 100_000),
        "email": format!("caller{digits}@example.com"),
        "phone": phone,
        "tier": tier,
        "accountNumber": format!("ACC-{digits}"),
        "address": {"city": "Indianapolis", "country": "US"}
    })
}

async fn synthetic_search(
    State(state): State<Arc<CrmFrontState>>,
    Query(params): Query<SearchParams>,
) -> Response {
    let latency = state.latency_ns.load(Ordering::Relaxed);
    if latency > 0 {
        tokio::time::sleep(Duration::from_nanos(latency)).await;
    }
    match params.phone.as_deref().map(str::trim) {
        Some(phone) if !phone.is_empty() => {
            Json(json!({ "results": [synthetic_customer(phone)] })).into_response()
        }
        _ => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "phone query parameter required"})),
        )
            .into_response(),
    }
}

async fn crm_front(
    State(state): State<Arc<CrmFrontState>>,
    request: Request,
    next: Next,
) -> Response {
    if !request.uri().path().starts_with("/api/customers") {
        return next.run(request).await;
    }
    state.requests.fetch_add(1, Ordering::Relaxed);
    let phone = if state.timing_on.load(Ordering::Relaxed) {
        request.uri().query().and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "phone")
                .map(|(_, v)| v.into_owned())
        })
    } else {
        None
    };
    let started = now_ns();
    let response = next.run(request).await;
    if let Some(phone) = phone {
        let took = now_ns().saturating_sub(started);
        lock(&state.timing).insert(phone, took);
    }
    response
}

pub struct CrmFront {
    pub kind: CrmKind,
    state: Arc<CrmFrontState>,
    sim: Option<CrmSim>,
    served: Served,
}

impl CrmFront {
    pub async fn start(kind: CrmKind) -> anyhow::Result<Self> {
        let state = Arc::new(CrmFrontState::default());
        let (router, sim) = match kind {
            CrmKind::Synthetic => (
                Router::new()
                    .route("/api/customers", get(synthetic_search))
                    .with_state(state.clone()),
                None,
            ),
            CrmKind::Crmsim => {
                let own = TcpListener::bind("127.0.0.1:0")
                    .await
                    .context("binding the CRM simulator")?;
                let sim = CrmSim::start(CrmSimConfig::default(), own).await?;
                (sim.router(), Some(sim))
            }
        };
        let router = router.layer(middleware::from_fn_with_state(state.clone(), crm_front));
        let served = Served::serve("crm", router).await?;
        Ok(Self {
            kind,
            state,
            sim,
            served,
        })
    }

    pub fn url(&self) -> &str {
        &self.served.url
    }

    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::Relaxed)
    }

    pub fn set_latency(&self, latency: Duration) {
        self.state.latency_ns.store(
            u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        if let Some(sim) = &self.sim {
            sim.set_latency(latency);
        }
    }

    /// Start timing each request, keyed by the phone number it asked for.
    pub fn time_requests(&self, on: bool) {
        self.state.timing_on.store(on, Ordering::Relaxed);
    }

    /// How long the CRM took to answer for `phone` (its last request), in nanoseconds.
    pub fn timing(&self) -> HashMap<String, u64> {
        std::mem::take(&mut *lock(&self.state.timing))
    }

    /// Whether a caller is expected to be found (for checking answers).
    pub fn finds_callers(&self) -> bool {
        self.kind == CrmKind::Synthetic
    }
}

impl Drop for CrmFront {
    fn drop(&mut self) {
        if let Some(sim) = &self.sim {
            sim.shutdown();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_conversation_of_a_patch_path_is_found() {
        assert_eq!(
            patched_conversation("/api/v2/conversations/c1/participants/p1/attributes").as_deref(),
            Some("c1")
        );
        assert_eq!(patched_conversation("/api/v2/conversations/c1"), None);
        assert_eq!(patched_conversation("/sim/stats"), None);
    }

    #[test]
    fn the_bucket_admits_its_capacity_then_asks_to_wait() {
        let now = Instant::now();
        let mut bucket = Bucket {
            per_sec: 2.0,
            capacity: 2.0,
            tokens: 2.0,
            last: now,
        };
        assert!(bucket.take(now).is_ok());
        assert!(bucket.take(now).is_ok());
        assert_eq!(bucket.take(now), Err(1));
        assert!(bucket.take(now + Duration::from_millis(500)).is_ok());
    }
}
