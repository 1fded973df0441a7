//! The `http` CRM adapter: any REST CRM, described by configuration.
//!
//! A URL template per key kind with percent-encoded placeholders, a method, headers and
//! bearer/basic/API-key auth. The customers are found with a JSON pointer into the response
//! (every element of an array is a candidate), their id, type and last-modified time with
//! pointers into each, and their fields picked with pointers. A 404, an empty array or `null`
//! means "not found". Phone lookups try the configured notations in order, because CRMs store
//! numbers as typed; the first notation that finds anyone decides.
//!
//! Grading: with `phone_pointers` / `email_pointers`, each result is graded on those fields and
//! dropped when they do not hold the key (a CRM that searches fuzzily). Without them the CRM is
//! trusted, and the grade is the notation that found the result: one that names the country
//! (`e164`, `e164_digits`, `international`, a `raw` number with `+`) is `exact`, the others
//! `national`; ids and emails are `exact`.

use std::collections::BTreeMap;
use std::sync::Arc;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use phonenumber::country;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::Value;

use super::budget::CallBudget;
use super::candidate::{last_modified_of, Candidate, MatchQuality};
use super::grade::{best_match, count_dropped, NOT_MATCHING};
use super::upstream::{http_client, Upstream};
use super::{CrmAdapter, CrmError, CrmRecord, CustomerKey, KeyKind};
use crate::config::{HttpAuthKind, HttpCrmSettings};
use crate::phone::Notation;

/// Everything but unreserved characters is escaped, so a value can never add a path segment,
/// a query parameter or a fragment to the CRM URL.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

const SOURCE: &str = "http";

pub struct HttpCrm {
    http: reqwest::Client,
    templates: BTreeMap<KeyKind, String>,
    key_kinds: Vec<KeyKind>,
    allowed_hosts: Vec<String>,
    method: Method,
    results_pointer: String,
    fields: BTreeMap<String, String>,
    phone_notations: Vec<Notation>,
    record_id_pointer: String,
    record_type: String,
    record_type_pointer: String,
    last_modified_pointer: String,
    phone_pointers: Vec<String>,
    email_pointers: Vec<String>,
    region: country::Id,
    upstream: Upstream,
}

/// One lookup value and the grade a result it finds gets when the CRM is trusted.
struct Probe {
    value: String,
    grade: MatchQuality,
}

impl HttpCrm {
    /// The adapter `[crm.http]` describes (validated at load: the errors here are belts and
    /// braces); `region` is `phone.default_region`, for grading stored numbers.
    pub fn from_settings(settings: &HttpCrmSettings, region: country::Id) -> anyhow::Result<Self> {
        let http = http_client(&settings.common)
            .default_headers(headers(settings)?)
            .build()?;
        Ok(Self {
            http,
            templates: settings.templates.clone(),
            key_kinds: settings.templates.keys().copied().collect(),
            allowed_hosts: settings.allowed_hosts.clone(),
            method: Method::from_bytes(settings.method.as_bytes())
                .map_err(|_| anyhow::anyhow!("crm.http.method: not an HTTP method"))?,
            results_pointer: settings.results_pointer.clone(),
            fields: settings.fields.clone(),
            phone_notations: settings.phone_notations.clone(),
            record_id_pointer: settings.record_id_pointer.clone(),
            record_type: settings.record_type.clone(),
            record_type_pointer: settings.record_type_pointer.clone(),
            last_modified_pointer: settings.last_modified_pointer.clone(),
            phone_pointers: settings.phone_pointers.clone(),
            email_pointers: settings.email_pointers.clone(),
            region,
            upstream: Upstream::from_settings(SOURCE, &settings.common),
        })
    }

    /// The same adapter, its calls waiting on `budget` (`upstream::Budgets` chose it).
    pub fn with_budget(mut self, budget: Arc<dyn CallBudget>) -> Self {
        self.upstream = self.upstream.with_budget(budget);
        self
    }

