# Shared helpers for tools/bench-*.sh (sourced, not run).
# Expects: $work (scratch dir), $OUT (result dir), LOAD_CPU, PROXY_CPU, DURATION.

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; [[ -n "${KEEP_WORK:-}" ]] || rm -rf "$work"; }
trap cleanup EXIT

# unpinned: every process may use every core (CPUS, and LOAD_CPU/PROXY_CPU that `start` pins with).
unpinned() {
  CPUS="0-$(($(nproc) - 1))"
  LOAD_CPU=$CPUS
  PROXY_CPU=$CPUS
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }

# start CPU CMD...: run in the background pinned to CPU, remember the pid in LAST_PID.
start() {
  local cpu=$1; shift
  taskset -c "$cpu" "$@" >"$work/$(basename "$1").$RANDOM.log" 2>&1 &
  LAST_PID=$!
  pids+=("$LAST_PID")
}

install_missing() { # install_missing TOOL... (Debian package names = tool names)
  local missing=()
  for tool in "$@"; do command -v "$tool" >/dev/null || missing+=("$tool"); done
  if ((${#missing[@]})); then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  fi
}

init_results() { echo "test,target,value,unit" >"$OUT/results.csv"; }
record() { echo "$1,$2,$3,$4" >>"$OUT/results.csv"; printf '  %-22s %-18s %14s %s\n' "$1" "$2" "$3" "$4"; }

# wrk_run URL [HEADER]: runs wrk -t2 -c100, leaves its output in $work/wrk.out,
# prints requests/s. Socket errors or non-2xx answers are shown, not hidden.
wrk_run() {
  local args=(-t2 -c100 -d"$DURATION" --latency)
  [[ -n "${2:-}" ]] && args+=(-H "$2")
  taskset -c "$LOAD_CPU" wrk "${args[@]}" "$1" >"$work/wrk.out"
  if grep -q "Socket errors\|Non-2xx" "$work/wrk.out"; then
    echo "wrk reported errors on $1:" >&2
    grep "Socket errors\|Non-2xx" "$work/wrk.out" >&2
  fi
  awk '/Requests\/sec/ {print $2}' "$work/wrk.out"
}

# wrk_latency PCT: that percentile from the last wrk run, in microseconds.
wrk_latency() {
  awk -v p="$1%" '$1 == p { v = $2;
      if (v ~ /us$/) { sub(/us/, "", v); print v }
      else if (v ~ /ms$/) { sub(/ms/, "", v); print v * 1000 }
      else if (v ~ /s$/) { sub(/s/, "", v); print v * 1000000 } }' "$work/wrk.out"
}

# Several rounds, interleaved, then the median: single runs on a small VM move
# by 20% from one to the next, which is larger than the differences measured.
# raw_add TEST TARGET VALUE UNIT: keep one round's value.
raw_add() { echo "$1,$2,$3,$4" >>"$work/raw.csv"; printf '  %-22s %-22s %14s %s\n' "$1" "$2" "$3" "$4"; }
# record_medians: write the median of each (test, target) to results.csv, and all rounds to rounds.csv.
record_medians() {
  cp "$work/raw.csv" "$OUT/rounds.csv"
  python3 - "$work/raw.csv" >>"$OUT/results.csv" <<'PY'
import csv, statistics, sys
vals, units, order = {}, {}, []
for test, target, value, unit in csv.reader(open(sys.argv[1])):
    key = (test, target)
    if key not in vals:
        order.append(key)
    vals.setdefault(key, []).append(float(value))
    units[key] = unit
for key in order:
    print(f"{key[0]},{key[1]},{statistics.median(vals[key]):g},{units[key]}")
PY
}

# nginx_conf DIR WORKERS: write DIR/nginx.conf for a private nginx instance (WORKERS
# worker processes, every file under DIR) with standard input as the inside of http {}.
nginx_conf() {
  mkdir -p "$1"
  {
    cat <<CFG
worker_processes $2;
pid $1/nginx.pid;
error_log $1/error.log;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path $1/body;
  proxy_temp_path $1/proxy;
  fastcgi_temp_path $1/fastcgi;
  uwsgi_temp_path $1/uwsgi;
  scgi_temp_path $1/scgi;
CFG
    cat
    echo "}"
  } >"$1/nginx.conf"
}

# haproxy_conf FILE MODE THREADS PORT SERVER...: an HAProxy config, mode tcp or http
# (http: option forwardfor, http-reuse always), round robin over the SERVERs, on 127.0.0.1:PORT. maxconn: HAPROXY_MAXCONN (9000).
haproxy_conf() {
  local file=$1 mode=$2 threads=$3 port=$4 i=0 server
  shift 4
  {
    printf 'global\n  nbthread %s\n  maxconn %s\ndefaults\n  mode %s\n' "$threads" "${HAPROXY_MAXCONN:-9000}" "$mode"
    [[ $mode == http ]] && printf '  option forwardfor\n  http-reuse always\n'
    printf '  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n'
    printf 'frontend fe\n  bind 127.0.0.1:%s\n  default_backend be\nbackend be\n  balance roundrobin\n' "$port"
    for server in "$@"; do i=$((i + 1)); printf '  server s%d %s\n' "$i" "$server"; done
  } >"$file"
}

# nginx_origin CPU: one nginx (1 worker) answering a short page with X-Server 1 and 2 on two
# free ports, cheap per connection so the proxies in front are what is measured; sets H1, H2.
nginx_origin() {
  H1=$(free_port); H2=$(free_port)
  nginx_conf "$work/origin" 1 <<CFG
  server { listen 127.0.0.1:$H1; location / { add_header X-Server 1; return 200 "Hello from server 1"; } }
  server { listen 127.0.0.1:$H2; location / { add_header X-Server 2; return 200 "Hello from server 2"; } }
CFG
  start "$1" nginx -c "$work/origin/nginx.conf" -g 'daemon off;'
  wait_port "$H1"; wait_port "$H2"
}

# nginx_keepalive_conf DIR WORKERS PORT SERVER...: nginx proxying 127.0.0.1:PORT to the SERVERs
# over kept-alive upstream connections (keepalive 64, HTTP/1.1), adding X-Forwarded-For.
nginx_keepalive_conf() {
  local dir=$1 workers=$2 port=$3
  shift 3
  nginx_conf "$dir" "$workers" <<CFG
  upstream ka { $(printf 'server %s; ' "$@")keepalive 64; }
  server {
    listen 127.0.0.1:$port;
    location / {
      proxy_pass http://ka;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    }
  }
CFG
}
