//! The `dynamics` adapter against the Dataverse simulator over real HTTP: Entra ID client
//! credentials (secret and certificate), the OData headers, phone lookups by every configured
//! notation (Dataverse compares stored text exactly), email and row id; several matching rows
//! under each match policy; the token renewed once on a 401; 429 storms with `Retry-After`
//! honoured and service protection's window; chaining with the file while Dynamics' circuit
//! is open; injection classics through every key kind; garbage.

use attrsync::config::{ChainMode, CrmAdapterKind, MatchPolicy, OAuthGrant, Settings};
use attrsync::crm::dynamics::DynamicsCrm;
use attrsync::crm::{CrmAdapter, CustomerKey};
use attrsync::simulator::dynamics::{Fault, Limits, Op};
use attrsync::simulator::{DynamicsSim, DynamicsSimConfig};
use phonenumber::country;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::helpers::{json_body, spawn_app_with, TestApp};

const ADA: &str = "tel:+13175550125";

async fn environment_with(config: DynamicsSimConfig) -> DynamicsSim {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let sim = DynamicsSim::start(config, listener)
        .await
        .expect("start the Dataverse simulator");
    for (set, row) in DynamicsSim::sample_rows() {
        sim.insert(set, row).expect("a sample row");
    }
    sim
}

/// The simulated environment with its sample rows: Ada as a contact ("+13175550125") and as a
/// lead (mobile "+13175550125"), Grace ("(317) 555-0126", mobile "+1 317 555 0199").
async fn environment() -> DynamicsSim {
    environment_with(DynamicsSimConfig::default()).await
}

/// `[crm.dynamics]` pointed at `sim` (its own Entra authority and environment), client secret.
fn use_dynamics(s: &mut Settings, sim: &DynamicsSim) {
    let entra = DynamicsSimConfig::default().entra;
    s.crm.adapter = CrmAdapterKind::Dynamics;
    let d = &mut s.crm.dynamics;
    d.org_url = sim.base_url();
    d.authority_url = sim.base_url();
    d.tenant_id = entra.tenant_id;
    d.oauth.client_id = entra.client_id;
    d.oauth.client_secret = entra.client_secret.unwrap_or_default().into();
    d.common.retry_base_ms = 5;
    d.common.retry_max_ms = 50;
}

