//! PII redaction for log lines: phone numbers, emails and other personal
//! values never reach the logs in the clear unless redaction is turned off.
//!
//! The mode is process-wide (set once from configuration). Every function has
//! a `*_with` twin that takes the mode explicitly; the global functions are
//! thin wrappers, so tests never depend on (or race over) the global.

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};

use sha2::{Digest, Sha256};

/// How personal values are written to logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RedactMode {
    /// Values are logged as they are (local debugging only).
    Off,
    /// Most of the value is replaced by '*'; a little shape is kept.
    #[default]
    Mask,
    /// A short stable hash, so one caller can be followed across lines.
    Hash,
}

impl RedactMode {
    const fn to_u8(self) -> u8 {
        match self {
            RedactMode::Off => 0,
            RedactMode::Mask => 1,
            RedactMode::Hash => 2,
        }
    }

    /// Unknown values map to Mask: a corrupted setting must fail closed.
    const fn from_u8(v: u8) -> Self {
        match v {
            0 => RedactMode::Off,
            2 => RedactMode::Hash,
            _ => RedactMode::Mask,
        }
    }
}

static MODE: AtomicU8 = AtomicU8::new(RedactMode::Mask.to_u8());

/// Set once at start-up from configuration. Each call overwrites the previous
/// one (last call wins), which keeps reconfiguration and tests simple; lines
/// logged before the call use the default, Mask.
pub fn set_mode(mode: RedactMode) {
    MODE.store(mode.to_u8(), Ordering::Relaxed);
}

/// The process-wide mode; Mask until [`set_mode`] is called.
pub fn mode() -> RedactMode {
    RedactMode::from_u8(MODE.load(Ordering::Relaxed))
}

/// A phone number under the global mode; see [`phone_with`].
pub fn phone(s: &str) -> String {
    phone_with(mode(), s)
}

/// An email address under the global mode; see [`email_with`].
pub fn email(s: &str) -> String {
    email_with(mode(), s)
}

/// Any other personal value under the global mode; see [`value_with`].
pub fn value(s: &str) -> String {
    value_with(mode(), s)
}

/// Phone numbers of fewer digits than this are masked entirely: showing the
/// last four of a short number would show most of it.
const MIN_DIGITS_TO_SHOW_TAIL: usize = 8;
const SHOWN_TAIL_DIGITS: usize = 4;

/// Mask: `"+13175550125"` -> `"+*******0125"`: a leading '+' and at most the
/// last 4 digits are kept, numbers under 8 digits are fully masked, and
/// formatting is dropped. URI decoration (`tel:`, `sip:`, `@host`,
/// `;params`) is ignored, so the digits of a SIP host never count.
///
/// Hash: `"h:"` + the first 12 hex chars of SHA-256 of the number in the same
/// normalised form (`+` and digits), so `tel:+13175550125` and
/// `+1 (317) 555-0125` correlate; for an E.164 input that is the hash of the
/// input itself. Off: unchanged.
pub fn phone_with(mode: RedactMode, s: &str) -> String {
    match mode {
        RedactMode::Off => s.to_owned(),
        RedactMode::Mask => mask_phone(s),
        RedactMode::Hash => {
            let (plus, digits) = phone_digits(s);
            if digits.is_empty() {
                hash(s)
            } else {
                hash(&format!("{}{digits}", if plus { "+" } else { "" }))
            }
        }
    }
}

/// Mask: `"jane.doe@example.com"` -> `"j***@e***.com"`. Hash: as
/// [`value_with`], of the trimmed, lower-cased address (mail systems treat
/// case as insignificant in practice, so the same person correlates).
/// Off: unchanged. Text without an '@' is not an address and is masked as a
/// plain value.
pub fn email_with(mode: RedactMode, s: &str) -> String {
    match mode {
        RedactMode::Off => s.to_owned(),
        RedactMode::Mask => mask_email(s),
        RedactMode::Hash => hash(&s.trim().to_lowercase()),
    }
}

/// Mask: `"***"` plus the char count, e.g. `"***(8)"`. Hash: `"h:"` + the
/// first 12 hex chars of SHA-256 of the input. Off: unchanged.
pub fn value_with(mode: RedactMode, s: &str) -> String {
    match mode {
        RedactMode::Off => s.to_owned(),
        RedactMode::Mask => format!("***({})", s.chars().count()),
        RedactMode::Hash => hash(s),
    }
}

fn hash(s: &str) -> String {
    let digest = Sha256::digest(s.as_bytes());
    let mut out = String::with_capacity(14);
    out.push_str("h:");
    for byte in digest.iter().take(6) {
        // Writing to a String cannot fail.
        let _ = fmt::Write::write_fmt(&mut out, format_args!("{byte:02x}"));
    }
    out
}

