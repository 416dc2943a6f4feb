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

/// The hours of the UTC day a margin by phase distinguishes (`ModelConfig::phase_spread`).
pub(super) const PHASES: usize = 24;

/// The phase (hour of the UTC day) of an epoch minute.
pub(super) fn phase_of(minute: i64) -> usize {
    (minute.rem_euclid(1440) / 60) as usize
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
    /// (basis, floor, phase): the only ones where some margin leaves the floor the higher.
    floor_above: Vec<(f64, f64, usize)>,
    /// Each scored minute's phase, and `held` by phase.
    phase: Vec<u8>,
    held_by_phase: [f64; PHASES],
    /// Each phase's error spread (the median absolute relative error of the basis held against
    /// the load that came, over the week's minutes of that hour), relative to the median over
    /// the phases: what a pooled margin is scaled by (`ModelConfig::phase_spread`). All 1 when
    /// the margin does not depend on the phase.
    spread: [f64; PHASES],
    /// Cross-fitted (`ModelConfig::phase_spread_cross_fitted`): each scored minute's spread,
    /// from the errors of the other days of the week only; empty otherwise.
    minute_spread: Vec<f64>,
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
    basis: Basis,
    minutes: &Minutes,
    floor: &LiveFloor,
    scored: &[usize],
    objective: &Objective,
    w: &Window,
    phase_spread: bool,
    cross_fitted: bool,
    phases: &[u8],
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
        phase: Vec::with_capacity(scored.len()),
        held_by_phase: [0.0; PHASES],
        spread: [1.0; PHASES],
        minute_spread: Vec::new(),
    };
    let day_of = |k: usize| w.minute(k).div_euclid(1440);
    let mut errors: Vec<Vec<(i64, f64)>> = vec![Vec::new(); if phase_spread { PHASES } else { 0 }];
    for &k in scored {
        let p = usize::from(phases[k]);
        r.phase.push(p as u8);
        if phase_spread
            && let Some(last) = k.checked_sub(w.lag)
            && stab_least[last].is_finite()
            && stab_least[last] > 0.0
        {
            errors[p].push((
                day_of(k),
                (minutes.sample[k] / stab_least[last] - 1.0).abs(),
            ));
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
            r.held_by_phase[p] += b;
            r.kept += 1;
            if floor.floor[k] > b + 0.5 {
                r.floor_above.push((b, floor.floor[k], p));
            }
        } else {
            r.floor_alone += floor.floor[k];
        }
    }
    if phase_spread {
        let medians = phase_medians(&errors, None);
        let typical = typical_median(&medians);
        r.spread = relative_spreads(&medians, typical);
        if cross_fitted {
            // Split conformal prediction needs the scale fitted apart from the scores it
            // normalizes (Lei et al. 2018 fit it on a separate split): a spread fitted on the
            // same minutes is widest where this week's errors fell, which shrinks their scores
            // and makes the quantile optimistic. Each day's minutes are normalized by the
            // spread of the other days (cross-fitting keeps the week's sample for the
            // quantile); the margins applied are the whole week's.
            let mut by_day: Vec<(i64, [f64; PHASES])> = Vec::new();
            for &k in scored {
                let d = day_of(k);
                let s = match by_day.iter().find(|(day, _)| *day == d) {
                    Some((_, s)) => s,
                    None => {
                        let s = relative_spreads(&phase_medians(&errors, Some(d)), typical);
                        by_day.push((d, s));
                        &by_day[by_day.len() - 1].1
                    }
                };
                r.minute_spread.push(s[usize::from(phases[k])]);
            }
        }
    }
    Some(r)
}

/// Each phase's median absolute relative error (NaN for a phase with fewer than an hour of
/// minutes), leaving out the minutes of day `without`.
fn phase_medians(errors: &[Vec<(i64, f64)>], without: Option<i64>) -> [f64; PHASES] {
    let mut medians = [f64::NAN; PHASES];
    let mut e = Vec::new();
    for (m, errors) in medians.iter_mut().zip(errors) {
        e.clear();
        e.extend(
            errors
                .iter()
                .filter(|(d, _)| Some(*d) != without)
                .map(|&(_, x)| x),
        );
        if e.len() >= 60 {
            let mid = e.len() / 2;
            let (_, v, _) = e.select_nth_unstable_by(mid, f64::total_cmp);
            *m = *v;
        }
    }
    medians
}

