//! The calls a source makes, governed by its section's settings: [`Upstream::call`] runs an
//! operation under the source's retry policy, each attempt waiting for the rate budget and cut
//! off at the per-attempt timeout; [`Upstream::send`] sends one HTTP request and records it
//! (`attrsync_upstream_*` with the `source` label); [`http_client`] is the reqwest client every
//! HTTP adapter starts from (timeouts, user agent, no redirects). [`Budgets`] is where each
//! source's budget is chosen from `crm.shared.budget`: this process's, or the deployment's.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::budget::{CallBudget, LocalBudget};
use super::shared::budget::SharedBudget;
use super::shared::SharedStore;
use super::CrmError;
use crate::budget::RateBudget;
use crate::config::SourceSettings;
use crate::metrics;
use crate::retry::RetryPolicy;

/// Where the sources' rate budgets live, chosen once from `crm.shared.budget`.
#[derive(Clone)]
pub enum Budgets {
    /// Each process has its own (governor).
    Process,
    /// One per source for the whole deployment, in the queue's PostgreSQL database, its slots
    /// spaced for calls up to `margin` late (`crm.shared.budget_margin_ms`).
    Shared {
        store: SharedStore,
        margin: Duration,
    },
}

impl Budgets {
    /// The budget `source`'s calls wait on, as its section's `settings` describe it.
    pub fn for_source(
        &self,
        source: &'static str,
        settings: &SourceSettings,
    ) -> Arc<dyn CallBudget> {
        match self {
            Budgets::Process => Arc::new(LocalBudget::from_settings(source, settings)),
            Budgets::Shared { store, margin } => Arc::new(SharedBudget::from_settings(
                store.clone(),
                source,
                settings,
                *margin,
            )),
        }
    }
}

pub struct Upstream {
    source: &'static str,
    retry: RetryPolicy,
    budget: Arc<dyn CallBudget>,
    timeout: Duration,
}

impl Upstream {
    /// The calls of `source` as its section's `settings` describe them, with this process's
    /// budget ([`Upstream::with_budget`] puts another in its place).
    pub fn from_settings(source: &'static str, settings: &SourceSettings) -> Self {
        Self::new(
            source,
            settings.retry(),
            Arc::new(LocalBudget::from_settings(source, settings)),
            settings.timeout(),
        )
    }

    pub fn new(
        source: &'static str,
        retry: RetryPolicy,
        budget: Arc<dyn CallBudget>,
        timeout: Duration,
    ) -> Self {
        Self {
            source,
            retry,
            budget,
            timeout,
        }
    }

    /// The same calls, waiting on `budget` (the one `Budgets` chose).
    pub fn with_budget(mut self, budget: Arc<dyn CallBudget>) -> Self {
        self.budget = budget;
        self
    }

    /// This process's budget of one limiter: for tests and adapters without settings.
    pub fn local_budget(budget: RateBudget) -> Arc<dyn CallBudget> {
        Arc::new(OneLimiter(budget))
    }

    pub fn source(&self) -> &'static str {
        self.source
    }

    /// Runs `attempt` until it succeeds, fails for good, or the retries run out (a
    /// `Retry-After` over `max_retry_after_secs` ends them). Each attempt first waits for the
    /// rate budget, then gets `timeout_ms`.
    pub async fn call<T, F, Fut>(
        &self,
        operation: &'static str,
        mut attempt: F,
    ) -> Result<T, CrmError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, CrmError>>,
    {
        let source = self.source;
        self.retry
            .run(
                || {
                    let next = attempt();
                    async move {
                        self.budget.acquire().await?;
                        tokio::time::timeout(self.timeout, next)
                            .await
                            .unwrap_or(Err(CrmError::Timeout))
                    }
                },
                |e, wait| {
                    metrics::crm_retry(source, operation);
                    tracing::warn!(
                        source,
                        operation,
                        error = %e,
                        wait_ms = wait.as_millis() as u64,
                        "retrying a CRM call"
                    );
                },
            )
            .await
    }

    /// Sends `request` once and records it; a transport failure becomes `Timeout` or
    /// `Connect` (without the URL, which may hold the key). The status is the caller's to read.
    pub async fn send(
        &self,
        operation: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, CrmError> {
        let started = tokio::time::Instant::now();
        // The event's trace goes on in the CRM (W3C Trace Context), when traces are exported.
        let request = match crate::telemetry::traceparent() {
            Some(parent) => request.header("traceparent", parent),
            None => request,
        };
        match request.send().await {
            Ok(response) => {
                metrics::crm_call(
                    self.source,
                    operation,
                    Some(response.status().as_u16()),
                    started.elapsed(),
                );
                Ok(response)
            }
            Err(e) => {
                metrics::crm_call(self.source, operation, None, started.elapsed());
                Err(if e.is_timeout() {
                    CrmError::Timeout
                } else {
                    CrmError::Connect(e.without_url().to_string())
                })
            }
        }
    }
}

/// One in-process limiter as a [`CallBudget`].
struct OneLimiter(RateBudget);

#[async_trait::async_trait]
impl CallBudget for OneLimiter {
    async fn acquire(&self) -> Result<(), CrmError> {
        self.0.acquire().await;
        Ok(())
    }
}

/// The client builder every HTTP adapter starts from: `settings`' timeouts, attrsync's user
/// agent, and no redirects (a lookup must not be sent to a host nobody configured).
pub fn http_client(settings: &SourceSettings) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .timeout(settings.timeout())
        .connect_timeout(settings.connect_timeout())
        .user_agent(concat!("attrsync/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn upstream(retries: usize, timeout_ms: u64) -> Upstream {
        Upstream::new(
            "test",
            RetryPolicy {
                max_retries: retries,
                base_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(5),
                max_retry_after: Duration::from_secs(1),
            },
            Upstream::local_budget(RateBudget::for_source("crm", "test", 0, 1)),
            Duration::from_millis(timeout_ms),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn an_attempt_that_outlives_the_timeout_fails_as_a_timeout_and_is_retried() {
        let calls = AtomicUsize::new(0);
        let result: Result<(), CrmError> = upstream(2, 100)
            .call("lookup", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(10)).await;
                Ok(())
            })
            .await;
        assert!(matches!(result, Err(CrmError::Timeout)));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_that_would_repeat_is_not_retried() {
        let calls = AtomicUsize::new(0);
        let result: Result<(), CrmError> = upstream(3, 100)
            .call("lookup", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(CrmError::Auth("invalid_client".into()))
            })
            .await;
        assert!(matches!(result, Err(CrmError::Auth(_))));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_limited_attempt_is_retried_after_the_wait_it_was_given() {
        let calls = AtomicUsize::new(0);
        let started = tokio::time::Instant::now();
        let result = upstream(2, 100)
            .call("lookup", || async {
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    Err(CrmError::RateLimited {
                        retry_after: Some(Duration::from_millis(700)),
                    })
                } else {
                    Ok(7)
                }
            })
            .await;
        assert_eq!(result.ok(), Some(7));
        assert!(started.elapsed() >= Duration::from_millis(700));
    }
}