/// The '+' flag and ASCII digits of the user part of a phone number or
/// `tel:`/`sip:` URI.
fn phone_digits(s: &str) -> (bool, String) {
    let mut rest = s.trim();
    if let Some((scheme, after)) = rest.split_once(':') {
        if ["tel", "sip", "sips"]
            .iter()
            .any(|known| scheme.trim().eq_ignore_ascii_case(known))
        {
            rest = after;
        }
    }
    if let Some(end) = rest.find(['@', ';', '?']) {
        rest = &rest[..end];
    }
    let plus = rest.trim_start().starts_with('+');
    let digits = rest.chars().filter(char::is_ascii_digit).collect();
    (plus, digits)
}

fn mask_phone(s: &str) -> String {
    let (plus, digits) = phone_digits(s);
    if digits.is_empty() {
        return "***".to_owned();
    }
    let shown = if digits.len() >= MIN_DIGITS_TO_SHOW_TAIL {
        SHOWN_TAIL_DIGITS
    } else {
        0
    };
    let hidden = digits.len() - shown;
    let mut out = String::with_capacity(digits.len() + 1);
    if plus {
        out.push('+');
    }
    out.extend(std::iter::repeat_n('*', hidden));
    out.push_str(&digits[hidden..]);
    out
}

fn mask_email(s: &str) -> String {
    let s = s.trim();
    let Some((local, domain)) = s.rsplit_once('@') else {
        return value_with(RedactMode::Mask, s);
    };
    let (name, tld) = match domain.rsplit_once('.') {
        Some((name, tld)) => (name, Some(tld)),
        None => (domain, None),
    };
    let mut out = mask_keep_first(local);
    out.push('@');
    out.push_str(&mask_keep_first(name));
    if let Some(tld) = tld {
        out.push('.');
        out.push_str(tld);
    }
    out
}

