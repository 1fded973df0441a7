//! The arithmetic of the deployment-wide rate budget, as pure functions: GCRA (the generic cell
//! rate algorithm, the "virtual scheduling" form of ITU-T I.371) over several limits at once, in
//! whole microseconds of the database's clock. Each limit keeps one number, its theoretical
//! arrival time (TAT); a call is given the earliest slot every limit allows and each TAT moves
//! past that slot. `shared::budget` applies [`reserve`] to a source's row with one `UPDATE` (the
//! same arithmetic in SQL); it is specified and tested here, without a database.

use std::time::Duration;

/// One limit: calls are spaced `interval_us` apart, and up to `tolerance_us` early (the burst:
/// `(burst - 1) × interval`).
///
/// A call reaches the CRM a little after its slot (the end of the transaction, scheduling, a
/// connection); with the interval `(window + margin) / limit` instead of `window / limit`, no
/// window holds more than the limit as long as every call arrives within `margin` of its slot
/// (two calls `limit` slots apart are `window + margin` apart, so at least `window` apart on
/// arrival).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// The row's name in `attrsync_crm_budget` (`minute`, `second`).
    pub name: &'static str,
    pub interval_us: i64,
    pub tolerance_us: i64,
}

impl Limit {
    /// `per_minute` calls a minute, `burst` of them at once after a quiet spell; `None` for 0.
    pub fn per_minute(per_minute: u32, burst: u32, margin_us: i64) -> Option<Limit> {
        if per_minute == 0 {
            return None;
        }
        let interval_us = ceil_div(60_000_000 + margin_us, i64::from(per_minute));
        let burst = i64::from(burst.clamp(1, per_minute));
        Some(Limit {
            name: "minute",
            interval_us,
            tolerance_us: (burst - 1) * interval_us,
        })
    }

    /// `per_second` calls a second, evenly spaced (no burst: a one-second window never holds
    /// more than `per_second`); `None` for 0.
    pub fn per_second(per_second: u32, margin_us: i64) -> Option<Limit> {
        if per_second == 0 {
            return None;
        }
        Some(Limit {
            name: "second",
            interval_us: ceil_div(1_000_000 + margin_us, i64::from(per_second)),
            tolerance_us: 0,
        })
    }
}

fn ceil_div(a: i64, b: i64) -> i64 {
    (a + b - 1) / b
}

/// One call's slot and the limits' TATs after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// When the call may go, in the clock's microseconds (never before `now`).
    pub slot_us: i64,
    /// The new TAT of each limit, in the order of the limits.
    pub tats_us: Vec<i64>,
}

impl Reservation {
    /// How long the caller waits for its slot, from `now_us`.
    pub fn wait(&self, now_us: i64) -> Duration {
        Duration::from_micros(u64::try_from(self.slot_us - now_us).unwrap_or(0))
    }
}

