//! The HorizontalPodAutoscaler as a model, one minute at a time: what the HPA would have asked
//! for on the same metric. The backtest replays it over a whole trace (its `hpa` baseline and the
//! HPA frontier) and the operator over the live metric, minute by minute, to publish what an HPA
//! would have cost (`ledger`): one model for both, so their figures agree.

use std::collections::VecDeque;

use super::replicas_for;

/// Changes within 10 % of the target are ignored (`--horizontal-pod-autoscaler-tolerance`).
const TOLERANCE: f64 = 0.1;
/// The HPA syncs every 15 seconds (`--horizontal-pod-autoscaler-sync-period`).
pub const SYNC_SECONDS: i64 = 15;
/// Scale-down stabilization: the highest recommendation of the last 5 minutes.
const DOWN_STABILIZATION_SECONDS: i64 = 300;

/// What the HPA is configured with: an `AverageValue` target of `utilization ×
/// target_per_replica` on the metric, and the workload's bounds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HpaConfig {
    pub target_per_replica: f64,
    /// The target utilization, a fraction (0.8 for 80 %).
    pub utilization: f64,
    pub min_replicas: u32,
    pub max_replicas: u32,
}

/// The HPA v2 with the default `behavior`: scale up by at most max(+4 pods, +100 %) per 15 s,
/// scale down to the highest recommendation of the last 5 minutes (unlimited in rate). Without a
/// metric it does not scale.
///
/// The default policies' periods equal the sync period, so each sync's limit is relative to the
/// count at that sync, and the stabilization window is a sliding maximum: O(1) per sync, which
/// lets the backtest sweep the HPA over many targets (a test of the backtest checks it against
/// the general `behavior` code). Its state is bounded: the window holds at most one entry per
/// sync of the last 5 minutes (21), so a live model costs a few hundred bytes.
#[derive(Clone, Debug)]
pub struct Hpa {
    current: u32,
    /// The seconds of the next sync (the model's own clock, from 0).
    clock: i64,
    /// Recent recommendations (second, value), values decreasing: the front is the window's max.
    window: VecDeque<(i64, u32)>,
}

impl Hpa {
    /// An HPA whose target has `initial` replicas.
    pub fn new(initial: u32) -> Self {
        Self {
            current: initial,
            clock: 0,
            window: VecDeque::new(),
        }
    }

    /// The replicas the HPA asks for now.
    pub fn current(&self) -> u32 {
        self.current
    }

    /// One minute (four syncs) on `seen`, the metric the HPA sees this minute (`NaN`: none, it
    /// does not scale); returns the replicas it asks for at the minute's end.
    pub fn minute(&mut self, config: &HpaConfig, seen: f64) -> u32 {
        if seen.is_finite() {
            for sync in 0..60 / SYNC_SECONDS {
                let now = self.clock + sync * SYNC_SECONDS;
                let recommendation = recommend(config, self.current, seen);
                while self
                    .window
                    .front()
                    .is_some_and(|&(t, _)| now - t > DOWN_STABILIZATION_SECONDS)
                {
                    self.window.pop_front();
                }
                let down = self
                    .window
                    .front()
                    .map_or(recommendation, |&(_, r)| r.max(recommendation));
                while self
                    .window
                    .back()
                    .is_some_and(|&(_, r)| r <= recommendation)
                {
                    self.window.pop_back();
                }
                self.window.push_back((now, recommendation));
                let stabilized = self.current.max(recommendation).min(down);
                let up_limit = (self.current.saturating_add(4)).max(self.current.saturating_mul(2));
                self.current = stabilized.min(up_limit);
            }
        }
        self.clock += 60;
        self.current
    }
}

