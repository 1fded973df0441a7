//! The `hubspot` adapter against the HubSpot simulator over real HTTP: contacts found by phone
//! through one search over the stored and calculated phone properties, by email and record id
//! through direct reads and by a custom property; several contacts under each match policy;
//! another country's number with the same national digits dropped; the search endpoint's
//! per-second limit kept client-side; 429 storms; the daily limit as a quota; the injection
//! classics through every key kind; garbage answers; a refused token; the short not-found TTL
//! that lets a contact created during the call be found; and a chain behind the
//! customer file.

use std::time::{Duration, Instant};

use attrsync::config::{ChainMode, CrmAdapterKind, MatchPolicy, Settings};
use attrsync::simulator::hubspot::{Fault, LimitScope};
use attrsync::simulator::{HubSpotSim, HubSpotSimConfig};
use secrecy::SecretString;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::helpers::{json_body, spawn_app_with, TestApp};

async fn hubspot() -> HubSpotSim {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let sim = HubSpotSim::start(HubSpotSimConfig::default(), listener)
        .await
        .expect("start the HubSpot simulator");
    for contact in HubSpotSim::sample_contacts() {
        assert!(sim.seed_contact(contact).is_some());
    }
    sim
}

fn use_hubspot(s: &mut Settings, sim: &HubSpotSim) {
    s.crm.adapter = CrmAdapterKind::Hubspot;
    let h = &mut s.crm.hubspot;
    h.base_url = sim.base_url();
    h.access_token = SecretString::from("pat-na1-sim-token".to_owned());
    h.external_contact_id = "account_no".into();
    h.common.retry_base_ms = 10;
    h.common.retry_max_ms = 200;
    h.common.cache_ttl_secs = 0;
}

async fn app_with(sim: &HubSpotSim, configure: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_with(|s, _| {
        use_hubspot(s, sim);
        configure(s);
    })
    .await
}

async fn lookup(app: &TestApp, request: Value) -> Value {
    let response = app.post_lookup(&request).await;
    assert_eq!(response.status(), 200, "{request}");
    json_body(response).await
}

async fn by_ani(app: &TestApp, ani: &str) -> Value {
    lookup(app, json!({ "ani": ani })).await
}

#[tokio::test]
async fn a_caller_is_found_by_phone_in_one_search_over_stored_and_calculated_properties() {
    let sim = hubspot().await;
    let app = app_with(&sim, |_| {}).await;
    for (ani, first, quality) in [
        ("tel:+15135557611", "Ada", "exact"),
        ("tel:+13175550126", "Grace", "national"),
        ("tel:+13175550199", "Grace", "exact"),
        ("tel:+442079460958", "Alan", "exact"),
    ] {
        let answer = by_ani(&app, ani).await;
        assert_eq!(answer["found"], "true", "{ani}: {answer}");
        assert_eq!(answer["firstname"], first, "{answer}");
        assert_eq!(answer["matchQuality"], quality, "{ani}: {answer}");
        assert_eq!(answer["recordType"], "contact");
    }
    assert_eq!(sim.traffic().count("search"), 4, "one search per caller");
    let body: Value = serde_json::from_str(&sim.search_bodies()[1]).expect("JSON body");
    let groups = body["filterGroups"].as_array().expect("groups");
    assert_eq!(groups.len(), 4, "{body}");
    assert_eq!(
        groups[2]["filters"][0],
        json!({"propertyName": "hs_searchable_calculated_phone_number", "operator": "EQ", "value": "3175550126"}),
        "the national number, no country code"
    );
}

#[tokio::test]
async fn email_record_id_and_a_custom_property_each_find_their_contact() {
    let sim = hubspot().await;
    let id = sim
        .seed_contact(
            json!({"firstname": "Byron", "email": "byron@example.com", "account_no": "AC-7"}),
        )
        .expect("seeded");
    let app = app_with(&sim, |s| s.crm.hubspot.properties.push("account_no".into())).await;
    for request in [
        json!({"email": "Byron@Example.com"}),
        json!({"customerId": id.to_string()}),
        json!({"externalContactId": "AC-7"}),
    ] {
        let answer = lookup(&app, request.clone()).await;
        assert_eq!(answer["found"], "true", "{request}: {answer}");
        assert_eq!(answer["firstname"], "Byron", "{answer}");
        assert_eq!(answer["account_no"], "AC-7", "{answer}");
        assert_eq!(answer["recordId"], id.to_string());
    }
    assert_eq!(
        sim.traffic().count("get_contact"),
        2,
        "email and id are direct reads"
    );
    assert_eq!(sim.traffic().count("search"), 1);
    let answer = lookup(&app, json!({"customerId": "999999"})).await;
    assert_eq!(
        answer["reason"], "not_found",
        "a 404 is not found: {answer}"
    );
}

