//! The simulated org's OAuth token endpoint and sessions: the client credentials flow (consumer
//! key and secret in the body or as HTTP Basic, token issued for the Run As user) and the JWT
//! bearer flow (an RS256 assertion verified against the External Client App's certificate,
//! then `iss`, `aud`, `exp` and `sub` checked).
//!
//! Sources: Salesforce Help *OAuth 2.0 Client Credentials Flow for Server-to-Server
//! Integration* (xcloud.remoteaccess_oauth_client_credentials_flow.htm) and *OAuth 2.0 JWT
//! Bearer Flow* (remoteaccess_oauth_jwt_flow.htm); the token response shape from the Connect
//! REST API quick start (`access_token`, `signature`, `token_format`, `instance_url`, `id`,
//! `token_type`, `issued_at`; no `expires_in`); Basic client authentication from the REST API
//! guide (intro_understanding_refresh_token_oauth.htm). The error answers are those real orgs
//! give in public issue threads: `invalid_client_id` / "client identifier invalid"
//! (omniphx/forrest#184), `invalid_client` / "invalid client credentials" (restforce#338),
//! `unsupported_grant_type` / "grant type not supported" (aaronhuggins/sf-jwt-token#1),
//! `invalid_grant` / "audience is invalid", "user hasn't approved this consumer", "invalid
//! assertion" (salesforce.stackexchange.com 184363). The answer for a disabled client
//! credentials flow and for an expired assertion could not be confirmed; see the constants.
//!
//! Sessions expire after the org's session timeout; for API sessions the timeout is reset by
//! each call ("If you make an API call, the inactivity timer is reset to zero", SOAP API
//! *Error Handling*), which [`SessionPolicy::sliding`] switches.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{json, Value};

use crate::simulator::dynamics::cert::Certificate;

pub const GRANT_CLIENT_CREDENTIALS: &str = "client_credentials";
pub const GRANT_JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Not confirmed from a real org: the answer to a client credentials request when the app has
/// the flow disabled or no Run As user.
pub const CLIENT_CREDENTIALS_DISABLED: &str = "no client credentials user enabled";
/// Not confirmed: real orgs may word an expired assertion differently; the code is invalid_grant.
pub const EXPIRED_ASSERTION: &str = "invalid assertion";

/// How the simulated org authenticates API clients.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub consumer_key: String,
    pub consumer_secret: String,
    /// The client credentials flow's Run As user; `None` means the flow is not enabled.
    pub run_as_user: Option<String>,
    /// The certificate uploaded for the JWT bearer flow; `None` means no JWT flow.
    pub jwt_certificate: Option<Certificate>,
    /// Accepted `aud` values. Salesforce documents `https://login.salesforce.com`,
    /// `https://test.salesforce.com` or an Experience Cloud site URL; the Salesforce CLI sends
    /// login/test even when posting to a My Domain (forcedotcom/sfdx-core `sfdcUrl.ts`).
    pub jwt_audiences: Vec<String>,
    /// Users who have approved the app (or are pre-authorized by profile / permission set).
    pub jwt_users: Vec<String>,
    /// The longest `exp - now` accepted; Salesforce documents "within 3 minutes", but the
    /// Salesforce CLI signs `exp = Date.now() + 300` (milliseconds, i.e. far in the future) and
    /// works, so by default no upper bound is enforced.
    pub max_assertion_lifetime: Option<Duration>,
    pub sessions: SessionPolicy,
}

#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    /// The org's session timeout (Salesforce's default is two hours).
    pub timeout: Duration,
    /// Whether each API call restarts the timeout.
    pub sliding: bool,
}

/// A token endpoint failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: &'static str,
}

impl OAuthError {
    fn bad(error: &'static str, description: &'static str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error,
            description,
        }
    }

    pub fn body(&self) -> Value {
        json!({ "error": self.error, "error_description": self.description })
    }
}

#[derive(Debug)]
struct Session {
    user: String,
    last_used: Instant,
}

/// Issued tokens and their last use.
#[derive(Debug, Default)]
pub struct Sessions {
    by_token: HashMap<String, Session>,
    issued: u64,
}

/// A freshly issued token and who it is for.
#[derive(Debug, Clone)]
pub struct Issued {
    pub access_token: String,
    pub user: String,
}

