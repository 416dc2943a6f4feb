//! The proof on live traffic (`planning::ledger`): the operator's account of what its decisions
//! cost against an HPA on the same live metric is the backtest's model run on the minutes it
//! saw. Both tests hold the live figures to a backtest of the same minutes (its `Trace`, its HPA
//! baseline and its scoring): in the pure core, and end to end through the operator against the
//! fake Kubernetes API and a real Prometheus.

use crate::support;

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, DurationRound, Utc};
use prescaler::adapters::history::RangeSource;
use prescaler::adapters::prometheus::{Prometheus, PrometheusConfig};
use prescaler::backtest::baselines::{HpaModel, hpa};
use prescaler::backtest::score;
use prescaler::backtest::trace::Trace;
use prescaler::planning::forecast::History;
use prescaler::planning::ledger::{self, Cost, Ledger, Model, Tally};
use prescaler::planning::rng::SplitMix64;
use serde_json::json;
use support::fake_api::FakeApi;
use support::harness::*;
use support::prometheus::{METRIC, TestPrometheus, samples};

const MINUTE: Duration = Duration::minutes(1);

/// What `prescaler backtest` scores for the minutes `[from, through)`, given the metric's
/// samples (`metric`, by minute) and prescaler's decision in each minute: its trace is the load
/// the metric shows a minute late (`ledger::METRIC_LAG`, the backtest's `--metric-lag`), starting
/// where the live HPA's warm-up does, and scoring starts at `from`.
fn backtest(
    metric: &BTreeMap<DateTime<Utc>, f64>,
    from: DateTime<Utc>,
    through: DateTime<Utc>,
    model: &Model,
    decision: impl Fn(DateTime<Utc>) -> u32,
) -> Tally {
    let trace = trace_of(metric, from, through);
    score_minutes(&trace, from, model, decision)
}

/// `backtest` of several metrics, `metrics[i]` a metric's samples and its `targetPerReplica`:
/// one trace a metric, scored as `prescaler backtest` scores a CSV of their columns
/// (`run_all_metrics`): on their need in replicas (`Trace::in_replicas`), a load per replica
/// of 1.
pub(crate) fn backtest_of_metrics(
    metrics: &[(&BTreeMap<DateTime<Utc>, f64>, f64)],
    from: DateTime<Utc>,
    through: DateTime<Utc>,
    model: &Model,
    decision: impl Fn(DateTime<Utc>) -> u32,
) -> Tally {
    let traces: Vec<Trace> = metrics
        .iter()
        .map(|(metric, _)| trace_of(metric, from, through))
        .collect();
    let per_replica: Vec<f64> = metrics.iter().map(|(_, c)| *c).collect();
    let combined = Trace::in_replicas("the same minutes", &traces, &per_replica);
    let in_replicas = Model {
        target_per_replica: 1.0,
        ..*model
    };
    score_minutes(&combined, from, &in_replicas, decision)
}

/// The backtest's trace of `metric` for the minutes `[from, through)` and the live HPA's
/// warm-up before them: the load of each minute is the metric's sample a minute later.
fn trace_of(
    metric: &BTreeMap<DateTime<Utc>, f64>,
    from: DateTime<Utc>,
    through: DateTime<Utc>,
) -> Trace {
    let lag = ledger::METRIC_LAG;
    let start = from - ledger::WARM_UP - lag;
    let minutes = ((through - start).num_minutes()) as usize;
    let sample = |t: DateTime<Utc>| metric.get(&t).copied().unwrap_or(f64::NAN);
    let demand: Vec<f64> = (0..minutes)
        .map(|i| sample(start + MINUTE * i as i32 + lag))
        .collect();
    Trace {
        name: "the same minutes".into(),
        start,
        observed: demand.iter().map(|d| d.is_finite()).collect(),
        demand,
        native_step: MINUTE,
    }
}

