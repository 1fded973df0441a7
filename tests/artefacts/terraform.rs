//! The Terraform (CX as Code) twin of the data action and its credentials.

use super::*;

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
