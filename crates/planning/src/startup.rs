//! The lead time learned from the workload's own pods (`spec.forecast.leadTime: Auto`).
//!
//! A lead time shorter than the pods' start-up is the commonest cause of a missed ramp: the
//! replicas are asked for in time by the forecast's clock and are Ready too late by the
//! cluster's. In Auto, prescaler measures how long the target's new pods take from creation to
//! Ready, takes a high percentile of the recent ones, adds the metric's delay, and uses that.
//!
//! Pure: the pods, as the adapter read them, and the time are passed in.
//!
//! The figure changes rarely, on purpose: the planner keys its forecast record on the lead time
//! (`ValidatedSpec::record_key`), so every change of the lead time in use forecasts the week's
//! record again from history at the next decision (a week of forecasts: a restart's cost, not a
//! cold calibration; `decide::a_new_lead_time_calibrates_at_once_as_if_it_had_always_been_in_use`).
//! A new figure is taken only when it differs from the one in use by at least a minute (it is
//! rounded to whole minutes) and has been seen on consecutive surveys for `Tracker::settle`
//! (10 minutes by default), not on one survey's noise.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

/// Added to the pods' start-up: the time from load happening to the metric showing it (the
/// backtest's default `--metric-lag`, one scrape and one rate window step).
pub const METRIC_DELAY: Duration = Duration::minutes(1);
/// The lead time until enough pods have been seen: the spec's default.
pub const DEFAULT_LEAD_TIME: Duration = prescaler_api::Limits::DEFAULT_LEAD_TIME;
/// The learned lead time is kept within these: a minute is the planner's step; beyond half an
/// hour the start-up is broken (an image pull loop, no capacity) rather than slow, and a
/// forecast that far ahead only over-provisions while it stays broken.
pub const MIN_LEAD_TIME: Duration = Duration::minutes(1);
pub const MAX_LEAD_TIME: Duration = Duration::minutes(30);
/// Observations needed before the learned figure replaces the default.
pub const MIN_OBSERVATIONS: usize = 5;
/// Only pods created this recently count: the start-up of last month's image says little.
pub const WINDOW: Duration = Duration::days(7);
/// The percentile taken: a high one (a ramp needs most of its new pods in time), not the
/// maximum (one pod on a node that was being drained must not set the figure).
pub const PERCENTILE: f64 = 0.9;
/// The most observations kept per scaler (the newest): bounds the memory whatever the churn.
pub const MAX_OBSERVATIONS: usize = 1_000;
/// How long a new figure must persist before it is used.
pub const DEFAULT_SETTLE: Duration = Duration::minutes(10);

/// One of the target's pods, as far as its start-up goes.
#[derive(Clone, Debug, PartialEq)]
pub struct PodStart {
    pub uid: String,
    pub created: DateTime<Utc>,
    /// When its `Ready` condition last became True, if it is Ready.
    pub ready_at: Option<DateTime<Utc>>,
    /// Its `PodScheduled` condition is False: no node will take it.
    pub unschedulable: bool,
    /// A container has restarted: its Ready time no longer measures the start-up.
    pub restarted: bool,
    /// Being deleted: neither starting nor counted.
    pub terminating: bool,
}

/// Where the lead time in use comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Learned from the pods.
    Learned,
    /// Too few observations yet: `DEFAULT_LEAD_TIME`.
    Default,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Learned => "Learned",
            Source::Default => "Default",
        }
    }
}

/// Pods that are still not Ready after longer than the lead time in use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    pub pods: usize,
    /// Of them, those no node will take (`PodScheduled=False`).
    pub unschedulable: usize,
    /// The age of the oldest.
    pub longest: Duration,
    /// The lead time they are late against: the one the completed start-ups make.
    pub after: Duration,
}

/// What one survey of the pods found.
#[derive(Clone, Debug, PartialEq)]
pub struct Survey {
    /// The lead time to use now.
    pub lead_time: Duration,
    pub source: Source,
    /// The high percentile of the start-ups seen (pending pods at their age so far), if there
    /// are enough observations.
    pub startup: Option<Duration>,
    /// The lead time that figure makes (start-up + metric delay, rounded up, bounded), which
    /// becomes `lead_time` once it persists.
    pub learned: Option<Duration>,
    /// Observations the figure rests on (completed start-ups and pending pods).
    pub observations: usize,
    pub pending: Option<Pending>,
}

