//! The second-level CRM answer cache, in PostgreSQL (`crm.shared.cache = "postgres"`), behind
//! each replica's moka cache: N replicas make one CRM call per caller per TTL, not N.
//!
//! One row per hashed (source, key) in `attrsync_crm_answers`. A lookup reads the row: a fresh
//! answer is used (`hit`); a live claim means another replica is asking the CRM, so this one
//! polls for its answer (`waited`) for at most `crm.shared.cache_wait_ms`, then asks the CRM
//! itself (`wait_timeout`); otherwise it claims the row with one conditional upsert and asks
//! the CRM (`miss`), storing the answer for the source's found / not-found TTL, or dropping the
//! claim on an error (errors are never cached). A claim lasts `cache_wait_ms` and is renewed
//! while the claimer's call runs, so a replica that dies mid-call holds nobody up for longer,
//! and a slow call (waiting for the budget) does not let a second replica claim the lookup. Expired rows are deleted every
//! `cache_cleanup_secs` by whichever replica gets there.
//!
//! Row keys are HMAC-SHA256(`crm.shared.cache_key_secret`, source and key), never the phone
//! number or email: a plain SHA-256 of a phone number is reversed by hashing every number of a
//! numbering plan (about 10^10 for one country), which takes minutes; without the secret the key
//! tells nothing. Values are the candidates as JSON (customer data, like the queue's events).
//!
//! Fails open: when the database cannot be reached, the replica asks the CRM itself
//! (`unavailable`): the cache saves calls, the budget (which fails closed) guards the CRM.

use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret as _, SecretString};
use sha2::Sha256;
use sqlx::Row as _;

use super::{bounded, SharedError, SharedStore};
use crate::config::SharedCrmSettings;
use crate::crm::candidate::Candidate;
use crate::crm::{CrmError, CustomerKey};
use crate::metrics;

/// The database's clock in milliseconds, as SQL.
const NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";
/// How often a waiting replica looks for another one's answer.
const POLL: Duration = Duration::from_millis(20);

/// How a lookup used the shared cache: the `result` label of
/// `attrsync_crm_shared_cache_lookups_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedUse {
    /// A fresh answer was there.
    Hit,
    /// Another replica was asking the CRM; its answer was used.
    Waited,
    /// This replica claimed the lookup and asked the CRM.
    Miss,
    /// Another replica's claim outlasted `cache_wait_ms`; this one asked the CRM too.
    WaitTimeout,
    /// The database could not be reached; this replica asked the CRM.
    Unavailable,
}

impl SharedUse {
    pub const ALL: [SharedUse; 5] = [
        SharedUse::Hit,
        SharedUse::Waited,
        SharedUse::Miss,
        SharedUse::WaitTimeout,
        SharedUse::Unavailable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SharedUse::Hit => "hit",
            SharedUse::Waited => "waited",
            SharedUse::Miss => "miss",
            SharedUse::WaitTimeout => "wait_timeout",
            SharedUse::Unavailable => "unavailable",
        }
    }
}

/// An answer from the shared cache or the CRM: the candidates as JSON and how much longer
/// they may be reused.
#[derive(Debug, Clone)]
pub struct SharedAnswer {
    pub text: String,
    pub keep_for: Duration,
    pub used: SharedUse,
}

/// What a read of the row found.
enum Look {
    Fresh {
        text: String,
        remaining: Duration,
    },
    /// Another replica holds the claim.
    Busy,
    /// This replica now holds the claim.
    Claimed,
}

pub struct SharedCache {
    store: SharedStore,
    secret: SecretString,
    wait: Duration,
    cleanup_every: Duration,
    /// When this replica last deleted expired rows (its own clock, milliseconds).
    last_cleanup_ms: AtomicI64,
}

impl SharedCache {
    pub fn from_settings(store: SharedStore, settings: &SharedCrmSettings) -> Self {
        Self {
            store,
            secret: settings.cache_key_secret.clone(),
            wait: settings.cache_wait(),
            cleanup_every: settings.cache_cleanup(),
            last_cleanup_ms: AtomicI64::new(local_now_ms()),
        }
    }

    /// The row key of `source`'s answer for `key`: hex HMAC-SHA256 under the deployment's
    /// secret.
    pub fn row_key(&self, source: &str, key: &CustomerKey) -> String {
        row_key(
            self.secret.expose_secret().as_bytes(),
            source,
            &key.cache_key(),
        )
    }

