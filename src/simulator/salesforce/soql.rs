//! A strict parser of the SOQL subset attrsync sends, and its evaluation:
//!
//! ```text
//! SELECT f[, f…] FROM Obj [WHERE f = 'v' [AND|OR …] | (…)] [ORDER BY f [ASC|DESC] [NULLS FIRST|LAST]] [LIMIT n]
//! ```
//!
//! String literals honour *Quoted String Escape Sequences* (`\n \r \t \b \f \" \' \\ \uXXXX`;
//! "If you use a backslash character in any other context, an error occurs"). As in real SOQL,
//! AND and OR cannot be mixed at one level without parentheses. Text comparison with `=` ignores
//! case (SOQL compares strings case-insensitively except for case-sensitive unique fields, which
//! the simulated objects do not have); an `Id` also matches by its 15-character form.
//! Relationship paths (`Account.Name`), other operators and functions answer MALFORMED_QUERY or
//! INVALID_FIELD.

use std::cmp::Ordering;

use serde_json::Value;

use super::schema::{FieldType, ObjectSchema, QueryFault, Record};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Literal {
    Str(String),
    Null,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cond {
    Eq(String, Literal),
    And(Vec<Cond>),
    Or(Vec<Cond>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderBy {
    pub field: String,
    pub descending: bool,
    pub nulls_last: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub fields: Vec<String>,
    pub object: String,
    pub condition: Option<Cond>,
    pub order_by: Option<OrderBy>,
    pub limit: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    Str(String),
    Comma,
    Open,
    Close,
    Equals,
}

fn unexpected(token: &str) -> QueryFault {
    QueryFault::malformed_query(format!("unexpected token: '{token}'"))
}

fn tokenize(q: &str) -> Result<Vec<Tok>, QueryFault> {
    let mut tokens = Vec::new();
    let mut chars = q.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            ',' => tokens.push(Tok::Comma),
            '(' => tokens.push(Tok::Open),
            ')' => tokens.push(Tok::Close),
            '=' => tokens.push(Tok::Equals),
            '\'' => {
                let mut text = String::new();
                loop {
                    match chars.next() {
                        None => {
                            return Err(QueryFault::malformed_query(
                                "unexpected token: '<EOF>'; string literal not terminated",
                            ))
                        }
                        Some('\'') => break,
                        Some('\\') => text.push(unescape(&mut chars)?),
                        Some(c) => text.push(c),
                    }
                }
                tokens.push(Tok::Str(text));
            }
            c if c.is_ascii_alphanumeric() || c == '_' || c == '.' => {
                let mut word = c.to_string();
                while let Some(&n) = chars.peek() {
                    if n.is_ascii_alphanumeric() || n == '_' || n == '.' {
                        word.push(n);
                        chars.next();
                    } else {
                        break;
                    }
                }
                tokens.push(Tok::Word(word));
            }
            other => return Err(unexpected(&other.to_string())),
        }
    }
    Ok(tokens)
}

fn unescape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<char, QueryFault> {
    let invalid = || QueryFault::malformed_query("Invalid string literal: invalid escape sequence");
    Ok(match chars.next().ok_or_else(invalid)? {
        'n' | 'N' => '\n',
        'r' | 'R' => '\r',
        't' | 'T' => '\t',
        'b' | 'B' => '\u{8}',
        'f' | 'F' => '\u{c}',
        '"' => '"',
        '\'' => '\'',
        '\\' => '\\',
        'u' => {
            let hex: String = (0..4).filter_map(|_| chars.next()).collect();
            let code = u32::from_str_radix(&hex, 16).map_err(|_| invalid())?;
            char::from_u32(code).ok_or_else(invalid)?
        }
        // `\_` and `\%` are valid only in LIKE, which this subset has no use for.
        _ => return Err(invalid()),
    })
}

struct Parser {
    tokens: Vec<Tok>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Tok> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
    }

    fn expect_keyword(&mut self, kw: &str) -> Result<(), QueryFault> {
        if self.keyword(kw) {
            self.at += 1;
            Ok(())
        } else {
            Err(unexpected(&self.describe()))
        }
    }

    fn describe(&self) -> String {
        match self.peek() {
            None => "<EOF>".into(),
            Some(Tok::Word(w)) => w.clone(),
            Some(Tok::Str(s)) => format!("'{s}'"),
            Some(Tok::Comma) => ",".into(),
            Some(Tok::Open) => "(".into(),
            Some(Tok::Close) => ")".into(),
            Some(Tok::Equals) => "=".into(),
        }
    }

    fn name(&mut self) -> Result<String, QueryFault> {
        match self.peek() {
            Some(Tok::Word(w)) if w.starts_with(|c: char| c.is_ascii_alphabetic()) => {
                let w = w.clone();
                self.at += 1;
                Ok(w)
            }
            _ => Err(unexpected(&self.describe())),
        }
    }

    /// `atom ((AND|OR) atom)*`, one connective per level.
    fn condition(&mut self) -> Result<Cond, QueryFault> {
        let mut parts = vec![self.atom()?];
        let mut connective: Option<bool> = None; // Some(true) = AND
        while self.keyword("AND") || self.keyword("OR") {
            let and = self.keyword("AND");
            if connective.is_some_and(|c| c != and) {
                return Err(unexpected(if and { "AND" } else { "OR" }));
            }
            connective = Some(and);
            self.at += 1;
            parts.push(self.atom()?);
        }
        Ok(match (connective, parts.len()) {
            (_, 1) => parts.remove(0),
            (Some(true), _) => Cond::And(parts),
            _ => Cond::Or(parts),
        })
    }

    fn atom(&mut self) -> Result<Cond, QueryFault> {
        if self.peek() == Some(&Tok::Open) {
            self.at += 1;
            let inner = self.condition()?;
            if self.next() != Some(Tok::Close) {
                return Err(unexpected(&self.describe()));
            }
            return Ok(inner);
        }
        let field = self.name()?;
        if self.next() != Some(Tok::Equals) {
            self.at -= 1;
            return Err(unexpected(&self.describe()));
        }
        let literal = match self.next() {
            Some(Tok::Str(s)) => Literal::Str(s),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("null") => Literal::Null,
            _ => {
                self.at -= 1;
                return Err(unexpected(&self.describe()));
            }
        };
        Ok(Cond::Eq(field, literal))
    }
}

