//! The Zendesk search language as the simulator understands it: a strict parser of the subset
//! attrsync sends (`type:user`, `role:`, `phone:`, `email:`, `external_id:`, custom user field
//! keys; bare or `"quoted"` values; a leading `*` on digits) and the matching of users against
//! it. Anything outside the subset is refused with Zendesk's `invalid` error, so a client bug
//! shows as an error instead of as an empty result.
//!
//! Documented semantics (support.zendesk.com/hc/en-us/articles/4408886879258 and
//! .../4408883318554; developer.zendesk.com/documentation/voice/talk-partner-edition/
//! retrieving-the-zendesk-user-id-of-a-caller/):
//! - terms are separated by whitespace and ANDed; the same keyword twice is ORed;
//! - `:` must touch both keyword and value; terms are case-insensitive;
//! - `phone:*5135557611` finds `+1 513.555.7611`, `(513) 555-7611`, ... ("any formatting");
//! - `email:` wildcards find nothing; a quoted email matches "any user whose email starts with"
//!   its first word; `none` finds users without the property;
//! - a property term matches whole words, not word prefixes; `"..."` is a phrase.
//!
//! Undocumented (switches or stated choices): what `phone:` without `*` compares
//! ([`PhoneExactMode`]); that the leading `*` means "the stored digits end with" (the reading of
//! the documented examples); that the same works on custom fields; that unsupported syntax is a
//! 422 (real Zendesk is lenient and would search it as text).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Zendesk's documented limit on words in one query.
const MAX_WORDS: usize = 64;

/// What `phone:{value}` without a leading `*` matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhoneExactMode {
    /// The stored `phone` text equals the value exactly: `phone:15135557611` does not find
    /// `+15135557611`. Matches "Zendesk searches phone numbers for the exact number" (Genesys
    /// for Zendesk) and the `+` the search reference asks for.
    #[default]
    StoredText,
    /// The stored digits equal the value's digits (punctuation "generally not included").
    Digits,
}

