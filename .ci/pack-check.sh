#!/usr/bin/env bash
# npm run check:package (and CI): packs wsfacility, checks the tarball (install scripts, LICENSE,
# source maps, publint, attw --profile esm-only), installs it into fresh projects with only what a
# user would add, type-checks README-style code there with strict settings (strict,
# exactOptionalPropertyTypes, module nodenext, no skipLibCheck) under TypeScript 6 and 7, builds it
# and runs it; then the README's first app, taken from README.md, type-checked the same way and run
# from the tarball install in headless Chromium. Every check runs; the script exits 1 when any failed, naming them.
# KEEP=1 keeps the temporary directory (printed) for a look afterwards.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
fixtures="$repo/.ci/pack-check"
work="$(mktemp -d)"
if [ "${KEEP:-}" = 1 ]; then
  echo "pack-check: working in $work (kept)"
else
  trap 'rm -rf "$work"' EXIT
fi
export npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false

failed=()
# check NAME COMMAND...: runs a check, prints its output, remembers a failure and goes on.
check() {
  local name="$1"
  shift
  local start=$SECONDS
  echo "::: $name"
  if "$@"; then
    echo "ok: $name ($((SECONDS - start)) s)"
  else
    echo "FAILED: $name ($((SECONDS - start)) s)" >&2
    failed+=("$name")
  fi
}

# --- the tarball ------------------------------------------------------------------------------
cd "$repo"
echo "::: npm pack (prepack: a fresh build)"
tarball="$work/$(npm pack --silent --pack-destination "$work" | tail -n 1)"
mkdir "$work/unpacked"
tar -xzf "$tarball" -C "$work/unpacked"
pkg="$work/unpacked/package"

tarball_contents() {
  node --input-type=module - "$pkg" <<'EOF'
import { readFileSync, existsSync, readdirSync } from 'node:fs'
import path from 'node:path'
const dir = process.argv[2]
const problems = []
const manifest = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8'))
// Scripts npm runs on a user's install: a user never builds wsfacility.
for (const s of ['preinstall', 'install', 'postinstall', 'prepare']) {
  if (manifest.scripts?.[s] !== undefined) problems.push(`runs "${s}" on every install: ${manifest.scripts[s]}`)
}
if (manifest.type !== 'module') problems.push('"type" is not "module" (the package is ESM-only)')
if (!manifest.engines?.node) problems.push('no engines.node')
if (!existsSync(path.join(dir, 'LICENSE'))) problems.push('no LICENSE file')
else if (!readFileSync(path.join(dir, 'LICENSE'), 'utf8').includes('MIT License')) problems.push('LICENSE is not the MIT text')
// Every source a shipped source map names must be shipped too.
const walk = (d) => readdirSync(d, { withFileTypes: true }).flatMap((e) => e.isDirectory() ? walk(path.join(d, e.name)) : [path.join(d, e.name)])
const files = walk(dir)
// Only the build, the CLI launcher and the package's own texts: no tests, no stale or temporary
// build output (prepack builds dist/ afresh).
const shipped = /^(package\.json|README\.md|LICENSE|bin\/[^/]+\.js|dist\/(src|facilities)\/.+\.(js|d\.ts))$/
const stray = files.map((f) => path.relative(dir, f)).filter((f) => !shipped.test(f))
if (stray.length) problems.push(`unexpected files: ${stray.slice(0, 5).join(', ')}${stray.length > 5 ? ', …' : ''}`)
let missing = 0
for (const map of files.filter((f) => f.endsWith('.map'))) {
  const { sources = [], sourceRoot = '' } = JSON.parse(readFileSync(map, 'utf8'))
  for (const s of sources) {
    if (!existsSync(path.resolve(path.dirname(map), sourceRoot, s))) {
      if (missing++ < 3) problems.push(`${path.relative(dir, map)} points at ${s}, not in the tarball`)
    }
  }
}
if (missing > 3) problems.push(`… ${missing - 3} more source-map sources missing`)
console.log(`${files.length} files, ${files.filter((f) => f.endsWith('.map')).length} source maps`)
for (const p of problems) console.error(`  ${p}`)
process.exit(problems.length ? 1 : 0)
EOF
}
check 'tarball: only the build, no install scripts, ESM, engines, LICENSE, source maps resolve' \
  tarball_contents
check 'publint --strict' "$repo/node_modules/.bin/publint" run "$tarball" --strict
check 'attw --profile esm-only' "$repo/node_modules/.bin/attw" "$tarball" --profile esm-only \
  --format table-flipped --no-emoji

