//! The planner's decisions: each term winning, the bounds, the behaviour rules, and the
//! failure hold.

use chrono::{DateTime, Duration, TimeZone, Utc};
use prescaler::api::{PolicyType, PredictiveScalerSpec, ScalingPolicy, ValidatedSpec};
use prescaler::operator::conditions;
use prescaler::planning::calibration::{BASES, Basis, Calibration, Margins};
use prescaler::planning::forecast::{Adjustments, History, ModelConfig, Predictor, predict_peak};
use prescaler::planning::plan::{self, Decision, Inputs, Memory, Reason};
use prescaler::planning::planner::Planner;
use prescaler::planning::schedule::{Scheduled, Source};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 0, 0, 0).unwrap() // a Monday
}

/// Ten replicas' worth of load at night, a step to 40 at 09:00 UTC until 17:00, every day.
fn daily_step(t: DateTime<Utc>) -> f64 {
    let minute = (t - t0()).num_minutes().rem_euclid(1440);
    if (540..1020).contains(&minute) {
        4000.0
    } else {
        1000.0
    }
}

fn spec(edit: impl FnOnce(&mut PredictiveScalerSpec)) -> ValidatedSpec {
    let mut s = PredictiveScalerSpec::new(100.0, 100);
    edit(&mut s);
    s.validate().expect("valid spec")
}

/// Replays `load` minute by minute from `t0()` up to `until` through a planner, acting on every
/// decision as the backtest does (the metric one minute behind the load), and returns the last
/// decision with the planner and the replica count it left.
fn replay(
    spec: &ValidatedSpec,
    load: impl Fn(DateTime<Utc>) -> f64,
    until: DateTime<Utc>,
) -> (Decision, Planner, u32) {
    let minutes = (until - t0()).num_minutes() as usize;
    let values: Vec<f64> = (0..minutes)
        .map(|m| load(t0() + Duration::minutes(m as i64)))
        .collect();
    // What Prometheus returns at minute m is the load of minute m - 1.
    let history = History::new(t0() + Duration::minutes(1), Duration::minutes(1), values);
    let mut planner = Planner::new(spec.clone(), ModelConfig::default());
    let mut current = 10;
    let mut last = None;
    for m in 1..=minutes {
        let d = planner.decide(Some(&history), current, t0() + Duration::minutes(m as i64));
        current = d.desired_replicas;
        last = Some(d);
    }
    (last.expect("at least one decision"), planner, current)
}

#[test]
fn forecast_wins_before_a_recurring_step() {
    // 08:56 on day 10: the live load needs 10 replicas, the step at 09:00 needs 40.
    let s = spec(|_| {});
    let (d, _, _) = replay(
        &s,
        daily_step,
        t0() + Duration::days(10) + Duration::minutes(536),
    );
    assert!(d.calibration.is_some() && d.forecast_used(), "{d:?}");
    assert!(
        matches!(d.reason, Reason::Forecast(basis) if basis.forecasts()),
        "{d:?}"
    );
    // The live load needs 10; the calibrated margin (which a sharp ×4 step calls for) is on it.
    assert!(d.reactive_replicas.unwrap() < 40, "{d:?}");
    assert!(
        d.desired_replicas >= 40,
        "pre-scaled only to {}",
        d.desired_replicas
    );
}

#[test]
fn reactive_wins_on_an_unforeseen_surge() {
    // Flat load for days, then a sudden tripling the history has never seen.
    let s = spec(|_| {});
    let surge_at = t0() + Duration::days(3);
    let load = |t: DateTime<Utc>| if t >= surge_at { 3000.0 } else { 1000.0 };
    let (d, _, _) = replay(&s, load, surge_at + Duration::minutes(2));
    assert_eq!(d.reason, Reason::Reactive, "{d:?}");
    assert_eq!(d.desired_replicas, 30);
}

#[test]
fn peak_window_floor_wins_and_is_reached_a_lead_time_early() {
    let s = spec(|s| {
        s.peak_windows = vec![serde_json::from_value(serde_json::json!({
            "name": "launch", "schedule": "0 12 * * *", "duration": "1h", "timeZone": "UTC", "minReplicas": 50
        }))
        .unwrap()];
    });
    let flat = |_: DateTime<Utc>| 1000.0;
    // Lead time is 6m: at 11:54 the floor applies, at 11:53 not yet.
    let (d, _, _) = replay(
        &s,
        flat,
        t0() + Duration::days(2) + Duration::minutes(11 * 60 + 54),
    );
    assert_eq!(d.reason, Reason::PeakWindow("launch".into()));
    assert_eq!(d.desired_replicas, 50);
    let (d, _, _) = replay(
        &s,
        flat,
        t0() + Duration::days(2) + Duration::minutes(11 * 60 + 53),
    );
    assert!(d.desired_replicas < 50, "{d:?}");
}

#[test]
fn bounds_are_never_left() {
    let s = spec(|s| {
        s.min_replicas = 12;
        s.max_replicas = 20;
    });
    let (d, _, _) = replay(&s, |_| 100.0, t0() + Duration::hours(2));
    assert_eq!((d.desired_replicas, d.reason), (12, Reason::MinReplicas));
    let (d, _, _) = replay(&s, |_| 9000.0, t0() + Duration::hours(2));
    assert_eq!((d.desired_replicas, d.reason), (20, Reason::MaxReplicas));
}

#[test]
fn scale_down_waits_for_the_stabilization_window_then_follows_the_rate_limit() {
    // A high load, then a drop to a sixth of it at minute 120.
    let s = spec(|s| {
        s.behavior.scale_down.stabilization_window_seconds = 300;
        s.behavior.scale_down.policies = vec![ScalingPolicy {
            type_: PolicyType::Percent,
            value: 20,
            period_seconds: 60,
        }];
    });
    let drop_at = t0() + Duration::minutes(120);
    let load = |t: DateTime<Utc>| if t >= drop_at { 1000.0 } else { 6000.0 };
    let (_, _, before) = replay(&s, load, drop_at);
    // The drop is seen at +1; until +5 the old recommendation is within the window.
    let (d, _, held) = replay(&s, load, drop_at + Duration::minutes(5));
    assert_eq!(held, before, "{d:?}");
    assert_eq!(d.reason, Reason::Stabilized);
    // Then at most 20 % of the replicas go per minute (truncated, as the HPA does). At +6 the
    // window still holds +1's recommendation: one low sample does not lower the live floor (a
    // median of three samples), which asks for the 60 that 6 000 needs, as much as the rate
    // limit lets go anyway.
    let mut previous = held;
    for minute in 6..=8 {
        let (d, _, now) = replay(&s, load, drop_at + Duration::minutes(minute));
        assert_eq!(
            now,
            (previous as f64 * 0.8) as u32,
            "minute {minute}: {d:?}"
        );
        let held_by_the_floor = minute == 6 && d.reason == Reason::Stabilized;
        assert!(
            d.reason == Reason::RateLimited || held_by_the_floor,
            "{d:?}"
        );
        previous = now;
    }
    // … until it arrives at what the low load needs.
    let (d, _, end) = replay(&s, load, drop_at + Duration::minutes(40));
    assert_eq!(Some(end), d.reactive_replicas, "{d:?}");
    assert!(end < before / 4);
}

