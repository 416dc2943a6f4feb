//! The decision: how many replicas to ask for now, and why.
//!
//! `decide` is pure: the spec, what was observed, what the calibration learned and the memory of
//! earlier decisions are passed in. The planner calls it for the operator and for the backtest
//! alike, so a backtest of a spec is a preview of what the operator will do with it.
//!
//! The replica count is `max(basis with its margins, live floor, scheduled floor)`, clamped to
//! `[minReplicas, maxReplicas]`, then shaped by `behavior` with the HorizontalPodAutoscaler's own
//! algorithm (`behavior`), so that SREs' intuitions carry over.
//!
//! **The live load is always served.** Whatever the basis, a sustained live load is always
//! served within the HPA's reaction time, and a recovered metric is followed at its second sample:
//! forecasting may add replicas early, never withhold what the live load plainly needs. The
//! live floor is what the sustained live load needs, `ceil(sustained / targetPerReplica)`,
//! where the sustained load is the lower median of the newest samples, at least two and at most
//! three (`calibration::LiveReading`; "Why two samples" below). It mirrors the HPA at a 100 %
//! target on the same metric:
//! - the metric lag: the floor reads the same samples the HPA would, no later;
//! - the sync period: the HPA acts on a new sample at its next 15-second sync; the floor
//!   applies at the decision of the minute the sample belongs to, and the default scale-up
//!   limit (which the HPA applies per sync, four times a minute) does not hold it back;
//! - the tolerance: the HPA ignores a load within 10 % of its target so that one noisy sample
//!   does not move it; the floor takes the lower median of the newest samples instead, so that
//!   one odd minute neither raises nor lowers it — and then holds the need itself, not 10 % below it.
//!
//! A step up is so served one minute after the HPA would act (the second sample of the new
//! level moves the median), a metric back from zero at its second sample (zeros before it do
//! not count, but one sample alone is no sustained load: its first sample is followed within
//! the scale-up limit), and a sudden drop to zero is held like a missing sample, at the level
//! before it, until it has lasted a level window (`forecast::zero_blips`). The calibration
//! replays the floor with the basis (`calibration`), so its margins only pay for what the
//! floor does not already cover.
//!
//! **Why two samples.** The floor is exempt from the default scale-up limit, which exists to
//! stop one bogus sample; so the floor must stand on more than one sample in every case — a
//! median of three does after steady load, but after believed zeros (which do not count) or a
//! gap it would be the median of one, and a zero blip held at one spike before it would read
//! the spike three times. Hence: a sustained load is the lower median of at least two samples
//! (never above the second-highest, so one sample cannot raise it above every other), and a
//! blip is held at the lower median of the samples before it. Safe both ways:
//! - never to `maxReplicas` on one sample: one sample alone sets no floor; the decision
//!   follows it within the default limit (+100 % or +4 pods a decision), as the HPA acts on
//!   one sample within its scale-up policy (the HPA takes four such steps a minute, one every
//!   15-second sync; prescaler takes one a minute until a second sample confirms);
//! - never below a sustained need for longer than the HPA's reaction plus one sample: a level
//!   that lasts sets the floor at its second sample, one minute after its first. The HPA,
//!   at most +100 % or +4 pods per 15-second sync from where the zeros left it, is then four
//!   syncs in: prescaler is at most that minute behind it, and not behind it for any jump
//!   the HPA needs more than four syncs for.

use chrono::{DateTime, Duration, Utc};

use super::behavior::{self, Limited};
use super::calibration::{Basis, Calibration, Margins};
use super::quiet::{self, QuietHours};
use super::schedule::{Scheduled, ScheduledCap, ScheduledFloor, Source};
use prescaler_api::ValidatedSpec;

/// Margin on the reactive term while no forecast is calibrated yet: the HPA's customary 80 %
/// utilization target, so that a new PredictiveScaler is no worse than the HPA it replaces.
const UNCALIBRATED_MARGIN: f64 = 1.25;

/// How long the last trustworthy forecast is held while the metrics are unavailable; after it,
/// prescaler holds the current replicas until the metrics return.
pub const HOLD_FORECAST_FOR: Duration = Duration::minutes(30);

