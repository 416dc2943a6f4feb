//! prescaler: a Kubernetes operator that scales workloads ahead of their load.
//!
//! The decision core (`forecast`, `schedule`, `plan`, `conditions`) is pure; `trace` and
//! `backtest` replay recorded load through it; `api` defines the `PredictiveScaler` resource.
//! At the edge: `source` (Prometheus), `target` (the workload's `/scale` and its HPA),
//! `controller` (the reconcile), `leader` (Lease), `telemetry` (logs, metrics, probes) and
//! `operator` (the process that wires them).

pub mod api;
pub mod backtest;
pub mod conditions;
pub mod controller;
pub mod demo;
pub mod forecast;
#[cfg(feature = "mstl")]
pub mod forecast_eval;
pub mod leader;
pub mod operator;
pub mod plan;
pub mod schedule;
pub mod source;
pub mod target;
pub mod telemetry;
pub mod trace;

/// Everything that can go wrong, with the field or file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid {field}: {message}")]
    InvalidSpec { field: String, message: String },

    #[error("{path}: {message}")]
    Trace { path: String, message: String },

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    #[error("{context}: {message}")]
    Parse { context: String, message: String },

    #[error("query {query:?}: {message}")]
    Source { query: String, message: String },

    #[error("{what}: {message}")]
    Config { what: String, message: String },

    #[error("Kubernetes API: {0}")]
    Kube(#[source] Box<kube::Error>),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
