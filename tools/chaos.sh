#!/usr/bin/env bash
# A chaos run that must lose nothing (issue 15): clients from two source
# addresses (127.0.0.2 and 127.0.0.3, two "hosts" on loopback) run
# file_client transfers (sha256 both ways) and a third (127.0.0.4) runs
# `client` sessions through lbproxy in TCP mode, while backends are killed
# and restarted, stopped (slow), and made to reset their connections, and
# lbproxy is reloaded (SIGHUP with a changed file) and upgraded (a new
# process takes the listeners over the upgrade socket).
#
#   bash tools/chaos.sh [SECONDS]         (default 120; writes measurements/chaos/<YYYY-MM-DD-HHMM>/)
#   OUT=DIR SIZE=4MiB FAULTS="reload upgrade" bash tools/chaos.sh 20
#   LB_WORKERS=2 bash tools/chaos.sh 60      # lbproxy with 2 worker threads
#   LB_WORKERS=2 LB_ACCEPT=reuseport bash tools/chaos.sh 60   # a listening socket per worker
#
# FAULTS: any of kill slow reset reload upgrade (default all). With only
# reload and upgrade, every transfer and session must complete.
#
# Counts transfers and sessions: attempted, completed, failed with a visible
# error (reset, early close: what a backend dying mid-session looks like),
# and silently corrupted (all bytes arrived but they differ, or a session
# changed backend): that last count must be 0. Samples lbproxy's RSS and
# open descriptors every second; after the clients stop, its buffers in use
# must be 0 and its descriptors back to the count before the load.
# Exits 1 on corruption, on a leak, or if lbproxy died.
#
# Binaries: BIN_DIR (default target/release, built here when it is the
# default); tests/chaos.rs runs a short round on the debug build.
set -euo pipefail

