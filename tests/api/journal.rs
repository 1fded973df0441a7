//! The journal (`GET /admin/conversations/{id}`, `GET /admin/events/{eventId}`,
//! `GET /admin/journal`) and the dry run (`POST /admin/explain`), over real HTTP against the
//! Genesys simulator and the sample customer file: what an operator reads about an event, and
//! that none of it leaks a caller's number, email or CRM values.

use std::time::Duration;

use attrsync::config::AuthMode;
use serde_json::{json, Value};

use crate::helpers::{json_body, spawn_app, spawn_app_with, with_credentials, TestApp};

const ADA_ANI: &str = "tel:+13175550125";

fn cti_event(app: &TestApp, event_id: &str, ani: &str) -> (Value, String) {
    let call = app.new_voice_call(ani);
    let event = json!({
        "eventId": event_id,
        "conversationId": call.conversation_id,
        "participantId": call.customer_participant_id,
        "callerNumber": ani,
    });
    (event, call.conversation_id)
}

/// Polls `path` until it answers 200 (the journal is written in batches, after the run).
async fn journaled(app: &TestApp, path: &str) -> Value {
    let started = tokio::time::Instant::now();
    loop {
        let response = app.get(path).await;
        if response.status() == 200 {
            return json_body(response).await;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{path} never answered 200: {}",
            response.status()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn post(app: &TestApp, path: &str, body: &Value) -> reqwest::Response {
    let bytes = serde_json::to_vec(body).unwrap();
    let request = app
        .client
        .post(app.url(path))
        .header("content-type", "application/json")
        .body(bytes.clone());
    with_credentials(request, &app.state.settings.auth.ops, &bytes)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}"))
}

fn steps_of(entry: &Value) -> Vec<Value> {
    entry["steps"].as_array().cloned().unwrap_or_default()
}

fn step<'a>(steps: &'a [Value], kind: &str) -> Vec<&'a Value> {
    steps.iter().filter(|s| s["step"] == kind).collect()
}

