//! The simulated Microsoft Entra ID token endpoint, `POST /{tenant}/oauth2/v2.0/token`, for the
//! client credentials grant with a client secret or a certificate client assertion, and the
//! tokens it issues (which expire after `expires_in`).
//!
//! Sources (MicrosoftDocs/entra-docs, `docs/identity-platform/`):
//! `v2-oauth2-client-creds-grant-flow.md` (request parameters; the secret may come as HTTP
//! Basic; scope `<resource>/.default`; success `token_type`, `expires_in`, `access_token`; error
//! `error`, `error_description`, `error_codes`, `timestamp`, `trace_id`, `correlation_id`);
//! `certificate-credentials.md` (assertion header `alg` RS256 with `x5t`, or, in the current
//! version, PS256 with `x5t#S256`; claims `aud` = the token endpoint URL, `iss` = `sub` = client
//! id, `exp`, `nbf`, `jti`; "Microsoft Entra ID doesn't place restrictions on the exp time");
//! `reference-error-codes.md` (AADSTS codes). Which HTTP status goes with which AADSTS code is
//! documented only by example (400 for invalid_scope); 401 for `invalid_client` follows real
//! answers seen in public issue threads (AADSTS7000215, e.g. BookStackApp/BookStack#4089).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{json, Value};

use super::cert::Certificate;

pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The app registration and tenant the simulator knows.
#[derive(Debug, Clone)]
pub struct EntraSettings {
    /// Tenant id (GUID); the token path also accepts any of `tenant_aliases`.
    pub tenant_id: String,
    pub tenant_aliases: Vec<String>,
    pub client_id: String,
    /// `None`: no secret registered (only a certificate works).
    pub client_secret: Option<String>,
    /// `None`: no certificate registered.
    pub certificate: Option<Certificate>,
    /// Resources a `/.default` scope may name; empty means "the simulator's own URL", which
    /// is also the Dataverse environment URL in tests.
    pub resources: Vec<String>,
    /// `expires_in` of issued tokens (Entra's default is 60–90 minutes; 3599 s in the docs).
    pub token_lifetime: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntraError {
    pub status: StatusCode,
    pub error: &'static str,
    pub code: u32,
    pub message: String,
}

impl EntraError {
    fn new(status: StatusCode, error: &'static str, code: u32, message: impl Into<String>) -> Self {
        Self {
            status,
            error,
            code,
            message: message.into(),
        }
    }

    /// The body Entra sends, trace and correlation ids included.
    pub fn body(&self) -> Value {
        let trace = uuid::Uuid::new_v4();
        let correlation = uuid::Uuid::new_v4();
        let timestamp = chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string();
        json!({
            "error": self.error,
            "error_description": format!(
                "AADSTS{}: {}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {timestamp}",
                self.code, self.message
            ),
            "error_codes": [self.code],
            "timestamp": timestamp,
            "trace_id": trace.to_string(),
            "correlation_id": correlation.to_string(),
            "error_uri": format!("https://login.microsoftonline.com/error?code={}", self.code),
        })
    }
}

/// Issued access tokens and when they expire.
#[derive(Debug, Default)]
pub struct Tokens {
    by_token: HashMap<String, (String, Instant)>,
}

impl Tokens {
    /// The client id behind a token that has not expired.
    pub fn check(&mut self, token: &str, now: Instant) -> Option<String> {
        let (client, expires) = self.by_token.get(token)?;
        if now >= *expires {
            self.by_token.remove(token);
            return None;
        }
        Some(client.clone())
    }

    pub fn expire_all(&mut self) {
        self.by_token.clear();
    }

    pub fn count(&self) -> usize {
        self.by_token.len()
    }