#[test]
fn scale_up_is_limited_as_the_hpa_by_default_and_as_asked() {
    let jump_at = t0() + Duration::minutes(60);
    let load = |t: DateTime<Utc>| if t >= jump_at { 5000.0 } else { 1000.0 };
    // By default as the HPA: at most max(+4 pods, +100 %) per 15 s, so doubling per decision.
    let default = spec(|_| {});
    let (_, _, before) = replay(&default, load, jump_at);
    let (d, _, after_one) = replay(&default, load, jump_at + Duration::minutes(1));
    assert_eq!(after_one, (before * 2).max(before + 4), "{d:?}");
    assert_eq!(d.reason, Reason::RateLimited);
    let (_, _, current) = replay(&default, load, jump_at + Duration::minutes(3));
    assert!(current >= 50, "{current}");

    let slow = spec(|s| {
        s.behavior.scale_up.policies = vec![ScalingPolicy {
            type_: PolicyType::Pods,
            value: 4,
            period_seconds: 60,
        }];
    });
    let (_, _, before) = replay(&slow, load, jump_at);
    // The jump is seen at +1: +4 then, and +4 at +2 (the first step has left the 60 s period).
    let (d, _, current) = replay(&slow, load, jump_at + Duration::minutes(2));
    assert_eq!(current, before + 8, "{d:?}");
    assert_eq!(d.reason, Reason::RateLimited);
}

#[test]
fn one_absurd_sample_moves_the_count_by_at_most_the_rate_limit() {
    // A single sample of 1e12 (a broken exporter) among steady load.
    let s = spec(|s| s.max_replicas = 40);
    let spike_at = t0() + Duration::days(2);
    let load = |t: DateTime<Utc>| if t == spike_at { 1e12 } else { 1000.0 };
    let (_, _, before) = replay(&s, load, spike_at + Duration::minutes(1));
    let (d, _, after) = replay(&s, load, spike_at + Duration::minutes(2));
    assert!(
        after <= (before * 2).max(before + 4),
        "{before} → {after}: {d:?}"
    );
    // A negative sample is not load: nothing is scaled down for it.
    let dip = |t: DateTime<Utc>| if t == spike_at { -5e6 } else { 1000.0 };
    let (_, _, before) = replay(&s, dip, spike_at + Duration::minutes(1));
    let (_, _, after) = replay(&s, dip, spike_at + Duration::minutes(2));
    assert!(after >= before, "{before} → {after}");
}

#[test]
fn missing_metrics_never_scale_down() {
    let s = spec(|_| {});
    let now = t0() + Duration::days(3);
    let (_, mut planner, current) = replay(&s, daily_step, now);
    // The source fails: no load at all. The current count is held, and said so.
    let d = planner.decide(None, current, now + Duration::minutes(1));
    assert_eq!(d.reason, Reason::Hold);
    assert!(!d.metrics_available);
    assert!(d.desired_replicas >= current);
    // Stale data (the last sample 20 minutes old) is no better than none.
    let history = History::new(
        now - Duration::minutes(120),
        Duration::minutes(1),
        vec![10.0; 100],
    );
    let d = Planner::new(s.clone(), ModelConfig::default()).decide(Some(&history), 37, now);
    assert_eq!((d.desired_replicas, d.reason), (37, Reason::Hold));
}

#[test]
fn an_hour_without_metrics_scales_nothing_down() {
    let s = spec(|_| {});
    // At 16:00 on day 3 the load needs 40; then Prometheus is gone for an hour, during which the
    // real load falls at 17:00. Nothing is scaled down because of the outage, whatever it lasts.
    let outage = t0() + Duration::days(3) + Duration::hours(16);
    let (_, mut planner, mut current) = replay(&s, daily_step, outage);
    let before = current;
    assert!(before >= 40);
    for m in 1..=60 {
        let d = planner.decide(None, current, outage + Duration::minutes(m));
        assert_eq!(d.reason, Reason::Hold);
        assert!(
            d.desired_replicas >= current,
            "minute {m}: {current} → {}",
            d.desired_replicas
        );
        current = d.desired_replicas;
    }
    assert_eq!(current, before);
}

#[test]
fn without_history_the_reactive_term_runs_with_an_hpa_like_margin() {
    let s = spec(|_| {});
    let (d, _, _) = replay(&s, |_| 2000.0, t0() + Duration::minutes(30));
    assert!(d.calibration.is_none() && !d.forecast_used(), "{d:?}");
    assert_eq!(d.reason, Reason::Reactive);
    assert_eq!(d.reactive_replicas, Some(25)); // 20 replicas' load × 1.25
}

#[test]
fn a_stricter_objective_buys_more_replicas_and_meets_itself() {
    // Noise of ±30 % around the daily step: no margin covers every minute cheaply.
    let noisy = |t: DateTime<Utc>| {
        let m = (t - t0()).num_minutes();
        let wobble = if (m * 7919) % 13 < 6 { 0.7 } else { 1.3 };
        daily_step(t) * wobble
    };
    let until = t0() + Duration::days(4) + Duration::minutes(530);
    let objective = |percent: f64| spec(|s| s.objective.max_underprovisioned_percent = percent);
    let (loose, _, _) = replay(&objective(20.0), noisy, until);
    let (strict, _, _) = replay(&objective(0.05), noisy, until);
    let (loose_c, strict_c) = (
        loose.calibration.expect("calibrated after four days"),
        strict.calibration.expect("calibrated after four days"),
    );
    // ±30 % noise every minute: no basis meets 0.05 % within a +100 % margin; the strict
    // objective still buys the fewest short minutes it can.
    assert!(
        strict_c.margins.margin > loose_c.margins.margin,
        "{strict_c:?}"
    );
    assert!(
        loose_c.underprovisioned_week_percent > strict_c.underprovisioned_week_percent,
        "a looser objective allows more short minutes: {loose_c:?} vs {strict_c:?}"
    );
    assert!(
        strict.desired_replicas > loose.desired_replicas,
        "and costs more: {} vs {}",
        strict.desired_replicas,
        loose.desired_replicas
    );
}

#[test]
fn a_large_metric_is_forecast_like_a_small_one() {
    // The same daily step in bytes per second: a million at night, four at the peak, 100,000 a
    // replica. The replica counts are those of the step in requests per second.
    let s = spec(|s| s.metric.target_per_replica = 100_000.0);
    let (d, _, _) = replay(
        &s,
        |t| daily_step(t) * 1000.0,
        t0() + Duration::days(10) + Duration::minutes(536),
    );
    assert!(
        d.forecast_load.is_some_and(f64::is_finite) && d.desired_replicas >= 40,
        "{d:?}"
    );
    assert!(d.desired_replicas < 100, "not driven to maxReplicas: {d:?}");
}

// The calendar: dated events, exclusions and scheduled ceilings, through the same planner.

fn with_calendar(yaml: &str) -> ValidatedSpec {
    spec(|s| s.calendar = serde_yaml_ng::from_str(yaml).expect("calendar yaml"))
}

