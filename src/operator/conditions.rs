//! The PredictiveScaler's status conditions and which of their changes deserve an Event.
//!
//! Pure: the controller gathers what it found, this module turns it into conditions with reasons
//! and messages a person understands, and keeps `lastTransitionTime` when nothing changed, as the
//! Kubernetes API conventions ask. An Event is due when a condition's status or reason changes —
//! not when only the numbers in its message do — so a steady state makes no Events.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::{
    CalibrationStatus, LeadTimeStatus, MetricStatus, PredictiveScalerStatus, Seasonality,
    ValidatedSpec,
};
use crate::planning::calibration::Calibration;
pub use crate::planning::coverage::HistoryFrom;
use crate::planning::coverage::{self, Coverage};
use crate::planning::forecast::ModelConfig;
use crate::planning::plan::{Decision, Reason};
use crate::planning::several::MetricFigures;
use crate::planning::startup;

pub const READY: &str = "Ready";
pub const METRICS_AVAILABLE: &str = "MetricsAvailable";
pub const FORECAST_RELIABLE: &str = "ForecastReliable";
/// Whether the history read holds all of `forecast.history` (see `planning::coverage`).
pub const HISTORY_AVAILABLE: &str = "HistoryAvailable";
pub const SCALING_LIMITED: &str = "ScalingLimited";
pub const OBJECTIVE_MET: &str = "ObjectiveMet";
pub const MAX_REPLICAS_SUFFICIENT: &str = "MaxReplicasSufficient";
/// With `leadTime: Auto`: True when the target's pods stay not Ready for longer than the lead
/// time — the cluster, not the forecast, is late.
pub const PODS_PENDING: &str = "PodsPending";
/// With `spec.calendar.configMapRefs`: whether the `.ics` files were read and expanded (see
/// `controller::calendar_files`).
pub const CALENDAR_AVAILABLE: &str = "CalendarAvailable";
/// `ScalingLimited`'s reason when a quiet window (`minReplicas: 0`) cannot be honoured: an HPA
/// (or KEDA's) scales the target, and an HPA cannot run at zero. A Warning: the spec asks for
/// what prescaler will not do on this target.
pub const SCALE_TO_ZERO_REFUSED: &str = "ScaleToZeroRefused";

/// Every reason of the `Ready` condition: whether prescaler acts on the target, and how, or why
/// not. One list, so that each is written the same everywhere and documented (the README names
/// each; a test checks it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadyReason {
    /// True: prescaler writes the target's `/scale`.
    Scaling,
    /// True: an HPA scales the target; prescaler holds its `minReplicas` at the forecast floor.
    FloorOnHpa,
    /// True: a KEDA ScaledObject scales the target; prescaler holds its `minReplicaCount`.
    FloorOnScaledObject,
    /// True: mode ForecastOnly; what would be written is told, nothing is.
    ForecastOnly,
    /// True: mode Off; nothing is computed or changed.
    Off,
    /// False: this replica lost the Lease; the new leader acts.
    NotLeader,
    /// False: the spec is out of bounds or does not parse.
    InvalidSpec,
    /// False: the namespace holds `--max-scalers-per-namespace` older scalers.
    TooManyScalers,
    /// False: `scaleTargetRef.namespace` names another namespace.
    CrossNamespaceTarget,
    /// False: an older PredictiveScaler scales the same target.
    AmbiguousTarget,
    /// False: KEDA manages the target's HPA and KEDA support is off.
    KedaManagedTarget,
    /// False: a KEDA ScaledObject scales the target but its HPA does not exist yet.
    WaitingForKedaHpa,
    /// False: the HPA names a KEDA ScaledObject as its owner that does not exist.
    ScaledObjectNotFound,
    /// False: the HPA's owning ScaledObject does not scale this target.
    ScaledObjectMismatch,
    /// False: the target does not exist.
    TargetNotFound,
    /// False: the target's kind has no `/scale` subresource.
    ScaleNotSupported,
    /// False: the target is scaled to zero (without an HPA) or paused.
    ScalingDisabled,
    /// False: the operator's service account lacks a permission.
    Forbidden,
    /// False: the reconcile failed unexpectedly (a panic, caught); retried with backoff.
    InternalError,
}

impl ReadyReason {
    pub const ALL: [ReadyReason; 19] = [
        Self::Scaling,
        Self::FloorOnHpa,
        Self::FloorOnScaledObject,
        Self::ForecastOnly,
        Self::Off,
        Self::NotLeader,
        Self::InvalidSpec,
        Self::TooManyScalers,
        Self::CrossNamespaceTarget,
        Self::AmbiguousTarget,
        Self::KedaManagedTarget,
        Self::WaitingForKedaHpa,
        Self::ScaledObjectNotFound,
        Self::ScaledObjectMismatch,
        Self::TargetNotFound,
        Self::ScaleNotSupported,
        Self::ScalingDisabled,
        Self::Forbidden,
        Self::InternalError,
    ];

    /// As written in the condition.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scaling => "Scaling",
            Self::FloorOnHpa => "FloorOnHPA",
            Self::FloorOnScaledObject => "FloorOnScaledObject",
            Self::ForecastOnly => "ForecastOnly",
            Self::Off => "Off",
            Self::NotLeader => "NotLeader",
            Self::InvalidSpec => "InvalidSpec",
            Self::TooManyScalers => "TooManyScalers",
            Self::CrossNamespaceTarget => "CrossNamespaceTarget",
            Self::AmbiguousTarget => "AmbiguousTarget",
            Self::KedaManagedTarget => "KedaManagedTarget",
            Self::WaitingForKedaHpa => "WaitingForKedaHpa",
            Self::ScaledObjectNotFound => "ScaledObjectNotFound",
            Self::ScaledObjectMismatch => "ScaledObjectMismatch",
            Self::TargetNotFound => "TargetNotFound",
            Self::ScaleNotSupported => "ScaleNotSupported",
            Self::ScalingDisabled => "ScalingDisabled",
            Self::Forbidden => "Forbidden",
            Self::InternalError => "InternalError",
        }
    }

    /// Whether the condition is True with this reason: prescaler acts, or was told not to.
    pub fn is_ready(self) -> bool {
        matches!(
            self,
            Self::Scaling
                | Self::FloorOnHpa
                | Self::FloorOnScaledObject
                | Self::ForecastOnly
                | Self::Off
        )
    }
}

