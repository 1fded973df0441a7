//! Real databases for the `sql` adapter's tests: a fresh SQLite file always; a fresh schema on
//! the PostgreSQL server and a fresh table on the MariaDB/MySQL server when they answer
//! (`ATTRSYNC_TEST_DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/test`;
//! `ATTRSYNC_TEST_MYSQL_URL`, default `mysql://root@127.0.0.1:3306/test`). A server that does
//! not answer is skipped, and the test says so on stderr.

use std::str::FromStr as _;
use std::time::Duration;

use attrsync::config::{CrmAdapterKind, Settings};
use attrsync::domain::KeyKind;
use sqlx::Executor as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    MariaDb,
}

pub const BACKENDS: [Backend; 3] = [Backend::Sqlite, Backend::Postgres, Backend::MariaDb];

enum Admin {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
    MySql(sqlx::MySqlPool),
}

/// A customer table of its own on one backend, and the URL attrsync reads it through.
pub struct Table {
    pub backend: Backend,
    pub url: String,
    /// Qualified where the backend has schemas.
    pub name: String,
    admin: Admin,
    _dir: Option<tempfile::TempDir>,
}

/// One customer row; every column is text but `updated_at`.
#[derive(Default, Clone)]
pub struct Row<'a> {
    pub id: &'a str,
    pub kind: &'a str,
    pub name: &'a str,
    pub phone: &'a str,
    pub mobile: &'a str,
    pub email: &'a str,
    pub external_id: &'a str,
    pub tier: &'a str,
    /// `YYYY-MM-DD HH:MM:SS`, or empty for NULL.
    pub updated_at: &'a str,
}

