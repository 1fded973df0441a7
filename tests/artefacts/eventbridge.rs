//! The EventBridge rule: it matches the official `customer.start` sample and nothing else.

use super::*;

#[test]
fn the_eventbridge_rule_matches_the_official_customer_start_sample_and_nothing_else() {
    let pattern = read_json("genesys/eventbridge/event-pattern.json");
    let start = read_json("tests/fixtures/eventbridge-customer-start.json");
    let end = read_json("tests/fixtures/eventbridge-customer-end.json");
    assert!(event_matches(&pattern, &start), "{pattern} vs {start}");
    assert!(!event_matches(&pattern, &end));
    let mut other_source = start.clone();
    other_source["source"] = json!("aws.partner/example.com/events");
    assert!(!event_matches(&pattern, &other_source));

    let main_tf = without_comments(&read("genesys/eventbridge/main.tf"));
    let compact: String = main_tf.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(compact.contains(r#"event_pattern=file("${path.module}/event-pattern.json")"#));
    let target = block(
        &compact,
        r#"resource"aws_cloudwatch_event_target""attrsync""#,
    );
    for part in [
        "arn=aws_cloudwatch_event_api_destination.attrsync.arn",
        "role_arn=",
        "retry_policy{",
        "maximum_event_age_in_seconds=",
        "maximum_retry_attempts=",
        "dead_letter_config{",
    ] {
        assert!(
            target.contains(part),
            "the rule target lacks {part}: {target}"
        );
    }
    let destination = block(
        &compact,
        r#"resource"aws_cloudwatch_event_api_destination""attrsync""#,
    );
    assert!(destination.contains(r#"http_method="POST""#));
    assert!(compact.contains(r#"authorization_type="API_KEY""#));
}

/// EventBridge pattern matching, for the operators the pattern uses: a list of exact strings or
/// `{"prefix": ...}`, and nested objects.
pub(crate) fn event_matches(pattern: &Value, event: &Value) -> bool {
    pattern.as_object().unwrap().iter().all(|(key, rule)| {
        let Some(value) = event.get(key) else {
            return false;
        };
        match rule {
            Value::Object(_) => event_matches(rule, value),
            Value::Array(options) => options.iter().any(|option| match option {
                Value::String(s) => value.as_str() == Some(s.as_str()),
                Value::Object(o) => match (o.get("prefix"), value.as_str()) {
                    (Some(Value::String(prefix)), Some(v)) => v.starts_with(prefix.as_str()),
                    _ => panic!("unsupported pattern operator {option}"),
                },
                other => panic!("unsupported pattern value {other}"),
            }),
            other => panic!("unsupported pattern rule {other}"),
        }
    })
}
