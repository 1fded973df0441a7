//! The journal's table: one entry per run of an event (its steps as JSON, the outcome, where it
//! came from), in the queue's database, so every replica reads the same history. Inserted in
//! batches by the worker pool's journal writer; pruned by age (`journal.retention_hours`) and by
//! count (`journal.max_events`) with the queue's housekeeping. Every value is bound; nothing
//! from a request is spliced into SQL.

use serde::Serialize;

use super::{now_ms, steps, JobStore, Pool, StoreError};
use crate::pipeline::Step;

/// The journal's table, for both backends (`{serial}` as in the queue's schema). Added by
/// `CREATE ... IF NOT EXISTS` on start, like the queue's own tables: an existing database gains
/// it on the first start of this version.
///
/// Only the primary key is indexed, on purpose. Every entry is an append at the right edge of
/// that key; an index on the conversation or event id (random UUIDs) would put each entry on a
/// random page of its own index, and every commit would write those pages out: measured on
/// SQLite with 100,000 entries kept, each such index cost about 30 µs per entry, against about
/// 7 µs for the row itself, which took the benchmark's events/s down 15-20%. Lookups by
/// conversation or event scan the table instead (bounded by `journal.max_events`; the
/// `journal-lookup` benchmark scenario measures them), and pruning goes by id. Indexes an earlier
/// build created are dropped.
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
    "DROP INDEX IF EXISTS attrsync_journal_conversation",
    "DROP INDEX IF EXISTS attrsync_journal_event",
    "DROP INDEX IF EXISTS attrsync_journal_recorded",
];

/// One run of an event, to record: its steps as recorded (`Vec<Step>`) or, after
/// [`NewEntry::encode`], in their stored form.
#[derive(Debug, Clone)]
pub struct NewEntry<S = Vec<Step>> {
    pub job_id: i64,
    pub event_id: String,
    pub conversation_id: String,
    pub source: &'static str,
    pub attempt: u32,
    pub outcome: String,
    pub accepted_at_ms: i64,
    pub steps: S,
}

/// A run's steps in their stored form (see `steps`); only the store makes one.
#[derive(Debug, Clone)]
pub struct EncodedSteps(String);

impl NewEntry {
    /// This entry with its steps encoded, ready for [`JobStore::finish_batch`]. The queue's
    /// workers call this on their own threads, each for the run it just finished, so the one
    /// writer only gathers finished rows.
    pub fn encode(self) -> Result<NewEntry<EncodedSteps>, StoreError> {
        let steps = EncodedSteps(steps::encode(&self.steps)?);
        Ok(NewEntry {
            job_id: self.job_id,
            event_id: self.event_id,
            conversation_id: self.conversation_id,
            source: self.source,
            attempt: self.attempt,
            outcome: self.outcome,
            accepted_at_ms: self.accepted_at_ms,
            steps,
        })
    }
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

/// Entries per `INSERT`: nine bound values each, well under SQLite's 32,766 and PostgreSQL's
/// 65,535 parameters per statement.
const ROWS_PER_INSERT: usize = 256;

const COLUMNS: &str = "id, job_id, event_id, conversation_id, source, attempt, outcome, accepted_at, recorded_at, steps";

impl JobStore {
    /// Records several runs in one transaction.
    pub async fn journal_many(&self, entries: &[NewEntry]) -> Result<(), StoreError> {
        let encoded = entries
            .iter()
            .map(|e| e.clone().encode())
            .collect::<Result<Vec<_>, _>>()?;
        self.finish_batch(&[], &encoded).await
    }

