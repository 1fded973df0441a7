//! A strict parser of the OData `$filter` subset attrsync sends, and its evaluation:
//!
//! ```text
//! column eq 'text' | column eq null | idcolumn eq <guid>, combined with and / or and ( … )
//! ```
//!
//! String literals double their single quotes (`'O''Bryan'`); an unterminated literal gets the
//! message the Dataverse docs quote ("There is an unterminated literal at position 21 in
//! 'lastname eq 'O'Bryan''.", MicrosoftDocs/powerapps-docs `webapi/query/filter-rows.md`).
//! `and` binds tighter than `or` (OData v4 URL conventions §5.1.1.16). Operators and
//! keywords are lower case, as OData requires. Comparison is on the stored text exactly, except
//! that "All filters using string values are case insensitive" (same page): no trimming, no
//! digit normalisation, no wildcards in `eq`. Other operators and functions are valid OData but
//! outside the subset, and answer 400.

use super::tables::{ColumnType, Table};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Str(String),
    Guid(String),
    Null,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    Eq(String, Value),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
}

/// A `$filter` the service refuses; always a 400 with the generic OData error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError(pub String);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String, usize),
    Str(String),
    Guid(String),
    Open(usize),
    Close(usize),
}

fn syntax(position: usize, filter: &str) -> FilterError {
    FilterError(format!(
        "Syntax error at position {position} in '{filter}'."
    ))
}

fn is_guid(word: &str) -> bool {
    let parts: Vec<&str> = word.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

fn tokenize(filter: &str) -> Result<Vec<Tok>, FilterError> {
    let chars: Vec<char> = filter.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == ' ' {
            i += 1;
        } else if c == '(' {
            tokens.push(Tok::Open(i));
            i += 1;
        } else if c == ')' {
            tokens.push(Tok::Close(i));
            i += 1;
        } else if c == '\'' {
            // Microsoft.OData.Core's lexer: jump to the next quote; a quote right after it is an
            // escaped quote and the scan goes on; running out of text is an unterminated
            // literal reported at the text's length (the docs' "position 21" for the 21
            // characters of `lastname eq 'O'Bryan'`).
            let mut text = String::new();
            let mut j = i + 1;
            loop {
                match chars[j..].iter().position(|&c| c == '\'') {
                    None => {
                        return Err(FilterError(format!(
                            "There is an unterminated literal at position {} in '{filter}'.",
                            chars.len()
                        )))
                    }
                    Some(offset) => {
                        text.extend(&chars[j..j + offset]);
                        j += offset + 1;
                        if chars.get(j) == Some(&'\'') {
                            text.push('\'');
                            j += 1;
                        } else {
                            break;
                        }
                    }
                }
            }
            i = j;
            tokens.push(Tok::Str(text));
        } else if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
            let start = i;
            let mut word = String::new();
            while let Some(&c) = chars.get(i) {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    word.push(c);
                    i += 1;
                } else {
                    break;
                }
            }
            if is_guid(&word) {
                tokens.push(Tok::Guid(word.to_ascii_lowercase()));
            } else {
                tokens.push(Tok::Word(word, start));
            }
        } else {
            return Err(syntax(i, filter));
        }
    }
    Ok(tokens)
}

struct Parser<'a> {
    tokens: Vec<Tok>,
    at: usize,
    filter: &'a str,
    table: &'a Table,
}

