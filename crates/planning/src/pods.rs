//! Simulated pods with a start-up time: a replica asked for is ready `delay` minutes later, a
//! replica removed is gone at once (`docs/simulation.md`). The backtest scores every strategy on
//! it; the operator's live accounting (`ledger`) runs it minute by minute.

use std::collections::VecDeque;

/// Ready replicas, one minute at a time: `ready(t) = min(desired(u) for u in [t - delay, t])`.
/// Before the first minute the fleet is taken as steady at its first size. The state is a
/// monotonic deque of at most `delay + 1` minutes.
#[derive(Clone, Debug, Default)]
pub struct Pods {
    /// The minute the next `minute` call is.
    clock: usize,
    /// The first size: what stood before the first minute.
    steady: Option<u32>,
    /// (minute, desired), values increasing: the front is the window's minimum.
    window: VecDeque<(usize, u32)>,
}

impl Pods {
    /// The minute asking for `desired` replicas, of pods that start in `delay` minutes; returns
    /// the replicas ready in it.
    pub fn minute(&mut self, desired: u32, delay: usize) -> u32 {
        let t = self.clock;
        self.clock += 1;
        let steady = *self.steady.get_or_insert(desired);
        while self.window.back().is_some_and(|&(_, d)| d >= desired) {
            self.window.pop_back();
        }
        self.window.push_back((t, desired));
        while self.window.front().is_some_and(|&(i, _)| i + delay < t) {
            self.window.pop_front();
        }
        let started_before = if t < delay { steady } else { u32::MAX };
        self.window
            .front()
            .map_or(desired, |&(_, d)| d)
            .min(started_before)
    }
}

/// Ready replicas per minute for a whole series (the backtest's).
pub fn ready(desired: &[u32], delay: usize) -> Vec<u32> {
    let mut pods = Pods::default();
    desired.iter().map(|&d| pods.minute(d, delay)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_lags_scale_ups_and_follows_scale_downs_at_once() {
        let desired = [2, 2, 5, 5, 5, 5, 5, 5, 3, 3];
        assert_eq!(ready(&desired, 3), vec![2, 2, 2, 2, 2, 5, 5, 5, 3, 3]);
        assert_eq!(ready(&desired, 0), desired.to_vec());
    }

    /// A fleet scaled to zero (a quiet window) has nothing ready, and a wake takes the whole
    /// start-up: the minutes between are short whenever they have load (the scorer's part).
    #[test]
    fn a_fleet_at_zero_has_nothing_ready_until_a_wake_has_started_up() {
        assert_eq!(ready(&[3, 0, 0, 2, 2, 2, 2], 2), vec![3, 0, 0, 0, 0, 2, 2]);
        assert_eq!(ready(&[0, 0, 1], 0), vec![0, 0, 1]);
    }

    #[test]
    fn before_the_first_minute_the_fleet_is_steady_at_its_first_size() {
        // A fleet that starts at 6 and drops to 1: the 6 were there before, ready at once.
        assert_eq!(ready(&[6, 1, 4, 4, 4], 2), vec![6, 1, 1, 1, 4]);
    }
}
