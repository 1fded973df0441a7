//! Zendesk search-query building: the escaping (really: refusing) rules of the Zendesk search
//! language and the lookup requests for phone, email, external id and custom user fields.
//!
//! The search syntax is documented in the Zendesk Support search reference
//! (support.zendesk.com/hc/en-us/articles/4408886879258): `:` `<` `>` `<=` `>=` are operators
//! with no space around them, a leading `-` negates a keyword, `*` is a wildcard, `"..."` is a
//! phrase, whitespace separates terms (AND), and the same keyword twice means OR. No escape
//! character is documented for any of these. So a value is written bare only when it consists
//! of characters that cannot form syntax, quoted when it needs a phrase, and refused when it
//! contains a `"` or a control character (there is no way to put those inside a phrase). The
//! adapter treats a refused value as "this key cannot be searched", never as a match.
//!
//! Every [`Lookup`] holds unencoded parameter values; [`Lookup::url`] percent-encodes them with
//! the form encoding Zendesk's examples use (`type%3Auser+phone%3A...`), because "Zendesk REST
//! APIs require URL encoding for any URL parameter values, including the query parameter".

use std::fmt;

use url::Url;

/// Unified search: `GET /api/v2/search.json?query=` (developer.zendesk.com/api-reference/
/// ticketing/ticket-management/search/). Results carry `result_type`.
pub const SEARCH_PATH: &str = "/api/v2/search.json";
/// `GET /api/v2/users/search.json?query=` or `?external_id=` (api-reference/ticketing/users/
/// users/#search-users). Results are under `users`.
pub const USERS_SEARCH_PATH: &str = "/api/v2/users/search.json";

/// Longest value attrsync puts into a query. Zendesk documents a 64-word limit per query, not a
/// length; a few hundred characters is far beyond any identifier, and refusing longer values
/// keeps a pasted document out of the search.
pub const MAX_VALUE_CHARS: usize = 256;
/// More digits than any phone number (E.164 allows 15) means the value is not one.
const MAX_PHONE_DIGITS: usize = 20;

/// A request ready for the HTTP client: a path under the account's base URL and its query
/// parameters, values not yet percent-encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    pub path: &'static str,
    pub params: Vec<(&'static str, String)>,
}

impl Lookup {
    /// The full URL under `base` (e.g. `https://acme.zendesk.com`), parameters form-encoded.
    pub fn url(&self, base: &Url) -> Url {
        let mut url = base.clone();
        url.set_path(self.path);
        url.set_query(None);
        if !self.params.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (key, value) in &self.params {
                pairs.append_pair(key, value);
            }
        }
        url
    }

    /// The `query` parameter, for logs (after redaction) and tests.
    pub fn query(&self) -> Option<&str> {
        self.params
            .iter()
            .find(|(key, _)| *key == "query")
            .map(|(_, value)| value.as_str())
    }
}

/// Why a value cannot be put into a Zendesk query. The adapter skips the key; it is never sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("{field}: the value is empty")]
    Empty { field: &'static str },
    #[error("{field}: the value is longer than {MAX_VALUE_CHARS} characters")]
    TooLong { field: &'static str },
    #[error("{field}: {reason}")]
    Unsearchable {
        field: &'static str,
        reason: &'static str,
    },
}

/// Which users a search may return. Callers are end users; agents searching for themselves
/// would otherwise match their own work numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RoleFilter {
    #[default]
    EndUsers,
    AnyRole,
}

