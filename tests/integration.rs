//! Every integration test, in one test binary: each `tests/<name>.rs` is a module of it (run one
//! with `cargo test --release --test integration <name>::`). One binary instead of one per file,
//! because each file's binary compiled and linked the shared fixtures (`support/`: the fake
//! Kubernetes API, a real Prometheus, the harness) and the async code of kube, axum and tokio
//! again in the release profile: about 80 s of CPU for each file that used them (tests/live_load.rs, 89 lines, took 84 s). Tests
//! that share a fixture share it through a `OnceLock` in their own module, as before; the others
//! start their own (a Prometheus on a free port, a fake API in the process, a podman container
//! named after the process).

mod support;

mod backtest;
mod budget;
mod calendar_files;
mod cli;
mod controller;
mod crd;
mod decide;
mod faults;
mod floors;
mod history_source;
mod image;
mod kubectl;
mod live_load;
mod operator;
mod operator_bench;
mod parity;
mod plugin;
mod process;
mod prometheus;
mod properties;
mod readme;
mod regimes;
mod savings;
mod scale_to_zero;
mod several;
mod shards;

/// `autotests = false` (Cargo.toml) compiles only this file: a test file not declared above would
/// be silently left out.
#[test]
fn every_test_file_is_a_module_of_this_binary() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let this = std::fs::read_to_string(dir.join("integration.rs")).unwrap();
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if path.extension().is_some_and(|e| e == "rs")
            && name != "integration"
            && !this.contains(&format!("\nmod {name};\n"))
        {
            missing.push(name.to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "not in tests/integration.rs: {missing:?}"
    );
}
