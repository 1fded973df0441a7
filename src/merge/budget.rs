//! The attribute budget: how many attributes, and how many bytes of PATCH body, attrsync may
//! write on one participant, and which survive when a CRM record offers more.
//!
//! Genesys publishes no limit for the REST PATCH; the only documented figures are for bot flows:
//! at most 50 attributes and values of 256 characters (jp-help.mypurecloud.com/articles/
//! set-participant-data-action/). So `merge.max_attributes` defaults to 50, and
//! `merge.max_patch_bytes` to 16 KiB, well under the 512000-byte request limit secondary sources
//! quote (unverified). A wide record is then written cut to the budget instead of being refused
//! with a 400 and dead-lettered.
//!
//! Survivors are chosen by rank, never by chance: attrsync's own status attributes (`found`,
//! the timestamp) first, then the Conversation Details keys (`merge.details_fields`), then the
//! `merge.fields` targets in the order of that table, then every other name in name order.

use super::Attributes;

/// What one attribute costs in the PATCH body: `"name":"value",` with JSON escaping.
pub fn attribute_bytes(name: &str, value: &str) -> usize {
    json_string_len(name) + json_string_len(value) + 2
}

/// `{"attributes":{}}`.
pub const ENVELOPE_BYTES: usize = 17;

fn json_string_len(text: &str) -> usize {
    serde_json::to_string(text).map_or(text.len() + 2, |s| s.len())
}

/// The limits; 0 means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub max_attributes: usize,
    pub max_patch_bytes: usize,
}

/// What did not fit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dropped {
    /// The names left out, in name order (names only: values are CRM data).
    pub names: Vec<String>,
}

/// Keeps the best-ranked attributes of `desired` that fit `budget` after `reserved` (the
/// attributes written beside them, such as the timestamp: their count and bytes come off the
/// budget first). `rank` orders names, lower first; ties go by name. Rank 0 (attrsync's own
/// status) is always kept: a flow must learn `found` whatever the budget.
pub fn fit(
    desired: Attributes,
    reserved: &[(&str, usize)],
    budget: Budget,
    rank: impl Fn(&str) -> (u8, usize),
) -> (Attributes, Dropped) {
    let unlimited = |limit: usize| if limit == 0 { usize::MAX } else { limit };
    let max_count = unlimited(budget.max_attributes);
    let max_bytes = unlimited(budget.max_patch_bytes);
    let mut count = reserved.len();
    let mut bytes = ENVELOPE_BYTES
        + reserved
            .iter()
            .map(|(name, value_chars)| json_string_len(name) + value_chars + 4)
            .sum::<usize>();
    let mut ranked: Vec<(String, String)> = desired.into_iter().collect();
    ranked.sort_by(|(a, _), (b, _)| rank(a).cmp(&rank(b)).then_with(|| a.cmp(b)));
    let mut kept = Attributes::new();
    let mut dropped = Dropped::default();
    for (name, value) in ranked {
        let cost = attribute_bytes(&name, &value);
        let status = rank(&name).0 == 0;
        if status || (count < max_count && bytes.saturating_add(cost) <= max_bytes) {
            count += 1;
            bytes += cost;
            kept.insert(name, value);
        } else {
            dropped.names.push(name);
        }
    }
    dropped.names.sort();
    (kept, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wide(n: usize, value: &str) -> Attributes {
        (0..n)
            .map(|i| (format!("crm.f{i:03}"), value.to_owned()))
            .collect()
    }

    /// No status attribute among them: every name ranks alike.
    fn by_name(_: &str) -> (u8, usize) {
        (3, 0)
    }

    #[test]
    fn at_most_max_attributes_survive_and_the_rest_are_named() {
        let budget = Budget {
            max_attributes: 50,
            max_patch_bytes: 0,
        };
        let (kept, dropped) = fit(wide(500, "v"), &[], budget, by_name);
        assert_eq!(kept.len(), 50);
        assert_eq!(dropped.names.len(), 450);
        assert!(kept.contains_key("crm.f000") && kept.contains_key("crm.f049"));
        assert_eq!(dropped.names[0], "crm.f050");
    }

    #[test]
    fn the_byte_budget_holds_the_whole_body_including_what_is_reserved() {
        let budget = Budget {
            max_attributes: 0,
            max_patch_bytes: 2048,
        };
        let value = "x".repeat(256);
        let (kept, _) = fit(wide(500, &value), &[("crm.syncedAt", 24)], budget, by_name);
        let body = serde_json::to_string(&serde_json::json!({"attributes": kept})).unwrap();
        assert!(body.len() + 40 <= 2048, "{}", body.len());
        assert!(!kept.is_empty());
    }

    #[test]
    fn a_better_rank_survives_whatever_its_name() {
        let budget = Budget {
            max_attributes: 2,
            max_patch_bytes: 0,
        };
        let rank = |name: &str| if name == "crm.zzz" { (1, 0) } else { (2, 0) };
        let mut desired = wide(5, "v");
        desired.insert("crm.zzz".into(), "v".into());
        let (kept, _) = fit(desired, &[], budget, rank);
        assert_eq!(kept.keys().collect::<Vec<_>>(), ["crm.f000", "crm.zzz"]);
    }

    #[test]
    fn zero_means_no_limit() {
        let budget = Budget {
            max_attributes: 0,
            max_patch_bytes: 0,
        };
        let (kept, dropped) = fit(wide(500, "v"), &[], budget, by_name);
        assert_eq!(kept.len(), 500);
        assert!(dropped.names.is_empty());
    }
}
