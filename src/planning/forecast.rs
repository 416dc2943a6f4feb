//! The load forecast: the predictors, and the history they read.
//!
//! For a decision at `now` what matters is the highest load in `[now, now + leadTime]`: replicas
//! asked for now must carry it. Four predictors estimate it from the history seen so far:
//! - `Flat`: the recent level (the mean of the last few minutes), i.e. "what a reactive scaler sees";
//! - `Trend`: the recent level extended along its recent slope (ramps between seasonal points);
//! - `Daily` and `Weekly`: the median of the same time of day (of week) over past periods,
//!   smoothed over a few minutes, times the ratio of the recent load to that profile — the profile
//!   brings the shape (a morning ramp, a daily campaign), the ratio brings the level (growth,
//!   holidays, a quiet week).
//!
//! How much each is trusted, and with what margin, is `calibration`'s business. Everything here is
//! pure: the history is passed in, and a `View` shows only what was observed by some instant.

use chrono::{DateTime, Duration, Utc};

use crate::api::Seasonality;

/// A regularly sampled series: `values[i]` is the load at `start + i * step`; NaN marks a gap.
/// Prefix sums make the windowed means the predictors need O(1).
#[derive(Clone, Debug)]
pub struct History {
    start: DateTime<Utc>,
    step: Duration,
    values: Vec<f64>,
    /// `sums[i]` = sum of the non-NaN values before index i; `counts[i]` = how many there are.
    sums: Vec<f64>,
    counts: Vec<u32>,
}

impl History {
    /// A series from `values`; a negative or non-finite value is not load and becomes a gap.
    pub fn new(start: DateTime<Utc>, step: Duration, mut values: Vec<f64>) -> Self {
        assert!(step > Duration::zero(), "a series needs a positive step");
        for v in &mut values {
            if !(v.is_finite() && *v >= 0.0) {
                *v = f64::NAN;
            }
        }
        let mut sums = Vec::with_capacity(values.len() + 1);
        let mut counts = Vec::with_capacity(values.len() + 1);
        let (mut s, mut c) = (0.0, 0u32);
        sums.push(s);
        counts.push(c);
        for &v in &values {
            if v.is_finite() {
                s += v;
                c += 1;
            }
            sums.push(s);
            counts.push(c);
        }
        Self {
            start,
            step,
            values,
            sums,
            counts,
        }
    }

    pub fn start(&self) -> DateTime<Utc> {
        self.start
    }
    pub fn step(&self) -> Duration {
        self.step
    }
    pub fn len(&self) -> usize {
        self.values.len()
    }
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    /// The time of index `i`.
    pub fn time(&self, i: usize) -> DateTime<Utc> {
        self.start + self.step * i as i32
    }

    /// The index of the last sample at or before `t` (None before the start).
    pub fn index_at_or_before(&self, t: DateTime<Utc>) -> Option<usize> {
        let d = (t - self.start).num_seconds();
        if d < 0 {
            return None;
        }
        Some((d / self.step.num_seconds()) as usize)
    }

    /// A view of this history that ends at `end` (inclusive): what has been observed by then.
    pub fn view(&self, end: usize) -> View<'_> {
        View {
            history: self,
            lo: 0,
            end: end.min(self.values.len().saturating_sub(1)),
        }
    }

    /// The view ending at the last sample at or before `t`.
    pub fn view_at(&self, t: DateTime<Utc>) -> Option<View<'_>> {
        let i = self.index_at_or_before(t)?;
        if self.values.is_empty() {
            return None;
        }
        Some(self.view(i))
    }

    fn steps(&self, d: Duration) -> i64 {
        (d.num_seconds() / self.step.num_seconds()).max(0)
    }
}

/// The part of a history observed by some instant, and no older than the spec's
/// `forecast.history`: indices `lo..=end`. Predictors only read through it, which is what keeps
/// decisions causal, and what makes `forecast.history` mean the same in the operator (whose cache
/// holds that much) and in the backtest (whose trace holds more).
#[derive(Clone, Copy, Debug)]
pub struct View<'a> {
    history: &'a History,
    lo: usize,
    end: usize,
}

