//! The CRM answer cache, one for every source (moka): an entry is one source's graded candidates
//! for one key, kept as long as that source's TTL for its outcome (found, or not found), the
//! size bounded by `cache.max_entries`. Concurrent lookups of one key at one source share a
//! single call. Errors are never cached. [`AnswerCache::peek`] reads without calling anything
//! (for an explain that must not fill the cache). With `crm.shared.cache = "postgres"` a miss
//! here asks the replicas' shared cache (`shared::cache`) before the source, and keeps its
//! answer only as long as the shared row has left.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache;
use moka::Expiry;

use super::candidate::Candidate;
use super::shared::cache::SharedCache;
use super::{CrmError, CustomerKey};
use crate::config::CacheSettings;
use crate::metrics;

/// How long one source's answers are reused; zero for both means not cached at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ttls {
    pub found: Duration,
    pub not_found: Duration,
}

impl Ttls {
    fn caches(&self) -> bool {
        !self.found.is_zero() || !self.not_found.is_zero()
    }

    fn keep(&self, candidates: &[Candidate]) -> Duration {
        if candidates.is_empty() {
            self.not_found
        } else {
            self.found
        }
    }
}

/// Whether an answer came from the cache; `None` when the source is not cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheUse {
    Hit,
    Miss,
    None,
}

impl CacheUse {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheUse::Hit => "hit",
            CacheUse::Miss => "miss",
            CacheUse::None => "none",
        }
    }
}

/// A cached answer: the candidates as compact JSON text. A `serde_json::Map` costs about 1.4 KB
/// a record in B-tree nodes; the text is a fifth of that, and parsing it back on a hit takes a
/// few microseconds, next to a CRM call saved.
#[derive(Clone)]
struct Entry {
    text: Arc<str>,
    keep_for: Duration,
}

struct PerEntry;

impl Expiry<String, Entry> for PerEntry {
    fn expire_after_create(&self, _: &String, entry: &Entry, _: Instant) -> Option<Duration> {
        Some(entry.keep_for)
    }
}

#[derive(Clone)]
pub struct AnswerCache {
    cache: Cache<String, Entry>,
    /// The second level, shared by the replicas.
    shared: Option<Arc<SharedCache>>,
}

impl AnswerCache {
    pub fn from_settings(settings: &CacheSettings) -> Self {
        Self::new(settings.max_entries)
    }

    pub fn new(max_entries: u64) -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(max_entries)
                .expire_after(PerEntry)
                .build(),
            shared: None,
        }
    }

    /// The same cache in front of the replicas' `shared` one.
    pub fn with_shared(mut self, shared: Arc<SharedCache>) -> Self {
        self.shared = Some(shared);
        self
    }

    fn key(source: &str, key: &CustomerKey) -> String {
        format!("{source} {}", key.cache_key())
    }

    /// The cached answer of `source` for `key`, or `fetch`'s (cached as `ttls` say; one fetch
    /// for concurrent callers).
    pub async fn get_or_fetch(
        &self,
        source: &'static str,
        key: &CustomerKey,
        ttls: Ttls,
        fetch: impl Future<Output = Result<Vec<Candidate>, CrmError>>,
    ) -> Result<(Vec<Candidate>, CacheUse), CrmError> {
        if !ttls.caches() {
            return Ok((fetch.await?, CacheUse::None));
        }
        let shared = self.shared.clone();
        let entry = self
            .cache
            .entry(Self::key(source, key))
            .or_try_insert_with(async move {
                if let Some(shared) = shared {
                    let answer = shared
                        .get_or_fetch(source, key, ttls.found, ttls.not_found, fetch)
                        .await?;
                    return Ok(Entry {
                        text: Arc::from(answer.text),
                        keep_for: answer.keep_for,
                    });
                }
                let candidates = fetch.await?;
                let text = serde_json::to_string(&candidates)
                    .map_err(|e| CrmError::InvalidResponse(e.to_string()))?;
                Ok(Entry {
                    text: Arc::from(text),
                    keep_for: ttls.keep(&candidates),
                })
            })
            .await
            .map_err(|e: Arc<CrmError>| (*e).clone())?;
        let used = if entry.is_fresh() {
            CacheUse::Miss
        } else {
            CacheUse::Hit
        };
        ::metrics::counter!(metrics::CACHE_LOOKUPS, "source" => source, "result" => used.as_str())
            .increment(1);
        Ok((read(source, &entry.into_value().text)?, used))
    }

    /// What the cache holds for `source` and `key`, calling nothing and filling nothing.
    pub async fn peek(
        &self,
        source: &'static str,
        key: &CustomerKey,
    ) -> Option<Result<Vec<Candidate>, CrmError>> {
        let entry = self.cache.get(&Self::key(source, key)).await?;
        Some(read(source, &entry.text))
    }
}

