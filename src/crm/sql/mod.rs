//! The `sql` CRM adapter: customers in PostgreSQL, MySQL/MariaDB or SQLite, found by one
//! configured query per key kind (`[crm.sql] queries`).
//!
//! A query names its values with placeholders (`:phone_e164`, `:phone_raw`, `:email`,
//! `:customer_id`, ...; [`crate::config::sql`] reads them); `query` turns them into the
//! backend's bind markers and the values are bound as parameters, so a caller's key can never
//! change the statement. Every row is a candidate: its columns are its fields (or the
//! `fields` mapping picks and renames them), its id, type and last-modified time come from
//! configured columns, and for phone and email keys it is graded on the configured columns
//! ([`crate::crm::grade::best_match`]) and dropped when they do not hold the key. Id keys are
//! `exact`: the query compared them.
//!
//! `db` holds the pools (read-only sessions, the statement timeout on the server), `errors`
//! maps sqlx's errors onto [`CrmError`]. `/readyz` runs `SELECT 1`.

mod db;
mod errors;
pub mod query;

use std::collections::BTreeMap;

use phonenumber::country;
use serde_json::Value;

use super::candidate::{last_modified_of, Candidate, MatchQuality};
use super::grade::{best_match, count_dropped, NOT_MATCHING};
use super::upstream::Upstream;
use super::{CrmAdapter, CrmError, CrmRecord, CustomerKey, KeyKind};
use crate::config::{SqlBackend, SqlCrmSettings};
use crate::metrics;
use db::Db;
use query::Prepared;

const SOURCE: &str = "sql";

pub struct SqlCrm {
    db: Db,
    statements: BTreeMap<KeyKind, Prepared>,
    key_kinds: Vec<KeyKind>,
    fields: BTreeMap<String, String>,
    record_id_column: String,
    record_type: String,
    record_type_column: String,
    last_modified_column: String,
    phone_columns: Vec<String>,
    email_columns: Vec<String>,
    max_rows: usize,
    timeout: std::time::Duration,
    region: country::Id,
    upstream: Upstream,
}

impl SqlCrm {
    /// The adapter `[crm.sql]` describes (validated at load); no connection is opened until the
    /// first lookup or readiness check. `region` is `phone.default_region`, for grading.
    pub fn from_settings(settings: &SqlCrmSettings, region: country::Id) -> anyhow::Result<Self> {
        let db = Db::connect_lazy(settings)?;
        let backend = db.backend();
        let statements = settings
            .queries
            .iter()
            .map(|(kind, q)| {
                Prepared::new(q, backend)
                    .map(|p| (*kind, p))
                    .map_err(|e| anyhow::anyhow!("crm.sql.queries.{}: {e}", kind.as_str()))
            })
            .collect::<anyhow::Result<BTreeMap<_, _>>>()?;
        Ok(Self {
            db,
            key_kinds: statements.keys().copied().collect(),
            statements,
            fields: settings.fields.clone(),
            record_id_column: settings.record_id_column.clone(),
            record_type: settings.record_type.clone(),
            record_type_column: settings.record_type_column.clone(),
            last_modified_column: settings.last_modified_column.clone(),
            phone_columns: settings.phone_columns.clone(),
            email_columns: settings.email_columns.clone(),
            max_rows: settings.max_rows,
            timeout: settings.common.timeout(),
            region,
            upstream: Upstream::from_settings(SOURCE, &settings.common),
        })
    }

    pub fn backend(&self) -> SqlBackend {
        self.db.backend()
    }

    /// One attempt: the statement with its values bound, recorded in the upstream metrics.
    async fn run(
        &self,
        statement: &Prepared,
        binds: &[Option<String>],
    ) -> Result<Vec<CrmRecord>, CrmError> {
        let started = tokio::time::Instant::now();
        let result = self
            .db
            .rows(&statement.sql, binds, self.max_rows)
            .await
            .map_err(|e| errors::crm_error(self.db.backend(), &e));
        metrics::crm_call(
            SOURCE,
            "lookup",
            errors::status_of(&result.as_ref().map(drop)),
            started.elapsed(),
        );
        result
    }

    /// The candidates among `rows` for `key`.
    fn candidates(&self, key: &CustomerKey, rows: Vec<CrmRecord>) -> Vec<Candidate> {
        let graded_on: &[String] = match key {
            CustomerKey::Phone(_) => &self.phone_columns,
            CustomerKey::Email(_) => &self.email_columns,
            CustomerKey::CustomerId(_)
            | CustomerKey::ExternalContactId(_)
            | CustomerKey::MessagingId(_) => &[],
        };
        let returned = rows.len();
        let kept: Vec<Candidate> = rows
            .into_iter()
            .filter_map(|row| {
                let (matched_field, quality) = if graded_on.is_empty() {
                    (key.kind().as_str().to_owned(), MatchQuality::Exact)
                } else {
                    best_match(key, &row, graded_on, self.region)?
                };
                Some(self.candidate(row, matched_field, quality))
            })
            .collect();
        count_dropped(SOURCE, NOT_MATCHING, returned - kept.len());
        kept
    }

    fn candidate(&self, row: CrmRecord, matched_field: String, quality: MatchQuality) -> Candidate {
        let column = |name: &str| (!name.is_empty()).then(|| row.get(name)).flatten();
        let text = |name: &str| {
            column(name).and_then(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
        };
        let record_type =
            text(&self.record_type_column).unwrap_or_else(|| self.record_type.clone());
        let record_id = text(&self.record_id_column).unwrap_or_default();
        let last_modified = column(&self.last_modified_column).and_then(last_modified_of);
        let fields = if self.fields.is_empty() {
            row
        } else {
            self.fields
                .iter()
                .filter_map(|(name, col)| row.get(col).map(|v| (name.clone(), v.clone())))
                .collect()
        };
        Candidate {
            source: SOURCE,
            record_type,
            record_id,
            matched_field,
            quality,
            last_modified,
            fields,
        }
    }
}

impl SqlCrm {
    /// The same adapter, its calls waiting on `budget` (`upstream::Budgets` chose it: this
    /// process's, or the deployment's shared one).
    pub fn with_budget(
        mut self,
        budget: std::sync::Arc<dyn crate::crm::budget::CallBudget>,
    ) -> Self {
        self.upstream = self.upstream.with_budget(budget);
        self
    }
}

#[async_trait::async_trait]
impl CrmAdapter for SqlCrm {
    fn kind(&self) -> &'static str {
        SOURCE
    }

    fn key_kinds(&self) -> &[KeyKind] {
        &self.key_kinds
    }

    async fn find(&self, key: &CustomerKey) -> Result<Vec<Candidate>, CrmError> {
        let Some(statement) = self.statements.get(&key.kind()) else {
            return Ok(Vec::new());
        };
        let binds = statement.binds(key);
        let rows = self
            .upstream
            .call("lookup", || self.run(statement, &binds))
            .await?;
        Ok(self.candidates(key, rows))
    }

    async fn ready(&self) -> Result<(), CrmError> {
        // One `SELECT 1` on a pooled connection: no table is read, no budget is spent.
        match tokio::time::timeout(self.timeout, self.db.ping()).await {
            Ok(result) => result.map_err(|e| errors::crm_error(self.db.backend(), &e)),
            Err(_) => Err(CrmError::Timeout),
        }
    }
}
