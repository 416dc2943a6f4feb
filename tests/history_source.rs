//! A long-term history source, through the operator: the real controller against the fake
//! Kubernetes API and two real Prometheus servers — a "live" one that keeps three days (as a
//! Prometheus with a short retention does) and scrapes the live load, and a "long-term" one (as
//! Thanos or Mimir would be) holding sixteen days but nothing live.
//!
//! With the long-term source set, the scaler's 14 days of history are whole
//! (`HistoryAvailable=True`) and the weekly forecast, which needs more than a week, is
//! calibrated; without it the history is the live Prometheus' three days, said as
//! `HistoryAvailable=False ShortRetention` ("3 of 14 days"), once as an Event, and no weekly
//! forecast can be made. Queries are confined to the scaler's namespace on both sources: the
//! long-term store also holds a longer series of another namespace, which must not be read.
//!
//! `prescaler backtest` and `kubectl prescaler plan|backtest` read the same two sources, and
//! print the operator's words when the history comes back short (Prometheus' retention, or a
//! store that failed, named).

use crate::support;

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{Duration, DurationRound, Utc};
use prescaler::adapters::history::LoadSource;
use prescaler::adapters::long_term::{self, Tiered};
use prescaler::adapters::prometheus::{Prometheus, PrometheusConfig};
use prescaler::planning::calibration::Basis;
use serde_json::json;
use support::fake_api::FakeApi;
use support::harness::*;
use support::prometheus::{TestPrometheus, samples};

const LOAD: f64 = 1000.0;
const OWN: &str = "service=\"web\",namespace=\"shop\"";
/// A second service whose own series the long-term store holds for 10 days only ...
const API: &str = "service=\"api\",namespace=\"shop\"";
/// ... and another tenant's series of that service, for 16 days, in the long-term store only:
/// read unconfined, it would make that history look whole.
const OTHERS: &str = "service=\"api\",namespace=\"other\"";

