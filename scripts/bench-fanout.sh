#!/usr/bin/env bash
# Fanout benchmarks, self-contained on 127.0.0.1 (the whole pipeline as processes):
#   0. memory: fanout RSS per idle client; peak RSS while 1,000 clients each send a 10,000-DID
#      (~440 KB) subscribe URL at once
#   1. latency: 1,000 live clients while upstream plays ~2,000 events/s → p50/p99/max publish→receive,
#      and fanout's own share (its delivery-lag histogram: event time to the write handed to the
#      client's socket)
#   2. throughput: 1,000 clients replaying the whole log from cursor=0 → deliveries/s per fanout
#      CPU second
#   3. encodings: 1,000 live clients as text, as permessage-deflate (what browsers offer) and as
#      zstd, one after the other: fanout CPU per delivery and bytes on the wire per event of each,
#      side by side, and deflate's CPU per delivery as a ratio to text's (target: within 10%)
#   4. peer: the same 1,000 live clients on a minimal fanout in node (tools/peer-fanout: npm ws,
#      each event's message sent as received to every client) fed by jetstream-fanout, and on
#      jetstream-fanout itself: deliveries per CPU second of each and the ratio (target >= 10x)
# Prints the machine first (CPU, cores, build type, how busy it was before the start), the CPU
# pinning, the loadgen summaries and each figure's ratio to its target.
#
# Pinning (--pin, the default with 2 or more cores): fanout gets the first half of the cores, the
# load generator and the rest of the pipeline the other half (taskset), so the clients' reads do
# not compete with fanout's writes for the same core. --no-pin shares every core.
#
#   bash scripts/bench-fanout.sh [--build-dir build/release] [--clients 1000] [--seconds 20]
#                                [--rate FRAMES_PER_S] [--no-pin] [--fanout-arg ARG]...
#                                [--sections 0,1,2,3,4] [--encoding-seconds 10]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/bench-machine.sh
B=build/release
PIN=1
CLIENTS=1000
SECONDS_LIVE=20
RATE=1950  # frames/s; the corpus gives 77 events per 75 frames → ~2,000 events/s
FANOUT_ARGS=()
SECTIONS=0,1,2,3,4
ENCODING_SECONDS=10
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) B="$2"; shift 2 ;;
    --clients) CLIENTS="$2"; shift 2 ;;
    --seconds) SECONDS_LIVE="$2"; shift 2 ;;
    --rate) RATE="$2"; shift 2 ;;
    --fanout-arg) FANOUT_ARGS+=("$2"); shift 2 ;;
    --sections) SECTIONS="$2"; shift 2 ;;
    --encoding-seconds) ENCODING_SECONDS="$2"; shift 2 ;;
    --pin) PIN=1; shift ;;
    --no-pin) PIN=0; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
SHARED=../shared
[[ -f $SHARED/corpus/dev.frames ]] || { echo "bench-fanout: $SHARED/corpus/dev.frames missing" >&2; exit 1; }
for binary in tools/frames/jetstream-frames services/ingest/jetstream-ingest \
    services/decode/jetstream-decode services/fanout/jetstream-fanout tools/loadgen/jetstream-loadgen; do
  [[ -x $B/$binary ]] || { echo "bench-fanout: $B/$binary not built" >&2; exit 1; }
done
print_bench_machine "$B"
CORES=$(nproc)
FANOUT_CPUS=""
OTHER_CPUS=""
if (( PIN == 1 && CORES >= 2 )) && command -v taskset >/dev/null; then
  HALF=$(( CORES / 2 ))
  FANOUT_CPUS="0-$(( HALF - 1 ))"
  OTHER_CPUS="${HALF}-$(( CORES - 1 ))"
  echo "==> pinning: fanout on CPUs $FANOUT_CPUS; loadgen, decode, ingest and the upstream on CPUs $OTHER_CPUS"
else
  echo "==> pinning: none (every process on every core)"
fi
# Command prefixes that run a program on the fanout's CPUs / the others' CPUs when pinning
# (taskset execs the program, so $! of a background job is the program's own pid).
ON_FANOUT_CPUS=()
ON_OTHER_CPUS=()
if [[ -n $FANOUT_CPUS ]]; then
  ON_FANOUT_CPUS=(taskset -c "$FANOUT_CPUS")
  ON_OTHER_CPUS=(taskset -c "$OTHER_CPUS")
