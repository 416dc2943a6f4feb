//! Replays a recorded load through scaling strategies on the scoring model of
//! `docs/simulation.md`, minute by minute, and scores them:
//! - prescaler: the same `Planner` the operator runs, fed the metric as Prometheus would have
//!   returned it (`metric lag` minutes behind the load);
//! - the HorizontalPodAutoscaler on the same metric, swept over target utilizations (the HPA
//!   frontier), with 100 % and 80 % shown;
//! - the oracle: perfect foresight, the physical limit.

pub mod baselines;
pub mod calendar_files;
pub mod chart;
pub mod frontier;
pub mod manifest;
pub mod report;
pub mod score;
pub mod synthetic;
pub mod trace;

use chrono::{DateTime, Duration, Utc};

use crate::api::ValidatedSpec;
use crate::planning::forecast::{History, ModelConfig};
use crate::planning::planner::Planner;
use crate::planning::schedule::zero_window;
use crate::planning::several::Several;
use crate::planning::{needed_replicas, plan, replicas_for};
use crate::{Error, Result};
use baselines::HpaModel;
use frontier::{Comparison, Frontier};
use score::Score;
use trace::Trace;

/// How much history precedes the first scored minute unless told otherwise: two full weeks, so
/// that the weekly profile has two periods to learn from.
pub const DEFAULT_HISTORY_BEFORE_SCORING: Duration = Duration::days(14);

/// The simulated world.
#[derive(Clone, Debug)]
pub struct Setup {
    /// From asking for a replica until it is ready.
    pub startup_delay: Duration,
    /// From load happening to the metric showing it.
    pub metric_lag: Duration,
    /// The first scored minute.
    pub eval_start: DateTime<Utc>,
}

impl Setup {
    /// The default setup for `trace`: 5 minutes of start-up, 1 minute of metric lag, scored
    /// after two weeks of history.
    pub fn for_trace(trace: &Trace) -> Self {
        Self {
            startup_delay: Duration::minutes(5),
            metric_lag: Duration::minutes(1),
            eval_start: trace.start + DEFAULT_HISTORY_BEFORE_SCORING,
        }
    }

    fn minutes(d: Duration) -> usize {
        d.num_minutes().max(0) as usize
    }

    pub fn delay_minutes(&self) -> usize {
        Self::minutes(self.startup_delay)
    }

    pub fn lag_minutes(&self) -> usize {
        Self::minutes(self.metric_lag)
    }

    /// The setup for the last `range` of a live metric read up to now, as `prescaler backtest
    /// --prometheus-url` and `kubectl prescaler backtest` replay it: the last 7 days scored,
    /// what comes before them warms the forecast up.
    pub fn for_recent(trace: &Trace, range: Duration) -> Self {
        Self {
            eval_start: trace.start + (range - Duration::days(7)).max(Duration::zero()),
            ..Self::for_trace(trace)
        }
    }

    /// The index of the first scored minute of `trace`.
    pub fn eval_index(&self, trace: &Trace) -> usize {
        Self::minutes(self.eval_start - trace.start).min(trace.minutes())
    }
}

/// One strategy's replica count per minute, and what it forecast.
#[derive(Clone, Debug)]
pub struct Run {
    pub name: String,
    pub desired: Vec<u32>,
    /// The forecast peak load with its margin per minute, where the strategy has one.
    pub forecast: Option<Vec<f64>>,
}

/// prescaler: the planner once a minute, on the metric as Prometheus would have held it.
pub fn prescaler(trace: &Trace, setup: &Setup, spec: &ValidatedSpec, model: &ModelConfig) -> Run {
    prescaler_with(trace, setup, spec, model, |_, _| {})
}

/// `prescaler`, showing `watch` every minute's decision (for the benchmark's explanations).
pub fn prescaler_with(
    trace: &Trace,
    setup: &Setup,
    spec: &ValidatedSpec,
    model: &ModelConfig,
    mut watch: impl FnMut(usize, &plan::Decision),
) -> Run {
    // The value Prometheus returns at minute t is the load of minute t - lag: the history's
    // samples are the trace's, `lag` later; held as `f32`, as the operator's cache holds them.
    let metric = trace
        .metric()
        .into_iter()
        .map(|v| v as f32 as f64)
        .collect();
    let history = History::new(
        trace.start + Duration::minutes(setup.lag_minutes() as i64),
        Duration::minutes(1),
        metric,
    );
    let mut planner = Planner::new(spec.clone(), model.clone());
    let mut current = initial_replicas(trace, spec);
    let mut desired = Vec::with_capacity(trace.minutes());
    let mut forecast = Vec::with_capacity(trace.minutes());
    for t in 0..trace.minutes() {
        let decision = planner.decide(Some(&history), current, trace.time(t));
        watch(t, &decision);
        current = decision.desired_replicas;
        desired.push(current);
        forecast.push(match (decision.forecast_load, decision.calibration) {
            (Some(f), Some(c)) => plan::provisioned_load(spec, &c.margins, f),
            _ => f64::NAN,
        });
    }
    Run {
        name: "prescaler".into(),
        desired,
        forecast: Some(forecast),
    }
}

