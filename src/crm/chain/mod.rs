//! The sources in chain order ([`CrmSources`]): a lookup asks them as `crm.chain_mode` says,
//! trying the keys in `crm.key_order` within each, lets the match policy decide on each
//! source's candidates, and answers a [`CrmAnswer`]: the verdict, the chosen (or merged)
//! record, the match details and what each source did ([`SourceReport`], what a journal or an
//! explain reads).
//!
//! `first_hit`: the first source whose candidates survive the policy decides (an ambiguous
//! answer there stays ambiguous; later sources are not asked). A source that fails is skipped
//! and reported; if no later source finds the customer the verdict is the failure, never a
//! definitive "not found" (that source may have known the caller).
//! `merge`: every source is asked; each decides on its own candidates; fields are merged, the
//! earlier source winning each field; the record type, id and quality are the first finding
//! source's (if it was ambiguous, the answer is). A failure makes the verdict a failure only
//! when no source found anything.

use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument as _;

use super::cache::CacheUse;
use super::candidate::{Candidate, CandidateSummary, MatchQuality};
use super::grade::{count_dropped, BELOW_MINIMUM};
use super::policy::{below_minimum, decide, shortlist, Decision};
use super::source::Source;
use super::{CrmError, CrmRecord, CustomerKey, KeyKind};
use crate::config::{ChainMode, CrmSettings, MatchSettings};

/// What a lookup over every source concluded.
#[derive(Debug, Clone)]
pub enum Verdict {
    Found {
        count: usize,
        quality: MatchQuality,
    },
    NotFound,
    /// Several records matched and `crm.match_policy = "refuse"`.
    Ambiguous {
        count: usize,
    },
    /// No answer can be trusted: retry (events), `crm_error`/`circuit_open` (lookups).
    Failed(CrmError),
}

#[derive(Debug, Clone)]
pub struct CrmAnswer {
    pub verdict: Verdict,
    /// The chosen record's fields (merged over the sources in `merge` mode).
    pub record: Option<Arc<CrmRecord>>,
    /// The kind of key that found it.
    pub matched: Option<KeyKind>,
    pub chosen: Option<CandidateSummary>,
    /// `type/id` of the records that competed (the deciding source's shortlist), at most
    /// `crm.max_candidate_ids`.
    pub candidate_ids: Vec<String>,
    /// One report per source and key asked, and per source skipped, in order.
    pub sources: Vec<SourceReport>,
}

impl CrmAnswer {
    /// Records that matched: the shortlist of the deciding source.
    pub fn match_count(&self) -> usize {
        match &self.verdict {
            Verdict::Found { count, .. } | Verdict::Ambiguous { count } => *count,
            Verdict::NotFound | Verdict::Failed(_) => 0,
        }
    }

    pub fn error(&self) -> Option<&CrmError> {
        match &self.verdict {
            Verdict::Failed(e) => Some(e),
            _ => None,
        }
    }
}

/// What one source did for one key (or that it was not asked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceReport {
    pub source: &'static str,
    /// `None` for a source that was skipped.
    pub key: Option<KeyKind>,
    pub cache: CacheUse,
    pub outcome: SourceOutcome,
    /// Candidates the source returned (graded by the adapter), before the policy.
    pub candidates: usize,
    pub ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceOutcome {
    Found,
    NotFound,
    Ambiguous,
    /// `kind` is [`CrmError::kind`].
    Error {
        kind: &'static str,
    },
    /// Not asked: an earlier source decided (`first_hit`).
    Skipped,
}

impl SourceOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceOutcome::Found => "found",
            SourceOutcome::NotFound => "not_found",
            SourceOutcome::Ambiguous => "ambiguous",
            SourceOutcome::Error { .. } => "error",
            SourceOutcome::Skipped => "skipped",
        }
    }
}

/// Readiness of one source, for `/readyz`.
#[derive(Debug)]
pub struct SourceReadiness {
    pub source: &'static str,
    pub ready: Result<(), CrmError>,
    pub circuit: super::breaker::CircuitState,
}

