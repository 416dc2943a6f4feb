//! The decision: how many replicas to ask for now, and why.
//!
//! `decide` is pure: the spec, what has been observed, the memory of earlier decisions and the
//! time are all passed in. The live controller and the backtest call the same function, so a
//! backtest of a spec is a preview of what the operator will do with it.
//!
//! The replica count is `max(reactive, forecast, scheduled floor)`, clamped to
//! `[minReplicas, maxReplicas]`, then shaped by `behavior` with the HorizontalPodAutoscaler's own
//! algorithm (stabilization windows, then rate-limit policies), so that SREs' intuitions carry over.

use std::collections::VecDeque;

use chrono::{DateTime, Duration, Utc};

use crate::api::{PolicyType, ScalingRules, SelectPolicy, ValidatedSpec};
use crate::forecast::{self, Calibration, ErrorTracker, ModelConfig, Predictor, View};
use crate::schedule::{self, ScheduledFloor};

/// Margin on the reactive term while no forecast is calibrated yet: the HPA's customary 80 %
/// utilization target, so that a new PredictiveScaler is no worse than the HPA it replaces.
const UNCALIBRATED_MARGIN: f64 = 1.25;

/// How stale the live load may be before it no longer counts as observed.
const MAX_LOAD_AGE: Duration = Duration::minutes(5);

/// How long the last trustworthy forecast is held while the metrics are unavailable; after it,
/// prescaler holds the current replicas until the metrics return.
pub const HOLD_FORECAST_FOR: Duration = Duration::minutes(30);

/// What the caller observed for this decision.
#[derive(Clone, Copy, Debug)]
pub struct Observations<'a> {
    /// The load history up to the newest sample; `None` when the source failed.
    pub load: Option<View<'a>>,
    /// The replica count the target has now.
    pub current_replicas: u32,
}

/// What `decide` remembers between calls. Lost on restart without harm: the forecast's error
/// record can be rebuilt from history (`ErrorTracker::warm_up`), and empty behaviour records only
/// mean that stabilization starts afresh, as it does for the HPA.
#[derive(Clone, Debug, Default)]
pub struct Memory {
    pub forecast: ErrorTracker,
    recommendations: VecDeque<(DateTime<Utc>, u32)>,
    scale_events: VecDeque<(DateTime<Utc>, i64)>,
    last_trusted: Option<(DateTime<Utc>, u32)>,
}

/// Which term decided the replica count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The live load needs this many replicas.
    Reactive,
    /// The forecast peak within the lead time, with its margin, needs this many.
    Forecast(Predictor),
    /// A peak window is open, or opens within the lead time.
    PeakWindow(String),
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
    /// The live load, if observed.
    pub load: Option<f64>,
    pub reactive_replicas: Option<u32>,
    pub forecast_replicas: Option<u32>,
    /// The forecast peak load in `[now, now + leadTime]` without margin.
    pub forecast_load: Option<f64>,
    /// The calibration of the predictor used, if the forecast is reliable.
    pub calibration: Option<Calibration>,
    /// The best calibration, when its recent error put it beyond `maxErrorPercent`.
    pub demoted: Option<Calibration>,
    pub scheduled: Option<ScheduledFloor>,
    /// False when the decision was taken without a live load.
    pub metrics_available: bool,
}

impl Decision {
    /// A sentence on why this count: for Events and logs.
    pub fn explain(&self) -> String {
        match &self.reason {
            Reason::Reactive => format!(
                "the live load {:.1} needs it",
                self.load.unwrap_or_default()
            ),
            Reason::Forecast(p) => format!(
                "the {} forecast expects a peak of {:.1} within the lead time",
                p.name(),
                self.forecast_load.unwrap_or_default()
            ),
            Reason::PeakWindow(w) => format!("peak window {w:?}"),
            Reason::MinReplicas => "minReplicas".into(),
            Reason::MaxReplicas => "capped at maxReplicas".into(),
            Reason::Stabilized => "held by the stabilization window".into(),
            Reason::RateLimited => "limited by the scaling policy".into(),
            Reason::Hold => "metrics unavailable: holding".into(),
        }
    }

    /// Whether a calibrated forecast took part in the decision.
    pub fn forecast_reliable(&self) -> bool {
        self.calibration.is_some()
    }
}

