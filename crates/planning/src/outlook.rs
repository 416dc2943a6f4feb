//! The outlook: the replicas prescaler expects to ask for over the coming hours, and why.
//!
//! KEDA users ask to see the replicas expected ahead (kedacore/keda#3692); AWS's predictive
//! scaling publishes its forecast. The outlook is made by the same decision path as the decision
//! now: for each future step, the `Planner`'s scheduled floor (`Planner::scheduled_at`) and
//! `plan::decide` with the calibrated margins, on a copy of the decision's memory — the planner
//! itself is only read. What cannot be known is the live load of a future minute; the outlook
//! takes the calibrated basis' forecast for that minute as the load the live term would see (see
//! `expected_load`). Without a calibration, or without a forecast for a step, the step holds the
//! current decision (`plan::decide` without a load, which keeps the current count and any peak
//! floor), and says so (`held`).
//!
//! Cost: at most `horizon / step` forecasts (96 for a day at 15 minutes) and, per step, the
//! decisions of the minutes that lead to it while the behaviour still limits them (one, when
//! nothing limits). The operator recomputes it once per step (`docs/benchmarks.md`).

use chrono::{DateTime, Duration, DurationRound, Utc};

use super::forecast::{self, History, Predictor, View};
use super::plan::{self, Decision, Inputs, Memory, Reason};
use super::planner::Planner;
use super::schedule::{self, ScheduledFloor};
use super::several::{self, Several};
use prescaler_api::{PlanStatus, PlannedReplicas};

/// The outlook's step, and the grid its steps are aligned to.
pub const STEP: Duration = Duration::minutes(15);
/// How far the outlook looks.
pub const HORIZON: Duration = Duration::hours(24);

/// One step of the outlook.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// The minute the step stands for.
    pub at: DateTime<Utc>,
    /// The replicas prescaler expects to ask for then.
    pub replicas: u32,
    /// The term that decides them.
    pub reason: Reason,
    /// The forecast load taken for the step (the basis' forecast peak within the lead time),
    /// without margin; `None` when the step is held.
    pub forecast_load: Option<f64>,
    /// The scheduled floor the decision asks for (a peak window open within the lead time).
    pub scheduled: Option<ScheduledFloor>,
    /// What the schedule holds at `at` itself: the window or event whose floor is in force, a
    /// ceiling (`name ≤N`), an exclusion (`name (excluded)`).
    pub window_open: Option<String>,
    /// No forecast for this step: the current decision held (and any peak floor).
    pub held: bool,
}

/// The outlook from one instant.
#[derive(Clone, Debug, PartialEq)]
pub struct Outlook {
    /// When it was computed: the decision's minute.
    pub from: DateTime<Utc>,
    /// The decision now, as the first step (at `from`).
    pub now: Step,
    /// The steps after `from`, on the `step` grid, up to `from + horizon`.
    pub steps: Vec<Step>,
    /// Every step is held: there is no calibrated forecast to plan with.
    pub held: bool,
    /// How far it looks.
    pub horizon: Duration,
}

impl Outlook {
    /// The step that stands for `ahead` after `from` (the last at or before it), if the outlook
    /// reaches that far.
    pub fn at(&self, ahead: Duration) -> Option<&Step> {
        let t = self.from + ahead;
        self.steps.iter().rev().find(|s| s.at <= t)
    }

    /// The highest planned step (the first of equals).
    pub fn max(&self) -> Option<&Step> {
        self.steps
            .iter()
            .fold(None, |best: Option<&Step>, s| match best {
                Some(b) if b.replicas >= s.replicas => Some(b),
                _ => Some(s),
            })
    }

    /// The next peak: the first rise above the replicas asked for now, taken to where it stops
    /// rising (the first of its highest steps). `None` when nothing ahead asks for more.
    pub fn next_peak(&self) -> Option<&Step> {
        let base = self.now.replicas;
        let first = self.steps.iter().position(|s| s.replicas > base)?;
        let mut peak = &self.steps[first];
        for s in &self.steps[first + 1..] {
            if s.replicas > peak.replicas {
                peak = s;
            } else if s.replicas < peak.replicas {
                break;
            }
        }
        Some(peak)
    }
}