/// One condition as the reconcile found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub type_: &'static str,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

impl Finding {
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: &str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// The `Ready` condition, its status following from `reason`.
    pub fn ready(reason: ReadyReason, message: impl Into<String>) -> Self {
        Self::new(READY, reason.is_ready(), reason.as_str(), message)
    }

    /// Whether an Event should tell about this finding: a problem is a Warning, and so is a
    /// quiet window refused on this target (the spec asks for what will not be done).
    pub fn is_warning(&self) -> bool {
        is_problem(self.type_, self.status)
            || (self.type_ == SCALING_LIMITED && self.reason == SCALE_TO_ZERO_REFUSED)
    }
}

/// Whether a condition of `type_` with `status` reports a problem: `PodsPending` when True,
/// `ScalingLimited` never (it is news, not a fault), every other when False.
pub fn is_problem(type_: &str, status: bool) -> bool {
    match type_ {
        SCALING_LIMITED => false,
        PODS_PENDING => status,
        _ => !status,
    }
}

/// The new condition list, and the findings that changed a condition's status or reason.
pub fn merge(
    previous: &[Condition],
    findings: &[Finding],
    generation: Option<i64>,
    now: &Time,
) -> (Vec<Condition>, Vec<Finding>) {
    let mut conditions = Vec::with_capacity(findings.len());
    let mut changed = Vec::new();
    for f in findings {
        let status = if f.status { "True" } else { "False" };
        let old = previous.iter().find(|c| c.type_ == f.type_);
        let transitioned = old.is_none_or(|c| c.status != status);
        if old.is_none_or(|c| c.status != status || c.reason != f.reason) {
            changed.push(f.clone());
        }
        conditions.push(Condition {
            type_: f.type_.to_string(),
            status: status.to_string(),
            reason: f.reason.clone(),
            message: f.message.clone(),
            observed_generation: generation,
            last_transition_time: match old {
                Some(c) if !transitioned => c.last_transition_time.clone(),
                _ => now.clone(),
            },
        });
    }
    // Conditions this reconcile did not assess keep their last word (e.g. the forecast's while
    // the target is missing).
    for c in previous {
        if !findings.iter().any(|f| f.type_ == c.type_) {
            conditions.push(c.clone());
        }
    }
    let order = [
        READY,
        METRICS_AVAILABLE,
        FORECAST_RELIABLE,
        HISTORY_AVAILABLE,
        OBJECTIVE_MET,
        MAX_REPLICAS_SUFFICIENT,
        SCALING_LIMITED,
        PODS_PENDING,
        CALENDAR_AVAILABLE,
    ];
    conditions.sort_by_key(|c| {
        order
            .iter()
            .position(|t| *t == c.type_)
            .unwrap_or(order.len())
    });
    (conditions, changed)
}

// What a decision means for the conditions. Kept beside `merge` so the controller only gathers
// and writes; the words and the reasons are decided here.

/// `MetricsAvailable`: whether the live load was read. Its message carries no figure that
/// changes every minute, so that a steady state writes no status.
pub fn metrics_finding(d: &Decision, problem: Option<&str>, rejected_samples: usize) -> Finding {
    match (problem, d.metrics_available) {
        (Some(p), _) => Finding::new(
            METRICS_AVAILABLE,
            false,
            "PrometheusUnavailable",
            format!("{p}; holding at least the current replicas until the metrics return"),
        ),
        (None, false) => Finding::new(
            METRICS_AVAILABLE,
            false,
            "NoRecentData",
            "the query returned no usable value in the last 5 minutes; holding at least the current replicas",
        ),
        (None, true) if rejected_samples > 0 => Finding::new(
            METRICS_AVAILABLE,
            false,
            "InvalidSamples",
            format!(
                "{rejected_samples} samples of the query were negative or not a number; they are treated as missing and prescaler scales on the others"
            ),
        ),
        (None, true) => Finding::new(
            METRICS_AVAILABLE,
            true,
            "QuerySucceeded",
            "the query returns the live load",
        ),
    }
}

/// `MetricsAvailable=False NoRecentData` for a scaler of several metrics, naming each of
/// `silent` (read, but without a live load): the others still raise the count, nothing lowers
/// it.
pub fn silent_metrics_finding(silent: &[&str]) -> Finding {
    let each: Vec<String> = silent.iter().map(|name| silent_metric(name)).collect();
    Finding::new(
        METRICS_AVAILABLE,
        false,
        "NoRecentData",
        format!(
            "{}; the other metrics may scale up, nothing scales down until it returns",
            each.join("; ")
        ),
    )
}

/// What `MetricsAvailable` says of one of several metrics that was read but has no live load.
pub fn silent_metric(name: &str) -> String {
    format!("metric {name:?}: the query returned no usable value in the last 5 minutes")
}

