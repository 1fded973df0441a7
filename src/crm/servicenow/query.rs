//! Table API lookups: the encoded query for a key (phone notations, email, record id) over the
//! configured table and fields, with every value checked before it reaches the query, and the
//! request path and percent-encoded parameters.
//!
//! The encoded query has no documented escape except `^^` for the term separator
//! (`GlideStringUtil.escapeQueryTermSeparator`, ServiceNowDocs
//! `markdown/api-reference/server-api-reference/GlideStringUtilScopedAPI.md`), and it gives
//! meaning to whole values: `javascript:…` is evaluated on the instance and `NULL` means "no
//! value" (`c_TableAPI.md`, `cust_central-api.md`). So values are refused rather than escaped,
//! except `^`, which can be doubled on request ([`CaretPolicy::Escape`]). Sources: the parent
//! module (`crm::servicenow`).

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Longest value accepted: longer than any phone notation, email address or id attrsync sends.
pub const MAX_VALUE_LEN: usize = 256;
/// Longest identifier accepted; ServiceNow's own table and column names are far shorter.
pub const MAX_NAME_LEN: usize = 80;
/// The whole encoded query; keeps the request line well inside common URL limits.
pub const MAX_QUERY_LEN: usize = 4_000;
/// `sysparm_limit` ceiling: the instance's own default is 10000, attrsync needs a handful.
pub const MAX_LIMIT: u32 = 1_000;

/// RFC 3986 unreserved characters stay literal; everything else is percent-encoded, so `+`,
/// `^`, `=`, `&`, `%` and spaces in a value can never change the request's meaning.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Why a lookup could not be built. The caller skips this key (the value cannot be looked up
/// safely), it is not a CRM failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("{what} {name:?} is not a ServiceNow identifier (lowercase letters, digits, _)")]
    InvalidName { what: &'static str, name: String },
    #[error("the value is empty")]
    EmptyValue,
    #[error("the value is longer than {MAX_VALUE_LEN} characters")]
    ValueTooLong,
    #[error("the value has leading or trailing white space")]
    UntrimmedValue,
    #[error("the value contains a control character")]
    ControlCharacter,
    #[error("the value contains {0:?}, which the encoded query cannot carry safely")]
    ForbiddenText(&'static str),
    #[error("the value is the encoded query's NULL keyword")]
    NullKeyword,
    #[error("no field to search")]
    NoFields,
    #[error("no value to search for")]
    NoValues,
    #[error("the encoded query would be longer than {MAX_QUERY_LEN} characters")]
    QueryTooLong,
    #[error("sysparm_limit must be 1..={MAX_LIMIT}")]
    InvalidLimit,
    #[error("{0:?} is not a sys_id (32 hexadecimal characters)")]
    InvalidSysId(String),
}

/// What to do with a `^` inside a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CaretPolicy {
    /// Refuse the value. The default: no phone number, email address or id attrsync looks up
    /// contains `^`, and how the REST parser reads `^^` next to `^OR` is undocumented.
    #[default]
    Refuse,
    /// Double it (`^` → `^^`), ServiceNow's documented escape for the term separator.
    Escape,
}

/// Where and how to look: one table, the fields each key kind is compared with, the fields to
/// return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableLookup {
    /// `sys_user`, `customer_contact`, a custom `u_…` table.
    pub table: String,
    /// Compared with every phone notation, OR-ed: `phone`, `mobile_phone`, `home_phone`.
    pub phone_fields: Vec<String>,
    /// Compared with the email address: `email`.
    pub email_fields: Vec<String>,
    /// Returned besides `sys_id`, `sys_updated_on`, `sys_class_name` and the searched fields.
    pub return_fields: Vec<String>,
    /// `sysparm_limit`: 2 is enough to tell "one match" from "ambiguous".
    pub limit: u32,
    /// Newest record first (`ORDERBYDESCsys_updated_on`), for a "most recently modified" policy.
    pub newest_first: bool,
    pub caret: CaretPolicy,
}

impl TableLookup {
    /// `sys_user` with its business and mobile phone fields and `email`.
    pub fn sys_user() -> Self {
        Self {
            table: "sys_user".to_owned(),
            phone_fields: vec!["phone".to_owned(), "mobile_phone".to_owned()],
            email_fields: vec!["email".to_owned()],
            return_fields: Vec::new(),
            limit: 2,
            newest_first: true,
            caret: CaretPolicy::Refuse,
        }
    }
}

/// A Table API GET: the path under the instance URL and its query parameters, unencoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRequest {
    pub path: String,
    pub params: Vec<(&'static str, String)>,
}

