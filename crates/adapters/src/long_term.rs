//! A long-term history source beside Prometheus (`prescaler run --history-prometheus-url`):
//! Thanos Query, Mimir, VictoriaMetrics, anything that answers Prometheus' HTTP API.
//!
//! Prometheus keeps 15 days by default, while `forecast.history` defaults to 28: read from it
//! alone, the weekly profile runs on what is left. With a long-term store set, the reads that
//! reach back go there, and the live load still comes from Prometheus:
//!
//! - the probe (one instant read at now, refusing a query of several series) goes to Prometheus;
//! - a range read no longer than `LIVE_SPAN` (each sync's newest minutes) goes to Prometheus;
//! - a longer one (the history's first read, or a catch-up after hours of failed reads) goes to
//!   the long-term store whole, and its newest `LIVE_SPAN` to Prometheus too, whose samples win
//!   where both have one: a long-term store may lag the present (Thanos uploads two-hour blocks,
//!   VictoriaMetrics holds back its newest 30 s by default, a remote-write queue may be behind),
//!   and Prometheus is where the live load is. Where Prometheus has a gap the store fills it;
//! - block means (only ever of history older than two days) go to the long-term store.
//!
//! Both get the same query: a scaler's query is confined to its namespace before it reaches any
//! source (`confine`), so the long-term store reads exactly what Prometheus would.
//!
//! A long read the store fails is made from Prometheus alone (see `live_instead`), and the
//! store's error kept for the query (`RangeSource::fallback`): `HistoryAvailable`, the backtest
//! and the plugin say that the history is short because the store failed, and which store, not
//! that its retention is short.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};

use crate::Result;
use crate::history::{LoadSource, RangeSource};
use crate::prometheus::{Prometheus, PrometheusConfig, Role};

/// The newest part of the time a read covers that is read from Prometheus: a few hours, more
/// than a long-term store lags in any common set-up, and a single range query (360 points).
pub const LIVE_SPAN: Duration = Duration::hours(6);

/// The most queries whose store failure is kept: one per scaler whose history's first read the
/// store failed; past it (scalers come and go) the oldest words are forgotten, not the memory
/// grown.
const FAILURES_KEPT: usize = 4096;

/// Prometheus for the live load, a long-term store for the history (see the module's text).
pub struct Tiered {
    live: Arc<dyn LoadSource>,
    long_term: Arc<dyn LoadSource>,
    /// The store's error for each query whose last long read it failed.
    failures: Mutex<HashMap<String, String>>,
}

impl Tiered {
    pub fn new(live: Arc<dyn LoadSource>, long_term: Arc<dyn LoadSource>) -> Self {
        Self {
            live,
            long_term,
            failures: Mutex::default(),
        }
    }

    /// Keeps the store's failure of `query`'s long read (`None`: it answered).
    fn note(&self, query: &str, failure: Option<String>) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        match failure {
            Some(error) => {
                if failures.len() >= FAILURES_KEPT && !failures.contains_key(query) {
                    failures.clear();
                }
                failures.insert(query.to_string(), error);
            }
            None => {
                failures.remove(query);
            }
        }
    }
}

/// The load source of the operator, the backtest and the plugin: Prometheus, with the long-term
/// store beside it when one is set (named "the long-term store" in its errors, whatever its
/// config said).
pub fn source(
    prometheus: &PrometheusConfig,
    long_term: Option<&PrometheusConfig>,
) -> Result<Arc<dyn LoadSource>> {
    let live: Arc<dyn LoadSource> = Arc::new(Prometheus::new(prometheus)?);
    Ok(match long_term {
        Some(config) => {
            let config = PrometheusConfig {
                role: Role::LongTerm,
                ..config.clone()
            };
            Arc::new(Tiered::new(live, Arc::new(Prometheus::new(&config)?)))
        }
        None => live,
    })
}

/// `older` with the samples of `newer` in place of its own at the same instants, in time order.
fn overlay(
    older: Vec<(DateTime<Utc>, f64)>,
    newer: Vec<(DateTime<Utc>, f64)>,
) -> Vec<(DateTime<Utc>, f64)> {
    let mut by_time: HashMap<DateTime<Utc>, f64> = older.into_iter().collect();
    by_time.extend(newer);
    let mut merged: Vec<_> = by_time.into_iter().collect();
    merged.sort_unstable_by_key(|(t, _)| *t);
    merged
}

