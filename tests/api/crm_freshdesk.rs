//! The `freshdesk` source end to end, against the Freshdesk simulator over real HTTP: lookups by
//! phone, mobile, email, id and external id through the search API and the contact list's
//! filters, several matching contacts under each match policy, the plan's per-minute limit (the
//! default budget keeps attrsync under it; a 429's Retry-After is waited for or opens the
//! circuit), the injection classics through every key kind, garbage answers, and chains with
//! the file source, or an SQL cache table, in front.

use std::time::Duration;

use attrsync::config::{ChainMode, CrmAdapterKind, FreshdeskLookup, MatchPolicy, Settings};
use attrsync::simulator::freshdesk::{Fault, Op, Plan};
use attrsync::simulator::{FreshdeskSim, FreshdeskSimConfig};
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::helpers::{json_body, spawn_app_with, TestApp};

const ADA: &str = "43000000101";
const GRACE: &str = "43000000102";

/// A simulated account with the sample contacts, shut down when dropped.
struct Account(FreshdeskSim);

impl Drop for Account {
    fn drop(&mut self) {
        self.0.shutdown();
    }
}

impl std::ops::Deref for Account {
    type Target = FreshdeskSim;
    fn deref(&self) -> &FreshdeskSim {
        &self.0
    }
}

async fn account_with(config: FreshdeskSimConfig) -> Account {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let sim = FreshdeskSim::start(config, listener)
        .await
        .expect("start the Freshdesk simulator");
    for contact in FreshdeskSim::sample_contacts() {
        sim.insert(contact).expect("a sample contact");
    }
    Account(sim)
}

async fn account() -> Account {
    account_with(FreshdeskSimConfig::default()).await
}

/// The freshdesk source on the account at `url`, nothing cached, quick retries.
fn use_freshdesk(s: &mut Settings, url: &str) {
    s.crm.adapter = CrmAdapterKind::Freshdesk;
    let fd = &mut s.crm.freshdesk;
    fd.domain_url = url.to_owned();
    fd.api_key = "sim-api-key".to_owned().into();
    fd.external_id_lookup = true;
    fd.common.cache_ttl_secs = 0;
    fd.common.not_found_ttl_secs = 0;
    fd.common.retry_base_ms = 10;
    fd.common.retry_max_ms = 200;
}

async fn app_on(sim: &FreshdeskSim, configure: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_with(|s, _| {
        use_freshdesk(s, &sim.base_url());
        configure(s);
    })
    .await
}

async fn lookup(app: &TestApp, request: Value) -> Value {
    let response = app.post_lookup(&request).await;
    assert_eq!(response.status(), 200, "{request}");
    json_body(response).await
}

async fn by_phone(app: &TestApp, ani: &str) -> Value {
    lookup(app, json!({ "ani": ani })).await
}

#[tokio::test]
async fn every_key_kind_finds_its_contact_with_one_search_call_each() {
    let sim = account().await;
    let app = app_on(&sim, |_| {}).await;

    // Work phone stored "(317) 555-0126": the national notation, graded national.
    let grace = by_phone(&app, "tel:+13175550126").await;
    assert_eq!(grace["found"], "true", "{grace}");
    assert_eq!(grace["recordId"], GRACE);
    assert_eq!(grace["recordType"], "contact");
    assert_eq!(grace["matchQuality"], "national");
    // Her mobile, stored "+1 317 555 0199".
    let mobile = by_phone(&app, "tel:+13175550199").await;
    assert_eq!(mobile["recordId"], GRACE, "{mobile}");
    assert_eq!(mobile["matchQuality"], "exact");
    let email = lookup(&app, json!({"email": "ada@example.com"})).await;
    assert_eq!(email["recordId"], ADA, "{email}");
    assert_eq!(email["name"], "Ada Lovelace");
    let id = lookup(&app, json!({"customerId": GRACE})).await;
    assert_eq!(id["found"], "true", "{id}");
    assert_eq!(id["name"], "Grace Hopper");
    let external = lookup(&app, json!({"externalContactId": "C-1001"})).await;
    assert_eq!(external["recordId"], ADA, "{external}");
    // A deleted contact is not found.
    let deleted = by_phone(&app, "tel:+442079460958").await;
    assert_eq!(deleted["reason"], "not_found", "{deleted}");

    let stats = sim.stats();
    assert_eq!(stats.requests.get("search"), Some(&5), "{stats:?}");
    assert_eq!(stats.requests.get("contact"), Some(&1));
    assert!(
        stats.rejected_queries.is_empty(),
        "{:?}",
        stats.rejected_queries
    );
    assert!(
        stats.queries[0].starts_with("\"phone:'+13175550126' OR phone:'(317) 555-0126'"),
        "{}",
        stats.queries[0]
    );
}

