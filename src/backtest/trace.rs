//! Recorded load: a `timestamp,value` CSV (RFC 3339 UTC timestamps, strictly increasing: a duplicate
//! or a row out of order is an error naming both lines) turned
//! into the one-minute series the backtest simulates on.
//!
//! Between samples the demand is interpolated linearly (as `docs/simulation.md` says). A gap —
//! samples further apart than 1.5 times the trace's usual step — is different: the demand is still
//! interpolated so that the simulation can go on, but the metric is marked missing there (a real
//! Prometheus would have had no data) and those minutes are not scored.

use std::path::Path;

use chrono::{DateTime, Duration, Utc};

use crate::adapters::confine::confine_to_namespace;
use crate::adapters::history::RangeSource;
use crate::api::{Seasonality, ValidatedSpec};
use crate::planning::coverage::{self, HistoryFrom, MetricHistory};
use crate::planning::forecast::ModelConfig;
use crate::{Error, Result};

/// A trace resampled to one-minute steps.
#[derive(Clone, Debug)]
pub struct Trace {
    /// Where it came from, for messages.
    pub name: String,
    pub start: DateTime<Utc>,
    /// The demand each minute (interpolated).
    pub demand: Vec<f64>,
    /// Whether each minute lies between two samples at most 1.5 native steps apart.
    pub observed: Vec<bool>,
    /// The trace's usual sample step.
    pub native_step: Duration,
}

