//! Several load metrics (`spec.metrics`) end to end: the operator's reconcile loop between the
//! fake Kubernetes API and a scripted source, each metric a series of its own. The highest need
//! over the metrics decides and is named, a metric that cannot be read keeps the count from
//! going down but not up (the HPA's `computeReplicasForMetrics`), every metric's query is
//! confined to the scaler's namespace, and the account against an HPA (`status.savings`) is
//! the HPA on every metric, as a backtest of the same minutes scores it.

use crate::support;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde_json::{Value, json};
use support::fake_api::FakeApi;
use support::harness::*;
use support::scripted::ScriptedSource;

use prescaler::planning::ledger::{self, Cost, Model, Tally};

/// Requests per second one replica serves, and queue backlog one replica works off.
const REQUESTS_PER_REPLICA: f64 = 50.0;
const QUEUE_PER_REPLICA: f64 = 10.0;

/// A PredictiveScaler of Deployment `name` on two metrics, `requests` and `queue` (in that
/// order), with `extra` merged into its spec.
fn two_metrics(name: &str, extra: Value) -> Value {
    let mut s = scaler(
        name,
        name,
        json!({ "metrics": [
            { "name": "requests", "query": format!("sum(requests_total{{service=\"{name}\"}})"),
              "targetPerReplica": REQUESTS_PER_REPLICA },
            { "name": "queue", "query": format!("sum(queue_depth{{service=\"{name}\"}})"),
              "targetPerReplica": QUEUE_PER_REPLICA },
        ] }),
    );
    s["spec"].as_object_mut().unwrap().remove("metric");
    merge(&mut s["spec"], &extra);
    s
}

/// A scale-up to any count in one step, and a scale-down at once: what the behavior would hold
/// back does not hide what the metrics ask for.
fn unhindered() -> Value {
    json!({ "behavior": {
        "scaleUp": { "policies": [{ "type": "Pods", "value": 100, "periodSeconds": 15 }] },
        "scaleDown": { "stabilizationWindowSeconds": 0,
                       "policies": [{ "type": "Percent", "value": 100, "periodSeconds": 15 }] },
    } })
}

/// The start of the next minute: a load that changes there is read as new (not as a minute the
/// history already holds).
fn next_minute() -> DateTime<Utc> {
    Utc::now().duration_trunc(Duration::minutes(1)).unwrap() + Duration::minutes(1)
}

/// Two days of history before `origin`, as a Prometheus that has recorded them.
fn recorded(origin: &OnceLock<DateTime<Utc>>, t: DateTime<Utc>) -> bool {
    let origin = *origin.get_or_init(|| Utc::now().duration_trunc(Duration::minutes(1)).unwrap());
    t >= origin - Duration::days(2)
}

fn after(rise: &OnceLock<DateTime<Utc>>, t: DateTime<Utc>) -> bool {
    rise.get().is_some_and(|r| t >= *r)
}

/// One entry of `status.metrics[]`: the metric's name, live load and replicas.
type MetricLine = (String, Option<f64>, i64);

