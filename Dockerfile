# The operator's image: a static-linked-enough release binary on distroless, non-root.
# Build: docker build -t ghcr.io/prescaler/prescaler:0.1.0 .
# (Not built in this project's CI: its machines have no Docker engine.)
FROM rust:1.89-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked --bin prescaler && strip target/release/prescaler

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/prescaler /usr/local/bin/prescaler
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/prescaler"]
CMD ["run"]
