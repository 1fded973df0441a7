//! Caller-number normalisation: turns whatever Genesys puts in the ANI
//! (`tel:` / `sip:` URIs, formatted or bare digits) into one parsed number,
//! and renders it in the notations CRMs store numbers in.
//!
//! Parsing and formatting use the `phonenumber` crate (a libphonenumber port).

use std::fmt::{self, Write as _};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

use phonenumber::metadata::DATABASE;
use phonenumber::{country, Mode, PhoneNumber};

/// Longest digit string handed to libphonenumber: a country code (3) plus the
/// longest national number it accepts (17). Anything longer cannot be a phone
/// number, and keeping the parser away from it limits exposure to parser bugs.
const MAX_PARSE_DIGITS: usize = 20;

/// How a number is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Notation {
    /// `+13175550125`
    E164,
    /// `13175550125`
    E164Digits,
    /// `(317) 555-0125`: libphonenumber's national format.
    National,
    /// `3175550125`: the national format's digits, so a trunk prefix stays
    /// (`02079460018` for London), the way people type numbers into a CRM.
    NationalDigits,
    /// `+1 317-555-0125`
    International,
    /// Exactly as received, trimmed.
    Raw,
}

impl Notation {
    /// Every notation, in the order `crm.http.phone_notations` documents them.
    pub const ALL: [Notation; 6] = [
        Notation::E164,
        Notation::E164Digits,
        Notation::National,
        Notation::NationalDigits,
        Notation::International,
        Notation::Raw,
    ];
}

/// A caller number as received, cleaned and (when possible) parsed.
///
/// Parsed once, where the number enters attrsync (ingest, or the participant's ANI). It is
/// persisted with the queued job as its raw and E.164 forms only (`{"raw": .., "e164": ..}`);
/// reading it back runs no libphonenumber parse. The notations that need libphonenumber's
/// formatting (national, international) re-parse the E.164 form on first use, which needs no
/// region because E.164 names its country.
///
/// `Debug` is redacted (see [`crate::redact`]): caller numbers travel inside
/// keys and events that get logged with `?`, and logs must not hold them.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
#[serde(from = "StoredNumber", into = "StoredNumber")]
pub struct CallerNumber {
    raw: String,
    /// ASCII digits of the number, with a leading '+' if the input had one.
    cleaned: String,
    /// E.164, only when libphonenumber considers the number valid or at least of a possible
    /// length: an unusable parse would make every notation wrong.
    e164: Option<String>,
    extension: Option<String>,
    /// The parsed number behind `e164`: set by [`CallerNumber::parse`], filled from `e164` on
    /// first use for a number read back from the queue.
    parsed: OnceLock<Option<PhoneNumber>>,
}

/// The persisted form of a [`CallerNumber`]: what it was and what it means. The cleaned digits
/// and the extension are derived from `raw` again (string work, no parse).
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredNumber {
    raw: String,
    e164: Option<String>,
}

impl From<CallerNumber> for StoredNumber {
    fn from(number: CallerNumber) -> Self {
        StoredNumber {
            raw: number.raw,
            e164: number.e164,
        }
    }
}

impl From<StoredNumber> for CallerNumber {
    fn from(stored: StoredNumber) -> Self {
        let (cleaned, extension) = clean(&stored.raw);
        CallerNumber {
            raw: stored.raw,
            cleaned,
            e164: stored.e164,
            extension,
            parsed: OnceLock::new(),
        }
    }
}

/// Two numbers are the same number when they were received the same and mean the same; whether
/// one has been formatted yet does not matter.
impl PartialEq for CallerNumber {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
            && self.cleaned == other.cleaned
            && self.e164 == other.e164
            && self.extension == other.extension
    }
}

impl Eq for CallerNumber {}

