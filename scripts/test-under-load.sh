#!/usr/bin/env bash
# The test command (scripts/test.sh: every stage, the sanitizer stage included) run N times in a
# row while `stress-ng --cpu 2` keeps the machine's cores busy beside it: the suite must decide by
# events and states, not by how fast the machine is. Prints each run's result and duration and
# the last lines of a failed run; exits 1 if any run failed.
#
#   bash scripts/test-under-load.sh [--runs 3] [--cpu 2] [--quick]
#
# --quick runs the test command with JETSTREAM_TEST_QUICK=1 (no sanitizer or fuzz stage).
# Logs: build/test-under-load/run-N.log. stress-ng stops with the script (and by itself after
# 12 hours at the latest).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=3
CPU=2
QUICK=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --runs) RUNS="$2"; shift 2 ;;
    --cpu) CPU="$2"; shift 2 ;;
    --quick) QUICK=1; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
bash scripts/install-deps.sh >/dev/null
command -v stress-ng >/dev/null || { echo "test-under-load: stress-ng is not installed" >&2; exit 1; }
LOGS=build/test-under-load
mkdir -p "$LOGS"

stress-ng --cpu "$CPU" --timeout 12h --quiet &
STRESS=$!
trap 'kill "$STRESS" 2>/dev/null || true; wait "$STRESS" 2>/dev/null || true' EXIT
echo "==> stress-ng --cpu $CPU running (pid $STRESS); $RUNS runs of scripts/test.sh$([[ $QUICK == 1 ]] && echo ' (quick)')"

FAILED=0
for (( run = 1; run <= RUNS; run++ )); do
  start=$SECONDS
  if JETSTREAM_TEST_QUICK=$QUICK bash scripts/test.sh >"$LOGS/run-$run.log" 2>&1; then
    echo "==> run $run of $RUNS: passed in $((SECONDS - start))s ($(tail -1 "$LOGS/run-$run.log"))"
  else
    FAILED=$((FAILED + 1))
    echo "==> run $run of $RUNS: FAILED after $((SECONDS - start))s; the end of $LOGS/run-$run.log:"
    grep -E "Failed|FAILED|\*\*\*" "$LOGS/run-$run.log" | tail -20 || true
    tail -5 "$LOGS/run-$run.log"
  fi
done
echo "==> $((RUNS - FAILED)) of $RUNS runs passed under stress-ng --cpu $CPU"
(( FAILED == 0 ))
