//! The CRM state replicas share in PostgreSQL (`crm::shared`), each "replica" a pool of its own
//! on one fresh schema: the deployment-wide budget (never over its limit whoever reserves, a
//! slot too far away refused, fails closed) and the shared answer cache (one fetch across
//! replicas, expired rows cleaned up, fails open). Skipped, saying so, without
//! `ATTRSYNC_TEST_DATABASE_URL`.

#[path = "support/stores.rs"]
mod stores;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use attrsync::config::{QueueBackend, Settings, SharedCrmSettings, SourceSettings};
use attrsync::crm::budget::CallBudget;
use attrsync::crm::shared::budget::SharedBudget;
use attrsync::crm::shared::cache::{SharedCache, SharedUse};
use attrsync::crm::shared::SharedStore;
use attrsync::crm::{Candidate, CrmError, CrmRecord, CustomerKey, MatchQuality};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// `replicas` stores on one fresh schema, each with its own pool; `None` without a server.
async fn replicas(replicas: usize) -> Option<Vec<SharedStore>> {
    let (queue, _) = stores::fresh_store_settings(QueueBackend::Postgres).await?;
    let url = secrecy::ExposeSecret::expose_secret(&queue.postgres_url).to_owned();
    let mut out = Vec::new();
    for _ in 0..replicas {
        let options: PgConnectOptions = url.parse().ok()?;
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect_with(options.options([("search_path", queue.postgres_schema.as_str())]))
            .await
            .ok()?;
        out.push(SharedStore::open(pool).await.expect("the shared tables"));
    }
    Some(out)
}

