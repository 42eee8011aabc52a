#!/usr/bin/env bash
# npm test: makes sure redis-server is there, builds, then runs every test file with node:test.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "redis-server not found: installing it with apt-get" >&2
    (apt-get install -y -qq redis-server >/dev/null 2>&1 ||
      (apt-get update -qq && apt-get install -y -qq redis-server >/dev/null)) ||
      { echo "could not install redis-server with apt-get; install it and run npm test again" >&2; exit 1; }
  else
    echo "npm test needs redis-server on PATH: install Redis (e.g. 'sudo apt-get install redis-server' or 'brew install redis') and run npm test again" >&2
    exit 1
  fi
fi

if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "chromium not found: installing it with apt-get (browser tests)" >&2
    (apt-get install -y -qq chromium >/dev/null 2>&1 ||
      (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)) ||
      { echo "could not install chromium with apt-get; install it and run npm test again" >&2; exit 1; }
  else
    echo "npm test needs Chromium at /usr/bin/chromium for its browser tests (e.g. 'sudo apt-get install chromium')" >&2
    exit 1
  fi
fi

npm run --silent build
# Each file gets its own process; files run one after the other so redis-servers and timings
# never compete for the 2 cores of small CI machines.
# Arguments are test files or folders (every *.test.ts under a folder); none means the whole tree.
if [ "$#" -eq 0 ]; then set -- test; fi
files=()
for arg in "$@"; do
  if [ -d "$arg" ]; then
    while IFS= read -r f; do files+=("$f"); done < <(find "$arg" -name '*.test.ts' -type f | sort)
  else
    files+=("$arg")
  fi
done
if [ "${#files[@]}" -eq 0 ]; then
  echo "no test files in: $*" >&2
  exit 1
fi
exec node --import tsx --test --test-concurrency=1 --test-reporter=spec "${files[@]}"
