//! The `prescaler` command: `run` is the operator, `crd` prints the CustomResourceDefinition,
//! `backtest` replays a load through the planner and scores it. Parsing and dispatch only; what
//! each command does lives in the library.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Duration, Utc};
use clap::parser::ValueSource;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use prescaler::api::{PredictiveScaler, PredictiveScalerSpec, ValidatedSpec};
use prescaler::backtest::manifest::{self, Overrides};
use prescaler::backtest::trace::Trace;
use prescaler::backtest::{self, Outcome, Setup, chart, report};
use prescaler::cli::{
    self, ConfineArgs, HistoryPrometheusArgs, KubeconfigArgs, PrometheusArgs, duration, print,
    std_duration,
};
use prescaler::operator::controller::{
    DEFAULT_MAX_SCALERS_PER_NAMESPACE, DEFAULT_SAVINGS_HPA_TARGET_UTILIZATION, Settings,
};
use prescaler::operator::{self, OperatorConfig, leader::LeaseSettings, telemetry::LogFormat};
use prescaler::planning::forecast::ModelConfig;
use prescaler::{Error, Result};

#[derive(Parser)]
#[command(
    name = "prescaler",
    version,
    about = "Scales Kubernetes workloads ahead of their load",
    after_help = cli::EXIT_CODES
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
    /// Replay a load trace through prescaler, the HPA and perfect foresight, and score them.
    Backtest(Box<BacktestArgs>),
    /// Give back every floor prescaler holds (HPAs' minReplicas, KEDA ScaledObjects'
    /// minReplicaCount) and remove its finalizers: what the chart's pre-delete hook runs on
    /// uninstall.
    GiveBack(GiveBackArgs),
}

#[derive(Args)]
struct GiveBackArgs {
    /// The operator's Deployment (in --lease-namespace), scaled to 0 first.
    #[arg(long)]
    stop_deployment: Option<String>,
    /// The operator's Lease: taken, as one more candidate, before anything is given back, so
    /// that no operator replica sets a floor again meanwhile.
    #[arg(long, default_value = "prescaler")]
    lease_name: String,
    /// Namespace of the operator's Lease (and Deployment).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// Give back without taking the Lease: only when no operator runs.
    #[arg(long)]
    no_leader_election: bool,
    /// How long to wait for the operator to stop and its Lease to be free.
    #[arg(long, default_value = "2m", value_parser = std_duration)]
    wait: std::time::Duration,
    /// The operator's election durations: a Lease is taken only a lease duration after it last
    /// changed, as the operator's own replicas take it.
    #[command(flatten)]
    election: ElectionArgs,
    /// The cluster, as kubectl reaches it (default: $KUBECONFIG or ~/.kube/config, else the
    /// in-cluster service account, which the chart's hook runs with).
    #[command(flatten)]
    kube: KubeconfigArgs,
}

/// client-go's three durations, named as kube-controller-manager names them.
#[derive(Args)]
struct ElectionArgs {
    /// How long a replica waits after a Lease last changed before taking it over.
    #[arg(long, default_value = "15s", value_parser = std_duration)]
    leader_elect_lease_duration: std::time::Duration,
    /// How long a holder keeps trying to renew before it stops writing; shorter than the lease
    /// duration.
    #[arg(long, default_value = "10s", value_parser = std_duration)]
    leader_elect_renew_deadline: std::time::Duration,
    /// How often a holder renews and a candidate tries; shorter than the renew deadline.
    #[arg(long, default_value = "2s", value_parser = std_duration)]
    leader_elect_retry_period: std::time::Duration,
}

