//! The connection pool of each backend, set up for lookups: read-only sessions, the source's
//! timeout as the server's statement timeout, connections opened on demand (attrsync starts,
//! and `/readyz` says so, while the database is down). Rows come back as JSON objects, column
//! by column, whatever the column's SQL type.
//!
//! Statement timeouts, per backend (90% of the source's `timeout_ms`, so the server cancels
//! first):
//! - PostgreSQL: `statement_timeout` (milliseconds) and `default_transaction_read_only`, sent as
//!   startup options ("Abort any statement that takes more than the specified amount of time",
//!   PostgreSQL docs, 19.11 Client Connection Defaults); a timed-out statement fails with
//!   SQLSTATE 57014.
//! - MySQL: `max_execution_time` (milliseconds; "top level read-only SELECT statements", MySQL
//!   5.7.8+, dev.mysql.com "Server-side SELECT statement timeouts"), error 3024.
//! - MariaDB: `max_statement_time` (seconds, a decimal; MariaDB 10.1.1+, MariaDB KB "Aborting
//!   Statements that Exceed a Certain Time to Execute"), error 1969. MariaDB ignores
//!   `max_execution_time`, so the server is asked which it is (`SELECT VERSION()`) on connect.
//! - SQLite: no server; the lookup stops waiting at the timeout (the source's attempt timeout),
//!   and `busy_timeout` bounds the wait for a writer's lock. Unverified: whether the abandoned
//!   statement is interrupted; sqlx runs it on the connection's worker thread.

use std::str::FromStr as _;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use futures_util::TryStreamExt as _;
use secrecy::ExposeSecret as _;
use serde_json::Value;
use sqlx::mysql::{MySql, MySqlConnectOptions, MySqlPool};
use sqlx::pool::PoolOptions;
use sqlx::postgres::{PgConnectOptions, PgPool, Postgres};
use sqlx::sqlite::{Sqlite, SqliteConnectOptions, SqlitePool};
use sqlx::{Column as _, Row as _, TypeInfo as _};

use super::super::CrmRecord;
use crate::config::{SqlBackend, SqlCrmSettings};

/// A pool of one backend.
pub enum Db {
    Postgres(PgPool),
    MySql(MySqlPool),
    Sqlite(SqlitePool),
}

/// How long a pooled connection may sit idle before it is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(600);

impl Db {
    /// The pool `settings` describe; no connection is opened yet.
    pub fn connect_lazy(settings: &SqlCrmSettings) -> anyhow::Result<Self> {
        let url = settings.url.expose_secret().trim();
        let backend = SqlBackend::of_url(url)
            .ok_or_else(|| anyhow::anyhow!("crm.sql.url: not a postgres, mysql or sqlite URL"))?;
        let timeout = settings.common.timeout();
        let server_ms = server_timeout_ms(timeout);
        // Shorter than the attempt, so a database that refuses connections fails the attempt
        // as `Connect` (sqlx retries a refused connect until this runs out) rather than as
        // the attempt's `Timeout`.
        let acquire = (timeout * 3 / 4).min(Duration::from_secs(2));
        let bad_url = |e: sqlx::Error| {
            // Never the URL itself: it may hold a password.
            anyhow::anyhow!("crm.sql.url: {}", super::errors::describe(&e))
        };
        Ok(match backend {
            SqlBackend::Postgres => {
                let options = PgConnectOptions::from_str(url)
                    .map_err(bad_url)?
                    .application_name("attrsync")
                    .options([
                        ("statement_timeout", server_ms.to_string()),
                        ("default_transaction_read_only", "on".to_owned()),
                    ]);
                Db::Postgres(pool::<Postgres>(settings, acquire).connect_lazy_with(options))
            }
            SqlBackend::MySql => {
                let options = MySqlConnectOptions::from_str(url).map_err(bad_url)?;
                let pool = pool::<MySql>(settings, acquire)
                    .after_connect(move |conn, _| Box::pin(mysql_session(conn, server_ms)));
                Db::MySql(pool.connect_lazy_with(options))
            }
            SqlBackend::Sqlite => {
                let options = SqliteConnectOptions::from_str(url)
                    .map_err(bad_url)?
                    .read_only(true)
                    .create_if_missing(false)
                    .busy_timeout(timeout);
                Db::Sqlite(pool::<Sqlite>(settings, acquire).connect_lazy_with(options))
            }
        })
    }

    pub fn backend(&self) -> SqlBackend {
        match self {
            Db::Postgres(_) => SqlBackend::Postgres,
            Db::MySql(_) => SqlBackend::MySql,
            Db::Sqlite(_) => SqlBackend::Sqlite,
        }
    }

    /// At most `max_rows` rows of `sql` with `binds` bound in order, as JSON objects.
    pub async fn rows(
        &self,
        sql: &str,
        binds: &[Option<String>],
        max_rows: usize,
    ) -> Result<Vec<CrmRecord>, sqlx::Error> {
        macro_rules! fetch {
            ($pool:expr, $decode:ident) => {{
                let mut query = sqlx::query(sql);
                for value in binds {
                    query = query.bind(value.clone());
                }
                let mut stream = query.fetch($pool);
                let mut out = Vec::new();
                while out.len() < max_rows {
                    match stream.try_next().await? {
                        Some(row) => out.push($decode(&row)),
                        None => break,
                    }
                }
                Ok(out)
            }};
        }
        match self {
            Db::Postgres(pool) => fetch!(pool, pg_row),
            Db::MySql(pool) => fetch!(pool, mysql_row),
            Db::Sqlite(pool) => fetch!(pool, sqlite_row),
        }
    }

