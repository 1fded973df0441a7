//! The token pool's policy, as pure functions of an injected clock: each slot (one token) keeps
//! its own budget and may be parked after a 429; a call goes to the unparked slot with the most
//! budget left, or waits for the first slot to become free.
//!
//! A slot's budget is the upstream's rule as documented: at most `limit` requests in any
//! `window` (Genesys: about 300 a minute per client-credentials token). A log of the last
//! `limit` send times enforces it exactly, whatever window alignment the upstream counts in
//! (fixed or sliding); a GCRA on top spaces the calls (`burst` at once, then one every
//! `window / limit`), so a backlog drains at a steady pace instead of a minute's allowance at
//! once followed by a minute of silence.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// One slot's budget. `limit = 0` means none.
#[derive(Debug, Clone)]
pub struct SlotBudget {
    limit: u32,
    window: Duration,
    /// GCRA: one emission interval per call, `burst - 1` of them as tolerance.
    emission: Duration,
    tolerance: Duration,
    /// Theoretical arrival time of the next call.
    tat: Option<Instant>,
    /// Send times within the last `window`, oldest first.
    sent: VecDeque<Instant>,
}

impl SlotBudget {
    pub fn new(limit: u32, window: Duration, burst: u32) -> Self {
        let emission = if limit == 0 {
            Duration::ZERO
        } else {
            window / limit
        };
        let burst = burst.clamp(1, limit.max(1));
        Self {
            limit,
            window,
            emission,
            tolerance: emission * (burst - 1),
            tat: None,
            sent: VecDeque::new(),
        }
    }

    fn forget_before(&mut self, now: Instant) {
        while let Some(&oldest) = self.sent.front() {
            if now.saturating_duration_since(oldest) >= self.window {
                self.sent.pop_front();
            } else {
                break;
            }
        }
    }

    /// Calls this slot may still send in the current window.
    pub fn remaining(&mut self, now: Instant) -> u32 {
        if self.limit == 0 {
            return u32::MAX;
        }
        self.forget_before(now);
        self.limit.saturating_sub(self.sent.len() as u32)
    }

    /// The earliest instant a call may go (`now` when one may go now).
    pub fn next_free(&mut self, now: Instant) -> Instant {
        if self.limit == 0 {
            return now;
        }
        self.forget_before(now);
        let by_window = if self.sent.len() as u32 >= self.limit {
            // The oldest of the last `limit` calls leaves the window.
            self.sent[self.sent.len() - self.limit as usize] + self.window
        } else {
            now
        };
        let by_pace = match self.tat {
            Some(tat) => tat.checked_sub(self.tolerance).unwrap_or(now).max(now),
            None => now,
        };
        by_window.max(by_pace)
    }

    /// Records a call sent at `now`; the caller has checked `next_free(now) <= now`.
    pub fn take(&mut self, now: Instant) {
        if self.limit == 0 {
            return;
        }
        let tat = self.tat.map_or(now, |t| t.max(now));
        self.tat = Some(tat + self.emission);
        self.sent.push_back(now);
        while self.sent.len() > self.limit as usize {
            self.sent.pop_front();
        }
    }
}

/// What the policy knows of one slot.
#[derive(Debug, Clone)]
pub struct SlotState {
    pub budget: SlotBudget,
    /// After a 429 (or a failed token fetch): no call before this instant.
    pub parked_until: Option<Instant>,
}

impl SlotState {
    pub fn new(budget: SlotBudget) -> Self {
        Self {
            budget,
            parked_until: None,
        }
    }