impl<'a> View<'a> {
    pub fn history(&self) -> &'a History {
        self.history
    }
    pub fn end(&self) -> usize {
        self.end
    }
    pub fn end_time(&self) -> DateTime<Utc> {
        self.history.time(self.end)
    }

    /// The same view without the samples before `t`.
    pub fn since(self, t: DateTime<Utc>) -> Self {
        let lo = match self.history.index_at_or_before(t) {
            Some(i) if self.history.time(i) < t => i + 1,
            Some(i) => i,
            None => 0,
        };
        Self {
            lo: lo.max(self.lo).min(self.end),
            ..self
        }
    }

    /// Mean of the observed values with index in `[lo, hi]`, clipped to what the view shows.
    fn mean(&self, lo: i64, hi: i64) -> Option<f64> {
        let hi = hi.min(self.end as i64);
        let lo = lo.max(self.lo as i64);
        if hi < lo {
            return None;
        }
        let (lo, hi) = (lo as usize, hi as usize + 1);
        let n = self.history.counts[hi] - self.history.counts[lo];
        (n > 0).then(|| (self.history.sums[hi] - self.history.sums[lo]) / n as f64)
    }

    /// The mean load over the last `window` (the live level), if anything was observed in it.
    pub fn recent_mean(&self, window: Duration) -> Option<f64> {
        let n = self.history.steps(window).max(1);
        self.mean(self.end as i64 - n + 1, self.end as i64)
    }

    /// The last observed value, skipping gaps of up to `max_age`.
    pub fn last_value(&self, max_age: Duration) -> Option<f64> {
        let n = self.history.steps(max_age) as usize;
        (self.end.saturating_sub(n).max(self.lo)..=self.end)
            .rev()
            .map(|i| self.history.values[i])
            .find(|v| v.is_finite())
    }

    /// The index of the first observed (finite) sample in the view: what the view really knows
    /// starts there, whatever gap precedes it (a cache that holds more span than data, a metric
    /// that began recently).
    fn first_observed(&self) -> Option<usize> {
        let counts = &self.history.counts;
        let before = counts[self.lo];
        if counts[self.end + 1] == before {
            return None;
        }
        // `counts` never decreases: the first index whose count exceeds `before` is the sample.
        let offset = counts[self.lo + 1..=self.end + 1].partition_point(|&c| c == before);
        Some(self.lo + offset)
    }

    /// How long the view reaches back from its end to its first observed sample.
    pub fn observed_span(&self) -> Duration {
        self.first_observed().map_or(Duration::zero(), |i| {
            self.history.step * (self.end - i) as i32
        })
    }

    /// The highest observed value with index in `[lo, hi]`, if the window has been observed
    /// (ends by the view's end); what lies before the view counts as unobserved.
    pub(crate) fn observed_max(&self, lo: i64, hi: i64) -> Option<f64> {
        let lo = lo.max(self.lo as i64);
        if hi > self.end as i64 || hi < lo {
            return None;
        }
        self.history.values[lo as usize..=hi as usize]
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .reduce(f64::max)
    }
}

/// A way of predicting the load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Predictor {
    /// The recent level, held flat.
    Flat,
    /// The recent level, extended along its recent slope.
    Trend,
    /// A seasonal profile of the given period, scaled to the recent level.
    Seasonal(Seasonality),
}

impl Predictor {
    pub fn name(self) -> &'static str {
        match self {
            Predictor::Flat => "flat",
            Predictor::Trend => "trend",
            Predictor::Seasonal(Seasonality::Daily) => "daily",
            Predictor::Seasonal(Seasonality::Weekly) => "weekly",
        }
    }
}

/// Seasonal samples at least this far back are read as the peak of their epoch-aligned
/// `COARSE_BLOCK` instead of the mean of the `smoothing_half_width` window. The operator keeps
/// history older than this (plus the longest lead time) only as such block peaks, to hold weeks
/// of history for a thousand scalers in little memory; reading them the same way here makes the
/// backtest and the operator compute the same forecast from the same load. Peaks rather than
/// means, because a mean dilutes the leading edge of a spike that recurs at the same minute
/// (measured on the demo trace: 4 violation minutes with means, 1 with peaks, against 4 at full
/// resolution, for 1 % more cost); the level ratio cancels most of the upward bias on noise.
pub const COARSE_AFTER: Duration = Duration::days(2);
/// See `COARSE_AFTER`.
pub const COARSE_BLOCK: Duration = Duration::minutes(5);