/// The slot for one call arriving at `now_us` under every limit of `limits`, whose TATs are
/// `tats_us` (same order; 0 = never used). The slot is the earliest instant no limit refuses:
/// `max(now, TAT − tolerance)` over the limits; each TAT then becomes `max(TAT, slot) +
/// interval`. Reserving a slot in the future advances the TATs now, so the callers behind it
/// queue up after it: callers that each wait for their slot never exceed any limit.
pub fn reserve(now_us: i64, limits: &[Limit], tats_us: &[i64]) -> Reservation {
    let slot_us = limits
        .iter()
        .zip(tats_us)
        .map(|(limit, tat)| tat - limit.tolerance_us)
        .fold(now_us, i64::max);
    let tats_us = limits
        .iter()
        .zip(tats_us)
        .map(|(limit, tat)| (*tat).max(slot_us) + limit.interval_us)
        .collect();
    Reservation { slot_us, tats_us }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000;

    /// Reserves a slot for a call at each of `arrivals`, in order, the way concurrent callers
    /// would one after the other; returns the slots.
    fn slots(limits: &[Limit], arrivals: &[i64]) -> Vec<i64> {
        let mut tats = vec![0; limits.len()];
        arrivals
            .iter()
            .map(|now| {
                let r = reserve(*now, limits, &tats);
                tats = r.tats_us;
                r.slot_us
            })
            .collect()
    }

    /// The most slots within any half-open window `[t, t + window)`.
    fn busiest(slots: &[i64], window: i64) -> usize {
        let mut sorted = slots.to_vec();
        sorted.sort_unstable();
        let mut start = 0;
        let mut best = 0;
        for end in 0..sorted.len() {
            while sorted[end] - sorted[start] >= window {
                start += 1;
            }
            best = best.max(end - start + 1);
        }
        best
    }

    #[test]
    fn a_burst_goes_at_once_and_the_calls_after_it_are_spaced_by_the_interval() {
        // 60 a minute, burst 3: three at t, then one a second.
        let limit = Limit::per_minute(60, 3, 0).unwrap();
        let t = 100 * SECOND;
        let got = slots(&[limit], &[t; 6]);
        assert_eq!(
            got,
            vec![t, t, t, t + SECOND, t + 2 * SECOND, t + 3 * SECOND]
        );
    }

    #[test]
    fn a_quiet_spell_gives_the_burst_back() {
        let limit = Limit::per_minute(60, 2, 0).unwrap();
        let t = 100 * SECOND;
        let mut tats = vec![0];
        for _ in 0..5 {
            tats = reserve(t, &[limit], &tats).tats_us;
        }
        let later = reserve(t + 600 * SECOND, &[limit], &tats);
        assert_eq!(later.slot_us, t + 600 * SECOND);
        assert_eq!(later.wait(t + 600 * SECOND), Duration::ZERO);
    }

    #[test]
    fn the_slot_satisfies_every_limit_at_once() {
        // 600 a minute with a burst of 100, but at most 5 a second: the per-second limit
        // spaces the burst 200 ms apart.
        let limits = [
            Limit::per_minute(600, 100, 0).unwrap(),
            Limit::per_second(5, 0).unwrap(),
        ];
        let t = 10 * SECOND;
        let got = slots(&limits, &[t; 4]);
        assert_eq!(
            got,
            vec![t, t + SECOND / 5, t + 2 * SECOND / 5, t + 3 * SECOND / 5]
        );
        let r = reserve(t, &limits, &[0, 0]);
        assert_eq!(r.tats_us, vec![t + 100_000, t + 200_000]);
        assert_eq!(r.wait(t - 5), Duration::from_micros(5));
    }

    #[test]
    fn no_window_ever_holds_more_than_the_limits_allow_whatever_the_arrivals() {
        // Callers arriving in bursts and lulls (a fixed pseudo-random pattern).
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut now = 0;
        let arrivals: Vec<i64> = (0..3000)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                now += (seed % 400_000) as i64;
                now
            })
            .collect();
        let limits = [
            Limit::per_minute(300, 10, 0).unwrap(),
            Limit::per_second(8, 0).unwrap(),
        ];
        let got = slots(&limits, &arrivals);
        assert!(busiest(&got, SECOND) <= 8, "{}", busiest(&got, SECOND));
        // A burst of 10 plus one every 200 ms: at most 300 + 10 - 1 in any minute.
        assert!(busiest(&got, 60 * SECOND) < 300 + 10);
        assert!(got.iter().zip(&arrivals).all(|(slot, at)| slot >= at));
        assert!(got.windows(2).all(|w| w[0] <= w[1]), "slots keep the order");
    }

    #[test]
    fn with_a_margin_calls_that_arrive_late_by_up_to_it_still_keep_every_window_under_the_limit() {
        let margin = 100_000; // 100 ms
        let got = slots(&[Limit::per_second(20, margin).unwrap()], &[0; 400]);
        // Each call arrives anywhere in [slot, slot + margin] (a fixed pseudo-random pattern).
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let arrived: Vec<i64> = got
            .iter()
            .map(|s| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                s + (seed % (margin as u64 + 1)) as i64
            })
            .collect();
        assert!(
            busiest(&arrived, SECOND) <= 20,
            "{}",
            busiest(&arrived, SECOND)
        );
        // Without the margin, one call late by 100 ms puts 21 into one second.
        let mut bare = slots(&[Limit::per_second(20, 0).unwrap()], &[0; 40]);
        bare[0] += margin;
        assert_eq!(busiest(&bare, SECOND), 21);
    }

    #[test]
    fn zero_means_no_limit_and_the_burst_is_at_least_one() {
        assert_eq!(Limit::per_minute(0, 5, 0), None);
        assert_eq!(Limit::per_second(0, 0), None);
        let one = Limit::per_minute(120, 0, 0).unwrap();
        assert_eq!((one.interval_us, one.tolerance_us), (500_000, 0));
        assert_eq!(Limit::per_second(3, 0).unwrap().interval_us, 333_334);
        assert_eq!(Limit::per_second(20, 100_000).unwrap().interval_us, 55_000);
        // No limits: every call goes now.
        assert_eq!(reserve(42, &[], &[]).slot_us, 42);
    }
}
