//! The simulated org's objects and records: which fields exist and which are phone or email
//! fields (SOSL's `PHONE FIELDS` / `EMAIL FIELDS` search only those), record ids, and the
//! REST error bodies the parsers answer with.

use serde_json::{json, Map, Value};

/// How SOSL treats a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Id,
    Phone,
    Email,
    Text,
    DateTime,
    Reference,
}

/// One sObject type.
#[derive(Debug, Clone)]
pub struct ObjectSchema {
    pub name: String,
    /// Three-character id prefix (`003` Contact, `001` Account, `00Q` Lead).
    pub key_prefix: String,
    pub fields: Vec<(String, FieldType)>,
}

impl ObjectSchema {
    pub fn new(name: &str, key_prefix: &str, fields: &[(&str, FieldType)]) -> Self {
        Self {
            name: name.to_owned(),
            key_prefix: key_prefix.to_owned(),
            fields: fields.iter().map(|(n, t)| ((*n).to_owned(), *t)).collect(),
        }
    }

    /// The field's canonical name and type; SOQL and SOSL names are case-insensitive.
    pub fn field(&self, name: &str) -> Option<(&str, FieldType)> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(n, t)| (n.as_str(), *t))
    }

    /// Standard Contact, Account and Lead with the phone fields Salesforce defines on them.
    pub fn defaults() -> Vec<ObjectSchema> {
        use FieldType::*;
        vec![
            ObjectSchema::new(
                "Contact",
                "003",
                &[
                    ("Id", Id),
                    ("Name", Text),
                    ("FirstName", Text),
                    ("LastName", Text),
                    ("Phone", Phone),
                    ("MobilePhone", Phone),
                    ("HomePhone", Phone),
                    ("OtherPhone", Phone),
                    ("AssistantPhone", Phone),
                    ("Fax", Phone),
                    ("Email", Email),
                    ("AccountId", Reference),
                    ("LastModifiedDate", DateTime),
                    ("External_Id__c", Text),
                ],
            ),
            ObjectSchema::new(
                "Account",
                "001",
                &[
                    ("Id", Id),
                    ("Name", Text),
                    ("AccountNumber", Text),
                    ("Phone", Phone),
                    ("Fax", Phone),
                    ("Website", Text),
                    ("LastModifiedDate", DateTime),
                ],
            ),
            ObjectSchema::new(
                "Lead",
                "00Q",
                &[
                    ("Id", Id),
                    ("Name", Text),
                    ("FirstName", Text),
                    ("LastName", Text),
                    ("Company", Text),
                    ("Phone", Phone),
                    ("MobilePhone", Phone),
                    ("Fax", Phone),
                    ("Email", Email),
                    ("LastModifiedDate", DateTime),
                ],
            ),
        ]
    }
}

/// A stored record: its object and its fields by canonical name (`Id` included).
#[derive(Debug, Clone)]
pub struct Record {
    pub object: String,
    pub fields: Map<String, Value>,
}

impl Record {
    pub fn id(&self) -> &str {
        self.fields.get("Id").and_then(Value::as_str).unwrap_or("")
    }

    pub fn text(&self, field: &str) -> Option<&str> {
        self.fields.get(field).and_then(Value::as_str)
    }

    /// The record as the REST API returns it: `attributes` first, then the requested fields
    /// (a field never set is `null`, as Salesforce answers).
    pub fn render(&self, version: &str, fields: &[String]) -> Value {
        let mut out = Map::new();
        out.insert(
            "attributes".to_owned(),
            json!({
                "type": self.object,
                "url": format!("/services/data/{version}/sobjects/{}/{}", self.object, self.id()),
            }),
        );
        for field in fields {
            out.insert(
                field.clone(),
                self.fields.get(field).cloned().unwrap_or(Value::Null),
            );
        }
        Value::Object(out)
    }
}

/// An 18-character id: the object's key prefix, `0SIM` and a zero-padded counter, so ids are
/// unique, recognisably simulated, and the right length for Salesforce id checks.
pub fn record_id(key_prefix: &str, counter: u64) -> String {
    format!("{key_prefix}0SIM{counter:011}")
}

/// A REST error body: Salesforce's array with one `{message, errorCode}` entry.
pub fn error_body(error_code: &str, message: &str) -> Value {
    json!([{ "message": message, "errorCode": error_code }])
}

/// The errors the parsers produce; `status` is always 400 for these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryFault {
    pub error_code: &'static str,
    pub message: String,
}

impl QueryFault {
    pub fn malformed_search(message: impl Into<String>) -> Self {
        Self {
            error_code: "MALFORMED_SEARCH",
            message: message.into(),
        }
    }

    pub fn malformed_query(message: impl Into<String>) -> Self {
        Self {
            error_code: "MALFORMED_QUERY",
            message: message.into(),
        }
    }

    /// Salesforce's wording for an unknown object.
    pub fn invalid_type(object: &str) -> Self {
        Self {
            error_code: "INVALID_TYPE",
            message: format!(
                "sObject type '{object}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name."
            ),
        }
    }

    /// Salesforce's wording for an unknown field.
    pub fn invalid_field(field: &str, object: &str) -> Self {
        Self {
            error_code: "INVALID_FIELD",
            message: format!(
                "No such column '{field}' on entity '{object}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name."
            ),
        }
    }
}

/// Resolves `fields` on `object` to canonical names, refusing unknown ones.
pub fn resolve_fields(schema: &ObjectSchema, fields: &[String]) -> Result<Vec<String>, QueryFault> {
    fields
        .iter()
        .map(|f| {
            schema
                .field(f)
                .map(|(name, _)| name.to_owned())
                .ok_or_else(|| QueryFault::invalid_field(f, &schema.name))
        })
        .collect()
}
