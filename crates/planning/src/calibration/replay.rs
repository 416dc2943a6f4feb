//! One recalibration, in the phases the module's doc names: read what each minute of the
//! window saw (`Minutes::read`), the live floor every decision keeps (`live_floor`), which
//! minutes are scored (`scored_minutes`), each basis replayed against the load that came
//! (`replay`), the minutes no basis could have covered (`unavoidable_minutes`), the cheapest
//! margins that meet the objective (`cheapest`), and the figures behind the choice for the status
//! (`figures`).

use chrono::Duration;

use super::{
    BASES, Basis, Calibration, Calibrator, MAX_LOAD_AGE, Margins, Objective, live_reading_after,
    minute_time, sliding,
};
use crate::forecast::{self, Adjustments, History, ModelConfig};

/// The minutes a calibration at a boundary reads, and the times that shape its replay, in minutes.
struct Window {
    /// The calibration's boundary (epoch minute): the window's last minute.
    boundary: i64,
    /// The first minute of the span read (epoch minute), and how many minutes it has.
    span_lo: i64,
    span: usize,
    /// The first scored minute: the span's first minutes only feed the replay of later ones.
    scored_lo: i64,
    /// The forecast window.
    lead: i64,
    /// The start-up time replayed: the lead time less the metric's delay.
    delay: i64,
    /// The scale-down stabilization window.
    stabilization: usize,
    /// How late the metric shows a minute's load: what was ready then was asked for `lag`
    /// before the minute it shows.
    lag: usize,
}

impl Window {
    fn new(cfg: &ModelConfig, objective: &Objective, boundary: i64) -> Self {
        let lead = objective.lead.num_minutes().max(1);
        let delay = (objective.lead - cfg.metric_delay)
            .num_minutes()
            .clamp(0, lead);
        let span_lo = boundary - Calibrator::reach(cfg, objective);
        Self {
            boundary,
            span_lo,
            span: (boundary - span_lo + 1) as usize,
            scored_lo: boundary - cfg.calibration_window.num_minutes() + 1,
            lead,
            delay,
            stabilization: objective.stabilization.num_minutes().max(0) as usize,
            lag: (lead - delay) as usize,
        }
    }

    /// The epoch minute of the span's `k`-th minute.
    fn minute(&self, k: usize) -> i64 {
        self.span_lo + k as i64
    }
}

/// What each minute of the span saw: the live load and the sustained live load (as
/// `Planner::decide` reads them), the forecasts recorded, and the sample itself.
struct Minutes {
    live: Vec<f64>,
    sustained: Vec<f64>,
    sample: Vec<f64>,
    daily: Vec<f64>,
    weekly: Vec<f64>,
    /// The spread of the daily and the weekly forecasts' past periods (NaN where none, and
    /// without `ModelConfig::period_spread`).
    daily_spread: Vec<f64>,
    weekly_spread: Vec<f64>,
}

impl Minutes {
    /// Read by index, not through `view_at`: this runs over a week of minutes at every boundary.
    /// (The spec's history, which `view_at` also applies, is an hour at least: it never hides
    /// the few minutes the live load reads.)
    fn read(
        calibrator: &Calibrator,
        cfg: &ModelConfig,
        history: &History,
        w: &Window,
    ) -> Option<Self> {
        let view = history.view_at(minute_time(w.boundary))?;
        let nan = || vec![f64::NAN; w.span];
        let mut m = Minutes {
            live: nan(),
            sustained: nan(),
            sample: nan(),
            daily: nan(),
            weekly: nan(),
            daily_spread: nan(),
            weekly_spread: nan(),
        };
        let values = history.values();
        let offset = (minute_time(w.span_lo) - history.start()).num_seconds();
        let step = history.step().num_seconds();
        for k in 0..w.span {
            if let Some(r) = usize::try_from(w.minute(k) - calibrator.first)
                .ok()
                .and_then(|i| calibrator.records.get(i))
            {
                (m.daily[k], m.weekly[k]) = (f64::from(r[0]), f64::from(r[1]));
                (m.daily_spread[k], m.weekly_spread[k]) = (f64::from(r[2]), f64::from(r[3]));
            }
            let d = offset + 60 * k as i64;
            if d < 0 {
                continue;
            }
            // The sample at or before minute k (on it, for a history aligned to the minute).
            let i = (d / step) as usize;
            if d % step == 0 && i <= view.end() {
                m.sample[k] = values[i];
            }
            let end = i.min(view.end());
            let age = Duration::seconds(d - end as i64 * step);
            let reading = live_reading_after(cfg, history.view(end), age);
            m.live[k] = reading.load.unwrap_or(f64::NAN);
            m.sustained[k] = reading.sustained.unwrap_or(f64::NAN);
        }
        // A sudden drop to zero that did not persist is a missing sample to the decisions, and
        // to the score: what the load really was then is not known.
        let persist = cfg.zero_persistence.num_minutes().max(0) as usize;
        // In minutes, as `sample` is; never closer than the history's own samples.
        let apart = (MAX_LOAD_AGE.num_seconds().max(step) / 60) as usize;
        for (a, b, _, _) in forecast::zero_blips(&m.sample, persist, cfg.sustained_samples, apart) {
            for v in &mut m.sample[a..=b] {
                *v = f64::NAN;
            }
        }
        Some(m)
    }
}

