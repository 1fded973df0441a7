//! The match policy, a pure function: which of the candidates one source found for one key is
//! the customer. [`shortlist`] drops candidates graded below `crm.min_match_quality`, merges the
//! same record found through several fields (keeping its best grade), and keeps only the best
//! quality tier (an exact match beats a national one, which beats a partial one); [`decide`]
//! then applies `crm.match_policy` to what is left.
//!
//! Why `national` is the default minimum: most CRMs store numbers as typed, usually without the
//! country (`(317) 555-0125`), and requiring `exact` would miss those customers; a `partial`
//! match (the last 7+ digits) is right for a CRM holding local numbers but can be a stranger,
//! so an operator has to ask for it.

use super::candidate::{Candidate, MatchQuality};
use crate::config::{MatchPolicy, MatchSettings};

/// What the policy decided for one source's candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    NotFound,
    /// `index` into the candidates given; `count` candidates competed (the shortlist).
    Chosen {
        index: usize,
        count: usize,
        quality: MatchQuality,
    },
    /// `refuse` and more than one candidate competed.
    Ambiguous {
        count: usize,
    },
}

impl Decision {
    /// How many records matched: the shortlist's length.
    pub fn count(self) -> usize {
        match self {
            Decision::NotFound => 0,
            Decision::Chosen { count, .. } | Decision::Ambiguous { count } => count,
        }
    }
}

/// Indices of the candidates that compete, in the order given: at least the minimum quality,
/// one per record (the best-graded of its duplicates, at its first position), the best tier
/// only.
pub fn shortlist(candidates: &[Candidate], settings: &MatchSettings) -> Vec<usize> {
    let mut kept: Vec<usize> = Vec::new();
    for (i, c) in candidates.iter().enumerate() {
        if c.quality < settings.min_quality {
            continue;
        }
        match kept.iter_mut().find(|k| candidates[**k].same_record(c)) {
            Some(k) if c.quality > candidates[*k].quality => *k = i,
            Some(_) => {}
            None => kept.push(i),
        }
    }
    let Some(best) = kept.iter().map(|&i| candidates[i].quality).max() else {
        return kept;
    };
    kept.retain(|&i| candidates[i].quality == best);
    kept
}

/// How many candidates [`shortlist`] drops for being graded below the minimum.
pub fn below_minimum(candidates: &[Candidate], settings: &MatchSettings) -> usize {
    candidates
        .iter()
        .filter(|c| c.quality < settings.min_quality)
        .count()
}

