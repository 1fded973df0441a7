//! Inbound REST API rate limiting as ServiceNow documents it (ServiceNowDocs
//! `markdown/api-reference/rest-api-explorer/inbound-REST-API-rate-limiting.md`): rules in
//! `sys_rate_limit_rules` cap the Table API requests **per hour** of a single user, of users with
//! a role, or of all users, optionally for one table. A single-user rule beats role rules, which
//! beat all-users rules; among several matching role rules the lowest limit wins. Requests that
//! match a rule carry `X-RateLimit-Limit`, `X-RateLimit-Reset` (UNIX time) and `X-RateLimit-Rule`;
//! denied ones get 429 with `Retry-After` as well.
//!
//! Not documented, so chosen here: windows are fixed and aligned to the clock ("the current
//! hour"), and a denied request is not counted. The 30-second delay of an instance's node counts
//! is not simulated: the simulator enforces exactly.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// One `sys_rate_limit_rules` record for the Table API's GET.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitRule {
    /// Sent back in `X-RateLimit-Rule`.
    pub sys_id: String,
    pub name: String,
    /// The table the rule targets; `None` covers every table.
    #[serde(default)]
    pub table: Option<String>,
    pub applies_to: RuleTarget,
    pub requests_per_hour: u32,
    #[serde(default = "active")]
    pub active: bool,
}

fn active() -> bool {
    true
}

/// The rule's "Apply to" field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum RuleTarget {
    SingleUser { user_name: String },
    UsersWithRole { role: String },
    AllUsers,
}

