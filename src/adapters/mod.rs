//! The outside world the operator and the backtest read and write: Prometheus (the load and its
//! history) and Kubernetes (the workload's `/scale`, the HPA that may scale it).

pub mod confine;
pub mod history;
pub mod kubernetes;
pub mod prometheus;
