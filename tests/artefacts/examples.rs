//! The sample configurations in `config/examples/`: each one is checked by the binary itself
//! (`attrsync check-config --config FILE`) with the environment it documents, so a sample that
//! names a key attrsync does not read, or no longer validates, fails here. An adapter adds its
//! sample and its row in `EXAMPLES`.

use std::process::Command;

use super::*;

/// Every sample and the variables it needs besides the Genesys credentials and inbound secrets.
const EXAMPLES: &[(&str, &[(&str, &str)])] = &[
    ("file.toml", &[]),
    (
        "http.toml",
        &[("ATTRSYNC_CRM__HTTP__TOKEN", "example-crm-token")],
    ),
    ("sql.toml", &[]),
    (
        "chained.toml",
        &[("ATTRSYNC_CRM__HTTP__TOKEN", "example-crm-token")],
    ),
    (
        "dynamics.toml",
        &[(
            "ATTRSYNC_CRM__DYNAMICS__OAUTH__CLIENT_SECRET",
            "example-dynamics-secret",
        )],
    ),
    (
        "salesforce.toml",
        &[(
            "ATTRSYNC_CRM__SALESFORCE__OAUTH__CLIENT_SECRET",
            "example-salesforce-secret",
        )],
    ),
    (
        "freshdesk.toml",
        &[("ATTRSYNC_CRM__FRESHDESK__API_KEY", "example-freshdesk-key")],
    ),
    (
        "servicenow.toml",
        &[(
            "ATTRSYNC_CRM__SERVICENOW__PASSWORD",
            "example-servicenow-password",
        )],
    ),
    (
        "zendesk.toml",
        &[("ATTRSYNC_CRM__ZENDESK__API_TOKEN", "example-zendesk-token")],
    ),
    (
        "hubspot.toml",
        &[(
            "ATTRSYNC_CRM__HUBSPOT__ACCESS_TOKEN",
            "example-hubspot-token",
        )],
    ),
];

/// What every sample needs: Genesys's credentials and a secret for each inbound group.
const BASE_ENV: &[(&str, &str)] = &[
    ("GENESYS_CLIENT_ID", "example-client"),
    ("GENESYS_CLIENT_SECRET", "example-client-secret"),
    ("GENESYS_REGION", "mypurecloud.ie"),
    ("ATTRSYNC_AUTH__GENESYS__SECRETS", "example-api-key"),
    (
        "ATTRSYNC_AUTH__CTI__SECRETS",
        "whsec_ZXhhbXBsZS1jdGktc2lnbmluZy1zZWNyZXQ=",
    ),
    ("ATTRSYNC_AUTH__LOOKUP__SECRETS", "example-lookup-password"),
];

/// The secret values above, which check-config must not print.
const SECRETS: &[&str] = &[
    "example-client-secret",
    "example-api-key",
    "whsec_ZXhhbXBsZS1jdGktc2lnbmluZy1zZWNyZXQ=",
    "example-lookup-password",
    "example-crm-token",
    "example-salesforce-secret",
    "example-dynamics-secret",
    "example-servicenow-password",
    "example-freshdesk-key",
    "example-zendesk-token",
    "example-hubspot-token",
];

/// `attrsync check-config --config <file>` with exactly `env` (nothing from this process).
fn check_config(file: &Path, env: &[(&str, &str)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_attrsync"))
        .args(["check-config", "--config"])
        .arg(file)
        .current_dir(repo())
        .env_clear()
        .envs(BASE_ENV.iter().chain(env).copied())
        .output()
        .expect("run attrsync check-config")
}

#[test]
fn every_sample_configuration_is_listed_here() {
    let dir = repo().join("config/examples");
    let mut found: Vec<String> = std::fs::read_dir(&dir)
        .expect("config/examples/")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        // The setup guides (`<adapter>.md`) sit beside the samples.
        .filter(|name| name.ends_with(".toml"))
        .collect();
    found.sort();
    let mut listed: Vec<String> = EXAMPLES.iter().map(|(f, _)| (*f).to_owned()).collect();
    listed.sort();
    assert_eq!(
        found, listed,
        "add each sample to EXAMPLES with the variables it needs"
    );
}

#[test]
fn every_sample_configuration_passes_check_config() {
    for (file, env) in EXAMPLES {
        let path = repo().join("config/examples").join(file);
        let output = check_config(&path, env);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{file}: {stderr}");
        assert!(
            stderr.contains("configuration is valid"),
            "{file}: {stderr}"
        );
        // What check-config prints is the sample's configuration, secrets redacted.
        for secret in SECRETS {
            assert!(
                !stdout.contains(secret),
                "{file}: check-config printed a secret"
            );
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let sample: toml::Table = toml::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        let printed: toml::Table =
            toml::from_str(&stdout).unwrap_or_else(|e| panic!("{file}: {e}"));
        let sources = sample["crm"]
            .get("sources")
            .or(sample["crm"].get("adapter"));
        let effective = printed["crm"]
            .get("sources")
            .filter(|s| s.as_array().is_some_and(|a| !a.is_empty()));
        match effective {
            Some(listed) => assert_eq!(Some(listed), sources, "{file}"),
            None => assert_eq!(printed["crm"].get("adapter"), sources, "{file}"),
        }
    }
}

#[test]
fn a_sample_that_no_longer_validates_fails_check_config_naming_the_key() {
    // What makes the test above meaningful: check-config does fail, and says where.
    let text = std::fs::read_to_string(repo().join("config/examples/chained.toml")).unwrap();
    let broken = text.replace(
        r#"sources = ["http", "file"]"#,
        r#"sources = ["http", "http"]"#,
    );
    assert_ne!(broken, text);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.toml");
    std::fs::write(&path, broken).unwrap();
    let output = check_config(&path, &[("ATTRSYNC_CRM__HTTP__TOKEN", "example-crm-token")]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("crm.sources"), "{stderr}");

    let missing_token = check_config(&repo().join("config/examples/http.toml"), &[]);
    assert!(!missing_token.status.success());
    assert!(String::from_utf8_lossy(&missing_token.stderr).contains("crm.http.token"));
}
