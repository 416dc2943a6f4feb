//! What the two commands, `prescaler` and `kubectl prescaler`, share on their command lines: the
//! Prometheus flags (one name each, with the credentials the operator takes), the kubeconfig
//! flags as kubectl spells them, the duration flags, printing to standard output, and the exit
//! codes. Parsing with clap; nothing here runs.

use std::path::PathBuf;

use kube::config::{KubeConfigOptions, Kubeconfig};

use std::sync::Arc;

use crate::adapters::history::LoadSource;
use crate::adapters::long_term;
use crate::adapters::prometheus::{
    DEFAULT_MAX_RESPONSE_BYTES, PrometheusConfig, Role, response_bytes, tenant,
};
use crate::{Error, Result};

/// The exit codes of both commands.
pub const EXIT_CODES: &str = "Exit codes: 0 success; 1 an error (a file, spec, trace or \
PredictiveScaler that cannot be used, the cluster or Prometheus unreachable), with a message on \
standard error; 2 a usage error (a bad flag or argument).";

/// An error (exit code 1); a usage error exits with 2 (clap's own code).
pub const FAILURE: u8 = 1;

/// A duration flag, in the spec's grammar (`90s`, `5m`, `1h30m`, `28d`).
pub fn duration(text: &str) -> std::result::Result<chrono::Duration, String> {
    crate::api::parse_duration(text)
}

/// A duration flag for a timer of the process.
pub fn std_duration(text: &str) -> std::result::Result<std::time::Duration, String> {
    duration(text)?.to_std().map_err(|e| e.to_string())
}

/// Writes to stdout; a closed pipe comes back as an error that `exit_code` ends quietly on
/// (`… | head` is a success).
pub fn print(text: &str) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|source| Error::Io {
            context: "writing to standard output".into(),
            source,
        })
}

/// How to reach Prometheus: the same flags, environment variables and client in `prescaler run`,
/// `prescaler backtest` and `kubectl prescaler`. Credentials come from files, so that they never
/// appear in a process list or a shell history.
#[derive(clap::Args, Clone, Debug)]
pub struct PrometheusArgs {
    /// Prometheus' base URL, e.g. http://prometheus-operated.monitoring:9090.
    #[arg(long = "prometheus-url", env = "PROMETHEUS_URL", value_name = "URL")]
    pub url: Option<String>,
    /// A file holding a bearer token for Prometheus (re-read when it changes).
    #[arg(
        long = "prometheus-bearer-token-file",
        env = "PROMETHEUS_BEARER_TOKEN_FILE",
        value_name = "FILE"
    )]
    pub bearer_token_file: Option<PathBuf>,
    /// A user name for basic auth to Prometheus (with --prometheus-password-file).
    #[arg(
        long = "prometheus-username",
        env = "PROMETHEUS_USERNAME",
        requires = "password_file",
        value_name = "NAME"
    )]
    pub username: Option<String>,
    /// A file holding the basic-auth password (re-read when it changes).
    #[arg(
        long = "prometheus-password-file",
        env = "PROMETHEUS_PASSWORD_FILE",
        requires = "username",
        value_name = "FILE"
    )]
    pub password_file: Option<PathBuf>,
    /// A PEM CA bundle to trust for Prometheus' TLS certificate.
    #[arg(
        long = "prometheus-ca-file",
        env = "PROMETHEUS_CA_FILE",
        value_name = "FILE"
    )]
    pub ca_file: Option<PathBuf>,
    /// The most of one Prometheus answer that is read (512 KiB to 1 GiB): a larger one is
    /// dropped unparsed (the operator tells its scaler ResponseTooLarge). One series of 10,000
    /// points, what a legitimate read returns, is at most 460 KB.
    #[arg(
        long = "prometheus-max-response-bytes",
        default_value_t = DEFAULT_MAX_RESPONSE_BYTES,
        value_parser = response_bytes,
        value_name = "BYTES"
    )]
    pub max_response_bytes: u64,
    /// The tenant to read as, sent as the X-Scope-OrgID header: for Prometheus behind a
    /// multi-tenant gateway (Mimir, Cortex, a Thanos tenancy proxy). Printable ASCII, at most
    /// 1024 bytes.
    #[arg(
        long = "prometheus-tenant",
        env = "PROMETHEUS_TENANT",
        value_parser = tenant,
        value_name = "TENANT"
    )]
    pub tenant: Option<String>,
}