/// Tunables of the predictors. They are about the physics of load series (noise, how fast a
/// level moves), not about any one workload; the defaults were chosen on the whole set of traces.
#[derive(Clone, Debug)]
pub struct ModelConfig {
    /// The window whose mean is the current level for `Flat`.
    pub flat_window: Duration,
    /// The window whose slope `Trend` extends (two such windows are compared).
    pub trend_window: Duration,
    /// The window over which the recent load is compared with the profile to correct its level.
    pub level_window: Duration,
    /// Half-width of the smoothing applied to past periods' samples.
    pub smoothing_half_width: Duration,
    /// How many past periods the profile takes the median of.
    pub max_periods: usize,
    /// How often the calibration is recomputed (on the minute grid: at every multiple of it).
    pub recalibrate_interval: Duration,
    /// How far back scored forecasts count.
    pub score_window: Duration,
    /// How many scored forecasts a predictor needs before its margin and rank are trusted.
    pub min_scores: usize,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            flat_window: Duration::minutes(15),
            trend_window: Duration::minutes(3),
            level_window: Duration::minutes(60),
            smoothing_half_width: Duration::minutes(2),
            max_periods: 4,
            recalibrate_interval: Duration::minutes(15),
            score_window: Duration::days(1),
            min_scores: 240,
        }
    }
}

/// Predicts the highest load in `[from, to]` with `predictor`, from what `view` has observed.
pub fn predict_peak(
    cfg: &ModelConfig,
    predictor: Predictor,
    view: View<'_>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Option<f64> {
    match predictor {
        Predictor::Flat => view.recent_mean(cfg.flat_window),
        Predictor::Trend => {
            let h = view.history();
            let n = h.steps(cfg.trend_window).max(1);
            let end = view.end() as i64;
            let now_level = view.mean(end - n + 1, end)?;
            let then_level = view.mean(end - 2 * n + 1, end - n)?;
            // Means of two adjacent windows are `n` steps apart: the slope per step.
            let slope = (now_level - then_level) / n as f64;
            // `now_level` is the level at the middle of its window.
            let centre = end as f64 - (n - 1) as f64 / 2.0;
            let at = |i: i64| now_level + slope * (i as f64 - centre);
            let lo = index_ceil(h, from);
            let hi = index_floor(h, to).max(lo);
            Some(at(lo).max(at(hi)).max(0.0))
        }
        Predictor::Seasonal(season) => {
            let h = view.history();
            let period = h.steps(season.period());
            if period == 0 {
                return None;
            }
            // Use only whole periods that have been observed, counted from the block of the first
            // sample: the operator's cache knows old history only as whole blocks.
            let block = h.steps(COARSE_BLOCK).max(1);
            let block_phase =
                (h.start().timestamp() / h.step().num_seconds().max(1)).rem_euclid(block);
            let first = view.first_observed()? as i64;
            let first_block = first - (first + block_phase).rem_euclid(block);
            let observed = view.end() as i64 - first_block;
            let periods = (observed / period).min(cfg.max_periods as i64) as usize;
            if periods == 0 {
                return None;
            }
            let profile = Profile {
                view,
                period,
                periods,
                half_width: h.steps(cfg.smoothing_half_width),
                coarse_lag: h.steps(COARSE_AFTER),
                block,
                block_phase,
            };
            let level = profile.level_ratio(h.steps(cfg.level_window).max(1))?;
            let lo = index_ceil(h, from);
            let hi = index_floor(h, to).max(lo);
            (lo..=hi)
                .filter_map(|i| profile.at(i))
                .reduce(f64::max)
                .map(|p| p * level)
        }
    }
}

pub(crate) fn index_ceil(h: &History, t: DateTime<Utc>) -> i64 {
    let d = (t - h.start()).num_seconds();
    let s = h.step().num_seconds();
    d.div_euclid(s) + i64::from(d.rem_euclid(s) != 0)
}

pub(crate) fn index_floor(h: &History, t: DateTime<Utc>) -> i64 {
    (t - h.start())
        .num_seconds()
        .div_euclid(h.step().num_seconds())
}

/// The seasonal profile of one period, as seen by `view`.
struct Profile<'a> {
    view: View<'a>,
    period: i64,
    periods: usize,
    half_width: i64,
    /// Past periods at least this many steps back are read as `COARSE_BLOCK` peaks.
    coarse_lag: i64,
    /// Steps per `COARSE_BLOCK`.
    block: i64,
    /// Where index 0 falls in its block (blocks are aligned to the epoch).
    block_phase: i64,
}