/// The replicas `load` needs, within the spec's bounds.
fn needed(objective: &Objective, load: f64) -> u32 {
    crate::replicas_for(load, objective.target_per_replica)
        .clamp(objective.min_replicas, objective.max_replicas)
}

/// The live floor every decision keeps (`plan::decide`), per minute: what the sustained live
/// load needs, held over the stabilization window like any recommendation (0 where nothing
/// was sustained). A minute is short only if some minute of its start-up time asked for less
/// than it needed on both the basis with its margins and this floor.
struct LiveFloor {
    floor: Vec<f64>,
    /// The least and the highest floor over each start-up time: most minutes are covered by the
    /// floor throughout it, or by none of it, and need no look at each minute.
    least: Vec<f64>,
    most: Vec<f64>,
}

fn live_floor(minutes: &Minutes, objective: &Objective, w: &Window) -> LiveFloor {
    let floor: Vec<f64> = minutes
        .sustained
        .iter()
        .map(|&s| {
            if s.is_finite() {
                f64::from(needed(objective, s))
            } else {
                f64::NAN
            }
        })
        .collect();
    let floor: Vec<f64> = sliding::<true>(&floor, w.stabilization, 0)
        .into_iter()
        .map(|f| if f.is_finite() { f } else { 0.0 })
        .collect();
    LiveFloor {
        least: sliding::<false>(&floor, w.delay as usize, 0),
        most: sliding::<true>(&floor, w.delay as usize, 0),
        floor,
    }
}

/// The span's minutes the objective is judged on: within the calibration window, with a sample,
/// and not on the calendar's unusual days (holidays and events do not set the margins of
/// ordinary ones).
fn scored_minutes(minutes: &Minutes, w: &Window, adjust: &Adjustments) -> Vec<usize> {
    (0..w.span)
        .filter(|&k| w.minute(k) >= w.scored_lo && minutes.sample[k].is_finite())
        .filter(|&k| !adjust.is_unusual(minute_time(w.minute(k))))
        .collect()
}

/// One basis replayed: what each scored minute needed, and what it held.
struct Replayed {
    basis: Basis,
    /// The relative margin each scored minute needed (-inf: it cannot be short).
    requirement: Vec<f64>,
    /// `c / ready` at each scored minute: how much margin one more replica is.
    per_ready: Vec<f64>,
    /// The basis held over the stabilization window, in replicas, summed over the scored
    /// minutes that had one, and how many they are; the live floor summed over those that had
    /// none.
    held: f64,
    kept: usize,
    floor_alone: f64,
    /// The scored minutes whose live floor was above the basis held plus half a replica, as
    /// (basis, floor): the only ones where some margin leaves the floor the higher.
    floor_above: Vec<(f64, f64)>,
    /// With a scaled margin (`ModelConfig::period_spread`, a forecast basis): the week's median
    /// spread (β), each scored minute's scale (the least over the decisions that readied it),
    /// the basis held and its scale at each scored minute that had one, and the scale of each
    /// `floor_above` minute.
    scaled: Option<ScaledReplay>,
}

