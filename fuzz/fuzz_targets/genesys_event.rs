//! Any bytes POSTed to `/v1/events/genesys`: JSON parsing, then `parse_genesys_event`. An
//! accepted `customer.start` must carry path-safe ids and a non-blank event id.
#![no_main]

mod common;

use attrsync::ingest::{parse_genesys_event, GenesysEvent};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Ok(GenesysEvent::CustomerStart(event)) =
        parse_genesys_event(&value, common::region_for(data))
    {
        common::check_ids(Some(&event.conversation_id), event.participant_id.as_ref());
        assert!(!event.event_id.trim().is_empty(), "blank event id");
        common::check_keys(&event.keys);
    }
});
