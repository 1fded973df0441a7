//! Freshdesk contact lookups: the List All Contacts filters (`GET /api/v2/contacts?phone=…`,
//! `?mobile=…`, `?email=…`), a contact by id, and the filter ("search") API
//! (`GET /api/v2/search/contacts?query="phone:'…' OR mobile:'…'"`).
//!
//! The list filters are plain query parameters: percent-encoding is all a value needs. The
//! search query language puts strings in single quotes inside a double-quoted query of at most
//! 512 characters, and no escape for a quote is documented, so a value with `'`, `"` or `\` is
//! refused for search. Sources: the parent module (`crm::freshdesk`).

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Longest value accepted: longer than any phone notation, email address or external id.
pub const MAX_VALUE_LEN: usize = 256;
/// The documented limit of the search `query`, its double quotes included.
pub const MAX_SEARCH_QUERY_LEN: usize = 512;
/// `per_page` ceiling of the list endpoint.
pub const MAX_PER_PAGE: u32 = 100;
/// The search API serves at most ten pages.
pub const MAX_SEARCH_PAGE: u32 = 10;

/// Unreserved characters stay literal, everything else is percent-encoded (`+` → `%2B`,
/// `@` → `%40`, as the documentation's own example shows).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("the value is empty")]
    EmptyValue,
    #[error("the value is longer than {MAX_VALUE_LEN} characters")]
    ValueTooLong,
    #[error("the value has leading or trailing white space")]
    UntrimmedValue,
    #[error("the value contains a control character")]
    ControlCharacter,
    #[error("the value contains {0:?}, which a search string cannot carry")]
    Unquotable(char),
    #[error("the search query would be longer than {MAX_SEARCH_QUERY_LEN} characters")]
    QueryTooLong,
    #[error("no search term")]
    NoTerms,
    #[error("{field} cannot be used as a List All Contacts filter")]
    NotAListFilter { field: &'static str },
    #[error("{0:?} is not a Freshdesk contact id")]
    InvalidId(String),
    #[error("page size or page number out of range")]
    InvalidPage,
}

/// The contact fields attrsync looks customers up by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactField {
    /// "Work phone".
    Phone,
    /// "Mobile phone".
    Mobile,
    Email,
    /// "Unique external id": searchable only.
    UniqueExternalId,
}

impl ContactField {
    /// The field's name in a search query (and, where it is one, as a list filter).
    pub fn name(self) -> &'static str {
        match self {
            ContactField::Phone => "phone",
            ContactField::Mobile => "mobile",
            ContactField::Email => "email",
            ContactField::UniqueExternalId => "unique_external_id",
        }
    }

    fn is_list_filter(self) -> bool {
        !matches!(self, ContactField::UniqueExternalId)
    }
}

/// A Freshdesk GET: path under `https://<domain>.freshdesk.com` and unencoded parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreshdeskRequest {
    pub path: String,
    pub params: Vec<(&'static str, String)>,
}

impl FreshdeskRequest {
    /// `path?k=v&…` with every value percent-encoded.
    pub fn path_and_query(&self) -> String {
        if self.params.is_empty() {
            return self.path.clone();
        }
        let query: Vec<String> = self
            .params
            .iter()
            .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, QUERY_VALUE)))
            .collect();
        format!("{}?{}", self.path, query.join("&"))
    }
}

/// `GET /api/v2/contacts?<field>=<value>&per_page=<n>`.
pub fn list_lookup(
    field: ContactField,
    value: &str,
    per_page: u32,
) -> Result<FreshdeskRequest, QueryError> {
    if !field.is_list_filter() {
        return Err(QueryError::NotAListFilter {
            field: field.name(),
        });
    }
    if !(1..=MAX_PER_PAGE).contains(&per_page) {
        return Err(QueryError::InvalidPage);
    }
    check_value(value)?;
    Ok(FreshdeskRequest {
        path: "/api/v2/contacts".to_owned(),
        params: vec![
            (field.name(), value.to_owned()),
            ("per_page", per_page.to_string()),
        ],
    })
}

