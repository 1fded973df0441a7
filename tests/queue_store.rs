//! The durable queue's contract, run against both backends: SQLite always, PostgreSQL when
//! `ATTRSYNC_TEST_DATABASE_URL` names a server (`.ci/run` sets it); without it the PostgreSQL
//! half of each test says it was skipped. A binary of its own: no attrsync instance runs, only
//! the store.

#[path = "support/stores.rs"]
mod stores;

use stores::{fresh_store_settings, sample_job as payload};

use std::time::Duration;

use attrsync::config::QueueBackend;
use attrsync::domain::EnrichmentJob;
use attrsync::queue::store::{Enqueued, JobStore};
use attrsync::queue::StoredJob;
use phonenumber::country;

/// A claimed or dead job, read back as the job it was.
fn read(stored: &StoredJob) -> EnrichmentJob {
    stored.decode(country::Id::US).expect("a readable job")
}

const WINDOW: Duration = Duration::from_secs(600);
const LEASE: Duration = Duration::from_secs(30);

/// Runs `check` on SQLite, then on PostgreSQL if configured.
macro_rules! on_both_backends {
    ($name:ident, $check:ident) => {
        #[tokio::test]
        async fn $name() {
            for backend in [QueueBackend::Sqlite, QueueBackend::Postgres] {
                let Some((settings, _dir)) = fresh_store_settings(backend).await else {
                    eprintln!(
                        "skipped: {} on PostgreSQL (set ATTRSYNC_TEST_DATABASE_URL to run it)",
                        stringify!($name)
                    );
                    continue;
                };
                let store = JobStore::connect(&settings).await.expect("store opens");
                $check(store).await;
            }
        }
    };
}

async fn accepted_jobs_are_claimed_once_and_completed(store: JobStore) {
    assert_eq!(
        store
            .enqueue("genesys:e1", "c1/p1/k", WINDOW, &payload("c1"))
            .await
            .unwrap(),
        Enqueued::Accepted
    );
    assert_eq!(store.stats().await.unwrap().depth, 1);
    let claimed = store.claim("w1", 10, LEASE).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].attempts, 1);
    assert_eq!(read(&claimed[0].payload), payload("c1"));
    assert!(
        store.claim("w2", 10, LEASE).await.unwrap().is_empty(),
        "a leased job is not claimed twice"
    );
    store.complete(claimed[0].id).await.unwrap();
    assert_eq!(store.stats().await.unwrap().depth, 0);
}
on_both_backends!(
    accepted_jobs_are_claimed_once_and_completed_on_every_backend,
    accepted_jobs_are_claimed_once_and_completed
);

async fn the_same_event_id_or_the_same_work_is_a_duplicate(store: JobStore) {
    assert_eq!(
        store
            .enqueue("genesys:e1", "c1/p1/k", WINDOW, &payload("c1"))
            .await
            .unwrap(),
        Enqueued::Accepted
    );
    // Same event id, other work: EventBridge redelivery.
    assert_eq!(
        store
            .enqueue("genesys:e1", "c9/p9/k", WINDOW, &payload("c9"))
            .await
            .unwrap(),
        Enqueued::Duplicate
    );
    // Other event id, same conversation + participant + key within the window.
    assert_eq!(
        store
            .enqueue("cti:x7", "c1/p1/k", WINDOW, &payload("c1"))
            .await
            .unwrap(),
        Enqueued::Duplicate
    );
    // The rejected duplicate did not consume its own dedup key.
    assert_eq!(
        store
            .enqueue("genesys:e9", "c9/p9/k", WINDOW, &payload("c9"))
            .await
            .unwrap(),
        Enqueued::Accepted
    );
    assert_eq!(store.stats().await.unwrap().depth, 2);
    // An expired window lets the same work in again.
    assert_eq!(
        store
            .enqueue("genesys:e10", "c10/p/k", Duration::ZERO, &payload("c10"))
            .await
            .unwrap(),
        Enqueued::Accepted
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(
        store
            .enqueue("genesys:e11", "c10/p/k", WINDOW, &payload("c10"))
            .await
            .unwrap(),
        Enqueued::Accepted
    );
}
on_both_backends!(
    duplicates_are_recognised_on_every_backend,
    the_same_event_id_or_the_same_work_is_a_duplicate
);

async fn a_job_whose_lease_ran_out_is_claimed_again(store: JobStore) {
    store
        .enqueue("genesys:e1", "c1/p1/k", WINDOW, &payload("c1"))
        .await
        .unwrap();
    let first = store
        .claim("dead-worker", 1, Duration::from_millis(1))
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    tokio::time::sleep(Duration::from_millis(10)).await;
    let again = store.claim("w2", 1, LEASE).await.unwrap();
    assert_eq!(again.len(), 1, "the crashed worker's job is taken over");
    assert_eq!(again[0].id, first[0].id);
    assert_eq!(again[0].attempts, 2, "the second run knows it is a repeat");
}
on_both_backends!(
    expired_leases_are_taken_over_on_every_backend,
    a_job_whose_lease_ran_out_is_claimed_again
);

async fn retries_wait_for_their_time_and_dead_letters_can_be_replayed(store: JobStore) {
    store
        .enqueue("genesys:e1", "c1/p1/k", WINDOW, &payload("c1"))
        .await
        .unwrap();
    let job = store.claim("w", 1, LEASE).await.unwrap().remove(0);
    let later = attrsync::queue::store::now_ms() + 60_000;
    store
        .retry_at(job.id, later, "503 from Genesys")
        .await
        .unwrap();
    assert!(
        store.claim("w", 1, LEASE).await.unwrap().is_empty(),
        "not due yet"
    );
    assert_eq!(store.stats().await.unwrap().depth, 1);

    store.dead_letter(job.id, "gave up").await.unwrap();
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.depth, stats.dead_letters), (0, 1));
    let dead = store.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].last_error, "gave up");
    assert_eq!(read(&dead[0].payload).conversation_id.as_str(), "c1");
    assert!(store.dead_letter_by_id(job.id).await.unwrap().is_some());
    assert!(store
        .dead_letter_by_id(job.id + 1000)
        .await
        .unwrap()
        .is_none());

    assert!(store.replay(job.id).await.unwrap());
    assert!(
        !store.replay(job.id).await.unwrap(),
        "a replayed letter is gone"
    );
    let again = store.claim("w", 1, LEASE).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 1, "a replay starts afresh");
}
on_both_backends!(
    retries_and_dead_letters_work_on_every_backend,
    retries_wait_for_their_time_and_dead_letters_can_be_replayed
);

