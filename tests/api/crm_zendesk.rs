//! The `zendesk` adapter against the Zendesk simulator over real HTTP: end users found by phone
//! in any stored formatting, by email, user id, external id and a custom field; several users
//! with one number under each match policy; agents and look-alike numbers left out; 429 storms
//! and the account's per-minute limit; the remaining-requests gauge; the injection classics
//! through every key kind; garbage answers; refused credentials and OAuth tokens; and a chain
//! with the customer file in front.

use std::time::{Duration, Instant};

use attrsync::config::{
    ChainMode, CrmAdapterKind, MatchPolicy, Settings, ZendeskAuth, ZendeskPhoneForm,
};
use attrsync::simulator::zendesk::Fault;
use attrsync::simulator::{ZendeskSim, ZendeskSimConfig};
use secrecy::SecretString;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::helpers::{json_body, spawn_app_with, TestApp};

async fn zendesk() -> ZendeskSim {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let sim = ZendeskSim::start(ZendeskSimConfig::default(), listener)
        .await
        .expect("start the Zendesk simulator");
    for user in ZendeskSim::sample_users() {
        assert!(sim.seed_user(user).is_some());
    }
    sim
}

/// The adapter pointed at `sim` with its API token; quick retries.
fn use_zendesk(s: &mut Settings, sim: &ZendeskSim) {
    s.crm.adapter = CrmAdapterKind::Zendesk;
    let z = &mut s.crm.zendesk;
    z.base_url = sim.base_url();
    z.email = "agent@example.com".into();
    z.api_token = SecretString::from("sim-api-token".to_owned());
    z.external_contact_id = "external_id".into();
    z.common.retry_base_ms = 10;
    z.common.retry_max_ms = 200;
    z.common.cache_ttl_secs = 0;
    z.common.not_found_ttl_secs = 0;
}

