//! The simulated environment's tables: entity set, logical name, primary id and typed columns,
//! and the rows stored in them.
//!
//! Names from the Dataverse table reference (contact: EntitySetName `contacts`,
//! PrimaryIdAttribute `contactid`, Telephone1–3, MobilePhone, EMailAddress1; account:
//! `accounts` / `accountid`); lead (`leads` / `leadid`) belongs to Dynamics 365 Sales and
//! follows the same pattern (not read in its reference page).

use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Guid,
    String,
    DateTime,
}

#[derive(Debug, Clone)]
pub struct Table {
    pub entity_set: String,
    pub logical_name: String,
    pub primary_id: String,
    pub columns: Vec<(String, ColumnType)>,
}

impl Table {
    pub fn new(entity_set: &str, logical_name: &str, primary_id: &str, strings: &[&str]) -> Self {
        let mut columns = vec![
            (primary_id.to_owned(), ColumnType::Guid),
            ("modifiedon".to_owned(), ColumnType::DateTime),
        ];
        columns.extend(
            strings
                .iter()
                .map(|c| ((*c).to_owned(), ColumnType::String)),
        );
        Self {
            entity_set: entity_set.to_owned(),
            logical_name: logical_name.to_owned(),
            primary_id: primary_id.to_owned(),
            columns,
        }
    }

    /// Logical names are lower case and matched exactly (OData is case-sensitive).
    pub fn column(&self, name: &str) -> Option<ColumnType> {
        self.columns
            .iter()
            .find(|(c, _)| c == name)
            .map(|(_, t)| *t)
    }

    pub fn defaults() -> Vec<Table> {
        vec![
            Table::new(
                "contacts",
                "contact",
                "contactid",
                &[
                    "fullname",
                    "firstname",
                    "lastname",
                    "emailaddress1",
                    "emailaddress2",
                    "telephone1",
                    "telephone2",
                    "telephone3",
                    "mobilephone",
                    "_parentcustomerid_value",
                ],
            ),
            Table::new(
                "accounts",
                "account",
                "accountid",
                &[
                    "name",
                    "accountnumber",
                    "emailaddress1",
                    "telephone1",
                    "telephone2",
                    "telephone3",
                ],
            ),
            Table::new(
                "leads",
                "lead",
                "leadid",
                &[
                    "fullname",
                    "companyname",
                    "emailaddress1",
                    "telephone1",
                    "telephone2",
                    "telephone3",
                    "mobilephone",
                ],
            ),
        ]
    }
}

/// A stored row: its table's entity set, a version for `@odata.etag`, and its columns.
#[derive(Debug, Clone)]
pub struct Row {
    pub entity_set: String,
    pub version: u64,
    pub columns: Map<String, Value>,
}
