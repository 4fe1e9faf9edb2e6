#!/usr/bin/env bash
# THE test command: installs what is missing, checks formatting, builds and runs the whole test
# suite. Works from any directory; exits non-zero on the first failure.
#
#   1. scripts/install-deps.sh
#   2. scripts/check-format.sh
#   3. `ci` preset (RelWithDebInfo, -Werror): build, then every test (unit, golden, integration,
#      fault, e2e)
#   4. `dev` preset (ASan + UBSan): build, then the unit, golden and integration tests
#   5. `fuzz` preset (clang-14, libFuzzer), only when tests/fuzz/CMakeLists.txt exists: build the
#      *_fuzz targets and run each one for a bounded time
#
# The last line is the sum over the ctest runs, `N passed, N failed` (skipped tests count as
# passed, as ctest counts them; the line before says how many were skipped).
#
# Environment:
#   JETSTREAM_TEST_QUICK=1   stop after step 3 (skip the sanitizer and fuzz stages)
#   JETSTREAM_SHARED_DIR     where corpus/, interop/ and zstd/ are (default: ../shared)
#   JETSTREAM_FUZZ_RUNS      libFuzzer -runs per target (default 20000)
#   JETSTREAM_FUZZ_SECONDS   libFuzzer -max_total_time per target (default 60)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"

SHARED_DIR="${JETSTREAM_SHARED_DIR:-${ROOT}/../shared}"
QUICK="${JETSTREAM_TEST_QUICK:-0}"
FUZZ_RUNS="${JETSTREAM_FUZZ_RUNS:-20000}"
FUZZ_SECONDS="${JETSTREAM_FUZZ_SECONDS:-60}"
LOG_DIR="${ROOT}/build/test-logs"
JOBS=2

TOTAL_PASSED=0
TOTAL_FAILED=0
TOTAL_SKIPPED=0
CTEST_RUNS=0
CURRENT_STEP=""
STEP_START=${SECONDS}
IN_CTEST=0

print_summary() {
  echo "==> ctest runs: ${CTEST_RUNS}; skipped (counted as passed): ${TOTAL_SKIPPED}"
  echo "${TOTAL_PASSED} passed, ${TOTAL_FAILED} failed"
}

on_exit() {
  local rc=$?
  if [[ ${rc} -ne 0 ]]; then
    echo
    echo "==> FAILED in step '${CURRENT_STEP}' (exit ${rc}) after $((SECONDS - STEP_START))s;" \
      "total ${SECONDS}s"
    # The summary line only reports what ctest saw: a build or fuzz failure is not a test count.
    if [[ ${IN_CTEST} -eq 1 ]]; then
      print_summary
    fi
  fi
}
trap on_exit EXIT

finish_step() {
  if [[ -n "${CURRENT_STEP}" ]]; then
    echo "==> ${CURRENT_STEP}: ok ($((SECONDS - STEP_START))s)"
  fi
}

step() {
  finish_step
  CURRENT_STEP="$1"
  STEP_START=${SECONDS}
  echo
  echo "==> ${CURRENT_STEP}"
}

# run_ctest <name> <ctest args...>: runs ctest, adds its counts to the totals, fails fast.
run_ctest() {
  local name="$1"
  shift
  local log="${LOG_DIR}/ctest-${name}.log"
  local rc line total failed skipped
  mkdir -p "${LOG_DIR}"
  IN_CTEST=1
  set +e
  ctest "$@" 2>&1 | tee "${log}"
  rc=${PIPESTATUS[0]}
  set -e
  line="$(grep -E '[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "${log}" | tail -n 1 ||
    true)"
  if [[ -z "${line}" ]]; then
    echo "==> ctest (${name}) printed no result line (exit ${rc}); see ${log}"
    exit $((rc == 0 ? 1 : rc))
  fi
  failed="$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"${line}")"
  total="$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\2/' <<<"${line}")"
  skipped="$(grep -cE '\(Skipped\)[[:space:]]*$' "${log}" || true)"
  CTEST_RUNS=$((CTEST_RUNS + 1))
  TOTAL_PASSED=$((TOTAL_PASSED + total - failed))
  TOTAL_FAILED=$((TOTAL_FAILED + failed))
  TOTAL_SKIPPED=$((TOTAL_SKIPPED + skipped))
  echo "==> ctest (${name}): $((total - failed)) passed, ${failed} failed, ${skipped} skipped"
  if [[ ${rc} -ne 0 || ${failed} -ne 0 ]]; then
    exit $((rc == 0 ? 1 : rc))
  fi
  IN_CTEST=0
}

