//! Shared test fixtures: a real Prometheus, a scripted stand-in for it, and a fake Kubernetes
//! API.
#![allow(dead_code)]

pub mod fake_api;
pub mod harness;
pub mod process;
pub mod prometheus;
pub mod scripted;

/// The allocator settings the image runs the operator with (`Dockerfile`, `scripts/image.sh`):
/// the image test checks them there, and the operator benchmark runs its processes with them.
pub const ALLOCATOR_ENV: [(&str, &str); 2] = [
    ("MALLOC_ARENA_MAX", "2"),
    ("MALLOC_MMAP_THRESHOLD_", "131072"),
];