impl TableRequest {
    /// `path?k=v&…` with every parameter value percent-encoded.
    pub fn path_and_query(&self) -> String {
        let query: Vec<String> = self
            .params
            .iter()
            .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, QUERY_VALUE)))
            .collect();
        format!("{}?{}", self.path, query.join("&"))
    }

    /// The `sysparm_query` parameter, as sent (before URL encoding).
    pub fn encoded_query(&self) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| *k == "sysparm_query")
            .map(|(_, v)| v.as_str())
    }
}

/// A lookup by phone: every field compared with every notation, one request for all of them.
pub fn phone_lookup(lookup: &TableLookup, notations: &[&str]) -> Result<TableRequest, QueryError> {
    request(lookup, &lookup.phone_fields, notations)
}

pub fn email_lookup(lookup: &TableLookup, email: &str) -> Result<TableRequest, QueryError> {
    request(lookup, &lookup.email_fields, &[email])
}

/// A lookup by email comparing several spellings of the address (as given, lower-cased).
pub fn emails_lookup(lookup: &TableLookup, emails: &[&str]) -> Result<TableRequest, QueryError> {
    request(lookup, &lookup.email_fields, emails)
}

/// A lookup by `sys_id`. Checked for the 32-hex form so no other text can reach the query.
pub fn sys_id_lookup(lookup: &TableLookup, sys_id: &str) -> Result<TableRequest, QueryError> {
    if sys_id.len() != 32 || !sys_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(QueryError::InvalidSysId(sys_id.to_owned()));
    }
    request(lookup, &["sys_id".to_owned()], &[sys_id])
}

/// A lookup comparing one configured field (an external id such as `u_customer_number`).
pub fn field_lookup(
    lookup: &TableLookup,
    field: &str,
    value: &str,
) -> Result<TableRequest, QueryError> {
    request(lookup, &[field.to_owned()], &[value])
}

fn request(
    lookup: &TableLookup,
    fields: &[String],
    values: &[&str],
) -> Result<TableRequest, QueryError> {
    check_name("table", &lookup.table, false)?;
    if !(1..=MAX_LIMIT).contains(&lookup.limit) {
        return Err(QueryError::InvalidLimit);
    }
    let mut query = or_query(fields, values, lookup.caret)?;
    if lookup.newest_first {
        query.push_str("^ORDERBYDESCsys_updated_on");
    }
    if query.len() > MAX_QUERY_LEN {
        return Err(QueryError::QueryTooLong);
    }
    let mut returned: Vec<&str> = vec!["sys_id", "sys_updated_on", "sys_class_name"];
    for field in fields.iter().chain(&lookup.return_fields) {
        check_name("field", field, true)?;
        if !returned.contains(&field.as_str()) {
            returned.push(field);
        }
    }
    Ok(TableRequest {
        path: format!("/api/now/table/{}", lookup.table),
        params: vec![
            ("sysparm_query", query),
            ("sysparm_fields", returned.join(",")),
            ("sysparm_limit", lookup.limit.to_string()),
            // Database values: strings as stored, `sys_updated_on` in UTC, no extra reads.
            ("sysparm_display_value", "false".to_owned()),
            ("sysparm_exclude_reference_link", "true".to_owned()),
            // No `select count(*)`: the limit tells attrsync all it needs.
            ("sysparm_no_count", "true".to_owned()),
        ],
    })
}

/// `f1=v1^ORf1=v2^ORf2=v1^ORf2=v2`: any field equal to any value.
pub fn or_query(
    fields: &[String],
    values: &[&str],
    caret: CaretPolicy,
) -> Result<String, QueryError> {
    if fields.is_empty() {
        return Err(QueryError::NoFields);
    }
    if values.is_empty() {
        return Err(QueryError::NoValues);
    }
    let values: Vec<String> = values
        .iter()
        .map(|v| escape_value(v, caret))
        .collect::<Result<_, _>>()?;
    let mut terms = Vec::with_capacity(fields.len() * values.len());
    for field in fields {
        check_name("field", field, true)?;
        for value in &values {
            // Both parts were checked just above: the field is a lowercase identifier and the
            // value went through `escape_value`.
            terms.push(format!("{field}={value}"));
        }
    }
    Ok(terms.join("^OR"))
}

