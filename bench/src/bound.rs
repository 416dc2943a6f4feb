//! The foresight bound: what knowing the *shape* of the coming load exactly would give, on a
//! trace whose minute-level texture was added to a coarser original.
//!
//! The strategy knows the original's linear interpolation (`smooth`) over the next start-up
//! window, not the texture, and adds a fixed margin `m` for it:
//! `desired(t) = ceil(max(max(smooth(u) for u in [t, t + delay]), d(t - lag)) × (1 + m) / c)`.
//! Swept over `m`, it traces its own cost/violation curve; read at prescaler's violation %, its
//! saving against the HPA frontier is about the most that forecasting the shape can give there.

use std::path::{Path, PathBuf};

use prescaler::api::ValidatedSpec;
use prescaler::backtest::frontier::{Frontier, Point};
use prescaler::backtest::score::score;
use prescaler::backtest::trace::Trace;
use prescaler::backtest::{Outcome, Setup};
use prescaler::planning::replicas_for;

/// The un-textured original of `trace`, if it lies beside it (`x_textured_1m.csv` → `x.csv`).
pub fn original_of(trace: &Path) -> Option<PathBuf> {
    let name = trace.file_name()?.to_str()?;
    let original =
        trace.with_file_name(name.strip_suffix("_textured_1m.csv")?.to_string() + ".csv");
    original.exists().then_some(original)
}

/// The bound's saving at equal violations, read at `violation_percent` on its own curve.
pub fn saving_at(
    trace: &Trace,
    smooth: &Trace,
    setup: &Setup,
    spec: &ValidatedSpec,
    outcome: &Outcome,
    violation_percent: f64,
) -> Option<f64> {
    let delay = setup.delay_minutes();
    let lag = setup.lag_minutes();
    let offset = (trace.start - smooth.start).num_minutes();
    let smooth_at = |t: usize| -> Option<f64> {
        let i = usize::try_from(t as i64 + offset).ok()?;
        smooth.demand.get(i).copied()
    };
    let c = spec.target_per_replica;
    let curve: Vec<Point> = (0..=40)
        .map(|k| {
            let m = k as f64 * 0.02;
            let desired: Vec<u32> = (0..trace.minutes())
                .map(|t| {
                    let ahead = (t..=(t + delay).min(trace.minutes() - 1))
                        .filter_map(smooth_at)
                        .fold(0.0, f64::max);
                    let seen = t.checked_sub(lag).map_or(0.0, |i| trace.demand[i]);
                    let load = ahead.max(seen) * (1.0 + m);
                    replicas_for(load, c).clamp(spec.min_replicas, spec.max_replicas)
                })
                .collect();
            let s = score(
                "bound",
                &desired,
                &outcome.needed,
                &outcome.scored,
                delay,
                None,
            );
            Point {
                utilization: m,
                violation_percent: s.violation_percent,
                cost: s.cost,
            }
        })
        .collect();
    let bound = Frontier::from_points(curve);
    let cost = bound.cost_at(violation_percent);
    let hpa = outcome.frontier.cost_at(violation_percent);
    (hpa > 0.0 && cost.is_finite()).then(|| 1.0 - cost / hpa)
}
