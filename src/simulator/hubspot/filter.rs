//! The body of `POST /crm/v3/objects/contacts/search` as the simulator checks and applies it:
//! a strict validator of HubSpot's `PublicObjectSearchRequest` (operators, required attributes,
//! the filter limits, known properties, `limit`, `after`, the 3 000-character cap) and the
//! matching of contacts against the filter groups.
//!
//! Semantics from the CRM search guide (developers.hubspot.com/docs/api-reference/search/
//! guide.md) and the OpenAPI `Filter` schema: groups are ORed, filters in a group ANDed;
//! "Values in filters are case-insensitive", except that string `IN`/`NOT_IN` values "must be
//! lowercase"; `CONTAINS_TOKEN` takes `*` wildcards; `HAS_PROPERTY`/`NOT_HAS_PROPERTY` carry no
//! value. Unknown top-level keys are ignored, as HubSpot does (a misspelt `filterGroup` returns
//! everything: HubSpot/hubspot-api-nodejs#344).
//!
//! Error wording marked "observed" comes from HubSpot's answers quoted in SDK issues; the rest
//! of the wording is the simulator's (unverified), the status and `category` are HubSpot's.

use chrono::DateTime;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub const OPERATORS: [&str; 13] = [
    "EQ",
    "NEQ",
    "LT",
    "LTE",
    "GT",
    "GTE",
    "BETWEEN",
    "IN",
    "NOT_IN",
    "HAS_PROPERTY",
    "NOT_HAS_PROPERTY",
    "CONTAINS_TOKEN",
    "NOT_CONTAINS_TOKEN",
];

/// "A query can contain a maximum of 3,000 characters."
pub const MAX_BODY_CHARS: usize = 3_000;
pub const MAX_LIMIT: u64 = 200;
/// "The search endpoints are limited to 10,000 total results for any given query."
pub const MAX_RESULTS: u64 = 10_000;

/// Filter limits (the current guide: 5 groups, 6 per group, 18 in total).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterLimits {
    pub groups: usize,
    pub per_group: usize,
    pub total: usize,
}

impl Default for FilterLimits {
    fn default() -> Self {
        Self {
            groups: 5,
            per_group: 6,
            total: 18,
        }
    }
}

/// What `EQ`/`IN` on `phone`/`mobilephone` compare. The guide says HubSpot "uses special
/// calculated properties to standardize the format" when searching phone numbers; whether that
/// applies to filters on the stored properties themselves is not said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhoneFilterMode {
    /// The stored text, case-insensitively (the plain reading of "Values in filters are
    /// case-insensitive").
    #[default]
    StoredText,
    /// The standardised national number of both sides.
    Standardised,
}

/// What a filter on a property the account does not have does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownProperty {
    /// 400 `VALIDATION_ERROR` naming the property.
    #[default]
    Reject,
    /// The filter matches nothing.
    MatchNothing,
}

/// A request the validator refused: HTTP 400 with this message and `VALIDATION_ERROR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub message: String,
    /// `errors[].code`, when HubSpot has one for it.
    pub code: Option<&'static str>,
}

fn invalid(message: impl Into<String>) -> Invalid {
    Invalid {
        message: message.into(),
        code: None,
    }
}

/// A validated search request.
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    groups: Vec<Vec<Filter>>,
    pub properties: Vec<String>,
    pub limit: u64,
    pub after: u64,
    pub query: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
struct Filter {
    property: String,
    operator: &'static str,
    value: Option<String>,
    high_value: Option<String>,
    values: Vec<String>,
    known: bool,
}

/// How the validator and matcher see the account.
pub struct Schema<'a> {
    pub known: &'a dyn Fn(&str) -> bool,
    pub limits: FilterLimits,
    pub unknown_property: UnknownProperty,
}

