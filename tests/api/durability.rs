//! "No event lost": crashes, redeliveries, a CRM outage, Genesys 429s and 503s, and two
//! processes sharing one PostgreSQL queue. The crash and multi-process tests run the real
//! `attrsync` binary; every loop is bounded in count and time and uses only loopback.

use std::collections::HashSet;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use attrsync::simulator::{
    CreatedConversation, Fault, GenesysSim, GenesysSimConfig, NewConversation, Op,
};
use futures::StreamExt as _;
use serde_json::{json, Value};
use tokio::process::{Child, Command};

use crate::helpers::{eventbridge_start, json_body, spawn_app_with, use_http_crm};

/// An `attrsync serve` child process with its own settings (all through the environment;
/// `tests/api/replicas.rs` runs three).
pub(crate) struct Attrsync {
    child: Child,
    pub(crate) base: String,
}

const API_KEY: &str = "durability-test-key";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Attrsync {
    pub(crate) async fn start(sim: &GenesysSim, extra: &[(&str, String)]) -> Attrsync {
        let port = free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_attrsync"));
        command
            .arg("serve")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("GENESYS_API_URL", sim.base_url())
            .env("GENESYS_LOGIN_URL", sim.base_url())
            .env("GENESYS_CLIENT_ID", "attrsync-sim")
            .env("GENESYS_CLIENT_SECRET", "sim-secret")
            .env("ATTRSYNC_SERVER__PORT", port.to_string())
            .env("ATTRSYNC_AUTH__GENESYS__SECRETS", API_KEY)
            .env("ATTRSYNC_AUTH__CTI__MODE", "none")
            .env("ATTRSYNC_AUTH__LOOKUP__MODE", "none")
            .env("ATTRSYNC_GENESYS__RATE_LIMIT_PER_MINUTE", "0")
            .env("ATTRSYNC_QUEUE__POLL_INTERVAL_MS", "20")
            .env("ATTRSYNC_QUEUE__RETRY_BASE_MS", "20")
            .env("ATTRSYNC_TELEMETRY__LOG_LEVEL", "warn")
            .stdout(if std::env::var_os("TEST_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .stderr(if std::env::var_os("TEST_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .kill_on_drop(true);
        for (k, v) in extra {
            command.env(k, v);
        }
        let child = command.spawn().expect("start attrsync");
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        for _ in 0..300 {
            if client
                .get(format!("{base}/healthz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Attrsync { child, base };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("attrsync did not start within 15 s");
    }

    /// SIGKILL: no shutdown hook runs, nothing is flushed.
    pub(crate) async fn kill_hard(mut self) {
        self.child.start_kill().expect("SIGKILL");
        let _ = self.child.wait().await;
    }

    /// The series of this process's /metrics whose names start with one of `prefixes`.
    pub(crate) async fn metrics_matching(&self, prefixes: &[&str]) -> Vec<(String, f64)> {
        let text = reqwest::get(format!("{}/metrics", self.base))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text");
        text.lines()
            .filter(|l| prefixes.iter().any(|p| l.starts_with(p)))
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                Some((series.to_owned(), value.parse().ok()?))
            })
            .collect()
    }

    /// Sum of `attrsync_events_total{outcome="patched"}` in this process's /metrics.
    pub(crate) async fn patched_count(&self) -> u64 {
        let text = reqwest::get(format!("{}/metrics", self.base))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text");
        text.lines()
            .filter(|l| {
                l.starts_with("attrsync_events_total{") && l.contains("outcome=\"patched\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }
}

/// Delivers an event like EventBridge does: a 503 (queue busy) is retried, a few times.
pub(crate) async fn send(client: &reqwest::Client, base: &str, event: &Value) -> Option<u16> {
    let mut status = None;
    for attempt in 0..5 {
        status = client
            .post(format!("{base}/v1/events/genesys"))
            .header("x-api-key", API_KEY)
            .json(event)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .ok()
            .map(|r| r.status().as_u16());
        if status != Some(503) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
    }
    status
}

fn calls(sim: &GenesysSim, n: usize) -> Vec<(CreatedConversation, Value)> {
    (0..n)
        .map(|i| {
            let ani = format!("tel:+1317555{:04}", i % 10_000);
            let call = sim.create_conversation(NewConversation {
                ani: Some(ani.clone()),
                ..NewConversation::default()
            });
            let mut event = eventbridge_start(&call);
            event["detail"]["eventBody"]["ani"] = json!(ani);
            (call, event)
        })
        .collect()
}

/// Waits (bounded) until every call has at least one accepted PATCH.
pub(crate) async fn wait_until_patched(
    sim: &GenesysSim,
    calls: &[(CreatedConversation, Value)],
    limit: Duration,
) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let missing = calls
            .iter()
            .filter(|(c, _)| {
                sim.patches(&c.conversation_id, &c.customer_participant_id)
                    .is_empty()
            })
            .count();
        if missing == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{missing} of {} participants still unpatched after {limit:?}",
            calls.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) fn assert_each_patched_exactly_once(
    sim: &GenesysSim,
    calls: &[(CreatedConversation, Value)],
) {
    let twice: Vec<usize> = calls
        .iter()
        .map(|(c, _)| {
            sim.patches(&c.conversation_id, &c.customer_participant_id)
                .len()
        })
        .filter(|n| *n != 1)
        .collect();
    assert!(
        twice.is_empty(),
        "participants not patched exactly once: {twice:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_process_killed_mid_burst_loses_no_acknowledged_event_and_writes_none_twice() {
    const EVENTS: usize = 2000;
    let sim = GenesysSim::start(
        GenesysSimConfig::default(),
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let queue = [
        (
            "ATTRSYNC_QUEUE__SQLITE_PATH",
            dir.path().join("queue.db").display().to_string(),
        ),
        // A short lease, so the killed process's claimed jobs are taken over quickly.
        ("ATTRSYNC_QUEUE__LEASE_SECS", "2".to_owned()),
    ];
    let calls = Arc::new(calls(&sim, EVENTS));
    let first = Attrsync::start(&sim, &queue).await;
    let first_base = first.base.clone();
    let client = reqwest::Client::new();

    // Send the burst with 32 senders; kill the process once half of it is acknowledged.
    let acked = Arc::new(std::sync::Mutex::new(HashSet::new()));
    let killer = {
        let acked = acked.clone();
        async move {
            while acked.lock().unwrap().len() < EVENTS / 2 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            first.kill_hard().await;
        }
    };
    let sender = futures::stream::iter(0..EVENTS)
        .map(|i| {
            let client = client.clone();
            let calls = calls.clone();
            let acked = acked.clone();
            let base = first_base.clone();
            async move {
                if send(&client, &base, &calls[i].1).await == Some(202) {
                    acked.lock().unwrap().insert(i);
                }
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<()>>();
    let ((), _) = tokio::join!(killer, sender);
    let acknowledged = acked.lock().unwrap().len();
    assert!(
        acknowledged >= EVENTS / 2,
        "the kill came after half the burst was acknowledged"
    );

    // Restart on the same queue file; senders redeliver everything (EventBridge would retry what
    // failed; redelivering what succeeded too proves redelivery costs nothing).
    let second = Attrsync::start(&sim, &queue).await;
    let statuses = futures::stream::iter(0..EVENTS)
        .map(|i| {
            let client = client.clone();
            let calls = calls.clone();
            let base = second.base.clone();
            async move { send(&client, &base, &calls[i].1).await }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    assert!(
        statuses.iter().all(|s| matches!(s, Some(200 | 202))),
        "every redelivery is answered"
    );

    wait_until_patched(&sim, &calls, Duration::from_secs(60)).await;
    assert_each_patched_exactly_once(&sim, &calls);
    let stats = sim.stats();
    eprintln!(
        "kill -9 test: {EVENTS} events, {acknowledged} acknowledged before the kill, {} participants patched, {} PATCH calls",
        calls.len(),
        stats.patch_attributes
    );
    second.kill_hard().await;
}

#[tokio::test]
async fn every_event_delivered_three_times_is_written_once_and_looked_up_once() {
    let app = spawn_app_with(|settings, sims| {
        use_http_crm(settings, &sims.crm);
        settings.genesys.rate_limit_per_minute = 0;
    })
    .await;
    let events: Vec<(CreatedConversation, Value)> = (0..50)
        .map(|i| {
            let ani = format!("tel:+1317555{:04}", 2000 + i);
            let call = app.new_voice_call(&ani);
            let mut event = eventbridge_start(&call);
            event["detail"]["eventBody"]["ani"] = json!(ani);
            // The sample is a chat, which has no number to look up by: make it a call.
            event["detail"]["eventBody"]["mediaType"] = json!("VOICE");
            (call, event)
        })
        .collect();
    let deliveries = events
        .iter()
        .cycle()
        .take(150)
        .map(|(_, e)| app.post_genesys_event(e));
    let statuses: Vec<u16> = futures::future::join_all(deliveries)
        .await
        .into_iter()
        .map(|r| r.status().as_u16())
        .collect();
    app.settle().await;

    assert_eq!(
        statuses.iter().filter(|s| **s == 202).count(),
        50,
        "one delivery of each accepted"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        100,
        "the others answered as duplicates"
    );
    for (call, _) in &events {
        assert_eq!(app.customer_patches(call).len(), 1);
    }
    assert_eq!(app.crm.requests(), 50, "duplicates cost no CRM call");
    assert_eq!(
        app.genesys.stats().patch_attributes,
        50,
        "duplicates cost no PATCH"
    );
}

#[tokio::test]
async fn events_accepted_while_the_crm_is_down_are_written_once_it_returns() {
    let app = spawn_app_with(|settings, sims| {
        use_http_crm(settings, &sims.crm);
        settings.genesys.rate_limit_per_minute = 0;
        settings.crm.http.common.max_retries = 0;
        settings.crm.http.common.breaker_failures = 3;
        settings.crm.http.common.breaker_cooldown_ms = 100;
        settings.lookup.deadline_ms = 300;
        settings.lookup.write_attributes = false;
    })
    .await;
    app.crm
        .insert(json!({"id": "C-9", "firstName": "Grace", "phone": "+13175559000"}));
    app.crm.set_down(true);

    let calls: Vec<CreatedConversation> = (0..20)
        .map(|_| app.new_voice_call("tel:+13175559000"))
        .collect();
    for call in &calls {
        let mut event = eventbridge_start(call);
        event["detail"]["eventBody"]["ani"] = json!("tel:+13175559000");
        event["detail"]["eventBody"]["mediaType"] = json!("VOICE");
        assert_eq!(app.post_genesys_event(&event).await.status(), 202);
    }
    // Meanwhile the synchronous lookup still answers, with found=false and why.
    for _ in 0..5 {
        let answer = json_body(app.post_lookup(&json!({"ani": "tel:+13175559000"})).await).await;
        assert_eq!(answer["found"], "false");
        assert!(
            matches!(
                answer["reason"].as_str(),
                Some("crm_error" | "circuit_open")
            ),
            "{answer}"
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        calls.iter().all(|c| app.customer_patches(c).is_empty()),
        "nothing written while down"
    );

    app.crm.set_down(false);
    app.settle().await;
    for call in &calls {
        let patches = app.customer_patches(call);
        assert_eq!(patches.len(), 1, "written once after the CRM returned");
        assert_eq!(
            patches[0].get("crm.firstName").map(String::as_str),
            Some("Grace")
        );
    }
}

#[tokio::test]
async fn bursts_of_429_and_503_delay_writes_without_a_retry_storm() {
    let app = spawn_app_with(|settings, _| {
        settings.genesys.rate_limit_per_minute = 0;
    })
    .await;
    app.genesys.push_fault(
        Op::PatchAttributes,
        Fault::TooManyRequests {
            retry_after_secs: 1,
        },
    );
    for _ in 0..3 {
        app.genesys
            .push_fault(Op::PatchAttributes, Fault::Status(503));
    }
    app.genesys.push_fault(
        Op::PatchAttributes,
        Fault::TooManyRequests {
            retry_after_secs: 1,
        },
    );
    let calls: Vec<CreatedConversation> = (0..30)
        .map(|_| app.new_voice_call("tel:+13175550125"))
        .collect();
    for call in &calls {
        assert_eq!(
            app.post_genesys_event(&eventbridge_start(call))
                .await
                .status(),
            202
        );
    }
    app.settle().await;
    for call in &calls {
        assert_eq!(app.customer_patches(call).len(), 1);
    }
    let stats = app.genesys.stats();
    // Each injected fault costs exactly one extra attempt: 30 writes + 5 faults.
    assert_eq!(stats.patch_attributes, 35, "{stats:?}");
    assert_eq!(stats.rate_limited, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_on_one_postgres_queue_process_every_event_once() {
    let Some((settings, _)) =
        crate::stores::fresh_store_settings(attrsync::config::QueueBackend::Postgres).await
    else {
        eprintln!(
            "skipped: two processes on PostgreSQL (set ATTRSYNC_TEST_DATABASE_URL to run it)"
        );
        return;
    };
    let url = secrecy::ExposeSecret::expose_secret(&settings.postgres_url).to_owned();
    let sim = GenesysSim::start(
        GenesysSimConfig::default(),
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
    )
    .await
    .unwrap();
    let env = [
        ("ATTRSYNC_QUEUE__BACKEND", "postgres".to_owned()),
        ("ATTRSYNC_QUEUE__POSTGRES_URL", url),
        (
            "ATTRSYNC_QUEUE__POSTGRES_SCHEMA",
            settings.postgres_schema.clone(),
        ),
    ];
    let a = Attrsync::start(&sim, &env).await;
    let b = Attrsync::start(&sim, &env).await;
    let calls = calls(&sim, 400);
    let client = reqwest::Client::new();
    // Alternate the replicas, as a load balancer would, and deliver every event to both.
    let sends = calls
        .iter()
        .flat_map(|(_, e)| [send(&client, &a.base, e), send(&client, &b.base, e)]);
    let statuses: Vec<Option<u16>> = futures::stream::iter(sends)
        .buffer_unordered(16)
        .collect()
        .await;
    assert_eq!(
        statuses.iter().filter(|s| **s == Some(202)).count(),
        400,
        "each event accepted once"
    );

    wait_until_patched(&sim, &calls, Duration::from_secs(60)).await;
    assert_each_patched_exactly_once(&sim, &calls);
    let (by_a, by_b) = (a.patched_count().await, b.patched_count().await);
    eprintln!("two processes: {by_a} + {by_b} events patched");
    assert_eq!(
        by_a + by_b,
        400,
        "every event processed by exactly one replica"
    );
    a.kill_hard().await;
    b.kill_hard().await;
}