async fn app_with(sim: &ZendeskSim, configure: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_with(|s, _| {
        use_zendesk(s, sim);
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
async fn a_caller_is_found_by_phone_whatever_formatting_zendesk_stored() {
    let sim = zendesk().await;
    let app = app_with(&sim, |_| {}).await;
    for (ani, name, quality) in [
        ("tel:+15135557611", "Ada Lovelace", "exact"),
        ("tel:+13175550126", "Grace Hopper", "national"),
        ("tel:+442079460958", "Alan Turing", "exact"),
    ] {
        let answer = by_ani(&app, ani).await;
        assert_eq!(answer["found"], "true", "{ani}: {answer}");
        assert_eq!(answer["name"], name, "{answer}");
        assert_eq!(answer["matchQuality"], quality, "{answer}");
        assert_eq!(answer["recordType"], "user");
    }
    assert_eq!(
        sim.queries(),
        [
            "type:user role:end-user phone:*5135557611",
            "type:user role:end-user phone:*3175550126",
            "type:user role:end-user phone:*2079460958",
        ],
        "the national number with Zendesk's leading wildcard"
    );
}

#[tokio::test]
async fn the_exact_phone_forms_find_only_the_stored_text() {
    let sim = zendesk().await;
    let app = app_with(&sim, |s| {
        s.crm.zendesk.phone_form = ZendeskPhoneForm::PlusDigits;
    })
    .await;
    assert_eq!(by_ani(&app, "tel:+15135557611").await["found"], "true");
    let answer = by_ani(&app, "tel:+13175550126").await;
    assert_eq!(
        answer["found"], "false",
        "stored as (317) 555-0126: {answer}"
    );
    assert_eq!(
        sim.queries()[1],
        "type:user role:end-user phone:+13175550126"
    );
}

#[tokio::test]
async fn email_user_id_external_id_and_a_custom_field_each_find_their_user() {
    let sim = zendesk().await;
    let ada = sim
        .seed_user(json!({"name": "Ada Byron", "email": "byron@example.com",
                          "external_id": "C-2001", "user_fields": {"account_no": "AC 2001"}}))
        .expect("seeded");
    let app = app_with(&sim, |s| {
        s.crm.zendesk.external_contact_id = "account_no".into();
        s.crm.zendesk.user_fields = [("account_no".to_owned(), "accountNo".to_owned())].into();
    })
    .await;
    for request in [
        json!({"email": "Byron@Example.com"}),
        json!({"customerId": ada.to_string()}),
        json!({"externalContactId": "AC 2001"}),
    ] {
        let answer = lookup(&app, request.clone()).await;
        assert_eq!(answer["found"], "true", "{request}: {answer}");
        assert_eq!(answer["name"], "Ada Byron", "{answer}");
        assert_eq!(answer["accountNo"], "AC 2001", "{answer}");
        assert_eq!(answer["recordId"], ada.to_string());
    }
    let app = app_with(&sim, |_| {}).await;
    let answer = lookup(&app, json!({"externalContactId": "C-2001"})).await;
    assert_eq!(answer["name"], "Ada Byron", "{answer}");
    assert_eq!(answer["matchedBy"], "external_contact_id");
    assert_eq!(sim.traffic().count("show_user"), 1);
    assert_eq!(sim.traffic().count("users_search"), 1);
}

/// Two end users sharing one number, one updated a second later (the simulator stamps
/// `updated_at` to the second), and an agent with it too.
async fn household(sim: &ZendeskSim) {
    for (i, name) in ["Older Household", "Newer Household"]
        .into_iter()
        .enumerate()
    {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(1100)).await;
        }
        assert!(sim
            .seed_user(json!({"name": name, "phone": "+1 (415) 555-0101"}))
            .is_some());
    }
    assert!(sim
        .seed_user(json!({"name": "Agent At Home", "phone": "+14155550101", "role": "agent"}))
        .is_some());
}

#[tokio::test]
async fn several_users_with_one_number_are_decided_by_each_match_policy() {
    let sim = zendesk().await;
    household(&sim).await;
    for (policy, name, count) in [
        (MatchPolicy::First, "Older Household", "2"),
        (MatchPolicy::MostRecent, "Newer Household", "2"),
    ] {
        let app = app_with(&sim, |s| s.crm.match_policy = policy).await;
        let answer = by_ani(&app, "tel:+14155550101").await;
        assert_eq!(answer["name"], name, "{policy:?}: {answer}");
        assert_eq!(answer["matchCount"], count, "the agent is not a candidate");
    }
    let app = app_with(&sim, |s| s.crm.match_policy = MatchPolicy::Refuse).await;
    let answer = by_ani(&app, "tel:+14155550101").await;
    assert_eq!(answer["found"], "false", "{answer}");
    assert_eq!(answer["reason"], "ambiguous");
    assert!(answer.get("name").is_none(), "{answer}");
}

#[tokio::test]
async fn a_user_whose_number_only_ends_like_the_callers_is_dropped() {
    let sim = zendesk().await;
    // Found by the wildcard (*5135557611 ends both), but another country's number.
    assert!(sim
        .seed_user(json!({"name": "Look-alike", "phone": "+61 5135557611"}))
        .is_some());
    let app = app_with(&sim, |s| s.crm.match_policy = MatchPolicy::Refuse).await;
    let answer = by_ani(&app, "tel:+15135557611").await;
    assert_eq!(answer["found"], "true", "only Ada is left: {answer}");
    assert_eq!(answer["name"], "Ada Lovelace");
    assert_eq!(answer["matchCount"], "1");
}

#[tokio::test]
async fn a_429_storm_is_waited_out_with_retry_after_and_then_answered() {
    let sim = zendesk().await;
    let app = app_with(&sim, |s| s.crm.zendesk.common.max_retries = 2).await;
    for _ in 0..2 {
        sim.push_fault(Fault::Status { status: 429 });
    }
    let started = Instant::now();
    let answer = by_ani(&app, "tel:+15135557611").await;
    assert_eq!(answer["found"], "true", "{answer}");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "Retry-After: 1 waited twice, took {:?}",
        started.elapsed()
    );
    assert_eq!(sim.traffic().count("search"), 3);

    // A storm longer than the retries: an error, not "not found", and no more calls than allowed.
    for _ in 0..5 {
        sim.push_fault(Fault::Status { status: 429 });
    }
    let answer = by_ani(&app, "tel:+13175550126").await;
    assert_eq!(answer["found"], "false", "{answer}");
    assert_eq!(answer["reason"], "crm_error", "{answer}");
    assert_eq!(sim.traffic().count("search"), 6);
}