    /// Marks `done` jobs finished and records `entries`, in one transaction: under SQLite, which
    /// lets one writer in at a time, a second transaction per batch would queue behind (and hold
    /// up) the claims, enqueues and completions. The rows go in multi-row `INSERT`s of bound
    /// values, one statement per [`ROWS_PER_INSERT`] entries.
    pub async fn finish_batch(
        &self,
        done: &[i64],
        entries: &[NewEntry<EncodedSteps>],
    ) -> Result<(), StoreError> {
        if entries.is_empty() {
            return self.complete_many(done).await;
        }
        let now = now_ms();
        let completed = (!done.is_empty()).then(|| super::complete_sql(done));
        macro_rules! insert_in {
            ($pool:expr) => {{
                let mut tx = $pool.begin().await?;
                if let Some(sql) = &completed {
                    sqlx::query(sql).bind(now).execute(&mut *tx).await?;
                }
                for chunk in entries.chunks(ROWS_PER_INSERT) {
                    let mut insert = sqlx::QueryBuilder::new(
                        "INSERT INTO attrsync_journal (job_id, event_id, conversation_id, source, \
                         attempt, outcome, accepted_at, recorded_at, steps) ",
                    );
                    insert.push_values(chunk, |mut row, entry| {
                        row.push_bind(entry.job_id)
                            .push_bind(entry.event_id.as_str())
                            .push_bind(entry.conversation_id.as_str())
                            .push_bind(entry.source)
                            .push_bind(i64::from(entry.attempt))
                            .push_bind(entry.outcome.as_str())
                            .push_bind(entry.accepted_at_ms)
                            .push_bind(now)
                            .push_bind(entry.steps.0.as_str());
                    });
                    insert.build().execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(())
            }};
        }
        match &self.pool {
            Pool::Sqlite { write: pool, .. } => insert_in!(pool),
            Pool::Postgres(pool) => insert_in!(pool),
        }
    }

    /// Entries matching `filter`, newest first. An empty filter field matches everything; each
    /// given one is bound, never spliced. Walks the table from the newest entry (see [`SCHEMA`]
    /// for why no other index).
    pub async fn journal(&self, filter: &JournalFilter) -> Result<Vec<JournalEntry>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM attrsync_journal
             WHERE ($1 = '' OR outcome = $1) AND ($2 = '' OR source = $2)
               AND ($3 = '' OR conversation_id = $3) AND ($4 = '' OR event_id = $4)
             ORDER BY id DESC LIMIT $5"
        );
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        let rows = on_read_pool!(self, pool => sqlx::query(&sql)
        .bind(text(&filter.outcome))
        .bind(text(&filter.source))
        .bind(text(&filter.conversation_id))
        .bind(text(&filter.event_id))
        .bind(filter.limit.max(1))
        .fetch_all(pool)
        .await
        .map(|rows| {
            let mut decoder = steps::Decoder::new()?;
            rows.iter().map(|row| read_entry(row, &mut decoder)).collect::<Result<Vec<_>, _>>()
        }))?;
        rows
    }

    /// Deletes entries recorded before `retention` ago, then all but the newest `max` entries.
    /// Both go by id (the one index): entries are appended in time order, so everything below
    /// the first entry recorded within `retention` is older. (Across replicas ids and clocks
    /// agree only roughly; an entry out of order waits for the next pass.)
    pub async fn prune_journal(
        &self,
        retention: std::time::Duration,
        max: u64,
    ) -> Result<u64, StoreError> {
        let cutoff = now_ms() - retention.as_millis() as i64;
        let old = on_pool!(self, pool => sqlx::query(
            "DELETE FROM attrsync_journal WHERE id < COALESCE(
                (SELECT id FROM attrsync_journal WHERE recorded_at >= $1 ORDER BY id LIMIT 1),
                (SELECT MAX(id) + 1 FROM attrsync_journal))")
            .bind(cutoff).execute(pool).await.map(|r| r.rows_affected()))?;
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        let over = on_pool!(self, pool => sqlx::query(
            "DELETE FROM attrsync_journal WHERE id <= (SELECT MAX(id) FROM attrsync_journal) - $1")
            .bind(max).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(old + over)
    }
}

fn read_entry<R: sqlx::Row>(
    row: &R,
    decoder: &mut steps::Decoder,
) -> Result<JournalEntry, StoreError>
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
        steps: decoder.decode(&steps)?,
    })
}