/// A parsed query: for each keyword, the values any of which may match (OR), all keywords
/// required (AND).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    terms: Vec<(Keyword, Vec<Term>)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Keyword {
    Type,
    Role,
    Phone,
    Email,
    ExternalId,
    Field(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Term {
    text: String,
    quoted: bool,
    leading_star: bool,
    trailing_star: bool,
}

impl Term {
    fn is_none(&self) -> bool {
        !self.leading_star && !self.trailing_star && self.text.eq_ignore_ascii_case("none")
    }
}

/// Parses `query` (already URL-decoded). `fields` are the custom user field keys the account
/// has. The error text becomes the `description` of the 422.
pub fn parse(query: &str, fields: &[String]) -> Result<Query, String> {
    let words = split_terms(query)?;
    if words.is_empty() {
        return Err("the query is empty".to_owned());
    }
    if words.len() > MAX_WORDS {
        return Err(format!("more than {MAX_WORDS} words"));
    }
    let mut terms: Vec<(Keyword, Vec<Term>)> = Vec::new();
    for word in words {
        let (keyword, term) = parse_term(&word, fields)?;
        match terms.iter_mut().find(|(k, _)| *k == keyword) {
            Some((_, values)) => values.push(term),
            None => terms.push((keyword, vec![term])),
        }
    }
    for (keyword, values) in &terms {
        check_values(keyword, values)?;
    }
    if !terms.iter().any(|(k, _)| *k == Keyword::Type) {
        return Err("the simulator needs type:user (it holds users only)".to_owned());
    }
    Ok(Query { terms })
}

/// Splits on whitespace outside double quotes; an unclosed quote is an error.
fn split_terms(query: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_quotes = false;
    for c in query.chars() {
        match c {
            '"' => {
                in_quotes = !in_quotes;
                current.push(c);
            }
            c if c.is_whitespace() && !in_quotes => {
                if !current.is_empty() {
                    words.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if in_quotes {
        return Err("unbalanced double quote".to_owned());
    }
    if !current.is_empty() {
        words.push(current);
    }
    Ok(words)
}

fn parse_term(word: &str, fields: &[String]) -> Result<(Keyword, Term), String> {
    if word.starts_with('-') {
        return Err(format!(
            "negation is not supported by the simulator: {word}"
        ));
    }
    let Some((key, raw)) = word.split_once(':') else {
        return Err(format!(
            "free-text terms are not supported by the simulator: {word}"
        ));
    };
    if key.contains(['<', '>', '"', '*']) {
        return Err(format!("only the ':' operator is supported: {word}"));
    }
    let keyword = match key.to_ascii_lowercase().as_str() {
        "type" => Keyword::Type,
        "role" => Keyword::Role,
        "phone" => Keyword::Phone,
        "email" => Keyword::Email,
        "external_id" => Keyword::ExternalId,
        other if fields.iter().any(|f| f == other) => Keyword::Field(other.to_owned()),
        other => return Err(format!("unknown or unsupported keyword: {other}")),
    };
    Ok((keyword, parse_value(raw, word)?))
}

fn parse_value(raw: &str, word: &str) -> Result<Term, String> {
    if raw.is_empty() {
        return Err(format!("no value after ':' (no space is allowed): {word}"));
    }
    if let Some(inner) = raw.strip_prefix('"') {
        let Some(text) = inner.strip_suffix('"') else {
            return Err(format!("text after a closing quote: {word}"));
        };
        if text.contains('"') {
            return Err(format!("a quote inside a phrase: {word}"));
        }
        return Ok(Term {
            text: text.to_owned(),
            quoted: true,
            leading_star: false,
            trailing_star: false,
        });
    }
    if raw.contains('"') {
        return Err(format!("a quote inside a bare value: {word}"));
    }
    if raw.contains(['<', '>', ':']) {
        return Err(format!("operator characters inside a value: {word}"));
    }
    let leading_star = raw.starts_with('*');
    let trailing_star = raw.len() > 1 && raw.ends_with('*');
    let text = raw.trim_start_matches('*').trim_end_matches('*');
    if text.contains('*') {
        return Err(format!("a wildcard inside a value: {word}"));
    }
    if text.is_empty() {
        return Err(format!("a wildcard alone: {word}"));
    }
    Ok(Term {
        text: text.to_owned(),
        quoted: false,
        leading_star,
        trailing_star,
    })
}

fn check_values(keyword: &Keyword, values: &[Term]) -> Result<(), String> {
    for term in values {
        match keyword {
            Keyword::Type if term.text != "user" || term.leading_star || term.trailing_star => {
                return Err(format!(
                    "the simulator holds users only, not type:{}",
                    term.text
                ));
            }
            Keyword::Role
                if !matches!(term.text.as_str(), "end-user" | "agent" | "admin")
                    || term.leading_star
                    || term.trailing_star =>
            {
                return Err(format!("unknown role: {}", term.text));
            }
            Keyword::Phone | Keyword::Field(_)
                if term.leading_star
                    && (term.trailing_star || !term.text.bytes().all(|b| b.is_ascii_digit())) =>
            {
                return Err(
                    "a leading * takes the number's digits only (no '+', spaces or dashes)"
                        .to_owned(),
                );
            }
            Keyword::Phone | Keyword::ExternalId if term.trailing_star => {
                return Err("trailing wildcards are not supported here by the simulator".to_owned());
            }
            _ => {}
        }
    }
    Ok(())
}

impl Query {
    /// Whether `user` (a Zendesk user object) matches every keyword of the query.
    pub fn matches(&self, user: &Map<String, Value>, phone_mode: PhoneExactMode) -> bool {
        self.terms.iter().all(|(keyword, values)| {
            values
                .iter()
                .any(|term| matches_term(keyword, term, user, phone_mode))
        })
    }
}

fn matches_term(
    keyword: &Keyword,
    term: &Term,
    user: &Map<String, Value>,
    phone_mode: PhoneExactMode,
) -> bool {
    let stored = match keyword {
        Keyword::Type => return true,
        Keyword::Role => {
            return text(user.get("role")).as_deref().unwrap_or("end-user") == term.text
        }
        Keyword::Phone => text(user.get("phone")),
        Keyword::Email => text(user.get("email")),
        Keyword::ExternalId => text(user.get("external_id")),
        Keyword::Field(key) => text(
            user.get("user_fields")
                .and_then(Value::as_object)
                .and_then(|fields| fields.get(key)),
        ),
    };
    let stored = stored.filter(|s| !s.trim().is_empty());
    if term.is_none() {
        return stored.is_none();
    }
    let Some(stored) = stored else {
        return false;
    };
    match keyword {
        Keyword::Phone => matches_phone(term, &stored, phone_mode),
        Keyword::Email => matches_email(term, &stored),
        Keyword::ExternalId => stored.trim().eq_ignore_ascii_case(&term.text),
        Keyword::Field(_) if term.leading_star => digits(&stored).ends_with(&term.text),
        _ => matches_words(term, &stored),
    }
}

fn matches_phone(term: &Term, stored: &str, mode: PhoneExactMode) -> bool {
    if term.leading_star {
        return digits(stored).ends_with(&term.text);
    }
    match mode {
        PhoneExactMode::StoredText => stored.trim() == term.text,
        PhoneExactMode::Digits => {
            let wanted = digits(&term.text);
            !wanted.is_empty() && digits(stored) == wanted
        }
    }
}

fn matches_email(term: &Term, stored: &str) -> bool {
    if term.leading_star || term.trailing_star {
        // "Wildcards do not work for email address searches ... returns no results".
        return false;
    }
    if term.quoted {
        // "Using double quotes ... may return any user whose email starts with 'dwight'".
        let first_word: String = term
            .text
            .chars()
            .take_while(|c| c.is_alphanumeric())
            .collect();
        return !first_word.is_empty()
            && stored
                .to_lowercase()
                .starts_with(&first_word.to_lowercase());
    }
    stored.trim().eq_ignore_ascii_case(&term.text)
}

/// Whole-word matching: the value's words appear consecutively among the stored words; with a
/// trailing `*` the last word may be a prefix.
fn matches_words(term: &Term, stored: &str) -> bool {
    let wanted = words(&term.text);
    let have = words(stored);
    if wanted.is_empty() || wanted.len() > have.len() {
        return false;
    }
    have.windows(wanted.len()).any(|window| {
        window.iter().zip(&wanted).enumerate().all(|(i, (h, w))| {
            if term.trailing_star && i + 1 == wanted.len() {
                h.starts_with(w.as_str())
            } else {
                h == w
            }
        })
    })
}

fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    fn fields() -> Vec<String> {
        vec!["account_no".to_owned(), "tier".to_owned()]
    }

    fn finds(query: &str, value: Value) -> bool {
        parse(query, &fields())
            .expect("query parses")
            .matches(&user(value), PhoneExactMode::StoredText)
    }

    #[test]
    fn the_leading_asterisk_finds_every_documented_formatting_of_the_number() {
        for stored in [
            "+1 513.555.7611",
            "(513) 555-7611",
            "513 555 7611",
            "513-555-7611",
            "513.555.7611",
            "+15135557611",
        ] {
            assert!(
                finds(
                    "type:user role:end-user phone:*5135557611",
                    json!({"phone": stored})
                ),
                "{stored}"
            );
        }
        assert!(!finds(
            "type:user phone:*5135557611",
            json!({"phone": "+1 513 555 7612"})
        ));
        assert!(!finds(
            "type:user phone:*5135557611",
            json!({"phone": "5135557611 2"})
        ));
    }

    #[test]
    fn without_the_asterisk_the_number_must_be_stored_exactly() {
        let ada = json!({"phone": "+15135557611"});
        assert!(finds("type:user phone:+15135557611", ada.clone()));
        assert!(!finds("type:user phone:15135557611", ada.clone()));
        assert!(!finds("type:user phone:5135557611", ada.clone()));
        let digits_mode = parse("type:user phone:15135557611", &fields()).expect("query");
        assert!(digits_mode.matches(&user(ada), PhoneExactMode::Digits));
        assert!(!digits_mode.matches(
            &user(json!({"phone": "5135557611"})),
            PhoneExactMode::Digits
        ));
    }

    #[test]
    fn emails_match_whole_case_insensitively_wildcards_never_and_quoted_ones_too_broadly() {
        let ada = json!({"email": "Ada@Example.com"});
        assert!(finds("type:user email:ada@example.com", ada.clone()));
        assert!(!finds("type:user email:ada@example.co", ada.clone()));
        assert!(!finds("type:user email:ada*", ada.clone()));
        assert!(finds("type:user email:\"ada@other.org\"", ada));
    }

    #[test]
    fn external_ids_compare_case_insensitively_and_none_finds_the_empty() {
        assert!(finds(
            "type:user external_id:ian1",
            json!({"external_id": "IAN1"})
        ));
        assert!(!finds(
            "type:user external_id:ian",
            json!({"external_id": "IAN1"})
        ));
        assert!(finds(
            "type:user external_id:none",
            json!({"external_id": null})
        ));
        assert!(!finds(
            "type:user external_id:none",
            json!({"external_id": "x"})
        ));
    }

    #[test]
    fn custom_fields_match_whole_words_and_phrases_not_prefixes() {
        let u = json!({"user_fields": {"account_no": "AC 1001", "tier": "Gold plus"}});
        assert!(finds("type:user account_no:\"AC 1001\"", u.clone()));
        assert!(finds("type:user account_no:AC-1001", u.clone()));
        assert!(finds("type:user tier:gold", u.clone()));
        assert!(!finds("type:user tier:gol", u.clone()));
        assert!(finds("type:user tier:gol*", u.clone()));
        assert!(!finds("type:user tier:\"plus gold\"", u.clone()));
        assert!(!finds("type:user tier:\"x OR 1=1\"", u));
    }

    #[test]
    fn the_same_keyword_twice_is_or_and_different_keywords_are_and() {
        let u = json!({"role": "end-user", "user_fields": {"tier": "silver"}});
        assert!(finds("type:user tier:gold tier:silver", u.clone()));
        assert!(!finds("type:user role:agent tier:silver", u.clone()));
        assert!(finds("type:user role:end-user tier:silver", u));
        assert!(finds("type:user role:end-user", json!({})));
    }

    #[test]
    fn anything_outside_the_subset_is_an_invalid_query() {
        for query in [
            "",
            "   ",
            "phone:*5135557611",
            "type:ticket phone:1",
            "type:user 5135557611",
            "type:user -phone:1",
            "type:user created<2020-01-01",
            "type:user phone: 1",
            "type:user phone:*+15135557611",
            "type:user phone:*513-555",
            "type:user phone:51*35",
            "type:user phone:1*",
            "type:user email:\"a@b.c",
            "type:user email:a\"b",
            "type:user tier:\"a\"b\"",
            "type:user unknown_field:1",
            "type:user role:superuser",
            "type:user tier:*",
            "type:user phone:1 OR 1=1",
            "type:user phone:1 --",
        ] {
            assert!(
                parse(query, &fields()).is_err(),
                "{query:?} must be invalid"
            );
        }
        let long = vec!["tier:x"; MAX_WORDS].join(" ");
        assert!(parse(&format!("type:user {long}"), &fields()).is_err());
    }
}
