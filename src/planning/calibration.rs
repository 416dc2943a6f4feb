//! How much each predictor is trusted, and with what margin: measured on its own recent record.
//!
//! Every minute, every predictor's forecast of the peak in `[minute, minute + leadTime]` is
//! recorded. At every multiple of `recalibrate_interval` on the minute grid, the forecasts of the
//! last `score_window` whose window has passed are scored against the peak that came, as the error
//! in replicas divided by `sqrt(replicas + 1)` (count-like load has noise that grows with the
//! square root of its level, so one normalized margin fits a fleet of 2 at night and of 60 at the
//! peak). A predictor's margin is the `targetQuantile` of its errors; the predictor whose provision
//! with that margin had the lowest pinball (quantile) loss is the one used — a loss that weighs how
//! far each miss fell short, so a predictor that is exact on most minutes but misses every
//! recurring spike loses to one that foresees the spikes.
//!
//! A calibration is a pure function of the history up to its boundary: the operator, which starts
//! at any minute and may restart, and the backtest, which replays from a trace's first minute,
//! compute the same one. Only the forecasts are kept (a few floats a minute for a day), not the
//! history they came from.

use std::collections::VecDeque;

use chrono::{DateTime, Duration, Utc};

use super::forecast::{self, History, ModelConfig, Predictor, View, index_ceil, index_floor};

/// How stale the newest sample may be before the load counts as unobserved: no forecast is
/// recorded (and `plan` holds) without a recent sample.
pub const MAX_LOAD_AGE: Duration = Duration::minutes(5);

/// What a predictor's recent record says about it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Calibration {
    pub predictor: Predictor,
    /// The normalized error that `targetQuantile` of the recent windows stayed within.
    pub margin: f64,
    /// The load one replica carries, the unit the errors are measured in.
    pub unit: f64,
    /// Mean absolute percentage error of the recent forecasts.
    pub error_percent: f64,
    /// Mean pinball loss of the provision at `targetQuantile` (lower is better).
    pub loss: f64,
    pub scores: usize,
}

impl Calibration {
    /// The load to provision for a forecast peak, margin included, the margin capped at
    /// `max_margin` times the forecast.
    pub fn provision(&self, predicted: f64, max_margin: f64) -> f64 {
        provision(predicted, self.margin, self.unit).min(predicted * (1.0 + max_margin))
    }
}

fn provision(predicted: f64, margin: f64, unit: f64) -> f64 {
    let replicas = predicted / unit;
    ((replicas + margin * (replicas + 1.0).sqrt()) * unit).max(0.0)
}

/// The quantile loss of provisioning `provided` for `actual` at quantile `q`.
fn pinball(provided: f64, actual: f64, q: f64) -> f64 {
    if actual > provided {
        q * (actual - provided)
    } else {
        (1.0 - q) * (provided - actual)
    }
}

fn normalized_error(predicted: f64, actual: f64, unit: f64) -> f64 {
    let (p, a) = (predicted / unit, actual / unit);
    (a - p) / (p + 1.0).sqrt()
}

/// What forecasts are made and scored for.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    /// The window a forecast covers: `[minute, minute + lead]`.
    pub lead: Duration,
    /// The share of windows the provision should cover.
    pub quantile: f64,
    /// The load one replica carries.
    pub unit: f64,
}

/// The predictors a spec asks for have at most this many members.
const SLOTS: usize = 4;

/// The record of recent forecasts and the calibrations made from it.
#[derive(Clone, Debug)]
pub struct Calibrator {
    predictors: Vec<Predictor>,
    /// The epoch minute of `records[0]`.
    first: i64,
    /// Per minute, each predictor's forecast (in the order of `predictors`); NaN where none.
    records: VecDeque<[f32; SLOTS]>,
    /// The boundary (epoch minute) of the last calibration.
    calibrated_at: Option<i64>,
    calibrations: Vec<Calibration>,
}

fn epoch_minute(t: DateTime<Utc>) -> i64 {
    t.timestamp().div_euclid(60)
}

fn minute_time(m: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(m * 60, 0).unwrap_or(DateTime::UNIX_EPOCH)
}

impl Calibrator {
    pub fn new(predictors: Vec<Predictor>) -> Self {
        assert!(predictors.len() <= SLOTS, "at most {SLOTS} predictors");
        Self {
            predictors,
            first: 0,
            records: VecDeque::new(),
            calibrated_at: None,
            calibrations: Vec::new(),
        }
    }

