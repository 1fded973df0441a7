//! The Kubernetes base (deploy/kubernetes/), checked against the code it configures, the way the
//! compose file is: every variable is a setting attrsync reads and together they are a valid
//! configuration on the PostgreSQL queue, the probes are routes attrsync serves on the port it
//! listens on, every secret is a reference to the Secret (never a value), the grace period
//! outlasts the drain, the pod runs as the image's non-root user, and the memory request covers
//! the benchmark's peak RSS. No cluster is at hand: the manifests are parsed as YAML.

use utoipa::OpenApi as _;

use super::*;

const DIR: &str = "deploy/kubernetes";

/// The plain Genesys variables attrsync reads besides `ATTRSYNC_*`, and the setting each sets.
const GENESYS_SETTINGS: &[(&str, &str)] = &[
    ("GENESYS_CLIENT_ID", "genesys.client_id"),
    ("GENESYS_CLIENT_SECRET", "genesys.client_secret"),
    ("GENESYS_REGION", "genesys.region"),
    ("GENESYS_API_URL", "genesys.api_url"),
    ("GENESYS_LOGIN_URL", "genesys.login_url"),
];

#[test]
fn the_kustomization_lists_every_manifest_once_and_each_parses() {
    let kustomization = yaml("kustomization.yaml");
    assert_eq!(
        kustomization["kind"], "Kustomization",
        "{DIR}/kustomization.yaml"
    );
    let listed: BTreeSet<String> = kustomization["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect();
    let on_disk: BTreeSet<String> = std::fs::read_dir(repo().join(DIR))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect();
    assert_eq!(listed, on_disk, "every manifest is listed, and exists");
    let kinds: BTreeSet<String> = listed
        .iter()
        .map(|f| yaml(f)["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds,
        [
            "Deployment",
            "PodDisruptionBudget",
            "Service",
            "ServiceAccount"
        ]
        .map(str::to_owned)
        .into()
    );
    // The image the Deployment names is the one kustomize rewrites.
    assert_eq!(
        kustomization["images"][0]["name"],
        container(&deployment())["image"]
    );
}

#[test]
fn every_variable_the_deployment_sets_is_a_setting_and_together_they_run_on_the_postgres_queue() {
    let pod = Pod::from_deployment();
    for name in pod.env.keys() {
        assert_is_a_setting(name, "deploy/kubernetes/deployment.yaml");
    }
    let settings = pod.settings();
    assert_eq!(
        settings.queue.backend,
        attrsync::config::QueueBackend::Postgres,
        "replicas share one queue"
    );
    assert_eq!(
        settings.server.host, "0.0.0.0",
        "reachable from the Service"
    );
    assert_eq!(
        settings.auth.ops.mode,
        attrsync::config::AuthMode::Bearer,
        "/admin/* is not open to the cluster"
    );
}

#[test]
fn every_secret_comes_from_the_secret_and_no_value_is_written_in_the_manifest() {
    let pod = Pod::from_deployment();
    let settings = pod.settings();
    let redacted: toml::Table = toml::from_str(&settings.redacted_toml()).unwrap();
    let mut secrets = BTreeSet::new();
    collect_redacted(&redacted, "", &mut secrets);
    for key in [
        "genesys.client_secret",
        "auth.genesys.secrets",
        "auth.cti.secrets",
        "auth.lookup.secrets",
        "auth.ops.secrets",
        "queue.postgres_url",
    ] {
        assert!(
            secrets.contains(key),
            "{key} is set, and redacted: {secrets:?}"
        );
    }
    for key in &secrets {
        let variable = variable_for(key);
        let how = pod
            .env
            .get(&variable)
            .or_else(|| pod.env.get(&format!("{variable}_FILE")))
            .unwrap_or_else(|| panic!("{key} is set by neither {variable} nor {variable}_FILE"));
        assert!(
            matches!(how, EnvSource::SecretFile(_) | EnvSource::SecretKeyRef(_)),
            "{key} is a secret, but the manifest gives it as {how:?}"
        );
    }

    // Every file variable names an item of the Secret volume, and every item is used.
    let files: BTreeSet<&str> = pod
        .env
        .values()
        .filter_map(|s| match s {
            EnvSource::SecretFile(key) => Some(key.as_str()),
            _ => None,
        })
        .collect();
    let items: BTreeSet<&str> = pod.secret_items.values().map(String::as_str).collect();
    assert_eq!(files, items);
}

#[tokio::test]
async fn the_probes_are_healthz_and_readyz_on_the_port_attrsync_listens_on() {
    let deployment = deployment();
    let container = container(&deployment);
    let settings = Pod::from_deployment().settings();
    let port = &container["ports"][0];
    assert_eq!(
        port["containerPort"].as_u64(),
        Some(settings.server.port as u64)
    );
    let named = port["name"].as_str().unwrap();

    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe}");
        assert_eq!(get["port"], named, "{probe}");
    }
    // Routes attrsync documents and serves.
    let doc = attrsync::http::openapi::ApiDoc::openapi();
    for path in ["/healthz", "/readyz"] {
        assert!(
            doc.paths.paths.get(path).is_some_and(|p| p.get.is_some()),
            "GET {path} is in the OpenAPI document"
        );
    }
    let app = spawn_app().await;
    for path in ["/healthz", "/readyz"] {
        assert_eq!(app.get(path).await.status(), 200, "GET {path}");
    }
}

