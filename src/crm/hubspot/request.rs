//! HubSpot contact lookups as requests: CRM search bodies (`POST /crm/v3/objects/contacts/search`)
//! over configurable phone properties, email and record id, and the direct reads
//! (`GET /crm/v3/objects/contacts/{id}`, `...?idProperty=email`).
//!
//! The search body is JSON, so JSON serialisation (serde_json) is the escaper: a value can never
//! leave its string. What remains is HubSpot's own rules, from the CRM search guide
//! (developers.hubspot.com/docs/api-reference/search/guide.md): at most 5 `filterGroups` × 6
//! filters, 18 in total; filters in a group are ANDed, groups ORed; `IN` "Searches by exact
//! match" and needs lowercase values for string properties; a body over 3 000 characters is a
//! 400; `limit` ≤ 200; `CONTAINS_TOKEN` treats `*` as a wildcard (so attrsync never puts a user
//! value into it); and for phones "HubSpot only uses the area code and local number" in the
//! `hs_searchable_calculated_*` properties ("refrain from including the country code").

use std::panic::{catch_unwind, AssertUnwindSafe};

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use serde_json::{json, Value};

pub const SEARCH_PATH: &str = "/crm/v3/objects/contacts/search";
pub const CONTACTS_PATH: &str = "/crm/v3/objects/contacts";

/// "A query can contain a maximum of 3,000 characters. If the body of your request exceeds
/// 3,000 characters, a 400 error will be returned."
pub const MAX_BODY_CHARS: usize = 3_000;
/// "The maximum number of supported objects per page is 200."
pub const MAX_LIMIT: u32 = 200;
/// Longest single value attrsync sends; far beyond any phone, email or id.
pub const MAX_VALUE_CHARS: usize = 256;

/// HubSpot's filter limits. The current guide says 5 groups × 6 filters, 18 in total; the
/// Aug 2024 changelog announced 5 × 10, 25; both are in circulation, so they are a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// Which contact properties a phone number is searched in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneProperties {
    /// Properties matched against the stored text, in the notations given (`phone`,
    /// `mobilephone`, custom ones).
    pub stored: Vec<String>,
    /// Calculated properties matched against the national significant number.
    pub calculated: Vec<String>,
}

impl Default for PhoneProperties {
    fn default() -> Self {
        Self {
            stored: vec!["phone".to_owned(), "mobilephone".to_owned()],
            calculated: vec![
                "hs_searchable_calculated_phone_number".to_owned(),
                "hs_searchable_calculated_mobile_number".to_owned(),
            ],
        }
    }
}

/// One search request: the body to POST to [`SEARCH_PATH`].
#[derive(Debug, Clone, PartialEq)]
pub struct SearchRequest {
    pub body: Value,
}

/// A direct read: a path (already percent-encoded) and query parameters (not yet encoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetRequest {
    pub path: String,
    pub params: Vec<(&'static str, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("{field}: the value is empty")]
    Empty { field: &'static str },
    #[error("{field}: {reason}")]
    Invalid {
        field: &'static str,
        reason: &'static str,
    },
    #[error("the search body would be {0} characters, over HubSpot's {MAX_BODY_CHARS}")]
    BodyTooLong(usize),
}

/// Search bodies for a phone number. `notations` are the stored-text forms to try (E.164,
/// national format, ...); `national_digits` is the national significant number for the
/// calculated properties (see [`national_significant_number`]). Each property becomes one
/// filter group (`IN` over the notations, `EQ` for one); groups beyond the limit go into
/// further requests, each of which costs a search call, so configure few properties.
pub fn phone_search(
    notations: &[String],
    national_digits: Option<&str>,
    properties: &PhoneProperties,
    returned: &[String],
    limit: u32,
    limits: FilterLimits,
) -> Result<Vec<SearchRequest>, RequestError> {
    let mut values: Vec<String> = Vec::new();
    for notation in notations {
        let value = checked("phone", notation)?.to_lowercase();
        if !values.contains(&value) {
            values.push(value);
        }
    }
    let mut groups: Vec<Value> = Vec::new();
    if !values.is_empty() {
        for property in &properties.stored {
            groups.push(group(vec![match values.as_slice() {
                [one] => eq(property_name(property)?, one),
                many => json!({"propertyName": property_name(property)?, "operator": "IN", "values": many}),
            }]));
        }
    }
    if let Some(digits) = national_digits {
        let digits = checked("phone", digits)?;
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RequestError::Invalid {
                field: "phone",
                reason: "the national number for calculated properties is digits only",
            });
        }
        for property in &properties.calculated {
            groups.push(group(vec![eq(property_name(property)?, digits)]));
        }
    }
    if groups.is_empty() {
        return Err(RequestError::Empty { field: "phone" });
    }
    let per_request = limits.groups.min(limits.total).max(1);
    groups
        .chunks(per_request)
        .map(|chunk| body(chunk.to_vec(), returned, limit))
        .collect()
}

