//! Which condition Events are worth a write: the same news about the same scaler is told once
//! per window.
//!
//! A flapping Prometheus flips `MetricsAvailable` False and True again every minute or two; one
//! Warning and one recovery per flip, for every scaler, would be a write storm on the API server
//! that says nothing new after the first. client-go's `EventCorrelator`
//! (`tools/record/events_cache.go`) answers the same problem by aggregating Events that differ
//! only in their message within `defaultAggregateIntervalInSeconds` = 600 s and by a spam filter
//! per object; kube-runtime's `Recorder` folds identical Events into a series, but each fold is
//! still a write. This filter keeps the 10-minute window and drops the repeat before it is sent:
//! an Event keyed by (scaler, condition, status, reason) already told within the window is not
//! told again. The condition in `status` always says the present; only the Event is spared.
//!
//! Pure: times are passed in.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long the same news is not told again: client-go's aggregation interval.
pub const WINDOW: Duration = Duration::from_secs(600);

/// What makes two condition Events the same news.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EventKey {
    /// The scaler's uid.
    pub scaler: String,
    pub condition: String,
    pub status: bool,
    pub reason: String,
}

/// When each piece of news was last told.
#[derive(Debug)]
pub struct EventFilter {
    window: Duration,
    told: HashMap<EventKey, Instant>,
    /// The size at which the next sweep of old news happens: twice what the last one left, so
    /// that sweeping costs a constant per admission however many scalers there are.
    sweep_at: usize,
}

impl Default for EventFilter {
    fn default() -> Self {
        Self::new(WINDOW)
    }
}

impl EventFilter {
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            told: HashMap::new(),
            sweep_at: 1_024,
        }
    }

    /// Whether to tell `key` now; if so, it counts as told at `now`.
    pub fn admit(&mut self, key: EventKey, now: Instant) -> bool {
        // What is older than the window can no longer hold anything back: forgetting it keeps
        // the map as small as the news of the last ten minutes, whatever the churn of scalers.
        if self.told.len() >= self.sweep_at {
            let window = self.window;
            self.told
                .retain(|_, at| now.saturating_duration_since(*at) < window);
            self.sweep_at = (2 * self.told.len()).max(1_024);
        }
        match self.told.get(&key) {
            Some(at) if now.saturating_duration_since(*at) < self.window => false,
            _ => {
                self.told.insert(key, now);
                true
            }
        }
    }

    /// Forgets a scaler that is gone.
    pub fn forget(&mut self, scaler: &str) {
        self.told.retain(|k, _| k.scaler != scaler);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.told.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(scaler: &str, status: bool, reason: &str) -> EventKey {
        EventKey {
            scaler: scaler.into(),
            condition: "MetricsAvailable".into(),
            status,
            reason: reason.into(),
        }
    }

    #[test]
    fn a_flap_is_told_once_per_window() {
        let mut f = EventFilter::default();
        let t0 = Instant::now();
        let minute = Duration::from_secs(60);
        let mut told = 0;
        // Down and up again every two minutes for an hour.
        for i in 0..30u32 {
            let at = t0 + minute * (2 * i);
            told += f.admit(key("a", false, "PrometheusUnavailable"), at) as u32;
            told += f.admit(key("a", true, "QuerySucceeded"), at + minute) as u32;
        }
        // Each of the two is told at 0, 10, 20, … 50 minutes: 6 times each, not 30.
        assert_eq!(told, 12);
    }

    #[test]
    fn different_news_and_different_scalers_are_each_told() {
        let mut f = EventFilter::default();
        let t = Instant::now();
        assert!(f.admit(key("a", false, "PrometheusUnavailable"), t));
        assert!(f.admit(key("a", false, "QueryTimeout"), t));
        assert!(f.admit(key("b", false, "PrometheusUnavailable"), t));
        assert!(!f.admit(key("a", false, "PrometheusUnavailable"), t));
        f.forget("a");
        assert!(f.admit(key("a", false, "PrometheusUnavailable"), t));
    }

    #[test]
    fn old_news_is_forgotten_so_the_memory_stays_bounded() {
        let mut f = EventFilter::default();
        let t0 = Instant::now();
        for i in 0..5_000u64 {
            let at = t0 + Duration::from_secs(i);
            f.admit(key(&format!("s{i}"), false, "PrometheusUnavailable"), at);
        }
        // The last ten minutes' news (600 keys) and what arrived since the last sweep.
        assert!(f.len() <= 1_024, "{}", f.len());
    }
}
