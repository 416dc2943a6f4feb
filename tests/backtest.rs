//! The backtest: causality, a golden run, the demo's claim, and the command's outputs — including
//! that it tells the truth about what it cannot do.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use prescaler::api::ValidatedSpec;
use prescaler::backtest::baselines::{self, HpaModel};
use prescaler::backtest::trace::Trace;
use prescaler::backtest::{self, Setup, manifest};
use prescaler::planning::forecast::ModelConfig;

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn demo() -> (Trace, ValidatedSpec) {
    let trace = Trace::load(&repo("examples/demo-trace.csv")).unwrap();
    let text = std::fs::read_to_string(repo("examples/checkout.yaml")).unwrap();
    let scaler = manifest::parse("checkout.yaml", &text).unwrap();
    (trace, scaler.spec.validate().unwrap())
}

/// Every strategy on `trace` with the trace's default setup and model.
fn run_all(trace: &Trace, spec: &ValidatedSpec) -> backtest::Outcome {
    backtest::run_all(
        trace,
        &Setup::for_trace(trace),
        spec,
        &ModelConfig::default(),
    )
    .unwrap()
}

/// The first `minutes` minutes of `trace`.
fn head(trace: &Trace, minutes: usize) -> Trace {
    Trace {
        demand: trace.demand[..minutes].to_vec(),
        observed: trace.observed[..minutes].to_vec(),
        ..trace.clone()
    }
}

/// Decisions up to minute T are the same whether or not the trace after T is given.
#[test]
fn decisions_do_not_depend_on_the_future() {
    let (full, spec) = demo();
    let full = head(&full, 16 * 1440);
    let model = ModelConfig::default();
    // Cut just before a weekday campaign (09:00 Berlin = 08:00Z) and elsewhere.
    for cut in [15 * 1440 + 8 * 60 - 3, 14 * 1440 + 777] {
        let short = head(&full, cut);
        let a = backtest::prescaler(&full, &Setup::for_trace(&full), &spec, &model);
        let b = backtest::prescaler(&short, &Setup::for_trace(&short), &spec, &model);
        assert_eq!(
            a.desired[..cut],
            b.desired[..],
            "prescaler looked ahead of minute {cut}"
        );
        let hpa = |t: &Trace| {
            let model = HpaModel::new(
                t,
                1,
                spec.target_per_replica,
                spec.min_replicas,
                spec.max_replicas,
            );
            baselines::hpa(&model, 0.8).desired
        };
        assert_eq!(
            hpa(&full)[..cut],
            hpa(&short)[..],
            "the HPA looked ahead of minute {cut}"
        );
    }
}

/// The scores of a small fixed run. Rewrite with `UPDATE_GOLDEN=1 cargo test` after a deliberate
/// change, and say in the commit why the numbers moved.
#[test]
fn golden_run_on_the_demo_trace() {
    let (trace, spec) = demo();
    let trace = head(&trace, 16 * 1440);
    let outcome = run_all(&trace, &spec);
    let actual = serde_json::to_string_pretty(&outcome.scores).unwrap() + "\n";
    let path = repo("tests/golden/demo-16d.json");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &actual).unwrap();
    }
    let expected =
        std::fs::read_to_string(&path).expect("golden file; create it with UPDATE_GOLDEN=1");
    assert_eq!(actual, expected, "the backtest's scores changed");
}

/// The demo's point: the weekday campaign is pre-scaled, so prescaler meets its objective
/// (0.1 % of minutes short) with fewer violation minutes than the HPA at an 80 % target, and for
/// less than any HPA setting as available as it; at its cost every HPA setting is short more.
#[test]
fn prescaler_beats_the_hpa_on_the_demo() {
    let (trace, spec) = demo();
    let outcome = run_all(&trace, &spec);
    let get = |n: &str| outcome.score(n).unwrap().clone();
    let (p, h, o) = (get("prescaler"), get("hpa80"), get("oracle"));
    assert!(p.violation_minutes < h.violation_minutes, "{p:?} vs {h:?}");
    assert!(
        p.violation_percent <= spec.max_underprovisioned * 100.0 * 1.5,
        "the objective is met: {p:?}"
    );
    let c = &outcome.comparison;
    assert!(c.saving_at_equal_violations > 0.05, "{c:?}");
    assert!(
        c.hpa_violation_percent_at_equal_cost > p.violation_percent,
        "{c:?}"
    );
    assert_eq!(o.violation_minutes, 0, "the oracle is the physical limit");
    assert!(p.cost >= o.cost);
}

