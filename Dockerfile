# Multi-stage build: compile with the locked dependencies, ship only the binary.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY vendor vendor
COPY bench bench
COPY src src
COPY sql sql
RUN cargo build --release --locked && strip target/release/postmand

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home postmand
COPY --from=build /src/target/release/postmand /usr/local/bin/postmand
USER postmand
EXPOSE 8000 8001
# `postmand healthcheck` asks this container's /healthz (every role serves it): 200 means every
# server and thread of the role runs and the database answers.
HEALTHCHECK --interval=15s --timeout=10s --start-period=20s --retries=3 CMD ["postmand", "healthcheck"]
ENTRYPOINT ["postmand"]
CMD ["--role", "all"]