pub fn validate(body: &[u8], schema: &Schema<'_>) -> Result<Search, Invalid> {
    let chars = String::from_utf8_lossy(body).chars().count();
    if chars > MAX_BODY_CHARS {
        return Err(invalid(format!(
            "The request body is {chars} characters; a search may contain at most {MAX_BODY_CHARS}"
        )));
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        // Observed form: "Invalid input JSON on line 1, column 18: ...".
        invalid(format!(
            "Invalid input JSON on line {}, column {}: {e}",
            e.line(),
            e.column()
        ))
    })?;
    let Value::Object(object) = value else {
        return Err(invalid(
            "Invalid input JSON on line 1, column 1: Cannot construct instance of `PublicObjectSearchRequest`",
        ));
    };
    let groups = match object.get("filterGroups") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(groups)) => groups
            .iter()
            .map(|g| parse_group(g, schema))
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(invalid("Invalid input JSON: filterGroups must be an array")),
    };
    let total: usize = groups.iter().map(Vec::len).sum();
    let limits = schema.limits;
    if groups.len() > limits.groups
        || groups.iter().any(|g| g.len() > limits.per_group)
        || total > limits.total
    {
        return Err(invalid(format!(
            "Too many filters: at most {} filterGroups of {} filters, {} filters in total (got {} groups, {total} filters)",
            limits.groups,
            limits.per_group,
            limits.total,
            groups.len()
        )));
    }
    if let Some(unknown) = groups
        .iter()
        .flatten()
        .find(|f| !f.known && schema.unknown_property == UnknownProperty::Reject)
    {
        return Err(Invalid {
            message: format!("Property \"{}\" does not exist", unknown.property),
            code: Some("PROPERTY_DOESNT_EXIST"),
        });
    }
    let properties = match object.get("properties") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(names)) => names
            .iter()
            .map(|n| {
                n.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| invalid("Invalid input JSON: properties must be strings"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(invalid("Invalid input JSON: properties must be an array")),
    };
    let limit = match object.get("limit") {
        None | Some(Value::Null) => 10,
        Some(v) => match v.as_u64() {
            Some(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(invalid(format!(
                    "limit must be an integer from 1 to {MAX_LIMIT}"
                )))
            }
        },
    };
    let after = match object.get("after") {
        None | Some(Value::Null) => 0,
        Some(Value::String(s)) => s.parse::<u64>().map_err(|_| {
            invalid("You must format the value in the `after` parameter as an integer")
        })?,
        Some(Value::Number(n)) => n
            .as_u64()
            .ok_or_else(|| invalid("after must be a non-negative integer"))?,
        Some(_) => return Err(invalid("after must be an integer-formatted string")),
    };
    if after + limit > MAX_RESULTS {
        return Err(invalid(format!(
            "Searches are limited to {MAX_RESULTS} results; cannot page beyond them"
        )));
    }
    if let Some(sorts) = object.get("sorts") {
        check_sorts(sorts)?;
    }
    let query = match object.get("query") {
        None | Some(Value::Null) => None,
        Some(Value::String(q)) => Some(q.clone()),
        Some(_) => return Err(invalid("query must be a string")),
    };
    Ok(Search {
        groups,
        properties,
        limit,
        after,
        query,
    })
}

fn parse_group(group: &Value, schema: &Schema<'_>) -> Result<Vec<Filter>, Invalid> {
    let Some(filters) = group.get("filters") else {
        return Err(invalid(
            "Invalid input JSON: Cannot build FilterGroup, some of required attributes are not set [filters]",
        ));
    };
    let Value::Array(filters) = filters else {
        return Err(invalid("Invalid input JSON: filters must be an array"));
    };
    filters.iter().map(|f| parse_filter(f, schema)).collect()
}

fn parse_filter(filter: &Value, schema: &Schema<'_>) -> Result<Filter, Invalid> {
    let Value::Object(filter) = filter else {
        return Err(invalid("Invalid input JSON: a filter must be an object"));
    };
    let property = filter.get("propertyName").and_then(Value::as_str);
    let operator = filter.get("operator").and_then(Value::as_str);
    let (Some(property), Some(operator)) = (property, operator) else {
        // Observed: "Cannot build Filter, some of required attributes are not set
        // [propertyName, operator]".
        let missing: Vec<&str> = [
            ("propertyName", property.is_none()),
            ("operator", operator.is_none()),
        ]
        .into_iter()
        .filter_map(|(name, absent)| absent.then_some(name))
        .collect();
        return Err(invalid(format!(
            "Invalid input JSON: Cannot build Filter, some of required attributes are not set [{}]",
            missing.join(", ")
        )));
    };
    let Some(operator) = OPERATORS.iter().copied().find(|o| *o == operator) else {
        return Err(invalid(format!(
            "Invalid input JSON: Cannot deserialize value of type `FilterOperator` from String \"{operator}\": not one of the values accepted for Enum class: [{}]",
            OPERATORS.join(", ")
        )));
    };
    let scalar = |key: &str| -> Result<Option<String>, Invalid> {
        match filter.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(_) => Err(invalid(format!("{key} must be a string"))),
        }
    };
    let value = scalar("value")?;
    let high_value = scalar("highValue")?;
    let values: Vec<String> = match filter.get("values") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                _ => Err(invalid("values must be strings")),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(invalid("values must be an array")),
    };
    let needs = |what: &str| invalid(format!("operator {operator} requires {what}"));
    match operator {
        "IN" | "NOT_IN" if values.is_empty() => return Err(needs("a non-empty `values` array")),
        "BETWEEN" if value.is_none() || high_value.is_none() => {
            return Err(needs("`value` and `highValue`"))
        }
        "HAS_PROPERTY" | "NOT_HAS_PROPERTY" if value.is_some() || !values.is_empty() => {
            return Err(invalid(format!("operator {operator} takes no value")))
        }
        "EQ" | "NEQ" | "LT" | "LTE" | "GT" | "GTE" | "CONTAINS_TOKEN" | "NOT_CONTAINS_TOKEN"
            if value.is_none() =>
        {
            return Err(needs("a `value`"))
        }
        _ => {}
    }
    Ok(Filter {
        property: property.to_owned(),
        operator,
        value,
        high_value,
        values,
        known: (schema.known)(property),
    })
}