#[tokio::test]
async fn several_contacts_with_one_number_are_decided_by_each_match_policy() {
    let sim = hubspot().await;
    assert!(sim
        .seed_contact(json!({"firstname": "Older", "phone": "+1 (415) 555-0101"}))
        .is_some());
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(sim
        .seed_contact(json!({"firstname": "Newer", "mobilephone": "+14155550101"}))
        .is_some());
    for (policy, first) in [
        (MatchPolicy::First, "Older"),
        (MatchPolicy::MostRecent, "Newer"),
    ] {
        let app = app_with(&sim, |s| s.crm.match_policy = policy).await;
        let answer = by_ani(&app, "tel:+14155550101").await;
        assert_eq!(answer["firstname"], first, "{policy:?}: {answer}");
        assert_eq!(answer["matchCount"], "2", "{answer}");
    }
    let app = app_with(&sim, |s| s.crm.match_policy = MatchPolicy::Refuse).await;
    let answer = by_ani(&app, "tel:+14155550101").await;
    assert_eq!(answer["reason"], "ambiguous", "{answer}");
}

#[tokio::test]
async fn another_countrys_number_with_the_same_national_digits_is_dropped() {
    let sim = hubspot().await;
    // Its calculated property holds 5135557611 too: found by the search, not a match.
    assert!(sim
        .seed_contact(json!({"firstname": "Elsewhere", "phone": "+61 5135557611"}))
        .is_some());
    let app = app_with(&sim, |s| s.crm.match_policy = MatchPolicy::Refuse).await;
    let answer = by_ani(&app, "tel:+15135557611").await;
    assert_eq!(answer["firstname"], "Ada", "{answer}");
    assert_eq!(answer["matchCount"], "1");
}

#[tokio::test]
async fn the_search_limit_is_kept_client_side_so_hubspot_never_answers_429() {
    let sim = hubspot().await;
    sim.set_search_limit(5, LimitScope::Account);
    let app = app_with(&sim, |s| {
        s.crm.hubspot.common.max_retries = 0;
        s.lookup.deadline_ms = 8000;
    })
    .await;
    let started = Instant::now();
    let lookups = (0..12).map(|i| {
        let app = &app;
        async move { by_ani(app, &format!("tel:+1415555{:04}", 2000 + i)).await }
    });
    let answers = futures::future::join_all(lookups).await;
    assert!(
        answers.iter().all(|a| a["reason"] == "not_found"),
        "{answers:?}"
    );
    assert_eq!(
        sim.stats().search_rate_limited,
        0,
        "no 429 from the search limit"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "12 searches at 5 a second take over 2 s: {:?}",
        started.elapsed()
    );
    assert!(sim.traffic().max_in_window(Duration::from_secs(1)) <= 5);
}

#[tokio::test]
async fn a_429_storm_is_retried_and_its_policy_name_is_logged_not_the_number() {
    let sim = hubspot().await;
    let app = app_with(&sim, |s| {
        s.crm.hubspot.search_per_second = 0;
        s.crm.hubspot.common.max_retries = 2;
    })
    .await;
    for _ in 0..2 {
        sim.push_fault(Fault::Status { status: 429 });
    }
    let started = Instant::now();
    assert_eq!(by_ani(&app, "tel:+15135557611").await["found"], "true");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "waited a second per 429"
    );
    assert_eq!(sim.traffic().count("search"), 3);
    for _ in 0..3 {
        sim.push_fault(Fault::Status { status: 429 });
    }
    let answer = by_ani(&app, "tel:+13175550126").await;
    assert_eq!(answer["reason"], "crm_error", "{answer}");
    assert_eq!(sim.traffic().count("search"), 6);
}

#[tokio::test]
async fn the_spent_daily_allowance_opens_the_circuit_instead_of_retrying() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let sim = HubSpotSim::start(
        HubSpotSimConfig {
            daily_limit: 1,
            ..HubSpotSimConfig::default()
        },
        listener,
    )
    .await
    .expect("start the HubSpot simulator");
    for contact in HubSpotSim::sample_contacts() {
        assert!(sim.seed_contact(contact).is_some());
    }
    let app = app_with(&sim, |s| s.crm.hubspot.common.max_retries = 3).await;
    let first = lookup(&app, json!({"email": "ada@example.com"})).await;
    assert_eq!(first["firstname"], "Ada", "{first}");
    let spent = lookup(&app, json!({"email": "alan@example.co.uk"})).await;
    assert_eq!(spent["reason"], "crm_error", "{spent}");
    assert_eq!(sim.stats().general_rate_limited, 1, "DAILY is not retried");
    let later = lookup(&app, json!({"email": "grace.hopper@example.com"})).await;
    assert_eq!(
        later["reason"], "circuit_open",
        "the circuit waits for the reset: {later}"
    );
    assert_eq!(sim.traffic().count("get_contact"), 2);
}

