//! The `salesforce` adapter against the Salesforce simulator over real HTTP: lookups by phone
//! (SOSL, numbers stored in any format), email and record id (SOQL); several matching records
//! under each match policy; the token renewed once on `INVALID_SESSION_ID`; the daily
//! allocation share and `REQUEST_LIMIT_EXCEEDED` stopping calls; 429 storms; chaining with the
//! file while Salesforce's circuit is open; injection classics through every key kind; garbage.

use attrsync::config::{ChainMode, CrmAdapterKind, MatchPolicy, Settings};
use attrsync::crm::salesforce::SalesforceCrm;
use attrsync::crm::{CrmAdapter, CrmError, CustomerKey};
use attrsync::simulator::salesforce::{Fault, Op};
use attrsync::simulator::{SalesforceSim, SalesforceSimConfig};
use phonenumber::country;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::helpers::{json_body, spawn_app_with, TestApp};

const ADA: &str = "tel:+13175550125";

/// The simulated org with its sample records: Ada as a Contact ("(317) 555-0125") and as a Lead
/// ("3175550125"), Grace ("317.555.0126", mobile "+1 317 555 0199"), an Account in London.
async fn org() -> SalesforceSim {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let sim = SalesforceSim::start(SalesforceSimConfig::default(), listener)
        .await
        .expect("start the Salesforce simulator");
    for (object, fields) in SalesforceSim::sample_records() {
        sim.insert(object, fields).expect("a sample record");
    }
    sim
}

/// `[crm.salesforce]` pointed at `sim` with the client credentials it accepts; quick retries.
fn use_salesforce(s: &mut Settings, sim: &SalesforceSim) {
    let defaults = SalesforceSimConfig::default().auth;
    s.crm.adapter = CrmAdapterKind::Salesforce;
    let sf = &mut s.crm.salesforce;
    sf.domain_url = sim.base_url();
    sf.oauth.client_id = defaults.consumer_key;
    sf.oauth.client_secret = defaults.consumer_secret.into();
    sf.common.retry_base_ms = 5;
    sf.common.retry_max_ms = 50;
}

async fn app_with(sim: &SalesforceSim, configure: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_with(|s, _| {
        use_salesforce(s, sim);
        configure(s);
    })
    .await
}

async fn lookup(app: &TestApp, request: Value) -> Value {
    let response = app.post_lookup(&request).await;
    assert_eq!(response.status(), 200, "{request}");
    json_body(response).await
}

fn by_ani(ani: &str) -> Value {
    json!({ "ani": ani })
}

#[tokio::test]
async fn a_caller_stored_in_another_format_is_found_by_sosl_and_graded_on_its_phone_field() {
    let sim = org().await;
    let app = app_with(&sim, |_| {}).await;
    let answer = lookup(&app, by_ani("tel:+13175550126")).await;
    assert_eq!(answer["found"], "true", "{answer}");
    assert_eq!(answer["Name"], "Grace Hopper");
    assert_eq!(answer["recordType"], "Contact");
    assert_eq!(
        answer["matchQuality"], "national",
        "stored without the country"
    );
    let queries = sim.queries();
    assert!(
        queries[0]
            .starts_with("FIND {13175550126 OR 3175550126} IN PHONE FIELDS RETURNING Contact("),
        "{queries:?}"
    );
    // The mobile, stored with the country, is an exact match.
    let answer = lookup(&app, by_ani("tel:+13175550199")).await;
    assert_eq!(answer["Name"], "Grace Hopper", "{answer}");
    assert_eq!(answer["matchQuality"], "exact");
}

#[tokio::test]
async fn email_and_record_id_lookups_are_soql_queries_matching_exactly() {
    let sim = org().await;
    let id = sim
        .insert("Contact", json!({"Name": "Alan Turing", "Email": "alan@example.com", "Phone": "+44 20 7946 0018"}))
        .unwrap();
    let app = app_with(&sim, |_| {}).await;
    let answer = lookup(&app, json!({"email": "ada@example.com"})).await;
    assert_eq!(answer["found"], "true", "{answer}");
    assert_eq!(answer["Name"], "Ada Lovelace");
    assert_eq!(answer["matchedBy"], "email");

    let answer = lookup(&app, json!({"customerId": id})).await;
    assert_eq!(answer["Name"], "Alan Turing", "{answer}");
    assert_eq!(answer["recordId"], id);
    // A Contact id is looked up on Contact only (its 003 prefix): one email query per object
    // with an email field (Contact, Lead), then one id query.
    assert_eq!(sim.traffic().count("query"), 3, "{:?}", sim.queries());
    assert!(
        sim.queries()[2].starts_with("SELECT "),
        "{:?}",
        sim.queries()
    );
    assert!(sim.queries()[2].contains(" FROM Contact WHERE Id = '"));
}