#[test]
fn an_event_floor_is_reached_a_lead_time_before_it_starts() {
    // Day 10, 03:00: a quiet night needing 10 replicas; a dated event at 03:10 asks for 60.
    let s = with_calendar(
        "{events: [{name: launch, start: '2026-01-15T03:10:00Z', duration: 2h, minReplicas: 60}]}",
    );
    let at = |minute: i64| {
        replay(
            &s,
            daily_step,
            t0() + Duration::days(10) + Duration::minutes(minute),
        )
        .0
    };
    assert!(at(183).desired_replicas < 60, "not yet: {:?}", at(183));
    let d = at(184); // 03:04: the 6-minute lead time reaches 03:10
    assert_eq!(d.desired_replicas, 60, "{d:?}");
    assert_eq!(d.reason, Reason::Event("launch".into()));
}

#[test]
fn a_scheduled_ceiling_caps_the_forecast_and_says_so() {
    // 08:56 on day 10: the forecast asks for 40 ahead of the 09:00 step; a freeze window caps 25.
    let s = spec(|s| {
        s.peak_windows = vec![
            serde_yaml_ng::from_str(
                "{name: freeze, schedule: '0 8 * * *', duration: 2h, maxReplicas: 25}",
            )
            .unwrap(),
        ];
    });
    let (d, _, _) = replay(
        &s,
        daily_step,
        t0() + Duration::days(10) + Duration::minutes(536),
    );
    assert_eq!(d.desired_replicas, 25, "{d:?}");
    assert_eq!(
        d.reason,
        Reason::ScheduledMaximum(Source::PeakWindow("freeze".into()))
    );
    assert!(
        d.floor_replicas <= 25,
        "an HPA's floor respects it too: {d:?}"
    );
    let f = conditions::capacity_finding(&d, &s).unwrap();
    assert!(!f.status && f.message.contains("freeze"), "{f:?}");
    // When the window closes at 10:00 the forecast's count returns.
    let (after, _, _) = replay(
        &s,
        daily_step,
        t0() + Duration::days(10) + Duration::minutes(601),
    );
    assert!(after.desired_replicas >= 40, "{after:?}");
}

#[test]
fn an_exclusion_switches_peak_windows_off() {
    let window = "{name: always, schedule: '* * * * *', duration: 1h, minReplicas: 70}";
    let s = spec(|s| {
        s.peak_windows = vec![serde_yaml_ng::from_str(window).unwrap()];
        s.calendar = serde_yaml_ng::from_str(
            "{exclusions: [{name: holiday, start: '2026-01-15T00:00:00Z', end: '2026-01-16T00:00:00Z'}]}",
        )
        .unwrap();
    });
    let (held, _, _) = replay(
        &s,
        daily_step,
        t0() + Duration::days(9) + Duration::hours(3),
    );
    assert_eq!(held.desired_replicas, 70);
    let (off, _, _) = replay(
        &s,
        daily_step,
        t0() + Duration::days(10) + Duration::hours(3),
    );
    assert!(off.desired_replicas < 70, "{off:?}");
    assert_eq!(off.excluded.as_deref(), Some("holiday"));
    assert_eq!(off.scheduled, None);
}

/// The daily step, except on day 7, a holiday with the night's load all day.
fn step_with_a_holiday(t: DateTime<Utc>) -> f64 {
    if (t - t0()).num_days() == 7 {
        1000.0
    } else {
        daily_step(t)
    }
}

#[test]
fn an_excluded_day_is_left_out_of_the_seasonal_history() {
    // Day 14, 08:56, weekly forecast: the median of the last two weeks' 09:00, one of which was
    // the flat holiday. Declared, it is left out and the step is foreseen in full.
    let holiday = with_calendar("{exclusions: [{name: holiday, date: '2026-01-12'}]}");
    let plain = spec(|_| {});
    let history = History::new(
        t0(),
        Duration::minutes(1),
        (0..14 * 1440 + 536)
            .map(|m| step_with_a_holiday(t0() + Duration::minutes(m)))
            .collect(),
    );
    let now = t0() + Duration::days(14) + Duration::minutes(536);
    let view = history.view_at(now - Duration::minutes(1)).unwrap();
    let weekly = |s: &ValidatedSpec| {
        predict_peak(
            &ModelConfig::default(),
            Predictor::Weekly,
            view,
            &Adjustments::new(&s.calendar),
            now,
            now + Duration::minutes(30),
        )
        .unwrap()
    };
    let (with, without) = (weekly(&holiday), weekly(&plain));
    assert!(with > 3500.0, "declared: {with}");
    assert!(
        without < 3000.0,
        "undeclared, the holiday halves the step: {without}"
    );
}

#[test]
fn an_event_multiplier_raises_the_forecast_without_counting_twice() {
    // A sale from 12:00 to 14:00 on day 10 brings three times the usual load (4000 → 12000).
    let mut s = with_calendar(
        "{events: [{name: sale, start: '2026-01-15T12:00:00Z', duration: 2h, loadMultiplier: 3}]}",
    );
    s.max_replicas = 400;
    let sale = |t: DateTime<Utc>| {
        let m = (t - t0()).num_minutes() - 10 * 1440;
        daily_step(t) * if (720..840).contains(&m) { 3.0 } else { 1.0 }
    };
    let day10 = t0() + Duration::days(10);
    let (before, _, _) = replay(&s, sale, day10 + Duration::minutes(716));
    let expected = before.forecast_load.unwrap();
    assert!((11_000.0..13_500.0).contains(&expected), "{before:?}");
    assert!(before.desired_replicas >= 120, "{before:?}");
    // Half an hour in, the live level already shows the surge: the forecast divides it out
    // before multiplying, so it still expects about 12 000, not 36 000.
    let (during, _, _) = replay(&s, sale, day10 + Duration::minutes(750));
    let f = during.forecast_load.unwrap();
    assert!((11_000.0..13_500.0).contains(&f), "{during:?}");
}

#[test]
fn a_forecast_above_max_replicas_is_reported_a_lead_time_ahead() {
    let s = spec(|s| s.max_replicas = 20);
    let (d, _, _) = replay(
        &s,
        daily_step,
        t0() + Duration::days(10) + Duration::minutes(536),
    );
    assert_eq!(d.desired_replicas, 20);
    let f = conditions::capacity_finding(&d, &s).unwrap();
    assert_eq!(
        (f.status, f.reason.as_str()),
        (false, "ForecastAboveMaxReplicas")
    );
    assert!(f.message.contains("maxReplicas is 20"), "{f:?}");
    // At night nothing is coming: no warning.
    let (night, _, _) = replay(
        &s,
        daily_step,
        t0() + Duration::days(10) + Duration::hours(3),
    );
    assert!(conditions::capacity_finding(&night, &s).unwrap().status);
}

#[test]
fn a_declared_surge_is_provisioned_for_whatever_basis_was_calibrated() {
    // A flat load: the calibration rightly prefers the live load, which cannot see a sale
    // coming. The sale's multiplier is provisioned for a lead time ahead all the same.
    let s = with_calendar(
        "{events: [{name: sale, start: '2026-01-15T12:00:00Z', duration: 1h, loadMultiplier: 3}]}",
    );
    let flat = |_: DateTime<Utc>| 1000.0;
    let day10 = t0() + Duration::days(10);
    let (quiet, _, _) = replay(&s, flat, day10 + Duration::minutes(700));
    assert!(quiet.desired_replicas < 15, "{quiet:?}");
    let (ahead, _, _) = replay(&s, flat, day10 + Duration::minutes(716));
    assert!(ahead.desired_replicas >= 30, "{ahead:?}");
    assert_eq!(ahead.reason, Reason::Event("sale".into()));
}

