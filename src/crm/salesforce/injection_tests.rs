//! The injection classics through every Salesforce key kind, checked against the simulator's
//! own SOSL and SOQL parsers: every built query parses (nothing was spliced in unescaped), and
//! it finds the record holding exactly that value and no other.

use serde_json::{json, Map, Value};

use super::{id_lookup, phone_search, phrase_search, soql_equals, ApiVersion, SearchGroup, Target};
use crate::simulator::salesforce::schema::{ObjectSchema, Record};
use crate::simulator::salesforce::{soql, sosl, PhoneMatch};

const CLASSICS: [&str; 16] = [
    "'",
    "\\",
    "}",
    "{",
    "OR 1=1",
    "' OR '1'='1",
    "x} RETURNING User(Id",
    "--",
    "%",
    "*",
    "^",
    "\"",
    "a OR b",
    "Zoë 😀",
    "",
    "x' OR Name != '",
];

fn contact(email: &str, phone: &str) -> Record {
    let mut fields = Map::new();
    fields.insert("Id".into(), json!("003SIM000000000001"));
    fields.insert("Email".into(), Value::String(email.to_owned()));
    fields.insert("Phone".into(), Value::String(phone.to_owned()));
    Record {
        object: "Contact".into(),
        fields,
    }
}

fn contact_schema() -> ObjectSchema {
    ObjectSchema::defaults().remove(0)
}

#[test]
fn soql_lookups_with_the_classics_parse_and_match_only_the_exact_value() {
    let version = ApiVersion::parse("66.0").unwrap();
    let schema = contact_schema();
    let innocent = contact("ada@example.com", "(317) 555-0125");
    for value in CLASSICS {
        let request = soql_equals(
            &version,
            &Target::new("Contact", &["Email"]),
            &["Email"],
            value,
            None,
        )
        .unwrap();
        let query =
            soql::parse(&request.q).unwrap_or_else(|e| panic!("{value:?} broke the query: {e:?}"));
        let condition = soql::resolve(&query, &schema).unwrap().condition.unwrap();
        assert!(
            !soql::satisfies(&condition, &schema, &innocent),
            "{value:?} matched another record"
        );
        assert!(
            soql::satisfies(&condition, &schema, &contact(value, "")),
            "{value:?} missed its own record"
        );
        assert!(id_lookup(&version, &Target::new("Contact", &[]), value).is_err());
    }
}

#[test]
fn sosl_email_searches_with_the_classics_parse_and_match_only_the_exact_value() {
    let version = ApiVersion::parse("66.0").unwrap();
    let schema = contact_schema();
    let innocent = contact("ada@example.com", "(317) 555-0125");
    for value in CLASSICS {
        let Ok(request) = phrase_search(
            &version,
            value,
            SearchGroup::Email,
            &Target::defaults(),
            None,
        ) else {
            assert!(value.trim().chars().count() < 2, "{value:?} was refused");
            continue;
        };
        let search =
            sosl::parse(&request.q).unwrap_or_else(|e| panic!("{value:?} broke the search: {e:?}"));
        assert_eq!(search.returning.len(), 3, "{value:?} changed RETURNING");
        assert!(
            !sosl::matches(&search, &schema, &innocent, PhoneMatch::Digits),
            "{value:?}"
        );
        assert!(
            sosl::matches(
                &search,
                &schema,
                &contact(value.trim(), ""),
                PhoneMatch::Digits
            ),
            "{value:?}"
        );
    }
}

#[test]
fn sosl_phone_searches_keep_only_digits_so_the_classics_cannot_reach_the_query() {
    let version = ApiVersion::parse("66.0").unwrap();
    let schema = contact_schema();
    let innocent = contact("ada@example.com", "(317) 555-0125");
    for value in CLASSICS {
        match phone_search(&version, &[value], &Target::defaults(), None) {
            Err(_) => assert!(
                !value.chars().any(|c| c.is_ascii_digit())
                    || value.chars().filter(char::is_ascii_digit).count() < 2
            ),
            Ok(request) => {
                let search = sosl::parse(&request.q).unwrap();
                assert!(
                    !sosl::matches(
                        &search,
                        &schema,
                        &innocent,
                        PhoneMatch::DigitsIgnoringCountryCode
                    ),
                    "{value:?}"
                );
            }
        }
    }
}
