//! The HubSpot simulator's state: contacts with their search-index view, tokens, settings and
//! faults, and the rate windows (the search limit per second, the ten-secondly and daily ones).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use phonenumber::country;
use serde_json::{json, Map, Value};
use tokio::time::Instant;

use super::filter::{FilterLimits, PhoneFilterMode, UnknownProperty};
use super::{Fault, HubSpotSimConfig, LimitScope, SimStats};
use crate::simulator::{lock, Traffic};

const FIRST_CONTACT_ID: u64 = 100_451;

/// HubSpot's default contact properties the simulator knows (a subset of the real schema: the
/// ones lookups and the examples use). Custom properties come from the configuration.
pub(super) const DEFAULT_PROPERTIES: [&str; 20] = [
    "firstname",
    "lastname",
    "email",
    "phone",
    "mobilephone",
    "company",
    "jobtitle",
    "fax",
    "hs_additional_emails",
    "lifecyclestage",
    "createdate",
    "lastmodifieddate",
    "hs_lastmodifieddate",
    "hs_object_id",
    "hs_searchable_calculated_phone_number",
    "hs_searchable_calculated_mobile_number",
    "hs_marketable_until_renewal",
    "city",
    "country",
    "hubspot_owner_id",
];

pub(super) struct Shared {
    pub tokens: Mutex<HashMap<String, TokenState>>,
    pub token_lifetime: Option<Duration>,
    pub granted_scopes: Vec<String>,
    pub custom_properties: Vec<String>,
    pub default_region: country::Id,
    pub settings: Mutex<Settings>,
    pub contacts: Mutex<BTreeMap<u64, Contact>>,
    next_id: Mutex<u64>,
    pub windows: Mutex<Windows>,
    pub stats: Mutex<SimStats>,
    pub bodies: Mutex<Vec<String>>,
    pub traffic: Traffic,
}

pub(super) struct Settings {
    pub search_per_second: u32,
    pub search_scope: LimitScope,
    pub search_policy_name: String,
    pub search_retry_after: Option<u64>,
    pub ten_secondly_limit: u32,
    pub daily_limit: u64,
    pub filter_limits: FilterLimits,
    pub phone_filter: PhoneFilterMode,
    pub unknown_property: UnknownProperty,
    pub index_lag: Duration,
    pub latency: Duration,
    pub down: bool,
    pub faults: VecDeque<Fault>,
}

pub(super) enum TokenState {
    Valid { expires_at: Option<Instant> },
    Expired { at: chrono::DateTime<Utc> },
    Revoked,
}

pub(super) struct Contact {
    pub properties: Map<String, Value>,
    pub created_at: String,
    pub updated_at: String,
    pub archived: bool,
    /// What search sees: the current properties from `visible_from`, before that the previous
    /// version (`None` for a new contact: invisible).
    pub visible_from: Instant,
    pub previous: Option<Map<String, Value>>,
}

impl Contact {
    pub fn search_view(&self, now: Instant) -> Option<&Map<String, Value>> {
        if self.archived {
            None
        } else if now >= self.visible_from {
            Some(&self.properties)
        } else {
            self.previous.as_ref()
        }
    }
}

#[derive(Default)]
pub(super) struct Windows {
    /// Arrival times of admitted search requests per scope key ("" = the account).
    search: HashMap<String, VecDeque<Instant>>,
    /// Admitted non-search requests per token, for the ten-secondly rolling limit.
    ten_secondly: HashMap<String, VecDeque<Instant>>,
    pub daily_used: u64,
}

impl Shared {
    pub fn new(config: HubSpotSimConfig) -> Self {
        let tokens = config
            .access_tokens
            .iter()
            .map(|t| {
                (
                    t.clone(),
                    TokenState::Valid {
                        expires_at: config.token_lifetime.map(|l| Instant::now() + l),
                    },
                )
            })
            .collect();
        Self {
            tokens: Mutex::new(tokens),
            token_lifetime: config.token_lifetime,
            granted_scopes: config.granted_scopes,
            custom_properties: config.custom_properties,
            default_region: config
                .default_region
                .trim()
                .to_ascii_uppercase()
                .parse::<country::Id>()
                .unwrap_or(country::Id::US),
            settings: Mutex::new(Settings {
                search_per_second: config.search_per_second,
                search_scope: config.search_scope,
                search_policy_name: config.search_policy_name,
                search_retry_after: config.search_retry_after,
                ten_secondly_limit: config.ten_secondly_limit,
                daily_limit: config.daily_limit,
                filter_limits: config.filter_limits,
                phone_filter: config.phone_filter,
                unknown_property: config.unknown_property,
                index_lag: config.index_lag,
                latency: config.latency,
                down: false,
                faults: VecDeque::new(),
            }),
            contacts: Mutex::new(BTreeMap::new()),
            next_id: Mutex::new(FIRST_CONTACT_ID),
            windows: Mutex::new(Windows::default()),
            stats: Mutex::new(SimStats::default()),
            bodies: Mutex::new(Vec::new()),
            traffic: Traffic::default(),
        }
    }

    pub fn is_known_property(&self, name: &str) -> bool {
        DEFAULT_PROPERTIES.contains(&name) || self.custom_properties.iter().any(|p| p == name)
    }