/// Decides the replica count at `now`.
pub fn decide(
    spec: &ValidatedSpec,
    model: &ModelConfig,
    observed: Observations<'_>,
    memory: &mut Memory,
    now: DateTime<Utc>,
) -> Decision {
    let lead = Duration::from_std(spec.lead_time).unwrap_or(Duration::minutes(6));
    let c = spec.target_per_replica;
    let replicas_for = |load: f64| -> u32 { (load / c).ceil().clamp(0.0, u32::MAX as f64) as u32 };
    let scheduled = schedule::floor(&spec.peak_windows, now, lead);

    let load = observed.load.and_then(|v| {
        (now - v.end_time() <= MAX_LOAD_AGE)
            .then(|| v.last_value(MAX_LOAD_AGE))
            .flatten()
    });
    let (Some(view), Some(load)) = (observed.load, load) else {
        return hold(spec, observed.current_replicas, scheduled, memory, now);
    };

    // The forecast: every predictor's peak for the lead-time window, scored later against what
    // happens; the one whose calibrated provision had the lowest quantile loss is used.
    let predictors = forecast::predictors_for(&spec.seasonality);
    let predictions = forecast::predict_all(model, &predictors, view, now, now + lead);
    let target = forecast::Target {
        lead,
        quantile: spec.target_quantile,
        unit: c,
    };
    memory
        .forecast
        .update(model, view, now, target, &predictions);
    let best = memory
        .forecast
        .calibrations()
        .iter()
        .filter_map(|cal| {
            let p = predictions.iter().find(|(p, _)| *p == cal.predictor)?.1;
            Some((*cal, p))
        })
        .min_by(|a, b| a.0.loss.total_cmp(&b.0.loss));
    // A forecast that has been too wrong lately is not used until it is accurate again.
    let demoted = best.filter(|(cal, _)| cal.error_percent > spec.max_error * 100.0);
    let best = best.filter(|_| demoted.is_none());

    let headroom = 1.0 + spec.headroom;
    let reactive_margin = if best.is_some() {
        headroom
    } else {
        headroom.max(UNCALIBRATED_MARGIN)
    };
    let reactive = replicas_for(load * reactive_margin);
    let forecast_replicas =
        best.map(|(cal, peak)| replicas_for(cal.provision(peak, spec.max_margin) * headroom));

    // The highest term wins; on a tie the forecast and the schedule are named, as they are the
    // reason prescaler exists.
    let mut recommendation = reactive;
    let mut reason = Reason::Reactive;
    if let (Some(f), Some((cal, _))) = (forecast_replicas, best)
        && f >= recommendation
    {
        recommendation = f;
        reason = Reason::Forecast(cal.predictor);
    }
    if let Some(s) = &scheduled
        && s.min_replicas >= recommendation
    {
        recommendation = s.min_replicas;
        reason = Reason::PeakWindow(s.window.clone());
    }
    let (bounded, bound_reason) = clamp(spec, recommendation);
    if let Some(r) = bound_reason {
        reason = r;
    }

    let (desired, behavior_reason) = shape(spec, observed.current_replicas, bounded, memory, now);
    if let Some(r) = behavior_reason {
        reason = r;
    }
    if let Some(f) = forecast_replicas {
        memory.last_trusted = Some((now, f.max(reactive)));
    }
    Decision {
        desired_replicas: desired,
        reason,
        load: Some(load),
        reactive_replicas: Some(reactive),
        forecast_replicas,
        forecast_load: best.map(|(_, p)| p),
        calibration: best.map(|(c, _)| c),
        demoted: demoted.map(|(c, _)| c),
        scheduled,
        metrics_available: true,
    }
}