/// The horizons the plan is published at (status and metrics): a bounded set of label values.
pub const HORIZONS: [(&str, Duration); 5] = [
    ("15m", Duration::minutes(15)),
    ("1h", Duration::hours(1)),
    ("3h", Duration::hours(3)),
    ("6h", Duration::hours(6)),
    ("24h", Duration::hours(24)),
];

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// What decides a step, in a word or a name: the peak window or event, the ceiling's source, or
/// the forecast's basis.
pub fn decided_by(reason: &Reason) -> Option<String> {
    match reason {
        Reason::PeakWindow(w) | Reason::Event(w) => Some(w.clone()),
        Reason::ScheduledMaximum(source) => Some(source.name().to_string()),
        Reason::Forecast(b) => Some(b.name().to_string()),
        _ => None,
    }
}

fn planned(s: &Step, ahead: Option<&str>) -> PlannedReplicas {
    PlannedReplicas {
        at: rfc3339(s.at),
        r#in: ahead.map(str::to_string),
        replicas: s.replicas.min(i32::MAX as u32) as i32,
        reason: s.reason.as_str().to_string(),
        by: decided_by(&s.reason),
    }
}

impl Outlook {
    /// The plan in brief, for `status.plan`: a fixed handful of fields whatever the horizon.
    pub fn summary(&self) -> PlanStatus {
        PlanStatus {
            computed_at: rfc3339(self.from),
            horizon: prescaler_api::format_duration(self.horizon),
            held: self.held,
            next_peak: self.next_peak().map(|s| planned(s, None)),
            max: self.max().map(|s| planned(s, None)),
            ahead: HORIZONS
                .iter()
                .filter_map(|(name, d)| self.at(*d).map(|s| planned(s, Some(name))))
                .collect(),
        }
    }
}

/// The load a future minute's live term is taken to see: the calibrated basis' forecast (for a
/// basis on the live load alone, the forecasts the spec learns — the best estimate of what the
/// live load will be). NaN when there is none.
fn expected_load(planner: &Planner, daily: f64, weekly: f64) -> f64 {
    let Some(cal) = planner.calibration() else {
        return f64::NAN;
    };
    let foresight = cal.margins.basis.foresight(daily, weekly);
    if foresight.is_finite() {
        return foresight;
    }
    match (daily.is_finite(), weekly.is_finite()) {
        (true, true) => daily.max(weekly),
        (true, false) => daily,
        (false, true) => weekly,
        (false, false) => f64::NAN,
    }
}

