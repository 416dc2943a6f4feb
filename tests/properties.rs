//! Properties over arbitrary input: whatever a tenant writes and whatever samples arrive,
//! validation answers without panicking, and the planner never panics and never leaves
//! `[minReplicas, maxReplicas]`.

use chrono::{DateTime, Duration, TimeZone, Utc};
use prescaler::api::{
    Behavior, PeakWindow, PolicyType, PredictiveScalerSpec, ScalingPolicy, ScalingRules,
    SelectPolicy,
};
use prescaler::planning::forecast::{History, ModelConfig};
use prescaler::planning::plan::Reason;
use prescaler::planning::planner::Planner;
use proptest::prelude::*;

fn duration_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("6m".to_string()),
        Just("28d".to_string()),
        Just("1h30m".to_string()),
        "[0-9]{1,12}(y|w|d|h|m|s|ms)",
        "[0-9a-z ]{0,8}",
    ]
}

fn query() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("sum(rate(http_requests_total[2m]))".to_string()),
        Just("sum(load) # a comment".to_string()),
        "[a-z_(){}\\[\\]=\" 0-9]{0,40}",
        (1usize..200).prop_map(|n| format!("{}1{}", "(".repeat(n), ")".repeat(n))),
    ]
}

fn window() -> impl Strategy<Value = PeakWindow> {
    (
        prop_oneof![
            Just("0 11 * * 1-5".to_string()),
            Just("*/5 * * * *".to_string()),
            Just("0 0 30 2 *".to_string()),
            "[0-9*/ ,-]{0,20}",
        ],
        duration_text(),
        prop_oneof![
            Just("Europe/Berlin".to_string()),
            Just("UTC".to_string()),
            "[A-Za-z/_]{0,20}"
        ],
        any::<i32>(),
    )
        .prop_map(|(schedule, duration, time_zone, min_replicas)| PeakWindow {
            name: "w".into(),
            schedule,
            duration: duration.as_str().into(),
            time_zone,
            min_replicas: Some(min_replicas),
            max_replicas: None,
        })
}

fn rules() -> impl Strategy<Value = ScalingRules> {
    (
        any::<i32>(),
        proptest::collection::vec(
            (any::<bool>(), any::<i32>(), any::<i32>()).prop_map(|(pods, value, period)| {
                ScalingPolicy {
                    type_: if pods {
                        PolicyType::Pods
                    } else {
                        PolicyType::Percent
                    },
                    value,
                    period_seconds: period,
                }
            }),
            0..3,
        ),
        prop_oneof![
            Just(SelectPolicy::Max),
            Just(SelectPolicy::Min),
            Just(SelectPolicy::Disabled)
        ],
    )
        .prop_map(|(window, policies, select)| ScalingRules {
            stabilization_window_seconds: window,
            policies,
            select_policy: select,
        })
}

prop_compose! {
    fn spec()(
        min in prop_oneof![1i32..20, any::<i32>()],
        max in prop_oneof![1i32..200, any::<i32>()],
        c in prop_oneof![0.5f64..500.0, any::<f64>()],
        query in query(),
        history in duration_text(),
        lead in duration_text(),
        windows in proptest::collection::vec(window(), 0..3),
        up in rules(),
        down in rules(),
        objective in prop_oneof![0.01f64..=50.0, any::<f64>()],
    ) -> PredictiveScalerSpec {
        let mut s = PredictiveScalerSpec::new(c, max);
        s.min_replicas = min;
        s.metric.query = query;
        s.forecast.history = history.as_str().into();
        s.forecast.lead_time = lead.as_str().into();
        s.objective.max_underprovisioned_percent = objective;
        s.peak_windows = windows;
        s.behavior = Behavior { scale_up: up, scale_down: down };
        s
    }
}

prop_compose! {
    /// A spec the API server would accept: every field within its bounds, arbitrary within them.
    fn valid_spec()(
        min in 1i32..20,
        extra in 0i32..200,
        c in 0.5f64..500.0,
        history in prop_oneof![Just("1h"), Just("2d"), Just("8d"), Just("28d"), Just("35d")],
        lead in 1i64..40,
        windows in proptest::collection::vec(
            (0u32..60, 0u32..24, 1i64..600, 1i32..300, any::<bool>()),
            0..3,
        ),
        up in proptest::collection::vec((any::<bool>(), 1i32..400, 1i32..1800), 0..3),
        down in proptest::collection::vec((any::<bool>(), 1i32..100, 1i32..1800), 0..3),
        up_window in 0i32..3600,
        down_window in 0i32..3600,
        objective in 0.01f64..=50.0,
        headroom in 0i32..100,
    ) -> PredictiveScalerSpec {
        let policies = |list: Vec<(bool, i32, i32)>| {
            list.into_iter()
                .map(|(pods, value, period_seconds)| ScalingPolicy {
                    type_: if pods { PolicyType::Pods } else { PolicyType::Percent },
                    value,
                    period_seconds,
                })
                .collect()
        };
        let mut s = PredictiveScalerSpec::new(c, min + extra);
        s.min_replicas = min;
        s.metric.query = "sum(rate(http_requests_total[2m]))".into();
        s.forecast.history = history.into();
        s.forecast.lead_time = format!("{lead}m").as_str().into();
        s.objective.max_underprovisioned_percent = objective;
        s.forecast.headroom_percent = headroom;
        s.peak_windows = windows
            .into_iter()
            .map(|(minute, hour, minutes, floor, berlin)| PeakWindow {
                name: "w".into(),
                schedule: format!("{minute} {hour} * * *"),
                duration: format!("{minutes}m").as_str().into(),
                time_zone: if berlin { "Europe/Berlin" } else { "UTC" }.into(),
                min_replicas: Some(floor),
                max_replicas: None,
            })
            .collect();
        s.behavior = Behavior {
            scale_up: ScalingRules {
                stabilization_window_seconds: up_window,
                policies: policies(up),
                select_policy: SelectPolicy::Max,
            },
            scale_down: ScalingRules {
                stabilization_window_seconds: down_window,
                policies: policies(down),
                select_policy: SelectPolicy::Max,
            },
        };
        s
    }
}

