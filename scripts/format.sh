#!/usr/bin/env bash
# Rewrites in place every C++ source that scripts/check-format.sh checks, with clang-format 14
# and the repository's .clang-format.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

clang_format=""
for candidate in clang-format-14 clang-format; do
  if command -v "${candidate}" >/dev/null 2>&1; then
    clang_format="${candidate}"
    break
  fi
done
if [[ -z "${clang_format}" ]]; then
  echo "format: clang-format not found; run scripts/install-deps.sh" >&2
  exit 1
fi

mapfile -t files < <(bash scripts/check-format.sh --list)
if [[ ${#files[@]} -eq 0 ]]; then
  echo "format: no C++ files"
  exit 0
fi
"${clang_format}" --style=file -i "${files[@]}"
echo "format: formatted ${#files[@]} file(s) with ${clang_format}"