impl Sessions {
    /// The user behind `token`, if it is valid now; a sliding policy restarts its timeout.
    pub fn check(&mut self, token: &str, policy: SessionPolicy, now: Instant) -> Option<String> {
        let session = self.by_token.get_mut(token)?;
        if now.duration_since(session.last_used) >= policy.timeout {
            self.by_token.remove(token);
            return None;
        }
        if policy.sliding {
            session.last_used = now;
        }
        Some(session.user.clone())
    }

    /// Every issued token stops working, as when an admin revokes sessions.
    pub fn expire_all(&mut self) {
        self.by_token.clear();
    }

    pub fn count(&self) -> usize {
        self.by_token.len()
    }

    fn issue(&mut self, user: &str, now: Instant) -> Issued {
        self.issued += 1;
        // Shaped like a real session id: org id, '!', opaque text.
        let access_token = format!("00DSIM000000001!{}", uuid::Uuid::new_v4().simple());
        self.by_token.insert(
            access_token.clone(),
            Session {
                user: user.to_owned(),
                last_used: now,
            },
        );
        Issued {
            access_token,
            user: user.to_owned(),
        }
    }
}

/// Handles one token request. `form` is the decoded body; `basic` the `Authorization: Basic`
/// header value, if any.
pub fn grant(
    settings: &AuthSettings,
    sessions: &mut Sessions,
    form: &HashMap<String, String>,
    basic: Option<&str>,
    now: Instant,
) -> Result<Issued, OAuthError> {
    match form.get("grant_type").map(String::as_str) {
        Some(GRANT_CLIENT_CREDENTIALS) => client_credentials(settings, sessions, form, basic, now),
        Some(GRANT_JWT_BEARER) => jwt_bearer(settings, sessions, form, now),
        _ => Err(OAuthError::bad(
            "unsupported_grant_type",
            "grant type not supported",
        )),
    }
}

