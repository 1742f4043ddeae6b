# xianyu-shopd in a container (NAS boxes, VPS with Docker). See README.md, "用 Docker 运行".
#
# Build:  docker build -t xianyu-shopd .
# Layout in the container:
#   /usr/local/bin/xianyu-shopd       the release binary
#   /srv/xianyu-shop/                 your config repo (pipeline.yaml, products.yaml, templates/), mounted read-only
#   /srv/xianyu-shop/state/           runtime data (the store, cookie files): a volume, writable by the non-root user
# The status page must listen on 0.0.0.0 inside the container to be reachable through a published port,
# and a non-loopback listener needs a token (status.token_env or token_file): see docker-compose.yml.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# aws-lc-sys (the TLS crypto provider) builds C code with cmake-free cc; gcc/make come with the image.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY examples ./examples
COPY tests ./tests
RUN cargo build --release --locked --bin xianyu-shopd

# distroless/cc: glibc + libgcc only, no shell, runs as uid 65532 ("nonroot").
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/xianyu-shopd /usr/local/bin/xianyu-shopd
WORKDIR /srv/xianyu-shop
VOLUME ["/srv/xianyu-shop/state"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/xianyu-shopd", "healthcheck", "--url", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["/usr/local/bin/xianyu-shopd", "--config-dir", "/srv/xianyu-shop"]
CMD ["run"]
