//! Prometheus' HTTP API: instant and range queries, range queries chunked under Prometheus'
//! limit of 11,000 points per series, each request bounded by a timeout and its answer by a size.
//! Credentials come from files (mounted from a Secret) and are read again when a file changes, so
//! that a rotated token works without a restart.
//!
//! A tenant's query decides how much Prometheus sends back: a query of a thousand series over four
//! weeks is hundreds of MB of JSON. So every answer is read chunk by chunk and dropped as soon as
//! it passes `max_response_bytes`, before any of it is parsed; what is parsed keeps only the first
//! series' samples and counts the others. And before the history's first range read, one instant
//! read of the query itself refuses a query of several series (`RangeSource::probe`).
//!
//! The HTTP requests are made here with reqwest rather than through `prometheus-http-query`
//! (used until 0.1): its `get()` reads and parses the whole body, with no bound, and its response
//! envelope is private to it, so its types would not spare the small ones below.
//!
//! Every failure comes back as `Error::Prometheus` naming the query, the endpoint that failed
//! ("Prometheus at http://…" or "the long-term store at http://…", see `Role`: with a long-term
//! store beside Prometheus, an SRE must know which of the two to look at) and what went wrong in
//! words an SRE can act on (the server's own error text, the HTTP status, the connection's or the
//! certificate's cause); the caller decides what it means for scaling (the planner holds).
//!
//! A multi-tenant store (Mimir, Cortex, Thanos behind a tenancy proxy) answers only with a tenant
//! named in the `X-Scope-OrgID` header: `PrometheusConfig::tenant`.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration as StdDuration, SystemTime};

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::history::RangeSource;
use crate::{Error, Result};

/// Prometheus refuses range queries with more points than this per series.
const PROMETHEUS_MAX_POINTS: i64 = 11_000;
/// Points per range query: under the limit with room for the inclusive end.
const POINTS_PER_QUERY: i64 = 10_000;
const _: () = assert!(POINTS_PER_QUERY < PROMETHEUS_MAX_POINTS);

/// The default bound on one answer. A legitimate read is one series of at most 10,000 points;
/// a point is `[1717171717.123,"1.2345678901234567e+308"],` at worst, 46 bytes, so 460 KB and a
/// few labels: 4 MiB leaves a margin of 9 while a thousand series of a day (40 MB) are refused
/// after their first 4 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 4 * 1024 * 1024;
/// The bounds of `--prometheus-max-response-bytes`: one legitimate read fits in the least.
pub const MAX_RESPONSE_BYTES_RANGE: std::ops::RangeInclusive<u64> = 512 * 1024..=1024 * 1024 * 1024;

/// Parses `--prometheus-max-response-bytes`: a number of bytes within its bounds.
pub fn response_bytes(text: &str) -> std::result::Result<u64, String> {
    let n: u64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of bytes"))?;
    if MAX_RESPONSE_BYTES_RANGE.contains(&n) {
        Ok(n)
    } else {
        Err(format!(
            "{n} is outside {}..={} bytes",
            MAX_RESPONSE_BYTES_RANGE.start(),
            MAX_RESPONSE_BYTES_RANGE.end()
        ))
    }
}

/// The header a multi-tenant store (Mimir, Cortex, Thanos behind a tenancy proxy) reads the
/// tenant from.
pub const TENANT_HEADER: &str = "X-Scope-OrgID";
/// The longest tenant accepted: Mimir and Cortex take 150 characters a tenant, and a federated
/// query names several joined by `|`; far more is a mistake (a file's contents, a token), and
/// a proxy would refuse a header of kilobytes anyway.
pub const MAX_TENANT_BYTES: usize = 1024;

