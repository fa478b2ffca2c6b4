# Multi-stage build: compile in the Rust image, run in a slim Debian as a non-root user.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY migration ./migration
COPY local-pg ./local-pg
COPY src ./src
COPY schema.graphql ./
RUN cargo build --release --locked --bin titanbay

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home titanbay
COPY --from=build /src/target/release/titanbay /usr/local/bin/titanbay
USER titanbay
ENV HOST=0.0.0.0 PORT=8000
EXPOSE 8000
CMD ["titanbay", "serve"]
