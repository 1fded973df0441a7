//! Property tests for the pure functions that take untrusted input: the Genesys event parser,
//! CTI and data-action validation, caller-number parsing, the merge planner and the CRM URL
//! template, and the JSON body extractor in front of them. No attrsync instance is started; each
//! property runs `CASES` generated cases, the whole module a few seconds.
//!
//! The tests at the end pin bugs these properties found. The same inputs are fuzzed without a
//! case limit by the cargo-fuzz crate in `fuzz/` (see `fuzz/README.md`).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use attrsync::crm::http::HttpCrm;
use attrsync::domain::KeyKind;
use attrsync::http::{ApiError, StrictJson};
use attrsync::ingest::{parse_genesys_event, CtiEvent, GenesysEvent, LookupRequest};
use attrsync::merge::{plan, Attributes, MergePolicy, Overwrite};
use attrsync::phone::{parse_region, CallerNumber, Notation};
use axum::extract::FromRequest as _;
use chrono::{DateTime, TimeZone, Utc};
use phonenumber::country;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::{Map, Value};

/// Cases per property: enough to find shallow bugs on every CI run while the whole module stays
/// within a few seconds.
const CASES: u32 = 256;

/// No failure files: a failing case is printed minimised, and whoever fixes it turns it into a
/// named regression test (as below), rather than proptest writing `proptest-regressions/` into
/// the tree of whoever ran the tests.
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

const ALL_NOTATIONS: [Notation; 6] = Notation::ALL;

// ---------------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------------

/// The field names the parsers look at, so generated objects hit the interesting branches.
const KNOWN_KEYS: &[&str] = &[
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

fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(KNOWN_KEYS).prop_map(str::to_owned),
        1 => "[a-zA-Z_.-]{0,8}",
        1 => any::<String>(),
    ]
}

/// Strings shaped like what senders put in the fields, plus arbitrary unicode.
fn arb_text() -> impl Strategy<Value = String> {
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
fn arb_phone_text() -> impl Strategy<Value = String> {
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

fn arb_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        // `From<f64>` maps NaN and infinities to null, as serde_json does.
        any::<f64>().prop_map(Value::from),
    ]
}

/// Arbitrary JSON of bounded depth (4 levels of containers, about 64 nodes).
fn arb_json() -> impl Strategy<Value = Value> {
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
fn arb_region() -> impl Strategy<Value = country::Id> {
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

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The official EventBridge `customer.start` sample.
fn start_sample() -> &'static Value {
    static SAMPLE: OnceLock<Value> = OnceLock::new();
    SAMPLE.get_or_init(|| fixture("eventbridge-customer-start.json"))
}

/// JSON pointers to every node of `value`, the root included.
fn pointers(value: &Value, here: String, out: &mut Vec<String>) {
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

fn sample_pointers() -> &'static [String] {
    static POINTERS: OnceLock<Vec<String>> = OnceLock::new();
    POINTERS.get_or_init(|| {
        let mut out = Vec::new();
        pointers(start_sample(), String::new(), &mut out);
        out
    })
}

#[derive(Debug, Clone)]
enum Mutation {
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
enum Envelope {
    EventBridge,
    Notification,
    Bare,
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<Index>(), arb_json()).prop_map(|(i, v)| Mutation::Replace(i, v)),
        1 => any::<Index>().prop_map(Mutation::Remove),
        3 => (any::<Index>(), arb_key(), arb_json()).prop_map(|(i, k, v)| Mutation::Insert(i, k, v)),
    ]
}

