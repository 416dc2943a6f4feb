//! `kubectl prescaler`: a kubectl plugin (kubectl runs any `kubectl-prescaler` on the PATH).
//! Flag parsing, the clients and printing only; what each command does is `prescaler::plugin`.

use std::process::ExitCode;

use chrono::{DateTime, Duration, Utc};
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use std::sync::Arc;

use prescaler::adapters::history::LoadSource;
use prescaler::backtest::report;
use prescaler::cli::{
    self, ConfineArgs, HistoryPrometheusArgs, KubeconfigArgs, PrometheusArgs, duration, print,
    std_duration,
};
use prescaler::plugin::{self, render};
use prescaler::{Error, Result};

#[derive(Parser)]
#[command(
    name = "kubectl prescaler",
    bin_name = "kubectl prescaler",
    version,
    about = "See what a PredictiveScaler will do, and why it did what it did",
    after_help = cli::EXIT_CODES
)]
struct Cli {
    #[command(flatten)]
    kube: KubeArgs,
    #[command(subcommand)]
    command: Command,
}

/// The kubectl conventions.
#[derive(Args)]
struct KubeArgs {
    /// The namespace (default: the kubeconfig context's, else `default`).
    #[arg(short = 'n', long, global = true)]
    namespace: Option<String>,
    #[command(flatten)]
    kubeconfig: KubeconfigArgs,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "table", global = true)]
    output: Output,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Table,
    Json,
    Yaml,
}

/// How to reach Prometheus, and the long-term store beside it (the same client, flags and
/// credentials as the operator's).
#[derive(Args)]
struct PrometheusFlags {
    #[command(flatten)]
    prometheus: PrometheusArgs,
    /// Timeout of each Prometheus request.
    #[arg(long, default_value = "30s", value_parser = std_duration)]
    prometheus_timeout: std::time::Duration,
    /// A long-term store for the older weeks (Thanos Query, Mimir, VictoriaMetrics), read as
    /// the operator reads it: --history-prometheus-url and its credentials.
    #[command(flatten)]
    history: HistoryPrometheusArgs,
}

#[derive(Subcommand)]
enum Command {
    /// The replicas the scaler expects to ask for over the next 24 hours, every 15 minutes, and
    /// why (computed here with the operator's planner from the spec, the metric's history in
    /// Prometheus and the target's replicas).
    Plan(PlanArgs),
    /// The last decisions and their reasons: status, conditions and Events, newest first.
    Why(WhyArgs),
    /// Replay the last weeks of the scaler's metric through its spec, the HPA and perfect
    /// foresight, and score them (`prescaler backtest` on the cluster's spec).
    Backtest(BacktestArgs),
    /// What the scaler's decisions cost against an HPA on the same live metric over the last 7
    /// days, as the operator counted it (status.savings): a model estimate. Every scaler of the
    /// namespace without a NAME.
    Savings(SavingsArgs),
}

#[derive(Args)]
struct SavingsArgs {
    /// The PredictiveScaler (default: every one in the namespace).
    name: Option<String>,
}

#[derive(Args)]
struct PlanArgs {
    /// The PredictiveScaler.
    name: String,
    #[command(flatten)]
    prometheus: PrometheusFlags,
    #[command(flatten)]
    zone: ZoneArgs,
    /// Plan as of this instant (RFC 3339) instead of now: to reproduce a plan.
    #[arg(long)]
    now: Option<DateTime<Utc>>,
}

#[derive(Args)]
struct ZoneArgs {
    /// Show times in UTC (default: local time).
    #[arg(long, conflicts_with = "time_zone")]
    utc: bool,
    /// Show times in this IANA time zone, e.g. Europe/Berlin.
    #[arg(long)]
    time_zone: Option<chrono_tz::Tz>,
}

impl ZoneArgs {
    fn zone(&self) -> render::Zone {
        match (self.utc, self.time_zone) {
            (true, _) => render::Zone::Utc,
            (false, Some(tz)) => render::Zone::Named(tz),
            (false, None) => render::Zone::Local,
        }
    }
}

#[derive(Args)]
struct WhyArgs {
    /// The PredictiveScaler.
    name: String,
    /// How many Events to show.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=1000))]
    limit: u16,
    #[command(flatten)]
    zone: ZoneArgs,
}

#[derive(Args)]
struct BacktestArgs {
    /// The PredictiveScaler.
    name: String,
    #[command(flatten)]
    prometheus: PrometheusFlags,
    /// How much history up to now to replay, between 8d and 42d (the last 7 days are scored,
    /// what comes before warms the forecast up).
    #[arg(long, default_value = "21d", value_parser = backtest_range)]
    range: Duration,
    /// Each metric's query confined to the scaler's namespace, as the operator's
    /// --confine-queries-to-namespace confines it (the chart's
    /// tenancy.confineQueriesToNamespace).
    #[command(flatten)]
    confine: ConfineArgs,
}

