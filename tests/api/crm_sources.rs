//! CRM sources end to end: several matching records decided by each match policy (the file
//! adapter with duplicates, the REST CRM simulator returning several), match details written
//! beside the record, chains of two sources (first_hit, merge, the first one's circuit open),
//! and results that do not hold the caller's number dropped.

use std::time::Duration;

use attrsync::config::{ChainMode, CrmAdapterKind, MatchPolicy};
use attrsync::phone::Notation;
use serde_json::{json, Value};

use crate::helpers::{
    as_voice_call_from, eventbridge_start, json_body, spawn_app_with, use_http_crm, TestApp,
};

const ANI: &str = "tel:+13175550125";

async fn lookup(app: &TestApp, ani: &str) -> Value {
    let response = app.post_lookup(&json!({ "ani": ani })).await;
    assert_eq!(response.status(), 200);
    json_body(response).await
}

/// A customer file in a directory that lives as long as the returned guard.
fn customers_file(customers: Value) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("customers.json");
    std::fs::write(&path, customers.to_string()).expect("write the customer file");
    (dir, path)
}

fn household() -> Value {
    json!([
        {"id": "C-1", "firstName": "Ada", "phone": "+1 317 555 0125"},
        {"id": "C-2", "firstName": "Byron", "phone": "+1 (317) 555-0125"},
        {"id": "C-3", "firstName": "Stranger", "phone": "+1 317 555 0199"}
    ])
}

#[tokio::test]
async fn two_customers_with_one_number_are_decided_by_the_first_policy() {
    let (_dir, path) = customers_file(household());
    let app = spawn_app_with(|s, _| {
        s.crm.file.path = path.clone();
        s.crm.match_policy = MatchPolicy::First;
    })
    .await;
    let answer = lookup(&app, ANI).await;
    assert_eq!(answer["found"], "true", "{answer}");
    assert_eq!(answer["firstName"], "Ada");
    assert_eq!(answer["matchCount"], "2");
    assert_eq!(answer["matchQuality"], "exact");
    assert_eq!(answer["recordType"], "customer");
    assert_eq!(answer["recordId"], "C-1");
}

#[tokio::test]
async fn refuse_answers_ambiguous_and_writes_only_found_false_and_the_count() {
    let (_dir, path) = customers_file(household());
    let app = spawn_app_with(|s, _| {
        s.crm.file.path = path.clone();
        s.crm.match_policy = MatchPolicy::Refuse;
        s.merge.match_details = true;
    })
    .await;
    let answer = lookup(&app, ANI).await;
    assert_eq!(answer["found"], "false", "{answer}");
    assert_eq!(answer["reason"], "ambiguous");
    assert_eq!(answer["matchCount"], "2");
    assert_eq!(answer["recordId"], "");
    assert!(
        answer.get("firstName").is_none(),
        "nothing of the records: {answer}"
    );

    let call = app.new_voice_call(ANI);
    assert_eq!(
        app.post_genesys_event(&as_voice_call_from(eventbridge_start(&call), ANI))
            .await
            .status(),
        202
    );
    app.settle().await;
    let written = app.customer_attributes(&call);
    assert_eq!(written["crm.found"], "false", "{written:?}");
    assert_eq!(written["crm.matchCount"], "2", "{written:?}");
    assert!(
        written.keys().all(|k| !k.starts_with("crm.")
            || ["crm.found", "crm.matchCount", "crm.syncedAt"].contains(&k.as_str())),
        "{written:?}"
    );
}

/// The REST CRM simulator with three records for one number: a lead, a contact and an account,
/// modified at different times.
async fn three_records(app: &TestApp) {
    for (id, kind, updated, name) in [
        ("L-1", "lead", "2024-03-01T00:00:00Z", "Lead Lovelace"),
        ("C-1", "contact", "2023-01-01T00:00:00Z", "Contact Lovelace"),
        (
            "A-1",
            "account",
            "2024-06-01T00:00:00.000+0000",
            "Account Lovelace",
        ),
    ] {
        assert!(app.crm.insert(json!({
            "id": id, "type": kind, "updatedAt": updated, "name": name, "phone": "+13175550125"
        })));
    }
}