struct ScaledReplay {
    beta: f64,
    scale: Vec<f64>,
    held: Vec<(f64, f64)>,
    floor_above: Vec<f64>,
}

/// A margin scaled minute by minute (`ModelConfig::period_spread`): `q · scale`, where a
/// minute's scale is the spread of the past periods its basis' forecast reads
/// (`basis_spread`) plus the week's median spread `β` (a minute without one counts as
/// typical: `2β`). Locally weighted conformal (Lei et al. 2018): `q` is the quantile of the
/// week's needs divided by their scale, so the same share of the week's minutes is short as
/// with one margin, but the margin stands where the periods disagree.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Scaled {
    q: f64,
    beta: f64,
}

impl Scaled {
    /// The scale of a minute whose basis' spread is `spread`.
    pub(super) fn scale(&self, spread: f64) -> f64 {
        if spread.is_finite() {
            spread + self.beta
        } else {
            2.0 * self.beta
        }
    }

    /// The relative margin at a minute of scale `scale`.
    pub(super) fn margin(&self, scale: f64, max_margin: f64) -> f64 {
        (self.q * scale * (1.0 + 1e-12) + 1e-9).clamp(0.0, max_margin)
    }
}

/// The spread of the past periods that `basis`' forecast reads, from a minute's record (daily
/// and weekly forecast, daily and weekly spread): the daily one's for the daily bases, the
/// weekly one's for the weekly, and for the higher of the two that of the higher. NaN for the
/// live load, which no past period forecasts.
pub(super) fn basis_spread(basis: Basis, record: [f64; 4]) -> f64 {
    let [daily, weekly, sd, sw] = record;
    match basis {
        Basis::LiveLoad => f64::NAN,
        Basis::Daily | Basis::DailyOrLiveLoad => sd,
        Basis::Weekly => sw,
        Basis::DailyOrWeekly => {
            if weekly.is_finite() && (daily.is_nan() || daily < weekly) {
                sw
            } else {
                sd
            }
        }
    }
}

impl Replayed {
    /// The margin scored minute `i` needed with `extra` whole replicas.
    fn need(&self, i: usize, extra: f64) -> f64 {
        let m = self.requirement[i];
        if m.is_finite() {
            m - extra * self.per_ready[i]
        } else {
            m
        }
    }
}

