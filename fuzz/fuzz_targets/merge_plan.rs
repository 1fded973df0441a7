//! `merge::plan` on arbitrary policies, CRM records, event extras and current attributes. Besides
//! never panicking, the patch must be capped, stay in attrsync's namespace, be minimal, respect
//! KeepExisting and be idempotent (planning again after applying it changes nothing).
#![no_main]

use std::collections::BTreeMap;

use arbitrary::Arbitrary;
use attrsync::merge::{plan, Attributes, MergePolicy, Overwrite};
use chrono::{DateTime, Utc};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

/// Names chosen to collide: flattened paths, the default status attributes, prefixes, "".
const NAMES: &[&str] = &[
    "",
    "a",
    "b",
    "a_b",
    "a.b",
    "b_0",
    "a_0",
    "found",
    "syncedAt",
    "crm.",
    "crm.a",
    "crm.found",
    "crm.syncedAt",
    "crm.a_b",
    "_",
    ".",
];

/// serde_json never parses deeper than 128 levels, so no CRM record is deeper either.
const MAX_DEPTH: usize = 32;

/// The longest value attrsync itself writes: an RFC 3339 UTC timestamp with milliseconds.
const TIMESTAMP_CHARS: usize = "2024-05-17T09:30:15.123Z".len();

#[derive(Debug, Arbitrary)]
enum Name {
    Known(u8),
    Free(String),
}

impl Name {
    fn text(&self) -> String {
        match self {
            Name::Known(i) => NAMES[usize::from(*i) % NAMES.len()].to_owned(),
            Name::Free(s) => s.clone(),
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Text(Name),
    Long(char, u16),
    Array(Vec<Json>),
    Object(Vec<(Name, Json)>),
}

impl Json {
    fn value(&self, depth: usize) -> Value {
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Int(n) => Value::from(*n),
            Json::Uint(n) => Value::from(*n),
            Json::Float(f) => Value::from(*f),
            Json::Text(name) => Value::String(name.text()),
            Json::Long(c, n) => Value::String(c.to_string().repeat(usize::from(*n % 600))),
            _ if depth >= MAX_DEPTH => Value::Null,
            Json::Array(items) => Value::Array(items.iter().map(|i| i.value(depth + 1)).collect()),
            Json::Object(fields) => Value::Object(object(fields, depth + 1)),
        }
    }
}

fn object(fields: &[(Name, Json)], depth: usize) -> Map<String, Value> {
    fields
        .iter()
        .map(|(name, json)| (name.text(), json.value(depth)))
        .collect()
}

#[derive(Debug, Arbitrary)]
enum Text {
    Name(Name),
    Long(char, u16),
}

impl Text {
    fn text(&self) -> String {
        match self {
            Text::Name(name) => name.text(),
            Text::Long(c, n) => c.to_string().repeat(usize::from(*n % 600)),
        }
    }
}

#[derive(Debug, Arbitrary)]
struct Policy {
    prefix: Name,
    fields: Vec<(Name, Name)>,
    exclude: Vec<Name>,
    keep_existing: bool,
    max_value_chars: u16,
    flatten_separator: Name,
    timestamp_attribute: Option<Name>,
    found_attribute: Option<Name>,
}

impl Policy {
    fn policy(&self) -> MergePolicy {
        MergePolicy {
            prefix: self.prefix.text(),
            fields: self
                .fields
                .iter()
                .map(|(source, target)| (source.text(), target.text()))
                .collect(),
            exclude: self.exclude.iter().map(Name::text).collect(),
            overwrite: if self.keep_existing {
                Overwrite::KeepExisting
            } else {
                Overwrite::CrmWins
            },
            max_value_chars: usize::from(self.max_value_chars % 320),
            flatten_separator: self.flatten_separator.text(),
            timestamp_attribute: self.timestamp_attribute.as_ref().map(Name::text),
            found_attribute: self.found_attribute.as_ref().map(Name::text),
            ..MergePolicy::default()
        }
    }
}

#[derive(Debug, Arbitrary)]
struct Input {
    policy: Policy,
    record: Option<Vec<(Name, Json)>>,
    extra: Vec<(Name, Text)>,
    current: Vec<(Name, Text)>,
    /// Seconds since the epoch, kept within years 1970..=9999 (where RFC 3339 has 4-digit years).
    now: u64,
    later_by: u16,
}

fn attributes(pairs: &[(Name, Text)]) -> Attributes {
    pairs.iter().map(|(k, v)| (k.text(), v.text())).collect()
}

fuzz_target!(|input: Input| {
    let policy = input.policy.policy();
    let record = input.record.as_deref().map(|fields| object(fields, 0));
    let extra = attributes(&input.extra);
    let current = attributes(&input.current);
    let secs = i64::try_from(input.now % 253_402_300_800).expect("fits in i64");
    let now: DateTime<Utc> =
        DateTime::from_timestamp(secs, u32::from(input.later_by) * 1_000).expect("in range");

    let found_name = policy
        .found_attribute
        .as_deref()
        .map(|n| policy.attribute_name(n));
    let timestamp_name = policy
        .timestamp_attribute
        .as_deref()
        .map(|n| policy.attribute_name(n));
    let is_status =
        |key: &str| found_name.as_deref() == Some(key) || timestamp_name.as_deref() == Some(key);

    let patch = plan(&policy, record.as_ref(), &extra, &current, now);

    for (key, value) in &patch.attributes {
        if !is_status(key) || policy.max_value_chars >= TIMESTAMP_CHARS {
            assert!(
                value.chars().count() <= policy.max_value_chars,
                "{key:?} has {} chars, over {}",
                value.chars().count(),
                policy.max_value_chars
            );
        }
        assert!(
            key.starts_with(&policy.prefix) || extra.contains_key(key),
            "{key:?} is neither under {:?} nor an extra",
            policy.prefix
        );
        if timestamp_name.as_deref() != Some(key.as_str()) {
            assert_ne!(current.get(key), Some(value), "{key:?} is unchanged");
        }
        if policy.overwrite == Overwrite::KeepExisting && !is_status(key) {
            let existing = current.get(key).map(String::as_str).unwrap_or_default();
            assert!(
                existing.is_empty(),
                "{key:?} = {existing:?} was overwritten"
            );
        }
    }

    let mut applied: BTreeMap<String, String> = current.clone();
    applied.extend(patch.attributes.clone());
    let later = now + chrono::Duration::seconds(i64::from(input.later_by) + 1);
    let again = plan(&policy, record.as_ref(), &extra, &applied, later);
    assert!(
        again.is_empty(),
        "not idempotent: after {patch:?} the next plan is {again:?}"
    );

    // mapped_fields is what the lookup endpoint returns: capped, deterministic.
    if let Some(record) = &record {
        let mapped = policy.mapped_fields(record);
        for (name, value) in &mapped {
            assert!(value.chars().count() <= policy.max_value_chars, "{name:?}");
        }
    }
});
