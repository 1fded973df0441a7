//! The injection classics through every Dataverse key kind, checked against the simulator's own
//! `$filter` parser: every built filter parses (nothing was spliced in unescaped), and it finds
//! the row holding exactly that value and no other.

use serde_json::{json, Map, Value};

use super::EntitySpec;
use crate::simulator::dynamics::filter;
use crate::simulator::dynamics::tables::Table;

const CLASSICS: [&str; 15] = [
    "'",
    "''",
    "\\",
    "}",
    "OR 1=1",
    "' or telephone1 ne '",
    "') or (telephone1 ne '",
    "--",
    "%",
    "*",
    "^",
    "\"",
    "&$top=1",
    "Zoë 😀",
    "O'Bryan",
];

fn row(column: &str, value: &str) -> Map<String, Value> {
    let mut row = Map::new();
    row.insert(
        "contactid".into(),
        json!("78914942-34cb-ed11-b596-0022481d68cd"),
    );
    row.insert(column.into(), Value::String(value.to_owned()));
    row
}

#[test]
fn phone_and_email_filters_with_the_classics_parse_and_match_only_the_exact_value() {
    let spec = EntitySpec::contacts();
    let table: Table = Table::defaults().remove(0);
    for value in CLASSICS {
        for (request, column) in [
            (
                spec.phone_lookup("v9.2", &[value], None).unwrap(),
                "mobilephone",
            ),
            (
                spec.email_lookup("v9.2", value, None).unwrap(),
                "emailaddress1",
            ),
        ] {
            let text = &request
                .query
                .iter()
                .find(|(k, _)| k == "$filter")
                .unwrap()
                .1;
            let parsed = filter::parse(text, &table)
                .unwrap_or_else(|e| panic!("{value:?} broke the filter: {e:?}"));
            assert!(
                filter::matches(&parsed, &row(column, value)),
                "{value:?} missed its own row"
            );
            assert!(
                !filter::matches(&parsed, &row(column, "+13175550125")),
                "{value:?} matched another row"
            );
            assert!(
                !filter::matches(&parsed, &row("fullname", value)),
                "{value:?} matched another column"
            );
        }
        assert!(spec.id_lookup("v9.2", value).is_err());
    }
}