/// How a phone number is written into `phone:` (Zendesk's own pages disagree about the exact
/// form: the Talk partner guide and the search reference, cited on each variant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhoneForm {
    /// `phone:*{digits}`: "add a leading * (asterisk) to the number" to match any formatting
    /// (developer.zendesk.com/documentation/voice/talk-partner-edition/retrieving-the-zendesk-
    /// user-id-of-a-caller/). Give it the national *significant* number: the documented
    /// examples stored with and without `+1` are all found by `*5135557611`, and a London number
    /// stored as `+44 20 7946 0958` is found by `*2079460958`, not by the trunk-prefixed national
    /// digits `*02079460958` (`crate::crm::hubspot::national_significant_number` computes it).
    AnyFormat,
    /// `phone:{digits}`, the Talk partner guide's exact form ("should not contain any
    /// non-numeric characters ... The '+' sign ... should not be included").
    Digits,
    /// `phone:+{digits}`, the search reference's form ("you must include a plus sign").
    PlusDigits,
}

/// A user lookup by phone number through unified search, e.g.
/// `type:user role:end-user phone:*5135557611`. `digits` must be ASCII digits only (a `+` or
/// punctuation is refused, not stripped: the caller chooses the notation deliberately).
pub fn phone_lookup(
    digits: &str,
    form: PhoneForm,
    roles: RoleFilter,
) -> Result<Lookup, QueryError> {
    let digits = phone_digits("phone", digits)?;
    let value = match form {
        PhoneForm::AnyFormat => format!("*{digits}"),
        PhoneForm::Digits => digits.to_owned(),
        PhoneForm::PlusDigits => format!("+{digits}"),
    };
    // Safe to format: `value` is '*' or '+' followed by ASCII digits only (checked above).
    Ok(user_search(roles, &format!("phone:{value}")))
}

/// A user lookup by primary email through unified search, e.g. `type:user email:jo@acme.com`.
///
/// The address is written bare and never quoted: "Using double quotes to search for an email
/// address does not return an exact match ... may return any user whose email starts with
/// 'dwight'", and "Wildcards do not work for email address searches" (search reference).
pub fn email_lookup(email: &str, roles: RoleFilter) -> Result<Lookup, QueryError> {
    const FIELD: &str = "email";
    let email = checked(FIELD, email)?;
    if email.matches('@').count() != 1 || email.starts_with('@') || email.ends_with('@') {
        return Err(QueryError::Unsearchable {
            field: FIELD,
            reason: "not an email address (exactly one '@' with text on both sides)",
        });
    }
    if !email.chars().all(is_bare_email_char) {
        return Err(QueryError::Unsearchable {
            field: FIELD,
            reason: "contains a character that is search syntax in Zendesk (space, quote, ':', '<', '>', '*', parentheses) or is not ASCII",
        });
    }
    // Safe to format: every character passed `is_bare_email_char`, none of which is syntax.
    Ok(user_search(roles, &format!("email:{email}")))
}

/// A user lookup by `external_id` through `GET /api/v2/users/search.json?external_id=`: that
/// parameter "does not support the search syntax. It only accepts ids", so the value needs no
/// query escaping, only URL encoding (done by [`Lookup::url`]). Zendesk compares external ids
/// case-insensitively.
pub fn external_id_lookup(external_id: &str) -> Result<Lookup, QueryError> {
    let id = checked("external_id", external_id)?;
    Ok(Lookup {
        path: USERS_SEARCH_PATH,
        params: vec![("external_id", id.to_owned())],
    })
}