impl Trace {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            context: format!("reading trace {}", path.display()),
            source,
        })?;
        Self::parse(&path.display().to_string(), &text)
    }

    /// Parses CSV text (an optional `timestamp,value` header, `#` comments); `name` is used in
    /// error messages.
    pub fn parse(name: &str, text: &str) -> Result<Self> {
        let err = |line: u64, message: String| Error::Trace {
            path: name.to_string(),
            message: format!("line {line}: {message}"),
        };
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .comment(Some(b'#'))
            .trim(csv::Trim::All)
            .flexible(true)
            .from_reader(text.as_bytes());
        let mut samples: Vec<(DateTime<Utc>, f64)> = Vec::new();
        let mut previous_line = 0;
        for (n, record) in reader.records().enumerate() {
            let record = record.map_err(|source| Error::Csv {
                context: format!("reading trace {name}"),
                source,
            })?;
            let line = record.position().map_or(n as u64 + 1, |p| p.line());
            let (Some(ts), Some(value), None) = (record.get(0), record.get(1), record.get(2))
            else {
                return Err(err(
                    line,
                    format!(
                        "expected `timestamp,value`, got {:?}",
                        record.iter().collect::<Vec<_>>()
                    ),
                ));
            };
            if n == 0 && ts == "timestamp" {
                continue;
            }
            let t = DateTime::parse_from_rfc3339(ts)
                .map_err(|e| err(line, format!("timestamp {ts:?} is not RFC 3339: {e}")))?
                .with_timezone(&Utc);
            let v: f64 = value
                .parse()
                .map_err(|_| err(line, format!("value {value:?} is not a number")))?;
            if !crate::planning::forecast::is_load(v) {
                return Err(err(
                    line,
                    format!(
                        "value {v} must be a finite number ≥ 0 and at most {:e}",
                        crate::planning::forecast::MAX_LOAD
                    ),
                ));
            }
            if let Some((prev, _)) = samples.last() {
                if t == *prev {
                    return Err(err(
                        line,
                        format!(
                            "duplicate timestamp {ts} (also on line {previous_line}): one value a timestamp"
                        ),
                    ));
                }
                if t < *prev {
                    return Err(err(
                        line,
                        format!(
                            "timestamp {ts} is before line {previous_line}'s ({}): rows must be in time order",
                            prev.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
                        ),
                    ));
                }
            }
            previous_line = line;
            samples.push((t, v));
        }
        if samples.len() < 2 {
            return Err(Error::Trace {
                path: name.into(),
                message: "needs at least two samples".into(),
            });
        }
        Ok(Self::from_samples(name, &samples))
    }

    /// A CSV with one load column per metric: the header `timestamp,NAME,…` names each column
    /// after one of `names` (`spec.metrics[].name`), in any order; one trace per metric, in the
    /// order of `names`, each checked as `parse` checks a trace (same line numbers). With one
    /// metric, a two-column CSV is its load whatever its header says (`timestamp,value` as
    /// before). A metric without a column, or a column no metric names, is an error naming both.
    pub fn parse_columns(name: &str, text: &str, names: &[String]) -> Result<Vec<Self>> {
        let err = |message: String| Error::Trace {
            path: name.to_string(),
            message,
        };
        // The first line that is not a comment or blank: the header.
        let header: Option<Vec<String>> = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| l.split(',').map(|c| c.trim().to_string()).collect());
        let columns = match &header {
            Some(h) if h.first().map(String::as_str) == Some("timestamp") => h[1..].to_vec(),
            _ if names.len() == 1 => return Ok(vec![Self::parse(name, text)?]),
            _ => {
                return Err(err(format!(
                    "needs a header `timestamp,{}`: one load column per metric of spec.metrics",
                    names.join(",")
                )));
            }
        };
        if names.len() == 1 && columns.len() == 1 {
            return Ok(vec![Self::parse(name, text)?]);
        }
        if let Some(extra) = columns.iter().find(|c| !names.contains(c)) {
            return Err(err(format!(
                "column {extra:?} is not a metric of the spec (spec.metrics names {})",
                quoted(names)
            )));
        }
        if let Some(i) = columns
            .iter()
            .position(|c| columns.iter().filter(|d| *d == c).count() > 1)
        {
            return Err(err(format!("column {:?} appears twice", columns[i])));
        }
        let mut traces = Vec::with_capacity(names.len());
        for (i, metric) in names.iter().enumerate() {
            let Some(k) = columns.iter().position(|c| c == metric) else {
                return Err(err(format!(
                    "no column for spec.metrics[{i}] {metric:?} (the columns are {})",
                    quoted(&columns)
                )));
            };
            // This metric's column alone, every other line as it was: `parse` then checks it
            // and names the lines as they are in the file.
            let one: String = text
                .lines()
                .map(|line| {
                    let l = line.trim();
                    if l.is_empty() || l.starts_with('#') {
                        return line.to_string();
                    }
                    let fields: Vec<&str> = l.split(',').collect();
                    match (fields.first(), fields.get(k + 1)) {
                        (Some(ts), Some(v)) if fields.len() == columns.len() + 1 => {
                            format!("{ts},{v}")
                        }
                        _ => line.to_string(),
                    }
                })
                .collect::<Vec<_>>()
                .join("\n");
            let one = one.replacen(&format!("timestamp,{metric}"), "timestamp,value", 1);
            traces.push(Self::parse(&format!("{name} ({metric})"), &one)?);
        }
        Ok(traces)
    }

    /// `parse_columns` of the file at `path`.
    pub fn load_columns(path: &Path, names: &[String]) -> Result<Vec<Self>> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            context: format!("reading trace {}", path.display()),
            source,
        })?;
        Self::parse_columns(&path.display().to_string(), &text, names)
    }

    /// The traces of several metrics as one, in replicas: each minute the most replicas any
    /// metric's load needs at its `per_replica` (`max(load / per_replica)`; its ceiling is the
    /// highest of the metrics' ceilings), observed where every metric is. What the backtest
    /// scores several metrics on, with a load per replica of 1: the HPA on several metrics
    /// takes the highest count of any metric, and the count a load needs rises with it, so the
    /// HPA and the oracle on this series are those on the metrics. `traces` come from one CSV
    /// (`parse_columns`): the same minutes.
    pub fn in_replicas(name: &str, traces: &[Trace], per_replica: &[f64]) -> Trace {
        let first = &traces[0];
        let minutes = traces.iter().map(Trace::minutes).min().unwrap_or(0);
        let demand = (0..minutes)
            .map(|m| {
                traces
                    .iter()
                    .zip(per_replica)
                    .map(|(t, c)| t.demand[m] / c)
                    .fold(0.0, f64::max)
            })
            .collect();
        let observed = (0..minutes)
            .map(|m| traces.iter().all(|t| t.observed[m]))
            .collect();
        Trace {
            name: name.to_string(),
            start: first.start,
            demand,
            observed,
            native_step: first.native_step,
        }
    }

    /// Resamples irregular samples (at least two, in time order) onto whole minutes from the
    /// first sample's minute.
    pub fn from_samples(name: &str, samples: &[(DateTime<Utc>, f64)]) -> Self {
        let native_step = usual_step(samples);
        let max_gap = native_step * 3 / 2;
        let start = floor_minute(samples[0].0);
        let end = samples.last().expect("two samples").0;
        let minutes = (end - start).num_minutes() as usize + 1;
        let mut demand = Vec::with_capacity(minutes);
        let mut observed = Vec::with_capacity(minutes);
        let mut k = 0; // samples[k] is at or before the current minute
        for m in 0..minutes {
            let t = start + Duration::minutes(m as i64);
            while k + 1 < samples.len() && samples[k + 1].0 <= t {
                k += 1;
            }
            let (t0, v0) = samples[k];
            if t < t0 {
                // Before the first sample (it sits inside the first minute): hold it.
                demand.push(v0);
                observed.push(true);
                continue;
            }
            match samples.get(k + 1) {
                Some(&(t1, v1)) => {
                    let f = (t - t0).num_seconds() as f64 / (t1 - t0).num_seconds() as f64;
                    demand.push(v0 + (v1 - v0) * f);
                    observed.push(t1 - t0 <= max_gap);
                }
                None => {
                    demand.push(v0);
                    observed.push(true);
                }
            }
        }
        Self {
            name: name.to_string(),
            start,
            demand,
            observed,
            native_step,
        }
    }

    pub fn minutes(&self) -> usize {
        self.demand.len()
    }

    pub fn time(&self, minute: usize) -> DateTime<Utc> {
        self.start + Duration::minutes(minute as i64)
    }

    /// The metric as Prometheus would have had it: the demand, NaN inside gaps.
    pub fn metric(&self) -> Vec<f64> {
        self.demand
            .iter()
            .zip(&self.observed)
            .map(|(&d, &o)| if o { d } else { f64::NAN })
            .collect()
    }
}

