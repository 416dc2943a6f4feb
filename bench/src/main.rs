//! `prescaler-bench`: the project's measuring tools, kept out of the product binary.
//! - `scenarios`: the quality benchmark — every scenario of a scenario file backtested with
//!   prescaler's default spec, against the HPA frontier and perfect foresight;
//! - `regimes`: writes the synthetic regime suite (`prescaler::backtest::synthetic`) as scenario
//!   files;
//! - `demo-trace`: regenerates the bundled synthetic demo trace;
//! - `outlook`, `first-decision`: time the plan, and a scaler's first decision in the operator;
//! - `forecast-methods` (feature `mstl`): prescaler's predictors against MSTL.

mod bound;
mod demo;
mod explain;
#[cfg(feature = "mstl")]
mod forecast_eval;
mod regimes;
mod scenarios;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use chrono::Duration;
use clap::{Parser, Subcommand};
use prescaler::api::{PredictiveScalerSpec, ValidatedSpec};
use prescaler::backtest::trace::Trace;
use prescaler::backtest::{self, Setup};
use prescaler::planning::forecast::ModelConfig;
use prescaler::{Error, Result};
use scenarios::Scenario;

/// The heap in use, counted, so that `first-decision` can say what a planner keeps after its
/// first decision (the operator's per-scaler memory, without the history cache and the
/// Kubernetes objects). A relaxed counter on the system allocator: no crate for one `AtomicUsize`.
struct CountingAllocator;

static HEAP_IN_USE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