/// How a source is asked: through the cache (filling it), or as a dry run that reads the
/// cache but never fills it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fetch {
    Cached,
    DryRun,
}

/// What one source concluded over the keys.
enum Asked {
    Decided {
        key: KeyKind,
        candidates: Vec<Candidate>,
        decision: Decision,
    },
    NotFound,
    Failed(CrmError),
}

/// How the sources are combined: `[crm]`'s chain and policy settings.
#[derive(Debug, Clone)]
pub struct ChainSettings {
    pub key_order: Vec<KeyKind>,
    pub mode: ChainMode,
    pub matching: MatchSettings,
    pub max_candidate_ids: usize,
}

impl ChainSettings {
    pub fn from_settings(settings: &CrmSettings) -> Self {
        Self {
            key_order: settings.key_order.clone(),
            mode: settings.chain_mode,
            matching: settings.matching(),
            max_candidate_ids: settings.max_candidate_ids,
        }
    }
}

#[derive(Clone)]
pub struct CrmSources {
    inner: Arc<Chain>,
}

struct Chain {
    sources: Vec<Source>,
    settings: ChainSettings,
}

impl CrmSources {
    /// `sources` in chain order, combined as `settings` say.
    pub fn new(sources: Vec<Source>, settings: ChainSettings) -> Self {
        Self {
            inner: Arc::new(Chain { sources, settings }),
        }
    }

    pub fn sources(&self) -> &[Source] {
        &self.inner.sources
    }