/// A search by primary email (`EQ` is case-insensitive for strings, per the guide).
pub fn email_search(
    email: &str,
    returned: &[String],
    limit: u32,
) -> Result<SearchRequest, RequestError> {
    let email = email_checked(email)?;
    body(vec![group(vec![eq("email", email)])], returned, limit)
}

/// A search by record id through `hs_object_id` (when a search is wanted, e.g. to share one code
/// path); [`contact_by_id`] reads it directly and is not subject to the index lag.
pub fn id_search(record_id: &str, returned: &[String]) -> Result<SearchRequest, RequestError> {
    let id = id_checked(record_id)?;
    body(vec![group(vec![eq("hs_object_id", id)])], returned, 1)
}

/// `GET /crm/v3/objects/contacts/{id}?properties=a,b`. Ids are numeric ("objectId are usually
/// numeric"); anything else is refused rather than put into a path.
pub fn contact_by_id(record_id: &str, returned: &[String]) -> Result<GetRequest, RequestError> {
    let id = id_checked(record_id)?;
    Ok(GetRequest {
        path: format!("{CONTACTS_PATH}/{id}"),
        params: properties_param(returned)?,
    })
}

/// `GET /crm/v3/objects/contacts/{email}?idProperty=email`: the email replaces the id in the
/// path. It is percent-encoded as a path segment; `@` is allowed in a segment (RFC 3986 `pchar`)
/// and left alone, since an SDK that encoded the whole query into the path got 404s
/// (HubSpot/hubspot-api-nodejs#669).
pub fn contact_by_email(email: &str, returned: &[String]) -> Result<GetRequest, RequestError> {
    let email = email_checked(email)?;
    let mut params = properties_param(returned)?;
    params.push(("idProperty", "email".to_owned()));
    Ok(GetRequest {
        path: format!(
            "{CONTACTS_PATH}/{}",
            utf8_percent_encode(email, PATH_SEGMENT)
        ),
        params,
    })
}

/// A search by any other property (`EQ`, one group): a customer number kept in a custom
/// property, say. The value stays a JSON string, so it cannot become an operator or a filter.
pub fn property_search(
    property: &str,
    value: &str,
    returned: &[String],
    limit: u32,
) -> Result<SearchRequest, RequestError> {
    let property = property_name(property)?;
    let value = checked("id", value)?;
    body(vec![group(vec![eq(property, value)])], returned, limit)
}

/// Everything but RFC 3986 unreserved characters, `@` and sub-delims that are harmless in a
/// segment is encoded; `/`, `?`, `#`, `%` and space always are.
const PATH_SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// The national significant number of an E.164 number (`+15135557611` → `5135557611`,
/// `+442079460958` → `2079460958`): libphonenumber's "national number", which is what HubSpot's
/// "area code and local number" most plausibly means (how HubSpot derives it is unverified).
pub fn national_significant_number(e164: &str) -> Option<String> {
    if !e164.starts_with('+') {
        return None;
    }
    // The parser has panicked on odd input before; a bad number must cost one lookup.
    let parsed = catch_unwind(AssertUnwindSafe(|| phonenumber::parse(None, e164)))
        .ok()?
        .ok()?;
    Some(parsed.national().to_string())
}

fn body(
    groups: Vec<Value>,
    returned: &[String],
    limit: u32,
) -> Result<SearchRequest, RequestError> {
    let mut properties = Vec::with_capacity(returned.len());
    for name in returned {
        properties.push(property_name(name)?);
    }
    let body = json!({
        "filterGroups": groups,
        "properties": properties,
        "limit": limit.clamp(1, MAX_LIMIT),
    });
    let chars = body.to_string().chars().count();
    if chars > MAX_BODY_CHARS {
        return Err(RequestError::BodyTooLong(chars));
    }
    Ok(SearchRequest { body })
}

fn group(filters: Vec<Value>) -> Value {
    json!({ "filters": filters })
}

