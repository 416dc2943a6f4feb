//! How much of the history a spec asks for (`forecast.history`) the load's history holds.
//!
//! Prometheus keeps 15 days by default while `forecast.history` defaults to 28: the forecast
//! reads whatever is there, and without a word the weekly profile runs on two weeks, or on none.
//! The verdict here is what the `HistoryAvailable` condition says. It counts from the first
//! sample the planner's view holds (`View::observed_span`), so a gap inside the history does not
//! shorten it, and a metric that began last Tuesday is as short as a retention that ends there.

use chrono::Duration;

use crate::forecast::{COARSE_BLOCK, ModelConfig, Predictor};

/// What the history holds of the span the spec asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coverage {
    /// The whole span (within `slack`).
    Complete { requested: Duration },
    /// Less: the first sample is `observed` before the decision.
    Short {
        observed: Duration,
        requested: Duration,
    },
    /// No sample at all in the span.
    Empty { requested: Duration },
}

/// How much of the span's start may be missing and the history still be whole: a missed scrape
/// or two at its very start (and the block the operator's cache rounds it to) is no retention.
/// An hour of four weeks; a twenty-fourth of a short span, at least a block.
pub fn slack(requested: Duration) -> Duration {
    (requested / 24).min(Duration::hours(1)).max(COARSE_BLOCK)
}

/// The verdict for a history whose first sample is `observed` before now, for a spec asking for
/// `requested`.
pub fn coverage(observed: Duration, requested: Duration) -> Coverage {
    if observed <= Duration::zero() {
        Coverage::Empty { requested }
    } else if observed + slack(requested) >= requested {
        Coverage::Complete { requested }
    } else {
        Coverage::Short {
            observed,
            requested,
        }
    }
}

impl Coverage {
    /// Whether the history falls short of the span asked for.
    pub fn is_short(&self) -> bool {
        !matches!(self, Coverage::Complete { .. })
    }

    /// How much of the span the history holds: all of it when complete.
    pub fn observed(&self) -> Duration {
        match *self {
            Coverage::Complete { requested } => requested,
            Coverage::Short { observed, .. } => observed,
            Coverage::Empty { .. } => Duration::zero(),
        }
    }
}

/// How many whole periods of `predictor`'s season `observed` holds, at most as many as the
/// profile takes the median of: what that profile rests on.
pub fn profile_periods(cfg: &ModelConfig, predictor: Predictor, observed: Duration) -> usize {
    let period = predictor.season().period().num_seconds().max(1);
    let whole = (observed.num_seconds().max(0) / period) as usize;
    whole.min(most_periods(cfg, predictor))
}

/// The most periods `predictor`'s profile takes the median of.
pub fn most_periods(cfg: &ModelConfig, predictor: Predictor) -> usize {
    match predictor {
        Predictor::Daily => cfg.daily_periods,
        Predictor::Weekly => cfg.weekly_periods,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fourteen_of_twenty_eight_days_is_short_and_the_whole_span_is_not() {
        let (d, h) = (Duration::days, Duration::hours);
        let short = coverage(d(14), d(28));
        assert_eq!(
            short,
            Coverage::Short {
                observed: d(14),
                requested: d(28)
            }
        );
        assert!(short.is_short());
        // Three days of Prometheus under a 14-day spec.
        assert!(coverage(d(3) + h(5), d(14)).is_short());
        assert_eq!(
            coverage(d(28), d(28)),
            Coverage::Complete { requested: d(28) }
        );
        // More than asked for (the cache reads a week more for the calibration) is whole too.
        assert!(!coverage(d(35), d(28)).is_short());
        // A missed scrape at the span's start is no retention; a missing day is.
        assert!(!coverage(d(28) - Duration::minutes(50), d(28)).is_short());
        assert!(coverage(d(27), d(28)).is_short());
        // Short spans: a twenty-fourth, at least a block.
        assert!(!coverage(Duration::minutes(56), h(1)).is_short());
        assert!(coverage(Duration::minutes(50), h(1)).is_short());
        assert!(!coverage(h(23), d(1)).is_short());
        // Nothing at all.
        assert_eq!(
            coverage(Duration::zero(), d(28)),
            Coverage::Empty { requested: d(28) }
        );
        assert_eq!(
            coverage(Duration::zero(), d(28)).observed(),
            Duration::zero()
        );
    }

    #[test]
    fn the_profiles_rest_on_the_whole_periods_held_up_to_what_they_read() {
        let cfg = ModelConfig::default();
        let d = Duration::days;
        assert_eq!(profile_periods(&cfg, Predictor::Weekly, d(14)), 2);
        assert_eq!(profile_periods(&cfg, Predictor::Weekly, d(13)), 1);
        assert_eq!(profile_periods(&cfg, Predictor::Weekly, d(3)), 0);
        assert_eq!(
            profile_periods(&cfg, Predictor::Weekly, d(28)),
            cfg.weekly_periods
        );
        assert_eq!(profile_periods(&cfg, Predictor::Daily, d(3)), 3);
        assert_eq!(
            profile_periods(&cfg, Predictor::Daily, d(28)),
            cfg.daily_periods
        );
    }
}
