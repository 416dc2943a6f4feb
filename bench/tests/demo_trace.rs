//! The bundled demo trace (`examples/demo-trace.csv`) is what `prescaler-bench demo-trace`
//! prints: the file cannot drift from its generator.

use std::path::Path;
use std::process::Command;

#[test]
fn bundled_demo_trace_is_what_the_generator_makes() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/demo-trace.csv");
    let committed = std::fs::read_to_string(path).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_prescaler-bench"))
        .arg("demo-trace")
        .output()
        .unwrap();
    assert!(
        committed.as_bytes() == out.stdout,
        "examples/demo-trace.csv is stale: run `cargo run --release -p prescaler-bench -- demo-trace > examples/demo-trace.csv`"
    );
}