impl Default for PrometheusArgs {
    fn default() -> Self {
        PrometheusArgs {
            url: None,
            bearer_token_file: None,
            username: None,
            password_file: None,
            ca_file: None,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            tenant: None,
        }
    }
}

impl PrometheusArgs {
    /// The client's settings; an error naming the flag when no URL was given.
    pub fn config(&self, timeout: std::time::Duration) -> Result<PrometheusConfig> {
        let url = self.url.as_deref().ok_or_else(|| Error::Config {
            what: "--prometheus-url".into(),
            message: "is needed (or PROMETHEUS_URL in the environment)".into(),
        })?;
        let mut config = PrometheusConfig::new(url);
        config.timeout = timeout;
        config.bearer_token_file = self.bearer_token_file.clone();
        config.basic_auth = self.username.clone().zip(self.password_file.clone());
        config.ca_file = self.ca_file.clone();
        config.max_response_bytes = self.max_response_bytes;
        config.tenant = self.tenant.clone();
        Ok(config)
    }
}

/// A long-term store for the history's reads, beside Prometheus (`prescaler run`, `prescaler
/// backtest` and `kubectl prescaler plan|backtest`): Thanos Query,
/// Mimir, VictoriaMetrics, anything that answers Prometheus' HTTP API. Its own credentials, CA,
/// timeout and byte limit (none is taken from Prometheus': a token for one is not sent to the
/// other); the live load still comes from Prometheus (see `adapters::long_term`).
#[derive(clap::Args, Clone, Debug)]
pub struct HistoryPrometheusArgs {
    /// A long-term store's base URL (Thanos Query, Mimir's Prometheus API, VictoriaMetrics), e.g.
    /// http://thanos-query.monitoring:9090: each scaler's history (its first read of
    /// forecast.history) comes from it; the live load, each sync's newest minutes and the last 6
    /// hours of the first read still from --prometheus-url.
    #[arg(
        id = "history_url",
        long = "history-prometheus-url",
        env = "HISTORY_PROMETHEUS_URL",
        value_name = "URL"
    )]
    pub url: Option<String>,
    /// A file holding a bearer token for the long-term store (re-read when it changes).
    #[arg(
        id = "history_bearer_token_file",
        long = "history-prometheus-bearer-token-file",
        env = "HISTORY_PROMETHEUS_BEARER_TOKEN_FILE",
        requires = "history_url",
        value_name = "FILE"
    )]
    pub bearer_token_file: Option<PathBuf>,
    /// A user name for basic auth to the long-term store (with --history-prometheus-password-file).
    #[arg(
        id = "history_username",
        long = "history-prometheus-username",
        env = "HISTORY_PROMETHEUS_USERNAME",
        requires_all = ["history_url", "history_password_file"],
        value_name = "NAME"
    )]
    pub username: Option<String>,
    /// A file holding the long-term store's basic-auth password (re-read when it changes).
    #[arg(
        id = "history_password_file",
        long = "history-prometheus-password-file",
        env = "HISTORY_PROMETHEUS_PASSWORD_FILE",
        requires = "history_username",
        value_name = "FILE"
    )]
    pub password_file: Option<PathBuf>,
    /// A PEM CA bundle to trust for the long-term store's TLS certificate.
    #[arg(
        id = "history_ca_file",
        long = "history-prometheus-ca-file",
        env = "HISTORY_PROMETHEUS_CA_FILE",
        requires = "history_url",
        value_name = "FILE"
    )]
    pub ca_file: Option<PathBuf>,
    /// Timeout of each request to the long-term store: longer than Prometheus' by default, as a
    /// read of weeks from object storage is slower.
    #[arg(
        id = "history_timeout",
        long = "history-prometheus-timeout",
        default_value = "30s",
        value_parser = std_duration,
        value_name = "DURATION"
    )]
    pub timeout: std::time::Duration,
    /// The most of one answer of the long-term store that is read (512 KiB to 1 GiB), as
    /// --prometheus-max-response-bytes.
    #[arg(
        id = "history_max_response_bytes",
        long = "history-prometheus-max-response-bytes",
        default_value_t = DEFAULT_MAX_RESPONSE_BYTES,
        value_parser = response_bytes,
        value_name = "BYTES"
    )]
    pub max_response_bytes: u64,
    /// The tenant to read the long-term store as, sent as the X-Scope-OrgID header (Mimir,
    /// Cortex, Thanos behind a tenancy proxy). Printable ASCII, at most 1024 bytes.
    #[arg(
        id = "history_tenant",
        long = "history-prometheus-tenant",
        env = "HISTORY_PROMETHEUS_TENANT",
        requires = "history_url",
        value_parser = tenant,
        value_name = "TENANT"
    )]
    pub tenant: Option<String>,
}

