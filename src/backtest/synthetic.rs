//! The synthetic regime suite: load that changes regime, generated from a seed, to judge the
//! forecast on what the developer traces have little of — level shifts, term breaks, growth, an
//! inverted week, a sharp daily step, a flash crowd and a week without metrics. Each scenario is
//! a smooth shape (the "original", which the foresight bound knows) with the developer traces'
//! minute-level texture laid over it (an AR(1) with φ = 0.6 and σ = 0.10, lognormal, as
//! `docs/simulation.md` describes for the textured traces). `prescaler-bench regimes` writes them
//! as scenario files; `tests/regimes.rs` replays them in process. Described in
//! `docs/simulation.md`.
//!
//! The random numbers come from SplitMix64 (`planning::rng`, also the demo trace's generator)
//! rather than from the `rand` crate, so that a seed means the same suite whatever a dependency
//! does.

use chrono::{DateTime, Datelike, Duration, TimeZone, Timelike, Utc, Weekday};

use super::trace::Trace;
pub use crate::planning::rng::SplitMix64;

/// A trace's samples, one a minute, as (time, load).
pub type Samples = Vec<(DateTime<Utc>, f64)>;

/// The first minute of every scenario: a Monday.
pub fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap()
}

/// The load one replica carries in every scenario: the usual day peaks near 40 replicas.
pub const CAPACITY: f64 = 100.0;

/// Day of the change in the scenarios that have one (after two weeks of warm-up and a week of
/// scoring in the old regime).
pub const CHANGE_DAY: i64 = 21;

/// One scenario of the suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Regime {
    /// The level triples within half an hour on day 21 (a launch, a migration onto the service).
    ShiftUp,
    /// The level falls to 0.3 within half an hour on day 21 (traffic moved elsewhere).
    ShiftDown,
    /// A two-week term break from day 21: a third of the level and a flatter day; then term
    /// again.
    TermBreak,
    /// +2 % a day, compounded.
    Growth,
    /// Weekends at 0.6 of weekdays until day 21, then at 1.6 and the weekdays at 0.8.
    WeekendInversion,
    /// On weekdays the load jumps to 2.5 times within a minute at 09:00 and falls back at 17:00
    /// (a cron-driven batch, business hours).
    DailyStep,
    /// Ten times the load for 20 minutes on day 24 at 15:00, unannounced.
    FlashCrowd,
    /// No metric for a week from day 21 (the load goes on).
    MetricOutage,
}

pub const REGIMES: [Regime; 8] = [
    Regime::ShiftUp,
    Regime::ShiftDown,
    Regime::TermBreak,
    Regime::Growth,
    Regime::WeekendInversion,
    Regime::DailyStep,
    Regime::FlashCrowd,
    Regime::MetricOutage,
];