#[tokio::test]
async fn a_patched_event_has_its_whole_journey_by_conversation_and_by_event_id() {
    let app = spawn_app().await;
    let (event, conversation) = cti_event(&app, "cti-journal-1", "(317) 555-0125");
    assert_eq!(app.post_cti_event(&event).await.status(), 202);
    app.settle().await;

    let body = journaled(&app, &format!("/admin/conversations/{conversation}")).await;
    let entries = body["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 1, "{body}");
    let entry = &entries[0];
    assert_eq!(entry["eventId"], "cti-journal-1");
    assert_eq!(entry["source"], "cti");
    assert_eq!(entry["outcome"], "patched");
    assert_eq!(entry["attempt"], 1);
    let steps = steps_of(entry);
    let kinds: Vec<&str> = steps.iter().filter_map(|s| s["step"].as_str()).collect();
    assert_eq!(kinds.first(), Some(&"arrived"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"outcome"), "{kinds:?}");
    let key = step(&steps, "key");
    assert_eq!(key.len(), 1, "{steps:?}");
    assert_eq!(key[0]["kind"], "phone");
    assert_eq!(key[0]["notation"], "e164");
    let crm = step(&steps, "crm");
    assert_eq!(crm[0]["source"], "file");
    assert_eq!(crm[0]["cache"], "miss");
    assert_eq!(crm[0]["answer"], "found");
    assert_eq!(crm[0]["candidates"], 1);
    assert_eq!(step(&steps, "decision")[0]["verdict"], "found");
    let upstream = step(&steps, "upstream");
    assert_eq!(
        upstream.len(),
        1,
        "a participant id was given: only the PATCH: {steps:?}"
    );
    assert_eq!(upstream[0]["operation"], "patch_participant_attributes");
    assert_eq!(upstream[0]["status"], "2xx");
    let written = step(&steps, "written");
    let names: Vec<&str> = written[0]["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(names.contains(&"crm.firstName"), "{names:?}");

    // No caller number, email or CRM value anywhere in what an operator reads.
    let text = body.to_string();
    for secret in [
        "5550125",
        "555-0125",
        "Lovelace",
        "ada.lovelace",
        "Grace Hopper",
    ] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }

    let by_event = journaled(&app, "/admin/events/cti-journal-1").await;
    assert_eq!(by_event["entries"], body["entries"]);
}

#[tokio::test]
async fn a_caller_the_crm_does_not_know_is_journaled_as_a_miss_and_filtered_by_outcome() {
    let app = spawn_app().await;
    let (known, _) = cti_event(&app, "cti-journal-known", ADA_ANI);
    let (unknown, conversation) = cti_event(&app, "cti-journal-unknown", "+1 317 555 0199");
    assert_eq!(app.post_cti_event(&known).await.status(), 202);
    assert_eq!(app.post_cti_event(&unknown).await.status(), 202);
    app.settle().await;

    let body = journaled(&app, &format!("/admin/conversations/{conversation}")).await;
    let entry = &body["entries"][0];
    assert_eq!(entry["outcome"], "crm_miss", "{body}");
    let steps = steps_of(entry);
    assert_eq!(step(&steps, "crm")[0]["answer"], "not_found");

    let misses = journaled(&app, "/admin/journal?outcome=crm_miss&source=cti").await;
    let ids: Vec<&str> = misses["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["eventId"].as_str())
        .collect();
    assert_eq!(ids, ["cti-journal-unknown"]);
    let none = journaled(&app, "/admin/journal?source=genesys").await;
    assert_eq!(none["entries"], json!([]));
}

#[tokio::test]
async fn nothing_journaled_is_a_404_and_a_malformed_conversation_id_too() {
    let app = spawn_app().await;
    for path in [
        "/admin/conversations/0b7c5a8e-0000-4000-8000-000000000000",
        "/admin/conversations/..%2Fadmin",
        "/admin/events/no-such-event",
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 404, "{path}");
        assert_eq!(json_body(response).await["code"], "not_found", "{path}");
    }
}

#[tokio::test]
async fn explain_answers_the_patch_without_writing_or_filling_the_cache() {
    let app = spawn_app().await;
    let response = post(&app, "/admin/explain", &json!({"ani": "(317) 555-0125"})).await;
    assert_eq!(response.status(), 200);
    let body = json_body(response).await;
    assert_eq!(body["written"], false, "{body}");
    assert_eq!(body["keys"][0]["kind"], "phone");
    let shown = body["keys"][0]["notations"].to_string();
    assert!(!shown.contains("5550125"), "{shown}");
    assert_eq!(body["sources"][0]["source"], "file");
    assert_eq!(body["sources"][0]["cache"], "miss");
    assert_eq!(body["decision"]["verdict"], "found");
    assert_eq!(body["decision"]["recordId"], "C-1001");
    assert_eq!(body["patch"]["crm.firstName"], "Ada", "{body}");
    assert_eq!(body["patch"]["crm.found"], "true");
    assert_eq!(app.genesys.stats(), Default::default(), "no Genesys call");

    // The cache was not filled: a second explain misses again.
    let again = json_body(post(&app, "/admin/explain", &json!({"ani": ADA_ANI})).await).await;
    assert_eq!(again["sources"][0]["cache"], "miss", "{again}");

    // After a real event fills it, the explain reads it.
    let (event, _) = cti_event(&app, "cti-explain-1", ADA_ANI);
    assert_eq!(app.post_cti_event(&event).await.status(), 202);
    app.settle().await;
    let warm = json_body(post(&app, "/admin/explain", &json!({"ani": ADA_ANI})).await).await;
    assert_eq!(warm["sources"][0]["cache"], "hit", "{warm}");
    let without_time = |v: &Value| {
        let mut patch = v["patch"].as_object().cloned().unwrap_or_default();
        patch.remove("crm.syncedAt");
        patch
    };
    assert_eq!(without_time(&warm), without_time(&body));
}

#[tokio::test]
async fn explain_says_not_found_with_only_the_found_flag_in_the_patch() {
    let app = spawn_app().await;
    let body = json_body(
        post(
            &app,
            "/admin/explain",
            &json!({"email": "nobody@example.net"}),
        )
        .await,
    )
    .await;
    assert_eq!(body["decision"]["verdict"], "not_found", "{body}");
    assert_eq!(body["keys"][0]["kind"], "email");
    assert!(!body.to_string().contains("nobody@example.net"), "{body}");
    let patch = body["patch"].as_object().unwrap();
    assert_eq!(patch.get("crm.found"), Some(&json!("false")), "{body}");
    assert!(
        patch
            .keys()
            .all(|k| k == "crm.found" || k == "crm.syncedAt"),
        "{body}"
    );
}

#[tokio::test]
async fn explain_without_any_key_is_refused_as_invalid() {
    let app = spawn_app().await;
    let response = post(&app, "/admin/explain", &json!({"conversationId": "c1"})).await;
    assert_eq!(response.status(), 422);
    assert_eq!(json_body(response).await["code"], "invalid_field");
}

#[tokio::test]
async fn the_journal_and_the_explain_require_the_ops_credentials() {
    let app = spawn_app_with(|s, _| s.auth.ops.mode = AuthMode::Bearer).await;
    for path in [
        "/admin/journal",
        "/admin/conversations/c1",
        "/admin/events/e1",
    ] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 401, "{path}");
    }
    let response = app
        .client
        .post(app.url("/admin/explain"))
        .json(&json!({"ani": ADA_ANI}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let allowed = post(&app, "/admin/explain", &json!({"ani": ADA_ANI})).await;
    assert_eq!(allowed.status(), 200);
}

#[tokio::test]
async fn each_attempt_is_journaled_with_the_reason_it_was_retried() {
    let app = spawn_app_with(|s, sims| crate::helpers::use_http_crm(s, &sims.crm)).await;
    for customer in attrsync::simulator::CrmSim::sample_customers() {
        assert!(app.crm.insert(customer));
    }
    app.crm.set_down(true);
    let (event, _) = cti_event(&app, "cti-journal-retry", ADA_ANI);
    assert_eq!(app.post_cti_event(&event).await.status(), 202);
    let started = tokio::time::Instant::now();
    let first = loop {
        let body = journaled(&app, "/admin/journal?outcome=retry_scheduled").await;
        if body["entries"].as_array().is_some_and(|e| !e.is_empty()) {
            break body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no retry journaled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let retried = &first["entries"][0];
    assert_eq!(retried["eventId"], "cti-journal-retry", "{first}");
    let steps = steps_of(retried);
    assert_eq!(step(&steps, "crm")[0]["answer"], "error", "{steps:?}");
    let retry = step(&steps, "retry");
    assert_eq!(retry.len(), 1, "{steps:?}");
    assert!(
        retry[0]["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{steps:?}"
    );

    app.crm.set_down(false);
    app.settle().await;
    let started = tokio::time::Instant::now();
    let runs = loop {
        let body = journaled(&app, "/admin/events/cti-journal-retry").await;
        let runs = body["entries"].as_array().cloned().unwrap_or_default();
        if runs.first().is_some_and(|r| r["outcome"] == "patched") {
            break runs;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(runs.len() >= 2, "{runs:?}");
    let attempts: Vec<u64> = runs.iter().filter_map(|r| r["attempt"].as_u64()).collect();
    assert!(
        attempts.windows(2).all(|w| w[0] > w[1]),
        "newest first: {attempts:?}"
    );
    assert!(
        runs[1..].iter().all(|r| r["outcome"] == "retry_scheduled"),
        "{runs:?}"
    );
}
