//! The `servicenow` source end to end, against the ServiceNow simulator over real HTTP: lookups
//! by every key kind in the notations records are stored in, several matching records under
//! each match policy, OAuth token renewal on a 401, the hourly rate-limit rules (a short wait
//! retried, a long one opening the circuit until the reset), the injection classics through
//! every key kind, garbage answers, and a chain with the file source in front.

use std::time::Duration;

use attrsync::config::{
    ChainMode, CrmAdapterKind, MatchPolicy, ServiceNowAuth, Settings, StoredNotation,
};
use attrsync::phone::Notation;
use attrsync::simulator::servicenow::{Fault, Op, RateLimitRule, RuleTarget};
use attrsync::simulator::{ServiceNowSim, ServiceNowSimConfig};
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::helpers::{json_body, spawn_app_with, TestApp};

const ADA: &str = "6816f79cc0a8016401c5a33be04be441";
const GRACE: &str = "9ee1b13dc6112271007f9d0efdb69cd0";
const GEORGE: &str = "ddce70866f9331003b3c498f5d3ee417";

/// A simulated instance with the sample users and contacts, shut down when dropped.
struct Instance(ServiceNowSim);

impl Drop for Instance {
    fn drop(&mut self) {
        self.0.shutdown();
    }
}

impl std::ops::Deref for Instance {
    type Target = ServiceNowSim;
    fn deref(&self) -> &ServiceNowSim {
        &self.0
    }
}

async fn instance_with(config: ServiceNowSimConfig) -> Instance {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let sim = ServiceNowSim::start(config, listener)
        .await
        .expect("start the ServiceNow simulator");
    for (table, record) in ServiceNowSim::sample_records() {
        sim.insert(table, record).expect("a sample record");
    }
    Instance(sim)
}

async fn instance() -> Instance {
    instance_with(ServiceNowSimConfig::default()).await
}

/// The servicenow source on the instance at `url`, Basic auth, nothing cached, quick retries.
fn use_servicenow(s: &mut Settings, url: &str) {
    s.crm.adapter = CrmAdapterKind::ServiceNow;
    let sn = &mut s.crm.servicenow;
    sn.instance_url = url.to_owned();
    sn.username = "attrsync.integration".into();
    sn.password = "sim-password".to_owned().into();
    sn.tables = vec!["sys_user".into()];
    sn.external_contact_id_field = "u_customer_number".into();
    sn.return_fields = ["name", "first_name", "email", "account", "vip"]
        .map(String::from)
        .to_vec();
    sn.common.cache_ttl_secs = 0;
    sn.common.not_found_ttl_secs = 0;
    sn.common.retry_base_ms = 10;
    sn.common.retry_max_ms = 200;
}

