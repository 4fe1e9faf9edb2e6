#!/usr/bin/env bash
# Fanout benchmarks of issue 4, self-contained on 127.0.0.1 (the whole pipeline as processes):
#   1. latency: 1,000 live clients while upstream plays ~2,000 events/s → p50/p99/max publish→receive
#   2. throughput: 1,000 clients replaying the whole log from cursor=0 → deliveries/s per fanout
#      CPU second
# Prints the loadgen summaries and each figure's ratio to the issue's target.
#
#   bash scripts/bench-fanout.sh [--build-dir build/release] [--clients 1000] [--seconds 20]
#                                [--rate FRAMES_PER_S] [--fanout-arg ARG]...
set -euo pipefail
cd "$(dirname "$0")/.."
B=build/release
CLIENTS=1000
SECONDS_LIVE=20
RATE=1950  # frames/s; the corpus gives 77 events per 75 frames → ~2,000 events/s
FANOUT_ARGS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) B="$2"; shift 2 ;;
    --clients) CLIENTS="$2"; shift 2 ;;
    --seconds) SECONDS_LIVE="$2"; shift 2 ;;
    --rate) RATE="$2"; shift 2 ;;
    --fanout-arg) FANOUT_ARGS+=("$2"); shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
SHARED=../shared
[[ -f $SHARED/corpus/dev.frames ]] || { echo "bench-fanout: $SHARED/corpus/dev.frames missing" >&2; exit 1; }
for binary in tools/frames/jetstream-frames services/ingest/jetstream-ingest \
    services/decode/jetstream-decode services/fanout/jetstream-fanout tools/loadgen/jetstream-loadgen; do
  [[ -x $B/$binary ]] || { echo "bench-fanout: $B/$binary not built" >&2; exit 1; }
done
WORK=$(mktemp -d /tmp/jetstream-bench-fanout.XXXXXX)
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
ulimit -n 65536 2>/dev/null || true

FRAMES=$(( RATE * (SECONDS_LIVE + 15) ))
echo "==> synthetic upstream: $FRAMES real relay frames with fresh seqs"
"$B/tools/frames/jetstream-frames" repeat "$SHARED/corpus/dev.frames" "$WORK/upstream.frames" --frames "$FRAMES" 2>/dev/null
DICT=()
[[ -f $SHARED/zstd/jetstream-v1.zdict ]] && DICT=(--zstd-dictionary-path "$SHARED/zstd/jetstream-v1.zdict")
P=19000
"$B/services/decode/jetstream-decode" --data-dir "$WORK/data" "${DICT[@]}" \
  --frames-endpoint tcp://127.0.0.1:$((P+10)) --control-endpoint tcp://127.0.0.1:$((P+11)) \
  --events-endpoint tcp://127.0.0.1:$((P+12)) --replay-endpoint tcp://127.0.0.1:$((P+13)) \
  --metrics-listen-addr 127.0.0.1:$((P+29)) >"$WORK/decode.log" 2>&1 & PIDS+=($!)
"$B/services/fanout/jetstream-fanout" --listen-addr 127.0.0.1:$((P+8)) --metrics-listen-addr 127.0.0.1:$((P+9)) \
  --events-endpoint tcp://127.0.0.1:$((P+12)) --replay-endpoint tcp://127.0.0.1:$((P+13)) "${DICT[@]}" \
  --max-sub-rate 0 "${FANOUT_ARGS[@]}" >"$WORK/fanout.log" 2>&1 & FANOUT=$!; PIDS+=($FANOUT)
sleep 1
"$B/tools/frames/jetstream-frames" serve "$WORK/upstream.frames" --listen 127.0.0.1:$((P+0)) --rate "$RATE" \
  --keep-open >"$WORK/serve.log" 2>&1 & PIDS+=($!)
"$B/services/ingest/jetstream-ingest" --ws-url ws://127.0.0.1:$((P+0))/xrpc/com.atproto.sync.subscribeRepos \
  --frames-listen-addr 127.0.0.1:$((P+10)) --control-listen-addr 127.0.0.1:$((P+11)) \
  --metrics-listen-addr 127.0.0.1:$((P+19)) >"$WORK/ingest.log" 2>&1 & PIDS+=($!)
sleep 2

echo "==> 0. memory: $CLIENTS idle clients (a filter nothing matches) (target <= 64 KiB per idle client)"
RSS_BEFORE=$(awk '/VmRSS/{print $2}' /proc/$FANOUT/status)
"$B/tools/loadgen/jetstream-loadgen" --url "ws://127.0.0.1:$((P+8))/subscribe" \
  --query wantedCollections=com.example.nothing.matches --clients "$CLIENTS" --connect-rate 2000 \
  --duration 8s --progress=false >"$WORK/idle.txt" 2>&1 & IDLE=$!
sleep 5
RSS_IDLE=$(awk '/VmRSS/{print $2}' /proc/$FANOUT/status)
wait "$IDLE" || true
awk -v before="$RSS_BEFORE" -v idle="$RSS_IDLE" -v n="$CLIENTS" 'BEGIN {
  per = (idle - before) / n; printf "  fanout RSS %d KiB -> %d KiB with %d idle clients: %.1f KiB per idle client (%.2fx of the 64 KiB limit)\n", before, idle, n, per, per / 64 }'

echo "==> 1. latency: $CLIENTS live clients for ${SECONDS_LIVE}s at ~$RATE frames/s upstream (target p99 < 5 ms)"
"$B/tools/loadgen/jetstream-loadgen" --url "ws://127.0.0.1:$((P+8))/subscribe" --clients "$CLIENTS" \
  --connect-rate 1000 --duration "${SECONDS_LIVE}s" --server-pid "$FANOUT" | tee "$WORK/latency.txt" || true

echo "==> 2. throughput: $CLIENTS clients replay the stored log from cursor=0 (target >= 2,000,000 deliveries/s per core)"
STORED=$(curl -s "127.0.0.1:$((P+29))/metrics" | awk '/^jetstream_decode_events_stored_total /{print int($2)}')
"$B/tools/loadgen/jetstream-loadgen" --url "ws://127.0.0.1:$((P+8))/subscribe" --query cursor=0 \
  --clients "$CLIENTS" --connect-rate 500 --until-events "$STORED" --duration 120s --expect-same \
  --server-pid "$FANOUT" | tee "$WORK/throughput.txt" || true
echo "==> fanout memory (RSS): $(awk '/VmRSS/{print $2/1024 " MiB"}' /proc/$FANOUT/status) for $CLIENTS clients"