/// The cleaned digits (with '+' if there was one) and the extension of a raw number; the
/// digits are empty when there are none.
fn clean(raw: &str) -> (String, Option<String>) {
    let (number_part, extension) = split_uri(raw.trim());
    let plus = number_part.trim_start().starts_with('+');
    let digits: String = number_part.chars().filter(char::is_ascii_digit).collect();
    let cleaned = if plus && !digits.is_empty() {
        format!("+{digits}")
    } else {
        digits
    };
    (cleaned, extension)
}

impl CallerNumber {
    /// Strips tel:/sip:/sips: schemes, a SIP host part (@...) and URI parameters (;user=phone, ;ext= is kept as an extension only if phonenumber handles it — otherwise drop), whitespace and punctuation; parses with `default_region` for numbers without a country code. Never panics on any input; returns None only when no digits at all remain.
    ///
    /// An `;ext=` parameter is kept apart (see [`CallerNumber::extension`]) and
    /// never appears in a notation: CRM searches and cache keys are about the
    /// line, and an extension would only make them miss.
    pub fn parse(raw: &str, default_region: country::Id) -> Option<CallerNumber> {
        let raw = raw.trim();
        let (cleaned, extension) = clean(raw);
        let digits = cleaned.trim_start_matches('+').len();
        if digits == 0 {
            return None;
        }
        let parsed = if digits <= MAX_PARSE_DIGITS {
            parse_usable(&cleaned, default_region)
        } else {
            None
        };
        let e164 = parsed
            .as_ref()
            .and_then(|number| format_number(number, Mode::E164));
        Some(CallerNumber {
            raw: raw.to_owned(),
            cleaned,
            e164,
            extension,
            parsed: OnceLock::from(parsed),
        })
    }

    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The digits of an `;ext=` URI parameter, if the input had one.
    pub fn extension(&self) -> Option<&str> {
        self.extension.as_deref()
    }

    /// E.164 when libphonenumber could parse the number into a valid (or at least possible) number, else None.
    pub fn e164(&self) -> Option<String> {
        self.e164.clone()
    }

    /// The number in the given notation; falls back to the cleaned digits (with '+' if the input had one) when it cannot be parsed. Raw gives the trimmed original.
    pub fn notation(&self, n: Notation) -> String {
        if n == Notation::Raw {
            return self.raw.clone();
        }
        self.formatted(n).unwrap_or_else(|| self.cleaned.clone())
    }

    /// The distinct notations, in the order given, duplicates removed (e.g. for trying several CRM searches).
    pub fn notations(&self, which: &[Notation]) -> Vec<String> {
        let mut out: Vec<String> = Vec::with_capacity(which.len());
        for n in which {
            let text = self.notation(*n);
            if !out.contains(&text) {
                out.push(text);
            }
        }
        out
    }

    /// The key used for caching and deduplication: e164 if known, else the cleaned digits.
    pub fn canonical(&self) -> String {
        self.e164.clone().unwrap_or_else(|| self.cleaned.clone())
    }

    /// The parsed number, re-parsed from E.164 the first time a number read back from the queue
    /// needs it.
    fn parsed(&self) -> Option<&PhoneNumber> {
        self.parsed
            .get_or_init(|| {
                let e164 = self.e164.as_deref()?;
                catch_unwind(|| phonenumber::parse(None, e164)).ok()?.ok()
            })
            .as_ref()
    }

    fn formatted(&self, n: Notation) -> Option<String> {
        let format = |mode| self.parsed().and_then(|number| format_number(number, mode));
        match n {
            Notation::E164 => self.e164.clone(),
            Notation::E164Digits => self.e164.as_deref().map(only_digits),
            Notation::National => format(Mode::National),
            Notation::NationalDigits => format(Mode::National).map(|s| only_digits(&s)),
            Notation::International => format(Mode::International),
            Notation::Raw => Some(self.raw.clone()),
        }
    }
}

impl fmt::Debug for CallerNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CallerNumber")
            .field(&crate::redact::Redacted::phone(&self.canonical()))
            .finish()
    }
}