/// Applies `settings.policy` to the shortlist of `candidates`.
pub fn decide(candidates: &[Candidate], settings: &MatchSettings) -> Decision {
    let list = shortlist(candidates, settings);
    let Some(&first) = list.first() else {
        return Decision::NotFound;
    };
    let count = list.len();
    let quality = candidates[first].quality;
    let chosen = |index| Decision::Chosen {
        index,
        count,
        quality,
    };
    match settings.policy {
        MatchPolicy::First => chosen(first),
        MatchPolicy::Refuse if count > 1 => Decision::Ambiguous { count },
        MatchPolicy::Refuse => chosen(first),
        // `max_by_key` keeps the last of equal keys; the first wins a tie, so compare
        // reversed positions too. A record without a date sorts before every dated one.
        MatchPolicy::MostRecent => chosen(
            list.iter()
                .copied()
                .max_by_key(|&i| (candidates[i].last_modified, std::cmp::Reverse(i)))
                .unwrap_or(first),
        ),
        MatchPolicy::Priority => chosen(
            list.iter()
                .copied()
                .min_by_key(|&i| (settings.rank(&candidates[i].record_type), i))
                .unwrap_or(first),
        ),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::crm::CrmRecord;

    fn at(text: &str) -> Option<DateTime<Utc>> {
        Some(
            DateTime::parse_from_rfc3339(text)
                .unwrap()
                .with_timezone(&Utc),
        )
    }

    fn c(record_type: &str, id: &str, quality: MatchQuality) -> Candidate {
        Candidate {
            source: "test",
            record_type: record_type.into(),
            record_id: id.into(),
            matched_field: "phone".into(),
            quality,
            last_modified: None,
            fields: CrmRecord::new(),
        }
    }

    fn dated(id: &str, when: Option<DateTime<Utc>>) -> Candidate {
        Candidate {
            last_modified: when,
            ..c("Contact", id, MatchQuality::Exact)
        }
    }

    fn settings(policy: MatchPolicy) -> MatchSettings {
        MatchSettings {
            policy,
            priority: vec!["Contact".into(), "Lead".into(), "Account".into()],
            min_quality: MatchQuality::National,
        }
    }

    use MatchQuality::{Exact, National, Partial};

    fn chosen_id(candidates: &[Candidate], policy: MatchPolicy) -> Option<&str> {
        match decide(candidates, &settings(policy)) {
            Decision::Chosen { index, .. } => Some(candidates[index].record_id.as_str()),
            _ => None,
        }
    }

    #[test]
    fn no_candidates_is_not_found_under_every_policy() {
        for policy in [
            MatchPolicy::First,
            MatchPolicy::MostRecent,
            MatchPolicy::Priority,
            MatchPolicy::Refuse,
        ] {
            assert_eq!(decide(&[], &settings(policy)), Decision::NotFound);
        }
    }

    #[test]
    fn candidates_below_the_minimum_are_dropped_and_may_leave_nothing() {
        let list = [c("Contact", "1", Partial), c("Contact", "2", Partial)];
        assert_eq!(
            decide(&list, &settings(MatchPolicy::First)),
            Decision::NotFound
        );
        assert_eq!(below_minimum(&list, &settings(MatchPolicy::First)), 2);
        let mut lenient = settings(MatchPolicy::First);
        lenient.min_quality = Partial;
        assert!(matches!(
            decide(&list, &lenient),
            Decision::Chosen {
                index: 0,
                count: 2,
                quality: Partial
            }
        ));
    }

    #[test]
    fn only_the_best_quality_tier_competes() {
        let list = [
            c("Contact", "1", National),
            c("Contact", "2", Exact),
            c("Contact", "3", National),
            c("Contact", "4", Exact),
        ];
        assert_eq!(shortlist(&list, &settings(MatchPolicy::First)), [1, 3]);
        assert_eq!(
            decide(&list, &settings(MatchPolicy::First)),
            Decision::Chosen {
                index: 1,
                count: 2,
                quality: Exact
            }
        );
        // An exact match beats a national one even under refuse: one exact is not ambiguous.
        let one_exact = [c("Contact", "1", National), c("Contact", "2", Exact)];
        assert_eq!(chosen_id(&one_exact, MatchPolicy::Refuse), Some("2"));
    }

    #[test]
    fn the_same_record_found_through_two_fields_counts_once_with_its_best_grade() {
        let list = [
            c("Contact", "1", National),
            c("contact", "1", Exact),
            c("Contact", "2", National),
        ];
        // Record 1 is exact (through its second field); record 2 is only national.
        assert_eq!(shortlist(&list, &settings(MatchPolicy::First)), [1]);
        assert_eq!(chosen_id(&list, MatchPolicy::Refuse), Some("1"));
        // Records without an id are never merged.
        let anonymous = [c("customer", "", Exact), c("customer", "", Exact)];
        assert_eq!(decide(&anonymous, &settings(MatchPolicy::First)).count(), 2);
    }

    #[test]
    fn first_keeps_the_vendors_order() {
        let list = [c("Lead", "L", Exact), c("Contact", "C", Exact)];
        assert_eq!(chosen_id(&list, MatchPolicy::First), Some("L"));
    }

    #[test]
    fn refuse_is_ambiguous_with_several_and_chooses_a_single_one() {
        let list = [c("Lead", "L", Exact), c("Contact", "C", Exact)];
        assert_eq!(
            decide(&list, &settings(MatchPolicy::Refuse)),
            Decision::Ambiguous { count: 2 }
        );
        assert_eq!(chosen_id(&list[..1], MatchPolicy::Refuse), Some("L"));
    }

    #[test]
    fn most_recent_takes_the_latest_date() {
        let list = [
            dated("old", at("2023-01-01T00:00:00Z")),
            dated("new", at("2024-06-01T00:00:00Z")),
            dated("mid", at("2024-01-01T00:00:00Z")),
        ];
        assert_eq!(chosen_id(&list, MatchPolicy::MostRecent), Some("new"));
    }

    #[test]
    fn most_recent_gives_a_tie_to_the_first() {
        let when = at("2024-01-01T00:00:00Z");
        let list = [dated("a", when), dated("b", when)];
        assert_eq!(chosen_id(&list, MatchPolicy::MostRecent), Some("a"));
    }

    #[test]
    fn most_recent_puts_records_without_a_date_last() {
        let list = [
            dated("undated", None),
            dated("dated", at("2020-01-01T00:00:00Z")),
        ];
        assert_eq!(chosen_id(&list, MatchPolicy::MostRecent), Some("dated"));
        let none = [dated("a", None), dated("b", None)];
        assert_eq!(chosen_id(&none, MatchPolicy::MostRecent), Some("a"));
    }

    #[test]
    fn priority_orders_by_record_type_case_insensitively() {
        let list = [
            c("Account", "A", Exact),
            c("lead", "L", Exact),
            c("CONTACT", "C", Exact),
        ];
        assert_eq!(chosen_id(&list, MatchPolicy::Priority), Some("C"));
    }

    #[test]
    fn priority_gives_a_tie_to_the_first_and_puts_unlisted_types_last() {
        let list = [
            c("Case", "X", Exact),
            c("Lead", "L1", Exact),
            c("Lead", "L2", Exact),
        ];
        assert_eq!(chosen_id(&list, MatchPolicy::Priority), Some("L1"));
        let unlisted = [c("Case", "X", Exact), c("Opportunity", "O", Exact)];
        assert_eq!(chosen_id(&unlisted, MatchPolicy::Priority), Some("X"));
    }

    #[test]
    fn the_count_is_the_shortlist_whatever_the_policy() {
        let list = [
            c("Contact", "1", Exact),
            c("Lead", "2", Exact),
            c("Account", "3", National),
        ];
        for policy in [
            MatchPolicy::First,
            MatchPolicy::Priority,
            MatchPolicy::MostRecent,
        ] {
            assert_eq!(decide(&list, &settings(policy)).count(), 2, "{policy:?}");
        }
    }
}
