//! Scaling to zero in a quiet window (`peakWindows[].minReplicas: 0`), through the operator
//! against the fake API: the workload goes to zero while there is no load, is woken at once
//! when load appears, is woken when the window is gone from the spec, and the zero is refused
//! where an HPA scales the target (an HPA cannot run at zero).
//!
//! The operator runs on the wall clock, so its model's cooldown (`ModelConfig::zero_cooldown`,
//! 5 minutes) is set to nothing here and the spec's scale-down stabilization window to 0: the
//! pure core's tests (`prescaler-planning` `quiet::tests`) hold the cooldown, the stabilization,
//! the activation threshold and the wake a lead time before the window closes.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use serde_json::json;
use support::fake_api::FakeApi;
use support::harness::{
    condition, deployment, events, eventually, expect_condition, get, hpa, replicas, scaler,
    start_operator_on, status,
};
use support::scripted::ScriptedSource;

/// The load of the `busy` service, as f64 bits: the test turns it on. The `quiet` service
/// has none.
static LOAD: AtomicU64 = AtomicU64::new(0);

fn load(query: &str, _t: DateTime<Utc>) -> Option<f64> {
    match query.contains("busy") {
        true => Some(f64::from_bits(LOAD.load(Ordering::SeqCst))),
        false => Some(0.0),
    }
}

fn set_load(v: f64) {
    LOAD.store(v.to_bits(), Ordering::SeqCst);
}

/// A quiet window that is always open (it opens every minute for an hour), `minReplicas` 1, no
/// scale-down stabilization; the load of `service`.
fn quiet_scaler(name: &str, service: &str) -> serde_json::Value {
    scaler(
        name,
        service,
        json!({
            "minReplicas": 1,
            "peakWindows": [{ "name": "night", "schedule": "* * * * *", "duration": "1h", "minReplicas": 0 }],
            "behavior": { "scaleDown": { "stabilizationWindowSeconds": 0 } },
        }),
    )
}

fn start(api: &FakeApi) -> support::harness::Operator {
    start_operator_on(api, Arc::new(ScriptedSource::new(load)), |s| {
        s.model.zero_cooldown = chrono::Duration::zero();
    })
}

/// One test for the module: the scripted load is a static the steps share.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_window_scales_to_zero_and_load_wakes_the_workload_but_not_under_an_hpa() {
    let api = FakeApi::new();
    set_load(0.0);
    api.put(deployment("web", 1));
    api.put(quiet_scaler("web", "busy"));
    api.put(deployment("batch", 2));
    api.put(quiet_scaler("batch", "quiet"));
    // The same spec on a target an HPA scales.
    api.put(deployment("api", 1));
    api.put(hpa("api", 1, json!({})));
    api.put(quiet_scaler("api", "quiet"));
    let _op = start(&api);

    // No load in the window: to zero, and it stays there (a workload at zero in a quiet
    // window is prescaler's own, not one whose scaling someone disabled). From 2 at the
    // default 20 % a minute: 2, 1, 0.
    for name in ["web", "batch"] {
        eventually(150, &format!("{name} scaled to zero"), || {
            match replicas(&api, name) {
                0 => Ok(()),
                n => Err(format!("{n} replicas")),
            }
        })
        .await;
    }
    eventually(10, "the status tells the zero", || {
        let s = status(&api, "web");
        match (s["desiredReplicas"].as_i64(), s["schedule"].as_str()) {
            (Some(0), Some(schedule)) if schedule.contains("scaled to zero") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let s = status(&api, "web");
    assert_eq!(s["reason"], "PeakWindow", "{s}");
    let (ready, reason, message) = condition(&api, "web", "Ready").unwrap();
    assert_eq!((ready.as_str(), reason.as_str()), ("True", "Scaling"));
    assert!(message.contains("at zero"), "{message}");
    let to_zero = events(&api, "web")
        .into_iter()
        .find(|(_, r, note)| r == "ScaledDown" && note.contains("to 0 replicas"));
    let (_, _, note) = to_zero.expect("an Event for the scale to zero");
    assert!(
        note.contains("peak window \"night\" allows 0 replicas"),
        "{note}"
    );
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(replicas(&api, "web"), 0);
    expect_condition(&api, "web", "Ready", "True", "Scaling").unwrap();

    // Under the HPA: nothing written to the Deployment, the HPA's floor at 1 or more, and the
    // refusal said, with a Warning Event.
    expect_condition(&api, "api", "ScalingLimited", "True", "ScaleToZeroRefused").unwrap();
    let (_, _, why) = condition(&api, "api", "ScalingLimited").unwrap();
    assert!(
        why.contains("HorizontalPodAutoscaler api") && why.contains("cannot run at zero"),
        "{why}"
    );
    expect_condition(&api, "api", "Ready", "True", "FloorOnHPA").unwrap();
    let hpa = get(&api, "autoscaling/v2", "HorizontalPodAutoscaler", "api");
    assert!(hpa["spec"]["minReplicas"].as_i64().unwrap() >= 1, "{hpa}");
    assert_eq!(api.writes_to("/deployments/api"), 0);
    assert!(
        events(&api, "api")
            .iter()
            .any(|(t, r, _)| t == "Warning" && r == "ScaleToZeroRefused"),
        "{:?}",
        events(&api, "api")
    );
    // Decided without the zero: at 1 (minReplicas), where a quiet window would have asked for
    // 0 at once (no cooldown or stabilization here), and no quiet window in its schedule.
    let s = status(&api, "api");
    assert!(s["desiredReplicas"].as_i64().is_some_and(|d| d >= 1), "{s}");
    assert!(
        !s["schedule"].as_str().unwrap_or_default().contains("min 0"),
        "{s}"
    );

    // Load appears: woken at once (the first sample within the scale-up limit, at least
    // minReplicas), and what the load needs once a second sample confirms it: 130 at 50 a
    // replica is 3.
    set_load(130.0);
    eventually(15, "web woken by the load", || {
        match replicas(&api, "web") {
            0 => Err("still at zero".into()),
            _ => Ok(()),
        }
    })
    .await;
    let woke = events(&api, "web")
        .into_iter()
        .find(|(_, r, note)| r == "ScaledUp" && note.contains("from 0"));
    let (_, _, note) = woke.expect("an Event for the wake");
    assert!(note.contains("woken from zero"), "{note}");
    eventually(150, "web at what the load needs", || {
        match replicas(&api, "web") {
            n if n >= 3 => Ok(()),
            n => Err(format!("{n} replicas")),
        }
    })
    .await;

    // The window taken out of the spec while the workload is at zero: prescaler's own zero
    // (its status says so) is woken, not left as a workload whose scaling someone disabled.
    assert_eq!(replicas(&api, "batch"), 0);
    let mut plain = quiet_scaler("batch", "quiet");
    plain["spec"]["peakWindows"] = json!([]);
    api.put(plain);
    eventually(
        20,
        "batch woken when the window is gone",
        || match replicas(&api, "batch") {
            1 => Ok(()),
            n => Err(format!("{n} replicas")),
        },
    )
    .await;
    expect_condition(&api, "batch", "Ready", "True", "Scaling").unwrap();
}