    fn free_at(&mut self, now: Instant) -> Instant {
        let budget = self.budget.next_free(now);
        match self.parked_until {
            Some(until) if until > budget => until,
            _ => budget,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// Send on this slot now.
    Use(usize),
    /// No slot may send before this instant.
    WaitUntil(Instant),
}

/// The slot a call goes to: among those free now, the one with the most budget left (the lowest
/// index on a tie); when none is free, the instant the first one will be.
pub fn choose(slots: &mut [SlotState], now: Instant) -> Choice {
    let mut best: Option<(usize, u32)> = None;
    let mut first_free: Option<Instant> = None;
    for (index, slot) in slots.iter_mut().enumerate() {
        let free_at = slot.free_at(now);
        if free_at <= now {
            let remaining = slot.budget.remaining(now);
            if best.is_none_or(|(_, most)| remaining > most) {
                best = Some((index, remaining));
            }
        } else if first_free.is_none_or(|f| free_at < f) {
            first_free = Some(free_at);
        }
    }
    match (best, first_free) {
        (Some((index, _)), _) => Choice::Use(index),
        (None, Some(at)) => Choice::WaitUntil(at),
        // No slots at all: the pool always has one, so this is never reached in use.
        (None, None) => Choice::WaitUntil(now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    fn slots(n: usize, limit: u32, burst: u32) -> Vec<SlotState> {
        (0..n)
            .map(|_| SlotState::new(SlotBudget::new(limit, MINUTE, burst)))
            .collect()
    }

    /// Sends as fast as the budget allows for `span`, returning the send times.
    fn drain(budget: &mut SlotBudget, start: Instant, span: Duration) -> Vec<Instant> {
        let mut now = start;
        let mut sent = Vec::new();
        while now < start + span {
            let free = budget.next_free(now);
            if free > now {
                now = free;
                continue;
            }
            budget.take(now);
            sent.push(now);
        }
        sent.retain(|t| *t < start + span);
        sent
    }

    #[test]
    fn a_budget_never_allows_more_than_its_limit_in_any_window() {
        let start = Instant::now();
        let mut budget = SlotBudget::new(300, MINUTE, 5);
        let sent = drain(&mut budget, start, Duration::from_secs(600));
        // Every window of 60 s that starts at a send time holds at most 300 sends.
        for (i, first) in sent.iter().enumerate() {
            let within = sent[i..]
                .iter()
                .take_while(|t| **t < *first + MINUTE)
                .count();
            assert!(within <= 300, "{within} sends in the minute from send {i}");
        }
        // And the pace is the limit: 300 a minute, give or take the burst.
        assert!((2995..=3005).contains(&sent.len()), "{}", sent.len());
    }

    #[test]
    fn a_budget_sends_its_burst_at_once_and_then_spaces_the_calls() {
        let start = Instant::now();
        let mut budget = SlotBudget::new(60, MINUTE, 3);
        for _ in 0..3 {
            assert_eq!(budget.next_free(start), start);
            budget.take(start);
        }
        assert_eq!(budget.next_free(start), start + Duration::from_secs(1));
        assert_eq!(budget.remaining(start), 57);
    }

    #[test]
    fn a_full_window_frees_up_when_its_oldest_call_leaves_it() {
        let start = Instant::now();
        // No pacing (burst = limit): the whole window's allowance may go at once.
        let mut budget = SlotBudget::new(10, MINUTE, 10);
        for i in 0..10 {
            let at = start + Duration::from_secs(i);
            assert_eq!(budget.next_free(at), at);
            budget.take(at);
        }
        let later = start + Duration::from_secs(30);
        assert_eq!(budget.remaining(later), 0);
        assert_eq!(budget.next_free(later), start + MINUTE);
        assert_eq!(budget.remaining(start + MINUTE), 1);
    }

    #[test]
    fn no_budget_is_always_free() {
        let now = Instant::now();
        let mut budget = SlotBudget::new(0, MINUTE, 5);
        for _ in 0..1000 {
            assert_eq!(budget.next_free(now), now);
            budget.take(now);
        }
        assert_eq!(budget.remaining(now), u32::MAX);
    }

    #[test]
    fn a_call_goes_to_the_slot_with_the_most_budget_left() {
        let now = Instant::now();
        let mut slots = slots(3, 10, 10);
        slots[0].budget.take(now);
        slots[0].budget.take(now);
        slots[1].budget.take(now);
        assert_eq!(choose(&mut slots, now), Choice::Use(2));
        slots[2].budget.take(now);
        slots[2].budget.take(now);
        assert_eq!(choose(&mut slots, now), Choice::Use(1));
    }

    #[test]
    fn equal_budgets_go_to_the_lowest_slot_so_calls_spread_as_budgets_fall() {
        let now = Instant::now();
        let mut slots = slots(4, 100, 100);
        let mut counts = [0; 4];
        for _ in 0..40 {
            let Choice::Use(i) = choose(&mut slots, now) else {
                panic!("a slot is free")
            };
            slots[i].budget.take(now);
            counts[i] += 1;
        }
        assert_eq!(counts, [10, 10, 10, 10]);
    }

    #[test]
    fn a_parked_slot_gets_no_call_while_another_is_free() {
        let now = Instant::now();
        let mut slots = slots(2, 10, 10);
        slots[0].parked_until = Some(now + Duration::from_secs(5));
        for _ in 0..5 {
            assert_eq!(choose(&mut slots, now), Choice::Use(1));
            slots[1].budget.take(now);
        }
        // Once the parking ends, slot 0 has the most left again.
        assert_eq!(
            choose(&mut slots, now + Duration::from_secs(5)),
            Choice::Use(0)
        );
    }

    #[test]
    fn when_every_slot_is_parked_or_spent_the_call_waits_for_the_first_to_free_up() {
        let now = Instant::now();
        let mut slots = slots(3, 1, 1);
        slots[0].parked_until = Some(now + Duration::from_secs(20));
        slots[1].budget.take(now - Duration::from_secs(50)); // free at now + 10 s
        slots[2].parked_until = Some(now + Duration::from_secs(3));
        slots[2].budget.take(now - Duration::from_secs(30)); // free at now + 30 s
        assert_eq!(
            choose(&mut slots, now),
            Choice::WaitUntil(now + Duration::from_secs(10))
        );
    }

    #[test]
    fn a_slot_parked_longer_than_its_budget_wait_frees_up_when_the_parking_ends() {
        let now = Instant::now();
        let mut slots = slots(1, 10, 10);
        slots[0].parked_until = Some(now + Duration::from_secs(7));
        assert_eq!(
            choose(&mut slots, now),
            Choice::WaitUntil(now + Duration::from_secs(7))
        );
    }
}
