//! The customer keys an event carries, their kinds (the order `crm.key_order` tries them in),
//! and the one way to walk them: [`CustomerKeys::iter`] yields each present key as a
//! [`CustomerKey`], the form CRM adapters are asked about.

use serde::{Deserialize, Serialize};

use crate::phone::CallerNumber;

/// The kinds of customer key an event can carry, in lookup order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    CustomerId,
    ExternalContactId,
    Phone,
    Email,
    /// A messaging platform's user id (Facebook, Instagram, X, LINE, Apple, web messaging,
    /// open messaging): never a phone number, even when it is all digits.
    MessagingId,
}

impl KeyKind {
    pub const ALL: [KeyKind; 5] = [
        KeyKind::CustomerId,
        KeyKind::ExternalContactId,
        KeyKind::Phone,
        KeyKind::Email,
        KeyKind::MessagingId,
    ];

    /// The name in configuration, URL placeholders and the lookup answer's `matchedBy`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::CustomerId => "customer_id",
            KeyKind::ExternalContactId => "external_contact_id",
            KeyKind::Phone => "phone",
            KeyKind::Email => "email",
            KeyKind::MessagingId => "messaging_id",
        }
    }
}

/// One way of identifying the customer, as handed to a CRM adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomerKey {
    CustomerId(String),
    ExternalContactId(String),
    Phone(CallerNumber),
    Email(String),
    MessagingId(String),
}

impl CustomerKey {
    pub fn kind(&self) -> KeyKind {
        match self {
            CustomerKey::CustomerId(_) => KeyKind::CustomerId,
            CustomerKey::ExternalContactId(_) => KeyKind::ExternalContactId,
            CustomerKey::Phone(_) => KeyKind::Phone,
            CustomerKey::Email(_) => KeyKind::Email,
            CustomerKey::MessagingId(_) => KeyKind::MessagingId,
        }
    }

    /// Cache identity: a phone number in any notation maps to one entry.
    pub fn cache_key(&self) -> String {
        match self {
            CustomerKey::CustomerId(id) => format!("id:{id}"),
            CustomerKey::ExternalContactId(id) => format!("ext:{id}"),
            CustomerKey::Phone(n) => format!("phone:{}", n.canonical()),
            CustomerKey::Email(e) => format!("email:{}", e.to_lowercase()),
            CustomerKey::MessagingId(id) => format!("msg:{id}"),
        }
    }
}

/// The ways an event can identify the customer. Any may be missing; the pipeline may fill the
/// phone number and external contact id from the participant when it reads the conversation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomerKeys {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_contact_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<CallerNumber>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The platform id of a messaging channel's customer (see [`KeyKind::MessagingId`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messaging_id: Option<String>,
}

impl CustomerKeys {
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// Every key present, in [`KeyKind::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = CustomerKey> + '_ {
        let text = |v: &Option<String>| v.clone();
        [
            text(&self.customer_id).map(CustomerKey::CustomerId),
            text(&self.external_contact_id).map(CustomerKey::ExternalContactId),
            self.phone.clone().map(CustomerKey::Phone),
            text(&self.email).map(CustomerKey::Email),
            text(&self.messaging_id).map(CustomerKey::MessagingId),
        ]
        .into_iter()
        .flatten()
    }
}

/// Turns optional input text into an optional value: data actions send every input, so an
/// empty or blank string means "not given".
pub fn non_blank(s: Option<&str>) -> Option<String> {
    s.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_inputs_count_as_absent() {
        assert_eq!(non_blank(Some("  ")), None);
        assert_eq!(non_blank(Some(" x ")), Some("x".to_owned()));
        assert_eq!(non_blank(None), None);
    }

    #[test]
    fn the_keys_of_an_event_are_walked_in_key_kind_order() {
        let keys = CustomerKeys {
            email: Some("ada@example.com".into()),
            customer_id: Some("C1".into()),
            ..CustomerKeys::default()
        };
        let kinds: Vec<KeyKind> = keys.iter().map(|k| k.kind()).collect();
        assert_eq!(kinds, [KeyKind::CustomerId, KeyKind::Email]);
        assert!(!keys.is_empty());
        assert!(CustomerKeys::default().is_empty());
    }

    #[test]
    fn key_kinds_are_named_as_in_configuration() {
        for kind in KeyKind::ALL {
            let json = serde_json::to_value(kind).unwrap();
            assert_eq!(json, kind.as_str());
        }
    }
}
