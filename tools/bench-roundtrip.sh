#!/usr/bin/env bash
# The round trip (issue 10): redis-benchmark SET/GET through TCP mode, the
# proxy pinned to its own core, next to a direct connection and HAProxy
# (mode tcp, nbthread 1) in the same run; with the proxy's CPU use, so a
# proxy that is slower per round trip while idle shows as such.
# Writes measurements/roundtrip/<YYYY-MM-DD-HHMM>/{report.md,results.csv,rounds.csv} (or OUT=DIR).
#   bash tools/bench-roundtrip.sh            # 5 rounds of 200,000 requests per test (about 3 minutes)
#   ROUNDS=1 REQUESTS=50000 bash tools/bench-roundtrip.sh
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5}
REQUESTS=${REQUESTS:-200000}
CLIENTS=${CLIENTS:-50}
OUT=${OUT:-$(python3 tools/provenance.py --run-dir measurements/roundtrip)}
PROXY_CPU=${PROXY_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}

work=$(mktemp -d)
mkdir -p "$OUT"
# shellcheck source=tools/bench-lib.sh
source tools/bench-lib.sh
command -v redis-benchmark >/dev/null || install_missing redis-server
install_missing haproxy python3
cargo build --release --quiet --bin lbproxy
rel=target/release

R=$(free_port)
start "$LOAD_CPU" redis-server --port "$R" --save "" --appendonly no
wait_port "$R"

declare -A port pid
lb() { # lb NAME ARGS...
  local name=$1; shift
  port[$name]=$(free_port)
  start "$PROXY_CPU" $rel/lbproxy --bind 127.0.0.1 --port "${port[$name]}" --stats-interval 0 --backend "127.0.0.1:$R" "$@"
  pid[$name]=$LAST_PID
}
lb lbproxy
lb lbproxy_buffered --splice off
port[haproxy]=$(free_port)
haproxy_conf "$work/haproxy.cfg" tcp 1 "${port[haproxy]}" "127.0.0.1:$R"
start "$PROXY_CPU" haproxy -f "$work/haproxy.cfg" -db
pid[haproxy]=$LAST_PID
port[direct]=$R
pid[direct]=""
targets=(direct lbproxy lbproxy_buffered haproxy)
for t in "${targets[@]}"; do wait_port "${port[$t]}"; done

cpu_s() { if [[ -n $1 ]]; then awk -v t="$(getconf CLK_TCK)" '{print ($14 + $15) / t}' "/proc/$1/stat"; else echo 0; fi; }

init_results
for round in $(seq "$ROUNDS"); do
  echo "== round $round of $ROUNDS: redis-benchmark -c $CLIENTS -n $REQUESTS -t set,get"
  for t in "${targets[@]}"; do
    before=$(cpu_s "${pid[$t]}")
    t0=$(date +%s.%N)
    taskset -c "$LOAD_CPU" redis-benchmark -p "${port[$t]}" -c "$CLIENTS" -n "$REQUESTS" -t set,get --csv >"$work/rb.csv"
    t1=$(date +%s.%N)
    after=$(cpu_s "${pid[$t]}")
    for op in SET GET; do
      rps=$(awk -F'"' -v op="$op" '$2 == op {print $4}' "$work/rb.csv")
      p50=$(awk -F'"' -v op="$op" '$2 == op {print $10}' "$work/rb.csv")
      p99=$(awk -F'"' -v op="$op" '$2 == op {print $14}' "$work/rb.csv")
      raw_add "${op,,}_rps" "$t" "$rps" req/s
      raw_add "${op,,}_p50" "$t" "$p50" ms
      raw_add "${op,,}_p99" "$t" "$p99" ms
    done
    if [[ -n ${pid[$t]} ]]; then
      raw_add proxy_cpu "$t" "$(python3 -c "print(round(100 * ($after - $before) / ($t1 - $t0), 1))")" "% of its core"
    fi
  done
done
record_medians

cat >"$work/commands.md" <<MD
## Commands

- \`redis-benchmark -p PORT -c $CLIENTS -n $REQUESTS -t set,get --csv\` on CPU $LOAD_CPU with \`redis-server\` (no persistence);
  each proxy alone on CPU $PROXY_CPU. $ROUNDS rounds, targets interleaved, medians (min-max).
- lbproxy: TCP mode, \`--splice auto\` (the default) and \`--splice off\` (buffered); HAProxy: \`mode tcp\`, \`nbthread 1\`.
- proxy_cpu: the proxy's user + system time over the wall time of the whole SET + GET run (/proc/PID/stat).
MD
python3 tools/bench_report.py "$OUT/results.csv" "Round trip: redis-benchmark through TCP mode (bash tools/bench-roundtrip.sh)" \
  "$work/commands.md" lbproxy/haproxy lbproxy_buffered/haproxy lbproxy/direct >"$OUT/report.md"
echo "wrote $OUT/report.md"
python3 tools/provenance.py --publish "$OUT"
