use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::config::MatchPolicy;
use crate::crm::breaker::Breaker;
use crate::crm::cache::{AnswerCache, Ttls};
use crate::crm::CrmAdapter;

/// An adapter answering from a table: key's cache identity -> answer; unknown keys: nothing.
struct Table {
    name: &'static str,
    kinds: Vec<KeyKind>,
    answers: HashMap<String, Result<Vec<Candidate>, CrmError>>,
    calls: AtomicUsize,
}

#[async_trait::async_trait]
impl CrmAdapter for Table {
    fn kind(&self) -> &'static str {
        self.name
    }
    fn key_kinds(&self) -> &[KeyKind] {
        &self.kinds
    }
    async fn find(&self, key: &CustomerKey) -> Result<Vec<Candidate>, CrmError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.answers
            .get(&key.cache_key())
            .cloned()
            .unwrap_or(Ok(Vec::new()))
    }
    async fn ready(&self) -> Result<(), CrmError> {
        Ok(())
    }
}

fn record(id: &str, record_type: &str, fields: serde_json::Value) -> Candidate {
    Candidate {
        source: "",
        record_type: record_type.into(),
        record_id: id.into(),
        matched_field: "f".into(),
        quality: MatchQuality::Exact,
        last_modified: None,
        fields: fields.as_object().cloned().unwrap_or_default(),
    }
}

fn id(v: &str) -> CustomerKey {
    CustomerKey::CustomerId(v.into())
}

fn email(v: &str) -> CustomerKey {
    CustomerKey::Email(v.into())
}

struct Built {
    sources: CrmSources,
    tables: Vec<Arc<Table>>,
}

type Answers = Vec<(CustomerKey, Result<Vec<Candidate>, CrmError>)>;

