//! The backtest: causality, a golden run, the demo's claim, and the command's outputs.

use std::path::PathBuf;
use std::process::Command;

use chrono::Duration;
use prescaler::api::{PredictiveScaler, ValidatedSpec};
use prescaler::backtest::{self, Setup};
use prescaler::forecast::ModelConfig;
use prescaler::trace::Trace;

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn demo() -> (Trace, ValidatedSpec) {
    let trace = Trace::load(&repo("examples/demo-trace.csv")).unwrap();
    let scaler: PredictiveScaler =
        serde_yaml_ng::from_str(&std::fs::read_to_string(repo("examples/checkout.yaml")).unwrap())
            .unwrap();
    (trace, scaler.spec.validate().unwrap())
}

fn setup(trace: &Trace) -> Setup {
    Setup {
        startup_delay: 5,
        metric_lag: 1,
        eval_start: trace.start + Duration::days(14),
    }
}

/// Decisions up to minute T are the same whether or not the trace after T is given.
#[test]
fn decisions_do_not_depend_on_the_future() {
    let (full, spec) = demo();
    let full = full.truncated(16 * 1440);
    let model = ModelConfig::default();
    // Cut just before a weekday campaign (09:00 Berlin = 08:00Z) and elsewhere.
    for cut in [15 * 1440 + 8 * 60 - 3, 14 * 1440 + 777] {
        let short = full.truncated(cut);
        let a = backtest::prescaler(&full, &setup(&full), &spec, &model);
        let b = backtest::prescaler(&short, &setup(&short), &spec, &model);
        assert_eq!(
            a.desired[..cut],
            b.desired[..],
            "prescaler looked ahead of minute {cut}"
        );
        let a = backtest::hpa(&full, &setup(&full), &spec, 0.8);
        let b = backtest::hpa(&short, &setup(&short), &spec, 0.8);
        assert_eq!(
            a.desired[..cut],
            b.desired[..],
            "hpa looked ahead of minute {cut}"
        );
    }
}

/// The scores of a small fixed run. Rewrite with `UPDATE_GOLDEN=1 cargo test` after a deliberate
/// change, and say in the commit why the numbers moved.
#[test]
fn golden_run_on_the_demo_trace() {
    let (trace, spec) = demo();
    let trace = trace.truncated(16 * 1440);
    let outcome = backtest::run_all(&trace, &setup(&trace), &spec, &ModelConfig::default());
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

/// The demo's point: the weekday campaign is pre-scaled, so prescaler has fewer violation minutes
/// than the HPA at an 80 % target, for less cost.
#[test]
fn prescaler_beats_the_hpa_on_the_demo() {
    let (trace, spec) = demo();
    let outcome = backtest::run_all(&trace, &setup(&trace), &spec, &ModelConfig::default());
    let get = |n: &str| {
        outcome
            .scores
            .iter()
            .find(|s| s.strategy == n)
            .unwrap()
            .clone()
    };
    let (p, h, o) = (get("prescaler"), get("hpa80"), get("oracle"));
    assert!(p.violation_minutes < h.violation_minutes, "{p:?} vs {h:?}");
    assert!(p.cost < h.cost, "{p:?} vs {h:?}");
    assert_eq!(o.violation_minutes, 0, "the oracle is the physical limit");
    assert!(p.cost >= o.cost);
}

fn prescaler_cmd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_prescaler"))
}

#[test]
fn command_writes_table_json_csv_and_svg() {
    let dir = std::env::temp_dir().join(format!("prescaler-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (csv, svg) = (dir.join("run.csv"), dir.join("run.svg"));
    let out = prescaler_cmd()
        .args(["backtest", "--trace"])
        .arg(repo("examples/demo-trace.csv"))
        .arg("--spec")
        .arg(repo("examples/checkout.yaml"))
        .arg("--csv")
        .arg(&csv)
        .arg("--svg")
        .arg(&svg)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = json["scores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["strategy"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["prescaler", "hpa100", "hpa80", "oracle"]);

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
    ] {
        assert!(header.contains(&col), "missing column {col}: {header:?}");
    }
    assert_eq!(lines.count(), 21 * 1440, "one row a minute");

    let chart = std::fs::read_to_string(&svg).unwrap();
    assert!(
        chart.starts_with("<svg")
            && chart.contains("prescaler ready")
            && chart.contains("<polyline"),
        "not a chart"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn flags_override_the_spec_and_the_table_reads() {
    let out = prescaler_cmd()
        .args(["backtest", "--trace"])
        .arg(repo("examples/demo-trace.csv"))
        .args([
            "--capacity",
            "50",
            "--max",
            "30",
            "--eval-start",
            "2026-02-20T00:00:00Z",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("scored from 2026-02-20 00:00"), "{table}");
    for row in [
        "prescaler",
        "hpa100",
        "hpa80",
        "oracle",
        "violation%",
        "cost/oracle",
    ] {
        assert!(table.contains(row), "{table}");
    }
}

#[test]
fn bad_input_gets_a_clear_error() {
    let out = prescaler_cmd()
        .args(["backtest", "--trace", "/nonexistent.csv", "--capacity", "5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent.csv"), "{err}");

    let out = prescaler_cmd()
        .args(["backtest", "--trace"])
        .arg(repo("examples/demo-trace.csv"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--capacity"));

    let out = prescaler_cmd()
        .args(["backtest", "--trace"])
        .arg(repo("examples/demo-trace.csv"))
        .args(["--capacity", "5", "--lead-time", "6 minutes"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("spec.forecast.leadTime"));
}

#[test]
fn bundled_demo_trace_is_what_the_generator_makes() {
    let committed = std::fs::read_to_string(repo("examples/demo-trace.csv")).unwrap();
    assert!(
        committed == prescaler::demo::trace_csv(7, 21),
        "examples/demo-trace.csv is stale: run `cargo run -- demo-trace > examples/demo-trace.csv`"
    );
}
