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
    let mut message = match &e {
        prometheus_http_query::Error::Prometheus(p) => format!("Prometheus refused it: {p}"),
        prometheus_http_query::Error::Client(c) => {
            format!("Prometheus could not be reached or answered badly: {c}")
        }
        other => other.to_string(),
    };
    // The cause is what an SRE acts on (refused connection, certificate, 401): name it.
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        let text = c.to_string();
        if !message.contains(&text) {
            message = format!("{message}: {text}");
        }
        cause = c.source();
    }
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

/// How many fine steps make one coarse step (`forecast::COARSE_BLOCK` at one-minute steps).
const COARSEN: i32 = 5;
/// How much recent history is kept at full resolution: what the forecast reads at full
/// resolution (`forecast::COARSE_AFTER`), for forecasts up to the longest lead time (6 h) and
/// the level window (1 h) before now, which calibration replays.
const FINE_SPAN: Duration = Duration::hours(2 * 24 + 8);
const _: () = assert!(FINE_SPAN.num_hours() >= crate::forecast::COARSE_AFTER.num_hours() + 7);

/// Room for the values a tier gains between two folds (which drop as many as they add), so
/// that steady growth never doubles a vector's capacity: a thousand scalers would otherwise
/// carry about 40 MB of unused capacity.
const COARSE_SLACK: usize = 16;
const FINE_SLACK: usize = 90;

/// `len` NaNs in a vector with room for `slack` more.
fn with_slack(len: usize, slack: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(len + slack);
    v.resize(len, f32::NAN);
    v
}

/// One resolution of the cache: `values[i]` belongs to `start + i * step` (for the coarse
/// tier: the peak of the block starting there); NaN where Prometheus had nothing. `f32` halves the memory; a load has no need for more digits.
#[derive(Clone, Debug, Default)]
struct Tier {
    start: Option<DateTime<Utc>>,
    values: Vec<f32>,
}

/// The history of one query, kept between syncs in two resolutions: the last `FINE_SPAN` at
/// one-minute steps, the rest of `span` as the peak of each 5-minute block. Four weeks at one
/// minute would be 160 KB per scaler even as `f32`; this is about 43 KB, and it is all the
/// forecast reads (see `forecast::COARSE_AFTER`), so the operator and the backtest forecast alike.
///
/// The first refresh reads the whole span (the coarse part as `max_over_time` subqueries over
/// the same one-minute evaluations the fine tier holds); later refreshes read only the newest
/// minutes; fine values that age out are folded into block peaks, and what leaves the span is
/// dropped.
#[derive(Clone, Debug)]
pub struct HistoryCache {
    query: String,
    step: Duration,
    span: Duration,
    fine: Tier,
    coarse: Tier,
}

impl HistoryCache {
    /// A cache at one-minute steps, the forecast's resolution.
    pub fn new(query: impl Into<String>, span: Duration) -> Self {
        let step = Duration::minutes(1);
        debug_assert_eq!(step * COARSEN, crate::forecast::COARSE_BLOCK);
        Self {
            query: query.into(),
            step,
            span,
            fine: Tier::default(),
            coarse: Tier::default(),
        }
    }

    fn coarse_step(&self) -> Duration {
        self.step * COARSEN
    }

    fn align(t: DateTime<Utc>, step: Duration) -> DateTime<Utc> {
        let s = step.num_seconds().max(1);
        DateTime::from_timestamp(t.timestamp().div_euclid(s) * s, 0).expect("in range")
    }

    fn index(&self, t: DateTime<Utc>, start: DateTime<Utc>, step: Duration) -> Option<usize> {
        let d = (t - start).num_seconds();
        (d >= 0).then(|| (d / step.num_seconds()) as usize)
    }

    /// Brings the cache up to `now`.
    pub async fn refresh(
        &mut self,
        prometheus: &Prometheus,
        now: DateTime<Utc>,
    ) -> Result<Refresh> {
        let (step, coarse_step) = (self.step, self.coarse_step());
        let end = Self::align(now, step);
        let oldest = Self::align(now - self.span, coarse_step);
        let mut done = Refresh::default();
        let count = |from: DateTime<Utc>, to: DateTime<Utc>, step: Duration| {
            let points = (to - from).num_seconds() / step.num_seconds() + 1;
            (points.max(0) as u64).div_ceil(POINTS_PER_QUERY as u64) as usize
        };

        if self.fine.values.is_empty() {
            // Cold: the coarse part, then the fine part; kept only if both reads succeed.
            let fine_start = Self::align(now - FINE_SPAN, coarse_step).max(oldest);
            let mut coarse = Tier::default();
            if oldest < fine_start {
                let blocks =
                    ((fine_start - oldest).num_seconds() / coarse_step.num_seconds()) as usize;
                coarse = Tier {
                    start: Some(oldest),
                    values: with_slack(blocks, COARSE_SLACK),
                };
                // A block's peak is evaluated at its last minute.
                let last_minute = step * (COARSEN - 1);
                let peak = format!(
                    "max_over_time(({})[{}s:{}s])",
                    self.query,
                    coarse_step.num_seconds(),
                    step.num_seconds()
                );
                let from = oldest + last_minute;
                let to = fine_start - step;
                let samples = prometheus.range(&peak, from, to, coarse_step).await?;
                for (t, v) in &samples {
                    if let Some(i) = self.index(*t - last_minute, oldest, coarse_step)
                        && i < blocks
                    {
                        coarse.values[i] = *v as f32;
                    }
                }
                done.queries += count(from, to, coarse_step);
                done.samples += samples.len();
            }
            let samples = prometheus.range(&self.query, fine_start, end, step).await?;
            let len = ((end - fine_start).num_seconds() / step.num_seconds()) as usize + 1;
            let mut fine = Tier {
                start: Some(fine_start),
                values: with_slack(len, FINE_SLACK),
            };
            for (t, v) in &samples {
                if let Some(i) = self.index(*t, fine_start, step)
                    && i < len
                {
                    fine.values[i] = *v as f32;
                }
            }
            done.queries += count(fine_start, end, step);
            done.samples += samples.len();
            self.coarse = coarse;
            self.fine = fine;
        } else {
            // Warm: the newest minutes, re-reading the last few (the last evaluation may have
            // run before the last scrape).
            let start = self.fine.start.expect("set with values");
            let cached = self.fine.values.len().saturating_sub(REREAD_STEPS);
            let from = start + step * cached as i32;
            if from <= end {
                let samples = prometheus.range(&self.query, from, end, step).await?;
                let len = ((end - start).num_seconds() / step.num_seconds()) as usize + 1;
                if len > self.fine.values.len() {
                    self.fine.values.resize(len, f32::NAN);
                }
                for (t, v) in &samples {
                    if let Some(i) = self.index(*t, start, step)
                        && i < self.fine.values.len()
                    {
                        self.fine.values[i] = *v as f32;
                    }
                }
                done.queries += count(from, end, step);
                done.samples += samples.len();
            }
        }
        self.fold(now);
        Ok(done)
    }