/// What the planner observed and learned, for one decision.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    /// The live load; `None` when it was not observed recently (the source failed, a gap).
    pub load: Option<f64>,
    /// The sustained live load (`calibration::LiveReading::sustained`): no decision stays below
    /// what it needs. `None` with a `load` while one sample alone is observed (the first after
    /// believed zeros or a gap): the decision then follows that sample within the scale-up
    /// limit.
    pub sustained: Option<f64>,
    /// The daily and weekly forecasts of the peak load within the lead time (NaN where none).
    pub daily: f64,
    pub weekly: f64,
    /// The margins the objective calls for, once calibrated.
    pub calibration: Option<&'a Calibration>,
    /// What the peak windows and the calendar ask for: a floor within the lead time, a
    /// ceiling now.
    pub scheduled: &'a Scheduled,
    /// The load a calendar event with a `loadMultiplier` above 1 is expected to bring within
    /// the lead time, whatever basis the calibration chose.
    pub event: Option<&'a ExpectedEvent>,
    /// The replica count the target has now.
    pub current_replicas: u32,
    /// The newest sample is a zero held at a passing level
    /// (`calibration::LiveReading::held_zero`).
    pub held_zero: bool,
}

/// What a calendar event is expected to bring.
#[derive(Clone, Debug, PartialEq)]
pub struct ExpectedEvent {
    pub name: String,
    /// The peak load expected within the lead time, in the metric's unit.
    pub load: f64,
}

/// What `decide` remembers between calls.
#[derive(Clone, Debug, Default)]
pub struct Memory {
    behavior: behavior::Memory,
    /// The count a metrics outage holds: the last decision's, or what it knew ahead (`decide`).
    last_trusted: Option<(DateTime<Utc>, u32)>,
    /// The last decision's forecast alone: the floor an HPA keeps through an outage.
    last_forecast: Option<(DateTime<Utc>, u32)>,
    /// Since when the load has been quiet in a quiet window (`quiet`).
    quiet: quiet::Memory,
}

impl Memory {
    /// A memory for a model whose quiet windows wait `zero_cooldown` (`ModelConfig`).
    pub fn with_zero_cooldown(zero_cooldown: Duration) -> Self {
        Self {
            quiet: quiet::Memory::with_cooldown(zero_cooldown),
            ..Self::default()
        }
    }
}

impl Memory {
    /// The forecast an outage holds (`hold`), with when it was remembered.
    pub(crate) fn remembered_forecast(&self) -> Option<(DateTime<Utc>, u32)> {
        self.last_forecast
    }

    /// Keeps `before` as the remembered forecast, with its own time, where it is higher than
    /// the one remembered since: while a metric of several is held (`several`), the others'
    /// lower forecast must not replace the one the hold's floor stands on, nor make it last
    /// longer than `HOLD_FORECAST_FOR` from when it was trusted.
    pub(crate) fn keep_higher_forecast(&mut self, before: Option<(DateTime<Utc>, u32)>) {
        if let Some((at, r)) = before
            && self.last_forecast.is_none_or(|(_, now)| now < r)
        {
            self.last_forecast = Some((at, r));
        }
    }

    /// Takes what an outage is to hold from `combined`, the memory that shaped the decision of
    /// several metrics (`several`): each metric's planner holds the count the combination
    /// decided when its own metric is lost, not a count of its own that was never asked for.
    pub(crate) fn hold_as(&mut self, combined: &Memory) {
        self.last_trusted = combined.last_trusted;
        self.last_forecast = combined.last_forecast;
    }
}

/// Which term decided the replica count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The live load needs this many replicas.
    Reactive,
    /// The forecast peak within the lead time, with its margin, needs this many.
    Forecast(Basis),
    /// A peak window is open, or opens within the lead time.
    PeakWindow(String),
    /// A calendar event is under way, or starts within the lead time.
    Event(String),
    /// Capped by a peak window's or an event's `maxReplicas`.
    ScheduledMaximum(Source),
    /// Raised to `minReplicas`.
    MinReplicas,
    /// Capped at `maxReplicas`.
    MaxReplicas,
    /// Kept by a stabilization window.
    Stabilized,
    /// Held back by a rate-limit policy.
    RateLimited,
    /// The metrics are unavailable: holding the current replicas (or the last trustworthy forecast).
    Hold,
}

impl Reason {
    /// The word shown in `status.reason` and the `Reason` printer column.
    pub fn as_str(&self) -> &'static str {
        match self {
            Reason::Reactive => "Reactive",
            Reason::Forecast(_) => "Forecast",
            Reason::PeakWindow(_) => "PeakWindow",
            Reason::Event(_) => "Event",
            Reason::ScheduledMaximum(_) => "ScheduledMaximum",
            Reason::MinReplicas => "MinReplicas",
            Reason::MaxReplicas => "MaxReplicas",
            Reason::Stabilized => "Stabilized",
            Reason::RateLimited => "RateLimited",
            Reason::Hold => "Hold",
        }
    }
}

