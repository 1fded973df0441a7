//! CRM adapters: one small trait, its errors, and the choice of adapter made once from
//! configuration. The keys an adapter is asked about are `domain::CustomerKey` (re-exported
//! here); the cache and circuit breaker in front of every adapter are `cache` and `breaker`.

pub mod breaker;
pub mod cache;
pub mod dynamics;
pub mod file;
pub mod freshdesk;
pub mod http;
pub mod hubspot;
pub mod salesforce;
pub mod servicenow;
pub mod vendor;
pub mod zendesk;

use std::sync::Arc;
use std::time::Duration;

use crate::config::{CrmAdapterKind, Settings};
use crate::retry::Retryable;

pub use crate::domain::{CustomerKey, KeyKind};

/// A customer as the CRM returned it: a JSON object, flattened and mapped later by the merge
/// policy.
pub type CrmRecord = serde_json::Map<String, serde_json::Value>;

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
}

impl Retryable for CrmError {
    fn is_retryable(&self) -> bool {
        match self {
            CrmError::Status { status, .. } => matches!(*status, 408 | 429 | 500..=599),
            CrmError::Timeout | CrmError::Connect(_) | CrmError::CircuitOpen { .. } => true,
            CrmError::InvalidResponse(_) | CrmError::Unavailable(_) => false,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            CrmError::Status { retry_after, .. } => *retry_after,
            CrmError::CircuitOpen { retry_after } => Some(*retry_after),
            _ => None,
        }
    }
}

#[async_trait::async_trait]
pub trait CrmAdapter: Send + Sync {
    /// A short, fixed name for logs and metric labels.
    fn name(&self) -> &'static str;

    /// `Ok(None)` means the CRM does not know this key; it is not an error.
    async fn find(&self, key: &CustomerKey) -> Result<Option<CrmRecord>, CrmError>;

    /// Whether the adapter can serve lookups (the readiness check). Must be cheap.
    async fn ready(&self) -> Result<(), CrmError>;
}

/// Builds the configured adapter.
pub fn from_settings(settings: &Settings) -> anyhow::Result<Arc<dyn CrmAdapter>> {
    Ok(match settings.crm.adapter {
        CrmAdapterKind::File => Arc::new(file::FileCrm::from_settings(
            &settings.crm.file,
            settings.phone.default_region,
        )?),
        CrmAdapterKind::Http => Arc::new(http::HttpCrm::from_settings(&settings.crm.http)?),
    })
}