    /// The shared answer of `source` for `key`, or `fetch`'s (stored for `found` or
    /// `not_found` as it comes out; one fetch across replicas while the claim stands).
    pub async fn get_or_fetch(
        &self,
        source: &'static str,
        key: &CustomerKey,
        found: Duration,
        not_found: Duration,
        fetch: impl Future<Output = Result<Vec<Candidate>, CrmError>>,
    ) -> Result<SharedAnswer, CrmError> {
        let id = self.row_key(source, key);
        let started = Instant::now();
        let mut waited = false;
        let used = loop {
            match bounded(self.look(&id)).await {
                Ok(Look::Fresh { text, remaining }) => {
                    let ttl = if text == "[]" { not_found } else { found };
                    let used = if waited {
                        SharedUse::Waited
                    } else {
                        SharedUse::Hit
                    };
                    count(source, used);
                    return Ok(SharedAnswer {
                        text,
                        keep_for: remaining.min(ttl),
                        used,
                    });
                }
                Ok(Look::Claimed) => break SharedUse::Miss,
                Ok(Look::Busy) if started.elapsed() >= self.wait => break SharedUse::WaitTimeout,
                Ok(Look::Busy) => {
                    waited = true;
                    tokio::time::sleep(POLL).await;
                }
                Err(e) => {
                    tracing::warn!(source, error = %e, "the shared CRM cache is unreachable; asking the CRM");
                    break SharedUse::Unavailable;
                }
            }
        };
        count(source, used);
        let result = if used == SharedUse::Miss {
            self.holding_claim(&id, fetch).await
        } else {
            fetch.await
        };
        let answer = result.and_then(|candidates| {
            let text = serde_json::to_string(&candidates)
                .map_err(|e| CrmError::InvalidResponse(e.to_string()))?;
            let keep_for = if candidates.is_empty() {
                not_found
            } else {
                found
            };
            Ok(SharedAnswer {
                text,
                keep_for,
                used,
            })
        });
        if used != SharedUse::Unavailable {
            let written = match &answer {
                Ok(a) if !a.keep_for.is_zero() => bounded(self.put(&id, &a.text, a.keep_for)).await,
                _ if used == SharedUse::Miss => bounded(self.release(&id)).await,
                _ => Ok(()),
            };
            if let Err(e) = written {
                tracing::warn!(source, error = %e, "could not write the shared CRM cache");
            }
            self.clean_up_if_due();
        }
        answer
    }

    /// Reads the row; claims it when there is neither a fresh answer nor a live claim.
    async fn look(&self, id: &str) -> Result<Look, SharedError> {
        let pool = self.store.pool();
        let row = sqlx::query(&format!(
            "SELECT body, expires_at - {NOW_MS} AS remaining_ms, claimed_until > {NOW_MS} AS busy
             FROM attrsync_crm_answers WHERE key = $1"
        ))
        .bind(id)
        .fetch_optional(pool)
        .await?;
        if let Some(row) = &row {
            let body: Option<String> = row.try_get("body")?;
            let remaining_ms: i64 = row.try_get("remaining_ms")?;
            if let Some(text) = body.filter(|_| remaining_ms > 0) {
                return Ok(Look::Fresh {
                    text,
                    remaining: Duration::from_millis(remaining_ms.unsigned_abs()),
                });
            }
            if row.try_get::<bool, _>("busy")? {
                return Ok(Look::Busy);
            }
        }
        let claim_ms = i64::try_from(self.wait.as_millis()).unwrap_or(i64::MAX);
        let claimed = sqlx::query(&format!(
            "INSERT INTO attrsync_crm_answers AS a (key, body, expires_at, claimed_until)
             VALUES ($1, NULL, 0, {NOW_MS} + $2)
             ON CONFLICT (key) DO UPDATE SET claimed_until = EXCLUDED.claimed_until
             WHERE a.claimed_until <= {NOW_MS} AND (a.body IS NULL OR a.expires_at <= {NOW_MS})
             RETURNING key"
        ))
        .bind(id)
        .bind(claim_ms)
        .fetch_optional(pool)
        .await?;
        // Lost the race: another replica claimed it (or answered) in between.
        Ok(if claimed.is_some() {
            Look::Claimed
        } else {
            Look::Busy
        })
    }

    /// Runs `fetch` while renewing this replica's claim every half `cache_wait_ms`: a slow CRM
    /// call (a wait for the budget, retries) must not let the claim lapse, or the next lookup
    /// would claim it too and ask the CRM again.
    async fn holding_claim<T>(&self, id: &str, fetch: impl Future<Output = T>) -> T {
        tokio::pin!(fetch);
        loop {
            tokio::select! {
                result = &mut fetch => return result,
                _ = tokio::time::sleep(self.wait / 2) => {
                    if let Err(e) = bounded(self.renew(id)).await {
                        tracing::warn!(error = %e, "could not renew a shared CRM cache claim");
                    }
                }
            }
        }
    }

