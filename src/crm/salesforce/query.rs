//! The REST requests for Salesforce lookups, built from plain values: SOSL
//! `FIND {…} IN PHONE FIELDS RETURNING …` for phone numbers (and optionally email), SOQL
//! `SELECT … FROM … WHERE f = '…'` for email, record id and external id.
//!
//! Requests go to `GET /services/data/vXX.X/search/?q=` and `GET /services/data/vXX.X/query/?q=`
//! (REST API Developer Guide, *Search* and *Query* resources,
//! developer.salesforce.com/docs/platform/api-rest/guide/resources-search.md, resources-query.md);
//! the query text is URL-encoded by [`RestRequest::url`]. Every value is escaped by
//! [`super::escape`]; every name is checked there too.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::escape::{field_path, identifier, soql_string, sosl_phrase, ApiVersion, NameError};

/// The field every returned record must carry so it can be told apart.
pub const ID_FIELD: &str = "Id";
/// The standard audit field `most_recent` matching orders by.
pub const LAST_MODIFIED_FIELD: &str = "LastModifiedDate";

/// SOSL's documented maximum for `LIMIT` (SOQL and SOSL Reference, *LIMIT n*: 2,000 rows).
pub const MAX_SOSL_LIMIT: u32 = 2000;

/// SOSL rejects one-character terms ("search term must be longer than one character").
const MIN_SOSL_TERM_CHARS: usize = 2;

/// Everything but RFC 3986 unreserved characters is percent-encoded, spaces as `%20`, so no
/// server can read a `+` in a phone number as a space.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// One object in a SOSL `RETURNING` clause, or the object of a SOQL query, with its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub object: String,
    pub fields: Vec<String>,
}

impl Target {
    pub fn new(object: &str, fields: &[&str]) -> Self {
        Self {
            object: object.to_owned(),
            fields: fields.iter().map(|f| (*f).to_owned()).collect(),
        }
    }

    /// Contact, Account and Lead, the objects issue 11 names as defaults, with standard fields.
    pub fn defaults() -> Vec<Target> {
        vec![
            Target::new(
                "Contact",
                &[
                    "Id",
                    "Name",
                    "Phone",
                    "MobilePhone",
                    "Email",
                    "AccountId",
                    "LastModifiedDate",
                ],
            ),
            Target::new("Account", &["Id", "Name", "Phone", "LastModifiedDate"]),
            Target::new(
                "Lead",
                &[
                    "Id",
                    "Name",
                    "Phone",
                    "MobilePhone",
                    "Email",
                    "Company",
                    "LastModifiedDate",
                ],
            ),
        ]
    }

    /// `Object(Id, f1, f2, LastModifiedDate)` with the names checked and `Id` and
    /// `LastModifiedDate` added when missing: the response parser needs both.
    fn field_list(&self) -> Result<String, QueryError> {
        identifier("object", &self.object)?;
        let mut fields: Vec<&str> = Vec::with_capacity(self.fields.len() + 2);
        for required in [ID_FIELD, LAST_MODIFIED_FIELD] {
            if !self.fields.iter().any(|f| f.eq_ignore_ascii_case(required)) {
                fields.push(required);
            }
        }
        for field in &self.fields {
            let field = field_path(field)?;
            if !fields.iter().any(|f| f.eq_ignore_ascii_case(field)) {
                fields.push(field);
            }
        }
        Ok(fields.join(", "))
    }
}

/// The SOSL `IN … FIELDS` clause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchGroup {
    Phone,
    Email,
    All,
}

impl SearchGroup {
    fn clause(self) -> &'static str {
        match self {
            SearchGroup::Phone => "PHONE FIELDS",
            SearchGroup::Email => "EMAIL FIELDS",
            SearchGroup::All => "ALL FIELDS",
        }
    }
}

/// A GET request relative to the token's `instance_url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestRequest {
    /// `/services/data/v66.0/search/`
    pub path: String,
    /// The SOSL or SOQL text, not yet URL-encoded.
    pub q: String,
}

