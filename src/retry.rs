//! Retries for upstream calls: exponential backoff with jitter (backon), a `Retry-After` from the
//! upstream taking the place of the computed delay, and errors deciding for themselves whether
//! another attempt can help.

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable as _};

/// Implemented by upstream errors so the retry loop needs no knowledge of HTTP.
pub trait Retryable {
    /// Whether the same request could succeed later (429, 5xx, timeouts, connection errors).
    fn is_retryable(&self) -> bool;
    /// How long the upstream asked us to wait, if it said.
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

/// The `Retry-After` of an upstream answer, in the delay-seconds form Genesys uses (an HTTP date
/// is ignored: the computed backoff applies then).
pub fn retry_after_header(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_retries: usize,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// A `Retry-After` longer than this ends the loop: holding a worker for minutes would stall
    /// the events behind it, and the caller can schedule the retry itself.
    pub max_retry_after: Duration,
}

impl RetryPolicy {
    /// Runs `op` until it succeeds, fails with a non-retryable error, or the retries run out.
    /// `on_retry` sees each error that is about to be retried and the wait before the next try.
    pub async fn run<T, E, F, Fut>(
        &self,
        op: F,
        mut on_retry: impl FnMut(&E, Duration),
    ) -> Result<T, E>
    where
        E: Retryable,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.base_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.max_retries)
            .with_jitter();
        let max_retry_after = self.max_retry_after;
        op.retry(backoff)
            .sleep(tokio::time::sleep)
            .when(|e: &E| e.is_retryable())
            .adjust(move |e: &E, computed| match (e.retry_after(), computed) {
                // Out of attempts: stop regardless of what the upstream asked.
                (_, None) => None,
                (Some(wait), Some(_)) if wait > max_retry_after => None,
                (Some(wait), Some(_)) => Some(wait),
                (None, computed) => computed,
            })
            .notify(|e, wait| on_retry(e, wait))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Debug)]
    struct Fail {
        retryable: bool,
        after: Option<Duration>,
    }
    impl Retryable for Fail {
        fn is_retryable(&self) -> bool {
            self.retryable
        }
        fn retry_after(&self) -> Option<Duration> {
            self.after
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(100),
            max_retry_after: Duration::from_secs(30),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retryable_errors_are_retried_until_the_budget_runs_out() {
        let calls = AtomicUsize::new(0);
        let r: Result<(), Fail> = policy()
            .run(
                || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err(Fail {
                        retryable: true,
                        after: None,
                    })
                },
                |_, _| {},
            )
            .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_non_retryable_error_is_returned_after_one_attempt() {
        let calls = AtomicUsize::new(0);
        let r: Result<(), Fail> = policy()
            .run(
                || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err(Fail {
                        retryable: false,
                        after: None,
                    })
                },
                |_, _| {},
            )
            .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_replaces_the_computed_backoff() {
        let calls = AtomicUsize::new(0);
        let mut waits = Vec::new();
        let started = tokio::time::Instant::now();
        let r: Result<u8, Fail> = policy()
            .run(
                || async {
                    if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                        Err(Fail {
                            retryable: true,
                            after: Some(Duration::from_secs(7)),
                        })
                    } else {
                        Ok(1)
                    }
                },
                |_, wait| waits.push(wait),
            )
            .await;
        assert_eq!(r.ok(), Some(1));
        assert_eq!(waits, [Duration::from_secs(7)]);
        assert!(started.elapsed() >= Duration::from_secs(7));
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_after_beyond_the_cap_ends_the_loop() {
        let calls = AtomicUsize::new(0);
        let r: Result<(), Fail> = policy()
            .run(
                || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err(Fail {
                        retryable: true,
                        after: Some(Duration::from_secs(600)),
                    })
                },
                |_, _| {},
            )
            .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