/// prescaler on several metrics (`spec.metrics`): `planning::several`, one planner per metric
/// on its own metric (`traces[i]` for `spec.metrics[i]`), the highest proposal shaped once.
/// The forecast shown is the deciding metric's, in replicas' worth of load (as
/// `Trace::in_replicas`, on which several metrics are scored).
pub fn prescaler_several(
    traces: &[Trace],
    setup: &Setup,
    spec: &ValidatedSpec,
    model: &ModelConfig,
) -> Run {
    let histories: Vec<History> = traces
        .iter()
        .map(|trace| {
            History::new(
                trace.start + Duration::minutes(setup.lag_minutes() as i64),
                Duration::minutes(1),
                trace
                    .metric()
                    .into_iter()
                    .map(|v| v as f32 as f64)
                    .collect(),
            )
        })
        .collect();
    let views: Vec<Option<&History>> = histories.iter().map(Some).collect();
    let mut several = Several::new(spec, model.clone());
    let first = &traces[0];
    let mut current = traces
        .iter()
        .zip(&spec.metrics)
        .map(|(t, m)| replicas_for(t.demand[0], m.target_per_replica))
        .max()
        .unwrap_or(0)
        .clamp(spec.min_replicas, spec.max_replicas);
    let minutes = traces.iter().map(Trace::minutes).min().unwrap_or(0);
    let mut desired = Vec::with_capacity(minutes);
    let mut forecast = Vec::with_capacity(minutes);
    for t in 0..minutes {
        let decided = several.decide(&views, current, first.time(t));
        let decision = &decided.decision;
        current = decision.desired_replicas;
        desired.push(current);
        let metric = &spec.metrics[decided.deciding];
        forecast.push(match (decision.forecast_load, decision.calibration) {
            (Some(f), Some(c)) => {
                let own = spec
                    .for_metric(decided.deciding)
                    .unwrap_or_else(|| spec.clone());
                plan::provisioned_load(&own, &c.margins, f) / metric.target_per_replica
            }
            _ => f64::NAN,
        });
    }
    Run {
        name: "prescaler".into(),
        desired,
        forecast: Some(forecast),
    }
}

/// `run_all` for a spec with one or several metrics, `traces[i]` the load of `spec.metrics[i]`
/// (`Trace::parse_columns`). One metric: `run_all` on its trace, as before. Several: prescaler
/// on each metric's load (`prescaler_several`), scored — with the HPA and the oracle — on the
/// metrics' need in replicas (`Trace::in_replicas`, a load per replica of 1); the trace
/// returned is that one, which the report, the CSV and the chart then show.
pub fn run_all_metrics(
    name: &str,
    traces: Vec<Trace>,
    setup: &Setup,
    spec: &ValidatedSpec,
    model: &ModelConfig,
) -> Result<(Trace, ValidatedSpec, Outcome)> {
    if traces.len() == 1 {
        let trace = traces.into_iter().next().expect("one trace");
        let outcome = run_all(&trace, setup, spec, model)?;
        return Ok((trace, spec.clone(), outcome));
    }
    let per_replica: Vec<f64> = spec.metrics.iter().map(|m| m.target_per_replica).collect();
    let combined = Trace::in_replicas(name, &traces, &per_replica);
    let in_replicas = ValidatedSpec {
        target_per_replica: 1.0,
        ..spec.clone()
    };
    scored_minutes(&combined, setup)?;
    let own = prescaler_several(&traces, setup, spec, model);
    let outcome = compare(&combined, setup, &in_replicas, own)?;
    Ok((combined, in_replicas, outcome))
}

fn initial_replicas(trace: &Trace, spec: &ValidatedSpec) -> u32 {
    replicas_for(trace.demand[0], spec.target_per_replica)
        .clamp(spec.min_replicas, spec.max_replicas)
}

/// Every strategy on one trace, with its scores.
pub struct Outcome {
    pub needed: Vec<u32>,
    /// Whether each minute is scored (in the evaluation window, not in a gap of the trace).
    pub scored: Vec<bool>,
    /// prescaler, the HPA at 100 % and 80 %, the oracle.
    pub runs: Vec<Run>,
    pub scores: Vec<Score>,
    pub frontier: Frontier,
    /// prescaler against the frontier.
    pub comparison: Comparison,
}