fi
WORK=$(mktemp -d /tmp/jetstream-bench-fanout.XXXXXX)
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
ulimit -n 65536 2>/dev/null || true

# Whether section $1 was asked for (--sections).
want() { [[ ",$SECTIONS," == *",$1,"* ]]; }
FRAMES=$(( RATE * (SECONDS_LIVE + 15 + 5 * (ENCODING_SECONDS + 5)) ))
echo "==> synthetic upstream: $FRAMES real relay frames with fresh seqs"
"$B/tools/frames/jetstream-frames" repeat "$SHARED/corpus/dev.frames" "$WORK/upstream.frames" --frames "$FRAMES" 2>/dev/null
# fanout's io and session threads: with pinning, one of each per fanout core.
if [[ -n $FANOUT_CPUS ]]; then
  FANOUT_ARGS=(--io-threads "$(( (CORES / 2 + 1) / 2 ))" --actor-threads "$(( (CORES / 2 + 1) / 2 ))" "${FANOUT_ARGS[@]}")
fi
DICT=()
[[ -f $SHARED/zstd/jetstream-v1.zdict ]] && DICT=(--zstd-dictionary-path "$SHARED/zstd/jetstream-v1.zdict")
P=19000
"${ON_OTHER_CPUS[@]}" "$B/services/decode/jetstream-decode" --data-dir "$WORK/data" "${DICT[@]}" \
  --frames-endpoint tcp://127.0.0.1:$((P+10)) --control-endpoint tcp://127.0.0.1:$((P+11)) \
  --events-endpoint tcp://127.0.0.1:$((P+12)) --replay-endpoint tcp://127.0.0.1:$((P+13)) \
  --backfill-endpoint tcp://127.0.0.1:$((P+14)) --metrics-listen-addr 127.0.0.1:$((P+29)) >"$WORK/decode.log" 2>&1 & DECODE=$!; PIDS+=($DECODE)
"${ON_FANOUT_CPUS[@]}" "$B/services/fanout/jetstream-fanout" --listen-addr 127.0.0.1:$((P+8)) --metrics-listen-addr 127.0.0.1:$((P+9)) \
  --events-endpoint tcp://127.0.0.1:$((P+12)) --replay-endpoint tcp://127.0.0.1:$((P+13)) "${DICT[@]}" \
  --max-sub-rate 0 "${FANOUT_ARGS[@]}" >"$WORK/fanout.log" 2>&1 & FANOUT=$!; PIDS+=($FANOUT)
sleep 1
"${ON_OTHER_CPUS[@]}" "$B/tools/frames/jetstream-frames" serve "$WORK/upstream.frames" --listen 127.0.0.1:$((P+0)) --rate "$RATE" \
  --keep-open >"$WORK/serve.log" 2>&1 & SERVE=$!; PIDS+=($SERVE)
"${ON_OTHER_CPUS[@]}" "$B/services/ingest/jetstream-ingest" --ws-url ws://127.0.0.1:$((P+0))/xrpc/com.atproto.sync.subscribeRepos \
  --frames-listen-addr 127.0.0.1:$((P+10)) --control-listen-addr 127.0.0.1:$((P+11)) \
  --metrics-listen-addr 127.0.0.1:$((P+19)) >"$WORK/ingest.log" 2>&1 & INGEST=$!; PIDS+=($INGEST)
sleep 2

if want 0; then
echo "==> 0. memory: $CLIENTS idle clients (a filter nothing matches) (target <= 64 KiB per idle client)"
RSS_BEFORE=$(awk '/VmRSS/{print $2}' /proc/$FANOUT/status)
"${ON_OTHER_CPUS[@]}" "$B/tools/loadgen/jetstream-loadgen" --url "ws://127.0.0.1:$((P+8))/subscribe" \
  --query wantedCollections=com.example.nothing.matches --clients "$CLIENTS" --connect-rate 2000 \
  --duration 8s --progress=false >"$WORK/idle.txt" 2>&1 & IDLE=$!
