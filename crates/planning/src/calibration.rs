//! The availability objective: how much margin, on which basis, keeps the share of
//! under-provisioned minutes within what the SRE allows (`spec.objective`), at the least cost.
//!
//! Every minute the daily and weekly forecasts of the peak load within the lead time are recorded.
//! Every `recalibrate_interval` on the minute grid, the last `calibration_window` of that record is
//! replayed against the load that came, for five bases a decision may stand on — the live load L,
//! max(daily, L), max(daily, weekly), weekly and daily — and for each the cheapest margin that
//! would have met the objective is found in closed form: demand does not depend on the replicas,
//! so with `desired(u) = ceil(stab(u)·(1 + m)/c + a)` (`stab` the basis held over the scale-down
//! stabilization window, `c` the load per replica, `a` a few whole replicas) and
//! `ready(t) = min(desired)` over the start-up time before `t`, minute `t` is covered exactly when
//! `m > c·(needed(t) − 1)/R(t) − 1 − a·c/R(t)`, `R(t)` being the least `stab` over that start-up
//! time. The smallest `m` that leaves at most the objective's share of minutes uncovered is one
//! selection over the window. Minutes that only a margin above `max_margin` would have covered
//! on every basis (an outage's end, a flash crowd) are unpreventable: they are counted and
//! reported, but they do not set the margin; minutes one basis covers and another cannot count
//! against the objective of the one that cannot. The basis and margins of least replayed cost are
//! used until the next boundary.
//!
//! A calibration is a pure function of the history up to its boundary: the operator, which starts
//! at any minute and may restart, and the backtest, which replays from a trace's first minute,
//! compute the same one. Only the forecasts are kept (four `f32` a minute, the two forecasts and
//! the spread of each one's past periods, `ModelConfig::period_spread`: half precision, tried
//! first, overflows at 65 504, well within the range of a byte-rate metric), and how many of them
//! is `ModelConfig::record`: the backtest keeps the week and extends it a minute at a time; the
//! operator, which holds thousands of scalers, keeps only the minutes since the last boundary and
//! forecasts the week again from history at each boundary (`Record::Recomputed`). Both give the
//! same calibration from the same history, as a restart's rebuild always has. So that the
//! operator's scalers do not all recompute at the same minute, each may take its boundaries at
//! its own offset on the grid (`ModelConfig::recalibrate_offset`).

use std::collections::VecDeque;

use chrono::{DateTime, Duration, Utc};

use super::forecast::{self, Adjustments, History, ModelConfig, Predictor, ProfileMemo, View};

mod replay;

pub use super::forecast::MAX_LOAD_AGE;

/// Whether `view`'s newest sample is recent enough at `at` for the load to count as observed.
fn is_fresh(view: &View<'_>, at: DateTime<Utc>) -> bool {
    at - view.end_time() <= MAX_LOAD_AGE
}

/// What a decision reads of the live load.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LiveReading {
    /// The newest sample within `MAX_LOAD_AGE` of a fresh view's end: what the HPA would act on.
    pub load: Option<f64>,
    /// The sustained live load: a level at least two samples confirm, so that one odd minute
    /// neither raises nor lowers it. It is the lower median (`lower_median`) of the newest
    /// `ModelConfig::sustained_samples` of those samples; when the newest is not zero, zeros
    /// before it do not count (a metric back from believed zeros is followed as soon as two
    /// samples show it), and `None` while fewer than two samples count: one sample alone —
    /// after believed zeros, after a gap — is never a sustained load (`plan::decide` then
    /// follows the newest sample within the scale-up limit, as the HPA would).
    pub sustained: Option<f64>,
    /// The newest sample is a zero held at a passing level (`forecast::zero_blips`: a drop that
    /// has not persisted, after a level that did not last `ModelConfig::zero_persistence` or
    /// that the drop did not directly follow): the decision keeps its count on it but does not
    /// raise it (`plan::decide`). Zeros held at a lasting level read as that level throughout,
    /// as the samples they stand for would: a floor under a count reset below it.
    pub held_zero: bool,
}

/// How many samples a sustained load needs (at most `ModelConfig::sustained_samples`): one
/// sample alone, however odd, must not be exempt from the scale-up limit.
const CONFIRMING_SAMPLES: usize = 2;

/// The live load at `at` as a decision reads it from what `view` has observed. In both figures
/// a sudden drop to zero is held like a missing sample until it persists
/// (`forecast::zero_blips`): its zeros read as the level before it.
pub fn live_reading(cfg: &ModelConfig, view: View<'_>, at: DateTime<Utc>) -> LiveReading {
    live_reading_after(cfg, view, at - view.end_time())
}

