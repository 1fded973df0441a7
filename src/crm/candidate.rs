//! What a lookup returns: [`Candidate`]s, each one record a source found for a key, with where
//! it came from, what it is, the field it matched on and how well ([`MatchQuality`]); its
//! summary without the fields ([`CandidateSummary`]); and [`parse_last_modified`], which reads
//! the vendors' last-modified formats for the `most_recent` policy.

use chrono::{DateTime, NaiveDateTime, TimeZone as _, Utc};
use serde::{Deserialize, Serialize};

use super::CrmRecord;
pub use crate::domain::MatchQuality;

/// One record a source found for a key, graded against it.
///
/// Serialized (without `source`, which the cache key carries) as the cached form of an answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// The source's name (`file`, `http`, `salesforce`, ...): the `source` metric label.
    #[serde(skip)]
    pub source: &'static str,
    /// The vendor's object or table (`Contact`, `contacts`, `sys_user`), or the adapter's fixed
    /// type (`customer`).
    pub record_type: String,
    /// The vendor's id of the record; empty when the source has none (then the record is not
    /// deduplicated and not named in `crm.recordId`).
    pub record_id: String,
    /// The field whose value matched the key (`phone`, `MobilePhone`, `/contact/email`).
    pub matched_field: String,
    pub quality: MatchQuality,
    pub last_modified: Option<DateTime<Utc>>,
    /// The record's fields, as the merge policy maps them.
    pub fields: CrmRecord,
}

impl Candidate {
    /// `type/id`, the form `crm.candidateIds` lists (just the type when there is no id).
    pub fn label(&self) -> String {
        if self.record_id.is_empty() {
            self.record_type.clone()
        } else {
            format!("{}/{}", self.record_type, self.record_id)
        }
    }

    pub fn summary(&self) -> CandidateSummary {
        CandidateSummary {
            source: self.source,
            record_type: self.record_type.clone(),
            record_id: self.record_id.clone(),
            matched_field: self.matched_field.clone(),
            quality: self.quality,
        }
    }

    /// Whether `self` and `other` are the same record (found through two fields, say): same
    /// source, type (case-insensitive) and non-empty id.
    pub fn same_record(&self, other: &Candidate) -> bool {
        !self.record_id.is_empty()
            && self.source == other.source
            && self.record_id == other.record_id
            && self.record_type.eq_ignore_ascii_case(&other.record_type)
    }
}

/// A candidate without its fields: what an answer reports about the chosen record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CandidateSummary {
    pub source: &'static str,
    pub record_type: String,
    pub record_id: String,
    pub matched_field: String,
    pub quality: MatchQuality,
}

/// A last-modified time as the vendors write it: RFC 3339 (`2024-01-01T00:00:00Z`, Dynamics,
/// HubSpot, Zendesk, Freshdesk), Salesforce's `2024-01-01T00:00:00.000+0000`, ServiceNow's
/// `2024-01-01 00:00:00` (UTC, the Table API's database value), a local-less
/// `2024-01-01T00:00:00` (taken as UTC), or epoch milliseconds (`1704067200000`; ten digits or
/// fewer are seconds). Anything else is `None`: a record without a usable date sorts last.
pub fn parse_last_modified(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let n: i64 = text.parse().ok()?;
        return if text.len() > 10 {
            Utc.timestamp_millis_opt(n).single()
        } else {
            Utc.timestamp_opt(n, 0).single()
        };
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    // Salesforce: offset without a colon.
    if let Ok(t) = DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Some(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Some(t.and_utc());
        }
    }
    None
}

/// [`parse_last_modified`] of a JSON value: a string, or a number of epoch milliseconds.
pub fn last_modified_of(value: &serde_json::Value) -> Option<DateTime<Utc>> {
    match value {
        serde_json::Value::String(s) => parse_last_modified(s),
        serde_json::Value::Number(n) => parse_last_modified(&n.as_u64()?.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rfc3339: &str) -> Option<DateTime<Utc>> {
        Some(
            DateTime::parse_from_rfc3339(rfc3339)
                .unwrap()
                .with_timezone(&Utc),
        )
    }

    #[test]
    fn the_vendors_last_modified_formats_are_read() {
        let cases = [
            ("2024-01-02T03:04:05Z", at("2024-01-02T03:04:05Z")),
            (
                "2024-01-02T03:04:05.123+02:00",
                at("2024-01-02T01:04:05.123Z"),
            ),
            ("2024-01-02T03:04:05.000+0000", at("2024-01-02T03:04:05Z")),
            ("2024-01-02T03:04:05.000-0500", at("2024-01-02T08:04:05Z")),
            ("2024-01-02 03:04:05", at("2024-01-02T03:04:05Z")),
            ("2024-01-02T03:04:05", at("2024-01-02T03:04:05Z")),
            ("1704164645000", at("2024-01-02T03:04:05Z")),
            ("1704164645", at("2024-01-02T03:04:05Z")),
            (" 2024-01-02T03:04:05Z ", at("2024-01-02T03:04:05Z")),
            ("", None),
            ("yesterday", None),
            ("2024-13-45 99:00:00", None),
            ("99999999999999999999999", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_last_modified(text), expected, "{text:?}");
        }
    }

    #[test]
    fn a_json_number_is_epoch_milliseconds() {
        assert_eq!(
            last_modified_of(&serde_json::json!(1704164645000u64)),
            at("2024-01-02T03:04:05Z")
        );
        assert_eq!(last_modified_of(&serde_json::json!(null)), None);
        assert_eq!(last_modified_of(&serde_json::json!(-5)), None);
    }

    fn candidate(source: &'static str, record_type: &str, id: &str) -> Candidate {
        Candidate {
            source,
            record_type: record_type.into(),
            record_id: id.into(),
            matched_field: "phone".into(),
            quality: MatchQuality::Exact,
            last_modified: None,
            fields: CrmRecord::new(),
        }
    }

    #[test]
    fn the_same_record_is_the_same_source_type_and_id() {
        let a = candidate("salesforce", "Contact", "003A");
        assert!(a.same_record(&candidate("salesforce", "contact", "003A")));
        assert!(!a.same_record(&candidate("salesforce", "Lead", "003A")));
        assert!(!a.same_record(&candidate("http", "Contact", "003A")));
        assert!(!a.same_record(&candidate("salesforce", "Contact", "003B")));
        let anonymous = candidate("file", "customer", "");
        assert!(
            !anonymous.same_record(&anonymous.clone()),
            "no id: never the same"
        );
        assert_eq!(a.label(), "Contact/003A");
        assert_eq!(anonymous.label(), "customer");
    }

    #[test]
    fn the_cached_form_leaves_the_source_to_the_cache_key() {
        let a = candidate("salesforce", "Contact", "003A");
        let text = serde_json::to_string(&a).unwrap();
        assert!(!text.contains("salesforce"), "{text}");
        let back: Candidate = serde_json::from_str(&text).unwrap();
        assert_eq!(back.source, "");
        assert_eq!(back.record_id, "003A");
    }
}