/// The backtest's HPA at 80 %, prescaler's decisions and the oracle's need on `trace`, scored
/// from `from`.
fn score_minutes(
    trace: &Trace,
    from: DateTime<Utc>,
    model: &Model,
    decision: impl Fn(DateTime<Utc>) -> u32,
) -> Tally {
    let (start, minutes) = (trace.start, trace.minutes());
    let hpa_model = HpaModel::new(
        trace,
        ledger::METRIC_LAG.num_minutes() as usize,
        model.target_per_replica,
        model.min_replicas,
        model.max_replicas,
    );
    let theirs = hpa(&hpa_model, 0.8).desired;
    // Before the first decision the fleet stood at its size, as the live account takes it.
    let ours: Vec<u32> = (0..minutes)
        .map(|i| decision((start + MINUTE * i as i32).max(from)))
        .collect();
    let needed = score::needed(
        trace,
        model.target_per_replica,
        model.min_replicas,
        model.max_replicas,
    );
    let first = (from - start).num_minutes() as usize;
    let scored: Vec<bool> = (0..minutes)
        .map(|i| i >= first && trace.observed[i])
        .collect();
    let delay = model.startup.num_minutes() as usize;
    let cost = |desired: &[u32]| {
        let s = score::score("s", desired, &needed, &scored, delay, None);
        Cost {
            replica_minutes: (s.cost * 60.0).round() as u64,
            short_minutes: s.violation_minutes as u64,
        }
    };
    Tally {
        minutes: scored.iter().filter(|s| **s).count() as u64,
        prescaler: cost(&ours),
        hpa: cost(&theirs),
    }
}

const MODEL: Model = Model {
    target_per_replica: 10.0,
    min_replicas: 2,
    max_replicas: 60,
    startup: Duration::minutes(5),
};

