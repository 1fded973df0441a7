//! The built requests sent over HTTP to the Freshdesk simulator: notations and emails find their
//! contacts through the list filters and the search, and the injection classics are refused or
//! match nothing but a contact that literally holds them, without one rejected search query.

use serde_json::json;
use tokio::net::TcpListener;

use super::*;
use crate::simulator::freshdesk::{FreshdeskSim, FreshdeskSimConfig};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const ADA: &str = "43000000101";
const GRACE: &str = "43000000102";
const ODD: &str = "43000000900";

async fn account() -> Result<FreshdeskSim, Box<dyn std::error::Error>> {
    let sim = FreshdeskSim::start(
        FreshdeskSimConfig {
            // The classics below make more calls than Growth's Contacts List cap allows.
            contacts_list_per_minute: 1_000,
            per_minute: 1_000,
            ..FreshdeskSimConfig::default()
        },
        TcpListener::bind("127.0.0.1:0").await?,
    )
    .await?;
    for contact in FreshdeskSim::sample_contacts() {
        sim.insert(contact)?;
    }
    sim.insert(json!({"id": 43000000900_u64, "phone": "O'Brien \\ } -- % * ^ OR 1=1", "mobile": "x OR active:true"}))?;
    Ok(sim)
}

async fn get(
    sim: &FreshdeskSim,
    request: &FreshdeskRequest,
) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let client = reqwest::Client::builder().no_proxy().build()?;
    let response = client
        .get(format!("{}{}", sim.base_url(), request.path_and_query()))
        .basic_auth("sim-api-key", Some("X"))
        .send()
        .await?;
    assert_eq!(response.status(), 200, "{}", request.path_and_query());
    Ok(response.bytes().await?.to_vec())
}

async fn list_ids(
    sim: &FreshdeskSim,
    field: ContactField,
    value: &str,
) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let body = get(sim, &list_lookup(field, value, 2)?).await?;
    Ok(parse_list(&body)?
        .into_iter()
        .map(|r| r.record_id)
        .collect())
}

async fn search_ids(
    sim: &FreshdeskSim,
    terms: &[(ContactField, &str)],
) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let body = get(sim, &search_lookup(terms, 1)?).await?;
    let (total, records) = parse_search(&body)?;
    assert_eq!(total as usize, records.len());
    Ok(records.into_iter().map(|r| r.record_id).collect())
}

#[tokio::test]
async fn list_filters_and_search_find_contacts_by_phone_mobile_email_and_external_id() -> TestResult
{
    let sim = account().await?;
    assert_eq!(
        list_ids(&sim, ContactField::Phone, "+13175550125").await?,
        [ADA]
    );
    assert_eq!(
        list_ids(&sim, ContactField::Mobile, "+1 317 555 0199").await?,
        [GRACE]
    );
    assert_eq!(
        list_ids(&sim, ContactField::Email, "grace.hopper@example.com").await?,
        [GRACE]
    );
    let both = [
        (ContactField::Phone, "+13175550125"),
        (ContactField::Mobile, "+13175550125"),
    ];
    assert_eq!(search_ids(&sim, &both).await?, [ADA]);
    assert_eq!(
        search_ids(&sim, &[(ContactField::UniqueExternalId, "C-1001")]).await?,
        [ADA]
    );
    let body = get(&sim, &contact_by_id(GRACE)?).await?;
    assert_eq!(parse_contact(&body)?.fields["name"], "Grace Hopper");
    assert!(sim.stats().rejected_queries.is_empty());
    Ok(())
}

#[tokio::test]
async fn the_injection_classics_are_refused_or_match_nothing_they_should_not() -> TestResult {
    let sim = account().await?;
    let long = "9".repeat(300);
    let classics = [
        "'",
        "\\",
        "}",
        "OR 1=1",
        "' OR '1'='1",
        "--",
        "%",
        "*",
        "^",
        "\"",
        "x' OR active:true OR phone:'y",
        "null",
        ")",
        "Zoë ☎ 東京",
        "+1 317 555 01",
        "",
        long.as_str(),
        "a&email=ada@example.com",
    ];
    let mut searched = 0;
    for value in classics {
        // List filters: no query language, so every well-formed value is sent and matched as text.
        if let Ok(request) = list_lookup(ContactField::Phone, value, 2) {
            let body = get(&sim, &request).await?;
            assert_eq!(parse_list(&body)?, Vec::new(), "list {value:?}");
        }
        match search_lookup(
            &[(ContactField::Phone, value), (ContactField::Email, value)],
            1,
        ) {
            Err(_) => continue,
            Ok(request) => {
                searched += 1;
                let (total, _) = parse_search(&get(&sim, &request).await?)?;
                assert_eq!(total, 0, "search {value:?}");
            }
        }
    }
    assert!(
        searched >= 10,
        "plain-text classics must be searchable, not refused"
    );
    assert!(
        sim.stats().rejected_queries.is_empty(),
        "{:?}",
        sim.stats().rejected_queries
    );

    // Stored text that looks like syntax is found literally, and only that contact.
    assert_eq!(
        list_ids(&sim, ContactField::Phone, "O'Brien \\ } -- % * ^ OR 1=1").await?,
        [ODD]
    );
    assert_eq!(
        search_ids(&sim, &[(ContactField::Mobile, "x OR active:true")]).await?,
        [ODD]
    );
    Ok(())
}

#[tokio::test]
async fn throttling_is_read_back_as_a_retryable_error_with_its_wait() -> TestResult {
    let sim = FreshdeskSim::start(
        FreshdeskSimConfig {
            contacts_list_per_minute: 1,
            ..FreshdeskSimConfig::default()
        },
        TcpListener::bind("127.0.0.1:0").await?,
    )
    .await?;
    let client = reqwest::Client::builder().no_proxy().build()?;
    let url = format!(
        "{}{}",
        sim.base_url(),
        list_lookup(ContactField::Phone, "+1", 1)?.path_and_query()
    );
    let mut last = None;
    for _ in 0..2 {
        last = Some(
            client
                .get(&url)
                .basic_auth("sim-api-key", Some("X"))
                .send()
                .await?,
        );
    }
    let response = last.ok_or("no response")?;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let headers = RateLimitHeaders::parse(
        header("x-ratelimit-total").as_deref(),
        header("x-ratelimit-remaining").as_deref(),
        header("x-ratelimit-used-currentrequest").as_deref(),
        header("retry-after").as_deref(),
    );
    let status = response.status().as_u16();
    let error = parse_error(status, headers, &response.bytes().await?);
    assert_eq!(error.kind, ErrorKind::RateLimited);
    assert!(error.is_retryable());
    assert!(error
        .retry_after()
        .is_some_and(|d| (1..=60).contains(&d.as_secs())));
    assert_eq!(error.rate_limit.total, Some(200));
    Ok(())
}

#[tokio::test]
async fn under_either_phone_matching_setting_what_comes_back_passes_the_recheck() -> TestResult {
    let sim = account().await?;
    // Exact stored text (the default): another notation finds nothing.
    assert!(list_ids(&sim, ContactField::Phone, "(317) 555-0125")
        .await?
        .is_empty());
    // An account that compares digits finds Ada; the re-check must accept her.
    sim.set_phone_digits_only(true);
    let body = get(&sim, &list_lookup(ContactField::Phone, "13175550125", 2)?).await?;
    let records = parse_list(&body)?;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].record_id, ADA);
    assert!(record_matches(&records[0], "phone", "13175550125"));
    Ok(())
}
