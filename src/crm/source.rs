//! A [`Source`]: one configured adapter behind its own circuit breaker, answering through the
//! shared answer cache with its own TTLs. (Its timeout, retries and rate budget are per call,
//! so they live with the calls: `crm::upstream`.) Three ways to ask it: [`Source::find`] (cached,
//! single flight), [`Source::peek`] (the cache only) and [`Source::find_uncached`] (the adapter
//! through the breaker, filling nothing): the last two are for an explain.

use std::sync::Arc;

use super::breaker::{Breaker, CircuitState, Permit};
use super::cache::{AnswerCache, CacheUse, Ttls};
use super::candidate::Candidate;
use super::{CrmAdapter, CrmError, CustomerKey, KeyKind};
use crate::config::SourceSettings;
use crate::retry::Retryable as _;

#[derive(Clone)]
pub struct Source {
    adapter: Arc<dyn CrmAdapter>,
    breaker: Arc<Breaker>,
    cache: AnswerCache,
    ttls: Ttls,
}

impl Source {
    /// `adapter` with the breaker and TTLs its section's `settings` describe, answering through
    /// `cache`.
    pub fn from_settings(
        adapter: Arc<dyn CrmAdapter>,
        settings: &SourceSettings,
        cache: AnswerCache,
    ) -> Self {
        let breaker = Breaker::new(
            adapter.kind(),
            settings.breaker_failures,
            settings.breaker_cooldown(),
        );
        let ttls = Ttls {
            found: settings.cache_ttl(),
            not_found: settings.not_found_ttl(),
        };
        Self::new(adapter, breaker, cache, ttls)
    }

    pub fn new(
        adapter: Arc<dyn CrmAdapter>,
        breaker: Breaker,
        cache: AnswerCache,
        ttls: Ttls,
    ) -> Self {
        Self {
            adapter,
            breaker: Arc::new(breaker),
            cache,
            ttls,
        }
    }

