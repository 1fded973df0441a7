//! The CRM settings every source shares: the per-source block each adapter's section flattens in
//! (`[crm.<adapter>]`'s `timeout_ms`, retries, budget, breaker, cache TTLs), how several
//! candidates are decided between (`crm.match_policy`, `crm.match_priority`,
//! `crm.min_match_quality`) and how several sources are chained (`crm.chain_mode`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use secrecy::{ExposeSecret as _, SecretString};

use super::{invalid, redacted, ConfigError};
use crate::budget::{Quota, RateBudget};
use crate::domain::MatchQuality;
use crate::retry::RetryPolicy;

/// The settings of one CRM source, whatever its adapter: `#[serde(flatten)]`ed into each
/// adapter's section, so they read `crm.http.timeout_ms`, `crm.file.cache_ttl_secs`, ...
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct SourceSettings {
    /// Per attempt (an HTTP request, an SQL statement).
    pub timeout_ms: u64,
    pub max_retries: usize,
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    /// A `Retry-After` longer than this ends the retries (the attempt fails as retryable).
    pub max_retry_after_secs: u64,
    /// Calls per minute this source may make (0 = no budget) and how many may go at once.
    pub rate_limit_per_minute: u32,
    pub rate_limit_burst: u32,
    /// Calls per second (0 = none), for vendors that also count per second (HubSpot's CRM
    /// search API: 4 requests a second per token, HubSpot Developer Changelog, "CRM Search API
    /// Rate Limit Increase"): spaced evenly, never more than this in any one-second window. (`default`:
    /// sections written as data elsewhere, tests and vendor examples, may leave it out.)
    #[serde(default)]
    pub rate_limit_per_second: u32,
    /// Consecutive failed lookups that open the source's circuit (0 = no breaker).
    pub breaker_failures: u32,
    pub breaker_cooldown_ms: u64,
    /// How long this source's answers are reused: found (0 = not cached) ...
    pub cache_ttl_secs: u64,
    /// ... and not found (0 = not cached).
    pub not_found_ttl_secs: u64,
}

impl SourceSettings {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
    /// The connect timeout: the attempt's timeout, at most 2 s.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.min(2000))
    }
    pub fn retry(&self) -> RetryPolicy {
        RetryPolicy {
            max_retries: self.max_retries,
            base_delay: Duration::from_millis(self.retry_base_ms),
            max_delay: Duration::from_millis(self.retry_max_ms),
            max_retry_after: Duration::from_secs(self.max_retry_after_secs),
        }
    }
    /// A fresh budget for `source` (each source owns its own).
    pub fn budget(&self, source: &'static str) -> RateBudget {
        RateBudget::for_source(
            "crm",
            source,
            self.rate_limit_per_minute,
            self.rate_limit_burst,
        )
    }
    /// A fresh per-second budget for `source` (`rate_limit_per_second`; burst 1, so calls are
    /// spaced evenly and no one-second window holds more than the limit).
    pub fn per_second_budget(&self, source: &'static str) -> RateBudget {
        let quota = std::num::NonZeroU32::new(self.rate_limit_per_second)
            .map(|n| Quota::per_second(n).allow_burst(std::num::NonZeroU32::MIN));
        RateBudget::with_quota("crm", source, quota)
    }
    pub fn breaker_cooldown(&self) -> Duration {
        Duration::from_millis(self.breaker_cooldown_ms)
    }
    pub fn cache_ttl(&self) -> Duration {
        Duration::from_secs(self.cache_ttl_secs)
    }
    pub fn not_found_ttl(&self) -> Duration {
        Duration::from_secs(self.not_found_ttl_secs)
    }

    /// `section` is the adapter's, e.g. `crm.http`, for the key named in the error.
    pub fn validate(&self, section: &str) -> Result<(), ConfigError> {
        if self.timeout_ms == 0 {
            return Err(invalid(
                &format!("{section}.timeout_ms"),
                "must be greater than 0",
            ));
        }
        if self.retry_base_ms > self.retry_max_ms {
            return Err(invalid(
                &format!("{section}.retry_base_ms"),
                format!("must not exceed {section}.retry_max_ms"),
            ));
        }
        if self.rate_limit_per_minute > 0 && self.rate_limit_burst == 0 {
            return Err(invalid(
                &format!("{section}.rate_limit_burst"),
                "must be at least 1 when rate_limit_per_minute is set",
            ));
        }
        if self.breaker_failures > 0 && self.breaker_cooldown_ms == 0 {
            return Err(invalid(
                &format!("{section}.breaker_cooldown_ms"),
                "must be greater than 0 when breaker_failures is set",
            ));
        }
        Ok(())
    }
}