/// `live_reading` for a view that ends `age` before the instant: what the calibration's replay
/// reads a week of minutes with, without a date computation each.
fn live_reading_after(cfg: &ModelConfig, view: View<'_>, age: Duration) -> LiveReading {
    if age > MAX_LOAD_AGE {
        return LiveReading::default();
    }
    let h = view.history();
    let (_, values, passing) = view.held_tail(
        view.end() as i64 - h.steps(MAX_LOAD_AGE),
        h.steps(cfg.zero_persistence),
        cfg.sustained_samples,
    );
    let held_passing = |i: usize| passing.iter().any(|&(a, b)| (a..=b).contains(&i));
    let mut newest = values
        .iter()
        .copied()
        .enumerate()
        .rev()
        .filter(|(_, v)| v.is_finite());
    let Some((at, load)) = newest.next() else {
        return LiveReading::default();
    };
    let held_zero = held_passing(at);
    let mut recent = [load; 8];
    let wanted = cfg.sustained_samples.clamp(1, recent.len());
    let mut n = 1;
    for (i, v) in newest {
        if n == wanted || (load > 0.0 && v == 0.0) {
            break;
        }
        // Under a sample that is not held at a passing level, the zeros held at one are
        // missing samples: not zeros (the drop has not persisted), nor the level (it did not
        // last). Read as the level, three samples of 1e6 a day old, held over two zeros, made
        // the first real sample after them a sustained load of 1e6.
        if !held_zero && held_passing(i) {
            continue;
        }
        recent[n] = v;
        n += 1;
    }
    let sustained = if n >= CONFIRMING_SAMPLES.min(wanted) {
        forecast::lower_median(&mut recent[..n])
    } else {
        None
    };
    // A newest sample the series has gone quiet after (no sample at the view's last step, or
    // a view that ended a step or more ago) is the live load only as far as the sustained
    // load confirms it. Followed as it is, minute after minute, one bogus sample before the
    // series vanished asked for its replicas again at every step of `MAX_LOAD_AGE`, and the
    // scale-up limit, which paces a climb, let it climb to `maxReplicas` in five minutes
    // (and the hold that follows kept it there). So one new sample moves the count once,
    // within the limit; a load that two samples confirm is still followed while it is fresh
    // (an exporter that crashed under real load), and nothing confirmed is a hold.
    let quiet = age >= h.step() || values.last().is_none_or(|v| !v.is_finite());
    LiveReading {
        load: if quiet { sustained } else { Some(load) },
        sustained,
        held_zero,
    }
}

/// What a decision stands on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Basis {
    /// The live load.
    LiveLoad,
    /// The higher of the daily forecast and the live load.
    DailyOrLiveLoad,
    /// The higher of the daily and the weekly forecast.
    DailyOrWeekly,
    Weekly,
    Daily,
}

pub const BASES: [Basis; 5] = [
    Basis::LiveLoad,
    Basis::DailyOrLiveLoad,
    Basis::DailyOrWeekly,
    Basis::Weekly,
    Basis::Daily,
];

impl Basis {
    pub fn name(self) -> &'static str {
        match self {
            Basis::LiveLoad => "live load",
            Basis::DailyOrLiveLoad => "daily forecast or live load",
            Basis::DailyOrWeekly => "daily or weekly forecast",
            Basis::Weekly => "weekly forecast",
            Basis::Daily => "daily forecast",
        }
    }

    /// Whether a forecast takes part.
    pub fn forecasts(self) -> bool {
        self != Basis::LiveLoad
    }

    /// The basis' load from the live load and the two forecasts; NaN when a part is missing.
    pub fn load(self, live: f64, daily: f64, weekly: f64) -> f64 {
        match self {
            Basis::LiveLoad => live,
            Basis::DailyOrLiveLoad => both(daily, live),
            Basis::DailyOrWeekly => both(daily, weekly),
            Basis::Weekly => weekly,
            Basis::Daily => daily,
        }
    }

    /// The part of the basis known ahead: the forecasts alone, without the live load.
    pub fn foresight(self, daily: f64, weekly: f64) -> f64 {
        match self {
            Basis::LiveLoad => f64::NAN,
            Basis::DailyOrLiveLoad | Basis::Daily => daily,
            Basis::DailyOrWeekly => both(daily, weekly),
            Basis::Weekly => weekly,
        }
    }
}

/// `max(a, b)` when both exist, else NaN.
fn both(a: f64, b: f64) -> f64 {
    if a.is_finite() && b.is_finite() {
        a.max(b)
    } else {
        f64::NAN
    }
}

/// The margins a decision applies: `ceil(basis · (1 + margin) / c + extra)` replicas.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Margins {
    pub basis: Basis,
    /// Relative margin on the basis' load.
    pub margin: f64,
    /// Absolute margin, in replicas.
    pub extra: f64,
}