/// Parses a region given as ISO 3166 alpha-2 ("US", "gb", case-insensitive) into phonenumber's country Id, with a clear error naming the bad value.
pub fn parse_region(s: &str) -> Result<country::Id, String> {
    let code = s.trim().to_ascii_uppercase();
    let invalid = || {
        format!("invalid phone region {s:?}: expected an ISO 3166-1 alpha-2 country code such as \"US\" or \"GB\"")
    };
    if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(invalid());
    }
    code.parse::<country::Id>().map_err(|_| invalid())
}

/// The words carriers and Genesys put in place of a number the caller withheld. The SIP form
/// `sip:anonymous@anonymous.invalid` is RFC 3261 section 8.1.1.3's; `tel:anonymous`,
/// `restricted`, `unavailable`, `private` and `withheld` are what carriers are seen to send
/// (unverified against a live Genesys org: no public Genesys page lists them).
const WITHHELD_WORDS: [&str; 6] = [
    "anonymous",
    "restricted",
    "unavailable",
    "private",
    "withheld",
    "unknown",
];

/// True when `raw` names no caller at all: empty, one of the withheld words (bare, as a
/// `tel:`/`sip:` URI's user part, or a SIP display name around one), or no digit in the part that
/// would hold the number. Such a caller is never looked up: the answer is "no key", not an error.
pub fn is_withheld(raw: &str) -> bool {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return true;
    }
    let (number, _) = split_uri(trimmed);
    let user = number.trim();
    if WITHHELD_WORDS.iter().any(|w| user.eq_ignore_ascii_case(w)) {
        return true;
    }
    !user.chars().any(|c| c.is_ascii_digit())
}

/// Splits a `tel:`/`sip:` URI (or a bare number) into the part that holds the
/// number and the extension parameter, if any.
fn split_uri(raw: &str) -> (&str, Option<String>) {
    // A SIP name-addr ("Jane" <sip:+1...@host>) carries the URI in brackets;
    // the display name may contain digits that are not the number.
    let mut rest = match (raw.find('<'), raw.rfind('>')) {
        (Some(open), Some(close)) if open < close => &raw[open + 1..close],
        _ => raw,
    };
    rest = rest.trim();
    for scheme in ["tel:", "sips:", "sip:"] {
        if let Some(head) = rest.get(..scheme.len()) {
            if head.eq_ignore_ascii_case(scheme) {
                rest = &rest[scheme.len()..];
                break;
            }
        }
    }
    // The host of a SIP URI (often an IP address) is full of digits that
    // must not leak into the number; headers (?...) likewise.
    if let Some(at) = rest.find(['@', '?']) {
        rest = &rest[..at];
    }

    let mut params = rest.split(';');
    let number = params.next().unwrap_or_default();
    let extension = params.find_map(|param| {
        let (name, value) = param.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("ext") {
            return None;
        }
        let digits: String = value.chars().filter(char::is_ascii_digit).collect();
        (!digits.is_empty()).then_some(digits)
    });
    (number, extension)
}

fn parse_usable(cleaned: &str, default_region: country::Id) -> Option<PhoneNumber> {
    // The input is only '+' and ASCII digits by now, but the parser has had
    // panics on odd input before; a bad ANI must cost one lookup, not a task.
    // A '+' names the country itself. phonenumber 0.3 would still strip the default region's
    // national prefix from it (turning +49 151... into a Hannover landline), so the default
    // region is only for numbers without one.
    let region = (!cleaned.starts_with('+')).then_some(default_region);
    let number = catch_unwind(|| phonenumber::parse(region, cleaned))
        .ok()?
        .ok()?;
    let usable = catch_unwind(AssertUnwindSafe(|| {
        phonenumber::is_valid(&number) || is_possible_length(&number)
    }))
    .unwrap_or(false);
    usable.then_some(number)
}

