//! Salesforce REST answers turned into the neutral [`VendorRecord`] list: the Search resource's
//! `{"searchRecords": [...]}` and the Query resource's `{"totalSize", "done", "records",
//! "nextRecordsUrl"}`, each record carrying `attributes.type` and `attributes.url`
//! (REST API Developer Guide, *Search for a String* and *Execute a SOQL Query*,
//! developer.salesforce.com/docs/platform/api-rest/guide/dome-search.md, dome-query.md).

use serde_json::{Map, Value};

use super::query::{ID_FIELD, LAST_MODIFIED_FIELD};
use crate::crm::vendor::VendorRecord;

/// The answer did not have the documented shape. Never retryable: the same request would get
/// the same answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    #[error("response is not JSON: {0}")]
    NotJson(String),
    #[error("response has no {0:?} array")]
    MissingArray(&'static str),
    #[error("record {index} has no {what}")]
    BadRecord { index: usize, what: &'static str },
}

/// One page of a SOQL query.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryPage {
    pub records: Vec<VendorRecord>,
    pub total_size: Option<u64>,
    /// `nextRecordsUrl`, relative to the instance, when `done` is false.
    pub next_records_url: Option<String>,
}

/// Parses a Search resource answer. API versions before 36.0 answered a bare array; that form
/// is accepted too, since it costs nothing.
pub fn parse_search(body: &[u8]) -> Result<Vec<VendorRecord>, ResponseError> {
    let value = parse_json(body)?;
    let records = match value {
        Value::Object(mut object) => match object.remove("searchRecords") {
            Some(Value::Array(records)) => records,
            _ => return Err(ResponseError::MissingArray("searchRecords")),
        },
        Value::Array(records) => records,
        _ => return Err(ResponseError::MissingArray("searchRecords")),
    };
    records_from(records)
}

/// Parses a Query (or Query More) resource answer.
pub fn parse_query(body: &[u8]) -> Result<QueryPage, ResponseError> {
    let Value::Object(mut object) = parse_json(body)? else {
        return Err(ResponseError::MissingArray("records"));
    };
    let Some(Value::Array(records)) = object.remove("records") else {
        return Err(ResponseError::MissingArray("records"));
    };
    let done = object.get("done").and_then(Value::as_bool).unwrap_or(true);
    Ok(QueryPage {
        records: records_from(records)?,
        total_size: object.get("totalSize").and_then(Value::as_u64),
        next_records_url: if done {
            None
        } else {
            object
                .get("nextRecordsUrl")
                .and_then(Value::as_str)
                .map(str::to_owned)
        },
    })
}

fn parse_json(body: &[u8]) -> Result<Value, ResponseError> {
    serde_json::from_slice(body).map_err(|e| ResponseError::NotJson(e.to_string()))
}

fn records_from(records: Vec<Value>) -> Result<Vec<VendorRecord>, ResponseError> {
    records
        .into_iter()
        .enumerate()
        .map(|(index, record)| record_from(index, record))
        .collect()
}

