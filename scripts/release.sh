#!/usr/bin/env bash
# Makes a release's artefacts for linux-amd64 from this tree:
#
#   scripts/release.sh [--out DIR] [--base-url URL] [--image-repository REPO]
#
# into DIR (default target/dist/v<version>):
#   prescaler_v<V>_linux_amd64.tar.gz          the operator and CLI (prescaler, LICENSE, README.md)
#   kubectl-prescaler_v<V>_linux_amd64.tar.gz  the kubectl plugin (kubectl-prescaler, LICENSE)
#   prescaler-image_v<V>_linux_amd64.oci.tar   the image (scripts/image.sh), as an OCI archive
#                                              named <REPO>:<V>: `skopeo copy` or `podman load`
#   prescaler-<V>.tgz                          the Helm chart (helm package)
#   prescaler-crds_v<V>.yaml                   the CustomResourceDefinition
#   prescaler_v<V>.cdx.json                    the SBOM, CycloneDX JSON (cargo-cyclonedx)
#   prescaler-krew.yaml                        the krew manifest, its sha256 computed from the
#                                              plugin's archive, its URL <base-url>/<archive>
#   SHA256SUMS                                 every artefact's sha256 (sha256sum -c SHA256SUMS)
#
# The archives are reproducible from the same binaries: sorted entries, owner 0, the last
# commit's time as every file's time, gzip without a name or time. --base-url is where the
# archives will be downloadable (default: the project's GitHub release for this version).
# Needs: cargo, buildah (scripts/image.sh), helm and cargo-cyclonedx on PATH, or in
# target/tools as scripts/test.sh installs them.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export PATH="$ROOT/target/tools:$ROOT/target/tools/cargo/bin:$PATH"
version=$(sed -n '0,/^version = "\(.*\)"/s//\1/p' Cargo.toml)
out="target/dist/v$version"
base_url="https://github.com/prescaler/prescaler/releases/download/v$version"
repository="ghcr.io/prescaler/prescaler"
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --base-url) base_url="${2%/}"; shift 2 ;;
    --image-repository) repository="$2"; shift 2 ;;
    *) echo "usage: $0 [--out DIR] [--base-url URL] [--image-repository REPO]" >&2; exit 2 ;;
  esac
done
[ "$(uname -m)" = x86_64 ] || { echo "release.sh builds linux-amd64 artefacts: run it on x86_64" >&2; exit 1; }
for tool in helm cargo-cyclonedx buildah sha256sum; do
  command -v "$tool" >/dev/null || { echo "release.sh: $tool is missing (scripts/test.sh installs it)" >&2; exit 1; }
done

echo "== building prescaler and kubectl-prescaler $version (release profile)"
cargo build --release --locked --bin prescaler --bin kubectl-prescaler
rm -rf "$out"
mkdir -p "$out"
out=$(cd "$out" && pwd)
epoch=$(git log -1 --format=%ct 2>/dev/null || echo 0)
platform=linux_amd64

# A reproducible .tar.gz of FILES (paths relative to DIR).
tarball() {
  local archive="$1" dir="$2"; shift 2
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" \
    --mode='u+rwX,go+rX,go-w' -C "$dir" -cf - "$@" | gzip -n -9 > "$archive"
}
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
for bin in prescaler kubectl-prescaler; do
  mkdir -p "$stage/$bin"
  install -m 0755 "target/release/$bin" "$stage/$bin/$bin"
  install -m 0644 LICENSE "$stage/$bin/LICENSE"
done
install -m 0644 README.md "$stage/prescaler/README.md"
tarball "$out/prescaler_v${version}_${platform}.tar.gz" "$stage/prescaler" prescaler LICENSE README.md
plugin_archive="kubectl-prescaler_v${version}_${platform}.tar.gz"
tarball "$out/$plugin_archive" "$stage/kubectl-prescaler" kubectl-prescaler LICENSE

echo "== the image"
scripts/image.sh --binary target/release/prescaler --tag "$repository:$version" \
  --oci-archive "$out/prescaler-image_v${version}_${platform}.oci.tar"

echo "== the chart and the CRD"
helm_home=$(mktemp -d)
HELM_CACHE_HOME=$helm_home HELM_CONFIG_HOME=$helm_home HELM_DATA_HOME=$helm_home \
  helm package charts/prescaler --destination "$out" >/dev/null
rm -rf "$helm_home"
install -m 0644 crds/predictivescaler.yaml "$out/prescaler-crds_v${version}.yaml"

echo "== the SBOM (CycloneDX)"
cargo cyclonedx --quiet --format json --spec-version 1.5 --target x86_64-unknown-linux-gnu \
  --override-filename "prescaler_v${version}.cdx" >/dev/null
mv "prescaler_v${version}.cdx.json" "$out/"
# cargo-cyclonedx writes one SBOM per workspace member, into its folder: the benchmarks'
# (bench/) and the layers' (crates/*/, whose crates prescaler's lists) are not release artefacts.
rm -f "bench/prescaler_v${version}.cdx.json" crates/*/"prescaler_v${version}.cdx.json"

echo "== the krew manifest"
sha=$(sha256sum "$out/$plugin_archive" | cut -d' ' -f1)
cat > "$out/prescaler-krew.yaml" <<YAML
# krew plugin manifest for \`kubectl prescaler\` $version, made by scripts/release.sh from the
# archive it describes. Install: kubectl krew install --manifest=prescaler-krew.yaml
# (or --archive=$plugin_archive for a local copy).
apiVersion: krew.googlecontainertools.github.com/v1alpha2
kind: Plugin
metadata:
  name: prescaler
spec:
  version: v$version
  homepage: https://github.com/prescaler/prescaler
  shortDescription: See what a PredictiveScaler will do, and why
  description: |
    For prescaler's PredictiveScalers (predictive autoscaling ahead of the load):
      kubectl prescaler plan NAME      the replicas expected over the next 24 hours, every
                                       15 minutes, with the term that decides and the peak windows
      kubectl prescaler why NAME       the last decisions and their reasons (status, conditions,
                                       Events, newest first)
      kubectl prescaler backtest NAME  last weeks of the metric replayed through the spec
    plan and backtest read the metric's history from Prometheus (--prometheus-url).
  platforms:
    - selector:
        matchLabels: { os: linux, arch: amd64 }
      uri: $base_url/$plugin_archive
      sha256: "$sha"
      bin: kubectl-prescaler
      files:
        - { from: kubectl-prescaler, to: . }
        - { from: LICENSE, to: . }
YAML

(cd "$out" && sha256sum -- *.tar.gz *.oci.tar *.tgz *.yaml *.cdx.json > SHA256SUMS)
echo "== $out"
(cd "$out" && ls -l --time-style=+ | tail -n +2 | awk '{printf "%12d  %s\n", $5, $NF}')