impl ElectionArgs {
    /// The Lease settings, once the durations are known to be in client-go's order.
    fn lease(&self, name: String, namespace: String, identity: String) -> Result<LeaseSettings> {
        let (lease, renew, retry) = (
            self.leader_elect_lease_duration,
            self.leader_elect_renew_deadline,
            self.leader_elect_retry_period,
        );
        if !(retry < renew && renew < lease) || retry.is_zero() || lease.as_secs() > 600 {
            return Err(Error::Config {
                what: "leader election".into(),
                message: format!(
                    "need 0 < --leader-elect-retry-period ({retry:?}) < --leader-elect-renew-deadline ({renew:?}) < --leader-elect-lease-duration ({lease:?}) <= 10m, as client-go does"
                ),
            });
        }
        let mut settings = LeaseSettings::new(name, namespace, identity);
        settings.lease_duration = lease;
        settings.renew_deadline = renew;
        settings.retry = retry;
        Ok(settings)
    }
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    prometheus: PrometheusArgs,
    /// Timeout of each Prometheus request.
    #[arg(long, default_value = "10s", value_parser = std_duration)]
    prometheus_timeout: std::time::Duration,
    #[command(flatten)]
    history: HistoryPrometheusArgs,
    /// How often every PredictiveScaler is reconciled.
    #[arg(long, default_value = "30s", value_parser = std_duration)]
    sync_period: std::time::Duration,
    /// Reconciles (and Prometheus queries) in flight at once, shared fairly among namespaces.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    concurrency: u16,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8080")]
    listen: std::net::SocketAddr,
    /// Log format.
    #[arg(long, value_enum, default_value = "json")]
    log_format: LogFormat,
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
    /// Split the PredictiveScalers into this many shards (a stable hash of namespace/name), a
    /// Lease each (<--lease-name>-shard-<i>): each replica reconciles and writes only the
    /// scalers of the shards it holds, and takes over a stopped replica's shards. 1: one leader
    /// for all. Needs leader election.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=operator::shards::MAX_SHARDS as i64))]
    shards: u32,
    #[command(flatten)]
    election: ElectionArgs,
    #[command(flatten)]
    confine: ConfineArgs,
    /// KEDA support: for a target whose HPA a KEDA ScaledObject manages, hold the floor on the
    /// ScaledObject's minReplicaCount (KEDA rewrites its HPA on every sync). Needs get, list and
    /// patch on scaledobjects.keda.sh (the chart's keda.enabled). Off, such targets are refused.
    #[arg(long, env = "PRESCALER_KEDA")]
    keda: bool,
    /// The most PredictiveScalers acted on in one namespace, the oldest first; the newer ones
    /// are refused (`TooManyScalers`) and cost no history. Each scaler keeps its metric's history
    /// in memory (about a third of a MiB): this keeps one tenant from running the operator out of
    /// memory for all. 0: no limit.
    #[arg(long, default_value_t = DEFAULT_MAX_SCALERS_PER_NAMESPACE as u32, value_parser = clap::value_parser!(u32).range(0..=100_000))]
    max_scalers_per_namespace: u32,
    /// How often a status whose only changes are figures (the forecast load, the calibration,
    /// the plan's steps, condition messages) is written per scaler; a change of replicas,
    /// reason, schedule, a condition's status or reason, or the plan's next peak is written at
    /// once. 0s: every change at once (about a write a minute per scaler).
    #[arg(long, default_value = "5m", value_parser = refresh_duration)]
    status_refresh: std::time::Duration,
    /// The target utilization (%, of targetPerReplica) of the HPA each scaler is compared with
    /// on the live metric (status.savings, prescaler_replica_seconds_total{strategy="hpa"}): a
    /// model estimate, run as `prescaler backtest` scores its hpa80 row.
    #[arg(long, default_value_t = DEFAULT_SAVINGS_HPA_TARGET_UTILIZATION, value_parser = clap::value_parser!(u8).range(10..=100))]
    savings_hpa_target_utilization: u8,
}

/// A duration flag where zero (`0`, `0s`, `0m`) means no wait: the spec's durations refuse it.
fn refresh_duration(text: &str) -> std::result::Result<std::time::Duration, String> {
    let unit = text.trim_start_matches('0');
    if text.starts_with('0') && unit.chars().all(|c| c.is_ascii_alphabetic()) {
        return Ok(std::time::Duration::ZERO);
    }
    std_duration(text)
}

