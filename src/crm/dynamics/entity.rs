//! The tables a Dataverse lookup searches and the three lookups built over them: phone (any
//! configured phone column equal to any notation), email, and row id.
//!
//! Defaults from the Dataverse table reference (MicrosoftDocs/powerapps-docs,
//! `developer/data-platform/reference/entities/contact.md` and `account.md`: EntitySetName
//! `contacts` / `accounts`, PrimaryIdAttribute `contactid` / `accountid`, columns Telephone1–3
//! and MobilePhone on contact, Telephone1–3 on account, logical names in lower case). The lead
//! table belongs to Dynamics 365 Sales; its `leads` / `leadid` / `telephone1..3` /
//! `mobilephone` names follow the same pattern but were not read in its reference page.

use super::odata::{any_column_equals, is_guid, logical_name, ODataError, WebApiRequest};

/// Every row carries this audit column; `most_recent` matching orders by it.
pub const MODIFIED_ON: &str = "modifiedon";

/// One table to search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntitySpec {
    /// The URL segment: `contacts`.
    pub entity_set: String,
    /// The record type reported for its rows: `contact`.
    pub logical_name: String,
    /// The primary key column: `contactid`.
    pub primary_id: String,
    pub phone_columns: Vec<String>,
    pub email_columns: Vec<String>,
    /// Columns to return; the primary id and `modifiedon` are added.
    pub select: Vec<String>,
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| (*v).to_owned()).collect()
}

impl EntitySpec {
    pub fn contacts() -> Self {
        Self {
            entity_set: "contacts".into(),
            logical_name: "contact".into(),
            primary_id: "contactid".into(),
            phone_columns: strings(&["telephone1", "telephone2", "telephone3", "mobilephone"]),
            email_columns: strings(&["emailaddress1"]),
            select: strings(&["fullname", "telephone1", "mobilephone", "emailaddress1"]),
        }
    }

    pub fn accounts() -> Self {
        Self {
            entity_set: "accounts".into(),
            logical_name: "account".into(),
            primary_id: "accountid".into(),
            phone_columns: strings(&["telephone1", "telephone2", "telephone3"]),
            email_columns: strings(&["emailaddress1"]),
            select: strings(&["name", "accountnumber", "telephone1", "emailaddress1"]),
        }
    }

    pub fn leads() -> Self {
        Self {
            entity_set: "leads".into(),
            logical_name: "lead".into(),
            primary_id: "leadid".into(),
            phone_columns: strings(&["telephone1", "telephone2", "telephone3", "mobilephone"]),
            email_columns: strings(&["emailaddress1"]),
            select: strings(&[
                "fullname",
                "companyname",
                "telephone1",
                "mobilephone",
                "emailaddress1",
            ]),
        }
    }

    /// Contacts, accounts and leads, in the order issue 11 names them.
    pub fn defaults() -> Vec<Self> {
        vec![Self::contacts(), Self::accounts(), Self::leads()]
    }

    /// `$select` with the primary id and `modifiedon` guaranteed, names checked.
    fn select_list(&self) -> Result<Vec<&str>, ODataError> {
        logical_name("logical name", &self.logical_name)?;
        let mut select: Vec<&str> = vec![logical_name("column", &self.primary_id)?, MODIFIED_ON];
        for column in &self.select {
            let column = logical_name("column", column)?;
            if !select.contains(&column) {
                select.push(column);
            }
        }
        Ok(select)
    }

    fn request(
        &self,
        version: &str,
        filter: &str,
        top: Option<u32>,
    ) -> Result<WebApiRequest, ODataError> {
        WebApiRequest::collection(version, &self.entity_set, &self.select_list()?, filter, top)
    }

    /// Rows where any phone column holds any of `notations` exactly as typed.
    pub fn phone_lookup(
        &self,
        version: &str,
        notations: &[&str],
        top: Option<u32>,
    ) -> Result<WebApiRequest, ODataError> {
        let columns: Vec<&str> = self.phone_columns.iter().map(String::as_str).collect();
        self.request(version, &any_column_equals(&columns, notations)?, top)
    }

    /// Rows where any email column equals `email` (Dataverse string comparison ignores case).
    pub fn email_lookup(
        &self,
        version: &str,
        email: &str,
        top: Option<u32>,
    ) -> Result<WebApiRequest, ODataError> {
        let columns: Vec<&str> = self.email_columns.iter().map(String::as_str).collect();
        self.request(version, &any_column_equals(&columns, &[email.trim()])?, top)
    }

    /// The row with this primary id. GUIDs are OData literals of their own, unquoted; anything
    /// that is not a GUID is refused before a query exists.
    pub fn id_lookup(&self, version: &str, id: &str) -> Result<WebApiRequest, ODataError> {
        if !is_guid(id) {
            return Err(ODataError::NotAGuid);
        }
        let filter = format!(
            "{} eq {}",
            logical_name("column", &self.primary_id)?,
            id.to_ascii_lowercase()
        );
        self.request(version, &filter, Some(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_contact_phone_lookup_selects_the_id_and_modifiedon_and_filters_all_phone_columns() {
        let request = EntitySpec::contacts()
            .phone_lookup("v9.2", &["+13175550125"], Some(20))
            .unwrap();
        assert_eq!(request.path, "/api/data/v9.2/contacts");
        assert_eq!(
            request.query,
            vec![
                ("$select".to_owned(), "contactid,modifiedon,fullname,telephone1,mobilephone,emailaddress1".to_owned()),
                ("$filter".to_owned(), "(telephone1 eq '+13175550125' or telephone2 eq '+13175550125' or telephone3 eq '+13175550125' or mobilephone eq '+13175550125')".to_owned()),
                ("$top".to_owned(), "20".to_owned()),
            ]
        );
    }

    #[test]
    fn an_email_lookup_trims_and_escapes() {
        let request = EntitySpec::leads()
            .email_lookup("v9.2", " o'neil@example.com ", None)
            .unwrap();
        assert_eq!(
            request.query[1].1,
            "(emailaddress1 eq 'o''neil@example.com')"
        );
    }

    #[test]
    fn an_id_lookup_takes_only_a_guid() {
        let request = EntitySpec::accounts()
            .id_lookup("v9.2", "78914942-34CB-ED11-B596-0022481D68CD")
            .unwrap();
        assert_eq!(
            request.query[1].1,
            "accountid eq 78914942-34cb-ed11-b596-0022481d68cd"
        );
        assert_eq!(request.query[2].1, "1");
        assert_eq!(
            EntitySpec::accounts().id_lookup("v9.2", "x or 1 eq 1"),
            Err(ODataError::NotAGuid)
        );
    }

    #[test]
    fn configured_names_that_are_not_logical_names_are_refused() {
        let mut spec = EntitySpec::contacts();
        spec.phone_columns = vec!["telephone1 ne null or telephone1".into()];
        assert!(spec.phone_lookup("v9.2", &["1"], None).is_err());
        let mut spec = EntitySpec::contacts();
        spec.select = vec!["FullName".into()];
        assert!(spec.phone_lookup("v9.2", &["1"], None).is_err());
        let mut spec = EntitySpec::contacts();
        spec.phone_columns.clear();
        assert_eq!(
            spec.phone_lookup("v9.2", &["1"], None),
            Err(ODataError::NoColumns)
        );
    }
}
