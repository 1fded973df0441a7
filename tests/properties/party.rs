//! `domain::party`, through the event parser and through the participant attrsync reads: no
//! direction and media combination yields a phone key taken from the org's side.

use attrsync::domain::customer_keys;
use attrsync::genesys::model::Participant;
use serde_json::json;

use super::*;

/// A US number in the 555-01xx fictional range, as `tel:` URI: `(area, line)`.
fn arb_number() -> impl Strategy<Value = String> {
    (200u32..=989, 0u32..=99).prop_map(|(area, line)| format!("tel:+1{area}55501{line:02}"))
}

fn arb_direction() -> impl Strategy<Value = Option<&'static str>> {
    select(
        &[
            Some("INBOUND"),
            Some("OUTBOUND"),
            Some("inbound"),
            Some("outbound"),
            Some("UNKNOWN"),
            Some("sideways"),
            None,
        ][..],
    )
}

fn arb_media() -> impl Strategy<Value = (Option<&'static str>, Option<&'static str>)> {
    (
        select(
            &[
                Some("VOICE"),
                Some("CALLBACK"),
                Some("EMAIL"),
                Some("MESSAGE"),
                Some("CHAT"),
                Some("COBROWSE"),
                None,
            ][..],
        ),
        select(
            &[
                Some("SMS"),
                Some("WHATSAPP"),
                Some("FACEBOOK"),
                Some("INSTAGRAM"),
                Some("WEBMESSAGING"),
                Some("OPEN"),
                None,
            ][..],
        ),
    )
}

/// Which side initiated: the org when the direction says outbound; for any other direction the
/// customer (an unknown direction may be either, and must not give a side-based key at all).
fn org_initiated(direction: Option<&str>) -> bool {
    direction.is_some_and(|d| d.eq_ignore_ascii_case("outbound"))
}

fn canonical(raw: &str) -> String {
    CallerNumber::parse(raw, country::Id::US)
        .map(|n| n.canonical())
        .unwrap_or_default()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn no_direction_or_media_gives_a_phone_key_from_the_orgs_side(
        direction in arb_direction(),
        (media, message) in arb_media(),
        customer in arb_number(),
        org in arb_number(),
        callback in any::<bool>(),
        unknown_flips in any::<bool>(),
    ) {
        prop_assume!(canonical(&customer) != canonical(&org));
        let unknown = !matches!(
            direction.map(str::to_ascii_uppercase).as_deref(),
            None | Some("INBOUND") | Some("OUTBOUND")
        );
        // With an unknown direction, either side may be the org's.
        let org_first = org_initiated(direction) || (unknown && unknown_flips);
        let (from, to) = if org_first { (&org, &customer) } else { (&customer, &org) };

        // The event.
        let mut body = json!({
            "conversationId": "c-1", "participantId": "p-1",
            "ani": from, "addressFrom": from, "dnis": to, "addressTo": to,
        });
        for (name, value) in [("direction", direction), ("mediaType", media), ("messageType", message)] {
            if let Some(v) = value {
                body[name] = json!(v);
            }
        }
        if callback {
            body["callbackNumbers"] = json!([customer]);
        }
        let event = match parse_genesys_event(&body, country::Id::US) {
            Ok(GenesysEvent::CustomerStart(event)) => *event,
            other => return Err(TestCaseError::fail(format!("{other:?}"))),
        };
        if let Some(phone) = &event.keys.phone {
            prop_assert_ne!(phone.canonical(), canonical(&org), "{}", body);
            if unknown {
                prop_assert!(callback && media == Some("CALLBACK"), "an unknown direction gave {:?}", phone);
            }
        }

        // The participant read from the conversation: its own address is the customer's.
        let mut session = json!({});
        if let Some(d) = direction {
            session["direction"] = json!(d.to_ascii_lowercase());
        }
        if let Some(m) = message {
            session["type"] = json!(m.to_ascii_lowercase());
        }
        if callback {
            session["callbackNumbers"] = json!([customer]);
        }
        let array = match media {
            Some("VOICE") | None => "calls",
            Some("CALLBACK") => "callbacks",
            Some("EMAIL") => "emails",
            Some("MESSAGE") => "messages",
            _ => "chats",
        };
        let mut participant = json!({
            "id": "p-1", "purpose": "customer", "ani": from, "dnis": to, "address": customer,
        });
        participant[array] = json!([session]);
        let participant: Participant = serde_json::from_value(participant)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let keys = customer_keys(&participant.party_fields(), country::Id::US);
        if let Some(phone) = &keys.phone {
            prop_assert_ne!(phone.canonical(), canonical(&org));
        }
    }
}