    /// `SELECT 1`: a connection can be had and the server answers.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        const PING: &str = "SELECT 1";
        match self {
            Db::Postgres(pool) => sqlx::query(PING).execute(pool).await.map(drop),
            Db::MySql(pool) => sqlx::query(PING).execute(pool).await.map(drop),
            Db::Sqlite(pool) => sqlx::query(PING).execute(pool).await.map(drop),
        }
    }
}

/// A new MySQL/MariaDB connection's session: the statement timeout in the server's own
/// variable, and read-only transactions.
async fn mysql_session(conn: &mut sqlx::MySqlConnection, millis: u64) -> Result<(), sqlx::Error> {
    use sqlx::Executor as _;
    let version: String = conn.fetch_one("SELECT VERSION()").await?.try_get(0)?;
    // Numbers this process formats, not input.
    let limit = if version.contains("MariaDB") {
        format!(
            "SET SESSION max_statement_time = {}.{:03}",
            millis / 1000,
            millis % 1000
        )
    } else {
        format!("SET SESSION max_execution_time = {millis}")
    };
    conn.execute(limit.as_str()).await?;
    conn.execute("SET SESSION TRANSACTION READ ONLY").await?;
    Ok(())
}

/// The server's statement timeout: 90% of the attempt's, so the server cancels a slow
/// statement (and the connection stays in a known state) before attrsync stops waiting.
pub fn server_timeout_ms(attempt: Duration) -> u64 {
    (attempt.as_millis() as u64 * 9 / 10).max(1)
}

fn pool<DB: sqlx::Database>(settings: &SqlCrmSettings, acquire: Duration) -> PoolOptions<DB> {
    PoolOptions::<DB>::new()
        .max_connections(settings.max_connections)
        .min_connections(0)
        .acquire_timeout(acquire)
        .idle_timeout(Some(IDLE_TIMEOUT))
}

/// A row as a JSON object: each column decoded as the first of `types` it is compatible with;
/// NULLs are left out, and so are columns of types none of them reads (named in a warning:
/// cast such a column to text in the query).
macro_rules! json_row {
    ($row:expr, [$($ty:ty => $to:expr),* $(,)?]) => {{
        let row = $row;
        let mut map = CrmRecord::new();
        for (i, column) in row.columns().iter().enumerate() {
            let decoded: Option<Option<Value>> = 'decoded: {
                $(
                    if let Ok(v) = row.try_get::<Option<$ty>, _>(i) {
                        break 'decoded Some(v.map($to));
                    }
                )*
                None
            };
            match decoded {
                Some(Some(value)) if !value.is_null() => {
                    map.insert(column.name().to_owned(), value);
                }
                Some(_) => {}
                None => tracing::warn!(
                    source = "sql",
                    column = column.name(),
                    sql_type = column.type_info().name(),
                    "a column of a type attrsync does not read was left out; cast it to text in the query"
                ),
            }
        }
        map
    }};
}

fn number(f: f64) -> Value {
    serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
}

fn utc(t: DateTime<Utc>) -> Value {
    Value::String(t.to_rfc3339())
}

/// Local-less, as the database stored it (taken as UTC by `most_recent`).
fn naive(t: NaiveDateTime) -> Value {
    Value::String(t.format("%Y-%m-%dT%H:%M:%S%.f").to_string())
}

fn utf8(bytes: Vec<u8>) -> Value {
    String::from_utf8(bytes).map_or(Value::Null, Value::String)
}

fn pg_row(row: &sqlx::postgres::PgRow) -> CrmRecord {
    json_row!(row, [
        String => Value::String,
        i64 => Value::from,
        i32 => Value::from,
        i16 => Value::from,
        f64 => number,
        f32 => |f: f32| number(f64::from(f)),
        bool => Value::Bool,
        DateTime<Utc> => utc,
        NaiveDateTime => naive,
        NaiveDate => |d: NaiveDate| Value::String(d.to_string()),
        Value => |v: Value| v,
        uuid::Uuid => |u: uuid::Uuid| Value::String(u.to_string()),
    ])
}

fn mysql_row(row: &sqlx::mysql::MySqlRow) -> CrmRecord {
    json_row!(row, [
        String => Value::String,
        i64 => Value::from,
        u64 => Value::from,
        f64 => number,
        f32 => |f: f32| number(f64::from(f)),
        bool => Value::Bool,
        DateTime<Utc> => utc,
        NaiveDateTime => naive,
        NaiveDate => |d: NaiveDate| Value::String(d.to_string()),
        Value => |v: Value| v,
        Vec<u8> => utf8,
    ])
}

fn sqlite_row(row: &sqlx::sqlite::SqliteRow) -> CrmRecord {
    json_row!(row, [
        String => Value::String,
        i64 => Value::from,
        f64 => number,
        bool => Value::Bool,
        Vec<u8> => utf8,
    ])
}
