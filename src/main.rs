//! The `prescaler` command: `run` is the operator, `crd` prints the CustomResourceDefinition,
//! `backtest` replays a load trace (or every scenario of a benchmark file) through the decision
//! core.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use kube::CustomResourceExt;

use prescaler::api::{PredictiveScaler, PredictiveScalerSpec};
use prescaler::backtest::{self, Setup, chart, report, scenarios};
use prescaler::forecast::ModelConfig;
use prescaler::trace::Trace;
use prescaler::{Error, Result};

#[derive(Parser)]
#[command(
    name = "prescaler",
    version,
    about = "Scales Kubernetes workloads ahead of their load"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator: reconcile every PredictiveScaler in the cluster.
    Run(Box<RunArgs>),
    /// Print the PredictiveScaler CustomResourceDefinition as YAML.
    Crd,
    /// Replay a load trace through prescaler, the HPA and the oracle, and score them.
    Backtest(Box<BacktestArgs>),
    /// Compare prescaler's predictors with MSTL on every scenario's trace (needs `--features mstl`).
    #[cfg(feature = "mstl")]
    ForecastEval {
        #[arg(long)]
        scenarios: PathBuf,
        #[arg(long)]
        traces: PathBuf,
        /// Evaluation instants per trace.
        #[arg(long, default_value_t = 100)]
        points: usize,
    },
    /// Print the bundled synthetic demo trace (a seeded generator) as CSV.
    DemoTrace {
        #[arg(long, default_value_t = 7)]
        seed: u64,
        #[arg(long, default_value_t = 21)]
        days: u32,
    },
}

#[derive(Args)]
struct RunArgs {
    /// Prometheus' base URL.
    #[arg(long, env = "PROMETHEUS_URL")]
    prometheus_url: String,
    /// A file holding a bearer token for Prometheus (e.g. mounted from a Secret).
    #[arg(long, env = "PROMETHEUS_BEARER_TOKEN_FILE")]
    prometheus_bearer_token_file: Option<PathBuf>,
    /// A user name for basic auth to Prometheus.
    #[arg(
        long,
        env = "PROMETHEUS_USERNAME",
        requires = "prometheus_password_file"
    )]
    prometheus_username: Option<String>,
    /// A file holding the basic-auth password.
    #[arg(
        long,
        env = "PROMETHEUS_PASSWORD_FILE",
        requires = "prometheus_username"
    )]
    prometheus_password_file: Option<PathBuf>,
    /// A PEM CA bundle to trust for Prometheus' TLS certificate.
    #[arg(long, env = "PROMETHEUS_CA_FILE")]
    prometheus_ca_file: Option<PathBuf>,
    /// Timeout of each Prometheus request.
    #[arg(long, default_value = "10s")]
    prometheus_timeout: String,
    /// How often every PredictiveScaler is reconciled.
    #[arg(long, default_value = "30s")]
    sync_period: String,
    /// Reconciles (and Prometheus queries) in flight at once.
    #[arg(long, default_value_t = 8)]
    concurrency: u16,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8080")]
    listen: std::net::SocketAddr,
    /// Log format.
    #[arg(long, value_enum, default_value = "json")]
    log_format: prescaler::telemetry::LogFormat,
    /// Run without leader election (only with a single replica).
    #[arg(long)]
    no_leader_election: bool,
    /// Name of the Lease used for leader election.
    #[arg(long, default_value = "prescaler")]
    lease_name: String,
    /// Namespace of the Lease: the operator's own.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// This replica's identity in the Lease and in Events.
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
}