#[tokio::test]
async fn the_list_filters_find_the_contact_notation_by_notation() {
    let sim = account().await;
    let app = app_on(&sim, |s| {
        s.crm.freshdesk.lookup = FreshdeskLookup::List;
        s.crm.freshdesk.external_id_lookup = false;
    })
    .await;
    let grace = by_phone(&app, "tel:+13175550126").await;
    assert_eq!(grace["recordId"], GRACE, "{grace}");
    // e164 on phone and mobile, then national on phone: three list calls.
    assert_eq!(sim.traffic().count("contacts_list"), 3);
    let email = lookup(&app, json!({"email": "grace.hopper@example.com"})).await;
    assert_eq!(email["recordId"], GRACE, "{email}");
    assert_eq!(sim.traffic().count("search"), 0);
}

/// Ada twice: the sample contact, and a newer one sharing her mobile.
async fn two_adas(sim: &FreshdeskSim) {
    sim.insert(
        json!({"id": 43000000201_u64, "name": "Ada Junior", "phone": null,
                      "mobile": "+1 317 555 0125", "active": true,
                      "updated_at": "2030-01-01T00:00:00Z"}),
    )
    .expect("a contact");
}

#[tokio::test]
async fn two_contacts_for_one_number_are_decided_by_each_match_policy() {
    for (policy, expected) in [
        (MatchPolicy::First, "Ada Lovelace"),
        (MatchPolicy::MostRecent, "Ada Junior"),
    ] {
        let sim = account().await;
        two_adas(&sim).await;
        let app = app_on(&sim, |s| s.crm.match_policy = policy).await;
        let answer = by_phone(&app, "tel:+13175550125").await;
        assert_eq!(answer["name"], expected, "{policy:?}: {answer}");
        assert_eq!(answer["matchCount"], "2", "{policy:?}");
    }
    let sim = account().await;
    two_adas(&sim).await;
    let app = app_on(&sim, |s| s.crm.match_policy = MatchPolicy::Refuse).await;
    let answer = by_phone(&app, "tel:+13175550125").await;
    assert_eq!(answer["reason"], "ambiguous", "{answer}");
    assert_eq!(answer["matchCount"], "2");
}

#[tokio::test]
async fn the_default_budget_is_the_plans_per_minute_limit() {
    let app = spawn_app_with(|_, _| {}).await;
    let fd = &app.state.settings.crm.freshdesk;
    assert_eq!(fd.common.rate_limit_per_minute, Plan::Growth.limits().0);
    assert_eq!(fd.lookup, FreshdeskLookup::Search);
}

/// Nine lookups of distinct callers against an account allowing 4 calls per one-second
/// "minute", with `budget` calls a minute (0 = none); the calls Freshdesk throttled.
async fn throttled_with_budget(budget: u32) -> u64 {
    let sim = account_with(FreshdeskSimConfig {
        per_minute: 4,
        window: Duration::from_secs(1),
        ..FreshdeskSimConfig::default()
    })
    .await;
    let app = app_on(&sim, |s| {
        s.crm.freshdesk.common.rate_limit_per_minute = budget;
        s.crm.freshdesk.common.rate_limit_burst = 1;
    })
    .await;
    for n in 0..9 {
        let answer = by_phone(&app, &format!("tel:+1317555{:04}", 1000 + n)).await;
        assert_eq!(answer["reason"], "not_found", "{answer}");
    }
    sim.stats().throttled
}