#[test]
fn a_declared_surge_above_max_replicas_is_reported() {
    let mut s = with_calendar(
        "{events: [{name: sale, start: '2026-01-15T12:00:00Z', duration: 1h, loadMultiplier: 3}]}",
    );
    s.max_replicas = 20;
    let (d, _, _) = replay(
        &s,
        |_| 1000.0,
        t0() + Duration::days(10) + Duration::minutes(716),
    );
    let f = conditions::capacity_finding(&d, &s).unwrap();
    assert!(
        !f.status && f.message.contains("maxReplicas is 20"),
        "{f:?}"
    );
}

#[test]
fn a_surge_that_did_not_come_does_not_scale_down_after_the_event() {
    // Declared ×3, the load stayed as usual: once the sale is over the level is what the load
    // shows, not a third of it.
    let s = with_calendar(
        "{events: [{name: sale, start: '2026-01-15T12:00:00Z', duration: 1h, loadMultiplier: 3}]}",
    );
    let day10 = t0() + Duration::days(10);
    let (usual, _, _) = replay(&spec(|_| {}), daily_step, day10 + Duration::minutes(785));
    let (after, _, _) = replay(&s, daily_step, day10 + Duration::minutes(785));
    assert!(
        after.desired_replicas >= usual.desired_replicas,
        "{after:?} vs {usual:?}"
    );
}

// The live load is always served: whatever the basis, a sustained live load is served within the
// HPA's reaction time, a metric back from zero is followed at once, and a sudden drop to zero is
// held like a missing sample until it persists.

/// The planner's model with the calibration's choice forced to `basis`.
fn forced(basis: Basis) -> ModelConfig {
    let bases: &'static [Basis] = match basis {
        Basis::LiveLoad => &[Basis::LiveLoad],
        Basis::DailyOrLiveLoad => &[Basis::DailyOrLiveLoad],
        Basis::DailyOrWeekly => &[Basis::DailyOrWeekly],
        Basis::Weekly => &[Basis::Weekly],
        Basis::Daily => &[Basis::Daily],
    };
    ModelConfig {
        bases,
        ..ModelConfig::default()
    }
}

/// Replays `metric` (what Prometheus returns, one minute behind the load) through a planner
/// with `model`, acting on every decision, and returns every decision from minute `from` (since
/// `t0()`) up to `until`.
fn decisions(
    spec: &ValidatedSpec,
    model: ModelConfig,
    metric: impl Fn(DateTime<Utc>) -> f64,
    from: i64,
    until: i64,
) -> Vec<(i64, Decision)> {
    let values: Vec<f64> = (0..until)
        .map(|m| metric(t0() + Duration::minutes(m)))
        .collect();
    let history = History::new(t0() + Duration::minutes(1), Duration::minutes(1), values);
    let mut planner = Planner::new(spec.clone(), model);
    let mut current = 10;
    let mut out = Vec::new();
    for m in 1..=until {
        let d = planner.decide(Some(&history), current, t0() + Duration::minutes(m));
        current = d.desired_replicas;
        if m >= from {
            out.push((m, d));
        }
    }
    out
}

/// Day 15, 10:00: the daily step's plateau, where the load needs 40 replicas. Two weeks of
/// history first, so that every basis (the weekly ones too) has a week of record.
const BLIP_AT: i64 = 15 * 1440 + 600;

#[test]
fn a_ten_minute_zero_blip_never_scales_a_busy_workload_below_its_need() {
    // The metric reads 0 from 10:00 to 10:09 while the real load stays at 4 000 (40 replicas),
    // then reads 4 000 again. Whatever basis the calibration stands on, the zeros are held like
    // missing samples (they have not persisted), and the count never drops below 40.
    let s = spec(|_| {});
    let metric = |t: DateTime<Utc>| {
        let m = (t - t0()).num_minutes();
        if (BLIP_AT..BLIP_AT + 10).contains(&m) {
            0.0
        } else {
            daily_step(t)
        }
    };
    for basis in BASES {
        let run = decisions(&s, forced(basis), metric, BLIP_AT, BLIP_AT + 40);
        assert!(
            run[0]
                .1
                .calibration
                .is_some_and(|c| c.margins.basis == basis),
            "{basis:?}: {:?}",
            run[0].1
        );
        let below: Vec<_> = run
            .iter()
            .filter(|(_, d)| d.desired_replicas < 40)
            .map(|(m, d)| (m - BLIP_AT, d.desired_replicas, d.reason.clone()))
            .collect();
        assert!(below.is_empty(), "{basis:?}: below the need at {below:?}");
        // Held, not scaled for: the zeros never read as the live load.
        assert!(
            run.iter().all(|(_, d)| d.load.is_some_and(|l| l >= 3000.0)),
            "{basis:?}"
        );
    }
}

#[test]
fn a_metric_back_from_a_believed_zero_is_followed_from_its_second_sample() {
    // Half an hour of zeros (believed after a quarter hour: the count falls), then the metric
    // reads 4 000 again, whatever the basis — even one whose level is still a quarter hour of
    // zeros. Its first sample alone is not a sustained load (it could be one bogus sample, see
    // `one_bogus_sample_after_zeros_keeps_the_scale_up_limit`): the first decision that sees it
    // scales up within the default scale-up limit, as the HPA acts on one sample; the second
    // confirms it, and from then on every decision asks for the 40 replicas it needs.
    let s = spec(|_| {});
    let metric = |t: DateTime<Utc>| {
        let m = (t - t0()).num_minutes();
        if (BLIP_AT..BLIP_AT + 30).contains(&m) {
            0.0
        } else {
            daily_step(t)
        }
    };
    // The decision at minute m sees the load of minute m - 1: the first 4 000 at BLIP_AT + 31.
    let back = BLIP_AT + 31;
    for basis in BASES {
        let run = decisions(&s, forced(basis), metric, BLIP_AT, back + 30);
        let lowest = run.iter().map(|(_, d)| d.desired_replicas).min().unwrap();
        assert!(lowest < 40, "{basis:?}: the believed zeros scaled down");
        let at = |minute: i64| &run.iter().find(|(m, _)| *m == minute).unwrap().1;
        let (before, first) = (at(back - 1).desired_replicas, at(back));
        assert_eq!(first.live_replicas, None, "{basis:?}: {first:?}");
        assert!(
            first.desired_replicas > before
                && first.desired_replicas <= (2 * before).max(before + 4),
            "{basis:?}: {before} → {first:?}"
        );
        for (m, d) in run.iter().filter(|(m, _)| *m > back) {
            assert!(
                d.desired_replicas >= 40,
                "{basis:?}: {} min after the metric came back: {d:?}",
                m - back
            );
        }
        assert_eq!(at(back + 1).live_replicas, Some(40), "{basis:?}");
    }
}

