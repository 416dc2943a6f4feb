//! The benchmark: every scenario of a `scenarios.csv` (trace, capacity, bounds, delay, lag,
//! evaluation start) backtested with prescaler's defaults against the HPA and the oracle.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};

use crate::{Error, Result};

/// One line of `scenarios.csv`.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub trace: PathBuf,
    pub capacity: f64,
    pub min_replicas: u32,
    pub max_replicas: u32,
    pub startup_delay_min: usize,
    pub metric_lag_min: usize,
    /// None: 14 days after the trace starts.
    pub eval_start: Option<DateTime<Utc>>,
}

/// Reads `trace,capacity,min_replicas,max_replicas,startup_delay_min,metric_lag_min,eval_start`,
/// resolving trace names against `traces_dir`.
pub fn load(path: &Path, traces_dir: &Path) -> Result<Vec<Scenario>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        context: format!("reading scenarios {}", path.display()),
        source,
    })?;
    let err = |line: usize, message: String| Error::Parse {
        context: format!("{}: line {line}", path.display()),
        message,
    };
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let header: Vec<&str> = lines
        .next()
        .ok_or_else(|| err(1, "empty file".into()))?
        .1
        .split(',')
        .map(str::trim)
        .collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .ok_or_else(|| err(1, format!("missing column {name}")))
    };
    let (c_trace, c_cap, c_min, c_max, c_delay, c_lag, c_eval) = (
        col("trace")?,
        col("capacity")?,
        col("min_replicas")?,
        col("max_replicas")?,
        col("startup_delay_min")?,
        col("metric_lag_min")?,
        col("eval_start")?,
    );
    let mut out = Vec::new();
    for (n, line) in lines {
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let get = |i: usize| f.get(i).copied().unwrap_or("");
        let num = |i: usize, what: &str| -> Result<f64> {
            get(i)
                .parse::<f64>()
                .map_err(|_| err(n + 1, format!("{what} {:?} is not a number", get(i))))
        };
        out.push(Scenario {
            trace: traces_dir.join(get(c_trace)),
            capacity: num(c_cap, "capacity")?,
            min_replicas: num(c_min, "min_replicas")? as u32,
            max_replicas: num(c_max, "max_replicas")? as u32,
            startup_delay_min: num(c_delay, "startup_delay_min")? as usize,
            metric_lag_min: num(c_lag, "metric_lag_min")? as usize,
            eval_start: match get(c_eval) {
                "" => None,
                s => Some(
                    DateTime::parse_from_rfc3339(s)
                        .map_err(|e| err(n + 1, format!("eval_start {s:?}: {e}")))?
                        .with_timezone(&Utc),
                ),
            },
        });
    }
    Ok(out)
}

/// The default evaluation start: two full weeks of history first.
pub fn default_eval_start(trace_start: DateTime<Utc>) -> DateTime<Utc> {
    trace_start + Duration::days(14)
}