fn apply(value: &mut Value, mutation: Mutation) {
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
fn arb_mutated_sample() -> impl Strategy<Value = Value> {
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
/// key extraction (ani / addressFrom / callbackNumbers) is exercised with real-looking input.
fn arb_sample_with_customer_fields() -> impl Strategy<Value = Value> {
    (
        prop::option::of(arb_text()),
        prop::option::of(arb_text()),
        prop::option::of(prop::collection::vec(
            prop_oneof![arb_text().prop_map(Value::String), arb_json()],
            0..4,
        )),
        prop::option::of(arb_text()),
        prop::option::of(arb_text()),
    )
        .prop_map(
            |(ani, address_from, callbacks, conversation_id, participant_id)| {
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
                value
            },
        )
}

/// What a request field holds, so that its generator can aim at both sides of its validation.
#[derive(Debug, Clone, Copy)]
enum Field {
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
fn arb_field(field: Field) -> BoxedStrategy<Option<Value>> {
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
fn arb_request_object(
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

const CTI_FIELDS: &[(&str, Field)] = &[
    ("eventId", Field::EventId),
    ("conversationId", Field::Id),
    ("participantId", Field::Id),
    ("callerNumber", Field::Phone),
    ("email", Field::Email),
    ("customerId", Field::Key),
    ("externalContactId", Field::Key),
];

const LOOKUP_FIELDS: &[(&str, Field)] = &[
    ("conversationId", Field::Id),
    ("participantId", Field::Id),
    ("ani", Field::Phone),
    ("email", Field::Email),
    ("customerId", Field::Key),
    ("externalContactId", Field::Key),
];

/// True for an id that can be put in a URL path as it is.
fn is_safe_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn check_genesys_event(value: &Value, region: country::Id) -> Result<(), TestCaseError> {
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
fn exercise(number: &CallerNumber) {
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

// ---------------------------------------------------------------------------------------------
// Genesys events
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn parse_genesys_event_never_panics_on_arbitrary_json(
        value in arb_json(),
        region in arb_region(),
    ) {
        check_genesys_event(&value, region)?;
    }

    #[test]
    fn parse_genesys_event_never_panics_on_a_mutated_official_sample(
        value in arb_mutated_sample(),
        region in arb_region(),
    ) {
        check_genesys_event(&value, region)?;
    }

    #[test]
    fn parse_genesys_event_never_panics_on_the_sample_with_arbitrary_customer_fields(
        value in arb_sample_with_customer_fields(),
        region in arb_region(),
    ) {
        check_genesys_event(&value, region)?;
    }
}

// ---------------------------------------------------------------------------------------------
// CTI events and data-action lookups
// ---------------------------------------------------------------------------------------------

fn check_cti(value: Value, region: country::Id) -> Result<(), TestCaseError> {
    // Through bytes, as the HTTP extractor reads them.
    let bytes = serde_json::to_vec(&value).expect("a Value always serialises");
    let Ok(event) = serde_json::from_slice::<CtiEvent>(&bytes) else {
        return Ok(());
    };
    let Ok(valid) = event.validate(region) else {
        return Ok(());
    };
    prop_assert!(
        is_safe_id(valid.event.conversation_id.as_str()),
        "{:?}",
        valid.event.conversation_id
    );
    if let Some(p) = &valid.event.participant_id {
        prop_assert!(is_safe_id(p.as_str()), "{p:?}");
    }
    prop_assert!(!valid.event.event_id.trim().is_empty());
    prop_assert!(valid.event.event_id.chars().count() <= 128);
    prop_assert!(valid.attributes.len() <= 50);
    for (key, value) in &valid.attributes {
        prop_assert!(
            !key.trim().is_empty() && key.chars().count() <= 128,
            "{key:?}"
        );
        prop_assert!(!key.chars().any(char::is_control), "{key:?}");
        prop_assert!(value.chars().count() <= 256);
    }
    if let Some(phone) = &valid.event.keys.phone {
        exercise(phone);
    }
    Ok(())
}

fn check_lookup(value: Value, region: country::Id) -> Result<(), TestCaseError> {
    let bytes = serde_json::to_vec(&value).expect("a Value always serialises");
    let Ok(request) = serde_json::from_slice::<LookupRequest>(&bytes) else {
        return Ok(());
    };
    let Ok(valid) = request.validate(region) else {
        return Ok(());
    };
    if let Some(c) = &valid.conversation_id {
        prop_assert!(is_safe_id(c.as_str()), "{c:?}");
    }
    if let Some(p) = &valid.participant_id {
        prop_assert!(is_safe_id(p.as_str()), "{p:?}");
        prop_assert!(valid.conversation_id.is_some());
    }
    prop_assert!(!valid.keys.is_empty() || valid.conversation_id.is_some());
    if let Some(phone) = &valid.keys.phone {
        exercise(phone);
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn cti_events_never_panic_on_arbitrary_json_and_accepted_ids_are_path_safe(
        value in arb_json(),
        region in arb_region(),
    ) {
        check_cti(value, region)?;
    }

    #[test]
    fn cti_shaped_events_never_panic_and_accepted_ids_are_path_safe(
        value in arb_request_object(CTI_FIELDS, true),
        region in arb_region(),
    ) {
        check_cti(value, region)?;
    }

    #[test]
    fn lookup_requests_never_panic_on_arbitrary_json_and_accepted_ids_are_path_safe(
        value in arb_json(),
        region in arb_region(),
    ) {
        check_lookup(value, region)?;
    }

    #[test]
    fn lookup_shaped_requests_never_panic_and_accepted_ids_are_path_safe(
        value in arb_request_object(LOOKUP_FIELDS, false),
        region in arb_region(),
    ) {
        check_lookup(value, region)?;
    }
}

// ---------------------------------------------------------------------------------------------
// The JSON body extractor
// ---------------------------------------------------------------------------------------------

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime")
    })
}

/// Request bodies: arbitrary bytes, JSON of any shape, CTI-shaped JSON, JSON with trailing
/// bytes, and nesting past serde_json's recursion limit.
fn arb_body() -> impl Strategy<Value = Vec<u8>> {
    let json = |v: Value| serde_json::to_vec(&v).expect("a Value always serialises");
    prop_oneof![
        2 => prop::collection::vec(any::<u8>(), 0..64),
        2 => arb_json().prop_map(json),
        3 => arb_request_object(CTI_FIELDS, true).prop_map(json),
        1 => (arb_request_object(CTI_FIELDS, true), "[ \n]{0,2}[a-z{}\\[\\],]{1,3}")
            .prop_map(move |(v, tail)| [json(v), tail.into_bytes()].concat()),
        1 => (100usize..300, select(&["[", "{\"a\":"][..])).prop_map(|(depth, open)| {
            open.repeat(depth).into_bytes()
        }),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// `StrictJson` accepts exactly the JSON objects serde_json accepts, never panics, and
    /// refuses the rest with 415 (not JSON by its Content-Type), 400 (not JSON) or 422 (JSON of
    /// the wrong shape, including any non-object: serde alone would read `["e1","c1"]` as a
    /// struct).
    #[test]
    fn strict_json_accepts_what_serde_accepts_and_classifies_the_rest(
        body in arb_body(),
        content_type in prop::option::weighted(0.9, select(&[
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/cloudevents+json",
            "text/plain",
            "application/jsonx",
            "",
        ][..])),
    ) {
        let mut request = axum::http::Request::builder().method("POST").uri("/v1/events/cti");
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let request = request
            .body(axum::body::Body::from(body.clone()))
            .expect("a valid request");
        let extracted = runtime().block_on(StrictJson::<CtiEvent>::from_request(request, &()));

        let is_json = content_type.is_some_and(|t| {
            let essence = t.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
            essence == "application/json"
                || (essence.starts_with("application/") && essence.ends_with("+json"))
        });
        let direct = serde_json::from_slice::<CtiEvent>(&body);
        match extracted {
            Ok(StrictJson(event)) => {
                prop_assert!(is_json);
                prop_assert_eq!(body.iter().find(|b| !b.is_ascii_whitespace()), Some(&b'{'));
                let direct = direct.map_err(|e| TestCaseError::fail(format!("serde refused: {e}")))?;
                prop_assert_eq!(format!("{event:?}"), format!("{direct:?}"));
            }
            Err(ApiError::UnsupportedMediaType) => prop_assert!(!is_json, "{content_type:?}"),
            Err(error) => {
                prop_assert!(is_json, "{content_type:?}: {error}");
                let is_object = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
                prop_assert!(
                    direct.is_err() || !is_object,
                    "serde accepted the object StrictJson refused: {error}"
                );
                let status = error.status().as_u16();
                prop_assert!(status == 400 || status == 422, "{status}: {error}");
                // (`field` may be "" for an unknown key spelled "": it names the key.)
                if let ApiError::InvalidField(field) = &error {
                    prop_assert!(!field.reason.is_empty());
                }
            }
        }
    }
}

/// serde's derived `Deserialize` also reads a struct from a JSON array, field by field in
/// declaration order, and `deny_unknown_fields` does not stop that: `["e1","c1"]` is accepted
/// as a CTI event (eventId "e1", conversationId "c1") and `["c1"]` as a lookup, although the
/// API takes only objects and `StrictJson` promises strict parsing.
#[test]
fn a_json_array_is_neither_a_cti_event_nor_a_lookup() {
    for body in [
        r#"["e1","c1",null,"tel:+13175550125"]"#,
        r#" ["c1",null,"3175550125"]"#,
    ] {
        let request = axum::http::Request::builder()
            .method("POST")
            .uri("/v1/events/cti")
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body))
            .expect("a valid request");
        let extracted = runtime().block_on(StrictJson::<CtiEvent>::from_request(request, &()));
        assert!(
            matches!(extracted, Err(ApiError::InvalidField(_))),
            "{body}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Caller numbers
// ---------------------------------------------------------------------------------------------

fn is_e164(s: &str) -> bool {
    s.strip_prefix('+')
        .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn caller_number_parse_never_panics_on_arbitrary_strings(
        raw in prop_oneof![
            any::<String>(),
            arb_phone_text(),
            // Huge digit runs, with and without a scheme.
            "(tel:|sip:)?\\+?[0-9]{100,5000}",
            // Non-ASCII digits and look-alikes only.
            "[٠-٩۰-۹०-९０-９⁰-⁹₀-₉ ]{0,30}",
        ],
        region in arb_region(),
    ) {
        if let Some(number) = CallerNumber::parse(&raw, region) {
            exercise(&number);
            prop_assert_eq!(number.raw(), raw.trim());
            prop_assert!(raw.bytes().any(|b| b.is_ascii_digit()));
            prop_assert!(!number.canonical().is_empty());
            if let Some(ext) = number.extension() {
                prop_assert!(!ext.is_empty() && ext.bytes().all(|b| b.is_ascii_digit()), "{ext:?}");
            }
            if let Some(e164) = number.e164() {
                prop_assert!(is_e164(&e164), "{raw:?} -> {e164:?}");
            }
        }
    }

    #[test]
    fn a_plus_and_ascii_digits_always_parse_and_any_e164_is_plus_and_digits(
        digits in prop_oneof![4 => "[0-9]{1,20}", 1 => "[0-9]{21,200}"],
        scheme in select(&["", "tel:", "sip:", "sips:"][..]),
        region in arb_region(),
    ) {
        let raw = format!("{scheme}+{digits}");
        let number = CallerNumber::parse(&raw, region);
        prop_assert!(number.is_some(), "{raw:?} gave None");
        let number = number.expect("checked above");
        exercise(&number);
        if let Some(e164) = number.e164() {
            prop_assert!(is_e164(&e164), "{raw:?} -> {e164:?}");
            prop_assert_eq!(number.canonical(), e164);
        } else {
            prop_assert_eq!(number.canonical(), format!("+{digits}"));
        }
        prop_assert!(number.canonical().starts_with('+'));
        prop_assert!(number.notation(Notation::E164).starts_with('+'));
        for notation in [Notation::E164Digits, Notation::NationalDigits] {
            let text = number.notation(notation);
            prop_assert!(
                text.bytes().all(|b| b.is_ascii_digit() || b == b'+'),
                "{notation:?}: {text:?}"
            );
        }
    }
}

// Bugs these properties found (fixed in src/phone.rs); the tests keep them fixed.

/// Real numbers of other countries whose national number starts with '1', as libphonenumber
/// itself formats them in E.164.
const E164_NUMBERS_STARTING_WITH_1: &[&str] = &[
    "+4915112345678", // German mobile (0151 ...)
    "+491701234567",  // German mobile (0170 ...)
    "+441174960000",  // Bristol
    "+33142685300",   // Paris
    "+8613812345678", // Chinese mobile
];

/// phonenumber 0.3.10's `parse(Some(region), "+49...")` strips the *default region's* national
/// prefix from the national number even though the '+' gave another country code: with the US
/// default ("1"), "+4915112345678" becomes the valid but different "+495112345678" (a Hannover
/// landline), so the CRM is asked about someone else. libphonenumber ignores the default region
/// for a number with '+'; `phonenumber::parse(None, ..)` does so too.
#[test]
fn an_e164_caller_number_keeps_its_digits_whatever_the_default_region() {
    for &e164 in E164_NUMBERS_STARTING_WITH_1 {
        for region in [
            country::Id::US,
            country::Id::GB,
            country::Id::DE,
            country::Id::FR,
        ] {
            let number = CallerNumber::parse(e164, region).expect("digits");
            assert_eq!(
                number.e164().as_deref(),
                Some(e164),
                "{e164} under {region:?}"
            );
            assert_eq!(number.canonical(), e164, "{e164} under {region:?}");
        }
    }
}

proptest! {
    #![proptest_config(config())]

    /// The general form of the bug above: a number given with '+' and its country code means the
    /// same number whatever the configured default region.
    #[test]
    fn an_e164_caller_number_does_not_depend_on_the_default_region(
        digits in "[1-9][0-9]{6,14}",
        first in arb_region(),
        second in arb_region(),
    ) {
        let raw = format!("+{digits}");
        let a = CallerNumber::parse(&raw, first).expect("digits");
        let b = CallerNumber::parse(&raw, second).expect("digits");
        prop_assert_eq!(a.e164(), b.e164(), "{} under {:?} and {:?}", raw, first, second);
    }
}

/// `is_possible_length` reads `descriptors().general().possible_length()`, which is empty for
/// every country in phonenumber 0.3.10's metadata (the lengths are on the fixed-line, mobile, ...
/// descriptors), so the "at least of a possible length" fallback documented on `CallerNumber`
/// never applies: a NANP number in a range the metadata does not list as valid gets no E.164.
#[test]
fn a_number_of_a_possible_length_gets_an_e164_form() {
    for raw in ["+15551234567", "5551234567", "tel:+1-555-123-4567"] {
        let number = CallerNumber::parse(raw, country::Id::US).expect("digits");
        assert_eq!(number.e164().as_deref(), Some("+15551234567"), "{raw}");
    }
}

// ---------------------------------------------------------------------------------------------
// Merge
// ---------------------------------------------------------------------------------------------

/// Names chosen to collide: flattened paths ("a_b" from {"a":{"b":..}}), the status attributes,
/// empty names.
const NAMES: &[&str] = &["a", "b", "a_b", "a.b", "b_0", "found", "syncedAt", "", "x"];
const PREFIXES: &[&str] = &["", "crm.", "a", "a_", "crm"];

/// The longest value attrsync itself writes: an RFC 3339 timestamp with milliseconds.
const TIMESTAMP_CHARS: usize = "2024-05-17T09:30:15.123Z".len();

fn arb_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => select(NAMES).prop_map(str::to_owned),
        1 => "[a-z_.]{0,6}",
    ]
}

/// An attribute name, often one the planner itself produces (prefix + name).
fn arb_attribute_key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (select(PREFIXES), select(NAMES)).prop_map(|(p, n)| format!("{p}{n}")),
        1 => any::<String>(),
    ]
}

fn arb_value_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(&["", "v", "gold", "true", "false", "x"][..]).prop_map(str::to_owned),
        2 => any::<String>(),
        1 => "[a-z]{250,300}",
        1 => "[日本語😀é]{20,300}",
    ]
}

