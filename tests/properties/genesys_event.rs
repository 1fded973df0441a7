//! `ingest::parse_genesys_event` (fuzz target `genesys_event`).

use super::*;

proptest! {
    #![proptest_config(config())]

    #[test]
    fn parse_genesys_event_never_panics_on_arbitrary_json(
        value in arb_json(),
        region in arb_region(),
    ) {
        check_genesys_event(&value, region)?;
    }

    #[test]
    fn parse_genesys_event_never_panics_on_a_mutated_official_sample(
        value in arb_mutated_sample(),
        region in arb_region(),
    ) {
        check_genesys_event(&value, region)?;
    }

    #[test]
    fn parse_genesys_event_never_panics_on_the_sample_with_arbitrary_customer_fields(
        value in arb_sample_with_customer_fields(),
        region in arb_region(),
    ) {
        check_genesys_event(&value, region)?;
    }
}
