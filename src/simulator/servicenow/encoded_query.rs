//! The simulator's own reading of ServiceNow encoded queries (`sysparm_query`), written from the
//! documentation, not from attrsync's builder, so a client bug shows.
//!
//! Grammar (ServiceNowDocs `c_TableAPI.md`, `r_OpAvailableFiltersQueries.md`,
//! `c_EncodedQueryStrings.md`): conditions `<field><operator><value>` joined by `^` (AND), `^OR`
//! (OR, binding only the neighbouring conditions) and `^NQ` (OR of whole groups); `ORDERBY<f>`
//! and `ORDERBYDESC<f>`; `^EQ` ends a UI-generated query. `^^` inside a value is a literal `^`
//! (`GlideStringUtil.escapeQueryTermSeparator`). Names, operators and values are case-sensitive.
//!
//! Like an instance, a condition the simulator cannot use (unknown field, dot-walk, operator
//! outside the supported subset, a `javascript:` value it cannot evaluate) is an *invalid part*:
//! dropped by default, or making the whole query return no rows when
//! `glide.invalid_query.returns_no_rows` is set. Invalid parts are reported so tests can assert a
//! client never produced one.

use std::cmp::Ordering;

use serde_json::{Map, Value};

/// Supported operators, longest first where one is a prefix of another.
const OPERATORS: &[(&str, Op)] = &[
    ("!=", Op::Ne),
    ("=", Op::Eq),
    ("ISNOTEMPTY", Op::IsNotEmpty),
    ("ISEMPTY", Op::IsEmpty),
    ("NOT LIKE", Op::NotLike),
    ("NOT IN", Op::NotIn),
    ("LIKE", Op::Like),
    ("STARTSWITH", Op::StartsWith),
    ("ENDSWITH", Op::EndsWith),
    ("IN", Op::In),
    ("ANYTHING", Op::Anything),
    ("EMPTYSTRING", Op::EmptyString),
];

/// Documented operators the simulator does not evaluate; a condition using one is an invalid
/// part here (a real instance would evaluate it).
const UNSUPPORTED: &[&str] = &[
    ">=",
    "<=",
    ">",
    "<",
    "BETWEEN",
    "SAMEAS",
    "NSAMEAS",
    "DYNAMIC",
    "ON",
    "NOTON",
    "MORETHAN",
    "LESSTHAN",
    "INSTANCEOF",
    "VALCHANGES",
    "CHANGESFROM",
    "CHANGESTO",
    "RELATIVE",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Like,
    NotLike,
    StartsWith,
    EndsWith,
    IsEmpty,
    IsNotEmpty,
    In,
    NotIn,
    Anything,
    EmptyString,
}

#[derive(Debug, Clone, PartialEq)]
struct Condition {
    field: String,
    op: Op,
    value: String,
}

/// A parsed query: an OR of groups, each an AND of OR-chains.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Query {
    groups: Vec<Vec<Vec<Condition>>>,
    order: Vec<(String, bool)>,
    /// The conditions dropped, as written.
    pub(super) invalid_parts: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sep {
    And,
    Or,
    NewQuery,
    OrderBy,
    OrderByDesc,
    End,
}

/// Reads `query`; `known_field` says which columns the table has.
pub(super) fn parse(query: &str, known_field: impl Fn(&str) -> bool) -> Query {
    let mut parsed = Query::default();
    let mut group: Vec<Vec<Condition>> = Vec::new();
    for (sep, term) in split(query) {
        let (sep, term) = match sep {
            Sep::And => leading_order(&term).map_or((Sep::And, term.clone()), |(s, f)| (s, f)),
            other => (other, term),
        };
        match sep {
            Sep::OrderBy | Sep::OrderByDesc => {
                if known_field(&term) {
                    parsed.order.push((term, sep == Sep::OrderByDesc));
                } else {
                    parsed.invalid_parts.push(format!("ORDERBY{term}"));
                }
                continue;
            }
            Sep::End => continue,
            Sep::NewQuery => parsed.groups.push(std::mem::take(&mut group)),
            Sep::And | Sep::Or => {}
        }
        if term.is_empty() {
            continue;
        }
        let Some(condition) = condition(&term, &known_field) else {
            parsed.invalid_parts.push(term);
            continue;
        };
        match (sep, group.last_mut()) {
            (Sep::Or, Some(chain)) => chain.push(condition),
            _ => group.push(vec![condition]),
        }
    }
    parsed.groups.push(group);
    parsed
}

/// `ORDERBY…` written where a condition is expected (a query may start with it).
fn leading_order(term: &str) -> Option<(Sep, String)> {
    if let Some(field) = term.strip_prefix("ORDERBYDESC") {
        Some((Sep::OrderByDesc, field.to_owned()))
    } else {
        term.strip_prefix("ORDERBY")
            .map(|field| (Sep::OrderBy, field.to_owned()))
    }
}

