# Multi-stage build: compile in the Rust image, run in a slim Debian as a non-root user.
# The build context is the repository (see .dockerignore); `scripts/check-docker-context.sh`
# (run by CI) builds from exactly the paths copied below, so a missing one fails CI.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# The workspace: the server, its migrations, the server-owned PostgreSQL crate and the
# benchmark's load driver (a workspace member, so its manifest must be present).
COPY Cargo.toml Cargo.lock ./
COPY migration ./migration
COPY local-pg ./local-pg
COPY bench/driver ./bench/driver
# The playground's files are built into the binary.
COPY playground/dist ./playground/dist
COPY src ./src
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