    /// The calibration of each predictor that has enough scored forecasts.
    pub fn calibrations(&self) -> &[Calibration] {
        &self.calibrations
    }

    /// Every predictor's forecast recorded for the minute of `t`.
    pub fn forecasts_at(&self, t: DateTime<Utc>) -> Vec<(Predictor, f64)> {
        let m = epoch_minute(t);
        let Some(record) = usize::try_from(m - self.first)
            .ok()
            .and_then(|i| self.records.get(i))
        else {
            return Vec::new();
        };
        self.predictors
            .iter()
            .zip(record)
            .filter(|(_, v)| v.is_finite())
            .map(|(p, v)| (*p, *v as f64))
            .collect()
    }

    /// Records the forecasts of every minute up to `now` not yet recorded, and recalibrates at
    /// the last boundary passed. `view_at` gives what was observed by a minute (the history up to
    /// it, no older than the spec's history). After a start, or a pause longer than the record,
    /// the record is rebuilt from history: from one score window and lead time before the last
    /// boundary, so that this calibration is the same as one kept up minute by minute.
    pub fn advance<'h>(
        &mut self,
        cfg: &ModelConfig,
        history: &'h History,
        view_at: impl Fn(DateTime<Utc>) -> Option<View<'h>>,
        now: DateTime<Utc>,
        target: Target,
    ) {
        let interval = cfg.recalibrate_interval.num_minutes().max(1);
        let window = cfg.score_window.num_minutes();
        let lead = target.lead.num_minutes();
        let now_m = epoch_minute(now);
        let boundary = now_m - now_m.rem_euclid(interval);
        let oldest_needed = boundary - window - lead;
        let next = self.first + self.records.len() as i64;
        if self.records.is_empty() || next < oldest_needed {
            self.records.clear();
            self.first = oldest_needed;
        }
        for m in (self.first + self.records.len() as i64)..=now_m {
            let t = minute_time(m);
            let mut record = [f32::NAN; SLOTS];
            if let Some(view) = view_at(t).filter(|v| t - v.end_time() <= MAX_LOAD_AGE) {
                for (slot, p) in self.predictors.iter().enumerate() {
                    if let Some(v) = forecast::predict_peak(cfg, *p, view, t, t + target.lead) {
                        record[slot] = v.max(0.0) as f32;
                    }
                }
            }
            self.records.push_back(record);
        }
        // What the next boundary needs, and what a decision now needs.
        let keep_from = (boundary + interval - window - lead).min(now_m);
        while self.first < keep_from && !self.records.is_empty() {
            self.records.pop_front();
            self.first += 1;
        }
        if self.calibrated_at != Some(boundary) && boundary <= now_m {
            self.calibrated_at = Some(boundary);
            if let Some(view) = history.view_at(minute_time(boundary)) {
                self.recalibrate(cfg, view, boundary, target);
            }
        }
    }

    /// Scores the forecasts made in the score window before `boundary` whose lead-time window
    /// `view` (the history up to the boundary) has fully observed, and derives each predictor's
    /// margin and loss from them.
    fn recalibrate(&mut self, cfg: &ModelConfig, view: View<'_>, boundary: i64, target: Target) {
        self.calibrations.clear();
        let h = view.history();
        let from = (boundary - cfg.score_window.num_minutes()).max(self.first);
        // The peak that came in each forecast's window, or None where the window had a gap.
        let actuals: Vec<(usize, f64)> = (from..=boundary)
            .filter_map(|m| {
                let t = minute_time(m);
                let lo = index_ceil(h, t);
                let hi = index_floor(h, t + target.lead).max(lo);
                let actual = view.observed_max(lo, hi)?;
                Some(((m - self.first) as usize, actual))
            })
            .collect();
        for (slot, predictor) in self.predictors.iter().enumerate() {
            let scores: Vec<(f64, f64)> = actuals
                .iter()
                .filter_map(|&(i, actual)| {
                    let predicted = self.records.get(i)?[slot];
                    predicted.is_finite().then_some((predicted as f64, actual))
                })
                .collect();
            if scores.len() < cfg.min_scores {
                continue;
            }
            let mut errors: Vec<f64> = scores
                .iter()
                .map(|&(p, a)| normalized_error(p, a, target.unit))
                .collect();
            let Some(margin) = quantile(&mut errors, target.quantile) else {
                continue;
            };
            let n = scores.len() as f64;
            let loss = scores
                .iter()
                .map(|&(p, a)| pinball(provision(p, margin, target.unit), a, target.quantile))
                .sum::<f64>()
                / n;
            let error_percent = 100.0
                * scores
                    .iter()
                    .map(|&(p, a)| ((a - p).abs() / a.max(f64::EPSILON)).min(10.0))
                    .sum::<f64>()
                / n;
            self.calibrations.push(Calibration {
                predictor: *predictor,
                margin,
                unit: target.unit,
                error_percent,
                loss,
                scores: scores.len(),
            });
        }
    }
}

