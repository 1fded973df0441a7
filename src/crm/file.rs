//! The `file` CRM adapter: customers from a JSON array or a CSV file, indexed in memory at start.
//!
//! Phone numbers on both sides are normalised to E.164 when indexed and when looked up, so a
//! file that stores `(317) 555-0125` matches an ANI of `tel:+13175550125` (graded `national`:
//! the file does not say the country). Every record holding a key is a candidate (record type
//! `customer`, record id from `id_field`): a number shared by two customers is two candidates,
//! for the match policy to decide.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context as _;
use phonenumber::country;

use super::candidate::Candidate;
use super::grade::best_match;
use super::{CrmAdapter, CrmError, CrmRecord, CustomerKey, KeyKind};
use crate::config::FileCrmSettings;
use crate::phone::CallerNumber;

/// The record type of every candidate this adapter returns.
pub const RECORD_TYPE: &str = "customer";

const KEY_KINDS: [KeyKind; 5] = [
    KeyKind::CustomerId,
    KeyKind::ExternalContactId,
    KeyKind::Phone,
    KeyKind::Email,
    KeyKind::MessagingId,
];

pub struct FileCrm {
    customers: Vec<CrmRecord>,
    region: country::Id,
    id_field: String,
    external_id_field: String,
    messaging_id_field: String,
    phone_fields: Vec<String>,
    email_fields: Vec<String>,
    by_id: HashMap<String, Vec<usize>>,
    by_external_id: HashMap<String, Vec<usize>>,
    by_phone: HashMap<String, Vec<usize>>,
    by_email: HashMap<String, Vec<usize>>,
    by_messaging_id: HashMap<String, Vec<usize>>,
}

/// Adds record `i` under `key`, once.
fn add(index: &mut HashMap<String, Vec<usize>>, key: String, i: usize) {
    let records = index.entry(key).or_default();
    if records.last() != Some(&i) {
        records.push(i);
    }
}

impl FileCrm {
    /// Reads and indexes `crm.file.path`; `region` is `phone.default_region`, for numbers in the
    /// file written without a country code.
    pub fn from_settings(settings: &FileCrmSettings, region: country::Id) -> anyhow::Result<Self> {
        let path = settings.path.as_path();
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("crm.file.path: cannot read {}", path.display()))?;
        let records = parse_records(path, &text).with_context(|| {
            format!(
                "crm.file.path: {} is not a valid customer file",
                path.display()
            )
        })?;
        Ok(Self::index(records, settings, region))
    }

    pub fn index(records: Vec<CrmRecord>, settings: &FileCrmSettings, region: country::Id) -> Self {
        let mut crm = FileCrm {
            customers: Vec::with_capacity(records.len()),
            region,
            id_field: settings.id_field.clone(),
            external_id_field: settings.external_contact_id_field.clone(),
            messaging_id_field: settings.messaging_id_field.clone(),
            phone_fields: settings.phone_fields.clone(),
            email_fields: settings.email_fields.clone(),
            by_id: HashMap::new(),
            by_external_id: HashMap::new(),
            by_phone: HashMap::new(),
            by_email: HashMap::new(),
            by_messaging_id: HashMap::new(),
        };
        for (i, record) in records.into_iter().enumerate() {
            if let Some(id) = text(&record, &settings.id_field) {
                add(&mut crm.by_id, id, i);
            }
            if let Some(id) = text(&record, &settings.external_contact_id_field) {
                add(&mut crm.by_external_id, id, i);
            }
            if let Some(id) = (!settings.messaging_id_field.is_empty())
                .then(|| text(&record, &settings.messaging_id_field))
                .flatten()
            {
                add(&mut crm.by_messaging_id, id, i);
            }
            for field in &settings.phone_fields {
                if let Some(number) =
                    text(&record, field).and_then(|t| CallerNumber::parse(&t, region))
                {
                    add(&mut crm.by_phone, number.canonical(), i);
                }
            }
            for field in &settings.email_fields {
                if let Some(email) = text(&record, field) {
                    add(&mut crm.by_email, email.to_lowercase(), i);
                }
            }
            crm.customers.push(record);
        }
        crm
    }

    pub fn len(&self) -> usize {
        self.customers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.customers.is_empty()
    }

    /// The records `index` holds for `key`, graded on `fields`.
    fn candidates(
        &self,
        key: &CustomerKey,
        found: Option<&Vec<usize>>,
        fields: &[String],
    ) -> Vec<Candidate> {
        found
            .into_iter()
            .flatten()
            .filter_map(|&i| {
                let record = &self.customers[i];
                let (matched_field, quality) = best_match(key, record, fields, self.region)?;
                Some(Candidate {
                    source: "file",
                    record_type: RECORD_TYPE.to_owned(),
                    record_id: text(record, &self.id_field).unwrap_or_default(),
                    matched_field,
                    quality,
                    last_modified: None,
                    fields: record.clone(),
                })
            })
            .collect()
    }
}

