//! Grading: how well a stored value matches the customer key, as pure functions every adapter
//! uses to check what its vendor returned. Vendors search fuzzily (SOSL tokenises, Zendesk
//! wildcards, HubSpot standardises to the area code and local number), so a record is kept only
//! when one of the fields searched really holds the key: [`grade_records`] drops (and counts,
//! never logging a value) every record that does not, so a fuzzy hit never puts a stranger in
//! the conversation.
//!
//! Phone grades ([`grade_phone`]): `exact` is the same E.164 number with the country on both
//! sides (a `+`, `00` or the region's international prefix in the stored text, and in the
//! caller number); `national` is the same national number with the country unknown on one side
//! (`(317) 555-0125` stored, `+13175550125` calling); `partial` is one side's national digits
//! ending the other's, at least 7 of them (a local number, a dial prefix). Two numbers that
//! are each valid where they stand and differ are no match, even if their last digits agree.

use phonenumber::country;
use phonenumber::metadata::DATABASE;
use serde_json::Value;

use super::candidate::{parse_last_modified, Candidate, MatchQuality};
use super::vendor::VendorRecord;
use super::{CrmRecord, CustomerKey};
use crate::domain::KeyKind;
use crate::metrics;
use crate::phone::{CallerNumber, Notation};

/// A partial match needs at least this many digits in common: fewer would match strangers.
pub const PARTIAL_MIN_DIGITS: usize = 7;

/// `reason` of `attrsync_crm_candidates_dropped_total`: the record's fields do not hold the key.
pub const NOT_MATCHING: &str = "not_matching";
/// `reason` of `attrsync_crm_candidates_dropped_total`: graded below `crm.min_match_quality`.
pub const BELOW_MINIMUM: &str = "below_minimum";
/// Every `reason` of `attrsync_crm_candidates_dropped_total`.
pub const DROP_REASONS: [&str; 2] = [NOT_MATCHING, BELOW_MINIMUM];

/// How well the phone number `stored` (as a CRM holds it) matches the caller number `key`;
/// `region` is `phone.default_region`, for stored numbers without a country code.
pub fn grade_phone(key: &CallerNumber, stored: &str, region: country::Id) -> Option<MatchQuality> {
    let k = Side::of(key.raw(), region, Some(key))?;
    let s = Side::of(stored, region, None)?;
    if let (Some(ke), Some(se)) = (&k.e164, &s.e164) {
        if ke == se {
            return Some(if k.explicit && s.explicit {
                MatchQuality::Exact
            } else {
                MatchQuality::National
            });
        }
        if k.valid && s.valid {
            // Two numbers, each valid where it stands, that differ: whatever their last digits.
            return None;
        }
    }
    if k.explicit && s.explicit {
        // One side could not be parsed: the country-and-number digits must agree.
        return (k.international == s.international).then_some(MatchQuality::Exact);
    }
    if (!s.explicit && k.national_forms().contains(&s.digits.as_str()))
        || (!k.explicit && s.national_forms().contains(&k.digits.as_str()))
    {
        return Some(MatchQuality::National);
    }
    let (a, b) = (k.national(), s.national());
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    (short.len() >= PARTIAL_MIN_DIGITS && long.ends_with(short)).then_some(MatchQuality::Partial)
}

/// Ids are compared exactly (trimmed); emails trimmed and case-insensitively. Both are `exact`
/// or nothing.
pub fn grade_exact_text(kind: KeyKind, key: &str, stored: &str) -> Option<MatchQuality> {
    let (key, stored) = (key.trim(), stored.trim());
    let same = if kind == KeyKind::Email {
        key.eq_ignore_ascii_case(stored) || key.to_lowercase() == stored.to_lowercase()
    } else {
        key == stored
    };
    (same && !key.is_empty()).then_some(MatchQuality::Exact)
}

