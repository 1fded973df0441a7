//! The merge policy: how a CRM record (and attributes supplied by the event)
//! become the minimal participant-attribute patch for a live conversation.
//!
//! Everything here is pure: no I/O, no clock (the caller passes `now`), so the
//! same inputs always give the same patch and the policy can be tested
//! exhaustively without Genesys or a CRM.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

/// Participant attributes: name -> value. Ordered so patches and logs are
/// deterministic.
pub type Attributes = BTreeMap<String, String>;

/// What to do when the participant already holds a value for an attribute
/// attrsync wants to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Overwrite {
    /// The CRM is the system of record: its value replaces whatever is there.
    CrmWins,
    /// A non-empty value already on the participant (e.g. written by the flow)
    /// is left alone; empty values may still be filled.
    KeepExisting,
}

/// How CRM data is mapped onto participant attributes.
///
/// `#[serde(default)]` lets a configuration file name only the settings it
/// changes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default)]
pub struct MergePolicy {
    /// Prepended to every attribute name attrsync writes from CRM data (e.g. "crm."). Not applied to `extra` attributes.
    pub prefix: String,
    /// Allow-list and rename: flattened CRM field name -> attribute name (without prefix). Empty = every field, under its flattened name.
    pub fields: BTreeMap<String, String>,
    /// Flattened CRM field names (or parent object names: "address" excludes "address_city") never written, never returned. Applied before `fields`.
    pub exclude: Vec<String>,
    pub overwrite: Overwrite,
    /// Values are cut to this many characters (chars, not bytes; never split a char). Genesys documents 256.
    pub max_value_chars: usize,
    /// Joins nested object keys / array indexes when flattening: {"address":{"city":"X"}} -> "address_city" with "_".
    pub flatten_separator: String,
    /// Attribute name (without prefix) that receives the sync time (RFC 3339 UTC, millisecond precision, "Z"), or None.
    pub timestamp_attribute: Option<String>,
    /// Attribute name (without prefix) set to "true"/"false" saying whether the CRM knew the caller, or None.
    pub found_attribute: Option<String>,
}

impl Default for MergePolicy {
    fn default() -> Self {
        Self {
            prefix: "crm.".to_owned(),
            fields: BTreeMap::new(),
            exclude: Vec::new(),
            overwrite: Overwrite::CrmWins,
            max_value_chars: 256,
            flatten_separator: "_".to_owned(),
            timestamp_attribute: Some("syncedAt".to_owned()),
            found_attribute: Some("found".to_owned()),
        }
    }
}

impl MergePolicy {
    /// True when `plan` needs the participant's current attributes read from Genesys (KeepExisting). With CrmWins, the caller may pass what it last wrote instead.
    pub fn needs_current_attributes(&self) -> bool {
        self.overwrite == Overwrite::KeepExisting
    }

    /// The CRM record as flat, capped strings under their mapped names WITHOUT prefix (what the synchronous lookup endpoint returns).
    ///
    /// When two fields end up under the same name (a top-level "a_b" next to
    /// a nested {"a":{"b":..}}, or two fields renamed to one attribute), the
    /// first one in key order wins, so the result never depends on anything
    /// but the inputs.
    pub fn mapped_fields(&self, record: &Map<String, Value>) -> Attributes {
        let mut flat = Attributes::new();
        for (key, value) in record {
            self.flatten_into(key.clone(), value, &mut flat);
        }

        let mut mapped = Attributes::new();
        if self.fields.is_empty() {
            for (name, value) in flat {
                mapped.insert(name, self.cap(&value));
            }
        } else {
            for (source, target) in &self.fields {
                if let Some(value) = flat.get(source) {
                    mapped
                        .entry(target.clone())
                        .or_insert_with(|| self.cap(value));
                }
            }
        }
        mapped
    }

    /// The full prefixed name of an attribute (prefix + name).
    pub fn attribute_name(&self, name: &str) -> String {
        format!("{}{}", self.prefix, name)
    }