#[derive(Args)]
struct BacktestArgs {
    /// A `timestamp,value` CSV of the load (RFC 3339 UTC timestamps).
    #[arg(
        long,
        required_unless_present_any = ["scenarios", "prometheus"],
        conflicts_with_all = ["scenarios", "prometheus"]
    )]
    trace: Option<PathBuf>,
    /// Replay the spec's own query from this Prometheus instead of a trace file
    /// ("what would this spec have done last week?").
    #[arg(long, env = "PROMETHEUS_URL", conflicts_with = "scenarios")]
    prometheus: Option<String>,
    /// With --prometheus: how many days up to now to read (the last 7 are scored by default).
    #[arg(long, default_value_t = 21)]
    days: u32,
    /// A PredictiveScaler manifest whose spec to replay; flags below override it.
    #[arg(long, conflicts_with = "scaler")]
    spec: Option<PathBuf>,
    /// Replay the spec of this PredictiveScaler, read from the cluster (the current kubeconfig).
    #[arg(long)]
    scaler: Option<String>,
    /// The namespace of --scaler.
    #[arg(short = 'n', long, default_value = "default", requires = "scaler")]
    namespace: String,
    /// The load one replica carries (spec.metric.targetPerReplica).
    #[arg(long)]
    capacity: Option<f64>,
    /// spec.minReplicas.
    #[arg(long)]
    min: Option<i32>,
    /// spec.maxReplicas.
    #[arg(long)]
    max: Option<i32>,
    /// spec.forecast.leadTime (default: startup delay + metric lag, unless the spec sets it).
    #[arg(long)]
    lead_time: Option<String>,
    /// Time from asking for a replica until it is ready.
    #[arg(long, default_value = "5m")]
    startup_delay: String,
    /// Time from load happening to the metric showing it.
    #[arg(long, default_value = "1m")]
    metric_lag: String,
    /// First scored minute (default: 14 days after the trace starts).
    #[arg(long)]
    eval_start: Option<DateTime<Utc>>,
    /// Print the scores as JSON.
    #[arg(long)]
    json: bool,
    /// Write one row per minute (demand, needed, desired and ready per strategy) to this file.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Write a chart of load, forecast and replicas to this SVG file.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Start of the chart (default: the evaluation start).
    #[arg(long)]
    chart_from: Option<DateTime<Utc>>,
    /// Length of the chart.
    #[arg(long, default_value = "3d")]
    chart_span: String,
    /// Backtest every scenario of this CSV (see bench/SIMULATION.md) with the default spec.
    #[arg(long, requires = "traces")]
    scenarios: Option<PathBuf>,
    /// The folder the scenarios' traces are in.
    #[arg(long)]
    traces: Option<PathBuf>,
}

fn run_operator(args: RunArgs) -> Result<ExitCode> {
    use prescaler::controller::Settings;
    use prescaler::leader::LeaseSettings;
    use prescaler::source::PrometheusConfig;
    prescaler::telemetry::init_logging(args.log_format);
    let duration = |flag: &str, text: &str| -> Result<std::time::Duration> {
        prescaler::api::parse_duration(flag, text).map_err(|e| Error::Config {
            what: flag.into(),
            message: e.to_string(),
        })
    };
    let read = |path: &Path| -> Result<String> {
        std::fs::read_to_string(path)
            .map(|s| s.trim().to_string())
            .map_err(|e| Error::Io {
                context: format!("reading {}", path.display()),
                source: e,
            })
    };
    let mut prometheus = PrometheusConfig::new(&args.prometheus_url);
    prometheus.timeout = duration("--prometheus-timeout", &args.prometheus_timeout)?;
    prometheus.ca_file = args.prometheus_ca_file.clone();
    if let Some(path) = &args.prometheus_bearer_token_file {
        prometheus.bearer_token = Some(read(path)?);
    }
    if let (Some(user), Some(path)) = (&args.prometheus_username, &args.prometheus_password_file) {
        prometheus.basic_auth = Some((user.clone(), read(path)?));
    }
    let identity = args.identity.clone().unwrap_or_else(|| {
        std::env::var("HOSTNAME").unwrap_or_else(|_| format!("prescaler-{}", std::process::id()))
    });
    let settings = Settings {
        sync_period: duration("--sync-period", &args.sync_period)?,
        concurrency: args.concurrency,
        instance: identity.clone(),
        ..Settings::default()
    };
    let lease = (!args.no_leader_election).then(|| LeaseSettings {
        name: args.lease_name.clone(),
        namespace: args.lease_namespace.clone(),
        identity,
        duration: std::time::Duration::from_secs(15),
        retry: std::time::Duration::from_secs(4),
    });
    let runtime = tokio::runtime::Runtime::new().map_err(|e| Error::Io {
        context: "starting the async runtime".into(),
        source: e,
    })?;
    runtime.block_on(prescaler::operator::run(
        prescaler::operator::OperatorConfig {
            prometheus,
            settings,
            listen: args.listen,
            lease,
        },
    ))?;
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run_operator(*args),
        Command::Crd => print_crd(),
        #[cfg(feature = "mstl")]
        Command::ForecastEval {
            scenarios,
            traces,
            points,
        } => forecast_eval(&scenarios, &traces, points),
        Command::DemoTrace { seed, days } => {
            print!("{}", prescaler::demo::trace_csv(seed, days));
            Ok(ExitCode::SUCCESS)
        }
        Command::Backtest(args) => match &args.scenarios {
            Some(file) => run_scenarios(&args, file),
            None => run_backtest(&args),
        },
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn print_crd() -> Result<ExitCode> {
    let yaml = serde_yaml_ng::to_string(&PredictiveScaler::crd()).map_err(|e| Error::Parse {
        context: "serializing the CRD".into(),
        message: e.to_string(),
    })?;
    print!("{yaml}");
    Ok(ExitCode::SUCCESS)
}

fn minutes(flag: &str, text: &str) -> Result<usize> {
    Ok((prescaler::api::parse_duration(flag, text)?.as_secs() / 60) as usize)
}

/// The spec to replay: the manifest's (if any), with the flags applied on top.
/// The spec given with --spec (a file) or --scaler (from the cluster), if any.
fn backtest_manifest(args: &BacktestArgs) -> Result<Option<PredictiveScalerSpec>> {
    if let Some(path) = &args.spec {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            context: format!("reading {}", path.display()),
            source,
        })?;
        let scaler: PredictiveScaler =
            serde_yaml_ng::from_str(&text).map_err(|e| Error::Parse {
                context: format!("{} is not a PredictiveScaler manifest", path.display()),
                message: e.to_string(),
            })?;
        return Ok(Some(scaler.spec));
    }
    let Some(name) = &args.scaler else {
        return Ok(None);
    };
    let namespace = args.namespace.clone();
    let name = name.clone();
    block_on(async move {
        let client = kube::Client::try_default()
            .await
            .map_err(|e| Error::Config {
                what: "Kubernetes client".into(),
                message: e.to_string(),
            })?;
        let api: kube::Api<PredictiveScaler> = kube::Api::namespaced(client, &namespace);
        let scaler = api.get(&name).await.map_err(|e| Error::Config {
            what: format!("PredictiveScaler {namespace}/{name}"),
            message: e.to_string(),
        })?;
        Ok(Some(scaler.spec))
    })
}

