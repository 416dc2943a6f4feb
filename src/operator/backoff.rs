//! When a scaler's Prometheus read is sent again after it failed.
//!
//! A query too expensive for Prometheus (`sum(max_over_time({__name__=~".+"}[1d:1s]))`) costs it
//! the whole timeout every time it is sent: at every 30-second sync, a third of a core for each
//! such scaler. So a failed read is not sent again at the next sync but after a delay that
//! doubles with each failure in a row: one sync period, two, four, … up to 10 minutes (less up to
//! 10 % of jitter, derived from the scaler so that a thousand scalers that failed together do
//! not come back together). While it waits nothing is sent and the planner holds, as it does on
//! any failure. A success ends the backoff; so does a new spec (a new generation or query), which
//! is read at once: whoever fixed the query wants to know now.
//!
//! A failure that never reached Prometheus' query engine (a refused connection, TLS, a 401)
//! costs Prometheus nothing and says nothing about the query: it backs off to 2 minutes at most,
//! so that every scaler sees Prometheus again soon after an outage.
//!
//! Pure: times are passed in, so that the tests run on a fake clock.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{Duration, Instant};

use crate::adapters::Error;
use crate::adapters::prometheus::QueryError;

/// The longest wait after failures of the query itself.
pub const MAX_DELAY: Duration = Duration::from_secs(600);
/// The longest wait after failures to reach Prometheus.
pub const MAX_DELAY_UNREACHABLE: Duration = Duration::from_secs(120);
/// Timeouts in a row after which the condition names the query as the cause (`QueryTimeout`).
pub const TIMEOUTS_TO_REPORT: u32 = 3;

/// What kind of failure a read ended in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// No answer in time, at Prometheus or waiting for it.
    TimedOut,
    /// The answer passed `--prometheus-max-response-bytes`.
    TooLarge,
    /// The query returns several series.
    SeveralSeries,
    /// Prometheus could not be reached, or answered as Prometheus does not.
    Unreachable,
    /// Prometheus refused the query (bad PromQL, too many samples), or its answer was no load.
    Refused,
}

impl FailureKind {
    pub fn of(error: &Error) -> Self {
        match error {
            Error::Prometheus { source, .. } => match source {
                QueryError::TimedOut { .. } => FailureKind::TimedOut,
                QueryError::ResponseTooLarge { .. } => FailureKind::TooLarge,
                QueryError::SeveralSeries(_) => FailureKind::SeveralSeries,
                QueryError::Unreachable { .. } | QueryError::Credentials { .. } => {
                    FailureKind::Unreachable
                }
                QueryError::Refused { .. } | QueryError::NotANumber(_) => FailureKind::Refused,
            },
            _ => FailureKind::Refused,
        }
    }
}

/// The last failure of a scaler's read, and when the next read is.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    pub kind: FailureKind,
    /// The error, as told.
    pub error: String,
    /// Failed reads in a row.
    pub in_a_row: u32,
    /// Of them, the timeouts at the end of the run.
    pub timeouts_in_a_row: u32,
    /// The wait before the next read.
    pub retry_in: Duration,
}

impl Failure {
    /// The `MetricsAvailable=False` reason.
    pub fn reason(&self) -> &'static str {
        match self.kind {
            FailureKind::TimedOut if self.timeouts_in_a_row >= TIMEOUTS_TO_REPORT => "QueryTimeout",
            FailureKind::TooLarge => "ResponseTooLarge",
            FailureKind::SeveralSeries => "SeveralSeries",
            _ => "PrometheusUnavailable",
        }
    }

    /// The condition's message. It changes with each failure, never while waiting: a status is
    /// written only when it changes.
    pub fn message(&self) -> String {
        self.message_of("spec.metric.query")
    }

    /// `message` of the query at `field` (`spec.metrics[1].query` for one of several metrics).
    pub fn message_of(&self, field: &str) -> String {
        let retry = crate::api::format_duration(
            chrono::Duration::from_std(self.retry_in).unwrap_or(chrono::Duration::MAX),
        );
        let hold = "holding at least the current replicas until the metrics return";
        if self.reason() == "QueryTimeout" {
            return format!(
                "{field} timed out {} times in a row ({}); next try in {retry}, then at most every {}; make the query cheaper (a recording rule, a shorter range) — Prometheus' --query.timeout and --query.max-samples bound what it may cost; {hold}",
                self.timeouts_in_a_row,
                self.error,
                crate::api::format_duration(chrono::Duration::seconds(MAX_DELAY.as_secs() as i64))
            );
        }
        match self.in_a_row {
            1 => format!("{}; next try in {retry}; {hold}", self.error),
            n => format!(
                "{}; {n} failures in a row, next try in {retry}; {hold}",
                self.error
            ),
        }
    }
}