/// Where a deployment-wide piece of CRM state lives (`crm.shared.budget`, `crm.shared.cache`):
/// in each process, or in the queue's PostgreSQL database, shared by every replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SharedScope {
    Process,
    Postgres,
}

/// `[crm.shared]`: what replicas on one PostgreSQL queue share about the CRM.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct SharedCrmSettings {
    /// Each source's rate budget: per process, or one for the whole deployment.
    pub budget: SharedScope,
    /// How late after its slot a call may reach the CRM with every window still under the
    /// shared budget's limits (the slots are spaced `(window + margin) / limit` apart).
    pub budget_margin_ms: u64,
    /// A second-level answer cache behind the in-process one: none, or one in PostgreSQL.
    pub cache: SharedScope,
    /// How long a replica waits for another one's answer to the same lookup before it asks
    /// the CRM itself.
    pub cache_wait_ms: u64,
    /// The HMAC key the shared cache's row keys are made with (every replica the same).
    #[serde(serialize_with = "redacted")]
    pub cache_key_secret: SecretString,
    /// How often a replica deletes expired shared cache rows.
    pub cache_cleanup_secs: u64,
}

/// The shortest `crm.shared.cache_key_secret` accepted.
pub const MIN_CACHE_KEY_SECRET: usize = 16;

impl SharedCrmSettings {
    pub fn budget_margin(&self) -> Duration {
        Duration::from_millis(self.budget_margin_ms)
    }
    pub fn cache_wait(&self) -> Duration {
        Duration::from_millis(self.cache_wait_ms)
    }
    pub fn cache_cleanup(&self) -> Duration {
        Duration::from_secs(self.cache_cleanup_secs)
    }
    /// Whether anything is kept in PostgreSQL.
    pub fn uses_postgres(&self) -> bool {
        self.budget == SharedScope::Postgres || self.cache == SharedScope::Postgres
    }

    /// `on_postgres`: whether `queue.backend = "postgres"` (the database shared state lives in).
    pub fn validate(&self, on_postgres: bool) -> Result<(), ConfigError> {
        for (key, scope) in [
            ("crm.shared.budget", self.budget),
            ("crm.shared.cache", self.cache),
        ] {
            if scope == SharedScope::Postgres && !on_postgres {
                return Err(invalid(
                    key,
                    "\"postgres\" needs queue.backend = \"postgres\" (the state lives in the queue's database)",
                ));
            }
        }
        if self.cache == SharedScope::Postgres {
            if self.cache_key_secret.expose_secret().trim().len() < MIN_CACHE_KEY_SECRET {
                return Err(invalid(
                    "crm.shared.cache_key_secret",
                    format!(
                        "required when crm.shared.cache = \"postgres\": at least {MIN_CACHE_KEY_SECRET} characters, the same on every replica (set ATTRSYNC_CRM__SHARED__CACHE_KEY_SECRET)"
                    ),
                ));
            }
            if self.cache_wait_ms == 0 || self.cache_cleanup_secs == 0 {
                return Err(invalid(
                    "crm.shared.cache_wait_ms",
                    "cache_wait_ms and cache_cleanup_secs must be greater than 0",
                ));
            }
        }
        Ok(())
    }
}