    /// The source names in chain order.
    pub fn names(&self) -> Vec<&'static str> {
        self.inner.sources.iter().map(Source::name).collect()
    }

    /// Each source's readiness, in order (adapters' checks are cheap by contract).
    pub async fn readiness(&self) -> Vec<SourceReadiness> {
        let mut out = Vec::with_capacity(self.inner.sources.len());
        for s in &self.inner.sources {
            out.push(SourceReadiness {
                source: s.name(),
                ready: s.ready().await,
                circuit: s.circuit(),
            });
        }
        out
    }

    /// Looks the customer up by `keys` over every source, as `crm.chain_mode` says.
    pub async fn lookup(&self, keys: &[CustomerKey]) -> CrmAnswer {
        self.run(keys, Fetch::Cached).await
    }

    /// The same lookup as a dry run (an explain): each source answers from the cache when it
    /// holds the key, else from the adapter (through the breaker), and nothing fills the cache.
    pub async fn lookup_dry(&self, keys: &[CustomerKey]) -> CrmAnswer {
        self.run(keys, Fetch::DryRun).await
    }

    async fn run(&self, keys: &[CustomerKey], fetch: Fetch) -> CrmAnswer {
        let chain = &self.inner.settings;
        let sources = &self.inner.sources;
        let mut reports = Vec::new();
        let mut failure: Option<CrmError> = None;
        // The first source that decided, and (merge) the fields merged so far.
        let mut decided: Option<(usize, KeyKind, Vec<Candidate>, Decision)> = None;
        let mut merged: Option<CrmRecord> = None;
        for (i, source) in sources.iter().enumerate() {
            if decided.is_some() && chain.mode == ChainMode::FirstHit {
                reports.push(SourceReport {
                    source: source.name(),
                    key: None,
                    cache: CacheUse::None,
                    outcome: SourceOutcome::Skipped,
                    candidates: 0,
                    ms: 0,
                });
                continue;
            }
            match self.ask(source, keys, fetch, &mut reports).await {
                Asked::Failed(e) => {
                    tracing::warn!(source = source.name(), error = %e, "CRM source failed");
                    failure.get_or_insert(e);
                }
                Asked::NotFound => {}
                Asked::Decided {
                    key,
                    candidates,
                    decision,
                } => {
                    if let Decision::Chosen { index, .. } = decision {
                        let earlier_chose = decided
                            .as_ref()
                            .is_none_or(|(.., d)| matches!(d, Decision::Chosen { .. }));
                        if earlier_chose {
                            let record = merged.get_or_insert_with(CrmRecord::new);
                            for (name, value) in &candidates[index].fields {
                                record.entry(name.clone()).or_insert_with(|| value.clone());
                            }
                        }
                    }
                    if decided.is_none() {
                        decided = Some((i, key, candidates, decision));
                    }
                }
            }
        }
        let Some((_, key, candidates, decision)) = decided else {
            return CrmAnswer {
                verdict: failure.map_or(Verdict::NotFound, Verdict::Failed),
                record: None,
                matched: None,
                chosen: None,
                candidate_ids: Vec::new(),
                sources: reports,
            };
        };
        if let Some(e) = failure {
            tracing::info!(error = %e, "a CRM source failed; answering from the others");
        }
        let candidate_ids = shortlist(&candidates, &chain.matching)
            .into_iter()
            .take(chain.max_candidate_ids)
            .map(|i| candidates[i].label())
            .collect();
        let (verdict, chosen, record) = match decision {
            Decision::Chosen {
                index,
                count,
                quality,
            } => (
                Verdict::Found { count, quality },
                Some(candidates[index].summary()),
                merged.map(Arc::new),
            ),
            Decision::Ambiguous { count } => (Verdict::Ambiguous { count }, None, None),
            Decision::NotFound => (Verdict::NotFound, None, None),
        };
        CrmAnswer {
            verdict,
            record,
            matched: Some(key),
            chosen,
            candidate_ids,
            sources: reports,
        }
    }

    /// One source, its keys in `crm.key_order`: the first key whose candidates survive the
    /// policy decides.
    async fn ask(
        &self,
        source: &Source,
        keys: &[CustomerKey],
        fetch: Fetch,
        reports: &mut Vec<SourceReport>,
    ) -> Asked {
        let matching = &self.inner.settings.matching;
        for kind in &self.inner.settings.key_order {
            if !source.serves(*kind) {
                continue;
            }
            for key in keys.iter().filter(|k| k.kind() == *kind) {
                let started = Instant::now();
                let found = match fetch {
                    Fetch::Cached => {
                        let span = tracing::info_span!(
                            "crm.find",
                            source = source.name(),
                            key_kind = kind.as_str()
                        );
                        source.find(key).instrument(span).await
                    }
                    Fetch::DryRun => match source.peek(key).await {
                        Some(cached) => cached.map(|c| (c, CacheUse::Hit)),
                        None => source.find_uncached(key).await.map(|c| (c, CacheUse::Miss)),
                    },
                };
                let ms = started.elapsed().as_millis() as u64;
                let mut report = SourceReport {
                    source: source.name(),
                    key: Some(*kind),
                    cache: CacheUse::None,
                    outcome: SourceOutcome::NotFound,
                    candidates: 0,
                    ms,
                };
                let (candidates, cache) = match found {
                    Ok(found) => found,
                    Err(e) => {
                        report.outcome = SourceOutcome::Error { kind: e.kind() };
                        reports.push(report);
                        return Asked::Failed(e);
                    }
                };
                report.cache = cache;
                report.candidates = candidates.len();
                // A dry run changes no metric.
                if cache != CacheUse::Hit && fetch == Fetch::Cached {
                    count_dropped(
                        source.name(),
                        BELOW_MINIMUM,
                        below_minimum(&candidates, matching),
                    );
                }
                let decision = decide(&candidates, matching);
                report.outcome = match decision {
                    Decision::NotFound => SourceOutcome::NotFound,
                    Decision::Chosen { .. } => SourceOutcome::Found,
                    Decision::Ambiguous { .. } => SourceOutcome::Ambiguous,
                };
                reports.push(report);
                if decision != Decision::NotFound {
                    return Asked::Decided {
                        key: *kind,
                        candidates,
                        decision,
                    };
                }
            }
        }
        Asked::NotFound
    }
}

#[cfg(test)]
mod tests;
