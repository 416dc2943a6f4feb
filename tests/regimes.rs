//! The synthetic regime suite (`backtest::synthetic`), replayed with the default spec: after
//! a change of regime the objective is met again within a day, and after a week without metrics
//! nothing is scaled below what the live load needs. The changes after which it is not met yet
//! (issue 18) are ignored tests that say by how much; `cargo test --release --test integration
//! regimes:: -- --ignored` runs them.

use prescaler::api::PredictiveScalerSpec;
use prescaler::backtest::synthetic::{self, Regime};
use prescaler::backtest::{self, Setup, score};
use prescaler::planning::forecast::ModelConfig;

const SEED: u64 = 1;

/// The default spec for a scenario of the suite at `startup` minutes of start-up (and one of
/// metric delay), as `prescaler-bench scenarios` runs it.
fn spec(startup: i64) -> prescaler::api::ValidatedSpec {
    let mut s = PredictiveScalerSpec::new(synthetic::CAPACITY, 1000);
    s.min_replicas = 1;
    s.forecast.lead_time = format!("{}m", startup + 1).as_str().into();
    s.validate().expect("a valid spec")
}

/// The violation % of `regime`'s replay over the scored minutes from a day after each change to
/// the next, and over the day after each change.
fn after_changes(regime: Regime, startup: i64) -> Vec<(f64, f64)> {
    let (trace, _) = regime.traces(SEED);
    let mut setup = Setup::for_trace(&trace);
    setup.startup_delay = chrono::Duration::minutes(startup);
    let spec = spec(startup);
    let outcome = backtest::run_all(&trace, &setup, &spec, &ModelConfig::default()).unwrap();
    let ready = score::ready(&outcome.runs[0].desired, setup.delay_minutes());
    let changes = regime.changes();
    let at = |t: chrono::DateTime<chrono::Utc>| {
        ((t - trace.start).num_minutes().max(0) as usize).min(trace.minutes())
    };
    let share = |from: usize, to: usize| {
        score::short_percent(&outcome.scored, &ready, &outcome.needed, from..to).unwrap_or(0.0)
    };
    changes
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let next = changes.get(i + 1).map_or(trace.minutes(), |&n| at(n));
            let day = at(c + chrono::Duration::days(1));
            (share(day, next), share(at(c), day))
        })
        .collect()
}

/// The objective, in percent: the spec's default.
fn objective() -> f64 {
    spec(5).max_underprovisioned * 100.0
}

#[test]
fn after_a_level_shift_the_objective_is_met_again_within_a_day() {
    for regime in [Regime::ShiftUp, Regime::ShiftDown] {
        for startup in [5, 15] {
            for (after, first_day) in after_changes(regime, startup) {
                assert!(
                    after <= objective(),
                    "{regime:?} at {startup} min: {after:.3}% from a day after the shift (the day of it: {first_day:.3}%)"
                );
            }
        }
    }
}

#[test]
fn after_a_term_break_and_its_end_the_objective_is_met_again_within_a_day() {
    for startup in [5, 15] {
        for (after, first_day) in after_changes(Regime::TermBreak, startup) {
            assert!(
                after <= objective(),
                "at {startup} min: {after:.3}% from a day after the change (the day of it: {first_day:.3}%)"
            );
        }
    }
}

/// The regimes after whose change the objective is not met again within a day yet (issue 18):
/// each `(regime, start-up)` asserted on its own, so that one being met does not hide another.
fn met_again_within_a_day(regime: Regime, startup: i64) {
    for (after, first_day) in after_changes(regime, startup) {
        assert!(
            after <= objective(),
            "{regime:?} at {startup} min: {after:.3}% from a day after the change (the day of it: {first_day:.3}%)"
        );
    }
}

#[test]
#[ignore = "issue 18, not met yet: 0.160 % / 0.187 % at 5 / 15 min on seed 1 (the midnight step of the week factor, new in one of the two weeks the weekly profile reads, is smoothed into a ramp)"]
fn after_an_inverted_week_the_objective_is_met_again_within_a_day() {
    met_again_within_a_day(Regime::WeekendInversion, 5);
    met_again_within_a_day(Regime::WeekendInversion, 15);
}

/// Met since a burst in one of the two weeks the weekly forecast reads is left out of their
/// median (`ModelConfig::bursts_left_out`): 0.074 % / 0.052 % at 5 / 15 min on seed 1, from
/// 0.119 % / 0.126 % (the week after the crowd, its minutes had lowered the weekly level ratio).
#[test]
fn after_a_flash_crowd_the_objective_is_met_again_within_a_day() {
    met_again_within_a_day(Regime::FlashCrowd, 5);
    met_again_within_a_day(Regime::FlashCrowd, 15);
}

#[test]
#[ignore = "issue 18, not met yet at 5 min: 0.116 % on seed 1 (0.069 % at 15 min)"]
fn after_a_week_without_metrics_the_objective_is_met_again_within_a_day() {
    met_again_within_a_day(Regime::MetricOutage, 5);
    met_again_within_a_day(Regime::MetricOutage, 15);
}

#[test]
fn after_a_week_without_metrics_nothing_is_below_the_live_need() {
    // The load goes on through the outage; when the metric is back, every decision is at
    // least what the sustained live load needs.
    let regime = Regime::MetricOutage;
    let (trace, _) = regime.traces(SEED);
    let setup = Setup::for_trace(&trace);
    let spec = spec(5);
    let (_, back) = regime.outage().unwrap();
    let back = (back - trace.start).num_minutes() as usize;
    let mut checked = 0;
    backtest::prescaler_with(&trace, &setup, &spec, &ModelConfig::default(), |t, d| {
        if (back..back + 1440).contains(&t)
            && let Some(live) = d.live_replicas
        {
            assert!(d.desired_replicas >= live, "minute {}: {d:?}", t - back);
            checked += 1;
        }
    });
    assert!(
        checked > 1400,
        "{checked} decisions with a live load after the outage"
    );
}
