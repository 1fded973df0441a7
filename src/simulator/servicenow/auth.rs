//! Who a request is: Basic credentials of a `sys_user`, or an OAuth access token from
//! `POST /oauth_token.do` (ServiceNowDocs `r_RESTOAuthExample.md`, `client-credentials.md`,
//! `client-credentials-grant-workflow.md`). Grants: `password` (user credentials plus client
//! id/secret, with a refresh token), `refresh_token`, and `client_credentials` (Washington DC and
//! later; only with `glide.oauth.inbound.client.credential.grant_type.enabled` and an OAuth
//! Application User, whose identity the token carries). Parameters are read from the form body
//! only (`OAuth-token-processor-parm.md`).
//!
//! Every token-endpoint refusal is 401 `{"error_description":"access_denied","error":
//! "server_error"}`, as instances are seen to answer whatever the cause.

use std::collections::HashMap;
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// A `sys_user` record that can authenticate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimUser {
    pub user_name: String,
    pub password: String,
    #[serde(default)]
    pub roles: Vec<String>,
}

/// An "OAuth API endpoint for external clients" application registry entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OAuthClient {
    pub client_id: String,
    pub client_secret: String,
    /// The OAuth Application User a client-credentials token acts as; `None` = not set up.
    #[serde(default)]
    pub application_user: Option<String>,
}

/// The identity a request was authenticated as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Caller {
    pub(super) user_name: String,
    pub(super) roles: Vec<String>,
}

/// A successful token response.
#[derive(Debug, Clone, Serialize)]
pub(super) struct TokenResponse {
    pub(super) access_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) refresh_token: Option<String>,
    pub(super) scope: &'static str,
    pub(super) token_type: &'static str,
    pub(super) expires_in: u64,
}

/// The token endpoint refused; always rendered as the one `access_denied` body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct AccessDenied;

struct Issued {
    user_name: String,
    expires_at: Instant,
}

struct Refresh {
    client_id: String,
    user_name: String,
}

pub(super) struct Auth {
    users: Vec<SimUser>,
    clients: Vec<OAuthClient>,
    pub(super) basic_enabled: bool,
    pub(super) client_credentials_enabled: bool,
    token_lifetime: Duration,
    tokens: HashMap<String, Issued>,
    refresh_tokens: HashMap<String, Refresh>,
    pub(super) tokens_issued: u64,
}

impl Auth {
    pub(super) fn new(
        users: Vec<SimUser>,
        clients: Vec<OAuthClient>,
        basic_enabled: bool,
        client_credentials_enabled: bool,
        token_lifetime: Duration,
    ) -> Self {
        Self {
            users,
            clients,
            basic_enabled,
            client_credentials_enabled,
            token_lifetime,
            tokens: HashMap::new(),
            refresh_tokens: HashMap::new(),
            tokens_issued: 0,
        }
    }

    /// Makes every issued access token invalid at once (refresh tokens stay usable).
    pub(super) fn expire_tokens(&mut self) {
        self.tokens.clear();
    }

    /// The caller behind an `Authorization` header value, if it is accepted.
    pub(super) fn authenticate(
        &mut self,
        authorization: Option<&str>,
        now: Instant,
    ) -> Option<Caller> {
        let (scheme, credentials) = authorization?.trim().split_once(' ')?;
        let credentials = credentials.trim();
        let user_name = if scheme.eq_ignore_ascii_case("basic") {
            if !self.basic_enabled {
                return None;
            }
            let decoded = String::from_utf8(STANDARD.decode(credentials).ok()?).ok()?;
            let (user, password) = decoded.split_once(':')?;
            self.users
                .iter()
                .find(|u| u.user_name == user && u.password == password)?
                .user_name
                .clone()
        } else if scheme.eq_ignore_ascii_case("bearer") {
            let issued = self.tokens.get(credentials)?;
            if issued.expires_at <= now {
                self.tokens.remove(credentials);
                return None;
            }
            issued.user_name.clone()
        } else {
            return None;
        };
        let roles = self
            .users
            .iter()
            .find(|u| u.user_name == user_name)
            .map(|u| u.roles.clone())
            .unwrap_or_default();
        Some(Caller { user_name, roles })
    }

    /// `POST /oauth_token.do` with the form parameters `params`.
    pub(super) fn token(
        &mut self,
        params: &HashMap<String, String>,
        now: Instant,
    ) -> Result<TokenResponse, AccessDenied> {
        let param = |k: &str| params.get(k).map(String::as_str);
        let client = self
            .clients
            .iter()
            .find(|c| {
                Some(c.client_id.as_str()) == param("client_id")
                    && Some(c.client_secret.as_str()) == param("client_secret")
            })
            .cloned()
            .ok_or(AccessDenied)?;
        let (user_name, with_refresh) = match param("grant_type") {
            Some("password") => {
                let user = self
                    .users
                    .iter()
                    .find(|u| {
                        Some(u.user_name.as_str()) == param("username")
                            && Some(u.password.as_str()) == param("password")
                    })
                    .ok_or(AccessDenied)?;
                (user.user_name.clone(), true)
            }
            Some("refresh_token") => {
                let refresh = param("refresh_token")
                    .and_then(|t| self.refresh_tokens.get(t))
                    .filter(|r| r.client_id == client.client_id)
                    .ok_or(AccessDenied)?;
                (refresh.user_name.clone(), false)
            }
            Some("client_credentials") if self.client_credentials_enabled => {
                let user = client.application_user.clone().ok_or(AccessDenied)?;
                if !self.users.iter().any(|u| u.user_name == user) {
                    return Err(AccessDenied);
                }
                (user, false)
            }
            _ => return Err(AccessDenied),
        };
        let access_token = random_token();
        self.tokens.retain(|_, t| t.expires_at > now);
        self.tokens.insert(
            access_token.clone(),
            Issued {
                user_name: user_name.clone(),
                expires_at: now + self.token_lifetime,
            },
        );
        let refresh_token = with_refresh.then(|| {
            let token = random_token();
            self.refresh_tokens.insert(
                token.clone(),
                Refresh {
                    client_id: client.client_id.clone(),
                    user_name,
                },
            );
            token
        });
        self.tokens_issued += 1;
        Ok(TokenResponse {
            access_token,
            refresh_token,
            scope: "useraccount",
            token_type: "Bearer",
            // The documented sample answers `expires_in: 1799` for the default 1800 s lifespan.
            expires_in: self.token_lifetime.as_secs().saturating_sub(1),
        })
    }
}

fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 48]>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(client_credentials: bool) -> Auth {
        Auth::new(
            vec![SimUser {
                user_name: "integration".to_owned(),
                password: "pw".to_owned(),
                roles: vec!["itil".to_owned()],
            }],
            vec![OAuthClient {
                client_id: "cid".to_owned(),
                client_secret: "secret".to_owned(),
                application_user: Some("integration".to_owned()),
            }],
            true,
            client_credentials,
            Duration::from_secs(1800),
        )
    }

    fn form(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn basic(user: &str, password: &str) -> String {
        format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
    }

    #[tokio::test]
    async fn basic_credentials_of_a_user_are_accepted_and_wrong_ones_are_not() {
        let mut auth = auth(false);
        let now = Instant::now();
        let caller = auth.authenticate(Some(&basic("integration", "pw")), now);
        assert_eq!(caller.map(|c| c.roles), Some(vec!["itil".to_owned()]));
        assert_eq!(
            auth.authenticate(Some(&basic("integration", "PW")), now),
            None
        );
        assert_eq!(auth.authenticate(Some("Basic !!!"), now), None);
        assert_eq!(auth.authenticate(None, now), None);
        auth.basic_enabled = false;
        assert_eq!(
            auth.authenticate(Some(&basic("integration", "pw")), now),
            None
        );
    }

    #[tokio::test]
    async fn the_password_grant_issues_a_token_and_a_refresh_token() -> Result<(), AccessDenied> {
        let mut auth = auth(false);
        let now = Instant::now();
        let issued = auth.token(
            &form(&[
                ("grant_type", "password"),
                ("client_id", "cid"),
                ("client_secret", "secret"),
                ("username", "integration"),
                ("password", "pw"),
            ]),
            now,
        )?;
        assert_eq!(issued.expires_in, 1799);
        let caller = auth.authenticate(Some(&format!("Bearer {}", issued.access_token)), now);
        assert_eq!(caller.map(|c| c.user_name).as_deref(), Some("integration"));
        let refresh = issued.refresh_token.unwrap_or_default();
        let renewed = auth.token(
            &form(&[
                ("grant_type", "refresh_token"),
                ("client_id", "cid"),
                ("client_secret", "secret"),
                ("refresh_token", &refresh),
            ]),
            now,
        )?;
        assert_ne!(renewed.access_token, issued.access_token);
        Ok(())
    }

    #[tokio::test]
    async fn client_credentials_work_only_when_the_instance_property_enables_them() {
        let params = form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "cid"),
            ("client_secret", "secret"),
        ]);
        let now = Instant::now();
        assert_eq!(auth(false).token(&params, now).err(), Some(AccessDenied));
        let issued = auth(true).token(&params, now);
        assert!(issued.as_ref().is_ok_and(|t| t.refresh_token.is_none()));
    }

    #[tokio::test]
    async fn wrong_secrets_users_and_grants_are_all_access_denied() {
        let mut auth = auth(true);
        let now = Instant::now();
        for params in [
            form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "cid"),
                ("client_secret", "nope"),
            ]),
            form(&[
                ("grant_type", "password"),
                ("client_id", "cid"),
                ("client_secret", "secret"),
                ("username", "integration"),
                ("password", "x"),
            ]),
            form(&[
                ("grant_type", "refresh_token"),
                ("client_id", "cid"),
                ("client_secret", "secret"),
                ("refresh_token", "forged"),
            ]),
            form(&[
                ("grant_type", "authorization_code"),
                ("client_id", "cid"),
                ("client_secret", "secret"),
            ]),
            form(&[]),
        ] {
            assert_eq!(auth.token(&params, now).err(), Some(AccessDenied));
        }
        assert_eq!(auth.tokens_issued, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_expires_after_its_lifetime_or_when_all_are_expired() -> Result<(), AccessDenied>
    {
        let mut auth = auth(true);
        let params = form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "cid"),
            ("client_secret", "secret"),
        ]);
        let token = format!(
            "Bearer {}",
            auth.token(&params, Instant::now())?.access_token
        );
        tokio::time::advance(Duration::from_secs(1799)).await;
        assert!(auth.authenticate(Some(&token), Instant::now()).is_some());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(auth.authenticate(Some(&token), Instant::now()).is_none());

        let token = format!(
            "Bearer {}",
            auth.token(&params, Instant::now())?.access_token
        );
        auth.expire_tokens();
        assert!(auth.authenticate(Some(&token), Instant::now()).is_none());
        Ok(())
    }
}