fn several_records_crm(
    s: &mut attrsync::config::Settings,
    crm: &attrsync::simulator::CrmSim,
    policy: MatchPolicy,
) {
    use_http_crm(s, crm);
    s.crm.http.record_type_pointer = "/type".into();
    s.crm.http.last_modified_pointer = "/updatedAt".into();
    s.crm.http.phone_pointers = vec!["/phone".into()];
    s.crm.match_policy = policy;
    s.crm.match_priority = vec!["Contact".into(), "Lead".into()];
}

#[tokio::test]
async fn several_records_from_the_rest_crm_are_decided_by_priority() {
    let app =
        spawn_app_with(|s, sims| several_records_crm(s, &sims.crm, MatchPolicy::Priority)).await;
    three_records(&app).await;
    let answer = lookup(&app, ANI).await;
    assert_eq!(answer["name"], "Contact Lovelace", "{answer}");
    assert_eq!(answer["recordType"], "contact");
    assert_eq!(answer["matchCount"], "3");
}

#[tokio::test]
async fn several_records_from_the_rest_crm_are_decided_by_the_most_recent() {
    let app =
        spawn_app_with(|s, sims| several_records_crm(s, &sims.crm, MatchPolicy::MostRecent)).await;
    three_records(&app).await;
    let answer = lookup(&app, ANI).await;
    assert_eq!(answer["name"], "Account Lovelace", "{answer}");
    assert_eq!(answer["recordId"], "A-1");
}

#[tokio::test]
async fn match_details_are_written_beside_the_chosen_record() {
    let app = spawn_app_with(|s, sims| {
        several_records_crm(s, &sims.crm, MatchPolicy::Priority);
        s.merge.match_details = true;
        s.crm.max_candidate_ids = 2;
    })
    .await;
    three_records(&app).await;
    let call = app.new_voice_call(ANI);
    assert_eq!(
        app.post_genesys_event(&as_voice_call_from(eventbridge_start(&call), ANI))
            .await
            .status(),
        202
    );
    app.settle().await;
    let written = app.customer_attributes(&call);
    assert_eq!(written["crm.found"], "true", "{written:?}");
    assert_eq!(written["crm.name"], "Contact Lovelace");
    assert_eq!(written["crm.matchCount"], "3");
    assert_eq!(written["crm.matchQuality"], "exact");
    assert_eq!(written["crm.recordType"], "contact");
    assert_eq!(written["crm.recordId"], "C-1");
    // The simulator answers in id order; at most two listed.
    assert_eq!(written["crm.candidateIds"], "account/A-1,contact/C-1");
}

#[tokio::test]
async fn a_result_whose_graded_fields_do_not_hold_the_number_is_dropped() {
    let app = spawn_app_with(|s, sims| {
        use_http_crm(s, &sims.crm);
        // Grade on the mobile only: a record the CRM found by its other phone field is not
        // taken on trust.
        s.crm.http.phone_pointers = vec!["/mobile".into()];
    })
    .await;
    assert!(app
        .crm
        .insert(json!({"id": "X-1", "firstName": "Found by phone", "phone": "+13175550125"})));
    let answer = lookup(&app, ANI).await;
    assert_eq!(answer["found"], "false", "{answer}");
    assert_eq!(answer["reason"], "not_found");
    assert_eq!(
        app.crm.requests(),
        1,
        "the CRM was asked and answered one record"
    );

    assert!(app
        .crm
        .insert(json!({"id": "X-2", "firstName": "Mobile", "mobile": "+13175550126"})));
    let answer = lookup(&app, "tel:+13175550126").await;
    assert_eq!(answer["firstName"], "Mobile", "{answer}");
    assert_eq!(answer["matchQuality"], "exact");
}

/// The REST CRM first, then the customer file (config/customers.json, where Ada is stored as
/// "(317) 555-0125").
fn chain(s: &mut attrsync::config::Settings, crm: &attrsync::simulator::CrmSim, mode: ChainMode) {
    use_http_crm(s, crm);
    s.crm.sources = vec![CrmAdapterKind::Http, CrmAdapterKind::File];
    s.crm.chain_mode = mode;
    s.crm.http.phone_notations = vec![Notation::E164];
}

