//! The merge policy: how a CRM record (and attributes supplied by the event)
//! become the minimal participant-attribute patch for a live conversation.
//!
//! Everything here is pure: no I/O, no clock (the caller passes `now`), so the
//! same inputs always give the same patch and the policy can be tested
//! exhaustively without Genesys or a CRM.

pub mod budget;
pub mod details;

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

use budget::Budget;

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
    /// At most this many attributes per participant (0 = no limit); see `budget`.
    pub max_attributes: usize,
    /// At most this many bytes of PATCH body per participant (0 = no limit); see `budget`.
    pub max_patch_bytes: usize,
    /// Flattened CRM field -> label: also written as `conversationDetails.participantData.<label>`
    /// (see `details`). Applied after `exclude`, independently of `fields`.
    pub details_fields: BTreeMap<String, String>,
    /// Flattened CRM field -> the value-type prefix of its Conversation Details key (`number`, ...).
    pub details_types: BTreeMap<String, String>,
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
            max_attributes: 50,
            max_patch_bytes: 16 * 1024,
            details_fields: BTreeMap::new(),
            details_types: BTreeMap::new(),
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
        let flat = self.flat(record);

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

    /// The record flattened (nested names joined with the separator), `exclude` applied.
    fn flat(&self, record: &Map<String, Value>) -> Attributes {
        let mut flat = Attributes::new();
        for (key, value) in record {
            self.flatten_into(key.clone(), value, &mut flat);
        }
        flat
    }

    fn budget(&self) -> Budget {
        Budget {
            max_attributes: self.max_attributes,
            max_patch_bytes: self.max_patch_bytes,
        }
    }

    /// The survivor rank of an attribute name (lower survives first): attrsync's status, the
    /// Conversation Details keys, the `fields` targets in table order, then the rest.
    fn rank(&self, name: &str, status: &[&str]) -> (u8, usize) {
        if status.contains(&name) {
            return (0, 0);
        }
        if name.starts_with(details::PREFIX) {
            return (1, 0);
        }
        match self
            .fields
            .values()
            .position(|target| self.attribute_name(target) == name)
        {
            Some(index) => (2, index),
            None => (3, 0),
        }
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
    /// Attributes attrsync would have written but the budget left out, by name only.
    pub dropped: Vec<String>,
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
        if !policy.details_fields.is_empty() {
            let shown = details::attributes(
                &policy.details_fields,
                &policy.details_types,
                &policy.flat(record),
                |v| policy.cap(v),
            );
            for (name, value) in shown {
                desired.entry(name).or_insert(value);
            }
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
    // The budget is applied to everything attrsync wants on the participant, not to the patch,
    // so which attributes survive depends on the inputs only and a second run stays empty.
    let reserved: Vec<(&str, usize)> = timestamp_name
        .as_deref()
        .map(|name| (name, TIMESTAMP_CHARS))
        .into_iter()
        .collect();
    let status: Vec<&str> = found_name.as_deref().into_iter().collect();
    let (desired, dropped) = budget::fit(desired, &reserved, policy.budget(), |name| {
        policy.rank(name, &status)
    });

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
    Patch {
        attributes,
        dropped: dropped.names,
    }
}

/// `2024-05-17T09:30:15.123Z`.
const TIMESTAMP_CHARS: usize = 24;

#[cfg(test)]
mod tests;