#[tokio::test]
async fn injection_classics_through_every_key_kind_find_no_one() {
    let sim = hubspot().await;
    assert!(sim
        .seed_contact(
            json!({"firstname": "Decoy", "email": "decoy@example.com", "account_no": "*"})
        )
        .is_some());
    let app = app_with(&sim, |_| {}).await;
    let classics = [
        "'",
        "\\",
        "}",
        "' OR 1=1 --",
        "--",
        "%",
        "*",
        "\"}]}",
        "../1",
    ];
    for classic in classics {
        for request in [
            json!({"email": classic}),
            json!({"email": format!("decoy{classic}@example.com")}),
            json!({"email": format!("{classic}@example.com")}),
            json!({"customerId": classic}),
            json!({"customerId": format!("100451{classic}")}),
            json!({"externalContactId": format!("x{classic}")}),
            json!({"ani": format!("tel:+1513555{classic}")}),
        ] {
            let response = app.post_lookup(&request).await;
            let status = response.status();
            let answer = json_body(response).await;
            if status.is_client_error() {
                // Refused at the door, never sent to the CRM.
                assert_eq!(answer["code"], "invalid_field", "{request}: {answer}");
                continue;
            }
            assert_eq!(answer["found"], "false", "{request}: {answer}");
            assert_eq!(answer["reason"], "not_found", "{request}: {answer}");
        }
    }
    assert_eq!(
        sim.stats().invalid_requests,
        0,
        "every request was well formed"
    );
    let answer = lookup(&app, json!({"externalContactId": "*"})).await;
    assert_eq!(
        answer["firstname"], "Decoy",
        "`*` is a literal value under EQ: {answer}"
    );
}

#[tokio::test]
async fn garbage_answers_are_a_clear_error_never_not_found() {
    let sim = hubspot().await;
    let app = app_with(&sim, |s| s.crm.hubspot.common.max_retries = 0).await;
    for fault in [
        Fault::Garbage,
        Fault::WrongShape,
        Fault::Status { status: 502 },
    ] {
        sim.push_fault(fault.clone());
        let answer = by_ani(&app, "tel:+15135557611").await;
        assert_eq!(answer["reason"], "crm_error", "{fault:?}: {answer}");
    }
    assert_eq!(by_ani(&app, "tel:+15135557611").await["found"], "true");
}

#[tokio::test]
async fn a_refused_token_fails_at_once_without_retries() {
    let sim = hubspot().await;
    sim.revoke_token("pat-na1-sim-token");
    let app = app_with(&sim, |s| s.crm.hubspot.common.max_retries = 3).await;
    let answer = by_ani(&app, "tel:+15135557611").await;
    assert_eq!(answer["reason"], "crm_error", "{answer}");
    assert_eq!(sim.traffic().count("search"), 1, "a 401 is not retried");
}

#[tokio::test]
async fn a_contact_created_during_the_call_is_found_once_search_has_indexed_it() {
    let sim = hubspot().await;
    sim.set_index_lag(Duration::from_millis(600));
    let app = app_with(&sim, |s| s.crm.hubspot.common.not_found_ttl_secs = 1).await;
    assert!(sim
        .insert_contact(json!({"firstname": "New", "phone": "+14155550177"}))
        .is_some());
    let answer = by_ani(&app, "tel:+14155550177").await;
    assert_eq!(answer["reason"], "not_found", "not indexed yet: {answer}");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let answer = by_ani(&app, "tel:+14155550177").await;
    assert_eq!(
        answer["firstname"], "New",
        "the short not-found TTL ran out: {answer}"
    );
}

#[tokio::test]
async fn the_customer_file_answers_first_and_hubspot_only_for_callers_it_does_not_know() {
    let sim = hubspot().await;
    let app = app_with(&sim, |s| {
        s.crm.sources = vec![CrmAdapterKind::File, CrmAdapterKind::Hubspot];
        s.crm.chain_mode = ChainMode::FirstHit;
    })
    .await;
    assert_eq!(by_ani(&app, "tel:+13175550125").await["firstName"], "Ada");
    assert_eq!(sim.traffic().total(), 0, "the file knew the caller");
    assert_eq!(by_ani(&app, "tel:+442079460958").await["firstname"], "Alan");
}