/// The reviewer's setup: a planner with `targetPerReplica` 100 and `maxReplicas` 100 fed
/// `values` (one a minute from `t0()`), decided every minute from two replicas and acted on;
/// every decision with the count it was made for.
fn from_two(values: Vec<f64>) -> Vec<(u32, Decision)> {
    from_two_at(values, 0)
}

/// As `from_two`, with the first decision at minute `first` (the planner has seen nothing
/// before it); the decisions from there on.
fn from_two_at(values: Vec<f64>, first: usize) -> Vec<(u32, Decision)> {
    let n = values.len();
    let history = History::new(t0(), Duration::minutes(1), values);
    let mut planner = Planner::new(spec(|_| {}), ModelConfig::default());
    let mut current = 2;
    let mut out = Vec::new();
    for m in first..n {
        let d = planner.decide(Some(&history), current, t0() + Duration::minutes(m as i64));
        out.push((current, d.clone()));
        current = d.desired_replicas;
    }
    out
}

/// Replayed from minute `first` at two replicas (`from_two_at`): neither the count nor the live
/// floor ever rises above two; `case` names the replay in the failure.
fn stays_at_two(values: Vec<f64>, first: usize, case: &str) {
    let seen: Vec<_> = from_two_at(values, first)
        .into_iter()
        .enumerate()
        .map(|(i, (_, d))| (i, d.desired_replicas, d.live_replicas))
        .collect();
    assert!(
        seen.iter()
            .all(|(_, r, live)| *r <= 2 && live.is_none_or(|l| l <= 2)),
        "{case}: {seen:?}"
    );
}

/// Whether `d`, made at `from` replicas, stayed within the default scale-up limit (the HPA's
/// 100 % or 4 pods a period).
fn within_default_limit(from: u32, d: &Decision) -> bool {
    d.desired_replicas <= (2 * from).max(from + 4)
}

#[test]
fn one_bogus_sample_after_zeros_keeps_the_scale_up_limit() {
    // Two hours at 150 (two replicas), then one sample of 1e6: the median of three ignores it,
    // the newest sample moves the count by the default limit only.
    let mut v = vec![150.0; 120];
    v.push(1e6);
    let (from, d) = from_two(v).pop().unwrap();
    assert!(within_default_limit(from, &d), "{from} → {d:?}");
    assert_eq!(d.live_replicas, Some(2), "{d:?}");
    assert_eq!(d.reason, Reason::RateLimited, "{d:?}");

    // Two hours at 0 (believed), then one sample of 1e6. Before: the median of the one non-zero
    // sample was the sustained load, a live floor of 10 000 replicas, exempt from the limit:
    // 2 → 100 (MaxReplicas). Now one sample alone is no sustained load: within the limit.
    let mut v = vec![0.0; 120];
    v.push(1e6);
    let (from, d) = from_two(v.clone()).pop().unwrap();
    assert!(within_default_limit(from, &d), "{from} → {d:?}");
    assert!(d.desired_replicas < 100, "{d:?}");
    assert_eq!(d.live_replicas, None, "{d:?}");
    assert_eq!(d.reason, Reason::RateLimited, "{d:?}");
    // The real load that follows confirms its own level, not the bogus sample's: of the two
    // samples after the zeros, the lower.
    v.extend([150.0; 3]);
    let run = from_two(v);
    for (from, d) in &run[121..] {
        assert!(d.desired_replicas < 100, "{from} → {d:?}");
        assert!(d.live_replicas.is_none_or(|n| n <= 2), "{d:?}");
    }
    assert_eq!(run[122].1.live_replicas, Some(2), "{:?}", run[122]);
}

#[test]
fn a_zero_blip_after_a_bogus_sample_is_held_at_the_level_before_it() {
    // Two hours at 150, one sample of 1e6, ten minutes of zeros (an exporter restart), then 150
    // again. Before: the zeros were held at the last sample before them, the spike, so the
    // median read it three times: 100 replicas for eleven decisions, then held there by the
    // scale-down stabilization. Now they are held at the level before the drop, the lower
    // median of the three samples before it: 150.
    let mut v = vec![150.0; 120];
    v.push(1e6);
    v.extend([0.0; 10]);
    v.extend([150.0; 3]);
    let run = from_two(v);
    let (from, spike) = &run[120];
    assert!(within_default_limit(*from, spike), "{from} → {spike:?}");
    for (from, d) in &run[120..] {
        assert!(
            d.desired_replicas <= spike.desired_replicas,
            "{from} → {d:?}"
        );
        assert_eq!(d.live_replicas, Some(2), "{d:?}");
    }
    // The held zeros read as 150, the level, not as the spike.
    for (_, d) in &run[121..131] {
        assert_eq!(d.load, Some(150.0), "{d:?}");
    }
}

#[test]
fn one_bogus_sample_after_a_gap_and_before_zeros_keeps_the_scale_up_limit() {
    // Two hours at 150, half an hour with no sample (a scrape outage), one sample of 1e6, then a
    // quarter hour of zeros. Before: the zeros were held at the level before them, and after the
    // gap that level was the one bogus sample; read as a sustained load it took the workload to
    // 100 (maxReplicas) a minute later, and held it there. Now one sample is no level: the zeros
    // are believed, and the sample alone moves the count within the default limit only.
    let mut v = vec![150.0; 120];
    v.extend([f64::NAN; 30]);
    v.push(1e6);
    v.extend([0.0; 15]);
    let run = from_two(v);
    let (from, spike) = &run[150];
    assert!(within_default_limit(*from, spike), "{from} → {spike:?}");
    for (from, d) in &run[150..] {
        assert!(
            d.desired_replicas <= spike.desired_replicas,
            "{from} → {d:?}"
        );
        assert!(d.live_replicas.is_none_or(|n| n <= 2), "{d:?}");
    }
}

#[test]
fn one_bogus_sample_before_the_series_goes_quiet_moves_the_count_once() {
    // One sample of 1e6 (10 000 replicas' worth), then the series absent (no sample, not zero)
    // for forty minutes. Before: the sample stayed the live load for the five minutes it
    // counts as fresh, and each minute asked again within the scale-up limit (2, 4, 8, 16, 32,
    // 64, 100); then the hold kept maxReplicas for as long as the series stayed absent. Now it
    // moves the count once: the next minutes stand on the sustained load (the level two samples
    // confirm: none after believed zeros, a hold at the count reached; 100 after a steady 100).
    for before in [0.0, 100.0] {
        let mut v = vec![before; 120];
        v.push(1e6);
        v.extend([f64::NAN; 40]);
        let run = from_two(v);
        let (from, spike) = &run[120];
        assert!(within_default_limit(*from, spike), "{from} → {spike:?}");
        for (from, d) in &run[121..] {
            assert!(
                d.desired_replicas <= spike.desired_replicas,
                "after {before}: {from} → {d:?}"
            );
        }
    }
    // A load two samples confirm is still followed while the series is quiet (an exporter that
    // crashed under real load): 4 000 (40 replicas) from 2, the climb goes on after the last
    // sample until it is stale.
    let mut v = vec![100.0; 120];
    v.extend([4000.0; 2]);
    v.extend([f64::NAN; 10]);
    let run = from_two(v);
    let reached = run[121..].iter().map(|(_, d)| d.desired_replicas).max();
    assert!(reached >= Some(40), "{reached:?}: {:?}", &run[120..]);
}

