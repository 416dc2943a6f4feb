//! What prescaler is compared with: the HorizontalPodAutoscaler on the same metric, and perfect
//! foresight.

use std::collections::VecDeque;

use super::Run;
use super::trace::Trace;
use crate::planning::hpa::{Hpa, HpaConfig};
use crate::planning::replicas_for;

/// How the HPA is simulated: its algorithm and defaults (kubernetes/pkg/controller/podautoscaler).
pub struct HpaModel {
    /// The load the HPA sees each minute (`NaN` where it sees nothing), already delayed by the
    /// metric lag.
    pub seen: Vec<f64>,
    /// `targetPerReplica`: an `AverageValue` target of `utilization × targetPerReplica`.
    pub target_per_replica: f64,
    pub min_replicas: u32,
    pub max_replicas: u32,
    /// The replica count before the first minute.
    pub initial: u32,
}

/// The HPA v2 with the default `behavior` (`planning::hpa`, the model the operator also runs on
/// the live metric), one minute at a time over the trace.
pub fn hpa(model: &HpaModel, utilization: f64) -> Run {
    let config = HpaConfig {
        target_per_replica: model.target_per_replica,
        utilization,
        min_replicas: model.min_replicas,
        max_replicas: model.max_replicas,
    };
    let mut hpa = Hpa::new(model.initial);
    let desired = model
        .seen
        .iter()
        .map(|&load| hpa.minute(&config, load))
        .collect();
    Run {
        name: format!("hpa{}", (utilization * 100.0).round()),
        desired,
        forecast: None,
    }
}

/// Perfect foresight: `max(needed(u) for u in [t, t + delay])`, the physical limit.
pub fn oracle(needed: &[u32], delay: usize) -> Run {
    let mut desired = vec![0; needed.len()];
    // Sliding maximum over the next `delay` minutes, from the end.
    let mut window: VecDeque<usize> = VecDeque::new();
    for t in (0..needed.len()).rev() {
        while window.back().is_some_and(|&i| needed[i] <= needed[t]) {
            window.pop_back();
        }
        window.push_back(t);
        while window.front().is_some_and(|&i| i > t + delay) {
            window.pop_front();
        }
        desired[t] = needed[window[0]];
    }
    Run {
        name: "oracle".into(),
        desired,
        forecast: None,
    }
}

impl HpaModel {
    /// The HPA's view of `trace` for a spec's bounds: the metric `lag` minutes late.
    pub fn new(trace: &Trace, lag: usize, target_per_replica: f64, min: u32, max: u32) -> Self {
        let metric = trace.metric();
        let seen = (0..trace.minutes())
            .map(|t| t.checked_sub(lag).map_or(f64::NAN, |i| metric[i]))
            .collect();
        let initial = replicas_for(trace.demand[0], target_per_replica).clamp(min, max);
        Self {
            seen,
            target_per_replica,
            min_replicas: min,
            max_replicas: max,
            initial,
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Duration, Utc};

    use super::*;
    use crate::api::{Policy, PolicyType, Rules, SelectPolicy, ValidBehavior};
    use crate::planning::behavior;

    #[test]
    fn oracle_covers_the_next_delay_minutes() {
        let needed = [1, 1, 1, 4, 1, 1];
        assert_eq!(oracle(&needed, 2).desired, vec![1, 4, 4, 4, 1, 1]);
        assert_eq!(oracle(&needed, 0).desired, needed.to_vec());
    }

    /// The HPA's default behaviour through the general stabilization and rate-limit code.
    fn slow_hpa(model: &HpaModel, utilization: f64) -> Vec<u32> {
        let period = Duration::seconds(15);
        let hpa = ValidBehavior {
            scale_up: Rules {
                stabilization_window: Duration::zero(),
                policies: vec![
                    Policy {
                        type_: PolicyType::Pods,
                        value: 4,
                        period,
                    },
                    Policy {
                        type_: PolicyType::Percent,
                        value: 100,
                        period,
                    },
                ],
                select_policy: SelectPolicy::Max,
                default_policies: false,
            },
            scale_down: Rules {
                stabilization_window: Duration::seconds(300),
                policies: vec![Policy {
                    type_: PolicyType::Percent,
                    value: 100,
                    period,
                }],
                select_policy: SelectPolicy::Max,
                default_policies: false,
            },
        };
        let target = model.target_per_replica * utilization;
        let mut memory = behavior::Memory::default();
        let mut current = model.initial;
        let mut out = Vec::new();
        for (minute, &load) in model.seen.iter().enumerate() {
            if load.is_finite() {
                for sync in 0..4 {
                    let now = DateTime::<Utc>::UNIX_EPOCH
                        + Duration::seconds(minute as i64 * 60 + sync * 15);
                    let ratio = load / (target * current as f64);
                    let rec = if (ratio - 1.0).abs() <= 0.1 {
                        current
                    } else {
                        replicas_for(load, target)
                    }
                    .clamp(model.min_replicas, model.max_replicas);
                    current = behavior::shape(
                        &hpa,
                        (model.min_replicas, model.max_replicas),
                        current,
                        rec,
                        0,
                        &mut memory,
                        now,
                    )
                    .0;
                }
            }
            out.push(current);
        }
        out
    }

    #[test]
    fn the_fast_hpa_is_the_general_algorithm() {
        // A bursty load with gaps, from a fixed pseudo-random walk.
        let mut x = 12345u64;
        let seen: Vec<f64> = (0..3000)
            .map(|m| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let noise = (x >> 33) as f64 / (1u64 << 31) as f64;
                if m % 500 > 490 {
                    f64::NAN
                } else {
                    100.0 + 900.0 * ((m as f64 / 97.0).sin().max(0.0)).powi(3) + 200.0 * noise
                }
            })
            .collect();
        let model = HpaModel {
            seen,
            target_per_replica: 10.0,
            min_replicas: 2,
            max_replicas: 150,
            initial: 10,
        };
        for u in [0.4, 0.8, 1.0] {
            assert_eq!(
                hpa(&model, u).desired,
                slow_hpa(&model, u),
                "utilization {u}"
            );
        }
    }
}
