//! The HPA frontier: the HPA however it is tuned. Each target utilization is one point
//! (violation %, cost); sweeping 40 %, 42 %, …, 100 % and keeping the lower envelope gives the
//! cheapest cost any HPA setting reaches at each availability. A strategy is compared with it at
//! equal violations: how much cheaper it is than the HPA setting that gives the same violation
//! minutes.

use serde::Serialize;

use super::baselines::{HpaModel, hpa};
use super::score::{Score, score};

/// One HPA setting's result.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Point {
    /// The target utilization, as a fraction of `targetPerReplica`.
    pub utilization: f64,
    pub violation_percent: f64,
    /// Replica-hours.
    pub cost: f64,
}

/// The lower envelope of the HPA sweep, by rising violation %.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Frontier {
    /// Every setting swept.
    pub sweep: Vec<Point>,
    /// The settings on the envelope: for rising violation %, each cheaper than all before it.
    pub envelope: Vec<Point>,
}

/// How a strategy compares with the frontier.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Comparison {
    /// The frontier's cost at the strategy's violation % (clamped to its ends).
    pub hpa_cost_at_equal_violations: f64,
    /// `1 - cost / hpa_cost_at_equal_violations`: above 0, cheaper than every HPA setting with the
    /// same availability.
    pub saving_at_equal_violations: f64,
    /// The frontier's violation % at the strategy's cost (clamped to its ends).
    pub hpa_violation_percent_at_equal_cost: f64,
}

/// The target utilizations swept: 40 %, 42 %, …, 100 %.
pub fn utilizations() -> impl Iterator<Item = f64> {
    (20..=50).map(|i| i as f64 / 50.0)
}

impl Frontier {
    /// Sweeps the HPA over `utilizations()` and keeps the lower envelope.
    pub fn sweep(model: &HpaModel, needed: &[u32], scored: &[bool], delay: usize) -> Self {
        let sweep = utilizations()
            .map(|u| {
                let run = hpa(model, u);
                let s = score(&run.name, &run.desired, needed, scored, delay, None);
                Point {
                    utilization: u,
                    violation_percent: s.violation_percent,
                    cost: s.cost,
                }
            })
            .collect();
        Self::from_points(sweep)
    }

    /// The lower envelope of `sweep`.
    pub fn from_points(sweep: Vec<Point>) -> Self {
        let mut sorted = sweep.clone();
        sorted.sort_by(|a, b| {
            a.violation_percent
                .total_cmp(&b.violation_percent)
                .then(a.cost.total_cmp(&b.cost))
        });
        let mut envelope: Vec<Point> = Vec::new();
        for p in sorted {
            if envelope.last().is_none_or(|last| p.cost < last.cost) {
                envelope.push(p);
            }
        }
        Self { sweep, envelope }
    }

    /// The envelope's cost at `violation_percent`, linearly interpolated, clamped to its ends.
    pub fn cost_at(&self, violation_percent: f64) -> f64 {
        interpolate(
            self.envelope.iter().map(|p| (p.violation_percent, p.cost)),
            violation_percent,
        )
    }

    /// The envelope's violation % at `cost`, linearly interpolated, clamped to its ends.
    pub fn violations_at(&self, cost: f64) -> f64 {
        // Along the envelope the cost falls as violations rise: read it backwards.
        interpolate(
            self.envelope
                .iter()
                .rev()
                .map(|p| (p.cost, p.violation_percent)),
            cost,
        )
    }

    pub fn compare(&self, strategy: &Score) -> Comparison {
        let hpa_cost = self.cost_at(strategy.violation_percent);
        Comparison {
            hpa_cost_at_equal_violations: hpa_cost,
            saving_at_equal_violations: if hpa_cost > 0.0 {
                1.0 - strategy.cost / hpa_cost
            } else {
                0.0
            },
            hpa_violation_percent_at_equal_cost: self.violations_at(strategy.cost),
        }
    }
}

/// `y` at `x` on the polyline through `points` (rising `x`), clamped to its ends.
fn interpolate(points: impl Iterator<Item = (f64, f64)>, x: f64) -> f64 {
    let points: Vec<(f64, f64)> = points.collect();
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return f64::NAN;
    };
    if x <= first.0 {
        return first.1;
    }
    if x >= last.0 {
        return last.1;
    }
    for w in points.windows(2) {
        let ((x0, y0), (x1, y1)) = (w[0], w[1]);
        if x <= x1 {
            return if x1 > x0 {
                y0 + (y1 - y0) * (x - x0) / (x1 - x0)
            } else {
                y0.min(y1)
            };
        }
    }
    last.1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(u: f64, v: f64, c: f64) -> Point {
        Point {
            utilization: u,
            violation_percent: v,
            cost: c,
        }
    }

    #[test]
    fn the_envelope_keeps_only_points_cheaper_than_all_before() {
        let f = Frontier::from_points(vec![
            p(0.4, 0.0, 200.0),
            p(0.5, 0.5, 150.0),
            p(0.6, 1.0, 160.0), // dearer than a setting with fewer violations: off the envelope
            p(0.7, 2.0, 100.0),
            p(0.8, 4.0, 80.0),
        ]);
        let kept: Vec<f64> = f.envelope.iter().map(|p| p.utilization).collect();
        assert_eq!(kept, [0.4, 0.5, 0.7, 0.8]);
        assert_eq!(f.cost_at(1.25), 125.0, "halfway between 0.5 % and 2 %");
        assert_eq!(f.cost_at(0.0), 200.0);
        assert_eq!(f.cost_at(10.0), 80.0, "clamped to the end");
        assert_eq!(f.violations_at(125.0), 1.25);
        assert_eq!(f.violations_at(1000.0), 0.0);

        let strategy = Score {
            strategy: "s".into(),
            scored_minutes: 100,
            violation_minutes: 1,
            violation_percent: 1.25,
            shortfall: 1.0,
            cost: 100.0,
            cost_vs_oracle: 1.0,
            changes: 0,
        };
        let c = f.compare(&strategy);
        assert!((c.saving_at_equal_violations - 0.2).abs() < 1e-12, "{c:?}");
        assert_eq!(c.hpa_violation_percent_at_equal_cost, 2.0);
    }
}
