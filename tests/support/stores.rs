//! Shared by the test binaries that need a queue store of their own: a fresh SQLite file, or a
//! fresh schema on the PostgreSQL server `ATTRSYNC_TEST_DATABASE_URL` names.

use attrsync::config::{QueueBackend, QueueSettings, Settings};
use attrsync::domain::{
    ConversationEvent, ConversationId, CustomerKeys, EnrichmentJob, ParticipantId, Source,
};
use attrsync::phone::CallerNumber;
use phonenumber::country;

/// A Genesys event's job for `conversation` (participant `p1`, a US caller), to store.
#[allow(dead_code)] // not every binary that shares this file stores jobs
pub fn sample_job(conversation: &str) -> EnrichmentJob {
    EnrichmentJob::new(
        Source::Genesys,
        ConversationEvent {
            event_id: format!("evt-{conversation}"),
            conversation_id: ConversationId::parse(conversation).expect("a conversation id"),
            participant_id: Some(ParticipantId::parse("p1").expect("a participant id")),
            keys: CustomerKeys {
                phone: CallerNumber::parse("tel:+13175550125", country::Id::US),
                ..CustomerKeys::default()
            },
            media_type: None,
        },
        Default::default(),
        String::new(),
    )
}

/// A fresh store of the given backend: its own SQLite file, or its own PostgreSQL schema.
pub async fn fresh_store_settings(
    backend: QueueBackend,
) -> Option<(QueueSettings, Option<tempfile::TempDir>)> {
    let env = vec![
        ("GENESYS_CLIENT_ID".to_owned(), "x".to_owned()),
        ("GENESYS_CLIENT_SECRET".to_owned(), "y".to_owned()),
        ("ATTRSYNC_AUTH__GENESYS__MODE".to_owned(), "none".to_owned()),
        ("ATTRSYNC_AUTH__CTI__MODE".to_owned(), "none".to_owned()),
        ("ATTRSYNC_AUTH__LOOKUP__MODE".to_owned(), "none".to_owned()),
    ];
    let mut settings = Settings::load_from(None, &env).ok()?.queue;
    match backend {
        QueueBackend::Sqlite => {
            let dir = tempfile::tempdir().ok()?;
            settings.backend = QueueBackend::Sqlite;
            settings.sqlite_path = dir.path().join("queue.db");
            Some((settings, Some(dir)))
        }
        QueueBackend::Postgres => {
            let url = std::env::var("ATTRSYNC_TEST_DATABASE_URL")
                .ok()
                .filter(|u| !u.is_empty())?;
            let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
            let pool = sqlx::PgPool::connect(&url).await.ok()?;
            sqlx::query(&format!("CREATE SCHEMA {schema}"))
                .execute(&pool)
                .await
                .ok()?;
            pool.close().await;
            settings.backend = QueueBackend::Postgres;
            settings.postgres_url = url.into();
            settings.postgres_schema = schema;
            Some((settings, None))
        }
    }
}
