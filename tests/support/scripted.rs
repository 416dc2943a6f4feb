//! A load source scripted by the test, in place of Prometheus, for controller tests that are
//! about Kubernetes and the decisions rather than about reading Prometheus: the operator holds
//! its source as `Arc<dyn LoadSource>` and reads this one as it reads Prometheus.
//!
//! What it stands for: Prometheus' range queries on a step grid up to the present (nothing
//! later than now), a query's series absent where the script says `None`, `avg_over_time` and
//! `count_over_time` of the steps of each block, and an instant probe that finds the series.
//! What it does not: PromQL, namespace confinement, the byte and series limits, timeouts (tests
//! of those run against a real Prometheus).
//!
//! A query's load is whatever the script's function gives for it: a function that tells queries
//! apart (by the `service` label in them, say) stands for a Prometheus holding several series;
//! `None` before some instant, for a series whose recorded history starts there.
//! `with_timeout` stands for the request timeout of a Prometheus client (`PrometheusConfig::
//! timeout`): the operator marks a namespace suspect when a reconcile holds its slot for half of
//! it, so a test about slots and namespaces gives the timeout the Prometheus it stands for had.
//! The scripted source itself answers at once and never times out.

use std::future::{Future, ready};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use prescaler::adapters::history::RangeSource;

/// The load of each query at each instant, and how many reads were made.
pub struct ScriptedSource {
    load: fn(&str, DateTime<Utc>) -> Option<f64>,
    reads: AtomicUsize,
    /// Every query read, in order, with the span of a range read (`None` for a probe).
    queries: std::sync::Mutex<Vec<(String, Option<Duration>)>>,
    timeout: StdDuration,
    /// Range reads of the queries that contain it are refused, as Prometheus refuses a query
    /// it cannot run (`with_refused`).
    refused: std::sync::Mutex<Option<String>>,
}

impl ScriptedSource {
    /// A source with no timeout (`RangeSource::timeout`'s default: a recorded trace's).
    pub fn new(load: fn(&str, DateTime<Utc>) -> Option<f64>) -> Self {
        Self {
            load,
            reads: AtomicUsize::new(0),
            queries: Default::default(),
            timeout: StdDuration::MAX,
            refused: Default::default(),
        }
    }

    /// From now on, range reads of the queries that contain `needle` are refused (an error
    /// that does not pass with a retry, as bad PromQL); `None` answers them again.
    pub fn refuse(&self, needle: Option<&str>) {
        *self.refused.lock().unwrap_or_else(|p| p.into_inner()) = needle.map(str::to_string);
    }

    /// Every query read so far, in order.
    pub fn queries(&self) -> Vec<String> {
        let queries = self.queries.lock().unwrap_or_else(|p| p.into_inner());
        queries.iter().map(|(q, _)| q.clone()).collect()
    }

    /// The same, telling the operator that a read may take `timeout`, as a Prometheus client
    /// with that timeout does.
    pub fn with_timeout(self, timeout: StdDuration) -> Self {
        Self { timeout, ..self }
    }

    /// Range reads, block reads and probes made so far.
    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }

    /// Reads so far (range reads and probes) of the queries that contain `needle`.
    pub fn reads_of(&self, needle: &str) -> usize {
        self.reads_where(needle, |_| true)
    }

    /// How many range reads of a query containing `needle` spanned at most `span` (the newest
    /// minutes, not a history's weeks).
    pub fn short_reads_of(&self, needle: &str, span: Duration) -> usize {
        self.reads_where(needle, |s| s.is_some_and(|s| s <= span))
    }

    /// How many range reads of a query containing `needle` spanned more than `span`.
    pub fn long_reads_of(&self, needle: &str, span: Duration) -> usize {
        self.reads_where(needle, |s| s.is_some_and(|s| s > span))
    }

    fn reads_where(&self, needle: &str, span: impl Fn(Option<Duration>) -> bool) -> usize {
        let queries = self.queries.lock().unwrap_or_else(|p| p.into_inner());
        queries
            .iter()
            .filter(|(q, s)| q.contains(needle) && span(*s))
            .count()
    }

    fn count(&self, query: &str, span: Option<Duration>) {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let mut queries = self.queries.lock().unwrap_or_else(|p| p.into_inner());
        queries.push((query.to_string(), span));
    }

    fn at(&self, query: &str, t: DateTime<Utc>) -> Option<f64> {
        (t <= Utc::now())
            .then(|| (self.load)(query, t))
            .flatten()
            .filter(|v| v.is_finite())
    }
}

impl RangeSource for ScriptedSource {
    fn timeout(&self) -> StdDuration {
        self.timeout
    }

    fn range(
        &self,
        query: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step: Duration,
    ) -> impl Future<Output = prescaler::adapters::Result<Vec<(DateTime<Utc>, f64)>>> + Send {
        self.count(query, Some(end - start));
        let refused = self
            .refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(needle) = refused.filter(|n| query.contains(n.as_str())) {
            return ready(Err(prescaler::adapters::Error::Prometheus {
                query: query.to_string(),
                server: "the scripted source".into(),
                source: prescaler::adapters::prometheus::QueryError::Refused {
                    message: format!("scripted: queries of {needle} are refused"),
                },
            }));
        }
        let samples = grid(start, end, step)
            .into_iter()
            .filter_map(|t| self.at(query, t).map(|v| (t, v)))
            .collect();
        ready(Ok(samples))
    }

    fn probe(
        &self,
        query: &str,
        _at: DateTime<Utc>,
    ) -> impl Future<Output = prescaler::adapters::Result<()>> + Send {
        self.count(query, None);
        ready(Ok(()))
    }
}

/// The instants `start, start + step, …, ≤ end`.
pub fn grid(start: DateTime<Utc>, end: DateTime<Utc>, step: Duration) -> Vec<DateTime<Utc>> {
    let step = step.max(Duration::seconds(1));
    let mut out = Vec::new();
    let mut t = start;
    while t <= end {
        out.push(t);
        t += step;
    }
    out
}
