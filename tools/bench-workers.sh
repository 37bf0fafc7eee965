#!/usr/bin/env bash
# Scaling with cores: lbproxy --workers 1 and 2 next to HAProxy nbthread 1/2
# and nginx worker_processes 1/2, HTTP mode, same run, nothing pinned (the
# proxies, wrk and the origin share the machine's cores, as a proxy does).
# Writes measurements/workers/<YYYY-MM-DD-HHMM>/{report.md,results.csv,rounds.csv} (or OUT=DIR).
#   bash tools/bench-workers.sh              # 3 rounds of 5 s per target and test (about 4 minutes)
#   DURATION=2s ROUNDS=1 bash tools/bench-workers.sh   # quick look
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5s}
ROUNDS=${ROUNDS:-3}
OUT=${OUT:-$(python3 tools/provenance.py --run-dir measurements/workers)}
work=$(mktemp -d)
mkdir -p "$OUT"
# shellcheck source=tools/bench-lib.sh
source tools/bench-lib.sh
unpinned
install_missing wrk haproxy nginx python3 curl
ulimit -n "$(ulimit -Hn)"
cargo build --release --quiet --bin lbproxy
rel=target/release

nginx_origin "$CPUS"

declare -A port
lb() { # lb WORKERS
  port[lbproxy_w$1]=$(free_port)
  local admin; admin=$(free_port)
  port[lbproxy_w$1_admin]=$admin
  start "$CPUS" $rel/lbproxy --mode http --bind 127.0.0.1 --port "${port[lbproxy_w$1]}" --stats-interval 0 \
    --workers "$1" --admin "127.0.0.1:$admin" --backend "127.0.0.1:$H1" --backend "127.0.0.1:$H2"
}
haproxy_t() { # haproxy_t THREADS
  port[haproxy_t$1]=$(free_port)
  haproxy_conf "$work/haproxy$1.cfg" http "$1" "${port[haproxy_t$1]}" "127.0.0.1:$H1" "127.0.0.1:$H2"
  start "$CPUS" haproxy -f "$work/haproxy$1.cfg" -db
}
nginx_w() { # nginx_w WORKERS
  port[nginx_w$1]=$(free_port)
  nginx_keepalive_conf "$work/nginx$1" "$1" "${port[nginx_w$1]}" "127.0.0.1:$H1" "127.0.0.1:$H2"
  start "$CPUS" nginx -c "$work/nginx$1/nginx.conf" -g 'daemon off;'
}
lb 1; lb 2; haproxy_t 1; haproxy_t 2; nginx_w 1; nginx_w 2
targets=(lbproxy_w1 lbproxy_w2 haproxy_t1 haproxy_t2 nginx_w1 nginx_w2)
for t in "${targets[@]}"; do wait_port "${port[$t]}"; done

init_results
for round in $(seq "$ROUNDS"); do
  echo "== round $round of $ROUNDS ($DURATION each)"
  for t in "${targets[@]}"; do
    raw_add new_conn_rps "$t" "$(wrk_run "http://127.0.0.1:${port[$t]}/" "Connection: close")" req/s
    raw_add keepalive_rps "$t" "$(wrk_run "http://127.0.0.1:${port[$t]}/")" req/s
  done
done
record_medians

# How the clients spread over lbproxy's two workers (accepted connections per worker).
spread=$(curl -s "http://127.0.0.1:${port[lbproxy_w2_admin]}/stats" | python3 -c '
import json, sys
w = json.load(sys.stdin)["workers"]
total = sum(x["sessions"] for x in w) or 1
print(", ".join("worker %d: %d (%.1f%%)" % (x["worker"], x["sessions"], 100 * x["sessions"] / total) for x in w))')

cat >"$work/commands.md" <<MD
## Commands

- Each figure is the median of $ROUNDS rounds; in each round the targets run one after another (all rounds: rounds.csv).
- Nothing is pinned: the proxy, \`wrk\` and the origin share all $(nproc) cores, as a proxy in front of real traffic does.
- new_conn_rps: \`wrk -t2 -c100 -d$DURATION -H "Connection: close"\` (a new client connection per request; backend connections are kept by every proxy).
- keepalive_rps: \`wrk -t2 -c100 -d$DURATION\` (keep-alive clients).
- Origin: one nginx (\`worker_processes 1\`, \`return 200\` with a short body) on two ports.
- lbproxy: \`--mode http --workers 1|2\`, round_robin, persistent backend connections.
- HAProxy: \`mode http\`, \`http-reuse always\`, \`option forwardfor\`, \`nbthread 1|2\`.
- nginx: \`worker_processes 1|2\`, \`proxy_pass\` to an upstream with \`keepalive 64\`.
- Spread of lbproxy --workers 2 over the whole run (connections accepted per worker, from /stats): $spread.
MD
PLACEMENT="nothing pinned: proxies, load generator and origin share every core." \
  python3 tools/bench_report.py "$OUT/results.csv" "Workers: lbproxy vs HAProxy vs nginx on 1 and 2 threads (bash tools/bench-workers.sh)" \
  "$work/commands.md" lbproxy_w2/lbproxy_w1 haproxy_t2/haproxy_t1 nginx_w2/nginx_w1 lbproxy_w2/haproxy_t2 \
  lbproxy_w2/nginx_w2 >"$OUT/report.md"
echo "wrote $OUT/report.md"
python3 tools/provenance.py --publish "$OUT"