/// The HPA's proposal on one metric for a target at `current` replicas (its
/// `GetExternalMetricReplicas` with an `AverageValue` target): the count the metric needs at
/// the target, unless within the tolerance of `current`; within the bounds.
fn recommend(config: &HpaConfig, current: u32, seen: f64) -> u32 {
    let target = config.target_per_replica * config.utilization;
    let ratio = seen / (target * current as f64);
    if (ratio - 1.0).abs() <= TOLERANCE {
        current
    } else {
        replicas_for(seen, target)
    }
    .clamp(config.min_replicas, config.max_replicas)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    const CONFIG: HpaConfig = HpaConfig {
        target_per_replica: 10.0,
        utilization: 0.8,
        min_replicas: 1,
        max_replicas: 100,
    };

    #[test]
    fn scales_up_within_its_rate_limit_and_down_after_five_minutes() {
        let mut hpa = Hpa::new(2);
        // 400 at a target of 8 a replica: 50 replicas, reached by doubling (or +4) each sync.
        assert_eq!(hpa.minute(&CONFIG, 400.0), 48, "2 → 6 → 12 → 24 → 48");
        // 400 on 48 replicas is within 10 % of the target: it stays.
        assert_eq!(hpa.minute(&CONFIG, 400.0), 48);
        // The load falls: the highest recommendation of the last 5 minutes holds.
        for m in 0..4 {
            assert_eq!(hpa.minute(&CONFIG, 16.0), 48, "minute {m}");
        }
        let mut settled = 48;
        for _ in 0..3 {
            settled = hpa.minute(&CONFIG, 16.0);
        }
        assert_eq!(settled, 2, "16 at 8 a replica, once the window has passed");
    }

    #[test]
    fn without_a_metric_it_holds_and_within_tolerance_it_stays() {
        let mut hpa = Hpa::new(10);
        assert_eq!(hpa.minute(&CONFIG, f64::NAN), 10);
        // 84 at 8 a replica is 10.5: within 10 % of 10 replicas.
        assert_eq!(hpa.minute(&CONFIG, 84.0), 10);
        assert_eq!(hpa.minute(&CONFIG, 100.0), 13);
    }

    #[test]
    fn its_memory_is_bounded_by_the_stabilization_window() {
        let mut hpa = Hpa::new(1);
        // A falling load keeps every recommendation in the window (each below the last).
        for m in 0..10_000 {
            hpa.minute(&CONFIG, 10_000.0 - m as f64);
            assert!(hpa.window.len() <= 21, "{}", hpa.window.len());
        }
    }

    /// The live account and the backtest run the HPA on several metrics' need in replicas
    /// (`max(load / targetPerReplica)`, a target of 1 a replica). That is the HPA's
    /// `computeReplicasForMetrics` — each metric's proposal on its own load and target, the
    /// highest kept — because a proposal rises with its metric's load in replicas and the
    /// tolerance compares the same ratio with the current count.
    #[test]
    fn on_several_metrics_the_highest_proposal_is_the_proposal_on_their_need_in_replicas() {
        let mut rng = SplitMix64(22);
        let mut uniform = |below: f64| (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * below;
        let mut differ = 0;
        for _ in 0..20_000 {
            let current = 1 + uniform(40.0) as u32;
            let targets = [
                10.0 + uniform(90.0),
                1.0 + uniform(20.0),
                0.5 + uniform(5.0),
            ];
            // Loads around what `current` replicas serve, so that tolerance and rounding both
            // come into play.
            let loads: Vec<f64> = targets
                .iter()
                .map(|t| t * 0.8 * current as f64 * uniform(1.4))
                .collect();
            let config = |target_per_replica: f64| HpaConfig {
                target_per_replica,
                ..CONFIG
            };
            let per_metric = targets
                .iter()
                .zip(&loads)
                .map(|(t, l)| recommend(&config(*t), current, *l))
                .max()
                .unwrap();
            let need = targets
                .iter()
                .zip(&loads)
                .fold(0.0, |m, (t, l)| f64::max(m, l / t));
            let combined = recommend(&config(1.0), current, need);
            assert_eq!(
                per_metric, combined,
                "{current} replicas, {loads:?} at {targets:?}"
            );
            differ += usize::from(recommend(&config(targets[0]), current, loads[0]) != combined);
        }
        assert!(differ > 5_000, "the metrics take turns deciding: {differ}");
    }
}