/// Parses `--prometheus-tenant` and `--history-prometheus-tenant`: visible ASCII (no spaces or
/// control characters, which a header cannot carry or a proxy would trim), at most
/// `MAX_TENANT_BYTES`. Checked at start-up, so that a bad value is refused there, by name,
/// rather than by the store at every read.
pub fn tenant(text: &str) -> std::result::Result<String, String> {
    if text.is_empty() {
        return Err("is empty: name the tenant, or leave the flag out".into());
    }
    if text.len() > MAX_TENANT_BYTES {
        return Err(format!(
            "is {} bytes long, more than the {MAX_TENANT_BYTES} a tenant (or several joined by |) needs",
            text.len()
        ));
    }
    match text.chars().find(|c| !c.is_ascii_graphic()) {
        Some(c) => Err(format!(
            "holds {c:?}: a tenant is sent as the {TENANT_HEADER} header, printable ASCII without spaces"
        )),
        None => Ok(text.to_string()),
    }
}

/// Which endpoint a client reads: its name in every message and the flags that configure it, so
/// that an error says which of the two failed and which flag to change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Role {
    /// Prometheus: the live load (`--prometheus-*`).
    #[default]
    Live,
    /// A long-term store for the history (`--history-prometheus-*`, see `long_term`).
    LongTerm,
}

impl Role {
    /// What the endpoint is called in messages.
    pub fn noun(self) -> &'static str {
        match self {
            Role::Live => "Prometheus",
            Role::LongTerm => "the long-term store",
        }
    }

    /// The flag that sets `setting` (`timeout`, `max-response-bytes`) for this endpoint.
    pub fn flag(self, setting: &str) -> String {
        match self {
            Role::Live => format!("--prometheus-{setting}"),
            Role::LongTerm => format!("--history-prometheus-{setting}"),
        }
    }
}

