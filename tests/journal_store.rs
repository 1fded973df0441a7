//! The journal's table, run against both backends like the queue's contract: SQLite always,
//! PostgreSQL when `ATTRSYNC_TEST_DATABASE_URL` names a server. Entries read back as written,
//! filters match exactly what they name (and treat SQL in a value as text), and pruning keeps
//! the newest `journal.max_events` within `journal.retention_hours`.

#[path = "support/stores.rs"]
mod stores;

use std::time::Duration;

use attrsync::config::QueueBackend;
use attrsync::pipeline::{Journey, StepKind};
use attrsync::queue::store::JobStore;
use attrsync::queue::{JournalFilter, NewEntry};
use attrsync::redact::RedactMode;
use stores::{fresh_store_settings, sample_job};

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

fn entry(n: i64, conversation: &str, source: &'static str, outcome: &str) -> NewEntry {
    let mut journey = Journey::new(RedactMode::Mask);
    journey.record(StepKind::Outcome {
        outcome: outcome.to_owned(),
    });
    NewEntry {
        job_id: n,
        event_id: format!("evt-{n}"),
        conversation_id: conversation.to_owned(),
        source,
        attempt: 1,
        outcome: outcome.to_owned(),
        accepted_at_ms: 1_700_000_000_000 + n,
        steps: journey.into_steps(),
    }
}

fn all() -> JournalFilter {
    JournalFilter {
        limit: 1000,
        ..JournalFilter::default()
    }
}

async fn entries_read_back_newest_first_and_filter_exactly(store: JobStore) {
    let written = [
        entry(1, "c1", "cti", "patched"),
        entry(2, "c1", "genesys", "crm_miss"),
        entry(3, "c2", "cti", "crm_miss"),
    ];
    store.journal_many(&written).await.unwrap();
    let read = store.journal(&all()).await.unwrap();
    let ids: Vec<&str> = read.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids, ["evt-3", "evt-2", "evt-1"]);
    assert_eq!(read[2].steps, written[0].steps);
    assert_eq!(read[2].accepted_at_ms, written[0].accepted_at_ms);

    let of = |filter: JournalFilter| {
        let store = &store;
        async move {
            store
                .journal(&filter)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.event_id)
                .collect::<Vec<_>>()
        }
    };
    let misses_from_cti = JournalFilter {
        outcome: Some("crm_miss".into()),
        source: Some("cti".into()),
        ..all()
    };
    assert_eq!(of(misses_from_cti).await, ["evt-3"]);
    let conversation = JournalFilter {
        conversation_id: Some("c1".into()),
        ..all()
    };
    assert_eq!(of(conversation).await, ["evt-2", "evt-1"]);
    let injected = JournalFilter {
        conversation_id: Some("c1' OR '1'='1".into()),
        ..all()
    };
    assert!(of(injected).await.is_empty());
    let one = JournalFilter { limit: 1, ..all() };
    assert_eq!(of(one).await, ["evt-3"]);
}
on_both_backends!(
    journal_entries_read_back_newest_first_and_filter_exactly,
    entries_read_back_newest_first_and_filter_exactly
);

async fn pruning_keeps_the_newest_within_the_bound(store: JobStore) {
    let written: Vec<NewEntry> = (1..=10).map(|n| entry(n, "c1", "cti", "patched")).collect();
    store.journal_many(&written).await.unwrap();
    let pruned = store
        .prune_journal(Duration::from_secs(3600), 4)
        .await
        .unwrap();
    assert_eq!(pruned, 6);
    let ids: Vec<String> = store
        .journal(&all())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event_id)
        .collect();
    assert_eq!(ids, ["evt-10", "evt-9", "evt-8", "evt-7"]);
    // Everything is older than a zero retention.
    tokio::time::sleep(Duration::from_millis(5)).await;
    store.prune_journal(Duration::ZERO, 100).await.unwrap();
    assert!(store.journal(&all()).await.unwrap().is_empty());
}
on_both_backends!(
    journal_pruning_keeps_the_newest_within_the_bound_and_the_retention,
    pruning_keeps_the_newest_within_the_bound
);

async fn one_batch_marks_its_jobs_done_and_records_every_entry(store: JobStore) {
    let window = Duration::from_secs(600);
    for n in 0..3 {
        let conversation = format!("c{n}");
        store
            .enqueue(
                &format!("genesys:e{n}"),
                &conversation,
                window,
                &sample_job(&conversation),
            )
            .await
            .unwrap();
    }
    let claimed = store
        .claim("w1", 10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 3);
    let done: Vec<i64> = claimed.iter().map(|c| c.id).collect();
    // More entries than one INSERT statement carries.
    let written: Vec<NewEntry> = (1..=600)
        .map(|n| entry(n, "c1", "cti", "patched"))
        .collect();
    let encoded: Vec<_> = written
        .iter()
        .map(|e| e.clone().encode().unwrap())
        .collect();
    store.finish_batch(&done, &encoded).await.unwrap();

    assert_eq!(
        store.stats().await.unwrap().depth,
        0,
        "the batch's jobs are done"
    );
    let read = store.journal(&all()).await.unwrap();
    assert_eq!(read.len(), 600);
    assert_eq!(read[0].event_id, "evt-600");
    assert_eq!(read[599].event_id, "evt-1");
    assert_eq!(read[599].steps, written[0].steps);
}
on_both_backends!(
    one_batch_marks_its_jobs_done_and_records_every_entry_on_every_backend,
    one_batch_marks_its_jobs_done_and_records_every_entry
);
