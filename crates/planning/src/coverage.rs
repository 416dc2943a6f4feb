//! How much of the history a spec asks for (`forecast.history`) the load's history holds.
//!
//! Prometheus keeps 15 days by default while `forecast.history` defaults to 28: the forecast
//! reads whatever is there, and without a word the weekly profile runs on two weeks, or on none.
//! The verdict here is what the `HistoryAvailable` condition says. It counts from the first
//! sample the planner's view knows of (`View::observed_span`: one it holds, or the first the
//! source held before the history the operator keeps, `History::with_samples_before`), so a gap
//! inside the history does not shorten it, and a metric that began last Tuesday is as short as a
//! retention that ends there.

use chrono::Duration;
use prescaler_api::Seasonality;

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

/// Where a history was read from: what a short one is blamed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HistoryFrom<'a> {
    /// Prometheus alone: no long-term store is set.
    Prometheus,
    /// The long-term store (`--history-prometheus-url`), Prometheus for the newest hours.
    LongTerm,
    /// A long-term store is set but failed the read (its error, naming it): the history came
    /// from Prometheus alone (`adapters::long_term`).
    LongTermFailed(&'a str),
}

impl<'a> HistoryFrom<'a> {
    /// From whether a long-term store is set and the source's `fallback` for the query.
    pub fn of(long_term: bool, fallback: Option<&'a str>) -> Self {
        match (long_term, fallback) {
            (true, Some(error)) => HistoryFrom::LongTermFailed(error),
            (true, None) => HistoryFrom::LongTerm,
            (false, _) => HistoryFrom::Prometheus,
        }
    }
}

/// What a coverage tells, in words an SRE acts on: the operator's `HistoryAvailable` condition
/// (status, reason, message), and the note `prescaler backtest` and `kubectl prescaler
/// plan|backtest` print for a short history, in the same words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub complete: bool,
    pub reason: &'static str,
    pub message: String,
}

/// The verdict on `cov` for a spec of `seasonality`, the history read `from`.
pub fn verdict(
    cov: Coverage,
    seasonality: &[Seasonality],
    model: &ModelConfig,
    from: HistoryFrom<'_>,
) -> Verdict {
    let asked = match cov {
        Coverage::Complete { requested }
        | Coverage::Short { requested, .. }
        | Coverage::Empty { requested } => requested,
    };
    let requested = span_words(cov.observed(), asked);
    let failed;
    let (reason, hint) = match from {
        HistoryFrom::LongTerm => (
            "ShortRetention",
            "the long-term source (--history-prometheus-url) holds no more either: the metric is newer, or the store's retention is shorter",
        ),
        HistoryFrom::Prometheus => (
            "ShortRetention",
            "the metric is newer, or Prometheus keeps less (15 days by default): set a long-term source (--history-prometheus-url) or raise its retention (--storage.tsdb.retention.time)",
        ),
        HistoryFrom::LongTermFailed(error) => {
            // Not the store's retention: the store did not answer. Its error names it.
            failed = format!(
                "the history was read from Prometheus alone, as {error}; the store is read again when the history is read whole (a new query or forecast.history, a restart of the operator)"
            );
            ("LongTermStoreFailed", failed.as_str())
        }
    };
    match cov {
        Coverage::Complete { .. } => Verdict {
            complete: true,
            reason: "HistoryComplete",
            message: format!("{requested} of history (forecast.history) were read"),
        },
        Coverage::Empty { .. } => Verdict {
            complete: false,
            reason: match from {
                HistoryFrom::LongTermFailed(_) => reason,
                _ => "NoHistory",
            },
            message: format!(
                "the query returned no sample in the last {}; {hint}",
                span_words(asked, asked).trim_start_matches("all ")
            ),
        },
        Coverage::Short { observed, .. } => {
            let rests_on = profiles_words(seasonality, model, observed);
            Verdict {
                complete: false,
                reason,
                message: format!("{requested} of history: {rests_on}; {hint}"),
            }
        }
    }
}

/// "14 of 28 days" (or "all 28 days" for the whole span, "20h of 28 days" under a day; spans
/// under two days in hours): in whole units, rounded down.
fn span_words(observed: chrono::Duration, requested: chrono::Duration) -> String {
    let whole = observed >= requested;
    if requested < chrono::Duration::days(2) {
        let r = prescaler_api::format_duration(requested);
        return match (whole, observed.num_hours()) {
            (true, _) => format!("all {r}"),
            (false, 0) => format!("less than an hour of {r}"),
            (false, h) => format!("{h}h of {r}"),
        };
    }
    let days = requested.num_days();
    match (whole, observed.num_days()) {
        (true, _) => format!("all {days} days"),
        (false, 0) => format!("{}h of {days} days", observed.num_hours()),
        (false, n) => format!("{n} of {days} days"),
    }
}

/// What the spec's profiles rest on with `observed` of history: "the weekly profile rests on 2
/// weeks", "no whole week for the weekly profile, the daily profile rests on 3 days".
fn profiles_words(
    seasonality: &[Seasonality],
    model: &ModelConfig,
    observed: chrono::Duration,
) -> String {
    let words = |p: Predictor, unit: &str| match profile_periods(model, p, observed) {
        0 => format!("no whole {unit} for the {} profile", p.name()),
        1 => format!("the {} profile rests on 1 {unit}", p.name()),
        n => format!("the {} profile rests on {n} {unit}s", p.name()),
    };
    let mut parts = Vec::new();
    if seasonality.contains(&Seasonality::Weekly) {
        parts.push(words(Predictor::Weekly, "week"));
    }
    let daily = profile_periods(model, Predictor::Daily, observed);
    if seasonality.contains(&Seasonality::Daily)
        && (parts.is_empty() || daily < most_periods(model, Predictor::Daily))
    {
        parts.push(words(Predictor::Daily, "day"));
    }
    parts.join(", ")
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
