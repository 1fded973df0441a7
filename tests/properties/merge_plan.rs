//! The merge planner, `merge::plan` (fuzz target `merge_plan`).

use super::*;

/// Names chosen to collide: flattened paths ("a_b" from {"a":{"b":..}}), the status attributes,
/// empty names.
pub(crate) const NAMES: &[&str] = &["a", "b", "a_b", "a.b", "b_0", "found", "syncedAt", "", "x"];
pub(crate) const PREFIXES: &[&str] = &["", "crm.", "a", "a_", "crm"];

/// The longest value attrsync itself writes: an RFC 3339 timestamp with milliseconds.
pub(crate) const TIMESTAMP_CHARS: usize = "2024-05-17T09:30:15.123Z".len();

pub(crate) fn arb_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => select(NAMES).prop_map(str::to_owned),
        1 => "[a-z_.]{0,6}",
    ]
}

/// An attribute name, often one the planner itself produces (prefix + name).
pub(crate) fn arb_attribute_key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (select(PREFIXES), select(NAMES)).prop_map(|(p, n)| format!("{p}{n}")),
        1 => any::<String>(),
    ]
}

pub(crate) fn arb_value_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(&["", "v", "gold", "true", "false", "x"][..]).prop_map(str::to_owned),
        2 => any::<String>(),
        1 => "[a-z]{250,300}",
        1 => "[日本語😀é]{20,300}",
    ]
}

pub(crate) fn arb_record_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => arb_number(),
        4 => arb_value_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(arb_name(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

pub(crate) fn arb_record() -> impl Strategy<Value = Option<Map<String, Value>>> {
    prop::option::weighted(
        0.8,
        prop::collection::btree_map(arb_name(), arb_record_value(), 0..8)
            .prop_map(|m| m.into_iter().collect()),
    )
}

pub(crate) fn arb_attributes() -> impl Strategy<Value = Attributes> {
    prop::collection::btree_map(arb_attribute_key(), arb_value_text(), 0..8)
}

pub(crate) fn arb_policy() -> impl Strategy<Value = MergePolicy> {
    let overwrite = select(&[Overwrite::CrmWins, Overwrite::KeepExisting][..]);
    let max_value_chars = prop_oneof![
        1 => 0usize..=30,
        2 => 24usize..=300,
        1 => Just(256usize),
    ];
    let fields = prop_oneof![
        2 => Just(BTreeMap::new()),
        1 => prop::collection::btree_map(arb_name(), arb_name(), 0..5),
    ];
    let status_name = || prop::option::weighted(0.7, arb_name());
    (
        select(PREFIXES).prop_map(str::to_owned),
        fields,
        prop::collection::vec(arb_name(), 0..3),
        overwrite,
        max_value_chars,
        select(&["_", ".", "", "__"][..]).prop_map(str::to_owned),
        status_name(),
        status_name(),
        prop_oneof![2 => Just((0usize, 0usize)), 1 => (1usize..6, 0usize..700)],
    )
        .prop_map(
            |(
                prefix,
                fields,
                exclude,
                overwrite,
                max_value_chars,
                flatten_separator,
                timestamp_attribute,
                found_attribute,
                (max_attributes, max_patch_bytes),
            )| MergePolicy {
                prefix,
                fields,
                exclude,
                overwrite,
                max_value_chars,
                flatten_separator,
                timestamp_attribute,
                found_attribute,
                max_attributes,
                max_patch_bytes,
                ..MergePolicy::default()
            },
        )
}

pub(crate) fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 17, 9, 30, 15)
        .single()
        .expect("a valid timestamp")
        + chrono::Duration::milliseconds(123)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn merge_plan_is_capped_idempotent_and_keeps_to_its_namespace(
        policy in arb_policy(),
        record in arb_record(),
        extra in arb_attributes(),
        current in arb_attributes(),
    ) {
        let found_name = policy.found_attribute.as_deref().map(|n| policy.attribute_name(n));
        let timestamp_name = policy.timestamp_attribute.as_deref().map(|n| policy.attribute_name(n));
        let is_status = |key: &str| {
            found_name.as_deref() == Some(key) || timestamp_name.as_deref() == Some(key)
        };

        let patch = plan(&policy, record.as_ref(), &extra, &current, now());

        // Deterministic.
        prop_assert_eq!(&plan(&policy, record.as_ref(), &extra, &current, now()), &patch);

        for (key, value) in &patch.attributes {
            // Capped: CRM and extra values always; attrsync's own status values ("true"/"false",
            // the timestamp) whenever the cap leaves room for a timestamp at all.
            if !is_status(key) || policy.max_value_chars >= TIMESTAMP_CHARS {
                prop_assert!(
                    value.chars().count() <= policy.max_value_chars,
                    "{key:?} = {value:?} is longer than {}", policy.max_value_chars
                );
            }
            // Namespace: the prefix, or a name the event asked for.
            prop_assert!(
                key.starts_with(&policy.prefix) || extra.contains_key(key),
                "{key:?} is neither under {:?} nor an extra", policy.prefix
            );
            // Minimal: nothing is written that is already there (the timestamp excepted).
            if timestamp_name.as_deref() != Some(key.as_str()) {
                prop_assert_ne!(current.get(key), Some(value), "{} is unchanged", key);
            }
            // KeepExisting leaves non-empty values alone, except attrsync's own status.
            if policy.overwrite == Overwrite::KeepExisting && !is_status(key) {
                let existing = current.get(key).map(String::as_str).unwrap_or_default();
                prop_assert!(existing.is_empty(), "{key:?} = {existing:?} was overwritten");
            }
        }
        // Within the budget: attrsync's own status attributes always get through, and nothing
        // else past the count or byte limit.
        let others = patch.attributes.keys().filter(|k| !is_status(k)).count();
        if policy.max_attributes > 0 {
            prop_assert!(patch.attributes.len() <= policy.max_attributes.max(2) || others == 0);
        }
        if policy.max_patch_bytes > 0 && others > 0 {
            let body = serde_json::to_string(&serde_json::json!({"attributes": patch.attributes}))
                .unwrap_or_default();
            prop_assert!(body.len() <= policy.max_patch_bytes, "{} bytes", body.len());
        }

        // The timestamp comes only with a real change.
        if let Some(name) = &timestamp_name {
            if patch.attributes.contains_key(name) {
                prop_assert!(patch.attributes.len() >= 2 || found_name.as_deref() == Some(name.as_str()));
            }
        }

        // Idempotent: once the patch is applied, planning again (later) changes nothing.
        let mut applied = current.clone();
        applied.extend(patch.attributes.clone());
        let again = plan(
            &policy,
            record.as_ref(),
            &extra,
            &applied,
            now() + chrono::Duration::seconds(90),
        );
        prop_assert!(again.is_empty(), "second plan after applying {:?}: {:?}", patch, again);
    }

    #[test]
    fn mapped_fields_are_capped_deterministic_and_allow_listed(
        policy in arb_policy(),
        record in arb_record(),
    ) {
        let record = record.unwrap_or_default();
        let mapped = policy.mapped_fields(&record);
        for (name, value) in &mapped {
            prop_assert!(value.chars().count() <= policy.max_value_chars, "{name:?}");
            if !policy.fields.is_empty() {
                prop_assert!(policy.fields.values().any(|target| target == name), "{name:?}");
            }
        }
        prop_assert_eq!(policy.mapped_fields(&record), mapped);
    }
}

// ---------------------------------------------------------------------------------------------