impl Margins {
    /// The load to provision for `load` (in the metric's unit), margins included.
    pub fn provision(&self, load: f64, target_per_replica: f64) -> f64 {
        load * (1.0 + self.margin) + self.extra * target_per_replica
    }
}

/// What the last recalibration found.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Calibration {
    pub margins: Margins,
    /// Of the last day's and week's scored minutes, the share (%) these margins would have left
    /// under-provisioned, replayed.
    pub underprovisioned_day_percent: f64,
    pub underprovisioned_week_percent: f64,
    /// Of the week's scored minutes, the share (%) no margin up to `max_margin` would have covered.
    pub unpreventable_percent: f64,
    /// Of the week's scored minutes, the share (%) whose load needed more than `maxReplicas`.
    pub above_max_percent: f64,
    /// The chosen forecast's mean absolute error over the last day (%), if a forecast is chosen.
    pub error_percent: Option<f64>,
    /// How many minutes the calibration was scored on.
    pub scored_minutes: usize,
    /// The last day's mean load against the same day's a week before, where both were mostly
    /// observed: far from 1, the week the margins were fitted on straddles a change of regime
    /// (a level shift, a term's start or end), and a status that reports the objective missed
    /// says so rather than blaming the forecast.
    pub level_change: Option<f64>,
}

/// What the calibration aims for, from the spec.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Objective {
    /// The share of minutes that may be under-provisioned, as a fraction (0.001 for 0.1 %).
    pub max_underprovisioned: f64,
    /// The load one replica carries.
    pub target_per_replica: f64,
    pub min_replicas: u32,
    pub max_replicas: u32,
    /// The forecast window, `[minute, minute + lead]`.
    pub lead: Duration,
    /// The scale-down stabilization window, which holds a basis' peak that long.
    pub stabilization: Duration,
}

/// How much of the calibration's record is kept between two boundaries. Neither changes a
/// calibration; they trade memory against forecasting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Record {
    /// The week the calibration replays is kept and extended by a minute at each decision:
    /// about 160 KB a scaler, one forecast of each predictor and its spread a minute. What the backtest uses:
    /// it replays one scaler over weeks, at every boundary.
    #[default]
    Kept,
    /// Only the minutes since the last boundary (and the stabilization window before it, which
    /// a scaled margin reads) are kept (about 3 KB); at each boundary the
    /// week is forecast again from history, as a restart rebuilds it, and dropped once the
    /// calibration is made: a week of forecasts (tens of milliseconds) a scaler per
    /// `recalibrate_interval`. What the operator uses, for thousands of scalers.
    Recomputed,
}

/// The record of recent forecasts and the calibration made from it.
#[derive(Clone, Debug)]
pub struct Calibrator {
    predictors: Vec<Predictor>,
    /// The epoch minute of `records[0]`.
    first: i64,
    /// Per minute, the daily and the weekly forecast, and with `ModelConfig::period_spread`
    /// the spread of each one's past periods (`forecast::period_spread`) (NaN where none).
    records: VecDeque<[f32; 4]>,
    /// The boundary (epoch minute) of the last calibration.
    calibrated_at: Option<i64>,
    calibration: Option<Calibration>,
    /// With `ModelConfig::period_spread`, the scaled margin the last calibration found for a
    /// forecast basis: each decision's margin is its quantile times the scale of its minute.
    scaled: Option<replay::Scaled>,
}

fn epoch_minute(t: DateTime<Utc>) -> i64 {
    t.timestamp().div_euclid(60)
}

fn minute_time(m: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(m * 60, 0).unwrap_or(DateTime::UNIX_EPOCH)
}

fn slot(p: Predictor) -> usize {
    match p {
        Predictor::Daily => 0,
        Predictor::Weekly => 1,
    }
}

impl Calibrator {
    pub fn new(predictors: Vec<Predictor>) -> Self {
        Self {
            predictors,
            first: 0,
            records: VecDeque::new(),
            calibrated_at: None,
            calibration: None,
            scaled: None,
        }
    }

    /// Forgets the calibration (not the record): the next `advance` calibrates again, as after a
    /// change of the objective.
    pub fn invalidate(&mut self) {
        self.calibrated_at = None;
        self.calibration = None;
        self.scaled = None;
    }

    /// The predictors whose forecasts are recorded.
    pub fn predictors(&self) -> &[Predictor] {
        &self.predictors
    }

    /// The last calibration, once there is enough record for one.
    pub fn calibration(&self) -> Option<&Calibration> {
        self.calibration.as_ref()
    }