impl Profile<'_> {
    /// The median over past periods of the smoothed load at the same phase as index `i`.
    fn at(&self, i: i64) -> Option<f64> {
        let mut samples = [0.0f64; 8];
        let mut n = 0;
        let mut k = 1;
        while n < self.periods.min(samples.len()) {
            let c = i - k * self.period;
            if c + self.half_width < self.view.lo as i64 {
                break;
            }
            // A past period counts only once it has been observed (c ≤ end): causality.
            let smoothed = if k * self.period >= self.coarse_lag {
                let lo = c - (c + self.block_phase).rem_euclid(self.block);
                self.view.observed_max(lo, lo + self.block - 1)
            } else {
                self.view.mean(c - self.half_width, c + self.half_width)
            };
            if c <= self.view.end() as i64
                && let Some(m) = smoothed
            {
                samples[n] = m;
                n += 1;
            }
            k += 1;
            if k > self.periods as i64 + 2 {
                break;
            }
        }
        median(&mut samples[..n])
    }

    /// The ratio of the load over the last `window` steps to the profile over the same steps:
    /// the median of the ratios at up to 8 points, so that one point where the profile is off
    /// (a spike that recurs a minute earlier, a block peak that reaches past the phase) does not
    /// rescale the whole forecast.
    fn level_ratio(&self, window: i64) -> Option<f64> {
        let end = self.view.end() as i64;
        let mut ratios = [0.0f64; 8];
        let mut n = 0;
        let (mut quiet, mut seen) = (0, 0);
        let stride = (window / 8).max(1);
        let mut i = end;
        while i > end - window && n < ratios.len() {
            if let (Some(a), Some(p)) = (self.view.mean(i - stride + 1, i), self.at(i)) {
                seen += 1;
                if p > 0.0 {
                    ratios[n] = a / p;
                    n += 1;
                } else if a == 0.0 {
                    quiet += 1;
                }
            }
            i -= stride;
        }
        if n > 0 {
            median(&mut ratios[..n])
        } else if seen > 0 && quiet == seen {
            // Both zero: a quiet phase that the profile knows; keep its level.
            Some(1.0)
        } else {
            None
        }
    }
}

fn median(xs: &mut [f64]) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_unstable_by(f64::total_cmp);
    let n = xs.len();
    Some(if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    })
}

/// Every predictor's forecast of the peak in `[from, to]`.
pub fn predict_all(
    cfg: &ModelConfig,
    predictors: &[Predictor],
    view: View<'_>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<(Predictor, f64)> {
    predictors
        .iter()
        .filter_map(|&p| predict_peak(cfg, p, view, from, to).map(|v| (p, v.max(0.0))))
        .collect()
}

