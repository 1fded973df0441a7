//! Noticing a division misconfiguration. Roles and divisions of an OAuth client apply to the
//! client-credentials grant ("Roles and divisions only apply to clients using the
//! client_credential grant", `OAuthClient.md` in MyPureCloud/platform-client-sdk-python), and a
//! client whose role lacks the division of a queue cannot see that queue's conversations. Whether
//! Genesys then answers 403 or 404 is not documented (unverified); attrsync counts a 404 as
//! `conversation_not_found`, which would hide the misconfiguration. So when most of the recent
//! GETs and PATCHes answered 404, it says so, once, in a warning naming the likely cause.

use std::collections::VecDeque;
use std::sync::Mutex;

/// How many recent answers are weighed, and how many must have been seen before any warning.
const WINDOW: usize = 20;
const MIN_SEEN: usize = 10;

/// The recent answers of the conversation GET and the attributes PATCH: 404 or not.
#[derive(Debug, Default)]
pub struct Visibility {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    recent: VecDeque<bool>,
    warned: bool,
}

/// True when most of `recent` (of at least [`MIN_SEEN`]) were 404s.
pub fn mostly_not_found(recent: &VecDeque<bool>) -> bool {
    let not_found = recent.iter().filter(|nf| **nf).count();
    recent.len() >= MIN_SEEN && not_found * 2 > recent.len()
}

impl Visibility {
    /// Records one answer (`not_found`: it was a 404); logs the warning the first time most
    /// recent answers were 404s, and again only after they stopped being so.
    pub fn record(&self, not_found: bool) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        state.recent.push_back(not_found);
        if state.recent.len() > WINDOW {
            state.recent.pop_front();
        }
        let mostly = mostly_not_found(&state.recent);
        if mostly && !state.warned {
            let misses = state.recent.iter().filter(|nf| **nf).count();
            tracing::warn!(
                not_found = misses,
                of = state.recent.len(),
                "most recent Genesys conversation reads and writes answered 404: the OAuth client's role may lack the division of the queues (divisions hide conversations); check the role's divisions"
            );
        }
        state.warned = mostly || (state.warned && state.recent.iter().any(|nf| *nf));
    }

    /// Whether the warning is standing (for tests).
    pub fn warned(&self) -> bool {
        self.state.lock().map(|s| s.warned).unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_few_404s_among_many_successes_raise_no_warning() {
        let v = Visibility::default();
        for i in 0..40 {
            v.record(i % 5 == 0);
        }
        assert!(!v.warned());
    }

    #[test]
    fn mostly_404s_raise_the_warning_once_it_has_seen_enough() {
        let v = Visibility::default();
        for _ in 0..MIN_SEEN - 1 {
            v.record(true);
        }
        assert!(!v.warned(), "too few answers to judge");
        v.record(true);
        assert!(v.warned());
    }

    #[test]
    fn the_warning_is_rearmed_only_after_the_404s_are_gone() {
        let v = Visibility::default();
        for _ in 0..MIN_SEEN {
            v.record(true);
        }
        assert!(v.warned());
        for _ in 0..WINDOW {
            v.record(false);
        }
        assert!(!v.warned());
    }
}
