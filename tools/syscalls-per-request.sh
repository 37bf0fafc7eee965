#!/usr/bin/env bash
# Syscalls per request through lbproxy and HAProxy on the same load (issue
# 10, the round trip): wrk keep-alive GETs for a few seconds while strace -c
# counts every syscall of the proxy; the count divided by the requests wrk
# completed is the cost of one round trip. Counts, not times: strace slows
# the proxy a lot, but what each request costs in calls does not change.
#
#   bash tools/syscalls-per-request.sh [SECONDS] [CONNECTIONS]   (default 5 s, 50)
#   writes measurements/syscalls/<YYYY-MM-DD-HHMM>/report.md, latest -> newest (OUT=DIR to write exactly there)
set -euo pipefail

secs=${1:-5}
conns=${2:-50}
root=$(cd "$(dirname "$0")/.." && pwd)
# A new dated folder per run (`latest` points at the newest) unless OUT names one.
out=${OUT:-$(python3 "$root/tools/provenance.py" --run-dir "$root/measurements/syscalls")}
for t in strace wrk haproxy; do command -v "$t" >/dev/null || { echo "$t is missing" >&2; exit 2; }; done
(cd "$root" && cargo build --release --quiet --bin lbproxy --example http_backend)
bin=$root/target/release
work=$(mktemp -d)
# pids, the cleanup trap, free_port, wait_port.
source "$root/tools/bench-lib.sh"
mkdir -p "$out"

"$bin/examples/http_backend" --port 0 --id 1 >"$work/backend.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q "listening on" "$work/backend.log" && break; sleep 0.05; done
backend=$(sed -n 's/^listening on //p' "$work/backend.log")

# One proxy at a time: start it, count its syscalls under wrk, stop it.
measure() {
    local name=$1 port=$2
    shift 2
    "$@" >"$work/$name.log" 2>&1 &
    local pid=$!
    pids+=("$pid")
    wait_port "$port"
    # Warm up (connections to the backend, pools), then count.
    wrk -t1 -c"$conns" -d1s "http://127.0.0.1:$port/" >/dev/null 2>&1 || true
    strace -c -f -p "$pid" -o "$work/$name.strace" &
    local st=$!
    sleep 0.5
    wrk -t1 -c"$conns" -d"${secs}s" "http://127.0.0.1:$port/" >"$work/$name.wrk" 2>&1
    kill -INT "$st"
    wait "$st" 2>/dev/null || true
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    local requests calls
    requests=$(awk '/requests in/ {print $1}' "$work/$name.wrk")
    calls=$(awk '$NF == "total" {print $(NF-2)}' "$work/$name.strace")
    echo "$name $requests $calls"
    {
        echo "### $name"
        echo
        echo "$requests requests, $calls syscalls: $(python3 -c "print(f'{$calls/$requests:.2f}')") per request"
        echo
        echo '```'
        head -14 "$work/$name.strace"
        echo '```'
        echo
    } >>"$work/details.md"
    echo "| $name | $requests | $calls | $(python3 -c "print(f'{$calls/$requests:.2f}')") |" >>"$work/rows.md"
}

lb_http=$(free_port)
measure "lbproxy http (persistent pool)" "$lb_http" \
    "$bin/lbproxy" --mode http --bind 127.0.0.1 --port "$lb_http" --backend "$backend" --stats-interval 0
lb_tcp=$(free_port)
measure "lbproxy tcp" "$lb_tcp" \
    "$bin/lbproxy" --bind 127.0.0.1 --port "$lb_tcp" --backend "$backend" --stats-interval 0
for mode in http tcp; do
    port=$(free_port)
    cat >"$work/haproxy-$mode.cfg" <<EOF
global
  nbthread 1
defaults
  mode $mode
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  $( [[ $mode == http ]] && echo "http-reuse always" )
frontend f
  bind 127.0.0.1:$port
  default_backend b
backend b
  server s1 $backend
EOF
    measure "haproxy $mode" "$port" haproxy -db -f "$work/haproxy-$mode.cfg"
done

{
    echo "# Syscalls per request: lbproxy and HAProxy on the same load"
    echo
    echo "Written by \`bash tools/syscalls-per-request.sh $secs $conns\` at commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "on $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) cores, $(uname -sr); $(haproxy -v | head -1 | cut -d' ' -f1-3)."
    echo "wrk -t1 -c$conns keep-alive GET / for ${secs} s through each proxy (one at a time, release builds,"
    echo "nbthread 1) to examples/http_backend, while \`strace -c -f\` counts the proxy's syscalls."
    echo "strace slows every call, so the request counts are not throughput; the calls per request are the point."
    echo
    echo "| proxy | requests | syscalls | per request |"
    echo "|---|---:|---:|---:|"
    cat "$work/rows.md"
    echo
    echo "## The calls, per proxy (strace -c, top lines)"
    echo
    cat "$work/details.md"
    echo
    python3 "$root/tools/provenance.py"
} >"$out/report.md"
echo "wrote $out/report.md"
python3 "$root/tools/provenance.py" --publish "$out"
