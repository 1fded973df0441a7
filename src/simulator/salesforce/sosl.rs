//! A strict parser of the SOSL subset attrsync sends, and its evaluation against stored records:
//!
//! ```text
//! FIND {term [OR|AND term]…} [IN ALL|EMAIL|PHONE FIELDS] RETURNING Obj[(f, …)][, …] [LIMIT n]
//! ```
//!
//! A term is a word (reserved characters escaped with `\`) or a `"quoted phrase"`; adjacent
//! terms mean AND, as in `FIND {Joe Smith}` (SOQL and SOSL Reference, *FIND {SearchQuery}* and
//! *Example Text Searches*). Anything outside the subset (wildcards, `AND NOT`, per-object
//! `WHERE`, other search groups) is answered `MALFORMED_SEARCH`, so a client bug shows instead
//! of being guessed at.
//!
//! Phone matching: SOSL "splits record information separated by spaces or punctuation into
//! separate tokens" (*FIND {SearchQuery}*), and Salesforce's own sample searches a phone number
//! as bare digits (SOAP API *Sample search Call*: "Example of phoneNumber format: 4155551212")
//! against fields stored formatted (Phone fields keep what was typed; US-locale entry formats
//! 10-digit numbers as `(415) 555-1212`, Salesforce Help 000385963). So phone fields match on
//! their digits whatever their formatting. Whether a term with a country code also finds a
//! number stored without one (or the reverse) is not documented: [`PhoneMatch`] switches it.

use super::schema::{FieldType, ObjectSchema, QueryFault, Record};

/// SOSL's reserved characters (see `crate::crm::salesforce::escape::SOSL_RESERVED`, same source).
const RESERVED: &str = "&|!(){}[]^\"~*?:\\'+-";

/// SOSL rejects one-character terms with this message (seen in Apex `SearchException`s).
const SHORT_TERM: &str = "search term must be longer than one character";

/// How phone fields match a term.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PhoneMatch {
    /// Same digits, any formatting (the documented behaviour).
    #[default]
    Digits,
    /// Same digits, or one is the other (of at least 8 digits) with a leading country code of
    /// 1–3 digits (the
    /// undocumented possibility; attrsync must work either way, so it sends both notations).
    DigitsIgnoringCountryCode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    All,
    Email,
    Phone,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// The term with escapes removed.
    pub text: String,
    pub phrase: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    Term(Term),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Returning {
    pub object: String,
    pub fields: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search {
    pub expr: Expr,
    pub group: Group,
    pub returning: Vec<Returning>,
    pub limit: Option<usize>,
}

fn unexpected(token: &str) -> QueryFault {
    QueryFault::malformed_search(format!("unexpected token: '{token}'"))
}

/// Parses a SOSL statement, decoded from the `q` parameter.
pub fn parse(q: &str) -> Result<Search, QueryFault> {
    let q = q.trim();
    let Some(rest) = strip_keyword(q, "FIND") else {
        return Err(unexpected(q.split_whitespace().next().unwrap_or("<EOF>")));
    };
    let rest = rest.trim_start();
    let Some(body_and_tail) = rest.strip_prefix('{') else {
        return Err(QueryFault::malformed_search(
            "No search term found. The search term must be enclosed in braces.",
        ));
    };
    let (body, tail) = split_braces(body_and_tail)?;
    let expr = parse_expr(body)?;
    let (group, returning, limit) = parse_tail(tail)?;
    Ok(Search {
        expr,
        group,
        returning,
        limit,
    })
}

/// `keyword` (any case) followed by whitespace, a brace or the end.
fn strip_keyword<'a>(text: &'a str, keyword: &str) -> Option<&'a str> {
    let head = text.get(..keyword.len())?;
    let rest = &text[keyword.len()..];
    (head.eq_ignore_ascii_case(keyword)
        && rest
            .chars()
            .next()
            .is_none_or(|c| c.is_whitespace() || c == '{'))
    .then_some(rest)
}

