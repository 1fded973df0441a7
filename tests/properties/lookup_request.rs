//! Data-action lookup validation (fuzz target `lookup_request`).

use super::*;

pub(crate) fn check_lookup(value: Value, region: country::Id) -> Result<(), TestCaseError> {
    let bytes = serde_json::to_vec(&value).expect("a Value always serialises");
    let Ok(request) = serde_json::from_slice::<LookupRequest>(&bytes) else {
        return Ok(());
    };
    let Ok(valid) = request.validate(region) else {
        return Ok(());
    };
    if let Some(c) = &valid.conversation_id {
        prop_assert!(is_safe_id(c.as_str()), "{c:?}");
    }
    if let Some(p) = &valid.participant_id {
        prop_assert!(is_safe_id(p.as_str()), "{p:?}");
        prop_assert!(valid.conversation_id.is_some());
    }
    // Nothing to look up by is valid (a withheld caller): answered found=false, reason=no_key.
    if let Some(phone) = &valid.keys.phone {
        exercise(phone);
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn lookup_requests_never_panic_on_arbitrary_json_and_accepted_ids_are_path_safe(
        value in arb_json(),
        region in arb_region(),
    ) {
        check_lookup(value, region)?;
    }

    #[test]
    fn lookup_shaped_requests_never_panic_and_accepted_ids_are_path_safe(
        value in arb_request_object(LOOKUP_FIELDS, false),
        region in arb_region(),
    ) {
        check_lookup(value, region)?;
    }
}