    /// The daily and weekly forecasts recorded for the minute of `t` (NaN where none).
    pub fn forecasts_at(&self, t: DateTime<Utc>) -> (f64, f64) {
        usize::try_from(epoch_minute(t) - self.first)
            .ok()
            .and_then(|i| self.records.get(i))
            .map_or((f64::NAN, f64::NAN), |r| (f64::from(r[0]), f64::from(r[1])))
    }

    /// The first and the last minute recorded, if any.
    pub fn recorded(&self) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        (!self.records.is_empty()).then(|| {
            (
                minute_time(self.first),
                minute_time(self.first + self.records.len() as i64 - 1),
            )
        })
    }

    /// Whether `advance` at `now` calibrates: the last boundary is not the one calibrated at
    /// (a start, a boundary passed, `invalidate`).
    pub fn calibrates_at(&self, cfg: &ModelConfig, now: DateTime<Utc>) -> bool {
        self.calibrated_at != Some(Self::boundary(cfg, epoch_minute(now)))
    }

    /// Minutes of record a calibration at a boundary reads before it.
    fn reach(cfg: &ModelConfig, objective: &Objective) -> i64 {
        cfg.calibration_window.num_minutes()
            + objective.lead.num_minutes()
            + objective.stabilization.num_minutes()
    }

    /// Records the forecasts of every minute up to `now` not yet recorded, and recalibrates at
    /// the last boundary passed. `view_at` gives what was observed by a minute (the history up to
    /// it, no older than the spec's history). After a start, or a pause longer than the record,
    /// the record is rebuilt from history, from as far before the last boundary as its
    /// calibration reads, so that it is the same as one kept up minute by minute.
    pub fn advance<'h>(
        &mut self,
        cfg: &ModelConfig,
        history: &'h History,
        view_at: impl Fn(DateTime<Utc>) -> Option<View<'h>>,
        now: DateTime<Utc>,
        objective: &Objective,
        adjust: &Adjustments,
    ) {
        let interval = cfg.recalibrate_interval.num_minutes().max(1);
        let now_m = epoch_minute(now);
        let boundary = Self::boundary(cfg, now_m);
        let oldest_needed = boundary - Self::reach(cfg, objective);
        let calibrating = self.calibrated_at != Some(boundary);
        // A scaled margin reads the spreads of the stabilization window before a decision.
        let held = match cfg.period_spread {
            true => objective.stabilization.num_minutes().max(0),
            false => 0,
        };
        // Where the record must begin: at the week the calibration reads, if it is kept or a
        // calibration is made now; otherwise, for a recomputed one, at the boundary (less the
        // stabilization window a scaled margin reads).
        let needed_from = match cfg.record {
            Record::Recomputed if !calibrating => boundary - held,
            _ => oldest_needed,
        };
        let next = self.first + self.records.len() as i64;
        if self.records.is_empty() || next < needed_from || self.first > needed_from {
            // Room for the longest the record gets (a reach and an interval, just before the
            // boundary's trim) and no more: grown by doubling, a week's record took 16 384
            // minutes' room for about 10 300, 50 KB more per scaler, for as long as it lives.
            let longest = (boundary - needed_from + interval + 1).max(0) as usize;
            self.records = VecDeque::with_capacity(longest);
            self.first = needed_from;
        }
        // A rebuild forecasts a week of minutes through views of one history: the profile's
        // points read by one minute's forecast are read again by the next minutes'.
        let mut memos = [ProfileMemo::default(), ProfileMemo::default()];
        for m in (self.first + self.records.len() as i64)..=now_m {
            let t = minute_time(m);
            let mut record = [f32::NAN; 4];
            if let Some(view) = view_at(t).filter(|v| is_fresh(v, t)) {
                // The view's level, the same for both predictors: read once.
                let level = forecast::level_now(cfg, view, adjust);
                for p in &self.predictors {
                    let memo = &mut memos[slot(*p)];
                    if let Some(level) = level
                        && let Some(v) = forecast::predict_peak_at_level(
                            cfg,
                            *p,
                            view,
                            adjust,
                            t,
                            t + objective.lead,
                            level,
                            memo,
                        )
                    {
                        record[slot(*p)] = v.max(0.0) as f32;
                    }
                    if cfg.period_spread
                        && let Some(s) =
                            forecast::period_spread(cfg, *p, view, adjust, t, t + objective.lead)
                    {
                        record[2 + slot(*p)] = s as f32;
                    }
                }
            }
            self.records.push_back(record);
        }
        if calibrating {
            self.calibrated_at = Some(boundary);
            (self.calibration, self.scaled) =
                match self.recalibrate(cfg, history, boundary, objective, adjust) {
                    Some((c, scaled)) => (Some(c), scaled),
                    None => (None, None),
                };
        }
        if let (Some(c), Some(scaled)) = (&mut self.calibration, &self.scaled) {
            let scale_at = |m: i64| {
                let r = usize::try_from(m - self.first)
                    .ok()
                    .and_then(|i| self.records.get(i))
                    .copied()
                    .unwrap_or([f32::NAN; 4]);
                scaled.scale(replay::basis_spread(c.margins.basis, r.map(f64::from)))
            };
            // The scale the recommendations held now were set at: the highest over the
            // stabilization window, as the replay counts it.
            let scale = (now_m - held..=now_m)
                .map(scale_at)
                .fold(f64::NAN, f64::max);
            c.margins.margin = scaled.margin(scale, cfg.max_margin);
        }
        // Kept: what this boundary's calibration reads (again, after `invalidate`), and what a
        // decision now needs. Recomputed: what a decision needs until the next boundary.
        let keep_from = match cfg.record {
            Record::Kept => oldest_needed,
            Record::Recomputed => boundary - held,
        }
        .min(now_m);
        let drop = usize::try_from(keep_from - self.first)
            .unwrap_or(0)
            .min(self.records.len());
        if drop > 0 {
            if cfg.record == Record::Recomputed
                && self.records.capacity() > (interval + 1 + held) as usize
            {
                // The week's room goes back once it is calibrated: what stays is an interval's,
                // in a deque of its own. Shrunk in place, the small record would stay at the
                // head of the week's room and split it: the rest, freed, is too small for the
                // next scaler's week and gets filled by small long-lived allocations, so every
                // first calibration took new memory (glibc's arenas do not move a chunk).
                let mut kept = VecDeque::with_capacity((interval + 1 + held) as usize);
                kept.extend(self.records.range(drop..).copied());
                self.records = kept;
            } else {
                self.records.drain(..drop);
            }
            self.first += drop as i64;
        }
    }

    /// The last boundary at or before `now_m` (an epoch minute): the multiples of the interval,
    /// moved by the scaler's offset.
    fn boundary(cfg: &ModelConfig, now_m: i64) -> i64 {
        let interval = cfg.recalibrate_interval.num_minutes().max(1);
        let offset = cfg.recalibrate_offset.num_minutes().rem_euclid(interval);
        now_m - (now_m - offset).rem_euclid(interval)
    }
}

