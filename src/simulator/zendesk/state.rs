//! The Zendesk simulator's state: users with their search-visibility time, issued OAuth tokens,
//! the switchable settings and faults, and the per-minute rate windows.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use serde_json::{json, Map, Value};
use tokio::time::Instant;
use uuid::Uuid;

use super::search::PhoneExactMode;
use super::{Fault, OAuthClient, SimStats, ZendeskSimConfig};
use crate::simulator::{lock, Traffic};

const WINDOW: Duration = Duration::from_secs(60);
const FIRST_USER_ID: u64 = 361_000_001;

pub(super) struct Shared {
    pub agent_email: String,
    pub api_tokens: Vec<String>,
    pub oauth_clients: Vec<OAuthClient>,
    pub default_token_lifetime: Option<Duration>,
    pub user_fields: Vec<String>,
    pub settings: Mutex<Settings>,
    pub users: Mutex<Users>,
    pub tokens: Mutex<HashMap<String, IssuedToken>>,
    pub windows: Mutex<Windows>,
    pub stats: Mutex<SimStats>,
    pub queries: Mutex<Vec<String>>,
    pub traffic: Traffic,
}

pub(super) struct Settings {
    pub api_token_access: bool,
    pub oauth_access: bool,
    pub rate_limit_per_minute: u32,
    pub search_rate_limit_per_minute: u32,
    pub phone_exact: PhoneExactMode,
    pub index_lag: Duration,
    pub latency: Duration,
    pub down: bool,
    pub faults: VecDeque<Fault>,
}

#[derive(Default)]
pub(super) struct Users {
    next_id: u64,
    by_id: BTreeMap<u64, StoredUser>,
}

pub(super) struct StoredUser {
    pub user: Map<String, Value>,
    /// Search sees the user from this moment on (create or last update plus the index lag).
    pub searchable_from: Instant,
}

pub(super) struct IssuedToken {
    pub expires_at: Option<Instant>,
    pub expired: bool,
}

/// One fixed window per limit, starting at its first request, as "requests remaining in the
/// current minute" implies.
#[derive(Default)]
pub(super) struct Windows {
    account: Option<Window>,
    search: Option<Window>,
}

#[derive(Clone, Copy)]
struct Window {
    started: Instant,
    used: u32,
}

/// The outcome of charging one request against the limits.
pub(super) struct Charge {
    pub limit: u32,
    pub remaining: u32,
    pub resets_in: Duration,
    /// For search requests: (total, remaining) of the search endpoint limit.
    pub search: Option<(u32, u32)>,
    /// `Some(wait)` when the request is over a limit and must get a 429.
    pub rejected: Option<Duration>,
}

impl Shared {
    pub fn new(config: ZendeskSimConfig) -> Self {
        Self {
            agent_email: config.agent_email,
            api_tokens: config.api_tokens,
            oauth_clients: config.oauth_clients,
            default_token_lifetime: config.default_token_lifetime,
            user_fields: config.user_fields,
            settings: Mutex::new(Settings {
                api_token_access: config.api_token_access,
                oauth_access: config.oauth_access,
                rate_limit_per_minute: config.rate_limit_per_minute,
                search_rate_limit_per_minute: config.search_rate_limit_per_minute,
                phone_exact: config.phone_exact,
                index_lag: config.index_lag,
                latency: config.latency,
                down: false,
                faults: VecDeque::new(),
            }),
            users: Mutex::new(Users {
                next_id: FIRST_USER_ID,
                by_id: BTreeMap::new(),
            }),
            tokens: Mutex::new(HashMap::new()),
            windows: Mutex::new(Windows::default()),
            stats: Mutex::new(SimStats::default()),
            queries: Mutex::new(Vec::new()),
            traffic: Traffic::default(),
        }
    }

    pub fn insert_user(&self, user: Value, indexed: bool) -> Option<u64> {
        let Value::Object(mut user) = user else {
            return None;
        };
        let lag = lock(&self.settings).index_lag;
        let mut users = lock(&self.users);
        let id = match user.get("id") {
            Some(Value::Number(n)) => n.as_u64()?,
            Some(_) => return None,
            None => {
                let id = users.next_id;
                users.next_id += 1;
                id
            }
        };
        let now = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
        let created = users
            .by_id
            .get(&id)
            .and_then(|old| old.user.get("created_at").cloned())
            .unwrap_or_else(|| json!(now));
        user.insert("id".to_owned(), json!(id));
        user.entry("role").or_insert_with(|| json!("end-user"));
        user.entry("name")
            .or_insert_with(|| json!(format!("User {id}")));
        user.entry("active").or_insert(json!(true));
        user.entry("user_fields").or_insert_with(|| json!({}));
        user.insert("created_at".to_owned(), created);
        user.insert("updated_at".to_owned(), json!(now));
        let searchable_from = if indexed {
            Instant::now()
        } else {
            Instant::now() + lag
        };
        users.by_id.insert(
            id,
            StoredUser {
                user,
                searchable_from,
            },
        );
        Some(id)
    }