#[test]
fn two_adjacent_bogus_samples_are_given_back_when_the_stabilization_window_ends() {
    // A counter reset read by `rate` over two steps: two samples of 1e6 where the load is 0 or
    // 100 (one or two replicas' worth). The second sets a live floor of maxReplicas (two samples
    // confirm a level, as two would of a real step), as the HPA's syncs reach it. Before: the
    // zeros after the pair were held at 1e6 for a level window (15 minutes, the count kept on
    // them), then the stabilization window, then the default scale-down limit walked down at
    // 20 % a minute: 21 minutes at maxReplicas after 0, 8 after 100 and back at two only 21
    // minutes after the pair. Now the zeros are held no longer than the level before them lasted
    // (one minute), and a rise that did not last the stabilization window is given back when
    // the window ends: at most 7 minutes at maxReplicas, at the need 7 minutes after the last
    // bogus sample. (The HPA, 5-minute window and 100 % per 15 s down, is there at 6: the minute
    // after the pair still reads it — the median of three, or the one zero it holds — and the
    // window counts from that minute.)
    for bogus in [1usize, 2] {
        for before in [0.0, 100.0] {
            let mut v = vec![before; 120];
            v.extend(vec![1e6; bogus]);
            v.extend([before; 20]);
            let run = from_two(v);
            let after: Vec<(usize, u32)> = run[120..]
                .iter()
                .enumerate()
                .map(|(m, (_, d))| (m, d.desired_replicas))
                .collect();
            let at_max = after.iter().filter(|(_, n)| *n >= 90).count();
            assert!(at_max <= 7, "{bogus} after {before}: {after:?}");
            let last = 120 + bogus - 1;
            for (m, (_, d)) in run.iter().enumerate().skip(last + 7) {
                assert!(
                    d.desired_replicas <= 2,
                    "{bogus} after {before}, minute {}: {after:?}",
                    m - last
                );
            }
        }
    }
    // The rule is the default limit's: a policy the spec writes paces the same descent as
    // written (20 % a minute from maxReplicas after the window).
    let written = spec(|s| {
        s.behavior.scale_down.policies = vec![ScalingPolicy {
            type_: PolicyType::Percent,
            value: 20,
            period_seconds: 120,
        }]
    });
    let mut v = vec![100.0; 120];
    v.extend([1e6; 2]);
    v.extend([100.0; 20]);
    let history = History::new(t0(), Duration::minutes(1), v.clone());
    let mut planner = Planner::new(written, ModelConfig::default());
    let mut current = 2;
    for m in 0..v.len() {
        current = planner
            .decide(Some(&history), current, t0() + Duration::minutes(m as i64))
            .desired_replicas;
    }
    assert!(current >= 10, "{current}");
}

#[test]
fn a_metric_back_from_a_gap_as_a_zero_blip_is_held_at_the_level_before_the_gap() {
    // The load stays at 4 000 (40 replicas); the metric has no sample for G minutes (a scrape
    // outage, the exporter down), then reads 0 for ten minutes, then 4 000 again. Before: after
    // a gap of 20 minutes or more the level before the zeros lay outside what the decision read
    // back, the zeros were believed at once, and the workload went from 40 to 3 on the live
    // load, to 4 on the default model of a young scaler. Now the read reaches back over the gap
    // to the level the series had: no decision below 40, on every basis. (After gaps of three
    // and ten hours, which began before the 09:00 step to 4 000, the level before the gap is
    // 1 000; then no decision during the zeros is below the count the gap was held at.)
    const BLIP_AT: i64 = 15 * 1440 + 600;
    let s = spec(|_| {});
    for gap in [5i64, 20, 30, 180, 600] {
        let metric = move |t: DateTime<Utc>| {
            let m = (t - t0()).num_minutes();
            if (BLIP_AT - gap..BLIP_AT).contains(&m) {
                f64::NAN
            } else if (BLIP_AT..BLIP_AT + 10).contains(&m) {
                0.0
            } else {
                daily_step(t)
            }
        };
        for basis in BASES {
            let run = decisions(&s, forced(basis), metric, BLIP_AT - gap, BLIP_AT + 30);
            let held = run
                .iter()
                .find(|(m, _)| *m == BLIP_AT)
                .map_or(0, |(_, d)| d.desired_replicas);
            let need = if gap <= 60 { 40 } else { held.max(10) };
            let below: Vec<_> = run
                .iter()
                .filter(|(m, d)| *m >= BLIP_AT && d.desired_replicas < need)
                .map(|(m, d)| (m - BLIP_AT, d.desired_replicas))
                .collect();
            assert!(
                below.is_empty(),
                "gap {gap}, {basis:?}, need {need}: {below:?}"
            );
        }
    }
}

#[test]
fn a_level_from_before_a_long_absence_keeps_a_count_on_zeros_but_does_not_raise_it() {
    // Believed zeros, two adjacent samples of 1e6, the series absent for 2 to 23 hours, then
    // real zeros. The read reaches back over the gap to the level the series had (so that a
    // busy workload's count does not fall on a blip of zeros), and that level is the two
    // samples. Before: the held zeros became a live floor the scale-up limit does not hold
    // back: 2 → 6 → 100 (maxReplicas) on zeros. Now a held zero keeps the count, never raises
    // it.
    for gap in [120usize, 720, 1380] {
        let mut v = vec![0.0; 120];
        v.extend([1e6; 2]);
        v.extend(vec![f64::NAN; gap]);
        v.extend([0.0; 10]);
        let first_zero = v.len() - 10;
        stays_at_two(v, first_zero, &format!("gap {gap}"));
    }
}

#[test]
fn two_bogus_samples_half_an_hour_apart_are_no_level_to_hold_zeros_at() {
    // Believed zeros, one sample of 1e6, half an hour with no sample, another 1e6, then zeros.
    // Before: the hold after the first sample granted its whole ask at once (5 → 100 replicas,
    // past the scale-up limit), and the two samples made a level together across the gap: the
    // zeros after the second were held at 1e6, read as a sustained load — a live floor of
    // maxReplicas. Now the hold keeps the count reached, and two samples more than five
    // minutes apart do not confirm each other: no level, the zeros are believed.
    let mut v = vec![0.0; 120];
    v.push(1e6);
    v.extend([f64::NAN; 30]);
    v.push(1e6);
    v.extend([0.0; 20]);
    let run = from_two(v);
    for (from, d) in &run[120..] {
        assert!(d.live_replicas.is_none_or(|n| n <= 2), "{from} → {d:?}");
        assert!(within_default_limit(*from, d), "{from} → {d:?}");
        assert!(d.desired_replicas <= 25, "{from} → {d:?}");
    }
}