async fn policy_answer(policy: MatchPolicy) -> Value {
    let sim = org().await;
    let app = app_with(&sim, |s| {
        s.crm.match_policy = policy;
        s.crm.match_priority = vec!["Lead".into(), "Contact".into()];
        s.merge.match_details = true;
    })
    .await;
    lookup(&app, by_ani(ADA)).await
}

#[tokio::test]
async fn a_contact_and_a_lead_with_one_number_are_decided_by_each_policy() {
    let first = policy_answer(MatchPolicy::First).await;
    assert_eq!(first["Name"], "Ada Lovelace", "SOSL's order: {first}");
    assert_eq!(first["matchCount"], "2");
    assert_eq!(first["recordType"], "Contact");

    let priority = policy_answer(MatchPolicy::Priority).await;
    assert_eq!(priority["Name"], "Ada L.", "{priority}");
    assert_eq!(priority["recordType"], "Lead");

    let recent = policy_answer(MatchPolicy::MostRecent).await;
    assert_eq!(recent["Name"], "Ada L.", "modified in 2025: {recent}");

    let refused = policy_answer(MatchPolicy::Refuse).await;
    assert_eq!(refused["found"], "false", "{refused}");
    assert_eq!(refused["reason"], "ambiguous");
    assert_eq!(refused["matchCount"], "2");
}

#[tokio::test]
async fn an_expired_session_is_renewed_once_and_the_lookup_succeeds() {
    let sim = org().await;
    let app = app_with(&sim, |s| s.crm.salesforce.common.cache_ttl_secs = 0).await;
    assert_eq!(lookup(&app, by_ani(ADA)).await["found"], "true");
    assert_eq!(sim.traffic().count("token"), 1);

    sim.expire_all_tokens();
    let answer = lookup(&app, by_ani("tel:+13175550126")).await;
    assert_eq!(answer["found"], "true", "{answer}");
    assert_eq!(sim.traffic().count("token"), 2, "one renewal");
    assert_eq!(
        sim.traffic().count("search"),
        3,
        "the refused call, then its retry"
    );

    // A new token refused too: the lookup fails rather than loop.
    sim.push_fault(Op::Search, Fault::InvalidSession);
    sim.push_fault(Op::Search, Fault::InvalidSession);
    let answer = lookup(&app, by_ani("tel:+13175550199")).await;
    assert_eq!(answer["reason"], "crm_error", "{answer}");
    assert_eq!(sim.traffic().count("token"), 3);
}

#[tokio::test]
async fn calls_stop_at_the_configured_share_of_the_daily_allocation() {
    let sim = org().await;
    sim.set_daily_api_limit(100);
    sim.set_api_usage(78);
    let app = app_with(&sim, |s| {
        s.crm.salesforce.max_api_usage_share = 0.8;
        s.crm.salesforce.common.cache_ttl_secs = 0;
        s.crm.salesforce.common.not_found_ttl_secs = 0;
    })
    .await;
    // 79/100, then 80/100: the second answer is used, and then calls stop.
    assert_eq!(lookup(&app, by_ani(ADA)).await["found"], "true");
    assert_eq!(lookup(&app, by_ani(ADA)).await["found"], "true");
    // The gauge is process-wide (other tests set it too): here only its presence.
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("attrsync_crm_api_usage_ratio{source=\"salesforce\"}"),
        "{metrics}"
    );
    let stopped = lookup(&app, by_ani(ADA)).await;
    assert_eq!(stopped["found"], "false", "{stopped}");
    assert_eq!(stopped["reason"], "crm_error");
    assert_eq!(sim.api_usage().0, 80, "no call past the share");
    assert_eq!(sim.traffic().count("search"), 2);
}