/// `basis` replayed over the scored minutes; `None` for a basis that saw less than half of them
/// (a forecast without enough history yet), which is not judged on the rest.
fn replay(
    period_spread: bool,
    basis: Basis,
    minutes: &Minutes,
    floor: &LiveFloor,
    scored: &[usize],
    objective: &Objective,
    w: &Window,
) -> Option<Replayed> {
    let c = objective.target_per_replica;
    let base: Vec<f64> = (0..w.span)
        .map(|k| basis.load(minutes.live[k], minutes.daily[k], minutes.weekly[k]))
        .collect();
    if scored.iter().filter(|&&k| base[k].is_finite()).count() < scored.len() / 2 {
        return None;
    }
    let stab = sliding::<true>(&base, w.stabilization, 0);
    let stab_least = sliding::<false>(&stab, w.delay as usize, 0);
    let mut r = Replayed {
        basis,
        requirement: Vec::with_capacity(scored.len()),
        per_ready: Vec::with_capacity(scored.len()),
        held: 0.0,
        kept: 0,
        floor_alone: 0.0,
        floor_above: Vec::new(),
        scaled: None,
    };
    // The scale of each minute of the span, when the margin is scaled and the week has a
    // typical spread above zero.
    let scales = (period_spread && basis.forecasts())
        .then(|| {
            let spread: Vec<f64> = (0..w.span)
                .map(|k| {
                    let record = [
                        minutes.daily[k],
                        minutes.weekly[k],
                        minutes.daily_spread[k],
                        minutes.weekly_spread[k],
                    ];
                    basis_spread(basis, record)
                })
                .collect();
            let mut typical: Vec<f64> = scored
                .iter()
                .map(|&k| spread[k])
                .filter(|s| s.is_finite())
                .collect();
            let beta = forecast::median(&mut typical).filter(|b| *b > 0.0)?;
            let scaled = Scaled { q: 0.0, beta };
            let mut scale: Vec<f64> = spread.iter().map(|&s| scaled.scale(s)).collect();
            scale = sliding::<true>(&scale, w.stabilization, 0);
            let least = sliding::<false>(&scale, w.delay as usize, 0);
            Some((beta, scale, least))
        })
        .flatten();
    let mut scaled = scales.as_ref().map(|(beta, _, _)| ScaledReplay {
        beta: *beta,
        scale: Vec::with_capacity(scored.len()),
        held: Vec::with_capacity(scored.len()),
        floor_above: Vec::new(),
    });
    for &k in scored {
        if let (Some(sr), Some((_, scale, least))) = (&mut scaled, &scales) {
            sr.scale
                .push(k.checked_sub(w.lag).map_or(scale[k], |last| least[last]));
            let b = stab[k] / c;
            if b.is_finite() {
                sr.held.push((b, scale[k]));
                if floor.floor[k] > b + 0.5 {
                    sr.floor_above.push(scale[k]);
                }
            }
        }
        let n = needed(objective, minutes.sample[k]);
        // The load shown at minute k happened `lag` before; what was ready then was asked for
        // over the start-up time before that. The least basis among the minutes whose live
        // floor fell short of the need sets the margin.
        let (mut short, mut least) = (false, f64::NAN);
        if let Some(last) = k.checked_sub(w.lag) {
            let n = f64::from(n);
            if floor.least[last] >= n {
                // Covered by the floor throughout.
            } else if floor.most[last] < n {
                (short, least) = (true, stab_least[last]);
            } else {
                let first = last.saturating_sub(w.delay as usize);
                for (&f, &held) in floor.floor[first..=last].iter().zip(&stab[first..=last]) {
                    if f >= n {
                        continue;
                    }
                    short = true;
                    if held.is_finite() && (least.is_nan() || held < least) {
                        least = held;
                    }
                }
            }
        } else {
            short = true;
        }
        let usable = least.is_finite() && least > 0.0;
        r.requirement
            .push(if n <= objective.min_replicas || !short {
                f64::NEG_INFINITY
            } else if usable {
                c * (n - 1) as f64 / least - 1.0
            } else {
                f64::INFINITY
            });
        r.per_ready.push(if usable { c / least } else { 0.0 });
        let b = stab[k] / c;
        if b.is_finite() {
            r.held += b;
            r.kept += 1;
            if floor.floor[k] > b + 0.5 {
                r.floor_above.push((b, floor.floor[k]));
            }
        } else {
            r.floor_alone += floor.floor[k];
        }
    }
    r.scaled = scaled;
    Some(r)
}

/// Minutes beyond `max_margin` are short whatever the margin. Those that no basis could have
/// covered (a flash crowd, an outage's end) do not count against the objective; those another
/// basis would have covered do: a sharp recurring spike that only the forecast sees is not
/// "unpreventable" for the live load. A minute is judged with at most
/// `ModelConfig::burst_extra_replicas` whole replicas beside the margin (fewer than the
/// calibration may choose): more would call preventable a burst of several times a small
/// fleet's load, and the week's margin would then pay whole replicas for it all week.
fn unavoidable_minutes(cfg: &ModelConfig, replayed: &[Replayed], scored: usize) -> Vec<bool> {
    let most_extra = cfg
        .extra_replicas
        .iter()
        .copied()
        .fold(0.0, f64::max)
        .min(cfg.burst_extra_replicas);
    (0..scored)
        .map(|i| {
            replayed
                .iter()
                .all(|r| r.need(i, most_extra) > cfg.max_margin)
        })
        .collect()
}