async fn app_on(sim: &ServiceNowSim, configure: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_with(|s, _| {
        use_servicenow(s, &sim.base_url());
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
async fn every_key_kind_finds_its_record_in_the_notation_it_is_stored_in() {
    let sim = instance().await;
    sim.insert(
        "sys_user",
        json!({"sys_id": "00000000000000000000000000000c01", "name": "Charles Babbage",
               "email": "Charles@Example.com", "u_customer_number": "CUST-1001",
               "phone": "+44 20 7946 0018"}),
    )
    .expect("a record");
    let app = app_on(&sim, |_| {}).await;

    // Stored as "(317) 555-0126": the national notation finds it, graded national.
    let grace = by_phone(&app, "tel:+13175550126").await;
    assert_eq!(grace["found"], "true", "{grace}");
    assert_eq!(grace["recordId"], GRACE);
    assert_eq!(grace["matchQuality"], "national");
    assert_eq!(grace["name"], "Grace Hopper");
    // Her mobile, stored "+1 317 555 0199": the spaced international notation, exact.
    let mobile = by_phone(&app, "+1 (317) 555-0199").await;
    assert_eq!(mobile["recordId"], GRACE, "{mobile}");
    assert_eq!(mobile["matchQuality"], "exact");
    // A customer_contact row comes back from sys_user with its own class as the record type.
    let george = by_phone(&app, "tel:+18582877834").await;
    assert_eq!(george["recordType"], "customer_contact", "{george}");
    assert_eq!(george["recordId"], GEORGE);

    // Stored "Charles@Example.com": the lower-cased spelling is not it, the given one is.
    let email = lookup(&app, json!({"email": "Charles@Example.com"})).await;
    assert_eq!(email["found"], "true", "{email}");
    assert_eq!(email["matchedBy"], "email");
    let id = lookup(&app, json!({"customerId": ADA})).await;
    assert_eq!(id["found"], "true", "{id}");
    assert_eq!(id["first_name"], "Ada");
    let external = lookup(&app, json!({"externalContactId": "CUST-1001"})).await;
    assert_eq!(external["found"], "true", "{external}");
    assert_eq!(external["name"], "Charles Babbage");
    // A customer id that is no sys_id is not sent at all.
    let before = sim.traffic().count("table");
    let not_an_id = lookup(&app, json!({"customerId": "C-1001"})).await;
    assert_eq!(not_an_id["reason"], "not_found", "{not_an_id}");
    assert_eq!(sim.traffic().count("table"), before);

    assert!(sim.stats().invalid_query_parts.is_empty());
    // One request per lookup, every notation in it.
    let phone_query = &sim.stats().queries[0];
    assert!(
        phone_query.contains("phone=+13175550126^ORphone=(317) 555-0126"),
        "{phone_query}"
    );
    assert!(phone_query.contains("^ORmobile_phone=+1 317 555 0126"));
}

#[tokio::test]
async fn an_email_stored_in_lower_case_is_found_whatever_the_caller_typed() {
    let sim = instance().await;
    let app = app_on(&sim, |_| {}).await;
    let answer = lookup(&app, json!({"email": "Grace.Hopper@Example.COM"})).await;
    assert_eq!(answer["found"], "true", "{answer}");
    assert_eq!(answer["recordId"], GRACE);
    assert_eq!(sim.traffic().count("table"), 1);
}

/// Ada twice: as a user and, newer, as a CSM contact with the same number.
async fn two_adas(sim: &ServiceNowSim) {
    sim.insert(
        "customer_contact",
        json!({"sys_id": "00000000000000000000000000000ada", "name": "Ada Contact",
               "phone": "+1 317 555 0125", "sys_updated_on": "2024-07-01 08:00:00"}),
    )
    .expect("a contact");
}

#[tokio::test]
async fn two_records_for_one_number_are_decided_by_each_match_policy() {
    let cases = [
        (MatchPolicy::First, "Ada Contact"),
        (MatchPolicy::MostRecent, "Ada Contact"),
        (MatchPolicy::Priority, "Ada Lovelace"),
    ];
    for (policy, expected) in cases {
        let sim = instance().await;
        two_adas(&sim).await;
        let app = app_on(&sim, |s| {
            s.crm.match_policy = policy;
            s.crm.match_priority = vec!["sys_user".into(), "customer_contact".into()];
        })
        .await;
        let answer = by_phone(&app, "tel:+13175550125").await;
        assert_eq!(answer["found"], "true", "{policy:?}: {answer}");
        assert_eq!(answer["name"], expected, "{policy:?}: {answer}");
        assert_eq!(answer["matchCount"], "2", "{policy:?}");
        assert_eq!(answer["matchQuality"], "exact");
    }

    let sim = instance().await;
    two_adas(&sim).await;
    let app = app_on(&sim, |s| s.crm.match_policy = MatchPolicy::Refuse).await;
    let answer = by_phone(&app, "tel:+13175550125").await;
    assert_eq!(answer["found"], "false", "{answer}");
    assert_eq!(answer["reason"], "ambiguous");
    assert_eq!(answer["matchCount"], "2");
}

#[tokio::test]
async fn tables_are_searched_in_order_until_one_holds_the_caller() {
    let sim = instance().await;
    two_adas(&sim).await;
    let app = app_on(&sim, |s| {
        s.crm.servicenow.tables = vec!["customer_contact".into(), "sys_user".into()];
    })
    .await;
    // The contact table holds one Ada: the user table is not asked.
    let ada = by_phone(&app, "tel:+13175550125").await;
    assert_eq!(ada["name"], "Ada Contact", "{ada}");
    assert_eq!(ada["matchCount"], "1");
    assert_eq!(sim.traffic().count("table"), 1);
    // Grace is only a user: two requests.
    let grace = by_phone(&app, "tel:+13175550199").await;
    assert_eq!(grace["recordId"], GRACE, "{grace}");
    assert_eq!(sim.traffic().count("table"), 3);
}

#[tokio::test]
async fn an_oauth_token_refused_with_401_is_renewed_once_and_the_lookup_succeeds() {
    let sim = instance().await;
    sim.set_client_credentials(true);
    sim.set_basic_auth(false);
    let app = app_on(&sim, |s| {
        let sn = &mut s.crm.servicenow;
        sn.auth = ServiceNowAuth::Oauth;
        sn.password = String::new().into();
        sn.oauth.client_id = "attrsync-sim".into();
        sn.oauth.client_secret = "sim-secret".to_owned().into();
    })
    .await;
    assert_eq!(by_phone(&app, "tel:+13175550125").await["recordId"], ADA);
    assert_eq!(sim.stats().tokens_issued, 1);
    sim.expire_tokens();
    let again = by_phone(&app, "tel:+13175550125").await;
    assert_eq!(again["recordId"], ADA, "{again}");
    assert_eq!(sim.stats().tokens_issued, 2, "one renewal");
    assert_eq!(sim.traffic().count("table"), 3, "one refused, two answered");
}

#[tokio::test]
async fn wrong_basic_credentials_fail_the_lookup_without_retries() {
    let sim = instance().await;
    let app = app_on(&sim, |s| {
        s.crm.servicenow.password = "not-the-password".to_owned().into();
    })
    .await;
    let answer = by_phone(&app, "tel:+13175550125").await;
    assert_eq!(answer["reason"], "crm_error", "{answer}");
    assert_eq!(sim.traffic().count("table"), 1, "a 401 is not retried");
}

fn hourly_rule(requests_per_hour: u32) -> RateLimitRule {
    RateLimitRule {
        sys_id: "0e4a1e2f".into(),
        name: "Limit attrsync".into(),
        table: Some("sys_user".into()),
        applies_to: RuleTarget::SingleUser {
            user_name: "attrsync.integration".into(),
        },
        requests_per_hour,
        active: true,
    }
}

#[tokio::test]
async fn a_429_with_a_short_retry_after_is_waited_for_and_retried() {
    // A one-second "hour": the denied request may pass again within max_retry_after_secs.
    let sim = instance_with(ServiceNowSimConfig {
        rate_limit_rules: vec![hourly_rule(1)],
        rate_limit_window: Duration::from_secs(1),
        ..ServiceNowSimConfig::default()
    })
    .await;
    let app = app_on(&sim, |_| {}).await;
    for (ani, id) in [
        ("tel:+13175550125", ADA),
        ("tel:+13175550199", GRACE),
        ("tel:+18582877834", GEORGE),
        ("tel:+13175550126", GRACE),
    ] {
        let answer = by_phone(&app, ani).await;
        assert_eq!(answer["recordId"], id, "{answer}");
    }
    let stats = sim.stats();
    assert!(stats.rate_limited >= 1, "{stats:?}");
}

#[tokio::test]
async fn a_spent_hourly_limit_opens_the_circuit_until_the_reset_and_stops_the_calls() {
    let sim = instance_with(ServiceNowSimConfig {
        rate_limit_rules: vec![hourly_rule(2)],
        ..ServiceNowSimConfig::default()
    })
    .await;
    let app = app_on(&sim, |_| {}).await;
    let mut reasons = Vec::new();
    // A storm of distinct callers: two pass, the third is refused for the rest of the hour.
    for n in 0..12 {
        let answer = by_phone(&app, &format!("tel:+1317555{:04}", 1000 + n)).await;
        reasons.push(answer["reason"].as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(reasons[..2], ["not_found", "not_found"], "{reasons:?}");
    assert_eq!(reasons[2], "crm_error", "{reasons:?}");
    assert!(
        reasons[3..].iter().all(|r| r == "circuit_open"),
        "{reasons:?}"
    );
    assert_eq!(sim.traffic().count("table"), 3, "no call after the 429");
    assert_eq!(sim.stats().rate_limited, 1);
}

#[tokio::test]
async fn the_injection_classics_through_every_key_kind_match_nothing_and_drop_no_query_part() {
    let sim = instance().await;
    // A record holding the classics literally, which only an exact lookup may find.
    sim.insert(
        "sys_user",
        json!({"sys_id": "0000000000000000000000000000b0b0", "name": "Bobby Tables",
               "email": "o'brien@example.com", "u_customer_number": "' OR 1=1 --"}),
    )
    .expect("a record");
    let app = app_on(&sim, |s| {
        s.crm.servicenow.phone_notations = vec![
            StoredNotation::Shared(Notation::Raw),
            StoredNotation::Shared(Notation::E164),
        ];
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
        "^",
        "^ORsys_idISNOTEMPTY",
        "x^NQsys_idISNOTEMPTY",
        "javascript:gs.getUserID()",
        "NULL",
        "phoneISNOTEMPTY",
        "\"",
        "a=b",
    ];
    for classic in classics {
        // The phone key: the classic around a number that is nobody's (sent raw, as well as in
        // E.164), unless the edge already refuses it as no phone number.
        let response = app
            .post_lookup(&json!({"ani": format!("+1 317 555 0999 {classic}")}))
            .await;
        if response.status() == 200 {
            let phone = json_body(response).await;
            assert_eq!(phone["found"], "false", "phone {classic:?}: {phone}");
        } else {
            assert_eq!(response.status(), 400, "phone {classic:?}");
        }
        let email = lookup(&app, json!({"email": format!("x{classic}@example.com")})).await;
        assert_eq!(email["found"], "false", "email {classic:?}: {email}");
        for key in ["customerId", "externalContactId"] {
            let answer = lookup(&app, json!({ key: classic })).await;
            assert_eq!(answer["found"], "false", "{key} {classic:?}: {answer}");
        }
    }
    let stats = sim.stats();
    assert!(
        stats.invalid_query_parts.is_empty(),
        "{:?}",
        stats.invalid_query_parts
    );
    assert!(stats
        .queries
        .iter()
        .all(|q| !q.contains("javascript:") && !q.contains("^NQ") && !q.contains("=NULL")));
    // Quotes and dashes are text: the one record holding them is found exactly.
    let literal = lookup(&app, json!({"externalContactId": "' OR 1=1 --"})).await;
    assert_eq!(
        literal["found"], "false",
        "`=` is refused, never sent: {literal}"
    );
    let quoted = lookup(&app, json!({"email": "o'brien@example.com"})).await;
    assert_eq!(quoted["name"], "Bobby Tables", "{quoted}");
    assert_eq!(quoted["matchCount"], "1");
}

#[tokio::test]
async fn garbage_answers_fail_the_lookup_clearly_and_the_next_one_succeeds() {
    let sim = instance().await;
    let app = app_on(&sim, |s| s.crm.servicenow.common.max_retries = 0).await;
    for fault in [Fault::NotJson, Fault::WrongShape, Fault::Hibernating] {
        sim.push_fault(Op::Table, fault.clone());
        let answer = by_phone(&app, "tel:+13175550125").await;
        assert_eq!(answer["reason"], "crm_error", "{fault:?}: {answer}");
    }
    sim.push_fault(Op::Table, Fault::Status { status: 503 });
    assert_eq!(
        by_phone(&app, "tel:+13175550125").await["reason"],
        "crm_error"
    );
    assert_eq!(by_phone(&app, "tel:+13175550125").await["recordId"], ADA);
}

#[tokio::test]
async fn a_misspelt_field_that_makes_the_instance_return_strangers_finds_nobody() {
    let sim = instance().await;
    let app = app_on(&sim, |s| {
        s.crm.servicenow.phone_fields = vec!["phone_number".into()];
    })
    .await;
    let answer = by_phone(&app, "tel:+13175550125").await;
    assert_eq!(answer["reason"], "not_found", "{answer}");
    assert_eq!(
        sim.stats().invalid_query_parts.len(),
        5,
        "every notation dropped"
    );
}

#[tokio::test]
async fn a_chain_asks_the_file_source_first_and_servicenow_for_the_rest() {
    let sim = instance().await;
    let app = app_on(&sim, |s| {
        s.crm.sources = vec![CrmAdapterKind::File, CrmAdapterKind::ServiceNow];
        s.crm.chain_mode = ChainMode::FirstHit;
    })
    .await;
    // In config/customers.json: the file answers, ServiceNow is not asked.
    let from_file = by_phone(&app, "tel:+13175550125").await;
    assert_eq!(from_file["found"], "true", "{from_file}");
    assert_ne!(from_file["recordId"], ADA);
    assert_eq!(sim.traffic().count("table"), 0);
    // Only in ServiceNow.
    let george = by_phone(&app, "tel:+18582877834").await;
    assert_eq!(george["recordId"], GEORGE, "{george}");
    assert_eq!(sim.traffic().count("table"), 1);
}
