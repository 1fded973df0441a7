//! The simulator's reading of Freshdesk's filter-API query (`/api/v2/search/contacts?query=`):
//! the whole query in double quotes, at most 512 characters, `field:value` terms joined by `AND`
//! and `OR` with parentheses, strings in single quotes (no escape is documented, so a quote ends
//! the string), integers, `true`/`false` and `null` (no value). Sources: transcriptions of the
//! v2 reference (developers.freshdesk.com/api), as listed in `crm::freshdesk`.
//!
//! A strict subset: unknown fields, the relational `:>`/`:<` forms and anything unparsable get
//! the validation error, so a client bug shows. `AND` binds tighter than `OR` (not documented;
//! attrsync only ORs plain terms).

use serde_json::{Map, Value};

pub(super) const MAX_QUERY_LEN: usize = 512;

/// Searchable fields and whether they hold text.
const FIELDS: &[(&str, Kind)] = &[
    ("email", Kind::Text),
    ("phone", Kind::Text),
    ("mobile", Kind::Text),
    ("unique_external_id", Kind::Text),
    ("twitter_id", Kind::Text),
    ("name", Kind::Text),
    ("active", Kind::Bool),
    ("company_id", Kind::Integer),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Bool,
    Integer,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Literal {
    Text(String),
    Bool(bool),
    Integer(i64),
    Null,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Expr {
    Term { field: String, value: Literal },
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

/// How stored values are compared with query values.
#[derive(Debug, Clone, Copy)]
pub(super) struct Matching {
    pub(super) phone_digits_only: bool,
    pub(super) email_case_insensitive: bool,
}

/// Parses `raw` (the decoded `query` parameter), or returns the validation message.
pub(super) fn parse(raw: &str) -> Result<Expr, String> {
    if raw.chars().count() > MAX_QUERY_LEN {
        return Err(format!(
            "The query can have up to {MAX_QUERY_LEN} characters"
        ));
    }
    let inner = raw
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .ok_or("The query must be enclosed in double quotes")?;
    let mut parser = Parser { rest: inner };
    let expr = parser.or()?;
    parser.skip_ws();
    if parser.rest.is_empty() {
        Ok(expr)
    } else {
        Err(format!("Unexpected text in query: {:?}", parser.rest))
    }
}

struct Parser<'a> {
    rest: &'a str,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        self.rest = self.rest.trim_start_matches(' ');
    }

    /// Consumes ` KEYWORD ` (surrounded by spaces or parentheses).
    fn keyword(&mut self, word: &str) -> bool {
        let trimmed = self.rest.trim_start_matches(' ');
        let Some(after) = trimmed.strip_prefix(word) else {
            return false;
        };
        if after.starts_with(' ') || after.starts_with('(') {
            self.rest = after;
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut items = vec![self.and()?];
        while self.keyword("OR") {
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::Or(items)
        })
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut items = vec![self.atom()?];
        while self.keyword("AND") {
            items.push(self.atom()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::And(items)
        })
    }

    fn atom(&mut self) -> Result<Expr, String> {
        self.skip_ws();
        if let Some(rest) = self.rest.strip_prefix('(') {
            self.rest = rest;
            let expr = self.or()?;
            self.skip_ws();
            self.rest = self
                .rest
                .strip_prefix(')')
                .ok_or("Unbalanced parentheses")?;
            return Ok(expr);
        }
        let name_len = self
            .rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(self.rest.len());
        let (field, rest) = self.rest.split_at(name_len);
        let kind = FIELDS
            .iter()
            .find(|(name, _)| *name == field)
            .map(|(_, kind)| *kind)
            .ok_or_else(|| format!("{field:?} is not a searchable contact field"))?;
        let rest = rest
            .strip_prefix(':')
            .ok_or("Expected ':' after the field")?;
        if rest.starts_with('>') || rest.starts_with('<') {
            return Err("Relational operators are not supported by this simulator".to_owned());
        }
        let (value, rest) = literal(rest)?;
        let type_ok = matches!(
            (kind, &value),
            (_, Literal::Null)
                | (Kind::Text, Literal::Text(_))
                | (Kind::Bool, Literal::Bool(_))
                | (Kind::Integer, Literal::Integer(_))
        );
        if !type_ok {
            return Err(format!("{field:?} has a value of the wrong type"));
        }
        self.rest = rest;
        Ok(Expr::Term {
            field: field.to_owned(),
            value,
        })
    }
}

fn literal(text: &str) -> Result<(Literal, &str), String> {
    if let Some(rest) = text.strip_prefix('\'') {
        let end = rest.find('\'').ok_or("Unterminated string")?;
        return Ok((Literal::Text(rest[..end].to_owned()), &rest[end + 1..]));
    }
    let len = text.find([' ', ')']).unwrap_or(text.len());
    let (word, rest) = text.split_at(len);
    let value = match word {
        "true" => Literal::Bool(true),
        "false" => Literal::Bool(false),
        "null" => Literal::Null,
        w => Literal::Integer(
            w.parse()
                .map_err(|_| format!("{w:?} is not a valid value"))?,
        ),
    };
    Ok((value, rest))
}

impl Expr {
    pub(super) fn matches(&self, contact: &Map<String, Value>, how: Matching) -> bool {
        match self {
            Expr::And(items) => items.iter().all(|e| e.matches(contact, how)),
            Expr::Or(items) => items.iter().any(|e| e.matches(contact, how)),
            Expr::Term { field, value } => {
                let stored = contact.get(field).unwrap_or(&Value::Null);
                match value {
                    Literal::Null => stored.is_null() || stored.as_str() == Some(""),
                    Literal::Bool(b) => stored.as_bool() == Some(*b),
                    Literal::Integer(n) => stored.as_i64() == Some(*n),
                    Literal::Text(text) => stored
                        .as_str()
                        .is_some_and(|s| text_matches(field, s, text, how)),
                }
            }
        }
    }
}

/// Stored text against a query value, as the simulator's switches say (shared with the list
/// filters).
pub(super) fn text_matches(field: &str, stored: &str, wanted: &str, how: Matching) -> bool {
    if stored.is_empty() || wanted.is_empty() {
        return false;
    }
    match field {
        "phone" | "mobile" if how.phone_digits_only => {
            let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
            let (a, b) = (digits(stored), digits(wanted));
            !a.is_empty() && a == b
        }
        "email" if how.email_case_insensitive => stored.eq_ignore_ascii_case(wanted),
        _ => stored == wanted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const EXACT: Matching = Matching {
        phone_digits_only: false,
        email_case_insensitive: true,
    };

    fn contact() -> Map<String, Value> {
        match json!({"id": 1, "phone": "+1 (317) 555-0125", "mobile": null, "email": "Ada@Example.com", "active": true, "company_id": 7})
        {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    fn hit(query: &str) -> Result<bool, String> {
        Ok(parse(query)?.matches(&contact(), EXACT))
    }

    #[test]
    fn single_quoted_strings_compare_with_the_stored_text() -> Result<(), String> {
        assert!(hit("\"phone:'+1 (317) 555-0125'\"")?);
        assert!(!hit("\"phone:'+13175550125'\"")?);
        assert!(hit("\"email:'ada@example.com'\"")?);
        Ok(())
    }

    #[test]
    fn or_and_and_parentheses_combine_terms() -> Result<(), String> {
        assert!(hit(
            "\"phone:'x' OR mobile:'y' OR email:'ada@example.com'\""
        )?);
        assert!(!hit("\"phone:'+1 (317) 555-0125' AND active:false\"")?);
        assert!(hit("\"(phone:'x' OR active:true) AND company_id:7\"")?);
        assert!(hit("\"mobile:null\"")?);
        Ok(())
    }

    #[test]
    fn digits_only_matching_ignores_formatting_when_switched_on() -> Result<(), String> {
        let digits = Matching {
            phone_digits_only: true,
            ..EXACT
        };
        assert!(parse("\"phone:'13175550125'\"")?.matches(&contact(), digits));
        assert!(!parse("\"phone:'3175550125'\"")?.matches(&contact(), digits));
        Ok(())
    }

    #[test]
    fn a_quote_ends_the_string_so_an_injected_or_is_a_syntax_error() {
        assert!(parse("\"phone:'x' OR 'a'='a'\"").is_err());
        assert!(parse("\"phone:'O'Brien'\"").is_err());
        assert!(parse("\"phone:'x\\' OR active:true\"").is_ok_and(|e| matches!(e, Expr::Or(_))));
    }

    #[test]
    fn malformed_queries_are_refused() {
        for query in [
            "phone:'x'",
            "\"phone:'x'",
            "\"\"",
            "\"bogus:'x'\"",
            "\"phone:x\"",
            "\"active:'true'\"",
            "\"phone:'x' or mobile:'y'\"",
            "\"phone:'x' OR\"",
            "\"(phone:'x'\"",
            "\"updated_at:>'2024-01-01'\"",
            "\"phone 'x'\"",
        ] {
            assert!(parse(query).is_err(), "{query}");
        }
        assert!(parse(&format!("\"phone:'{}'\"", "1".repeat(510))).is_err());
    }
}