fn check_sorts(sorts: &Value) -> Result<(), Invalid> {
    let Value::Array(sorts) = sorts else {
        return Err(invalid("sorts must be an array"));
    };
    if sorts.len() > 1 {
        return Err(invalid("Only one sorting rule can be applied to a search"));
    }
    for sort in sorts {
        let ok = match sort {
            Value::String(_) => true,
            Value::Object(o) => {
                o.get("propertyName").and_then(Value::as_str).is_some()
                    && o.get("direction")
                        .is_none_or(|d| matches!(d.as_str(), Some("ASCENDING" | "DESCENDING")))
            }
            _ => false,
        };
        if !ok {
            return Err(invalid(
                "a sort is {\"propertyName\", \"direction\": ASCENDING|DESCENDING}",
            ));
        }
    }
    Ok(())
}

impl Search {
    /// Whether a contact (its properties as stored, strings) matches the filter groups and the
    /// free-text query. No groups means every contact.
    pub fn matches(
        &self,
        properties: &Map<String, Value>,
        phone_mode: PhoneFilterMode,
        standardise: &dyn Fn(&str) -> String,
    ) -> bool {
        let groups_ok = self.groups.is_empty()
            || self.groups.iter().any(|group| {
                group
                    .iter()
                    .all(|f| f.matches(properties, phone_mode, standardise))
            });
        groups_ok
            && self
                .query
                .as_deref()
                .is_none_or(|q| matches_query(q, properties))
    }
}

