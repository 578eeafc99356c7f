# Multi-stage build: compile with the locked dependencies, ship only the binary.
#
# Base images are pinned by tag; the digest beside each tag is the multi-arch index that tag
# pointed to when it was last checked. We could not reach Docker Hub when writing them: each was
# taken from public Dockerfiles and lock files that pin the same tag (several independent ones
# agree). A tag can be rebuilt; to check or refresh a digest:
#   docker buildx imagetools inspect rust:1.95.0-slim-bookworm   (the "Digest:" line)
# and to enforce one, write it into the FROM line: FROM rust:1.95.0-slim-bookworm@sha256:...

# Rust 1.95: the lowest the locked dependencies build with (parking_lot 0.13 needs 1.95;
# edition 2024 needs 1.85). Bookworm, like the runtime image below, so glibc matches.
# digest: sha256:d7482085ff5b415f84dba5647ae71606650bdef00db7aeb69f4b3d170c3e4082
FROM rust:1.95.0-slim-bookworm AS build
WORKDIR /src

# 1. Dependencies only, cached until Cargo.toml, Cargo.lock or vendor/ change: build them
#    against stub sources (an empty library and an empty main).
COPY Cargo.toml Cargo.lock ./
COPY vendor vendor
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src

# 2. postmand itself. COPY keeps the files' modification times, which can be older than the
#    stub build's: touch them so Cargo rebuilds postmand instead of keeping the stub binary, and
#    check that the binary is the real one (the stub prints no version).
COPY src src
COPY sql sql
RUN find src sql -type f -exec touch {} + \
    && cargo build --release --locked \
    && strip target/release/postmand \
    && test -n "$(target/release/postmand --version)"

# Debian 12 (bookworm), the dated tag of a given build of it.
# digest: sha256:88200866dfff7ea7f5cbcb6ec7c8a701889efe6fe859fe64d6990e4b07ea4171
FROM debian:bookworm-20260824-slim
# ca-certificates is the system trust store for HTTPS endpoints (POSTMAND_CA_FILE adds to it).
# Its version is left to the pinned Debian release: a pinned package version disappears from the
# archive when Debian replaces it, and the build would then fail.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 postmand \
    && useradd --system --no-log-init --uid 10001 --gid postmand --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin postmand
COPY --from=build /src/target/release/postmand /usr/local/bin/postmand
# Numeric, so orchestrators can verify it is not root (Kubernetes runAsNonRoot).
USER 10001:10001
EXPOSE 8000 8001
# `postmand healthcheck` asks this container's /healthz (every role serves it): 200 means every
# server and thread of the role runs and the database answers.
HEALTHCHECK --interval=15s --timeout=10s --start-period=20s --retries=3 CMD ["postmand", "healthcheck"]
ENTRYPOINT ["postmand"]
CMD ["--role", "all"]
