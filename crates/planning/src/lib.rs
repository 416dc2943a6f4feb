//! The pure core: everything that decides, and nothing that talks to the outside world.
//! The time, the load history and the workload's replica count are passed in.
//!
//! `planner` drives the rest: `forecast` predicts, `calibration` measures how far to trust each
//! prediction, `schedule` knows the peak windows, `plan` decides (`quiet`: scaling to zero in
//! a quiet window; `several`: the highest of several metrics) and `behavior` shapes the decision as the HPA would; `outlook` plays the decision ahead over the coming hours. What a
//! decision means for the status's conditions is the operator's (`prescaler::operator::conditions`).
//!
//! No kube, tokio or k8s-openapi, not even through a dependency (scripts/test.sh checks it).

pub mod behavior;
pub mod calibration;
pub mod coverage;
pub mod forecast;
pub mod hpa;
pub mod ledger;
pub mod outlook;
pub mod plan;
pub mod planner;
pub mod pods;
pub mod quiet;
pub mod rng;
pub mod schedule;
pub mod several;
pub mod startup;

/// The replicas `load` needs at `per_replica` each: `ceil(load / per_replica)`, saturating at
/// `u32::MAX` (and 0 for a load that is not a number, which the callers never pass on).
pub fn replicas_for(load: f64, per_replica: f64) -> u32 {
    (load / per_replica).ceil() as u32
}

/// The replicas a minute's `load` needs, as the backtest scores it and the operator's live
/// account counts it: `replicas_for` within `[min, max]`; in a quiet window (`minReplicas: 0`)
/// not raised to `min`, so that no load needs no replica and any load at least one (a minute
/// with load and no ready replica is short).
pub fn needed_replicas(load: f64, per_replica: f64, min: u32, max: u32, quiet: bool) -> u32 {
    let replicas = replicas_for(load, per_replica);
    match quiet {
        true => replicas.min(max),
        false => replicas.clamp(min, max),
    }
}