async fn released_jobs_go_back_without_spending_an_attempt(store: JobStore) {
    store
        .enqueue("genesys:e1", "c1/p1/k", WINDOW, &payload("c1"))
        .await
        .unwrap();
    let job = store.claim("w", 1, LEASE).await.unwrap().remove(0);
    store.release(job.id).await.unwrap();
    let again = store.claim("w", 1, LEASE).await.unwrap().remove(0);
    assert_eq!(again.attempts, 1);
}
on_both_backends!(
    shutdown_hands_jobs_back_on_every_backend,
    released_jobs_go_back_without_spending_an_attempt
);

async fn finished_jobs_are_purged_after_the_retention(store: JobStore) {
    store
        .enqueue("genesys:e1", "c1/p1/k", Duration::ZERO, &payload("c1"))
        .await
        .unwrap();
    let job = store.claim("w", 1, LEASE).await.unwrap().remove(0);
    store.complete(job.id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(store.purge(Duration::ZERO).await.unwrap(), 1);
    // With the row and the dedup key gone, the event id is new again.
    assert_eq!(
        store
            .enqueue("genesys:e1", "c1/p1/k", WINDOW, &payload("c1"))
            .await
            .unwrap(),
        Enqueued::Accepted
    );
}
on_both_backends!(
    purging_works_on_every_backend,
    finished_jobs_are_purged_after_the_retention
);

async fn concurrent_claimers_never_share_a_job(store: JobStore) {
    for i in 0..200 {
        store
            .enqueue(
                &format!("genesys:e{i}"),
                &format!("c{i}/p/k"),
                WINDOW,
                &payload(&format!("c{i}")),
            )
            .await
            .unwrap();
    }
    let store = std::sync::Arc::new(store);
    let claimers = (0..4).map(|w| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let jobs = store.claim(&format!("w{w}"), 7, LEASE).await.unwrap();
                if jobs.is_empty() {
                    break mine;
                }
                mine.extend(jobs.into_iter().map(|j| j.id));
            }
        })
    });
    let mut all: Vec<i64> = futures::future::join_all(claimers)
        .await
        .into_iter()
        .flat_map(|r| r.unwrap())
        .collect();
    let claimed = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(claimed, 200, "every job claimed");
    assert_eq!(all.len(), 200, "no job claimed twice");
}
on_both_backends!(
    concurrent_claims_are_exclusive_on_every_backend,
    concurrent_claimers_never_share_a_job
);

async fn a_batch_is_committed_once_and_judges_each_job_in_order(store: JobStore) {
    use attrsync::queue::store::NewJob;
    let job = |event: &str, work: &str| NewJob {
        event_key: event.to_owned(),
        dedup_key: work.to_owned(),
        payload: StoredJob::encode(&payload(work)).expect("encodable"),
    };
    store
        .enqueue("genesys:old", "w0", WINDOW, &payload("w0"))
        .await
        .unwrap();
    let outcomes = store
        .enqueue_many(
            &[
                job("genesys:a", "w1"),
                job("genesys:a", "w2"), // same event id as the first of the batch
                job("genesys:b", "w1"), // same work as the first of the batch
                job("genesys:old", "w3"), // an event id accepted before the batch
                job("genesys:c", "w3"), // new: the refused job above did not take w3
            ],
            WINDOW,
        )
        .await
        .unwrap();
    use Enqueued::{Accepted as A, Duplicate as D};
    assert_eq!(outcomes, [A, D, D, D, A]);
    assert_eq!(store.stats().await.unwrap().depth, 3);
}
on_both_backends!(
    batches_are_judged_job_by_job_on_every_backend,
    a_batch_is_committed_once_and_judges_each_job_in_order
);
