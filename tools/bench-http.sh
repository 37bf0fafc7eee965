#!/usr/bin/env bash
# HTTP mode benchmark: lbproxy --mode http (persistent and per-request backend
# connections) next to HAProxy (mode http, http-reuse always, nbthread 1) and
# nginx (worker_processes 1, upstream keepalive on and off), same run.
# Writes measurements/http-mode/<YYYY-MM-DD-HHMM>/{report.md,results.csv} (or OUT=DIR).
#   bash tools/bench-http.sh                 # full run, 3 rounds (about 4 minutes)
#   DURATION=3s bash tools/bench-http.sh     # quick look
#   BACKEND_KIND=nginx OUT=measurements/http-mode-nginx-origin bash tools/bench-http.sh
#     # origins are a separate nginx instance (static answers) instead of the
#     # thread-per-connection example backend, so new connections are cheap for them
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
# A new dated folder per run (measurements/NAME/YYYY-MM-DD-HHMM/, `latest` points at
# the newest) unless OUT names one.
OUT=${OUT:-$(python3 tools/provenance.py --run-dir measurements/http-mode)}
BACKEND_KIND=${BACKEND_KIND:-example}
PROXY_CPU=${PROXY_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}

work=$(mktemp -d)
mkdir -p "$OUT"
# shellcheck source=tools/bench-lib.sh
source tools/bench-lib.sh
install_missing wrk haproxy nginx python3
ulimit -n "$(ulimit -Hn)"
cargo build --release --quiet --bin lbproxy --examples
rel=target/release


H1=$(free_port); H2=$(free_port)
if [[ $BACKEND_KIND == nginx ]]; then
  nginx_conf "$work/origin" 1 <<CFG
  server { listen 127.0.0.1:$H1; location / { add_header X-Server 1; return 200 "Hello from server 1"; } }
  server { listen 127.0.0.1:$H2; location / { add_header X-Server 2; return 200 "Hello from server 2"; } }
CFG
  start "$LOAD_CPU" nginx -c "$work/origin/nginx.conf" -g 'daemon off;'
else
  start "$LOAD_CPU" $rel/examples/http_backend --port "$H1" --id 1
  start "$LOAD_CPU" $rel/examples/http_backend --port "$H2" --id 2
fi
wait_port "$H1"; wait_port "$H2"

LB_KA=$(free_port); LB_PR=$(free_port); HA=$(free_port); NG_KA=$(free_port); NG_NOKA=$(free_port)
lb() { start "$PROXY_CPU" $rel/lbproxy --mode http --bind 127.0.0.1 --stats-interval 0 \
  --backend "127.0.0.1:$H1" --backend "127.0.0.1:$H2" "$@"; }
lb --port "$LB_KA" --backend-conn persistent
lb --port "$LB_PR" --backend-conn per-request

cat >"$work/haproxy.cfg" <<CFG
global
  nbthread 1
  maxconn 9000
defaults
  mode http
  option forwardfor
  http-reuse always
  timeout connect 2s
  timeout client 60s
  timeout server 60s
frontend fe
  bind 127.0.0.1:$HA
  default_backend be
backend be
  balance roundrobin
  server s1 127.0.0.1:$H1
  server s2 127.0.0.1:$H2
CFG
start "$PROXY_CPU" haproxy -f "$work/haproxy.cfg" -db

nginx_conf "$work/nginx" 1 <<CFG
  upstream ka { server 127.0.0.1:$H1; server 127.0.0.1:$H2; keepalive 64; }
  upstream noka { server 127.0.0.1:$H1; server 127.0.0.1:$H2; }
  server {
    listen 127.0.0.1:$NG_KA;
    location / {
      proxy_pass http://ka;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    }
  }
  server {
    listen 127.0.0.1:$NG_NOKA;
    location / {
      proxy_pass http://noka;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    }
  }
CFG
start "$PROXY_CPU" nginx -c "$work/nginx/nginx.conf" -g 'daemon off;'
for p in $LB_KA $LB_PR $HA $NG_KA $NG_NOKA; do wait_port "$p"; done

init_results
ROUNDS=${ROUNDS:-3}
run() { # run TARGET PORT
  raw_add wrk_rps "$1" "$(wrk_run "http://127.0.0.1:$2/")" req/s
  raw_add latency_p50 "$1" "$(wrk_latency 50)" us
  raw_add latency_p99 "$1" "$(wrk_latency 99)" us
}
for round in $(seq "$ROUNDS"); do
  echo "== round $round of $ROUNDS: wrk -t2 -c100 -d$DURATION, GET / through each"
  run direct "$H1"
  run lbproxy_persistent "$LB_KA"
  run haproxy_reuse "$HA"
  run nginx_keepalive "$NG_KA"
  run lbproxy_per_request "$LB_PR"
  run nginx_no_keepalive "$NG_NOKA"
done
record_medians

if [[ $BACKEND_KIND == nginx ]]; then
  ORIGIN_DESC="a separate nginx instance (worker_processes 1, return 200 with a short body) pinned with the load generator"
else
  ORIGIN_DESC="two http_backend examples (a thread per connection)"
fi
cat >"$work/commands.md" <<MD
## Commands

- Each figure is the median of $ROUNDS rounds; the rounds run the targets one after another, interleaved (all rounds: rounds.csv).
- Load: \`wrk -t2 -c100 -d$DURATION --latency http://127.0.0.1:PORT/\` (keep-alive from the client), small page from $ORIGIN_DESC.
- lbproxy: \`--mode http --backend-conn persistent\` and \`--mode http --backend-conn per-request\`, round_robin.
- HAProxy: \`mode http\`, \`http-reuse always\`, \`option forwardfor\`, \`nbthread 1\`, \`balance roundrobin\`.
- nginx: \`worker_processes 1\`, \`proxy_pass\` to an upstream with \`keepalive 64\` (HTTP/1.1, \`Connection ""\`), and to one without keepalive.
- All proxies add X-Forwarded-For (lbproxy also Via and X-Forwarded-Proto).
MD
python3 tools/bench_report.py "$OUT/results.csv" "HTTP mode: lbproxy vs HAProxy vs nginx (bash tools/bench-http.sh)" \
  "$work/commands.md" lbproxy_persistent/haproxy_reuse lbproxy_persistent/nginx_keepalive \
  lbproxy_per_request/nginx_no_keepalive >"$OUT/report.md"
echo "wrote $OUT/report.md"
python3 tools/provenance.py --publish "$OUT"