/// The predictors a spec asks for: always the flat level, plus its seasonalities.
pub fn predictors_for(seasonality: &[Seasonality]) -> Vec<Predictor> {
    let mut v = vec![Predictor::Flat, Predictor::Trend];
    for s in [Seasonality::Daily, Seasonality::Weekly] {
        if seasonality.contains(&s) {
            v.push(Predictor::Seasonal(s));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 5, 0, 0, 0).unwrap() // a Monday
    }

    /// A daily pattern: 100 at night, a ramp to 1000 at 09:00 that holds until 17:00.
    fn daily_load(t: DateTime<Utc>) -> f64 {
        let minute = (t - t0()).num_minutes().rem_euclid(1440);
        if (540..1020).contains(&minute) {
            1000.0
        } else {
            100.0
        }
    }

    fn history(days: i64, load: impl Fn(DateTime<Utc>) -> f64) -> History {
        let values = (0..days * 1440)
            .map(|m| load(t0() + Duration::minutes(m)))
            .collect();
        History::new(t0(), Duration::minutes(1), values)
    }

    #[test]
    fn a_spike_inside_the_current_coarse_block_does_not_shrink_the_level() {
        // A daily spike at 09:09; the decision at 09:05, whose 5-minute block (09:05–09:09)
        // the spike's first minute falls in. Periods two or more days back are read as block
        // peaks, so at 09:05 they already show the spike; the level must stay at 1.
        let spike = |t: DateTime<Utc>| {
            let m = (t - t0()).num_minutes().rem_euclid(1440);
            if (549..579).contains(&m) {
                1000.0
            } else {
                100.0
            }
        };
        let h = history(9, spike);
        let now = t0() + Duration::days(8) + Duration::minutes(545);
        let view = h.view_at(now).unwrap();
        let cfg = ModelConfig::default();
        let daily = Predictor::Seasonal(Seasonality::Daily);
        let peak = predict_peak(&cfg, daily, view, now, now + Duration::minutes(6)).unwrap();
        assert!((peak - 1000.0).abs() < 1.0, "forecast peak {peak}");
        // A block peak makes the profile early by at most the block: the block before is quiet.
        let earlier = now - Duration::minutes(5);
        let view = h.view_at(earlier).unwrap();
        let quiet =
            predict_peak(&cfg, daily, view, earlier, earlier + Duration::minutes(4)).unwrap();
        assert!(
            (quiet - 100.0).abs() < 1.0,
            "forecast before the spike's block: {quiet}"
        );
    }

    #[test]
    fn seasonal_profile_foresees_a_recurring_step_that_flat_cannot() {
        let h = history(15, daily_load);
        // At 08:56 on day 14, with data up to 08:55: the step to 1000 comes at 09:00.
        let now = t0() + Duration::days(14) + Duration::minutes(536);
        let view = h.view_at(now - Duration::minutes(1)).unwrap();
        let cfg = ModelConfig::default();
        let seasonal = predict_peak(
            &cfg,
            Predictor::Seasonal(Seasonality::Daily),
            view,
            now,
            now + Duration::minutes(6),
        )
        .unwrap();
        let flat =
            predict_peak(&cfg, Predictor::Flat, view, now, now + Duration::minutes(6)).unwrap();
        assert!((flat - 100.0).abs() < 1e-9, "{flat}");
        // The smoothed profile at 09:00 is already well above the night level.
        assert!(seasonal > 400.0, "{seasonal}");
    }

    #[test]
    fn level_correction_follows_growth() {
        // The same shape, but this week the load is twice last week's.
        let h = history(15, |t| {
            daily_load(t)
                * if t >= t0() + Duration::days(14) {
                    2.0
                } else {
                    1.0
                }
        });
        let now = t0() + Duration::days(14) + Duration::minutes(700);
        let view = h.view_at(now - Duration::minutes(1)).unwrap();
        let cfg = ModelConfig::default();
        for season in [Seasonality::Daily, Seasonality::Weekly] {
            let p = predict_peak(
                &cfg,
                Predictor::Seasonal(season),
                view,
                now,
                now + Duration::minutes(6),
            )
            .unwrap();
            assert!((p - 2000.0).abs() < 1.0, "{season:?}: {p}");
        }
    }

    #[test]
    fn predictions_use_only_observed_data() {
        let h = history(10, daily_load);
        let truncated = History::new(
            t0(),
            Duration::minutes(1),
            h.values()[..9 * 1440 + 500].to_vec(),
        );
        let cfg = ModelConfig::default();
        let now = t0() + Duration::days(9) + Duration::minutes(500);
        for p in predictors_for(&[Seasonality::Daily, Seasonality::Weekly]) {
            let a = predict_peak(
                &cfg,
                p,
                h.view_at(now - Duration::minutes(1)).unwrap(),
                now,
                now + Duration::minutes(30),
            );
            let b = predict_peak(
                &cfg,
                p,
                truncated.view_at(now - Duration::minutes(1)).unwrap(),
                now,
                now + Duration::minutes(30),
            );
            assert_eq!(a, b, "{p:?}");
        }
    }

    #[test]
    fn gaps_are_skipped_not_read_as_zero() {
        let mut values: Vec<f64> = (0..3 * 1440).map(|_| 500.0).collect();
        for v in &mut values[1440 + 100..1440 + 400] {
            *v = f64::NAN;
        }
        let h = History::new(t0(), Duration::minutes(1), values);
        let now = t0() + Duration::days(2) + Duration::minutes(200);
        let view = h.view_at(now - Duration::minutes(1)).unwrap();
        let p = predict_peak(
            &ModelConfig::default(),
            Predictor::Seasonal(Seasonality::Daily),
            view,
            now,
            now + Duration::minutes(6),
        )
        .unwrap();
        assert!((p - 500.0).abs() < 1e-9, "{p}");
    }
}
