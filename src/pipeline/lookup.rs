//! The synchronous lookup a data action waits for: find the customer (cached), never touching
//! Genesys, and answer within a deadline whatever the CRM does. A lookup that outlives the
//! deadline still completes in the background and warms the cache for the next caller.

use std::collections::BTreeMap;
use std::time::Duration;
use tracing::Instrument as _;

use super::Pipeline;
use crate::crm::{CrmAnswer, CrmError, MatchQuality, Verdict};
use crate::domain::{CustomerKeys, KeyKind};
use crate::metrics;

/// Why a lookup found no customer: the answer's `reason` and the `result` label of
/// `attrsync_lookup_results_total` (which says `found` otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupReason {
    /// The CRM does not know any of the keys.
    NotFound,
    /// Several records matched and `crm.match_policy = "refuse"`.
    Ambiguous,
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
    pub const ALL: [LookupReason; 6] = [
        LookupReason::NotFound,
        LookupReason::Ambiguous,
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
            LookupReason::Ambiguous => "ambiguous",
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
    /// Records that matched (the competing ones); 0 unless found or ambiguous.
    pub match_count: usize,
    pub match_quality: Option<MatchQuality>,
    /// The chosen record's type and id (`None` unless found).
    pub record_type: Option<String>,
    pub record_id: Option<String>,
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
            match_count: 0,
            match_quality: None,
            record_type: None,
            record_id: None,
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
        let lookup = tokio::spawn(
            async move { pipeline.crm.lookup(&keys).await }.instrument(tracing::Span::current()),
        );
        match tokio::time::timeout(deadline, lookup).await {
            Ok(Ok(answer)) => self.answer(answer),
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

    fn answer(&self, answer: CrmAnswer) -> LookupAnswer {
        match answer.verdict {
            Verdict::Found { count, quality } => {
                let chosen = answer.chosen;
                LookupAnswer {
                    reason: None,
                    matched_by: answer.matched,
                    fields: answer
                        .record
                        .map(|r| self.policy.mapped_fields(&r))
                        .unwrap_or_default(),
                    match_count: count,
                    match_quality: Some(quality),
                    record_type: chosen.as_ref().map(|c| c.record_type.clone()),
                    record_id: chosen.map(|c| c.record_id),
                }
            }
            Verdict::NotFound => LookupAnswer::missing(LookupReason::NotFound),
            Verdict::Ambiguous { count } => LookupAnswer {
                match_count: count,
                ..LookupAnswer::missing(LookupReason::Ambiguous)
            },
            Verdict::Failed(CrmError::CircuitOpen { .. }) => {
                LookupAnswer::missing(LookupReason::CircuitOpen)
            }
            Verdict::Failed(e) => {
                tracing::warn!(error = %e, "CRM lookup failed");
                LookupAnswer::missing(LookupReason::CrmError)
            }
        }
    }
}
