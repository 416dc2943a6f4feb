//! One history per query: scalers whose queries (after confinement to their namespace) and
//! history needs are the same share one cache, read from Prometheus once per half a sync period
//! however many of them reconcile in it. A namespace that runs the same workload under several
//! scalers (a canary, a blue/green pair, a `PredictiveScaler` per region reading one global
//! series) would otherwise send the same range query, and hold the same weeks of history, once
//! per scaler.
//!
//! Each scaler keeps its own backoff, planner and account; only the cache and its last read are
//! shared. A read that failed leaves the cache as it was and does not count as a read: the next
//! scaler to reconcile tries again (within its own backoff).

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Utc};
use tokio::sync::Mutex;

use crate::adapters::history::HistoryCache;
use crate::planning::planner::HistoryNeeds;

use super::locked;

/// A history cache and when it was last read whole up to the present.
pub(super) struct SharedHistory {
    pub(super) cache: HistoryCache,
    read_at: Option<DateTime<Utc>>,
}

impl SharedHistory {
    /// Whether a read at `now` may use the cache as it stands: it was read up to a moment no
    /// more than `fresh_for` before `now` (and not after it: a clock that went back reads again).
    pub(super) fn fresh(&self, now: DateTime<Utc>, fresh_for: StdDuration) -> bool {
        let fresh_for = chrono::Duration::from_std(fresh_for).unwrap_or(chrono::Duration::zero());
        self.read_at
            .is_some_and(|at| at <= now && now - at < fresh_for)
    }

    /// Notes a successful read up to `now`.
    pub(super) fn read(&mut self, now: DateTime<Utc>) {
        self.read_at = Some(now);
    }
}

/// A scaler's handle on its history.
pub(super) type HistoryHandle = Arc<Mutex<SharedHistory>>;

/// What identifies a history: the query as sent and the planner's needs (a span or a fine part
/// of another length is another cache).
type Key = (String, HistoryNeeds);

/// The histories this process holds, by query. Entries are weak: a history lives as long as a
/// scaler's state holds it, and goes with the last one (`ScalerState` is dropped when its
/// scaler goes, or changes query).
#[derive(Default)]
pub(super) struct Histories {
    by_key: std::sync::Mutex<HashMap<Key, Weak<Mutex<SharedHistory>>>>,
}

impl Histories {
    /// The history of `query` with `needs`: the one another scaler holds, or a new empty one.
    pub(super) fn handle(&self, query: &str, needs: HistoryNeeds) -> HistoryHandle {
        let mut by_key = locked(&self.by_key);
        let key = (query.to_string(), needs);
        if let Some(live) = by_key.get(&key).and_then(Weak::upgrade) {
            return live;
        }
        // Entries of histories no scaler holds any more go when the map would grow past a power
        // of two: amortized O(1) per new history, and the map holds at most twice the live ones.
        if by_key.len() >= 64 && by_key.len().is_power_of_two() {
            by_key.retain(|_, weak| weak.strong_count() > 0);
        }
        let fresh = Arc::new(Mutex::new(SharedHistory {
            cache: HistoryCache::new(query, needs),
            read_at: None,
        }));
        by_key.insert(key, Arc::downgrade(&fresh));
        fresh
    }

    /// How many distinct histories are held now.
    #[cfg(test)]
    fn live(&self) -> usize {
        locked(&self.by_key)
            .values()
            .filter(|w| w.strong_count() > 0)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    fn needs(days: i64) -> HistoryNeeds {
        HistoryNeeds {
            span: Duration::days(days),
            fine: Duration::days(1),
        }
    }

    #[test]
    fn the_same_query_and_needs_share_one_history_while_a_scaler_holds_it() {
        let histories = Histories::default();
        let a = histories.handle("sum(rate(x[1m]))", needs(28));
        let b = histories.handle("sum(rate(x[1m]))", needs(28));
        assert!(Arc::ptr_eq(&a, &b));
        // Another query, or other needs: another history.
        let c = histories.handle("sum(rate(y[1m]))", needs(28));
        let d = histories.handle("sum(rate(x[1m]))", needs(14));
        assert!(!Arc::ptr_eq(&a, &c) && !Arc::ptr_eq(&a, &d));
        assert_eq!(histories.live(), 3);
        // When the last holder goes, so does the history; a new holder starts afresh.
        drop((a, b));
        assert_eq!(histories.live(), 2);
        let e = histories.handle("sum(rate(x[1m]))", needs(28));
        assert!(e.try_lock().unwrap().read_at.is_none());
    }

    #[test]
    fn dead_entries_do_not_pile_up() {
        let histories = Histories::default();
        let kept: Vec<_> = (0..10)
            .map(|i| histories.handle(&format!("q{i}"), needs(28)))
            .collect();
        for i in 0..10_000 {
            drop(histories.handle(&format!("gone{i}"), needs(28)));
        }
        let entries = locked(&histories.by_key).len();
        assert!(entries <= 2 * 64 + kept.len(), "{entries} entries");
        assert_eq!(histories.live(), kept.len());
    }

    #[test]
    fn a_read_stands_for_the_window_after_it_and_not_before() {
        let t = Utc.with_ymd_and_hms(2026, 3, 2, 12, 0, 10).unwrap();
        let histories = Histories::default();
        let h = histories.handle("q", needs(28));
        let mut shared = h.try_lock().unwrap();
        let window = StdDuration::from_secs(15);
        assert!(!shared.fresh(t, window), "never read");
        shared.read(t);
        assert!(shared.fresh(t + Duration::seconds(14), window));
        assert!(!shared.fresh(t + Duration::seconds(15), window));
        assert!(!shared.fresh(t - Duration::seconds(1), window));
    }
}
