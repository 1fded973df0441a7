//! Helpers shared by the fuzz targets: choosing a phone region and the invariants every
//! accepted input must keep. Not a target itself (it is no `[[bin]]`).

#![allow(dead_code)]

use attrsync::domain::{ConversationId, CustomerKeys, ParticipantId};
use attrsync::phone::{parse_region, CallerNumber, Notation};
use phonenumber::country;

pub const ALL_NOTATIONS: [Notation; 6] = Notation::ALL;

/// Regions with varied numbering plans, for targets whose input is JSON text (so no input
/// byte can be spent on the region): the input's length picks one.
const REGIONS: [&str; 8] = ["US", "GB", "DE", "IT", "BR", "IN", "AU", "JP"];

pub fn region_for(data: &[u8]) -> country::Id {
    parse_region(REGIONS[data.len() % REGIONS.len()]).expect("a valid region")
}

/// Any ISO 3166 code from two arbitrary bytes; the US when they name no region.
pub fn region_from(code: [u8; 2]) -> country::Id {
    let letters: String = code.iter().map(|b| char::from(b'A' + b % 26)).collect();
    parse_region(&letters).unwrap_or(country::Id::US)
}

/// An id attrsync accepted must be safe to put in a Genesys URL path as it is.
pub fn assert_safe_id(id: &str) {
    assert!(
        !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "accepted an unsafe id {id:?}"
    );
}

pub fn check_ids(conversation_id: Option<&ConversationId>, participant_id: Option<&ParticipantId>) {
    if let Some(c) = conversation_id {
        assert_safe_id(c.as_str());
    }
    if let Some(p) = participant_id {
        assert_safe_id(p.as_str());
    }
}

/// `+` followed by at least one ASCII digit, nothing else.
pub fn is_e164(s: &str) -> bool {
    s.strip_prefix('+')
        .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
}

/// Calls every accessor of a parsed number (none may panic) and checks its invariants.
pub fn exercise(number: &CallerNumber) {
    let _ = number.raw();
    if let Some(ext) = number.extension() {
        assert!(
            !ext.is_empty() && ext.bytes().all(|b| b.is_ascii_digit()),
            "extension {ext:?}"
        );
    }
    if let Some(e164) = number.e164() {
        assert!(is_e164(&e164), "e164 {e164:?}");
    }
    assert!(!number.canonical().is_empty());
    let _ = number.notations(&ALL_NOTATIONS);
    for notation in ALL_NOTATIONS {
        let _ = number.notation(notation);
    }
    let _ = format!("{number:?}");
}

pub fn check_keys(keys: &CustomerKeys) {
    if let Some(phone) = &keys.phone {
        exercise(phone);
    }
}