/// `status.metrics[]` of `name`, and `status.decidingMetric`.
fn per_metric(api: &FakeApi, name: &str) -> (Vec<MetricLine>, Option<String>) {
    let s = status(api, name);
    let metrics = s["metrics"]
        .as_array()
        .map(|all| {
            all.iter()
                .map(|m| {
                    (
                        m["name"].as_str().unwrap_or_default().to_string(),
                        m["load"].as_f64(),
                        m["replicas"].as_i64().unwrap_or(-1),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    (metrics, s["decidingMetric"].as_str().map(str::to_string))
}

static ORIGIN_A: OnceLock<DateTime<Utc>> = OnceLock::new();
static QUEUE_RISE_A: OnceLock<DateTime<Utc>> = OnceLock::new();

/// Requests steady at 100/s (2 replicas); the queue at 10 (1 replica) until `QUEUE_RISE_A`, then
/// 300 (30 replicas).
fn load_a(query: &str, t: DateTime<Utc>) -> Option<f64> {
    if !recorded(&ORIGIN_A, t) {
        return None;
    }
    if query.contains("requests_total") {
        Some(100.0)
    } else if query.contains("queue_depth") {
        Some(if after(&QUEUE_RISE_A, t) { 300.0 } else { 10.0 })
    } else {
        None
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metric_that_needs_most_decides_and_is_named() {
    let api = FakeApi::new();
    api.put(deployment("orders", 2));
    api.put(two_metrics("orders", unhindered()));
    let source = Arc::new(ScriptedSource::new(load_a).with_timeout(PROMETHEUS_TIMEOUT));
    let _op = start_operator_on(&api, source, |_| {});

    // First the requests need the most (2 replicas, 3 with an uncalibrated margin; the queue 1).
    eventually(
        30,
        "decided on both metrics, by the requests",
        || match per_metric(&api, "orders") {
            (m, Some(by)) if m.len() == 2 && by == "requests" => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .await;
    let before = replicas(&api, "orders");
    assert!(before < 10, "{before} replicas");

    // The queue's backlog rises to 300: 30 replicas, far more than the requests need.
    QUEUE_RISE_A.set(next_minute()).unwrap();
    eventually(150, "scaled to what the queue needs", || {
        let r = replicas(&api, "orders");
        match per_metric(&api, "orders") {
            (_, Some(by)) if r >= 30 && by == "queue" => Ok(()),
            other => Err(format!("{r} replicas, {other:?}")),
        }
    })
    .await;
    let (metrics, _) = per_metric(&api, "orders");
    assert_eq!(metrics[0].0, "requests");
    assert_eq!(metrics[0].1, Some(100.0));
    assert!(metrics[0].2 < 10, "{metrics:?}");
    assert_eq!(metrics[1].0, "queue");
    assert_eq!(metrics[1].1, Some(300.0));
    assert!(metrics[1].2 >= 30, "{metrics:?}");
    let s = status(&api, "orders");
    assert!(s["desiredReplicas"].as_i64().unwrap() >= 30, "{s}");
    assert_eq!(
        condition(&api, "orders", "MetricsAvailable").map(|c| c.0),
        Some("True".into())
    );
    let ev = events(&api, "orders");
    assert!(
        ev.iter()
            .any(|(_, r, note)| r == "ScaledUp" && note.contains("metric \"queue\": ")),
        "the scale-up names the metric that decided: {ev:?}"
    );
}

static ORIGIN_B: OnceLock<DateTime<Utc>> = OnceLock::new();
static REQUESTS_RISE_B: OnceLock<DateTime<Utc>> = OnceLock::new();

/// The queue at 200 (20 replicas); requests at 100/s (2 replicas) until `REQUESTS_RISE_B`, then
/// 1800/s (36 replicas).
fn load_b(query: &str, t: DateTime<Utc>) -> Option<f64> {
    if !recorded(&ORIGIN_B, t) {
        return None;
    }
    if query.contains("requests_total") {
        Some(if after(&REQUESTS_RISE_B, t) {
            1800.0
        } else {
            100.0
        })
    } else if query.contains("queue_depth") {
        Some(200.0)
    } else {
        None
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metric_that_cannot_be_read_stops_a_scale_down_but_not_a_rise() {
    let api = FakeApi::new();
    api.put(deployment("payments", 2));
    api.put(two_metrics("payments", unhindered()));
    let source = Arc::new(ScriptedSource::new(load_b).with_timeout(PROMETHEUS_TIMEOUT));
    let _op = start_operator_on(&api, source.clone(), |_| {});

    // The queue needs 20 (25 with an uncalibrated margin), the requests 2.
    eventually(30, "scaled to what the queue needs", || {
        let r = replicas(&api, "payments");
        match per_metric(&api, "payments") {
            (_, Some(by)) if r >= 20 && by == "queue" => Ok(()),
            other => Err(format!("{r} replicas, {other:?}")),
        }
    })
    .await;

    // The queue's query is refused from now on. The requests alone would scale down to 2 at
    // once (the behavior allows it), but a metric that cannot be read holds the count.
    source.refuse(Some("queue_depth"));
    eventually(30, "the queue named as not read", || {
        expect_condition(
            &api,
            "payments",
            "MetricsAvailable",
            "False",
            "PrometheusUnavailable",
        )?;
        let (_, _, message) = condition(&api, "payments", "MetricsAvailable").unwrap();
        match message.contains("metric \"queue\": ") && !message.contains("\"requests\"") {
            true => Ok(()),
            false => Err(message),
        }
    })
    .await;
    let held = replicas(&api, "payments");
    assert!(held >= 20, "{held} replicas");
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(
        replicas(&api, "payments"),
        held,
        "nothing is scaled down while the queue is not read"
    );
    let s = status(&api, "payments");
    assert_eq!(s["metrics"][1]["reason"], "Hold", "{s}");
    assert!(s["metrics"][1]["load"].is_null(), "{s}");

    // The requests rise to 1800/s (36 replicas): the metric still read scales up.
    REQUESTS_RISE_B.set(next_minute()).unwrap();
    eventually(150, "scaled up for the requests", || {
        let r = replicas(&api, "payments");
        match per_metric(&api, "payments") {
            (_, Some(by)) if r >= 36 && by == "requests" => Ok(()),
            other => Err(format!("{r} replicas, {other:?}")),
        }
    })
    .await;
    expect_condition(
        &api,
        "payments",
        "MetricsAvailable",
        "False",
        "PrometheusUnavailable",
    )
    .unwrap();
}

static ORIGIN_C: OnceLock<DateTime<Utc>> = OnceLock::new();

fn load_c(query: &str, t: DateTime<Utc>) -> Option<f64> {
    if !recorded(&ORIGIN_C, t) {
        return None;
    }
    if query.contains("requests_total") {
        Some(100.0)
    } else if query.contains("queue_depth") {
        Some(20.0)
    } else {
        None
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_query_is_confined_to_the_namespace() {
    let api = FakeApi::new();
    api.put(deployment("search", 2));
    api.put(two_metrics("search", json!({})));
    let source = Arc::new(ScriptedSource::new(load_c).with_timeout(PROMETHEUS_TIMEOUT));
    let _op = start_operator_on(&api, source.clone(), |s| {
        s.namespace_label = Some("namespace".into())
    });
    eventually(30, "both metrics read", || {
        match per_metric(&api, "search") {
            (m, _) if m.len() == 2 && m.iter().all(|(_, load, _)| load.is_some()) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let queries = source.queries();
    for metric in ["requests_total", "queue_depth"] {
        assert!(
            queries.iter().any(|q| q.contains(metric)),
            "{metric} is read: {queries:?}"
        );
    }
    let own = format!("namespace=\"{NS}\"");
    let unconfined: Vec<_> = queries.iter().filter(|q| !q.contains(&own)).collect();
    assert!(
        unconfined.is_empty(),
        "every query sent is confined to {NS}: {unconfined:?}"
    );
}

static ORIGIN_D: OnceLock<DateTime<Utc>> = OnceLock::new();
static QUEUE_RISE_D: OnceLock<DateTime<Utc>> = OnceLock::new();

/// Requests steady at 100/s (2 replicas; 3 for an HPA at 80 %); the queue at 10 (1 replica)
/// until `QUEUE_RISE_D`, then 60 (6 replicas; 7 or 8 for the HPA).
fn load_d(query: &str, t: DateTime<Utc>) -> Option<f64> {
    if !recorded(&ORIGIN_D, t) {
        return None;
    }
    if query.contains("requests_total") {
        Some(100.0)
    } else if query.contains("queue_depth") {
        Some(if after(&QUEUE_RISE_D, t) { 60.0 } else { 10.0 })
    } else {
        None
    }
}

/// prescaler's count throughout: the floor of a peak window that is always open, above what
/// either metric asks for with the largest margins (the queue's 6 replicas doubled, and 2).
const FLOOR: i64 = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_account_against_an_hpa_on_both_metrics_is_a_backtest_of_the_same_minutes() {
    let api = FakeApi::new();
    api.put(deployment("ledger", 2));
    api.put(two_metrics(
        "ledger",
        json!({ "peakWindows": [{ "name": "always", "schedule": "* * * * *", "duration": "1h",
                                   "minReplicas": FLOOR }] }),
    ));
    let source = Arc::new(ScriptedSource::new(load_d).with_timeout(PROMETHEUS_TIMEOUT));
    let _op = start_operator_on(&api, source, |_| {});
    eventually(30, "the floor is applied", || {
        match replicas(&api, "ledger") {
            FLOOR => Ok(()),
            r => Err(format!("{r} replicas")),
        }
    })
    .await;
    // The queue backs up: the HPA on both metrics follows it, 5 minutes late for its pods; on
    // the requests alone it would never follow.
    QUEUE_RISE_D.set(next_minute()).unwrap();
    let mut seen = Value::Null;
    eventually(420, "minutes counted, the HPA's step among them", || {
        assert_eq!(
            replicas(&api, "ledger"),
            FLOOR,
            "prescaler's decision stays"
        );
        seen = status(&api, "ledger");
        let sum = |key: &str| {
            seen["savings"]["days"]
                .as_array()
                .map_or(0, |d| d.iter().map(|d| d[key].as_i64().unwrap_or(0)).sum())
        };
        match (sum("minutes"), sum("hpaShortMinutes")) {
            (m, s) if m >= 3 && s >= 2 => Ok(()),
            other => Err(format!("{other:?}: {seen}")),
        }
    })
    .await;
    let savings = &seen["savings"];
    let time = |key: &str| {
        DateTime::parse_from_rfc3339(savings[key].as_str().unwrap())
            .unwrap()
            .to_utc()
    };
    let (from, through) = (time("from"), time("through"));
    let figure = |key: &str| -> u64 {
        let days = savings["days"].as_array().unwrap();
        days.iter().map(|d| d[key].as_i64().unwrap() as u64).sum()
    };
    let published = Tally {
        minutes: figure("minutes"),
        prescaler: Cost {
            replica_minutes: figure("replicaMinutes"),
            short_minutes: figure("shortMinutes"),
        },
        hpa: Cost {
            replica_minutes: figure("hpaReplicaMinutes"),
            short_minutes: figure("hpaShortMinutes"),
        },
    };

    // The same minutes of each metric, as the scripted source served them, through the
    // backtest's model of a CSV with their two columns.
    let minute = Duration::minutes(1);
    let series = |query: &str| -> BTreeMap<DateTime<Utc>, f64> {
        let first = from - Duration::hours(2);
        (0..=(through - first).num_minutes() + 1)
            .map(|m| first + minute * m as i32)
            .filter_map(|t| Some((t, load_d(query, t)?)))
            .collect()
    };
    let requests = series("sum(requests_total{})");
    let queue = series("sum(queue_depth{})");
    let model = Model {
        target_per_replica: 1.0,
        min_replicas: 2,
        max_replicas: 40,
        startup: ledger::DEFAULT_STARTUP,
    };
    let replayed = crate::savings::backtest_of_metrics(
        &[
            (&requests, REQUESTS_PER_REPLICA),
            (&queue, QUEUE_PER_REPLICA),
        ],
        from,
        through,
        &model,
        |_| FLOOR as u32,
    );
    assert_eq!(published, replayed, "{seen}");
    assert_eq!(replayed.prescaler.short_minutes, 0);
    assert_eq!(
        savings["summary"],
        ledger::summary_on(&replayed, through - from, 80, ledger::DEFAULT_STARTUP, 2),
    );
}

static ORIGIN_E: OnceLock<DateTime<Utc>> = OnceLock::new();

fn load_e(query: &str, t: DateTime<Utc>) -> Option<f64> {
    if !recorded(&ORIGIN_E, t) {
        return None;
    }
    match query.contains("requests_total") {
        true => Some(100.0),
        false => Some(20.0),
    }
}

/// `status.plan` of a scaler of several metrics: the plan of both (`outlook_of_metrics`), here
/// the floor of a window that stays open over the whole day ahead, above what either metric
/// asks for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_of_several_metrics_is_published() {
    let api = FakeApi::new();
    api.put(deployment("plans", 2));
    api.put(two_metrics(
        "plans",
        json!({ "peakWindows": [{ "name": "always", "schedule": "* * * * *", "duration": "1h",
                                   "minReplicas": FLOOR }] }),
    ));
    let source = Arc::new(ScriptedSource::new(load_e).with_timeout(PROMETHEUS_TIMEOUT));
    let _op = start_operator_on(&api, source, |_| {});
    eventually(30, "a plan of both metrics", || {
        let plan = &status(&api, "plans")["plan"];
        match (plan["max"]["replicas"].as_i64(), plan["ahead"].as_array()) {
            (Some(FLOOR), Some(ahead)) if ahead.len() == 5 => Ok(()),
            _ => Err(format!("{plan}")),
        }
    })
    .await;
    let plan = &status(&api, "plans")["plan"];
    assert_eq!(plan["max"]["by"], "always", "{plan}");
    assert!(
        plan["ahead"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["replicas"] == FLOOR && a["reason"] == "PeakWindow"),
        "{plan}"
    );
}