/// Parses a SOQL statement decoded from the `q` parameter.
pub fn parse(q: &str) -> Result<Query, QueryFault> {
    let mut p = Parser {
        tokens: tokenize(q)?,
        at: 0,
    };
    p.expect_keyword("SELECT")?;
    let mut fields = vec![p.name()?];
    while p.peek() == Some(&Tok::Comma) {
        p.at += 1;
        fields.push(p.name()?);
    }
    p.expect_keyword("FROM")?;
    let object = p.name()?;
    let condition = if p.keyword("WHERE") {
        p.at += 1;
        Some(p.condition()?)
    } else {
        None
    };
    let order_by = if p.keyword("ORDER") {
        p.at += 1;
        p.expect_keyword("BY")?;
        let field = p.name()?;
        let mut descending = false;
        if p.keyword("ASC") {
            p.at += 1;
        } else if p.keyword("DESC") {
            p.at += 1;
            descending = true;
        }
        // Salesforce's default puts nulls first in ascending order, last in descending.
        let mut nulls_last = descending;
        if p.keyword("NULLS") {
            p.at += 1;
            if p.keyword("FIRST") {
                nulls_last = false;
            } else if p.keyword("LAST") {
                nulls_last = true;
            } else {
                return Err(unexpected(&p.describe()));
            }
            p.at += 1;
        }
        Some(OrderBy {
            field,
            descending,
            nulls_last,
        })
    } else {
        None
    };
    let limit = if p.keyword("LIMIT") {
        p.at += 1;
        match p.next() {
            Some(Tok::Word(n)) => Some(n.parse::<usize>().map_err(|_| unexpected(&n))?),
            _ => return Err(unexpected("<EOF>")),
        }
    } else {
        None
    };
    if p.peek().is_some() {
        return Err(unexpected(&p.describe()));
    }
    Ok(Query {
        fields,
        object,
        condition,
        order_by,
        limit,
    })
}

