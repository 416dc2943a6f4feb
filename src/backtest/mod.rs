//! Replays a recorded load through scaling strategies on the model of `bench/SIMULATION.md` and
//! scores them minute by minute.
//!
//! - prescaler: `plan::decide` every minute, seeing the metric `lag` minutes late;
//! - hpa: the HorizontalPodAutoscaler v2 algorithm on the same metric (10 % tolerance, 5-minute
//!   scale-down stabilization, scale-up by at most max(+4 pods, +100 %) per 15-second sync);
//! - oracle: perfect foresight, the physical limit.
//!
//! Minutes inside a gap of the trace are simulated but not scored (see `trace`).

pub mod chart;
pub mod report;
pub mod scenarios;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::api::{
    Behavior, PolicyType, PredictiveScalerSpec, ScalingPolicy, ScalingRules, SelectPolicy,
    ValidatedSpec,
};
use crate::forecast::{History, ModelConfig};
use crate::plan::{self, Memory, Observations};
use crate::trace::Trace;

/// The simulated world.
#[derive(Clone, Debug)]
pub struct Setup {
    /// Minutes from asking for a replica until it is ready.
    pub startup_delay: usize,
    /// Minutes from demand happening to the metric showing it.
    pub metric_lag: usize,
    /// First scored minute.
    pub eval_start: DateTime<Utc>,
}

/// One strategy's replica count per minute, and what it forecast.
#[derive(Clone, Debug)]
pub struct Run {
    pub name: String,
    pub desired: Vec<u32>,
    /// The forecast peak load (with margin) per minute, where the strategy has one.
    pub forecast: Option<Vec<f64>>,
}

/// The scores of one run over the evaluation window.
#[derive(Clone, Debug, Serialize)]
pub struct Score {
    pub strategy: String,
    pub scored_minutes: usize,
    pub violation_minutes: usize,
    pub violation_percent: f64,
    /// Replica-minutes missing.
    pub shortfall: f64,
    /// Replica-hours asked for.
    pub cost: f64,
    pub cost_vs_oracle: f64,
    pub changes: usize,
}

/// `clamp(ceil(d / c), min, max)` per minute.
pub fn needed(trace: &Trace, spec: &ValidatedSpec) -> Vec<u32> {
    trace
        .demand
        .iter()
        .map(|d| {
            ((d / spec.target_per_replica).ceil() as u32)
                .clamp(spec.min_replicas, spec.max_replicas)
        })
        .collect()
}

/// Ready replicas per minute: what was asked for `delay` minutes ago and has not been removed since.
pub fn ready(desired: &[u32], delay: usize) -> Vec<u32> {
    // Sliding-window minimum over [t - delay, t] with a monotonic deque: O(n).
    let mut out = Vec::with_capacity(desired.len());
    let mut window: std::collections::VecDeque<usize> = Default::default();
    for (t, &d) in desired.iter().enumerate() {
        while window.back().is_some_and(|&i| desired[i] >= d) {
            window.pop_back();
        }
        window.push_back(t);
        while window.front().is_some_and(|&i| i + delay < t) {
            window.pop_front();
        }
        // Before the trace started the fleet is taken as steady at its first size.
        let steady_start = if t < delay { desired[0] } else { u32::MAX };
        out.push(desired[window[0]].min(steady_start));
    }
    out
}