#[tokio::test]
async fn request_limit_exceeded_opens_the_circuit_instead_of_retrying() {
    let sim = org().await;
    sim.set_daily_api_limit(10);
    sim.set_api_usage(10);
    let app = app_with(&sim, |s| s.crm.salesforce.common.max_retries = 3).await;
    let answer = lookup(&app, by_ani(ADA)).await;
    assert_eq!(answer["reason"], "crm_error", "{answer}");
    assert_eq!(sim.traffic().count("search"), 1, "not retried");
    let again = lookup(&app, by_ani("tel:+13175550126")).await;
    assert_eq!(again["reason"], "circuit_open", "{again}");
    assert_eq!(sim.traffic().count("search"), 1, "the org is not called");
    let body = json_body(app.get("/readyz").await).await;
    assert_eq!(
        body["checks"]["crm_sources"][0]["circuit"], "open",
        "{body}"
    );
}

#[tokio::test]
async fn a_storm_of_429s_is_retried_within_the_budget_and_then_given_up() {
    let sim = org().await;
    let app = app_with(&sim, |s| {
        s.crm.salesforce.common.max_retries = 2;
        s.crm.salesforce.common.breaker_failures = 0;
    })
    .await;
    for _ in 0..2 {
        sim.push_fault(Op::Search, Fault::Status { status: 429 });
    }
    assert_eq!(lookup(&app, by_ani(ADA)).await["found"], "true");
    assert_eq!(sim.traffic().count("search"), 3);

    for _ in 0..10 {
        sim.push_fault(Op::Search, Fault::Status { status: 429 });
    }
    let answer = lookup(&app, by_ani("tel:+13175550126")).await;
    assert_eq!(answer["reason"], "crm_error", "{answer}");
    assert_eq!(sim.traffic().count("search"), 6, "three attempts, no more");
}

#[tokio::test]
async fn the_file_answers_while_salesforces_circuit_is_open() {
    let sim = org().await;
    let app = app_with(&sim, |s| {
        s.crm.sources = vec![CrmAdapterKind::Salesforce, CrmAdapterKind::File];
        s.crm.chain_mode = ChainMode::FirstHit;
        s.crm.salesforce.common.max_retries = 0;
        s.crm.salesforce.common.breaker_failures = 1;
        s.crm.salesforce.common.breaker_cooldown_ms = 60_000;
    })
    .await;
    sim.set_down(true);
    let first = lookup(&app, by_ani(ADA)).await;
    assert_eq!(first["found"], "true", "{first}");
    assert_eq!(first["firstName"], "Ada", "the customer file's record");
    let calls = sim.traffic().total();
    let second = lookup(&app, by_ani(ADA)).await;
    assert_eq!(second["firstName"], "Ada", "{second}");
    assert_eq!(
        sim.traffic().total(),
        calls,
        "the open circuit spared the org"
    );
    let body = json_body(app.get("/readyz").await).await;
    assert_eq!(
        body["checks"]["crm_sources"][0]["name"], "salesforce",
        "{body}"
    );
    assert_eq!(body["checks"]["crm_sources"][0]["circuit"], "open");
}

#[tokio::test]
async fn garbage_from_the_org_is_a_clear_error_and_the_next_lookup_works() {
    let sim = org().await;
    let app = app_with(&sim, |s| s.crm.salesforce.common.breaker_failures = 0).await;
    for fault in [Fault::Garbage, Fault::WrongShape] {
        sim.push_fault(Op::Search, fault);
        let answer = lookup(&app, by_ani(ADA)).await;
        assert_eq!(answer["reason"], "crm_error", "{answer}");
    }
    assert_eq!(lookup(&app, by_ani(ADA)).await["found"], "true");
}