/// Without a live load nothing is scaled down because of the failure: hold the higher of the
/// current replicas and the last trustworthy forecast (for a bounded time), and any peak floor.
fn hold(
    spec: &ValidatedSpec,
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
    let floor = scheduled.as_ref().map_or(0, |s| s.min_replicas);
    let (desired, _) = clamp(spec, current.max(remembered).max(floor));
    // Never below the current count, even if that is above maxReplicas: a failure is no reason
    // to act. The next decision with metrics brings it back within bounds.
    let desired = desired.max(current.min(spec.max_replicas));
    Decision {
        desired_replicas: desired,
        reason: Reason::Hold,
        load: None,
        reactive_replicas: None,
        forecast_replicas: None,
        forecast_load: None,
        calibration: None,
        demoted: None,
        scheduled,
        metrics_available: false,
    }
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

/// Applies `spec.behavior` to a recommendation and records it, as the HPA does on each sync.
/// The backtest's HPA baseline uses this too, so both strategies share one implementation.
pub fn shape_replicas(
    spec: &ValidatedSpec,
    current: u32,
    recommendation: u32,
    memory: &mut Memory,
    now: DateTime<Utc>,
) -> u32 {
    shape(spec, current, recommendation, memory, now).0
}

/// Applies stabilization and rate limits as the HPA does (`stabilizeRecommendationWithBehaviors`
/// and `convertDesiredReplicasWithBehaviorRate` in its controller), and records the result.
fn shape(
    spec: &ValidatedSpec,
    current: u32,
    recommendation: u32,
    memory: &mut Memory,
    now: DateTime<Utc>,
) -> (u32, Option<Reason>) {
    let up = &spec.behavior.scale_up;
    let down = &spec.behavior.scale_down;
    let up_window = Duration::seconds(up.stabilization_window_seconds.into());
    let down_window = Duration::seconds(down.stabilization_window_seconds.into());
    let keep = up_window.max(down_window);
    while memory
        .recommendations
        .front()
        .is_some_and(|(t, _)| now - *t > keep)
    {
        memory.recommendations.pop_front();
    }

    // Stabilization: up to the lowest recommendation of the up window, down to the highest of
    // the down window.
    let (mut up_rec, mut down_rec) = (recommendation, recommendation);
    for &(t, r) in &memory.recommendations {
        if now - t <= up_window {
            up_rec = up_rec.min(r);
        }
        if now - t <= down_window {
            down_rec = down_rec.max(r);
        }
    }
    memory.recommendations.push_back((now, recommendation));
    let mut stabilized = current;
    if stabilized < up_rec {
        stabilized = up_rec;
    }
    if stabilized > down_rec {
        stabilized = down_rec;
    }
    let mut reason = (stabilized != recommendation).then_some(Reason::Stabilized);

    // Rate limits, relative to the replicas at the start of each policy's period.
    let longest = up
        .policies
        .iter()
        .chain(&down.policies)
        .map(|p| p.period_seconds)
        .max()
        .unwrap_or(0);
    while memory
        .scale_events
        .front()
        .is_some_and(|(t, _)| now - *t > Duration::seconds(longest.into()))
    {
        memory.scale_events.pop_front();
    }
    let mut desired = stabilized;
    if stabilized > current {
        let limit = scale_up_limit(up, current, &memory.scale_events, now).max(current);
        if stabilized > limit {
            desired = limit;
            reason = Some(Reason::RateLimited);
        }
    } else if stabilized < current {
        let limit = scale_down_limit(down, current, &memory.scale_events, now).min(current);
        if stabilized < limit {
            desired = limit;
            reason = Some(Reason::RateLimited);
        }
    }
    if desired != current {
        memory
            .scale_events
            .push_back((now, desired as i64 - current as i64));
    }
    (desired, reason)
}

fn changes_in_period(
    events: &VecDeque<(DateTime<Utc>, i64)>,
    now: DateTime<Utc>,
    period: i32,
    up: bool,
) -> i64 {
    events
        .iter()
        .filter(|(t, _)| now - *t < Duration::seconds(period.into()))
        .map(|(_, d)| *d)
        .filter(|d| if up { *d > 0 } else { *d < 0 })
        .sum()
}

fn scale_up_limit(
    rules: &ScalingRules,
    current: u32,
    events: &VecDeque<(DateTime<Utc>, i64)>,
    now: DateTime<Utc>,
) -> u32 {
    if rules.select_policy == SelectPolicy::Disabled {
        return current;
    }
    if rules.policies.is_empty() {
        return u32::MAX;
    }
    let proposals = rules.policies.iter().map(|p| {
        let start = current as i64 - changes_in_period(events, now, p.period_seconds, true);
        match p.type_ {
            PolicyType::Pods => start + p.value as i64,
            PolicyType::Percent => (start as f64 * (1.0 + p.value as f64 / 100.0)).ceil() as i64,
        }
    });
    let limit = match rules.select_policy {
        SelectPolicy::Min => proposals.min(),
        _ => proposals.max(),
    };
    limit.unwrap_or(i64::MAX).clamp(0, u32::MAX as i64) as u32
}

fn scale_down_limit(
    rules: &ScalingRules,
    current: u32,
    events: &VecDeque<(DateTime<Utc>, i64)>,
    now: DateTime<Utc>,
) -> u32 {
    if rules.select_policy == SelectPolicy::Disabled {
        return current;
    }
    if rules.policies.is_empty() {
        return 0;
    }
    let proposals = rules.policies.iter().map(|p| {
        let start = current as i64 - changes_in_period(events, now, p.period_seconds, false);
        match p.type_ {
            PolicyType::Pods => start - p.value as i64,
            PolicyType::Percent => (start as f64 * (1.0 - p.value as f64 / 100.0)) as i64,
        }
    });
    // `Max` is the policy that allows the largest change: for scaling down, the lowest count.
    let limit = match rules.select_policy {
        SelectPolicy::Min => proposals.max(),
        _ => proposals.min(),
    };
    limit.unwrap_or(0).clamp(0, u32::MAX as i64) as u32
}