    /// The values to try for a key, in order (several notations for a phone number).
    fn probes(&self, key: &CustomerKey) -> Vec<Probe> {
        let exact = |v: &str| Probe {
            value: v.trim().to_owned(),
            grade: MatchQuality::Exact,
        };
        match key {
            CustomerKey::CustomerId(v)
            | CustomerKey::ExternalContactId(v)
            | CustomerKey::MessagingId(v)
            | CustomerKey::Email(v) => vec![exact(v)],
            CustomerKey::Phone(number) => {
                let mut out: Vec<Probe> = Vec::new();
                for notation in &self.phone_notations {
                    let value = number.notation(*notation);
                    if out.iter().any(|p| p.value == value) {
                        continue;
                    }
                    let names_country = match notation {
                        Notation::E164 | Notation::E164Digits | Notation::International => true,
                        Notation::Raw => value.trim_start().starts_with('+'),
                        Notation::National | Notation::NationalDigits => false,
                    };
                    out.push(Probe {
                        value,
                        grade: if names_country {
                            MatchQuality::Exact
                        } else {
                            MatchQuality::National
                        },
                    });
                }
                out
            }
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

    async fn fetch(&self, url: &str) -> Result<Option<Value>, CrmError> {
        let response = self
            .upstream
            .send("lookup", self.http.request(self.method.clone(), url))
            .await?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(CrmError::from_status(status.as_u16(), response.headers()));
        }
        let body: Value = response.json().await.map_err(|e| {
            CrmError::InvalidResponse(format!("body is not JSON: {}", e.without_url()))
        })?;
        Ok(Some(body))
    }

    /// The results of a response body: the elements at `results_pointer`.
    fn results<'a>(&self, body: &'a Value) -> Result<Vec<&'a CrmRecord>, CrmError> {
        let found = if self.results_pointer.is_empty() {
            Some(body)
        } else {
            body.pointer(&self.results_pointer)
        };
        let items: Vec<&Value> = match found {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Array(items)) => items.iter().collect(),
            Some(other) => vec![other],
        };
        items
            .into_iter()
            .map(|item| match item {
                Value::Object(map) => Ok(map),
                _ => Err(CrmError::InvalidResponse(
                    "a result is not a JSON object".to_owned(),
                )),
            })
            .collect()
    }

    /// The candidates of a response body for `key`, found with `probe`.
    fn extract(
        &self,
        key: &CustomerKey,
        probe: &Probe,
        body: &Value,
    ) -> Result<Vec<Candidate>, CrmError> {
        let results = self.results(body)?;
        let graded_on: &[String] = match key {
            CustomerKey::Phone(_) => &self.phone_pointers,
            CustomerKey::Email(_) => &self.email_pointers,
            CustomerKey::CustomerId(_)
            | CustomerKey::ExternalContactId(_)
            | CustomerKey::MessagingId(_) => &[],
        };
        let returned = results.len();
        let candidates: Vec<Candidate> = results
            .into_iter()
            .filter_map(|result| {
                let (matched_field, quality) = if graded_on.is_empty() {
                    (key.kind().as_str().to_owned(), probe.grade)
                } else {
                    best_match(key, result, graded_on, self.region)?
                };
                Some(self.candidate(result, matched_field, quality))
            })
            .collect();
        count_dropped(SOURCE, NOT_MATCHING, returned - candidates.len());
        Ok(candidates)
    }

    fn candidate(
        &self,
        result: &CrmRecord,
        matched_field: String,
        quality: MatchQuality,
    ) -> Candidate {
        let whole = Value::Object(result.clone());
        let at = |pointer: &str| {
            (!pointer.is_empty())
                .then(|| whole.pointer(pointer))
                .flatten()
        };
        let text = |pointer: &str| {
            at(pointer).and_then(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
        };
        let fields = if self.fields.is_empty() {
            result.clone()
        } else {
            self.fields
                .iter()
                .filter_map(|(name, pointer)| {
                    whole.pointer(pointer).map(|v| (name.clone(), v.clone()))
                })
                .collect()
        };
        Candidate {
            source: SOURCE,
            record_type: text(&self.record_type_pointer)
                .unwrap_or_else(|| self.record_type.clone()),
            record_id: text(&self.record_id_pointer).unwrap_or_default(),
            matched_field,
            quality,
            last_modified: at(&self.last_modified_pointer).and_then(last_modified_of),
            fields,
        }
    }
}