/// The search body up to the first unescaped `}`, and what follows it.
fn split_braces(text: &str) -> Result<(&str, &str), QueryFault> {
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '}' {
            return Ok((&text[..i], &text[i + 1..]));
        }
    }
    Err(QueryFault::malformed_search(
        "mismatched character '<EOF>' expecting '}'",
    ))
}

enum Token {
    Term(Term),
    And,
    Or,
}

fn tokenize_body(body: &str) -> Result<Vec<Token>, QueryFault> {
    let mut tokens = Vec::new();
    let mut chars = body.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if c == '"' {
            chars.next();
            let mut text = String::new();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some(next) => text.push(next),
                        None => break,
                    },
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => text.push(c),
                }
            }
            if !closed {
                return Err(QueryFault::malformed_search(
                    "mismatched character '<EOF>' expecting '\"'",
                ));
            }
            tokens.push(Token::Term(Term { text, phrase: true }));
            continue;
        }
        let mut text = String::new();
        let mut had_escape = false;
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                break;
            }
            chars.next();
            if c == '\\' {
                had_escape = true;
                match chars.next() {
                    Some(next) => text.push(next),
                    None => {
                        return Err(QueryFault::malformed_search(
                            "mismatched character '<EOF>' after '\\'",
                        ))
                    }
                }
            } else if RESERVED.contains(c) {
                return Err(QueryFault::malformed_search(format!(
                    "mismatched character '{c}' expecting '}}'"
                )));
            } else {
                text.push(c);
            }
        }
        let token = match text.to_ascii_uppercase().as_str() {
            "OR" if !had_escape => Token::Or,
            "AND" if !had_escape => Token::And,
            "NOT" if !had_escape => {
                return Err(QueryFault::malformed_search(
                    "AND NOT is not supported by this simulator",
                ))
            }
            _ => Token::Term(Term {
                text,
                phrase: false,
            }),
        };
        tokens.push(token);
    }
    Ok(tokens)
}

/// Left to right, as SOSL evaluates ("Searches are evaluated from left to right").
fn parse_expr(body: &str) -> Result<Expr, QueryFault> {
    let mut tokens = tokenize_body(body)?.into_iter();
    let mut expr = match tokens.next() {
        Some(Token::Term(term)) => Expr::Term(checked_term(term)?),
        Some(_) => return Err(unexpected("OR/AND")),
        None => {
            return Err(QueryFault::malformed_search(
                "No search term found. The search term must be enclosed in braces.",
            ))
        }
    };
    while let Some(token) = tokens.next() {
        let (and, next) = match token {
            Token::Term(term) => (true, Token::Term(term)),
            Token::And => (true, tokens.next().ok_or_else(|| unexpected("<EOF>"))?),
            Token::Or => (false, tokens.next().ok_or_else(|| unexpected("<EOF>"))?),
        };
        let Token::Term(term) = next else {
            return Err(unexpected("OR/AND"));
        };
        let rhs = Box::new(Expr::Term(checked_term(term)?));
        expr = if and {
            Expr::And(Box::new(expr), rhs)
        } else {
            Expr::Or(Box::new(expr), rhs)
        };
    }
    Ok(expr)
}

fn checked_term(term: Term) -> Result<Term, QueryFault> {
    if term.text.trim().chars().count() < 2 {
        Err(QueryFault::malformed_search(SHORT_TERM))
    } else {
        Ok(term)
    }
}

fn tail_tokens(tail: &str) -> Result<Vec<String>, QueryFault> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    for c in tail.chars() {
        if c.is_whitespace() || matches!(c, '(' | ')' | ',') {
            if !current.is_empty() {
                tokens.push(std::mem::take(&mut current));
            }
            if !c.is_whitespace() {
                tokens.push(c.to_string());
            }
        } else if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
            current.push(c);
        } else {
            return Err(unexpected(&c.to_string()));
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    Ok(tokens)
}