/// The decision and the figures behind it.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub desired_replicas: u32,
    pub reason: Reason,
    /// The floor for an HPA that scales the workload: the forecast and the peak windows, never
    /// the live load or the current count (the HPA acts on those itself), within the bounds.
    pub floor_replicas: u32,
    /// The live load, if observed.
    pub load: Option<f64>,
    pub reactive_replicas: Option<u32>,
    /// What the sustained live load needs: the live floor, which no decision stays below
    /// (within the bounds and a schedule's ceiling).
    pub live_replicas: Option<u32>,
    pub forecast_replicas: Option<u32>,
    /// The forecast peak load in `[now, now + leadTime]` without margin, when a forecast takes
    /// part in the decision.
    pub forecast_load: Option<f64>,
    /// The margins and what their calibration found; `None` until there is a day of record.
    pub calibration: Option<Calibration>,
    pub scheduled: Option<ScheduledFloor>,
    /// The schedule's ceiling in force, if any.
    pub cap: Option<ScheduledCap>,
    /// The calendar exclusion in force, if any (peak windows are off).
    pub excluded: Option<String>,
    /// False when the decision was taken without a live load.
    pub metrics_available: bool,
    /// How far back the history the forecast learned from reaches (set by the planner).
    pub observed_history: Duration,
    /// The quiet window (`minReplicas: 0`) in force, and whether and why the workload is at
    /// zero or awake; `None` outside quiet windows.
    pub quiet: Option<QuietHours>,
    /// With several metrics (`spec.metrics`), the one whose proposal decided (`several`): the
    /// figures above are its own. `None` for a spec with one metric.
    pub metric: Option<String>,
}

impl Decision {
    /// A sentence on why this count: for Events and logs.
    pub fn explain(&self) -> String {
        match &self.metric {
            Some(m) => format!("metric {m:?}: {}", self.explain_term()),
            None => self.explain_term(),
        }
    }

    /// `explain` without the metric's name.
    fn explain_term(&self) -> String {
        // In a quiet window while the load is quiet: at zero, or on the way there.
        if let Some(q) = self.quiet.as_ref().filter(|q| q.asks_zero()) {
            return q.explain();
        }
        match &self.reason {
            Reason::Reactive => format!(
                "the live load {:.1} needs it",
                self.load.unwrap_or_default()
            ),
            Reason::Forecast(b) => format!(
                "the {} expects a peak of {:.1} within the lead time",
                b.name(),
                self.forecast_load.unwrap_or_default()
            ),
            Reason::PeakWindow(w) => format!("peak window {w:?}"),
            Reason::Event(e) => format!("event {e:?}"),
            Reason::ScheduledMaximum(s) => format!("capped by {s}'s maxReplicas"),
            Reason::MinReplicas => "minReplicas".into(),
            Reason::MaxReplicas => "capped at maxReplicas".into(),
            Reason::Stabilized => "held by the stabilization window".into(),
            Reason::RateLimited => "limited by the scaling policy".into(),
            Reason::Hold => "metrics unavailable: holding".into(),
        }
    }

    /// Whether a calibrated forecast takes part in the decision.
    pub fn forecast_used(&self) -> bool {
        self.calibration
            .is_some_and(|c| c.margins.basis.forecasts())
    }
}

/// The load a decision provisions for `load` with the calibrated `margins` and the spec's fixed
/// headroom, in the metric's unit.
pub fn provisioned_load(spec: &ValidatedSpec, margins: &Margins, load: f64) -> f64 {
    margins.provision(load, spec.target_per_replica) * (1.0 + spec.headroom)
}

/// Decides the replica count at `now`: what the terms ask for (`propose`), shaped by the
/// bounds and `behavior` (`shape`).
pub fn decide(
    spec: &ValidatedSpec,
    inputs: Inputs<'_>,
    memory: &mut Memory,
    now: DateTime<Utc>,
) -> Decision {
    match propose(spec, inputs, memory, now) {
        Proposal::Hold(d) => *d,
        Proposal::Ask(asked) => shape(spec, *asked, memory, now),
    }
}

/// What one metric's terms ask for at `now`, before the bounds and `behavior` shape it. With
/// several metrics each proposes on its own and `several` shapes the highest proposal once, as
/// the HorizontalPodAutoscaler applies its behavior once to the highest metric's count.
#[derive(Clone, Debug)]
pub enum Proposal {
    /// No live load: the hold, final (no behavior applies to it; see `hold`).
    Hold(Box<Decision>),
    /// The terms' ask, to be shaped.
    Ask(Box<Asked>),
}

