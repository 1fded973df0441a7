//! Salesforce's escaping rules for the two query languages a lookup uses, and the checks on the
//! names (objects, fields, API version) that are spliced into a query unquoted.
//!
//! Every value reaching SOSL or SOQL from attrsync goes through [`sosl_phrase`], [`sosl_word`]
//! or [`soql_string`]; names come from configuration but are still checked by [`identifier`] /
//! [`field_path`], because a query is only injection-safe if nothing reaches it unchecked.

use std::fmt;

/// SOSL's reserved characters, each escaped with a backslash inside `FIND {…}`.
///
/// Source: SOQL and SOSL Reference, *Example Text Searches*, "Escaping special characters
/// `& | ! ( ) { } [ ] ^ " ~ * ? : \ ' + -`"
/// (developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/api/sforce_api_calls_sosl_examples.htm).
pub const SOSL_RESERVED: [char; 19] = [
    '&', '|', '!', '(', ')', '{', '}', '[', ']', '^', '"', '~', '*', '?', ':', '\\', '\'', '+', '-',
];

/// A value escaped for use as one term inside `FIND {…}`: every reserved character gets a
/// backslash, so braces cannot close the clause and wildcards/operators cannot be injected.
///
/// Control characters (newlines, tabs, NUL) become spaces: SOSL defines no escape for them and
/// they never belong to a phone number or an email address. Bare words that SOSL reads as
/// operators (`AND`, `OR`, `NOT`) are *not* neutralised here; use [`sosl_phrase`] for free
/// text, which quotes the whole value.
pub fn sosl_word(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        if c.is_control() {
            out.push(' ');
        } else {
            if SOSL_RESERVED.contains(&c) {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out
}

/// A value as one quoted SOSL phrase: `"…"` with every reserved character (the quote included)
/// escaped. Quoting makes `and`, `or` and `not` literals ("Delimiting `and` and `or` as literals
/// when used alone: `FIND {"and" or "or"}`", same page as [`SOSL_RESERVED`]).
pub fn sosl_phrase(value: &str) -> String {
    format!("\"{}\"", sosl_word(value))
}

/// A value as a complete SOQL string literal, quotes included.
///
/// Escapes per *Quoted String Escape Sequences* (SOQL and SOSL Reference,
/// sforce_api_calls_soql_select_quotedstringescapes.htm): `\\`, `\'`, `\"`, `\n`, `\r`, `\t`,
/// `\b`, `\f`, and `\uXXXX` for any other control character. `%` and `_` are only special in
/// `LIKE`, which attrsync does not use, so they stay as they are.
pub fn soql_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c.is_control() => {
                // \uXXXX holds one UTF-16 unit; control characters are all in the BMP.
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Why a name or version cannot go into a query.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{what} {name:?} is not a Salesforce API name (letters, digits and underscores, starting with a letter)")]
    NotAnApiName { what: &'static str, name: String },
    #[error("API version {0:?} is not of the form 66.0 or v66.0")]
    BadVersion(String),
}

/// Longest API name Salesforce allows for a custom field with a namespace prefix is well below
/// this; the cap only keeps absurd configuration out of URLs.
const MAX_NAME_LEN: usize = 120;

/// Checks an object or field API name (`Contact`, `MobilePhone`, `ns__Score__c`): ASCII letters,
/// digits and underscores, starting with a letter, not ending with an underscore.
pub fn identifier<'a>(what: &'static str, name: &'a str) -> Result<&'a str, NameError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && !name.ends_with('_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(name)
    } else {
        Err(NameError::NotAnApiName {
            what,
            name: name.to_owned(),
        })
    }
}

/// A field, or a relationship path such as `Account.Name`: identifiers joined by dots.
pub fn field_path(name: &str) -> Result<&str, NameError> {
    if name
        .split('.')
        .all(|part| identifier("field", part).is_ok())
    {
        Ok(name)
    } else {
        Err(NameError::NotAnApiName {
            what: "field",
            name: name.to_owned(),
        })
    }
}

/// A REST API version as it appears in the path: `v66.0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiVersion(String);

impl ApiVersion {
    /// Accepts `66.0` or `v66.0`.
    pub fn parse(value: &str) -> Result<Self, NameError> {
        let bare = value.trim().strip_prefix('v').unwrap_or(value.trim());
        let valid = bare.split_once('.').is_some_and(|(major, minor)| {
            !major.is_empty()
                && major.len() <= 3
                && minor.len() == 1
                && major
                    .chars()
                    .chain(minor.chars())
                    .all(|c| c.is_ascii_digit())
        });
        if valid {
            Ok(Self(format!("v{bare}")))
        } else {
            Err(NameError::BadVersion(value.to_owned()))
        }
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sosl_reserved_character_gets_a_backslash() {
        assert_eq!(sosl_word("a}b"), "a\\}b");
        assert_eq!(sosl_word("*"), "\\*");
        assert_eq!(sosl_word("\\"), "\\\\");
        assert_eq!(sosl_word("+1 (317) 555-0125"), "\\+1 \\(317\\) 555\\-0125");
        for c in SOSL_RESERVED {
            assert_eq!(sosl_word(&c.to_string()), format!("\\{c}"));
        }
    }

    #[test]
    fn sosl_phrases_are_quoted_so_operators_and_quotes_stay_literal() {
        assert_eq!(sosl_phrase("x OR 1=1"), "\"x OR 1=1\"");
        assert_eq!(sosl_phrase("a\"b"), "\"a\\\"b\"");
        assert_eq!(
            sosl_phrase("} RETURNING User(Id"),
            "\"\\} RETURNING User\\(Id\""
        );
    }

    #[test]
    fn control_characters_never_reach_a_sosl_term() {
        assert_eq!(sosl_word("a\nb\u{0}c"), "a b c");
    }

    #[test]
    fn soql_literals_escape_quotes_backslashes_and_control_characters() {
        assert_eq!(soql_string("Bob's BBQ"), "'Bob\\'s BBQ'");
        assert_eq!(soql_string("a\\b"), "'a\\\\b'");
        assert_eq!(soql_string("' OR Name != '"), "'\\' OR Name != \\''");
        assert_eq!(
            soql_string("x\ny\tz\u{8}\u{c}\r\""),
            "'x\\ny\\tz\\b\\f\\r\\\"'"
        );
        assert_eq!(soql_string("\u{1}"), "'\\u0001'");
        assert_eq!(soql_string(""), "''");
    }

    #[test]
    fn soql_literals_keep_like_wildcards_and_unicode_as_they_are() {
        assert_eq!(soql_string("100%_x"), "'100%_x'");
        assert_eq!(soql_string("Zoë 😀"), "'Zoë 😀'");
    }

    #[test]
    fn api_names_are_letters_digits_and_underscores() {
        assert!(identifier("object", "Contact").is_ok());
        assert!(identifier("field", "ns__Score__c").is_ok());
        for bad in [
            "", "1Phone", "Phone)", "Phone ", "Ph one", "Phone_", "Phoné", "a;b", "Id,Name",
        ] {
            assert!(identifier("field", bad).is_err(), "{bad:?}");
        }
        assert!(identifier("x", &"a".repeat(121)).is_err());
    }

    #[test]
    fn relationship_paths_are_dotted_api_names() {
        assert!(field_path("Account.Name").is_ok());
        assert!(field_path("Account..Name").is_err());
        assert!(field_path("Account.Name)").is_err());
    }

    #[test]
    fn api_versions_are_normalised_to_the_path_form() {
        assert_eq!(
            ApiVersion::parse("66.0").map(|v| v.to_string()),
            Ok("v66.0".to_owned())
        );
        assert_eq!(
            ApiVersion::parse("v62.0").map(|v| v.to_string()),
            Ok("v62.0".to_owned())
        );
        for bad in ["66", "v66", "66.00", "6a.0", "v66.0/../x", ""] {
            assert!(ApiVersion::parse(bad).is_err(), "{bad:?}");
        }
    }
}