/// The first instant of the grid `start, start + step, …` at or after `t`.
fn on_grid(start: DateTime<Utc>, step: Duration, t: DateTime<Utc>) -> DateTime<Utc> {
    let step_s = step.num_seconds().max(1);
    let offset = (t - start).num_seconds().max(0) as u64;
    start + Duration::seconds((offset.div_ceil(step_s as u64) * step_s as u64) as i64)
}

impl Tiered {
    /// A read the long-term store failed (down, slow, refusing), made from Prometheus instead:
    /// what Prometheus keeps is less history, and `HistoryAvailable` says how much; failing the
    /// whole read would leave the scaler without its live load, holding whatever it has while
    /// the load rises.
    async fn live_instead<T>(
        &self,
        query: &str,
        failed: crate::Error,
        live: crate::history::BoxedRead<'_, T>,
    ) -> Result<T> {
        // The error names the store and its URL ("the long-term store at http://…").
        tracing::warn!(
            error = %failed,
            "the long-term history source failed; reading from Prometheus alone"
        );
        self.note(query, Some(failed.to_string()));
        live.await
    }
}

impl RangeSource for Tiered {
    /// Prometheus' own: a read that takes half of it marks its namespace slow
    /// (`operator::fair_queue`), and the reads at every sync are Prometheus'. A history's first
    /// read from the store is once per scaler; each of its requests has the store's timeout.
    fn timeout(&self) -> StdDuration {
        self.live.read_timeout()
    }

    async fn range(
        &self,
        query: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step: Duration,
    ) -> Result<Vec<(DateTime<Utc>, f64)>> {
        if end - start <= LIVE_SPAN {
            return self.live.range_boxed(query, start, end, step).await;
        }
        let older = match self.long_term.range_boxed(query, start, end, step).await {
            Ok(older) => older,
            Err(e) => {
                return self
                    .live_instead(query, e, self.live.range_boxed(query, start, end, step))
                    .await;
            }
        };
        self.note(query, None);
        let live_from = on_grid(start, step, end - LIVE_SPAN);
        let newer = self.live.range_boxed(query, live_from, end, step).await?;
        Ok(overlay(older, newer))
    }

    async fn probe(&self, query: &str, at: DateTime<Utc>) -> Result<()> {
        self.live.probe_boxed(query, at).await
    }

    fn fallback(&self, query: &str) -> Option<String> {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.get(query).cloned()
    }

