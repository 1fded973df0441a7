# attrsync container image.
#
#   docker build -t attrsync .
#   docker run --rm -p 8080:8080 --stop-timeout 35 \
#     -e GENESYS_CLIENT_ID=... -e GENESYS_CLIENT_SECRET=... -e GENESYS_REGION=mypurecloud.ie \
#     -e ATTRSYNC_AUTH__GENESYS__SECRETS=... -e ATTRSYNC_AUTH__CTI__SECRETS=whsec_... \
#     -e ATTRSYNC_AUTH__LOOKUP__SECRETS=... \
#     attrsync
#
# Every setting is an environment variable (ATTRSYNC_<SECTION>__<KEY>, plus GENESYS_CLIENT_ID,
# GENESYS_CLIENT_SECRET, GENESYS_REGION, GENESYS_API_URL, GENESYS_LOGIN_URL); secrets can also
# come from mounted files (<NAME>_FILE=/run/secrets/...). See config/default.toml;
# `docker run ... attrsync check-config` prints the effective configuration.

# ---------------------------------------------------------------------------------------------
# Build stage. The bookworm variant on purpose: the binary links against the build image's glibc,
# so it must not be newer than the runtime image's (debian:bookworm-slim).
ARG RUST_VERSION=1.95
FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src

# 1. Dependencies only, cached until a manifest or Cargo.lock changes (cargo-chef would do the
#    same, but it is not installable here). Stub sources let cargo resolve the two targets
#    declared in Cargo.toml ([lib] src/lib.rs, [[bin]] src/main.rs) and compile every dependency.
#    The workspace's other member (bench/, the benchmark) only needs its manifest and a stub to
#    resolve; only the service binary is built (--bin attrsync), so the benchmark and its
#    dependencies have no place in the image.
COPY Cargo.toml Cargo.lock ./
COPY bench/Cargo.toml ./bench/
RUN mkdir -p src bench/src \
    && printf 'fn main() {}\n' > src/main.rs \
    && printf '\n' > src/lib.rs \
    && printf 'fn main() {}\n' > bench/src/main.rs \
    && cargo build --release --locked --bin attrsync \
    && rm -rf src

COPY src/ ./src/
COPY config/ ./config/
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin attrsync \
    && ./target/release/attrsync --version

# ---------------------------------------------------------------------------------------------
# Runtime stage: the binary, the configuration files, CA certificates for the Genesys and CRM
# HTTPS APIs, and nothing else.
FROM debian:bookworm-slim AS runtime

RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 attrsync \
    && useradd --system --uid 10001 --gid attrsync --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin attrsync

WORKDIR /app
# config/customers.json is the sample customer file the default `file` CRM adapter reads
# (crm.file.path is relative to the working directory). Mount your own over it, or switch to
# the `http` adapter with ATTRSYNC_CRM__ADAPTER=http.
COPY config/ ./config/
COPY --from=build /src/target/release/attrsync /usr/local/bin/attrsync

# The durable queue (SQLite by default) lives in /app/data: owned by the service user, and a
# volume, so accepted events survive a container restart. With queue.backend = "postgres" it
# stays empty.
RUN mkdir -p /app/data && chown 10001:10001 /app/data
VOLUME ["/app/data"]

ENV ATTRSYNC_SERVER__HOST=0.0.0.0 \
    ATTRSYNC_TELEMETRY__LOG_FORMAT=json \
    ATTRSYNC_QUEUE__SQLITE_PATH=/app/data/attrsync-queue.db

# Numeric, so that Kubernetes' runAsNonRoot can verify it without resolving a name.
USER 10001:10001

EXPOSE 8080

# /healthz touches nothing upstream, so a Genesys or CRM outage never marks the container
# unhealthy (use /readyz for traffic decisions). The slim image has no curl or wget; rather than
# install one (and its libraries) for this alone, bash's built-in /dev/tcp sends the request:
# exit 0 only on an HTTP 200 status line. It follows ATTRSYNC_SERVER__PORT if that is changed.
# With native TLS (server.tls) bash cannot complete a handshake; attrsync then answers the plain
# request with a TLS alert record (0x15 0x03 ...), written by the same runtime that serves, which
# is taken as alive too.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${ATTRSYNC_SERVER__PORT:-8080} && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && IFS= read -r -N 12 answer <&3 2>/dev/null; case \"$answer\" in 'HTTP/1.'?' 200'*|$'\\x15\\x03'*) exit 0;; esac; exit 1"]

# On SIGTERM attrsync stops accepting requests, lets in-flight ones finish (each is bounded by
# server.request_timeout_ms, default 10 s), then drains queued events for up to
# server.shutdown_grace_secs (default 20 s). `docker stop` sends SIGKILL after 10 s unless told
# otherwise, which would cut the drain short: give the container 35 s (`docker run
# --stop-timeout 35`, compose `stop_grace_period: 35s`, Kubernetes
# terminationGracePeriodSeconds >= 35), or lower the grace, e.g.
# ATTRSYNC_SERVER__SHUTDOWN_GRACE_SECS=5 for `docker stop`'s default.
STOPSIGNAL SIGTERM

ENTRYPOINT ["attrsync"]
CMD ["serve"]
