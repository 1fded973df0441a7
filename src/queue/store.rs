//! The durable job queue: accepted events, their retries, deduplication and dead letters, in
//! SQLite (the embedded default: one WAL file, no server) or PostgreSQL (for several replicas
//! behind a load balancer; claims use `FOR UPDATE SKIP LOCKED`, so each job goes to exactly one
//! replica). Both backends run the same SQL apart from the table definitions and the claim.
//!
//! A job is on disk before its event is acknowledged. A claimed job carries a lease: if the
//! process dies (SIGKILL, OOM), the lease runs out and another worker claims it again.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::Row as _;

use super::record::StoredJob;
use crate::config::{QueueBackend, QueueSettings};
use crate::domain::EnrichmentJob;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("queue database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("stored job is unreadable: {0}")]
    Corrupt(String),
}

/// A job to persist: its event key (source and event id), its dedup key, and what to run.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub event_key: String,
    pub dedup_key: String,
    pub payload: StoredJob,
}

/// A job handed to a worker.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub id: i64,
    /// 1 on the first claim; more after a retry or a lost lease.
    pub attempts: u32,
    pub created_at_ms: i64,
    pub payload: StoredJob,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    Accepted,
    /// The same event id, or the same conversation + participant + customer key within the
    /// dedup window, was accepted before.
    Duplicate,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueStats {
    /// Jobs queued or running.
    pub depth: u64,
    /// Age of the oldest queued or running job, in milliseconds (0 when empty).
    pub oldest_age_ms: u64,
    pub dead_letters: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub id: i64,
    pub event_key: String,
    pub attempts: u32,
    pub last_error: String,
    pub created_at_ms: i64,
    pub failed_at_ms: i64,
    /// The job as stored.
    pub payload: StoredJob,
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// The statement that marks `ids` done, `$1` the time. Ids are integers this store generated, so
/// listing them literally cannot inject anything.
fn complete_sql(ids: &[i64]) -> String {
    let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    format!(
        "UPDATE attrsync_jobs SET state = 'done', locked_by = NULL, locked_until = NULL, updated_at = $1
         WHERE id IN ({list}) AND state = 'running'"
    )
}

enum Pool {
    /// SQLite admits one writer at a time. Every write goes through `write`, a pool of one
    /// connection, so writers wait their turn in the pool's queue (woken as soon as it is free)
    /// rather than in SQLite's busy handler, which sleeps 1, 2, 5, 10 ... ms between tries and
    /// cost the benchmark's events/s several per cent once the journal made transactions
    /// longer. Reads go through `read`; under WAL they never wait for the writer, and a long one
    /// (a journal search) never holds up the queue.
    Sqlite {
        write: SqlitePool,
        read: SqlitePool,
    },
    Postgres(PgPool),
}

/// Runs the same statement on whichever pool is configured (SQLite's writer).
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pool {
            Pool::Sqlite { write: $pool, .. } => $body,
            Pool::Postgres($pool) => $body,
        }
    };
}

/// [`on_pool!`] for a statement that only reads (SQLite's readers).
macro_rules! on_read_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pool {
            Pool::Sqlite { read: $pool, .. } => $body,
            Pool::Postgres($pool) => $body,
        }
    };
}

mod journal;
mod steps;

pub use journal::{EncodedSteps, JournalEntry, JournalFilter, NewEntry};

pub struct JobStore {
    pool: Pool,
}