    /// "Area code and local number": libphonenumber's national significant number of the value
    /// (parsed with the account's region when it has no `+`), or, unparseable, its digits
    /// without leading zeros (a stored `00004` showed `4`). HubSpot's algorithm is unverified.
    pub fn standardise(&self, value: &str) -> String {
        let digits: String = value.chars().filter(char::is_ascii_digit).collect();
        if digits.is_empty() {
            return String::new();
        }
        let cleaned = if value.trim_start().starts_with('+') {
            format!("+{digits}")
        } else {
            digits.clone()
        };
        let region = (!cleaned.starts_with('+')).then_some(self.default_region);
        let parsed = std::panic::catch_unwind(|| phonenumber::parse(region, &cleaned))
            .ok()
            .and_then(Result::ok);
        match parsed {
            Some(number) if digits.len() <= 20 => number.national().to_string(),
            _ => digits.trim_start_matches('0').to_owned(),
        }
    }

    /// Creates a contact from string properties; visible to search after the index lag unless
    /// `indexed`. Returns the id.
    pub fn insert(&self, properties: Map<String, Value>, indexed: bool) -> u64 {
        let id = {
            let mut next = lock(&self.next_id);
            let id = *next;
            *next += 1;
            id
        };
        let now = timestamp();
        let mut contact = Contact {
            properties: Map::new(),
            created_at: now.clone(),
            updated_at: now.clone(),
            archived: false,
            visible_from: Instant::now(),
            previous: None,
        };
        self.write(id, &mut contact, properties, indexed);
        lock(&self.contacts).insert(id, contact);
        id
    }

    /// Updates properties; search keeps the old version until the index lag has passed.
    pub fn update(&self, id: u64, properties: Map<String, Value>, indexed: bool) -> bool {
        let mut contacts = lock(&self.contacts);
        let Some(contact) = contacts.get_mut(&id) else {
            return false;
        };
        contact.previous = Some(contact.properties.clone());
        contact.updated_at = timestamp();
        self.write(id, contact, properties, indexed);
        true
    }

    fn write(&self, id: u64, contact: &mut Contact, properties: Map<String, Value>, indexed: bool) {
        for (key, value) in properties {
            let value = match value {
                Value::String(s) => Value::String(s),
                Value::Null => Value::Null,
                other => Value::String(other.to_string()),
            };
            contact.properties.insert(key, value);
        }
        let p = &mut contact.properties;
        p.insert("hs_object_id".to_owned(), json!(id.to_string()));
        p.insert("createdate".to_owned(), json!(contact.created_at));
        p.insert("lastmodifieddate".to_owned(), json!(contact.updated_at));
        p.insert("hs_lastmodifieddate".to_owned(), json!(contact.updated_at));
        for (source, calculated) in [
            ("phone", "hs_searchable_calculated_phone_number"),
            ("mobilephone", "hs_searchable_calculated_mobile_number"),
        ] {
            let value = p
                .get(source)
                .and_then(Value::as_str)
                .map(|s| self.standardise(s))
                .filter(|s| !s.is_empty());
            match value {
                Some(v) => p.insert(calculated.to_owned(), json!(v)),
                None => p.remove(calculated),
            };
        }
        let lag = lock(&self.settings).index_lag;
        contact.visible_from = if indexed {
            Instant::now()
        } else {
            Instant::now() + lag
        };
    }

    /// Admits a search request or returns the policy's 429 wait. A sliding one-second window
    /// (so a client that never exceeds N in any second is never refused).
    pub fn admit_search(&self, token: &str) -> Result<(), Duration> {
        let (limit, scope) = {
            let s = lock(&self.settings);
            (s.search_per_second, s.search_scope)
        };
        let key = match scope {
            LimitScope::Account => String::new(),
            LimitScope::Token => token.to_owned(),
        };
        admit(
            lock(&self.windows).search.entry(key).or_default(),
            limit,
            Duration::from_secs(1),
        )
    }

    /// Admits a non-search request against the ten-secondly (per token) and daily (per account)
    /// limits; returns the headers' numbers or the refusing policy.
    pub fn admit_general(&self, token: &str) -> Result<GeneralCharge, &'static str> {
        let (ten, daily) = {
            let s = lock(&self.settings);
            (s.ten_secondly_limit, s.daily_limit)
        };
        let mut windows = lock(&self.windows);
        if windows.daily_used >= daily {
            return Err("DAILY");
        }
        let log = windows.ten_secondly.entry(token.to_owned()).or_default();
        admit(log, ten, Duration::from_secs(10)).map_err(|_| "TEN_SECONDLY_ROLLING")?;
        let used = u32::try_from(log.len()).unwrap_or(u32::MAX);
        windows.daily_used += 1;
        Ok(GeneralCharge {
            max: ten,
            remaining: ten.saturating_sub(used),
            daily,
            daily_remaining: daily.saturating_sub(windows.daily_used),
        })
    }
}

pub(super) struct GeneralCharge {
    pub max: u32,
    pub remaining: u32,
    pub daily: u64,
    pub daily_remaining: u64,
}

fn admit(log: &mut VecDeque<Instant>, limit: u32, window: Duration) -> Result<(), Duration> {
    let now = Instant::now();
    while log
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) >= window)
    {
        log.pop_front();
    }
    if log.len() >= limit as usize {
        let oldest = log.front().copied().unwrap_or(now);
        return Err((oldest + window).saturating_duration_since(now));
    }
    log.push_back(now);
    Ok(())
}

pub(super) fn timestamp() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(super) fn sample_contacts() -> Vec<Value> {
    vec![
        json!({"firstname": "Ada", "lastname": "Lovelace", "email": "ada@example.com",
               "phone": "+15135557611"}),
        json!({"firstname": "Grace", "lastname": "Hopper", "email": "grace.hopper@example.com",
               "phone": "(317) 555-0126", "mobilephone": "+1 317 555 0199"}),
        json!({"firstname": "Alan", "lastname": "Turing", "email": "alan@example.co.uk",
               "phone": "+44 20 7946 0958"}),
    ]
}