/// The last `range` of `query` up to `now`, at one-minute steps, read from Prometheus (and a
/// long-term store beside it, `adapters::long_term`): "what would this spec have done last
/// week?".
pub async fn from_prometheus(
    prometheus: &(impl RangeSource + ?Sized),
    query: &str,
    range: Duration,
    now: DateTime<Utc>,
) -> Result<Trace> {
    let end = floor_minute(now);
    // A query of several series is refused from one instant read, before weeks of each.
    prometheus.probe(query, now).await?;
    let samples = prometheus
        .range(query, end - range, end, Duration::minutes(1))
        .await?;
    if samples.len() < 2 {
        return Err(Error::Trace {
            path: format!("query {query:?}"),
            message: format!(
                "{} samples came back over the last {}; nothing to replay",
                samples.len(),
                crate::api::format_duration(range)
            ),
        });
    }
    Ok(Trace::from_samples(&format!("query {query:?}"), &samples))
}

/// One metric's query as a replay from Prometheus sends it: its name, the spec field it was
/// written in (what its errors name), and the query itself, confined to the scaler's namespace
/// when the operator would confine it (`metric_queries`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricQuery {
    /// `spec.metrics[].name` (`load` for `spec.metric`).
    pub name: String,
    /// `spec.metric.query`, or `spec.metrics[i].query` for a spec that lists its metrics (one
    /// or several).
    pub field: String,
    pub query: String,
}

impl MetricQuery {
    /// `error` with the field it concerns in front: a spec that lists its metrics says which
    /// one failed (`spec.metrics[1].query: …`). A spec of `spec.metric` keeps the words it has
    /// always had: its one query is the query the error names.
    fn name_error(&self, error: Error) -> Error {
        match self.field.as_str() {
            SINGLE_FIELD => error,
            _ => Error::Metric {
                field: self.field.clone(),
                source: Box::new(error),
            },
        }
    }
}

/// The field of a spec's one `spec.metric`.
const SINGLE_FIELD: &str = "spec.metric.query";