#[test]
fn the_grace_period_outlasts_prestop_in_flight_requests_and_the_drain() {
    let deployment = deployment();
    let spec = &deployment["spec"]["template"]["spec"];
    let container = container(&deployment);
    let settings = Pod::from_deployment().settings();
    let command: Vec<&str> = container["lifecycle"]["preStop"]["exec"]["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let pre_stop: u64 = match command.as_slice() {
        ["sleep", secs] => secs.parse().unwrap(),
        other => panic!("preStop is a sleep: {other:?}"),
    };
    let drain =
        settings.server.request_timeout_ms.div_ceil(1000) + settings.server.shutdown_grace_secs;
    let grace = spec["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(
        grace > pre_stop + drain,
        "terminationGracePeriodSeconds {grace} must exceed preStop {pre_stop} s + {drain} s of drain"
    );
}

#[test]
fn the_pod_runs_as_the_images_non_root_user_with_a_read_only_root_filesystem() {
    let dockerfile = read("Dockerfile");
    let user = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("the Dockerfile sets USER");
    let (uid, gid) = user.trim().split_once(':').expect("USER uid:gid");
    let deployment = deployment();
    let pod = &deployment["spec"]["template"]["spec"]["securityContext"];
    assert_eq!(pod["runAsNonRoot"], true);
    assert_eq!(pod["runAsUser"].as_u64().unwrap().to_string(), uid);
    assert_eq!(pod["runAsGroup"].as_u64().unwrap().to_string(), gid);
    let container = container(&deployment);
    let security = &container["securityContext"];
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["capabilities"]["drop"][0], "ALL");
    // Nothing to write to, then: the queue is in PostgreSQL, not in the image's /app/data.
    assert!(container
        .get("volumeMounts")
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["readOnly"] == true));
    assert_eq!(
        deployment["spec"]["template"]["spec"]["automountServiceAccountToken"],
        false
    );
}

#[test]
fn the_memory_request_covers_the_benchmarks_peak_rss_and_the_limit_leaves_headroom() {
    let peak_mb = readme_peak_rss_mb();
    let resources = &container(&deployment())["resources"];
    let request = mebibytes(resources["requests"]["memory"].as_str().unwrap());
    let limit = mebibytes(resources["limits"]["memory"].as_str().unwrap());
    // MB or MiB, the request covers it.
    assert!(
        request >= peak_mb,
        "memory request {request} Mi is below the benchmark's peak RSS {peak_mb} MB"
    );
    assert!(limit >= 2 * peak_mb, "memory limit {limit} Mi");
    assert!(resources["requests"]["cpu"].is_string());
}

