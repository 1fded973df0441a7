//! The journey recorder: what one run of an event went through, step by step, as plain data
//! (no I/O). The pipeline records into a [`Journey`] as it goes; the queue adds the arrival, the
//! wait and the run's end (retry, dead letter), then persists the steps in its journal. Every
//! value that could name a person (a phone number, an email, an id the sender gave) is
//! redacted here, per `telemetry.redact`, before it is recorded: a journal holds names of
//! attributes, never their values.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::crm::{CrmAnswer, SourceOutcome, SourceReport, Verdict};
use crate::domain::{CustomerKey, KeyKind};
use crate::phone::Notation;
use crate::redact::{self, RedactMode};

/// One step of a run; `atMs` is milliseconds since the run started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    pub at_ms: u64,
    #[serde(flatten)]
    pub what: StepKind,
}

/// What happened at a step; `step` names the kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "step",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum StepKind {
    /// The event was accepted from `source` at `acceptedAtMs` (Unix ms) and waited `waitedMs`
    /// in the queue before this run (attempt `attempt`).
    Arrived {
        source: String,
        accepted_at_ms: i64,
        waited_ms: u64,
        attempt: u32,
    },
    /// A customer key the lookup tries: its kind, the notation it is shown in, its value
    /// redacted per `telemetry.redact`.
    Key {
        kind: KeyKind,
        notation: String,
        value: String,
    },
    /// One CRM source asked with one key (or skipped): the cache's part, the answer, how many
    /// candidates came back and how long it took.
    Crm {
        source: String,
        key: Option<KeyKind>,
        cache: String,
        answer: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        candidates: usize,
        ms: u64,
    },
    /// The match policy's decision over the sources' candidates.
    Decision {
        verdict: String,
        count: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        record_type: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        matched_by: Option<KeyKind>,
    },
    /// A call to Genesys: its operation, how it ended (`2xx`, the HTTP status of an error, or
    /// `no_answer`) and how long it took.
    Upstream {
        service: String,
        operation: String,
        status: String,
        ms: u64,
    },
    /// The attribute names written (never their values).
    Written { attributes: Vec<String> },
    /// Why nothing was written.
    NothingWritten { reason: String },
    /// The run failed and the event runs again in `delayMs`.
    Retry { reason: String, delay_ms: u64 },
    /// The event gave up into the dead letters.
    DeadLettered { reason: String },
    /// The run's outcome (an `attrsync_events_total` outcome label).
    Outcome { outcome: String },
}

/// The recorder: a start instant and the steps so far. Cheap to create; an event that is not
/// journaled still records (a few small pushes) and the steps are dropped.
#[derive(Debug, Clone)]
pub struct Journey {
    started: Instant,
    redact: RedactMode,
    steps: Vec<Step>,
}

impl Default for Journey {
    fn default() -> Self {
        Self::new(redact::mode())
    }
}

impl Journey {
    /// An empty journey starting now, redacting values with `redact`.
    pub fn new(redact: RedactMode) -> Self {
        Self {
            started: Instant::now(),
            redact,
            steps: Vec::with_capacity(12),
        }
    }

    /// Records `what` now.
    pub fn record(&mut self, what: StepKind) {
        let at_ms = self.started.elapsed().as_millis() as u64;
        self.steps.push(Step { at_ms, what });
    }

    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    pub fn into_steps(self) -> Vec<Step> {
        self.steps
    }

    /// The last outcome recorded, if any.
    pub fn outcome(&self) -> Option<&str> {
        self.steps.iter().rev().find_map(|s| match &s.what {
            StepKind::Outcome { outcome } => Some(outcome.as_str()),
            _ => None,
        })
    }

    /// Records each key the lookup will try, redacted.
    pub fn keys(&mut self, keys: &[CustomerKey]) {
        for key in keys {
            let (kind, notation, value) = describe_key(self.redact, key);
            self.record(StepKind::Key {
                kind,
                notation,
                value,
            });
        }
    }