fn arb_record_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => arb_number(),
        4 => arb_value_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(arb_name(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_record() -> impl Strategy<Value = Option<Map<String, Value>>> {
    prop::option::weighted(
        0.8,
        prop::collection::btree_map(arb_name(), arb_record_value(), 0..8)
            .prop_map(|m| m.into_iter().collect()),
    )
}

fn arb_attributes() -> impl Strategy<Value = Attributes> {
    prop::collection::btree_map(arb_attribute_key(), arb_value_text(), 0..8)
}

fn arb_policy() -> impl Strategy<Value = MergePolicy> {
    let overwrite = select(&[Overwrite::CrmWins, Overwrite::KeepExisting][..]);
    let max_value_chars = prop_oneof![
        1 => 0usize..=30,
        2 => 24usize..=300,
        1 => Just(256usize),
    ];
    let fields = prop_oneof![
        2 => Just(BTreeMap::new()),
        1 => prop::collection::btree_map(arb_name(), arb_name(), 0..5),
    ];
    let status_name = || prop::option::weighted(0.7, arb_name());
    (
        select(PREFIXES).prop_map(str::to_owned),
        fields,
        prop::collection::vec(arb_name(), 0..3),
        overwrite,
        max_value_chars,
        select(&["_", ".", "", "__"][..]).prop_map(str::to_owned),
        status_name(),
        status_name(),
    )
        .prop_map(
            |(
                prefix,
                fields,
                exclude,
                overwrite,
                max_value_chars,
                flatten_separator,
                timestamp_attribute,
                found_attribute,
            )| MergePolicy {
                prefix,
                fields,
                exclude,
                overwrite,
                max_value_chars,
                flatten_separator,
                timestamp_attribute,
                found_attribute,
            },
        )
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 17, 9, 30, 15)
        .single()
        .expect("a valid timestamp")
        + chrono::Duration::milliseconds(123)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn merge_plan_is_capped_idempotent_and_keeps_to_its_namespace(
        policy in arb_policy(),
        record in arb_record(),
        extra in arb_attributes(),
        current in arb_attributes(),
    ) {
        let found_name = policy.found_attribute.as_deref().map(|n| policy.attribute_name(n));
        let timestamp_name = policy.timestamp_attribute.as_deref().map(|n| policy.attribute_name(n));
        let is_status = |key: &str| {
            found_name.as_deref() == Some(key) || timestamp_name.as_deref() == Some(key)
        };

        let patch = plan(&policy, record.as_ref(), &extra, &current, now());

        // Deterministic.
        prop_assert_eq!(&plan(&policy, record.as_ref(), &extra, &current, now()), &patch);

        for (key, value) in &patch.attributes {
            // Capped: CRM and extra values always; attrsync's own status values ("true"/"false",
            // the timestamp) whenever the cap leaves room for a timestamp at all.
            if !is_status(key) || policy.max_value_chars >= TIMESTAMP_CHARS {
                prop_assert!(
                    value.chars().count() <= policy.max_value_chars,
                    "{key:?} = {value:?} is longer than {}", policy.max_value_chars
                );
            }
            // Namespace: the prefix, or a name the event asked for.
            prop_assert!(
                key.starts_with(&policy.prefix) || extra.contains_key(key),
                "{key:?} is neither under {:?} nor an extra", policy.prefix
            );
            // Minimal: nothing is written that is already there (the timestamp excepted).
            if timestamp_name.as_deref() != Some(key.as_str()) {
                prop_assert_ne!(current.get(key), Some(value), "{} is unchanged", key);
            }
            // KeepExisting leaves non-empty values alone, except attrsync's own status.
            if policy.overwrite == Overwrite::KeepExisting && !is_status(key) {
                let existing = current.get(key).map(String::as_str).unwrap_or_default();
                prop_assert!(existing.is_empty(), "{key:?} = {existing:?} was overwritten");
            }
        }
        // The timestamp comes only with a real change.
        if let Some(name) = &timestamp_name {
            if patch.attributes.contains_key(name) {
                prop_assert!(patch.attributes.len() >= 2 || found_name.as_deref() == Some(name.as_str()));
            }
        }

        // Idempotent: once the patch is applied, planning again (later) changes nothing.
        let mut applied = current.clone();
        applied.extend(patch.attributes.clone());
        let again = plan(
            &policy,
            record.as_ref(),
            &extra,
            &applied,
            now() + chrono::Duration::seconds(90),
        );
        prop_assert!(again.is_empty(), "second plan after applying {:?}: {:?}", patch, again);
    }

    #[test]
    fn mapped_fields_are_capped_deterministic_and_allow_listed(
        policy in arb_policy(),
        record in arb_record(),
    ) {
        let record = record.unwrap_or_default();
        let mapped = policy.mapped_fields(&record);
        for (name, value) in &mapped {
            prop_assert!(value.chars().count() <= policy.max_value_chars, "{name:?}");
            if !policy.fields.is_empty() {
                prop_assert!(policy.fields.values().any(|target| target == name), "{name:?}");
            }
        }
        prop_assert_eq!(policy.mapped_fields(&record), mapped);
    }
}

// ---------------------------------------------------------------------------------------------
// CRM URL templates
// ---------------------------------------------------------------------------------------------

const URL_SPECIALS: [char; 5] = ['/', '?', '#', '&', '='];

/// True when `s` is only unreserved characters and `%XX` escapes.
fn is_fully_encoded(s: &str) -> bool {
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

fn arb_kind() -> impl Strategy<Value = KeyKind> {
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
// The generators themselves
// ---------------------------------------------------------------------------------------------

/// Draws `n` values from a strategy with a fixed seed.
fn draw<S: Strategy>(strategy: S, n: usize) -> Vec<S::Value> {
    let mut runner = TestRunner::deterministic();
    (0..n)
        .map(|_| {
            strategy
                .new_tree(&mut runner)
                .expect("the strategy generates")
                .current()
        })
        .collect()
}

/// A property that only ever sees rejected input proves nothing: the generators must reach the
/// accepting paths of every parser often enough (checked on a fixed seed, so never flaky).
#[test]
fn the_generators_reach_the_accepting_paths() {
    const N: usize = 128;
    let us = country::Id::US;
    let percent = |hits: usize| hits * 100 / N;

    let starts = draw(arb_mutated_sample(), N)
        .iter()
        .filter(|v| {
            matches!(
                parse_genesys_event(v, us),
                Ok(GenesysEvent::CustomerStart(_))
            )
        })
        .count();
    let with_phone = draw(arb_sample_with_customer_fields(), N)
        .iter()
        .filter(|v| {
            matches!(parse_genesys_event(v, us), Ok(GenesysEvent::CustomerStart(e)) if e.keys.phone.is_some())
        })
        .count();
    let cti = draw(arb_request_object(CTI_FIELDS, true), N)
        .into_iter()
        .filter(|v| {
            serde_json::from_value::<CtiEvent>(v.clone())
                .is_ok_and(|e| e.validate(us).is_ok_and(|v| !v.attributes.is_empty()))
        })
        .count();
    let lookups = draw(arb_request_object(LOOKUP_FIELDS, false), N)
        .into_iter()
        .filter(|v| {
            serde_json::from_value::<LookupRequest>(v.clone()).is_ok_and(|r| r.validate(us).is_ok())
        })
        .count();
    let e164 = draw(arb_phone_text(), N)
        .iter()
        .filter(|raw| CallerNumber::parse(raw, us).is_some_and(|n| n.e164().is_some()))
        .count();
    let kept = draw(
        (
            arb_policy(),
            arb_record(),
            arb_attributes(),
            arb_attributes(),
        ),
        N,
    )
    .into_iter()
    .filter(|(policy, record, extra, current)| {
        policy.overwrite == Overwrite::KeepExisting
            && current.values().any(|v| !v.is_empty())
            && !plan(policy, record.as_ref(), extra, current, now()).is_empty()
    })
    .count();

    let seen = [
        ("customer.start from the mutated sample", percent(starts)),
        ("customer.start with a phone key", percent(with_phone)),
        ("CTI events accepted with attributes", percent(cti)),
        ("lookups accepted", percent(lookups)),
        ("caller numbers with an E.164 form", percent(e164)),
        ("KeepExisting patches over existing values", percent(kept)),
    ];
    println!("{seen:#?}");
    for (what, pct) in seen {
        assert!(pct >= 5, "only {pct}% of generated inputs give {what}");
    }
}