impl Proposal {
    /// The replica count proposed before the bounds and `behavior` (a hold's count as decided;
    /// 0 while a quiet window asks for zero): what `several` compares across metrics.
    pub fn replicas(&self) -> u32 {
        match self {
            Proposal::Hold(d) => d.desired_replicas,
            Proposal::Ask(a) => a.replicas(),
        }
    }
}

/// A proposal with a live load (`Proposal::Ask`): the ask and everything `shape` needs.
#[derive(Clone, Debug)]
pub struct Asked {
    ask: Ask,
    /// The bounds in force (`bounds_in_force`, the lower one 0 once a quiet window has cooled).
    bounds: (u32, u32),
    quiet: Option<QuietHours>,
    /// What `behavior::shape` lets through at once (`unlimited`).
    foresight: u32,
    load: f64,
    calibration: Option<Calibration>,
    scheduled: Option<ScheduledFloor>,
    cap: Option<ScheduledCap>,
    excluded: Option<String>,
    current_replicas: u32,
}

impl Asked {
    /// The count asked for before the bounds: 0 while the quiet term asks for zero.
    pub fn replicas(&self) -> u32 {
        match self.asks_zero() {
            true => 0,
            false => self.ask.replicas,
        }
    }

    fn asks_zero(&self) -> bool {
        self.quiet.as_ref().is_some_and(|q| q.asks_zero())
    }

    /// The term that asked for `replicas` (before the bounds and `behavior`).
    pub fn reason(&self) -> &Reason {
        &self.ask.reason
    }

    /// The live load this proposal read.
    pub fn load(&self) -> f64 {
        self.load
    }

    /// What the forecast (or a declared event) needs with its margins, and the load behind it.
    pub fn forecast(&self) -> (Option<u32>, Option<f64>) {
        (self.ask.forecast_replicas, self.ask.forecast_load)
    }

    /// What the live load needs with the basis' margins, and what the sustained load needs.
    pub fn reactive(&self) -> (u32, Option<u32>) {
        (self.ask.reactive, self.ask.live_replicas)
    }

    /// The calibration the proposal was made with.
    pub fn calibration(&self) -> Option<&Calibration> {
        self.calibration.as_ref()
    }

    /// A hold (a metric without a live load) among proposals that have one: its count, which
    /// is never below the current one, asked for and let through at once — so a metric that
    /// cannot be read never lets the others scale the workload down, as the HPA refuses to
    /// scale down while a metric is invalid, and never holds back a scale-up they ask for.
    pub fn of_hold(spec: &ValidatedSpec, hold: &Decision, like: &Asked) -> Asked {
        let bounds = bounds_in_force(spec, like.cap.as_ref());
        Asked {
            ask: Ask {
                replicas: hold.desired_replicas,
                reason: Reason::Hold,
                reactive: 0,
                live_replicas: None,
                forecast_replicas: None,
                forecast_load: None,
            },
            // A hold never goes to zero: its lower bound is `minReplicas` whatever the others'.
            bounds,
            quiet: None,
            foresight: hold.desired_replicas.min(bounds.1),
            load: like.load,
            calibration: None,
            scheduled: like.scheduled.clone(),
            cap: like.cap.clone(),
            excluded: like.excluded.clone(),
            current_replicas: like.current_replicas,
        }
    }

    /// The proposals of several metrics as one, `deciding` (an index into `all`) the highest:
    /// its ask and reason; the highest of the others' figures where the combination needs them
    /// (what is let through at once, the forecast floor an HPA is given); the lower bound the
    /// highest (a quiet window goes to zero only when every metric is quiet), the upper the
    /// same for all. `all` must not be empty.
    pub fn combine(all: &[Asked], deciding: usize) -> Asked {
        let mut c = all[deciding].clone();
        c.bounds.0 = all.iter().map(|a| a.bounds.0).max().unwrap_or(c.bounds.0);
        c.foresight = all.iter().map(|a| a.foresight).max().unwrap_or(c.foresight);
        c.ask.forecast_replicas = all.iter().filter_map(|a| a.ask.forecast_replicas).max();
        c.ask.live_replicas = all.iter().filter_map(|a| a.ask.live_replicas).max();
        // Zero only when every metric asks for it; otherwise the quiet term shown is the first
        // awake metric's (why the workload is not at zero).
        if !all.iter().all(Asked::asks_zero) {
            c.quiet = all
                .iter()
                .find(|a| !a.asks_zero())
                .and_then(|a| a.quiet.clone());
        }
        c
    }
}

