//! Any bytes POSTed to `/v1/lookup` by a data action: `LookupRequest` deserialisation, then
//! `validate`. An accepted request has path-safe ids and something to look up.
#![no_main]

mod common;

use attrsync::ingest::LookupRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = serde_json::from_slice::<LookupRequest>(data) else {
        return;
    };
    let Ok(valid) = request.validate(common::region_for(data)) else {
        return;
    };
    common::check_ids(
        valid.conversation_id.as_ref(),
        valid.participant_id.as_ref(),
    );
    assert!(
        valid.participant_id.is_none() || valid.conversation_id.is_some(),
        "a participant without a conversation"
    );
    assert!(
        !valid.keys.is_empty() || valid.conversation_id.is_some(),
        "nothing to look up"
    );
    common::check_keys(&valid.keys);
});
