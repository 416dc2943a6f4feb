//! prescaler: a Kubernetes operator that scales workloads ahead of their load.
//!
//! The crate is layered; imports run one way, from the top of this list down:
//! - `operator` (the process: controller, leader election, telemetry) and `backtest` (replays a
//!   trace through the same planner on a simulated clock and scores it);
//! - `adapters`: Prometheus (queries and the per-scaler history cache) and Kubernetes (the
//!   workload's `/scale` and the HPA that may scale it);
//! - `planning`: the pure core — forecast, peak windows, the decision, the planner that owns the
//!   decision's memory, and what a decision means for the status conditions. No I/O, no clock;
//! - `api`: the `PredictiveScaler` resource, its duration type and its validation.

pub mod adapters;
pub mod api;
pub mod backtest;
pub mod cli;
mod error;
pub mod operator;
pub mod planning;
pub mod plugin;

pub use error::{Error, Result, chain, exit_code};