/// `ForecastReliable`: whether a forecast takes part in the decisions, and if not, why.
/// `ForecastReliable` of a scaler of several metrics (`figures`, one per metric): true while
/// any metric's forecast takes part in its proposals, naming them, whichever metric decides the
/// minute; otherwise as the deciding metric's decision says (`forecast_finding`). Taken from
/// the deciding metric alone, it turned over with the metric that decided, between
/// `Calibrated` and `LiveLoadCheaper`, a write and an Event each, where two metrics' needs were
/// close and nothing about the forecasts had changed. With one metric, `forecast_finding`.
pub fn forecast_finding_of_metrics(d: &Decision, figures: &[MetricFigures]) -> Finding {
    if figures.len() < 2 {
        return forecast_finding(d);
    }
    let forecasting: Vec<String> = figures
        .iter()
        .filter(|f| {
            f.calibration
                .as_ref()
                .is_some_and(|c| c.margins.basis.forecasts())
        })
        .map(|f| format!("{:?}", f.name))
        .collect();
    if forecasting.is_empty() {
        return forecast_finding(d);
    }
    Finding::new(
        FORECAST_RELIABLE,
        true,
        "Calibrated",
        format!(
            "prescaler provisions for the forecasts of metric(s) {} plus their calibrated margins",
            forecasting.join(", ")
        ),
    )
}

pub fn forecast_finding(d: &Decision) -> Finding {
    if let Some(cal) = &d.calibration {
        let basis = cal.margins.basis;
        if basis.forecasts() {
            return Finding::new(
                FORECAST_RELIABLE,
                true,
                "Calibrated",
                format!(
                    "prescaler provisions for the {} plus its calibrated margin",
                    basis.name()
                ),
            );
        }
        return Finding::new(
            FORECAST_RELIABLE,
            false,
            "LiveLoadCheaper",
            "over the last week the live load with a margin met the objective at less cost than the forecasts; they are tried again at every recalibration",
        );
    }
    if !d.metrics_available {
        return Finding::new(
            FORECAST_RELIABLE,
            false,
            "MetricsUnavailable",
            "no forecast without the live load",
        );
    }
    Finding::new(
        FORECAST_RELIABLE,
        false,
        "InsufficientHistory",
        format!(
            "{}; the margins need a day of recorded forecasts (and the weekly forecast a week of history); scaling on the live load with a 25% margin and on peak windows meanwhile",
            history_in_hours(d.observed_history)
        ),
    )
}

/// `HistoryAvailable`: whether the history read holds all of `forecast.history`, counted from
/// its first sample, and if not what the forecast rests on and what to do. Assess it only when
/// the history was read: a failed read knows nothing of its span (`MetricsAvailable` tells).
/// `from`: where the history came from. The figures are whole days (or hours), so that the
/// message changes at most once a day.
pub fn history_finding(
    d: &Decision,
    spec: &ValidatedSpec,
    model: &ModelConfig,
    from: HistoryFrom<'_>,
) -> Finding {
    history_verdict(
        coverage::coverage(d.observed_history, spec.history),
        &spec.seasonality,
        model,
        from,
    )
}

/// `HistoryAvailable` of a scaler of one or several metrics: each metric is forecast on its own
/// history, so each is judged on its own (`figures[i].observed_history`, read from the source
/// `fallbacks[i]` says: `Some` for a long-term store that failed that metric's read). One metric
/// (`figures` empty or of one): `history_finding`, word for word. Several: a metric short of
/// `forecast.history` is named with how much it holds (`metric "queue": 14 of 28 days of
/// history: …`), a store that failed with the metric whose read it failed
/// (`coverage::verdict_of_metrics`).
pub fn history_finding_of_metrics(
    d: &Decision,
    figures: &[MetricFigures],
    spec: &ValidatedSpec,
    model: &ModelConfig,
    long_term: bool,
    fallbacks: &[Option<String>],
) -> Finding {
    if figures.len() < 2 {
        let fallback = fallbacks.first().and_then(Option::as_deref);
        return history_finding(d, spec, model, HistoryFrom::of(long_term, fallback));
    }
    let metrics: Vec<coverage::MetricHistory<'_>> = figures
        .iter()
        .enumerate()
        .map(|(i, f)| coverage::MetricHistory {
            name: &f.name,
            observed: f.observed_history,
            from: HistoryFrom::of(long_term, fallbacks.get(i).and_then(Option::as_deref)),
        })
        .collect();
    let v = coverage::verdict_of_metrics(&metrics, spec.history, &spec.seasonality, model);
    Finding::new(HISTORY_AVAILABLE, v.complete, v.reason, v.message)
}

/// `HistoryAvailable` from `coverage::verdict`.
fn history_verdict(
    cov: Coverage,
    seasonality: &[Seasonality],
    model: &ModelConfig,
    from: HistoryFrom<'_>,
) -> Finding {
    let v = coverage::verdict(cov, seasonality, model, from);
    Finding::new(HISTORY_AVAILABLE, v.complete, v.reason, v.message)
}

/// The history's length in whole hours: a message that changed every minute would rewrite the
/// status at every sync until the first calibration.
fn history_in_hours(history: chrono::Duration) -> String {
    match history.num_hours() {
        ..=0 => "less than an hour of history".into(),
        hours => format!(
            "{} of history",
            crate::api::format_duration(chrono::Duration::hours(hours))
        ),
    }
}

/// `ObjectiveMet`: whether the margins held the share of under-provisioned minutes within the
/// objective over the last week (replayed), and if not, what stood in the way. `None` before the
/// first calibration.
pub fn objective_finding(d: &Decision, spec: &ValidatedSpec) -> Option<Finding> {
    let cal = d.calibration.as_ref()?;
    Some(objective_verdict(
        cal,
        spec.max_underprovisioned * 100.0,
        spec.max_replicas,
    ))
}

