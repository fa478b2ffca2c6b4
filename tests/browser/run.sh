#!/usr/bin/env bash
# The playground in a real browser (tests/browser/playground.test.mjs): builds the debug binary,
# seeds the demo data into a throwaway server-owned PostgreSQL (DATABASE_URL unset, a temporary
# LOCAL_PG_DIR), starts `titanbay serve` on a free loopback port, runs the test in Debian's
# headless Chromium with no network beyond loopback, and stops the server.
#
#   tests/browser/run.sh                 the test
#   tests/browser/run.sh --screenshot    the same, and write the screenshot to docs/playground.png
#
# Needs /usr/bin/chromium (apt-get install -y chromium; or set CHROMIUM), Node 20+, and the
# PostgreSQL server binaries `cargo test` uses. The screenshot and the list of every request the
# browser made are left in tests/browser/artifacts/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"

screenshot=
case "${1:-}" in
  "") ;;
  --screenshot) screenshot="$root/docs/playground.png" ;;
  *) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac

fail() { echo "tests/browser/run.sh: $*" >&2; exit 1; }

chromium=${CHROMIUM:-/usr/bin/chromium}
[ -x "$chromium" ] || fail "no Chromium at $chromium: install it with 'apt-get install -y chromium' (Debian's package; Playwright's own browser downloads are not used) or set CHROMIUM"
version=$("$chromium" --version 2>/dev/null | grep -i chromium) || fail "$chromium does not run: $("$chromium" --version 2>&1 | tail -1)"
echo "== browser: $version"
command -v node >/dev/null || fail "node is not installed (Node 20 or newer)"

if [ ! -d "$here/node_modules/playwright-core" ]; then
  echo "== npm ci (tests/browser)"
  (cd "$here" && npm ci --no-audit --no-fund)
fi

echo "== cargo build (debug)"
cargo build --locked --bin titanbay
bin="${CARGO_TARGET_DIR:-$root/target}/debug/titanbay"
[ -x "$bin" ] || fail "no binary at $bin"

work=$(mktemp -d "${TMPDIR:-/tmp}/titanbay-browser.XXXXXX")
# Its own folder: the server hands it to the account PostgreSQL runs as (`postgres` under root).
pg_dir=$(mktemp -d "${TMPDIR:-/tmp}/titanbay-browser-pg.XXXXXX")
server_pid=
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work" "$pg_dir"
}
trap cleanup EXIT

# The server's own environment: its own PostgreSQL, no authentication, the playground on.
server_env=(
  env -u DATABASE_URL -u AUTH_HS256_SECRET -u AUTH_JWKS_FILE -u AUTH_JWKS_URL -u AUTH_ISSUER
  -u AUTH_AUDIENCE -u APP_ENV -u RUST_LOG
  LOCAL_PG_DIR="$pg_dir" HOST=127.0.0.1 PORT=0 GRAPHIQL=true GRAPHQL_INTROSPECTION=true
  LOG_LEVEL=info
)

echo "== titanbay seed"
"${server_env[@]}" "$bin" seed >"$work/seed.log" 2>&1 || { cat "$work/seed.log" >&2; fail "titanbay seed failed"; }
tail -1 "$work/seed.log"

echo "== titanbay serve"
"${server_env[@]}" "$bin" serve >"$work/serve.log" 2>&1 &
server_pid=$!
url=
for _ in $(seq 1 600); do
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/serve.log" >&2; fail "the server stopped before it served"; }
  url=$(grep -o 'serving GraphQL at http://127\.0\.0\.1:[0-9]*/graphql' "$work/serve.log" | head -1 | sed 's/^serving GraphQL at //') || true
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { cat "$work/serve.log" >&2; fail "the server did not start within 60 s"; }
echo "serving at $url"

echo "== playground test (Chromium, Playwright)"
status=0
(
  cd "$here"
  PLAYGROUND_URL="$url" CHROMIUM="$chromium" ARTIFACTS="$here/artifacts" SCREENSHOT="$screenshot" \
    node --test --test-reporter=spec playground.test.mjs
) || status=$?
if [ "$status" -ne 0 ]; then
  echo "-- server log (last 40 lines)" >&2
  tail -40 "$work/serve.log" >&2
  fail "the browser test failed"
fi
[ -z "$screenshot" ] || echo "screenshot written to ${screenshot#"$root"/}"