fn record_from(index: usize, record: Value) -> Result<VendorRecord, ResponseError> {
    let Value::Object(mut fields) = record else {
        return Err(ResponseError::BadRecord {
            index,
            what: "object body",
        });
    };
    let record_type = fields
        .get("attributes")
        .and_then(|a| a.get("type"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or(ResponseError::BadRecord {
            index,
            what: "attributes.type",
        })?;
    let record_id = field_ignoring_case(&fields, ID_FIELD)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or(ResponseError::BadRecord { index, what: "Id" })?;
    let last_modified = field_ignoring_case(&fields, LAST_MODIFIED_FIELD)
        .and_then(Value::as_str)
        .map(str::to_owned);
    strip_attributes(&mut fields);
    Ok(VendorRecord {
        record_type,
        record_id,
        last_modified,
        fields,
    })
}

/// SOQL field names are case-insensitive and Salesforce echoes the case the query used.
fn field_ignoring_case<'a>(fields: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    fields.get(name).or_else(|| {
        fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// Removes `attributes` here and in related records (`"Account": {"attributes": …, "Name": …}`).
fn strip_attributes(fields: &mut Map<String, Value>) {
    fields.remove("attributes");
    for value in fields.values_mut() {
        if let Value::Object(nested) = value {
            strip_attributes(nested);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bytes(value: Value) -> Vec<u8> {
        serde_json::to_vec(&value).unwrap()
    }

    #[test]
    fn search_records_become_vendor_records_of_their_attribute_type() {
        let body = bytes(json!({"searchRecords": [
            {"attributes": {"type": "Contact", "url": "/services/data/v66.0/sobjects/Contact/003A"},
             "Id": "003A", "Phone": "(317) 555-0125", "LastModifiedDate": "2024-05-20T20:49:32.000+0000",
             "Account": {"attributes": {"type": "Account", "url": "/x"}, "Name": "Acme"}},
            {"attributes": {"type": "Lead", "url": "/services/data/v66.0/sobjects/Lead/00QB"}, "Id": "00QB"}
        ]}));
        let records = parse_search(&body).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].record_type, "Contact");
        assert_eq!(records[0].record_id, "003A");
        assert_eq!(
            records[0].last_modified.as_deref(),
            Some("2024-05-20T20:49:32.000+0000")
        );
        assert_eq!(records[0].fields.get("attributes"), None);
        assert_eq!(records[0].fields["Account"], json!({"Name": "Acme"}));
        assert_eq!(records[1].record_type, "Lead");
        assert_eq!(records[1].last_modified, None);
    }

    #[test]
    fn an_empty_search_is_an_empty_list_and_the_old_bare_array_form_parses_too() {
        assert!(parse_search(br#"{"searchRecords": []}"#)
            .unwrap()
            .is_empty());
        let old = bytes(json!([{"attributes": {"type": "Account"}, "Id": "001A"}]));
        assert_eq!(parse_search(&old).unwrap()[0].record_id, "001A");
    }

    #[test]
    fn a_query_page_reports_its_next_records_url_only_when_not_done() {
        let more = bytes(
            json!({"totalSize": 3, "done": false, "nextRecordsUrl": "/services/data/v66.0/query/01g-2",
            "records": [{"attributes": {"type": "Contact"}, "id": "003A", "lastmodifieddate": "2024-01-01T00:00:00.000+0000"}]}),
        );
        let page = parse_query(&more).unwrap();
        assert_eq!(page.total_size, Some(3));
        assert_eq!(
            page.next_records_url.as_deref(),
            Some("/services/data/v66.0/query/01g-2")
        );
        assert_eq!(page.records[0].record_id, "003A");
        assert!(page.records[0].last_modified.is_some());
        let done = bytes(
            json!({"totalSize": 0, "done": true, "nextRecordsUrl": "/ignored", "records": []}),
        );
        assert_eq!(parse_query(&done).unwrap().next_records_url, None);
    }

    #[test]
    fn garbage_and_wrong_shapes_are_clear_errors_never_panics() {
        assert!(matches!(
            parse_search(b"<html>down</html>"),
            Err(ResponseError::NotJson(_))
        ));
        assert_eq!(
            parse_search(br#"{"records": []}"#),
            Err(ResponseError::MissingArray("searchRecords"))
        );
        assert_eq!(
            parse_query(br#"[]"#),
            Err(ResponseError::MissingArray("records"))
        );
        assert_eq!(
            parse_search(br#"{"searchRecords": [{"Id": "003A"}]}"#),
            Err(ResponseError::BadRecord {
                index: 0,
                what: "attributes.type"
            })
        );
        assert_eq!(
            parse_search(br#"{"searchRecords": [{"attributes": {"type": "Contact"}, "Id": 7}]}"#),
            Err(ResponseError::BadRecord {
                index: 0,
                what: "Id"
            })
        );
        assert_eq!(
            parse_query(br#"{"done": true, "records": ["x"]}"#),
            Err(ResponseError::BadRecord {
                index: 0,
                what: "object body"
            })
        );
        assert!(parse_search(b"").is_err());
    }
}