/// What the schedule holds at `at`: the peak window or calendar event whose floor is in force
/// (the highest; a peak window switched off by an exclusion is not), the ceiling in force
/// (`≤ N`), the exclusion (`excluded`), joined.
fn open_window(planner: &Planner, at: DateTime<Utc>) -> Option<String> {
    let spec = planner.spec();
    let s = schedule::scheduled(&spec.peak_windows, &spec.calendar, at, Duration::zero());
    let parts: Vec<String> = [
        s.floor.map(|f| f.source.name().to_string()),
        s.cap
            .map(|c| format!("{} ≤{}", c.source.name(), c.max_replicas)),
        s.excluded.map(|x| format!("{x} (excluded)")),
    ]
    .into_iter()
    .flatten()
    .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

fn step_of(planner: &Planner, d: &Decision, at: DateTime<Utc>, held: bool) -> Step {
    Step {
        at,
        replicas: d.desired_replicas,
        reason: d.reason.clone(),
        forecast_load: if held { None } else { d.forecast_load },
        scheduled: d.scheduled.clone(),
        window_open: open_window(planner, at),
        held,
    }
}

/// The outlook of `planner` after its decision at `now` (`Planner::decide` first; without a
/// decision at `now` there is nothing to plan from and the answer is `None`), from `history`,
/// the same the decision read: every `step` on the grid after `now` up to `now + horizon`.
/// The planner is not changed: the decisions ahead are played on a copy of its memory.
pub fn outlook(
    planner: &Planner,
    history: Option<&History>,
    now: DateTime<Utc>,
    step: Duration,
    horizon: Duration,
) -> Option<Outlook> {
    let minute = now.duration_trunc(Duration::minutes(1)).unwrap_or(now);
    let (at, _, decision) = planner.last_decision()?;
    if at != minute {
        return None;
    }
    let step = step.max(Duration::minutes(1));
    let view = history.and_then(|h| planner.view(h, minute));
    let calibrated = planner.calibration().is_some() && view.is_some();
    let mut ahead = Ahead {
        planner,
        memory: planner.memory().clone(),
        current: decision.desired_replicas,
        decided_now: decision.desired_replicas,
        minute,
    };
    let first = minute.duration_trunc(step).unwrap_or(minute) + step;
    let mut steps =
        Vec::with_capacity((horizon.num_minutes() / step.num_minutes()).max(0) as usize);
    let mut t = first;
    while t <= minute + horizon {
        let (daily, weekly) = match view.filter(|_| calibrated) {
            Some(view) => forecasts_at(planner, view, t),
            None => (f64::NAN, f64::NAN),
        };
        steps.push(ahead.step_at(t, step, daily, weekly));
        t += step;
    }
    let held = steps.iter().all(|s| s.held);
    Some(Outlook {
        from: minute,
        now: step_of(planner, decision, minute, false),
        steps,
        held,
        horizon,
    })
}

/// The forecasts a decision at `t` would read, `(daily, weekly)`: the peak within its lead
/// time, predicted from what is observed now (NaN for a predictor not in use or without one).
fn forecasts_at(planner: &Planner, view: View<'_>, t: DateTime<Utc>) -> (f64, f64) {
    let (mut daily, mut weekly) = (f64::NAN, f64::NAN);
    for p in planner.predictors() {
        let f = forecast::predict_peak(
            planner.model(),
            *p,
            view,
            planner.adjustments(),
            t,
            t + planner.spec().lead_time,
        )
        .map_or(f64::NAN, |v| v.max(0.0));
        match p {
            Predictor::Daily => daily = f,
            Predictor::Weekly => weekly = f,
        }
    }
    (daily, weekly)
}

/// The decisions after the live one, played on a copy of the planner's memory.
struct Ahead<'a> {
    planner: &'a Planner,
    memory: Memory,
    /// The replicas the last decision played asked for.
    current: u32,
    /// The live decision's replicas, which a held step keeps.
    decided_now: u32,
    /// The live decision's minute.
    minute: DateTime<Utc>,
}

impl Ahead<'_> {
    /// The step at `t` of the `step` grid, with the forecasts `daily` and `weekly` for it.
    fn step_at(&mut self, t: DateTime<Utc>, step: Duration, daily: f64, weekly: f64) -> Step {
        let load = expected_load(self.planner, daily, weekly);
        let held = !load.is_finite();
        // The step's inputs held over the minutes that lead to it, one decision a minute as the
        // operator makes them, while the behaviour still moves the count (a rate limit, a
        // stabilization window): the step shows where the operator will be, not one rate-limited
        // move from where the last step was. Once a decision leaves the count where it was,
        // unlimited, the minutes up to the step would repeat it: the step's own minute decides
        // next. Held steps keep the decision now: one decision, at the step's minute.
        let span = if held { 1 } else { step.num_minutes().max(1) };
        // Never before the live decision's minute: those minutes are decided, and in the memory.
        let mut m = (t - Duration::minutes(span - 1)).max(self.minute + Duration::minutes(1));
        let d = loop {
            let d = self.decide_at(m, (!held).then_some(load), daily, weekly);
            let settled = d.desired_replicas == self.current
                && !matches!(d.reason, Reason::RateLimited | Reason::Stabilized);
            self.current = d.desired_replicas;
            if m >= t {
                break d;
            }
            m = if settled { t } else { m + Duration::minutes(1) };
        };
        step_of(self.planner, &d, t, held)
    }

    /// The decision at minute `m` with the step's expected `load` (`None`: the step is held).
    fn decide_at(
        &mut self,
        m: DateTime<Utc>,
        load: Option<f64>,
        daily: f64,
        weekly: f64,
    ) -> Decision {
        let planner = self.planner;
        let held = load.is_none();
        let scheduled = planner.scheduled_at(m, self.current);
        let event = planner.expected_event(m, load, daily, weekly);
        plan::decide(
            planner.spec(),
            Inputs {
                load,
                sustained: load,
                daily,
                weekly,
                calibration: if held { None } else { planner.calibration() },
                scheduled: &scheduled,
                event: event.as_ref(),
                current_replicas: if held { self.decided_now } else { self.current },
                held_zero: false,
            },
            &mut self.memory,
            m,
        )
    }
}