/// The lead time a start-up makes: start-up + `metric_delay`, rounded up to a whole minute,
/// within `[MIN_LEAD_TIME, MAX_LEAD_TIME]`. The backtest uses it too, with its simulated
/// start-up and metric lag, so that both read `leadTime: Auto` alike.
pub fn lead_time_for(startup: Duration, metric_delay: Duration) -> Duration {
    let seconds = (startup + metric_delay).num_seconds().max(0);
    let minutes = (seconds + 59) / 60;
    Duration::minutes(minutes).clamp(MIN_LEAD_TIME, MAX_LEAD_TIME)
}

/// The `p` quantile (nearest rank) of `values`, which it sorts; `None` when empty.
pub fn percentile(values: &mut [Duration], p: f64) -> Option<Duration> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let rank = (p.clamp(0.0, 1.0) * values.len() as f64).ceil() as usize;
    Some(values[rank.clamp(1, values.len()) - 1])
}

/// The start-up observations of one scaler and the lead time in use, across surveys.
#[derive(Clone, Debug)]
pub struct Tracker {
    /// Completed start-ups by pod uid, each counted once (the first time it is seen Ready: a
    /// later Ready transition, after a probe failed, is not a start-up).
    seen: BTreeMap<String, (DateTime<Utc>, Duration)>,
    /// The lead time in use and where it came from; `None` before the first survey.
    in_use: Option<(Duration, Source)>,
    /// A new figure seen on consecutive surveys, and since when.
    candidate: Option<(Duration, DateTime<Utc>)>,
    /// How long a new figure must persist before it is used.
    pub settle: Duration,
}

impl Default for Tracker {
    fn default() -> Self {
        Self::new(DEFAULT_SETTLE)
    }
}

impl Tracker {
    pub fn new(settle: Duration) -> Self {
        Self {
            seen: BTreeMap::new(),
            in_use: None,
            candidate: None,
            settle,
        }
    }

    /// Takes the pods listed at `now` and says which lead time to use.
    pub fn survey(&mut self, pods: &[PodStart], now: DateTime<Utc>) -> Survey {
        let since = now - WINDOW;
        self.seen.retain(|_, (created, _)| *created >= since);
        let recent = pods.iter().filter(|p| p.created >= since && !p.terminating);
        for pod in recent.clone() {
            // A start-up longer than the longest lead time is not a start-up prescaler can
            // plan for: most often a pod first seen after an operator restart whose Ready time
            // moved with a readiness flap since. (A pod still waiting counts below, at its age.)
            if let Some(ready) = pod.ready_at
                && !pod.restarted
                && ready >= pod.created
                && ready - pod.created <= MAX_LEAD_TIME
                && !self.seen.contains_key(&pod.uid)
            {
                self.seen
                    .insert(pod.uid.clone(), (pod.created, ready - pod.created));
            }
        }
        if self.seen.len() > MAX_OBSERVATIONS {
            let mut by_age: Vec<_> = self
                .seen
                .iter()
                .map(|(u, (c, _))| (*c, u.clone()))
                .collect();
            by_age.sort();
            let excess = self.seen.len() - MAX_OBSERVATIONS;
            for (_, uid) in by_age.into_iter().take(excess) {
                self.seen.remove(&uid);
            }
        }
        // A pod is late when it is not Ready after the lead time the completed start-ups make
        // (the one in use until there are enough): not after the lead time in use, which the
        // late pods themselves raise — they would stop being late by being counted.
        let mut completed: Vec<Duration> = self.seen.values().map(|(_, d)| *d).collect();
        let baseline = (completed.len() >= MIN_OBSERVATIONS)
            .then(|| percentile(&mut completed, PERCENTILE))
            .flatten()
            .map(|p| lead_time_for(p, METRIC_DELAY))
            .unwrap_or_else(|| self.in_use.map_or(DEFAULT_LEAD_TIME, |(d, _)| d));
        let mut pending_ages = Vec::new();
        let mut unschedulable = 0;
        for pod in recent.filter(|p| p.ready_at.is_none()) {
            let age = now - pod.created;
            // Not Ready for longer than the lead time: a ramp that needed it is being missed
            // now. It counts as at least its age so far.
            if age > baseline {
                pending_ages.push(age);
                unschedulable += usize::from(pod.unschedulable);
            }
        }
        let mut sample: Vec<Duration> = self.seen.values().map(|(_, d)| *d).collect();
        sample.extend(pending_ages.iter().copied());
        let observations = sample.len();
        let startup = (observations >= MIN_OBSERVATIONS)
            .then(|| percentile(&mut sample, PERCENTILE))
            .flatten();
        let learned = startup.map(|s| lead_time_for(s, METRIC_DELAY));
        let figure = match learned {
            Some(l) => (l, Source::Learned),
            None => (DEFAULT_LEAD_TIME, Source::Default),
        };
        let (lead_time, source) = self.settle_on(figure, now);
        let pending = (!pending_ages.is_empty()).then(|| Pending {
            pods: pending_ages.len(),
            unschedulable,
            longest: pending_ages.iter().copied().max().unwrap_or_default(),
            after: baseline,
        });
        Survey {
            lead_time,
            source,
            startup,
            learned,
            observations,
            pending,
        }
    }

