//! One tenant's expensive spec costs that tenant, not everyone: five hundred scalers with hostile
//! calendars (every-minute windows checked against each other, schedules that come once in
//! years) beside ordinary scalers, through the operator against the fake API and a real
//! Prometheus, with leader election on. The Lease is renewed on time all along, an ordinary
//! scaler's peak window is served on schedule, and a hostile scaler's reconcile costs what an
//! ordinary one's does. A row of `docs/reliability.md`.

use crate::support;

use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use chrono::{Duration, DurationRound, Timelike, Utc};
use http::Method;
use prescaler::adapters::prometheus::{Prometheus, PrometheusConfig};
use prescaler::operator::controller::Settings;
use prescaler::operator::leader::{Leadership, LeaseSettings};
use prescaler::operator::telemetry::{Health, Metrics};
use prescaler::operator::{self, Caches};
use serde_json::{Value, json};
use support::fake_api::FakeApi;
use support::harness::*;
use support::prometheus::TestPrometheus;

const HOSTILE: usize = 500;
/// Ordinary scalers (no calendar) created among the hostile ones, so that both are reconciled
/// at the same time, under the same load: reconcile times are wall-clock times, and a scaler
/// served in the first burst waits on Prometheus and the CPU with all the others.
const ORDINARY: usize = 50;

/// Every-minute floors at 10:xx against every-minute ceilings at 03:xx (no contradiction, so
/// validation checks them all), or 32 floors that open on the fifth Monday of February.
fn hostile_calendar(i: usize) -> Value {
    let window = |name: String, schedule: &str, bound: &str, n: u32| json!({ "name": name, "schedule": schedule, "duration": "1m", bound: n });
    let windows: Vec<Value> = if i.is_multiple_of(2) {
        (0..16)
            .map(|k| window(format!("f{k}"), "* 10 * * *", "minReplicas", 3))
            .chain((0..16).map(|k| window(format!("c{k}"), "* 3 * * *", "maxReplicas", 2)))
            .collect()
    } else {
        (0..32)
            .map(|k| window(format!("r{k}"), "0 0 * 2 1#5", "minReplicas", 3 + k as u32))
            .collect()
    };
    json!({ "peakWindows": windows })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_hostile_calendars_delay_neither_the_lease_nor_a_bystander() {
    let prom = TestPrometheus::steady("steady", 60.0, Duration::days(2));
    let api = FakeApi::new();
    for i in 0..HOSTILE {
        let name = format!("hostile-{i}");
        api.put(deployment(&name, 2));
        api.put(scaler(&name, "steady", hostile_calendar(i)));
        if i % (HOSTILE / ORDINARY) == 0 {
            let name = format!("ordinary-{}", i / (HOSTILE / ORDINARY));
            api.put(deployment(&name, 2));
            api.put(scaler(&name, "steady", json!({})));
        }
    }
    // The bystander's peak window opens at the first whole minute that leaves the hostile
    // scalers at least 40 s to start up before its floor is asked for (one lead time, a minute,
    // before the opening): counted from here, after Prometheus' start and the 1,000 objects,
    // which take seconds under load (counted from the test's start, a start late in a minute
    // had the floor due at once, before half the hostile scalers could be served).
    let opens = (Utc::now() + Duration::seconds(40) + Duration::minutes(1))
        .duration_trunc(Duration::minutes(1))
        .unwrap()
        + Duration::minutes(1);
    api.put(deployment("bystander", 2));
    api.put(scaler(
        "bystander",
        "steady",
        json!({
            "forecast": { "leadTime": "1m" },
            "peakWindows": [{ "name": "campaign", "duration": "1h", "minReplicas": 9,
                              "schedule": format!("{} {} * * *", opens.minute(), opens.hour()) }],
        }),
    ));

    // Leader election with client-go's durations; the renewals run as in `prescaler run`.
    let settings = LeaseSettings::new("prescaler".into(), "ops".into(), "leader".into());
    let (retry, renew_deadline) = (settings.retry, settings.renew_deadline);
    let lease = Arc::new(Leadership::new(api.client(), settings));
    lease.acquire().await;
    let holding = tokio::spawn({
        let lease = lease.clone();
        async move { lease.hold().await }
    });
    let mut config = PrometheusConfig::new(prom.url());
    config.timeout = StdDuration::from_secs(5);
    let metrics = Arc::new(Metrics::default());
    let controller = tokio::spawn(operator::run_controller(
        api.client(),
        Arc::new(Prometheus::new(&config).unwrap()),
        metrics.clone(),
        Arc::new(Health::default()),
        Settings {
            sync_period: StdDuration::from_secs(10),
            ..Settings::default()
        },
        Some(lease.clone()),
        Caches::new(),
    ));
    let started = Instant::now();

    // The bystander is at its floor by the time the window opens (a sync period of slack).
    let deadline = (opens - Utc::now()).to_std().unwrap_or_default() + StdDuration::from_secs(10);
    eventually(
        deadline.as_secs(),
        "the bystander's floor on time",
        || match replicas(&api, "bystander") {
            9 => Ok(()),
            r => Err(format!("{r} replicas at {}", Utc::now())),
        },
    )
    .await;
    let reconciled = (0..HOSTILE)
        .filter(|i| status(&api, &format!("hostile-{i}"))["observedGeneration"].is_number())
        .count();

    // Every Lease renewal on time: never a gap near the renew deadline.
    let renewals: Vec<Instant> = api
        .requests()
        .into_iter()
        .filter(|r| r.method == Method::PUT && r.path.ends_with("/leases/prescaler"))
        .map(|r| r.at)
        .collect();
    let longest = renewals
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    let per_scaler = |name: &str| {
        metrics
            .encode()
            .lines()
            .find(|l| {
                l.starts_with("prescaler_scaler_reconcile_seconds_total")
                    && l.contains(&format!("name=\"{name}\""))
            })
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    eprintln!(
        "{} s: {reconciled} of {HOSTILE} hostile scalers reconciled, {} renewals, longest gap {longest:?}; reconcile time: hostile-0 {:.3} s, hostile-1 {:.3} s, ordinary-0 {:.3} s, bystander {:.3} s",
        started.elapsed().as_secs(),
        renewals.len(),
        per_scaler("hostile-0"),
        per_scaler("hostile-1"),
        per_scaler("ordinary-0"),
        per_scaler("bystander"),
    );
    assert!(lease.may_write(), "the leader kept its Lease");
    assert!(!holding.is_finished(), "renewals never stopped");
    assert!(
        longest < retry + renew_deadline / 2,
        "longest gap between renewals {longest:?} (retry {retry:?}, renew deadline {renew_deadline:?})"
    );
    assert!(
        reconciled > HOSTILE / 2,
        "the hostile scalers are served too: {reconciled}"
    );
    // What a hostile spec costs in all its reconciles is what an ordinary one costs (validation
    // once per generation, each window's openings remembered), not a multiple of it.
    let mean = |prefix: &str, n: usize| {
        (0..n)
            .map(|i| per_scaler(&format!("{prefix}-{i}")))
            .sum::<f64>()
            / n as f64
    };
    let (hostile_mean, ordinary_mean) = (mean("hostile", HOSTILE), mean("ordinary", ORDINARY));
    assert!(
        hostile_mean < 2.0 * ordinary_mean + 0.05,
        "a hostile scaler costs {hostile_mean:.3} s, an ordinary one {ordinary_mean:.3} s"
    );
    controller.abort();
    holding.abort();
}