/// A value as it may appear after `=`, or why it may not appear at all.
pub fn escape_value(value: &str, caret: CaretPolicy) -> Result<String, QueryError> {
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
    if value.eq_ignore_ascii_case("NULL") {
        return Err(QueryError::NullKeyword);
    }
    if value.to_ascii_lowercase().contains("javascript:") {
        return Err(QueryError::ForbiddenText("javascript:"));
    }
    // No documented escape: a parser that split at the last `=` would take the value for a
    // field name, and an invalid part is silently dropped, widening the query.
    if value.contains('=') {
        return Err(QueryError::ForbiddenText("="));
    }
    match caret {
        CaretPolicy::Refuse if value.contains('^') => Err(QueryError::ForbiddenText("^")),
        CaretPolicy::Refuse => Ok(value.to_owned()),
        CaretPolicy::Escape => Ok(value.replace('^', "^^")),
    }
}

/// Lowercase identifiers only: every operator keyword is upper case and every operator symbol is
/// punctuation, so none can hide in a name. Fields may be dot-walked (`company.name`).
fn check_name(what: &'static str, name: &str, dots: bool) -> Result<(), QueryError> {
    let segment_ok = |s: &str| {
        s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    };
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && if dots {
            name.split('.').all(segment_ok)
        } else {
            segment_ok(name)
        };
    if ok {
        Ok(())
    } else {
        Err(QueryError::InvalidName {
            what,
            name: name.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_phone_lookup_ors_every_notation_over_every_phone_field() -> Result<(), QueryError> {
        let lookup = TableLookup {
            newest_first: false,
            ..TableLookup::sys_user()
        };
        let request = phone_lookup(&lookup, &["+13175550125", "(317) 555-0125"])?;
        assert_eq!(request.path, "/api/now/table/sys_user");
        assert_eq!(
            request.encoded_query(),
            Some(
                "phone=+13175550125^ORphone=(317) 555-0125\
                 ^ORmobile_phone=+13175550125^ORmobile_phone=(317) 555-0125"
            )
        );
        Ok(())
    }

    #[test]
    fn the_request_asks_for_database_values_a_small_limit_and_the_id_fields(
    ) -> Result<(), QueryError> {
        let lookup = TableLookup {
            return_fields: fields(&["first_name", "email", "last_name"]),
            ..TableLookup::sys_user()
        };
        let request = email_lookup(&lookup, "ada@example.com")?;
        assert_eq!(
            request.params,
            vec![
                (
                    "sysparm_query",
                    "email=ada@example.com^ORDERBYDESCsys_updated_on".to_owned()
                ),
                (
                    "sysparm_fields",
                    "sys_id,sys_updated_on,sys_class_name,email,first_name,last_name".to_owned()
                ),
                ("sysparm_limit", "2".to_owned()),
                ("sysparm_display_value", "false".to_owned()),
                ("sysparm_exclude_reference_link", "true".to_owned()),
                ("sysparm_no_count", "true".to_owned()),
            ]
        );
        Ok(())
    }

    #[test]
    fn every_reserved_character_of_the_url_is_percent_encoded() -> Result<(), QueryError> {
        let lookup = TableLookup {
            newest_first: false,
            ..TableLookup::sys_user()
        };
        let request = field_lookup(&lookup, "u_ref", "a+b&c%d e#f/é")?;
        let url = request.path_and_query();
        assert!(url.starts_with(
            "/api/now/table/sys_user?sysparm_query=u_ref%3Da%2Bb%26c%25d%20e%23f%2F%C3%A9&"
        ));
        assert!(url.contains("&sysparm_fields=sys_id%2Csys_updated_on%2Csys_class_name%2Cu_ref&"));
        Ok(())
    }

    #[test]
    fn script_null_and_operator_values_are_refused() {
        let refused = [
            (
                "javascript:gs.getUserID()",
                QueryError::ForbiddenText("javascript:"),
            ),
            (
                "+1555 JavaScript:x",
                QueryError::ForbiddenText("javascript:"),
            ),
            ("NULL", QueryError::NullKeyword),
            ("null", QueryError::NullKeyword),
            ("x^ORsys_idISNOTEMPTY", QueryError::ForbiddenText("^")),
            ("x^ORsys_id!=0", QueryError::ForbiddenText("=")),
            ("x^NQactive=true", QueryError::ForbiddenText("=")),
            ("1=1", QueryError::ForbiddenText("=")),
            ("", QueryError::EmptyValue),
            (" +15550100", QueryError::UntrimmedValue),
            ("+15550100\n", QueryError::UntrimmedValue),
            ("a\u{0}b", QueryError::ControlCharacter),
            ("a\u{7f}b", QueryError::ControlCharacter),
        ];
        for (value, error) in refused {
            assert_eq!(
                escape_value(value, CaretPolicy::Refuse),
                Err(error),
                "{value:?}"
            );
        }
        assert_eq!(
            escape_value(&"9".repeat(MAX_VALUE_LEN + 1), CaretPolicy::Refuse),
            Err(QueryError::ValueTooLong)
        );
        assert!(escape_value(&"é".repeat(MAX_VALUE_LEN), CaretPolicy::Refuse).is_ok());
    }

    #[test]
    fn the_injection_classics_without_query_syntax_pass_through_unchanged() {
        for value in [
            "O'Brien",
            "a\\b",
            "}",
            "' OR 1 1 --",
            "--",
            "%",
            "*",
            "\"quoted\"",
            "Zoë 東京 ☎",
            "LIKE",
            "ISNOTEMPTY",
            "STARTSWITH1",
            "a,b@c",
        ] {
            assert_eq!(
                escape_value(value, CaretPolicy::Refuse).as_deref(),
                Ok(value),
                "{value:?}"
            );
        }
    }

    #[test]
    fn with_the_escape_policy_a_caret_is_doubled_as_servicenow_documents() {
        assert_eq!(
            escape_value("x^ORsys_idISNOTEMPTY", CaretPolicy::Escape).as_deref(),
            Ok("x^^ORsys_idISNOTEMPTY")
        );
        assert_eq!(
            escape_value("^^", CaretPolicy::Escape).as_deref(),
            Ok("^^^^")
        );
        // The other refusals still apply.
        assert!(escape_value("a=b", CaretPolicy::Escape).is_err());
    }

    #[test]
    fn table_and_field_names_must_be_lowercase_identifiers() {
        let bad_tables = [
            "",
            "Sys_user",
            "sys_user^ORx",
            "sys user",
            "1abc",
            "a.b",
            "x/../y",
        ];
        for table in bad_tables {
            let lookup = TableLookup {
                table: table.to_owned(),
                ..TableLookup::sys_user()
            };
            assert!(
                matches!(
                    email_lookup(&lookup, "a@b.c"),
                    Err(QueryError::InvalidName { what: "table", .. })
                ),
                "{table:?}"
            );
        }
        for field in [
            "phoneLIKE",
            "phone=",
            "ph one",
            "phone.",
            ".phone",
            "PHONE",
            &"a".repeat(81),
        ] {
            let lookup = TableLookup {
                email_fields: fields(&[field]),
                ..TableLookup::sys_user()
            };
            assert!(
                matches!(
                    email_lookup(&lookup, "a@b.c"),
                    Err(QueryError::InvalidName { what: "field", .. })
                ),
                "{field:?}"
            );
        }
        let dotted = TableLookup {
            email_fields: fields(&["company.u_email"]),
            ..TableLookup::sys_user()
        };
        assert!(email_lookup(&dotted, "a@b.c").is_ok());
    }

    #[test]
    fn a_sys_id_must_be_32_hexadecimal_characters() -> Result<(), QueryError> {
        let lookup = TableLookup {
            newest_first: false,
            ..TableLookup::sys_user()
        };
        let id = "ddce70866f9331003b3c498f5d3ee417";
        assert_eq!(
            sys_id_lookup(&lookup, id)?.encoded_query(),
            Some("sys_id=ddce70866f9331003b3c498f5d3ee417")
        );
        for bad in [
            "",
            "ddce70866f9331003b3c498f5d3ee41",
            "zzce70866f9331003b3c498f5d3ee417",
        ] {
            assert!(matches!(
                sys_id_lookup(&lookup, bad),
                Err(QueryError::InvalidSysId(_))
            ));
        }
        Ok(())
    }

    #[test]
    fn empty_field_or_value_lists_and_bad_limits_are_refused() {
        let no_fields = TableLookup {
            phone_fields: Vec::new(),
            ..TableLookup::sys_user()
        };
        assert_eq!(phone_lookup(&no_fields, &["+1"]), Err(QueryError::NoFields));
        assert_eq!(
            phone_lookup(&TableLookup::sys_user(), &[]),
            Err(QueryError::NoValues)
        );
        for limit in [0, MAX_LIMIT + 1] {
            let lookup = TableLookup {
                limit,
                ..TableLookup::sys_user()
            };
            assert_eq!(
                email_lookup(&lookup, "a@b.c"),
                Err(QueryError::InvalidLimit)
            );
        }
    }

    #[test]
    fn a_query_too_long_for_a_url_is_refused() {
        let notations: Vec<String> = (0..30).map(|i| format!("{i:0>200}")).collect();
        let notations: Vec<&str> = notations.iter().map(String::as_str).collect();
        assert_eq!(
            phone_lookup(&TableLookup::sys_user(), &notations),
            Err(QueryError::QueryTooLong)
        );
    }
}
