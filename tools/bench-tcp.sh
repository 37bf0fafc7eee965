#!/usr/bin/env bash
# TCP pass-through benchmark: direct vs lbproxy vs HAProxy (mode tcp, nbthread 1),
# same run, same machine. Writes measurements/tcp-baseline/<YYYY-MM-DD-HHMM>/{report.md,results.csv} (or OUT=DIR).
#   bash tools/bench-tcp.sh            # full run (about 3 minutes)
#   DURATION=3s IDLE_CONNS=500 bash tools/bench-tcp.sh   # quick look
# Proxies are pinned to CPU 1 with taskset; load generators and backends to CPU 0.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
IDLE_CONNS=${IDLE_CONNS:-3000}
# A new dated folder per run (measurements/NAME/YYYY-MM-DD-HHMM/, `latest` points at
# the newest) unless OUT names one.
OUT=${OUT:-$(python3 tools/provenance.py --run-dir measurements/tcp-baseline)}
BIG=${BIG:-1GiB}
PROXY_CPU=${PROXY_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}

work=$(mktemp -d)
mkdir -p "$OUT"
# shellcheck source=tools/bench-lib.sh
source tools/bench-lib.sh
install_missing wrk haproxy iperf3 python3
ulimit -n "$(ulimit -Hn)"
cargo build --release --quiet --bin lbproxy --examples
rel=target/release
H1=$(free_port); H2=$(free_port); S1=$(free_port); S2=$(free_port); IP=$(free_port)
start "$LOAD_CPU" $rel/examples/http_backend --port "$H1" --id 1
start "$LOAD_CPU" $rel/examples/http_backend --port "$H2" --id 2
start "$LOAD_CPU" $rel/examples/stream_backend --port "$S1" --id 1
start "$LOAD_CPU" $rel/examples/stream_backend --port "$S2" --id 2
start "$LOAD_CPU" iperf3 -s -p "$IP"
for p in $H1 $H2 $S1 $S2 $IP; do wait_port "$p"; done

# start_proxies KIND PORT_A PORT_B: sets LB_PORT, HA_PORT, LB_PID, HA_PID
start_proxies() {
  local a=$1 b=$2 extra=${3:-}
  LB_PORT=$(free_port); HA_PORT=$(free_port)
  # shellcheck disable=SC2086
  taskset -c "$PROXY_CPU" $rel/lbproxy --bind 127.0.0.1 --port "$LB_PORT" --stats-interval 0 \
    --backend "127.0.0.1:$a" --backend "127.0.0.1:$b" $extra >"$work/lbproxy.log" 2>&1 &
  LB_PID=$!; pids+=($LB_PID)
  cat >"$work/haproxy.cfg" <<CFG
global
  nbthread 1
  maxconn 9000
defaults
  mode tcp
  timeout connect 2s
  timeout client 120s
  timeout server 120s
frontend fe
  bind 127.0.0.1:$HA_PORT
  default_backend be
backend be
  balance roundrobin
  server s1 127.0.0.1:$a
  server s2 127.0.0.1:$b
CFG
  taskset -c "$PROXY_CPU" haproxy -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 &
  HA_PID=$!; pids+=($HA_PID)
  wait_port "$LB_PORT"; wait_port "$HA_PORT"
}
stop_proxies() { kill "$LB_PID" "$HA_PID" 2>/dev/null || true; wait "$LB_PID" "$HA_PID" 2>/dev/null || true; }

init_results

wrk_rps() { wrk_run "$@"; }

echo "== wrk keep-alive, small page"
start_proxies "$H1" "$H2"
record wrk_keepalive direct "$(wrk_rps "http://127.0.0.1:$H1/")" req/s
record wrk_keepalive lbproxy "$(wrk_rps "http://127.0.0.1:$LB_PORT/")" req/s
record wrk_keepalive haproxy "$(wrk_rps "http://127.0.0.1:$HA_PORT/")" req/s