secs=${1:-120}
[[ $secs =~ ^[0-9]+$ ]] || { echo "usage: $0 [SECONDS]" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
# A new dated folder per run (`latest` points at the newest) unless OUT names one.
out=${OUT:-$(python3 "$root/tools/provenance.py" --run-dir "$root/measurements/chaos")}
size=${SIZE:-32MiB}
if [[ -z ${BIN_DIR:-} ]]; then
    BIN_DIR=$root/target/release
    (cd "$root" && cargo build --release --quiet --bin lbproxy --example stream_backend --example file_client --example client)
fi
lbproxy=$BIN_DIR/lbproxy
examples=$BIN_DIR/examples
for b in "$lbproxy" "$examples/stream_backend" "$examples/file_client" "$examples/client"; do
    [[ -x $b ]] || { echo "missing binary $b (set BIN_DIR)" >&2; exit 2; }
done
mkdir -p "$out"
work=$(mktemp -d)
pids=()
cleanup() {
    { for p in "${pids[@]}" "${bpid[@]}"; do kill -9 "$p" && wait "$p"; done; } 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# Wait (bounded) for a line in a file; print the line.
wait_line() {
    local file=$1 needle=$2
    for _ in $(seq 200); do
        if grep -q -- "$needle" "$file" 2>/dev/null; then grep -m1 -- "$needle" "$file"; return 0; fi
        sleep 0.05
    done
    echo "no '$needle' in $file:" >&2
    cat "$file" >&2
    return 1
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Backends on fixed ports, so a restarted one comes back at its address.
nback=3
declare -a bport bpid
start_backend() {
    local i=$1
    "$examples/stream_backend" --port "${bport[$i]}" --id "$i" --reset-file "$work/reset-$i" \
        >"$work/backend-$i.log" 2>&1 &
    bpid[$i]=$!
    wait_line "$work/backend-$i.log" "listening on" >/dev/null
}
for i in $(seq 1 $nback); do
    bport[$i]=$(free_port)
    start_backend "$i"
done

lb_port=$(free_port)
admin_port=$(free_port)
write_config() {
    local weight=$1
    {
        echo '[global]'
        echo "admin = \"127.0.0.1:$admin_port\""
        echo "upgrade_socket = \"$work/upgrade.sock\""
        echo 'stats_interval = "0"'
        echo 'drain_timeout = "60s"'
        echo "workers = ${LB_WORKERS:-1}"
        echo "accept = \"${LB_ACCEPT:-exclusive}\""
        echo '[[frontend]]'
        echo 'name = "chaos"'
        echo "bind = \"127.0.0.1:$lb_port\""
        echo 'pool = "app"'
        echo 'policy = "fewest_connections"'
        echo 'connect_timeout = "500ms"'
        echo '[[pool]]'
        echo 'name = "app"'
        echo -n 'servers = ['
        for i in $(seq 1 $nback); do echo -n "{ address = \"127.0.0.1:${bport[$i]}\", weight = $((i == 1 ? weight : 1)) },"; done
        echo ']'
        echo 'health_check = "tcp"'
        echo 'health_interval = "300ms"'
        echo 'health_timeout = "300ms"'
        echo 'rise = 1'
        echo 'fall = 1'
    } >"$work/lb.toml.new"
    mv "$work/lb.toml.new" "$work/lb.toml"
}
write_config 1
generation=0
start_lb() {
    generation=$((generation + 1))
    local log=$work/lb-$generation.log
    RUST_LOG=info "$lbproxy" --config "$work/lb.toml" >"$log" 2>&1 &
    echo $! >"$work/lb.pid"
    pids+=($!)
    wait_line "$log" "listening on" >/dev/null
}
start_lb
lb_pid() { cat "$work/lb.pid"; }
lb_fds() { ls "/proc/$(lb_pid)/fd" 2>/dev/null | wc -l; }
lb_rss() { awk '/^VmRSS/ {print $2}' "/proc/$(lb_pid)/status" 2>/dev/null || echo 0; }
stats() { curl -s --max-time 5 "http://127.0.0.1:$admin_port/stats"; }
fds_before=$(lb_fds)

deadline=$(($(date +%s) + secs))
# Client loops: each round is one file_client run (2 workers, each an upload
# and a download) or one client run (10 sessions of 20 messages).
transfers() {
    local host=$1 tag=$2 n=0
    while (($(date +%s) < deadline)); do
        n=$((n + 1))
        timeout 300 "$examples/file_client" --lb "127.0.0.1:$lb_port" --bind-ip "$host" --size "$size" \
            --parallel 2 --seed "$n" >"$work/$tag-$n.out" 2>&1 || true
    done
    echo "$n" >"$work/$tag.rounds"
}
sessions() {
    local n=0
    while (($(date +%s) < deadline)); do
        n=$((n + 1))
        timeout 300 "$examples/client" --lb "127.0.0.1:$lb_port" --bind-ip 127.0.0.4 --sessions 10 --messages 20 \
            >"$work/sessions-$n.out" 2>&1 || true
    done
    echo "$n" >"$work/sessions.rounds"
}
transfers 127.0.0.2 hostA &
loops=($!)
transfers 127.0.0.3 hostB &
loops+=($!)
sessions &
loops+=($!)

echo "t_s,pid,rss_kib,fds" >"$out/samples.csv"
t0=$(date +%s)
faults=()
fault() { faults+=("$(($(date +%s) - t0))s $*"); echo "  $(($(date +%s) - t0))s: $*"; }
# FAULTS picks the kinds (default: all), run in rotation, one per second.
read -r -a kinds <<<"${FAULTS:-kill slow reset reload upgrade}"
for k in "${kinds[@]}"; do
    [[ $k =~ ^(kill|slow|reset|reload|upgrade)$ ]] || { echo "unknown fault '$k' in FAULTS" >&2; exit 2; }
done
# Only lbproxy's own changes (reload, upgrade): then no session may fail at all.
backend_faults=no
[[ " ${kinds[*]} " =~ \ (kill|slow|reset)\  ]] && backend_faults=yes
step=0
while (($(date +%s) < deadline)); do
    echo "$(($(date +%s) - t0)),$(lb_pid),$(lb_rss),$(lb_fds)" >>"$out/samples.csv"
    kind=${kinds[$((step % ${#kinds[@]}))]}
    round=$((step / ${#kinds[@]}))
    i=$(((round % nback) + 1))
    step=$((step + 1))
    case $kind in
        kill) fault "kill -9 backend $i"; { kill -9 "${bpid[$i]}"; wait "${bpid[$i]}"; } 2>/dev/null || true
              sleep 1; start_backend "$i"; fault "backend $i restarted" ;;
        slow) fault "SIGSTOP backend $i (slow) for 1s"; kill -STOP "${bpid[$i]}"; sleep 1; kill -CONT "${bpid[$i]}" ;;
        reset) fault "backend $i resets its sessions for 1s"; touch "$work/reset-$i"; sleep 1; rm -f "$work/reset-$i" ;;
        reload) w=$((round % 3 + 1)); fault "reload (SIGHUP, weight of backend 1 = $w)"; write_config "$w"
                kill -HUP "$(lb_pid)"; sleep 1 ;;
        upgrade) fault "binary upgrade (a new lbproxy takes the listeners)"; start_lb
                 wait_line "$work/lb-$generation.log" "took over listeners" >/dev/null; sleep 1 ;;
    esac
done
echo "load stopped; waiting for the client rounds to finish"
for p in "${loops[@]}"; do wait "$p" || true; done
# Every old process drains and exits; the current one must be idle now.
sleep 1
final=$(stats)
echo "$(($(date +%s) - t0)),$(lb_pid),$(lb_rss),$(lb_fds)" >>"$out/samples.csv"
buffers=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["buffers_in_use"])' <<<"$final")
open=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["open_clients"])' <<<"$final")
fds_after=$(lb_fds)
alive=yes
kill -0 "$(lb_pid)" 2>/dev/null || alive=no

# Count: per file_client worker one upload and one download; per client
# session one session.
count() { cat "$work"/$1*.out 2>/dev/null | grep -c -- "$2" || true; }
t_rounds=$(($(cat "$work/hostA.rounds") + $(cat "$work/hostB.rounds")))
t_attempted=$((t_rounds * 2))
t_failed=$(count host "^FAIL: ")
t_corrupt=$(count host "^FAIL: CORRUPT")
t_completed=$((t_attempted - t_failed))
s_rounds=$(cat "$work/sessions.rounds")
s_attempted=$((s_rounds * 10))
s_failed=$(count sessions "^FAIL: ")
s_corrupt=$(count sessions "^FAIL: CORRUPT")
s_completed=$((s_attempted - s_failed))
rss_first=$(awk -F, 'NR==2 {print $3}' "$out/samples.csv")
rss_max=$(awk -F, 'NR>1 && $3>m {m=$3} END {print m}' "$out/samples.csv")
fault_count=${#faults[@]}
verdict=PASS
((t_corrupt + s_corrupt == 0)) || verdict=FAIL
((buffers == 0 && open == 0)) || verdict=FAIL
((fds_after <= fds_before + 2)) || verdict=FAIL
[[ $alive == yes ]] || verdict=FAIL
# Without backend faults nothing may fail: reload and upgrade drop nothing.
[[ $backend_faults == yes ]] || ((t_failed + s_failed == 0)) || verdict=FAIL

{
    echo "# Chaos run: nothing lost, nothing mixed"
    echo
    echo "Written by \`FAULTS=\"${kinds[*]}\" SIZE=$size LB_WORKERS=${LB_WORKERS:-1} LB_ACCEPT=${LB_ACCEPT:-exclusive} bash tools/chaos.sh $secs\` at commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "on $(date -u '+%Y-%m-%d %H:%M UTC'); machine: $(nproc) cores, $(uname -sr). Verdict: **$verdict**."
    echo
    echo "lbproxy in TCP mode (fewest_connections, tcp health checks every 300 ms, rise 1, fall 1) in front of"
    echo "$nback examples/stream_backend; clients: file_client from 127.0.0.2 and 127.0.0.3 (2 workers each, every"
    echo "worker uploads and downloads $size and checks sha256 both ways) and examples/client from 127.0.0.4"
    echo "(10 sessions of 20 messages per round, each reply checked for its backend, session and counter)."
    echo
    echo "| | attempted | completed | failed, visible error | silently corrupted |"
    echo "|---|---:|---:|---:|---:|"
    echo "| file transfers (upload + download) | $t_attempted | $t_completed | $((t_failed - t_corrupt)) | $t_corrupt |"
    echo "| client sessions | $s_attempted | $s_completed | $((s_failed - s_corrupt)) | $s_corrupt |"
    echo
    echo "Faults injected ($fault_count, one per second in rotation, kinds: ${kinds[*]}): kill = kill -9 and restart"
    echo "of a backend, slow = SIGSTOP for 1 s, reset = every session of a backend reset for 1 s, reload = SIGHUP"
    echo "with a changed weight, upgrade = a new process takes the listeners, the old one drains and exits."
    if [[ $backend_faults == no ]]; then
        echo "No backend was harmed in this run, so every transfer and session had to complete."
    fi
    echo
    echo "After the load: lbproxy alive: $alive; open clients $open; buffers in use $buffers; descriptors"
    echo "$fds_after (before the load: $fds_before). RSS: $rss_first KiB at the start, at most $rss_max KiB"
    echo "(samples.csv: one row per second; \`pid\` changes at each upgrade)."
    echo
    echo "A visible failure is a transfer or session cut by a fault on its backend (a reset, a close"
    echo "before the end: the client knows). Failure messages (first 10):"
    echo
    echo '```'
    cat "$work"/host*-*.out "$work"/sessions-*.out 2>/dev/null | grep -- "^FAIL: " | sort | uniq -c | sort -rn | head -10 || true
    echo '```'
    echo
    echo "Faults, in order:"
    echo
    printf -- '- %s\n' "${faults[@]}"
    echo
    python3 "$root/tools/provenance.py"
} >"$out/report.md"
python3 "$root/tools/provenance.py" --publish "$out"
echo "wrote $out/report.md: $verdict (transfers $t_completed/$t_attempted, sessions $s_completed/$s_attempted,"
echo "  corrupted $((t_corrupt + s_corrupt)), buffers $buffers, fds $fds_after vs $fds_before, alive $alive)"
[[ $verdict == PASS ]]
