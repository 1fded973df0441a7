//! How the match is written beside the record (`merge.match_details`): the attributes that say
//! how many records matched, how well, which one was chosen and which others competed, so an IVR
//! can ask for an account number and an agent can pick. On an ambiguous answer only the count
//! is written (with `found=false`), whatever `match_details` says: nothing of the records.

use crate::crm::{CrmAnswer, Verdict};
use crate::merge::Attributes;

/// The match attributes for `answer`, named without the prefix (`matchCount`, ...).
pub fn match_attributes(answer: &CrmAnswer, details: bool) -> Attributes {
    let mut out = Attributes::new();
    match &answer.verdict {
        Verdict::Ambiguous { count } => {
            out.insert("matchCount".to_owned(), count.to_string());
        }
        Verdict::Found { count, quality } if details => {
            out.insert("matchCount".to_owned(), count.to_string());
            out.insert("matchQuality".to_owned(), quality.as_str().to_owned());
            if let Some(chosen) = &answer.chosen {
                out.insert("recordType".to_owned(), chosen.record_type.clone());
                out.insert("recordId".to_owned(), chosen.record_id.clone());
            }
            out.insert("candidateIds".to_owned(), answer.candidate_ids.join(","));
        }
        Verdict::Found { .. } | Verdict::NotFound | Verdict::Failed(_) => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crm::{CandidateSummary, MatchQuality};
    use crate::domain::KeyKind;

    fn answer(verdict: Verdict) -> CrmAnswer {
        CrmAnswer {
            verdict,
            record: None,
            matched: Some(KeyKind::Phone),
            chosen: Some(CandidateSummary {
                source: "salesforce",
                record_type: "Contact".into(),
                record_id: "003A".into(),
                matched_field: "Phone".into(),
                quality: MatchQuality::National,
            }),
            candidate_ids: vec!["Contact/003A".into(), "Lead/00QB".into()],
            sources: Vec::new(),
        }
    }

    #[test]
    fn a_found_record_gets_every_detail_when_asked_for_and_none_otherwise() {
        let found = answer(Verdict::Found {
            count: 2,
            quality: MatchQuality::National,
        });
        let written = match_attributes(&found, true);
        let expected: Attributes = [
            ("matchCount", "2"),
            ("matchQuality", "national"),
            ("recordType", "Contact"),
            ("recordId", "003A"),
            ("candidateIds", "Contact/003A,Lead/00QB"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(written, expected);
        assert!(match_attributes(&found, false).is_empty());
    }

    #[test]
    fn an_ambiguous_answer_writes_only_the_count_whatever_the_setting() {
        for details in [true, false] {
            let written = match_attributes(&answer(Verdict::Ambiguous { count: 3 }), details);
            assert_eq!(written.len(), 1);
            assert_eq!(written["matchCount"], "3");
        }
    }

    #[test]
    fn not_found_writes_nothing_extra() {
        assert!(match_attributes(&answer(Verdict::NotFound), true).is_empty());
    }
}
