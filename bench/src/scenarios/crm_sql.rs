//! `crm-sql`: `/v1/lookup` at a fixed rate through the `sql` adapter against a real
//! PostgreSQL (`ATTRSYNC_TEST_DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/test`),
//! every caller a cache miss, the query adding 20 ms on the server (`pg_sleep(0.02)`). Read
//! beside `lookup-latency` of the same run (the generic REST adapter, its CRM adding 20 ms):
//! the added latency here is e2e minus the 20 ms sleep, so it holds the PostgreSQL round trip
//! and the statement's own time, where the REST figure leaves out the CRM handler's time.
//! Without a PostgreSQL that answers, the scenario fails saying so.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::json;
use sqlx::Executor as _;

use crate::load::{self, histogram, Latency};
use crate::report::ScenarioResult;
use crate::upstream::{CrmFront, GenesysFront};

use super::{slow, Bench, Scenario, WARMUP_CALLERS};

const SLEEP: Duration = Duration::from_millis(20);

impl Bench {
    pub(super) async fn crm_sql(&self) -> anyhow::Result<ScenarioResult> {
        let name = Scenario::CrmSql.name();
        let mut r = ScenarioResult::new(name);
        let url = std::env::var("ATTRSYNC_TEST_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        let admin = tokio::time::timeout(Duration::from_secs(5), sqlx::PgPool::connect(&url))
            .await
            .context("PostgreSQL did not answer")?
            .context("no PostgreSQL for the crm-sql scenario")?;
        let schema = format!("bench_{}", uuid::Uuid::new_v4().simple());
        let rate = self.sizes.lookup_rate;
        let n = (rate * self.sizes.lookup_secs).round() as u64;
        // Callers 0..n and the warm-up callers, with the bench's phone numbers.
        let setup = format!(
            "CREATE SCHEMA {schema};
             CREATE TABLE {schema}.customers (id text PRIMARY KEY, phone text NOT NULL,
                 name text, tier text);
             INSERT INTO {schema}.customers
             SELECT 'C-' || k, '+1317' || lpad((200 + (k / 10000) % 800)::text, 3, '0')
                    || lpad((k % 10000)::text, 4, '0'), 'Customer ' || k, 'gold'
             FROM (SELECT generate_series(0, {last}) AS k
                   UNION ALL SELECT generate_series({WARMUP_CALLERS}, {WARMUP_CALLERS} + 299)) s;
             CREATE INDEX ON {schema}.customers (phone);
             ANALYZE {schema}.customers;",
            last = n.saturating_sub(1)
        );
        admin
            .execute(setup.as_str())
            .await
            .context("creating the table")?;
        let outcome = self.crm_sql_run(&url, &schema, n, &mut r).await;
        let _ = admin
            .execute(format!("DROP SCHEMA {schema} CASCADE").as_str())
            .await;
        outcome?;
        Ok(r)
    }

    async fn crm_sql_run(
        &self,
        url: &str,
        schema: &str,
        n: u64,
        r: &mut ScenarioResult,
    ) -> anyhow::Result<()> {
        let genesys = GenesysFront::start().await?;
        let crm = CrmFront::start(self.crm).await?;
        let query = format!(
            "SELECT c.id, c.phone, c.name, c.tier FROM (SELECT pg_sleep({})) AS s, \
             {schema}.customers AS c WHERE c.phone = :phone_e164",
            SLEEP.as_secs_f64()
        );
        let extra: Vec<(String, String)> = [
            ("ATTRSYNC_CRM__ADAPTER", "sql".to_owned()),
            ("ATTRSYNC_CRM__SQL__URL", url.to_owned()),
            ("ATTRSYNC_CRM__SQL__QUERIES__PHONE", query),
            ("ATTRSYNC_CRM__SQL__MAX_CONNECTIONS", "48".to_owned()),
            ("ATTRSYNC_CRM__SQL__TIMEOUT_MS", "2000".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let running = self
            .start_attrsync(Scenario::CrmSql.name(), &genesys, &crm, extra, 256)
            .await?;
        let http = &running.http;
        let lookup_url = format!("{}/v1/lookup", running.child.base);
        let auth = load::basic_auth("attrsync", &running.secrets.lookup_password)?;

        let warm = load::lookups_closed(
            http,
            &lookup_url,
            &auth,
            WARMUP_CALLERS,
            300,
            32,
            Instant::now() + Duration::from_secs(60) * slow(self),
            Arc::new(AtomicU64::new(0)),
        )
        .await;
        r.detail("warmup_lookups", warm.http.len());

        let statements = |prom: &crate::child::Prom| {
            prom.sum(
                "attrsync_upstream_requests_total",
                &[("source", "sql"), ("status_class", "2xx")],
            )
        };
        let before = statements(&running.child.metrics(http).await?);
        let rate = self.sizes.lookup_rate;
        let callers: Vec<u64> = (0..n).collect();
        self.on_timed_phase(&running.child).await;
        let miss = load::lookups_open(http, &lookup_url, &auth, &callers, rate, 5_000).await;
        let after = statements(&running.child.metrics(http).await?);

        let mut e2e = histogram();
        let mut added = histogram();
        let mut found = 0u64;
        let mut status = std::collections::BTreeMap::<u16, u64>::new();
        for s in &miss.samples {
            *status.entry(s.status).or_insert(0) += 1;
            found += u64::from(s.found);
            if s.status != 200 {
                continue;
            }
            let took = s.done_ns.saturating_sub(s.sent_ns).max(1);
            e2e.saturating_record(took);
            added.saturating_record(took.saturating_sub(SLEEP.as_nanos() as u64).max(1));
        }
        let elapsed = miss.elapsed.as_secs_f64();
        r.rate = Some(miss.samples.len() as f64 / elapsed.max(1e-9));
        r.rate_unit = "req/s".to_owned();
        r.rate_definition = format!(
            "open loop, {rate:.0} lookups/s scheduled, distinct callers (every one a statement)"
        );
        r.latency_kind =
            "end-to-end /v1/lookup, cache miss, PostgreSQL statement sleeping 20 ms".to_owned();
        r.latency = Latency::of(&e2e);
        if let Some(l) = Latency::of(&added) {
            r.more_latencies.insert("added (e2e - 20 ms)".to_owned(), l);
        }
        let unique = callers.len() as u64;
        r.crm_calls_per_unique_caller =
            (unique > 0).then(|| (after - before).max(0.0) / unique as f64);
        r.detail("lookups_scheduled", n);
        r.detail("lookups_skipped_in_flight_cap", miss.skipped);
        r.detail("http_status", json!(status));
        r.detail("found", found);
        r.detail(
            "latency_definitions",
            json!({
                "headline": "bench sends POST /v1/lookup -> full answer read; distinct callers, each one SQL statement",
                "added (e2e - 20 ms)": "per request: headline minus the statement's pg_sleep(0.02); the PostgreSQL round trip, planning and the index scan stay in",
                "crm_calls_per_unique_caller": "statements that ran (attrsync_upstream_requests_total{source=\"sql\",status_class=\"2xx\"}) per distinct caller",
            }),
        );
        if let Some(l) = Latency::of(&added) {
            r.target(
                "added latency p99",
                "< 1.5 ms (REST: < 1 ms, without the CRM's own time)",
                format!("{:.3} ms", l.p99_ms),
                l.p99_ms < 1.5,
            );
        }
        self.stop(running, r).await;
        Ok(())
    }
}
