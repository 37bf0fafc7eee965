#!/usr/bin/env bash
# One command per experiment; each writes measurements/<experiment>/<YYYY-MM-DD-HHMM>/
# (a new folder per run; measurements/<experiment>/latest points at the newest)
# with report.md (commit, date, machine and tool versions at its end), the raw
# CSV, cpu_usage.txt and SVG plots. OUT_ROOT=DIR writes DIR/<experiment>/ instead.
#
#   bash tools/experiments.sh latency     # fixed-rate latency, 3 policies + direct
#   bash tools/experiments.sh sessions    # stateful client from two hosts, 3 policies
#   bash tools/experiments.sh files       # file_client from two hosts, sizes up to 1 GiB
#   bash tools/experiments.sh policies    # every policy against 1/5/20 ms backends
#   bash tools/experiments.sh peers       # direct vs lbproxy vs HAProxy vs nginx
#   bash tools/experiments.sh all         # all of the above
#   bash tools/experiments.sh smoke       # all, seconds each, small files, into target/experiments-smoke;
#                                         # checks every report, CSV and plot (used by CI)
#
# Two hosts: as root, the runner creates network namespaces (lbproxy and the
# backends in one, two client hosts with their own addresses in two others,
# joined by veth pairs) and removes them at the end, also on failure. Without
# root it says so and uses 127.0.0.2 and 127.0.0.3 as the two clients.
set -euo pipefail
cd "$(dirname "$0")/.."

SMOKE=0
# Dated run folders unless told where to write (OUT_ROOT) or smoke-testing.
DATED=1
[[ -n ${OUT_ROOT:-} ]] && DATED=0
OUT_ROOT=${OUT_ROOT:-measurements}
exps=()
for a in "$@"; do
  case $a in
    latency | sessions | files | policies | peers) exps+=("$a") ;;
    all) exps+=(latency sessions files policies peers) ;;
    smoke) SMOKE=1; DATED=0; exps+=(latency sessions files policies peers); OUT_ROOT=${SMOKE_OUT:-target/experiments-smoke} ;;
    -h | --help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "unknown experiment \"$a\" (latency, sessions, files, policies, peers, all, smoke)" >&2; exit 2 ;;
  esac