    async fn renew(&self, id: &str) -> Result<(), SharedError> {
        let claim_ms = i64::try_from(self.wait.as_millis()).unwrap_or(i64::MAX);
        sqlx::query(&format!(
            "UPDATE attrsync_crm_answers SET claimed_until = {NOW_MS} + $2
             WHERE key = $1 AND claimed_until > 0"
        ))
        .bind(id)
        .bind(claim_ms)
        .execute(self.store.pool())
        .await?;
        Ok(())
    }

    async fn put(&self, id: &str, text: &str, keep_for: Duration) -> Result<(), SharedError> {
        let keep_ms = i64::try_from(keep_for.as_millis()).unwrap_or(i64::MAX);
        sqlx::query(&format!(
            "INSERT INTO attrsync_crm_answers (key, body, expires_at, claimed_until)
             VALUES ($1, $2, {NOW_MS} + $3, 0)
             ON CONFLICT (key) DO UPDATE
             SET body = EXCLUDED.body, expires_at = EXCLUDED.expires_at, claimed_until = 0"
        ))
        .bind(id)
        .bind(text)
        .bind(keep_ms)
        .execute(self.store.pool())
        .await?;
        Ok(())
    }

    async fn release(&self, id: &str) -> Result<(), SharedError> {
        sqlx::query("UPDATE attrsync_crm_answers SET claimed_until = 0 WHERE key = $1")
            .bind(id)
            .execute(self.store.pool())
            .await?;
        Ok(())
    }

    /// Deletes the expired, unclaimed rows; how many went.
    pub async fn clean_up(&self) -> Result<u64, SharedError> {
        delete_expired(&self.store).await
    }

    /// Starts a clean-up in the background when this replica's last one is
    /// `cache_cleanup_secs` old (one at a time).
    fn clean_up_if_due(&self) {
        let now = local_now_ms();
        let last = self.last_cleanup_ms.load(Ordering::Relaxed);
        let every = i64::try_from(self.cleanup_every.as_millis()).unwrap_or(i64::MAX);
        if now.saturating_sub(last) < every
            || self
                .last_cleanup_ms
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let store = self.store.clone();
        tokio::spawn(async move {
            match bounded(delete_expired(&store)).await {
                Ok(n) => tracing::debug!(deleted = n, "expired shared CRM cache rows deleted"),
                Err(e) => tracing::warn!(error = %e, "could not clean up the shared CRM cache"),
            }
        });
    }
}

async fn delete_expired(store: &SharedStore) -> Result<u64, SharedError> {
    let deleted = sqlx::query(&format!(
        "DELETE FROM attrsync_crm_answers WHERE expires_at <= {NOW_MS} AND claimed_until <= {NOW_MS}"
    ))
    .execute(store.pool())
    .await?;
    Ok(deleted.rows_affected())
}

/// This process's clock in milliseconds (only for spacing its own clean-ups).
fn local_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

fn count(source: &'static str, used: SharedUse) {
    ::metrics::counter!(metrics::SHARED_CACHE_LOOKUPS, "source" => source, "result" => used.as_str())
        .increment(1);
}

/// Hex HMAC-SHA256 of `source`, a newline and `cache_key` under `secret`.
fn row_key(secret: &[u8], source: &str, cache_key: &str) -> String {
    // HMAC takes a key of any length (RFC 2104); `new_from_slice` cannot fail for HMAC.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(source.as_bytes());
    mac.update(b"\n");
    mac.update(cache_key.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_keys_depend_on_the_secret_the_source_and_the_key_and_reveal_neither() {
        let a = row_key(b"secret-one-0123456", "http", "phone:+13175550125");
        assert_eq!(a.len(), 64);
        assert!(!a.contains("3175550125"));
        assert_eq!(
            a,
            row_key(b"secret-one-0123456", "http", "phone:+13175550125")
        );
        assert_ne!(
            a,
            row_key(b"secret-two-0123456", "http", "phone:+13175550125")
        );
        assert_ne!(
            a,
            row_key(b"secret-one-0123456", "file", "phone:+13175550125")
        );
        assert_ne!(
            a,
            row_key(b"secret-one-0123456", "http", "phone:+13175550126")
        );
        // The separator keeps "ab"+"c" and "a"+"bc" apart.
        assert_ne!(row_key(b"k", "ab", "c"), row_key(b"k", "a", "bc"));
    }

    #[test]
    fn the_result_labels_are_distinct() {
        let labels: std::collections::BTreeSet<_> =
            SharedUse::ALL.iter().map(|u| u.as_str()).collect();
        assert_eq!(labels.len(), SharedUse::ALL.len());
    }
}
