#!/usr/bin/env bash
# TLS termination side by side (issue 11): lbproxy, HAProxy and nginx on the
# same certificate (ECDSA P-256, made here) in front of the same
# examples/http_backend, one at a time, each proxy pinned to CPU 1 and the
# load to CPU 0 (one core per proxy: nbthread 1, worker_processes 1).
#   - handshakes: wrk, Connection: close, so every request is a new TLS connection
#   - keep-alive: wrk -c50 over TLS
#   - bulk: one 1 GiB download with curl
# Rounds are interleaved (lbproxy, HAProxy, nginx, then again) and the
# report gives each round and the median ratio to HAProxy.
#
#   bash tools/bench-tls.sh [SECONDS] [ROUNDS]     (default 10 s, 3 rounds)
#   writes measurements/tls-bench/<YYYY-MM-DD-HHMM>/report.md, a new folder per run with
#   measurements/tls-bench/latest pointing at it (OUT=DIR to write exactly there)
set -euo pipefail

secs=${1:-10}
rounds=${2:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-$(python3 "$root/tools/provenance.py" --run-dir "$root/measurements/tls-bench")}
for t in wrk haproxy nginx curl openssl taskset; do command -v "$t" >/dev/null || { echo "$t is missing" >&2; exit 2; }; done
(cd "$root" && cargo build --release --quiet --bin lbproxy --example http_backend)
bin=$root/target/release
work=$(mktemp -d)
# pids, the cleanup trap, free_port, wait_port.
source "$root/tools/bench-lib.sh"
mkdir -p "$out"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=bench.test" \
    -addext "subjectAltName=DNS:bench.test" -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
cat "$work/cert.pem" "$work/key.pem" >"$work/combined.pem"

taskset -c 0 "$bin/examples/http_backend" --port 0 --id 1 >"$work/backend.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q "listening on" "$work/backend.log" && break; sleep 0.05; done
backend=$(sed -n 's/^listening on //p' "$work/backend.log")

start_proxy() {
    local name=$1 port=$2
    case $name in
        lbproxy)
            taskset -c 1 "$bin/lbproxy" --mode http --bind 127.0.0.1 --port "$port" --backend "$backend" \
                --stats-interval 0 --tls-cert "$work/cert.pem" --tls-key "$work/key.pem" >"$work/lb.log" 2>&1 &
            ;;
        haproxy)
            cat >"$work/haproxy.cfg" <<EOF
global
  nbthread 1
  tune.ssl.default-dh-param 2048
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend f
  bind 127.0.0.1:$port ssl crt $work/combined.pem alpn http/1.1
  default_backend b
backend b
  server s1 $backend
EOF
            taskset -c 1 haproxy -db -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 &
            ;;
        nginx)
            mkdir -p "$work/nginx"
            cat >"$work/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx; proxy_temp_path $work/nginx; fastcgi_temp_path $work/nginx;
  uwsgi_temp_path $work/nginx; scgi_temp_path $work/nginx;
  upstream b { server $backend; keepalive 64; }
  server {
    listen 127.0.0.1:$port ssl;
    ssl_certificate $work/cert.pem;
    ssl_certificate_key $work/key.pem;
    location / { proxy_pass http://b; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off; }
  }
}
EOF
            taskset -c 1 nginx -c "$work/nginx.conf" -p "$work/nginx" >"$work/nginx.out" 2>&1 &
            ;;
    esac
    echo $!
}

wrk_rps() { awk '/Requests\/sec/ {print $2}' "$1"; }

declare -A hs ka bulk
for r in $(seq "$rounds"); do
    for name in lbproxy haproxy nginx; do
        port=$(free_port)
        pid=$(start_proxy "$name" "$port")
        pids+=("$pid")
        wait_port "$port"
        url="https://127.0.0.1:$port/"
        taskset -c 0 wrk -t1 -c20 -d"${secs}s" -H "Connection: close" "$url" >"$work/hs-$name-$r" 2>&1 || true
        taskset -c 0 wrk -t1 -c50 -d"${secs}s" "$url" >"$work/ka-$name-$r" 2>&1 || true
        speed=$(taskset -c 0 curl -sk --max-time 120 -o /dev/null -w '%{speed_download}' \
            "https://127.0.0.1:$port/bytes?size=1073741824&seed=1" || echo 0)
        hs[$name,$r]=$(wrk_rps "$work/hs-$name-$r")
        ka[$name,$r]=$(wrk_rps "$work/ka-$name-$r")
        bulk[$name,$r]=$(python3 -c "print(f'{$speed/1e6:.0f}')")
        echo "round $r $name: handshakes/s ${hs[$name,$r]}, keep-alive req/s ${ka[$name,$r]}, 1 GiB ${bulk[$name,$r]} MB/s"
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
done

median() { python3 -c "import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))" "$@"; }
row() {
    local label=$1 unit=$2
    local -n m=$3
    local vals_l=() vals_h=() vals_n=()
    for r in $(seq "$rounds"); do vals_l+=("${m[lbproxy,$r]}"); vals_h+=("${m[haproxy,$r]}"); vals_n+=("${m[nginx,$r]}"); done
    local ml mh mn
    ml=$(median "${vals_l[@]}"); mh=$(median "${vals_h[@]}"); mn=$(median "${vals_n[@]}")
    echo "| $label ($unit) | ${vals_l[*]} | ${vals_h[*]} | ${vals_n[*]} | $(python3 -c "print(f'{$ml/$mh:.2f}')") | $(python3 -c "print(f'{$ml/$mn:.2f}')") |"
}

{
    echo "# TLS termination: lbproxy, HAProxy and nginx side by side"
    echo
    echo "Written by \`bash tools/bench-tls.sh $secs $rounds\` at commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "on $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(uname -sr)."
    echo "$(haproxy -v | head -1 | cut -d' ' -f1-3), $(nginx -v 2>&1 | cut -d' ' -f3), $(openssl version | cut -d' ' -f1-2), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)."
    echo
    echo "Each proxy terminates TLS (ECDSA P-256 certificate, the same file for all) and forwards to"
    echo "examples/http_backend over kept-alive connections; one proxy at a time on CPU 1 (one thread/worker),"
    echo "load on CPU 0. Per round: wrk -t1 -c20 -d${secs}s with Connection: close (a full TLS handshake per"
    echo "request, no resumption), wrk -t1 -c50 -d${secs}s keep-alive, and one 1 GiB download with curl."
    echo "Rounds are interleaved; the ratio is the median of lbproxy's rounds over the other's."
    echo
    echo "| line | lbproxy (rounds) | HAProxy (rounds) | nginx (rounds) | lbproxy / HAProxy | lbproxy / nginx |"
    echo "|---|---|---|---|---:|---:|"
    row "handshakes" "per second" hs
    row "keep-alive requests over TLS" "per second" ka
    row "1 GiB download" "MB/s" bulk
    echo
    python3 "$root/tools/provenance.py" --note "openssl: $(openssl version)"
} >"$out/report.md"
echo "wrote $out/report.md"
python3 "$root/tools/provenance.py" --publish "$out"