#[tokio::test]
async fn the_accounts_limit_answers_with_a_long_retry_after_that_fails_the_lookup_at_once() {
    let sim = zendesk().await;
    sim.set_rate_limit_per_minute(2);
    let app = app_with(&sim, |s| {
        s.crm.zendesk.common.rate_limit_per_minute = 0;
        s.crm.zendesk.common.max_retries = 3;
    })
    .await;
    assert_eq!(by_ani(&app, "tel:+15135557611").await["found"], "true");
    assert_eq!(by_ani(&app, "tel:+13175550126").await["found"], "true");
    let started = Instant::now();
    let answer = by_ani(&app, "tel:+442079460958").await;
    assert_eq!(answer["reason"], "crm_error", "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a Retry-After of most of a minute is not slept through in a lookup"
    );
    assert_eq!(sim.stats().rate_limited, 1, "given up after the first 429");
}

#[tokio::test]
async fn the_default_budget_keeps_lookups_under_the_plans_per_minute_limit() {
    let sim = zendesk().await;
    // Budget 120/min, two at once: four lookups take at least a second.
    let app = app_with(&sim, |s| {
        s.crm.zendesk.common.rate_limit_per_minute = 120;
        s.crm.zendesk.common.rate_limit_burst = 2;
    })
    .await;
    let started = Instant::now();
    for ani in [
        "tel:+15135557611",
        "tel:+13175550126",
        "tel:+442079460958",
        "tel:+15135550000",
    ] {
        by_ani(&app, ani).await;
    }
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(sim.stats().rate_limited, 0);
    // The recorder is global to the test process, so other tests' answers set these gauges too:
    // that they exist is what can be asserted here (their parsing is unit-tested).
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    for window in ["minute", "search_minute"] {
        assert!(
            metrics.contains(&format!(
                r#"attrsync_crm_rate_limit_remaining{{source="zendesk",window="{window}"}}"#
            )),
            "{metrics}"
        );
    }
}

const CLASSICS: [&str; 9] = [
    "'",
    "\\",
    "}",
    "' OR 1=1 --",
    "--",
    "%",
    "*",
    "\" OR role:agent",
    "decoy@example.com type:user",
];

#[tokio::test]
async fn injection_classics_through_every_key_kind_find_no_one() {
    let sim = zendesk().await;
    assert!(sim
        .seed_user(
            json!({"name": "Decoy", "email": "decoy@example.com", "phone": "+15135559999",
                          "external_id": "*", "user_fields": {"account_no": "' OR 1=1 --x"}})
        )
        .is_some());
    let app = app_with(&sim, |s| s.crm.zendesk.customer_id = "account_no".into()).await;
    for classic in CLASSICS {
        for request in [
            json!({"email": classic}),
            json!({"email": format!("a{classic}@example.com")}),
            json!({"customerId": classic}),
            json!({"externalContactId": classic}),
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
            if request.get("externalContactId").is_some() && classic == "*" {
                // external_id takes no search syntax: `*` is the decoy's literal id.
                assert_eq!(answer["name"], "Decoy", "{answer}");
                continue;
            }
            assert_eq!(answer["found"], "false", "{request}: {answer}");
            assert_eq!(answer["reason"], "not_found", "{request}: {answer}");
        }
    }
    assert_eq!(
        sim.stats().invalid_queries,
        0,
        "every query sent was well formed"
    );
    for query in sim.queries() {
        assert!(
            query.starts_with("type:user role:end-user "),
            "the role filter always leads: {query}"
        );
        assert_eq!(
            terms(&query),
            3,
            "one term per key, values never split: {query}"
        );
    }
}