#[test]
fn the_live_account_matches_a_backtest_of_the_same_minutes() {
    // Two days of a bursty load with gaps (a lost scrape, an outage of 40 minutes), and a
    // prescaler that is sometimes ahead of it and sometimes behind.
    let start = DateTime::parse_from_rfc3339("2026-02-16T20:00:00Z")
        .unwrap()
        .to_utc();
    let mut rng = SplitMix64(7);
    let mut metric = BTreeMap::new();
    let mut level: f64 = 150.0;
    for m in 0..2 * 1440 {
        let t = start + MINUTE * m;
        level = (level * (1.0 + 0.08 * rng.normal())).clamp(20.0, 500.0);
        let burst = if m % 300 > 280 { 250.0 } else { 0.0 };
        let gap = m % 97 == 5 || (1500..1540).contains(&m);
        if !gap {
            metric.insert(t, (level + burst) as f32 as f64);
        }
    }
    let decision_at = |t: DateTime<Utc>| -> u32 {
        let m = (t - start).num_minutes();
        let ahead = metric.get(&(t + MINUTE * 3)).copied().unwrap_or(level);
        let factor = if m % 200 < 30 { 0.7 } else { 1.15 };
        ((ahead * factor / 10.0).ceil() as u32).clamp(2, 60)
    };
    // The operator: a decision and an account at every sync (two a minute), each on the history
    // read up to then, as its cache holds it (f32, one-minute steps).
    let first = start + Duration::hours(2);
    let last = start + Duration::days(2) - Duration::minutes(1);
    let mut live = Ledger::new(80);
    let mut added = Tally::default();
    let mut now = first;
    while now <= last {
        let read: Vec<f64> = (0..=(now - start).num_minutes())
            .map(|m| {
                metric
                    .get(&(start + MINUTE * m as i32))
                    .copied()
                    .unwrap_or(f64::NAN)
            })
            .collect();
        let history = History::new(start, MINUTE, read);
        live.decided(now, decision_at(now.duration_trunc(MINUTE).unwrap()));
        let tally = live.account(&history, &MODEL, now);
        added.add(tally);
        now += Duration::seconds(30);
    }
    let status = live.status(&MODEL).unwrap();
    let through = DateTime::parse_from_rfc3339(&status.through)
        .unwrap()
        .to_utc();
    assert_eq!(
        status.from,
        first.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    let replayed = backtest(&metric, first, through, &MODEL, decision_at);
    assert_eq!(live.total(), replayed, "the days in status");
    assert_eq!(added, replayed, "the counters");
    // The minutes hold what makes the comparison worth making: both strategies short at times.
    assert!(replayed.prescaler.short_minutes > 20, "{replayed:?}");
    assert!(replayed.hpa.short_minutes > 20, "{replayed:?}");
    assert!(replayed.minutes > 2000, "{replayed:?}");
    // And the summary says what the backtest's figures say, rounded.
    assert_eq!(
        status.summary,
        ledger::summary(&replayed, through - first, 80, MODEL.startup)
    );
}

/// `the_live_account_matches_a_backtest_of_the_same_minutes` with two metrics: requests (50 a
/// replica) and a queue (10 a replica) that take turns needing the most, each with gaps of its
/// own. The live account (`Ledger::account_metrics`, the HPA on both metrics) is what the
/// backtest scores for a CSV of their two columns.
#[test]
fn on_two_metrics_the_live_account_matches_a_backtest_of_the_same_minutes() {
    let start = DateTime::parse_from_rfc3339("2026-02-16T20:00:00Z")
        .unwrap()
        .to_utc();
    let mut rng = SplitMix64(22);
    let (mut requests, mut queue) = (BTreeMap::new(), BTreeMap::new());
    let (mut r, mut q): (f64, f64) = (800.0, 60.0);
    for m in 0..2 * 1440 {
        let t = start + MINUTE * m;
        r = (r * (1.0 + 0.06 * rng.normal())).clamp(100.0, 2500.0);
        q = (q * (1.0 + 0.1 * rng.normal())).clamp(5.0, 400.0);
        // The queue backs up for 20 minutes every 5 hours, and each metric loses its own
        // scrapes (and the queue an outage of 40 minutes).
        let backlog = if m % 300 > 280 { 250.0 } else { 0.0 };
        if m % 97 != 5 {
            requests.insert(t, r as f32 as f64);
        }
        if m % 89 != 7 && !(1500..1540).contains(&m) {
            queue.insert(t, (q + backlog) as f32 as f64);
        }
    }
    let need = |t: DateTime<Utc>| -> Option<f64> {
        Some(f64::max(requests.get(&t)? / 50.0, queue.get(&t)? / 10.0))
    };
    let decision_at = |t: DateTime<Utc>| -> u32 {
        let m = (t - start).num_minutes();
        let ahead = need(t + MINUTE * 3).unwrap_or(10.0);
        let factor = if m % 200 < 30 { 0.7 } else { 1.15 };
        ((ahead * factor).ceil() as u32).clamp(2, 60)
    };
    let first = start + Duration::hours(2);
    let last = start + Duration::days(2) - Duration::minutes(1);
    let mut live = Ledger::new(80);
    let mut added = Tally::default();
    let mut now = first;
    let read = |metric: &BTreeMap<DateTime<Utc>, f64>, now: DateTime<Utc>| {
        let values = (0..=(now - start).num_minutes())
            .map(|m| {
                let t = start + MINUTE * m as i32;
                metric.get(&t).copied().unwrap_or(f64::NAN)
            })
            .collect();
        History::new(start, MINUTE, values)
    };
    while now <= last {
        let (r, q) = (read(&requests, now), read(&queue, now));
        live.decided(now, decision_at(now.duration_trunc(MINUTE).unwrap()));
        let tally = live.account_metrics(&[(&r, 50.0), (&q, 10.0)], &MODEL, now);
        added.add(tally);
        now += Duration::seconds(30);
    }
    let status = live.status(&MODEL).unwrap();
    let through = DateTime::parse_from_rfc3339(&status.through)
        .unwrap()
        .to_utc();
    let replayed = backtest_of_metrics(
        &[(&requests, 50.0), (&queue, 10.0)],
        first,
        through,
        &MODEL,
        decision_at,
    );
    assert_eq!(live.total(), replayed, "the days in status");
    assert_eq!(added, replayed, "the counters");
    assert!(replayed.prescaler.short_minutes > 20, "{replayed:?}");
    assert!(replayed.hpa.short_minutes > 20, "{replayed:?}");
    assert!(replayed.minutes > 2000, "{replayed:?}");
    // Each metric needs the most in many minutes: an HPA on either alone would count others.
    let by_queue = (0..2 * 1440)
        .filter_map(|m| {
            let t = start + MINUTE * m;
            Some(queue.get(&t)? / 10.0 > requests.get(&t)? / 50.0)
        })
        .fold((0, 0), |(q, r), queue_most| match queue_most {
            true => (q + 1, r),
            false => (q, r + 1),
        });
    assert!(by_queue.0 > 300 && by_queue.1 > 300, "{by_queue:?}");
    for (alone, per_replica) in [(&requests, 50.0), (&queue, 10.0)] {
        let one = Model {
            target_per_replica: per_replica,
            ..MODEL
        };
        let on_one = backtest(alone, first, through, &one, decision_at);
        assert_ne!(on_one.hpa, replayed.hpa, "an HPA on one metric differs");
    }
    assert_eq!(
        status.summary,
        ledger::summary_on(&replayed, through - first, 80, MODEL.startup, 2)
    );
}

/// The floor of a peak window that is always open: prescaler asks for 20 whatever the load.
/// Above what the load's step asks for with the largest margins a calibration may choose
/// (350 at 50 a replica, doubled, and 2 replicas more: 16): a calibration that came within the
/// test (its boundary, or the first day of history) took a floor of 12 to 16.
const FLOOR: u32 = 20;
const SERVICE: &str = "proof";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_publishes_its_account_against_an_hpa_as_a_backtest_scores_it() {
    let now = Utc::now().duration_trunc(MINUTE).unwrap();
    let prom = TestPrometheus::start(&[(
        SERVICE,
        samples(
            now - Duration::days(1),
            now - Duration::minutes(2),
            MINUTE,
            |_| 100.0,
        ),
    )]);
    prom.set_live(SERVICE, Some(100.0));
    prom.wait_for_live(SERVICE, 100.0);
    let api = FakeApi::new();
    api.put(deployment("proof", 2));
    api.put(scaler(
        "proof",
        SERVICE,
        json!({ "peakWindows": [{ "name": "always", "schedule": "* * * * *", "duration": "1h",
                                   "minReplicas": FLOOR }] }),
    ));
    let op = start_operator(&api, &prom.url());
    eventually(90, "the floor is applied", || {
        match replicas(&api, "proof") {
            r if r == i64::from(FLOOR) => Ok(()),
            r => Err(format!("{r} replicas")),
        }
    })
    .await;
    // The load steps from 100 to 350 (2 → 7 replicas needed): prescaler's floor carries it, the
    // HPA at 80 % (3 replicas on 100) sees it and waits 5 minutes for its pods.
    prom.set_live(SERVICE, Some(350.0));
    let mut seen = serde_json::Value::Null;
    eventually(420, "minutes counted, the HPA's step among them", || {
        assert_eq!(
            replicas(&api, "proof"),
            i64::from(FLOOR),
            "prescaler's decision stays"
        );
        seen = status(&api, "proof");
        let days = &seen["savings"]["days"];
        let sum = |key: &str| {
            days.as_array()
                .map_or(0, |d| d.iter().map(|d| d[key].as_i64().unwrap_or(0)).sum())
        };
        match (sum("minutes"), sum("hpaShortMinutes")) {
            (m, s) if m >= 3 && s >= 2 => Ok(()),
            other => Err(format!("{other:?}: {seen}")),
        }
    })
    .await;
    assert_eq!(seen["desiredReplicas"], FLOOR, "{seen}");
    let savings = &seen["savings"];
    let time = |key: &str| {
        DateTime::parse_from_rfc3339(savings[key].as_str().unwrap())
            .unwrap()
            .to_utc()
    };
    let (from, through) = (time("from"), time("through"));
    // Summed over the days (a test that runs across midnight UTC has two).
    let published = published_tally(savings);

    // The same minutes, read back from Prometheus, through the backtest's model.
    let mut cfg = PrometheusConfig::new(prom.url());
    cfg.timeout = PROMETHEUS_TIMEOUT;
    let query = format!("sum({METRIC}{{service=\"{SERVICE}\"}})");
    let read = Prometheus::new(&cfg)
        .unwrap()
        .range(&query, from - Duration::hours(2), through + MINUTE, MINUTE)
        .await
        .unwrap();
    let metric: BTreeMap<_, _> = read
        .into_iter()
        .map(|(t, v)| (t, v as f32 as f64))
        .collect();
    let model = Model {
        target_per_replica: PER_REPLICA,
        min_replicas: 2,
        max_replicas: 40,
        startup: ledger::DEFAULT_STARTUP,
    };
    let replayed = backtest(&metric, from, through, &model, |_| FLOOR);
    assert_eq!(published, replayed, "{seen}");
    assert_eq!(replayed.prescaler.short_minutes, 0);
    assert_eq!(
        savings["summary"],
        ledger::summary(&replayed, through - from, 80, ledger::DEFAULT_STARTUP),
    );
    assert!(
        savings["summary"]
            .as_str()
            .unwrap()
            .contains("A model estimate"),
        "{savings}"
    );

    // The counters: the minutes counted by the last reconcile, which the status may not carry
    // yet (it is written for its rounded summary, not for every minute). Read once the operator
    // has stopped, so that no reconcile counts between two of them.
    let mut op = op;
    op.task.abort();
    let _ = (&mut op.task).await;
    let text = op.metrics.encode();
    let counter = |name: &str, strategy: Option<&str>| -> f64 {
        let labels = match strategy {
            Some(s) => format!("{{namespace=\"{NS}\",name=\"proof\",strategy=\"{s}\"}}"),
            None => format!("{{namespace=\"{NS}\",name=\"proof\"}}"),
        };
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}{labels} ")))
            .unwrap_or_else(|| panic!("no {name}{labels} in\n{text}"))
            .parse()
            .unwrap()
    };
    let minutes = counter("prescaler_savings_minutes_total", None) as i32;
    let counted = backtest(&metric, from, from + MINUTE * minutes, &model, |_| FLOOR);
    assert_eq!(
        counter("prescaler_replica_seconds_total", Some("prescaler")),
        counted.prescaler.replica_minutes as f64 * 60.0
    );
    assert_eq!(
        counter("prescaler_replica_seconds_total", Some("hpa")),
        counted.hpa.replica_minutes as f64 * 60.0
    );
    assert_eq!(
        counter("prescaler_underprovisioned_minutes_total", Some("hpa")),
        counted.hpa.short_minutes as f64
    );
    assert_eq!(
        counter(
            "prescaler_underprovisioned_minutes_total",
            Some("prescaler")
        ),
        0.0
    );
}

/// `status.savings` as the counters it publishes, summed over its days.
pub(crate) fn published_tally(savings: &serde_json::Value) -> Tally {
    let figure = |key: &str| -> u64 {
        savings["days"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d[key].as_i64().unwrap() as u64)
            .sum()
    };
    Tally {
        minutes: figure("minutes"),
        prescaler: Cost {
            replica_minutes: figure("replicaMinutes"),
            short_minutes: figure("shortMinutes"),
        },
        hpa: Cost {
            replica_minutes: figure("hpaReplicaMinutes"),
            short_minutes: figure("hpaShortMinutes"),
        },
    }
}
