//! How well a CRM record matches the customer key it was found by: [`MatchQuality`], ordered so
//! that a better match compares greater. Adapters grade what a vendor returned (`crm::grade`);
//! the match policy keeps the best tier; configuration names a minimum (`crm.min_match_quality`).

use serde::{Deserialize, Serialize};

/// The quality of one record's match against one key, worst first (`Partial < National <
/// Exact`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchQuality {
    /// One side's national digits end with the other's (at least 7 digits): a CRM storing a
    /// local number, or a dial prefix in front of it.
    Partial,
    /// The same national number, the country unknown on one side (stored without a country
    /// code, or a caller number received without one).
    National,
    /// The same E.164 number with the country on both sides; for ids and emails, the same
    /// value.
    Exact,
}

impl MatchQuality {
    /// Best first: the order a report or a configuration lists them in.
    pub const ALL: [MatchQuality; 3] = [
        MatchQuality::Exact,
        MatchQuality::National,
        MatchQuality::Partial,
    ];

    /// The name in configuration, attributes (`crm.matchQuality`) and the lookup answer.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchQuality::Exact => "exact",
            MatchQuality::National => "national",
            MatchQuality::Partial => "partial",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_better_match_compares_greater() {
        assert!(MatchQuality::Exact > MatchQuality::National);
        assert!(MatchQuality::National > MatchQuality::Partial);
        let mut all = MatchQuality::ALL;
        all.sort();
        assert_eq!(
            all,
            [
                MatchQuality::Partial,
                MatchQuality::National,
                MatchQuality::Exact
            ]
        );
    }

    #[test]
    fn qualities_are_named_as_in_configuration() {
        for quality in MatchQuality::ALL {
            assert_eq!(serde_json::to_value(quality).unwrap(), quality.as_str());
        }
    }
}
