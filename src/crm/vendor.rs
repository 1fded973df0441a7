//! The neutral shape vendor query modules parse their search answers into, before the adapter
//! grades each record against the customer key: a record's type, id, last-modified time as the
//! vendor wrote it, and its fields.

use serde_json::{Map, Value};

/// One record a vendor's search or query returned.
#[derive(Debug, Clone, PartialEq)]
pub struct VendorRecord {
    /// The vendor's object or table name: `Contact`, `contact`, `sys_user`, `user`, ...
    pub record_type: String,
    /// The vendor's id of the record.
    pub record_id: String,
    /// The record's last-modified time as the vendor wrote it (formats differ per vendor).
    pub last_modified: Option<String>,
    /// The record's fields as returned, vendor metadata removed.
    pub fields: Map<String, Value>,
}
