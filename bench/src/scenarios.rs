//! The scenario file of the quality benchmark: one backtest per row, with prescaler's default spec.
//!
//! Columns: `trace` (a file name in the traces folder), `capacity` (the load one replica carries),
//! `min_replicas`, `max_replicas`, `startup_delay_min`, `metric_lag_min`, `eval_start` (RFC 3339,
//! empty for the default: 14 days after the trace starts).

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use prescaler::{Error, Result};
use serde::Deserialize;

/// One row of the scenario file.
#[derive(Clone, Debug, Deserialize)]
pub struct Scenario {
    pub trace: PathBuf,
    pub capacity: f64,
    pub min_replicas: u32,
    pub max_replicas: u32,
    pub startup_delay_min: u32,
    pub metric_lag_min: u32,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub eval_start: Option<DateTime<Utc>>,
}

fn empty_as_none<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    let text = String::deserialize(d)?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    DateTime::parse_from_rfc3339(text.trim())
        .map(|t| Some(t.with_timezone(&Utc)))
        .map_err(serde::de::Error::custom)
}

/// Reads the scenarios of `path`, resolving trace names against `traces_dir`.
pub fn load(path: &Path, traces_dir: &Path) -> Result<Vec<Scenario>> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|source| Error::Csv {
            context: format!("reading scenarios {}", path.display()),
            source,
        })?;
    let mut out = Vec::new();
    for row in reader.deserialize::<Scenario>() {
        let mut scenario = row.map_err(|source| Error::Csv {
            context: format!("scenarios {}", path.display()),
            source,
        })?;
        scenario.trace = traces_dir.join(&scenario.trace);
        out.push(scenario);
    }
    Ok(out)
}