impl Filter {
    fn matches(
        &self,
        properties: &Map<String, Value>,
        phone_mode: PhoneFilterMode,
        standardise: &dyn Fn(&str) -> String,
    ) -> bool {
        if !self.known {
            return false;
        }
        let stored = properties
            .get(&self.property)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        let phone_like = match self.property.as_str() {
            "phone" | "mobilephone" => phone_mode == PhoneFilterMode::Standardised,
            p => p.starts_with("hs_searchable_calculated_"),
        };
        let norm = |s: &str| -> String {
            if phone_like {
                standardise(s)
            } else {
                s.to_lowercase()
            }
        };
        let eq = |value: &str| stored.is_some_and(|s| norm(s) == norm(value));
        match self.operator {
            "HAS_PROPERTY" => stored.is_some(),
            "NOT_HAS_PROPERTY" => stored.is_none(),
            "EQ" => self.value.as_deref().is_some_and(eq),
            "NEQ" => !self.value.as_deref().is_some_and(eq),
            "IN" => stored.is_some_and(|s| self.in_values(s, phone_like, standardise)),
            "NOT_IN" => !stored.is_some_and(|s| self.in_values(s, phone_like, standardise)),
            "CONTAINS_TOKEN" => {
                stored.is_some_and(|s| contains_token(s, self.value.as_deref().unwrap_or("")))
            }
            "NOT_CONTAINS_TOKEN" => {
                !stored.is_some_and(|s| contains_token(s, self.value.as_deref().unwrap_or("")))
            }
            op => stored
                .is_some_and(|s| compare(op, s, self.value.as_deref(), self.high_value.as_deref())),
        }
    }
}

impl Filter {
    /// String IN/NOT_IN values "must be lowercase": the stored value is lowered, the given ones
    /// are not, so an uppercase value never matches. Phone-like properties compare standardised.
    fn in_values(
        &self,
        stored: &str,
        phone_like: bool,
        standardise: &dyn Fn(&str) -> String,
    ) -> bool {
        if phone_like {
            let stored = standardise(stored);
            self.values.iter().any(|v| standardise(v) == stored)
        } else {
            let stored = stored.to_lowercase();
            self.values.contains(&stored)
        }
    }
}

/// `*` matches any run of characters; the pattern must match the whole value or one of its
/// whitespace-separated tokens, case-insensitively.
fn contains_token(stored: &str, pattern: &str) -> bool {
    let pattern = pattern.to_lowercase();
    let stored = stored.to_lowercase();
    glob(&pattern, &stored) || stored.split_whitespace().any(|token| glob(&pattern, token))
}

fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || !text.ends_with(last) || text.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

/// Numbers compare as numbers, ISO timestamps as epoch milliseconds (HubSpot takes both for
/// dates), anything else as lowercase text.
fn compare(op: &str, stored: &str, value: Option<&str>, high: Option<&str>) -> bool {
    let key = |s: &str| -> Result<f64, String> {
        s.trim()
            .parse::<f64>()
            .ok()
            .or_else(|| {
                DateTime::parse_from_rfc3339(s.trim())
                    .ok()
                    .map(|d| d.timestamp_millis() as f64)
            })
            .ok_or_else(|| s.to_lowercase())
    };
    let (Some(value), stored) = (value, key(stored)) else {
        return false;
    };
    let ordering = |a: &Result<f64, String>, b: &Result<f64, String>| match (a, b) {
        (Ok(x), Ok(y)) => x.partial_cmp(y),
        (Err(x), Err(y)) => Some(x.cmp(y)),
        _ => None,
    };
    let Some(against) = ordering(&stored, &key(value)) else {
        return false;
    };
    use std::cmp::Ordering::{Equal, Greater, Less};
    match op {
        "LT" => against == Less,
        "LTE" => against != Greater,
        "GT" => against == Greater,
        "GTE" => against != Less,
        "BETWEEN" => {
            against != Less
                && high
                    .and_then(|h| ordering(&stored, &key(h)))
                    .is_some_and(|o| o != Greater)
        }
        _ => against == Equal,
    }
}