/// The grade of one stored text against `key`, whatever its kind.
pub fn grade(key: &CustomerKey, stored: &str, region: country::Id) -> Option<MatchQuality> {
    match key {
        CustomerKey::Phone(number) => grade_phone(number, stored, region),
        // A messaging id is `exact` only on exact (trimmed) equality, like an id.
        CustomerKey::Email(v)
        | CustomerKey::CustomerId(v)
        | CustomerKey::ExternalContactId(v)
        | CustomerKey::MessagingId(v) => grade_exact_text(key.kind(), v, stored),
    }
}

/// The best-matching field of `fields` among `searched` (top-level names, or JSON pointers
/// starting with `/`; a field holding an array is graded element by element), and its grade.
/// On a tie the field listed first wins.
pub fn best_match(
    key: &CustomerKey,
    fields: &CrmRecord,
    searched: &[impl AsRef<str>],
    region: country::Id,
) -> Option<(String, MatchQuality)> {
    let mut best: Option<(String, MatchQuality)> = None;
    for name in searched {
        let name = name.as_ref();
        let Some(value) = value_at(fields, name) else {
            continue;
        };
        let quality = texts(value)
            .iter()
            .filter_map(|text| grade(key, text, region))
            .max();
        if let Some(q) = quality {
            if best.as_ref().is_none_or(|(_, b)| q > *b) {
                best = Some((name.to_owned(), q));
            }
        }
    }
    best
}

/// The vendor's records for `key` as candidates: each graded on `searched` (see
/// [`best_match`]); those that do not match are dropped and counted in
/// `attrsync_crm_candidates_dropped_total{reason="not_matching"}`.
pub fn grade_records(
    source: &'static str,
    key: &CustomerKey,
    records: Vec<VendorRecord>,
    searched: &[impl AsRef<str>],
    region: country::Id,
) -> Vec<Candidate> {
    let returned = records.len();
    let kept: Vec<Candidate> = records
        .into_iter()
        .filter_map(|r| {
            let (matched_field, quality) = best_match(key, &r.fields, searched, region)?;
            Some(Candidate {
                source,
                record_type: r.record_type,
                record_id: r.record_id,
                matched_field,
                quality,
                last_modified: r.last_modified.as_deref().and_then(parse_last_modified),
                fields: r.fields,
            })
        })
        .collect();
    count_dropped(source, NOT_MATCHING, returned - kept.len());
    kept
}

/// Counts `n` records of `source` dropped for `reason` (`not_matching`, `below_minimum`).
pub fn count_dropped(source: &'static str, reason: &'static str, n: usize) {
    if n > 0 {
        ::metrics::counter!(metrics::CANDIDATES_DROPPED, "source" => source, "reason" => reason)
            .increment(n as u64);
        tracing::debug!(source, reason, dropped = n, "CRM records dropped");
    }
}

/// The value of a top-level field, or at a JSON pointer (`/contact/phone`).
pub fn value_at<'a>(fields: &'a CrmRecord, name: &str) -> Option<&'a Value> {
    let Some(pointer) = name.strip_prefix('/') else {
        return fields.get(name);
    };
    let (first, rest) = match pointer.split_once('/') {
        Some((first, rest)) => (first, format!("/{rest}")),
        None => (pointer, String::new()),
    };
    let first = first.replace("~1", "/").replace("~0", "~");
    fields.get(&first)?.pointer(&rest)
}