/// `ObjectiveMet` of a scaler of several metrics (`figures`, one per metric): met while every
/// calibrated metric's margins meet the objective; otherwise not met, for the first metric that
/// misses it (its reason), naming each that does (`metric "queue": …`). Taken from the deciding
/// metric alone, it turned over with the metric that decided, a write and an Event each, while
/// nothing about the calibrations had changed (as `ForecastReliable` did:
/// `forecast_finding_of_metrics`). `None` before any metric's first calibration. With one
/// metric, `objective_finding`.
pub fn objective_finding_of_metrics(
    d: &Decision,
    figures: &[MetricFigures],
    spec: &ValidatedSpec,
) -> Option<Finding> {
    if figures.len() < 2 {
        return objective_finding(d, spec);
    }
    let objective = spec.max_underprovisioned * 100.0;
    let verdicts: Vec<(&str, Finding)> = figures
        .iter()
        .filter_map(|f| {
            let cal = f.calibration.as_ref()?;
            Some((
                f.name.as_str(),
                objective_verdict(cal, objective, spec.max_replicas),
            ))
        })
        .collect();
    let missed: Vec<&(&str, Finding)> = verdicts.iter().filter(|(_, v)| !v.status).collect();
    let each = |of: &[&(&str, Finding)]| {
        of.iter()
            .map(|(name, v)| format!("metric {name:?}: {}", v.message))
            .collect::<Vec<_>>()
            .join("; ")
    };
    match missed.first() {
        Some((_, first)) => Some(Finding::new(
            OBJECTIVE_MET,
            false,
            &first.reason,
            each(&missed),
        )),
        None if verdicts.is_empty() => None,
        None => Some(Finding::new(
            OBJECTIVE_MET,
            true,
            "WithinObjective",
            each(&verdicts.iter().collect::<Vec<_>>()),
        )),
    }
}

/// `objective_finding` for a calibration, the objective in percent and the spec's `maxReplicas`.
fn objective_verdict(cal: &Calibration, objective: f64, max_replicas: u32) -> Finding {
    let week = cal.underprovisioned_week_percent;
    let figures = format!(
        "{:.2}% of the last week's minutes and {:.2}% of the last day's would have been under-provisioned with the current margins; the objective is {objective}%",
        week, cal.underprovisioned_day_percent
    );
    if week <= objective {
        return Finding::new(OBJECTIVE_MET, true, "WithinObjective", figures);
    }
    let (reason, why) = if cal.above_max_percent >= cal.unpreventable_percent
        && cal.above_max_percent > 0.0
    {
        (
            "MaxReplicasTooLow",
            format!(
                "{:.2}% of the minutes needed more than maxReplicas {}; raise it to meet the objective",
                cal.above_max_percent, max_replicas
            ),
        )
    } else if let Some(change) = cal.level_change.filter(|&r| is_regime_change(r)) {
        (
            "RecalibratingAfterShift",
            format!(
                "the last day's load is {change:.1}x the same day's a week before; the week the margins are fitted on straddles the change, and they are relearned as the days after it fill it (within a week)"
            ),
        )
    } else if cal.unpreventable_percent > 0.0 {
        (
            "UnforecastableBursts",
            format!(
                "{:.2}% of the minutes were bursts no forecast saw and no margin under +100% covers (flash crowds, recoveries from outages)",
                cal.unpreventable_percent
            ),
        )
    } else {
        (
            "ObjectiveNotMet",
            "the margins are being raised".to_string(),
        )
    };
    Finding::new(OBJECTIVE_MET, false, reason, format!("{figures}: {why}"))
}

/// A level at least this many times higher, or lower, than the same day's a week before is a
/// change of regime to the status (a ×3 shift, a term's end at a third): day-to-day swings of
/// the same weekday are well within it, and a week of margins fitted across such a change is
/// not what the forecast will face next. It only names the reason; no decision reads it.
const REGIME_CHANGE: f64 = 2.0;

fn is_regime_change(level_change: f64) -> bool {
    level_change >= REGIME_CHANGE || level_change <= 1.0 / REGIME_CHANGE
}

pub fn limit_finding(d: &Decision, spec: &ValidatedSpec) -> Finding {
    match d.reason {
        Reason::MaxReplicas => Finding::new(
            SCALING_LIMITED,
            true,
            "TooManyReplicas",
            format!(
                "the desired count was capped at maxReplicas {}",
                spec.max_replicas
            ),
        ),
        Reason::MinReplicas => Finding::new(
            SCALING_LIMITED,
            true,
            "TooFewReplicas",
            format!(
                "the desired count was raised to minReplicas {}",
                spec.min_replicas
            ),
        ),
        Reason::ScheduledMaximum(ref source) => Finding::new(
            SCALING_LIMITED,
            true,
            "ScheduledMaximum",
            format!(
                "the desired count was capped at {} by {source}'s maxReplicas",
                d.desired_replicas
            ),
        ),
        Reason::RateLimited => Finding::new(
            SCALING_LIMITED,
            true,
            "RateLimited",
            "the change was limited by spec.behavior's policies",
        ),
        _ => Finding::new(
            SCALING_LIMITED,
            false,
            "DesiredWithinRange",
            "the desired count is within the limits",
        ),
    }
}

