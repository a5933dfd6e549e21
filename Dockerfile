# ccotel as a container: `docker build -t ccotel .`, then
#   docker run -e CCOTEL_TOKEN -p 4317:4317 -p 4318:4318 -v ccotel-store:/var/lib/ccotel ccotel
# Listening beyond loopback, ccotel requires a token (CCOTEL_TOKEN, or
# server.token) unless its config sets server.allow_unauthenticated; /healthz
# stays open. See README.md "Deploy" and "Security", and docker-compose.yml.

# --- builder: the README's release build, with the CI's Rust toolchain ------
FROM rust:1.95-slim-trixie AS builder
WORKDIR /src
# The build context is filtered by .dockerignore: the sources, Cargo.lock,
# build.rs and proto/, no target/.
COPY . .
# deploy/check.sh checks that this is the README's release build and compiles
# the same filtered context (CCOTEL_DEPLOY_FULL_BUILD=1: runs this very
# command). The cache mounts keep crates and objects between builds.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
    && install -m 0755 target/release/ccotel target/release/ccotel-hook /usr/local/bin/

# --- runtime ------------------------------------------------------------------
FROM debian:trixie-slim
# busybox: `wget` for the HEALTHCHECK (ccotel carries its own TLS roots).
# Unpinned on purpose: the image takes Debian's security updates at build time.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends busybox \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 ccotel \
    && useradd --system --uid 10001 --gid ccotel --home-dir /var/lib/ccotel \
       --no-create-home --shell /usr/sbin/nologin ccotel \
    && mkdir -p /var/lib/ccotel \
    && chown ccotel:ccotel /var/lib/ccotel
COPY --from=builder /usr/local/bin/ccotel /usr/local/bin/ccotel
# The command hook alone, for images that run Claude Code next to ccotel:
# hooks installed by `ccotel install` in this image run it.
COPY --from=builder /usr/local/bin/ccotel-hook /usr/local/bin/ccotel-hook

LABEL org.opencontainers.image.title="ccotel" \
      org.opencontainers.image.description="Observe Claude Code: one trace per session, delivered to Braintrust and any OTLP backend" \
      org.opencontainers.image.licenses="Apache-2.0"

# In a container ccotel must listen on every interface, not loopback only.
# The store and the per-exporter disk queues live on the volume.
ENV CCOTEL_SERVER_GRPC=0.0.0.0:4317 \
    CCOTEL_SERVER_HTTP=0.0.0.0:4318 \
    CCOTEL_STORE_PATH=/var/lib/ccotel \
    HOME=/var/lib/ccotel
VOLUME ["/var/lib/ccotel"]
# OTLP/gRPC; OTLP/HTTP, hooks (POST /v1/hooks) and GET /healthz.
EXPOSE 4317 4318

USER 10001:10001
WORKDIR /var/lib/ccotel
# Probes the HTTP port ccotel was told to use.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/bin/sh", "-c", "busybox wget -q -O /dev/null \"http://127.0.0.1:${CCOTEL_SERVER_HTTP##*:}/healthz\" || exit 1"]
# ccotel stops cleanly on SIGTERM: it flushes for up to 10 s, so give
# `docker stop` more (`-t 30`, compose's stop_grace_period).
ENTRYPOINT ["ccotel"]
CMD ["serve"]