/// The queries a replay of `spec` sends, one per metric in the spec's order, each confined to
/// `namespace` by `label` as the operator's `--confine-queries-to-namespace` confines it
/// (`adapters::confine`), when `confine` is `Some((label, namespace))`: a replay then reads the
/// series the operator reads, whatever else the query's selectors match. `listed`: the spec
/// writes `spec.metrics` (rather than `spec.metric`). A query that cannot be confined is refused,
/// naming its field, as the operator refuses the scaler.
pub fn metric_queries(
    spec: &ValidatedSpec,
    listed: bool,
    confine: Option<(&str, &str)>,
) -> Result<Vec<MetricQuery>> {
    spec.metrics
        .iter()
        .enumerate()
        .map(|(i, metric)| {
            let field = match listed {
                true => format!("spec.metrics[{i}].query"),
                false => SINGLE_FIELD.to_string(),
            };
            let query = match confine {
                Some((label, namespace)) => confine_to_namespace(&metric.query, label, namespace)
                    .map_err(|message| Error::InvalidSpec {
                    field: field.clone(),
                    message: format!("{message} (--confine-queries-to-namespace)"),
                })?,
                None => metric.query.clone(),
            };
            Ok(MetricQuery {
                name: metric.name.clone(),
                field,
                query,
            })
        })
        .collect()
}

/// What a replay read from Prometheus: one trace per metric, on the same minutes, and the note
/// for a history shorter than asked (`short_history_note_of_metrics`).
pub struct Read {
    pub traces: Vec<Trace>,
    pub note: Option<String>,
}

/// The last `range` of every metric's query up to `now` (`from_prometheus` each, one after the
/// other: each read is its own requests, each request bounded by the source's timeout, and a
/// failure names the metric's field), put on the same minutes (`align`), so that they replay
/// as the columns of a CSV do (`run_all_metrics`). With the long-term store beside Prometheus,
/// each query's older weeks come from it, as the operator reads each metric's history.
pub async fn metrics_from_prometheus(
    source: &(impl RangeSource + ?Sized),
    queries: &[MetricQuery],
    range: Duration,
    seasonality: &[Seasonality],
    now: DateTime<Utc>,
) -> Result<Read> {
    let mut traces = Vec::with_capacity(queries.len());
    let mut histories = Vec::with_capacity(queries.len());
    for q in queries {
        let trace = from_prometheus(source, &q.query, range, now)
            .await
            .map_err(|e| q.name_error(e))?;
        // Each metric's span and source before `align` pads them: a metric that began last
        // Tuesday is short whatever the others hold.
        histories.push((observed_span(&trace, now), source.fallback(&q.query)));
        traces.push(trace);
    }
    let metrics: Vec<MetricHistory<'_>> = queries
        .iter()
        .zip(&histories)
        .map(|(q, (observed, fallback))| MetricHistory {
            name: &q.name,
            observed: *observed,
            from: history_from(source, fallback.as_deref()),
        })
        .collect();
    let note = short_history_note_of_metrics(&metrics, range, seasonality);
    Ok(Read {
        traces: align(traces),
        note,
    })
}

/// What the report calls several metrics' replay: `spec.metrics (requests, queue)`.
pub fn metrics_name(queries: &[MetricQuery]) -> String {
    let names: Vec<&str> = queries.iter().map(|q| q.name.as_str()).collect();
    format!("spec.metrics ({})", names.join(", "))
}

/// Traces of several metrics on the same minutes: from the first minute any of them has to the
/// last, a trace padded where it has no sample — its nearest value held so that the simulation
/// goes on, and the minute not observed, as a gap is (a metric Prometheus holds less of has no
/// data there; those minutes are not scored). Traces already on the same minutes (a CSV's
/// columns) are returned as they are.
pub fn align(traces: Vec<Trace>) -> Vec<Trace> {
    let Some(start) = traces.iter().map(|t| t.start).min() else {
        return traces;
    };
    let end = traces
        .iter()
        .map(|t| t.start + Duration::minutes(t.minutes() as i64))
        .max()
        .unwrap_or(start);
    let minutes = (end - start).num_minutes().max(0) as usize;
    traces
        .into_iter()
        .map(|t| {
            if t.start == start && t.minutes() == minutes {
                return t;
            }
            let before = (t.start - start).num_minutes().max(0) as usize;
            let after = minutes.saturating_sub(before + t.minutes());
            let first = t.demand.first().copied().unwrap_or(0.0);
            let last = t.demand.last().copied().unwrap_or(first);
            let mut demand = Vec::with_capacity(minutes);
            let mut observed = Vec::with_capacity(minutes);
            demand.extend(std::iter::repeat_n(first, before));
            observed.extend(std::iter::repeat_n(false, before));
            demand.extend(&t.demand);
            observed.extend(&t.observed);
            demand.extend(std::iter::repeat_n(last, after));
            observed.extend(std::iter::repeat_n(false, after));
            Trace {
                start,
                demand,
                observed,
                ..t
            }
        })
        .collect()
}

