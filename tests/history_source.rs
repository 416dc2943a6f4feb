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

use crate::support;

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{Duration, DurationRound, Utc};
use prescaler::adapters::history::LoadSource;
use prescaler::adapters::long_term::Tiered;
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
}
