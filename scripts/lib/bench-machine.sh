# Sourced by the benchmark scripts: what a figure was measured on, printed before it is measured,
# so a figure is never read without its build type, its cores and how busy the machine already was.

# Percentage of all cores busy (not idle or iowait) over the next $1 seconds, from /proc/stat.
machine_busy_percent() {
  local seconds="${1:-2}" a b
  a=$(awk '/^cpu /{ print $2+$3+$4+$7+$8+$9, $5+$6 }' /proc/stat)
  sleep "$seconds"
  b=$(awk '/^cpu /{ print $2+$3+$4+$7+$8+$9, $5+$6 }' /proc/stat)
  awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " ");
    busy = y[1] - x[1]; idle = y[2] - x[2]; printf "%.0f", (busy + idle > 0 ? 100 * busy / (busy + idle) : 0) }'
}

# CMAKE_BUILD_TYPE of a build directory (Release, Debug, RelWithDebInfo, ...).
build_type_of() {
  awk -F= '/^CMAKE_BUILD_TYPE:/{ print $2 }' "$1/CMakeCache.txt" 2>/dev/null || true
}

# Prints the machine line every benchmark starts with; warns when the build is not optimised or
# the machine was busy before the benchmark started (then the figures say little).
print_bench_machine() {
  local build_dir="$1" type busy model
  type=$(build_type_of "$build_dir")
  busy=$(machine_busy_percent 2)
  model=$(awk -F': ' '/^model name/{ print $2; exit }' /proc/cpuinfo)
  echo "==> machine: ${model:-unknown CPU}, $(nproc) cores; build ${build_dir} (${type:-unknown build type}); ${busy}% busy before the start"
  case "$type" in
    Release|RelWithDebInfo) ;;
    *) echo "  WARNING: ${type:-unknown} build: the figures are not those of a release build (use --build-dir build/release)" ;;
  esac
  if (( busy > 10 )); then
    echo "  WARNING: another load was running (${busy}% busy before the start): the figures understate this code"
  fi
}
