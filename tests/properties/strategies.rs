//! The generators every property draws from, and the checks several properties share.

use super::*;

/// The field names the parsers look at, so generated objects hit the interesting branches.
pub(crate) const KNOWN_KEYS: &[&str] = &[
    "detail",
    "detail-type",
    "id",
    "topicName",
    "eventBody",
    "metadata",
    "CorrelationId",
    "conversationId",
    "participantId",
    "externalContactId",
    "ani",
    "addressFrom",
    "callbackNumbers",
    "mediaType",
    "eventId",
    "callerNumber",
    "email",
    "customerId",
    "attributes",
];

pub(crate) fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(KNOWN_KEYS).prop_map(str::to_owned),
        1 => "[a-zA-Z_.-]{0,8}",
        1 => any::<String>(),
    ]
}

/// Strings shaped like what senders put in the fields, plus arbitrary unicode.
pub(crate) fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => any::<String>(),
        1 => "[A-Za-z0-9_-]{1,70}",
        1 => "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        1 => " ?(\\.\\./|/|%2F|\\?|#|&|=|%|\\\\)[a-z./%?#&=]{0,12} ?",
        2 => arb_phone_text(),
        1 => "v2\\.detail\\.events\\.conversation\\.[a-z0-9{}-]{0,12}\\.customer\\.(start|end)",
        1 => "[a-z]{0,6}@[a-z]{0,6}(\\.[a-z]{2,3})?",
        1 => Just(String::new()),
        1 => "[ \t\n]{1,4}",
    ]
}

/// Caller numbers in every notation Genesys and CTI middleware use, and broken ones.
pub(crate) fn arb_phone_text() -> impl Strategy<Value = String> {
    let scheme = select(
        &[
            "",
            "tel:",
            "sip:",
            "sips:",
            "SIP:",
            "TEL:",
            "<sip:",
            "\"Jane 2\" <sip:",
        ][..],
    );
    let number = prop_oneof![
        // Real numbers in the notations people and switches write them in.
        select(
            &[
                "+13175550125",
                "3175550125",
                "(317) 555-0125",
                "1-317-555-0125",
                "+1 212 555 0125",
                "+442079460018",
                "020 7946 0018",
                "+44 7700 900123",
                "+4930123456",
                "+33 1 42 68 53 00",
                "+61412345678",
                "+34612345678",
                "+390612345678",
                "+81312345678",
                "+5491123456789",
            ][..]
        )
        .prop_map(str::to_owned),
        "\\+?[0-9]{1,20}",
        "\\+?[0-9 ().-]{0,30}",
        "\\+?[0-9]{21,400}",
        "[+0-9٠-٩０-９]{0,20}",
        "\\+{0,3}[0-9]{0,4}",
    ];
    let suffix = select(
        &[
            "",
            "@10.0.0.1",
            "@10.0.0.1;user=phone",
            ";ext=123",
            ";EXT= 4 5",
            ";ext=",
            "@[::1]:5060>",
            ">",
            "?x=1",
            ";user=phone;ext=99@host",
        ][..],
    );
    (scheme, number, suffix).prop_map(|(s, n, x)| format!("{s}{n}{x}"))
}

pub(crate) fn arb_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        // `From<f64>` maps NaN and infinities to null, as serde_json does.
        any::<f64>().prop_map(Value::from),
    ]
}

/// Arbitrary JSON of bounded depth (4 levels of containers, about 64 nodes).
pub(crate) fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => arb_number(),
        4 => arb_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(arb_key(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Regions including some with unusual numbering plans; any other valid code now and then.
pub(crate) fn arb_region() -> impl Strategy<Value = country::Id> {
    prop_oneof![
        4 => select(
            &[
                "US", "GB", "DE", "IT", "BR", "IN", "AU", "FR", "JP", "AR", "MX", "SG", "AE",
                "ZA", "NZ", "KR", "NG", "SM", "VA", "KZ", "RU", "CI",
            ][..]
        )
        .prop_map(|c| parse_region(c).expect("a valid region code")),
        1 => "[A-Z]{2}".prop_map(|c| parse_region(&c).unwrap_or(country::Id::US)),
    ]
}

pub(crate) fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The official EventBridge `customer.start` sample.
pub(crate) fn start_sample() -> &'static Value {
    static SAMPLE: OnceLock<Value> = OnceLock::new();
    SAMPLE.get_or_init(|| fixture("eventbridge-customer-start.json"))
}

/// JSON pointers to every node of `value`, the root included.
pub(crate) fn pointers(value: &Value, here: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let escaped = key.replace('~', "~0").replace('/', "~1");
                pointers(child, format!("{here}/{escaped}"), out);
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                pointers(child, format!("{here}/{index}"), out);
            }
        }
        _ => {}
    }
    out.push(here);
}

pub(crate) fn sample_pointers() -> &'static [String] {
    static POINTERS: OnceLock<Vec<String>> = OnceLock::new();
    POINTERS.get_or_init(|| {
        let mut out = Vec::new();
        pointers(start_sample(), String::new(), &mut out);
        out
    })
}

