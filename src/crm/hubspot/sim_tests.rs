//! The built requests sent to the HubSpot simulator: they find whom they should, and the
//! injection classics either are refused before sending or find nobody they should not.

use serde_json::json;
use tokio::net::TcpListener;

use super::*;
use crate::simulator::{HubSpotSim, HubSpotSimConfig};

type TestResult = Result<(), Box<dyn std::error::Error>>;
type BoxError = Box<dyn std::error::Error>;

async fn sim() -> std::io::Result<HubSpotSim> {
    let sim = HubSpotSim::start(
        HubSpotSimConfig {
            search_per_second: 1_000,
            ..HubSpotSimConfig::default()
        },
        TcpListener::bind("127.0.0.1:0").await?,
    )
    .await?;
    for contact in HubSpotSim::sample_contacts() {
        assert!(sim.seed_contact(contact).is_some());
    }
    assert!(sim
        .seed_contact(
            json!({"firstname": "Decoy", "email": "decoy@example.com", "phone": "+15135559999"})
        )
        .is_some());
    Ok(sim)
}

fn client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder().no_proxy().build()
}

async fn run_search(sim: &HubSpotSim, request: &SearchRequest) -> Result<Vec<String>, BoxError> {
    let response = client()?
        .post(format!("{}{SEARCH_PATH}", sim.base_url()))
        .bearer_auth("pat-na1-sim-token")
        .json(&request.body)
        .send()
        .await?;
    let status = response.status().as_u16();
    let body = response.bytes().await?;
    if status != 200 {
        return Err(format!("{status}: {:?}", parse_error(status, None, &body)).into());
    }
    Ok(parse_search(&body)?
        .records
        .into_iter()
        .filter_map(|r| {
            r.fields
                .get("firstname")
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        })
        .collect())
}

async fn run_get(sim: &HubSpotSim, request: &GetRequest) -> Result<Option<String>, BoxError> {
    let response = client()?
        .get(format!("{}{}", sim.base_url(), request.path))
        .query(&request.params)
        .bearer_auth("pat-na1-sim-token")
        .send()
        .await?;
    let status = response.status().as_u16();
    let body = response.bytes().await?;
    match status {
        200 => Ok(parse_contact(&body)?
            .fields
            .get("firstname")
            .and_then(|v| v.as_str())
            .map(str::to_owned)),
        404 if parse_error(status, None, &body).kind == ErrorKind::NotFound => Ok(None),
        _ => Err(format!("{status}: {:?}", parse_error(status, None, &body)).into()),
    }
}

fn firstname() -> Vec<String> {
    vec!["firstname".to_owned()]
}

#[tokio::test]
async fn phone_email_and_id_lookups_find_exactly_their_contact() -> TestResult {
    let sim = sim().await?;
    // Grace is stored as "(317) 555-0126": the E.164 notation alone misses her stored text, the
    // calculated property finds her.
    let grace = phone_search(
        &["+13175550126".to_owned()],
        national_significant_number("+13175550126").as_deref(),
        &PhoneProperties::default(),
        &firstname(),
        10,
        FilterLimits::default(),
    )?;
    assert_eq!(run_search(&sim, &grace[0]).await?, ["Grace"]);
    // Her mobile, in another notation, by stored text.
    let mobile = phone_search(
        &["+1 317 555 0199".to_owned(), "+13175550199".to_owned()],
        None,
        &PhoneProperties::default(),
        &firstname(),
        10,
        FilterLimits::default(),
    )?;
    assert_eq!(run_search(&sim, &mobile[0]).await?, ["Grace"]);
    let alan = phone_search(
        &["+442079460958".to_owned()],
        national_significant_number("+442079460958").as_deref(),
        &PhoneProperties::default(),
        &firstname(),
        10,
        FilterLimits::default(),
    )?;
    assert_eq!(run_search(&sim, &alan[0]).await?, ["Alan"]);
    assert_eq!(
        run_search(&sim, &email_search("ADA@example.com", &firstname(), 10)?).await?,
        ["Ada"]
    );
    assert_eq!(
        run_search(&sim, &id_search("100451", &firstname())?).await?,
        ["Ada"]
    );
    assert_eq!(
        run_get(&sim, &contact_by_id("100452", &firstname())?)
            .await?
            .as_deref(),
        Some("Grace")
    );
    assert_eq!(
        run_get(&sim, &contact_by_email("alan@example.co.uk", &firstname())?)
            .await?
            .as_deref(),
        Some("Alan")
    );
    assert_eq!(
        run_get(&sim, &contact_by_id("999999", &firstname())?).await?,
        None
    );
    Ok(())
}

const CLASSICS: [&str; 15] = [
    "'",
    "\\",
    "}",
    "\"}]}",
    "OR 1=1",
    "' OR 1=1 --",
    "--",
    "%",
    "*",
    "^",
    "\"",
    "ümlaut",
    "",
    "*@example.com",
    "hs_object_id",
];

#[tokio::test]
async fn the_injection_classics_are_refused_or_find_nobody_they_should_not() -> TestResult {
    let sim = sim().await?;
    let long = "a".repeat(10_000);
    let mut sent = 0;
    for classic in CLASSICS.iter().copied().chain([long.as_str()]) {
        // A real value with nothing appended is still that value; with anything appended, EQ and
        // IN are exact, so it must find nobody.
        let ada = classic.is_empty().then_some("Ada");
        let defaults = PhoneProperties::default();
        let limits = FilterLimits::default();
        let searches = [
            (
                phone_search(
                    &[classic.to_owned()],
                    None,
                    &defaults,
                    &firstname(),
                    10,
                    limits,
                ),
                None,
            ),
            (
                phone_search(
                    &[format!("+15135557611{classic}")],
                    None,
                    &defaults,
                    &firstname(),
                    10,
                    limits,
                ),
                ada,
            ),
            (
                phone_search(&[], Some(classic), &defaults, &firstname(), 10, limits),
                None,
            ),
            (
                email_search(classic, &firstname(), 10).map(|r| vec![r]),
                None,
            ),
            (
                email_search(&format!("ada@example.com{classic}"), &firstname(), 10)
                    .map(|r| vec![r]),
                ada,
            ),
            (
                email_search(&format!("{classic}@example.com"), &firstname(), 10).map(|r| vec![r]),
                None,
            ),
            (id_search(classic, &firstname()).map(|r| vec![r]), None),
        ];
        for (requests, allowed) in searches {
            for request in requests.into_iter().flatten() {
                sent += 1;
                let found = run_search(&sim, &request).await?;
                assert!(
                    found.iter().all(|name| Some(name.as_str()) == allowed),
                    "{} found {found:?}",
                    request.body
                );
            }
        }
        let reads = [
            (contact_by_id(classic, &firstname()), None),
            (contact_by_email(classic, &firstname()), None),
            (
                contact_by_email(&format!("ada@example.com{classic}"), &firstname()),
                ada,
            ),
        ];
        for (request, allowed) in reads {
            let Ok(request) = request else { continue };
            sent += 1;
            assert_eq!(
                run_get(&sim, &request).await?.as_deref(),
                allowed,
                "{request:?}"
            );
        }
    }
    assert!(sent > 20, "only {sent} requests were sent");
    assert_eq!(sim.stats().invalid_requests, 0);
    Ok(())
}
