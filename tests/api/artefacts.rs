//! The deployment and Genesys-side artefacts, checked against the code they configure: the
//! Dockerfile, docker-compose.yml, deploy/ (Prometheus, Grafana) and genesys/ (the data action,
//! its Terraform twin, the EventBridge rule). None of them can be exercised here for real (no
//! Docker engine, no Genesys org, no AWS account), so each test pins what would break them:
//! a setting attrsync does not read, a path that is not there, a metric that does not exist,
//! a data-action field `/v1/lookup` does not return.
//!
//! YAML is read with a small line-based parser (block style only, which is all these files use),
//! so no YAML crate is needed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use attrsync::config::Settings;
use attrsync::simulator::{Fault, Op};
use serde_json::{json, Value};

use crate::helpers::{as_voice_call_from, eventbridge_start, json_body, spawn_app, TestApp};

/// Ada Lovelace in config/customers.json, stored there as "(317) 555-0125".
const KNOWN_ANI: &str = "tel:+13175550125";
/// Nobody in config/customers.json.
const UNKNOWN_ANI: &str = "tel:+19995550000";

/// The plain Genesys variables attrsync reads besides `ATTRSYNC_*` (config/default.toml, layer 4).
const GENESYS_VARIABLES: &[&str] = &[
    "GENESYS_CLIENT_ID",
    "GENESYS_CLIENT_SECRET",
    "GENESYS_REGION",
    "GENESYS_API_URL",
    "GENESYS_LOGIN_URL",
];

const DATA_ACTION: &str = "genesys/data-action-attrsync-lookup.json";

// ---------------------------------------------------------------------------------------------
// Docker

