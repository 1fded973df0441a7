use phonenumber::country::Id;
use serde_json::json;

use super::*;
use crate::crm::vendor::VendorRecord;

fn number(raw: &str) -> CallerNumber {
    CallerNumber::parse(raw, Id::US).unwrap()
}

const EXACT: Option<MatchQuality> = Some(MatchQuality::Exact);
const NATIONAL: Option<MatchQuality> = Some(MatchQuality::National);
const PARTIAL: Option<MatchQuality> = Some(MatchQuality::Partial);

#[test]
fn phone_grades_follow_the_documented_rules() {
    // (caller number, stored text, region, expected)
    let cases: &[(&str, &str, Id, Option<MatchQuality>)] = &[
        // exact: the same E.164 number, the country written on both sides
        ("tel:+13175550125", "+13175550125", Id::US, EXACT),
        ("tel:+13175550125", "+1 (317) 555-0125", Id::US, EXACT),
        ("tel:+13175550125", "011 1 317 555 0125", Id::US, EXACT),
        ("tel:+442079460018", "+44 20 7946 0018", Id::US, EXACT),
        ("tel:+442079460018", "0044 20 7946 0018", Id::GB, EXACT),
        (
            "sip:+13175550125@10.0.0.1;user=phone",
            "+13175550125",
            Id::US,
            EXACT,
        ),
        ("tel:+13175550125", "+1 317 555 0125 ext. 12", Id::US, EXACT),
        ("tel:+13175550125", "+1-317-555-0125 x12", Id::US, EXACT),
        // national: the same number, the country unknown on one side
        ("tel:+13175550125", "(317) 555-0125", Id::US, NATIONAL),
        ("tel:+13175550125", "3175550125", Id::US, NATIONAL),
        ("tel:+13175550125", "13175550125", Id::US, NATIONAL),
        ("3175550125", "+13175550125", Id::US, NATIONAL),
        ("tel:+442079460018", "020 7946 0018", Id::GB, NATIONAL),
        // a UK caller, a UK number stored without its country in a US deployment
        ("tel:+442079460018", "020 7946 0018", Id::US, NATIONAL),
        // partial: a suffix of at least 7 digits
        ("tel:+13175550125", "555-0125", Id::US, PARTIAL),
        ("tel:+13175550125", "9 1 317 555 0125", Id::US, PARTIAL),
        ("5550125", "+13175550125", Id::US, PARTIAL),
        // no match
        ("tel:+13175550125", "+13175550126", Id::US, None),
        ("tel:+13175550125", "(317) 555-0126", Id::US, None),
        ("tel:+13175550125", "55-0125", Id::US, None),
        ("tel:+13175550125", "0125", Id::US, None),
        ("tel:+13175550125", "", Id::US, None),
        ("tel:+13175550125", "n/a", Id::US, None),
        // the same national digits in two countries are two numbers
        ("tel:+442079460018", "+1 207 946 0018", Id::US, None),
        // stored without a country, but a valid number of the default region: not the caller
        ("tel:+442079460018", "207-946-0018", Id::US, None),
        // an extension is not part of the number
        ("tel:+13175550125", "+1 317 555 01 #25", Id::US, None),
    ];
    for (key, stored, region, expected) in cases {
        let key = CallerNumber::parse(key, *region).unwrap();
        assert_eq!(
            grade_phone(&key, stored, *region),
            *expected,
            "{key:?} against {stored:?} in {region:?}"
        );
    }
}

#[test]
fn grading_never_panics_on_odd_stored_text() {
    let key = number("tel:+13175550125");
    let long = "9".repeat(10_000);
    for stored in [
        "+",
        "++1",
        "()",
        "tel:",
        "<sip:>",
        "+99999999999999999999999",
        "\u{0663}\u{0661}\u{0667}",
        long.as_str(),
        "'; DROP TABLE x; --",
        "1' OR '1'='1",
    ] {
        let _ = grade_phone(&key, stored, Id::US);
    }
}

