#!/usr/bin/env bash
# TCP pass-through benchmark: direct vs lbproxy vs HAProxy (mode tcp, nbthread 1),
# same run, same machine. Writes measurements/tcp-baseline/{report.md,results.csv}.
#   bash tools/bench-tcp.sh            # full run (about 3 minutes)
#   DURATION=3s IDLE_CONNS=500 bash tools/bench-tcp.sh   # quick look
# Proxies are pinned to CPU 1 with taskset; load generators and backends to CPU 0.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
IDLE_CONNS=${IDLE_CONNS:-3000}
OUT=${OUT:-measurements/tcp-baseline}
BIG=${BIG:-1GiB}
PROXY_CPU=${PROXY_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}

missing=()
for tool in wrk haproxy iperf3 python3 taskset; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if ((${#missing[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk haproxy iperf3 python3 util-linux
fi
ulimit -n "$(ulimit -Hn)"
cargo build --release --quiet --bin lbproxy --examples
mkdir -p "$OUT"
work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; [[ -n "${KEEP_WORK:-}" ]] || rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }
start() { # start CPU CMD...; records pid
  local cpu=$1; shift
  taskset -c "$cpu" "$@" >"$work/$(basename "$1").$RANDOM.log" 2>&1 &
  pids+=($!)
}
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

echo "test,target,value,unit" >"$OUT/results.csv"
record() { echo "$1,$2,$3,$4" >>"$OUT/results.csv"; printf '  %-22s %-10s %14s %s\n' "$1" "$2" "$3" "$4"; }

wrk_rps() { # wrk_rps URL [header]: prints requests/s; fails loudly on socket errors
  local args=(-t2 -c100 -d"$DURATION" --latency)
  [[ -n "${2:-}" ]] && args+=(-H "$2")
  taskset -c "$LOAD_CPU" wrk "${args[@]}" "$1" >"$work/wrk.out"
  if grep -q "Socket errors\|Non-2xx" "$work/wrk.out"; then echo "wrk errors on $1:" >&2; cat "$work/wrk.out" >&2; fi
  awk '/Requests\/sec/ {print $2}' "$work/wrk.out"
}

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
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
hold() { # hold PORT PID: opens IDLE_CONNS connections, checks each is proxied, prints KiB per connection
  python3 - "$1" "$2" "$IDLE_CONNS" <<'PY'
import socket, sys, time
port, pid, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1])
before = rss()
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    socks.append(s)
# Prove every connection reaches a backend: one round trip each, then idle.
for s in socks:
    s.sendall(b"WHO\n")
for s in socks:
    if b"server=" not in s.recv(200):
        sys.exit("connection not proxied")
time.sleep(1)
after = rss()
print(round((after - before) / n, 2))
PY
}
record idle_kib_per_conn lbproxy "$(hold "$LB_PORT" "$LB_PID")" KiB
record idle_kib_per_conn haproxy "$(hold "$HA_PORT" "$HA_PID")" KiB
stop_proxies

python3 tools/bench_report.py "$OUT/results.csv" "$DURATION" "$IDLE_CONNS" "$BIG" >"$OUT/report.md"
echo "wrote $OUT/report.md"