/// `GET /api/v2/contacts/{id}`; ids are positive integers.
pub fn contact_by_id(id: &str) -> Result<FreshdeskRequest, QueryError> {
    let valid = !id.is_empty()
        && id.len() <= 20
        && id.bytes().all(|b| b.is_ascii_digit())
        && id.parse::<u64>().is_ok_and(|n| n > 0);
    if !valid {
        return Err(QueryError::InvalidId(id.to_owned()));
    }
    Ok(FreshdeskRequest {
        path: format!("/api/v2/contacts/{id}"),
        params: Vec::new(),
    })
}

/// `GET /api/v2/search/contacts?query="f1:'v1' OR f2:'v2'"&page=<n>`: any term matching.
pub fn search_lookup(
    terms: &[(ContactField, &str)],
    page: u32,
) -> Result<FreshdeskRequest, QueryError> {
    if terms.is_empty() {
        return Err(QueryError::NoTerms);
    }
    if !(1..=MAX_SEARCH_PAGE).contains(&page) {
        return Err(QueryError::InvalidPage);
    }
    let terms: Vec<String> = terms
        .iter()
        .map(|(field, value)| Ok(format!("{}:{}", field.name(), quote(value)?)))
        .collect::<Result<_, QueryError>>()?;
    // Every value went through `quote`; field names are fixed words.
    let query = format!("\"{}\"", terms.join(" OR "));
    if query.chars().count() > MAX_SEARCH_QUERY_LEN {
        return Err(QueryError::QueryTooLong);
    }
    Ok(FreshdeskRequest {
        path: "/api/v2/search/contacts".to_owned(),
        params: vec![("query", query), ("page", page.to_string())],
    })
}

/// A value as a single-quoted search string, or why it cannot be one.
pub fn quote(value: &str) -> Result<String, QueryError> {
    check_value(value)?;
    if let Some(c) = value.chars().find(|c| matches!(c, '\'' | '"' | '\\')) {
        return Err(QueryError::Unquotable(c));
    }
    Ok(format!("'{value}'"))
}

