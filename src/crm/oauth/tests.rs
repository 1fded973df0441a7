//! The token manager against a small token endpoint served here (what it received, checked with
//! `jsonwebtoken` and the test certificate's public key) and against the Salesforce and
//! Dynamics simulators.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Form, Json, Router};
use jsonwebtoken::{Algorithm, Validation};
use secrecy::SecretString;
use serde_json::{json, Value};

use super::*;
use crate::config::{AssertionAlgorithm, ClientAuth};
use crate::simulator::dynamics::cert::test_keys::{CERT_A, CERT_B, KEY_A};
use crate::simulator::dynamics::cert::Certificate;

/// What the endpoint answers next.
#[derive(Clone)]
enum Answer {
    Token { expires_in: Option<u64> },
    Error { status: u16, body: String },
}

/// One token request as received: its form and `Authorization` header.
type Seen = (HashMap<String, String>, Option<String>);

struct Endpoint {
    answer: Mutex<Answer>,
    delay: Duration,
    fetches: AtomicUsize,
    seen: Mutex<Vec<Seen>>,
}

async fn token(
    State(endpoint): State<Arc<Endpoint>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> axum::response::Response {
    let n = endpoint.fetches.fetch_add(1, Ordering::SeqCst) + 1;
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    endpoint.seen.lock().unwrap().push((form, authorization));
    tokio::time::sleep(endpoint.delay).await;
    let answer = endpoint.answer.lock().unwrap().clone();
    match answer {
        Answer::Token { expires_in } => {
            let mut body = json!({
                "access_token": format!("token-{n}"),
                "token_type": "bearer",
                "instance_url": "https://example.my.salesforce.com",
            });
            if let Some(seconds) = expires_in {
                body["expires_in"] = json!(seconds);
            }
            Json(body).into_response()
        }
        Answer::Error { status, body } => (
            StatusCode::from_u16(status).unwrap(),
            [("content-type", "application/json")],
            body,
        )
            .into_response(),
    }
}

async fn endpoint(answer: Answer, delay: Duration) -> (Arc<Endpoint>, url::Url) {
    let endpoint = Arc::new(Endpoint {
        answer: Mutex::new(answer),
        delay,
        fetches: AtomicUsize::new(0),
        seen: Mutex::new(Vec::new()),
    });
    let app = Router::new()
        .route("/oauth2/token", post(token))
        .with_state(endpoint.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/oauth2/token", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (endpoint, url::Url::parse(&url).unwrap())
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

fn client(token_url: url::Url, credentials: Credentials) -> OAuthClient {
    OAuthClient {
        token_url,
        credentials,
        scope: None,
        refresh_margin: Duration::from_secs(60),
        assumed_lifetime: Duration::from_secs(3600),
    }
}

fn secret(auth: ClientAuth) -> Credentials {
    Credentials::Secret {
        client_id: "client-id".into(),
        secret: SecretString::from("s3cr3t~value"),
        auth,
    }
}

fn key_a() -> SigningKey {
    SigningKey::from_pem(KEY_A, AssertionAlgorithm::RS256).unwrap()
}

#[tokio::test]
async fn concurrent_callers_share_one_fetch() {
    let (ep, url) = endpoint(
        Answer::Token {
            expires_in: Some(3600),
        },
        Duration::from_millis(100),
    )
    .await;
    let tokens = TokenManager::new(http(), client(url, secret(ClientAuth::Body)), "test");
    let all = futures::future::join_all((0..50).map(|_| tokens.token())).await;
    assert!(all
        .iter()
        .all(|t| t.as_ref().unwrap().secret() == "token-1"));
    assert_eq!(ep.fetches.load(Ordering::SeqCst), 1);
    // The form carried the secret in the body, as client_auth = "body" says.
    let (form, authorization) = ep.seen.lock().unwrap()[0].clone();
    assert_eq!(form["grant_type"], "client_credentials");
    assert_eq!(form["client_id"], "client-id");
    assert_eq!(form["client_secret"], "s3cr3t~value");
    assert!(authorization.is_none());
}

#[tokio::test]
async fn a_token_is_renewed_before_it_expires() {
    // expires_in 2 s: kept for 1 s (the margin is capped at half the lifetime).
    let (ep, url) = endpoint(
        Answer::Token {
            expires_in: Some(2),
        },
        Duration::ZERO,
    )
    .await;
    let tokens = TokenManager::new(http(), client(url, secret(ClientAuth::Body)), "test");
    let first = tokens.token().await.unwrap();
    assert_eq!(first.keep_for(), Duration::from_secs(1));
    assert_eq!(first.expires_in(), Some(2));
    assert_eq!(
        tokens.token().await.unwrap().secret(),
        "token-1",
        "still fresh"
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(tokens.token().await.unwrap().secret(), "token-2");
    assert_eq!(ep.fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_token_without_expires_in_lives_the_assumed_lifetime_and_keeps_the_answers_fields() {
    let (_, url) = endpoint(Answer::Token { expires_in: None }, Duration::ZERO).await;
    let tokens = TokenManager::new(http(), client(url, secret(ClientAuth::Body)), "test");
    let token = tokens.token().await.unwrap();
    assert_eq!(token.expires_in(), None);
    assert_eq!(token.keep_for(), Duration::from_secs(3600 - 60));
    assert_eq!(
        token.instance_url(),
        Some("https://example.my.salesforce.com")
    );
    assert_eq!(token.authorization(), "Bearer token-1");
    assert!(
        !format!("{token:?}").contains("token-1"),
        "Debug is redacted"
    );
}

#[tokio::test]
async fn an_invalid_session_answer_renews_the_token_once() {
    let (ep, url) = endpoint(Answer::Token { expires_in: None }, Duration::ZERO).await;
    let tokens = TokenManager::new(http(), client(url, secret(ClientAuth::Body)), "test");
    let calls = AtomicUsize::new(0);
    let used = tokens
        .with_token(|token| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if token.secret() == "token-1" {
                    Err(CrmError::InvalidSession)
                } else {
                    Ok(token.secret().to_owned())
                }
            }
        })
        .await
        .unwrap();
    assert_eq!(used, "token-2");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(ep.fetches.load(Ordering::SeqCst), 2);

    // A vendor that refuses every token: one renewal, then the refusal is the answer.
    let calls = AtomicUsize::new(0);
    let refused: Result<(), CrmError> = tokens
        .with_token(|_| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(CrmError::InvalidSession) }
        })
        .await;
    assert!(matches!(refused, Err(CrmError::InvalidSession)));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(ep.fetches.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn invalidating_a_token_already_replaced_costs_no_fetch() {
    let (ep, url) = endpoint(
        Answer::Token {
            expires_in: Some(3600),
        },
        Duration::ZERO,
    )
    .await;
    let tokens = TokenManager::new(http(), client(url, secret(ClientAuth::Body)), "test");
    let stale = tokens.token().await.unwrap();
    tokens.invalidate(&stale).await;
    let fresh = tokens.token().await.unwrap();
    assert_eq!(fresh.secret(), "token-2");
    // A burst of callers that all saw the stale token fail.
    for _ in 0..10 {
        tokens.invalidate(&stale).await;
    }
    assert_eq!(tokens.token().await.unwrap().secret(), "token-2");
    assert_eq!(ep.fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn basic_client_authentication_form_encodes_the_pair_and_keeps_it_out_of_the_body() {
    let (ep, url) = endpoint(
        Answer::Token {
            expires_in: Some(3600),
        },
        Duration::ZERO,
    )
    .await;
    let tokens = TokenManager::new(http(), client(url, secret(ClientAuth::Basic)), "test");
    tokens.token().await.unwrap();
    let (form, authorization) = ep.seen.lock().unwrap()[0].clone();
    assert!(!form.contains_key("client_secret"));
    let encoded = authorization
        .unwrap()
        .strip_prefix("Basic ")
        .unwrap()
        .to_owned();
    use base64::Engine as _;
    let pair = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    // RFC 6749 §2.3.1: form-urlencoded before base64 ('~' becomes %7E).
    assert_eq!(String::from_utf8(pair).unwrap(), "client-id:s3cr3t%7Evalue");
}

fn verify(assertion: &str, cert: &str, algorithm: Algorithm, audience: &str) -> Value {
    let cert = Certificate::from_pem(cert).unwrap();
    let mut validation = Validation::new(algorithm);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
    jsonwebtoken::decode::<Value>(assertion, cert.decoding_key(), &validation)
        .unwrap()
        .claims
}

#[tokio::test]
async fn a_jwt_bearer_grant_is_an_rs256_assertion_the_certificate_verifies() {
    let (ep, url) = endpoint(Answer::Token { expires_in: None }, Duration::ZERO).await;
    let credentials = Credentials::JwtBearer {
        client_id: "3MVG9consumer".into(),
        subject: "integration@example.com".into(),
        audience: "https://login.salesforce.com".into(),
        key: key_a(),
        lifetime: Duration::from_secs(180),
    };
    let tokens = TokenManager::new(http(), client(url, credentials), "test");
    tokens.token().await.unwrap();
    let (form, _) = ep.seen.lock().unwrap()[0].clone();
    assert_eq!(form["grant_type"], client::JWT_BEARER_GRANT);
    let assertion = &form["assertion"];
    let header = jsonwebtoken::decode_header(assertion).unwrap();
    assert_eq!(header.alg, Algorithm::RS256);
    let claims = verify(
        assertion,
        CERT_A,
        Algorithm::RS256,
        "https://login.salesforce.com",
    );
    assert_eq!(claims["iss"], "3MVG9consumer");
    assert_eq!(claims["sub"], "integration@example.com");
    let exp = claims["exp"].as_u64().unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        (now + 170..=now + 190).contains(&exp),
        "exp {exp}, now {now}"
    );
    // Signed by key A: the other certificate does not verify it.
    let other = Certificate::from_pem(CERT_B).unwrap();
    assert!(jsonwebtoken::decode::<Value>(
        assertion,
        other.decoding_key(),
        &Validation::new(Algorithm::RS256)
    )
    .is_err());
}

#[tokio::test]
async fn a_client_assertion_names_the_certificate_by_both_thumbprints() {
    let (ep, url) = endpoint(
        Answer::Token {
            expires_in: Some(3599),
        },
        Duration::ZERO,
    )
    .await;
    let credentials = Credentials::ClientAssertion {
        client_id: "app-id".into(),
        audience: url.to_string(),
        key: key_a(),
        certificate: Thumbprints::from_pem(CERT_A).unwrap(),
        lifetime: Duration::from_secs(300),
    };
    let mut oauth = client(url.clone(), credentials);
    oauth.scope = Some("https://org.crm.dynamics.com/.default".into());
    let tokens = TokenManager::new(http(), oauth, "test");
    tokens.token().await.unwrap();
    let (form, authorization) = ep.seen.lock().unwrap()[0].clone();
    assert!(authorization.is_none());
    assert_eq!(form["grant_type"], "client_credentials");
    assert_eq!(form["client_id"], "app-id");
    assert_eq!(form["client_assertion_type"], client::JWT_CLIENT_ASSERTION);
    assert_eq!(form["scope"], "https://org.crm.dynamics.com/.default");
    assert!(!form.contains_key("client_secret"));
    let assertion = &form["client_assertion"];
    let header = jsonwebtoken::decode_header(assertion).unwrap();
    let cert = Certificate::from_pem(CERT_A).unwrap();
    assert_eq!(header.x5t.as_deref(), Some(cert.x5t.as_str()));
    assert_eq!(header.x5t_s256.as_deref(), Some(cert.x5t_s256.as_str()));
    let claims = verify(assertion, CERT_A, Algorithm::RS256, url.as_str());
    assert_eq!(claims["iss"], "app-id");
    assert_eq!(claims["sub"], "app-id");
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    assert!(claims["nbf"].as_u64().is_some() && claims["iat"].as_u64().is_some());
}

#[tokio::test]
async fn a_ps256_assertion_verifies_too() {
    let (ep, url) = endpoint(
        Answer::Token {
            expires_in: Some(3599),
        },
        Duration::ZERO,
    )
    .await;
    let credentials = Credentials::ClientAssertion {
        client_id: "app-id".into(),
        audience: url.to_string(),
        key: SigningKey::from_pem(KEY_A, AssertionAlgorithm::PS256).unwrap(),
        certificate: Thumbprints::from_pem(CERT_A).unwrap(),
        lifetime: Duration::from_secs(300),
    };
    TokenManager::new(http(), client(url.clone(), credentials), "test")
        .token()
        .await
        .unwrap();
    let (form, _) = ep.seen.lock().unwrap()[0].clone();
    verify(
        &form["client_assertion"],
        CERT_A,
        Algorithm::PS256,
        url.as_str(),
    );
}

#[tokio::test]
async fn refusals_are_read_from_the_oauth_error_body() {
    let (ep, url) = endpoint(
        Answer::Error {
            status: 400,
            body: r#"{"error":"invalid_client","error_description":"invalid client credentials"}"#
                .into(),
        },
        Duration::ZERO,
    )
    .await;
    let tokens = TokenManager::new(http(), client(url, secret(ClientAuth::Body)), "test");
    let err = tokens.token().await.unwrap_err();
    assert!(
        matches!(&err, CrmError::Auth(m) if m == "invalid_client: invalid client credentials"),
        "{err:?}"
    );
    assert!(!crate::retry::Retryable::is_retryable(&err));

    *ep.answer.lock().unwrap() = Answer::Error {
        status: 503,
        body: "<html>down</html>".into(),
    };
    let err = tokens.token().await.unwrap_err();
    assert!(matches!(err, CrmError::Status { status: 503, .. }));
    assert!(
        crate::retry::Retryable::is_retryable(&err),
        "errors are not cached either"
    );

    *ep.answer.lock().unwrap() = Answer::Error {
        status: 200,
        body: r#"{"access_tokn": "leaked-value"}"#.into(),
    };
    let err = tokens.token().await.unwrap_err();
    assert!(
        matches!(&err, CrmError::InvalidResponse(m) if !m.contains("leaked")),
        "{err:?}"
    );
}

#[test]
fn keys_and_certificates_that_are_not_pem_are_refused_without_echoing_them() {
    let err = SigningKey::from_pem("not a key s3cr3t", AssertionAlgorithm::RS256).unwrap_err();
    assert!(!err.contains("s3cr3t"), "{err}");
    assert!(
        Thumbprints::from_pem(KEY_A).is_err(),
        "a key is not a certificate"
    );
    // A PEM on one line with literal \n, as environment variables carry it.
    let one_line = KEY_A.trim().replace('\n', "\\n");
    assert!(SigningKey::from_pem(&one_line, AssertionAlgorithm::RS256).is_ok());
}

#[tokio::test]
async fn salesforce_issues_a_token_without_expires_in_for_both_grants() {
    use crate::simulator::{SalesforceSim, SalesforceSimConfig};
    let mut config = SalesforceSimConfig::default();
    config.auth.jwt_certificate = Some(Certificate::from_pem(CERT_A).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = SalesforceSim::start(config.clone(), listener)
        .await
        .unwrap();
    let token_url = url::Url::parse(&format!("{}/services/oauth2/token", sim.base_url())).unwrap();

    let secret = Credentials::Secret {
        client_id: config.auth.consumer_key.clone(),
        secret: SecretString::from(config.auth.consumer_secret.clone()),
        auth: ClientAuth::Body,
    };
    let token = TokenManager::new(http(), client(token_url.clone(), secret), "salesforce")
        .token()
        .await
        .unwrap();
    assert_eq!(token.expires_in(), None);
    assert_eq!(token.instance_url(), Some(sim.base_url().as_str()));

    let jwt = Credentials::JwtBearer {
        client_id: config.auth.consumer_key.clone(),
        subject: config.auth.jwt_users[0].clone(),
        audience: "https://login.salesforce.com".into(),
        key: key_a(),
        lifetime: Duration::from_secs(180),
    };
    let token = TokenManager::new(http(), client(token_url, jwt), "salesforce")
        .token()
        .await
        .unwrap();
    assert!(token.instance_url().is_some());
    sim.shutdown();
}

#[tokio::test]
async fn entra_id_issues_a_token_for_a_certificate_assertion_and_refuses_a_wrong_secret() {
    use crate::simulator::dynamics::{DynamicsSim, DynamicsSimConfig};
    let mut config = DynamicsSimConfig::default();
    config.entra.certificate = Some(Certificate::from_pem(CERT_A).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = DynamicsSim::start(config.clone(), listener).await.unwrap();
    let token_url = url::Url::parse(&sim.token_url()).unwrap();
    let scope = Some(format!("{}/.default", sim.base_url()));

    let mut assertion = client(
        token_url.clone(),
        Credentials::ClientAssertion {
            client_id: config.entra.client_id.clone(),
            audience: token_url.to_string(),
            key: key_a(),
            certificate: Thumbprints::from_pem(CERT_A).unwrap(),
            lifetime: Duration::from_secs(300),
        },
    );
    assertion.scope = scope.clone();
    let token = TokenManager::new(http(), assertion, "dynamics")
        .token()
        .await
        .unwrap();
    assert_eq!(token.expires_in(), Some(3599));

    let mut wrong = client(
        token_url,
        Credentials::Secret {
            client_id: config.entra.client_id.clone(),
            secret: SecretString::from("not-the-secret"),
            auth: ClientAuth::Body,
        },
    );
    wrong.scope = scope;
    let err = TokenManager::new(http(), wrong, "dynamics")
        .token()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CrmError::Auth(m) if m.starts_with("invalid_client: AADSTS7000215")),
        "{err:?}"
    );
    sim.shutdown();
}