/// What the terms ask for at `now` (`Proposal`): the basis, the live floor, a declared event,
/// the schedule's floor and the quiet term; without a live load, the hold.
pub fn propose(
    spec: &ValidatedSpec,
    inputs: Inputs<'_>,
    memory: &mut Memory,
    now: DateTime<Utc>,
) -> Proposal {
    let scheduled = inputs.scheduled.floor.clone();
    let cap = inputs.scheduled.cap.clone();
    let bounds = bounds_in_force(spec, cap.as_ref());
    let Some(load) = inputs.load else {
        // Unknown load is not zero load: a hold never goes to zero, and wakes a workload at
        // zero to `minReplicas` (`quiet`).
        let quiet = quiet::assess(
            spec,
            inputs.scheduled.zero.as_ref(),
            scheduled.as_ref(),
            None,
            &mut memory.quiet,
            now,
        );
        let mut d = hold(
            spec,
            bounds,
            inputs.current_replicas,
            scheduled,
            memory,
            now,
        );
        d.cap = cap;
        d.excluded = inputs.scheduled.excluded.clone();
        d.quiet = quiet;
        return Proposal::Hold(Box::new(d));
    };

    let ask = basis_ask(spec, &inputs, load);
    let ask = serve_live_load(spec, &inputs, load, ask);
    let ask = hold_zero_at_passing_level(&inputs, ask);
    let ask = provision_event(spec, &inputs, ask);
    let ask = raise_to_schedule(scheduled.as_ref(), ask);
    let quiet = quiet::assess(
        spec,
        inputs.scheduled.zero.as_ref(),
        scheduled.as_ref(),
        Some(quiet_reading(&inputs, load, &ask)),
        &mut memory.quiet,
        now,
    );
    let (ask, bounds) = ask_for_zero(quiet.as_ref(), ask, bounds);
    let foresight = unlimited(spec, &ask, scheduled.as_ref(), bounds);
    Proposal::Ask(Box::new(Asked {
        ask,
        bounds,
        quiet,
        foresight,
        load,
        calibration: inputs.calibration.copied(),
        scheduled,
        cap,
        excluded: inputs.scheduled.excluded.clone(),
        current_replicas: inputs.current_replicas,
    }))
}

/// The decision from a proposal: the ask within the bounds, then `behavior` with the HPA's
/// algorithm, and the reason for what came out.
pub fn shape(
    spec: &ValidatedSpec,
    asked: Asked,
    memory: &mut Memory,
    now: DateTime<Utc>,
) -> Decision {
    let Asked {
        ask,
        bounds,
        quiet,
        foresight,
        load,
        calibration,
        scheduled,
        cap,
        excluded,
        current_replicas,
    } = asked;
    // A zero asked for goes to `behavior` as it is, also while the cooldown keeps the lower
    // bound up: the stabilization window is to remember the zeros (`ask_for_zero`).
    let (bounded, bound_reason) = match quiet.as_ref().is_some_and(|q| q.asks_zero()) {
        true => (0, None),
        false => clamp(spec, ask.replicas),
    };
    let bounded = bounded.min(bounds.1);
    let (desired, limited) = behavior::shape(
        &spec.behavior,
        bounds,
        current_replicas,
        bounded,
        foresight,
        &mut memory.behavior,
        now,
    );
    let reason = shaped_reason(
        spec,
        bounds,
        cap.as_ref(),
        &ask,
        bound_reason,
        desired,
        limited,
    );
    // Quiet, on the way to zero: held by the cooldown or the stabilization window.
    let reason = match quiet.as_ref().is_some_and(|q| q.asks_zero()) && desired > 0 {
        true if limited == Some(Limited::RateLimited) => Reason::RateLimited,
        true => Reason::Stabilized,
        false => reason,
    };
    remember(spec, memory, desired, foresight, ask.forecast_replicas, now);
    let floor_replicas = floor(spec, ask.forecast_replicas, scheduled.as_ref()).min(bounds.1);
    Decision {
        desired_replicas: desired,
        reason,
        floor_replicas,
        load: Some(load),
        reactive_replicas: Some(ask.reactive),
        live_replicas: ask.live_replicas,
        forecast_replicas: ask.forecast_replicas,
        forecast_load: ask.forecast_load,
        calibration,
        scheduled,
        cap,
        excluded,
        metrics_available: true,
        observed_history: Duration::zero(),
        quiet,
        metric: None,
    }
}

/// What the quiet term reads: the live load as the decision read it, and the highest forecast
/// of the peak load within the lead time — the daily and weekly forecasts whatever basis the
/// calibration chose (any of them seeing load ahead is reason enough to stay awake), and a
/// declared event's.
fn quiet_reading(inputs: &Inputs<'_>, load: f64, ask: &Ask) -> quiet::Reading {
    let forecast = [inputs.daily, inputs.weekly]
        .into_iter()
        .chain(inputs.event.map(|e| e.load))
        .chain(ask.forecast_load)
        .filter(|f| f.is_finite())
        .reduce(f64::max);
    quiet::Reading {
        load,
        sustained: inputs.sustained,
        held_zero: inputs.held_zero,
        forecast,
    }
}