# --- fresh projects -----------------------------------------------------------------------------
echo "::: TypeScript 7 (one install, used on every project)"
npm install --silent --prefix "$work/ts7" typescript@7 >/dev/null
tsc7="$work/ts7/node_modules/.bin/tsc"
tsc6=node_modules/.bin/tsc # each project's own (run from the project's directory)
echo "TypeScript $("$tsc7" --version)"

# project NAME PACKAGE...: a fresh ESM project with the fixtures of NAME and these packages.
project() {
  local dir="$work/$1"
  shift
  mkdir -p "$dir"
  cp -R "$fixtures/$(basename "$dir")/." "$dir/"
  cp "$fixtures/tsconfig.base.json" "$dir/"
  printf '{ "name": "user-app", "private": true, "type": "module" }\n' >"$dir/package.json"
  local start=$SECONDS
  echo "::: $(basename "$dir"): npm install wsfacility (the tarball) $*"
  (cd "$dir" && npm install --silent "$tarball" "$@")
  echo "installed in $((SECONDS - start)) s; TypeScript $(cd "$dir" && "$tsc6" --version)"
}
typecheck() { # DIR TSC CONFIG
  (cd "$1" && "$2" -p "$3" --noEmit)
}
build() { # DIR CONFIG: emits with the project's own TypeScript 6 into DIR/build
  (cd "$1" && "$tsc6" -p "$2")
}
run() { # DIR SCRIPT [NODE FLAGS]
  local dir="$1" script="$2"
  shift 2
  (cd "$dir" && node "$@" "build/$script")
}

# A server user without ws, express or their @types: the declarations must need none of them.
project plain typescript@6 @types/node@20
check 'plain: tsc 6 (strict, exactOptionalPropertyTypes, no skipLibCheck)' \
  typecheck "$work/plain" "$tsc6" tsconfig.json
check 'plain: tsc 7' typecheck "$work/plain" "$tsc7" tsconfig.json
check 'plain: build and run' eval 'build "$work/plain" tsconfig.json && run "$work/plain" plain.js'

# An app using the README's snippets: ws in Node, Express with express-session, browser code.
project app typescript@6 @types/node@20 ws@8 @types/ws@8 express@5 @types/express@5 \
  express-session@1 @types/express-session@1
check 'app: tsc 6 (Node code)' typecheck "$work/app" "$tsc6" tsconfig.json
check 'app: tsc 7 (Node code)' typecheck "$work/app" "$tsc7" tsconfig.json
check 'app: tsc 6 (lib dom: wsfacility/client with globalThis.WebSocket)' \
  typecheck "$work/app" "$tsc6" tsconfig.dom.json
check 'app: tsc 7 (lib dom)' typecheck "$work/app" "$tsc7" tsconfig.dom.json
if build "$work/app" tsconfig.json && build "$work/app" tsconfig.dom.json; then
  # Node 20 has a global WebSocket behind a flag (21+: by default): then browser.ts runs too.
  ws_flag=()
  if ! node -e 'process.exit(typeof WebSocket === "function" ? 0 : 1)' &&
    node --experimental-websocket -e '' 2>/dev/null; then
    ws_flag=(--experimental-websocket)
  fi
  check 'app: run the quick start (ws client, then the global WebSocket)' \
    run "$work/app" quick-start.js "${ws_flag[@]}"
  check 'app: run the Express integration' run "$work/app" express.js
else
  echo "FAILED: app: build" >&2
  failed+=('app: build')
fi

# The README's first app, exactly as README.md has it (extracted from it, never copied): type-checked
# as TypeScript with the app project's strict settings under TypeScript 6 and 7, then run with node
# from the tarball install and used in headless Chromium (test/first-app.test.ts: the page,
# the button, the route's message in the page; in memory, then on Redis).
if (cd "$repo" && node_modules/.bin/tsx test/helpers/snippets.ts README.md first-app) \
  >"$work/app/app.mjs"; then
  cp "$work/app/app.mjs" "$work/app/first-app.ts"
  check "README app: tsc 6 (as app.ts)" typecheck "$work/app" "$tsc6" tsconfig.first-app.json
  check 'README app: tsc 7' typecheck "$work/app" "$tsc7" tsconfig.first-app.json
  check 'README app: node app.mjs from the tarball install, in headless Chromium' \
    env WSF_FIRST_APP_PROJECT="$work/app" node --import tsx --test --test-reporter=spec \
    "$repo/test/first-app.test.ts"
else
  echo "FAILED: README app: extract it from README.md" >&2
  failed+=('README app: extract')
fi

echo
if [ "${#failed[@]}" -gt 0 ]; then
  echo "pack-check: ${#failed[@]} check(s) failed ($SECONDS s):" >&2
  printf '  - %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "pack-check: every check passed ($SECONDS s)"
