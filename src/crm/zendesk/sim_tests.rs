//! The built lookups sent to the Zendesk simulator: they find whom they should, and the
//! injection classics either are refused before sending or find nobody they should not.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::json;
use tokio::net::TcpListener;
use url::Url;

use super::*;
use crate::simulator::{ZendeskSim, ZendeskSimConfig};

type TestResult = Result<(), Box<dyn std::error::Error>>;

async fn sim() -> std::io::Result<ZendeskSim> {
    let sim = ZendeskSim::start(
        ZendeskSimConfig::default(),
        TcpListener::bind("127.0.0.1:0").await?,
    )
    .await?;
    for user in ZendeskSim::sample_users() {
        assert!(sim.seed_user(user).is_some());
    }
    // Someone an over-broad query would wrongly find.
    assert!(sim
        .seed_user(json!({"name": "Decoy", "email": "decoy@example.com", "phone": "+15135559999",
                          "external_id": "decoy", "user_fields": {"tier": "gold", "account_no": "AC-1001X"}}))
        .is_some());
    Ok(sim)
}

async fn ids(sim: &ZendeskSim, lookup: &Lookup) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let url = lookup.url(&Url::parse(&sim.base_url())?);
    let response = reqwest::Client::builder()
        .no_proxy()
        .build()?
        .get(url)
        .header(
            "authorization",
            format!(
                "Basic {}",
                STANDARD.encode("agent@example.com/token:sim-api-token")
            ),
        )
        .send()
        .await?;
    let status = response.status().as_u16();
    let body = response.bytes().await?;
    if status != 200 {
        return Err(format!("{status}: {:?}", parse_error(status, None, &body)).into());
    }
    Ok(parse_users(&body)?
        .into_iter()
        .filter_map(|r| {
            r.fields
                .get("name")
                .and_then(|n| n.as_str())
                .map(str::to_owned)
        })
        .collect())
}

#[tokio::test]
async fn each_key_kind_finds_exactly_its_user() -> TestResult {
    let sim = sim().await?;
    let roles = RoleFilter::EndUsers;
    assert_eq!(
        ids(
            &sim,
            &phone_lookup("5135557611", PhoneForm::AnyFormat, roles)?
        )
        .await?,
        ["Ada Lovelace"]
    );
    assert_eq!(
        ids(
            &sim,
            &phone_lookup("3175550126", PhoneForm::AnyFormat, roles)?
        )
        .await?,
        ["Grace Hopper"]
    );
    assert_eq!(
        ids(
            &sim,
            &phone_lookup("15135557611", PhoneForm::PlusDigits, roles)?
        )
        .await?,
        ["Ada Lovelace"]
    );
    assert_eq!(
        ids(&sim, &email_lookup("GRACE.HOPPER@example.com", roles)?).await?,
        ["Grace Hopper"]
    );
    assert_eq!(
        ids(&sim, &external_id_lookup("c-1003")?).await?,
        ["Alan Turing"]
    );
    assert_eq!(
        ids(
            &sim,
            &user_field_lookup("account_no", FieldValue::Text("AC-1001"), roles)?
        )
        .await?,
        ["Ada Lovelace"]
    );
    // The leading * is a suffix of the stored digits: the national significant number finds a
    // London number, the trunk-prefixed national digits do not.
    assert_eq!(
        ids(
            &sim,
            &phone_lookup("2079460958", PhoneForm::AnyFormat, roles)?
        )
        .await?,
        ["Alan Turing"]
    );
    assert!(ids(
        &sim,
        &phone_lookup("02079460958", PhoneForm::AnyFormat, roles)?
    )
    .await?
    .is_empty());
    // The agent's own number is not a customer's.
    assert!(ids(
        &sim,
        &phone_lookup("5135550000", PhoneForm::AnyFormat, roles)?
    )
    .await?
    .is_empty());
    assert_eq!(
        ids(
            &sim,
            &phone_lookup("5135550000", PhoneForm::AnyFormat, RoleFilter::AnyRole)?
        )
        .await?,
        ["Support Agent"]
    );
    Ok(())
}

const CLASSICS: [&str; 14] = [
    "'",
    "\\",
    "}",
    "OR 1=1",
    "' OR 1=1 --",
    "--",
    "%",
    "*",
    "^",
    "\"",
    "\" OR \"\"=\"",
    "ümlaut",
    "",
    "type:user",
];

#[tokio::test]
async fn the_injection_classics_are_refused_or_find_nobody_they_should_not() -> TestResult {
    let sim = sim().await?;
    let long = "a".repeat(10_000);
    let mut sent = 0;
    for classic in CLASSICS.iter().copied().chain([long.as_str()]) {
        // (lookup, whom it may find). A classic appended to a real value may still find that
        // value's user: Zendesk drops punctuation ("Punctuation characters are generally not
        // included in searches"), so `AC-1001 '` is AC-1001. It must never find anyone else.
        let candidates = [
            (
                phone_lookup(classic, PhoneForm::AnyFormat, RoleFilter::EndUsers),
                None,
            ),
            (
                phone_lookup(
                    &format!("5135557611{classic}"),
                    PhoneForm::AnyFormat,
                    RoleFilter::EndUsers,
                ),
                Some("Ada Lovelace"),
            ),
            (email_lookup(classic, RoleFilter::EndUsers), None),
            (
                email_lookup(&format!("ada@example.com{classic}"), RoleFilter::EndUsers),
                Some("Ada Lovelace"),
            ),
            (
                email_lookup(&format!("{classic}@example.com"), RoleFilter::EndUsers),
                None,
            ),
            (external_id_lookup(classic), None),
            (
                external_id_lookup(&format!("C-1001{classic}")),
                Some("Ada Lovelace"),
            ),
            (
                user_field_lookup("tier", FieldValue::Text(classic), RoleFilter::EndUsers),
                None,
            ),
            (
                user_field_lookup(
                    "account_no",
                    FieldValue::Text(&format!("AC-1001 {classic}")),
                    RoleFilter::EndUsers,
                ),
                Some("Ada Lovelace"),
            ),
        ];
        for (lookup, allowed) in candidates {
            let Ok(lookup) = lookup else { continue };
            sent += 1;
            let found = ids(&sim, &lookup).await?;
            assert!(
                found.iter().all(|name| Some(name.as_str()) == allowed),
                "{lookup} found {found:?}"
            );
        }
    }
    // Most classics are refused before sending; the rest reached the simulator as valid queries
    // (an invalid one would have failed `ids` with the 422).
    assert!(sent > 10, "only {sent} lookups were sent");
    assert_eq!(sim.stats().invalid_queries, 0);
    Ok(())
}