/// While the quiet term asks for zero (the load is quiet), the ask is zero, so that the
/// scale-down stabilization window sees zeros from the first quiet minute; the lower bound
/// drops to zero once the load has been quiet for the cooldown (`quiet::COOLDOWN`), and
/// `behavior` then shapes the steps to zero as any scale-down (its stabilization window and
/// rate limits). The term that decides it is the quiet window. Otherwise nothing changes, and
/// a workload at zero is back at `minReplicas` at once (the lower bound holds at once).
fn ask_for_zero(quiet: Option<&QuietHours>, mut ask: Ask, bounds: (u32, u32)) -> (Ask, (u32, u32)) {
    match quiet.filter(|q| q.asks_zero()) {
        Some(q) => {
            ask.replicas = 0;
            ask.reason = match &q.source {
                Source::PeakWindow(w) => Reason::PeakWindow(w.clone()),
                Source::Event(e) => Reason::Event(e.clone()),
            };
            (ask, (if q.cooled { 0 } else { bounds.0 }, bounds.1))
        }
        None => (ask, bounds),
    }
}

/// What the terms of a decision ask for before the bounds and `behavior` shape it, and the
/// figures behind it: `decide` builds it a term at a time, each term a step of its own, so that
/// the order in which they may override each other reads top to bottom.
#[derive(Clone, Debug)]
struct Ask {
    /// The replica count asked for so far.
    replicas: u32,
    /// The term that asked for it.
    reason: Reason,
    /// What the live load needs with the basis' margins.
    reactive: u32,
    /// What the sustained live load needs: the live floor.
    live_replicas: Option<u32>,
    /// What the forecast (or an event's expected load) needs with its margins.
    forecast_replicas: Option<u32>,
    /// The load behind `forecast_replicas`, without margin.
    forecast_load: Option<f64>,
}

/// The bounds a decision is held within: `minReplicas` and `maxReplicas`, lowered to the
/// schedule's ceiling while one is in force, so that the ceiling holds at once like
/// `maxReplicas` does.
fn bounds_in_force(spec: &ValidatedSpec, cap: Option<&ScheduledCap>) -> (u32, u32) {
    // The schedule's ceiling is a bound like `maxReplicas` while it is in force (validation
    // keeps it at or above `minReplicas`).
    (
        spec.min_replicas,
        cap.map_or(spec.max_replicas, |c| c.max_replicas.min(spec.max_replicas))
            .max(spec.min_replicas),
    )
}

/// The replicas `load` needs before a calibration has chosen margins: what an HPA at its
/// customary target would give it, so that a new PredictiveScaler starts no worse than one.
fn uncalibrated_replicas(spec: &ValidatedSpec, load: f64) -> u32 {
    let headroom = 1.0 + spec.headroom;
    super::replicas_for(
        load * headroom.max(UNCALIBRATED_MARGIN),
        spec.target_per_replica,
    )
}

/// Where a decision starts: what the calibrated basis asks for with its margins, or the live
/// load with an HPA-like margin until there is a calibration.
fn basis_ask(spec: &ValidatedSpec, inputs: &Inputs<'_>, load: f64) -> Ask {
    let replicas_for = |load: f64| super::replicas_for(load, spec.target_per_replica);
    // The basis and margins the objective calls for; until they are calibrated, the live load
    // with an HPA-like margin.
    match inputs.calibration {
        Some(cal) => {
            let m = cal.margins;
            let provision = |load: f64| replicas_for(provisioned_load(spec, &m, load));
            let foresight = m.basis.foresight(inputs.daily, inputs.weekly);
            let base = m.basis.load(load, inputs.daily, inputs.weekly);
            // A forecast missing this minute (a gap in its history): the live load.
            let base = if base.is_finite() { base } else { load };
            let reason = if foresight.is_finite() && foresight >= load {
                Reason::Forecast(m.basis)
            } else {
                Reason::Reactive
            };
            Ask {
                replicas: provision(base),
                reason,
                reactive: provision(load),
                live_replicas: None,
                forecast_replicas: foresight.is_finite().then(|| provision(foresight)),
                forecast_load: foresight.is_finite().then_some(foresight),
            }
        }
        None => {
            let r = uncalibrated_replicas(spec, load);
            Ask {
                replicas: r,
                reason: Reason::Reactive,
                reactive: r,
                live_replicas: None,
                forecast_replicas: None,
                forecast_load: None,
            }
        }
    }
}

