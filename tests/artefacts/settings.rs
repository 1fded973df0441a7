//! Helpers: what counts as a setting attrsync reads.

use super::*;

/// Panics unless `name` is one of the plain Genesys variables or `ATTRSYNC_<SECTION>__<KEY>`
/// naming a key of config/default.toml (a table that is empty there, such as
/// `crm.http.templates`, takes any key below it).
pub(crate) fn assert_is_a_setting(name: &str, origin: &str) {
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

pub(crate) fn settings_from(env: &BTreeMap<String, String>) -> Settings {
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    Settings::load_from(None, &env)
        .unwrap_or_else(|e| panic!("this environment is not a valid configuration: {e}"))
}