/// Scores `run` against the needed replicas over the scored minutes.
pub fn score(
    trace: &Trace,
    setup: &Setup,
    needed: &[u32],
    run: &Run,
    oracle_cost: Option<f64>,
) -> Score {
    let ready = ready(&run.desired, setup.startup_delay);
    let first = eval_index(trace, setup);
    let (mut minutes, mut violations, mut shortfall, mut cost, mut changes) = (0, 0, 0.0, 0.0, 0);
    for t in first..trace.minutes() {
        cost += run.desired[t] as f64 / 60.0;
        if t > 0 && run.desired[t] != run.desired[t - 1] {
            changes += 1;
        }
        if !trace.observed[t] {
            continue;
        }
        minutes += 1;
        let short = needed[t].saturating_sub(ready[t]);
        if short > 0 {
            violations += 1;
            shortfall += short as f64;
        }
    }
    Score {
        strategy: run.name.clone(),
        scored_minutes: minutes,
        violation_minutes: violations,
        violation_percent: if minutes > 0 {
            100.0 * violations as f64 / minutes as f64
        } else {
            0.0
        },
        shortfall,
        cost,
        cost_vs_oracle: oracle_cost.map_or(1.0, |o| if o > 0.0 { cost / o } else { f64::NAN }),
        changes,
    }
}

fn eval_index(trace: &Trace, setup: &Setup) -> usize {
    ((setup.eval_start - trace.start).num_minutes().max(0) as usize).min(trace.minutes())
}

/// Perfect foresight: `max(needed(u) for u in [t, t + delay])`.
pub fn oracle(needed: &[u32], delay: usize) -> Run {
    let n = needed.len();
    let desired = (0..n)
        .map(|t| {
            needed[t..(t + delay + 1).min(n)]
                .iter()
                .copied()
                .max()
                .unwrap_or(0)
        })
        .collect();
    Run {
        name: "oracle".into(),
        desired,
        forecast: None,
    }
}

/// prescaler: `plan::decide` once a minute on the metric as seen `lag` minutes late.
pub fn prescaler(trace: &Trace, setup: &Setup, spec: &ValidatedSpec, model: &ModelConfig) -> Run {
    let history = History::new(trace.start, Duration::minutes(1), trace.metric());
    let first_needed = initial_replicas(trace, spec);
    let mut memory = Memory::default();
    let mut desired = Vec::with_capacity(trace.minutes());
    let mut forecast = Vec::with_capacity(trace.minutes());
    let mut current = first_needed;
    for t in 0..trace.minutes() {
        let now = trace.time(t);
        let view = t.checked_sub(setup.metric_lag).map(|i| history.view(i));
        let decision = plan::decide(
            spec,
            model,
            Observations {
                load: view,
                current_replicas: current,
            },
            &mut memory,
            now,
        );
        current = decision.desired_replicas;
        desired.push(current);
        forecast.push(match (decision.forecast_load, decision.calibration) {
            (Some(f), Some(c)) => c.provision(f, spec.max_margin) * (1.0 + spec.headroom),
            _ => f64::NAN,
        });
    }
    Run {
        name: "prescaler".into(),
        desired,
        forecast: Some(forecast),
    }
}

/// The HPA's defaults, in `behavior` terms: scale up by max(+4 pods, +100 %) per 15 s, scale down
/// to the highest recommendation of 5 minutes, by up to 100 % per 15 s.
fn hpa_behavior() -> Behavior {
    Behavior {
        scale_up: ScalingRules {
            stabilization_window_seconds: 0,
            policies: vec![
                ScalingPolicy {
                    type_: PolicyType::Pods,
                    value: 4,
                    period_seconds: 15,
                },
                ScalingPolicy {
                    type_: PolicyType::Percent,
                    value: 100,
                    period_seconds: 15,
                },
            ],
            select_policy: SelectPolicy::Max,
        },
        scale_down: ScalingRules {
            stabilization_window_seconds: 300,
            policies: vec![ScalingPolicy {
                type_: PolicyType::Percent,
                value: 100,
                period_seconds: 15,
            }],
            select_policy: SelectPolicy::Max,
        },
    }
}

