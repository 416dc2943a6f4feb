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

use prescaler::planning::ledger::{self, Model};

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
    let published = crate::savings::published_tally(savings);

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

static ORIGIN_F: OnceLock<DateTime<Utc>> = OnceLock::new();

/// Requests recorded for 9 days, the queue for 2: of the spec's 8 days of history
/// (`forecast.history` in `scaler`), only the queue's falls short.
fn load_f(query: &str, t: DateTime<Utc>) -> Option<f64> {
    let origin = *ORIGIN_F.get_or_init(|| Utc::now().duration_trunc(Duration::minutes(1)).unwrap());
    if query.contains("requests_total") && t >= origin - Duration::days(9) {
        Some(100.0)
    } else if query.contains("queue_depth") && t >= origin - Duration::days(2) {
        Some(10.0)
    } else {
        None
    }
}

/// `HistoryAvailable` judges every metric's history, each of which its own forecast rests on:
/// the queue's 2 of 8 days are named as the queue's, and the requests' whole history is not
/// called short. (Judged on the shortest history without a name, the condition said "2 of 8
/// days of history" and left the reader to guess which query to fix.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_available_names_the_metric_whose_history_is_short() {
    let api = FakeApi::new();
    api.put(deployment("ledger", 2));
    api.put(two_metrics("ledger", json!({})));
    let source = Arc::new(ScriptedSource::new(load_f).with_timeout(PROMETHEUS_TIMEOUT));
    let _op = start_operator_on(&api, source, |_| {});
    eventually(60, "HistoryAvailable judged", || {
        expect_condition(
            &api,
            "ledger",
            "HistoryAvailable",
            "False",
            "ShortRetention",
        )
    })
    .await;
    let (_, _, message) = condition(&api, "ledger", "HistoryAvailable").unwrap();
    assert!(
        message.starts_with("metric \"queue\": 2 of 8 days of history: "),
        "{message}"
    );
    assert!(
        !message.contains("requests"),
        "the requests' 9 days are whole: {message}"
    );
}