sleep 5
RSS_IDLE=$(awk '/VmRSS/{print $2}' /proc/$FANOUT/status)
wait "$IDLE" || true
awk -v before="$RSS_BEFORE" -v idle="$RSS_IDLE" -v n="$CLIENTS" 'BEGIN {
  per = (idle - before) / n; printf "  fanout RSS %d KiB -> %d KiB with %d idle clients: %.1f KiB per idle client (%.2fx of the 64 KiB limit)\n", before, idle, n, per, per / 64 }'

echo "==> 0b. memory: $CLIENTS clients each sending a 10,000-DID subscribe URL (~440 KB) at once (target: a few hundred MiB)"
python3 - "$WORK/long.query" <<'PY'
import sys
dids = "&".join(f"wantedDids=did:plc:{i:024d}" for i in range(10_000))
open(sys.argv[1], "w").write("cursor=0&" + dids)
PY
HWM_BEFORE=$(awk '/VmHWM/{print $2}' /proc/$FANOUT/status)
"${ON_OTHER_CPUS[@]}" "$B/tools/loadgen/jetstream-loadgen" --url "ws://127.0.0.1:$((P+8))/subscribe" \
  --query-file "$WORK/long.query" --clients "$CLIENTS" --connect-rate 0 --duration 10s \
  --handshake-timeout 60s --progress=false >"$WORK/long-urls.txt" 2>&1 || true
CONNECTED=$(awk '/^  clients /{ print $4; exit }' "$WORK/long-urls.txt")
awk -v before="$HWM_BEFORE" -v after="$(awk '/VmHWM/{print $2}' /proc/$FANOUT/status)" -v c="${CONNECTED:-?}" 'BEGIN {
  printf "  fanout peak RSS %.1f MiB before, %.1f MiB after %s clients connected with a 440 KB URL each\n", before / 1024, after / 1024, c }'
fi

# CPU seconds (user + system) a process has used so far.
cpu_seconds() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }
# Quantiles of one of fanout's lag histograms ($1) between two scrapes (linear within a bucket).
lag_quantiles() {
  local name="$1"; shift
  awk -v name="$name" '
    FNR == 1 { file++ }
    index($0, name "_bucket") == 1 {
      match($0, /le="[^"]*"/); le = substr($0, RSTART + 4, RLENGTH - 5)
      if (file == 1) { before[le] = $NF } else { after[le] = $NF; order[++n] = le }
    }
    END {
      total = after["+Inf"] - before["+Inf"]
      if (total <= 0) { print "no writes recorded"; exit }
      split("0.5 0.99", qs, " ")
      for (k = 1; k <= 2; k++) {
        want = qs[k] * total; lower = 0; prev = 0
        for (i = 1; i <= n; i++) {
          count = after[order[i]] - before[order[i]]
          if (count >= want) {
            upper = order[i] == "+Inf" ? lower : order[i]
            frac = count > prev ? (want - prev) / (count - prev) : 1
            printf "p%s %.1f ms, ", qs[k] * 100, (lower + (upper - lower) * frac) * 1000
            break
          }
          lower = order[i]; prev = count
        }
      }
      printf "%.1f%% of writes within 5 ms\n", 100 * (after["0.005"] - before["0.005"]) / total
    }' "$1" "$2"
}
if want 1; then
echo "==> 1. latency: $CLIENTS live clients for ${SECONDS_LIVE}s at ~$RATE frames/s upstream (target: fanout's own share p99 < 5 ms)"
declare -A CPU_BEFORE
for name in FANOUT DECODE INGEST SERVE; do CPU_BEFORE[$name]=$(cpu_seconds "${!name}"); done
curl -s "127.0.0.1:$((P+9))/metrics" >"$WORK/fanout-before.prom"
LIVE_START=$(date +%s.%N)
"${ON_OTHER_CPUS[@]}" "$B/tools/loadgen/jetstream-loadgen" --url "ws://127.0.0.1:$((P+8))/subscribe" --clients "$CLIENTS" \
  --connect-rate 1000 --duration "${SECONDS_LIVE}s" --server-pid "$FANOUT" | tee "$WORK/latency.txt" || true
