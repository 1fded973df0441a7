//! The Grafana dashboard: its datasource, and every metric it queries is one attrsync exports.

use super::*;

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