# configure_and_build <preset> [targets...]: configures, then builds the given targets (all if
# none). Ninja only rebuilds what changed, so re-running the script is cheap.
configure_and_build() {
  local preset="$1"
  shift
  step "configure (${preset} preset)"
  cmake --preset "${preset}"
  step "build (${preset} preset)"
  if [[ $# -gt 0 ]]; then
    cmake --build --preset "${preset}" -j"${JOBS}" --target "$@"
  else
    cmake --build --preset "${preset}" -j"${JOBS}"
  fi
}

echo "==> jetstream test suite in ${ROOT}"
echo "    shared inputs: ${SHARED_DIR}$([[ -d "${SHARED_DIR}" ]] || echo ' (absent: tests that need them skip)')"
export JETSTREAM_SHARED_DIR="${SHARED_DIR}"

step "install dependencies"
bash scripts/install-deps.sh

step "check formatting"
bash scripts/check-format.sh

configure_and_build ci
step "install e2e npm packages (tests/e2e/install.sh)"; bash tests/e2e/install.sh
step "test (ci preset: every label)"
run_ctest ci --preset ci -j"${JOBS}"

if [[ "${QUICK}" == "1" ]]; then
  step "dev and fuzz stages"
  echo "JETSTREAM_TEST_QUICK=1: skipping the sanitizer (dev) and fuzz stages"
else
  configure_and_build dev
  step "test (dev preset: ASan + UBSan, labels unit|golden|integration)"
  run_ctest dev --preset dev -j"${JOBS}"

  if [[ -f tests/fuzz/CMakeLists.txt ]]; then
    step "configure (fuzz preset)"
    cmake --preset fuzz
    # Only the fuzz targets: the rest of the tree is already built and tested above, and clang +
    # sanitizers would only double the build time. The seeds come from the ci build's tool.
    all_targets="$(ninja -C build/fuzz -t targets all)"
    mapfile -t fuzz_targets < <(sed -nE 's/^([A-Za-z0-9_.+-]+_fuzz): .*/\1/p' <<<"${all_targets}" |
      grep -v '^cmake_' | sort -u || true)
    if [[ ${#fuzz_targets[@]} -eq 0 ]]; then
      step "fuzz"
      echo "tests/fuzz defines no *_fuzz target yet: nothing to run"
    else
      step "build (fuzz preset: ${fuzz_targets[*]})"
      cmake --build --preset fuzz -j"${JOBS}" --target "${fuzz_targets[@]}"

      step "fuzz seeds"
      seeds="build/fuzz/seeds"
      rm -rf "${seeds}"
      mkdir -p "${seeds}"
      frames="build/ci/tools/frames/jetstream-frames"
      corpus="${SHARED_DIR}/corpus/dev.frames"
      usage=""
      if [[ -x "${frames}" ]]; then
        usage="$(timeout 10 "${frames}" --help 2>&1 </dev/null || true)"
        usage+="$(timeout 10 "${frames}" 2>&1 </dev/null || true)"
      fi
      if [[ -x "${frames}" && -f "${corpus}" ]] && grep -qw split <<<"${usage}"; then
        "${frames}" split "${corpus}" "${seeds}"
        echo "seeds: $(find "${seeds}" -type f | wc -l) file(s) from ${corpus}"
      else
        echo "seeds: none ('jetstream-frames split' or ${corpus} not available); empty corpus"
      fi

      export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
      export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
      mapfile -t fuzzers < <(find build/fuzz/tests/fuzz -type f -perm -u+x -name '*_fuzz' | sort)
      if [[ ${#fuzzers[@]} -eq 0 ]]; then
        echo "==> no *_fuzz executable under build/fuzz/tests/fuzz" >&2
        exit 1
      fi
      for fuzzer in "${fuzzers[@]}"; do
        name="$(basename "${fuzzer}")"
        step "fuzz ${name} (-runs=${FUZZ_RUNS} -max_total_time=${FUZZ_SECONDS})"
        work="build/fuzz/corpus/${name}"
        artifacts="build/fuzz/artifacts/${name}"
        log="${LOG_DIR}/fuzz-${name}.log"
        mkdir -p "${work}" "${artifacts}" "${LOG_DIR}"
        # New inputs go to the first (work) directory; seed directories are only read: the
        # frames of the corpus, and the target's own checked-in seeds when it has some.
        seed_dirs=("${seeds}")
        [[ -d "tests/fuzz/seeds/${name}" ]] && seed_dirs+=("tests/fuzz/seeds/${name}")
        if ! "${fuzzer}" -runs="${FUZZ_RUNS}" -max_total_time="${FUZZ_SECONDS}" \
          -print_final_stats=1 -artifact_prefix="${artifacts}/" "${work}" "${seed_dirs[@]}" \
          >"${log}" 2>&1
        then
          tail -n 80 "${log}"
          echo "==> ${name} failed: full log ${log}, reproducer in ${artifacts}/" >&2
          exit 1
        fi
        tail -n 12 "${log}"
      done
    fi
  else
    step "fuzz"
    echo "tests/fuzz/CMakeLists.txt does not exist yet: fuzz stage skipped"
  fi
fi

finish_step
CURRENT_STEP="summary"
echo
echo "==> all steps passed in ${SECONDS}s"
print_summary