fn eq(property: &str, value: &str) -> Value {
    json!({"propertyName": property, "operator": "EQ", "value": value})
}

fn properties_param(returned: &[String]) -> Result<Vec<(&'static str, String)>, RequestError> {
    if returned.is_empty() {
        return Ok(Vec::new());
    }
    let mut names = Vec::with_capacity(returned.len());
    for name in returned {
        names.push(property_name(name)?);
    }
    Ok(vec![("properties", names.join(","))])
}

/// HubSpot internal property names are lowercase letters, digits and `_` (custom ones start with
/// a letter); a name from configuration that is anything else is a mistake, refused early.
fn property_name(name: &str) -> Result<&str, RequestError> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(name)
    } else {
        Err(RequestError::Invalid {
            field: "properties",
            reason: "a HubSpot property name is lowercase letters, digits and '_', starting with a letter",
        })
    }
}

fn checked<'a>(field: &'static str, value: &'a str) -> Result<&'a str, RequestError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(RequestError::Empty { field });
    }
    if value.chars().count() > MAX_VALUE_CHARS {
        return Err(RequestError::Invalid {
            field,
            reason: "longer than 256 characters",
        });
    }
    if value.chars().any(char::is_control) {
        return Err(RequestError::Invalid {
            field,
            reason: "contains a control character",
        });
    }
    Ok(value)
}

fn email_checked(email: &str) -> Result<&str, RequestError> {
    let email = checked("email", email)?;
    let shape_ok = email.matches('@').count() == 1
        && !email.starts_with('@')
        && !email.ends_with('@')
        && !email.contains(char::is_whitespace);
    if shape_ok {
        Ok(email)
    } else {
        Err(RequestError::Invalid {
            field: "email",
            reason: "not an email address (one '@', no spaces)",
        })
    }
}

