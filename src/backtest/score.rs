//! The scoring model (`docs/simulation.md`): what the load needs, what a strategy had ready, and
//! its scores over the evaluation window.
//!
//! A minute is scored when it lies in the evaluation window and the trace observed it (it is not
//! inside a gap): its cost and its violations count, or neither does.

use serde::Serialize;

use super::trace::Trace;
use super::{Run, Setup};
use crate::planning::needed_replicas;

/// `clamp(ceil(d / targetPerReplica), min, max)` per minute.
pub fn needed(trace: &Trace, target_per_replica: f64, min: u32, max: u32) -> Vec<u32> {
    trace
        .demand
        .iter()
        .map(|&d| needed_replicas(d, target_per_replica, min, max, false))
        .collect()
}

/// The share (%) of the scored minutes in `minutes` whose ready replicas fell short of the
/// needed ones; `None` when none of them is scored. `scored` and `needed` as in `Outcome`,
/// `ready` from `ready`.
pub fn short_percent(
    scored: &[bool],
    ready: &[u32],
    needed: &[u32],
    minutes: std::ops::Range<usize>,
) -> Option<f64> {
    let within = minutes.start..minutes.end.max(minutes.start);
    let (mut n, mut short) = (0usize, 0usize);
    for ((&scored, &ready), &needed) in scored[within.clone()]
        .iter()
        .zip(&ready[within.clone()])
        .zip(&needed[within])
    {
        if scored {
            n += 1;
            short += usize::from(ready < needed);
        }
    }
    (n > 0).then(|| 100.0 * short as f64 / n as f64)
}

/// Ready replicas per minute (`planning::pods`, the simulated pods the operator's live
/// accounting also runs): what was asked for `delay` minutes ago and has not been removed since.
pub use crate::planning::pods::ready;

/// One strategy's scores over the scored minutes.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Score {
    pub strategy: String,
    pub scored_minutes: usize,
    pub violation_minutes: usize,
    pub violation_percent: f64,
    /// Replica-minutes missing.
    pub shortfall: f64,
    /// Replica-hours asked for.
    pub cost: f64,
    /// Cost relative to the oracle's (perfect foresight).
    pub cost_vs_oracle: f64,
    /// How often the replica count changed.
    pub changes: usize,
}

/// Which minutes count: inside the evaluation window and observed by the trace.
pub fn scored_minutes(trace: &Trace, setup: &Setup) -> Vec<bool> {
    let first = setup.eval_index(trace);
    (0..trace.minutes())
        .map(|t| t >= first && trace.observed[t])
        .collect()
}

/// Scores `desired` against `needed` over the `scored` minutes.
pub fn score(
    name: &str,
    desired: &[u32],
    needed: &[u32],
    scored: &[bool],
    delay: usize,
    oracle_cost: Option<f64>,
) -> Score {
    let ready = ready(desired, delay);
    let (mut minutes, mut violations, mut shortfall, mut cost, mut changes) = (0, 0, 0.0, 0.0, 0);
    for t in 0..desired.len() {
        if !scored[t] {
            continue;
        }
        minutes += 1;
        cost += desired[t] as f64 / 60.0;
        if t > 0 && desired[t] != desired[t - 1] {
            changes += 1;
        }
        let short = needed[t].saturating_sub(ready[t]);
        if short > 0 {
            violations += 1;
            shortfall += short as f64;
        }
    }
    Score {
        strategy: name.to_string(),
        scored_minutes: minutes,
        violation_minutes: violations,
        violation_percent: if minutes > 0 {
            100.0 * violations as f64 / minutes as f64
        } else {
            0.0
        },
        shortfall,
        cost,
        cost_vs_oracle: match oracle_cost {
            Some(o) if o > 0.0 => cost / o,
            _ => 1.0,
        },
        changes,
    }
}

/// The score of `run`.
pub fn score_run(
    run: &Run,
    needed: &[u32],
    scored: &[bool],
    delay: usize,
    oracle_cost: Option<f64>,
) -> Score {
    score(&run.name, &run.desired, needed, scored, delay, oracle_cost)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gap_minute_counts_for_neither_cost_nor_violations() {
        let desired = [1, 1, 1, 1];
        let needed = [1, 5, 5, 1];
        let all = score("s", &desired, &needed, &[true; 4], 0, None);
        let gap = score("s", &desired, &needed, &[true, false, false, true], 0, None);
        assert_eq!((all.violation_minutes, all.scored_minutes), (2, 4));
        assert_eq!((gap.violation_minutes, gap.scored_minutes), (0, 2));
        assert!((all.cost - 4.0 / 60.0).abs() < 1e-12);
        assert!((gap.cost - 2.0 / 60.0).abs() < 1e-12);
    }
}