/// The last `days` of `query` at one-minute steps, as a trace.
fn prometheus_trace(url: &str, query: &str, days: u32) -> Result<Trace> {
    use prescaler::source::{Prometheus, PrometheusConfig};
    let prometheus = Prometheus::new(&PrometheusConfig::new(url))?;
    let owned = query.to_string();
    let samples = block_on(async move {
        let end = Utc::now();
        prometheus
            .range(
                &owned,
                end - chrono::Duration::days(days as i64),
                end,
                chrono::Duration::minutes(1),
            )
            .await
    })?;
    if samples.len() < 2 {
        return Err(Error::Source {
            query: query.into(),
            message: format!(
                "{url} returned {} samples over {days} days; nothing to replay",
                samples.len()
            ),
        });
    }
    Ok(Trace::from_samples(&samples))
}

fn block_on<T>(future: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Io {
            context: "starting the async runtime".into(),
            source: e,
        })?
        .block_on(future)
}

fn backtest_spec(
    args: &BacktestArgs,
    manifest: Option<PredictiveScalerSpec>,
    lead_default: usize,
) -> Result<PredictiveScalerSpec> {
    let mut spec = match manifest {
        Some(spec) => spec,
        None => {
            let capacity = args.capacity.ok_or_else(|| Error::InvalidSpec {
                field: "--capacity".into(),
                message: "is needed without --spec: the load one replica carries".into(),
            })?;
            let mut spec = backtest::default_spec(capacity);
            spec.forecast.lead_time = format!("{lead_default}m");
            spec
        }
    };
    if let Some(c) = args.capacity {
        spec.metric.target_per_replica = c;
    }
    if let Some(m) = args.min {
        spec.min_replicas = m;
    }
    if let Some(m) = args.max {
        spec.max_replicas = m;
    }
    if let Some(l) = &args.lead_time {
        spec.forecast.lead_time = l.clone();
    }
    Ok(spec)
}