/// For each index `k`, the highest (`MAX`) or lowest of the finite values of `xs` in
/// `[k - back, k + ahead]` (NaN when there are none), with a monotonic deque: O(n).
fn sliding<const MAX: bool>(xs: &[f64], back: usize, ahead: usize) -> Vec<f64> {
    let better = |a: f64, b: f64| if MAX { a > b } else { a < b };
    let mut out = vec![f64::NAN; xs.len()];
    let mut window: VecDeque<usize> = VecDeque::new();
    let mut next = 0;
    for (k, slot) in out.iter_mut().enumerate() {
        // Admit everything up to k + ahead.
        while next < xs.len() && next <= k + ahead {
            let v = xs[next];
            if v.is_finite() {
                while window.back().is_some_and(|&i| !better(xs[i], v)) {
                    window.pop_back();
                }
                window.push_back(next);
            }
            next += 1;
        }
        while window.front().is_some_and(|&i| i + back < k) {
            window.pop_front();
        }
        if let Some(&i) = window.front() {
            *slot = xs[i];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn sliding_extremes_over_a_window() {
        let xs = [3.0, 1.0, f64::NAN, 4.0, 1.0, 5.0];
        assert_eq!(
            sliding::<true>(&xs, 1, 0)[..],
            [3.0, 3.0, 1.0, 4.0, 4.0, 5.0]
        );
        let mins = sliding::<false>(&xs, 2, 0);
        assert_eq!(mins[..], [3.0, 1.0, 1.0, 1.0, 1.0, 1.0]);
        let ahead = sliding::<true>(&xs, 0, 2);
        assert_eq!(ahead[..], [3.0, 4.0, 4.0, 5.0, 5.0, 5.0]);
        assert!(sliding::<true>(&[f64::NAN], 3, 3)[0].is_nan());
    }

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 5, 0, 0, 0).unwrap()
    }

    fn objective(max_underprovisioned: f64) -> Objective {
        Objective {
            max_underprovisioned,
            target_per_replica: 10.0,
            min_replicas: 1,
            max_replicas: 1000,
            lead: Duration::minutes(6),
            stabilization: Duration::minutes(5),
        }
    }

    /// A daily wave with deterministic noise.
    fn wave(days: i64, noise: f64) -> History {
        History::new(
            t0(),
            Duration::minutes(1),
            (0..days * 1440)
                .map(|m| {
                    let day = (m % 1440) as f64 / 1440.0;
                    let shape = 300.0 + 200.0 * (std::f64::consts::TAU * day).sin();
                    shape * (1.0 + noise * ((m * 7919 % 101) as f64 / 50.0 - 1.0))
                })
                .collect(),
        )
    }

    fn calibrate(h: &History, objective: &Objective) -> Calibration {
        let cfg = ModelConfig::default();
        let mut c = Calibrator::new(vec![Predictor::Daily, Predictor::Weekly]);
        let now = h.time(h.len() - 1);
        c.advance(
            &cfg,
            h,
            |t| h.view_at(t),
            now,
            objective,
            &Adjustments::default(),
        );
        *c.calibration().expect("a week of record")
    }

    #[test]
    fn a_stricter_objective_or_noisier_load_takes_more_margin() {
        let loose = calibrate(&wave(10, 0.05), &objective(0.05));
        let strict = calibrate(&wave(10, 0.05), &objective(0.001));
        let noisy = calibrate(&wave(10, 0.3), &objective(0.001));
        let total = |c: &Calibration| c.margins.margin + c.margins.extra * 10.0 / 300.0;
        assert!(total(&strict) > total(&loose), "{strict:?} vs {loose:?}");
        assert!(total(&noisy) > total(&strict), "{noisy:?} vs {strict:?}");
        // The replayed week meets the objective it was fitted for.
        assert!(strict.underprovisioned_week_percent <= 0.1, "{strict:?}");
        assert!(loose.underprovisioned_week_percent <= 5.0, "{loose:?}");
    }

    #[test]
    fn a_level_shift_is_read_against_the_same_day_a_week_before() {
        let o = objective(0.001);
        let shifted = |days: i64, from_day: i64, by: f64| {
            let mut v = wave(days, 0.05).values().to_vec();
            for x in &mut v[(from_day * 1440) as usize..] {
                *x *= by;
            }
            History::new(t0(), Duration::minutes(1), v)
        };
        let change = |h: &History| calibrate(h, &o).level_change;
        let steady = change(&shifted(10, 0, 1.0)).expect("a day a week before");
        assert!((steady - 1.0).abs() < 0.02, "{steady}");
        // Three days after a ×3 shift, and after a fall to a third.
        let up = change(&shifted(10, 7, 3.0)).unwrap();
        assert!((up - 3.0).abs() < 0.05, "{up}");
        let down = change(&shifted(10, 7, 0.3)).unwrap();
        assert!((down - 0.3).abs() < 0.01, "{down}");
        // A week after it, the same day before was shifted too.
        let later = change(&shifted(16, 7, 3.0)).unwrap();
        assert!((later - 1.0).abs() < 0.02, "{later}");
        // Without a mostly observed day a week before, nothing is said.
        let mut v = wave(10, 0.05).values().to_vec();
        for x in &mut v[2 * 1440..3 * 1440 - 600] {
            *x = f64::NAN;
        }
        let gap = History::new(t0(), Duration::minutes(1), v);
        assert_eq!(change(&gap), None);
    }

    #[test]
    fn the_sustained_live_load_is_a_median_that_two_samples_confirm() {
        let cfg = ModelConfig::default();
        let read = |values: &[f64]| {
            let h = History::new(t0(), Duration::minutes(1), values.to_vec());
            live_reading(&cfg, h.view(values.len() - 1), h.time(values.len() - 1))
        };
        // One odd minute neither raises nor lowers it; the newest sample is the live load.
        let r = read(&[100.0, 100.0, 100.0, 300.0]);
        assert_eq!((r.load, r.sustained), (Some(300.0), Some(100.0)));
        let r = read(&[100.0, 100.0, 300.0, 300.0]);
        assert_eq!(r.sustained, Some(300.0));
        // A metric back from believed zeros is followed from its second sample: the first
        // alone is no sustained load, two are (the lower of them).
        let mut values = vec![100.0; 5];
        values.extend([0.0; 20]);
        values.push(250.0);
        let r = read(&values);
        assert_eq!((r.load, r.sustained), (Some(250.0), None));
        values.push(260.0);
        assert_eq!(read(&values).sustained, Some(250.0));
        // So one bogus sample after believed zeros is no sustained load, nor does it raise the
        // one the next real sample confirms.
        let mut values = vec![0.0; 20];
        values.push(1e6);
        assert_eq!(read(&values).sustained, None);
        values.push(150.0);
        assert_eq!(read(&values).sustained, Some(150.0));
        // Nor after a gap of the whole window.
        let mut values = vec![100.0; 5];
        values.extend([f64::NAN; 5]);
        values.push(1e6);
        assert_eq!(read(&values).sustained, None);
        // A sudden drop that has not persisted reads as the load before it.
        let r = read(&[100.0, 100.0, 100.0, 0.0, 0.0]);
        assert_eq!((r.load, r.sustained), (Some(100.0), Some(100.0)));
        // … the level before it, not one bogus sample just before it.
        let r = read(&[100.0, 100.0, 100.0, 1e6, 0.0, 0.0]);
        assert_eq!((r.load, r.sustained), (Some(100.0), Some(100.0)));
        // A series gone quiet after its newest sample: that sample is the live load only as
        // far as the sustained load confirms it.
        let r = read(&[100.0, 100.0, 100.0, 1e6, f64::NAN]);
        assert_eq!((r.load, r.sustained), (Some(100.0), Some(100.0)));
        let r = read(&[0.0, 0.0, 0.0, 1e6, f64::NAN]);
        assert_eq!(r, LiveReading::default());
        let h = History::new(t0(), Duration::minutes(1), vec![100.0, 100.0, 1e6]);
        let quiet = live_reading(&cfg, h.view(2), h.time(2) + Duration::minutes(1));
        assert_eq!((quiet.load, quiet.sustained), (Some(100.0), Some(100.0)));
        // Nothing recent: nothing read.
        let h = History::new(t0(), Duration::minutes(1), vec![100.0; 3]);
        let stale = live_reading(&cfg, h.view(2), h.time(2) + Duration::minutes(6));
        assert_eq!(stale, LiveReading::default());
    }

    #[test]
    fn the_replay_counts_on_the_live_floor() {
        // A daily wave, and on the last three days a two-hour surge to 1.6 times the load that
        // no forecast foresees. On the daily forecast alone, the live floor catches each surge
        // after a median's minute and a start-up time; the replay knows it, so the margin is
        // not raised to cover six hours of surges (which would take a margin of about 60 %).
        let mut h = wave(10, 0.05).values().to_vec();
        for day in 7..10 {
            for v in &mut h[day * 1440 + 600..day * 1440 + 720] {
                *v *= 1.6;
            }
        }
        let h = History::new(t0(), Duration::minutes(1), h);
        let cfg = ModelConfig {
            bases: &[Basis::Daily],
            ..ModelConfig::default()
        };
        let mut c = Calibrator::new(vec![Predictor::Daily, Predictor::Weekly]);
        let o = objective(0.01);
        c.advance(
            &cfg,
            &h,
            |t| h.view_at(t),
            h.time(h.len() - 1),
            &o,
            &Adjustments::default(),
        );
        let cal = c.calibration().expect("a week of record");
        assert_eq!(cal.margins.basis, Basis::Daily);
        assert!(cal.margins.margin < 0.3, "{cal:?}");
        // The surges' first minutes, before the floor's replicas are ready, are what is short.
        assert!(cal.underprovisioned_week_percent < 1.0, "{cal:?}");
    }

    #[test]
    fn a_burst_of_several_times_a_small_fleet_is_not_paid_for_all_week() {
        // A fleet of one pod (the load at most half of one), and on the last day two bursts
        // of ten minutes to three pods' worth: more than twice any basis and another pod,
        // more minutes than the objective allows short. Counted as preventable, they would
        // hold two more pods for the week after; they are a burst, as a flash crowd is.
        let mut h: Vec<f64> = wave(10, 0.05).values().iter().map(|v| v / 100.0).collect();
        for from in [9 * 1440 + 120, 9 * 1440 + 600] {
            for v in &mut h[from..from + 10] {
                *v = 25.0;
            }
        }
        let h = History::new(t0(), Duration::minutes(1), h);
        let o = objective(0.001);
        let calibrate_with = |cfg: &ModelConfig| {
            let mut c = Calibrator::new(vec![Predictor::Daily, Predictor::Weekly]);
            let now = h.time(h.len() - 1);
            c.advance(cfg, &h, |t| h.view_at(t), now, &o, &Adjustments::default());
            *c.calibration().expect("a week of record")
        };
        let judged = calibrate_with(&ModelConfig::default());
        assert!(judged.margins.extra < 1.0, "{judged:?}");
        assert!(judged.unpreventable_percent > 0.1, "{judged:?}");
        // Judged with two more pods, the bursts were preventable, and paid for.
        let paid = calibrate_with(&ModelConfig {
            burst_extra_replicas: 2.0,
            ..ModelConfig::default()
        });
        assert!(paid.margins.extra >= 2.0, "{paid:?}");
        assert_eq!(paid.unpreventable_percent, 0.0, "{paid:?}");
    }

    #[test]
    fn kept_up_minute_by_minute_or_rebuilt_at_once_it_is_the_same() {
        let cfg = ModelConfig::default();
        let h = wave(10, 0.1);
        let o = objective(0.01);
        let predictors = vec![Predictor::Daily, Predictor::Weekly];
        let mut steady = Calibrator::new(predictors.clone());
        let end = h.time(h.len() - 1);
        let mut t = t0() + Duration::days(8);
        while t <= end {
            steady.advance(&cfg, &h, |t| h.view_at(t), t, &o, &Adjustments::default());
            if t.timestamp() % (3 * 3600) == 5400 {
                // An objective changed mid-interval: recalibrated from the record kept.
                steady.invalidate();
                steady.advance(&cfg, &h, |t| h.view_at(t), t, &o, &Adjustments::default());
            }
            if t.timestamp() % (3 * 3600) == 0 || t.timestamp() % (3 * 3600) == 5400 || t == end {
                // A restarted operator rebuilds its record from history alone.
                let mut rebuilt = Calibrator::new(predictors.clone());
                rebuilt.advance(&cfg, &h, |t| h.view_at(t), t, &o, &Adjustments::default());
                assert_eq!(rebuilt.calibration(), steady.calibration(), "at {t}");
                assert_eq!(
                    format!("{:?}", rebuilt.forecasts_at(t)),
                    format!("{:?}", steady.forecasts_at(t)),
                    "at {t}"
                );
            }
            t += Duration::minutes(1);
        }
        assert!(steady.calibration().is_some());
        // Bounded memory: a week, a lead time, a stabilization window and an interval, and no
        // room kept beyond it, whether kept up or rebuilt at once.
        let longest = 7 * 1440 + 6 + 5 + 180 + 1;
        assert!(steady.records.len() <= longest, "{}", steady.records.len());
        let mut rebuilt = Calibrator::new(predictors);
        rebuilt.advance(&cfg, &h, |t| h.view_at(t), end, &o, &Adjustments::default());
        for c in [&steady, &rebuilt] {
            assert!(c.records.capacity() <= longest, "{}", c.records.capacity());
        }
    }

    #[test]
    fn a_record_recomputed_at_each_boundary_calibrates_as_one_kept() {
        // Boundaries 47 minutes after the grid's, as the operator spreads its scalers.
        let kept_cfg = ModelConfig {
            recalibrate_offset: Duration::minutes(47),
            ..ModelConfig::default()
        };
        let lean_cfg = ModelConfig {
            record: Record::Recomputed,
            ..kept_cfg.clone()
        };
        let h = wave(10, 0.1);
        let o = objective(0.01);
        let adjust = Adjustments::default();
        let predictors = vec![Predictor::Daily, Predictor::Weekly];
        let mut kept = Calibrator::new(predictors.clone());
        let mut lean = Calibrator::new(predictors);
        let end = h.time(h.len() - 1);
        let mut t = t0() + Duration::days(8) + Duration::minutes(13);
        let mut boundaries = Vec::new();
        while t <= end {
            // A pause of two hours across a boundary, as an operator that lost its Lease.
            let paused = t >= t0() + Duration::days(9) + Duration::minutes(120)
                && t < t0() + Duration::days(9) + Duration::minutes(240);
            if !paused {
                kept.advance(&kept_cfg, &h, |t| h.view_at(t), t, &o, &adjust);
                lean.advance(&lean_cfg, &h, |t| h.view_at(t), t, &o, &adjust);
            }
            if t.timestamp() % (3 * 3600) == 7020 {
                // An objective changed mid-interval.
                kept.invalidate();
                lean.invalidate();
                kept.advance(&kept_cfg, &h, |t| h.view_at(t), t, &o, &adjust);
                lean.advance(&lean_cfg, &h, |t| h.view_at(t), t, &o, &adjust);
            }
            if !paused {
                assert_eq!(lean.calibration(), kept.calibration(), "at {t}");
                assert_eq!(
                    format!("{:?}", lean.forecasts_at(t)),
                    format!("{:?}", kept.forecasts_at(t)),
                    "at {t}"
                );
                // Between boundaries the lean record holds an interval at most and the
                // stabilization window before it (the scaled margin's), and no room for more.
                assert!(
                    lean.records.capacity() <= 186,
                    "{} at {t}",
                    lean.records.capacity()
                );
            }
            if let Some(b) = lean.calibrated_at
                && boundaries.last() != Some(&b)
            {
                boundaries.push(b);
            }
            t += Duration::minutes(1);
        }
        assert!(kept.calibration().is_some());
        assert!(boundaries.len() >= 10, "{boundaries:?}");
        // Every boundary is 47 minutes past the grid of three hours.
        assert!(
            boundaries.iter().all(|b| b.rem_euclid(180) == 47),
            "{boundaries:?}"
        );
    }
}