fn parse_tail(tail: &str) -> Result<(Group, Vec<Returning>, Option<usize>), QueryFault> {
    let tokens = tail_tokens(tail)?;
    let mut at = 0;
    let peek = |at: usize| tokens.get(at).map(String::as_str);
    let is = |at: usize, kw: &str| peek(at).is_some_and(|t| t.eq_ignore_ascii_case(kw));

    let mut group = Group::All;
    if is(at, "IN") {
        group = match peek(at + 1).map(str::to_ascii_uppercase).as_deref() {
            Some("ALL") => Group::All,
            Some("EMAIL") => Group::Email,
            Some("PHONE") => Group::Phone,
            Some(other) => return Err(unexpected(other)),
            None => return Err(unexpected("<EOF>")),
        };
        if !is(at + 2, "FIELDS") {
            return Err(unexpected(peek(at + 2).unwrap_or("<EOF>")));
        }
        at += 3;
    }
    if !is(at, "RETURNING") {
        return Err(unexpected(peek(at).unwrap_or("<EOF>")));
    }
    at += 1;
    let mut returning = Vec::new();
    loop {
        let object = peek(at).ok_or_else(|| unexpected("<EOF>"))?;
        if !is_name(object) {
            return Err(unexpected(object));
        }
        at += 1;
        let mut fields = Vec::new();
        if peek(at) == Some("(") {
            at += 1;
            loop {
                let field = peek(at).ok_or_else(|| unexpected("<EOF>"))?;
                if !is_name(field) {
                    return Err(unexpected(field));
                }
                fields.push(field.to_owned());
                at += 1;
                match peek(at) {
                    Some(",") => at += 1,
                    Some(")") => {
                        at += 1;
                        break;
                    }
                    // A per-object WHERE / ORDER BY / LIMIT is real SOSL, but not attrsync's.
                    Some(other) => return Err(unexpected(other)),
                    None => return Err(unexpected("<EOF>")),
                }
            }
        }
        returning.push(Returning {
            object: object.to_owned(),
            fields,
        });
        if peek(at) == Some(",") {
            at += 1;
        } else {
            break;
        }
    }
    let mut limit = None;
    if is(at, "LIMIT") {
        let n = peek(at + 1).ok_or_else(|| unexpected("<EOF>"))?;
        limit = Some(n.parse::<usize>().map_err(|_| unexpected(n))?);
        at += 2;
    }
    if let Some(extra) = peek(at) {
        return Err(unexpected(extra));
    }
    Ok((group, returning, limit))
}

fn is_name(token: &str) -> bool {
    token.starts_with(|c: char| c.is_ascii_alphabetic())
        && token.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn digits(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).collect()
}

fn phone_equal(term: &str, stored: &str, mode: PhoneMatch) -> bool {
    let (term, stored) = (digits(term), digits(stored));
    if term.len() < 2 || stored.is_empty() {
        return false;
    }
    if term == stored {
        return true;
    }
    match mode {
        PhoneMatch::Digits => false,
        PhoneMatch::DigitsIgnoringCountryCode => {
            let (long, short) = if term.len() > stored.len() {
                (&term, &stored)
            } else {
                (&stored, &term)
            };
            short.len() >= 8 && long.len() - short.len() <= 3 && long.ends_with(short.as_str())
        }
    }
}

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

fn term_matches(
    term: &Term,
    group: Group,
    schema: &ObjectSchema,
    record: &Record,
    mode: PhoneMatch,
) -> bool {
    schema.fields.iter().any(|(name, kind)| {
        let Some(stored) = record.text(name) else {
            return false;
        };
        match (group, kind) {
            (Group::Phone | Group::All, FieldType::Phone) => phone_equal(&term.text, stored, mode),
            (Group::Email | Group::All, FieldType::Email) => {
                term.text.trim().eq_ignore_ascii_case(stored.trim())
            }
            (Group::All, FieldType::Text) => {
                let wanted = words(&term.text);
                let have = words(stored);
                !wanted.is_empty() && have.windows(wanted.len()).any(|w| w == wanted.as_slice())
            }
            _ => false,
        }
    })
}

