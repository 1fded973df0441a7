//! Request accounting shared by the simulators: how many requests each operation received, and
//! the most that any sliding window of time held, so tests and the benchmark can check a client's
//! rate budget from the upstream's side (what the vendor would have counted), not from the
//! client's own bookkeeping.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::lock;

/// Arrival times older than this are forgotten; no window asked about is longer.
const HISTORY: Duration = Duration::from_secs(3600);
/// And at most this many are kept, so a long benchmark cannot grow the log without bound.
const MAX_TIMES: usize = 1_000_000;

#[derive(Debug, Default)]
pub struct Traffic {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    by_op: BTreeMap<&'static str, u64>,
    times: VecDeque<Instant>,
}

impl Traffic {
    /// Counts one request to `op` (a fixed name such as `"search"` or `"token"`).
    pub fn record(&self, op: &'static str) {
        let now = Instant::now();
        let mut inner = lock(&self.inner);
        *inner.by_op.entry(op).or_default() += 1;
        inner.times.push_back(now);
        while inner.times.len() > MAX_TIMES
            || inner
                .times
                .front()
                .is_some_and(|t| now.duration_since(*t) > HISTORY)
        {
            inner.times.pop_front();
        }
    }

    /// Requests to `op` so far.
    pub fn count(&self, op: &str) -> u64 {
        lock(&self.inner).by_op.get(op).copied().unwrap_or(0)
    }

    /// Requests to every operation so far.
    pub fn total(&self) -> u64 {
        lock(&self.inner).by_op.values().sum()
    }

    /// Requests per operation so far.
    pub fn by_op(&self) -> BTreeMap<String, u64> {
        lock(&self.inner)
            .by_op
            .iter()
            .map(|(op, n)| ((*op).to_owned(), *n))
            .collect()
    }

    /// The most requests (all operations) that arrived within any `window` of time.
    pub fn max_in_window(&self, window: Duration) -> u64 {
        let inner = lock(&self.inner);
        let times = &inner.times;
        let (mut start, mut best) = (0usize, 0usize);
        for (end, t) in times.iter().enumerate() {
            while t.duration_since(times[start]) >= window {
                start += 1;
            }
            best = best.max(end - start + 1);
        }
        best as u64
    }

    /// Forgets everything counted so far.
    pub fn reset(&self) {
        *lock(&self.inner) = Inner::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_per_operation() {
        let t = Traffic::default();
        t.record("search");
        t.record("search");
        t.record("token");
        assert_eq!(t.count("search"), 2);
        assert_eq!(t.count("token"), 1);
        assert_eq!(t.count("other"), 0);
        assert_eq!(t.total(), 3);
        t.reset();
        assert_eq!(t.total(), 0);
    }

    #[test]
    fn the_busiest_window_is_found_whatever_came_before_and_after() {
        let t = Traffic::default();
        t.record("a");
        std::thread::sleep(Duration::from_millis(60));
        for _ in 0..3 {
            t.record("a");
        }
        std::thread::sleep(Duration::from_millis(60));
        t.record("a");
        assert_eq!(t.max_in_window(Duration::from_millis(50)), 3);
        assert_eq!(t.max_in_window(Duration::from_secs(10)), 5);
    }
}