/// The test's own pool: two connections (the servers are shared by parallel tests).
fn small<DB: sqlx::Database>() -> sqlx::pool::PoolOptions<DB> {
    sqlx::pool::PoolOptions::new().max_connections(2)
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

impl Table {
    /// A fresh table on `backend`, or `None` (said on stderr) when its server does not answer.
    pub async fn fresh(backend: Backend, test: &str) -> Option<Table> {
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let wait = Duration::from_secs(3);
        let skipped = |url: &str| {
            eprintln!("skipped: {test} on {backend:?} ({url} did not answer)");
        };
        let (url, name, admin, dir) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().ok()?;
                let path = dir.path().join("customers.db");
                let options = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(&path)
                    .create_if_missing(true);
                let pool = sqlx::SqlitePool::connect_with(options).await.ok()?;
                let url = format!("sqlite://{}", path.display());
                (url, "customers".to_owned(), Admin::Sqlite(pool), Some(dir))
            }
            Backend::Postgres => {
                let url = env_or(
                    "ATTRSYNC_TEST_DATABASE_URL",
                    "postgres://postgres@127.0.0.1:5432/test",
                );
                let Ok(Ok(pool)) =
                    tokio::time::timeout(wait, small::<sqlx::Postgres>().connect(&url)).await
                else {
                    skipped(&url);
                    return None;
                };
                let schema = format!("t_{suffix}");
                pool.execute(format!("CREATE SCHEMA {schema}").as_str())
                    .await
                    .ok()?;
                (
                    url,
                    format!("{schema}.customers"),
                    Admin::Postgres(pool),
                    None,
                )
            }
            Backend::MariaDb => {
                let url = env_or(
                    "ATTRSYNC_TEST_MYSQL_URL",
                    "mysql://root@127.0.0.1:3306/test",
                );
                let options = sqlx::mysql::MySqlConnectOptions::from_str(&url).ok()?;
                let Ok(Ok(pool)) =
                    tokio::time::timeout(wait, small::<sqlx::MySql>().connect_with(options)).await
                else {
                    skipped(&url);
                    return None;
                };
                (url, format!("c_{suffix}"), Admin::MySql(pool), None)
            }
        };
        let table = Table {
            backend,
            url,
            name,
            admin,
            _dir: dir,
        };
        table
            .exec(&format!(
                "CREATE TABLE {} (id VARCHAR(64) PRIMARY KEY, kind VARCHAR(32), \
                 name VARCHAR(200), phone VARCHAR(64), mobile VARCHAR(64), email VARCHAR(200), \
                 external_id VARCHAR(64), tier VARCHAR(32), updated_at TIMESTAMP NULL)",
                table.name
            ))
            .await;
        Some(table)
    }

    /// Runs a statement of the test's own (fixed text, no caller values).
    pub async fn exec(&self, sql: &str) {
        let done = match &self.admin {
            Admin::Sqlite(p) => p.execute(sql).await.map(drop),
            Admin::Postgres(p) => p.execute(sql).await.map(drop),
            Admin::MySql(p) => p.execute(sql).await.map(drop),
        };
        done.unwrap_or_else(|e| panic!("{:?}: {sql}: {e}", self.backend));
    }

    /// The number of rows in the table.
    pub async fn count(&self) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM {}", self.name);
        match &self.admin {
            Admin::Sqlite(p) => sqlx::query_scalar(&sql).fetch_one(p).await,
            Admin::Postgres(p) => sqlx::query_scalar(&sql).fetch_one(p).await,
            Admin::MySql(p) => sqlx::query_scalar(&sql).fetch_one(p).await,
        }
        .expect("count the rows")
    }

    /// Inserts `rows`, their values bound (some hold quotes on purpose).
    pub async fn insert(&self, rows: &[Row<'_>]) {
        let marks: Vec<String> = (1..=9)
            .map(|i| match self.backend {
                Backend::Postgres => format!("${i}"),
                _ => "?".to_owned(),
            })
            .collect();
        let updated = match self.backend {
            Backend::Postgres => format!("CAST({} AS TIMESTAMP)", marks[8]),
            _ => marks[8].clone(),
        };
        let sql = format!(
            "INSERT INTO {} (id, kind, name, phone, mobile, email, external_id, tier, updated_at) \
             VALUES ({}, {updated})",
            self.name,
            marks[..8].join(", ")
        );
        for r in rows {
            let text = |v: &str| (!v.is_empty()).then(|| v.to_owned());
            let values = [
                r.id,
                r.kind,
                r.name,
                r.phone,
                r.mobile,
                r.email,
                r.external_id,
                r.tier,
                r.updated_at,
            ]
            .map(text);
            macro_rules! run {
                ($pool:expr) => {{
                    let mut q = sqlx::query(&sql);
                    for v in values {
                        q = q.bind(v);
                    }
                    q.execute($pool).await.map(drop)
                }};
            }
            match &self.admin {
                Admin::Sqlite(p) => run!(p),
                Admin::Postgres(p) => run!(p),
                Admin::MySql(p) => run!(p),
            }
            .unwrap_or_else(|e| panic!("{:?}: insert: {e}", self.backend));
        }
    }

    /// Points `settings` at this table with one query per key kind; `lower()` works on all
    /// three backends.
    pub fn configure(&self, settings: &mut Settings) {
        let t = &self.name;
        let columns = "id, kind, name, phone, mobile, email, tier, updated_at";
        settings.crm.adapter = CrmAdapterKind::Sql;
        settings.crm.sql.url = self.url.clone().into();
        settings.crm.sql.queries = [
            (
                KeyKind::Phone,
                format!(
                    "SELECT {columns} FROM {t} WHERE phone IN (:phone_e164, :phone_national) \
                     OR mobile IN (:phone_e164, :phone_national) ORDER BY id"
                ),
            ),
            (
                KeyKind::Email,
                format!("SELECT {columns} FROM {t} WHERE lower(email) = lower(:email) ORDER BY id"),
            ),
            (
                KeyKind::CustomerId,
                format!("SELECT {columns} FROM {t} WHERE id = :customer_id"),
            ),
            (
                KeyKind::ExternalContactId,
                format!("SELECT {columns} FROM {t} WHERE external_id = :external_contact_id"),
            ),
        ]
        .into_iter()
        .collect();
        settings.crm.sql.phone_columns = vec!["phone".into(), "mobile".into()];
        settings.crm.sql.email_columns = vec!["email".into()];
        settings.crm.sql.record_type_column = "kind".into();
        settings.crm.sql.last_modified_column = "updated_at".into();
        settings.crm.sql.common.retry_base_ms = 10;
        settings.crm.sql.common.retry_max_ms = 50;
    }
}