/// The live load is always served (see the module's documentation): the ask is raised to the
/// live floor, or to what a newest sample alone needs, whatever the basis chose.
fn serve_live_load(spec: &ValidatedSpec, inputs: &Inputs<'_>, load: f64, mut ask: Ask) -> Ask {
    let replicas_for = |load: f64| super::replicas_for(load, spec.target_per_replica);
    // The live floor: whatever the basis, never below what the sustained live load needs.
    ask.live_replicas = inputs
        .sustained
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(replicas_for);
    // A newest sample no other confirms yet (the first after believed zeros or a gap): what it
    // needs is asked for, but within the scale-up limit, as the HPA acts on one sample — not
    // as a floor, which the limit does not hold back.
    let unconfirmed = inputs
        .sustained
        .is_none()
        .then_some(load)
        .filter(|l| l.is_finite() && *l >= 0.0)
        .map(replicas_for);
    if let Some(n) = ask.live_replicas.or(unconfirmed)
        && n > ask.replicas
    {
        ask.replicas = n;
        ask.reason = Reason::Reactive;
    }
    ask
}

/// A zero held at the level before it keeps the count from falling on a drop that has not
/// persisted, but is no reason on its own to raise it.
fn hold_zero_at_passing_level(inputs: &Inputs<'_>, mut ask: Ask) -> Ask {
    // A held zero reads as the level before it so that the count does not fall on a drop that
    // has not persisted. Held at a passing level (one that did not last a level window, or that
    // the zeros did not directly follow: `forecast::zero_blips`), it is no reason to raise the
    // count: a level from before a day's absence (two bogus samples, say) otherwise became a
    // live floor the scale-up limit does not hold back, 2 → 100 on zeros. What is known ahead
    // still raises it. Held at a lasting level, it is that level, and its live floor stands: a
    // busy workload whose count a deploy reset to 2 at the first zero is at 40 at once, not
    // after the zeros.
    if inputs.held_zero {
        let keep = inputs
            .current_replicas
            .max(ask.forecast_replicas.unwrap_or(0));
        ask.replicas = ask.replicas.min(keep);
        ask.live_replicas = ask.live_replicas.map(|n| n.min(keep));
    }
    ask
}

/// An event the SRE declared with a `loadMultiplier` is provisioned for whatever basis the
/// calibration chose; it decides the count when it asks for at least as much as the rest.
fn provision_event(spec: &ValidatedSpec, inputs: &Inputs<'_>, mut ask: Ask) -> Ask {
    // An event the SRE declared with a multiplier is provisioned for even when the calibration
    // chose the live load (which cannot see it coming), with the same margins.
    if let Some(e) = inputs.event.filter(|e| e.load.is_finite()) {
        let r = match inputs.calibration {
            Some(cal) => super::replicas_for(
                provisioned_load(spec, &cal.margins, e.load),
                spec.target_per_replica,
            ),
            None => uncalibrated_replicas(spec, e.load),
        };
        if r > ask.forecast_replicas.unwrap_or(0) {
            ask.forecast_replicas = Some(r);
            ask.forecast_load = Some(e.load);
        }
        if r >= ask.replicas {
            ask.replicas = r;
            ask.reason = Reason::Event(e.name.clone());
        }
    }
    ask
}

/// A peak window's or an event's floor raises the ask, and decides it when it asks for at least
/// as much as the rest.
fn raise_to_schedule(scheduled: Option<&ScheduledFloor>, mut ask: Ask) -> Ask {
    // The schedule's floor wins a tie: it is the reason the SRE wrote down.
    if let Some(s) = scheduled
        && s.min_replicas >= ask.replicas
    {
        ask.replicas = s.min_replicas;
        ask.reason = match &s.source {
            Source::PeakWindow(w) => Reason::PeakWindow(w.clone()),
            Source::Event(e) => Reason::Event(e.clone()),
        };
    }
    ask
}

/// The part of the ask `behavior::shape` lets through at once, within the bounds: the terms a
/// bogus sample cannot move.
fn unlimited(
    spec: &ValidatedSpec,
    ask: &Ask,
    scheduled: Option<&ScheduledFloor>,
    bounds: (u32, u32),
) -> u32 {
    // What the default scale-up limit (a guard against one bogus sample) does not hold back: a
    // peak window's floor, a seasonal forecast (its level is a quarter hour's mean, not one
    // sample), and the live floor (a level two samples confirm, which one bogus sample does
    // not move — not even after zeros or a gap).
    clamp(
        spec,
        ask.forecast_replicas
            .unwrap_or(0)
            .max(scheduled.map_or(0, |s| s.min_replicas))
            .max(ask.live_replicas.unwrap_or(0)),
    )
    .0
    .min(bounds.1)
}