fn source(url: &str) -> Arc<dyn LoadSource> {
    let mut cfg = PrometheusConfig::new(url);
    cfg.timeout = PROMETHEUS_TIMEOUT;
    Arc::new(Prometheus::new(&cfg).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_term_source_makes_the_history_whole_and_a_short_one_is_said() {
    let now = Utc::now().duration_trunc(Duration::minutes(1)).unwrap();
    let to = now - Duration::minutes(2);
    let steady = |from| samples(from, to, Duration::minutes(1), |_| LOAD);
    let live = TestPrometheus::start(&[
        (OWN, steady(now - Duration::days(3))),
        (API, steady(now - Duration::days(3))),
    ]);
    for series in [OWN, API] {
        live.set_live(series, Some(LOAD));
        live.wait_for_live(series, LOAD);
    }
    let long_term = TestPrometheus::start(&[
        (OWN, steady(now - Duration::days(16))),
        (API, steady(now - Duration::days(10))),
        (OTHERS, steady(now - Duration::days(16))),
    ]);

    // The same scaler twice, one operator each: with the long-term source, and without.
    let spec = json!({
        "maxReplicas": 100,
        "forecast": { "history": "14d", "seasonality": ["daily", "weekly"] },
    });
    let (with, without) = (FakeApi::new(), FakeApi::new());
    for api in [&with, &without] {
        api.put(deployment("web", 20));
        api.put(scaler("web", "web", spec.clone()));
    }
    with.put(deployment("api", 20));
    with.put(scaler("api", "api", spec.clone()));
    let settings = |long_term: bool| {
        move |s: &mut prescaler::operator::controller::Settings| {
            // Only the weekly forecast: whether it can be calibrated tells whether the weeks
            // were read.
            s.model.bases = &[Basis::Weekly];
            s.namespace_label = Some("namespace".into());
            s.long_term_history = long_term;
        }
    };
    let tiered: Arc<dyn LoadSource> =
        Arc::new(Tiered::new(source(&live.url()), source(&long_term.url())));
    let _a = start_operator_on(&with, tiered, settings(true));
    let _b = start_operator_on(&without, source(&live.url()), settings(false));
    // A third, whose long-term store is down: as the operator's own `long_term::source` builds it.
    let down = FakeApi::new();
    down.put(deployment("web", 20));
    down.put(scaler("web", "web", spec.clone()));
    let config = |url: &str| {
        let mut c = PrometheusConfig::new(url);
        c.timeout = PROMETHEUS_TIMEOUT;
        c
    };
    let gone = config("http://127.0.0.1:1/thanos");
    let broken = long_term::source(&config(&live.url()), Some(&gone)).unwrap();
    let _c = start_operator_on(&down, broken, settings(true));

    eventually(
        60,
        "the history read from the long-term source is whole",
        || {
            expect_condition(&with, "web", "HistoryAvailable", "True", "HistoryComplete")?;
            let s = status(&with, "web");
            match s["calibration"]["basis"].as_str() {
                Some("weekly forecast") => Ok(()),
                _ => Err(format!("no weekly calibration yet: {s}")),
            }
        },
    )
    .await;
    let s = status(&with, "web");
    let (_, _, message) = condition(&with, "web", "HistoryAvailable").unwrap();
    assert!(message.starts_with("all 14 days of history"), "{message}");
    let forecast = s["forecastLoad"].as_f64().unwrap();
    assert!((LOAD * 0.9..LOAD * 1.5).contains(&forecast), "{s}");
    assert_eq!(s["desiredReplicas"], 20, "{s}");
    // The long-term store's reads are confined to the namespace as Prometheus' are: the other
    // tenant's 16 days of `api` do not count, its own 10 do.
    eventually(30, "the long-term store's 10 days of api are said", || {
        expect_condition(&with, "api", "HistoryAvailable", "False", "ShortRetention")
    })
    .await;
    let (_, _, message) = condition(&with, "api", "HistoryAvailable").unwrap();
    assert!(
        message.starts_with("10 of 14 days of history: the weekly profile rests on 1 week;"),
        "{message}"
    );
    assert!(message.contains("the long-term source"), "{message}");

    eventually(
        30,
        "the live Prometheus' three days are said to be short",
        || {
            expect_condition(
                &without,
                "web",
                "HistoryAvailable",
                "False",
                "ShortRetention",
            )
        },
    )
    .await;
    let (_, _, message) = condition(&without, "web", "HistoryAvailable").unwrap();
    assert!(
        message.starts_with(
            "3 of 14 days of history: no whole week for the weekly profile, the daily profile rests on 3 days;"
        ),
        "{message}"
    );
    assert!(message.contains("--history-prometheus-url"), "{message}");
    // A few more reconciles (one a second) tell it no more: one Event, a Warning.
    tokio::time::sleep(StdDuration::from_secs(4)).await;
    let told: Vec<_> = events(&without, "web")
        .into_iter()
        .filter(|(_, reason, _)| reason == "ShortRetention")
        .collect();
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0].0, "Warning", "{told:?}");
    assert!(told[0].2.contains("3 of 14 days"), "{told:?}");
    // Without the weeks there is no weekly forecast to calibrate.
    let s = status(&without, "web");
    assert!(s["calibration"].is_null(), "{s}");
    expect_condition(
        &without,
        "web",
        "ForecastReliable",
        "False",
        "InsufficientHistory",
    )
    .unwrap();
    assert!(
        events(&with, "web")
            .iter()
            .all(|(_, reason, _)| reason != "ShortRetention"),
        "{:?}",
        events(&with, "web")
    );

    // The store that is down: the scaler reads on from Prometheus (its live load is there), and
    // its short history is blamed on the store, named by its URL, not on a retention.
    eventually(30, "the store's failure is said", || {
        expect_condition(
            &down,
            "web",
            "HistoryAvailable",
            "False",
            "LongTermStoreFailed",
        )
    })
    .await;
    expect_condition(&down, "web", "MetricsAvailable", "True", "QuerySucceeded").unwrap();
    let (_, _, message) = condition(&down, "web", "HistoryAvailable").unwrap();
    let store = "the long-term store at http://127.0.0.1:1/thanos could not be reached";
    assert!(
        message.starts_with("3 of 14 days of history:")
            && message.contains("read from Prometheus alone")
            && message.contains(store)
            && !message.contains("retention"),
        "{message}"
    );
    let told: Vec<_> = events(&down, "web")
        .into_iter()
        .filter(|(_, reason, _)| reason == "LongTermStoreFailed")
        .collect();
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(
        told[0].0 == "Warning" && told[0].2.contains(store),
        "{told:?}"
    );
}

