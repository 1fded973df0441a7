//! Web API collection answers as [`VendorRecord`]s: `{"@odata.context": …, "value": [{
//! "@odata.etag": "W/\"81359849\"", …columns…, "accountid": "…"}], "@odata.nextLink": …}`
//! (MicrosoftDocs/powerapps-docs, `webapi/query/filter-rows.md` response example;
//! `use-single-tenant-server-server-authentication.md` example output). Annotations (`@…`
//! keys and `column@OData.Community…` formatted values) are removed from the fields.

use serde_json::Value;

use super::entity::{EntitySpec, MODIFIED_ON};
use crate::crm::vendor::VendorRecord;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    #[error("response is not JSON: {0}")]
    NotJson(String),
    #[error("response has no \"value\" array")]
    MissingValue,
    #[error("row {index} has no {what}")]
    BadRow { index: usize, what: String },
}

/// One page of rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub records: Vec<VendorRecord>,
    /// `@odata.nextLink`, an absolute URL, when more rows exist.
    pub next_link: Option<String>,
}

/// Parses the rows of `spec`'s entity set; each must carry the primary id column.
pub fn parse_collection(spec: &EntitySpec, body: &[u8]) -> Result<Page, ResponseError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ResponseError::NotJson(e.to_string()))?;
    let Value::Object(mut object) = value else {
        return Err(ResponseError::MissingValue);
    };
    let Some(Value::Array(rows)) = object.remove("value") else {
        return Err(ResponseError::MissingValue);
    };
    let next_link = object
        .get("@odata.nextLink")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let records = rows
        .into_iter()
        .enumerate()
        .map(|(index, row)| {
            let Value::Object(mut fields) = row else {
                return Err(ResponseError::BadRow {
                    index,
                    what: "object body".into(),
                });
            };
            fields.retain(|key, _| !key.contains('@'));
            let record_id = fields
                .get(&spec.primary_id)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| ResponseError::BadRow {
                    index,
                    what: spec.primary_id.clone(),
                })?;
            let last_modified = fields
                .get(MODIFIED_ON)
                .and_then(Value::as_str)
                .map(str::to_owned);
            Ok(VendorRecord {
                record_type: spec.logical_name.clone(),
                record_id,
                last_modified,
                fields,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Page { records, next_link })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_become_vendor_records_without_annotations() {
        let body = serde_json::to_vec(&json!({
            "@odata.context": "https://org.crm.dynamics.com/api/data/v9.2/$metadata#contacts(fullname,telephone1)",
            "value": [{
                "@odata.etag": "W/\"81359849\"",
                "fullname": "Ada Lovelace",
                "telephone1": "+13175550125",
                "_parentcustomerid_value@OData.Community.Display.V1.FormattedValue": "Acme",
                "_parentcustomerid_value": "70bf4d48-34cb-ed11-b596-0022481d68cd",
                "modifiedon": "2024-05-01T10:00:00Z",
                "contactid": "78914942-34cb-ed11-b596-0022481d68cd"
            }],
            "@odata.nextLink": "https://org.crm.dynamics.com/api/data/v9.2/contacts?$skiptoken=x"
        }))
        .unwrap();
        let page = parse_collection(&EntitySpec::contacts(), &body).unwrap();
        assert_eq!(
            page.next_link.as_deref(),
            Some("https://org.crm.dynamics.com/api/data/v9.2/contacts?$skiptoken=x")
        );
        let record = &page.records[0];
        assert_eq!(record.record_type, "contact");
        assert_eq!(record.record_id, "78914942-34cb-ed11-b596-0022481d68cd");
        assert_eq!(
            record.last_modified.as_deref(),
            Some("2024-05-01T10:00:00Z")
        );
        assert!(record.fields.keys().all(|k| !k.contains('@')));
        assert_eq!(
            record.fields["_parentcustomerid_value"],
            "70bf4d48-34cb-ed11-b596-0022481d68cd"
        );
    }

    #[test]
    fn garbage_and_wrong_shapes_are_clear_errors() {
        let spec = EntitySpec::accounts();
        assert!(matches!(
            parse_collection(&spec, b"<html/>"),
            Err(ResponseError::NotJson(_))
        ));
        assert_eq!(
            parse_collection(&spec, br#"{"values": []}"#),
            Err(ResponseError::MissingValue)
        );
        assert_eq!(
            parse_collection(&spec, br#"[]"#),
            Err(ResponseError::MissingValue)
        );
        assert_eq!(
            parse_collection(&spec, br#"{"value": [{"name": "x"}]}"#),
            Err(ResponseError::BadRow {
                index: 0,
                what: "accountid".into()
            })
        );
        assert_eq!(
            parse_collection(&spec, br#"{"value": [7]}"#),
            Err(ResponseError::BadRow {
                index: 0,
                what: "object body".into()
            })
        );
        assert!(parse_collection(&spec, br#"{"value": []}"#)
            .unwrap()
            .records
            .is_empty());
    }
}