#[test]
fn the_dockerfile_has_a_healthcheck_on_healthz_a_non_root_user_a_stop_signal_and_exposes_8080() {
    let instructions = dockerfile();
    let last = |name: &str| -> String {
        instructions
            .iter()
            .rev()
            .find(|(i, _)| i == name)
            .map(|(_, args)| args.clone())
            .unwrap_or_else(|| panic!("the Dockerfile has no {name}"))
    };

    let healthcheck = last("HEALTHCHECK");
    assert!(healthcheck.contains("/healthz"), "{healthcheck}");
    // Exec form, so that it needs no /bin/sh features; the port it falls back to is attrsync's.
    let command = healthcheck
        .split_once("CMD ")
        .map(|(_, c)| c.trim())
        .expect("HEALTHCHECK ... CMD [...]");
    let argv: Vec<String> = serde_json::from_str(command).expect("exec-form HEALTHCHECK CMD");
    let port = default_toml()["server"]["port"].as_integer().unwrap();
    assert!(
        argv.join(" ")
            .contains(&format!("${{ATTRSYNC_SERVER__PORT:-{port}}}")),
        "{argv:?}"
    );

    let user = last("USER");
    let name = user.split(':').next().unwrap_or_default().trim();
    assert!(
        !name.is_empty() && name != "root" && name != "0",
        "USER {user}"
    );
    assert_eq!(last("STOPSIGNAL"), "SIGTERM");
    assert!(
        last("EXPOSE").split_whitespace().any(|p| p == "8080"),
        "EXPOSE {}",
        last("EXPOSE")
    );
    assert_eq!(last("WORKDIR"), "/app");
    assert_eq!(last("ENTRYPOINT"), r#"["attrsync"]"#);
    assert_eq!(last("CMD"), r#"["serve"]"#);
    assert!(
        last("FROM").starts_with("debian:bookworm-slim"),
        "{}",
        last("FROM")
    );
}

#[test]
fn every_environment_variable_the_dockerfile_sets_is_a_setting_attrsync_reads() {
    let env: Vec<String> = dockerfile()
        .into_iter()
        .filter(|(i, _)| i == "ENV")
        .flat_map(|(_, args)| {
            args.split_whitespace()
                .filter_map(|pair| pair.split_once('=').map(|(k, _)| k.to_owned()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(env.contains(&"ATTRSYNC_SERVER__HOST".to_owned()), "{env:?}");
    assert!(
        env.contains(&"ATTRSYNC_TELEMETRY__LOG_FORMAT".to_owned()),
        "{env:?}"
    );
    for name in &env {
        assert_is_a_setting(name, "the Dockerfile");
    }
}

#[test]
fn the_dockerfile_stub_build_covers_every_target_cargo_toml_declares() {
    // The dependency layer builds Cargo.toml with stub src/main.rs and src/lib.rs only: a build
    // script or an explicit [[test]]/[[bench]]/[[example]] path would not be there.
    let manifest: toml::Table = read("Cargo.toml").parse().expect("Cargo.toml");
    for kind in ["test", "bench", "example"] {
        assert!(
            manifest.get(kind).is_none(),
            "Cargo.toml declares [[{kind}]]: create its file in the Dockerfile's stub step too"
        );
    }
    assert!(
        manifest["package"].get("build").is_none(),
        "Cargo.toml has a build script: copy it before the Dockerfile's stub build"
    );
    let bins = manifest["bin"].as_array().expect("[[bin]]");
    for bin in bins {
        assert_eq!(bin["path"].as_str(), Some("src/main.rs"), "{bin:?}");
    }
    assert_eq!(manifest["lib"]["path"].as_str(), Some("src/lib.rs"));
}

#[test]
fn the_dockerfile_copies_the_manifest_of_every_workspace_member() {
    // cargo resolves the whole workspace even for `--bin attrsync`: a member whose manifest is
    // missing from the build stage fails the image build.
    let manifest: toml::Table = read("Cargo.toml").parse().expect("Cargo.toml");
    let members = manifest["workspace"]["members"]
        .as_array()
        .expect("[workspace] members");
    let copied: Vec<String> = dockerfile()
        .into_iter()
        .filter(|(instruction, args)| instruction == "COPY" && !args.contains("--from="))
        .map(|(_, args)| args)
        .collect();
    for member in members {
        let member = member.as_str().expect("a member path");
        let wanted = format!("{member}/Cargo.toml");
        assert!(
            copied
                .iter()
                .any(|args| args.split_whitespace().any(|a| a == wanted)),
            "the Dockerfile does not copy {wanted}"
        );
        let stub = format!("{member}/src/main.rs");
        assert!(
            dockerfile()
                .iter()
                .any(|(i, args)| i == "RUN" && args.contains(&stub)),
            "the Dockerfile's stub step does not create {stub}"
        );
    }
}

#[test]
fn every_path_the_dockerfile_copies_and_compose_mounts_exists_in_the_repo() {
    let ignored = dockerignore();
    let mut copied = Vec::new();
    for (instruction, args) in dockerfile() {
        if instruction != "COPY" || args.contains("--from=") {
            continue;
        }
        let parts: Vec<&str> = args
            .split_whitespace()
            .filter(|a| !a.starts_with("--"))
            .collect();
        let (_destination, sources) = parts.split_last().expect("COPY <src>... <dest>");
        for source in sources {
            copied.push(source.to_string());
            assert!(
                repo().join(source).exists(),
                "the Dockerfile copies {source}, which is not in the repository"
            );
            let path = source.trim_end_matches('/');
            assert!(
                !ignored.iter().any(|p| path == p || path.starts_with(&format!("{p}/"))),
                "the Dockerfile copies {source}, which .dockerignore leaves out of the build context"
            );
        }
    }
    for needed in ["Cargo.toml", "Cargo.lock", "src/", "config/"] {
        assert!(copied.iter().any(|c| c == needed), "{copied:?}");
    }
    // Whatever the sources read at compile time (config/default.toml, say) must be copied into
    // the build stage, and so be in the build context.
    let under = |path: &str, dirs: &[String]| {
        dirs.iter().any(|d| {
            let d = d.trim_end_matches('/');
            path == d || path.starts_with(&format!("{d}/"))
        })
    };
    for file in rust_files(&repo().join("src")) {
        let text = std::fs::read_to_string(&file).unwrap();
        // Unit tests (conventionally the `#[cfg(test)]` module at the end) are not in the image.
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (embedded, relative_to) in embedded_paths(text) {
            let base = match relative_to {
                Base::File => file.parent().unwrap().to_path_buf(),
                Base::Manifest => repo(),
            };
            let target = normalise(&base.join(&embedded));
            let relative = target.strip_prefix(repo()).unwrap_or(&target);
            let relative = relative.to_string_lossy();
            assert!(
                under(&relative, &copied),
                "{} reads {embedded} at compile time; the Dockerfile does not copy it",
                file.display()
            );
            assert!(
                !under(&relative, &ignored),
                "{} reads {embedded} at compile time; .dockerignore leaves it out",
                file.display()
            );
        }
    }

    let compose = compose();
    let mut mounted = 0;
    for service in &child(&compose, "services").children {
        let Some(volumes) = service.children.iter().find(|n| n.key == "volumes") else {
            continue;
        };
        for volume in &volumes.children {
            let spec = unquote(&volume.value);
            let host = spec.split(':').next().unwrap();
            if host.starts_with("./") || host.starts_with("../") {
                mounted += 1;
                assert!(
                    repo().join(host).exists(),
                    "service {} mounts {host}, which is not in the repository",
                    service.key
                );
            }
        }
    }
    assert!(
        mounted >= 4,
        "prometheus.yml, two provisioning folders and the dashboards"
    );
}

// ---------------------------------------------------------------------------------------------
// docker-compose.yml

#[test]
fn the_compose_file_runs_attrsync_the_simulator_prometheus_and_grafana_and_publishes_8080() {
    let compose = compose();
    let services = child(&compose, "services");
    let names: BTreeSet<&str> = services.children.iter().map(|s| s.key.as_str()).collect();
    for name in ["attrsync", "genesys-sim", "prometheus", "grafana"] {
        assert!(names.contains(name), "services: {names:?}");
    }

    let attrsync = child(services, "attrsync");
    let ports: Vec<String> = child(attrsync, "ports")
        .children
        .iter()
        .map(|p| unquote(&p.value))
        .collect();
    assert!(ports.iter().any(|p| p == "8080:8080"), "{ports:?}");
    let healthcheck = child(child(attrsync, "healthcheck"), "test").value.clone();
    assert!(healthcheck.contains("/healthz"), "{healthcheck}");
    assert!(
        child(attrsync, "depends_on")
            .children
            .iter()
            .any(|d| d.key == "genesys-sim" || d.value == "genesys-sim"),
        "attrsync waits for the simulator"
    );

    // The simulator listens where attrsync is told to find Genesys.
    let sim = child(services, "genesys-sim");
    let command = child(sim, "command").value.clone();
    assert!(command.contains("simulate-genesys"), "{command}");
    assert!(command.contains("0.0.0.0:9100"), "{command}");
    let env = compose_environment(attrsync);
    assert_eq!(env["GENESYS_API_URL"], "http://genesys-sim:9100");
    assert_eq!(env["GENESYS_LOGIN_URL"], "http://genesys-sim:9100");

    // Compose must wait longer than attrsync takes to drain: in-flight requests, then the queue.
    let settings = settings_from(&env);
    let drain_secs =
        settings.server.request_timeout_ms.div_ceil(1000) + settings.server.shutdown_grace_secs;
    let grace = child(attrsync, "stop_grace_period").value.clone();
    let grace_secs: u64 = grace
        .strip_suffix('s')
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("stop_grace_period in seconds, e.g. 35s: {grace}"));
    assert!(
        grace_secs > drain_secs,
        "stop_grace_period {grace_secs}s must exceed the {drain_secs}s attrsync may take to stop"
    );
}

#[test]
fn every_variable_compose_sets_for_attrsync_is_a_genesys_variable_or_an_attrsync_setting() {
    let compose = compose();
    let attrsync = child(child(&compose, "services"), "attrsync");
    let env = compose_environment(attrsync);
    assert!(!env.is_empty());
    for name in env.keys() {
        assert_is_a_setting(name, "docker-compose.yml");
    }

    // And together they are a configuration attrsync starts with, pointed at the simulator with
    // the simulator's default client.
    let settings = settings_from(&env);
    assert_eq!(
        settings
            .genesys
            .api_url()
            .unwrap()
            .as_str()
            .trim_end_matches('/'),
        "http://genesys-sim:9100"
    );
    let defaults = attrsync::simulator::GenesysSimConfig::default();
    assert_eq!(env["GENESYS_CLIENT_ID"], defaults.client_id);
    assert_eq!(env["GENESYS_CLIENT_SECRET"], defaults.client_secret);
}

#[test]
fn prometheus_scrapes_attrsync_and_grafana_reads_that_prometheus() {
    let prometheus = parse_yaml(&read("deploy/prometheus/prometheus.yml"));
    let targets = find(&prometheus, "targets").expect("static_configs targets");
    assert!(
        targets.value.contains("\"attrsync:8080\""),
        "{}",
        targets.value
    );
    assert_eq!(
        find(&prometheus, "metrics_path").map(|n| n.value.as_str()),
        Some("/metrics")
    );
    assert_eq!(
        find(&prometheus, "scrape_interval").map(|n| n.value.as_str()),
        Some("5s")
    );

    let datasources = parse_yaml(&read(
        "deploy/grafana/provisioning/datasources/prometheus.yml",
    ));
    assert_eq!(
        find(&datasources, "url").map(|n| n.value.as_str()),
        Some("http://prometheus:9090")
    );

    // The dashboards provider reads the folder compose mounts the dashboard JSON into.
    let providers = parse_yaml(&read("deploy/grafana/provisioning/dashboards/attrsync.yml"));
    let path = find(&providers, "path")
        .expect("options.path")
        .value
        .clone();
    let compose = compose();
    let grafana = child(child(&compose, "services"), "grafana");
    let mounts: Vec<String> = child(grafana, "volumes")
        .children
        .iter()
        .map(|v| unquote(&v.value))
        .collect();
    let host = mounts
        .iter()
        .find_map(|m| {
            let mut parts = m.split(':');
            let host = parts.next()?;
            (parts.next()? == path).then(|| host.to_owned())
        })
        .unwrap_or_else(|| panic!("no volume mounts onto {path}: {mounts:?}"));
    assert!(repo().join(&host).join("attrsync.json").exists());
    let home = compose_environment(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"].clone();
    assert_eq!(home, format!("{path}/attrsync.json"));
}

// ---------------------------------------------------------------------------------------------
// Grafana

#[test]
fn the_dashboard_uses_the_provisioned_prometheus_datasource_everywhere() {
    let provisioned = parse_yaml(&read(
        "deploy/grafana/provisioning/datasources/prometheus.yml",
    ));
    let uid = find(&provisioned, "uid")
        .expect("datasource uid")
        .value
        .clone();
    let dashboard = read_json("deploy/grafana/dashboards/attrsync.json");
    let schema = dashboard["schemaVersion"].as_u64().unwrap();
    assert!((36..=41).contains(&schema), "schemaVersion {schema}");

    let mut ids = BTreeSet::new();
    let mut queries = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        assert!(
            ids.insert(panel["id"].as_u64().unwrap()),
            "duplicate id: {panel}"
        );
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(
            panel["datasource"]["uid"],
            uid.as_str(),
            "{}",
            panel["title"]
        );
        for target in panel["targets"].as_array().unwrap() {
            assert_eq!(
                target["datasource"]["uid"],
                uid.as_str(),
                "{}",
                panel["title"]
            );
            assert_eq!(target["datasource"]["type"], "prometheus");
            queries += 1;
        }
    }
    assert!(queries > 10);
}

#[tokio::test]
async fn every_metric_the_grafana_dashboard_queries_is_in_the_metrics_attrsync_exports() {
    let names = dashboard_metric_names();
    for expected in [
        "attrsync_events_total",
        "attrsync_pipeline_duration_seconds",
        "attrsync_http_request_duration_seconds",
        "attrsync_upstream_requests_total",
        "attrsync_upstream_rate_limited_total",
        "attrsync_crm_cache_lookups_total",
        "attrsync_genesys_token_fetches_total",
        "attrsync_queue_depth",
        "attrsync_lookup_results_total",
    ] {
        assert!(
            names.contains(expected),
            "the dashboard has no {expected} panel"
        );
    }
    let catalogue: BTreeSet<&str> = attrsync::metrics::CATALOGUE
        .iter()
        .map(|metric| metric.name)
        .collect();
    for name in &names {
        assert!(
            catalogue.contains(name.as_str()),
            "{name} is not an attrsync metric"
        );
    }

    // One event whose PATCH meets a 429 first (a retry), and one data-action lookup, so that
    // every series the dashboard draws has been recorded at least once.
    let app = spawn_app().await;
    app.genesys.push_fault(
        Op::PatchAttributes,
        Fault::TooManyRequests {
            retry_after_secs: 0,
        },
    );
    let call = app.new_voice_call(KNOWN_ANI);
    let response = app
        .post_genesys_event(&as_voice_call_from(eventbridge_start(&call), KNOWN_ANI))
        .await;
    assert_eq!(response.status(), 202);
    app.settle().await;
    assert_eq!(app.customer_patches(&call).len(), 1);
    let response = app.post_lookup(&json!({ "ani": KNOWN_ANI })).await;
    assert_eq!(response.status(), 200);

    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let exported = exported_metric_names(&text);
    for name in &names {
        assert!(
            exported.contains(name),
            "the dashboard queries {name}, which /metrics does not show:\n{text}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The data action

#[test]
fn the_data_action_has_the_shape_genesys_cloud_imports() {
    let action = read_json(DATA_ACTION);
    assert_eq!(action["integrationType"], "custom-rest-actions");
    assert_eq!(action["actionType"], "custom");
    assert_eq!(action["secure"], false);
    let request = &action["config"]["request"];
    assert_eq!(request["requestType"], "POST");
    assert_eq!(
        request["requestUrlTemplate"],
        "https://YOUR-ATTRSYNC-HOST/v1/lookup"
    );
    assert_eq!(request["headers"]["Content-Type"], "application/json");
    let input = &action["contract"]["input"]["inputSchema"];
    let output = &action["contract"]["output"]["successSchema"];
    for schema in [input, output] {
        assert_eq!(schema["type"], "object");
        for (name, property) in schema["properties"].as_object().unwrap() {
            assert_eq!(property["type"], "string", "{name}: flat strings only");
        }
    }
    let required: BTreeSet<&str> = input["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(required, BTreeSet::from(["ani", "conversationId"]));

    // The action must wait longer than attrsync takes to answer (it answers "timeout" itself at
    // lookup.deadline_ms), or the flow takes the Timeout path with no answer at all.
    let timeout_ms = action["config"]["timeoutSeconds"].as_u64().unwrap() * 1000;
    let deadline_ms = default_toml()["lookup"]["deadline_ms"]
        .as_integer()
        .unwrap() as u64;
    assert!(
        timeout_ms > deadline_ms,
        "timeoutSeconds {timeout_ms} ms vs lookup.deadline_ms {deadline_ms} ms"
    );

    // Every output has a JSONPath and a default, and the success template emits each once.
    let response = &action["config"]["response"];
    let outputs = property_names(output);
    let mapped: BTreeSet<String> = response["translationMap"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let defaulted: BTreeSet<String> = response["translationMapDefaults"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(mapped, outputs);
    assert_eq!(defaulted, outputs);
    for (name, default) in response["translationMapDefaults"].as_object().unwrap() {
        let default: Value = serde_json::from_str(default.as_str().unwrap())
            .unwrap_or_else(|e| panic!("the default of {name} is JSON text: {e}"));
        assert!(default.is_string(), "{name}: {default}");
    }
}

#[tokio::test]
async fn the_data_action_request_template_renders_a_body_lookup_accepts_with_every_input() {
    let app = spawn_app().await;
    let action = read_json(DATA_ACTION);
    let inputs = property_names(&action["contract"]["input"]["inputSchema"]);
    let call = app.new_voice_call(KNOWN_ANI);

    // Every input set, as a flow that has them all would send them.
    let all: BTreeMap<&str, Option<&str>> = BTreeMap::from([
        ("conversationId", Some(call.conversation_id.as_str())),
        ("participantId", Some(call.customer_participant_id.as_str())),
        ("ani", Some(KNOWN_ANI)),
        ("email", Some("ada.lovelace@example.com")),
        ("customerId", Some("C-1001")),
    ]);
    assert_eq!(
        all.keys()
            .map(std::string::ToString::to_string)
            .collect::<BTreeSet<_>>(),
        inputs,
        "this test sets every input of the contract"
    );
    let body = render_request_template(&action, &all);
    assert_eq!(
        body.as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<BTreeSet<_>>(),
        inputs
    );
    let response = app.post_lookup(&body).await;
    assert_eq!(response.status(), 200, "{body}");
    assert_eq!(json_body(response).await["found"], "true");

    // Only the required inputs: the optional ones are not sent by Architect, and the silent
    // Velocity references render them as empty strings, which attrsync ignores.
    let required: BTreeMap<&str, Option<&str>> = BTreeMap::from([
        ("conversationId", Some(call.conversation_id.as_str())),
        ("participantId", None),
        ("ani", Some(KNOWN_ANI)),
        ("email", None),
        ("customerId", None),
    ]);
    let body = render_request_template(&action, &required);
    assert_eq!(body["email"], "");
    let response = app.post_lookup(&body).await;
    assert_eq!(response.status(), 200, "{body}");
    let answer = json_body(response).await;
    assert_eq!(answer["found"], "true", "{answer}");
    assert_eq!(answer["matchedBy"], "phone", "{answer}");
}

#[tokio::test]
async fn lookup_refuses_a_field_outside_the_input_contract() {
    // What makes the previous test meaningful: /v1/lookup would not silently accept a misspelt
    // input name.
    let app = spawn_app().await;
    let response = app
        .post_lookup(&json!({ "ani": KNOWN_ANI, "callerAni": KNOWN_ANI }))
        .await;
    assert_eq!(response.status(), 422);
    assert_eq!(json_body(response).await["field"], "callerAni");
}

#[tokio::test]
async fn every_output_of_the_data_action_is_a_string_lookup_returns_for_a_sample_customer() {
    let app = spawn_app().await;
    let action = read_json(DATA_ACTION);
    let outputs = property_names(&action["contract"]["output"]["successSchema"]);

    let answer = lookup(&app, KNOWN_ANI).await;
    for name in &outputs {
        assert!(
            answer.get(name).is_some_and(Value::is_string),
            "/v1/lookup returns no string {name} for {KNOWN_ANI}: {answer}"
        );
    }

    // What Genesys would hand to the flow: translation map, then success template.
    let result = apply_response_config(&action, &answer);
    assert_eq!(result.as_object().unwrap().len(), outputs.len(), "{result}");
    for name in &outputs {
        assert_eq!(result[name.as_str()], answer[name.as_str()], "{name}");
    }
    assert_eq!(result["found"], "true");
    assert_eq!(result["id"], "C-1001");
    assert_eq!(result["firstName"], "Ada");
    assert_eq!(result["tier"], "gold");
    assert_eq!(result["openCases"], "2");
}

#[tokio::test]
async fn a_caller_the_crm_does_not_know_still_fills_every_output_through_the_defaults() {
    let app = spawn_app().await;
    let action = read_json(DATA_ACTION);
    let outputs = property_names(&action["contract"]["output"]["successSchema"]);

    let answer = lookup(&app, UNKNOWN_ANI).await;
    assert!(answer.get("firstName").is_none(), "{answer}");

    let result = apply_response_config(&action, &answer);
    for name in &outputs {
        assert!(result[name.as_str()].is_string(), "{name}: {result}");
    }
    assert_eq!(result["found"], "false");
    assert_eq!(result["reason"], "not_found");
    assert_eq!(result["firstName"], "");
}

// ---------------------------------------------------------------------------------------------
// Terraform

#[test]
fn the_terraform_action_is_the_json_action() {
    let main_tf = read("genesys/terraform/main.tf");
    let code = without_comments(&main_tf);
    let compact: String = code.chars().filter(|c| !c.is_whitespace()).collect();

    // The resource reads the very JSON that the UI imports...
    let decode = r#"jsondecode(file("${path.module}/../data-action-attrsync-lookup.json"))"#;
    assert!(compact.contains(&format!("action={decode}")), "{main_tf}");
    let resolved = repo().join("genesys/terraform/../data-action-attrsync-lookup.json");
    assert_eq!(normalise(&resolved), repo().join(DATA_ACTION));

    // ...and takes each part of it from there.
    let resource = block(
        &compact,
        r#"resource"genesyscloud_integration_action""lookup""#,
    );
    for line in [
        "name=local.action.name",
        "secure=local.action.secure",
        "config_timeout_seconds=local.action.config.timeoutSeconds",
        "contract_input=jsonencode(local.action.contract.input.inputSchema)",
        "contract_output=jsonencode(local.action.contract.output.successSchema)",
        "request_url_template=local.lookup_url",
        "request_type=local.action.config.request.requestType",
        "request_template=local.action.config.request.requestTemplate",
        "headers=local.action.config.request.headers",
        "translation_map=local.action.config.response.translationMap",
        "translation_map_defaults=local.action.config.response.translationMapDefaults",
        "success_template=local.action.config.response.successTemplate",
    ] {
        assert!(resource.contains(line), "the action resource lacks {line}");
    }
    // Every path it reads exists in the JSON.
    let action = read_json(DATA_ACTION);
    for reference in code.split("local.action.").skip(1) {
        let path: String = reference
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '_')
            .collect();
        let mut value = &action;
        for segment in path.trim_end_matches('.').split('.') {
            value = value
                .get(segment)
                .unwrap_or_else(|| panic!("main.tf reads local.action.{path}, not in the JSON"));
        }
    }
    // The placeholder host the URL replacement looks for is the JSON's.
    let placeholder = "https://YOUR-ATTRSYNC-HOST";
    assert!(code.contains(&format!("\"{placeholder}\"")));
    assert!(action["config"]["request"]["requestUrlTemplate"]
        .as_str()
        .unwrap()
        .starts_with(placeholder));

    // Basic Auth credentials on a custom REST integration.
    assert!(compact.contains(r#"integration_type="custom-rest-actions""#));
    assert!(compact.contains(r#"credential_type_name="basicAuth""#));
    assert!(compact.contains("basicAuth=genesyscloud_integration_credential.lookup.id"));

    // The role grants the one documented permission attrsync's calls need, nothing more.
    let role = block(&compact, r#"resource"genesyscloud_auth_role""attrsync""#);
    assert_eq!(role.matches("permission_policies{").count(), 1, "{role}");
    assert!(role.contains(r#"domain="conversation""#), "{role}");
    assert!(role.contains(r#"entity_name="communication""#), "{role}");
    assert!(role.contains(r#"action_set=["view"]"#), "{role}");
    assert!(!role.contains("permissions="), "{role}");
    let client = block(&compact, r#"resource"genesyscloud_oauth_client""attrsync""#);
    assert!(client.contains(r#"authorized_grant_type="CLIENT-CREDENTIALS""#));
}

#[test]
fn the_terraform_credentials_match_what_attrsync_expects() {
    // When attrsync authenticates lookups and Genesys events, the Terraform defaults must be
    // its defaults: the Basic user name and the API-key header.
    let defaults = default_toml();
    let variables = read("genesys/terraform/variables.tf");
    if let Some(user) = defaults
        .get("auth")
        .and_then(|a| a.get("lookup"))
        .and_then(|l| l.get("basic_username"))
        .and_then(|u| u.as_str())
    {
        assert_eq!(
            variable_default(&variables, "lookup_basic_auth_username").as_deref(),
            Some(user)
        );
    }
    let variables = read("genesys/eventbridge/variables.tf");
    if let Some(header) = defaults
        .get("auth")
        .and_then(|a| a.get("genesys"))
        .and_then(|l| l.get("api_key_header"))
        .and_then(|u| u.as_str())
    {
        assert_eq!(
            variable_default(&variables, "api_key_header").as_deref(),
            Some(header)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// EventBridge

#[test]
fn the_eventbridge_rule_matches_the_official_customer_start_sample_and_nothing_else() {
    let pattern = read_json("genesys/eventbridge/event-pattern.json");
    let start = read_json("tests/fixtures/eventbridge-customer-start.json");
    let end = read_json("tests/fixtures/eventbridge-customer-end.json");
    assert!(event_matches(&pattern, &start), "{pattern} vs {start}");
    assert!(!event_matches(&pattern, &end));
    let mut other_source = start.clone();
    other_source["source"] = json!("aws.partner/example.com/events");
    assert!(!event_matches(&pattern, &other_source));

    let main_tf = without_comments(&read("genesys/eventbridge/main.tf"));
    let compact: String = main_tf.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(compact.contains(r#"event_pattern=file("${path.module}/event-pattern.json")"#));
    let target = block(
        &compact,
        r#"resource"aws_cloudwatch_event_target""attrsync""#,
    );
    for part in [
        "arn=aws_cloudwatch_event_api_destination.attrsync.arn",
        "role_arn=",
        "retry_policy{",
        "maximum_event_age_in_seconds=",
        "maximum_retry_attempts=",
        "dead_letter_config{",
    ] {
        assert!(
            target.contains(part),
            "the rule target lacks {part}: {target}"
        );
    }
    let destination = block(
        &compact,
        r#"resource"aws_cloudwatch_event_api_destination""attrsync""#,
    );
    assert!(destination.contains(r#"http_method="POST""#));
    assert!(compact.contains(r#"authorization_type="API_KEY""#));
}

// ---------------------------------------------------------------------------------------------
// Helpers: files

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo().join(relative))
        .unwrap_or_else(|e| panic!("read {relative}: {e}"))
}

fn read_json(relative: &str) -> Value {
    serde_json::from_str(&read(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

fn default_toml() -> toml::Table {
    read("config/default.toml")
        .parse()
        .expect("config/default.toml")
}

/// Resolves `.` and `..` without touching the file system.
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// What a compile-time path is relative to.
#[derive(Clone, Copy)]
enum Base {
    /// `include_str!`, `include_bytes!`: the file that names it.
    File,
    /// `sqlx::migrate!`: the crate root.
    Manifest,
}

/// The files and folders the sources read at compile time: `include_str!("...")`,
/// `include_bytes!("...")`, `migrate!("...")` (`migrate!()` reads `migrations/`).
fn embedded_paths(source: &str) -> Vec<(String, Base)> {
    let mut paths = Vec::new();
    for (marker, base) in [
        ("include_str!(\"", Base::File),
        ("include_bytes!(\"", Base::File),
        ("migrate!(\"", Base::Manifest),
    ] {
        for rest in source.split(marker).skip(1) {
            if let Some((path, _)) = rest.split_once('"') {
                paths.push((path.to_owned(), base));
            }
        }
    }
    if source.contains("migrate!()") {
        paths.push(("migrations".to_owned(), Base::Manifest));
    }
    paths
}

/// The Dockerfile as (INSTRUCTION, arguments), continuation lines joined, comments dropped.
fn dockerfile() -> Vec<(String, String)> {
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in read("Dockerfile").lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part.trim_end());
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                let (instruction, args) = current.split_once(' ').unwrap_or((current.as_str(), ""));
                instructions.push((instruction.to_ascii_uppercase(), args.trim().to_owned()));
                current.clear();
            }
        }
    }
    instructions
}

/// The .dockerignore entries, without trailing slashes.
fn dockerignore() -> Vec<String> {
    read(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_end_matches('/').to_owned())
        .collect()
}

fn without_comments(hcl: &str) -> String {
    hcl.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The `{ ... }` body that follows `header` in whitespace-free HCL.
fn block<'a>(compact: &'a str, header: &str) -> &'a str {
    let start = compact
        .find(&format!("{header}{{"))
        .unwrap_or_else(|| panic!("no {header} block"))
        + header.len();
    let mut depth = 0;
    for (i, c) in compact[start..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return &compact[start..start + i + 1];
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced braces after {header}")
}

/// `default = "..."` of `variable "name"` in a variables.tf.
fn variable_default(variables: &str, name: &str) -> Option<String> {
    let compact: String = without_comments(variables)
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let body = block(&compact, &format!("variable\"{name}\""));
    let rest = body.split_once("default=\"")?.1;
    Some(rest.split_once('"')?.0.to_owned())
}

// ---------------------------------------------------------------------------------------------
// Helpers: settings

/// Panics unless `name` is one of the plain Genesys variables or `ATTRSYNC_<SECTION>__<KEY>`
/// naming a key of config/default.toml (a table that is empty there, such as
/// `crm.http.templates`, takes any key below it).
fn assert_is_a_setting(name: &str, origin: &str) {
    if name.starts_with("GENESYS_") {
        let base = name.strip_suffix("_FILE").unwrap_or(name);
        assert!(
            GENESYS_VARIABLES.contains(&base),
            "{origin} sets {name}, which attrsync does not read"
        );
        return;
    }
    let rest = name
        .strip_prefix("ATTRSYNC_")
        .unwrap_or_else(|| panic!("{origin} sets {name}: neither GENESYS_* nor ATTRSYNC_*"));
    let rest = rest.strip_suffix("_FILE").unwrap_or(rest);
    let defaults = default_toml();
    let mut table = &defaults;
    let segments: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
    for (i, segment) in segments.iter().enumerate() {
        let value = table.get(segment).unwrap_or_else(|| {
            panic!(
                "{origin} sets {name}, but config/default.toml has no {}",
                segments[..=i].join(".")
            )
        });
        match value {
            toml::Value::Table(t) if t.is_empty() => return,
            toml::Value::Table(t) => table = t,
            _ => {
                assert_eq!(
                    i,
                    segments.len() - 1,
                    "{origin} sets {name}, but {} is not a table",
                    segments[..=i].join(".")
                );
                return;
            }
        }
    }
    panic!("{origin} sets {name}, a whole section rather than a key");
}

fn settings_from(env: &BTreeMap<String, String>) -> Settings {
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    Settings::load_from(None, &env)
        .unwrap_or_else(|e| panic!("this environment is not a valid configuration: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Helpers: YAML (block style) and compose

/// One line of block-style YAML with the lines indented below it: `key: value`, `key:` or
/// `- item` (key "-").
#[derive(Debug)]
struct Node {
    key: String,
    value: String,
    children: Vec<Node>,
}

fn parse_yaml(text: &str) -> Vec<Node> {
    let lines: Vec<(usize, &str)> = text
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            !t.is_empty() && !t.starts_with('#')
        })
        .map(|l| (l.len() - l.trim_start().len(), l.trim()))
        .collect();
    let mut position = 0;
    parse_block(&lines, &mut position, 0)
}

fn parse_block(lines: &[(usize, &str)], position: &mut usize, indent: usize) -> Vec<Node> {
    let mut nodes = Vec::new();
    while let Some(&(line_indent, text)) = lines.get(*position) {
        if line_indent < indent {
            break;
        }
        *position += 1;
        let mut below = match lines.get(*position) {
            Some(&(next, _)) if next > line_indent => parse_block(lines, position, next),
            _ => Vec::new(),
        };
        let node = match text.strip_prefix('-').map(str::trim) {
            // `- key: value` starts a mapping: the item holds it and the lines below it.
            Some(item) => match key_value(item) {
                Some((key, value)) => {
                    below.insert(
                        0,
                        Node {
                            key,
                            value,
                            children: Vec::new(),
                        },
                    );
                    Node {
                        key: "-".to_owned(),
                        value: String::new(),
                        children: below,
                    }
                }
                None => Node {
                    key: "-".to_owned(),
                    value: item.to_owned(),
                    children: below,
                },
            },
            None => {
                let (key, value) = key_value(text).unwrap_or((text.to_owned(), String::new()));
                Node {
                    key,
                    value,
                    children: below,
                }
            }
        };
        nodes.push(node);
    }
    nodes
}

/// `key: value` or `key:`; not a quoted scalar, nor `host:container` (no space after the colon).
fn key_value(text: &str) -> Option<(String, String)> {
    if text.starts_with(['"', '\'', '[', '{']) {
        return None;
    }
    if let Some(key) = text.strip_suffix(':') {
        return Some((key.trim().to_owned(), String::new()));
    }
    let (key, value) = text.split_once(": ")?;
    Some((key.trim().to_owned(), value.trim().to_owned()))
}

/// The first node called `key`, at any depth.
fn find<'a>(nodes: &'a [Node], key: &str) -> Option<&'a Node> {
    nodes.iter().find_map(|n| {
        if n.key == key {
            Some(n)
        } else {
            find(&n.children, key)
        }
    })
}

trait Children {
    fn children(&self) -> &[Node];
}

impl Children for Vec<Node> {
    fn children(&self) -> &[Node] {
        self
    }
}

impl Children for Node {
    fn children(&self) -> &[Node] {
        &self.children
    }
}

fn child<'a>(parent: &'a impl Children, key: &str) -> &'a Node {
    parent
        .children()
        .iter()
        .find(|n| n.key == key)
        .unwrap_or_else(|| panic!("no `{key}:`"))
}

fn unquote(value: &str) -> String {
    let v = value.trim();
    for quote in ['"', '\''] {
        if let Some(inner) = v.strip_prefix(quote).and_then(|v| v.strip_suffix(quote)) {
            return inner.to_owned();
        }
    }
    v.to_owned()
}

fn compose() -> Vec<Node> {
    parse_yaml(&read("docker-compose.yml"))
}

/// A service's `environment:` (map or `- KEY=value` list), with Compose's `${VAR:-default}`
/// resolved to the default, as on a machine without an .env file.
fn compose_environment(service: &Node) -> BTreeMap<String, String> {
    let Some(environment) = service.children.iter().find(|n| n.key == "environment") else {
        return BTreeMap::new();
    };
    environment
        .children
        .iter()
        .map(|n| {
            let (key, value) = if n.key == "-" {
                let item = unquote(&n.value);
                let (k, v) = item.split_once('=').unwrap_or((item.as_str(), ""));
                (k.to_owned(), v.to_owned())
            } else {
                (n.key.clone(), unquote(&n.value))
            };
            (key, interpolate(&value))
        })
        .collect()
}

fn interpolate(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("unclosed ${") + start;
        let expression = &rest[start + 2..end];
        if let Some((_, default)) = expression.split_once(":-") {
            out.push_str(default);
        } else {
            assert!(
                !expression.contains('?'),
                "${{{expression}}} needs a variable from the environment"
            );
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

// ---------------------------------------------------------------------------------------------
// Helpers: metrics

/// The attrsync metric names in the dashboard's queries, histogram suffixes removed.
fn dashboard_metric_names() -> BTreeSet<String> {
    let dashboard = read_json("deploy/grafana/dashboards/attrsync.json");
    let mut names = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            for piece in expr.split("attrsync_").skip(1) {
                let name: String = piece
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                let name = format!("attrsync_{name}");
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| name.strip_suffix(suffix))
                    .unwrap_or(&name)
                    .to_owned();
                names.insert(base);
            }
        }
    }
    names
}

/// The metric names in a Prometheus text exposition, histogram suffixes removed.
fn exported_metric_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let name = l.split(['{', ' ']).next().unwrap_or_default();
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(name)
                .to_owned()
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Helpers: the data action, as Genesys Cloud runs it

fn property_names(schema: &Value) -> BTreeSet<String> {
    schema["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

async fn lookup(app: &TestApp, ani: &str) -> Value {
    let response = app.post_lookup(&json!({ "ani": ani })).await;
    assert_eq!(response.status(), 200);
    json_body(response).await
}

/// Renders the request template the way the data-action service would: each
/// `$!esc.jsonString(${input.name})` becomes the JSON-escaped input, or nothing for an input the
/// flow did not set. Panics on any other Velocity, which this renderer does not know.
fn render_request_template(action: &Value, inputs: &BTreeMap<&str, Option<&str>>) -> Value {
    let template = action["config"]["request"]["requestTemplate"]
        .as_str()
        .unwrap();
    let mut rendered = template.to_owned();
    for (name, value) in inputs {
        let reference = format!("$!esc.jsonString(${{input.{name}}})");
        assert_eq!(
            rendered.matches(&reference).count(),
            1,
            "the request template has {reference} once: {template}"
        );
        let escaped = value
            .map(|v| {
                let quoted = serde_json::to_string(v).unwrap();
                quoted[1..quoted.len() - 1].to_owned()
            })
            .unwrap_or_default();
        rendered = rendered.replace(&reference, &escaped);
    }
    assert!(
        !rendered.contains('$'),
        "Velocity this test does not render: {rendered}"
    );
    serde_json::from_str(&rendered)
        .unwrap_or_else(|e| panic!("the request template renders invalid JSON ({e}): {rendered}"))
}

/// The data-action service's response processing: each translation-map JSONPath (`$.name`)
/// against the raw answer, its default when the path finds nothing, then the success template.
fn apply_response_config(action: &Value, raw: &Value) -> Value {
    let response = &action["config"]["response"];
    let defaults = &response["translationMapDefaults"];
    let mut rendered = response["successTemplate"].as_str().unwrap().to_owned();
    for (name, path) in response["translationMap"].as_object().unwrap() {
        let field = path
            .as_str()
            .and_then(|p| p.strip_prefix("$."))
            .unwrap_or_else(|| panic!("{name}: a JSONPath of the form $.field: {path}"));
        let value = match raw.get(field) {
            Some(v) => serde_json::to_string(v).unwrap(),
            None => defaults[name.as_str()]
                .as_str()
                .unwrap_or_else(|| panic!("{name} has no default"))
                .to_owned(),
        };
        rendered = rendered.replace(&format!("${{{name}}}"), &value);
    }
    assert!(
        !rendered.contains('$'),
        "Velocity this test does not render: {rendered}"
    );
    serde_json::from_str(&rendered)
        .unwrap_or_else(|e| panic!("the success template renders invalid JSON ({e}): {rendered}"))
}

// ---------------------------------------------------------------------------------------------
// Helpers: EventBridge

/// EventBridge pattern matching, for the operators the pattern uses: a list of exact strings or
/// `{"prefix": ...}`, and nested objects.
fn event_matches(pattern: &Value, event: &Value) -> bool {
    pattern.as_object().unwrap().iter().all(|(key, rule)| {
        let Some(value) = event.get(key) else {
            return false;
        };
        match rule {
            Value::Object(_) => event_matches(rule, value),
            Value::Array(options) => options.iter().any(|option| match option {
                Value::String(s) => value.as_str() == Some(s.as_str()),
                Value::Object(o) => match (o.get("prefix"), value.as_str()) {
                    (Some(Value::String(prefix)), Some(v)) => v.starts_with(prefix.as_str()),
                    _ => panic!("unsupported pattern operator {option}"),
                },
                other => panic!("unsupported pattern value {other}"),
            }),
            other => panic!("unsupported pattern rule {other}"),
        }
    })
}