LIVE_SECONDS=$(awk -v a="$LIVE_START" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
curl -s "127.0.0.1:$((P+9))/metrics" >"$WORK/fanout-after.prom"
# Where the time goes: fanout's own share (an event's arrival at fanout to the kernel taking its
# bytes for each client: jetstream_fanout_write_lag_seconds), decode's time_us to the batch
# handed to the connection (jetstream_fanout_delivery_lag_seconds, which includes decode's
# publish and the hop to fanout), and how busy the machine was.
echo "  fanout's own share (arrival -> socket)  $(lag_quantiles jetstream_fanout_write_lag_seconds "$WORK/fanout-before.prom" "$WORK/fanout-after.prom")"
echo "  decode time_us -> handed to the socket  $(lag_quantiles jetstream_fanout_delivery_lag_seconds "$WORK/fanout-before.prom" "$WORK/fanout-after.prom")"
LOADGEN_CPU=$(awk '/^  cpu +loadgen/ { print $3 }' "$WORK/latency.txt")
printf '  machine       %d cores; busy: ' "$(nproc)"
TOTAL=0
for name in FANOUT DECODE INGEST SERVE; do
  used=$(awk -v a="${CPU_BEFORE[$name]}" -v b="$(cpu_seconds "${!name}")" -v s="$LIVE_SECONDS" \
    'BEGIN { printf "%.2f", (b - a) / s }')
  printf '%s %s + ' "${name,,}" "$used"
  TOTAL=$(awk -v t="$TOTAL" -v u="$used" 'BEGIN { print t + u }')
done
awk -v t="$TOTAL" -v l="${LOADGEN_CPU:-0}" -v s="$LIVE_SECONDS" -v n="$(nproc)" \
  'BEGIN { u = l / s; printf "loadgen %.2f = %.2f cores (%.0f%% of the machine)\n", u, t + u, 100 * (t + u) / n }'

fi

if want 3; then
echo "==> 3. encodings: $CLIENTS live clients as text, permessage-deflate and zstd, ${ENCODING_SECONDS}s each (target: deflate's fanout CPU per delivery within 10% of text's)"
for encoding in text deflate zstd; do
  args=()
  case $encoding in
    # One loadgen core cannot inflate what one fanout core sends: both compressed encodings read
    # every 16th message (the latencies are sampled; every message is still counted).
    deflate) args=(--deflate --decompress-every 16) ;;
    zstd) args=(--compress "${DICT[@]}" --decompress-every 16) ;;
  esac
  if [[ $encoding == zstd && ${#DICT[@]} -eq 0 ]]; then echo "  zstd: no dictionary under $SHARED/zstd, skipped"; continue; fi
  "${ON_OTHER_CPUS[@]}" "$B/tools/loadgen/jetstream-loadgen" --url "ws://127.0.0.1:$((P+8))/subscribe" --clients "$CLIENTS" \
    --connect-rate 1000 --duration "${ENCODING_SECONDS}s" --server-pid "$FANOUT" --progress=false --json \
    "${args[@]}" >"$WORK/encoding-$encoding.json" 2>"$WORK/encoding-$encoding.err" || true
done
python3 - "$WORK" <<'PY'
import json, os, sys
work = sys.argv[1]
rows = {}
for encoding in ("text", "deflate", "zstd"):
    path = os.path.join(work, f"encoding-{encoding}.json")
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        continue
    run = json.load(open(path))
    deliveries = run.get("deliveries", 0)
    cpu = run.get("server_cpu_s", -1)
    if deliveries <= 0 or cpu <= 0:
        print(f"  {encoding:8} no deliveries measured ({run.get('connected')} connected)")
        continue
    rows[encoding] = (deliveries, cpu * 1e6 / deliveries, run["wire_bytes"] / deliveries, run["connected"])
print("  encoding  connected  deliveries   fanout CPU per delivery   wire bytes per event")
for encoding, (deliveries, us, wire, connected) in rows.items():
    ratio = f" ({us / rows['text'][1]:.2f}x of text)" if "text" in rows and encoding != "text" else ""
    wratio = f" ({wire / rows['text'][2]:.2f}x)" if "text" in rows and encoding != "text" else ""
    print(f"  {encoding:8} {connected:10} {deliveries:11,}   {us:8.3f} us{ratio:17}   {wire:8.1f}{wratio}")
if "text" in rows and "deflate" in rows:
    r = rows["deflate"][1] / rows["text"][1]
    print(f"  deflate vs text CPU per delivery: {r:.2f}x ({'met' if r <= 1.10 else 'NOT met'}: limit 1.10x)")
PY
fi

if want 4; then
echo "==> 4. peer: $CLIENTS live clients on a minimal node fanout (npm ws) and on jetstream-fanout, ${ENCODING_SECONDS}s each (target: fanout >= 10x the peer's deliveries per CPU second)"
if ! command -v node >/dev/null || [[ ! -f tests/e2e/node_modules/ws/package.json ]]; then
  echo "  node or tests/e2e/node_modules/ws missing (bash tests/e2e/install.sh): skipped"
else
  "${ON_FANOUT_CPUS[@]}" node tools/peer-fanout/peer-fanout.mjs --upstream "ws://127.0.0.1:$((P+8))/subscribe" \
    --listen $((P+40)) >"$WORK/peer.log" 2>&1 & PEER=$!; PIDS+=($PEER)
  for _ in $(seq 1 50); do grep -q listening "$WORK/peer.log" && break; sleep 0.1; done
  for target in fanout peer; do
    if [[ $target == fanout ]]; then url="ws://127.0.0.1:$((P+8))/subscribe"; pid=$FANOUT; else url="ws://127.0.0.1:$((P+40))/"; pid=$PEER; fi
    "${ON_OTHER_CPUS[@]}" "$B/tools/loadgen/jetstream-loadgen" --url "$url" --clients "$CLIENTS" \
      --connect-rate 0 --handshake-timeout 30s --duration "${ENCODING_SECONDS}s" --server-pid "$pid" --progress=false --json \
      >"$WORK/peer-$target.json" 2>"$WORK/peer-$target.err" || true
  done
  kill "$PEER" 2>/dev/null || true
  python3 - "$WORK" "$(node --version)" <<'PY'
import json, os, sys
work, node = sys.argv[1], sys.argv[2]
rows = {}
for target in ("fanout", "peer"):
    path = os.path.join(work, f"peer-{target}.json")
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        print(f"  {target}: no result ({open(os.path.join(work, f'peer-{target}.err')).read()[-300:]})")
        continue
    run = json.load(open(path))
    cpu = run.get("server_cpu_s", -1)
    if cpu <= 0 or run.get("deliveries", 0) <= 0:
        print(f"  {target}: nothing measured ({run.get('connected')} connected)")
        continue
    rows[target] = (run["deliveries"] / cpu, run["deliveries"], cpu, run["connected"], run["latency_us"]["p99"])
names = {"fanout": "jetstream-fanout", "peer": f"node peer (ws, node {node})"}
for target, (per_cpu, deliveries, cpu, connected, p99) in rows.items():
    print(f"  {names[target]:28} {connected:5} clients  {deliveries:11,} deliveries  {cpu:6.2f} CPU s  "
          f"{per_cpu:12,.0f} deliveries per CPU second  p99 {p99 / 1000:.1f} ms")
if len(rows) == 2:
    r = rows["fanout"][0] / rows["peer"][0]
    print(f"  fanout / peer: {r:.1f}x deliveries per CPU second ({'met' if r >= 10 else 'NOT met'}: target 10x)")
PY
fi
fi

if want 2; then
echo "==> 2. throughput: $CLIENTS clients replay the stored log from cursor=0 (target >= 2,000,000 deliveries/s per core)"
STORED=$(curl -s "127.0.0.1:$((P+29))/metrics" | awk '/^jetstream_decode_events_stored_total /{print int($2)}')
"${ON_OTHER_CPUS[@]}" "$B/tools/loadgen/jetstream-loadgen" --url "ws://127.0.0.1:$((P+8))/subscribe" --query cursor=0 \
  --clients "$CLIENTS" --connect-rate 500 --until-events "$STORED" --duration 120s --expect-same \
  --handshake-timeout 60s \
  --server-pid "$FANOUT" | tee "$WORK/throughput.txt" || true
fi
echo "==> fanout memory (RSS): $(awk '/VmRSS/{print $2/1024 " MiB"}' /proc/$FANOUT/status) for $CLIENTS clients"
