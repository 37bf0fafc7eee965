#!/usr/bin/env bash
# The round trip with a database (issue 10): pgbench through TCP mode, the
# proxy pinned to its own core, next to a direct connection and HAProxy
# (mode tcp, nbthread 1) in the same run. A private PostgreSQL cluster in a
# temporary directory (run as the postgres user), scale 10.
# Writes measurements/pgbench/<YYYY-MM-DD-HHMM>/{report.md,results.csv,rounds.csv} (or OUT=DIR).
#   bash tools/bench-pgbench.sh              # 3 rounds of 10 s per test (about 3 minutes)
#   ROUNDS=1 SECONDS_EACH=3 bash tools/bench-pgbench.sh
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
SECONDS_EACH=${SECONDS_EACH:-10}
CLIENTS=${CLIENTS:-20}
OUT=${OUT:-$(python3 tools/provenance.py --run-dir measurements/pgbench)}
PROXY_CPU=${PROXY_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}

work=$(mktemp -d)
chmod 755 "$work"
mkdir -p "$OUT"
# shellcheck source=tools/bench-lib.sh
source tools/bench-lib.sh
command -v pgbench >/dev/null || install_missing postgresql postgresql-contrib
install_missing haproxy python3
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
cargo build --release --quiet --bin lbproxy
rel=target/release

# The cluster: trust on loopback (a benchmark, not a deployment).
P=$(free_port)
mkdir "$work/pg" && chown postgres "$work/pg"
runuser -u postgres -- "$pgbin/initdb" -D "$work/pg" -A trust -U postgres >/dev/null
start "$LOAD_CPU" runuser -u postgres -- "$pgbin/postgres" -D "$work/pg" -p "$P" -k "$work/pg" \
  -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off -c synchronous_commit=off
wait_port "$P"
trap 'runuser -u postgres -- "$pgbin/pg_ctl" -D "$work/pg" stop -m immediate >/dev/null 2>&1 || true; cleanup' EXIT
pgbench -h 127.0.0.1 -p "$P" -U postgres -i -s 10 -q postgres >/dev/null 2>&1

declare -A port
port[direct]=$P
lb() { # lb NAME ARGS...
  local name=$1; shift
  port[$name]=$(free_port)
  start "$PROXY_CPU" $rel/lbproxy --bind 127.0.0.1 --port "${port[$name]}" --stats-interval 0 --backend "127.0.0.1:$P" "$@"
}
lb lbproxy
port[haproxy]=$(free_port)
haproxy_conf "$work/haproxy.cfg" tcp 1 "${port[haproxy]}" "127.0.0.1:$P"
start "$PROXY_CPU" haproxy -f "$work/haproxy.cfg" -db
targets=(direct lbproxy haproxy)
for t in "${targets[@]}"; do wait_port "${port[$t]}"; done

# pgb PORT ARGS...: tps and average latency (ms) of one pgbench run.
pgb() {
  local p=$1; shift
  taskset -c "$LOAD_CPU" pgbench -h 127.0.0.1 -p "$p" -U postgres -c "$CLIENTS" -j 2 -T "$SECONDS_EACH" -n "$@" postgres \
    >"$work/pgb.out" 2>&1
  awk '/^tps = / {tps = $3} /^latency average = / {lat = $4} END {print tps, lat}' "$work/pgb.out"
}

init_results
for round in $(seq "$ROUNDS"); do
  echo "== round $round of $ROUNDS: pgbench -c $CLIENTS -j 2 -T $SECONDS_EACH (select-only, then TPC-B like)"
  for t in "${targets[@]}"; do
    read -r tps lat < <(pgb "${port[$t]}" -S)
    raw_add select_tps "$t" "$tps" tps
    raw_add select_latency "$t" "$lat" ms
    read -r tps lat < <(pgb "${port[$t]}")
    raw_add tpcb_tps "$t" "$tps" tps
    raw_add tpcb_latency "$t" "$lat" ms
  done
done
record_medians

cat >"$work/commands.md" <<MD
## Commands

- PostgreSQL $("$pgbin/postgres" --version | awk '{print $3}') in a temporary cluster (\`fsync=off\`, \`synchronous_commit=off\`), \`pgbench -i -s 10\`, on CPU $LOAD_CPU with pgbench.
- select: \`pgbench -c $CLIENTS -j 2 -T $SECONDS_EACH -n -S\` (one SELECT per transaction: a round trip each);
  tpcb: \`pgbench -c $CLIENTS -j 2 -T $SECONDS_EACH -n\` (the TPC-B like default).
- lbproxy: TCP mode (splice auto), HAProxy \`mode tcp\`, \`nbthread 1\`; each proxy alone on CPU $PROXY_CPU.
- $ROUNDS rounds, targets interleaved, medians (min-max).
MD
python3 tools/bench_report.py "$OUT/results.csv" "Round trip: pgbench through TCP mode (bash tools/bench-pgbench.sh)" \
  "$work/commands.md" lbproxy/haproxy lbproxy/direct >"$OUT/report.md"
echo "wrote $OUT/report.md"
python3 tools/provenance.py --publish "$OUT"
