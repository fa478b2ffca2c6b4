#!/usr/bin/env bash
# Two titanbay builds or configurations side by side, interleaved, on the benchmark's data:
#
#   bench/compare.sh --a "fast=target/release/titanbay" \
#                    --b "no-fast=target/release/titanbay GRAPHQL_FAST_PATH=false" \
#                    [--only "W2 W3 W2r W4r"] [--rounds 3] [--concurrency 32] [--duration 5]
#                    [--a-driver "--idempotency-keys"] [--b-driver "..."]
#
# Each side is `label=binary [NAME=value ...]`: the binary and the environment it serves with
# (on top of the benchmark's: authentication on, the benchmark database). Both servers stay up;
# for every round and workload A and B are measured one right after the other (B first in even
# rounds), so the machine's drift over minutes falls on both alike. Prints one Markdown table:
# every round's req/s and p99 for each side, and the median ratio B / A.
#
# Needs a first `bench/run.sh` (the database, the request bodies and the id lists in
# bench/out/) and the release load driver (BENCH_DRIVER, default target/release/bench-driver).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD OUT=$PWD/bench/out

A="" B="" A_DRIVER="" B_DRIVER="" ONLY="W1 W2 W3 W4 W5 W1r W2r W4r" ROUNDS=3 CONC=32 DURATION=5 WARMUP=2
while [ $# -gt 0 ]; do
  case "$1" in
    --a) A=$2; shift 2 ;;
    --b) B=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --concurrency) CONC=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --a-driver) A_DRIVER=$2; shift 2 ;;
    --b-driver) B_DRIVER=$2; shift 2 ;;
    *) sed -n '2,15p' "$0" >&2; exit 2 ;;
  esac
done
[ -n "$A" ] && [ -n "$B" ] || { sed -n '2,15p' "$0" >&2; exit 2; }
[ -s "$OUT/open_funds.txt" ] && [ -d "$OUT/bodies" ] || { echo "run bench/run.sh once first" >&2; exit 1; }
DRIVER=${BENCH_DRIVER:-$ROOT/target/release/bench-driver}
log() { printf '== %s\n' "$*" >&2; }

label() { echo "${1%%=*}"; }
bin_of() { local rest=${1#*=}; echo "${rest%% *}"; }
env_of() { local rest=${1#*=}; [[ "$rest" == *" "* ]] && echo "${rest#* }" || true; }

if [ "$(id -u)" = 0 ]; then PG_DIR=${BENCH_PG_DIR:-/var/lib/titanbay/bench}; else PG_DIR=${BENCH_PG_DIR:-$OUT/pg}; fi
FIRST_BIN=$(bin_of "$A")
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

log "starting PostgreSQL in $PG_DIR"
: > "$OUT/compare-pg.url"
LOCAL_PG_DIR=$PG_DIR "$FIRST_BIN" postgres > "$OUT/compare-pg.url" 2> "$OUT/compare-pg.log" &
PIDS+=($!)
for _ in $(seq 1 300); do [ -s "$OUT/compare-pg.url" ] && break; sleep 0.1; done
SOCK=$(head -1 "$OUT/compare-pg.url" | sed -e 's/.*host=//')
DB_URL="postgres://postgres@localhost:5432/bench_default?host=$SOCK"
psql -X -q -h "$SOCK" -U postgres -d bench_default \
  -c "DELETE FROM investments WHERE amount_usd = 1000.00 AND investment_date = DATE '2024-06-01'"

# Rows deleted outside the API: the kept totals are rewritten (by a build that keeps them).
for bin in "$(bin_of "$A")" "$(bin_of "$B")"; do
  if "$bin" --help | grep -q check-totals; then
    DATABASE_URL=$DB_URL LOG_LEVEL=error "$bin" check-totals --repair > /dev/null
    break
  fi
done

export AUTH_HS256_SECRET=bench-only-secret-0123456789abcdef-0123 AUTH_ISSUER=titanbay-bench AUTH_AUDIENCE=titanbay
TOKEN=$("$FIRST_BIN" token --subject bench --ttl 86400)

start() { # side port -> pid
  local side=$1 port=$2 bin env
  bin=$(bin_of "$side"); env=$(env_of "$side")
  # shellcheck disable=SC2086
  env DATABASE_URL="$DB_URL" PORT="$port" $env "$bin" serve > "$OUT/compare-$(label "$side").log" 2>&1 &
  echo $!
}
A_PORT=18010 B_PORT=18011
A_PID=$(start "$A" $A_PORT); PIDS+=("$A_PID")
B_PID=$(start "$B" $B_PORT); PIDS+=("$B_PID")
for port in $A_PORT $B_PORT; do
  until curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null; do sleep 0.05; done
done
log "A: $A (pid $A_PID); B: $B (pid $B_PID)"

RESULTS=$OUT/compare.jsonl
: > "$RESULTS"
measure() { # side-label port pid workload round
  local wl; wl=$(echo "$4" | tr 'W' 'w')
  local json extra
  if [ "$1" = A ]; then extra=$A_DRIVER; else extra=$B_DRIVER; fi
  # shellcheck disable=SC2086
  json=$("$DRIVER" --url "http://127.0.0.1:$2/graphql" --body "$OUT/bodies/titanbay-$wl.json" \
    --funds "$OUT/open_funds.txt" --investors "$OUT/investors.txt" --concurrency "$CONC" \
    --warmup "$WARMUP" --duration "$DURATION" --pid "$3" --token "$TOKEN" $extra)
  python3 -c 'import json,sys; r=json.loads(sys.argv[1]); r.update(side=sys.argv[2], workload=sys.argv[3], round=int(sys.argv[4])); print(json.dumps(r))' \
    "$json" "$1" "$4" "$5" >> "$RESULTS"
  log "$1 $4 round $5: $json"
}
for round in $(seq 1 "$ROUNDS"); do
  for w in $ONLY; do
    if [ $((round % 2)) = 1 ]; then
      measure A $A_PORT "$A_PID" "$w" "$round"; measure B $B_PORT "$B_PID" "$w" "$round"
    else
      measure B $B_PORT "$B_PID" "$w" "$round"; measure A $A_PORT "$A_PID" "$w" "$round"
    fi
  done
done

python3 - "$RESULTS" "$(label "$A")" "$(label "$B")" "$CONC" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
a, b, conc = sys.argv[2], sys.argv[3], sys.argv[4]
def rps(r): return r.get("rps") or r.get("requests_per_sec") or r.get("throughput")
def p99(r): return r.get("p99_ms")
print(f"| workload ({conc} clients) | {a} req/s / p99 ms, per round | {b} req/s / p99 ms, per round | {b} / {a} req/s (median) | errors |")
print("|---|---|---|---|---|")
for w in dict.fromkeys(r["workload"] for r in rows):
    sa = [r for r in rows if r["workload"] == w and r["side"] == "A"]
    sb = [r for r in rows if r["workload"] == w and r["side"] == "B"]
    fmt = lambda s: ", ".join(f"{rps(r):,.0f} / {p99(r):.2f}" for r in s)
    ratios = [rps(y) / rps(x) for x, y in zip(sa, sb) if rps(x)]
    errors = sum(r.get("errors", 0) for r in sa + sb)
    print(f"| {w} | {fmt(sa)} | {fmt(sb)} | {statistics.median(ratios):.2f} | {errors} |")
EOF
