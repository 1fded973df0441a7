//! docker-compose.yml and the Prometheus configuration it mounts.

use super::*;

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
