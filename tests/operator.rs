//! The controller end to end: the operator's own reconcile loop (`controller::run`) between the
//! fake Kubernetes API (`support/fake_api.rs`) and weeks of history. The history is a real
//! Prometheus's (backfilled, with a live exporter) in the tests that are about reading it: the
//! forecast of a recurring spike end to end, an outage, the backtest's process. The tests of
//! modes, floors, specs, writes and plans read the same history from a scripted source
//! (`support/scripted.rs`).

use crate::support;

use std::sync::{Arc, OnceLock};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, DurationRound, Timelike, Utc};
use http::Method;
use serde_json::json;
use support::fake_api::FakeApi;
use support::harness::*;
use support::prometheus::{TestPrometheus, samples};
use support::scripted::ScriptedSource;

const BASE: f64 = 100.0;
const SPIKE: f64 = 1000.0;

/// When the daily spike of the shared history starts: a few minutes after the tests start, so
/// it is inside the 6-minute lead time but has not arrived.
fn spike_start() -> DateTime<Utc> {
    static START: OnceLock<DateTime<Utc>> = OnceLock::new();
    *START.get_or_init(|| {
        Utc::now().duration_trunc(Duration::minutes(1)).unwrap() + Duration::minutes(4)
    })
}

/// A daily 30-minute spike at `spike_start`'s time of day; flat otherwise.
fn spiky(t: DateTime<Utc>) -> f64 {
    let s = spike_start();
    let day_minute = |t: DateTime<Utc>| (t.hour() * 60 + t.minute()) as i64;
    let d = (day_minute(t) - day_minute(s)).rem_euclid(1440);
    if d < 30 { SPIKE } else { BASE }
}

/// The replicas a scaler must have ahead of the spike (which needs 20; the live load, 2). How
/// much of the spike's first minutes the forecast and its calibrated margin cover depends on
/// where the 3-hourly calibration falls in the history's day and on when within a minute the
/// test binary started (runs every few seconds over a quarter hour gave 13 to 23), so this asks
/// for three fifths of the spike: far above what the live load needs, whatever the phase.
fn ahead_of_the_spike() -> i64 {
    (SPIKE / PER_REPLICA) as i64 * 3 / 5
}

/// The spec's extra fields with an objective that leaves no minute of the spike short: the
/// tests below check that the spike is covered from its first minute.
fn every_minute(mut extra: serde_json::Value) -> serde_json::Value {
    merge(
        &mut extra,
        &json!({ "objective": { "maxUnderprovisionedPercent": 0.01 } }),
    );
    extra
}

/// One Prometheus for the tests that do not kill it: 8 days of two services' history.
fn shared_prometheus() -> &'static TestPrometheus {
    static PROM: OnceLock<TestPrometheus> = OnceLock::new();
    PROM.get_or_init(|| {
        let now = Utc::now().duration_trunc(Duration::minutes(1)).unwrap();
        let (from, to) = (now - Duration::days(8), now - Duration::minutes(2));
        let prom = TestPrometheus::start(&[
            ("spiky", samples(from, to, Duration::minutes(1), spiky)),
            ("steady", samples(from, to, Duration::minutes(1), |_| BASE)),
        ]);
        prom.set_live("spiky", Some(BASE));
        prom.set_live("steady", Some(BASE));
        prom.wait_for_live("steady", BASE);
        prom
    })
}

/// What `shared_prometheus` answers, scripted: `spiky` and `steady` from 8 days before it
/// started up to two minutes before (its backfill), then the live value, `BASE` (its exporter);
/// a query of any other service finds no series.
fn shared_load(query: &str, t: DateTime<Utc>) -> Option<f64> {
    let started = spike_start() - Duration::minutes(4);
    let recorded = t <= started - Duration::minutes(2);
    let load = if query.contains(r#"service="spiky""#) && recorded {
        spiky(t)
    } else if query.contains(r#"service="spiky""#) || query.contains(r#"service="steady""#) {
        BASE
    } else {
        return None;
    };
    (t >= started - Duration::days(8)).then_some(load)
}