async fn app_with(sim: &DynamicsSim, configure: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_with(|s, _| {
        use_dynamics(s, sim);
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
async fn a_number_stored_in_national_notation_is_found_with_the_odata_headers() {
    let sim = environment().await;
    let app = app_with(&sim, |_| {}).await;
    let answer = lookup(&app, by_ani("tel:+13175550126")).await;
    assert_eq!(answer["found"], "true", "{answer}");
    assert_eq!(answer["fullname"], "Grace Hopper");
    assert_eq!(answer["recordType"], "contact");
    assert_eq!(answer["matchQuality"], "national");
    let seen = sim.requests();
    assert_eq!(seen.len(), 3, "one query per entity set, sent at once");
    let contacts = seen
        .iter()
        .find(|r| r.path.ends_with("/contacts"))
        .expect("the contacts query");
    let filter = contacts.filter.clone().unwrap_or_default();
    assert!(
        filter.contains("telephone1 eq '(317) 555-0126'"),
        "{filter}"
    );
    assert!(filter.contains("mobilephone eq '+13175550126'"), "{filter}");
    let header = |name: &str| {
        contacts
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header("odata-version").as_deref(), Some("4.0"));
    assert_eq!(header("odata-maxversion").as_deref(), Some("4.0"));
    assert_eq!(header("accept").as_deref(), Some("application/json"));
}

#[tokio::test]
async fn a_number_stored_in_a_notation_not_configured_is_not_found() {
    let sim = environment().await;
    let app = app_with(&sim, |s| {
        s.crm.dynamics.phone_notations = vec![attrsync::phone::Notation::E164];
        s.crm.dynamics.common.not_found_ttl_secs = 0;
    })
    .await;
    let answer = lookup(&app, by_ani("tel:+13175550126")).await;
    assert_eq!(answer["found"], "false", "exact text comparison: {answer}");
    assert_eq!(answer["reason"], "not_found");
}

#[tokio::test]
async fn email_and_row_id_lookups_find_the_row() {
    let sim = environment().await;
    let id = sim
        .insert(
            "contacts",
            json!({"fullname": "Alan Turing", "emailaddress1": "alan@example.com"}),
        )
        .unwrap();
    let app = app_with(&sim, |_| {}).await;
    let answer = lookup(&app, json!({"email": "ALAN@example.com"})).await;
    assert_eq!(answer["fullname"], "Alan Turing", "{answer}");
    let answer = lookup(&app, json!({"customerId": id.to_uppercase()})).await;
    assert_eq!(answer["fullname"], "Alan Turing", "{answer}");
    assert_eq!(answer["recordId"], id);
    assert_eq!(answer["matchedBy"], "customer_id");
}

async fn policy_answer(policy: MatchPolicy) -> Value {
    let sim = environment().await;
    let app = app_with(&sim, |s| {
        s.crm.match_policy = policy;
        s.crm.match_priority = vec!["lead".into(), "contact".into()];
        s.merge.match_details = true;
    })
    .await;
    lookup(&app, by_ani(ADA)).await
}

#[tokio::test]
async fn a_contact_and_a_lead_with_one_number_are_decided_by_each_policy() {
    let first = policy_answer(MatchPolicy::First).await;
    assert_eq!(first["fullname"], "Ada Lovelace", "contacts first: {first}");
    assert_eq!(first["matchCount"], "2");
    assert_eq!(first["matchQuality"], "exact");

    let priority = policy_answer(MatchPolicy::Priority).await;
    assert_eq!(priority["fullname"], "Ada L.", "{priority}");
    assert_eq!(priority["recordType"], "lead");

    let recent = policy_answer(MatchPolicy::MostRecent).await;
    assert_eq!(recent["fullname"], "Ada L.", "modified in 2025: {recent}");

    let refused = policy_answer(MatchPolicy::Refuse).await;
    assert_eq!(refused["reason"], "ambiguous", "{refused}");
    assert_eq!(refused["matchCount"], "2");
}

#[tokio::test]
async fn a_refused_token_is_renewed_once_and_the_lookup_succeeds() {
    let sim = environment().await;
    let app = app_with(&sim, |_| {}).await;
    assert_eq!(lookup(&app, by_ani(ADA)).await["found"], "true");
    assert_eq!(sim.traffic().count("token"), 1);
    sim.expire_all_tokens();
    let answer = lookup(&app, by_ani("tel:+13175550126")).await;
    assert_eq!(answer["found"], "true", "{answer}");
    assert_eq!(sim.traffic().count("token"), 2, "one renewal");

    // Every query of the next lookup refused, then refused again with the new token (the
    // three entity sets are asked at once: six refusals).
    for _ in 0..6 {
        sim.push_fault(Op::Query, Fault::Unauthorized);
    }
    let answer = lookup(&app, by_ani("tel:+13175550199")).await;
    assert_eq!(answer["reason"], "crm_error", "no loop: {answer}");
    assert_eq!(sim.traffic().count("token"), 3);
}

#[tokio::test]
async fn the_certificate_client_assertion_gets_a_token() {
    const KEY: &str = include_str!("../fixtures/keys/test-only-rsa-a.key.pem");
    const CERT: &str = include_str!("../fixtures/keys/test-only-rsa-a.cert.pem");
    let mut config = DynamicsSimConfig::default();
    config.entra.client_secret = None;
    config.entra.certificate = Some(
        attrsync::simulator::dynamics::cert::Certificate::from_pem(CERT).expect("certificate"),
    );
    let sim = environment_with(config).await;
    let app = app_with(&sim, |s| {
        let oauth = &mut s.crm.dynamics.oauth;
        oauth.grant = OAuthGrant::ClientAssertion;
        oauth.client_secret = String::new().into();
        oauth.private_key = KEY.to_owned().into();
        oauth.certificate = CERT.to_owned();
    })
    .await;
    let answer = lookup(&app, by_ani(ADA)).await;
    assert_eq!(answer["found"], "true", "{answer}");
}

#[tokio::test]
async fn a_429_storm_is_waited_out_and_nothing_is_sent_during_retry_after() {
    let sim = environment().await;
    let app = app_with(&sim, |s| {
        s.crm.dynamics.common.max_retries = 2;
        s.crm.dynamics.common.max_retry_after_secs = 2;
        s.crm.dynamics.common.breaker_failures = 0;
    })
    .await;
    // One 429 with Retry-After: 1: the lookup waits it out and succeeds.
    sim.push_fault(
        Op::Query,
        Fault::Throttle {
            retry_after_secs: 1,
        },
    );
    let started = std::time::Instant::now();
    assert_eq!(lookup(&app, by_ani(ADA)).await["found"], "true");
    assert!(started.elapsed() >= std::time::Duration::from_millis(900));
    let after_first = sim.traffic().count("query");
    assert_eq!(
        after_first, 4,
        "the throttled query, its retry, two more entity sets"
    );

    // A storm with a long Retry-After: one call, then none until it has passed.
    for _ in 0..10 {
        sim.push_fault(
            Op::Query,
            Fault::Throttle {
                retry_after_secs: 60,
            },
        );
    }
    let answer = lookup(&app, by_ani("tel:+13175550126")).await;
    assert_eq!(answer["reason"], "crm_error", "{answer}");
    let during = sim.traffic().count("query");
    assert!(
        during <= after_first + 3,
        "at most the three queries already on their way: {during}"
    );
    let answer = lookup(&app, by_ani("tel:+13175550199")).await;
    assert_eq!(answer["reason"], "crm_error", "{answer}");
    assert_eq!(
        sim.traffic().count("query"),
        during,
        "nothing sent during Retry-After: sending on would extend the block"
    );
}

#[tokio::test]
async fn service_protections_request_limit_stops_calls_for_its_retry_after() {
    let sim = environment().await;
    sim.set_limits(Limits {
        max_requests: 4,
        ..Limits::default()
    });
    let app = app_with(&sim, |s| {
        s.crm.dynamics.common.max_retries = 0;
        s.crm.dynamics.common.breaker_failures = 0;
    })
    .await;
    assert_eq!(lookup(&app, by_ani(ADA)).await["found"], "true");
    let answer = lookup(&app, by_ani("tel:+13175550126")).await;
    assert_eq!(answer["reason"], "crm_error", "{answer}");
    let sent = sim.traffic().count("query");
    let _ = lookup(&app, by_ani("tel:+13175550199")).await;
    assert_eq!(sim.traffic().count("query"), sent, "blocked: not sent");
}

#[tokio::test]
async fn the_file_answers_while_dynamics_circuit_is_open() {
    let sim = environment().await;
    let app = app_with(&sim, |s| {
        s.crm.sources = vec![CrmAdapterKind::Dynamics, CrmAdapterKind::File];
        s.crm.chain_mode = ChainMode::FirstHit;
        s.crm.dynamics.common.max_retries = 0;
        s.crm.dynamics.common.breaker_failures = 1;
        s.crm.dynamics.common.breaker_cooldown_ms = 60_000;
    })
    .await;
    sim.set_down(true);
    let first = lookup(&app, by_ani(ADA)).await;
    assert_eq!(
        first["firstName"], "Ada",
        "the customer file's record: {first}"
    );
    let calls = sim.traffic().total();
    let second = lookup(&app, by_ani(ADA)).await;
    assert_eq!(second["firstName"], "Ada", "{second}");
    assert_eq!(
        sim.traffic().total(),
        calls,
        "the open circuit spared Dataverse"
    );
    let body = json_body(app.get("/readyz").await).await;
    assert_eq!(
        body["checks"]["crm_sources"][0]["name"], "dynamics",
        "{body}"
    );
    assert_eq!(body["checks"]["crm_sources"][0]["circuit"], "open");
}

#[tokio::test]
async fn garbage_from_dataverse_is_a_clear_error_and_the_next_lookup_works() {
    let sim = environment().await;
    let app = app_with(&sim, |s| s.crm.dynamics.common.breaker_failures = 0).await;
    for fault in [Fault::Garbage, Fault::WrongShape] {
        sim.push_fault(Op::Query, fault);
        let answer = lookup(&app, by_ani(ADA)).await;
        assert_eq!(answer["reason"], "crm_error", "{answer}");
    }
    assert_eq!(lookup(&app, by_ani(ADA)).await["found"], "true");
}

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

#[tokio::test]
async fn injection_classics_through_every_key_kind_match_nothing_and_break_no_filter() {
    let sim = environment().await;
    sim.insert(
        "contacts",
        json!({"fullname": "Quote O'Brien", "emailaddress1": "o'brien@example.com"}),
    )
    .unwrap();
    let mut settings = defaults();
    use_dynamics(&mut settings, &sim);
    settings.crm.dynamics.external_id_columns = vec!["contacts.emailaddress2".into()];
    let crm = DynamicsCrm::from_settings(&settings.crm.dynamics, country::Id::US).expect("adapter");
    let classics = [
        "'",
        "\\",
        "}",
        "' or 1 eq 1 or 'a' eq '",
        "x' or fullname ne '",
        "--",
        "%",
        "*",
        "a%",
        "ada*",
        "' OR 1=1 --",
        ") or (1 eq 1",
    ];
    for classic in classics {
        for key in [
            CustomerKey::Email(format!("{classic}@example.com")),
            CustomerKey::Email(classic.to_owned()),
            CustomerKey::CustomerId(classic.to_owned()),
            CustomerKey::ExternalContactId(classic.to_owned()),
        ] {
            match crm.find(&key).await {
                Ok(found) => assert!(found.is_empty(), "{key:?} matched {found:?}"),
                Err(e) => panic!("{key:?}: {e}"),
            }
        }
    }
    let found = crm
        .find(&CustomerKey::Email("O'Brien@example.com".into()))
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "the quote is a quote");
}