/// Terms with the separator before each; `^^` is unescaped to `^` inside a term.
fn split(query: &str) -> Vec<(Sep, String)> {
    let mut terms = Vec::new();
    let mut sep = Sep::And;
    let mut term = String::new();
    let mut rest = query;
    while let Some(c) = rest.chars().next() {
        if c != '^' {
            term.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        }
        let after = &rest[1..];
        if let Some(next) = after.strip_prefix('^') {
            term.push('^');
            rest = next;
            continue;
        }
        terms.push((sep, std::mem::take(&mut term)));
        let (next_sep, skip) = [
            ("NQ", Sep::NewQuery),
            ("ORDERBYDESC", Sep::OrderByDesc),
            ("ORDERBY", Sep::OrderBy),
            ("OR", Sep::Or),
            ("EQ", Sep::End),
        ]
        .iter()
        .find(|(word, _)| after.starts_with(word))
        .map_or((Sep::And, 0), |(word, s)| (*s, word.len()));
        sep = next_sep;
        rest = &after[skip..];
    }
    terms.push((sep, term));
    terms
}

fn condition(term: &str, known_field: &impl Fn(&str) -> bool) -> Option<Condition> {
    let name_len = term
        .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.'))
        .unwrap_or(term.len());
    let (field, rest) = term.split_at(name_len);
    if field.is_empty() || field.contains('.') || !known_field(field) {
        return None;
    }
    if UNSUPPORTED.iter().any(|op| rest.starts_with(op)) {
        return None;
    }
    let (op, value) = OPERATORS
        .iter()
        .find_map(|(token, op)| rest.strip_prefix(token).map(|v| (*op, v)))?;
    let valueless = matches!(
        op,
        Op::IsEmpty | Op::IsNotEmpty | Op::Anything | Op::EmptyString
    );
    // A script value is evaluated by an instance; the simulator cannot, so it is refused here
    // rather than compared as text.
    if valueless != value.is_empty() || value.to_ascii_lowercase().starts_with("javascript:") {
        return None;
    }
    Some(Condition {
        field: field.to_owned(),
        op,
        value: value.to_owned(),
    })
}

impl Query {
    /// Whether `record` satisfies the query; an empty query (or an empty group) matches all.
    pub(super) fn matches(&self, record: &Map<String, Value>, case_sensitive: bool) -> bool {
        self.groups.iter().any(|group| {
            group
                .iter()
                .all(|chain| chain.iter().any(|c| c.holds(record, case_sensitive)))
        })
    }

    /// Sorts `records` by the `ORDERBY` terms, stable (insertion order breaks ties).
    pub(super) fn sort(&self, records: &mut [&Map<String, Value>]) {
        if self.order.is_empty() {
            return;
        }
        records.sort_by(|a, b| {
            self.order
                .iter()
                .map(|(field, desc)| {
                    let ordering = text(a, field).cmp(&text(b, field));
                    if *desc {
                        ordering.reverse()
                    } else {
                        ordering
                    }
                })
                .find(|o| *o != Ordering::Equal)
                .unwrap_or(Ordering::Equal)
        });
    }
}