fn chain(mode: ChainMode, policy: MatchPolicy, tables: Vec<(&'static str, Answers)>) -> Built {
    let cache = AnswerCache::new(100);
    let tables: Vec<Arc<Table>> = tables
        .into_iter()
        .map(|(name, answers)| {
            Arc::new(Table {
                name,
                kinds: vec![KeyKind::CustomerId, KeyKind::Email],
                answers: answers
                    .into_iter()
                    .map(|(k, a)| (k.cache_key(), a))
                    .collect(),
                calls: AtomicUsize::new(0),
            })
        })
        .collect();
    let sources = tables
        .iter()
        .map(|t| {
            Source::new(
                t.clone(),
                Breaker::new(t.name, 1, Duration::from_secs(60)),
                cache.clone(),
                Ttls {
                    found: Duration::from_secs(60),
                    not_found: Duration::from_secs(60),
                },
            )
        })
        .collect();
    let settings = ChainSettings {
        key_order: vec![KeyKind::CustomerId, KeyKind::Email],
        mode,
        matching: MatchSettings {
            policy,
            priority: vec!["Contact".into(), "Lead".into()],
            min_quality: MatchQuality::National,
        },
        max_candidate_ids: 2,
    };
    Built {
        sources: CrmSources::new(sources, settings),
        tables,
    }
}

fn outcomes(answer: &CrmAnswer) -> Vec<(&'static str, &'static str)> {
    answer
        .sources
        .iter()
        .map(|r| (r.source, r.outcome.as_str()))
        .collect()
}

#[tokio::test]
async fn first_hit_takes_the_first_source_that_finds_and_skips_the_rest() {
    let built = chain(
        ChainMode::FirstHit,
        MatchPolicy::First,
        vec![
            ("http", vec![]),
            (
                "file",
                vec![(
                    id("C1"),
                    Ok(vec![record("C1", "customer", json!({"a": 1}))]),
                )],
            ),
            (
                "salesforce",
                vec![(
                    id("C1"),
                    Ok(vec![record("003", "Contact", json!({"b": 2}))]),
                )],
            ),
        ],
    );
    let answer = built.sources.lookup(&[id("C1")]).await;
    assert!(matches!(answer.verdict, Verdict::Found { count: 1, .. }));
    let chosen = answer.chosen.clone().unwrap();
    assert_eq!((chosen.source, chosen.record_id.as_str()), ("file", "C1"));
    assert_eq!(answer.record.as_ref().unwrap()["a"], 1);
    assert!(!answer.record.as_ref().unwrap().contains_key("b"));
    assert_eq!(
        outcomes(&answer),
        [
            ("http", "not_found"),
            ("file", "found"),
            ("salesforce", "skipped")
        ]
    );
    assert_eq!(built.tables[2].calls.load(Ordering::SeqCst), 0, "not asked");
}

#[tokio::test]
async fn first_hit_skips_a_failing_source_and_answers_from_the_next() {
    let built = chain(
        ChainMode::FirstHit,
        MatchPolicy::First,
        vec![
            ("http", vec![(id("C1"), Err(CrmError::Timeout))]),
            (
                "file",
                vec![(id("C1"), Ok(vec![record("C1", "customer", json!({}))]))],
            ),
        ],
    );
    let answer = built.sources.lookup(&[id("C1")]).await;
    assert!(
        matches!(answer.verdict, Verdict::Found { .. }),
        "{:?}",
        answer.verdict
    );
    assert_eq!(outcomes(&answer), [("http", "error"), ("file", "found")]);
    assert_eq!(
        answer.sources[0].outcome,
        SourceOutcome::Error { kind: "timeout" }
    );
    // The breaker (threshold 1) is open now: the next lookup does not call it but still
    // answers from the file.
    let again = built.sources.lookup(&[id("C1")]).await;
    assert!(matches!(again.verdict, Verdict::Found { .. }));
    assert_eq!(
        again.sources[0].outcome,
        SourceOutcome::Error {
            kind: "circuit_open"
        }
    );
    assert_eq!(built.tables[0].calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn first_hit_fails_rather_than_say_not_found_when_a_source_failed() {
    let built = chain(
        ChainMode::FirstHit,
        MatchPolicy::First,
        vec![
            ("file", vec![]),
            ("http", vec![(id("C1"), Err(CrmError::Timeout))]),
        ],
    );
    let answer = built.sources.lookup(&[id("C1")]).await;
    assert!(matches!(answer.verdict, Verdict::Failed(CrmError::Timeout)));
    assert!(answer.record.is_none());
}

#[tokio::test]
async fn first_hit_keeps_an_ambiguous_answer_and_asks_no_further() {
    let two = vec![
        record("L1", "Lead", json!({})),
        record("C1", "Contact", json!({})),
    ];
    let built = chain(
        ChainMode::FirstHit,
        MatchPolicy::Refuse,
        vec![
            ("http", vec![(id("X"), Ok(two))]),
            (
                "file",
                vec![(id("X"), Ok(vec![record("F", "customer", json!({}))]))],
            ),
        ],
    );
    let answer = built.sources.lookup(&[id("X")]).await;
    assert!(matches!(answer.verdict, Verdict::Ambiguous { count: 2 }));
    assert!(answer.record.is_none() && answer.chosen.is_none());
    assert_eq!(answer.candidate_ids, ["Lead/L1", "Contact/C1"]);
    assert_eq!(
        outcomes(&answer),
        [("http", "ambiguous"), ("file", "skipped")]
    );
}

#[tokio::test]
async fn keys_are_tried_in_order_within_each_source_before_the_next_source() {
    // The first source knows the caller only by email; the second by id. The id comes first in
    // the key order, but within the first source: the first source's email answer wins.
    let built = chain(
        ChainMode::FirstHit,
        MatchPolicy::First,
        vec![
            (
                "http",
                vec![(
                    email("a@x.com"),
                    Ok(vec![record("H", "customer", json!({}))]),
                )],
            ),
            (
                "file",
                vec![(id("C1"), Ok(vec![record("F", "customer", json!({}))]))],
            ),
        ],
    );
    let answer = built.sources.lookup(&[email("a@x.com"), id("C1")]).await;
    assert_eq!(answer.matched, Some(KeyKind::Email));
    assert_eq!(answer.chosen.unwrap().record_id, "H");
    let keys: Vec<Option<KeyKind>> = answer.sources.iter().map(|r| r.key).collect();
    assert_eq!(
        keys,
        [Some(KeyKind::CustomerId), Some(KeyKind::Email), None],
        "id then email at the first source; the second skipped"
    );
}

#[tokio::test]
async fn merge_asks_every_source_and_earlier_sources_win_each_field() {
    let built = chain(
        ChainMode::Merge,
        MatchPolicy::First,
        vec![
            (
                "http",
                vec![(
                    id("C1"),
                    Ok(vec![record(
                        "H1",
                        "customer",
                        json!({"name": "Ada", "tier": "gold"}),
                    )]),
                )],
            ),
            ("file", vec![]),
            (
                "salesforce",
                vec![(
                    id("C1"),
                    Ok(vec![record(
                        "003",
                        "Contact",
                        json!({"tier": "silver", "owner": "Grace"}),
                    )]),
                )],
            ),
        ],
    );
    let answer = built.sources.lookup(&[id("C1")]).await;
    let record = answer.record.clone().unwrap();
    assert_eq!(record["name"], "Ada");
    assert_eq!(record["tier"], "gold", "the earlier source wins");
    assert_eq!(record["owner"], "Grace", "later sources fill the gaps");
    let chosen = answer.chosen.clone().unwrap();
    assert_eq!((chosen.source, chosen.record_id.as_str()), ("http", "H1"));
    assert_eq!(
        outcomes(&answer),
        [
            ("http", "found"),
            ("file", "not_found"),
            ("salesforce", "found")
        ]
    );
}

#[tokio::test]
async fn merge_uses_what_answered_when_a_source_fails_and_fails_only_when_nothing_was_found() {
    let built = chain(
        ChainMode::Merge,
        MatchPolicy::First,
        vec![
            (
                "http",
                vec![(
                    id("C1"),
                    Err(CrmError::Status {
                        status: 503,
                        retry_after: None,
                    }),
                )],
            ),
            (
                "file",
                vec![(id("C1"), Ok(vec![record("F", "customer", json!({"a": 1}))]))],
            ),
        ],
    );
    let answer = built.sources.lookup(&[id("C1")]).await;
    assert!(matches!(answer.verdict, Verdict::Found { .. }));
    assert_eq!(answer.record.as_ref().unwrap()["a"], 1);
    assert_eq!(outcomes(&answer), [("http", "error"), ("file", "found")]);

    let nothing = chain(
        ChainMode::Merge,
        MatchPolicy::First,
        vec![
            ("http", vec![(id("C2"), Err(CrmError::Timeout))]),
            ("file", vec![]),
        ],
    );
    let answer = nothing.sources.lookup(&[id("C2")]).await;
    assert!(matches!(answer.verdict, Verdict::Failed(CrmError::Timeout)));
}

#[tokio::test]
async fn merge_with_an_ambiguous_first_source_is_ambiguous() {
    let built = chain(
        ChainMode::Merge,
        MatchPolicy::Refuse,
        vec![
            (
                "http",
                vec![(
                    id("X"),
                    Ok(vec![
                        record("A", "customer", json!({})),
                        record("B", "customer", json!({})),
                    ]),
                )],
            ),
            (
                "file",
                vec![(id("X"), Ok(vec![record("F", "customer", json!({"a": 1}))]))],
            ),
        ],
    );
    let answer = built.sources.lookup(&[id("X")]).await;
    assert!(matches!(answer.verdict, Verdict::Ambiguous { count: 2 }));
    assert!(answer.record.is_none());
}

#[tokio::test]
async fn candidates_below_the_minimum_quality_are_not_found() {
    let mut partial = record("P", "customer", json!({}));
    partial.quality = MatchQuality::Partial;
    let built = chain(
        ChainMode::FirstHit,
        MatchPolicy::First,
        vec![("http", vec![(id("X"), Ok(vec![partial]))])],
    );
    let answer = built.sources.lookup(&[id("X")]).await;
    assert!(matches!(answer.verdict, Verdict::NotFound));
    assert_eq!(
        answer.sources[0].candidates, 1,
        "reported before the policy"
    );
}

#[tokio::test]
async fn the_policy_picks_among_several_and_candidate_ids_are_capped() {
    let three = vec![
        record("A1", "Account", json!({})),
        record("L1", "Lead", json!({})),
        record("C1", "Contact", json!({})),
    ];
    let built = chain(
        ChainMode::FirstHit,
        MatchPolicy::Priority,
        vec![("http", vec![(id("X"), Ok(three))])],
    );
    let answer = built.sources.lookup(&[id("X")]).await;
    assert!(matches!(answer.verdict, Verdict::Found { count: 3, .. }));
    assert_eq!(answer.chosen.as_ref().unwrap().record_id, "C1");
    assert_eq!(
        answer.candidate_ids,
        ["Account/A1", "Lead/L1"],
        "capped at 2"
    );
    assert_eq!(answer.match_count(), 3);
}

#[tokio::test]
async fn a_source_is_never_asked_about_a_key_kind_it_does_not_serve() {
    let built = chain(
        ChainMode::FirstHit,
        MatchPolicy::First,
        vec![("http", vec![])],
    );
    let phone = CustomerKey::Phone(
        crate::phone::CallerNumber::parse("+13175550125", phonenumber::country::Id::US).unwrap(),
    );
    let answer = built.sources.lookup(&[phone]).await;
    assert!(matches!(answer.verdict, Verdict::NotFound));
    assert!(answer.sources.is_empty());
    assert_eq!(built.tables[0].calls.load(Ordering::SeqCst), 0);
}