/// The texts a value offers for grading: a string or number, or those in an array.
fn texts(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Number(n) => vec![n.to_string()],
        Value::Array(items) => items
            .iter()
            .filter_map(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// One side of a phone comparison.
struct Side {
    /// The digits as written (extension and scheme cut off).
    digits: String,
    /// The text names its country: a `+`, or the region's international prefix.
    explicit: bool,
    /// Country code and number, for an explicit side (what follows the `+` or prefix).
    international: String,
    e164: Option<String>,
    /// `e164` is a valid number (not just one of a possible length, like a 7-digit local one).
    valid: bool,
    /// National significant number (E.164 without the country code).
    nsn: Option<String>,
    /// The national notation's digits, trunk prefix kept (`02079460018`).
    national_digits: Option<String>,
}

impl Side {
    /// `parsed` is the caller number when this is the key's side (parsed once already).
    fn of(text: &str, region: country::Id, parsed: Option<&CallerNumber>) -> Option<Side> {
        let line = number_part(text);
        let digits: String = line.chars().filter(char::is_ascii_digit).collect();
        if digits.is_empty() {
            return None;
        }
        let owned;
        let number = match parsed {
            Some(n) => n,
            None => {
                owned = CallerNumber::parse(line, region)?;
                &owned
            }
        };
        let plus = line.trim_start_matches(['(', ' ']).starts_with('+');
        let idd = if plus { 0 } else { idd_length(&digits, region) };
        let e164 = number.e164();
        let (nsn, valid) = e164
            .as_deref()
            .and_then(national_significant)
            .map_or((None, false), |(nsn, valid)| (Some(nsn), valid));
        Some(Side {
            explicit: plus || idd > 0,
            international: digits[idd..].to_owned(),
            national_digits: e164
                .is_some()
                .then(|| number.notation(Notation::NationalDigits)),
            digits,
            e164,
            valid,
            nsn,
        })
    }

    /// The national forms the other side's country-less digits may equal.
    fn national_forms(&self) -> Vec<&str> {
        match (&self.nsn, &self.national_digits) {
            (Some(nsn), Some(national)) => vec![nsn.as_str(), national.as_str()],
            (Some(nsn), None) => vec![nsn.as_str()],
            _ => vec![self.international.as_str()],
        }
    }

    /// The national digits compared for a partial match.
    fn national(&self) -> &str {
        self.nsn.as_deref().unwrap_or(&self.international)
    }
}

/// The part of a text that is the number: inside `<...>` of a SIP name-addr, without a
/// `tel:`/`sip:` scheme, a SIP host, URI parameters, or an extension (`x12`, `ext. 12`, `#12`).
fn number_part(text: &str) -> &str {
    let mut rest = text.trim();
    if let (Some(open), Some(close)) = (rest.find('<'), rest.rfind('>')) {
        if open < close {
            rest = &rest[open + 1..close];
        }
    }
    for scheme in ["tel:", "sips:", "sip:"] {
        if rest
            .get(..scheme.len())
            .is_some_and(|h| h.eq_ignore_ascii_case(scheme))
        {
            rest = &rest[scheme.len()..];
            break;
        }
    }
    let end = rest
        .find(|c: char| c.is_alphabetic() || matches!(c, '@' | ';' | '?' | '#' | ','))
        .unwrap_or(rest.len());
    rest[..end].trim()
}

/// How many leading digits are the region's international (IDD) prefix (`011` in the US, `00`
/// in most of the world), 0 if none.
fn idd_length(digits: &str, region: country::Id) -> usize {
    match DATABASE
        .by_id(region.as_ref())
        .and_then(|meta| meta.international_prefix())
    {
        Some(prefix) => prefix
            .find(digits)
            .filter(|m| m.start() == 0)
            .map_or(0, |m| m.end()),
        // No IDD in the metadata: `00` is the ITU recommendation.
        None if digits.starts_with("00") => 2,
        None => 0,
    }
}

/// The E.164 number without `+` and country code, and whether it is a valid number.
fn national_significant(e164: &str) -> Option<(String, bool)> {
    let parsed = std::panic::catch_unwind(|| phonenumber::parse(None, e164))
        .ok()?
        .ok()?;
    let valid = std::panic::catch_unwind(|| phonenumber::is_valid(&parsed)).unwrap_or(false);
    let code = parsed.code().value().to_string();
    let nsn = e164.strip_prefix('+')?.strip_prefix(code.as_str())?;
    Some((nsn.to_owned(), valid))
}

#[cfg(test)]
mod tests;