/// libphonenumber's "possible number" test (the length fits the country),
/// which the crate does not expose: valid-number patterns lag behind number
/// plan changes, while lengths rarely change.
fn is_possible_length(number: &PhoneNumber) -> bool {
    let length = number.national().to_string().len();
    let Ok(length) = u16::try_from(length) else {
        return false;
    };
    // The crate's general descriptor carries no lengths; the per-type descriptors do.
    DATABASE
        .by_code(&number.code().value())
        .unwrap_or_default()
        .iter()
        .any(|meta| {
            let d = meta.descriptors();
            std::iter::once(Some(d.general()))
                .chain([
                    d.fixed_line(),
                    d.mobile(),
                    d.toll_free(),
                    d.premium_rate(),
                    d.shared_cost(),
                    d.personal_number(),
                    d.voip(),
                    d.uan(),
                ])
                .flatten()
                .any(|descriptor| descriptor.possible_length().contains(&length))
        })
}

/// Formats without `to_string()`: the formatter reports an unknown country
/// code as a `fmt::Error`, which `to_string()` would turn into a panic.
fn format_number(number: &PhoneNumber, mode: Mode) -> Option<String> {
    catch_unwind(AssertUnwindSafe(|| {
        let mut out = String::new();
        write!(out, "{}", number.format().mode(mode)).ok()?;
        Some(out)
    }))
    .ok()
    .flatten()
}

