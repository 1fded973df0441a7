//! OData for Dataverse lookups: the string-literal rule, names checked before they are spliced
//! into `$select` / `$filter`, the `$filter` over configurable phone (or email, or id) columns,
//! and the Web API URL with every query value percent-encoded.
//!
//! Sources (MicrosoftDocs/powerapps-docs@1943c1cd, `developer/data-platform/webapi/query/
//! filter-rows.md`): "replace the single quote character with two consecutive single quote
//! characters" (`lastname eq 'O''Bryan'`); special characters in values must be URL-encoded
//! (`+` → `%2B`, `&` → `%26`, …); string comparisons are case-insensitive; `%`, `_` and `[]` are
//! wildcards only in `contains`/`startswith`/`endswith` (`wildcard-characters.md`), never in
//! `eq`, which is all attrsync uses. The URL layout (`/api/data/v9.2/<EntitySetName>`) is from
//! `webapi/compose-http-requests-handle-errors.md` (same commit family, 05cfff53).

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// The Web API version in the path; the docs call v9.2 current.
pub const DEFAULT_VERSION: &str = "v9.2";

/// Every character but RFC 3986 unreserved ones is percent-encoded (space as `%20`), which
/// covers the docs' table of characters that must be encoded (`$ & + , / : ; = ? @`).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A value as an OData string literal, quotes included: `'O''Bryan'`.
///
/// OData has no escape for other characters inside a literal; control characters are kept,
/// because Dataverse compares stored text exactly and a lookup must not invent a match. The
/// URL encoding in [`WebApiRequest::url`] makes them safe on the wire.
pub fn string_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ODataError {
    #[error("{what} {name:?} is not a Dataverse logical name (lower-case letters, digits and underscores, starting with a letter)")]
    NotALogicalName { what: &'static str, name: String },
    #[error("no column to match on")]
    NoColumns,
    #[error("no value to look for")]
    NoValues,
    #[error("$top must be between 1 and 5000")]
    BadTop,
    #[error("not a Dataverse row id (a GUID)")]
    NotAGuid,
    #[error("API version {0:?} is not of the form v9.2")]
    BadVersion(String),
}

/// Checks an entity set, column or logical name (`contacts`, `telephone1`, `new_score`).
/// Logical names are lower case; schema names (`Telephone1`) are rejected so a configuration
/// mistake shows at start-up instead of as a 400 on the first call.
pub fn logical_name<'a>(what: &'static str, name: &'a str) -> Result<&'a str, ODataError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(name)
    } else {
        Err(ODataError::NotALogicalName {
            what,
            name: name.to_owned(),
        })
    }
}

/// `vMAJOR.MINOR` as the path wants it.
pub fn version(value: &str) -> Result<&str, ODataError> {
    let valid = value.strip_prefix('v').is_some_and(|rest| {
        rest.split_once('.').is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && a.len() <= 2
                && b.len() <= 2
                && a.chars().chain(b.chars()).all(|c| c.is_ascii_digit())
        })
    });
    if valid {
        Ok(value)
    } else {
        Err(ODataError::BadVersion(value.to_owned()))
    }
}

/// `(c1 eq 'v1' or c1 eq 'v2' or c2 eq 'v1' or …)`: any column equal to any value.
///
/// Dataverse compares the text as stored (see the module sources), so a phone lookup passes
/// every notation the customer's data may hold (`crm.http.phone_notations`-style) as `values`.
/// Duplicate values are dropped; empty values are kept out because `eq ''` never identifies a
/// customer.
pub fn any_column_equals(columns: &[&str], values: &[&str]) -> Result<String, ODataError> {
    if columns.is_empty() {
        return Err(ODataError::NoColumns);
    }
    let mut unique: Vec<&str> = Vec::new();
    for value in values {
        if !value.is_empty() && !unique.contains(value) {
            unique.push(value);
        }
    }
    if unique.is_empty() {
        return Err(ODataError::NoValues);
    }
    let mut parts = Vec::with_capacity(columns.len() * unique.len());
    for column in columns {
        let column = logical_name("column", column)?;
        for value in &unique {
            parts.push(format!("{column} eq {}", string_literal(value)));
        }
    }
    Ok(format!("({})", parts.join(" or ")))
}

/// Whether `value` is a GUID in the `8-4-4-4-12` hex form Dataverse ids use.
pub fn is_guid(value: &str) -> bool {
    let groups: Vec<&str> = value.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// A Web API collection query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebApiRequest {
    /// `/api/data/v9.2/contacts`
    pub path: String,
    /// Query options in order, values not yet encoded: `$select`, `$filter`, `$top`.
    pub query: Vec<(String, String)>,
}

/// The request headers the Web API documents for every request (`Accept`, `OData-MaxVersion`,
/// `OData-Version`, `If-None-Match: null`), plus the annotation preference so formatted values
/// come back; "your code should work even if this header isn't included", but sending them
/// pins the protocol version.
pub const REQUEST_HEADERS: [(&str, &str); 5] = [
    ("Accept", "application/json"),
    ("OData-MaxVersion", "4.0"),
    ("OData-Version", "4.0"),
    ("If-None-Match", "null"),
    (
        "Prefer",
        "odata.include-annotations=\"OData.Community.Display.V1.FormattedValue\"",
    ),
];

