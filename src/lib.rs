//! prescaler: a Kubernetes operator that scales workloads ahead of their load.
//!
//! The application crate. The workspace's crates are the layers, and the compiler holds the
//! imports to run one way, from the top of this list down (docs/architecture.md):
//! - this crate: `operator` (the process: controller, leader election, telemetry, the status's
//!   conditions), `backtest` (replays a trace through the same planner on a simulated clock and
//!   scores it), `plugin` (kubectl prescaler) and `cli`;
//! - `adapters` (prescaler-adapters): Prometheus (queries and the per-scaler history cache) and
//!   Kubernetes (the workload's `/scale` and the HPA that may scale it);
//! - `planning` (prescaler-planning): the pure core — forecast, peak windows, the decision, the
//!   planner that owns the decision's memory. No I/O, no clock, no kube;
//! - `api` (prescaler-api): the `PredictiveScaler` resource, its duration type and its validation.
//!
//! The layers are re-exported under the names they had as modules of this crate, so that
//! `prescaler::api::…`, `prescaler::planning::…` and `prescaler::adapters::…` (and `crate::…`
//! inside it) keep meaning what they meant.

pub use prescaler_adapters as adapters;
pub use prescaler_api as api;
pub use prescaler_planning as planning;

pub mod backtest;
pub mod cli;
mod error;
pub mod operator;
pub mod placement;
pub mod plugin;

pub use error::{Error, Result, chain, exit_code};