    /// Records what each source did and the policy's decision.
    pub fn crm_answer(&mut self, answer: &CrmAnswer) {
        for report in &answer.sources {
            self.record(crm_step(report));
        }
        self.record(decision_step(answer));
    }

    /// Records a call to Genesys.
    pub fn upstream(&mut self, operation: &str, status: String, ms: u64) {
        self.record(StepKind::Upstream {
            service: "genesys".to_owned(),
            operation: operation.to_owned(),
            status,
            ms,
        });
    }

    pub fn nothing_written(&mut self, reason: &str) {
        self.record(StepKind::NothingWritten {
            reason: reason.to_owned(),
        });
    }
}

/// A key's kind, the notation it is shown in and its value redacted with `mode`.
pub fn describe_key(mode: RedactMode, key: &CustomerKey) -> (KeyKind, String, String) {
    match key {
        CustomerKey::Phone(number) => {
            let e164 = number.notation(Notation::E164);
            (
                KeyKind::Phone,
                "e164".to_owned(),
                redact::phone_with(mode, &e164),
            )
        }
        CustomerKey::Email(e) => (
            KeyKind::Email,
            "as_given".to_owned(),
            redact::email_with(mode, e),
        ),
        CustomerKey::CustomerId(id)
        | CustomerKey::ExternalContactId(id)
        | CustomerKey::MessagingId(id) => (
            key.kind(),
            "as_given".to_owned(),
            redact::value_with(mode, id),
        ),
    }
}

fn crm_step(report: &SourceReport) -> StepKind {
    let error = match report.outcome {
        SourceOutcome::Error { kind } => Some(kind.to_owned()),
        _ => None,
    };
    StepKind::Crm {
        source: report.source.to_owned(),
        key: report.key,
        cache: report.cache.as_str().to_owned(),
        answer: report.outcome.as_str().to_owned(),
        error,
        candidates: report.candidates,
        ms: report.ms,
    }
}

fn decision_step(answer: &CrmAnswer) -> StepKind {
    let verdict = match &answer.verdict {
        Verdict::Found { .. } => "found".to_owned(),
        Verdict::NotFound => "not_found".to_owned(),
        Verdict::Ambiguous { .. } => "ambiguous".to_owned(),
        Verdict::Failed(e) => format!("failed: {}", e.kind()),
    };
    StepKind::Decision {
        verdict,
        count: answer.match_count(),
        record_type: answer.chosen.as_ref().map(|c| c.record_type.clone()),
        matched_by: answer.matched,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phone::CallerNumber;

    #[test]
    fn a_phone_key_is_recorded_masked_in_e164_notation() {
        let number =
            CallerNumber::parse("+1 317 555 0125", phonenumber::country::Id::US).expect("a number");
        let mut journey = Journey::new(RedactMode::Mask);
        journey.keys(&[
            CustomerKey::Phone(number),
            CustomerKey::Email("ada@example.com".into()),
        ]);
        let text = serde_json::to_string(journey.steps()).unwrap();
        assert!(!text.contains("5550125"), "{text}");
        assert!(!text.contains("ada@example.com"), "{text}");
        assert!(text.contains("\"step\":\"key\""), "{text}");
        assert!(text.contains("\"notation\":\"e164\""), "{text}");
    }

    #[test]
    fn steps_read_back_as_they_were_written() {
        let mut journey = Journey::new(RedactMode::Hash);
        journey.upstream("get_conversation", "2xx".into(), 3);
        journey.record(StepKind::Written {
            attributes: vec!["crm.name".into()],
        });
        journey.record(StepKind::Outcome {
            outcome: "patched".into(),
        });
        let text = serde_json::to_string(journey.steps()).unwrap();
        let back: Vec<Step> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, journey.steps());
        assert_eq!(journey.outcome(), Some("patched"));
    }
}