#[derive(Args)]
struct BacktestArgs {
    /// A `timestamp,value` CSV of the load (RFC 3339 UTC timestamps). PROMETHEUS_URL in the
    /// environment does not count against it: --trace replays the file.
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// Replay the spec's own query from Prometheus instead of a trace file ("what would this
    /// spec have done last week?"): --prometheus-url and its credentials, as `prescaler run`
    /// takes them.
    #[command(flatten)]
    prometheus: PrometheusArgs,
    /// Timeout of each Prometheus request.
    #[arg(long, default_value = "30s", value_parser = std_duration)]
    prometheus_timeout: std::time::Duration,
    /// With --prometheus-url: a long-term store beside Prometheus for the older weeks (Thanos
    /// Query, Mimir, VictoriaMetrics), read as `prescaler run` reads it, so that a replay of 28
    /// days works when Prometheus keeps 15: --history-prometheus-url and its credentials.
    #[command(flatten)]
    history: HistoryPrometheusArgs,
    /// With --prometheus-url: each metric's query confined to the scaler's namespace
    /// (metadata.namespace) as `prescaler run --confine-queries-to-namespace` confines it.
    #[command(flatten)]
    confine: ConfineArgs,
    /// With --prometheus-url: how much history up to now to read (the last 7 days are scored unless
    /// --eval-start says otherwise).
    #[arg(long, default_value = "21d", value_parser = duration)]
    range: Duration,
    /// A PredictiveScaler manifest whose spec to replay; the flags below override it.
    #[arg(long, conflicts_with = "scaler")]
    spec: Option<PathBuf>,
    /// A file of ConfigMap manifests holding the `.ics` files the spec's
    /// `calendar.configMapRefs` name (repeatable; the --spec file's own ConfigMaps are read too).
    #[arg(long, value_name = "FILE")]
    calendar_file: Vec<PathBuf>,
    /// Replay the spec of this PredictiveScaler, read from the cluster (as kubectl reads it:
    /// --kubeconfig, --context, -n).
    #[arg(long, value_name = "NAME")]
    scaler: Option<String>,
    /// The namespace of --scaler (default: the kubeconfig context's, else `default`).
    #[arg(short = 'n', long, requires = "scaler")]
    namespace: Option<String>,
    #[command(flatten)]
    kube: KubeconfigArgs,
    /// The load one replica carries (spec.metric.targetPerReplica).
    #[arg(long, alias = "capacity")]
    target_per_replica: Option<f64>,
    /// spec.minReplicas.
    #[arg(long)]
    min: Option<i32>,
    /// spec.maxReplicas (default without a spec: 1000).
    #[arg(long)]
    max: Option<i32>,
    /// spec.forecast.leadTime (default without a spec: start-up delay + metric lag; a spec's
    /// `leadTime: Auto` is replayed as the same, rounded up to a minute).
    #[arg(long, value_parser = duration)]
    lead_time: Option<Duration>,
    /// spec.objective.maxUnderprovisionedPercent: the share (%) of minutes that may be short of
    /// replicas.
    #[arg(long)]
    objective: Option<f64>,
    /// Time from asking for a replica until it is ready (the pods' start-up that a spec's
    /// `leadTime: Auto` learns).
    #[arg(long, default_value = "5m", value_parser = duration)]
    startup_delay: Duration,
    /// Time from load happening to the metric showing it.
    #[arg(long, default_value = "1m", value_parser = duration)]
    metric_lag: Duration,
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
    /// Start of the chart (default: the window centred on the steepest 10-minute rise of the
    /// load in the scored range — a spike, and how each strategy met it).
    #[arg(long)]
    chart_from: Option<DateTime<Utc>>,
    /// Length of the chart (`3d` shows the days' pattern, `2h` one spike minute by minute).
    #[arg(long, default_value = "2h", value_parser = duration)]
    chart_span: Duration,
}

fn main() -> ExitCode {
    // clap exits with 2 on a usage error, 0 for --help and --version.
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let result = match cli.command {
        Command::Run(args) => {
            if args.prometheus.url.is_none() {
                usage_error(
                    "run",
                    "--prometheus-url <URL> (or PROMETHEUS_URL) is required",
                );
            }
            run_operator(*args)
        }
        Command::Crd => print_crd(),
        Command::Backtest(mut args) => {
            let sub = matches
                .subcommand_matches("backtest")
                .expect("the backtest's matches");
            let url_from_env = sub.value_source("url") == Some(ValueSource::EnvVariable);
            match (args.trace.is_some(), args.prometheus.url.is_some()) {
                // PROMETHEUS_URL is set for `run` and the plugin; a trace named on the command
                // line is what the user asked to replay.
                (true, true) if url_from_env => args.prometheus.url = None,
                (true, true) => usage_error(
                    "backtest",
                    "--trace and --prometheus-url cannot be used together: replay a file or the spec's query",
                ),
                (false, false) => usage_error(
                    "backtest",
                    "--trace <FILE> or --prometheus-url <URL> (or PROMETHEUS_URL) is required",
                ),
                _ => {}
            }
            if args.trace.is_some() && args.history.url.is_some() {
                // As PROMETHEUS_URL: the environment's is `run`'s, the command line's a mistake.
                match sub.value_source("history_url") {
                    Some(ValueSource::EnvVariable) => args.history.url = None,
                    _ => usage_error(
                        "backtest",
                        "--trace and --history-prometheus-url cannot be used together: the long-term store is read with --prometheus-url",
                    ),
                }
            }
            run_backtest(&args)
        }
        Command::GiveBack(args) => give_back(args),
    };
    prescaler::exit_code(result, cli::FAILURE)
}

