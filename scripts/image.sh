#!/usr/bin/env bash
# Builds the operator's container image with buildah, with no registry and no base image:
# FROM scratch, the release binary stripped of its symbols, the shared libraries it links (as
# ldd lists them: libc, libm, libgcc_s, the loader), the CA bundle, /etc/passwd's nonroot user,
# USER 65532:65532, and nothing else — no shell, no package manager.
#
#   scripts/image.sh [--binary FILE] [--tag NAME:TAG] [--oci-archive FILE]
#
# --binary: the `prescaler` to put in (default: target/release/prescaler, built if missing);
# --tag: the image's name (default: localhost/prescaler:<the crate's version>);
# --oci-archive: also write the image as an OCI archive (what a release publishes; `podman load`,
#   `skopeo copy oci-archive:FILE docker://REGISTRY/prescaler:TAG` and kind/k3s import it).
# The image lands in target/containers (see scripts/containers-env.sh); `podman` run with the
# same environment sees it. Needs buildah (Debian's package; scripts/test.sh installs it) and
# root or a user with subordinate ids. Prints the image's size.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n '0,/^version = "\(.*\)"/s//\1/p' Cargo.toml)
binary=target/release/prescaler
tag="localhost/prescaler:$version"
archive=""
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary="$2"; shift 2 ;;
    --tag) tag="$2"; shift 2 ;;
    --oci-archive) archive="$2"; shift 2 ;;
    *) echo "usage: $0 [--binary FILE] [--tag NAME:TAG] [--oci-archive FILE]" >&2; exit 2 ;;
  esac
done
command -v buildah >/dev/null || { echo "image.sh: buildah is missing (apt-get install buildah podman runc)" >&2; exit 1; }
if [ ! -x "$binary" ]; then
  echo "== building $binary"
  cargo build --release --locked --bin prescaler
fi
. scripts/containers-env.sh

stage=$(mktemp -d)
ctr=""
cleanup() { rm -rf "$stage"; [ -n "$ctr" ] && buildah rm "$ctr" >/dev/null 2>&1 || true; }
trap cleanup EXIT

install -D -m 0755 "$binary" "$stage/usr/local/bin/prescaler"
# The release profile already leaves out debug info; the symbol table is only for debuggers.
strip --strip-all "$stage/usr/local/bin/prescaler"
# Every library the dynamic loader will open, at the path it will look for it, and the loader.
libs=$(ldd "$binary" | grep -o '/[^ ]*' | sort -u)
[ -n "$libs" ] || { echo "image.sh: ldd lists no libraries for $binary" >&2; exit 1; }
for lib in $libs; do
  install -D -m 0755 "$(readlink -f "$lib")" "$stage$lib"
done
ca=/etc/ssl/certs/ca-certificates.crt
[ -f "$ca" ] || { echo "image.sh: $ca is missing (apt-get install ca-certificates)" >&2; exit 1; }
install -D -m 0644 "$ca" "$stage$ca"
mkdir -p "$stage/etc" "$stage/tmp"
chmod 1777 "$stage/tmp"
echo "nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin" > "$stage/etc/passwd"
echo "nonroot:x:65532:" > "$stage/etc/group"

ctr=$(buildah from scratch)
buildah copy --quiet "$ctr" "$stage" / >/dev/null
buildah config \
  --user 65532:65532 \
  --entrypoint '["/usr/local/bin/prescaler"]' \
  --cmd run \
  --port 8080 \
  --workingdir / \
  --env SSL_CERT_FILE="$ca" \
  --env MALLOC_ARENA_MAX=2 \
  --env MALLOC_MMAP_THRESHOLD_=131072 \
  --label org.opencontainers.image.title=prescaler \
  --label org.opencontainers.image.description="Predictive autoscaling operator for Kubernetes" \
  --label org.opencontainers.image.version="$version" \
  --label org.opencontainers.image.licenses=Apache-2.0 \
  "$ctr"
buildah commit --quiet --rm "$ctr" "$tag" >/dev/null
ctr=""
bytes=$(buildah inspect --type image --format '{{.Docker.Size}}' "$tag" 2>/dev/null || true)
if [ -z "$bytes" ] || [ "$bytes" = "0" ]; then
  bytes=$(du -sb "$stage" | cut -f1)
fi
echo "image $tag: $(( (bytes + 524287) / 1048576 )) MB ($bytes bytes; binary $(stat -c %s "$stage/usr/local/bin/prescaler") bytes)"
if [ -n "$archive" ]; then
  rm -f "$archive"
  buildah push --quiet "$tag" "oci-archive:$archive:$tag" >/dev/null
  echo "wrote $archive ($(stat -c %s "$archive") bytes)"
fi
