//! One decision path: the operator's way of deciding (a history cache refreshed from a source
//! every reconcile, twice a minute at arbitrary seconds, with a restart in the middle) and
//! `prescaler backtest` give the same desired replicas every minute of a trace (the operator's
//! calibrations at the scaler's own minutes, from a record forecast again at each boundary; the
//! backtest's at the same minutes, from a record kept).

use std::cell::Cell;
use std::future::ready;
use std::path::PathBuf;

use crate::support::scripted::grid;
use chrono::{DateTime, Duration, Utc};
use prescaler::adapters::history::{Deeper, HistoryCache, RangeSource};
use prescaler::backtest::trace::Trace;
use prescaler::backtest::{self, Setup, manifest};
use prescaler::placement;
use prescaler::planning::calibration::Record;
use prescaler::planning::forecast::ModelConfig;
use prescaler::planning::planner::Planner;

/// The trace as a Prometheus would serve it: the value at minute `m` is the load of minute
/// `m - lag`, nothing after `now`, nothing inside the trace's gaps.
struct TraceSource {
    start: DateTime<Utc>,
    values: Vec<f64>,
    now: Cell<DateTime<Utc>>,
}

impl TraceSource {
    fn at(&self, t: DateTime<Utc>) -> Option<f64> {
        if t > self.now.get() {
            return None;
        }
        let m = usize::try_from((t - self.start).num_minutes()).ok()?;
        self.values.get(m).copied().filter(|v| v.is_finite())
    }
}

impl RangeSource for TraceSource {
    fn range(
        &self,
        _query: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step: Duration,
    ) -> impl Future<Output = prescaler::adapters::Result<Vec<(DateTime<Utc>, f64)>>> + Send {
        let samples = grid(start, end, step)
            .into_iter()
            .filter_map(|t| self.at(t).map(|v| (t, v)))
            .collect();
        ready(Ok(samples))
    }
}

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

#[test]
fn the_operators_path_and_the_backtest_decide_alike() {
    // Eight days of history keep the test quick; the weekly profile still has a period.
    decide_alike("8d");
}

#[test]
fn the_operator_holds_only_what_its_forecasts_read_and_decides_alike() {
    // Four weeks, the default, of a three-week trace: from its third week the operator holds
    // (and reads again to calibrate) only as far back as a forecast reads, two weeks and a
    // little; the backtest reads the trace from its start.
    decide_alike("28d");
}

fn decide_alike(history: &str) {
    let trace = Trace::load(&repo("examples/demo-trace.csv")).unwrap();
    let text = std::fs::read_to_string(repo("examples/checkout.yaml")).unwrap();
    let mut scaler = manifest::parse("checkout.yaml", &text).unwrap();
    scaler.spec.forecast.history = history.into();
    // A calendar whose intervals do not fall on the cache's 5-minute blocks: both paths must
    // leave the same load out of the seasonal history, and multiply the same minutes.
    scaler.spec.calendar = serde_yaml_ng::from_str(
        "{exclusions: [{name: odd, start: '2026-02-09T10:07:00Z', end: '2026-02-09T15:02:00Z'},
                       {name: holiday, date: '2026-02-16'}],
          events: [{name: sale, start: '2026-02-19T07:03:00Z', duration: 3h, loadMultiplier: 2}]}",
    )
    .unwrap();
    let spec = scaler.spec.validate().unwrap();
    // The operator calibrates each scaler at its own minutes of the interval and forecasts the
    // week again at each boundary rather than keeping it; the backtest keeps it, at the same
    // minutes (as `kubectl prescaler backtest` replays a scaler).
    let base = ModelConfig::default();
    let model = placement::operator_model(&base, "shop", "checkout");
    assert_eq!(model.record, Record::Recomputed);
    assert_ne!(model.recalibrate_offset, Duration::zero());
    let setup = Setup::for_trace(&trace);
    let lag = setup.lag_minutes();

    let backtest_model = placement::scaler_model(&base, "shop", "checkout");
    let replayed = backtest::prescaler(&trace, &setup, &spec, &backtest_model).desired;

    let metric = trace.metric();
    let source = TraceSource {
        start: trace.start,
        values: (0..trace.minutes())
            .map(|m| m.checked_sub(lag).map_or(f64::NAN, |i| metric[i]))
            .collect(),
        now: Cell::new(trace.start),
    };
    let restart_at = 17 * 1440 + 8 * 60 + 17;
    let mut planner = Planner::new(spec.clone(), model.clone());
    let mut cache = HistoryCache::new("load", planner.resting_needs());
    let mut samples_since = None;
    let mut current = replayed[0];
    let mut decided = Vec::with_capacity(trace.minutes());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for m in 0..trace.minutes() {
        if m == restart_at {
            // A new operator process: nothing but what the source holds.
            planner = Planner::new(spec.clone(), model.clone());
            cache = HistoryCache::new("load", planner.resting_needs());
            samples_since = None;
        }
        // Reconciles at odd seconds of the minute, sometimes twice in it.
        let seconds: &[i64] = if m % 7 == 0 { &[13, 44] } else { &[31] };
        for &s in seconds {
            let now = trace.time(m) + Duration::seconds(s);
            source.now.set(now);
            // As the operator reads: the cache holds what decisions between calibrations
            // read; a calibration reads the rest of its week again.
            let deeper = Deeper::for_decision(&planner, now);
            let (_, deep) = runtime
                .block_on(cache.read(&source, now, true, deeper.as_ref()))
                .unwrap();
            let history = match deep {
                Some(deep) => {
                    samples_since = deep.samples_since;
                    Some(deep.history)
                }
                None => cache
                    .history()
                    .map(|h| h.with_samples_before(samples_since)),
            };
            let d = planner.decide(history.as_ref(), current, now);
            current = d.desired_replicas;
        }
        decided.push(current);
    }

    // A restart forgets the stabilization window's recommendations, as the HPA's does; outside
    // that window after it, the decisions are the same.
    let window = 6;
    let differ: Vec<usize> = (0..trace.minutes())
        .filter(|&m| decided[m] != replayed[m])
        .filter(|&m| !(restart_at..restart_at + window).contains(&m))
        .collect();
    assert!(
        differ.is_empty(),
        "{} minutes differ, first at minute {}: operator {} vs backtest {}",
        differ.len(),
        differ[0],
        decided[differ[0]],
        replayed[differ[0]]
    );
    // And the trace did exercise the forecast: the two paths are not equal for want of one.
    assert!(replayed.iter().max() > replayed.iter().min());
}