#[tokio::test]
async fn a_budget_under_the_plan_limit_keeps_a_storm_of_callers_free_of_429s() {
    // 2.5 calls a second never puts more than 3 in a clock second.
    assert_eq!(throttled_with_budget(150).await, 0);
    // The control: without a budget the same storm is throttled (and retried).
    assert!(throttled_with_budget(0).await > 0);
}

#[tokio::test]
async fn a_429_within_max_retry_after_is_waited_for_and_retried() {
    let sim = account_with(FreshdeskSimConfig {
        per_minute: 2,
        window: Duration::from_secs(1),
        ..FreshdeskSimConfig::default()
    })
    .await;
    let app = app_on(&sim, |_| {}).await;
    for ani in [
        "tel:+13175550125",
        "tel:+13175550199",
        "tel:+13175550126",
        "tel:+13175550125",
    ] {
        let answer = by_phone(&app, ani).await;
        assert_eq!(answer["found"], "true", "{ani}: {answer}");
    }
    assert!(sim.stats().throttled >= 1, "{:?}", sim.stats());
}

#[tokio::test]
async fn a_429_storm_with_a_long_retry_after_opens_the_circuit_until_the_minute_is_over() {
    let sim = account_with(FreshdeskSimConfig {
        per_minute: 3,
        ..FreshdeskSimConfig::default()
    })
    .await;
    let app = app_on(&sim, |_| {}).await;
    let mut reasons = Vec::new();
    for n in 0..10 {
        let answer = by_phone(&app, &format!("tel:+1317555{:04}", 1000 + n)).await;
        reasons.push(answer["reason"].as_str().unwrap_or_default().to_owned());
    }
    // Three calls pass; the fourth is throttled with up to 60 s to wait.
    assert_eq!(
        reasons[..3],
        ["not_found", "not_found", "not_found"],
        "{reasons:?}"
    );
    assert_eq!(reasons[3], "crm_error", "{reasons:?}");
    assert!(
        reasons[4..].iter().all(|r| r == "circuit_open"),
        "{reasons:?}"
    );
    assert_eq!(sim.traffic().count("search"), 4, "no call after the 429");
}

#[tokio::test]
async fn the_injection_classics_through_every_key_kind_match_nothing_and_break_no_query() {
    let sim = account().await;
    sim.insert(
        json!({"id": 43000000301_u64, "name": "Bobby Tables", "email": "bobby@example.com",
                      "phone": "+13175550999", "unique_external_id": "OR 1=1", "active": true}),
    )
    .expect("a contact");
    for lookup_kind in [FreshdeskLookup::Search, FreshdeskLookup::List] {
        let app = app_on(&sim, |s| {
            s.crm.freshdesk.lookup = lookup_kind;
            s.crm.freshdesk.external_id_lookup = lookup_kind == FreshdeskLookup::Search;
        })
        .await;
        let classics = [
            "'",
            "\\",
            "}",
            "OR 1=1",
            "' OR '1'='1",
            "--",
            "%",
            "*",
            "\"",
            "x' OR phone:'",
            ") OR (active:true",
            "null",
            "a&phone=+13175550999",
        ];
        for classic in classics {
            let response = app
                .post_lookup(&json!({"ani": format!("+1 317 555 0998 {classic}")}))
                .await;
            if response.status() == 200 {
                let phone = json_body(response).await;
                assert_eq!(phone["found"], "false", "phone {classic:?}: {phone}");
            }
            let email = lookup(&app, json!({"email": format!("x{classic}@example.com")})).await;
            assert_eq!(email["found"], "false", "email {classic:?}: {email}");
            let id = lookup(&app, json!({"customerId": classic})).await;
            assert_eq!(id["found"], "false", "id {classic:?}: {id}");
            if classic != "OR 1=1" {
                let external = lookup(&app, json!({"externalContactId": classic})).await;
                assert_eq!(
                    external["found"], "false",
                    "external {classic:?}: {external}"
                );
            }
        }
        // Operators inside a quoted value are text: the contact holding them, and only it.
        if lookup_kind == FreshdeskLookup::Search {
            let literal = lookup(&app, json!({"externalContactId": "OR 1=1"})).await;
            assert_eq!(literal["name"], "Bobby Tables", "{literal}");
            assert_eq!(literal["matchCount"], "1");
        }
    }
    let stats = sim.stats();
    assert!(
        stats.rejected_queries.is_empty(),
        "{:?}",
        stats.rejected_queries
    );
}

