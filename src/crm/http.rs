//! The `http` CRM adapter: any REST CRM, described by configuration.
//!
//! A URL template per key kind with percent-encoded placeholders, a method, headers and
//! bearer/basic/API-key auth; the customer is found with a JSON pointer into the response and
//! its fields picked with JSON pointers. A 404, an empty array or `null` means "not found".
//! Phone lookups try the configured notations in order, because CRMs store numbers as typed.

use std::collections::BTreeMap;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Method;
use secrecy::ExposeSecret;

use super::{CrmAdapter, CrmError, CrmRecord, CustomerKey, KeyKind};
use crate::config::{HttpAuthKind, HttpCrmSettings};
use crate::metrics;
use crate::phone::Notation;
use crate::retry::RetryPolicy;

/// Everything but unreserved characters is escaped, so a value can never add a path segment,
/// a query parameter or a fragment to the CRM URL.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

pub struct HttpCrm {
    http: reqwest::Client,
    templates: BTreeMap<KeyKind, String>,
    allowed_hosts: Vec<String>,
    method: Method,
    results_pointer: String,
    fields: BTreeMap<String, String>,
    phone_notations: Vec<Notation>,
    retry: RetryPolicy,
    budget: crate::budget::RateBudget,
}

impl HttpCrm {
    /// The adapter `[crm.http]` describes (validated at load: the errors here are belts and
    /// braces).
    pub fn from_settings(settings: &HttpCrmSettings) -> anyhow::Result<Self> {
        let mut headers = HeaderMap::new();
        headers.insert(
            reqwest::header::ACCEPT,
            HeaderValue::from_static("application/json"),
        );
        for (name, value) in &settings.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| anyhow::anyhow!("crm.http.headers: bad header name {name}"))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| anyhow::anyhow!("crm.http.headers.{name}: bad header value"))?;
            headers.insert(name, value);
        }
        let mut sensitive = |name: HeaderName, value: String, key: &str| -> anyhow::Result<()> {
            let mut value = HeaderValue::from_str(&value)
                .map_err(|_| anyhow::anyhow!("{key}: not a valid header value"))?;
            value.set_sensitive(true);
            headers.insert(name, value);
            Ok(())
        };
        match settings.auth {
            HttpAuthKind::None => {}
            HttpAuthKind::Bearer => sensitive(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {}", settings.token.expose_secret()),
                "crm.http.token",
            )?,
            HttpAuthKind::Basic => {
                use base64::Engine as _;
                let raw = format!(
                    "{}:{}",
                    settings.username,
                    settings.password.expose_secret()
                );
                sensitive(
                    reqwest::header::AUTHORIZATION,
                    format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode(raw)
                    ),
                    "crm.http.password",
                )?;
            }
            HttpAuthKind::ApiKey => sensitive(
                HeaderName::from_bytes(settings.api_key_header.as_bytes())
                    .map_err(|_| anyhow::anyhow!("crm.http.api_key_header: bad header name"))?,
                settings.api_key.expose_secret().to_owned(),
                "crm.http.api_key",
            )?,
        }
        let http = reqwest::Client::builder()
            .timeout(settings.timeout())
            .connect_timeout(settings.connect_timeout())
            .default_headers(headers)
            .user_agent(concat!("attrsync/", env!("CARGO_PKG_VERSION")))
            // A template must not be redirected to a host nobody configured.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            http,
            templates: settings.templates.clone(),
            allowed_hosts: settings.allowed_hosts.clone(),
            method: Method::from_bytes(settings.method.as_bytes())
                .map_err(|_| anyhow::anyhow!("crm.http.method: not an HTTP method"))?,
            results_pointer: settings.results_pointer.clone(),
            fields: settings.fields.clone(),
            phone_notations: settings.phone_notations.clone(),
            budget: settings.budget(),
            retry: settings.retry(),
        })
    }

    /// The values to try for a key, in order (several notations for a phone number).
    fn candidates(&self, key: &CustomerKey) -> Vec<String> {
        match key {
            CustomerKey::CustomerId(v)
            | CustomerKey::ExternalContactId(v)
            | CustomerKey::Email(v) => {
                vec![v.trim().to_owned()]
            }
            CustomerKey::Phone(number) => number.notations(&self.phone_notations),
        }
    }

    /// Fills every placeholder of the template, percent-encoding the value.
    pub fn render(template: &str, kind: KeyKind, value: &str) -> String {
        let placeholder = format!("{{{}}}", kind.as_str());
        template.replace(
            &placeholder,
            &utf8_percent_encode(value, COMPONENT).to_string(),
        )
    }

    async fn fetch(&self, url: &str) -> Result<Option<CrmRecord>, CrmError> {
        self.budget.acquire().await;
        let started = tokio::time::Instant::now();
        let response = match self.http.request(self.method.clone(), url).send().await {
            Ok(r) => r,
            Err(e) => {
                metrics::upstream_call("crm", "lookup", None, started.elapsed());
                return Err(if e.is_timeout() {
                    CrmError::Timeout
                } else {
                    CrmError::Connect(e.without_url().to_string())
                });
            }
        };
        let status = response.status();
        metrics::upstream_call("crm", "lookup", Some(status.as_u16()), started.elapsed());
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            let retry_after = crate::retry::retry_after_header(response.headers());
            return Err(CrmError::Status {
                status: status.as_u16(),
                retry_after,
            });
        }
        let body: serde_json::Value = response.json().await.map_err(|e| {
            CrmError::InvalidResponse(format!("body is not JSON: {}", e.without_url()))
        })?;
        self.extract(&body)
    }

    /// Applies `results_pointer` and `fields` to a response body.
    fn extract(&self, body: &serde_json::Value) -> Result<Option<CrmRecord>, CrmError> {
        let found = if self.results_pointer.is_empty() {
            Some(body)
        } else {
            body.pointer(&self.results_pointer)
        };
        let customer = match found {
            None | Some(serde_json::Value::Null) => return Ok(None),
            Some(serde_json::Value::Array(items)) => match items.first() {
                None => return Ok(None),
                Some(first) => first,
            },
            Some(other) => other,
        };
        let serde_json::Value::Object(customer) = customer else {
            return Err(CrmError::InvalidResponse(
                "the customer is not a JSON object".to_owned(),
            ));
        };
        if self.fields.is_empty() {
            return Ok(Some(customer.clone()));
        }
        let whole = serde_json::Value::Object(customer.clone());
        Ok(Some(
            self.fields
                .iter()
                .filter_map(|(name, pointer)| {
                    whole.pointer(pointer).map(|v| (name.clone(), v.clone()))
                })
                .collect(),
        ))
    }
}