#[test]
fn ids_are_exact_and_emails_ignore_case_and_spaces() {
    let cases: &[(KeyKind, &str, &str, Option<MatchQuality>)] = &[
        (
            KeyKind::Email,
            "Ada@Example.com",
            " ada@example.COM ",
            EXACT,
        ),
        (
            KeyKind::Email,
            "ÉMILIE@example.fr",
            "émilie@example.fr",
            EXACT,
        ),
        (KeyKind::Email, "ada@example.com", "ada@example.co", None),
        (KeyKind::Email, "ada@example.com", "*@example.com", None),
        (KeyKind::CustomerId, "C-1001", " C-1001", EXACT),
        (KeyKind::CustomerId, "C-1001", "c-1001", None),
        (KeyKind::CustomerId, "", "", None),
        (KeyKind::ExternalContactId, "X9", "X9", EXACT),
        (KeyKind::ExternalContactId, "X9", "X9%", None),
    ];
    for (kind, key, stored, expected) in cases {
        assert_eq!(
            grade_exact_text(*kind, key, stored),
            *expected,
            "{kind:?} {key:?} {stored:?}"
        );
    }
}

fn record(fields: serde_json::Value) -> CrmRecord {
    fields.as_object().unwrap().clone()
}

#[test]
fn the_best_field_wins_and_the_first_listed_on_a_tie() {
    let key = CustomerKey::Phone(number("tel:+13175550125"));
    let fields = record(json!({
        "Phone": "(317) 555-0125",
        "MobilePhone": "+1 317 555 0125",
        "OtherPhone": "+13175550125",
        "Fax": "555-0125",
    }));
    assert_eq!(
        best_match(
            &key,
            &fields,
            &["Fax", "Phone", "MobilePhone", "OtherPhone"],
            Id::US
        ),
        Some(("MobilePhone".to_owned(), MatchQuality::Exact))
    );
    assert_eq!(
        best_match(&key, &fields, &["Fax"], Id::US),
        Some(("Fax".to_owned(), MatchQuality::Partial))
    );
    assert_eq!(
        best_match(&key, &fields, &["Name", "Missing"], Id::US),
        None
    );
}

#[test]
fn pointers_and_arrays_are_graded_too() {
    let key = CustomerKey::Email("ada@example.com".into());
    let fields = record(json!({
        "contact": {"emails": ["old@example.com", "ADA@example.com"]},
        "a/b": {"x": "ada@example.com"},
        "n": 5,
    }));
    assert_eq!(
        best_match(&key, &fields, &["/contact/emails"], Id::US),
        Some(("/contact/emails".to_owned(), MatchQuality::Exact))
    );
    assert_eq!(
        best_match(&key, &fields, &["/a~1b/x"], Id::US).map(|(_, q)| q),
        EXACT
    );
    let id = CustomerKey::CustomerId("5".into());
    assert_eq!(
        best_match(&id, &fields, &["n"], Id::US).map(|(_, q)| q),
        EXACT
    );
}

#[test]
fn records_that_do_not_match_the_key_are_dropped() {
    // What a fuzzy search may return: one record holding the caller's number, one that only
    // shares a token of it.
    let key = CustomerKey::Phone(number("tel:+13175550125"));
    let records = vec![
        VendorRecord {
            record_type: "Contact".into(),
            record_id: "003A".into(),
            last_modified: Some("2024-01-02T03:04:05.000+0000".into()),
            fields: record(json!({"Phone": "(317) 555-0125", "Name": "Ada"})),
        },
        VendorRecord {
            record_type: "Contact".into(),
            record_id: "003B".into(),
            last_modified: None,
            fields: record(json!({"Phone": "(317) 555-9999", "Name": "Stranger"})),
        },
    ];
    let kept = grade_records(
        "salesforce",
        &key,
        records,
        &["Phone", "MobilePhone"],
        Id::US,
    );
    assert_eq!(kept.len(), 1);
    let c = &kept[0];
    assert_eq!(
        (c.source, c.record_id.as_str(), c.matched_field.as_str()),
        ("salesforce", "003A", "Phone")
    );
    assert_eq!(c.quality, MatchQuality::National);
    assert!(c.last_modified.is_some());
    assert_eq!(c.fields["Name"], "Ada");
}
