#!/usr/bin/env bash
# Fails (exit 1) and names the offending files when any C++ source under common/ proto/ services/
# tools/ tests/ differs from what clang-format 14 would write with the repository's .clang-format.
# scripts/format.sh fixes them in place.
#
#   check-format.sh          check every file
#   check-format.sh --list   only print the files that would be checked (used by format.sh)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SOURCE_DIRS=(common proto services tools tests)

# Every *.cpp / *.hpp under SOURCE_DIRS, one per line: tracked files plus untracked ones that
# .gitignore does not exclude (outside a git checkout: every such file on disk).
list_cxx_files() {
  local dirs=() d
  for d in "${SOURCE_DIRS[@]}"; do
    if [[ -d "${d}" ]]; then dirs+=("${d}"); fi
  done
  if [[ ${#dirs[@]} -eq 0 ]]; then return 0; fi
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files --cached --others --exclude-standard -- "${dirs[@]}" |
      { grep -E '\.(cpp|hpp)$' || true; } | sort -u |
      while IFS= read -r f; do
        if [[ -f "${f}" ]]; then echo "${f}"; fi # skip tracked files deleted in the work tree
      done
  else
    find "${dirs[@]}" -type f \( -name '*.cpp' -o -name '*.hpp' \) | sort
  fi
}

if [[ "${1:-}" == "--list" ]]; then
  list_cxx_files
  exit 0
fi

clang_format=""
for candidate in clang-format-14 clang-format; do
  if command -v "${candidate}" >/dev/null 2>&1; then
    clang_format="${candidate}"
    break
  fi
done
if [[ -z "${clang_format}" ]]; then
  echo "check-format: clang-format not found; run scripts/install-deps.sh" >&2
  exit 1
fi

mapfile -t files < <(list_cxx_files)
if [[ ${#files[@]} -eq 0 ]]; then
  echo "check-format: no C++ files to check"
  exit 0
fi

bad=()
for f in "${files[@]}"; do
  if ! "${clang_format}" --style=file --dry-run -Werror "${f}" >/dev/null 2>&1; then
    bad+=("${f}")
  fi
done

if [[ ${#bad[@]} -gt 0 ]]; then
  echo "check-format: ${#bad[@]} of ${#files[@]} file(s) are not clang-formatted:"
  printf '  %s\n' "${bad[@]}"
  echo "check-format: run 'bash scripts/format.sh' to fix them"
  exit 1
fi
echo "check-format: ${#files[@]} file(s) OK (${clang_format})"