impl Parser<'_> {
    fn position(&self) -> usize {
        match self.tokens.get(self.at) {
            Some(Tok::Word(_, p) | Tok::Open(p) | Tok::Close(p)) => *p,
            _ => self.filter.chars().count(),
        }
    }

    fn keyword(&self, kw: &str) -> bool {
        matches!(self.tokens.get(self.at), Some(Tok::Word(w, _)) if w == kw)
    }

    fn or(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.and()?;
        while self.keyword("or") {
            self.at += 1;
            left = Filter::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, FilterError> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            self.at += 1;
            left = Filter::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Filter, FilterError> {
        if let Some(Tok::Open(_)) = self.tokens.get(self.at) {
            self.at += 1;
            let inner = self.or()?;
            return match self.tokens.get(self.at) {
                Some(Tok::Close(_)) => {
                    self.at += 1;
                    Ok(inner)
                }
                _ => Err(syntax(self.position(), self.filter)),
            };
        }
        let column = match self.tokens.get(self.at) {
            Some(Tok::Word(w, _)) if !matches!(w.as_str(), "and" | "or" | "eq" | "null") => {
                w.clone()
            }
            _ => return Err(syntax(self.position(), self.filter)),
        };
        self.at += 1;
        let Some(kind) = self.table.column(&column) else {
            return Err(FilterError(format!(
                "Could not find a property named '{column}' on type 'Microsoft.Dynamics.CRM.{}'.",
                self.table.logical_name
            )));
        };
        match self.tokens.get(self.at) {
            Some(Tok::Word(op, _)) if op == "eq" => self.at += 1,
            Some(Tok::Word(op, p)) if matches!(op.as_str(), "ne" | "gt" | "ge" | "lt" | "le") => {
                return Err(FilterError(format!(
                    "The operator '{op}' at position {p} is valid OData but not supported by this simulator."
                )))
            }
            _ => return Err(syntax(self.position(), self.filter)),
        }
        let value = match self.tokens.get(self.at) {
            Some(Tok::Str(s)) => Value::Str(s.clone()),
            Some(Tok::Guid(g)) => Value::Guid(g.clone()),
            Some(Tok::Word(w, _)) if w == "null" => Value::Null,
            _ => return Err(syntax(self.position(), self.filter)),
        };
        self.at += 1;
        let edm = |k: ColumnType| match k {
            ColumnType::Guid => "Edm.Guid",
            ColumnType::String => "Edm.String",
            ColumnType::DateTime => "Edm.DateTimeOffset",
        };
        let compatible = matches!(
            (kind, &value),
            (_, Value::Null)
                | (ColumnType::Guid, Value::Guid(_))
                | (ColumnType::String, Value::Str(_))
        );
        if !compatible {
            let found = match value {
                Value::Guid(_) => "Edm.Guid",
                _ => "Edm.String",
            };
            return Err(FilterError(format!(
                "A binary operator with incompatible types was detected. Found operand types '{}' and '{found}' for operator kind 'Equal'.",
                edm(kind)
            )));
        }
        Ok(Filter::Eq(column, value))
    }
}

/// Parses a decoded `$filter` value for `table`.
pub fn parse(filter: &str, table: &Table) -> Result<Filter, FilterError> {
    let mut parser = Parser {
        tokens: tokenize(filter)?,
        at: 0,
        filter,
        table,
    };
    let parsed = parser.or()?;
    if parser.at != parser.tokens.len() {
        return Err(syntax(parser.position(), filter));
    }
    Ok(parsed)
}

/// Whether a row (its columns as JSON) satisfies the filter.
pub fn matches(filter: &Filter, row: &serde_json::Map<String, serde_json::Value>) -> bool {
    match filter {
        Filter::And(a, b) => matches(a, row) && matches(b, row),
        Filter::Or(a, b) => matches(a, row) || matches(b, row),
        Filter::Eq(column, Value::Null) => row.get(column).is_none_or(serde_json::Value::is_null),
        Filter::Eq(column, Value::Str(wanted) | Value::Guid(wanted)) => row
            .get(column)
            .and_then(serde_json::Value::as_str)
            .is_some_and(|stored| stored.to_lowercase() == wanted.to_lowercase()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Map};

    fn contacts() -> Table {
        Table::defaults().remove(0)
    }

    fn row(v: serde_json::Value) -> Map<String, serde_json::Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn hit(filter: &str, r: serde_json::Value) -> bool {
        matches(&parse(filter, &contacts()).unwrap(), &row(r))
    }

    #[test]
    fn the_subset_parses_with_and_binding_tighter_than_or() {
        let f = parse(
            "telephone1 eq 'a' or telephone2 eq 'b' and mobilephone eq null",
            &contacts(),
        )
        .unwrap();
        assert!(matches!(f, Filter::Or(_, ref rhs) if matches!(**rhs, Filter::And(_, _))));
        assert!(parse("(telephone1 eq 'a' or (mobilephone eq 'b'))", &contacts()).is_ok());
        assert!(parse(
            "contactid eq 78914942-34CB-ed11-b596-0022481d68cd",
            &contacts()
        )
        .is_ok());
    }

    #[test]
    fn doubled_quotes_are_one_quote_and_a_lone_quote_is_an_unterminated_literal() {
        assert!(hit(
            "lastname eq 'O''Bryan'",
            json!({"lastname": "O'Bryan"})
        ));
        let e = parse("lastname eq 'O'Bryan'", &contacts()).unwrap_err();
        assert_eq!(
            e.0,
            "There is an unterminated literal at position 21 in 'lastname eq 'O'Bryan''."
        );
        assert!(parse("lastname eq 'x' or 1 eq 1", &contacts()).is_err());
        assert!(parse("lastname eq 'x''", &contacts()).is_err());
    }

    #[test]
    fn stored_text_is_compared_exactly_but_without_case() {
        let stored = json!({"telephone1": "+1 (317) 555-0125", "emailaddress1": "Ada@Example.com"});
        assert!(hit("telephone1 eq '+1 (317) 555-0125'", stored.clone()));
        assert!(!hit("telephone1 eq '+13175550125'", stored.clone()));
        assert!(!hit("telephone1 eq ' +1 (317) 555-0125'", stored.clone()));
        assert!(!hit("telephone1 eq '+1 (317) 555-012%'", stored.clone()));
        assert!(hit("emailaddress1 eq 'ada@example.COM'", stored.clone()));
        assert!(hit("telephone2 eq null", stored));
    }

    #[test]
    fn unknown_columns_wrong_types_and_other_syntax_are_refused() {
        let unknown = parse("phone eq 'x'", &contacts()).unwrap_err();
        assert_eq!(
            unknown.0,
            "Could not find a property named 'phone' on type 'Microsoft.Dynamics.CRM.contact'."
        );
        assert!(parse("contactid eq 'x'", &contacts())
            .unwrap_err()
            .0
            .contains("incompatible types"));
        for bad in [
            "telephone1 EQ 'x'",
            "telephone1 ne 'x'",
            "contains(telephone1,'x')",
            "telephone1 eq 'x' and",
            "(telephone1 eq 'x'",
            "telephone1 eq 'x')",
            "telephone1 eq \"x\"",
            "telephone1 eq 'x';",
            "",
        ] {
            assert!(parse(bad, &contacts()).is_err(), "{bad:?}");
        }
    }
}