/// `ScalingLimited=True ScaleToZeroRefused`: the spec's quiet windows allow zero, but `hpa`
/// (managed by the KEDA ScaledObject `scaled_object`, if named) scales the target. The HPA
/// controller reads a workload at 0 replicas as scaling disabled and would never scale it up
/// again, so prescaler keeps the floor it gives the HPA at `minReplicas` (at least 1) instead.
pub fn zero_refused_finding(
    spec: &ValidatedSpec,
    hpa: &str,
    scaled_object: Option<&str>,
    target_name: &str,
) -> Finding {
    let entries = spec.zero_entries().join(", ");
    let scaler = match scaled_object {
        Some(so) => format!("KEDA ScaledObject {so} (through HorizontalPodAutoscaler {hpa})"),
        None => format!("HorizontalPodAutoscaler {hpa}"),
    };
    Finding::new(
        SCALING_LIMITED,
        true,
        SCALE_TO_ZERO_REFUSED,
        format!(
            "{entries} allows 0 replicas, but {scaler} scales {target_name}, and an HPA cannot run at zero (it takes 0 replicas for scaling disabled): prescaler keeps the floor it holds at {} or more; to scale to zero in quiet windows, let prescaler scale {target_name} alone",
            spec.min_replicas
        ),
    )
}

/// `MaxReplicasSufficient`: False while the forecast needs more than the bound in force
/// (`maxReplicas`, or a schedule's ceiling) within the lead time, so that an SRE hears of it a
/// lead time before the peak, from an Event, and can raise the bound. The message changes only
/// when the count needed does.
pub fn capacity_finding(d: &Decision, spec: &ValidatedSpec) -> Option<Finding> {
    if !d.metrics_available {
        return None; // nothing new was forecast: keep the last word
    }
    let needed = d.forecast_replicas.unwrap_or(0);
    let (bound, which) = match &d.cap {
        Some(c) if c.max_replicas < spec.max_replicas => {
            (c.max_replicas, format!("{}'s maxReplicas", c.source))
        }
        _ => (spec.max_replicas, "maxReplicas".to_string()),
    };
    // A forecast count exists when a calibrated forecast or a declared surge took part.
    Some(if d.forecast_replicas.is_some() && needed > bound {
        Finding::new(
            MAX_REPLICAS_SUFFICIENT,
            false,
            "ForecastAboveMaxReplicas",
            format!(
                "the forecast needs {needed} replicas within the lead time ({}), {which} is {bound}: \
                 raise it before the peak, or the workload will be under-provisioned",
                crate::api::format_duration(spec.lead_time)
            ),
        )
    } else {
        Finding::new(
            MAX_REPLICAS_SUFFICIENT,
            true,
            "ForecastWithinMaxReplicas",
            "the forecast needs no more than the replicas allowed",
        )
    })
}

