//! The adapter's pure parts: which requests a key becomes, and the fields a user carries.

use serde_json::json;

use super::*;
use crate::phone::CallerNumber;

fn settings(configure: impl FnOnce(&mut ZendeskCrmSettings)) -> ZendeskCrm {
    let mut s: ZendeskCrmSettings = serde_json::from_value(json!({
        "subdomain": "acme", "base_url": "", "auth": "api_token", "email": "agent@example.com",
        "api_token": "t", "oauth_token": "", "end_users_only": true, "phone_form": "any_format",
        "phone_user_fields": ["mobile_2"], "customer_id": "id", "external_contact_id": "account_no",
        "fields": [], "user_fields": {},
        "rate_limit_per_minute": 0, "rate_limit_burst": 1,
        "timeout_ms": 100, "max_retries": 0, "retry_base_ms": 1, "retry_max_ms": 1,
        "max_retry_after_secs": 1, "breaker_failures": 0, "breaker_cooldown_ms": 1,
        "cache_ttl_secs": 0, "not_found_ttl_secs": 0
    }))
    .expect("settings");
    configure(&mut s);
    ZendeskCrm::from_settings(&s, country::Id::US).expect("adapter")
}

fn queries(adapter: &ZendeskCrm, key: &CustomerKey) -> Vec<String> {
    adapter
        .probes(key)
        .expect("probes")
        .iter()
        .map(|p| adapter.url(&p.request).to_string())
        .collect()
}

#[test]
fn a_phone_key_searches_the_national_number_with_the_wildcard_and_each_custom_phone_field() {
    let a = settings(|_| {});
    let key = CustomerKey::Phone(
        CallerNumber::parse("tel:+442079460958", country::Id::US).expect("number"),
    );
    assert_eq!(
        queries(&a, &key),
        [
            "https://acme.zendesk.com/api/v2/search.json?query=type%3Auser+role%3Aend-user+phone%3A*2079460958",
            "https://acme.zendesk.com/api/v2/search.json?query=type%3Auser+role%3Aend-user+mobile_2%3A*2079460958",
        ]
    );
    let exact = settings(|s| {
        s.phone_form = ZendeskPhoneForm::PlusDigits;
        s.phone_user_fields.clear();
        s.end_users_only = false;
    });
    assert_eq!(
        queries(&exact, &key),
        ["https://acme.zendesk.com/api/v2/search.json?query=type%3Auser+phone%3A%2B442079460958"]
    );
}

#[test]
fn id_keys_map_to_show_user_external_id_or_a_custom_field() {
    let a = settings(|_| {});
    assert_eq!(
        queries(&a, &CustomerKey::CustomerId("361000001".into())),
        ["https://acme.zendesk.com/api/v2/users/361000001.json"]
    );
    assert!(
        queries(&a, &CustomerKey::CustomerId("../admin".into())).is_empty(),
        "a user id that is not an integer finds no one"
    );
    assert_eq!(
        queries(&a, &CustomerKey::ExternalContactId("AC 1001".into())),
        ["https://acme.zendesk.com/api/v2/search.json?query=type%3Auser+role%3Aend-user+account_no%3A%22AC+1001%22"]
    );
    assert!(a
        .probes(&CustomerKey::ExternalContactId("x\" role:admin".into()))
        .is_err());
    let b = settings(|s| {
        s.customer_id = String::new();
        s.external_contact_id = "external_id".into();
    });
    assert_eq!(
        b.key_kinds(),
        [KeyKind::ExternalContactId, KeyKind::Phone, KeyKind::Email]
    );
}

#[test]
fn fields_are_picked_and_custom_fields_lifted_to_their_own_names() {
    let a = settings(|s| {
        s.fields = vec!["name".into(), "user_fields".into()];
        s.user_fields = [("tier".to_owned(), "segment".to_owned())].into();
    });
    let user = json!({"id": 1, "name": "Ada", "phone": "+15135557611",
                      "user_fields": {"tier": "gold", "secret": "x"}});
    let shaped = a.shape(user.as_object().cloned().expect("object"));
    assert_eq!(
        Value::Object(shaped),
        json!({"name": "Ada", "segment": "gold"})
    );
}