done
((${#exps[@]})) || { echo "usage: bash tools/experiments.sh latency|sessions|files|policies|peers|all|smoke" >&2; exit 2; }

work=$(mktemp -d)
OUT=$work # bench-lib's record() writes here; experiments use their own dirs
PROXY_CPU=${PROXY_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}
# shellcheck source=tools/bench-lib.sh
source tools/bench-lib.sh
install_missing wrk curl python3 haproxy nginx
ulimit -n "$(ulimit -Hn)"
echo "== building (release)"
cargo build --release --quiet --bins --examples
rel=$PWD/target/release

# ---------------------------------------------------------------- two hosts
NS=lbp$$
NETNS=0
teardown_hosts() {
  if ((NETNS)); then
    for n in lb h1 h2; do ip netns del "$NS-$n" 2>/dev/null || true; done
  fi
}
trap 'cleanup; teardown_hosts' EXIT

setup_hosts() {
  if [[ $EUID -eq 0 ]] && command -v ip >/dev/null && ip netns add "$NS-lb" 2>/dev/null; then
    NETNS=1
    ip netns add "$NS-h1"
    ip netns add "$NS-h2"
    for n in lb h1 h2; do ip -n "$NS-$n" link set lo up; done
    for h in 1 2; do
      ip link add "${NS}a$h" type veth peer name "${NS}b$h"
      ip link set "${NS}a$h" netns "$NS-lb"
      ip link set "${NS}b$h" netns "$NS-h$h"
      ip -n "$NS-lb" addr add "10.213.$h.1/24" dev "${NS}a$h"
      ip -n "$NS-h$h" addr add "10.213.$h.2/24" dev "${NS}b$h"
      ip -n "$NS-lb" link set "${NS}a$h" up
      ip -n "$NS-h$h" link set "${NS}b$h" up
    done
    LB_FROM_H1=10.213.1.1; LB_FROM_H2=10.213.2.1
    H1_BIND=(); H2_BIND=()
    BACKEND_BIND=0.0.0.0
    HOSTS_NOTE="network namespaces: lbproxy and backends in $NS-lb; client hosts 10.213.1.2 and 10.213.2.2 on their own veth links"
  else
    NETNS=0
    LB_FROM_H1=127.0.0.1; LB_FROM_H2=127.0.0.1
    H1_BIND=(--bind-ip 127.0.0.2); H2_BIND=(--bind-ip 127.0.0.3)
    BACKEND_BIND=127.0.0.1
    HOSTS_NOTE="not root or no netns support: one machine, clients bound to 127.0.0.2 and 127.0.0.3"
    echo "note: $HOSTS_NOTE"
  fi
}
in_lb() { if ((NETNS)); then ip netns exec "$NS-lb" "$@"; else "$@"; fi; }
in_h1() { if ((NETNS)); then ip netns exec "$NS-h1" "$@"; else "$@"; fi; }
in_h2() { if ((NETNS)); then ip netns exec "$NS-h2" "$@"; else "$@"; fi; }
# wait_lb PORT: the port answers inside the balancer's host.
wait_lb() {
  for _ in $(seq 200); do
    in_lb bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "port $1 never opened" >&2
  exit 1
}
# bg_lb LOG CMD...: run CMD in the balancer's host in the background. The
# command itself is backgrounded (ip netns exec and taskset exec into it), so
# LAST_PID is the program's own pid: the one to sample, measure and stop.
bg_lb() {
  local log=$1; shift
  if ((NETNS)); then
    ip netns exec "$NS-lb" taskset -c "$PROXY_CPU" "$@" >"$work/$log" 2>&1 &
  else
    taskset -c "$PROXY_CPU" "$@" >"$work/$log" 2>&1 &
  fi
  LAST_PID=$!
  pids+=("$LAST_PID")
}
# start_backends KIND: two example backends in the balancer's host; sets B1, B2 (ports).
start_backends() {
  B1=$(free_port); B2=$(free_port)
  bg_lb "$1-1.log" "$rel/examples/$1" --bind "$BACKEND_BIND" --port "$B1" --id 1
  bg_lb "$1-2.log" "$rel/examples/$1" --bind "$BACKEND_BIND" --port "$B2" --id 2
  wait_lb "$B1"; wait_lb "$B2"
}
# start_proxy POLICY [FLAG...]: lbproxy in front of B1 and B2; sets LB_PORT, LB_PID.
start_proxy() {
  local policy=$1; shift
  LB_PORT=$(free_port)
  bg_lb lb.log "$rel/lbproxy" --bind 0.0.0.0 --port "$LB_PORT" --policy "$policy" --stats-interval 0 \
    --backend "127.0.0.1:$B1,127.0.0.1:$B2" "$@"
  LB_PID=$LAST_PID
  wait_lb "$LB_PORT"
}
stop_proxy() { kill "$LB_PID" 2>/dev/null || true; wait "$LB_PID" 2>/dev/null || true; }
cpu_seconds() { # user+system CPU seconds of a live process
  awk -v t="$(getconf CLK_TCK)" '{print ($14 + $15) / t}' "/proc/$1/stat"
}
sampler_start() { # sampler_start DIR [PID...]
  local dir=$1; shift
  local args=()
  for p in "$@"; do args+=(--pid "$p"); done
  SAMPLER_FILE=$dir/cpu_usage.txt
  "$rel/cpu-sampler" --interval "$SAMPLE" --output "$SAMPLER_FILE" "${args[@]}" 2>>"$work/sampler.log" &
  SAMPLER=$!
  pids+=("$SAMPLER")
}
# stop_started: stop every process this run started, by pid, and forget them.
stop_started() {
  kill "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  pids=()
}
sampler_stop() {
  # A short (smoke) run may end before the first interval: wait, bounded, for one sample.
  for _ in $(seq 50); do
    (($(wc -l <"$SAMPLER_FILE" 2>/dev/null || echo 0) >= 2)) && break
    sleep 0.1
  done
  kill "$SAMPLER" 2>/dev/null || true
  wait "$SAMPLER" 2>/dev/null || true
}
plot_cpu() {
  "$rel/plot" lines --csv "$1/cpu_usage.txt" --x timestamp --values total_pct,cpu0_pct,cpu1_pct \
    --names "both CPUs,CPU 0,CPU 1" --xlabel "seconds since the experiment started" \
    --title "CPU during the $2 experiment" --ylabel "CPU busy (%)" --out "$1/cpu.svg"
}
# machine: the report's Provenance section (commit, date, machine, tool versions, hosts).
machine() {
  local oha_v; oha_v=$( (command -v oha >/dev/null && oha --version) || ("$HOME/.cargo/bin/oha" --version 2>/dev/null) || echo "not installed")
  python3 tools/provenance.py --note "oha: $oha_v" --note "hosts: $HOSTS_NOTE"
}
# exp_dir NAME: this run's folder for experiment NAME (created).
exp_dir() {
  local d
  if ((DATED)); then d=$(python3 tools/provenance.py --run-dir "$OUT_ROOT/$1"); else d=$OUT_ROOT/$1; fi
  mkdir -p "$d"
  echo "$d"
}
# publish DIR: point its experiment's `latest` at it (dated folders only).
publish() { if ((DATED)); then python3 tools/provenance.py --publish "$1"; fi; }

if ((SMOKE)); then
  SAMPLE=200ms; SESSIONS=40; MESSAGES=5; SIZES="1MiB 4MiB"; LAT_DURATION=3s; RATE=500
else
  SAMPLE=1s; SESSIONS=2000; MESSAGES=20; SIZES="16MiB 256MiB 1GiB"; LAT_DURATION=30s; RATE=2000
fi
TCP_POLICIES="round_robin fewest_connections ip_hash"
setup_hosts

# ------------------------------------------------------------ experiments
exp_sessions() {
  local dir; dir=$(exp_dir sessions)
  start_backends stream_backend
  sampler_start "$dir"
  : >"$work/sessions.raw"
  for policy in $TCP_POLICIES; do
    start_proxy "$policy"
    local port=$LB_PORT
    in_h1 "$rel/examples/client" --lb "$LB_FROM_H1:$port" --sessions "$SESSIONS" --messages "$MESSAGES" "${H1_BIND[@]}" >"$work/h1.out" &
    local c1=$!
    in_h2 "$rel/examples/client" --lb "$LB_FROM_H2:$port" --sessions "$SESSIONS" --messages "$MESSAGES" "${H2_BIND[@]}" >"$work/h2.out" &
    local c2=$!
    wait "$c1" || { cat "$work/h1.out" >&2; echo "sessions: client on host 1 failed ($policy)" >&2; exit 1; }
    wait "$c2" || { cat "$work/h2.out" >&2; echo "sessions: client on host 2 failed ($policy)" >&2; exit 1; }
    echo "== sessions $policy: $(cat "$work/h1.out" "$work/h2.out" | grep -c 'stayed on one backend: OK') of 2 hosts kept every session on one backend"
    printf 'POLICY %s CPU %s\n' "$policy" "$(cpu_seconds "$LB_PID")" >>"$work/sessions.raw"
    for h in 1 2; do sed "s/^/HOST $h /" "$work/h$h.out" >>"$work/sessions.raw"; done
    stop_proxy
  done
  sampler_stop
  python3 tools/experiments_report.py sessions "$dir" "$work/sessions.raw" "$SESSIONS" "$MESSAGES" "$(machine)"
  "$rel/plot" bars --csv "$dir/share.csv" --label policy --values host1_server1,host1_server2,host2_server1,host2_server2 \
    --names "host 1 to backend 1,host 1 to backend 2,host 2 to backend 1,host 2 to backend 2" \
    --title "Sessions per backend, per client host (one run)" --ylabel "sessions" --out "$dir/share.svg"
  "$rel/plot" bars --csv "$dir/latency.csv" --label policy_host --values p50_us,p90_us,p99_us \
    --names "p50 (median),p90,p99" \
    --title "Message round trip through lbproxy (one run)" --ylabel "round trip (µs)" --out "$dir/latency.svg"
  plot_cpu "$dir" sessions
  publish "$dir"
  stop_started
}

exp_files() {
  local dir; dir=$(exp_dir files)
  start_backends stream_backend
  sampler_start "$dir"
  : >"$work/files.raw"
  for policy in $TCP_POLICIES; do
    start_proxy "$policy"
    local port=$LB_PORT
    for size in $SIZES; do
      in_h1 "$rel/examples/file_client" --lb "$LB_FROM_H1:$port" --size "$size" --parallel 2 "${H1_BIND[@]}" >"$work/f1.out" 2>&1 &
      local c1=$!
      in_h2 "$rel/examples/file_client" --lb "$LB_FROM_H2:$port" --size "$size" --parallel 2 --seed 43 "${H2_BIND[@]}" >"$work/f2.out" 2>&1 &
      local c2=$!
      wait "$c1" || { cat "$work/f1.out" >&2; echo "files: host 1 transfer failed ($policy $size)" >&2; exit 1; }
      wait "$c2" || { cat "$work/f2.out" >&2; echo "files: host 2 transfer failed ($policy $size)" >&2; exit 1; }
      for h in 1 2; do
        echo "RESULT $policy $size $h $(grep -o 'upload [0-9.]* MB/s, download [0-9.]* MB/s' "$work/f$h.out")" >>"$work/files.raw"
      done
      echo "== files $policy $size: sha256 verified on both hosts"
    done
    stop_proxy
  done
  sampler_stop
  python3 tools/experiments_report.py files "$dir" "$work/files.raw" "$SIZES" "$(machine)"
  "$rel/plot" bars --csv "$dir/throughput.csv" --label case --values upload_mbs,download_mbs \
    --names "upload,download" \
    --title "File transfer through lbproxy, two hosts x 2 parallel, sum of both hosts (one run)" \
    --ylabel "throughput (MB/s)" --out "$dir/throughput.svg"
  plot_cpu "$dir" files
  publish "$dir"
  stop_started
}

exp_latency() {
  local dir; dir=$(exp_dir latency)
  local tool
  if command -v wrk2 >/dev/null; then
    tool=wrk2
  elif command -v oha >/dev/null || [[ -x $HOME/.cargo/bin/oha ]]; then
    tool=oha
  elif ((SMOKE)); then
    tool=wrk
  else
    echo "== installing oha (open-loop load with latency correction) from crates.io"
    cargo install oha --locked --quiet
    tool=oha
  fi
  local oha_bin; oha_bin=$(command -v oha || echo "$HOME/.cargo/bin/oha")
  start_backends http_backend
  sampler_start "$dir"
  : >"$work/latency.raw"
  run_load() { # run_load TARGET URL
    case $tool in
      wrk2) in_h1 wrk2 -t2 -c100 -d"$LAT_DURATION" -R"$RATE" --latency -s tools/wrk-report.lua "$2" >"$work/load.out" ;;
      wrk) in_h1 wrk -t2 -c100 -d"$LAT_DURATION" --latency -s tools/wrk-report.lua "$2" >"$work/load.out" ;;
      oha) in_h1 "$oha_bin" -z "$LAT_DURATION" -q "$RATE" -c 100 --latency-correction --no-tui --output-format json "$2" >"$work/load.out" ;;
    esac
    echo "TARGET $1 TOOL $tool" >>"$work/latency.raw"
    cat "$work/load.out" >>"$work/latency.raw"
    printf "\nEND\n" >>"$work/latency.raw"
    echo "== latency $1 done"
  }
  run_load direct "http://$LB_FROM_H1:$B1/"
  for policy in $TCP_POLICIES; do
    start_proxy "$policy" --mode http
    run_load "$policy" "http://$LB_FROM_H1:$LB_PORT/"
    stop_proxy
  done
  sampler_stop
  python3 tools/experiments_report.py latency "$dir" "$work/latency.raw" "$RATE" "$LAT_DURATION" "$(machine)"
  "$rel/plot" bars --csv "$dir/latency.csv" --label target --values p50_us,p90_us,p99_us,p999_us \
    --names "p50 (median),p90,p99,p99.9" \
    --title "Latency at $RATE requests/s ($tool, one run)" --ylabel "response time (µs)" --out "$dir/latency.svg"
  plot_cpu "$dir" latency
  publish "$dir"
  stop_started
}

