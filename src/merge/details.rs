//! Attributes the agent sees without a script: the Conversation Details panel shows participant
//! data whose name is `conversationDetails.participantData.<label>`, and a value may start with a
//! type prefix that decides how it is displayed ("Attach custom conversation attributes to
//! participant data in Architect", rcworkbench.genesys.cloud/articles/
//! attach-custom-conversation-attributes-to-participant-data-in-architect; the same text on
//! help.dev-genesys.cloud). The article's examples: the name
//! "conversationDetails.participantData.Account Balance" and the value "number:1090.56".
//!
//! Verified there: the name format and the prefixes `checkbox` (`true`/`false`), `date`,
//! `datetime`, `enum`, `identifier`, `integer`, `number`, `longtext`. Not verified: the rest of
//! the article's prefix table (the stored copy is cut after `longtext`), whether the panel shows
//! keys written through the REST PATCH rather than by Set Participant Data (it reads the same
//! participant data, unverified), and how it orders or truncates them.

use std::collections::BTreeMap;

use super::Attributes;

/// The name every Conversation Details key starts with.
pub const PREFIX: &str = "conversationDetails.participantData.";

/// The value-type prefixes the Resource Center article lists (as far as it could be read).
pub const VALUE_TYPES: [&str; 8] = [
    "checkbox",
    "date",
    "datetime",
    "enum",
    "identifier",
    "integer",
    "number",
    "longtext",
];

/// The Conversation Details attributes for a flattened record: for each `fields` entry
/// (flattened CRM field -> label) present in `flat`, `PREFIX + label` = the value, with
/// `types[field] + ":"` in front when a type is set. Values are cut to `max_chars` as a whole.
pub fn attributes(
    fields: &BTreeMap<String, String>,
    types: &BTreeMap<String, String>,
    flat: &Attributes,
    cap: impl Fn(&str) -> String,
) -> Attributes {
    fields
        .iter()
        .filter_map(|(field, label)| {
            let value = flat.get(field)?;
            let value = match types.get(field).map(|t| t.trim()).filter(|t| !t.is_empty()) {
                Some(kind) => format!("{kind}:{value}"),
                None => value.clone(),
            };
            Some((format!("{PREFIX}{label}"), cap(&value)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chosen_fields_become_conversation_details_keys_with_their_type_prefix() {
        let fields = BTreeMap::from([
            ("balance".to_owned(), "Account Balance".to_owned()),
            ("tier".to_owned(), "Tier".to_owned()),
            ("missing".to_owned(), "Missing".to_owned()),
        ]);
        let types = BTreeMap::from([("balance".to_owned(), "number".to_owned())]);
        let flat = Attributes::from([
            ("balance".to_owned(), "1090.56".to_owned()),
            ("tier".to_owned(), "gold".to_owned()),
        ]);
        let out = attributes(&fields, &types, &flat, str::to_owned);
        assert_eq!(
            out,
            Attributes::from([
                (
                    "conversationDetails.participantData.Account Balance".to_owned(),
                    "number:1090.56".to_owned()
                ),
                (
                    "conversationDetails.participantData.Tier".to_owned(),
                    "gold".to_owned()
                ),
            ])
        );
    }
}
