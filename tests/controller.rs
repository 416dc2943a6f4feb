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
    assert!(source.reads() >= 3, "{} reads", source.reads());
}
