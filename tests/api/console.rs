//! `/console` in a real browser: headless Chromium from Debian's packages (`chromium`,
//! `chromium-driver`; `.ci/run` installs them when missing), driven over the W3C WebDriver
//! protocol by chromedriver. The test loads the console, filters it, searches a conversation,
//! opens an event's journey, replays a dead letter and runs the explain form, asserting on what
//! the page shows.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use attrsync::simulator::CrmSim;

use crate::helpers::{json_body, spawn_app_with, use_http_crm, TestApp};

/// The W3C WebDriver element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver with one headless Chromium session; both end when this is dropped.
struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn program(env: &str, default: &str) -> String {
    let path = std::env::var(env).unwrap_or_else(|_| default.to_owned());
    assert!(
        std::path::Path::new(&path).exists(),
        "{path} is missing: install Debian's chromium and chromium-driver (.ci/run does), or set {env}"
    );
    path
}

impl Browser {
    async fn start() -> Browser {
        let driver_path = program("CHROMEDRIVER", "/usr/bin/chromedriver");
        let chromium = program("CHROMIUM", "/usr/bin/chromium");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let driver = Command::new(driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let started = tokio::time::Instant::now();
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut browser = Browser {
            driver,
            base,
            session: String::new(),
            http,
        };
        let created = browser
            .call(
                reqwest::Method::POST,
                "/session",
                json!({"capabilities": {"alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {"binary": chromium, "args": [
                        "--headless=new", "--no-sandbox", "--disable-gpu",
                        "--disable-dev-shm-usage", "--no-proxy-server"
                    ]}
                }}}),
            )
            .await;
        browser.session = created["sessionId"]
            .as_str()
            .expect("a WebDriver session")
            .to_owned();
        browser
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let answer = self.try_call(method, path, body).await;
        assert!(
            answer["value"]["error"].is_null(),
            "WebDriver {path}: {answer}"
        );
        answer["value"].clone()
    }

    /// The WebDriver answer, an error included.
    async fn try_call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.base);
        let request = self.http.request(method.clone(), &url);
        let request = if method == reqwest::Method::GET {
            request
        } else {
            request.json(&body)
        };
        let answer: Value = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("WebDriver {path}: {e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("WebDriver {path}: {e}"));
        answer
    }

    fn at(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    async fn open(&self, url: &str) {
        self.call(reqwest::Method::POST, &self.at("/url"), json!({"url": url}))
            .await;
    }

    /// The element `css` selects, waiting up to 10 s for it to appear (a page still loading).
    async fn find(&self, css: &str) -> String {
        let started = tokio::time::Instant::now();
        loop {
            let answer = self
                .try_call(
                    reqwest::Method::POST,
                    &self.at("/element"),
                    json!({"using": "css selector", "value": css}),
                )
                .await;
            if answer["value"]["error"].is_null() {
                return answer["value"][ELEMENT]
                    .as_str()
                    .expect("an element")
                    .to_owned();
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "WebDriver: no {css}: {answer}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn count(&self, css: &str) -> usize {
        let found = self
            .call(
                reqwest::Method::POST,
                &self.at("/elements"),
                json!({"using": "css selector", "value": css}),
            )
            .await;
        found.as_array().map_or(0, Vec::len)
    }

    async fn text(&self, css: &str) -> String {
        let element = self.find(css).await;
        let text = self
            .call(
                reqwest::Method::GET,
                &self.at(&format!("/element/{element}/text")),
                Value::Null,
            )
            .await;
        text.as_str().unwrap_or_default().to_owned()
    }

    /// Clicks `css` and waits for the page it leads to: every button and link of the console
    /// navigates, and reading the next page before the old one is gone would read the old one.
    async fn click(&self, css: &str) {
        let page = self.find("html").await;
        let element = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &self.at(&format!("/element/{element}/click")),
            json!({}),
        )
        .await;
        let started = tokio::time::Instant::now();
        loop {
            let answer = self
                .try_call(
                    reqwest::Method::GET,
                    &self.at(&format!("/element/{page}/name")),
                    Value::Null,
                )
                .await;
            if !answer["value"]["error"].is_null() {
                return; // the old document is gone
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the click on {css} did not leave the page"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &self.at(&format!("/element/{element}/value")),
            json!({"text": text}),
        )
        .await;
    }

    async fn source(&self) -> String {
        let source = self
            .call(reqwest::Method::GET, &self.at("/source"), Value::Null)
            .await;
        source.as_str().unwrap_or_default().to_owned()
    }
}

async fn journaled_runs(app: &TestApp, count: usize) {
    let started = tokio::time::Instant::now();
    loop {
        let body = json_body(app.get("/admin/journal").await).await;
        if body["entries"].as_array().map_or(0, Vec::len) >= count {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "journal: {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn cti(call: &attrsync::simulator::CreatedConversation, event_id: &str, ani: &str) -> Value {
    json!({
        "eventId": event_id,
        "conversationId": call.conversation_id,
        "participantId": call.customer_participant_id,
        "callerNumber": ani,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_finds_why_in_the_console_and_replays_a_dead_letter() {
    let app = spawn_app_with(|s, sims| use_http_crm(s, &sims.crm)).await;
    for customer in CrmSim::sample_customers() {
        assert!(app.crm.insert(customer));
    }
    // One event the CRM refuses (400: not retryable, straight to the dead letters), one patched.
    let refused = app.new_voice_call("tel:+13175550126");
    app.crm.push_status(400);
    assert_eq!(
        app.post_cti_event(&cti(&refused, "cti-console-refused", "+13175550126"))
            .await
            .status(),
        202
    );
    app.settle().await;
    let patched = app.new_voice_call("tel:+13175550125");
    assert_eq!(
        app.post_cti_event(&cti(&patched, "cti-console-patched", "+13175550125"))
            .await
            .status(),
        202
    );
    app.settle().await;
    journaled_runs(&app, 2).await;

    let browser = Browser::start().await;
    // Recent events, both outcomes shown; the filter narrows them.
    browser.open(&app.url("/console")).await;
    let table = browser.text("#entries").await;
    assert!(
        table.contains("cti-console-patched") && table.contains("patched"),
        "{table}"
    );
    assert!(
        table.contains("cti-console-refused") && table.contains("failed"),
        "{table}"
    );
    browser.type_into("#outcome", "failed").await;
    browser.click("#filter-button").await;
    let filtered = browser.text("#entries").await;
    assert!(filtered.contains("cti-console-refused"), "{filtered}");
    assert!(!filtered.contains("cti-console-patched"), "{filtered}");

    // Search the patched call's conversation and open its journey.
    browser.open(&app.url("/console")).await;
    browser
        .type_into("#conversation-id", &patched.conversation_id)
        .await;
    browser.click("#search-button").await;
    assert_eq!(browser.text("#conversation").await, patched.conversation_id);
    let searched = format!("value=\"{}\"", patched.conversation_id);
    assert!(
        browser.source().await.contains(&searched),
        "the search box keeps the id searched for"
    );
    assert_eq!(browser.count("a.event").await, 1);
    browser.click("a.event").await;
    let steps = browser.text("ol.timeline").await;
    for expected in [
        "arrived from cti",
        "key phone in e164",
        "CRM http by phone: found",
        "decision found",
        "patch_participant_attributes",
        "written",
        "crm.firstName",
        "outcome patched",
    ] {
        assert!(steps.contains(expected), "{expected} not in {steps}");
    }
    let page = browser.source().await;
    for personal in ["5550125", "Lovelace", "ada@example.com"] {
        assert!(!page.contains(personal), "{personal} on the journey page");
    }

    // The refused event is a dead letter; replaying it from the console writes the attributes.
    browser.open(&app.url("/console/dead-letters")).await;
    assert!(browser
        .text("#dead-letters")
        .await
        .contains("cti:cti-console-refused"));
    browser.click("button.replay").await;
    assert!(browser.text("#notice").await.contains("queued again"));
    app.settle().await;
    assert_eq!(
        app.customer_patches(&refused).len(),
        1,
        "the replay wrote the attributes"
    );
    browser.open(&app.url("/console/dead-letters")).await;
    assert_eq!(browser.count("button.replay").await, 0);

    // The explain form: a dry run that writes nothing.
    let patches_before = app.genesys.stats().patches_accepted;
    browser.open(&app.url("/console/explain")).await;
    browser.type_into("#ani", "+1 317 555 0125").await;
    browser.click("#explain-button").await;
    assert!(browser.text("#explain-decision").await.starts_with("found"));
    assert!(browser
        .text("#explain-patch")
        .await
        .contains("crm.firstName"));
    assert_eq!(app.genesys.stats().patches_accepted, patches_before);
}