fn only_digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(raw: &str) -> Option<CallerNumber> {
        CallerNumber::parse(raw, country::Id::US)
    }

    #[test]
    fn every_genesys_ani_form_normalises_to_the_same_e164() {
        let forms = [
            "tel:+13175550125",
            "sip:+13175550125@10.0.0.1;user=phone",
            "sips:+13175550125@sbc.example.com:5061;transport=tls",
            "SIP:+13175550125@10.0.0.1",
            "+1 (317) 555-0125",
            "3175550125",
            "(317) 555-0125",
            "13175550125",
            "  317.555.0125  ",
            "tel:+1-317-555-0125;user=phone",
            "\"Jane 2\" <sip:+13175550125@10.0.0.1>",
        ];
        for form in forms {
            let number = us(form).unwrap_or_else(|| panic!("{form:?} gave None"));
            assert_eq!(number.e164().as_deref(), Some("+13175550125"), "{form:?}");
            assert_eq!(number.canonical(), "+13175550125", "{form:?}");
        }
    }

    #[test]
    fn a_uk_national_number_uses_the_default_region() {
        let number = CallerNumber::parse("020 7946 0018", country::Id::GB).expect("digits");
        assert_eq!(number.e164().as_deref(), Some("+442079460018"));
        assert_eq!(number.notation(Notation::National), "020 7946 0018");
        assert_eq!(number.notation(Notation::NationalDigits), "02079460018");
        assert_eq!(number.notation(Notation::International), "+44 20 7946 0018");
    }

    #[test]
    fn a_plus_44_number_stays_british_under_a_us_default_region() {
        for form in [
            "+44 20 7946 0018",
            "tel:+442079460018",
            "sip:+442079460018@host",
        ] {
            let number = us(form).expect("digits");
            assert_eq!(number.e164().as_deref(), Some("+442079460018"), "{form:?}");
        }
    }

    #[test]
    fn a_us_number_renders_in_every_notation() {
        let number = us("sip:+13175550125@10.0.0.1;user=phone").expect("digits");
        let cases = [
            (Notation::E164, "+13175550125"),
            (Notation::E164Digits, "13175550125"),
            (Notation::National, "(317) 555-0125"),
            (Notation::NationalDigits, "3175550125"),
            (Notation::International, "+1 317-555-0125"),
            (Notation::Raw, "sip:+13175550125@10.0.0.1;user=phone"),
        ];
        for (notation, expected) in cases {
            assert_eq!(number.notation(notation), expected, "{notation:?}");
        }
    }

    #[test]
    fn raw_is_the_trimmed_original() {
        let number = us("  tel:+13175550125 \n").expect("digits");
        assert_eq!(number.raw(), "tel:+13175550125");
        assert_eq!(number.notation(Notation::Raw), "tel:+13175550125");
    }

    #[test]
    fn notations_keeps_the_given_order_and_drops_duplicates() {
        let number = us("3175550125").expect("digits");
        let all = number.notations(&[
            Notation::E164,
            Notation::NationalDigits,
            Notation::Raw,
            Notation::National,
            Notation::E164,
        ]);
        assert_eq!(all, vec!["+13175550125", "3175550125", "(317) 555-0125"]);
    }

    #[test]
    fn inputs_without_any_digit_give_none() {
        for garbage in [
            "anonymous",
            "",
            "   ",
            "tel:",
            "sip:",
            "sip:anonymous@anonymous.invalid",
            "Restricted",
            "+",
            "()-",
        ] {
            assert_eq!(us(garbage), None, "{garbage:?}");
        }
    }

    #[test]
    fn digits_only_in_the_sip_host_do_not_make_a_number() {
        assert_eq!(us("sip:anonymous@10.0.0.1;user=phone"), None);
    }

    #[test]
    fn an_unparseable_number_falls_back_to_its_cleaned_digits() {
        let number = us("tel:+999 123").expect("digits");
        assert_eq!(number.e164(), None);
        assert_eq!(number.canonical(), "+999123");
        for notation in [
            Notation::E164,
            Notation::E164Digits,
            Notation::National,
            Notation::NationalDigits,
            Notation::International,
        ] {
            assert_eq!(number.notation(notation), "+999123", "{notation:?}");
        }
        assert_eq!(number.notation(Notation::Raw), "tel:+999 123");
    }

    #[test]
    fn a_short_internal_extension_is_kept_as_digits_without_a_plus() {
        let number = us("sip:4021@pbx.local").expect("digits");
        assert_eq!(number.e164(), None);
        assert_eq!(number.canonical(), "4021");
        assert_eq!(number.notation(Notation::E164), "4021");
    }

    #[test]
    fn an_ext_parameter_is_kept_apart_from_the_number() {
        let number = us("tel:+13175550125;ext=123").expect("digits");
        assert_eq!(number.e164().as_deref(), Some("+13175550125"));
        assert_eq!(number.extension(), Some("123"));
        assert_eq!(number.notation(Notation::National), "(317) 555-0125");
        assert_eq!(
            us("tel:+13175550125").and_then(|n| n.extension().map(str::to_owned)),
            None
        );
    }

    #[test]
    fn very_long_digit_strings_never_panic() {
        for len in [15, 16, 17, 18, 19, 20, 21, 25, 40, 100, 10_000] {
            let digits = "9".repeat(len);
            let number = us(&digits).expect("digits");
            assert!(!number.canonical().is_empty());
            let number = us(&format!("+{digits}")).expect("digits");
            let _ = number.notations(&[
                Notation::E164,
                Notation::E164Digits,
                Notation::National,
                Notation::NationalDigits,
                Notation::International,
            ]);
        }
    }

    #[test]
    fn unicode_and_odd_input_never_panics() {
        let inputs = [
            "📞 +1 317 555 0125",
            "٣١٧٥٥٥٠١٢٥",
            "３１７５５５０１２５",
            "tel:+1\u{0}317",
            "sip:@",
            "<>",
            "><sip:+1",
            "tel:;ext=",
            ";;;;@@@",
            "+++++1",
            "0000000000",
            "00",
            "\u{202e}5210555713",
            "sip:+13175550125@[::1]:5060",
            "é",
        ];
        for input in inputs {
            if let Some(number) = us(input) {
                let _ = number.canonical();
                let _ = number.notations(&Notation::ALL);
            }
        }
    }

    #[test]
    fn every_prefix_of_a_number_in_every_region_parses_without_panicking() {
        let regions = [
            country::Id::US,
            country::Id::GB,
            country::Id::DE,
            country::Id::IT,
            country::Id::BR,
            country::Id::IN,
            country::Id::AU,
        ];
        let seeds = [
            "+13175550125999",
            "+442079460018999",
            "00390612345678",
            "011491234567890",
        ];
        for region in regions {
            for seed in seeds {
                for end in 1..=seed.len() {
                    if let Some(number) = CallerNumber::parse(&seed[..end], region) {
                        let _ = number.notations(&[
                            Notation::E164,
                            Notation::National,
                            Notation::International,
                        ]);
                    }
                }
            }
        }
    }

    #[test]
    fn debug_output_never_shows_the_whole_number() {
        let number = us("tel:+13175550125").expect("digits");
        let shown = format!("{number:?}");
        assert!(shown.starts_with("CallerNumber("), "{shown}");
        assert!(!shown.contains("3175550"), "{shown}");
        assert!(!format!("{:?}", Some(number)).contains("3175550"));
    }

    #[test]
    fn a_number_read_back_from_storage_keeps_every_notation_without_its_region() {
        for (raw, region) in [
            ("sip:+13175550125@10.0.0.1;user=phone", country::Id::US),
            ("020 7946 0018", country::Id::GB),
            ("tel:+13175550125;ext=123", country::Id::US),
            ("tel:+999 123", country::Id::US),
            ("sip:4021@pbx.local", country::Id::US),
        ] {
            let number = CallerNumber::parse(raw, region).expect("digits");
            let text = serde_json::to_string(&number).unwrap();
            let back: CallerNumber = serde_json::from_str(&text).unwrap();
            assert_eq!(back, number, "{raw:?}");
            assert_eq!(back.extension(), number.extension(), "{raw:?}");
            for notation in Notation::ALL {
                assert_eq!(
                    back.notation(notation),
                    number.notation(notation),
                    "{raw:?} {notation:?}"
                );
            }
        }
    }

    #[test]
    fn a_stored_number_holds_its_raw_and_e164_forms_only() {
        let number = us("(317) 555-0125").expect("digits");
        assert_eq!(
            serde_json::to_value(&number).unwrap(),
            serde_json::json!({"raw": "(317) 555-0125", "e164": "+13175550125"})
        );
    }

    #[test]
    fn parse_region_accepts_any_case() {
        assert_eq!(parse_region("us"), Ok(country::Id::US));
        assert_eq!(parse_region("GB"), Ok(country::Id::GB));
        assert_eq!(parse_region(" De "), Ok(country::Id::DE));
    }

    #[test]
    fn parse_region_rejects_unknown_codes_and_names_the_value() {
        for bad in ["XX", "", "USA", "1", "u", "ü1"] {
            let err = parse_region(bad).expect_err(bad);
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn notation_uses_snake_case_in_config() {
        let parsed: Vec<Notation> = serde_json::from_str(
            r#"["e164","e164_digits","national","national_digits","international","raw"]"#,
        )
        .expect("valid notations");
        assert_eq!(
            parsed,
            vec![
                Notation::E164,
                Notation::E164Digits,
                Notation::National,
                Notation::NationalDigits,
                Notation::International,
                Notation::Raw,
            ]
        );
    }

    #[test]
    fn withheld_and_anonymous_callers_are_recognised_and_real_numbers_are_not() {
        for raw in [
            "",
            "   ",
            "anonymous",
            "Anonymous",
            "tel:anonymous",
            "sip:anonymous@anonymous.invalid",
            "\"Anonymous\" <sip:anonymous@anonymous.invalid>",
            "restricted",
            "tel:restricted",
            "unavailable",
            "private",
            "withheld",
            "sip:@10.0.0.1",
            "tel:",
        ] {
            assert!(is_withheld(raw), "{raw:?} should count as withheld");
        }
        for raw in [
            "tel:+13175550125",
            "sip:+13175550125@10.0.0.1;user=phone",
            "(317) 555-0125",
        ] {
            assert!(!is_withheld(raw), "{raw:?} is a number");
        }
    }
}
