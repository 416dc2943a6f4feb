# The operator's image, by the same recipe as scripts/image.sh (which builds it on machines
# without registry access, with buildah, from the binary cargo built): FROM scratch, the release
# binary stripped of its symbols, the shared libraries it links (ldd), the CA bundle, a nonroot
# user (65532), no shell. On a machine that can pull the Rust image:
#   docker build -t REGISTRY/prescaler:0.1.0 .        (or: podman build, buildah bud)
FROM docker.io/library/rust:1.89-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# The layers prescaler is built from (prescaler-api, -planning, -adapters).
COPY crates ./crates
# The workspace's other member (prescaler-bench): cargo reads it, the image does not contain it.
COPY bench ./bench
RUN cargo build --release --locked --bin prescaler \
 && install -D -m 0755 target/release/prescaler /out/usr/local/bin/prescaler \
 && strip --strip-all /out/usr/local/bin/prescaler \
 && for lib in $(ldd target/release/prescaler | grep -o '/[^ ]*' | sort -u); do \
      install -D -m 0755 "$(readlink -f "$lib")" "/out$lib"; \
    done \
 && install -D -m 0644 /etc/ssl/certs/ca-certificates.crt /out/etc/ssl/certs/ca-certificates.crt \
 && echo "nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin" > /out/etc/passwd \
 && echo "nonroot:x:65532:" > /out/etc/group \
 && install -d -m 1777 /out/tmp

FROM scratch
COPY --from=build /out/ /
USER 65532:65532
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
# glibc gives each thread that allocates an arena of its own (up to 8 a core), and the planner's
# blocking threads each keep the room of the calibrations' transient histories: at 10 000
# scalers about 70 MiB more resident (docs/benchmarks.md). Two arenas were also faster there.
ENV MALLOC_ARENA_MAX=2
# A reconcile's transient buffers (a history of two weeks, a Prometheus answer, a calibration's
# week) are hundreds of KB. glibc raises its mmap threshold to the largest freed, after which
# they are carved from the arenas between scalers' long-lived state and their room is not given
# back; held at 128 KiB, they are mapped and unmapped whole (docs/benchmarks.md).
ENV MALLOC_MMAP_THRESHOLD_=131072
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/prescaler"]
CMD ["run"]
