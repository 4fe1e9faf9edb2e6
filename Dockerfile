# syntax=docker/dockerfile:1
# One image for the whole stack: jetstream-ingest, jetstream-decode, jetstream-fanout,
# jetstream-backfill and the jetstream-frames tool, on Debian 12 (bookworm), running as an unprivileged user. The
# container's command picks the service (docker-compose.yml, k8s/).
#
#   docker build -t jetstream-cpp:local .          # or: make image
#   docker run --rm jetstream-cpp:local jetstream-decode --help

ARG DEBIAN_IMAGE=debian:bookworm-slim

# ---- build: compilers and -dev packages; only the five executables leave this stage ----------
FROM ${DEBIAN_IMAGE} AS build
ARG BUILD_JOBS=
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config ca-certificates \
      libcaf-dev cppzmq-dev libzmq3-dev \
      libboost-dev libboost-system-dev \
      rapidjson-dev libzstd-dev prometheus-cpp-dev librocksdb-dev libsecp256k1-dev \
      libssl-dev zlib1g-dev libbz2-dev \
      libgtest-dev libgmock-dev \
 && rm -rf /var/lib/apt/lists/*
# (GoogleTest is only needed because CMake configures the test tree; no test is built here.)
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -G Ninja \
      -DCMAKE_BUILD_TYPE=Release \
      -DJETSTREAM_BENCHMARKS=OFF -DJETSTREAM_FUZZ=OFF -DJETSTREAM_SANITIZE=OFF \
 && cmake --build /build -j"${BUILD_JOBS:-$(nproc)}" \
      --target jetstream-ingest jetstream-decode jetstream-fanout jetstream-backfill jetstream-frames \
 && install -D -m 0755 -t /out/usr/local/bin \
      /build/services/ingest/jetstream-ingest \
      /build/services/decode/jetstream-decode \
      /build/services/fanout/jetstream-fanout \
      /build/services/backfill/jetstream-backfill \
      /build/tools/frames/jetstream-frames \
 && strip --strip-unneeded /out/usr/local/bin/*

# ---- runtime: the shared libraries the executables link, nothing else -------------------------
FROM ${DEBIAN_IMAGE} AS runtime
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates \
      libcaf-core0.17 libzmq5 libboost-system1.74.0 \
      libzstd1 libprometheus-cpp-core1.0 librocksdb7.8 \
      libssl3 libsecp256k1-1 zlib1g libbz2-1.0 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 jetstream \
 && useradd --system --uid 10001 --gid jetstream --no-create-home \
      --home-dir /var/lib/jetstream --shell /usr/sbin/nologin jetstream \
 && install -d -o jetstream -g jetstream -m 0750 /var/lib/jetstream /var/lib/jetstream/data \
      /var/lib/jetstream/backfill \
 && install -d -m 0755 /etc/jetstream/zstd
COPY --from=build /out/ /
# Fail the build if a runtime library is missing, and prove each executable starts.
RUN set -e; for exe in /usr/local/bin/jetstream-*; do \
      if ldd "$exe" | grep -q 'not found'; then ldd "$exe"; exit 1; fi; \
    done; \
    for svc in ingest decode fanout backfill; do "jetstream-$svc" --help >/dev/null; done

USER 10001:10001
# decode's default --data-dir ./data is /var/lib/jetstream/data from here: mount its volume there.
WORKDIR /var/lib/jetstream
#      fanout ws | fanout metrics | ingest frames, control, metrics | decode events, replay,
#      backfill, metrics | backfill metrics
EXPOSE 6008 6009 6010 6011 6019 6012 6013 6014 6029 6039
STOPSIGNAL SIGTERM
CMD ["jetstream-fanout"]