// SAFETY: every call is the system allocator's, with the same layout; only a counter is added.
unsafe impl std::alloc::GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        let p = unsafe { std::alloc::System.alloc(layout) };
        if !p.is_null() {
            HEAP_IN_USE.fetch_add(layout.size(), std::sync::atomic::Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        unsafe { std::alloc::System.dealloc(ptr, layout) };
        HEAP_IN_USE.fetch_sub(layout.size(), std::sync::atomic::Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new: usize) -> *mut u8 {
        let p = unsafe { std::alloc::System.realloc(ptr, layout, new) };
        if !p.is_null() {
            HEAP_IN_USE.fetch_add(new, std::sync::atomic::Ordering::Relaxed);
            HEAP_IN_USE.fetch_sub(layout.size(), std::sync::atomic::Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn heap_in_use() -> usize {
    HEAP_IN_USE.load(std::sync::atomic::Ordering::Relaxed)
}

#[derive(Parser)]
#[command(
    name = "prescaler-bench",
    about = "prescaler's benchmarks and generators"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Backtest every scenario of a scenario file with the default spec; report the saving at
    /// equal violations against the HPA frontier and the foresight bound.
    Scenarios {
        /// The scenario file (CSV: trace, capacity, min_replicas, max_replicas,
        /// startup_delay_min, metric_lag_min, eval_start).
        #[arg(long)]
        scenarios: PathBuf,
        /// The folder holding the traces it names.
        #[arg(long)]
        traces: PathBuf,
        /// Only scenarios whose trace name contains this.
        #[arg(long)]
        only: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// spec.objective.maxUnderprovisionedPercent for every scenario (default: the spec's
        /// default).
        #[arg(long)]
        objective: Option<f64>,
        /// A YAML file holding a `spec.calendar` (exclusions, events) for every scenario, e.g.
        /// a trace's holidays.
        #[arg(long)]
        calendar: Option<PathBuf>,
        /// A PredictiveScaler manifest whose spec every scenario runs with instead of the default
        /// one (the scenario's start-up and metric delay still set the simulated world).
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// Print each scenario's replay day by day: violation minutes, cost against perfect
        /// foresight, what the calibration chose.
        #[arg(long)]
        explain: bool,
        /// Change one of the model's tunables for an experiment (`KEY=VALUE`, repeatable; see
        /// `docs/benchmarks.md` for the keys). The defaults are what prescaler runs with.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// Write the synthetic regime suite (level shifts, a term break, growth, an inverted week,
    /// a sharp daily step, a flash crowd, a week without metrics) as traces and a scenario file.
    Regimes {
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The folder to write into (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the bundled synthetic demo trace (a seeded generator) as CSV.
    DemoTrace {
        #[arg(long, default_value_t = 7)]
        seed: u64,
        #[arg(long, default_value_t = 21)]
        days: u32,
    },
    /// Time the plan (`planning::outlook`: 96 quarter hours ahead) against the decision, on a
    /// trace replayed minute by minute with a spec: a plan every 15 minutes after the first
    /// 14 days, as the operator makes them.
    Outlook {
        #[arg(long)]
        trace: PathBuf,
        #[arg(long)]
        spec: PathBuf,
    },
    /// Time a scaler's first decision as the operator makes it after a start: its calibration
    /// forecasts the week before its boundary again from history (`Record::Recomputed`), which
    /// is most of a cold start's CPU. Scalers of the spec, each named for its own calibration
    /// minute, decide once at the trace's end over its whole history.
    FirstDecision {
        #[arg(long)]
        trace: PathBuf,
        /// A PredictiveScaler manifest (default: the default spec at 50 per replica).
        #[arg(long)]
        spec: Option<PathBuf>,
        #[arg(long, default_value_t = 100)]
        scalers: usize,
        /// As `scenarios --set`: one of the model's tunables.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// Compare prescaler's predictors with MSTL on every scenario's trace.
    #[cfg(feature = "mstl")]
    ForecastMethods {
        #[arg(long)]
        scenarios: PathBuf,
        #[arg(long)]
        traces: PathBuf,
        /// Evaluation instants per trace.
        #[arg(long, default_value_t = 100)]
        points: usize,
    },
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Scenarios {
            scenarios,
            traces,
            only,
            json,
            objective,
            calendar,
            explain,
            set,
            manifest,
        } => model_with(&set).and_then(|model| {
            run_scenarios(
                &scenarios,
                &traces,
                Options {
                    only: only.as_deref(),
                    json,
                    objective,
                    calendar: calendar.as_deref(),
                    explain,
                    model,
                    manifest: manifest.as_deref(),
                },
            )
        }),
        Command::Regimes { seed, out } => regimes::write(seed, &out),
        Command::Outlook { trace, spec } => time_outlook(&trace, &spec),
        Command::FirstDecision {
            trace,
            spec,
            scalers,
            set,
        } => model_with(&set)
            .and_then(|model| time_first_decision(&trace, spec.as_deref(), scalers, &model)),
        Command::DemoTrace { seed, days } => {
            print!("{}", demo::trace_csv(seed, days));
            Ok(())
        }
        #[cfg(feature = "mstl")]
        Command::ForecastMethods {
            scenarios,
            traces,
            points,
        } => forecast_methods(&scenarios, &traces, points),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// One scenario's result.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Row {
    trace: String,
    startup_delay_minutes: u32,
    violation_percent: f64,
    hpa80_violation_percent: f64,
    saving_at_equal_violations: f64,
    hpa_violation_percent_at_equal_cost: f64,
    cost_vs_oracle: f64,
    cost_vs_hpa80: f64,
    /// prescaler's cost, in replica-hours over the scored minutes.
    replica_hours: f64,
    /// The foresight bound's saving at prescaler's violation %, where the trace has an
    /// un-textured original.
    bound_saving: Option<f64>,
    /// prescaler's own replay, in seconds of wall-clock time.
    replay_seconds: f64,
    /// For a trace of the regime suite: the violation % from a day after each change of regime
    /// to the next (the worst of them).
    #[serde(skip_serializing_if = "Option::is_none")]
    violation_percent_after_change: Option<f64>,
}

/// How `scenarios` runs.
struct Options<'a> {
    only: Option<&'a str>,
    json: bool,
    objective: Option<f64>,
    calendar: Option<&'a Path>,
    explain: bool,
    model: ModelConfig,
    manifest: Option<&'a Path>,
}

/// The default model with `settings` (`KEY=VALUE`) applied.
fn model_with(settings: &[String]) -> Result<ModelConfig> {
    let mut model = ModelConfig::default();
    for setting in settings {
        let bad = |message: String| Error::Config {
            what: format!("--set {setting}"),
            message,
        };
        let (key, value) = setting
            .split_once('=')
            .ok_or_else(|| bad("expected KEY=VALUE".into()))?;
        let number = || -> Result<f64> {
            value
                .parse::<f64>()
                .map_err(|_| bad(format!("{value:?} is not a number")))
        };
        let minutes = || -> Result<Duration> { Ok(Duration::minutes(number()? as i64)) };
        match key {
            "level_window_min" => model.level_window = minutes()?,
            "smoothing_half_width_min" => model.smoothing_half_width = minutes()?,
            "daily_periods" => model.daily_periods = number()? as usize,
            "weekly_periods" => model.weekly_periods = number()? as usize,
            "calibration_window_days" => {
                model.calibration_window = Duration::minutes((number()? * 1440.0) as i64)
            }
            "recalibrate_interval_min" => model.recalibrate_interval = minutes()?,
            "max_margin" => model.max_margin = number()?,
            "objective_safety" => model.objective_safety = number()?,
            "recurring_steps" => model.recurring_steps = number()? != 0.0,
            "zero_persistence_min" => model.zero_persistence = minutes()?,
            "sustained_samples" => model.sustained_samples = number()? as usize,
            "period_spread" => model.period_spread = number()? != 0.0,
            "bursts_left_out" => model.bursts_left_out = number()? != 0.0,
            "burst_extra_replicas" => model.burst_extra_replicas = number()?,
            _ => return Err(bad(format!("unknown key {key:?}"))),
        }
    }
    Ok(model)
}

/// Backtests every scenario of `file` (traces in `dir`) as `options` say, and prints their table
/// (or JSON).
fn run_scenarios(file: &Path, dir: &Path, options: Options<'_>) -> Result<()> {
    let Options {
        only,
        json,
        objective,
        calendar,
        explain,
        model,
        manifest,
    } = options;
    let manifest = manifest.map(read_manifest_spec).transpose()?;
    let list = scenarios::load(file, dir)?;
    let calendar = calendar.map(read_calendar).transpose()?;
    let mut rows = Vec::new();
    if !json {
        print_header();
    }
    for sc in list
        .iter()
        .filter(|s| only.is_none_or(|o| s.trace.to_string_lossy().contains(o)))
    {
        let trace = Trace::load(&sc.trace)?;
        let setup = setup_for(sc, &trace);
        let spec = spec_for(sc, &setup, manifest.as_ref(), objective, calendar.as_ref());
        let spec = spec.validate()?;
        let (row, outcome) = replay(sc, &trace, &setup, &spec, &model)?;
        if !json {
            print_row(&row);
            if explain {
                explain::print(&trace, &setup, &spec, &model, &outcome);
            }
        }
        rows.push(row);
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).map_err(|e| Error::Config {
                what: "JSON".into(),
                message: e.to_string()
            })?
        );
    } else {
        print_key();
    }
    Ok(())
}

/// The spec of the PredictiveScaler manifest at `path`.
fn read_manifest_spec(path: &Path) -> Result<PredictiveScalerSpec> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        context: format!("reading {}", path.display()),
        source,
    })?;
    Ok(prescaler::backtest::manifest::parse(&path.display().to_string(), &text)?.spec)
}

/// The `spec.calendar` in the YAML file at `path`.
fn read_calendar(path: &Path) -> Result<prescaler::api::CalendarSpec> {
    let bad = |e: String| Error::Config {
        what: path.display().to_string(),
        message: e,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    serde_yaml_ng::from_str(&text).map_err(|e| bad(e.to_string()))
}

/// The simulated world of scenario `sc`: its start-up, metric delay and first scored minute.
fn setup_for(sc: &Scenario, trace: &Trace) -> Setup {
    let mut setup = Setup::for_trace(trace);
    setup.startup_delay = Duration::minutes(sc.startup_delay_min.into());
    setup.metric_lag = Duration::minutes(sc.metric_lag_min.into());
    if let Some(t) = sc.eval_start {
        setup.eval_start = t;
    }
    setup
}

/// The spec scenario `sc` runs with: the default one for its capacity and replica bounds (or
/// `manifest`'s), with the command line's objective and calendar, and a lead time covering the
/// setup's start-up and metric delay.
fn spec_for(
    sc: &Scenario,
    setup: &Setup,
    manifest: Option<&PredictiveScalerSpec>,
    objective: Option<f64>,
    calendar: Option<&prescaler::api::CalendarSpec>,
) -> PredictiveScalerSpec {
    // The scenario file's `capacity` is the load one replica carries.
    let mut spec = PredictiveScalerSpec::new(sc.capacity, sc.max_replicas as i32);
    spec.min_replicas = sc.min_replicas as i32;
    if let Some(m) = manifest {
        spec = m.clone();
    }
    if let Some(p) = objective {
        spec.objective.max_underprovisioned_percent = p;
    }
    if let Some(c) = calendar {
        spec.calendar = c.clone();
    }
    spec.forecast.lead_time =
        prescaler::api::format_duration(setup.startup_delay + setup.metric_lag)
            .as_str()
            .into();
    spec
}

/// Replays scenario `sc` with prescaler (timed) and the strategies it is compared with, and
/// scores it.
fn replay(
    sc: &Scenario,
    trace: &Trace,
    setup: &Setup,
    spec: &ValidatedSpec,
    model: &ModelConfig,
) -> Result<(Row, backtest::Outcome)> {
    let started = Instant::now();
    let own = backtest::prescaler(trace, setup, spec, model);
    let replay_seconds = started.elapsed().as_secs_f64();
    let outcome = backtest::compare(trace, setup, spec, own)?;
    let own = outcome.score("prescaler").cloned().expect("prescaler runs");
    let hpa80 = outcome.score("hpa80").cloned().expect("hpa80 runs");
    let bound_saving = bound::original_of(&sc.trace)
        .map(|original| -> Result<Option<f64>> {
            let smooth = Trace::load(&original)?;
            Ok(bound::saving_at(
                trace,
                &smooth,
                setup,
                spec,
                &outcome,
                own.violation_percent,
            ))
        })
        .transpose()?
        .flatten();
    let name = sc
        .trace
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let row = Row {
        trace: name,
        startup_delay_minutes: sc.startup_delay_min,
        violation_percent: own.violation_percent,
        hpa80_violation_percent: hpa80.violation_percent,
        saving_at_equal_violations: outcome.comparison.saving_at_equal_violations,
        hpa_violation_percent_at_equal_cost: outcome.comparison.hpa_violation_percent_at_equal_cost,
        cost_vs_oracle: own.cost_vs_oracle,
        cost_vs_hpa80: own.cost / hpa80.cost,
        replica_hours: own.cost,
        bound_saving,
        replay_seconds,
        violation_percent_after_change: regimes::regime_of(&sc.trace)
            .and_then(|r| regimes::after_change(r, trace, &outcome, setup.delay_minutes())),
    };
    Ok((row, outcome))
}

/// The table's header.
fn print_header() {
    println!(
        "{:<46} {:>5} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8} {:>7} {:>9}",
        "trace",
        "delay",
        "viol%",
        "hpa80%",
        "saving",
        "hpa%@cost",
        "/oracle",
        "bound",
        "secs",
        "replica·h"
    );
}

/// A scenario's line of the table (and, for the regime suite, the violations after a change).
fn print_row(row: &Row) {
    println!(
        "{:<46} {:>5} {:>7.2}% {:>7.2}% {:>7.1}% {:>8.2}% {:>8.3} {:>8} {:>7.2} {:>9.0}",
        row.trace,
        row.startup_delay_minutes,
        row.violation_percent,
        row.hpa80_violation_percent,
        100.0 * row.saving_at_equal_violations,
        row.hpa_violation_percent_at_equal_cost,
        row.cost_vs_oracle,
        row.bound_saving
            .map_or("–".into(), |b| format!("{:.1}%", 100.0 * b)),
        row.replay_seconds,
        row.replica_hours
    );
    if let Some(after) = row.violation_percent_after_change {
        println!(
            "{:<46} a day after each change of regime: {after:.3}% violation minutes",
            ""
        );
    }
}

/// What the table's columns mean.
fn print_key() {
    println!(
        "viol%: prescaler's violation minutes; hpa80%: the HPA's at an 80 % target; saving: prescaler's saving at equal violations against the HPA frontier (targets 40–100 %)"
    );
    println!(
        "hpa%@cost: the frontier's violation minutes at prescaler's cost; bound: the foresight bound's saving at prescaler's violation %; secs: prescaler's replay alone"
    );
}

#[cfg(feature = "mstl")]
fn forecast_methods(file: &Path, dir: &Path, points: usize) -> Result<()> {
    println!(
        "{:<34} {:<26} {:>8} {:>10} {:>6}",
        "trace", "method", "MAPE%", "ms/fcst", "n"
    );
    for sc in scenarios::load(file, dir)? {
        let trace = Trace::load(&sc.trace)?;
        let eval_from = sc.eval_start.map_or(14 * 1440, |t| {
            (t - trace.start).num_minutes().max(0) as usize
        });
        let name = sc
            .trace
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        for m in forecast_eval::evaluate(&trace, eval_from, points) {
            println!(
                "{:<34} {:<26} {:>8.2} {:>10.3} {:>6}",
                name, m.method, m.mape_percent, m.millis_per_forecast, m.forecasts
            );
        }
    }
    Ok(())
}

/// Times the decision and the plan on `trace` with the spec of the manifest at `spec`.
/// `first-decision`: see `Command::FirstDecision`.
fn time_first_decision(
    trace: &Path,
    spec: Option<&Path>,
    scalers: usize,
    model: &ModelConfig,
) -> Result<()> {
    use prescaler::planning::forecast::History;
    use prescaler::planning::planner::Planner;

    let trace = Trace::load(trace)?;
    let spec = match spec {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
                context: format!("reading {}", path.display()),
                source,
            })?;
            prescaler::backtest::manifest::parse(&path.display().to_string(), &text)?
                .spec
                .validate()?
        }
        None => PredictiveScalerSpec::new(50.0, 1000).validate()?,
    };
    let history = History::new(trace.start, Duration::minutes(1), trace.metric());
    let now = trace.time(trace.minutes().saturating_sub(1)) + Duration::seconds(13);
    let started = Instant::now();
    let heap_before = heap_in_use();
    let mut replicas = 0u64;
    // Kept, as the operator keeps them, so that the heap after says what each one holds.
    let mut planners = Vec::with_capacity(scalers);
    for i in 0..scalers {
        let model = prescaler::placement::operator_model(model, "bench", &format!("svc-{i}"));
        let mut planner = Planner::new(spec.clone(), model);
        replicas += u64::from(
            planner
                .decide(Some(&history), spec.min_replicas, now)
                .desired_replicas,
        );
        planners.push(planner);
    }
    let secs = started.elapsed().as_secs_f64();
    let held = heap_in_use().saturating_sub(heap_before);
    println!(
        "{scalers} first decisions over {} days of history: {:.2} ms each ({replicas} replicas in all); \
         each planner holds {:.1} KB after it",
        trace.minutes() / 1440,
        1000.0 * secs / scalers.max(1) as f64,
        held as f64 / 1000.0 / scalers.max(1) as f64
    );
    drop(planners);
    Ok(())
}

