//! `attrsync demo`: the whole job in one process, with no Genesys account. It starts the Genesys
//! Cloud simulator, runs attrsync on the embedded defaults (file CRM with the sample customers)
//! against it, sends a handful of realistic events, and prints for each the participant's
//! attributes before and after and what it cost in upstream calls. Then it keeps serving so you
//! can send your own events, until Ctrl-C (or exits at once with `--once`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::{json, Value};

use crate::app::{shutdown_signal, App};
use crate::config::{CrmAdapterKind, LogFormat, Settings, DEFAULT_CUSTOMER_FILE, SAMPLE_CUSTOMERS};
use crate::http::AppState;
use crate::simulator::{
    eventbridge_customer_start, CreatedConversation, GenesysSim, GenesysSimConfig, NewConversation,
    SimStats,
};

pub struct DemoOptions<'a> {
    pub config: Option<&'a Path>,
    pub once: bool,
}

/// Runs the demo; the caller provides the runtime.
pub async fn run(options: DemoOptions<'_>) -> anyhow::Result<()> {
    let sim_config = GenesysSimConfig::default();
    let sim_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the Genesys simulator")?;
    let sim = GenesysSim::start(sim_config.clone(), sim_listener).await?;

    // Fresh credentials for this run: the demo uses the same authentication a deployment does.
    let credentials = Credentials::generate();
    let mut env: Vec<(String, String)> = std::env::vars().collect();
    env.extend(
        [
            ("GENESYS_API_URL", sim.base_url()),
            ("GENESYS_LOGIN_URL", sim.base_url()),
            ("GENESYS_CLIENT_ID", sim_config.client_id.clone()),
            ("GENESYS_CLIENT_SECRET", sim_config.client_secret.clone()),
            ("ATTRSYNC_AUTH__GENESYS__MODE", "api_key".to_owned()),
            (
                "ATTRSYNC_AUTH__GENESYS__SECRETS",
                credentials.api_key.clone(),
            ),
            ("ATTRSYNC_AUTH__CTI__MODE", "signature".to_owned()),
            (
                "ATTRSYNC_AUTH__CTI__SECRETS",
                credentials.signing_secret.clone(),
            ),
            ("ATTRSYNC_AUTH__LOOKUP__MODE", "basic".to_owned()),
            (
                "ATTRSYNC_AUTH__LOOKUP__SECRETS",
                credentials.lookup_password.clone(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v)),
    );
    let mut settings = Settings::load_unvalidated(options.config, &env)?;
    let run = uuid::Uuid::new_v4().simple().to_string();
    // The default customer file is relative to the checkout; elsewhere (an installed binary)
    // the demo uses the same sample customers, embedded in the binary.
    let sample_file = std::env::temp_dir().join(format!("attrsync-demo-{run}-customers.json"));
    let embedded_sample = needs_embedded_sample(&settings, Path::new("."));
    if embedded_sample {
        std::fs::write(&sample_file, SAMPLE_CUSTOMERS).with_context(|| {
            format!("writing the sample customers to {}", sample_file.display())
        })?;
        settings.crm.file.path = sample_file.clone();
    }
    settings.validate()?;
    // A fresh queue file per run, so one demo's events never meet the next one's.
    let queue_file = std::env::temp_dir().join(format!("attrsync-demo-{run}.db"));
    settings.queue.backend = crate::config::QueueBackend::Sqlite;
    settings.queue.sqlite_path = queue_file.clone();
    // The demo's story is on stdout; keep the service's own logs to warnings unless asked.
    settings.telemetry.log_format = LogFormat::Pretty;
    if std::env::var_os("RUST_LOG").is_none() {
        settings.telemetry.log_level = "warn".to_owned();
    }
    crate::telemetry::init(&settings.telemetry);

    let app = match App::build(settings.clone()).await {
        Ok(app) => app,
        Err(e) if settings.server.port != 0 => {
            eprintln!(
                "note: could not use port {} ({e:#}); using a free port instead",
                settings.server.port
            );
            settings.server.port = 0;
            App::build(settings.clone()).await?
        }
        Err(e) => return Err(e),
    };
    let base = app.base_url();
    let state = app.state().clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stop_rx.await;
    }));

    println!("attrsync demo");
    println!("  Genesys Cloud simulator: {}", sim.base_url());
    println!("  attrsync:                {base}");
    let customers = if embedded_sample {
        "the sample customers built into attrsync".to_owned()
    } else {
        settings.crm.file.path.display().to_string()
    };
    println!(
        "  CRM:                     {} ({customers})",
        state.crm.names().join(" + "),
    );
    println!();

    let demo = Demo {
        http: reqwest::Client::new(),
        base: base.clone(),
        sim: sim.clone(),
        state,
        credentials: credentials.clone(),
        api_key_header: settings.auth.genesys.api_key_header.clone(),
        basic_username: settings.auth.lookup.basic_username.clone(),
    };
    demo.scenarios().await?;

    if !options.once {
        let sim_url = sim.base_url();
        println!("attrsync keeps serving. Metrics: {base}/metrics  Health: {base}/readyz");
        println!("Send your own event (needs a conversation in the simulator first):");
        println!(
            "  curl -s -X POST {sim_url}/sim/conversations -H 'content-type: application/json' -d '{{\"ani\":\"tel:+13175550125\"}}'"
        );
        println!(
            "  curl -s -X POST {base}/v1/events/genesys -H 'content-type: application/json' -H '{}: {}' \\\n    -d '{{\"conversationId\":\"<conversationId>\",\"participantId\":\"<customerParticipantId>\",\"ani\":\"tel:+13175550125\"}}'",
            settings.auth.genesys.api_key_header, credentials.api_key
        );
        println!("  curl -s {sim_url}/sim/conversations/<conversationId>/participants/<customerParticipantId>/attributes");
        println!("Ctrl-C stops.");
        shutdown_signal().await;
    }
    let _ = stop_tx.send(());
    server.await.context("attrsync task")??;
    sim.shutdown();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", queue_file.display()));
    }
    if embedded_sample {
        let _ = std::fs::remove_file(&sample_file);
    }
    Ok(())
}

