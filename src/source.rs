//! Prometheus as the source of the load: the live value (an instant query) and its history (range
//! queries, chunked under Prometheus' limit of 11,000 points per series, cached per query and
//! refreshed incrementally so that a sync reads minutes of data, not weeks).
//!
//! Every failure comes back as `Error::Source` naming the query and what went wrong in words an
//! SRE can act on; the caller decides what it means for scaling (see `plan`'s hold).

use std::path::PathBuf;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use prometheus_http_query::response::Data;

use crate::forecast::History;
use crate::{Error, Result};

/// Prometheus refuses range queries with more points than this per series.
const PROMETHEUS_MAX_POINTS: i64 = 11_000;
/// Points per range query: under the limit with room for the inclusive end.
const POINTS_PER_QUERY: i64 = 10_000;
const _: () = assert!(POINTS_PER_QUERY < PROMETHEUS_MAX_POINTS);
/// How many of the newest cached points each refresh reads again.
const REREAD_STEPS: usize = 2;

/// How to reach Prometheus.
#[derive(Clone, Debug)]
pub struct PrometheusConfig {
    /// Base URL, e.g. `http://prometheus-operated.monitoring:9090`.
    pub url: String,
    pub bearer_token: Option<String>,
    pub basic_auth: Option<(String, String)>,
    /// A PEM bundle to trust in addition to the system's roots.
    pub ca_file: Option<PathBuf>,
    /// For each HTTP request, connect included.
    pub timeout: StdDuration,
}

impl PrometheusConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            bearer_token: None,
            basic_auth: None,
            ca_file: None,
            timeout: StdDuration::from_secs(10),
        }
    }
}

/// A Prometheus HTTP API client.
#[derive(Clone)]
pub struct Prometheus {
    client: prometheus_http_query::Client,
    timeout: StdDuration,
}

impl Prometheus {
    pub fn new(cfg: &PrometheusConfig) -> Result<Self> {
        let err = |message: String| Error::Config {
            what: "Prometheus client".into(),
            message,
        };
        // rustls with ring, as kube uses; installing twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut headers = reqwest::header::HeaderMap::new();
        let auth = match (&cfg.bearer_token, &cfg.basic_auth) {
            (Some(token), _) => Some(format!("Bearer {}", token.trim())),
            (None, Some((user, password))) => {
                use base64::Engine as _;
                let encoded =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                Some(format!("Basic {encoded}"))
            }
            (None, None) => None,
        };
        if let Some(value) = auth {
            let mut value = reqwest::header::HeaderValue::from_str(&value).map_err(|_| {
                err("the credentials contain characters not allowed in a header".into())
            })?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let mut builder = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(StdDuration::from_secs(5)))
            .default_headers(headers);
        if let Some(path) = &cfg.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| err(format!("reading CA bundle {}: {e}", path.display())))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| err(format!("CA bundle {} is not PEM: {e}", path.display())))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().map_err(|e| err(e.to_string()))?;
        let client = prometheus_http_query::Client::from(http, &cfg.url)
            .map_err(|e| err(format!("{:?} is not a usable URL: {e}", cfg.url)))?;
        Ok(Self {
            client,
            timeout: cfg.timeout,
        })
    }

    /// The query's value at `at`. `Ok(None)` when it returns no series (nothing is being
    /// measured); an error when it returns several series or a value that is not a number.
    pub async fn instant(&self, query: &str, at: DateTime<Utc>) -> Result<Option<f64>> {
        let response = self
            .client
            .query(query)
            .at(at.timestamp())
            .timeout(self.timeout.as_millis() as i64)
            .get()
            .await
            .map_err(|e| source_error(query, e))?;
        let value = match response.data() {
            Data::Scalar(s) => Some(s.value()),
            Data::Vector(v) => match v.as_slice() {
                [] => None,
                [one] => Some(one.sample().value()),
                many => return Err(several_series(query, many.len())),
            },
            Data::Matrix(_) => {
                return Err(Error::Source {
                    query: query.into(),
                    message: "returned a range vector; the query must return an instant value (drop the `[...]` selector or wrap it in rate())".into(),
                });
            }
        };
        match value {
            Some(v) if !v.is_finite() => Err(Error::Source {
                query: query.into(),
                message: format!("returned {v}, not a usable load"),
            }),
            v => Ok(v),
        }
    }

    /// Samples of the query on the grid `start, start + step, …, ≤ end`, in as many range queries
    /// as Prometheus' per-series limit needs. Missing steps are simply absent.
    pub async fn range(
        &self,
        query: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step: Duration,
    ) -> Result<Vec<(DateTime<Utc>, f64)>> {
        let step_s = step.num_seconds().max(1);
        let mut out = Vec::new();
        let mut chunk_start = start.timestamp();
        while chunk_start <= end.timestamp() {
            let chunk_end = (chunk_start + (POINTS_PER_QUERY - 1) * step_s).min(end.timestamp());
            let response = self
                .client
                .query_range(query, chunk_start, chunk_end, step_s as f64)
                .timeout(self.timeout.as_millis() as i64)
                .get()
                .await
                .map_err(|e| source_error(query, e))?;
            match response.data() {
                Data::Matrix(series) => match series.as_slice() {
                    [] => {}
                    [one] => out.extend(one.samples().iter().filter_map(|s| {
                        DateTime::from_timestamp(s.timestamp() as i64, 0).map(|t| (t, s.value()))
                    })),
                    many => return Err(several_series(query, many.len())),
                },
                _ => {
                    return Err(Error::Source {
                        query: query.into(),
                        message: "a range query did not return a matrix".into(),
                    });
                }
            }
            chunk_start = chunk_end + step_s;
        }
        Ok(out)
    }
}

