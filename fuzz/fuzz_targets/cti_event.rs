//! Any bytes POSTed to `/v1/events/cti`: `CtiEvent` deserialisation, then `validate`. An
//! accepted event must carry path-safe ids and attributes within Genesys's limits.
#![no_main]

mod common;

use attrsync::ingest::{
    CtiEvent, MAX_ATTRIBUTE_KEY_CHARS, MAX_ATTRIBUTE_VALUE_CHARS, MAX_EXTRA_ATTRIBUTES,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(event) = serde_json::from_slice::<CtiEvent>(data) else {
        return;
    };
    let Ok(valid) = event.validate(common::region_for(data)) else {
        return;
    };
    common::check_ids(
        Some(&valid.event.conversation_id),
        valid.event.participant_id.as_ref(),
    );
    assert!(!valid.event.event_id.trim().is_empty(), "blank event id");
    assert!(valid.attributes.len() <= MAX_EXTRA_ATTRIBUTES);
    for (key, value) in &valid.attributes {
        assert!(!key.trim().is_empty(), "blank attribute key");
        assert!(key.chars().count() <= MAX_ATTRIBUTE_KEY_CHARS);
        assert!(
            !key.chars().any(char::is_control),
            "control character in {key:?}"
        );
        assert!(value.chars().count() <= MAX_ATTRIBUTE_VALUE_CHARS);
    }
    common::check_keys(&valid.event.keys);
});
