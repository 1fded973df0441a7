//! The README is the operator's reference: it must name every metric, endpoint and setting the
//! code has, so that adding one without documenting it fails here.

use utoipa::OpenApi as _;

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README.md")
}

#[test]
fn the_readme_documents_every_metric() {
    let readme = readme();
    for metric in attrsync::metrics::CATALOGUE {
        let name = metric.name;
        assert!(
            readme.contains(&format!("`{name}`")),
            "README.md does not document {name}"
        );
    }
}

/// The README's row of a metric in the metrics table.
fn metric_row<'a>(readme: &'a str, name: &str) -> &'a str {
    readme
        .lines()
        .find(|l| l.starts_with(&format!("| `{name}` |")))
        .unwrap_or_else(|| panic!("README.md has no table row for {name}"))
}

#[test]
fn the_readme_gives_each_metric_its_kind_and_labels() {
    use attrsync::metrics::Kind;
    let readme = readme();
    for metric in attrsync::metrics::CATALOGUE {
        let row = metric_row(&readme, metric.name);
        let kind = match metric.kind {
            Kind::Counter => "| counter |",
            Kind::Gauge => "| gauge |",
            Kind::Histogram => "| histogram |",
        };
        assert!(row.contains(kind), "{}: not a {kind} in {row}", metric.name);
        for label in metric.labels {
            assert!(
                row.contains(&format!("`{label}`")),
                "{}: no label {label}",
                metric.name
            );
        }
    }
}

#[test]
fn the_readme_lists_every_value_of_every_closed_label_set() {
    let readme = readme();
    for set in attrsync::app::label_values() {
        let row = metric_row(&readme, set.metric);
        for value in &set.values {
            let listed = row
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .any(|word| word == *value);
            assert!(
                listed,
                "{} {}: README.md does not list {value}",
                set.metric, set.label
            );
        }
    }
}

#[test]
fn every_metric_the_code_emits_is_in_the_catalogue() {
    // Call sites name metrics through the constants of `attrsync::metrics`; a literal name, or a
    // constant missing from the catalogue, fails here.
    let catalogue: Vec<&str> = attrsync::metrics::CATALOGUE
        .iter()
        .map(|m| m.name)
        .collect();
    let mut stack = vec![std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src"
    ))];
    let mut sites = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("src/") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                if !path.ends_with("simulator") {
                    stack.push(path);
                }
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("a source file");
            for macro_name in ["counter!(", "gauge!(", "histogram!("] {
                for (at, _) in text.match_indices(macro_name) {
                    let rest = text[at + macro_name.len()..].trim_start();
                    if rest.starts_with("name")
                        || rest.starts_with("*name")
                        || rest.starts_with("metric.")
                    {
                        continue; // the describe loop in metrics.rs
                    }
                    sites += 1;
                    let arg: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                        .collect();
                    let constant = arg.rsplit("::").next().unwrap_or_default();
                    assert!(
                        !constant.is_empty()
                            && constant.chars().all(|c| c.is_ascii_uppercase() || c == '_'),
                        "{}: a metric named other than by a constant: {}",
                        path.display(),
                        &rest[..rest.len().min(60)]
                    );
                    let metrics_rs = include_str!("../../src/metrics.rs");
                    let value = metrics_rs
                        .lines()
                        .find_map(|l| l.strip_prefix(&format!("pub const {constant}: &str = \"")))
                        .and_then(|v| v.strip_suffix("\";"))
                        .unwrap_or_else(|| panic!("{constant} is not a metric name in metrics.rs"));
                    assert!(
                        catalogue.contains(&value),
                        "{value} is emitted but not in the catalogue"
                    );
                }
            }
        }
    }
    assert!(sites > 20, "found only {sites} call sites");
}

#[test]
fn the_readme_documents_every_endpoint() {
    let readme = readme();
    let doc = attrsync::http::openapi::ApiDoc::openapi();
    for (path, item) in &doc.paths.paths {
        let methods = [
            ("GET", item.get.is_some()),
            ("POST", item.post.is_some()),
            ("PATCH", item.patch.is_some()),
        ];
        for (method, present) in methods {
            if present {
                assert!(
                    readme.contains(&format!("`{method} {path}`")),
                    "README.md does not document {method} {path}"
                );
            }
        }
    }
}

#[test]
fn the_readme_documents_every_setting_of_the_default_configuration() {
    let readme = readme();
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.toml"))
        .expect("config/default.toml");
    // `[section]` headers and `key = value` lines, as written (inline maps are single settings).
    let mut section = String::new();
    let mut keys = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
        } else if let Some((key, _)) = line.split_once(" = ") {
            if !line.starts_with('#') && !section.is_empty() {
                keys.push(format!("{section}.{}", key.trim()));
            }
        }
    }
    assert!(keys.len() > 80, "found only {} keys", keys.len());
    for key in keys {
        assert!(
            readme.contains(&format!("`{key}`")),
            "README.md does not document {key}"
        );
    }
}

#[test]
fn the_readme_lists_every_error_code_and_refusal_reason() {
    use attrsync::http::error::{ErrorCode, Refusal};
    let readme = readme();
    for code in ErrorCode::ALL {
        assert!(
            readme.contains(&format!("`{}`", code.as_str())),
            "README.md does not list error code {}",
            code.as_str()
        );
    }
    for reason in Refusal::ALL {
        assert!(
            readme.contains(&format!("`{}`", reason.as_str())),
            "README.md does not list refusal reason {}",
            reason.as_str()
        );
    }
}