/// Where the history of `query` came from, as `source` tells it: Prometheus alone, a long-term
/// store beside it, or a store that failed (and Prometheus alone instead).
pub fn history_from<'a>(
    source: &(impl RangeSource + ?Sized),
    fallback: Option<&'a str>,
) -> HistoryFrom<'a> {
    HistoryFrom::of(source.has_long_term(), fallback)
}

/// A note for a history shorter than `asked` (`observed` from its first sample to now), in the
/// operator's `HistoryAvailable` words ("14 of 21 days of history: the weekly profile rests on 2
/// weeks; … set a long-term source (--history-prometheus-url) …") and with its reason: a replay
/// or a plan on less history than asked is of another situation, and why it is short (Prometheus'
/// retention, a store that failed) decides what to do. `None` for a whole history.
pub fn short_history_note(
    observed: Duration,
    asked: Duration,
    seasonality: &[Seasonality],
    from: HistoryFrom<'_>,
) -> Option<String> {
    let cov = coverage::coverage(observed, asked);
    let verdict = coverage::verdict(cov, seasonality, &ModelConfig::default(), from);
    (!verdict.complete).then(|| {
        format!(
            "{} (the operator's HistoryAvailable=False {})",
            verdict.message, verdict.reason
        )
    })
}

/// `short_history_note` for every metric of a replay or a plan (`metrics` in the spec's order):
/// one metric in the words it has always had; several as the operator's `HistoryAvailable`
/// judges them (`coverage::verdict_of_metrics`), naming each metric that falls short and how
/// much it holds (`metric "queue": 14 of 28 days of history: …`).
pub fn short_history_note_of_metrics(
    metrics: &[MetricHistory<'_>],
    asked: Duration,
    seasonality: &[Seasonality],
) -> Option<String> {
    let verdict =
        coverage::verdict_of_metrics(metrics, asked, seasonality, &ModelConfig::default());
    (!verdict.complete).then(|| {
        format!(
            "{} (the operator's HistoryAvailable=False {})",
            verdict.message, verdict.reason
        )
    })
}

/// How much history a trace read up to `now` holds: from its first minute.
pub fn observed_span(trace: &Trace, now: DateTime<Utc>) -> Duration {
    floor_minute(now) - trace.start
}

fn floor_minute(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp().div_euclid(60) * 60, 0).expect("in range")
}

/// The most common difference between consecutive samples.
fn usual_step(samples: &[(DateTime<Utc>, f64)]) -> Duration {
    let mut diffs: Vec<i64> = samples
        .windows(2)
        .map(|w| (w[1].0 - w[0].0).num_seconds())
        .collect();
    diffs.sort_unstable();
    let (mut best, mut best_n, mut i) = (diffs[0], 0, 0);
    while i < diffs.len() {
        let j = diffs[i..].iter().take_while(|&&d| d == diffs[i]).count();
        if j > best_n {
            best = diffs[i];
            best_n = j;
        }
        i += j;
    }
    Duration::seconds(best)
}

