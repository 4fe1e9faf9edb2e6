#!/usr/bin/env bash
# Decode read speed: `jetstream-frames decode` on a capture file against the JavaScript peer
# (tools/peer-decode, in its two ways: --lean and --atproto) on the same file, in the same run.
# Prints the machine, frames/s and events/s of each, and the ratio to the faster peer (goal >= 5x).
# All three must find the same number of events, or the script fails.
#
#   bash scripts/bench-decode.sh [--build-dir build/release] [--frames 100000]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/bench-machine.sh
B=build/release
FRAMES=100000
GOAL=5
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) B="$2"; shift 2 ;;
    --frames) FRAMES="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
SHARED=../shared
[[ -f $SHARED/corpus/dev.frames ]] || { echo "bench-decode: $SHARED/corpus/dev.frames missing" >&2; exit 1; }
FRAMES_TOOL="$B/tools/frames/jetstream-frames"
[[ -x $FRAMES_TOOL ]] || { echo "bench-decode: $FRAMES_TOOL not built" >&2; exit 1; }
[[ -d tests/e2e/node_modules/@atproto/repo ]] || bash tests/e2e/install.sh
WORK=$(mktemp -d /tmp/jetstream-bench-decode.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

print_bench_machine "$B"
echo "==> capture: $FRAMES real relay frames (../shared/corpus/dev.frames repeated, fresh seqs)"
"$FRAMES_TOOL" repeat "$SHARED/corpus/dev.frames" "$WORK/capture.frames" --frames "$FRAMES" \
  --first-seq 4294967296 2>/dev/null  # 8-byte seqs are canonical from 2^32: the peer is strict
BYTES=$(stat -c %s "$WORK/capture.frames")
cat "$WORK/capture.frames" >/dev/null  # both read it from the page cache

# Runs "$@" with stdout to /dev/null and stderr to $WORK/$1.err; prints "wall user sys" seconds.
timed() {
  local name="$1"; shift
  local start end
  start=$(date +%s.%N)
  "$@" >/dev/null 2>"$WORK/$name.err"
  end=$(date +%s.%N)
  awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }'
}
events_of() { awk '/^events:/{ print $2; exit }' "$WORK/$1.err"; }

CXX_WALL=$(timed cxx "$FRAMES_TOOL" decode "$WORK/capture.frames")
LEAN_WALL=$(timed lean node tools/peer-decode/peer-decode.mjs --lean "$WORK/capture.frames")
ATPROTO_WALL=$(timed atproto node tools/peer-decode/peer-decode.mjs --atproto "$WORK/capture.frames")
line() {  # name wall events
  awk -v name="$1" -v w="$2" -v e="$3" -v f="$FRAMES" -v bytes="$BYTES" -v cw="$CXX_WALL" 'BEGIN {
    printf "  %-34s %8.0f frames/s %8.0f events/s %6.0f MB/s of frames (%.2f s)", name, f / w, e / w, bytes / w / 1e6, w
    if (w != cw) printf "  jetstream-frames is %.1fx this", w / cw
    printf "\n" }'
}
NODE=$(node --version)
line "jetstream-frames decode" "$CXX_WALL" "$(events_of cxx)"
line "peer-decode --lean (node $NODE)" "$LEAN_WALL" "$(events_of lean)"
line "peer-decode --atproto (node $NODE)" "$ATPROTO_WALL" "$(events_of atproto)"
# The goal is judged against the faster peer: beating a slow yardstick proves little.
awk -v cw="$CXX_WALL" -v lw="$LEAN_WALL" -v aw="$ATPROTO_WALL" -v goal="$GOAL" 'BEGIN {
  best = lw < aw ? lw : aw; ratio = best / cw
  printf "  ratio to the faster peer: %.1fx (goal >= %dx: %s)\n", ratio, goal, (ratio >= goal ? "met" : "NOT MET") }'
if [[ "$(events_of cxx)" != "$(events_of lean)" || "$(events_of cxx)" != "$(events_of atproto)" ]]; then
  echo "bench-decode: the decoders disagree on the event count" \
    "($(events_of cxx), $(events_of lean), $(events_of atproto))" >&2
  exit 1
fi
