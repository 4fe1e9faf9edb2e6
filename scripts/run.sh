#!/usr/bin/env bash
# THE run command: installs what is missing, builds the `release` preset and runs the whole
# pipeline locally (decode with its embedded RocksDB event log, ingest, fanout) until Ctrl-C, which
# stops all three. Clients connect to ws://localhost:6008/subscribe (the line "==> connect:" says
# where, once fanout answers). The upstream is the Bluesky relay unless --ws-url says otherwise (a
# local PDS, or `jetstream-frames serve` of a capture: README "Run it locally"). Works from any
# directory; paths below are relative to the repository root.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"

usage() {
  cat <<'EOF'
usage: bash scripts/run.sh [options]

  --ws-url URL                upstream firehose (default $JETSTREAM_WS_URL or
                              wss://bsky.network/xrpc/com.atproto.sync.subscribeRepos); given to ingest
  --data-dir DIR              decode's event log (default $JETSTREAM_DATA_DIR or ./data)
  --zstd-dictionary-path F    v1 zstd dictionary (default $JETSTREAM_ZSTD_DICTIONARY_PATH, else
                              ../shared/zstd/jetstream-v1.zdict when present)
  --ingest-arg ARG            one more argument for jetstream-ingest only (repeatable)
  --decode-arg ARG            one more argument for jetstream-decode only (repeatable)
  --fanout-arg ARG            one more argument for jetstream-fanout only (repeatable)
  --no-build                  skip install-deps and the build; run what build/release holds
  --build-dir DIR             run the services of another build tree (e.g. build/ci); implies
                              --no-build
  -h, --help                  this text

Any other argument is an error: each service refuses flags it does not have.
The same settings are also exported as JETSTREAM_* environment variables to every service.
Ports (defaults): fanout :6008 (metrics :6009), ingest frames :6010, control :6011, metrics :6019,
decode events :6012, replay :6013, metrics :6029; change them per service, e.g.
  --fanout-arg --listen-addr=127.0.0.1:7008

Examples:
  bash scripts/run.sh                                   # the Bluesky relay
  bash scripts/run.sh --ws-url ws://127.0.0.1:2583/xrpc/com.atproto.sync.subscribeRepos \
      --ingest-arg --stall-timeout=0                    # a local PDS (quiet: no stall reconnects)
EOF
}

SHARED_DIR="${JETSTREAM_SHARED_DIR:-${ROOT}/../shared}"
WS_URL="${JETSTREAM_WS_URL:-wss://bsky.network/xrpc/com.atproto.sync.subscribeRepos}"
DATA_DIR="${JETSTREAM_DATA_DIR:-./data}"
DICTIONARY="${JETSTREAM_ZSTD_DICTIONARY_PATH:-}"
BUILD=1
BUILD_DIR="${ROOT}/build/release"
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
    --build-dir) need_value "$@"; BUILD_DIR="$(cd "$2" && pwd)"; BUILD=0; shift 2 ;;
    --build-dir=*) BUILD_DIR="$(cd "${1#*=}" && pwd)"; BUILD=0; shift ;;
    -h | --help) usage; exit 0 ;;
    *)
      # Each service has its own flags and refuses unknown ones: there is no flag all three take.
      echo "run.sh: unknown option '$1'; a service's own flags go through --ingest-arg," \
        "--decode-arg or --fanout-arg (see --help)" >&2
      exit 2
      ;;
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

# start <service> <args...>: runs it in the background, its output prefixed with its name. Each
# service gets its own session (setsid, no fork: $! stays its pid), so a Ctrl-C in the terminal
# reaches only this script, whose trap then stops the services in order (fanout, ingest, decode);
# the prefixing sed ignores SIGINT so that the services' shutdown lines still get through.
start() {
  local service="$1"
  shift
  echo "==> starting ${service}: ${BINARY[${service}]} $*"
  setsid "${BINARY[${service}]}" "$@" > >(trap '' INT; exec sed -u "s/^/[${service}] /") 2>&1 &
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

# flag_value <flag> <default> <args...>: the last value given to --flag (as "--flag V" or
# "--flag=V") among args, else the default.
flag_value() {
  local flag="$1" value="$2"
  shift 2
  while [[ $# -gt 0 ]]; do
    case "$1" in
      "${flag}") if [[ $# -ge 2 ]]; then value="$2"; shift; fi ;;
      "${flag}"=*) value="${1#*=}" ;;
    esac
    shift
  done
  echo "${value}"
}

# http_base <listen address>: ":6008", "0.0.0.0:6008", "[::]:6008" -> localhost:6008; a host
# given is kept.
http_base() {
  local addr="$1" host port
  port="${addr##*:}"
  host="${addr%:*}"
  case "${host}" in
    "" | "0.0.0.0" | "[::]" | "::" | "*") host="localhost" ;;
  esac
  echo "${host}:${port}"
}

listen_of() { # listen_of <service> <flag> <default>: what the service was told (flag > env > default)
  local service="$1" flag="$2" default="$3" env_name args=()
  env_name="JETSTREAM_$(tr 'a-z-' 'A-Z_' <<<"${flag#--}")"
  default="${!env_name:-${default}}"
  args=("${COMMON_ARGS[@]}")
  case "${service}" in
    ingest) args+=("${INGEST_ARGS[@]}") ;;
    decode) args+=("${DECODE_ARGS[@]}") ;;
    fanout) args+=("${FANOUT_ARGS[@]}") ;;
  esac
  http_base "$(flag_value "${flag}" "${default}" "${args[@]}")"
}

FANOUT_HTTP="$(listen_of fanout --listen-addr :6008)"
METRICS="ingest $(listen_of ingest --metrics-listen-addr :6019), decode $(listen_of decode \
  --metrics-listen-addr :6029), fanout $(listen_of fanout --metrics-listen-addr :6009)"

echo
echo "==> upstream:  ${WS_URL}"
echo "==> data dir:  ${DATA_DIR} (RocksDB, embedded in decode)"
echo "==> zstd dict: ${DICTIONARY:-(none: compressed streams unavailable)}"
if [[ -n "${BINARY[fanout]}" ]]; then
  # Say where to connect once fanout answers (GET / -> "Welcome to Jetstream"), at most 15 s.
  deadline=$((SECONDS + 15))
  while [[ ${SECONDS} -lt ${deadline} ]]; do
    if curl -fsS -m 1 "http://${FANOUT_HTTP}/" >/dev/null 2>&1; then break; fi
    if ! kill -0 "${PID[fanout]}" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "==> connect:   ws://${FANOUT_HTTP}/subscribe   (metrics: ${METRICS})"
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