    fn issue(&mut self, client: &str, lifetime: Duration, now: Instant) -> String {
        let token = format!(
            "eyJ0eXAiOiJKV1QiLCJzaW0iOnRydWV9.{}",
            uuid::Uuid::new_v4().simple()
        );
        self.by_token
            .insert(token.clone(), (client.to_owned(), now + lifetime));
        token
    }
}

fn basic(header: Option<&str>) -> Option<(String, String)> {
    let (scheme, encoded) = header?.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

/// Handles one token request for `tenant` (the path segment). `own_url` is the simulator's
/// URL (`http://host:port`): the default resource, and the authority in the expected `aud`
/// besides `https://login.microsoftonline.com`.
pub fn token(
    settings: &EntraSettings,
    tokens: &mut Tokens,
    tenant: &str,
    form: &HashMap<String, String>,
    authorization: Option<&str>,
    own_url: &str,
    now: Instant,
) -> Result<Value, EntraError> {
    let known_tenant = tenant.eq_ignore_ascii_case(&settings.tenant_id)
        || settings
            .tenant_aliases
            .iter()
            .any(|a| a.eq_ignore_ascii_case(tenant));
    if !known_tenant {
        return Err(EntraError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."),
        ));
    }
    let grant = form.get("grant_type").map(String::as_str).unwrap_or("");
    if grant != "client_credentials" {
        return Err(EntraError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            format!("The app requested an unsupported grant type '{grant}'."),
        ));
    }
    let basic = basic(authorization);
    let client_id = basic
        .as_ref()
        .map(|(id, _)| id.clone())
        .or_else(|| form.get("client_id").cloned())
        .unwrap_or_default();
    if client_id != settings.client_id {
        return Err(EntraError::new(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            format!("Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."),
        ));
    }
    let secret = basic
        .map(|(_, s)| s)
        .or_else(|| form.get("client_secret").cloned());
    match (secret, form.get("client_assertion")) {
        (Some(secret), _) => check_secret(settings, &secret)?,
        (None, Some(assertion)) => {
            if form.get("client_assertion_type").map(String::as_str) != Some(CLIENT_ASSERTION_TYPE) {
                return Err(EntraError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    900144,
                    "The request body must contain the following parameter: 'client_assertion_type'.",
                ));
            }
            check_assertion(settings, tenant, own_url, assertion)?;
        }
        (None, None) => {
            return Err(EntraError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            ))
        }
    }
    check_scope(
        settings,
        form.get("scope").map(String::as_str).unwrap_or(""),
        own_url,
    )?;
    let access_token = tokens.issue(&client_id, settings.token_lifetime, now);
    let lifetime = settings.token_lifetime.as_secs();
    Ok(json!({
        "token_type": "Bearer",
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": access_token,
    }))
}

fn check_secret(settings: &EntraSettings, secret: &str) -> Result<(), EntraError> {
    let ok = settings.client_secret.as_deref().is_some_and(|expected| {
        bool::from(subtle::ConstantTimeEq::ct_eq(
            secret.as_bytes(),
            expected.as_bytes(),
        ))
    });
    if ok {
        Ok(())
    } else {
        Err(EntraError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            format!("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.", settings.client_id),
        ))
    }
}

fn signature_failed() -> EntraError {
    EntraError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        700027,
        "Client assertion failed signature validation.",
    )
}

fn check_assertion(
    settings: &EntraSettings,
    tenant: &str,
    own_url: &str,
    assertion: &str,
) -> Result<(), EntraError> {
    let certificate = settings.certificate.as_ref().ok_or_else(signature_failed)?;
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| signature_failed())?;
    if !matches!(header.alg, Algorithm::RS256 | Algorithm::PS256) {
        return Err(signature_failed());
    }
    // The thumbprint picks the registered certificate: x5t (SHA-1) or x5t#S256 (SHA-256).
    let thumbprint_matches = header.x5t.as_deref() == Some(certificate.x5t.as_str())
        || header.x5t_s256.as_deref() == Some(certificate.x5t_s256.as_str());
    if !thumbprint_matches {
        return Err(signature_failed());
    }
    let mut validation = Validation::new(header.alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<Value>(assertion, certificate.decoding_key(), &validation)
        .map_err(|_| signature_failed())?
        .claims;
    let invalid_jwt = |why: &str| {
        EntraError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            50027,
            format!("Invalid JWT token. {why}"),
        )
    };
    let expected_auds = [
        format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"),
        format!("{own_url}/{tenant}/oauth2/v2.0/token"),
    ];
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => expected_auds.contains(a),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .any(|a| expected_auds.iter().any(|e| e == a)),
        _ => false,
    };
    if !aud_ok {
        return Err(invalid_jwt("Unexpected audience."));
    }
    let iss = claims.get("iss").and_then(Value::as_str);
    if iss != Some(settings.client_id.as_str()) {
        return Err(invalid_jwt("Unexpected issuer."));
    }
    if claims.get("sub").and_then(Value::as_str) != iss {
        return Err(EntraError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            50048,
            "Subject mismatches Issuer claim in the client assertion.",
        ));
    }
    let now = chrono::Utc::now().timestamp() as f64;
    let exp = claims.get("exp").and_then(Value::as_f64);
    let nbf = claims.get("nbf").and_then(Value::as_f64);
    if exp.is_none_or(|exp| exp <= now) || nbf.is_some_and(|nbf| nbf > now) {
        return Err(EntraError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            700024,
            "Client assertion is not within its valid time range.",
        ));
    }
    Ok(())
}