/// The margins of least replayed cost among those that leave at most `allowed` minutes short
/// (not counting the unavoidable ones), and the replay they were found on. A basis that misses
/// more than allowed even at the largest margin is ranked after every one that meets the
/// objective, by how many it misses.
fn cheapest<'r>(
    cfg: &ModelConfig,
    replayed: &'r [Replayed],
    unavoidable: &[bool],
    allowed: usize,
) -> Option<(&'r Replayed, Margins, Option<Scaled>)> {
    let mut best: Option<(&Replayed, Margins, Option<Scaled>, usize, f64)> = None;
    let mut xs = Vec::with_capacity(unavoidable.len());
    // A basis with a scale is tried with one margin for the week and with the scaled one.
    for r in replayed {
        for (&extra, scale) in cfg
            .extra_replicas
            .iter()
            .flat_map(|e| [(e, false), (e, true)])
        {
            if scale && r.scaled.is_none() {
                continue;
            }
            let sr = r.scaled.as_ref().filter(|_| scale);
            xs.clear();
            let mut short = 0;
            let mut largest = 0.0f64;
            for i in (0..r.requirement.len()).filter(|&i| !unavoidable[i]) {
                let x = r.need(i, extra);
                if x > cfg.max_margin {
                    short += 1;
                } else if x > f64::NEG_INFINITY {
                    largest = largest.max(x);
                    xs.push(match sr {
                        Some(s) => x / s.scale[i],
                        None => x,
                    });
                }
            }
            let (margin, over, scaled) = match allowed.checked_sub(short) {
                Some(left) if xs.len() > left => {
                    let i = xs.len() - 1 - left;
                    let (_, v, _) = xs.select_nth_unstable_by(i, f64::total_cmp);
                    match sr {
                        Some(s) => {
                            let scaled = Scaled {
                                q: *v,
                                beta: s.beta,
                            };
                            let typical = scaled.margin(2.0 * s.beta, cfg.max_margin);
                            (typical, 0, Some(scaled))
                        }
                        None => ((*v + 1e-9).clamp(0.0, cfg.max_margin), 0, None),
                    }
                }
                Some(_) => (0.0, 0, None),
                None => ((largest + 1e-9).min(cfg.max_margin), short - allowed, None),
            };
            let cost = match (&scaled, sr) {
                (Some(scaled), Some(sr)) => replayed_cost_scaled(r, sr, scaled, cfg, extra),
                _ => replayed_cost(r, margin, extra),
            };
            if best
                .as_ref()
                .is_none_or(|(_, _, _, b_over, b)| (over, cost) < (*b_over, *b))
            {
                let margins = Margins {
                    basis: r.basis,
                    margin,
                    extra,
                };
                best = Some((r, margins, scaled, over, cost));
            }
        }
    }
    best.map(|(r, margins, scaled, _, _)| (r, margins, scaled))
}

/// `replayed_cost` with a margin scaled minute by minute.
fn replayed_cost_scaled(
    r: &Replayed,
    sr: &ScaledReplay,
    scaled: &Scaled,
    cfg: &ModelConfig,
    extra: f64,
) -> f64 {
    let margin = |s: f64| scaled.margin(s, cfg.max_margin);
    sr.held
        .iter()
        .map(|&(b, s)| (1.0 + margin(s)) * b)
        .sum::<f64>()
        + (0.5 + extra) * r.kept as f64
        + r.floor_alone
        + r.floor_above
            .iter()
            .zip(&sr.floor_above)
            .map(|(&(b, f), &s)| (f - ((1.0 + margin(s)) * b + extra + 0.5)).max(0.0))
            .sum::<f64>()
}

/// A replay's cost in replica-minutes with these margins; a ceil adds half a replica on average.
/// The live floor is paid for where it is above the basis with its margins.
fn replayed_cost(r: &Replayed, margin: f64, extra: f64) -> f64 {
    let provision = |b: f64| (1.0 + margin) * b + extra + 0.5;
    (1.0 + margin) * r.held
        + (0.5 + extra) * r.kept as f64
        + r.floor_alone
        + r.floor_above
            .iter()
            .map(|&(b, f)| (f - provision(b)).max(0.0))
            .sum::<f64>()
}