fn run_backtest(args: &BacktestArgs) -> Result<ExitCode> {
    let manifest = backtest_manifest(args)?;
    let (trace, source) = match (&args.trace, &args.prometheus) {
        (Some(path), _) => (Trace::load(path)?, path.display().to_string()),
        (None, Some(url)) => {
            let manifest = manifest.as_ref().ok_or_else(|| Error::InvalidSpec {
                field: "--prometheus".into(),
                message: "needs --spec or --scaler: the spec's metric.query is what is replayed"
                    .into(),
            })?;
            let query = &manifest.metric.query;
            (
                prometheus_trace(url, query, args.days)?,
                format!("{url} {query:?}"),
            )
        }
        (None, None) => unreachable!("clap requires --trace or --prometheus without --scenarios"),
    };
    let path = Path::new(&source);
    let setup = Setup {
        startup_delay: minutes("--startup-delay", &args.startup_delay)?,
        metric_lag: minutes("--metric-lag", &args.metric_lag)?,
        eval_start: args
            .eval_start
            .unwrap_or_else(|| scenarios::default_eval_start(trace.start)),
    };
    let spec = backtest_spec(args, manifest, setup.startup_delay + setup.metric_lag)?.validate()?;
    let outcome = backtest::run_all(&trace, &setup, &spec, &ModelConfig::default());
    if args.json {
        let json = serde_json::json!({
            "trace": path.display().to_string(),
            "evalStart": setup.eval_start,
            "scores": outcome.scores,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&json).expect("scores serialize")
        );
    } else {
        println!(
            "{}: {} minutes, scored from {} (prescaler's replay took {:.2} s)",
            path.display(),
            trace.minutes(),
            setup.eval_start.format("%Y-%m-%d %H:%M"),
            outcome.prescaler_seconds
        );
        print!("{}", report::table(&outcome.scores));
    }
    if let Some(csv) = &args.csv {
        let file = std::fs::File::create(csv).map_err(|source| Error::Io {
            context: format!("creating {}", csv.display()),
            source,
        })?;
        report::write_csv(
            std::io::BufWriter::new(file),
            &trace,
            setup.startup_delay,
            &outcome,
        )
        .map_err(|source| Error::Io {
            context: format!("writing {}", csv.display()),
            source,
        })?;
    }
    if let Some(svg) = &args.svg {
        let from = args.chart_from.unwrap_or(setup.eval_start);
        let from = ((from - trace.start).num_minutes().max(0)) as usize;
        let span = minutes("--chart-span", &args.chart_span)?;
        chart::write_svg(
            svg,
            &trace,
            &outcome,
            spec.target_per_replica,
            setup.startup_delay,
            from,
            from + span,
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The benchmark: the default spec on every scenario, against the HPA at 80 % and the oracle,
/// with the bar (violation minutes ≤ HPA@80 %'s and cost ≤ 0.90 × HPA@80 %'s) checked per trace.
fn run_scenarios(args: &BacktestArgs, file: &Path) -> Result<ExitCode> {
    let dir = args.traces.as_ref().expect("clap requires --traces");
    let list = scenarios::load(file, dir)?;
    let mut results = Vec::new();
    let mut all_met = true;
    if !args.json {
        println!(
            "{:<34} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>6}",
            "trace", "viol.min", "hpa80", "hpa100", "cost", "/hpa80", "/oracle", "secs*", "bar"
        );
    }
    for sc in &list {
        let trace = Trace::load(&sc.trace)?;
        let setup = Setup {
            startup_delay: sc.startup_delay_min,
            metric_lag: sc.metric_lag_min,
            eval_start: sc
                .eval_start
                .unwrap_or_else(|| scenarios::default_eval_start(trace.start)),
        };
        let mut spec = backtest::default_spec(sc.capacity);
        spec.min_replicas = sc.min_replicas as i32;
        spec.max_replicas = sc.max_replicas as i32;
        spec.forecast.lead_time = format!("{}m", sc.startup_delay_min + sc.metric_lag_min);
        let spec = spec.validate()?;
        let outcome = backtest::run_all(&trace, &setup, &spec, &ModelConfig::default());
        let secs = outcome.prescaler_seconds;
        let get = |name: &str| {
            outcome
                .scores
                .iter()
                .find(|s| s.strategy == name)
                .expect("every strategy runs")
        };
        let (p, h80, h100) = (get("prescaler"), get("hpa80"), get("hpa100"));
        let met = p.violation_minutes <= h80.violation_minutes && p.cost <= 0.90 * h80.cost;
        all_met &= met;
        let name = sc
            .trace
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if !args.json {
            println!(
                "{:<34} {:>9} {:>9} {:>9} {:>9.0} {:>9.3} {:>9.3} {:>8.2} {:>6}",
                name,
                p.violation_minutes,
                h80.violation_minutes,
                h100.violation_minutes,
                p.cost,
                p.cost / h80.cost,
                p.cost_vs_oracle,
                secs,
                if met { "met" } else { "MISSED" }
            );
        }
        results.push(serde_json::json!({ "trace": name, "seconds": secs, "barMet": met, "scores": outcome.scores }));
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&results).expect("scores serialize")
        );
    } else {
        println!(
            "viol.min: prescaler's violation minutes; hpa80, hpa100: the HPA's at those targets; cost: prescaler's replica-hours"
        );
        println!("secs*: wall-clock time of prescaler's replay alone");
        println!(
            "bar (violation minutes ≤ hpa80 and cost ≤ 0.90 × hpa80) met on every trace: {all_met}"
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "mstl")]
fn forecast_eval(file: &Path, dir: &Path, points: usize) -> Result<ExitCode> {
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
        for m in prescaler::forecast_eval::evaluate(&trace, eval_from, points) {
            println!(
                "{:<34} {:<26} {:>8.2} {:>10.3} {:>6}",
                name, m.method, m.mape_percent, m.millis_per_forecast, m.forecasts
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