#[test]
fn a_sustained_surge_above_every_forecast_is_served_within_the_hpas_reaction() {
    // Day 15, 12:00: the load doubles (8 000, 80 replicas) for two hours, which no profile
    // foresees. The HPA would see it at 12:01 (the metric's minute of lag) and ask for 80 at
    // its next sync; the sustained load (a median of three samples) moves at 12:02. From then
    // on no decision is below 80, whatever the basis.
    let s = spec(|_| {});
    let surge_at = 15 * 1440 + 720;
    let load = |t: DateTime<Utc>| {
        let m = (t - t0()).num_minutes();
        daily_step(t)
            * if (surge_at..surge_at + 120).contains(&m) {
                2.0
            } else {
                1.0
            }
    };
    for basis in BASES {
        let run = decisions(&s, forced(basis), load, surge_at, surge_at + 90);
        assert!(
            run[0]
                .1
                .calibration
                .is_some_and(|c| c.margins.basis == basis),
            "{basis:?}: {:?}",
            run[0].1
        );
        let late: Vec<_> = run
            .iter()
            .filter(|(m, d)| *m >= surge_at + 2 && d.desired_replicas < 80)
            .map(|(m, d)| (m - surge_at, d.desired_replicas))
            .collect();
        assert!(late.is_empty(), "{basis:?}: below the need at {late:?}");
        let (_, d) = &run[2];
        assert_eq!(d.live_replicas, Some(80), "{basis:?}: {d:?}");
    }
}

#[test]
fn the_live_floor_holds_on_every_basis_in_the_pure_decision() {
    // `plan::decide` alone: the forecasts expect 4 000, the live load is twice that. With any
    // basis and any margin up to the forecast's, the count is what 8 000 needs, and the live
    // load is the reason — even when the newest sample dips below the sustained load.
    let s = spec(|_| {});
    let scheduled = Scheduled::default();
    for basis in BASES {
        for (load, sustained) in [(8000.0, 8000.0), (5000.0, 8000.0)] {
            let calibration = Calibration {
                margins: Margins {
                    basis,
                    margin: 0.1,
                    extra: 0.0,
                },
                underprovisioned_day_percent: 0.0,
                underprovisioned_week_percent: 0.0,
                unpreventable_percent: 0.0,
                above_max_percent: 0.0,
                error_percent: None,
                scored_minutes: 10_080,
                level_change: None,
            };
            let d = plan::decide(
                &s,
                Inputs {
                    load: Some(load),
                    sustained: Some(sustained),
                    daily: 4000.0,
                    weekly: 4000.0,
                    calibration: Some(&calibration),
                    scheduled: &scheduled,
                    event: None,
                    current_replicas: 44,
                    held_zero: false,
                },
                &mut Memory::default(),
                t0(),
            );
            assert_eq!(d.live_replicas, Some(80));
            if basis.forecasts() && basis != Basis::DailyOrLiveLoad {
                // The forecast with its margin asks for 44: the live floor decides.
                assert_eq!(d.desired_replicas, 80, "{basis:?} {load}: {d:?}");
                assert_eq!(d.reason, Reason::Reactive, "{basis:?} {load}: {d:?}");
            } else {
                // On the live load the margin comes on top of the newest sample, and the floor
                // holds where the newest sample dips.
                let margin = (load * 1.1 / 100.0_f64).ceil() as u32;
                assert_eq!(
                    d.desired_replicas,
                    margin.max(80),
                    "{basis:?} {load}: {d:?}"
                );
            }
        }
    }
}

/// The last minute of `step_days_history`: ten days and a morning.
const STEP_DAYS_UNTIL: i64 = 10 * 1440 + 536;

/// The daily step from `t0()` to `STEP_DAYS_UNTIL`, as Prometheus returns it (a minute behind).
fn step_days_history() -> History {
    let values: Vec<f64> = (0..=STEP_DAYS_UNTIL)
        .map(|m| daily_step(t0() + Duration::minutes(m)))
        .collect();
    History::new(t0() + Duration::minutes(1), Duration::minutes(1), values)
}

/// A planner of `spec` kept up minute by minute on `history` up to minute `to`, acting on every
/// decision from 10 replicas: the planner, the count it left and its last decision.
fn keep_up(spec: &ValidatedSpec, history: &History, to: i64) -> (Planner, u32, Decision) {
    let mut planner = Planner::new(spec.clone(), ModelConfig::default());
    let mut current = 10;
    let mut last = None;
    for m in 1..=to {
        let d = planner.decide(Some(history), current, t0() + Duration::minutes(m));
        current = d.desired_replicas;
        last = Some(d);
    }
    (planner, current, last.expect("at least one decision"))
}

#[test]
fn a_calendar_edit_keeps_the_record_unless_it_touches_what_the_record_read() {
    // Ten days of the daily step, kept up minute by minute; then the calendar is edited.
    let s = spec(|_| {});
    let until = STEP_DAYS_UNTIL;
    let history = step_days_history();
    let run = |spec: &ValidatedSpec, to: i64| keep_up(spec, &history, to);
    let past = t0() + Duration::days(8);
    let now = t0() + Duration::minutes(until + 1);
    for (calendar, kept) in [
        // Next week's holiday: nothing the record read. Kept; the calibration is made again.
        ("{exclusions: [{name: holiday, date: '2026-01-22'}]}", true),
        // Two days ago declared a holiday: the record read those days. Rebuilt.
        ("{exclusions: [{name: holiday, date: '2026-01-13'}]}", false),
    ] {
        let edited = with_calendar(calendar);
        let (mut planner, current, _) = run(&s, until);
        let before = planner.recorded_forecasts(past);
        assert!(before.0.is_finite(), "{before:?}");
        planner.update_spec(edited.clone());
        let after = planner.recorded_forecasts(past);
        assert_eq!(after.0.is_finite(), kept, "{calendar}: {after:?}");
        if kept {
            assert_eq!(format!("{after:?}"), format!("{before:?}"));
        }
        // Either way the next calibration is the one a planner that always had the calendar
        // makes (and, kept, so is the decision: nothing before it differed).
        let d = planner.decide(Some(&history), current, now);
        let (_, _, fresh) = run(&edited, until + 1);
        assert_eq!(d.calibration, fresh.calibration, "{calendar}");
        if kept {
            assert_eq!(d.desired_replicas, fresh.desired_replicas, "{calendar}");
        }
    }
}

#[test]
fn a_new_lead_time_calibrates_at_once_as_if_it_had_always_been_in_use() {
    // Ten days of the daily step kept up minute by minute at one lead time; then the lead time
    // changes, as `leadTime: Auto` changes it when the pods' start-up moves. The forecasts
    // recorded at the old lead time are meaningless, but the new record is forecast again from
    // the history at the next decision: that decision is calibrated, on the calibration a
    // planner that always had the new lead time makes, not on a cold start.
    let until = STEP_DAYS_UNTIL;
    let history = step_days_history();
    let with_lead = |minutes: i64| {
        let mut s = spec(|_| {});
        s.lead_time = Duration::minutes(minutes);
        s
    };
    let run = |spec: &ValidatedSpec, to: i64| keep_up(spec, &history, to);
    let (mut planner, current, before) = run(&with_lead(6), until);
    assert!(before.calibration.is_some(), "{before:?}");
    let longer = with_lead(11);
    planner.update_spec(longer.clone());
    let now = t0() + Duration::minutes(until + 1);
    let d = planner.decide(Some(&history), current, now);
    let (_, _, always) = run(&longer, until + 1);
    assert!(d.calibration.is_some(), "{d:?}");
    assert_eq!(d.calibration, always.calibration);
    assert_ne!(
        d.calibration, before.calibration,
        "the lead time is replayed"
    );
}

