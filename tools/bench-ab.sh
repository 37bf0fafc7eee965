#!/usr/bin/env bash
# Before/after check of a change: the same wrk lines (TCP mode keep-alive and
# Connection: close, HTTP mode keep-alive) through an older lbproxy build,
# this build and HAProxy, interleaved over ROUNDS rounds; medians and every
# round go to measurements/before-after/<YYYY-MM-DD-HHMM>/. Single runs on this 2-core VM move
# by 10-20%, more than the differences looked for, hence the interleaving.
#   OLD_BIN=/path/to/old/lbproxy bash tools/bench-ab.sh
#   OLD_BIN=... ROUNDS=5 DURATION=10s bash tools/bench-ab.sh
set -euo pipefail
cd "$(dirname "$0")/.."
: "${OLD_BIN:?set OLD_BIN to the lbproxy build to compare with (e.g. a release build of an older commit)}"
DURATION=${DURATION:-8s}
ROUNDS=${ROUNDS:-3}
# A new dated folder per run (measurements/NAME/YYYY-MM-DD-HHMM/, `latest` points at
# the newest) unless OUT names one.
OUT=${OUT:-$(python3 tools/provenance.py --run-dir measurements/before-after)}
PROXY_CPU=${PROXY_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}
work=$(mktemp -d)
mkdir -p "$OUT"
# shellcheck source=tools/bench-lib.sh
source tools/bench-lib.sh
install_missing wrk haproxy python3
ulimit -n "$(ulimit -Hn)"
cargo build --release --quiet --bin lbproxy --examples
NEW_BIN=target/release/lbproxy
H1=$(free_port); H2=$(free_port)
start "$LOAD_CPU" target/release/examples/http_backend --port "$H1" --id 1
start "$LOAD_CPU" target/release/examples/http_backend --port "$H2" --id 2
wait_port "$H1"; wait_port "$H2"

# proxy NAME MODE: start it pinned; sets PORT and PROXY_PID
proxy() {
  local name=$1 mode=$2
  PORT=$(free_port)
  local port=$PORT
  case $name in
    old | new)
      local bin=$OLD_BIN
      [[ $name == new ]] && bin=$NEW_BIN
      taskset -c "$PROXY_CPU" "$bin" --mode "$mode" --bind 127.0.0.1 --port "$port" --stats-interval 0 \
        --backend "127.0.0.1:$H1" --backend "127.0.0.1:$H2" >"$work/$name.log" 2>&1 &
      ;;
    haproxy)
      local reuse=""
      [[ $mode == http ]] && reuse="  http-reuse always"
      cat >"$work/haproxy.cfg" <<CFG
global
  nbthread 1
  maxconn 9000
defaults
  mode $mode
  timeout connect 2s
  timeout client 120s
  timeout server 120s
$reuse
frontend fe
  bind 127.0.0.1:$port
  default_backend be
backend be
  balance roundrobin
  server s1 127.0.0.1:$H1
  server s2 127.0.0.1:$H2
CFG
      taskset -c "$PROXY_CPU" haproxy -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 &
      ;;
  esac
  PROXY_PID=$!
  pids+=("$PROXY_PID")
  wait_port "$port"
}

: >"$work/raw.csv"
for round in $(seq "$ROUNDS"); do
  echo "== round $round of $ROUNDS (wrk -t2 -c100 -d$DURATION)"
  for mode in tcp http; do
    for name in old new haproxy; do
      proxy "$name" "$mode"
      raw_add "${mode}_keepalive" "$name" "$(wrk_run "http://127.0.0.1:$PORT/")" req/s
      if [[ $mode == tcp ]]; then
        raw_add tcp_close "$name" "$(wrk_run "http://127.0.0.1:$PORT/" "Connection: close")" req/s
      fi
      kill "$PROXY_PID"; wait "$PROXY_PID" 2>/dev/null || true
    done
  done
done
echo "test,target,value,unit" >"$OUT/results.csv"
record_medians
{
  echo "# Before and after: an older build, this build and HAProxy in the same run"
  echo
  echo "Median of $ROUNDS interleaved rounds of \`wrk -t2 -c100 -d$DURATION\` against the example"
  echo "http_backend (two of them, round robin); proxies pinned to CPU $PROXY_CPU, load and backends to CPU $LOAD_CPU."
  echo "Older build: \`$OLD_BIN\` ($("$OLD_BIN" --version 2>/dev/null || echo unknown)); this build: $(git rev-parse --short HEAD)."
  echo "Command: \`OLD_BIN=$OLD_BIN ROUNDS=$ROUNDS DURATION=$DURATION bash tools/bench-ab.sh\`. All rounds: rounds.csv."
  echo
  python3 - "$OUT/results.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
by = {}
for r in rows:
    by.setdefault(r["test"], {})[r["target"]] = float(r["value"])
print("| line | older build | this build | HAProxy | this / older | this / HAProxy |")
print("|---|---|---|---|---|---|")
for test, v in by.items():
    old, new, ha = v.get("old", 0), v.get("new", 0), v.get("haproxy", 0)
    print(f"| {test} req/s | {old:.0f} | {new:.0f} | {ha:.0f} | {new / old:.2f} | {new / ha:.2f} |")
PY
  echo
  python3 tools/provenance.py --note "older build: $OLD_BIN"
} >"$OUT/report.md"
cat "$OUT/report.md"
python3 tools/provenance.py --publish "$OUT"