/// The median of the phases' medians: the typical phase's spread.
fn typical_median(medians: &[f64; PHASES]) -> f64 {
    let mut known: Vec<f64> = medians.iter().copied().filter(|m| m.is_finite()).collect();
    if known.is_empty() {
        return f64::NAN;
    }
    let mid = known.len() / 2;
    let (_, &mut typical, _) = known.select_nth_unstable_by(mid, f64::total_cmp);
    typical
}

/// Each phase's error spread relative to the typical phase's, from the absolute relative errors
/// of each phase: the median, divided by the median of the phases' medians, within
/// [1/4, 4] (an hour's median of a week's minutes is an estimate, and one near zero must not
/// take the margin away). A phase with fewer than an hour of minutes is typical.
fn relative_spreads(medians: &[f64; PHASES], typical: f64) -> [f64; PHASES] {
    let mut spread = [1.0; PHASES];
    if typical > 0.0 {
        for (s, &m) in spread.iter_mut().zip(medians) {
            if m.is_finite() {
                *s = (m / typical).clamp(0.25, 4.0);
            }
        }
    }
    spread
}

/// Minutes beyond `max_margin` are short whatever the margin. Those that no basis could have
/// covered (a flash crowd, an outage's end) do not count against the objective; those another
/// basis would have covered do: a sharp recurring spike that only the forecast sees is not
/// "unpreventable" for the live load. (The most whole replicas ask the least margin.)
fn unavoidable_minutes(cfg: &ModelConfig, replayed: &[Replayed], scored: usize) -> Vec<bool> {
    let most_extra = cfg.extra_replicas.iter().copied().fold(0.0, f64::max);
    (0..scored)
        .map(|i| {
            replayed
                .iter()
                .all(|r| r.need(i, most_extra) > cfg.max_margin)
        })
        .collect()
}

/// The relative margin of each phase: one margin for all of them, unless the margin depends on
/// the phase (`ModelConfig::phase_spread`).
type PhaseMargins = [f64; PHASES];

/// The margins of least replayed cost among those that leave at most `allowed` minutes short
/// (not counting the unavoidable ones), and the replay they were found on. A basis that misses
/// more than allowed even at the largest margin is ranked after every one that meets the
/// objective, by how many it misses. With `ModelConfig::phase_spread`, the quantile is taken of
/// each minute's need divided by its phase's spread, and each phase's margin is that quantile
/// times its spread (locally weighted conformal prediction, Lei et al. 2018): the same minutes
/// are allowed short over the week as a whole, but the margin is where the errors are.
fn cheapest<'r>(
    cfg: &ModelConfig,
    replayed: &'r [Replayed],
    unavoidable: &[bool],
    allowed: usize,
) -> Option<(&'r Replayed, Margins, Option<PhaseMargins>)> {
    let mut best: Option<(&Replayed, Margins, Option<PhaseMargins>, usize, f64)> = None;
    let mut xs = Vec::with_capacity(unavoidable.len());
    for r in replayed {
        for &extra in cfg.extra_replicas {
            xs.clear();
            let (mut short, mut largest) = (0, 0.0f64);
            for i in (0..r.requirement.len()).filter(|&i| !unavoidable[i]) {
                let x = r.need(i, extra);
                if x > cfg.max_margin {
                    short += 1;
                } else if x > f64::NEG_INFINITY {
                    largest = largest.max(x);
                    xs.push(if !r.minute_spread.is_empty() {
                        x / r.minute_spread[i]
                    } else if cfg.phase_spread {
                        x / r.spread[usize::from(r.phase[i])]
                    } else {
                        x
                    });
                }
            }
            // The selected need (of the needs normalized by phase, with `phase_spread`), if
            // any is to be covered, and how many more minutes are short than allowed.
            let (quantile, over) = match allowed.checked_sub(short) {
                Some(left) if xs.len() > left => {
                    let i = xs.len() - 1 - left;
                    let (_, v, _) = xs.select_nth_unstable_by(i, f64::total_cmp);
                    (Some(*v), 0)
                }
                Some(_) => (None, 0),
                None => (None, short - allowed),
            };
            let uniform = if over == 0 {
                quantile.map_or(0.0, |v| (v + 1e-9).clamp(0.0, cfg.max_margin))
            } else {
                (largest + 1e-9).min(cfg.max_margin)
            };
            let phased = (cfg.phase_spread && over == 0).then(|| {
                let mut m = [0.0; PHASES];
                if let Some(q) = quantile {
                    for (m, s) in m.iter_mut().zip(r.spread) {
                        *m = (q * s + 1e-9).clamp(0.0, cfg.max_margin);
                    }
                }
                m
            });
            let (margin, cost) = match &phased {
                Some(m) => (m[0], replayed_cost_by_phase(r, m, extra)),
                None => (uniform, replayed_cost(r, uniform, extra)),
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
                best = Some((r, margins, phased, over, cost));
            }
        }
    }
    best.map(|(r, margins, phased, _, _)| (r, margins, phased))
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
            .map(|&(b, f, _)| (f - provision(b)).max(0.0))
            .sum::<f64>()
}