fn sample() -> impl Strategy<Value = f64> {
    prop_oneof![
        8 => 0.0f64..5000.0,
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(-1e6),
        1 => Just(1e12),
        1 => Just(f64::MAX),
    ]
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 28, 22, 0, 0).unwrap() // across a DST change in Europe
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn validation_answers_whatever_is_written(s in spec()) {
        // Ok or an error naming a field under `spec.`; never a panic.
        if let Err(e) = s.validate() {
            prop_assert!(e.to_string().contains("spec."), "{e}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn decisions_stay_within_the_bounds_whatever_the_samples(
        s in valid_spec(),
        samples in proptest::collection::vec(sample(), 60..240),
        repeat in 4usize..20,
        start in 1u32..50,
    ) {
        let spec = s.validate();
        prop_assert!(spec.is_ok(), "{spec:?}");
        let spec = spec.unwrap();
        // A day and more of minutes: the samples repeated, with one outage in the middle.
        let minutes = samples.len() * repeat;
        let values: Vec<f64> = (0..minutes).map(|m| samples[m % samples.len()]).collect();
        let history = History::new(t0(), Duration::minutes(1), values);
        let mut planner = Planner::new(spec.clone(), ModelConfig::default());
        let mut current = start;
        for m in 0..minutes {
            let now = t0() + Duration::minutes(m as i64);
            let outage = (minutes / 2..minutes / 2 + 40).contains(&m);
            let d = planner.decide((!outage).then_some(&history), current, now);
            prop_assert!(
                (spec.min_replicas..=spec.max_replicas).contains(&d.desired_replicas),
                "minute {m}: {} outside [{}, {}]: {d:?}",
                d.desired_replicas, spec.min_replicas, spec.max_replicas
            );
            prop_assert!((spec.min_replicas..=spec.max_replicas).contains(&d.floor_replicas));
            if !d.metrics_available {
                prop_assert_eq!(&d.reason, &Reason::Hold);
                prop_assert!(d.desired_replicas >= current.min(spec.max_replicas));
            }
            current = d.desired_replicas;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// A window remembers the openings around the last instant it was asked about; whatever
    /// order it is asked in, it answers as croner does for each instant alone (DST zones
    /// included).
    #[test]
    fn a_windows_memory_answers_as_croner_does(
        schedule in prop::sample::select(vec!["*/7 * * * *", "30 2 * * *", "0 0 * 2 1#5", "15 1,3 * * 0", "0 9 * * 1-5", "59 23 L * *"]),
        zone in prop::sample::select(vec!["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu"]),
        minutes in prop::collection::vec(0i64..(3 * 366 * 1440), 1..40),
        walk in any::<bool>(),
    ) {
        let spec: prescaler::api::PeakWindow = serde_json::from_value(serde_json::json!({
            "name": "w", "schedule": schedule, "duration": "1h", "timeZone": zone, "minReplicas": 3
        })).unwrap();
        let mut s = prescaler::api::PredictiveScalerSpec::new(10.0, 50);
        s.peak_windows = vec![spec];
        let remembered = s.validate().unwrap().peak_windows.remove(0);
        let start = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        let mut at = start;
        for m in minutes {
            // Random instants, or a walk from opening to opening as the checks do.
            at = match remembered.opening_after(at) {
                Some(next) if walk => next,
                _ => start + Duration::minutes(m) + Duration::seconds(m % 60),
            };
            let fresh = s.validate().unwrap().peak_windows.remove(0);
            prop_assert_eq!(remembered.opening_before(at), fresh.opening_before(at), "before {}", at);
            let fresh = s.validate().unwrap().peak_windows.remove(0);
            prop_assert_eq!(remembered.opening_after(at), fresh.opening_after(at), "after {}", at);
            let fresh = s.validate().unwrap().peak_windows.remove(0);
            prop_assert_eq!(remembered.is_open(at), fresh.is_open(at), "open {}", at);
        }
    }
}
