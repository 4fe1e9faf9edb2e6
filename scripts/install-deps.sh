#!/usr/bin/env bash
# Installs the Debian 12 packages this project needs to build, test and run; a no-op when all of
# them are present. Idempotent: it asks dpkg which are missing and only then touches apt.
# Runs as root (or through sudo when available). See README.md "Dependencies" for why each exists.
set -euo pipefail

PACKAGES=(
  # toolchain
  build-essential cmake ninja-build pkg-config git
  clang-14 libclang-rt-14-dev clang-format clang-tidy
  # service stack
  libcaf-dev cppzmq-dev libzmq3-dev
  libboost-dev libboost-system-dev
  rapidjson-dev libzstd-dev zstd prometheus-cpp-dev librocksdb-dev
  libssl-dev libsecp256k1-dev zlib1g-dev libbz2-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  # scripts
  curl ca-certificates python3
  # deployment checks (tests/deploy): promtool and a Prometheus server, YAML parsing
  prometheus python3-yaml
  # load beside the suite (tests must not depend on an idle machine: scripts/test-under-load.sh)
  stress-ng
  # e2e: the real load balancer in front of fanout replicas, and the real browser for /status and
  # permessage-deflate (driven by npm puppeteer-core, headless, loopback only)
  haproxy chromium
)

is_installed() {
  local status
  status="$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null || true)"
  [[ "${status}" == ii* ]]
}

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! is_installed "${pkg}"; then
    missing+=("${pkg}")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

echo "install-deps: installing ${#missing[@]} missing package(s): ${missing[*]}"

SUDO=()
if [[ "$(id -u)" -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    echo "install-deps: not root and sudo is not available; install these as root:" >&2
    echo "  apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
fi

"${SUDO[@]}" apt-get update
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y --no-install-recommends "${missing[@]}"

echo "install-deps: installed ${missing[*]}"