/// The backtest from Prometheus reads every metric (`prescaler backtest --prometheus-url` and
/// the plugin's `backtest`), each confined to the scaler's namespace as the operator confines
/// it, and replays them exactly as a CSV of the same minutes in two columns is replayed. The
/// queue alone needs more than the requests (30 replicas from 09:00 to 10:00 UTC against 2):
/// a replay of the first metric alone needs 2 throughout, and another namespace's queue (read
/// unconfined) would add 1000 to every minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backtest_from_prometheus_replays_every_metric_as_the_csv_of_the_same_minutes() {
    use chrono::Timelike;
    use prescaler::adapters::history::RangeSource;
    use prescaler::adapters::prometheus::{Prometheus, PrometheusConfig};
    use prescaler::backtest::{self, trace::Trace};
    use prescaler::planning::forecast::ModelConfig;
    use support::prometheus::{METRIC, TestPrometheus, samples};

    const REQUESTS: &str = "service=\"orders\",namespace=\"shop\"";
    const QUEUE: &str = "service=\"orders-queue\",namespace=\"shop\"";
    const OTHERS: &str = "service=\"orders-queue\",namespace=\"other\"";
    let now = Utc::now().duration_trunc(Duration::minutes(1)).unwrap();
    // Five days up to half an hour ago: older than any read's start, and past Prometheus'
    // 5-minute look-back before any read's end, so that every read of it returns the same
    // minutes whenever it is made.
    let (from, to) = (now - Duration::days(5), now - Duration::minutes(30));
    let queue = |t: DateTime<Utc>| if t.hour() == 9 { 300.0 } else { 10.0 };
    let prom = TestPrometheus::start(&[
        (REQUESTS, samples(from, to, Duration::minutes(1), |_| 100.0)),
        (QUEUE, samples(from, to, Duration::minutes(1), queue)),
        (OTHERS, samples(from, to, Duration::minutes(1), |_| 1000.0)),
    ]);
    let query = |service: &str| format!("sum({METRIC}{{service=\"{service}\"}})");
    let mut manifest = two_metrics("orders", unhindered());
    manifest["spec"]["metrics"][0]["query"] = json!(query("orders"));
    manifest["spec"]["metrics"][1]["query"] = json!(query("orders-queue"));
    let dir = tempfile::tempdir().unwrap();
    let spec_file = dir.path().join("orders.yaml");
    std::fs::write(&spec_file, manifest.to_string()).unwrap();

    // The same series, exported: each metric's own namespace's series at one-minute steps, as
    // Prometheus serves them, in two columns.
    let mut cfg = PrometheusConfig::new(prom.url());
    cfg.timeout = std::time::Duration::from_secs(30);
    let client = Prometheus::new(&cfg).unwrap();
    let own = |service: &str| format!("sum({METRIC}{{service=\"{service}\",namespace=\"{NS}\"}})");
    let (start, end) = (from - Duration::hours(1), now);
    let step = Duration::minutes(1);
    let requests = client
        .range(&own("orders"), start, end, step)
        .await
        .unwrap();
    let queued = client
        .range(&own("orders-queue"), start, end, step)
        .await
        .unwrap();
    assert_eq!(requests.len(), queued.len());
    assert!(requests.len() > 4 * 1440, "{} samples", requests.len());
    let mut csv = String::from("timestamp,queue,requests\n");
    for ((t, r), (u, q)) in requests.iter().zip(&queued) {
        assert_eq!(t, u);
        csv.push_str(&format!("{},{q},{r}\n", t.to_rfc3339()));
    }
    let csv_file = dir.path().join("loads.csv");
    std::fs::write(&csv_file, csv).unwrap();
    // Scored from the third day: two days, two 09:00 rises of the queue.
    let eval_start = (requests[0].0 + Duration::days(3)).to_rfc3339();

    let backtest = |source: &[&str]| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_prescaler"));
        c.arg("backtest")
            .args(source)
            .arg("--spec")
            .arg(&spec_file)
            .args(["--eval-start", &eval_start, "--json"])
            .env_remove("PROMETHEUS_URL")
            .env_remove("HISTORY_PROMETHEUS_URL")
            .env_remove("KUBECONFIG");
        c
    };
    let json = |c: &mut std::process::Command, minutes: &std::path::Path| {
        let out = c.arg("--csv").arg(minutes).output().unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert!(out.status.success(), "{stderr}");
        let mut report: Value = serde_json::from_str(&stdout).expect(&stdout);
        // Named after where it came from; everything else must agree.
        let name = report["trace"].take();
        (report, name, stderr)
    };
    let from_csv = dir.path().join("from-csv.csv");
    let (replayed, _, _) = json(
        &mut backtest(&["--trace", &csv_file.display().to_string()]),
        &from_csv,
    );
    let from_prometheus = dir.path().join("from-prometheus.csv");
    let url = prom.url();
    let (read, name, stderr) = json(
        &mut backtest(&[
            "--prometheus-url",
            &url,
            "--range",
            "6d",
            "--confine-queries-to-namespace",
        ]),
        &from_prometheus,
    );
    assert_eq!(name, json!("spec.metrics (requests, queue)"));
    assert_eq!(read, replayed, "the same minutes, the same replay");
    assert_eq!(
        std::fs::read_to_string(&from_prometheus).unwrap(),
        std::fs::read_to_string(&from_csv).unwrap(),
        "minute by minute"
    );
    // Both metrics hold 5 of the 6 days read: each is named.
    for metric in [
        "metric \"requests\": 5 of 6 days",
        "metric \"queue\": 5 of 6 days",
    ] {
        assert!(stderr.contains(metric), "{stderr}");
    }
    // The need is the queue's 30 at 09:00 and the requests' 2 at night: read on both metrics.
    let needed: Vec<(DateTime<Utc>, u32)> = std::fs::read_to_string(&from_prometheus)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            (cells[0].parse().unwrap(), cells[2].parse().unwrap())
        })
        .collect();
    let at = |hour: u32| {
        needed
            .iter()
            .filter(move |(t, _)| t.hour() == hour && t.minute() == 30)
    };
    assert!(
        at(9).count() >= 4 && at(9).all(|(_, n)| *n == 30),
        "{:?}",
        at(9).collect::<Vec<_>>()
    );
    assert!(
        at(3).all(|(_, n)| *n == 2),
        "{:?}",
        at(3).collect::<Vec<_>>()
    );

    // The plugin, against the fake API: the same reads, replayed as `run_all_metrics` replays
    // the CSV's two columns at the scaler's own recalibration minute.
    let api = FakeApi::new();
    api.put(deployment("orders", 2));
    api.put(manifest.clone());
    let source = Arc::new(Prometheus::new(&cfg).unwrap());
    let range = Duration::days(6);
    let r = prescaler::plugin::backtest_confined(
        &api.client(),
        &*source,
        NS,
        "orders",
        range,
        now,
        Some("namespace"),
    )
    .await
    .unwrap();
    let spec = serde_json::from_value::<prescaler::api::PredictiveScaler>(manifest)
        .unwrap()
        .spec
        .validate()
        .unwrap();
    let names: Vec<String> = spec.metrics.iter().map(|m| m.name.clone()).collect();
    let traces = Trace::load_columns(&csv_file, &names).unwrap();
    let model = prescaler::placement::scaler_model(&ModelConfig::default(), NS, "orders");
    let (_, _, outcome) =
        backtest::run_all_metrics("loads.csv", traces, &r.setup, &spec, &model).unwrap();
    assert_eq!(r.trace.name, "spec.metrics (requests, queue)");
    assert_eq!(r.outcome.needed, outcome.needed);
    assert_eq!(r.outcome.runs[0].desired, outcome.runs[0].desired);
    assert_eq!(r.outcome.scores, outcome.scores);
    assert!(r.outcome.needed.contains(&30), "the queue's need is read");
}