/// The default headers: `Accept`, the configured ones, and the credentials (marked sensitive,
/// so they never show in a debug print).
fn headers(settings: &HttpCrmSettings) -> anyhow::Result<HeaderMap> {
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
    Ok(headers)
}

#[async_trait::async_trait]
impl CrmAdapter for HttpCrm {
    fn kind(&self) -> &'static str {
        SOURCE
    }

    fn key_kinds(&self) -> &[KeyKind] {
        &self.key_kinds
    }

    async fn find(&self, key: &CustomerKey) -> Result<Vec<Candidate>, CrmError> {
        let Some(template) = self.templates.get(&key.kind()) else {
            return Ok(Vec::new());
        };
        for probe in self.probes(key) {
            let url = Self::render(template, key.kind(), &probe.value);
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
            let body = self.upstream.call("lookup", || self.fetch(&url)).await?;
            let Some(body) = body else {
                continue;
            };
            let candidates = self.extract(key, &probe, &body)?;
            if !candidates.is_empty() {
                return Ok(candidates);
            }
        }
        Ok(Vec::new())
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
    use crate::phone::CallerNumber;
    use serde_json::json;

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

    #[test]
    fn injection_classics_stay_one_percent_encoded_value_in_every_template() {
        let classics = [
            "'",
            "\\",
            "}",
            "' OR 1=1 --",
            "--",
            "%",
            "*",
            "a&b=c#d/../e?f",
        ];
        for kind in KeyKind::ALL {
            let template = format!(
                "https://crm.example.com/api/{{{k}}}?q={{{k}}}",
                k = kind.as_str()
            );
            for classic in classics {
                let url = HttpCrm::render(&template, kind, classic);
                let parsed = url::Url::parse(&url).unwrap();
                assert_eq!(parsed.host_str(), Some("crm.example.com"), "{url}");
                assert_eq!(parsed.path_segments().unwrap().count(), 2, "{url}");
                let pairs: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
                assert_eq!(pairs, [("q".to_owned(), classic.to_owned())], "{url}");
                assert!(parsed.fragment().is_none(), "{url}");
                let segment = parsed.path_segments().unwrap().nth(1).unwrap().to_owned();
                let decoded = percent_encoding::percent_decode_str(&segment)
                    .decode_utf8()
                    .unwrap();
                assert_eq!(decoded, classic, "{url}");
            }
        }
    }

    fn adapter(configure: impl FnOnce(&mut HttpCrmSettings)) -> HttpCrm {
        let mut settings: HttpCrmSettings = serde_json::from_value(json!({
            "templates": {"phone": "http://127.0.0.1:1/x?p={phone}"},
            "allowed_hosts": ["127.0.0.1"],
            "method": "GET", "headers": {}, "auth": "none", "token": "", "username": "",
            "password": "", "api_key_header": "X-API-Key", "api_key": "",
            "results_pointer": "/results", "fields": {}, "phone_notations": ["e164"],
            "record_id_pointer": "/id", "record_type": "customer", "record_type_pointer": "",
            "last_modified_pointer": "", "phone_pointers": [], "email_pointers": [],
            "rate_limit_per_minute": 0, "rate_limit_burst": 1,
            "timeout_ms": 100, "max_retries": 0, "retry_base_ms": 1, "retry_max_ms": 1,
            "max_retry_after_secs": 1, "breaker_failures": 0, "breaker_cooldown_ms": 1,
            "cache_ttl_secs": 0, "not_found_ttl_secs": 0
        }))
        .unwrap();
        configure(&mut settings);
        HttpCrm::from_settings(&settings, country::Id::US).unwrap()
    }

    fn phone() -> CustomerKey {
        CustomerKey::Phone(CallerNumber::parse("tel:+13175550125", country::Id::US).unwrap())
    }

    fn extract(a: &HttpCrm, body: Value) -> Result<Vec<Candidate>, CrmError> {
        let key = phone();
        let probe = a.probes(&key).remove(0);
        a.extract(&key, &probe, &body)
    }

    #[test]
    fn every_result_is_a_candidate_and_empty_results_mean_not_found() {
        let a = adapter(|_| {});
        let found = extract(&a, json!({"results": [{"id": "C1"}, {"id": 2}]})).unwrap();
        let ids: Vec<&str> = found.iter().map(|c| c.record_id.as_str()).collect();
        assert_eq!(ids, ["C1", "2"]);
        assert!(found.iter().all(|c| c.record_type == "customer"));
        assert_eq!(found[0].quality, MatchQuality::Exact, "found by E.164");
        for empty in [json!({"results": []}), json!({"results": null}), json!({})] {
            assert!(extract(&a, empty).unwrap().is_empty());
        }
        assert!(extract(&a, json!({"results": ["x"]})).is_err());
    }

    #[test]
    fn field_pointers_pick_and_rename_values() {
        let a = adapter(|s| {
            s.results_pointer = String::new();
            s.fields = [
                ("tier", "/segment/tier"),
                ("name", "/firstName"),
                ("none", "/nope"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        });
        let body = json!({"firstName": "Ada", "segment": {"tier": "gold"}});
        let record = &extract(&a, body).unwrap()[0].fields;
        assert_eq!(record["tier"], "gold");
        assert_eq!(record["name"], "Ada");
        assert!(!record.contains_key("none"));
    }

    #[test]
    fn pointers_give_each_result_its_type_and_last_modified_time() {
        let a = adapter(|s| {
            s.record_type_pointer = "/kind".into();
            s.last_modified_pointer = "/meta/updated".into();
        });
        let found = extract(
            &a,
            json!({"results": [
                {"id": "L1", "kind": "lead", "meta": {"updated": "2024-01-02T03:04:05Z"}},
                {"id": "C1", "meta": {"updated": 1704164645000u64}}
            ]}),
        )
        .unwrap();
        assert_eq!(found[0].record_type, "lead");
        assert_eq!(
            found[1].record_type, "customer",
            "the fixed type when the pointer finds none"
        );
        assert_eq!(found[0].last_modified, found[1].last_modified);
        assert!(found[0].last_modified.is_some());
    }

    #[test]
    fn with_phone_pointers_a_result_not_holding_the_number_is_dropped() {
        let a = adapter(|s| s.phone_pointers = vec!["/phone".into(), "/mobile".into()]);
        let found = extract(
            &a,
            json!({"results": [
                {"id": "C1", "phone": "(317) 555-0125"},
                {"id": "C2", "phone": "(317) 555-0199", "mobile": "+1 317 555 0125"},
                {"id": "C3", "phone": "(317) 555-0199"}
            ]}),
        )
        .unwrap();
        let graded: Vec<(&str, MatchQuality, &str)> = found
            .iter()
            .map(|c| (c.record_id.as_str(), c.quality, c.matched_field.as_str()))
            .collect();
        assert_eq!(
            graded,
            [
                ("C1", MatchQuality::National, "/phone"),
                ("C2", MatchQuality::Exact, "/mobile")
            ]
        );
    }

    #[test]
    fn the_notation_that_found_a_trusted_result_is_its_grade() {
        let a = adapter(|s| {
            s.phone_notations = vec![
                Notation::E164,
                Notation::National,
                Notation::NationalDigits,
                Notation::International,
                Notation::E164,
            ];
        });
        let grades: Vec<(String, MatchQuality)> = a
            .probes(&phone())
            .into_iter()
            .map(|p| (p.value, p.grade))
            .collect();
        assert_eq!(
            grades,
            [
                ("+13175550125".to_owned(), MatchQuality::Exact),
                ("(317) 555-0125".to_owned(), MatchQuality::National),
                ("3175550125".to_owned(), MatchQuality::National),
                ("+1 317-555-0125".to_owned(), MatchQuality::Exact),
            ],
            "each distinct notation once, in order"
        );
    }
}