/// A backtest's range: a week scored after at least a day of warm-up, and no more history than
/// a spec can learn from plus that week (a larger one is only a slower query).
fn backtest_range(text: &str) -> Result<Duration, String> {
    let d = duration(text)?;
    let (lo, hi) = (Duration::days(8), Duration::days(42));
    if d < lo || d > hi {
        return Err(format!("{text:?} must be between 8d and 42d"));
    }
    Ok(d)
}

fn main() -> ExitCode {
    // clap exits with 2 on a usage error, 0 for --help and --version.
    let cli = Cli::parse();
    let needs_prometheus = match &cli.command {
        Command::Plan(a) => Some((&a.prometheus, "plan")),
        Command::Backtest(a) => Some((&a.prometheus, "backtest")),
        Command::Why(_) | Command::Savings(_) => None,
    };
    if let Some((flags, sub)) = needs_prometheus
        && flags.prometheus.url.is_none()
    {
        let mut command = Cli::command();
        let mut sub = command
            .find_subcommand_mut(sub)
            .expect("a subcommand")
            .clone()
            .bin_name(format!("kubectl prescaler {sub}"));
        sub.error(
            clap::error::ErrorKind::MissingRequiredArgument,
            "--prometheus-url <URL> (or PROMETHEUS_URL) is required",
        )
        .exit();
    }
    prescaler::exit_code(run(cli), cli::FAILURE)
}

fn run(cli: Cli) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Io {
            context: "starting the async runtime".into(),
            source,
        })?;
    runtime.block_on(async {
        let (client, default_namespace, address) = cli::kube_client(&cli.kube.kubeconfig).await?;
        commands(&cli, client, default_namespace)
            .await
            .map_err(|e| cli::name_the_server(e, &address))
    })
}

async fn commands(cli: &Cli, client: kube::Client, default_namespace: String) -> Result<()> {
    let namespace = cli.kube.namespace.clone().unwrap_or(default_namespace);
    let output = cli.kube.output;
    match &cli.command {
        Command::Plan(args) => {
            let source = source(&args.prometheus)?;
            let now = args.now.unwrap_or_else(Utc::now);
            let report = plugin::plan(&client, &*source, &namespace, &args.name, now).await?;
            match output {
                Output::Table => print(&render::plan_table(&report, args.zone.zone())),
                _ => structured(output, &report.document()),
            }
        }
        Command::Savings(args) => {
            let rows = plugin::savings(&client, &namespace, args.name.as_deref()).await?;
            match output {
                Output::Table => print(&render::savings_table(&rows)),
                _ => structured(output, &rows),
            }
        }
        Command::Why(args) => {
            let report = plugin::why(&client, &namespace, &args.name, args.limit.into()).await?;
            match output {
                Output::Table => print(&render::why_text(&report, args.zone.zone())),
                _ => structured(output, &report),
            }
        }
        Command::Backtest(args) => {
            let source = source(&args.prometheus)?;
            let r = plugin::backtest_confined(
                &client,
                &*source,
                &namespace,
                &args.name,
                args.range,
                Utc::now(),
                args.confine.label(),
            )
            .await?;
            for w in &r.warnings {
                eprintln!("warning: {w}");
            }
            for n in &r.notes {
                eprintln!("note: {n}");
            }
            match output {
                Output::Table => print(&format!(
                    "{}: {} minutes, scored from {} ({} minutes scored)\n{}",
                    r.trace.name,
                    r.trace.minutes(),
                    r.setup.eval_start.format("%Y-%m-%d %H:%M UTC"),
                    r.outcome.scores[0].scored_minutes,
                    report::table(&r.outcome)
                )),
                _ => structured(
                    output,
                    &report::JsonReport::new(&r.trace, &r.setup, &r.outcome, &r.warnings),
                ),
            }
        }
    }
}

fn source(flags: &PrometheusFlags) -> Result<Arc<dyn LoadSource>> {
    cli::load_source(&flags.prometheus, flags.prometheus_timeout, &flags.history)
}

fn structured(output: Output, value: &impl serde::Serialize) -> Result<()> {
    let text = match output {
        Output::Yaml => serde_yaml_ng::to_string(value).expect("a report serializes"),
        _ => serde_json::to_string_pretty(value).expect("a report serializes") + "\n",
    };
    print(&text)
}
