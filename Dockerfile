# syntax=docker/dockerfile:1
# The container image of Chaos Symphony: the `runner` binary, the pipeline files, the event
# schemas and the built web console, on a slim Debian, run as an unprivileged numeric user.
#
#   docker build -t chaos-symphony/runner:dev .
#   docker run --rm -p 8080:8080 chaos-symphony/runner:dev     # the whole system, console on :8080
#
# Without arguments the image runs `runner up` (every pipeline in one process on the embedded
# broker and SQLite), so it works on its own; Kubernetes (kubernetes/) gives each Deployment its
# own arguments (`--pipeline /etc/chaos-symphony/pipelines/X.toml`) and mounts the pipelines and
# schemas from ConfigMaps under /etc/chaos-symphony, in place of the copies baked in here.
# scripts/dockerfile-check checks this file offline (COPY sources exist, non-root final user,
# `runner` entrypoint, hadolint).

# Rust: the toolchain the repository is built and tested with. Node.js: the current LTS line
# (Angular 21 takes 20.19+, 22.12+ or 24; 20 is past its end of life). Debian: the stable
# release, for the builders and the runtime alike, so the binary meets the glibc it was linked
# against (`--build-arg DEBIAN_RELEASE=bookworm` builds on the previous one).
ARG RUST_VERSION=1.95
ARG NODE_VERSION=24
ARG DEBIAN_RELEASE=trixie

# --- the runner --------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS builder
# rdkafka-sys builds librdkafka from source (configure and make, gcc, zlib's headers: all in
# the rust image); aws-lc-sys (a crypto provider of rustls, which the relay's replication
# client uses) builds with cc, and with cmake on targets without prebuilt bindings. Debian's
# package versions are not pinned: the mirror drops old ones, and the build's inputs that
# matter are pinned by Cargo.lock.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY runner ./runner
# The registry and target directories are build caches (BuildKit), so the binary is copied
# out of the cache inside the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p runner --bin runner \
 && install -D -m 0755 target/release/runner /out/runner

# --- the web console ---------------------------------------------------------------------
FROM node:${NODE_VERSION}-${DEBIAN_RELEASE}-slim AS console
ENV NG_CLI_ANALYTICS=false \
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
WORKDIR /ui
COPY ui/package.json ui/package-lock.json ./
RUN --mount=type=cache,target=/root/.npm \
    npm ci --no-audit --no-fund --loglevel=error
COPY ui ./
RUN npx ng build

# --- the runtime image -------------------------------------------------------------------
FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# checkov:skip=CKV_DOCKER_2:No HEALTHCHECK: the port depends on the pipeline run (8080 under `runner up`, 8080-8090 under --pipeline) and the image has no HTTP client; Kubernetes probes /healthz and /readyz on the right port instead.
# A fixed numeric id, so Kubernetes' runAsNonRoot can verify it without the passwd file.
RUN groupadd --system --gid 10001 runner \
 && useradd --system --uid 10001 --gid runner --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin runner
WORKDIR /opt/chaos-symphony
COPY --from=builder /out/runner /usr/local/bin/runner
COPY pipelines ./pipelines
COPY schemas ./schemas
COPY --from=console /ui/dist/console/browser ./ui/dist/console/browser
# `runner up` keeps its SQLite file in ./data; everything else stays read-only to the user.
RUN install -d -o 10001 -g 10001 -m 0750 /opt/chaos-symphony/data
# The working directory already makes the default console folder right; the variable keeps it
# right when an orchestrator sets another working directory.
ENV RUNNER_CONSOLE_DIR=/opt/chaos-symphony/ui/dist/console/browser
USER 10001:10001
# 8080 is `runner up`'s single listener and order-api's port; 8081-8090 are the other services'
# (see the [service] listen of each pipeline file).
EXPOSE 8080-8090
ENTRYPOINT ["runner"]
# RUNNER_LISTEN is not set here: it would override every pipeline's own port under --pipeline.
CMD ["up", "pipelines", "--listen", "0.0.0.0:8080"]