impl Regime {
    pub fn name(self) -> &'static str {
        match self {
            Regime::ShiftUp => "shift_up",
            Regime::ShiftDown => "shift_down",
            Regime::TermBreak => "term_break",
            Regime::Growth => "growth",
            Regime::WeekendInversion => "weekend_inversion",
            Regime::DailyStep => "daily_step",
            Regime::FlashCrowd => "flash_crowd",
            Regime::MetricOutage => "metric_outage",
        }
    }

    /// How many days the scenario runs.
    pub fn days(self) -> i64 {
        match self {
            Regime::TermBreak => 42,
            _ => 35,
        }
    }

    /// When the regime changes (the second change of a term break is its end), if it does.
    pub fn changes(self) -> Vec<DateTime<Utc>> {
        let day = |d: i64, h: i64| start() + Duration::days(d) + Duration::hours(h);
        match self {
            Regime::ShiftUp | Regime::ShiftDown => vec![day(CHANGE_DAY, 10)],
            Regime::TermBreak => vec![day(CHANGE_DAY, 0), day(CHANGE_DAY + 14, 0)],
            Regime::WeekendInversion => vec![day(CHANGE_DAY, 0)],
            Regime::FlashCrowd => vec![day(24, 15)],
            Regime::MetricOutage => vec![day(CHANGE_DAY + 7, 0)],
            Regime::Growth | Regime::DailyStep => Vec::new(),
        }
    }

    /// The minutes without a metric, `[from, to)`.
    pub fn outage(self) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        (self == Regime::MetricOutage).then(|| {
            let from = start() + Duration::days(CHANGE_DAY);
            (from, from + Duration::days(7))
        })
    }

    /// The smooth load at `t` (requests per second): the shape the foresight bound knows.
    pub fn shape(self, t: DateTime<Utc>) -> f64 {
        let since = t - start();
        let days = since.num_minutes() as f64 / 1440.0;
        let hour = f64::from(t.hour()) + f64::from(t.minute()) / 60.0;
        let weekend = matches!(t.weekday(), Weekday::Sat | Weekday::Sun);
        let after = |change: DateTime<Utc>, over_minutes: f64| {
            ((t - change).num_minutes() as f64 / over_minutes).clamp(0.0, 1.0)
        };
        let change = start() + Duration::days(CHANGE_DAY) + Duration::hours(10);
        let mut day = usual_day(hour);
        let mut week = if weekend { 0.6 } else { 1.0 };
        let mut level = 3500.0;
        match self {
            Regime::ShiftUp => level *= 1.0 + 2.0 * after(change, 30.0),
            Regime::ShiftDown => level *= 1.0 - 0.7 * after(change, 30.0),
            Regime::TermBreak => {
                if (CHANGE_DAY as f64..(CHANGE_DAY + 14) as f64).contains(&days) {
                    // A third of the level, and half the day's swing.
                    level /= 3.0;
                    day = 0.5 * day + 0.5 * 0.6;
                }
            }
            Regime::Growth => level *= 1.02f64.powf(days),
            Regime::WeekendInversion => {
                if days >= CHANGE_DAY as f64 {
                    week = if weekend { 1.6 } else { 0.8 };
                }
            }
            Regime::DailyStep => {
                if !weekend && (9.0..17.0).contains(&hour) {
                    day *= 2.5;
                    level *= 0.6;
                } else {
                    level *= 0.6;
                }
            }
            Regime::FlashCrowd => {
                let crowd = start() + Duration::days(24) + Duration::hours(15);
                let m = (t - crowd).num_minutes();
                if (0..20).contains(&m) {
                    level *= 1.0 + 9.0 * ((m + 1) as f64 / 2.0).min(1.0);
                }
            }
            Regime::MetricOutage => {}
        }
        level * day * week
    }

    /// The scenario's samples, one a minute: the smooth shape and the textured load, without
    /// the outage's minutes in either.
    pub fn samples(self, seed: u64) -> (Samples, Samples) {
        // One generator per scenario, so that each scenario's texture is the same whichever
        // others are generated.
        let mut rng = SplitMix64(seed ^ (self as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        const PHI: f64 = 0.6;
        const SIGMA: f64 = 0.10;
        let mut z = rng.normal();
        let (mut smooth, mut textured) = (Vec::new(), Vec::new());
        for m in 0..self.days() * 1440 {
            let t = start() + Duration::minutes(m);
            z = PHI * z + (1.0 - PHI * PHI).sqrt() * rng.normal();
            if self.outage().is_some_and(|(a, b)| a <= t && t < b) {
                continue;
            }
            let s = self.shape(t);
            smooth.push((t, round2(s)));
            textured.push((t, round2(s * (SIGMA * z - SIGMA * SIGMA / 2.0).exp())));
        }
        (smooth, textured)
    }

    /// The textured scenario as a trace, and its smooth original.
    pub fn traces(self, seed: u64) -> (Trace, Trace) {
        let (smooth, textured) = self.samples(seed);
        let name = format!("{}_textured_1m.csv", self.name());
        (
            Trace::from_samples(&name, &textured),
            Trace::from_samples(&format!("{}.csv", self.name()), &smooth),
        )
    }
}

/// The usual day, in UTC hours: quiet nights at a quarter of the peak, a morning ramp from 06:00
/// to 10:00, a lunch bump, and an evening decline from 18:00.
fn usual_day(hour: f64) -> f64 {
    let bump = (-((hour - 12.5) / 1.2).powi(2)).exp();
    0.25 + 0.75 * smoothstep(6.0, 10.0, hour) * (1.0 - smoothstep(18.0, 23.0, hour)) + 0.15 * bump
}

fn smoothstep(a: f64, b: f64, x: f64) -> f64 {
    let t = ((x - a) / (b - a)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// `samples` as `timestamp,value` CSV.
pub fn csv(samples: &[(DateTime<Utc>, f64)]) -> String {
    let mut out = String::with_capacity(samples.len() * 32);
    out.push_str("timestamp,value\n");
    for (t, v) in samples {
        out.push_str(&format!("{},{v:.2}\n", t.format("%Y-%m-%dT%H:%M:%SZ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_regime_changes_as_described() {
        let at = |d: i64, h: i64| start() + Duration::days(d) + Duration::hours(h);
        // Tuesday noon before and after the change.
        let (before, after) = (at(15, 12), at(22, 12));
        let ratio = |r: Regime| r.shape(after) / r.shape(before);
        assert!((ratio(Regime::ShiftUp) - 3.0).abs() < 1e-9);
        assert!((ratio(Regime::ShiftDown) - 0.3).abs() < 1e-9);
        assert!(ratio(Regime::TermBreak) < 0.5);
        assert!((ratio(Regime::Growth) - 1.02f64.powi(7)).abs() < 1e-9);
        assert!((ratio(Regime::MetricOutage) - 1.0).abs() < 1e-9);
        // Saturday against Tuesday: below before the inversion, above after it.
        let inv = Regime::WeekendInversion;
        assert!(inv.shape(at(19, 12)) < inv.shape(at(15, 12)));
        assert!(inv.shape(at(26, 12)) > inv.shape(at(22, 12)));
        // The step is a step: within one minute, on weekdays only.
        let step = Regime::DailyStep;
        let nine = at(15, 9);
        assert!(step.shape(nine) > 2.0 * step.shape(nine - Duration::minutes(1)));
        assert!(step.shape(at(19, 9)) < 1.1 * step.shape(at(19, 9) - Duration::minutes(1)));
        // The crowd: ten times, twenty minutes.
        let crowd = Regime::FlashCrowd;
        let c = at(24, 15);
        assert!(crowd.shape(c + Duration::minutes(5)) > 9.0 * crowd.shape(at(23, 15)));
        assert!(
            crowd.shape(c + Duration::minutes(20))
                < 1.01 * crowd.shape(at(23, 15) + Duration::minutes(20))
        );
        // A week of metrics is missing, and the scored trace has that gap.
        let (_, textured) = Regime::MetricOutage.traces(1);
        let gap = (at(CHANGE_DAY, 12) - textured.start).num_minutes() as usize;
        assert!(!textured.observed[gap] && textured.observed[gap + 8 * 1440]);
    }

    #[test]
    fn a_seed_is_a_suite() {
        // The seed sets the texture; the shape is the scenario's.
        let (sa, a) = Regime::ShiftUp.samples(1);
        let (sb, b) = Regime::ShiftUp.samples(1);
        let (sc, c) = Regime::ShiftUp.samples(2);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!((&sa, &sa), (&sb, &sc));
        // The texture's spread is the developer traces': about 10 % around the shape.
        let (smooth, textured) = Regime::Growth.samples(3);
        let logs: Vec<f64> = smooth
            .iter()
            .zip(&textured)
            .map(|((_, s), (_, v))| (v / s).ln())
            .collect();
        let mean = logs.iter().sum::<f64>() / logs.len() as f64;
        let sd = (logs.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / logs.len() as f64).sqrt();
        assert!((0.09..0.11).contains(&sd), "{sd}");
    }
}
