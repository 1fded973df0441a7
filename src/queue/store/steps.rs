//! The stored form of a run's steps, kept small because every accepted event writes one and the
//! bytes written per event are what the journal costs the hot path: with the steps stored as
//! plain JSON (about 800 bytes for a patched call) the benchmark's events/s fell 7-10%; with an
//! empty placeholder instead, not measurably. So the JSON is compressed with zstd against a
//! fixed dictionary of typical steps (a "raw content" dictionary: zstd matches against its
//! bytes, no training step), which takes a patched call's steps to about a sixth, and stored as
//! text, `z1:` and base64, so the column is TEXT on both backends. A value that starts with `[`
//! is plain JSON (written by an earlier build) and still reads.
//!
//! The dictionary only helps the ratio: steps of a shape it does not foresee still compress and
//! read back exactly. Changing it would make `z1:` values unreadable, so a new one needs a new
//! prefix beside this one.

use std::cell::RefCell;
use std::sync::LazyLock;

use base64::Engine as _;
use zstd::bulk::{Compressor, Decompressor};
use zstd::dict::{DecoderDictionary, EncoderDictionary};

use super::StoreError;
use crate::pipeline::Step;

const PREFIX: &str = "z1:";

/// zstd's fastest level: on inputs this small a higher one gains a few bytes for more time.
const LEVEL: i32 = 1;

/// The largest steps JSON read back: far above any run's (a few KB with every source and key),
/// and a bound on what a corrupt value can make a reader allocate.
const MAX_JSON: usize = 1 << 20;

/// Typical steps of every kind, in the order a run records them, with the values that recur.
const DICTIONARY: &[u8] = br#"[{"atMs":0,"step":"arrived","source":"genesys","acceptedAtMs":1764000000000,"waitedMs":0,"attempt":1},{"atMs":0,"step":"arrived","source":"cti","acceptedAtMs":1764000000000,"waitedMs":1,"attempt":2},{"atMs":0,"step":"arrived","source":"lookup","acceptedAtMs":1764000000000,"waitedMs":2,"attempt":1},{"atMs":1,"step":"upstream","service":"genesys","operation":"get_conversation","status":"2xx","ms":1},{"atMs":1,"step":"key","kind":"customer_id","notation":"as_given","value":"***"},{"atMs":1,"step":"key","kind":"external_contact_id","notation":"as_given","value":"***"},{"atMs":1,"step":"key","kind":"messaging_id","notation":"as_given","value":"***"},{"atMs":1,"step":"key","kind":"email","notation":"as_given","value":"***@"},{"atMs":1,"step":"key","kind":"phone","notation":"e164","value":"+1******"},{"atMs":2,"step":"crm","source":"salesforce","key":"phone","cache":"none","answer":"skipped","candidates":0,"ms":0},{"atMs":2,"step":"crm","source":"dynamics","key":"email","cache":"hit","answer":"not_found","candidates":0,"ms":0},{"atMs":2,"step":"crm","source":"sql","key":"customer_id","cache":"miss","answer":"error","error":"timeout","candidates":0,"ms":1000},{"atMs":2,"step":"crm","source":"file","key":"phone","cache":"miss","answer":"ambiguous","candidates":2,"ms":2},{"atMs":2,"step":"decision","verdict":"not_found","count":0},{"atMs":2,"step":"decision","verdict":"ambiguous","count":2},{"atMs":3,"step":"nothing_written","reason":"the conversation is over"},{"atMs":3,"step":"retry","reason":"","delayMs":1000},{"atMs":3,"step":"dead_lettered","reason":""},{"atMs":3,"step":"outcome","outcome":"crm_miss"},{"atMs":3,"step":"outcome","outcome":"retry_scheduled"},{"atMs":1,"step":"crm","source":"http","key":"phone","cache":"miss","answer":"found","candidates":1,"ms":1},{"atMs":1,"step":"decision","verdict":"found","count":1,"recordType":"contact","matchedBy":"phone"},{"atMs":2,"step":"upstream","service":"genesys","operation":"patch_participant_attributes","status":"2xx","ms":2},{"atMs":2,"step":"written","attributes":["crm_customer_id","crm_name","crm_tier","crm_found"]},{"atMs":2,"step":"outcome","outcome":"patched"}]"#;

static ENCODER: LazyLock<Result<EncoderDictionary<'static>, String>> =
    LazyLock::new(|| EncoderDictionary::try_copy(DICTIONARY, LEVEL).map_err(|e| e.to_string()));

static DECODER: LazyLock<DecoderDictionary<'static>> =
    LazyLock::new(|| DecoderDictionary::copy(DICTIONARY));

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("journal steps: {e}"))
}

thread_local! {
    /// One compressor per thread, made on first use: a compressor's context is worth keeping
    /// (creating one allocates its tables), and the runs are encoded on the worker threads.
    static COMPRESSOR: RefCell<Option<Compressor<'static>>> = const { RefCell::new(None) };
}

