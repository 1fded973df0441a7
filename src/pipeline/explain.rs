//! The dry run behind `POST /admin/explain`: for the customer keys an operator gives, which keys
//! and notations would be tried, what each CRM source answers (from the cache when it holds the
//! key, else from the adapter; the cache is never filled), which record the match policy picks,
//! and the exact patch `merge::plan` would write onto a participant with no attributes yet.
//! Nothing is written to Genesys.

use serde::Serialize;

use super::journey::describe_key;
use super::{matching, Pipeline};
use crate::crm::{SourceOutcome, Verdict};
use crate::domain::{CustomerKey, CustomerKeys, KeyKind};
use crate::merge;
use crate::phone::Notation;
use crate::redact::RedactMode;

/// What a dry run found.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    /// The keys tried, in `crm.key_order` within each source; values redacted per
    /// `telemetry.redact`.
    pub keys: Vec<TriedKey>,
    /// What each source answered, per key, in chain order.
    pub sources: Vec<SourceAnswer>,
    pub decision: ExplainedDecision,
    /// The attributes the PATCH would carry (names with the prefix, and their values).
    pub patch: merge::Attributes,
    /// Always `false`: an explain writes nothing.
    pub written: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TriedKey {
    pub kind: KeyKind,
    /// For a phone number, the notations a template-driven source (`crm.http.phone_notations`)
    /// searches in, each redacted; vendor adapters choose their own notations (see each
    /// adapter's module documentation).
    pub notations: Vec<ShownNotation>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ShownNotation {
    pub notation: String,
    pub value: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceAnswer {
    pub source: &'static str,
    pub key: Option<KeyKind>,
    /// `hit` (answered from the cache), `miss` (asked the adapter; the cache was not filled) or
    /// `none` (skipped).
    pub cache: &'static str,
    pub answer: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
    pub candidates: usize,
    pub ms: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExplainedDecision {
    /// `found`, `not_found`, `ambiguous` or `failed`.
    pub verdict: &'static str,
    pub match_count: usize,
    pub matched_by: Option<KeyKind>,
    pub record_type: Option<String>,
    pub record_id: Option<String>,
    pub candidate_ids: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Pipeline {
    /// The dry run for `keys`; `notations` are the phone notations to show (the template-driven
    /// source's), `redact` how key values are shown.
    pub async fn explain(
        &self,
        keys: &CustomerKeys,
        notations: &[Notation],
        redact: RedactMode,
    ) -> Explanation {
        let tried: Vec<CustomerKey> = keys.iter().collect();
        let answer = self.crm.lookup_dry(&tried).await;
        let sources = answer
            .sources
            .iter()
            .map(|r| SourceAnswer {
                source: r.source,
                key: r.key,
                cache: r.cache.as_str(),
                answer: r.outcome.as_str(),
                error: match r.outcome {
                    SourceOutcome::Error { kind } => Some(kind),
                    _ => None,
                },
                candidates: r.candidates,
                ms: r.ms,
            })
            .collect();
        let (verdict, error) = match &answer.verdict {
            Verdict::Found { .. } => ("found", None),
            Verdict::NotFound => ("not_found", None),
            Verdict::Ambiguous { .. } => ("ambiguous", None),
            Verdict::Failed(e) => ("failed", Some(e.to_string())),
        };
        let mut extra = matching::match_attributes(&answer, self.match_details)
            .into_iter()
            .map(|(name, value)| (self.policy.attribute_name(&name), value))
            .collect::<merge::Attributes>();
        // A failed lookup writes nothing: the event would be retried.
        let patch = if error.is_some() {
            extra.clear();
            merge::Attributes::new()
        } else {
            merge::plan(
                &self.policy,
                answer.record.as_deref(),
                &extra,
                &merge::Attributes::new(),
                chrono::Utc::now(),
            )
            .attributes
        };
        Explanation {
            keys: tried
                .iter()
                .map(|k| shown_key(k, notations, redact))
                .collect(),
            sources,
            decision: ExplainedDecision {
                verdict,
                match_count: answer.match_count(),
                matched_by: answer.matched,
                record_type: answer.chosen.as_ref().map(|c| c.record_type.clone()),
                record_id: answer.chosen.as_ref().map(|c| c.record_id.clone()),
                candidate_ids: answer.candidate_ids.clone(),
                error,
            },
            patch,
            written: false,
        }
    }
}

fn shown_key(key: &CustomerKey, notations: &[Notation], redact: RedactMode) -> TriedKey {
    let CustomerKey::Phone(number) = key else {
        let (kind, notation, value) = describe_key(redact, key);
        return TriedKey {
            kind,
            notations: vec![ShownNotation { notation, value }],
        };
    };
    let wanted = if notations.is_empty() {
        &[Notation::E164][..]
    } else {
        notations
    };
    let mut shown: Vec<ShownNotation> = Vec::new();
    for n in wanted {
        let text = number.notation(*n);
        if shown.iter().any(|s| s.notation == notation_name(*n)) {
            continue;
        }
        shown.push(ShownNotation {
            notation: notation_name(*n),
            value: crate::redact::phone_with(redact, &text),
        });
    }
    TriedKey {
        kind: KeyKind::Phone,
        notations: shown,
    }
}

fn notation_name(n: Notation) -> String {
    serde_json::to_value(n)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{n:?}"))
}