/// A query with every field checked against its object and made canonical.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub fields: Vec<String>,
    pub condition: Option<Cond>,
    pub order_by: Option<OrderBy>,
}

/// Checks every field of `query` against `schema`, giving canonical names.
pub fn resolve(query: &Query, schema: &ObjectSchema) -> Result<Resolved, QueryFault> {
    let canonical = |field: &str| -> Result<String, QueryFault> {
        if field.contains('.') {
            let relationship = field.split('.').next().unwrap_or(field);
            return Err(QueryFault {
                error_code: "INVALID_FIELD",
                message: format!("Didn't understand relationship '{relationship}' in field path."),
            });
        }
        schema
            .field(field)
            .map(|(name, _)| name.to_owned())
            .ok_or_else(|| QueryFault::invalid_field(field, &schema.name))
    };
    let fields = query
        .fields
        .iter()
        .map(|f| canonical(f))
        .collect::<Result<Vec<_>, _>>()?;
    fn walk(
        cond: &Cond,
        canonical: &dyn Fn(&str) -> Result<String, QueryFault>,
    ) -> Result<Cond, QueryFault> {
        Ok(match cond {
            Cond::Eq(f, v) => Cond::Eq(canonical(f)?, v.clone()),
            Cond::And(parts) => Cond::And(
                parts
                    .iter()
                    .map(|p| walk(p, canonical))
                    .collect::<Result<_, _>>()?,
            ),
            Cond::Or(parts) => Cond::Or(
                parts
                    .iter()
                    .map(|p| walk(p, canonical))
                    .collect::<Result<_, _>>()?,
            ),
        })
    }
    let condition = query
        .condition
        .as_ref()
        .map(|c| walk(c, &canonical))
        .transpose()?;
    let order_by = query
        .order_by
        .as_ref()
        .map(|o| {
            Ok::<_, QueryFault>(OrderBy {
                field: canonical(&o.field)?,
                ..o.clone()
            })
        })
        .transpose()?;
    Ok(Resolved {
        fields,
        condition,
        order_by,
    })
}

/// Whether `record` satisfies a resolved condition.
pub fn satisfies(cond: &Cond, schema: &ObjectSchema, record: &Record) -> bool {
    match cond {
        Cond::And(parts) => parts.iter().all(|p| satisfies(p, schema, record)),
        Cond::Or(parts) => parts.iter().any(|p| satisfies(p, schema, record)),
        Cond::Eq(field, Literal::Null) => {
            matches!(record.fields.get(field), None | Some(Value::Null))
        }
        Cond::Eq(field, Literal::Str(wanted)) => {
            let Some(stored) = record.text(field) else {
                return false;
            };
            match schema.field(field).map(|(_, t)| t) {
                Some(FieldType::Id | FieldType::Reference) => {
                    stored == wanted
                        || (wanted.len() == 15 && stored.get(..15) == Some(wanted.as_str()))
                }
                _ => stored.to_lowercase() == wanted.to_lowercase(),
            }
        }
    }
}