/// `crm.match_policy`: which record wins when several match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchPolicy {
    /// The first in the vendor's order.
    First,
    /// The most recently modified (the adapter's last-modified field).
    MostRecent,
    /// By record type, in `crm.match_priority`'s order.
    Priority,
    /// None: several matches are ambiguous, and nothing of them is written.
    Refuse,
}

impl MatchPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchPolicy::First => "first",
            MatchPolicy::MostRecent => "most_recent",
            MatchPolicy::Priority => "priority",
            MatchPolicy::Refuse => "refuse",
        }
    }
}

/// `crm.chain_mode`: how the sources of `crm.sources` are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChainMode {
    /// The first source that finds the caller decides; later ones are not asked.
    FirstHit,
    /// Every source is asked; fields are merged, earlier sources winning.
    Merge,
}

/// What the match policy needs, as `crm::policy::decide` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchSettings {
    pub policy: MatchPolicy,
    /// Record types, best first, compared case-insensitively (`priority` only).
    pub priority: Vec<String>,
    /// Candidates graded below this are dropped.
    pub min_quality: MatchQuality,
}

impl MatchSettings {
    /// The position of `record_type` in the priority list; types not listed come after all
    /// listed ones.
    pub fn rank(&self, record_type: &str) -> usize {
        self.priority
            .iter()
            .position(|t| t.trim().eq_ignore_ascii_case(record_type.trim()))
            .unwrap_or(self.priority.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> SourceSettings {
        SourceSettings {
            timeout_ms: 100,
            max_retries: 1,
            retry_base_ms: 10,
            retry_max_ms: 100,
            max_retry_after_secs: 1,
            rate_limit_per_minute: 0,
            rate_limit_burst: 1,
            rate_limit_per_second: 0,
            breaker_failures: 0,
            breaker_cooldown_ms: 0,
            cache_ttl_secs: 0,
            not_found_ttl_secs: 0,
        }
    }

    #[test]
    fn source_settings_errors_name_the_adapters_key() {
        assert!(source().validate("crm.http").is_ok());
        let mut s = source();
        s.timeout_ms = 0;
        let err = s.validate("crm.http").unwrap_err().to_string();
        assert!(err.contains("crm.http.timeout_ms"), "{err}");
        let mut s = source();
        s.breaker_failures = 3;
        let err = s.validate("crm.file").unwrap_err().to_string();
        assert!(err.contains("crm.file.breaker_cooldown_ms"), "{err}");
        let mut s = source();
        s.retry_base_ms = 1000;
        assert!(s.validate("crm.x").is_err());
    }

    fn shared(budget: SharedScope, cache: SharedScope, secret: &str) -> SharedCrmSettings {
        SharedCrmSettings {
            budget,
            budget_margin_ms: 50,
            cache,
            cache_wait_ms: 2000,
            cache_key_secret: secret.to_owned().into(),
            cache_cleanup_secs: 60,
        }
    }

    #[test]
    fn shared_state_needs_the_postgres_queue_and_the_shared_cache_a_key_secret() {
        use SharedScope::{Postgres, Process};
        assert!(shared(Process, Process, "").validate(false).is_ok());
        let err = shared(Postgres, Process, "").validate(false).unwrap_err();
        assert!(err.to_string().contains("crm.shared.budget"), "{err}");
        assert!(shared(Postgres, Process, "").validate(true).is_ok());
        let err = shared(Process, Postgres, "short")
            .validate(true)
            .unwrap_err();
        assert!(
            err.to_string().contains("crm.shared.cache_key_secret"),
            "{err}"
        );
        assert!(shared(Process, Postgres, "0123456789abcdef")
            .validate(true)
            .is_ok());
    }

    #[test]
    fn unlisted_record_types_rank_after_listed_ones_and_case_does_not_matter() {
        let m = MatchSettings {
            policy: MatchPolicy::Priority,
            priority: vec!["Contact".into(), "Lead".into()],
            min_quality: MatchQuality::National,
        };
        assert_eq!(m.rank("contact"), 0);
        assert_eq!(m.rank("LEAD"), 1);
        assert_eq!(m.rank("Account"), 2);
    }
}
