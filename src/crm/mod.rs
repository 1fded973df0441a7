//! CRM adapters: one small trait, the customer keys it is asked about, its errors, and the choice
//! of adapter made once from configuration. The cache in front of every adapter is in `cache`.

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

use crate::config::{CrmAdapterKind, KeyKind, Settings};
use crate::phone::CallerNumber;
use crate::retry::Retryable;

/// A customer as the CRM returned it: a JSON object, flattened and mapped later by the merge
/// policy.
pub type CrmRecord = serde_json::Map<String, serde_json::Value>;

/// One way of identifying the customer, as handed to an adapter.
#[derive(Debug, Clone)]
pub enum CustomerKey {
    CustomerId(String),
    ExternalContactId(String),
    Phone(CallerNumber),
    Email(String),
}

impl CustomerKey {
    pub fn kind(&self) -> KeyKind {
        match self {
            CustomerKey::CustomerId(_) => KeyKind::CustomerId,
            CustomerKey::ExternalContactId(_) => KeyKind::ExternalContactId,
            CustomerKey::Phone(_) => KeyKind::Phone,
            CustomerKey::Email(_) => KeyKind::Email,
        }
    }

    /// Cache identity: a phone number in any notation maps to one entry.
    pub fn cache_key(&self) -> String {
        match self {
            CustomerKey::CustomerId(id) => format!("id:{id}"),
            CustomerKey::ExternalContactId(id) => format!("ext:{id}"),
            CustomerKey::Phone(n) => format!("phone:{}", n.canonical()),
            CustomerKey::Email(e) => format!("email:{}", e.to_lowercase()),
        }
    }
}

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
    let region = crate::phone::parse_region(&settings.phone.default_region)
        .map_err(|e| anyhow::anyhow!("phone.default_region: {e}"))?;
    Ok(match settings.crm.adapter {
        CrmAdapterKind::File => Arc::new(file::FileCrm::load(&settings.crm.file, region)?),
        CrmAdapterKind::Http => Arc::new(http::HttpCrm::new(&settings.crm.http)?),
    })
}