exp_policies() {
  local dir; dir=$(exp_dir policy-adaptivity)
  sampler_start "$dir"
  if ((SMOKE)); then
    OUT=$dir DURATION=2s POLICIES="round_robin ewma p2c_peak_ewma" bash tools/bench-policies.sh
  else
    OUT=$dir bash tools/bench-policies.sh
  fi
  sampler_stop
  "$rel/plot" bars --csv "$dir/results.csv" --label policy --values share_1ms,share_5ms,share_20ms \
    --names "backend answering in 1 ms,in 5 ms,in 20 ms" \
    --title "Share of requests per backend (one run per policy)" --ylabel "share of requests (0 to 1)" --out "$dir/share.svg"
  "$rel/plot" bars --csv "$dir/results.csv" --label policy --values p50_us,p99_us,p999_us \
    --names "p50 (median),p99,p99.9" \
    --title "Latency per policy (one run per policy)" --ylabel "response time (µs)" --out "$dir/latency.svg"
  "$rel/plot" bars --csv "$dir/results.csv" --label policy --values rps --names "requests/s" \
    --title "Throughput per policy (one run per policy)" --ylabel "requests per second" --out "$dir/throughput.svg"
  plot_cpu "$dir" policies
  python3 tools/experiments_report.py append-plots "$dir" share.svg latency.svg throughput.svg cpu.svg
  publish "$dir"
}

exp_peers() {
  local dir; dir=$(exp_dir http-mode)
  sampler_start "$dir"
  if ((SMOKE)); then
    OUT=$dir DURATION=2s ROUNDS=1 bash tools/bench-http.sh
  else
    OUT=$dir bash tools/bench-http.sh
  fi
  sampler_stop
  python3 tools/experiments_report.py pivot "$dir/results.csv" wrk_rps "$dir/rps.csv"
  "$rel/plot" bars --csv "$dir/rps.csv" --label target --values value --low min --high max \
    --names "median of the rounds (whisker: lowest to highest round)" \
    --title "Requests/s: direct, lbproxy, HAProxy, nginx" --ylabel "requests per second" --out "$dir/rps.svg"
  plot_cpu "$dir" peers
  python3 tools/experiments_report.py append-plots "$dir" rps.svg cpu.svg
  publish "$dir"
}

for e in "${exps[@]}"; do
  echo "=== experiment: $e"
  "exp_$e"
done

echo "results in $OUT_ROOT/"
if ((SMOKE)); then
  python3 tools/experiments_report.py check "$OUT_ROOT" sessions files latency policy-adaptivity http-mode
fi
