//! Which party of a conversation is the customer, and which of its addresses is the key: a pure
//! function of the conversation's `direction` and `mediaType` / `messageType`, used for the
//! `customer.start` event and for the participant attrsync reads when the event lacks a key.
//!
//! The rule, and its sources (MyPureCloud/platform-client-sdk-python, `build/docs/`):
//! - `ani` / `addressFrom` is the side that *initiated* the contact, `dnis` / `addressTo` the
//!   side that received it (`AnalyticsSession.md`: "addressFrom: The address that initiated an
//!   action", "addressTo: The address receiving an action"; `Conversation.md`: the conversation
//!   `address` is "the DNIS for inbound calls and the ANI for outbound calls"). On an INBOUND
//!   contact the customer initiated it; on an OUTBOUND one the org did, so the customer is the
//!   receiving side.
//! - `direction` is `UNKNOWN`, `INBOUND` or `OUTBOUND` and `messageType` one of `UNKNOWN`, `SMS`,
//!   `TWITTER`, `FACEBOOK`, `LINE`, `WHATSAPP`, `WEBMESSAGING`, `OPEN`, `INSTAGRAM` (the
//!   enums of `CustomerStartDetailEventTopicCustomerStartEvent`); `APPLE` is added here for Apple
//!   Messages for Business (unverified as an enum value).
//! - Callbacks: `callbackNumbers` are the numbers to call the customer back on, whatever the
//!   direction of the callback itself.
//!
//! What the documentation leaves open is decided here and said so: an event without
//! `direction` is taken as inbound (the official sample says `INBOUND`; unverified for other
//! topics), `UNKNOWN` gives no side-based key at all, and a MESSAGE without `messageType` is
//! treated as a platform-id channel (never a phone key).

use phonenumber::country;

use super::keys::{non_blank, CustomerKeys};
use crate::phone::{is_withheld, CallerNumber};

/// Who started the contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Inbound,
    Outbound,
    Unknown,
}

impl Direction {
    /// `direction` as Genesys writes it (`INBOUND`, `inbound`, ...). Absent: inbound.
    pub fn parse(text: Option<&str>) -> Direction {
        match text.map(str::trim) {
            None | Some("") => Direction::Inbound,
            Some(d) if d.eq_ignore_ascii_case("inbound") => Direction::Inbound,
            Some(d) if d.eq_ignore_ascii_case("outbound") => Direction::Outbound,
            Some(_) => Direction::Unknown,
        }
    }
}

/// What kind of address the customer's side carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// A call: the address is a number (`tel:`, `sip:`).
    Voice,
    /// A callback: `callbackNumbers` first, then the call's side.
    Callback,
    Email,
    /// SMS, WhatsApp: the address is a phone number.
    PhoneMessaging,
    /// Facebook, Instagram, X, LINE, Apple, web and open messaging: a platform user id.
    PlatformMessaging,
    /// Web chat, cobrowse, video, screen share: no address to look a customer up by.
    NoAddress,
    /// No `mediaType` given: the address is classified by its shape (an `@` outside a SIP URI
    /// is an email, anything else a number).
    Unspecified,
}

impl Channel {
    /// From `mediaType` and, for MESSAGE, `messageType`.
    pub fn parse(media_type: Option<&str>, message_type: Option<&str>) -> Channel {
        let media = media_type.map(str::trim).unwrap_or_default();
        if media.is_empty() {
            return Channel::Unspecified;
        }
        match media.to_ascii_uppercase().as_str() {
            "VOICE" | "CALL" => Channel::Voice,
            "CALLBACK" => Channel::Callback,
            "EMAIL" => Channel::Email,
            "MESSAGE" => {
                let kind = message_type.map(str::trim).unwrap_or_default();
                if kind.eq_ignore_ascii_case("sms") || kind.eq_ignore_ascii_case("whatsapp") {
                    Channel::PhoneMessaging
                } else {
                    Channel::PlatformMessaging
                }
            }
            _ => Channel::NoAddress,
        }
    }
}

/// The addresses of a contact as an event or a participant gives them.
#[derive(Debug, Clone, Copy, Default)]
pub struct PartyFields<'a> {
    pub direction: Option<&'a str>,
    pub media_type: Option<&'a str>,
    pub message_type: Option<&'a str>,
    pub ani: Option<&'a str>,
    pub dnis: Option<&'a str>,
    pub address_from: Option<&'a str>,
    pub address_to: Option<&'a str>,
    pub callback_numbers: &'a [String],
}

/// Which side of the contact holds the customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// `ani`, `addressFrom`.
    Initiator,
    /// `dnis`, `addressTo`.
    Receiver,
    /// Neither can be trusted (`direction = UNKNOWN`).
    Neither,
}

/// The side of a contact in `direction` that is the customer's.
pub fn customer_side(direction: Direction) -> Side {
    match direction {
        Direction::Inbound => Side::Initiator,
        Direction::Outbound => Side::Receiver,
        Direction::Unknown => Side::Neither,
    }
}

