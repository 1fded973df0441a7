//! The built requests sent over HTTP to the ServiceNow simulator: real notations find their
//! records, and the injection classics either never reach the instance or match nothing but a
//! record that literally holds them, without a single dropped query part.

use serde_json::json;
use tokio::net::TcpListener;

use super::*;
use crate::simulator::servicenow::{ServiceNowSim, ServiceNowSimConfig};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const ADA: &str = "6816f79cc0a8016401c5a33be04be441";
const GRACE: &str = "9ee1b13dc6112271007f9d0efdb69cd0";

async fn instance() -> Result<ServiceNowSim, Box<dyn std::error::Error>> {
    let sim = ServiceNowSim::start(
        ServiceNowSimConfig::default(),
        TcpListener::bind("127.0.0.1:0").await?,
    )
    .await?;
    for (table, record) in ServiceNowSim::sample_records() {
        sim.insert(table, record)?;
    }
    // Records whose values look like query syntax, to show they are matched as text.
    sim.insert(
        "sys_user",
        json!({"sys_id": "0000000000000000000000000000b0b0", "phone": "O'Brien \\ } -- % * \"x\"", "u_customer_number": "AB^12"}),
    )?;
    Ok(sim)
}

async fn send(
    sim: &ServiceNowSim,
    request: &TableRequest,
) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let client = reqwest::Client::builder().no_proxy().build()?;
    let response = client
        .get(format!("{}{}", sim.base_url(), request.path_and_query()))
        .header(reqwest::header::ACCEPT, "application/json")
        .basic_auth("attrsync.integration", Some("sim-password"))
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    let records = parse_records("sys_user", &response.bytes().await?)?;
    Ok(records.into_iter().map(|r| r.record_id).collect())
}

#[tokio::test]
async fn the_notations_in_one_request_find_the_record_stored_in_any_of_them() -> TestResult {
    let sim = instance().await?;
    let lookup = TableLookup::sys_user();
    let request = phone_lookup(
        &lookup,
        &["+13175550199", "+1 317 555 0199", "(317) 555-0199"],
    )?;
    assert_eq!(send(&sim, &request).await?, [GRACE]);
    let request = phone_lookup(&lookup, &["+13175550125", "3175550125"])?;
    assert_eq!(send(&sim, &request).await?, [ADA]);
    assert!(sim.stats().invalid_query_parts.is_empty());
    assert_eq!(sim.traffic().count("table"), 2);
    Ok(())
}

#[tokio::test]
async fn the_injection_classics_are_refused_or_match_nothing_they_should_not() -> TestResult {
    let sim = instance().await?;
    let lookup = TableLookup::sys_user();
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
        "^ORphone!=x",
        "x^NQsys_idISNOTEMPTY",
        "\"",
        "javascript:gs.getUserID()",
        "NULL",
        "",
        "Zoë ☎ 東京",
        "+1 317 555 01",
        "phoneISNOTEMPTY",
        long.as_str(),
    ];
    let mut sent = 0;
    for value in classics {
        match phone_lookup(&lookup, &[value]) {
            Err(_) => continue,
            Ok(request) => {
                sent += 1;
                // Nothing stored under these phone values, so nothing may come back.
                assert_eq!(
                    send(&sim, &request).await?,
                    Vec::<String>::new(),
                    "{value:?}"
                );
            }
        }
    }
    assert!(
        sent >= 8,
        "most classics are plain text and must be sent, not refused"
    );
    assert!(
        sim.stats().invalid_query_parts.is_empty(),
        "{:?}",
        sim.stats().invalid_query_parts
    );

    // Quotes, backslashes and wildcards are text to the encoded query: the one record holding
    // them literally is found, and only it.
    let request = phone_lookup(&lookup, &["O'Brien \\ } -- % * \"x\""])?;
    assert_eq!(
        send(&sim, &request).await?,
        ["0000000000000000000000000000b0b0"]
    );
    Ok(())
}

#[tokio::test]
async fn an_escaped_caret_is_matched_literally_and_cannot_start_a_condition() -> TestResult {
    let sim = instance().await?;
    let lookup = TableLookup {
        caret: CaretPolicy::Escape,
        ..TableLookup::sys_user()
    };
    let found = field_lookup(&lookup, "u_customer_number", "AB^12")?;
    assert_eq!(
        send(&sim, &found).await?,
        ["0000000000000000000000000000b0b0"]
    );
    for value in [
        "x^ORsys_idISNOTEMPTY",
        "x^NQsys_idISNOTEMPTY",
        "^",
        "x^",
        "^^OR",
    ] {
        let request = phone_lookup(&lookup, &[value])?;
        assert_eq!(
            send(&sim, &request).await?,
            Vec::<String>::new(),
            "{value:?}"
        );
    }
    assert!(sim.stats().invalid_query_parts.is_empty());
    // Refused by default.
    assert!(field_lookup(&TableLookup::sys_user(), "u_customer_number", "AB^12").is_err());
    Ok(())
}

#[tokio::test]
async fn a_misspelt_field_would_return_the_whole_table_and_the_recheck_rejects_it() -> TestResult {
    let sim = instance().await?;
    let lookup = TableLookup {
        phone_fields: vec!["phone_number".to_owned()],
        ..TableLookup::sys_user()
    };
    let request = phone_lookup(&lookup, &["+13175550125"])?;
    let client = reqwest::Client::builder().no_proxy().build()?;
    let body = client
        .get(format!("{}{}", sim.base_url(), request.path_and_query()))
        .header(reqwest::header::ACCEPT, "application/json")
        .basic_auth("attrsync.integration", Some("sim-password"))
        .send()
        .await?
        .bytes()
        .await?;
    let records = parse_records("sys_user", &body)?;
    // The instance dropped the unknown field: two unrelated users come back (the limit is 2).
    assert_eq!(records.len(), 2);
    assert_eq!(
        sim.stats().invalid_query_parts,
        ["phone_number=+13175550125"]
    );
    assert!(records.iter().all(|r| !record_matches(
        r,
        &lookup.phone_fields,
        &["+13175550125"],
        Compare::PhoneDigits
    )));
    Ok(())
}

#[tokio::test]
async fn under_either_case_setting_an_email_found_is_confirmed_by_the_recheck() -> TestResult {
    let sim = instance().await?;
    let lookup = TableLookup::sys_user();
    let request = email_lookup(&lookup, "Grace.Hopper@Example.com")?;
    // As documented, values are case-sensitive: nothing.
    assert!(send(&sim, &request).await?.is_empty());
    // An instance whose collation ignores case finds her; the re-check must agree.
    sim.set_case_sensitive_values(false);
    let client = reqwest::Client::builder().no_proxy().build()?;
    let body = client
        .get(format!("{}{}", sim.base_url(), request.path_and_query()))
        .header(reqwest::header::ACCEPT, "application/json")
        .basic_auth("attrsync.integration", Some("sim-password"))
        .send()
        .await?
        .bytes()
        .await?;
    let records = parse_records("sys_user", &body)?;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].record_id, GRACE);
    assert!(record_matches(
        &records[0],
        &lookup.email_fields,
        &["Grace.Hopper@Example.com"],
        Compare::IgnoreCase
    ));
    Ok(())
}
