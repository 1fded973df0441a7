//! CRM sources: the adapter contract ([`CrmAdapter`], [`CrmError`], [`Candidate`]), what every
//! adapter shares (grading what a vendor returned: `grade`; the calls it makes under its
//! source's timeout, retries and `budget`: `upstream`; OAuth tokens: `oauth`), what stands in
//! front of every adapter (its circuit `breaker`, the answer `cache`, together a `source`), the
//! match `policy`, and the `chain` of sources a lookup goes through; what replicas share in
//! PostgreSQL (the budget and a second-level cache: `shared`). [`from_settings`] (or
//! [`from_settings_shared`]) is the one place adapters are chosen; [`adapter`] the one place
//! each is built.
//!
//! Vendor query modules (`salesforce`, `dynamics`, ...) are pure: they build requests and parse
//! answers into [`vendor::VendorRecord`]s; their adapters grade those with
//! [`grade::grade_records`].

pub mod breaker;
pub mod budget;
pub mod cache;
pub mod candidate;
pub mod chain;
pub mod dynamics;
pub mod file;
pub mod freshdesk;
pub mod grade;
pub mod http;
pub mod hubspot;
pub mod oauth;
pub mod policy;
pub mod salesforce;
pub mod servicenow;
pub mod shared;
pub mod source;
pub mod sql;
pub mod upstream;
pub mod vendor;
pub mod zendesk;

use std::sync::Arc;
use std::time::Duration;

use crate::config::{CrmAdapterKind, Settings};
use crate::retry::Retryable;

pub use crate::domain::{CustomerKey, KeyKind};
pub use candidate::{Candidate, CandidateSummary, MatchQuality};
pub use chain::{ChainSettings, CrmAnswer, CrmSources, SourceOutcome, SourceReport, Verdict};

/// A customer as the CRM returned it: a JSON object, flattened and mapped later by the merge
/// policy.
pub type CrmRecord = serde_json::Map<String, serde_json::Value>;

/// Why a source could not answer. Messages never hold a key or a CRM value (vendors echo the
/// query in error messages: adapters keep those out).
#[derive(Debug, Clone, thiserror::Error)]
pub enum CrmError {
    #[error("CRM answered {status}")]
    Status {
        status: u16,
        retry_after: Option<Duration>,
    },
    #[error("CRM did not answer in time")]
    Timeout,
    #[error("could not reach the CRM: {0}")]
    Connect(String),
    #[error("unexpected CRM response: {0}")]
    InvalidResponse(String),
    #[error("CRM adapter is not usable: {0}")]
    Unavailable(String),
    /// The circuit breaker is open after repeated failures; the CRM was not called.
    #[error("CRM circuit is open")]
    CircuitOpen { retry_after: Duration },
    /// The vendor throttled the call (429, a service-protection limit): retry after the wait.
    #[error("CRM rate limit reached")]
    RateLimited { retry_after: Option<Duration> },
    /// An allocation counted over a long window (a daily API allowance, or the share of it
    /// attrsync may use) is spent: the source's circuit opens for `retry_after`.
    #[error("CRM API allocation spent")]
    Quota { retry_after: Duration },
    /// The credentials were refused (`invalid_client`, a disabled user, missing privileges):
    /// another attempt cannot help; an operator must act.
    #[error("CRM refused the credentials: {0}")]
    Auth(String),
    /// The vendor refused the access token (expired, revoked). Adapters renew it once
    /// (`oauth::TokenManager::with_token`); this escapes only when the new one is refused too.
    #[error("CRM refused the access token")]
    InvalidSession,
    /// The deployment-wide state (`[crm.shared]`) is unreachable; the shared budget fails
    /// closed, so the CRM was not called.
    #[error("{0}")]
    SharedState(String),
    /// The deployment's shared budget has no slot within the source's `max_retry_after_secs`:
    /// the CRM was not called; try again after `retry_after`.
    #[error("CRM budget of the deployment spent for now")]
    OverBudget { retry_after: Duration },
}