fn basic_credentials(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

fn client_credentials(
    settings: &AuthSettings,
    sessions: &mut Sessions,
    form: &HashMap<String, String>,
    basic: Option<&str>,
    now: Instant,
) -> Result<Issued, OAuthError> {
    let (id, secret) = match basic.and_then(basic_credentials) {
        Some(pair) => pair,
        None => (
            form.get("client_id").cloned().unwrap_or_default(),
            form.get("client_secret").cloned().unwrap_or_default(),
        ),
    };
    if id != settings.consumer_key {
        return Err(OAuthError::bad(
            "invalid_client_id",
            "client identifier invalid",
        ));
    }
    if !bool::from(subtle::ConstantTimeEq::ct_eq(
        secret.as_bytes(),
        settings.consumer_secret.as_bytes(),
    )) {
        return Err(OAuthError::bad(
            "invalid_client",
            "invalid client credentials",
        ));
    }
    let Some(user) = &settings.run_as_user else {
        return Err(OAuthError::bad(
            "invalid_grant",
            CLIENT_CREDENTIALS_DISABLED,
        ));
    };
    Ok(sessions.issue(user, now))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn jwt_bearer(
    settings: &AuthSettings,
    sessions: &mut Sessions,
    form: &HashMap<String, String>,
    now: Instant,
) -> Result<Issued, OAuthError> {
    let invalid = || OAuthError::bad("invalid_grant", "invalid assertion");
    let assertion = form.get("assertion").ok_or_else(invalid)?;
    let certificate = settings.jwt_certificate.as_ref().ok_or_else(invalid)?;
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| invalid())?;
    // "The JWT must be signed using RSA SHA256" (JWT bearer flow page).
    if header.alg != Algorithm::RS256 {
        return Err(invalid());
    }
    let mut validation = Validation::new(Algorithm::RS256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<Value>(assertion, certificate.decoding_key(), &validation)
        .map_err(|_| invalid())?
        .claims;
    if claims.get("iss").and_then(Value::as_str) != Some(settings.consumer_key.as_str()) {
        return Err(OAuthError::bad(
            "invalid_client_id",
            "client identifier invalid",
        ));
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let trimmed = |a: &str| a.trim_end_matches('/').to_owned();
    if !audiences.iter().any(|a| {
        settings
            .jwt_audiences
            .iter()
            .any(|ok| trimmed(ok) == trimmed(a))
    }) {
        return Err(OAuthError::bad("invalid_grant", "audience is invalid"));
    }
    let exp = claims
        .get("exp")
        .and_then(Value::as_f64)
        .ok_or_else(invalid)?;
    let now_unix = unix_now() as f64;
    if exp <= now_unix {
        return Err(OAuthError::bad("invalid_grant", EXPIRED_ASSERTION));
    }
    if settings
        .max_assertion_lifetime
        .is_some_and(|max| exp - now_unix > max.as_secs_f64())
    {
        return Err(invalid());
    }
    let sub = claims.get("sub").and_then(Value::as_str).unwrap_or("");
    if !settings
        .jwt_users
        .iter()
        .any(|u| u.eq_ignore_ascii_case(sub))
    {
        return Err(OAuthError::bad(
            "invalid_grant",
            "user hasn't approved this consumer",
        ));
    }
    Ok(sessions.issue(sub, now))
}

/// The success body: the documented fields and no `expires_in`.
pub fn token_body(issued: &Issued, instance_url: &str) -> Value {
    let issued_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    json!({
        "access_token": issued.access_token,
        "signature": STANDARD.encode(uuid::Uuid::new_v4().as_bytes()),
        "scope": "api",
        "instance_url": instance_url,
        "id": format!("{instance_url}/id/00DSIM000000001AAA/005SIM{:012}", issued.user.len()),
        "token_type": "Bearer",
        "token_format": "opaque",
        "issued_at": issued_at.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulator::dynamics::cert::test_keys::*;
    use jsonwebtoken::{encode, EncodingKey, Header};

    fn settings() -> AuthSettings {
        AuthSettings {
            consumer_key: "3MVGkey".into(),
            consumer_secret: "s3cret".into(),
            run_as_user: Some("integration@acme.example".into()),
            jwt_certificate: Some(Certificate::from_pem(CERT_A).unwrap()),
            jwt_audiences: vec!["https://login.salesforce.com".into()],
            jwt_users: vec!["integration@acme.example".into()],
            max_assertion_lifetime: None,
            sessions: SessionPolicy {
                timeout: Duration::from_secs(7200),
                sliding: true,
            },
        }
    }

    fn form(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn assertion(claims: Value, key: &str, alg: Algorithm) -> String {
        encode(
            &Header::new(alg),
            &claims,
            &EncodingKey::from_rsa_pem(key.as_bytes()).unwrap(),
        )
        .unwrap()
    }

    fn good_claims() -> Value {
        json!({"iss": "3MVGkey", "sub": "integration@acme.example", "aud": "https://login.salesforce.com", "exp": unix_now() + 120})
    }

    fn jwt(claims: Value, key: &str) -> Result<Issued, OAuthError> {
        let a = assertion(claims, key, Algorithm::RS256);
        grant(
            &settings(),
            &mut Sessions::default(),
            &form(&[("grant_type", GRANT_JWT_BEARER), ("assertion", &a)]),
            None,
            Instant::now(),
        )
    }

    #[test]
    fn client_credentials_in_the_body_or_as_basic_get_a_token_for_the_run_as_user() {
        let mut sessions = Sessions::default();
        let issued = grant(
            &settings(),
            &mut sessions,
            &form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "3MVGkey"),
                ("client_secret", "s3cret"),
            ]),
            None,
            Instant::now(),
        )
        .unwrap();
        assert_eq!(issued.user, "integration@acme.example");
        let basic = format!("Basic {}", STANDARD.encode("3MVGkey:s3cret"));
        assert!(grant(
            &settings(),
            &mut sessions,
            &form(&[("grant_type", "client_credentials")]),
            Some(&basic),
            Instant::now()
        )
        .is_ok());
        assert_eq!(sessions.count(), 2);
    }

    #[test]
    fn wrong_client_credentials_get_salesforces_errors() {
        let mut sessions = Sessions::default();
        let wrong_id = grant(
            &settings(),
            &mut sessions,
            &form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "x"),
                ("client_secret", "s3cret"),
            ]),
            None,
            Instant::now(),
        )
        .unwrap_err();
        assert_eq!(
            (wrong_id.error, wrong_id.description),
            ("invalid_client_id", "client identifier invalid")
        );
        let wrong_secret = grant(
            &settings(),
            &mut sessions,
            &form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "3MVGkey"),
                ("client_secret", "x"),
            ]),
            None,
            Instant::now(),
        )
        .unwrap_err();
        assert_eq!(wrong_secret.error, "invalid_client");
        let mut disabled = settings();
        disabled.run_as_user = None;
        let off = grant(
            &disabled,
            &mut sessions,
            &form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "3MVGkey"),
                ("client_secret", "s3cret"),
            ]),
            None,
            Instant::now(),
        )
        .unwrap_err();
        assert_eq!(off.error, "invalid_grant");
        let password = grant(
            &settings(),
            &mut sessions,
            &form(&[("grant_type", "password")]),
            None,
            Instant::now(),
        )
        .unwrap_err();
        assert_eq!(password.error, "unsupported_grant_type");
        assert_eq!(sessions.count(), 0);
    }

    #[test]
    fn a_jwt_signed_by_the_uploaded_certificates_key_gets_a_token_for_its_subject() {
        assert_eq!(
            jwt(good_claims(), KEY_A).unwrap().user,
            "integration@acme.example"
        );
    }

    #[test]
    fn a_jwt_with_the_wrong_key_algorithm_or_shape_is_an_invalid_assertion() {
        assert_eq!(
            jwt(good_claims(), KEY_B).unwrap_err().description,
            "invalid assertion"
        );
        let ps = assertion(good_claims(), KEY_A, Algorithm::PS256);
        let e = grant(
            &settings(),
            &mut Sessions::default(),
            &form(&[("grant_type", GRANT_JWT_BEARER), ("assertion", &ps)]),
            None,
            Instant::now(),
        )
        .unwrap_err();
        assert_eq!(e.description, "invalid assertion");
        let e = grant(
            &settings(),
            &mut Sessions::default(),
            &form(&[("grant_type", GRANT_JWT_BEARER), ("assertion", "not.a.jwt")]),
            None,
            Instant::now(),
        )
        .unwrap_err();
        assert_eq!(e.error, "invalid_grant");
    }

    #[test]
    fn each_claim_is_checked() {
        let mut c = good_claims();
        c["iss"] = json!("other");
        assert_eq!(jwt(c, KEY_A).unwrap_err().error, "invalid_client_id");
        let mut c = good_claims();
        c["aud"] = json!("https://acme.my.salesforce.com");
        assert_eq!(
            jwt(c, KEY_A).unwrap_err().description,
            "audience is invalid"
        );
        let mut c = good_claims();
        c["aud"] = json!(["https://x", "https://login.salesforce.com/"]);
        assert!(jwt(c, KEY_A).is_ok());
        let mut c = good_claims();
        c["exp"] = json!(unix_now() - 1);
        assert_eq!(jwt(c, KEY_A).unwrap_err().description, EXPIRED_ASSERTION);
        let mut c = good_claims();
        c["sub"] = json!("someone@else.example");
        assert_eq!(
            jwt(c, KEY_A).unwrap_err().description,
            "user hasn't approved this consumer"
        );
        let mut c = good_claims();
        c.as_object_mut().unwrap().remove("exp");
        assert_eq!(jwt(c, KEY_A).unwrap_err().error, "invalid_grant");
    }

    #[test]
    fn sessions_expire_after_the_timeout_which_each_call_restarts_when_sliding() {
        let start = Instant::now();
        let mut sessions = Sessions::default();
        let token = sessions.issue("u", start).access_token;
        let sliding = SessionPolicy {
            timeout: Duration::from_secs(10),
            sliding: true,
        };
        assert!(sessions
            .check(&token, sliding, start + Duration::from_secs(8))
            .is_some());
        assert!(sessions
            .check(&token, sliding, start + Duration::from_secs(16))
            .is_some());
        assert!(sessions
            .check(&token, sliding, start + Duration::from_secs(27))
            .is_none());
        let token = sessions.issue("u", start).access_token;
        let fixed = SessionPolicy {
            timeout: Duration::from_secs(10),
            sliding: false,
        };
        assert!(sessions
            .check(&token, fixed, start + Duration::from_secs(8))
            .is_some());
        assert!(sessions
            .check(&token, fixed, start + Duration::from_secs(11))
            .is_none());
        let token = sessions.issue("u", start).access_token;
        sessions.expire_all();
        assert!(sessions.check(&token, fixed, start).is_none());
    }

    #[test]
    fn the_token_body_has_an_instance_url_and_no_expiry() {
        let body = token_body(
            &Issued {
                access_token: "t".into(),
                user: "u".into(),
            },
            "http://127.0.0.1:1",
        );
        assert_eq!(body["instance_url"], "http://127.0.0.1:1");
        assert_eq!(body["token_type"], "Bearer");
        assert!(body.get("expires_in").is_none());
    }
}
