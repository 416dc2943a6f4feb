//! The controller without a Prometheus: the operator's own reconcile loop against the fake
//! Kubernetes API (`support/fake_api.rs`), reading its load from a scripted source
//! (`support/scripted.rs`) instead of a Prometheus process. For what is about Kubernetes and the
//! decisions; reading Prometheus itself is tested in `operator.rs`, `faults.rs` and
//! `prometheus.rs`, against a real one.

use crate::support;

use std::sync::Arc;

use chrono::{DateTime, Duration, DurationRound, Timelike, Utc};
use serde_json::json;
use support::fake_api::FakeApi;
use support::harness::*;
use support::scripted::ScriptedSource;

/// Eight days of a daily half-hour spike to 1 000/s (20 replicas) that starts at the same
/// minute of each day, six minutes after this test's first look at the clock; 100/s otherwise.
fn spiky(_query: &str, t: DateTime<Utc>) -> Option<f64> {
    let (start, _) = window();
    let day_minute = |t: DateTime<Utc>| i64::from(t.hour() * 60 + t.minute());
    let d = (day_minute(t) - day_minute(start)).rem_euclid(1440);
    (t >= start - Duration::days(8)).then_some(if d < 30 { 1000.0 } else { 100.0 })
}

/// When today's spike starts, and when the test began.
fn window() -> (DateTime<Utc>, DateTime<Utc>) {
    static AT: std::sync::OnceLock<(DateTime<Utc>, DateTime<Utc>)> = std::sync::OnceLock::new();
    *AT.get_or_init(|| {
        let now = Utc::now();
        (
            now.duration_trunc(Duration::minutes(1)).unwrap() + Duration::minutes(6),
            now,
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recurring_spike_is_scaled_for_before_it_arrives_without_a_prometheus() {
    let (spike, _) = window();
    let source = Arc::new(ScriptedSource::new(spiky));
    let api = FakeApi::new();
    api.put(deployment("checkout", 2));
    api.put(scaler(
        "checkout",
        "spiky",
        json!({ "objective": { "maxUnderprovisionedPercent": 0.01 } }),
    ));
    let _op = start_operator_on(&api, source.clone(), |_| {});
    eventually(60, "scaled up ahead of the spike", || {
        let r = replicas(&api, "checkout");
        if r >= 12 {
            Ok(())
        } else {
            Err(format!("{r} replicas: {}", status(&api, "checkout")))
        }
    })
    .await;
    assert!(Utc::now() < spike, "the scale-up came before the spike");
    let s = status(&api, "checkout");
    assert_eq!(s["reason"], "Forecast", "{s}");
    assert!(s["reactiveReplicas"].as_i64().unwrap() < 6, "{s}");
    expect_condition(
        &api,
        "checkout",
        "MetricsAvailable",
        "True",
        "QuerySucceeded",
    )
    .unwrap();
    // Read through the scripted source: at least the cold read (a probe and the span).
    assert!(source.reads() >= 2, "{} reads", source.reads());
}

/// Eight days of steady traffic whose every minute differs from the one before: 100/s and
/// 160/s by turns, which two replicas carry at any of them.
fn alternating(_query: &str, t: DateTime<Utc>) -> Option<f64> {
    Some(if t.minute().is_multiple_of(2) {
        100.0
    } else {
        160.0
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_whose_only_changes_are_figures_is_written_once_a_refresh() {
    // Two operators on the same traffic, one writing every change of the status, one with the
    // refresh an operator runs with: over a minute's turn the figures move (the first writes
    // again) while the replicas, the reason and the conditions stay (the second does not).
    let start = |refresh: u64| {
        let api = FakeApi::new();
        api.put(deployment("web", 2));
        api.put(scaler(
            "web",
            "steady",
            json!({ "metric": { "targetPerReplica": 1000 } }),
        ));
        let op = start_operator_on(&api, Arc::new(ScriptedSource::new(alternating)), |s| {
            s.status_refresh = std::time::Duration::from_secs(refresh);
        });
        (api, op)
    };
    let (eager, _eager_op) = start(0);
    let (gentle, _gentle_op) = start(300);
    let writes = |api: &FakeApi| api.writes_to("/predictivescalers/web/status");
    eventually(20, "a first status from both", || {
        match (writes(&eager), writes(&gentle)) {
            (1.., 1..) => Ok(()),
            w => Err(format!("{w:?}")),
        }
    })
    .await;
    let first = status(&gentle, "web");
    assert!(
        first["forecastLoad"].is_number(),
        "the first status has its figures: {first}"
    );
    let minute = |t: DateTime<Utc>| t.duration_trunc(Duration::minutes(1)).unwrap();
    let turned = minute(Utc::now()) + Duration::minutes(1);
    eventually(
        90,
        "the eager operator writes the next minute's figures",
        || {
            if Utc::now() > turned + Duration::seconds(5) && writes(&eager) >= 2 {
                Ok(())
            } else {
                Err(format!(
                    "{} writes: {}",
                    writes(&eager),
                    status(&eager, "web")
                ))
            }
        },
    )
    .await;
    let (e, g) = (status(&eager, "web"), status(&gentle, "web"));
    assert_eq!(e["desiredReplicas"], g["desiredReplicas"], "{e}\n{g}");
    assert_eq!(e["reason"], g["reason"], "{e}\n{g}");
    assert_eq!(
        writes(&gentle),
        1,
        "figures alone are not written within the refresh: {g}"
    );
    assert_eq!(g, first, "the status seen is the first one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scalers_whose_history_is_held_are_counted_while_they_last() {
    // Three scalers: each counts once its history is read, and a deleted one no longer does.
    let api = FakeApi::new();
    for name in ["a", "b", "c"] {
        api.put(deployment(name, 2));
        api.put(scaler(
            name,
            "steady",
            json!({ "metric": { "targetPerReplica": 1000 } }),
        ));
    }
    let op = start_operator_on(&api, Arc::new(ScriptedSource::new(alternating)), |_| {});
    let held = || {
        op.metrics
            .encode()
            .lines()
            .find_map(|l| l.strip_prefix("prescaler_histories_held "))
            .and_then(|v| v.parse::<i64>().ok())
    };
    eventually(30, "three histories held", || match held() {
        Some(3) => Ok(()),
        h => Err(format!("{h:?}")),
    })
    .await;
    api.delete("prescaler.dev/v1alpha1", "PredictiveScaler", NS, "b");
    eventually(30, "two once one is deleted", || match held() {
        Some(2) => Ok(()),
        h => Err(format!(
            "{h:?}: {:?}",
            api.get("prescaler.dev/v1alpha1", "PredictiveScaler", NS, "b")
        )),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scalers_that_send_the_same_query_read_it_once() {
    // Four scalers of one query and one of another. A sync period of two minutes: reads within
    // one minute of each other are one read.
    let api = FakeApi::new();
    let names = ["a", "b", "c", "d", "solo"];
    for name in names {
        let service = if name == "solo" { "alone" } else { "shared" };
        api.put(deployment(name, 2));
        api.put(scaler(
            name,
            service,
            json!({ "metric": { "targetPerReplica": 1000 } }),
        ));
    }
    let source = Arc::new(ScriptedSource::new(alternating));
    let _op = start_operator_on(&api, source.clone(), |s| {
        s.sync_period = std::time::Duration::from_secs(120);
    });
    eventually(60, "every scaler decided", || {
        let undecided: Vec<&str> = names
            .into_iter()
            .filter(|n| status(&api, n)["desiredReplicas"].as_u64().is_none())
            .collect();
        if undecided.is_empty() {
            Ok(())
        } else {
            Err(format!("{undecided:?} have not decided"))
        }
    })
    .await;
    let (shared, alone) = ("service=\"shared\"", "service=\"alone\"");
    // The history's first read is a probe and a range read of its weeks.
    assert!(
        source.reads_of(alone) >= 2,
        "the lone query was read {} times",
        source.reads_of(alone)
    );
    // One history for the four: its newest minutes read as often as the lone one's (give or
    // take a refresh that fell on either side of the count), not four times as often.
    let hour = Duration::hours(1);
    let (newest_shared, newest_alone) = (
        source.short_reads_of(shared, hour),
        source.short_reads_of(alone, hour),
    );
    assert!(
        newest_shared <= newest_alone + 2,
        "the shared query's newest minutes were read {newest_shared} times, the lone one's {newest_alone}"
    );
    // Each scaler's first decision calibrates, and reads the calibration's week for itself
    // (the shared cache holds what decisions between calibrations read): one week's read each.
    let weeks = source.long_reads_of(shared, hour);
    assert!(
        (4..=4 + 2).contains(&weeks),
        "the shared query's weeks were read {weeks} times"
    );
}