fn id_checked(id: &str) -> Result<&str, RequestError> {
    let id = checked("id", id)?;
    if id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(id)
    } else {
        Err(RequestError::Invalid {
            field: "id",
            reason: "a HubSpot record id is digits only",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| (*v).to_owned()).collect()
    }

    #[test]
    fn a_phone_search_ors_one_group_per_property_with_the_notations_in_an_in_filter() {
        let requests = phone_search(
            &strings(&["+15135557611", "(513) 555-7611", "+15135557611"]),
            Some("5135557611"),
            &PhoneProperties::default(),
            &strings(&["firstname", "phone"]),
            10,
            FilterLimits::default(),
        )
        .expect("requests");
        assert_eq!(requests.len(), 1);
        assert_eq!(
            requests[0].body,
            json!({
                "filterGroups": [
                    {"filters": [{"propertyName": "phone", "operator": "IN", "values": ["+15135557611", "(513) 555-7611"]}]},
                    {"filters": [{"propertyName": "mobilephone", "operator": "IN", "values": ["+15135557611", "(513) 555-7611"]}]},
                    {"filters": [{"propertyName": "hs_searchable_calculated_phone_number", "operator": "EQ", "value": "5135557611"}]},
                    {"filters": [{"propertyName": "hs_searchable_calculated_mobile_number", "operator": "EQ", "value": "5135557611"}]}
                ],
                "properties": ["firstname", "phone"],
                "limit": 10
            })
        );
    }

    #[test]
    fn a_single_notation_is_an_eq_filter_and_extra_groups_go_into_a_second_request() {
        let properties = PhoneProperties {
            stored: strings(&["phone", "mobilephone", "work_phone", "home_phone"]),
            calculated: PhoneProperties::default().calculated,
        };
        let requests = phone_search(
            &strings(&["+15135557611"]),
            Some("5135557611"),
            &properties,
            &[],
            500,
            FilterLimits::default(),
        )
        .expect("requests");
        assert_eq!(requests.len(), 2);
        assert_eq!(
            requests[0].body["filterGroups"].as_array().map(Vec::len),
            Some(5)
        );
        assert_eq!(
            requests[1].body["filterGroups"].as_array().map(Vec::len),
            Some(1)
        );
        assert_eq!(
            requests[0].body["filterGroups"][0]["filters"][0],
            json!({"propertyName": "phone", "operator": "EQ", "value": "+15135557611"})
        );
        assert_eq!(requests[0].body["limit"], 200, "limit is capped at 200");
    }

    #[test]
    fn the_classics_stay_inside_their_json_string() {
        for classic in [
            "'",
            "\\",
            "}",
            "\"}]}",
            "OR 1=1",
            "--",
            "%",
            "*",
            "^",
            "\"",
            "ümlaut",
            "*@hubspot.com",
        ] {
            let requests = phone_search(
                &[format!("+1513{classic}")],
                None,
                &PhoneProperties::default(),
                &[],
                10,
                FilterLimits::default(),
            )
            .expect("requests");
            let value = &requests[0].body["filterGroups"][0]["filters"][0]["value"];
            assert_eq!(
                value.as_str(),
                Some(format!("+1513{classic}").to_lowercase().as_str())
            );
            let reparsed: Value =
                serde_json::from_str(&requests[0].body.to_string()).expect("json");
            assert_eq!(reparsed, requests[0].body);
            assert_eq!(reparsed["filterGroups"].as_array().map(Vec::len), Some(2));
        }
    }

    #[test]
    fn bad_values_names_and_oversized_bodies_are_refused() {
        let props = PhoneProperties::default();
        let limits = FilterLimits::default();
        assert_eq!(
            phone_search(&[], None, &props, &[], 10, limits),
            Err(RequestError::Empty { field: "phone" })
        );
        assert!(phone_search(&strings(&[" "]), None, &props, &[], 10, limits).is_err());
        assert!(phone_search(&strings(&["1\n2"]), None, &props, &[], 10, limits).is_err());
        assert!(phone_search(&[], Some("+1513"), &props, &[], 10, limits).is_err());
        assert!(phone_search(&[], Some("513 555"), &props, &[], 10, limits).is_err());
        let bad_property = PhoneProperties {
            stored: strings(&["Phone\"}"]),
            calculated: vec![],
        };
        assert!(phone_search(&strings(&["1"]), None, &bad_property, &[], 10, limits).is_err());
        assert!(email_search("a@b.c", &strings(&["first name"]), 1).is_err());
        let many: Vec<String> = (0..150).map(|i| format!("+1513555{i:04}")).collect();
        let big = PhoneProperties {
            stored: strings(&["phone", "mobilephone"]),
            calculated: vec![],
        };
        assert!(matches!(
            phone_search(&many, None, &big, &[], 10, limits),
            Err(RequestError::BodyTooLong(_))
        ));
    }

    #[test]
    fn email_and_id_searches_are_single_eq_filters() {
        assert_eq!(
            email_search(" Ada@Example.com ", &[], 5)
                .expect("email")
                .body,
            json!({"filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQ", "value": "Ada@Example.com"}]}],
                   "properties": [], "limit": 5})
        );
        for bad in ["", "ada", "a@b@c", "ada @b.c", "@b.c"] {
            assert!(email_search(bad, &[], 5).is_err(), "{bad:?}");
        }
        assert_eq!(
            id_search("512", &[]).expect("id").body["filterGroups"][0]["filters"][0],
            json!({"propertyName": "hs_object_id", "operator": "EQ", "value": "512"})
        );
        assert!(id_search("512 OR 1=1", &[]).is_err());
    }

    #[test]
    fn direct_reads_encode_the_path_and_refuse_non_numeric_ids() {
        let by_id = contact_by_id("512", &strings(&["email", "phone"])).expect("id");
        assert_eq!(by_id.path, "/crm/v3/objects/contacts/512");
        assert_eq!(by_id.params, [("properties", "email,phone".to_owned())]);
        for bad in ["../512", "512?archived=true", "5 12", "abc", "", "١٢"] {
            assert!(contact_by_id(bad, &[]).is_err(), "{bad:?}");
        }
        let by_email = contact_by_email("o'brien+x/y?z#%@ex^ample.com", &[]).expect("email");
        assert_eq!(
            by_email.path,
            "/crm/v3/objects/contacts/o'brien+x%2Fy%3Fz%23%25@ex%5Eample.com"
        );
        assert_eq!(by_email.params, [("idProperty", "email".to_owned())]);
    }

    #[test]
    fn the_national_significant_number_drops_the_country_code_only() {
        assert_eq!(
            national_significant_number("+15135557611").as_deref(),
            Some("5135557611")
        );
        assert_eq!(
            national_significant_number("+442079460958").as_deref(),
            Some("2079460958")
        );
        assert_eq!(
            national_significant_number("+390612345678").as_deref(),
            Some("0612345678")
        );
        assert_eq!(national_significant_number("5135557611"), None);
        assert_eq!(national_significant_number("+"), None);
    }
}