echo "== wrk Connection: close (a new connection per request)"
record wrk_close direct "$(wrk_rps "http://127.0.0.1:$H1/" "Connection: close")" req/s
record wrk_close lbproxy "$(wrk_rps "http://127.0.0.1:$LB_PORT/" "Connection: close")" req/s
record wrk_close haproxy "$(wrk_rps "http://127.0.0.1:$HA_PORT/" "Connection: close")" req/s
stop_proxies

echo "== $BIG upload + download, sha256 verified (file_client)"
start_proxies "$S1" "$S2"
fc() {
  taskset -c "$LOAD_CPU" $rel/examples/file_client --lb "127.0.0.1:$1" --size "$BIG" --parallel 1 >"$work/fc.out"
  grep -q "verified both ways: OK" "$work/fc.out" || { cat "$work/fc.out" >&2; exit 1; }
  # "upload X MB/s, download Y MB/s"
  sed -E 's/.*upload ([0-9.]+) MB\/s, download ([0-9.]+) MB\/s.*/\1 \2/' "$work/fc.out"
}
for t in direct lbproxy haproxy; do
  case $t in direct) p=$S1 ;; lbproxy) p=$LB_PORT ;; haproxy) p=$HA_PORT ;; esac
  read -r up down < <(fc "$p")
  record transfer_upload "$t" "$up" MB/s
  record transfer_download "$t" "$down" MB/s
done
stop_proxies

echo "== iperf3 (5 s, one stream)"
ip3() { taskset -c "$LOAD_CPU" iperf3 -c 127.0.0.1 -p "$1" -t 5 -J | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9,2))'; }
start_proxies "$IP" "$IP"
record iperf3 direct "$(ip3 "$IP")" Gbit/s
record iperf3 lbproxy "$(ip3 "$LB_PORT")" Gbit/s
record iperf3 haproxy "$(ip3 "$HA_PORT")" Gbit/s
stop_proxies
for bs in 16KiB 256KiB; do
  start_proxies "$IP" "$IP" "--buffer-size $bs"
  record "iperf3_buffer_$bs" lbproxy "$(ip3 "$LB_PORT")" Gbit/s
  stop_proxies
done

echo "== resident memory per idle proxied connection ($IDLE_CONNS connections)"
start_proxies "$S1" "$S2"
# KiB per connection held 1 s (tools/bench-idle.sh measures 9000 held, with 1 and 2 workers).
hold() { python3 tools/hold-idle.py "$1" "$2" "$IDLE_CONNS" 1 | awk '{print $1}'; }
record idle_kib_per_conn lbproxy "$(hold "$LB_PORT" "$LB_PID")" "KiB (lower is better)"
record idle_kib_per_conn haproxy "$(hold "$HA_PORT" "$HA_PID")" "KiB (lower is better)"
stop_proxies

cat >"$work/commands.md" <<MD
## Commands

- \`wrk -t2 -c100 -d$DURATION --latency http://127.0.0.1:PORT/\` (keep-alive), and the same with \`-H 'Connection: close'\`.
  Backends: two \`http_backend\` examples. lbproxy \`--policy round_robin\`; HAProxy \`mode tcp\`, \`balance roundrobin\`, \`nbthread 1\`.
- \`file_client --size $BIG --parallel 1\` against two \`stream_backend\`s: upload then download, sha256 checked on both.
- \`iperf3 -c 127.0.0.1 -p PORT -t 5\` through each proxy to one \`iperf3 -s\`; lbproxy also with 16 KiB and 256 KiB buffers.
- $IDLE_CONNS connections opened through each proxy, one round trip each to prove they reach a backend, then held idle:
  (VmRSS after - VmRSS before) / connections.
MD
python3 tools/bench_report.py "$OUT/results.csv" "TCP pass-through: direct vs lbproxy vs HAProxy (bash tools/bench-tcp.sh)" \
  "$work/commands.md" lbproxy/direct haproxy/direct lbproxy/haproxy >"$OUT/report.md"
echo "wrote $OUT/report.md"
python3 tools/provenance.py --publish "$OUT"