/// The rate-limit outcome of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Decision {
    /// No rule applies: no headers.
    Unlimited,
    Allowed(Headers),
    Denied {
        headers: Headers,
        retry_after: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Headers {
    pub(super) limit: u32,
    pub(super) reset_unix: u64,
    pub(super) rule: String,
}

pub(super) struct RateLimiter {
    rules: Vec<RateLimitRule>,
    window: Duration,
    /// The instant the simulator started and the wall-clock time then, so windows can be aligned
    /// to the clock while time itself follows tokio (paused in tests).
    origin: Instant,
    origin_unix: u64,
    counts: HashMap<(String, String), (u64, u32)>,
    denied: u64,
}

impl RateLimiter {
    pub(super) fn new(rules: Vec<RateLimitRule>, window: Duration) -> Self {
        let origin_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Self {
            rules,
            window: window.max(Duration::from_secs(1)),
            origin: Instant::now(),
            origin_unix,
            counts: HashMap::new(),
            denied: 0,
        }
    }

    pub(super) fn set_rules(&mut self, rules: Vec<RateLimitRule>) {
        self.rules = rules;
        self.counts.clear();
    }

    pub(super) fn rules(&self) -> &[RateLimitRule] {
        &self.rules
    }

    /// Zeroes every count, like "Reset Rate Limit Counts".
    pub(super) fn reset(&mut self) {
        self.counts.clear();
    }

    pub(super) fn denied(&self) -> u64 {
        self.denied
    }

    /// The winning rule for `user` (with `roles`) reading `table`, by the documented priority.
    fn rule_for(&self, table: &str, user: &str, roles: &[String]) -> Option<&RateLimitRule> {
        let candidates = || {
            self.rules
                .iter()
                .filter(|r| r.active && r.table.as_deref().is_none_or(|t| t == table))
        };
        let lowest = |pred: &dyn Fn(&RuleTarget) -> bool| {
            candidates()
                .filter(|r| pred(&r.applies_to))
                .min_by_key(|r| r.requests_per_hour)
        };
        lowest(&|t| matches!(t, RuleTarget::SingleUser { user_name } if user_name == user))
            .or_else(|| {
                lowest(&|t| matches!(t, RuleTarget::UsersWithRole { role } if roles.contains(role)))
            })
            .or_else(|| lowest(&|t| matches!(t, RuleTarget::AllUsers)))
    }

    pub(super) fn admit(
        &mut self,
        now: Instant,
        table: &str,
        user: &str,
        roles: &[String],
    ) -> Decision {
        let Some(rule) = self.rule_for(table, user, roles).cloned() else {
            return Decision::Unlimited;
        };
        let window = self.window.as_secs();
        let now_unix = self.origin_unix + now.saturating_duration_since(self.origin).as_secs();
        let index = now_unix / window;
        let reset_unix = (index + 1) * window;
        let headers = Headers {
            limit: rule.requests_per_hour,
            reset_unix,
            rule: rule.sys_id.clone(),
        };
        let count = self
            .counts
            .entry((rule.sys_id, user.to_owned()))
            .or_insert((index, 0));
        if count.0 != index {
            *count = (index, 0);
        }
        if count.1 >= rule.requests_per_hour {
            self.denied += 1;
            let retry_after = reset_unix.saturating_sub(now_unix).max(1);
            return Decision::Denied {
                headers,
                retry_after,
            };
        }
        count.1 += 1;
        Decision::Allowed(headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(sys_id: &str, applies_to: RuleTarget, limit: u32) -> RateLimitRule {
        RateLimitRule {
            sys_id: sys_id.to_owned(),
            name: sys_id.to_owned(),
            table: None,
            applies_to,
            requests_per_hour: limit,
            active: true,
        }
    }

    fn role(r: &str) -> RuleTarget {
        RuleTarget::UsersWithRole { role: r.to_owned() }
    }

    fn roles(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    fn winner(limiter: &mut RateLimiter, user: &str, user_roles: &[&str]) -> Option<String> {
        match limiter.admit(Instant::now(), "incident", user, &roles(user_roles)) {
            Decision::Allowed(h) | Decision::Denied { headers: h, .. } => Some(h.rule),
            Decision::Unlimited => None,
        }
    }

    #[tokio::test]
    async fn the_documented_priority_picks_the_rule() {
        // The documentation's example: by user 200, import_admin 500, itil 100, all users 100.
        let mut limiter = RateLimiter::new(
            vec![
                rule("all", RuleTarget::AllUsers, 100),
                rule("itil", role("itil"), 100),
                rule("import", role("import_admin"), 500),
                rule(
                    "user",
                    RuleTarget::SingleUser {
                        user_name: "itil.user".to_owned(),
                    },
                    200,
                ),
            ],
            Duration::from_secs(3600),
        );
        assert_eq!(
            winner(&mut limiter, "itil.user", &["itil"]).as_deref(),
            Some("user")
        );
        assert_eq!(
            winner(&mut limiter, "abel.tuter", &["import_admin", "itil"]).as_deref(),
            Some("itil")
        );
        assert_eq!(
            winner(&mut limiter, "importer", &["import_admin"]).as_deref(),
            Some("import")
        );
        assert_eq!(winner(&mut limiter, "someone", &[]).as_deref(), Some("all"));
    }

    #[tokio::test]
    async fn without_a_matching_rule_nothing_is_limited() {
        let mut other_table = rule("t", RuleTarget::AllUsers, 1);
        other_table.table = Some("incident".to_owned());
        let mut inactive = rule("off", RuleTarget::AllUsers, 1);
        inactive.active = false;
        let mut limiter = RateLimiter::new(vec![other_table, inactive], Duration::from_secs(3600));
        for _ in 0..5 {
            assert_eq!(
                limiter.admit(Instant::now(), "sys_user", "u", &[]),
                Decision::Unlimited
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_count_is_per_user_and_resets_with_the_clock_hour() {
        let mut limiter = RateLimiter::new(
            vec![rule("r", RuleTarget::AllUsers, 2)],
            Duration::from_secs(3600),
        );
        let now = Instant::now();
        assert!(matches!(
            limiter.admit(now, "sys_user", "a", &[]),
            Decision::Allowed(_)
        ));
        assert!(matches!(
            limiter.admit(now, "sys_user", "a", &[]),
            Decision::Allowed(_)
        ));
        assert!(matches!(
            limiter.admit(now, "sys_user", "b", &[]),
            Decision::Allowed(_)
        ));
        let Decision::Denied {
            headers,
            retry_after,
        } = limiter.admit(now, "sys_user", "a", &[])
        else {
            panic!("the third request of the hour must be denied");
        };
        assert_eq!(headers.reset_unix % 3600, 0);
        assert!((1..=3600).contains(&retry_after));
        assert_eq!(limiter.denied(), 1);
        tokio::time::advance(Duration::from_secs(retry_after)).await;
        assert!(matches!(
            limiter.admit(Instant::now(), "sys_user", "a", &[]),
            Decision::Allowed(_)
        ));
    }
}