fn mask_keep_first(s: &str) -> String {
    match s.chars().next() {
        Some(first) => format!("{first}***"),
        None => "***".to_owned(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Phone,
    Email,
    Value,
}

/// A wrapper whose Display applies redaction, for use as a tracing field:
/// `tracing::info!(customer = %Redacted::phone(&n))`. Debug is redacted too,
/// so `?` fields are just as safe.
///
/// The mode is read when the value is formatted, unless pinned with
/// [`Redacted::with_mode`].
#[derive(Clone, Copy)]
pub struct Redacted<'a> {
    kind: Kind,
    text: &'a str,
    mode: Option<RedactMode>,
}

impl<'a> Redacted<'a> {
    pub fn phone(text: &'a str) -> Self {
        Self::new(Kind::Phone, text)
    }

    pub fn email(text: &'a str) -> Self {
        Self::new(Kind::Email, text)
    }

    pub fn value(text: &'a str) -> Self {
        Self::new(Kind::Value, text)
    }

    /// Uses `mode` instead of the process-wide one.
    pub fn with_mode(self, mode: RedactMode) -> Self {
        Self {
            mode: Some(mode),
            ..self
        }
    }

    fn new(kind: Kind, text: &'a str) -> Self {
        Self {
            kind,
            text,
            mode: None,
        }
    }

    fn redacted(&self) -> String {
        let mode = self.mode.unwrap_or_else(mode);
        match self.kind {
            Kind::Phone => phone_with(mode, self.text),
            Kind::Email => email_with(mode, self.text),
            Kind::Value => value_with(mode, self.text),
        }
    }
}

impl fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.redacted().as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RedactMode::{Hash, Mask, Off};

    fn sha_prefix(s: &str) -> String {
        let digest = Sha256::digest(s.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("h:{}", &hex[..12])
    }

    #[test]
    fn mask_keeps_the_plus_and_the_last_four_digits_of_a_phone() {
        assert_eq!(phone_with(Mask, "+13175550125"), "+*******0125");
        assert_eq!(phone_with(Mask, "3175550125"), "******0125");
    }

    #[test]
    fn phone_masking_follows_the_table() {
        let cases = [
            ("+13175550125", "+*******0125"),
            ("+1 (317) 555-0125", "+*******0125"),
            ("(317) 555-0125", "******0125"),
            ("tel:+13175550125", "+*******0125"),
            ("sip:+13175550125@10.0.0.1;user=phone", "+*******0125"),
            ("+442079460018", "+********0018"),
            ("12345678", "****5678"),
            ("5550125", "*******"),
            ("+4021", "+****"),
            ("1", "*"),
            ("", "***"),
            ("anonymous", "***"),
            ("sip:anonymous@10.0.0.1", "***"),
        ];
        for (input, expected) in cases {
            assert_eq!(phone_with(Mask, input), expected, "{input:?}");
        }
    }

    #[test]
    fn a_masked_phone_never_contains_more_than_four_of_its_digits() {
        for input in [
            "+13175550125",
            "sip:+442079460018@203.0.113.9",
            "00390612345678",
        ] {
            let masked = phone_with(Mask, input);
            let shown = masked.chars().filter(char::is_ascii_digit).count();
            assert!(shown <= 4, "{input:?} -> {masked:?}");
        }
    }

    #[test]
    fn mask_hides_an_email_but_keeps_its_shape() {
        assert_eq!(email_with(Mask, "jane.doe@example.com"), "j***@e***.com");
    }

    #[test]
    fn email_masking_follows_the_table() {
        let cases = [
            ("jane.doe@example.com", "j***@e***.com"),
            ("  Jane@Mail.Example.co.uk ", "J***@M***.uk"),
            ("@example.com", "***@e***.com"),
            ("jane@", "j***@***"),
            ("jane@localhost", "j***@l***"),
            ("émile@café.fr", "é***@c***.fr"),
            ("not-an-email", "***(12)"),
            ("", "***(0)"),
        ];
        for (input, expected) in cases {
            assert_eq!(email_with(Mask, input), expected, "{input:?}");
        }
    }

    #[test]
    fn mask_replaces_a_value_with_its_char_count() {
        assert_eq!(value_with(Mask, "CUST-123"), "***(8)");
        assert_eq!(value_with(Mask, "Zoë"), "***(3)");
        assert_eq!(value_with(Mask, ""), "***(0)");
    }

    #[test]
    fn hash_is_a_stable_12_hex_char_prefix_of_sha256() {
        let hashed = value_with(Hash, "CUST-123");
        assert_eq!(hashed, sha_prefix("CUST-123"));
        assert_eq!(hashed.len(), 14);
        assert!(hashed[2..]
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(value_with(Hash, "CUST-123"), hashed);
        assert_ne!(value_with(Hash, "CUST-124"), hashed);
    }

    #[test]
    fn hash_of_sha256_of_empty_input_is_the_known_digest() {
        assert_eq!(value_with(Hash, ""), "h:e3b0c44298fc");
    }

    #[test]
    fn hashed_phones_correlate_across_notations_of_the_same_number() {
        let expected = sha_prefix("+13175550125");
        for input in [
            "+13175550125",
            "tel:+13175550125",
            "sip:+13175550125@10.0.0.1;user=phone",
            "+1 (317) 555-0125",
        ] {
            assert_eq!(phone_with(Hash, input), expected, "{input:?}");
        }
        assert_ne!(phone_with(Hash, "3175550125"), expected);
    }

    #[test]
    fn hashed_emails_ignore_case_and_surrounding_space() {
        assert_eq!(
            email_with(Hash, " Jane.Doe@Example.com"),
            sha_prefix("jane.doe@example.com")
        );
    }

    #[test]
    fn off_leaves_every_kind_unchanged() {
        assert_eq!(phone_with(Off, "tel:+13175550125"), "tel:+13175550125");
        assert_eq!(email_with(Off, "Jane@Example.com"), "Jane@Example.com");
        assert_eq!(value_with(Off, "CUST-123"), "CUST-123");
    }

    #[test]
    fn redacted_display_and_debug_are_both_redacted() {
        let shown = Redacted::phone("+13175550125").with_mode(Mask);
        assert_eq!(format!("{shown}"), "+*******0125");
        assert_eq!(format!("{shown:?}"), "\"+*******0125\"");

        let mail = Redacted::email("jane.doe@example.com").with_mode(Mask);
        assert_eq!(mail.to_string(), "j***@e***.com");
        assert!(!format!("{mail:?}").contains("jane"));

        let id = Redacted::value("CUST-123").with_mode(Hash);
        assert_eq!(id.to_string(), sha_prefix("CUST-123"));
        assert_eq!(format!("{id:?}"), format!("{:?}", sha_prefix("CUST-123")));
    }

    #[test]
    fn redacted_with_mode_off_shows_the_value() {
        assert_eq!(
            Redacted::value("CUST-123").with_mode(Off).to_string(),
            "CUST-123"
        );
    }

    #[test]
    fn mode_round_trips_through_its_stored_form() {
        for m in [Off, Mask, Hash] {
            assert_eq!(RedactMode::from_u8(m.to_u8()), m);
        }
        assert_eq!(RedactMode::from_u8(200), Mask);
    }

    #[test]
    fn the_default_mode_is_mask() {
        assert_eq!(RedactMode::default(), Mask);
    }

    #[test]
    fn the_mode_reads_from_snake_case_config() {
        let modes: Vec<RedactMode> =
            serde_json::from_str(r#"["off","mask","hash"]"#).expect("valid modes");
        assert_eq!(modes, vec![Off, Mask, Hash]);
    }

    /// The only test that touches the global: every other test here pins its
    /// mode, so this one cannot race with them. It never sets Off, so tests
    /// elsewhere that rely on the global hiding numbers (e.g. `CallerNumber`'s
    /// Debug) hold whatever the interleaving.
    #[test]
    fn the_global_mode_drives_the_wrappers_and_the_last_set_wins() {
        set_mode(Mask);
        set_mode(Hash);
        assert_eq!(mode(), Hash);
        assert_eq!(phone("+13175550125"), sha_prefix("+13175550125"));
        assert_eq!(Redacted::value("abc").to_string(), sha_prefix("abc"));
        assert_eq!(value("x"), sha_prefix("x"));
        assert_eq!(email("A@B.C"), sha_prefix("a@b.c"));

        set_mode(Mask);
        assert_eq!(mode(), Mask);
        assert_eq!(phone("+13175550125"), "+*******0125");
        assert_eq!(value("abc"), "***(3)");
    }
}