/// A custom user field's value as searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValue<'a> {
    /// The field equals (for text fields: contains the words of) this value; quoted as a phrase
    /// when it is not a single bare token.
    Text(&'a str),
    /// A phone number kept in a custom text field, as `key:*{digits}`. Zendesk documents the
    /// leading `*` for `phone:`; that it works the same way on a custom field is unverified.
    PhoneAnyFormat(&'a str),
}

/// A user lookup by a custom user field, searched by its field key (Admin Center > People >
/// Configuration > User fields; support.zendesk.com/hc/en-us/articles/4408883318554), e.g.
/// `type:user account_no:"AC 1001"`.
pub fn user_field_lookup(
    field_key: &str,
    value: FieldValue<'_>,
    roles: RoleFilter,
) -> Result<Lookup, QueryError> {
    let key = field_key_checked(field_key)?;
    let term = match value {
        FieldValue::Text(text) => quote_value("user_fields", text)?,
        FieldValue::PhoneAnyFormat(digits) => format!("*{}", phone_digits("user_fields", digits)?),
    };
    // Safe to format: `key` is [a-z0-9_] only and `term` came from `quote_value` or digits.
    Ok(user_search(roles, &format!("{key}:{term}")))
}

/// A value as a search term: bare when every character is a letter, digit or one of `._@+-`
/// (and it does not start with `-`, which would read as negation after whitespace), otherwise
/// a `"phrase"`. A `"` or control character cannot be expressed and is refused.
pub fn quote_value(field: &'static str, value: &str) -> Result<String, QueryError> {
    let value = checked(field, value)?;
    if value.contains('"') {
        return Err(QueryError::Unsearchable {
            field,
            reason: "contains a double quote, which Zendesk search cannot escape inside a phrase",
        });
    }
    // Whether the search engine behind Zendesk reads `\` as an escape (so that `"a\"` would be
    // an unclosed phrase) is undocumented; a value with one is refused rather than gambled on.
    if value.contains('\\') {
        return Err(QueryError::Unsearchable {
            field,
            reason: "contains a backslash, whose meaning in Zendesk search is undocumented",
        });
    }
    let bare = !value.starts_with('-')
        && value
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '@' | '+' | '-'));
    Ok(if bare {
        value.to_owned()
    } else {
        format!("\"{value}\"")
    })
}

fn user_search(roles: RoleFilter, term: &str) -> Lookup {
    let query = match roles {
        RoleFilter::EndUsers => format!("type:user role:end-user {term}"),
        RoleFilter::AnyRole => format!("type:user {term}"),
    };
    Lookup {
        path: SEARCH_PATH,
        params: vec![("query", query)],
    }
}

/// Trimmed, non-empty, bounded, free of control characters (which no search syntax can carry
/// and which would end up in logs).
fn checked<'a>(field: &'static str, value: &'a str) -> Result<&'a str, QueryError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(QueryError::Empty { field });
    }
    if value.chars().count() > MAX_VALUE_CHARS {
        return Err(QueryError::TooLong { field });
    }
    if value.chars().any(char::is_control) {
        return Err(QueryError::Unsearchable {
            field,
            reason: "contains a control character",
        });
    }
    Ok(value)
}

fn phone_digits<'a>(field: &'static str, digits: &'a str) -> Result<&'a str, QueryError> {
    let digits = checked(field, digits)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(QueryError::Unsearchable {
            field,
            reason: "a phone search takes ASCII digits only",
        });
    }
    if digits.len() > MAX_PHONE_DIGITS {
        return Err(QueryError::Unsearchable {
            field,
            reason: "too many digits for a phone number",
        });
    }
    Ok(digits)
}

/// Field keys are lowercase letters, digits and underscores; anything else in a key would be
/// syntax (or a typo in configuration) and is refused.
fn field_key_checked(key: &str) -> Result<&str, QueryError> {
    const FIELD: &str = "user_fields";
    let key = key.trim();
    if key.is_empty() {
        return Err(QueryError::Empty { field: FIELD });
    }
    let reserved = matches!(
        key,
        "type" | "role" | "email" | "phone" | "external_id" | "name" | "user" | "tags"
    );
    if reserved
        || key.len() > 64
        || !key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(QueryError::Unsearchable {
            field: FIELD,
            reason:
                "a user field key is lowercase letters, digits and '_' and not a built-in keyword",
        });
    }
    Ok(key)
}

/// Characters an unquoted email may contain in a Zendesk query: the dot-atom characters of RFC
/// 5322 minus the ones that are Zendesk syntax (`*`, `"`, and none of `:<>()` are allowed in a
/// dot-atom anyway).
fn is_bare_email_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'+-/=?^_`{|}~.@".contains(c)
}