/// The `q`-quantile of `xs` (nearest rank, rounding up so the coverage is at least `q`).
pub fn quantile(xs: &mut [f64], q: f64) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    let rank = ((q * xs.len() as f64).ceil() as usize).clamp(1, xs.len()) - 1;
    let (_, v, _) = xs.select_nth_unstable_by(rank, f64::total_cmp);
    Some(*v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 5, 0, 0, 0).unwrap()
    }

    fn history(days: i64, load: impl Fn(i64) -> f64) -> History {
        History::new(
            t0(),
            Duration::minutes(1),
            (0..days * 1440).map(load).collect(),
        )
    }

    fn target() -> Target {
        Target {
            lead: Duration::minutes(6),
            quantile: 0.95,
            unit: 100.0,
        }
    }

    #[test]
    fn a_wider_margin_for_noisier_load() {
        let cfg = ModelConfig::default();
        let margin_for = |noise: f64| {
            // Deterministic pseudo-noise: a fixed permutation of offsets.
            let h = history(3, |m| {
                1000.0 * (1.0 + noise * ((m * 7919 % 101) as f64 / 50.0 - 1.0))
            });
            let now = t0() + Duration::days(3) - Duration::minutes(1);
            let mut c = Calibrator::new(vec![Predictor::Flat]);
            c.advance(&cfg, &h, |t| h.view_at(t), now, target());
            // The provision for a forecast of 1000, uncapped, relative to the forecast.
            c.calibrations()[0].provision(1000.0, 10.0) / 1000.0
        };
        let quiet = margin_for(0.01);
        let noisy = margin_for(0.3);
        assert!(quiet > 1.0 && quiet < 1.03, "{quiet}");
        assert!(noisy > 1.2, "{noisy}");
    }

    #[test]
    fn kept_up_minute_by_minute_or_rebuilt_at_once_it_is_the_same() {
        let cfg = ModelConfig::default();
        let h = history(4, |m| {
            500.0 + 400.0 * ((m % 1440) as f64 / 230.0).sin() + (m * 31 % 17) as f64
        });
        let predictors = vec![
            Predictor::Flat,
            Predictor::Trend,
            Predictor::Seasonal(crate::api::Seasonality::Daily),
        ];
        let mut steady = Calibrator::new(predictors.clone());
        let end = t0() + Duration::days(4) - Duration::minutes(1);
        let mut t = t0() + Duration::days(1);
        while t <= end {
            steady.advance(&cfg, &h, |t| h.view_at(t), t, target());
            if t.timestamp() % 3600 == 0 || t == end {
                // A restarted operator rebuilds its record from history alone.
                let mut rebuilt = Calibrator::new(predictors.clone());
                rebuilt.advance(&cfg, &h, |t| h.view_at(t), t, target());
                assert_eq!(rebuilt.calibrations(), steady.calibrations(), "at {t}");
                assert_eq!(rebuilt.forecasts_at(t), steady.forecasts_at(t), "at {t}");
            }
            t += Duration::minutes(1);
        }
        assert_eq!(steady.calibrations().len(), 3);
        // Bounded memory: a score window, a lead time and an interval of minutes.
        assert!(
            steady.records.len() <= 1440 + 6 + 15 + 1,
            "{}",
            steady.records.len()
        );
    }

    #[test]
    fn quantile_covers_at_least_q() {
        let mut xs: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&mut xs, 0.95), Some(95.0));
        assert_eq!(quantile(&mut xs, 1.0), Some(100.0));
        assert_eq!(quantile(&mut [], 0.5), None);
    }
}