/// Nine days of a daily wave (500 to 1 500, five to fifteen replicas' worth), `edit`ed, decided
/// every minute from 30 minutes before `WAVE_AT` (day 9, 10:00) and acted on from 20 replicas,
/// with the default spec and model: every decision from `WAVE_AT` on.
fn wave_run(edit: impl Fn(&mut Vec<f64>)) -> Vec<Decision> {
    let mut v: Vec<f64> = (0..9 * 1440)
        .map(|m| 1000.0 + 500.0 * (std::f64::consts::TAU * (m % 1440) as f64 / 1440.0).sin())
        .collect();
    edit(&mut v);
    v.truncate(WAVE_AT + 40);
    let history = History::new(t0(), Duration::minutes(1), v.clone());
    let mut planner = Planner::new(spec(|_| {}), ModelConfig::default());
    let mut current = 20;
    let mut out = Vec::new();
    for m in WAVE_AT - 30..v.len() {
        let d = planner.decide(Some(&history), current, t0() + Duration::minutes(m as i64));
        current = d.desired_replicas;
        if m >= WAVE_AT {
            out.push(d);
        }
    }
    out
}

const WAVE_AT: usize = 8 * 1440 + 600;

#[test]
fn a_bogus_sample_does_not_inflate_the_forecasts_level() {
    // A calibrated forecast (nine days of a daily wave, the load about 1 250 at 10:00: 13
    // replicas), then one or two samples of 1e6 (a counter reset read by `rate`). Before: the
    // forecast's level, a quarter hour's mean, read the sample ~66 times the load, and the
    // forecast is exempt from the scale-up limit: maxReplicas at once and for 28 minutes (the
    // level window, the stabilization window, the 20 %-a-minute walk). Now the window's two
    // highest samples count at most twice the third (`1 + max_margin`): one sample moves the
    // forecast by a replica at most; two adjacent ones set the live floor (two samples confirm
    // a level) and are given back when the stabilization window ends.
    let clean = wave_run(|_| {});
    for bogus in [1usize, 2] {
        let run = wave_run(|v| v[WAVE_AT..WAVE_AT + bogus].fill(1e6));
        let seen: Vec<(usize, u32, Option<u32>)> = run
            .iter()
            .enumerate()
            .map(|(m, d)| (m, d.desired_replicas, d.forecast_replicas))
            .collect();
        let at_max = seen.iter().filter(|(_, n, _)| *n >= 90).count();
        assert!(
            at_max <= 7 * (bogus - 1),
            "{bogus}: {at_max} min at max: {seen:?}"
        );
        // The forecast reads each sample as twice the load at most: a sample's share (a
        // fifteenth) of twice the level, a replica or two here.
        let most = |c: u32| (f64::from(c) * (1.0 + 2.0 * bogus as f64 / 15.0)).ceil() as u32;
        for ((m, d), c) in run.iter().enumerate().zip(&clean) {
            let (f, c) = (d.forecast_replicas.unwrap(), c.forecast_replicas.unwrap());
            assert!(f <= most(c), "{bogus}, minute {m}: {seen:?}");
        }
        // Near the need once the stabilization window has passed.
        let last = bogus - 1;
        for (m, (d, c)) in run.iter().zip(&clean).enumerate().skip(last + 7) {
            assert!(
                d.desired_replicas <= most(c.desired_replicas),
                "{bogus}, minute {}: {seen:?}",
                m - last
            );
        }
    }
}

#[test]
fn a_level_shift_is_followed_by_the_forecast_as_fast_as_the_mean_follows_it() {
    // The load triples at 10:00 and stays: from its second sample the live floor serves it
    // (three times 1 250: 38 replicas), and the forecast's level follows the shift: at once by
    // twice the level, in full from its third sample.
    let run = wave_run(|v| {
        for x in &mut v[WAVE_AT..] {
            *x *= 3.0;
        }
    });
    let seen: Vec<(u32, Option<u32>)> = run
        .iter()
        .map(|d| (d.desired_replicas, d.forecast_replicas))
        .collect();
    for (m, d) in run.iter().enumerate().skip(1) {
        let need = d.load.map_or(0, |l| (l / 100.0).ceil() as u32);
        assert!(d.desired_replicas >= need, "minute {m}: {seen:?}");
        // The forecast rises from the third sample and reads the whole new level once the
        // plain mean would (the window all new samples, minute 14).
        let forecast = d.forecast_replicas.unwrap_or(0);
        if m >= 2 {
            assert!(forecast > seen[0].1.unwrap_or(0), "minute {m}: {seen:?}");
        }
        if m >= 14 {
            assert!(forecast + 1 >= need, "minute {m}: {seen:?}");
        }
    }
}

#[test]
fn a_held_zero_of_a_lasting_level_is_a_floor_under_a_count_reset_below_it() {
    // Two hours at 4 000 (40 replicas), then ten minutes of zeros (a metric blip) and 4 000
    // again; a deploy resets the count to 2 at the first zero. Before: the held zeros kept the
    // current count (2) and never raised it, though the load before them needed 40: 2 for ten
    // minutes. Now a held level that lasted a level window (and that the zeros followed without
    // a gap) is a live floor like the samples it stands for: 40 at once.
    let mut v = vec![4000.0; 120];
    v.extend([0.0; 10]);
    v.extend([4000.0; 5]);
    let history = History::new(t0(), Duration::minutes(1), v.clone());
    let mut planner = Planner::new(spec(|_| {}), ModelConfig::default());
    let mut current = 40;
    let mut seen = Vec::new();
    for m in 100..v.len() {
        if m == 120 {
            current = 2;
        }
        let d = planner.decide(Some(&history), current, t0() + Duration::minutes(m as i64));
        current = d.desired_replicas;
        if m >= 120 {
            seen.push((m - 120, current, d.live_replicas));
        }
    }
    assert!(
        seen.iter()
            .all(|(_, n, live)| *n >= 40 && *live == Some(40)),
        "{seen:?}"
    );
}

#[test]
fn a_held_level_that_did_not_last_never_raises_the_count() {
    // Believed zeros, three (or five) samples of 1e6, the series absent for 23 hours, two
    // zeros (held at the samples' level, read back over the gap), then a real 5. Before: only
    // a held newest sample was kept from raising the count, and at the real sample the sustained
    // load (the median of three) read the two held zeros as 1e6: 2 → 100 (maxReplicas). Now
    // zeros held at a level that lasted less than a level window count as missing samples
    // under a real one: the 5 alone is no sustained load.
    for n in [3usize, 5] {
        let mut v = vec![0.0; 120];
        v.extend(vec![1e6; n]);
        v.extend(vec![f64::NAN; 1380]);
        let first = v.len();
        v.extend([0.0; 2]);
        v.extend([5.0; 5]);
        stays_at_two(v, first, &n.to_string());
    }
}
