//! Prometheus' HTTP API, through `prometheus-http-query`: range queries, chunked under
//! Prometheus' limit of 11,000 points per series, each request bounded by a timeout. Credentials
//! come from files (mounted from a Secret) and are read again when a file changes, so that a
//! rotated token works without a restart.
//!
//! Every failure comes back as `Error::Prometheus` naming the query and what went wrong in words
//! an SRE can act on; the caller decides what it means for scaling (the planner holds).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration as StdDuration, SystemTime};

use chrono::{DateTime, Duration, Utc};
use prometheus_http_query::response::Data;

use super::history::{BlockMean, RangeSource};
use crate::{Error, Result};

/// Prometheus refuses range queries with more points than this per series.
const PROMETHEUS_MAX_POINTS: i64 = 11_000;
/// Points per range query: under the limit with room for the inclusive end.
const POINTS_PER_QUERY: i64 = 10_000;
const _: () = assert!(POINTS_PER_QUERY < PROMETHEUS_MAX_POINTS);

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Prometheus answered with an error (bad PromQL, too many points, a timeout of its own).
    #[error("Prometheus refused it: {message}")]
    Refused {
        message: String,
        #[source]
        source: prometheus_http_query::Error,
    },
    /// No answer, or not one Prometheus' API gives (connection refused, TLS, 401, a timeout).
    #[error("Prometheus could not be reached or answered badly: {message}")]
    Unreachable {
        message: String,
        #[source]
        source: prometheus_http_query::Error,
    },
    #[error("returned {0} series; it must return one, the total load (wrap it in sum(...))")]
    SeveralSeries(usize),
    #[error("a range query did not return a range of values")]
    NotARange,
    #[error("reading {}: {source}", path.display())]
    Credentials {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// How to reach Prometheus.
#[derive(Clone, Debug)]
pub struct PrometheusConfig {
    /// Base URL, e.g. `http://prometheus-operated.monitoring:9090`.
    pub url: String,
    /// A file holding a bearer token.
    pub bearer_token_file: Option<PathBuf>,
    /// A user name and a file holding the password.
    pub basic_auth: Option<(String, PathBuf)>,
    /// A PEM bundle to trust in addition to the system's roots.
    pub ca_file: Option<PathBuf>,
    /// For each HTTP request, connect included.
    pub timeout: StdDuration,
}

impl PrometheusConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            bearer_token_file: None,
            basic_auth: None,
            ca_file: None,
            timeout: StdDuration::from_secs(10),
        }
    }

    /// The credential files, whose change means a new client.
    fn credential_files(&self) -> Vec<&Path> {
        self.bearer_token_file
            .iter()
            .map(PathBuf::as_path)
            .chain(self.basic_auth.iter().map(|(_, p)| p.as_path()))
            .collect()
    }
}

/// A Prometheus HTTP API client.
pub struct Prometheus {
    config: PrometheusConfig,
    /// The client, and the modification times of the credential files it was built with.
    client: Mutex<(prometheus_http_query::Client, Vec<Option<SystemTime>>)>,
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn config_error(message: String) -> Error {
    Error::Config {
        what: "Prometheus client".into(),
        message,
    }
}

fn read_secret(path: &Path) -> Result<String, QueryError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|source| QueryError::Credentials {
            path: path.to_path_buf(),
            source,
        })
}

impl Prometheus {
    pub fn new(config: &PrometheusConfig) -> Result<Self> {
        let stamps = config
            .credential_files()
            .into_iter()
            .map(modified)
            .collect();
        let client = Self::build(config).map_err(|e| match e {
            BuildError::Query(source) => config_error(source.to_string()),
            BuildError::Config(message) => config_error(message),
        })?;
        Ok(Self {
            config: config.clone(),
            client: Mutex::new((client, stamps)),
        })
    }