fn read(source: &'static str, text: &str) -> Result<Vec<Candidate>, CrmError> {
    let mut candidates: Vec<Candidate> =
        serde_json::from_str(text).map_err(|e| CrmError::InvalidResponse(e.to_string()))?;
    for c in &mut candidates {
        c.source = source;
    }
    Ok(candidates)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crm::{CrmRecord, MatchQuality};
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn ttls(found: u64, not_found: u64) -> Ttls {
        Ttls {
            found: Duration::from_secs(found),
            not_found: Duration::from_secs(not_found),
        }
    }

    fn one() -> Vec<Candidate> {
        vec![Candidate {
            source: "x",
            record_type: "customer".into(),
            record_id: "C1".into(),
            matched_field: "id".into(),
            quality: MatchQuality::Exact,
            last_modified: None,
            fields: CrmRecord::new(),
        }]
    }

    fn key() -> CustomerKey {
        CustomerKey::CustomerId("C1".into())
    }

    #[tokio::test]
    async fn a_second_lookup_is_a_hit_and_carries_the_source() {
        let cache = AnswerCache::new(10);
        let calls = AtomicUsize::new(0);
        for expected in [CacheUse::Miss, CacheUse::Hit] {
            let (found, used) = cache
                .get_or_fetch("http", &key(), ttls(60, 10), async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Ok(one())
                })
                .await
                .unwrap();
            assert_eq!(used, expected);
            assert_eq!(found[0].source, "http");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn sources_do_not_share_entries() {
        let cache = AnswerCache::new(10);
        let (_, used) = cache
            .get_or_fetch("http", &key(), ttls(60, 10), async { Ok(one()) })
            .await
            .unwrap();
        assert_eq!(used, CacheUse::Miss);
        let (found, used) = cache
            .get_or_fetch("file", &key(), ttls(60, 10), async { Ok(vec![]) })
            .await
            .unwrap();
        assert_eq!(used, CacheUse::Miss);
        assert!(found.is_empty());
    }

    #[tokio::test]
    async fn errors_are_not_cached_and_zero_ttls_bypass_the_cache() {
        let cache = AnswerCache::new(10);
        let failed = cache
            .get_or_fetch("http", &key(), ttls(60, 10), async {
                Err(CrmError::Timeout)
            })
            .await;
        assert!(failed.is_err());
        assert!(cache.peek("http", &key()).await.is_none());

        let (_, used) = cache
            .get_or_fetch("file", &key(), ttls(0, 0), async { Ok(one()) })
            .await
            .unwrap();
        assert_eq!(used, CacheUse::None);
        assert!(cache.peek("file", &key()).await.is_none());
    }

    #[tokio::test]
    async fn peek_reads_what_a_lookup_stored() {
        let cache = AnswerCache::new(10);
        assert!(cache.peek("http", &key()).await.is_none());
        cache
            .get_or_fetch("http", &key(), ttls(60, 10), async { Ok(one()) })
            .await
            .unwrap();
        let peeked = cache.peek("http", &key()).await.unwrap().unwrap();
        assert_eq!(peeked[0].record_id, "C1");
        assert_eq!(peeked[0].source, "http");
    }
}