/// The free-text `query`: a word prefix of one of the default searchable contact properties.
fn matches_query(query: &str, properties: &Map<String, Value>) -> bool {
    const SEARCHABLE: [&str; 8] = [
        "firstname",
        "lastname",
        "email",
        "phone",
        "hs_additional_emails",
        "fax",
        "mobilephone",
        "company",
    ];
    let query = query.trim().to_lowercase();
    query.is_empty()
        || SEARCHABLE.iter().any(|p| {
            properties.get(*p).and_then(Value::as_str).is_some_and(|s| {
                s.to_lowercase()
                    .split_whitespace()
                    .any(|w| w.starts_with(&query))
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Schema<'static> {
        Schema {
            known: &|p| {
                matches!(
                    p,
                    "email"
                        | "phone"
                        | "mobilephone"
                        | "firstname"
                        | "createdate"
                        | "hs_searchable_calculated_phone_number"
                )
            },
            limits: FilterLimits::default(),
            unknown_property: UnknownProperty::Reject,
        }
    }

    fn search(body: Value) -> Result<Search, Invalid> {
        validate(body.to_string().as_bytes(), &schema())
    }

    fn digits(s: &str) -> String {
        s.chars().filter(char::is_ascii_digit).collect()
    }

    fn finds(body: Value, contact: Value) -> bool {
        let props = contact.as_object().cloned().unwrap_or_default();
        search(body)
            .expect("valid")
            .matches(&props, PhoneFilterMode::StoredText, &digits)
    }

    fn one(filter: Value) -> Value {
        json!({"filterGroups": [{"filters": [filter]}]})
    }

    #[test]
    fn eq_is_case_insensitive_on_the_stored_text() {
        let ada = json!({"email": "Ada@Example.com", "phone": "+1 (513) 555-7611"});
        assert!(finds(
            one(json!({"propertyName": "email", "operator": "EQ", "value": "ada@example.COM"})),
            ada.clone()
        ));
        assert!(!finds(
            one(json!({"propertyName": "phone", "operator": "EQ", "value": "+15135557611"})),
            ada.clone()
        ));
        assert!(finds(
            one(json!({"propertyName": "phone", "operator": "EQ", "value": "+1 (513) 555-7611"})),
            ada
        ));
    }

    #[test]
    fn in_needs_lowercase_values_and_matches_exactly() {
        let c = json!({"firstname": "Ada"});
        assert!(finds(
            one(json!({"propertyName": "firstname", "operator": "IN", "values": ["ada", "grace"]})),
            c.clone()
        ));
        assert!(!finds(
            one(json!({"propertyName": "firstname", "operator": "IN", "values": ["Ada"]})),
            c.clone()
        ));
        assert!(finds(
            one(json!({"propertyName": "firstname", "operator": "NOT_IN", "values": ["grace"]})),
            c
        ));
    }

    #[test]
    fn groups_are_ored_and_filters_anded() {
        let body = json!({"filterGroups": [
            {"filters": [{"propertyName": "firstname", "operator": "EQ", "value": "Ada"},
                         {"propertyName": "email", "operator": "EQ", "value": "nope"}]},
            {"filters": [{"propertyName": "phone", "operator": "HAS_PROPERTY"}]}
        ]});
        assert!(finds(
            body.clone(),
            json!({"firstname": "Ada", "phone": "1"})
        ));
        assert!(!finds(body, json!({"firstname": "Ada", "phone": ""})));
    }

    #[test]
    fn contains_token_takes_wildcards_and_comparisons_understand_dates() {
        let c =
            json!({"email": "TestPerson@hubspot.com", "createdate": "2024-01-17T19:55:04.281Z"});
        assert!(finds(
            one(
                json!({"propertyName": "email", "operator": "CONTAINS_TOKEN", "value": "*@hubspot.com"})
            ),
            c.clone()
        ));
        assert!(!finds(
            one(
                json!({"propertyName": "email", "operator": "CONTAINS_TOKEN", "value": "*@hubspot.co"})
            ),
            c.clone()
        ));
        assert!(finds(
            one(json!({"propertyName": "email", "operator": "NOT_CONTAINS_TOKEN", "value": "x*"})),
            c.clone()
        ));
        assert!(finds(
            one(json!({"propertyName": "createdate", "operator": "GT", "value": "1579514400000"})),
            c.clone()
        ));
        assert!(finds(
            one(
                json!({"propertyName": "createdate", "operator": "BETWEEN", "value": "1579514400000", "highValue": "1842672800000"})
            ),
            c
        ));
    }

    #[test]
    fn calculated_phone_properties_compare_standardised_numbers() {
        let c = json!({"hs_searchable_calculated_phone_number": "5135557611"});
        assert!(finds(
            one(
                json!({"propertyName": "hs_searchable_calculated_phone_number", "operator": "EQ", "value": "513-555-7611"})
            ),
            c
        ));
    }

    #[test]
    fn the_validator_refuses_what_hubspot_refuses() {
        let too_many_groups = json!({"filterGroups": vec![json!({"filters": [{"propertyName": "email", "operator": "HAS_PROPERTY"}]}); 6]});
        let too_many_in_group = json!({"filterGroups": [{"filters": vec![json!({"propertyName": "email", "operator": "HAS_PROPERTY"}); 7]}]});
        let too_many_total = json!({"filterGroups": vec![json!({"filters": vec![json!({"propertyName": "email", "operator": "HAS_PROPERTY"}); 4]}); 5]});
        for (body, needle) in [
            (too_many_groups, "Too many filters"),
            (too_many_in_group, "Too many filters"),
            (too_many_total, "Too many filters"),
            (
                one(json!({"propertyName": "email"})),
                "required attributes are not set [operator]",
            ),
            (
                one(json!({"operator": "EQ", "value": "x"})),
                "[propertyName]",
            ),
            (
                one(json!({"propertyName": "email", "operator": "LIKE", "value": "x"})),
                "Enum class",
            ),
            (
                one(json!({"propertyName": "email", "operator": "EQ"})),
                "requires a `value`",
            ),
            (
                one(json!({"propertyName": "email", "operator": "IN", "values": []})),
                "values",
            ),
            (
                one(json!({"propertyName": "email", "operator": "HAS_PROPERTY", "value": "x"})),
                "takes no value",
            ),
            (
                one(json!({"propertyName": "email", "operator": "BETWEEN", "value": "1"})),
                "highValue",
            ),
            (
                one(json!({"propertyName": "shoe_size", "operator": "EQ", "value": "9"})),
                "Property \"shoe_size\" does not exist",
            ),
            (json!({"limit": 201}), "limit"),
            (json!({"limit": 0}), "limit"),
            (json!({"after": "ten"}), "integer"),
            (json!({"after": "9995", "limit": 10}), "10000"),
            (
                json!({"sorts": [{"propertyName": "a"}, {"propertyName": "b"}]}),
                "one sorting rule",
            ),
            (json!({"filterGroups": [{"nofilters": []}]}), "[filters]"),
            (json!([1]), "Invalid input JSON"),
        ] {
            match search(body.clone()) {
                Err(e) => assert!(e.message.contains(needle), "{body}: {}", e.message),
                Ok(_) => panic!("{body} must be refused"),
            }
        }
        let broken = validate(b"{\"filterGroups\": [", &schema()).expect_err("broken JSON");
        assert!(
            broken
                .message
                .starts_with("Invalid input JSON on line 1, column"),
            "{}",
            broken.message
        );
        let long = format!("{{\"query\": \"{}\"}}", "x".repeat(3_000));
        assert!(validate(long.as_bytes(), &schema()).is_err());
    }

    #[test]
    fn unknown_top_level_keys_are_ignored_and_match_everything_like_hubspot() {
        let body = json!({"filterGroup": {"filters": [{"propertyName": "email", "operator": "EQ", "value": "x"}]}});
        assert!(finds(body, json!({"email": "someone@else"})));
    }

    #[test]
    fn an_unknown_property_can_be_set_to_match_nothing_instead() {
        let lenient = Schema {
            unknown_property: UnknownProperty::MatchNothing,
            ..schema()
        };
        let body = one(json!({"propertyName": "shoe_size", "operator": "HAS_PROPERTY"}));
        let parsed = validate(body.to_string().as_bytes(), &lenient).expect("valid");
        assert!(!parsed.matches(&Map::new(), PhoneFilterMode::StoredText, &digits));
    }

    #[test]
    fn glob_handles_leading_inner_and_trailing_stars() {
        assert!(glob("*@hubspot.com", "a@hubspot.com"));
        assert!(glob("a*", "abc"));
        assert!(glob("a*c*e", "abcde"));
        assert!(!glob("a*c*e", "abde"));
        assert!(glob("*", ""));
        assert!(!glob("ab*ba", "aba"));
    }
}