/// `"a", "b"`: names as an error message lists them.
fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolates_to_minutes_and_marks_gaps() {
        let csv = "timestamp,value\n\
                   2026-01-01T00:00:00Z,0\n\
                   2026-01-01T00:10:00Z,100\n\
                   2026-01-01T00:20:00Z,100\n\
                   2026-01-01T00:30:00Z,100\n\
                   2026-01-01T01:00:00Z,400\n";
        let t = Trace::parse("t.csv", csv).unwrap();
        assert_eq!(t.native_step, Duration::minutes(10));
        assert_eq!(t.minutes(), 61);
        assert_eq!(t.demand[5], 50.0);
        assert_eq!(t.demand[45], 250.0);
        assert!(t.observed[29]);
        assert!(!t.observed[30] && !t.observed[59]);
        assert!(t.observed[60]);
        assert!(t.metric()[45].is_nan());
    }

    #[test]
    fn traces_of_several_metrics_are_put_on_the_same_minutes() {
        let at = |m: i64| {
            DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
                .unwrap()
                .with_timezone(&Utc)
                + Duration::minutes(m)
        };
        let samples = |from: i64, to: i64, v: f64| -> Vec<(DateTime<Utc>, f64)> {
            (from..=to).map(|m| (at(m), v)).collect()
        };
        // The second metric's history begins 3 minutes later and ends 1 minute earlier.
        let long = Trace::from_samples("a", &samples(0, 9, 1.0));
        let short = Trace::from_samples("b", &samples(3, 8, 2.0));
        let aligned = align(vec![long.clone(), short]);
        assert_eq!(aligned[0].demand, long.demand);
        let b = &aligned[1];
        assert_eq!((b.start, b.minutes()), (at(0), 10));
        assert_eq!(
            b.observed,
            [vec![false; 3], vec![true; 6], vec![false; 1]].concat()
        );
        assert!(b.demand.iter().all(|&d| d == 2.0));
        assert!(b.metric()[0].is_nan() && b.metric()[9].is_nan());
    }

    #[test]
    fn each_query_is_confined_and_named_by_its_field() {
        let spec = |queue: &str| -> crate::api::PredictiveScalerSpec {
            serde_json::from_value(serde_json::json!({
                "scaleTargetRef": { "kind": "Deployment", "name": "orders" },
                "maxReplicas": 10,
                "metrics": [
                    { "name": "requests", "query": "sum(rate(http_requests_total[1m]))",
                      "targetPerReplica": 10 },
                    { "name": "queue", "query": queue, "targetPerReplica": 5 },
                ],
            }))
            .unwrap()
        };
        let validated = spec("sum(queue_depth{namespace=\"other\"})")
            .validate()
            .unwrap();
        let queries = metric_queries(&validated, true, Some(("namespace", "shop"))).unwrap();
        assert_eq!(queries[1].field, "spec.metrics[1].query");
        for q in &queries {
            assert!(q.query.contains("namespace=\"shop\""), "{}", q.query);
            assert!(!q.query.contains("other"), "{}", q.query);
        }
        // Unconfined, as written.
        let as_written = metric_queries(&validated, true, None).unwrap();
        assert_eq!(as_written[1].query, validated.metrics[1].query);
        // info() cannot be confined: the field says which metric.
        let info = spec("info(up)").validate().unwrap();
        let refused = metric_queries(&info, true, Some(("namespace", "shop")))
            .unwrap_err()
            .to_string();
        assert!(
            refused.starts_with("invalid spec.metrics[1].query: calls info()"),
            "{refused}"
        );
        // A failed read of one metric of a list names it; `spec.metric`'s keeps its words.
        let error = || Error::Trace {
            path: "query \"q\"".into(),
            message: "0 samples came back".into(),
        };
        assert_eq!(
            queries[1].name_error(error()).to_string(),
            "spec.metrics[1].query: query \"q\": 0 samples came back"
        );
        let single = MetricQuery {
            field: SINGLE_FIELD.into(),
            ..queries[0].clone()
        };
        assert_eq!(single.name_error(error()).to_string(), error().to_string());
    }

    #[test]
    fn bad_input_is_refused_with_the_line() {
        let e = Trace::parse(
            "x.csv",
            "timestamp,value\n2026-01-01T00:00:00Z,1\n2026-01-01T00:00:00Z,2\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("x.csv: line 3: duplicate timestamp 2026-01-01T00:00:00Z (also on line 2)"),
            "{e}"
        );
        let e = Trace::parse(
            "x.csv",
            "timestamp,value\n2026-01-01T00:05:00Z,1\n2026-01-01T00:01:00Z,2\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains(
                "line 3: timestamp 2026-01-01T00:01:00Z is before line 2's (2026-01-01T00:05:00Z)"
            ),
            "{e}"
        );
        let e = Trace::parse("x.csv", "timestamp,value\nyesterday,1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && e.contains("RFC 3339"), "{e}");
        let e = Trace::parse(
            "x.csv",
            "timestamp,value\n2026-01-01T00:00:00Z,-1\n2026-01-01T00:01:00Z,1\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("≥ 0"), "{e}");
        // A wrapped unsigned counter is not load either.
        let e = Trace::parse(
            "x.csv",
            "timestamp,value\n2026-01-01T00:00:00Z,18446744073709551615\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("line 2") && e.contains("at most 1e15"), "{e}");
    }
}