#[derive(Debug, Clone)]
pub(crate) enum Mutation {
    /// The node at the pointer becomes an arbitrary value.
    Replace(Index, Value),
    /// The node at the pointer disappears from its object or array.
    Remove(Index),
    /// The object at the pointer gains (or has replaced) a field.
    Insert(Index, String, Value),
}

/// Which envelope the mutated sample is sent as: the EventBridge event, the notification inside
/// it (`detail`), or the bare event body (`detail.eventBody`).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Envelope {
    EventBridge,
    Notification,
    Bare,
}

pub(crate) fn arb_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<Index>(), arb_json()).prop_map(|(i, v)| Mutation::Replace(i, v)),
        1 => any::<Index>().prop_map(Mutation::Remove),
        3 => (any::<Index>(), arb_key(), arb_json()).prop_map(|(i, k, v)| Mutation::Insert(i, k, v)),
    ]
}

pub(crate) fn apply(value: &mut Value, mutation: Mutation) {
    let pick = |index: &Index| {
        let all = sample_pointers();
        all[index.index(all.len())].clone()
    };
    match mutation {
        Mutation::Replace(index, new) => {
            if let Some(node) = value.pointer_mut(&pick(&index)) {
                *node = new;
            }
        }
        Mutation::Remove(index) => {
            let pointer = pick(&index);
            let Some((parent, last)) = pointer.rsplit_once('/') else {
                *value = Value::Null;
                return;
            };
            let last = last.replace("~1", "/").replace("~0", "~");
            match value.pointer_mut(parent) {
                Some(Value::Object(map)) => {
                    map.remove(&last);
                }
                Some(Value::Array(items)) => {
                    if let Ok(i) = last.parse::<usize>() {
                        if i < items.len() {
                            items.remove(i);
                        }
                    }
                }
                _ => {}
            }
        }
        Mutation::Insert(index, key, new) => {
            if let Some(Value::Object(map)) = value.pointer_mut(&pick(&index)) {
                map.insert(key, new);
            }
        }
    }
}

/// The official sample, sent in one of the three envelopes after a few mutations.
pub(crate) fn arb_mutated_sample() -> impl Strategy<Value = Value> {
    (
        select(
            &[
                Envelope::EventBridge,
                Envelope::Notification,
                Envelope::Bare,
            ][..],
        ),
        prop::collection::vec(arb_mutation(), 1..5),
    )
        .prop_map(|(envelope, mutations)| {
            let mut value = start_sample().clone();
            for mutation in mutations {
                apply(&mut value, mutation);
            }
            match envelope {
                Envelope::EventBridge => value,
                Envelope::Notification => value.get("detail").cloned().unwrap_or(value),
                Envelope::Bare => value.pointer("/detail/eventBody").cloned().unwrap_or(value),
            }
        })
}

/// The sample's event body with its customer fields replaced by caller-number-like text, so the
/// key extraction (ani / addressFrom / callbackNumbers) is exercised with real-looking input: as
/// an inbound voice call or callback.
pub(crate) fn arb_sample_with_customer_fields() -> impl Strategy<Value = Value> {
    (
        prop::option::of(arb_text()),
        prop::option::of(arb_text()),
        prop::option::of(prop::collection::vec(
            prop_oneof![arb_text().prop_map(Value::String), arb_json()],
            0..4,
        )),
        prop::option::of(arb_text()),
        prop::option::of(arb_text()),
        select(&["VOICE", "CALLBACK"][..]),
    )
        .prop_map(
            |(ani, address_from, callbacks, conversation_id, participant_id, media)| {
                let mut value = start_sample().clone();
                let body = value
                    .pointer_mut("/detail/eventBody")
                    .and_then(Value::as_object_mut)
                    .expect("the sample has an event body");
                let mut set = |key: &str, v: Option<Value>| {
                    if let Some(v) = v {
                        body.insert(key.to_owned(), v);
                    }
                };
                set("ani", ani.map(Value::String));
                set("addressFrom", address_from.map(Value::String));
                set("callbackNumbers", callbacks.map(Value::Array));
                set("conversationId", conversation_id.map(Value::String));
                set("participantId", participant_id.map(Value::String));
                // The sample is a chat, which has no number to look up by (domain::party).
                set("mediaType", Some(Value::String(media.to_owned())));
                value
            },
        )
}

/// What a request field holds, so that its generator can aim at both sides of its validation.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Field {
    /// Required text of at most 128 characters.
    EventId,
    /// A Genesys id: letters, digits, '-' and '_', at most 64.
    Id,
    /// A caller number in any notation.
    Phone,
    Email,
    /// Free text of at most 128 characters.
    Key,
}