#[async_trait::async_trait]
impl CrmAdapter for HttpCrm {
    fn name(&self) -> &'static str {
        "http"
    }

    async fn find(&self, key: &CustomerKey) -> Result<Option<CrmRecord>, CrmError> {
        let Some(template) = self.templates.get(&key.kind()) else {
            return Ok(None);
        };
        for value in self.candidates(key) {
            let url = Self::render(template, key.kind(), &value);
            // Validated at start-up already; checked again on the final URL because that is the
            // one that is sent.
            let host_allowed = url::Url::parse(&url).ok().is_some_and(|u| {
                u.host_str()
                    .is_some_and(|h| self.allowed_hosts.iter().any(|a| a.eq_ignore_ascii_case(h)))
            });
            if !host_allowed {
                return Err(CrmError::Unavailable(
                    "the lookup URL's host is not in crm.http.allowed_hosts".to_owned(),
                ));
            }
            let found = self
                .retry
                .run(
                    || self.fetch(&url),
                    |e, wait| {
                        metrics::upstream_retry("crm", "lookup");
                        tracing::warn!(error = %e, wait_ms = wait.as_millis() as u64, "retrying CRM lookup");
                    },
                )
                .await?;
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    async fn ready(&self) -> Result<(), CrmError> {
        // Probing the CRM on every readiness check would spend its rate limit; configuration was
        // validated at start, and lookup failures show in the upstream metrics.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_percent_encoded_so_values_cannot_reshape_the_url() {
        let t = "https://crm.example.com/api/customers?phone={phone}";
        assert_eq!(
            HttpCrm::render(t, KeyKind::Phone, "+1 317/555&x=1#f"),
            "https://crm.example.com/api/customers?phone=%2B1%20317%2F555%26x%3D1%23f"
        );
        let t = "https://crm.example.com/api/customers/{customer_id}";
        assert_eq!(
            HttpCrm::render(t, KeyKind::CustomerId, "../admin"),
            "https://crm.example.com/api/customers/..%2Fadmin"
        );
    }

    fn adapter(results_pointer: &str, fields: &[(&str, &str)]) -> HttpCrm {
        let mut settings: HttpCrmSettings = serde_json::from_value(serde_json::json!({
            "templates": {"phone": "http://127.0.0.1:1/x?p={phone}"},
            "allowed_hosts": ["127.0.0.1"],
            "method": "GET", "headers": {}, "auth": "none", "token": "", "username": "",
            "password": "", "api_key_header": "X-API-Key", "api_key": "",
            "results_pointer": results_pointer, "fields": {}, "phone_notations": ["e164"],
            "rate_limit_per_minute": 0, "rate_limit_burst": 1,
            "timeout_ms": 100, "max_retries": 0, "retry_base_ms": 1, "retry_max_ms": 1,
            "max_retry_after_secs": 1
        }))
        .unwrap();
        settings.fields = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        HttpCrm::from_settings(&settings).unwrap()
    }

    #[test]
    fn the_first_result_is_the_customer_and_empty_results_mean_not_found() {
        let a = adapter("/results", &[]);
        let body = serde_json::json!({"results": [{"id": "C1"}, {"id": "C2"}]});
        assert_eq!(a.extract(&body).unwrap().unwrap()["id"], "C1");
        assert!(a
            .extract(&serde_json::json!({"results": []}))
            .unwrap()
            .is_none());
        assert!(a
            .extract(&serde_json::json!({"results": null}))
            .unwrap()
            .is_none());
        assert!(a.extract(&serde_json::json!({})).unwrap().is_none());
        assert!(a.extract(&serde_json::json!({"results": ["x"]})).is_err());
    }

    #[test]
    fn field_pointers_pick_and_rename_values() {
        let a = adapter(
            "",
            &[
                ("tier", "/segment/tier"),
                ("name", "/firstName"),
                ("none", "/nope"),
            ],
        );
        let body = serde_json::json!({"firstName": "Ada", "segment": {"tier": "gold"}});
        let record = a.extract(&body).unwrap().unwrap();
        assert_eq!(record["tier"], "gold");
        assert_eq!(record["name"], "Ada");
        assert!(!record.contains_key("none"));
    }
}