impl RestRequest {
    /// The full URL: `instance_url` (trailing slashes ignored) + path + `?q=` + encoded query.
    pub fn url(&self, instance_url: &str) -> String {
        format!(
            "{}{}?q={}",
            instance_url.trim_end_matches('/'),
            self.path,
            utf8_percent_encode(&self.q, QUERY_VALUE)
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("no usable search term (a SOSL term needs at least two characters)")]
    NoTerms,
    #[error("no object to search")]
    NoTargets,
    #[error("no field to match on")]
    NoMatchFields,
    #[error("not a Salesforce record id (15 or 18 letters and digits)")]
    NotARecordId,
    #[error("limit must be between 1 and {MAX_SOSL_LIMIT}")]
    BadLimit,
}

/// A phone lookup: `FIND {13175550125 OR 3175550125} IN PHONE FIELDS RETURNING …`.
///
/// Each number is reduced to its digits: SOSL splits indexed text on punctuation
/// ("The search engine splits record information separated by spaces or punctuation into
/// separate tokens", *FIND {SearchQuery}*), and Salesforce's own phone sample searches plain
/// digits ("Example of phoneNumber format: 4155551212", SOAP API *Sample search Call*). Whether
/// SOSL also matches a number with and without its country code is not documented, so callers
/// pass every notation they want matched (E.164 digits and national digits) and the terms are
/// OR-ed. Digit-only terms need no escaping.
pub fn phone_search(
    version: &ApiVersion,
    numbers: &[&str],
    targets: &[Target],
    limit: Option<u32>,
) -> Result<RestRequest, QueryError> {
    let mut terms: Vec<String> = Vec::new();
    for number in numbers {
        let digits: String = number.chars().filter(char::is_ascii_digit).collect();
        if digits.len() >= MIN_SOSL_TERM_CHARS && !terms.contains(&digits) {
            terms.push(digits);
        }
    }
    if terms.is_empty() {
        return Err(QueryError::NoTerms);
    }
    sosl(
        version,
        &terms.join(" OR "),
        SearchGroup::Phone,
        targets,
        limit,
    )
}

/// A free-text lookup in one search group, the value quoted as a single SOSL phrase
/// (`FIND {"ada@example.com"} IN EMAIL FIELDS RETURNING …`).
pub fn phrase_search(
    version: &ApiVersion,
    value: &str,
    group: SearchGroup,
    targets: &[Target],
    limit: Option<u32>,
) -> Result<RestRequest, QueryError> {
    if value.trim().chars().count() < MIN_SOSL_TERM_CHARS {
        return Err(QueryError::NoTerms);
    }
    sosl(version, &sosl_phrase(value.trim()), group, targets, limit)
}

fn sosl(
    version: &ApiVersion,
    term: &str,
    group: SearchGroup,
    targets: &[Target],
    limit: Option<u32>,
) -> Result<RestRequest, QueryError> {
    if targets.is_empty() {
        return Err(QueryError::NoTargets);
    }
    let returning = targets
        .iter()
        .map(|t| Ok(format!("{}({})", t.object, t.field_list()?)))
        .collect::<Result<Vec<_>, QueryError>>()?
        .join(", ");
    // The term was escaped (or is digits only) before it got here.
    let mut q = format!(
        "FIND {{{term}}} IN {} RETURNING {returning}",
        group.clause()
    );
    if let Some(limit) = limit {
        q.push_str(&format!(" LIMIT {}", checked_limit(limit)?));
    }
    Ok(RestRequest {
        path: format!("/services/data/{version}/search/"),
        q,
    })
}

fn checked_limit(limit: u32) -> Result<u32, QueryError> {
    if (1..=MAX_SOSL_LIMIT).contains(&limit) {
        Ok(limit)
    } else {
        Err(QueryError::BadLimit)
    }
}

/// `SELECT Id, …, LastModifiedDate FROM Object WHERE F1 = 'v' OR F2 = 'v' [LIMIT n]`: exact
/// matching for email or an external-id field, one object per query (SOQL has no multi-object
/// form). The value is a SOQL literal from [`soql_string`].
pub fn soql_equals(
    version: &ApiVersion,
    target: &Target,
    match_fields: &[&str],
    value: &str,
    limit: Option<u32>,
) -> Result<RestRequest, QueryError> {
    if match_fields.is_empty() {
        return Err(QueryError::NoMatchFields);
    }
    let literal = soql_string(value);
    let condition = match_fields
        .iter()
        .map(|f| Ok(format!("{} = {literal}", field_path(f)?)))
        .collect::<Result<Vec<_>, QueryError>>()?
        .join(" OR ");
    let mut q = format!(
        "SELECT {} FROM {} WHERE {condition}",
        target.field_list()?,
        target.object
    );
    if let Some(limit) = limit {
        q.push_str(&format!(" LIMIT {}", checked_limit(limit)?));
    }
    Ok(RestRequest {
        path: format!("/services/data/{version}/query/"),
        q,
    })
}

/// Salesforce record ids are 15 (case-sensitive) or 18 (case-safe) letters and digits.
pub fn is_record_id(value: &str) -> bool {
    matches!(value.len(), 15 | 18) && value.chars().all(|c| c.is_ascii_alphanumeric())
}

/// A lookup by record id; anything that is not an id is refused before a query exists.
pub fn id_lookup(
    version: &ApiVersion,
    target: &Target,
    id: &str,
) -> Result<RestRequest, QueryError> {
    if !is_record_id(id) {
        return Err(QueryError::NotARecordId);
    }
    soql_equals(version, target, &[ID_FIELD], id, Some(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v() -> ApiVersion {
        ApiVersion::parse("66.0").unwrap()
    }

    #[test]
    fn a_phone_search_ors_the_digits_of_each_notation_over_the_default_objects() {
        let request = phone_search(
            &v(),
            &["+1 317-555-0125", "3175550125", "(317) 555-0125"],
            &Target::defaults(),
            Some(50),
        )
        .unwrap();
        assert_eq!(request.path, "/services/data/v66.0/search/");
        assert_eq!(
            request.q,
            "FIND {13175550125 OR 3175550125} IN PHONE FIELDS RETURNING \
             Contact(Id, Name, Phone, MobilePhone, Email, AccountId, LastModifiedDate), \
             Account(Id, Name, Phone, LastModifiedDate), \
             Lead(Id, Name, Phone, MobilePhone, Email, Company, LastModifiedDate) LIMIT 50"
        );
    }

    #[test]
    fn phone_search_drops_everything_that_is_not_a_digit_so_nothing_can_be_injected() {
        for hostile in [
            "} RETURNING User(Id)",
            "' OR ''='",
            "*",
            "\\",
            "--",
            "%",
            "^",
            "😀",
        ] {
            assert_eq!(
                phone_search(&v(), &[hostile], &Target::defaults(), None),
                Err(QueryError::NoTerms),
                "{hostile:?}"
            );
        }
        let request = phone_search(&v(), &["55}OR{66"], &Target::defaults(), None).unwrap();
        assert!(request.q.starts_with("FIND {5566} IN PHONE FIELDS"));
        let request = phone_search(&v(), &["1' OR '1'='1"], &Target::defaults(), None).unwrap();
        assert!(request.q.starts_with("FIND {111} IN PHONE FIELDS"));
    }

    #[test]
    fn an_email_search_quotes_and_escapes_the_value() {
        let request = phrase_search(
            &v(),
            "o'brien+tag@example.com",
            SearchGroup::Email,
            &[Target::new("Contact", &["Email"])],
            None,
        )
        .unwrap();
        assert_eq!(
            request.q,
            "FIND {\"o\\'brien\\+tag@example.com\"} IN EMAIL FIELDS RETURNING Contact(Id, LastModifiedDate, Email)"
        );
        assert_eq!(
            phrase_search(&v(), " a ", SearchGroup::Email, &Target::defaults(), None),
            Err(QueryError::NoTerms)
        );
    }

    #[test]
    fn a_soql_lookup_escapes_the_literal_and_ors_the_match_fields() {
        let target = Target::new("Contact", &["Id", "Name", "Email", "LastModifiedDate"]);
        let request = soql_equals(
            &v(),
            &target,
            &["Email", "Alternate_Email__c"],
            "x' OR Name != '",
            Some(10),
        )
        .unwrap();
        assert_eq!(request.path, "/services/data/v66.0/query/");
        assert_eq!(
            request.q,
            "SELECT Id, Name, Email, LastModifiedDate FROM Contact WHERE Email = 'x\\' OR Name != \\'' \
             OR Alternate_Email__c = 'x\\' OR Name != \\'' LIMIT 10"
        );
    }

    #[test]
    fn configured_names_are_checked_before_they_reach_a_query() {
        let bad_object = Target::new("Contact WHERE Id != null", &["Id"]);
        assert!(matches!(
            soql_equals(&v(), &bad_object, &["Email"], "a", None),
            Err(QueryError::Name(_))
        ));
        let bad_field = Target::new("Contact", &["Id, (SELECT Id FROM Cases)"]);
        assert!(matches!(
            phone_search(&v(), &["3175550125"], &[bad_field], None),
            Err(QueryError::Name(_))
        ));
        let target = Target::new("Contact", &["Id"]);
        assert!(matches!(
            soql_equals(&v(), &target, &["Email = 'a' OR Id"], "a", None),
            Err(QueryError::Name(_))
        ));
        assert_eq!(
            soql_equals(&v(), &target, &[], "a", None),
            Err(QueryError::NoMatchFields)
        );
        assert_eq!(
            phone_search(&v(), &["3175550125"], &[], None),
            Err(QueryError::NoTargets)
        );
        assert_eq!(
            phone_search(&v(), &["3175550125"], &Target::defaults(), Some(0)),
            Err(QueryError::BadLimit)
        );
        assert_eq!(
            phone_search(&v(), &["3175550125"], &Target::defaults(), Some(2001)),
            Err(QueryError::BadLimit)
        );
    }

    #[test]
    fn an_id_lookup_accepts_only_record_ids() {
        let target = Target::new("Contact", &["Name"]);
        let request = id_lookup(&v(), &target, "003D000000QOtgnIAD").unwrap();
        assert_eq!(request.q, "SELECT Id, LastModifiedDate, Name FROM Contact WHERE Id = '003D000000QOtgnIAD' LIMIT 1");
        for bad in [
            "003D000000QOtgn' OR ''='",
            "",
            "003D000000QOtg",
            "003D000000QOtgnIAD1",
            "003D000000QOtgn%",
        ] {
            assert_eq!(
                id_lookup(&v(), &target, bad),
                Err(QueryError::NotARecordId),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_url_percent_encodes_the_whole_query_with_spaces_as_percent_20() {
        let request = phrase_search(
            &v(),
            "a+b@x.io",
            SearchGroup::Email,
            &[Target::new("Lead", &[])],
            None,
        )
        .unwrap();
        assert_eq!(
            request.url("https://acme.my.salesforce.com/"),
            "https://acme.my.salesforce.com/services/data/v66.0/search/?q=FIND%20%7B%22a%5C%2Bb%40x.io%22%7D%20IN%20EMAIL%20FIELDS%20RETURNING%20Lead%28Id%2C%20LastModifiedDate%29"
        );
    }

    #[test]
    fn very_long_values_are_escaped_whole() {
        let long = "'".repeat(10_000);
        let request =
            soql_equals(&v(), &Target::new("Contact", &[]), &["Email"], &long, None).unwrap();
        assert!(request.q.contains(&"\\'".repeat(10_000)));
    }
}