/// The HPA v2 with an `AverageValue` target of `utilization × targetPerReplica`, syncing every 15 s.
pub fn hpa(trace: &Trace, setup: &Setup, spec: &ValidatedSpec, utilization: f64) -> Run {
    const TOLERANCE: f64 = 0.1;
    const SYNCS_PER_MINUTE: i64 = 4;
    let target = spec.target_per_replica * utilization;
    let behavior_spec = ValidatedSpec {
        behavior: hpa_behavior(),
        ..spec.clone()
    };
    let metric = trace.metric();
    let mut memory = Memory::default();
    let mut current = initial_replicas(trace, spec);
    let mut desired = Vec::with_capacity(trace.minutes());
    for t in 0..trace.minutes() {
        let seen = t
            .checked_sub(setup.metric_lag)
            .map(|i| metric[i])
            .filter(|v| v.is_finite());
        if let Some(load) = seen {
            for sync in 0..SYNCS_PER_MINUTE {
                let now = trace.time(t) + Duration::seconds(sync * 15);
                let ratio = load / (target * current as f64);
                let recommendation = if (ratio - 1.0).abs() <= TOLERANCE {
                    current
                } else {
                    (load / target).ceil() as u32
                }
                .clamp(spec.min_replicas, spec.max_replicas);
                current =
                    plan::shape_replicas(&behavior_spec, current, recommendation, &mut memory, now);
            }
        }
        // Without a metric the HPA does not scale.
        desired.push(current);
    }
    Run {
        name: format!("hpa{}", (utilization * 100.0).round()),
        desired,
        forecast: None,
    }
}

fn initial_replicas(trace: &Trace, spec: &ValidatedSpec) -> u32 {
    ((trace.demand[0] / spec.target_per_replica).ceil() as u32)
        .clamp(spec.min_replicas, spec.max_replicas)
}

/// All strategies on one trace, with their scores.
pub struct Outcome {
    pub needed: Vec<u32>,
    pub runs: Vec<Run>,
    pub scores: Vec<Score>,
    /// Wall-clock time of prescaler's own replay (the baselines are not counted).
    pub prescaler_seconds: f64,
}

/// Runs prescaler, the HPA at 100 % and 80 %, and the oracle, and scores them.
pub fn run_all(trace: &Trace, setup: &Setup, spec: &ValidatedSpec, model: &ModelConfig) -> Outcome {
    let needed = needed(trace, spec);
    let oracle = oracle(&needed, setup.startup_delay);
    let started = std::time::Instant::now();
    let own = prescaler(trace, setup, spec, model);
    let prescaler_seconds = started.elapsed().as_secs_f64();
    let runs = vec![
        own,
        hpa(trace, setup, spec, 1.0),
        hpa(trace, setup, spec, 0.8),
        oracle,
    ];
    let oracle_cost = score(trace, setup, &needed, runs.last().expect("oracle"), None).cost;
    let scores = runs
        .iter()
        .map(|r| score(trace, setup, &needed, r, Some(oracle_cost)))
        .collect();
    Outcome {
        needed,
        runs,
        scores,
        prescaler_seconds,
    }
}

/// A spec for a backtest without a manifest: defaults plus the load per replica.
pub fn default_spec(target_per_replica: f64) -> PredictiveScalerSpec {
    serde_json::from_value(serde_json::json!({
        "scaleTargetRef": { "kind": "Deployment", "name": "backtest" },
        "maxReplicas": 1000,
        "metric": { "query": "backtest", "targetPerReplica": target_per_replica },
    }))
    .expect("the default spec deserializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_lags_scale_ups_and_follows_scale_downs_at_once() {
        let desired = [2, 2, 5, 5, 5, 5, 5, 5, 3, 3];
        assert_eq!(ready(&desired, 3), vec![2, 2, 2, 2, 2, 5, 5, 5, 3, 3]);
        assert_eq!(ready(&desired, 0), desired.to_vec());
    }

    #[test]
    fn oracle_covers_the_next_delay_minutes() {
        let needed = [1, 1, 1, 4, 1, 1];
        assert_eq!(oracle(&needed, 2).desired, vec![1, 4, 4, 4, 1, 1]);
    }
}
