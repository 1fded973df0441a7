//! The JSON body extractor, `StrictJson`, in front of every parser.

use super::*;

pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime")
    })
}

/// Request bodies: arbitrary bytes, JSON of any shape, CTI-shaped JSON, JSON with trailing
/// bytes, and nesting past serde_json's recursion limit.
pub(crate) fn arb_body() -> impl Strategy<Value = Vec<u8>> {
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
