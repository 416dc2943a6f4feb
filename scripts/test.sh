#!/usr/bin/env bash
# The whole test suite: formatting, lints, and every test (unit, decision, CRD, backtest, and the
# forecast-method comparison, which needs the `mstl` feature).
# Needs only the Rust toolchain (cargo with rustfmt and clippy); everything else the tests use is
# in the repository.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  rustup component add rustfmt clippy
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --release --all-targets --all-features --locked -- -D warnings
echo "== cargo test"
cargo test --release --all-features --locked
