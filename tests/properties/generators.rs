//! The generators themselves: they must reach the accepting paths.

use super::*;
use crate::merge_plan::{arb_attributes, arb_policy, arb_record, now};

/// Draws `n` values from a strategy with a fixed seed.
pub(crate) fn draw<S: Strategy>(strategy: S, n: usize) -> Vec<S::Value> {
    let mut runner = TestRunner::deterministic();
    (0..n)
        .map(|_| {
            strategy
                .new_tree(&mut runner)
                .expect("the strategy generates")
                .current()
        })
        .collect()
}

/// A property that only ever sees rejected input proves nothing: the generators must reach the
/// accepting paths of every parser often enough (checked on a fixed seed, so never flaky).
#[test]
fn the_generators_reach_the_accepting_paths() {
    const N: usize = 128;
    let us = country::Id::US;
    let percent = |hits: usize| hits * 100 / N;

    let starts = draw(arb_mutated_sample(), N)
        .iter()
        .filter(|v| {
            matches!(
                parse_genesys_event(v, us),
                Ok(GenesysEvent::CustomerStart(_))
            )
        })
        .count();
    let with_phone = draw(arb_sample_with_customer_fields(), N)
        .iter()
        .filter(|v| {
            matches!(parse_genesys_event(v, us), Ok(GenesysEvent::CustomerStart(e)) if e.keys.phone.is_some())
        })
        .count();
    let cti = draw(arb_request_object(CTI_FIELDS, true), N)
        .into_iter()
        .filter(|v| {
            serde_json::from_value::<CtiEvent>(v.clone())
                .is_ok_and(|e| e.validate(us).is_ok_and(|v| !v.attributes.is_empty()))
        })
        .count();
    let lookups = draw(arb_request_object(LOOKUP_FIELDS, false), N)
        .into_iter()
        .filter(|v| {
            serde_json::from_value::<LookupRequest>(v.clone()).is_ok_and(|r| r.validate(us).is_ok())
        })
        .count();
    let e164 = draw(arb_phone_text(), N)
        .iter()
        .filter(|raw| CallerNumber::parse(raw, us).is_some_and(|n| n.e164().is_some()))
        .count();
    let kept = draw(
        (
            arb_policy(),
            arb_record(),
            arb_attributes(),
            arb_attributes(),
        ),
        N,
    )
    .into_iter()
    .filter(|(policy, record, extra, current)| {
        policy.overwrite == Overwrite::KeepExisting
            && current.values().any(|v| !v.is_empty())
            && !plan(policy, record.as_ref(), extra, current, now()).is_empty()
    })
    .count();

    let seen = [
        ("customer.start from the mutated sample", percent(starts)),
        ("customer.start with a phone key", percent(with_phone)),
        ("CTI events accepted with attributes", percent(cti)),
        ("lookups accepted", percent(lookups)),
        ("caller numbers with an E.164 form", percent(e164)),
        ("KeepExisting patches over existing values", percent(kept)),
    ];
    println!("{seen:#?}");
    for (what, pct) in seen {
        assert!(pct >= 5, "only {pct}% of generated inputs give {what}");
    }
}
