#!/usr/bin/env bash
# THE run command: installs what is missing, builds the `release` preset and runs the whole
# pipeline locally (decode, ingest, fanout) until Ctrl-C. Clients connect to
# ws://localhost:6008/subscribe. Works from any directory; paths below are relative to the
# repository root.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"

usage() {
  cat <<'EOF'
usage: bash scripts/run.sh [options] [-- | extra args...]

  --ws-url URL                upstream firehose (default $JETSTREAM_WS_URL or
                              wss://bsky.network/xrpc/com.atproto.sync.subscribeRepos); given to ingest
  --data-dir DIR              decode's event log (default $JETSTREAM_DATA_DIR or ./data)
  --zstd-dictionary-path F    v1 zstd dictionary (default $JETSTREAM_ZSTD_DICTIONARY_PATH, else
                              ../shared/zstd/jetstream-v1.zdict when present)
  --ingest-arg ARG            one more argument for jetstream-ingest only (repeatable)
  --decode-arg ARG            one more argument for jetstream-decode only (repeatable)
  --fanout-arg ARG            one more argument for jetstream-fanout only (repeatable)
  --no-build                  skip install-deps and the build; run what build/release holds
  -h, --help                  this text

Any other argument is passed unchanged to every service (they share the v1 flag names).
The same settings are also exported as JETSTREAM_* environment variables to every service.
EOF
}

SHARED_DIR="${JETSTREAM_SHARED_DIR:-${ROOT}/../shared}"
WS_URL="${JETSTREAM_WS_URL:-wss://bsky.network/xrpc/com.atproto.sync.subscribeRepos}"
DATA_DIR="${JETSTREAM_DATA_DIR:-./data}"
DICTIONARY="${JETSTREAM_ZSTD_DICTIONARY_PATH:-}"
BUILD=1
COMMON_ARGS=()
INGEST_ARGS=()
DECODE_ARGS=()
FANOUT_ARGS=()

need_value() {
  if [[ $# -lt 2 || -z "$2" ]]; then
    echo "run.sh: $1 needs a value" >&2
    exit 2
  fi
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --ws-url) need_value "$@"; WS_URL="$2"; shift 2 ;;
    --ws-url=*) WS_URL="${1#*=}"; shift ;;
    --data-dir) need_value "$@"; DATA_DIR="$2"; shift 2 ;;
    --data-dir=*) DATA_DIR="${1#*=}"; shift ;;
    --zstd-dictionary-path) need_value "$@"; DICTIONARY="$2"; shift 2 ;;
    --zstd-dictionary-path=*) DICTIONARY="${1#*=}"; shift ;;
    --ingest-arg) need_value "$@"; INGEST_ARGS+=("$2"); shift 2 ;;
    --decode-arg) need_value "$@"; DECODE_ARGS+=("$2"); shift 2 ;;
    --fanout-arg) need_value "$@"; FANOUT_ARGS+=("$2"); shift 2 ;;
    --no-build) BUILD=0; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; COMMON_ARGS+=("$@"); break ;;
    *) COMMON_ARGS+=("$1"); shift ;;
  esac
done

if [[ -z "${DICTIONARY}" && -f "${SHARED_DIR}/zstd/jetstream-v1.zdict" ]]; then
  DICTIONARY="$(cd "${SHARED_DIR}/zstd" && pwd)/jetstream-v1.zdict"
fi

if [[ ${BUILD} -eq 1 ]]; then
  echo "==> install dependencies"
  bash scripts/install-deps.sh
  echo "==> configure + build (release preset)"
  cmake --preset release
  cmake --build --preset release -j2
fi

BUILD_DIR="${ROOT}/build/release"

# find_service <name>: prints the path of the built executable, or nothing.
find_service() {
  if [[ -d "${BUILD_DIR}/services" ]]; then
    find "${BUILD_DIR}/services" -type f -name "$1" -perm -u+x -print -quit
  fi
}

declare -A BINARY=()
for service in decode ingest fanout; do
  BINARY[${service}]="$(find_service "jetstream-${service}")"
done

