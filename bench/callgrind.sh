#!/usr/bin/env bash
# Instructions per request, for comparing builds without this machine's noise:
#
#   bench/callgrind.sh [--binary PATH] [--duration S] W2 [W3 ...]
#
# Runs the release server under valgrind's callgrind against the benchmark database (run
# bench/run.sh once first: it creates the data, the request bodies and the ids in bench/out),
# drives it with 4 clients for a warm-up and then for --duration seconds (default 8) with
# instrumentation on, and prints the server's user-space instructions per request. The profile
# stays in bench/out/callgrind.<workload>.* for `callgrind_annotate --inclusive=yes`.
# Wall-clock figures under valgrind mean nothing; the instruction counts repeat within a few per
# cent (run the same --duration for both builds).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=$ROOT/bench/out
BIN=$ROOT/target/release/titanbay DURATION=8 WORKLOADS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) BIN=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    W[1-5]) WORKLOADS+=("$1"); shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ ${#WORKLOADS[@]} -gt 0 ] || WORKLOADS=(W1 W2 W3 W4 W5)
command -v valgrind > /dev/null || { echo "valgrind is not installed" >&2; exit 1; }
[ -s "$OUT/open_funds.txt" ] || { echo "run bench/run.sh once first (bench/out is empty)" >&2; exit 1; }
if [ "$(id -u)" = 0 ]; then PG_DIR=${BENCH_PG_DIR:-/var/lib/titanbay/bench}; else PG_DIR=${BENCH_PG_DIR:-$OUT/pg}; fi
PORT=18050
DRIVER=$ROOT/target/release/bench-driver
export AUTH_HS256_SECRET=bench-only-secret-0123456789abcdef-0123 AUTH_ISSUER=titanbay-bench AUTH_AUDIENCE=titanbay

PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill -INT "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
if [ ! -S "$PG_DIR/sock/.s.PGSQL.5432" ]; then
  LOCAL_PG_DIR=$PG_DIR "$BIN" postgres > "$OUT/callgrind-pg.url" 2> "$OUT/callgrind-pg.log" &
  PIDS+=($!)
  for _ in $(seq 1 300); do [ -s "$OUT/callgrind-pg.url" ] && break; sleep 0.1; done
fi
TOKEN=$("$BIN" token --subject bench --ttl 86400)

for w in "${WORKLOADS[@]}"; do
  wl=$(echo "$w" | tr 'W' 'w')
  rm -f "$OUT/callgrind.$wl".*
  DATABASE_URL="postgres://postgres@localhost:5432/bench_default?host=$PG_DIR/sock" PORT=$PORT \
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT/callgrind.$wl.%p" \
    "$BIN" serve > "$OUT/callgrind-serve.log" 2>&1 &
  VP=$!
  until curl -fsS -o /dev/null "http://127.0.0.1:$PORT/readyz" 2>/dev/null; do sleep 0.2; done
  drive() {
    "$DRIVER" --url "http://127.0.0.1:$PORT/graphql" --body "$OUT/bodies/titanbay-$wl.json" \
      --funds "$OUT/open_funds.txt" --investors "$OUT/investors.txt" --concurrency 4 \
      --warmup 1 --duration "$1" --pid "$VP" --token "$TOKEN"
  }
  drive 3 > /dev/null
  callgrind_control -i on "$VP" > /dev/null 2>&1
  requests=$(drive "$DURATION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"])')
  callgrind_control -i off "$VP" > /dev/null 2>&1
  callgrind_control -d "$VP" > /dev/null 2>&1
  kill -INT "$VP"; wait "$VP" 2>/dev/null || true
  total=0
  for f in "$OUT/callgrind.$wl".*; do
    n=$(callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/ && !seen {gsub(",", "", $1); print $1; seen = 1}')
    case "$n" in ''|*[!0-9]*) continue ;; esac   # "." when a part recorded nothing
    if [ "$n" -gt "$total" ]; then total=$n; fi
  done
  echo "$w: $requests requests, $((total / requests)) instructions per request"
done