impl CrmError {
    /// The error's name in a [`SourceReport`] and in logs.
    pub fn kind(&self) -> &'static str {
        match self {
            CrmError::Status { .. } => "status",
            CrmError::Timeout => "timeout",
            CrmError::Connect(_) => "connect",
            CrmError::InvalidResponse(_) => "invalid_response",
            CrmError::Unavailable(_) => "unavailable",
            CrmError::CircuitOpen { .. } => "circuit_open",
            CrmError::RateLimited { .. } => "rate_limited",
            CrmError::Quota { .. } => "quota",
            CrmError::Auth(_) => "auth",
            CrmError::InvalidSession => "invalid_session",
            CrmError::SharedState(_) => "shared_state",
            CrmError::OverBudget { .. } => "over_budget",
        }
    }

    /// How long the source's circuit must stay open whatever its failure count.
    pub fn opens_circuit_for(&self) -> Option<Duration> {
        match self {
            CrmError::Quota { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    /// The error for an HTTP answer that is neither a success nor one the adapter understood:
    /// 429 is `RateLimited` (with its `Retry-After`), anything else `Status`.
    pub fn from_status(status: u16, headers: &reqwest::header::HeaderMap) -> Self {
        let retry_after = crate::retry::retry_after_header(headers);
        if status == 429 {
            CrmError::RateLimited { retry_after }
        } else {
            CrmError::Status {
                status,
                retry_after,
            }
        }
    }
}

impl Retryable for CrmError {
    fn is_retryable(&self) -> bool {
        match self {
            CrmError::Status { status, .. } => matches!(*status, 408 | 429 | 500..=599),
            CrmError::Timeout
            | CrmError::Connect(_)
            | CrmError::CircuitOpen { .. }
            | CrmError::RateLimited { .. }
            // A queued event may wait for the allocation; past its horizon it gives up.
            | CrmError::Quota { .. }
            | CrmError::SharedState(_)
            | CrmError::OverBudget { .. } => true,
            CrmError::InvalidResponse(_)
            | CrmError::Unavailable(_)
            | CrmError::Auth(_)
            | CrmError::InvalidSession => false,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            CrmError::Status { retry_after, .. } | CrmError::RateLimited { retry_after } => {
                *retry_after
            }
            CrmError::CircuitOpen { retry_after }
            | CrmError::Quota { retry_after }
            | CrmError::OverBudget { retry_after } => Some(*retry_after),
            _ => None,
        }
    }
}

/// What every adapter implements. An adapter builds itself from its own settings section
/// (`[crm.<kind>]`), makes its calls through an [`upstream::Upstream`] built from that section's
/// common settings, and grades every record its vendor returned ([`grade`]) so that only
/// records really holding the key come back.
#[async_trait::async_trait]
pub trait CrmAdapter: Send + Sync {
    /// The adapter's name, `CrmAdapterKind::as_str()`: the source's name and `source` label.
    fn kind(&self) -> &'static str;

    /// The key kinds it can look up; it is never asked about others.
    fn key_kinds(&self) -> &[KeyKind];

    /// The records matching `key`, graded; empty when the CRM does not know it (not an error).
    async fn find(&self, key: &CustomerKey) -> Result<Vec<Candidate>, CrmError>;

    /// Whether the adapter can serve lookups (the readiness check). Must be cheap: it must not
    /// spend the vendor's rate limit.
    async fn ready(&self) -> Result<(), CrmError>;
}

/// Builds the adapter of `kind` from its section of `settings`, its calls waiting on the budget
/// `budgets` gives it. Each adapter registers here (and in `CrmAdapterKind`,
/// `CrmSettings::common` and `Settings::validate_crm`).
pub fn adapter(
    kind: CrmAdapterKind,
    settings: &Settings,
    budgets: &upstream::Budgets,
) -> anyhow::Result<Arc<dyn CrmAdapter>> {
    let region = settings.phone.default_region;
    let budget = |source: &'static str| budgets.for_source(source, settings.crm.common(kind));
    Ok(match kind {
        CrmAdapterKind::File => Arc::new(file::FileCrm::from_settings(&settings.crm.file, region)?),
        CrmAdapterKind::Http => Arc::new(
            http::HttpCrm::from_settings(&settings.crm.http, region)?
                .with_budget(budget(kind.as_str())),
        ),
        CrmAdapterKind::Sql => Arc::new(
            sql::SqlCrm::from_settings(&settings.crm.sql, region)?
                .with_budget(budget(kind.as_str())),
        ),
        CrmAdapterKind::Salesforce => Arc::new(
            salesforce::SalesforceCrm::from_settings(&settings.crm.salesforce, region)?
                .with_budget(budget(kind.as_str())),
        ),
        CrmAdapterKind::Dynamics => Arc::new(
            dynamics::DynamicsCrm::from_settings(&settings.crm.dynamics, region)?
                .with_budget(budget(kind.as_str())),
        ),
        CrmAdapterKind::ServiceNow => Arc::new(
            servicenow::ServiceNowCrm::from_settings(&settings.crm.servicenow, region)?
                .with_budget(budget(kind.as_str())),
        ),
        CrmAdapterKind::Freshdesk => Arc::new(
            freshdesk::FreshdeskCrm::from_settings(&settings.crm.freshdesk, region)?
                .with_budget(budget(kind.as_str())),
        ),
        CrmAdapterKind::Zendesk => Arc::new(
            zendesk::ZendeskCrm::from_settings(&settings.crm.zendesk, region)?
                .with_budget(budget(kind.as_str())),
        ),
        CrmAdapterKind::Hubspot => Arc::new(
            hubspot::HubSpotCrm::from_settings(&settings.crm.hubspot, region)?
                .with_budget(budget(kind.as_str())),
        ),
    })
}

/// The configured sources in chain order (`crm.sources`, or `crm.adapter`), each behind its own
/// breaker, sharing one answer cache (`[cache]`); every budget and cache per process.
pub fn from_settings(settings: &Settings) -> anyhow::Result<CrmSources> {
    build(settings, None)
}

/// As [`from_settings`], with what `[crm.shared]` puts in PostgreSQL kept in `postgres` (the
/// queue's pool; `None` with the SQLite queue, which validation allows only with nothing
/// shared).
pub async fn from_settings_shared(
    settings: &Settings,
    postgres: Option<sqlx::PgPool>,
) -> anyhow::Result<CrmSources> {
    if !settings.crm.shared.uses_postgres() {
        return build(settings, None);
    }
    let Some(pool) = postgres else {
        anyhow::bail!("crm.shared: \"postgres\" needs queue.backend = \"postgres\"");
    };
    let store = shared::SharedStore::open(pool)
        .await
        .map_err(|e| anyhow::anyhow!("crm.shared: cannot make its tables: {e}"))?;
    build(settings, Some(store))
}

fn build(settings: &Settings, store: Option<shared::SharedStore>) -> anyhow::Result<CrmSources> {
    use crate::config::SharedScope;
    let shared = &settings.crm.shared;
    let budgets = match &store {
        Some(store) if shared.budget == SharedScope::Postgres => upstream::Budgets::Shared {
            store: store.clone(),
            margin: shared.budget_margin(),
        },
        _ => upstream::Budgets::Process,
    };
    let mut cache = cache::AnswerCache::from_settings(&settings.cache);
    if let Some(store) = store.filter(|_| shared.cache == SharedScope::Postgres) {
        cache = cache.with_shared(Arc::new(shared::cache::SharedCache::from_settings(
            store, shared,
        )));
    }
    let sources = settings
        .crm
        .source_kinds()
        .into_iter()
        .map(|kind| {
            let built = adapter(kind, settings, &budgets)
                .map_err(|e| e.context(format!("building the {} CRM source", kind.as_str())))?;
            Ok(source::Source::from_settings(
                built,
                settings.crm.common(kind),
                cache.clone(),
            ))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(CrmSources::new(
        sources,
        chain::ChainSettings::from_settings(&settings.crm),
    ))
}
