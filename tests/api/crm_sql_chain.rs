//! A chain with an SQL cache table in front of a CRM: `crm.sources = ["sql", "http"]`, the
//! SQLite table first, the REST CRM simulator when the table does not know the caller.

use attrsync::config::{ChainMode, CrmAdapterKind};
use serde_json::json;

use crate::helpers::{json_body, spawn_app_with, use_http_crm};
use crate::sql_db::{Backend, Row, Table};

#[tokio::test]
async fn the_sql_cache_answers_first_and_the_crm_only_for_callers_it_does_not_know() {
    let Some(table) = Table::fresh(Backend::Sqlite, "sql_then_http").await else {
        return;
    };
    table
        .insert(&[Row {
            id: "CACHE-1",
            kind: "contact",
            name: "Ada from the cache",
            phone: "+13175550125",
            tier: "gold",
            ..Row::default()
        }])
        .await;
    let app = spawn_app_with(|s, sims| {
        use_http_crm(s, &sims.crm);
        table.configure(s);
        s.crm.sources = vec![CrmAdapterKind::Sql, CrmAdapterKind::Http];
        s.crm.chain_mode = ChainMode::FirstHit;
        s.merge.match_details = true;
    })
    .await;
    assert!(app.crm.insert(json!({
        "id": "SF-7", "firstName": "Grace", "phone": "+13125550111", "tier": "silver"
    })));
    assert!(app.crm.insert(json!({
        "id": "SF-8", "firstName": "Ada in the CRM", "phone": "+13175550125"
    })));

    let shared = &app;
    let post = move |ani: &'static str| async move {
        json_body(shared.post_lookup(&json!({ "ani": ani })).await).await
    };
    let cached = post("tel:+13175550125").await;
    assert_eq!(cached["found"], "true", "{cached}");
    assert_eq!(cached["name"], "Ada from the cache");
    assert_eq!(cached["recordId"], "CACHE-1");
    assert_eq!(
        app.crm.requests(),
        0,
        "the table knew the caller: no CRM call"
    );

    let from_crm = post("tel:+13125550111").await;
    assert_eq!(from_crm["found"], "true", "{from_crm}");
    assert_eq!(from_crm["firstName"], "Grace");
    assert_eq!(from_crm["recordId"], "SF-7");
    assert_eq!(app.crm.requests(), 1, "the CRM was asked once, for Grace");

    let nobody = post("tel:+13125550999").await;
    assert_eq!(nobody["found"], "false", "{nobody}");
    assert_eq!(nobody["reason"], "not_found");

    let ready = json_body(app.get("/readyz").await).await;
    let names: Vec<&str> = ready["checks"]["crm_sources"]
        .as_array()
        .expect("a list of sources")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, ["sql", "http"], "{ready}");
}

#[tokio::test]
async fn merge_fills_the_cache_rows_gaps_from_the_crm() {
    let Some(table) = Table::fresh(Backend::Sqlite, "sql_merge_http").await else {
        return;
    };
    table
        .insert(&[Row {
            id: "CACHE-1",
            name: "Ada from the cache",
            phone: "+13175550125",
            ..Row::default()
        }])
        .await;
    let app = spawn_app_with(|s, sims| {
        use_http_crm(s, &sims.crm);
        table.configure(s);
        s.crm.sql.fields = [("name", "name"), ("tier", "tier")]
            .map(|(a, c)| (a.to_owned(), c.to_owned()))
            .into();
        s.crm.sources = vec![CrmAdapterKind::Sql, CrmAdapterKind::Http];
        s.crm.chain_mode = ChainMode::Merge;
    })
    .await;
    assert!(app.crm.insert(json!({
        "id": "SF-8", "name": "Ada in the CRM", "tier": "platinum", "phone": "+13175550125"
    })));
    let answer = json_body(app.post_lookup(&json!({"ani": "tel:+13175550125"})).await).await;
    assert_eq!(
        answer["name"], "Ada from the cache",
        "the cache wins: {answer}"
    );
    assert_eq!(
        answer["tier"], "platinum",
        "its NULL tier is filled from the CRM"
    );
    assert_eq!(answer["recordId"], "CACHE-1");
}