impl HistoryPrometheusArgs {
    /// The long-term store's client settings; `None` when no URL was given.
    pub fn config(&self) -> Option<PrometheusConfig> {
        let mut config = PrometheusConfig::new(self.url.as_deref()?);
        config.timeout = self.timeout;
        config.bearer_token_file = self.bearer_token_file.clone();
        config.basic_auth = self.username.clone().zip(self.password_file.clone());
        config.ca_file = self.ca_file.clone();
        config.max_response_bytes = self.max_response_bytes;
        config.tenant = self.tenant.clone();
        config.role = Role::LongTerm;
        Some(config)
    }
}

/// The load's source for a command that reads history (`prescaler backtest`, `kubectl
/// prescaler plan|backtest`): Prometheus, with the long-term store beside it when one is set,
/// as the operator reads them (`long_term::source`).
pub fn load_source(
    prometheus: &PrometheusArgs,
    timeout: std::time::Duration,
    history: &HistoryPrometheusArgs,
) -> Result<Arc<dyn LoadSource>> {
    Ok(long_term::source(
        &prometheus.config(timeout)?,
        history.config().as_ref(),
    )?)
}

/// Confining every query to its scaler's namespace, as prom-label-proxy enforces it
/// (`adapters::confine`): `prescaler run` confines the queries it sends, and a replay (`prescaler
/// backtest`, `kubectl prescaler backtest`) given the same flags reads the same series.
#[derive(clap::Args, Clone, Debug)]
pub struct ConfineArgs {
    /// Confine every PredictiveScaler's query to its own namespace: each selector gets
    /// `<--namespace-label>="<the scaler's namespace>"` (as prom-label-proxy enforces it), so that
    /// a tenant reads only its own series with the operator's Prometheus credentials. A backtest
    /// given it reads what the operator so configured reads.
    #[arg(long)]
    pub confine_queries_to_namespace: bool,
    /// The label that holds a series' namespace, for --confine-queries-to-namespace.
    #[arg(long, default_value = "namespace")]
    pub namespace_label: String,
}

impl ConfineArgs {
    /// The label to confine by, when confinement is on.
    pub fn label(&self) -> Option<&str> {
        self.confine_queries_to_namespace
            .then_some(self.namespace_label.as_str())
    }
}

/// Which cluster, as kubectl's flags say it.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct KubeconfigArgs {
    /// The kubeconfig context to use (default: the current context).
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// The kubeconfig file (default: $KUBECONFIG, else ~/.kube/config, else the in-cluster
    /// service account).
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
}

/// A Kubernetes client made as kubectl makes one: `--kubeconfig`, else `$KUBECONFIG` or
/// `~/.kube/config`, else the in-cluster service account; with `--context`. Also returns the
/// context's namespace and the API server's address (for messages).
pub async fn kube_client(args: &KubeconfigArgs) -> Result<(kube::Client, String, String)> {
    let options = KubeConfigOptions {
        context: args.context.clone(),
        ..Default::default()
    };
    let config_error = |message: String| Error::Config {
        what: "kubeconfig".into(),
        message,
    };
    let config = match (&args.kubeconfig, &args.context) {
        (Some(path), _) => {
            let file = Kubeconfig::read_from(path)
                .map_err(|e| config_error(format!("{}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|e| config_error(format!("{}: {e}", path.display())))?
        }
        (None, Some(_)) => kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|e| config_error(e.to_string()))?,
        (None, None) => kube::Config::infer()
            .await
            .map_err(|e| config_error(e.to_string()))?,
    };
    let namespace = config.default_namespace.clone();
    let address = config.cluster_url.to_string();
    let client = kube::Client::try_from(config)?;
    Ok((client, namespace, address))
}

/// A request that never reached the API server (refused, no route, a TLS failure) says where it
/// was sent: "the Kubernetes API server at https://…: unreachable: …". Other errors are kept.
pub fn name_the_server(error: Error, address: &str) -> Error {
    match &error {
        Error::Adapters(crate::adapters::Error::Kube(e))
            if matches!(**e, kube::Error::HyperError(_) | kube::Error::Service(_)) =>
        {
            Error::Config {
                what: format!("the Kubernetes API server at {address}"),
                message: format!("unreachable: {}", crate::error::chain(&**e)),
            }
        }
        _ => error,
    }
}