/// The outlook of several metrics (`Several`, after its decision at `now`): at each step,
/// each metric's terms on its own forecasts, as `outlook` plays one planner's, and the highest
/// of their proposals shaped once with a copy of the combined memory (`several::shape_highest`),
/// as `Several::decide` shapes the decision now. `histories[i]` is metric `i`'s, the same the
/// decision read. A step is held when no metric has a forecast for it; a metric without one
/// holds the decision now (it stops a fall, not a rise). With one metric, `outlook` of its
/// planner. `None` without a decision at `now`.
pub fn outlook_of_metrics(
    several: &Several,
    histories: &[Option<&History>],
    now: DateTime<Utc>,
    step: Duration,
    horizon: Duration,
) -> Option<Outlook> {
    let planners = several.planners();
    let history = |i: usize| histories.get(i).copied().flatten();
    if let [one] = planners {
        return outlook(one, history(0), now, step, horizon);
    }
    let minute = now.duration_trunc(Duration::minutes(1)).unwrap_or(now);
    let (at, _, decided) = several.last_decided()?;
    if at != minute || planners.is_empty() {
        return None;
    }
    let step = step.max(Duration::minutes(1));
    let views: Vec<Option<View<'_>>> = planners
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let view = history(i).and_then(|h| p.view(h, minute));
            view.filter(|_| p.calibration().is_some())
        })
        .collect();
    let decided_now = decided.decision.desired_replicas;
    let mut ahead = AheadOfMetrics {
        planners,
        memories: planners.iter().map(|p| p.memory().clone()).collect(),
        memory: several.memory().clone(),
        current: decided_now,
        decided_now,
        minute,
    };
    let first = minute.duration_trunc(step).unwrap_or(minute) + step;
    let mut steps =
        Vec::with_capacity((horizon.num_minutes() / step.num_minutes()).max(0) as usize);
    let mut t = first;
    while t <= minute + horizon {
        let forecasts: Vec<(f64, f64)> = planners
            .iter()
            .zip(&views)
            .map(|(p, view)| match view {
                Some(view) => forecasts_at(p, *view, t),
                None => (f64::NAN, f64::NAN),
            })
            .collect();
        steps.push(ahead.step_at(t, step, &forecasts));
        t += step;
    }
    let held = steps.iter().all(|s| s.held);
    Some(Outlook {
        from: minute,
        now: step_of(
            &planners[decided.deciding],
            &decided.decision,
            minute,
            false,
        ),
        steps,
        held,
        horizon,
    })
}

/// `Ahead` for several metrics: each planner's memory and the combined one, copies.
struct AheadOfMetrics<'a> {
    planners: &'a [Planner],
    memories: Vec<Memory>,
    memory: Memory,
    current: u32,
    decided_now: u32,
    minute: DateTime<Utc>,
}

