#!/usr/bin/env bash
# The open-loop tail (issue 10): a fixed 2000 requests/s with oha's latency
# correction (no coordinated omission), keep-alive clients, through lbproxy
# (HTTP and TCP mode), HAProxy (http and tcp) and nginx, next to a direct
# connection, in the same run; proxies pinned to their own core. A second
# lbproxy HTTP target writes its access log, whose per-request spans say
# where the slowest requests spent their time (wait, backend, delivery).
# Writes measurements/openloop/<YYYY-MM-DD-HHMM>/{report.md,results.csv,rounds.csv} (or OUT=DIR).
#   bash tools/bench-openloop.sh             # 3 rounds of 20 s per target (about 5 minutes)
#   ROUNDS=1 DURATION=5s bash tools/bench-openloop.sh
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-20s}
RATE=${RATE:-2000}
CONNS=${CONNS:-50}
OUT=${OUT:-$(python3 tools/provenance.py --run-dir measurements/openloop)}
PROXY_CPU=${PROXY_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}

work=$(mktemp -d)
mkdir -p "$OUT"
# shellcheck source=tools/bench-lib.sh
source tools/bench-lib.sh
install_missing haproxy nginx python3
command -v oha >/dev/null || cargo install oha --locked
cargo build --release --quiet --bin lbproxy --example http_backend
rel=target/release

H1=$(free_port); H2=$(free_port)
start "$LOAD_CPU" $rel/examples/http_backend --port "$H1" --id 1
start "$LOAD_CPU" $rel/examples/http_backend --port "$H2" --id 2
wait_port "$H1"; wait_port "$H2"

declare -A port
lb() { # lb NAME ARGS...
  local name=$1; shift
  port[$name]=$(free_port)
  start "$PROXY_CPU" $rel/lbproxy --bind 127.0.0.1 --port "${port[$name]}" --stats-interval 0 \
    --backend "127.0.0.1:$H1" --backend "127.0.0.1:$H2" "$@"
}
lb lbproxy_http --mode http
lb lbproxy_http_log --mode http --access-log "$work/access.csv"
LOG_PID=$LAST_PID
lb lbproxy_tcp
for mode in http tcp; do
  port[haproxy_$mode]=$(free_port)
  haproxy_conf "$work/haproxy-$mode.cfg" "$mode" 1 "${port[haproxy_$mode]}" "127.0.0.1:$H1" "127.0.0.1:$H2"
  start "$PROXY_CPU" haproxy -f "$work/haproxy-$mode.cfg" -db
done
port[nginx]=$(free_port)
nginx_keepalive_conf "$work/nginx" 1 "${port[nginx]}" "127.0.0.1:$H1" "127.0.0.1:$H2"
start "$PROXY_CPU" nginx -c "$work/nginx/nginx.conf" -g 'daemon off;'
port[direct]=$H1
targets=(direct lbproxy_http lbproxy_http_log haproxy_http nginx lbproxy_tcp haproxy_tcp)
for t in "${targets[@]}"; do wait_port "${port[$t]}"; done

# CPU time the hypervisor gave to others while we waited (the tail follows it).
steal_ticks() { awk '/^cpu /{print $9}' /proc/stat; }