/// `shared_prometheus` as the operator's client sees it (its timeout too), scripted: for the
/// tests about Kubernetes and the decisions, not about reading Prometheus.
fn shared_source() -> Arc<ScriptedSource> {
    Arc::new(ScriptedSource::new(shared_load).with_timeout(PROMETHEUS_TIMEOUT))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recurring_spike_is_scaled_for_before_it_arrives() {
    let prom = shared_prometheus();
    let api = FakeApi::new();
    api.put(deployment("checkout", 2));
    api.put(scaler("checkout", "spiky", every_minute(json!({}))));
    let op = start_operator(&api, &prom.url());

    // The spike (1000/s = 20 replicas) is 4 minutes away; the live load is still 100/s.
    let needed = ahead_of_the_spike();
    eventually(30, "scaled up ahead of the spike", || {
        let r = replicas(&api, "checkout");
        if r >= needed {
            Ok(())
        } else {
            Err(format!("{r} replicas"))
        }
    })
    .await;
    assert!(
        Utc::now() < spike_start(),
        "the scale-up came before the spike"
    );
    let s = status(&api, "checkout");
    assert_eq!(s["reason"], "Forecast", "{s}");
    // The profile is a quarter hour's mean: it sees the spike coming, and the margin the
    // objective calls for covers the rest.
    assert!(s["forecastLoad"].as_f64().unwrap() >= 2.0 * BASE, "{s}");
    assert!(
        s["reactiveReplicas"].as_i64().unwrap() < needed / 2,
        "the live load alone, with the same margin, needs far fewer: {s}"
    );
    assert_eq!(s["calibration"]["basis"], "daily forecast", "{s}");
    assert!(s["lastScaleTime"].is_string());
    expect_condition(&api, "checkout", "ForecastReliable", "True", "Calibrated").unwrap();
    expect_condition(
        &api,
        "checkout",
        "MetricsAvailable",
        "True",
        "QuerySucceeded",
    )
    .unwrap();
    let ev = events(&api, "checkout");
    assert!(
        ev.iter().any(|(t, r, n)| t == "Normal"
            && r == "ScaledUp"
            && n.contains("from 2 to")
            && n.contains("daily forecast")),
        "{ev:?}"
    );
    let text = op.metrics.encode();
    assert!(
        text.contains("prescaler_forecast_replicas{namespace=\"shop\",name=\"checkout\"}"),
        "{text}"
    );
    let desired = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("prescaler_desired_replicas{namespace=\"shop\",name=\"checkout\"} ")
        })
        .and_then(|v| v.parse::<f64>().ok());
    assert!(desired.is_some_and(|d| d >= needed as f64), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forecast_only_publishes_and_never_writes_the_target() {
    let api = FakeApi::new();
    api.put(deployment("trial", 2));
    api.put(scaler(
        "trial",
        "spiky",
        every_minute(json!({ "mode": "ForecastOnly" })),
    ));
    let _op = start_operator_on(&api, shared_source(), |_| {});

    eventually(30, "ForecastOnly publishes the decision", || {
        let desired = status(&api, "trial")["desiredReplicas"]
            .as_i64()
            .unwrap_or(0);
        if desired >= ahead_of_the_spike() {
            Ok(())
        } else {
            Err(format!("desired {desired}"))
        }
    })
    .await;
    expect_condition(&api, "trial", "Ready", "True", "ForecastOnly").unwrap();
    let (_, _, message) = condition(&api, "trial", "Ready").unwrap();
    assert!(message.contains("nothing is written"), "{message}");
    tokio::time::sleep(StdDuration::from_secs(2)).await;
    assert_eq!(replicas(&api, "trial"), 2);
    assert_eq!(
        api.writes_to("/deployments/trial"),
        0,
        "no write of any kind to the workload"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peak_window_holds_its_floor() {
    let api = FakeApi::new();
    api.put(deployment("lunch", 2));
    // A window that is always open: every minute, for an hour.
    api.put(scaler(
        "lunch",
        "steady",
        json!({ "peakWindows": [{ "name": "always", "schedule": "* * * * *", "duration": "1h",
                                   "timeZone": "Europe/Berlin", "minReplicas": 7 }] }),
    ));
    let _op = start_operator_on(&api, shared_source(), |_| {});
    eventually(30, "the floor is applied", || {
        let r = replicas(&api, "lunch");
        if r == 7 {
            Ok(())
        } else {
            Err(format!("{r} replicas"))
        }
    })
    .await;
    let s = status(&api, "lunch");
    assert_eq!(s["reason"], "PeakWindow", "{s}");
    assert_eq!(s["scheduledMinReplicas"], 7, "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hpa_gets_its_floor_raised_and_restored() {
    let api = FakeApi::new();
    api.put(deployment("web", 2));
    api.put(hpa("web", 2, json!({})));
    api.put(scaler("web", "spiky", every_minute(json!({}))));
    // The HPA controller writes the HPA's status between prescaler's read and its write.
    api.fail_next(Method::PATCH, "/horizontalpodautoscalers/web", 409, 1);
    let op = start_operator_on(&api, shared_source(), |_| {});

    let hpa = || get(&api, "autoscaling/v2", "HorizontalPodAutoscaler", "web");
    eventually(30, "the HPA's floor is raised", || {
        let min = hpa()["spec"]["minReplicas"].as_i64().unwrap();
        if min >= ahead_of_the_spike() {
            Ok(())
        } else {
            Err(format!("minReplicas {min}"))
        }
    })
    .await;
    assert_eq!(
        hpa()["metadata"]["annotations"]["prescaler.dev/original-min-replicas"],
        "2"
    );
    assert_eq!(
        api.writes_to("/deployments/web"),
        0,
        "the HPA scales the Deployment, not prescaler"
    );
    // HPAs come from one watch, not a list per reconcile (the operator lists them once at start
    // and once per spec change, to find floors to give back).
    let hpa_reads = || {
        api.requests()
            .iter()
            .filter(|r| r.method == Method::GET && r.path.ends_with("/horizontalpodautoscalers"))
            .count()
    };
    tokio::time::sleep(StdDuration::from_secs(2)).await;
    let (reconciles, reads) = (op.reconciles(), hpa_reads());
    tokio::time::sleep(StdDuration::from_secs(3)).await;
    let (reconciles, reads) = (op.reconciles() - reconciles, hpa_reads() - reads);
    assert!(
        reconciles >= 2 && reads == 0,
        "{reconciles} reconciles, {reads} HPA lists or watches meanwhile"
    );
    expect_condition(&api, "web", "Ready", "True", "FloorOnHPA").unwrap();
    assert!(events(&api, "web").iter().any(|(_, r, _)| r == "FloorSet"));

    api.delete("prescaler.dev/v1alpha1", "PredictiveScaler", NS, "web");
    eventually(
        60,
        "the HPA's own floor is back and the scaler is gone",
        || {
            let h = hpa();
            let min = h["spec"]["minReplicas"].as_i64().unwrap();
            let gone = api
                .get("prescaler.dev/v1alpha1", "PredictiveScaler", NS, "web")
                .is_none();
            if min == 2
                && gone
                && h["metadata"]["annotations"]
                    .get("prescaler.dev/original-min-replicas")
                    .is_none()
            {
                Ok(())
            } else {
                Err(format!("minReplicas {min}, scaler gone {gone}: {h}"))
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_operator_makes_the_same_decision() {
    let api = FakeApi::new();
    api.put(deployment("restart", 2));
    api.put(scaler(
        "restart",
        "spiky",
        json!({ "mode": "ForecastOnly" }),
    ));
    let mut running = start_operator_on(&api, shared_source(), |_| {});
    eventually(30, "a first decision", || {
        let s = status(&api, "restart");
        if s["forecastReplicas"].is_number() {
            Ok(())
        } else {
            Err(s.to_string())
        }
    })
    .await;
    // The spike ahead moves the decision from one minute to the next, so the two decisions
    // compared must belong to the same minute (`plan.computedAt`): a restart that crossed a
    // minute is tried again.
    for _ in 0..3 {
        let before = status(&api, "restart");
        drop(running);
        // A new process: no memory but what is in the cluster and Prometheus.
        let restarted = start_operator_on(&api, shared_source(), |_| {});
        eventually(30, "the restarted operator decides", || {
            if restarted.reconciles() >= 2 {
                Ok(())
            } else {
                Err("not reconciled yet".into())
            }
        })
        .await;
        let after = status(&api, "restart");
        if after["plan"]["computedAt"] == before["plan"]["computedAt"] {
            for field in [
                "desiredReplicas",
                "forecastReplicas",
                "reason",
                "reactiveReplicas",
            ] {
                assert_eq!(before[field], after[field], "{field}: {before} vs {after}");
            }
            return;
        }
        running = restarted;
    }
    panic!("three restarts in a row crossed a minute");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_specs_and_targets_are_reported_and_nothing_is_scaled() {
    let api = FakeApi::new();
    api.put(deployment("typo", 5));
    api.put(scaler(
        "typo",
        "steady",
        json!({ "metric": { "query": "sum(rate(http_requests_total[2m])" } }),
    ));
    api.put(deployment("tz", 5));
    api.put(scaler(
        "tz",
        "steady",
        json!({ "peakWindows": [{ "name": "x", "schedule": "0 9 * * *", "duration": "1h",
                                   "timeZone": "Europe/Atlantis", "minReplicas": 3 }] }),
    ));
    api.put(scaler("missing", "steady", json!({})));
    api.put(json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": { "name": "noscale", "namespace": NS }, "spec": {},
    }));
    api.put(scaler(
        "noscale",
        "steady",
        json!({ "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "DaemonSet", "name": "noscale" } }),
    ));
    api.put(scaler(
        "elsewhere",
        "steady",
        json!({ "scaleTargetRef": { "namespace": "payments", "name": "typo" } }),
    ));
    let _op = start_operator_on(&api, shared_source(), |_| {});

    let cases = [
        (
            "elsewhere",
            "CrossNamespaceTarget",
            "only targets in its own namespace",
        ),
        ("typo", "InvalidSpec", "spec.metric.query"),
        ("tz", "InvalidSpec", "Europe/Atlantis"),
        (
            "missing",
            "TargetNotFound",
            "Deployment shop/missing does not exist",
        ),
        ("noscale", "ScaleNotSupported", "no /scale subresource"),
    ];
    for (name, reason, text) in cases {
        eventually(30, name, || {
            expect_condition(&api, name, "Ready", "False", reason)?;
            let (_, _, message) = condition(&api, name, "Ready").unwrap();
            if message.contains(text) {
                Ok(())
            } else {
                Err(message)
            }
        })
        .await;
    }
    tokio::time::sleep(StdDuration::from_secs(2)).await;
    for name in ["typo", "tz", "missing", "noscale", "elsewhere"] {
        let ev = events(&api, name);
        let warnings: Vec<_> = ev.iter().filter(|(t, _, _)| t == "Warning").collect();
        assert_eq!(
            warnings.len(),
            1,
            "one Warning Event, not one per sync: {ev:?}"
        );
    }
    assert_eq!(replicas(&api, "typo"), 5, "an invalid spec scales nothing");
    assert_eq!(replicas(&api, "tz"), 5);
    assert_eq!(api.writes_to("/scale"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflicting_write_is_retried() {
    let api = FakeApi::new();
    api.put(deployment("busy", 2));
    api.put(scaler(
        "busy",
        "steady",
        json!({ "peakWindows": [{ "name": "always", "schedule": "* * * * *", "duration": "1h", "minReplicas": 4 }] }),
    ));
    // Someone else writes the Deployment between prescaler's read and its write, twice.
    api.fail_next(Method::PATCH, "/deployments/busy/scale", 409, 2);
    let _op = start_operator_on(&api, shared_source(), |_| {});
    eventually(30, "scaled despite the conflicts", || {
        let r = replicas(&api, "busy");
        if r == 4 {
            Ok(())
        } else {
            Err(format!("{r} replicas"))
        }
    })
    .await;
    let patches = api
        .requests()
        .iter()
        .filter(|r| r.method == Method::PATCH && r.path.ends_with("/deployments/busy/scale"))
        .count();
    assert_eq!(patches, 3, "two conflicts, then the write that landed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_down_holds_the_replicas_and_recovers() {
    let mut prom = TestPrometheus::steady("steady", 400.0, Duration::days(2));
    let api = FakeApi::new();
    api.put(deployment("steady", 12));
    // Scale-down is allowed at once, so a hold is the only thing that keeps the replicas.
    api.put(scaler(
        "steady",
        "steady",
        json!({ "behavior": { "scaleDown": { "stabilizationWindowSeconds": 0,
                 "policies": [{ "type": "Percent", "value": 100, "periodSeconds": 15 }] } } }),
    ));
    let _op = start_operator(&api, &prom.url());
    // 400/s needs 8 (10 with the 25 % margin of an uncalibrated forecast): down from 12.
    eventually(30, "scaled to the live load", || {
        let r = replicas(&api, "steady");
        if r < 12 {
            Ok(())
        } else {
            Err(format!("{r} replicas"))
        }
    })
    .await;
    let settled = replicas(&api, "steady");

    prom.kill();
    eventually(30, "the outage is reported", || {
        expect_condition(
            &api,
            "steady",
            "MetricsAvailable",
            "False",
            "PrometheusUnavailable",
        )
    })
    .await;
    let (_, _, message) = condition(&api, "steady", "MetricsAvailable").unwrap();
    // The endpoint by name and URL: beside a long-term store, which one is down matters.
    let down = format!("Prometheus at {} could not be reached", prom.url());
    assert!(
        message.contains(&down) && message.contains("holding"),
        "{message}"
    );
    assert_eq!(status(&api, "steady")["reason"], "Hold");
    tokio::time::sleep(StdDuration::from_secs(3)).await;
    assert_eq!(
        replicas(&api, "steady"),
        settled,
        "no scaling because of the outage"
    );
    let outage_events: Vec<_> = events(&api, "steady")
        .into_iter()
        .filter(|(_, r, _)| r == "PrometheusUnavailable")
        .collect();
    assert_eq!(
        outage_events.len(),
        1,
        "one Event for the outage, not one per sync"
    );
    assert!(outage_events[0].2.contains(&down), "{outage_events:?}");

    prom.restart();
    eventually(60, "recovered by itself", || {
        expect_condition(&api, "steady", "MetricsAvailable", "True", "QuerySucceeded")
    })
    .await;
    assert!(
        events(&api, "steady")
            .iter()
            .any(|(t, r, _)| t == "Normal" && r == "QuerySucceeded"),
        "the recovery is an Event too"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backtest_replays_a_scaler_from_prometheus() {
    let prom = shared_prometheus();
    let api = FakeApi::new();
    api.put(scaler("checkout", "spiky", every_minute(json!({}))));
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.serve_http(dir.path()).await;
    let eval_start = (Utc::now() - Duration::days(3))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let url = prom.url();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_prescaler"))
            .args([
                "backtest",
                "--prometheus-url",
                &url,
                "-n",
                NS,
                "--scaler",
                "checkout",
                "--range",
                "8d",
            ])
            .args(["--eval-start", &eval_start])
            .env("KUBECONFIG", kubeconfig)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("spiky"),
        "names the query it replayed: {stdout}"
    );
    // Three days of a daily spike, scored: prescaler foresees it, the HPA reacts after it.
    let violations = |name: &str| -> i64 {
        let line = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("{stdout}"));
        line.split_whitespace().nth(2).unwrap().parse().unwrap()
    };
    assert!(violations("prescaler") < violations("hpa80"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_calendar_and_scheduled_ceilings_drive_the_operator() {
    let api = FakeApi::new();
    let now = Utc::now();
    let rfc = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    // A dated sale starting in 3 minutes (inside the 6-minute lead time) with a floor.
    api.put(deployment("sale", 2));
    api.put(scaler(
        "sale",
        "steady",
        json!({ "calendar": { "events": [{ "name": "black-friday", "start": rfc(now + Duration::minutes(3)),
                                           "duration": "2h", "minReplicas": 9 }] } }),
    ));
    // A peak window that is always open, switched off by today's exclusion (in a zone ahead
    // of UTC, written as a local date).
    let auckland: chrono_tz::Tz = "Pacific/Auckland".parse().unwrap();
    api.put(deployment("holiday", 2));
    api.put(scaler(
        "holiday",
        "steady",
        json!({ "peakWindows": [{ "name": "always", "schedule": "* * * * *", "duration": "1h", "minReplicas": 7 }],
                "calendar": { "timeZone": "Pacific/Auckland", "exclusions": [
                    { "name": "day-off", "date": now.with_timezone(&auckland).date_naive().to_string() }] } }),
    ));
    // Quiet hours: a ceiling of 4 on a workload running 10 whose load needs 10 (100/s at 10 a
    // replica), so that the ceiling is what holds it whatever the scale-down rules allow.
    api.put(deployment("quiet", 10));
    api.put(scaler(
        "quiet",
        "steady",
        json!({ "metric": { "targetPerReplica": 10.0 },
                "peakWindows": [{ "name": "night", "schedule": "* * * * *", "duration": "1h", "maxReplicas": 4 }] }),
    ));
    // A declared surge: five times the usual load from 3 minutes on.
    api.put(deployment("surge", 2));
    api.put(scaler(
        "surge",
        "steady",
        json!({ "calendar": { "events": [{ "name": "campaign", "start": rfc(now + Duration::minutes(3)),
                                           "duration": "1h", "loadMultiplier": 5 }] } }),
    ));
    // The spike ahead needs 20; maxReplicas is 8.
    api.put(deployment("small", 2));
    api.put(scaler(
        "small",
        "spiky",
        every_minute(json!({ "maxReplicas": 8 })),
    ));
    let _op = start_operator_on(&api, shared_source(), |_| {});

    // Every scaler asserted below is waited for, the holiday's exclusion too: under load its
    // first reconcile can come after the other four have settled.
    // A minute: on a CI machine busy with the whole suite, the five scalers' first calibrations
    // (8 days of history each) took longer than 30 s once, and the warning needs one.
    eventually(
        60,
        "the event's floor, the ceiling, the exclusion and the warning",
        || {
            let got = (
                replicas(&api, "sale"),
                replicas(&api, "quiet"),
                condition(&api, "small", "MaxReplicasSufficient").map(|c| c.0),
                replicas(&api, "surge") >= (5.0 * BASE / PER_REPLICA) as i64,
                status(&api, "holiday")["schedule"].clone(),
            );
            if got
                == (
                    9,
                    4,
                    Some("False".into()),
                    true,
                    json!("excluded (day-off)"),
                )
            {
                Ok(())
            } else {
                Err(format!("{got:?}; small: {}", status(&api, "small")))
            }
        },
    )
    .await;
    let sale = status(&api, "sale");
    assert_eq!(sale["reason"], "Event", "{sale}");
    assert_eq!(sale["scheduledMinReplicas"], 9, "{sale}");
    assert!(
        sale["schedule"].as_str().unwrap().contains("black-friday"),
        "{sale}"
    );

    let surge = status(&api, "surge");
    assert_eq!(surge["reason"], "Event", "{surge}");
    assert!(
        surge["forecastLoad"].as_f64().unwrap() >= 4.9 * BASE,
        "{surge}"
    );

    let quiet = status(&api, "quiet");
    assert_eq!(quiet["reason"], "ScheduledMaximum", "{quiet}");
    assert_eq!(quiet["scheduledMaxReplicas"], 4, "{quiet}");
    expect_condition(&api, "quiet", "ScalingLimited", "True", "ScheduledMaximum").unwrap();

    let holiday = status(&api, "holiday");
    assert!(replicas(&api, "holiday") < 7, "{holiday}");
    assert_eq!(holiday["schedule"], "excluded (day-off)", "{holiday}");
    assert!(holiday.get("scheduledMinReplicas").is_none(), "{holiday}");

    let (_, reason, message) = condition(&api, "small", "MaxReplicasSufficient").unwrap();
    assert_eq!(reason, "ForecastAboveMaxReplicas");
    assert!(message.contains("maxReplicas is 8"), "{message}");
    assert!(
        Utc::now() < spike_start(),
        "the warning came a lead time ahead of the spike"
    );
    let ev = events(&api, "small");
    assert!(
        ev.iter().any(|(t, r, n)| t == "Warning"
            && r == "ForecastAboveMaxReplicas"
            && n.contains("needs")),
        "{ev:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_shows_a_peak_window_ahead_in_status_and_metrics() {
    let api = FakeApi::new();
    api.put(deployment("planned", 2));
    // A window opening on the quarter hour two to two and a quarter hours from now, for 2 hours.
    let opens = Utc::now().duration_trunc(Duration::minutes(15)).unwrap() + Duration::hours(2);
    let schedule = format!("{} {} * * *", opens.minute(), opens.hour());
    api.put(scaler(
        "planned",
        "spiky",
        json!({ "mode": "ForecastOnly",
                "peakWindows": [{ "name": "launch", "schedule": schedule, "duration": "2h",
                                  "minReplicas": 33 }] }),
    ));
    let op = start_operator_on(&api, shared_source(), |_| {});
    eventually(30, "status.plan", || {
        let s = status(&api, "planned");
        if s["plan"]["max"].is_object() {
            Ok(())
        } else {
            Err(s.to_string())
        }
    })
    .await;
    let s = status(&api, "planned");
    let plan = &s["plan"];
    // The most replicas ahead: the window's floor, from its opening, and named.
    assert_eq!(plan["max"]["replicas"], 33, "{plan}");
    assert_eq!(plan["max"]["reason"], "PeakWindow", "{plan}");
    assert_eq!(plan["max"]["by"], "launch", "{plan}");
    let opens_text = opens.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    assert_eq!(plan["max"]["at"], opens_text.as_str(), "{plan}");
    assert_eq!(plan["horizon"], "1d", "{plan}");
    assert!(plan.get("held").is_none(), "calibrated: not held: {plan}");
    // Five horizons, bounded: 3 hours ahead is inside the window.
    let ahead = plan["ahead"].as_array().unwrap();
    let horizons: Vec<_> = ahead.iter().map(|a| a["in"].as_str().unwrap()).collect();
    assert_eq!(horizons, ["15m", "1h", "3h", "6h", "24h"], "{plan}");
    // The daily spike (20 replicas, minutes away when the tests start, 30 minutes long) comes
    // before the window: the step a quarter hour ahead is in it, decided by the forecast, below
    // the window's floor. The next peak comes no later than the window: the spike's step where
    // it rises above the decision now, else the window itself — the decision now, whose lead
    // time reaches the spike, already asks for the spike at its height (a recurring step is
    // read sharp), and nothing between rises above it.
    let next = &plan["nextPeak"];
    assert!(
        next["at"].as_str().unwrap() <= opens_text.as_str(),
        "{plan}"
    );
    if Utc::now() < spike_start() {
        assert_eq!(ahead[0]["reason"], "Forecast", "{plan}");
        let r = ahead[0]["replicas"].as_i64().unwrap();
        assert!((10..33).contains(&r), "{plan}");
    }
    if next["reason"] == "Forecast" {
        let r = next["replicas"].as_i64().unwrap();
        assert!((10..33).contains(&r), "{plan}");
    } else {
        assert_eq!(next["by"], "launch", "{plan}");
    }
    assert_eq!(ahead[2]["replicas"], 33, "{plan}");
    assert!(ahead[3]["replicas"].as_i64().unwrap() < 33, "{plan}");
    // The metric, at the same horizons.
    let text = op.metrics.encode();
    let planned = |h: &str| {
        text.lines()
            .find_map(|l| {
                l.strip_prefix(&format!(
                    "prescaler_planned_replicas{{namespace=\"shop\",name=\"planned\",horizon=\"{h}\"}} "
                ))
            })
            .and_then(|v| v.parse::<f64>().ok())
    };
    assert_eq!(planned("3h"), Some(33.0), "{text}");
    for h in ["15m", "1h", "6h", "24h"] {
        assert!(planned(h).is_some(), "{h}: {text}");
    }
    assert!(
        text.contains("prescaler_plan_duration_seconds_count"),
        "{text}"
    );
    // Made once per quarter hour, not at every sync.
    tokio::time::sleep(StdDuration::from_secs(3)).await;
    let plans = text_count(
        &op.metrics.encode(),
        "prescaler_plan_duration_seconds_count",
    );
    assert!(op.reconciles() >= 3 && plans <= 2, "{plans} plans");
}

fn text_count(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}