/// Ends with clap's usage error (exit code 2) for `prescaler <subcommand>`.
fn usage_error(subcommand: &str, message: &str) -> ! {
    let mut command = Cli::command();
    let mut sub = command
        .find_subcommand_mut(subcommand)
        .expect("a subcommand")
        .clone()
        .bin_name(format!("prescaler {subcommand}"));
    sub.error(clap::error::ErrorKind::MissingRequiredArgument, message)
        .exit()
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Io {
            context: "starting the async runtime".into(),
            source,
        })
}

fn run_operator(args: RunArgs) -> Result<()> {
    prescaler::operator::telemetry::init_logging(args.log_format);
    let prometheus = args.prometheus.config(args.prometheus_timeout)?;
    // Two replicas with one identity would both hold the Lease (each renews the other's), so
    // the last fallback is random too: a process id alone repeats across containers (pid 1).
    let identity = args.identity.unwrap_or_else(|| {
        std::env::var("HOSTNAME").unwrap_or_else(|_| {
            format!("prescaler-{}-{:08x}", std::process::id(), fastrand::u32(..))
        })
    });
    if args.no_leader_election && args.shards > 1 {
        return Err(Error::Config {
            what: "--shards".into(),
            message: "shards are held through Leases: --shards above 1 needs leader election (drop --no-leader-election)".into(),
        });
    }
    let lease = match args.no_leader_election {
        true => None,
        false => Some(args.election.lease(
            args.lease_name,
            args.lease_namespace,
            identity.clone(),
        )?),
    };
    let config = OperatorConfig {
        prometheus,
        long_term: args.history.config(),
        settings: Settings {
            sync_period: args.sync_period,
            concurrency: args.concurrency,
            instance: identity,
            namespace_label: args.confine.label().map(str::to_string),
            keda: args.keda,
            max_scalers_per_namespace: NonZeroUsize::new(args.max_scalers_per_namespace as usize),
            status_refresh: args.status_refresh,
            long_term_history: args.history.url.is_some(),
            savings_hpa_target_utilization: args.savings_hpa_target_utilization,
            ..Settings::default()
        },
        listen: args.listen,
        lease,
        shards: args.shards,
    };
    runtime()?.block_on(operator::run(config))
}

fn give_back(args: GiveBackArgs) -> Result<()> {
    prescaler::operator::telemetry::init_logging(LogFormat::Text);
    let lease = args.election.lease(
        args.lease_name,
        args.lease_namespace,
        format!("prescaler-give-back-{}", std::process::id()),
    )?;
    let stop = (!args.no_leader_election).then_some(operator::give_back::StopOperator {
        deployment: args.stop_deployment,
        lease,
        wait: args.wait,
    });
    let summary = runtime()?.block_on(async {
        let (client, _, address) = cli::kube_client(&args.kube).await?;
        operator::give_back::give_back_everything(&client, stop)
            .await
            .map_err(|e| cli::name_the_server(e, &address))
    })?;
    let mut out = String::new();
    for r in &summary.sweep.released {
        out += &format!(
            "gave back {}/{}: {} {}\n",
            r.namespace,
            r.object,
            r.object.field(),
            r.restored
        );
        if let Some(kept) = &r.refused {
            out += &format!(
                "  (its current value, clamped: the kept own value {kept:?} is no value it may hold)\n"
            );
        }
    }
    for name in &summary.finalizers {
        out += &format!("removed prescaler's finalizer from PredictiveScaler {name}\n");
    }
    out += &format!(
        "{} floors given back, {} finalizers removed\n",
        summary.sweep.released.len(),
        summary.finalizers.len()
    );
    print(&out)?;
    // Everything that could be given back was; what could not is named, and the exit is a
    // failure (the uninstall hook's Job fails loudly rather than leaving a floor raised quietly).
    let problems = summary.problems();
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::Config {
        what: "giving back".into(),
        message: format!(
            "{} not given back; fix or remove it and run this again:\n  {}",
            problems.len(),
            problems.join("\n  ")
        ),
    })
}

fn print_crd() -> Result<()> {
    print(&prescaler::api::crd_yaml())
}