    /// Moves fine values older than `FINE_SPAN` into block peaks, and drops what has left the
    /// span.
    fn fold(&mut self, now: DateTime<Utc>) {
        let (step, coarse_step) = (self.step, self.coarse_step());
        let oldest = Self::align(now - self.span, coarse_step);
        let keep_from = Self::align(now - FINE_SPAN, coarse_step).max(oldest);
        let Some(mut fine_start) = self.fine.start else {
            return;
        };
        let mut folded = 0;
        while fine_start < keep_from && self.fine.values.len() - folded > COARSEN as usize {
            let block = &self.fine.values[folded..folded + COARSEN as usize];
            let peak = block
                .iter()
                .copied()
                .filter(|v| v.is_finite())
                .reduce(f32::max)
                .unwrap_or(f32::NAN);
            if self.coarse.values.is_empty() {
                self.coarse.start = Some(fine_start);
            }
            self.coarse.values.push(peak);
            folded += COARSEN as usize;
            fine_start += coarse_step;
        }
        if folded > 0 {
            self.fine.values.drain(..folded);
            self.fine.start = Some(fine_start);
        }
        if let Some(mut start) = self.coarse.start {
            let drop = self
                .index(oldest, start, coarse_step)
                .unwrap_or(0)
                .min(self.coarse.values.len());
            self.coarse.values.drain(..drop);
            start += coarse_step * drop as i32;
            self.coarse.start = Some(start);
        }
        // A span shorter than the fine tier: drop fine values that left it.
        if let Some(start) = self.fine.start
            && start < oldest
        {
            let drop = self
                .index(oldest, start, step)
                .unwrap_or(0)
                .min(self.fine.values.len());
            self.fine.values.drain(..drop);
            self.fine.start = Some(start + step * drop as i32);
        }
    }

    /// The cached history on the fine grid, for the forecast: each block peak stands for the
    /// minutes of its block.
    pub fn history(&self) -> Option<History> {
        let fine_start = self.fine.start?;
        if self.fine.values.is_empty() {
            return None;
        }
        let start = match self.coarse.start {
            Some(s) if !self.coarse.values.is_empty() => s,
            _ => fine_start,
        };
        let mut values = Vec::with_capacity(
            self.coarse.values.len() * COARSEN as usize + self.fine.values.len(),
        );
        if start < fine_start {
            for &c in &self.coarse.values {
                values.extend(std::iter::repeat_n(c as f64, COARSEN as usize));
            }
        }
        values.extend(self.fine.values.iter().map(|&v| v as f64));
        Some(History::new(start, self.step, values))
    }

    /// Bytes of samples held: what a thousand scalers multiply.
    pub fn held_bytes(&self) -> usize {
        (self.fine.values.capacity() + self.coarse.values.capacity()) * std::mem::size_of::<f32>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn aged_minutes_fold_into_block_peaks_and_the_grid_stays_whole() {
        let t0 = Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap();
        let mut cache = HistoryCache::new("q", Duration::days(7));
        let minutes = 60 * 60;
        cache.fine = Tier {
            start: Some(t0),
            values: (0..minutes).map(|m| (m % 7) as f32).collect(),
        };
        let now = t0 + Duration::hours(60);
        cache.fold(now);
        // Everything older than FINE_SPAN (56 h) before `now`, in whole 5-minute blocks.
        let folded = cache.coarse.values.len() * 5;
        assert_eq!(folded, 4 * 60, "the first 4 hours are coarse");
        assert_eq!(cache.fine.start, Some(t0 + Duration::hours(4)));
        assert!(
            cache
                .coarse
                .values
                .iter()
                .all(|&v| v == 6.0 || v == 5.0 || v == 4.0)
        );
        assert_eq!(cache.coarse.values[0], 4.0, "the peak of 0,1,2,3,4");
        assert_eq!(cache.coarse.values[1], 6.0, "the peak of 5,6,0,1,2");
        let h = cache.history().unwrap();
        assert_eq!(h.start(), t0);
        assert_eq!(h.len(), minutes, "coarse and fine meet without a gap");
        assert_eq!(h.values()[7], 6.0);
        assert_eq!(
            h.values()[4 * 60 + 3],
            ((4 * 60 + 3) % 7) as f64,
            "fine values as they were"
        );

        // A week later the coarse blocks have left the 7-day span.
        cache.fold(now + Duration::days(7));
        assert!(cache.coarse.values.is_empty() || cache.coarse.start.unwrap() >= now);
    }
}
