# syntax=docker/dockerfile:1
# Multi-stage build of the tenantgate binary. Not used by CI (CI runs .ci/run
# on a machine without a Docker engine); it is here for users with Docker,
# together with docker-compose.yml.

# ---- builder ---------------------------------------------------------------
FROM rust:1.95-bookworm AS builder
WORKDIR /build

# 1. Dependency-caching layer: the workspace manifests plus stub sources, so
#    that changing our own code does not recompile every dependency.
COPY Cargo.toml Cargo.lock ./
COPY wire/Cargo.toml wire/Cargo.toml
COPY policy/Cargo.toml policy/Cargo.toml
COPY proxy/Cargo.toml proxy/Cargo.toml
COPY api/Cargo.toml api/Cargo.toml
RUN set -eux; \
    mkdir -p src benches wire/src policy/src proxy/src api/src; \
    echo 'fn main() {}' > src/main.rs; \
    echo 'fn main() {}' > benches/wire.rs; \
    for crate in wire policy proxy api; do : > "$crate/src/lib.rs"; done; \
    cargo build --release --locked -p tenantgate; \
    rm -rf src benches wire/src policy/src proxy/src api/src

# 2. The real sources. Touch them so cargo never mistakes the stub build's
#    outputs (newer than the files' original mtimes) for up to date ones.
COPY . .
RUN set -eux; \
    find src wire policy proxy api benches -name '*.rs' -exec touch {} +; \
    cargo build --release --locked -p tenantgate; \
    install -D -m 0755 target/release/tenantgate /out/tenantgate

# ---- runtime ---------------------------------------------------------------
FROM debian:bookworm-slim
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates; \
    rm -rf /var/lib/apt/lists/*; \
    groupadd --system tenantgate; \
    useradd --system --gid tenantgate --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin tenantgate
COPY --from=builder /out/tenantgate /usr/local/bin/tenantgate
USER tenantgate:tenantgate
# 27018: the MongoDB wire-protocol proxy; 8080: the HTTP API.
EXPOSE 27018 8080
ENTRYPOINT ["/usr/local/bin/tenantgate"]