/// The backoff of one scaler's reads.
#[derive(Clone, Debug)]
pub struct ReadBackoff {
    /// The first wait: the sync period.
    base: Duration,
    /// What the failures were for (see `read_key`).
    key: Option<u64>,
    failure: Option<Failure>,
    next_try: Option<Instant>,
}

/// Names what is read: a new spec generation or query is a new read.
pub fn read_key(generation: Option<i64>, query: &str) -> u64 {
    let mut h = DefaultHasher::new();
    (generation, query).hash(&mut h);
    h.finish()
}

impl ReadBackoff {
    pub fn new(base: Duration) -> Self {
        Self {
            base: base.max(Duration::from_secs(1)),
            key: None,
            failure: None,
            next_try: None,
        }
    }

    /// `None`: read now. `Some`: wait; the failure that makes it wait. A read of another `key`
    /// than the failures' is sent at once.
    pub fn gate(&mut self, key: u64, now: Instant) -> Option<&Failure> {
        if self.key != Some(key) {
            self.succeeded();
            self.key = Some(key);
        }
        match self.next_try {
            Some(at) if now < at => self.failure.as_ref(),
            _ => None,
        }
    }

    /// The read succeeded: the next one is at the next sync.
    pub fn succeeded(&mut self) {
        self.failure = None;
        self.next_try = None;
    }

    /// The read failed at `now`: the next one waits.
    pub fn failed(&mut self, kind: FailureKind, error: String, now: Instant) -> &Failure {
        let (in_a_row, timeouts) = match &self.failure {
            Some(last) => (last.in_a_row + 1, last.timeouts_in_a_row),
            None => (1, 0),
        };
        let timeouts_in_a_row = match kind {
            FailureKind::TimedOut => timeouts + 1,
            _ => 0,
        };
        let cap = match kind {
            FailureKind::Unreachable => MAX_DELAY_UNREACHABLE,
            _ => MAX_DELAY,
        };
        let nominal = self
            .base
            .saturating_mul(2u32.saturating_pow(in_a_row.saturating_sub(1).min(20)))
            .min(cap);
        // Whole seconds: the wait is told in the condition.
        let retry_in = Duration::from_secs(
            (nominal.as_secs_f64() * (1.0 - 0.1 * self.jitter(in_a_row)))
                .round()
                .max(1.0) as u64,
        );
        self.next_try = now.checked_add(retry_in);
        &*self.failure.insert(Failure {
            kind,
            error,
            in_a_row,
            timeouts_in_a_row,
            retry_in,
        })
    }