/// The tables, for both backends; `{serial}` is the auto-increment key, the one thing their SQL
/// spells differently here.
const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS attrsync_jobs (
        id {serial},
        event_key TEXT NOT NULL UNIQUE,
        payload TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts BIGINT NOT NULL DEFAULT 0,
        run_at BIGINT NOT NULL,
        locked_by TEXT,
        locked_until BIGINT,
        last_error TEXT,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL)",
    // Partial indexes, one per state that is searched: each state change touches only the two
    // indexes of the states it leaves and enters, and finished rows (kept 25 h for dedup) never
    // weigh on the claim.
    "CREATE INDEX IF NOT EXISTS attrsync_jobs_queued ON attrsync_jobs (run_at) WHERE state = 'queued'",
    "CREATE INDEX IF NOT EXISTS attrsync_jobs_running ON attrsync_jobs (locked_until) WHERE state = 'running'",
    "CREATE INDEX IF NOT EXISTS attrsync_jobs_done ON attrsync_jobs (updated_at) WHERE state = 'done'",
    "CREATE TABLE IF NOT EXISTS attrsync_dedup (
        dedup_key TEXT PRIMARY KEY,
        expires_at BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS attrsync_dead_letters (
        id {serial},
        job_id BIGINT NOT NULL UNIQUE,
        last_error TEXT NOT NULL,
        failed_at BIGINT NOT NULL)",
];
const SQLITE_SERIAL: &str = "INTEGER PRIMARY KEY AUTOINCREMENT";
const POSTGRES_SERIAL: &str = "BIGSERIAL PRIMARY KEY";

/// Takes due jobs for one worker: queued jobs whose time has come, oldest first, then running
/// jobs whose lease ran out (their worker died). Two index range scans joined by UNION ALL: an OR
/// of both conditions made SQLite sort every due row, which grew with the backlog. `{lock}` is
/// `FOR UPDATE SKIP LOCKED` on PostgreSQL, so concurrent replicas neither wait for nor share a
/// row; SQLite has a single writer and needs nothing.
const CLAIM: &str = "UPDATE attrsync_jobs
    SET state = 'running', locked_by = $1, locked_until = $2, attempts = attempts + 1, updated_at = $3
    WHERE id IN (
        SELECT id FROM (
            SELECT id FROM (
                SELECT id FROM attrsync_jobs WHERE state = 'queued' AND run_at <= $3
                ORDER BY run_at LIMIT $4 {lock}) AS due
            UNION ALL
            SELECT id FROM (
                SELECT id FROM attrsync_jobs WHERE state = 'running' AND locked_until < $3
                LIMIT $4 {lock}) AS orphaned
        ) AS claimable LIMIT $4)
    RETURNING id, attempts, created_at, payload";

impl JobStore {
    /// Opens (and creates if needed) the store named by `queue.backend`.
    pub async fn connect(settings: &QueueSettings) -> anyhow::Result<JobStore> {
        use anyhow::Context as _;
        match settings.backend {
            QueueBackend::Sqlite => {
                let options = SqliteConnectOptions::new()
                    .filename(&settings.sqlite_path)
                    .busy_timeout(Duration::from_secs(10));
                let opened = |e| {
                    anyhow::Error::new(e).context(format!(
                        "queue.sqlite_path: cannot open {}",
                        settings.sqlite_path.display()
                    ))
                };
                let write = SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect_with(
                        options
                            .clone()
                            .create_if_missing(true)
                            .journal_mode(SqliteJournalMode::Wal)
                            // With WAL, NORMAL loses nothing on a process crash; only a power
                            // cut can take the last transactions, and it keeps commits cheap.
                            .synchronous(SqliteSynchronous::Normal),
                    )
                    .await
                    .map_err(opened)?;
                // After the writer: it has created the file and put it in WAL mode, which
                // the file keeps.
                let read = SqlitePoolOptions::new()
                    .max_connections(4)
                    .connect_with(options.read_only(true))
                    .await
                    .map_err(opened)?;
                let store = JobStore {
                    pool: Pool::Sqlite { write, read },
                };
                store.create_schema(SQLITE_SERIAL).await?;
                Ok(store)
            }
            QueueBackend::Postgres => {
                let url = secrecy::ExposeSecret::expose_secret(&settings.postgres_url);
                let mut options: PgConnectOptions = url
                    .parse()
                    .context("queue.postgres_url: not a PostgreSQL URL")?;
                if !settings.postgres_schema.is_empty() {
                    options = options.options([("search_path", settings.postgres_schema.as_str())]);
                }
                let pool = PgPoolOptions::new()
                    .max_connections(settings.postgres_max_connections)
                    .acquire_timeout(Duration::from_secs(5))
                    .connect_with(options)
                    .await
                    .context("queue.postgres_url: cannot connect")?;
                let store = JobStore {
                    pool: Pool::Postgres(pool),
                };
                store.create_schema(POSTGRES_SERIAL).await?;
                Ok(store)
            }
        }
    }