/// A field's value as trimmed, non-empty text (strings and numbers).
fn text(record: &CrmRecord, field: &str) -> Option<String> {
    record
        .get(field)
        .and_then(|v| match v {
            serde_json::Value::String(s) => Some(s.trim().to_owned()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .filter(|s| !s.is_empty())
}

fn parse_records(path: &Path, text: &str) -> anyhow::Result<Vec<CrmRecord>> {
    let is_csv = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if is_csv {
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        let headers = reader.headers()?.clone();
        let mut out = Vec::new();
        for (line, row) in reader.records().enumerate() {
            let row = row.with_context(|| format!("CSV record {}", line + 1))?;
            let record: CrmRecord = headers
                .iter()
                .zip(row.iter())
                .filter(|(_, v)| !v.is_empty())
                .map(|(h, v)| (h.to_owned(), serde_json::Value::String(v.to_owned())))
                .collect();
            out.push(record);
        }
        Ok(out)
    } else {
        let value: serde_json::Value = serde_json::from_str(text)?;
        let serde_json::Value::Array(items) = value else {
            anyhow::bail!("expected a JSON array of customer objects");
        };
        items
            .into_iter()
            .enumerate()
            .map(|(i, item)| match item {
                serde_json::Value::Object(map) => Ok(map),
                _ => anyhow::bail!("element {i} is not an object"),
            })
            .collect()
    }
}

#[async_trait::async_trait]
impl CrmAdapter for FileCrm {
    fn kind(&self) -> &'static str {
        "file"
    }

    fn key_kinds(&self) -> &[KeyKind] {
        &KEY_KINDS
    }

    async fn find(&self, key: &CustomerKey) -> Result<Vec<Candidate>, CrmError> {
        let one = std::slice::from_ref;
        Ok(match key {
            CustomerKey::CustomerId(id) => {
                self.candidates(key, self.by_id.get(id.trim()), one(&self.id_field))
            }
            CustomerKey::ExternalContactId(id) => self.candidates(
                key,
                self.by_external_id.get(id.trim()),
                one(&self.external_id_field),
            ),
            CustomerKey::Phone(number) => self.candidates(
                key,
                self.by_phone.get(&number.canonical()),
                &self.phone_fields,
            ),
            CustomerKey::Email(email) => self.candidates(
                key,
                self.by_email.get(&email.trim().to_lowercase()),
                &self.email_fields,
            ),
            // Exact text only: a platform id is never read as a phone number.
            CustomerKey::MessagingId(id) => self.candidates(
                key,
                self.by_messaging_id.get(id.trim()),
                one(&self.messaging_id_field),
            ),
        })
    }

    async fn ready(&self) -> Result<(), CrmError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SourceSettings;
    use crate::crm::MatchQuality;

    fn settings() -> FileCrmSettings {
        FileCrmSettings {
            path: "unused".into(),
            id_field: "id".into(),
            phone_fields: vec!["phone".into(), "mobile".into()],
            email_fields: vec!["email".into()],
            external_contact_id_field: "externalContactId".into(),
            messaging_id_field: "messagingId".into(),
            common: SourceSettings {
                timeout_ms: 1000,
                max_retries: 0,
                retry_base_ms: 1,
                retry_max_ms: 1,
                max_retry_after_secs: 1,
                rate_limit_per_minute: 0,
                rate_limit_burst: 1,
                rate_limit_per_second: 0,
                breaker_failures: 0,
                breaker_cooldown_ms: 1,
                cache_ttl_secs: 0,
                not_found_ttl_secs: 0,
            },
        }
    }

    fn crm(json: serde_json::Value) -> FileCrm {
        let records = match json {
            serde_json::Value::Array(items) => items
                .into_iter()
                .filter_map(|v| v.as_object().cloned())
                .collect(),
            _ => vec![],
        };
        FileCrm::index(records, &settings(), country::Id::US)
    }

    fn phone(s: &str) -> CustomerKey {
        CustomerKey::Phone(CallerNumber::parse(s, country::Id::US).unwrap())
    }

    #[tokio::test]
    async fn a_tel_uri_ani_finds_a_customer_stored_in_national_notation() {
        let crm = crm(serde_json::json!([{"id": "C1", "phone": "(317) 555-0125"}]));
        let found = crm.find(&phone("tel:+13175550125")).await.unwrap();
        assert_eq!(found.len(), 1);
        let c = &found[0];
        assert_eq!(c.fields["id"], "C1");
        assert_eq!(
            (
                c.record_type.as_str(),
                c.record_id.as_str(),
                c.matched_field.as_str()
            ),
            ("customer", "C1", "phone")
        );
        assert_eq!(
            c.quality,
            MatchQuality::National,
            "the file does not say the country"
        );
        assert!(crm.find(&phone("+13175550199")).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn ids_emails_and_mobiles_are_indexed_and_graded() {
        let crm = crm(serde_json::json!([
            {"id": "C1", "email": "Ada@Example.com", "mobile": "+44 20 7946 0018", "externalContactId": "X9"}
        ]));
        for (key, field) in [
            (CustomerKey::CustomerId("C1".into()), "id"),
            (CustomerKey::Email("ada@example.COM".into()), "email"),
            (
                CustomerKey::ExternalContactId("X9".into()),
                "externalContactId",
            ),
            (phone("+442079460018"), "mobile"),
        ] {
            let found = crm.find(&key).await.unwrap();
            assert_eq!(found.len(), 1, "{key:?}");
            assert_eq!(found[0].matched_field, field);
            assert_eq!(found[0].quality, MatchQuality::Exact, "{key:?}");
        }
    }

    #[tokio::test]
    async fn several_customers_with_one_number_are_several_candidates_in_file_order() {
        let crm = crm(serde_json::json!([
            {"id": "C1", "phone": "+1 317 555 0125"},
            {"id": "C2", "phone": "(317) 555-0199", "mobile": "317.555.0125"},
            {"id": "C3", "phone": "+1 317 555 0126"},
            {"id": "C4", "phone": "3175550125", "mobile": "+13175550125"},
        ]));
        let found = crm.find(&phone("tel:+13175550125")).await.unwrap();
        let ids: Vec<(&str, MatchQuality, &str)> = found
            .iter()
            .map(|c| (c.record_id.as_str(), c.quality, c.matched_field.as_str()))
            .collect();
        assert_eq!(
            ids,
            [
                ("C1", MatchQuality::Exact, "phone"),
                ("C2", MatchQuality::National, "mobile"),
                ("C4", MatchQuality::Exact, "mobile"),
            ]
        );
    }

    /// The classics of query injection, which the file adapter must treat as plain text.
    const CLASSICS: [&str; 8] = [
        "'",
        "\\",
        "}",
        "' OR 1=1 --",
        "--",
        "%",
        "*",
        "C1' OR '1'='1",
    ];

    #[tokio::test]
    async fn injection_classics_match_nothing_through_every_key_kind() {
        let crm = crm(serde_json::json!([
            {"id": "C1", "email": "ada@example.com", "phone": "+13175550125", "externalContactId": "X9"},
            {"id": "%", "email": "*@example.com"}
        ]));
        for classic in CLASSICS {
            for key in [
                CustomerKey::CustomerId(classic.into()),
                CustomerKey::ExternalContactId(classic.into()),
                CustomerKey::Email(classic.into()),
                CustomerKey::Email(format!("{classic}@example.com")),
            ] {
                let found = crm.find(&key).await.unwrap();
                let literal = matches!(&key, CustomerKey::CustomerId(v) if v == "%")
                    || matches!(&key, CustomerKey::Email(v) if v == "*@example.com");
                assert_eq!(found.len(), usize::from(literal), "{key:?}: {found:?}");
            }
            if let Some(number) =
                CallerNumber::parse(&format!("+1317555{classic}0125"), country::Id::US)
            {
                // The digits survive, the classic does not: still only the caller's own record.
                for c in crm.find(&CustomerKey::Phone(number)).await.unwrap() {
                    assert_eq!(c.record_id, "C1");
                }
            }
        }
    }

    #[test]
    fn the_shipped_sample_files_load() {
        let mut s = settings();
        s.path = "config/customers.json".into();
        let json = FileCrm::from_settings(&s, country::Id::US).unwrap();
        assert!(json.len() >= 5);
        s.path = "config/customers.csv".into();
        let csv = FileCrm::from_settings(&s, country::Id::US).unwrap();
        assert_eq!(csv.len(), json.len());
    }

    #[test]
    fn a_file_that_is_not_an_array_of_objects_is_refused() {
        assert!(parse_records(Path::new("x.json"), "{\"id\": 1}").is_err());
        assert!(parse_records(Path::new("x.json"), "[1, 2]").is_err());
        assert!(parse_records(Path::new("x.json"), "not json").is_err());
    }

    #[tokio::test]
    async fn a_messaging_id_finds_only_the_record_holding_exactly_that_id() {
        let crm = crm(serde_json::json!([
            {"id": "C1", "messagingId": "2345678901234567", "phone": "+12345678901"},
            {"id": "C2", "phone": "+12345678901234567"}
        ]));
        let found = crm
            .find(&CustomerKey::MessagingId("2345678901234567".into()))
            .await
            .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].record_id, "C1");
        assert_eq!(found[0].quality, MatchQuality::Exact);
        let none = crm
            .find(&CustomerKey::MessagingId("234567890123456".into()))
            .await
            .unwrap();
        assert!(none.is_empty());
    }
}
