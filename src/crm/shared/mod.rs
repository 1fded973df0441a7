//! CRM state shared by every replica on one PostgreSQL queue (`[crm.shared]`): each source's
//! rate budget for the whole deployment (`budget`, over the pure GCRA of `gcra`) and a
//! second-level answer cache with cross-replica single flight (`cache`). [`SharedStore`] holds
//! the queue's pool (handed in by the composition root: `crm` does not know the queue) and makes
//! the tables, in the queue's schema, once.
//!
//! Everything here uses the database's clock (`clock_timestamp()`), never a replica's own: the
//! replicas' clocks may disagree, the database has one.

pub mod budget;
pub mod cache;
pub mod gcra;

use std::time::Duration;

use sqlx::PgPool;

use super::CrmError;

/// Why the shared state could not be used. Messages name no key and no CRM value.
#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    #[error("shared CRM state: database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("shared CRM state: the database did not answer within {0:?}")]
    Timeout(Duration),
    #[error("shared CRM state: unreadable cache row: {0}")]
    Corrupt(String),
}

impl From<SharedError> for CrmError {
    fn from(e: SharedError) -> Self {
        CrmError::SharedState(e.to_string())
    }
}

/// How long one round of statements may take before the shared state counts as unreachable.
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);

/// The microseconds of the database's clock, as SQL.
const NOW_US: &str = "(extract(epoch from clock_timestamp()) * 1000000)::bigint";

/// The tables, created under an advisory lock: replicas starting together would otherwise race
/// on `CREATE TABLE IF NOT EXISTS` (which is not safe against a concurrent create).
const SCHEMA: &[&str] = &[
    "SELECT pg_advisory_xact_lock(hashtext('attrsync_crm_shared'))",
    // One row per source: the GCRA theoretical arrival time of each of its limits, and the
    // slot the last reservation was given.
    "CREATE TABLE IF NOT EXISTS attrsync_crm_budget (
        source TEXT PRIMARY KEY,
        minute_tat_us BIGINT NOT NULL,
        second_tat_us BIGINT NOT NULL,
        slot_us BIGINT NOT NULL)",
    // One row per hashed (source, key): the answer (NULL while none), until when it is good,
    // and until when a replica's claim to fetch it stands (all in the database's milliseconds).
    "CREATE TABLE IF NOT EXISTS attrsync_crm_answers (
        key TEXT PRIMARY KEY,
        body TEXT,
        expires_at BIGINT NOT NULL,
        claimed_until BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS attrsync_crm_answers_expiry ON attrsync_crm_answers (expires_at)",
];

/// The shared state's database: the queue's pool, with the tables made.
#[derive(Clone)]
pub struct SharedStore {
    pool: PgPool,
}

impl SharedStore {
    /// Makes the tables (if missing) in the pool's schema.
    pub async fn open(pool: PgPool) -> Result<Self, SharedError> {
        let mut tx = pool.begin().await?;
        for statement in SCHEMA {
            sqlx::query(statement).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Runs `work` within [`STATEMENT_TIMEOUT`].
async fn bounded<T>(
    work: impl std::future::Future<Output = Result<T, SharedError>>,
) -> Result<T, SharedError> {
    tokio::time::timeout(STATEMENT_TIMEOUT, work)
        .await
        .unwrap_or(Err(SharedError::Timeout(STATEMENT_TIMEOUT)))
}