/// `replayed_cost` with a margin for each phase.
fn replayed_cost_by_phase(r: &Replayed, margins: &PhaseMargins, extra: f64) -> f64 {
    let provision = |b: f64, p: usize| (1.0 + margins[p]) * b + extra + 0.5;
    r.held_by_phase
        .iter()
        .zip(margins)
        .map(|(h, m)| (1.0 + m) * h)
        .sum::<f64>()
        + (0.5 + extra) * r.kept as f64
        + r.floor_alone
        + r.floor_above
            .iter()
            .map(|&(b, f, p)| (f - provision(b, p)).max(0.0))
            .sum::<f64>()
}

/// The figures behind the choice, for the status.
#[allow(clippy::too_many_arguments)]
fn figures(
    chosen: &Replayed,
    margins: Margins,
    phased: Option<&PhaseMargins>,
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
        let margin = phased.map_or(margins.margin, |m| m[usize::from(chosen.phase[i])]);
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
    ) -> Option<(Calibration, Option<(PhaseMargins, Option<[f64; 3]>)>)> {
        let w = Window::new(cfg, objective, boundary);
        let minutes = Minutes::read(self, cfg, history, &w)?;
        let floor = live_floor(&minutes, objective, &w);
        let (phases, cuts) = if cfg.spread_by_change {
            change_classes(&minutes, &w)
        } else {
            let hours = (0..w.span).map(|k| phase_of(w.minute(k)) as u8);
            (hours.collect(), None)
        };
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
                basis,
                &minutes,
                &floor,
                &scored,
                objective,
                &w,
                cfg.phase_spread,
                cfg.phase_spread_cross_fitted,
                &phases,
            ));
        }
        let unavoidable = unavoidable_minutes(cfg, &replayed, scored.len());
        let (mut chosen, mut margins, mut phased) =
            cheapest(cfg, &replayed, &unavoidable, allowed)?;
        if cfg.dtaci {
            // The share of minutes allowed short, walked over the week on the basis chosen at
            // the objective's share, and the cheapest margins at the share the walk ends on.
            let needs: Vec<f64> = (0..scored.len())
                .filter(|&i| !unavoidable[i])
                .map(|i| chosen.need(i, margins.extra))
                .collect();
            let target = objective.max_underprovisioned / cfg.objective_safety;
            let level = dtaci_level(
                &needs,
                target,
                objective.max_underprovisioned,
                cfg.max_margin,
            );
            let allowed = (level * scored.len() as f64).floor() as usize;
            (chosen, margins, phased) = cheapest(cfg, &replayed, &unavoidable, allowed)?;
        }
        let figures = figures(
            chosen,
            margins,
            phased.as_ref(),
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
            phased.map(|m| (m, cuts)),
        ))
    }
}

/// How many classes of the live load's recent change a margin by change distinguishes
/// (`ModelConfig::spread_by_change`): its quartiles over the week, and a class of its own for
/// minutes with no change to read.
pub(super) const CHANGE_CLASSES: usize = 5;

/// The live load's relative change over the lead time at a decision: what a margin by change
/// is chosen by. NaN where either reading is missing.
pub(super) fn relative_change(now: f64, lead_before: f64) -> f64 {
    if now.is_finite() && lead_before.is_finite() && lead_before > 0.0 {
        (now / lead_before - 1.0).abs()
    } else {
        f64::NAN
    }
}

/// The class of a relative change among the week's quartiles `cuts`.
pub(super) fn change_class(change: f64, cuts: &[f64; 3]) -> u8 {
    if change.is_finite() {
        cuts.iter().filter(|&&c| change > c).count() as u8
    } else {
        (CHANGE_CLASSES - 1) as u8
    }
}