fn run_backtest(args: &BacktestArgs) -> Result<()> {
    let scaler = backtest_scaler(args)?;
    let warnings = scaler.as_ref().map(manifest::warnings).unwrap_or_default();
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    let spec = backtest_spec(args, scaler.as_ref())?;
    let mut validated = spec.validate()?;

    let (traces, name) = backtest_traces(args, scaler.as_ref(), &validated)?;
    let trace = &traces[0];
    if let Some(scaler) = &scaler {
        // The .ics files over the trace's span, and a day after it (a floor ahead of its end).
        let from = trace.start;
        let to = trace.start + Duration::minutes(trace.minutes() as i64) + Duration::days(1);
        validated = backtest::calendar_files::apply(
            scaler,
            validated,
            &calendar_manifests(args)?,
            from,
            to,
        )?;
    }
    let mut setup = match args.trace {
        Some(_) => Setup::for_trace(trace),
        None => Setup::for_recent(trace, args.range),
    };
    setup.startup_delay = args.startup_delay;
    setup.metric_lag = args.metric_lag;
    if let Some(t) = args.eval_start {
        setup.eval_start = t;
    }
    if let Some(note) = backtest::resolve_auto_lead_time(&mut validated, &setup) {
        eprintln!("note: {note}");
    }
    // Several metrics are scored in replicas (`run_all_metrics`): the report shows that series.
    let (trace, validated, outcome) =
        backtest::run_all_metrics(&name, traces, &setup, &validated, &ModelConfig::default())?;

    if args.json {
        let json = report::JsonReport::new(&trace, &setup, &outcome, &warnings);
        let text = serde_json::to_string_pretty(&json).expect("a report serializes");
        print(&(text + "\n"))?;
    } else {
        print(&format!(
            "{}: {} minutes, scored from {} ({} minutes scored)\n{}",
            trace.name,
            trace.minutes(),
            setup.eval_start.format("%Y-%m-%d %H:%M UTC"),
            outcome.scores[0].scored_minutes,
            report::table(&outcome)
        ))?;
    }
    if let Some(path) = &args.csv {
        write_csv(path, &trace, &setup, &outcome)?;
    }
    if let Some(path) = &args.svg {
        write_chart(args, path, &trace, &setup, &outcome, &validated)?;
    }
    Ok(())
}

/// The files a backtest looks for calendar ConfigMaps in: the --spec file, then each
/// --calendar-file.
fn calendar_manifests(args: &BacktestArgs) -> Result<Vec<(String, String)>> {
    args.spec
        .iter()
        .chain(&args.calendar_file)
        .map(|path| {
            let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
                context: format!("reading {}", path.display()),
                source,
            })?;
            Ok((path.display().to_string(), text))
        })
        .collect()
}

/// The manifest a backtest replays: from a file, from the cluster, or none (the defaults).
fn backtest_scaler(args: &BacktestArgs) -> Result<Option<PredictiveScaler>> {
    Ok(match (&args.spec, &args.scaler) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
                context: format!("reading {}", path.display()),
                source,
            })?;
            Some(manifest::parse(&path.display().to_string(), &text)?)
        }
        (None, Some(name)) => Some(runtime()?.block_on(async {
            let (client, namespace, address) = cli::kube_client(&args.kube).await?;
            let namespace = args.namespace.clone().unwrap_or(namespace);
            prescaler::adapters::kubernetes::get_predictive_scaler(&client, &namespace, name)
                .await
                .map_err(|e| cli::name_the_server(e.into(), &address))
        })?),
        (None, None) => None,
    })
}

/// The spec a backtest replays: the manifest's, else the defaults for --target-per-replica,
/// with the flags' overrides.
fn backtest_spec(
    args: &BacktestArgs,
    scaler: Option<&PredictiveScaler>,
) -> Result<PredictiveScalerSpec> {
    if let (Some(_), Some(s)) = (args.target_per_replica, scaler)
        && !s.spec.metrics.is_empty()
    {
        return Err(Error::InvalidSpec {
            field: "--target-per-replica".into(),
            message: "sets spec.metric's load per replica; this spec has spec.metrics: edit each \
                      metric's targetPerReplica in the manifest"
                .into(),
        });
    }
    let mut spec = match scaler {
        Some(s) => s.spec.clone(),
        None => {
            let c = args.target_per_replica.ok_or_else(|| Error::InvalidSpec {
                field: "--target-per-replica".into(),
                message: "is needed without --spec or --scaler: the load one replica carries"
                    .into(),
            })?;
            let mut spec = PredictiveScalerSpec::new(c, 1000);
            spec.forecast.lead_time =
                prescaler::api::format_duration(args.startup_delay + args.metric_lag)
                    .as_str()
                    .into();
            spec
        }
    };
    Overrides {
        target_per_replica: args.target_per_replica,
        min_replicas: args.min,
        max_replicas: args.max,
        lead_time: args.lead_time,
        max_underprovisioned_percent: args.objective,
    }
    .apply(&mut spec);
    Ok(spec)
}