/// Whether the demo should use the sample customers built into the binary: the configured file
/// is the default one and it is not there, relative to `cwd` (an installed binary, run from
/// anywhere). A file the user configured is never replaced.
fn needs_embedded_sample(settings: &Settings, cwd: &Path) -> bool {
    settings.crm.source_kinds().contains(&CrmAdapterKind::File)
        && settings.crm.file.path == Path::new(DEFAULT_CUSTOMER_FILE)
        && !cwd.join(&settings.crm.file.path).exists()
}

/// Secrets generated for one demo run.
#[derive(Clone)]
struct Credentials {
    api_key: String,
    signing_secret: String,
    lookup_password: String,
}

impl Credentials {
    fn generate() -> Self {
        use base64::Engine as _;
        let random = || {
            let bytes: [u8; 24] = rand::random();
            bytes
        };
        let hex = |b: [u8; 24]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        Self {
            api_key: hex(random()),
            signing_secret: format!(
                "whsec_{}",
                base64::engine::general_purpose::STANDARD.encode(random())
            ),
            lookup_password: hex(random()),
        }
    }
}

struct Demo {
    http: reqwest::Client,
    base: String,
    sim: GenesysSim,
    state: AppState,
    credentials: Credentials,
    api_key_header: String,
    basic_username: String,
}

impl Demo {
    async fn scenarios(&self) -> anyhow::Result<()> {
        // 1. The usual case: EventBridge delivers customer.start for a voice call.
        let ada = self.call("tel:+13175550125");
        let start = eventbridge_customer_start(&ada, "tel:+13175550125");
        self.step(
            "1) EventBridge customer.start, voice call from tel:+13175550125 (the CRM stores \"(317) 555-0125\")",
            &ada,
            "/v1/events/genesys",
            &start,
        )
        .await?;

        // 2. CTI middleware, without the participant id: attrsync finds the customer itself.
        let alan = self.call("tel:+442079460018");
        let cti = json!({
            "eventId": "cti-7f3a",
            "conversationId": alan.conversation_id,
            "callerNumber": "+44 20 7946 0018",
            "attributes": {"ivr.intent": "billing"}
        });
        self.step(
            "2) CTI middleware event (no participant id; an extra attribute ivr.intent)",
            &alan,
            "/v1/events/cti",
            &cti,
        )
        .await?;

        // 3. An Architect data action asks synchronously and gets flat strings back.
        let katherine = self.call("tel:+12125550147");
        let lookup = json!({
            "conversationId": katherine.conversation_id,
            "participantId": katherine.customer_participant_id,
            "ani": "tel:+12125550147",
            "email": "",
            "customerId": ""
        });
        self.step(
            "3) Architect data action: POST /v1/lookup (answers at once, writes in the background)",
            &katherine,
            "/v1/lookup",
            &lookup,
        )
        .await?;

        // 4. A caller the CRM does not know: the flow can still route on crm.found.
        let stranger = self.call("tel:+13175550100");
        let unknown = eventbridge_customer_start(&stranger, "tel:+13175550100");
        self.step(
            "4) A caller the CRM does not know",
            &stranger,
            "/v1/events/genesys",
            &unknown,
        )
        .await?;

        // 5. EventBridge delivers at least once: the same event again.
        self.step(
            "5) The event of 1) delivered again (EventBridge retries)",
            &ada,
            "/v1/events/genesys",
            &start,
        )
        .await?;
        Ok(())
    }

