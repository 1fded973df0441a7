//! The journal's table: one entry per run of an event (its steps as JSON, the outcome, where it
//! came from), in the queue's database, so every replica reads the same history. Inserted in
//! batches by the worker pool's journal writer; pruned by age (`journal.retention_hours`) and by
//! count (`journal.max_events`) with the queue's housekeeping. Every value is bound; nothing
//! from a request is spliced into SQL.

use serde::Serialize;

use super::{now_ms, JobStore, Pool, StoreError};
use crate::pipeline::Step;

/// The journal's tables, for both backends (`{serial}` as in the queue's schema). Added by
/// `CREATE ... IF NOT EXISTS` on start, like the queue's own tables: an existing database gains
/// them on the first start of this version.
pub(super) const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS attrsync_journal (
        id {serial},
        job_id BIGINT NOT NULL,
        event_id TEXT NOT NULL,
        conversation_id TEXT NOT NULL,
        source TEXT NOT NULL,
        attempt BIGINT NOT NULL,
        outcome TEXT NOT NULL,
        accepted_at BIGINT NOT NULL,
        recorded_at BIGINT NOT NULL,
        steps TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS attrsync_journal_conversation ON attrsync_journal (conversation_id)",
    "CREATE INDEX IF NOT EXISTS attrsync_journal_event ON attrsync_journal (event_id)",
    "CREATE INDEX IF NOT EXISTS attrsync_journal_recorded ON attrsync_journal (recorded_at)",
];

/// One run of an event, to record.
#[derive(Debug, Clone)]
pub struct NewEntry {
    pub job_id: i64,
    pub event_id: String,
    pub conversation_id: String,
    pub source: &'static str,
    pub attempt: u32,
    pub outcome: String,
    pub accepted_at_ms: i64,
    pub steps: Vec<Step>,
}

/// One run of an event, as recorded.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JournalEntry {
    pub id: i64,
    /// The queue's job id (a dead letter's id).
    pub job_id: i64,
    pub event_id: String,
    pub conversation_id: String,
    pub source: String,
    pub attempt: u32,
    /// An `attrsync_events_total` outcome label.
    pub outcome: String,
    pub accepted_at_ms: i64,
    pub recorded_at_ms: i64,
    pub steps: Vec<Step>,
}

/// Which entries to list: the newest first, optionally of one outcome and one source.
#[derive(Debug, Clone, Default)]
pub struct JournalFilter {
    pub outcome: Option<String>,
    pub source: Option<String>,
    pub conversation_id: Option<String>,
    pub event_id: Option<String>,
    pub limit: i64,
}

const COLUMNS: &str = "id, job_id, event_id, conversation_id, source, attempt, outcome, accepted_at, recorded_at, steps";

impl JobStore {
    /// Records several runs in one transaction.
    pub async fn journal_many(&self, entries: &[NewEntry]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let texts = entries
            .iter()
            .map(|e| {
                serde_json::to_string(&e.steps).map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        macro_rules! insert_in {
            ($pool:expr) => {{
                let mut tx = $pool.begin().await?;
                for (entry, steps) in entries.iter().zip(&texts) {
                    sqlx::query(
                        "INSERT INTO attrsync_journal (job_id, event_id, conversation_id, source, attempt,
                         outcome, accepted_at, recorded_at, steps) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    )
                    .bind(entry.job_id)
                    .bind(&entry.event_id)
                    .bind(&entry.conversation_id)
                    .bind(entry.source)
                    .bind(i64::from(entry.attempt))
                    .bind(&entry.outcome)
                    .bind(entry.accepted_at_ms)
                    .bind(now)
                    .bind(steps)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }};
        }
        match &self.pool {
            Pool::Sqlite(pool) => insert_in!(pool),
            Pool::Postgres(pool) => insert_in!(pool),
        }
    }

    /// Entries matching `filter`, newest first. An empty filter field matches everything; each
    /// given one is bound, never spliced.
    pub async fn journal(&self, filter: &JournalFilter) -> Result<Vec<JournalEntry>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM attrsync_journal
             WHERE ($1 = '' OR outcome = $1) AND ($2 = '' OR source = $2)
               AND ($3 = '' OR conversation_id = $3) AND ($4 = '' OR event_id = $4)
             ORDER BY id DESC LIMIT $5"
        );
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        let rows = on_pool!(self, pool => sqlx::query(&sql)
            .bind(text(&filter.outcome))
            .bind(text(&filter.source))
            .bind(text(&filter.conversation_id))
            .bind(text(&filter.event_id))
            .bind(filter.limit.max(1))
            .fetch_all(pool)
            .await
            .map(|rows| rows.iter().map(read_entry).collect::<Vec<_>>()))?;
        rows.into_iter().collect()
    }

    /// Deletes entries recorded before `retention` ago, then all but the newest `max` entries.
    pub async fn prune_journal(
        &self,
        retention: std::time::Duration,
        max: u64,
    ) -> Result<u64, StoreError> {
        let cutoff = now_ms() - retention.as_millis() as i64;
        let old = on_pool!(self, pool => sqlx::query(
            "DELETE FROM attrsync_journal WHERE recorded_at < $1")
            .bind(cutoff).execute(pool).await.map(|r| r.rows_affected()))?;
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        let over = on_pool!(self, pool => sqlx::query(
            "DELETE FROM attrsync_journal WHERE id <= (SELECT MAX(id) FROM attrsync_journal) - $1")
            .bind(max).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(old + over)
    }
}

fn read_entry<R: sqlx::Row>(row: &R) -> Result<JournalEntry, StoreError>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let attempt: i64 = row.try_get("attempt")?;
    let steps: String = row.try_get("steps")?;
    Ok(JournalEntry {
        id: row.try_get("id")?,
        job_id: row.try_get("job_id")?,
        event_id: row.try_get("event_id")?,
        conversation_id: row.try_get("conversation_id")?,
        source: row.try_get("source")?,
        attempt: attempt.max(0) as u32,
        outcome: row.try_get("outcome")?,
        accepted_at_ms: row.try_get("accepted_at")?,
        recorded_at_ms: row.try_get("recorded_at")?,
        steps: serde_json::from_str(&steps).map_err(|e| StoreError::Corrupt(e.to_string()))?,
    })
}