/// Each span minute's class of change, read at the last decision that readied its replicas
/// (the minute less the metric's lag), and the week's quartiles of the change that set them.
fn change_classes(minutes: &Minutes, w: &Window) -> (Vec<u8>, Option<[f64; 3]>) {
    let lead = w.lead as usize;
    let change = |u: usize| {
        u.checked_sub(lead).map_or(f64::NAN, |b| {
            relative_change(minutes.live[u], minutes.live[b])
        })
    };
    let at = |k: usize| k.checked_sub(w.lag).map_or(f64::NAN, change);
    let scored_lo = (w.scored_lo - w.span_lo).max(0) as usize;
    let mut seen: Vec<f64> = (scored_lo..w.span)
        .map(at)
        .filter(|c| c.is_finite())
        .collect();
    if seen.len() < 4 {
        return (vec![(CHANGE_CLASSES - 1) as u8; w.span], None);
    }
    seen.sort_unstable_by(f64::total_cmp);
    let q = |f: f64| seen[((seen.len() - 1) as f64 * f) as usize];
    let cuts = [q(0.25), q(0.5), q(0.75)];
    let classes = (0..w.span).map(|k| change_class(at(k), &cuts)).collect();
    (classes, Some(cuts))
}

/// The share of minutes to allow short, by dynamically-tuned adaptive conformal inference
/// (DtACI: Gibbs & Candès 2022, "Conformal inference for online prediction with arbitrary
/// distribution shifts", algorithm 1; Zaffran et al. 2022, "Adaptive conformal predictions for
/// time series"), walked over `needs` (the margin each minute of the week needed, in time
/// order): after a day, each minute is judged out of sample against the quantile of the minutes
/// before it at each expert's level; each expert moves its level by its own step,
/// `α ← α + γ(target − err)`, and the experts are weighted by their pinball loss with
/// exponential reweighting. The result is the weighted level at the week's end, in
/// `[0, cap]`. The steps are multiples of the target, as a miss moves the level by `γ` and a
/// covered minute by `γ·target`: a day of covered minutes at the target gives back a step
/// whatever it is, so the experts differ in how far one miss moves them, from a sixteenth of
/// the target to all of it. `η` and `σ` are the paper's choice for an interval of a day.
fn dtaci_level(needs: &[f64], target: f64, cap: f64, max_margin: f64) -> f64 {
    const BURN_IN: usize = 1440;
    const STEPS: [f64; 5] = [1.0 / 16.0, 1.0 / 8.0, 1.0 / 4.0, 1.0 / 2.0, 1.0];
    let n = needs.len();
    if n < 2 * BURN_IN || target <= 0.0 {
        return target;
    }
    let experts = STEPS.len() as f64;
    let interval = BURN_IN as f64;
    let sigma = 1.0 / (2.0 * interval);
    let a = target;
    let eta = (3.0 / interval).sqrt()
        * (((interval * experts).ln() + 2.0)
            / ((1.0 - a).powi(2) * a.powi(3) + a.powi(2) * (1.0 - a).powi(3)))
        .sqrt();
    let pinball = |beta: f64, theta: f64| a * (beta - theta) - (beta - theta).min(0.0);
    let mut alphas = [target; STEPS.len()];
    let mut weights = [1.0 / experts; STEPS.len()];
    // The highest needs so far, highest first: enough for any level up to `cap`.
    let most = (cap * n as f64).ceil() as usize + 1;
    let mut top: Vec<f64> = Vec::with_capacity(most + 1);
    for (t, &x) in needs.iter().enumerate() {
        if t >= BURN_IN {
            // β: the share of the minutes before with a need at least this one's, the highest
            // level at which this minute is short (past `most`, above every expert's level).
            let at_least = top.iter().take_while(|&&v| v >= x).count();
            let beta = at_least as f64 / t as f64;
            let margin_at = |alpha: f64| {
                if alpha <= 0.0 {
                    return max_margin;
                }
                let i = (alpha * t as f64).floor() as usize;
                top.get(i).copied().unwrap_or(0.0).clamp(0.0, max_margin)
            };
            let mut sum = 0.0;
            for (wt, &alpha) in weights.iter_mut().zip(&alphas) {
                *wt *= (-eta * pinball(beta, alpha)).exp();
                sum += *wt;
            }
            for wt in &mut weights {
                *wt = if sum > 0.0 && sum.is_finite() {
                    (1.0 - sigma) * *wt / sum + sigma / experts
                } else {
                    1.0 / experts
                };
            }
            for (alpha, step) in alphas.iter_mut().zip(STEPS) {
                let err = if x > margin_at(*alpha) { 1.0 } else { 0.0 };
                *alpha = (*alpha + step * target * (target - err)).clamp(0.0, cap);
            }
        }
        if x > f64::NEG_INFINITY {
            let at = top.partition_point(|&v| v >= x);
            if at < most {
                top.insert(at, x);
                top.truncate(most);
            }
        }
    }
    let total: f64 = weights.iter().sum();
    (alphas.iter().zip(&weights).map(|(a, w)| a * w).sum::<f64>() / total).clamp(0.0, cap)
}
