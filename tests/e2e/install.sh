#!/usr/bin/env bash
# Installs the e2e suite's npm packages into tests/e2e/node_modules with `npm ci`: exactly the
# versions of package-lock.json, from the npm registry only (the lockfile records no download
# addresses; npm looks each name@version up in the configured registry and checks its integrity
# hash), reusing npm's cache when it has them (--prefer-offline). It does nothing when
# node_modules was installed from the same lockfile with the same Node version. Works from any
# directory. Without node/npm it says so and exits 0: the e2e tests then skip with that reason.
#
# better-sqlite3 (a dependency of @atproto/pds) is compiled from source (about a minute on 2
# cores): node-gyp needs Node's headers, taken from /usr/include/node (Debian/NodeSource nodejs
# package) through npm_config_nodedir, so nothing is downloaded from outside the registry.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "${HERE}"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "install-e2e: node/npm not found: the e2e tests will skip (install Node.js 20 with npm)" >&2
  exit 0
fi

STAMP="node_modules/.jetstream-e2e-install"
want="$(sha256sum package-lock.json | cut -d' ' -f1) node $(node --version)"
if [[ -f "${STAMP}" && "$(cat "${STAMP}")" == "${want}" && -d node_modules/@atproto/pds ]]; then
  echo "install-e2e: node_modules up to date (package-lock.json unchanged, node $(node --version))"
  exit 0
fi

if [[ -z "${npm_config_nodedir:-}" && -f /usr/include/node/node.h ]]; then
  export npm_config_nodedir=/usr
fi

echo "install-e2e: npm ci in ${HERE} (node $(node --version), npm $(npm --version))"
start=${SECONDS}
npm ci --prefer-offline --no-audit --no-fund --loglevel=error
echo "${want}" >"${STAMP}"
echo "install-e2e: done in $((SECONDS - start))s"