impl Outcome {
    pub fn score(&self, strategy: &str) -> Option<&Score> {
        self.scores.iter().find(|s| s.strategy == strategy)
    }
}

/// `spec.forecast.leadTime: Auto` in a replay: the simulated pods start up in exactly
/// `setup.startup_delay`, so the operator would learn that, plus the metric's delay
/// (`setup.metric_lag`), rounded up to a whole minute and bounded as it does
/// (`startup::lead_time_for`). Backtest and operator so read `Auto` alike. A spec with a fixed
/// lead time is left as it is. Returns what to tell the reader when it was `Auto`.
pub fn resolve_auto_lead_time(spec: &mut ValidatedSpec, setup: &Setup) -> Option<String> {
    if !spec.lead_time_auto {
        return None;
    }
    spec.lead_time = crate::planning::startup::lead_time_for(setup.startup_delay, setup.metric_lag);
    Some(format!(
        "spec.forecast.leadTime is Auto: replayed with {} (the simulated start-up, {}, plus the \
         metric's delay, {}, rounded up to a minute), as the operator would learn it",
        crate::api::format_duration(spec.lead_time),
        crate::api::format_duration(setup.startup_delay),
        crate::api::format_duration(setup.metric_lag),
    ))
}

/// Runs prescaler, the HPA sweep and the oracle on `trace`, and scores them. An error when no
/// minute would be scored, with what is needed (before the replay).
pub fn run_all(
    trace: &Trace,
    setup: &Setup,
    spec: &ValidatedSpec,
    model: &ModelConfig,
) -> Result<Outcome> {
    scored_minutes(trace, setup)?;
    compare(trace, setup, spec, prescaler(trace, setup, spec, model))
}

/// The minutes of `trace` that are scored, or the error that says why there are none.
fn scored_minutes(trace: &Trace, setup: &Setup) -> Result<Vec<bool>> {
    let scored = score::scored_minutes(trace, setup);
    if !scored.contains(&true) {
        let end = trace.time(trace.minutes().saturating_sub(1));
        return Err(Error::Trace {
            path: trace.name.clone(),
            message: format!(
                "nothing to score: the trace runs from {} to {}, and scoring starts at {} (by default after {} days of history to learn from); give a longer trace or an earlier --eval-start",
                trace.start.format("%Y-%m-%d %H:%M"),
                end.format("%Y-%m-%d %H:%M"),
                setup.eval_start.format("%Y-%m-%d %H:%M"),
                DEFAULT_HISTORY_BEFORE_SCORING.num_days()
            ),
        });
    }
    Ok(scored)
}

/// In the minutes a quiet window (`minReplicas: 0`) is open, what the load needs is not raised
/// to `minReplicas` (`needed_replicas`, as the operator's live account counts it; the oracle
/// scales to zero there too).
fn quiet_needs(trace: &Trace, spec: &ValidatedSpec, needed: &mut [u32]) {
    if !spec.allows_zero() {
        return;
    }
    let (per_replica, min, max) = (
        spec.target_per_replica,
        spec.min_replicas,
        spec.max_replicas,
    );
    for (t, n) in needed.iter_mut().enumerate() {
        if zero_window(&spec.peak_windows, &spec.calendar, trace.time(t)).is_some() {
            *n = needed_replicas(trace.demand[t], per_replica, min, max, true);
        }
    }
}

/// Scores prescaler's replay `own` (from `prescaler`) against the HPA sweep and the oracle on
/// the same trace: `run_all` for a caller that has replayed already (the benchmark times it).
pub fn compare(trace: &Trace, setup: &Setup, spec: &ValidatedSpec, own: Run) -> Result<Outcome> {
    let scored = scored_minutes(trace, setup)?;
    let delay = setup.delay_minutes();
    let mut needed = score::needed(
        trace,
        spec.target_per_replica,
        spec.min_replicas,
        spec.max_replicas,
    );
    quiet_needs(trace, spec, &mut needed);
    let hpa_model = HpaModel::new(
        trace,
        setup.lag_minutes(),
        spec.target_per_replica,
        spec.min_replicas,
        spec.max_replicas,
    );
    let runs = vec![
        own,
        baselines::hpa(&hpa_model, 1.0),
        baselines::hpa(&hpa_model, 0.8),
        baselines::oracle(&needed, delay),
    ];
    let oracle_cost = score::score_run(&runs[3], &needed, &scored, delay, None).cost;
    let scores: Vec<Score> = runs
        .iter()
        .map(|r| score::score_run(r, &needed, &scored, delay, Some(oracle_cost)))
        .collect();
    let frontier = Frontier::sweep(&hpa_model, &needed, &scored, delay);
    let comparison = frontier.compare(&scores[0]);
    Ok(Outcome {
        needed,
        scored,
        runs,
        scores,
        frontier,
        comparison,
    })
}
