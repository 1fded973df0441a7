//! The CRM answer cache in front of every adapter (moka): found answers live `ttl`, "not found"
//! answers the shorter `not_found_ttl`, the size is bounded, and concurrent lookups of one key
//! share a single CRM call. Errors are never cached.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache;
use moka::Expiry;

use super::breaker::{Breaker, Permit};
use super::{CrmAdapter, CrmError, CrmRecord, CustomerKey, KeyKind};
use crate::config::{CacheSettings, CrmSettings};
use crate::metrics;
use crate::retry::Retryable as _;

/// A cached answer: the record as compact JSON text. A `serde_json::Map` costs about 1.4 KB a
/// record in B-tree nodes; the text is a fifth of that, and parsing it back on a hit takes a
/// couple of microseconds, next to a CRM call saved.
type Answer = Option<Arc<str>>;

struct ByOutcome {
    found: Duration,
    not_found: Duration,
}

impl Expiry<String, Answer> for ByOutcome {
    fn expire_after_create(&self, _: &String, answer: &Answer, _: Instant) -> Option<Duration> {
        Some(if answer.is_some() {
            self.found
        } else {
            self.not_found
        })
    }
}

/// What a lookup over several keys produced.
#[derive(Debug, Clone)]
pub struct LookupResult {
    pub record: Option<Arc<CrmRecord>>,
    /// The kind of key that found the customer.
    pub matched: Option<KeyKind>,
}

#[derive(Clone)]
pub struct CachedCrm {
    adapter: Arc<dyn CrmAdapter>,
    cache: Cache<String, Answer>,
    key_order: Vec<KeyKind>,
    breaker: Arc<Breaker>,
}

impl CachedCrm {
    /// The cache `[cache]` describes, trying keys in `crm.key_order`, behind the breaker
    /// `crm.breaker_*` describes.
    pub fn from_settings(
        crm: &CrmSettings,
        cache: &CacheSettings,
        adapter: Arc<dyn CrmAdapter>,
    ) -> Self {
        Self::new(
            adapter,
            cache,
            crm.key_order.clone(),
            Breaker::new(crm.breaker_failures, crm.breaker_cooldown()),
        )
    }

    pub fn new(
        adapter: Arc<dyn CrmAdapter>,
        settings: &CacheSettings,
        key_order: Vec<KeyKind>,
        breaker: Breaker,
    ) -> Self {
        let cache = Cache::builder()
            .max_capacity(settings.max_entries)
            .expire_after(ByOutcome {
                found: settings.ttl(),
                not_found: settings.not_found_ttl(),
            })
            .build();
        Self {
            adapter,
            cache,
            key_order,
            breaker: Arc::new(breaker),
        }
    }

    pub fn adapter_name(&self) -> &'static str {
        self.adapter.name()
    }

    pub async fn ready(&self) -> Result<(), CrmError> {
        self.adapter.ready().await
    }

    /// Tries `keys` in the configured key order; the first key the CRM knows wins.
    pub async fn lookup(&self, keys: &[CustomerKey]) -> Result<LookupResult, CrmError> {
        for kind in &self.key_order {
            for key in keys.iter().filter(|k| k.kind() == *kind) {
                if let Some(record) = self.find(key).await? {
                    return Ok(LookupResult {
                        record: Some(record),
                        matched: Some(*kind),
                    });
                }
            }
        }
        Ok(LookupResult {
            record: None,
            matched: None,
        })
    }

    async fn find(&self, key: &CustomerKey) -> Result<Option<Arc<CrmRecord>>, CrmError> {
        let adapter = self.adapter.clone();
        let breaker = self.breaker.clone();
        let owned = key.clone();
        let entry = self
            .cache
            .entry(key.cache_key())
            .or_try_insert_with(async move {
                if let Permit::Refused(retry_after) = breaker.permit() {
                    return Err(CrmError::CircuitOpen { retry_after });
                }
                let result = adapter.find(&owned).await;
                match &result {
                    Err(e) if e.is_retryable() => breaker.failed(),
                    _ => breaker.succeeded(),
                }
                let record = result?;
                record
                    .map(|r| {
                        serde_json::to_string(&r)
                            .map(Arc::from)
                            .map_err(|e| CrmError::InvalidResponse(e.to_string()))
                    })
                    .transpose()
            })
            .await
            .map_err(|e: Arc<CrmError>| (*e).clone())?;
        let result = if entry.is_fresh() { "miss" } else { "hit" };
        ::metrics::counter!(metrics::CACHE_LOOKUPS, "result" => result).increment(1);
        entry
            .into_value()
            .map(|text| {
                serde_json::from_str::<CrmRecord>(&text)
                    .map(Arc::new)
                    .map_err(|e| CrmError::InvalidResponse(e.to_string()))
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counting {
        calls: AtomicUsize,
        delay: Duration,
    }

    #[async_trait::async_trait]
    impl CrmAdapter for Counting {
        fn name(&self) -> &'static str {
            "counting"
        }
        async fn find(&self, key: &CustomerKey) -> Result<Option<CrmRecord>, CrmError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            Ok(match key {
                CustomerKey::CustomerId(id) if id == "known" => {
                    let mut r = CrmRecord::new();
                    r.insert("id".into(), "known".into());
                    Some(r)
                }
                _ => None,
            })
        }
        async fn ready(&self) -> Result<(), CrmError> {
            Ok(())
        }
    }

    fn cached(delay: Duration) -> (CachedCrm, Arc<Counting>) {
        let adapter = Arc::new(Counting {
            calls: AtomicUsize::new(0),
            delay,
        });
        let settings = CacheSettings {
            ttl_secs: 300,
            not_found_ttl_secs: 30,
            max_entries: 100,
        };
        (
            CachedCrm::new(
                adapter.clone(),
                &settings,
                vec![KeyKind::CustomerId, KeyKind::Email],
                Breaker::new(0, Duration::from_secs(1)),
            ),
            adapter,
        )
    }

    #[tokio::test]
    async fn concurrent_lookups_of_one_key_make_one_crm_call() {
        let (crm, adapter) = cached(Duration::from_millis(50));
        let keys = [CustomerKey::CustomerId("known".into())];
        let results = futures::future::join_all((0..50).map(|_| crm.lookup(&keys))).await;
        assert!(results.iter().all(|r| r.as_ref().unwrap().record.is_some()));
        assert_eq!(adapter.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn keys_are_tried_in_the_configured_order_until_one_is_found() {
        let (crm, adapter) = cached(Duration::ZERO);
        let keys = [
            CustomerKey::Email("nobody@example.com".into()),
            CustomerKey::CustomerId("known".into()),
        ];
        let r = crm.lookup(&keys).await.unwrap();
        assert_eq!(r.matched, Some(KeyKind::CustomerId));
        // The customer id came first in the order and hit, so the email was never asked.
        assert_eq!(adapter.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_miss_is_cached_too() {
        let (crm, adapter) = cached(Duration::ZERO);
        let keys = [CustomerKey::CustomerId("unknown".into())];
        assert!(crm.lookup(&keys).await.unwrap().record.is_none());
        assert!(crm.lookup(&keys).await.unwrap().record.is_none());
        assert_eq!(adapter.calls.load(Ordering::SeqCst), 1);
    }
}
