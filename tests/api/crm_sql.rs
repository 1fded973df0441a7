//! The `sql` adapter against real databases (SQLite always; PostgreSQL and MariaDB when they
//! answer, see `sql_db`): lookups by every key kind through `/v1/lookup`, several matching rows
//! under each match policy, injection classics through every key kind, a database that refuses
//! connections, a query it refuses, its statement timeout, and `/readyz`.

use attrsync::config::MatchPolicy;
use attrsync::crm::sql::SqlCrm;
use attrsync::crm::{CrmAdapter as _, CrmError, CustomerKey};
use attrsync::phone::CallerNumber;
use attrsync::retry::Retryable as _;
use phonenumber::country;
use serde_json::{json, Value};

use crate::helpers::{json_body, spawn_app_with, TestApp};
use crate::sql_db::{Backend, Row, Table, BACKENDS};

async fn lookup(app: &TestApp, request: Value) -> Value {
    let response = app.post_lookup(&request).await;
    assert_eq!(response.status(), 200, "{request}");
    json_body(response).await
}

fn ada() -> Row<'static> {
    Row {
        id: "C-1",
        kind: "contact",
        name: "Ada Lovelace",
        phone: "+13175550125",
        email: "Ada@Example.com",
        external_id: "ext-1",
        tier: "gold",
        updated_at: "2023-01-01 00:00:00",
        ..Row::default()
    }
}

/// A lead, a contact and an account sharing Ada's number (the contact stores it nationally),
/// modified at different times.
fn household() -> Vec<Row<'static>> {
    vec![
        Row {
            id: "A-1",
            kind: "account",
            name: "Account Lovelace",
            phone: "+13175550125",
            updated_at: "2024-06-01 00:00:00",
            ..Row::default()
        },
        Row {
            id: "C-1",
            kind: "contact",
            name: "Contact Lovelace",
            mobile: "(317) 555-0125",
            updated_at: "2023-01-01 00:00:00",
            ..Row::default()
        },
        Row {
            id: "L-1",
            kind: "lead",
            name: "Lead Lovelace",
            phone: "+13175550125",
            updated_at: "2024-03-01 00:00:00",
            ..Row::default()
        },
    ]
}

#[tokio::test]
async fn every_key_kind_finds_its_customer_on_every_backend() {
    for backend in BACKENDS {
        let Some(table) = Table::fresh(backend, "every_key_kind").await else {
            continue;
        };
        table.insert(&[ada()]).await;
        let app = spawn_app_with(|s, _| table.configure(s)).await;
        for (request, by) in [
            (json!({"ani": "tel:+13175550125"}), "phone"),
            (json!({"ani": "3175550125"}), "phone"),
            (json!({"email": "ada@example.COM"}), "email"),
            (json!({"customerId": "C-1"}), "customer_id"),
            (json!({"externalContactId": "ext-1"}), "external_contact_id"),
        ] {
            let answer = lookup(&app, request.clone()).await;
            assert_eq!(answer["found"], "true", "{backend:?} {request}: {answer}");
            assert_eq!(answer["matchedBy"], by, "{backend:?}");
            assert_eq!(answer["name"], "Ada Lovelace", "{backend:?}");
            assert_eq!(answer["tier"], "gold", "{backend:?}");
            assert_eq!(answer["recordId"], "C-1", "{backend:?}");
            assert_eq!(answer["recordType"], "contact", "{backend:?}");
        }
        let answer = lookup(&app, json!({"ani": "tel:+13175550199"})).await;
        assert_eq!(answer["found"], "false", "{backend:?}: {answer}");
        assert_eq!(answer["reason"], "not_found", "{backend:?}");
    }
}

async fn decided_by(policy: MatchPolicy, expect: impl Fn(&Value, Backend)) {
    for backend in BACKENDS {
        let Some(table) = Table::fresh(backend, policy.as_str()).await else {
            continue;
        };
        table.insert(&household()).await;
        let app = spawn_app_with(|s, _| {
            table.configure(s);
            s.crm.match_policy = policy;
            s.crm.match_priority = vec!["Contact".into(), "Lead".into()];
        })
        .await;
        let answer = lookup(&app, json!({"ani": "tel:+13175550125"})).await;
        expect(&answer, backend);
    }
}