/// What the schedule holds now, in a few words for `status.schedule`: the exclusion in force,
/// the floor asked for (a window or an event), the ceiling.
pub fn schedule_summary(d: &Decision) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(x) = &d.excluded {
        parts.push(format!("excluded ({x})"));
    }
    if let Some(f) = &d.scheduled {
        parts.push(format!("{} min {}", f.source, f.min_replicas));
    }
    if let Some(c) = &d.cap {
        parts.push(format!("{} max {}", c.source, c.max_replicas));
    }
    // A quiet window: whether the workload is at zero, and when it is woken at the latest. No
    // figure that moves with the minute: this is in the status, written when it changes.
    if let Some(q) = &d.quiet {
        let wake = q.wake_at.format("%Y-%m-%d %H:%M UTC");
        parts.push(match (d.desired_replicas, &q.awake) {
            (0, _) => format!(
                "{} min 0: scaled to zero, woken by {wake} or on load",
                q.source
            ),
            (_, None) => format!("{} min 0: quiet, to zero after the cooldown", q.source),
            (_, Some(_)) => format!("{} min 0: awake", q.source),
        });
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// The decision's figures in the status. Loads are rounded to three significant digits: enough
/// to read, and steady enough that an unchanged situation writes no status.
pub fn record_decision(status: &mut PredictiveScalerStatus, d: &Decision, current: u32) {
    let as_i32 = |v: u32| v.min(i32::MAX as u32) as i32;
    status.current_replicas = Some(as_i32(current));
    status.desired_replicas = Some(as_i32(d.desired_replicas));
    status.reactive_replicas = d.reactive_replicas.map(as_i32);
    status.forecast_replicas = d.forecast_replicas.map(as_i32);
    status.scheduled_min_replicas = d.scheduled.as_ref().map(|s| as_i32(s.min_replicas));
    status.scheduled_max_replicas = d.cap.as_ref().map(|c| as_i32(c.max_replicas));
    status.schedule = schedule_summary(d);
    status.reason = Some(d.reason.as_str().into());
    status.deciding_metric = d.metric.clone();
    status.forecast_load = d.forecast_load.map(significant3);
    status.forecast_error_percent = d
        .calibration
        .and_then(|c| c.error_percent)
        .map(significant3);
    status.calibration = d.calibration.map(|c| CalibrationStatus {
        basis: c.margins.basis.name().into(),
        margin_percent: significant3(100.0 * c.margins.margin),
        extra_replicas: c.margins.extra,
        underprovisioned_percent_last_day: significant3(c.underprovisioned_day_percent),
        underprovisioned_percent_last_week: significant3(c.underprovisioned_week_percent),
        unforeseeable_percent_last_week: significant3(c.unpreventable_percent),
    });
}

/// `status.metrics`: each metric's figures, as `record_decision` writes the decision's (three
/// significant digits), in the spec's order (at most `Limits::MAX_METRICS`).
pub fn metric_statuses(figures: &[MetricFigures]) -> Vec<MetricStatus> {
    figures
        .iter()
        .take(crate::api::Limits::MAX_METRICS)
        .map(|f| MetricStatus {
            name: f.name.clone(),
            load: f.load.map(significant3),
            forecast_load: f.forecast_load.map(significant3),
            replicas: f.replicas.min(i32::MAX as u32) as i32,
            reason: f.reason.as_str().into(),
        })
        .collect()
}

/// `PodsPending`, from a survey of the target's pods (`leadTime: Auto`), or the reason the pods
/// could not be read. The age is told in whole minutes, so that the message (and the status)
/// changes at most once a minute while pods wait.
pub fn pods_pending_finding(survey: Result<&startup::Survey, &str>, target_name: &str) -> Finding {
    let survey = match survey {
        Ok(s) => s,
        Err(problem) => {
            return Finding::new(
                PODS_PENDING,
                false,
                "PodsUnreadable",
                format!(
                    "the pods of {target_name} could not be read ({problem}); the lead time stays where it was"
                ),
            );
        }
    };
    let lead = crate::api::format_duration(survey.lead_time);
    match &survey.pending {
        None => Finding::new(
            PODS_PENDING,
            false,
            "PodsReadyInTime",
            format!(
                "no pod of {target_name} has waited longer than the lead time ({lead}) to be Ready"
            ),
        ),
        Some(p) => {
            // In steps (over 10, 30 min, 1, 2, 6 h …), not minutes: the message is in the status,
            // and a figure that moved every minute would write it every minute.
            let minutes = [10, 30, 60, 120, 360, 720, 1440]
                .into_iter()
                .rev()
                .find(|m| p.longest.num_minutes() >= *m)
                .unwrap_or(p.longest.num_minutes().max(0));
            let (reason, why) = if p.unschedulable > 0 {
                (
                    "Unschedulable",
                    format!(
                        "{} of them not scheduled (PodScheduled=False)",
                        p.unschedulable
                    ),
                )
            } else {
                ("SlowStart", "scheduled but not Ready".to_string())
            };
            Finding::new(
                PODS_PENDING,
                true,
                reason,
                format!(
                    "{} pod(s) of {target_name} not Ready after more than the usual lead time ({}), the oldest for over {minutes} min, {why}: the cluster, not the forecast, is late; they count in the learned start-up at their age so far",
                    p.pods,
                    crate::api::format_duration(p.after)
                ),
            )
        }
    }
}

/// `status.leadTime` from a survey.
pub fn lead_time_status(survey: &startup::Survey) -> LeadTimeStatus {
    LeadTimeStatus {
        seconds: survey.lead_time.num_seconds(),
        source: survey.source.as_str().into(),
        observations: survey.observations as i64,
        startup_seconds: survey.startup.map(|d| d.num_seconds()),
        learned_seconds: survey.learned.map(|d| d.num_seconds()),
    }
}

/// `v` rounded to three significant digits.
fn significant3(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return 0.0;
    }
    let scale = 10f64.powi(2 - v.abs().log10().floor() as i32);
    (v * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    #[test]
    fn every_ready_reason_is_told_in_the_readme() {
        let readme = include_str!("../../README.md");
        for reason in ReadyReason::ALL {
            let written = format!("`{}`", reason.as_str());
            assert!(
                readme.contains(&written),
                "the README does not name {written}"
            );
        }
    }

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    /// A week's calibration on `basis` with a margin of 0.2: `week` % of its minutes short (and
    /// of the last day's), `unpreventable` % bursts no basis foresaw, `above` % above
    /// maxReplicas, the level `change` against a week before.
    fn calibration(
        basis: crate::planning::calibration::Basis,
        week: f64,
        unpreventable: f64,
        above: f64,
        change: Option<f64>,
    ) -> Calibration {
        Calibration {
            margins: crate::planning::calibration::Margins {
                basis,
                margin: 0.2,
                extra: 0.0,
            },
            underprovisioned_day_percent: week,
            underprovisioned_week_percent: week,
            unpreventable_percent: unpreventable,
            above_max_percent: above,
            error_percent: None,
            scored_minutes: 10_080,
            level_change: change,
        }
    }

    /// One metric's figures of a minute decided on the live load (10, 2 replicas), over four
    /// weeks of history, with `calibration`.
    fn metric_figures(name: &str, calibration: Option<Calibration>) -> MetricFigures {
        MetricFigures {
            name: name.into(),
            load: Some(10.0),
            replicas: 2,
            reason: Reason::Reactive,
            forecast_load: None,
            forecast_replicas: None,
            calibration,
            observed_history: chrono::Duration::days(28),
        }
    }

    /// The decision that goes with `metric_figures`: 2 replicas on the live load, no metric named.
    fn reactive_decision(calibration: Option<Calibration>) -> Decision {
        Decision {
            desired_replicas: 2,
            reason: Reason::Reactive,
            floor_replicas: 1,
            load: Some(10.0),
            reactive_replicas: Some(2),
            live_replicas: Some(2),
            forecast_replicas: None,
            forecast_load: None,
            calibration,
            scheduled: None,
            cap: None,
            excluded: None,
            metrics_available: true,
            observed_history: chrono::Duration::days(28),
            quiet: None,
            metric: None,
        }
    }

    #[test]
    fn with_several_metrics_the_forecast_is_reliable_while_any_metric_forecasts() {
        use crate::planning::calibration::BASES;
        let on = |forecasts: bool| {
            let basis = *BASES.iter().find(|b| b.forecasts() == forecasts).unwrap();
            calibration(basis, 0.0, 0.0, 0.0, None)
        };
        let figures =
            |name: &str, calibration: Calibration| metric_figures(name, Some(calibration));
        // The queue, on the live load, decides this minute; the requests' forecast takes part.
        let deciding = Decision {
            metric: Some("queue".into()),
            ..reactive_decision(Some(on(false)))
        };
        assert_eq!(forecast_finding(&deciding).reason, "LiveLoadCheaper");
        let both = [figures("requests", on(true)), figures("queue", on(false))];
        let f = forecast_finding_of_metrics(&deciding, &both);
        assert_eq!((f.status, f.reason.as_str()), (true, "Calibrated"));
        assert!(f.message.contains("\"requests\""), "{}", f.message);
        assert!(!f.message.contains("queue"), "{}", f.message);
        // No metric forecasts: as the deciding metric says.
        let neither = [figures("requests", on(false)), figures("queue", on(false))];
        let f = forecast_finding_of_metrics(&deciding, &neither);
        assert_eq!(f.reason, "LiveLoadCheaper");
    }

    #[test]
    fn with_several_metrics_the_objective_is_met_only_while_every_metric_meets_it() {
        use crate::planning::calibration::BASES;
        let spec: crate::api::PredictiveScalerSpec = serde_json::from_value(serde_json::json!({
            "scaleTargetRef": { "kind": "Deployment", "name": "s" },
            "maxReplicas": 40,
            "metrics": [
                { "name": "requests", "query": "sum(r)", "targetPerReplica": 50 },
                { "name": "queue", "query": "sum(q)", "targetPerReplica": 10 },
            ],
        }))
        .unwrap();
        let spec = spec.validate().unwrap();
        let objective = spec.max_underprovisioned * 100.0;
        let met = calibration(BASES[0], objective / 2.0, 0.0, 0.0, None);
        let missed = calibration(BASES[0], objective * 5.0, objective, 0.0, None);
        let figures = metric_figures;
        let deciding = |calibration: &Calibration| reactive_decision(Some(*calibration));
        let both = [
            figures("requests", Some(met)),
            figures("queue", Some(missed)),
        ];
        // Whichever metric decides the minute, the queue misses the objective, and is named.
        let by_requests = objective_finding_of_metrics(&deciding(&met), &both, &spec).unwrap();
        let by_queue = objective_finding_of_metrics(&deciding(&missed), &both, &spec).unwrap();
        assert_eq!(by_requests, by_queue);
        assert!(objective_finding(&deciding(&met), &spec).unwrap().status);
        assert_eq!(
            (by_queue.status, by_queue.reason.as_str()),
            (false, "UnforecastableBursts")
        );
        assert!(
            by_queue.message.starts_with("metric \"queue\": ")
                && !by_queue.message.contains("requests"),
            "{}",
            by_queue.message
        );
        // Every calibrated metric meets it (the queue not calibrated yet): met, naming them.
        let met_both = [figures("requests", Some(met)), figures("queue", None)];
        let f = objective_finding_of_metrics(&deciding(&met), &met_both, &spec).unwrap();
        assert_eq!((f.status, f.reason.as_str()), (true, "WithinObjective"));
        assert!(
            f.message.starts_with("metric \"requests\": "),
            "{}",
            f.message
        );
        // Before any calibration: no finding, as with one metric.
        let none = [figures("requests", None), figures("queue", None)];
        let mut uncalibrated = deciding(&met);
        uncalibrated.calibration = None;
        assert!(objective_finding_of_metrics(&uncalibrated, &none, &spec).is_none());
    }

    #[test]
    fn a_missed_objective_says_why_and_a_shift_is_told_apart_from_bursts() {
        use crate::planning::calibration::BASES;
        let cal = |week: f64, unpreventable: f64, above: f64, change: Option<f64>| {
            calibration(BASES[0], week, unpreventable, above, change)
        };
        let reason = |c: Calibration| {
            let f = objective_verdict(&c, 0.1, 40);
            format!("{} {}", f.status, f.reason)
        };
        assert_eq!(
            reason(cal(0.05, 0.2, 0.0, Some(3.0))),
            "true WithinObjective"
        );
        // A level three times, or a third of, the same day's a week before is a shift, even
        // with bursts among the short minutes (the shift's own first minutes are some).
        for change in [3.0, 0.3] {
            assert_eq!(
                reason(cal(0.5, 0.2, 0.0, Some(change))),
                "false RecalibratingAfterShift",
                "{change}"
            );
        }
        // A weekday against the same weekday, moving by a third, is no shift.
        assert_eq!(
            reason(cal(0.5, 0.2, 0.0, Some(1.3))),
            "false UnforecastableBursts"
        );
        assert_eq!(
            reason(cal(0.5, 0.2, 0.0, None)),
            "false UnforecastableBursts"
        );
        assert_eq!(
            reason(cal(0.5, 0.0, 0.0, Some(0.8))),
            "false ObjectiveNotMet"
        );
        // Minutes above maxReplicas are the first thing to fix.
        let f = objective_verdict(&cal(0.5, 0.2, 0.3, Some(3.0)), 0.1, 40);
        assert_eq!(f.reason, "MaxReplicasTooLow");
        assert!(f.message.contains("maxReplicas 40"), "{}", f.message);
        let f = objective_verdict(&cal(0.5, 0.2, 0.0, Some(2.94)), 0.1, 40);
        assert!(f.message.contains("2.9x"), "{}", f.message);
    }

    #[test]
    fn a_short_history_says_how_short_and_what_the_profiles_rest_on() {
        use chrono::Duration;
        let model = ModelConfig::default();
        let both = [Seasonality::Daily, Seasonality::Weekly];
        let told = |observed: Duration, requested: Duration, long_term: bool| {
            let f = history_verdict(
                coverage::coverage(observed, requested),
                &both,
                &model,
                HistoryFrom::of(long_term, None),
            );
            assert_eq!(f.type_, HISTORY_AVAILABLE);
            (f.status, f.reason, f.message)
        };
        let (status, reason, message) = told(Duration::days(14), Duration::days(28), false);
        assert_eq!((status, reason.as_str()), (false, "ShortRetention"));
        assert!(
            message.starts_with("14 of 28 days of history: the weekly profile rests on 2 weeks;"),
            "{message}"
        );
        assert!(message.contains("--history-prometheus-url"), "{message}");
        assert!(message.contains("retention"), "{message}");
        // Within the day the message does not move (it is in the status).
        assert_eq!(
            told(
                Duration::days(14) + Duration::hours(23),
                Duration::days(28),
                false
            )
            .2,
            message
        );
        let (_, _, message) = told(
            Duration::days(3) + Duration::hours(2),
            Duration::days(14),
            true,
        );
        assert!(
            message.starts_with(
                "3 of 14 days of history: no whole week for the weekly profile, the daily profile rests on 3 days;"
            ),
            "{message}"
        );
        assert!(message.contains("the long-term source"), "{message}");
        let (status, reason, message) = told(Duration::days(28), Duration::days(28), false);
        assert_eq!((status, reason.as_str()), (true, "HistoryComplete"));
        assert!(message.starts_with("all 28 days of history"), "{message}");
        let (status, reason, message) = told(Duration::zero(), Duration::days(28), false);
        assert_eq!((status, reason.as_str()), (false, "NoHistory"));
        assert!(
            message.contains("no sample in the last 28 days"),
            "{message}"
        );
        assert_eq!(
            told(Duration::hours(20), Duration::days(7), false).2[..14],
            *"20h of 7 days "
        );
        assert!(
            told(Duration::hours(20), Duration::hours(36), false)
                .2
                .starts_with("20h of 1d12h of history")
        );
    }

    /// A long-term store that failed is blamed, by the words of its error (which name it), not
    /// a retention: the two call for different fixes.
    #[test]
    fn a_history_short_because_the_store_failed_says_so() {
        use chrono::Duration;
        let error = "query \"sum(x)\": the long-term store at http://thanos:9090 could not be reached or answered badly: HTTP 502";
        let verdict = |observed: Duration| {
            history_verdict(
                coverage::coverage(observed, Duration::days(28)),
                &[Seasonality::Daily, Seasonality::Weekly],
                &ModelConfig::default(),
                HistoryFrom::of(true, Some(error)),
            )
        };
        let f = verdict(Duration::days(14));
        assert_eq!(
            (f.status, f.reason.as_str()),
            (false, "LongTermStoreFailed")
        );
        assert!(
            f.message.starts_with(
                "14 of 28 days of history: the weekly profile rests on 2 weeks; the history was read from Prometheus alone, as query"
            ),
            "{}",
            f.message
        );
        assert!(
            f.message
                .contains("the long-term store at http://thanos:9090"),
            "{}",
            f.message
        );
        assert!(!f.message.contains("retention"), "{}", f.message);
        assert_eq!(verdict(Duration::zero()).reason, "LongTermStoreFailed");
        // Prometheus kept it all: nothing is missing, whatever the store did.
        assert_eq!(verdict(Duration::days(28)).reason, "HistoryComplete");
    }

    #[test]
    fn the_history_is_told_in_whole_hours() {
        let told = |minutes| history_in_hours(chrono::Duration::minutes(minutes));
        assert_eq!(told(59), "less than an hour of history");
        assert_eq!(told(5 * 60), told(5 * 60 + 59), "steady within the hour");
        assert!(told(5 * 60 + 59).starts_with("5h"), "{}", told(5 * 60 + 59));
        assert_ne!(told(5 * 60), told(6 * 60));
    }

    #[test]
    fn a_steady_state_keeps_its_transition_time_and_makes_no_event() {
        let f = Finding::new(METRICS_AVAILABLE, true, "QuerySucceeded", "load 120");
        let (first, changed) = merge(&[], std::slice::from_ref(&f), Some(1), &at(100));
        assert_eq!(changed.len(), 1, "a new condition is news");
        let again = Finding::new(METRICS_AVAILABLE, true, "QuerySucceeded", "load 130");
        let (second, changed) = merge(&first, &[again], Some(1), &at(200));
        assert!(
            changed.is_empty(),
            "a new number in the message is not news"
        );
        assert_eq!(second[0].last_transition_time, at(100));
        assert_eq!(second[0].message, "load 130");
    }

    #[test]
    fn a_status_or_reason_change_is_reported() {
        let ok = Finding::new(READY, true, "Scaling", "");
        let (c, _) = merge(&[], &[ok], Some(1), &at(100));
        let broken = Finding::new(
            READY,
            false,
            "TargetNotFound",
            "Deployment shop/x does not exist",
        );
        let (c, changed) = merge(&c, std::slice::from_ref(&broken), Some(2), &at(200));
        assert_eq!(changed, vec![broken]);
        assert_eq!(c[0].last_transition_time, at(200));
        assert_eq!(c[0].observed_generation, Some(2));
        let other = Finding::new(READY, false, "InvalidSpec", "spec.metric.query: ...");
        let (c, changed) = merge(&c, &[other], Some(3), &at(300));
        assert_eq!(changed.len(), 1, "same status, new reason");
        assert_eq!(
            c[0].last_transition_time,
            at(200),
            "the status did not transition"
        );
    }

    #[test]
    fn unassessed_conditions_are_kept_and_order_is_stable() {
        let (c, _) = merge(
            &[],
            &[
                Finding::new(SCALING_LIMITED, false, "DesiredWithinRange", ""),
                Finding::new(FORECAST_RELIABLE, true, "Calibrated", ""),
                Finding::new(READY, true, "Scaling", ""),
            ],
            Some(1),
            &at(1),
        );
        let (c, _) = merge(
            &c,
            &[Finding::new(READY, false, "TargetNotFound", "")],
            Some(1),
            &at(2),
        );
        let types: Vec<_> = c.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, [READY, FORECAST_RELIABLE, SCALING_LIMITED]);
    }
}