#[tokio::test]
async fn the_file_answers_while_the_rest_crms_circuit_is_open() {
    let app = spawn_app_with(|s, sims| {
        chain(s, &sims.crm, ChainMode::FirstHit);
        s.crm.http.common.max_retries = 0;
        s.crm.http.common.breaker_failures = 1;
        s.crm.http.common.breaker_cooldown_ms = 60_000;
    })
    .await;
    app.crm.set_down(true);

    let first = lookup(&app, ANI).await;
    assert_eq!(first["found"], "true", "{first}");
    assert_eq!(first["firstName"], "Ada");
    assert_eq!(
        first["matchQuality"], "national",
        "the file does not store the country"
    );
    let second = lookup(&app, ANI).await;
    assert_eq!(second["found"], "true", "{second}");
    assert_eq!(app.crm.requests(), 1, "the open circuit spared the CRM");

    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 200, "degraded, still serving");
    let body = json_body(response).await;
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["checks"]["crm_sources"][0]["name"], "http");
    assert_eq!(body["checks"]["crm_sources"][0]["circuit"], "open");
    assert_eq!(body["checks"]["crm_sources"][1]["circuit"], "closed");
}

#[tokio::test]
async fn a_failing_first_source_and_an_unknown_caller_is_an_error_not_a_miss() {
    let app = spawn_app_with(|s, sims| {
        chain(s, &sims.crm, ChainMode::FirstHit);
        s.crm.http.common.max_retries = 0;
    })
    .await;
    app.crm.set_down(true);
    let answer = lookup(&app, "tel:+13125550999").await;
    assert_eq!(answer["found"], "false", "{answer}");
    assert_eq!(
        answer["reason"], "crm_error",
        "the CRM might know the caller"
    );
}

fn crm_ada() -> Value {
    json!({"id": "SF-9", "firstName": "Ada", "tier": "platinum", "phone": "+13175550125"})
}

#[tokio::test]
async fn first_hit_answers_from_the_first_source_that_knows_the_caller() {
    let app = spawn_app_with(|s, sims| chain(s, &sims.crm, ChainMode::FirstHit)).await;
    assert!(app.crm.insert(crm_ada()));
    let answer = lookup(&app, ANI).await;
    assert_eq!(answer["tier"], "platinum", "{answer}");
    assert_eq!(answer["recordId"], "SF-9");
    assert!(
        answer.get("accountManager").is_none(),
        "the file was not asked: {answer}"
    );

    // A caller the CRM does not know: the file answers.
    let answer = lookup(&app, "tel:+442079460018").await;
    assert_eq!(answer["firstName"], "Alan", "{answer}");
}

#[tokio::test]
async fn merge_fills_the_first_sources_gaps_from_the_next() {
    let app = spawn_app_with(|s, sims| chain(s, &sims.crm, ChainMode::Merge)).await;
    assert!(app.crm.insert(crm_ada()));
    let answer = lookup(&app, ANI).await;
    assert_eq!(
        answer["tier"], "platinum",
        "the earlier source wins: {answer}"
    );
    assert_eq!(
        answer["accountManager"], "Grace Hopper",
        "the file fills the gap"
    );
    assert_eq!(
        answer["recordId"], "SF-9",
        "the identity is the first source's"
    );
    assert_eq!(answer["matchQuality"], "exact");
}

#[tokio::test]
async fn concurrent_lookups_through_a_chain_make_one_call_per_source() {
    let app = spawn_app_with(|s, sims| chain(s, &sims.crm, ChainMode::Merge)).await;
    assert!(app.crm.insert(crm_ada()));
    app.crm.set_latency(Duration::from_millis(100));
    let answers = futures::future::join_all((0..20).map(|_| lookup(&app, ANI))).await;
    assert!(answers.iter().all(|a| a["found"] == "true"));
    assert_eq!(app.crm.requests(), 1);
}