fn check_scope(settings: &EntraSettings, scope: &str, own_url: &str) -> Result<(), EntraError> {
    let invalid = || {
        EntraError::new(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            70011,
            format!("The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid."),
        )
    };
    let resource = scope.strip_suffix("/.default").ok_or_else(invalid)?;
    if resource.contains(' ') {
        return Err(invalid());
    }
    let normalise = |r: &str| r.trim_end_matches('/').to_ascii_lowercase();
    let known = if settings.resources.is_empty() {
        normalise(resource) == normalise(own_url)
    } else {
        settings
            .resources
            .iter()
            .any(|r| normalise(r) == normalise(resource))
    };
    if known {
        Ok(())
    } else {
        Err(EntraError::new(
            StatusCode::BAD_REQUEST,
            "invalid_resource",
            500011,
            format!("The resource principal named {resource} was not found in the tenant named {}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.", settings.tenant_id),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::super::cert::test_keys::*;
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};

    const TENANT: &str = "11111111-2222-3333-4444-555555555555";
    const CLIENT: &str = "aaaaaaaa-0000-1111-2222-bbbbbbbbbbbb";
    const OWN: &str = "http://127.0.0.1:9";

    fn settings() -> EntraSettings {
        EntraSettings {
            tenant_id: TENANT.into(),
            tenant_aliases: vec!["contoso.onmicrosoft.com".into()],
            client_id: CLIENT.into(),
            client_secret: Some("s3cret~value".into()),
            certificate: Some(Certificate::from_pem(CERT_A).unwrap()),
            resources: Vec::new(),
            token_lifetime: Duration::from_secs(3599),
        }
    }

    fn form(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn ask(pairs: &[(&str, &str)]) -> Result<Value, EntraError> {
        token(
            &settings(),
            &mut Tokens::default(),
            TENANT,
            &form(pairs),
            None,
            OWN,
            Instant::now(),
        )
    }

    fn secret_form<'a>(secret: &'a str, scope: &'a str) -> Vec<(&'a str, &'a str)> {
        vec![
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT),
            ("client_secret", secret),
            ("scope", scope),
        ]
    }

    fn assertion(alg: Algorithm, key: &str, thumb: &str, claims: Value) -> String {
        let cert = Certificate::from_pem(CERT_A).unwrap();
        let mut header = Header::new(alg);
        match thumb {
            "x5t" => header.x5t = Some(cert.x5t.clone()),
            "x5t#S256" => header.x5t_s256 = Some(cert.x5t_s256.clone()),
            _ => header.x5t = Some("wrong".into()),
        }
        encode(
            &header,
            &claims,
            &EncodingKey::from_rsa_pem(key.as_bytes()).unwrap(),
        )
        .unwrap()
    }

    fn claims() -> Value {
        let now = chrono::Utc::now().timestamp();
        json!({"aud": format!("https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token"), "iss": CLIENT, "sub": CLIENT, "jti": "1", "nbf": now - 5, "exp": now + 300})
    }

    fn ask_with_assertion(a: &str) -> Result<Value, EntraError> {
        ask(&[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT),
            ("client_assertion_type", CLIENT_ASSERTION_TYPE),
            ("client_assertion", a),
            ("scope", &format!("{OWN}/.default")),
        ])
    }

    #[test]
    fn a_secret_gets_a_bearer_token_with_an_expiry() {
        let body = ask(&secret_form("s3cret~value", &format!("{OWN}/.default"))).unwrap();
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 3599);
        assert!(body["access_token"].as_str().is_some_and(|t| !t.is_empty()));
    }

    #[test]
    fn wrong_secrets_clients_tenants_scopes_and_grants_get_their_aadsts_codes() {
        assert_eq!(
            ask(&secret_form("nope", &format!("{OWN}/.default")))
                .unwrap_err()
                .code,
            7000215
        );
        let e = ask(&secret_form("nope", &format!("{OWN}/.default"))).unwrap_err();
        assert_eq!(
            (e.status, e.error),
            (StatusCode::UNAUTHORIZED, "invalid_client")
        );
        assert_eq!(
            ask(&secret_form(
                "s3cret~value",
                "https://other.crm.dynamics.com/.default"
            ))
            .unwrap_err()
            .code,
            500011
        );
        assert_eq!(
            ask(&secret_form(
                "s3cret~value",
                &format!("{OWN}/user_impersonation")
            ))
            .unwrap_err()
            .code,
            70011
        );
        assert_eq!(
            ask(&[
                ("grant_type", "client_credentials"),
                ("client_id", "x"),
                ("client_secret", "s")
            ])
            .unwrap_err()
            .code,
            700016
        );
        assert_eq!(ask(&[("grant_type", "password")]).unwrap_err().code, 70003);
        assert_eq!(
            ask(&[("grant_type", "client_credentials"), ("client_id", CLIENT)])
                .unwrap_err()
                .code,
            7000218
        );
        let e = token(
            &settings(),
            &mut Tokens::default(),
            "someone-else",
            &form(&secret_form("s3cret~value", "x")),
            None,
            OWN,
            Instant::now(),
        )
        .unwrap_err();
        assert_eq!(e.code, 90002);
        assert!(token(
            &settings(),
            &mut Tokens::default(),
            "contoso.onmicrosoft.com",
            &form(&secret_form("s3cret~value", &format!("{OWN}/.default"))),
            None,
            OWN,
            Instant::now()
        )
        .is_ok());
    }

    #[test]
    fn a_certificate_assertion_verifies_with_either_thumbprint_and_either_algorithm() {
        assert!(ask_with_assertion(&assertion(Algorithm::RS256, KEY_A, "x5t", claims())).is_ok());
        assert!(
            ask_with_assertion(&assertion(Algorithm::PS256, KEY_A, "x5t#S256", claims())).is_ok()
        );
    }

    #[test]
    fn a_bad_assertion_is_refused_with_the_matching_code() {
        assert_eq!(
            ask_with_assertion(&assertion(Algorithm::RS256, KEY_B, "x5t", claims()))
                .unwrap_err()
                .code,
            700027
        );
        assert_eq!(
            ask_with_assertion(&assertion(Algorithm::RS256, KEY_A, "wrong", claims()))
                .unwrap_err()
                .code,
            700027
        );
        let mut c = claims();
        c["exp"] = json!(chrono::Utc::now().timestamp() - 1);
        assert_eq!(
            ask_with_assertion(&assertion(Algorithm::RS256, KEY_A, "x5t", c))
                .unwrap_err()
                .code,
            700024
        );
        let mut c = claims();
        c["aud"] = json!("https://login.microsoftonline.com/common/oauth2/v2.0/token");
        assert_eq!(
            ask_with_assertion(&assertion(Algorithm::RS256, KEY_A, "x5t", c))
                .unwrap_err()
                .code,
            50027
        );
        let mut c = claims();
        c["sub"] = json!("other");
        assert_eq!(
            ask_with_assertion(&assertion(Algorithm::RS256, KEY_A, "x5t", c))
                .unwrap_err()
                .code,
            50048
        );
        assert_eq!(ask_with_assertion("garbage").unwrap_err().code, 700027);
    }

    #[test]
    fn tokens_expire_after_their_lifetime() {
        let mut tokens = Tokens::default();
        let start = Instant::now();
        let t = tokens.issue(CLIENT, Duration::from_secs(10), start);
        assert_eq!(
            tokens.check(&t, start + Duration::from_secs(9)).as_deref(),
            Some(CLIENT)
        );
        assert_eq!(tokens.check(&t, start + Duration::from_secs(10)), None);
        let t = tokens.issue(CLIENT, Duration::from_secs(10), start);
        tokens.expire_all();
        assert_eq!(tokens.check(&t, start), None);
    }

    #[test]
    fn the_error_body_has_the_documented_fields() {
        let body = ask(&secret_form("nope", &format!("{OWN}/.default")))
            .unwrap_err()
            .body();
        assert_eq!(body["error"], "invalid_client");
        assert_eq!(body["error_codes"], json!([7000215]));
        assert!(body["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS7000215: "));
        for field in ["timestamp", "trace_id", "correlation_id"] {
            assert!(body[field].is_string());
        }
    }
}