#[tokio::test]
async fn several_rows_are_decided_by_the_first_policy_among_the_best_graded() {
    decided_by(MatchPolicy::First, |answer, backend| {
        // The contact stores the number without its country: national, behind two exact rows.
        assert_eq!(answer["recordId"], "A-1", "{backend:?}: {answer}");
        assert_eq!(answer["matchCount"], "2", "{backend:?}: the exact tier");
        assert_eq!(answer["matchQuality"], "exact", "{backend:?}");
    })
    .await;
}

#[tokio::test]
async fn several_rows_are_decided_by_the_most_recent() {
    decided_by(MatchPolicy::MostRecent, |answer, backend| {
        assert_eq!(answer["name"], "Account Lovelace", "{backend:?}: {answer}");
    })
    .await;
}

#[tokio::test]
async fn several_rows_are_decided_by_record_type_priority() {
    decided_by(MatchPolicy::Priority, |answer, backend| {
        // Contact ranks first, but only the exact tier competes: the lead wins.
        assert_eq!(answer["name"], "Lead Lovelace", "{backend:?}: {answer}");
        assert_eq!(answer["recordType"], "lead", "{backend:?}");
    })
    .await;
}

#[tokio::test]
async fn several_rows_under_refuse_are_ambiguous_and_nothing_is_written() {
    decided_by(MatchPolicy::Refuse, |answer, backend| {
        assert_eq!(answer["found"], "false", "{backend:?}: {answer}");
        assert_eq!(answer["reason"], "ambiguous", "{backend:?}");
        assert_eq!(answer["matchCount"], "2", "{backend:?}: the exact tier");
        assert!(answer.get("name").is_none(), "{backend:?}: {answer}");
    })
    .await;
}

const CLASSICS: [&str; 10] = [
    "'",
    "\\",
    "}",
    "' OR 1=1 --",
    "' OR '1'='1",
    "--",
    "%",
    "*",
    "'; DROP TABLE customers; --",
    "\" OR \"\"=\"",
];

