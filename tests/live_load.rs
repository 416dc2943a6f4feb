//! The live load is always served, through the operator: the real controller against the fake
//! Kubernetes API and a real Prometheus whose backfilled history ends in a ten-minute drop of
//! the metric to zero, with the live value back at 4 000 (40 replicas).

use crate::support;

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, DurationRound, Utc};
use prescaler::planning::calibration::Basis;
use serde_json::json;
use support::fake_api::FakeApi;
use support::harness::*;
use support::prometheus::{TestPrometheus, samples};

const LOAD: f64 = 4000.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_ending_in_a_zero_blip_is_answered_at_once() {
    let now = Utc::now().duration_trunc(Duration::minutes(1)).unwrap();
    let to = now - Duration::minutes(2);
    // Three days of a steady 4 000/s, except the last ten minutes of the history: 0.
    let blip = |t: DateTime<Utc>| {
        if t > to - Duration::minutes(11) {
            0.0
        } else {
            LOAD
        }
    };
    let prom = TestPrometheus::start(&[(
        "blip",
        samples(now - Duration::days(3), to, Duration::minutes(1), blip),
    )]);
    prom.set_live("blip", Some(LOAD));
    prom.wait_for_live("blip", LOAD);

    let api = FakeApi::new();
    // One workload still at the 40 it needs, one the blip had already scaled down to 20.
    api.put(deployment("busy", 40));
    api.put(deployment("fallen", 20));
    let spec = json!({
        "maxReplicas": 100,
        "metric": { "targetPerReplica": 100.0 },
    });
    api.put(scaler("busy", "blip", spec.clone()));
    api.put(scaler("fallen", "blip", spec));
    // The basis that ignores the live load: the daily forecast alone, whose level is the last
    // quarter hour — ten minutes of it zeros.
    let _op = start_operator_with(&api, &prom.url(), |s| s.model.bases = &[Basis::Daily]);

    eventually(
        30,
        "the fallen workload is back at what the load needs",
        || {
            let r = replicas(&api, "fallen");
            if r >= 40 {
                Ok(())
            } else {
                Err(format!("{r} replicas; status {}", status(&api, "fallen")))
            }
        },
    )
    .await;
    for name in ["busy", "fallen"] {
        let s = status(&api, name);
        assert_eq!(s["calibration"]["basis"], "daily forecast", "{name}: {s}");
        // The week's only short minutes were its blips, which no basis foresaw: the status
        // says so (they do not set the margins, which stay at zero).
        let c = &s["calibration"];
        assert!(
            c["underprovisionedPercentLastWeek"].as_f64() > Some(0.0),
            "{name}: {s}"
        );
        assert_eq!(
            c["unforeseeablePercentLastWeek"], c["underprovisionedPercentLastWeek"],
            "{name}: {s}"
        );
        assert!(s["desiredReplicas"].as_i64().unwrap() >= 40, "{name}: {s}");
    }
    // And it stays there: a few more seconds of reconciles (one a second) scale nothing down.
    for _ in 0..20 {
        tokio::time::sleep(StdDuration::from_millis(250)).await;
        for name in ["busy", "fallen"] {
            assert!(replicas(&api, name) >= 40, "{name}: {}", status(&api, name));
        }
    }
    for name in ["busy", "fallen"] {
        let down: Vec<_> = events(&api, name)
            .into_iter()
            .filter(|(_, r, _)| r == "ScaledDown")
            .collect();
        assert!(down.is_empty(), "{name}: {down:?}");
    }
    let up = events(&api, "fallen");
    assert!(
        up.iter()
            .any(|(_, r, n)| r == "ScaledUp" && n.contains("from 20 to")),
        "{up:?}"
    );
}
