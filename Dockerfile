# The hub and the simulators in one small image. The hub is the production binary: built without
# the lab (no demo, bench or chaos, no simulator linked in); the simulators are their own binary.
#   docker build -t eservices-hub .
#   docker run --rm eservices-hub --help
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p hub --no-default-features \
 && cargo build --release --locked -p simulators \
 && install -D target/release/hub /out/hub \
 && install -D target/release/simulators /out/simulators

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home hub
COPY --from=build /out/hub /out/simulators /usr/local/bin/
USER hub
ENV RUST_LOG=info
ENTRYPOINT ["hub"]
CMD ["run"]