    /// A fraction in [0, 1) fixed by the scaler's read and the failure count.
    fn jitter(&self, in_a_row: u32) -> f64 {
        let mut h = DefaultHasher::new();
        (self.key, in_a_row).hash(&mut h);
        (h.finish() % 1000) as f64 / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    /// Fails every read the gate lets through, on a fake clock ticking at the sync period;
    /// returns the times of the reads.
    fn reads_while_failing(
        backoff: &mut ReadBackoff,
        kind: FailureKind,
        key: u64,
        t0: Instant,
        sync: f64,
        until: f64,
    ) -> Vec<f64> {
        let mut reads = Vec::new();
        let mut t = 0.0;
        while t < until {
            let now = t0 + secs(t);
            if backoff.gate(key, now).is_none() {
                reads.push(t);
                backoff.failed(kind, "boom".into(), now);
            }
            t += sync;
        }
        reads
    }

    #[test]
    fn failures_double_the_wait_up_to_ten_minutes() {
        let t0 = Instant::now();
        let mut b = ReadBackoff::new(secs(30.0));
        let key = read_key(Some(1), "sum(q)");
        let reads = reads_while_failing(&mut b, FailureKind::TimedOut, key, t0, 30.0, 3600.0);
        // Without the backoff: 120 reads in an hour. With it: 30 s, 60 s, … then every 10 min
        // at most (less up to 10 % of jitter).
        assert!(reads.len() <= 12, "{} reads: {reads:?}", reads.len());
        assert!(reads.len() >= 9, "{} reads: {reads:?}", reads.len());
        let gaps: Vec<f64> = reads.windows(2).map(|w| w[1] - w[0]).collect();
        assert_eq!(gaps[..4], [30.0, 60.0, 120.0, 240.0], "{gaps:?}");
        assert!(gaps.iter().all(|&g| g <= 600.0), "{gaps:?}");
        assert!(gaps.last().copied().unwrap_or(0.0) >= 540.0, "{gaps:?}");
        let f = b.failure.clone().unwrap();
        assert!(f.retry_in <= MAX_DELAY && f.retry_in >= MAX_DELAY.mul_f64(0.9));
    }

    #[test]
    fn repeated_timeouts_name_the_query() {
        let t0 = Instant::now();
        let mut b = ReadBackoff::new(secs(1.0));
        assert!(b.gate(read_key(Some(1), "q"), t0).is_none());
        for (n, reason) in [
            (1, "PrometheusUnavailable"),
            (2, "PrometheusUnavailable"),
            (3, "QueryTimeout"),
        ] {
            let f = b.failed(FailureKind::TimedOut, "no answer".into(), t0);
            assert_eq!((f.in_a_row, f.timeouts_in_a_row), (n, n));
            assert_eq!(f.reason(), reason);
        }
        let message = b.failure.as_ref().unwrap().message();
        assert!(
            message.starts_with("spec.metric.query timed out 3 times in a row (no answer)")
                && message.contains("next try in 4s")
                && message.contains("--query.timeout")
                && message.contains("holding"),
            "{message}"
        );
        // One of several metrics is named by its place in spec.metrics.
        let message = b
            .failure
            .as_ref()
            .unwrap()
            .message_of("spec.metrics[1].query");
        assert!(
            message.starts_with("spec.metrics[1].query timed out 3 times in a row"),
            "{message}"
        );
        // Another kind of failure breaks the run of timeouts.
        let f = b.failed(FailureKind::Refused, "bad_data".into(), t0);
        assert_eq!((f.in_a_row, f.timeouts_in_a_row), (4, 0));
        assert_eq!(f.reason(), "PrometheusUnavailable");
        let too_large = b.failed(FailureKind::TooLarge, "big".into(), t0).reason();
        assert_eq!(too_large, "ResponseTooLarge");
        let several = b
            .failed(FailureKind::SeveralSeries, "2".into(), t0)
            .reason();
        assert_eq!(several, "SeveralSeries");
    }

    #[test]
    fn a_success_or_a_new_spec_reads_at_once() {
        let t0 = Instant::now();
        let mut b = ReadBackoff::new(secs(30.0));
        let key = read_key(Some(1), "q");
        assert!(b.gate(key, t0).is_none(), "a first read is sent");
        for _ in 0..5 {
            b.failed(FailureKind::TimedOut, "slow".into(), t0);
        }
        let soon = t0 + secs(60.0);
        assert!(b.gate(key, soon).is_some(), "waits after 5 failures");
        // A new generation (any spec change) or a new query: at once.
        assert!(b.gate(read_key(Some(2), "q"), soon).is_none());
        b.failed(FailureKind::TimedOut, "slow".into(), soon);
        assert_eq!(b.failure.as_ref().unwrap().in_a_row, 1, "counted afresh");
        assert!(b.gate(read_key(Some(2), "q2"), soon).is_none());
        // A success: the next read at the next sync, and the next failure waits one period.
        b.failed(FailureKind::TimedOut, "slow".into(), soon);
        b.failed(FailureKind::TimedOut, "slow".into(), soon);
        b.succeeded();
        assert!(b.gate(read_key(Some(2), "q2"), soon).is_none());
        let f = b.failed(FailureKind::TimedOut, "slow".into(), soon);
        assert!(f.retry_in <= secs(30.0) && f.retry_in >= secs(27.0));
    }

    #[test]
    fn an_unreachable_prometheus_is_tried_at_least_every_two_minutes() {
        let t0 = Instant::now();
        let mut b = ReadBackoff::new(secs(30.0));
        let key = read_key(None, "q");
        let reads = reads_while_failing(&mut b, FailureKind::Unreachable, key, t0, 30.0, 3600.0);
        let gaps: Vec<f64> = reads.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.iter().all(|&g| g <= 120.0), "{gaps:?}");
        assert!(reads.len() >= 25, "{} reads", reads.len());
    }

    #[test]
    fn scalers_that_failed_together_do_not_retry_together() {
        let t0 = Instant::now();
        let mut retries: Vec<Duration> = (0..50)
            .map(|i| {
                let mut b = ReadBackoff::new(secs(30.0));
                b.gate(read_key(Some(1), &format!("q{i}")), t0);
                for _ in 0..6 {
                    b.failed(FailureKind::TimedOut, "slow".into(), t0);
                }
                b.failure.unwrap().retry_in
            })
            .collect();
        retries.sort();
        retries.dedup();
        assert!(retries.len() > 30, "{retries:?}");
    }
}