#[tokio::test]
async fn garbage_answers_fail_the_lookup_clearly_and_the_next_one_succeeds() {
    let sim = account().await;
    let app = app_on(&sim, |s| s.crm.freshdesk.common.max_retries = 0).await;
    for fault in [
        Fault::NotJson,
        Fault::WrongShape,
        Fault::Status { status: 502 },
    ] {
        sim.push_fault(Op::Search, fault.clone());
        let answer = by_phone(&app, "tel:+13175550125").await;
        assert_eq!(answer["reason"], "crm_error", "{fault:?}: {answer}");
    }
    sim.push_fault(Op::Contact, Fault::WrongShape);
    let id = lookup(&app, json!({"customerId": ADA})).await;
    assert_eq!(id["reason"], "crm_error", "{id}");
    assert_eq!(by_phone(&app, "tel:+13175550125").await["recordId"], ADA);
}

#[tokio::test]
async fn a_wrong_api_key_fails_the_lookup_without_retries() {
    let sim = account().await;
    let app = app_on(&sim, |s| {
        s.crm.freshdesk.api_key = "revoked".to_owned().into();
    })
    .await;
    let answer = by_phone(&app, "tel:+13175550125").await;
    assert_eq!(answer["reason"], "crm_error", "{answer}");
    assert_eq!(sim.traffic().count("search"), 1);
}

#[tokio::test]
async fn a_chain_asks_the_file_source_first_and_freshdesk_for_the_rest() {
    let sim = account().await;
    let app = app_on(&sim, |s| {
        s.crm.sources = vec![CrmAdapterKind::File, CrmAdapterKind::Freshdesk];
        s.crm.chain_mode = ChainMode::FirstHit;
    })
    .await;
    let from_file = by_phone(&app, "tel:+13175550125").await;
    assert_eq!(from_file["found"], "true", "{from_file}");
    assert_ne!(from_file["recordId"], ADA);
    assert_eq!(sim.traffic().total(), 0);
    let grace = by_phone(&app, "tel:+13175550199").await;
    assert_eq!(grace["recordId"], GRACE, "{grace}");
}

#[tokio::test]
async fn an_sql_cache_table_answers_first_and_freshdesk_only_for_callers_it_does_not_know() {
    use crate::sql_db::{Backend, Row, Table};
    let Some(table) = Table::fresh(Backend::Sqlite, "sql_then_freshdesk").await else {
        return;
    };
    table
        .insert(&[Row {
            id: "CACHE-1",
            kind: "contact",
            name: "Ada from the cache",
            phone: "+13175550125",
            ..Row::default()
        }])
        .await;
    let sim = account().await;
    let app = app_on(&sim, |s| {
        table.configure(s);
        s.crm.sources = vec![CrmAdapterKind::Sql, CrmAdapterKind::Freshdesk];
        s.crm.chain_mode = ChainMode::FirstHit;
    })
    .await;
    let cached = by_phone(&app, "tel:+13175550125").await;
    assert_eq!(cached["found"], "true", "{cached}");
    assert_eq!(cached["recordId"], "CACHE-1", "{cached}");
    assert_eq!(
        sim.traffic().total(),
        0,
        "the table knew Ada: no Freshdesk call"
    );
    let grace = by_phone(&app, "tel:+13175550199").await;
    assert_eq!(grace["recordId"], GRACE, "{grace}");
    assert!(sim.traffic().total() >= 1, "Freshdesk was asked for Grace");
}