fn check_value(value: &str) -> Result<(), QueryError> {
    if value.is_empty() {
        return Err(QueryError::EmptyValue);
    }
    if value.chars().count() > MAX_VALUE_LEN {
        return Err(QueryError::ValueTooLong);
    }
    if value.trim() != value {
        return Err(QueryError::UntrimmedValue);
    }
    if value.chars().any(char::is_control) {
        return Err(QueryError::ControlCharacter);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_filter_is_one_percent_encoded_parameter() -> Result<(), QueryError> {
        let request = list_lookup(ContactField::Phone, "+1 (317) 555-0125", 2)?;
        assert_eq!(
            request.path_and_query(),
            "/api/v2/contacts?phone=%2B1%20%28317%29%20555-0125&per_page=2"
        );
        let request = list_lookup(ContactField::Email, "bat+man@gmail.com", 2)?;
        assert_eq!(
            request.path_and_query(),
            "/api/v2/contacts?email=bat%2Bman%40gmail.com&per_page=2"
        );
        Ok(())
    }

    #[test]
    fn list_filter_values_need_no_quoting_so_quotes_and_operators_pass_encoded(
    ) -> Result<(), QueryError> {
        for value in [
            "'",
            "\\",
            "}",
            "OR 1=1",
            "--",
            "%",
            "*",
            "^",
            "\"",
            "a&phone=1",
            "Zoë ☎",
        ] {
            let request = list_lookup(ContactField::Mobile, value, 1)?;
            let url = request.path_and_query();
            let encoded = url
                .strip_prefix("/api/v2/contacts?mobile=")
                .and_then(|rest| rest.strip_suffix("&per_page=1"));
            assert!(
                encoded.is_some_and(|e| !e.contains(['&', '=', '+', '#', ' ', '\'', '"'])),
                "{url}"
            );
        }
        Ok(())
    }

    #[test]
    fn empty_untrimmed_control_and_overlong_values_are_refused_everywhere() {
        let long = "1".repeat(MAX_VALUE_LEN + 1);
        let cases = [
            ("", QueryError::EmptyValue),
            (" 1", QueryError::UntrimmedValue),
            ("1\t", QueryError::UntrimmedValue),
            ("1\u{0}2", QueryError::ControlCharacter),
            (long.as_str(), QueryError::ValueTooLong),
        ];
        for (value, error) in cases {
            assert_eq!(
                list_lookup(ContactField::Phone, value, 1),
                Err(error.clone())
            );
            assert_eq!(quote(value), Err(error));
        }
    }

    #[test]
    fn a_search_ors_single_quoted_terms_inside_double_quotes() -> Result<(), QueryError> {
        let request = search_lookup(
            &[
                (ContactField::Phone, "+13175550125"),
                (ContactField::Mobile, "+13175550125"),
            ],
            1,
        )?;
        assert_eq!(
            request.params,
            vec![
                (
                    "query",
                    "\"phone:'+13175550125' OR mobile:'+13175550125'\"".to_owned()
                ),
                ("page", "1".to_owned()),
            ]
        );
        assert_eq!(
            request.path_and_query(),
            "/api/v2/search/contacts?query=%22phone%3A%27%2B13175550125%27%20OR%20mobile%3A%27%2B13175550125%27%22&page=1"
        );
        Ok(())
    }

    #[test]
    fn quotes_and_backslashes_cannot_be_searched_for() {
        for (value, c) in [
            ("O'Brien", '\''),
            ("' OR 'a'='a", '\''),
            ("say \"hi\"", '"'),
            ("a\\", '\\'),
        ] {
            assert_eq!(quote(value), Err(QueryError::Unquotable(c)), "{value}");
        }
    }

    #[test]
    fn search_syntax_inside_a_quoted_value_stays_text() -> Result<(), QueryError> {
        for value in [
            "x OR active:true",
            ")",
            "(",
            "null",
            "}",
            "--",
            "%",
            "*",
            "^",
            "a:b",
            "東京",
        ] {
            assert_eq!(quote(value)?, format!("'{value}'"));
        }
        Ok(())
    }

    #[test]
    fn a_search_longer_than_512_characters_or_beyond_page_10_is_refused() {
        let value = "1".repeat(250);
        let terms = [
            (ContactField::Phone, value.as_str()),
            (ContactField::Mobile, value.as_str()),
        ];
        assert_eq!(search_lookup(&terms, 1), Err(QueryError::QueryTooLong));
        assert!(search_lookup(&terms[..1], 1).is_ok());
        assert_eq!(search_lookup(&terms[..1], 11), Err(QueryError::InvalidPage));
        assert_eq!(search_lookup(&terms[..1], 0), Err(QueryError::InvalidPage));
        assert_eq!(search_lookup(&[], 1), Err(QueryError::NoTerms));
    }

    #[test]
    fn an_external_id_is_searchable_but_not_a_list_filter() {
        assert_eq!(
            list_lookup(ContactField::UniqueExternalId, "C-1", 1),
            Err(QueryError::NotAListFilter {
                field: "unique_external_id"
            })
        );
        assert!(search_lookup(&[(ContactField::UniqueExternalId, "C-1")], 1).is_ok());
    }

    #[test]
    fn a_contact_id_must_be_a_positive_integer() -> Result<(), QueryError> {
        assert_eq!(
            contact_by_id("5004272350")?.path_and_query(),
            "/api/v2/contacts/5004272350"
        );
        for bad in [
            "",
            "0",
            "-1",
            "1 ",
            "1e3",
            "12/../x",
            "99999999999999999999999",
        ] {
            assert_eq!(
                contact_by_id(bad),
                Err(QueryError::InvalidId(bad.to_owned()))
            );
        }
        assert_eq!(
            list_lookup(ContactField::Phone, "1", 0),
            Err(QueryError::InvalidPage)
        );
        assert_eq!(
            list_lookup(ContactField::Phone, "1", 101),
            Err(QueryError::InvalidPage)
        );
        Ok(())
    }
}