    fn build(cfg: &PrometheusConfig) -> Result<prometheus_http_query::Client, BuildError> {
        // rustls with ring, as kube uses; installing twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut headers = reqwest::header::HeaderMap::new();
        let auth = match (&cfg.bearer_token_file, &cfg.basic_auth) {
            (Some(path), _) => Some(format!("Bearer {}", read_secret(path)?)),
            (None, Some((user, path))) => {
                use base64::Engine as _;
                let password = read_secret(path)?;
                let encoded =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                Some(format!("Basic {encoded}"))
            }
            (None, None) => None,
        };
        if let Some(value) = auth {
            let mut value = reqwest::header::HeaderValue::from_str(&value).map_err(|_| {
                BuildError::Config(
                    "the credentials contain characters not allowed in a header".into(),
                )
            })?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let mut builder = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(StdDuration::from_secs(5)))
            .default_headers(headers);
        if let Some(path) = &cfg.ca_file {
            let pem = std::fs::read(path).map_err(|e| {
                BuildError::Config(format!("reading CA bundle {}: {e}", path.display()))
            })?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                BuildError::Config(format!("CA bundle {} is not PEM: {e}", path.display()))
            })? {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| BuildError::Config(e.to_string()))?;
        prometheus_http_query::Client::from(http, &cfg.url)
            .map_err(|e| BuildError::Config(format!("{:?} is not a usable URL: {e}", cfg.url)))
    }

    /// The client, rebuilt first if a credential file changed since it was built.
    fn client(&self) -> Result<prometheus_http_query::Client, QueryError> {
        let mut guard = self.client.lock().unwrap_or_else(|p| p.into_inner());
        let stamps: Vec<Option<SystemTime>> = self
            .config
            .credential_files()
            .into_iter()
            .map(modified)
            .collect();
        if stamps != guard.1 {
            match Self::build(&self.config) {
                Ok(client) => *guard = (client, stamps),
                Err(BuildError::Query(e)) => return Err(e),
                // A half-written file: keep the working client and try again next time.
                Err(BuildError::Config(_)) => {}
            }
        }
        Ok(guard.0.clone())
    }
}

enum BuildError {
    Query(QueryError),
    Config(String),
}

impl From<QueryError> for BuildError {
    fn from(e: QueryError) -> Self {
        BuildError::Query(e)
    }
}

/// Words for a failed request, naming its cause (a refused connection, a certificate, a 401),
/// which is what an SRE acts on.
fn query_error(e: prometheus_http_query::Error) -> QueryError {
    let mut message = match &e {
        prometheus_http_query::Error::Prometheus(p) => p.to_string(),
        other => other.to_string(),
    };
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        let text = c.to_string();
        if !message.contains(&text) {
            message = format!("{message}: {text}");
        }
        cause = c.source();
    }
    match e {
        prometheus_http_query::Error::Prometheus(_) => QueryError::Refused { message, source: e },
        _ => QueryError::Unreachable { message, source: e },
    }
}

impl RangeSource for Prometheus {
    /// Samples of the query on the grid `start, start + step, …, ≤ end`, in as many range queries
    /// as Prometheus' per-series limit needs. Missing steps are absent.
    async fn range(
        &self,
        query: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step: Duration,
    ) -> Result<Vec<(DateTime<Utc>, f64)>> {
        let fail = |source| Error::Prometheus {
            query: query.into(),
            source,
        };
        let client = self.client().map_err(fail)?;
        let step_s = step.num_seconds().max(1);
        let timeout_ms = self.config.timeout.as_millis().min(i64::MAX as u128) as i64;
        let mut out = Vec::new();
        let mut chunk_start = start.timestamp();
        while chunk_start <= end.timestamp() {
            let chunk_end = (chunk_start + (POINTS_PER_QUERY - 1) * step_s).min(end.timestamp());
            let response = client
                .query_range(query, chunk_start, chunk_end, step_s as f64)
                .timeout(timeout_ms)
                .get()
                .await
                .map_err(|e| fail(query_error(e)))?;
            match response.data() {
                Data::Matrix(series) => match series.as_slice() {
                    [] => {}
                    [one] => out.extend(one.samples().iter().filter_map(|s| {
                        DateTime::from_timestamp(s.timestamp() as i64, 0).map(|t| (t, s.value()))
                    })),
                    many => return Err(fail(QueryError::SeveralSeries(many.len()))),
                },
                _ => return Err(fail(QueryError::NotARange)),
            }
            chunk_start = chunk_end + step_s;
        }
        Ok(out)
    }

    async fn block_means(
        &self,
        query: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        block: Duration,
        step: Duration,
    ) -> Result<Vec<BlockMean>> {
        // `[299s:60s]` for a 5-minute block: the 5 steps of (t - 300s, t], whether the range is
        // closed (Prometheus 2) or open (Prometheus 3) on the left. The newlines keep a trailing
        // `# comment` in the query from swallowing the bracket.
        let over = |function: &str| {
            format!(
                "{function}((\n{query}\n)[{}s:{}s])",
                block.num_seconds() - 1,
                step.num_seconds()
            )
        };
        let as_the_query = |e: Error| match e {
            Error::Prometheus { source, .. } => Error::Prometheus {
                query: query.into(),
                source,
            },
            other => other,
        };
        let means = self
            .range(&over("avg_over_time"), start, end, block)
            .await
            .map_err(as_the_query)?;
        let counts: std::collections::HashMap<DateTime<Utc>, f64> = self
            .range(&over("count_over_time"), start, end, block)
            .await
            .map_err(as_the_query)?
            .into_iter()
            .collect();
        Ok(means
            .into_iter()
            .filter_map(|(at, mean)| {
                let count = *counts.get(&at)?;
                (count >= 1.0).then(|| BlockMean {
                    at,
                    mean,
                    count: count.min(f64::from(u32::MAX)) as u32,
                })
            })
            .collect())
    }
}