/// The reason shown for the shaped count: the term that asked for it, unless a bound, a
/// stabilization window, a rate limit or the schedule's ceiling is what held it where it is.
fn shaped_reason(
    spec: &ValidatedSpec,
    bounds: (u32, u32),
    cap: Option<&ScheduledCap>,
    ask: &Ask,
    bound_reason: Option<Reason>,
    desired: u32,
    limited: Option<Limited>,
) -> Reason {
    let mut reason = bound_reason.unwrap_or_else(|| ask.reason.clone());
    match limited {
        Some(Limited::Stabilized) => reason = Reason::Stabilized,
        Some(Limited::RateLimited) => reason = Reason::RateLimited,
        None => {}
    }
    // The ceiling decided if it holds the count below what the other terms asked for.
    if let Some(c) = cap
        && desired == bounds.1
        && (ask.replicas > bounds.1 || limited.is_some())
        && bounds.1 < spec.max_replicas
    {
        reason = Reason::ScheduledMaximum(c.source.clone());
    }
    reason
}

/// Remembers what a metrics outage is to hold (`hold`).
fn remember(
    spec: &ValidatedSpec,
    memory: &mut Memory,
    desired: u32,
    foresight: u32,
    forecast_replicas: Option<u32>,
    now: DateTime<Utc>,
) {
    // What an outage holds (`hold`): the count granted and, where the default scale-up limit
    // lets it through anyway, what was known ahead or confirmed (`foresight`). The rest of the
    // ask stood on the newest sample alone: remembered whole, one bogus sample's ask (its
    // replicas, up to maxReplicas) was granted in full the minute the series went quiet, past
    // the limit that had paced it.
    let held = if spec.behavior.scale_up.default_policies {
        desired.max(foresight)
    } else {
        desired
    };
    memory.last_trusted = Some((now, held));
    if let Some(f) = forecast_replicas {
        memory.last_forecast = Some((now, f));
    }
}

/// Without a live load nothing is scaled down because of the failure: hold the higher of the
/// current replicas and the last trustworthy forecast (for a bounded time), and any peak floor.
fn hold(
    spec: &ValidatedSpec,
    bounds: (u32, u32),
    current: u32,
    scheduled: Option<ScheduledFloor>,
    memory: &mut Memory,
    now: DateTime<Utc>,
) -> Decision {
    let remembered = memory
        .last_trusted
        .filter(|(t, _)| now - *t <= HOLD_FORECAST_FOR)
        .map(|(_, r)| r)
        .unwrap_or(0);
    let scheduled_floor = scheduled.as_ref().map_or(0, |s| s.min_replicas);
    let (desired, _) = clamp(spec, current.max(remembered).max(scheduled_floor));
    // Never below the current count (within maxReplicas): a failure is no reason to scale down.
    // A schedule's ceiling still holds: it is a matter of the clock, not of the metrics.
    let desired = desired.max(current.min(spec.max_replicas)).min(bounds.1);
    let remembered_forecast = memory
        .last_forecast
        .filter(|(t, _)| now - *t <= HOLD_FORECAST_FOR)
        .map(|(_, r)| r);
    Decision {
        desired_replicas: desired,
        reason: Reason::Hold,
        floor_replicas: floor(spec, remembered_forecast, scheduled.as_ref()).min(bounds.1),
        load: None,
        reactive_replicas: None,
        live_replicas: None,
        forecast_replicas: None,
        forecast_load: None,
        calibration: None,
        scheduled,
        cap: None,
        excluded: None,
        metrics_available: false,
        observed_history: Duration::zero(),
        quiet: None,
        metric: None,
    }
}

/// The floor an HPA is given: the forecast and the schedule, within the bounds.
fn floor(spec: &ValidatedSpec, forecast: Option<u32>, scheduled: Option<&ScheduledFloor>) -> u32 {
    let wanted = forecast
        .unwrap_or(0)
        .max(scheduled.map_or(0, |s| s.min_replicas));
    clamp(spec, wanted).0
}

fn clamp(spec: &ValidatedSpec, replicas: u32) -> (u32, Option<Reason>) {
    if replicas < spec.min_replicas {
        (spec.min_replicas, Some(Reason::MinReplicas))
    } else if replicas > spec.max_replicas {
        (spec.max_replicas, Some(Reason::MaxReplicas))
    } else {
        (replicas, None)
    }
}