    /// Users visible to search now, in id order, matching `keep`.
    pub fn search(&self, keep: impl Fn(&Map<String, Value>) -> bool) -> Vec<Map<String, Value>> {
        let now = Instant::now();
        lock(&self.users)
            .by_id
            .values()
            .filter(|u| u.searchable_from <= now && keep(&u.user))
            .map(|u| u.user.clone())
            .collect()
    }

    pub fn user(&self, id: u64) -> Option<Map<String, Value>> {
        lock(&self.users).by_id.get(&id).map(|u| u.user.clone())
    }

    pub fn issue_token(&self, lifetime: Option<Duration>) -> String {
        let token = Uuid::new_v4().simple().to_string();
        lock(&self.tokens).insert(
            token.clone(),
            IssuedToken {
                expires_at: lifetime.map(|l| Instant::now() + l),
                expired: false,
            },
        );
        lock(&self.stats).tokens_issued += 1;
        token
    }

    pub fn token_valid(&self, token: &str) -> bool {
        lock(&self.tokens)
            .get(token)
            .is_some_and(|t| !t.expired && t.expires_at.is_none_or(|at| Instant::now() < at))
    }

    pub fn expire_tokens(&self) {
        for token in lock(&self.tokens).values_mut() {
            token.expired = true;
        }
    }

    /// Charges one authenticated request against the account limit and, for search, the search
    /// limit. A rejected request is not counted (Zendesk answers it without doing the work).
    pub fn charge(&self, is_search: bool) -> Charge {
        let (limit, search_limit) = {
            let settings = lock(&self.settings);
            (
                settings.rate_limit_per_minute,
                settings.search_rate_limit_per_minute,
            )
        };
        let now = Instant::now();
        let mut windows = lock(&self.windows);
        let account = current(&mut windows.account, now);
        let search = is_search.then(|| current(&mut windows.search, now));
        let over_account = account.used >= limit;
        let over_search = search.is_some_and(|s| s.used >= search_limit);
        let resets_in = |w: Window| (w.started + WINDOW).saturating_duration_since(now);
        let rejected = if over_account {
            Some(resets_in(account))
        } else if over_search {
            search.map(resets_in)
        } else {
            None
        };
        if rejected.is_none() {
            if let Some(w) = windows.account.as_mut() {
                w.used += 1;
            }
            if is_search {
                if let Some(w) = windows.search.as_mut() {
                    w.used += 1;
                }
            }
        }
        let used = windows.account.map_or(0, |w| w.used);
        Charge {
            limit,
            remaining: limit.saturating_sub(used),
            resets_in: resets_in(windows.account.unwrap_or(account)),
            search: is_search.then(|| {
                let used = windows.search.map_or(0, |w| w.used);
                (search_limit, search_limit.saturating_sub(used))
            }),
            rejected,
        }
    }
}

fn current(slot: &mut Option<Window>, now: Instant) -> Window {
    match slot {
        Some(w) if now.saturating_duration_since(w.started) < WINDOW => *w,
        _ => *slot.insert(Window {
            started: now,
            used: 0,
        }),
    }
}

pub(super) fn sample_users() -> Vec<Value> {
    vec![
        json!({"name": "Ada Lovelace", "email": "ada@example.com", "phone": "+15135557611",
               "external_id": "C-1001", "user_fields": {"account_no": "AC-1001", "tier": "gold"}}),
        json!({"name": "Grace Hopper", "email": "grace.hopper@example.com",
               "phone": "(317) 555-0126", "external_id": "C-1002",
               "user_fields": {"account_no": "AC-1002", "tier": "silver"}}),
        json!({"name": "Alan Turing", "email": "alan@example.co.uk", "phone": "+44 20 7946 0958",
               "external_id": "C-1003", "user_fields": {"tier": "bronze"}}),
        json!({"name": "Support Agent", "email": "agent@example.com", "phone": "+15135550000",
               "role": "agent"}),
    ]
}