/// Sorts records by a resolved ORDER BY (text order; ISO timestamps sort correctly as text).
pub fn sort(records: &mut [&Record], order: &OrderBy) {
    records.sort_by(|a, b| {
        let (x, y) = (a.text(&order.field), b.text(&order.field));
        match (x, y) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => {
                if order.nulls_last {
                    Ordering::Greater
                } else {
                    Ordering::Less
                }
            }
            (Some(_), None) => {
                if order.nulls_last {
                    Ordering::Less
                } else {
                    Ordering::Greater
                }
            }
            (Some(x), Some(y)) => {
                let o = x.cmp(y);
                if order.descending {
                    o.reverse()
                } else {
                    o
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(email: &str) -> (ObjectSchema, Record) {
        let schema = ObjectSchema::defaults().remove(0);
        let mut fields = serde_json::Map::new();
        fields.insert("Id".into(), "003D000000QOtgnIAD".into());
        fields.insert("Email".into(), email.into());
        (
            schema,
            Record {
                object: "Contact".into(),
                fields,
            },
        )
    }

    fn hit(q: &str, email: &str) -> bool {
        let (schema, record) = contact(email);
        let query = parse(q).unwrap();
        let cond = resolve(&query, &schema).unwrap().condition;
        cond.is_none_or(|c| satisfies(&c, &schema, &record))
    }

    #[test]
    fn the_full_subset_parses() {
        let query = parse("select Id, Email from Contact where (Email = 'a' or Email = 'b') and Name = null order by LastModifiedDate desc nulls last limit 10").unwrap();
        assert_eq!(query.fields, ["Id", "Email"]);
        assert_eq!(query.object, "Contact");
        assert_eq!(query.limit, Some(10));
        assert!(matches!(query.condition, Some(Cond::And(_))));
        assert_eq!(
            query.order_by,
            Some(OrderBy {
                field: "LastModifiedDate".into(),
                descending: true,
                nulls_last: true
            })
        );
    }

    #[test]
    fn escaped_literals_are_read_back_exactly() {
        assert!(hit(
            r"SELECT Id FROM Contact WHERE Email = 'o\'brien@x.io'",
            "o'brien@x.io"
        ));
        assert!(hit(r"SELECT Id FROM Contact WHERE Email = 'a\\b'", "a\\b"));
        assert!(hit(r"SELECT Id FROM Contact WHERE Email = '\u00e9'", "é"));
        assert!(hit(
            "SELECT Id FROM Contact WHERE Email = 'ADA@Example.com'",
            "ada@example.com"
        ));
        assert!(!hit(
            "SELECT Id FROM Contact WHERE Email = 'ada@example.co'",
            "ada@example.com"
        ));
    }

    #[test]
    fn an_unescaped_quote_or_a_bad_escape_is_malformed() {
        for bad in [
            "SELECT Id FROM Contact WHERE Email = 'x' OR '1'='1'",
            "SELECT Id FROM Contact WHERE Email = 'x'' OR Name != ''",
            r"SELECT Id FROM Contact WHERE Email = 'a\qb'",
            r"SELECT Id FROM Contact WHERE Email = 'a\%'",
            "SELECT Id FROM Contact WHERE Email = 'open",
            "SELECT Id FROM Contact WHERE Email = 'a' -- comment",
            "SELECT Id FROM Contact WHERE Email = 'a' OR Name = 'b' AND Email = 'c'",
            "SELECT Id FROM Contact WHERE Email != 'a'",
            "SELECT Id FROM Contact WHERE Email LIKE 'a%'",
            "SELECT Id FROM Contact LIMIT x",
            "SELECT FROM Contact",
            "FIND {x}",
        ] {
            assert_eq!(
                parse(bad).unwrap_err().error_code,
                "MALFORMED_QUERY",
                "{bad}"
            );
        }
    }

    #[test]
    fn unknown_fields_and_relationship_paths_are_invalid_fields() {
        let schema = ObjectSchema::defaults().remove(0);
        let unknown = resolve(&parse("SELECT Id, Foo FROM Contact").unwrap(), &schema).unwrap_err();
        assert_eq!(unknown.error_code, "INVALID_FIELD");
        assert!(unknown.message.contains("'Foo'"));
        let path =
            resolve(&parse("SELECT Account.Name FROM Contact").unwrap(), &schema).unwrap_err();
        assert_eq!(path.error_code, "INVALID_FIELD");
        let canonical = resolve(&parse("SELECT id, EMAIL FROM Contact").unwrap(), &schema).unwrap();
        assert_eq!(canonical.fields, ["Id", "Email"]);
    }

    #[test]
    fn ids_match_exactly_or_by_their_fifteen_character_form() {
        assert!(hit(
            "SELECT Id FROM Contact WHERE Id = '003D000000QOtgnIAD'",
            "x"
        ));
        assert!(hit(
            "SELECT Id FROM Contact WHERE Id = '003D000000QOtgn'",
            "x"
        ));
        assert!(!hit(
            "SELECT Id FROM Contact WHERE Id = '003d000000qotgniad'",
            "x"
        ));
    }
}