    /// Exclusion is checked on every node's path, not on the final flat
    /// names, so "address" drops the nested object without also dropping an
    /// unrelated top-level field that happens to be called "address_line".
    fn flatten_into(&self, path: String, value: &Value, out: &mut Attributes) {
        if self.exclude.contains(&path) {
            return;
        }
        match value {
            Value::Null => {}
            Value::Bool(b) => insert_first(out, path, b.to_string()),
            Value::Number(n) => insert_first(out, path, n.to_string()),
            Value::String(s) => insert_first(out, path, s.clone()),
            Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    let child = format!("{path}{}{index}", self.flatten_separator);
                    self.flatten_into(child, item, out);
                }
            }
            Value::Object(map) => {
                for (key, item) in map {
                    let child = format!("{path}{}{key}", self.flatten_separator);
                    self.flatten_into(child, item, out);
                }
            }
        }
    }

    fn cap(&self, value: &str) -> String {
        cap_chars(value, self.max_value_chars)
    }
}

fn insert_first(out: &mut Attributes, name: String, value: String) {
    out.entry(name).or_insert(value);
}

/// Cuts on a char boundary: Genesys counts characters, and a split UTF-8
/// sequence would be rejected or stored as garbage.
fn cap_chars(value: &str, max_chars: usize) -> String {
    match value.char_indices().nth(max_chars) {
        Some((byte_index, _)) => value[..byte_index].to_owned(),
        None => value.to_owned(),
    }
}

/// The minimal patch: only keys whose value changes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Patch {
    pub attributes: Attributes,
}

impl Patch {
    pub fn is_empty(&self) -> bool {
        self.attributes.is_empty()
    }
}

/// record: Some(crm record) when the CRM found the caller, None when it did not.
/// extra: attributes supplied by the event itself (CTI middleware), written under their own names (no prefix), same overwrite rules, capped the same way.
/// current: the participant's current attributes as best known (read from Genesys, or what attrsync last wrote).
///
/// Names under attrsync's control take precedence on a clash: the found and
/// timestamp attributes beat a CRM field of the same name (attrsync's own
/// status must not be spoofed by CRM data), and CRM fields beat `extra`
/// attributes (the CRM is the system of record for the prefixed namespace).
pub fn plan(
    policy: &MergePolicy,
    record: Option<&Map<String, Value>>,
    extra: &Attributes,
    current: &Attributes,
    now: DateTime<Utc>,
) -> Patch {
    let timestamp_name = policy
        .timestamp_attribute
        .as_deref()
        .map(|name| policy.attribute_name(name));

    let found_name = policy
        .found_attribute
        .as_deref()
        .map(|name| policy.attribute_name(name));

    let mut desired = Attributes::new();
    if let Some(found) = &policy.found_attribute {
        let flag = if record.is_some() { "true" } else { "false" };
        desired.insert(policy.attribute_name(found), flag.to_owned());
    }
    if let Some(record) = record {
        for (name, value) in policy.mapped_fields(record) {
            desired.entry(policy.attribute_name(&name)).or_insert(value);
        }
    }
    for (name, value) in extra {
        desired
            .entry(name.clone())
            .or_insert_with(|| policy.cap(value));
    }
    // The timestamp is written only alongside a real change, so a CRM field
    // that maps onto its name must not sneak in as a change of its own.
    if let Some(name) = &timestamp_name {
        desired.remove(name);
    }

    let mut attributes: Attributes = desired
        .into_iter()
        .filter(|(name, value)| match current.get(name) {
            None => true,
            Some(existing) if existing == value => false,
            // attrsync's own status always tells the latest result, whatever the policy:
            // a caller first unknown and later found must not stay `found=false`.
            Some(_) if found_name.as_deref() == Some(name.as_str()) => true,
            Some(existing) => match policy.overwrite {
                Overwrite::CrmWins => true,
                Overwrite::KeepExisting => existing.is_empty(),
            },
        })
        .collect();

    if !attributes.is_empty() {
        if let Some(name) = timestamp_name {
            attributes.insert(name, now.to_rfc3339_opts(SecondsFormat::Millis, true));
        }
    }
    Patch { attributes }
}

#[cfg(test)]
mod tests {
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
}
