//! Shared test fixtures: a real Prometheus, a scripted stand-in for it, and a fake Kubernetes
//! API.
#![allow(dead_code)]

pub mod fake_api;
pub mod harness;
pub mod process;
pub mod prometheus;
pub mod scripted;