/// The loads a backtest replays, one per metric of the spec (`spec.metrics`, or `spec.metric`
/// alone), and the name the report gives them: the trace file's columns
/// (`Trace::parse_columns`), else every metric's query read from Prometheus (and the long-term
/// store beside it), with a note on standard error when less history came back than `--range`
/// asks for.
fn backtest_traces(
    args: &BacktestArgs,
    scaler: Option<&PredictiveScaler>,
    spec: &ValidatedSpec,
) -> Result<(Vec<Trace>, String)> {
    if let Some(path) = &args.trace {
        let names: Vec<String> = spec.metrics.iter().map(|m| m.name.clone()).collect();
        return Ok((
            Trace::load_columns(path, &names)?,
            path.display().to_string(),
        ));
    }
    let Some(scaler) = scaler else {
        return Err(Error::InvalidSpec {
            field: "--prometheus-url".into(),
            message: "needs --spec or --scaler: the spec's metric.query is what is replayed".into(),
        });
    };
    let namespace = scaler.metadata.namespace.as_deref();
    let confine = match (args.confine.label(), namespace) {
        (Some(label), Some(namespace)) => Some((label, namespace)),
        (Some(_), None) => {
            return Err(Error::InvalidSpec {
                field: "--confine-queries-to-namespace".into(),
                message: "confines the queries to the scaler's namespace, and the manifest names \
                          none: set its metadata.namespace"
                    .into(),
            });
        }
        (None, _) => None,
    };
    let queries = backtest::trace::metric_queries(spec, !scaler.spec.metrics.is_empty(), confine)?;
    let source = cli::load_source(&args.prometheus, args.prometheus_timeout, &args.history)?;
    let read = runtime()?.block_on(backtest::trace::metrics_from_prometheus(
        &*source,
        &queries,
        args.range,
        &spec.seasonality,
        Utc::now(),
    ))?;
    if let Some(note) = &read.note {
        eprintln!("note: {note}");
    }
    let name = match read.traces.as_slice() {
        [one] => one.name.clone(),
        _ => backtest::trace::metrics_name(&queries),
    };
    Ok((read.traces, name))
}

/// `--csv`: one row a minute.
fn write_csv(
    path: &std::path::Path,
    trace: &Trace,
    setup: &Setup,
    outcome: &Outcome,
) -> Result<()> {
    let file = std::fs::File::create(path).map_err(|source| Error::Io {
        context: format!("creating {}", path.display()),
        source,
    })?;
    report::write_csv(
        std::io::BufWriter::new(file),
        trace,
        setup.delay_minutes(),
        outcome,
    )
    .map_err(|source| Error::Csv {
        context: format!("writing {}", path.display()),
        source,
    })?;
    eprintln!("wrote {} (one row a minute)", path.display());
    Ok(())
}

/// `--svg`: the chart, around the steepest rise of the scored range unless --chart-from says.
fn write_chart(
    args: &BacktestArgs,
    path: &std::path::Path,
    trace: &Trace,
    setup: &Setup,
    outcome: &Outcome,
    spec: &ValidatedSpec,
) -> Result<()> {
    let span = args.chart_span.num_minutes().max(1) as usize;
    let from = match args.chart_from {
        Some(t) => (t - trace.start).num_minutes().max(0) as usize,
        None => {
            let scored = (setup.eval_start - trace.start).num_minutes().max(0) as usize;
            chart::around_steepest_rise(&trace.demand, scored, span)
        }
    };
    chart::write_svg(
        path,
        trace,
        outcome,
        spec,
        setup.delay_minutes(),
        chart::Span {
            from,
            to: from + span,
        },
    )?;
    eprintln!(
        "wrote {} ({} from {})",
        path.display(),
        prescaler::api::format_duration(args.chart_span),
        trace
            .time(from.min(trace.minutes() - 1))
            .format("%Y-%m-%d %H:%M UTC")
    );
    Ok(())
}
