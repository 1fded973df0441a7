//! `merge::plan` and `MergePolicy::mapped_fields`, case by case and by table.

use super::*;
use chrono::TimeZone;
use serde_json::json;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 17, 9, 30, 15)
        .single()
        .expect("valid test timestamp")
        + chrono::Duration::milliseconds(123)
}

const NOW_TEXT: &str = "2024-05-17T09:30:15.123Z";

fn record(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("test record must be an object, got {other}"),
    }
}

fn attrs(pairs: &[(&str, &str)]) -> Attributes {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn bare_policy() -> MergePolicy {
    MergePolicy {
        timestamp_attribute: None,
        found_attribute: None,
        ..MergePolicy::default()
    }
}

#[test]
fn default_policy_matches_the_documented_defaults() {
    let policy = MergePolicy::default();
    assert_eq!(policy.prefix, "crm.");
    assert!(policy.fields.is_empty());
    assert!(policy.exclude.is_empty());
    assert_eq!(policy.overwrite, Overwrite::CrmWins);
    assert_eq!(policy.max_value_chars, 256);
    assert_eq!(policy.flatten_separator, "_");
    assert_eq!(policy.timestamp_attribute.as_deref(), Some("syncedAt"));
    assert_eq!(policy.found_attribute.as_deref(), Some("found"));
}

#[test]
fn a_first_sync_writes_fields_found_and_timestamp() {
    let rec = record(json!({"name": "Jane Doe", "tier": "gold"}));
    let patch = plan(
        &MergePolicy::default(),
        Some(&rec),
        &Attributes::new(),
        &Attributes::new(),
        now(),
    );
    assert_eq!(
        patch.attributes,
        attrs(&[
            ("crm.found", "true"),
            ("crm.name", "Jane Doe"),
            ("crm.syncedAt", NOW_TEXT),
            ("crm.tier", "gold"),
        ])
    );
}

#[test]
fn crm_wins_overwrites_a_value_the_flow_wrote() {
    let rec = record(json!({"tier": "gold"}));
    let current = attrs(&[("crm.tier", "silver")]);
    let patch = plan(
        &bare_policy(),
        Some(&rec),
        &Attributes::new(),
        &current,
        now(),
    );
    assert_eq!(patch.attributes, attrs(&[("crm.tier", "gold")]));
}

#[test]
fn keep_existing_never_overwrites_a_value_the_flow_wrote() {
    let policy = MergePolicy {
        overwrite: Overwrite::KeepExisting,
        ..bare_policy()
    };
    let rec = record(json!({"tier": "gold"}));
    let current = attrs(&[("crm.tier", "silver")]);
    let patch = plan(&policy, Some(&rec), &Attributes::new(), &current, now());
    assert!(patch.is_empty(), "{patch:?}");
}

#[test]
fn keep_existing_fills_an_empty_value() {
    let policy = MergePolicy {
        overwrite: Overwrite::KeepExisting,
        ..bare_policy()
    };
    let rec = record(json!({"tier": "gold", "name": "Jane"}));
    let current = attrs(&[("crm.tier", ""), ("crm.name", "Janet")]);
    let patch = plan(&policy, Some(&rec), &Attributes::new(), &current, now());
    assert_eq!(patch.attributes, attrs(&[("crm.tier", "gold")]));
}

#[test]
fn keep_existing_applies_to_extras_too() {
    let policy = MergePolicy {
        overwrite: Overwrite::KeepExisting,
        ..bare_policy()
    };
    let extra = attrs(&[("queue", "vip"), ("lang", "en")]);
    let current = attrs(&[("queue", "general"), ("lang", "")]);
    let patch = plan(&policy, None, &extra, &current, now());
    assert_eq!(patch.attributes, attrs(&[("lang", "en")]));
}

#[test]
fn only_keys_whose_value_changes_are_emitted() {
    let rec = record(json!({"name": "Jane", "tier": "gold", "city": "Indy"}));
    let current = attrs(&[
        ("crm.name", "Jane"),
        ("crm.tier", "silver"),
        ("unrelated", "left alone"),
    ]);
    let patch = plan(
        &bare_policy(),
        Some(&rec),
        &Attributes::new(),
        &current,
        now(),
    );
    assert_eq!(
        patch.attributes,
        attrs(&[("crm.city", "Indy"), ("crm.tier", "gold")])
    );
}

#[test]
fn the_timestamp_is_added_only_when_something_else_changes() {
    let policy = MergePolicy::default();
    let rec = record(json!({"name": "Jane"}));
    let unchanged = attrs(&[
        ("crm.name", "Jane"),
        ("crm.found", "true"),
        ("crm.syncedAt", "2020-01-01T00:00:00.000Z"),
    ]);
    let patch = plan(&policy, Some(&rec), &Attributes::new(), &unchanged, now());
    assert!(patch.is_empty(), "only the timestamp differs: {patch:?}");

    let changed = attrs(&[("crm.name", "Janet"), ("crm.found", "true")]);
    let patch = plan(&policy, Some(&rec), &Attributes::new(), &changed, now());
    assert_eq!(
        patch.attributes,
        attrs(&[("crm.name", "Jane"), ("crm.syncedAt", NOW_TEXT)])
    );
}

#[test]
fn the_timestamp_is_written_even_under_keep_existing() {
    let policy = MergePolicy {
        overwrite: Overwrite::KeepExisting,
        ..MergePolicy::default()
    };
    let rec = record(json!({"name": "Jane"}));
    let current = attrs(&[("crm.found", "true"), ("crm.syncedAt", "earlier")]);
    let patch = plan(&policy, Some(&rec), &Attributes::new(), &current, now());
    assert_eq!(
        patch.attributes,
        attrs(&[("crm.name", "Jane"), ("crm.syncedAt", NOW_TEXT)])
    );
}

#[test]
fn an_identical_second_run_gives_an_empty_patch() {
    let policy = MergePolicy::default();
    let rec = record(json!({
        "name": "Jane",
        "address": {"city": "Indianapolis", "zip": 46204},
        "notes": "x".repeat(1000),
    }));
    let extra = attrs(&[("ivr.lang", "en")]);
    let first = plan(&policy, Some(&rec), &extra, &Attributes::new(), now());
    assert!(!first.is_empty());

    let later = now() + chrono::Duration::minutes(5);
    let second = plan(&policy, Some(&rec), &extra, &first.attributes, later);
    assert!(second.is_empty(), "{second:?}");
}

#[test]
fn the_same_inputs_always_give_the_same_patch() {
    let policy = MergePolicy::default();
    let rec = record(json!({"b": 1, "a": [true, null, {"z": "y"}], "c": "3"}));
    let extra = attrs(&[("x", "1")]);
    let current = attrs(&[("crm.c", "old")]);
    let first = plan(&policy, Some(&rec), &extra, &current, now());
    for _ in 0..10 {
        assert_eq!(plan(&policy, Some(&rec), &extra, &current, now()), first);
    }
}

#[test]
fn nested_objects_and_arrays_are_flattened_with_the_separator() {
    let rec = record(json!({
        "address": {"city": "Indianapolis", "geo": {"lat": 39.77}},
        "phones": ["+13175550125", "+13175550126"],
        "contacts": [{"name": "Ann"}, {"name": "Bob"}],
    }));
    let fields = bare_policy().mapped_fields(&rec);
    assert_eq!(
        fields,
        attrs(&[
            ("address_city", "Indianapolis"),
            ("address_geo_lat", "39.77"),
            ("contacts_0_name", "Ann"),
            ("contacts_1_name", "Bob"),
            ("phones_0", "+13175550125"),
            ("phones_1", "+13175550126"),
        ])
    );
}

#[test]
fn a_custom_separator_joins_nested_keys() {
    let policy = MergePolicy {
        flatten_separator: ".".to_owned(),
        ..bare_policy()
    };
    let rec = record(json!({"address": {"city": "X"}, "tags": ["a"]}));
    assert_eq!(
        policy.mapped_fields(&rec),
        attrs(&[("address.city", "X"), ("tags.0", "a")])
    );
}

#[test]
fn numbers_and_booleans_become_their_json_text_and_nulls_are_skipped() {
    let rec = record(json!({
        "count": 42,
        "negative": -7,
        "ratio": 3.5,
        "vip": true,
        "blocked": false,
        "missing": null,
        "nested": {"gone": null},
        "quoted": "\"already quoted\"",
    }));
    let fields = bare_policy().mapped_fields(&rec);
    assert_eq!(
        fields,
        attrs(&[
            ("blocked", "false"),
            ("count", "42"),
            ("negative", "-7"),
            ("quoted", "\"already quoted\""),
            ("ratio", "3.5"),
            ("vip", "true"),
        ])
    );
}

#[test]
fn empty_strings_are_kept_as_a_legitimate_value() {
    let rec = record(json!({"middleName": ""}));
    let patch = plan(
        &bare_policy(),
        Some(&rec),
        &Attributes::new(),
        &Attributes::new(),
        now(),
    );
    assert_eq!(patch.attributes, attrs(&[("crm.middleName", "")]));
}

#[test]
fn an_empty_string_is_not_written_over_a_value_that_is_already_empty() {
    let rec = record(json!({"middleName": ""}));
    let current = attrs(&[("crm.middleName", "")]);
    let patch = plan(
        &bare_policy(),
        Some(&rec),
        &Attributes::new(),
        &current,
        now(),
    );
    assert!(patch.is_empty());
}

#[test]
fn empty_objects_and_arrays_produce_no_attributes() {
    let rec = record(json!({"address": {}, "phones": []}));
    assert!(bare_policy().mapped_fields(&rec).is_empty());
}

#[test]
fn values_are_capped_at_256_chars_without_breaking_a_multi_byte_char() {
    let long_ascii = "a".repeat(300);
    let long_emoji = "😀".repeat(300);
    let mixed = format!("{}é€😀tail", "b".repeat(254));
    let rec = record(json!({"ascii": long_ascii, "emoji": long_emoji, "mixed": mixed}));
    let fields = MergePolicy::default().mapped_fields(&rec);

    assert_eq!(fields["ascii"], "a".repeat(256));
    assert_eq!(fields["emoji"], "😀".repeat(256));
    assert_eq!(fields["emoji"].chars().count(), 256);
    assert_eq!(fields["mixed"], format!("{}é€", "b".repeat(254)));
}

#[test]
fn a_value_of_exactly_the_limit_is_left_whole() {
    let exact = "ü".repeat(256);
    let rec = record(json!({"v": exact.clone()}));
    assert_eq!(MergePolicy::default().mapped_fields(&rec)["v"], exact);
}

#[test]
fn extras_are_capped_the_same_way() {
    let extra = attrs(&[("cti.note", &"ß".repeat(300))]);
    let patch = plan(&bare_policy(), None, &extra, &Attributes::new(), now());
    assert_eq!(patch.attributes["cti.note"], "ß".repeat(256));
}

#[test]
fn a_capped_value_already_present_is_not_rewritten() {
    let rec = record(json!({"notes": "n".repeat(400)}));
    let current = attrs(&[("crm.notes", &"n".repeat(256))]);
    let patch = plan(
        &bare_policy(),
        Some(&rec),
        &Attributes::new(),
        &current,
        now(),
    );
    assert!(patch.is_empty());
}

#[test]
fn the_prefix_is_applied_to_crm_fields_but_not_to_extras() {
    let policy = MergePolicy {
        prefix: "acme_".to_owned(),
        ..bare_policy()
    };
    let rec = record(json!({"name": "Jane"}));
    let extra = attrs(&[("cti.segment", "b2b")]);
    let patch = plan(&policy, Some(&rec), &extra, &Attributes::new(), now());
    assert_eq!(
        patch.attributes,
        attrs(&[("acme_name", "Jane"), ("cti.segment", "b2b")])
    );
}

#[test]
fn an_empty_prefix_writes_crm_fields_under_their_bare_names() {
    let policy = MergePolicy {
        prefix: String::new(),
        ..MergePolicy::default()
    };
    let rec = record(json!({"name": "Jane"}));
    let patch = plan(
        &policy,
        Some(&rec),
        &Attributes::new(),
        &Attributes::new(),
        now(),
    );
    assert_eq!(
        patch.attributes,
        attrs(&[("found", "true"), ("name", "Jane"), ("syncedAt", NOW_TEXT)])
    );
}

#[test]
fn fields_allow_lists_and_renames() {
    let policy = MergePolicy {
        fields: [("FirstName", "firstName"), ("address_city", "city")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        ..bare_policy()
    };
    let rec = record(json!({
        "FirstName": "Jane",
        "SSN": "123-45-6789",
        "address": {"city": "Indianapolis", "street": "1 Main St"},
    }));
    assert_eq!(
        policy.mapped_fields(&rec),
        attrs(&[("city", "Indianapolis"), ("firstName", "Jane")])
    );
    let patch = plan(
        &policy,
        Some(&rec),
        &Attributes::new(),
        &Attributes::new(),
        now(),
    );
    assert_eq!(
        patch.attributes,
        attrs(&[("crm.city", "Indianapolis"), ("crm.firstName", "Jane")])
    );
}

#[test]
fn an_allow_listed_field_missing_from_the_record_is_simply_absent() {
    let policy = MergePolicy {
        fields: [("tier".to_owned(), "tier".to_owned())].into(),
        ..bare_policy()
    };
    let rec = record(json!({"name": "Jane", "tier": null}));
    assert!(policy.mapped_fields(&rec).is_empty());
}

#[test]
fn exclude_drops_a_leaf_field() {
    let policy = MergePolicy {
        exclude: vec!["ssn".to_owned(), "address_zip".to_owned()],
        ..bare_policy()
    };
    let rec = record(json!({
        "name": "Jane",
        "ssn": "123-45-6789",
        "address": {"city": "Indy", "zip": "46204"},
    }));
    assert_eq!(
        policy.mapped_fields(&rec),
        attrs(&[("address_city", "Indy"), ("name", "Jane")])
    );
}

#[test]
fn exclude_of_a_parent_object_drops_all_its_children() {
    let policy = MergePolicy {
        exclude: vec!["address".to_owned(), "phones_1".to_owned()],
        ..bare_policy()
    };
    let rec = record(json!({
        "address": {"city": "Indy", "geo": {"lat": 1}},
        "address_line": "kept: a top-level field, not a child of address",
        "phones": ["a", "b", "c"],
    }));
    assert_eq!(
        policy.mapped_fields(&rec),
        attrs(&[
            (
                "address_line",
                "kept: a top-level field, not a child of address"
            ),
            ("phones_0", "a"),
            ("phones_2", "c"),
        ])
    );
}

#[test]
fn exclude_wins_over_the_fields_allow_list() {
    let policy = MergePolicy {
        fields: [
            ("ssn".to_owned(), "ssn".to_owned()),
            ("address_city".to_owned(), "city".to_owned()),
            ("name".to_owned(), "name".to_owned()),
        ]
        .into(),
        exclude: vec!["ssn".to_owned(), "address".to_owned()],
        ..bare_policy()
    };
    let rec = record(json!({"ssn": "1", "address": {"city": "Indy"}, "name": "Jane"}));
    assert_eq!(policy.mapped_fields(&rec), attrs(&[("name", "Jane")]));
}

#[test]
fn a_miss_writes_found_false_and_nothing_from_the_crm() {
    let patch = plan(
        &MergePolicy::default(),
        None,
        &Attributes::new(),
        &Attributes::new(),
        now(),
    );
    assert_eq!(
        patch.attributes,
        attrs(&[("crm.found", "false"), ("crm.syncedAt", NOW_TEXT)])
    );
}

#[test]
fn a_repeated_miss_writes_nothing() {
    let current = attrs(&[("crm.found", "false"), ("crm.syncedAt", "earlier")]);
    let patch = plan(
        &MergePolicy::default(),
        None,
        &Attributes::new(),
        &current,
        now(),
    );
    assert!(patch.is_empty());
}

#[test]
fn a_hit_after_a_miss_flips_found_to_true_under_crm_wins() {
    let current = attrs(&[("crm.found", "false")]);
    let rec = record(json!({}));
    let patch = plan(
        &MergePolicy::default(),
        Some(&rec),
        &Attributes::new(),
        &current,
        now(),
    );
    assert_eq!(
        patch.attributes,
        attrs(&[("crm.found", "true"), ("crm.syncedAt", NOW_TEXT)])
    );
}

#[test]
fn a_miss_with_found_and_timestamp_disabled_writes_nothing() {
    let patch = plan(
        &bare_policy(),
        None,
        &Attributes::new(),
        &Attributes::new(),
        now(),
    );
    assert!(patch.is_empty());
}

#[test]
fn disabled_found_and_timestamp_attributes_are_never_written() {
    let rec = record(json!({"name": "Jane"}));
    let patch = plan(
        &bare_policy(),
        Some(&rec),
        &Attributes::new(),
        &Attributes::new(),
        now(),
    );
    assert_eq!(patch.attributes, attrs(&[("crm.name", "Jane")]));
}

#[test]
fn found_can_be_enabled_without_the_timestamp() {
    let policy = MergePolicy {
        found_attribute: Some("known".to_owned()),
        ..bare_policy()
    };
    let patch = plan(&policy, None, &Attributes::new(), &Attributes::new(), now());
    assert_eq!(patch.attributes, attrs(&[("crm.known", "false")]));
}

#[test]
fn a_crm_field_cannot_spoof_the_found_or_timestamp_attribute() {
    let rec = record(json!({"found": "maybe", "syncedAt": "1999"}));
    let patch = plan(
        &MergePolicy::default(),
        Some(&rec),
        &Attributes::new(),
        &Attributes::new(),
        now(),
    );
    assert_eq!(
        patch.attributes,
        attrs(&[("crm.found", "true"), ("crm.syncedAt", NOW_TEXT)])
    );
}

#[test]
fn a_crm_field_beats_an_extra_of_the_same_name() {
    let rec = record(json!({"tier": "gold"}));
    let extra = attrs(&[("crm.tier", "from-cti"), ("cti.ok", "1")]);
    let patch = plan(
        &bare_policy(),
        Some(&rec),
        &extra,
        &Attributes::new(),
        now(),
    );
    assert_eq!(
        patch.attributes,
        attrs(&[("cti.ok", "1"), ("crm.tier", "gold")])
    );
}

#[test]
fn extras_alone_are_written_with_a_timestamp_on_a_miss() {
    let policy = MergePolicy {
        found_attribute: None,
        ..MergePolicy::default()
    };
    let extra = attrs(&[("cti.account", "42")]);
    let patch = plan(&policy, None, &extra, &Attributes::new(), now());
    assert_eq!(
        patch.attributes,
        attrs(&[("crm.syncedAt", NOW_TEXT), ("cti.account", "42")])
    );
}

#[test]
fn mapped_fields_carry_no_prefix() {
    let rec = record(json!({"name": "Jane", "address": {"city": "Indy"}}));
    let fields = MergePolicy::default().mapped_fields(&rec);
    assert_eq!(fields, attrs(&[("address_city", "Indy"), ("name", "Jane")]));
    assert!(fields.keys().all(|k| !k.starts_with("crm.")));
}

#[test]
fn a_flattened_name_clash_resolves_the_same_way_every_time() {
    let rec = record(json!({"a": {"b": "nested"}, "a_b": "top"}));
    let first = bare_policy().mapped_fields(&rec);
    assert_eq!(first.len(), 1);
    assert_eq!(bare_policy().mapped_fields(&rec), first);
}

#[test]
fn attribute_name_prepends_the_prefix() {
    assert_eq!(MergePolicy::default().attribute_name("tier"), "crm.tier");
}

#[test]
fn current_attributes_are_needed_only_under_keep_existing() {
    let keep = MergePolicy {
        overwrite: Overwrite::KeepExisting,
        ..MergePolicy::default()
    };
    assert!(keep.needs_current_attributes());
    assert!(!MergePolicy::default().needs_current_attributes());
}

#[test]
fn the_policy_deserialises_from_partial_snake_case_config() {
    let policy: MergePolicy = serde_json::from_value(json!({
        "prefix": "sf.",
        "overwrite": "keep_existing",
        "timestamp_attribute": null,
    }))
    .expect("valid policy");
    assert_eq!(policy.prefix, "sf.");
    assert_eq!(policy.overwrite, Overwrite::KeepExisting);
    assert_eq!(policy.timestamp_attribute, None);
    assert_eq!(policy.found_attribute.as_deref(), Some("found"));
    assert_eq!(policy.max_value_chars, 256);
}

#[test]
fn overwrite_decisions_follow_the_table() {
    struct Case {
        overwrite: Overwrite,
        current: Option<&'static str>,
        desired: &'static str,
        written: bool,
    }
    let cases = [
        Case {
            overwrite: Overwrite::CrmWins,
            current: None,
            desired: "v",
            written: true,
        },
        Case {
            overwrite: Overwrite::CrmWins,
            current: Some(""),
            desired: "v",
            written: true,
        },
        Case {
            overwrite: Overwrite::CrmWins,
            current: Some("old"),
            desired: "v",
            written: true,
        },
        Case {
            overwrite: Overwrite::CrmWins,
            current: Some("v"),
            desired: "v",
            written: false,
        },
        Case {
            overwrite: Overwrite::CrmWins,
            current: Some("old"),
            desired: "",
            written: true,
        },
        Case {
            overwrite: Overwrite::CrmWins,
            current: Some(""),
            desired: "",
            written: false,
        },
        Case {
            overwrite: Overwrite::KeepExisting,
            current: None,
            desired: "v",
            written: true,
        },
        Case {
            overwrite: Overwrite::KeepExisting,
            current: Some(""),
            desired: "v",
            written: true,
        },
        Case {
            overwrite: Overwrite::KeepExisting,
            current: Some("old"),
            desired: "v",
            written: false,
        },
        Case {
            overwrite: Overwrite::KeepExisting,
            current: Some("v"),
            desired: "v",
            written: false,
        },
        Case {
            overwrite: Overwrite::KeepExisting,
            current: Some("old"),
            desired: "",
            written: false,
        },
        Case {
            overwrite: Overwrite::KeepExisting,
            current: None,
            desired: "",
            written: true,
        },
    ];
    for (i, case) in cases.iter().enumerate() {
        let policy = MergePolicy {
            overwrite: case.overwrite,
            ..bare_policy()
        };
        let rec = record(json!({"k": case.desired}));
        let current: Attributes = case
            .current
            .map(|v| attrs(&[("crm.k", v)]))
            .unwrap_or_default();
        let patch = plan(&policy, Some(&rec), &Attributes::new(), &current, now());
        let expected = if case.written {
            attrs(&[("crm.k", case.desired)])
        } else {
            Attributes::new()
        };
        assert_eq!(
            patch.attributes, expected,
            "case {i}: {:?} current={:?} desired={:?}",
            case.overwrite, case.current, case.desired
        );
    }
}

#[test]
fn json_values_flatten_to_the_expected_text_per_the_table() {
    let cases: &[(Value, &[(&str, &str)])] = &[
        (json!("plain"), &[("v", "plain")]),
        (json!(""), &[("v", "")]),
        (json!(0), &[("v", "0")]),
        (json!(-12), &[("v", "-12")]),
        (json!(3.5), &[("v", "3.5")]),
        (json!(1e3), &[("v", "1000.0")]),
        (json!(u64::MAX), &[("v", "18446744073709551615")]),
        (json!(true), &[("v", "true")]),
        (json!(false), &[("v", "false")]),
        (json!(null), &[]),
        (json!([]), &[]),
        (json!({}), &[]),
        (json!([null, 1]), &[("v_1", "1")]),
        (
            json!([[1, 2], [3]]),
            &[("v_0_0", "1"), ("v_0_1", "2"), ("v_1_0", "3")],
        ),
        (json!({"x": {"y": {"z": "deep"}}}), &[("v_x_y_z", "deep")]),
        (json!({"list": [{"n": 1}]}), &[("v_list_0_n", "1")]),
    ];
    for (value, expected) in cases {
        let rec = record(json!({ "v": value }));
        assert_eq!(
            bare_policy().mapped_fields(&rec),
            attrs(expected),
            "flattening {value}"
        );
    }
}

#[test]
fn capping_counts_chars_not_bytes_per_the_table() {
    let cases: &[(&str, usize, &str)] = &[
        ("", 5, ""),
        ("abc", 0, ""),
        ("abc", 3, "abc"),
        ("abcd", 3, "abc"),
        ("héllo", 2, "hé"),
        ("日本語テキスト", 3, "日本語"),
        ("😀😃😄", 1, "😀"),
        ("e\u{301}x", 1, "e"),
    ];
    for (input, max, expected) in cases {
        assert_eq!(cap_chars(input, *max), *expected, "cap {input:?} at {max}");
    }
}

#[test]
fn keep_existing_still_updates_attrsyncs_own_found_flag() {
    let policy = MergePolicy {
        overwrite: Overwrite::KeepExisting,
        ..MergePolicy::default()
    };
    let current = attrs(&[("crm.found", "false"), ("crm.tier", "vip")]);
    let patch = plan(
        &policy,
        Some(&record(json!({"tier": "gold"}))),
        &Attributes::new(),
        &current,
        now(),
    );
    assert_eq!(
        patch.attributes.get("crm.found").map(String::as_str),
        Some("true")
    );
    assert!(!patch.attributes.contains_key("crm.tier"));
}
