//! Caller numbers, `CallerNumber::parse` and its notations (fuzz target `caller_number`).

use super::*;

pub(crate) fn is_e164(s: &str) -> bool {
    s.strip_prefix('+')
        .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn caller_number_parse_never_panics_on_arbitrary_strings(
        raw in prop_oneof![
            any::<String>(),
            arb_phone_text(),
            // Huge digit runs, with and without a scheme.
            "(tel:|sip:)?\\+?[0-9]{100,5000}",
            // Non-ASCII digits and look-alikes only.
            "[٠-٩۰-۹०-९０-９⁰-⁹₀-₉ ]{0,30}",
        ],
        region in arb_region(),
    ) {
        if let Some(number) = CallerNumber::parse(&raw, region) {
            exercise(&number);
            prop_assert_eq!(number.raw(), raw.trim());
            prop_assert!(raw.bytes().any(|b| b.is_ascii_digit()));
            prop_assert!(!number.canonical().is_empty());
            if let Some(ext) = number.extension() {
                prop_assert!(!ext.is_empty() && ext.bytes().all(|b| b.is_ascii_digit()), "{ext:?}");
            }
            if let Some(e164) = number.e164() {
                prop_assert!(is_e164(&e164), "{raw:?} -> {e164:?}");
            }
        }
    }

    #[test]
    fn a_plus_and_ascii_digits_always_parse_and_any_e164_is_plus_and_digits(
        digits in prop_oneof![4 => "[0-9]{1,20}", 1 => "[0-9]{21,200}"],
        scheme in select(&["", "tel:", "sip:", "sips:"][..]),
        region in arb_region(),
    ) {
        let raw = format!("{scheme}+{digits}");
        let number = CallerNumber::parse(&raw, region);
        prop_assert!(number.is_some(), "{raw:?} gave None");
        let number = number.expect("checked above");
        exercise(&number);
        if let Some(e164) = number.e164() {
            prop_assert!(is_e164(&e164), "{raw:?} -> {e164:?}");
            prop_assert_eq!(number.canonical(), e164);
        } else {
            prop_assert_eq!(number.canonical(), format!("+{digits}"));
        }
        prop_assert!(number.canonical().starts_with('+'));
        prop_assert!(number.notation(Notation::E164).starts_with('+'));
        for notation in [Notation::E164Digits, Notation::NationalDigits] {
            let text = number.notation(notation);
            prop_assert!(
                text.bytes().all(|b| b.is_ascii_digit() || b == b'+'),
                "{notation:?}: {text:?}"
            );
        }
    }
}

// Bugs these properties found (fixed in src/phone.rs); the tests keep them fixed.

/// Real numbers of other countries whose national number starts with '1', as libphonenumber
/// itself formats them in E.164.
pub(crate) const E164_NUMBERS_STARTING_WITH_1: &[&str] = &[
    "+4915112345678", // German mobile (0151 ...)
    "+491701234567",  // German mobile (0170 ...)
    "+441174960000",  // Bristol
    "+33142685300",   // Paris
    "+8613812345678", // Chinese mobile
];

/// phonenumber 0.3.10's `parse(Some(region), "+49...")` strips the *default region's* national
/// prefix from the national number even though the '+' gave another country code: with the US
/// default ("1"), "+4915112345678" becomes the valid but different "+495112345678" (a Hannover
/// landline), so the CRM is asked about someone else. libphonenumber ignores the default region
/// for a number with '+'; `phonenumber::parse(None, ..)` does so too.
#[test]
fn an_e164_caller_number_keeps_its_digits_whatever_the_default_region() {
    for &e164 in E164_NUMBERS_STARTING_WITH_1 {
        for region in [
            country::Id::US,
            country::Id::GB,
            country::Id::DE,
            country::Id::FR,
        ] {
            let number = CallerNumber::parse(e164, region).expect("digits");
            assert_eq!(
                number.e164().as_deref(),
                Some(e164),
                "{e164} under {region:?}"
            );
            assert_eq!(number.canonical(), e164, "{e164} under {region:?}");
        }
    }
}

proptest! {
    #![proptest_config(config())]

    /// The general form of the bug above: a number given with '+' and its country code means the
    /// same number whatever the configured default region.
    #[test]
    fn an_e164_caller_number_does_not_depend_on_the_default_region(
        digits in "[1-9][0-9]{6,14}",
        first in arb_region(),
        second in arb_region(),
    ) {
        let raw = format!("+{digits}");
        let a = CallerNumber::parse(&raw, first).expect("digits");
        let b = CallerNumber::parse(&raw, second).expect("digits");
        prop_assert_eq!(a.e164(), b.e164(), "{} under {:?} and {:?}", raw, first, second);
    }
}

/// `is_possible_length` reads `descriptors().general().possible_length()`, which is empty for
/// every country in phonenumber 0.3.10's metadata (the lengths are on the fixed-line, mobile, ...
/// descriptors), so the "at least of a possible length" fallback documented on `CallerNumber`
/// never applies: a NANP number in a range the metadata does not list as valid gets no E.164.
#[test]
fn a_number_of_a_possible_length_gets_an_e164_form() {
    for raw in ["+15551234567", "5551234567", "tel:+1-555-123-4567"] {
        let number = CallerNumber::parse(raw, country::Id::US).expect("digits");
        assert_eq!(number.e164().as_deref(), Some("+15551234567"), "{raw}");
    }
}