/// A field as text; a missing field reads as empty, as an empty column does.
fn text(record: &Map<String, Value>, field: &str) -> String {
    match record.get(field) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

impl Condition {
    fn holds(&self, record: &Map<String, Value>, case_sensitive: bool) -> bool {
        let fold = |s: &str| {
            if case_sensitive {
                s.to_owned()
            } else {
                s.to_lowercase()
            }
        };
        let stored = fold(&text(record, &self.field));
        let value = fold(&self.value);
        // `NULL` is the platform's "no value" (`end_date=NULL` in the official samples).
        let is_null = self.value == "NULL";
        let list = || value.split(',').map(str::to_owned).collect::<Vec<_>>();
        match self.op {
            Op::Eq if is_null => stored.is_empty(),
            Op::Ne if is_null => !stored.is_empty(),
            Op::Eq => stored == value,
            Op::Ne => stored != value,
            Op::Like => stored.contains(&value),
            Op::NotLike => !stored.contains(&value),
            Op::StartsWith => stored.starts_with(&value),
            Op::EndsWith => stored.ends_with(&value),
            Op::IsEmpty | Op::EmptyString => stored.is_empty(),
            Op::IsNotEmpty => !stored.is_empty(),
            Op::In => list().contains(&stored),
            Op::NotIn => !list().contains(&stored),
            Op::Anything => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FIELDS: &[&str] = &[
        "phone",
        "mobile_phone",
        "email",
        "active",
        "sys_id",
        "sys_updated_on",
        "name",
    ];

    fn known(field: &str) -> bool {
        FIELDS.contains(&field)
    }

    fn record(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    fn ada() -> Map<String, Value> {
        record(
            json!({"sys_id": "a", "phone": "+13175550125", "mobile_phone": "", "email": "Ada@Example.com", "active": "true", "name": "Ada"}),
        )
    }

    fn grace() -> Map<String, Value> {
        record(
            json!({"sys_id": "g", "phone": "(317) 555-0126", "mobile_phone": "+13175550199", "email": "grace@example.com", "active": "false", "name": "Grace^Hopper"}),
        )
    }

    fn hits(query: &str) -> Vec<String> {
        let q = parse(query, known);
        [ada(), grace()]
            .iter()
            .filter(|r| q.matches(r, true))
            .map(|r| text(r, "sys_id"))
            .collect()
    }

    #[test]
    fn equality_compares_the_stored_text_exactly() {
        assert_eq!(hits("phone=+13175550125"), ["a"]);
        assert_eq!(hits("phone=3175550125"), Vec::<String>::new());
        assert_eq!(hits("phone=(317) 555-0126"), ["g"]);
        assert_eq!(hits("email=ada@example.com"), Vec::<String>::new());
    }

    #[test]
    fn values_can_be_compared_without_case_when_the_instance_collation_ignores_it() {
        let q = parse("email=ada@example.com", known);
        assert!(q.matches(&ada(), false));
        assert!(!q.matches(&ada(), true));
    }

    #[test]
    fn or_binds_neighbours_and_and_binds_chains() {
        assert_eq!(
            hits("phone=+13175550125^ORmobile_phone=+13175550199"),
            ["a", "g"]
        );
        assert_eq!(
            hits("active=true^phone=(317) 555-0126^ORmobile_phone=+13175550199"),
            Vec::<String>::new()
        );
        assert_eq!(
            hits("active=false^phone=x^ORmobile_phone=+13175550199"),
            ["g"]
        );
    }

    #[test]
    fn nq_ors_whole_groups() {
        assert_eq!(
            hits("active=true^name=Grace^Hopper^NQactive=false^phone=x"),
            Vec::<String>::new()
        );
        assert_eq!(
            hits("active=true^phone=+13175550125^NQactive=false^mobile_phone=+13175550199"),
            ["a", "g"]
        );
    }

    #[test]
    fn a_doubled_caret_is_a_literal_caret_in_the_value() {
        assert_eq!(hits("name=Grace^^Hopper"), ["g"]);
        // Undoubled, the caret starts a new condition `Hopper`, which is invalid and dropped.
        let q = parse("name=Grace^Hopper", known);
        assert_eq!(q.invalid_parts, ["Hopper"]);
        assert_eq!(hits("name=Grace^Hopper"), Vec::<String>::new());
        // An escaped `^OR` stays inside the value instead of widening the query.
        assert_eq!(hits("phone=x^^ORphone=+13175550125"), Vec::<String>::new());
    }

    #[test]
    fn null_means_no_value() {
        assert_eq!(hits("mobile_phone=NULL"), ["a"]);
        assert_eq!(hits("mobile_phone!=NULL"), ["g"]);
    }

    #[test]
    fn an_invalid_part_is_dropped_and_reported_like_an_instance_does() {
        let q = parse("bogus=+13175550125", known);
        assert_eq!(q.invalid_parts, ["bogus=+13175550125"]);
        // Nothing valid is left: every row matches.
        assert_eq!(hits("bogus=+13175550125"), ["a", "g"]);
        assert_eq!(hits("phone=+13175550125^ORbogus=1"), ["a"]);
    }

    #[test]
    fn scripts_dot_walks_and_unsupported_operators_are_invalid_parts() {
        for query in [
            "sys_id=javascript:gs.getUserID()",
            "company.name=Acme",
            "sys_updated_on>2020-01-01",
            "nameBETWEENa@z",
            "Phone=+13175550125",
            "phone",
            "phoneISEMPTYx",
            "123TEXTQUERY321=ada",
        ] {
            assert_eq!(parse(query, known).invalid_parts, [query], "{query}");
        }
    }

    #[test]
    fn string_operators_and_lists_work_on_the_stored_text() {
        assert_eq!(hits("phoneSTARTSWITH(317)"), ["g"]);
        assert_eq!(hits("phoneENDSWITH0125"), ["a"]);
        assert_eq!(hits("emailLIKE@"), ["a", "g"]);
        assert_eq!(hits("emailLIKEexample"), ["g"]);
        assert_eq!(hits("emailNOT LIKEgrace"), ["a"]);
        assert_eq!(hits("sys_idINx,g"), ["g"]);
        assert_eq!(hits("sys_idNOT INx,g"), ["a"]);
        assert_eq!(hits("mobile_phoneISEMPTY"), ["a"]);
        assert_eq!(hits("mobile_phoneISNOTEMPTY"), ["g"]);
        assert_eq!(hits("nameANYTHING"), ["a", "g"]);
    }

    #[test]
    fn orderby_sorts_and_an_end_marker_is_ignored() {
        let q = parse("activeANYTHING^ORDERBYDESCname^EQ", known);
        assert!(q.invalid_parts.is_empty());
        let (a, g) = (ada(), grace());
        let mut rows = vec![&a, &g];
        q.sort(&mut rows);
        assert_eq!(text(rows[0], "sys_id"), "g");
        let leading = parse("ORDERBYname", known);
        assert!(leading.invalid_parts.is_empty());
        assert_eq!(parse("ORDERBYbogus", known).invalid_parts, ["ORDERBYbogus"]);
    }

    #[test]
    fn an_empty_query_matches_everything() {
        assert_eq!(hits(""), ["a", "g"]);
        assert_eq!(hits("^"), ["a", "g"]);
    }
}