    fn has_long_term(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::sync::Mutex;

    /// A source holding `load` from `from` on (nothing before: its retention), recording the
    /// reads it is asked for.
    struct Store {
        from: DateTime<Utc>,
        load: f64,
        reads: Mutex<Vec<String>>,
    }

    impl Store {
        fn new(from: DateTime<Utc>, load: f64) -> Arc<Self> {
            Arc::new(Self {
                from,
                load,
                reads: Mutex::default(),
            })
        }
        fn reads(&self) -> Vec<String> {
            self.reads.lock().unwrap().clone()
        }
    }

    impl RangeSource for Store {
        async fn range(
            &self,
            query: &str,
            start: DateTime<Utc>,
            end: DateTime<Utc>,
            step: Duration,
        ) -> Result<Vec<(DateTime<Utc>, f64)>> {
            self.reads
                .lock()
                .unwrap()
                .push(format!("range {query} {}h", (end - start).num_hours()));
            let mut out = Vec::new();
            let mut t = start;
            while t <= end {
                if t >= self.from {
                    out.push((t, self.load));
                }
                t += step;
            }
            Ok(out)
        }

        async fn probe(&self, query: &str, _at: DateTime<Utc>) -> Result<()> {
            self.reads.lock().unwrap().push(format!("probe {query}"));
            Ok(())
        }
    }

    #[tokio::test]
    async fn history_from_the_store_the_newest_hours_from_prometheus() {
        let now = Utc.with_ymd_and_hms(2026, 3, 2, 12, 0, 0).unwrap();
        // Prometheus keeps 3 days; the store has weeks, but lags the present by an hour.
        let live = Store::new(now - Duration::days(3), 2.0);
        let store = Store::new(now - Duration::days(30), 1.0);
        let tiered = Tiered::new(live.clone(), store.clone());
        let q = "sum(x{namespace=\"shop\"})";

        tiered.probe(q, now).await.unwrap();
        let newest = tiered
            .range(q, now - Duration::minutes(3), now, Duration::minutes(1))
            .await
            .unwrap();
        assert_eq!(newest.len(), 4);
        assert!(store.reads().is_empty(), "{:?}", store.reads());

        let week = tiered
            .range(q, now - Duration::days(7), now, Duration::minutes(1))
            .await
            .unwrap();
        assert_eq!(week.len(), 7 * 1440 + 1, "every minute, once, in order");
        assert!(week.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(week[0], (now - Duration::days(7), 1.0), "the store's");
        let live_from = now - LIVE_SPAN;
        assert!(
            week.iter()
                .all(|(t, v)| *v == if *t >= live_from { 2.0 } else { 1.0 }),
            "Prometheus' samples win over its last {LIVE_SPAN}"
        );
        // The same (confined) query everywhere; the store gets the long reads only.
        assert_eq!(
            live.reads(),
            [
                format!("probe {q}"),
                format!("range {q} 0h"),
                format!("range {q} 6h")
            ]
        );
        assert_eq!(store.reads(), [format!("range {q} 168h")]);
    }

    /// A long-term store that answers nothing but errors (down, or refusing).
    struct Down;

    impl RangeSource for Down {
        async fn range(
            &self,
            query: &str,
            _start: DateTime<Utc>,
            _end: DateTime<Utc>,
            _step: Duration,
        ) -> Result<Vec<(DateTime<Utc>, f64)>> {
            Err(crate::Error::Config {
                what: format!("the store, for {query}"),
                message: "connection refused".into(),
            })
        }

        async fn probe(&self, _query: &str, _at: DateTime<Utc>) -> Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_store_that_fails_leaves_the_history_to_prometheus() {
        let now = Utc.with_ymd_and_hms(2026, 3, 2, 12, 0, 0).unwrap();
        let live = Store::new(now - Duration::days(3), 2.0);
        let tiered = Tiered::new(live.clone(), Arc::new(Down));
        let q = "sum(x{namespace=\"shop\"})";
        let week = tiered
            .range(q, now - Duration::days(7), now, Duration::minutes(1))
            .await
            .expect("Prometheus answers what it keeps");
        assert_eq!(week.len(), 3 * 1440 + 1, "Prometheus' three days");
        assert!(week.iter().all(|(_, v)| *v == 2.0));
        assert_eq!(live.reads(), [format!("range {q} 168h")]);
        // The store's failure is kept for that query, to be said where the short history is.
        let said = tiered.fallback(q).expect("the store's failure is kept");
        assert!(said.contains("connection refused"), "{said}");
        assert_eq!(
            tiered.fallback("sum(y)"),
            None,
            "another query was not read"
        );
    }

    #[tokio::test]
    async fn a_store_that_answers_again_is_no_longer_said_to_fail() {
        let now = Utc.with_ymd_and_hms(2026, 3, 2, 12, 0, 0).unwrap();
        let live = Store::new(now - Duration::days(3), 2.0);
        let store = Store::new(now - Duration::days(30), 1.0);
        let tiered = Tiered::new(live, store);
        let q = "sum(x{namespace=\"shop\"})";
        tiered.note(q, Some("the long-term store at http://t refused it".into()));
        tiered
            .range(q, now - Duration::days(7), now, Duration::minutes(1))
            .await
            .unwrap();
        assert_eq!(tiered.fallback(q), None);
    }

    /// The operator's source names the store as the store in its errors, whatever role its
    /// config was given: an SRE must see which endpoint failed.
    #[tokio::test]
    async fn the_store_is_named_as_the_store() {
        let live = PrometheusConfig::new("http://127.0.0.1:1");
        let mut store = PrometheusConfig::new("http://127.0.0.1:1/thanos");
        store.timeout = StdDuration::from_secs(2);
        let source = source(&live, Some(&store)).unwrap();
        let now = Utc::now();
        let q = "sum(x)";
        let err = source
            .range_boxed(q, now - Duration::days(7), now, Duration::minutes(1))
            .await
            .unwrap_err()
            .to_string();
        // The store failed first, then Prometheus: the read's error is Prometheus'.
        assert!(
            err.contains("Prometheus at http://127.0.0.1:1 could not be reached"),
            "{err}"
        );
        let said = source.fallback_of(q).unwrap();
        assert!(
            said.contains("the long-term store at http://127.0.0.1:1/thanos could not be reached"),
            "{said}"
        );
    }

    #[test]
    fn the_live_part_starts_on_the_reads_grid() {
        let start = Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 30).unwrap();
        let t = Utc.with_ymd_and_hms(2026, 3, 2, 6, 0, 0).unwrap();
        assert_eq!(
            on_grid(start, Duration::minutes(1), t),
            t + Duration::seconds(30)
        );
        assert_eq!(on_grid(start, Duration::minutes(1), start), start);
    }
}