/// Whether `record` of `schema` is found by the search expression.
pub fn matches(search: &Search, schema: &ObjectSchema, record: &Record, mode: PhoneMatch) -> bool {
    fn eval(
        expr: &Expr,
        group: Group,
        schema: &ObjectSchema,
        record: &Record,
        mode: PhoneMatch,
    ) -> bool {
        match expr {
            Expr::Term(term) => term_matches(term, group, schema, record, mode),
            Expr::And(a, b) => {
                eval(a, group, schema, record, mode) && eval(b, group, schema, record, mode)
            }
            Expr::Or(a, b) => {
                eval(a, group, schema, record, mode) || eval(b, group, schema, record, mode)
            }
        }
    }
    eval(&search.expr, search.group, schema, record, mode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Map, Value};

    fn contact(fields: Value) -> (ObjectSchema, Record) {
        let schema = ObjectSchema::defaults().remove(0);
        let Value::Object(fields): Value = fields else {
            unreachable!()
        };
        let fields: Map<String, Value> = fields;
        (
            schema,
            Record {
                object: "Contact".into(),
                fields,
            },
        )
    }

    fn found(q: &str, fields: Value, mode: PhoneMatch) -> bool {
        let (schema, record) = contact(fields);
        matches(&parse(q).unwrap(), &schema, &record, mode)
    }

    #[test]
    fn the_full_subset_parses() {
        let search = parse("find {13175550125 OR 3175550125} in phone fields returning Contact(Id, Phone), Lead, Account(Id) limit 5").unwrap();
        assert_eq!(search.group, Group::Phone);
        assert_eq!(search.limit, Some(5));
        assert_eq!(search.returning.len(), 3);
        assert_eq!(search.returning[0].fields, ["Id", "Phone"]);
        assert!(search.returning[1].fields.is_empty());
        assert!(matches!(search.expr, Expr::Or(_, _)));
    }

    #[test]
    fn escapes_are_honoured_and_unescaped_reserved_characters_are_malformed() {
        let search =
            parse(r#"FIND {"o\'brien\+x@example.com"} IN EMAIL FIELDS RETURNING Contact"#).unwrap();
        assert_eq!(
            search.expr,
            Expr::Term(Term {
                text: "o'brien+x@example.com".into(),
                phrase: true
            })
        );
        let search = parse(r"FIND {a\}b} RETURNING Contact").unwrap();
        assert_eq!(
            search.expr,
            Expr::Term(Term {
                text: "a}b".into(),
                phrase: false
            })
        );
        for bad in [
            "FIND {John|jane@uoa.edu} RETURNING Contact",
            "FIND {a*} RETURNING Contact",
            "FIND {+1317} RETURNING Contact",
            "FIND {x'} RETURNING Contact",
        ] {
            assert_eq!(
                parse(bad).unwrap_err().error_code,
                "MALFORMED_SEARCH",
                "{bad}"
            );
        }
    }

    #[test]
    fn an_unescaped_brace_ends_the_term_and_what_follows_is_malformed() {
        let injected = parse("FIND {x} RETURNING User(Id)} IN ALL FIELDS RETURNING Contact");
        assert_eq!(injected.unwrap_err().error_code, "MALFORMED_SEARCH");
        assert_eq!(
            parse("FIND {abc RETURNING Contact").unwrap_err().error_code,
            "MALFORMED_SEARCH"
        );
    }

    #[test]
    fn things_outside_the_subset_are_malformed() {
        for bad in [
            "SELECT Id FROM Contact",
            "FIND 'x' RETURNING Contact",
            "FIND {ab} IN NAME FIELDS RETURNING Contact",
            "FIND {ab} RETURNING Contact(Id WHERE Name = 'x')",
            "FIND {ab AND NOT cd} RETURNING Contact",
            "FIND {ab OR} RETURNING Contact",
            "FIND {OR ab} RETURNING Contact",
            "FIND {ab}",
            "FIND {ab} RETURNING Contact LIMIT x",
            "FIND {ab} RETURNING Contact; DELETE",
            "FIND {} RETURNING Contact",
            "FIND {a} RETURNING Contact",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse("FIND {a} RETURNING Contact").unwrap_err().message,
            SHORT_TERM
        );
    }

    #[test]
    fn phone_fields_match_on_digits_whatever_their_formatting() {
        let stored = json!({"Id": "003", "Phone": "(317) 555-0125"});
        assert!(found(
            "FIND {3175550125} IN PHONE FIELDS RETURNING Contact",
            stored.clone(),
            PhoneMatch::Digits
        ));
        assert!(found(
            r#"FIND {"317\-555\-0125"} IN PHONE FIELDS RETURNING Contact"#,
            stored.clone(),
            PhoneMatch::Digits
        ));
        assert!(!found(
            "FIND {3175550126} IN PHONE FIELDS RETURNING Contact",
            stored.clone(),
            PhoneMatch::Digits
        ));
        assert!(!found(
            "FIND {5550125} IN PHONE FIELDS RETURNING Contact",
            stored,
            PhoneMatch::Digits
        ));
        let mobile = json!({"Id": "003", "MobilePhone": "+1 317.555.0199"});
        assert!(found(
            "FIND {13175550199} IN PHONE FIELDS RETURNING Contact",
            mobile,
            PhoneMatch::Digits
        ));
    }

    #[test]
    fn the_country_code_switch_decides_whether_a_number_with_it_finds_one_without() {
        let stored = json!({"Id": "003", "Phone": "(317) 555-0125"});
        assert!(!found(
            "FIND {13175550125} IN PHONE FIELDS RETURNING Contact",
            stored.clone(),
            PhoneMatch::Digits
        ));
        assert!(found(
            "FIND {13175550125} IN PHONE FIELDS RETURNING Contact",
            stored.clone(),
            PhoneMatch::DigitsIgnoringCountryCode
        ));
        assert!(found(
            "FIND {13175550125 OR 3175550125} IN PHONE FIELDS RETURNING Contact",
            stored,
            PhoneMatch::Digits
        ));
        let short = json!({"Id": "003", "Phone": "555-0125"});
        assert!(!found(
            "FIND {3175550125} IN PHONE FIELDS RETURNING Contact",
            short,
            PhoneMatch::DigitsIgnoringCountryCode
        ));
    }

    #[test]
    fn phone_searches_look_only_at_phone_fields_and_email_searches_only_at_email_fields() {
        let record =
            json!({"Id": "003", "External_Id__c": "3175550125", "Email": "ada@example.com"});
        assert!(!found(
            "FIND {3175550125} IN PHONE FIELDS RETURNING Contact",
            record.clone(),
            PhoneMatch::Digits
        ));
        assert!(found(
            r#"FIND {"ADA@example.com"} IN EMAIL FIELDS RETURNING Contact"#,
            record.clone(),
            PhoneMatch::Digits
        ));
        assert!(!found(
            r#"FIND {"ada@example.com"} IN PHONE FIELDS RETURNING Contact"#,
            record.clone(),
            PhoneMatch::Digits
        ));
        assert!(found(
            "FIND {3175550125} IN ALL FIELDS RETURNING Contact",
            record,
            PhoneMatch::Digits
        ));
    }

    #[test]
    fn operators_combine_left_to_right_and_adjacent_terms_mean_and() {
        let record = json!({"Id": "003", "Name": "Joe Smith"});
        assert!(found(
            "FIND {Joe Smith} RETURNING Contact",
            record.clone(),
            PhoneMatch::Digits
        ));
        assert!(!found(
            "FIND {Joe Smythe} RETURNING Contact",
            record.clone(),
            PhoneMatch::Digits
        ));
        assert!(found(
            "FIND {Smythe OR Joe} RETURNING Contact",
            record.clone(),
            PhoneMatch::Digits
        ));
        assert!(found(
            r#"FIND {"and" OR Joe} RETURNING Contact"#,
            record,
            PhoneMatch::Digits
        ));
    }
}