fn adapter(table: &Table, configure: impl FnOnce(&mut attrsync::config::Settings)) -> SqlCrm {
    let env: Vec<(String, String)> = [
        ("GENESYS_CLIENT_ID", "x"),
        ("GENESYS_CLIENT_SECRET", "y"),
        ("ATTRSYNC_AUTH__GENESYS__MODE", "none"),
        ("ATTRSYNC_AUTH__CTI__MODE", "none"),
        ("ATTRSYNC_AUTH__LOOKUP__MODE", "none"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .into();
    let mut settings = attrsync::config::Settings::load_from(None, &env).expect("defaults load");
    table.configure(&mut settings);
    configure(&mut settings);
    SqlCrm::from_settings(&settings.crm.sql, country::Id::US).expect("the adapter builds")
}

#[tokio::test]
async fn injection_classics_through_every_key_kind_find_nothing_and_change_nothing() {
    for backend in BACKENDS {
        let Some(table) = Table::fresh(backend, "injection_classics").await else {
            continue;
        };
        let quoted = Row {
            id: "Q-'1",
            email: "o'brien@example.com",
            external_id: "ext-\\'--",
            phone: "+13175550188",
            ..Row::default()
        };
        table.insert(&[ada(), quoted]).await;
        let crm = adapter(&table, |_| {});
        let mut phone_keys = 0;
        for classic in CLASSICS {
            let mut keys = vec![
                CustomerKey::Email(classic.to_owned()),
                CustomerKey::Email(format!("ada@example.com{classic}")),
                CustomerKey::CustomerId(classic.to_owned()),
                CustomerKey::CustomerId(format!("C-1{classic}")),
                CustomerKey::ExternalContactId(classic.to_owned()),
            ];
            // A phone key carries the classic in its raw text (and so in :phone_raw).
            if let Some(n) = CallerNumber::parse(&format!("+1317555{classic}"), country::Id::US) {
                assert!(n.raw().contains(classic.trim()), "{classic}: {}", n.raw());
                keys.push(CustomerKey::Phone(n));
                phone_keys += 1;
            }
            for key in keys {
                let found = crm
                    .find(&key)
                    .await
                    .unwrap_or_else(|e| panic!("{backend:?} {key:?}: {e}"));
                assert!(found.is_empty(), "{backend:?} {key:?} found {found:?}");
            }
        }
        assert!(
            phone_keys >= 5,
            "{backend:?}: only {phone_keys} classics made a phone key"
        );
        // Values with quotes and backslashes are found exactly.
        for key in [
            CustomerKey::Email("O'Brien@example.com".into()),
            CustomerKey::CustomerId("Q-'1".into()),
            CustomerKey::ExternalContactId("ext-\\'--".into()),
        ] {
            let found = crm.find(&key).await.expect("a lookup");
            let ids: Vec<&str> = found.iter().map(|c| c.record_id.as_str()).collect();
            assert_eq!(ids, ["Q-'1"], "{backend:?} {key:?}");
        }
        assert_eq!(table.count().await, 2, "{backend:?}: the table is intact");
    }
}

#[tokio::test]
async fn a_database_that_refuses_connections_is_a_retryable_connect_error() {
    for backend in BACKENDS {
        let Some(table) = Table::fresh(backend, "refused_connections").await else {
            continue;
        };
        let url = match backend {
            Backend::Sqlite => "sqlite:///nonexistent/dir/customers.db".to_owned(),
            Backend::Postgres => "postgres://postgres@127.0.0.1:1/test".to_owned(),
            Backend::MariaDb => "mysql://root@127.0.0.1:1/test".to_owned(),
        };
        let crm = adapter(&table, |s| {
            s.crm.sql.url = url.into();
            s.crm.sql.common.max_retries = 0;
            s.crm.sql.common.timeout_ms = 400;
        });
        let err = crm
            .find(&CustomerKey::CustomerId("C-1".into()))
            .await
            .expect_err("nothing listens");
        assert!(matches!(err, CrmError::Connect(_)), "{backend:?}: {err:?}");
        assert!(err.is_retryable(), "{backend:?}");
        let err = crm.ready().await.expect_err("not ready");
        assert!(err.is_retryable(), "{backend:?}: {err:?}");
    }
}

#[tokio::test]
async fn a_query_the_database_refuses_is_unavailable_and_not_retried() {
    for backend in BACKENDS {
        let Some(table) = Table::fresh(backend, "refused_query").await else {
            continue;
        };
        for broken in [
            "SELEC * FROM customers WHERE id = :customer_id",
            "SELECT * FROM no_such_table WHERE id = :customer_id",
        ] {
            let crm = adapter(&table, |s| {
                s.crm.sql.queries =
                    [(attrsync::domain::KeyKind::CustomerId, broken.to_owned())].into();
            });
            let err = crm
                .find(&CustomerKey::CustomerId("' OR 1=1 --".into()))
                .await
                .expect_err("the database refuses it");
            assert!(
                matches!(err, CrmError::Unavailable(_)),
                "{backend:?}: {err:?}"
            );
            assert!(!err.is_retryable(), "{backend:?}");
            assert!(
                !err.to_string().contains("OR 1=1"),
                "{backend:?}: the key stays out of the message: {err}"
            );
        }
        crm_ready(&table).await;
    }
}

async fn crm_ready(table: &Table) {
    let crm = adapter(table, |_| {});
    crm.ready().await.expect("SELECT 1 answers");
}

#[tokio::test]
async fn a_statement_past_the_timeout_is_cancelled_by_the_server() {
    for backend in [Backend::Postgres, Backend::MariaDb] {
        let Some(table) = Table::fresh(backend, "statement_timeout").await else {
            continue;
        };
        table.insert(&[ada()]).await;
        let slow = match backend {
            Backend::Postgres => format!(
                "SELECT * FROM {} WHERE id = :customer_id AND pg_sleep(2) IS NOT NULL",
                table.name
            ),
            _ => format!(
                "SELECT * FROM {} WHERE id = :customer_id AND SLEEP(2) = 0",
                table.name
            ),
        };
        let crm = adapter(&table, |s| {
            s.crm.sql.queries = [(attrsync::domain::KeyKind::CustomerId, slow)].into();
            s.crm.sql.common.max_retries = 0;
            s.crm.sql.common.timeout_ms = 300;
        });
        let started = std::time::Instant::now();
        let result = crm.find(&CustomerKey::CustomerId("C-1".into())).await;
        let took = started.elapsed();
        assert!(
            took < std::time::Duration::from_millis(1500),
            "{backend:?}: {took:?}"
        );
        // PostgreSQL cancels with SQLSTATE 57014, MariaDB with error 1969 (max_statement_time).
        assert!(
            matches!(result, Err(CrmError::Timeout)),
            "{backend:?}: {result:?}"
        );
        // The connection is still usable.
        crm.ready()
            .await
            .expect("ready after a cancelled statement");
    }
}

#[tokio::test]
async fn sessions_are_read_only_with_the_statement_timeout_set_on_the_server() {
    for backend in [Backend::Postgres, Backend::MariaDb] {
        let Some(table) = Table::fresh(backend, "session_settings").await else {
            continue;
        };
        let probe = match backend {
            Backend::Postgres => {
                "SELECT current_setting('statement_timeout') AS id, \
                 current_setting('default_transaction_read_only') AS tier \
                 WHERE CAST(:customer_id AS text) IS NOT NULL"
            }
            _ => {
                "SELECT CAST(@@max_statement_time AS CHAR) AS id, \
                 CAST(@@tx_read_only AS CHAR) AS tier WHERE :customer_id IS NOT NULL"
            }
        };
        let crm = adapter(&table, |s| {
            s.crm.sql.queries = [(attrsync::domain::KeyKind::CustomerId, probe.to_owned())].into();
            s.crm.sql.common.timeout_ms = 1000;
        });
        let found = crm
            .find(&CustomerKey::CustomerId("x".into()))
            .await
            .expect("the probe runs");
        let (timeout, read_only) = (&found[0].record_id, &found[0].fields["tier"]);
        match backend {
            Backend::Postgres => {
                assert_eq!(timeout, "900ms");
                assert_eq!(read_only, "on");
            }
            _ => {
                assert_eq!(timeout.parse::<f64>().ok(), Some(0.9), "{timeout}");
                assert!(read_only == "1" || read_only == "ON", "{read_only}");
            }
        }
        // And a write is refused by the database (a non-retryable error).
        let crm = adapter(&table, |s| {
            s.crm.sql.queries = [(
                attrsync::domain::KeyKind::CustomerId,
                format!("DELETE FROM {} WHERE id = :customer_id", table.name),
            )]
            .into();
        });
        let err = crm
            .find(&CustomerKey::CustomerId("C-1".into()))
            .await
            .expect_err("read-only");
        assert!(
            matches!(err, CrmError::Unavailable(_)),
            "{backend:?}: {err:?}"
        );
    }
}

#[tokio::test]
async fn readiness_reports_the_sql_source_and_a_down_database() {
    let Some(table) = Table::fresh(Backend::Sqlite, "readiness").await else {
        return;
    };
    let app = spawn_app_with(|s, _| table.configure(s)).await;
    let body = json_body(app.get("/readyz").await).await;
    assert_eq!(body["checks"]["crm_sources"][0]["name"], "sql", "{body}");
    assert_eq!(body["status"], "ready", "{body}");

    let app = spawn_app_with(|s, _| {
        table.configure(s);
        s.crm.sql.url = "postgres://postgres@127.0.0.1:1/test".to_owned().into();
        s.crm.sql.common.timeout_ms = 300;
    })
    .await;
    let response = app.get("/readyz").await;
    let body = json_body(response).await;
    assert_ne!(body["status"], "ready", "{body}");
}