/// Why a query failed. The text says what the endpoint did; `Error::Prometheus` puts the
/// endpoint's name in front of it ("Prometheus at http://… refused it: …").
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Prometheus answered with an error (bad PromQL, too many samples, an execution error).
    #[error("refused it: {message}")]
    Refused { message: String },
    /// No answer in time: the client's timeout, or Prometheus' own (`--query.timeout`, or the
    /// `timeout` parameter prescaler sends).
    #[error("gave no answer in time: {message}")]
    TimedOut { message: String },
    /// No answer, or not one Prometheus' API gives (connection refused, TLS, 401, a proxy's page).
    #[error("could not be reached or answered badly: {message}")]
    Unreachable { message: String },
    /// The answer passed the byte limit (set by `flag`); it was not read further.
    #[error(
        "sent an answer larger than {limit} bytes ({flag}): a query for the total load, one series, needs far less; prescaler stopped reading it"
    )]
    ResponseTooLarge { limit: u64, flag: String },
    #[error("returned {0} series; it must return one, the total load (wrap it in sum(...))")]
    SeveralSeries(usize),
    #[error("returned {0}, not a number or one series")]
    NotANumber(String),
    #[error("could not be given its credentials: reading {}: {source}", path.display())]
    Credentials {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl QueryError {
    /// Whether the query ran out of time (at Prometheus or waiting for it).
    pub fn is_timeout(&self) -> bool {
        matches!(self, QueryError::TimedOut { .. })
    }
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
    /// For each HTTP request, connect and body included.
    pub timeout: StdDuration,
    /// The most of one answer that is read; a larger one is a `ResponseTooLarge` error.
    pub max_response_bytes: u64,
    /// Sent as `X-Scope-OrgID` (see `tenant`), for a multi-tenant store or gateway.
    pub tenant: Option<String>,
    /// Prometheus, or a long-term store: how messages name it.
    pub role: Role,
}

impl PrometheusConfig {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            bearer_token_file: None,
            basic_auth: None,
            ca_file: None,
            timeout: StdDuration::from_secs(10),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            tenant: None,
            role: Role::Live,
        }
    }

    /// The endpoint as messages name it: "Prometheus at http://prometheus:9090", "the long-term
    /// store at http://thanos-query:9090". Credentials in the URL (`user:pass@`) and its query
    /// string are left out: the name reaches logs, the status and Events.
    pub fn server(&self) -> String {
        match reqwest::Url::parse(&self.url) {
            Ok(mut url) if url.has_host() => {
                let _ = url.set_username("");
                let _ = url.set_password(None);
                url.set_query(None);
                url.set_fragment(None);
                let shown = url.to_string();
                format!("{} at {}", self.role.noun(), shown.trim_end_matches('/'))
            }
            _ => format!("{} ({})", self.role.noun(), self.role.flag("url")),
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

/// The HTTP client with its credentials, and where the API is.
#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    /// The base URL, its path ending in `/` so that `api/v1/...` joins below it.
    base: reqwest::Url,
}

/// A Prometheus HTTP API client.
pub struct Prometheus {
    config: PrometheusConfig,
    /// `PrometheusConfig::server`, once.
    server: String,
    /// The client, and the modification times of the credential files it was built with.
    client: Mutex<(Client, Vec<Option<SystemTime>>)>,
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn config_error(config: &PrometheusConfig, message: String) -> Error {
    Error::Config {
        what: config.server(),
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
            BuildError::Query(source) => config_error(config, source.to_string()),
            BuildError::Config(message) => config_error(config, message),
        })?;
        Ok(Self {
            config: config.clone(),
            server: config.server(),
            client: Mutex::new((client, stamps)),
        })
    }

    fn build(cfg: &PrometheusConfig) -> Result<Client, BuildError> {
        // rustls with ring, as kube uses; installing twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut base = reqwest::Url::parse(&cfg.url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .ok_or_else(|| {
                BuildError::Config(format!(
                    "{:?} is not a usable URL: it needs http:// or https:// and a host",
                    cfg.url
                ))
            })?;
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
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
        if let Some(t) = &cfg.tenant {
            // Checked at the flag already; a config made in code is held to the same rule.
            let value = tenant(t)
                .ok()
                .and_then(|t| reqwest::header::HeaderValue::from_str(&t).ok())
                .ok_or_else(|| {
                    BuildError::Config(format!(
                        "the tenant {t:?} ({}) {}",
                        cfg.role.flag("tenant"),
                        tenant(t).err().unwrap_or_default()
                    ))
                })?;
            headers.insert(TENANT_HEADER, value);
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
        Ok(Client { http, base })
    }

    /// The client, rebuilt first if a credential file changed since it was built.
    fn client(&self) -> Result<Client, QueryError> {
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

    /// One GET of `endpoint` (`query` or `query_range`) with `params`, its answer read within the
    /// byte limit and checked for Prometheus' `status`; the `data` it carries is handed to
    /// `read`, which must not keep the body.
    async fn get<T>(
        &self,
        endpoint: &str,
        params: &[(&str, String)],
        read: impl FnOnce(&RawValue) -> Result<T, QueryError>,
    ) -> Result<T, QueryError> {
        let client = self.client()?;
        let mut url = client
            .base
            .join(&format!("api/v1/{endpoint}"))
            .map_err(|e| QueryError::Unreachable {
                message: format!("{}api/v1/{endpoint} is not a URL: {e}", client.base),
            })?;
        // Prometheus' own evaluation stops at the same timeout.
        let timeout_ms = self.config.timeout.as_millis().min(u128::from(u64::MAX));
        url.query_pairs_mut()
            .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())))
            .append_pair("timeout", &format!("{timeout_ms}ms"));
        let response = client
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| self.transport_error(&e))?;
        let status = response.status();
        let json = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        let body = self.read_bounded(response).await?;
        if !json {
            return Err(QueryError::Unreachable {
                message: format!("HTTP {status}: {}", snippet(&body)),
            });
        }
        let envelope: Envelope<'_> =
            serde_json::from_slice(&body).map_err(|e| QueryError::Unreachable {
                message: format!("HTTP {status}, an answer that is not Prometheus' JSON: {e}"),
            })?;
        match (envelope.status.as_ref(), envelope.data) {
            ("success", Some(data)) => read(data),
            ("error", _) => {
                let kind = envelope.error_type.as_deref().unwrap_or("error");
                // Prometheus' own words, cut as a page's are: they reach logs, the status and
                // Events (a 3 MiB error text made a 3 MiB status and Event note, and 9 MB of log
                // in 5 s). Prometheus' real errors fit in far less.
                let error = envelope.error.as_deref().unwrap_or("(no message)");
                let message = format!("{kind}: {}", snippet(error.as_bytes()));
                Err(match kind {
                    "timeout" => QueryError::TimedOut { message },
                    _ => QueryError::Refused { message },
                })
            }
            (other, _) => Err(QueryError::Unreachable {
                message: format!("HTTP {status} with status {other:?} and no data"),
            }),
        }
    }

    /// The body, read chunk by chunk and dropped as soon as it passes the limit: no more than
    /// the limit (and one chunk) is ever held.
    async fn read_bounded(&self, mut response: reqwest::Response) -> Result<Vec<u8>, QueryError> {
        let limit = self.config.max_response_bytes;
        let too_large = QueryError::ResponseTooLarge {
            limit,
            flag: self.config.role.flag("max-response-bytes"),
        };
        if response.content_length().is_some_and(|n| n > limit) {
            return Err(too_large);
        }
        let expected = response.content_length().unwrap_or(64 * 1024).min(limit);
        let mut body = Vec::with_capacity(expected as usize);
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_error(&e))?
        {
            if (body.len() + chunk.len()) as u64 > limit {
                return Err(too_large);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// Words for a request that got no answer, naming its cause (a refused connection, a
    /// certificate, the timeout), which is what an SRE acts on.
    fn transport_error(&self, e: &reqwest::Error) -> QueryError {
        let mut message = e.to_string();
        let mut cause = std::error::Error::source(e);
        while let Some(c) = cause {
            let text = c.to_string();
            if !message.contains(&text) {
                message = format!("{message}: {text}");
            }
            cause = c.source();
        }
        if e.is_timeout() {
            QueryError::TimedOut {
                message: format!(
                    "no answer within {} ({}): {message}",
                    humantime::format_duration(self.config.timeout),
                    self.config.role.flag("timeout")
                ),
            }
        } else {
            QueryError::Unreachable { message }
        }
    }

    /// How many series `query` returns at `at`: one instant read, within the byte limit. A
    /// scalar is one.
    pub async fn series_count(&self, query: &str, at: DateTime<Utc>) -> Result<usize> {
        let fail = |source| Error::Prometheus {
            query: query.into(),
            server: self.server.clone(),
            source,
        };
        let params = [
            ("query", query.to_string()),
            ("time", at.timestamp().to_string()),
        ];
        self.get("query", &params, |data| {
            let data: Data<'_> = parse(data)?;
            match data.result_type.as_ref() {
                "vector" | "matrix" => Ok(parse::<Count>(data.result)?.0),
                "scalar" => Ok(1),
                other => Err(QueryError::NotANumber(format!("a {other}"))),
            }
        })
        .await
        .map_err(fail)
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

/// Prometheus' answer: `{"status": "success", "data": …}` or
/// `{"status": "error", "errorType": …, "error": …}`. `data` stays unparsed (borrowed from the
/// body) until its `resultType` is known.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    status: Cow<'a, str>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(rename = "errorType", default)]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct Data<'a> {
    #[serde(rename = "resultType", borrow)]
    result_type: Cow<'a, str>,
    #[serde(borrow)]
    result: &'a RawValue,
}

/// One series of a range answer: its samples; its labels are skipped.
#[derive(Deserialize)]
struct RangeSeries {
    #[serde(default)]
    values: Points,
}

/// Samples, `[seconds, "value"]`, parsed as they are read, at most as many as Prometheus gives
/// one series of a range query: so a series costs 16 bytes a point, whatever its JSON.
#[derive(Default)]
struct Points(Vec<(f64, f64)>);

impl<'de> Deserialize<'de> for Points {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Seq;
        impl<'de> Visitor<'de> for Seq {
            type Value = Points;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of [seconds, \"value\"]")
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Points, A::Error> {
                use serde::de::Error as _;
                let mut points = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
                while let Some((at, value)) = seq.next_element::<(f64, Cow<'de, str>)>()? {
                    if points.len() as i64 >= PROMETHEUS_MAX_POINTS {
                        return Err(A::Error::custom(format!(
                            "more than {PROMETHEUS_MAX_POINTS} points in one series"
                        )));
                    }
                    let value = value.parse::<f64>().map_err(|_| {
                        A::Error::custom(format!("the sample value {value:?} is not a number"))
                    })?;
                    points.push((at, value));
                }
                Ok(Points(points))
            }
        }
        d.deserialize_seq(Seq)
    }
}

/// A list of series of which only the first is kept, the others counted: a multi-series answer
/// costs no more memory than its body.
struct FirstOf<T> {
    first: Option<T>,
    count: usize,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for FirstOf<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Seq<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Seq<T> {
            type Value = FirstOf<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of series")
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                let first = seq.next_element::<T>()?;
                let mut count = usize::from(first.is_some());
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    count += 1;
                }
                Ok(FirstOf { first, count })
            }
        }
        d.deserialize_seq(Seq(std::marker::PhantomData))
    }
}