/// The customer's key from a contact's addresses: a phone number, an email or a messaging id,
/// never an address of the org's side. Withheld numbers give nothing.
pub fn customer_keys(fields: &PartyFields<'_>, region: country::Id) -> CustomerKeys {
    let channel = Channel::parse(fields.media_type, fields.message_type);
    let side = customer_side(Direction::parse(fields.direction));
    let mut keys = CustomerKeys::default();
    if channel == Channel::Callback {
        keys.phone = fields
            .callback_numbers
            .iter()
            .filter(|n| !is_withheld(n))
            .find_map(|n| CallerNumber::parse(n, region));
        if keys.phone.is_some() {
            return keys;
        }
    }
    let (number, address) = match side {
        Side::Initiator => (fields.ani, fields.address_from),
        Side::Receiver => (fields.dnis, fields.address_to),
        Side::Neither => return keys,
    };
    let (number, address) = (non_blank(number), non_blank(address));
    match channel {
        Channel::Voice | Channel::Callback | Channel::PhoneMessaging => {
            keys.phone = [number, address]
                .into_iter()
                .flatten()
                .find_map(|raw| phone(&raw, region));
        }
        Channel::Email => keys.email = address.filter(|a| is_email(a)),
        Channel::PlatformMessaging => keys.messaging_id = address,
        Channel::NoAddress => {}
        Channel::Unspecified => {
            for raw in [number, address].into_iter().flatten() {
                if is_email(&raw) {
                    keys.email.get_or_insert(raw);
                } else if keys.phone.is_none() {
                    keys.phone = phone(&raw, region);
                }
            }
        }
    }
    keys
}

fn phone(raw: &str, region: country::Id) -> Option<CallerNumber> {
    if is_withheld(raw) || is_email(raw) {
        return None;
    }
    CallerNumber::parse(raw, region)
}

/// An `@` outside a SIP URI: an email address.
fn is_email(raw: &str) -> bool {
    let lower = raw.trim_start().to_ascii_lowercase();
    raw.contains('@') && !lower.starts_with("sip:") && !lower.starts_with("sips:")
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: country::Id = country::Id::US;
    const CUSTOMER: &str = "tel:+13175550125";
    const ORG: &str = "tel:+18005550199";

    fn e164(keys: &CustomerKeys) -> Option<String> {
        keys.phone.as_ref().and_then(CallerNumber::e164)
    }

    #[test]
    fn an_inbound_call_uses_the_ani_and_an_outbound_call_the_dnis() {
        let inbound = PartyFields {
            direction: Some("INBOUND"),
            media_type: Some("VOICE"),
            ani: Some(CUSTOMER),
            dnis: Some(ORG),
            ..PartyFields::default()
        };
        assert_eq!(
            e164(&customer_keys(&inbound, US)).as_deref(),
            Some("+13175550125")
        );
        let outbound = PartyFields {
            direction: Some("OUTBOUND"),
            ani: Some(ORG),
            dnis: Some(CUSTOMER),
            ..inbound
        };
        assert_eq!(
            e164(&customer_keys(&outbound, US)).as_deref(),
            Some("+13175550125")
        );
    }

    #[test]
    fn emails_use_address_from_inbound_and_address_to_outbound() {
        let fields = PartyFields {
            direction: Some("OUTBOUND"),
            media_type: Some("EMAIL"),
            address_from: Some("support@org.example"),
            address_to: Some("ada@example.com"),
            ..PartyFields::default()
        };
        assert_eq!(
            customer_keys(&fields, US).email.as_deref(),
            Some("ada@example.com")
        );
        let inbound = PartyFields {
            direction: Some("INBOUND"),
            address_from: Some("ada@example.com"),
            address_to: Some("support@org.example"),
            ..fields
        };
        assert_eq!(
            customer_keys(&inbound, US).email.as_deref(),
            Some("ada@example.com")
        );
    }

    #[test]
    fn a_platform_messaging_id_is_never_a_phone_number() {
        let fields = PartyFields {
            direction: Some("INBOUND"),
            media_type: Some("MESSAGE"),
            message_type: Some("FACEBOOK"),
            address_from: Some("2345678901234567"),
            ..PartyFields::default()
        };
        let keys = customer_keys(&fields, US);
        assert!(keys.phone.is_none());
        assert_eq!(keys.messaging_id.as_deref(), Some("2345678901234567"));
        let sms = PartyFields {
            message_type: Some("SMS"),
            address_from: Some("+13175550125"),
            ..fields
        };
        assert_eq!(
            e164(&customer_keys(&sms, US)).as_deref(),
            Some("+13175550125")
        );
    }

    #[test]
    fn a_callback_prefers_its_callback_numbers() {
        let numbers = [
            "".to_owned(),
            "anonymous".to_owned(),
            "3175550125".to_owned(),
        ];
        let fields = PartyFields {
            direction: Some("OUTBOUND"),
            media_type: Some("CALLBACK"),
            ani: Some(ORG),
            callback_numbers: &numbers,
            ..PartyFields::default()
        };
        assert_eq!(
            e164(&customer_keys(&fields, US)).as_deref(),
            Some("+13175550125")
        );
    }

    #[test]
    fn an_unknown_direction_gives_no_side_based_key_and_a_withheld_number_none_at_all() {
        let unknown = PartyFields {
            direction: Some("UNKNOWN"),
            media_type: Some("VOICE"),
            ani: Some(CUSTOMER),
            dnis: Some(ORG),
            ..PartyFields::default()
        };
        assert!(customer_keys(&unknown, US).is_empty());
        for withheld in [
            "sip:anonymous@anonymous.invalid",
            "tel:anonymous",
            "restricted",
            "",
        ] {
            let fields = PartyFields {
                direction: Some("INBOUND"),
                ani: Some(withheld),
                ..unknown
            };
            assert!(customer_keys(&fields, US).is_empty(), "{withheld:?}");
        }
    }
}