if [[ -z "${BINARY[decode]}${BINARY[ingest]}${BINARY[fanout]}" ]]; then
  echo
  echo "==> no service is built yet (jetstream-ingest, jetstream-decode and jetstream-fanout are"
  echo "    still being written); showing the frame decoder on the recorded corpus instead."
  frames="${BUILD_DIR}/tools/frames/jetstream-frames"
  corpus="${SHARED_DIR}/corpus/dev.frames"
  if [[ ! -x "${frames}" ]]; then
    echo "run.sh: ${frames} is not built either; nothing to run" >&2
    exit 1
  fi
  if [[ ! -f "${corpus}" ]]; then
    echo "run.sh: ${corpus} is absent (../shared/ beside the repository); nothing to decode" >&2
    exit 1
  fi
  echo "==> ${frames} decode ${corpus}"
  exec "${frames}" decode "${corpus}"
fi

mkdir -p "${DATA_DIR}"
DATA_DIR="$(cd "${DATA_DIR}" && pwd)"
export JETSTREAM_WS_URL="${WS_URL}"
export JETSTREAM_DATA_DIR="${DATA_DIR}"
if [[ -n "${DICTIONARY}" ]]; then
  export JETSTREAM_ZSTD_DICTIONARY_PATH="${DICTIONARY}"
fi

declare -A PID=()
STARTED=() # in start order; stopped in reverse

stop_all() {
  trap - INT TERM
  local i service pid waited
  for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
    service="${STARTED[i]}"
    pid="${PID[${service}]}"
    if kill -0 "${pid}" 2>/dev/null; then
      echo "==> stopping ${service} (pid ${pid})"
      kill -TERM "${pid}" 2>/dev/null || true
      waited=0
      while kill -0 "${pid}" 2>/dev/null && [[ ${waited} -lt 100 ]]; do
        sleep 0.1
        waited=$((waited + 1))
      done
      if kill -0 "${pid}" 2>/dev/null; then
        echo "==> ${service} did not stop within 10s; killing it"
        kill -KILL "${pid}" 2>/dev/null || true
      fi
      wait "${pid}" 2>/dev/null || true
    fi
  done
}
trap 'echo; echo "==> interrupted"; stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM

# start <service> <args...>: runs it in the background, its output prefixed with its name.
start() {
  local service="$1"
  shift
  echo "==> starting ${service}: ${BINARY[${service}]} $*"
  "${BINARY[${service}]}" "$@" > >(sed -u "s/^/[${service}] /") 2>&1 &
  PID[${service}]=$!
  STARTED+=("${service}")
}

# decode first (it owns the event log and tells ingest where to resume), then ingest, then fanout.
if [[ -n "${BINARY[decode]}" ]]; then
  args=(--data-dir "${DATA_DIR}")
  if [[ -n "${DICTIONARY}" ]]; then args+=(--zstd-dictionary-path "${DICTIONARY}"); fi
  start decode "${args[@]}" "${COMMON_ARGS[@]}" "${DECODE_ARGS[@]}"
else
  echo "==> jetstream-decode is not built yet; skipped"
fi
if [[ -n "${BINARY[ingest]}" ]]; then
  start ingest --ws-url "${WS_URL}" "${COMMON_ARGS[@]}" "${INGEST_ARGS[@]}"
else
  echo "==> jetstream-ingest is not built yet; skipped"
fi
if [[ -n "${BINARY[fanout]}" ]]; then
  start fanout "${COMMON_ARGS[@]}" "${FANOUT_ARGS[@]}"
else
  echo "==> jetstream-fanout is not built yet; skipped"
fi

echo
echo "==> upstream:  ${WS_URL}"
echo "==> data dir:  ${DATA_DIR}"
echo "==> zstd dict: ${DICTIONARY:-(none: compressed streams unavailable)}"
if [[ -n "${BINARY[fanout]}" ]]; then
  echo "==> connect:   ws://localhost:6008/subscribe   (metrics: ingest :6019, decode :6029, fanout :6009)"
fi
echo "==> Ctrl-C stops everything"

# Run until one service exits (or Ctrl-C / TERM): then stop the others and report.
set +e
wait -n "${PID[@]}"
rc=$?
set -e
for service in "${STARTED[@]}"; do
  if ! kill -0 "${PID[${service}]}" 2>/dev/null; then
    echo "==> ${service} exited (status ${rc}); stopping the pipeline"
    break
  fi
done
stop_all
exit "${rc}"
