//! The README is the operator's reference: it must name every metric, endpoint and setting the
//! code has, so that adding one without documenting it fails here.

use utoipa::OpenApi as _;

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README.md")
}

#[test]
fn the_readme_documents_every_metric() {
    let readme = readme();
    for (name, _) in attrsync::metrics::CATALOGUE {
        assert!(
            readme.contains(&format!("`{name}`")),
            "README.md does not document {name}"
        );
    }
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