fn settings() -> Settings {
    let env: Vec<(String, String)> = [
        ("GENESYS_CLIENT_ID", "x"),
        ("GENESYS_CLIENT_SECRET", "y"),
        ("ATTRSYNC_AUTH__GENESYS__MODE", "none"),
        ("ATTRSYNC_AUTH__CTI__MODE", "none"),
        ("ATTRSYNC_AUTH__LOOKUP__MODE", "none"),
        (
            "ATTRSYNC_CRM__SHARED__CACHE_KEY_SECRET",
            "shared-state-test-0123456789",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    Settings::load_from(None, &env).expect("settings")
}

fn source(per_second: u32, max_retry_after_secs: u64) -> SourceSettings {
    let mut s = settings().crm.http.common;
    s.rate_limit_per_minute = 0;
    s.rate_limit_per_second = per_second;
    s.max_retry_after_secs = max_retry_after_secs;
    s
}

fn shared_settings(wait_ms: u64) -> SharedCrmSettings {
    let mut s = settings().crm.shared;
    s.cache_wait_ms = wait_ms;
    s
}

fn one() -> Vec<Candidate> {
    vec![Candidate {
        source: "http",
        record_type: "customer".into(),
        record_id: "C1".into(),
        matched_field: "id".into(),
        quality: MatchQuality::Exact,
        last_modified: None,
        fields: CrmRecord::new(),
    }]
}

fn skipped(name: &str) {
    eprintln!("skipped: {name} (set ATTRSYNC_TEST_DATABASE_URL to run it)");
}

/// The most of `times` within any half-open window of `window`.
fn busiest(times: &mut [Instant], window: Duration) -> usize {
    times.sort_unstable();
    let (mut start, mut best) = (0, 0);
    for end in 0..times.len() {
        while times[end].duration_since(times[start]) >= window {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_reserving_at_once_never_exceed_the_per_second_budget() {
    let Some(stores) = replicas(3).await else {
        return skipped("the shared budget across replicas");
    };
    let budgets: Vec<Arc<SharedBudget>> = stores
        .into_iter()
        .map(|store| {
            Arc::new(SharedBudget::from_settings(
                store,
                "http",
                &source(20, 5),
                // Each task is measured when it wakes, a little after its slot on a busy machine.
                Duration::from_millis(100),
            ))
        })
        .collect();
    let started = Instant::now();
    let tasks: Vec<_> = (0..60)
        .map(|i| {
            let budget = budgets[i % 3].clone();
            tokio::spawn(async move {
                if let Err(e) = budget.acquire().await {
                    panic!("a slot within 5 s: {e:?} after {:?}", started.elapsed())
                }
                Instant::now()
            })
        })
        .collect();
    let mut times = Vec::new();
    for task in tasks {
        times.push(task.await.unwrap());
    }
    let most = busiest(&mut times, Duration::from_secs(1));
    eprintln!(
        "shared budget: 60 calls from 3 replicas in {:?}, busiest second {most} (budget 20)",
        started.elapsed()
    );
    assert!(most <= 20, "{most} calls went in one second");
    // 60 calls at 20 a second (with the margin, one every 55 ms): the last slot is 59 × 55 ms
    // after the first.
    assert!(started.elapsed() >= Duration::from_millis(3200));
}

#[tokio::test]
async fn a_slot_further_away_than_max_retry_after_is_refused_as_over_budget() {
    let Some(mut stores) = replicas(1).await else {
        return skipped("the shared budget's horizon");
    };
    // One a second, and no call may wait for its slot at all.
    let budget =
        SharedBudget::from_settings(stores.remove(0), "http", &source(1, 0), Duration::ZERO);
    budget.acquire().await.unwrap();
    match budget.acquire().await {
        Err(CrmError::OverBudget { retry_after }) => {
            assert!(retry_after > Duration::from_millis(500), "{retry_after:?}");
        }
        other => panic!("expected OverBudget, got {other:?}"),
    }
}

#[tokio::test]
async fn without_its_database_the_budget_fails_closed_and_the_cache_asks_the_crm() {
    let Some(mut stores) = replicas(1).await else {
        return skipped("the shared state without its database");
    };
    let store = stores.remove(0);
    let budget = SharedBudget::from_settings(store.clone(), "http", &source(10, 1), Duration::ZERO);
    let cache = SharedCache::from_settings(store.clone(), &shared_settings(500));
    store.pool().close().await;

    let err = budget
        .acquire()
        .await
        .expect_err("no slot without the database");
    assert!(matches!(err, CrmError::SharedState(_)), "{err:?}");
    assert!(err.to_string().contains("shared CRM state"), "{err}");

    let key = CustomerKey::CustomerId("C1".into());
    let answer = cache
        .get_or_fetch(
            "http",
            &key,
            Duration::from_secs(60),
            Duration::from_secs(60),
            async { Ok(one()) },
        )
        .await
        .expect("the CRM's answer");
    assert_eq!(answer.used, SharedUse::Unavailable);
    assert!(answer.text.contains("C1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_lookups_on_three_replicas_make_one_fetch_and_expired_rows_are_deleted() {
    let Some(stores) = replicas(3).await else {
        return skipped("the shared cache across replicas");
    };
    let caches: Vec<Arc<SharedCache>> = stores
        .into_iter()
        .map(|store| Arc::new(SharedCache::from_settings(store, &shared_settings(3000))))
        .collect();
    let fetches = Arc::new(AtomicUsize::new(0));
    let key = CustomerKey::CustomerId("C1".into());
    let tasks: Vec<_> = (0..30)
        .map(|i| {
            let cache = caches[i % 3].clone();
            let fetches = fetches.clone();
            let key = key.clone();
            tokio::spawn(async move {
                cache
                    .get_or_fetch(
                        "http",
                        &key,
                        Duration::from_secs(60),
                        Duration::from_secs(60),
                        async {
                            fetches.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            Ok(one())
                        },
                    )
                    .await
                    .expect("an answer")
            })
        })
        .collect();
    let mut used = Vec::new();
    for task in tasks {
        let answer = task.await.unwrap();
        assert!(answer.text.contains("C1"));
        used.push(answer.used);
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "one fetch: {used:?}");
    assert_eq!(used.iter().filter(|u| **u == SharedUse::Miss).count(), 1);

    // A not-found answer kept for 50 ms is gone after the clean-up; the found one stays.
    let other = CustomerKey::CustomerId("C2".into());
    caches[0]
        .get_or_fetch(
            "http",
            &other,
            Duration::from_secs(60),
            Duration::from_millis(50),
            async { Ok(vec![]) },
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(caches[1].clean_up().await.unwrap(), 1);
    let again = caches[2]
        .get_or_fetch(
            "http",
            &key,
            Duration::from_secs(60),
            Duration::from_secs(60),
            async { Err(CrmError::Timeout) },
        )
        .await
        .expect("still cached");
    assert_eq!(again.used, SharedUse::Hit);
}