impl AheadOfMetrics<'_> {
    /// `Ahead::step_at` with each metric's forecasts `(daily, weekly)` for the step.
    fn step_at(&mut self, t: DateTime<Utc>, step: Duration, forecasts: &[(f64, f64)]) -> Step {
        let loads: Vec<Option<f64>> = self
            .planners
            .iter()
            .zip(forecasts)
            .map(|(p, &(daily, weekly))| {
                Some(expected_load(p, daily, weekly)).filter(|l| l.is_finite())
            })
            .collect();
        let held = loads.iter().all(Option::is_none);
        let span = if held { 1 } else { step.num_minutes().max(1) };
        let mut m = (t - Duration::minutes(span - 1)).max(self.minute + Duration::minutes(1));
        let (deciding, d) = loop {
            let (deciding, d) = self.decide_at(m, &loads, forecasts);
            let settled = d.desired_replicas == self.current
                && !matches!(d.reason, Reason::RateLimited | Reason::Stabilized);
            self.current = d.desired_replicas;
            if m >= t {
                break (deciding, d);
            }
            m = if settled { t } else { m + Duration::minutes(1) };
        };
        step_of(&self.planners[deciding], &d, t, held)
    }

    /// The decision at minute `m`: each metric's proposal on its expected load (`None`: held,
    /// from the decision now), the highest shaped once.
    fn decide_at(
        &mut self,
        m: DateTime<Utc>,
        loads: &[Option<f64>],
        forecasts: &[(f64, f64)],
    ) -> (usize, Decision) {
        let mut proposals = Vec::with_capacity(self.planners.len());
        for (i, planner) in self.planners.iter().enumerate() {
            let (load, (daily, weekly)) = (loads[i], forecasts[i]);
            let held = load.is_none();
            let current = if held { self.decided_now } else { self.current };
            let scheduled = planner.scheduled_at(m, current);
            let event = planner.expected_event(m, load, daily, weekly);
            proposals.push(plan::propose(
                planner.spec(),
                Inputs {
                    load,
                    sustained: load,
                    daily,
                    weekly,
                    calibration: if held { None } else { planner.calibration() },
                    scheduled: &scheduled,
                    event: event.as_ref(),
                    current_replicas: current,
                    held_zero: false,
                },
                &mut self.memories[i],
                m,
            ));
        }
        let (deciding, d) = several::shape_highest(self.planners, &proposals, &mut self.memory, m);
        for memory in &mut self.memories {
            memory.hold_as(&self.memory);
        }
        (deciding, d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forecast::ModelConfig;
    use chrono::TimeZone;
    use prescaler_api::{PeakWindow, PredictiveScalerSpec};

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 5, 0, 0, 0).unwrap() // a Monday
    }

    /// 100 at night, 1000 from 09:00 to 10:00 UTC every day, with a little deterministic noise.
    fn daily_step(t: DateTime<Utc>) -> f64 {
        let m = (t - t0()).num_minutes();
        let noise = 1.0 + 0.02 * ((m * 7919 % 11) as f64 / 10.0 - 0.5);
        noise
            * if (540..600).contains(&m.rem_euclid(1440)) {
                1000.0
            } else {
                100.0
            }
    }

    fn history(until: DateTime<Utc>, load: impl Fn(DateTime<Utc>) -> f64) -> History {
        let n = (until - t0()).num_minutes() + 1;
        History::new(
            t0(),
            Duration::minutes(1),
            (0..n).map(|m| load(t0() + Duration::minutes(m))).collect(),
        )
    }

    fn spec(windows: Vec<PeakWindow>) -> prescaler_api::ValidatedSpec {
        let mut spec = PredictiveScalerSpec::new(50.0, 40);
        spec.min_replicas = 2;
        spec.forecast.history = "14d".into();
        spec.forecast.seasonality = vec![prescaler_api::Seasonality::Daily];
        spec.peak_windows = windows;
        spec.validate().unwrap()
    }

    fn decided(spec: prescaler_api::ValidatedSpec, h: &History, now: DateTime<Utc>) -> Planner {
        let mut p = Planner::new(spec, ModelConfig::default());
        p.decide(Some(h), 2, now);
        p
    }

    #[test]
    fn a_peak_window_two_hours_ahead_appears_at_its_step_with_its_floor() {
        // Flat load, no calibrated forecast needed: a window at 14:00 UTC, asked for now at 12:00.
        let now = t0() + Duration::days(3) + Duration::hours(12);
        let h = history(now, |_| 100.0);
        let window = PeakWindow {
            max_replicas: None,
            name: "campaign".into(),
            schedule: "0 14 * * *".into(),
            duration: "1h".into(),
            time_zone: "UTC".into(),
            min_replicas: Some(17),
        };
        let p = decided(spec(vec![window]), &h, now);
        let o = outlook(&p, Some(&h), now, STEP, HORIZON).unwrap();
        assert_eq!(o.steps.len(), 96);
        assert_eq!(o.steps[0].at, now + STEP);
        let at = |hh: i64, mm: i64| {
            o.steps
                .iter()
                .find(|s| s.at == now + Duration::hours(hh) + Duration::minutes(mm))
                .unwrap()
        };
        // Before the window: the decision now, not the floor.
        assert!(at(1, 45).replicas < 17, "{:?}", at(1, 45));
        assert_eq!(at(1, 45).window_open, None);
        // From 14:00 to 14:45 the floor holds, named; at 15:00 the window has closed.
        for mm in [0, 15, 30, 45] {
            let s = at(2, mm);
            assert_eq!(s.replicas, 17, "{s:?}");
            assert_eq!(s.reason, Reason::PeakWindow("campaign".into()), "{s:?}");
            assert_eq!(s.window_open.as_deref(), Some("campaign"));
        }
        assert!(at(3, 15).replicas < 17, "{:?}", at(3, 15));
        assert_eq!(at(3, 15).window_open, None);
        // The summary finds it.
        let peak = o.next_peak().unwrap();
        assert_eq!((peak.at, peak.replicas), (now + Duration::hours(2), 17));
        assert_eq!(o.max().unwrap().replicas, 17);
        let summary = o.summary();
        assert_eq!(summary.horizon, "1d");
        let next = summary.next_peak.clone().unwrap();
        assert_eq!((next.replicas, next.reason.as_str()), (17, "PeakWindow"));
        assert_eq!(next.by.as_deref(), Some("campaign"));
        assert_eq!(next.at, "2026-01-08T14:00:00Z");
        let ahead: Vec<_> = summary
            .ahead
            .iter()
            .map(|a| a.r#in.clone().unwrap())
            .collect();
        assert_eq!(ahead, ["15m", "1h", "3h", "6h", "24h"]);
        assert!(summary.ahead.iter().all(|a| a.replicas < 17), "{summary:?}");
    }

    #[test]
    fn a_daily_forecast_step_appears_ahead_of_time() {
        // Ten days of a daily step to 1000 at 09:00; now is 03:00, well past the calibration's
        // first day.
        let now = t0() + Duration::days(10) + Duration::hours(3);
        let h = history(now, daily_step);
        let p = decided(spec(vec![]), &h, now);
        assert!(p.calibration().is_some(), "calibrated on 10 days");
        let before = p.clone();
        let o = outlook(&p, Some(&h), now, STEP, HORIZON).unwrap();
        assert!(!o.held);
        let need = (1000.0_f64 / 50.0) as u32; // 20 replicas for the step's load
        let at = |hh: i64, mm: i64| {
            o.steps
                .iter()
                .find(|s| s.at == now + Duration::hours(hh) + Duration::minutes(mm))
                .unwrap()
        };
        // At night: a few replicas.
        assert!(at(3, 0).replicas <= 4, "{:?}", at(3, 0));
        // At 09:15 (6 h ahead), inside the step, the forecast asks for the step's replicas.
        let inside = at(6, 15);
        assert!(inside.replicas >= need * 9 / 10, "{inside:?}");
        assert!(matches!(inside.reason, Reason::Forecast(_)), "{inside:?}");
        assert!(inside.forecast_load.unwrap() > 800.0, "{inside:?}");
        // After 10:00 (and the scale-down), back to a few.
        assert!(at(8, 0).replicas <= 4, "{:?}", at(8, 0));
        // The next peak is the 09:00 step, found from 03:00.
        let peak = o.next_peak().unwrap();
        assert!(
            peak.at >= now + Duration::hours(5) && peak.at <= now + Duration::hours(7),
            "{peak:?}"
        );
        // The planner was only read: the same decision again.
        assert_eq!(
            format!("{:?}", p.memory()),
            format!("{:?}", before.memory())
        );
    }

    #[test]
    fn a_recurring_spike_is_planned_at_its_replicas_wherever_it_falls_in_a_block() {
        // The operator test's history: 100/s flat and a daily half-hour spike at 1000/s (20
        // replicas at 50), noiseless, 8 days; now is six minutes before the spike, which starts
        // at each minute of a 5-minute block in turn. A spike late in its block (minute 3) was
        // read at its height only from the next block: its first minute was forecast at the
        // ramp, the calibration bought it back with a 72 % margin, and the plan asked for 35.
        for offset in 0..5 {
            let spike = 9 * 60 + offset;
            let now = t0() + Duration::days(8) + Duration::minutes(spike - 6);
            let load = |t: DateTime<Utc>| {
                let m = (t - t0()).num_minutes().rem_euclid(1440);
                if (spike..spike + 30).contains(&m) {
                    1000.0
                } else {
                    100.0
                }
            };
            let h = history(now, load);
            let mut spec = PredictiveScalerSpec::new(50.0, 40);
            spec.min_replicas = 2;
            spec.forecast.history = "8d".into();
            spec.forecast.seasonality = vec![prescaler_api::Seasonality::Daily];
            let p = decided(spec.validate().unwrap(), &h, now);
            let margins = p.calibration().unwrap().margins;
            assert_eq!((margins.margin, margins.extra), (0.0, 0.0), "{offset}");
            let o = outlook(&p, Some(&h), now, STEP, HORIZON).unwrap();
            assert_eq!(o.now.replicas, 20, "{offset}: {:?}", o.now);
            let max = o.max().unwrap();
            assert_eq!(max.replicas, 20, "{offset}: {max:?}");
            assert_eq!(
                max.reason,
                Reason::Forecast(crate::calibration::Basis::Daily),
                "{offset}: {max:?}"
            );
        }
    }

    /// Two metrics whose days peak at different hours: the requests at 09:00 (1000, 20
    /// replicas at 50), the queue at 15:00 (300, 30 replicas at 10). The plan of both has
    /// each metric's peak, each step the highest of what each metric's own plan asks.
    #[test]
    fn with_several_metrics_each_step_is_the_highest_of_the_metrics_plans() {
        use prescaler_api::{MetricSpec, NamedMetricSpec};
        let now = t0() + Duration::days(10) + Duration::hours(3);
        let queue_step = |t: DateTime<Utc>| {
            let m = (t - t0()).num_minutes().rem_euclid(1440);
            if (900..960).contains(&m) { 300.0 } else { 10.0 }
        };
        let (requests, queue) = (history(now, daily_step), history(now, queue_step));
        let mut s = PredictiveScalerSpec::new(1.0, 40);
        s.min_replicas = 2;
        s.forecast.history = "14d".into();
        s.forecast.seasonality = vec![prescaler_api::Seasonality::Daily];
        s.metric = MetricSpec::default();
        s.metrics = [("requests", 50.0), ("queue", 10.0)]
            .iter()
            .map(|(name, per_replica)| NamedMetricSpec {
                name: name.to_string(),
                query: format!("sum({name})"),
                target_per_replica: *per_replica,
                activation_threshold: 0.0,
            })
            .collect();
        let spec = s.validate().unwrap();
        let mut several = Several::new(&spec, ModelConfig::default());
        let histories = [Some(&requests), Some(&queue)];
        several.decide(&histories, 2, now);
        let o = outlook_of_metrics(&several, &histories, now, STEP, HORIZON).unwrap();
        assert!(!o.held);
        // Each metric's own plan, as a scaler of that metric alone would make it.
        let alone = |i: usize, h: &History| {
            let p = decided(spec.for_metric(i).unwrap(), h, now);
            assert!(p.calibration().is_some(), "calibrated on 10 days");
            outlook(&p, Some(h), now, STEP, HORIZON).unwrap()
        };
        let (by_requests, by_queue) = (alone(0, &requests), alone(1, &queue));
        for (i, s) in o.steps.iter().enumerate() {
            let highest = by_requests.steps[i]
                .replicas
                .max(by_queue.steps[i].replicas);
            assert_eq!(s.replicas, highest, "{s:?}");
        }
        let at = |hh: i64, mm: i64| {
            let t = now + Duration::hours(hh) + Duration::minutes(mm);
            o.steps.iter().find(|s| s.at == t).unwrap()
        };
        // 09:15 for the requests, 15:15 for the queue; at night and between, a few.
        assert!(at(6, 15).replicas >= 18, "{:?}", at(6, 15));
        assert!(at(12, 15).replicas >= 27, "{:?}", at(12, 15));
        assert!(
            matches!(at(12, 15).reason, Reason::Forecast(_)),
            "{:?}",
            at(12, 15)
        );
        for (hh, mm) in [(3, 0), (9, 0), (14, 0)] {
            assert!(at(hh, mm).replicas <= 5, "{:?}", at(hh, mm));
        }
        // The highest step is the queue's afternoon.
        let max = o.max().unwrap();
        assert!(max.at >= at(12, 0).at && max.at <= at(13, 0).at, "{max:?}");
        // Without the decision at `now`, nothing to plan from.
        let later = now + Duration::minutes(5);
        assert!(outlook_of_metrics(&several, &histories, later, STEP, HORIZON).is_none());
    }

    #[test]
    fn without_a_calibration_the_decision_now_is_held() {
        // Six hours of history: no calibration, no forecast.
        let now = t0() + Duration::hours(6);
        let h = history(now, |_| 400.0);
        let p = decided(spec(vec![]), &h, now);
        let o = outlook(&p, Some(&h), now, STEP, HORIZON).unwrap();
        assert!(o.held);
        let desired = p.last_decision().unwrap().2.desired_replicas;
        assert!(
            o.steps.iter().all(|s| s.held
                && s.reason == Reason::Hold
                && s.forecast_load.is_none()
                && s.replicas >= desired),
            "{:?}",
            o.steps
        );
        // Past the time a hold keeps the last recommendation, exactly the decision now.
        assert!(
            o.steps[2..].iter().all(|s| s.replicas == desired),
            "{:?}",
            o.steps
        );
        // Without a decision at `now`, there is nothing to plan from.
        assert!(outlook(&p, Some(&h), now + Duration::minutes(5), STEP, HORIZON).is_none());
    }

    #[test]
    fn events_and_ceilings_are_named_in_the_plan() {
        use crate::schedule::Source;
        assert_eq!(
            decided_by(&Reason::Event("sale".into())).as_deref(),
            Some("sale")
        );
        assert_eq!(
            decided_by(&Reason::ScheduledMaximum(Source::PeakWindow(
                "night".into()
            )))
            .as_deref(),
            Some("night")
        );
        let mut spec = PredictiveScalerSpec::new(100.0, 50);
        spec.peak_windows = vec![
            serde_yaml_ng::from_str(
                "{name: night, schedule: '0 1 * * *', duration: 5h, maxReplicas: 4}",
            )
            .unwrap(),
        ];
        spec.calendar =
            serde_yaml_ng::from_str("{exclusions: [{name: holiday, date: '2026-01-06'}]}").unwrap();
        let planner = Planner::new(spec.validate().unwrap(), ModelConfig::default());
        let at = |t: &str| {
            open_window(
                &planner,
                chrono::DateTime::parse_from_rfc3339(t).unwrap().into(),
            )
        };
        assert_eq!(at("2026-01-05T02:00:00Z").as_deref(), Some("night ≤4"));
        assert_eq!(
            at("2026-01-06T02:00:00Z").as_deref(),
            Some("night ≤4, holiday (excluded)")
        );
        assert_eq!(at("2026-01-05T12:00:00Z"), None);
    }
}