impl fmt::Display for Lookup {
    /// `path?key=value&...` with values *unencoded*: for tests and redacted debugging only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.path)?;
        for (i, (key, value)) in self.params.iter().enumerate() {
            write!(f, "{}{key}={value}", if i == 0 { '?' } else { '&' })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query_of(lookup: Result<Lookup, QueryError>) -> String {
        lookup.expect("lookup").query().expect("query").to_owned()
    }

    #[test]
    fn a_phone_lookup_uses_the_documented_leading_asterisk_for_any_formatting() {
        assert_eq!(
            query_of(phone_lookup(
                "5135557611",
                PhoneForm::AnyFormat,
                RoleFilter::EndUsers
            )),
            "type:user role:end-user phone:*5135557611"
        );
        assert_eq!(
            query_of(phone_lookup(
                "15135557611",
                PhoneForm::Digits,
                RoleFilter::AnyRole
            )),
            "type:user phone:15135557611"
        );
        assert_eq!(
            query_of(phone_lookup(
                "15135557611",
                PhoneForm::PlusDigits,
                RoleFilter::AnyRole
            )),
            "type:user phone:+15135557611"
        );
    }

    #[test]
    fn a_phone_lookup_refuses_anything_but_digits() {
        for bad in [
            "+15135557611",
            "513-555-7611",
            "5135557611 type:ticket",
            "5135557611\"",
            "*5135557611",
            "51355576١١",
            "5135557611 OR 1=1",
            "123456789012345678901",
        ] {
            assert!(
                phone_lookup(bad, PhoneForm::AnyFormat, RoleFilter::EndUsers).is_err(),
                "{bad:?} must be refused"
            );
        }
        assert_eq!(
            phone_lookup("  ", PhoneForm::Digits, RoleFilter::EndUsers),
            Err(QueryError::Empty { field: "phone" })
        );
    }

    #[test]
    fn an_email_is_searched_bare_and_never_quoted() {
        assert_eq!(
            query_of(email_lookup(" Ada@Example.com ", RoleFilter::EndUsers)),
            "type:user role:end-user email:Ada@Example.com"
        );
        assert_eq!(
            query_of(email_lookup("o'brien+vip@example.ie", RoleFilter::AnyRole)),
            "type:user email:o'brien+vip@example.ie"
        );
    }

    #[test]
    fn an_email_with_search_syntax_in_it_is_refused() {
        for bad in [
            "ada@example.com type:ticket",
            "ada@example.com\"",
            "\"ada\"@example.com",
            "ada*@example.com",
            "ada@example.com OR 1=1",
            "a:b@example.com",
            "ada@exa<mple.com",
            "(ada)@example.com",
            "zoë@example.com",
            "ada.example.com",
            "ada@@example.com",
            "@example.com",
            "ada@exa\nmple.com",
            "",
        ] {
            assert!(
                email_lookup(bad, RoleFilter::EndUsers).is_err(),
                "{bad:?} must be refused"
            );
        }
        let long = format!("{}@example.com", "a".repeat(300));
        assert_eq!(
            email_lookup(&long, RoleFilter::EndUsers),
            Err(QueryError::TooLong { field: "email" })
        );
    }

    #[test]
    fn an_external_id_goes_into_its_own_parameter_and_is_only_url_encoded() {
        let lookup = external_id_lookup("C-1001' OR 1=1 -- %*^\\}\"ü").expect("lookup");
        assert_eq!(lookup.path, USERS_SEARCH_PATH);
        assert_eq!(lookup.query(), None);
        let url = lookup.url(&Url::parse("https://acme.zendesk.com/ignored?x=1").expect("url"));
        assert_eq!(
            url.as_str(),
            "https://acme.zendesk.com/api/v2/users/search.json?external_id=C-1001%27+OR+1%3D1+--+%25*%5E%5C%7D%22%C3%BC"
        );
        let decoded: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(
            decoded,
            [(
                "external_id".to_owned(),
                "C-1001' OR 1=1 -- %*^\\}\"ü".to_owned()
            )]
        );
    }

    #[test]
    fn an_external_id_that_is_empty_long_or_has_control_characters_is_refused() {
        assert!(external_id_lookup("").is_err());
        assert!(external_id_lookup(&"x".repeat(MAX_VALUE_CHARS + 1)).is_err());
        assert!(external_id_lookup("a\u{0}b").is_err());
        assert!(external_id_lookup(&"x".repeat(MAX_VALUE_CHARS)).is_ok());
    }

    #[test]
    fn a_custom_field_value_is_bare_when_it_can_be_and_a_phrase_otherwise() {
        assert_eq!(
            query_of(user_field_lookup(
                "account_no",
                FieldValue::Text("AC-1001"),
                RoleFilter::EndUsers
            )),
            "type:user role:end-user account_no:AC-1001"
        );
        assert_eq!(
            query_of(user_field_lookup(
                "account_no",
                FieldValue::Text("AC 1001"),
                RoleFilter::AnyRole
            )),
            "type:user account_no:\"AC 1001\""
        );
        assert_eq!(
            query_of(user_field_lookup(
                "tier",
                FieldValue::Text("x OR 1=1 -- ^ % ' }"),
                RoleFilter::AnyRole
            )),
            "type:user tier:\"x OR 1=1 -- ^ % ' }\""
        );
        assert_eq!(
            query_of(user_field_lookup(
                "tier",
                FieldValue::Text("-gold"),
                RoleFilter::AnyRole
            )),
            "type:user tier:\"-gold\""
        );
        assert_eq!(
            query_of(user_field_lookup(
                "tier",
                FieldValue::Text("Zoë"),
                RoleFilter::AnyRole
            )),
            "type:user tier:Zoë"
        );
        assert_eq!(
            query_of(user_field_lookup(
                "tier",
                FieldValue::Text("gold*"),
                RoleFilter::AnyRole
            )),
            "type:user tier:\"gold*\""
        );
        assert_eq!(
            query_of(user_field_lookup(
                "mobile_2",
                FieldValue::PhoneAnyFormat("5135557611"),
                RoleFilter::AnyRole
            )),
            "type:user mobile_2:*5135557611"
        );
    }

    #[test]
    fn a_custom_field_value_with_a_quote_and_a_bad_key_are_refused() {
        assert!(user_field_lookup(
            "tier",
            FieldValue::Text("gold\" role:admin"),
            RoleFilter::AnyRole
        )
        .is_err());
        assert!(
            user_field_lookup("tier", FieldValue::Text("gold\\"), RoleFilter::AnyRole).is_err()
        );
        assert!(user_field_lookup("tier", FieldValue::Text(""), RoleFilter::AnyRole).is_err());
        for key in [
            "Tier",
            "tier level",
            "tier:x",
            "role",
            "phone",
            "",
            "t\"",
            "tïer",
        ] {
            assert!(
                user_field_lookup(key, FieldValue::Text("gold"), RoleFilter::AnyRole).is_err(),
                "key {key:?} must be refused"
            );
        }
        assert!(user_field_lookup(
            "tier",
            FieldValue::PhoneAnyFormat("51-55"),
            RoleFilter::AnyRole
        )
        .is_err());
    }

    #[test]
    fn the_url_form_encodes_the_query_like_zendesks_examples() {
        let lookup = phone_lookup("15135557611", PhoneForm::PlusDigits, RoleFilter::EndUsers)
            .expect("lookup");
        let url = lookup.url(&Url::parse("https://acme.zendesk.com").expect("url"));
        assert_eq!(
            url.as_str(),
            "https://acme.zendesk.com/api/v2/search.json?query=type%3Auser+role%3Aend-user+phone%3A%2B15135557611"
        );
        assert_eq!(
            lookup.to_string(),
            "/api/v2/search.json?query=type:user role:end-user phone:+15135557611"
        );
    }
}
