//! The synchronous lookup a data action waits for: find the customer (cached), never touching
//! Genesys, and answer within a deadline whatever the CRM does. A lookup that outlives the
//! deadline still completes in the background and warms the cache for the next caller.

use std::collections::BTreeMap;
use std::time::Duration;

use super::Pipeline;
use crate::crm::CrmError;
use crate::domain::{CustomerKeys, KeyKind};
use crate::metrics;

/// Why a lookup found no customer: the answer's `reason` and the `result` label of
/// `attrsync_lookup_results_total` (which says `found` otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupReason {
    /// The CRM does not know any of the keys.
    NotFound,
    /// The CRM was slower than `lookup.deadline_ms`.
    Timeout,
    /// The CRM failed.
    CrmError,
    /// The CRM failed repeatedly and is being left alone for now.
    CircuitOpen,
    /// The request carried nothing to look the customer up by.
    NoKey,
}

impl LookupReason {
    pub const ALL: [LookupReason; 5] = [
        LookupReason::NotFound,
        LookupReason::Timeout,
        LookupReason::CrmError,
        LookupReason::CircuitOpen,
        LookupReason::NoKey,
    ];

    /// The `result` label of a found customer.
    pub const FOUND: &'static str = "found";

    pub fn as_str(self) -> &'static str {
        match self {
            LookupReason::NotFound => "not_found",
            LookupReason::Timeout => "timeout",
            LookupReason::CrmError => "crm_error",
            LookupReason::CircuitOpen => "circuit_open",
            LookupReason::NoKey => "no_key",
        }
    }
}

/// What a lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupAnswer {
    /// `None` when the customer was found.
    pub reason: Option<LookupReason>,
    /// The kind of key that found the customer.
    pub matched_by: Option<KeyKind>,
    /// The customer's fields as `[merge]` maps them (without the attribute prefix); empty
    /// unless found.
    pub fields: BTreeMap<String, String>,
}

impl LookupAnswer {
    pub fn found(&self) -> bool {
        self.reason.is_none()
    }

    fn missing(reason: LookupReason) -> Self {
        LookupAnswer {
            reason: Some(reason),
            matched_by: None,
            fields: BTreeMap::new(),
        }
    }
}

impl Pipeline {
    /// Looks the customer up by `keys` and answers within `deadline`, counting the result.
    pub async fn answer_lookup(
        self: &std::sync::Arc<Self>,
        keys: &CustomerKeys,
        deadline: Duration,
    ) -> LookupAnswer {
        let answer = if keys.is_empty() {
            LookupAnswer::missing(LookupReason::NoKey)
        } else {
            self.lookup_within(keys, deadline).await
        };
        let result = answer
            .reason
            .map_or(LookupReason::FOUND, LookupReason::as_str);
        ::metrics::counter!(metrics::LOOKUP_RESULTS, "result" => result).increment(1);
        answer
    }

    async fn lookup_within(
        self: &std::sync::Arc<Self>,
        keys: &CustomerKeys,
        deadline: Duration,
    ) -> LookupAnswer {
        let pipeline = self.clone();
        let keys: Vec<_> = keys.iter().collect();
        // Spawned, so that a lookup outliving the deadline still completes and fills the cache.
        let lookup = tokio::spawn(async move { pipeline.crm.lookup(&keys).await });
        match tokio::time::timeout(deadline, lookup).await {
            Ok(Ok(Ok(result))) => match result.record {
                Some(record) => LookupAnswer {
                    reason: None,
                    matched_by: result.matched,
                    fields: self.policy.mapped_fields(&record),
                },
                None => LookupAnswer::missing(LookupReason::NotFound),
            },
            Ok(Ok(Err(CrmError::CircuitOpen { .. }))) => {
                LookupAnswer::missing(LookupReason::CircuitOpen)
            }
            Ok(Ok(Err(e))) => {
                tracing::warn!(error = %e, "CRM lookup failed");
                LookupAnswer::missing(LookupReason::CrmError)
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "CRM lookup task failed");
                LookupAnswer::missing(LookupReason::CrmError)
            }
            Err(_) => {
                tracing::warn!(
                    deadline_ms = deadline.as_millis() as u64,
                    "CRM lookup exceeded the deadline"
                );
                LookupAnswer::missing(LookupReason::Timeout)
            }
        }
    }
}