    /// The PostgreSQL pool, for what replicas share besides the queue (`crm.shared`); `None`
    /// on SQLite.
    pub fn postgres_pool(&self) -> Option<PgPool> {
        match &self.pool {
            Pool::Postgres(pool) => Some(pool.clone()),
            Pool::Sqlite { .. } => None,
        }
    }

    pub fn backend(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite { .. } => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    async fn create_schema(&self, serial: &str) -> Result<(), StoreError> {
        for statement in SCHEMA.iter().chain(journal::SCHEMA) {
            let statement = statement.replace("{serial}", serial);
            on_pool!(self, pool => sqlx::query(&statement).execute(pool).await.map(|r| r.rows_affected()))?;
        }
        Ok(())
    }

    /// Persists a job unless it duplicates one already accepted. `dedup_key` identifies "the same
    /// work" (conversation, participant, customer key) for `dedup_window`.
    pub async fn enqueue(
        &self,
        event_key: &str,
        dedup_key: &str,
        dedup_window: Duration,
        job: &EnrichmentJob,
    ) -> Result<Enqueued, StoreError> {
        let job = NewJob {
            event_key: event_key.to_owned(),
            dedup_key: dedup_key.to_owned(),
            payload: StoredJob::encode(job).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        };
        let outcomes = self
            .enqueue_many(std::slice::from_ref(&job), dedup_window)
            .await?;
        Ok(outcomes.into_iter().next().unwrap_or(Enqueued::Duplicate))
    }

    /// Persists several jobs in one transaction (one commit), each accepted or recognised as a
    /// duplicate on its own, in order: a duplicate of an earlier job of the same batch is caught.
    /// On an error nothing of the batch is kept.
    pub async fn enqueue_many(
        &self,
        jobs: &[NewJob],
        dedup_window: Duration,
    ) -> Result<Vec<Enqueued>, StoreError> {
        let now = now_ms();
        let expires = now + dedup_window.as_millis() as i64;
        macro_rules! enqueue_in {
            ($pool:expr) => {{
                let mut tx = $pool.begin().await?;
                let mut outcomes = Vec::with_capacity(jobs.len());
                for job in jobs {
                    let inserted = sqlx::query(
                        "INSERT INTO attrsync_jobs (event_key, payload, state, attempts, run_at, created_at, updated_at)
                         VALUES ($1, $2, 'queued', 0, $3, $3, $3)
                         ON CONFLICT (event_key) DO NOTHING
                         RETURNING id",
                    )
                    .bind(&job.event_key)
                    .bind(job.payload.as_text())
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some(row) = inserted else {
                        outcomes.push(Enqueued::Duplicate);
                        continue;
                    };
                    let id: i64 = row.try_get("id")?;
                    // Claim the dedup key only if it is free or expired; RETURNING tells whether
                    // this transaction got it, atomically even across replicas.
                    let claimed = sqlx::query(
                        "INSERT INTO attrsync_dedup (dedup_key, expires_at) VALUES ($1, $2)
                         ON CONFLICT (dedup_key) DO UPDATE SET expires_at = excluded.expires_at
                         WHERE attrsync_dedup.expires_at < $3
                         RETURNING dedup_key",
                    )
                    .bind(&job.dedup_key)
                    .bind(expires)
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if claimed.is_none() {
                        sqlx::query("DELETE FROM attrsync_jobs WHERE id = $1")
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                        outcomes.push(Enqueued::Duplicate);
                    } else {
                        outcomes.push(Enqueued::Accepted);
                    }
                }
                tx.commit().await?;
                Ok(outcomes)
            }};
        }
        match &self.pool {
            Pool::Sqlite { write: pool, .. } => enqueue_in!(pool),
            Pool::Postgres(pool) => enqueue_in!(pool),
        }
    }

    /// Claims up to `limit` due jobs for `owner`, each leased for `lease`.
    pub async fn claim(
        &self,
        owner: &str,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<ClaimedJob>, StoreError> {
        let now = now_ms();
        let until = now + lease.as_millis() as i64;
        let sql = match self.pool {
            Pool::Sqlite { .. } => CLAIM.replace("{lock}", ""),
            Pool::Postgres(_) => CLAIM.replace("{lock}", "FOR UPDATE SKIP LOCKED"),
        };
        let rows = on_pool!(self, pool => sqlx::query(&sql)
            .bind(owner)
            .bind(until)
            .bind(now)
            .bind(limit as i64)
            .fetch_all(pool)
            .await
            .map(|rows| rows.iter().map(read_claimed).collect::<Result<Vec<_>, _>>()))??;
        Ok(rows)
    }

    /// The job is done (whatever its outcome); the row stays for `dedup_retention` so the same
    /// event id is still recognised.
    pub async fn complete(&self, id: i64) -> Result<(), StoreError> {
        self.complete_many(&[id]).await
    }

    /// Marks several jobs done in one statement: one commit for a batch of finished jobs.
    pub async fn complete_many(&self, ids: &[i64]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let sql = complete_sql(ids);
        on_pool!(self, pool => sqlx::query(&sql).bind(now_ms()).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Puts a failed job back, due again at `run_at_ms`.
    pub async fn retry_at(&self, id: i64, run_at_ms: i64, error: &str) -> Result<(), StoreError> {
        let now = now_ms();
        on_pool!(self, pool => sqlx::query(
            "UPDATE attrsync_jobs SET state = 'queued', run_at = $2, locked_by = NULL, locked_until = NULL,
             last_error = $3, updated_at = $4 WHERE id = $1")
            .bind(id).bind(run_at_ms).bind(error).bind(now).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Hands a claimed job back untouched (shutdown): its attempt does not count.
    pub async fn release(&self, id: i64) -> Result<(), StoreError> {
        let now = now_ms();
        on_pool!(self, pool => sqlx::query(
            "UPDATE attrsync_jobs SET state = 'queued', attempts = attempts - 1, locked_by = NULL,
             locked_until = NULL, updated_at = $2 WHERE id = $1 AND state = 'running'")
            .bind(id).bind(now).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Gives up on a job: it moves to the dead letters with its last error.
    pub async fn dead_letter(&self, id: i64, error: &str) -> Result<(), StoreError> {
        let now = now_ms();
        macro_rules! dead_in {
            ($pool:expr) => {{
                let mut tx = $pool.begin().await?;
                sqlx::query(
                    "UPDATE attrsync_jobs SET state = 'dead', locked_by = NULL, locked_until = NULL,
                     last_error = $2, updated_at = $3 WHERE id = $1",
                )
                .bind(id)
                .bind(error)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO attrsync_dead_letters (job_id, last_error, failed_at) VALUES ($1, $2, $3)
                     ON CONFLICT (job_id) DO UPDATE SET last_error = excluded.last_error, failed_at = excluded.failed_at",
                )
                .bind(id)
                .bind(error)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }};
        }
        match &self.pool {
            Pool::Sqlite { write: pool, .. } => dead_in!(pool),
            Pool::Postgres(pool) => dead_in!(pool),
        }
    }

    pub async fn dead_letters(&self, limit: i64) -> Result<Vec<DeadLetter>, StoreError> {
        let sql = "SELECT d.job_id AS id, j.event_key, j.attempts, d.last_error, j.created_at, d.failed_at, j.payload
                   FROM attrsync_dead_letters d JOIN attrsync_jobs j ON j.id = d.job_id
                   ORDER BY d.failed_at DESC LIMIT $1";
        let rows = on_read_pool!(self, pool => sqlx::query(sql).bind(limit).fetch_all(pool).await
            .map(|rows| rows.iter().map(read_dead).collect::<Vec<_>>()))?;
        rows.into_iter().collect()
    }

    pub async fn dead_letter_by_id(&self, id: i64) -> Result<Option<DeadLetter>, StoreError> {
        let sql = "SELECT d.job_id AS id, j.event_key, j.attempts, d.last_error, j.created_at, d.failed_at, j.payload
                   FROM attrsync_dead_letters d JOIN attrsync_jobs j ON j.id = d.job_id
                   WHERE d.job_id = $1";
        let row = on_read_pool!(self, pool => sqlx::query(sql).bind(id).fetch_optional(pool).await
            .map(|r| r.map(|r| read_dead(&r))))?;
        row.transpose()
    }

    /// Queues a dead letter again, as a fresh job (attempts and age reset: the operator asked).
    pub async fn replay(&self, id: i64) -> Result<bool, StoreError> {
        let now = now_ms();
        macro_rules! replay_in {
            ($pool:expr) => {{
                let mut tx = $pool.begin().await?;
                let deleted = sqlx::query("DELETE FROM attrsync_dead_letters WHERE job_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if deleted == 0 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                sqlx::query(
                    "UPDATE attrsync_jobs SET state = 'queued', attempts = 0, run_at = $2, created_at = $2,
                     updated_at = $2 WHERE id = $1",
                )
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(true)
            }};
        }
        match &self.pool {
            Pool::Sqlite { write: pool, .. } => replay_in!(pool),
            Pool::Postgres(pool) => replay_in!(pool),
        }
    }

    pub async fn stats(&self) -> Result<QueueStats, StoreError> {
        let now = now_ms();
        // Per state, so each count reads its own partial index rather than the whole table.
        let (queued, running, oldest, dead): (i64, i64, Option<i64>, i64) = on_read_pool!(self, pool => {
            let row = sqlx::query(
                "SELECT (SELECT COUNT(*) FROM attrsync_jobs WHERE state = 'queued') AS queued,
                        (SELECT COUNT(*) FROM attrsync_jobs WHERE state = 'running') AS running,
                        (SELECT MIN(created_at) FROM attrsync_jobs WHERE state = 'queued') AS oldest,
                        (SELECT COUNT(*) FROM attrsync_dead_letters) AS dead",
            )
            .fetch_one(pool)
            .await?;
            (row.try_get("queued")?, row.try_get("running")?, row.try_get("oldest")?, row.try_get("dead")?)
        });
        let depth = queued + running;
        Ok(QueueStats {
            depth: depth.max(0) as u64,
            oldest_age_ms: oldest.map(|t| (now - t).max(0) as u64).unwrap_or(0),
            dead_letters: dead.max(0) as u64,
        })
    }

    /// Deletes finished jobs and expired dedup keys older than `retention`.
    pub async fn purge(&self, retention: Duration) -> Result<u64, StoreError> {
        let now = now_ms();
        let cutoff = now - retention.as_millis() as i64;
        let jobs = on_pool!(self, pool => sqlx::query(
            "DELETE FROM attrsync_jobs WHERE state = 'done' AND updated_at < $1")
            .bind(cutoff).execute(pool).await.map(|r| r.rows_affected()))?;
        on_pool!(self, pool => sqlx::query("DELETE FROM attrsync_dedup WHERE expires_at < $1")
            .bind(now).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(jobs)
    }

    /// A cheap round trip through the queue's own table, for readiness: fails when the server is
    /// down and when the tables are gone.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_read_pool!(self, pool => sqlx::query("SELECT id FROM attrsync_jobs WHERE id = 0")
            .fetch_optional(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }
}

fn read_claimed<R: sqlx::Row>(row: &R) -> Result<ClaimedJob, StoreError>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let attempts: i64 = row.try_get("attempts")?;
    let payload: String = row.try_get("payload")?;
    Ok(ClaimedJob {
        id: row.try_get("id")?,
        attempts: attempts.max(0) as u32,
        created_at_ms: row.try_get("created_at")?,
        payload: StoredJob::from_text(payload),
    })
}

fn read_dead<R: sqlx::Row>(row: &R) -> Result<DeadLetter, StoreError>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let attempts: i64 = row.try_get("attempts")?;
    let payload: String = row.try_get("payload")?;
    Ok(DeadLetter {
        id: row.try_get("id")?,
        event_key: row.try_get("event_key")?,
        attempts: attempts.max(0) as u32,
        last_error: row.try_get("last_error")?,
        created_at_ms: row.try_get("created_at")?,
        failed_at_ms: row.try_get("failed_at")?,
        payload: StoredJob::from_text(payload),
    })
}