/// How many entries a list holds, none of them kept.
struct Count(usize);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        FirstOf::<IgnoredAny>::deserialize(d).map(|f| Count(f.count))
    }
}

fn parse<'a, T: Deserialize<'a>>(raw: &'a RawValue) -> Result<T, QueryError> {
    serde_json::from_str(raw.get()).map_err(|e| QueryError::Unreachable {
        message: format!("an answer that is not Prometheus' JSON: {e}"),
    })
}

/// The most of another system's text (a page, an error message) that is repeated.
const SNIPPET_BYTES: usize = 512;

/// At most `SNIPPET_BYTES` of `body`, control characters as spaces, on one line.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(SNIPPET_BYTES)]);
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match line.trim() {
        "" => "an empty answer".into(),
        t => t.to_string(),
    }
}

impl RangeSource for Prometheus {
    /// How long one request may take (`PrometheusConfig::timeout`).
    fn timeout(&self) -> StdDuration {
        self.config.timeout
    }

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
            server: self.server.clone(),
            source,
        };
        let step_s = step.num_seconds().max(1);
        let mut out = Vec::new();
        let mut chunk_start = start.timestamp();
        while chunk_start <= end.timestamp() {
            let chunk_end = (chunk_start + (POINTS_PER_QUERY - 1) * step_s).min(end.timestamp());
            let params = [
                ("query", query.to_string()),
                ("start", chunk_start.to_string()),
                ("end", chunk_end.to_string()),
                ("step", step_s.to_string()),
            ];
            self.get("query_range", &params, |data| {
                let data: Data<'_> = parse(data)?;
                if data.result_type != "matrix" {
                    return Err(QueryError::NotANumber(format!(
                        "a {} where a range query returns a matrix",
                        data.result_type
                    )));
                }
                let series: FirstOf<RangeSeries> = parse(data.result)?;
                if series.count > 1 {
                    return Err(QueryError::SeveralSeries(series.count));
                }
                let points = series.first.map(|s| s.values.0).unwrap_or_default();
                out.extend(points.into_iter().filter_map(|(at, value)| {
                    DateTime::from_timestamp(at as i64, 0).map(|t| (t, value))
                }));
                Ok(())
            })
            .await
            .map_err(fail)?;
            chunk_start = chunk_end + step_s;
        }
        Ok(out)
    }

    /// One instant read of the query itself, within the byte limit: a query of several series
    /// is refused here, before a range read asks for weeks of each. (`count(...)` would answer
    /// with less, but it costs Prometheus the same evaluation, fails on a scalar, and is one more
    /// rewrite of the tenant's query to get right; the answer of a few series is small, and one
    /// of very many is stopped by the byte limit.)
    async fn probe(&self, query: &str, at: DateTime<Utc>) -> Result<()> {
        match self.series_count(query, at).await? {
            0 | 1 => Ok(()),
            n => Err(Error::Prometheus {
                query: query.into(),
                server: self.server.clone(),
                source: QueryError::SeveralSeries(n),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An HTTP server answering every request with `head` (status line and headers, without the
    /// blank line) and `body`, then, with `endless`, chunks of JSON whitespace until the client
    /// hangs up. Returns its URL and the body bytes it managed to send.
    async fn serve(
        head: &'static str,
        body: &'static str,
        endless: bool,
    ) -> (String, Arc<AtomicU64>) {
        let (url, sent, _) = serve_recording(head, body, endless).await;
        (url, sent)
    }

    /// `serve`, also keeping the head of every request it was sent (request line and headers).
    async fn serve_recording(
        head: &'static str,
        body: &'static str,
        endless: bool,
    ) -> (String, Arc<AtomicU64>, Arc<Mutex<Vec<String>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let sent = Arc::new(AtomicU64::new(0));
        let counter = sent.clone();
        let heads: Arc<Mutex<Vec<String>>> = Arc::default();
        let log = heads.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let counter = counter.clone();
                let log = log.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    log.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&request).into_owned());
                    let mut out = format!("{head}\r\n\r\n").into_bytes();
                    out.extend_from_slice(body.as_bytes());
                    if socket.write_all(&out).await.is_err() {
                        return;
                    }
                    let chunk = vec![b' '; 64 * 1024];
                    while endless && socket.write_all(&chunk).await.is_ok() {
                        counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                        if counter.load(Ordering::Relaxed) > 1 << 30 {
                            return;
                        }
                    }
                });
            }
        });
        (url, sent, heads)
    }

    fn client(url: &str, limit: u64) -> Prometheus {
        let mut cfg = PrometheusConfig::new(url);
        cfg.max_response_bytes = limit;
        cfg.timeout = StdDuration::from_secs(5);
        Prometheus::new(&cfg).unwrap()
    }

    async fn read(p: &Prometheus) -> Result<Vec<(DateTime<Utc>, f64)>> {
        let now = Utc::now();
        p.range("q", now - Duration::hours(1), now, Duration::minutes(1))
            .await
    }

    fn query_error(e: Error) -> QueryError {
        match e {
            Error::Prometheus { source, .. } => source,
            other => panic!("{other}"),
        }
    }

    /// An answer that never ends (as a query of a million series would be to the client) is
    /// dropped once it passes the limit: the server's writes stop, far short of its end.
    #[tokio::test]
    async fn an_answer_is_read_no_further_than_the_byte_limit() {
        let (url, sent) = serve(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json",
            r#"{"status":"success","data":{"resultType":"matrix","result":[ "#,
            true,
        )
        .await;
        let started = std::time::Instant::now();
        let err = query_error(read(&client(&url, 1 << 20)).await.unwrap_err());
        assert!(
            matches!(err, QueryError::ResponseTooLarge { limit, .. } if limit == 1 << 20),
            "{err}"
        );
        assert!(
            err.to_string().contains("--prometheus-max-response-bytes"),
            "{err}"
        );
        assert!(started.elapsed() < StdDuration::from_secs(3));
        tokio::time::sleep(StdDuration::from_millis(300)).await;
        let written = sent.load(Ordering::Relaxed);
        // What the sockets' buffers took in, and no more: the client stopped reading.
        assert!(written < 32 << 20, "{written} bytes sent");

        // A Content-Length beyond the limit is refused before the body is read.
        let (url, _) = serve(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 10737418240",
            "",
            false,
        )
        .await;
        let started = std::time::Instant::now();
        let err = query_error(read(&client(&url, 1 << 20)).await.unwrap_err());
        assert!(matches!(err, QueryError::ResponseTooLarge { .. }), "{err}");
        assert!(started.elapsed() < StdDuration::from_secs(3));
    }

    #[tokio::test]
    async fn prometheus_own_words_and_the_http_status_are_kept() {
        for (head, body, want, timeout) in [
            (
                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json",
                r#"{"status":"error","errorType":"timeout","error":"query timed out in expression evaluation"}"#,
                "gave no answer in time: timeout: query timed out in expression evaluation",
                true,
            ),
            (
                "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json",
                r#"{"status":"error","errorType":"bad_data","error":"1:5: parse error: unclosed left parenthesis"}"#,
                "refused it: bad_data: 1:5: parse error",
                false,
            ),
            (
                "HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain",
                "Unauthorized\n",
                "could not be reached or answered badly: HTTP 401 Unauthorized: Unauthorized",
                false,
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Type: application/json",
                r#"{"status":"success","data":{"resultType":"string","result":[1,"x"]}}"#,
                "returned a string where a range query returns a matrix",
                false,
            ),
        ] {
            let (url, _) = serve(head, body, false).await;
            // The whole error, as logs, the status and Events tell it: the endpoint by name.
            let err = read(&client(&url, 1 << 20)).await.unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains(&format!("query \"q\": Prometheus at {url} {want}")),
                "{text}"
            );
            assert_eq!(query_error(err).is_timeout(), timeout, "{text}");
        }
        let (url, _) = serve(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json",
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"1"},"value":[1,"1"]},{"metric":{"a":"2"},"value":[1,"2"]},{"metric":{"a":"3"},"value":[1,"3"]}]}}"#,
            false,
        )
        .await;
        let err = client(&url, 1 << 20)
            .probe("q", Utc::now())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("returned 3 series"), "{err}");

        // Megabytes of error text (within the answer's byte limit) are cut to a snippet: they
        // reach logs, the status and Events.
        let huge: &'static str = Box::leak(
            format!(
                r#"{{"status":"error","errorType":"execution","error":"{}"}}"#,
                "x".repeat(3 << 20)
            )
            .into_boxed_str(),
        );
        let (url, _) = serve(
            "HTTP/1.1 422 Unprocessable Entity\r\nContent-Type: application/json",
            huge,
            false,
        )
        .await;
        let err = query_error(read(&client(&url, 8 << 20)).await.unwrap_err()).to_string();
        assert!(err.starts_with("refused it: execution: xxx"), "{err:.80}");
        assert!(err.len() < 1024, "{} bytes", err.len());
    }

    #[test]
    fn one_series_is_kept_the_others_only_counted() {
        let result = r#"[{"metric":{"service":"a"},"values":[[60,"1.5"],[120,"+Inf"],[180,"NaN"],[240,"-2e3"]]},
                         {"metric":{"service":"b"},"values":[[60,"7"]]},{"metric":{},"values":[]}]"#;
        let raw = RawValue::from_string(result.into()).unwrap();
        let series: FirstOf<RangeSeries> = parse(&raw).unwrap();
        assert_eq!(series.count, 3);
        let points = series.first.unwrap().values.0;
        assert_eq!(points.len(), 4);
        assert_eq!(points[0], (60.0, 1.5));
        assert_eq!(points[1].1, f64::INFINITY);
        assert!(points[2].1.is_nan());
        assert_eq!(points[3].1, -2000.0);
        let none: FirstOf<RangeSeries> =
            parse(&RawValue::from_string("[]".into()).unwrap()).unwrap();
        assert!(none.first.is_none() && none.count == 0);

        // No more points than Prometheus gives one series.
        let many: String = (0..=PROMETHEUS_MAX_POINTS)
            .map(|i| format!("[{i},\"1\"]"))
            .collect::<Vec<_>>()
            .join(",");
        let raw = RawValue::from_string(format!(r#"[{{"values":[{many}]}}]"#)).unwrap();
        let err = parse::<FirstOf<RangeSeries>>(&raw)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("more than 11000 points"), "{err}");
        let raw = RawValue::from_string(r#"[{"values":[[1,"one"]]}]"#.into()).unwrap();
        let err = parse::<FirstOf<RangeSeries>>(&raw)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("not a number"), "{err}");
    }

    /// With a long-term store beside Prometheus, a failure names the one that failed, by its
    /// URL (without the credentials it may carry), and the flags that set it.
    #[tokio::test]
    async fn a_failure_names_the_endpoint_and_its_flags() {
        let (url, _) = serve(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 10737418240",
            "",
            false,
        )
        .await;
        let mut cfg = PrometheusConfig::new(url.replace("http://", "http://reader:secret@"));
        cfg.role = Role::LongTerm;
        let err = read(&Prometheus::new(&cfg).unwrap())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!(
                "query \"q\": the long-term store at {url} sent an answer larger than"
            )) && err.contains("(--history-prometheus-max-response-bytes)"),
            "{err}"
        );
        assert!(!err.contains("secret"), "{err}");

        // Nothing listens on port 1: refused, and said of Prometheus.
        let err = read(&client("http://127.0.0.1:1/prom/", 1 << 20))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "query \"q\": Prometheus at http://127.0.0.1:1/prom could not be reached"
            ),
            "{err}"
        );
        // A bad setting names the endpoint and its flag.
        let mut cfg = PrometheusConfig::new("thanos:9090");
        cfg.role = Role::LongTerm;
        let err = Prometheus::new(&cfg).err().unwrap().to_string();
        assert!(
            err.starts_with("the long-term store (--history-prometheus-url): \"thanos:9090\""),
            "{err}"
        );
    }

    /// A multi-tenant store reads the tenant from `X-Scope-OrgID`: it is on every request, the
    /// instant probe and each chunk of a range read.
    #[tokio::test]
    async fn the_tenant_is_sent_on_every_request() {
        let (url, _, heads) = serve_recording(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json",
            r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#,
            false,
        )
        .await;
        let mut cfg = PrometheusConfig::new(&url);
        cfg.tenant = Some("team-a|team-b".into());
        let p = Prometheus::new(&cfg).unwrap();
        p.probe("q", Utc::now()).await.unwrap();
        let _ = read(&p).await;
        let heads = heads.lock().unwrap().clone();
        assert_eq!(heads.len(), 2, "{heads:?}");
        for head in &heads {
            let tenant = head
                .lines()
                .find_map(|l| l.strip_prefix("x-scope-orgid: "))
                .or_else(|| head.lines().find_map(|l| l.strip_prefix("X-Scope-OrgID: ")));
            assert_eq!(tenant, Some("team-a|team-b"), "{head}");
        }
        // Without one, no header.
        let (url, _, heads) = serve_recording(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json",
            r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#,
            false,
        )
        .await;
        client(&url, 1 << 20).probe("q", Utc::now()).await.unwrap();
        let head = heads.lock().unwrap()[0].to_ascii_lowercase();
        assert!(!head.contains("x-scope-orgid"), "{head}");
    }

    #[test]
    fn a_tenant_is_printable_ascii_and_bounded() {
        assert_eq!(tenant("anonymous"), Ok("anonymous".into()));
        assert_eq!(tenant("team-a|team-b"), Ok("team-a|team-b".into()));
        assert!(tenant("").unwrap_err().contains("empty"));
        for bad in ["team a", "team\n", "tëam", "team\t"] {
            let err = tenant(bad).unwrap_err();
            assert!(
                err.contains("printable ASCII without spaces"),
                "{bad:?}: {err}"
            );
        }
        assert!(tenant(&"t".repeat(MAX_TENANT_BYTES)).is_ok());
        let err = tenant(&"t".repeat(MAX_TENANT_BYTES + 1)).unwrap_err();
        assert!(err.contains("1025 bytes long"), "{err}");
        // A config made in code is held to the same rule, naming the flag.
        let mut cfg = PrometheusConfig::new("http://127.0.0.1:9");
        cfg.tenant = Some("a b".into());
        let err = Prometheus::new(&cfg).err().unwrap().to_string();
        assert!(err.contains("(--prometheus-tenant)"), "{err}");
    }

    #[test]
    fn the_limit_flag_is_bounded() {
        assert_eq!(response_bytes("4194304"), Ok(4 << 20));
        assert!(response_bytes("1000").unwrap_err().contains("outside"));
        assert!(response_bytes("4Mi").unwrap_err().contains("not a number"));
        assert!(response_bytes("2000000000000").is_err());
    }
}