/// The embedded defaults with the variables they require.
fn defaults() -> Settings {
    let env: Vec<(String, String)> = [
        ("GENESYS_CLIENT_ID", "client"),
        ("GENESYS_CLIENT_SECRET", "secret"),
        (
            "ATTRSYNC_AUTH__GENESYS__SECRETS",
            "genesys-secret-0123456789",
        ),
        (
            "ATTRSYNC_AUTH__CTI__SECRETS",
            "whsec_YXR0cnN5bmMtdGVzdHMtY3RpLXNlY3JldCEuLi4uLi4=",
        ),
        ("ATTRSYNC_AUTH__LOOKUP__SECRETS", "lookup-secret-0123456789"),
        ("ATTRSYNC_AUTH__OPS__SECRETS", "ops-secret-0123456789"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    Settings::load_from(None, &env).expect("the defaults load")
}

/// The adapter itself, for the key kinds /v1/lookup does not take (external contact ids).
fn adapter(sim: &SalesforceSim) -> SalesforceCrm {
    let mut settings = defaults();
    use_salesforce(&mut settings, sim);
    settings.crm.salesforce.external_id_fields = vec!["Contact.External_Id__c".into()];
    SalesforceCrm::from_settings(&settings.crm.salesforce, country::Id::US).expect("the adapter")
}

#[tokio::test]
async fn injection_classics_through_every_key_kind_match_nothing_and_break_no_query() {
    let sim = org().await;
    sim.insert("Contact", json!({"Name": "Quote O'Brien", "Email": "o'brien@example.com", "External_Id__c": "x' OR Name != '"}))
        .unwrap();
    let crm = adapter(&sim);
    let classics = [
        "'",
        "\\",
        "}",
        "' OR 1=1 --",
        "x' OR Name != '",
        "--",
        "%",
        "*",
        "a%",
        "ada*",
        "} RETURNING User(Id)",
        "\\' OR ''='",
    ];
    for classic in classics {
        for key in [
            CustomerKey::Email(format!("{classic}@example.com")),
            CustomerKey::Email(classic.to_owned()),
            CustomerKey::CustomerId(classic.to_owned()),
            CustomerKey::ExternalContactId(classic.to_owned()),
        ] {
            let found = crm.find(&key).await;
            let found = match found {
                Ok(found) => found,
                Err(e) => panic!("{key:?}: {e} (queries: {:?})", sim.queries()),
            };
            let ok = found.is_empty()
                || (classic == "x' OR Name != '"
                    && matches!(key, CustomerKey::ExternalContactId(_))
                    && found.len() == 1);
            assert!(ok, "{key:?} matched {found:?}");
        }
    }
    // The stored value with quotes is found by itself, exactly.
    let found = crm
        .find(&CustomerKey::Email("o'brien@example.com".into()))
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    // Phone keys are digits only by construction: a caller number cannot carry SOSL syntax.
    let phone = attrsync::phone::CallerNumber::parse("tel:+1317555012*5", country::Id::US);
    if let Some(number) = phone {
        let found = crm.find(&CustomerKey::Phone(number)).await.unwrap();
        assert!(found.iter().all(|c| c.record_type != "User"));
    }
}

#[tokio::test]
async fn a_refused_client_secret_is_an_auth_error_naming_the_oauth_code() {
    let sim = org().await;
    let mut settings = defaults();
    use_salesforce(&mut settings, &sim);
    settings.crm.salesforce.oauth.client_secret = "wrong".to_owned().into();
    let crm = SalesforceCrm::from_settings(&settings.crm.salesforce, country::Id::US).unwrap();
    match crm.ready().await {
        Err(CrmError::Auth(message)) => assert!(message.contains("invalid_client"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_jwt_bearer_flow_gets_a_token_for_the_pre_authorised_user() {
    const KEY: &str = include_str!("../fixtures/keys/test-only-rsa-a.key.pem");
    const CERT: &str = include_str!("../fixtures/keys/test-only-rsa-a.cert.pem");
    let mut config = SalesforceSimConfig::default();
    config.auth.jwt_certificate = Some(
        attrsync::simulator::dynamics::cert::Certificate::from_pem(CERT).expect("the certificate"),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = SalesforceSim::start(config, listener).await.unwrap();
    for (object, fields) in SalesforceSim::sample_records() {
        sim.insert(object, fields).unwrap();
    }
    let app = app_with(&sim, |s| {
        let oauth = &mut s.crm.salesforce.oauth;
        oauth.grant = attrsync::config::OAuthGrant::JwtBearer;
        oauth.client_secret = String::new().into();
        oauth.private_key = KEY.to_owned().into();
        oauth.subject = "integration@sim.example".into();
    })
    .await;
    let answer = lookup(&app, by_ani(ADA)).await;
    assert_eq!(answer["found"], "true", "{answer}");
    assert_eq!(sim.traffic().count("token"), 1);
}
