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
ENTRYPOINT ["postmand"]
CMD ["--role", "all"]