init_results
for round in $(seq "$ROUNDS"); do
  echo "== round $round of $ROUNDS: oha -q $RATE -c $CONNS -z $DURATION --latency-correction"
  for t in "${targets[@]}"; do
    from=$(date +%s.%N)
    steal_before=$(steal_ticks)
    taskset -c "$LOAD_CPU" oha -q "$RATE" -c "$CONNS" -z "$DURATION" --latency-correction --no-tui \
      --output-format json "http://127.0.0.1:${port[$t]}/" >"$work/oha.json"
    read -r p50 p99 p999 rps ok < <(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
p = d["latencyPercentiles"]
print(p["p50"] * 1e3, p["p99"] * 1e3, p["p99.9"] * 1e3, d["summary"]["requestsPerSec"], d["summary"]["successRate"])' "$work/oha.json")
    raw_add latency_p50 "$t" "$p50" ms
    raw_add latency_p99 "$t" "$p99" ms
    raw_add latency_p99.9 "$t" "$p999" ms
    raw_add achieved_rps "$t" "$rps" req/s
    raw_add success_rate "$t" "$ok" share
    raw_add vm_steal "$t" "$(($(steal_ticks) - steal_before))" "ticks during the run"
    [[ $t == lbproxy_http_log ]] && echo "$round $from $(date +%s.%N)" >>"$work/windows"
  done
done
# The access log is written whole at exit.
kill "$LOG_PID"; wait "$LOG_PID" 2>/dev/null || true
python3 - "$work/access.csv" "$work/windows" >>"$work/raw.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
for line in open(sys.argv[2]):
    _, start, end = line.split()
    start, end = float(start), float(end)
    run = [r for r in rows if r["total_us"] and start <= float(r["timestamp"]) <= end]
    spans = sorted(((int(r["total_us"]), int(r["wait_us"]), int(r["latency_us"]), int(r["deliver_us"])) for r in run))
    n = len(spans)
    pct = lambda q: spans[min(n - 1, int(q * n))][0] / 1e3
    t = "lbproxy_http_log"
    print(f"proxy_total_p50,{t},{pct(0.50)},ms")
    print(f"proxy_total_p99,{t},{pct(0.99)},ms")
    print(f"proxy_total_p99.9,{t},{pct(0.999)},ms")
    # The slowest 0.1% by the proxy's own clock: where their time went.
    tail = spans[int(0.999 * n):]
    whole = sum(s[0] for s in tail) or 1
    for k, name in ((1, "wait"), (2, "backend"), (3, "deliver")):
        print(f"tail_share_{name},{t},{sum(s[k] for s in tail) / whole},share of total_us")
PY
record_medians

cat >"$work/commands.md" <<MD
## Commands

- \`oha -q $RATE -c $CONNS -z $DURATION --latency-correction --output-format json http://127.0.0.1:PORT/\` on CPU $LOAD_CPU
  with two examples/http_backend origins; each proxy alone on CPU $PROXY_CPU. Keep-alive clients.
- lbproxy: \`--mode http\` (pooled backend connections) and TCP mode; HAProxy \`mode http\` (\`http-reuse always\`)
  and \`mode tcp\`, \`nbthread 1\`; nginx \`worker_processes 1\`, upstream \`keepalive 64\`.
- Latency is corrected for coordinated omission: a request is timed from when it was due, not when it was sent.
- lbproxy_http_log: the same as lbproxy_http with \`--access-log\` (CSV). Its rows proxy_total_p*
  are the proxy's own clock per request (total_us: request head read to the last response byte
  written, by the reactor's per-turn clock), and tail_share_* split the slowest 0.1% of those
  requests: wait_us (head read to head written to the backend), latency_us (the backend's answer)
  and deliver_us (the response to the client), as shares of their total_us. The gap between
  oha's p99.9 and proxy_total_p99.9 is time outside the proxy's exchange (the client's side,
  loopback, the kernel queue before the proxy reads the head).
- $ROUNDS rounds, targets interleaved, medians (min-max). Lower latency is better. vm_steal: the
  machine's steal ticks (/proc/stat, 1/100 s) during each run: time the VM's cores were taken away.
MD
python3 tools/bench_report.py "$OUT/results.csv" "Open loop: $RATE req/s through each proxy (bash tools/bench-openloop.sh)" \
  "$work/commands.md" lbproxy_http/haproxy_http lbproxy_http/nginx lbproxy_tcp/haproxy_tcp \
  lbproxy_http_log/lbproxy_http >"$OUT/report.md"
echo "wrote $OUT/report.md"
python3 tools/provenance.py --publish "$OUT"