/// One field's value: absent now and then, mostly plausible text, sometimes anything at all.
pub(crate) fn arb_field(field: Field) -> BoxedStrategy<Option<Value>> {
    let plausible: BoxedStrategy<String> = match field {
        Field::EventId => prop_oneof![
            8 => "[a-z0-9-]{1,20}",
            1 => " {0,2}",
            1 => "[a-z]{125,131}",
        ]
        .boxed(),
        Field::Id => prop_oneof![
            8 => "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
            4 => " ?[A-Za-z0-9_-]{1,66} ?",
        ]
        .boxed(),
        Field::Phone => arb_phone_text().boxed(),
        Field::Email => "[a-z.]{1,8}@[a-z]{1,8}\\.[a-z]{2,3}".boxed(),
        Field::Key => prop_oneof![8 => "[A-Za-z0-9-]{1,20}", 1 => "[a-z]{125,131}"].boxed(),
    };
    let required = matches!(field, Field::EventId) || matches!(field, Field::Id);
    let presence = if required { 0.9 } else { 0.5 };
    prop::option::weighted(
        presence,
        prop_oneof![
            16 => plausible.prop_map(Value::String),
            2 => arb_text().prop_map(Value::String),
            1 => arb_json(),
        ],
    )
    .boxed()
}

/// A JSON object shaped like one of the request bodies: its known fields, mostly plausible,
/// sometimes blank, too long, of the wrong type or joined by an unknown field.
pub(crate) fn arb_request_object(
    fields: &'static [(&'static str, Field)],
    with_attributes: bool,
) -> impl Strategy<Value = Value> {
    let attribute_key = prop_oneof![
        12 => "[a-z]{1,6}\\.[a-z]{1,8}",
        2 => arb_key(),
        1 => "[a-z.]{120,135}",
        1 => "[ \t]{0,2}",
    ];
    let attribute_value = prop_oneof![
        40 => arb_text().prop_map(Value::String),
        3 => "[a-z]{250,260}".prop_map(Value::String),
        1 => arb_json(),
    ];
    let attribute_count = prop_oneof![6 => 0usize..6, 1 => 45usize..56];
    // A vec, not `btree_map(.., n..=n)`: that rejects every draw with a duplicate key. Most keys
    // get their index appended so that the count lands near n (around the limit of 50).
    let attributes = attribute_count.prop_flat_map(move |n| {
        prop::collection::vec(
            (
                attribute_key.clone(),
                any::<bool>(),
                attribute_value.clone(),
            ),
            n..=n,
        )
        .prop_map(|pairs| {
            pairs
                .into_iter()
                .enumerate()
                .map(|(i, (key, unique, value))| {
                    let key = if unique { format!("{key}{i}") } else { key };
                    (key, value)
                })
                .collect::<Map<String, Value>>()
        })
    });
    let attributes = if with_attributes {
        prop::option::of(attributes).boxed()
    } else {
        Just(None).boxed()
    };
    let values: Vec<_> = fields
        .iter()
        .map(|&(name, field)| arb_field(field).prop_map(move |v| (name, v)))
        .collect();
    (
        values,
        attributes,
        prop::option::weighted(0.05, (arb_key(), arb_json())),
    )
        .prop_map(move |(values, attributes, unknown)| {
            let mut map = Map::new();
            for (name, value) in values {
                if let Some(value) = value {
                    map.insert(name.to_owned(), value);
                }
            }
            if let Some(attributes) = attributes {
                map.insert("attributes".to_owned(), Value::Object(attributes));
            }
            if let Some((key, value)) = unknown {
                map.insert(key, value);
            }
            Value::Object(map)
        })
}

pub(crate) const CTI_FIELDS: &[(&str, Field)] = &[
    ("eventId", Field::EventId),
    ("conversationId", Field::Id),
    ("participantId", Field::Id),
    ("callerNumber", Field::Phone),
    ("email", Field::Email),
    ("customerId", Field::Key),
    ("externalContactId", Field::Key),
];

pub(crate) const LOOKUP_FIELDS: &[(&str, Field)] = &[
    ("conversationId", Field::Id),
    ("participantId", Field::Id),
    ("ani", Field::Phone),
    ("email", Field::Email),
    ("customerId", Field::Key),
    ("externalContactId", Field::Key),
];

/// True for an id that can be put in a URL path as it is.
pub(crate) fn is_safe_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub(crate) fn check_genesys_event(value: &Value, region: country::Id) -> Result<(), TestCaseError> {
    if let Ok(GenesysEvent::CustomerStart(event)) = parse_genesys_event(value, region) {
        prop_assert!(
            is_safe_id(event.conversation_id.as_str()),
            "{:?}",
            event.conversation_id
        );
        if let Some(p) = &event.participant_id {
            prop_assert!(is_safe_id(p.as_str()), "{p:?}");
        }
        prop_assert!(!event.event_id.trim().is_empty());
        if let Some(phone) = &event.keys.phone {
            exercise(phone);
        }
    }
    Ok(())
}

/// Calls every accessor of a parsed number; none may panic.
pub(crate) fn exercise(number: &CallerNumber) {
    let _ = number.raw();
    let _ = number.extension();
    let _ = number.e164();
    let _ = number.canonical();
    let _ = number.notations(&ALL_NOTATIONS);
    for notation in ALL_NOTATIONS {
        let _ = number.notation(notation);
    }
    let _ = format!("{number:?}");
}
