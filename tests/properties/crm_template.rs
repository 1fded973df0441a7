//! CRM URL templates, `HttpCrm::render`.

use super::*;

pub(crate) const URL_SPECIALS: [char; 5] = ['/', '?', '#', '&', '='];

/// True when `s` is only unreserved characters and `%XX` escapes.
pub(crate) fn is_fully_encoded(s: &str) -> bool {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = |j: usize| bytes.get(j).is_some_and(u8::is_ascii_hexdigit);
                if !(hex(i + 1) && hex(i + 2)) {
                    return false;
                }
                i += 3;
            }
            b if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) => i += 1,
            _ => return false,
        }
    }
    true
}

pub(crate) fn arb_kind() -> impl Strategy<Value = KeyKind> {
    select(
        &[
            KeyKind::CustomerId,
            KeyKind::ExternalContactId,
            KeyKind::Phone,
            KeyKind::Email,
        ][..],
    )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn http_crm_render_percent_encodes_every_placeholder_value(
        kind in arb_kind(),
        parts in prop::collection::vec(
            prop_oneof![
                3 => "[a-z0-9/?#&=%:.{}_+ -]{0,12}",
                1 => select(&["{customer_id}", "{external_contact_id}", "{phone}", "{email}", "{", "}"][..])
                    .prop_map(str::to_owned),
                1 => any::<String>(),
            ],
            1..5,
        ),
        value in prop_oneof![
            any::<String>(),
            "[/?#&=%+ a-z{}]{0,20}",
            "%[0-9A-Fa-f]{2}",
            arb_phone_text(),
        ],
    ) {
        let placeholder = format!("{{{}}}", kind.as_str());
        // Parts holding the placeholder themselves would make more placeholders than counted.
        let parts: Vec<String> = parts.iter().map(|p| p.replace(&placeholder, "{}")).collect();
        let template = parts.join(&placeholder);
        let holes = parts.len() - 1;

        let url = HttpCrm::render(&template, kind, &value);

        // What one placeholder becomes: only unreserved characters and %XX escapes, which
        // decode back to the value exactly.
        let encoded = HttpCrm::render(&placeholder, kind, &value);
        prop_assert!(is_fully_encoded(&encoded), "{value:?} -> {encoded:?}");
        let decoded = percent_encoding::percent_decode_str(&encoded).decode_utf8();
        prop_assert!(decoded.is_ok_and(|d| d == value), "{value:?} -> {encoded:?}");
        // Every placeholder is filled, and nothing else in the template changes.
        prop_assert_eq!(&url, &parts.join(&encoded));

        // The URL's delimiters are exactly the template's: no value adds a / ? # & =.
        for c in URL_SPECIALS {
            prop_assert_eq!(
                url.matches(c).count(),
                template.matches(c).count(),
                "{:?} in {:?} from {:?}", c, url, template
            );
        }
        // Every '%' beyond the template's starts an escape of the value.
        for (i, _) in encoded.match_indices('%') {
            prop_assert!(is_fully_encoded(&encoded[i..i + 3]));
        }
        prop_assert_eq!(
            url.matches('%').count(),
            template.matches('%').count() + holes * encoded.matches('%').count()
        );
    }
}

// ---------------------------------------------------------------------------------------------