    fn call(&self, ani: &str) -> CreatedConversation {
        self.sim.create_conversation(NewConversation {
            ani: Some(ani.to_owned()),
            dnis: Some("tel:+18005550100".to_owned()),
            attributes: BTreeMap::from([("flow.language".to_owned(), "en-US".to_owned())]),
            ..NewConversation::default()
        })
    }

    async fn step(
        &self,
        title: &str,
        call: &CreatedConversation,
        path: &str,
        body: &Value,
    ) -> anyhow::Result<()> {
        println!("{title}");
        let before = self.attributes(call);
        let stats_before = self.sim.stats();
        let response = self
            .authenticated(path, body)?
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        println!("   POST {path} -> {} {}", status.as_u16(), answer);
        self.settle().await;
        let after = self.attributes(call);
        let cost = delta(&stats_before, &self.sim.stats());
        println!("   attributes before: {}", show(&before));
        println!("   attributes after:  {}", show(&after));
        println!("   Genesys calls:     {cost}");
        println!();
        Ok(())
    }

    /// The request as each kind of sender would authenticate it: EventBridge with an API key,
    /// CTI middleware with a Standard Webhooks signature, the data action with Basic.
    fn authenticated(&self, path: &str, body: &Value) -> anyhow::Result<reqwest::RequestBuilder> {
        let bytes = serde_json::to_vec(body)?;
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        Ok(match path {
            "/v1/events/cti" => {
                let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
                let timestamp = chrono::Utc::now().timestamp();
                let signature = standardwebhooks::Webhook::new(&self.credentials.signing_secret)
                    .map_err(|e| anyhow::anyhow!("signing secret: {e}"))?
                    .sign(&id, timestamp, &bytes)
                    .map_err(|e| anyhow::anyhow!("signing: {e}"))?;
                request
                    .header("webhook-id", id)
                    .header("webhook-timestamp", timestamp.to_string())
                    .header("webhook-signature", signature)
            }
            "/v1/lookup" => request.basic_auth(
                &self.basic_username,
                Some(&self.credentials.lookup_password),
            ),
            _ => request.header(self.api_key_header.as_str(), &self.credentials.api_key),
        }
        .body(bytes))
    }

    fn attributes(&self, call: &CreatedConversation) -> BTreeMap<String, String> {
        self.sim
            .attributes(&call.conversation_id, &call.customer_participant_id)
            .unwrap_or_default()
    }

    /// Waits until every accepted event is processed (bounded, so a stuck demo still ends).
    async fn settle(&self) {
        for _ in 0..500 {
            if self.state.queue.pending().await.is_ok_and(|n| n == 0) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn show(attributes: &BTreeMap<String, String>) -> String {
    if attributes.is_empty() {
        return "(none)".to_owned();
    }
    let mut out = String::new();
    for (i, (k, v)) in attributes.iter().enumerate() {
        if i > 0 {
            out.push_str("\n                      ");
        }
        let _ = write!(out, "{k} = {v}");
    }
    out
}

fn delta(before: &SimStats, after: &SimStats) -> String {
    let tokens = after.tokens_issued - before.tokens_issued;
    let gets = after.get_conversation - before.get_conversation;
    let patches = after.patch_attributes - before.patch_attributes;
    format!(
        "{} (token {tokens}, GET conversation {gets}, PATCH attributes {patches})",
        tokens + gets + patches
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        let env = [
            ("GENESYS_CLIENT_ID", "id"),
            ("GENESYS_CLIENT_SECRET", "secret"),
            ("ATTRSYNC_AUTH__GENESYS__MODE", "none"),
            ("ATTRSYNC_AUTH__CTI__MODE", "none"),
            ("ATTRSYNC_AUTH__LOOKUP__MODE", "none"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        Settings::load_unvalidated(None, &env).expect("the defaults load")
    }

    #[test]
    fn the_built_in_sample_is_used_only_when_the_default_file_is_absent() {
        let elsewhere = tempfile::tempdir().unwrap();
        let settings = settings();
        assert!(needs_embedded_sample(&settings, elsewhere.path()));
        assert!(!needs_embedded_sample(
            &settings,
            Path::new(env!("CARGO_MANIFEST_DIR"))
        ));
        let mut own = settings.clone();
        own.crm.file.path = "my-customers.json".into();
        assert!(
            !needs_embedded_sample(&own, elsewhere.path()),
            "a configured file is never replaced"
        );
    }

    #[test]
    fn the_built_in_sample_is_the_shipped_sample_file() {
        let shipped = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config/customers.json"
        ))
        .unwrap();
        assert_eq!(SAMPLE_CUSTOMERS, shipped);
    }
}
