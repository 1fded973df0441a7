//! CTI event validation (fuzz target `cti_event`).

use super::*;

pub(crate) fn check_cti(value: Value, region: country::Id) -> Result<(), TestCaseError> {
    // Through bytes, as the HTTP extractor reads them.
    let bytes = serde_json::to_vec(&value).expect("a Value always serialises");
    let Ok(event) = serde_json::from_slice::<CtiEvent>(&bytes) else {
        return Ok(());
    };
    let Ok(valid) = event.validate(region) else {
        return Ok(());
    };
    prop_assert!(
        is_safe_id(valid.event.conversation_id.as_str()),
        "{:?}",
        valid.event.conversation_id
    );
    if let Some(p) = &valid.event.participant_id {
        prop_assert!(is_safe_id(p.as_str()), "{p:?}");
    }
    prop_assert!(!valid.event.event_id.trim().is_empty());
    prop_assert!(valid.event.event_id.chars().count() <= 128);
    prop_assert!(valid.attributes.len() <= 50);
    for (key, value) in &valid.attributes {
        prop_assert!(
            !key.trim().is_empty() && key.chars().count() <= 128,
            "{key:?}"
        );
        prop_assert!(!key.chars().any(char::is_control), "{key:?}");
        prop_assert!(value.chars().count() <= 256);
    }
    if let Some(phone) = &valid.event.keys.phone {
        exercise(phone);
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn cti_events_never_panic_on_arbitrary_json_and_accepted_ids_are_path_safe(
        value in arb_json(),
        region in arb_region(),
    ) {
        check_cti(value, region)?;
    }

    #[test]
    fn cti_shaped_events_never_panic_and_accepted_ids_are_path_safe(
        value in arb_request_object(CTI_FIELDS, true),
        region in arb_region(),
    ) {
        check_cti(value, region)?;
    }
}