/// Search terms: whitespace outside double quotes separates them.
fn terms(query: &str) -> usize {
    let mut quoted = false;
    let mut count = 0;
    let mut in_term = false;
    for c in query.chars() {
        if c == '"' {
            quoted = !quoted;
        }
        if c.is_whitespace() && !quoted {
            in_term = false;
        } else if !in_term {
            in_term = true;
            count += 1;
        }
    }
    count
}

#[tokio::test]
async fn garbage_answers_are_a_clear_error_never_not_found() {
    let sim = zendesk().await;
    let app = app_with(&sim, |s| s.crm.zendesk.common.max_retries = 0).await;
    for fault in [
        Fault::Garbage,
        Fault::WrongShape,
        Fault::Status { status: 500 },
    ] {
        sim.push_fault(fault.clone());
        let answer = by_ani(&app, "tel:+15135557611").await;
        assert_eq!(answer["found"], "false", "{fault:?}: {answer}");
        assert_eq!(answer["reason"], "crm_error", "{fault:?}: {answer}");
    }
    assert_eq!(by_ani(&app, "tel:+15135557611").await["found"], "true");
}

#[tokio::test]
async fn refused_credentials_fail_at_once_without_retries() {
    let sim = zendesk().await;
    sim.set_api_token_access(false);
    let app = app_with(&sim, |s| s.crm.zendesk.common.max_retries = 3).await;
    let answer = by_ani(&app, "tel:+15135557611").await;
    assert_eq!(answer["reason"], "crm_error", "{answer}");
    assert_eq!(sim.traffic().count("search"), 1, "a 401 is not retried");
    assert_eq!(sim.stats().auth_failures, 1);
}

#[tokio::test]
async fn an_oauth_access_token_authenticates_and_an_expired_one_is_an_auth_failure() {
    let sim = zendesk().await;
    let issued: Value = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
        .post(format!("{}/oauth/tokens", sim.base_url()))
        .json(
            &json!({"grant_type": "client_credentials", "client_id": "attrsync",
                      "client_secret": "sim-oauth-secret", "scope": "users:read"}),
        )
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("token JSON");
    let token = issued["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned();
    let app = app_with(&sim, |s| {
        s.crm.zendesk.auth = ZendeskAuth::OauthToken;
        s.crm.zendesk.api_token = SecretString::from(String::new());
        s.crm.zendesk.oauth_token = SecretString::from(token);
    })
    .await;
    assert_eq!(by_ani(&app, "tel:+15135557611").await["found"], "true");
    sim.expire_tokens();
    let answer = by_ani(&app, "tel:+13175550126").await;
    assert_eq!(answer["reason"], "crm_error", "{answer}");
    assert_eq!(sim.stats().auth_failures, 1);
}

#[tokio::test]
async fn the_customer_file_answers_first_and_zendesk_only_for_callers_it_does_not_know() {
    let sim = zendesk().await;
    let app = app_with(&sim, |s| {
        s.crm.sources = vec![CrmAdapterKind::File, CrmAdapterKind::Zendesk];
        s.crm.chain_mode = ChainMode::FirstHit;
    })
    .await;
    // Ada is in config/customers.json as (317) 555-0125.
    let answer = by_ani(&app, "tel:+13175550125").await;
    assert_eq!(answer["firstName"], "Ada", "{answer}");
    assert_eq!(sim.traffic().total(), 0, "the file knew the caller");
    let answer = by_ani(&app, "tel:+442079460958").await;
    assert_eq!(answer["name"], "Alan Turing", "{answer}");
    assert_eq!(sim.traffic().count("search"), 1);
}