#[test]
fn the_service_and_the_disruption_budget_select_the_pods_and_a_drain_can_proceed() {
    let deployment = deployment();
    let labels = deployment["spec"]["template"]["metadata"]["labels"]
        .as_object()
        .unwrap();
    let matches = |selector: &Value| {
        selector
            .as_object()
            .unwrap()
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
    };
    assert!(matches(&deployment["spec"]["selector"]["matchLabels"]));
    let service = yaml("service.yaml");
    assert!(matches(&service["spec"]["selector"]));
    let container = container(&deployment);
    assert_eq!(
        service["spec"]["ports"][0]["targetPort"],
        container["ports"][0]["name"]
    );
    let budget = yaml("poddisruptionbudget.yaml");
    assert!(matches(&budget["spec"]["selector"]["matchLabels"]));
    let replicas = deployment["spec"]["replicas"].as_u64().unwrap();
    assert!(replicas >= 2, "several replicas");
    let unavailable = budget["spec"]["maxUnavailable"].as_u64().unwrap();
    assert!(
        (1..replicas).contains(&unavailable),
        "a drain may evict one pod and never all: maxUnavailable {unavailable}"
    );
    assert_eq!(
        deployment["spec"]["template"]["spec"]["serviceAccountName"],
        yaml("serviceaccount.yaml")["metadata"]["name"]
    );
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// Where an environment variable's value comes from.
#[derive(Debug)]
enum EnvSource {
    Literal(String),
    /// A `*_FILE` variable naming a file of the Secret volume (the item's key).
    SecretFile(String),
    SecretKeyRef(String),
}

struct Pod {
    env: BTreeMap<String, EnvSource>,
    /// Secret volume items: mounted path -> key.
    secret_items: BTreeMap<String, String>,
}

impl Pod {
    fn from_deployment() -> Pod {
        let deployment = deployment();
        let spec = &deployment["spec"]["template"]["spec"];
        let container = container(&deployment);
        let secret_volumes: BTreeMap<&str, &Value> = spec["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v.get("secret").is_some())
            .map(|v| (v["name"].as_str().unwrap(), &v["secret"]))
            .collect();
        let mut secret_items = BTreeMap::new();
        for mount in container["volumeMounts"].as_array().unwrap() {
            let Some(secret) = secret_volumes.get(mount["name"].as_str().unwrap()) else {
                continue;
            };
            let dir = mount["mountPath"].as_str().unwrap();
            for item in secret["items"]
                .as_array()
                .expect("the Secret volume lists its items")
            {
                secret_items.insert(
                    format!("{dir}/{}", item["path"].as_str().unwrap()),
                    item["key"].as_str().unwrap().to_owned(),
                );
            }
        }
        let mut env = BTreeMap::new();
        for var in container["env"].as_array().unwrap() {
            let name = var["name"].as_str().unwrap().to_owned();
            let source = if let Some(value) = var.get("value") {
                let value = value.as_str().expect("env values are strings").to_owned();
                if name.ends_with("_FILE") {
                    let key = secret_items
                        .get(&value)
                        .unwrap_or_else(|| panic!("{name}={value} is not a file of the Secret"));
                    EnvSource::SecretFile(key.clone())
                } else {
                    EnvSource::Literal(value)
                }
            } else if let Some(key) = var["valueFrom"].get("secretKeyRef") {
                EnvSource::SecretKeyRef(key["key"].as_str().unwrap().to_owned())
            } else {
                panic!("{name}: a value, a Secret file or a secretKeyRef: {var}");
            };
            env.insert(name, source);
        }
        Pod { env, secret_items }
    }

    /// The configuration this pod starts with: each Secret key stands for a file holding a
    /// made-up value.
    fn settings(&self) -> Settings {
        let dir = tempfile::tempdir().unwrap();
        let mut env = Vec::new();
        for (name, source) in &self.env {
            let value = match source {
                EnvSource::Literal(value) => value.clone(),
                EnvSource::SecretKeyRef(key) => secret_value(key),
                EnvSource::SecretFile(key) => {
                    let path = dir.path().join(key);
                    std::fs::write(&path, secret_value(key)).unwrap();
                    path.display().to_string()
                }
            };
            env.push((name.clone(), value));
        }
        Settings::load_from(None, &env).unwrap_or_else(|e| {
            panic!("the manifest's environment is not a valid configuration: {e}")
        })
    }
}

/// A made-up value that passes validation for the secret `key`.
fn secret_value(key: &str) -> String {
    match key {
        "postgres-url" => "postgres://attrsync:pw@postgres:5432/attrsync".to_owned(),
        "cti-signing-secret" => "whsec_YXR0cnN5bmMtazhzLXRlc3Qtc2lnbmluZy1zZWNyZXQ=".to_owned(),
        other => format!("k8s-test-{other}"),
    }
}

fn collect_redacted(table: &toml::Table, prefix: &str, out: &mut BTreeSet<String>) {
    for (key, value) in table {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::Table(t) => collect_redacted(t, &path, out),
            toml::Value::String(s) if s == "[redacted]" => {
                out.insert(path);
            }
            toml::Value::Array(items)
                if !items.is_empty() && items.iter().all(|i| i.as_str() == Some("[redacted]")) =>
            {
                out.insert(path);
            }
            _ => {}
        }
    }
}

/// The environment variable that sets `key`.
fn variable_for(key: &str) -> String {
    GENESYS_SETTINGS
        .iter()
        .find(|(_, k)| *k == key)
        .map(|(v, _)| (*v).to_owned())
        .unwrap_or_else(|| format!("ATTRSYNC_{}", key.replace('.', "__").to_ascii_uppercase()))
}

/// The largest figure in the README benchmark table's "peak RSS" column, in MB.
fn readme_peak_rss_mb() -> u64 {
    let readme = read("README.md");
    let mut lines = readme.lines();
    let header = lines
        .find(|l| l.starts_with('|') && l.contains("peak RSS"))
        .expect("the README's benchmark table");
    let column = header
        .split('|')
        .position(|c| c.trim() == "peak RSS")
        .unwrap();
    let mut peak = 0;
    for row in lines.skip(1).take_while(|l| l.starts_with('|')) {
        let cell = row.split('|').nth(column).unwrap_or_default();
        for (at, _) in cell.match_indices(" MB") {
            let digits: String = cell[..at]
                .chars()
                .rev()
                .take_while(char::is_ascii_digit)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            if let Ok(mb) = digits.parse::<u64>() {
                peak = peak.max(mb);
            }
        }
    }
    assert!(peak > 0, "no peak RSS figures in the README");
    peak
}

fn mebibytes(quantity: &str) -> u64 {
    if let Some(mi) = quantity.strip_suffix("Mi") {
        mi.parse().unwrap()
    } else if let Some(gi) = quantity.strip_suffix("Gi") {
        gi.parse::<u64>().unwrap() * 1024
    } else {
        panic!("memory in Mi or Gi: {quantity}")
    }
}

fn deployment() -> Value {
    yaml("deployment.yaml")
}

fn container(deployment: &Value) -> Value {
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 1);
    containers[0].clone()
}

fn yaml(file: &str) -> Value {
    let text = read(&format!("{DIR}/{file}"));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{DIR}/{file}: {e}"))
}
