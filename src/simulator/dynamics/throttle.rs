//! Dataverse service protection limits, per user, over a sliding window: number of requests,
//! combined execution time, and concurrent requests (MicrosoftDocs/powerapps-docs
//! `developer/data-platform/api-limits.md`: 6,000 requests and 1,200 s of execution within 300
//! s, 52 concurrent, "per web server"; 429 with `Retry-After` in seconds; hex codes 0x80072322,
//! 0x80072321, 0x80072326 with the messages below; "If the application continues to send such
//! demanding requests, the duration will be extended"). The simulator is one web server.
//!
//! How long `Retry-After` is "will depend on the nature of the operations"; here it is the time
//! until enough of the window has passed for the limit to clear, extended by
//! [`Limits::extension`] for each request sent while blocked.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub window: Duration,
    pub max_requests: usize,
    pub max_execution: Duration,
    pub max_concurrent: usize,
    /// Added to the block for every request that arrives while blocked.
    pub extension: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(300),
            max_requests: 6000,
            max_execution: Duration::from_secs(1200),
            max_concurrent: 52,
            extension: Duration::from_secs(1),
        }
    }
}

/// A 429 to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttled {
    pub code: &'static str,
    pub message: String,
    pub retry_after: Duration,
}

#[derive(Debug, Default)]
struct User {
    requests: VecDeque<Instant>,
    executions: VecDeque<(Instant, Duration)>,
    in_flight: usize,
    blocked: Option<(Instant, &'static str, String)>,
}

#[derive(Debug, Default)]
pub struct ServiceProtection {
    users: HashMap<String, User>,
}

fn requests_message(limits: &Limits) -> String {
    format!(
        "Number of requests exceeded the limit of {} over time window of {} seconds.",
        limits.max_requests,
        limits.window.as_secs()
    )
}

fn execution_message(limits: &Limits) -> String {
    format!(
        "Combined execution time of incoming requests exceeded limit of {} milliseconds over time window of {} seconds. Decrease number of concurrent requests or reduce the duration of requests and try again later.",
        limits.max_execution.as_millis(),
        limits.window.as_secs()
    )
}

fn ceil_secs(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(Duration::from_secs(1))
}

impl ServiceProtection {
    /// Admits a request from `user` or says how long to wait. An admitted request must be
    /// followed by [`ServiceProtection::finish`].
    pub fn admit(&mut self, user: &str, limits: &Limits, now: Instant) -> Result<(), Throttled> {
        let u = self.users.entry(user.to_owned()).or_default();
        while u
            .requests
            .front()
            .is_some_and(|t| now.duration_since(*t) >= limits.window)
        {
            u.requests.pop_front();
        }
        while u
            .executions
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) >= limits.window)
        {
            u.executions.pop_front();
        }
        if let Some((until, code, message)) = &mut u.blocked {
            if now < *until {
                *until += limits.extension;
                return Err(Throttled {
                    code,
                    message: message.clone(),
                    retry_after: ceil_secs(*until - now),
                });
            }
            u.blocked = None;
        }
        if u.in_flight >= limits.max_concurrent {
            return Err(Throttled {
                code: "0x80072326",
                message: format!(
                    "Number of concurrent requests exceeded the limit of {}.",
                    limits.max_concurrent
                ),
                retry_after: Duration::from_secs(1),
            });
        }
        if u.requests.len() >= limits.max_requests {
            // Clear once the oldest requests leave the window.
            let oldest = u.requests[u.requests.len() - limits.max_requests];
            let until = oldest + limits.window;
            let message = requests_message(limits);
            u.blocked = Some((until, "0x80072322", message.clone()));
            return Err(Throttled {
                code: "0x80072322",
                message,
                retry_after: ceil_secs(until - now),
            });
        }
        let spent: Duration = u.executions.iter().map(|(_, d)| *d).sum();
        if spent >= limits.max_execution {
            let until = u
                .executions
                .front()
                .map(|(t, _)| *t + limits.window)
                .unwrap_or(now);
            let message = execution_message(limits);
            u.blocked = Some((until, "0x80072321", message.clone()));
            return Err(Throttled {
                code: "0x80072321",
                message,
                retry_after: ceil_secs(until.saturating_duration_since(now)),
            });
        }
        u.requests.push_back(now);
        u.in_flight += 1;
        Ok(())
    }

    /// Ends an admitted request that took `took` to handle.
    pub fn finish(&mut self, user: &str, started: Instant, took: Duration) {
        if let Some(u) = self.users.get_mut(user) {
            u.in_flight = u.in_flight.saturating_sub(1);
            u.executions.push_back((started, took));
        }
    }

    /// Requests `user` may still send in the window (`x-ms-ratelimit-burst-remaining-xrm-requests`).
    pub fn remaining(&self, user: &str, limits: &Limits) -> usize {
        let used = self.users.get(user).map_or(0, |u| u.requests.len());
        limits.max_requests.saturating_sub(used)
    }

    pub fn reset(&mut self) {
        self.users.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            window: Duration::from_secs(10),
            max_requests: 3,
            max_execution: Duration::from_secs(5),
            max_concurrent: 2,
            extension: Duration::from_secs(1),
        }
    }

    #[test]
    fn the_request_limit_blocks_until_the_window_clears_and_sending_on_extends_the_wait() {
        let mut sp = ServiceProtection::default();
        let t0 = Instant::now();
        for i in 0..3 {
            sp.admit("u", &limits(), t0 + Duration::from_secs(i))
                .unwrap();
            sp.finish("u", t0, Duration::ZERO);
        }
        assert_eq!(sp.remaining("u", &limits()), 0);
        let first = sp
            .admit("u", &limits(), t0 + Duration::from_secs(4))
            .unwrap_err();
        assert_eq!(first.code, "0x80072322");
        assert_eq!(
            first.message,
            "Number of requests exceeded the limit of 3 over time window of 10 seconds."
        );
        assert_eq!(first.retry_after, Duration::from_secs(6));
        let again = sp
            .admit("u", &limits(), t0 + Duration::from_secs(5))
            .unwrap_err();
        assert_eq!(
            again.retry_after,
            Duration::from_secs(6),
            "5 s left plus 1 s extension"
        );
        assert!(
            sp.admit("other", &limits(), t0 + Duration::from_secs(5))
                .is_ok(),
            "limits are per user"
        );
        assert!(sp
            .admit("u", &limits(), t0 + Duration::from_secs(12))
            .is_ok());
    }

    #[test]
    fn concurrency_is_refused_at_once_without_a_block() {
        let mut sp = ServiceProtection::default();
        let t0 = Instant::now();
        sp.admit("u", &limits(), t0).unwrap();
        sp.admit("u", &limits(), t0).unwrap();
        assert_eq!(sp.admit("u", &limits(), t0).unwrap_err().code, "0x80072326");
        sp.finish("u", t0, Duration::ZERO);
        assert!(sp.admit("u", &limits(), t0).is_ok());
    }

    #[test]
    fn combined_execution_time_over_the_limit_blocks() {
        let mut sp = ServiceProtection::default();
        let t0 = Instant::now();
        sp.admit("u", &limits(), t0).unwrap();
        sp.finish("u", t0, Duration::from_secs(6));
        let e = sp
            .admit("u", &limits(), t0 + Duration::from_secs(6))
            .unwrap_err();
        assert_eq!(e.code, "0x80072321");
        assert_eq!(e.retry_after, Duration::from_secs(4));
    }
}
