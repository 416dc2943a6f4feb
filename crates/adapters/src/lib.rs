//! The outside world the operator and the backtest read and write: Prometheus (the load and its
//! history) and Kubernetes (the workload's `/scale`, the HPA that may scale it).
//!
//! Below it are prescaler-planning and prescaler-api only: nothing here knows the operator, the
//! backtest or the command line. Its errors are its own (`Error`); the application wraps them.

pub mod confine;
mod error;
pub mod history;
pub mod kubernetes;
pub mod long_term;
pub mod prometheus;

pub use error::{Error, Result, chain};
