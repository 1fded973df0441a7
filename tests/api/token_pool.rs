//! The Genesys token pool (`genesys.tokens`): several tokens carry several tokens' budgets, a
//! 429 parks one token and the call moves to another, and at an org-wide cap every token is
//! parked while the events wait in the queue. Observed through the simulator's counters, the
//! metrics and `/readyz`.

use std::time::Duration;

use attrsync::simulator::{Fault, Op};

use crate::helpers::{as_voice_call_from, eventbridge_start, json_body, spawn_app_with, TestApp};

const ADA_ANI: &str = "tel:+13175550125";

async fn deliver(app: &TestApp, n: usize) {
    for _ in 0..n {
        let call = app.new_voice_call(ADA_ANI);
        let response = app
            .post_genesys_event(&as_voice_call_from(eventbridge_start(&call), ADA_ANI))
            .await;
        assert_eq!(response.status(), 202);
    }
}

#[tokio::test]
async fn two_tokens_carry_twice_what_one_token_may_send_in_a_minute_without_a_429() {
    // Genesys (here the simulator) allows 4 requests a minute per token; with one token the
    // fifth PATCH would wait a minute, far past settle()'s limit.
    let app = spawn_app_with(|settings, sims| {
        sims.genesys.set_rate_limit(Some(4));
        settings.genesys.rate_limit_per_minute = 4;
        settings.genesys.rate_limit_burst = 4;
        settings.genesys.tokens = 2;
    })
    .await;
    deliver(&app, 8).await;
    app.settle().await;

    let stats = app.genesys.stats();
    assert_eq!(stats.patches_accepted, 8, "{stats:?}");
    assert_eq!(stats.rate_limited, 0, "{stats:?}");
    assert_eq!(stats.tokens_issued, 2, "one token per slot: {stats:?}");
}

#[tokio::test]
async fn a_429_parks_that_token_and_the_call_moves_to_the_other_at_once() {
    let app = spawn_app_with(|settings, _| settings.genesys.tokens = 2).await;
    // A 30-second Retry-After: waiting it out would outlast settle().
    app.genesys.push_fault(
        Op::PatchAttributes,
        Fault::TooManyRequests {
            retry_after_secs: 30,
        },
    );
    deliver(&app, 1).await;
    app.settle().await;

    let stats = app.genesys.stats();
    assert_eq!(stats.patches_accepted, 1, "{stats:?}");
    assert_eq!(stats.rate_limited, 1, "{stats:?}");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    let parked: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("attrsync_genesys_slot_parked_total{"))
        .collect();
    // The recorder is one per test process, so other tests' slots count here too: what holds is
    // that a parked slot is reported, by number, never by token.
    assert!(!parked.is_empty(), "a parked slot is counted");
    for line in &parked {
        let slot = line
            .split("slot=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_default();
        assert!(slot.parse::<u8>().is_ok(), "slot label {slot:?} in {line}");
    }

    let readiness = json_body(app.get("/readyz").await).await;
    assert_eq!(
        readiness["checks"]["genesys_tokens"]["0"], "ok",
        "{readiness}"
    );
    assert_eq!(
        readiness["checks"]["genesys_tokens"]["1"], "ok",
        "{readiness}"
    );
}

#[tokio::test]
async fn at_an_org_wide_cap_every_token_is_parked_and_the_rest_wait_in_the_queue() {
    // Each token could send 100 a minute, but the org as a whole only 3.
    let app = spawn_app_with(|settings, sims| {
        sims.genesys.set_org_rate_limit(Some(3));
        settings.genesys.tokens = 2;
    })
    .await;
    deliver(&app, 5).await;

    let started = tokio::time::Instant::now();
    loop {
        let stats = app.genesys.stats();
        if stats.patches_accepted == 3 && stats.org_rate_limited >= 2 && app.pending().await == 2 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "three patched, two waiting: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Both tokens got the org's 429 and are parked; the two events are not lost but scheduled
    // again after the Retry-After (about a minute), and nothing became a dead letter.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stats = app.genesys.stats();
    assert_eq!(stats.patches_accepted, 3, "{stats:?}");
    assert_eq!(app.pending().await, 2);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    for slot in ["0", "1"] {
        assert!(
            metrics.lines().any(|l| l.starts_with(&format!(
                "attrsync_genesys_slot_parked_total{{slot=\"{slot}\"}}"
            ))),
            "slot {slot} parked"
        );
    }
    let dead = json_body(app.get("/admin/dead-letters").await).await;
    assert_eq!(
        dead["deadLetters"].as_array().map(Vec::len),
        Some(0),
        "{dead}"
    );
}