    /// The source's name: its adapter's kind, the `source` label.
    pub fn name(&self) -> &'static str {
        self.adapter.kind()
    }

    /// Whether the adapter looks up keys of `kind` at all.
    pub fn serves(&self, kind: KeyKind) -> bool {
        self.adapter.key_kinds().contains(&kind)
    }

    pub fn circuit(&self) -> CircuitState {
        self.breaker.state()
    }

    pub async fn ready(&self) -> Result<(), CrmError> {
        self.adapter.ready().await
    }

    /// The candidates for `key`, from the cache or the adapter (through the breaker).
    pub async fn find(&self, key: &CustomerKey) -> Result<(Vec<Candidate>, CacheUse), CrmError> {
        self.cache
            .get_or_fetch(self.name(), key, self.ttls, self.find_uncached(key))
            .await
    }

    /// What the cache holds for `key`, asking nothing.
    pub async fn peek(&self, key: &CustomerKey) -> Option<Result<Vec<Candidate>, CrmError>> {
        self.cache.peek(self.name(), key).await
    }

    /// The adapter's answer through the breaker, without the cache.
    pub async fn find_uncached(&self, key: &CustomerKey) -> Result<Vec<Candidate>, CrmError> {
        if let Permit::Refused(retry_after) = self.breaker.permit() {
            return Err(CrmError::CircuitOpen { retry_after });
        }
        let result = self.adapter.find(key).await;
        match &result {
            Err(e) => match e.opens_circuit_for() {
                Some(duration) => self.breaker.trip(duration),
                // Our own budget or its database, not the CRM: the breaker is left alone.
                None if matches!(e, CrmError::OverBudget { .. } | CrmError::SharedState(_)) => {}
                None if e.is_retryable() => self.breaker.failed(),
                // A refusal the CRM will repeat (bad credentials, a malformed answer) is not
                // a CRM in trouble: leaving it alone would not help.
                None => self.breaker.succeeded(),
            },
            Ok(_) => self.breaker.succeeded(),
        }
        let mut candidates = result?;
        // The adapter names itself; the contract says so, the cache relies on it.
        for c in &mut candidates {
            c.source = self.name();
        }
        Ok(candidates)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::crm::{CrmRecord, MatchQuality};

    struct Scripted {
        calls: AtomicUsize,
        answer: fn() -> Result<Vec<Candidate>, CrmError>,
    }

    #[async_trait::async_trait]
    impl CrmAdapter for Scripted {
        fn kind(&self) -> &'static str {
            "scripted"
        }
        fn key_kinds(&self) -> &[KeyKind] {
            &[KeyKind::CustomerId]
        }
        async fn find(&self, _: &CustomerKey) -> Result<Vec<Candidate>, CrmError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            (self.answer)()
        }
        async fn ready(&self) -> Result<(), CrmError> {
            Ok(())
        }
    }

    fn source(
        answer: fn() -> Result<Vec<Candidate>, CrmError>,
        failures: u32,
    ) -> (Source, Arc<Scripted>) {
        let adapter = Arc::new(Scripted {
            calls: AtomicUsize::new(0),
            answer,
        });
        let s = Source::new(
            adapter.clone(),
            Breaker::new("scripted", failures, Duration::from_secs(60)),
            AnswerCache::new(10),
            Ttls {
                found: Duration::from_secs(60),
                not_found: Duration::from_secs(60),
            },
        );
        (s, adapter)
    }

    fn key() -> CustomerKey {
        CustomerKey::CustomerId("C1".into())
    }

    #[tokio::test]
    async fn candidates_carry_the_sources_name_whatever_the_adapter_wrote() {
        let (s, _) = source(
            || {
                Ok(vec![Candidate {
                    source: "",
                    record_type: "customer".into(),
                    record_id: "C1".into(),
                    matched_field: "id".into(),
                    quality: MatchQuality::Exact,
                    last_modified: None,
                    fields: CrmRecord::new(),
                }])
            },
            0,
        );
        let (found, _) = s.find(&key()).await.unwrap();
        assert_eq!(found[0].source, "scripted");
        assert!(s.serves(KeyKind::CustomerId) && !s.serves(KeyKind::Phone));
    }

    #[tokio::test]
    async fn repeated_transient_failures_open_the_circuit_and_stop_the_calls() {
        let (s, adapter) = source(|| Err(CrmError::Timeout), 2);
        for _ in 0..2 {
            assert!(matches!(s.find(&key()).await, Err(CrmError::Timeout)));
        }
        assert_eq!(s.circuit(), CircuitState::Open);
        assert!(matches!(
            s.find(&key()).await,
            Err(CrmError::CircuitOpen { .. })
        ));
        assert_eq!(adapter.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_spent_allocation_opens_the_circuit_at_once() {
        let (s, adapter) = source(
            || {
                Err(CrmError::Quota {
                    retry_after: Duration::from_secs(3600),
                })
            },
            0,
        );
        assert!(matches!(s.find(&key()).await, Err(CrmError::Quota { .. })));
        assert_eq!(s.circuit(), CircuitState::Open);
        assert!(matches!(
            s.find_uncached(&key()).await,
            Err(CrmError::CircuitOpen { retry_after }) if retry_after > Duration::from_secs(3000)
        ));
        assert_eq!(adapter.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn refusals_that_would_repeat_do_not_open_the_circuit() {
        let (s, _) = source(|| Err(CrmError::Auth("invalid_client".into())), 1);
        for _ in 0..3 {
            assert!(matches!(s.find(&key()).await, Err(CrmError::Auth(_))));
        }
        assert_eq!(s.circuit(), CircuitState::Closed);
    }

    #[tokio::test]
    async fn the_uncached_path_fills_nothing() {
        let (s, adapter) = source(|| Ok(vec![]), 0);
        s.find_uncached(&key()).await.unwrap();
        assert!(s.peek(&key()).await.is_none());
        s.find(&key()).await.unwrap();
        assert!(s.peek(&key()).await.is_some());
        assert_eq!(adapter.calls.load(Ordering::SeqCst), 2);
    }
}
