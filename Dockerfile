# syntax=docker/dockerfile:1.7
# The one `gatehouse` binary (controller, proxy, standalone, render, crds) on a
# distroless base: no shell, no package manager, runs as a numeric non-root user.
#
#   docker build -t gatehouse:dev .
#   docker run --rm gatehouse:dev --help
#
# The build is the same `cargo build --locked` that scripts/test runs, in release mode,
# with the toolchain the project is developed on. scripts/chart-test checks that the
# context left by .dockerignore holds the whole workspace.

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
# rustls + ring need only the C compiler the slim image carries; no OpenSSL.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin gatehouse \
 && install -D -m 0755 target/release/gatehouse /out/gatehouse

# glibc of the build stage (Debian 12) matches distroless cc-debian12.
FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="gatehouse" \
      org.opencontainers.image.description="Kubernetes ingress controller whose proxy is also an OAuth2 authorization server" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/gatehouse /usr/local/bin/gatehouse
# distroless "nonroot": uid/gid 65532, matching the chart's podSecurityContext.
USER 65532:65532
# Proxy traffic, TLS and admin ports of the chart's defaults (documentation only).
EXPOSE 8000 8443 9000
ENTRYPOINT ["/usr/local/bin/gatehouse"]
