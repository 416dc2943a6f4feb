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

/// One metric's history, for `verdict_of_metrics`: its name (`spec.metrics[].name`), how far
/// back its first sample is, and where it was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricHistory<'a> {
    pub name: &'a str,
    pub observed: Duration,
    pub from: HistoryFrom<'a>,
}

/// The verdict on every metric's history (`metrics` in the spec's order) against `requested`.
/// One metric: `verdict` on it, word for word. Several: whole when every metric's history is;
/// otherwise each metric that falls short says so in `verdict`'s words after its name
/// (`metric "queue": 14 of 28 days of history: …`), because each metric is forecast on its own
/// history and the one short is the one to fix. The reason is the most actionable of theirs: a
/// long-term store that failed (`LongTermStoreFailed`) before a short retention
/// (`ShortRetention`) before no sample at all (`NoHistory`).
pub fn verdict_of_metrics(
    metrics: &[MetricHistory<'_>],
    requested: Duration,
    seasonality: &[Seasonality],
    model: &ModelConfig,
) -> Verdict {
    let of = |m: &MetricHistory<'_>| {
        verdict(coverage(m.observed, requested), seasonality, model, m.from)
    };
    if let [one] = metrics {
        return of(one);
    }
    let verdicts: Vec<(&str, Verdict)> = metrics.iter().map(|m| (m.name, of(m))).collect();
    let short: Vec<&(&str, Verdict)> = verdicts.iter().filter(|(_, v)| !v.complete).collect();
    if short.is_empty() {
        // Every metric whole: the shortest's words (all of them say the same span).
        return match metrics.iter().min_by_key(|m| m.observed) {
            Some(m) => of(m),
            None => verdict(
                Coverage::Empty { requested },
                seasonality,
                model,
                HistoryFrom::Prometheus,
            ),
        };
    }
    let rank = |reason: &str| match reason {
        "LongTermStoreFailed" => 0,
        "ShortRetention" => 1,
        _ => 2,
    };
    let reason = short
        .iter()
        .map(|(_, v)| v.reason)
        .min_by_key(|r| rank(r))
        .unwrap_or("ShortRetention");
    let message = short
        .iter()
        .map(|(name, v)| format!("metric {name:?}: {}", v.message))
        .collect::<Vec<_>>()
        .join("; ");
    Verdict {
        complete: false,
        reason,
        message,
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
    fn several_metrics_are_judged_each_on_its_own_history_and_named() {
        let (d, cfg) = (Duration::days, ModelConfig::default());
        let seasons = [Seasonality::Daily, Seasonality::Weekly];
        let metric = |name, days, from| MetricHistory {
            name,
            observed: d(days),
            from,
        };
        let prometheus = HistoryFrom::Prometheus;
        // One metric: the words of `verdict`, unchanged.
        let one = verdict_of_metrics(&[metric("load", 14, prometheus)], d(28), &seasons, &cfg);
        assert_eq!(
            one,
            verdict(coverage(d(14), d(28)), &seasons, &cfg, prometheus)
        );
        // Only the second metric is short: it is named, with how much it holds; the first is not.
        let both = [
            metric("requests", 28, prometheus),
            metric("queue", 14, prometheus),
        ];
        let v = verdict_of_metrics(&both, d(28), &seasons, &cfg);
        assert_eq!((v.complete, v.reason), (false, "ShortRetention"));
        assert!(
            v.message
                .starts_with("metric \"queue\": 14 of 28 days of history: the weekly profile"),
            "{}",
            v.message
        );
        assert!(!v.message.contains("requests"), "{}", v.message);
        // Every metric whole: whole.
        let whole = [
            metric("requests", 28, prometheus),
            metric("queue", 29, prometheus),
        ];
        assert!(verdict_of_metrics(&whole, d(28), &seasons, &cfg).complete);
        // The store failed the queue's read alone: that metric is named, with the store's
        // error, and the reason is the store's, though the requests are short too.
        let error = "query \"q\": the long-term store at http://thanos:9090 could not be reached";
        let failed = [
            metric("requests", 14, HistoryFrom::LongTerm),
            metric("queue", 14, HistoryFrom::LongTermFailed(error)),
        ];
        let v = verdict_of_metrics(&failed, d(28), &seasons, &cfg);
        assert_eq!((v.complete, v.reason), (false, "LongTermStoreFailed"));
        let (requests, queue) = v
            .message
            .split_once("; metric \"queue\": ")
            .expect(&v.message);
        assert!(
            requests.starts_with("metric \"requests\": 14 of 28 days")
                && !requests.contains("thanos"),
            "{}",
            v.message
        );
        assert!(queue.contains(error), "{}", v.message);
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