fn prescaler_cmd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_prescaler"))
}

fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn command_writes_table_json_csv_and_svg() {
    let dir = tempfile::tempdir().unwrap();
    let (csv, svg) = (dir.path().join("run.csv"), dir.path().join("run.svg"));
    let (ok, stdout, stderr) = run(prescaler_cmd()
        .args(["backtest", "--trace"])
        .arg(repo("examples/demo-trace.csv"))
        .arg("--spec")
        .arg(repo("examples/checkout.yaml"))
        .arg("--csv")
        .arg(&csv)
        .arg("--svg")
        .arg(&svg)
        .arg("--json"));
    assert!(ok, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let names: Vec<&str> = json["scores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["strategy"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["prescaler", "hpa100", "hpa80", "oracle"]);
    // One key style: camelCase, as Kubernetes writes.
    fn keys(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    out.push(k.clone());
                    keys(v, out);
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| keys(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    keys(&json, &mut all);
    assert!(all.iter().all(|k| !k.contains('_')), "{all:?}");
    assert!(json["comparison"]["savingAtEqualViolations"].is_number());
    assert_eq!(json["frontier"]["sweep"].as_array().unwrap().len(), 31);

    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    for col in [
        "timestamp",
        "demand",
        "needed",
        "desired",
        "ready",
        "hpa80_desired",
        "hpa100_desired",
        "oracle_desired",
        "forecast",
        "scored",
    ] {
        assert!(header.contains(&col), "missing column {col}: {header:?}");
    }
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 21 * 1440, "one row a minute");
    let scored = header.iter().position(|c| *c == "scored").unwrap();
    let scored_at = |row: &str| row.split(',').nth(scored).unwrap().to_string();
    assert_eq!(
        scored_at(rows[13 * 1440]),
        "0",
        "a history-only day is not scored"
    );
    assert_eq!(scored_at(rows[15 * 1440]), "1");

    let chart = std::fs::read_to_string(&svg).unwrap();
    for part in [
        "<svg",
        "prescaler ready",
        "prescaler desired",
        "Europe/Berlin",
        "peak window open",
        "<polyline",
    ] {
        assert!(chart.contains(part), "the chart lacks {part:?}");
    }
    assert!(
        stderr.contains("wrote") && stderr.contains("run.svg"),
        "{stderr}"
    );
}

#[test]
fn flags_override_the_spec_and_the_table_reads() {
    let (ok, table, stderr) = run(prescaler_cmd()
        .args(["backtest", "--trace"])
        .arg(repo("examples/demo-trace.csv"))
        .args([
            "--target-per-replica",
            "50",
            "--max",
            "30",
            "--eval-start",
            "2026-02-20T00:00:00Z",
        ]));
    assert!(ok, "{stderr}");
    assert!(table.contains("scored from 2026-02-20 00:00"), "{table}");
    for row in [
        "prescaler",
        "hpa100",
        "hpa80",
        "oracle",
        "violation%",
        "cost/oracle",
        "however it is tuned",
    ] {
        assert!(table.contains(row), "{table}");
    }
}

#[test]
fn bad_input_gets_a_clear_error() {
    // 1: an error; 2: a usage error, such as a flag's bad value (tests/cli.rs).
    let exits_with = |code: i32, cmd: &mut Command, words: &[&str]| {
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{err}");
        for w in words {
            assert!(err.contains(w), "{w:?} not in {err}");
        }
    };
    let fails_with = |cmd: &mut Command, words: &[&str]| exits_with(1, cmd, words);
    fails_with(
        prescaler_cmd().args([
            "backtest",
            "--trace",
            "/nonexistent.csv",
            "--target-per-replica",
            "5",
        ]),
        &["/nonexistent.csv"],
    );
    fails_with(
        prescaler_cmd()
            .args(["backtest", "--trace"])
            .arg(repo("examples/demo-trace.csv")),
        &["--target-per-replica"],
    );
    exits_with(
        2,
        prescaler_cmd()
            .args(["backtest", "--trace"])
            .arg(repo("examples/demo-trace.csv"))
            .args(["--target-per-replica", "5", "--lead-time", "6 minutes"]),
        &["--lead-time", "not a duration"],
    );
    // A trace too short to score says how much history is needed.
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short.csv");
    let demo = std::fs::read_to_string(repo("examples/demo-trace.csv")).unwrap();
    let three_days: Vec<&str> = demo.lines().take(1 + 3 * 1440).collect();
    std::fs::write(&short, three_days.join("\n")).unwrap();
    fails_with(
        prescaler_cmd()
            .args(["backtest", "--target-per-replica", "25", "--trace"])
            .arg(&short),
        &["nothing to score", "--eval-start", "14 days"],
    );
    // A misspelled field is refused with its path, not silently ignored.
    let manifest = std::fs::read_to_string(repo("examples/checkout.yaml")).unwrap();
    let typo = dir.path().join("typo.yaml");
    std::fs::write(&typo, manifest.replace("  peakWindows:", "  peakWindow:")).unwrap();
    fails_with(
        prescaler_cmd()
            .args(["backtest", "--trace"])
            .arg(repo("examples/demo-trace.csv"))
            .arg("--spec")
            .arg(&typo),
        &["spec.peakWindow", "unknown field"],
    );
}

#[test]
fn what_the_backtest_cannot_honour_is_named() {
    let manifest = std::fs::read_to_string(repo("examples/checkout.yaml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("forecast-only.yaml");
    std::fs::write(
        &path,
        manifest.replace("mode: Auto ", "mode: ForecastOnly "),
    )
    .unwrap();
    let (ok, _, stderr) = run(prescaler_cmd()
        .args(["backtest", "--trace"])
        .arg(repo("examples/demo-trace.csv"))
        .arg("--spec")
        .arg(&path));
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("warning: spec.mode is ForecastOnly"),
        "{stderr}"
    );
}

#[test]
fn a_closed_pipe_ends_quietly() {
    let mut child = prescaler_cmd()
        .args([
            "backtest",
            "--json",
            "--target-per-replica",
            "25",
            "--trace",
        ])
        .arg(repo("examples/demo-trace.csv"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read nothing: close the pipe at once, as `| head -c 0` would.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !err.contains("panicked"), "{err}");
}

/// The backtest replays a manifest's calendar as the operator would: an event's floor from one
/// lead time before it, a ceiling while a window is open, a peak window off on an excluded day.
#[test]
fn the_backtest_honours_the_calendar_from_the_spec_file() {
    let (trace, _) = demo();
    let text = std::fs::read_to_string(repo("examples/checkout.yaml")).unwrap();
    // The demo's checkout with a calendar on the demo trace's dates (2026-02-02 to 02-22).
    let text = text.replace(
        "  peakWindows:\n",
        "  calendar:\n    timeZone: Europe/Berlin\n    exclusions: [{ name: carnival, date: \"2026-02-16\" }]\n    events: [{ name: launch, start: \"2026-02-18T03:00\", duration: 2h, minReplicas: 50 }]\n  peakWindows:\n    - { name: night-cap, schedule: \"0 1 * * *\", duration: 1h, timeZone: Europe/Berlin, maxReplicas: 3 }\n    - { name: drill, schedule: \"0 15 * * *\", duration: 30m, timeZone: Europe/Berlin, minReplicas: 55 }\n",
    );
    let scaler = manifest::parse("calendar.yaml", &text).unwrap();
    let spec = scaler.spec.validate().unwrap();
    let setup = Setup::for_trace(&trace);
    let run = backtest::prescaler(&trace, &setup, &spec, &ModelConfig::default());
    let minute = |iso: &str| {
        let t = chrono::DateTime::parse_from_rfc3339(iso).unwrap();
        (t.timestamp() - trace.start.timestamp()) as usize / 60
    };
    // The launch: 03:00 CET = 02:00Z, asked for a lead time (6m) ahead.
    assert!(run.desired[minute("2026-02-18T01:53:00Z")] < 50);
    assert!(
        run.desired[minute("2026-02-18T01:54:00Z")..minute("2026-02-18T04:00:00Z")]
            .iter()
            .all(|&r| r >= 50)
    );
    // The night cap: 01:00–02:00 Berlin, every day.
    for day in ["2026-02-10", "2026-02-19"] {
        let from = minute(&format!("{day}T00:00:00Z"));
        assert!(
            run.desired[from..from + 60].iter().all(|&r| r <= 3),
            "{day}"
        );
    }
    // The daily drill (55 pods from 15:00 Berlin) holds on the 17th, not on the excluded 16th.
    let drill = |day: &str| run.desired[minute(&format!("{day}T14:15:00Z"))];
    assert!(drill("2026-02-17") >= 55, "{}", drill("2026-02-17"));
    assert!(drill("2026-02-16") < 55, "{}", drill("2026-02-16"));
}

/// `leadTime: Auto` replays with the simulated start-up plus the metric lag, rounded up to a
/// minute, as the operator would learn it from pods that start in exactly that time.
#[test]
fn lead_time_auto_is_the_simulated_start_up_plus_the_metric_lag() {
    let text = std::fs::read_to_string(repo("examples/checkout.yaml")).unwrap();
    let mut scaler = manifest::parse("checkout.yaml", &text).unwrap();
    scaler.spec.forecast.lead_time = "Auto".into();
    let auto = scaler.spec.validate().unwrap();
    assert!(auto.lead_time_auto);
    let trace = Trace::load(&repo("examples/demo-trace.csv")).unwrap();
    let mut setup = Setup::for_trace(&trace);
    for (startup, lag, lead) in [(480, 60, 9), (150, 60, 4), (300, 120, 7)] {
        setup.startup_delay = chrono::Duration::seconds(startup);
        setup.metric_lag = chrono::Duration::seconds(lag);
        let mut spec = auto.clone();
        backtest::resolve_auto_lead_time(&mut spec, &setup);
        assert_eq!(
            spec.lead_time,
            chrono::Duration::minutes(lead),
            "{startup} s + {lag} s"
        );
    }
    // From the command: a manifest with Auto and pods that start in 8 minutes.
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("auto.yaml");
    std::fs::write(&manifest, text.replace("leadTime: 6m ", "leadTime: Auto ")).unwrap();
    let (ok, _, stderr) = run(prescaler_cmd()
        .args(["backtest", "--trace"])
        .arg(repo("examples/demo-trace.csv"))
        .arg("--spec")
        .arg(&manifest)
        .args([
            "--startup-delay",
            "8m",
            "--eval-start",
            "2026-02-20T00:00:00Z",
        ]));
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("leadTime is Auto: replayed with 9m"),
        "{stderr}"
    );
}

/// A quiet window (`minReplicas: 0`) in a replay: the same planner goes to zero in the quiet
/// hours and is back before the load, and the scoring counts a quiet minute without load as
/// needing no replica (the oracle is at zero there too) — a minute with load and none ready
/// would be short.
#[test]
fn the_backtest_scales_to_zero_in_a_quiet_window_and_scores_it() {
    use chrono::{Duration, TimeZone, Timelike, Utc};
    // 21 days: 200 (4 replicas at 50) all day, nothing from 01:00 to 06:00 UTC.
    let start = Utc.with_ymd_and_hms(2026, 2, 2, 0, 0, 0).unwrap();
    let samples: Vec<_> = (0..21 * 1440)
        .map(|m| start + Duration::minutes(m))
        .map(|t| {
            (
                t,
                if (1..6).contains(&t.hour()) {
                    0.0
                } else {
                    200.0
                },
            )
        })
        .collect();
    let trace = Trace::from_samples("quiet.csv", &samples);
    let mut spec = prescaler::api::PredictiveScalerSpec::new(50.0, 40);
    spec.min_replicas = 2;
    spec.peak_windows = vec![prescaler::api::PeakWindow {
        name: "night".into(),
        schedule: "0 0 * * *".into(),
        duration: "7h".into(),
        time_zone: "UTC".into(),
        min_replicas: Some(0),
        max_replicas: None,
    }];
    let spec = spec.validate().unwrap();
    let outcome = run_all(&trace, &spec);
    let own = &outcome.runs[0];
    let minute = |day: i64, h: i64, m: i64| ((day * 24 + h) * 60 + m) as usize;
    for day in 15..21 {
        assert_eq!(own.desired[minute(day, 3, 0)], 0, "day {day}");
        assert_eq!(outcome.needed[minute(day, 3, 0)], 0, "day {day}");
        // Awake for the 06:00 load: the forecast sees it within the lead time.
        assert!(own.desired[minute(day, 6, 0)] >= 4, "day {day}");
    }
    // Outside the window minReplicas holds in the scoring as before.
    assert_eq!(outcome.needed[minute(16, 12, 0)], 4);
    let prescaler = outcome.score("prescaler").unwrap();
    let hpa = outcome.score("hpa80").unwrap();
    let oracle = outcome.score("oracle").unwrap();
    // Zero minutes without load are not short: a handful of minutes at most, around a wake.
    assert!(prescaler.violation_minutes < 60, "{prescaler:?}");
    assert!(prescaler.cost < hpa.cost, "{prescaler:?} {hpa:?}");
    assert!(oracle.cost < hpa.cost, "{oracle:?} {hpa:?}");
}

/// `examples/several-metrics.yaml` over 15 days of two loads: requests (100/s, 4 replicas at
/// 25) all day, and a queue whose backlog jumps to 10 000 (20 replicas at 500) from 09:00 to
/// 10:00 UTC every day; as a CSV, `timestamp,queue,requests` (columns in any order).
fn several_metrics_csv() -> String {
    use chrono::{Duration, TimeZone, Timelike, Utc};
    let start = Utc.with_ymd_and_hms(2026, 2, 2, 0, 0, 0).unwrap();
    let mut csv = String::from("timestamp,queue,requests\n");
    for m in 0..15 * 1440 {
        let t = start + Duration::minutes(m);
        let queue = if t.hour() == 9 { 10_000.0 } else { 400.0 };
        csv.push_str(&format!(
            "{},{queue},100\n",
            t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ));
    }
    csv
}

#[test]
fn several_metrics_are_replayed_each_on_its_column_and_scored_on_the_highest_need() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("loads.csv");
    std::fs::write(&path, several_metrics_csv()).unwrap();
    let text = std::fs::read_to_string(repo("examples/several-metrics.yaml")).unwrap();
    let spec = manifest::parse("several-metrics.yaml", &text)
        .unwrap()
        .spec
        .validate()
        .unwrap();
    let names: Vec<String> = spec.metrics.iter().map(|m| m.name.clone()).collect();
    assert_eq!(names, ["requests", "queue"]);
    let traces = Trace::load_columns(&path, &names).unwrap();
    assert_eq!(traces[0].demand[0], 100.0);
    assert_eq!(traces[1].demand[0], 400.0);
    let setup = Setup::for_trace(&traces[0]);
    let (_, _, outcome) =
        backtest::run_all_metrics("loads.csv", traces, &setup, &spec, &ModelConfig::default())
            .unwrap();
    let minute = |day: usize, h: usize, m: usize| (day * 24 + h) * 60 + m;
    // The need is the highest of the metrics': the requests' 4 at night, the queue's 20 at 09:30.
    assert_eq!(outcome.needed[minute(14, 3, 0)], 4);
    assert_eq!(outcome.needed[minute(14, 9, 30)], 20);
    let own = &outcome.runs[0];
    // The queue's daily jump is forecast on its own history: ready at 09:00, not after it.
    assert!(
        own.desired[minute(14, 8, 57)] >= 20,
        "{:?}",
        &own.desired[minute(14, 8, 50)..minute(14, 9, 5)]
    );
    assert!(own.desired[minute(14, 3, 0)] >= 4);
    let prescaler = outcome.score("prescaler").unwrap();
    let hpa = outcome.score("hpa80").unwrap();
    assert!(
        prescaler.violation_minutes < hpa.violation_minutes,
        "{prescaler:?} {hpa:?}"
    );

    // The command, with its table.
    let (ok, out, err) = run(prescaler_cmd()
        .args(["backtest", "--trace"])
        .arg(&path)
        .arg("--spec")
        .arg(repo("examples/several-metrics.yaml")));
    assert!(ok, "{err}");
    assert!(out.contains("prescaler") && out.contains("hpa80"), "{out}");
}

#[test]
fn a_csv_whose_columns_are_not_the_metrics_is_refused_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let csv = several_metrics_csv();
    let cases = [
        (
            csv.replacen("timestamp,queue,requests", "timestamp,backlog,requests", 1),
            "column \"backlog\" is not a metric of the spec",
        ),
        (
            csv.lines()
                .map(|l| l.rsplit_once(',').map_or(l, |(a, _)| a).to_string() + "\n")
                .collect(),
            "no column for spec.metrics[0] \"requests\"",
        ),
        (
            csv.lines().skip(1).map(|l| l.to_string() + "\n").collect(),
            "needs a header `timestamp,requests,queue`",
        ),
    ];
    for (text, expected) in cases {
        let path = dir.path().join("bad.csv");
        std::fs::write(&path, text).unwrap();
        let (ok, _, err) = run(prescaler_cmd()
            .args(["backtest", "--trace"])
            .arg(&path)
            .arg("--spec")
            .arg(repo("examples/several-metrics.yaml")));
        assert!(!ok);
        assert!(err.contains(expected), "{expected}: {err}");
    }
    // --target-per-replica would name no metric of several.
    let (ok, _, err) = run(prescaler_cmd()
        .args(["backtest", "--trace"])
        .arg(dir.path().join("bad.csv"))
        .arg("--spec")
        .arg(repo("examples/several-metrics.yaml"))
        .args(["--target-per-replica", "10"]));
    assert!(!ok);
    assert!(err.contains("--target-per-replica"), "{err}");
}
