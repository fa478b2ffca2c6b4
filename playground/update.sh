#!/usr/bin/env bash
# The playground's static files (playground/dist/), rebuilt from the npm registry.
#
#   playground/update.sh                 install exactly what package-lock.json pins (npm ci),
#                                        bundle into dist/ (with MANIFEST.json, the licences and
#                                        the server's file list, dist/assets.rs)
#   playground/update.sh --latest        first move every dependency to its newest release of the
#                                        same major version (exact versions in package.json and
#                                        the lock), then the same
#   playground/update.sh PKG@VERSION...  first pin these packages (e.g. graphiql@6.0.0 for a new
#                                        major), then the same
#   playground/update.sh --check         rebuild from the lock into a temporary folder and compare
#                                        with the committed dist/; exits 1 on any difference (works
#                                        offline once npm's cache holds the locked packages)
#
# Then `cargo test --test playground` checks that the server serves exactly these files.
set -euo pipefail
cd "$(dirname "$0")"

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; }
npm_flags=(--no-audit --no-fund)
mode=build
pins=()
case "${1:-}" in
  "") ;;
  --check) mode=check ;;
  --latest) mode=latest ;;
  -h | --help) usage; exit 0 ;;
  -*) usage >&2; exit 2 ;;
  *) mode=pin; pins=("$@") ;;
esac

command -v node >/dev/null || { echo "update.sh: node is not installed (Node 20 or newer is needed)" >&2; exit 1; }
command -v npm >/dev/null || { echo "update.sh: npm is not installed" >&2; exit 1; }

if [ "$mode" = latest ]; then
  # pkg@^MAJOR (or ^0.MINOR below 1.0): the newest release that keeps the API; new majors are
  # taken by naming them (update.sh graphiql@6.0.0).
  read -r -a deps <<<"$(node -p "const p = require('./package.json'); Object.entries(p.dependencies).map(([n, v]) => n + '@^' + (v.startsWith('0.') ? v.split('.').slice(0, 2).join('.') : v.split('.')[0])).join(' ')")"
  read -r -a dev <<<"$(node -p "const p = require('./package.json'); Object.entries(p.devDependencies).map(([n, v]) => n + '@^' + (v.startsWith('0.') ? v.split('.').slice(0, 2).join('.') : v.split('.')[0])).join(' ')")"
  npm install "${npm_flags[@]}" --save-exact "${deps[@]}"
  npm install "${npm_flags[@]}" --save-exact --save-dev "${dev[@]}"
elif [ "$mode" = pin ]; then
  for pin in "${pins[@]}"; do
    name=${pin%@*}
    if node -e "process.exit(require('./package.json').devDependencies?.[process.argv[1]] ? 0 : 1)" "$name"; then
      npm install "${npm_flags[@]}" --save-exact --save-dev "$pin"
    else
      npm install "${npm_flags[@]}" --save-exact "$pin"
    fi
  done
fi

if [ "$mode" = check ]; then
  npm ci "${npm_flags[@]}" --prefer-offline
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
  node build.mjs "$out/dist"
  if diff -r dist "$out/dist" >"$out/diff.txt"; then
    echo "playground/dist matches a rebuild from package-lock.json"
  else
    echo "playground/dist differs from a rebuild from package-lock.json; run playground/update.sh and commit dist/:" >&2
    head -40 "$out/diff.txt" | cut -c1-200 >&2
    exit 1
  fi
else
  npm ci "${npm_flags[@]}"
  node build.mjs dist
  echo "next: cargo test --test playground, then commit playground/package.json, package-lock.json and dist/"
fi