/// Runs `prescaler backtest` with `args` (PROMETHEUS_URL and the like unset); its exit code,
/// standard output and standard error.
async fn prescaler_backtest(args: Vec<String>) -> (Option<i32>, String, String) {
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_prescaler"))
            .arg("backtest")
            .args(&args)
            .env_remove("PROMETHEUS_URL")
            .env_remove("HISTORY_PROMETHEUS_URL")
            .env_remove("KUBECONFIG")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The minutes a backtest's table says its trace holds ("query …: 20161 minutes, scored …").
fn trace_minutes(stdout: &str) -> i64 {
    let (head, _) = stdout.split_once(" minutes, scored").expect(stdout);
    head.rsplit(' ').next().unwrap().parse().expect(stdout)
}

/// `prescaler backtest` and `kubectl prescaler plan|backtest` read the long-term store as the
/// operator does: with it, two weeks are replayed where the live Prometheus keeps three days;
/// without it, the operator's `HistoryAvailable` words are printed ("3 of 14 days", with how to
/// get more); with a store that is down, the replay is made from Prometheus alone and the note
/// names the store that failed, not a retention.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backtest_and_the_plugin_read_the_long_term_store_too() {
    let now = Utc::now().duration_trunc(Duration::minutes(1)).unwrap();
    let to = now - Duration::minutes(2);
    let steady = |from| samples(from, to, Duration::minutes(1), |_| LOAD);
    let live = TestPrometheus::start(&[(OWN, steady(now - Duration::days(3)))]);
    live.set_live(OWN, Some(LOAD));
    live.wait_for_live(OWN, LOAD);
    let long_term = TestPrometheus::start(&[(OWN, steady(now - Duration::days(16)))]);
    let manifest = scaler(
        "web",
        "web",
        json!({
            "maxReplicas": 100,
            "forecast": { "history": "14d", "seasonality": ["daily", "weekly"] },
        }),
    );

    // The command line, on a manifest file: the scored day follows the history read.
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("web.yaml");
    std::fs::write(&spec, manifest.to_string()).unwrap();
    let eval_start = (now - Duration::days(1)).to_rfc3339();
    let args = |extra: &[&str]| {
        let mut a: Vec<String> = ["--prometheus-url", &live.url(), "--range", "14d"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.extend(["--spec".into(), spec.display().to_string()]);
        a.extend(["--eval-start".into(), eval_start.clone()]);
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let (code, out, err) =
        prescaler_backtest(args(&["--history-prometheus-url", &long_term.url()])).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(trace_minutes(&out) >= 14 * 1440 - 5, "{out}");
    assert!(!err.contains("of history"), "the history is whole: {err}");

    let (code, out, err) = prescaler_backtest(args(&[])).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(trace_minutes(&out) <= 3 * 1440 + 5, "{out}");
    assert!(
        err.contains(
            "note: 3 of 14 days of history: no whole week for the weekly profile, the daily profile rests on 3 days;"
        ) && err.contains("set a long-term source (--history-prometheus-url)")
            && err.contains("(the operator's HistoryAvailable=False ShortRetention)"),
        "{err}"
    );

    let (code, out, err) = prescaler_backtest(args(&[
        "--history-prometheus-url",
        "http://127.0.0.1:1/thanos",
    ]))
    .await;
    assert_eq!(code, Some(0), "Prometheus alone: {err}");
    assert!(trace_minutes(&out) <= 3 * 1440 + 5, "{out}");
    assert!(
        err.contains("note: 3 of 14 days of history")
            && err
                .contains("the long-term store at http://127.0.0.1:1/thanos could not be reached")
            && err.contains("HistoryAvailable=False LongTermStoreFailed")
            && !err.contains("retention"),
        "{err}"
    );

    // The plugin, in-process against the fake API: the same reads, the same notes.
    let api = FakeApi::new();
    api.put(deployment("web", 20));
    api.put(manifest);
    let client = api.client();
    let tiered: Arc<dyn LoadSource> =
        Arc::new(Tiered::new(source(&live.url()), source(&long_term.url())));
    let alone = source(&live.url());
    let range = Duration::days(14);
    let r = prescaler::plugin::backtest(&client, &*tiered, NS, "web", range, now)
        .await
        .unwrap();
    assert!(r.trace.minutes() >= 14 * 1440 - 5, "{}", r.trace.minutes());
    assert!(
        r.notes.iter().all(|n| !n.contains("of history")),
        "{:?}",
        r.notes
    );
    // Three days cannot be scored as the last week of fourteen: the error says why.
    let e = prescaler::plugin::backtest(&client, &*alone, NS, "web", range, now)
        .await
        .err()
        .expect("nothing to score")
        .to_string();
    assert!(
        e.contains("nothing to score") && e.contains("3 of 14 days of history"),
        "{e}"
    );

    let plan = prescaler::plugin::plan(&client, &*tiered, NS, "web", now)
        .await
        .unwrap();
    assert!(
        plan.notes.iter().all(|n| !n.contains("of history")),
        "{:?}",
        plan.notes
    );
    let plan = prescaler::plugin::plan(&client, &*alone, NS, "web", now)
        .await
        .unwrap();
    assert!(
        plan.notes.iter().any(|n| n
            .starts_with("3 of 14 days of history: no whole week for the weekly profile")
            && n.contains("ShortRetention")),
        "{:?}",
        plan.notes
    );
}