fn source_error(query: &str, e: prometheus_http_query::Error) -> Error {
    let message = match &e {
        prometheus_http_query::Error::Prometheus(p) => format!("Prometheus refused it: {p}"),
        prometheus_http_query::Error::Client(c) => {
            format!("Prometheus could not be reached or answered badly: {c}")
        }
        other => other.to_string(),
    };
    Error::Source {
        query: query.into(),
        message,
    }
}

fn several_series(query: &str, n: usize) -> Error {
    Error::Source {
        query: query.into(),
        message: format!(
            "returned {n} series; it must return one, the total load (wrap it in sum(...))"
        ),
    }
}

/// What one refresh did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Refresh {
    /// Range queries sent.
    pub queries: usize,
    /// Samples received.
    pub samples: usize,
}

/// The history of one query on a fixed, epoch-aligned grid, kept between syncs. The first refresh
/// reads `span`; later ones read only what is new, and what falls out of `span` is dropped.
#[derive(Clone, Debug)]
pub struct HistoryCache {
    query: String,
    step: Duration,
    span: Duration,
    /// Grid time of `values[0]`.
    start: Option<DateTime<Utc>>,
    values: Vec<f64>,
}

impl HistoryCache {
    pub fn new(query: impl Into<String>, step: Duration, span: Duration) -> Self {
        Self {
            query: query.into(),
            step,
            span,
            start: None,
            values: Vec::new(),
        }
    }

    fn align(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        let s = self.step.num_seconds().max(1);
        DateTime::from_timestamp(t.timestamp().div_euclid(s) * s, 0).expect("in range")
    }

    /// Brings the cache up to `now`.
    pub async fn refresh(
        &mut self,
        prometheus: &Prometheus,
        now: DateTime<Utc>,
    ) -> Result<Refresh> {
        let end = self.align(now);
        let oldest = self.align(now - self.span);
        // Drop what has left the span.
        if let Some(start) = self.start
            && start < oldest
        {
            let drop = (((oldest - start).num_seconds() / self.step.num_seconds()) as usize)
                .min(self.values.len());
            self.values.drain(..drop);
            self.start = Some(start + self.step * drop as i32);
        }
        let from = match self.start {
            // Re-read the newest points: the last evaluation may have run before the last scrape.
            Some(start) if !self.values.is_empty() => {
                let cached = self.values.len().saturating_sub(REREAD_STEPS);
                start + self.step * cached as i32
            }
            _ => {
                self.start = Some(oldest);
                self.values.clear();
                oldest
            }
        };
        if from > end {
            return Ok(Refresh::default());
        }
        let samples = prometheus.range(&self.query, from, end, self.step).await?;
        let start = self.start.expect("set above");
        let len = ((end - start).num_seconds() / self.step.num_seconds()) as usize + 1;
        self.values.resize(len, f64::NAN);
        for (t, v) in &samples {
            let i = ((*t - start).num_seconds() / self.step.num_seconds()) as usize;
            if i < self.values.len() {
                self.values[i] = *v;
            }
        }
        let span_points = ((end - from).num_seconds() / self.step.num_seconds()) + 1;
        Ok(Refresh {
            queries: (span_points as u64).div_ceil(POINTS_PER_QUERY as u64) as usize,
            samples: samples.len(),
        })
    }

    /// The cached history, for the forecast.
    pub fn history(&self) -> Option<History> {
        let start = self.start?;
        (!self.values.is_empty()).then(|| History::new(start, self.step, self.values.clone()))
    }

    /// The cached samples (NaN where Prometheus had none).
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    pub fn start(&self) -> Option<DateTime<Utc>> {
        self.start
    }
}