/// Encodes one run's steps in their stored form (about 2.5 µs for a patched call's in a
/// release build). Called by the worker that ran the event rather than by the journal's one
/// writer, so the encoding runs on every worker thread at once and the steps' many small
/// strings are freed on the thread that allocated them.
pub(super) fn encode(steps: &[Step]) -> Result<String, StoreError> {
    let json = serde_json::to_vec(steps).map_err(corrupt)?;
    let packed = COMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        let compressor = match &mut *cell {
            Some(c) => c,
            empty => {
                let dictionary = ENCODER.as_ref().map_err(corrupt)?;
                empty.insert(Compressor::with_prepared_dictionary(dictionary).map_err(corrupt)?)
            }
        };
        compressor.compress(&json).map_err(corrupt)
    })?;
    let mut text = String::with_capacity(PREFIX.len() + packed.len() * 4 / 3 + 4);
    text.push_str(PREFIX);
    base64::engine::general_purpose::STANDARD_NO_PAD.encode_string(&packed, &mut text);
    Ok(text)
}

/// Reads stored steps back; [`Decoder`] keeps one decompressor for a page of entries.
pub(super) struct Decoder {
    decompressor: Decompressor<'static>,
}

impl Decoder {
    pub(super) fn new() -> Result<Self, StoreError> {
        Ok(Self {
            decompressor: Decompressor::with_prepared_dictionary(&DECODER).map_err(corrupt)?,
        })
    }

    pub(super) fn decode(&mut self, stored: &str) -> Result<Vec<Step>, StoreError> {
        if stored.starts_with('[') {
            return serde_json::from_str(stored).map_err(corrupt);
        }
        let Some(encoded) = stored.strip_prefix(PREFIX) else {
            return Err(corrupt("an unknown format"));
        };
        let packed = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(encoded)
            .map_err(corrupt)?;
        let json = self
            .decompressor
            .decompress(&packed, MAX_JSON)
            .map_err(corrupt)?;
        serde_json::from_slice(&json).map_err(corrupt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::KeyKind;
    use crate::pipeline::{Journey, StepKind};
    use crate::redact::RedactMode;

    fn patched_call() -> Vec<Step> {
        let mut journey = Journey::new(RedactMode::Mask);
        journey.record(StepKind::Arrived {
            source: "genesys".into(),
            accepted_at_ms: 1_764_600_000_123,
            waited_ms: 4,
            attempt: 1,
        });
        journey.record(StepKind::Key {
            kind: KeyKind::Phone,
            notation: "e164".into(),
            value: "+1317******25".into(),
        });
        journey.record(StepKind::Crm {
            source: "http".into(),
            key: Some(KeyKind::Phone),
            cache: "miss".into(),
            answer: "found".into(),
            error: None,
            candidates: 1,
            ms: 3,
        });
        journey.record(StepKind::Decision {
            verdict: "found".into(),
            count: 1,
            record_type: Some("contact".into()),
            matched_by: Some(KeyKind::Phone),
        });
        journey.upstream("patch_participant_attributes", "2xx".into(), 5);
        journey.record(StepKind::Written {
            attributes: vec!["crm_customer_id".into(), "crm_name".into()],
        });
        journey.record(StepKind::Outcome {
            outcome: "patched".into(),
        });
        journey.into_steps()
    }

    #[test]
    fn steps_read_back_exactly_as_they_were_written() {
        let runs = [patched_call(), Vec::new()];
        let stored: Vec<String> = runs.iter().map(|r| encode(r).unwrap()).collect();
        let mut decoder = Decoder::new().unwrap();
        for (run, text) in runs.iter().zip(&stored) {
            assert!(text.starts_with("z1:"), "{text}");
            assert_eq!(&decoder.decode(text).unwrap(), run);
        }
    }

    #[test]
    fn a_patched_calls_steps_take_a_fraction_of_their_json() {
        let steps = patched_call();
        let json = serde_json::to_string(&steps).unwrap();
        let stored = encode(&steps).unwrap();
        assert!(
            stored.len() * 3 < json.len(),
            "{} bytes stored for {} bytes of JSON",
            stored.len(),
            json.len()
        );
    }

    #[test]
    fn steps_no_dictionary_foresaw_still_read_back() {
        let mut journey = Journey::new(RedactMode::Mask);
        for n in 0..50 {
            journey.nothing_written(&format!("reason {n}: ünïcödé and \"quotes\""));
        }
        let steps = journey.into_steps();
        let stored = encode(&steps).unwrap();
        assert_eq!(Decoder::new().unwrap().decode(&stored).unwrap(), steps);
    }

    #[test]
    fn plain_json_from_an_earlier_build_still_reads() {
        let steps = patched_call();
        let json = serde_json::to_string(&steps).unwrap();
        assert_eq!(Decoder::new().unwrap().decode(&json).unwrap(), steps);
    }

    #[test]
    fn a_value_in_no_known_format_is_reported_as_corrupt() {
        let mut decoder = Decoder::new().unwrap();
        for bad in ["", "z2:AAAA", "z1:!!!", "z1:AAAAAAAA", "{\"steps\":[]}"] {
            assert!(
                matches!(decoder.decode(bad), Err(StoreError::Corrupt(_))),
                "{bad:?} was accepted"
            );
        }
    }
}
