#!/usr/bin/env bash
# The package as a user gets it today: packs this project, installs the
# tarball into an empty temporary project WITHOUT a lockfile (so the newest
# ws, @fastify/websocket, @types/ws and fastify our ranges allow resolve, not
# the versions package-lock.json pins), then
#   1. runs smoke.mjs: app.injectWS() against an app.ws route, then a real
#      listen and a ws client;
#   2. runs the "Testing your routes" example of README.md as written, with
#      `node --test`;
#   3. type-checks types-check.mts with strict settings and skipLibCheck: false,
#      with moduleResolution node16 and bundler, installing nothing but
#      TypeScript (the project's pinned version) by hand.
# Needs dist/ (`npm run build`) and the npm registry. FRESH_SMOKE_KEEP=1 keeps
# the temporary project.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

if [ ! -f "$root/dist/index.js" ]; then
  echo "fresh smoke: $root/dist is missing, run npm run build first" >&2
  exit 1
fi
typescript="$(node -p "require('$root/package.json').devDependencies.typescript")"

work="$(mktemp -d "${TMPDIR:-/tmp}/nexus-fresh-XXXXXX")"
if [ "${FRESH_SMOKE_KEEP:-}" = "1" ]; then
  echo "fresh smoke: keeping $work"
else
  trap 'rm -rf "$work"' EXIT
fi

# dist/ is already built: no prepare script on pack.
(cd "$root" && npm pack --ignore-scripts --silent --pack-destination "$work" >/dev/null)
tarball="$(cd "$work" && ls fastify-nexus-realtime-*.tgz)"

cd "$work"
printf '{ "name": "nexus-fresh-smoke", "private": true, "type": "module" }\n' > package.json
npm install --no-audit --no-fund --no-package-lock --loglevel=error \
  "./$tarball" fastify "typescript@$typescript"
npm ls --depth=1 fastify-nexus-realtime fastify ws @fastify/websocket @types/ws || true

echo "== 1. injectWS and a real client"
cp "$here/smoke.mjs" .
node smoke.mjs

echo "== 2. README.md \"Testing your routes\", as written"
mkdir -p test
awk '/^### Testing your routes/ { s = 1 } s && /^```js$/ { f = 1; next } f && /^```$/ { exit } f' \
  "$root/README.md" > test/chat.test.mjs
if [ ! -s test/chat.test.mjs ]; then
  echo 'fresh smoke: no ```js block under "### Testing your routes" in README.md' >&2
  exit 1
fi
node --test test/chat.test.mjs

echo "== 3. strict type-check, skipLibCheck: false"
cp "$here/types-check.mts" .
for resolution in node16 bundler; do
  if [ "$resolution" = node16 ]; then module=node16; else module=esnext; fi
  cat > "tsconfig.$resolution.json" <<JSON
{
  "compilerOptions": {
    "strict": true,
    "skipLibCheck": false,
    "noEmit": true,
    "target": "ES2022",
    "module": "$module",
    "moduleResolution": "$resolution"
  },
  "files": ["types-check.mts"]
}
JSON
  echo "-- moduleResolution $resolution"
  ./node_modules/.bin/tsc -p "tsconfig.$resolution.json"
done

echo "fresh smoke: ok"