impl WebApiRequest {
    /// `GET <org>/api/data/<version>/<entity_set>?$select=…&$filter=…&$top=…`.
    pub fn collection(
        api_version: &str,
        entity_set: &str,
        select: &[&str],
        filter: &str,
        top: Option<u32>,
    ) -> Result<Self, ODataError> {
        let entity_set = logical_name("entity set", entity_set)?;
        let mut query = Vec::new();
        if !select.is_empty() {
            let columns = select
                .iter()
                .map(|c| logical_name("column", c))
                .collect::<Result<Vec<_>, _>>()?;
            query.push(("$select".to_owned(), columns.join(",")));
        }
        query.push(("$filter".to_owned(), filter.to_owned()));
        if let Some(top) = top {
            if !(1..=5000).contains(&top) {
                return Err(ODataError::BadTop);
            }
            query.push(("$top".to_owned(), top.to_string()));
        }
        Ok(Self {
            path: format!("/api/data/{}/{entity_set}", version(api_version)?),
            query,
        })
    }

    /// The full URL for `org_url` (`https://contoso.crm.dynamics.com`, trailing `/` ignored).
    /// Option names stay literal (`$filter`, as in every documented example); values are
    /// percent-encoded.
    pub fn url(&self, org_url: &str) -> String {
        let mut url = format!("{}{}", org_url.trim_end_matches('/'), self.path);
        for (i, (name, value)) in self.query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(name);
            url.push('=');
            url.push_str(&utf8_percent_encode(value, QUERY_VALUE).to_string());
        }
        url
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_quotes_are_doubled_and_nothing_else_changes() {
        assert_eq!(string_literal("O'Bryan"), "'O''Bryan'");
        assert_eq!(string_literal("' or 1 eq 1 or '"), "''' or 1 eq 1 or '''");
        assert_eq!(string_literal("100%_[x]\\"), "'100%_[x]\\'");
        assert_eq!(string_literal(""), "''");
        assert_eq!(string_literal("Zoë 😀"), "'Zoë 😀'");
    }

    #[test]
    fn a_phone_filter_ors_every_column_with_every_notation() {
        let filter = any_column_equals(
            &["telephone1", "mobilephone"],
            &["+13175550125", "(317) 555-0125", "+13175550125", ""],
        )
        .unwrap();
        assert_eq!(
            filter,
            "(telephone1 eq '+13175550125' or telephone1 eq '(317) 555-0125' \
             or mobilephone eq '+13175550125' or mobilephone eq '(317) 555-0125')"
        );
    }

    #[test]
    fn hostile_values_stay_inside_their_literal() {
        let filter = any_column_equals(&["emailaddress1"], &["x' or emailaddress1 ne 'y"]).unwrap();
        assert_eq!(filter, "(emailaddress1 eq 'x'' or emailaddress1 ne ''y')");
    }

    #[test]
    fn names_are_logical_names_or_refused() {
        assert!(logical_name("column", "telephone1").is_ok());
        assert!(logical_name("column", "new_score_c2").is_ok());
        for bad in [
            "",
            "Telephone1",
            "1phone",
            "telephone1 eq 'x') or (a",
            "tele phone",
            "a/b",
            "a,b",
            "é",
        ] {
            assert!(logical_name("column", bad).is_err(), "{bad:?}");
        }
        assert_eq!(any_column_equals(&[], &["x"]), Err(ODataError::NoColumns));
        assert_eq!(
            any_column_equals(&["telephone1"], &["", ""]),
            Err(ODataError::NoValues)
        );
        assert!(any_column_equals(&["Telephone1"], &["x"]).is_err());
    }

    #[test]
    fn guids_are_recognised_exactly() {
        assert!(is_guid("78914942-34cb-ed11-b596-0022481d68cd"));
        for bad in [
            "78914942-34cb-ed11-b596-0022481d68c",
            "78914942-34cb-ed11-b596-0022481d68cg",
            "x",
            "78914942-34cb-ed11-b596-0022481d68cd' or '",
        ] {
            assert!(!is_guid(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_collection_url_encodes_values_but_keeps_option_names() {
        let filter = any_column_equals(&["telephone1"], &["+1 317&x=#"]).unwrap();
        let request = WebApiRequest::collection(
            "v9.2",
            "contacts",
            &["fullname", "telephone1"],
            &filter,
            Some(10),
        )
        .unwrap();
        assert_eq!(request.path, "/api/data/v9.2/contacts");
        assert_eq!(
            request.url("https://contoso.crm.dynamics.com/"),
            "https://contoso.crm.dynamics.com/api/data/v9.2/contacts?$select=fullname%2Ctelephone1\
             &$filter=%28telephone1%20eq%20%27%2B1%20317%26x%3D%23%27%29&$top=10"
        );
    }

    #[test]
    fn bad_versions_tops_and_entity_sets_are_refused() {
        assert_eq!(
            WebApiRequest::collection("9.2", "contacts", &[], "x", None),
            Err(ODataError::BadVersion("9.2".into()))
        );
        assert_eq!(
            WebApiRequest::collection("v9.2/../x", "contacts", &[], "x", None),
            Err(ODataError::BadVersion("v9.2/../x".into()))
        );
        assert_eq!(
            WebApiRequest::collection("v9.2", "contacts", &[], "x", Some(0)),
            Err(ODataError::BadTop)
        );
        assert!(WebApiRequest::collection("v9.2", "contacts?$top=1", &[], "x", None).is_err());
        assert!(WebApiRequest::collection(
            "v9.2",
            "contacts",
            &["fullname,emailaddress1"],
            "x",
            None
        )
        .is_err());
    }
}