fn time_outlook(trace: &Path, spec: &Path) -> Result<()> {
    use prescaler::planning::forecast::{History, ModelConfig};
    use prescaler::planning::outlook;
    use prescaler::planning::planner::Planner;
    use std::time::Instant;

    let trace = prescaler::backtest::trace::Trace::load(trace)?;
    let text = std::fs::read_to_string(spec).map_err(|source| prescaler::Error::Io {
        context: format!("reading {}", spec.display()),
        source,
    })?;
    let scaler = prescaler::backtest::manifest::parse(&spec.display().to_string(), &text)?;
    let spec = scaler.spec.validate()?;
    let history = History::new(trace.start, chrono::Duration::minutes(1), trace.metric());
    let mut planner = Planner::new(spec.clone(), ModelConfig::default());
    let mut current = spec.min_replicas;
    let (mut decide_time, mut decisions) = (std::time::Duration::ZERO, 0u32);
    let mut plans: Vec<f64> = Vec::new();
    let mut steps = 0;
    for m in 0..trace.minutes() {
        let now = trace.time(m);
        let started = Instant::now();
        current = planner
            .decide(Some(&history), current, now)
            .desired_replicas;
        if m >= 14 * 1440 {
            decide_time += started.elapsed();
            decisions += 1;
        }
        if m >= 14 * 1440 && m % 15 == 0 {
            let started = Instant::now();
            let o = outlook::outlook(
                &planner,
                Some(&history),
                now,
                outlook::STEP,
                outlook::HORIZON,
            );
            plans.push(started.elapsed().as_secs_f64() * 1e6);
            steps = o.map_or(0, |o| o.steps.len());
        }
    }
    plans.sort_by(f64::total_cmp);
    let mean = plans.iter().sum::<f64>() / plans.len().max(1) as f64;
    let p99 = plans
        .get((plans.len() * 99 / 100).min(plans.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0.0);
    let decision = decide_time.as_secs_f64() * 1e6 / f64::from(decisions.max(1));
    println!(
        "{} plans of {steps} steps: mean {mean:.0} µs, p99 {p99:.0} µs, max {:.0} µs; a decision (after 14 days): mean {decision:.1} µs",
        plans.len(),
        plans.last().copied().unwrap_or(0.0),
    );
    println!(
        "per scaler, one plan per 15 minutes is {:.2} µs per minute against {:.1} µs of decisions per minute (two reconciles)",
        mean / 15.0,
        2.0 * decision
    );
    Ok(())
}
