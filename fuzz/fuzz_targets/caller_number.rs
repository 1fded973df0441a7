//! `CallerNumber::parse` on any text in any region: it must never panic, return a number only
//! when the text has an ASCII digit, and every notation of what it returns must be computable.
#![no_main]

mod common;

use arbitrary::Arbitrary;
use attrsync::phone::{CallerNumber, Notation};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    region: [u8; 2],
    raw: String,
}

fuzz_target!(|input: Input| {
    let region = common::region_from(input.region);
    let raw = input.raw.as_str();
    match CallerNumber::parse(raw, region) {
        Some(number) => {
            assert!(
                raw.bytes().any(|b| b.is_ascii_digit()),
                "a number from no digit"
            );
            assert_eq!(number.raw(), raw.trim());
            common::exercise(&number);
            if common::is_e164(raw) {
                assert!(number.canonical().starts_with('+'));
                assert!(number.notation(Notation::E164).starts_with('+'));
            }
        }
        None => assert!(!common::is_e164(raw), "{raw:?} gave None"),
    }
});