/// The figures behind the choice, for the status.
#[allow(clippy::too_many_arguments)]
fn figures(
    cfg: &ModelConfig,
    chosen: &Replayed,
    margins: Margins,
    scaled: Option<&Scaled>,
    minutes: &Minutes,
    scored: &[usize],
    unavoidable: &[bool],
    objective: &Objective,
    w: &Window,
) -> Calibration {
    let boundary = w.boundary;
    let c = objective.target_per_replica;
    let day_lo = boundary - 1440 + 1;
    let percent = |n: usize, of: usize| 100.0 * n as f64 / of.max(1) as f64;
    let (mut short_week, mut short_day, mut day, mut above) = (0, 0, 0, 0);
    for (i, &k) in scored.iter().enumerate() {
        let x = chosen.need(i, margins.extra);
        let in_day = w.minute(k) >= day_lo;
        day += usize::from(in_day);
        let margin = match (scaled, &chosen.scaled) {
            (Some(scaled), Some(sr)) => scaled.margin(sr.scale[i], cfg.max_margin),
            _ => margins.margin,
        };
        if x > margin {
            short_week += 1;
            short_day += usize::from(in_day);
        }
        if (minutes.sample[k] / c).ceil() > objective.max_replicas as f64 {
            above += 1;
        }
    }
    let basis = margins.basis;
    let error_percent = basis.forecasts().then(|| {
        // The forecast against the peak that came in its window, over the last day.
        let peaks = sliding::<true>(&minutes.sample, 0, w.lead as usize);
        let (mut sum, mut n) = (0.0, 0);
        for (k, &peak) in peaks.iter().enumerate() {
            let m = w.minute(k);
            let f = basis.foresight(minutes.daily[k], minutes.weekly[k]);
            if m >= day_lo && m + w.lead <= boundary && f.is_finite() && peak > 0.0 {
                sum += ((peak - f).abs() / peak).min(10.0);
                n += 1;
            }
        }
        100.0 * sum / n.max(1) as f64
    });
    let unavoidable_count = unavoidable.iter().filter(|&&u| u).count();
    Calibration {
        margins,
        underprovisioned_day_percent: percent(short_day, day),
        underprovisioned_week_percent: percent(short_week, scored.len()),
        unpreventable_percent: percent(unavoidable_count, scored.len()),
        above_max_percent: percent(above, scored.len()),
        error_percent,
        scored_minutes: scored.len(),
        level_change: None,
    }
}

/// The mean load of the day that ends at the window's boundary against the mean of the same day
/// a week before (`Calibration::level_change`): a week apart, so that the weekly season is not
/// read as a change. `None` unless at least half of each day's minutes were observed.
fn level_change(history: &History, w: &Window) -> Option<f64> {
    let day = 1440;
    let mean = |last: i64| {
        let (mut sum, mut n) = (0.0, 0usize);
        for m in last - day + 1..=last {
            let Some(i) = history.index_at_or_before(minute_time(m)) else {
                continue;
            };
            let v = history.values().get(i).copied().unwrap_or(f64::NAN);
            if v.is_finite() && history.time(i) == minute_time(m) {
                sum += v;
                n += 1;
            }
        }
        (n as i64 * 2 >= day).then(|| sum / n as f64)
    };
    let (now, before) = (mean(w.boundary)?, mean(w.boundary - 7 * day)?);
    (before > 0.0).then(|| now / before)
}

impl Calibrator {
    /// Replays the window before `boundary` for every basis and keeps the cheapest margins that
    /// meet the objective.
    pub(super) fn recalibrate(
        &self,
        cfg: &ModelConfig,
        history: &History,
        boundary: i64,
        objective: &Objective,
        adjust: &Adjustments,
    ) -> Option<(Calibration, Option<Scaled>)> {
        let w = Window::new(cfg, objective, boundary);
        let minutes = Minutes::read(self, cfg, history, &w)?;
        let floor = live_floor(&minutes, objective, &w);
        let scored = scored_minutes(&minutes, &w, adjust);
        if (scored.len() as i64) < cfg.min_calibration.num_minutes() {
            return None;
        }
        let allowed = ((objective.max_underprovisioned / cfg.objective_safety)
            * scored.len() as f64)
            .floor() as usize;
        let mut replayed = Vec::with_capacity(BASES.len());
        for &basis in cfg.bases {
            replayed.extend(replay(
                cfg.period_spread,
                basis,
                &minutes,
                &floor,
                &scored,
                objective,
                &w,
            ));
        }
        let unavoidable = unavoidable_minutes(cfg, &replayed, scored.len());
        let (chosen, margins, scaled) = cheapest(cfg, &replayed, &unavoidable, allowed)?;
        let figures = figures(
            cfg,
            chosen,
            margins,
            scaled.as_ref(),
            &minutes,
            &scored,
            &unavoidable,
            objective,
            &w,
        );
        Some((
            Calibration {
                level_change: level_change(history, &w),
                ..figures
            },
            scaled,
        ))
    }
}