    /// The lead time to use, given the figure this survey makes: the first one at once (there
    /// is no calibration to lose yet), then a new one only when it is a minute or more away from
    /// the one in use and has persisted for `settle` over consecutive surveys.
    fn settle_on(&mut self, figure: (Duration, Source), now: DateTime<Utc>) -> (Duration, Source) {
        let Some(in_use) = self.in_use else {
            self.in_use = Some(figure);
            return figure;
        };
        if (figure.0 - in_use.0).abs() < Duration::minutes(1) {
            self.candidate = None;
            // The same lead time, now learned rather than defaulted (or the reverse): the
            // source changes, the record does not.
            if figure.0 == in_use.0 {
                self.in_use = Some(figure);
            }
            return self.in_use.unwrap_or(figure);
        }
        match self.candidate {
            Some((c, since)) if c == figure.0 => {
                if now - since >= self.settle {
                    self.in_use = Some(figure);
                    self.candidate = None;
                    return figure;
                }
            }
            _ => self.candidate = Some((figure.0, now)),
        }
        in_use
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 12, 0, 0).unwrap()
    }

    fn ready(uid: &str, created_ago: i64, startup_s: i64) -> PodStart {
        let created = t0() - Duration::minutes(created_ago);
        PodStart {
            uid: uid.into(),
            created,
            ready_at: Some(created + Duration::seconds(startup_s)),
            unschedulable: false,
            restarted: false,
            terminating: false,
        }
    }

    fn pending(uid: &str, created_ago_s: i64, unschedulable: bool) -> PodStart {
        PodStart {
            uid: uid.into(),
            created: t0() - Duration::seconds(created_ago_s),
            ready_at: None,
            unschedulable,
            restarted: false,
            terminating: false,
        }
    }

    #[test]
    fn the_lead_time_is_startup_plus_the_metric_delay_rounded_up_and_bounded() {
        let m = Duration::minutes;
        assert_eq!(lead_time_for(Duration::seconds(180), METRIC_DELAY), m(4));
        assert_eq!(lead_time_for(Duration::seconds(181), METRIC_DELAY), m(5));
        assert_eq!(lead_time_for(Duration::seconds(5), METRIC_DELAY), m(2));
        assert_eq!(lead_time_for(Duration::zero(), Duration::zero()), m(1));
        assert_eq!(lead_time_for(m(90), METRIC_DELAY), m(30));
    }

    #[test]
    fn the_percentile_is_nearest_rank() {
        let mut v: Vec<Duration> = (1..=10).map(Duration::seconds).collect();
        v.reverse();
        assert_eq!(percentile(&mut v, 0.9), Some(Duration::seconds(9)));
        assert_eq!(percentile(&mut v, 1.0), Some(Duration::seconds(10)));
        assert_eq!(percentile(&mut v[..1], 0.9), Some(Duration::seconds(1)));
        assert_eq!(percentile(&mut [], 0.9), None);
    }

    #[test]
    fn the_default_holds_until_enough_pods_are_seen_and_each_counts_once() {
        let mut tracker = Tracker::new(Duration::zero());
        let four: Vec<_> = (0..4).map(|i| ready(&format!("p{i}"), 60, 180)).collect();
        let s = tracker.survey(&four, t0());
        assert_eq!(
            (s.source, s.lead_time, s.observations),
            (Source::Default, DEFAULT_LEAD_TIME, 4)
        );
        // The same four again are not four more.
        let s = tracker.survey(&four, t0());
        assert_eq!(s.observations, 4);
        let mut five = four.clone();
        five.push(ready("p4", 30, 200));
        let s = tracker.survey(&five, t0());
        assert_eq!(s.observations, 5);
        assert_eq!(s.startup, Some(Duration::seconds(200)));
        assert_eq!(s.learned, Some(Duration::minutes(5)));
    }

    #[test]
    fn the_first_learned_figure_is_taken_at_once_and_later_ones_only_when_they_persist() {
        let mut tracker = Tracker::new(Duration::minutes(10));
        let fast: Vec<_> = (0..6).map(|i| ready(&format!("a{i}"), 100, 170)).collect();
        let s = tracker.survey(&fast, t0());
        assert_eq!(
            (s.lead_time, s.source),
            (Duration::minutes(4), Source::Learned)
        );
        // Twenty slow pods: the figure moves to 9 min (8 min + 1), but not before it persisted.
        let mut all = fast.clone();
        all.extend((0..20).map(|i| ready(&format!("b{i}"), 50, 480)));
        let s = tracker.survey(&all, t0());
        assert_eq!(
            (s.learned, s.lead_time),
            (Some(Duration::minutes(9)), Duration::minutes(4))
        );
        let s = tracker.survey(&all, t0() + Duration::minutes(5));
        assert_eq!(
            s.lead_time,
            Duration::minutes(4),
            "not yet: 5 of 10 minutes"
        );
        let s = tracker.survey(&all, t0() + Duration::minutes(10));
        assert_eq!(s.lead_time, Duration::minutes(9));
        // A figure less than a minute away changes nothing.
        let mut tracker = Tracker::new(Duration::zero());
        let a: Vec<_> = (0..10).map(|i| ready(&format!("c{i}"), 10, 170)).collect();
        assert_eq!(tracker.survey(&a, t0()).lead_time, Duration::minutes(4));
    }

    #[test]
    fn a_pod_pending_longer_than_the_lead_time_counts_at_its_age_and_is_reported() {
        let mut tracker = Tracker::new(Duration::zero());
        let mut pods: Vec<_> = (0..8).map(|i| ready(&format!("r{i}"), 60, 120)).collect();
        assert_eq!(tracker.survey(&pods, t0()).lead_time, Duration::minutes(3));
        // Pending for 2 minutes: within the lead time, nothing to say.
        pods.push(pending("young", 120, false));
        assert_eq!(tracker.survey(&pods, t0()).pending, None);
        // Pending, unschedulable, for 20 minutes: counted at 20 minutes (the 9th of 9 is the
        // nearest-rank p90 here), and reported.
        pods.push(pending("stuck", 1200, true));
        let s = tracker.survey(&pods, t0());
        assert_eq!(
            s.pending,
            Some(Pending {
                pods: 1,
                unschedulable: 1,
                longest: Duration::minutes(20),
                after: Duration::minutes(3),
            })
        );
        assert_eq!(s.observations, 9);
        assert_eq!(s.startup, Some(Duration::minutes(20)));
        // Old, restarted or terminating pods are not start-ups.
        let mut tracker = Tracker::new(Duration::zero());
        let mut odd = vec![ready("old", 8 * 24 * 60, 60)];
        odd.push(PodStart {
            restarted: true,
            ..ready("restarted", 10, 60)
        });
        odd.push(PodStart {
            terminating: true,
            ..pending("going", 3600, false)
        });
        let s = tracker.survey(&odd, t0());
        assert_eq!((s.observations, s.pending), (0, None));
    }

    #[test]
    fn memory_is_bounded_whatever_the_churn() {
        let mut tracker = Tracker::new(Duration::zero());
        let pods: Vec<_> = (0..3000)
            .map(|i| ready(&format!("p{i}"), 3000 - i as i64, 100))
            .collect();
        let s = tracker.survey(&pods, t0());
        assert_eq!(s.observations, MAX_OBSERVATIONS);
    }
}
