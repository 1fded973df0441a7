//! The `file` CRM adapter: customers from a JSON array or a CSV file, indexed in memory at start.
//!
//! Phone numbers on both sides are normalised to E.164 when indexed and when looked up, so a
//! file that stores `(317) 555-0125` matches an ANI of `tel:+13175550125`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use phonenumber::country;

use super::{CrmAdapter, CrmError, CrmRecord, CustomerKey};
use crate::config::FileCrmSettings;
use crate::phone::CallerNumber;

pub struct FileCrm {
    customers: Vec<Arc<CrmRecord>>,
    by_id: HashMap<String, usize>,
    by_external_id: HashMap<String, usize>,
    by_phone: HashMap<String, usize>,
    by_email: HashMap<String, usize>,
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
            by_id: HashMap::new(),
            by_external_id: HashMap::new(),
            by_phone: HashMap::new(),
            by_email: HashMap::new(),
        };
        for (i, record) in records.into_iter().enumerate() {
            let text = |field: &str| {
                record
                    .get(field)
                    .and_then(|v| match v {
                        serde_json::Value::String(s) => Some(s.trim().to_owned()),
                        serde_json::Value::Number(n) => Some(n.to_string()),
                        _ => None,
                    })
                    .filter(|s| !s.is_empty())
            };
            // First occurrence wins, so a duplicated number keeps pointing at one customer.
            if let Some(id) = text(&settings.id_field) {
                crm.by_id.entry(id).or_insert(i);
            }
            if let Some(id) = text(&settings.external_contact_id_field) {
                crm.by_external_id.entry(id).or_insert(i);
            }
            for field in &settings.phone_fields {
                if let Some(number) = text(field).and_then(|t| CallerNumber::parse(&t, region)) {
                    crm.by_phone.entry(number.canonical()).or_insert(i);
                }
            }
            for field in &settings.email_fields {
                if let Some(email) = text(field) {
                    crm.by_email.entry(email.to_lowercase()).or_insert(i);
                }
            }
            crm.customers.push(Arc::new(record));
        }
        crm
    }

    pub fn len(&self) -> usize {
        self.customers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.customers.is_empty()
    }
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
    fn name(&self) -> &'static str {
        "file"
    }

    async fn find(&self, key: &CustomerKey) -> Result<Option<CrmRecord>, CrmError> {
        let index = match key {
            CustomerKey::CustomerId(id) => self.by_id.get(id.trim()),
            CustomerKey::ExternalContactId(id) => self.by_external_id.get(id.trim()),
            CustomerKey::Phone(number) => self.by_phone.get(&number.canonical()),
            CustomerKey::Email(email) => self.by_email.get(&email.trim().to_lowercase()),
        };
        Ok(index.map(|&i| CrmRecord::clone(&self.customers[i])))
    }

    async fn ready(&self) -> Result<(), CrmError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> FileCrmSettings {
        FileCrmSettings {
            path: "unused".into(),
            id_field: "id".into(),
            phone_fields: vec!["phone".into(), "mobile".into()],
            email_fields: vec!["email".into()],
            external_contact_id_field: "externalContactId".into(),
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
        let hit = crm.find(&phone("tel:+13175550125")).await.unwrap().unwrap();
        assert_eq!(hit["id"], "C1");
        assert!(crm.find(&phone("+13175550199")).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn ids_emails_and_mobiles_are_indexed() {
        let crm = crm(serde_json::json!([
            {"id": "C1", "email": "Ada@Example.com", "mobile": "+44 20 7946 0018", "externalContactId": "X9"}
        ]));
        for key in [
            CustomerKey::CustomerId("C1".into()),
            CustomerKey::Email("ada@example.COM".into()),
            CustomerKey::ExternalContactId("X9".into()),
            phone("+442079460018"),
        ] {
            assert!(crm.find(&key).await.unwrap().is_some(), "{key:?}");
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
}
